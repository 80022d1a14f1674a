//! Record processors, applied in the configured order to the records of a batch before it is
//! compressed and sent: `filter` and `partition_keys` (jq, through jaq), `append_delimiter`,
//! `metadata`, and `http_transform` (a user's service with Firehose's Lambda contract).
//! Records a processor fails go to the error output as `processing-failed`, with their data
//! as it came in; records it drops are counted. Order is kept.
//!
//! - `filter`: the record's data must be JSON; the expression's first output `true` keeps
//!   it, `false`, `null` or no output drops it; any other output, a runtime error or data
//!   that is not JSON fails it (`Processor.FilterNotBoolean`, `Processor.JqError`,
//!   `Processor.InvalidJson`).
//! - `partition_keys`: each key's expression must yield a string, number or boolean (as
//!   text) for the record's JSON; else the record fails (`Processor.PartitionKeyNotScalar`,
//!   `Processor.JqError`, `Processor.InvalidJson`).
//! - `append_delimiter`: appends the delimiter's bytes.
//! - `metadata`: replaces the data with
//!   `{"arrivalTimestamp":<ms>,"partitionKey":"…","sequenceNumber":"…","data":…}` where
//!   `data` is the record's JSON when its data is one JSON value in UTF-8 (kept byte for
//!   byte, without surrounding whitespace), else its base64 as a string.
//! - `http_transform`: see [`transform`].
//!
//! Consecutive steps other than `http_transform` run together on a blocking thread, record
//! by record, parsing each record's JSON once while its data does not change.

pub(crate) mod config;
mod jq;
mod transform;

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;

use self::jq::{Jq, Outcome};
use super::batch::{DeliveryRecord, FailedRecord};
use super::config::ProcessorConfig;

/// What processing made of some records.
#[derive(Debug, Default)]
pub struct Processed {
    /// Records to deliver, in their original order.
    pub records: Vec<DeliveryRecord>,
    /// Records for the `processing-failed` error output (with their data as it came in).
    pub failed: Vec<FailedRecord>,
    /// Records a filter or the transformation service dropped on purpose.
    pub dropped: u64,
}

/// A configuration a processor cannot work with (a jq expression that does not compile).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProcessorError(pub String);

/// The processors of one delivery stream, compiled.
pub struct Processors {
    stages: Vec<Stage>,
}

enum Stage {
    /// Steps run together on a blocking thread.
    Cpu(Arc<Vec<CpuStep>>),
    Transform(transform::Transform),
}

enum CpuStep {
    Filter(Jq),
    PartitionKeys(Vec<(String, Jq)>),
    AppendDelimiter(Bytes),
    Metadata,
}

/// A record on its way through the processors, with its data as it came in.
pub(super) struct Item {
    original: Bytes,
    record: DeliveryRecord,
}

/// What a stage made of its records.
#[derive(Default)]
pub(super) struct StageOut {
    items: Vec<Item>,
    failed: Vec<FailedRecord>,
    dropped: u64,
}

/// A failed record, with its original data back.
fn fail(item: Item, code: &str, message: String, attempts: u32) -> FailedRecord {
    let mut record = item.record;
    record.data = item.original;
    FailedRecord {
        record,
        error_code: code.to_string(),
        error_message: message,
        attempts,
    }
}

