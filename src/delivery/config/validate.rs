//! `[[delivery_streams]]` and `[delivery]`: their raw serde structs and the checks from the
//! raw values to the types of `super`, with every mistake under its dotted key path.
//!
//! `source`, `buffer`, `processors` and `destination` are (inline) tables whose keys depend on
//! their `type`, which the schema in `raw` cannot express: their unknown keys are reported
//! here, in the same words as `raw::prune_unknown_keys`, with the keys that type supports.
//! Plaintext secrets are refused with where to put them instead; prefixes and jq expressions
//! are checked by the delivery part's own checks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use toml::Value;

use serde::Deserialize;

use super::DeliverySettings;
use super::{
    AwsCredentialsConfig, BufferHints, Compression, DeliveryStreamConfig, DestinationConfig,
    HttpEndpointConfig, ProcessorConfig, Secret, SourceConfig, StartPosition,
};
use crate::config::check::{
    parse_access_key_id, parse_env_name, parse_region, parse_stream_name, plaintext_secret,
    wrong_type, Check,
};
use crate::config::raw::join;
use crate::config::{format_size, Reference, SecretSource};
use crate::delivery::destinations::naming::check_prefix;
use crate::delivery::destinations::{self, DestinationCheck};
use crate::delivery::processors::check_jq;

/// One `[[delivery_streams]]` entry. `source`, `buffer`, `processors` and `destination` are
/// kept whole: their keys depend on their `type`, so this module checks them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeliveryStream {
    /// Delivery stream name, 1-64 of a-z A-Z 0-9 _ . -; required.
    pub name: Option<Value>,
    /// `{ stream = "NAME", start = "trim_horizon" | "latest" }`, `"direct_put"` or `"video"`; required.
    pub source: Option<Value>,
    /// `{ size = "5MiB", interval_s = 300 }`: a batch goes out at either.
    pub buffer: Option<Value>,
    /// `"none"` (default), `"gzip"`, `"zstd"` or `"snappy"`.
    pub compression: Option<Value>,
    /// 1 (served first)-10 for the shared bandwidth cap; default 5.
    pub priority: Option<Value>,
    /// `[{ type = ... }]`: `filter`, `partition_keys`, `append_delimiter`, `metadata`, `http_transform`.
    pub processors: Option<Value>,
    /// `{ type = ... }`: see the destination types below; required.
    pub destination: Option<Value>,
}

/// `[delivery]`: settings shared by all delivery streams.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDelivery {
    /// Bytes per second for all delivery streams and camera uploads together; 0 (default) = unlimited.
    pub max_bandwidth: Option<Value>,
    /// Records that failed for good without an error output of their own; default `<data dir>/dead-letter`.
    pub dead_letter_dir: Option<Value>,
}

pub(crate) const PROCESSOR_TYPES: &[&str] = &[
    "filter",
    "partition_keys",
    "append_delimiter",
    "metadata",
    "http_transform",
];

/// Where the secret of an AWS access key id is given.
pub(crate) const AWS_SECRET_KEYS: Option<(&str, &str)> = Some(("secret_file", "secret_env"));

/// Keys that would hold a secret in the file itself: refused with a reason, never echoed.
pub(crate) const PLAINTEXT_SECRET_KEYS: &[&str] =
    &["secret", "secret_access_key", "password", "access_key"];

/// Bounds, so that a config cannot ask for unbounded work per record.
pub(crate) const MAX_PROCESSORS: usize = 32;
pub(crate) const MAX_PARTITION_KEYS: usize = 50;
pub(crate) const MAX_PARTITION_KEY_NAME: usize = 64;
pub(crate) const MAX_DELIMITER_BYTES: usize = 64;
/// Firehose's limits for HTTP endpoint common attributes.
pub(crate) const MAX_COMMON_ATTRIBUTES: usize = 50;
pub(crate) const MAX_ATTRIBUTE_NAME: usize = 256;
pub(crate) const MAX_ATTRIBUTE_VALUE: usize = 1024;
pub(crate) const MAX_DELIVERY_STREAM_NAME: usize = 64;
pub(crate) const MAX_MQTT_CLIENT_ID: usize = 128;
pub(crate) const MAX_MQTT_TOPIC: usize = 65_535;
/// Firehose's ranges for a transformation (Lambda) processor.
pub(crate) const TRANSFORM_MAX_RECORDS_RANGE: std::ops::RangeInclusive<u32> = 1..=10_000;
pub(crate) const TRANSFORM_TIMEOUT_S_RANGE: std::ops::RangeInclusive<u32> = 1..=900;
pub(crate) const TRANSFORM_RETRIES_RANGE: std::ops::RangeInclusive<u32> = 0..=300;

