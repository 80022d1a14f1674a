//! Shard iterators: opaque, signed, expiring read positions.
//!
//! An iterator names a stream (by its unique id, so a re-created stream of the same name does
//! not accept old iterators), a shard, the next position to read and when it was issued. It
//! is signed with the gateway's secret so that a forged, altered or foreign iterator is
//! refused, and it expires five minutes after it was issued, as in Kinesis.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::sequence::Position;

/// How long an iterator stays valid (Kinesis: 5 minutes).
pub const ITERATOR_TTL_MS: u64 = 5 * 60 * 1000;

const VERSION: u8 = 1;
const BODY_LEN: usize = 1 + 8 * 4;
const TAG_LEN: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardIterator {
    pub stream_uid: u64,
    pub shard_index: u64,
    /// The first position the next read returns (records at or after it).
    pub position: Position,
    pub issued_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IteratorError {
    #[error("Invalid ShardIterator: it is not an iterator issued by this gateway.")]
    Malformed,
    #[error("Invalid ShardIterator: its signature does not match; it was altered or issued by another gateway.")]
    Forged,
    #[error("Iterator expired. The iterator was created at time {issued_ms} while right now it is {now_ms} which is further in the future than the tolerated delay of {ttl_ms} milliseconds.")]
    Expired {
        issued_ms: u64,
        now_ms: u64,
        ttl_ms: u64,
    },
}

type HmacSha256 = Hmac<Sha256>;

fn tag(key: &[u8], body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(body);
    mac
}

impl ShardIterator {
    /// The opaque string form handed to clients (68 characters).
    pub fn encode(&self, key: &[u8]) -> String {
        let mut bytes = Vec::with_capacity(BODY_LEN + TAG_LEN);
        bytes.push(VERSION);
        bytes.extend_from_slice(&self.stream_uid.to_be_bytes());
        bytes.extend_from_slice(&self.shard_index.to_be_bytes());
        bytes.extend_from_slice(&self.position.0.to_be_bytes());
        bytes.extend_from_slice(&self.issued_ms.to_be_bytes());
        let mac = tag(key, &bytes).finalize().into_bytes();
        bytes.extend_from_slice(&mac[..TAG_LEN]);
        STANDARD.encode(bytes)
    }

    /// Checks the signature and age of an iterator string.
    pub fn decode(text: &str, key: &[u8], now_ms: u64, ttl_ms: u64) -> Result<Self, IteratorError> {
        let bytes = STANDARD
            .decode(text.as_bytes())
            .map_err(|_| IteratorError::Malformed)?;
        if bytes.len() != BODY_LEN + TAG_LEN || bytes[0] != VERSION {
            return Err(IteratorError::Malformed);
        }
        let (body, given) = bytes.split_at(BODY_LEN);
        tag(key, body)
            .verify_truncated_left(given)
            .map_err(|_| IteratorError::Forged)?;
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&body[1 + 8 * i..9 + 8 * i]);
            u64::from_be_bytes(b)
        };
        let it = ShardIterator {
            stream_uid: word(0),
            shard_index: word(1),
            position: Position(word(2)),
            issued_ms: word(3),
        };
        if now_ms.saturating_sub(it.issued_ms) > ttl_ms {
            return Err(IteratorError::Expired {
                issued_ms: it.issued_ms,
                now_ms,
                ttl_ms,
            });
        }
        Ok(it)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn sample() -> ShardIterator {
        ShardIterator {
            stream_uid: 9,
            shard_index: 2,
            position: Position(123_456),
            issued_ms: 1_000_000,
        }
    }

    #[test]
    fn round_trip() {
        let text = sample().encode(KEY);
        assert!(text.len() <= 512);
        assert_eq!(
            ShardIterator::decode(&text, KEY, 1_000_500, ITERATOR_TTL_MS),
            Ok(sample())
        );
    }

    #[test]
    fn refuses_tampering_foreign_and_garbage() {
        let text = sample().encode(KEY);
        let mut chars: Vec<char> = text.chars().collect();
        chars[20] = if chars[20] == 'A' { 'B' } else { 'A' };
        let tampered: String = chars.into_iter().collect();
        assert_eq!(
            ShardIterator::decode(&tampered, KEY, 1_000_500, ITERATOR_TTL_MS),
            Err(IteratorError::Forged)
        );
        assert_eq!(
            ShardIterator::decode(&text, b"another gateway", 1_000_500, ITERATOR_TTL_MS),
            Err(IteratorError::Forged)
        );
        for garbage in ["", "not base64 !!", "AAAA", &"A".repeat(68)] {
            assert!(ShardIterator::decode(garbage, KEY, 0, ITERATOR_TTL_MS).is_err());
        }
    }

    #[test]
    fn expires() {
        let text = sample().encode(KEY);
        let late = 1_000_000 + ITERATOR_TTL_MS + 1;
        assert!(matches!(
            ShardIterator::decode(&text, KEY, late, ITERATOR_TTL_MS),
            Err(IteratorError::Expired { .. })
        ));
    }
}
