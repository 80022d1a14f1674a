//! Camera video upload: one task per camera with `upload = { destination = .. }` puts its
//! stored fragments, oldest first, to the `s3` or `directory` destination of a video delivery
//! stream, inside the camera's daily window and under the shared bandwidth cap.
//!
//! Objects: `<prefix><camera>/init-<init id>.mp4` once per init segment, and
//! `<prefix><camera>/<yyyy>/<MM>/<dd>/<HH>/<first number>-<producer ms>.m4s` (UTC, the first
//! fragment's time): one fragment each, or with `segment_minutes` the fragments of a run that
//! share an init segment and have no gap, concatenated. Per camera and UTC day a playlist,
//! `<prefix><camera>/<yyyy>/<MM>/<dd>/playlist.m3u8`, plays what was uploaded (an EVENT
//! playlist while the day lasts, VOD with EXT-X-ENDLIST after).
//!
//! The fragment log's upload checkpoint moves only after the destination confirmed an object;
//! a put cut short (outage, shutdown) is repeated under the same key. Which objects and init
//! segments were uploaded is kept in a manifest under `manifest_dir/<camera>/<delivery stream>/`
//! (a JSON-lines file per day, removed after two days without change, and one of init
//! segments), so that playlists survive restarts and the deletion of local fragments.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use chrono::{DateTime, Datelike, Local, NaiveDate, Timelike, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::hls::{self, Playlist, Segment};
use super::log::{FragmentLog, FragmentMeta};
use crate::delivery::backoff;
use crate::delivery::destinations::naming::RenderContext;
use crate::delivery::destinations::{BuildError, DeliveryError, ObjectStore};
use crate::delivery::{DeliveryService, DeliveryServiceError, VideoDelivery};
use crate::devices::camera::CameraUpload;

pub use crate::delivery::status::{UploadState, UploadStatus};

/// How often the log is looked at when no notification came.
const POLL: Duration = Duration::from_secs(1);
/// Fragments listed per round.
const ROUND_FRAGMENTS: usize = 10_000;
/// Largest object made of several fragments (it is held in memory while it goes up).
const MAX_OBJECT_BYTES: u64 = 64 * 1024 * 1024;
/// A growing object is uploaded once its camera added nothing for this long.
const OPEN_OBJECT_WAIT_MS: i64 = 10_000;
/// Playlists are rewritten at most this often while a backlog goes up.
const PLAYLIST_EVERY: Duration = Duration::from_secs(30);
/// Day files of the manifest unchanged for this long are removed.
const MANIFEST_KEEP: Duration = Duration::from_secs(2 * 24 * 3600);
/// Init segments remembered in the manifest (the newest).
const MANIFEST_INITS: usize = 100;
const INITS_FILE: &str = "inits.jsonl";

const SEGMENT_TYPE: &str = "video/iso.segment";
const INIT_TYPE: &str = "video/mp4";
const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(
        "camera {camera}: upload.destination `{name}` is not a delivery stream; add a \
         [[delivery_streams]] entry with source = \"video\""
    )]
    NoDeliveryStream { camera: String, name: String },
    #[error(
        "camera {camera}: delivery stream `{name}` does not have source = \"video\"; cameras \
         upload only through video delivery streams"
    )]
    NotVideo { camera: String, name: String },
    #[error("camera {camera}: {source}")]
    Destination {
        camera: String,
        #[source]
        source: BuildError,
    },
    #[error("camera name `{0}` cannot name upload folders")]
    CameraName(String),
}

/// A running uploader.
pub struct UploadHandle {
    status: Arc<Mutex<UploadStatus>>,
    latest: watch::Sender<u64>,
    task: JoinHandle<()>,
}

impl UploadHandle {
    pub fn status(&self) -> UploadStatus {
        lock(&self.status).clone()
    }

    /// Tells the uploader that fragment `latest_number` was stored (it also looks every second).
    pub fn notify(&self, latest_number: u64) {
        self.latest.send_replace(latest_number);
    }

    /// Waits for the uploader to end (after the shutdown signal).
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

/// The gateway is stopping.
struct Stopped;

/// One uploaded object, as the manifest keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ObjectEntry {
    key: String,
    init_key: String,
    first: u64,
    last: u64,
    start_ms: i64,
    end_ms: i64,
    duration_ms: u32,
    /// The first fragment starts a new recording run.
    #[serde(default)]
    discontinuity: bool,
}

/// An uploaded init segment, as the manifest keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct InitEntry {
    init_id: u64,
    key: String,
}