impl Processors {
    /// Compiles the processors (jq expressions); `http` is used by `http_transform`, which
    /// sends `delivery_stream_arn` (and the region in it) to the transformation service.
    pub fn new(
        configs: &[ProcessorConfig],
        http: reqwest::Client,
        delivery_stream_arn: &str,
    ) -> Result<Processors, ProcessorError> {
        let mut stages = Vec::new();
        let mut cpu = Vec::new();
        for (n, config) in configs.iter().enumerate() {
            let at = |message: String| {
                ProcessorError(format!("processors[{n}] ({}): {message}", kind(config)))
            };
            match config {
                ProcessorConfig::Filter { expression } => {
                    cpu.push(CpuStep::Filter(Jq::compile(expression).map_err(at)?));
                }
                ProcessorConfig::PartitionKeys { keys } => {
                    let mut compiled = Vec::with_capacity(keys.len());
                    for (name, expression) in keys {
                        let jq = Jq::compile(expression)
                            .map_err(|e| at(format!("key `{name}`: {e}")))?;
                        compiled.push((name.clone(), jq));
                    }
                    cpu.push(CpuStep::PartitionKeys(compiled));
                }
                ProcessorConfig::AppendDelimiter { delimiter } => {
                    cpu.push(CpuStep::AppendDelimiter(Bytes::from(delimiter.clone())));
                }
                ProcessorConfig::Metadata => cpu.push(CpuStep::Metadata),
                ProcessorConfig::HttpTransform {
                    url,
                    max_records,
                    timeout_s,
                    retries,
                } => {
                    if !cpu.is_empty() {
                        stages.push(Stage::Cpu(Arc::new(std::mem::take(&mut cpu))));
                    }
                    stages.push(Stage::Transform(
                        transform::Transform::new(
                            http.clone(),
                            url,
                            *max_records,
                            *timeout_s,
                            *retries,
                            delivery_stream_arn,
                        )
                        .map_err(at)?,
                    ));
                }
            }
        }
        if !cpu.is_empty() {
            stages.push(Stage::Cpu(Arc::new(cpu)));
        }
        Ok(Processors { stages })
    }

    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// Applies every processor in order. CPU-heavy steps run off the async runtime.
    pub async fn apply(&self, records: Vec<DeliveryRecord>) -> Processed {
        let mut items: Vec<Item> = records
            .into_iter()
            .map(|record| Item {
                original: record.data.clone(),
                record,
            })
            .collect();
        let mut failed = Vec::new();
        let mut dropped = 0;
        for stage in &self.stages {
            if items.is_empty() {
                break;
            }
            let out = match stage {
                Stage::Cpu(steps) => {
                    let steps = Arc::clone(steps);
                    match tokio::task::spawn_blocking(move || run_cpu(&steps, items)).await {
                        Ok(out) => out,
                        Err(e) => {
                            // Only a panic in jq gets here (and release builds abort on one).
                            tracing::error!(error = %e, "record processing stopped");
                            StageOut::default()
                        }
                    }
                }
                Stage::Transform(transform) => transform.apply(items).await,
            };
            items = out.items;
            failed.extend(out.failed);
            dropped += out.dropped;
        }
        Processed {
            records: items.into_iter().map(|i| i.record).collect(),
            failed,
            dropped,
        }
    }

    /// Pause before the first retry of a transformation call (tests).
    #[cfg(test)]
    fn set_transform_backoff(&mut self, backoff: std::time::Duration) {
        for stage in &mut self.stages {
            if let Stage::Transform(t) = stage {
                t.backoff = backoff;
            }
        }
    }
}

/// Checks that a jq expression compiles (for `check-config`); the message says what is wrong.
pub fn check_jq(expression: &str) -> Result<(), String> {
    Jq::compile(expression).map(|_| ())
}

fn kind(config: &ProcessorConfig) -> &'static str {
    match config {
        ProcessorConfig::Filter { .. } => "filter",
        ProcessorConfig::PartitionKeys { .. } => "partition_keys",
        ProcessorConfig::AppendDelimiter { .. } => "append_delimiter",
        ProcessorConfig::Metadata => "metadata",
        ProcessorConfig::HttpTransform { .. } => "http_transform",
    }
}

