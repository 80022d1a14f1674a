//! What playback needs from an init segment: the video track's timescale, id, size and its
//! RFC 6381 codecs string (H.264 `avc1`/`avc3`, H.265 `hvc1`/`hev1`).

use super::boxes::{find_top, top_level, Mp4Box};
use super::{FourCc, InitInfo, Mp4Error};

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
pub(super) fn video_trak<'a>(moov: &Mp4Box<'a>) -> Result<Mp4Box<'a>, Mp4Error> {
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
pub(super) fn hevc_codec(entry: FourCc, hvcc: &Mp4Box<'_>) -> Result<String, Mp4Error> {
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