/// One camera's upload task.
pub struct Uploader {
    camera: String,
    upload: CameraUpload,
    log: FragmentLog,
    delivery: VideoDelivery,
    store: Box<dyn ObjectStore>,
    /// `manifest_dir/<camera>/<delivery stream>`.
    manifest: PathBuf,
    status: Arc<Mutex<UploadStatus>>,
    latest: watch::Receiver<u64>,
    shutdown: watch::Receiver<bool>,
    checkpoint: Option<u64>,
    /// Uploaded init segments: id -> key.
    inits: BTreeMap<u64, String>,
    /// Days whose playlist lacks objects uploaded since it was written.
    dirty_days: BTreeSet<NaiveDate>,
    /// Days that were over when their playlist was last written.
    ended_days: BTreeSet<NaiveDate>,
    playlists_written: Instant,
    /// Failed attempts in a row.
    attempt: u32,
}

impl Uploader {
    /// Starts uploading `camera`'s fragments through the video delivery stream that
    /// `upload.destination` names.
    pub fn start(
        camera: String,
        upload: CameraUpload,
        log: FragmentLog,
        delivery: &DeliveryService,
        manifest_dir: PathBuf,
        shutdown: watch::Receiver<bool>,
    ) -> Result<UploadHandle, UploadError> {
        if camera.is_empty() || camera == "." || camera == ".." || camera.contains(['/', '\0']) {
            return Err(UploadError::CameraName(camera));
        }
        let name = upload.destination.clone();
        let video = match delivery.video_delivery(&name) {
            Ok(video) => video,
            Err(DeliveryServiceError::NotVideo(_)) => {
                return Err(UploadError::NotVideo { camera, name })
            }
            Err(_) => return Err(UploadError::NoDeliveryStream { camera, name }),
        };
        let store = video
            .object_store()
            .map_err(|source| UploadError::Destination {
                camera: camera.clone(),
                source,
            })?;
        // Rendering fails only for a partition key (check-config refuses them here): checked
        // once, so that later renderings can rely on it.
        if let Err(message) = render_prefix(&*store, 0, &camera) {
            return Err(UploadError::Destination {
                camera,
                source: BuildError {
                    kind: store.kind(),
                    message: format!("prefix: {message}"),
                },
            });
        }
        let status = Arc::new(Mutex::new(UploadStatus {
            camera: camera.clone(),
            destination: name.clone(),
            ..UploadStatus::default()
        }));
        delivery.register_upload(&status);
        let (latest_tx, latest) = watch::channel(0);
        let uploader = Uploader {
            manifest: manifest_dir.join(&camera).join(&name),
            camera,
            upload,
            log,
            delivery: video,
            store,
            status: status.clone(),
            latest,
            shutdown,
            checkpoint: None,
            inits: BTreeMap::new(),
            dirty_days: BTreeSet::new(),
            ended_days: BTreeSet::new(),
            playlists_written: Instant::now(),
            attempt: 0,
        };
        Ok(UploadHandle {
            status,
            latest: latest_tx,
            task: tokio::spawn(uploader.run()),
        })
    }

    async fn run(mut self) {
        tracing::info!(camera = %self.camera, delivery_stream = %self.delivery.name, target = %self.store.describe(), "video upload started");
        let _ = self.work().await;
        tracing::debug!(camera = %self.camera, "video upload stopped");
    }

