//! The Firehose API (`X-Amz-Target: Firehose_20150804.<Operation>`, JSON 1.1): direct put
//! (PutRecord, PutRecordBatch) into a delivery stream's durable buffer, and
//! Create/Describe/List/DeleteDeliveryStream. Limits and error types are Firehose's. A
//! record is acknowledged only after the commit that holds it.

use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;

use crate::api::error::{ApiError, ErrorKind};
use crate::api::protocol::{Timestamp, Wire};
use crate::delivery::config::{
    Compression, DeliveryStreamConfig, DestinationConfig, SourceConfig, MIB,
};
use crate::delivery::{DeliveryService, DeliveryServiceError};
use crate::storage::Store;

mod create;
mod put;

use create::create;
use put::{put_record, put_record_batch};

/// Largest record Firehose takes (1,000 KiB).
pub const MAX_RECORD_BYTES: usize = 1_024_000;
pub const MAX_BATCH_RECORDS: usize = 500;
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// What the Firehose operations share.
pub struct FirehoseState {
    pub store: Store,
    /// The delivery streams, when they run.
    pub deliveries: Option<DeliveryService>,
    pub region: String,
    pub account_id: String,
}

/// Runs one Firehose operation.
pub async fn dispatch(
    state: &FirehoseState,
    wire: Wire,
    operation: &str,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(service) = state.deliveries.as_ref() else {
        return Err(ApiError::new(
            ErrorKind::ServiceUnavailable,
            "Delivery streams are not running on this gateway.",
        ));
    };
    match operation {
        "PutRecord" => wire.ok(&put_record(service, wire.decode(&body)?).await?),
        "PutRecordBatch" => {
            wire.ok(&put_record_batch(service, wire.decode_owned(body).await?).await?)
        }
        "CreateDeliveryStream" => {
            wire.ok(&create(state, service, wire.decode(&body)?).await?)
        }
        "DescribeDeliveryStream" => wire.ok(&describe(service, wire.decode(&body)?)?),
        "ListDeliveryStreams" => wire.ok(&list(service, wire.decode(&body)?)),
        "DeleteDeliveryStream" => {
            let input: NameInput = wire.decode(&body)?;
            let name = check_name(input.delivery_stream_name.as_deref())?;
            service.delete(&name).await.map_err(service_error)?;
            wire.ok(&serde_json::json!({}))
        }
        other => Err(ApiError::new(
            ErrorKind::UnknownOperation,
            format!(
                "Firehose operation '{}' is not supported by kinedge (it serves PutRecord, PutRecordBatch, CreateDeliveryStream, DescribeDeliveryStream, ListDeliveryStreams and DeleteDeliveryStream).",
                other.chars().take(100).collect::<String>()
            ),
        )),
    }
}

pub(super) fn service_error(e: DeliveryServiceError) -> ApiError {
    let kind = match &e {
        DeliveryServiceError::NotFound(_) => ErrorKind::ResourceNotFound,
        DeliveryServiceError::Exists(_) | DeliveryServiceError::FromConfig(_) => {
            ErrorKind::ResourceInUse
        }
        DeliveryServiceError::NotDirectPut(_) | DeliveryServiceError::NotVideo(_) => {
            ErrorKind::InvalidArgument
        }
        DeliveryServiceError::Store(crate::storage::StoreError::Storage(fault))
            if e_is_retryable(&e) =>
        {
            return ApiError::new(
                ErrorKind::ServiceUnavailable,
                super::error::disk_message(fault),
            )
        }
        DeliveryServiceError::Store(s) => return ApiError::from(s.clone()),
        DeliveryServiceError::Definition(_) => ErrorKind::InternalFailure,
    };
    ApiError::new(kind, e.to_string())
}

fn e_is_retryable(e: &DeliveryServiceError) -> bool {
    matches!(e, DeliveryServiceError::Store(s) if s.is_retryable())
}

