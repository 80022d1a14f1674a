//! The systemd notify protocol (`Type=notify`): READY=1 once storage, the MQTT broker and the
//! API are up; STOPPING=1 when a stop begins; WATCHDOG=1 while the stream writer answers;
//! EXTEND_TIMEOUT_USEC while the gateway starts, because checking a store that was not closed
//! cleanly can take minutes on a large SD card. Without `$NOTIFY_SOCKET` (not under systemd)
//! every call does nothing.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio::task::JoinHandle;

use crate::storage::{Store, StoreError};

fn send(states: &[NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(states) {
        tracing::warn!(%error, "cannot notify the service manager");
    }
}

/// The gateway serves: storage, broker and API are up.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A stop has begun: requests in flight finish, nothing new is accepted.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// A line `systemctl status` shows.
pub fn status(text: &str) {
    send(&[NotifyState::Status(text)]);
}

/// How far each EXTEND_TIMEOUT_USEC pushes the start timeout, and how often it is sent.
const EXTEND_BY: Duration = Duration::from_secs(30);
const EXTEND_EVERY: Duration = Duration::from_secs(10);

/// Keeps the service manager's start timeout from expiring while the gateway is still
/// starting (opening, perhaps repairing, its databases). Stops when dropped.
pub struct StartingUp(Option<JoinHandle<()>>);

impl StartingUp {
    pub fn begin() -> StartingUp {
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            return StartingUp(None);
        }
        StartingUp(Some(tokio::spawn(async {
            let usec = u32::try_from(EXTEND_BY.as_micros()).unwrap_or(u32::MAX);
            loop {
                send(&[NotifyState::ExtendTimeoutUsec(usec)]);
                tokio::time::sleep(EXTEND_EVERY).await;
            }
        })))
    }
}

impl Drop for StartingUp {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// When systemd asks for watchdog pings (`WatchdogSec=`), sends WATCHDOG=1 at a third of the
/// interval, each time the stream writer has answered a ping: a writer stuck in a commit (a
/// failing SD card) stops the pings, and systemd restarts the gateway on its committed state.
pub fn spawn_watchdog(store: Store) -> Option<JoinHandle<()>> {
    let timeout = sd_notify::watchdog_enabled()?;
    let every = (timeout / 3).max(Duration::from_millis(100));
    tracing::info!(
        timeout_ms = timeout.as_millis() as u64,
        "systemd watchdog enabled"
    );
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        let mut failing = false;
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match tokio::time::timeout(timeout, store.ping()).await {
                Ok(Ok(())) => {
                    failing = false;
                    send(&[NotifyState::Watchdog]);
                }
                Ok(Err(StoreError::ShuttingDown)) => {
                    tracing::info!("the stream writer stopped; watchdog pings stop");
                    return;
                }
                // The writer answered through its commit path, so it is alive; that writes
                // fail (a full disk) is for /ready to say, and a restart would not help.
                Ok(Err(error)) => {
                    if !failing {
                        tracing::warn!(%error, "the stream writer answers but cannot write; watchdog pings go on");
                    }
                    failing = true;
                    send(&[NotifyState::Watchdog]);
                }
                Err(_) => tracing::error!(
                    waited_ms = timeout.as_millis() as u64,
                    "the stream writer does not answer; withholding the watchdog ping"
                ),
            }
        }
    }))
}