    async fn work(&mut self) -> Result<(), Stopped> {
        let (camera, name) = (self.camera.clone(), self.delivery.name.clone());
        self.checkpoint = self
            .blocking("read the upload checkpoint", move |log| {
                log.upload_checkpoint(&camera, &name)
                    .map_err(|e| e.to_string())
            })
            .await?;
        self.update_status(|s, checkpoint| s.uploaded_through = checkpoint);
        let manifest = self.manifest.clone();
        self.inits = self
            .blocking("read the upload manifest", move |_| read_inits(&manifest))
            .await?;
        loop {
            if *self.shutdown.borrow() {
                return Err(Stopped);
            }
            if !in_window(self.upload.window, local_minute()) {
                self.update_status(|s, _| s.state = UploadState::WaitingForWindow);
                self.pending().await?;
                let wait = until_window(self.upload.window).min(Duration::from_secs(60));
                unless_shutdown(&mut self.shutdown, tokio::time::sleep(wait)).await?;
                continue;
            }
            if !self.round().await? {
                self.write_playlists(false).await?;
                self.update_status(|s, _| s.state = UploadState::Idle);
                let news = self.latest.changed();
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    Ok(()) = news => {}
                    _ = self.shutdown.wait_for(|stop| *stop) => return Err(Stopped),
                }
            }
        }
    }

    /// Uploads the objects after the checkpoint, oldest first; false when there was nothing
    /// ready to go.
    async fn round(&mut self) -> Result<bool, Stopped> {
        let pending = self.pending().await?;
        let mut objects = group(&pending, self.upload.segment_minutes);
        if objects
            .last()
            .is_some_and(|o| may_grow(o, self.upload.segment_minutes, now_ms()))
        {
            objects.pop();
        }
        if objects.is_empty() {
            return Ok(false);
        }
        self.update_status(|s, _| s.state = UploadState::Uploading);
        let backlog = objects.len() > 1;
        let mut window_closed = false;
        for object in objects {
            if !in_window(self.upload.window, local_minute()) {
                window_closed = true;
                break;
            }
            self.upload_object(object).await?;
            self.write_playlists(false).await?;
        }
        // At the end of a backlog, or of the window, the playlists show it at once; objects
        // that trickle in one by one (a live camera) show within PLAYLIST_EVERY.
        self.write_playlists(backlog || window_closed).await?;
        Ok(true)
    }

    /// The fragments after the checkpoint (the first [`ROUND_FRAGMENTS`]); sets the backlog.
    async fn pending(&mut self) -> Result<Vec<FragmentMeta>, Stopped> {
        let (camera, after) = (self.camera.clone(), self.checkpoint.unwrap_or(0));
        let pending = self
            .blocking("list fragments", move |log| {
                log.fragments_after(&camera, after, ROUND_FRAGMENTS)
                    .map_err(|e| e.to_string())
            })
            .await?;
        self.count_backlog(&pending).await?;
        Ok(pending)
    }

    /// Sets the backlog from the listed fragments (estimated beyond a full listing).
    async fn count_backlog(&mut self, pending: &[FragmentMeta]) -> Result<(), Stopped> {
        let mut fragments = pending.len() as u64;
        let mut bytes: u64 = pending.iter().map(|f| f.size).sum();
        if let (ROUND_FRAGMENTS, Some(listed_last)) = (pending.len(), pending.last()) {
            let camera = self.camera.clone();
            let usage = self
                .blocking("read camera usage", move |log| {
                    log.usage(&camera).map_err(|e| e.to_string())
                })
                .await?;
            let more = usage
                .last
                .map_or(0, |last| last.number.saturating_sub(listed_last.number));
            bytes += more * (bytes / fragments);
            fragments += more;
        }
        self.update_status(|s, _| {
            s.backlog_fragments = fragments;
            s.backlog_bytes = bytes;
        });
        Ok(())
    }

    /// Puts one object (and its init segment first, when new), then moves the checkpoint past
    /// it and deletes its fragments locally when asked to.
    async fn upload_object(&mut self, fragments: &[FragmentMeta]) -> Result<(), Stopped> {
        let (Some(first), Some(last)) = (fragments.first(), fragments.last()) else {
            return Ok(());
        };
        let init_key = self.init_key(first.init_id, first.producer_ms).await?;
        let (camera, numbers) = (
            self.camera.clone(),
            fragments.iter().map(|f| f.number).collect::<Vec<_>>(),
        );
        let body = self
            .blocking("read fragments", move |log| {
                let mut body = Vec::new();
                for &number in &numbers {
                    // A fragment trimmed since it was listed is gone: the rest still goes up.
                    if let Some(data) = log.read(&camera, number).map_err(|e| e.to_string())? {
                        body.extend_from_slice(&data);
                    }
                }
                Ok(body)
            })
            .await?;
        let entry = ObjectEntry {
            key: format!(
                "{}{}/{}/{}-{}.m4s",
                self.prefix_at(first.producer_ms),
                self.camera,
                utc_folders(first.producer_ms, true),
                first.number,
                first.producer_ms
            ),
            init_key,
            first: first.number,
            last: last.number,
            start_ms: first.producer_ms,
            end_ms: end_ms(last),
            duration_ms: fragments.iter().map(|f| f.duration_ms).sum(),
            discontinuity: first.discontinuity,
        };
        let size = body.len() as u64;
        let uploaded = !body.is_empty();
        if uploaded {
            self.put(&entry.key, Bytes::from(body), SEGMENT_TYPE)
                .await?;
            let day = utc_day(entry.start_ms);
            let file = self.manifest.join(day_file(day));
            let line = json_line(&entry);
            self.blocking("write the upload manifest", move |_| {
                append_line(&file, &line)
            })
            .await?;
            self.dirty_days.insert(day);
        }
        let (camera, name, number) = (self.camera.clone(), self.delivery.name.clone(), last.number);
        self.blocking("save the upload checkpoint", move |log| {
            log.set_upload_checkpoint(&camera, &name, number)
                .map_err(|e| e.to_string())
        })
        .await?;
        self.checkpoint = Some(number);
        if self.upload.delete_after_upload {
            let camera = self.camera.clone();
            self.blocking("delete uploaded fragments", move |log| {
                log.delete_through(&camera, number)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
            .await?;
        }
        let count = fragments.len() as u64;
        self.update_status(|s, checkpoint| {
            s.uploaded_through = checkpoint;
            if uploaded {
                s.last_upload_ms = Some(now_ms());
            }
            s.backlog_fragments = s.backlog_fragments.saturating_sub(count);
            s.backlog_bytes = s.backlog_bytes.saturating_sub(size);
        });
        Ok(())
    }

    /// The key of init segment `init_id`, uploading it first when it is new.
    async fn init_key(&mut self, init_id: u64, time_ms: i64) -> Result<String, Stopped> {
        if let Some(key) = self.inits.get(&init_id) {
            return Ok(key.clone());
        }
        let key = format!(
            "{}{}/init-{init_id}.mp4",
            self.prefix_at(time_ms),
            self.camera
        );
        let camera = self.camera.clone();
        let data = self
            .blocking("read an init segment", move |log| {
                log.init_segment(&camera, init_id)
                    .map_err(|e| e.to_string())
            })
            .await?;
        match data {
            Some(data) => self.put(&key, Bytes::from(data), INIT_TYPE).await?,
            None => {
                tracing::warn!(camera = %self.camera, init_id, "init segment missing from the log; its fragments go up without it")
            }
        }
        let (file, line) = (
            self.manifest.join(INITS_FILE),
            json_line(&InitEntry {
                init_id,
                key: key.clone(),
            }),
        );
        self.blocking("write the upload manifest", move |_| {
            append_line(&file, &line)
        })
        .await?;
        self.inits.insert(init_id, key.clone());
        Ok(key)
    }

    /// Rewrites the playlists of days with new objects, and once those of days that ended
    /// since; at most every [`PLAYLIST_EVERY`] unless `now` (and there are new objects). Also
    /// called while idle, so that the last objects of a trickle show.
    async fn write_playlists(&mut self, now: bool) -> Result<(), Stopped> {
        let due = self.playlists_written.elapsed() >= PLAYLIST_EVERY;
        let wanted_now = now && !self.dirty_days.is_empty();
        if !(due || wanted_now) {
            return Ok(());
        }
        let dir = self.manifest.clone();
        let kept = self
            .blocking("read the upload manifest", move |_| manifest_days(&dir))
            .await?;
        let today = utc_day(now_ms());
        let mut days = std::mem::take(&mut self.dirty_days);
        days.extend(
            kept.into_iter()
                .filter(|d| *d < today && !self.ended_days.contains(d)),
        );
        for day in days {
            self.write_playlist(day, today).await?;
        }
        self.playlists_written = Instant::now();
        Ok(())
    }

    async fn write_playlist(&mut self, day: NaiveDate, today: NaiveDate) -> Result<(), Stopped> {
        let file = self.manifest.join(day_file(day));
        let entries = self
            .blocking("read the upload manifest", move |_| read_objects(&file))
            .await?;
        if entries.is_empty() {
            return Ok(());
        }
        let day_start = day
            .and_hms_opt(0, 0, 0)
            .map_or(0, |t| t.and_utc().timestamp_millis());
        let dir = format!(
            "{}{}/{}/",
            self.prefix_at(day_start),
            self.camera,
            utc_folders(day_start, false)
        );
        let ended = day < today;
        let text = playlist_text(&dir, &entries, ended);
        self.put(
            &format!("{dir}playlist.m3u8"),
            Bytes::from(text),
            PLAYLIST_TYPE,
        )
        .await?;
        if ended {
            self.ended_days.insert(day);
        }
        Ok(())
    }

    /// Puts an object under the bandwidth cap until the destination confirms it.
    async fn put(&mut self, key: &str, body: Bytes, content_type: &str) -> Result<(), Stopped> {
        loop {
            if self.store.uses_network() {
                let acquire = self
                    .delivery
                    .bandwidth
                    .acquire(self.delivery.priority, body.len() as u64);
                unless_shutdown(&mut self.shutdown, acquire).await?;
            }
            let put = self.store.put_object(key, body.clone(), content_type);
            match unless_shutdown(&mut self.shutdown, put).await? {
                Ok(()) => {
                    tracing::debug!(camera = %self.camera, key, bytes = body.len(), "video object uploaded");
                    self.succeeded();
                    return Ok(());
                }
                Err(error) => {
                    let unreachable = matches!(error, DeliveryError::Unreachable(_));
                    self.failed(format!("{key}: {error}"), unreachable).await?;
                }
            }
        }
    }

    /// Runs `f` on the blocking pool, again after a pause while it fails.
    async fn blocking<T: Send + 'static>(
        &mut self,
        what: &str,
        f: impl Fn(&FragmentLog) -> Result<T, String> + Clone + Send + 'static,
    ) -> Result<T, Stopped> {
        loop {
            let (log, f) = (self.log.clone(), f.clone());
            match tokio::task::spawn_blocking(move || f(&log)).await {
                Ok(Ok(value)) => {
                    self.succeeded();
                    return Ok(value);
                }
                Ok(Err(error)) => {
                    self.failed(format!("cannot {what}: {error}"), false)
                        .await?
                }
                Err(error) => {
                    self.failed(format!("cannot {what}: {error}"), false)
                        .await?
                }
            }
        }
    }

    fn succeeded(&mut self) {
        if self.attempt > 0 {
            tracing::info!(camera = %self.camera, delivery_stream = %self.delivery.name, "video upload resumed");
            self.attempt = 0;
            self.update_status(|s, _| s.state = UploadState::Uploading);
        }
    }

    /// Records a failure and waits before the next attempt.
    async fn failed(&mut self, error: String, unreachable: bool) -> Result<(), Stopped> {
        self.attempt += 1;
        let wait = if unreachable {
            backoff::while_unreachable()
        } else {
            backoff::after_error(self.attempt)
        };
        if self.attempt == 1 {
            tracing::warn!(camera = %self.camera, delivery_stream = %self.delivery.name, %error, "video upload failed; retrying");
        } else {
            tracing::debug!(camera = %self.camera, %error, attempt = self.attempt, "video upload failed again");
        }
        self.update_status(|s, _| {
            s.state = UploadState::Retrying;
            s.last_error = Some(error);
        });
        unless_shutdown(&mut self.shutdown, tokio::time::sleep(wait)).await
    }

    fn update_status(&self, f: impl FnOnce(&mut UploadStatus, Option<u64>)) {
        f(&mut lock(&self.status), self.checkpoint);
    }

    /// The destination's prefix at `time_ms` (checked to render in `start`).
    fn prefix_at(&self, time_ms: i64) -> String {
        render_prefix(&*self.store, time_ms, &self.camera).unwrap_or_default()
    }
}

