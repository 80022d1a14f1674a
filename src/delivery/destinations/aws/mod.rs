//! What the AWS destinations (`s3`, `kinesis`, `firehose`) share: credentials (config,
//! environment, shared credentials file), endpoints, SigV4-signed requests through the
//! gateway's HTTP client, the classification of upstream answers into [`DeliveryError`], and
//! the PutRecords/PutRecordBatch driver (request splitting, per-entry failures).
//!
//! Secrets never reach a log or an error message: only where they were looked for.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use sha2::{Digest, Sha256};

mod credentials;

pub(crate) use credentials::resolve_credentials;

use super::{BuildError, DeliveryError};
use crate::delivery::batch::{Batch, DeliveryRecord};
use crate::delivery::config::AwsCredentialsConfig;

/// Bodies above this are hashed in `spawn_blocking`.
const INLINE_HASH_MAX: usize = 64 * 1024;
/// Most of an answer we read (PutRecords answers for 500 records are ~60 KiB).
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;
/// Every request gets this long, plus one second per [`SLOWEST_LINK_BYTES_PER_S`] of body.
const BASE_TIMEOUT: Duration = Duration::from_secs(30);
const SLOWEST_LINK_BYTES_PER_S: usize = 32 * 1024;
/// Upstream error codes a retry can never fix.
const PERMANENT_CODES: &[&str] = &["EntityTooLarge", "RequestEntityTooLarge"];

/// Where requests go: `scheme://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Endpoint {
    pub scheme: String,
    /// `host[:port]`.
    pub authority: String,
    pub host: String,
    /// Set by the config or the environment (an S3-compatible store, moto, LocalStack).
    pub custom: bool,
}

impl Endpoint {
    pub fn base(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }

    /// An IP address or `localhost`: no virtual-hosted bucket names possible.
    pub fn is_ip_or_localhost(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self.host.parse::<std::net::Ipv4Addr>().is_ok()
            || self.host.starts_with('[')
    }
}

/// The endpoint: the config's, else `AWS_ENDPOINT_URL_<SERVICE>`, else `AWS_ENDPOINT_URL`,
/// else AWS's `https://{service}.{region}.amazonaws.com`.
pub(super) fn resolve_endpoint(
    configured: Option<&str>,
    service: &str,
    region: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Endpoint, String> {
    let service_var = format!("AWS_ENDPOINT_URL_{}", service.to_ascii_uppercase());
    let chosen = configured
        .map(|e| (e.to_string(), "endpoint".to_string()))
        .or_else(|| env(&service_var).map(|e| (e, service_var.clone())))
        .or_else(|| env("AWS_ENDPOINT_URL").map(|e| (e, "AWS_ENDPOINT_URL".to_string())))
        .filter(|(e, _)| !e.is_empty());
    let Some((url, from)) = chosen else {
        if region.is_empty() {
            return Err("region is empty".into());
        }
        let host = format!("{service}.{region}.amazonaws.com");
        return Ok(Endpoint {
            scheme: "https".into(),
            authority: host.clone(),
            host,
            custom: false,
        });
    };
    let bad = |why: &str| format!("{from} {url:?}: {why} (expected http(s)://host[:port])");
    let parsed = reqwest::Url::parse(&url).map_err(|e| bad(&e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("not http or https"));
    }
    if parsed.path() != "/" || parsed.query().is_some() || !parsed.username().is_empty() {
        return Err(bad("no path, query or user allowed"));
    }
    let host = parsed.host_str().ok_or_else(|| bad("no host"))?.to_string();
    let authority = match parsed.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.clone(),
    };
    Ok(Endpoint {
        scheme: parsed.scheme().to_string(),
        authority,
        host,
        custom: true,
    })
}

