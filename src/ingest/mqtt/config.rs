//! `[mqtt]` (the embedded broker) and `[[routes]]` (MQTT topic filter -> stream, in order; the
//! first match wins). This module owns their keys (the raw serde structs: their fields are
//! the supported keys), their checks, the checked [`MqttConfig`] and the [`RouteConfig`]s the
//! listener's [`super::routes::Routes`] is built from.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Value;

use super::routes::parse_template;
use crate::config::check::{parse_socket_addr, parse_stream_name, Check};
use crate::config::Reference;
use crate::devices::topics::check_filter;

const MIB: u64 = 1024 * 1024;

/// One `[[routes]]` entry as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// An MQTT topic filter (`+` and `#` allowed); required.
    pub topic: Option<Value>,
    /// The stream the publishes go to; required.
    pub stream: Option<Value>,
    /// Partition-key template: `{device}`, `{client_id}`, `{topic[N]}`, `{payload.FIELD}` and
    /// text; default `"{device}"`.
    pub partition_key: Option<Value>,
    /// `"raw"` (the payload as it came, the default) or `"envelope"` (a JSON envelope).
    pub format: Option<Value>,
}

/// One `[[routes]]` entry: publishes whose topic matches `topic` go to `stream`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    /// An MQTT topic filter (`+` and `#` allowed).
    pub topic: String,
    /// A valid stream name.
    pub stream: String,
    /// A template, already checked: `{device}`, `{client_id}`, `{topic[N]}`,
    /// `{payload.FIELD}` and text (see `super::routes`).
    pub partition_key: String,
    pub format: RouteFormat,
}

impl RouteConfig {
    pub const DEFAULT_PARTITION_KEY: &'static str = "{device}";
}

/// The record data a route writes: the payload as it came, or a JSON envelope around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RouteFormat {
    #[default]
    Raw,
    Envelope,
}

impl RouteFormat {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteFormat::Raw => "raw",
            RouteFormat::Envelope => "envelope",
        }
    }
}

/// Checks `[[routes]]`; a route to a stream not in `[[streams]]` is a warning.
pub fn validate_routes(check: &mut Check, raw: Vec<RawRoute>) -> Vec<RouteConfig> {
    let mut routes = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    for (i, raw) in raw.into_iter().enumerate() {
        let key = format!("routes[{i}]");
        let topic_key = format!("{key}.topic");
        let stream_key = format!("{key}.stream");
        if raw.topic.is_none() {
            check.problem(&topic_key, "missing: every route needs a topic filter");
        }
        if raw.stream.is_none() {
            check.problem(&stream_key, "missing: every route needs a stream");
        }
        let topic = check.string(&topic_key, raw.topic, "a topic filter", |s| {
            check_filter(s)
                .map(|()| s.to_owned())
                .map_err(|err| format!("`{s}` is not a valid MQTT topic filter: {err}"))
        });
        let topic = topic.filter(|topic| match seen.get(topic) {
            Some(first) => {
                let message = format!(
                    "duplicate topic `{topic}` (also in {first}): only the first route \
                     with a topic is ever used"
                );
                check.problem(&topic_key, message);
                false
            }
            None => {
                seen.insert(topic.clone(), key.clone());
                true
            }
        });
        let stream = check.string(&stream_key, raw.stream, "a stream name", parse_stream_name);
        let partition_key = check.string(
            &format!("{key}.partition_key"),
            raw.partition_key,
            "a template",
            |s| parse_template(s).map(|_| s.to_owned()),
        );
        let format = check.string(
            &format!("{key}.format"),
            raw.format,
            "a string",
            |s| match s {
                "raw" => Ok(RouteFormat::Raw),
                "envelope" => Ok(RouteFormat::Envelope),
                _ => Err(format!("`{s}` is not allowed: use \"raw\" or \"envelope\"")),
            },
        );
        if let Some(stream) = stream.as_ref().filter(|s| !check.stream_names.contains(*s)) {
            let message = format!(
                "stream `{stream}` is not in [[streams]]: publishes to this route are \
                 refused until it is created through the API (add a [[streams]] entry to \
                 have it created at start)"
            );
            check.warning(&stream_key, message);
        }
        if let (Some(topic), Some(stream)) = (topic, stream) {
            routes.push(RouteConfig {
                topic,
                stream,
                partition_key: partition_key
                    .unwrap_or_else(|| RouteConfig::DEFAULT_PARTITION_KEY.to_owned()),
                format: format.unwrap_or_default(),
            });
        }
    }
    routes
}

