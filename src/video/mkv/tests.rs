//! The MKV part against real video: the test recordings' fMP4 fragments go out as MKV
//! (`mux`), come back in through the streaming demuxer in small chunks, are remuxed to fMP4
//! and must hold the same frames; and bad streams give the errors PutMedia answers with.

use super::demux::{Demuxer, Limits};
use super::mux::{fragment_document, FragmentTags, MkvFrame, MkvTrack};
use super::remux::{Assembler, FragmentLimits, Output, RemuxError};
use super::{ebml, id, MkvError, CODEC_H264, CODEC_H265};
use crate::video::mp4::{self, write::VideoCodec};
use crate::video::testmedia::{self, Recording};

const LIMITS: Limits = Limits {
    max_element: 8 << 20,
    max_tracks: 3,
};
const FRAGMENTS: FragmentLimits = FragmentLimits {
    max_bytes: 50 << 20,
    max_duration_ns: 10_000_000_000,
};

/// The recording as MKV documents (one per fragment) and each fragment's frames.
fn as_mkv(recording: &Recording) -> (Vec<u8>, Vec<Vec<Vec<u8>>>, MkvTrack) {
    let (codec, config) = mp4::video_config(&recording.init).unwrap();
    let info = mp4::init_info(&recording.init).unwrap();
    let trex = mp4::trex_defaults(&recording.init).unwrap();
    let track = MkvTrack {
        codec_id: match codec {
            VideoCodec::H264 => CODEC_H264,
            VideoCodec::H265 => CODEC_H265,
        }
        .to_string(),
        codec_private: config,
        width: info.width,
        height: info.height,
    };
    let mut stream = Vec::new();
    let mut all = Vec::new();
    for (i, fragment) in recording.fragments.iter().enumerate() {
        let samples = mp4::fragment_samples(fragment, trex).unwrap();
        let frames: Vec<MkvFrame<'_>> = samples
            .iter()
            .map(|s| MkvFrame {
                pts_ms: ((s.decode_time as i64 + s.composition_offset) * 1000
                    / i64::from(info.timescale)),
                keyframe: s.sync,
                data: &fragment[s.range.clone()],
            })
            .collect();
        all.push(frames.iter().map(|f| f.data.to_vec()).collect());
        let tags = FragmentTags {
            fragment_number: (i + 1).to_string(),
            server_ms: 1_700_000_000_000,
            producer_ms: 1_700_000_000_000,
            ..FragmentTags::default()
        };
        stream.extend(fragment_document(&track, &frames, &tags));
    }
    (stream, all, track)
}

/// Demuxes `stream` in chunks of `chunk` bytes and assembles it.
fn assemble(stream: &[u8], chunk: usize) -> Result<Vec<Output>, RemuxError> {
    let mut demuxer = Demuxer::new(LIMITS);
    let mut assembler = Assembler::new(FRAGMENTS);
    let mut outputs = Vec::new();
    let mut events = Vec::new();
    for part in stream.chunks(chunk) {
        demuxer.push(part, &mut events)?;
        for event in events.drain(..) {
            outputs.extend(assembler.event(event)?);
        }
    }
    demuxer.finish(&mut events)?;
    for event in events.drain(..) {
        outputs.extend(assembler.event(event)?);
    }
    Ok(outputs)
}

