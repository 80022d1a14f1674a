//! One camera's GStreamer pipeline: source → depayload/demux → parse → timestamp → `cmafmux` →
//! appsink, producing an init segment and fMP4 fragments that start on keyframes (where they
//! end is `cutter`'s rule). No transcoding, except for `v4l2` cameras that deliver raw video.
//!
//! Owns building the pipeline for a [`CameraSource`] (`source`: the source's elements and its
//! dynamic pads, linked once the codec is known: H.264 or H.265; audio and other streams go to
//! a fakesink), and the hand-off to the async side (`handoff`): a bounded channel filled with
//! `try_send` from GStreamer's streaming thread, which never waits — a full channel drops the
//! fragment and counts it. The bus is watched on its own thread; an error or end of stream
//! ends the pipeline, and the camera supervisor builds a new one.

mod handoff;
mod source;
#[cfg(test)]
mod tests;

use handoff::hand_off;
use source::build_source;

use std::sync::atomic::AtomicU64;
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
