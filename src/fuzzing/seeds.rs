//! Valid inputs for each target: the starting corpus of the fuzzers (fuzz/seeds, written by
//! `cargo test --features fuzzing -- --ignored write_fuzz_seeds`) and of the property tests.

use super::*;
use crate::storage::block::PendingRecord;

/// MQTT byte streams, with the two leading bytes [`mqtt_codec`] reads.
pub fn mqtt() -> Vec<Vec<u8>> {
    let connect_v4: &[u8] = &[
        0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 1, b'c',
    ];
    let connect_v5: &[u8] = &[
        0x10, 32, 0, 4, b'M', b'Q', b'T', b'T', 5, 0xc6, 0, 60, // user, password, will, clean
        5, 0x11, 0, 0, 0, 10, // properties: session expiry 10 s
        0, 1, b'c', // client id
        0,    // will properties
        0, 1, b'w', 0, 1, b'x', // will topic and payload
        0, 1, b'u', 0, 1, b'p', // user name and password
    ];
    let v4: &[&[u8]] = &[
        &[0x32, 9, 0, 3, b'a', b'/', b'b', 0, 7, b'h', b'i'],
        &[0x34, 9, 0, 3, b'a', b'/', b'b', 0, 8, b'h', b'i'],
        &[0x30, 5, 0, 1, b't', b'h', b'i'],
        &[0x62, 2, 0, 8],
        &[0x40, 2, 0, 1],
        &[0x82, 8, 0, 1, 0, 3, b'a', b'/', b'#', 1],
        &[0xa2, 7, 0, 2, 0, 3, b'a', b'/', b'+'],
        &[0xc0, 0],
        &[0xe0, 0],
    ];
    let v5: &[&[u8]] = &[
        &[
            0x32, 27, 0, 3, b'a', b'/', b'b', 0, 7, 16, 0x01, 1, 0x23, 0, 5, 0x08, 0, 1, b'r',
            0x26, 0, 1, b'k', 0, 1, b'v', b'h', b'i', b'!',
        ],
        &[0x30, 8, 0, 0, 3, 0x23, 0, 5, b'h', b'i'],
        &[0x34, 10, 0, 3, b'a', b'/', b'b', 0, 8, 0, b'h', b'i'],
        &[0x62, 4, 0, 8, 0, 0],
        &[0x82, 9, 0, 1, 0, 0, 3, b'a', b'/', b'#', 0x15],
        &[0xa2, 8, 0, 2, 0, 0, 3, b'a', b'/', b'+'],
        &[0xc0, 0],
        &[0xe0, 2, 0, 0],
    ];
    let mut out = Vec::new();
    for (mode, connect, packets) in [(0u8, connect_v4, v4), (0, connect_v5, v5)] {
        let mut stream = vec![mode, 10];
        stream.extend_from_slice(connect);
        for p in packets {
            stream.extend_from_slice(p);
        }
        out.push(stream);
    }
    for (mode, packets) in [(1u8, v4), (2, v5)] {
        for p in packets {
            out.push([&[mode, 10][..], p].concat());
        }
    }
    out
}

fn record(pos: u64, key: &str, data: &[u8]) -> PendingRecord {
    PendingRecord {
        position: Position(pos),
        partition_key: key.to_owned(),
        data: bytes::Bytes::copy_from_slice(data),
    }
}

/// Blocks with their key and start byte, as [`block_decode`] reads them.
pub fn blocks() -> Vec<Vec<u8>> {
    let key = 1u64 << 40;
    let records = block::encode_records(&[
        record(key, "a", b"one"),
        record(key + 1, "\u{e9}", b""),
        record(key + 900, "k", &[0, 255, 7]),
    ]);
    let large = block::encode_large_head(&record(key, "big", &vec![7; 300_000]));
    [records, large]
        .into_iter()
        .map(|b| [&key.to_le_bytes()[..], &[2], &b].concat())
        .collect()
}

