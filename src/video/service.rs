//! The video service: the fragment log, one supervisor per camera, retention and uploads.
//!
//! Owns starting the cameras of the device registry (devices of kind `camera` with a
//! `[camera]` table), the periodic retention pass (age; size is applied with every append),
//! the uploaders of cameras with `upload`, the cameras' status, and an orderly stop in which
//! every camera stores the fragment it was recording.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::camera::{now_ms, Camera, CameraLive, HANDOFF_QUEUE};
use super::log::{CameraUsage, FragmentLog, RetentionPolicy, VideoLogError, VideoOnFull};
use super::pipeline::PipelineSpec;
use super::upload::{UploadHandle, UploadStatus, Uploader};
use crate::config::camera::{CameraConfig, CameraOnFull};
use crate::config::{SecretSource, VideoConfig};
use crate::delivery::DeliveryService;
use crate::ingest::mqtt::devices::Device;

/// How often age retention runs.
const RETENTION_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum VideoServiceError {
    #[error("opening the video fragment log {path}: {source}")]
    Open {
        path: PathBuf,
        source: VideoLogError,
    },
    #[error("GStreamer: {0}")]
    Gstreamer(#[from] super::pipeline::PipelineError),
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
    cameras: BTreeMap<String, (Arc<Camera>, CameraConfig)>,
    settings: VideoConfig,
    shutdown: watch::Sender<bool>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    uploads: std::sync::Mutex<BTreeMap<String, UploadHandle>>,
}

impl VideoService {
    /// Opens the fragment log in `dir` and starts every camera among `devices`, and the
    /// uploads of those with `upload` (through `delivery`'s `source = "video"` streams).
    pub async fn start(
        settings: VideoConfig,
        dir: PathBuf,
        min_free_disk: u64,
        devices: Vec<Device>,
        delivery: Option<&DeliveryService>,
    ) -> Result<VideoService, VideoServiceError> {
        tokio::task::spawn_blocking(super::pipeline::init)
            .await
            .map_err(|e| super::pipeline::PipelineError::Init(e.to_string()))??;
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
        let mut cameras = BTreeMap::new();
        for device in devices {
            let Some(config) = device.camera.clone() else {
                continue;
            };
            let password = match &config.password {
                Some(source) => match read_secret(source) {
                    Ok(secret) => Some(secret),
                    Err(error) => {
                        tracing::error!(camera = %device.id, %error, "cannot read the camera's password; connecting without it");
                        None
                    }
                },
                None => None,
            };
            let fragment_duration = Duration::from_millis(u64::from(
                config
                    .fragment_duration_ms
                    .unwrap_or(settings.fragment_duration_ms),
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
                device.id.clone(),
                spec,
                retention_policy(&config, min_free_disk),
                Duration::from_secs(u64::from(config.no_data_timeout_s)),
                log.clone(),
            ));
            cameras.insert(device.id.clone(), (camera, config));
        }
        let service = VideoService {
            inner: Arc::new(Inner {
                log,
                cameras,
                settings,
                shutdown,
                tasks: std::sync::Mutex::new(Vec::new()),
                uploads: std::sync::Mutex::new(BTreeMap::new()),
            }),
        };
        let mut uploads = BTreeMap::new();
        for (name, (_, config)) in &service.inner.cameras {
            let Some(upload) = &config.upload else {
                continue;
            };
            let Some(delivery) = delivery else {
                continue;
            };
            match Uploader::start(
                name.clone(),
                upload.clone(),
                service.inner.log.clone(),
                delivery,
                dir.join("uploads"),
                service.inner.shutdown.subscribe(),
            ) {
                Ok(handle) => {
                    tracing::info!(camera = %name, destination = %upload.destination, "camera upload started");
                    uploads.insert(name.clone(), handle);
                }
                Err(error) => {
                    tracing::error!(camera = %name, %error, "the camera records without uploading")
                }
            }
        }
        if let Ok(mut slot) = service.inner.uploads.lock() {
            *slot = uploads;
        }
        let mut tasks = Vec::new();
        for (name, (camera, config)) in &service.inner.cameras {
            tracing::info!(camera = %name, source = %config.source.display(), retention_hours = config.retention_hours, "starting camera");
            tasks.push(tokio::spawn(
                camera.clone().run(service.inner.shutdown.subscribe()),
            ));
        }
        tasks.push(tokio::spawn(service.clone().retention()));
        if let Ok(mut slot) = service.inner.tasks.lock() {
            *slot = tasks;
        }
        Ok(service)
    }

    pub fn log(&self) -> &FragmentLog {
        &self.inner.log
    }

    pub fn settings(&self) -> &VideoConfig {
        &self.inner.settings
    }

    pub fn camera(&self, name: &str) -> Option<&Arc<Camera>> {
        self.inner.cameras.get(name).map(|(camera, _)| camera)
    }

    pub fn camera_names(&self) -> Vec<String> {
        self.inner.cameras.keys().cloned().collect()
    }

    /// Every camera's status (reads the fragment log: call off the async runtime).
    pub fn status(&self) -> Vec<CameraStatus> {
        self.inner
            .cameras
            .iter()
            .map(|(name, (camera, config))| {
                let usage = self.inner.log.usage(name).unwrap_or_else(|error| {
                    tracing::warn!(camera = %name, %error, "cannot read the camera's usage");
                    CameraUsage::default()
                });
                CameraStatus {
                    name: name.clone(),
                    source: config.source.display(),
                    live: camera.live(),
                    fragments: usage.fragments,
                    bytes: usage.bytes,
                    oldest_ms: usage.first.as_ref().map(|f| f.producer_ms),
                    evicted_fragments: usage.evicted_fragments,
                    retention_hours: config.retention_hours,
                    max_bytes: config.max_bytes,
                    upload: self
                        .inner
                        .uploads
                        .lock()
                        .ok()
                        .and_then(|u| u.get(name).map(UploadHandle::status)),
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
            for (name, (camera, _)) in &self.inner.cameras {
                let log = self.inner.log.clone();
                let name = name.clone();
                let policy = camera.policy.clone();
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
        }
    }

    /// Stops every camera; each stores the fragment it was recording first.
    pub async fn shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
        let tasks = self
            .inner
            .tasks
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        for task in tasks {
            let _ = task.await;
        }
        let uploads = self
            .inner
            .uploads
            .lock()
            .map(|mut u| std::mem::take(&mut *u))
            .unwrap_or_default();
        for (_, upload) in uploads {
            upload.join().await;
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
