//! Video playback over HTTP: camera status, HLS (live and on demand), MP4 clips, still images
//! and fragment lists, on the API's listener and behind the API's credentials.
//!
//! Owns the `/video/...` routes, their query parameters (timestamps are RFC 3339 or epoch
//! milliseconds) and their limits (Kinesis Video's: 1,000 fragments on demand, clips of at most
//! 200 fragments or 100 MB, image windows of at most 300 s). Stored fragments are served as
//! stored; only clips are rewritten (timestamps from zero) and images decoded.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::{header, HeaderValue, StatusCode};

use super::ApiState;
use crate::video::image::{ImageFormat, ImageRequest};
use crate::video::log::{FragmentLog, FragmentMeta};
use crate::video::{clip, hls, VideoService};

/// Fragments an on-demand playlist lists at most.
const MAX_VOD_FRAGMENTS: usize = 1000;
/// Clip limits (as GetClip's).
const MAX_CLIP_FRAGMENTS: usize = 200;
const MAX_CLIP_BYTES: u64 = 100 * 1024 * 1024;
/// Image limits (as GetImages's).
const MAX_IMAGE_WINDOW_MS: i64 = 300_000;
const MAX_IMAGES: usize = 100;
const MIN_IMAGE_INTERVAL_MS: i64 = 200;
/// Fragments a fragment list returns at most.
const MAX_LIST_FRAGMENTS: usize = 1000;

/// The `/video` routes.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/video/cameras", get(cameras))
        .route("/video/{camera}/live.m3u8", get(live_playlist))
        .route("/video/{camera}/vod.m3u8", get(vod_playlist))
        .route("/video/{camera}/init/{file}", get(init_segment))
        .route("/video/{camera}/fragments/{file}", get(fragment))
        .route("/video/{camera}/fragments", get(list_fragments))
        .route("/video/{camera}/clip.mp4", get(clip_mp4))
        .route("/video/{camera}/image.jpg", get(image_jpeg))
        .route("/video/{camera}/image.png", get(image_png))
        .route("/video/{camera}/images", get(images))
}

/// An error answered as Kinesis Video answers: a JSON body with `__type` and `message`.
struct VideoError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl VideoError {
    fn not_found(message: impl Into<String>) -> VideoError {
        VideoError {
            status: StatusCode::NOT_FOUND,
            kind: "ResourceNotFoundException",
            message: message.into(),
        }
    }
    fn invalid(message: impl Into<String>) -> VideoError {
        VideoError {
            status: StatusCode::BAD_REQUEST,
            kind: "InvalidArgumentException",
            message: message.into(),
        }
    }
    fn limit(message: impl Into<String>) -> VideoError {
        VideoError {
            status: StatusCode::BAD_REQUEST,
            kind: "ClientLimitExceededException",
            message: message.into(),
        }
    }
    fn internal(message: impl std::fmt::Display) -> VideoError {
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

type VideoResult = Result<Response, VideoError>;

/// The video service, after the request's signature is checked (when credentials are set).
fn video(
    state: &ApiState,
    parts: &http::request::Parts,
) -> Result<(VideoService, Option<Access>), Box<Response>> {
    let key = match super::authorize(state, parts, &[]) {
        Ok(key) => key,
        Err(error) => {
            return Err(Box::new(super::with_request_id(
                super::protocol::Wire::Json.error(&error),
                &super::request_id(),
            )))
        }
    };
    let access = key.map(|key| Access {
        key,
        host: parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
            .to_string(),
    });
    let video = state.video.clone().ok_or_else(|| {
        Box::new(
            VideoError::not_found("video is not running on this gateway (no cameras configured)")
                .into_response(),
        )
    })?;
    Ok((video, access))
}

/// The credentials a request was signed with: playlists sign the URIs they list with them, so
/// that a player given one presigned playlist URL can fetch its segments.
struct Access {
    key: String,
    host: String,
}

/// How long the URIs in a playlist stay valid.
const LIVE_URI_EXPIRES_S: u64 = 3600;
const VOD_URI_EXPIRES_S: u64 = 12 * 3600;

/// `relative` (under `/video/<camera>/`) with a presigned query when the playlist request was
/// signed.
fn sign_uri(
    now: std::time::SystemTime,
    state: &ApiState,
    access: Option<&Access>,
    camera: &str,
    relative: String,
    expires_s: u64,
) -> String {
    let (Some(access), Some(verifier)) = (access, state.verifier.as_ref()) else {
        return relative;
    };
    let path = format!("/video/{camera}/{relative}");
    match verifier.presign_get(
        &access.key,
        &state.region,
        "kinesisvideo",
        &access.host,
        &path,
        expires_s,
        now,
    ) {
        Some(query) => format!("{relative}?{query}"),
        None => relative,
    }
}

fn camera_log(video: &VideoService, camera: &str) -> Result<FragmentLog, VideoError> {
    if video.camera(camera).is_none() {
        return Err(VideoError::not_found(format!(
            "camera `{camera}` is not configured on this gateway"
        )));
    }
    Ok(video.log().clone())
}

/// Runs a fragment-log read off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, VideoError> + Send + 'static,
) -> Result<T, VideoError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(VideoError::internal)?
}

