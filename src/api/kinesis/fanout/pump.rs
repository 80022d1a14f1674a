//! The task behind one subscription: reads the shard from the starting position and pushes
//! `SubscribeToShardEvent`s as records commit, until the subscription's 5 minutes are up, the
//! end of a closed shard was sent, the client went away, a newer subscription took over, or
//! the gateway stops.
//!
//! Invariants:
//! - Events carry records in shard order without gaps or repeats: `position` only moves past
//!   what an event carried (or past the committed tip when there was nothing to carry).
//! - The task wakes on the shard's commit notification (`Store::subscribe`), so an event
//!   follows a commit by one read; reads run on the blocking pool, at most
//!   `registry::READ_SLOTS` at once, each bounded to [`MAX_EVENT_RECORDS`] records and
//!   about [`MAX_EVENT_BYTES`].
//! - An event is sent at least every [`HEARTBEAT`], with no records when there are none (as
//!   Kinesis does), so clients see the subscription alive and the connection is never idle.
//! - Nothing blocks the runtime; the channel to the body holds one event.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::time::Instant;

use super::registry::{Claim, Subscriptions};
use super::types::{ExceptionOut, InitialResponseOut, SubscribeToShardEventOut};
use crate::api::error::{ApiError, ErrorKind};
use crate::api::eventstream;
use crate::api::kinesis::hash_range_out;
use crate::api::kinesis::types::{ChildShardOut, RecordsOut};
use crate::api::protocol::{Wire, CBOR_1_1};
use crate::storage::Store;
use crate::streams::{shard_id, Position, SequenceNumber, ShardMeta, StreamConsumer, StreamMeta};

/// How long a subscription lasts (Kinesis: 5 minutes); then the stream ends cleanly.
pub const SUBSCRIPTION_LIFETIME: Duration = Duration::from_secs(300);
/// Longest time without an event.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// Most records in one event.
pub const MAX_EVENT_RECORDS: usize = 5_000;
/// About the most record bytes (data and keys) in one event; an event holds at least one
/// record whatever its size.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;
/// KiB an event may take encoded: base64 data and per-record JSON around it.
const MAX_EVENT_KIB: u32 = ((MAX_EVENT_BYTES * 4 / 3 + MAX_EVENT_RECORDS * 200) / 1024 + 64) as u32;

/// One subscription's task.
pub struct Pump {
    pub store: Store,
    pub subs: Arc<Subscriptions>,
    pub claim: Claim,
    pub wire: Wire,
    pub stream_uid: u64,
    pub shard: ShardMeta,
    pub consumer: StreamConsumer,
    pub consumer_arn: String,
    pub position: Position,
    pub tx: mpsc::Sender<(Bytes, OwnedSemaphorePermit)>,
    pub lifetime: Duration,
}

/// Why the stream ends.
enum End {
    /// Cleanly: the lifetime is up, the shard's end was sent, the gateway stops.
    Clean,
    /// The client is gone: nothing more can be sent.
    Gone,
    /// With an exception event.
    Error(ApiError),
}

/// The committed facts a loop turn works from.
struct Now {
    meta: Arc<StreamMeta>,
    shard: ShardMeta,
    tip: Position,
}

