//! The shared bandwidth cap for metered links: a token bucket (`[delivery] max_bandwidth`
//! bytes/s) that delivery streams draw from before each send, lower `priority` first. A send
//! larger than the bucket goes out and puts the bucket in debt, so every send is possible and
//! the average rate still holds.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// At most this much unused capacity is saved up (seconds of the rate).
const BURST_SECONDS: f64 = 1.0;
/// How often a waiting sender looks again.
const POLL: Duration = Duration::from_millis(50);

pub struct Bandwidth {
    /// Bytes per second; 0 = unlimited.
    rate: u64,
    state: Mutex<BucketState>,
}

struct BucketState {
    /// Bytes that may be sent now; negative = debt.
    available: f64,
    refilled: Instant,
    /// Senders waiting, per priority (index 1..=10).
    waiting: [u32; 11],
}

impl Bandwidth {
    pub fn new(rate: u64) -> Bandwidth {
        Bandwidth {
            rate,
            state: Mutex::new(BucketState {
                available: rate as f64 * BURST_SECONDS,
                refilled: Instant::now(),
                waiting: [0; 11],
            }),
        }
    }

    pub fn is_limited(&self) -> bool {
        self.rate > 0
    }

    /// Waits until `bytes` may be sent by a delivery stream of `priority` (1 first).
    /// Cancel-safe: a wait that is dropped (its task aborted, a camera reloaded) stops
    /// counting as waiting, so it never holds back lower priorities.
    pub async fn acquire(&self, priority: u8, bytes: u64) {
        if self.rate == 0 {
            return;
        }
        let priority = usize::from(priority.clamp(1, 10));
        let _waiter = Waiter::new(self, priority);
        loop {
            let wait = self.with_state(|s| {
                let now = Instant::now();
                let rate = self.rate as f64;
                s.available = (s.available + now.duration_since(s.refilled).as_secs_f64() * rate)
                    .min(rate * BURST_SECONDS);
                s.refilled = now;
                let ahead = s.waiting[1..priority].iter().any(|&n| n > 0);
                if !ahead && s.available >= 0.0 {
                    s.available -= bytes as f64;
                    None
                } else if ahead {
                    Some(POLL)
                } else {
                    Some(Duration::from_secs_f64(-s.available / rate).clamp(POLL, POLL * 20))
                }
            });
            match wait {
                // Returning drops the waiter, which takes it off the count.
                None => return,
                Some(wait) => tokio::time::sleep(wait).await,
            }
        }
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut BucketState) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// One sender counted in `waiting` for as long as it exists: dropped when the send may go or
/// when the waiting future is cancelled.
struct Waiter<'a> {
    bandwidth: &'a Bandwidth,
    priority: usize,
}

impl<'a> Waiter<'a> {
    fn new(bandwidth: &'a Bandwidth, priority: usize) -> Waiter<'a> {
        bandwidth.with_state(|s| s.waiting[priority] += 1);
        Waiter {
            bandwidth,
            priority,
        }
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let priority = self.priority;
        self.bandwidth
            .with_state(|s| s.waiting[priority] = s.waiting[priority].saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn average_rate_holds() {
        let bw = Bandwidth::new(10_000);
        let start = tokio::time::Instant::now();
        for _ in 0..10 {
            bw.acquire(5, 5_000).await;
        }
        // 50 kB at 10 kB/s with a 10 kB burst: about 4 s.
        let took = start.elapsed();
        assert!(took >= Duration::from_secs(3), "{took:?}");
        assert!(took <= Duration::from_secs(6), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn lower_priority_number_goes_first() {
        let bw = std::sync::Arc::new(Bandwidth::new(1_000));
        bw.acquire(5, 5_000).await; // debt: the next sends wait
        let order = std::sync::Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (priority, delay) in [(9u8, 0u64), (1, 10)] {
            let (bw, order) = (bw.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(delay)).await;
                bw.acquire(priority, 100).await;
                order.lock().unwrap().push(priority);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![1, 9]);
    }

    /// A waiting `acquire` that is cancelled (a camera reload drops its upload task) must not
    /// stay counted as waiting: lower priorities would wait for it forever.
    #[tokio::test(start_paused = true)]
    async fn a_cancelled_wait_does_not_hold_back_lower_priorities() {
        let bw = Bandwidth::new(1_000);
        bw.acquire(5, 5_000).await; // debt: the next sends wait
        let cancelled = tokio::time::timeout(Duration::from_millis(100), bw.acquire(1, 100)).await;
        assert!(cancelled.is_err(), "the priority 1 send had to wait");
        assert_eq!(bw.with_state(|s| s.waiting), [0; 11]);
        // 5 kB of debt at 1 kB/s: about 5 s; without the guard it never goes.
        tokio::time::timeout(Duration::from_secs(60), bw.acquire(9, 100))
            .await
            .expect("a lower priority went after the cancelled wait");
    }

    #[tokio::test]
    async fn unlimited_never_waits() {
        let bw = Bandwidth::new(0);
        bw.acquire(1, u64::MAX).await;
        assert!(!bw.is_limited());
    }
}
