//! Video playback over HTTP: camera status, HLS (live and on demand), MP4 clips, still images
//! and fragment lists, on the API's listener and behind the API's credentials.
//!
//! Owns the `/video/...` routes, their query parameters (timestamps are RFC 3339 or epoch
//! milliseconds) and their limits (Kinesis Video's: 1,000 fragments on demand, clips of at most
//! 200 fragments or 100 MB, image windows of at most 300 s). Stored fragments are served as
//! stored; only clips are rewritten (timestamps from zero) and images decoded.

//! The router's state is [`VideoState`]; every handler takes the [`Playback`] extractor, which
//! checks the request's signature (as the whole API does) and that video runs, so no handler
//! repeats that preamble.

mod images;
mod media;
mod playlists;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::request::Parts;
use http::StatusCode;

use super::auth::{Auth, HasAuth, Signed};
use crate::video::log::FragmentLog;
use crate::video::VideoService;

/// What the video routes share.
pub struct VideoState {
    auth: Arc<Auth>,
    /// Cameras and their fragment log, when video runs.
    video: Option<VideoService>,
    /// Image requests decoded at once (decoding is the heaviest thing video does here).
    image_slots: tokio::sync::Semaphore,
}

impl VideoState {
    pub fn new(auth: Arc<Auth>, video: Option<VideoService>) -> VideoState {
        VideoState {
            auth,
            video,
            image_slots: tokio::sync::Semaphore::new(1),
        }
    }
}

impl HasAuth for VideoState {
    fn auth(&self) -> &Auth {
        &self.auth
    }
}

/// The `/video` routes.
pub fn routes(state: Arc<VideoState>) -> Router {
    Router::new()
        .route("/video/cameras", get(cameras))
        .route("/video/{camera}/live.m3u8", get(playlists::live))
        .route("/video/{camera}/vod.m3u8", get(playlists::vod))
        .route("/video/{camera}/init/{file}", get(media::init_segment))
        .route("/video/{camera}/fragments/{file}", get(media::fragment))
        .route("/video/{camera}/fragments", get(media::list_fragments))
        .route("/video/{camera}/clip.mp4", get(media::clip_mp4))
        .route("/video/{camera}/image.jpg", get(images::image_jpeg))
        .route("/video/{camera}/image.png", get(images::image_png))
        .route("/video/{camera}/images", get(images::images))
        .with_state(state)
}

/// An error answered as Kinesis Video answers: a JSON body with `__type` and `message`.
pub(super) struct VideoError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl VideoError {
    pub(super) fn not_found(message: impl Into<String>) -> VideoError {
        VideoError {
            status: StatusCode::NOT_FOUND,
            kind: "ResourceNotFoundException",
            message: message.into(),
        }
    }
    pub(super) fn invalid(message: impl Into<String>) -> VideoError {
        VideoError {
            status: StatusCode::BAD_REQUEST,
            kind: "InvalidArgumentException",
            message: message.into(),
        }
    }
    pub(super) fn limit(message: impl Into<String>) -> VideoError {
        VideoError {
            status: StatusCode::BAD_REQUEST,
            kind: "ClientLimitExceededException",
            message: message.into(),
        }
    }
    pub(super) fn internal(message: impl std::fmt::Display) -> VideoError {
        tracing::error!(error = %message, "video request failed");
        VideoError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "InternalFailure",
            message: message.to_string(),
        }
    }
}

impl IntoResponse for VideoError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "__type": self.kind, "message": self.message })),
        )
            .into_response()
    }
}

pub(super) type VideoResult = Result<Response, VideoError>;

/// The video service for a request whose signature was checked (when credentials are set),
/// and the credentials it was signed with. Refused with the API's error when the signature
/// is not valid, and with ResourceNotFoundException when video does not run.
pub(super) struct Playback {
    pub video: VideoService,
    pub access: Option<Access>,
}

impl FromRequestParts<Arc<VideoState>> for Playback {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<VideoState>,
    ) -> Result<Playback, Response> {
        let signed = Signed::from_request_parts(parts, state).await?;
        let access = signed.key.map(|key| Access {
            key,
            host: signed.host,
        });
        let video = state.video.clone().ok_or_else(|| {
            VideoError::not_found("video is not running on this gateway (no cameras configured)")
                .into_response()
        })?;
        Ok(Playback { video, access })
    }
}

/// The credentials a request was signed with: playlists sign the URIs they list with them, so
/// that a player given one presigned playlist URL can fetch its segments.
pub(super) struct Access {
    key: String,
    host: String,
}

pub(super) fn camera_log(video: &VideoService, camera: &str) -> Result<FragmentLog, VideoError> {
    // A stream created through the Kinesis Video API (fed by PutMedia) plays as a camera.
    let created = video.log().stream_record(camera).is_some();
    if video.camera(camera).is_none() && !created {
        return Err(VideoError::not_found(format!(
            "camera `{camera}` is not configured on this gateway"
        )));
    }
    Ok(video.log().clone())
}

/// Runs a fragment-log read off the async runtime.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, VideoError> + Send + 'static,
) -> Result<T, VideoError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(VideoError::internal)?
}

async fn cameras(Playback { video, .. }: Playback) -> VideoResult {
    let cameras = blocking(move || Ok(video.status())).await?;
    Ok(Json(serde_json::json!({ "cameras": cameras })).into_response())
}

#[derive(serde::Deserialize, Default)]
pub(super) struct Range {
    pub start: Option<String>,
    pub end: Option<String>,
}

/// RFC 3339 or epoch milliseconds.
pub(super) fn parse_time(name: &str, value: &str) -> Result<i64, VideoError> {
    if let Ok(ms) = value.parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            VideoError::invalid(format!(
                "{name} `{value}` is not a timestamp: RFC 3339 (2026-11-25T10:00:00Z) or epoch milliseconds"
            ))
        })
}

impl Range {
    pub(super) fn required(&self, max_ms: Option<i64>) -> Result<(i64, i64), VideoError> {
        let start = self
            .start
            .as_deref()
            .ok_or_else(|| VideoError::invalid("start is missing"))?;
        let end = self
            .end
            .as_deref()
            .ok_or_else(|| VideoError::invalid("end is missing"))?;
        let (start, end) = (parse_time("start", start)?, parse_time("end", end)?);
        if end <= start {
            return Err(VideoError::invalid("end must be after start"));
        }
        if let Some(max) = max_ms {
            if end - start > max {
                return Err(VideoError::invalid(format!(
                    "the window is {} s; at most {} s",
                    (end - start) / 1000,
                    max / 1000
                )));
            }
        }
        Ok((start, end))
    }
}
