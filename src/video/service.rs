//! The video service: the fragment log, one supervisor per camera, retention and uploads.
//!
//! Owns starting the cameras of the device registry (devices of kind `camera` with a
//! `[camera]` table) and following it when the device files change (a camera added, changed
//! or removed is started, restarted or stopped), the periodic retention pass (age; size is
//! applied with every append), the uploaders of cameras with `upload`, the cameras' status,
//! and an orderly stop in which every camera stores the fragment it was recording.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::camera::{now_ms, Camera, CameraLive, HANDOFF_QUEUE};
use super::config::VideoConfig;
use super::log::{
    CameraUsage, FragmentLog, RetentionPolicy, StreamRecord, StreamStatus, VideoLogError,
    VideoOnFull,
};
use super::pipeline::PipelineSpec;
use super::uploads::{UploadHandle, UploadStarter, UploadStatus};
use crate::config::SecretSource;
use crate::devices::camera::{CameraConfig, CameraOnFull};
use crate::devices::Device;

/// How often age retention runs.
const RETENTION_INTERVAL: Duration = Duration::from_secs(60);
/// What a stream created with `DataRetentionInHours` 0 keeps: AWS keeps such a stream's
/// fragments in its service buffer for 5 minutes.
pub const NO_RETENTION_BUFFER: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum VideoServiceError {
    #[error("opening the video fragment log {path}: {source}")]
    Open {
        path: PathBuf,
        source: VideoLogError,
    },
}

/// A camera's status as `/video/cameras` and `/status` show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CameraStatus {
    pub name: String,
    pub source: String,
    #[serde(flatten)]
    pub live: CameraLive,
    pub fragments: u64,
    pub bytes: u64,
    pub oldest_ms: Option<i64>,
    pub evicted_fragments: u64,
    pub retention_hours: u32,
    pub max_bytes: Option<u64>,
    /// The camera's uploads, when it has `upload`.
    pub upload: Option<UploadStatus>,
}

/// Cheap to clone.
#[derive(Clone)]
pub struct VideoService {
    inner: Arc<Inner>,
}

struct Inner {
    log: FragmentLog,
    dir: PathBuf,
    settings: VideoConfig,
    min_free_disk: u64,
    uploads: Option<Arc<dyn UploadStarter>>,
    cameras: Mutex<BTreeMap<String, Running>>,
    /// Stops the retention pass.
    shutdown: watch::Sender<bool>,
    retention: Mutex<Option<JoinHandle<()>>>,
}

/// A camera that runs: its supervisor and, with `upload`, its uploader.
struct Running {
    camera: Arc<Camera>,
    config: CameraConfig,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    upload: Option<UploadHandle>,
}

impl Running {
    /// Stops the camera (it stores the fragment it was recording) and its uploader.
    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        if let Some(upload) = self.upload {
            upload.join().await;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl VideoService {
    /// Opens the fragment log in `dir` and starts every camera among `devices`, and the
    /// uploads of those with `upload` (started by `uploads`: the delivery engine).
    /// GStreamer itself is initialised by the first camera.
    pub async fn start(
        settings: VideoConfig,
        dir: PathBuf,
        min_free_disk: u64,
        devices: Vec<Device>,
        uploads: Option<Arc<dyn UploadStarter>>,
    ) -> Result<VideoService, VideoServiceError> {
        let path = dir.join("video.redb");
        let opened = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || FragmentLog::open(&path)).await
        };
        let log = opened
            .map_err(|e| VideoServiceError::Open {
                path: path.clone(),
                source: VideoLogError::Storage(e.to_string()),
            })?
            .map_err(|source| VideoServiceError::Open { path, source })?;
        let (shutdown, _) = watch::channel(false);
        let service = VideoService {
            inner: Arc::new(Inner {
                log,
                dir,
                settings,
                min_free_disk,
                uploads,
                cameras: Mutex::new(BTreeMap::new()),
                shutdown,
                retention: Mutex::new(None),
            }),
        };
        service.reload(devices).await;
        *lock(&service.inner.retention) = Some(tokio::spawn(service.clone().retention()));
        Ok(service)
    }

