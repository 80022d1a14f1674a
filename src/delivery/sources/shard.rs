//! Reading a delivery stream's source: every shard of a stream, parents before children, from
//! a cursor per shard that starts at the durable checkpoint. Notices records that retention or
//! a quota trimmed before they were delivered, counts them and says which range was lost.
//!
//! After a restart it first replays the plan of the batch that may have been on its way
//! (`plan`): only the planned shards, each exactly to its planned end, so that the runner forms
//! that batch again as it was.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use tokio::sync::watch;

use crate::delivery::batch::DeliveryRecord;
use crate::delivery::checkpoint::DeliveryCheckpoint;
use crate::delivery::config::StartPosition;
use crate::storage::{
    FaultKind, ReadBatch, ShardState, StorageFault, Store, StoreError, StoredRecord,
};
use crate::streams::{Position, SequenceNumber, StreamMeta};

/// Most records and bytes one read of one shard takes before moving to the next shard, so
/// that a backlog is drained from all shards alike (oldest first across shards, roughly).
const READ_CHUNK_RECORDS: usize = 10_000;
const READ_CHUNK_BYTES: usize = 1024 * 1024;

/// Where reading one shard stands.
#[derive(Debug, Clone, Copy)]
pub struct Cursor {
    pub shard_index: u64,
    /// Through the last record read (or skipped as lost); reading resumes after `position`.
    pub read: DeliveryCheckpoint,
    /// True once anything of the shard was read or skipped by this delivery stream.
    pub delivered_any: bool,
    /// The shard is closed and everything in it was read.
    pub exhausted: bool,
}

/// Records trimmed before they were delivered.
#[derive(Debug, Clone)]
pub struct LostRange {
    pub shard_index: u64,
    pub records: u64,
    /// Sequence numbers of the range lost (the first is exclusive: the last one read).
    pub after: String,
    pub through: String,
}

/// What one read produced.
#[derive(Debug, Default)]
pub struct ReadOutcome {
    /// Records with the index of their shard.
    pub records: Vec<(u64, DeliveryRecord)>,
    pub bytes: u64,
    /// Some shard has more to read right now.
    pub more: bool,
    pub lost: Vec<LostRange>,
}

pub struct ShardSource {
    store: Store,
    stream: String,
    start: StartPosition,
    stream_uid: Option<u64>,
    pub cursors: BTreeMap<u64, Cursor>,
    /// Shards whose cursor moved since the last `take_dirty`.
    dirty: BTreeSet<u64>,
    turn: usize,
    empty_partition_values: Arc<BTreeMap<String, String>>,
    /// The plan read from the store (shard storage id -> planned end), applied to a shard's
    /// cursor when it is restored from its checkpoint.
    plan: HashMap<u64, Position>,
    /// While replaying a plan: the shards still to read, each up to its planned end.
    replay: Option<HashMap<u64, Position>>,
}

impl ShardSource {
    pub fn new(store: Store, stream: String, start: StartPosition) -> ShardSource {
        ShardSource {
            store,
            stream,
            start,
            stream_uid: None,
            cursors: BTreeMap::new(),
            dirty: BTreeSet::new(),
            turn: 0,
            empty_partition_values: Arc::new(BTreeMap::new()),
            plan: HashMap::new(),
            replay: None,
        }
    }

    /// The plan of the batch that may have been on its way when the gateway stopped (see
    /// `plan::split_saved`): reading replays it before anything else.
    pub fn set_plan(&mut self, plan: HashMap<u64, Position>) {
        self.plan = plan;
    }

    /// True while the planned batch is being read again.
    pub fn replaying(&self) -> bool {
        self.replay.is_some()
    }

    /// Every planned shard is read to its planned end (or is gone).
    pub fn replay_complete(&self) -> bool {
        self.replay.as_ref().is_none_or(|ends| {
            ends.iter().all(|(uid, end)| {
                self.cursors
                    .get(uid)
                    .is_none_or(|c| c.read.position >= *end || c.exhausted)
            })
        })
    }

