//! One camera's GStreamer pipeline: source → depayload/demux → parse → timestamp → `cmafmux` →
//! appsink, producing an init segment and fMP4 fragments that start on keyframes (where they
//! end is `cutter`'s rule). No
//! transcoding, except for `v4l2` cameras that deliver raw video.
//!
//! Owns building the pipeline for a [`CameraSource`], linking the source's dynamic pads once
//! the codec is known (H.264 or H.265; audio and other streams go to a fakesink), and the
//! hand-off to the async side: a bounded channel filled with `try_send` from GStreamer's
//! streaming thread, which never waits — a full channel drops the fragment and counts it.
//! The bus is watched on its own thread; an error or end of stream ends the pipeline, and the
//! camera supervisor builds a new one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use bytes::Bytes;
use gst::prelude::*;
use tokio::sync::mpsc;

use crate::devices::camera::{CameraEncoder, CameraSource};

/// What the pipeline hands to the camera supervisor.
#[derive(Debug)]
pub enum Output {
    /// The init segment (ftyp + moov): first, and again when the stream's parameters change.
    Init(StreamInit),
    /// One fragment (styp + moof + mdat).
    Fragment(RawFragment),
    /// The pipeline ended (end of stream or an error); build a new one.
    Stopped { error: Option<String> },
}

/// An init segment and what the stream is.
#[derive(Debug, Clone)]
pub struct StreamInit {
    pub data: Bytes,
    pub codec: &'static str,
    pub width: u32,
    pub height: u32,
}

/// A fragment as the muxer made it.
#[derive(Debug)]
pub struct RawFragment {
    /// Presentation time of its first frame (pipeline time, not wall-clock).
    pub pts: Option<gst::ClockTime>,
    pub duration: Option<gst::ClockTime>,
    /// The muxer clears DELTA_UNIT on a fragment that starts on a keyframe.
    pub keyframe: bool,
    pub data: Bytes,
}

/// Counters shared with the streaming thread.
#[derive(Debug, Default)]
pub struct PipelineCounters {
    /// Fragments (or init segments) dropped because the supervisor was behind.
    pub dropped: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("GStreamer could not start: {0}")]
    Init(String),
    #[error("the GStreamer element `{0}` is missing: install the GStreamer plugins (scripts/install-deps)")]
    MissingElement(&'static str),
    #[error("cannot build the camera pipeline: {0}")]
    Build(String),
}

/// Everything a pipeline is built from.
#[derive(Debug, Clone)]
pub struct PipelineSpec {
    pub source: CameraSource,
    pub username: Option<String>,
    pub password: Option<String>,
    pub fragment_duration: Duration,
    pub encoder: CameraEncoder,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub framerate: Option<u32>,
    /// Capacity of the hand-off channel, in fragments.
    pub queue: usize,
}

static REGISTER: Once = Once::new();
static REGISTERED: Mutex<Option<Result<(), String>>> = Mutex::new(None);

/// Initialises GStreamer and registers the statically linked fMP4 muxers (once).
pub fn init() -> Result<(), PipelineError> {
    gst::init().map_err(|e| PipelineError::Init(e.to_string()))?;
    REGISTER.call_once(|| {
        let result = gstfmp4::plugin_register_static().map_err(|e| e.to_string());
        if let Ok(mut slot) = REGISTERED.lock() {
            *slot = Some(result);
        }
    });
    match REGISTERED.lock().ok().and_then(|slot| slot.clone()) {
        Some(Ok(())) => Ok(()),
        Some(Err(e)) => Err(PipelineError::Init(format!("registering cmafmux: {e}"))),
        None => Err(PipelineError::Init("registering cmafmux failed".into())),
    }
}

fn make(factory: &'static str) -> Result<gst::Element, PipelineError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| PipelineError::MissingElement(factory))
}

fn element_exists(factory: &str) -> bool {
    gst::ElementFactory::find(factory).is_some()
}

/// A running pipeline. Dropping it stops it (blocking briefly: drop it off the async runtime).
pub struct CameraPipeline {
    pipeline: gst::Pipeline,
    pub counters: Arc<PipelineCounters>,
    bus_thread: Option<std::thread::JoinHandle<()>>,
}

impl CameraPipeline {
    /// Builds and starts the pipeline; its output arrives on the returned channel.
    pub fn start(
        spec: &PipelineSpec,
    ) -> Result<(CameraPipeline, mpsc::Receiver<Output>), PipelineError> {
        init()?;
        let pipeline = gst::Pipeline::new();
        let mux = make("cmafmux")?;
        // Used by cmafmux for its latency only: `cutter` decides where fragments end.
        mux.set_property(
            "fragment-duration",
            gst::ClockTime::from_nseconds(spec.fragment_duration.as_nanos() as u64),
        );
        super::cutter::cut_fragments(&mux, spec.fragment_duration);
        let sink = make("appsink")?
            .downcast::<gst_app::AppSink>()
            .map_err(|_| PipelineError::Build("appsink is not an AppSink".into()))?;
        // cmafmux pushes each fragment as one buffer list ([init] + header + samples): with
        // buffer-list=true one sample is one fragment.
        sink.set_property("buffer-list", true);
        sink.set_property("sync", false);
        sink.set_max_buffers(2);
        sink.set_drop(true);
        pipeline
            .add_many([&mux, sink.upcast_ref()])
            .map_err(|e| PipelineError::Build(e.to_string()))?;
        mux.link(&sink)
            .map_err(|e| PipelineError::Build(format!("cmafmux → appsink: {e}")))?;

        let (tx, rx) = mpsc::channel::<Output>(spec.queue.max(1));
        let counters = Arc::new(PipelineCounters::default());
        let stream = Arc::new(Mutex::new(None::<StreamShape>));
        build_source(&pipeline, &mux, spec, stream.clone())?;
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample({
                    let tx = tx.clone();
                    let counters = counters.clone();
                    move |sink| {
                        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        hand_off(&sample, &tx, &counters, &stream);
                        Ok(gst::FlowSuccess::Ok)
                    }
                })
                .build(),
        );

