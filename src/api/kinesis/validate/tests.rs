use std::collections::BTreeMap;

use bytes::Bytes;

use super::serialization::aws_words;
use super::*;
use crate::api::kinesis::types::*;
use crate::api::protocol::{Blob, Wire};

fn message<T: Validate>(input: &T) -> String {
    let e = check(input).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Validation);
    e.message
}

fn decoded<T: serde::de::DeserializeOwned + Validate>(json: &str) -> Result<T, ApiError> {
    let input: T = Wire::Json.decode(json.as_bytes()).map_err(aws_words)?;
    check(&input)?;
    Ok(input)
}

#[test]
fn all_failures_in_one_message_in_model_order() {
    let input = GetShardIteratorInput {
        shard_id: Some("a b".into()),
        shard_iterator_type: Some("LATEST".into()),
        ..Default::default()
    };
    assert_eq!(
        message(&input),
        "2 validation errors detected: Value null at 'streamName' failed to satisfy constraint: \
         Member must not be null; Value 'a b' at 'shardId' failed to satisfy constraint: \
         Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"
    );
}

#[test]
fn one_failure_is_singular_and_valid_input_passes() {
    let mut input = DeleteStreamInput {
        stream_name: Some("a".repeat(129)),
        ..Default::default()
    };
    assert_eq!(
        message(&input),
        format!(
            "1 validation error detected: Value '{}' at 'streamName' failed to satisfy \
             constraint: Member must have length less than or equal to 128",
            "a".repeat(129)
        )
    );
    input.stream_name = Some("telemetry_1.a-b".into());
    assert!(check(&input).is_ok());
}

#[test]
fn empty_string_fails_pattern_then_length() {
    let input = DescribeStreamInput {
        stream_name: Some(String::new()),
        limit: Some(0),
        ..Default::default()
    };
    assert_eq!(
        message(&input),
        "3 validation errors detected: \
         Value '' at 'streamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+; \
         Value '' at 'streamName' failed to satisfy constraint: Member must have length greater than or equal to 1; \
         Value '0' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1"
    );
}

#[test]
fn integers_are_shown_as_the_java_int_aws_read() {
    let input = ListStreamsInput {
        limit: Some(100_000_000_000),
        ..Default::default()
    };
    assert_eq!(
        message(&input),
        "1 validation error detected: Value '2147483647' at 'limit' failed to satisfy \
         constraint: Member must have value less than or equal to 10000"
    );
}

#[test]
fn nested_members_and_enums() {
    let input = CreateStreamInput {
        stream_name: Some("s".into()),
        shard_count: Some(1),
        stream_mode_details: Some(StreamModeDetails {
            stream_mode: Some("FAST".into()),
        }),
        tags: None,
    };
    assert_eq!(
        message(&input),
        "1 validation error detected: Value 'FAST' at 'streamModeDetails.streamMode' failed \
         to satisfy constraint: Member must satisfy enum value set: [PROVISIONED, ON_DEMAND]"
    );
    let input = ListShardsInput {
        stream_name: Some("s".into()),
        shard_filter: Some(ShardFilterIn::default()),
        ..Default::default()
    };
    assert_eq!(
        message(&input),
        "1 validation error detected: Value null at 'shardFilter.type' failed to satisfy \
         constraint: Member must not be null"
    );
}

#[test]
fn put_records_entries_are_checked_by_index() {
    let entry = |key: &str, data: usize, ehk: Option<&str>| PutRecordsEntry {
        data: Some(Blob(Bytes::from(vec![0u8; data]))),
        partition_key: Some(key.into()),
        explicit_hash_key: ehk.map(str::to_string),
    };
    let input = PutRecordsInput {
        stream_name: Some("s".into()),
        stream_arn: None,
        records: Some(vec![entry("ok", 1, None), entry("", 1_048_577, Some(""))]),
    };
    assert_eq!(
        message(&input),
        "3 validation errors detected: \
         Value 'java.nio.HeapByteBuffer[pos=0 lim=1048577 cap=1048577]' at 'records.2.member.data' failed to satisfy constraint: Member must have length less than or equal to 1048576; \
         Value '' at 'records.2.member.explicitHashKey' failed to satisfy constraint: Member must satisfy regular expression pattern: 0|([1-9]\\d{0,38}); \
         Value '' at 'records.2.member.partitionKey' failed to satisfy constraint: Member must have length greater than or equal to 1"
    );
}

