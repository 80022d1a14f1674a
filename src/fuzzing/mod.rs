//! Entry points for the fuzz targets (fuzz/, cargo-fuzz) and the property tests that run a
//! short version of each target in `cargo test`.
//!
//! Owns nothing of the gateway: each function feeds arbitrary bytes to one decoder that sees
//! outside input (the MQTT codec, the shard-log block decoder, SigV4 verification, the
//! JSON/CBOR request decoder) the way the gateway calls it. Invariant: for any input these
//! functions return without panicking (the release profile aborts on panic) unless a
//! property is broken: a signature made by AWS's own signer that does not verify, a codec that
//! reports a frame without consuming it, a block whose summary disagrees with its records.
//! Compiled only for tests and with the `fuzzing` feature; not part of the library's API.

use std::str::FromStr;
use std::time::{Duration, UNIX_EPOCH};

use bytes::BytesMut;

use crate::api::kinesis::types as kt;
use crate::api::protocol::Wire;
use crate::api::sigv4::{AuthError, SigV4Verifier};
use crate::ingest::mqtt::codec::{self, Codec, Version};
use crate::storage::block::{self, Decoded};
use crate::streams::{parse_explicit_hash_key, Position, SequenceNumber, ShardIterator};

#[cfg(test)]
mod tests;

/// The MQTT codec as a session uses it: the CONNECT first, then frames until the buffer runs
/// dry; every packet read is written back for a 3.1.1 and a 5 client (the router forwards a
/// publish to subscribers of either version).
///
/// Input: byte 0 picks the start (CONNECT or an established 3.1.1/5 session), byte 1 the
/// maximum packet size; the rest is the stream of bytes from the client.
pub fn mqtt_codec(data: &[u8]) {
    let (Some(&mode), Some(&size)) = (data.first(), data.get(1)) else {
        return;
    };
    let max = 16usize << (size % 16);
    let mut buf = BytesMut::from(&data[2..]);
    let version = match mode % 3 {
        0 => match codec::read_connect(&mut buf, max) {
            Ok(Some((version, packet))) => {
                write_back(packet);
                version
            }
            Ok(None) | Err(_) => return,
        },
        1 => Version::V311,
        _ => Version::V5,
    };
    let codec = Codec::new(version);
    loop {
        let before = buf.len();
        match codec.read(&mut buf, max) {
            Ok(Some(frame)) => {
                assert!(
                    buf.len() < before,
                    "a frame was read without consuming bytes"
                );
                if let Some(header) = frame.publish {
                    assert!(header.qos <= 2, "QoS read from the frame");
                    assert!(header.qos == 0 || header.pkid != 0, "packet id 0 accepted");
                }
                write_back(frame.packet);
            }
            Ok(None) | Err(_) => return,
        }
    }
}

fn write_back(packet: rumqttd::protocol::Packet) {
    let mut out = BytesMut::new();
    let _ = Codec::new(Version::V5).write(packet.clone(), &mut out);
    let _ = Codec::new(Version::V311).write(packet, &mut out);
}

/// The shard-log block decoder on a block read from disk (a torn or corrupted file).
///
/// Input: 8 bytes of block key, 1 byte choosing where the read starts, then the block.
pub fn block_decode(data: &[u8]) {
    if data.len() < 9 {
        return;
    }
    let key = u64::from_le_bytes(data[..8].try_into().unwrap_or_default());
    let from = Position(key.saturating_add(u64::from(data[8] % 4)).saturating_sub(1));
    let bytes = &data[9..];
    let summary = block::summarize(key, bytes);
    let payload = block::payload_bytes(key, bytes);
    match block::decode(key, bytes, Position(0)) {
        Ok(Decoded::Records(records)) => {
            let summary = summary.expect("a decodable block has a summary");
            assert_eq!(summary.records, records.len() as u64, "record count");
            let total: u64 = records
                .iter()
                .map(|r| (r.partition_key.len() + r.data.len()) as u64)
                .sum();
            assert_eq!(payload.expect("payload of a decodable block"), total);
            if let Some(last) = records.last() {
                assert!(last.position >= Position(key), "positions start at the key");
            }
            // A read from a later position returns the records at or after it.
            if let Ok(Decoded::Records(tail)) = block::decode(key, bytes, from) {
                let expected = records.iter().filter(|r| r.position >= from).count();
                assert_eq!(tail.len(), expected, "records at or after {from:?}");
            }
        }
        Ok(Decoded::Large { data_len, .. }) => {
            let summary = summary.expect("a decodable block has a summary");
            assert!(summary.large && summary.records == 1);
            assert!(payload.expect("payload of a large head") >= data_len);
        }
        Err(_) => {}
    }
}

const FUZZ_KEY_ID: &str = "AKIDFUZZ";
const FUZZ_SECRET: &str = "fuzz/secret";

fn fuzz_verifier() -> SigV4Verifier {
    SigV4Verifier::new(vec![(FUZZ_KEY_ID.into(), FUZZ_SECRET.into())])
}

