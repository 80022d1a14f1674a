//! `[[delivery_streams]]` and `[delivery]`: their raw serde structs and the checks from the
//! raw values to the types of `super`, with every mistake under its dotted key path.
//!
//! `source`, `buffer`, `processors` and `destination` are (inline) tables whose keys depend on
//! their `type`: each is checked against the fields of its own raw struct (processors in
//! `crate::delivery::processors::config`, destinations in their folders), in the same words as
//! the config toolkit's unknown keys. The shared table checks are in `super::fields`.

use std::collections::{BTreeSet, HashMap};

use serde::Deserialize;
use toml::Value;

use super::fields::parse_path;
use super::DeliverySettings;
use super::{
    BufferHints, Compression, DeliveryStreamConfig, DestinationConfig, HttpEndpointConfig,
    SourceConfig, StartPosition,
};
use crate::config::check::{parse_stream_name, Check};
use crate::config::field_names;
use crate::config::format_size;
use crate::config::raw::join;
use crate::delivery::destinations::{self, DestinationCheck};

/// One `[[delivery_streams]]` entry. `source`, `buffer`, `processors` and `destination` are
/// kept whole: their keys depend on their `type`, so this module checks them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeliveryStream {
    /// Delivery stream name, 1-64 of a-z A-Z 0-9 _ . -; required.
    pub name: Option<Value>,
    /// `{ stream = "NAME", start = "trim_horizon" | "latest" }`, `"direct_put"` or `"video"`;
    /// required.
    pub source: Option<Value>,
    /// `{ size = "5MiB", interval_s = 300 }`: a batch goes out at either.
    pub buffer: Option<Value>,
    /// `"none"` (default), `"gzip"`, `"zstd"` or `"snappy"`.
    pub compression: Option<Value>,
    /// 1 (served first)-10 for the shared bandwidth cap; default 5.
    pub priority: Option<Value>,
    /// `[{ type = ... }]`: `filter`, `partition_keys`, `append_delimiter`, `metadata`,
    /// `http_transform`.
    pub processors: Option<Value>,
    /// `{ type = ... }`: see the destination types below; required.
    pub destination: Option<Value>,
}

/// `source = { ... }` of a delivery stream reading a stream.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct RawStreamSource {
    /// The stream to read; required.
    pub stream: Option<Value>,
    /// `"trim_horizon"` (default: the oldest record kept) or `"latest"`.
    pub start: Option<Value>,
}

/// `buffer = { ... }`: a batch goes out when it holds `size`, or when its oldest record has
/// waited `interval_s`, whichever comes first.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct RawBuffer {
    /// 1 MiB-128 MiB (at most 64 MiB for `http_endpoint`); default `"5MiB"`.
    pub size: Option<Value>,
    /// 0-900 seconds; default 300.
    pub interval_s: Option<Value>,
}

/// `[delivery]`: settings shared by all delivery streams.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDelivery {
    /// Bytes per second for all delivery streams and camera uploads together; 0 (default) =
    /// unlimited.
    pub max_bandwidth: Option<Value>,
    /// Records that failed for good without an error output of their own; default `<data
    /// dir>/dead-letter`.
    pub dead_letter_dir: Option<Value>,
}

pub(crate) const MAX_DELIVERY_STREAM_NAME: usize = 64;

impl Check {
    pub(crate) fn delivery(&mut self, raw: RawDelivery) -> DeliverySettings {
        let max_bandwidth = self
            .size("delivery.max_bandwidth", raw.max_bandwidth, 0..=u64::MAX)
            .unwrap_or(0);
        let dead_letter_dir = self.string(
            "delivery.dead_letter_dir",
            raw.dead_letter_dir,
            "a directory path",
            parse_path,
        );
        self.absolute_directory("delivery.dead_letter_dir", dead_letter_dir.as_ref());
        DeliverySettings {
            max_bandwidth,
            dead_letter_dir,
        }
    }

    pub(crate) fn delivery_streams(
        &mut self,
        raw: Vec<RawDeliveryStream>,
    ) -> Vec<DeliveryStreamConfig> {
        let mut streams = Vec::new();
        let mut seen: HashMap<String, String> = HashMap::new();
        for (i, raw) in raw.into_iter().enumerate() {
            let key = format!("delivery_streams[{i}]");
            if let Some(stream) = self.delivery_stream(&key, raw, &mut seen) {
                streams.push(stream);
            }
        }
        streams
    }

