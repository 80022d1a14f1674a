//! The kinedge configuration file: its schema, its built-in default and its checks.
//!
//! This module owns reading `kinedge.toml` into a [`Config`], reporting every mistake in it
//! with file, line and dotted key (`streams[1].retention_hours`), and loading API secrets.
//! It does not apply runtime precedence (`--data-dir`, `$STATE_DIRECTORY`, `RUST_LOG`):
//! callers do that with the values found here.
//!
//! How a file is checked: a span-keeping `toml_edit` document gives syntax errors and lines;
//! unknown keys are all reported (and pruned) against the schema in `raw`; serde then maps the
//! rest onto the `raw` structs (only table/array shape can fail there), and `validate` checks
//! every value, collecting all issues. `check` (the `check-config` command) adds what only the
//! machine can tell: secret files and variables, certificates, directories and device files.

pub mod camera;
pub mod check;
mod introspect;
mod load;
pub mod raw;
mod size;
pub(crate) mod spans;
mod validate;

pub use load::{read_file, Parsed};

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

pub use size::{format_size, parse_size};

/// The keys a table of type `T` supports: the fields of its serde struct, in their order.
pub fn field_names<T: serde::de::DeserializeOwned>() -> Vec<&'static str> {
    match introspect::shape_of::<T>() {
        introspect::Shape::Table(fields) => fields.into_iter().map(|(name, _)| name).collect(),
        _ => Vec::new(),
    }
}

const MIB: u64 = 1024 * 1024;

/// `[video]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoConfig {
    /// Where the fragment log lives; `None` = `<data_dir>/video`, a relative path is relative to
    /// the data directory.
    pub data_dir: Option<PathBuf>,
    /// Target fragment duration (fragments are cut at the first keyframe after it).
    pub fragment_duration_ms: u32,
    /// Fragments in a live HLS playlist.
    pub live_segments: u32,
}

impl VideoConfig {
    pub const DEFAULT_FRAGMENT_DURATION_MS: u32 = 2000;
    pub const DEFAULT_LIVE_SEGMENTS: u32 = 5;
    pub const LIVE_SEGMENTS_RANGE: std::ops::RangeInclusive<u32> = 3..=100;
}

impl Default for VideoConfig {
    fn default() -> Self {
        VideoConfig {
            data_dir: None,
            fragment_duration_ms: Self::DEFAULT_FRAGMENT_DURATION_MS,
            live_segments: Self::DEFAULT_LIVE_SEGMENTS,
        }
    }
}

/// `[delivery]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeliverySettings {
    /// Bytes per second for all uploads together; 0 = unlimited.
    pub max_bandwidth: u64,
    /// Where records go whose destination is unreachable for good and that have no error
    /// output of their own. `None` = `<data_dir>/dead-letter`; a relative path is relative to
    /// the data directory (both resolved by the caller, which knows the data directory).
    pub dead_letter_dir: Option<PathBuf>,
}

impl DeliverySettings {
    pub const DEFAULT_DEAD_LETTER_DIR: &'static str = "dead-letter";
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

/// `[devices]`: where the device files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicesConfig {
    /// Relative paths in a config file are relative to that file's folder.
    pub dir: PathBuf,
}

impl DevicesConfig {
    pub const DEFAULT_DIR: &'static str = "devices";
}

/// Where a [`Config`] came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    BuiltIn,
    File(PathBuf),
}

/// `[storage]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// `None` = not set: the caller uses `--data-dir`, then this, then `$STATE_DIRECTORY`,
    /// then `./data`.
    pub data_dir: Option<PathBuf>,
    /// Bytes of free disk below which new data is refused.
    pub min_free_disk: u64,
    /// Storage engine page cache, bytes.
    pub cache_size: u64,
    /// Group commit cap per write transaction, bytes.
    pub max_commit_bytes: u64,
    /// The writer commits at most this often (ms) unless a big group waits.
    pub commit_interval_ms: u64,
    /// Save redb's allocator state with every commit, so that opening after a crash needs
    /// no scan of the file; costs bytes written per commit that grow with the file size.
    pub quick_repair: bool,
}

/// `[api]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    /// Used in ARNs.
    pub region: String,
    /// Used in ARNs; 12 digits.
    pub account_id: String,
    /// `[[api.credentials]]`; empty = requests are not authenticated.
    pub credentials: Vec<ApiCredential>,
    /// `GET /metrics` without a signature even when credentials are configured (Prometheus
    /// cannot sign requests). Metrics carry names and counts, never record data.
    pub open_metrics: bool,
    /// Connections the API serves at once; beyond it idle ones are closed, else new ones
    /// wait in the kernel's backlog.
    pub max_connections: u32,
    /// Origins allowed by CORS (`"*"` = any); empty = no CORS headers.
    pub cors_origins: Vec<String>,
    /// `[api.tls]`: the API listener speaks TLS (ALPN h2, http/1.1).
    pub tls: Option<ApiTlsConfig>,
}

/// `[api.tls]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTlsConfig {
    /// PEM certificate chain and private key of the server.
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// One `[[api.credentials]]` entry. Holds where the secret is, never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCredential {
    pub access_key_id: String,
    pub secret: SecretSource,
}

/// Where a secret is kept: `secret_file` or `secret_env`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
}

/// `[[streams]]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    pub name: String,
    pub shards: u32,
    pub retention_hours: u32,
    /// Optional quota for the whole stream, bytes.
    pub max_bytes: Option<u64>,
    pub on_full: OnFull,
}

/// What a stream does when `max_bytes` is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFull {
    #[default]
    OverwriteOldest,
    RejectNew,
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogConfig {
    /// A tracing `EnvFilter` directive string, already validated; `RUST_LOG` overrides it.
    pub level: Option<String>,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable text on a terminal.
    #[default]
    Auto,
    Text,
    Json,
}

