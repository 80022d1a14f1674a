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
    pub async fn acquire(&self, priority: u8, bytes: u64) {
        if self.rate == 0 {
            return;
        }
        let priority = usize::from(priority.clamp(1, 10));
        self.with_state(|s| s.waiting[priority] += 1);
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
                    s.waiting[priority] -= 1;
                    None
                } else if ahead {
                    Some(POLL)
                } else {
                    Some(Duration::from_secs_f64(-s.available / rate).clamp(POLL, POLL * 20))
                }
            });
            match wait {
                None => return,
                Some(wait) => tokio::time::sleep(wait).await,
            }
        }
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut BucketState) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
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

    #[tokio::test]
    async fn unlimited_never_waits() {
        let bw = Bandwidth::new(0);
        bw.acquire(1, u64::MAX).await;
        assert!(!bw.is_limited());
    }
}
