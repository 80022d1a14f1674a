//! The source half of a camera pipeline, per [`CameraSource`]: rtsp, srt (MPEG-TS), v4l2
//! (raw video encoded on the gateway) or a file played in real time; and the linking of
//! dynamic pads once the codec is known (H.264 or H.265 go through depayload, parse and
//! timestamp into `cmafmux`; audio and other streams go to a fakesink).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use gst::prelude::*;

use super::{element_exists, make, PipelineError, PipelineSpec, StreamShape};
use crate::devices::camera::{CameraEncoder, CameraSource};

/// Adds the source part and arranges for its video pad to reach `mux`.
pub(super) fn build_source(
    pipeline: &gst::Pipeline,
    mux: &gst::Element,
    spec: &PipelineSpec,
    stream: Arc<Mutex<Option<StreamShape>>>,
) -> Result<(), PipelineError> {
    let add = |e: &gst::Element| {
        pipeline
            .add(e)
            .map_err(|err| PipelineError::Build(err.to_string()))
    };
    match &spec.source {
        CameraSource::Rtsp { url } => {
            let src = make("rtspsrc")?;
            src.set_property("location", url);
            src.set_property_from_str("protocols", "tcp");
            src.set_property("latency", 200u32);
            // A camera that stops answering is noticed by the supervisor's no-data timer too.
            src.set_property("tcp-timeout", 10_000_000u64);
            if let Some(user) = &spec.username {
                src.set_property("user-id", user);
            }
            if let Some(password) = &spec.password {
                src.set_property("user-pw", password);
            }
            add(&src)?;
            link_dynamic(pipeline, &src, mux, stream, DynamicKind::Rtp);
        }
        CameraSource::Srt { url, .. } => {
            let src = make("srtsrc")?;
            src.set_property("uri", url);
            let demux = make("tsdemux")?;
            add(&src)?;
            add(&demux)?;
            src.link(&demux)
                .map_err(|e| PipelineError::Build(format!("srtsrc → tsdemux: {e}")))?;
            link_dynamic(pipeline, &demux, mux, stream, DynamicKind::Parsed);
        }
        CameraSource::File { path } => {
            let src = make("filesrc")?;
            src.set_property("location", path.to_string_lossy().to_string());
            let parse = make("parsebin")?;
            add(&src)?;
            add(&parse)?;
            src.link(&parse)
                .map_err(|e| PipelineError::Build(format!("filesrc → parsebin: {e}")))?;
            link_dynamic(pipeline, &parse, mux, stream, DynamicKind::ParsedPaced);
        }
        CameraSource::V4l2 { device } => {
            let description = v4l2_description(&device.to_string_lossy(), spec);
            let bin = gst::parse::bin_from_description(&description, true)
                .map_err(|e| PipelineError::Build(format!("{description}: {e}")))?;
            add(bin.upcast_ref())?;
            if let Ok(mut shape) = stream.lock() {
                *shape = Some(StreamShape {
                    codec: "h264",
                    width: spec.width.unwrap_or(0),
                    height: spec.height.unwrap_or(0),
                });
            }
            let parser = bin.by_name("parse");
            bin.link(mux)
                .map_err(|e| PipelineError::Build(format!("{description} → cmafmux: {e}")))?;
            if let Some(parser) = parser {
                watch_shape(&parser, stream);
            }
        }
    }
    Ok(())
}

