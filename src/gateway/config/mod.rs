//! The configuration document: `kinedge.toml` as a whole. It assembles the sections each
//! component owns (their raw structs, checks and checked types live beside their code), checks
//! what spans sections (two listeners on one port), and embeds the documented default.
//! `check` (the `check-config` command) adds what only the machine can tell.
//!
//! This sits above the components (in `gateway`) so that the config toolkit below them needs
//! none of them.

pub mod check;
pub mod log;

#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

pub use self::log::{LogConfig, LogFormat, RawLog};
pub use crate::analytics::config::{ApplicationConfig, RawApplication};
pub use crate::api::config::{ApiConfig, ApiCredential, ApiTlsConfig, ConfigError, RawApi};
use crate::config::check::Check;
use crate::config::raw;
pub use crate::config::{ConfigErrors, ConfigIssue, ConfigSource, DevicesConfig, Reference};
pub use crate::delivery::config::{
    DeliverySettings, DeliveryStreamConfig, RawDelivery, RawDeliveryStream,
};
pub use crate::ingest::mqtt::config::{
    MqttConfig, MqttTlsConfig, RawMqtt, RawRoute, RouteConfig, RouteFormat,
};
pub use crate::ondemand::config::{OnDemandConfig, RawOnDemand};
pub use crate::storage::config::{RawStorage, StorageConfig};
pub use crate::streams::config::{OnFull, RawStream, StreamConfig};
pub use crate::video::config::{RawVideo, VideoConfig};

/// The documented default configuration, embedded in the binary.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../../../config/kinedge.toml");

/// A checked configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub storage: StorageConfig,
    pub api: ApiConfig,
    pub streams: Vec<StreamConfig>,
    pub log: LogConfig,
    pub devices: DevicesConfig,
    pub mqtt: MqttConfig,
    /// `[[routes]]`: MQTT topic filter -> stream, in order; the first match wins.
    pub routes: Vec<RouteConfig>,
    /// `[[delivery_streams]]`, checked (their source streams need not be in `streams`:
    /// streams can be created through the API, and the delivery runner waits for them).
    pub delivery_streams: Vec<DeliveryStreamConfig>,
    /// `[delivery]`: settings shared by all delivery streams.
    pub delivery: DeliverySettings,
    /// `[video]`: settings shared by all cameras.
    pub video: VideoConfig,
    /// `[[analytics]]`: Flink SQL applications defined in the file (their input and output
    /// streams need not be in `streams`).
    pub analytics: Vec<ApplicationConfig>,
    /// `[on_demand]`: the scaler of streams in ON_DEMAND mode.
    pub on_demand: OnDemandConfig,
    pub source: ConfigSource,
}

/// The file as serde sees it: one field per section, each the raw struct its component owns.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[storage]`: the stream database.
    pub storage: Option<RawStorage>,
    /// `[api]`: the HTTP API (Kinesis, Firehose, Kinesis Video).
    pub api: Option<RawApi>,
    /// `[[streams]]`: streams created at start.
    pub streams: Option<Vec<RawStream>>,
    /// `[log]`: log level and format.
    pub log: Option<RawLog>,
    /// `[devices]`: where the device files are.
    pub devices: Option<raw::Devices>,
    /// `[mqtt]`: the embedded MQTT broker.
    pub mqtt: Option<RawMqtt>,
    /// `[[routes]]`: MQTT topic filter -> stream.
    pub routes: Option<Vec<RawRoute>>,
    /// `[[delivery_streams]]`: where records are delivered.
    pub delivery_streams: Option<Vec<RawDeliveryStream>>,
    /// `[delivery]`: settings shared by all delivery streams.
    pub delivery: Option<RawDelivery>,
    /// `[video]`: settings shared by all cameras.
    pub video: Option<RawVideo>,
    /// `[[analytics]]`: continuous Flink SQL applications.
    pub analytics: Option<Vec<RawApplication>>,
    /// `[on_demand]`: how streams in ON_DEMAND mode are resharded by their write rate.
    pub on_demand: Option<RawOnDemand>,
}

/// What reading a file found, for `check-config`.
pub type Parsed = crate::config::Parsed<Config>;