#[test]
fn at_most_ten_failures_are_listed() {
    let input = PutRecordsInput {
        stream_name: Some(String::new()),
        stream_arn: None,
        records: Some(
            (0..501)
                .map(|_| PutRecordsEntry {
                    data: Some(Blob::default()),
                    partition_key: Some(String::new()),
                    explicit_hash_key: None,
                })
                .collect(),
        ),
    };
    let m = message(&input);
    assert!(m.starts_with("10 validation errors detected: Value '[com.amazonaws.kinesis.v20131202.PutRecordsRequestEntry@c965e310, "), "{m}");
    assert!(m.contains("at 'records' failed to satisfy constraint: Member must have length less than or equal to 500; "));
    assert!(m.ends_with("Value '' at 'records.9.member.partitionKey' failed to satisfy constraint: Member must have length greater than or equal to 1"), "{m}");
    assert_eq!(m.matches("; ").count(), 9);
}

#[test]
fn maps_and_lists_of_strings() {
    let mut tags = BTreeMap::new();
    tags.insert("a".to_string(), "1".to_string());
    tags.insert("k".repeat(129), "2".to_string());
    let input = AddTagsInput {
        stream_name: Some("s".into()),
        stream_arn: None,
        tags: Some(tags),
    };
    assert_eq!(
        message(&input),
        format!(
            "1 validation error detected: Value '{{a=1, {}=2}}' at 'tags' failed to satisfy \
             constraint: Map keys must satisfy constraint: [Member must have length less than \
             or equal to 128, Member must have length greater than or equal to 1]",
            "k".repeat(129)
        )
    );
    let many: BTreeMap<String, String> = (0..11).map(|i| (format!("{i:02}"), "v".into())).collect();
    let input = AddTagsInput {
        stream_name: Some("s".into()),
        stream_arn: None,
        tags: Some(many),
    };
    assert!(message(&input).ends_with(
        "at 'tags' failed to satisfy constraint: Member must have length less than or equal to 10"
    ));
    let input = RemoveTagsInput {
        stream_name: Some("s".into()),
        stream_arn: None,
        tag_keys: Some(vec!["a".into(), String::new()]),
    };
    assert_eq!(
        message(&input),
        "1 validation error detected: Value '[a, ]' at 'tagKeys' failed to satisfy constraint: \
         Member must satisfy constraint: [Member must have length less than or equal to 128, \
         Member must have length greater than or equal to 1]"
    );
}

#[test]
fn lengths_are_utf16_units() {
    let input = PutRecordInput {
        stream_name: Some("s".into()),
        data: Some(Blob::default()),
        partition_key: Some("é".repeat(256)),
        ..Default::default()
    };
    assert!(check(&input).is_ok());
    let input = PutRecordInput {
        partition_key: Some("😀".repeat(129)),
        ..input
    };
    assert!(message(&input).contains("Member must have length less than or equal to 256"));
}

#[test]
fn stream_arns_and_sequence_numbers() {
    for ok in [
        "arn:aws:kinesis:us-east-1:123456789012:stream/s",
        "arn:aws-cn:kinesis:cn-north-1:123456789012:stream/a.b-c_d",
        "arn:aws:kinesis::123456789012:stream/x",
    ] {
        assert!((STREAM_ARN_PATTERN.matches)(ok), "{ok}");
    }
    for bad in [
        "arn:aws:s3:::bucket",
        "arn:aws:kinesis:us-east-1:12345678901:stream/s",
        "arn:aws:kinesis:us-east-1:123456789012:stream/",
        "arn:aws:kinesis:us-east-1:123456789012:stream/a b",
        "telemetry",
    ] {
        assert!(!(STREAM_ARN_PATTERN.matches)(bad), "{bad}");
    }
    for ok in [
        "arn:aws:kinesis:us-east-1:123456789012:stream/s/consumer/c:1700000000",
        "arn:aws:kinesis:r:123456789012:mystream/x.y/consumer/c-1:1",
    ] {
        assert!((CONSUMER_ARN_PATTERN.matches)(ok), "{ok}");
        assert!((RESOURCE_ARN_PATTERN.matches)(ok), "{ok}");
    }
    for bad in [
        "arn:aws:kinesis:us-east-1:123456789012:stream/s/consumer/c:",
        "arn:aws:kinesis:us-east-1:123456789012:stream/s/consumer/c d:1",
        "arn:aws:kinesis:us-east-1:123456789012:stream/s",
        "arn:aws:kinesis:us-east-1:1234:stream/s/consumer/c:1",
        "arn:aws:s3:us-east-1:123456789012:stream/s/consumer/c:1",
    ] {
        assert!(!(CONSUMER_ARN_PATTERN.matches)(bad), "{bad}");
    }
    assert!((RESOURCE_ARN_PATTERN.matches)(
        "arn:aws:kinesis:us-east-1:123456789012:stream/s"
    ));
    assert!(!(RESOURCE_ARN_PATTERN.matches)(
        "arn:aws:kinesis:us-east-1:123456789012:table/s"
    ));
    assert!((SEQUENCE_NUMBER_PATTERN.matches)("0"));
    assert!((SEQUENCE_NUMBER_PATTERN.matches)(&"9".repeat(129)));
    assert!(!(SEQUENCE_NUMBER_PATTERN.matches)(&"9".repeat(130)));
    assert!(!(SEQUENCE_NUMBER_PATTERN.matches)("01"));
    assert!(!(HASH_KEY_PATTERN.matches)(&"1".repeat(40)));
    assert!(!(HASH_KEY_PATTERN.matches)("-1"));
}