pub(super) fn check_name(name: Option<&str>) -> Result<String, ApiError> {
    let name = name.ok_or_else(|| ApiError::missing("deliveryStreamName"))?;
    let valid = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !valid {
        return Err(ApiError::constraint(
            name,
            "deliveryStreamName",
            "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+ and length 1..64",
        ));
    }
    Ok(name.to_owned())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct NameInput {
    pub(super) delivery_stream_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListInput {
    limit: Option<usize>,
    delivery_stream_type: Option<String>,
    exclusive_start_delivery_stream_name: Option<String>,
}

fn list(service: &DeliveryService, input: ListInput) -> serde_json::Value {
    let limit = input.limit.unwrap_or(10_000).clamp(1, 10_000);
    let mut names: Vec<String> = service
        .names()
        .into_iter()
        .filter(|n| {
            input
                .exclusive_start_delivery_stream_name
                .as_ref()
                .is_none_or(|start| n > start)
        })
        .filter(|n| match input.delivery_stream_type.as_deref() {
            None => true,
            Some(kind) => service
                .get(n)
                .is_some_and(|info| stream_type(&info.config) == kind),
        })
        .collect();
    let more = names.len() > limit;
    names.truncate(limit);
    serde_json::json!({ "DeliveryStreamNames": names, "HasMoreDeliveryStreams": more })
}

fn stream_type(config: &DeliveryStreamConfig) -> &'static str {
    match config.source {
        SourceConfig::DirectPut => "DirectPut",
        SourceConfig::Stream { .. } => "KinesisStreamAsSource",
        // Not a Firehose type: camera uploads, defined only in the config file.
        SourceConfig::Video => "Video",
    }
}

fn describe(service: &DeliveryService, input: NameInput) -> Result<serde_json::Value, ApiError> {
    let name = check_name(input.delivery_stream_name.as_deref())?;
    let info = service.get(&name).ok_or_else(|| {
        ApiError::not_found(format!(
            "Delivery stream {name} under account {} not found.",
            service.account_id()
        ))
    })?;
    let config = &info.config;
    let hints = serde_json::json!({
        "SizeInMBs": config.buffer.size_bytes / MIB,
        "IntervalInSeconds": config.buffer.interval_s,
    });
    let mut destination = serde_json::json!({ "DestinationId": "destinationId-000000000001" });
    match &config.destination {
        DestinationConfig::S3(s3) => {
            let compression = match config.compression {
                Compression::None => "UNCOMPRESSED",
                Compression::Gzip => "GZIP",
                Compression::Snappy => "Snappy",
                Compression::Zstd => "ZSTD",
            };
            let description = serde_json::json!({
                "RoleARN": "",
                "BucketARN": format!("arn:aws:s3:::{}", s3.bucket),
                "Prefix": s3.prefix.clone().unwrap_or_default(),
                "ErrorOutputPrefix": s3.error_prefix.clone().unwrap_or_default(),
                "BufferingHints": hints,
                "CompressionFormat": compression,
                "EncryptionConfiguration": { "NoEncryptionConfig": "NoEncryption" },
            });
            destination["S3DestinationDescription"] = description.clone();
            destination["ExtendedS3DestinationDescription"] = description;
        }
        DestinationConfig::HttpEndpoint(http) => {
            destination["HttpEndpointDestinationDescription"] = serde_json::json!({
                "EndpointConfiguration": { "Url": http.url },
                "BufferingHints": hints,
                "RequestConfiguration": {
                    "ContentEncoding": if config.compression == Compression::Gzip { "GZIP" } else { "NONE" },
                    "CommonAttributes": http.common_attributes.iter().map(|(k, v)| serde_json::json!({"AttributeName": k, "AttributeValue": v})).collect::<Vec<_>>(),
                },
                "RetryOptions": { "DurationInSeconds": http.retry_duration_s },
            });
        }
        _ => {}
    }
    let mut description = serde_json::json!({
        "DeliveryStreamName": name,
        "DeliveryStreamARN": service.arn(&name),
        "DeliveryStreamStatus": "ACTIVE",
        "DeliveryStreamType": stream_type(config),
        "VersionId": "1",
        "CreateTimestamp": serde_json::to_value(Timestamp(info.created_ms)).unwrap_or_default(),
        "Destinations": [destination],
        "HasMoreDestinations": false,
    });
    if let SourceConfig::Stream { stream, .. } = &config.source {
        description["Source"] = serde_json::json!({
            "KinesisStreamSourceDescription": {
                "KinesisStreamARN": format!("arn:aws:kinesis:{}:{}:stream/{stream}", service.region(), service.account_id()),
            }
        });
    }
    Ok(serde_json::json!({ "DeliveryStreamDescription": description }))
}

/// Decodes `body` as every Firehose operation's input and checks the S3 settings of a
/// CreateDeliveryStream as the handler does: the fuzz targets' view of this API.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn decode_inputs(wire: Wire, body: &[u8]) {
    use create::{buffer_hints, s3_from_api, CreateInput};
    use put::{PutRecordBatchInput, PutRecordInput};
    let _ = wire.decode::<NameInput>(body);
    let _ = wire.decode::<PutRecordInput>(body);
    let _ = wire.decode::<PutRecordBatchInput>(body);
    let _ = wire.decode::<ListInput>(body);
    if let Ok(input) = wire.decode::<CreateInput>(body) {
        for s3 in [
            input.s3_destination_configuration,
            input.extended_s3_destination_configuration,
        ]
        .into_iter()
        .flatten()
        {
            let _ = s3_from_api(s3, "us-east-1");
        }
        if let Some(http) = input.http_endpoint_destination_configuration {
            let _ = buffer_hints(http.buffering_hints, 64);
        }
    }
}
