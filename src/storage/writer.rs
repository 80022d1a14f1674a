//! The single writer: group commit on a schedule, and recovery from disk errors.
//!
//! The writer thread owns the working copy of every stream's metadata and shard state. It
//! takes a request and gathers what else arrives until `commit_interval_ms` have passed since
//! its last commit (or at once when `EAGER_COMMIT_BYTES` are queued, or a shutdown or a ping
//! waits), applies the group in one write transaction, commits with
//! `Durability::Immediate`, and only then answers. So an acknowledgement always means "on
//! disk", and at sensor rates one fsync covers many messages instead of one each. Only
//! producers that pile up wait for the schedule: a lone producer that waits for each answer
//! (a script calling PutRecord in a loop) gets its commit at once.
//!
//! If a commit fails nobody is told "ok": every request in the group gets the error and the
//! working copy is reloaded from the last commit. After an I/O error (a full disk, a failing
//! card) the database is closed and reopened at once, so reads go on, and writes are
//! suspended: appends and checkpoints are refused without touching the disk, while retention
//! and deletes (which free space) are still tried. Every second the writer checks whether the
//! cause has gone (free space back above the threshold) and resumes by itself. Pings are
//! answered with the outcome of their group, so `/ready` and the watchdog see the truth.
//! The recovery itself (suspend, probe, resume) and the disk guard are in `recovery`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redb::{Durability, ReadableTable};
use tokio::sync::oneshot;

use super::admin::{AdminOp, CheckpointOp};
use super::database::DbSlot;
use super::error::{corrupted, storage, FaultKind, StorageFault};
use super::log::{apply_checkpoint, init_system};
use super::recovery::{WriterHealth, PROBE_EVERY};
use super::schema::{self, ShardState};
use super::{
    now_ms, AppendOutcome, Catalog, NewRecord, ShardLive, StoreError, StoreOptions, WriterStats,
};
use crate::streams::StreamMeta;

