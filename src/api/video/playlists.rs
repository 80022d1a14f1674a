//! HLS playlists, live and on demand: their URIs presigned with the request's credentials
//! when it was signed, so that a player given one presigned playlist URL can fetch its
//! segments.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};

use http::header;

use super::{blocking, camera_log, Access, Playback, Range, VideoError, VideoResult, VideoState};
use crate::video::hls;
use crate::video::log::FragmentMeta;

/// Fragments an on-demand playlist lists at most.
const MAX_VOD_FRAGMENTS: usize = 1000;

/// How long the URIs in a playlist stay valid.
const LIVE_URI_EXPIRES_S: u64 = 3600;
const VOD_URI_EXPIRES_S: u64 = 12 * 3600;

/// `relative` (under `/video/<camera>/`) with a presigned query when the playlist request was
/// signed.
fn sign_uri(
    now: std::time::SystemTime,
    state: &VideoState,
    access: Option<&Access>,
    camera: &str,
    relative: String,
    expires_s: u64,
) -> String {
    let (Some(access), Some(verifier)) = (access, state.auth.verifier.as_ref()) else {
        return relative;
    };
    let path = format!("/video/{camera}/{relative}");
    match verifier.presign_get(
        &access.key,
        &state.auth.region,
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

/// A live (`ended = false`) or on-demand playlist of `fragments` (not empty), its URIs
/// presigned when the request was signed.
fn playlist(
    state: &VideoState,
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
        program_dates: hls::ProgramDates::AtDiscontinuities,
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

pub(super) async fn live(
    State(state): State<Arc<VideoState>>,
    Path(camera): Path<String>,
    Playback { video, access }: Playback,
) -> VideoResult {
    let count = video.settings().live_segments as usize;
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

pub(super) async fn vod(
    State(state): State<Arc<VideoState>>,
    Path(camera): Path<String>,
    Query(range): Query<Range>,
    Playback { video, access }: Playback,
) -> VideoResult {
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