/// Percent-encodes everything but `A-Za-z0-9-_.~` (and `/` when `keep_slash`), as SigV4 and
/// S3 keys need.
pub(super) fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The text of the first `<tag>...</tag>` in an XML document, unescaped.
pub(super) fn xml_tag(xml: &str, tag: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(
        xml[start..end]
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// A successful upstream answer.
#[derive(Debug)]
pub(super) struct Answer {
    pub headers: reqwest::header::HeaderMap,
    pub body: Bytes,
}

/// Classifies an upstream error answer. The message says exactly what the upstream answered.
pub(super) fn classify(
    service: &str,
    status: u16,
    body: &[u8],
    error_type: Option<&str>,
) -> DeliveryError {
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim_start();
    let (code, message) = if trimmed.starts_with('<') {
        (xml_tag(trimmed, "Code"), xml_tag(trimmed, "Message"))
    } else if let Ok(json) = serde_json::from_str::<serde_json::Value>(trimmed) {
        let code = json
            .get("__type")
            .and_then(|t| t.as_str())
            .map(|t| t.rsplit('#').next().unwrap_or(t).to_string());
        let message = ["message", "Message"]
            .iter()
            .find_map(|k| json.get(k).and_then(|m| m.as_str()))
            .map(str::to_string);
        (code, message)
    } else {
        (None, None)
    };
    let code = code
        .or_else(|| error_type.map(|t| t.split(':').next().unwrap_or(t).to_string()))
        .unwrap_or_default();
    let message = message.unwrap_or_else(|| trimmed.chars().take(200).collect());
    let what = format!("{service} answered HTTP {status} {code}: {message}");
    if status == 413 || PERMANENT_CODES.contains(&code.as_str()) {
        DeliveryError::Permanent(what)
    } else {
        // 5xx, throttling, timeouts, and the 4xx a user can fix (AccessDenied, NoSuchBucket,
        // InvalidAccessKeyId, SignatureDoesNotMatch, ResourceNotFoundException): retried, so
        // nothing is lost while the user fixes the upstream.
        DeliveryError::Retryable(what)
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The hex SHA-256 of a body; large bodies are hashed off the async runtime.
async fn payload_hash(body: &Bytes) -> String {
    if body.len() <= INLINE_HASH_MAX {
        return hex::encode(Sha256::digest(body));
    }
    let owned = body.clone();
    match tokio::task::spawn_blocking(move || hex::encode(Sha256::digest(&owned))).await {
        Ok(h) => h,
        // The blocking pool is gone (shutdown): hash here rather than fail.
        Err(_) => hex::encode(Sha256::digest(body)),
    }
}

/// SigV4-signed requests to one AWS service.
pub(super) struct AwsClient {
    http: reqwest::Client,
    credentials: Credentials,
    region: String,
    /// SigV4 signing name: `s3`, `kinesis`, `firehose`.
    service: &'static str,
    pub endpoint: Endpoint,
}

impl AwsClient {
    pub fn new(
        kind: &'static str,
        service: &'static str,
        http: reqwest::Client,
        credentials: &AwsCredentialsConfig,
        region: &str,
        endpoint: Option<&str>,
    ) -> Result<AwsClient, BuildError> {
        let env = |name: &str| std::env::var(name).ok();
        let build_error = |message| BuildError { kind, message };
        let credentials = resolve_credentials(credentials, &env).map_err(build_error)?;
        let endpoint = resolve_endpoint(endpoint, service, region, &env).map_err(build_error)?;
        tracing::debug!(
            service,
            endpoint = %endpoint.base(),
            "AWS destination ready"
        );
        Ok(AwsClient {
            http,
            credentials,
            region: region.to_string(),
            service,
            endpoint,
        })
    }

    /// Signs and sends one request; one attempt. `Ok` only for a 2xx answer.
    pub async fn send(
        &self,
        method: http::Method,
        url: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<Answer, DeliveryError> {
        let hash = payload_hash(&body).await;
        let mut settings = SigningSettings::default();
        if self.service == "s3" {
            // S3 signs the path as sent, and wants the payload hash as a header.
            settings.percent_encoding_mode = PercentEncodingMode::Single;
            settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        }
        let identity = self.credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(self.service)
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| DeliveryError::Permanent(format!("cannot sign: {e}")))?
            .into();
        let signable = SignableRequest::new(
            method.as_str(),
            url,
            headers.iter().map(|(k, v)| (*k, v.as_str())),
            SignableBody::Precomputed(hash),
        )
        .map_err(|e| DeliveryError::Permanent(format!("cannot sign {url}: {e}")))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| DeliveryError::Permanent(format!("cannot sign {url}: {e}")))?
            .into_parts();

        let timeout =
            BASE_TIMEOUT + Duration::from_secs((body.len() / SLOWEST_LINK_BYTES_PER_S) as u64);
        let mut request = self.http.request(method, url).timeout(timeout);
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        for (name, value) in instructions.headers() {
            request = request.header(name, value);
        }
        let unreachable = |e: reqwest::Error| {
            if e.is_timeout() {
                DeliveryError::Retryable(format!(
                    "{} at {} gave no answer within {} s",
                    self.service,
                    self.endpoint.authority,
                    timeout.as_secs()
                ))
            } else {
                DeliveryError::Unreachable(format!(
                    "{} at {}: {}",
                    self.service,
                    self.endpoint.authority,
                    error_chain(&e)
                ))
            }
        };
        let mut response = request.body(body).send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let mut answer = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if answer.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(DeliveryError::Retryable(format!(
                    "{} answered HTTP {status} with more than {MAX_ANSWER_BYTES} bytes",
                    self.service
                )));
            }
            answer.extend_from_slice(&chunk);
        }
        let headers = std::mem::take(response.headers_mut());
        if (200..300).contains(&status) {
            return Ok(Answer {
                headers,
                body: Bytes::from(answer),
            });
        }
        let error_type = headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok());
        Err(classify(self.service, status, &answer, error_type))
    }
}

