//! The tables of the video database and how their rows are laid out.
//!
//! - `cameras`: camera -> `CameraState` (fixed little-endian words behind a version byte),
//!   written with every commit that changes the camera, so sizes and numbers need no scan.
//! - `fragments`: (camera, number) -> `FragmentMeta` (version byte, fixed fields, codec).
//! - `fragment_chunks`: (camera, number, chunk index) -> up to `CHUNK_BYTES` of the fragment.
//! - `fragment_times`: (camera, producer_ms, number) -> duration_ms: the time index.
//! - `init_segments`: (camera, init id) -> the init segment (ftyp + moov).
//! - `init_refs`: (camera, init id) -> how many stored fragments play with it (absent: none).
//! - `gaps`: (camera, start_ms, end_ms) -> reason.
//! - `upload_checkpoints`: (camera, destination) -> highest fragment number uploaded.

use redb::TableDefinition;

use super::FragmentMeta;

pub const CAMERAS: TableDefinition<&str, &[u8]> = TableDefinition::new("cameras");
pub const FRAGMENTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("fragments");
pub const CHUNKS: TableDefinition<(&str, u64, u32), &[u8]> =
    TableDefinition::new("fragment_chunks");
pub const TIMES: TableDefinition<(&str, i64, u64), u32> = TableDefinition::new("fragment_times");
pub const INITS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("init_segments");
pub const INIT_REFS: TableDefinition<(&str, u64), u64> = TableDefinition::new("init_refs");
pub const GAPS: TableDefinition<(&str, i64, i64), &str> = TableDefinition::new("gaps");
pub const CHECKPOINTS: TableDefinition<(&str, &str), u64> =
    TableDefinition::new("upload_checkpoints");

/// Largest piece of a fragment stored as one value. redb keeps a value in a page rounded up to a
/// power of two, so chunks stay well below 256 KiB (a 1 MB fragment takes five 256 KiB pages
/// instead of one 2 MiB page).
pub const CHUNK_BYTES: usize = 240 * 1024;

/// What the log knows about one camera between commits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CameraState {
    /// The last fragment number handed out (0 before the first); never goes down.
    pub last_number: u64,
    /// Fragments stored.
    pub fragments: u64,
    /// Bytes of fragment data stored (the sum of their sizes).
    pub bytes: u64,
    /// Fragments ever deleted by retention (size, free disk, age).
    pub evicted_fragments: u64,
    /// Bytes ever deleted by retention.
    pub evicted_bytes: u64,
    /// Fragments ever refused (full, too large).
    pub denied_fragments: u64,
    /// The longest duration of any fragment ever appended: how far before a time range the
    /// time index must be read.
    pub max_duration_ms: u64,
    /// Gap rows stored.
    pub gaps: u64,
    /// Fragments ever appended with `discontinuity` set.
    pub discontinuities: u64,
}

const STATE_VERSION: u8 = 1;
const STATE_WORDS: usize = 9;
const STATE_BYTES: usize = 1 + STATE_WORDS * 8;
/// Rows written before `discontinuities` was counted (same version byte, one word less):
/// still read, with `discontinuities` 0, so an upgraded gateway keeps its video.
const STATE_BYTES_V1_EARLY: usize = STATE_BYTES - 8;