/// SigV4 verification of an arbitrary request: must answer, never panic.
///
/// Input, as text lines: the method, the request target (path and query), then `name: value`
/// headers up to an empty line, then the body. The clock is set to the request's own
/// `X-Amz-Date` when it has one, so that the fuzzer gets past the skew check.
pub fn sigv4_verify(data: &[u8]) {
    let Some((parts, body)) = request_from_bytes(data) else {
        return;
    };
    let verifier = fuzz_verifier();
    let now = parts
        .headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| chrono::NaiveDateTime::parse_from_str(s, "%Y%m%dT%H%M%SZ").ok())
        .and_then(|t| u64::try_from(t.and_utc().timestamp()).ok())
        .map_or(UNIX_EPOCH + Duration::from_secs(1_700_000_000), |s| {
            UNIX_EPOCH + Duration::from_secs(s)
        });
    let result = verifier.verify(&parts, body, now);
    if let Err(e) = &result {
        // Every refusal maps to an AWS error type and status.
        let _ = (e.aws_error_type(), e.http_status(), e.to_string());
    }
}

fn request_from_bytes(data: &[u8]) -> Option<(http::request::Parts, &[u8])> {
    let mut rest = data;
    let mut line = || -> Option<&[u8]> {
        let at = rest.iter().position(|&b| b == b'\n')?;
        let (l, r) = rest.split_at(at);
        rest = &r[1..];
        Some(l)
    };
    let method = line()?;
    let target = line()?;
    let mut builder = http::Request::builder()
        .method(http::Method::from_bytes(method).ok()?)
        .uri(http::Uri::try_from(target).ok()?);
    while let Some(header) = line() {
        if header.is_empty() {
            break;
        }
        let colon = header.iter().position(|&b| b == b':')?;
        let name = http::HeaderName::from_bytes(&header[..colon]).ok()?;
        let value = http::HeaderValue::from_bytes(header[colon + 1..].trim_ascii_start()).ok()?;
        builder = builder.header(name, value);
    }
    let (parts, ()) = builder.body(()).ok()?.into_parts();
    Some((parts, rest))
}

/// A request signed by AWS's own signer (aws-sigv4) from arbitrary parts must verify, and
/// must stop verifying when its body changes.
pub fn sigv4_signed(input: &SignedRequest) -> Result<(), String> {
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4::SigningParams;

    let identity = Credentials::new(FUZZ_KEY_ID, FUZZ_SECRET, None, None, "fuzz").into();
    let signed_at = UNIX_EPOCH + Duration::from_secs(input.time_s);
    let region = if input.region.is_empty() {
        "us-east-1"
    } else {
        &input.region
    };
    let service = if input.firehose {
        "firehose"
    } else {
        "kinesis"
    };
    let params = SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(signed_at)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let target = input.target();
    let mut builder = http::Request::builder()
        .method(input.method.as_str())
        .uri(format!("http://gateway.local{target}"))
        .header("host", "gateway.local");
    for (name, value) in &input.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let Ok(mut request) = builder.body(()) else {
        return Ok(()); // not a request an HTTP client can send
    };
    let headers: Vec<(&str, &str)> = request
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    let Ok(signable) = SignableRequest::new(
        input.method.as_str(),
        request.uri().to_string(),
        headers.into_iter(),
        SignableBody::Bytes(&input.body),
    ) else {
        return Ok(());
    };
    let Ok(signed) = sign(signable, &params) else {
        return Ok(());
    };
    let (instructions, _) = signed.into_parts();
    instructions.apply_to_request_http1x(&mut request);
    let (mut parts, ()) = request.into_parts();
    // As a server sees it: an origin-form request target.
    parts.uri = target
        .parse()
        .map_err(|e| format!("target {target:?}: {e}"))?;
    let verifier = fuzz_verifier();
    verifier
        .verify(&parts, &input.body, signed_at)
        .map_err(|e| format!("a request signed by aws-sigv4 was refused: {e}"))?;
    let mut altered = input.body.clone();
    altered.push(b'!');
    match verifier.verify(&parts, &altered, signed_at) {
        Err(AuthError::SignatureMismatch) => Ok(()),
        other => Err(format!("an altered body was not refused: {other:?}")),
    }
}

/// The parts of a request for [`sigv4_signed`].
#[derive(Debug, Clone)]
pub struct SignedRequest {
    pub method: String,
    pub path_segments: Vec<String>,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub region: String,
    pub firehose: bool,
    pub time_s: u64,
}

