//! From `raw::File` to `Config`: checks the type and range of every value and collects every
//! problem, each under its dotted key path. A value with a problem is replaced by its default
//! so that checking can go on.

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;

use toml::Value;

use super::raw::{self, Problem};
use super::{
    format_size, parse_size, ApiConfig, ApiCredential, ApiTlsConfig, Config, ConfigSource,
    DevicesConfig, LogConfig, LogFormat, MqttConfig, MqttTlsConfig, OnFull, Reference, RouteConfig,
    RouteFormat, SecretSource, StorageConfig, StreamConfig, VideoConfig,
};
use crate::devices::topics::check_filter;
use crate::ingest::mqtt::routes::parse_template;
use crate::streams::SHARD_LIMIT;

/// What checking a file found besides the configuration itself.
#[derive(Default)]
pub(super) struct Findings {
    /// Mistakes: the file is refused.
    pub problems: Vec<Problem>,
    /// Legal but probably not meant (a route to a stream that is not configured).
    pub warnings: Vec<Problem>,
    /// Files, directories and variables the configuration names, under their keys; only
    /// `check-config` looks at them (see `super::check`).
    pub references: Vec<(String, Reference)>,
}

pub(super) fn validate(file: raw::File, source: ConfigSource) -> (Config, Findings) {
    let mut check = Check::default();
    let streams = check.streams(file.streams.unwrap_or_default());
    check.stream_names = streams.iter().map(|s| s.name.clone()).collect();
    let config = Config {
        storage: check.storage(file.storage.unwrap_or_default()),
        api: check.api(file.api.unwrap_or_default()),
        streams,
        log: check.log(file.log.unwrap_or_default()),
        devices: check.devices(file.devices.unwrap_or_default(), &source),
        mqtt: check.mqtt(file.mqtt.unwrap_or_default()),
        routes: check.routes(file.routes.unwrap_or_default()),
        delivery_streams: check.delivery_streams(file.delivery_streams.unwrap_or_default()),
        delivery: check.delivery(file.delivery.unwrap_or_default()),
        video: check.video(file.video.unwrap_or_default()),
        source,
    };
    check.listeners(&config);
    let findings = Findings {
        problems: check.problems,
        warnings: check.warnings,
        references: check.references,
    };
    (config, findings)
}

#[derive(Default)]
pub(super) struct Check {
    pub(super) problems: Vec<Problem>,
    pub(super) warnings: Vec<Problem>,
    pub(super) references: Vec<(String, Reference)>,
    /// The names in `[[streams]]`, for routes and delivery sources.
    pub(super) stream_names: HashSet<String>,
}

