//! The `http_endpoint` destination: Firehose's HTTP endpoint delivery contract, so that any
//! receiver built for Firehose works unchanged.
//!
//! One `deliver` is one POST to the configured URL:
//! - headers `Content-Type: application/json`, `X-Amz-Firehose-Protocol-Version: 1.0`,
//!   `X-Amz-Firehose-Request-Id` (the batch id: the same on every retry of a batch and when
//!   the batch is formed again after a crash, so a receiver can drop duplicates), `X-Amz-Firehose-Source-Arn`, `X-Amz-Firehose-Access-Key`
//!   (when configured; read once at construction, never logged), and
//!   `X-Amz-Firehose-Common-Attributes` (`{"commonAttributes":{...}}`, when there are any);
//!   `Content-Encoding: gzip` when the delivery stream compresses with gzip (every other
//!   compression is sent uncompressed: the contract knows only gzip, and the configuration
//!   check allows nothing else here).
//! - body `{"requestId":"…","timestamp":<when the batch was formed, ms>,"records":[{"data":"<base64>"},…]}`,
//!   written straight into a buffer (and through gzip in chunks) off the async runtime.
//!
//! Outcome: only `200` whose JSON body carries our `requestId` is success. `413` is permanent.
//! No connection (refused, DNS, TLS) is `Unreachable`. Everything else — another status,
//! a missing or different `requestId`, a body that is not JSON, no answer within 3 minutes —
//! is `Retryable`, with a message that says what came back. Redirects are not followed.
//!
//! Records larger than 1,024,000 bytes are not sent (the contract does not allow them): the
//! others are, and a confirmed request then reports `Partial` with the large ones' indices,
//! whose retry (a batch of only such records) answers `Permanent`, so they end in the error
//! output without holding up the records around them.

pub mod config;

use std::io::Write;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};
use serde::Deserialize;

use super::{BatchLimits, BuildError, DeliveryError, DestinationContext};
use crate::delivery::batch::{Batch, ErrorOutputType};
use crate::delivery::config::{Compression, HttpEndpointConfig, Secret, MIB};

const KIND: &str = "http_endpoint";

/// Records per request, at most.
pub const MAX_RECORDS: usize = 10_000;
/// A record's data, at most, before base64.
pub const MAX_RECORD_BYTES: usize = 1_024_000;
/// The request body, at most, before compression.
pub const MAX_BODY_BYTES: u64 = 64 * MIB;
/// `X-Amz-Firehose-Access-Key`, at most.
pub const MAX_ACCESS_KEY_BYTES: usize = 4096;
/// `X-Amz-Firehose-Common-Attributes` entries, at most.
pub const MAX_COMMON_ATTRIBUTES: usize = 50;

/// How long the receiver has to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(180);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Sending the body may take longer than the answer on a slow link: the request's deadline
/// is the answer timeout plus the body at this rate.
const SLOW_LINK_BYTES_PER_S: u64 = 128 * 1024;
/// Most of an answer that is read (the contract's answer is a small JSON object).
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Longest piece of a receiver's answer quoted in an error message.
const MAX_QUOTED_CHARS: usize = 300;

/// Body bytes besides the records: `{"requestId":"<36>","timestamp":<≤20>,"records":[]}`.
const BODY_OVERHEAD: u64 = 256;
/// Body bytes per record besides its base64: `{"data":""},`, plus base64 padding slack.
const RECORD_OVERHEAD: u64 = 12 + 3;

/// Body building: records are encoded into a chunk of this size, then compressed.
const CHUNK_BYTES: usize = 256 * 1024;

const PROTOCOL_VERSION: HeaderName = HeaderName::from_static("x-amz-firehose-protocol-version");
const REQUEST_ID: HeaderName = HeaderName::from_static("x-amz-firehose-request-id");
const SOURCE_ARN: HeaderName = HeaderName::from_static("x-amz-firehose-source-arn");
const ACCESS_KEY: HeaderName = HeaderName::from_static("x-amz-firehose-access-key");
const COMMON_ATTRIBUTES: HeaderName = HeaderName::from_static("x-amz-firehose-common-attributes");

pub struct HttpEndpointDestination {
    url: reqwest::Url,
    client: reqwest::Client,
    /// Every header but the request id and the content encoding.
    headers: HeaderMap,
    retry_duration: Duration,
    answer_timeout: Duration,
}

