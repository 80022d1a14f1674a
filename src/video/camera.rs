//! One camera's supervisor: keeps its pipeline running and its fragments flowing into the
//! fragment log.
//!
//! Owns the camera's life cycle (connecting → connected → backoff after a loss, rebuilt with
//! backoff 1 s doubling to 30 s), the no-data timer (a camera that sends nothing for
//! `no_data_timeout_s` is treated as lost), producer timestamps (the first fragment of a run is
//! anchored to its arrival, later ones follow the stream's own clock so that fragments are
//! contiguous), gap records when a run starts later than the previous one ended, and the
//! camera's live status. Log calls run on the blocking pool; the streaming thread is never
//! waited on (see `pipeline`).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};

use super::log::{
    AppendOutcome, FragmentLog, FragmentMeta, Gap, NewFragment, RetentionPolicy, VideoLogError,
};
use super::pipeline::{CameraPipeline, Output, PipelineSpec, RawFragment, StreamInit};
use crate::devices::camera::CameraSource;

/// Fragments waiting between the pipeline and the log; a slow disk drops beyond this (counted).
pub const HANDOFF_QUEUE: usize = 4;
/// Longest wait between two attempts to reach a lost camera.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a stopping gateway waits for the muxer to close the fragment it holds.
const FINISH_TIMEOUT: Duration = Duration::from_secs(3);

/// Where a camera is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraState {
    Connecting,
    Connected,
    Backoff,
    Stopped,
}

/// What the status of a camera shows (without the fragment log's counts).
#[derive(Debug, Clone, serde::Serialize)]
pub struct CameraLive {
    pub state: CameraState,
    pub codec: Option<&'static str>,
    pub width: u32,
    pub height: u32,
    /// Bits per second of the last fragments (smoothed).
    pub bitrate_bps: u64,
    pub connected_since_ms: Option<i64>,
    /// Fragments stored since the gateway started.
    pub recorded_fragments: u64,
    /// Bytes of those fragments.
    pub recorded_bytes: u64,
    pub dropped_fragments: u64,
    /// Fragments refused by the log (on_full = "deny_new", or the disk's minimum free space).
    pub refused_fragments: u64,
    /// Times the pipeline was rebuilt after a loss.
    pub reconnects: u64,
    /// Gaps recorded since the gateway started.
    pub gaps: u64,
    pub last_fragment: Option<FragmentMeta>,
    pub last_error: Option<String>,
}

impl Default for CameraLive {
    fn default() -> Self {
        CameraLive {
            state: CameraState::Connecting,
            codec: None,
            width: 0,
            height: 0,
            bitrate_bps: 0,
            connected_since_ms: None,
            recorded_fragments: 0,
            recorded_bytes: 0,
            dropped_fragments: 0,
            refused_fragments: 0,
            reconnects: 0,
            gaps: 0,
            last_fragment: None,
            last_error: None,
        }
    }
}

/// A camera as the video service runs it.
pub struct Camera {
    pub name: String,
    pub spec: PipelineSpec,
    pub policy: RetentionPolicy,
    pub no_data_timeout: Duration,
    log: FragmentLog,
    live: Mutex<CameraLive>,
    /// The number of the newest stored fragment (0 = none yet); uploads and live playlists
    /// wait on it.
    latest: watch::Sender<u64>,
}

/// Why a pipeline run ended.
enum RunEnd {
    Stopped(Option<String>),
    NoData,
    Shutdown,
}

impl Camera {
    pub fn new(
        name: String,
        spec: PipelineSpec,
        policy: RetentionPolicy,
        no_data_timeout: Duration,
        log: FragmentLog,
    ) -> Camera {
        let (latest, _) = watch::channel(0);
        Camera {
            name,
            spec,
            policy,
            no_data_timeout,
            log,
            live: Mutex::new(CameraLive::default()),
            latest,
        }
    }

    pub fn live(&self) -> CameraLive {
        self.live.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }

    fn update(&self, f: impl FnOnce(&mut CameraLive)) {
        if let Ok(mut live) = self.live.lock() {
            f(&mut live);
        }
    }