/// The PutRecords/PutRecordBatch driver shared by the `kinesis` and `firehose` destinations.
pub(super) struct RecordPutter {
    pub client: AwsClient,
    /// `X-Amz-Target`.
    pub target: &'static str,
    /// The upstream stream's name (for the body).
    pub name: String,
    pub max_records: usize,
    pub max_request_bytes: usize,
    pub max_record_bytes: usize,
    /// A record's size as the service counts it against its limits.
    pub record_size: fn(&DeliveryRecord) -> usize,
    /// The JSON request body for these records.
    pub body: fn(&str, &[DeliveryRecord]) -> Vec<u8>,
    /// The answer's per-entry array (`Records`, `RequestResponses`).
    pub entries_key: &'static str,
}

/// Splits records (by size) into requests of at most `max_records` and `max_request_bytes`;
/// records over `max_record_bytes` go into the second list, never into a request.
pub(super) fn split_requests(
    sizes: &[usize],
    max_records: usize,
    max_request_bytes: usize,
    max_record_bytes: usize,
) -> (Vec<Vec<usize>>, Vec<usize>) {
    let mut requests: Vec<Vec<usize>> = Vec::new();
    let mut oversize = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0;
    for (i, &size) in sizes.iter().enumerate() {
        if size > max_record_bytes {
            oversize.push(i);
            continue;
        }
        if !current.is_empty() && (current.len() == max_records || bytes + size > max_request_bytes)
        {
            requests.push(std::mem::take(&mut current));
            bytes = 0;
        }
        current.push(i);
        bytes += size;
    }
    if !current.is_empty() {
        requests.push(current);
    }
    (requests, oversize)
}

/// The positions (in the request) of entries an answer marks failed, with the first error.
pub(super) fn failed_entries(
    body: &[u8],
    entries_key: &str,
    sent: usize,
) -> Result<(Vec<usize>, Option<String>), String> {
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("unreadable answer: {e}"))?;
    let entries = json
        .get(entries_key)
        .and_then(|e| e.as_array())
        .ok_or_else(|| format!("answer without {entries_key}"))?;
    if entries.len() != sent {
        return Err(format!(
            "answer has {} entries for {sent} records",
            entries.len()
        ));
    }
    let mut failed = Vec::new();
    let mut first = None;
    for (i, entry) in entries.iter().enumerate() {
        if let Some(code) = entry.get("ErrorCode").and_then(|c| c.as_str()) {
            failed.push(i);
            if first.is_none() {
                let message = entry
                    .get("ErrorMessage")
                    .and_then(|m| m.as_str())
                    .unwrap_or("");
                first = Some(format!("{code}: {message}"));
            }
        }
    }
    Ok((failed, first))
}