fn render_prefix(store: &dyn ObjectStore, time_ms: i64, camera: &str) -> Result<String, String> {
    store.prefix().render(&RenderContext {
        created_ms: u64::try_from(time_ms).unwrap_or(0),
        batch_id: camera,
        error_output_type: None,
        partition_values: &BTreeMap::new(),
    })
}

fn lock(status: &Mutex<UploadStatus>) -> std::sync::MutexGuard<'_, UploadStatus> {
    status.lock().unwrap_or_else(|p| p.into_inner())
}

/// `f`, unless the shutdown signal (or the loss of its sender) comes first.
async fn unless_shutdown<T>(
    shutdown: &mut watch::Receiver<bool>,
    f: impl Future<Output = T>,
) -> Result<T, Stopped> {
    if *shutdown.borrow() {
        return Err(Stopped);
    }
    tokio::select! {
        out = f => Ok(out),
        _ = shutdown.wait_for(|stop| *stop) => Err(Stopped),
    }
}

fn now_ms() -> i64 {
    crate::storage::now_ms() as i64
}

fn end_ms(fragment: &FragmentMeta) -> i64 {
    fragment.producer_ms + i64::from(fragment.duration_ms)
}

/// Splits fragments (ascending by number) into objects: one per fragment, or with
/// `segment_minutes` runs of consecutive fragments of one recording run with the same init
/// segment and no gap (see [`hls::discontinuity_between`]), spanning at most that many minutes
/// and [`MAX_OBJECT_BYTES`].
fn group(fragments: &[FragmentMeta], segment_minutes: u32) -> Vec<&[FragmentMeta]> {
    let span_ms = i64::from(segment_minutes) * 60_000;
    let mut objects = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, f) in fragments.iter().enumerate() {
        if i > start {
            let (first, prev) = (&fragments[start], &fragments[i - 1]);
            let joins = segment_minutes > 0
                && f.init_id == first.init_id
                && f.number == prev.number + 1
                && !f.discontinuity
                && !hls::discontinuity_between(end_ms(prev), f.producer_ms)
                && end_ms(f) - first.producer_ms <= span_ms
                && bytes + f.size <= MAX_OBJECT_BYTES;
            if !joins {
                objects.push(&fragments[start..i]);
                (start, bytes) = (i, 0);
            }
        }
        bytes += f.size;
    }
    if start < fragments.len() {
        objects.push(&fragments[start..]);
    }
    objects
}

