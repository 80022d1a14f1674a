//! From a producer's MKV to the fragment log's fMP4: each MKV Cluster becomes one fragment
//! (`moof` + `mdat`, remuxed, never transcoded) of the document's video track, and each
//! document's track an init segment (its CodecPrivate is the `avcC` / `hvcC` record).
//!
//! Invariants, checked as the events arrive (so a bad stream is stopped at the first bad
//! byte, never stored): a fragment starts on a keyframe, holds at most
//! `FragmentLimits::max_bytes` of frames and `max_duration_ns` of time, its Timecode is not
//! less than the previous one's, and the video codec stays the one of the first document.
//! Frames of other tracks (audio, metadata) are not kept.

use bytes::Bytes;

use super::demux::{Event, Frame, Track};
use super::{MkvError, CODEC_H264, CODEC_H265};
use crate::video::mp4::write::{self, SampleSpec, VideoCodec};

/// Timescale of the remuxed fragments' decode times (the usual one of MPEG video).
pub const TIMESCALE: u32 = 90_000;
/// A frame's duration when nothing says otherwise (a fragment of one frame): 1/30 s.
const DEFAULT_FRAME: u64 = 3_000;

/// A fragment's bounds.
#[derive(Debug, Clone, Copy)]
pub struct FragmentLimits {
    pub max_bytes: usize,
    pub max_duration_ns: i64,
}

/// Why a stream cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemuxError {
    #[error(transparent)]
    Mkv(#[from] MkvError),
    #[error("the fragment is larger than {max} bytes")]
    FragmentTooLarge { max: usize },
    #[error("the fragment is longer than {max_ms} ms")]
    FragmentTooLong { max_ms: i64 },
    #[error(
        "the fragment timecode {timecode_ns} ns is less than the previous one, {previous_ns} ns"
    )]
    TimecodeLessThanPrevious { timecode_ns: i64, previous_ns: i64 },
    #[error("the fragment does not start with a keyframe")]
    NoKeyframe,
    #[error("the video codec changed from {from} to {to} within the stream")]
    CodecChanged { from: String, to: String },
    #[error("the MKV stream has no video track (H.264 {CODEC_H264} or H.265 {CODEC_H265})")]
    NoVideoTrack,
    #[error("the video track's CodecPrivate is missing or not an {0} record")]
    BadCodecPrivate(&'static str),
    #[error("the video track has no PixelWidth and PixelHeight")]
    NoPictureSize,
    #[error("a block before the stream's Tracks")]
    FrameBeforeTracks,
}

/// The video track being stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoTrack {
    pub number: u64,
    pub codec: VideoCodec,
    pub width: u32,
    pub height: u32,
    /// The init segment of its fragments.
    pub init: Vec<u8>,
}

/// A fragment ready to store.
#[derive(Debug, Clone)]
pub struct Remuxed {
    /// The cluster's Timecode in the document's units (what acknowledgements carry).
    pub timecode: u64,
    pub timecode_ns: i64,
    pub duration_ms: u32,
    pub data: Bytes,
    pub frames: usize,
}

/// What an event led to.
#[derive(Debug, Clone)]
pub enum Output {
    /// A new video track (its init segment must be stored before the next fragment).
    Track(VideoTrack),
    /// A fragment started (the cluster's Timecode, in the document's units).
    Buffering { timecode: u64 },
    /// A fragment is complete.
    Fragment(Remuxed),
}

struct OpenCluster {
    timecode: u64,
    timecode_ns: i64,
    frames: Vec<Frame>,
    bytes: usize,
}

/// Turns one PutMedia stream's events into tracks and fragments.
pub struct Assembler {
    limits: FragmentLimits,
    track: Option<VideoTrack>,
    cluster: Option<OpenCluster>,
    previous_ns: Option<i64>,
    sequence: u32,
}

impl Assembler {
    pub fn new(limits: FragmentLimits) -> Assembler {
        Assembler {
            limits,
            track: None,
            cluster: None,
            previous_ns: None,
            sequence: 0,
        }
    }

    /// Bytes of frames held for the fragment being received.
    pub fn buffered(&self) -> usize {
        self.cluster.as_ref().map_or(0, |c| c.bytes)
    }

