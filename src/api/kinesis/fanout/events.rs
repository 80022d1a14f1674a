//! Building `SubscribeToShardEvent`s (a shard read and its encoding, on the blocking pool),
//! once for all the subscribers that ask for the same one.
//!
//! Subscribers at the tip of a shard wake on the same commit and stand at the same position:
//! they can be sent the same event. [`EventCache`] keeps the last few events by (shard,
//! position, encoding), so a hundred subscribers cost one read and one encoding per commit,
//! not a hundred; a subscriber asking while the event is being built waits for it instead of
//! building it again. An event is a snapshot: the records in `[from, next)` as committed when
//! it was read, all of them, so it is as right for a subscriber that asks later (what was
//! committed since comes in its next event) and keeps its subscribers in step.
//!
//! Invariants:
//! - An event's bytes hold their share of the fan-out budget (`registry::EVENT_BUDGET_KIB`),
//!   taken before the read (the most an event can take) and cut to its size once encoded,
//!   until the cache and every subscriber sending it let go of it: events in memory never
//!   exceed the budget, whatever the number of subscribers.
//! - At most `registry::READ_SLOTS` events are read at once; [`CACHED_EVENTS`] are kept.
//! - Two subscribers that share an event read exactly the same records: it is one value.
//! - An event built for a subscriber behind the tip moves it forward (`next > from`); one
//!   built at the tip (a heartbeat, no records) is never given to a subscriber behind it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore};

use super::types::SubscribeToShardEventOut;
use crate::api::error::{ApiError, ErrorKind};
use crate::api::eventstream;
use crate::api::kinesis::types::{ChildShardOut, RecordsOut};
use crate::api::protocol::Wire;
use crate::storage::Store;
use crate::streams::{Position, SequenceNumber, ShardMeta};

/// Most records in one event.
pub const MAX_EVENT_RECORDS: usize = 5_000;
/// About the most record bytes (data and keys) in one event; an event holds at least one
/// record whatever its size.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;
/// KiB an event may take encoded: base64 data and per-record JSON around it.
pub const MAX_EVENT_KIB: u32 =
    ((MAX_EVENT_BYTES * 4 / 3 + MAX_EVENT_RECORDS * 200) / 1024 + 64) as u32;
/// Events kept for subscribers that ask for them next.
pub const CACHED_EVENTS: usize = 16;

/// What tells two events apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventKey {
    pub shard_uid: u64,
    pub from: Position,
    pub wire: Wire,
    /// Whether the shard was closed when read (its last event carries ChildShards).
    pub closed: bool,
    /// Whether records were committed at or after `from` (else the event is empty).
    pub behind: bool,
}

/// One encoded event: the frame, where its subscriber goes on from, and whether it ends the
/// shard. Holds its share of the budget for as long as anyone holds it.
#[derive(Debug)]
pub struct Built {
    pub frame: Bytes,
    pub next: Position,
    pub shard_end: bool,
    _budget: OwnedSemaphorePermit,
}

type Cell = Arc<OnceCell<Result<Arc<Built>, ApiError>>>;

/// The last events built (see the module's invariants).
#[derive(Default)]
pub struct EventCache {
    entries: Mutex<VecDeque<(EventKey, Cell)>>,
}

impl EventCache {
    /// The event `job` describes: from the cache, or read and encoded now.
    pub async fn get(
        &self,
        job: EventJob,
        budget: &Arc<Semaphore>,
        read_slots: &Arc<Semaphore>,
    ) -> Result<Arc<Built>, ApiError> {
        let cell = {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            match entries.iter().find(|(k, _)| *k == job.key) {
                Some((_, cell)) => cell.clone(),
                None => {
                    if entries.len() >= CACHED_EVENTS {
                        entries.pop_front();
                    }
                    let cell = Cell::default();
                    entries.push_back((job.key, cell.clone()));
                    cell
                }
            }
        };
        cell.get_or_init(|| job.run(budget.clone(), read_slots.clone()))
            .await
            .clone()
    }
}

/// One event's read and encoding.
pub struct EventJob {
    pub key: EventKey,
    pub store: Store,
    pub content_type: &'static str,
    pub shard: ShardMeta,
    /// The shard's children, for the event that ends it.
    pub children: Vec<ChildShardOut>,
    /// The last committed position when the subscriber looked.
    pub tip: Position,
}

fn stopping() -> ApiError {
    ApiError::new(ErrorKind::InternalFailure, "The gateway is shutting down.")
}

impl EventJob {
    async fn run(
        self,
        budget: Arc<Semaphore>,
        read_slots: Arc<Semaphore>,
    ) -> Result<Arc<Built>, ApiError> {
        let mut permit = budget
            .acquire_many_owned(MAX_EVENT_KIB)
            .await
            .map_err(|_| stopping())?;
        let slot = read_slots.acquire_owned().await.map_err(|_| stopping())?;
        let (frame, next, shard_end) = tokio::task::spawn_blocking(move || self.build())
            .await
            .map_err(|e| {
            ApiError::new(ErrorKind::InternalFailure, format!("read task failed: {e}"))
        })??;
        drop(slot);
        let keep = frame.len().div_ceil(1024).max(1);
        drop(permit.split(permit.num_permits().saturating_sub(keep)));
        Ok(Arc::new(Built {
            frame,
            next,
            shard_end,
            _budget: permit,
        }))
    }

    /// Blocking: reads from `from` (nothing when past the tip) and encodes the event.
    fn build(self) -> Result<(Bytes, Position, bool), ApiError> {
        let EventKey {
            shard_uid,
            from,
            wire,
            ..
        } = self.key;
        let tip = self.tip;
        let records = if from <= tip {
            self.store
                .read(shard_uid, from, MAX_EVENT_RECORDS, MAX_EVENT_BYTES)?
                .records
        } else {
            Vec::new()
        };
        // Past the last record sent, or past the tip read up to; the continuation number is
        // the last position covered, so AFTER_SEQUENCE_NUMBER resumes exactly at `next`.
        let (next, covered) = match records.last() {
            Some(last) => (last.position.next(), last.position),
            None => (
                from.max(tip.next()),
                tip.max(Position(from.0.saturating_sub(1))),
            ),
        };
        let millis_behind = match records.last() {
            Some(last) if last.position < tip => {
                tip.millis().saturating_sub(last.position.millis())
            }
            _ => 0,
        };
        let shard_end = self.shard.closed.is_some_and(|c| next > c.ending);
        let event = SubscribeToShardEventOut {
            records: RecordsOut {
                shard_index: self.shard.index,
                records,
            },
            continuation_sequence_number: (!shard_end).then(|| {
                SequenceNumber {
                    shard_index: self.shard.index,
                    position: covered,
                }
                .to_string()
            }),
            millis_behind_latest: millis_behind,
            child_shards: shard_end.then_some(self.children),
        };
        let hint = event.records.json_size_hint() + 512;
        let payload = wire.encode_with_capacity(&event, hint)?;
        let frame = eventstream::event("SubscribeToShardEvent", self.content_type, payload)
            .map_err(|e| ApiError::new(ErrorKind::InternalFailure, e.to_string()))?;
        Ok((frame, next, shard_end))
    }
}
