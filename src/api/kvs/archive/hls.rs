//! An HLS session's playlists: the master playlist (GetHLSMasterPlaylist: one variant, its
//! codecs, resolution and peak bitrate) and the media playlist (GetHLSMediaPlaylist: the
//! session's window of fragments, rendered by `video::hls`), their URIs relative and carrying
//! the session token.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::header;

use super::media::{session_of, SessionQuery};
use super::sessions::{Discontinuities, Mode, Protocol, Session};
use super::window::window;
use super::{blocking, log_error, not_found, now_ms, ArchiveState};
use crate::api::kvs::KvsError;
use crate::video::hls::{self, ProgramDates};
use crate::video::log::FragmentMeta;
use crate::video::mp4;

/// A gap or overlap larger than this between fragments is a discontinuity in
/// ON_DISCONTINUITY mode (AWS: 50 ms).
const DISCONTINUITY_GAP_MS: i64 = 50;

pub(super) async fn master_playlist(
    State(state): State<Arc<ArchiveState>>,
    Query(query): Query<SessionQuery>,
) -> Response {
    master(&state, query)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn master(state: &ArchiveState, query: SessionQuery) -> Result<Response, KvsError> {
    let (session, log) = session_of(state, &query, Protocol::Hls)?;
    let token = query.session_token.unwrap_or_default();
    let (fragments, init) = blocking(move || {
        let (fragments, _) = window(&log, &session, now_ms()).map_err(log_error)?;
        let Some(first) = fragments.first() else {
            return Err(not_found(
                "No fragments found in the stream for this session.",
            ));
        };
        let init = log
            .init_segment(&session.stream, first.init_id)
            .map_err(log_error)?;
        Ok((fragments, init))
    })
    .await?;
    let info = init.as_deref().and_then(|init| mp4::init_info(init).ok());
    let mut text = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    let _ = write!(
        text,
        "#EXT-X-STREAM-INF:BANDWIDTH={}",
        peak_bitrate(&fragments)
    );
    if let Some(info) = info {
        let _ = write!(
            text,
            ",CODECS=\"{}\",RESOLUTION={}x{}",
            info.codec, info.width, info.height
        );
    }
    let _ = write!(text, "\ngetHLSMediaPlaylist.m3u8?SessionToken={token}\n");
    Ok(playlist_response(text))
}

/// The highest bit rate of the fragments (bits per second), at least 1.
fn peak_bitrate(fragments: &[FragmentMeta]) -> u64 {
    fragments
        .iter()
        .map(|f| f.size.saturating_mul(8000) / u64::from(f.duration_ms.max(1)))
        .max()
        .unwrap_or(0)
        .max(1)
}

pub(super) async fn media_playlist(
    State(state): State<Arc<ArchiveState>>,
    Query(query): Query<SessionQuery>,
) -> Response {
    media(&state, query)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn media(state: &ArchiveState, query: SessionQuery) -> Result<Response, KvsError> {
    let (session, log) = session_of(state, &query, Protocol::Hls)?;
    let token = query.session_token.unwrap_or_default();
    let (fragments, ended) = {
        let session = session.clone();
        blocking(move || window(&log, &session, now_ms()).map_err(log_error)).await?
    };
    if fragments.is_empty() {
        return Err(not_found(
            "No fragments found in the stream for this session.",
        ));
    }
    Ok(playlist_response(hls::render(&playlist(
        &session, &token, &fragments, ended,
    ))))
}

/// The media playlist of a session's window (not empty).
fn playlist(
    session: &Session,
    token: &str,
    fragments: &[FragmentMeta],
    ended: bool,
) -> hls::Playlist {
    let first = &fragments[0];
    let discontinuity_sequence = match session.discontinuities {
        // Every boundary counts: the sequence follows the fragment numbers.
        Discontinuities::Always => first.number,
        Discontinuities::Never => 0,
        Discontinuities::OnDiscontinuity => first.discontinuity_sequence,
    };
    let mut previous_end: Option<i64> = None;
    let segments = fragments
        .iter()
        .map(|f| {
            let start = session.origin.of(f);
            let discontinuity = match (session.discontinuities, previous_end) {
                (_, None) | (Discontinuities::Never, _) => false,
                (Discontinuities::Always, Some(_)) => true,
                (Discontinuities::OnDiscontinuity, Some(end)) => {
                    f.discontinuity || end.abs_diff(start) > DISCONTINUITY_GAP_MS as u64
                }
            };
            previous_end = Some(start.saturating_add(i64::from(f.duration_ms)));
            hls::Segment {
                uri: format!(
                    "getMP4MediaFragment.mp4?SessionToken={token}&FragmentNumber={}",
                    f.number
                ),
                duration_ms: f.duration_ms,
                program_date_time_ms: start,
                map_uri: format!(
                    "getMP4InitFragment.mp4?SessionToken={token}&InitId={}",
                    f.init_id
                ),
                discontinuity,
            }
        })
        .collect();
    hls::Playlist {
        media_sequence: first.number,
        discontinuity_sequence,
        segments,
        ended,
        playlist_type_vod: session.mode == Mode::OnDemand,
        program_dates: if session.display_timestamps {
            ProgramDates::Every
        } else {
            ProgramDates::Never
        },
    }
}

fn playlist_response(text: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/vnd.apple.mpegurl"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::kvs::archive::sessions::Protocol;
    use crate::api::kvs::archive::Origin;

    fn meta(number: u64, producer_ms: i64, discontinuity: bool) -> FragmentMeta {
        FragmentMeta {
            number,
            producer_ms,
            server_ms: producer_ms + 700,
            duration_ms: 1000,
            size: 125_000,
            keyframe: true,
            discontinuity,
            discontinuity_sequence: 3,
            codec: "h264".into(),
            width: 64,
            height: 48,
            init_id: 2,
        }
    }

    fn session(discontinuities: Discontinuities, display_timestamps: bool) -> Session {
        Session {
            stream: "cam".into(),
            protocol: Protocol::Hls,
            mode: Mode::Live,
            origin: Origin::Producer,
            start: None,
            end: None,
            max_fragments: 5,
            discontinuities,
            display_timestamps,
            display_numbers: false,
            opened_ms: 0,
            expires: std::time::Instant::now(),
        }
    }

    #[test]
    fn discontinuity_modes_and_dates() {
        let fragments = [
            meta(7, 0, false),
            meta(8, 1000, false),
            meta(9, 2030, false),
            meta(10, 3100, false),
        ];
        let flags = |mode| -> Vec<bool> {
            playlist(&session(mode, false), "T", &fragments, false)
                .segments
                .iter()
                .map(|s| s.discontinuity)
                .collect()
        };
        assert_eq!(flags(Discontinuities::Always), [false, true, true, true]);
        assert_eq!(flags(Discontinuities::Never), [false; 4]);
        // 30 ms late: continuous; 70 ms late: a discontinuity.
        assert_eq!(
            flags(Discontinuities::OnDiscontinuity),
            [false, false, false, true]
        );
        let live = playlist(
            &session(Discontinuities::Always, true),
            "T",
            &fragments,
            false,
        );
        assert_eq!((live.media_sequence, live.discontinuity_sequence), (7, 7));
        assert_eq!(live.program_dates, ProgramDates::Every);
        let text = hls::render(&live);
        assert!(
            text.contains("getMP4MediaFragment.mp4?SessionToken=T&FragmentNumber=10\n"),
            "{text}"
        );
        assert!(
            text.contains("#EXT-X-MAP:URI=\"getMP4InitFragment.mp4?SessionToken=T&InitId=2\""),
            "{text}"
        );
        assert!(!text.contains("ENDLIST"));
        let on_gap = playlist(
            &session(Discontinuities::OnDiscontinuity, false),
            "T",
            &fragments,
            true,
        );
        assert_eq!(on_gap.discontinuity_sequence, 3);
        assert!(hls::render(&on_gap).ends_with("#EXT-X-ENDLIST\n"));
        assert_eq!(peak_bitrate(&fragments), 1_000_000);
    }
}
