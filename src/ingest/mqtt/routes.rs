//! MQTT routes: which stream a PUBLISH goes to, with which partition key and record data.
//!
//! This module owns the `[[routes]]` table at run time: first-match-wins lookup of a topic
//! name, the partition-key template (`{device}`, `{client_id}`, `{topic[N]}`,
//! `{payload.FIELD}`) with its parser, which config validation shares, and the record data of
//! each format (`raw` bytes, or a JSON `envelope` with topic, device and receive time). It does
//! not commit records or decide who may publish: the listener does, with the device registry.

use std::fmt;

use base64::Engine as _;
use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

pub use super::config::{RouteConfig, RouteFormat};

use crate::devices::topics;

/// Kinesis partition keys are at most 256 Unicode characters.
pub const MAX_PARTITION_KEY_CHARS: usize = 256;

const PLACEHOLDERS: &str = "use {device}, {client_id}, {topic[N]} or {payload.FIELD}";

/// The routes of the config, in order; the first whose filter matches a topic wins.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    routes: Vec<Route>,
}

/// One `[[routes]]` entry, ready to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The MQTT topic filter.
    pub filter: String,
    /// The stream records go to.
    pub stream: String,
    pub format: RouteFormat,
    partition_key: Template,
}

/// A parsed partition-key template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Device,
    ClientId,
    /// 0-based level of the topic name.
    TopicLevel(usize),
    /// Path into a JSON payload; an all-digit segment also indexes into an array.
    PayloadField(Vec<String>),
    /// Never fills: the key falls back to the topic. Stands in for a template that failed to
    /// parse in [`Routes::new`] (config validation makes that impossible).
    Unfillable,
}

/// What the listener knows about one PUBLISH.
#[derive(Debug, Clone, Copy)]
pub struct PublishContext<'a> {
    pub topic: &'a str,
    pub device: &'a str,
    pub client_id: &'a str,
    pub qos: u8,
    pub retain: bool,
    pub payload: &'a [u8],
    /// Receive time, milliseconds since the Unix epoch.
    pub received_ms: u64,
}

impl Routes {
    /// The routes of `routes`, in order. Templates were validated with the config; one that
    /// does not parse here (impossible for a checked config) makes every key fall back to the
    /// topic name.
    pub fn new(routes: &[RouteConfig]) -> Routes {
        let routes = routes
            .iter()
            .map(|route| {
                let partition_key = parse_template(&route.partition_key).unwrap_or_else(|err| {
                    tracing::warn!(
                        topic = %route.topic,
                        "partition_key {:?}: {err}; using the topic name", route.partition_key
                    );
                    Template {
                        parts: vec![Part::Unfillable],
                    }
                });
                Route {
                    filter: route.topic.clone(),
                    stream: route.stream.clone(),
                    format: route.format,
                    partition_key,
                }
            })
            .collect();
        Routes { routes }
    }

    /// The first route whose filter matches the topic name `topic`.
    pub fn route(&self, topic: &str) -> Option<&Route> {
        self.routes
            .iter()
            .find(|route| topics::matches(&route.filter, topic))
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }
}

impl Route {
    /// The partition key: the template filled in. A placeholder that cannot be filled (payload
    /// not JSON, field missing or not a string, number or bool, topic level missing) makes the
    /// whole key fall back to the topic name; so does an empty result. Cut to at most 256
    /// characters. Never fails. JSON strings are used without quotes, numbers and bools as
    /// their JSON text.
    pub fn partition_key(&self, ctx: &PublishContext) -> String {
        let key = self
            .partition_key
            .fill(ctx)
            .filter(|key| !key.is_empty())
            .unwrap_or_else(|| ctx.topic.to_owned());
        cut_chars(key, MAX_PARTITION_KEY_CHARS)
    }

    /// The record data: `raw` = the payload as it came; `envelope` = compact JSON
    /// `{"topic","device","client_id","qos","retain","received_at","payload","payload_encoding"}`
    /// with the payload as a JSON string (`"utf8"`) or, when it is not UTF-8, standard base64
    /// (`"base64"`).
    pub fn record_data(&self, ctx: &PublishContext) -> Bytes {
        match self.format {
            RouteFormat::Raw => Bytes::copy_from_slice(ctx.payload),
            RouteFormat::Envelope => envelope(ctx),
        }
    }
}

