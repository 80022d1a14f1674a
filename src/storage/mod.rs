//! Durable shard logs in redb.
//!
//! The storage part owns the stream database: one redb file under the data directory that
//! holds every stream's metadata and shard logs. One writer thread owns all writes: it takes
//! everything queued, appends it in one write transaction, commits with
//! `Durability::Immediate`, and only then answers the producers — so an acknowledgement
//! always means "on disk", and concurrent producers share fsyncs. Readers use short read
//! transactions, never block the writer, and can wait on a per-shard notification for new
//! records. Retention by age and byte quotas trim the head of each shard log.

pub(crate) mod block;
pub mod disk;
mod reader;
mod schema;
mod writer;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use redb::{Database, ReadableDatabase, ReadableTable};
use tokio::sync::{mpsc, oneshot, watch};

pub use block::StoredRecord;
pub use reader::ReadBatch;
pub use schema::{DeliveryCheckpoint, ShardState};
pub use writer::{AdminOp, DeliveryOp, RetentionChange, StreamSpec};

use crate::streams::{Position, ReshardError, SequenceNumber, StreamMeta};

/// How the store is opened.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub data_dir: PathBuf,
    /// redb's page cache in bytes.
    pub cache_size: u64,
    /// Refuse new records when the file system has less free space than this.
    pub min_free_disk: u64,
    /// Most record bytes one write transaction takes before it commits.
    pub max_commit_bytes: u64,
    /// Save redb's allocator state with each commit so that opening after a crash is
    /// immediate instead of a full scan of the file. Off by default: the state covers the
    /// whole file, so every commit would write more as the file grows.
    pub quick_repair: bool,
}

impl StoreOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        StoreOptions {
            data_dir: data_dir.into(),
            cache_size: 16 * 1024 * 1024,
            min_free_disk: 256 * 1024 * 1024,
            max_commit_bytes: 8 * 1024 * 1024,
            quick_repair: false,
        }
    }
}

/// File name of the stream database inside the data directory.
pub const STREAMS_DB: &str = "streams.redb";

/// Why a storage request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("Stream {0} not found.")]
    StreamNotFound(String),
    #[error("Stream {0} already exists.")]
    StreamExists(String),
    #[error(transparent)]
    Reshard(#[from] ReshardError),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    LimitExceeded(String),
    #[error("storage failure: {0}")]
    Storage(String),
    #[error("the gateway is shutting down")]
    ShuttingDown,
}

impl StoreError {
    fn storage(e: impl std::fmt::Display) -> StoreError {
        StoreError::Storage(e.to_string())
    }
}

/// A record handed to the store by a producer, already routed to a hash key.
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub partition_key: String,
    pub hash_key: u128,
    pub data: Bytes,
}

/// Where an acknowledged record was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub shard_index: u64,
    pub sequence: SequenceNumber,
}

/// Why one record of an append was refused (the others may have been stored).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("Stream {stream} is at its quota of {max_bytes} bytes (storage max_bytes, on_full = \"reject_new\"); records are refused until retention frees room.")]
    QuotaFull { stream: String, max_bytes: u64 },
    #[error("The gateway's disk has {free} bytes free, below storage.min_free_disk ({min_free} bytes); new records are refused until space is freed.")]
    DiskFull { free: u64, min_free: u64 },
}

pub type AppendOutcome = Result<Appended, Rejected>;

/// Live, committed facts about one shard log, shared by the writer and readers.
#[derive(Debug)]
pub struct ShardLive {
    last: AtomicU64,
    state: Mutex<ShardState>,
    notify: watch::Sender<Position>,
    /// Records and record bytes read from the shard since the gateway started (GetRecords and
    /// delivery streams).
    read_records: AtomicU64,
    read_bytes: AtomicU64,
}

impl ShardLive {
    fn new(state: ShardState) -> Self {
        ShardLive {
            last: AtomicU64::new(state.last.0),
            state: Mutex::new(state),
            notify: watch::channel(state.last).0,
            read_records: AtomicU64::new(0),
            read_bytes: AtomicU64::new(0),
        }
    }

    /// Records and record bytes (data + partition key) read since the gateway started.
    pub fn reads(&self) -> (u64, u64) {
        (
            self.read_records.load(Ordering::Relaxed),
            self.read_bytes.load(Ordering::Relaxed),
        )
    }

