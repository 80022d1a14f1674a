//! What the MQTT listener reports at each scrape: connections, devices, stored and unrouted
//! publishes, refusals by reason; and the typed events that log a refusal and count it together.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::observe::{gauge1, one, InternalEvent, MetricsWriter, Report};

use super::{MqttShared, MqttStats};

impl Report for MqttShared {
    fn report(&self, out: &mut MetricsWriter) {
        let mqtt = self;
        let s = &mqtt.stats;
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        out.gauge(
            "kinedge_mqtt_connections",
            "MQTT clients connected now.",
            gauge1(n(&s.connected) as f64),
        );
        out.gauge(
            "kinedge_mqtt_devices",
            "Devices in the device registry.",
            gauge1(mqtt.devices.borrow().len() as f64),
        );
        out.counter(
            "kinedge_mqtt_messages_stored",
            "MQTT publishes stored in a stream (acknowledged after the commit).",
            one(n(&s.stored)),
        );
        out.counter(
            "kinedge_mqtt_messages_unrouted",
            "MQTT publishes that matched no route (delivered to subscribers only).",
            one(n(&s.unrouted)),
        );
        let reason = |r: &str| vec![("reason", r.to_string())];
        out.counter(
            "kinedge_mqtt_refused",
            "MQTT connections and publishes refused, by reason.",
            vec![
                (reason("connect"), n(&s.refused_connect)),
                (reason("acl"), n(&s.refused_acl)),
                (reason("stream"), n(&s.refused_stream)),
                (reason("too_large"), n(&s.refused_too_large)),
                (reason("busy"), n(&s.refused_busy)),
            ],
        );
    }
}

/// A CONNECT refused (unknown device, wrong secret or certificate): counted as
/// `kinedge_mqtt_refused_total{reason="connect"}`.
pub(super) struct ConnectRefused<'a> {
    pub stats: &'a MqttStats,
    pub client_id: &'a str,
    pub reason: &'a str,
}

impl InternalEvent for ConnectRefused<'_> {
    fn emit(self) {
        self.stats.refused_connect.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(client_id = %self.client_id, reason = self.reason, "MQTT CONNECT refused");
    }
}

/// An authenticated connection refused because `mqtt.max_connections` are open: counted as
/// `kinedge_mqtt_refused_total{reason="busy"}`.
pub(super) struct ConnectionsFull<'a> {
    pub stats: &'a MqttStats,
    pub device: &'a str,
    pub limit: usize,
}

impl InternalEvent for ConnectionsFull<'_> {
    fn emit(self) {
        self.stats.refused_busy.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            device = self.device,
            limit = self.limit,
            "MQTT connection refused: mqtt.max_connections reached"
        );
    }
}
