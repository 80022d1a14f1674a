//! ISO-BMFF (MP4) boxes of the fragmented MP4 that `cmafmux` writes: a strict, bounds-checked
//! box walker; what playback needs from an init segment (timescale, track, codec string, size)
//! and from a fragment (sequence number, decode time, duration); and the in-place patches that
//! make a clip (decode times rebased to 0, sequence numbers, movie duration).
//!
//! Every length is checked against its parent: garbage gives an [`Mp4Error`] naming the box,
//! never a panic. Patches never change a box's size, except [`set_duration`] adding a `mehd`.

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

/// One box of a buffer being walked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mp4Box<'a> {
    pub kind: FourCc,
    /// Position of the box's first byte in the buffer the walk started from.
    pub offset: usize,
    header_len: usize,
    /// The whole box, header included.
    pub bytes: &'a [u8],
}

impl<'a> Mp4Box<'a> {
    /// The payload after the header.
    pub fn body(&self) -> &'a [u8] {
        &self.bytes[self.header_len..]
    }

    /// Position of the payload's first byte in the buffer the walk started from.
    pub fn body_offset(&self) -> usize {
        self.offset + self.header_len
    }

    pub fn is(&self, kind: &[u8; 4]) -> bool {
        &self.kind.0 == kind
    }

    /// The boxes inside this one (for container boxes).
    pub fn children(&self) -> Boxes<'a> {
        Boxes::new(self.body(), self.body_offset())
    }

    /// The first child of this kind, if any; children before it must be well formed.
    pub fn child(&self, kind: &[u8; 4]) -> Result<Option<Mp4Box<'a>>, Mp4Error> {
        for child in self.children() {
            let child = child?;
            if child.is(kind) {
                return Ok(Some(child));
            }
        }
        Ok(None)
    }

    pub fn required_child(&self, kind: &[u8; 4]) -> Result<Mp4Box<'a>, Mp4Error> {
        self.child(kind)?.ok_or_else(|| Mp4Error::Missing {
            kind: FourCc(*kind),
            within: format!("the `{}` box at byte {}", self.kind, self.offset),
        })
    }

    /// A reader over the payload, for the box's fields.
    fn fields(&self) -> Fields<'a> {
        Fields { of: *self, pos: 0 }
    }

    /// A reader past the version and flags of a full box, with them.
    fn full_box(&self) -> Result<(u8, u32, Fields<'a>), Mp4Error> {
        let mut fields = self.fields();
        let word = fields.u32()?;
        Ok(((word >> 24) as u8, word & 0x00ff_ffff, fields))
    }
}

/// The boxes of a buffer, in order; stops after the first error.
pub(crate) struct Boxes<'a> {
    data: &'a [u8],
    /// Position of `data[0]` in the buffer the walk started from.
    base: usize,
    pos: usize,
}

impl<'a> Boxes<'a> {
    pub fn new(data: &'a [u8], base: usize) -> Self {
        Boxes { data, base, pos: 0 }
    }

    fn read(&mut self) -> Result<Mp4Box<'a>, Mp4Error> {
        let rest = &self.data[self.pos..];
        let offset = self.base + self.pos;
        if rest.len() < 8 {
            return Err(Mp4Error::TruncatedHeader { offset });
        }
        let size32 = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let kind = FourCc([rest[4], rest[5], rest[6], rest[7]]);
        let (size, mut header_len) = match size32 {
            0 => (rest.len() as u64, 8),
            1 => (
                be_u64(rest, 8).ok_or(Mp4Error::TruncatedHeader { offset })?,
                16,
            ),
            size => (u64::from(size), 8),
        };
        if &kind.0 == b"uuid" {
            header_len += 16;
        }
        if size < header_len as u64 {
            return Err(Mp4Error::BoxTooShort { kind, offset, size });
        }
        if size > rest.len() as u64 {
            return Err(Mp4Error::BoxPastEnd {
                kind,
                offset,
                size,
                available: rest.len(),
            });
        }
        // Fits: it is at most rest.len().
        let size = size as usize;
        self.pos += size;
        Ok(Mp4Box {
            kind,
            offset,
            header_len,
            bytes: &rest[..size],
        })
    }
}

impl<'a> Iterator for Boxes<'a> {
    type Item = Result<Mp4Box<'a>, Mp4Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.data.len() {
            return None;
        }
        let item = self.read();
        if item.is_err() {
            self.pos = self.data.len();
        }
        Some(item)
    }
}

/// All top-level boxes of a buffer, every one checked.
pub(crate) fn top_level(data: &[u8]) -> Result<Vec<Mp4Box<'_>>, Mp4Error> {
    Boxes::new(data, 0).collect()
}

fn find_top<'a>(
    boxes: &[Mp4Box<'a>],
    kind: &[u8; 4],
    within: &str,
) -> Result<Mp4Box<'a>, Mp4Error> {
    boxes
        .iter()
        .find(|b| b.is(kind))
        .copied()
        .ok_or_else(|| Mp4Error::Missing {
            kind: FourCc(*kind),
            within: within.to_string(),
        })
}

fn be_u32(data: &[u8], at: usize) -> Option<u32> {
    let bytes = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(bytes.try_into().ok()?))
}