fn round_trip(recording: &Recording) {
    let (stream, frames, _) = as_mkv(recording);
    for chunk in [7, 4096, stream.len()] {
        let outputs = assemble(&stream, chunk).unwrap();
        let track = outputs
            .iter()
            .find_map(|o| match o {
                Output::Track(t) => Some(t.clone()),
                _ => None,
            })
            .expect("a track");
        let info = mp4::init_info(&track.init).unwrap();
        let original = mp4::init_info(&recording.init).unwrap();
        assert_eq!(
            (info.codec, info.width, info.height),
            (original.codec, original.width, original.height)
        );
        let fragments: Vec<_> = outputs
            .iter()
            .filter_map(|o| match o {
                Output::Fragment(f) => Some(f.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(fragments.len(), frames.len(), "one fragment per cluster");
        let buffering = outputs
            .iter()
            .filter(|o| matches!(o, Output::Buffering { .. }))
            .count();
        assert!(buffering >= fragments.len());
        let trex = mp4::trex_defaults(&track.init).unwrap();
        for (fragment, expected) in fragments.iter().zip(&frames) {
            let fi = mp4::fragment_info(&fragment.data).unwrap();
            assert!(fi.first_sample_is_sync);
            assert_eq!(fi.samples as usize, expected.len());
            assert!(
                (900..=1100).contains(&fragment.duration_ms),
                "{}",
                fragment.duration_ms
            );
            let samples = mp4::fragment_samples(&fragment.data, trex).unwrap();
            let got: Vec<Vec<u8>> = samples
                .iter()
                .map(|s| fragment.data[s.range.clone()].to_vec())
                .collect();
            assert_eq!(&got, expected);
        }
        // The stored form makes a clip as camera fragments do.
        let datas: Vec<Vec<u8>> = fragments.iter().map(|f| f.data.to_vec()).collect();
        crate::video::clip::build_clip(&track.init, &datas).unwrap();
    }
}

#[test]
fn h264_goes_through_mkv_and_back_to_the_same_frames() {
    round_trip(testmedia::h264());
}

#[test]
fn h265_goes_through_mkv_and_back_to_the_same_frames() {
    if let Some(recording) = testmedia::h265() {
        round_trip(recording);
    }
}

#[test]
fn garbage_is_invalid_mkv() {
    let err = assemble(b"this is not a matroska stream at all", 5).unwrap_err();
    assert!(
        matches!(err, RemuxError::Mkv(MkvError::Invalid { .. })),
        "{err}"
    );
}

#[test]
fn a_stream_cut_inside_an_element_is_an_error_at_the_end() {
    let (stream, _, _) = as_mkv(testmedia::h264());
    let err = assemble(&stream[..stream.len() / 2 + 3], 1000).unwrap_err();
    assert!(matches!(err, RemuxError::Mkv(_)), "{err}");
}

/// A cluster: its timecode and its frames (offset, keyframe, size).
type Cluster<'a> = (u64, &'a [(i16, bool, usize)]);

/// One document with clusters of the given frames.
fn document(track: &MkvTrack, clusters: &[Cluster<'_>]) -> Vec<u8> {
    let mut w = ebml::Writer::default();
    w.master(id::EBML, |w| w.string(id::DOC_TYPE, "matroska"));
    w.open_unknown(id::SEGMENT);
    w.master(id::TRACKS, |w| {
        w.master(id::TRACK_ENTRY, |w| {
            w.uint(id::TRACK_NUMBER, 1);
            w.uint(id::TRACK_TYPE, 1);
            w.string(id::CODEC_ID, &track.codec_id);
            w.bytes(id::CODEC_PRIVATE, &track.codec_private);
            w.master(id::VIDEO, |w| {
                w.uint(id::PIXEL_WIDTH, u64::from(track.width));
                w.uint(id::PIXEL_HEIGHT, u64::from(track.height));
            });
        });
    });
    for (timecode, frames) in clusters {
        w.open_unknown(id::CLUSTER);
        w.uint(id::TIMECODE, *timecode);
        for (offset, key, size) in frames.iter() {
            let mut body = vec![0x81];
            body.extend_from_slice(&offset.to_be_bytes());
            body.push(if *key { 0x80 } else { 0 });
            body.resize(4 + size, 0x55);
            w.bytes(id::SIMPLE_BLOCK, &body);
        }
    }
    w.buf
}

#[test]
fn a_cluster_without_a_keyframe_is_refused() {
    let (_, _, track) = as_mkv(testmedia::h264());
    let stream = document(
        &track,
        &[
            (0, &[(0, true, 10), (33, false, 10)]),
            (1000, &[(0, false, 10)]),
        ],
    );
    assert_eq!(assemble(&stream, 64).unwrap_err(), RemuxError::NoKeyframe);
}

#[test]
fn timecodes_that_go_back_are_refused() {
    let (_, _, track) = as_mkv(testmedia::h264());
    let stream = document(
        &track,
        &[(5000, &[(0, true, 10)]), (4000, &[(0, true, 10)])],
    );
    assert!(matches!(
        assemble(&stream, 64).unwrap_err(),
        RemuxError::TimecodeLessThanPrevious { .. }
    ));
}

#[test]
fn fragments_over_the_size_and_duration_limits_are_refused() {
    let (_, _, track) = as_mkv(testmedia::h264());
    let big = document(&track, &[(0, &[(0, true, 6 << 20), (33, false, 6 << 20)])]);
    let mut demuxer = Demuxer::new(LIMITS);
    let mut assembler = Assembler::new(FragmentLimits {
        max_bytes: 10 << 20,
        ..FRAGMENTS
    });
    let mut events = Vec::new();
    demuxer.push(&big, &mut events).unwrap();
    let err = events
        .into_iter()
        .try_for_each(|e| assembler.event(e).map(drop))
        .unwrap_err();
    assert_eq!(err, RemuxError::FragmentTooLarge { max: 10 << 20 });

    let long = document(&track, &[(0, &[(0, true, 10), (30_000, false, 10)])]);
    assert!(matches!(
        assemble(&long, 64).unwrap_err(),
        RemuxError::FragmentTooLong { .. }
    ));
}

#[test]
fn a_codec_change_is_refused_and_more_than_three_tracks_too() {
    let (_, _, h264) = as_mkv(testmedia::h264());
    let mut h265 = h264.clone();
    h265.codec_id = CODEC_H265.to_string();
    h265.codec_private = vec![1; 23];
    let mut stream = document(&h264, &[(0, &[(0, true, 10)])]);
    stream.extend(document(&h265, &[(1000, &[(0, true, 10)])]));
    assert!(matches!(
        assemble(&stream, 100).unwrap_err(),
        RemuxError::CodecChanged { .. }
    ));

    let mut w = ebml::Writer::default();
    w.master(id::EBML, |w| w.string(id::DOC_TYPE, "matroska"));
    w.open_unknown(id::SEGMENT);
    w.master(id::TRACKS, |w| {
        for n in 1..=4 {
            w.master(id::TRACK_ENTRY, |w| w.uint(id::TRACK_NUMBER, n));
        }
    });
    let mut demuxer = Demuxer::new(LIMITS);
    assert_eq!(
        demuxer.push(&w.buf, &mut Vec::new()).unwrap_err(),
        MkvError::TooManyTracks { count: 4, max: 3 }
    );
}

#[test]
fn a_new_document_with_the_same_codec_continues_the_stream() {
    let (_, _, track) = as_mkv(testmedia::h264());
    let mut stream = document(&track, &[(0, &[(0, true, 10)])]);
    stream.extend(document(
        &track,
        &[(1000, &[(0, true, 10)]), (2000, &[(0, true, 10)])],
    ));
    let outputs = assemble(&stream, 9).unwrap();
    let fragments = outputs
        .iter()
        .filter(|o| matches!(o, Output::Fragment(_)))
        .count();
    let tracks = outputs
        .iter()
        .filter(|o| matches!(o, Output::Track(_)))
        .count();
    assert_eq!((fragments, tracks), (3, 1));
}

#[test]
fn skipped_elements_are_not_held_in_memory() {
    let mut w = ebml::Writer::default();
    w.master(id::EBML, |w| w.string(id::DOC_TYPE, "matroska"));
    w.open_unknown(id::SEGMENT);
    w.bytes(id::VOID, &vec![0u8; 1 << 20]);
    let mut demuxer = Demuxer::new(Limits {
        max_element: 1024,
        max_tracks: 3,
    });
    let mut events = Vec::new();
    for part in w.buf.chunks(4096) {
        demuxer.push(part, &mut events).unwrap();
        assert!(demuxer.buffered() <= 4096 + 16);
    }
    demuxer.finish(&mut events).unwrap();
    assert!(events.is_empty());
}

#[test]
fn sizes_round_trip_through_the_writer() {
    for size in [
        0u64,
        1,
        126,
        127,
        128,
        16_382,
        16_383,
        1 << 20,
        (1 << 56) - 3,
    ] {
        let mut w = ebml::Writer::default();
        w.id(id::CLUSTER);
        w.size(size);
        let h = ebml::header(&w.buf, 0).unwrap().unwrap();
        assert_eq!(
            (h.id, h.size, h.len),
            (id::CLUSTER, size, w.buf.len()),
            "{size}"
        );
    }
}

/// What GStreamer's `matroskamux streamable=true` writes (the test producer's muxer): a
/// Segment and Clusters of unknown size, Tags before Info, a Colour master in Video.
fn matroskamux(encode: &str) -> Vec<u8> {
    use gst::prelude::*;
    testmedia::init_gstreamer();
    let description = format!(
        "videotestsrc num-buffers=90 ! video/x-raw,format=I420,width=320,height=240,framerate=30/1 \
         ! {encode} ! matroskamux streamable=true ! appsink name=sink sync=false"
    );
    let pipeline = gst::parse::launch(&description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut out = Vec::new();
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(30)) {
        out.extend_from_slice(&sample.buffer().unwrap().map_readable().unwrap());
    }
    pipeline.set_state(gst::State::Null).unwrap();
    out
}

#[test]
fn gstreamer_matroskamux_output_is_three_fragments() {
    let stream = matroskamux("x264enc key-int-max=30 speed-preset=ultrafast tune=zerolatency ! h264parse ! video/x-h264,stream-format=avc");
    let outputs = assemble(&stream, 1500).unwrap();
    let fragments: Vec<_> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Fragment(f) => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(fragments.len(), 3);
    assert_eq!(fragments.iter().map(|f| f.frames).sum::<usize>(), 90);
}

#[test]
fn damaged_streams_give_errors_never_panics() {
    let (stream, _, _) = as_mkv(testmedia::h264());
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..300 {
        let mut damaged = stream[..stream.len().min(20_000)].to_vec();
        for _ in 0..1 + next() % 8 {
            let at = (next() as usize) % damaged.len();
            damaged[at] = next() as u8;
        }
        let chunk = 1 + (next() as usize) % 3000;
        // Either outcome is fine; what matters is that it returns.
        let _ = assemble(&damaged, chunk);
    }
}
