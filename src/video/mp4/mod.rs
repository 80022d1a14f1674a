//! ISO-BMFF (MP4) boxes of the fragmented MP4 that `cmafmux` writes: a strict, bounds-checked
//! box walker (`boxes`); what playback needs from an init segment (`init`: timescale, track,
//! codec string, size) and from a fragment (`fragment`: sequence number, decode time,
//! duration); and the in-place patches that make a clip (`patch`: decode times rebased to 0,
//! sequence numbers, movie duration).
//!
//! Every length is checked against its parent: garbage gives an [`Mp4Error`] naming the box,
//! never a panic. Patches never change a box's size, except [`set_duration`] adding a `mehd`.

mod boxes;
mod fragment;
mod init;
mod patch;
mod samples;
#[cfg(test)]
mod tests;
pub mod write;

pub(crate) use boxes::{top_level, Mp4Box};
pub use fragment::fragment_info;
pub use init::init_info;
pub(crate) use patch::rescale;
pub use patch::{rebase_fragment, set_duration};
pub use samples::{fragment_samples, trex_defaults, video_config, SampleRef, TrexDefaults};

use std::fmt;

/// A box type, the four-character code in its header.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FourCc(pub [u8; 4]);

impl fmt::Display for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &byte in &self.0 {
            if byte.is_ascii_graphic() || byte == b' ' {
                write!(f, "{}", char::from(byte))?;
            } else {
                write!(f, "\\x{byte:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{self}`")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Mp4Error {
    #[error("a box header at byte {offset} is cut short")]
    TruncatedHeader { offset: usize },
    #[error("the `{kind}` box at byte {offset} declares {size} bytes, only {available} remain")]
    BoxPastEnd {
        kind: FourCc,
        offset: usize,
        size: u64,
        available: usize,
    },
    #[error("the `{kind}` box at byte {offset} declares {size} bytes, less than its header")]
    BoxTooShort {
        kind: FourCc,
        offset: usize,
        size: u64,
    },
    #[error("the `{kind}` box at byte {offset} is malformed: {problem}")]
    Malformed {
        kind: FourCc,
        offset: usize,
        problem: &'static str,
    },
    #[error("no `{kind}` box in {within}")]
    Missing { kind: FourCc, within: String },
    #[error("no video track (`trak` with a `vide` handler) in the `moov` box")]
    NoVideoTrack,
    #[error("unsupported video sample entry `{0}` (expected avc1, avc3, hvc1 or hev1)")]
    UnsupportedCodec(FourCc),
    #[error("the `tfdt` box at byte {offset} has decode time {base}, less than the {subtract} to subtract")]
    NegativeDecodeTime {
        offset: usize,
        base: u64,
        subtract: u64,
    },
    #[error("a clip needs at least one fragment")]
    NoFragments,
    #[error("fragment {index} is for track {found}, the init segment's video track is {expected}")]
    TrackMismatch {
        index: usize,
        found: u32,
        expected: u32,
    },
    #[error("fragment {index}: {source}")]
    InFragment {
        index: usize,
        #[source]
        source: Box<Mp4Error>,
    },
}

impl Mp4Error {
    /// This error, said of the `index`th fragment of a list.
    pub fn in_fragment(self, index: usize) -> Mp4Error {
        Mp4Error::InFragment {
            index,
            source: Box::new(self),
        }
    }

    fn malformed(b: &Mp4Box<'_>, problem: &'static str) -> Mp4Error {
        Mp4Error::Malformed {
            kind: b.kind,
            offset: b.offset,
            problem,
        }
    }
}

/// What playback needs from an init segment (its video track).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitInfo {
    /// Units per second of the video track's decode times (its `mdhd`).
    pub timescale: u32,
    pub track_id: u32,
    /// RFC 6381 codecs string for HLS, e.g. `avc1.42C01E` or `hvc1.1.6.L93.B0`.
    pub codec: String,
    pub width: u32,
    pub height: u32,
}

/// What playback needs from a fragment (its first track fragment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentInfo {
    /// The `mfhd` sequence number.
    pub sequence: u32,
    pub track_id: u32,
    /// Decode time of the first sample (`tfdt`), in the track's timescale.
    pub base_decode_time: u64,
    /// Sum of the sample durations, in the track's timescale.
    pub duration: u64,
    pub samples: u32,
    /// Whether the first sample is a sync sample (keyframe). False when the fragment does not
    /// say (flags only in the init segment's `trex`) or has no samples.
    pub first_sample_is_sync: bool,
}
