//! CreateDeliveryStream: a Firehose definition (S3 or HTTP endpoint destination, direct put
//! or a Kinesis stream as source) converted into a delivery stream's config.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{check_name, service_error, FirehoseState};
use crate::api::error::{ApiError, ErrorKind};
use crate::delivery::config::{
    AwsCredentialsConfig, BufferHints, Compression, DeliveryStreamConfig, DestinationConfig,
    HttpEndpointConfig, S3Config, Secret, SourceConfig, StartPosition, MIB,
};
use crate::delivery::DeliveryService;

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub(super) struct BufferingHintsIn {
    size_in_m_bs: Option<u64>,
    interval_in_seconds: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct S3In {
    #[serde(rename = "BucketARN")]
    bucket_arn: Option<String>,
    prefix: Option<String>,
    error_output_prefix: Option<String>,
    buffering_hints: Option<BufferingHintsIn>,
    compression_format: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct EndpointIn {
    url: Option<String>,
    access_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct AttributeIn {
    attribute_name: String,
    attribute_value: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub(super) struct RequestConfigIn {
    content_encoding: Option<String>,
    common_attributes: Option<Vec<AttributeIn>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct RetryIn {
    duration_in_seconds: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct HttpIn {
    endpoint_configuration: Option<EndpointIn>,
    pub(super) buffering_hints: Option<BufferingHintsIn>,
    request_configuration: Option<RequestConfigIn>,
    retry_options: Option<RetryIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct KinesisSourceIn {
    #[serde(rename = "KinesisStreamARN")]
    kinesis_stream_arn: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct CreateInput {
    delivery_stream_name: Option<String>,
    delivery_stream_type: Option<String>,
    kinesis_stream_source_configuration: Option<KinesisSourceIn>,
    pub(super) s3_destination_configuration: Option<S3In>,
    pub(super) extended_s3_destination_configuration: Option<S3In>,
    pub(super) http_endpoint_destination_configuration: Option<HttpIn>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct CreateOutput {
    #[serde(rename = "DeliveryStreamARN")]
    delivery_stream_arn: String,
}

pub(super) fn buffer_hints(
    hints: Option<BufferingHintsIn>,
    max_mib: u64,
) -> Result<BufferHints, ApiError> {
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
pub(super) fn s3_from_api(
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

pub(super) async fn create(
    state: &FirehoseState,
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
async fn store_access_key(
    state: &FirehoseState,
    name: &str,
    key: &str,
) -> Result<Secret, ApiError> {
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
