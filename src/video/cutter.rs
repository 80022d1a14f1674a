//! Where fragments end: at the first keyframe at or after `fragment_duration` since the
//! fragment's start (docs/configuration.md, `video.fragment_duration_ms`). With a 2 s fragment
//! duration and a keyframe every second, every fragment is 2 s.
//!
//! cmafmux's own rule is different: in its automatic mode a fragment holds the complete GOPs
//! that END by start + fragment-duration, so a GOP that ends a little after the mark (timestamp
//! jitter of a few microseconds is enough) goes to the next fragment and the fragment is one
//! GOP short: an irregular mix of 1 s and 2 s fragments. So the muxer runs with
//! `manual-split=true` and this part decides: a buffer probe on each muxer sink pad sends
//! cmafmux's `FMP4MuxSplitNow` event right before the keyframe that starts a new fragment.
//! Timestamp jitter is tolerated: a keyframe up to a tenth of the duration (at least half a
//! frame) before the mark counts as on it. Live sources' timestamps jitter by tens of ms, most
//! of all the first one (an RTSP camera's first keyframe came 24 ms late, and the next one,
//! a second later by the camera's clock, looked 976 ms away): without it a 1 s fragment would
//! take two GOPs.
//!
//! Invariant: a split is only ever requested before a keyframe, so every fragment starts on
//! one.

use std::sync::Mutex;
use std::time::Duration;

use gst::prelude::*;

/// The splitting rule for one stream.
#[derive(Debug)]
pub struct Cutter {
    duration: gst::ClockTime,
    /// Presentation time of the current fragment's first keyframe.
    start: Option<gst::ClockTime>,
}

impl Cutter {
    pub fn new(duration: Duration) -> Cutter {
        Cutter {
            duration: gst::ClockTime::from_nseconds(duration.as_nanos() as u64),
            start: None,
        }
    }

    /// A keyframe at `pts` (with `frame` its duration when known): true when it starts a new
    /// fragment (the split goes right before it).
    pub fn keyframe(&mut self, pts: gst::ClockTime, frame: Option<gst::ClockTime>) -> bool {
        let jitter = (self.duration / 10).max(frame.map_or(gst::ClockTime::ZERO, |f| f / 2));
        let split = match self.start {
            // The very first keyframe starts the first fragment: nothing to close.
            None => false,
            // Time went back (a new recording run in the same pipeline): a new fragment.
            Some(start) if pts < start => true,
            Some(start) => pts + jitter >= start + self.duration,
        };
        if split || self.start.is_none() {
            self.start = Some(pts);
        }
        split
    }
}

/// Makes `mux` (a cmafmux) cut fragments by the rule above: sets `manual-split` and watches
/// every sink pad it has (cmafmux's one `sink` pad exists from the start; request pads of
/// other fMP4 muxers come later). Call before anything links to `mux`.
pub fn cut_fragments(mux: &gst::Element, duration: Duration) {
    mux.set_property("manual-split", true);
    for pad in mux.sink_pads() {
        watch(&pad, duration);
    }
    mux.connect_pad_added(move |_, pad| {
        if pad.direction() == gst::PadDirection::Sink {
            watch(pad, duration);
        }
    });
}

/// A buffer probe on one muxer sink pad that asks for a split before each keyframe that
/// starts a new fragment.
fn watch(pad: &gst::Pad, duration: Duration) {
    let cutter = Mutex::new(Cutter::new(duration));
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(buffer) = info.buffer() else {
            return gst::PadProbeReturn::Ok;
        };
        if buffer.flags().contains(gst::BufferFlags::DELTA_UNIT) {
            return gst::PadProbeReturn::Ok;
        }
        let Some(pts) = buffer.pts().or(buffer.dts()) else {
            return gst::PadProbeReturn::Ok;
        };
        let split = cutter
            .lock()
            .map(|mut c| c.keyframe(pts, buffer.duration()))
            .unwrap_or(false);
        if split {
            // Serialized: it reaches the muxer before this keyframe.
            pad.send_event(split_now());
        }
        gst::PadProbeReturn::Ok
    });
}

/// cmafmux's request to end the fragment here (gst-plugin-fmp4's `FMP4MuxSplitNow`).
fn split_now() -> gst::Event {
    gst::event::CustomDownstream::builder(
        gst::Structure::builder("FMP4MuxSplitNow")
            .field("chunk", false)
            .build(),
    )
    .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> gst::ClockTime {
        gst::ClockTime::from_mseconds(v)
    }

    /// Keyframe times → fragment start times.
    fn starts(duration_ms: u64, keyframes: &[u64], frame_ms: u64) -> Vec<u64> {
        let mut cutter = Cutter::new(Duration::from_millis(duration_ms));
        let mut out = vec![keyframes[0]];
        for &k in keyframes {
            if cutter.keyframe(ms(k), Some(ms(frame_ms))) {
                out.push(k);
            }
        }
        out
    }

    #[test]
    fn the_first_keyframe_at_or_after_the_duration_starts_the_next_fragment() {
        // A keyframe every second, fragments of 2 s: every other keyframe.
        assert_eq!(
            starts(2000, &[0, 1000, 2000, 3000, 4000, 5000, 6000], 33),
            [0, 2000, 4000, 6000]
        );
        // Jitter on both sides of the mark does not make 1 s or 3 s fragments.
        assert_eq!(
            starts(2000, &[10, 1009, 2001, 3012, 3998, 5003, 6010], 33),
            [10, 2001, 3998, 6010]
        );
        // The first keyframe's timestamp late by 24 ms: the next one is still on the mark.
        assert_eq!(
            starts(1000, &[24, 1000, 2000, 3000, 4001], 33),
            [24, 1000, 2000, 3000, 4001]
        );
        // A keyframe every 0.7 s: the first one at or after 2 s (2.1 s fragments).
        assert_eq!(
            starts(2000, &[0, 700, 1400, 2100, 2800, 3500, 4200], 33),
            [0, 2100, 4200]
        );
        // Keyframes farther apart than the duration: each one starts a fragment.
        assert_eq!(starts(1000, &[0, 3000, 6000], 33), [0, 3000, 6000]);
    }

    #[test]
    fn time_going_back_starts_a_new_fragment() {
        assert_eq!(
            starts(2000, &[5000, 6000, 100, 1100, 2100], 33),
            [5000, 100, 2100]
        );
    }
}
