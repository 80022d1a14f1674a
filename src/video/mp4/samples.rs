//! Every sample of a fragment (`moof` + `mdat`) with its decode time, composition offset,
//! sync flag and bytes: what remuxing a stored fragment into another container needs
//! (GetMedia's MKV). Defaults come from the `tfhd`, then the init segment's `trex`
//! (`TrexDefaults`); data offsets are taken from the `moof`'s start (`default-base-is-moof`,
//! what cmafmux and `write` produce) unless the `tfhd` gives a base data offset.
//!
//! Invariant: a sample's byte range is checked against the fragment before it is handed out.

use super::boxes::{find_top, top_level, Mp4Box};
use super::fragment::read_tfdt;
use super::Mp4Error;

/// One sample of a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleRef {
    /// Decode time in the track's timescale.
    pub decode_time: u64,
    pub duration: u32,
    pub composition_offset: i64,
    pub sync: bool,
    /// Byte range in the fragment.
    pub range: std::ops::Range<usize>,
}

/// The `trex` defaults of the init segment's track (all zero when there is no `trex`).
#[derive(Debug, Clone, Copy, Default)]
pub struct TrexDefaults {
    pub duration: u32,
    pub size: u32,
    pub flags: u32,
}

/// The `trex` of the init segment (the first one).
pub fn trex_defaults(init: &[u8]) -> Result<TrexDefaults, Mp4Error> {
    let top = top_level(init)?;
    let moov = find_top(&top, b"moov", "the init segment")?;
    let Some(trex) = moov
        .child(b"mvex")?
        .map(|m| m.child(b"trex"))
        .transpose()?
        .flatten()
    else {
        return Ok(TrexDefaults::default());
    };
    let (_, _, mut f) = trex.full_box()?;
    let _track = f.u32()?;
    let _description = f.u32()?;
    Ok(TrexDefaults {
        duration: f.u32()?,
        size: f.u32()?,
        flags: f.u32()?,
    })
}

const NON_SYNC: u32 = 0x0001_0000;

/// The samples of the fragment's first track fragment, in decode order.
pub fn fragment_samples(fragment: &[u8], trex: TrexDefaults) -> Result<Vec<SampleRef>, Mp4Error> {
    let top = top_level(fragment)?;
    let moof = find_top(&top, b"moof", "the fragment")?;
    let traf = moof.required_child(b"traf")?;
    let (_, tfhd_flags, mut tfhd) = traf.required_child(b"tfhd")?.full_box()?;
    let _track = tfhd.u32()?;
    let mut base = moof.offset as u64;
    if tfhd_flags & 0x01 != 0 {
        base = tfhd.u64()?;
    }
    if tfhd_flags & 0x02 != 0 {
        tfhd.skip(4)?;
    }
    let default_duration = if tfhd_flags & 0x08 != 0 {
        tfhd.u32()?
    } else {
        trex.duration
    };
    let default_size = if tfhd_flags & 0x10 != 0 {
        tfhd.u32()?
    } else {
        trex.size
    };
    let default_flags = if tfhd_flags & 0x20 != 0 {
        tfhd.u32()?
    } else {
        trex.flags
    };
    let (mut decode_time, _) = read_tfdt(&traf.required_child(b"tfdt")?)?;

    let mut out = Vec::new();
    let mut next_offset = base;
    for trun in traf.children() {
        let trun = trun?;
        if !trun.is(b"trun") {
            continue;
        }
        let (version, flags, mut f) = trun.full_box()?;
        let count = f.u32()?;
        let mut offset = if flags & 0x001 != 0 {
            base.wrapping_add(f.u32()? as i32 as i64 as u64)
        } else {
            next_offset
        };
        let first_flags = if flags & 0x004 != 0 {
            Some(f.u32()?)
        } else {
            None
        };
        let record = 4 * (flags & 0xf00).count_ones() as usize;
        if (count as usize).saturating_mul(record) > f.remaining() {
            return Err(bad(
                &trun,
                "its sample table is shorter than its sample count",
            ));
        }
        for index in 0..count {
            let duration = if flags & 0x100 != 0 {
                f.u32()?
            } else {
                default_duration
            };
            let size = if flags & 0x200 != 0 {
                f.u32()?
            } else {
                default_size
            };
            let sample_flags = if flags & 0x400 != 0 {
                f.u32()?
            } else if index == 0 {
                first_flags.unwrap_or(default_flags)
            } else {
                default_flags
            };
            let composition_offset = if flags & 0x800 != 0 {
                let raw = f.u32()?;
                if version == 0 {
                    i64::from(raw)
                } else {
                    i64::from(raw as i32)
                }
            } else {
                0
            };
            let start =
                usize::try_from(offset).map_err(|_| bad(&trun, "a data offset is out of range"))?;
            let end = start
                .checked_add(size as usize)
                .filter(|&end| end <= fragment.len())
                .ok_or_else(|| bad(&trun, "a sample runs past the fragment"))?;
            out.push(SampleRef {
                decode_time,
                duration,
                composition_offset,
                sync: sample_flags & NON_SYNC == 0,
                range: start..end,
            });
            decode_time = decode_time.saturating_add(u64::from(duration));
            offset = end as u64;
        }
        next_offset = offset;
    }
    Ok(out)
}

fn bad(b: &Mp4Box<'_>, problem: &'static str) -> Mp4Error {
    Mp4Error::Malformed {
        kind: b.kind,
        offset: b.offset,
        problem,
    }
}

/// The video track's codec and decoder configuration record (`avcC` / `hvcC` body) from an
/// init segment.
pub fn video_config(init: &[u8]) -> Result<(super::write::VideoCodec, Vec<u8>), Mp4Error> {
    use super::write::VideoCodec;
    let top = top_level(init)?;
    let moov = find_top(&top, b"moov", "the init segment")?;
    let trak = super::init::video_trak(&moov)?;
    let stsd = trak
        .required_child(b"mdia")?
        .required_child(b"minf")?
        .required_child(b"stbl")?
        .required_child(b"stsd")?;
    let (_, _, mut fields) = stsd.full_box()?;
    let _count = fields.u32()?;
    let entry = match fields.rest_as_box().children().next() {
        Some(entry) => entry?,
        None => return Err(bad(&stsd, "it has no sample entry")),
    };
    let (codec, record) = if entry.is(b"avc1") || entry.is(b"avc3") {
        (VideoCodec::H264, b"avcC")
    } else if entry.is(b"hvc1") || entry.is(b"hev1") {
        (VideoCodec::H265, b"hvcC")
    } else {
        return Err(Mp4Error::UnsupportedCodec(entry.kind));
    };
    let mut fields = entry.fields();
    // VisualSampleEntry's fixed fields.
    fields.skip(78)?;
    let config = fields.rest_as_box().required_child(record)?;
    Ok((codec, config.body().to_vec()))
}