/// `[mqtt]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMqtt {
    /// Run the MQTT broker; default true.
    pub enabled: Option<Value>,
    /// Its address; default `"0.0.0.0:1883"`.
    pub listen: Option<Value>,
    /// Accept a CONNECT without credentials (no device identity); default false.
    pub allow_anonymous: Option<Value>,
    /// Largest MQTT packet (1 KiB-256 MiB); default `"1MiB"`.
    pub max_packet_size: Option<Value>,
    /// Connections at once (1-100000); default 1000.
    pub max_connections: Option<Value>,
    /// Connections not yet authenticated, at most; default 256.
    pub max_pending_connections: Option<Value>,
    /// Not-yet-authenticated connections from one IP address, at most; default 32.
    pub max_pending_per_address: Option<Value>,
    /// QoS 1/2 publishes of one client awaiting commit (1-65535); default 100.
    pub max_inflight: Option<Value>,
    /// Largest keep-alive a client may ask for (10-65535 s); default 3600.
    pub keep_alive_max_s: Option<Value>,
    /// Time a new connection has to send CONNECT (1-300 s); default 10.
    pub connect_timeout_s: Option<Value>,
    /// A device's client id must match: `{device}` once, `*` any run of A-Z a-z 0-9 _ . -, e.g.
    /// `"{device}-*"`.
    pub client_id_pattern: Option<Value>,
    /// Also serve MQTT over WebSocket (subprotocol `mqtt`) here.
    pub websocket_listen: Option<Value>,
    /// `[mqtt.tls]`: a second listener with TLS.
    pub tls: Option<RawMqttTls>,
}

/// `[mqtt.tls]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMqttTls {
    /// Its address; default `"0.0.0.0:8883"`.
    pub listen: Option<Value>,
    /// PEM certificate chain of the server; required.
    pub cert: Option<Value>,
    /// PEM private key of `cert`; required.
    pub key: Option<Value>,
    /// Verify client certificates signed by this CA; their CN is the device id.
    pub client_ca: Option<Value>,
}

/// `[mqtt]`: the embedded MQTT broker devices publish to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttConfig {
    pub enabled: bool,
    /// Devices must authenticate (see `allow_anonymous`).
    pub listen: SocketAddr,
    /// Accept a CONNECT without credentials; such a client gets no device identity.
    pub allow_anonymous: bool,
    /// Largest MQTT packet accepted, bytes.
    pub max_packet_size: u64,
    pub max_connections: u32,
    /// Connections that have not yet authenticated (no CONNECT, or its check still running),
    /// at most; they do not count toward `max_connections`.
    pub max_pending_connections: u32,
    /// Not-yet-authenticated connections from one IP address, at most.
    pub max_pending_per_address: u32,
    /// QoS 1/2 publishes of one client awaiting commit.
    pub max_inflight: u16,
    /// Largest keep-alive a client may ask for, seconds.
    pub keep_alive_max_s: u16,
    /// Time a new connection has to send CONNECT, seconds.
    pub connect_timeout_s: u32,
    /// When set, a device's client id must match: contains `{device}` exactly once; `*`
    /// matches any run of `[A-Za-z0-9_.-]`; e.g. `"{device}-*"`.
    pub client_id_pattern: Option<String>,
    /// When set, MQTT over WebSocket (subprotocol `mqtt`) is served here too.
    pub websocket_listen: Option<SocketAddr>,
    /// `[mqtt.tls]`: a second listener with TLS; optional client certificates.
    pub tls: Option<MqttTlsConfig>,
}

