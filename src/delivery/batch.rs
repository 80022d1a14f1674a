//! What travels from the source to a destination: records read from the shard log (after
//! processing) in a batch, and records that failed, for the error output.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use super::config::Compression;

/// One record on its way to a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// The record's data; processors replace it.
    pub data: Bytes,
    pub partition_key: String,
    /// The Kinesis sequence number in the source stream (the Firehose record id for direct
    /// put).
    pub sequence_number: String,
    /// When the gateway stored the record, epoch ms.
    pub arrival_ms: u64,
    /// Values of the `partition_keys` processor (`!{partitionKeyFromQuery:KEY}`); empty
    /// without that processor.
    pub partition_values: Arc<BTreeMap<String, String>>,
}

/// Records to deliver together. Retries send the same batch again, and a batch formed again
/// after a crash is the same batch: `id` and `created_ms` derive from the records it holds
/// (`super::plan`), so a receiver can drop a duplicate (HTTP request id) and an object name
/// does not change.
#[derive(Debug, Clone)]
pub struct Batch {
    pub delivery_stream: String,
    /// A UUID naming the records of the batch; the HTTP endpoint's request id.
    pub id: String,
    /// The arrival time of the oldest record, epoch ms: object names and prefixes use it
    /// (Firehose's `!{timestamp:..}` does the same).
    pub created_ms: u64,
    /// When this process formed the batch, epoch ms: the HTTP endpoint's body timestamp.
    pub formed_ms: u64,
    pub compression: Compression,
    pub records: Vec<DeliveryRecord>,
}

impl Batch {
    /// Data bytes of all records.
    pub fn data_bytes(&self) -> u64 {
        self.records.iter().map(|r| r.data.len() as u64).sum()
    }
}

/// Why records went to the error output; names the error prefix's
/// `!{firehose:error-output-type}` as Firehose does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorOutputType {
    /// A processor (jq filter, partition keys, transformation service) failed the record.
    ProcessingFailed,
    /// The HTTP endpoint kept answering with errors for its whole retry duration, or
    /// answered 413.
    HttpEndpointFailed,
    /// The upstream Kinesis stream or Firehose refused the records permanently.
    KinesisFailed,
    FirehoseFailed,
    /// The upstream MQTT broker refused the publishes.
    MqttFailed,
    /// S3 refused the object permanently.
    S3Failed,
}

impl ErrorOutputType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorOutputType::ProcessingFailed => "processing-failed",
            ErrorOutputType::HttpEndpointFailed => "http-endpoint-failed",
            ErrorOutputType::KinesisFailed => "kinesis-failed",
            ErrorOutputType::FirehoseFailed => "firehose-failed",
            ErrorOutputType::MqttFailed => "mqtt-failed",
            ErrorOutputType::S3Failed => "s3-failed",
        }
    }
}

/// A record that could not be delivered, with why.
#[derive(Debug, Clone)]
pub struct FailedRecord {
    /// As it was before processing (the error output keeps the raw data).
    pub record: DeliveryRecord,
    pub error_code: String,
    pub error_message: String,
    pub attempts: u32,
}

/// Failed records for the error output.
#[derive(Debug, Clone)]
pub struct ErrorBatch {
    pub delivery_stream: String,
    pub id: String,
    pub created_ms: u64,
    pub kind: ErrorOutputType,
    pub records: Vec<FailedRecord>,
}

impl ErrorBatch {
    /// The error output's content: one JSON object per line, in Firehose's error record
    /// shape (`attemptsMade`, `arrivalTimestamp`, `errorCode`, `errorMessage`,
    /// `attemptEndingTimestamp`, `rawData` in base64), plus the source's `partitionKey` and
    /// `sequenceNumber`.
    pub fn to_json_lines(&self, now_ms: u64) -> Vec<u8> {
        use base64::Engine;
        let mut out = Vec::new();
        for failed in &self.records {
            let line = serde_json::json!({
                "attemptsMade": failed.attempts,
                "arrivalTimestamp": failed.record.arrival_ms,
                "errorCode": failed.error_code,
                "errorMessage": failed.error_message,
                "attemptEndingTimestamp": now_ms,
                "rawData": base64::engine::general_purpose::STANDARD.encode(&failed.record.data),
                "partitionKey": failed.record.partition_key,
                "sequenceNumber": failed.record.sequence_number,
            });
            // Serializing a `Value` cannot fail.
            if serde_json::to_writer(&mut out, &line).is_ok() {
                out.push(b'\n');
            }
        }
        out
    }
}
