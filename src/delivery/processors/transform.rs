//! The `http_transform` processor: calls a user's transformation service with Firehose's
//! Lambda contract, over HTTP POST with JSON.
//!
//! Request: `{"invocationId": "<uuid>", "deliveryStreamArn": "...", "region": "...",
//! "records": [{"recordId": "0", "approximateArrivalTimestamp": <ms>, "data": "<base64>"}]}`
//! (record ids are the records' positions in the call, as decimal strings).
//! Answer: `{"records": [{"recordId": "0", "result": "Ok" | "Dropped" | "ProcessingFailed",
//! "data": "<base64>", "metadata": {"partitionKeys": {...}}?}]}`; `data` is required with
//! `Ok`, and `metadata.partitionKeys` (as Firehose's dynamic partitioning takes it from a
//! Lambda) is merged into the record's partition values.
//!
//! Up to `max_records` records (and about 4 MiB of data) per call. A call that fails — no
//! connection, no answer within `timeout_s`, a status other than 200, an answer that is not
//! the contract's JSON — is retried `retries` times, 1 s apart and doubling; then its
//! records fail (`Transform.CallFailed`). In an answer, records whose id is missing or
//! repeated fail (`Transform.MissingRecordId`, `Transform.DuplicatedRecordId`), ids that
//! were not sent are ignored, as Firehose does.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{fail, Item, StageOut};

/// Data bytes per call, at most (besides `max_records`): keeps requests near what a
/// Lambda takes (6 MB with base64).
const MAX_CALL_DATA_BYTES: usize = 4 * 1024 * 1024;
/// Most of an answer that is read.
const MAX_ANSWER_BYTES: usize = 128 * 1024 * 1024;
const MAX_BACKOFF: Duration = Duration::from_secs(60);

pub(super) struct Transform {
    client: reqwest::Client,
    url: reqwest::Url,
    max_records: usize,
    timeout: Duration,
    retries: u32,
    delivery_stream_arn: String,
    region: String,
    /// First pause between calls (1 s; shorter in tests).
    pub(super) backoff: Duration,
}

#[derive(Serialize)]
struct Request<'a> {
    #[serde(rename = "invocationId")]
    invocation_id: String,
    #[serde(rename = "deliveryStreamArn")]
    delivery_stream_arn: &'a str,
    region: &'a str,
    records: Vec<RequestRecord>,
}

#[derive(Serialize)]
struct RequestRecord {
    #[serde(rename = "recordId")]
    record_id: String,
    #[serde(rename = "approximateArrivalTimestamp")]
    approximate_arrival_timestamp: u64,
    data: String,
}

#[derive(Deserialize)]
struct Answer {
    records: Vec<AnswerRecord>,
}

#[derive(Deserialize)]
struct AnswerRecord {
    #[serde(rename = "recordId")]
    record_id: String,
    result: String,
    data: Option<String>,
    metadata: Option<AnswerMetadata>,
}

#[derive(Deserialize)]
struct AnswerMetadata {
    #[serde(rename = "partitionKeys")]
    partition_keys: Option<BTreeMap<String, serde_json::Value>>,
}

impl Transform {
    pub(super) fn new(
        client: reqwest::Client,
        url: &str,
        max_records: u32,
        timeout_s: u32,
        retries: u32,
        delivery_stream_arn: &str,
    ) -> Result<Transform, String> {
        let url = reqwest::Url::parse(url).map_err(|e| format!("url `{url}`: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("url `{url}`: must be http:// or https://"));
        }
        if max_records == 0 {
            return Err("max_records must be at least 1".into());
        }
        if timeout_s == 0 {
            return Err("timeout_s must be at least 1".into());
        }
        // arn:aws:firehose:REGION:ACCOUNT:deliverystream/NAME
        let region = delivery_stream_arn
            .split(':')
            .nth(3)
            .unwrap_or_default()
            .to_string();
        Ok(Transform {
            client,
            url,
            max_records: max_records as usize,
            timeout: Duration::from_secs(u64::from(timeout_s)),
            retries,
            delivery_stream_arn: delivery_stream_arn.to_string(),
            region,
            backoff: Duration::from_secs(1),
        })
    }

    /// Sends `items` through the service, call by call, in order.
    pub(super) async fn apply(&self, items: Vec<Item>) -> StageOut {
        let mut out = StageOut::default();
        let mut rest = items.into_iter().peekable();
        while rest.peek().is_some() {
            let mut chunk = Vec::new();
            let mut bytes = 0;
            while let Some(item) = rest.peek() {
                let len = item.record.data.len();
                if chunk.len() >= self.max_records
                    || (!chunk.is_empty() && bytes + len > MAX_CALL_DATA_BYTES)
                {
                    break;
                }
                bytes += len;
                if let Some(item) = rest.next() {
                    chunk.push(item);
                }
            }
            self.call(chunk, &mut out).await;
        }
        out
    }

    /// One call with its retries; sorts the chunk's records into `out`.
    async fn call(&self, chunk: Vec<Item>, out: &mut StageOut) {
        let body = {
            let data: Vec<(u64, Bytes)> = chunk
                .iter()
                .map(|i| (i.record.arrival_ms, i.record.data.clone()))
                .collect();
            let invocation_id = uuid::Uuid::new_v4().to_string();
            let (arn, region) = (self.delivery_stream_arn.clone(), self.region.clone());
            tokio::task::spawn_blocking(move || {
                let engine = &base64::engine::general_purpose::STANDARD;
                let request = Request {
                    invocation_id,
                    delivery_stream_arn: &arn,
                    region: &region,
                    records: data
                        .iter()
                        .enumerate()
                        .map(|(i, (arrival, d))| RequestRecord {
                            record_id: i.to_string(),
                            approximate_arrival_timestamp: *arrival,
                            data: engine.encode(d),
                        })
                        .collect(),
                };
                serde_json::to_vec(&request)
            })
            .await
        };
        let body = match body {
            Ok(Ok(body)) => Bytes::from(body),
            Ok(Err(e)) => return fail_all(chunk, out, 0, format!("building the request: {e}")),
            Err(e) => return fail_all(chunk, out, 0, format!("building the request: {e}")),
        };

        let mut attempts = 0;
        let mut pause = self.backoff;
        let answer = loop {
            attempts += 1;
            match self.post(body.clone()).await {
                Ok(answer) => break answer,
                Err(message) => {
                    if attempts > self.retries {
                        return fail_all(
                            chunk,
                            out,
                            attempts,
                            format!("the transformation service failed {attempts} times, last: {message}"),
                        );
                    }
                    tracing::debug!(url = %self.url, attempts, error = %message, "transformation call failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_BACKOFF);
                }
            }
        };
        sort_answer(chunk, answer, attempts, out);
    }

    /// One POST: the parsed answer, or what went wrong.
    async fn post(&self, body: Bytes) -> Result<Answer, String> {
        let response = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .timeout(self.timeout)
            .body(body)
            .send()
            .await
            .map_err(|e| describe_error(&e, self.timeout))?;
        let status = response.status();
        let mut response = response;
        let mut answer = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if answer.len() + chunk.len() > MAX_ANSWER_BYTES {
                        return Err(format!(
                            "HTTP {status}: an answer over {MAX_ANSWER_BYTES} bytes"
                        ));
                    }
                    answer.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(format!(
                        "HTTP {status}, then {}",
                        describe_error(&e, self.timeout)
                    ))
                }
            }
        }
        if status != reqwest::StatusCode::OK {
            let text = String::from_utf8_lossy(&answer[..answer.len().min(300)]).into_owned();
            return Err(format!("HTTP {status}: {text:?}"));
        }
        let parsed = tokio::task::spawn_blocking(move || serde_json::from_slice::<Answer>(&answer))
            .await
            .map_err(|e| format!("reading the answer: {e}"))?;
        parsed.map_err(|e| format!("an answer that is not the contract's JSON: {e}"))
    }
}

