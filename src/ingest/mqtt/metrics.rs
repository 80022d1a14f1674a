//! What the MQTT listener reports at each scrape: connections, devices, stored and unrouted
//! publishes, refusals by reason.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::observe::{gauge1, one, MetricsWriter, Report};

use super::MqttShared;

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
