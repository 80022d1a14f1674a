//! Putting one object of a camera's upload through the delivery engine: the shared bandwidth
//! cap, the engine's retry policy (`delivery::retry`), and on giving up (a permanent error, or
//! the destination's retry duration spent) the error output, exactly as the record runner
//! does for a batch: the destination's own error output, else the dead-letter directory, the
//! delivery stream's `failed_records` and `last_error`. A given-up object is never retried
//! again; its fragments stay in the fragment log (until retention) and the upload goes on.
//!
//! Also the uploader's own plumbing: fragment-log calls on the blocking pool (retried while
//! they fail: the log is local), its status, and its wait for the shutdown signal.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

use super::Uploader;
use crate::delivery::backoff;
use crate::delivery::batch::{DeliveryRecord, ErrorBatch, FailedRecord};
use crate::delivery::destinations::naming::RenderContext;
use crate::delivery::destinations::{DeliveryError, ObjectStore};
use crate::delivery::plan;
use crate::delivery::retry::{give_up_code, Attempts, Next};
use crate::delivery::runner::send::{write_errors, Stopped};
use crate::video::log::FragmentLog;
use crate::video::uploads::{UploadState, UploadStatus};

/// How a put ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Put {
    /// The destination confirmed the object.
    Confirmed,
    /// The engine gave up on it; the error output has its description.
    GaveUp,
}

impl Uploader {
    /// Puts an object under the bandwidth cap until the destination confirms it or the
    /// engine gives up on it.
    pub(super) async fn put(
        &mut self,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<Put, Stopped> {
        let mut attempts = Attempts::new();
        loop {
            if self.store.uses_network() {
                let acquire = self
                    .shared
                    .bandwidth
                    .acquire(self.shared.priority, body.len() as u64);
                unless_shutdown(&mut self.shutdown, acquire).await?;
            }
            attempts.begin();
            let put = self.store.put_object(key, body.clone(), content_type);
            let error = match unless_shutdown(&mut self.shutdown, put).await? {
                Ok(()) => {
                    tracing::debug!(camera = %self.camera, key, bytes = body.len(), "video object uploaded");
                    attempts.log_recovered(&self.shared.name);
                    self.succeeded();
                    return Ok(Put::Confirmed);
                }
                Err(error) => error,
            };
            self.shared.status.update(|s| s.retries += 1);
            match attempts.after(&error, self.store.retry_duration()) {
                Next::GiveUp => {
                    self.give_up(key, body.len(), &error, attempts.count())
                        .await?;
                    return Ok(Put::GaveUp);
                }
                Next::Retry { state, wait } => {
                    let target = self.store.describe();
                    attempts.log_retry(
                        &self.shared.name,
                        &target,
                        &error,
                        state,
                        "fragments stay in the fragment log",
                    );
                    self.failed(format!("{key}: {error}"), wait).await?;
                }
            }
        }
    }

    /// Routes a given-up object to the error output (a description of it: camera, key,
    /// bytes; the video stays in the fragment log) and shows the error in status.
    async fn give_up(
        &mut self,
        key: &str,
        bytes: usize,
        error: &DeliveryError,
        attempts: u32,
    ) -> Result<(), Stopped> {
        tracing::warn!(
            camera = %self.camera,
            delivery_stream = %self.shared.name,
            key,
            %error,
            "giving up on a video object; it goes to the error output"
        );
        let message = format!(
            "{} {}: gave up on {key} after {attempts} attempts: {error}",
            self.store.kind(),
            self.store.describe()
        );
        self.shared.note_error(&message);
        self.update_status(|s, _| s.last_error = Some(message));
        let at_ms = crate::storage::now_ms();
        let description = serde_json::json!({
            "camera": self.camera,
            "key": key,
            "bytes": bytes,
        });
        let record = DeliveryRecord {
            data: Bytes::from(description.to_string()),
            partition_key: self.camera.clone(),
            sequence_number: String::new(),
            arrival_ms: at_ms,
            partition_values: Default::default(),
        };
        let errors = ErrorBatch {
            delivery_stream: self.shared.name.clone(),
            id: plan::batch_id(&self.shared.name, [(0, key, key)]),
            created_ms: at_ms,
            kind: self.store.failure_type(),
            records: vec![FailedRecord {
                record,
                error_code: give_up_code(error).to_owned(),
                error_message: error.to_string(),
                attempts,
            }],
        };
        write_errors(&errors, &*self.store, &self.shared).await
    }

    /// Runs `f` on the blocking pool, again after a pause while it fails.
    pub(super) async fn blocking<T: Send + 'static>(
        &mut self,
        what: &str,
        f: impl Fn(&FragmentLog) -> Result<T, String> + Clone + Send + 'static,
    ) -> Result<T, Stopped> {
        let mut attempt = 0;
        loop {
            let (log, f) = (self.log.clone(), f.clone());
            let error = match tokio::task::spawn_blocking(move || f(&log)).await {
                Ok(Ok(value)) => {
                    self.succeeded();
                    return Ok(value);
                }
                Ok(Err(error)) => error,
                Err(error) => error.to_string(),
            };
            attempt += 1;
            let wait = backoff::after_error(attempt);
            if attempt == 1 {
                tracing::warn!(camera = %self.camera, %error, "video upload: cannot {what}; retrying");
            } else {
                tracing::debug!(camera = %self.camera, %error, attempt, "video upload: cannot {what} again");
            }
            self.failed(format!("cannot {what}: {error}"), wait).await?;
        }
    }

    fn succeeded(&mut self) {
        if self.retrying {
            tracing::info!(camera = %self.camera, delivery_stream = %self.delivery.name, "video upload resumed");
            self.retrying = false;
            self.update_status(|s, _| s.state = UploadState::Uploading);
        }
    }

    /// Shows a failure in status and waits `wait` before the next attempt.
    async fn failed(&mut self, error: String, wait: Duration) -> Result<(), Stopped> {
        self.retrying = true;
        self.update_status(|s, _| {
            s.state = UploadState::Retrying;
            s.last_error = Some(error);
        });
        unless_shutdown(&mut self.shutdown, tokio::time::sleep(wait)).await
    }

    pub(super) fn update_status(&self, f: impl FnOnce(&mut UploadStatus, Option<u64>)) {
        f(&mut lock(&self.status), self.checkpoint);
    }

    /// The destination's prefix at `time_ms` (checked to render in `start`).
    pub(super) fn prefix_at(&self, time_ms: i64) -> String {
        render_prefix(&*self.store, time_ms, &self.camera).unwrap_or_default()
    }
}

pub(super) fn render_prefix(
    store: &dyn ObjectStore,
    time_ms: i64,
    camera: &str,
) -> Result<String, String> {
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
pub(super) async fn unless_shutdown<T>(
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
