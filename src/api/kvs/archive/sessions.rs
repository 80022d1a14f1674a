//! Streaming sessions: GetHLSStreamingSessionURL and GetDASHStreamingSessionURL check their
//! request and open a session; the session's token is the only credential of the URLs a
//! player then fetches (the master playlist or manifest, media playlists, init segments and
//! fragments), so it is random (256 bits), expires (`Expires`: 300..=43200 s) and lives in a
//! bounded table (`MAX_SESSIONS`; a full table of live sessions refuses new ones with
//! ClientLimitExceededException). Unknown or expired tokens get NotAuthorizedException.
//!

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::{
    blocking, checked_range, in_range, invalid, log_error, not_found, now_ms, retained_stream_log,
    window, ArchiveState, Origin, Selector, MAX_RANGE_MS,
};
use crate::api::kvs::{decode, signed_body, KvsError, KvsErrorKind};
use crate::video::log::FragmentMeta;

/// Sessions open at once, over all streams.
pub(super) const MAX_SESSIONS: usize = 1000;
/// Longest accepted session token (a real one is 64 hex digits).
const MAX_TOKEN_LEN: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Protocol {
    Hls,
    Dash,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Live,
    LiveReplay,
    OnDemand,
}

/// HLS's `DiscontinuityMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Discontinuities {
    Always,
    Never,
    OnDiscontinuity,
}

/// One streaming session.
#[derive(Debug, Clone)]
pub(super) struct Session {
    /// The stream as `KvsState::stream` resolved it.
    pub stream: String,
    pub protocol: Protocol,
    pub mode: Mode,
    pub origin: Origin,
    /// `[start, end]` for ON_DEMAND (both) and LIVE_REPLAY (end optional).
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub max_fragments: usize,
    pub discontinuities: Discontinuities,
    pub display_timestamps: bool,
    pub display_numbers: bool,
    /// When the session was opened (epoch ms): a LIVE_REPLAY session plays from then on.
    pub opened_ms: i64,
    pub expires: Instant,
}

impl Session {
    /// Whether a fragment belongs to the media the session makes available.
    pub fn covers(&self, fragment: &FragmentMeta) -> bool {
        let t = self.origin.of(fragment);
        self.start.is_none_or(|start| t >= start) && self.end.is_none_or(|end| t <= end)
    }
}

/// The open sessions by token.
pub(super) struct Sessions {
    table: Mutex<HashMap<String, Arc<Session>>>,
    capacity: usize,
}

impl Sessions {
    pub fn new(capacity: usize) -> Sessions {
        Sessions {
            table: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens `session` and returns its token; expired sessions are dropped first.
    pub fn open(&self, session: Session, now: Instant) -> Result<String, KvsError> {
        let mut table = self.lock();
        if table.len() >= self.capacity {
            table.retain(|_, s| s.expires > now);
        }
        if table.len() >= self.capacity {
            return Err(KvsError::new(
                KvsErrorKind::ClientLimitExceeded,
                format!(
                    "{} streaming sessions are open, the most this gateway keeps: try again when some expire",
                    self.capacity
                ),
            ));
        }
        let token = hex::encode(rand::random::<[u8; 32]>());
        table.insert(token.clone(), Arc::new(session));
        Ok(token)
    }

    /// The live session of `token` for `protocol`.
    pub fn get(
        &self,
        token: &str,
        protocol: Protocol,
        now: Instant,
    ) -> Result<Arc<Session>, KvsError> {
        let refused = |why: &str| {
            KvsError::new(
                KvsErrorKind::NotAuthorized,
                format!("The session token {why}: ask for a new streaming session URL"),
            )
        };
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(refused("is not valid"));
        }
        let mut table = self.lock();
        let Some(session) = table.get(token).cloned() else {
            return Err(refused("is not valid"));
        };
        if session.expires <= now {
            table.remove(token);
            return Err(refused("has expired"));
        }
        if session.protocol != protocol {
            return Err(refused("is not valid for this protocol"));
        }
        Ok(session)
    }
}

/// The members HLS and DASH requests share, under their own names.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SessionInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    playback_mode: Option<String>,
    #[serde(rename = "HLSFragmentSelector")]
    hls_fragment_selector: Option<Selector>,
    #[serde(rename = "DASHFragmentSelector")]
    dash_fragment_selector: Option<Selector>,
    container_format: Option<String>,
    discontinuity_mode: Option<String>,
    display_fragment_timestamp: Option<String>,
    display_fragment_number: Option<String>,
    expires: Option<i64>,
    max_media_playlist_fragment_results: Option<i64>,
    max_manifest_fragment_results: Option<i64>,
}

