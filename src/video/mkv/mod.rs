//! Matroska (MKV), the container of Kinesis Video Streams' PutMedia and GetMedia: a streaming
//! demuxer for what producers send (`demux`: EBML header, a Segment of unknown size, Info,
//! Tracks with CodecPrivate, Clusters with a Timecode and SimpleBlocks, in any number of
//! chunks) and a muxer for what GetMedia sends (`mux`: one MKV document per fragment with
//! AWS's per-fragment tags). `ebml` is the binary format under both.
//!
//! Our own small EBML reader rather than a crate: the body arrives as an async stream of
//! chunks, and the crates read from `std::io::Read` (webm-iterable) or need `Seek`
//! (matroska-demuxer); a push parser over a bounded buffer fits the request body without a
//! blocking thread per producer.
//!
//! Invariants: the demuxer holds at most one element body beyond what the caller has taken
//! (bounded by `Limits::max_element`); garbage is an [`MkvError`], never a panic.

pub mod demux;
pub mod ebml;
pub mod mux;
pub mod remux;
#[cfg(test)]
mod tests;

pub use demux::{Demuxer, Event, Frame, Limits, Track};
pub use mux::{fragment_document, FragmentTags, MkvFrame, MkvTrack};

/// Element ids (with their length marker, as written).
pub mod id {
    pub const EBML: u32 = 0x1A45_DFA3;
    pub const DOC_TYPE: u32 = 0x4282;
    pub const EBML_VERSION: u32 = 0x4286;
    pub const EBML_READ_VERSION: u32 = 0x42F7;
    pub const EBML_MAX_ID_LENGTH: u32 = 0x42F2;
    pub const EBML_MAX_SIZE_LENGTH: u32 = 0x42F3;
    pub const DOC_TYPE_VERSION: u32 = 0x4287;
    pub const DOC_TYPE_READ_VERSION: u32 = 0x4285;
    pub const SEGMENT: u32 = 0x1853_8067;
    pub const SEEK_HEAD: u32 = 0x114D_9B74;
    pub const INFO: u32 = 0x1549_A966;
    pub const TIMECODE_SCALE: u32 = 0x2A_D7B1;
    pub const MUXING_APP: u32 = 0x4D80;
    pub const WRITING_APP: u32 = 0x5741;
    pub const TRACKS: u32 = 0x1654_AE6B;
    pub const TRACK_ENTRY: u32 = 0xAE;
    pub const TRACK_NUMBER: u32 = 0xD7;
    pub const TRACK_UID: u32 = 0x73C5;
    pub const TRACK_TYPE: u32 = 0x83;
    pub const CODEC_ID: u32 = 0x86;
    pub const CODEC_PRIVATE: u32 = 0x63A2;
    pub const VIDEO: u32 = 0xE0;
    pub const PIXEL_WIDTH: u32 = 0xB0;
    pub const PIXEL_HEIGHT: u32 = 0xBA;
    pub const CLUSTER: u32 = 0x1F43_B675;
    pub const TIMECODE: u32 = 0xE7;
    pub const SIMPLE_BLOCK: u32 = 0xA3;
    pub const BLOCK_GROUP: u32 = 0xA0;
    pub const BLOCK: u32 = 0xA1;
    pub const REFERENCE_BLOCK: u32 = 0xFB;
    pub const CUES: u32 = 0x1C53_BB6B;
    pub const TAGS: u32 = 0x1254_C367;
    pub const TAG: u32 = 0x7373;
    pub const TARGETS: u32 = 0x63C0;
    pub const SIMPLE_TAG: u32 = 0x67C8;
    pub const TAG_NAME: u32 = 0x45A3;
    pub const TAG_STRING: u32 = 0x4487;
    pub const CHAPTERS: u32 = 0x1043_A770;
    pub const ATTACHMENTS: u32 = 0x1941_A469;
    pub const VOID: u32 = 0xEC;
    pub const CRC32: u32 = 0xBF;
}

/// Matroska's codec ids of the video kinedge stores.
pub const CODEC_H264: &str = "V_MPEG4/ISO/AVC";
pub const CODEC_H265: &str = "V_MPEGH/ISO/HEVC";

/// Why MKV input cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MkvError {
    #[error("invalid MKV data at byte {at}: {problem}")]
    Invalid { at: u64, problem: String },
    #[error("an MKV element of {size} bytes at byte {at} is larger than {max} bytes")]
    TooLarge { at: u64, size: u64, max: u64 },
    #[error("the MKV stream has {count} tracks, at most {max} are allowed")]
    TooManyTracks { count: usize, max: usize },
}

impl MkvError {
    pub fn invalid(at: u64, problem: impl Into<String>) -> MkvError {
        MkvError::Invalid {
            at,
            problem: problem.into(),
        }
    }
}