    /// Runs the camera until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut previous_end = self.resume().await;
        let mut reason = String::from("gateway was not running");
        let mut failures = 0u32;
        loop {
            if *shutdown.borrow() {
                break;
            }
            self.update(|l| l.state = CameraState::Connecting);
            let spec = self.spec.clone();
            let started = tokio::task::spawn_blocking(move || CameraPipeline::start(&spec)).await;
            let (pipeline, rx) = match started {
                Ok(Ok(running)) => running,
                Ok(Err(error)) => {
                    tracing::warn!(camera = %self.name, %error, "cannot start the camera pipeline");
                    self.update(|l| l.last_error = Some(error.to_string()));
                    failures += 1;
                    if self.back_off(failures, &mut shutdown).await {
                        break;
                    }
                    continue;
                }
                Err(join) => {
                    tracing::error!(camera = %self.name, error = %join, "camera pipeline start panicked");
                    break;
                }
            };
            let mut run = Run::default();
            let end = self
                .consume(
                    rx,
                    &pipeline,
                    &mut run,
                    &mut previous_end,
                    &reason,
                    &mut shutdown,
                )
                .await;
            let dropped = pipeline.counters.dropped.load(Ordering::Relaxed);
            let _ = tokio::task::spawn_blocking(move || drop(pipeline)).await;
            self.update(|l| {
                l.dropped_fragments += dropped;
                l.connected_since_ms = None;
            });
            reason = match end {
                RunEnd::Shutdown => break,
                RunEnd::Stopped(None) => "camera ended its stream".into(),
                RunEnd::Stopped(Some(error)) => format!("camera lost: {error}"),
                RunEnd::NoData => format!(
                    "camera sent nothing for {} s",
                    self.no_data_timeout.as_secs()
                ),
            };
            tracing::warn!(camera = %self.name, reason = %reason, fragments = run.fragments, "camera pipeline ended; reconnecting");
            self.update(|l| {
                l.reconnects += 1;
                l.last_error = Some(reason.clone());
            });
            failures = if run.fragments > 0 { 1 } else { failures + 1 };
            if self.back_off(failures, &mut shutdown).await {
                break;
            }
        }
        self.update(|l| l.state = CameraState::Stopped);
    }

    /// Where the camera's log ends (the last fragment's end, producer time), published as the
    /// latest fragment; `None` for an empty or unreadable log.
    async fn resume(&self) -> Option<i64> {
        let name = self.name.clone();
        match self.blocking(move |log| log.latest(&name, 1)).await {
            Ok(last) => last.last().map(|f| {
                let _ = self.latest.send(f.number);
                self.update(|l| l.last_fragment = Some(f.clone()));
                f.producer_ms + i64::from(f.duration_ms)
            }),
            Err(error) => {
                tracing::error!(camera = %self.name, %error, "cannot read the camera's fragment log");
                None
            }
        }
    }

    /// Waits before the next attempt; true when the gateway is stopping.
    async fn back_off(&self, failures: u32, shutdown: &mut watch::Receiver<bool>) -> bool {
        self.update(|l| l.state = CameraState::Backoff);
        let wait = Duration::from_secs(1u64 << failures.saturating_sub(1).min(5)).min(MAX_BACKOFF);
        tokio::select! {
            _ = tokio::time::sleep(wait) => false,
            _ = shutdown.changed() => true,
        }
    }

    async fn consume(
        &self,
        mut rx: mpsc::Receiver<Output>,
        pipeline: &CameraPipeline,
        run: &mut Run,
        previous_end: &mut Option<i64>,
        reason: &str,
        shutdown: &mut watch::Receiver<bool>,
    ) -> RunEnd {
        let patience = self.no_data_timeout + self.spec.fragment_duration;
        // A listener waits for its camera to call for as long as it takes; once video flowed,
        // silence means the camera is lost.
        let listener = matches!(self.spec.source, CameraSource::Srt { listener: true, .. });
        let far = tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
        let mut deadline = if listener {
            far
        } else {
            tokio::time::Instant::now() + patience
        };
        let mut finishing: Option<tokio::time::Instant> = None;
        loop {
            let output = tokio::select! {
                output = rx.recv() => output,
                _ = tokio::time::sleep_until(deadline), if finishing.is_none() => return RunEnd::NoData,
                _ = tokio::time::sleep_until(finishing.unwrap_or(deadline)), if finishing.is_some() => return RunEnd::Shutdown,
                _ = shutdown.changed(), if finishing.is_none() => {
                    // Let the muxer close the fragment it holds, and store it.
                    pipeline.finish();
                    finishing = Some(tokio::time::Instant::now() + FINISH_TIMEOUT);
                    continue;
                }
            };
            match output {
                None => return RunEnd::Stopped(Some("the pipeline closed".into())),
                Some(Output::Stopped { error }) if finishing.is_some() => {
                    if let Some(error) = error {
                        tracing::debug!(camera = %self.name, %error, "pipeline error while stopping");
                    }
                    return RunEnd::Shutdown;
                }
                Some(Output::Stopped { error }) => return RunEnd::Stopped(error),
                Some(Output::Init(init)) => self.store_init(init, run).await,
                Some(Output::Fragment(fragment)) => {
                    deadline = tokio::time::Instant::now() + patience;
                    self.store_fragment(fragment, run, previous_end, reason)
                        .await;
                }
            }
        }
    }

    async fn store_init(&self, init: StreamInit, run: &mut Run) {
        let name = self.name.clone();
        let data = init.data.clone();
        match self.blocking(move |log| log.put_init(&name, &data)).await {
            Ok(id) => {
                run.init = Some((id, init.clone()));
                self.update(|l| {
                    l.codec = Some(init.codec);
                    l.width = init.width;
                    l.height = init.height;
                });
            }
            Err(error) => {
                tracing::error!(camera = %self.name, %error, "cannot store the init segment");
                self.update(|l| l.last_error = Some(error.to_string()));
            }
        }
    }

    async fn store_fragment(
        &self,
        fragment: RawFragment,
        run: &mut Run,
        previous_end: &mut Option<i64>,
        reason: &str,
    ) {
        let Some((init_id, init)) = run.init.clone() else {
            // Its init segment was dropped or not stored: the fragment cannot be played.
            self.update(|l| l.dropped_fragments += 1);
            return;
        };
        let now = now_ms();
        let duration_ms = fragment
            .duration
            .map(|d| d.mseconds())
            .unwrap_or(self.spec.fragment_duration.as_millis() as u64)
            .clamp(1, u64::from(u32::MAX)) as u32;
        let producer_ms = run.producer_ms(fragment.pts, duration_ms, now, *previous_end);
        if run.fragments == 0 {
            self.start_run(producer_ms, *previous_end, reason, &init, now)
                .await;
        }
        let size = fragment.data.len() as u64;
        let new = NewFragment {
            producer_ms,
            duration_ms,
            keyframe: fragment.keyframe,
            // A new run's timestamps start afresh; a new init segment is a new stream.
            discontinuity: run.fragments == 0 || run.last_init != Some(init_id),
            codec: init.codec.to_string(),
            width: init.width,
            height: init.height,
            init_id,
            data: fragment.data,
        };
        let name = self.name.clone();
        let policy = self.policy.clone();
        match self
            .blocking(move |log| log.append(&name, new, &policy, now))
            .await
        {
            Ok(outcome) => {
                run.fragments += 1;
                run.last_init = Some(init_id);
                *previous_end = Some(producer_ms + i64::from(duration_ms));
                self.recorded(outcome, size, duration_ms);
            }
            Err(error) => self.refused(error),
        }
    }

    /// The first fragment of a run: the time since the previous run's end is a gap, and the
    /// camera counts as connected.
    async fn start_run(
        &self,
        producer_ms: i64,
        previous_end: Option<i64>,
        reason: &str,
        init: &StreamInit,
        now: i64,
    ) {
        if let Some(end) = previous_end.filter(|end| producer_ms > *end) {
            let gap = Gap {
                start_ms: end,
                end_ms: producer_ms,
                reason: reason.to_string(),
            };
            tracing::info!(camera = %self.name, seconds = (producer_ms - end) / 1000, reason, "gap in the recording");
            let name = self.name.clone();
            if let Err(error) = self.blocking(move |log| log.record_gap(&name, gap)).await {
                tracing::warn!(camera = %self.name, %error, "cannot record a gap");
            }
            self.update(|l| l.gaps += 1);
        }
        self.update(|l| {
            l.state = CameraState::Connected;
            l.connected_since_ms = Some(now);
        });
        tracing::info!(camera = %self.name, codec = init.codec, width = init.width, height = init.height, "camera connected");
    }

    /// A fragment is stored: status (bitrate, counts, the latest fragment) and the live signal.
    fn recorded(&self, outcome: AppendOutcome, size: u64, duration_ms: u32) {
        if outcome.evicted_fragments > 0 {
            tracing::debug!(camera = %self.name, fragments = outcome.evicted_fragments, bytes = outcome.evicted_bytes, "oldest fragments deleted to make room");
        }
        let bitrate = size * 8 * 1000 / u64::from(duration_ms);
        let number = outcome.meta.number;
        self.update(|l| {
            l.bitrate_bps = if l.bitrate_bps == 0 {
                bitrate
            } else {
                (l.bitrate_bps * 3 + bitrate) / 4
            };
            l.recorded_fragments += 1;
            l.recorded_bytes += size;
            l.last_fragment = Some(outcome.meta);
        });
        let _ = self.latest.send(number);
    }

    /// A fragment is refused or could not be stored: counted; logged once per distinct error.
    fn refused(&self, error: VideoLogError) {
        let full = matches!(
            error,
            VideoLogError::Full { .. } | VideoLogError::TooLarge { .. }
        );
        let first = self
            .live
            .lock()
            .map(|mut l| {
                l.refused_fragments += 1;
                let first = l.last_error.as_deref() != Some(&error.to_string());
                l.last_error = Some(error.to_string());
                first
            })
            .unwrap_or(false);
        if first {
            if full {
                tracing::warn!(camera = %self.name, %error, "fragment refused");
            } else {
                tracing::error!(camera = %self.name, %error, "cannot store a fragment");
            }
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&FragmentLog) -> Result<T, VideoLogError> + Send + 'static,
    ) -> Result<T, VideoLogError> {
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || f(&log))
            .await
            .unwrap_or_else(|e| {
                Err(VideoLogError::Storage(format!(
                    "fragment log task failed: {e}"
                )))
            })
    }
}