impl HttpEndpointDestination {
    pub fn new(
        config: &HttpEndpointConfig,
        context: &DestinationContext,
    ) -> Result<HttpEndpointDestination, BuildError> {
        Self::with_answer_timeout(config, context, ANSWER_TIMEOUT)
    }

    /// As [`HttpEndpointDestination::new`], with another answer timeout (tests).
    pub(crate) fn with_answer_timeout(
        config: &HttpEndpointConfig,
        context: &DestinationContext,
        answer_timeout: Duration,
    ) -> Result<HttpEndpointDestination, BuildError> {
        let url = reqwest::Url::parse(&config.url)
            .map_err(|e| build_error(format!("url `{}`: {e}", config.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(build_error(format!(
                "url `{}`: must be http:// or https://",
                config.url
            )));
        }

        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(PROTOCOL_VERSION, HeaderValue::from_static("1.0"));
        headers.insert(
            SOURCE_ARN,
            HeaderValue::from_str(&context.source_arn)
                .map_err(|_| build_error("the source ARN is not a valid header value".into()))?,
        );
        if let Some(secret) = &config.access_key {
            let key = read_secret(secret).map_err(|e| build_error(format!("access key: {e}")))?;
            if key.len() > MAX_ACCESS_KEY_BYTES {
                return Err(build_error(format!(
                    "access key ({}): {} bytes, at most {MAX_ACCESS_KEY_BYTES}",
                    describe_secret(secret),
                    key.len()
                )));
            }
            let mut value = HeaderValue::from_str(&key).map_err(|_| {
                build_error(format!(
                    "access key ({}): only visible ASCII characters can be sent in a header",
                    describe_secret(secret)
                ))
            })?;
            value.set_sensitive(true);
            headers.insert(ACCESS_KEY, value);
        }
        if !config.common_attributes.is_empty() {
            if config.common_attributes.len() > MAX_COMMON_ATTRIBUTES {
                return Err(build_error(format!(
                    "common_attributes: {} entries, at most {MAX_COMMON_ATTRIBUTES}",
                    config.common_attributes.len()
                )));
            }
            let json = serde_json::json!({ "commonAttributes": &config.common_attributes });
            headers.insert(
                COMMON_ATTRIBUTES,
                HeaderValue::from_str(&json.to_string()).map_err(|_| {
                    build_error("common_attributes: names and values must be visible ASCII".into())
                })?,
            );
        }

        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| build_error(format!("HTTP client: {}", error_chain(&e))))?;

        Ok(HttpEndpointDestination {
            url,
            client,
            headers,
            retry_duration: Duration::from_secs(u64::from(config.retry_duration_s)),
            answer_timeout,
        })
    }

    /// One POST of `body`; classifies what came back.
    async fn post(&self, request_id: &str, gzip: bool, body: Vec<u8>) -> Result<(), DeliveryError> {
        let deadline =
            self.answer_timeout + Duration::from_secs(body.len() as u64 / SLOW_LINK_BYTES_PER_S);
        let mut request = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .timeout(deadline);
        request = match HeaderValue::from_str(request_id) {
            Ok(id) => request.header(REQUEST_ID, id),
            Err(_) => {
                return Err(DeliveryError::Permanent(format!(
                    "batch id {request_id:?} cannot be sent as a request id"
                )))
            }
        };
        if gzip {
            request = request.header(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        let response = match request.body(body).send().await {
            Ok(response) => response,
            Err(e) => return Err(classify_send_error(&e, deadline)),
        };
        let status = response.status();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(|l| truncate(l, MAX_QUOTED_CHARS));
        let answer = match read_answer(response).await {
            Ok(answer) => answer,
            Err(e) if e.is_timeout() => {
                return Err(DeliveryError::Retryable(format!(
                    "HTTP {status}, then no complete answer within {} s",
                    deadline.as_secs()
                )))
            }
            Err(e) => {
                return Err(DeliveryError::Retryable(format!(
                    "HTTP {status}, then reading the answer failed: {}",
                    error_chain(&e)
                )))
            }
        };
        let parsed: Option<Answer> = serde_json::from_slice(&answer).ok();
        let receiver_says = |parsed: &Option<Answer>| match parsed {
            Some(Answer {
                error_message: Some(m),
                ..
            }) => format!(": errorMessage {:?}", truncate(m, MAX_QUOTED_CHARS)),
            Some(_) => String::new(),
            None if answer.is_empty() => ", empty body".to_string(),
            None => format!(
                ", body {:?}",
                truncate(&String::from_utf8_lossy(&answer), MAX_QUOTED_CHARS)
            ),
        };

        if status == reqwest::StatusCode::OK {
            return match &parsed {
                Some(Answer {
                    request_id: Some(id),
                    ..
                }) if id == request_id => Ok(()),
                Some(Answer {
                    request_id: Some(id),
                    ..
                }) => Err(DeliveryError::Retryable(format!(
                    "HTTP 200 with requestId {:?} instead of {request_id:?}{}",
                    truncate(id, MAX_QUOTED_CHARS),
                    receiver_says(&parsed)
                ))),
                Some(Answer {
                    request_id: None, ..
                }) => Err(DeliveryError::Retryable(format!(
                    "HTTP 200 without a requestId{}",
                    receiver_says(&parsed)
                ))),
                None => Err(DeliveryError::Retryable(format!(
                    "HTTP 200 with an answer that is not the contract's JSON{}",
                    receiver_says(&parsed)
                ))),
            };
        }
        if status == reqwest::StatusCode::PAYLOAD_TOO_LARGE {
            return Err(DeliveryError::Permanent(format!(
                "HTTP 413 (request too large){}",
                receiver_says(&parsed)
            )));
        }
        if status.is_redirection() {
            return Err(DeliveryError::Retryable(format!(
                "HTTP {status} (redirects are not followed), location {}{}",
                location.as_deref().unwrap_or("none"),
                receiver_says(&parsed)
            )));
        }
        Err(DeliveryError::Retryable(format!(
            "HTTP {status}{}",
            receiver_says(&parsed)
        )))
    }
}

#[async_trait::async_trait]
impl super::Destination for HttpEndpointDestination {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn describe(&self) -> String {
        // Without user info or query: either may hold a secret.
        let mut url = self.url.clone();
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url.set_query(None);
        url.to_string()
    }

    fn limits(&self) -> BatchLimits {
        BatchLimits {
            max_bytes: max_data_bytes(),
            max_records: MAX_RECORDS,
        }
    }

    fn retry_duration(&self) -> Option<Duration> {
        Some(self.retry_duration)
    }

    fn failure_type(&self) -> ErrorOutputType {
        ErrorOutputType::HttpEndpointFailed
    }

    async fn deliver(&self, batch: &Batch) -> Result<(), DeliveryError> {
        if batch.records.is_empty() {
            return Ok(());
        }
        let (data, too_large): (Vec<Bytes>, Vec<usize>) = {
            let mut data = Vec::with_capacity(batch.records.len());
            let mut too_large = Vec::new();
            for (i, record) in batch.records.iter().enumerate() {
                if record.data.len() > MAX_RECORD_BYTES {
                    too_large.push(i);
                } else {
                    data.push(record.data.clone());
                }
            }
            (data, too_large)
        };
        if data.is_empty() {
            return Err(DeliveryError::Permanent(format!(
                "{} records larger than {MAX_RECORD_BYTES} bytes, which an HTTP endpoint does \
                 not take",
                too_large.len()
            )));
        }
        if data.len() > MAX_RECORDS {
            return Err(DeliveryError::Permanent(format!(
                "{} records in one request, at most {MAX_RECORDS}",
                data.len()
            )));
        }
        let body_len = body_len(&batch.id, batch.formed_ms, &data);
        if body_len > MAX_BODY_BYTES {
            return Err(DeliveryError::Permanent(format!(
                "a request body of {body_len} bytes, at most {MAX_BODY_BYTES}"
            )));
        }

        let gzip = batch.compression == Compression::Gzip;
        let id = batch.id.clone();
        let formed_ms = batch.formed_ms;
        let body = tokio::task::spawn_blocking(move || {
            let level = gzip.then(crate::delivery::compression::gzip_level);
            encode_body(&id, formed_ms, &data, level, body_len as usize)
        })
        .await
        .map_err(|e| DeliveryError::Retryable(format!("building the request body: {e}")))?
        .map_err(|e| DeliveryError::Retryable(format!("building the request body: {e}")))?;

        self.post(&batch.id, gzip, body).await?;

        if too_large.is_empty() {
            Ok(())
        } else {
            Err(DeliveryError::Partial {
                message: format!(
                    "records larger than {MAX_RECORD_BYTES} bytes are not sent to an HTTP endpoint"
                ),
                failed: too_large,
            })
        }
    }
}

/// The receiver's answer, as far as the contract defines it.
#[derive(Deserialize)]
struct Answer {
    #[serde(rename = "requestId")]
    request_id: Option<String>,
    #[serde(rename = "errorMessage")]
    error_message: Option<String>,
}

/// Data bytes per batch such that its body stays within [`MAX_BODY_BYTES`].
fn max_data_bytes() -> u64 {
    (MAX_BODY_BYTES - BODY_OVERHEAD - MAX_RECORDS as u64 * RECORD_OVERHEAD) / 4 * 3
}

/// The exact length of the uncompressed body.
fn body_len(id: &str, formed_ms: u64, data: &[Bytes]) -> u64 {
    let head = br#"{"requestId":,"timestamp":,"records":[]}"#.len() as u64
        + json_string_len(id)
        + formed_ms.to_string().len() as u64;
    let records: u64 = data
        .iter()
        .map(|d| br#"{"data":""}"#.len() as u64 + 4 * (d.len() as u64).div_ceil(3))
        .sum();
    head + records + data.len().saturating_sub(1) as u64
}

fn json_string_len(s: &str) -> u64 {
    serde_json::to_string(s).map_or(0, |j| j.len() as u64)
}

/// Writes the body; gzip-compresses it in chunks when `gzip`.
fn encode_body(
    id: &str,
    formed_ms: u64,
    data: &[Bytes],
    gzip: Option<flate2::Compression>,
    body_len: usize,
) -> std::io::Result<Vec<u8>> {
    let mut encoder =
        gzip.map(|level| flate2::write::GzEncoder::new(Vec::with_capacity(body_len / 4), level));
    let mut buf = Vec::with_capacity(if encoder.is_some() {
        CHUNK_BYTES + 2 * MAX_RECORD_BYTES
    } else {
        body_len
    });
    buf.extend_from_slice(b"{\"requestId\":");
    serde_json::to_writer(&mut buf, id)?;
    write!(buf, ",\"timestamp\":{formed_ms},\"records\":[")?;
    let engine = &base64::engine::general_purpose::STANDARD;
    for (i, d) in data.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(b"{\"data\":\"");
        let start = buf.len();
        buf.resize(start + 4 * d.len().div_ceil(3), 0);
        engine
            .encode_slice(d, &mut buf[start..])
            .map_err(std::io::Error::other)?;
        buf.extend_from_slice(b"\"}");
        if let Some(encoder) = encoder.as_mut() {
            if buf.len() >= CHUNK_BYTES {
                encoder.write_all(&buf)?;
                buf.clear();
            }
        }
    }
    buf.extend_from_slice(b"]}");
    match encoder {
        Some(mut encoder) => {
            encoder.write_all(&buf)?;
            encoder.finish()
        }
        None => Ok(buf),
    }
}

/// Reads at most [`MAX_ANSWER_BYTES`] of an answer.
async fn read_answer(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut answer = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_ANSWER_BYTES - answer.len();
        answer.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if answer.len() >= MAX_ANSWER_BYTES {
            break;
        }
    }
    Ok(answer)
}

fn classify_send_error(e: &reqwest::Error, deadline: Duration) -> DeliveryError {
    if e.is_connect() {
        DeliveryError::Unreachable(error_chain(e))
    } else if e.is_timeout() {
        DeliveryError::Retryable(format!("no answer within {} s", deadline.as_secs()))
    } else {
        DeliveryError::Retryable(error_chain(e))
    }
}

/// An error with its sources (reqwest's own message rarely says what happened).
pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
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

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

fn build_error(message: String) -> BuildError {
    BuildError {
        kind: KIND,
        message,
    }
}

/// Reads a secret from its file (without the trailing newline) or environment variable.
pub(super) fn read_secret(secret: &Secret) -> Result<String, String> {
    let value = match secret {
        Secret::File(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", describe_secret(secret)))?
            .trim_end_matches(['\n', '\r'])
            .to_string(),
        Secret::Env(var) => {
            std::env::var(var).map_err(|e| format!("reading {}: {e}", describe_secret(secret)))?
        }
    };
    if value.is_empty() {
        return Err(format!("{} is empty", describe_secret(secret)));
    }
    Ok(value)
}

/// Where a secret is kept, for messages.
pub(super) fn describe_secret(secret: &Secret) -> String {
    match secret {
        Secret::File(path) => format!("file `{}`", path.display()),
        Secret::Env(var) => format!("environment variable `{var}`"),
    }
}

#[cfg(test)]
mod tests;
