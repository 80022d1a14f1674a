//! The single writer: group commit of appends and administrative changes.
//!
//! The writer thread owns the working copy of every stream's metadata and shard state. It
//! takes a request, drains whatever else is queued (up to `max_commit_bytes`), applies all of
//! it in one write transaction, commits with `Durability::Immediate`, and only then answers.
//! If a commit fails nobody is told "ok": every request in the group gets the error and the
//! working state is reloaded from the last commit.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use rand::RngCore;
use redb::{Database, ReadableDatabase, ReadableTable, TableError, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

use super::block::{self, PendingRecord};
use super::schema::{self, DeliveryCheckpoint, ShardState};
use super::{
    disk, now_ms, AppendOutcome, Appended, Catalog, NewRecord, Rejected, ShardLive, StoreError,
    StoreOptions, WriterStats,
};
use crate::streams::{
    OnFull, Position, SequenceNumber, ShardMeta, StreamMeta, StreamMode, UidSource,
    MAX_RETENTION_HOURS, MIN_RETENTION_HOURS, SHARD_LIMIT,
};

/// How a stream is created.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    pub name: String,
    pub shards: u32,
    pub retention_hours: u32,
    pub max_bytes: Option<u64>,
    pub on_full: OnFull,
    pub mode: StreamMode,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionChange {
    Increase,
    Decrease,
}

/// Changes to streams that go through the writer.
#[derive(Debug, Clone)]
pub enum AdminOp {
    CreateStream(StreamSpec),
    /// Creates the stream if missing; otherwise applies the spec's retention and quota.
    EnsureStream(StreamSpec),
    DeleteStream {
        name: String,
    },
    SplitShard {
        stream: String,
        shard: String,
        new_start: u128,
    },
    MergeShards {
        stream: String,
        shard: String,
        adjacent: String,
    },
    UpdateShardCount {
        stream: String,
        target: u32,
    },
    SetRetention {
        stream: String,
        hours: u32,
        change: RetentionChange,
    },
    AddTags {
        stream: String,
        tags: Vec<(String, String)>,
    },
    RemoveTags {
        stream: String,
        keys: Vec<String>,
    },
}

pub const MAX_TAGS_PER_STREAM: usize = 50;

/// Changes to delivery streams' durable state.
#[derive(Debug, Clone)]
pub enum DeliveryOp {
    /// Moves checkpoints (after the destination confirmed).
    SaveCheckpoints {
        delivery: String,
        checkpoints: Vec<(u64, DeliveryCheckpoint)>,
    },
    /// Keeps the definition of a delivery stream created through the API.
    SaveDefinition { name: String, definition: Vec<u8> },
    /// Forgets a delivery stream: its definition and its checkpoints.
    Remove { name: String },
}

pub(crate) enum WriteOp {
    Append {
        stream: String,
        records: Vec<NewRecord>,
        reply: oneshot::Sender<Result<Vec<AppendOutcome>, StoreError>>,
    },
    Admin {
        op: AdminOp,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    Delivery {
        op: DeliveryOp,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    Maintain {
        /// Apply retention as of this time (epoch ms) instead of now.
        as_of: Option<u64>,
        reply: Option<oneshot::Sender<Result<(), StoreError>>>,
    },
    /// Answered as soon as the writer takes it from the queue (no commit): liveness.
    Ping(oneshot::Sender<()>),
    Shutdown,
}

impl WriteOp {
    fn weight(&self) -> u64 {
        match self {
            WriteOp::Append { records, .. } => records
                .iter()
                .map(|r| (r.data.len() + r.partition_key.len()) as u64)
                .sum(),
            _ => 0,
        }
    }
}

enum Reply {
    Append(
        oneshot::Sender<Result<Vec<AppendOutcome>, StoreError>>,
        Result<Vec<AppendOutcome>, StoreError>,
    ),
    Admin(
        oneshot::Sender<Result<(), StoreError>>,
        Result<(), StoreError>,
    ),
}

impl Reply {
    fn send(self, failure: Option<&StoreError>) {
        match self {
            Reply::Append(tx, result) => {
                let _ = tx.send(match failure {
                    Some(e) => Err(e.clone()),
                    None => result,
                });
            }
            Reply::Admin(tx, result) => {
                let _ = tx.send(match failure {
                    Some(e) => Err(e.clone()),
                    None => result,
                });
            }
        }
    }
}

struct Uids<'a>(&'a mut u64);

impl UidSource for Uids<'_> {
    fn next_uid(&mut self) -> u64 {
        *self.0 += 1;
        *self.0
    }
}

/// Retention removes at most this many blocks per shard per pass, so the writer stays
/// responsive; the next pass continues.
const TRIM_BATCH: usize = 4096;

pub(crate) struct Writer {
    db: Arc<Database>,
    options: StoreOptions,
    published: Arc<RwLock<Arc<Catalog>>>,
    stats: Arc<WriterStats>,
    streams: BTreeMap<String, StreamMeta>,
    states: HashMap<u64, ShardState>,
    live: HashMap<u64, Arc<ShardLive>>,
    next_uid: u64,
}

fn storage(e: impl std::fmt::Display) -> StoreError {
    StoreError::Storage(e.to_string())
}

impl Writer {
    /// Loads the database (creating the system rows on first use) and publishes the catalog.
    pub(crate) fn start(
        db: Arc<Database>,
        options: StoreOptions,
        published: Arc<RwLock<Arc<Catalog>>>,
        stats: Arc<WriterStats>,
    ) -> Result<(Writer, [u8; 32]), StoreError> {
        let iterator_key = init_system(&db)?;
        let mut writer = Writer {
            db,
            options,
            published,
            stats,
            streams: BTreeMap::new(),
            states: HashMap::new(),
            live: HashMap::new(),
            next_uid: 0,
        };
        writer.reload()?;
        Ok((writer, iterator_key))
    }

    /// Reads the committed state into the working copy and publishes it.
    fn reload(&mut self) -> Result<(), StoreError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let system = txn.open_table(schema::SYSTEM).map_err(storage)?;
        self.next_uid = system
            .get(schema::NEXT_UID)
            .map_err(storage)?
            .and_then(|v| v.value().try_into().ok().map(u64::from_le_bytes))
            .unwrap_or(0);
        self.streams.clear();
        let streams = txn.open_table(schema::STREAMS).map_err(storage)?;
        for entry in streams.iter().map_err(storage)? {
            let (name, meta) = entry.map_err(storage)?;
            let meta: StreamMeta = serde_json::from_slice(meta.value()).map_err(|e| {
                StoreError::Storage(format!(
                    "stream {} metadata is unreadable: {e}",
                    name.value()
                ))
            })?;
            self.streams.insert(meta.name.clone(), meta);
        }
        self.states.clear();
        let states = txn.open_table(schema::SHARD_STATE).map_err(storage)?;
        for entry in states.iter().map_err(storage)? {
            let (uid, state) = entry.map_err(storage)?;
            if let Some(state) = ShardState::decode(state.value()) {
                self.states.insert(uid.value(), state);
            }
        }
        for shard in self.streams.values().flat_map(|s| s.shards.iter()) {
            self.states.entry(shard.uid).or_insert(ShardState {
                last: shard.starting,
                ..ShardState::default()
            });
        }
        // Live entries keep their identity (readers hold receivers) but take committed values.
        for (uid, state) in &self.states {
            let live = self
                .live
                .entry(*uid)
                .or_insert_with(|| Arc::new(ShardLive::new(*state)));
            live.last.store(state.last.0, Ordering::Release);
            live.set_state(*state);
        }
        self.publish();
        Ok(())
    }

    fn publish(&mut self) {
        let known: HashSet<u64> = self
            .streams
            .values()
            .flat_map(|s| s.shards.iter().map(|sh| sh.uid))
            .collect();
        self.live.retain(|uid, _| known.contains(uid));
        let mut catalog = Catalog::default();
        for (name, meta) in &self.streams {
            let meta = Arc::new(meta.clone());
            catalog.by_uid.insert(meta.uid, meta.clone());
            catalog.streams.insert(name.clone(), meta);
        }
        catalog.live = self.live.clone();
        *self
            .published
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(catalog);
    }

    pub(crate) fn run(mut self, mut ops: mpsc::Receiver<WriteOp>) {
        tracing::debug!("stream writer started");
        while let Some(first) = ops.blocking_recv() {
            let mut weight = first.weight();
            let mut group = Vec::new();
            let mut next = Some(first);
            while let Some(op) = next.take() {
                match op {
                    WriteOp::Ping(reply) => {
                        let _ = reply.send(());
                    }
                    op => group.push(op),
                }
                if weight >= self.options.max_commit_bytes {
                    break;
                }
                if let Ok(op) = ops.try_recv() {
                    weight += op.weight();
                    next = Some(op);
                }
            }
            if group.is_empty() {
                continue;
            }
            if self.process(group) {
                break;
            }
        }
        tracing::debug!("stream writer stopped");
    }

    /// Applies a group in one transaction; returns true when asked to shut down.
    fn process(&mut self, group: Vec<WriteOp>) -> bool {
        let started = Instant::now();
        let mut replies = Vec::with_capacity(group.len());
        let mut shutdown = false;
        let mut maintain_replies = Vec::new();
        let result = (|| -> Result<(bool, u64, u64), StoreError> {
            let mut txn = self.db.begin_write().map_err(storage)?;
            txn.set_quick_repair(self.options.quick_repair);
            let disk = self.disk_check();
            let mut staged: BTreeMap<u64, Vec<PendingRecord>> = BTreeMap::new();
            let mut catalog_changed = false;
            let mut maintain: Option<u64> = None;
            for op in group {
                match op {
                    WriteOp::Append {
                        stream,
                        records,
                        reply,
                    } => {
                        let outcome = self.stage(&stream, records, &mut staged, disk);
                        replies.push(Reply::Append(reply, outcome));
                    }
                    WriteOp::Admin { op, reply } => {
                        let outcome = self.apply_admin(&txn, op);
                        catalog_changed |= outcome.is_ok();
                        replies.push(Reply::Admin(reply, outcome));
                    }
                    WriteOp::Delivery { op, reply } => {
                        let outcome = apply_delivery(&txn, op);
                        replies.push(Reply::Admin(reply, outcome));
                    }
                    WriteOp::Maintain { as_of, reply } => {
                        maintain = Some(as_of.unwrap_or_else(now_ms));
                        maintain_replies.extend(reply);
                    }
                    WriteOp::Shutdown => shutdown = true,
                    // Taken out of the group by `run`.
                    WriteOp::Ping(reply) => {
                        let _ = reply.send(());
                    }
                }
            }
            let (records, bytes) = self.flush(&txn, staged)?;
            if let Some(now) = maintain {
                catalog_changed |= self.maintain(&txn, now)?;
            }
            self.write_states(&txn)?;
            if catalog_changed {
                self.write_system(&txn)?;
            }
            txn.commit().map_err(storage)?;
            Ok((catalog_changed, records, bytes))
        })();
        match result {
            Ok((catalog_changed, records, bytes)) => {
                self.after_commit(catalog_changed);
                let stats = &self.stats;
                stats.commits.fetch_add(1, Ordering::Relaxed);
                stats.records.fetch_add(records, Ordering::Relaxed);
                stats.record_bytes.fetch_add(bytes, Ordering::Relaxed);
                let elapsed = started.elapsed();
                stats
                    .commit_micros
                    .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
                stats.commit_seconds.observe(elapsed.as_secs_f64());
                stats.records_per_commit.observe(records as f64);
                for reply in replies {
                    reply.send(None);
                }
                for reply in maintain_replies {
                    let _ = reply.send(Ok(()));
                }
            }
            Err(error) => {
                tracing::error!(%error, "commit failed; nothing in this group was acknowledged");
                if let Err(reload) = self.reload() {
                    tracing::error!(error = %reload, "cannot reload the stream database state");
                }
                for reply in replies {
                    reply.send(Some(&error));
                }
                for reply in maintain_replies {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
        shutdown
    }

    /// Free-disk guard: `Err((free, min))` when new records must be refused.
    fn disk_check(&self) -> Result<(), (u64, u64)> {
        let min = self.options.min_free_disk;
        if min == 0 {
            return Ok(());
        }
        match disk::free_bytes(&self.options.data_dir) {
            Ok(free) if free < min => Err((free, min)),
            Ok(_) => Ok(()),
            Err(error) => {
                tracing::warn!(%error, "cannot read free disk space; not refusing data");
                Ok(())
            }
        }
    }

    fn stream_bytes(&self, stream: &StreamMeta) -> u64 {
        stream
            .shards
            .iter()
            .filter_map(|s| self.states.get(&s.uid))
            .map(|s| s.bytes)
            .sum()
    }

    /// Routes and numbers the records of one append; they are written by `flush`.
    fn stage(
        &mut self,
        name: &str,
        records: Vec<NewRecord>,
        staged: &mut BTreeMap<u64, Vec<PendingRecord>>,
        disk: Result<(), (u64, u64)>,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        let stream = self
            .streams
            .get(name)
            .ok_or_else(|| StoreError::StreamNotFound(name.to_string()))?;
        let now = now_ms();
        let quota = match (stream.on_full, stream.max_bytes) {
            (OnFull::RejectNew, Some(max)) => Some(max),
            _ => None,
        };
        let mut used = if quota.is_some() {
            self.stream_bytes(stream)
        } else {
            0
        };
        let mut outcomes = Vec::with_capacity(records.len());
        for record in records {
            if let Err((free, min_free)) = disk {
                self.stats.rejected_disk.fetch_add(1, Ordering::Relaxed);
                outcomes.push(Err(Rejected::DiskFull { free, min_free }));
                continue;
            }
            let size =
                block::encoded_record_bytes(record.partition_key.len(), record.data.len()) as u64;
            if let Some(max) = quota {
                if used + size > max {
                    self.stats.rejected_quota.fetch_add(1, Ordering::Relaxed);
                    outcomes.push(Err(Rejected::QuotaFull {
                        stream: name.to_string(),
                        max_bytes: max,
                    }));
                    continue;
                }
                used += size;
            }
            let shard = stream.route(record.hash_key).ok_or_else(|| {
                StoreError::Storage(format!("stream {name} has no open shard for a hash key"))
            })?;
            let state = self.states.entry(shard.uid).or_insert(ShardState {
                last: shard.starting,
                ..ShardState::default()
            });
            let position = state.last.successor_at(now);
            state.last = position;
            staged.entry(shard.uid).or_default().push(PendingRecord {
                position,
                partition_key: record.partition_key,
                data: record.data,
            });
            outcomes.push(Ok(Appended {
                shard_index: shard.index,
                sequence: SequenceNumber {
                    shard_index: shard.index,
                    position,
                },
            }));
        }
        Ok(outcomes)
    }

    /// Writes staged records as blocks, then trims streams over their quota.
    fn flush(
        &mut self,
        txn: &WriteTransaction,
        staged: BTreeMap<u64, Vec<PendingRecord>>,
    ) -> Result<(u64, u64), StoreError> {
        let mut total_records = 0u64;
        let mut total_bytes = 0u64;
        let mut touched_streams = HashSet::new();
        let shard_owner: HashMap<u64, String> = self
            .streams
            .values()
            .flat_map(|s| s.shards.iter().map(move |sh| (sh.uid, s.name.clone())))
            .collect();
        for (uid, records) in staged {
            // The stream may have been deleted later in the same group.
            let Some(owner) = shard_owner.get(&uid) else {
                continue;
            };
            touched_streams.insert(owner.clone());
            let record_bytes = records
                .iter()
                .map(|r| (r.data.len() + r.partition_key.len()) as u64)
                .sum::<u64>();
            total_records += records.len() as u64;
            total_bytes += record_bytes;
            let written = write_blocks(txn, uid, &records)?;
            let state = self.states.entry(uid).or_default();
            state.bytes += written;
            state.records += records.len() as u64;
            state.appended += records.len() as u64;
            state.appended_bytes += record_bytes;
        }
        for name in touched_streams {
            self.enforce_quota(txn, &name)?;
        }
        Ok((total_records, total_bytes))
    }

    /// For `overwrite_oldest` streams over their quota: remove the oldest blocks, across all
    /// shards, until the stream fits.
    fn enforce_quota(&mut self, txn: &WriteTransaction, name: &str) -> Result<(), StoreError> {
        let Some(stream) = self.streams.get(name) else {
            return Ok(());
        };
        let Some(max) = stream.max_bytes else {
            return Ok(());
        };
        if stream.on_full != OnFull::OverwriteOldest {
            return Ok(());
        }
        let uids: Vec<u64> = stream.shards.iter().map(|s| s.uid).collect();
        let mut used = self.stream_bytes(stream);
        let mut trimmed = 0u64;
        while used > max {
            // The shard whose first block is the oldest.
            let mut oldest: Option<(u64, u64)> = None;
            for &uid in &uids {
                if let Some(first) = first_block_key(txn, uid)? {
                    if oldest.is_none_or(|(_, key)| first < key) {
                        oldest = Some((uid, first));
                    }
                }
            }
            let Some((uid, key)) = oldest else { break };
            let removed = remove_block(txn, uid, key)?;
            self.states.entry(uid).or_default().trim(&removed);
            used = used.saturating_sub(removed.stored_bytes);
            trimmed += removed.records;
        }
        if trimmed > 0 {
            self.stats
                .trimmed_records
                .fetch_add(trimmed, Ordering::Relaxed);
            self.stats
                .trimmed_by_size
                .fetch_add(trimmed, Ordering::Relaxed);
            tracing::debug!(
                stream = name,
                records = trimmed,
                "quota trimmed the oldest records"
            );
        }
        Ok(())
    }

    /// Retention by age; drops closed shards that are empty and past retention.
    fn maintain(&mut self, txn: &WriteTransaction, now: u64) -> Result<bool, StoreError> {
        let mut catalog_changed = false;
        let names: Vec<String> = self.streams.keys().cloned().collect();
        for name in names {
            let Some(stream) = self.streams.get(&name) else {
                continue;
            };
            let cutoff = Position::at_millis(now.saturating_sub(stream.retention_ms()));
            let uids: Vec<u64> = stream.shards.iter().map(|s| s.uid).collect();
            let mut trimmed = 0u64;
            for uid in uids {
                let expired = expired_blocks(txn, uid, cutoff)?;
                for key in expired {
                    let removed = remove_block(txn, uid, key)?;
                    self.states.entry(uid).or_default().trim(&removed);
                    trimmed += removed.records;
                }
            }
            if trimmed > 0 {
                self.stats
                    .trimmed_records
                    .fetch_add(trimmed, Ordering::Relaxed);
                self.stats
                    .trimmed_by_age
                    .fetch_add(trimmed, Ordering::Relaxed);
                tracing::info!(stream = %name, records = trimmed, "retention trimmed records older than {} hours", stream.retention_hours);
            }
            // Closed shards past retention with nothing left go away, as in Kinesis.
            let retention = stream.retention_ms();
            let gone: Vec<u64> = stream
                .shards
                .iter()
                .filter(|s| {
                    s.closed.is_some_and(|c| c.at_ms + retention < now)
                        && self.states.get(&s.uid).is_none_or(|st| st.records == 0)
                })
                .map(|s| s.uid)
                .collect();
            if !gone.is_empty() {
                for &uid in &gone {
                    drop_shard_tables(txn, uid)?;
                    self.states.remove(&uid);
                }
                let stream = self.streams.get_mut(&name).expect("stream listed above");
                stream.shards.retain(|s| !gone.contains(&s.uid));
                let meta = stream.clone();
                write_stream(txn, &meta)?;
                catalog_changed = true;
            }
        }
        Ok(catalog_changed)
    }

    fn write_states(&self, txn: &WriteTransaction) -> Result<(), StoreError> {
        let mut table = txn.open_table(schema::SHARD_STATE).map_err(storage)?;
        for (uid, state) in &self.states {
            let committed = self.live.get(uid).map(|l| l.state());
            if committed != Some(*state) {
                table
                    .insert(*uid, state.encode().as_slice())
                    .map_err(storage)?;
            }
        }
        Ok(())
    }

    fn write_system(&self, txn: &WriteTransaction) -> Result<(), StoreError> {
        let mut table = txn.open_table(schema::SYSTEM).map_err(storage)?;
        table
            .insert(schema::NEXT_UID, self.next_uid.to_le_bytes().as_slice())
            .map_err(storage)?;
        Ok(())
    }

    /// After a commit: publish new positions, wake readers, publish a changed catalog.
    fn after_commit(&mut self, catalog_changed: bool) {
        for (uid, state) in &self.states {
            let live = self
                .live
                .entry(*uid)
                .or_insert_with(|| Arc::new(ShardLive::new(*state)));
            live.set_state(*state);
            if live.last() != state.last {
                live.last.store(state.last.0, Ordering::Release);
                live.notify.send_replace(state.last);
            }
        }
        if catalog_changed {
            let known: HashSet<u64> = self
                .streams
                .values()
                .flat_map(|s| s.shards.iter().map(|sh| sh.uid))
                .collect();
            self.states.retain(|uid, _| known.contains(uid));
            self.publish();
        }
    }

    fn stream_mut(&mut self, name: &str) -> Result<&mut StreamMeta, StoreError> {
        self.streams
            .get_mut(name)
            .ok_or_else(|| StoreError::StreamNotFound(name.to_string()))
    }

    fn open_in_gateway(&self) -> u32 {
        self.streams.values().map(|s| s.open_shard_count()).sum()
    }

    fn apply_admin(&mut self, txn: &WriteTransaction, op: AdminOp) -> Result<(), StoreError> {
        let now = now_ms();
        let name = match op {
            AdminOp::CreateStream(spec) => {
                if self.streams.contains_key(&spec.name) {
                    return Err(StoreError::StreamExists(spec.name));
                }
                self.create(spec, now)?
            }
            AdminOp::EnsureStream(spec) => match self.streams.get_mut(&spec.name) {
                None => self.create(spec, now)?,
                Some(stream) => {
                    if stream.retention_hours != spec.retention_hours
                        || stream.max_bytes != spec.max_bytes
                        || stream.on_full != spec.on_full
                    {
                        tracing::info!(stream = %spec.name, retention_hours = spec.retention_hours, max_bytes = ?spec.max_bytes, on_full = ?spec.on_full, "applying retention and quota from the configuration");
                    }
                    if stream.open_shard_count() != spec.shards {
                        tracing::warn!(stream = %spec.name, configured = spec.shards, open = stream.open_shard_count(), "the configured shard count differs from the stream's; reshard explicitly (kinedge streams reshard) to change it");
                    }
                    stream.retention_hours = spec.retention_hours;
                    stream.max_bytes = spec.max_bytes;
                    stream.on_full = spec.on_full;
                    spec.name
                }
            },
            AdminOp::DeleteStream { name } => {
                let stream = self
                    .streams
                    .remove(&name)
                    .ok_or_else(|| StoreError::StreamNotFound(name.clone()))?;
                for shard in &stream.shards {
                    drop_shard_tables(txn, shard.uid)?;
                    self.states.remove(&shard.uid);
                    txn.open_table(schema::SHARD_STATE)
                        .map_err(storage)?
                        .remove(shard.uid)
                        .map_err(storage)?;
                }
                txn.open_table(schema::STREAMS)
                    .map_err(storage)?
                    .remove(name.as_str())
                    .map_err(storage)?;
                return Ok(());
            }
            AdminOp::SplitShard {
                stream,
                shard,
                new_start,
            } => {
                self.reshard(&stream, |meta, last, uids, open| {
                    meta.split(&shard, new_start, now, last, uids, open)
                })?;
                stream
            }
            AdminOp::MergeShards {
                stream,
                shard,
                adjacent,
            } => {
                self.reshard(&stream, |meta, last, uids, _| {
                    meta.merge(&shard, &adjacent, now, last, uids)
                })?;
                stream
            }
            AdminOp::UpdateShardCount { stream, target } => {
                self.reshard(&stream, |meta, last, uids, open| {
                    meta.update_shard_count(target, now, last, uids, open)
                })?;
                stream
            }
            AdminOp::SetRetention {
                stream,
                hours,
                change,
            } => {
                let meta = self.stream_mut(&stream)?;
                let current = meta.retention_hours;
                let refused = match change {
                    RetentionChange::Increase if hours < current => Some(format!("Requested retention period ({hours} hours) for stream {stream} can not be shorter than existing retention period ({current} hours). Use DecreaseStreamRetentionPeriod API.")),
                    RetentionChange::Decrease if hours > current => Some(format!("Requested retention period ({hours} hours) for stream {stream} can not be longer than existing retention period ({current} hours). Use IncreaseStreamRetentionPeriod API.")),
                    _ if !(MIN_RETENTION_HOURS..=MAX_RETENTION_HOURS).contains(&hours) => Some(format!("Requested retention period ({hours} hours) for stream {stream} is out of range: {MIN_RETENTION_HOURS} to {MAX_RETENTION_HOURS} hours.")),
                    _ => None,
                };
                if let Some(message) = refused {
                    return Err(StoreError::InvalidArgument(message));
                }
                meta.retention_hours = hours;
                stream
            }
            AdminOp::AddTags { stream, tags } => {
                let meta = self.stream_mut(&stream)?;
                let new_keys = tags
                    .iter()
                    .filter(|(k, _)| !meta.tags.contains_key(k))
                    .map(|(k, _)| k)
                    .collect::<HashSet<_>>()
                    .len();
                if meta.tags.len() + new_keys > MAX_TAGS_PER_STREAM {
                    return Err(StoreError::LimitExceeded(format!(
                        "Failed to add tags to stream {stream}: a stream can have at most {MAX_TAGS_PER_STREAM} tags (it has {}).",
                        meta.tags.len()
                    )));
                }
                meta.tags.extend(tags);
                stream
            }
            AdminOp::RemoveTags { stream, keys } => {
                let meta = self.stream_mut(&stream)?;
                for key in keys {
                    meta.tags.remove(&key);
                }
                stream
            }
        };
        let meta = self
            .streams
            .get(&name)
            .ok_or_else(|| StoreError::StreamNotFound(name.clone()))?;
        for shard in &meta.shards {
            self.states.entry(shard.uid).or_insert(ShardState {
                last: shard.starting,
                ..ShardState::default()
            });
        }
        write_stream(txn, meta)
    }

    /// Applies a change to a stream's shards. The change works on a copy, so a refusal
    /// half-way (UpdateShardCount is several splits and merges) leaves the stream untouched.
    fn reshard(
        &mut self,
        stream: &str,
        change: impl FnOnce(
            &mut StreamMeta,
            &dyn Fn(&ShardMeta) -> Position,
            &mut dyn UidSource,
            u32,
        ) -> Result<(), crate::streams::ReshardError>,
    ) -> Result<(), StoreError> {
        let open = self.open_in_gateway();
        let states = &self.states;
        let last = |s: &ShardMeta| states.get(&s.uid).map_or(s.starting, |st| st.last);
        let meta = self
            .streams
            .get_mut(stream)
            .ok_or_else(|| StoreError::StreamNotFound(stream.to_string()))?;
        let mut changed = meta.clone();
        let mut next_uid = self.next_uid;
        change(&mut changed, &last, &mut Uids(&mut next_uid), open)?;
        *meta = changed;
        self.next_uid = next_uid;
        Ok(())
    }

    fn create(&mut self, spec: StreamSpec, now: u64) -> Result<String, StoreError> {
        let open = self.open_in_gateway();
        if open + spec.shards > SHARD_LIMIT {
            return Err(StoreError::LimitExceeded(format!(
                "This request would exceed the gateway's limit of {SHARD_LIMIT} open shards (currently {open})."
            )));
        }
        self.next_uid += 1;
        let uid = self.next_uid;
        let mut meta = StreamMeta::new(
            spec.name.clone(),
            uid,
            spec.shards,
            now,
            &mut Uids(&mut self.next_uid),
        );
        meta.retention_hours = spec.retention_hours;
        meta.max_bytes = spec.max_bytes;
        meta.on_full = spec.on_full;
        meta.mode = spec.mode;
        meta.tags = spec.tags;
        self.streams.insert(spec.name.clone(), meta);
        Ok(spec.name)
    }
}

fn init_system(db: &Database) -> Result<[u8; 32], StoreError> {
    let txn = db.begin_write().map_err(storage)?;
    let key = {
        let mut system = txn.open_table(schema::SYSTEM).map_err(storage)?;
        let existing = system
            .get(schema::ITERATOR_KEY)
            .map_err(storage)?
            .and_then(|v| <[u8; 32]>::try_from(v.value()).ok());
        match existing {
            Some(key) => key,
            None => {
                let mut key = [0u8; 32];
                rand::thread_rng().fill_bytes(&mut key);
                system
                    .insert(schema::ITERATOR_KEY, key.as_slice())
                    .map_err(storage)?;
                key
            }
        }
    };
    txn.open_table(schema::STREAMS).map_err(storage)?;
    txn.open_table(schema::SHARD_STATE).map_err(storage)?;
    txn.commit().map_err(storage)?;
    Ok(key)
}

fn write_stream(txn: &WriteTransaction, meta: &StreamMeta) -> Result<(), StoreError> {
    let json = serde_json::to_vec(meta).map_err(storage)?;
    txn.open_table(schema::STREAMS)
        .map_err(storage)?
        .insert(meta.name.as_str(), json.as_slice())
        .map_err(storage)?;
    Ok(())
}

/// Writes records (positions increasing) as blocks; returns the bytes stored.
fn write_blocks(
    txn: &WriteTransaction,
    uid: u64,
    records: &[PendingRecord],
) -> Result<u64, StoreError> {
    let name = schema::shard_table_name(uid);
    let mut table = txn
        .open_table(schema::shard_table(&name))
        .map_err(storage)?;
    // Exact encoded size of each record, with its delta from the previous one.
    let sizes: Vec<usize> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let delta = if i == 0 {
                0
            } else {
                r.position.0 - records[i - 1].position.0
            };
            block::record_bytes(delta, r.partition_key.len(), r.data.len())
        })
        .collect();
    let mut prefix = Vec::with_capacity(sizes.len() + 1);
    prefix.push(0usize);
    for size in &sizes {
        prefix.push(prefix.last().copied().unwrap_or(0) + size);
    }
    // For each record, where its run of ordinary (not large) records ends.
    let mut run_ends = vec![records.len(); records.len()];
    for i in (0..records.len()).rev() {
        let large = block::is_large(records[i].partition_key.len(), records[i].data.len());
        run_ends[i] = if large {
            i
        } else if i + 1 < records.len() {
            run_ends[i + 1]
        } else {
            records.len()
        };
    }
    let mut written = 0u64;
    let mut start = 0;
    while start < records.len() {
        let record = &records[start];
        if block::is_large(record.partition_key.len(), record.data.len()) {
            written += write_large(txn, &mut table, uid, record)?;
            start += 1;
            continue;
        }
        let run_end = run_ends[start];
        let remaining = prefix[run_end] - prefix[start];
        let cap = block::block_cap(remaining);
        let mut end = start;
        let mut size = 0;
        while end < run_end && (end == start || size + sizes[end] <= cap) {
            size += sizes[end];
            end += 1;
        }
        let value = block::encode_records(&records[start..end]);
        table
            .insert(records[start].position.0, value.as_slice())
            .map_err(storage)?;
        written += value.len() as u64;
        start = end;
    }
    Ok(written)
}

fn write_large(
    txn: &WriteTransaction,
    table: &mut redb::Table<u64, &[u8]>,
    uid: u64,
    record: &PendingRecord,
) -> Result<u64, StoreError> {
    let head = block::encode_large_head(record);
    table
        .insert(record.position.0, head.as_slice())
        .map_err(storage)?;
    let name = schema::chunk_table_name(uid);
    let mut chunks = txn
        .open_table(schema::chunk_table(&name))
        .map_err(storage)?;
    for (i, chunk) in block::chunks(&record.data).enumerate() {
        chunks
            .insert((record.position.0, i as u32), chunk)
            .map_err(storage)?;
    }
    Ok((head.len() + record.data.len()) as u64)
}

fn first_block_key(txn: &WriteTransaction, uid: u64) -> Result<Option<u64>, StoreError> {
    let name = schema::shard_table_name(uid);
    let table = match txn.open_table(schema::shard_table(&name)) {
        Ok(t) => t,
        Err(e) => return Err(storage(e)),
    };
    let first = table.first().map_err(storage)?.map(|(k, _)| k.value());
    Ok(first)
}

/// Keys of the leading blocks whose records are all older than `cutoff`.
fn expired_blocks(
    txn: &WriteTransaction,
    uid: u64,
    cutoff: Position,
) -> Result<Vec<u64>, StoreError> {
    let name = schema::shard_table_name(uid);
    let table = txn
        .open_table(schema::shard_table(&name))
        .map_err(storage)?;
    let mut keys = Vec::new();
    for entry in table.range(..cutoff.0).map_err(storage)? {
        let (key, value) = entry.map_err(storage)?;
        let summary = block::summarize(key.value(), value.value()).map_err(storage)?;
        if summary.last >= cutoff || keys.len() >= TRIM_BATCH {
            break;
        }
        keys.push(key.value());
    }
    Ok(keys)
}

/// Removes one block (and a large record's chunks); returns (bytes, records) removed.
fn apply_delivery(txn: &WriteTransaction, op: DeliveryOp) -> Result<(), StoreError> {
    match op {
        DeliveryOp::SaveCheckpoints {
            delivery,
            checkpoints,
        } => {
            let mut table = txn
                .open_table(schema::DELIVERY_CHECKPOINTS)
                .map_err(storage)?;
            for (uid, checkpoint) in checkpoints {
                table
                    .insert((delivery.as_str(), uid), checkpoint.encode().as_slice())
                    .map_err(storage)?;
            }
        }
        DeliveryOp::SaveDefinition { name, definition } => {
            txn.open_table(schema::DELIVERY_STREAMS)
                .map_err(storage)?
                .insert(name.as_str(), definition.as_slice())
                .map_err(storage)?;
        }
        DeliveryOp::Remove { name } => {
            txn.open_table(schema::DELIVERY_STREAMS)
                .map_err(storage)?
                .remove(name.as_str())
                .map_err(storage)?;
            let mut table = txn
                .open_table(schema::DELIVERY_CHECKPOINTS)
                .map_err(storage)?;
            let uids: Vec<u64> = table
                .range((name.as_str(), 0)..=(name.as_str(), u64::MAX))
                .map_err(storage)?
                .map(|entry| entry.map(|(key, _)| key.value().1))
                .collect::<Result<_, _>>()
                .map_err(storage)?;
            for uid in uids {
                table.remove((name.as_str(), uid)).map_err(storage)?;
            }
        }
    }
    Ok(())
}

/// What removing a block took away.
struct RemovedBlock {
    stored_bytes: u64,
    records: u64,
    record_bytes: u64,
    last: Position,
}

impl ShardState {
    fn trim(&mut self, removed: &RemovedBlock) {
        self.bytes = self.bytes.saturating_sub(removed.stored_bytes);
        self.records = self.records.saturating_sub(removed.records);
        self.trimmed += removed.records;
        self.trimmed_bytes += removed.record_bytes;
        self.trimmed_through = self.trimmed_through.max(removed.last);
    }
}

fn remove_block(txn: &WriteTransaction, uid: u64, key: u64) -> Result<RemovedBlock, StoreError> {
    let name = schema::shard_table_name(uid);
    let mut table = txn
        .open_table(schema::shard_table(&name))
        .map_err(storage)?;
    let Some(value) = table.remove(key).map_err(storage)? else {
        return Ok(RemovedBlock {
            stored_bytes: 0,
            records: 0,
            record_bytes: 0,
            last: Position(key),
        });
    };
    let bytes = value.value().to_vec();
    drop(value);
    let summary = block::summarize(key, &bytes).map_err(storage)?;
    let record_bytes = block::payload_bytes(key, &bytes).map_err(storage)?;
    let mut removed = bytes.len() as u64;
    if summary.large {
        let chunk_name = schema::chunk_table_name(uid);
        let mut chunks = txn
            .open_table(schema::chunk_table(&chunk_name))
            .map_err(storage)?;
        let mut index = 0u32;
        while let Some(chunk) = chunks.remove((key, index)).map_err(storage)? {
            removed += chunk.value().len() as u64;
            index += 1;
        }
    }
    Ok(RemovedBlock {
        stored_bytes: removed,
        records: summary.records,
        record_bytes,
        last: summary.last,
    })
}

fn drop_shard_tables(txn: &WriteTransaction, uid: u64) -> Result<(), StoreError> {
    let name = schema::shard_table_name(uid);
    match txn.delete_table(schema::shard_table(&name)) {
        Ok(_) | Err(TableError::TableDoesNotExist(_)) => {}
        Err(e) => return Err(storage(e)),
    }
    let chunk_name = schema::chunk_table_name(uid);
    match txn.delete_table(schema::chunk_table(&chunk_name)) {
        Ok(_) | Err(TableError::TableDoesNotExist(_)) => {}
        Err(e) => return Err(storage(e)),
    }
    Ok(())
}
