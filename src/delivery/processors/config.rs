//! The `processors` of a delivery stream as the config file writes them
//! (`processors = [{ type = ..., ... }]`): each type's keys (a raw serde struct: its fields are
//! the supported keys), their checks, and the partition keys they define (for
//! `!{partitionKeyFromQuery:KEY}` in prefixes).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use toml::Value;

use super::check_jq;
use crate::config::check::{wrong_type, Check};
use crate::config::field_names;
use crate::delivery::config::fields::{parse_url, Fields};
use crate::delivery::config::ProcessorConfig;

/// `{ type = "filter", ... }`: keeps a record when the jq expression yields `true`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct RawFilter {
    /// `"filter"`.
    pub r#type: Option<Value>,
    /// A jq expression over the record's JSON data; required.
    pub expression: Option<Value>,
}

/// `{ type = "partition_keys", ... }`: dynamic partitioning.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct RawPartitionKeys {
    /// `"partition_keys"`.
    pub r#type: Option<Value>,
    /// `{ NAME = "jq expression" }`: each key's value for `!{partitionKeyFromQuery:NAME}`.
    pub keys: Option<Value>,
}

/// `{ type = "append_delimiter", ... }`: appends a delimiter to every record.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct RawAppendDelimiter {
    /// `"append_delimiter"`.
    pub r#type: Option<Value>,
    /// The delimiter; default `"\n"`.
    pub delimiter: Option<Value>,
}

/// `{ type = "metadata" }`: wraps every record as JSON with its metadata.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct RawMetadata {
    /// `"metadata"`.
    pub r#type: Option<Value>,
}

/// `{ type = "http_transform", ... }`: a transformation service with Firehose's Lambda contract.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct RawHttpTransform {
    /// `"http_transform"`.
    pub r#type: Option<Value>,
    /// The service's URL; required.
    pub url: Option<Value>,
    /// Records per call, at most (1-10000); default 1000.
    pub max_records: Option<Value>,
    /// Seconds to wait for an answer (1-900); default 60.
    pub timeout_s: Option<Value>,
    /// Retries after a failed call (0-300); default 3.
    pub retries: Option<Value>,
}

pub(crate) const PROCESSOR_TYPES: &[&str] = &[
    "filter",
    "partition_keys",
    "append_delimiter",
    "metadata",
    "http_transform",
];
/// Bounds, so that a config cannot ask for unbounded work per record.
pub(crate) const MAX_PROCESSORS: usize = 32;
pub(crate) const MAX_PARTITION_KEYS: usize = 50;
pub(crate) const MAX_PARTITION_KEY_NAME: usize = 64;
pub(crate) const MAX_DELIMITER_BYTES: usize = 64;
/// Firehose's ranges for a transformation (Lambda) processor.
pub(crate) const TRANSFORM_MAX_RECORDS_RANGE: std::ops::RangeInclusive<u32> = 1..=10_000;
pub(crate) const TRANSFORM_TIMEOUT_S_RANGE: std::ops::RangeInclusive<u32> = 1..=900;
pub(crate) const TRANSFORM_RETRIES_RANGE: std::ops::RangeInclusive<u32> = 0..=300;

impl Check {
    /// `processors = [{ type = ..., ... }]`, and the partition keys they define.
    pub(crate) fn processors(
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
                self.unknown_keys(f, &what, &field_names::<RawFilter>(), None);
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
                self.unknown_keys(f, &what, &field_names::<RawPartitionKeys>(), None);
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
                self.unknown_keys(f, &what, &field_names::<RawAppendDelimiter>(), None);
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
                self.unknown_keys(f, &what, &field_names::<RawMetadata>(), None);
                Some(ProcessorConfig::Metadata)
            }
            "http_transform" => {
                self.unknown_keys(f, &what, &field_names::<RawHttpTransform>(), None);
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