impl RecordPutter {
    /// Delivers a batch in as many requests as its limits need, in order. Stops at the first
    /// request that did not fully succeed (so that records of a partition key keep their
    /// order) and reports what was not confirmed as [`DeliveryError::Partial`].
    ///
    /// A record over the service's record limit can never be delivered. It is reported as
    /// not confirmed (`Partial`) while the batch has other records; once the runner retries
    /// a batch made only of such records, that batch is `Permanent` and goes to the error
    /// output, without holding back or losing the records that can be delivered.
    pub async fn put(&self, batch: &Batch) -> Result<(), DeliveryError> {
        if batch.records.is_empty() {
            return Ok(());
        }
        let service = self.client.service;
        let sizes: Vec<usize> = batch.records.iter().map(self.record_size).collect();
        let (requests, oversize) = split_requests(
            &sizes,
            self.max_records,
            self.max_request_bytes,
            self.max_record_bytes,
        );
        let too_large = || {
            format!(
                "{} record(s) over {service}'s limit of {} bytes per record (first: record {} \
                 of {} bytes); they cannot be delivered",
                oversize.len(),
                self.max_record_bytes,
                oversize[0],
                sizes[oversize[0]]
            )
        };
        if requests.is_empty() {
            return Err(DeliveryError::Permanent(too_large()));
        }
        let mut accepted = 0;
        let mut failed: Vec<usize> = Vec::new();
        let mut message = None;
        for (n, request) in requests.iter().enumerate() {
            match self.put_request(batch, request).await {
                Ok((entries_failed, first)) => {
                    accepted += request.len() - entries_failed.len();
                    if entries_failed.is_empty() {
                        continue;
                    }
                    failed.extend(entries_failed.iter().map(|&p| request[p]));
                    message = Some(format!(
                        "{service} refused {} of {} records: {}",
                        entries_failed.len(),
                        request.len(),
                        first.unwrap_or_default()
                    ));
                }
                Err(e) => {
                    if accepted == 0 && oversize.is_empty() {
                        return Err(e);
                    }
                    failed.extend(request);
                    message = Some(e.to_string());
                }
            }
            failed.extend(requests[n + 1..].iter().flatten());
            break;
        }
        if failed.is_empty() && oversize.is_empty() {
            return Ok(());
        }
        if accepted == 0 && oversize.is_empty() {
            return Err(DeliveryError::Retryable(message.unwrap_or_default()));
        }
        let message = match (message, oversize.is_empty()) {
            (Some(m), true) => m,
            (Some(m), false) => format!("{m}; {}", too_large()),
            (None, _) => too_large(),
        };
        failed.extend(&oversize);
        failed.sort_unstable();
        Err(DeliveryError::Partial { failed, message })
    }

    /// One request: the positions (in `indices`) of entries that failed, with the first error.
    async fn put_request(
        &self,
        batch: &Batch,
        indices: &[usize],
    ) -> Result<(Vec<usize>, Option<String>), DeliveryError> {
        let records: Vec<DeliveryRecord> =
            indices.iter().map(|&i| batch.records[i].clone()).collect();
        let name = self.name.clone();
        let build = self.body;
        let body = tokio::task::spawn_blocking(move || build(&name, &records))
            .await
            .map_err(|e| DeliveryError::Retryable(format!("building the request failed: {e}")))?;
        let url = format!("{}/", self.client.endpoint.base());
        let headers = [
            ("content-type", "application/x-amz-json-1.1".to_string()),
            ("x-amz-target", self.target.to_string()),
        ];
        let answer = self
            .client
            .send(http::Method::POST, &url, &headers, Bytes::from(body))
            .await?;
        failed_entries(&answer.body, self.entries_key, indices.len()).map_err(|e| {
            DeliveryError::Retryable(format!("{} {}: {e}", self.client.service, self.target))
        })
    }
}

#[cfg(test)]
mod tests;
