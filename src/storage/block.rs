//! The on-disk form of a shard log: records packed into blocks.
//!
//! Each commit writes, per shard, one or more blocks: a redb value keyed by the position of
//! its first record. Packing many records into one value keeps B-tree work and page writes
//! per record low (an SD card wears by bytes written), and readers decode a block in one go.
//! Blocks stay below [`BLOCK_TARGET_BYTES`]; a record too large for a block gets a block of
//! its own that holds only its header, with the data split into chunks of [`CHUNK_BYTES`]
//! (128 KiB less room for redb's overhead) in the shard's chunk table, because redb rounds a
//! large value up to a power-of-two page: each chunk fills one 128 KiB page.
//!
//! Block layout (integers are LEB128 varints):
//! ```text
//! records block: 0x01 count last_delta { position_delta key_len data_len key data }*count
//! large record:  0x02 key_len key data_len chunk_count
//! sealed block:  0x03 ...  (an encrypted records block or large head: see `crypt`)
//! ```
//! `position_delta` is relative to the previous record (the first to the block key), and
//! `last_delta` is the last record's position minus the block key.

use bytes::Bytes;

use crate::streams::Position;

/// redb's page size, and the largest page a block goes into.
const PAGE_BYTES: usize = 4096;
const MAX_BLOCK_PAGE_BYTES: usize = 64 * 1024;
/// What a leaf page holding one block needs besides the block: page header, the value's
/// end offset and the fixed-width key, with room to spare.
const LEAF_OVERHEAD_BYTES: usize = 64;
/// Largest block (fills a 64 KiB page).
pub const BLOCK_TARGET_BYTES: usize = MAX_BLOCK_PAGE_BYTES - LEAF_OVERHEAD_BYTES;
/// A block's own header at most: type, record count and last-position delta.
pub const BLOCK_HEADER_BYTES: usize = 16;
/// Data of a large record is stored in chunks of this size (a 128 KiB page each).
pub const CHUNK_BYTES: usize = 128 * 1024 - 256;

const RECORDS: u8 = 1;
const LARGE: u8 = 2;
use super::crypt::SEALED;

/// A record as read back from a shard log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub position: Position,
    pub partition_key: String,
    pub data: Bytes,
    /// Stored encrypted (a sealed block), as GetRecords reports it.
    pub encrypted: bool,
}

/// A record about to be written.
#[derive(Debug, Clone)]
pub struct PendingRecord {
    pub position: Position,
    pub partition_key: String,
    pub data: Bytes,
}

#[derive(Debug, thiserror::Error)]
#[error("shard log block at position {key} is corrupt: {what}")]
pub struct CorruptBlock {
    pub key: u64,
    pub what: &'static str,
}

/// Reads a varint at `*at`, moving `at` past it.
pub(crate) fn read_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// The bytes a record adds to a records block (at most; the position delta is usually 1 byte).
pub fn encoded_record_bytes(key_len: usize, data_len: usize) -> usize {
    10 + varint_len(key_len as u64) + varint_len(data_len as u64) + key_len + data_len
}

/// The size to fill the next block up to, given `remaining` bytes of records to write.
///
/// redb stores a value larger than a page in a page of the next power of two, so a block
/// is cut to fill such a page: 44 KiB of records become a 32 KiB block, an 8 KiB block and
/// a small rest, instead of one 44 KiB block in a 64 KiB page. A rest smaller than a page
/// becomes a small block that shares a leaf with its neighbours.
pub fn block_cap(remaining: usize) -> usize {
    let needed = remaining + BLOCK_HEADER_BYTES + LEAF_OVERHEAD_BYTES;
    if needed >= MAX_BLOCK_PAGE_BYTES {
        return BLOCK_TARGET_BYTES - BLOCK_HEADER_BYTES;
    }
    if needed <= PAGE_BYTES {
        return remaining;
    }
    let mut page = PAGE_BYTES;
    while page * 2 <= needed {
        page *= 2;
    }
    page - LEAF_OVERHEAD_BYTES - BLOCK_HEADER_BYTES
}

/// Exact bytes a record adds to a records block, given its position delta.
pub fn record_bytes(delta: u64, key_len: usize, data_len: usize) -> usize {
    varint_len(delta)
        + varint_len(key_len as u64)
        + varint_len(data_len as u64)
        + key_len
        + data_len
}

/// True if a record this large goes into a block of its own with chunked data.
pub fn is_large(key_len: usize, data_len: usize) -> bool {
    encoded_record_bytes(key_len, data_len) + 16 > BLOCK_TARGET_BYTES
}

/// Encodes consecutive records (positions increasing) into a records block.
pub fn encode_records(records: &[PendingRecord]) -> Vec<u8> {
    let first = records.first().map_or(0, |r| r.position.0);
    let last = records.last().map_or(0, |r| r.position.0);
    let body: usize = records
        .iter()
        .map(|r| encoded_record_bytes(r.partition_key.len(), r.data.len()))
        .sum();
    let mut out = Vec::with_capacity(body + 24);
    out.push(RECORDS);
    put_varint(&mut out, records.len() as u64);
    put_varint(&mut out, last - first);
    let mut previous = first;
    for r in records {
        put_varint(&mut out, r.position.0 - previous);
        previous = r.position.0;
        put_varint(&mut out, r.partition_key.len() as u64);
        put_varint(&mut out, r.data.len() as u64);
        out.extend_from_slice(r.partition_key.as_bytes());
        out.extend_from_slice(&r.data);
    }
    out
}

