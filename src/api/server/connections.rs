//! The API listener's connections: how many there are, which of them are serving a request,
//! and which to close when a slot is needed or a client is too slow.
//!
//! Invariants:
//! - A connection is in the registry from accept until its task ends (the [`Registered`] guard
//!   removes it), so `len()` counts the file descriptors the API holds.
//! - A connection whose `requests` count is above zero is never closed by the registry (not
//!   by eviction, the reaper or shutdown): a request that reached a handler always gets its
//!   answer. Closing wins only against idle connections, and [`Activity::begin_request`]
//!   refuses a request on a connection already marked closed (the CLOSED bit and the count
//!   share one atomic, so the two cannot both succeed).
//! - Idle means: no request being served. An idle connection that started sending a request
//!   head (or never sent one since it was accepted) is *waiting for a head* and gets
//!   [`Timeouts::header`]; one that sent nothing since its last answer gets [`Timeouts::idle`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Set in [`Activity::state`] once the registry decided to close the connection.
const CLOSED: u64 = 1 << 63;

/// How long a client may take, measured by the reaper.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From accept (or from the first byte after an answer) to a complete request head.
    pub header: Duration,
    /// An open connection without a request in progress and without a byte sent.
    pub idle: Duration,
    /// An answer that the client does not read: no write progress for this long closes the
    /// connection, even with a request in progress.
    pub send: Duration,
}

/// What the registry asks of a connection's task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    None = 0,
    /// Finish the requests in progress, take no new ones (HTTP/2 GOAWAY), then close.
    Graceful = 1,
    /// Close now (idle connection: evicted, timed out, or the server is stopping).
    Close = 2,
}

/// One connection's state, shared by its task, its I/O wrapper, its requests and the reaper.
pub struct Activity {
    /// Requests in progress (low bits) and [`CLOSED`].
    state: AtomicU64,
    /// Milliseconds since the registry's epoch when the connection last became idle.
    idle_since: AtomicU64,
    /// Milliseconds since the epoch of the first byte of a request head still being read;
    /// 0 = none.
    head_since: AtomicU64,
    /// HTTP/2: bytes between requests are frames (pings, window updates), not a head.
    http2: AtomicBool,
    /// Requests begun on this connection so far.
    started: AtomicU64,
    /// Milliseconds since the epoch since which a write waits for the client to read;
    /// 0 = writes are going through.
    write_blocked_since: AtomicU64,
    command: AtomicU8,
    /// Set once a graceful stop was asked for (it is asked once).
    graceful: AtomicBool,
    wake: Notify,
    epoch: Instant,
}

impl Activity {
    fn new(epoch: Instant) -> Activity {
        let now = millis_since(epoch);
        Activity {
            state: AtomicU64::new(0),
            idle_since: AtomicU64::new(now),
            // A new connection exists to send a request: its head is due now.
            head_since: AtomicU64::new(now.max(1)),
            http2: AtomicBool::new(false),
            started: AtomicU64::new(0),
            write_blocked_since: AtomicU64::new(0),
            command: AtomicU8::new(Command::None as u8),
            graceful: AtomicBool::new(false),
            wake: Notify::new(),
            epoch,
        }
    }

    fn now(&self) -> u64 {
        millis_since(self.epoch)
    }