    fn count_read(&self, records: &[block::StoredRecord]) {
        let bytes: usize = records
            .iter()
            .map(|r| r.data.len() + r.partition_key.len())
            .sum();
        self.read_records
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        self.read_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// The last committed position (the shard's starting position while it is empty).
    pub fn last(&self) -> Position {
        Position(self.last.load(Ordering::Acquire))
    }

    /// The committed counters of the shard.
    pub fn state(&self) -> ShardState {
        *self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_state(&self, state: ShardState) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = state;
    }

    pub fn bytes(&self) -> u64 {
        self.state().bytes
    }

    pub fn records(&self) -> u64 {
        self.state().records
    }
}

/// The committed streams, as readers see them.
#[derive(Debug, Default)]
pub struct Catalog {
    pub streams: BTreeMap<String, Arc<StreamMeta>>,
    by_uid: HashMap<u64, Arc<StreamMeta>>,
    live: HashMap<u64, Arc<ShardLive>>,
}

impl Catalog {
    pub fn stream(&self, name: &str) -> Option<&Arc<StreamMeta>> {
        self.streams.get(name)
    }

    pub fn stream_by_uid(&self, uid: u64) -> Option<&Arc<StreamMeta>> {
        self.by_uid.get(&uid)
    }

    /// Live facts of a shard by its storage id.
    pub fn live(&self, shard_uid: u64) -> Option<&Arc<ShardLive>> {
        self.live.get(&shard_uid)
    }

    pub fn open_shards_in_gateway(&self) -> u32 {
        self.streams.values().map(|s| s.open_shard_count()).sum()
    }

    /// Bytes stored for a stream, all shards together.
    pub fn stream_bytes(&self, stream: &StreamMeta) -> u64 {
        stream
            .shards
            .iter()
            .filter_map(|s| self.live(s.uid))
            .map(|l| l.bytes())
            .sum()
    }
}

/// Counters the writer keeps, for status and metrics.
#[derive(Debug)]
pub struct WriterStats {
    pub commits: AtomicU64,
    pub records: AtomicU64,
    pub record_bytes: AtomicU64,
    pub commit_micros: AtomicU64,
    pub rejected_quota: AtomicU64,
    pub rejected_disk: AtomicU64,
    pub trimmed_records: AtomicU64,
    /// Records trimmed because they were older than the stream's retention.
    pub trimmed_by_age: AtomicU64,
    /// Records trimmed to keep an `overwrite_oldest` stream within `max_bytes`.
    pub trimmed_by_size: AtomicU64,
    /// Seconds from the start of a group commit to its durable end.
    pub commit_seconds: Histogram,
    /// Records stored by one group commit.
    pub records_per_commit: Histogram,
}

impl Default for WriterStats {
    fn default() -> Self {
        WriterStats {
            commits: AtomicU64::new(0),
            records: AtomicU64::new(0),
            record_bytes: AtomicU64::new(0),
            commit_micros: AtomicU64::new(0),
            rejected_quota: AtomicU64::new(0),
            rejected_disk: AtomicU64::new(0),
            trimmed_records: AtomicU64::new(0),
            trimmed_by_age: AtomicU64::new(0),
            trimmed_by_size: AtomicU64::new(0),
            // 0.5 ms .. 4 s: an fsync on an SD card takes milliseconds, a slow card seconds.
            commit_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            // 1 .. 16384 records.
            records_per_commit: Histogram::new(exponential_buckets(1.0, 4.0, 8)),
        }
    }
}

/// A snapshot of [`WriterStats`].
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct WriterStatsSnapshot {
    pub commits: u64,
    pub records: u64,
    pub record_bytes: u64,
    pub records_per_commit: f64,
    pub mean_commit_micros: f64,
    pub rejected_quota: u64,
    pub rejected_disk: u64,
    pub trimmed_records: u64,
}

struct Inner {
    db: Arc<Database>,
    ops: mpsc::Sender<writer::WriteOp>,
    catalog: Arc<RwLock<Arc<Catalog>>>,
    iterator_key: [u8; 32],
    stats: Arc<WriterStats>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    data_dir: PathBuf,
}

/// A handle on the stream store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// Requests waiting for the writer, at most. Producers wait (backpressure) beyond this.
const WRITE_QUEUE: usize = 1024;

impl Store {
    /// Opens (or creates) the stream database in `options.data_dir` and starts the writer.
    pub fn open(options: StoreOptions) -> Result<Store, StoreError> {
        std::fs::create_dir_all(&options.data_dir).map_err(|e| {
            StoreError::Storage(format!(
                "cannot create data directory {}: {e}",
                options.data_dir.display()
            ))
        })?;
        let path = options.data_dir.join(STREAMS_DB);
        let db = open_database(&path, options.cache_size)?;
        let db = Arc::new(db);
        let catalog = Arc::new(RwLock::new(Arc::new(Catalog::default())));
        let stats = Arc::new(WriterStats::default());
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let (writer, iterator_key) =
            writer::Writer::start(db.clone(), options.clone(), catalog.clone(), stats.clone())?;
        let handle = std::thread::Builder::new()
            .name("kinedge-writer".into())
            .spawn(move || {
                let run = std::panic::AssertUnwindSafe(|| writer.run(rx));
                if std::panic::catch_unwind(run).is_err() {
                    // A gateway whose writer is gone would look alive and store nothing;
                    // stop so that the service manager restarts it on the committed state.
                    tracing::error!("the stream writer failed; stopping the process");
                    std::process::abort();
                }
            })
            .map_err(StoreError::storage)?;
        Ok(Store {
            inner: Arc::new(Inner {
                db,
                ops: tx,
                catalog,
                iterator_key,
                stats,
                writer: Mutex::new(Some(handle)),
                data_dir: options.data_dir,
            }),
        })
    }