    /// Follows the device registry: starts new cameras, restarts changed ones, stops removed
    /// ones; cameras whose `[camera]` table did not change keep running undisturbed.
    pub async fn reload(&self, devices: Vec<Device>) {
        let wanted: BTreeMap<String, CameraConfig> = devices
            .into_iter()
            .filter_map(|d| d.camera.map(|c| (d.id, c)))
            .collect();
        let stopping: Vec<(String, Running)> = {
            let mut cameras = lock(&self.inner.cameras);
            let gone: Vec<String> = cameras
                .iter()
                .filter(|(name, running)| wanted.get(*name) != Some(&running.config))
                .map(|(name, _)| name.clone())
                .collect();
            gone.into_iter()
                .filter_map(|name| cameras.remove(&name).map(|r| (name, r)))
                .collect()
        };
        for (name, running) in stopping {
            tracing::info!(camera = %name, "stopping camera (its device file changed or was removed)");
            running.stop().await;
        }
        let mut cameras = lock(&self.inner.cameras);
        for (name, config) in wanted {
            if let std::collections::btree_map::Entry::Vacant(slot) = cameras.entry(name) {
                let running = self.launch(slot.key(), config);
                slot.insert(running);
            }
        }
    }

    fn launch(&self, name: &str, config: CameraConfig) -> Running {
        let password = match &config.password {
            Some(source) => match read_secret(source) {
                Ok(secret) => Some(secret),
                Err(error) => {
                    tracing::error!(camera = %name, %error, "cannot read the camera's password; connecting without it");
                    None
                }
            },
            None => None,
        };
        let fragment_duration = Duration::from_millis(u64::from(
            config
                .fragment_duration_ms
                .unwrap_or(self.inner.settings.fragment_duration_ms),
        ));
        let spec = PipelineSpec {
            source: config.source.clone(),
            username: config.username.clone(),
            password,
            fragment_duration,
            encoder: config.encoder,
            width: config.width,
            height: config.height,
            framerate: config.framerate,
            queue: HANDOFF_QUEUE,
        };
        let camera = Arc::new(Camera::new(
            name.to_string(),
            spec,
            retention_policy(&config, self.inner.min_free_disk),
            Duration::from_secs(u64::from(config.no_data_timeout_s)),
            self.inner.log.clone(),
        ));
        tracing::info!(camera = %name, source = %config.source.display(), retention_hours = config.retention_hours, "starting camera");
        let (stop, _) = watch::channel(false);
        let task = tokio::spawn(camera.clone().run(stop.subscribe()));
        let upload = match (&config.upload, &self.inner.uploads) {
            (Some(upload), Some(uploads)) => match uploads.start_upload(
                name,
                upload,
                &self.inner.log,
                &self.inner.dir.join("uploads"),
                stop.subscribe(),
            ) {
                Ok(handle) => {
                    tracing::info!(camera = %name, destination = %upload.destination, "camera upload started");
                    Some(handle)
                }
                Err(error) => {
                    tracing::error!(camera = %name, %error, "the camera records without uploading");
                    None
                }
            },
            _ => None,
        };
        Running {
            camera,
            config,
            stop,
            task,
            upload,
        }
    }

    pub fn log(&self) -> &FragmentLog {
        &self.inner.log
    }

    pub fn settings(&self) -> &VideoConfig {
        &self.inner.settings
    }

    pub fn camera(&self, name: &str) -> Option<Arc<Camera>> {
        lock(&self.inner.cameras)
            .get(name)
            .map(|r| r.camera.clone())
    }

    pub fn camera_names(&self) -> Vec<String> {
        lock(&self.inner.cameras).keys().cloned().collect()
    }

    /// Every camera's status (reads the fragment log: call off the async runtime).
    pub fn status(&self) -> Vec<CameraStatus> {
        let cameras: Vec<(String, Arc<Camera>, CameraConfig, Option<UploadStatus>)> =
            lock(&self.inner.cameras)
                .iter()
                .map(|(name, r)| {
                    let upload = r.upload.as_ref().map(UploadHandle::status);
                    (name.clone(), r.camera.clone(), r.config.clone(), upload)
                })
                .collect();
        cameras
            .into_iter()
            .map(|(name, camera, config, upload)| {
                let usage = self.inner.log.usage(&name).unwrap_or_else(|error| {
                    tracing::warn!(camera = %name, %error, "cannot read the camera's usage");
                    CameraUsage::default()
                });
                CameraStatus {
                    name,
                    source: config.source.display(),
                    live: camera.live(),
                    fragments: usage.fragments,
                    bytes: usage.bytes,
                    oldest_ms: usage.first.as_ref().map(|f| f.producer_ms),
                    evicted_fragments: usage.evicted_fragments,
                    retention_hours: config.retention_hours,
                    max_bytes: config.max_bytes,
                    upload,
                }
            })
            .collect()
    }