    /// A request head arrived and its handler is about to run. `None` when the connection is
    /// being closed: the request must be refused without running it.
    pub fn begin_request(self: &Arc<Self>, http2: bool) -> Option<RequestGuard> {
        if http2 {
            self.http2.store(true, Ordering::Relaxed);
        }
        let before = self.state.fetch_add(1, Ordering::AcqRel);
        if before & CLOSED != 0 {
            self.state.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        self.head_since.store(0, Ordering::Relaxed);
        self.started.fetch_add(1, Ordering::AcqRel);
        Some(RequestGuard(self.clone()))
    }

    /// The I/O wrapper read `n` bytes.
    pub fn on_read(&self, n: usize) {
        if n == 0 || self.http2.load(Ordering::Relaxed) {
            return;
        }
        if self.state.load(Ordering::Acquire) & !CLOSED == 0
            && self.head_since.load(Ordering::Relaxed) == 0
        {
            self.head_since.store(self.now().max(1), Ordering::Relaxed);
        }
    }

    /// How many requests began on this connection so far.
    pub fn requests_started(&self) -> u64 {
        self.started.load(Ordering::Acquire)
    }

    /// Whether this connection speaks HTTP/2 (known from its first request).
    pub fn is_http2(&self) -> bool {
        self.http2.load(Ordering::Relaxed)
    }

    /// The I/O wrapper's writes: `blocked` when the client does not read (the socket is full).
    pub fn on_write(&self, blocked: bool) {
        if blocked {
            if self.write_blocked_since.load(Ordering::Relaxed) == 0 {
                self.write_blocked_since
                    .store(self.now().max(1), Ordering::Relaxed);
            }
        } else {
            self.write_blocked_since.store(0, Ordering::Relaxed);
        }
    }

    /// Whether a request is being served now.
    pub fn busy(&self) -> bool {
        self.state.load(Ordering::Acquire) & !CLOSED != 0
    }

    /// Marks the connection closed if it is idle and its last answer went out; true when it
    /// was.
    fn close_if_idle(&self) -> bool {
        if self.write_blocked_since.load(Ordering::Relaxed) != 0 {
            return false;
        }
        let closed = self
            .state
            .compare_exchange(0, CLOSED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if closed {
            self.command(Command::Close);
        }
        closed
    }

    /// Closes the connection whatever it is doing (a client that does not read its answer).
    fn close_now(&self) {
        self.state.fetch_or(CLOSED, Ordering::AcqRel);
        self.command(Command::Close);
    }

    fn command(&self, command: Command) {
        self.command.fetch_max(command as u8, Ordering::AcqRel);
        self.wake.notify_one();
    }

    /// Waits for the next command from the registry.
    pub async fn next_command(&self) -> Command {
        loop {
            match self.command.swap(Command::None as u8, Ordering::AcqRel) {
                1 => return Command::Graceful,
                2 => return Command::Close,
                _ => self.wake.notified().await,
            }
        }
    }
}

/// Held while a request is served (until its response body is finished or dropped).
pub struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let activity = &self.0;
        activity.idle_since.store(activity.now(), Ordering::Relaxed);
        activity.state.fetch_sub(1, Ordering::AcqRel);
    }
}

fn millis_since(epoch: Instant) -> u64 {
    epoch.elapsed().as_millis() as u64
}

/// Why the registry closed a connection (for the log and the counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    SlowHeader,
    Idle,
    SlowReader,
}

/// An idle connection is not evicted sooner than this after its accept (so that a flood that
/// re-opens what it loses cannot make the gateway accept and close in a loop) or after its
/// last answer (which may still be on its way out of hyper's buffers).
const EVICTION_GRACE_MS: u64 = 250;

/// An eviction candidate's order: tier, since (milliseconds since the epoch), id.
type Rank = (u8, u64, u64);

/// The API listener's open connections.
pub struct Registry {
    connections: Mutex<HashMap<u64, Arc<Activity>>>,
    next_id: AtomicU64,
    /// Notified when a connection goes away.
    changed: Notify,
    epoch: Instant,
    stopping: AtomicBool,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            connections: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            changed: Notify::new(),
            epoch: Instant::now(),
            stopping: AtomicBool::new(false),
        }
    }
}

