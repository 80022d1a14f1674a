//! The `kinesis` destination: PutRecords to an upstream Kinesis stream (AWS or compatible),
//! SigV4-signed, keeping each record's partition key. A batch is split into requests of at
//! most 500 records and 5 MiB; entries the stream refused are reported as
//! [`DeliveryError::Partial`] so that only they are retried (see [`RecordPutter::put`]).

pub mod config;

use base64::Engine;

use super::aws::{AwsClient, RecordPutter};
use super::{BatchLimits, BuildError, DeliveryError, DestinationContext};
use crate::delivery::batch::{Batch, DeliveryRecord, ErrorOutputType};
use crate::delivery::config::{KinesisConfig, MIB};

/// PutRecords: 500 records and 5 MiB (data and partition keys) per request.
const MAX_RECORDS: usize = 500;
const MAX_REQUEST_BYTES: usize = 5 * MIB as usize;
/// One record: 1 MiB, data and partition key.
const MAX_RECORD_BYTES: usize = MIB as usize;

pub struct KinesisDestination {
    putter: RecordPutter,
}

impl KinesisDestination {
    pub fn new(
        config: &KinesisConfig,
        context: &DestinationContext,
    ) -> Result<KinesisDestination, BuildError> {
        let client = AwsClient::new(
            "kinesis",
            "kinesis",
            context.http.clone(),
            &config.credentials,
            &config.region,
            config.endpoint.as_deref(),
        )?;
        Ok(KinesisDestination {
            putter: RecordPutter {
                client,
                target: "Kinesis_20131202.PutRecords",
                name: config.stream.clone(),
                max_records: MAX_RECORDS,
                max_request_bytes: MAX_REQUEST_BYTES,
                max_record_bytes: MAX_RECORD_BYTES,
                record_size: |r| r.data.len() + r.partition_key.len(),
                body: put_records_body,
                entries_key: "Records",
            },
        })
    }
}

/// `{"StreamName" | "StreamARN": .., "Records": [{"Data": base64, "PartitionKey": ..}]}`.
fn put_records_body(stream: &str, records: &[DeliveryRecord]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let records: Vec<serde_json::Value> = records
        .iter()
        .map(|r| serde_json::json!({"Data": b64.encode(&r.data), "PartitionKey": r.partition_key}))
        .collect();
    let name_key = if stream.starts_with("arn:") {
        "StreamARN"
    } else {
        "StreamName"
    };
    serde_json::json!({ name_key: stream, "Records": records })
        .to_string()
        .into_bytes()
}

#[async_trait::async_trait]
impl super::Destination for KinesisDestination {
    fn kind(&self) -> &'static str {
        "kinesis"
    }
    fn describe(&self) -> String {
        format!(
            "kinesis:{} at {}",
            self.putter.name,
            self.putter.client.endpoint.base()
        )
    }
    fn limits(&self) -> BatchLimits {
        // Split into PutRecords requests here, so any buffer size works.
        BatchLimits {
            max_bytes: 128 * MIB,
            max_records: usize::MAX,
        }
    }
    fn failure_type(&self) -> ErrorOutputType {
        ErrorOutputType::KinesisFailed
    }
    async fn deliver(&self, batch: &Batch) -> Result<(), DeliveryError> {
        self.putter.put(batch).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;

    #[test]
    fn body_keeps_partition_keys() {
        let record = DeliveryRecord {
            data: Bytes::from_static(b"hi"),
            partition_key: "sensor-1".into(),
            sequence_number: "1".into(),
            arrival_ms: 0,
            partition_values: Arc::default(),
        };
        let body: serde_json::Value =
            serde_json::from_slice(&put_records_body("up", std::slice::from_ref(&record))).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"StreamName": "up", "Records": [{"Data": "aGk=", "PartitionKey": "sensor-1"}]})
        );
        let arn = "arn:aws:kinesis:eu-west-1:123456789012:stream/up";
        let body: serde_json::Value =
            serde_json::from_slice(&put_records_body(arn, &[record])).unwrap();
        assert_eq!(body["StreamARN"], arn);
    }
}
