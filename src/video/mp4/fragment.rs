//! What playback needs from a fragment (`moof` + `mdat`): the `mfhd` sequence number and,
//! of its first track fragment, the base decode time, the summed sample durations and whether
//! it starts on a keyframe (defaults from `tfhd` where `trun` leaves them out).

use super::boxes::{find_top, top_level, Mp4Box};
use super::{FragmentInfo, Mp4Error};

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
pub(super) fn read_tfdt(tfdt: &Mp4Box<'_>) -> Result<(u64, (usize, usize)), Mp4Error> {
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
