//! The Firehose API (`X-Amz-Target: Firehose_20150804.<Operation>`, JSON 1.1): direct put
//! (PutRecord, PutRecordBatch) into a delivery stream's durable buffer, and
//! Create/Describe/List/DeleteDeliveryStream. Limits and error types are Firehose's. A
//! record is acknowledged only after the commit that holds it.

use std::collections::BTreeMap;

use axum::response::Response;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ErrorKind};
use super::protocol::{Blob, Timestamp, Wire};
use super::ApiState;
use crate::delivery::config::{
    AwsCredentialsConfig, BufferHints, Compression, DeliveryStreamConfig, DestinationConfig,
    HttpEndpointConfig, S3Config, Secret, SourceConfig, StartPosition, MIB,
};
use crate::delivery::{DeliveryService, DeliveryServiceError};
use crate::storage::Rejected;
use crate::streams::SequenceNumber;

/// Largest record Firehose takes (1,000 KiB).
pub const MAX_RECORD_BYTES: usize = 1_024_000;
pub const MAX_BATCH_RECORDS: usize = 500;
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

pub async fn dispatch(
    state: &ApiState,
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

fn service_error(e: DeliveryServiceError) -> ApiError {
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

fn check_name(name: Option<&str>) -> Result<String, ApiError> {
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
struct NameInput {
    delivery_stream_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RecordIn {
    data: Option<Blob>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordInput {
    delivery_stream_name: Option<String>,
    record: Option<RecordIn>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordOutput {
    record_id: String,
    encrypted: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordBatchInput {
    delivery_stream_name: Option<String>,
    records: Option<Vec<RecordIn>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordBatchOutput {
    failed_put_count: u32,
    encrypted: bool,
    request_responses: Vec<BatchEntry>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct BatchEntry {
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

async fn put_record(
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

async fn put_record_batch(
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

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct BufferingHintsIn {
    size_in_m_bs: Option<u64>,
    interval_in_seconds: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct S3In {
    #[serde(rename = "BucketARN")]
    bucket_arn: Option<String>,
    prefix: Option<String>,
    error_output_prefix: Option<String>,
    buffering_hints: Option<BufferingHintsIn>,
    compression_format: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EndpointIn {
    url: Option<String>,
    access_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AttributeIn {
    attribute_name: String,
    attribute_value: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RequestConfigIn {
    content_encoding: Option<String>,
    common_attributes: Option<Vec<AttributeIn>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RetryIn {
    duration_in_seconds: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HttpIn {
    endpoint_configuration: Option<EndpointIn>,
    buffering_hints: Option<BufferingHintsIn>,
    request_configuration: Option<RequestConfigIn>,
    retry_options: Option<RetryIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KinesisSourceIn {
    #[serde(rename = "KinesisStreamARN")]
    kinesis_stream_arn: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateInput {
    delivery_stream_name: Option<String>,
    delivery_stream_type: Option<String>,
    kinesis_stream_source_configuration: Option<KinesisSourceIn>,
    s3_destination_configuration: Option<S3In>,
    extended_s3_destination_configuration: Option<S3In>,
    http_endpoint_destination_configuration: Option<HttpIn>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CreateOutput {
    #[serde(rename = "DeliveryStreamARN")]
    delivery_stream_arn: String,
}

fn buffer_hints(hints: Option<BufferingHintsIn>, max_mib: u64) -> Result<BufferHints, ApiError> {
    let hints = hints.unwrap_or_default();
    let defaults = BufferHints::default();
    let size_mib = hints.size_in_m_bs.unwrap_or(defaults.size_bytes / MIB);
    if !(1..=max_mib).contains(&size_mib) {
        return Err(ApiError::invalid(format!(
            "BufferingHints.SizeInMBs must be 1..={max_mib}; got {size_mib}."
        )));
    }
    let interval_s = hints.interval_in_seconds.unwrap_or(defaults.interval_s);
    if !BufferHints::INTERVAL_S_RANGE.contains(&interval_s) {
        return Err(ApiError::invalid(format!(
            "BufferingHints.IntervalInSeconds must be 0..=900; got {interval_s}."
        )));
    }
    Ok(BufferHints {
        size_bytes: size_mib * MIB,
        interval_s,
    })
}

/// Where S3 requests go when the delivery stream was created through the API: the standard
/// AWS environment of the gateway (AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, AWS_REGION).
fn s3_from_api(
    input: S3In,
    default_region: &str,
) -> Result<(S3Config, BufferHints, Compression), ApiError> {
    let arn = input
        .bucket_arn
        .ok_or_else(|| ApiError::missing("s3DestinationConfiguration.bucketARN"))?;
    let bucket = arn
        .strip_prefix("arn:aws:s3:::")
        .filter(|b| !b.is_empty() && !b.contains('/'))
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "BucketARN '{arn}' is not an S3 bucket ARN (arn:aws:s3:::BUCKET)."
            ))
        })?
        .to_owned();
    let compression = match input.compression_format.as_deref().unwrap_or("UNCOMPRESSED") {
        "UNCOMPRESSED" => Compression::None,
        "GZIP" => Compression::Gzip,
        "Snappy" => Compression::Snappy,
        other => {
            return Err(ApiError::invalid(format!(
                "CompressionFormat {other} is not supported by kinedge; use UNCOMPRESSED, GZIP or Snappy (zstd is available in the config file)."
            )))
        }
    };
    for (prefix, error) in [(&input.prefix, false), (&input.error_output_prefix, true)] {
        if let Some(p) = prefix {
            crate::delivery::destinations::naming::check_prefix(p, error).map_err(|m| {
                ApiError::invalid(format!(
                    "{}: {m}",
                    if error { "ErrorOutputPrefix" } else { "Prefix" }
                ))
            })?;
        }
    }
    let env_endpoint = std::env::var("AWS_ENDPOINT_URL_S3")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .ok()
        .filter(|e| !e.is_empty());
    let region = std::env::var("AWS_REGION")
        .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|_| default_region.to_owned());
    let hints = buffer_hints(input.buffering_hints, 128)?;
    Ok((
        S3Config {
            bucket,
            region,
            prefix: input.prefix.filter(|p| !p.is_empty()),
            error_prefix: input.error_output_prefix.filter(|p| !p.is_empty()),
            endpoint: None,
            credentials: AwsCredentialsConfig::default(),
            force_path_style: env_endpoint.is_some(),
        },
        hints,
        compression,
    ))
}

async fn create(
    state: &ApiState,
    service: &DeliveryService,
    input: CreateInput,
) -> Result<CreateOutput, ApiError> {
    let name = check_name(input.delivery_stream_name.as_deref())?;
    let unsupported: Vec<&String> = input
        .other
        .keys()
        .filter(|k| k.ends_with("DestinationConfiguration"))
        .collect();
    if let Some(kind) = unsupported.first() {
        return Err(ApiError::invalid(format!(
            "{kind} is not supported by kinedge: use ExtendedS3DestinationConfiguration, S3DestinationConfiguration or HttpEndpointDestinationConfiguration (other destinations are set in the config file)."
        )));
    }
    let source = match input.delivery_stream_type.as_deref().unwrap_or("DirectPut") {
        "DirectPut" => SourceConfig::DirectPut,
        "KinesisStreamAsSource" => {
            let arn = input
                .kinesis_stream_source_configuration
                .and_then(|c| c.kinesis_stream_arn)
                .ok_or_else(|| ApiError::invalid("KinesisStreamAsSource needs KinesisStreamSourceConfiguration.KinesisStreamARN."))?;
            let stream = arn
                .rsplit_once(":stream/")
                .map(|(_, s)| s.to_owned())
                .filter(|s| crate::streams::validate::is_valid_stream_name(s))
                .ok_or_else(|| {
                    ApiError::invalid(format!("'{arn}' is not a Kinesis stream ARN."))
                })?;
            if state.store.catalog().stream(&stream).is_none() {
                return Err(ApiError::invalid(format!(
                    "Stream {stream} under account {} not found.",
                    state.account_id
                )));
            }
            SourceConfig::Stream {
                stream,
                start: StartPosition::Latest,
            }
        }
        other => {
            return Err(ApiError::invalid(format!(
            "DeliveryStreamType {other} is not supported; use DirectPut or KinesisStreamAsSource."
        )))
        }
    };
    let s3 = input
        .extended_s3_destination_configuration
        .or(input.s3_destination_configuration);
    let (destination, buffer, compression) = match (s3, input.http_endpoint_destination_configuration) {
        (Some(s3), None) => {
            let (config, hints, compression) = s3_from_api(s3, &state.region)?;
            (DestinationConfig::S3(config), hints, compression)
        }
        (None, Some(http)) => {
            let endpoint = http
                .endpoint_configuration
                .ok_or_else(|| ApiError::missing("httpEndpointDestinationConfiguration.endpointConfiguration"))?;
            let url = endpoint
                .url
                .ok_or_else(|| ApiError::missing("httpEndpointDestinationConfiguration.endpointConfiguration.url"))?;
            let parsed = reqwest::Url::parse(&url)
                .map_err(|e| ApiError::invalid(format!("Url '{url}' is not a URL: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(ApiError::invalid(format!("Url '{url}' must be http:// or https://.")));
            }
            let request = http.request_configuration.unwrap_or_default();
            let compression = match request.content_encoding.as_deref().unwrap_or("NONE") {
                "NONE" => Compression::None,
                "GZIP" => Compression::Gzip,
                other => return Err(ApiError::invalid(format!("ContentEncoding {other} is not NONE or GZIP."))),
            };
            let common_attributes: BTreeMap<String, String> = request
                .common_attributes
                .unwrap_or_default()
                .into_iter()
                .map(|a| (a.attribute_name, a.attribute_value))
                .collect();
            if common_attributes.len() > 50 {
                return Err(ApiError::invalid("At most 50 CommonAttributes."));
            }
            let retry_duration_s = http
                .retry_options
                .and_then(|r| r.duration_in_seconds)
                .unwrap_or(HttpEndpointConfig::DEFAULT_RETRY_DURATION_S);
            if retry_duration_s > HttpEndpointConfig::MAX_RETRY_DURATION_S {
                return Err(ApiError::invalid("RetryOptions.DurationInSeconds must be 0..=7200."));
            }
            let access_key = match endpoint.access_key.filter(|k| !k.is_empty()) {
                None => None,
                Some(key) if key.len() > 4096 => {
                    return Err(ApiError::invalid("AccessKey is longer than 4096 characters."))
                }
                Some(key) => Some(store_access_key(state, &name, &key).await?),
            };
            let hints = buffer_hints(http.buffering_hints, 64)?;
            (
                DestinationConfig::HttpEndpoint(HttpEndpointConfig {
                    url,
                    access_key,
                    common_attributes,
                    retry_duration_s,
                }),
                hints,
                compression,
            )
        }
        (None, None) => {
            return Err(ApiError::invalid(
                "A destination is needed: ExtendedS3DestinationConfiguration, S3DestinationConfiguration or HttpEndpointDestinationConfiguration.",
            ))
        }
        (Some(_), Some(_)) => return Err(ApiError::invalid("Give exactly one destination configuration.")),
    };
    let config = DeliveryStreamConfig {
        name: name.clone(),
        source,
        buffer,
        compression,
        priority: DeliveryStreamConfig::DEFAULT_PRIORITY,
        processors: Vec::new(),
        destination,
    };
    service.create(config).await.map_err(service_error)?;
    Ok(CreateOutput {
        delivery_stream_arn: service.arn(&name),
    })
}

/// Keeps an HTTP endpoint's access key in a file only the gateway's user can read (not in the
/// database or a log); the definition refers to the file.
async fn store_access_key(state: &ApiState, name: &str, key: &str) -> Result<Secret, ApiError> {
    let dir = state.store.data_dir().join("delivery-secrets");
    let path = dir.join(format!("{name}.access-key"));
    let key = key.to_owned();
    let target = path.clone();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&target)?;
        file.write_all(key.as_bytes())?;
        file.sync_all()
    })
    .await
    .map_err(|e| ApiError::new(ErrorKind::InternalFailure, e.to_string()))?
    .map_err(|e| {
        ApiError::new(
            ErrorKind::InternalFailure,
            format!("cannot keep the access key: {e}"),
        )
    })?;
    Ok(Secret::File(path))
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
