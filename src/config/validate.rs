//! The sections that still live in the config part (`[storage]`, `[api]`, `[[streams]]`,
//! `[devices]`, `[mqtt]`, `[video]`, `[log]`): from their `raw` structs to the checked types,
//! every mistake under its dotted key path.

use std::collections::HashMap;
use std::path::PathBuf;

use super::check::{
    parse_access_key_id, parse_env_name, parse_region, parse_socket_addr, parse_stream_name,
    plaintext_secret, wrong_type, Check,
};
use super::raw;
use super::{
    ApiConfig, ApiCredential, ApiTlsConfig, ConfigSource, DevicesConfig, LogConfig, LogFormat,
    MqttConfig, MqttTlsConfig, OnFull, Reference, SecretSource, StorageConfig, StreamConfig,
    VideoConfig,
};
use crate::streams::SHARD_LIMIT;

impl Check {
    pub(crate) fn storage(&mut self, raw: raw::Storage) -> StorageConfig {
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

    pub(crate) fn api(&mut self, raw: raw::Api) -> ApiConfig {
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
    pub(crate) fn cors_origins(&mut self, value: Option<toml::Value>) -> Vec<String> {
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

    pub(crate) fn api_tls(&mut self, raw: raw::ApiTls) -> Option<ApiTlsConfig> {
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

    pub(crate) fn credential(&mut self, key: &str, raw: raw::Credential) -> Option<ApiCredential> {
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

    pub(crate) fn streams(&mut self, raw: Vec<raw::Stream>) -> Vec<StreamConfig> {
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

    pub(crate) fn devices(&mut self, raw: raw::Devices, source: &ConfigSource) -> DevicesConfig {
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

    pub(crate) fn mqtt(&mut self, raw: raw::Mqtt) -> MqttConfig {
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

    pub(crate) fn mqtt_tls(&mut self, raw: raw::MqttTls) -> Option<MqttTlsConfig> {
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

    pub(crate) fn video(&mut self, raw: raw::Video) -> VideoConfig {
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
                    crate::config::camera::CameraConfig::FRAGMENT_DURATION_MS_RANGE,
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

    pub(crate) fn log(&mut self, raw: raw::Log) -> LogConfig {
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
