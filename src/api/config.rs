//! `[api]`, `[api.tls]` and `[[api.credentials]]`: the HTTP API's settings. This module owns
//! their keys (the raw serde structs: their fields are the supported keys), their checks, the
//! checked [`ApiConfig`] and loading a credential's secret (never kept in the file).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Value;

use crate::config::check::{
    parse_access_key_id, parse_env_name, parse_region, parse_socket_addr, plaintext_secret,
    wrong_type, Check,
};
use crate::config::{Reference, SecretSource};

/// `[api]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    /// The HTTP API's address; default `"127.0.0.1:4567"`.
    pub listen: Option<Value>,
    /// Region used in ARNs; default `"us-east-1"`.
    pub region: Option<Value>,
    /// Account id used in ARNs, 12 digits; default `"000000000000"`.
    pub account_id: Option<Value>,
    /// `GET /metrics` without a signature even with credentials (for Prometheus); default false.
    pub open_metrics: Option<Value>,
    /// Connections the API serves at once (1-100000); default 256.
    pub max_connections: Option<Value>,
    /// Origins allowed by CORS, e.g. `["https://dash.example"]`; `["*"]` = any; default none.
    pub cors_origins: Option<Value>,
    /// `[api.tls]`: the API listener speaks TLS (ALPN `h2` and `http/1.1`).
    pub tls: Option<RawApiTls>,
    /// `[[api.credentials]]`: when present every request needs a valid SigV4 signature.
    pub credentials: Option<Vec<RawCredential>>,
    /// Enhanced fan-out consumers one stream can have registered (1-10000); default 20, Kinesis's limit.
    pub max_consumers_per_stream: Option<Value>,
}

/// `[api.tls]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApiTls {
    /// PEM certificate chain of the server; required.
    pub cert: Option<Value>,
    /// PEM private key of `cert`; required.
    pub key: Option<Value>,
}

/// One `[[api.credentials]]` entry as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCredential {
    /// The access key id (1-128 of A-Z a-z 0-9 _); required.
    pub access_key_id: Option<Value>,
    /// File holding the secret key (one of `secret_file`, `secret_env`).
    pub secret_file: Option<Value>,
    /// Environment variable holding the secret key.
    pub secret_env: Option<Value>,
    /// Only to refuse it with a reason (see `validate`).
    pub secret: Option<serde::de::IgnoredAny>,
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
    /// Enhanced fan-out consumers one stream can have (RegisterStreamConsumer); each can hold
    /// one SubscribeToShard subscription per shard.
    pub max_consumers_per_stream: u32,
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
    /// Kinesis's limit.
    pub const DEFAULT_MAX_CONSUMERS_PER_STREAM: u32 = 20;
    pub const MAX_CONSUMERS_PER_STREAM_RANGE: std::ops::RangeInclusive<u32> = 1..=10_000;
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
            max_consumers_per_stream: Self::DEFAULT_MAX_CONSUMERS_PER_STREAM,
        }
    }
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

