//! The MKV that GetMedia and GetMediaForFragmentList send: one MKV document per fragment
//! (EBML header, a Segment of unknown size, Info, Tracks, the fragment's frames in Clusters,
//! and a Tags element with AWS's per-fragment tags), so a reader can start at any fragment
//! and documents simply follow one another, as AWS sends them.
//!
//! Invariant: timecodes are milliseconds (TimecodeScale 1 000 000); a Cluster's Timecode is
//! the producer time of its first frame, and a new Cluster starts before a block's offset
//! would leave the signed 16 bits of a SimpleBlock.

use super::ebml::Writer;
use super::id;

/// The video track of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MkvTrack {
    /// `V_MPEG4/ISO/AVC` or `V_MPEGH/ISO/HEVC`.
    pub codec_id: String,
    /// The `avcC` / `hvcC` record.
    pub codec_private: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// The tags AWS puts after each fragment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FragmentTags {
    pub fragment_number: String,
    pub server_ms: i64,
    pub producer_ms: i64,
    /// GetMedia only: how far behind the newest fragment the reader is.
    pub millis_behind_now: Option<i64>,
    /// GetMedia only: where to continue from.
    pub continuation_token: Option<String>,
}

/// One frame to write: presentation time (epoch ms), keyframe, data.
#[derive(Debug, Clone, Copy)]
pub struct MkvFrame<'a> {
    pub pts_ms: i64,
    pub keyframe: bool,
    pub data: &'a [u8],
}

/// AWS's timestamps in tags: seconds with three decimals.
fn seconds(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// The document of one fragment.
pub fn fragment_document(
    track: &MkvTrack,
    frames: &[MkvFrame<'_>],
    tags: &FragmentTags,
) -> Vec<u8> {
    let mut w = Writer::default();
    w.buf
        .reserve(frames.iter().map(|f| f.data.len() + 16).sum::<usize>() + 1024);
    w.master(id::EBML, |w| {
        w.uint(id::EBML_VERSION, 1);
        w.uint(id::EBML_READ_VERSION, 1);
        w.uint(id::EBML_MAX_ID_LENGTH, 4);
        w.uint(id::EBML_MAX_SIZE_LENGTH, 8);
        w.string(id::DOC_TYPE, "matroska");
        w.uint(id::DOC_TYPE_VERSION, 4);
        w.uint(id::DOC_TYPE_READ_VERSION, 2);
    });
    w.open_unknown(id::SEGMENT);
    w.master(id::INFO, |w| {
        w.uint(id::TIMECODE_SCALE, 1_000_000);
        w.string(id::MUXING_APP, "kinedge");
        w.string(id::WRITING_APP, "kinedge");
    });
    w.master(id::TRACKS, |w| {
        w.master(id::TRACK_ENTRY, |w| {
            w.uint(id::TRACK_NUMBER, 1);
            w.uint(id::TRACK_UID, 1);
            w.uint(id::TRACK_TYPE, 1);
            w.string(id::CODEC_ID, &track.codec_id);
            w.bytes(id::CODEC_PRIVATE, &track.codec_private);
            w.master(id::VIDEO, |w| {
                w.uint(id::PIXEL_WIDTH, u64::from(track.width));
                w.uint(id::PIXEL_HEIGHT, u64::from(track.height));
            });
        });
    });
    let mut rest = frames;
    while let Some(first) = rest.first() {
        let base = first.pts_ms.max(0);
        let count = rest
            .iter()
            .position(|f| {
                let offset = f.pts_ms - base;
                offset < i64::from(i16::MIN) || offset > i64::from(i16::MAX)
            })
            .unwrap_or(rest.len())
            .max(1);
        let (cluster, next) = rest.split_at(count);
        w.master(id::CLUSTER, |w| {
            w.uint(id::TIMECODE, base as u64);
            for frame in cluster {
                let offset =
                    (frame.pts_ms - base).clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16;
                w.id(id::SIMPLE_BLOCK);
                w.size(4 + frame.data.len() as u64);
                w.buf.push(0x81); // track 1
                w.buf.extend_from_slice(&offset.to_be_bytes());
                w.buf.push(if frame.keyframe { 0x80 } else { 0x00 });
                w.buf.extend_from_slice(frame.data);
            }
        });
        rest = next;
    }
    w.master(id::TAGS, |w| {
        w.master(id::TAG, |w| {
            w.master(id::TARGETS, |_| {});
            let mut simple = |name: &str, value: &str| {
                w.master(id::SIMPLE_TAG, |w| {
                    w.string(id::TAG_NAME, name);
                    w.string(id::TAG_STRING, value);
                });
            };
            simple("AWS_KINESISVIDEO_FRAGMENT_NUMBER", &tags.fragment_number);
            simple(
                "AWS_KINESISVIDEO_SERVER_TIMESTAMP",
                &seconds(tags.server_ms),
            );
            simple(
                "AWS_KINESISVIDEO_PRODUCER_TIMESTAMP",
                &seconds(tags.producer_ms),
            );
            if let Some(behind) = tags.millis_behind_now {
                simple("AWS_KINESISVIDEO_MILLIS_BEHIND_NOW", &behind.to_string());
            }
            if let Some(token) = &tags.continuation_token {
                simple("AWS_KINESISVIDEO_CONTINUATION_TOKEN", token);
            }
        });
    });
    w.buf
}