/// A request signed by aws-sigv4, in [`sigv4_verify`]'s line format.
pub fn sigv4() -> Vec<Vec<u8>> {
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4::SigningParams;

    let identity = Credentials::new(FUZZ_KEY_ID, FUZZ_SECRET, None, None, "fuzz").into();
    let body = br#"{"StreamName":"s","Data":"AA==","PartitionKey":"k"}"#;
    let mut out = Vec::new();
    for target in ["/", "/a%20b/c?x=1&y=%2F"] {
        let Ok(mut request) = http::Request::builder()
            .method("POST")
            .uri(format!("http://gateway.local{target}"))
            .header("host", "gateway.local")
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", "Kinesis_20131202.PutRecord")
            .body(())
        else {
            continue;
        };
        let headers: Vec<(&str, &str)> = request
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
            .collect();
        let Ok(signable) = SignableRequest::new(
            "POST",
            request.uri().to_string(),
            headers.into_iter(),
            SignableBody::Bytes(body),
        ) else {
            continue;
        };
        let Ok(params) = SigningParams::builder()
            .identity(&identity)
            .region("eu-west-1")
            .name("kinesis")
            .time(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
            .settings(SigningSettings::default())
            .build()
        else {
            continue;
        };
        let Ok(signed) = sign(signable, &params.into()) else {
            continue;
        };
        signed.into_parts().0.apply_to_request_http1x(&mut request);
        let mut text = format!("POST\n{target}\n").into_bytes();
        for (name, value) in request.headers() {
            text.extend_from_slice(name.as_str().as_bytes());
            text.extend_from_slice(b": ");
            text.extend_from_slice(value.as_bytes());
            text.push(b'\n');
        }
        text.push(b'\n');
        text.extend_from_slice(body);
        out.push(text);
    }
    out
}

/// Inputs for [`sigv4_signed`].
pub fn sigv4_signed() -> Vec<Vec<u8>> {
    vec![
        b"\x00\x01\x02\x03\x04\xffeu-west-1\xffa/b c\xffx=1&y=/\xffx-custom: a  b\xff{}".to_vec(),
        b"\x05\x00\x00\x00\x00\xff\xff\xff\xff\xff".to_vec(),
    ]
}

/// Request bodies with the leading wire byte [`api_request`] reads (0 JSON, 1 CBOR).
pub fn api() -> Vec<Vec<u8>> {
    let json: &[&str] = &[
        r#"{"StreamName":"s","Records":[{"Data":"aGk=","PartitionKey":"k","ExplicitHashKey":"340282366920938463463374607431768211455"}]}"#,
        r#"{"StreamName":"s","Data":"aGk=","PartitionKey":"k","SequenceNumberForOrdering":"49590338271490256608559692538361571095921575989136588898"}"#,
        r#"{"StreamName":"s","ShardId":"shardId-000000000000","ShardIteratorType":"AT_TIMESTAMP","Timestamp":1700000000.5}"#,
        r#"{"ShardIterator":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","Limit":10}"#,
        r#"{"StreamName":"s","ShardToSplit":"shardId-000000000000","NewStartingHashKey":"1"}"#,
        r#"{"DeliveryStreamName":"d","Records":[{"Data":"aGk="}]}"#,
        r#"{"DeliveryStreamName":"d","ExtendedS3DestinationConfiguration":{"BucketARN":"arn:aws:s3:::b","Prefix":"x/!{timestamp:yyyy/MM/dd}/","ErrorOutputPrefix":"e/!{firehose:error-output-type}/","BufferingHints":{"SizeInMBs":5,"IntervalInSeconds":60},"CompressionFormat":"GZIP"}}"#,
        r#"{"DeliveryStreamName":"d","HttpEndpointDestinationConfiguration":{"EndpointConfiguration":{"Url":"http://127.0.0.1:1/"},"BufferingHints":{"SizeInMBs":1}}}"#,
    ];
    let mut out: Vec<Vec<u8>> = json
        .iter()
        .map(|j| [&[0u8][..], j.as_bytes()].concat())
        .collect();
    for j in json {
        if let Ok(value) = serde_json::from_str::<ciborium::Value>(j) {
            let mut cbor = vec![1u8];
            if ciborium::into_writer(&value, &mut cbor).is_ok() {
                out.push(cbor);
            }
        }
    }
    // CBOR's own forms: a byte-string blob and a tag-1 timestamp.
    let mut cbor = vec![1u8];
    let value = ciborium::Value::Map(vec![
        ("StreamName".into(), "s".into()),
        ("Data".into(), ciborium::Value::Bytes(vec![0, 1, 2])),
        ("PartitionKey".into(), "k".into()),
        (
            "Timestamp".into(),
            ciborium::Value::Tag(1, Box::new(1_700_000_000_000u64.into())),
        ),
    ]);
    if ciborium::into_writer(&value, &mut cbor).is_ok() {
        out.push(cbor);
    }
    out
}
