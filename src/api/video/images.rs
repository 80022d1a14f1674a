//! Still images (JPEG, PNG) decoded from stored fragments, one at a time or a series, with
//! GetImages's limits; one decode at a time per gateway.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use axum::Json;
use http::header;

use super::{
    blocking, camera_log, parse_time, Playback, Range, VideoError, VideoResult, VideoState,
};
use crate::video::image::{ImageFormat, ImageRequest};
use crate::video::log::FragmentLog;

/// Image limits (as GetImages's).
const MAX_IMAGE_WINDOW_MS: i64 = 300_000;
const MAX_IMAGES: usize = 100;
const MIN_IMAGE_INTERVAL_MS: i64 = 200;

#[derive(serde::Deserialize)]
pub(super) struct ImageQuery {
    at: Option<String>,
    width: Option<u32>,
}

pub(super) async fn image_jpeg(
    state: State<Arc<VideoState>>,
    camera: Path<String>,
    query: Query<ImageQuery>,
    playback: Playback,
) -> VideoResult {
    one_image(state, camera, query, playback, ImageFormat::Jpeg).await
}

pub(super) async fn image_png(
    state: State<Arc<VideoState>>,
    camera: Path<String>,
    query: Query<ImageQuery>,
    playback: Playback,
) -> VideoResult {
    one_image(state, camera, query, playback, ImageFormat::Png).await
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
    State(state): State<Arc<VideoState>>,
    Path(camera): Path<String>,
    Query(query): Query<ImageQuery>,
    Playback { video, .. }: Playback,
    format: ImageFormat,
) -> VideoResult {
    let width = check_width(query.width)?;
    let log = camera_log(&video, &camera)?;
    let at = match query.at.as_deref() {
        Some(at) => parse_time("at", at)?,
        // Now: the newest frame there is, the last of the newest stored fragment (the
        // fragment being recorded is not stored yet).
        None => {
            let (log, name) = (log.clone(), camera.clone());
            let newest =
                blocking(move || log.latest(&name, 1).map_err(VideoError::internal)).await?;
            let newest = newest.first().ok_or_else(|| {
                VideoError::not_found("no fragments yet: the camera has not delivered video")
            })?;
            newest.producer_ms + i64::from(newest.duration_ms.max(1)) - 1
        }
    };
    let request = ImageRequest {
        at: vec![at],
        width,
        height: None,
        format,
        jpeg_quality: None,
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
            Err(miss) => Err(VideoError::not_found(miss.message)),
        },
        None => Err(VideoError::not_found("no fragment holds this time")),
    }
}

#[derive(serde::Deserialize)]
pub(super) struct ImagesQuery {
    start: Option<String>,
    end: Option<String>,
    interval_ms: Option<i64>,
    format: Option<String>,
    width: Option<u32>,
}

pub(super) async fn images(
    State(state): State<Arc<VideoState>>,
    Path(camera): Path<String>,
    Query(query): Query<ImagesQuery>,
    Playback { video, .. }: Playback,
) -> VideoResult {
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
    let request = ImageRequest {
        at,
        width,
        height: None,
        format,
        jpeg_quality: None,
    };
    let images = extract(&state, log, camera, request).await?;
    use base64::Engine;
    let list: Vec<serde_json::Value> = images
        .into_iter()
        .map(|image| match image.result {
            Ok(data) => serde_json::json!({
                "timestamp_ms": image.at,
                "content": base64::engine::general_purpose::STANDARD.encode(data),
            }),
            Err(miss) => serde_json::json!({ "timestamp_ms": image.at, "error": miss.message }),
        })
        .collect();
    Ok(Json(serde_json::json!({ "format": format.name(), "images": list })).into_response())
}

/// Decodes images, one request at a time per gateway (decoding is the heaviest thing video
/// does here).
async fn extract(
    state: &VideoState,
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