    /// The committed catalog of streams.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.inner
            .catalog
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The key that signs shard iterators (kept in the database, so iterators survive a
    /// restart within their lifetime).
    pub fn iterator_key(&self) -> &[u8] {
        &self.inner.iterator_key
    }

    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    pub fn stats(&self) -> WriterStatsSnapshot {
        let s = &self.inner.stats;
        let commits = s.commits.load(Ordering::Relaxed);
        let records = s.records.load(Ordering::Relaxed);
        let micros = s.commit_micros.load(Ordering::Relaxed);
        WriterStatsSnapshot {
            commits,
            records,
            record_bytes: s.record_bytes.load(Ordering::Relaxed),
            records_per_commit: if commits == 0 {
                0.0
            } else {
                records as f64 / commits as f64
            },
            mean_commit_micros: if commits == 0 {
                0.0
            } else {
                micros as f64 / commits as f64
            },
            rejected_quota: s.rejected_quota.load(Ordering::Relaxed),
            rejected_disk: s.rejected_disk.load(Ordering::Relaxed),
            trimmed_records: s.trimmed_records.load(Ordering::Relaxed),
        }
    }

    /// Appends records to a stream. Returns once they are committed to disk, with one
    /// outcome per record in order (a record can be refused by a quota or the disk guard).
    pub async fn append(
        &self,
        stream: &str,
        records: Vec<NewRecord>,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        let committed = self.submit(stream, records).await?;
        committed.await.map_err(|_| StoreError::ShuttingDown)?
    }

    /// Queues records for the next commit and returns at once (after waiting for room in
    /// the queue) with a receiver for the outcome. Records submitted one after the other are
    /// stored in that order; the receiver answers once they are committed.
    pub async fn submit(
        &self,
        stream: &str,
        records: Vec<NewRecord>,
    ) -> Result<oneshot::Receiver<Result<Vec<AppendOutcome>, StoreError>>, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.send(writer::WriteOp::Append {
            stream: stream.to_string(),
            records,
            reply,
        })
        .await?;
        Ok(rx)
    }

    /// Runs an administrative change (create, delete, reshard, retention, tags); returns
    /// once it is committed.
    pub async fn admin(&self, op: AdminOp) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.send(writer::WriteOp::Admin { op, reply }).await?;
        rx.await.map_err(|_| StoreError::ShuttingDown)?
    }