/// `[mqtt.tls]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttTlsConfig {
    pub listen: SocketAddr,
    /// PEM certificate chain and private key of the server.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// When set, client certificates signed by this CA are verified; their CN is the device id.
    pub client_ca: Option<PathBuf>,
}

impl MqttTlsConfig {
    pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
        std::net::Ipv4Addr::UNSPECIFIED,
        8883,
    ));
}

impl MqttConfig {
    pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
        std::net::Ipv4Addr::UNSPECIFIED,
        1883,
    ));
    pub const DEFAULT_MAX_PACKET_SIZE: u64 = MIB;
    pub const MAX_PACKET_SIZE_RANGE: std::ops::RangeInclusive<u64> = 1024..=256 * MIB;
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 1000;
    pub const MAX_CONNECTIONS_RANGE: std::ops::RangeInclusive<u32> = 1..=100_000;
    pub const DEFAULT_MAX_PENDING_CONNECTIONS: u32 = 256;
    pub const DEFAULT_MAX_PENDING_PER_ADDRESS: u32 = 32;
    pub const MAX_PENDING_RANGE: std::ops::RangeInclusive<u32> = 1..=100_000;
    pub const DEFAULT_MAX_INFLIGHT: u16 = 100;
    pub const MAX_INFLIGHT_RANGE: std::ops::RangeInclusive<u16> = 1..=65_535;
    pub const DEFAULT_KEEP_ALIVE_MAX_S: u16 = 3600;
    pub const KEEP_ALIVE_MAX_S_RANGE: std::ops::RangeInclusive<u16> = 10..=65_535;
    pub const DEFAULT_CONNECT_TIMEOUT_S: u32 = 10;
    pub const CONNECT_TIMEOUT_S_RANGE: std::ops::RangeInclusive<u32> = 1..=300;
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            enabled: true,
            listen: Self::DEFAULT_LISTEN,
            allow_anonymous: false,
            max_packet_size: Self::DEFAULT_MAX_PACKET_SIZE,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            max_pending_connections: Self::DEFAULT_MAX_PENDING_CONNECTIONS,
            max_pending_per_address: Self::DEFAULT_MAX_PENDING_PER_ADDRESS,
            max_inflight: Self::DEFAULT_MAX_INFLIGHT,
            keep_alive_max_s: Self::DEFAULT_KEEP_ALIVE_MAX_S,
            connect_timeout_s: Self::DEFAULT_CONNECT_TIMEOUT_S,
            client_id_pattern: None,
            websocket_listen: None,
            tls: None,
        }
    }
}