/// The partition-key template parser, shared with config validation. Errors name the problem
/// (the caller adds the key), e.g. `unknown placeholder {foo}: use {device}, ...`.
pub fn parse_template(text: &str) -> Result<Template, String> {
    if text.is_empty() {
        return Err(format!("must not be empty: {PLACEHOLDERS}, or text"));
    }
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(['{', '}']) {
        literal.push_str(&rest[..at]);
        if rest[at..].starts_with('}') {
            return Err(format!(
                "`}}` without `{{` at character {}: placeholders are {{NAME}}; {PLACEHOLDERS}",
                char_index(text, rest, at)
            ));
        }
        let inner = &rest[at + 1..];
        let Some(close) = inner
            .find(['}', '{'])
            .filter(|&i| inner[i..].starts_with('}'))
        else {
            return Err(format!(
                "unclosed `{{` at character {}: {PLACEHOLDERS}",
                char_index(text, rest, at)
            ));
        };
        let name = &inner[..close];
        let part = placeholder(name)
            .ok_or_else(|| format!("unknown placeholder {{{name}}}: {PLACEHOLDERS}"))?;
        if !literal.is_empty() {
            parts.push(Part::Literal(std::mem::take(&mut literal)));
        }
        parts.push(part);
        rest = &inner[close + 1..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(Part::Literal(literal));
    }
    Ok(Template { parts })
}

/// 1-based character position of byte `at` of `rest`, a suffix of `text`.
fn char_index(text: &str, rest: &str, at: usize) -> usize {
    let offset = text.len() - rest.len() + at;
    text[..offset].chars().count() + 1
}

fn placeholder(name: &str) -> Option<Part> {
    match name {
        "device" => return Some(Part::Device),
        "client_id" => return Some(Part::ClientId),
        _ => {}
    }
    if let Some(index) = name
        .strip_prefix("topic[")
        .and_then(|rest| rest.strip_suffix(']'))
    {
        if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        return index.parse().ok().map(Part::TopicLevel);
    }
    let path = name.strip_prefix("payload.")?;
    let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
    if segments.iter().any(String::is_empty) {
        return None;
    }
    Some(Part::PayloadField(segments))
}

impl Template {
    /// The filled-in text; `None` when a placeholder cannot be filled.
    fn fill(&self, ctx: &PublishContext) -> Option<String> {
        // Parsed at most once, and only when a payload field is used.
        let mut payload: Option<Option<Value>> = None;
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Device => out.push_str(ctx.device),
                Part::ClientId => out.push_str(ctx.client_id),
                Part::TopicLevel(n) => out.push_str(ctx.topic.split('/').nth(*n)?),
                Part::PayloadField(path) => {
                    let json = payload
                        .get_or_insert_with(|| serde_json::from_slice(ctx.payload).ok())
                        .as_ref()?;
                    let value = path.iter().try_fold(json, |value, segment| match value {
                        Value::Object(map) => map.get(segment),
                        Value::Array(items) => segment
                            .parse::<usize>()
                            .ok()
                            .and_then(|index| items.get(index)),
                        _ => None,
                    })?;
                    match value {
                        Value::String(s) => out.push_str(s),
                        Value::Number(n) => out.push_str(&n.to_string()),
                        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                        Value::Null | Value::Array(_) | Value::Object(_) => return None,
                    }
                }
                Part::Unfillable => return None,
            }
        }
        Some(out)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Literal(text) => f.write_str(text)?,
                Part::Device => f.write_str("{device}")?,
                Part::ClientId => f.write_str("{client_id}")?,
                Part::TopicLevel(n) => write!(f, "{{topic[{n}]}}")?,
                Part::PayloadField(path) => write!(f, "{{payload.{}}}", path.join("."))?,
                Part::Unfillable => f.write_str("{?}")?,
            }
        }
        Ok(())
    }
}

/// At most `max` characters of `text`, cut on a character boundary.
fn cut_chars(mut text: String, max: usize) -> String {
    if let Some((at, _)) = text.char_indices().nth(max) {
        text.truncate(at);
    }
    text
}

#[derive(Serialize)]
struct Envelope<'a> {
    topic: &'a str,
    device: &'a str,
    client_id: &'a str,
    qos: u8,
    retain: bool,
    received_at: u64,
    payload: std::borrow::Cow<'a, str>,
    payload_encoding: &'static str,
}

