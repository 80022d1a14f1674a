//! The active SubscribeToShard subscriptions: one per (consumer, shard), at most
//! [`MAX_SUBSCRIPTIONS`] in all, and the signal that ends them all when the gateway stops.
//!
//! Invariants:
//! - An entry exists exactly while its [`Claim`] lives (the pump task holds it; dropping it,
//!   however the task ends, removes the entry unless a newer subscription took it over).
//! - As in Kinesis, a second subscription for the same consumer and shard within
//!   [`TAKEOVER_AFTER`] of the first is refused (ResourceInUseException); a later one takes
//!   over: the older one is told to end (with ResourceInUseException in its stream).
//! - Memory: an event's bytes hold permits of [`Subscriptions::budget`] from before its read
//!   until the cache and the HTTP layer let go of it, so encoded events never exceed
//!   [`EVENT_BUDGET_KIB`] whatever the number of subscribers (`events`); [`READ_SLOTS`]
//!   reads run at once on the blocking pool.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify, Semaphore};

use crate::api::error::{ApiError, ErrorKind};

/// Subscriptions served at once, all consumers and shards together. Each holds an HTTP
/// stream, a task and at most two events in flight.
pub const MAX_SUBSCRIPTIONS: usize = 1024;
/// A subscription younger than this cannot be taken over (Kinesis: 5 seconds).
pub const TAKEOVER_AFTER: Duration = Duration::from_secs(5);
/// KiB of encoded events in flight (built, queued or being handed to the connection).
pub const EVENT_BUDGET_KIB: usize = 64 * 1024;
/// Subscription reads on the blocking pool at once.
pub const READ_SLOTS: usize = 4;

type Key = (String, u64);

struct Active {
    id: u64,
    started: Instant,
    takeover: Arc<Notify>,
}

/// What the fan-out operations share (in `KinesisState`).
pub struct Subscriptions {
    active: Mutex<HashMap<Key, Active>>,
    next_id: AtomicU64,
    stop: watch::Sender<bool>,
    /// KiB of events in flight (see the invariants).
    pub budget: Arc<Semaphore>,
    /// Reads of subscriptions running on the blocking pool.
    pub read_slots: Arc<Semaphore>,
    /// Events built lately, shared by the subscribers that need them.
    pub events: super::events::EventCache,
}

impl Default for Subscriptions {
    fn default() -> Self {
        Subscriptions {
            active: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            stop: watch::channel(false).0,
            budget: Arc::new(Semaphore::new(EVENT_BUDGET_KIB)),
            read_slots: Arc::new(Semaphore::new(READ_SLOTS)),
            events: Default::default(),
        }
    }
}

/// An active subscription's place in the registry.
pub struct Claim {
    registry: Arc<Subscriptions>,
    key: Key,
    id: u64,
    /// Notified when a newer subscription took this one over.
    pub takeover: Arc<Notify>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut active = self.registry.lock();
        if active.get(&self.key).is_some_and(|a| a.id == self.id) {
            active.remove(&self.key);
        }
    }
}

impl Subscriptions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Active>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a subscription of `consumer_arn` to the shard `shard_uid` (`shard_id` for
    /// messages), or says why it cannot be served.
    pub fn claim(
        self: &Arc<Self>,
        consumer_arn: &str,
        shard_uid: u64,
        shard_id: &str,
    ) -> Result<Claim, ApiError> {
        if *self.stop.borrow() {
            return Err(ApiError::new(
                ErrorKind::InternalFailure,
                "The gateway is shutting down.",
            ));
        }
        let key = (consumer_arn.to_string(), shard_uid);
        let mut active = self.lock();
        match active.get(&key) {
            Some(old) if old.started.elapsed() < TAKEOVER_AFTER => {
                return Err(ApiError::new(
                    ErrorKind::ResourceInUse,
                    format!("Another active subscription exists for this consumer: {consumer_arn} on shard {shard_id}. A new subscription can take it over 5 seconds after it started."),
                ))
            }
            Some(old) => old.takeover.notify_one(),
            None if active.len() >= MAX_SUBSCRIPTIONS => {
                return Err(ApiError::new(
                    ErrorKind::LimitExceeded,
                    format!("The gateway serves at most {MAX_SUBSCRIPTIONS} SubscribeToShard subscriptions at once; retry when one ends."),
                ))
            }
            None => {}
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let takeover = Arc::new(Notify::new());
        active.insert(
            key.clone(),
            Active {
                id,
                started: Instant::now(),
                takeover: takeover.clone(),
            },
        );
        Ok(Claim {
            registry: self.clone(),
            key,
            id,
            takeover,
        })
    }

    /// How many subscriptions are active.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ends every subscription (their streams close cleanly) and refuses new ones: the
    /// gateway is stopping.
    pub fn stop_all(&self) {
        self.stop.send_replace(true);
    }

    /// A receiver that turns true when the gateway stops.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_subscription_per_consumer_and_shard() {
        let subs = Arc::new(Subscriptions::default());
        let first = subs.claim("arn-a", 1, "shardId-000000000000").unwrap();
        let e = subs
            .claim("arn-a", 1, "shardId-000000000000")
            .err()
            .unwrap();
        assert_eq!(e.kind, ErrorKind::ResourceInUse);
        let other_shard = subs.claim("arn-a", 2, "shardId-000000000001").unwrap();
        let other_consumer = subs.claim("arn-b", 1, "shardId-000000000000").unwrap();
        assert_eq!(subs.len(), 3);
        drop(first);
        let again = subs.claim("arn-a", 1, "shardId-000000000000").unwrap();
        assert_eq!(subs.len(), 3);
        drop((again, other_shard, other_consumer));
        assert!(subs.is_empty());
    }

    #[test]
    fn an_old_subscription_is_taken_over() {
        let subs = Arc::new(Subscriptions::default());
        let old = subs.claim("arn-a", 1, "s").unwrap();
        // Age it past the takeover time.
        subs.lock()
            .get_mut(&("arn-a".to_string(), 1))
            .unwrap()
            .started = Instant::now() - TAKEOVER_AFTER;
        let new = subs.claim("arn-a", 1, "s").unwrap();
        let told = futures_util::FutureExt::now_or_never(old.takeover.notified());
        assert!(told.is_some(), "the old subscription is told to end");
        // The old one ending does not remove the new one's entry.
        drop(old);
        assert_eq!(subs.len(), 1);
        drop(new);
        assert!(subs.is_empty());
    }

    #[test]
    fn stopping_refuses_new_subscriptions() {
        let subs = Arc::new(Subscriptions::default());
        let rx = subs.stopping();
        subs.stop_all();
        assert!(*rx.borrow());
        assert!(subs.claim("arn-a", 1, "s").is_err());
    }
}
