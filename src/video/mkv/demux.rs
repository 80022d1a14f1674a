//! A streaming MKV demuxer: bytes go in as they arrive ([`Demuxer::push`]), events come out
//! (a new document's tracks, a cluster's start and end, each frame).
//!
//! Invariants:
//! - Memory: the demuxer keeps the bytes of at most one element it is reading (a SimpleBlock,
//!   Tracks, ...; at most `Limits::max_element`); elements it does not need (Cues, Tags,
//!   Void, attachments...) are skipped as they arrive, never held.
//! - Only a Segment and a Cluster may have an unknown size (what a live producer writes); an
//!   unknown-size Cluster ends at the first element that cannot be inside a Cluster, an
//!   unknown-size Segment at the next EBML header (a new document in the same stream, as the
//!   producer SDK sends when its tracks change).
//! - Every cluster that started ends with exactly one [`Event::ClusterEnd`] (at the latest
//!   from [`Demuxer::finish`]); a frame is only ever inside a cluster with a Timecode.

use bytes::{Buf, Bytes, BytesMut};

use super::ebml::{self, UNKNOWN_SIZE};
use super::{id, MkvError};

/// The demuxer's bounds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest element read into memory (a frame, the Tracks).
    pub max_element: u64,
    /// The most tracks a document may have.
    pub max_tracks: usize,
}

/// A track of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    pub number: u64,
    /// 1: video, 2: audio, ...
    pub kind: u64,
    pub codec_id: String,
    pub codec_private: Bytes,
    pub width: u32,
    pub height: u32,
}

/// One frame (a SimpleBlock or a Block).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub track: u64,
    /// Presentation time, ns on the document's timeline (cluster timecode + block offset,
    /// times the TimecodeScale).
    pub pts_ns: i64,
    pub keyframe: bool,
    pub data: Bytes,
}

/// What the demuxer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A document's tracks (a new document may follow in the same stream).
    Tracks(Vec<Track>),
    /// A cluster starts: its Timecode (in the document's units) and that in ns.
    ClusterStart {
        timecode: u64,
        timecode_ns: i64,
    },
    Frame(Frame),
    ClusterEnd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Open {
    id: u32,
    /// Stream position where the element ends (None: unknown size).
    end: Option<u64>,
}

/// The demuxer of one stream.
#[derive(Debug)]
pub struct Demuxer {
    limits: Limits,
    buf: BytesMut,
    /// Stream position of `buf[0]`.
    pos: u64,
    /// Bytes still to drop of an element being skipped.
    skip: u64,
    open: Vec<Open>,
    seen_header: bool,
    timecode_scale: u64,
    /// The open cluster's Timecode, once read.
    cluster: Option<u64>,
    in_cluster: bool,
}

impl Demuxer {
    pub fn new(limits: Limits) -> Demuxer {
        Demuxer {
            limits,
            buf: BytesMut::new(),
            pos: 0,
            skip: 0,
            open: Vec::new(),
            seen_header: false,
            timecode_scale: 1_000_000,
            cluster: None,
            in_cluster: false,
        }
    }