impl Check {
    pub(super) fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push((key.to_owned(), message.into()));
    }

    pub(super) fn warning(&mut self, key: &str, message: impl Into<String>) {
        self.warnings.push((key.to_owned(), message.into()));
    }

    /// Notes a file, directory or variable that `check-config` should look at.
    pub(super) fn reference(&mut self, key: &str, reference: Reference) {
        self.references.push((key.to_owned(), reference));
    }

    /// Two listeners on one port (and overlapping addresses) would fail to bind at start.
    fn listeners(&mut self, config: &Config) {
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
                self.problem(
                    key,
                    format!(
                        "`{addr}` is the port of {other_key} (`{other}`): two listeners cannot \
                         share a port; pick another"
                    ),
                );
            }
        }
    }

    fn storage(&mut self, raw: raw::Storage) -> StorageConfig {
        let data_dir = self.string("storage.data_dir", raw.data_dir, "a directory path", |s| {
            if s.is_empty() {
                Err("must not be empty; leave data_dir out to use the default".into())
            } else {
                Ok(PathBuf::from(s))
            }
        });
        if let Some(path) = &data_dir {
            self.reference(
                "storage.data_dir",
                Reference::Directory {
                    path: path.clone(),
                    must_exist: false,
                },
            );
        }
        StorageConfig {
            data_dir,
            min_free_disk: self
                .size("storage.min_free_disk", raw.min_free_disk, 0..=u64::MAX)
                .unwrap_or(StorageConfig::DEFAULT_MIN_FREE_DISK),
            cache_size: self
                .size(
                    "storage.cache_size",
                    raw.cache_size,
                    StorageConfig::MIN_CACHE_SIZE..=u64::MAX,
                )
                .unwrap_or(StorageConfig::DEFAULT_CACHE_SIZE),
            max_commit_bytes: self
                .size(
                    "storage.max_commit_bytes",
                    raw.max_commit_bytes,
                    StorageConfig::MAX_COMMIT_BYTES_RANGE,
                )
                .unwrap_or(StorageConfig::DEFAULT_MAX_COMMIT_BYTES),
            commit_interval_ms: self
                .integer(
                    "storage.commit_interval_ms",
                    raw.commit_interval_ms,
                    StorageConfig::COMMIT_INTERVAL_MS_RANGE,
                    " ms",
                )
                .unwrap_or(StorageConfig::DEFAULT_COMMIT_INTERVAL_MS),
            quick_repair: self
                .boolean("storage.quick_repair", raw.quick_repair)
                .unwrap_or(false),
        }
    }

    fn api(&mut self, raw: raw::Api) -> ApiConfig {
        let listen = self.string("api.listen", raw.listen, "an address", |s| {
            parse_socket_addr(s, "127.0.0.1:4567")
        });
        let region = self.string("api.region", raw.region, "a region name", parse_region);
        let account_id = self.string("api.account_id", raw.account_id, "a string", |s| {
            if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
                Ok(s.to_owned())
            } else {
                Err(format!(
                    "`{s}` is not an account id: use exactly 12 digits, e.g. \"000000000000\""
                ))
            }
        });
        let open_metrics = self
            .boolean("api.open_metrics", raw.open_metrics)
            .unwrap_or(false);
        let max_connections = self
            .integer(
                "api.max_connections",
                raw.max_connections,
                ApiConfig::MAX_CONNECTIONS_RANGE,
                "",
            )
            .unwrap_or(ApiConfig::DEFAULT_MAX_CONNECTIONS);
        let cors_origins = self.cors_origins(raw.cors_origins);
        let tls = raw.tls.and_then(|tls| self.api_tls(tls));
        let mut credentials = Vec::new();
        let mut seen = HashMap::new();
        for (i, raw) in raw.credentials.unwrap_or_default().into_iter().enumerate() {
            let key = format!("api.credentials[{i}]");
            if let Some(credential) = self.credential(&key, raw) {
                let id_key = format!("{key}.access_key_id");
                match seen.get(&credential.access_key_id) {
                    Some(first) => self.problem(
                        &id_key,
                        format!(
                            "duplicate access_key_id `{}` (also in {first})",
                            credential.access_key_id
                        ),
                    ),
                    None => {
                        seen.insert(credential.access_key_id.clone(), key);
                        credentials.push(credential);
                    }
                }
            }
        }
        ApiConfig {
            listen: listen.unwrap_or(ApiConfig::DEFAULT_LISTEN),
            region: region.unwrap_or_else(|| ApiConfig::DEFAULT_REGION.to_owned()),
            account_id: account_id.unwrap_or_else(|| ApiConfig::DEFAULT_ACCOUNT_ID.to_owned()),
            credentials,
            open_metrics,
            max_connections,
            cors_origins,
            tls,
        }
    }

    /// `api.cors_origins`: `["*"]` or origins as browsers send them (`https://host[:port]`).
    fn cors_origins(&mut self, value: Option<toml::Value>) -> Vec<String> {
        const KEY: &str = "api.cors_origins";
        let Some(value) = value else {
            return Vec::new();
        };
        let Some(items) = value.as_array() else {
            self.problem(
                KEY,
                wrong_type("a list of origins, e.g. [\"https://dash.example\"]", &value),
            );
            return Vec::new();
        };
        let mut origins = Vec::new();
        for item in items {
            let Some(origin) = item.as_str() else {
                self.problem(KEY, wrong_type("origins in quotes", item));
                continue;
            };
            match check_origin(origin) {
                Ok(()) => origins.push(origin.to_owned()),
                Err(message) => self.problem(KEY, message),
            }
        }
        if origins.len() > 1 && origins.iter().any(|o| o == "*") {
            self.problem(
                KEY,
                "\"*\" allows every origin: list it alone, or list the origins without it",
            );
        }
        origins
    }

    fn api_tls(&mut self, raw: raw::ApiTls) -> Option<ApiTlsConfig> {
        let mut path = |key: &str, value: Option<toml::Value>| {
            if value.is_none() {
                self.problem(key, "missing: TLS on the API needs a PEM certificate chain (cert) and its private key (key)");
                return None;
            }
            self.string(key, value, "a file path", |s| {
                if s.is_empty() {
                    Err("must not be empty".to_string())
                } else {
                    Ok(std::path::PathBuf::from(s))
                }
            })
        };
        let cert = path("api.tls.cert", raw.cert);
        let key = path("api.tls.key", raw.key);
        if let Some(cert) = &cert {
            self.reference("api.tls.cert", Reference::Certificates(cert.clone()));
        }
        if let Some(key) = &key {
            self.reference("api.tls.key", Reference::PrivateKey(key.clone()));
        }
        Some(ApiTlsConfig {
            cert: cert?,
            key: key?,
        })
    }

    fn credential(&mut self, key: &str, raw: raw::Credential) -> Option<ApiCredential> {
        let id_key = format!("{key}.access_key_id");
        let has_id = raw.access_key_id.is_some();
        let access_key_id =
            self.string(&id_key, raw.access_key_id, "a string", parse_access_key_id);
        if !has_id {
            self.problem(&id_key, "missing: every credential needs an access_key_id");
        }
        if raw.secret.is_some() {
            self.problem(
                &format!("{key}.secret"),
                plaintext_secret("secret_file", "secret_env"),
            );
        }
        let file_key = format!("{key}.secret_file");
        let env_key = format!("{key}.secret_env");
        let secret = match (raw.secret_file, raw.secret_env) {
            (Some(file), None) => self
                .string(&file_key, Some(file), "a file path", |s| {
                    if s.is_empty() {
                        Err("must not be empty".into())
                    } else {
                        Ok(SecretSource::File(PathBuf::from(s)))
                    }
                })
                .inspect(|secret| self.reference(&file_key, Reference::Secret(secret.clone()))),
            (None, Some(env)) => self
                .string(&env_key, Some(env), "a variable name", |s| {
                    parse_env_name(s).map(SecretSource::Env)
                })
                .inspect(|secret| self.reference(&env_key, Reference::Secret(secret.clone()))),
            (Some(_), Some(_)) => {
                self.problem(
                    &env_key,
                    "both secret_file and secret_env are set: give exactly one",
                );
                None
            }
            (None, None) => {
                if raw.secret.is_none() {
                    self.problem(
                        key,
                        "no secret: give exactly one of secret_file or secret_env",
                    );
                }
                None
            }
        };
        Some(ApiCredential {
            access_key_id: access_key_id?,
            secret: secret?,
        })
    }

    fn streams(&mut self, raw: Vec<raw::Stream>) -> Vec<StreamConfig> {
        let mut streams = Vec::new();
        let mut open_shards = 0u32;
        let mut seen: HashMap<String, String> = HashMap::new();
        for (i, raw) in raw.into_iter().enumerate() {
            let key = format!("streams[{i}]");
            let name_key = format!("{key}.name");
            if raw.name.is_none() {
                self.problem(&name_key, "missing: every stream needs a name");
            }
            let name = self.string(&name_key, raw.name, "a string", parse_stream_name);
            let name = name.filter(|name| match seen.get(name) {
                Some(first) => {
                    let message = format!("duplicate stream name `{name}` (also in {first})");
                    self.problem(&name_key, message);
                    false
                }
                None => {
                    seen.insert(name.clone(), key.clone());
                    true
                }
            });
            let shards = self.integer(
                &format!("{key}.shards"),
                raw.shards,
                StreamConfig::SHARDS_RANGE,
                "",
            );
            let retention_hours = self.integer(
                &format!("{key}.retention_hours"),
                raw.retention_hours,
                StreamConfig::RETENTION_HOURS_RANGE,
                " hours",
            );
            let max_bytes = self.size(
                &format!("{key}.max_bytes"),
                raw.max_bytes,
                StreamConfig::MIN_MAX_BYTES..=u64::MAX,
            );
            let on_full =
                self.string(
                    &format!("{key}.on_full"),
                    raw.on_full,
                    "a string",
                    |s| match s {
                        "overwrite_oldest" => Ok(OnFull::OverwriteOldest),
                        "reject_new" => Ok(OnFull::RejectNew),
                        _ => Err(format!(
                            "`{s}` is not allowed: use \"overwrite_oldest\" or \"reject_new\""
                        )),
                    },
                );
            if let Some(shards) = shards {
                open_shards += shards;
                if open_shards > SHARD_LIMIT && open_shards - shards <= SHARD_LIMIT {
                    self.problem(
                        &format!("{key}.shards"),
                        format!(
                            "the streams up to this one have {open_shards} shards: a gateway \
                             holds at most {SHARD_LIMIT} open shards"
                        ),
                    );
                }
            }
            if let Some(name) = name {
                streams.push(StreamConfig {
                    name,
                    shards: shards.unwrap_or(StreamConfig::DEFAULT_SHARDS),
                    retention_hours: retention_hours
                        .unwrap_or(StreamConfig::DEFAULT_RETENTION_HOURS),
                    max_bytes,
                    on_full: on_full.unwrap_or_default(),
                });
            }
        }
        streams
    }

    fn devices(&mut self, raw: raw::Devices, source: &ConfigSource) -> DevicesConfig {
        let given = raw.dir.is_some();
        let dir = self
            .string("devices.dir", raw.dir, "a directory path", |s| {
                if s.is_empty() {
                    Err("must not be empty".to_string())
                } else {
                    Ok(std::path::PathBuf::from(s))
                }
            })
            .unwrap_or_else(|| std::path::PathBuf::from(DevicesConfig::DEFAULT_DIR));
        // Relative to the config file's folder (the working directory for the built-in one).
        let dir = match source {
            ConfigSource::File(file) if dir.is_relative() => file
                .parent()
                .map_or(dir.clone(), |parent| parent.join(&dir)),
            _ => dir,
        };
        // A devices folder named in a file must be there: a typo would leave every device
        // unable to log in. The built-in default (./devices) may be missing.
        self.reference(
            "devices.dir",
            Reference::Directory {
                path: dir.clone(),
                must_exist: given && matches!(source, ConfigSource::File(_)),
            },
        );
        DevicesConfig { dir }
    }

    fn mqtt(&mut self, raw: raw::Mqtt) -> MqttConfig {
        let default = MqttConfig::default();
        let listen = self.string("mqtt.listen", raw.listen, "an address", |s| {
            parse_socket_addr(s, "0.0.0.0:1883")
        });
        let client_id_pattern = self.string(
            "mqtt.client_id_pattern",
            raw.client_id_pattern,
            "a pattern",
            check_client_id_pattern,
        );
        MqttConfig {
            enabled: self
                .boolean("mqtt.enabled", raw.enabled)
                .unwrap_or(default.enabled),
            listen: listen.unwrap_or(default.listen),
            allow_anonymous: self
                .boolean("mqtt.allow_anonymous", raw.allow_anonymous)
                .unwrap_or(default.allow_anonymous),
            max_packet_size: self
                .size(
                    "mqtt.max_packet_size",
                    raw.max_packet_size,
                    MqttConfig::MAX_PACKET_SIZE_RANGE,
                )
                .unwrap_or(default.max_packet_size),
            max_connections: self
                .integer(
                    "mqtt.max_connections",
                    raw.max_connections,
                    MqttConfig::MAX_CONNECTIONS_RANGE,
                    "",
                )
                .unwrap_or(default.max_connections),
            max_pending_connections: self
                .integer(
                    "mqtt.max_pending_connections",
                    raw.max_pending_connections,
                    MqttConfig::MAX_PENDING_RANGE,
                    "",
                )
                .unwrap_or(default.max_pending_connections),
            max_pending_per_address: self
                .integer(
                    "mqtt.max_pending_per_address",
                    raw.max_pending_per_address,
                    MqttConfig::MAX_PENDING_RANGE,
                    "",
                )
                .unwrap_or(default.max_pending_per_address),
            max_inflight: self
                .integer(
                    "mqtt.max_inflight",
                    raw.max_inflight,
                    MqttConfig::MAX_INFLIGHT_RANGE,
                    "",
                )
                .unwrap_or(default.max_inflight),
            keep_alive_max_s: self
                .integer(
                    "mqtt.keep_alive_max_s",
                    raw.keep_alive_max_s,
                    MqttConfig::KEEP_ALIVE_MAX_S_RANGE,
                    " seconds",
                )
                .unwrap_or(default.keep_alive_max_s),
            connect_timeout_s: self
                .integer(
                    "mqtt.connect_timeout_s",
                    raw.connect_timeout_s,
                    MqttConfig::CONNECT_TIMEOUT_S_RANGE,
                    " seconds",
                )
                .unwrap_or(default.connect_timeout_s),
            client_id_pattern,
            websocket_listen: self.string(
                "mqtt.websocket_listen",
                raw.websocket_listen,
                "an address",
                |s| parse_socket_addr(s, "127.0.0.1:8083"),
            ),
            tls: raw.tls.and_then(|tls| self.mqtt_tls(tls)),
        }
    }

    fn mqtt_tls(&mut self, raw: raw::MqttTls) -> Option<MqttTlsConfig> {
        let listen = self
            .string("mqtt.tls.listen", raw.listen, "an address", |s| {
                parse_socket_addr(s, "0.0.0.0:8883")
            })
            .unwrap_or(MqttTlsConfig::DEFAULT_LISTEN);
        let path = |check: &mut Self, key: &str, value: Option<toml::Value>, required: bool| {
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
        let cert = path(self, "mqtt.tls.cert", raw.cert, true);
        let key = path(self, "mqtt.tls.key", raw.key, true);
        let client_ca = path(self, "mqtt.tls.client_ca", raw.client_ca, false);
        if let Some(cert) = &cert {
            self.reference("mqtt.tls.cert", Reference::Certificates(cert.clone()));
        }
        if let Some(key) = &key {
            self.reference("mqtt.tls.key", Reference::PrivateKey(key.clone()));
        }
        if let Some(ca) = &client_ca {
            self.reference("mqtt.tls.client_ca", Reference::Certificates(ca.clone()));
        }
        Some(MqttTlsConfig {
            listen,
            cert: cert?,
            key: key?,
            client_ca,
        })
    }

    fn routes(&mut self, raw: Vec<raw::Route>) -> Vec<RouteConfig> {
        let mut routes = Vec::new();
        let mut seen: HashMap<String, String> = HashMap::new();
        for (i, raw) in raw.into_iter().enumerate() {
            let key = format!("routes[{i}]");
            let topic_key = format!("{key}.topic");
            let stream_key = format!("{key}.stream");
            if raw.topic.is_none() {
                self.problem(&topic_key, "missing: every route needs a topic filter");
            }
            if raw.stream.is_none() {
                self.problem(&stream_key, "missing: every route needs a stream");
            }
            let topic = self.string(&topic_key, raw.topic, "a topic filter", |s| {
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
                    self.problem(&topic_key, message);
                    false
                }
                None => {
                    seen.insert(topic.clone(), key.clone());
                    true
                }
            });
            let stream = self.string(&stream_key, raw.stream, "a stream name", parse_stream_name);
            let partition_key = self.string(
                &format!("{key}.partition_key"),
                raw.partition_key,
                "a template",
                |s| parse_template(s).map(|_| s.to_owned()),
            );
            let format = self.string(
                &format!("{key}.format"),
                raw.format,
                "a string",
                |s| match s {
                    "raw" => Ok(RouteFormat::Raw),
                    "envelope" => Ok(RouteFormat::Envelope),
                    _ => Err(format!("`{s}` is not allowed: use \"raw\" or \"envelope\"")),
                },
            );
            if let Some(stream) = stream.as_ref().filter(|s| !self.stream_names.contains(*s)) {
                let message = format!(
                    "stream `{stream}` is not in [[streams]]: publishes to this route are \
                     refused until it is created through the API (add a [[streams]] entry to \
                     have it created at start)"
                );
                self.warning(&stream_key, message);
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

    fn video(&mut self, raw: raw::Video) -> VideoConfig {
        let default = VideoConfig::default();
        let data_dir = self.string("video.data_dir", raw.data_dir, "a directory path", |s| {
            if s.is_empty() {
                Err("must not be empty; leave data_dir out to use <storage.data_dir>/video".into())
            } else {
                Ok(PathBuf::from(s))
            }
        });
        if let Some(path) = data_dir.as_ref().filter(|p| p.is_absolute()) {
            self.reference(
                "video.data_dir",
                Reference::Directory {
                    path: path.clone(),
                    must_exist: false,
                },
            );
        }
        VideoConfig {
            data_dir,
            fragment_duration_ms: self
                .integer(
                    "video.fragment_duration_ms",
                    raw.fragment_duration_ms,
                    crate::devices::camera::CameraConfig::FRAGMENT_DURATION_MS_RANGE,
                    " ms",
                )
                .unwrap_or(default.fragment_duration_ms),
            live_segments: self
                .integer(
                    "video.live_segments",
                    raw.live_segments,
                    VideoConfig::LIVE_SEGMENTS_RANGE,
                    "",
                )
                .unwrap_or(default.live_segments),
        }
    }

    fn log(&mut self, raw: raw::Log) -> LogConfig {
        let level = self.string("log.level", raw.level, "a string", check_log_level);
        let format = self.string("log.format", raw.format, "a string", |s| match s {
            "auto" => Ok(LogFormat::Auto),
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!(
                "`{s}` is not allowed: use \"auto\", \"text\" or \"json\""
            )),
        });
        LogConfig {
            level,
            format: format.unwrap_or_default(),
        }
    }

    /// A string value checked by `parse`; `None` when absent or wrong (the problem is noted).
    pub(super) fn string<T>(
        &mut self,
        key: &str,
        value: Option<Value>,
        expected: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let value = value?;
        let Some(s) = value.as_str() else {
            self.problem(key, wrong_type(&format!("{expected} in quotes"), &value));
            return None;
        };
        parse(s).map_err(|message| self.problem(key, message)).ok()
    }

    pub(super) fn boolean(&mut self, key: &str, value: Option<Value>) -> Option<bool> {
        let value = value?;
        match value.as_bool() {
            Some(b) => Some(b),
            None => {
                self.problem(key, wrong_type("true or false", &value));
                None
            }
        }
    }

    /// A whole number in `range`; `unit` follows the range in messages (" hours").
    pub(super) fn integer<T>(
        &mut self,
        key: &str,
        value: Option<Value>,
        range: RangeInclusive<T>,
        unit: &str,
    ) -> Option<T>
    where
        T: TryFrom<i64> + PartialOrd + Display,
    {
        let value = value?;
        let Some(n) = value.as_integer() else {
            self.problem(key, wrong_type("a whole number", &value));
            return None;
        };
        match T::try_from(n) {
            Ok(n) if range.contains(&n) => Some(n),
            _ => {
                self.problem(
                    key,
                    format!(
                        "{n} is out of range: {}..={}{unit}",
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
        }
    }

    /// A size (bytes or a string with a unit) in `range`.
    pub(super) fn size(
        &mut self,
        key: &str,
        value: Option<Value>,
        range: RangeInclusive<u64>,
    ) -> Option<u64> {
        let bytes = match value? {
            Value::Integer(n) => u64::try_from(n).map_err(|_| format!("{n} is negative")),
            Value::String(s) => parse_size(&s),
            other => Err(wrong_type(
                "a number of bytes or a size like \"256MiB\"",
                &other,
            )),
        };
        let message = match bytes {
            Ok(n) if range.contains(&n) => return Some(n),
            Ok(n) if *range.end() == u64::MAX => format!(
                "{} is too small: at least {}",
                format_size(n),
                format_size(*range.start())
            ),
            Ok(n) => format!(
                "{} is out of range: {}..={}",
                format_size(n),
                format_size(*range.start()),
                format_size(*range.end())
            ),
            Err(message) => message,
        };
        self.problem(key, message);
        None
    }
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

pub(super) fn wrong_type(expected: &str, found: &Value) -> String {
    format!("expected {expected}, found {} {found}", found.type_str())
}

/// A tracing `EnvFilter` directive string, returned without blanks around commas (which
/// `EnvFilter` refuses). Bare words must be levels: tracing would take `infoo` as "trace
/// everything in target `infoo`", which is almost always a typo.
fn check_log_level(s: &str) -> Result<String, String> {
    use tracing_subscriber::filter::{EnvFilter, LevelFilter};

    const ALLOWED: &str = "use a level (off, error, warn, info, debug, trace), optionally \
                           with per-target levels, e.g. \"info,kinedge::storage=debug\"";
    if s.trim().is_empty() {
        return Err(format!(
            "must not be empty: {ALLOWED}; or leave level out for the default"
        ));
    }
    let directives: Vec<&str> = s
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    for directive in &directives {
        if !directive.contains(['=', '[']) && directive.parse::<LevelFilter>().is_err() {
            return Err(format!(
                "`{directive}` is not a level: {ALLOWED} (for a whole target write `{directive}=trace`)"
            ));
        }
    }
    let filter = directives.join(",");
    EnvFilter::builder()
        .parse(&filter)
        .map(|_| filter)
        .map_err(|err| format!("`{s}` is not a valid filter ({err}): {ALLOWED}"))
}

/// An AWS region name (`eu-west-1`).
pub(super) fn parse_region(s: &str) -> Result<String, String> {
    let valid = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "`{s}` is not a region name: use a-z, 0-9 and `-`, e.g. \"eu-west-1\""
        ))
    }
}

/// An access key id: 1..=128 of `[A-Za-z0-9_]`.
pub(super) fn parse_access_key_id(s: &str) -> Result<String, String> {
    let valid =
        (1..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "`{s}` is not an access key id: use 1..=128 characters from A-Z, a-z, 0-9, `_`"
        ))
    }
}