fn be_u64(data: &[u8], at: usize) -> Option<u64> {
    let bytes = data.get(at..at.checked_add(8)?)?;
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

/// Reads a box's fields in order; running past the payload is a [`Mp4Error::Malformed`].
struct Fields<'a> {
    of: Mp4Box<'a>,
    pos: usize,
}

impl<'a> Fields<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], Mp4Error> {
        let body = self.of.body();
        let end = self.pos.checked_add(len).filter(|&end| end <= body.len());
        let end = end.ok_or_else(|| Mp4Error::malformed(&self.of, "it ends inside its fields"))?;
        let bytes = &body[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn skip(&mut self, len: usize) -> Result<(), Mp4Error> {
        self.take(len).map(|_| ())
    }

    fn u8(&mut self) -> Result<u8, Mp4Error> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Mp4Error> {
        let bytes = self.take(2)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn u32(&mut self) -> Result<u32, Mp4Error> {
        let bytes = self.take(4)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn u64(&mut self) -> Result<u64, Mp4Error> {
        let high = self.u32()?;
        let low = self.u32()?;
        Ok((u64::from(high) << 32) | u64::from(low))
    }

    /// Position of the next field in the buffer the walk started from.
    fn position(&self) -> usize {
        self.of.body_offset() + self.pos
    }

    fn remaining(&self) -> usize {
        self.of.body().len() - self.pos
    }

    /// The box with the fields read so far counted as its header: its children are the boxes
    /// that follow the fields (`stsd` entries, a sample entry's `avcC`).
    fn rest_as_box(&self) -> Mp4Box<'a> {
        Mp4Box {
            header_len: self.of.header_len + self.pos,
            ..self.of
        }
    }
}

/// Reads the init segment's video track.
pub fn init_info(init: &[u8]) -> Result<InitInfo, Mp4Error> {
    let top = top_level(init)?;
    let moov = find_top(&top, b"moov", "the init segment")?;
    let trak = video_trak(&moov)?;

    let (version, _, mut tkhd) = trak.required_child(b"tkhd")?.full_box()?;
    tkhd.skip(if version == 1 { 16 } else { 8 })?;
    let track_id = tkhd.u32()?;

    let mdia = trak.required_child(b"mdia")?;
    let mdhd = mdia.required_child(b"mdhd")?;
    let (version, _, mut fields) = mdhd.full_box()?;
    fields.skip(if version == 1 { 16 } else { 8 })?;
    let timescale = fields.u32()?;
    if timescale == 0 {
        return Err(Mp4Error::malformed(&mdhd, "its timescale is 0"));
    }

    let stsd = mdia
        .required_child(b"minf")?
        .required_child(b"stbl")?
        .required_child(b"stsd")?;
    let (_, _, mut fields) = stsd.full_box()?;
    let _entry_count = fields.u32()?;
    let entry = match fields.rest_as_box().children().next() {
        Some(entry) => entry?,
        None => return Err(Mp4Error::malformed(&stsd, "it has no sample entry")),
    };
    let (codec, width, height) = video_sample_entry(&entry)?;
    Ok(InitInfo {
        timescale,
        track_id,
        codec,
        width,
        height,
    })
}

/// The first `trak` whose handler is `vide`.
fn video_trak<'a>(moov: &Mp4Box<'a>) -> Result<Mp4Box<'a>, Mp4Error> {
    for trak in moov.children() {
        let trak = trak?;
        if !trak.is(b"trak") {
            continue;
        }
        let hdlr = trak.required_child(b"mdia")?.required_child(b"hdlr")?;
        let (_, _, mut fields) = hdlr.full_box()?;
        let _pre_defined = fields.u32()?;
        if fields.take(4)? == b"vide" {
            return Ok(trak);
        }
    }
    Err(Mp4Error::NoVideoTrack)
}

/// Codec string, width and height from an `avc1`/`avc3`/`hvc1`/`hev1` sample entry.
fn video_sample_entry(entry: &Mp4Box<'_>) -> Result<(String, u32, u32), Mp4Error> {
    let is_avc = entry.is(b"avc1") || entry.is(b"avc3");
    let is_hevc = entry.is(b"hvc1") || entry.is(b"hev1");
    if !is_avc && !is_hevc {
        return Err(Mp4Error::UnsupportedCodec(entry.kind));
    }
    // VisualSampleEntry: reserved, data_reference_index, pre_defined, reserved, pre_defined.
    let mut fields = entry.fields();
    fields.skip(6 + 2 + 2 + 2 + 12)?;
    let width = u32::from(fields.u16()?);
    let height = u32::from(fields.u16()?);
    // Resolutions, reserved, frame_count, compressorname, depth, pre_defined.
    fields.skip(4 + 4 + 4 + 2 + 32 + 2 + 2)?;
    let inner = fields.rest_as_box();
    let codec = if is_avc {
        avc_codec(entry.kind, &inner.required_child(b"avcC")?)?
    } else {
        hevc_codec(entry.kind, &inner.required_child(b"hvcC")?)?
    };
    Ok((codec, width, height))
}