    fn delivery_stream(
        &mut self,
        key: &str,
        raw: RawDeliveryStream,
        seen: &mut HashMap<String, String>,
    ) -> Option<DeliveryStreamConfig> {
        let name_key = join(key, "name");
        if raw.name.is_none() {
            self.problem(&name_key, "missing: every delivery stream needs a name");
        }
        let name = self.string(&name_key, raw.name, "a string", parse_delivery_stream_name);
        let name = name.filter(|name| match seen.get(name) {
            Some(first) => {
                let message = format!("duplicate delivery stream name `{name}` (also in {first})");
                self.problem(&name_key, message);
                false
            }
            None => {
                seen.insert(name.clone(), key.to_owned());
                true
            }
        });
        let source = self.source(&join(key, "source"), raw.source);
        let video = source == Some(SourceConfig::Video);
        let (processors, partition_keys) = if video {
            self.not_for_video(key, "processors", raw.processors.is_some());
            Default::default()
        } else {
            self.processors(&join(key, "processors"), raw.processors)
        };
        let (kind, destination) = self.destination(
            &join(key, "destination"),
            raw.destination,
            name.as_deref().unwrap_or_default(),
            &partition_keys,
        );
        if video {
            self.video_destination(key, kind);
            self.not_for_video(key, "buffer", raw.buffer.is_some());
            self.not_for_video(key, "compression", raw.compression.is_some());
        }
        let buffer = self.buffer(&join(key, "buffer"), raw.buffer.filter(|_| !video), kind);
        let compression = self.compression(
            &join(key, "compression"),
            raw.compression.filter(|_| !video),
            kind,
        );
        let priority = self
            .integer(
                &join(key, "priority"),
                raw.priority,
                DeliveryStreamConfig::PRIORITY_RANGE,
                "",
            )
            .unwrap_or(DeliveryStreamConfig::DEFAULT_PRIORITY);
        Some(DeliveryStreamConfig {
            name: name?,
            source: source?,
            buffer,
            compression,
            priority,
            processors,
            destination: destination?,
        })
    }

    /// `source = { stream = "NAME", start = "trim_horizon" }`, `source = "direct_put"` or
    /// `source = "video"`.
    fn source(&mut self, key: &str, value: Option<Value>) -> Option<SourceConfig> {
        let Some(value) = value else {
            self.problem(
                key,
                "missing: every delivery stream needs a source: source = { stream = \"NAME\" }, \
                 source = \"direct_put\" or source = \"video\"",
            );
            return None;
        };
        if let Value::String(s) = &value {
            match s.as_str() {
                "direct_put" => return Some(SourceConfig::DirectPut),
                "video" => return Some(SourceConfig::Video),
                _ => {}
            }
            let stream = if parse_stream_name(s).is_ok() {
                s.as_str()
            } else {
                "NAME"
            };
            self.problem(
                key,
                format!(
                    "`{s}` is not allowed: use source = \"direct_put\", source = \"video\" \
                     (camera uploads), or source = {{ stream = \"{stream}\" }} to read a stream"
                ),
            );
            return None;
        }
        let mut f = self.table(
            key,
            value,
            "a table like { stream = \"telemetry\" } or \"direct_put\"",
        )?;
        self.unknown_keys(&mut f, "", &field_names::<RawStreamSource>(), None);
        let stream = self.required(
            &mut f,
            "stream",
            "a stream name",
            "the name of the stream to read",
            parse_stream_name,
        );
        let start = self.optional(&mut f, "start", "a string", |s| match s {
            "trim_horizon" => Ok(StartPosition::TrimHorizon),
            "latest" => Ok(StartPosition::Latest),
            _ => Err(format!(
                "`{s}` is not allowed: use \"trim_horizon\" (from the oldest record kept) or \
                 \"latest\" (only records that arrive later)"
            )),
        });
        let stream = stream?;
        if !self.stream_names.contains(&stream) {
            self.warning(
                &join(key, "stream"),
                format!(
                    "stream `{stream}` is not in [[streams]]: this delivery stream waits until \
                     it is created through the API (add a [[streams]] entry to have it created \
                     at start)"
                ),
            );
        }
        Some(SourceConfig::Stream {
            stream,
            start: start.unwrap_or_default(),
        })
    }

    /// A video delivery stream puts objects: only `s3` and `directory` destinations can.
    fn video_destination(&mut self, key: &str, kind: Option<&str>) {
        if let Some(kind) = kind.filter(|k| !matches!(*k, "s3" | "directory")) {
            self.problem(
                &join(&join(key, "destination"), "type"),
                format!(
                    "`{kind}` cannot take video: a delivery stream with source = \"video\" \
                     uploads camera fragments as objects; use \"s3\" or \"directory\""
                ),
            );
        }
    }

    /// Reports `name` (given) as a key a video delivery stream does not take.
    fn not_for_video(&mut self, key: &str, name: &str, given: bool) {
        let why = match name {
            "processors" => "camera fragments are uploaded as they are, not as records",
            "compression" => "video is already compressed",
            _ => "each camera's upload.segment_minutes sets how much video goes in one object",
        };
        if given {
            self.problem(
                &join(key, name),
                format!("not allowed with source = \"video\": {why}; leave {name} out"),
            );
        }
    }