/// The name of an environment variable that holds a secret.
pub(super) fn parse_env_name(s: &str) -> Result<String, String> {
    if s.is_empty() || s.contains(['=', '\0']) {
        Err(format!("`{s}` is not an environment variable name"))
    } else {
        Ok(s.to_owned())
    }
}

/// Why a secret written into the file is refused; `file_key`/`env_key` are the keys to use.
pub(super) fn plaintext_secret(file_key: &str, env_key: &str) -> String {
    format!(
        "plaintext secrets are not allowed in config: put the secret in a file and set \
         {file_key}, or in an environment variable and set {env_key}"
    )
}

pub(super) fn parse_stream_name(s: &str) -> Result<String, String> {
    if StreamConfig::is_valid_name(s) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "`{s}` is not a valid stream name: use 1..=128 characters \
             from a-z, A-Z, 0-9, `_`, `.`, `-`"
        ))
    }
}

/// An `IP:PORT`; the message shows `example`.
/// An origin as a browser sends it in `Origin`: `http(s)://host[:port]`, nothing after.
fn check_origin(origin: &str) -> Result<(), String> {
    if origin == "*" {
        return Ok(());
    }
    let hint = "use \"*\" or an origin like \"https://dash.example\" or \"http://192.0.2.7:8080\" (scheme, host and port only, no path or trailing slash)";
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or_else(|| format!("`{origin}` is not an origin: {hint}"))?;
    let valid_host = !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    if valid_host && origin.parse::<http::Uri>().is_ok() {
        Ok(())
    } else {
        Err(format!("`{origin}` is not an origin: {hint}"))
    }
}

fn parse_socket_addr(s: &str, example: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .map_err(|_| format!("`{s}` is not a socket address: write IP:PORT, e.g. \"{example}\""))
}
