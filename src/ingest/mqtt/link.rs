//! Sending into rumqttd's router without ever blocking a runtime worker.
//!
//! rumqttd 0.20's `LinkTx::send` (and `publish`, `subscribe`, ...) does a *blocking* send on
//! the router's bounded channel (1,000 events); with a lagging router, every tokio worker
//! that sends parks, and with them the API, delivery and watchdog. Here every send goes to
//! one dedicated thread, the bridge, over a bounded queue (`BRIDGE_QUEUE` batches); only the
//! bridge thread ever blocks on the router.
//!
//! Invariants: packets of one link reach the router in the order they were sent (one FIFO,
//! one thread). When the router lags, the queue fills and `RouterLink::send` waits
//! (asynchronously): the session stops reading its socket, so the device feels TCP
//! back-pressure; nothing is dropped. A failed send (the router dropped the link) is
//! remembered and reported by the link's next `send`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use rumqttd::local::LinkTx;
use rumqttd::protocol::Packet;
use tokio::sync::mpsc;

/// Batches of packets waiting for the bridge thread (all links together).
const BRIDGE_QUEUE: usize = 256;

struct Job {
    link: Arc<LinkState>,
    packets: Vec<Packet>,
}

struct LinkState {
    tx: Mutex<LinkTx>,
    failed: AtomicBool,
}

/// The router link is gone (the router ended it, or the bridge stopped).
#[derive(Debug, thiserror::Error)]
#[error("the MQTT broker core closed the link")]
pub struct LinkClosed;

/// The bridge thread's queue.
#[derive(Clone)]
pub struct Bridge {
    jobs: mpsc::Sender<Job>,
}

impl Bridge {
    /// Starts the bridge thread. It ends once every `Bridge` and `RouterLink` is dropped.
    pub fn start() -> std::io::Result<Bridge> {
        let (jobs, mut rx) = mpsc::channel::<Job>(BRIDGE_QUEUE);
        std::thread::Builder::new()
            .name("mqtt-router-bridge".into())
            .spawn(move || {
                while let Some(job) = rx.blocking_recv() {
                    deliver(job);
                }
            })?;
        Ok(Bridge { jobs })
    }

    /// Wraps a router link so that sends go through the bridge.
    pub fn link(&self, tx: LinkTx) -> RouterLink {
        RouterLink {
            state: Arc::new(LinkState {
                tx: Mutex::new(tx),
                failed: AtomicBool::new(false),
            }),
            jobs: self.jobs.clone(),
        }
    }
}

/// Runs on the bridge thread: may block on the router's channel.
fn deliver(job: Job) {
    let Job { link, mut packets } = job;
    let Some(last) = packets.pop() else { return };
    let mut tx = match link.tx.lock() {
        Ok(tx) => tx,
        Err(poisoned) => poisoned.into_inner(),
    };
    tx.buffer().extend(packets);
    // `LinkTx::send` has no await point: it completes (after its blocking send) on the
    // first poll.
    let sent = tx.send(last).now_or_never();
    if !matches!(sent, Some(Ok(_))) {
        link.failed.store(true, Ordering::Relaxed);
    }
}

/// A connection's sending half into the router; sends never block the caller's thread.
pub struct RouterLink {
    state: Arc<LinkState>,
    jobs: mpsc::Sender<Job>,
}

impl RouterLink {
    /// Hands `packets` to the router, in order; waits (without blocking) while the bridge
    /// queue is full.
    pub async fn send(&self, packets: Vec<Packet>) -> Result<(), LinkClosed> {
        if self.state.failed.load(Ordering::Relaxed) {
            return Err(LinkClosed);
        }
        if packets.is_empty() {
            return Ok(());
        }
        let job = Job {
            link: self.state.clone(),
            packets,
        };
        self.jobs.send(job).await.map_err(|_| LinkClosed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttd::protocol::PingReq;
    use std::collections::VecDeque;
    use std::time::Duration;

    /// A router that reads nothing: its channel (capacity 1) is full after one event. Sending
    /// through the link must not block the (single) runtime worker; once the router reads
    /// again, every packet arrives, in order.
    #[test]
    fn a_stalled_router_never_blocks_a_runtime_worker() {
        let (router_tx, router_rx) = flume::bounded(1);
        let buffer = Arc::new(parking_lot::Mutex::new(VecDeque::new()));
        let link_tx = LinkTx::new(7, router_tx, buffer.clone());
        let bridge = Bridge::start().unwrap();
        let link = bridge.link(link_tx);
        let (alive_tx, alive_rx) = std::sync::mpsc::channel();
        let (sent_tx, sent_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let sender = tokio::spawn(async move {
                    for _ in 0..5 {
                        link.send(vec![Packet::PingReq(PingReq), Packet::PingReq(PingReq)])
                            .await
                            .unwrap();
                        tokio::task::yield_now().await;
                    }
                });
                // Other work on the same worker goes on while the router is stalled.
                for _ in 0..5 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    tokio::task::yield_now().await;
                }
                alive_tx.send(()).unwrap();
                sender.await.unwrap();
                sent_tx.send(()).unwrap();
            });
        });
        assert!(
            alive_rx.recv_timeout(Duration::from_secs(30)).is_ok(),
            "a stalled router blocked the runtime worker"
        );
        // The router reads again: one event per batch, all ten packets.
        let mut events = 0;
        while events < 5 {
            let (id, _event) = router_rx
                .recv_timeout(Duration::from_secs(30))
                .expect("an event per batch");
            assert_eq!(id, 7);
            events += 1;
        }
        sent_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(buffer.lock().len(), 10);
    }
}
