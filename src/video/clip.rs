//! MP4 clips: one fragmented MP4 file made from an init segment and stored fragments, playing
//! from 0 with its duration in the header.
//!
//! Owns the assembly: the init segment with the movie duration set, then each fragment with
//! its decode times rebased so the first starts at 0, sequence numbers from 1, and its `styp`
//! left out (a plain MP4 file has one file type box, the init segment's `ftyp`).

use super::log::{FragmentLog, FragmentMeta, VideoLogError};
use super::mp4::{self, Mp4Error};

/// A playable MP4 file.
#[derive(Debug, Clone)]
pub struct Clip {
    pub data: Vec<u8>,
    pub duration_ms: u64,
}

/// Builds a clip from fragments that all use `init` (the caller ends a clip where the init
/// segment changes), in decode order. A gap between fragments stays a gap in the clip.
pub fn build_clip(init: &[u8], fragments: &[Vec<u8>]) -> Result<Clip, Mp4Error> {
    let track = mp4::init_info(init)?;
    let infos = fragments
        .iter()
        .enumerate()
        .map(|(index, fragment)| {
            let info = mp4::fragment_info(fragment).map_err(|e| e.in_fragment(index))?;
            if info.track_id != track.track_id {
                return Err(Mp4Error::TrackMismatch {
                    index,
                    found: info.track_id,
                    expected: track.track_id,
                });
            }
            Ok(info)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let start = infos.first().ok_or(Mp4Error::NoFragments)?.base_decode_time;
    let end = infos
        .iter()
        .map(|info| info.base_decode_time.saturating_add(info.duration))
        .max()
        .unwrap_or(start);
    let duration = end.saturating_sub(start);

    let mut data = mp4::set_duration(init, duration)?;
    data.reserve(fragments.iter().map(Vec::len).sum());
    let mut sequence = 1u32;
    for (index, fragment) in fragments.iter().enumerate() {
        let rebased =
            mp4::rebase_fragment(fragment, start, sequence).map_err(|e| e.in_fragment(index))?;
        for part in mp4::top_level(&rebased).map_err(|e| e.in_fragment(index))? {
            if part.is(b"styp") {
                continue;
            }
            if part.is(b"moof") {
                sequence = sequence.saturating_add(1);
            }
            data.extend_from_slice(part.bytes);
        }
    }
    Ok(Clip {
        data,
        // The timescale is not 0 (init_info checks it).
        duration_ms: mp4::rescale(duration, track.timescale, 1000).unwrap_or(u64::MAX),
    })
}

/// The fragments a clip of `fragments` (ascending) plays: the first recording run with one
/// init segment (a clip ends where the camera reconnected or its stream changed).
pub fn first_run(fragments: &[FragmentMeta]) -> &[FragmentMeta] {
    let Some(first) = fragments.first() else {
        return fragments;
    };
    let len = fragments
        .iter()
        .enumerate()
        .take_while(|(i, f)| f.init_id == first.init_id && (*i == 0 || !f.discontinuity))
        .count();
    &fragments[..len]
}

/// A clip read from the fragment log: fragments `first..=last`, playing with `init_id`.
#[derive(Debug)]
pub struct LoggedClip {
    pub clip: Clip,
    pub init_id: u64,
    pub first: u64,
    pub last: u64,
}

/// Why a clip could not be read from the log.
#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    #[error(transparent)]
    Log(#[from] VideoLogError),
    #[error(transparent)]
    Mp4(#[from] Mp4Error),
    #[error("init segment {init_id} of {camera:?} is missing")]
    MissingInit { camera: String, init_id: u64 },
    #[error("the fragments were deleted by retention while the clip was read")]
    Gone,
}

/// Reads `run` (one recording run with one init segment, as [`first_run`] gives, in order) and
/// builds its clip. A fragment deleted by retention while the clip is read ends it there.
pub fn read_clip(
    log: &FragmentLog,
    camera: &str,
    run: &[FragmentMeta],
) -> Result<LoggedClip, ClipError> {
    let first = run.first().ok_or(ClipError::Gone)?;
    let init_id = first.init_id;
    let init = log
        .init_segment(camera, init_id)?
        .ok_or_else(|| ClipError::MissingInit {
            camera: camera.to_string(),
            init_id,
        })?;
    let mut data = Vec::with_capacity(run.len());
    let mut last = first.number;
    for f in run {
        match log.read(camera, f.number)? {
            Some(bytes) => data.push(bytes),
            None => break,
        }
        last = f.number;
    }
    if data.is_empty() {
        return Err(ClipError::Gone);
    }
    Ok(LoggedClip {
        clip: build_clip(&init, &data)?,
        init_id,
        first: first.number,
        last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::testmedia::{self, Recording};

    fn write_clip(clip: &Clip) -> tempfile::NamedTempFile {
        let file = tempfile::Builder::new().suffix(".mp4").tempfile().unwrap();
        std::fs::write(file.path(), &clip.data).unwrap();
        file
    }

    /// Fragments 2 to 4 (of 5, 1 s each) → a 3 s clip from 0 that plays all 90 frames.
    fn check_middle_three_seconds(recording: &Recording, decode: &str) {
        let clip = build_clip(&recording.init, &recording.fragments[1..4]).unwrap();
        assert_eq!(clip.duration_ms, 3000);

        let kinds: Vec<String> = mp4::top_level(&clip.data)
            .unwrap()
            .iter()
            .map(|b| b.kind.to_string())
            .collect();
        assert_eq!(
            kinds,
            ["ftyp", "moov", "moof", "mdat", "moof", "mdat", "moof", "mdat"]
        );
        let track = mp4::init_info(&clip.data).unwrap();
        let fragments_start = mp4::top_level(&clip.data).unwrap()[2].offset;
        let mut rest = &clip.data[fragments_start..];
        for (sequence, start_second) in (1..=3).zip(0..) {
            let info = mp4::fragment_info(rest).unwrap();
            assert_eq!(info.sequence, sequence);
            assert_eq!(
                info.base_decode_time,
                start_second * u64::from(track.timescale)
            );
            let moof_and_mdat: usize = mp4::top_level(rest).unwrap()[..2]
                .iter()
                .map(|b| b.bytes.len())
                .sum();
            rest = &rest[moof_and_mdat..];
        }

        let file = write_clip(&clip);
        let seconds = testmedia::discovered_duration(file.path());
        assert!(
            (seconds - 3.0).abs() <= 0.1,
            "gst-discoverer says {seconds} s"
        );
        assert_eq!(testmedia::count_decoded_frames(file.path(), decode), 90);
    }

    #[test]
    fn h264_clip_plays_from_zero_for_its_duration() {
        check_middle_three_seconds(testmedia::h264(), "h264parse ! avdec_h264");
    }

    #[test]
    fn h265_clip_plays_from_zero_for_its_duration() {
        if let Some(recording) = testmedia::h265() {
            check_middle_three_seconds(recording, "h265parse ! avdec_h265");
        }
    }

    #[test]
    fn a_gap_between_fragments_stays_in_the_duration() {
        let recording = testmedia::h264();
        let fragments = [
            recording.fragments[0].clone(),
            recording.fragments[2].clone(),
        ];
        let clip = build_clip(&recording.init, &fragments).unwrap();
        assert_eq!(clip.duration_ms, 3000);
    }

    #[test]
    fn bad_input_is_an_error_naming_the_fragment() {
        let recording = testmedia::h264();
        assert!(matches!(
            build_clip(&recording.init, &[]),
            Err(Mp4Error::NoFragments)
        ));
        let fragments = [recording.fragments[0].clone(), vec![0, 0, 0, 9, 1, 2]];
        let error = build_clip(&recording.init, &fragments).unwrap_err();
        assert!(
            matches!(error, Mp4Error::InFragment { index: 1, .. }),
            "{error}"
        );
        // Out of order: the second would start before the first.
        let fragments = [
            recording.fragments[1].clone(),
            recording.fragments[0].clone(),
        ];
        let error = build_clip(&recording.init, &fragments).unwrap_err();
        assert!(
            matches!(&error, Mp4Error::InFragment { index: 1, source } if matches!(**source, Mp4Error::NegativeDecodeTime { .. })),
            "{error}"
        );
        assert!(build_clip(&recording.fragments[0], &recording.fragments).is_err());
    }
}
