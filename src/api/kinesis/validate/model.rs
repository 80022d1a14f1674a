//! The Kinesis service model as kinedge checks it: the shapes of botocore's
//! `kinesis/2013-12-02/service-2.json` (lengths, patterns, ranges, enums); each operation's
//! members are in `operations`.
//!
//! Where kinedge checks more tightly than the model, the line says why (AddTagsToStream takes
//! at most 10 tags per call, as AWS documents; a record's data is at most 1 MiB because
//! kinedge streams keep AWS's default maximum record size).

use super::{BlobShape, IntShape, Pattern, SizeShape, StrShape};

fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `0|([1-9]\d{0,max_more})`
fn is_decimal(text: &str, max_digits: usize) -> bool {
    text == "0"
        || (!text.is_empty()
            && text.len() <= max_digits
            && !text.starts_with('0')
            && text.bytes().all(|b| b.is_ascii_digit()))
}

/// The places right after `arn:aws.*:kinesis:.*:\d{12}:` in `text` (every way the `.*`s can
/// split it).
fn after_account(text: &str) -> impl Iterator<Item = usize> + '_ {
    let bytes = text.as_bytes();
    let start = if text.starts_with("arn:aws") && !text.contains('\n') {
        text.match_indices(":kinesis:")
            .map(|(i, m)| i + m.len())
            .find(|i| *i >= 7 + ":kinesis:".len())
    } else {
        None
    };
    let from = start.unwrap_or(bytes.len() + 1);
    (from..bytes.len()).filter_map(move |k| {
        let account = bytes.get(k + 1..k + 13)?;
        (bytes[k] == b':'
            && account.iter().all(u8::is_ascii_digit)
            && bytes.get(k + 13) == Some(&b':'))
        .then_some(k + 14)
    })
}

fn is_non_blank(text: &str) -> bool {
    !text.is_empty() && !text.chars().any(char::is_whitespace)
}

/// `arn:aws.*:kinesis:.*:\d{12}:stream/\S+`
fn is_stream_arn(text: &str) -> bool {
    after_account(text).any(|p| text[p..].strip_prefix("stream/").is_some_and(is_non_blank))
}

/// `arn:aws.*:kinesis:.*:\d{12}:.*stream/\S+` (ResourceARN: a stream or a consumer)
fn is_resource_arn(text: &str) -> bool {
    after_account(text).any(|p| {
        text[p..]
            .match_indices("stream/")
            .any(|(q, m)| is_non_blank(&text[p + q + m.len()..]))
    })
}

/// `^(arn):aws.*:kinesis:.*:\d{12}:.*stream\/[a-zA-Z0-9_.-]+\/consumer\/[a-zA-Z0-9_.-]+:[0-9]+`
fn is_consumer_arn(text: &str) -> bool {
    let Some((head, created)) = text.rsplit_once(':') else {
        return false;
    };
    let Some((head, consumer)) = head.rsplit_once("/consumer/") else {
        return false;
    };
    let Some((head, stream)) = head.rsplit_once("stream/") else {
        return false;
    };
    !created.is_empty()
        && created.bytes().all(|b| b.is_ascii_digit())
        && is_name(consumer)
        && is_name(stream)
        && after_account(head).next().is_some()
}

pub static NAME: Pattern = Pattern {
    text: "[a-zA-Z0-9_.-]+",
    matches: is_name,
};
pub static HASH_KEY_PATTERN: Pattern = Pattern {
    text: "0|([1-9]\\d{0,38})",
    matches: |t| is_decimal(t, 39),
};
pub static SEQUENCE_NUMBER_PATTERN: Pattern = Pattern {
    text: "0|([1-9]\\d{0,128})",
    matches: |t| is_decimal(t, 129),
};
pub static STREAM_ARN_PATTERN: Pattern = Pattern {
    text: "arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+",
    matches: is_stream_arn,
};
pub static RESOURCE_ARN_PATTERN: Pattern = Pattern {
    text: "arn:aws.*:kinesis:.*:\\d{12}:.*stream/\\S+",
    matches: is_resource_arn,
};
pub static CONSUMER_ARN_PATTERN: Pattern = Pattern {
    text: "^(arn):aws.*:kinesis:.*:\\d{12}:.*stream\\/[a-zA-Z0-9_.-]+\\/consumer\\/[a-zA-Z0-9_.-]+:[0-9]+",
    matches: is_consumer_arn,
};