/// `avc1.PPCCLL`: profile, constraint flags and level from the `avcC` box (RFC 6381 §3.3).
fn avc_codec(entry: FourCc, avcc: &Mp4Box<'_>) -> Result<String, Mp4Error> {
    let mut fields = avcc.fields();
    let _configuration_version = fields.u8()?;
    let profile = fields.u8()?;
    let compatibility = fields.u8()?;
    let level = fields.u8()?;
    Ok(format!(
        "{entry}.{profile:02X}{compatibility:02X}{level:02X}"
    ))
}

/// `hvc1.<space><profile>.<compatibility>.<tier><level>[.<constraint byte>]*` from the `hvcC`
/// box, as ISO/IEC 14496-15 Annex E says: compatibility flags bit-reversed in hex, trailing
/// zero constraint bytes left out.
fn hevc_codec(entry: FourCc, hvcc: &Mp4Box<'_>) -> Result<String, Mp4Error> {
    use std::fmt::Write;

    let mut fields = hvcc.fields();
    let _configuration_version = fields.u8()?;
    let byte = fields.u8()?;
    let profile_space = ["", "A", "B", "C"][usize::from(byte >> 6)];
    let tier = if byte & 0x20 != 0 { 'H' } else { 'L' };
    let profile_idc = byte & 0x1f;
    let compatibility = fields.u32()?.reverse_bits();
    let constraints = fields.take(6)?;
    let level = fields.u8()?;
    let mut codec = format!("{entry}.{profile_space}{profile_idc}.{compatibility:X}.{tier}{level}");
    let used = constraints
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |i| i + 1);
    for constraint in &constraints[..used] {
        // Writing to a String cannot fail.
        let _ = write!(codec, ".{constraint:X}");
    }
    Ok(codec)
}

/// Reads a fragment's `mfhd` and its first track fragment.
pub fn fragment_info(fragment: &[u8]) -> Result<FragmentInfo, Mp4Error> {
    let top = top_level(fragment)?;
    let moof = find_top(&top, b"moof", "the fragment")?;
    let (_, _, mut mfhd) = moof.required_child(b"mfhd")?.full_box()?;
    let sequence = mfhd.u32()?;
    let traf = moof.required_child(b"traf")?;

    let (_, tfhd_flags, mut tfhd) = traf.required_child(b"tfhd")?.full_box()?;
    let track_id = tfhd.u32()?;
    if tfhd_flags & 0x01 != 0 {
        tfhd.skip(8)?; // base_data_offset
    }
    if tfhd_flags & 0x02 != 0 {
        tfhd.skip(4)?; // sample_description_index
    }
    let default_duration = if tfhd_flags & 0x08 != 0 {
        Some(tfhd.u32()?)
    } else {
        None
    };
    if tfhd_flags & 0x10 != 0 {
        tfhd.skip(4)?; // default_sample_size
    }
    let default_flags = if tfhd_flags & 0x20 != 0 {
        Some(tfhd.u32()?)
    } else {
        None
    };

    let tfdt = traf.required_child(b"tfdt")?;
    let (base_decode_time, _) = read_tfdt(&tfdt)?;

    let mut duration = 0u64;
    let mut samples = 0u32;
    let mut first_flags = None;
    for trun in traf.children() {
        let trun = trun?;
        if !trun.is(b"trun") {
            continue;
        }
        let run = read_trun(&trun, default_duration)?;
        if samples == 0 && run.samples > 0 {
            first_flags = run.first_flags.or(default_flags);
        }
        samples = samples
            .checked_add(run.samples)
            .ok_or_else(|| Mp4Error::malformed(&trun, "the sample count overflows"))?;
        duration = duration
            .checked_add(run.duration)
            .ok_or_else(|| Mp4Error::malformed(&trun, "the duration overflows"))?;
    }
    Ok(FragmentInfo {
        sequence,
        track_id,
        base_decode_time,
        duration,
        samples,
        first_sample_is_sync: first_flags.is_some_and(|flags| flags & SAMPLE_IS_NON_SYNC == 0),
    })
}

/// `sample_is_non_sync_sample` in sample flags.
const SAMPLE_IS_NON_SYNC: u32 = 0x0001_0000;

/// The decode time and where it is: (value, position of the field, field width).
fn read_tfdt(tfdt: &Mp4Box<'_>) -> Result<(u64, (usize, usize)), Mp4Error> {
    let (version, _, mut fields) = tfdt.full_box()?;
    let position = fields.position();
    match version {
        0 => Ok((u64::from(fields.u32()?), (position, 4))),
        1 => Ok((fields.u64()?, (position, 8))),
        _ => Err(Mp4Error::malformed(tfdt, "unknown version")),
    }
}

struct TrackRun {
    samples: u32,
    duration: u64,
    /// Flags of the first sample, when the `trun` gives them.
    first_flags: Option<u32>,
}