fn envelope(ctx: &PublishContext) -> Bytes {
    let (payload, payload_encoding) = match std::str::from_utf8(ctx.payload) {
        Ok(text) => (std::borrow::Cow::Borrowed(text), "utf8"),
        Err(_) => (
            std::borrow::Cow::Owned(base64::engine::general_purpose::STANDARD.encode(ctx.payload)),
            "base64",
        ),
    };
    let envelope = Envelope {
        topic: ctx.topic,
        device: ctx.device,
        client_id: ctx.client_id,
        qos: ctx.qos,
        retain: ctx.retain,
        received_at: ctx.received_ms,
        payload,
        payload_encoding,
    };
    let json = serde_json::to_vec(&envelope)
        .expect("a struct of strings, numbers and bools always serializes");
    Bytes::from(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(topic: &str, stream: &str, key: &str, format: RouteFormat) -> RouteConfig {
        RouteConfig {
            topic: topic.into(),
            stream: stream.into(),
            partition_key: key.into(),
            format,
        }
    }

    fn ctx<'a>(topic: &'a str, payload: &'a [u8]) -> PublishContext<'a> {
        PublishContext {
            topic,
            device: "sensor-1",
            client_id: "sensor-1-a",
            qos: 1,
            retain: false,
            payload,
            received_ms: 1_700_000_000_123,
        }
    }

    fn key(template: &str, topic: &str, payload: &[u8]) -> String {
        let routes = Routes::new(&[route("#", "s", template, RouteFormat::Raw)]);
        let route = routes.route(topic).expect("# matches");
        route.partition_key(&ctx(topic, payload))
    }

    #[test]
    fn first_matching_route_wins() {
        let routes = Routes::new(&[
            route(
                "devices/+/telemetry",
                "telemetry",
                "{device}",
                RouteFormat::Raw,
            ),
            route("devices/s1/#", "s1", "{device}", RouteFormat::Envelope),
            route("devices/#", "rest", "{device}", RouteFormat::Raw),
        ]);
        assert!(!routes.is_empty());
        assert_eq!(routes.len(), 3);
        let stream = |topic: &str| routes.route(topic).map(|r| r.stream.as_str());
        assert_eq!(stream("devices/s1/telemetry"), Some("telemetry"));
        assert_eq!(stream("devices/s1/status"), Some("s1"));
        assert_eq!(stream("devices/s2/status"), Some("rest"));
        assert_eq!(stream("other/s1"), None);
        let route = routes.route("devices/s1/status").expect("a route");
        assert_eq!(route.filter, "devices/s1/#");
        assert_eq!(route.format, RouteFormat::Envelope);
        assert!(Routes::new(&[]).is_empty());
        assert_eq!(Routes::new(&[]).route("a"), None);
    }

    #[test]
    fn every_placeholder_kind() {
        let payload = br#"{"sensor":"t1","n":42,"f":1.5,"ok":true,"meta":{"id":"m-7","deep":{"x":3}},"list":["a","b"]}"#;
        let topic = "devices/sensor-1/telemetry";
        assert_eq!(key("{device}", topic, payload), "sensor-1");
        assert_eq!(key("{client_id}", topic, payload), "sensor-1-a");
        assert_eq!(key("{topic[0]}", topic, payload), "devices");
        assert_eq!(key("{topic[2]}", topic, payload), "telemetry");
        assert_eq!(key("{payload.sensor}", topic, payload), "t1");
        assert_eq!(key("{payload.n}", topic, payload), "42");
        assert_eq!(key("{payload.f}", topic, payload), "1.5");
        assert_eq!(key("{payload.ok}", topic, payload), "true");
        assert_eq!(key("{payload.meta.id}", topic, payload), "m-7");
        assert_eq!(key("{payload.meta.deep.x}", topic, payload), "3");
        assert_eq!(key("{payload.list.1}", topic, payload), "b");
        assert_eq!(
            key(
                "gw/{device}/{topic[2]}:{payload.meta.id}-{client_id}",
                topic,
                payload
            ),
            "gw/sensor-1/telemetry:m-7-sensor-1-a"
        );
        assert_eq!(key("fixed", topic, payload), "fixed");
    }

    #[test]
    fn unfillable_placeholders_fall_back_to_the_topic() {
        let topic = "devices/sensor-1/telemetry";
        let json = br#"{"sensor":"t1","meta":{"id":null},"obj":{"a":1},"empty":""}"#;
        for template in [
            "{topic[3]}",
            "x-{payload.missing}",
            "{payload.meta.id}",
            "{payload.meta.id.more}",
            "{payload.obj}",
            "{payload.sensor.deeper}",
            "{payload.empty}",
        ] {
            assert_eq!(key(template, topic, json), topic, "{template}");
        }
        // Not JSON at all, or not UTF-8.
        assert_eq!(key("{payload.sensor}", topic, b"21.5"), topic);
        assert_eq!(key("{payload.sensor}", topic, b"not json"), topic);
        assert_eq!(key("{payload.sensor}", topic, &[0xff, 0x00]), topic);
        assert_eq!(key("{device}-{payload.sensor}", topic, b""), topic);
        // An empty result falls back too; an empty level is fine inside a longer key.
        assert_eq!(key("{topic[1]}", "a//b", b""), "a//b");
        assert_eq!(key("k{topic[1]}", "a//b", b""), "k");
    }

    #[test]
    fn keys_are_cut_to_256_characters() {
        let long = "é".repeat(300);
        let payload = format!(r#"{{"k":"{long}"}}"#);
        let cut = key("{payload.k}", "t", payload.as_bytes());
        assert_eq!(cut.chars().count(), 256);
        assert_eq!(cut, "é".repeat(256));
        // The fallback topic is cut as well; multibyte characters stay whole.
        let topic = format!("a/{}", "€".repeat(300));
        let cut = key("{topic[9]}", &topic, b"");
        assert_eq!(cut.chars().count(), 256);
        assert!(topic.starts_with(&cut));
        assert_eq!(cut_chars("ab".into(), 256), "ab");
    }

    #[test]
    fn raw_is_the_payload_as_it_came() {
        let routes = Routes::new(&[route("#", "s", "{device}", RouteFormat::Raw)]);
        let route = routes.route("a/b").expect("a route");
        let payload = [0u8, 159, 146, 150, b'x'];
        assert_eq!(&route.record_data(&ctx("a/b", &payload))[..], &payload);
    }

    fn envelope_of(payload: &[u8]) -> serde_json::Map<String, Value> {
        let routes = Routes::new(&[route("#", "s", "{device}", RouteFormat::Envelope)]);
        let route = routes.route("devices/sensor-1/telemetry").expect("a route");
        let mut ctx = ctx("devices/sensor-1/telemetry", payload);
        ctx.qos = 2;
        ctx.retain = true;
        let data = route.record_data(&ctx);
        assert!(!data.contains(&b'\n'), "compact JSON");
        match serde_json::from_slice(&data) {
            Ok(Value::Object(map)) => map,
            other => panic!("not a JSON object: {other:?}"),
        }
    }

    #[test]
    fn envelope_of_a_utf8_payload() {
        let map = envelope_of("{\"t\":21.5,\"unit\":\"°C\"}".as_bytes());
        assert_eq!(map["topic"], "devices/sensor-1/telemetry");
        assert_eq!(map["device"], "sensor-1");
        assert_eq!(map["client_id"], "sensor-1-a");
        assert_eq!(map["qos"], 2);
        assert_eq!(map["retain"], true);
        assert_eq!(map["received_at"], 1_700_000_000_123u64);
        assert_eq!(map["payload"], "{\"t\":21.5,\"unit\":\"°C\"}");
        assert_eq!(map["payload_encoding"], "utf8");
        assert_eq!(map.len(), 8);
        assert_eq!(envelope_of(b"")["payload"], "");
    }

    #[test]
    fn envelope_of_a_binary_payload() {
        let payload = [0xffu8, 0xfe, 0x00, 0x41];
        let map = envelope_of(&payload);
        assert_eq!(map["payload_encoding"], "base64");
        let encoded = map["payload"].as_str().expect("a string");
        assert_eq!(encoded, "//4AQQ==");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("standard base64");
        assert_eq!(decoded, payload);
    }

    #[test]
    fn template_parse_errors() {
        let err = |text: &str| parse_template(text).expect_err(text);
        assert_eq!(
            err("{foo}"),
            "unknown placeholder {foo}: use {device}, {client_id}, {topic[N]} or {payload.FIELD}"
        );
        for bad in [
            "{topic[]}",
            "{topic[x]}",
            "{topic[-1]}",
            "{topic}",
            "{payload}",
            "{payload.}",
            "{payload.a..b}",
            "{Device}",
            "{}",
        ] {
            assert!(err(bad).starts_with("unknown placeholder {"), "{bad}");
        }
        assert!(err("a{device").starts_with("unclosed `{` at character 2"));
        assert!(err("{dev{device}").starts_with("unclosed `{` at character 1"));
        assert!(err("é}").starts_with("`}` without `{` at character 2"));
        assert!(err("").starts_with("must not be empty"));
        for good in [
            "{device}",
            "x",
            "{topic[10]}/{payload.a.b.c}",
            "{client_id}{device}",
        ] {
            let template = parse_template(good).expect(good);
            assert_eq!(template.to_string(), good);
        }
    }

    #[test]
    fn a_template_that_does_not_parse_falls_back_to_the_topic() {
        let routes = Routes::new(&[route("#", "s", "{nope}", RouteFormat::Raw)]);
        let route = routes.route("a/b").expect("a route");
        assert_eq!(route.partition_key(&ctx("a/b", b"")), "a/b");
    }
}
