//! Kinesis Video Streams' own API (issue 17): the `kinesisvideo` control plane (`control`),
//! `kinesis-video-archived-media` (`archive`) and `kinesis-video-media` (`media`: PutMedia
//! and GetMedia), REST-JSON on the API's listener as AWS serves them (`POST /createStream`,
//! `POST /getHLSStreamingSessionURL`, `POST /putMedia`, ...), signed as the rest of the API
//! (SigV4, service `kinesisvideo`), on top of the fragment log the cameras record into.
//!
//! A KVS stream is a name in the fragment log: a camera of the device registry (read-only
//! through this API, fed by its pipeline) or a stream created through `CreateStream` (fed by
//! PutMedia). [`KvsState::stream`] is the one place that resolves a request's `StreamName` or
//! `StreamARN` to that name; every operation goes through it. Errors are [`KvsError`]: the
//! HTTP status, `x-amzn-ErrorType` and `{"Message": ...}` body AWS answers with.

mod archive;
mod control;
mod error;
mod media;

use std::sync::Arc;

use axum::extract::Request;
use axum::response::Response;
use axum::Router;
use bytes::Bytes;

use super::auth::{Auth, HasAuth};
use super::body::read_body;
use super::protocol::Wire;
use crate::video::log::{StreamRecord, StreamStatus};
use crate::video::VideoService;

pub use error::{KvsError, KvsErrorKind};

/// Largest JSON request body of an operation (PutMedia's body is a stream, read apart).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Request bodies the KVS routes hold in memory at once, in KiB.
const BODY_BUDGET_KIB: usize = 1024;

/// What the KVS routes share.
pub struct KvsState {
    pub(crate) auth: Arc<Auth>,
    /// Cameras, streams and their fragment log, when video runs.
    pub(crate) video: Option<VideoService>,
    /// The region and account in ARNs.
    pub(crate) region: String,
    pub(crate) account_id: String,
    body_budget: tokio::sync::Semaphore,
    /// The API's listener speaks TLS: the scheme of the URLs the gateway hands out
    /// (GetDataEndpoint).
    tls: std::sync::atomic::AtomicBool,
    /// PutMedia and GetMedia sessions (`media`).
    pub(crate) media: media::MediaState,
}

impl KvsState {
    pub fn new(
        auth: Arc<Auth>,
        video: Option<VideoService>,
        region: String,
        account_id: String,
    ) -> KvsState {
        KvsState {
            auth,
            video,
            region,
            account_id,
            body_budget: tokio::sync::Semaphore::new(BODY_BUDGET_KIB),
            tls: std::sync::atomic::AtomicBool::new(false),
            media: media::MediaState::default(),
        }
    }

    /// Says whether the API's listener speaks TLS (set once, as the API starts).
    pub fn set_tls(&self, tls: bool) {
        self.tls.store(tls, std::sync::atomic::Ordering::Relaxed);
    }

    /// The scheme of the gateway's own URLs.
    pub(crate) fn scheme(&self) -> &'static str {
        if self.tls.load(std::sync::atomic::Ordering::Relaxed) {
            "https"
        } else {
            "http"
        }
    }

    /// The video service, or the error an operation answers when video does not run.
    pub(crate) fn video(&self) -> Result<&VideoService, KvsError> {
        self.video.as_ref().ok_or_else(|| {
            KvsError::new(
                KvsErrorKind::ResourceNotFound,
                "video is not running on this gateway: no stream exists",
            )
        })
    }

    /// The fragment-log name of the stream a request names by `StreamName` or `StreamARN`
    /// (exactly one of them, as AWS requires): a camera, or an `ACTIVE` stream created through
    /// the API (a stream being deleted is not found, as AWS answers).
    pub(crate) fn stream(&self, name: Option<&str>, arn: Option<&str>) -> Result<String, KvsError> {
        match self.stream_info(name, arn)? {
            KvsStream::Camera { name, .. } => Ok(name),
            KvsStream::Created(record) if record.status == StreamStatus::Active => Ok(record.name),
            KvsStream::Created(_) => Err(not_found()),
        }
    }

    /// The stream a request names by `StreamName` or `StreamARN`, whatever its status: a
    /// camera of the device files (which wins over a created stream of the same name) or a
    /// stream created through the API (whose ARN must be its own, creation time included).
    /// Reads no file: the registry is kept in memory by the fragment log.
    pub(crate) fn stream_info(
        &self,
        name: Option<&str>,
        arn: Option<&str>,
    ) -> Result<KvsStream, KvsError> {
        let name = match (name, arn) {
            (Some(name), None) => name.to_string(),
            (None, Some(arn)) => stream_name_of_arn(arn).ok_or_else(|| {
                KvsError::new(
                    KvsErrorKind::InvalidArgument,
                    format!("StreamARN `{arn}` is not a Kinesis Video stream ARN"),
                )
            })?,
            _ => {
                return Err(KvsError::new(
                    KvsErrorKind::InvalidArgument,
                    "exactly one of StreamName and StreamARN must be given",
                ))
            }
        };
        let video = self.video()?;
        if let Some(camera) = video.camera(&name) {
            return Ok(KvsStream::Camera {
                retention_hours: camera.policy.max_age_ms / 3_600_000,
                name,
            });
        }
        match video.log().stream_record(&name) {
            Some(record)
                if arn.is_none_or(|arn| arn == self.stream_arn(&name, record.created_ms)) =>
            {
                Ok(KvsStream::Created(record))
            }
            _ => Err(not_found()),
        }
    }

    /// The ARN of stream `name`.
    pub(crate) fn stream_arn(&self, name: &str, created_ms: i64) -> String {
        format!(
            "arn:aws:kinesisvideo:{}:{}:stream/{name}/{created_ms}",
            self.region, self.account_id
        )
    }
}

