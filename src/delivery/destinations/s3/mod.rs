//! The `s3` destination: one object per batch (one per rendered prefix with dynamic
//! partitioning), named as Firehose names them, compressed whole, in any S3-compatible store.
//! Bodies above [`MULTIPART_THRESHOLD`] go up as a multipart upload (aborted on failure).
//! Object keys depend only on the batch, so a retry overwrites what an attempt may have left.
//!
//! Addressing: path-style URLs (`endpoint/bucket/key`) when `force_path_style` is set, and
//! also when the endpoint is an IP address or `localhost` or the bucket name has a dot (no
//! virtual host can work there); virtual-hosted (`bucket.endpoint/key`) otherwise, as AWS
//! prefers. moto and MinIO behind a host name need `force_path_style = true`.

pub mod config;

use bytes::Bytes;

use super::aws::{uri_encode, xml_tag, AwsClient};
use super::naming::{self, Prefix, RenderContext};
use super::{BatchLimits, BuildError, DeliveryError, DestinationContext};
use crate::delivery::batch::{Batch, ErrorBatch, ErrorOutputType};
use crate::delivery::compression;
use crate::delivery::config::{Compression, S3Config, MIB};

/// Compressed bodies above this go up in parts.
const MULTIPART_THRESHOLD: usize = 16 * MIB as usize;
/// Part size (S3's minimum is 5 MiB, for all parts but the last).
const PART_SIZE: usize = 8 * MIB as usize;
/// The content type of batches and error output.
const BINARY: &str = "application/octet-stream";

pub struct S3Destination {
    client: AwsClient,
    bucket: String,
    path_style: bool,
    prefix: Prefix,
    error_prefix: Prefix,
    prefix_template: String,
}

impl S3Destination {
    pub fn new(
        config: &S3Config,
        context: &DestinationContext,
    ) -> Result<S3Destination, BuildError> {
        let error = |message: String| BuildError {
            kind: "s3",
            message,
        };
        if config.bucket.is_empty() {
            return Err(error("bucket is empty".into()));
        }
        let prefix = Prefix::parse_or_default(config.prefix.as_deref(), false)
            .map_err(|e| error(format!("prefix: {e}")))?;
        let error_prefix = Prefix::parse_or_default(config.error_prefix.as_deref(), true)
            .map_err(|e| error(format!("error_prefix: {e}")))?;
        let client = AwsClient::new(
            "s3",
            "s3",
            context.http.clone(),
            &config.credentials,
            &config.region,
            config.endpoint.as_deref(),
        )?;
        let path_style = config.force_path_style
            || client.endpoint.is_ip_or_localhost()
            || config.bucket.contains('.');
        Ok(S3Destination {
            client,
            bucket: config.bucket.clone(),
            path_style,
            prefix,
            error_prefix,
            prefix_template: config
                .prefix
                .clone()
                .unwrap_or_else(|| naming::DEFAULT_PREFIX.into()),
        })
    }

    fn url(&self, key: &str, query: &str) -> String {
        let key = uri_encode(key, true);
        let e = &self.client.endpoint;
        let mut url = if self.path_style {
            format!("{}/{}/{key}", e.base(), self.bucket)
        } else {
            format!("{}://{}.{}/{key}", e.scheme, self.bucket, e.authority)
        };
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        url
    }

    /// Uploads one object, in parts when it is large.
    async fn upload(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<(), DeliveryError> {
        if body.len() > MULTIPART_THRESHOLD {
            return self.multipart(key, body, content_type).await;
        }
        let headers = [("content-type", content_type.to_string())];
        self.client
            .send(http::Method::PUT, &self.url(key, ""), &headers, body)
            .await?;
        tracing::debug!(bucket = %self.bucket, key, "object written");
        Ok(())
    }

    async fn multipart(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<(), DeliveryError> {
        let headers = [("content-type", content_type.to_string())];
        let answer = self
            .client
            .send(
                http::Method::POST,
                &self.url(key, "uploads"),
                &headers,
                Bytes::new(),
            )
            .await?;
        let upload_id =
            xml_tag(&String::from_utf8_lossy(&answer.body), "UploadId").ok_or_else(|| {
                DeliveryError::Retryable(
                    "s3 CreateMultipartUpload answered without UploadId".into(),
                )
            })?;
        let upload_query = format!("uploadId={}", uri_encode(&upload_id, false));
        let result = self.upload_parts(key, &body, &upload_query).await;
        if result.is_err() {
            // Best effort: S3 would otherwise keep the parts (and bill them) until a
            // lifecycle rule removes them.
            let url = self.url(key, &upload_query);
            if let Err(e) = self
                .client
                .send(http::Method::DELETE, &url, &[], Bytes::new())
                .await
            {
                tracing::warn!(bucket = %self.bucket, key, error = %e, "could not abort a multipart upload");
            }
        }
        result
    }

    async fn upload_parts(
        &self,
        key: &str,
        body: &Bytes,
        upload_query: &str,
    ) -> Result<(), DeliveryError> {
        let mut complete = String::from("<CompleteMultipartUpload>");
        for (n, start) in (0..body.len()).step_by(PART_SIZE).enumerate() {
            let part = body.slice(start..(start + PART_SIZE).min(body.len()));
            let url = self.url(key, &format!("partNumber={}&{upload_query}", n + 1));
            let answer = self.client.send(http::Method::PUT, &url, &[], part).await?;
            let etag = answer
                .headers
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    DeliveryError::Retryable("s3 UploadPart answered without ETag".into())
                })?;
            complete.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
                n + 1,
                etag.replace('&', "&amp;").replace('<', "&lt;")
            ));
        }
        complete.push_str("</CompleteMultipartUpload>");
        let headers = [("content-type", "application/xml".to_string())];
        let answer = self
            .client
            .send(
                http::Method::POST,
                &self.url(key, upload_query),
                &headers,
                Bytes::from(complete),
            )
            .await?;
        // CompleteMultipartUpload can fail after answering 200: the error is in the body.
        let text = String::from_utf8_lossy(&answer.body);
        if text.contains("<Error>") {
            return Err(super::aws::classify("s3", 200, answer.body.as_ref(), None));
        }
        tracing::debug!(bucket = %self.bucket, key, bytes = body.len(), "multipart object written");
        Ok(())
    }
}