impl Pump {
    fn content_type(&self) -> &'static str {
        match self.wire {
            Wire::Json => "application/json",
            Wire::Cbor => CBOR_1_1,
        }
    }

    pub async fn run(mut self) {
        let end = self.serve().await;
        if let End::Error(error) = end {
            let payload = ExceptionOut {
                message: &error.message,
            };
            let framed = self.wire.encode(&payload).ok().and_then(|p| {
                eventstream::exception(error.kind.aws_type(), self.content_type(), p).ok()
            });
            if let Some(frame) = framed {
                let _ = self.send(frame).await;
            }
        }
    }

    async fn serve(&mut self) -> End {
        let deadline = Instant::now() + self.lifetime;
        let mut stop = self.subs.stopping();
        let initial = match self.wire.encode(&InitialResponseOut {}) {
            Ok(p) => eventstream::event("initial-response", self.content_type(), p),
            Err(e) => return End::Error(e),
        };
        match initial {
            Ok(frame) => {
                if self.send(frame).await.is_err() {
                    return End::Gone;
                }
            }
            Err(e) => return End::Error(internal(e)),
        }
        let Some(mut commits) = self.store.subscribe(self.shard.uid) else {
            return End::Error(self.shard_gone());
        };
        let mut last_sent: Option<Instant> = None;
        loop {
            if *stop.borrow() || Instant::now() >= deadline {
                return End::Clean;
            }
            if taken_over(&self.claim) {
                return End::Error(ApiError::new(
                    ErrorKind::ResourceInUse,
                    format!(
                        "A newer subscription of consumer {} to shard {} took this one over.",
                        self.consumer_arn,
                        self.shard.id()
                    ),
                ));
            }
            commits.borrow_and_update();
            let now = match self.committed() {
                Ok(now) => now,
                Err(e) => return End::Error(e),
            };
            let behind = self.position <= now.tip;
            let finished = now.shard.closed.is_some_and(|c| self.position > c.ending);
            let heartbeat = last_sent.is_none_or(|at| at.elapsed() >= HEARTBEAT);
            if behind || finished || heartbeat {
                match self.send_event(&now).await {
                    Ok(Sent::More) => {
                        last_sent = Some(Instant::now());
                        if self.position <= now.tip {
                            continue;
                        }
                    }
                    Ok(Sent::ShardEnd) => return End::Clean,
                    Err(end) => return end,
                }
            }
            let wake = last_sent.map_or(deadline, |at| (at + HEARTBEAT).min(deadline));
            tokio::select! {
                biased;
                _ = stop.changed() => return End::Clean,
                () = self.claim.takeover.notified() => {
                    return End::Error(ApiError::new(
                        ErrorKind::ResourceInUse,
                        format!("A newer subscription of consumer {} to shard {} took this one over.", self.consumer_arn, self.shard.id()),
                    ));
                }
                () = self.tx.closed() => return End::Gone,
                changed = commits.changed() => {
                    if changed.is_err() {
                        // The shard's live facts were replaced (the writer reloaded) or
                        // removed (the stream was deleted): follow the new ones, if any.
                        match self.store.subscribe(self.shard.uid) {
                            Some(fresh) => commits = fresh,
                            None => return End::Error(self.shard_gone()),
                        }
                    }
                }
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// The stream, shard and tip as committed now, or why the subscription cannot go on.
    fn committed(&self) -> Result<Now, ApiError> {
        let catalog = self.store.catalog();
        let meta = catalog
            .stream_by_uid(self.stream_uid)
            .cloned()
            .ok_or_else(|| self.shard_gone())?;
        if !meta.consumers.contains(&self.consumer) {
            return Err(ApiError::not_found(format!(
                "Consumer {} was deregistered.",
                self.consumer_arn
            )));
        }
        let shard = meta
            .shard(self.shard.index)
            .cloned()
            .ok_or_else(|| self.shard_gone())?;
        let tip = catalog.live(shard.uid).map_or(shard.starting, |l| l.last());
        Ok(Now { meta, shard, tip })
    }

    fn shard_gone(&self) -> ApiError {
        ApiError::not_found(format!(
            "Shard {} of consumer {}'s stream no longer exists (the stream was deleted or the shard passed its retention period).",
            self.shard.id(),
            self.consumer_arn
        ))
    }

    /// Reads what is committed from `position` (nothing when caught up), sends it as one
    /// event and moves `position` past it.
    async fn send_event(&mut self, now: &Now) -> Result<Sent, End> {
        let permit = self
            .subs
            .budget
            .clone()
            .acquire_many_owned(MAX_EVENT_KIB)
            .await
            .map_err(|_| End::Clean)?;
        let slot = self
            .subs
            .read_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| End::Clean)?;
        let job = EventJob {
            store: self.store.clone(),
            wire: self.wire,
            content_type: self.content_type(),
            shard: now.shard.clone(),
            children: children(&now.meta, now.shard.index),
            from: self.position,
            tip: now.tip,
        };
        let built = tokio::task::spawn_blocking(move || job.build())
            .await
            .map_err(|e| {
                End::Error(ApiError::new(
                    ErrorKind::InternalFailure,
                    format!("read task failed: {e}"),
                ))
            })?;
        drop(slot);
        let built = built.map_err(End::Error)?;
        let mut permit = permit;
        let keep = (built.frame.len().div_ceil(1024)).max(1);
        if let Some(extra) = permit.split(permit.num_permits().saturating_sub(keep)) {
            drop(extra);
        }
        self.send_with(built.frame, permit)
            .await
            .map_err(|()| End::Gone)?;
        self.position = built.next;
        Ok(if built.shard_end {
            Sent::ShardEnd
        } else {
            Sent::More
        })
    }

    async fn send(&self, frame: Bytes) -> Result<(), ()> {
        let kib = (frame.len().div_ceil(1024)).max(1) as u32;
        let permit = self
            .subs
            .budget
            .clone()
            .acquire_many_owned(kib)
            .await
            .map_err(|_| ())?;
        self.send_with(frame, permit).await
    }

    async fn send_with(&self, frame: Bytes, permit: OwnedSemaphorePermit) -> Result<(), ()> {
        self.tx.send((frame, permit)).await.map_err(|_| ())
    }
}

enum Sent {
    More,
    ShardEnd,
}

fn taken_over(claim: &Claim) -> bool {
    use futures_util::FutureExt;
    claim.takeover.notified().now_or_never().is_some()
}

fn internal(e: eventstream::FrameError) -> ApiError {
    ApiError::new(ErrorKind::InternalFailure, e.to_string())
}

fn children(meta: &StreamMeta, index: u64) -> Vec<ChildShardOut> {
    meta.children_of(index)
        .map(|child| ChildShardOut {
            shard_id: child.id(),
            parent_shards: [child.parent, child.adjacent_parent]
                .into_iter()
                .flatten()
                .map(shard_id)
                .collect(),
            hash_key_range: hash_range_out(child.range),
        })
        .collect()
}

/// One event's read and encoding, on the blocking pool.
struct EventJob {
    store: Store,
    wire: Wire,
    content_type: &'static str,
    shard: ShardMeta,
    children: Vec<ChildShardOut>,
    from: Position,
    tip: Position,
}

struct Built {
    frame: Bytes,
    next: Position,
    shard_end: bool,
}

impl EventJob {
    fn build(self) -> Result<Built, ApiError> {
        let records = if self.from <= self.tip {
            self.store
                .read(
                    self.shard.uid,
                    self.from,
                    MAX_EVENT_RECORDS,
                    MAX_EVENT_BYTES,
                )?
                .records
        } else {
            Vec::new()
        };
        // Past the last record sent, or past the tip read up to.
        let (next, continuation) = match records.last() {
            Some(last) => (last.position.next(), last.position),
            None => {
                let next = self.from.max(self.tip.next());
                (next, self.tip.max(Position(self.from.0.saturating_sub(1))))
            }
        };
        let millis_behind = match records.last() {
            Some(last) if last.position < self.tip => {
                self.tip.millis().saturating_sub(last.position.millis())
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
                    position: continuation,
                }
                .to_string()
            }),
            millis_behind_latest: millis_behind,
            child_shards: shard_end.then_some(self.children),
        };
        let hint = event.records.json_size_hint() + 512;
        let payload = self.wire.encode_with_capacity(&event, hint)?;
        let frame = eventstream::event("SubscribeToShardEvent", self.content_type, payload)
            .map_err(internal)?;
        Ok(Built {
            frame,
            next,
            shard_end,
        })
    }
}