pub const STREAM_NAME: StrShape = StrShape {
    min: Some(1),
    max: Some(128),
    pattern: Some(&NAME),
    ..StrShape::ANY
};
pub const STREAM_ARN: StrShape = StrShape {
    min: Some(1),
    max: Some(2048),
    pattern: Some(&STREAM_ARN_PATTERN),
    ..StrShape::ANY
};
pub const SHARD_ID: StrShape = STREAM_NAME;
pub const CONSUMER_NAME: StrShape = STREAM_NAME;
pub const CONSUMER_ARN: StrShape = StrShape {
    min: Some(1),
    max: Some(2048),
    pattern: Some(&CONSUMER_ARN_PATTERN),
    ..StrShape::ANY
};
pub const RESOURCE_ARN: StrShape = StrShape {
    min: Some(1),
    max: Some(2048),
    pattern: Some(&RESOURCE_ARN_PATTERN),
    ..StrShape::ANY
};
pub const KEY_ID: StrShape = StrShape {
    min: Some(1),
    max: Some(2048),
    ..StrShape::ANY
};
pub const ENCRYPTION_TYPE: StrShape = StrShape {
    values: Some(&["NONE", "KMS"]),
    ..StrShape::ANY
};
pub const METRICS_NAME: StrShape = StrShape {
    values: Some(&[
        "IncomingBytes",
        "IncomingRecords",
        "OutgoingBytes",
        "OutgoingRecords",
        "WriteProvisionedThroughputExceeded",
        "ReadProvisionedThroughputExceeded",
        "IteratorAgeMilliseconds",
        "ALL",
    ]),
    ..StrShape::ANY
};
/// `MetricsNameList`.
pub const METRICS_LIST: SizeShape = SizeShape {
    min: Some(1),
    max: Some(7),
};
pub const HASH_KEY: StrShape = StrShape {
    pattern: Some(&HASH_KEY_PATTERN),
    ..StrShape::ANY
};
pub const SEQUENCE_NUMBER: StrShape = StrShape {
    pattern: Some(&SEQUENCE_NUMBER_PATTERN),
    ..StrShape::ANY
};
pub const PARTITION_KEY: StrShape = StrShape {
    min: Some(1),
    max: Some(256),
    ..StrShape::ANY
};
pub const SHARD_ITERATOR: StrShape = StrShape {
    min: Some(1),
    max: Some(512),
    ..StrShape::ANY
};
pub const NEXT_TOKEN: StrShape = StrShape {
    min: Some(1),
    max: Some(1_048_576),
    ..StrShape::ANY
};
pub const TAG_KEY: StrShape = StrShape {
    min: Some(1),
    max: Some(128),
    ..StrShape::ANY
};
pub const TAG_VALUE: StrShape = StrShape {
    min: Some(0),
    max: Some(256),
    ..StrShape::ANY
};
pub const STREAM_MODE: StrShape = StrShape {
    values: Some(&["PROVISIONED", "ON_DEMAND"]),
    ..StrShape::ANY
};
pub const SHARD_ITERATOR_TYPE: StrShape = StrShape {
    values: Some(&[
        "AT_SEQUENCE_NUMBER",
        "AFTER_SEQUENCE_NUMBER",
        "TRIM_HORIZON",
        "LATEST",
        "AT_TIMESTAMP",
    ]),
    ..StrShape::ANY
};
pub const SHARD_FILTER_TYPE: StrShape = StrShape {
    values: Some(&[
        "AFTER_SHARD_ID",
        "AT_TRIM_HORIZON",
        "FROM_TRIM_HORIZON",
        "AT_LATEST",
        "AT_TIMESTAMP",
        "FROM_TIMESTAMP",
    ]),
    ..StrShape::ANY
};
pub const SCALING_TYPE: StrShape = StrShape {
    values: Some(&["UNIFORM_SCALING"]),
    ..StrShape::ANY
};

/// `PositiveIntegerObject`.
pub const POSITIVE: IntShape = IntShape {
    min: Some(1),
    max: None,
};
/// `DescribeStreamInputLimit`, `ListStreamsInputLimit`, `ListShardsInputLimit`,
/// `GetRecordsInputLimit`.
pub const LIMIT_10000: IntShape = IntShape {
    min: Some(1),
    max: Some(10_000),
};
pub const LIST_TAGS_LIMIT: IntShape = IntShape {
    min: Some(1),
    max: Some(50),
};
/// `RetentionPeriodHours` has no model range: 24-8760 is a semantic check.
pub const RETENTION_HOURS: IntShape = IntShape {
    min: None,
    max: None,
};

/// A record's data: AWS's default maximum record size, which kinedge streams keep (the
/// model allows 10 MiB for streams whose MaxRecordSizeInKiB was raised).
pub const DATA: BlobShape = BlobShape {
    max: Some(1_048_576),
};

/// `Policy`: no model constraint (its 20 KB limit is checked with the policy).
pub const POLICY: StrShape = StrShape::ANY;
/// `TagMap` (CreateStream).
pub const TAG_MAP: SizeShape = SizeShape {
    min: Some(1),
    max: Some(200),
};
/// AddTagsToStream: "A set of up to 10 key-value pairs" (AWS's API reference).
pub const ADD_TAGS_MAP: SizeShape = SizeShape {
    min: Some(1),
    max: Some(10),
};
/// `TagKeyList`.
pub const TAG_KEY_LIST: SizeShape = SizeShape {
    min: Some(1),
    max: Some(50),
};
/// `PutRecordsRequestEntryList`.
pub const PUT_RECORDS_LIST: SizeShape = SizeShape {
    min: Some(1),
    max: Some(500),
};
/// How AWS shows an element of a PutRecords list in a message (the Java object's name).
pub const PUT_RECORDS_ENTRY_SHOWN: &str =
    "com.amazonaws.kinesis.v20131202.PutRecordsRequestEntry@c965e310";
