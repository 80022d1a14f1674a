//! `[[routes]]`: MQTT topic filter -> stream, in order; the first match wins. This module owns
//! the keys of a route (its raw serde struct), their checks, and the checked [`RouteConfig`]
//! the listener's [`super::routes::Routes`] is built from.

use std::collections::HashMap;

use serde::Deserialize;
use toml::Value;

use super::routes::parse_template;
use super::topics::check_filter;
use crate::config::check::{parse_stream_name, Check};

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
pub fn validate(check: &mut Check, raw: Vec<RawRoute>) -> Vec<RouteConfig> {
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