pub(super) async fn get_hls_streaming_session_url(
    State(state): State<Arc<ArchiveState>>,
    request: Request,
) -> Response {
    session_url(&state, request, Protocol::Hls).await
}

pub(super) async fn get_dash_streaming_session_url(
    State(state): State<Arc<ArchiveState>>,
    request: Request,
) -> Response {
    session_url(&state, request, Protocol::Dash).await
}

async fn session_url(state: &ArchiveState, request: Request, protocol: Protocol) -> Response {
    let base = base_url(&request, state.kvs.scheme() == "https");
    match open(state, request, protocol).await {
        Ok(token) => {
            let (member, path) = match protocol {
                Protocol::Hls => (
                    "HLSStreamingSessionURL",
                    "/hls/v1/getHLSMasterPlaylist.m3u8",
                ),
                Protocol::Dash => ("DASHStreamingSessionURL", "/dash/v1/getDASHManifest.mpd"),
            };
            let url = format!("{base}{path}?SessionToken={token}");
            Json(serde_json::json!({ member: url })).into_response()
        }
        Err(Refusal::Response(response)) => response,
        Err(Refusal::Error(error)) => error.into_response(),
    }
}

enum Refusal {
    Response(Response),
    Error(KvsError),
}

impl From<KvsError> for Refusal {
    fn from(error: KvsError) -> Refusal {
        Refusal::Error(error)
    }
}

/// The gateway's URL as the client reached it: `https` on a TLS listener (or behind a proxy
/// that says so), and the request's `Host`.
fn base_url(request: &Request, tls: bool) -> String {
    let host = request
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost".to_string());
    let https = tls
        || request.uri().scheme_str() == Some("https")
        || request
            .headers()
            .get("x-forwarded-proto")
            .is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"https"));
    format!("{}://{host}", if https { "https" } else { "http" })
}

