//! The task behind one subscription: reads the shard from the starting position and pushes
//! `SubscribeToShardEvent`s as records commit, until the subscription's 5 minutes are up, the
//! end of a closed shard was sent, the client went away, a newer subscription took over, or
//! the gateway stops.
//!
//! Invariants:
//! - Events carry records in shard order without gaps or repeats: `position` only moves past
//!   what an event carried (or past the committed tip when there was nothing to carry).
//! - The task wakes on the shard's commit notification (`Store::subscribe`), so an event
//!   follows a commit by one read, shared with the subscribers at the same place
//!   (`events`).
//! - An event is sent at least every [`HEARTBEAT`], with no records when there are none, so
//!   that clients see the subscription alive (and learn the continuation number).
//! - Nothing blocks the runtime; the channel to the body holds one event.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::events::{Built, EventJob, EventKey};
use super::registry::{Claim, Subscriptions};
use super::types::{ExceptionOut, InitialResponseOut};
use crate::api::error::{ApiError, ErrorKind};
use crate::api::eventstream;
use crate::api::kinesis::hash_range_out;
use crate::api::kinesis::types::ChildShardOut;
use crate::api::protocol::{Wire, CBOR_1_1};
use crate::storage::Store;
use crate::streams::{shard_id, Position, ShardMeta, StreamConsumer, StreamMeta};

/// How long a subscription lasts (Kinesis: 5 minutes); then the stream ends cleanly.
pub const SUBSCRIPTION_LIFETIME: Duration = Duration::from_secs(300);
/// Longest time without an event.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// A frame for the body, with the shared event it comes from (which holds its memory's
/// share of the budget until the connection took it).
pub type Outgoing = (Bytes, Option<Arc<Built>>);

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
    pub tx: mpsc::Sender<Outgoing>,
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
        let job = EventJob {
            key: EventKey {
                shard_uid: now.shard.uid,
                from: self.position,
                wire: self.wire,
                closed: now.shard.closed.is_some(),
                behind: self.position <= now.tip,
            },
            tip: now.tip,
            store: self.store.clone(),
            content_type: self.content_type(),
            shard: now.shard.clone(),
            // Only the event that ends a closed shard carries them.
            children: if now.shard.closed.is_some() {
                children(&now.meta, now.shard.index)
            } else {
                Vec::new()
            },
        };
        let built = self
            .subs
            .events
            .get(job, &self.subs.budget, &self.subs.read_slots)
            .await
            .map_err(End::Error)?;
        self.position = built.next;
        let shard_end = built.shard_end;
        self.tx
            .send((built.frame.clone(), Some(built)))
            .await
            .map_err(|_| End::Gone)?;
        Ok(if shard_end {
            Sent::ShardEnd
        } else {
            Sent::More
        })
    }

    /// Sends a small frame of this subscription's own (its initial response, an exception).
    async fn send(&self, frame: Bytes) -> Result<(), ()> {
        self.tx.send((frame, None)).await.map_err(|_| ())
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