fn read_trun(trun: &Mp4Box<'_>, default_duration: Option<u32>) -> Result<TrackRun, Mp4Error> {
    const DATA_OFFSET: u32 = 0x001;
    const FIRST_SAMPLE_FLAGS: u32 = 0x004;
    const SAMPLE_DURATION: u32 = 0x100;
    const SAMPLE_SIZE: u32 = 0x200;
    const SAMPLE_FLAGS: u32 = 0x400;
    const SAMPLE_FIELDS: u32 = 0xf00;

    let (_, flags, mut fields) = trun.full_box()?;
    let samples = fields.u32()?;
    if flags & DATA_OFFSET != 0 {
        fields.skip(4)?;
    }
    let mut first_flags = if flags & FIRST_SAMPLE_FLAGS != 0 {
        Some(fields.u32()?)
    } else {
        None
    };
    let record_len = 4 * (flags & SAMPLE_FIELDS).count_ones() as usize;
    let table_len = (samples as usize).checked_mul(record_len);
    if table_len.is_none_or(|len| len > fields.remaining()) {
        return Err(Mp4Error::malformed(
            trun,
            "its sample table is shorter than its sample count",
        ));
    }
    if samples == 0 {
        return Ok(TrackRun {
            samples,
            duration: 0,
            first_flags: None,
        });
    }
    let mut duration = 0u64;
    if flags & SAMPLE_DURATION == 0 {
        let default = default_duration.ok_or_else(|| {
            Mp4Error::malformed(trun, "no sample durations, and no default in the `tfhd`")
        })?;
        duration = u64::from(default) * u64::from(samples);
    }
    // Without per-sample fields there is nothing to read (and the count may be anything).
    let records = if record_len == 0 { 0 } else { samples };
    for index in 0..records {
        let mut record = fields.take(record_len)?;
        if flags & SAMPLE_DURATION != 0 {
            duration += u64::from(u32::from_be_bytes([
                record[0], record[1], record[2], record[3],
            ]));
            record = &record[4..];
        }
        if flags & SAMPLE_SIZE != 0 {
            record = &record[4..];
        }
        if index == 0 && first_flags.is_none() && flags & SAMPLE_FLAGS != 0 {
            first_flags = Some(u32::from_be_bytes([
                record[0], record[1], record[2], record[3],
            ]));
        }
    }
    Ok(TrackRun {
        samples,
        duration,
        first_flags,
    })
}

/// A copy of `fragment` with every `tfdt` decode time reduced by `subtract` and the `mfhd`
/// sequence number set to `sequence` (`sequence + 1`, … for further `moof` boxes). Nothing
/// else changes, sizes included, so `trun` data offsets stay valid.
pub fn rebase_fragment(fragment: &[u8], subtract: u64, sequence: u32) -> Result<Vec<u8>, Mp4Error> {
    let mut out = fragment.to_vec();
    let mut next_sequence = Some(sequence);
    let mut moofs = 0;
    for moof in top_level(fragment)?.iter().filter(|b| b.is(b"moof")) {
        let mfhd = moof.required_child(b"mfhd")?;
        let (_, _, mut fields) = mfhd.full_box()?;
        let position = fields.position();
        fields.skip(4)?;
        let sequence = next_sequence
            .ok_or_else(|| Mp4Error::malformed(&mfhd, "the sequence number overflows"))?;
        out[position..position + 4].copy_from_slice(&sequence.to_be_bytes());
        next_sequence = sequence.checked_add(1);
        moofs += 1;

        for traf in moof.children() {
            let traf = traf?;
            if !traf.is(b"traf") {
                continue;
            }
            let tfdt = traf.required_child(b"tfdt")?;
            let (base, (position, width)) = read_tfdt(&tfdt)?;
            let rebased = base
                .checked_sub(subtract)
                .ok_or(Mp4Error::NegativeDecodeTime {
                    offset: tfdt.offset,
                    base,
                    subtract,
                })?;
            let field = &mut out[position..position + width];
            if width == 8 {
                field.copy_from_slice(&rebased.to_be_bytes());
            } else {
                // Not more than the 32-bit value it replaces.
                field.copy_from_slice(&(rebased as u32).to_be_bytes());
            }
        }
    }
    if moofs == 0 {
        return Err(Mp4Error::Missing {
            kind: FourCc(*b"moof"),
            within: "the fragment".into(),
        });
    }
    Ok(out)
}

/// A copy of the init segment with the movie's duration set: `duration` is in the video track's
/// timescale. Sets the `mvhd` duration, the video track's `tkhd` (movie timescale) and `mdhd`
/// (track timescale) durations, and the `mvex/mehd` fragment duration (movie timescale),
/// adding a `mehd` when `mvex` has none.
///
/// All four, because readers differ: a player that reads the file as it arrives (a browser's
/// `<video src>`, ffmpeg on a pipe) takes the track's duration and, when that is 0 as a live
/// muxer leaves it, the first fragment's: "2 s" for a 62 s clip.
pub fn set_duration(init: &[u8], duration: u64) -> Result<Vec<u8>, Mp4Error> {
    let info = init_info(init)?;
    let top = top_level(init)?;
    let moov = find_top(&top, b"moov", "the init segment")?;
    let mvhd = moov.required_child(b"mvhd")?;
    let (version, _, mut fields) = mvhd.full_box()?;
    fields.skip(if version == 1 { 16 } else { 8 })?;
    let movie_timescale = fields.u32()?;
    let movie_duration = rescale(duration, info.timescale, movie_timescale)
        .ok_or_else(|| Mp4Error::malformed(&mvhd, "the duration does not fit"))?;

    let mut out = init.to_vec();
    let position = fields.position();
    write_duration(&mut out, &mvhd, version, position, movie_duration)?;

    let trak = video_trak(&moov)?;
    let tkhd = trak.required_child(b"tkhd")?;
    let (version, _, mut fields) = tkhd.full_box()?;
    // creation and modification times, track id, reserved
    fields.skip(if version == 1 { 24 } else { 16 })?;
    write_duration(&mut out, &tkhd, version, fields.position(), movie_duration)?;
    let mdhd = trak.required_child(b"mdia")?.required_child(b"mdhd")?;
    let (version, _, mut fields) = mdhd.full_box()?;
    // creation and modification times, timescale
    fields.skip(if version == 1 { 20 } else { 12 })?;
    write_duration(&mut out, &mdhd, version, fields.position(), duration)?;

    let Some(mvex) = moov.child(b"mvex")? else {
        return Ok(out);
    };
    if let Some(mehd) = mvex.child(b"mehd")? {
        let (version, _, fields) = mehd.full_box()?;
        let position = fields.position();
        write_duration(&mut out, &mehd, version, position, movie_duration)?;
        return Ok(out);
    }
    let mut mehd = Vec::with_capacity(MEHD_LEN);
    mehd.extend_from_slice(&(MEHD_LEN as u32).to_be_bytes());
    mehd.extend_from_slice(b"mehd");
    mehd.extend_from_slice(&0x0100_0000u32.to_be_bytes()); // version 1, no flags
    mehd.extend_from_slice(&movie_duration.to_be_bytes());
    grow_size(&mut out, &moov, MEHD_LEN)?;
    grow_size(&mut out, &mvex, MEHD_LEN)?;
    let at = mvex.body_offset();
    out.splice(at..at, mehd);
    Ok(out)
}