/// Encodes the head block of a large record; its data goes into [`chunks`].
pub fn encode_large_head(record: &PendingRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + record.partition_key.len());
    out.push(LARGE);
    put_varint(&mut out, record.partition_key.len() as u64);
    out.extend_from_slice(record.partition_key.as_bytes());
    put_varint(&mut out, record.data.len() as u64);
    put_varint(&mut out, chunk_count(record.data.len()) as u64);
    out
}

pub fn chunk_count(data_len: usize) -> usize {
    data_len.div_ceil(CHUNK_BYTES).max(1)
}

/// The data of a large record cut into chunks.
pub fn chunks(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let empty: &[u8] = &[];
    let first = if data.is_empty() { Some(empty) } else { None };
    first.into_iter().chain(data.chunks(CHUNK_BYTES))
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    key: u64,
}

impl<'a> Cursor<'a> {
    fn corrupt(&self, what: &'static str) -> CorruptBlock {
        CorruptBlock {
            key: self.key,
            what,
        }
    }

    fn varint(&mut self) -> Result<u64, CorruptBlock> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self
                .bytes
                .get(self.at)
                .ok_or_else(|| self.corrupt("truncated varint"))?;
            self.at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.corrupt("varint too long"))
    }

    fn take(&mut self, n: u64) -> Result<std::ops::Range<usize>, CorruptBlock> {
        let n = usize::try_from(n).map_err(|_| self.corrupt("length overflow"))?;
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| self.corrupt("truncated record"))?;
        let range = self.at..end;
        self.at = end;
        Ok(range)
    }

    fn string(&mut self, n: u64) -> Result<String, CorruptBlock> {
        let range = self.take(n)?;
        String::from_utf8(self.bytes[range].to_vec()).map_err(|_| self.corrupt("key not UTF-8"))
    }
}

/// What a block holds, without copying its records out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSummary {
    pub records: u64,
    pub last: Position,
    pub large: bool,
}

/// Reads a block's header: record count and last position.
pub fn summarize(key: u64, bytes: &[u8]) -> Result<BlockSummary, CorruptBlock> {
    let mut c = Cursor { bytes, at: 1, key };
    match bytes.first() {
        Some(&RECORDS) => {
            let records = c.varint()?;
            let last = key
                .checked_add(c.varint()?)
                .ok_or_else(|| c.corrupt("position overflow"))?;
            Ok(BlockSummary {
                records,
                last: Position(last),
                large: false,
            })
        }
        Some(&LARGE) => Ok(BlockSummary {
            records: 1,
            last: Position(key),
            large: true,
        }),
        Some(&SEALED) => {
            let header = super::crypt::parse_header(key, bytes)?;
            Ok(BlockSummary {
                records: header.count,
                last: Position(key + header.last_delta),
                large: header.inner_kind == LARGE,
            })
        }
        _ => Err(c.corrupt("unknown block type")),
    }
}

/// Record bytes (data + partition key) a block holds, without copying records out.
pub fn payload_bytes(key: u64, bytes: &[u8]) -> Result<u64, CorruptBlock> {
    let mut c = Cursor { bytes, at: 1, key };
    match bytes.first() {
        Some(&RECORDS) => {
            let count = c.varint()?;
            let _last = c.varint()?;
            let mut total = 0u64;
            for _ in 0..count {
                let _delta = c.varint()?;
                let key_len = c.varint()?;
                let data_len = c.varint()?;
                c.take(key_len)?;
                c.take(data_len)?;
                total += key_len + data_len;
            }
            Ok(total)
        }
        Some(&LARGE) => {
            let key_len = c.varint()?;
            c.take(key_len)?;
            let data_len = c.varint()?;
            key_len
                .checked_add(data_len)
                .ok_or_else(|| c.corrupt("length overflow"))
        }
        Some(&SEALED) => Ok(super::crypt::parse_header(key, bytes)?.payload),
        _ => Err(c.corrupt("unknown block type")),
    }
}

/// A decoded block: either records or the head of one large record.
pub enum Decoded {
    Records(Vec<StoredRecord>),
    Large {
        partition_key: String,
        data_len: u64,
        chunk_count: u64,
    },
}

/// Decodes a block. `from` skips records before that position.
pub fn decode(key: u64, bytes: &[u8], from: Position) -> Result<Decoded, CorruptBlock> {
    decode_shared(key, bytes, None, from)
}

/// Decodes a block whose bytes the records may share (an opened sealed block): no copy.
pub fn decode_owned(key: u64, bytes: Bytes, from: Position) -> Result<Decoded, CorruptBlock> {
    decode_shared(key, &bytes, Some(bytes.clone()), from)
}