impl CameraState {
    pub fn encode(&self) -> [u8; STATE_BYTES] {
        let words = [
            self.last_number,
            self.fragments,
            self.bytes,
            self.evicted_fragments,
            self.evicted_bytes,
            self.denied_fragments,
            self.max_duration_ms,
            self.gaps,
            self.discontinuities,
        ];
        let mut out = [0u8; STATE_BYTES];
        out[0] = STATE_VERSION;
        for (i, word) in words.iter().enumerate() {
            out[1 + i * 8..9 + i * 8].copy_from_slice(&word.to_le_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<CameraState> {
        let early = bytes.len() == STATE_BYTES_V1_EARLY;
        if !(bytes.len() == STATE_BYTES || early) || bytes[0] != STATE_VERSION {
            return None;
        }
        let mut reader = Reader::new(&bytes[1..]);
        Some(CameraState {
            last_number: reader.u64()?,
            fragments: reader.u64()?,
            bytes: reader.u64()?,
            evicted_fragments: reader.u64()?,
            evicted_bytes: reader.u64()?,
            denied_fragments: reader.u64()?,
            max_duration_ms: reader.u64()?,
            gaps: reader.u64()?,
            discontinuities: if early { 0 } else { reader.u64()? },
        })
    }
}

const META_VERSION: u8 = 1;
const KEYFRAME: u8 = 1;
const DISCONTINUITY: u8 = 2;

/// version, producer_ms, server_ms, duration_ms, size, flags, width, height, init_id,
/// discontinuity sequence, codec length, codec (the number is in the key).
pub fn encode_meta(meta: &FragmentMeta) -> Vec<u8> {
    let codec = meta.codec.as_bytes();
    let mut out = Vec::with_capacity(55 + codec.len());
    out.push(META_VERSION);
    out.extend_from_slice(&meta.producer_ms.to_le_bytes());
    out.extend_from_slice(&meta.server_ms.to_le_bytes());
    out.extend_from_slice(&meta.duration_ms.to_le_bytes());
    out.extend_from_slice(&meta.size.to_le_bytes());
    let mut flags = if meta.keyframe { KEYFRAME } else { 0 };
    if meta.discontinuity {
        flags |= DISCONTINUITY;
    }
    out.push(flags);
    out.extend_from_slice(&meta.width.to_le_bytes());
    out.extend_from_slice(&meta.height.to_le_bytes());
    out.extend_from_slice(&meta.init_id.to_le_bytes());
    out.extend_from_slice(&meta.discontinuity_sequence.to_le_bytes());
    // The append refuses codec names longer than a byte can count.
    out.push(codec.len() as u8);
    out.extend_from_slice(codec);
    out
}

/// Reads a row of [`encode_meta`]'s layout, or one written before the discontinuity sequence
/// was stored (same version byte, without that field: its sequence reads as 0), so that an
/// upgraded gateway keeps its video.
pub fn decode_meta(number: u64, bytes: &[u8]) -> Option<FragmentMeta> {
    decode_meta_layout(number, bytes, true).or_else(|| decode_meta_layout(number, bytes, false))
}

fn decode_meta_layout(number: u64, bytes: &[u8], with_sequence: bool) -> Option<FragmentMeta> {
    let (&version, rest) = bytes.split_first()?;
    if version != META_VERSION {
        return None;
    }
    let mut reader = Reader::new(rest);
    let producer_ms = reader.i64()?;
    let server_ms = reader.i64()?;
    let duration_ms = reader.u32()?;
    let size = reader.u64()?;
    let flags = reader.take(1)?[0];
    let width = reader.u32()?;
    let height = reader.u32()?;
    let init_id = reader.u64()?;
    let discontinuity_sequence = if with_sequence { reader.u64()? } else { 0 };
    let codec_len = usize::from(reader.take(1)?[0]);
    let codec = std::str::from_utf8(reader.take(codec_len)?).ok()?;
    if !reader.is_empty() {
        return None;
    }
    Some(FragmentMeta {
        number,
        producer_ms,
        server_ms,
        duration_ms,
        size,
        keyframe: flags & KEYFRAME != 0,
        discontinuity: flags & DISCONTINUITY != 0,
        discontinuity_sequence,
        codec: codec.to_string(),
        width,
        height,
        init_id,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    fn i64(&mut self) -> Option<i64> {
        self.array().map(i64::from_le_bytes)
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_and_state_round_trip() {
        let meta = FragmentMeta {
            number: 7,
            producer_ms: -5,
            server_ms: 1_700_000_000_000,
            duration_ms: 2000,
            size: 1 << 20,
            keyframe: true,
            discontinuity: true,
            discontinuity_sequence: 3,
            codec: "h265".into(),
            width: 1920,
            height: 1080,
            init_id: 3,
        };
        let bytes = encode_meta(&meta);
        assert_eq!(decode_meta(7, &bytes), Some(meta));
        assert_eq!(decode_meta(7, &bytes[..bytes.len() - 1]), None);
        let mut future = bytes.clone();
        future[0] = 2;
        assert_eq!(decode_meta(7, &future), None);

        let state = CameraState {
            last_number: 9,
            fragments: 4,
            bytes: 1234,
            evicted_fragments: 5,
            evicted_bytes: 678,
            denied_fragments: 1,
            max_duration_ms: 2100,
            gaps: 3,
            discontinuities: 2,
        };
        assert_eq!(CameraState::decode(&state.encode()), Some(state));
        assert_eq!(CameraState::decode(&state.encode()[..10]), None);
    }

    /// Rows as gateways wrote them before the discontinuity counts existed (commit 111fcfa
    /// added them under the same version byte) still read.
    #[test]
    fn rows_without_discontinuity_fields_still_read() {
        let meta = FragmentMeta {
            number: 7,
            producer_ms: 1,
            server_ms: 1_700_000_000_000,
            duration_ms: 2000,
            size: 4096,
            keyframe: true,
            discontinuity: false,
            discontinuity_sequence: 0,
            codec: "h264".into(),
            width: 640,
            height: 480,
            init_id: 1,
        };
        let new = encode_meta(&meta);
        // The early layout: the same fields without the 8-byte sequence before the codec.
        let codec_at = new.len() - 1 - meta.codec.len();
        let early = [&new[..codec_at - 8], &new[codec_at..]].concat();
        assert_eq!(decode_meta(7, &early), Some(meta));

        let state = CameraState {
            last_number: 9,
            fragments: 4,
            bytes: 1234,
            gaps: 3,
            ..CameraState::default()
        };
        let early_state = &state.encode()[..STATE_BYTES - 8];
        assert_eq!(CameraState::decode(early_state), Some(state));
    }
}