/// A group this big commits without waiting for the schedule: its fsync is already shared by
/// enough bytes (at full load the queue holds this much as soon as a commit ends).
const EAGER_COMMIT_BYTES: u64 = 64 * 1024;

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
    Checkpoint {
        op: CheckpointOp,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Appends and a checkpoint change that commit together or not at all.
    Transact {
        appends: Vec<(String, Vec<NewRecord>)>,
        checkpoint: CheckpointOp,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    Maintain {
        /// Apply retention as of this time (epoch ms) instead of now.
        as_of: Option<u64>,
        reply: Option<oneshot::Sender<Result<(), StoreError>>>,
    },
    /// Answered with the outcome of the group it joins: `Ok` after a commit (or, alone, when
    /// the writer can write), the fault while writes fail. A stuck writer does not answer.
    Ping(oneshot::Sender<Result<(), StoreError>>),
    Shutdown,
}

impl WriteOp {
    fn weight(&self) -> u64 {
        match self {
            WriteOp::Append { records, .. } => records_weight(records),
            WriteOp::Transact { appends, .. } => appends
                .iter()
                .map(|(_, records)| records_weight(records))
                .sum(),
            _ => 0,
        }
    }

    /// Ops that end the wait for the commit schedule.
    fn is_urgent(&self) -> bool {
        matches!(self, WriteOp::Ping(_) | WriteOp::Shutdown)
    }

    /// Answers the op with `error` without doing it.
    pub(super) fn fail(self, error: &StoreError) {
        match self {
            WriteOp::Append { reply, .. } => {
                let _ = reply.send(Err(error.clone()));
            }
            WriteOp::Admin { reply, .. }
            | WriteOp::Checkpoint { reply, .. }
            | WriteOp::Transact { reply, .. } => {
                let _ = reply.send(Err(error.clone()));
            }
            WriteOp::Maintain { reply, .. } => {
                if let Some(reply) = reply {
                    let _ = reply.send(Err(error.clone()));
                }
            }
            WriteOp::Ping(reply) => {
                let _ = reply.send(Err(error.clone()));
            }
            WriteOp::Shutdown => {}
        }
    }
}

fn records_weight(records: &[NewRecord]) -> u64 {
    records
        .iter()
        .map(|r| (r.data.len() + r.partition_key.len()) as u64)
        .sum()
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

pub(crate) struct Writer {
    pub(super) db: Arc<DbSlot>,
    pub(super) options: StoreOptions,
    pub(super) published: Arc<RwLock<Arc<Catalog>>>,
    pub(super) stats: Arc<WriterStats>,
    pub(super) streams: BTreeMap<String, StreamMeta>,
    pub(super) states: HashMap<u64, ShardState>,
    pub(super) live: HashMap<u64, Arc<ShardLive>>,
    pub(super) next_uid: u64,
    pub(super) health: Arc<WriterHealth>,
    /// Set after an I/O error until the writer can write again.
    pub(super) suspended: Option<StorageFault>,
    pub(super) last_probe: Instant,
    /// Storage faults since the last good commit: the probe backs off as they repeat (a
    /// resumed writer that fails again waits longer before the next try).
    pub(super) faults_in_a_row: u32,
    last_commit: Instant,
    /// Whether the last group held more than one request: producers are piling up, so the
    /// next group waits for the schedule.
    piled_up: bool,
    /// Free pages inside the file, as last counted, and when.
    pub(super) file_room: Option<(Instant, u64)>,
    /// Stream encryption keys (shared with the store's readers).
    pub(super) keyring: Arc<super::crypt::Keyring>,
}

impl Writer {
    /// Loads the database (creating the system rows on first use) and publishes the catalog.
    pub(crate) fn start(
        db: Arc<DbSlot>,
        options: StoreOptions,
        published: Arc<RwLock<Arc<Catalog>>>,
        stats: Arc<WriterStats>,
        health: Arc<WriterHealth>,
    ) -> Result<(Writer, [u8; 32]), StoreError> {
        let iterator_key = init_system(&db)?;
        let keyring = Arc::new(super::crypt::Keyring::new(options.keys.clone()));
        let mut writer = Writer {
            keyring,
            db,
            options,
            published,
            stats,
            streams: BTreeMap::new(),
            states: HashMap::new(),
            live: HashMap::new(),
            next_uid: 0,
            health,
            suspended: None,
            last_probe: Instant::now(),
            faults_in_a_row: 0,
            last_commit: Instant::now(),
            piled_up: false,
            file_room: None,
        };
        writer.reload()?;
        Ok((writer, iterator_key))
    }

    /// Reads the committed state into the working copy and publishes it.
    pub(super) fn reload(&mut self) -> Result<(), StoreError> {
        let txn = self.db.begin_read()?;
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
                corrupted(format!("stream {} metadata is unreadable", name.value()), e)
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

    pub(crate) fn run(mut self, ops: flume::Receiver<WriteOp>) {
        tracing::debug!("stream writer started");
        loop {
            let first = if self.suspended.is_some() {
                match ops.recv_timeout(PROBE_EVERY) {
                    Ok(op) => Some(op),
                    Err(flume::RecvTimeoutError::Timeout) => None,
                    Err(flume::RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match ops.recv() {
                    Ok(op) => Some(op),
                    Err(_) => break,
                }
            };
            if self.suspended.is_some() {
                self.probe();
            }
            let Some(first) = first else { continue };
            let group = self.gather(first, &ops);
            if self.process(group) {
                break;
            }
        }
        // Requests that reached the queue behind the shutdown are answered, not left waiting:
        // the queue outlives this receiver (the store's sender keeps it), so a request left in
        // it would never hear back. Producers that send from now on find the store closing,
        // and one that queued just after this drain answers itself (`Store::send`).
        self.health.close();
        for op in ops.drain() {
            op.fail(&StoreError::ShuttingDown);
        }
        // A clean close: the next start needs no repair.
        self.db.close();
        tracing::debug!("stream writer stopped");
    }

    /// The group to commit: `first` and what arrives until the schedule says commit.
    fn gather(&self, first: WriteOp, ops: &flume::Receiver<WriteOp>) -> Vec<WriteOp> {
        let max = self.options.max_commit_bytes;
        let eager = EAGER_COMMIT_BYTES.min(max);
        let deadline = self.last_commit + Duration::from_millis(self.options.commit_interval_ms);
        let mut weight = first.weight();
        // A suspended writer refuses at once; nobody should wait for that. A lone producer
        // that waits for each answer before it sends again (a script calling PutRecord in a
        // loop, a device with one message in flight) is not kept waiting either: its commits
        // are paced by its own round trips. Only when requests pile up (the last group held
        // more than one, or more are queued now) does the group gather until the deadline.
        let piling_up = self.piled_up || !ops.is_empty();
        let mut urgent = first.is_urgent() || self.suspended.is_some() || !piling_up;
        let mut group = vec![first];
        while !urgent && weight < eager {
            match ops.recv_deadline(deadline) {
                Ok(op) => {
                    weight += op.weight();
                    urgent |= op.is_urgent();
                    group.push(op);
                }
                Err(_) => break,
            }
        }
        while weight < max {
            match ops.try_recv() {
                Ok(op) => {
                    weight += op.weight();
                    group.push(op);
                }
                Err(_) => break,
            }
        }
        group
    }

    /// Does a group: commits what needs a commit and answers everyone. Returns true when
    /// asked to shut down.
    fn process(&mut self, group: Vec<WriteOp>) -> bool {
        let mut pings = Vec::new();
        let mut shutdown = false;
        let mut work = Vec::with_capacity(group.len());
        for op in group {
            match op {
                WriteOp::Ping(reply) => pings.push(reply),
                WriteOp::Shutdown => shutdown = true,
                op => work.push(op),
            }
        }
        self.piled_up = work.len() > 1;
        let outcome = if work.is_empty() {
            self.health_now()
        } else {
            self.commit_group(work)
        };
        for ping in pings {
            let _ = ping.send(outcome.clone());
        }
        shutdown
    }

    /// Whether the writer can write now, for a ping that has no commit to wait for.
    fn health_now(&self) -> Result<(), StoreError> {
        match &self.suspended {
            Some(fault) => Err(StoreError::Storage(fault.clone())),
            None if !self.db.is_open() => Err(StoreError::Storage(StorageFault::new(
                FaultKind::Unavailable,
                "stream database",
                std::io::Error::other("the stream database is not open"),
            ))),
            None => Ok(()),
        }
    }

    /// Applies a group in one transaction and answers its requests; the commit's outcome.
    fn commit_group(&mut self, work: Vec<WriteOp>) -> Result<(), StoreError> {
        let started = Instant::now();
        // Suspended: appends and checkpoints are refused without touching the disk; what
        // can free space (deletes, retention) is still tried.
        let refusal = self.suspended.clone().map(StoreError::Storage);
        let work = match &refusal {
            None => work,
            Some(error) => {
                let (refused, rest): (Vec<_>, Vec<_>) = work.into_iter().partition(|op| {
                    matches!(
                        op,
                        WriteOp::Append { .. }
                            | WriteOp::Checkpoint { .. }
                            | WriteOp::Transact { .. }
                    )
                });
                for op in refused {
                    op.fail(error);
                }
                if rest.is_empty() {
                    return Err(error.clone());
                }
                rest
            }
        };
        let disk = self.disk_check();
        let txn = self.db.begin_write().and_then(|mut txn| {
            txn.set_durability(Durability::Immediate)
                .map_err(|e| self.db.fault("set durability", e))?;
            txn.set_quick_repair(self.options.quick_repair);
            Ok(txn)
        });
        let txn = match txn {
            Ok(txn) => txn,
            Err(error) => {
                for op in work {
                    op.fail(&error);
                }
                self.failed(&error);
                return Err(error);
            }
        };
        let mut replies = Vec::with_capacity(work.len());
        let mut maintain_replies = Vec::new();
        let mut staged = BTreeMap::new();
        let mut catalog_changed = false;
        let mut maintain: Option<u64> = None;
        let mut failure: Option<StoreError> = None;
        let mut writes = false;
        for op in work {
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
                    let outcome = match &failure {
                        Some(error) => Err(error.clone()),
                        None => self.apply_admin(&txn, op),
                    };
                    note_failure(&mut failure, &outcome);
                    catalog_changed |= outcome.is_ok();
                    writes |= outcome.is_ok();
                    replies.push(Reply::Admin(reply, outcome));
                }
                WriteOp::Checkpoint { op, reply } => {
                    let outcome = match &failure {
                        Some(error) => Err(error.clone()),
                        None => apply_checkpoint(&txn, op),
                    };
                    note_failure(&mut failure, &outcome);
                    writes |= outcome.is_ok();
                    replies.push(Reply::Admin(reply, outcome));
                }
                WriteOp::Transact {
                    appends,
                    checkpoint,
                    reply,
                } => {
                    let outcome = match &failure {
                        Some(error) => Err(error.clone()),
                        None => self
                            .stage_all(appends, &mut staged, disk)
                            .and_then(|()| apply_checkpoint(&txn, checkpoint)),
                    };
                    note_failure(&mut failure, &outcome);
                    writes |= outcome.is_ok();
                    replies.push(Reply::Admin(reply, outcome));
                }
                WriteOp::Maintain { as_of, reply } => {
                    maintain = Some(as_of.unwrap_or_else(now_ms));
                    maintain_replies.extend(reply);
                    writes = true;
                }
                WriteOp::Ping(_) | WriteOp::Shutdown => {}
            }
        }
        writes |= !staged.is_empty();
        let result = match failure {
            Some(error) => Err(error),
            None if !writes => Ok((false, 0, 0)),
            None => (|| {
                let (records, bytes) = self.flush(&txn, staged)?;
                if let Some(now) = maintain {
                    catalog_changed |= self.maintain(&txn, now)?;
                }
                self.write_states(&txn)?;
                if catalog_changed {
                    self.write_system(&txn)?;
                }
                Ok((catalog_changed, records, bytes))
            })(),
        };
        let result = match result {
            Ok(done) if writes => txn
                .commit()
                .map(|()| done)
                .map_err(|e| StoreError::Storage(self.db.fault("commit", e))),
            Ok(done) => {
                let _ = txn.abort();
                Ok(done)
            }
            Err(error) => {
                let _ = txn.abort();
                Err(self.refine(error))
            }
        };
        match result {
            Ok((catalog_changed, records, bytes)) => {
                let woken = if writes {
                    self.last_commit = started;
                    self.faults_in_a_row = 0;
                    if catalog_changed || maintain.is_some() {
                        self.file_room = None;
                    }
                    let woken = self.after_commit(catalog_changed);
                    self.count_commit(started, records, bytes);
                    woken
                } else {
                    Vec::new()
                };
                for reply in replies {
                    reply.send(None);
                }
                for reply in maintain_replies {
                    let _ = reply.send(Ok(()));
                }
                // Waiting readers (SubscribeToShard, long GetRecords polls) are woken after
                // the producers are answered: a hundred subscribers must not stand in the
                // runtime's queue before the acknowledgement.
                for live in woken {
                    live.notify.send_replace(live.last());
                }
                match refusal {
                    Some(error) => Err(error),
                    None => Ok(()),
                }
            }
            Err(error) => {
                self.failed(&error);
                for reply in replies {
                    reply.send(Some(&error));
                }
                for reply in maintain_replies {
                    let _ = reply.send(Err(error.clone()));
                }
                Err(error)
            }
        }
    }
}

/// Keeps the first storage failure of a group: it fails the whole group.
fn note_failure<T>(failure: &mut Option<StoreError>, outcome: &Result<T, StoreError>) {
    if failure.is_none() {
        if let Err(error @ StoreError::Storage(_)) = outcome {
            *failure = Some(error.clone());
        }
    }
}