#[test]
fn type_errors_are_worded_as_aws_words_them() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{"StreamName": 23}"#,
            "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String",
        ),
        (
            r#"{"StreamName": true}"#,
            "class java.lang.Boolean can not be converted to an String",
        ),
        (r#"{"StreamName": []}"#, "Start of list found where not expected"),
        (
            r#"{"StreamName": {}}"#,
            "Start of structure or map found where not expected.",
        ),
        (
            r#"{"StreamName": "s", "Limit": "23"}"#,
            "class java.lang.String can not be converted to an Integer",
        ),
    ];
    for (json, want) in cases {
        let e = decoded::<DescribeStreamInput>(json).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Serialization, "{json}");
        assert_eq!(&e.message, want, "{json}");
    }
    let e = decoded::<GetShardIteratorInput>(
        r#"{"StreamName": "s", "ShardId": "0", "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": "23"}"#,
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Serialization);
    assert_eq!(
        e.message,
        "class java.lang.String can not be converted to milliseconds since epoch"
    );
    let ok = decoded::<GetShardIteratorInput>(
        r#"{"StreamName": "s", "ShardId": "0", "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": 1.5}"#,
    )
    .unwrap();
    assert_eq!(ok.timestamp.map(|t| t.0), Some(1_500));
    let e = decoded::<PutRecordsInput>(r#"{"StreamName": "s", "Records": "x"}"#).unwrap_err();
    assert_eq!(e.message, "Expected list or null");
    let e = decoded::<AddTagsInput>(r#"{"StreamName": "s", "Tags": 1}"#).unwrap_err();
    assert_eq!(e.message, "Expected map or null");
    // Not JSON at all: the decoder's own message stays.
    let e = decoded::<DescribeStreamInput>("{nope").unwrap_err();
    assert!(e.message.contains("not valid JSON"), "{}", e.message);
}

#[test]
fn cbor_timestamps_are_milliseconds_never_text() {
    use ciborium::Value;
    let body = |ts: Value| {
        let map = Value::Map(vec![
            (Value::Text("StreamName".into()), Value::Text("s".into())),
            (Value::Text("ShardId".into()), Value::Text("0".into())),
            (
                Value::Text("ShardIteratorType".into()),
                Value::Text("AT_TIMESTAMP".into()),
            ),
            (Value::Text("Timestamp".into()), ts),
        ]);
        let mut out = Vec::new();
        ciborium::into_writer(&map, &mut out).unwrap();
        out
    };
    let tagged = Value::Tag(1, Box::new(Value::Integer(1_500.into())));
    let input: GetShardIteratorInput = Wire::Cbor.decode(&body(tagged)).unwrap();
    assert_eq!(input.timestamp.map(|t| t.0), Some(1_500));
    let e = Wire::Cbor
        .decode::<GetShardIteratorInput>(&body(Value::Text("1500".into())))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Serialization);
    assert!(
        e.message
            .contains("can not be converted to milliseconds since epoch"),
        "{}",
        e.message
    );
}
