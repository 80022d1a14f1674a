//! Test fixtures: real fragmented MP4 made in-process by GStreamer's `cmafmux` (registered
//! statically, as the gateway does), 5 s of 320x240 test video at 30 fps in 1 s fragments,
//! with timestamps starting at 1000 hours as an encoder's do. Each recording is made once per
//! test run and shared.

use std::path::Path;
use std::sync::{Once, OnceLock};

use gst::prelude::*;

/// An init segment and the fragments that follow it, as the muxer produced them.
pub(crate) struct Recording {
    pub init: Vec<u8>,
    pub fragments: Vec<Vec<u8>>,
}

pub(crate) fn init_gstreamer() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        gst::init().unwrap();
        gstfmp4::plugin_register_static().unwrap();
    });
}

/// H.264 (x264enc), a keyframe every 30 frames.
pub(crate) fn h264() -> &'static Recording {
    static RECORDING: OnceLock<Recording> = OnceLock::new();
    RECORDING.get_or_init(|| {
        record("x264enc key-int-max=30 speed-preset=ultrafast tune=zerolatency ! h264parse")
    })
}

/// H.265 (x265enc), or None when x265enc is not installed.
pub(crate) fn h265() -> Option<&'static Recording> {
    static RECORDING: OnceLock<Option<Recording>> = OnceLock::new();
    RECORDING
        .get_or_init(|| {
            init_gstreamer();
            if gst::ElementFactory::find("x265enc").is_none() {
                eprintln!("x265enc is not installed: no H.265 recording");
                return None;
            }
            Some(record(
                "x265enc key-int-max=30 speed-preset=ultrafast tune=zerolatency ! h265parse",
            ))
        })
        .as_ref()
}

/// Where the recordings' timestamps start: 1000 hours.
pub(crate) const START_NS: u64 = 1000 * 3600 * 1_000_000_000;

fn record(encode: &str) -> Recording {
    init_gstreamer();
    let description = format!(
        "videotestsrc num-buffers=150 timestamp-offset={START_NS} ! video/x-raw,format=I420,width=320,height=240,framerate=30/1 \
         ! {encode} ! cmafmux fragment-duration=1000000000 ! appsink name=sink"
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
    sink.set_property("buffer-list", true);
    sink.set_property("sync", false);
    pipeline.set_state(gst::State::Playing).unwrap();

    let mut init = Vec::new();
    let mut fragments = Vec::new();
    // Each sample is one fragment (header buffer, then samples), the first led by the init
    // segment's buffers (HEADER | DISCONT).
    while let Some(sample) = sink.try_pull_sample(PULL_TIMEOUT) {
        let list = sample.buffer_list().unwrap();
        let mut fragment = Vec::new();
        for buffer in list.iter() {
            let map = buffer.map_readable().unwrap();
            let init_flags = gst::BufferFlags::HEADER | gst::BufferFlags::DISCONT;
            if fragment.is_empty() && buffer.flags().contains(init_flags) {
                init.extend_from_slice(&map);
            } else {
                fragment.extend_from_slice(&map);
            }
        }
        if !fragment.is_empty() {
            fragments.push(fragment);
        }
    }
    assert!(
        sink.is_eos(),
        "recording stopped before the end: {:?}",
        first_error(&pipeline)
    );
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(
        !init.is_empty() && !fragments.is_empty(),
        "cmafmux made nothing"
    );
    Recording { init, fragments }
}

/// Decodes an MP4 file in-process and counts the decoded frames.
pub(crate) fn count_decoded_frames(file: &Path, parse_and_decode: &str) -> usize {
    init_gstreamer();
    let description =
        format!("filesrc name=src ! qtdemux ! {parse_and_decode} ! appsink name=sink sync=false");
    let pipeline = gst::parse::launch(&description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let src = pipeline.by_name("src").unwrap();
    src.set_property("location", file.to_str().unwrap());
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut frames = 0;
    while sink.try_pull_sample(PULL_TIMEOUT).is_some() {
        frames += 1;
    }
    let error = first_error(&pipeline);
    let eos = sink.is_eos();
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(
        error.is_none() && eos,
        "decoding {}: {error:?}",
        file.display()
    );
    frames
}

/// A pipeline that fails never reaches end of stream: pulls give up after this.
const PULL_TIMEOUT: gst::ClockTime = gst::ClockTime::from_seconds(10);

fn first_error(pipeline: &gst::Pipeline) -> Option<String> {
    let message = pipeline.bus()?.pop_filtered(&[gst::MessageType::Error])?;
    match message.view() {
        gst::MessageView::Error(error) => Some(format!("{} ({:?})", error.error(), error.debug())),
        _ => None,
    }
}

/// The duration `gst-discoverer-1.0` reports for a file, in seconds.
pub(crate) fn discovered_duration(file: &Path) -> f64 {
    let output = std::process::Command::new("gst-discoverer-1.0")
        .arg(file)
        .output()
        .expect("gst-discoverer-1.0 (gstreamer1.0-plugins-base-apps)");
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("Duration: "))
        .unwrap_or_else(|| panic!("no duration in:\n{text}"));
    // h:mm:ss.nnnnnnnnn
    let parts: Vec<f64> = line.split(':').map(|p| p.parse().unwrap()).collect();
    parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
}