    /// `buffer = { size, interval_s }`; a destination may lower the largest size.
    fn buffer(&mut self, key: &str, value: Option<Value>, kind: Option<&str>) -> BufferHints {
        let mut hints = BufferHints::default();
        let Some(value) = value else { return hints };
        let Some(mut f) = self.table(
            key,
            value,
            "a table like { size = \"5MiB\", interval_s = 300 }",
        ) else {
            return hints;
        };
        self.unknown_keys(&mut f, "", &field_names::<RawBuffer>(), None);
        let size_key = f.key("size");
        if let Some(size) = self.size(&size_key, f.take("size"), BufferHints::SIZE_RANGE) {
            let max = HttpEndpointConfig::MAX_BUFFER_BYTES;
            if kind == Some("http_endpoint") && size > max {
                self.problem(
                    &size_key,
                    format!(
                        "{} is out of range for destination type \"http_endpoint\": {}..={} \
                         (HTTP endpoints take at most {} per request)",
                        format_size(size),
                        format_size(*BufferHints::SIZE_RANGE.start()),
                        format_size(max),
                        format_size(max),
                    ),
                );
            } else {
                hints.size_bytes = size;
            }
        }
        let interval_key = f.key("interval_s");
        if let Some(interval) = self.integer(
            &interval_key,
            f.take("interval_s"),
            BufferHints::INTERVAL_S_RANGE,
            " seconds",
        ) {
            hints.interval_s = interval;
        }
        hints
    }

    fn compression(&mut self, key: &str, value: Option<Value>, kind: Option<&str>) -> Compression {
        let Some(compression) = self.string(key, value, "a string", |s| match s {
            "none" => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip),
            "zstd" => Ok(Compression::Zstd),
            "snappy" => Ok(Compression::Snappy),
            _ => Err(format!(
                "`{s}` is not allowed: use \"none\", \"gzip\", \"zstd\" or \"snappy\""
            )),
        }) else {
            return Compression::None;
        };
        let why = match (kind, compression) {
            (_, Compression::None) | (Some("http_endpoint"), Compression::Gzip) => None,
            (Some("http_endpoint"), _) => Some(
                "the Firehose HTTP endpoint contract knows no content encoding but gzip; \
                 use \"none\" or \"gzip\"",
            ),
            (Some("kinesis"), _) => Some(
                "it sends every record as a Kinesis record of its own, not batches as files, \
                 and readers expect the records as they were; use \"none\"",
            ),
            (Some("firehose"), _) => Some(
                "it sends every record as a Firehose record of its own (the upstream delivery \
                 stream compresses what it writes); use \"none\"",
            ),
            (Some("mqtt"), _) => Some(
                "it publishes every record as an MQTT message of its own, not batches as \
                 files, and subscribers expect the records as they were; use \"none\"",
            ),
            _ => None,
        };
        match (why, kind) {
            (Some(why), Some(kind)) => {
                self.problem(
                    key,
                    format!(
                        "`{}` is not allowed for destination type \"{kind}\": {why}",
                        compression.as_str()
                    ),
                );
                Compression::None
            }
            _ => compression,
        }
    }

    /// `destination = { type = ..., ... }`. Returns its type even when some of its keys are
    /// wrong, so that buffer and compression can still be checked against it.
    fn destination(
        &mut self,
        key: &str,
        value: Option<Value>,
        name: &str,
        partition_keys: &BTreeSet<String>,
    ) -> (Option<&'static str>, Option<DestinationConfig>) {
        let Some(value) = value else {
            self.problem(
                key,
                format!(
                    "missing: every delivery stream needs a destination, e.g. destination = \
                     {{ type = \"directory\", path = \"deliveries\" }} (types: {})",
                    destinations::TYPES.join(", ")
                ),
            );
            return (None, None);
        };
        let Some(mut f) = self.table(
            key,
            value,
            "a table like { type = \"directory\", path = \"deliveries\" }",
        ) else {
            return (None, None);
        };
        let Some(kind) = self.kind(&mut f, "destination", destinations::TYPES) else {
            return (None, None);
        };
        let what = format!("destination type \"{kind}\"");
        let context = DestinationCheck {
            name,
            partition_keys,
        };
        let config = destinations::validate(kind, self, &mut f, &what, &context);
        (Some(kind), config)
    }
}

/// A delivery stream name, as in Firehose: 1..=64 of `[a-zA-Z0-9_.-]`.
pub(crate) fn parse_delivery_stream_name(s: &str) -> Result<String, String> {
    let valid = (1..=MAX_DELIVERY_STREAM_NAME).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if valid {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "`{s}` is not a valid delivery stream name: use 1..={MAX_DELIVERY_STREAM_NAME} \
             characters from a-z, A-Z, 0-9, `_`, `.`, `-`"
        ))
    }
}
