//! Direct put: PutRecord and PutRecordBatch into a delivery stream's durable buffer, with
//! Firehose's limits. A record is acknowledged only after the commit that holds it.

use serde::{Deserialize, Serialize};

use super::{check_name, service_error, MAX_BATCH_BYTES, MAX_BATCH_RECORDS, MAX_RECORD_BYTES};
use crate::api::error::{ApiError, ErrorKind};
use crate::api::protocol::Blob;
use crate::delivery::DeliveryService;
use crate::storage::Rejected;
use crate::streams::SequenceNumber;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct RecordIn {
    data: Option<Blob>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct PutRecordInput {
    delivery_stream_name: Option<String>,
    record: Option<RecordIn>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct PutRecordOutput {
    record_id: String,
    encrypted: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct PutRecordBatchInput {
    delivery_stream_name: Option<String>,
    records: Option<Vec<RecordIn>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct PutRecordBatchOutput {
    failed_put_count: u32,
    encrypted: bool,
    request_responses: Vec<BatchEntry>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct BatchEntry {
    #[serde(skip_serializing_if = "Option::is_none")]
    record_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<String>,
}

fn record_data(record: Option<RecordIn>, member: &str) -> Result<bytes::Bytes, ApiError> {
    let data = record
        .and_then(|r| r.data)
        .ok_or_else(|| ApiError::missing(member))?
        .0;
    if data.len() > MAX_RECORD_BYTES {
        return Err(ApiError::new(
            ErrorKind::InvalidArgument,
            format!(
                "Record size of {} bytes exceeds the limit of {MAX_RECORD_BYTES} bytes (1,000 KiB) before base64 encoding.",
                data.len()
            ),
        ));
    }
    Ok(data)
}

fn record_id(sequence: SequenceNumber) -> String {
    sequence.to_string()
}

fn rejected_error(r: &Rejected) -> ApiError {
    ApiError::new(ErrorKind::ServiceUnavailable, r.to_string())
}

pub(super) async fn put_record(
    service: &DeliveryService,
    input: PutRecordInput,
) -> Result<PutRecordOutput, ApiError> {
    let name = check_name(input.delivery_stream_name.as_deref())?;
    let data = record_data(input.record, "record.data")?;
    let outcome = service
        .put(&name, vec![data])
        .await
        .map_err(service_error)?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::new(ErrorKind::InternalFailure, "no outcome for the record"))?;
    match outcome {
        Ok(appended) => Ok(PutRecordOutput {
            record_id: record_id(appended.sequence),
            encrypted: false,
        }),
        Err(rejected) => Err(rejected_error(&rejected)),
    }
}

pub(super) async fn put_record_batch(
    service: &DeliveryService,
    input: PutRecordBatchInput,
) -> Result<PutRecordBatchOutput, ApiError> {
    let name = check_name(input.delivery_stream_name.as_deref())?;
    let records = input.records.ok_or_else(|| ApiError::missing("records"))?;
    if records.is_empty() || records.len() > MAX_BATCH_RECORDS {
        return Err(ApiError::new(
            ErrorKind::InvalidArgument,
            format!(
                "PutRecordBatch takes 1 to {MAX_BATCH_RECORDS} records; this request has {}.",
                records.len()
            ),
        ));
    }
    let mut data = Vec::with_capacity(records.len());
    let mut total = 0usize;
    for (i, record) in records.into_iter().enumerate() {
        let bytes = record_data(Some(record), &format!("records.{}.member.data", i + 1))?;
        total += bytes.len();
        data.push(bytes);
    }
    if total > MAX_BATCH_BYTES {
        return Err(ApiError::new(
            ErrorKind::InvalidArgument,
            format!(
                "PutRecordBatch takes at most 4 MiB of records; this request has {total} bytes."
            ),
        ));
    }
    let outcomes = service.put(&name, data).await.map_err(service_error)?;
    let mut failed = 0;
    let request_responses = outcomes
        .into_iter()
        .map(|outcome| match outcome {
            Ok(appended) => BatchEntry {
                record_id: Some(record_id(appended.sequence)),
                error_code: None,
                error_message: None,
            },
            Err(rejected) => {
                failed += 1;
                BatchEntry {
                    record_id: None,
                    error_code: Some("ServiceUnavailableException".into()),
                    error_message: Some(rejected.to_string()),
                }
            }
        })
        .collect();
    Ok(PutRecordBatchOutput {
        failed_put_count: failed,
        encrypted: false,
        request_responses,
    })
}