        let bus = pipeline
            .bus()
            .ok_or_else(|| PipelineError::Build("the pipeline has no bus".into()))?;
        let bus_thread = std::thread::Builder::new()
            .name("video-bus".into())
            .spawn(move || watch_bus(bus, tx))
            .map_err(|e| PipelineError::Build(format!("bus thread: {e}")))?;
        let running = CameraPipeline {
            pipeline,
            counters,
            bus_thread: Some(bus_thread),
        };
        running
            .pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| PipelineError::Build(format!("cannot start playing: {e}")))?;
        Ok((running, rx))
    }

    /// Asks the pipeline to finish: the muxer closes the fragment it holds, and the output ends
    /// with `Stopped` once everything is out.
    pub fn finish(&self) {
        self.pipeline.send_event(gst::event::Eos::new());
    }
}

impl Drop for CameraPipeline {
    fn drop(&mut self) {
        // Stop the bus thread first: once the pipeline is in NULL its bus is flushing, a posted
        // message never arrives and the thread would wait forever.
        if let Some(bus) = self.pipeline.bus() {
            let _ = bus.post(gst::message::Application::new(gst::Structure::new_empty(
                STOP_MESSAGE,
            )));
        }
        if let Some(thread) = self.bus_thread.take() {
            let _ = thread.join();
        }
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

const STOP_MESSAGE: &str = "kinedge-stop";

fn watch_bus(bus: gst::Bus, tx: mpsc::Sender<Output>) {
    use gst::MessageView;
    for message in bus.iter_timed(gst::ClockTime::NONE) {
        match message.view() {
            MessageView::Eos(..) => {
                let _ = tx.try_send(Output::Stopped { error: None });
                break;
            }
            MessageView::Error(e) => {
                let source = e
                    .src()
                    .map(|s| s.name().to_string())
                    .unwrap_or_else(|| "pipeline".into());
                let _ = tx.try_send(Output::Stopped {
                    error: Some(format!("{source}: {}", e.error())),
                });
                break;
            }
            MessageView::Application(a)
                if a.structure().is_some_and(|s| s.name() == STOP_MESSAGE) =>
            {
                break
            }
            _ => {}
        }
    }
}

/// Codec and size of the stream being muxed, from the parser's caps.
#[derive(Debug, Clone, Copy)]
struct StreamShape {
    codec: &'static str,
    width: u32,
    height: u32,
}

/// Runs on the streaming thread: one sample = [init] + one fragment. Never waits.
fn hand_off(
    sample: &gst::Sample,
    tx: &mpsc::Sender<Output>,
    counters: &PipelineCounters,
    stream: &Mutex<Option<StreamShape>>,
) {
    let buffers: Vec<gst::Buffer> = match (sample.buffer_list(), sample.buffer()) {
        (Some(list), _) => list.iter_owned().collect(),
        (None, Some(buffer)) => vec![buffer.to_owned()],
        (None, None) => return,
    };
    let mut init: Option<Vec<u8>> = None;
    let mut fragment = Vec::new();
    let mut header: Option<(Option<gst::ClockTime>, Option<gst::ClockTime>, bool)> = None;
    for buffer in &buffers {
        let flags = buffer.flags();
        let Ok(map) = buffer.map_readable() else {
            continue;
        };
        if header.is_none() && flags.contains(gst::BufferFlags::HEADER | gst::BufferFlags::DISCONT)
        {
            init.get_or_insert_with(Vec::new).extend_from_slice(&map);
            continue;
        }
        if header.is_none() && flags.contains(gst::BufferFlags::HEADER) {
            header = Some((
                buffer.pts(),
                buffer.duration(),
                !flags.contains(gst::BufferFlags::DELTA_UNIT),
            ));
        }
        fragment.extend_from_slice(&map);
    }
    if let Some(data) = init {
        let shape = stream.lock().ok().and_then(|s| *s).unwrap_or(StreamShape {
            codec: "h264",
            width: 0,
            height: 0,
        });
        let init = StreamInit {
            data: data.into(),
            codec: shape.codec,
            width: shape.width,
            height: shape.height,
        };
        if tx.try_send(Output::Init(init)).is_err() {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
    if let Some((pts, duration, keyframe)) = header {
        let fragment = RawFragment {
            pts,
            duration,
            keyframe,
            data: fragment.into(),
        };
        if tx.try_send(Output::Fragment(fragment)).is_err() {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Adds the source part and arranges for its video pad to reach `mux`.
fn build_source(
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
fn v4l2_description(device: &str, spec: &PipelineSpec) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4l2_uses_the_requested_encoder_and_key_interval() {
        let spec = PipelineSpec {
            source: CameraSource::V4l2 {
                device: "/dev/video0".into(),
            },
            username: None,
            password: None,
            fragment_duration: Duration::from_secs(2),
            encoder: CameraEncoder::X264,
            width: Some(1280),
            height: Some(720),
            framerate: Some(25),
            queue: 4,
        };
        let d = v4l2_description("/dev/video0", &spec);
        assert!(
            d.contains("x264enc tune=zerolatency speed-preset=ultrafast key-int-max=50"),
            "{d}"
        );
        assert!(d.contains("width=1280,height=720,framerate=25/1"), "{d}");
        init().unwrap();
        // The description parses with the installed plugins.
        gst::parse::bin_from_description(&d, true).unwrap();
    }
}
