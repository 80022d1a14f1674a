//! The `mqtt` destination's configuration: its keys (the raw struct, whose fields are the
//! supported keys), their checks, the checked [`MqttDestinationConfig`] (persisted as JSON with delivery
//! streams created through the Firehose API: its serde form must not change) and how to
//! build the destination from it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use toml::Value;

use super::super::{BuildError, Destination, DestinationCheck, DestinationContext};
use crate::config::check::Check;
use crate::config::field_names;
use crate::config::Reference;
use crate::delivery::config::fields::{parse_path, parse_url};
use crate::delivery::config::{Fields, Secret};

/// Bounds of MQTT strings.
const MAX_MQTT_CLIENT_ID: usize = 128;
const MAX_MQTT_TOPIC: usize = 65_535;

/// The keys of the table, as written; each value is checked by [`validate`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct Raw {
    /// `"mqtt"`.
    pub r#type: Option<Value>,
    /// Broker URL with port, `mqtt://` or `mqtts://`; required.
    pub url: Option<Value>,
    /// Topic template with `{stream}` and `{partition_key}`; required.
    pub topic: Option<Value>,
    /// Client id; default `kinedge-<delivery stream name>`.
    pub client_id: Option<Value>,
    /// PEM CA bundle for `mqtts://` (else the system roots).
    pub ca: Option<Value>,
    /// PEM client certificate (with `key`).
    pub cert: Option<Value>,
    /// PEM private key of `cert`.
    pub key: Option<Value>,
    /// User name.
    pub username: Option<Value>,
    /// Environment variable holding the password (with `username`).
    pub password_env: Option<Value>,
    /// File holding the password (with `username`).
    pub password_file: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MqttDestinationConfig {
    /// `mqtt://host:1883` or `mqtts://host:8883`.
    pub url: String,
    /// Template: `{stream}` (delivery stream), `{partition_key}` and text.
    pub topic: String,
    pub client_id: String,
    /// PEM CA bundle for `mqtts://` (else the system roots).
    pub ca: Option<PathBuf>,
    /// PEM client certificate and key (AWS IoT Core), both or neither.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

pub(crate) fn validate(
    check: &mut Check,
    f: &mut Fields,
    what: &str,
    ctx: &DestinationCheck<'_>,
) -> Option<MqttDestinationConfig> {
    check.unknown_keys(f, what, &field_names::<Raw>(), Some(("password_file", "password_env")));
    let url = check.required(
        f,
        "url",
        "a URL",
        &format!("{what} needs the broker's url, e.g. \"mqtts://broker.example.com:8883\""),
        parse_mqtt_url,
    );
    let topic = check.required(
        f,
        "topic",
        "a topic template",
        &format!("{what} needs a topic template, e.g. \"gateways/gw1/{{stream}}\""),
        check_topic_template,
    );
    let client_id = check.optional(f, "client_id", "a string", |s| {
        if s.is_empty() || s.len() > MAX_MQTT_CLIENT_ID || s.chars().any(char::is_control) {
            Err(format!(
                "must be 1..={MAX_MQTT_CLIENT_ID} bytes without control characters; leave \
                 client_id out for \"kinedge-<delivery stream name>\""
            ))
        } else {
            Ok(s.to_owned())
        }
    });
    let mut paths = BTreeMap::new();
    for name in ["ca", "cert", "key"] {
        let key = f.key(name);
        let value = f.take(name);
        let given = value.is_some();
        let path = check.string(&key, value, "a file path", parse_path);
        if let Some(path) = &path {
            let reference = if name == "key" {
                Reference::PrivateKey(path.clone())
            } else {
                Reference::Certificates(path.clone())
            };
            check.reference(&key, reference);
        }
        paths.insert(name, (key, given, path));
    }
    let given = |name: &str| paths.get(name).is_some_and(|(_, given, _)| *given);
    for (present, absent) in [("cert", "key"), ("key", "cert")] {
        if given(present) && !given(absent) {
            if let Some((key, _, _)) = paths.get(present) {
                check.problem(
                    key,
                    format!(
                        "`{present}` without `{absent}`: give both (a PEM client certificate \
                         and its private key) or neither"
                    ),
                );
            }
        }
    }
    if let Some((_, false)) = url {
        for (name, (key, given, _)) in &paths {
            if *given {
                check.problem(
                    key,
                    format!(
                        "`{name}` is only used with TLS, but url is mqtt://: use an \
                         mqtts:// url, or leave {name} out"
                    ),
                );
            }
        }
    }
    let username_key = f.key("username");
    let username = check.optional(f, "username", "a string", |s| {
        if s.is_empty() || s.len() > usize::from(u16::MAX) {
            Err(format!("must be 1..={} bytes", u16::MAX))
        } else {
            Ok(s.to_owned())
        }
    });
    let had_username =
        username.is_some() || check.problems.iter().any(|(k, _)| *k == username_key);
    let password = check.secret(f, "password_file", "password_env");
    if let Ok(Some((_, key))) = &password {
        if !had_username {
            check.problem(
                key,
                "a password needs a username (MQTT sends no password without one): set \
                 username too",
            );
        }
    }
    let mut path = |name: &str| paths.remove(name).and_then(|(_, _, path)| path);
    let (ca, cert, key) = (path("ca"), path("cert"), path("key"));
    Some(MqttDestinationConfig {
        url: url?.0,
        topic: topic?,
        client_id: client_id.unwrap_or_else(|| format!("kinedge-{}", ctx.name)),
        ca,
        cert,
        key,
        username,
        password: password.ok()?.map(|(secret, _)| secret),
    })
}

/// Where it delivers, without secrets (for status).
pub(crate) fn target(c: &MqttDestinationConfig) -> String {
    format!("{} {}", c.url, c.topic)
}

/// Builds the destination.
pub(crate) async fn build(
    c: &MqttDestinationConfig,
    context: &DestinationContext,
) -> Result<Box<dyn Destination>, BuildError> {
    Ok(Box::new(super::MqttDestination::new(c, context).await?))
}

/// An MQTT broker URL with its port; also says whether it uses TLS (`mqtts://`).
fn parse_mqtt_url(s: &str) -> Result<(String, bool), String> {
    const EXAMPLE: &str = "mqtts://broker.example.com:8883";
    let url = parse_url(s, &["mqtt", "mqtts"], EXAMPLE)?;
    let parsed = reqwest::Url::parse(&url).map_err(|err| err.to_string())?;
    if parsed.port().is_none() {
        return Err(format!(
            "`{s}` has no port: write e.g. \"mqtt://broker:1883\" or \"{EXAMPLE}\""
        ));
    }
    if !matches!(parsed.path(), "" | "/") || parsed.query().is_some() {
        return Err(format!(
            "`{s}` has a path or query: write only mqtt(s)://host:port, e.g. \"{EXAMPLE}\""
        ));
    }
    let tls = parsed.scheme() == "mqtts";
    Ok((url, tls))
}

/// An MQTT topic to publish to, with `{stream}` and `{partition_key}` placeholders.
fn check_topic_template(s: &str) -> Result<String, String> {
    const PLACEHOLDERS: &str = "use {stream} or {partition_key}";
    if s.is_empty() || s.len() > MAX_MQTT_TOPIC {
        return Err(format!("must be 1..={MAX_MQTT_TOPIC} bytes long"));
    }
    if s.contains(['+', '#', '\0']) {
        return Err(format!(
            "`{s}` is not a topic to publish to: it must not contain `+`, `#` or NUL"
        ));
    }
    let mut rest = s;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err(format!("`{s}` has a `}}` without `{{`: {PLACEHOLDERS}"));
        }
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err(format!("`{s}` has an unclosed `{{`: {PLACEHOLDERS}"));
        };
        let name = &after[..close];
        if !matches!(name, "stream" | "partition_key") {
            return Err(format!("unknown placeholder {{{name}}}: {PLACEHOLDERS}"));
        }
        rest = &after[close + 1..];
    }
    Ok(s.to_owned())
}