impl SignedRequest {
    /// The origin-form request target: each path segment and query part percent-encoded as
    /// an HTTP client does (unreserved characters kept).
    pub fn target(&self) -> String {
        let mut out = String::new();
        for segment in &self.path_segments {
            out.push('/');
            out.push_str(&encode(segment));
        }
        if out.is_empty() {
            out.push('/');
        }
        for (i, (k, v)) in self.query.iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            out.push_str(&encode(k));
            out.push('=');
            out.push_str(&encode(v));
        }
        out
    }

    /// Builds the parts from fuzzer bytes (fields separated by 0xff).
    pub fn from_bytes(data: &[u8]) -> Option<SignedRequest> {
        let mut fields = data.split(|&b| b == 0xff);
        let head = fields.next()?;
        let flags = *head.first()?;
        let time_s = 1_000_000_000
            + u64::from(u32::from_le_bytes(
                head.get(1..5)?.try_into().unwrap_or_default(),
            ));
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let method = ["POST", "GET", "PUT", "DELETE"][usize::from(flags & 3)].to_owned();
        let region = text(fields.next()?)
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        let path_segments = text(fields.next()?)
            .split('/')
            .map(str::to_owned)
            .filter(|s| !s.is_empty() && s != "." && s != "..")
            .collect();
        let query = text(fields.next()?)
            .split('&')
            .filter(|s| !s.is_empty())
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (kv.to_owned(), String::new()),
            })
            .collect();
        let headers = text(fields.next()?)
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(':')?;
                let name: String = k
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect::<String>()
                    .to_ascii_lowercase();
                let value: String = v
                    .chars()
                    .filter(|c| c.is_ascii_graphic() || *c == ' ')
                    .collect();
                let reserved = ["host", "authorization", "x-amz-date", "content-length"];
                let known = name.starts_with("x-amz-") || reserved.contains(&name.as_str());
                (!name.is_empty() && !known).then(|| ("x-fz-".to_owned() + &name, value))
            })
            .collect();
        let body = fields.collect::<Vec<_>>().join(&0xffu8);
        Some(SignedRequest {
            method,
            path_segments,
            query,
            headers,
            body,
            region,
            firehose: flags & 4 != 0,
            time_s,
        })
    }
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A Kinesis or Firehose request body decoded as every operation's input, in JSON and CBOR,
/// and the strings in it that the handlers parse further (hash keys, sequence numbers, shard
/// iterators, S3 prefixes).
pub fn api_request(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let wire = if mode & 1 == 0 {
        Wire::Json
    } else {
        Wire::Cbor
    };
    macro_rules! decode_all {
        ($($t:ty),*) => {$( let _ = wire.decode::<$t>(body); )*};
    }
    decode_all!(
        kt::CreateStreamInput,
        kt::DeleteStreamInput,
        kt::DescribeStreamInput,
        kt::ListStreamsInput,
        kt::ListShardsInput,
        kt::SplitShardInput,
        kt::MergeShardsInput,
        kt::UpdateShardCountInput,
        kt::RetentionInput,
        kt::AddTagsInput,
        kt::ListTagsInput,
        kt::RemoveTagsInput
    );
    if let Ok(input) = wire.decode::<kt::PutRecordInput>(body) {
        strings(
            input.explicit_hash_key.as_deref(),
            input.sequence_number_for_ordering.as_deref(),
        );
    }
    if let Ok(input) = wire.decode::<kt::PutRecordsInput>(body) {
        for entry in input.records.unwrap_or_default() {
            strings(
                entry.explicit_hash_key.as_deref(),
                entry.partition_key.as_deref(),
            );
        }
    }
    if let Ok(input) = wire.decode::<kt::GetShardIteratorInput>(body) {
        strings(
            input.shard_id.as_deref(),
            input.starting_sequence_number.as_deref(),
        );
    }
    if let Ok(input) = wire.decode::<kt::GetRecordsInput>(body) {
        if let Some(text) = input.shard_iterator.as_deref() {
            let _ = ShardIterator::decode(text, b"fuzz key", 1_700_000_000_000, 300_000);
        }
    }
    crate::api::firehose::decode_inputs(wire, body);
}

fn strings(a: Option<&str>, b: Option<&str>) {
    for text in [a, b].into_iter().flatten() {
        let _ = parse_explicit_hash_key(text);
        let _ = SequenceNumber::from_str(text);
        let _ = crate::streams::hash_key_of(text);
    }
}

/// Valid inputs for each target: the starting corpus of the fuzzers (fuzz/seeds, written by
/// `cargo test --features fuzzing -- --ignored write_fuzz_seeds`) and of the property tests.
pub mod seeds {
    use super::*;
    use crate::storage::block::PendingRecord;

    /// MQTT byte streams, with the two leading bytes [`mqtt_codec`] reads.
    pub fn mqtt() -> Vec<Vec<u8>> {
        let connect_v4: &[u8] = &[
            0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 1, b'c',
        ];
        let connect_v5: &[u8] = &[
            0x10, 32, 0, 4, b'M', b'Q', b'T', b'T', 5, 0xc6, 0,
            60, // user, password, will, clean
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
            b"\x00\x01\x02\x03\x04\xffeu-west-1\xffa/b c\xffx=1&y=/\xffx-custom: a  b\xff{}"
                .to_vec(),
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
}