    /// Back to reading everything, after the replayed batch was cut.
    pub fn end_replay(&mut self) {
        self.replay = None;
    }

    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Matches the cursors with the stream's shards (new shards after resharding, a stream
    /// that appeared). `saved` are the committed checkpoints (read once at start). Returns
    /// checkpoints to save now (where a new delivery stream starts), or why reading is paused.
    pub fn refresh(
        &mut self,
        saved: &mut Option<HashMap<u64, DeliveryCheckpoint>>,
    ) -> Result<Vec<(u64, DeliveryCheckpoint)>, String> {
        let catalog = self.store.catalog();
        let Some(meta) = catalog.stream(&self.stream).cloned() else {
            self.stream_uid = None;
            self.cursors.clear();
            return Err(format!("source stream {} does not exist", self.stream));
        };
        if self.stream_uid != Some(meta.uid) {
            // First sight of the stream (or it was deleted and created again).
            self.cursors.clear();
            self.stream_uid = Some(meta.uid);
            self.replay = None;
        }
        let known: BTreeSet<u64> = meta.shards.iter().map(|s| s.uid).collect();
        self.cursors.retain(|uid, _| known.contains(uid));
        let mut initial = Vec::new();
        let saved_map = saved.get_or_insert_with(HashMap::new);
        let brand_new = saved_map.keys().all(|uid| !known.contains(uid)) && self.cursors.is_empty();
        for shard in &meta.shards {
            if self.cursors.contains_key(&shard.uid) {
                continue;
            }
            let (checkpoint, delivered_any) = match saved_map.remove(&shard.uid) {
                Some(checkpoint) => {
                    if let Some(end) = self.plan.remove(&shard.uid) {
                        if end > checkpoint.position {
                            self.replay
                                .get_or_insert_with(HashMap::new)
                                .insert(shard.uid, end);
                        }
                    }
                    (checkpoint, true)
                }
                None => {
                    let state = catalog
                        .live(shard.uid)
                        .map(|l| l.state())
                        .unwrap_or_default();
                    let checkpoint = match (brand_new, self.start) {
                        // A new delivery stream from the oldest record kept: what was trimmed
                        // before it existed is not its loss.
                        (true, StartPosition::TrimHorizon) => DeliveryCheckpoint {
                            position: state.trimmed_through.max(shard.starting),
                            records_through: state.trimmed,
                            bytes_through: state.trimmed_bytes,
                            lost: 0,
                        },
                        (true, StartPosition::Latest) => DeliveryCheckpoint {
                            position: state.last,
                            records_through: state.appended,
                            bytes_through: state.appended_bytes,
                            lost: 0,
                        },
                        // A shard that appeared later (resharding): all of it.
                        (false, _) => DeliveryCheckpoint {
                            position: shard.starting,
                            ..DeliveryCheckpoint::default()
                        },
                    };
                    initial.push((shard.uid, checkpoint));
                    (checkpoint, false)
                }
            };
            self.cursors.insert(
                shard.uid,
                Cursor {
                    shard_index: shard.index,
                    read: checkpoint,
                    delivered_any,
                    exhausted: false,
                },
            );
        }
        Ok(initial)
    }

    /// Shards that may be read now: open or unfinished, with all parents finished; while a
    /// plan is replayed, only planned shards short of their planned end.
    fn readable(&self, meta: &StreamMeta) -> Vec<u64> {
        let by_index: HashMap<u64, u64> = meta.shards.iter().map(|s| (s.index, s.uid)).collect();
        let finished = |index: Option<u64>| match index.and_then(|i| by_index.get(&i)) {
            None => true,
            Some(uid) => self.cursors.get(uid).is_none_or(|c| c.exhausted),
        };
        meta.shards
            .iter()
            .filter(|s| self.cursors.get(&s.uid).is_some_and(|c| !c.exhausted))
            .filter(|s| finished(s.parent) && finished(s.adjacent_parent))
            .filter(|s| match &self.replay {
                None => true,
                Some(ends) => ends.get(&s.uid).is_some_and(|end| {
                    self.cursors
                        .get(&s.uid)
                        .is_some_and(|c| c.read.position < *end)
                }),
            })
            .map(|s| s.uid)
            .collect()
    }

    /// Receivers that change when any readable shard gets records; `None` when a readable
    /// shard already has unread records (no need to wait).
    pub fn watchers(&self) -> Option<Vec<watch::Receiver<Position>>> {
        let catalog = self.store.catalog();
        let meta = catalog.stream(&self.stream)?;
        let mut receivers = Vec::new();
        for uid in self.readable(meta) {
            let Some(rx) = self.store.subscribe(uid) else {
                continue;
            };
            let cursor = self.cursors.get(&uid)?;
            if *rx.borrow() > cursor.read.position {
                return None;
            }
            receivers.push(rx);
        }
        Some(receivers)
    }

