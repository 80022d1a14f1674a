//! The hand-off from GStreamer's streaming thread to the async side: each appsink sample
//! becomes the init segment (when the caps change) or a fragment, sent with `try_send`.
//! Invariant: the streaming thread never waits; a full channel drops the fragment and
//! counts it in [`PipelineCounters`].

use std::sync::atomic::Ordering;
use std::sync::Mutex;

use tokio::sync::mpsc;

use super::{Output, PipelineCounters, RawFragment, StreamInit, StreamShape};

/// Runs on the streaming thread: one sample = [init] + one fragment. Never waits.
pub(super) fn hand_off(
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