/// A connection's place in the registry; removes it when dropped.
pub struct Registered {
    registry: Arc<Registry>,
    id: u64,
    pub activity: Arc<Activity>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
        self.registry.changed.notify_waiters();
    }
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Activity>>> {
        // A panic while holding this lock aborts the process (panic = "abort"), so a
        // poisoned lock only happens in tests; the map is still consistent then.
        self.connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a connection that was just accepted. During shutdown it is told to close at once.
    pub fn register(self: &Arc<Self>) -> Registered {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity::new(self.epoch));
        self.lock().insert(id, activity.clone());
        if self.stopping.load(Ordering::Acquire) {
            activity.close_if_idle();
        }
        Registered {
            registry: self.clone(),
            id,
            activity,
        }
    }

    /// Closes the idle connection that is least likely to be a working client: one that never
    /// completed a request (oldest first: a new client is the youngest), else one sending a
    /// request head, else the one idle longest. Every connection gets [`EVICTION_GRACE_MS`]
    /// first (since its accept, or since its last answer, which may still be leaving hyper's
    /// buffers), and while never-served connections exist, however young, connections that
    /// served a request are kept: a flood that re-opens every connection it loses then costs
    /// at most `max_connections` accepts per grace, waits in the kernel's backlog otherwise,
    /// and does not push working clients out. False when none can be closed (yet).
    pub fn evict_one(&self) -> bool {
        let now = millis_since(self.epoch);
        // (tier, since): lower goes first.
        let rank = |a: &Activity| -> Option<(u8, u64)> {
            // Busy, or already closed (its task is on its way out of the registry).
            if a.state.load(Ordering::Acquire) != 0 {
                return None;
            }
            let head = a.head_since.load(Ordering::Relaxed);
            if a.requests_started() == 0 {
                // Never served: `head_since` still holds the accept time.
                return Some((0, head));
            }
            Some(match head {
                0 => (2, a.idle_since.load(Ordering::Relaxed)),
                head => (1, head),
            })
        };
        let candidates: Vec<Arc<Activity>> = {
            let map = self.lock();
            // Ties (same millisecond) go by accept order: ids are handed out in that order.
            let mut ranked: Vec<(Rank, &Arc<Activity>)> = map
                .iter()
                .filter_map(|(id, a)| rank(a).map(|(tier, since)| ((tier, since, *id), a)))
                .collect();
            ranked.sort_by_key(|(r, _)| *r);
            let first_tier = ranked.first().map(|((tier, _, _), _)| *tier);
            ranked
                .into_iter()
                .take_while(|((tier, since, _), _)| {
                    Some(*tier) == first_tier && now.saturating_sub(*since) >= EVICTION_GRACE_MS
                })
                .take(4)
                .map(|(_, a)| a.clone())
                .collect()
        };
        candidates.iter().any(|a| a.close_if_idle())
    }

    /// Closes idle connections that overstayed their timeout; returns how many, by reason.
    pub fn reap(&self, timeouts: Timeouts) -> Vec<Reason> {
        let now = millis_since(self.epoch);
        let header = timeouts.header.as_millis() as u64;
        let idle = timeouts.idle.as_millis() as u64;
        let send = timeouts.send.as_millis() as u64;
        let activities: Vec<Arc<Activity>> = self.lock().values().cloned().collect();
        let mut reaped = Vec::new();
        for a in activities {
            let blocked = a.write_blocked_since.load(Ordering::Relaxed);
            if blocked != 0 && now.saturating_sub(blocked) >= send {
                a.close_now();
                reaped.push(Reason::SlowReader);
                continue;
            }
            if a.busy() {
                continue;
            }
            let head = a.head_since.load(Ordering::Relaxed);
            let reason = if head != 0 && now.saturating_sub(head) >= header {
                Reason::SlowHeader
            } else if now.saturating_sub(a.idle_since.load(Ordering::Relaxed)) >= idle {
                Reason::Idle
            } else {
                continue;
            };
            if a.close_if_idle() {
                reaped.push(reason);
            }
        }
        reaped
    }

    /// Stop: idle connections close now, busy ones finish their requests and then close.
    pub fn shutdown(&self) {
        self.stopping.store(true, Ordering::Release);
        let activities: Vec<Arc<Activity>> = self.lock().values().cloned().collect();
        for a in activities {
            if !a.close_if_idle() && !a.graceful.swap(true, Ordering::AcqRel) {
                a.command(Command::Graceful);
            }
        }
    }

    /// Waits until a connection goes away or `timeout` passes.
    pub async fn changed(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.changed.notified()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeouts() -> Timeouts {
        Timeouts {
            header: Duration::from_millis(50),
            idle: Duration::from_millis(200),
            send: Duration::from_millis(100),
        }
    }

    #[test]
    fn a_busy_connection_is_never_closed() {
        let registry = Arc::new(Registry::default());
        let conn = registry.register();
        let guard = conn.activity.begin_request(false).expect("open");
        std::thread::sleep(Duration::from_millis(250));
        assert!(registry.reap(timeouts()).is_empty());
        assert!(!registry.evict_one());
        registry.shutdown();
        assert_eq!(
            conn.activity.command.load(Ordering::Relaxed),
            Command::Graceful as u8
        );
        drop(guard);
        // Once idle (and past the grace for its answer to leave), it can be closed.
        std::thread::sleep(Duration::from_millis(EVICTION_GRACE_MS + 10));
        assert!(registry.evict_one());
        assert!(conn.activity.begin_request(false).is_none());
    }

    #[test]
    fn connections_that_never_served_a_request_go_first() {
        let registry = Arc::new(Registry::default());
        let keep_alive = registry.register();
        // A finished request: idle, no byte since.
        drop(keep_alive.activity.begin_request(false));
        std::thread::sleep(Duration::from_millis(EVICTION_GRACE_MS + 10));
        let slow = registry.register();
        slow.activity.on_read(10);
        let fresh = registry.register();
        // Young never-served connections are not closed, and they shield the keep-alive
        // connection (which is past its grace): the new connection waits instead.
        assert!(!registry.evict_one());
        std::thread::sleep(Duration::from_millis(EVICTION_GRACE_MS + 10));
        // Then the never-served ones go first, oldest first.
        assert!(registry.evict_one());
        assert!(
            slow.activity.begin_request(false).is_none(),
            "oldest unserved first"
        );
        assert!(registry.evict_one());
        assert!(fresh.activity.begin_request(false).is_none());
        assert!(registry.evict_one());
        assert!(keep_alive.activity.begin_request(false).is_none());
        assert!(!registry.evict_one());
    }

    #[test]
    fn a_connection_that_just_answered_gets_a_grace() {
        let registry = Arc::new(Registry::default());
        let conn = registry.register();
        drop(conn.activity.begin_request(false));
        assert!(!registry.evict_one(), "its answer may still be leaving");
        std::thread::sleep(Duration::from_millis(EVICTION_GRACE_MS + 10));
        assert!(registry.evict_one());
    }

    #[test]
    fn reaper_separates_slow_heads_from_idle_connections() {
        let registry = Arc::new(Registry::default());
        let fresh = registry.register(); // never sent a byte: head due
        let idle = registry.register();
        drop(idle.activity.begin_request(false));
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(registry.reap(timeouts()), vec![Reason::SlowHeader]);
        assert!(fresh.activity.begin_request(false).is_none());
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(registry.reap(timeouts()), vec![Reason::Idle]);
        assert!(idle.activity.begin_request(false).is_none());
    }

    #[test]
    fn http2_frames_between_requests_are_not_a_head() {
        let registry = Arc::new(Registry::default());
        let conn = registry.register();
        drop(conn.activity.begin_request(true));
        conn.activity.on_read(17); // a PING
        std::thread::sleep(Duration::from_millis(80));
        assert!(registry.reap(timeouts()).is_empty());
    }

    #[test]
    fn a_client_that_does_not_read_is_closed_even_when_busy() {
        let registry = Arc::new(Registry::default());
        let conn = registry.register();
        let _guard = conn.activity.begin_request(false).expect("open");
        conn.activity.on_write(true);
        std::thread::sleep(Duration::from_millis(30));
        conn.activity.on_write(false); // progress resets the clock
        conn.activity.on_write(true);
        assert!(registry.reap(timeouts()).is_empty());
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(registry.reap(timeouts()), vec![Reason::SlowReader]);
        assert!(conn.activity.begin_request(false).is_none());
    }

    #[test]
    fn dropping_the_registration_frees_the_slot() {
        let registry = Arc::new(Registry::default());
        let a = registry.register();
        let b = registry.register();
        assert_eq!(registry.len(), 2);
        drop(a);
        drop(b);
        assert!(registry.is_empty());
    }
}