fn decode_shared(
    key: u64,
    bytes: &[u8],
    owned: Option<Bytes>,
    from: Position,
) -> Result<Decoded, CorruptBlock> {
    let mut c = Cursor { bytes, at: 1, key };
    match bytes.first() {
        Some(&RECORDS) => {
            let count = c.varint()?;
            // Refused as summarize refuses it: a block that one reader accepts and the other
            // does not would be readable but not indexable.
            key.checked_add(c.varint()?)
                .ok_or_else(|| c.corrupt("position overflow"))?;
            // One shared buffer for the whole block; records are slices of it.
            let shared = owned.unwrap_or_else(|| Bytes::copy_from_slice(bytes));
            let mut records = Vec::with_capacity(count.min(100_000) as usize);
            let mut position = key;
            for _ in 0..count {
                position = position
                    .checked_add(c.varint()?)
                    .ok_or_else(|| c.corrupt("position overflow"))?;
                let key_len = c.varint()?;
                let data_len = c.varint()?;
                let partition_key = c.string(key_len)?;
                let data = c.take(data_len)?;
                if position >= from.0 {
                    records.push(StoredRecord {
                        position: Position(position),
                        partition_key,
                        data: shared.slice(data),
                        encrypted: false,
                    });
                }
            }
            Ok(Decoded::Records(records))
        }
        Some(&LARGE) => {
            let key_len = c.varint()?;
            let partition_key = c.string(key_len)?;
            let data_len = c.varint()?;
            key_len
                .checked_add(data_len)
                .ok_or_else(|| c.corrupt("length overflow"))?;
            let chunk_count = c.varint()?;
            Ok(Decoded::Large {
                partition_key,
                data_len,
                chunk_count,
            })
        }
        Some(&SEALED) => Err(c.corrupt("sealed block: open it with its key first")),
        _ => Err(c.corrupt("unknown block type")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(pos: u64, key: &str, data: &[u8]) -> PendingRecord {
        PendingRecord {
            position: Position(pos),
            partition_key: key.to_string(),
            data: Bytes::copy_from_slice(data),
        }
    }

    #[test]
    fn records_round_trip() {
        let records = vec![
            rec(100, "a", b"one"),
            rec(101, "é", b""),
            rec(5000, "k", &[0u8, 255, 7]),
        ];
        let bytes = encode_records(&records);
        let summary = summarize(100, &bytes).unwrap();
        assert_eq!(summary.records, 3);
        assert_eq!(summary.last, Position(5000));
        let Decoded::Records(back) = decode(100, &bytes, Position(101)).unwrap() else {
            panic!("records block")
        };
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].partition_key, "é");
        assert_eq!(back[0].data.as_ref(), b"");
        assert_eq!(back[1].position, Position(5000));
        assert_eq!(back[1].data.as_ref(), &[0u8, 255, 7]);
    }

    #[test]
    fn block_caps_fill_power_of_two_pages() {
        // Small rests stay whole.
        assert_eq!(block_cap(1000), 1000);
        // 44 KiB of records: fill a 32 KiB page first.
        assert_eq!(block_cap(44 * 1024), 32 * 1024 - 80);
        assert_eq!(block_cap(5000), 4096 - 80);
        assert_eq!(
            block_cap(10 * 1024 * 1024),
            BLOCK_TARGET_BYTES - BLOCK_HEADER_BYTES
        );
        // A block filled to its cap fits its page with the leaf overhead.
        for remaining in [5_000usize, 9_000, 20_000, 40_000, 63_000, 70_000] {
            let cap = block_cap(remaining);
            let page = (cap + BLOCK_HEADER_BYTES + 64).next_power_of_two();
            assert!(cap + BLOCK_HEADER_BYTES + 64 <= page);
            assert!(page <= 64 * 1024);
        }
    }

    #[test]
    fn large_head_round_trip_and_chunks() {
        let data = vec![7u8; CHUNK_BYTES * 2 + 10];
        let r = rec(9, "big", &data);
        assert!(is_large(3, data.len()));
        let head = encode_large_head(&r);
        match decode(9, &head, Position(0)).unwrap() {
            Decoded::Large {
                partition_key,
                data_len,
                chunk_count: n,
            } => {
                assert_eq!(partition_key, "big");
                assert_eq!(data_len as usize, data.len());
                assert_eq!(n, 3);
            }
            Decoded::Records(_) => panic!("large head"),
        }
        assert_eq!(chunks(&data).count(), 3);
        assert_eq!(chunks(&[]).count(), 1);
        assert_eq!(chunk_count(0), 1);
    }

    #[test]
    fn corrupt_blocks_are_errors_not_panics() {
        let good = encode_records(&[rec(1, "a", b"hello")]);
        for cut in 0..good.len() {
            let _ = decode(1, &good[..cut], Position(0));
            let _ = summarize(1, &good[..cut]);
        }
        assert!(decode(1, &[9, 9, 9], Position(0)).is_err());
        assert!(decode(
            1,
            &[1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            Position(0)
        )
        .is_err());
    }
}