pub fn validate_mqtt(check: &mut Check, raw: RawMqtt) -> MqttConfig {
    let default = MqttConfig::default();
    let listen = check.string("mqtt.listen", raw.listen, "an address", |s| {
        parse_socket_addr(s, "0.0.0.0:1883")
    });
    let client_id_pattern = check.string(
        "mqtt.client_id_pattern",
        raw.client_id_pattern,
        "a pattern",
        check_client_id_pattern,
    );
    MqttConfig {
        enabled: check
            .boolean("mqtt.enabled", raw.enabled)
            .unwrap_or(default.enabled),
        listen: listen.unwrap_or(default.listen),
        allow_anonymous: check
            .boolean("mqtt.allow_anonymous", raw.allow_anonymous)
            .unwrap_or(default.allow_anonymous),
        max_packet_size: check
            .size(
                "mqtt.max_packet_size",
                raw.max_packet_size,
                MqttConfig::MAX_PACKET_SIZE_RANGE,
            )
            .unwrap_or(default.max_packet_size),
        max_connections: check
            .integer(
                "mqtt.max_connections",
                raw.max_connections,
                MqttConfig::MAX_CONNECTIONS_RANGE,
                "",
            )
            .unwrap_or(default.max_connections),
        max_pending_connections: check
            .integer(
                "mqtt.max_pending_connections",
                raw.max_pending_connections,
                MqttConfig::MAX_PENDING_RANGE,
                "",
            )
            .unwrap_or(default.max_pending_connections),
        max_pending_per_address: check
            .integer(
                "mqtt.max_pending_per_address",
                raw.max_pending_per_address,
                MqttConfig::MAX_PENDING_RANGE,
                "",
            )
            .unwrap_or(default.max_pending_per_address),
        max_inflight: check
            .integer(
                "mqtt.max_inflight",
                raw.max_inflight,
                MqttConfig::MAX_INFLIGHT_RANGE,
                "",
            )
            .unwrap_or(default.max_inflight),
        keep_alive_max_s: check
            .integer(
                "mqtt.keep_alive_max_s",
                raw.keep_alive_max_s,
                MqttConfig::KEEP_ALIVE_MAX_S_RANGE,
                " seconds",
            )
            .unwrap_or(default.keep_alive_max_s),
        connect_timeout_s: check
            .integer(
                "mqtt.connect_timeout_s",
                raw.connect_timeout_s,
                MqttConfig::CONNECT_TIMEOUT_S_RANGE,
                " seconds",
            )
            .unwrap_or(default.connect_timeout_s),
        client_id_pattern,
        websocket_listen: check.string(
            "mqtt.websocket_listen",
            raw.websocket_listen,
            "an address",
            |s| parse_socket_addr(s, "127.0.0.1:8083"),
        ),
        tls: raw.tls.and_then(|tls| mqtt_tls(check, tls)),
    }
}

fn mqtt_tls(check: &mut Check, raw: RawMqttTls) -> Option<MqttTlsConfig> {
    let listen = check
        .string("mqtt.tls.listen", raw.listen, "an address", |s| {
            parse_socket_addr(s, "0.0.0.0:8883")
        })
        .unwrap_or(MqttTlsConfig::DEFAULT_LISTEN);
    let path = |check: &mut Check, key: &str, value: Option<toml::Value>, required: bool| {
        if value.is_none() && required {
            check.problem(key, "missing: the TLS listener needs a PEM certificate chain (cert) and its private key (key)");
            return None;
        }
        check.string(key, value, "a file path", |s| {
            if s.is_empty() {
                Err("must not be empty".to_string())
            } else {
                Ok(std::path::PathBuf::from(s))
            }
        })
    };
    let cert = path(check, "mqtt.tls.cert", raw.cert, true);
    let key = path(check, "mqtt.tls.key", raw.key, true);
    let client_ca = path(check, "mqtt.tls.client_ca", raw.client_ca, false);
    if let Some(cert) = &cert {
        check.reference("mqtt.tls.cert", Reference::Certificates(cert.clone()));
    }
    if let Some(key) = &key {
        check.reference("mqtt.tls.key", Reference::PrivateKey(key.clone()));
    }
    if let Some(ca) = &client_ca {
        check.reference("mqtt.tls.client_ca", Reference::Certificates(ca.clone()));
    }
    Some(MqttTlsConfig {
        listen,
        cert: cert?,
        key: key?,
        client_ca,
    })
}

/// `mqtt.client_id_pattern`: `{device}` exactly once, `*` wildcards, no other braces.
fn check_client_id_pattern(s: &str) -> Result<String, String> {
    const RULE: &str = "a client id pattern contains {device} exactly once; `*` matches any \
                        run of A-Z a-z 0-9 _ . -; e.g. \"{device}-*\"";
    let count = s.matches("{device}").count();
    if count != 1 {
        let found = if count == 0 { "lacks" } else { "repeats" };
        return Err(format!("`{s}` {found} {{device}}: {RULE}"));
    }
    if s.replace("{device}", "").contains(['{', '}']) {
        return Err(format!(
            "`{s}` has a placeholder other than {{device}}: {RULE}"
        ));
    }
    Ok(s.to_owned())
}
