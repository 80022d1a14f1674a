//! Hash keys: how a partition key (or an explicit hash key) picks a shard.
//!
//! Kinesis reads MD5(partition key as UTF-8) as a big-endian 128-bit unsigned number and sends
//! the record to the open shard whose inclusive hash-key range contains it.

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

/// The hash key of a partition key: MD5 as a big-endian u128.
pub fn hash_key_of(partition_key: &str) -> u128 {
    let digest = Md5::digest(partition_key.as_bytes());
    u128::from_be_bytes(digest.into())
}

/// Parses an `ExplicitHashKey`: a decimal number in `0..=2^128-1`.
pub fn parse_explicit_hash_key(text: &str) -> Option<u128> {
    if text.is_empty() || text.len() > 39 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u128>().ok()
}

/// An inclusive range of hash keys owned by one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashRange {
    pub start: u128,
    pub end: u128,
}

impl HashRange {
    pub const FULL: HashRange = HashRange {
        start: 0,
        end: u128::MAX,
    };

    pub fn contains(&self, key: u128) -> bool {
        self.start <= key && key <= self.end
    }

    /// True when `other` starts right after this range ends.
    pub fn is_followed_by(&self, other: &HashRange) -> bool {
        self.end.checked_add(1) == Some(other.start)
    }

    /// `n` ranges splitting the whole space evenly, as Kinesis does at creation:
    /// range i starts at floor(2^128 / n) * i and the last one ends at 2^128 - 1.
    pub fn even_split(n: u32) -> Vec<HashRange> {
        Self::FULL.split_evenly(n)
    }

    /// Splits this range into `n` contiguous pieces of (nearly) equal width.
    pub fn split_evenly(&self, n: u32) -> Vec<HashRange> {
        if n <= 1 {
            return vec![*self];
        }
        let n = u128::from(n);
        // Width of the range as a count; the full space (2^128) does not fit in u128, so
        // compute the step from (end - start) / n, which matches floor(2^128/n) for the full
        // range except when n divides 2^128 exactly, handled by the +1 correction below.
        let span_minus_one = self.end - self.start;
        let mut step = span_minus_one / n;
        if (span_minus_one % n) + 1 == n {
            step += 1;
        }
        (0..n)
            .map(|i| {
                let start = self.start + step * i;
                let end = if i + 1 == n {
                    self.end
                } else {
                    self.start + step * (i + 1) - 1
                };
                HashRange { start, end }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_known_values() {
        // MD5("") = d41d8cd98f00b204e9800998ecf8427e
        assert_eq!(hash_key_of(""), 0xd41d8cd98f00b204e9800998ecf8427e);
        // MD5("a") = 0cc175b9c0f1b6a831c399e269772661
        assert_eq!(hash_key_of("a"), 0x0cc175b9c0f1b6a831c399e269772661);
        // MD5("sensor-1") computed with coreutils md5sum
        assert_eq!(
            hash_key_of("The quick brown fox jumps over the lazy dog"),
            0x9e107d9d372bb6826bd81d3542a419d6
        );
        // UTF-8 bytes are hashed, not UTF-16
        assert_eq!(
            hash_key_of("é"),
            u128::from_be_bytes(Md5::digest("é".as_bytes()).into())
        );
    }

    #[test]
    fn even_split_matches_kinesis() {
        let two = HashRange::even_split(2);
        assert_eq!(two[0].start, 0);
        assert_eq!(two[0].end, (1u128 << 127) - 1);
        assert_eq!(two[1].start, 1u128 << 127);
        assert_eq!(two[1].end, u128::MAX);

        for n in [1u32, 3, 4, 7, 10, 64, 1000] {
            let ranges = HashRange::even_split(n);
            assert_eq!(ranges.len(), n as usize);
            if n == 1 {
                assert_eq!(ranges[0], HashRange::FULL);
                continue;
            }
            // floor(2^128 / n) computed without overflow: (2^128-1)/n, +1 if n divides 2^128
            let step = if (u128::MAX % u128::from(n)) + 1 == u128::from(n) {
                u128::MAX / u128::from(n) + 1
            } else {
                u128::MAX / u128::from(n)
            };
            for (i, r) in ranges.iter().enumerate() {
                assert_eq!(r.start, step * i as u128, "n={n} i={i}");
            }
            assert_eq!(ranges.last().unwrap().end, u128::MAX);
            for pair in ranges.windows(2) {
                assert!(pair[0].is_followed_by(&pair[1]));
            }
        }
    }

    #[test]
    fn explicit_hash_key_bounds() {
        assert_eq!(parse_explicit_hash_key("0"), Some(0));
        assert_eq!(
            parse_explicit_hash_key("340282366920938463463374607431768211455"),
            Some(u128::MAX)
        );
        assert_eq!(
            parse_explicit_hash_key("340282366920938463463374607431768211456"),
            None
        );
        assert_eq!(parse_explicit_hash_key("-1"), None);
        assert_eq!(parse_explicit_hash_key("12a"), None);
        assert_eq!(parse_explicit_hash_key(""), None);
    }
}
