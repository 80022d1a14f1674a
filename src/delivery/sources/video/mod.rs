//! Camera fragments as a source of the delivery engine: one task per camera with `upload = { destination = .. }` puts its
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
//!
//! The engine's parts are the record runner's: the bandwidth cap, the retry policy, the error
//! output and the delivery stream's status (`put`). An object the engine gives up on (a
//! permanent error) goes to the error output and the checkpoint moves past it: never retried
//! forever, never dropped silently. `objects` groups fragments into objects, `manifest` and
//! `playlists` keep what went up. Video itself never depends on delivery: the gateway hands
//! the video service this source as its `crate::video::uploads::UploadStarter`.

mod manifest;
mod objects;
mod playlists;
mod put;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::NaiveDate;
use tokio::sync::watch;

use crate::delivery::destinations::{BuildError, ObjectStore};
use crate::delivery::runner::send::{Shared, Stopped};
use crate::delivery::{DeliveryService, DeliveryServiceError, VideoDelivery};
use crate::devices::camera::CameraUpload;
use crate::video::log::{FragmentLog, FragmentMeta};
use crate::video::uploads::{UploadHandle, UploadStarter, UploadState, UploadStatus};
use manifest::{append_line, day_file, json_line, read_inits, InitEntry, ObjectEntry, INITS_FILE};
use objects::{
    end_ms, group, in_window, local_minute, may_grow, now_ms, until_window, utc_day, utc_folders,
};
use put::{render_prefix, unless_shutdown, Put};

/// How often the log is looked at when no notification came.
const POLL: Duration = Duration::from_secs(1);
/// Fragments listed per round.
const ROUND_FRAGMENTS: usize = 10_000;

const SEGMENT_TYPE: &str = "video/iso.segment";
const INIT_TYPE: &str = "video/mp4";

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

/// One camera's upload task.
pub struct Uploader {
    pub(super) camera: String,
    pub(super) upload: CameraUpload,
    pub(super) log: FragmentLog,
    pub(super) delivery: VideoDelivery,
    /// What the engine's senders of this delivery stream share (cap, status, error output).
    pub(super) shared: Shared,
    pub(super) store: Box<dyn ObjectStore>,
    /// `manifest_dir/<camera>/<delivery stream>`.
    pub(super) manifest: PathBuf,
    pub(super) status: Arc<Mutex<UploadStatus>>,
    pub(super) latest: watch::Receiver<u64>,
    pub(super) shutdown: watch::Receiver<bool>,
    pub(super) checkpoint: Option<u64>,
    /// Uploaded init segments: id -> key.
    pub(super) inits: BTreeMap<u64, String>,
    /// Days whose playlist lacks objects uploaded since it was written.
    pub(super) dirty_days: BTreeSet<NaiveDate>,
    /// Days that were over when their playlist was last written.
    pub(super) ended_days: BTreeSet<NaiveDate>,
    pub(super) playlists_written: Instant,
    /// The last attempt (a put or a fragment-log call) failed.
    pub(super) retrying: bool,
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
        let shared = video.shared(shutdown.clone());
        let uploader = Uploader {
            shared,
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
            retrying: false,
        };
        Ok(UploadHandle::new(
            status,
            latest_tx,
            tokio::spawn(uploader.run()),
        ))
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
        let body = self.read_body(fragments).await?;
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
        let mut uploaded = !body.is_empty();
        let mut gave_up = false;
        if uploaded
            && self
                .put(&entry.key, Bytes::from(body), SEGMENT_TYPE)
                .await?
                == Put::GaveUp
        {
            (uploaded, gave_up) = (false, true);
        }
        if uploaded {
            let day = utc_day(entry.start_ms);
            let file = self.manifest.join(day_file(day));
            let line = json_line(&entry);
            self.blocking("write the upload manifest", move |_| {
                append_line(&file, &line)
            })
            .await?;
            self.dirty_days.insert(day);
        }
        self.move_checkpoint(last.number, gave_up).await?;
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

    /// The fragments' data, concatenated (a fragment trimmed since it was listed is gone: the
    /// rest still goes up).
    async fn read_body(&mut self, fragments: &[FragmentMeta]) -> Result<Vec<u8>, Stopped> {
        let (camera, numbers) = (
            self.camera.clone(),
            fragments.iter().map(|f| f.number).collect::<Vec<_>>(),
        );
        self.blocking("read fragments", move |log| {
            let mut body = Vec::new();
            for &number in &numbers {
                if let Some(data) = log.read(&camera, number).map_err(|e| e.to_string())? {
                    body.extend_from_slice(&data);
                }
            }
            Ok(body)
        })
        .await
    }

    /// Moves the upload checkpoint to `number` and deletes the fragments through it locally
    /// when asked to.
    async fn move_checkpoint(&mut self, number: u64, gave_up: bool) -> Result<(), Stopped> {
        let (camera, name) = (self.camera.clone(), self.delivery.name.clone());
        self.blocking("save the upload checkpoint", move |log| {
            log.set_upload_checkpoint(&camera, &name, number)
                .map_err(|e| e.to_string())
        })
        .await?;
        self.checkpoint = Some(number);
        // A given-up object's fragments stay (until retention), for whoever reads the error
        // output; a later object's deletion removes them with it.
        if self.upload.delete_after_upload && !gave_up {
            let camera = self.camera.clone();
            self.blocking("delete uploaded fragments", move |log| {
                log.delete_through(&camera, number)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
            .await?;
        }
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
            Some(data) => {
                if self.put(&key, Bytes::from(data), INIT_TYPE).await? == Put::GaveUp {
                    return Ok(key); // not remembered: tried again with the next object
                }
            }
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
}

impl UploadStarter for DeliveryService {
    fn start_upload(
        &self,
        camera: &str,
        upload: &CameraUpload,
        log: &FragmentLog,
        manifest_dir: &Path,
        shutdown: watch::Receiver<bool>,
    ) -> Result<UploadHandle, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Uploader::start(
            camera.to_owned(),
            upload.clone(),
            log.clone(),
            self,
            manifest_dir.to_path_buf(),
            shutdown,
        )?)
    }
}
