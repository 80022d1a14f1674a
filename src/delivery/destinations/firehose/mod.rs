//! The `firehose` destination: PutRecordBatch to an upstream Firehose delivery stream,
//! SigV4-signed. A batch is split into requests of at most 500 records and 4 MiB; entries
//! Firehose refused (`FailedPutCount`, `RequestResponses[i].ErrorCode`) are reported as
//! [`DeliveryError::Partial`] so that only they are retried (see [`RecordPutter::put`]).

pub mod config;

use base64::Engine;

use super::aws::{AwsClient, RecordPutter};
use super::{BatchLimits, BuildError, DeliveryError, DestinationContext};
use crate::delivery::batch::{Batch, DeliveryRecord, ErrorOutputType};
use crate::delivery::config::{FirehoseConfig, MIB};

/// PutRecordBatch: 500 records and 4 MiB per request.
const MAX_RECORDS: usize = 500;
const MAX_REQUEST_BYTES: usize = 4 * MIB as usize;
/// One record: 1,000 KiB.
const MAX_RECORD_BYTES: usize = 1000 * 1024;

pub struct FirehoseDestination {
    putter: RecordPutter,
}

impl FirehoseDestination {
    pub fn new(
        config: &FirehoseConfig,
        context: &DestinationContext,
    ) -> Result<FirehoseDestination, BuildError> {
        let client = AwsClient::new(
            "firehose",
            "firehose",
            context.http.clone(),
            &config.credentials,
            &config.region,
            config.endpoint.as_deref(),
        )?;
        Ok(FirehoseDestination {
            putter: RecordPutter {
                client,
                target: "Firehose_20150804.PutRecordBatch",
                name: config.delivery_stream.clone(),
                max_records: MAX_RECORDS,
                max_request_bytes: MAX_REQUEST_BYTES,
                max_record_bytes: MAX_RECORD_BYTES,
                record_size: |r| r.data.len(),
                body: put_record_batch_body,
                entries_key: "RequestResponses",
            },
        })
    }
}

/// `{"DeliveryStreamName": .., "Records": [{"Data": base64}]}`.
fn put_record_batch_body(delivery_stream: &str, records: &[DeliveryRecord]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let records: Vec<serde_json::Value> = records
        .iter()
        .map(|r| serde_json::json!({"Data": b64.encode(&r.data)}))
        .collect();
    serde_json::json!({"DeliveryStreamName": delivery_stream, "Records": records})
        .to_string()
        .into_bytes()
}

#[async_trait::async_trait]
impl super::Destination for FirehoseDestination {
    fn kind(&self) -> &'static str {
        "firehose"
    }
    fn describe(&self) -> String {
        format!(
            "firehose:{} at {}",
            self.putter.name,
            self.putter.client.endpoint.base()
        )
    }
    fn limits(&self) -> BatchLimits {
        // Split into PutRecordBatch requests here, so any buffer size works.
        BatchLimits {
            max_bytes: 128 * MIB,
            max_records: usize::MAX,
        }
    }
    fn failure_type(&self) -> ErrorOutputType {
        ErrorOutputType::FirehoseFailed
    }
    async fn deliver(&self, batch: &Batch) -> Result<(), DeliveryError> {
        self.putter.put(batch).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_shape() {
        let record = DeliveryRecord {
            data: bytes::Bytes::from_static(b"hi"),
            partition_key: "k".into(),
            sequence_number: "1".into(),
            arrival_ms: 0,
            partition_values: Default::default(),
        };
        let body: serde_json::Value =
            serde_json::from_slice(&put_record_batch_body("up", &[record])).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"DeliveryStreamName": "up", "Records": [{"Data": "aGk="}]})
        );
    }
}
