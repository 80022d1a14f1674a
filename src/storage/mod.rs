//! Durable shard logs in redb.
//!
//! The storage part owns the stream database: one redb file under the data directory that
//! holds every stream's metadata and shard logs. One writer thread owns all writes: it takes
//! everything queued, appends it in one write transaction, commits with
//! `Durability::Immediate`, and only then answers the producers — so an acknowledgement
//! always means "on disk", and concurrent producers share fsyncs. Readers use short read
//! transactions, never block the writer, and can wait on a per-shard notification for new
//! records. Retention by age and byte quotas trim the head of each shard log.

mod admin;
mod append;
pub(crate) mod block;
mod compact;
pub mod config;
pub mod crypt;
mod database;
pub mod disk;
mod error;
mod file;
mod log;
mod metrics;
mod options;
mod publish;
mod reader;
mod recovery;
mod schema;
mod stats;
mod writer;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use redb::ReadableTable;
use tokio::sync::{oneshot, watch};

pub use admin::{AdminOp, CheckpointOp, RetentionChange, StreamSpec};
pub use block::StoredRecord;
pub use compact::{compact, Compacted};
pub use database::CacheUse;
pub use error::{FaultKind, StorageFault, StoreError};
pub use file::FileCounters;
pub use options::StoreOptions;
pub use reader::ReadBatch;
pub use recovery::WriterHealth;
pub use schema::ShardState;
pub use stats::{WriterStats, WriterStatsSnapshot, FAULT_KINDS};

use crate::streams::{Position, SequenceNumber, StreamMeta};

/// The default `storage.commit_interval_ms`: at most 10 commits (fsyncs) a second at sensor
/// rates, and an acknowledgement within ~100 ms plus the fsync. Every commit rewrites ~7
/// redb pages whatever it holds, so at 1,000 small messages/s 50 ms gives ~7.5 bytes
/// written per payload byte and 100 ms ~4 (`cargo bench --bench wear`).
pub const DEFAULT_COMMIT_INTERVAL_MS: u64 = 100;

/// Most bytes of data and partition key in one record (Kinesis' limit, for every producer).
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// Most characters in a partition key (Kinesis' limit).
pub const MAX_PARTITION_KEY_CHARS: usize = 256;

/// File name of the stream database inside the data directory.
pub const STREAMS_DB: &str = "streams.redb";

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

