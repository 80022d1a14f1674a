//! The delivery streams of a gateway: starts a runner per delivery stream (from the config
//! file and from those created through the Firehose API, which are kept in the stream
//! database), creates and deletes them at run time, takes direct puts, and reports status.
//! Video delivery streams (`source = "video"`) get no record runner: their source is the
//! cameras' fragments (`sources::video`, started per camera by the video service through
//! `UploadStarter`); the service hands each uploader what it needs ([`VideoDelivery`]) and
//! shows their upload status.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::bandwidth::Bandwidth;
use super::config::{
    direct_put_stream_name, DeliveryStreamConfig, DestinationConfig, SourceConfig,
};
use super::dead_letter::DeadLetter;
use super::destinations::{self, BuildError, DestinationContext, ObjectStore};
use super::runner::{self, RunnerParts};
use super::status::{
    self, DeliveryState, DeliveryStatus, DestinationStatus, ShardStatus, StatusCell, UploadStatus,
};
use crate::storage::{
    now_ms, AdminOp, AppendOutcome, CheckpointOp, NewRecord, Store, StoreError, StreamSpec,
};
use crate::streams::{OnFull, StreamMode};

/// `[delivery]` settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeliverySettings {
    /// Bytes per second for all delivery streams together; 0 = unlimited.
    pub max_bandwidth: u64,
    /// Where failed records go when the destination has no error output of its own.
    pub dead_letter_dir: PathBuf,
}

/// Hours a direct-put delivery stream keeps undelivered records (Firehose keeps 24 h).
const DIRECT_PUT_RETENTION_HOURS: u32 = 24;

#[derive(Debug, thiserror::Error)]
pub enum DeliveryServiceError {
    #[error("Delivery stream {0} not found.")]
    NotFound(String),
    #[error("Delivery stream {0} already exists.")]
    Exists(String),
    #[error(
        "Delivery stream {0} is defined in the gateway's configuration file; change it there."
    )]
    FromConfig(String),
    #[error("Delivery stream {0} is not a DirectPut delivery stream.")]
    NotDirectPut(String),
    #[error("Delivery stream {0} is not a video delivery stream (source = \"video\").")]
    NotVideo(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the delivery stream definition cannot be saved: {0}")]
    Definition(String),
}

/// Facts about one delivery stream for the Firehose API.
#[derive(Debug, Clone)]
pub struct DeliveryStreamInfo {
    pub config: DeliveryStreamConfig,
    pub from_api: bool,
    pub created_ms: u64,
}

struct Running {
    info: DeliveryStreamInfo,
    status: Arc<StatusCell>,
    stop: watch::Sender<bool>,
    /// `None` for video delivery streams.
    task: Option<JoinHandle<()>>,
}

/// What a camera's uploader needs of a video delivery stream.
#[derive(Clone)]
pub struct VideoDelivery {
    pub name: String,
    /// For the shared bandwidth cap.
    pub priority: u8,
    /// `s3` or `directory` (check-config allows no other).
    pub destination: DestinationConfig,
    pub context: DestinationContext,
    /// Shared with the record runners: `[delivery] max_bandwidth`.
    pub bandwidth: Arc<Bandwidth>,
    /// Where given-up objects are described when the destination has no error output.
    pub dead_letter: DeadLetter,
    /// The delivery stream's status (retries, failed records, last error).
    pub status: Arc<StatusCell>,
}

impl VideoDelivery {
    /// The destination as an object store; its prefix is empty when none is configured.
    pub fn object_store(&self) -> Result<Box<dyn ObjectStore>, BuildError> {
        destinations::object_store(&self.destination, &self.context)
    }

    /// What the engine's senders share, for an uploader that stops with `stop`.
    #[cfg(feature = "video")]
    pub(crate) fn shared(&self, stop: watch::Receiver<bool>) -> super::runner::send::Shared {
        super::runner::send::Shared {
            name: self.name.clone(),
            priority: self.priority,
            status: self.status.clone(),
            bandwidth: self.bandwidth.clone(),
            dead_letter: self.dead_letter.clone(),
            stop,
        }
    }
}

struct Inner {
    store: Store,
    settings: DeliverySettings,
    bandwidth: Arc<Bandwidth>,
    context: DestinationContext,
    region: String,
    account_id: String,
    running: Mutex<BTreeMap<String, Running>>,
    /// Cameras' upload status, dropped when their uploader ends.
    uploads: Mutex<Vec<Weak<Mutex<UploadStatus>>>>,
}