/// The keys of one table, taken out one by one as they are checked.
pub(crate) struct Fields {
    pub(crate) path: String,
    pub(crate) map: toml::Table,
}

impl Fields {
    pub(crate) fn key(&self, name: &str) -> String {
        join(&self.path, name)
    }

    pub(crate) fn take(&mut self, name: &str) -> Option<Value> {
        self.map.remove(name)
    }
}

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
        self.unknown_keys(&mut f, "", &["stream", "start"], None);
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
        self.unknown_keys(&mut f, "", &["size", "interval_s"], None);
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

    /// `processors = [{ type = ..., ... }]`, and the partition keys they define.
    fn processors(
        &mut self,
        key: &str,
        value: Option<Value>,
    ) -> (Vec<ProcessorConfig>, BTreeSet<String>) {
        let mut processors = Vec::new();
        // Partition key name -> the key path that defines it.
        let mut partition_keys: BTreeMap<String, String> = BTreeMap::new();
        let items = match value {
            None => Vec::new(),
            Some(Value::Array(items)) => items,
            Some(other) => {
                self.problem(
                    key,
                    wrong_type(
                        "an array of tables like [{ type = \"append_delimiter\" }]",
                        &other,
                    ),
                );
                Vec::new()
            }
        };
        if items.len() > MAX_PROCESSORS {
            self.problem(
                key,
                format!(
                    "{} processors are too many: at most {MAX_PROCESSORS}",
                    items.len()
                ),
            );
        }
        for (i, item) in items.into_iter().enumerate() {
            let key = format!("{key}[{i}]");
            let Some(mut f) =
                self.table(&key, item, "a table like { type = \"append_delimiter\" }")
            else {
                continue;
            };
            let Some(kind) = self.kind(&mut f, "processor", PROCESSOR_TYPES) else {
                continue;
            };
            if let Some(processor) = self.processor(&mut f, kind, &mut partition_keys) {
                processors.push(processor);
            }
        }
        (processors, partition_keys.into_keys().collect())
    }

    fn processor(
        &mut self,
        f: &mut Fields,
        kind: &str,
        partition_keys: &mut BTreeMap<String, String>,
    ) -> Option<ProcessorConfig> {
        let what = format!("processor type \"{kind}\"");
        match kind {
            "filter" => {
                self.unknown_keys(f, &what, &["type", "expression"], None);
                let expression = self.required(
                    f,
                    "expression",
                    "a jq expression",
                    &format!(
                        "{what} needs a jq expression that is true for the records to keep, \
                         e.g. expression = \".temp > 20\""
                    ),
                    parse_jq,
                );
                Some(ProcessorConfig::Filter {
                    expression: expression?,
                })
            }
            "partition_keys" => {
                self.unknown_keys(f, &what, &["type", "keys"], None);
                let keys_key = f.key("keys");
                let Some(value) = f.take("keys") else {
                    self.problem(
                        &keys_key,
                        format!(
                            "missing: {what} needs keys = {{ NAME = \"JQ EXPRESSION\" }}, \
                             e.g. keys = {{ device = \".device\" }}"
                        ),
                    );
                    return None;
                };
                let mut table =
                    self.table(&keys_key, value, "a table like { device = \".device\" }")?;
                let before = self.problems.len();
                if table.map.is_empty() {
                    self.problem(
                        &keys_key,
                        "must not be empty: give at least one key, e.g. { device = \".device\" }",
                    );
                } else if table.map.len() > MAX_PARTITION_KEYS {
                    self.problem(
                        &keys_key,
                        format!(
                            "{} keys are too many: at most {MAX_PARTITION_KEYS}",
                            table.map.len()
                        ),
                    );
                }
                let mut keys = BTreeMap::new();
                for (name, value) in std::mem::take(&mut table.map) {
                    let key = table.key(&name);
                    if let Err(message) = check_partition_key_name(&name) {
                        self.problem(&key, message);
                        continue;
                    }
                    let Some(expression) =
                        self.string(&key, Some(value), "a jq expression", parse_jq)
                    else {
                        continue;
                    };
                    if let Some(first) = partition_keys.get(&name) {
                        let message =
                            format!("partition key `{name}` is already defined in {first}");
                        self.problem(&key, message);
                        continue;
                    }
                    partition_keys.insert(name.clone(), key);
                    keys.insert(name, expression);
                }
                (self.problems.len() == before).then_some(ProcessorConfig::PartitionKeys { keys })
            }
            "append_delimiter" => {
                self.unknown_keys(f, &what, &["type", "delimiter"], None);
                let delimiter = self.optional(f, "delimiter", "a string", |s| {
                    if s.is_empty() || s.len() > MAX_DELIMITER_BYTES {
                        Err(format!(
                            "must be 1..={MAX_DELIMITER_BYTES} bytes long; leave delimiter out \
                             for a newline"
                        ))
                    } else {
                        Ok(s.to_owned())
                    }
                });
                Some(ProcessorConfig::AppendDelimiter {
                    delimiter: delimiter
                        .unwrap_or_else(|| ProcessorConfig::DEFAULT_DELIMITER.to_owned()),
                })
            }
            "metadata" => {
                self.unknown_keys(f, &what, &["type"], None);
                Some(ProcessorConfig::Metadata)
            }
            "http_transform" => {
                self.unknown_keys(
                    f,
                    &what,
                    &["type", "url", "max_records", "timeout_s", "retries"],
                    None,
                );
                let url = self.required(
                    f,
                    "url",
                    "a URL",
                    &format!(
                        "{what} needs the url of the transformation service, e.g. \
                         \"http://127.0.0.1:9000/\""
                    ),
                    |s| parse_url(s, &["http", "https"], "http://127.0.0.1:9000/"),
                );
                let max_records = self.integer(
                    &f.key("max_records"),
                    f.take("max_records"),
                    TRANSFORM_MAX_RECORDS_RANGE,
                    "",
                );
                let timeout_s = self.integer(
                    &f.key("timeout_s"),
                    f.take("timeout_s"),
                    TRANSFORM_TIMEOUT_S_RANGE,
                    " seconds",
                );
                let retries = self.integer(
                    &f.key("retries"),
                    f.take("retries"),
                    TRANSFORM_RETRIES_RANGE,
                    "",
                );
                Some(ProcessorConfig::HttpTransform {
                    url: url?,
                    max_records: max_records
                        .unwrap_or(ProcessorConfig::DEFAULT_TRANSFORM_MAX_RECORDS),
                    timeout_s: timeout_s.unwrap_or(ProcessorConfig::DEFAULT_TRANSFORM_TIMEOUT_S),
                    retries: retries.unwrap_or(ProcessorConfig::DEFAULT_TRANSFORM_RETRIES),
                })
            }
            _ => None,
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

    /// `region`, required for AWS destinations.
    pub(crate) fn region(&mut self, f: &mut Fields, what: &str) -> Option<String> {
        self.required(
            f,
            "region",
            "a region name",
            &format!(
                "{what} needs the region of the upstream, e.g. \"eu-west-1\" (S3- and \
                 Kinesis-compatible services take any, e.g. \"us-east-1\")"
            ),
            parse_region,
        )
    }

    /// `endpoint`: `Some(None)` when not given, `None` when wrong.
    pub(crate) fn endpoint(&mut self, f: &mut Fields) -> Option<Option<String>> {
        let before = self.problems.len();
        let endpoint = self.optional(f, "endpoint", "a URL", |s| {
            parse_url(s, &["http", "https"], "http://127.0.0.1:9000")
        });
        (self.problems.len() == before).then_some(endpoint)
    }

    /// `prefix` and `error_prefix`: each `Some(None)` when not given, `None` when wrong.
    pub(crate) fn prefixes(
        &mut self,
        f: &mut Fields,
        partition_keys: &BTreeSet<String>,
    ) -> (Option<Option<String>>, Option<Option<String>>) {
        let mut prefix = |check: &mut Self, name: &str, error_prefix: bool| {
            let before = check.problems.len();
            let value = check.optional(f, name, "a prefix template", |s| {
                check_template(s, error_prefix, partition_keys)
            });
            (check.problems.len() == before).then_some(value)
        };
        let normal = prefix(self, "prefix", false);
        let error = prefix(self, "error_prefix", true);
        (normal, error)
    }

    /// `access_key_id` with one of `secret_file` / `secret_env`, or none of them (then the AWS
    /// environment and shared credentials file are used). `None` when wrong.
    pub(crate) fn aws_credentials(
        &mut self,
        f: &mut Fields,
        refused_plaintext: bool,
    ) -> Option<AwsCredentialsConfig> {
        let before = self.problems.len();
        let id_key = f.key("access_key_id");
        let id = f.take("access_key_id");
        let has_id = id.is_some();
        let access_key_id = self.string(&id_key, id, "a string", parse_access_key_id);
        let secret = self.secret(f, "secret_file", "secret_env");
        match &secret {
            Ok(None) if has_id && !refused_plaintext => self.problem(
                &id_key,
                "access_key_id needs its secret: give exactly one of secret_file or secret_env",
            ),
            Ok(Some((_, key))) if !has_id => self.problem(
                key,
                "a secret without an access_key_id: give access_key_id too, or neither (then \
                 the AWS environment variables and shared credentials file are used)",
            ),
            _ => {}
        }
        if self.problems.len() != before {
            return None;
        }
        if !has_id && matches!(secret, Ok(None)) {
            self.reference(&f.path, Reference::AwsEnvironment);
        }
        Some(AwsCredentialsConfig {
            access_key_id,
            secret: secret.ok()?.map(|(secret, _)| secret),
        })
    }

    /// One of `file_key` (a path) or `env_key` (a variable name), or neither; with the key
    /// path of the one given. `Err` when wrong (already reported).
    pub(crate) fn secret(
        &mut self,
        f: &mut Fields,
        file_key: &str,
        env_key: &str,
    ) -> Result<Option<(Secret, String)>, ()> {
        let file_path = f.key(file_key);
        let env_path = f.key(env_key);
        match (f.take(file_key), f.take(env_key)) {
            (Some(_), Some(_)) => {
                self.problem(
                    &env_path,
                    format!("both {file_key} and {env_key} are set: give exactly one"),
                );
                Err(())
            }
            (Some(file), None) => {
                let path = self.string(&file_path, Some(file), "a file path", parse_path);
                let path = path.ok_or(())?;
                self.reference(
                    &file_path,
                    Reference::Secret(SecretSource::File(path.clone())),
                );
                Ok(Some((Secret::File(path), file_path)))
            }
            (None, Some(env)) => {
                let var = self.string(&env_path, Some(env), "a variable name", parse_env_name);
                let var = var.ok_or(())?;
                self.reference(&env_path, Reference::Secret(SecretSource::Env(var.clone())));
                Ok(Some((Secret::Env(var), env_path)))
            }
            (None, None) => Ok(None),
        }
    }

    /// An absolute directory path for `check-config` to look at; relative ones are under the
    /// data directory, which is only known at run time.
    pub(crate) fn absolute_directory(&mut self, key: &str, path: Option<&PathBuf>) {
        if let Some(path) = path.filter(|p| p.is_absolute()) {
            self.reference(
                key,
                Reference::Directory {
                    path: path.clone(),
                    must_exist: false,
                },
            );
        }
    }

    /// A table value; `expected` describes one in the message when `value` is something else.
    pub(crate) fn table(&mut self, key: &str, value: Value, expected: &str) -> Option<Fields> {
        match value {
            Value::Table(map) => Some(Fields {
                path: key.to_owned(),
                map,
            }),
            other => {
                self.problem(key, wrong_type(expected, &other));
                None
            }
        }
    }

    /// The `type` of a processor or destination: one of `types`.
    pub(crate) fn kind(
        &mut self,
        f: &mut Fields,
        what: &str,
        types: &[&'static str],
    ) -> Option<&'static str> {
        let key = f.key("type");
        let Some(value) = f.take("type") else {
            self.problem(
                &key,
                format!("missing: every {what} needs a type: {}", one_of(types)),
            );
            return None;
        };
        self.string(&key, Some(value), "a string", |s| {
            types
                .iter()
                .find(|t| **t == s)
                .copied()
                .ok_or_else(|| format!("`{s}` is not a {what} type: {}", one_of(types)))
        })
    }

    /// Reports and drops the keys of `f` not in `supported`. `what` names the table's type
    /// when its keys depend on it. With `secrets` (the file and environment keys of this
    /// table), plaintext secret keys are refused with where the secret goes instead. Returns
    /// whether a plaintext secret was refused.
    pub(crate) fn unknown_keys(
        &mut self,
        f: &mut Fields,
        what: &str,
        supported: &[&str],
        secrets: Option<(&str, &str)>,
    ) -> bool {
        let unknown: Vec<String> = f
            .map
            .keys()
            .filter(|key| !supported.contains(&key.as_str()))
            .cloned()
            .collect();
        let mut refused = false;
        for name in unknown {
            f.map.remove(&name);
            let message = match secrets {
                Some((file_key, env_key)) if PLAINTEXT_SECRET_KEYS.contains(&name.as_str()) => {
                    refused = true;
                    plaintext_secret(file_key, env_key)
                }
                _ => {
                    let for_what = if what.is_empty() {
                        String::new()
                    } else {
                        format!(" for {what}")
                    };
                    format!(
                        "unknown key `{name}`{for_what} (this version supports {})",
                        supported.join(", ")
                    )
                }
            };
            self.problem(&f.key(&name), message);
        }
        refused
    }

    /// A required string key of `f`; `missing` says what it is for.
    pub(crate) fn required<T>(
        &mut self,
        f: &mut Fields,
        name: &str,
        expected: &str,
        missing: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let key = f.key(name);
        let value = f.take(name);
        if value.is_none() {
            self.problem(&key, format!("missing: {missing}"));
        }
        self.string(&key, value, expected, parse)
    }

    /// An optional string key of `f`.
    pub(crate) fn optional<T>(
        &mut self,
        f: &mut Fields,
        name: &str,
        expected: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let key = f.key(name);
        self.string(&key, f.take(name), expected, parse)
    }
}

/// `"a", "b" or "c"` for messages.
pub(crate) fn one_of(options: &[&str]) -> String {
    let quoted: Vec<String> = options.iter().map(|o| format!("\"{o}\"")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("use {} or {last}", rest.join(", ")),
        Some((last, _)) => format!("use {last}"),
        None => String::new(),
    }
}

pub(crate) fn parse_path(s: &str) -> Result<PathBuf, String> {
    if s.is_empty() {
        Err("must not be empty".to_owned())
    } else {
        Ok(PathBuf::from(s))
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

/// A URL with one of `schemes` and a host. URLs with a password are refused without being
/// repeated (secrets do not belong in the config file).
pub(crate) fn parse_url(s: &str, schemes: &[&str], example: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(s)
        .map_err(|err| format!("`{s}` is not a URL ({err}): write e.g. \"{example}\""))?;
    if url.password().is_some() {
        return Err(
            "a URL with a password is not allowed: plaintext secrets do not belong in config"
                .to_owned(),
        );
    }
    if !schemes.contains(&url.scheme()) {
        let schemes: Vec<String> = schemes.iter().map(|s| format!("{s}://")).collect();
        return Err(format!(
            "`{s}` is not allowed: use a {} URL, e.g. \"{example}\"",
            schemes.join(" or ")
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{s}` has no host: write e.g. \"{example}\""));
    }
    Ok(s.to_owned())
}

/// A partition key name: 1..=64 of `[A-Za-z0-9_-]`.
fn check_partition_key_name(name: &str) -> Result<(), String> {
    let valid = (1..=MAX_PARTITION_KEY_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a partition key name: use 1..={MAX_PARTITION_KEY_NAME} characters \
             from A-Z, a-z, 0-9, `_`, `-`"
        ))
    }
}

fn parse_jq(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("must not be empty: write a jq expression, e.g. \".device\"".to_owned());
    }
    check_jq(s)
        .map(|()| s.to_owned())
        .map_err(|err| format!("`{s}` is not a valid jq expression: {err}"))
}

/// A prefix template: the delivery part's rules, and every `!{partitionKeyFromQuery:KEY}`
/// must be defined by a `partition_keys` processor of the same delivery stream.
fn check_template(
    s: &str,
    error_prefix: bool,
    partition_keys: &BTreeSet<String>,
) -> Result<String, String> {
    check_prefix(s, error_prefix)?;
    for name in partition_key_references(s) {
        if !partition_keys.contains(name) {
            let defined = if partition_keys.is_empty() {
                "this delivery stream has no partition_keys processor".to_owned()
            } else {
                let names: Vec<&str> = partition_keys.iter().map(String::as_str).collect();
                format!("this delivery stream defines {}", names.join(", "))
            };
            return Err(format!(
                "`!{{partitionKeyFromQuery:{name}}}` needs a partition_keys processor that \
                 defines `{name}` ({defined})"
            ));
        }
    }
    Ok(s.to_owned())
}

/// The KEYs of `!{partitionKeyFromQuery:KEY}` in a template.
fn partition_key_references(template: &str) -> Vec<&str> {
    const OPEN: &str = "!{partitionKeyFromQuery:";
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find(OPEN) {
        let after = &rest[start + OPEN.len()..];
        let Some(end) = after.find('}') else { break };
        names.push(after[..end].trim());
        rest = &after[end + 1..];
    }
    names
}