/// The records' data, concatenated and compressed whole (off the async runtime).
pub(super) async fn object_body(
    batch: &Batch,
    indices: &[usize],
    compression: Compression,
) -> Result<Bytes, DeliveryError> {
    let parts: Vec<Bytes> = indices
        .iter()
        .map(|&i| batch.records[i].data.clone())
        .collect();
    tokio::task::spawn_blocking(move || {
        let mut data = Vec::with_capacity(parts.iter().map(Bytes::len).sum());
        for p in &parts {
            data.extend_from_slice(p);
        }
        match compression {
            Compression::None => Ok(Bytes::from(data)),
            c => compression::compress(c, &data).map(Bytes::from),
        }
    })
    .await
    .map_err(|e| DeliveryError::Retryable(format!("compression task failed: {e}")))?
    .map_err(|e| DeliveryError::Retryable(format!("compression failed: {e}")))
}

/// The error output's key and body for an error batch.
pub(super) fn error_object(
    prefix: &Prefix,
    errors: &ErrorBatch,
) -> Result<(String, Vec<u8>), DeliveryError> {
    let empty = Default::default();
    let rendered = prefix
        .render(&RenderContext {
            created_ms: errors.created_ms,
            batch_id: &errors.id,
            error_output_type: Some(errors.kind.as_str()),
            partition_values: &empty,
        })
        .map_err(DeliveryError::Permanent)?;
    let name = naming::object_name(
        &errors.delivery_stream,
        errors.created_ms,
        &errors.id,
        Compression::None,
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Ok((format!("{rendered}{name}"), errors.to_json_lines(now_ms)))
}

#[async_trait::async_trait]
impl super::Destination for S3Destination {
    fn kind(&self) -> &'static str {
        "s3"
    }
    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix_template)
    }
    fn limits(&self) -> BatchLimits {
        BatchLimits {
            max_bytes: 128 * MIB,
            max_records: usize::MAX,
        }
    }
    fn failure_type(&self) -> ErrorOutputType {
        ErrorOutputType::S3Failed
    }

    /// Writes one object per rendered prefix. Any failure fails the whole batch: a retry
    /// writes the same keys again. Records without their partition key go to the error output.
    async fn deliver(&self, batch: &Batch) -> Result<(), DeliveryError> {
        let groups = naming::group_records(&self.prefix, batch);
        let name = naming::object_name(
            &batch.delivery_stream,
            batch.created_ms,
            &batch.id,
            batch.compression,
        );
        for (prefix, indices) in &groups.groups {
            let body = object_body(batch, indices, batch.compression).await?;
            self.upload(&format!("{prefix}{name}"), body, BINARY)
                .await?;
        }
        if !groups.failed.is_empty() {
            self.deliver_errors(&naming::unroutable_errors(batch, &groups.failed))
                .await?;
        }
        Ok(())
    }

    async fn deliver_errors(&self, errors: &ErrorBatch) -> Result<bool, DeliveryError> {
        let (key, body) = error_object(&self.error_prefix, errors)?;
        self.upload(&key, Bytes::from(body), BINARY).await?;
        Ok(true)
    }
}

#[async_trait::async_trait]
impl super::ObjectStore for S3Destination {
    fn prefix(&self) -> &Prefix {
        &self.prefix
    }

    async fn put_object(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<(), DeliveryError> {
        self.upload(key, body, content_type).await
    }
}