/// Whether the camera may still add to this (last) object: it is shorter than
/// `segment_minutes` and its last fragment is recent.
fn may_grow(object: &[FragmentMeta], segment_minutes: u32, now_ms: i64) -> bool {
    let (Some(first), Some(last)) = (object.first(), object.last()) else {
        return false;
    };
    let bytes: u64 = object.iter().map(|f| f.size).sum();
    let wait = OPEN_OBJECT_WAIT_MS.max(2 * i64::from(last.duration_ms));
    segment_minutes > 0
        && end_ms(last) - first.producer_ms < i64::from(segment_minutes) * 60_000
        && bytes < MAX_OBJECT_BYTES
        && now_ms - last.server_ms < wait
}

/// Whether `minute` (after local midnight) is inside the window; no window = always.
fn in_window(window: Option<(u16, u16)>, minute: u16) -> bool {
    match window {
        None => true,
        Some((start, end)) if start < end => (start..end).contains(&minute),
        Some((start, end)) => minute >= start || minute < end,
    }
}

fn local_minute() -> u16 {
    let now = Local::now();
    (now.hour() * 60 + now.minute()) as u16
}

/// How long until the window opens (zero when it is open).
fn until_window(window: Option<(u16, u16)>) -> Duration {
    let Some((start, _)) = window else {
        return Duration::ZERO;
    };
    let now = Local::now();
    let now_s = now.num_seconds_from_midnight();
    let start_s = u32::from(start) * 60;
    Duration::from_secs(u64::from((start_s + 86_400 - now_s) % 86_400))
}

