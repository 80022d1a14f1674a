//! What a session's URLs serve besides its playlists: init segments (GetMP4InitFragment) and
//! fragments (GetMP4MediaFragment), as stored, whole or by byte range. The session token in
//! the query is the credential; a fragment outside the session's range is not served.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderValue, Uri};
use serde::Deserialize;

use super::sessions::{Protocol, Session};
use super::{blocking, invalid, log_error, not_found, ArchiveState};
use crate::api::kvs::KvsError;
use crate::video::log::FragmentLog;

/// The query of every URL a session serves.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SessionQuery {
    pub session_token: Option<String>,
    pub fragment_number: Option<String>,
    pub init_id: Option<String>,
}

/// The live session a URL's token names, and the log of its stream (resolved again: a stream
/// deleted since the session opened is gone for it too).
pub(super) fn session_of(
    state: &ArchiveState,
    query: &SessionQuery,
    protocol: Protocol,
) -> Result<(Arc<Session>, FragmentLog), KvsError> {
    let token = query
        .session_token
        .as_deref()
        .ok_or_else(|| invalid("SessionToken is required"))?;
    let session = state.sessions.get(token, protocol, Instant::now())?;
    let stream = state.kvs.stream(Some(&session.stream), None)?;
    debug_assert_eq!(stream, session.stream);
    Ok((session, state.kvs.video()?.log().clone()))
}

fn protocol_of(uri: &Uri) -> Protocol {
    if uri.path().starts_with("/dash/") {
        Protocol::Dash
    } else {
        Protocol::Hls
    }
}

fn number(value: Option<&str>, member: &str) -> Result<u64, KvsError> {
    let value = value.ok_or_else(|| invalid(format!("{member} is required")))?;
    value
        .parse()
        .map_err(|_| invalid(format!("{member} `{value}` is not valid: a number")))
}

pub(super) async fn init_fragment(
    State(state): State<Arc<ArchiveState>>,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<SessionQuery>,
) -> Response {
    let served = async {
        let (session, log) = session_of(&state, &query, protocol_of(&uri))?;
        let id = number(query.init_id.as_deref(), "InitId")?;
        let data = blocking(move || {
            log.init_segment(&session.stream, id)
                .map_err(log_error)?
                .ok_or_else(|| not_found(format!("No init segment {id} in the stream.")))
        })
        .await?;
        let etag = format!("\"i{id}-{}\"", data.len());
        Ok::<_, KvsError>(mp4_response(&headers, data, &etag))
    };
    served.await.unwrap_or_else(IntoResponse::into_response)
}

pub(super) async fn media_fragment(
    State(state): State<Arc<ArchiveState>>,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<SessionQuery>,
) -> Response {
    let served = async {
        let (session, log) = session_of(&state, &query, protocol_of(&uri))?;
        let number = number(query.fragment_number.as_deref(), "FragmentNumber")?;
        let data = blocking(move || {
            let missing = || {
                not_found(format!(
                    "Fragment {number} is not in this session (outside its range, or deleted by retention)."
                ))
            };
            let meta = log
                .fragment(&session.stream, number)
                .map_err(log_error)?
                .filter(|meta| session.covers(meta))
                .ok_or_else(missing)?;
            log.read(&session.stream, meta.number)
                .map_err(log_error)?
                .ok_or_else(missing)
        })
        .await?;
        let etag = format!("\"f{number}-{}\"", data.len());
        Ok::<_, KvsError>(mp4_response(&headers, data, &etag))
    };
    served.await.unwrap_or_else(IntoResponse::into_response)
}

/// Stored MP4 media (it never changes), whole or the byte range asked for.
fn mp4_response(request: &HeaderMap, data: Vec<u8>, etag: &str) -> Response {
    let mut response = crate::api::byte_ranges::respond(request, data, Some(etag));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=86400, immutable"),
    );
    response
}