/// A version 1 `mehd` box: header, version and flags, 64-bit duration.
const MEHD_LEN: usize = 8 + 4 + 8;

/// `value` (in `from` units per second) in `to` units per second, rounded.
pub(crate) fn rescale(value: u64, from: u32, to: u32) -> Option<u64> {
    if from == 0 {
        return None;
    }
    let scaled = (u128::from(value) * u128::from(to) + u128::from(from) / 2) / u128::from(from);
    u64::try_from(scaled).ok()
}

/// Writes a duration field of a version 0 (32-bit) or 1 (64-bit) full box.
fn write_duration(
    out: &mut [u8],
    of: &Mp4Box<'_>,
    version: u8,
    position: usize,
    duration: u64,
) -> Result<(), Mp4Error> {
    let (width, bytes) = if version == 1 {
        (8, duration.to_be_bytes().to_vec())
    } else {
        let short = u32::try_from(duration)
            .map_err(|_| Mp4Error::malformed(of, "the duration does not fit its 32-bit field"))?;
        (4, short.to_be_bytes().to_vec())
    };
    let field = out
        .get_mut(position..position + width)
        .filter(|_| position + width <= of.offset + of.bytes.len())
        .ok_or_else(|| Mp4Error::malformed(of, "it ends inside its fields"))?;
    field.copy_from_slice(&bytes);
    Ok(())
}