fn utc(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn utc_day(ms: i64) -> NaiveDate {
    utc(ms).date_naive()
}

/// `yyyy/MM/dd` or `yyyy/MM/dd/HH` (UTC).
fn utc_folders(ms: i64, hour: bool) -> String {
    let t = utc(ms);
    let day = format!("{:04}/{:02}/{:02}", t.year(), t.month(), t.day());
    if hour {
        format!("{day}/{:02}", t.hour())
    } else {
        day
    }
}

fn day_file(day: NaiveDate) -> String {
    format!(
        "{:04}-{:02}-{:02}.jsonl",
        day.year(),
        day.month(),
        day.day()
    )
}

/// `key` relative to the folder `dir` (ending in `/`), as a playlist names it.
fn relative_uri(dir: &str, key: &str) -> String {
    let dir: Vec<&str> = dir.split('/').filter(|s| !s.is_empty()).collect();
    let key: Vec<&str> = key.split('/').collect();
    let (folders, _) = key.split_at(key.len().saturating_sub(1));
    let common = dir.iter().zip(folders).take_while(|(a, b)| a == b).count();
    let mut uri = "../".repeat(dir.len() - common);
    uri.push_str(&key[common..].join("/"));
    uri
}

/// The day's playlist, in the folder `dir`: VOD and ended once the day is over, else EVENT.
fn playlist_text(dir: &str, entries: &[ObjectEntry], ended: bool) -> String {
    let mut prev_end: Option<i64> = None;
    let segments = entries
        .iter()
        .map(|e| {
            let discontinuity = prev_end
                .is_some_and(|p| e.discontinuity || hls::discontinuity_between(p, e.start_ms));
            prev_end = Some(e.end_ms);
            Segment {
                uri: relative_uri(dir, &e.key),
                duration_ms: e.duration_ms,
                program_date_time_ms: e.start_ms,
                map_uri: relative_uri(dir, &e.init_key),
                discontinuity,
            }
        })
        .collect();
    let text = hls::render(&Playlist {
        media_sequence: 0,
        discontinuity_sequence: 0,
        segments,
        ended,
        playlist_type_vod: ended,
    });
    if ended {
        return text;
    }
    // Segments are only ever added to a day's playlist while it lasts.
    text.replacen(
        "#EXT-X-INDEPENDENT-SEGMENTS\n",
        "#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-PLAYLIST-TYPE:EVENT\n",
        1,
    )
}

fn json_line<T: Serialize>(value: &T) -> String {
    let mut line = serde_json::to_string(value).unwrap_or_default();
    line.push('\n');
    line
}

/// Appends `line` to `file` durably, creating its folder.
fn append_line(file: &Path, line: &str) -> Result<(), String> {
    let error = |e: std::io::Error| format!("{}: {e}", file.display());
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(error)?;
    }
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .map_err(error)?;
    f.write_all(line.as_bytes()).map_err(error)?;
    f.sync_data().map_err(error)
}

/// The readable lines of a JSON-lines file (a line cut short by a crash is skipped).
fn read_lines<T: for<'de> Deserialize<'de>>(file: &Path) -> Result<Vec<T>, String> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(format!("{}: {e}", file.display())),
    }
}