    /// Reads up to `max_records` / about `max_bytes` from the readable shards in turn.
    pub async fn read(
        &mut self,
        max_records: usize,
        max_bytes: u64,
    ) -> Result<ReadOutcome, StoreError> {
        let mut outcome = ReadOutcome::default();
        let catalog = self.store.catalog();
        let Some(meta) = catalog.stream(&self.stream).cloned() else {
            return Ok(outcome);
        };
        let shards = self.readable(&meta);
        if shards.is_empty() {
            return Ok(outcome);
        }
        let closed: HashMap<u64, bool> = meta
            .shards
            .iter()
            .map(|s| (s.uid, s.closed.is_some()))
            .collect();
        let mut busy: Vec<u64> = shards;
        let rotate = self.turn % busy.len();
        busy.rotate_left(rotate);
        self.turn = self.turn.wrapping_add(1);
        while !busy.is_empty() {
            let mut still = Vec::new();
            for uid in busy {
                let left_records = max_records.saturating_sub(outcome.records.len());
                let left_bytes = max_bytes.saturating_sub(outcome.bytes);
                if left_records == 0 || left_bytes == 0 {
                    outcome.more = true;
                    return Ok(outcome);
                }
                let Some(cursor) = self.cursors.get(&uid).copied() else {
                    continue;
                };
                let from = cursor.read.position.next();
                let take_records = left_records.min(READ_CHUNK_RECORDS);
                let take_bytes = (left_bytes as usize).min(READ_CHUNK_BYTES);
                let batch = self.read_chunk(uid, from, take_records, take_bytes).await?;
                let mut batch = batch;
                // Replaying a plan: nothing past the planned end.
                let mut beyond_plan = false;
                if let Some(end) = self.replay.as_ref().and_then(|ends| ends.get(&uid)) {
                    let keep = batch.records.partition_point(|r| r.position <= *end);
                    beyond_plan = keep < batch.records.len();
                    batch.records.truncate(keep);
                }
                let mut cursor = cursor;
                self.note_trimmed(uid, &mut cursor, &batch.state, &mut outcome);
                self.take_records(uid, &mut cursor, batch.records, &mut outcome);
                if beyond_plan {
                    // Read to the planned end; the rest waits for the next batch.
                } else if batch.truncated {
                    still.push(uid);
                } else if closed.get(&uid).copied().unwrap_or(false) {
                    // Closed before this read and read to its end: children may go now.
                    cursor.exhausted = true;
                    outcome.more = true;
                }
                self.cursors.insert(uid, cursor);
            }
            busy = still;
        }
        Ok(outcome)
    }

    /// Reads one chunk of one shard on the blocking pool.
    async fn read_chunk(
        &self,
        uid: u64,
        from: Position,
        take_records: usize,
        take_bytes: usize,
    ) -> Result<ReadBatch, StoreError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.read(uid, from, take_records, take_bytes))
            .await
            .map_err(|e| {
                StoreError::Storage(StorageFault::new(FaultKind::Other, "shard read task", e))
            })?
    }

    /// Counts what retention or a quota trimmed before the cursor got there, and skips it.
    fn note_trimmed(
        &mut self,
        uid: u64,
        cursor: &mut Cursor,
        state: &ShardState,
        outcome: &mut ReadOutcome,
    ) {
        if state.trimmed <= cursor.read.records_through {
            return;
        }
        let lost = state.trimmed - cursor.read.records_through;
        outcome.lost.push(LostRange {
            shard_index: cursor.shard_index,
            records: lost,
            after: SequenceNumber {
                shard_index: cursor.shard_index,
                position: cursor.read.position,
            }
            .to_string(),
            through: SequenceNumber {
                shard_index: cursor.shard_index,
                position: state.trimmed_through,
            }
            .to_string(),
        });
        cursor.read.lost += lost;
        cursor.read.records_through = state.trimmed;
        cursor.read.bytes_through = cursor.read.bytes_through.max(state.trimmed_bytes);
        cursor.read.position = cursor.read.position.max(state.trimmed_through);
        cursor.delivered_any = true;
        self.dirty.insert(uid);
    }

    /// Moves the cursor over `records` and hands them to the outcome.
    fn take_records(
        &mut self,
        uid: u64,
        cursor: &mut Cursor,
        records: Vec<StoredRecord>,
        outcome: &mut ReadOutcome,
    ) {
        for record in records {
            let size = (record.data.len() + record.partition_key.len()) as u64;
            cursor.read.position = record.position;
            cursor.read.records_through += 1;
            cursor.read.bytes_through += size;
            cursor.delivered_any = true;
            outcome.bytes += record.data.len() as u64;
            outcome.records.push((
                cursor.shard_index,
                DeliveryRecord {
                    data: record.data,
                    sequence_number: SequenceNumber {
                        shard_index: cursor.shard_index,
                        position: record.position,
                    }
                    .to_string(),
                    partition_key: record.partition_key,
                    arrival_ms: record.position.millis(),
                    partition_values: self.empty_partition_values.clone(),
                },
            ));
            self.dirty.insert(uid);
        }
    }

    pub fn has_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Cursors moved since the last call: the checkpoints to save once what was read up to
    /// now is delivered.
    pub fn take_dirty(&mut self) -> Vec<(u64, Cursor)> {
        let dirty = std::mem::take(&mut self.dirty);
        dirty
            .into_iter()
            .filter_map(|uid| self.cursors.get(&uid).map(|c| (uid, *c)))
            .collect()
    }
}