struct Inner {
    db: Arc<database::DbSlot>,
    ops: flume::Sender<writer::WriteOp>,
    /// The queue's other end, for producers only: a request that reached the queue after the
    /// writer's last look at it is answered by its producer (see `send`).
    leftovers: flume::Receiver<writer::WriteOp>,
    health: Arc<WriterHealth>,
    catalog: Arc<RwLock<Arc<Catalog>>>,
    iterator_key: [u8; 32],
    stats: Arc<WriterStats>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    data_dir: PathBuf,
    keyring: Arc<crypt::Keyring>,
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
            let context = format!(
                "cannot create data directory {}",
                options.data_dir.display()
            );
            StorageFault::new(FaultKind::of_io(&e), context, e)
        })?;
        let path = options.data_dir.join(STREAMS_DB);
        let db = Arc::new(database::DbSlot::open(&path, options.cache_size)?);
        let catalog = Arc::new(RwLock::new(Arc::new(Catalog::default())));
        let stats = Arc::new(WriterStats::default());
        let health = Arc::new(WriterHealth::default());
        let (tx, rx) = flume::bounded(WRITE_QUEUE);
        let (writer, iterator_key) = writer::Writer::start(
            db.clone(),
            options.clone(),
            catalog.clone(),
            stats.clone(),
            health.clone(),
        )?;
        let leftovers = rx.clone();
        let keyring = writer.keyring.clone();
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
            .map_err(|e| error::other("cannot start the stream writer", e))?;
        Ok(Store {
            inner: Arc::new(Inner {
                db,
                ops: tx,
                leftovers,
                health,
                catalog,
                iterator_key,
                stats,
                writer: Mutex::new(Some(handle)),
                data_dir: options.data_dir,
                keyring,
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

    /// The stream encryption keys (StartStreamEncryption creates or checks one here).
    pub fn keyring(&self) -> &crypt::Keyring {
        &self.inner.keyring
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
            bytes_written: self.file_counters().bytes_written.load(Ordering::Relaxed),
            syncs: self.file_counters().syncs.load(Ordering::Relaxed),
            failed_commits: FAULT_KINDS.iter().map(|k| s.faults(*k)).sum(),
        }
    }

    /// What the database file has been asked to write and sync since the gateway started.
    pub fn file_counters(&self) -> &FileCounters {
        &self.inner.db.counters
    }

    /// The stream database's page cache: bytes in use and evictions (`None` while the
    /// database is reopened after a disk error).
    pub fn cache_use(&self) -> Option<CacheUse> {
        self.inner.db.cache_use()
    }

    /// Why writes are suspended (a full disk, a failing card), while they are.
    pub fn writes_suspended(&self) -> Option<StorageFault> {
        self.inner.health.suspended()
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
        check_records(&records)?;
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

    /// Changes a consumer's durable rows (see [`CheckpointOp`]); returns once it is committed
    /// (in the same group commit as appends).
    pub async fn checkpoint(&self, op: CheckpointOp) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.send(writer::WriteOp::Checkpoint { op, reply }).await?;
        rx.await.map_err(|_| StoreError::ShuttingDown)?
    }

    /// Appends records to streams and changes a consumer's rows in one commit: all of it is
    /// stored or none (a refused record fails the whole transaction with
    /// [`StoreError::Refused`]). Analytics commit their output with their checkpoint this way.
    pub async fn transact(
        &self,
        appends: Vec<(String, Vec<NewRecord>)>,
        checkpoint: CheckpointOp,
    ) -> Result<(), StoreError> {
        for (_, records) in &appends {
            check_records(records)?;
        }
        let (reply, rx) = oneshot::channel();
        self.send(writer::WriteOp::Transact {
            appends,
            checkpoint,
            reply,
        })
        .await?;
        rx.await.map_err(|_| StoreError::ShuttingDown)?
    }

    /// The committed checkpoint rows of a consumer, by row key (for a delivery stream: the
    /// shard storage id). Blocking.
    pub fn checkpoint_rows(&self, consumer: &str) -> Result<HashMap<u64, Vec<u8>>, StoreError> {
        let txn = self.inner.db.begin_read()?;
        let table = match txn.open_table(schema::DELIVERY_CHECKPOINTS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(HashMap::new()),
            Err(e) => return Err(error::storage(e)),
        };
        let mut out = HashMap::new();
        for entry in table
            .range((consumer, 0)..=(consumer, u64::MAX))
            .map_err(error::storage)?
        {
            let (key, value) = entry.map_err(error::storage)?;
            out.insert(key.value().1, value.value().to_vec());
        }
        Ok(out)
    }

    /// The stored definitions of consumers (consumer, bytes): for delivery streams created
    /// through the API, their JSON. Blocking.
    pub fn consumer_definitions(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let txn = self.inner.db.begin_read()?;
        let table = match txn.open_table(schema::DELIVERY_STREAMS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(error::storage(e)),
        };
        let mut out = Vec::new();
        for entry in table.iter().map_err(error::storage)? {
            let (name, value) = entry.map_err(error::storage)?;
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
        if self.inner.health.is_closed() {
            return Err(StoreError::ShuttingDown);
        }
        self.inner
            .ops
            .send_async(op)
            .await
            .map_err(|_| StoreError::ShuttingDown)?;
        // The writer closes, then drains the queue once and stops. A request that passed the
        // check above just before the close may land after that drain, where nobody would
        // read it: whoever sees the store closed after queueing answers what is left.
        if self.inner.health.is_closed() {
            for op in self.inner.leftovers.drain() {
                op.fail(&StoreError::ShuttingDown);
            }
        }
        Ok(())
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
        let batch = reader::read(
            &self.inner.db,
            &self.inner.keyring,
            shard_uid,
            from,
            max_records,
            max_bytes,
        )?;
        if let Some(live) = self.catalog().live(shard_uid) {
            live.count_read(&batch.records);
        }
        Ok(batch)
    }

    /// The writer's counters and histograms, for metrics.
    pub fn writer_stats(&self) -> &WriterStats {
        &self.inner.stats
    }

    /// Goes through the writer's commit path: answers with the outcome of the group the
    /// ping joins (`Err` while writes fail, e.g. on a full disk); a writer that is stuck (a
    /// commit that never ends) does not answer.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.send(writer::WriteOp::Ping(reply)).await?;
        rx.await.map_err(|_| StoreError::ShuttingDown)?
    }

    /// A receiver that changes whenever records are committed to the shard; its value is the
    /// last committed position.
    pub fn subscribe(&self, shard_uid: u64) -> Option<watch::Receiver<Position>> {
        self.catalog().live(shard_uid).map(|l| l.notify.subscribe())
    }

    /// Stops the writer after everything already queued is committed and answered, and
    /// closes the database cleanly. Waits at most `SHUTDOWN_WAIT` (a writer stuck in an
    /// fsync on a failing card must not keep the gateway from stopping).
    pub async fn shutdown(&self) {
        let sent = tokio::time::timeout(
            SHUTDOWN_WAIT,
            self.inner.ops.send_async(writer::WriteOp::Shutdown),
        )
        .await;
        if !matches!(sent, Ok(Ok(()))) {
            tracing::warn!("the stream writer did not take the shutdown request");
            return;
        }
        let handle = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(handle) = handle {
            let joined = tokio::time::timeout(
                SHUTDOWN_WAIT,
                tokio::task::spawn_blocking(move || handle.join()),
            )
            .await;
            if joined.is_err() {
                tracing::warn!(
                    waited_s = SHUTDOWN_WAIT.as_secs(),
                    "the stream writer did not stop in time; exiting without it (the next start repairs the database)"
                );
            }
        }
    }
}

/// How long `Store::shutdown` waits for the writer.
const SHUTDOWN_WAIT: std::time::Duration = std::time::Duration::from_secs(8);

/// The ingest boundary every producer passes (Kinesis, MQTT, Firehose, analytics): a record
/// holds at most 1 MiB of data and partition key, and its key has 1 to 256 characters.
fn check_records(records: &[NewRecord]) -> Result<(), StoreError> {
    for (i, record) in records.iter().enumerate() {
        let chars = record.partition_key.chars().count();
        // Empty is allowed: Firehose records have no key (the Kinesis API requires one itself).
        if chars > MAX_PARTITION_KEY_CHARS {
            return Err(StoreError::InvalidRecord(format!(
                "Record {i} has a partition key of {chars} characters; a partition key has at most {MAX_PARTITION_KEY_CHARS}."
            )));
        }
        let size = record.data.len() + record.partition_key.len();
        if size > MAX_RECORD_BYTES {
            return Err(StoreError::InvalidRecord(format!(
                "Record {i} has {size} bytes of data and partition key; a record holds at most {MAX_RECORD_BYTES} bytes (1 MiB)."
            )));
        }
    }
    Ok(())
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