/// The day's objects, each once (the last line for a key uploaded again), in number order.
fn read_objects(file: &Path) -> Result<Vec<ObjectEntry>, String> {
    let mut by_first: BTreeMap<u64, ObjectEntry> = BTreeMap::new();
    for entry in read_lines::<ObjectEntry>(file)? {
        by_first.insert(entry.first, entry);
    }
    Ok(by_first.into_values().collect())
}

/// The uploaded init segments; the file is cut to the newest [`MANIFEST_INITS`] when it grew
/// to twice that.
fn read_inits(dir: &Path) -> Result<BTreeMap<u64, String>, String> {
    let file = dir.join(INITS_FILE);
    let entries = read_lines::<InitEntry>(&file)?;
    let grown = entries.len() >= 2 * MANIFEST_INITS;
    let mut inits: BTreeMap<u64, String> =
        entries.into_iter().map(|e| (e.init_id, e.key)).collect();
    while inits.len() > MANIFEST_INITS {
        inits.pop_first();
    }
    if grown {
        let text: String = inits
            .iter()
            .map(|(&init_id, key)| {
                json_line(&InitEntry {
                    init_id,
                    key: key.clone(),
                })
            })
            .collect();
        crate::delivery::destinations::directory::write_atomically(&file, text.as_bytes())
            .map_err(|e| e.to_string())?;
    }
    Ok(inits)
}