impl Config {
    /// The embedded default ([`DEFAULT_CONFIG_TOML`]).
    pub fn built_in() -> Config {
        Config::parse(DEFAULT_CONFIG_TOML, ConfigSource::BuiltIn)
            .expect("the embedded default config is valid (checked by a unit test)")
    }

    /// Reads, parses and checks a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let source = ConfigSource::File(path.to_owned());
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text, source),
            Err(err) => Err(ConfigErrors {
                issues: vec![ConfigIssue {
                    file: source.to_string(),
                    line: None,
                    key: String::new(),
                    message: format!("cannot read the config file: {err}"),
                }],
            }),
        }
    }

    /// Parses and checks config text; `source` is used in messages and kept in the result.
    pub fn parse(text: &str, source: ConfigSource) -> Result<Config, ConfigErrors> {
        let parsed = parse_document(text, source);
        match parsed.config {
            Some(config) if parsed.issues.is_empty() => Ok(config),
            _ => Err(ConfigErrors {
                issues: parsed.issues,
            }),
        }
    }
}

/// Reads `text` with every issue, warning and reference found.
pub(crate) fn parse_document(text: &str, source: ConfigSource) -> Parsed {
    let config_source = source.clone();
    crate::config::read_file(text, &config_source, |file: RawConfig, check| {
        validate(file, source, check)
    })
}

/// Checks every section, then what spans sections.
fn validate(file: RawConfig, source: ConfigSource, check: &mut Check) -> Config {
    use crate::ingest::mqtt::config as mqtt;
    let streams = crate::streams::config::validate(check, file.streams.unwrap_or_default());
    check.stream_names = streams.iter().map(|s| s.name.clone()).collect();
    let config = Config {
        storage: crate::storage::config::validate(check, file.storage.unwrap_or_default()),
        api: crate::api::config::validate(check, file.api.unwrap_or_default()),
        streams,
        log: log::validate(check, file.log.unwrap_or_default()),
        devices: check.devices(file.devices.unwrap_or_default(), &source),
        mqtt: mqtt::validate_mqtt(check, file.mqtt.unwrap_or_default()),
        routes: mqtt::validate_routes(check, file.routes.unwrap_or_default()),
        delivery_streams: check.delivery_streams(file.delivery_streams.unwrap_or_default()),
        delivery: check.delivery(file.delivery.unwrap_or_default()),
        video: crate::video::config::validate(check, file.video.unwrap_or_default()),
        analytics: crate::analytics::config::validate(
            check,
            file.analytics.unwrap_or_default(),
            &source,
        ),
        on_demand: crate::ondemand::config::validate(check, file.on_demand.unwrap_or_default()),
        source,
    };
    listeners(check, &config);
    config
}

fn listeners(check: &mut Check, config: &Config) {
    let mut listeners = vec![("api.listen", config.api.listen)];
    if config.mqtt.enabled {
        listeners.push(("mqtt.listen", config.mqtt.listen));
        if let Some(addr) = config.mqtt.websocket_listen {
            listeners.push(("mqtt.websocket_listen", addr));
        }
        if let Some(tls) = &config.mqtt.tls {
            listeners.push(("mqtt.tls.listen", tls.listen));
        }
    }
    // Same port and: the same address, or an unspecified one of the same family, or `[::]`
    // (which Linux binds for IPv4 too).
    let overlap = |a: &SocketAddr, b: &SocketAddr| {
        let dual_stack = |x: &SocketAddr| x.is_ipv6() && x.ip().is_unspecified();
        a.port() != 0
            && a.port() == b.port()
            && (a.ip() == b.ip()
                || (a.is_ipv4() == b.is_ipv4()
                    && (a.ip().is_unspecified() || b.ip().is_unspecified()))
                || dual_stack(a)
                || dual_stack(b))
    };
    for (i, (key, addr)) in listeners.iter().enumerate() {
        let clash = listeners[..i]
            .iter()
            .find(|(_, other)| overlap(addr, other));
        if let Some((other_key, other)) = clash {
            check.problem(
                key,
                format!(
                    "`{addr}` is the port of {other_key} (`{other}`): two listeners cannot \
                     share a port; pick another"
                ),
            );
        }
    }
}
