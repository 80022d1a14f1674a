//! The `NextToken`s of ListFragments and GetImages: where the next page starts, with the query
//! it continues, as base64 (the model's pattern `[a-zA-Z0-9+/]+={0,2}`).
//!
//! A token is not a secret (it only says where to go on in a stream the caller may read
//! anyway), but one that does not decode, or that belongs to another query, is refused with
//! InvalidArgumentException rather than read as something else.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::Origin;

const LIST_TAG: &[u8; 4] = b"LF1\0";
const IMAGES_TAG: &[u8; 4] = b"GI1\0";

/// Where the next page of a ListFragments goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ListPosition {
    /// The query's selector: origin and `[start, end]`; `None` lists every fragment.
    pub selector: Option<(Origin, i64, i64)>,
    /// The last fragment number listed.
    pub after: u64,
}

impl ListPosition {
    pub fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(4 + 1 + 8 + 8 + 8);
        bytes.extend_from_slice(LIST_TAG);
        let (origin, start, end) = match self.selector {
            None => (0u8, 0, 0),
            Some((Origin::Producer, start, end)) => (1, start, end),
            Some((Origin::Server, start, end)) => (2, start, end),
        };
        bytes.push(origin);
        bytes.extend_from_slice(&start.to_be_bytes());
        bytes.extend_from_slice(&end.to_be_bytes());
        bytes.extend_from_slice(&self.after.to_be_bytes());
        STANDARD.encode(bytes)
    }

    pub fn decode(token: &str) -> Option<ListPosition> {
        let bytes = STANDARD.decode(token).ok()?;
        let rest = bytes.strip_prefix(LIST_TAG.as_slice())?;
        let (&origin, rest) = rest.split_first()?;
        if rest.len() != 24 {
            return None;
        }
        let start = i64::from_be_bytes(rest[0..8].try_into().ok()?);
        let end = i64::from_be_bytes(rest[8..16].try_into().ok()?);
        let after = u64::from_be_bytes(rest[16..24].try_into().ok()?);
        let selector = match origin {
            0 => None,
            1 => Some((Origin::Producer, start, end)),
            2 => Some((Origin::Server, start, end)),
            _ => return None,
        };
        Some(ListPosition { selector, after })
    }
}

/// Where the next page of a GetImages goes on: the next sampling time of the query
/// `[start, end]` every `interval` ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ImagesPosition {
    pub start: i64,
    pub end: i64,
    pub interval: i64,
    pub next: i64,
}

impl ImagesPosition {
    pub fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(4 + 32);
        bytes.extend_from_slice(IMAGES_TAG);
        for value in [self.start, self.end, self.interval, self.next] {
            bytes.extend_from_slice(&value.to_be_bytes());
        }
        STANDARD.encode(bytes)
    }

    pub fn decode(token: &str) -> Option<ImagesPosition> {
        let bytes = STANDARD.decode(token).ok()?;
        let rest = bytes.strip_prefix(IMAGES_TAG.as_slice())?;
        if rest.len() != 32 {
            return None;
        }
        let field = |i: usize| -> Option<i64> {
            Some(i64::from_be_bytes(rest[i * 8..i * 8 + 8].try_into().ok()?))
        };
        Some(ImagesPosition {
            start: field(0)?,
            end: field(1)?,
            interval: field(2)?,
            next: field(3)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches_model_pattern(token: &str) -> bool {
        let body = token.trim_end_matches('=');
        token.len() - body.len() <= 2
            && !body.is_empty()
            && body
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
    }

    #[test]
    fn list_positions_round_trip() {
        for position in [
            ListPosition {
                selector: None,
                after: 7,
            },
            ListPosition {
                selector: Some((Origin::Producer, -5, i64::MAX)),
                after: u64::MAX,
            },
            ListPosition {
                selector: Some((Origin::Server, 1_700_000_000_000, 1_700_000_060_000)),
                after: 0,
            },
        ] {
            let token = position.encode();
            assert!(matches_model_pattern(&token), "{token}");
            assert_eq!(ListPosition::decode(&token), Some(position));
        }
    }

    #[test]
    fn images_positions_round_trip() {
        let position = ImagesPosition {
            start: 1_700_000_000_000,
            end: 1_700_000_300_000,
            interval: 200,
            next: 1_700_000_005_000,
        };
        let token = position.encode();
        assert!(matches_model_pattern(&token), "{token}");
        assert_eq!(ImagesPosition::decode(&token), Some(position));
    }

    #[test]
    fn foreign_or_broken_tokens_do_not_decode() {
        let list = ListPosition {
            selector: None,
            after: 1,
        }
        .encode();
        let images = ImagesPosition {
            start: 0,
            end: 1,
            interval: 1,
            next: 0,
        }
        .encode();
        assert_eq!(ImagesPosition::decode(&list), None);
        assert_eq!(ListPosition::decode(&images), None);
        for bad in ["", "abc", "!!!!", &list[..list.len() - 4]] {
            assert_eq!(ListPosition::decode(bad), None, "{bad}");
            assert_eq!(ImagesPosition::decode(bad), None, "{bad}");
        }
        // An unknown origin byte.
        let mut bytes = STANDARD.decode(&list).unwrap();
        bytes[4] = 9;
        assert_eq!(ListPosition::decode(&STANDARD.encode(bytes)), None);
    }
}