    /// Changes a delivery stream's durable state; returns once it is committed (in the same
    /// group commit as appends).
    pub async fn delivery(&self, op: DeliveryOp) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.send(writer::WriteOp::Delivery { op, reply }).await?;
        rx.await.map_err(|_| StoreError::ShuttingDown)?
    }

    /// The committed checkpoints of a delivery stream, by shard storage id. Blocking.
    pub fn delivery_checkpoints(
        &self,
        delivery: &str,
    ) -> Result<HashMap<u64, DeliveryCheckpoint>, StoreError> {
        let txn = self.inner.db.begin_read().map_err(StoreError::storage)?;
        let table = match txn.open_table(schema::DELIVERY_CHECKPOINTS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(HashMap::new()),
            Err(e) => return Err(StoreError::storage(e)),
        };
        let mut out = HashMap::new();
        for entry in table
            .range((delivery, 0)..=(delivery, u64::MAX))
            .map_err(StoreError::storage)?
        {
            let (key, value) = entry.map_err(StoreError::storage)?;
            if let Some(checkpoint) = DeliveryCheckpoint::decode(value.value()) {
                out.insert(key.value().1, checkpoint);
            }
        }
        Ok(out)
    }

    /// Definitions of delivery streams created through the API (name, JSON). Blocking.
    pub fn delivery_definitions(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let txn = self.inner.db.begin_read().map_err(StoreError::storage)?;
        let table = match txn.open_table(schema::DELIVERY_STREAMS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::storage(e)),
        };
        let mut out = Vec::new();
        for entry in table.iter().map_err(StoreError::storage)? {
            let (name, value) = entry.map_err(StoreError::storage)?;
            out.push((name.value().to_owned(), value.value().to_vec()));
        }
        Ok(out)
    }

    /// Applies retention now (the gateway also does this on a timer).
    pub async fn maintain(&self) -> Result<(), StoreError> {
        self.maintain_as_of(None).await
    }

    /// Applies retention as if the time were `as_of` (epoch ms): what the timer does, at a
    /// chosen time, so that tests need not wait a day.
    pub async fn maintain_as_of(&self, as_of: Option<u64>) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.send(writer::WriteOp::Maintain {
            as_of,
            reply: Some(reply),
        })
        .await?;
        rx.await.map_err(|_| StoreError::ShuttingDown)?
    }

    async fn send(&self, op: writer::WriteOp) -> Result<(), StoreError> {
        self.inner
            .ops
            .send(op)
            .await
            .map_err(|_| StoreError::ShuttingDown)
    }

    /// Reads records of one shard from `from` on: at most `max_records` records and about
    /// `max_bytes` of data (always at least one record when one is there). Blocking: call it
    /// from a blocking context.
    pub fn read(
        &self,
        shard_uid: u64,
        from: Position,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<ReadBatch, StoreError> {
        let batch = reader::read(&self.inner.db, shard_uid, from, max_records, max_bytes)?;
        if let Some(live) = self.catalog().live(shard_uid) {
            live.count_read(&batch.records);
        }
        Ok(batch)
    }

    /// The writer's counters and histograms, for metrics.
    pub fn writer_stats(&self) -> &WriterStats {
        &self.inner.stats
    }

    /// Answers once the writer has taken this request from its queue: a writer that is
    /// stuck (a commit that never ends) does not answer.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.send(writer::WriteOp::Ping(reply)).await?;
        rx.await.map_err(|_| StoreError::ShuttingDown)
    }

    /// A receiver that changes whenever records are committed to the shard; its value is the
    /// last committed position.
    pub fn subscribe(&self, shard_uid: u64) -> Option<watch::Receiver<Position>> {
        self.catalog().live(shard_uid).map(|l| l.notify.subscribe())
    }

    /// Stops the writer after everything already queued is committed and answered.
    pub async fn shutdown(&self) {
        let _ = self.inner.ops.send(writer::WriteOp::Shutdown).await;
        let handle = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }
}

fn open_database(path: &Path, cache_size: u64) -> Result<Database, StoreError> {
    let mut builder = Database::builder();
    builder.set_cache_size(usize::try_from(cache_size).unwrap_or(usize::MAX));
    builder.set_repair_callback(|session| {
        let progress = session.progress();
        tracing::warn!(
            progress = format!("{:.0}%", progress * 100.0),
            "repairing the stream database after an unclean shutdown"
        );
    });
    builder.create(path).map_err(|e| {
        StoreError::Storage(format!(
            "cannot open stream database {}: {e}",
            path.display()
        ))
    })
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
