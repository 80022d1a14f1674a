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
use crate::ingest::mqtt::codec::{self, Codec, Version};
use crate::storage::block::{self, Decoded};
use crate::streams::{parse_explicit_hash_key, Position, SequenceNumber, ShardIterator};

pub mod seeds;
mod sigv4;
#[cfg(test)]
mod tests;

#[cfg(test)]
use sigv4::{fuzz_verifier, request_from_bytes};
pub use sigv4::{sigv4_signed, sigv4_verify, SignedRequest};
use sigv4::{FUZZ_KEY_ID, FUZZ_SECRET};

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
