//! Stored media as stored (init segments, fragments, byte ranges), fragment lists with gaps,
//! and MP4 clips (the only media rewritten: timestamps from zero).

use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::{header, HeaderValue};

use super::{blocking, camera_log, parse_time, Playback, Range, VideoError, VideoResult};
use crate::video::clip;
use crate::video::log::FragmentMeta;

/// Clip limits (as GetClip's).
const MAX_CLIP_FRAGMENTS: usize = 200;
const MAX_CLIP_BYTES: u64 = 100 * 1024 * 1024;
/// Fragments a fragment list returns at most.
const MAX_LIST_FRAGMENTS: usize = 1000;

/// `<number>.<ext>` → number.
fn numbered(file: &str, ext: &str) -> Result<u64, VideoError> {
    file.strip_suffix(ext)
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| VideoError::not_found(format!("`{file}`: expected <number>{ext}")))
}

pub(super) async fn init_segment(
    Path((camera, file)): Path<(String, String)>,
    headers: http::HeaderMap,
    Playback { video, .. }: Playback,
) -> VideoResult {
    let id = numbered(&file, ".mp4")?;
    let log = camera_log(&video, &camera)?;
    let data =
        blocking(move || log.init_segment(&camera, id).map_err(VideoError::internal)).await?;
    let data = data.ok_or_else(|| VideoError::not_found(format!("no init segment {id}")))?;
    let etag = format!("\"i{id}-{}\"", data.len());
    Ok(media_response(&headers, "video/mp4", data, &etag))
}

pub(super) async fn fragment(
    Path((camera, file)): Path<(String, String)>,
    headers: http::HeaderMap,
    Playback { video, .. }: Playback,
) -> VideoResult {
    let number = numbered(&file, ".m4s")?;
    let log = camera_log(&video, &camera)?;
    let data = blocking(move || log.read(&camera, number).map_err(VideoError::internal)).await?;
    let data = data.ok_or_else(|| {
        VideoError::not_found(format!(
            "fragment {number} is not kept (deleted by retention, or not yet recorded)"
        ))
    })?;
    let etag = format!("\"f{number}-{}\"", data.len());
    Ok(media_response(&headers, "video/iso.segment", data, &etag))
}

/// Stored media, whole or the byte range asked for (`byte_ranges`).
fn media_response(
    request: &http::HeaderMap,
    content_type: &'static str,
    data: Vec<u8>,
    etag: &str,
) -> Response {
    let mut response = crate::api::byte_ranges::respond(request, data, Some(etag));
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
pub(super) struct FragmentList {
    camera: String,
    fragments: Vec<FragmentMeta>,
    gaps: Vec<crate::video::log::Gap>,
    truncated: bool,
}

pub(super) async fn list_fragments(
    Path(camera): Path<String>,
    Query(range): Query<Range>,
    Playback { video, .. }: Playback,
) -> VideoResult {
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
            Some((start, end)) => log.fragments(&camera, start, end, MAX_LIST_FRAGMENTS + 1),
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

pub(super) async fn clip_mp4(
    Path(camera): Path<String>,
    Query(range): Query<Range>,
    headers: http::HeaderMap,
    Playback { video, .. }: Playback,
) -> VideoResult {
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
        if fragments.is_empty() {
            return Err(VideoError::not_found("no fragments in this time range"));
        }
        // A clip is one recording run with one init segment: it ends where the camera
        // reconnected or its stream changed.
        let same = clip::first_run(&fragments);
        let bytes: u64 = same.iter().map(|f| f.size).sum();
        if bytes > MAX_CLIP_BYTES {
            return Err(VideoError::limit(format!(
                "the clip would be {} MB; at most {} MB: ask for a shorter clip",
                bytes / 1_000_000,
                MAX_CLIP_BYTES / 1024 / 1024
            )));
        }
        let read = clip::read_clip(&log, &camera, same).map_err(VideoError::internal)?;
        let clip = read.clip;
        // The same fragments make the same bytes: a player's later range requests
        // (If-Range) get pieces of this very file.
        let etag = format!(
            "\"c{}-{}-{}-{}\"",
            read.init_id,
            read.first,
            read.last,
            clip.data.len()
        );
        Ok((clip, etag))
    })
    .await?;
    let (clip, etag) = clip;
    let mut response = media_response(&headers, "video/mp4", clip.data, &etag);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(&clip.duration_ms.to_string()) {
        response
            .headers_mut()
            .insert("x-kinedge-clip-duration-ms", value);
    }
    Ok(response)
}