pub fn validate(check: &mut Check, raw: RawApi) -> ApiConfig {
    let listen = check.string("api.listen", raw.listen, "an address", |s| {
        parse_socket_addr(s, "127.0.0.1:4567")
    });
    let region = check.string("api.region", raw.region, "a region name", parse_region);
    let account_id = check.string("api.account_id", raw.account_id, "a string", |s| {
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(s.to_owned())
        } else {
            Err(format!(
                "`{s}` is not an account id: use exactly 12 digits, e.g. \"000000000000\""
            ))
        }
    });
    let open_metrics = check
        .boolean("api.open_metrics", raw.open_metrics)
        .unwrap_or(false);
    let max_connections = check
        .integer(
            "api.max_connections",
            raw.max_connections,
            ApiConfig::MAX_CONNECTIONS_RANGE,
            "",
        )
        .unwrap_or(ApiConfig::DEFAULT_MAX_CONNECTIONS);
    let max_consumers_per_stream = check
        .integer(
            "api.max_consumers_per_stream",
            raw.max_consumers_per_stream,
            ApiConfig::MAX_CONSUMERS_PER_STREAM_RANGE,
            "",
        )
        .unwrap_or(ApiConfig::DEFAULT_MAX_CONSUMERS_PER_STREAM);
    let cors_origins = cors_origins(check, raw.cors_origins);
    let tls = raw.tls.and_then(|tls| api_tls(check, tls));
    let mut credentials = Vec::new();
    let mut seen = HashMap::new();
    for (i, raw) in raw.credentials.unwrap_or_default().into_iter().enumerate() {
        let key = format!("api.credentials[{i}]");
        if let Some(credential) = credential(check, &key, raw) {
            let id_key = format!("{key}.access_key_id");
            match seen.get(&credential.access_key_id) {
                Some(first) => check.problem(
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
        max_consumers_per_stream,
    }
}

/// `api.cors_origins`: `["*"]` or origins as browsers send them (`https://host[:port]`).
fn cors_origins(check: &mut Check, value: Option<toml::Value>) -> Vec<String> {
    const KEY: &str = "api.cors_origins";
    let Some(value) = value else {
        return Vec::new();
    };
    let Some(items) = value.as_array() else {
        check.problem(
            KEY,
            wrong_type("a list of origins, e.g. [\"https://dash.example\"]", &value),
        );
        return Vec::new();
    };
    let mut origins = Vec::new();
    for item in items {
        let Some(origin) = item.as_str() else {
            check.problem(KEY, wrong_type("origins in quotes", item));
            continue;
        };
        match check_origin(origin) {
            Ok(()) => origins.push(origin.to_owned()),
            Err(message) => check.problem(KEY, message),
        }
    }
    if origins.len() > 1 && origins.iter().any(|o| o == "*") {
        check.problem(
            KEY,
            "\"*\" allows every origin: list it alone, or list the origins without it",
        );
    }
    origins
}

fn api_tls(check: &mut Check, raw: RawApiTls) -> Option<ApiTlsConfig> {
    let mut path = |key: &str, value: Option<toml::Value>| {
        if value.is_none() {
            check.problem(key, "missing: TLS on the API needs a PEM certificate chain (cert) and its private key (key)");
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
    let cert = path("api.tls.cert", raw.cert);
    let key = path("api.tls.key", raw.key);
    if let Some(cert) = &cert {
        check.reference("api.tls.cert", Reference::Certificates(cert.clone()));
    }
    if let Some(key) = &key {
        check.reference("api.tls.key", Reference::PrivateKey(key.clone()));
    }
    Some(ApiTlsConfig {
        cert: cert?,
        key: key?,
    })
}

fn credential(check: &mut Check, key: &str, raw: RawCredential) -> Option<ApiCredential> {
    let id_key = format!("{key}.access_key_id");
    let has_id = raw.access_key_id.is_some();
    let access_key_id = check.string(&id_key, raw.access_key_id, "a string", parse_access_key_id);
    if !has_id {
        check.problem(&id_key, "missing: every credential needs an access_key_id");
    }
    if raw.secret.is_some() {
        check.problem(
            &format!("{key}.secret"),
            plaintext_secret("secret_file", "secret_env"),
        );
    }
    let file_key = format!("{key}.secret_file");
    let env_key = format!("{key}.secret_env");
    let secret = match (raw.secret_file, raw.secret_env) {
        (Some(file), None) => check
            .string(&file_key, Some(file), "a file path", |s| {
                if s.is_empty() {
                    Err("must not be empty".into())
                } else {
                    Ok(SecretSource::File(PathBuf::from(s)))
                }
            })
            .inspect(|secret| check.reference(&file_key, Reference::Secret(secret.clone()))),
        (None, Some(env)) => check
            .string(&env_key, Some(env), "a variable name", |s| {
                parse_env_name(s).map(SecretSource::Env)
            })
            .inspect(|secret| check.reference(&env_key, Reference::Secret(secret.clone()))),
        (Some(_), Some(_)) => {
            check.problem(
                &env_key,
                "both secret_file and secret_env are set: give exactly one",
            );
            None
        }
        (None, None) => {
            if raw.secret.is_none() {
                check.problem(
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