fn describe_error(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {} s", timeout.as_secs());
    }
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    message
}

fn fail_all(chunk: Vec<Item>, out: &mut StageOut, attempts: u32, message: String) {
    for item in chunk {
        out.failed.push(fail(
            item,
            "Transform.CallFailed",
            message.clone(),
            attempts,
        ));
    }
}

/// Applies the service's answer to the records of its call.
fn sort_answer(chunk: Vec<Item>, answer: Answer, attempts: u32, out: &mut StageOut) {
    let mut by_id: HashMap<String, Result<AnswerRecord, ()>> = HashMap::new();
    let mut unknown = 0usize;
    for record in answer.records {
        let known = record
            .record_id
            .parse::<usize>()
            .is_ok_and(|i| i < chunk.len() && i.to_string() == record.record_id);
        if !known {
            unknown += 1;
            continue;
        }
        match by_id.get_mut(&record.record_id) {
            Some(seen) => *seen = Err(()),
            None => {
                by_id.insert(record.record_id.clone(), Ok(record));
            }
        }
    }
    if unknown > 0 {
        tracing::warn!(
            unknown,
            "the transformation service answered with record ids it was not sent; ignored"
        );
    }
    let engine = &base64::engine::general_purpose::STANDARD;
    for (i, mut item) in chunk.into_iter().enumerate() {
        let record = match by_id.remove(&i.to_string()) {
            None => {
                out.failed.push(fail(
                    item,
                    "Transform.MissingRecordId",
                    format!("the transformation service's answer has no record {i}"),
                    attempts,
                ));
                continue;
            }
            Some(Err(())) => {
                out.failed.push(fail(
                    item,
                    "Transform.DuplicatedRecordId",
                    format!("the transformation service's answer has record {i} more than once"),
                    attempts,
                ));
                continue;
            }
            Some(Ok(record)) => record,
        };
        match record.result.as_str() {
            "Ok" => {
                let data = match record.data.as_deref().map(|d| engine.decode(d)) {
                    Some(Ok(data)) => data,
                    Some(Err(e)) => {
                        out.failed.push(fail(
                            item,
                            "Transform.InvalidData",
                            format!("record {i}: data is not base64: {e}"),
                            attempts,
                        ));
                        continue;
                    }
                    None => {
                        out.failed.push(fail(
                            item,
                            "Transform.InvalidData",
                            format!("record {i}: result Ok without data"),
                            attempts,
                        ));
                        continue;
                    }
                };
                if let Some(keys) = record.metadata.and_then(|m| m.partition_keys) {
                    let mut values = (*item.record.partition_values).clone();
                    for (k, v) in keys {
                        let v = match v {
                            serde_json::Value::String(s) => s,
                            other => other.to_string(),
                        };
                        values.insert(k, v);
                    }
                    item.record.partition_values = Arc::new(values);
                }
                item.record.data = Bytes::from(data);
                out.items.push(item);
            }
            "Dropped" => out.dropped += 1,
            "ProcessingFailed" => out.failed.push(fail(
                item,
                "Transform.ProcessingFailed",
                format!("the transformation service answered ProcessingFailed for record {i}"),
                attempts,
            )),
            other => {
                let shown: String = other.chars().take(50).collect();
                out.failed.push(fail(
                    item,
                    "Transform.InvalidResult",
                    format!("record {i}: result {shown:?} is not Ok, Dropped or ProcessingFailed"),
                    attempts,
                ))
            }
        }
    }
}