    /// Bytes held (waiting for the rest of an element).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Takes the next bytes of the stream; the events they complete are appended to `out`.
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<Event>) -> Result<(), MkvError> {
        if self.skip > 0 {
            let n = (self.skip.min(data.len() as u64)) as usize;
            self.skip -= n as u64;
            self.pos += n as u64;
            data = &data[n..];
        }
        self.buf.extend_from_slice(data);
        self.parse(out)
    }

    /// The stream ended: closes what is open. Bytes of an element cut short are an error.
    pub fn finish(&mut self, out: &mut Vec<Event>) -> Result<(), MkvError> {
        if !self.buf.is_empty() || self.skip > 0 {
            return Err(MkvError::invalid(
                self.pos,
                "the stream ended inside an element",
            ));
        }
        self.close_cluster(out);
        self.open.clear();
        Ok(())
    }

    fn consume(&mut self, n: usize) -> Bytes {
        self.pos += n as u64;
        self.buf.split_to(n).freeze()
    }

    fn close_cluster(&mut self, out: &mut Vec<Event>) {
        if self.in_cluster {
            out.push(Event::ClusterEnd);
        }
        self.in_cluster = false;
        self.cluster = None;
        self.open.retain(|o| o.id != id::CLUSTER);
    }

    /// Pops the open elements that end at the current position.
    fn close_ended(&mut self, out: &mut Vec<Event>) {
        while let Some(top) = self.open.last().copied() {
            if top.end.is_some_and(|end| end <= self.pos) {
                if top.id == id::CLUSTER {
                    self.close_cluster(out);
                } else {
                    self.open.pop();
                }
            } else {
                break;
            }
        }
    }

    fn parse(&mut self, out: &mut Vec<Event>) -> Result<(), MkvError> {
        loop {
            self.close_ended(out);
            if self.skip > 0 {
                let n = (self.skip.min(self.buf.len() as u64)) as usize;
                self.buf.advance(n);
                self.skip -= n as u64;
                self.pos += n as u64;
                if self.skip > 0 {
                    return Ok(());
                }
                continue;
            }
            let at = self.pos;
            let Some(h) = ebml::header(&self.buf, at)? else {
                return Ok(());
            };
            let top = self.open.last().copied();
            // An unknown-size parent ends where an element that cannot be its child starts.
            if let Some(top) = top.filter(|t| t.end.is_none()) {
                let ends = match top.id {
                    id::CLUSTER => !is_cluster_child(h.id),
                    id::SEGMENT => h.id == id::EBML,
                    _ => false,
                };
                if ends {
                    if top.id == id::CLUSTER {
                        self.close_cluster(out);
                    } else {
                        self.open.pop();
                    }
                    continue;
                }
            }
            if let Some(end) = top.and_then(|t| t.end) {
                if h.size != UNKNOWN_SIZE && at + h.len as u64 + h.size > end {
                    return Err(MkvError::invalid(at, "an element runs past its parent"));
                }
            }
            let parent = self.open.last().map(|o| o.id);
            match (parent, h.id) {
                (None, id::SEGMENT) | (Some(id::SEGMENT), id::CLUSTER) => {
                    if parent.is_none() && !self.seen_header {
                        return Err(MkvError::invalid(at, "no EBML header before the Segment"));
                    }
                    self.consume(h.len);
                    let end = (h.size != UNKNOWN_SIZE).then(|| self.pos + h.size);
                    self.open.push(Open { id: h.id, end });
                    if h.id == id::CLUSTER {
                        self.in_cluster = true;
                        self.cluster = None;
                    }
                    continue;
                }
                _ => {}
            }
            if h.size == UNKNOWN_SIZE {
                return Err(MkvError::invalid(
                    at,
                    format!("element 0x{:X} has an unknown size", h.id),
                ));
            }
            let wanted = match (parent, h.id) {
                (None, id::EBML) => true,
                (None, id::VOID) => false,
                (None, _) if !self.seen_header => {
                    return Err(MkvError::invalid(
                        at,
                        "the stream does not start with an EBML header",
                    ))
                }
                (None, _) => {
                    return Err(MkvError::invalid(
                        at,
                        format!("element 0x{:X} outside a Segment", h.id),
                    ))
                }
                (Some(id::SEGMENT), id::INFO | id::TRACKS) => true,
                (Some(id::CLUSTER), id::TIMECODE | id::SIMPLE_BLOCK | id::BLOCK_GROUP) => true,
                _ => false,
            };
            if !wanted {
                self.consume(h.len);
                self.skip = h.size;
                continue;
            }
            if h.size > self.limits.max_element {
                return Err(MkvError::TooLarge {
                    at,
                    size: h.size,
                    max: self.limits.max_element,
                });
            }
            let total = h.len + h.size as usize;
            if self.buf.len() < total {
                // Memory grows as the bytes arrive, never for a declared size up front.
                return Ok(());
            }
            self.consume(h.len);
            let body_at = self.pos;
            let body = self.consume(h.size as usize);
            self.element(h.id, body, body_at, out)?;
        }
    }

    fn element(
        &mut self,
        kind: u32,
        body: Bytes,
        at: u64,
        out: &mut Vec<Event>,
    ) -> Result<(), MkvError> {
        match kind {
            id::EBML => {
                let doc_type = ebml::children(&body, at)?
                    .into_iter()
                    .find(|(id, _)| *id == id::DOC_TYPE)
                    .map(|(_, v)| ebml::string(v));
                match doc_type.as_deref() {
                    Some("matroska" | "webm") | None => {}
                    Some(other) => {
                        return Err(MkvError::invalid(
                            at,
                            format!("DocType {other:?} is not matroska"),
                        ))
                    }
                }
                self.seen_header = true;
                self.timecode_scale = 1_000_000;
            }
            id::INFO => {
                for (child, value) in ebml::children(&body, at)? {
                    if child == id::TIMECODE_SCALE {
                        let scale = ebml::uint(value, at)?;
                        if scale == 0 {
                            return Err(MkvError::invalid(at, "TimecodeScale is 0"));
                        }
                        self.timecode_scale = scale;
                    }
                }
            }
            id::TRACKS => {
                let tracks = parse_tracks(&body, at)?;
                if tracks.len() > self.limits.max_tracks {
                    return Err(MkvError::TooManyTracks {
                        count: tracks.len(),
                        max: self.limits.max_tracks,
                    });
                }
                out.push(Event::Tracks(tracks));
            }
            id::TIMECODE => {
                let timecode = ebml::uint(&body, at)?;
                let timecode_ns =
                    i64::try_from(u128::from(timecode) * u128::from(self.timecode_scale))
                        .map_err(|_| MkvError::invalid(at, "the cluster Timecode overflows"))?;
                self.cluster = Some(timecode);
                out.push(Event::ClusterStart {
                    timecode,
                    timecode_ns,
                });
            }
            id::SIMPLE_BLOCK => {
                let frame = self.block(body, at, None)?;
                out.push(Event::Frame(frame));
            }
            id::BLOCK_GROUP => {
                let children = ebml::children(&body, at)?;
                let keyframe = !children.iter().any(|(id, _)| *id == id::REFERENCE_BLOCK);
                let Some((_, block)) = children.iter().find(|(id, _)| *id == id::BLOCK) else {
                    return Err(MkvError::invalid(at, "a BlockGroup without a Block"));
                };
                let start = block.as_ptr() as usize - body.as_ptr() as usize;
                let frame =
                    self.block(body.slice(start..start + block.len()), at, Some(keyframe))?;
                out.push(Event::Frame(frame));
            }
            _ => {}
        }
        Ok(())
    }

    /// A (Simple)Block's frame; `keyframe` from the BlockGroup, or the SimpleBlock's flag.
    fn block(&self, body: Bytes, at: u64, keyframe: Option<bool>) -> Result<Frame, MkvError> {
        let Some(cluster) = self.cluster else {
            return Err(MkvError::invalid(
                at,
                "a block before its cluster's Timecode",
            ));
        };
        // The track number: a vint without its length marker.
        let first = *body
            .first()
            .ok_or_else(|| MkvError::invalid(at, "an empty block"))?;
        let len = first.leading_zeros() as usize + 1;
        if len > 8 || body.len() < len + 3 {
            return Err(MkvError::invalid(at, "a block header is cut short"));
        }
        let mut track = 0u64;
        for &byte in &body[..len] {
            track = (track << 8) | u64::from(byte);
        }
        track &= u64::MAX >> (64 - 7 * len);
        let relative = i16::from_be_bytes([body[len], body[len + 1]]);
        let flags = body[len + 2];
        if flags & 0x06 != 0 {
            return Err(MkvError::invalid(at, "laced blocks are not supported"));
        }
        let units = i128::from(cluster) + i128::from(relative);
        let pts_ns = i64::try_from(units * i128::from(self.timecode_scale))
            .map_err(|_| MkvError::invalid(at, "a block's timecode overflows"))?;
        Ok(Frame {
            track,
            pts_ns,
            keyframe: keyframe.unwrap_or(flags & 0x80 != 0),
            data: body.slice(len + 3..),
        })
    }
}