/// One pipeline run: its init segment and how its stream clock maps to wall-clock time.
#[derive(Default)]
struct Run {
    init: Option<(u64, StreamInit)>,
    /// The init segment of the last stored fragment.
    last_init: Option<u64>,
    fragments: u64,
    /// (wall-clock ms, stream pts) of the anchor fragment.
    anchor: Option<(i64, gst::ClockTime)>,
}

/// A stream clock that strays this far from arrival times is anchored again.
const MAX_DRIFT_MS: i64 = 5_000;

impl Run {
    /// The fragment's start in wall-clock time: from the stream's own timestamps relative to
    /// an anchor taken at arrival (a fragment arrives when it is complete, so it started one
    /// duration earlier). Never before the end of the previous fragment.
    fn producer_ms(
        &mut self,
        pts: Option<gst::ClockTime>,
        duration_ms: u32,
        now: i64,
        previous_end: Option<i64>,
    ) -> i64 {
        let arrival_start = now - i64::from(duration_ms);
        let start = match (pts, self.anchor) {
            (Some(pts), Some((wall, anchor_pts))) => {
                let offset =
                    pts.nseconds() as i64 / 1_000_000 - anchor_pts.nseconds() as i64 / 1_000_000;
                let start = wall + offset;
                if (start - arrival_start).abs() > MAX_DRIFT_MS {
                    self.anchor = Some((arrival_start, pts));
                    arrival_start
                } else {
                    start
                }
            }
            (Some(pts), None) => {
                self.anchor = Some((arrival_start, pts));
                arrival_start
            }
            (None, _) => arrival_start,
        };
        match previous_end {
            Some(end) if start < end && start > end - MAX_DRIFT_MS => end,
            _ => start,
        }
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_time_follows_the_stream_clock_after_the_anchor() {
        let mut run = Run::default();
        let base = gst::ClockTime::from_seconds(3600 * 1000);
        assert_eq!(run.producer_ms(Some(base), 2000, 10_000, None), 8_000);
        // Arrives late (slow disk), but the stream clock says it follows directly.
        assert_eq!(
            run.producer_ms(
                Some(base + gst::ClockTime::from_seconds(2)),
                2000,
                12_700,
                Some(10_000)
            ),
            10_000
        );
        // A stream clock far from arrival is anchored again.
        assert_eq!(
            run.producer_ms(
                Some(base + gst::ClockTime::from_seconds(4)),
                2000,
                60_000,
                Some(12_000)
            ),
            58_000
        );
        // Never overlapping the previous fragment by a little.
        let mut fresh = Run::default();
        assert_eq!(
            fresh.producer_ms(Some(base), 2000, 10_000, Some(8_500)),
            8_500
        );
    }
}