macro_rules! guard {
    ($state:expr, $request:expr) => {
        match video(&$state, &$request.into_parts().0) {
            Ok(video) => video,
            Err(response) => return *response,
        }
    };
}

fn respond(result: VideoResult) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn cameras(State(state): State<Arc<ApiState>>, request: Request) -> Response {
    let (video, _) = guard!(state, request);
    respond(
        blocking(move || Ok(video.status()))
            .await
            .map(|cameras| Json(serde_json::json!({ "cameras": cameras })).into_response()),
    )
}

#[derive(serde::Deserialize, Default)]
struct Range {
    start: Option<String>,
    end: Option<String>,
}

/// RFC 3339 or epoch milliseconds.
fn parse_time(name: &str, value: &str) -> Result<i64, VideoError> {
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
    fn required(&self, max_ms: Option<i64>) -> Result<(i64, i64), VideoError> {
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

/// A live (`ended = false`) or on-demand playlist of `fragments` (not empty), its URIs
/// presigned when the request was signed.
fn playlist(
    state: &ApiState,
    access: Option<&Access>,
    camera: &str,
    fragments: &[FragmentMeta],
    ended: bool,
) -> Response {
    let expires_s = if ended {
        VOD_URI_EXPIRES_S
    } else {
        LIVE_URI_EXPIRES_S
    };
    // One signing time for the whole playlist, so each URI is signed alike.
    let now = std::time::SystemTime::now();
    let first = &fragments[0];
    let playlist = hls::Playlist {
        media_sequence: first.number,
        discontinuity_sequence: first.discontinuity_sequence,
        segments: segments(fragments, |uri| {
            sign_uri(now, state, access, camera, uri, expires_s)
        }),
        ended,
        playlist_type_vod: ended,
    };
    (
        [
            (header::CONTENT_TYPE, "application/vnd.apple.mpegurl"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        hls::render(&playlist),
    )
        .into_response()
}

/// Playlist segments for consecutive fragments: a new recording run or init segment starts a
/// discontinuity.
fn segments(fragments: &[FragmentMeta], sign: impl Fn(String) -> String) -> Vec<hls::Segment> {
    fragments
        .iter()
        .enumerate()
        .map(|(i, f)| {
            // Each flagged fragment counts in the discontinuity sequence, so only those are
            // tagged (a camera flags every new recording run and every new init segment).
            let discontinuity = i > 0 && f.discontinuity;
            hls::Segment {
                uri: sign(format!("fragments/{}.m4s", f.number)),
                duration_ms: f.duration_ms,
                program_date_time_ms: f.producer_ms,
                map_uri: sign(format!("init/{}.mp4", f.init_id)),
                discontinuity,
            }
        })
        .collect()
}

async fn live_playlist(
    State(state): State<Arc<ApiState>>,
    Path(camera): Path<String>,
    request: Request,
) -> Response {
    let (video, access) = guard!(state, request);
    let count = video.settings().live_segments as usize;
    respond(
        async {
            let log = camera_log(&video, &camera)?;
            let name = camera.clone();
            let fragments =
                blocking(move || log.latest(&name, count).map_err(VideoError::internal)).await?;
            if fragments.is_empty() {
                return Err(VideoError::not_found(
                    "no fragments yet: the camera has not delivered video",
                ));
            }
            Ok(playlist(
                &state,
                access.as_ref(),
                &camera,
                &fragments,
                false,
            ))
        }
        .await,
    )
}

async fn vod_playlist(
    State(state): State<Arc<ApiState>>,
    Path(camera): Path<String>,
    Query(range): Query<Range>,
    request: Request,
) -> Response {
    let (video, access) = guard!(state, request);
    respond(
        async {
            let (start, end) = range.required(None)?;
            let log = camera_log(&video, &camera)?;
            let name = camera.clone();
            let fragments = blocking(move || {
                log.fragments(&name, start, end, MAX_VOD_FRAGMENTS)
                    .map_err(VideoError::internal)
            })
            .await?;
            if fragments.is_empty() {
                return Err(VideoError::not_found("no fragments in this time range"));
            }
            Ok(playlist(&state, access.as_ref(), &camera, &fragments, true))
        }
        .await,
    )
}

/// `<number>.<ext>` → number.
fn numbered(file: &str, ext: &str) -> Result<u64, VideoError> {
    file.strip_suffix(ext)
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| VideoError::not_found(format!("`{file}`: expected <number>{ext}")))
}

async fn init_segment(
    State(state): State<Arc<ApiState>>,
    Path((camera, file)): Path<(String, String)>,
    headers: http::HeaderMap,
    request: Request,
) -> Response {
    let (video, _) = guard!(state, request);
    respond(
        async {
            let id = numbered(&file, ".mp4")?;
            let log = camera_log(&video, &camera)?;
            let data =
                blocking(move || log.init_segment(&camera, id).map_err(VideoError::internal))
                    .await?;
            let data =
                data.ok_or_else(|| VideoError::not_found(format!("no init segment {id}")))?;
            let etag = format!("\"i{id}-{}\"", data.len());
            Ok(media_response(&headers, "video/mp4", data, &etag))
        }
        .await,
    )
}

async fn fragment(
    State(state): State<Arc<ApiState>>,
    Path((camera, file)): Path<(String, String)>,
    headers: http::HeaderMap,
    request: Request,
) -> Response {
    let (video, _) = guard!(state, request);
    respond(
        async {
            let number = numbered(&file, ".m4s")?;
            let log = camera_log(&video, &camera)?;
            let data =
                blocking(move || log.read(&camera, number).map_err(VideoError::internal)).await?;
            let data = data.ok_or_else(|| {
                VideoError::not_found(format!(
                    "fragment {number} is not kept (deleted by retention, or not yet recorded)"
                ))
            })?;
            let etag = format!("\"f{number}-{}\"", data.len());
            Ok(media_response(&headers, "video/iso.segment", data, &etag))
        }
        .await,
    )
}

/// Stored media, whole or the byte range asked for (`byte_ranges`).
fn media_response(
    request: &http::HeaderMap,
    content_type: &'static str,
    data: Vec<u8>,
    etag: &str,
) -> Response {
    let mut response = super::byte_ranges::respond(request, data, Some(etag));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // A stored fragment never changes.
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=86400, immutable"),
    );
    response
}

#[derive(serde::Serialize)]
struct FragmentList {
    camera: String,
    fragments: Vec<FragmentMeta>,
    gaps: Vec<crate::video::log::Gap>,
    truncated: bool,
}

async fn list_fragments(
    State(state): State<Arc<ApiState>>,
    Path(camera): Path<String>,
    Query(range): Query<Range>,
    request: Request,
) -> Response {
    let (video, _) = guard!(state, request);
    respond(
        async {
            // Without a range: the newest fragments (a cheap read, however much is kept).
            let range = match (range.start.as_deref(), range.end.as_deref()) {
                (None, None) => None,
                (start, end) => {
                    let start = start.map_or(Ok(0), |s| parse_time("start", s))?;
                    let end = end.map_or(Ok(i64::MAX), |s| parse_time("end", s))?;
                    if end <= start {
                        return Err(VideoError::invalid("end must be after start"));
                    }
                    Some((start, end))
                }
            };
            let log = camera_log(&video, &camera)?;
            let list = blocking(move || {
                let mut fragments = match range {
                    Some((start, end)) => {
                        log.fragments(&camera, start, end, MAX_LIST_FRAGMENTS + 1)
                    }
                    None => log.latest(&camera, MAX_LIST_FRAGMENTS + 1),
                }
                .map_err(VideoError::internal)?;
                let truncated = fragments.len() > MAX_LIST_FRAGMENTS;
                if range.is_none() && truncated {
                    fragments.remove(0);
                }
                fragments.truncate(MAX_LIST_FRAGMENTS);
                let (start, end) =
                    range.unwrap_or((fragments.first().map_or(0, |f| f.producer_ms), i64::MAX));
                let gaps = log
                    .gaps(&camera, start, end)
                    .map_err(VideoError::internal)?;
                Ok(FragmentList {
                    camera,
                    fragments,
                    gaps,
                    truncated,
                })
            })
            .await?;
            Ok(Json(list).into_response())
        }
        .await,
    )
}

async fn clip_mp4(
    State(state): State<Arc<ApiState>>,
    Path(camera): Path<String>,
    Query(range): Query<Range>,
    headers: http::HeaderMap,
    request: Request,
) -> Response {
    let (video, _) = guard!(state, request);
    respond(
        async {
            let (start, end) = range.required(None)?;
            let log = camera_log(&video, &camera)?;
            let clip = blocking(move || {
                let fragments = log
                    .fragments(&camera, start, end, MAX_CLIP_FRAGMENTS + 1)
                    .map_err(VideoError::internal)?;
                if fragments.len() > MAX_CLIP_FRAGMENTS {
                    return Err(VideoError::limit(format!(
                        "the range holds more than {MAX_CLIP_FRAGMENTS} fragments: ask for a shorter clip"
                    )));
                }
                let Some(first) = fragments.first() else {
                    return Err(VideoError::not_found("no fragments in this time range"));
                };
                // A clip is one recording run with one init segment: it ends where the camera
                // reconnected or its stream changed.
                let init_id = first.init_id;
                let same: Vec<&FragmentMeta> = fragments
                    .iter()
                    .enumerate()
                    .take_while(|(i, f)| f.init_id == init_id && (*i == 0 || !f.discontinuity))
                    .map(|(_, f)| f)
                    .collect();
                let bytes: u64 = same.iter().map(|f| f.size).sum();
                if bytes > MAX_CLIP_BYTES {
                    return Err(VideoError::limit(format!(
                        "the clip would be {} MB; at most {} MB: ask for a shorter clip",
                        bytes / 1_000_000,
                        MAX_CLIP_BYTES / 1024 / 1024
                    )));
                }
                let init = log
                    .init_segment(&camera, init_id)
                    .map_err(VideoError::internal)?
                    .ok_or_else(|| VideoError::internal(format!("init segment {init_id} of {camera} is missing")))?;
                let mut data = Vec::with_capacity(same.len());
                let mut last = first.number;
                for f in same {
                    match log.read(&camera, f.number).map_err(VideoError::internal)? {
                        Some(bytes) => data.push(bytes),
                        // Deleted by retention while we read: the clip ends there.
                        None => break,
                    }
                    last = f.number;
                }
                let clip = clip::build_clip(&init, &data).map_err(VideoError::internal)?;
                // The same fragments make the same bytes: a player's later range requests
                // (If-Range) get pieces of this very file.
                let etag = format!("\"c{init_id}-{}-{last}-{}\"", first.number, clip.data.len());
                Ok((clip, etag))
            })
            .await?;
            let (clip, etag) = clip;
            let mut response = media_response(&headers, "video/mp4", clip.data, &etag);
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache"),
            );
            if let Ok(value) = HeaderValue::from_str(&clip.duration_ms.to_string()) {
                response.headers_mut().insert("x-kinedge-clip-duration-ms", value);
            }
            Ok(response)
        }
        .await,
    )
}

#[derive(serde::Deserialize)]
struct ImageQuery {
    at: Option<String>,
    width: Option<u32>,
}

async fn image_jpeg(
    state: State<Arc<ApiState>>,
    camera: Path<String>,
    query: Query<ImageQuery>,
    request: Request,
) -> Response {
    one_image(state, camera, query, request, ImageFormat::Jpeg).await
}

async fn image_png(
    state: State<Arc<ApiState>>,
    camera: Path<String>,
    query: Query<ImageQuery>,
    request: Request,
) -> Response {
    one_image(state, camera, query, request, ImageFormat::Png).await
}

fn check_width(width: Option<u32>) -> Result<Option<u32>, VideoError> {
    match width {
        Some(w) if !(16..=3840).contains(&w) => Err(VideoError::invalid(format!(
            "width {w} is out of range: 16..=3840"
        ))),
        other => Ok(other),
    }
}

async fn one_image(
    State(state): State<Arc<ApiState>>,
    Path(camera): Path<String>,
    Query(query): Query<ImageQuery>,
    request: Request,
    format: ImageFormat,
) -> Response {
    let (video, _) = guard!(state, request);
    respond(
        async {
            let width = check_width(query.width)?;
            let log = camera_log(&video, &camera)?;
            let at = match query.at.as_deref() {
                Some(at) => parse_time("at", at)?,
                // Now: the newest frame there is, the last of the newest stored fragment (the
                // fragment being recorded is not stored yet).
                None => {
                    let (log, name) = (log.clone(), camera.clone());
                    let newest =
                        blocking(move || log.latest(&name, 1).map_err(VideoError::internal))
                            .await?;
                    let newest = newest.first().ok_or_else(|| {
                        VideoError::not_found(
                            "no fragments yet: the camera has not delivered video",
                        )
                    })?;
                    newest.producer_ms + i64::from(newest.duration_ms.max(1)) - 1
                }
            };
            let request = ImageRequest {
                at: vec![at],
                width,
                format,
            };
            let mut images = extract(&state, log, camera, request).await?;
            match images.pop() {
                Some(image) => match image.result {
                    Ok(data) => Ok((
                        [
                            (header::CONTENT_TYPE, format.content_type().to_owned()),
                            // The time asked for (or, without `at`, the newest one there is).
                            (
                                http::HeaderName::from_static("x-kinedge-image-at-ms"),
                                image.at.to_string(),
                            ),
                        ],
                        data,
                    )
                        .into_response()),
                    Err(message) => Err(VideoError::not_found(message)),
                },
                None => Err(VideoError::not_found("no fragment holds this time")),
            }
        }
        .await,
    )
}

#[derive(serde::Deserialize)]
struct ImagesQuery {
    start: Option<String>,
    end: Option<String>,
    interval_ms: Option<i64>,
    format: Option<String>,
    width: Option<u32>,
}

async fn images(
    State(state): State<Arc<ApiState>>,
    Path(camera): Path<String>,
    Query(query): Query<ImagesQuery>,
    request: Request,
) -> Response {
    let (video, _) = guard!(state, request);
    respond(
        async {
            let range = Range {
                start: query.start.clone(),
                end: query.end.clone(),
            };
            let (start, end) = range.required(Some(MAX_IMAGE_WINDOW_MS))?;
            let interval = query.interval_ms.unwrap_or(1000);
            if interval < MIN_IMAGE_INTERVAL_MS {
                return Err(VideoError::invalid(format!(
                    "interval_ms {interval} is too small: at least {MIN_IMAGE_INTERVAL_MS}"
                )));
            }
            let format = match query.format.as_deref() {
                None | Some("jpeg") | Some("jpg") => ImageFormat::Jpeg,
                Some("png") => ImageFormat::Png,
                Some(other) => {
                    return Err(VideoError::invalid(format!(
                        "format `{other}`: jpeg or png"
                    )))
                }
            };
            let width = check_width(query.width)?;
            let at: Vec<i64> = (0..)
                .map(|i| start + i * interval)
                .take_while(|t| *t < end)
                .take(MAX_IMAGES)
                .collect();
            let log = camera_log(&video, &camera)?;
            let images = extract(&state, log, camera, ImageRequest { at, width, format }).await?;
            use base64::Engine;
            let list: Vec<serde_json::Value> = images
                .into_iter()
                .map(|image| match image.result {
                    Ok(data) => serde_json::json!({
                        "timestamp_ms": image.at,
                        "content": base64::engine::general_purpose::STANDARD.encode(data),
                    }),
                    Err(error) => serde_json::json!({ "timestamp_ms": image.at, "error": error }),
                })
                .collect();
            Ok(
                Json(serde_json::json!({ "format": format.name(), "images": list }))
                    .into_response(),
            )
        }
        .await,
    )
}

/// Decodes images, one request at a time per gateway (decoding is the heaviest thing video
/// does here).
async fn extract(
    state: &ApiState,
    log: FragmentLog,
    camera: String,
    request: ImageRequest,
) -> Result<Vec<crate::video::image::Image>, VideoError> {
    let _slot = state
        .image_slots
        .acquire()
        .await
        .map_err(|_| VideoError::internal("the gateway is stopping"))?;
    blocking(move || {
        crate::video::image::extract(&log, &camera, &request).map_err(VideoError::internal)
    })
    .await
}