/// The days the manifest keeps, after removing those unchanged for [`MANIFEST_KEEP`].
fn manifest_days(dir: &Path) -> Result<Vec<NaiveDate>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    let mut days = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(day) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".jsonl"))
            .and_then(|n| NaiveDate::parse_from_str(n, "%Y-%m-%d").ok())
        else {
            continue;
        };
        let age = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok());
        if age.is_some_and(|age| age > MANIFEST_KEEP) {
            if let Err(e) = std::fs::remove_file(entry.path()) {
                tracing::warn!(file = %entry.path().display(), error = %e, "cannot remove an old upload manifest");
            }
        } else {
            days.push(day);
        }
    }
    Ok(days)
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2024-05-01T12:00:00Z
    const NOON: i64 = 1_714_564_800_000;

    fn fragment(number: u64, start_ms: i64, duration_ms: u32, init_id: u64) -> FragmentMeta {
        FragmentMeta {
            number,
            producer_ms: start_ms,
            server_ms: start_ms + i64::from(duration_ms),
            duration_ms,
            size: 100,
            keyframe: true,
            discontinuity: false,
            discontinuity_sequence: 0,
            codec: "h264".into(),
            width: 640,
            height: 360,
            init_id,
        }
    }

    fn numbers(objects: &[&[FragmentMeta]]) -> Vec<Vec<u64>> {
        objects
            .iter()
            .map(|o| o.iter().map(|f| f.number).collect())
            .collect()
    }

    #[test]
    fn grouping_by_minutes_init_and_gaps() {
        // 2 s fragments: 1-3 continuous, 4 after a 2 s gap, 5 with a new init, 6-40 continuous.
        let mut fragments = vec![
            fragment(1, NOON, 2000, 1),
            fragment(2, NOON + 2000, 2000, 1),
            fragment(3, NOON + 4400, 2000, 1), // 400 ms late: still continuous
            fragment(4, NOON + 8400, 2000, 1),
            fragment(5, NOON + 10_400, 2000, 2),
        ];
        for n in 6..=40 {
            fragments.push(fragment(n, NOON + 12_400 + (n as i64 - 6) * 2000, 2000, 2));
        }
        assert_eq!(
            numbers(&group(&fragments, 0)),
            (1..=40).map(|n| vec![n]).collect::<Vec<_>>()
        );
        let objects = group(&fragments, 1);
        // One minute holds 30 fragments of 2 s: 5..=34, then 35..=40.
        assert_eq!(
            numbers(&objects),
            vec![
                vec![1, 2, 3],
                vec![4],
                (5..=34).collect(),
                (35..=40).collect()
            ]
        );
        // The last object is young and short: held while the camera may add to it.
        let last = objects[3];
        assert!(may_grow(last, 1, last[5].server_ms + 1000));
        assert!(!may_grow(last, 1, last[5].server_ms + 11_000));
        assert!(!may_grow(objects[2], 1, last[5].server_ms));
        assert!(!may_grow(last, 0, last[5].server_ms));
        // A new recording run (the camera reconnected) starts a new object, even on time.
        fragments[36].discontinuity = true;
        let objects = group(&fragments, 1);
        assert_eq!(
            numbers(&objects[3..]),
            vec![vec![35, 36], (37..=40).collect()]
        );
    }

    #[test]
    fn windows_wrap_around_midnight() {
        assert!(in_window(None, 0));
        let night = Some((23 * 60, 5 * 60));
        assert!(in_window(night, 23 * 60));
        assert!(in_window(night, 0));
        assert!(in_window(night, 4 * 60 + 59));
        assert!(!in_window(night, 5 * 60));
        assert!(!in_window(night, 12 * 60));
        let day = Some((60, 5 * 60));
        assert!(in_window(day, 60));
        assert!(!in_window(day, 59));
        assert!(!in_window(day, 5 * 60));
        assert!(until_window(None).is_zero());
        assert!(until_window(day) <= Duration::from_secs(86_400));
    }

    #[test]
    fn playlist_uris_are_relative_to_the_playlist() {
        let dir = "gw1/cam/2024/05/01/";
        assert_eq!(
            relative_uri(dir, "gw1/cam/2024/05/01/12/5-1.m4s"),
            "12/5-1.m4s"
        );
        assert_eq!(
            relative_uri(dir, "gw1/cam/init-2.mp4"),
            "../../../init-2.mp4"
        );
        assert_eq!(
            relative_uri("a/2024/05/01/", "b/init-1.mp4"),
            "../../../../b/init-1.mp4"
        );
        let entry = |first: u64, start_ms: i64, init: u64| ObjectEntry {
            key: format!("cam/2024/05/01/12/{first}-{start_ms}.m4s"),
            init_key: format!("cam/init-{init}.mp4"),
            first,
            last: first,
            start_ms,
            end_ms: start_ms + 2000,
            duration_ms: 2000,
            discontinuity: false,
        };
        let entries = [
            entry(1, NOON, 1),
            entry(2, NOON + 2000, 1),
            entry(3, NOON + 60_000, 1),
        ];
        let text = playlist_text("cam/2024/05/01/", &entries, false);
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-PLAYLIST-TYPE:EVENT\n\
             #EXT-X-MAP:URI=\"../../../init-1.mp4\"\n\
             #EXT-X-PROGRAM-DATE-TIME:2024-05-01T12:00:00.000Z\n\
             #EXTINF:2.000,\n12/1-1714564800000.m4s\n#EXTINF:2.000,\n12/2-1714564802000.m4s\n\
             #EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:2024-05-01T12:01:00.000Z\n\
             #EXTINF:2.000,\n12/3-1714564860000.m4s\n"
        );
        let mut restarted = entries.clone();
        restarted[1].discontinuity = true;
        let text = playlist_text("cam/2024/05/01/", &restarted, false);
        assert!(
            text.contains(
                "#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:2024-05-01T12:00:02.000Z\n"
            ),
            "{text}"
        );
        let ended = playlist_text("cam/2024/05/01/", &entries, true);
        assert!(ended.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"));
        assert!(ended.ends_with("#EXT-X-ENDLIST\n"));
    }

    #[test]
    fn manifest_survives_torn_lines_and_repeats() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("cam/d/2024-05-01.jsonl");
        let entry = |first: u64, key: &str| ObjectEntry {
            key: key.into(),
            init_key: "i".into(),
            first,
            last: first,
            start_ms: NOON,
            end_ms: NOON,
            duration_ms: 0,
            discontinuity: false,
        };
        append_line(&file, &json_line(&entry(2, "b"))).unwrap();
        append_line(&file, &json_line(&entry(1, "a"))).unwrap();
        append_line(&file, &json_line(&entry(2, "b2"))).unwrap();
        append_line(&file, "{\"key\": \"torn").unwrap();
        let keys: Vec<String> = read_objects(&file)
            .unwrap()
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(keys, ["a", "b2"]);
        assert_eq!(
            manifest_days(&tmp.path().join("cam/d")).unwrap(),
            [NaiveDate::from_ymd_opt(2024, 5, 1).unwrap()]
        );
        assert!(manifest_days(&tmp.path().join("none")).unwrap().is_empty());

        let dir = tmp.path().join("inits");
        for id in 1..=2 * MANIFEST_INITS as u64 {
            append_line(
                &dir.join(INITS_FILE),
                &json_line(&InitEntry {
                    init_id: id,
                    key: format!("k{id}"),
                }),
            )
            .unwrap();
        }
        let inits = read_inits(&dir).unwrap();
        assert_eq!(inits.len(), MANIFEST_INITS);
        assert_eq!(inits.keys().next(), Some(&(MANIFEST_INITS as u64 + 1)));
        assert_eq!(
            read_lines::<InitEntry>(&dir.join(INITS_FILE))
                .unwrap()
                .len(),
            MANIFEST_INITS
        );
    }
}
