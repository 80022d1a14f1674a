//! The in-place patches that make a clip out of stored fragments: decode times rebased to 0,
//! sequence numbers renumbered, the movie duration set. Invariant: a patch never changes a
//! box's size (so `trun` data offsets stay valid), except [`set_duration`] adding a `mehd`,
//! whose parents grow by exactly its length.

use super::boxes::{be_u32, be_u64, find_top, top_level, Mp4Box};
use super::fragment::read_tfdt;
use super::init::init_info;
use super::init::video_trak;
use super::{FourCc, Mp4Error};

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
    debug_assert_eq!(out.len(), fragment.len(), "a rebase never changes a size");
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
    debug_assert_eq!(
        mehd.len(),
        MEHD_LEN,
        "the mehd is as long as its parents grow"
    );
    grow_size(&mut out, &moov, MEHD_LEN)?;
    grow_size(&mut out, &mvex, MEHD_LEN)?;
    let at = mvex.body_offset();
    out.splice(at..at, mehd);
    debug_assert_eq!(out.len(), init.len() + MEHD_LEN);
    Ok(out)
}

/// A version 1 `mehd` box: header, version and flags, 64-bit duration.
pub(super) const MEHD_LEN: usize = 8 + 4 + 8;

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