/// The capture-and-encode part for a local camera: decode whatever it delivers (raw or MJPEG),
/// then the board's hardware H.264 encoder when it has one, else x264 (or openh264).
pub(super) fn v4l2_description(device: &str, spec: &PipelineSpec) -> String {
    let encoder = match spec.encoder {
        CameraEncoder::Hardware => "v4l2h264enc",
        CameraEncoder::X264 => "x264enc",
        CameraEncoder::OpenH264 => "openh264enc",
        CameraEncoder::Auto if element_exists("v4l2h264enc") => "v4l2h264enc",
        CameraEncoder::Auto => "x264enc",
    };
    let fps = spec.framerate.unwrap_or(30);
    let key_int = (fps as u128 * spec.fragment_duration.as_millis() / 1000).max(1);
    let encoder = match encoder {
        "x264enc" => {
            format!("x264enc tune=zerolatency speed-preset=ultrafast key-int-max={key_int}")
        }
        "openh264enc" => format!("openh264enc gop-size={key_int}"),
        other => format!("{other} extra-controls=\"controls,h264_i_frame_period={key_int}\""),
    };
    let mut caps = String::from("video/x-raw,format=I420");
    if let Some(w) = spec.width {
        caps.push_str(&format!(",width={w}"));
    }
    if let Some(h) = spec.height {
        caps.push_str(&format!(",height={h}"));
    }
    if let Some(f) = spec.framerate {
        caps.push_str(&format!(",framerate={f}/1"));
    }
    format!(
        "v4l2src device=\"{device}\" ! decodebin ! videoconvert ! videoscale ! videorate ! {caps} \
         ! {encoder} ! h264parse name=parse config-interval=-1"
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DynamicKind {
    /// RTP payloads: depayload, parse, and compute DTS (RTP carries PTS only, and cmafmux
    /// needs DTS for video).
    Rtp,
    /// Elementary streams from a demuxer or parsebin.
    Parsed,
    /// Same, from a file: paced to the clock like a live camera.
    ParsedPaced,
}

/// Links the first video pad that `source` adds to `mux` through the codec's parser chain;
/// other pads (audio, data, a second video) go to a fakesink.
fn link_dynamic(
    pipeline: &gst::Pipeline,
    source: &gst::Element,
    mux: &gst::Element,
    stream: Arc<Mutex<Option<StreamShape>>>,
    kind: DynamicKind,
) {
    let pipeline = pipeline.downgrade();
    let mux = mux.downgrade();
    let linked = Arc::new(std::sync::atomic::AtomicBool::new(false));
    source.connect_pad_added(move |element, pad| {
        let (Some(pipeline), Some(mux)) = (pipeline.upgrade(), mux.upgrade()) else {
            return;
        };
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let codec = caps.structure(0).and_then(|s| codec_of(s, kind));
        let result = match codec {
            Some(codec) if !linked.swap(true, Ordering::SeqCst) => {
                link_codec_chain(&pipeline, pad, &mux, codec, kind, &stream)
            }
            _ => discard(&pipeline, pad),
        };
        if let Err(error) = result {
            gst::element_error!(
                element,
                gst::StreamError::Failed,
                ("cannot link the camera's stream: {}", error)
            );
        }
    });
}

/// "h264" or "h265" for a video pad's caps.
fn codec_of(s: &gst::StructureRef, kind: DynamicKind) -> Option<&'static str> {
    match kind {
        DynamicKind::Rtp => {
            if s.get::<&str>("media").ok()? != "video" {
                return None;
            }
            match s.get::<&str>("encoding-name").ok()? {
                "H264" => Some("h264"),
                "H265" => Some("h265"),
                _ => None,
            }
        }
        DynamicKind::Parsed | DynamicKind::ParsedPaced => match s.name().as_str() {
            "video/x-h264" => Some("h264"),
            "video/x-h265" => Some("h265"),
            _ => None,
        },
    }
}

fn link_codec_chain(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    mux: &gst::Element,
    codec: &'static str,
    kind: DynamicKind,
    stream: &Arc<Mutex<Option<StreamShape>>>,
) -> Result<(), String> {
    let (depay, parse, timestamper) = match codec {
        "h265" => ("rtph265depay", "h265parse", "h265timestamper"),
        _ => ("rtph264depay", "h264parse", "h264timestamper"),
    };
    let mut chain = Vec::new();
    if kind == DynamicKind::Rtp {
        chain.push(make(depay).map_err(|e| e.to_string())?);
    }
    let parser = make(parse).map_err(|e| e.to_string())?;
    parser.set_property("config-interval", -1i32);
    chain.push(parser.clone());
    chain.push(make(timestamper).map_err(|e| e.to_string())?);
    if kind == DynamicKind::ParsedPaced {
        let pace = make("identity").map_err(|e| e.to_string())?;
        pace.set_property("sync", true);
        chain.push(pace);
    }
    pipeline.add_many(&chain).map_err(|e| e.to_string())?;
    gst::Element::link_many(&chain).map_err(|e| e.to_string())?;
    let last = chain.last().ok_or("empty chain")?;
    last.link(mux)
        .map_err(|e| format!("{parse} → cmafmux: {e}"))?;
    for element in &chain {
        element
            .sync_state_with_parent()
            .map_err(|e| e.to_string())?;
    }
    let first = chain[0].static_pad("sink").ok_or("no sink pad")?;
    pad.link(&first).map_err(|e| format!("{e:?}"))?;
    if let Ok(mut shape) = stream.lock() {
        *shape = Some(StreamShape {
            codec,
            width: 0,
            height: 0,
        });
    }
    watch_shape(&parser, stream.clone());
    Ok(())
}

/// Keeps the stream's size up to date from the parser's output caps.
fn watch_shape(parser: &gst::Element, stream: Arc<Mutex<Option<StreamShape>>>) {
    let Some(pad) = parser.static_pad("src") else {
        return;
    };
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
        if let Some(gst::EventView::Caps(caps)) = info.event().map(|e| e.view()) {
            if let Some(s) = caps.caps().structure(0) {
                if let Ok(mut shape) = stream.lock() {
                    let codec = if s.name().as_str() == "video/x-h265" {
                        "h265"
                    } else {
                        "h264"
                    };
                    *shape = Some(StreamShape {
                        codec,
                        width: s.get::<i32>("width").unwrap_or(0).max(0) as u32,
                        height: s.get::<i32>("height").unwrap_or(0).max(0) as u32,
                    });
                }
            }
        }
        gst::PadProbeReturn::Ok
    });
}

/// Sends a pad nobody needs into a fakesink so that it does not stop the source.
fn discard(pipeline: &gst::Pipeline, pad: &gst::Pad) -> Result<(), String> {
    let sink = make("fakesink").map_err(|e| e.to_string())?;
    sink.set_property("sync", false);
    sink.set_property("async", false);
    pipeline.add(&sink).map_err(|e| e.to_string())?;
    sink.sync_state_with_parent().map_err(|e| e.to_string())?;
    let sink_pad = sink
        .static_pad("sink")
        .ok_or("fakesink without a sink pad")?;
    pad.link(&sink_pad).map_err(|e| format!("{e:?}"))?;
    Ok(())
}