/// Elements a Cluster may hold.
fn is_cluster_child(kind: u32) -> bool {
    matches!(
        kind,
        id::TIMECODE
            | id::SIMPLE_BLOCK
            | id::BLOCK_GROUP
            | id::VOID
            | id::CRC32
            | 0xA7 // Position
            | 0xAB // PrevSize
            | 0x5854 // SilentTracks
            | 0xAF // EncryptedBlock
    )
}

fn parse_tracks(body: &[u8], at: u64) -> Result<Vec<Track>, MkvError> {
    let mut tracks = Vec::new();
    for (kind, entry) in ebml::children(body, at)? {
        if kind != id::TRACK_ENTRY {
            continue;
        }
        let mut track = Track {
            number: 0,
            kind: 0,
            codec_id: String::new(),
            codec_private: Bytes::new(),
            width: 0,
            height: 0,
        };
        for (child, value) in ebml::children(entry, at)? {
            match child {
                id::TRACK_NUMBER => track.number = ebml::uint(value, at)?,
                id::TRACK_TYPE => track.kind = ebml::uint(value, at)?,
                id::CODEC_ID => track.codec_id = ebml::string(value),
                id::CODEC_PRIVATE => track.codec_private = Bytes::copy_from_slice(value),
                id::VIDEO => {
                    for (field, v) in ebml::children(value, at)? {
                        let size =
                            || Ok::<_, MkvError>(u32::try_from(ebml::uint(v, at)?).unwrap_or(0));
                        match field {
                            id::PIXEL_WIDTH => track.width = size()?,
                            id::PIXEL_HEIGHT => track.height = size()?,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if track.number == 0 {
            return Err(MkvError::invalid(at, "a TrackEntry without a TrackNumber"));
        }
        tracks.push(track);
    }
    if tracks.is_empty() {
        return Err(MkvError::invalid(at, "Tracks without a TrackEntry"));
    }
    Ok(tracks)
}