impl StorageConfig {
    pub const DEFAULT_MIN_FREE_DISK: u64 = 256 * MIB;
    pub const DEFAULT_CACHE_SIZE: u64 = 16 * MIB;
    pub const MIN_CACHE_SIZE: u64 = MIB;
    pub const DEFAULT_MAX_COMMIT_BYTES: u64 = 8 * MIB;
    pub const MAX_COMMIT_BYTES_RANGE: std::ops::RangeInclusive<u64> = MIB..=128 * MIB;
    pub const DEFAULT_COMMIT_INTERVAL_MS: u64 = crate::storage::DEFAULT_COMMIT_INTERVAL_MS;
    pub const COMMIT_INTERVAL_MS_RANGE: std::ops::RangeInclusive<u64> = 0..=1000;
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: None,
            min_free_disk: Self::DEFAULT_MIN_FREE_DISK,
            cache_size: Self::DEFAULT_CACHE_SIZE,
            max_commit_bytes: Self::DEFAULT_MAX_COMMIT_BYTES,
            commit_interval_ms: Self::DEFAULT_COMMIT_INTERVAL_MS,
            quick_repair: false,
        }
    }
}

impl ApiConfig {
    pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
        std::net::Ipv4Addr::LOCALHOST,
        4567,
    ));
    pub const DEFAULT_REGION: &'static str = "us-east-1";
    pub const DEFAULT_ACCOUNT_ID: &'static str = "000000000000";
    /// Well below the service's file limit (LimitNOFILE=8192) and the shell's usual 1024, so
    /// that MQTT devices and the device reload keep their descriptors.
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 256;
    pub const MAX_CONNECTIONS_RANGE: std::ops::RangeInclusive<u32> = 1..=100_000;
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: Self::DEFAULT_LISTEN,
            region: Self::DEFAULT_REGION.to_owned(),
            account_id: Self::DEFAULT_ACCOUNT_ID.to_owned(),
            credentials: Vec::new(),
            open_metrics: false,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            cors_origins: Vec::new(),
            tls: None,
        }
    }
}

impl StreamConfig {
    pub const DEFAULT_SHARDS: u32 = 1;
    pub const SHARDS_RANGE: std::ops::RangeInclusive<u32> = 1..=1024;
    pub const DEFAULT_RETENTION_HOURS: u32 = 24;
    pub const RETENTION_HOURS_RANGE: std::ops::RangeInclusive<u32> = 24..=8760;
    pub const MIN_MAX_BYTES: u64 = MIB;
    pub const MAX_NAME_LEN: usize = 128;

    /// Whether `name` is a valid stream name: 1..=128 of `[a-zA-Z0-9_.-]`.
    pub fn is_valid_name(name: &str) -> bool {
        (1..=Self::MAX_NAME_LEN).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    }
}

impl OnFull {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            OnFull::OverwriteOldest => "overwrite_oldest",
            OnFull::RejectNew => "reject_new",
        }
    }
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::BuiltIn => f.write_str("<built-in config>"),
            ConfigSource::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A file, directory or environment variable that the configuration names. `Config::parse`
/// checks only how it is written (the gateway may be configured on another machine);
/// `check-config` checks that it is there and usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// A secret in a file or variable: readable and not empty.
    Secret(SecretSource),
    /// PEM certificates (a chain or a CA bundle).
    Certificates(PathBuf),
    /// A PEM private key.
    PrivateKey(PathBuf),
    /// A directory: a directory if it exists; `must_exist` when the gateway only reads it.
    Directory { path: PathBuf, must_exist: bool },
    /// An AWS destination without `access_key_id`: its credentials come from the environment.
    AwsEnvironment,
}

impl ApiCredential {
    /// Reads the secret from its file (without the trailing newline) or environment variable.
    pub fn load_secret(&self) -> Result<String, ConfigError> {
        let id = &self.access_key_id;
        let secret = match &self.secret {
            SecretSource::File(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| ConfigError::SecretFile {
                        access_key_id: id.clone(),
                        path: path.clone(),
                        source,
                    })?;
                text.trim_end_matches(['\n', '\r']).to_owned()
            }
            SecretSource::Env(var) => {
                std::env::var(var).map_err(|source| ConfigError::SecretEnv {
                    access_key_id: id.clone(),
                    var: var.clone(),
                    source,
                })?
            }
        };
        if secret.is_empty() {
            return Err(ConfigError::EmptySecret {
                access_key_id: id.clone(),
                origin: self.secret.to_string(),
            });
        }
        Ok(secret)
    }
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::File(path) => write!(f, "secret_file `{}`", path.display()),
            SecretSource::Env(var) => write!(f, "secret_env `{var}`"),
        }
    }
}

/// Errors from using a checked configuration (loading secrets).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("api.credentials `{access_key_id}`: cannot read secret_file `{}`", path.display())]
    SecretFile {
        access_key_id: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("api.credentials `{access_key_id}`: cannot read secret_env `{var}`")]
    SecretEnv {
        access_key_id: String,
        var: String,
        source: std::env::VarError,
    },
    #[error("api.credentials `{access_key_id}`: the secret in {origin} is empty")]
    EmptySecret {
        access_key_id: String,
        origin: String,
    },
}

/// Every problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    pub issues: Vec<ConfigIssue>,
}

/// One problem: `FILE:LINE: KEY: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub file: String,
    /// 1-based; `None` when the key is not in the file (e.g. a read error).
    pub line: Option<usize>,
    /// Dotted key path such as `streams[1].retention_hours`; empty for syntax and read errors.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
