//! Sequence numbers: 56-digit decimal strings, strictly increasing within a shard.
//!
//! Inside kinedge a record's place in its shard is a [`Position`]: a u64 whose high bits are
//! the arrival time in milliseconds and whose low 20 bits count records within that
//! millisecond. Positions only grow (the writer never goes back even if the clock does), so
//! an `AT_TIMESTAMP` iterator is a position, and the arrival time is read off the position.
//!
//! On the wire a sequence number is `4` + the shard index (12 digits) + the position (43
//! digits): 56 digits like AWS's, so clients that parse them as big integers keep working,
//! and a sequence number names the shard it came from.

use std::fmt;

/// Low bits of a position that count records within one millisecond.
pub const SUB_MS_BITS: u32 = 20;

/// A record's place in its shard log.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Position(pub u64);

impl Position {
    pub const ZERO: Position = Position(0);

    /// The first position that can belong to a record arriving at `ms` (epoch milliseconds).
    pub fn at_millis(ms: u64) -> Position {
        Position(ms.min(u64::MAX >> SUB_MS_BITS) << SUB_MS_BITS)
    }

    /// The arrival time encoded in the position (epoch milliseconds).
    pub fn millis(self) -> u64 {
        self.0 >> SUB_MS_BITS
    }

    pub fn next(self) -> Position {
        Position(self.0.saturating_add(1))
    }

    /// The next position to hand out after `self`, for a record arriving at `now_ms`.
    pub fn successor_at(self, now_ms: u64) -> Position {
        self.next().max(Position::at_millis(now_ms))
    }
}

/// A sequence number: the shard it belongs to and the position in that shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SequenceNumber {
    pub shard_index: u64,
    pub position: Position,
}

const SHARD_DIGITS: usize = 12;
const POSITION_DIGITS: usize = 43;
pub const SEQUENCE_DIGITS: usize = 1 + SHARD_DIGITS + POSITION_DIGITS;

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "4{:0sw$}{:0pw$}",
            self.shard_index,
            self.position.0,
            sw = SHARD_DIGITS,
            pw = POSITION_DIGITS
        )
    }
}

/// Why a string is not a sequence number of this gateway.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SequenceNumberError {
    #[error("sequence number `{0}` is not a 56-digit kinedge sequence number")]
    Malformed(String),
}

impl std::str::FromStr for SequenceNumber {
    type Err = SequenceNumberError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let malformed = || SequenceNumberError::Malformed(text.chars().take(80).collect());
        if text.len() != SEQUENCE_DIGITS
            || !text.starts_with('4')
            || !text.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(malformed());
        }
        let shard_index = text[1..1 + SHARD_DIGITS]
            .parse::<u64>()
            .map_err(|_| malformed())?;
        let position = text[1 + SHARD_DIGITS..]
            .parse::<u64>()
            .map_err(|_| malformed())?;
        Ok(SequenceNumber {
            shard_index,
            position: Position(position),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_width() {
        let seq = SequenceNumber {
            shard_index: 7,
            position: Position::at_millis(1_764_000_000_000).next(),
        };
        let text = seq.to_string();
        assert_eq!(text.len(), 56);
        assert_eq!(text.parse::<SequenceNumber>().unwrap(), seq);
        let max = SequenceNumber {
            shard_index: 999_999_999_999,
            position: Position(u64::MAX),
        };
        assert_eq!(max.to_string().len(), 56);
        assert_eq!(max.to_string().parse::<SequenceNumber>().unwrap(), max);
    }

    #[test]
    fn order_of_strings_is_order_of_numbers() {
        let a = SequenceNumber {
            shard_index: 1,
            position: Position(5),
        };
        let b = SequenceNumber {
            shard_index: 1,
            position: Position(6),
        };
        assert_eq!(a.to_string().len(), b.to_string().len());
        assert!(a.to_string() < b.to_string());
    }

    #[test]
    fn positions_never_go_back() {
        let p = Position::at_millis(2_000);
        // clock went backwards: still strictly increasing
        let q = p.successor_at(1_000);
        assert!(q > p);
        assert_eq!(q.millis(), 2_000);
        // clock went forward
        let r = q.successor_at(3_000);
        assert_eq!(r, Position::at_millis(3_000));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "1",
            "abc",
            &"5".repeat(56),
            &"4".repeat(57),
            &format!("4{}", "x".repeat(55)),
        ] {
            assert!(bad.parse::<SequenceNumber>().is_err(), "{bad}");
        }
        // a position that overflows u64 is malformed, not a wrap-around
        let overflow = format!("4{:012}{}", 0, "9".repeat(43));
        assert!(overflow.parse::<SequenceNumber>().is_err());
    }
}