/// A stream as the KVS API sees it.
#[derive(Debug, Clone)]
pub(crate) enum KvsStream {
    /// A camera of the device files: read-only through the API, fed by its pipeline.
    Camera { name: String, retention_hours: u64 },
    /// A stream created through `CreateStream`, fed by PutMedia.
    Created(StreamRecord),
}

fn not_found() -> KvsError {
    KvsError::new(
        KvsErrorKind::ResourceNotFound,
        "The requested stream is not found or not active.",
    )
}

/// The stream name inside `arn:aws:kinesisvideo:REGION:ACCOUNT:stream/NAME/CREATION_MS`.
fn stream_name_of_arn(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" || parts[2] != "kinesisvideo" {
        return None;
    }
    let resource = parts[5].strip_prefix("stream/")?;
    let (name, created) = resource.rsplit_once('/')?;
    (!name.is_empty() && created.chars().all(|c| c.is_ascii_digit())).then(|| name.to_string())
}

impl HasAuth for KvsState {
    fn auth(&self) -> &Auth {
        &self.auth
    }
}

/// The KVS routes: the three services' operations.
pub fn routes(state: Arc<KvsState>) -> Router {
    Router::new()
        .merge(control::routes(state.clone()))
        .merge(archive::routes(state.clone()))
        .merge(media::routes(state))
}

/// The body of an operation's request whose signature is valid (checked over the body), or
/// the answer that refuses it: a request that cannot be authentic is refused from its head,
/// before its body is read.
pub(crate) async fn signed_body(state: &KvsState, request: Request) -> Result<Bytes, Response> {
    use axum::response::IntoResponse;
    let (parts, body) = request.into_parts();
    state
        .auth
        .precheck(&parts)
        .map_err(|error| Wire::Json.error(&error))?;
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let (bytes, _room) = read_body(body, declared, MAX_BODY_BYTES, &state.body_budget)
        .await
        .map_err(|error| {
            KvsError::new(KvsErrorKind::InvalidArgument, error.to_string()).into_response()
        })?;
    state
        .auth
        .authorize(&parts, &bytes)
        .map_err(|error| Wire::Json.error(&error))?;
    Ok(bytes)
}

/// A JSON request body as `T`, or InvalidArgumentException naming what is wrong with it.
pub(crate) fn decode<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, KvsError> {
    let bytes = if bytes.is_empty() { &b"{}"[..] } else { bytes };
    serde_json::from_slice(bytes).map_err(|e| {
        KvsError::new(
            KvsErrorKind::InvalidArgument,
            format!("the request body is not valid: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_come_out_of_their_arns() {
        assert_eq!(
            stream_name_of_arn(
                "arn:aws:kinesisvideo:us-east-1:000000000000:stream/door/1700000000000"
            )
            .as_deref(),
            Some("door")
        );
        for bad in [
            "arn:aws:kinesis:us-east-1:000000000000:stream/door/1",
            "arn:aws:kinesisvideo:us-east-1:000000000000:stream/door",
            "arn:aws:kinesisvideo:us-east-1:000000000000:stream//1",
            "door",
        ] {
            assert_eq!(stream_name_of_arn(bad), None, "{bad}");
        }
    }
}
