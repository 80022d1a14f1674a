//! Tests of the MP4 walker, readers and patches, on real `cmafmux` output and hand-made boxes.

use rand::{Rng, SeedableRng};

use super::init::{hevc_codec, video_trak};
use super::patch::MEHD_LEN;
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