    pub fn event(&mut self, event: Event) -> Result<Option<Output>, RemuxError> {
        match event {
            Event::Tracks(tracks) => self.tracks(&tracks).map(|t| t.map(Output::Track)),
            Event::ClusterStart {
                timecode,
                timecode_ns,
            } => {
                if let Some(previous_ns) = self.previous_ns.filter(|p| timecode_ns < *p) {
                    return Err(RemuxError::TimecodeLessThanPrevious {
                        timecode_ns,
                        previous_ns,
                    });
                }
                self.previous_ns = Some(timecode_ns);
                self.cluster = Some(OpenCluster {
                    timecode,
                    timecode_ns,
                    frames: Vec::new(),
                    bytes: 0,
                });
                Ok(Some(Output::Buffering { timecode }))
            }
            Event::Frame(frame) => {
                let track = self.track.as_ref().ok_or(RemuxError::FrameBeforeTracks)?;
                if frame.track != track.number {
                    return Ok(None);
                }
                let Some(cluster) = self.cluster.as_mut() else {
                    return Ok(None);
                };
                if cluster.frames.is_empty() && !frame.keyframe {
                    return Err(RemuxError::NoKeyframe);
                }
                cluster.bytes += frame.data.len();
                if cluster.bytes > self.limits.max_bytes {
                    return Err(RemuxError::FragmentTooLarge {
                        max: self.limits.max_bytes,
                    });
                }
                if frame.pts_ns.saturating_sub(cluster.timecode_ns) > self.limits.max_duration_ns {
                    return Err(RemuxError::FragmentTooLong {
                        max_ms: self.limits.max_duration_ns / 1_000_000,
                    });
                }
                cluster.frames.push(frame);
                Ok(None)
            }
            Event::ClusterEnd => {
                let Some(cluster) = self.cluster.take() else {
                    return Ok(None);
                };
                if cluster.frames.is_empty() {
                    return Ok(None);
                }
                self.sequence = self.sequence.wrapping_add(1);
                Ok(Some(Output::Fragment(remux(cluster, self.sequence))))
            }
        }
    }

    /// A document's tracks: its video track becomes the stored one.
    fn tracks(&mut self, tracks: &[Track]) -> Result<Option<VideoTrack>, RemuxError> {
        let video = tracks
            .iter()
            .find(|t| t.codec_id == CODEC_H264 || t.codec_id == CODEC_H265)
            .ok_or(RemuxError::NoVideoTrack)?;
        let new = video_track(video)?;
        if let Some(old) = &self.track {
            if old.codec != new.codec {
                return Err(RemuxError::CodecChanged {
                    from: old.codec.name().to_string(),
                    to: new.codec.name().to_string(),
                });
            }
            if *old == new {
                return Ok(None);
            }
        }
        self.track = Some(new.clone());
        Ok(Some(new))
    }
}

/// The stored form of an MKV video track.
pub fn video_track(track: &Track) -> Result<VideoTrack, RemuxError> {
    let (codec, record, min_len) = if track.codec_id == CODEC_H264 {
        (VideoCodec::H264, "avcC", 7)
    } else {
        (VideoCodec::H265, "hvcC", 23)
    };
    let private = &track.codec_private;
    if private.len() < min_len || private[0] != 1 {
        return Err(RemuxError::BadCodecPrivate(record));
    }
    if track.width == 0 || track.height == 0 {
        return Err(RemuxError::NoPictureSize);
    }
    Ok(VideoTrack {
        number: track.number,
        codec,
        width: track.width,
        height: track.height,
        init: write::init_segment(codec, private, track.width, track.height, TIMESCALE),
    })
}

fn ticks(ns: i64) -> i64 {
    ((i128::from(ns) * i128::from(TIMESCALE) + 500_000_000).div_euclid(1_000_000_000)) as i64
}

/// A cluster's frames as one fragment: decode times are the presentation times in order
/// (frames arrive in decode order, so the n-th smallest presentation time is the n-th
/// decode time); composition offsets are the difference.
fn remux(cluster: OpenCluster, sequence: u32) -> Remuxed {
    let pts: Vec<i64> = cluster.frames.iter().map(|f| ticks(f.pts_ns)).collect();
    let mut dts = pts.clone();
    dts.sort_unstable();
    let n = dts.len();
    let mut durations: Vec<u64> = dts.windows(2).map(|w| (w[1] - w[0]) as u64).collect();
    durations.push(
        durations
            .last()
            .copied()
            .filter(|d| *d > 0)
            .unwrap_or(DEFAULT_FRAME),
    );
    let samples: Vec<SampleSpec> = (0..n)
        .map(|i| SampleSpec {
            duration: durations[i].min(u64::from(u32::MAX)) as u32,
            size: cluster.frames[i].data.len() as u32,
            sync: cluster.frames[i].keyframe,
            composition_offset: (pts[i] - dts[i]).clamp(i64::from(i32::MIN), i64::from(i32::MAX))
                as i32,
        })
        .collect();
    let payload: Vec<&[u8]> = cluster.frames.iter().map(|f| &f.data[..]).collect();
    let base = dts[0].max(0) as u64;
    let data = write::fragment(sequence, base, &samples, &payload);
    let total: u64 = durations.iter().sum();
    let duration_ms = (total * 1000 / u64::from(TIMESCALE)).clamp(1, u64::from(u32::MAX)) as u32;
    Remuxed {
        timecode: cluster.timecode,
        timecode_ns: cluster.timecode_ns,
        duration_ms,
        data: Bytes::from(data),
        frames: n,
    }
}