/// Cheap to clone.
#[derive(Clone)]
pub struct DeliveryService {
    inner: Arc<Inner>,
}

/// Stored form of an API-created delivery stream.
#[derive(serde::Serialize, serde::Deserialize)]
struct Definition {
    config: DeliveryStreamConfig,
    created_ms: u64,
}

impl DeliveryService {
    /// Starts the delivery streams of the config file and those created through the API.
    pub async fn start(
        store: Store,
        configs: Vec<DeliveryStreamConfig>,
        settings: DeliverySettings,
        region: String,
        account_id: String,
    ) -> Result<DeliveryService, DeliveryServiceError> {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(180))
            .build()
            .map_err(|e| DeliveryServiceError::Definition(format!("HTTP client: {e}")))?;
        let context = DestinationContext {
            delivery_stream: String::new(),
            source_arn: String::new(),
            data_dir: store.data_dir().to_path_buf(),
            http,
        };
        let service = DeliveryService {
            inner: Arc::new(Inner {
                bandwidth: Arc::new(Bandwidth::new(settings.max_bandwidth)),
                store: store.clone(),
                settings,
                context,
                region,
                account_id,
                running: Mutex::new(BTreeMap::new()),
                uploads: Mutex::new(Vec::new()),
            }),
        };
        let created_ms = now_ms();
        for config in configs {
            service
                .launch(DeliveryStreamInfo {
                    config,
                    from_api: false,
                    created_ms,
                })
                .await?;
        }
        let stored = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.consumer_definitions())
                .await
                .map_err(|e| DeliveryServiceError::Definition(e.to_string()))??
        };
        for (name, json) in stored {
            // Other consumers (analytics applications) keep their definitions here too.
            if name.contains(':') {
                continue;
            }
            if service.lock().contains_key(&name) {
                tracing::warn!(delivery_stream = %name, "a delivery stream created through the API has the name of one in the configuration file; the file's wins");
                continue;
            }
            match serde_json::from_slice::<Definition>(&json) {
                Ok(definition) => {
                    service
                        .launch(DeliveryStreamInfo {
                            config: definition.config,
                            from_api: true,
                            created_ms: definition.created_ms,
                        })
                        .await?;
                }
                Err(error) => {
                    tracing::error!(delivery_stream = %name, %error, "a stored delivery stream definition is unreadable; skipping it");
                }
            }
        }
        Ok(service)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Running>> {
        self.inner.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn arn(&self, name: &str) -> String {
        format!(
            "arn:aws:firehose:{}:{}:deliverystream/{name}",
            self.inner.region, self.inner.account_id
        )
    }

    pub fn region(&self) -> &str {
        &self.inner.region
    }

    pub fn account_id(&self) -> &str {
        &self.inner.account_id
    }

    async fn launch(&self, info: DeliveryStreamInfo) -> Result<(), DeliveryServiceError> {
        let name = info.config.name.clone();
        if let SourceConfig::Video = info.config.source {
            let status = Arc::new(StatusCell::default());
            status.update(|s| s.state = DeliveryState::Video);
            let (stop, _) = watch::channel(false);
            tracing::info!(delivery_stream = %name, destination = info.config.destination.kind(), "video delivery stream ready");
            let running = Running {
                info,
                status,
                stop,
                task: None,
            };
            self.lock().insert(name, running);
            return Ok(());
        }
        if let SourceConfig::DirectPut = info.config.source {
            self.inner
                .store
                .admin(AdminOp::EnsureStream(direct_put_spec(&name)))
                .await?;
        }
        let status = Arc::new(StatusCell::default());
        let (stop, stop_rx) = watch::channel(false);
        let mut context = self.inner.context.clone();
        context.delivery_stream = name.clone();
        context.source_arn = self.arn(&name);
        let parts = RunnerParts {
            config: info.config.clone(),
            store: self.inner.store.clone(),
            context,
            bandwidth: self.inner.bandwidth.clone(),
            dead_letter: DeadLetter::new(self.inner.settings.dead_letter_dir.clone()),
            status: status.clone(),
            stop: stop_rx,
        };
        let task = tokio::spawn(runner::run(parts));
        tracing::info!(delivery_stream = %name, destination = info.config.destination.kind(), "delivery stream started");
        self.lock().insert(
            name,
            Running {
                info,
                status,
                stop,
                task: Some(task),
            },
        );
        Ok(())
    }

    /// What an uploader needs to upload through the video delivery stream `name`.
    pub fn video_delivery(&self, name: &str) -> Result<VideoDelivery, DeliveryServiceError> {
        let (config, status) = self
            .lock()
            .get(name)
            .map(|r| (r.info.config.clone(), r.status.clone()))
            .ok_or_else(|| DeliveryServiceError::NotFound(name.to_owned()))?;
        if !matches!(config.source, SourceConfig::Video) {
            return Err(DeliveryServiceError::NotVideo(name.to_owned()));
        }
        let mut context = self.inner.context.clone();
        context.delivery_stream = name.to_owned();
        context.source_arn = self.arn(name);
        Ok(VideoDelivery {
            name: config.name,
            priority: config.priority,
            destination: config.destination,
            context,
            bandwidth: self.inner.bandwidth.clone(),
            dead_letter: DeadLetter::new(self.inner.settings.dead_letter_dir.clone()),
            status,
        })
    }

    /// Shows a camera's upload status under its delivery stream (`status.destination`) for as
    /// long as the uploader keeps it.
    pub fn register_upload(&self, status: &Arc<Mutex<UploadStatus>>) {
        let mut uploads = self.inner.uploads.lock().unwrap_or_else(|p| p.into_inner());
        uploads.retain(|u| u.strong_count() > 0);
        uploads.push(Arc::downgrade(status));
    }

    /// The registered uploads of `delivery_stream`, by camera.
    #[cfg(feature = "video")]
    fn uploads_of(&self, delivery_stream: &str) -> Vec<UploadStatus> {
        let uploads = self.inner.uploads.lock().unwrap_or_else(|p| p.into_inner());
        let mut found: Vec<UploadStatus> = uploads
            .iter()
            .filter_map(Weak::upgrade)
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .filter(|s| s.destination == delivery_stream)
            .collect();
        found.sort_by(|a, b| a.camera.cmp(&b.camera));
        found
    }

    /// Without video there are no uploads.
    #[cfg(not(feature = "video"))]
    fn uploads_of(&self, _delivery_stream: &str) -> Vec<UploadStatus> {
        Vec::new()
    }

    /// Creates a delivery stream (Firehose CreateDeliveryStream) and keeps its definition.
    pub async fn create(&self, config: DeliveryStreamConfig) -> Result<(), DeliveryServiceError> {
        let name = config.name.clone();
        if self.lock().contains_key(&name) {
            return Err(DeliveryServiceError::Exists(name));
        }
        let created_ms = now_ms();
        let definition = serde_json::to_vec(&Definition {
            config: config.clone(),
            created_ms,
        })
        .map_err(|e| DeliveryServiceError::Definition(e.to_string()))?;
        self.inner
            .store
            .checkpoint(CheckpointOp::SaveDefinition {
                consumer: name.clone(),
                bytes: definition,
            })
            .await?;
        self.launch(DeliveryStreamInfo {
            config,
            from_api: true,
            created_ms,
        })
        .await
    }

    /// Deletes a delivery stream created through the API: stops it and forgets its
    /// checkpoints (and its direct-put records).
    pub async fn delete(&self, name: &str) -> Result<(), DeliveryServiceError> {
        let running = {
            let mut running = self.lock();
            match running.get(name) {
                None => return Err(DeliveryServiceError::NotFound(name.to_owned())),
                Some(r) if !r.info.from_api => {
                    return Err(DeliveryServiceError::FromConfig(name.to_owned()))
                }
                Some(_) => running.remove(name),
            }
        };
        if let Some(running) = running {
            let _ = running.stop.send(true);
            if let Some(task) = running.task {
                let _ = task.await;
            }
            self.inner
                .store
                .checkpoint(CheckpointOp::Remove {
                    consumer: name.to_owned(),
                })
                .await?;
            if let SourceConfig::DirectPut = running.info.config.source {
                match self
                    .inner
                    .store
                    .admin(AdminOp::DeleteStream {
                        name: direct_put_stream_name(name),
                    })
                    .await
                {
                    Ok(()) | Err(StoreError::StreamNotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<DeliveryStreamInfo> {
        self.lock().get(name).map(|r| r.info.clone())
    }

    pub fn names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Stores records put directly (Firehose PutRecord/PutRecordBatch); returns once they are
    /// committed, one outcome per record.
    pub async fn put(
        &self,
        name: &str,
        records: Vec<Bytes>,
    ) -> Result<Vec<AppendOutcome>, DeliveryServiceError> {
        let info = self
            .get(name)
            .ok_or_else(|| DeliveryServiceError::NotFound(name.to_owned()))?;
        if !matches!(info.config.source, SourceConfig::DirectPut) {
            return Err(DeliveryServiceError::NotDirectPut(name.to_owned()));
        }
        let records = records
            .into_iter()
            .map(|data| NewRecord {
                partition_key: String::new(),
                hash_key: 0,
                data,
            })
            .collect();
        Ok(self
            .inner
            .store
            .append(&direct_put_stream_name(name), records)
            .await?)
    }

    /// Status of every delivery stream.
    pub fn status(&self) -> Vec<DeliveryStatus> {
        let catalog = self.inner.store.catalog();
        let now = now_ms();
        let running = self.lock();
        running
            .values()
            .map(|r| {
                let data = r.status.get();
                let config = &r.info.config;
                let mut shards = Vec::new();
                let (mut backlog_records, mut backlog_bytes, mut lost) = (0, 0, 0);
                for (uid, progress) in &data.shards {
                    let (records, bytes) =
                        status::shard_backlog(&catalog, *uid, &progress.checkpoint);
                    let shard_lost = status::shard_lost(&catalog, *uid, &progress.read);
                    backlog_records += records;
                    backlog_bytes += bytes;
                    lost += shard_lost;
                    shards.push(ShardStatus {
                        shard_id: crate::streams::shard_id(progress.shard_index),
                        last_delivered_sequence: progress.delivered_any.then(|| {
                            status::sequence_of(progress.shard_index, &progress.checkpoint)
                        }),
                        backlog_records: records,
                        backlog_bytes: bytes,
                        records_lost: shard_lost,
                    });
                }
                let uploads = match config.source {
                    SourceConfig::Video => self.uploads_of(&config.name),
                    _ => Vec::new(),
                };
                let (fragments, bytes) = status::upload_backlog(&uploads);
                backlog_records += fragments;
                backlog_bytes += bytes;
                let oldest = data.oldest_pending_ms.filter(|_| backlog_records > 0);
                DeliveryStatus {
                    name: config.name.clone(),
                    state: data.state,
                    source: match &config.source {
                        SourceConfig::Stream { stream, .. } => {
                            serde_json::json!({ "stream": stream })
                        }
                        SourceConfig::DirectPut => serde_json::json!("direct_put"),
                        SourceConfig::Video => serde_json::json!("video"),
                    },
                    destination: DestinationStatus {
                        kind: config.destination.kind().to_owned(),
                        target: destination_target(config),
                    },
                    priority: config.priority,
                    backlog_records,
                    backlog_bytes,
                    oldest_undelivered_age_ms: oldest.map(|o| now.saturating_sub(o)),
                    delivered_records: data.delivered_records,
                    delivered_bytes: data.delivered_bytes,
                    batches: data.batches,
                    retries: data.retries,
                    failed_records: data.failed_records,
                    dropped_records: data.dropped_records,
                    records_lost: lost,
                    last_error: data.last_error,
                    paused_reason: data.paused_reason,
                    shards,
                    uploads,
                }
            })
            .collect()
    }

    /// Stops every runner; a batch on its way finishes its current attempt.
    pub async fn shutdown(&self) {
        let running: Vec<Running> = std::mem::take(&mut *self.lock()).into_values().collect();
        for r in &running {
            let _ = r.stop.send(true);
        }
        for task in running.into_iter().filter_map(|r| r.task) {
            let _ = task.await;
        }
    }
}

fn direct_put_spec(name: &str) -> StreamSpec {
    StreamSpec {
        name: direct_put_stream_name(name),
        shards: 1,
        retention_hours: DIRECT_PUT_RETENTION_HOURS,
        max_bytes: None,
        on_full: OnFull::OverwriteOldest,
        mode: StreamMode::Provisioned,
        tags: BTreeMap::new(),
    }
}

/// Where a destination delivers, without secrets.
fn destination_target(config: &DeliveryStreamConfig) -> String {
    config.destination.target()
}