    async fn retention(self) {
        let mut shutdown = self.inner.shutdown.subscribe();
        let mut tick = tokio::time::interval(RETENTION_INTERVAL);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let policies: Vec<(String, RetentionPolicy)> = lock(&self.inner.cameras)
                .iter()
                .map(|(name, r)| (name.clone(), r.camera.policy.clone()))
                .collect();
            for (name, policy) in policies {
                let log = self.inner.log.clone();
                let trimmed = tokio::task::spawn_blocking(move || {
                    let outcome = log.trim(&name, &policy, now_ms());
                    (name, outcome)
                })
                .await;
                match trimmed {
                    Ok((name, Ok(outcome))) if outcome.fragments > 0 => {
                        tracing::debug!(camera = %name, fragments = outcome.fragments, bytes = outcome.bytes, "retention deleted old fragments");
                    }
                    Ok((name, Err(error))) => {
                        tracing::warn!(camera = %name, %error, "retention pass failed; will try again")
                    }
                    _ => {}
                }
            }
            self.created_streams_retention().await;
        }
    }

    /// The retention of a stream created through the Kinesis Video API (PutMedia's appends
    /// and the retention pass apply it): its `DataRetentionInHours`, or, at 0 (AWS's "no
    /// retention"), `NO_RETENTION_BUFFER` (AWS's service buffer); no size limit beyond the
    /// disk's minimum free space.
    pub fn created_stream_policy(&self, record: &StreamRecord) -> RetentionPolicy {
        let max_age_ms = match u64::from(record.retention_hours) * 3_600_000 {
            0 => NO_RETENTION_BUFFER.as_millis() as u64,
            ms => ms,
        };
        RetentionPolicy {
            max_age_ms,
            max_bytes: None,
            on_full: VideoOnFull::DeleteOldest,
            min_free_disk: self.inner.min_free_disk,
        }
    }

    /// The retention pass of the streams created through the API: age for the active ones;
    /// for those being deleted, the rest of their deletion (cut by a restart, or left to it).
    async fn created_streams_retention(&self) {
        let service = self.clone();
        let pass = tokio::task::spawn_blocking(move || {
            let log = &service.inner.log;
            for record in log.stream_records() {
                let outcome = match record.status {
                    StreamStatus::Active => log
                        .trim(
                            &record.name,
                            &service.created_stream_policy(&record),
                            now_ms(),
                        )
                        .map_err(|e| e.to_string()),
                    StreamStatus::Deleting => {
                        log.finish_delete(&record.name).map_err(|e| e.to_string())
                    }
                };
                match outcome {
                    Ok(outcome) if outcome.fragments > 0 => {
                        tracing::debug!(stream = %record.name, fragments = outcome.fragments, bytes = outcome.bytes, "retention deleted fragments of a created stream");
                    }
                    Err(error) => {
                        tracing::warn!(stream = %record.name, %error, "retention pass failed; will try again")
                    }
                    _ => {}
                }
            }
        });
        if let Err(error) = pass.await {
            tracing::warn!(%error, "the retention pass of created streams failed");
        }
    }

    /// Stops every camera at once; each stores the fragment it was recording first.
    pub async fn shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
        let running: Vec<Running> = std::mem::take(&mut *lock(&self.inner.cameras))
            .into_values()
            .collect();
        futures_util::future::join_all(running.into_iter().map(Running::stop)).await;
        let retention = lock(&self.inner.retention).take();
        if let Some(task) = retention {
            let _ = task.await;
        }
    }
}

fn retention_policy(config: &CameraConfig, min_free_disk: u64) -> RetentionPolicy {
    RetentionPolicy {
        max_age_ms: u64::from(config.retention_hours) * 3_600_000,
        max_bytes: config.max_bytes,
        on_full: match config.on_full {
            CameraOnFull::DeleteOldest => VideoOnFull::DeleteOldest,
            CameraOnFull::DenyNew => VideoOnFull::DenyNew,
        },
        min_free_disk,
    }
}

fn read_secret(source: &SecretSource) -> Result<String, String> {
    let secret = match source {
        SecretSource::File(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("password_file {}: {e}", path.display()))?
            .trim_end_matches(['\n', '\r'])
            .to_string(),
        SecretSource::Env(var) => {
            std::env::var(var).map_err(|e| format!("password_env {var}: {e}"))?
        }
    };
    if secret.is_empty() {
        return Err("the camera password is empty".into());
    }
    Ok(secret)
}

/// Where the fragment log lives: `[video] data_dir` (relative to the data directory), else
/// `<data_dir>/video`.
pub fn video_dir(settings: &VideoConfig, data_dir: &Path) -> PathBuf {
    match &settings.data_dir {
        Some(dir) if dir.is_absolute() => dir.clone(),
        Some(dir) => data_dir.join(dir),
        None => data_dir.join("video"),
    }
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