/// Adds `by` to the size in a box's header (a size of 0, "to the end", stays 0).
fn grow_size(out: &mut [u8], of: &Mp4Box<'_>, by: usize) -> Result<(), Mp4Error> {
    let too_large = || Mp4Error::malformed(of, "it is too large to grow");
    let at = of.offset;
    match be_u32(out, at) {
        Some(0) => Ok(()),
        Some(1) => {
            let size = be_u64(out, at + 8).ok_or_else(too_large)?;
            let size = size.checked_add(by as u64).ok_or_else(too_large)?;
            out[at + 8..at + 16].copy_from_slice(&size.to_be_bytes());
            Ok(())
        }
        Some(size) => {
            let size = u32::try_from(by)
                .ok()
                .and_then(|by| size.checked_add(by))
                .ok_or_else(too_large)?;
            out[at..at + 4].copy_from_slice(&size.to_be_bytes());
            Ok(())
        }
        None => Err(too_large()),
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::video::testmedia;

    /// The bytes that follow the first occurrence of `kind` (a box's payload), found without
    /// the walker.
    fn payload_after<'a>(data: &'a [u8], kind: &[u8; 4]) -> &'a [u8] {
        let at = data.windows(4).position(|w| w == kind).unwrap();
        &data[at + 4..]
    }

    fn kinds(data: &[u8]) -> Vec<String> {
        top_level(data)
            .unwrap()
            .iter()
            .map(|b| b.kind.to_string())
            .collect()
    }

    #[test]
    fn init_info_of_a_real_h264_init_segment() {
        let recording = testmedia::h264();
        assert_eq!(kinds(&recording.init), ["ftyp", "moov"]);
        let info = init_info(&recording.init).unwrap();
        let avcc = payload_after(&recording.init, b"avcC");
        let expected = format!("avc1.{:02X}{:02X}{:02X}", avcc[1], avcc[2], avcc[3]);
        assert_eq!(info.codec, expected);
        // x264's baseline-compatible output at 320x240 30 fps: a Constrained Baseline (0x42)
        // or High (0x64) profile.
        assert!(matches!(avcc[1], 0x42 | 0x4D | 0x64), "{}", info.codec);
        assert_eq!((info.width, info.height), (320, 240));
        assert_eq!(info.track_id, 1);
        assert!(info.timescale > 0);
    }

    #[test]
    fn init_info_of_a_real_h265_init_segment() {
        let Some(recording) = testmedia::h265() else {
            return;
        };
        let info = init_info(&recording.init).unwrap();
        assert_eq!((info.width, info.height), (320, 240));
        // Main profile (1), compatible with Main and Main 10 (bits 1 and 2, reversed: 0x6),
        // main tier; level and constraint bytes from the record itself.
        let hvcc = payload_after(&recording.init, b"hvcC");
        let level = hvcc[12];
        assert_eq!(hvcc[1] & 0x1f, 1, "x265's default is the Main profile");
        assert!(
            info.codec.starts_with(&format!("hvc1.1.6.L{level}."))
                || info.codec.starts_with(&format!("hev1.1.6.L{level}.")),
            "{}",
            info.codec
        );
        let constraints: Vec<String> = hvcc[6..12].iter().map(|b| format!("{b:X}")).collect();
        let tail = info.codec.splitn(5, '.').nth(4).unwrap();
        assert!(constraints.join(".").starts_with(tail), "{}", info.codec);
    }

    /// An `hvcC` written by hand: Main 10, high tier, profile space 1, constraint bytes with a
    /// zero in the middle and zeros at the end.
    #[test]
    fn hevc_codec_string_follows_annex_e() {
        // Profile space 1 (0b01), high tier (1), profile 2 (0b00010).
        let mut record = vec![1, 0b0110_0010];
        record.extend(0x2000_0000u32.to_be_bytes()); // compatible with profile 2
        record.extend([0xB0, 0x00, 0x01, 0x00, 0x00, 0x00]);
        record.push(123);
        let mut hvcc = ((8 + record.len()) as u32).to_be_bytes().to_vec();
        hvcc.extend(b"hvcC");
        hvcc.extend(&record);
        let boxes = top_level(&hvcc).unwrap();
        let codec = hevc_codec(FourCc(*b"hev1"), &boxes[0]).unwrap();
        assert_eq!(codec, "hev1.A2.4.H123.B0.0.1");

        // Cut short: an error, not a panic.
        hvcc.truncate(8 + 10);
        hvcc[..4].copy_from_slice(&18u32.to_be_bytes());
        let boxes = top_level(&hvcc).unwrap();
        assert!(matches!(
            hevc_codec(FourCc(*b"hvc1"), &boxes[0]),
            Err(Mp4Error::Malformed { kind, .. }) if kind.0 == *b"hvcC"
        ));
    }

    #[test]
    fn fragment_info_of_real_fragments() {
        let recording = testmedia::h264();
        let timescale = u64::from(init_info(&recording.init).unwrap().timescale);
        assert_eq!(recording.fragments.len(), 5);
        let infos: Vec<FragmentInfo> = recording
            .fragments
            .iter()
            .map(|f| fragment_info(f).unwrap())
            .collect();
        assert_eq!(kinds(&recording.fragments[0]), ["styp", "moof", "mdat"]);
        let total: u64 = infos.iter().map(|i| i.duration).sum();
        assert_eq!(total, 5 * timescale);
        assert_eq!(infos.iter().map(|i| i.samples).sum::<u32>(), 150);
        for (pair, index) in infos.windows(2).zip(1..) {
            assert_eq!(pair[1].sequence, pair[0].sequence + 1, "fragment {index}");
            assert_eq!(
                pair[1].base_decode_time,
                pair[0].base_decode_time + pair[0].duration,
                "fragment {index}"
            );
        }
        for info in &infos {
            assert!(info.first_sample_is_sync);
            assert_eq!(info.track_id, 1);
            assert_eq!(info.duration, timescale);
        }
        // Absolute timestamps, from 1000 hours: a 64-bit (version 1) tfdt.
        let start = testmedia::START_NS / 1_000_000_000 * timescale;
        assert_eq!(infos[0].base_decode_time, start, "{infos:?}");
    }

    #[test]
    fn rebase_patches_only_decode_time_and_sequence() {
        let recording = testmedia::h264();
        let fragment = &recording.fragments[2];
        let before = fragment_info(fragment).unwrap();
        let subtract = before.base_decode_time - 42;
        let rebased = rebase_fragment(fragment, subtract, 7).unwrap();
        assert_eq!(rebased.len(), fragment.len());
        let after = fragment_info(&rebased).unwrap();
        assert_eq!(
            after,
            FragmentInfo {
                sequence: 7,
                base_decode_time: 42,
                ..before
            }
        );
        // Only bytes of the two fields (8 of tfdt v1, 4 of mfhd) differ.
        let differing: Vec<usize> = (0..fragment.len())
            .filter(|&i| fragment[i] != rebased[i])
            .collect();
        assert!(
            !differing.is_empty() && differing.len() <= 12,
            "{differing:?}"
        );
        assert_eq!(kinds(&rebased), kinds(fragment));

        let too_much = rebase_fragment(fragment, before.base_decode_time + 1, 1);
        assert!(
            matches!(too_much, Err(Mp4Error::NegativeDecodeTime { base, .. }) if base == before.base_decode_time),
            "{too_much:?}"
        );
        assert!(matches!(
            rebase_fragment(&recording.init, 0, 1),
            Err(Mp4Error::Missing { kind, .. }) if kind.0 == *b"moof"
        ));
    }

    fn full_box(kind: &[u8; 4], version: u8, flags: u32, fields: &[u8]) -> Vec<u8> {
        let mut bytes = ((12 + fields.len()) as u32).to_be_bytes().to_vec();
        bytes.extend(kind);
        bytes.extend(((u32::from(version) << 24) | flags).to_be_bytes());
        bytes.extend(fields);
        bytes
    }

    fn container(kind: &[u8; 4], children: &[Vec<u8>]) -> Vec<u8> {
        let body = children.concat();
        let mut bytes = ((8 + body.len()) as u32).to_be_bytes().to_vec();
        bytes.extend(kind);
        bytes.extend(body);
        bytes
    }

    /// A fragment with a version 0 `tfdt` at 90 000, 3 samples whose duration (512) and flags
    /// (sync) are only the `tfhd` defaults.
    fn hand_made_fragment(trun_samples: u32) -> Vec<u8> {
        let mut tfhd = 1u32.to_be_bytes().to_vec(); // track 1
        tfhd.extend(512u32.to_be_bytes());
        tfhd.extend(0x0200_0000u32.to_be_bytes()); // depends on nothing, sync
        let mut trun = trun_samples.to_be_bytes().to_vec();
        trun.extend(0u32.to_be_bytes()); // data offset
        let moof = container(
            b"moof",
            &[
                full_box(b"mfhd", 0, 0, &9u32.to_be_bytes()),
                container(
                    b"traf",
                    &[
                        full_box(b"tfhd", 0, 0x02_0028, &tfhd),
                        full_box(b"tfdt", 0, 0, &90_000u32.to_be_bytes()),
                        full_box(b"trun", 0, 0x001, &trun),
                    ],
                ),
            ],
        );
        [moof, container(b"mdat", &[vec![0; 30]])].concat()
    }

    #[test]
    fn defaults_from_tfhd_and_version_0_tfdt() {
        let fragment = hand_made_fragment(3);
        let info = fragment_info(&fragment).unwrap();
        assert_eq!(
            info,
            FragmentInfo {
                sequence: 9,
                track_id: 1,
                base_decode_time: 90_000,
                duration: 3 * 512,
                samples: 3,
                first_sample_is_sync: true,
            }
        );
        let rebased = rebase_fragment(&fragment, 89_000, 1).unwrap();
        assert_eq!(rebased.len(), fragment.len());
        let info = fragment_info(&rebased).unwrap();
        assert_eq!((info.sequence, info.base_decode_time), (1, 1000));

        // Billions of samples without per-sample fields: no table to read, no long loop.
        let info = fragment_info(&hand_made_fragment(u32::MAX)).unwrap();
        assert_eq!(info.duration, u64::from(u32::MAX) * 512);
    }

    #[test]
    fn sizes_of_64_bits_and_to_the_end() {
        let fragment = hand_made_fragment(3);
        let moof_len = top_level(&fragment).unwrap()[0].bytes.len();
        let (moof, mdat) = fragment.split_at(moof_len);

        // mdat with a 64-bit size.
        let mut large = moof.to_vec();
        large.extend(1u32.to_be_bytes());
        large.extend(b"mdat");
        large.extend(((mdat.len() + 8) as u64).to_be_bytes());
        large.extend(&mdat[8..]);
        let boxes = top_level(&large).unwrap();
        assert_eq!(boxes[1].kind.0, *b"mdat");
        assert_eq!(boxes[1].body(), &mdat[8..]);
        assert_eq!(fragment_info(&large).unwrap().samples, 3);

        // mdat with size 0: up to the end.
        let mut to_end = fragment.clone();
        to_end[moof_len..moof_len + 4].copy_from_slice(&0u32.to_be_bytes());
        let boxes = top_level(&to_end).unwrap();
        assert_eq!(boxes[1].bytes.len(), mdat.len());
        assert_eq!(fragment_info(&to_end).unwrap().samples, 3);

        // A 64-bit size past the end, and one smaller than its header.
        let mut past = large.clone();
        past[moof_len + 8..moof_len + 16].copy_from_slice(&u64::MAX.to_be_bytes());
        assert!(matches!(
            fragment_info(&past),
            Err(Mp4Error::BoxPastEnd { kind, .. }) if kind.0 == *b"mdat"
        ));
        past[moof_len + 8..moof_len + 16].copy_from_slice(&12u64.to_be_bytes());
        assert!(matches!(
            fragment_info(&past),
            Err(Mp4Error::BoxTooShort { kind, size: 12, .. }) if kind.0 == *b"mdat"
        ));
    }

    #[test]
    fn size_fields_past_the_end_are_errors_naming_the_box() {
        let recording = testmedia::h264();
        let mut fragment = recording.fragments[0].clone();
        let at = top_level(&fragment).unwrap()[1].offset;
        fragment[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        let error = fragment_info(&fragment).unwrap_err();
        assert!(error.to_string().contains("`moof`"), "{error}");

        // A child (`trun`) larger than its parent.
        let mut fragment = recording.fragments[0].clone();
        let at = fragment.windows(4).position(|w| w == b"trun").unwrap() - 4;
        fragment[at..at + 4].copy_from_slice(&100_000u32.to_be_bytes());
        let error = fragment_info(&fragment).unwrap_err();
        assert!(
            matches!(error, Mp4Error::BoxPastEnd { kind, .. } if kind.0 == *b"trun"),
            "{error}"
        );
        // A sample count larger than the table.
        let mut fragment = recording.fragments[0].clone();
        fragment[at + 12..at + 16].copy_from_slice(&1_000_000u32.to_be_bytes());
        let error = fragment_info(&fragment).unwrap_err();
        assert!(
            matches!(error, Mp4Error::Malformed { kind, .. } if kind.0 == *b"trun"),
            "{error}"
        );
        assert!(rebase_fragment(&recording.init[..20], 0, 1).is_err());
    }

    /// Runs every reader on `data`; only panics matter.
    fn read_everything(data: &[u8]) -> bool {
        let results = [
            init_info(data).is_ok(),
            fragment_info(data).is_ok(),
            rebase_fragment(data, 1000, 1).is_ok(),
            set_duration(data, 1000).is_ok(),
        ];
        results.iter().any(|&ok| ok)
    }

    #[test]
    fn truncated_input_is_an_error() {
        let recording = testmedia::h264();
        for data in [&recording.init, &recording.fragments[1]] {
            let boundaries: Vec<usize> = top_level(data)
                .unwrap()
                .iter()
                .map(|b| b.offset + b.bytes.len())
                .collect();
            // Every cut inside the headers, then every 97th byte through the samples.
            let cuts = (0..data.len().min(2048)).chain((2048..data.len()).step_by(97));
            for cut in cuts {
                let ok = read_everything(&data[..cut]);
                if !boundaries.contains(&cut) {
                    assert!(!ok, "cut at {cut} of {} still reads", data.len());
                }
            }
        }
        assert!(matches!(
            fragment_info(&[0, 0, 0]),
            Err(Mp4Error::TruncatedHeader { offset: 0 })
        ));
        assert!(matches!(
            init_info(&[]),
            Err(Mp4Error::Missing { kind, .. }) if kind.0 == *b"moov"
        ));
    }

    #[test]
    fn garbage_never_panics() {
        let recording = testmedia::h264();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..300 {
            let len = rng.gen_range(0..4096);
            let noise: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            assert!(!read_everything(&noise));
        }
        // Real media with bytes overwritten (sizes, counts, versions, flags get hit).
        let header_len = |data: &[u8]| {
            let boxes = top_level(data).unwrap();
            boxes
                .iter()
                .find(|b| b.is(b"mdat"))
                .map_or(data.len(), |b| b.offset)
        };
        for data in [&recording.init, &recording.fragments[0]] {
            let len = header_len(data);
            for _ in 0..3000 {
                let mut damaged = data.clone();
                for _ in 0..rng.gen_range(1..4) {
                    let at = rng.gen_range(0..len);
                    damaged[at] = rng.gen();
                }
                read_everything(&damaged);
            }
        }
    }

    #[test]
    fn set_duration_sets_every_duration_and_adds_a_mehd() {
        let recording = testmedia::h264();
        let info = init_info(&recording.init).unwrap();
        let init = set_duration(&recording.init, 3 * u64::from(info.timescale)).unwrap();
        assert_eq!(init.len(), recording.init.len() + MEHD_LEN);
        assert_eq!(init_info(&init).unwrap(), info);
        let top = top_level(&init).unwrap();
        let mvex = top[1].required_child(b"mvex").unwrap();
        let (version, _, mut mehd) = mvex.required_child(b"mehd").unwrap().full_box().unwrap();
        assert_eq!(version, 1);
        let movie_duration = mehd.u64().unwrap();
        let (version, _, mut mvhd) = top[1].required_child(b"mvhd").unwrap().full_box().unwrap();
        mvhd.skip(if version == 1 { 16 } else { 8 }).unwrap();
        let movie_timescale = mvhd.u32().unwrap();
        let mvhd_duration = if version == 1 {
            mvhd.u64().unwrap()
        } else {
            u64::from(mvhd.u32().unwrap())
        };
        assert_eq!(movie_duration, 3 * u64::from(movie_timescale));
        assert_eq!(mvhd_duration, movie_duration);
        // The track's durations too: tkhd in the movie's timescale, mdhd in the track's.
        let trak = video_trak(&top[1]).unwrap();
        let (version, _, mut tkhd) = trak.required_child(b"tkhd").unwrap().full_box().unwrap();
        tkhd.skip(if version == 1 { 24 } else { 16 }).unwrap();
        let tkhd_duration = if version == 1 {
            tkhd.u64().unwrap()
        } else {
            u64::from(tkhd.u32().unwrap())
        };
        assert_eq!(tkhd_duration, movie_duration);
        let mdhd = trak.required_child(b"mdia").unwrap();
        let (version, _, mut mdhd) = mdhd.required_child(b"mdhd").unwrap().full_box().unwrap();
        mdhd.skip(if version == 1 { 20 } else { 12 }).unwrap();
        let mdhd_duration = if version == 1 {
            mdhd.u64().unwrap()
        } else {
            u64::from(mdhd.u32().unwrap())
        };
        assert_eq!(mdhd_duration, 3 * u64::from(info.timescale));
        // Once there, the mehd is patched in place.
        let again = set_duration(&init, u64::from(info.timescale)).unwrap();
        assert_eq!(again.len(), init.len());
    }
}