/// Runs CPU steps over the records, one record at a time through all steps.
fn run_cpu(steps: &[CpuStep], items: Vec<Item>) -> StageOut {
    let mut out = StageOut {
        items: Vec::with_capacity(items.len()),
        ..StageOut::default()
    };
    'records: for mut item in items {
        // The record's data parsed, while it does not change.
        let mut parsed: Option<jaq_json::Val> = None;
        for step in steps {
            match step {
                CpuStep::Filter(jq) => {
                    let input = match parsed_data(&mut parsed, &item.record.data) {
                        Ok(v) => v,
                        Err(m) => {
                            out.failed.push(fail(item, "Processor.InvalidJson", m, 1));
                            continue 'records;
                        }
                    };
                    match jq.first(input) {
                        Ok(Outcome::Value(jaq_json::Val::Bool(true))) => {}
                        Ok(Outcome::Value(jaq_json::Val::Bool(false) | jaq_json::Val::Null))
                        | Ok(Outcome::Empty) => {
                            out.dropped += 1;
                            continue 'records;
                        }
                        Ok(Outcome::Value(other)) => {
                            let message = format!(
                                "filter: the expression yields {}, not true or false",
                                jq::describe(&other)
                            );
                            out.failed
                                .push(fail(item, "Processor.FilterNotBoolean", message, 1));
                            continue 'records;
                        }
                        Err(m) => {
                            out.failed.push(fail(
                                item,
                                "Processor.JqError",
                                format!("filter: {m}"),
                                1,
                            ));
                            continue 'records;
                        }
                    }
                }
                CpuStep::PartitionKeys(keys) => {
                    let input = match parsed_data(&mut parsed, &item.record.data) {
                        Ok(v) => v,
                        Err(m) => {
                            out.failed.push(fail(item, "Processor.InvalidJson", m, 1));
                            continue 'records;
                        }
                    };
                    let mut values: BTreeMap<String, String> =
                        (*item.record.partition_values).clone();
                    for (name, jq) in keys {
                        match jq.first(input.clone()) {
                            Ok(Outcome::Value(v)) => match jq::key_string(&v) {
                                Some(s) => {
                                    values.insert(name.clone(), s);
                                }
                                None => {
                                    let message = format!(
                                        "partition key `{name}`: the expression yields {}, not \
                                         a string, number or boolean",
                                        jq::describe(&v)
                                    );
                                    out.failed.push(fail(
                                        item,
                                        "Processor.PartitionKeyNotScalar",
                                        message,
                                        1,
                                    ));
                                    continue 'records;
                                }
                            },
                            Ok(Outcome::Empty) => {
                                let message = format!(
                                    "partition key `{name}`: the expression yields nothing"
                                );
                                out.failed.push(fail(
                                    item,
                                    "Processor.PartitionKeyNotScalar",
                                    message,
                                    1,
                                ));
                                continue 'records;
                            }
                            Err(m) => {
                                let message = format!("partition key `{name}`: {m}");
                                out.failed.push(fail(item, "Processor.JqError", message, 1));
                                continue 'records;
                            }
                        }
                    }
                    item.record.partition_values = Arc::new(values);
                }
                CpuStep::AppendDelimiter(delimiter) => {
                    let mut data = Vec::with_capacity(item.record.data.len() + delimiter.len());
                    data.extend_from_slice(&item.record.data);
                    data.extend_from_slice(delimiter);
                    item.record.data = Bytes::from(data);
                    parsed = None;
                }
                CpuStep::Metadata => {
                    item.record.data = Bytes::from(metadata(&item.record));
                    parsed = None;
                }
            }
        }
        out.items.push(item);
    }
    out
}

/// The record's data parsed as JSON, parsing it once.
fn parsed_data(parsed: &mut Option<jaq_json::Val>, data: &[u8]) -> Result<jaq_json::Val, String> {
    if let Some(v) = parsed {
        return Ok(v.clone());
    }
    let v = jq::parse_json(data)?;
    *parsed = Some(v.clone());
    Ok(v)
}

/// The `metadata` processor's wrapping of a record (see the module doc).
fn metadata(record: &DeliveryRecord) -> Vec<u8> {
    let data = &record.data;
    let mut out = Vec::with_capacity(data.len() * 4 / 3 + 128);
    out.extend_from_slice(b"{\"arrivalTimestamp\":");
    out.extend_from_slice(record.arrival_ms.to_string().as_bytes());
    out.extend_from_slice(b",\"partitionKey\":");
    json_string(&mut out, &record.partition_key);
    out.extend_from_slice(b",\"sequenceNumber\":");
    json_string(&mut out, &record.sequence_number);
    out.extend_from_slice(b",\"data\":");
    let trimmed = data.trim_ascii();
    let is_json = !trimmed.is_empty()
        && std::str::from_utf8(trimmed).is_ok()
        && serde_json::from_slice::<serde::de::IgnoredAny>(trimmed).is_ok();
    if is_json {
        out.extend_from_slice(trimmed);
    } else {
        out.push(b'"');
        out.extend_from_slice(
            base64::engine::general_purpose::STANDARD
                .encode(data)
                .as_bytes(),
        );
        out.push(b'"');
    }
    out.push(b'}');
    out
}

fn json_string(out: &mut Vec<u8>, s: &str) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests;
