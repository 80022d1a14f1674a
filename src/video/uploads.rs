//! The hookup of camera uploads: what video needs to know of an uploader, and nothing more.
//!
//! Video stores fragments; uploading them is the delivery engine's job (its video source,
//! `sources::video` of delivery), which reads the fragment log and moves the log's
//! upload checkpoint. So that video does not depend on delivery, the gateway hands the video
//! service an [`UploadStarter`] (the delivery service) and video keeps, per camera with
//! `upload`, the [`UploadHandle`] it returned: its status for `/video/cameras` and `/status`,
//! a nudge when a fragment was stored, and a join on shutdown.

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::log::FragmentLog;
use crate::devices::camera::CameraUpload;

/// What a camera's video upload is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadState {
    /// Outside the camera's upload window.
    WaitingForWindow,
    Uploading,
    /// Up to date (or holding back a segment that is still growing).
    #[default]
    Idle,
    /// The destination is unreachable or answers with errors; retrying.
    Retrying,
}

/// One camera's video upload, shown under the camera and under its delivery stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UploadStatus {
    pub camera: String,
    /// The delivery stream.
    pub destination: String,
    pub state: UploadState,
    /// The highest fragment number uploaded (the checkpoint).
    pub uploaded_through: Option<u64>,
    pub backlog_fragments: u64,
    pub backlog_bytes: u64,
    pub last_error: Option<String>,
    /// When the destination last confirmed an object (epoch ms).
    pub last_upload_ms: Option<i64>,
}

/// Starts a camera's uploader. Implemented by the delivery service.
pub trait UploadStarter: Send + Sync {
    /// Starts uploading `camera`'s fragments from `log` as `upload` says, keeping its
    /// manifest under `manifest_dir`, until `shutdown` turns true.
    fn start_upload(
        &self,
        camera: &str,
        upload: &CameraUpload,
        log: &FragmentLog,
        manifest_dir: &Path,
        shutdown: watch::Receiver<bool>,
    ) -> Result<UploadHandle, Box<dyn std::error::Error + Send + Sync>>;
}

/// A running uploader.
pub struct UploadHandle {
    status: Arc<Mutex<UploadStatus>>,
    latest: watch::Sender<u64>,
    task: JoinHandle<()>,
}

impl UploadHandle {
    /// The uploader's status cell, where it is told of new fragments, and its task.
    pub fn new(
        status: Arc<Mutex<UploadStatus>>,
        latest: watch::Sender<u64>,
        task: JoinHandle<()>,
    ) -> UploadHandle {
        UploadHandle {
            status,
            latest,
            task,
        }
    }

    pub fn status(&self) -> UploadStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
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
