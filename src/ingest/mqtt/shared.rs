//! What every MQTT session shares with the listener that started it: the store, the broker
//! core, the device registry, the routes, the limits of `[mqtt]`, the admission budget and
//! the counters. The listener (`server`) builds it; sessions (`session`) only read it and
//! bump its counters, so neither needs the other.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};

use super::activity::DeviceActivity;
use super::admission::Admission;
use super::broker::Broker;
use super::config::MqttConfig;
use super::qos2::Qos2Sessions;
use super::routes::Routes;
use crate::devices::{Device, DeviceRegistry};
use crate::storage::Store;

/// Limits and policies of the listener, from `[mqtt]`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub max_packet_size: usize,
    pub max_inflight: usize,
    pub keep_alive_max_s: u16,
    pub connect_timeout: Duration,
    pub allow_anonymous: bool,
    pub client_id_pattern: Option<String>,
    pub max_connections: usize,
    pub max_pending_connections: usize,
    pub max_pending_per_address: u32,
}

impl Settings {
    pub fn from_config(config: &MqttConfig) -> Settings {
        Settings {
            max_packet_size: usize::try_from(config.max_packet_size).unwrap_or(usize::MAX),
            max_inflight: usize::from(config.max_inflight),
            keep_alive_max_s: config.keep_alive_max_s,
            connect_timeout: Duration::from_secs(u64::from(config.connect_timeout_s)),
            allow_anonymous: config.allow_anonymous,
            client_id_pattern: config.client_id_pattern.clone(),
            max_connections: config.max_connections as usize,
            max_pending_connections: config.max_pending_connections as usize,
            max_pending_per_address: config.max_pending_per_address,
        }
    }
}

/// Counters for status and metrics.
#[derive(Debug, Default)]
pub struct MqttStats {
    pub connected: AtomicU64,
    pub stored: AtomicU64,
    pub unrouted: AtomicU64,
    pub refused_connect: AtomicU64,
    pub refused_acl: AtomicU64,
    pub refused_stream: AtomicU64,
    pub refused_too_large: AtomicU64,
    pub refused_busy: AtomicU64,
}

/// What every session shares.
pub struct MqttShared {
    pub store: Store,
    pub broker: Broker,
    pub devices: watch::Sender<Arc<DeviceRegistry>>,
    pub routes: Routes,
    pub settings: Settings,
    /// Password checks (Argon2, deliberately slow) run at most this many at once.
    pub auth_slots: Semaphore,
    pub stats: MqttStats,
    /// Per device: connected, last seen, messages, refusals.
    pub activity: DeviceActivity,
    /// Pending places (before authentication) and connection slots.
    pub admission: Admission,
    /// Unreleased QoS 2 packet ids of every client session (kept across its connections).
    pub qos2: Qos2Sessions,
    /// Set when the gateway stops: the listeners accept no more connections, and sessions
    /// acknowledge what they received and close.
    pub stopping: watch::Sender<bool>,
}

impl MqttShared {
    pub(super) fn new(
        settings: Settings,
        store: Store,
        broker: Broker,
        devices: DeviceRegistry,
        routes: Routes,
    ) -> MqttShared {
        let admission = Admission::new(
            settings.max_connections,
            settings.max_pending_connections,
            settings.max_pending_per_address,
        );
        MqttShared {
            store,
            broker,
            devices: watch::channel(Arc::new(devices)).0,
            routes,
            settings,
            auth_slots: Semaphore::new(2),
            stats: MqttStats::default(),
            activity: DeviceActivity::default(),
            admission,
            qos2: Qos2Sessions::default(),
            stopping: watch::channel(false).0,
        }
    }

    /// Whether the listeners accept new connections (for `/ready`).
    pub fn is_accepting(&self) -> bool {
        !*self.stopping.borrow()
    }

    pub fn device(&self, id: &str) -> Option<Arc<Device>> {
        self.devices.borrow().get(id).map(|d| Arc::new(d.clone()))
    }

    /// Counters and sizes for `/status`.
    pub fn status(&self) -> serde_json::Value {
        let s = &self.stats;
        let n = |c: &AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        serde_json::json!({
            "connected": n(&s.connected),
            "devices": self.devices.borrow().len(),
            "stored": n(&s.stored),
            "unrouted": n(&s.unrouted),
            "refused": {
                "connect": n(&s.refused_connect),
                "acl": n(&s.refused_acl),
                "stream": n(&s.refused_stream),
                "too_large": n(&s.refused_too_large),
                "busy": n(&s.refused_busy),
            },
            "device_activity": self.activity.snapshot(),
        })
    }

    /// Replaces the registry; sessions of removed or changed devices disconnect.
    pub fn reload_devices(&self, registry: DeviceRegistry) {
        tracing::info!(devices = registry.len(), "device registry reloaded");
        self.devices.send_replace(Arc::new(registry));
    }
}