async fn open(
    state: &ArchiveState,
    request: Request,
    protocol: Protocol,
) -> Result<String, Refusal> {
    let body = signed_body(&state.kvs, request)
        .await
        .map_err(Refusal::Response)?;
    let input: SessionInput = decode(&body)?;
    let session = checked(&input, protocol)?;
    let (stream, log) = retained_stream_log(
        state,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    let session = Session { stream, ..session };
    let found = {
        let (session, log) = (session.clone(), log.clone());
        blocking(move || window::has_media(&log, &session, now_ms()).map_err(log_error)).await?
    };
    if !found {
        return Err(not_found(match session.mode {
            Mode::Live => "No fragments found in the stream in the last 30 seconds.",
            _ => "No fragments found in the stream for the requested time range.",
        })
        .into());
    }
    Ok(state.sessions.open(session, Instant::now())?)
}

/// The session a request asks for (its stream not resolved yet), each member checked.
fn checked(input: &SessionInput, protocol: Protocol) -> Result<Session, KvsError> {
    let (selector_member, selector, max_member, max) = match protocol {
        Protocol::Hls => (
            "HLSFragmentSelector",
            input.hls_fragment_selector.clone(),
            "MaxMediaPlaylistFragmentResults",
            input.max_media_playlist_fragment_results,
        ),
        Protocol::Dash => (
            "DASHFragmentSelector",
            input.dash_fragment_selector.clone(),
            "MaxManifestFragmentResults",
            input.max_manifest_fragment_results,
        ),
    };
    let mode = match input.playback_mode.as_deref().unwrap_or("LIVE") {
        "LIVE" => Mode::Live,
        "LIVE_REPLAY" => Mode::LiveReplay,
        "ON_DEMAND" => Mode::OnDemand,
        other => {
            return Err(invalid(format!(
                "PlaybackMode `{other}` is not valid: LIVE, LIVE_REPLAY or ON_DEMAND"
            )))
        }
    };
    let origin = match selector
        .as_ref()
        .and_then(|s| s.fragment_selector_type.as_deref())
    {
        Some(value) => Origin::parse(&format!("{selector_member}.FragmentSelectorType"), value)?,
        None => Origin::Server,
    };
    let range = selector.and_then(|s| s.timestamp_range);
    let (start, end) =
        match mode {
            Mode::Live => {
                if range.is_some() {
                    return Err(invalid(format!(
                    "{selector_member}.TimestampRange must not be set when PlaybackMode is LIVE"
                )));
                }
                (None, None)
            }
            Mode::OnDemand => {
                let member = format!("{selector_member}.TimestampRange");
                let (start, end) = checked_range(range, &member, MAX_RANGE_MS)?;
                (Some(start), Some(end))
            }
            Mode::LiveReplay => {
                let member = format!("{selector_member}.TimestampRange");
                let range = range.ok_or_else(|| {
                    invalid(format!(
                        "{member} is required when PlaybackMode is LIVE_REPLAY"
                    ))
                })?;
                match range.end_timestamp {
                    Some(_) => {
                        let (start, end) = checked_range(Some(range), &member, MAX_RANGE_MS)?;
                        (Some(start), Some(end))
                    }
                    None => (
                        Some(range.start_timestamp.ok_or_else(|| {
                            invalid(format!("{member}.StartTimestamp is required"))
                        })?),
                        None,
                    ),
                }
            }
        };
    if protocol == Protocol::Hls {
        match input
            .container_format
            .as_deref()
            .unwrap_or("FRAGMENTED_MP4")
        {
            "FRAGMENTED_MP4" => {}
            "MPEG_TS" => {
                return Err(invalid(
                    "ContainerFormat MPEG_TS is not supported by this gateway: use FRAGMENTED_MP4",
                ))
            }
            other => {
                return Err(invalid(format!(
                    "ContainerFormat `{other}` is not valid: FRAGMENTED_MP4 or MPEG_TS"
                )))
            }
        }
    }
    let discontinuities = match input.discontinuity_mode.as_deref() {
        None if origin == Origin::Server => Discontinuities::Always,
        None => Discontinuities::Never,
        Some("ALWAYS") => Discontinuities::Always,
        Some("NEVER") => Discontinuities::Never,
        Some("ON_DISCONTINUITY") => Discontinuities::OnDiscontinuity,
        Some(other) => {
            return Err(invalid(format!(
                "DiscontinuityMode `{other}` is not valid: ALWAYS, NEVER or ON_DISCONTINUITY"
            )))
        }
    };
    let always = |member: &str, value: Option<&str>| match value {
        None | Some("NEVER") => Ok(false),
        Some("ALWAYS") => Ok(true),
        Some(other) => Err(invalid(format!(
            "{member} `{other}` is not valid: ALWAYS or NEVER"
        ))),
    };
    let display_timestamps = always(
        "DisplayFragmentTimestamp",
        input.display_fragment_timestamp.as_deref(),
    )?;
    let display_numbers = always(
        "DisplayFragmentNumber",
        input.display_fragment_number.as_deref(),
    )?;
    let expires = in_range(input.expires.unwrap_or(300), "Expires", 300, 43_200)?;
    let default_max = if mode == Mode::OnDemand { 1000 } else { 5 };
    let max_fragments = in_range(max.unwrap_or(default_max), max_member, 1, 5000)? as usize;
    Ok(Session {
        stream: String::new(),
        protocol,
        mode,
        origin,
        start,
        end,
        max_fragments,
        discontinuities,
        display_timestamps,
        display_numbers,
        opened_ms: now_ms(),
        expires: Instant::now() + Duration::from_secs(expires as u64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: serde_json::Value) -> SessionInput {
        serde_json::from_value(json).unwrap()
    }

    fn session(expires: Instant) -> Session {
        let mut s = checked(&input(serde_json::json!({})), Protocol::Hls).unwrap();
        s.stream = "cam".into();
        s.expires = expires;
        s
    }

    #[test]
    fn defaults_are_aws_defaults() {
        let s = checked(&input(serde_json::json!({})), Protocol::Hls).unwrap();
        assert_eq!(s.mode, Mode::Live);
        assert_eq!(s.origin, Origin::Server);
        assert_eq!(s.discontinuities, Discontinuities::Always);
        assert_eq!(s.max_fragments, 5);
        assert!(!s.display_timestamps);
        let left = s.expires.duration_since(Instant::now());
        assert!(left <= Duration::from_secs(300) && left > Duration::from_secs(290));
        let s = checked(
            &input(serde_json::json!({
                "PlaybackMode": "ON_DEMAND",
                "HLSFragmentSelector": {"FragmentSelectorType": "PRODUCER_TIMESTAMP",
                    "TimestampRange": {"StartTimestamp": 100.0, "EndTimestamp": 200.5}}
            })),
            Protocol::Hls,
        )
        .unwrap();
        assert_eq!((s.start, s.end), (Some(100_000), Some(200_500)));
        assert_eq!(s.discontinuities, Discontinuities::Never);
        assert_eq!(s.max_fragments, 1000);
    }

    #[test]
    fn bad_members_are_named() {
        let range =
            serde_json::json!({"TimestampRange": {"StartTimestamp": 100.0, "EndTimestamp": 200.0}});
        for (json, protocol, mentions) in [
            (
                serde_json::json!({"PlaybackMode": "NOW"}),
                Protocol::Hls,
                "PlaybackMode",
            ),
            (
                serde_json::json!({"PlaybackMode": "ON_DEMAND"}),
                Protocol::Hls,
                "HLSFragmentSelector.TimestampRange",
            ),
            (
                serde_json::json!({"PlaybackMode": "ON_DEMAND"}),
                Protocol::Dash,
                "DASHFragmentSelector.TimestampRange",
            ),
            (
                serde_json::json!({"PlaybackMode": "LIVE_REPLAY"}),
                Protocol::Hls,
                "LIVE_REPLAY",
            ),
            (
                serde_json::json!({"HLSFragmentSelector": range}),
                Protocol::Hls,
                "must not be set",
            ),
            (
                serde_json::json!({"ContainerFormat": "MPEG_TS"}),
                Protocol::Hls,
                "MPEG_TS",
            ),
            (
                serde_json::json!({"DiscontinuityMode": "SOMETIMES"}),
                Protocol::Hls,
                "DiscontinuityMode",
            ),
            (
                serde_json::json!({"DisplayFragmentTimestamp": "YES"}),
                Protocol::Hls,
                "DisplayFragmentTimestamp",
            ),
            (
                serde_json::json!({"Expires": 299}),
                Protocol::Hls,
                "Expires",
            ),
            (
                serde_json::json!({"Expires": 43_201}),
                Protocol::Dash,
                "Expires",
            ),
            (
                serde_json::json!({"MaxMediaPlaylistFragmentResults": 5001}),
                Protocol::Hls,
                "MaxMediaPlaylistFragmentResults",
            ),
            (
                serde_json::json!({"MaxManifestFragmentResults": 0}),
                Protocol::Dash,
                "MaxManifestFragmentResults",
            ),
            (
                serde_json::json!({"PlaybackMode": "ON_DEMAND", "HLSFragmentSelector":
                {"TimestampRange": {"StartTimestamp": 0.0, "EndTimestamp": 86_401.0}}}),
                Protocol::Hls,
                "24 hours",
            ),
        ] {
            let error = checked(&input(json.clone()), protocol).unwrap_err();
            assert_eq!(error.kind, KvsErrorKind::InvalidArgument);
            assert!(
                error.message.contains(mentions),
                "{json}: {}",
                error.message
            );
        }
    }

    #[test]
    fn session_urls_point_where_the_client_came_from() {
        let request = |forwarded: Option<&str>| {
            let mut builder = http::Request::builder()
                .uri("/getHLSStreamingSessionURL")
                .header(http::header::HOST, "gw.local:4567");
            if let Some(proto) = forwarded {
                builder = builder.header("x-forwarded-proto", proto);
            }
            builder.body(axum::body::Body::empty()).unwrap()
        };
        assert_eq!(base_url(&request(None), false), "http://gw.local:4567");
        assert_eq!(base_url(&request(None), true), "https://gw.local:4567");
        assert_eq!(
            base_url(&request(Some("HTTPS")), false),
            "https://gw.local:4567"
        );
    }

    #[test]
    fn tokens_are_random_expire_and_the_table_is_bounded() {
        let sessions = Sessions::new(2);
        let now = Instant::now();
        let a = sessions
            .open(session(now + Duration::from_secs(10)), now)
            .unwrap();
        let b = sessions
            .open(session(now + Duration::from_secs(20)), now)
            .unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(sessions.get(&a, Protocol::Hls, now).is_ok());
        assert_eq!(
            sessions.get(&a, Protocol::Dash, now).unwrap_err().kind,
            KvsErrorKind::NotAuthorized
        );
        // Full of live sessions: refused.
        let full = sessions
            .open(session(now + Duration::from_secs(30)), now)
            .unwrap_err();
        assert_eq!(full.kind, KvsErrorKind::ClientLimitExceeded);
        // Once `a` expired, it is refused and its place is free.
        let later = now + Duration::from_secs(15);
        let expired = sessions.get(&a, Protocol::Hls, later).unwrap_err();
        assert!(expired.message.contains("expired"), "{}", expired.message);
        assert!(sessions
            .open(session(later + Duration::from_secs(30)), later)
            .is_ok());
        assert!(sessions.get(&b, Protocol::Hls, later).is_ok());
        for bad in ["", "nope", &"f".repeat(200)] {
            assert_eq!(
                sessions.get(bad, Protocol::Hls, now).unwrap_err().kind,
                KvsErrorKind::NotAuthorized
            );
        }
    }
}
