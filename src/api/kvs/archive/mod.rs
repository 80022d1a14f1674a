//! `kinesis-video-archived-media` on the gateway: ListFragments, GetClip, GetImages and the
//! HLS and DASH streaming sessions (GetHLSStreamingSessionURL, GetDASHStreamingSessionURL and
//! what their URLs serve), over the fragment log the streams record into.
//!
//! - Streams are resolved only through [`KvsState::stream`], again on every request a session
//!   serves (a stream deleted after its session was made is gone for the session too).
//! - The operations are signed as the rest of the API; the session URLs are not (a player
//!   fetches them as they are): the random session token in their query is the credential, and
//!   it expires (`Expires`). The session table is bounded (`sessions::MAX_SESSIONS`).
//! - Timestamps select fragments by their start: producer time through the log's time index,
//!   server time (the commit time, which never decreases with the fragment number) by a binary
//!   search over numbers (`select`).
//! - Stored fragments are served as stored; only clips are rewritten (`video::clip`) and images
//!   decoded (`video::image`, one request at a time here).

mod clip;
mod dash;
mod fragments;
mod hls;
mod images;
mod media;
mod select;
mod sessions;
mod tokens;
mod window;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Deserializer};

use super::{KvsError, KvsErrorKind, KvsState, KvsStream};
use crate::video::log::{FragmentLog, VideoLogError};

/// What the archived-media routes share.
pub(crate) struct ArchiveState {
    kvs: Arc<KvsState>,
    sessions: sessions::Sessions,
    /// GetImages requests decoded at once.
    image_slots: tokio::sync::Semaphore,
}

pub(super) fn routes(state: Arc<KvsState>) -> Router {
    let state = Arc::new(ArchiveState {
        kvs: state,
        sessions: sessions::Sessions::new(sessions::MAX_SESSIONS),
        image_slots: tokio::sync::Semaphore::new(1),
    });
    Router::new()
        .route("/listFragments", post(fragments::list_fragments))
        .route("/getClip", post(clip::get_clip))
        .route("/getImages", post(images::get_images))
        .route(
            "/getHLSStreamingSessionURL",
            post(sessions::get_hls_streaming_session_url),
        )
        .route(
            "/getDASHStreamingSessionURL",
            post(sessions::get_dash_streaming_session_url),
        )
        .route(
            "/hls/v1/getHLSMasterPlaylist.m3u8",
            get(hls::master_playlist),
        )
        .route("/hls/v1/getHLSMediaPlaylist.m3u8", get(hls::media_playlist))
        .route("/hls/v1/getMP4InitFragment.mp4", get(media::init_fragment))
        .route(
            "/hls/v1/getMP4MediaFragment.mp4",
            get(media::media_fragment),
        )
        .route("/dash/v1/getDASHManifest.mpd", get(dash::manifest))
        .route("/dash/v1/getMP4InitFragment.mp4", get(media::init_fragment))
        .route(
            "/dash/v1/getMP4MediaFragment.mp4",
            get(media::media_fragment),
        )
        .with_state(state)
}

/// Which of a fragment's timestamps a selector compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    Producer,
    Server,
}

impl Origin {
    /// `PRODUCER_TIMESTAMP` or `SERVER_TIMESTAMP` in member `member`.
    fn parse(member: &str, value: &str) -> Result<Origin, KvsError> {
        match value {
            "PRODUCER_TIMESTAMP" => Ok(Origin::Producer),
            "SERVER_TIMESTAMP" => Ok(Origin::Server),
            other => Err(invalid(format!(
                "{member} `{other}` is not valid: PRODUCER_TIMESTAMP or SERVER_TIMESTAMP"
            ))),
        }
    }

    /// The fragment's timestamp of this origin.
    fn of(self, meta: &crate::video::log::FragmentMeta) -> i64 {
        match self {
            Origin::Producer => meta.producer_ms,
            Origin::Server => meta.server_ms,
        }
    }
}

/// A `{StartTimestamp, EndTimestamp}` member.
#[derive(Debug, Clone, Copy, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct TimestampRange {
    #[serde(default, deserialize_with = "timestamp")]
    start_timestamp: Option<i64>,
    #[serde(default, deserialize_with = "timestamp")]
    end_timestamp: Option<i64>,
}

/// A selector's `FragmentSelectorType` and `TimestampRange`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct Selector {
    fragment_selector_type: Option<String>,
    timestamp_range: Option<TimestampRange>,
}

/// A timestamp as AWS's JSON protocols send it (epoch seconds, fractions allowed), or an RFC
/// 3339 string, in epoch milliseconds.
fn timestamp<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(f64),
        Text(String),
    }
    let ms = match Option::<Raw>::deserialize(deserializer)? {
        None => return Ok(None),
        Some(Raw::Seconds(seconds)) => seconds_to_ms(seconds),
        Some(Raw::Text(text)) => chrono::DateTime::parse_from_rfc3339(&text)
            .map(|t| t.timestamp_millis())
            .ok()
            .or_else(|| text.parse::<f64>().ok().and_then(seconds_to_ms)),
    };
    ms.map(Some)
        .ok_or_else(|| serde::de::Error::custom("a timestamp is not valid"))
}

fn seconds_to_ms(seconds: f64) -> Option<i64> {
    let ms = (seconds * 1000.0).round();
    (ms.is_finite() && ms.abs() < 1e15).then_some(ms as i64)
}

/// Epoch milliseconds as AWS's JSON protocols answer timestamps: epoch seconds.
fn epoch_seconds(ms: i64) -> serde_json::Value {
    serde_json::Number::from_f64(ms as f64 / 1000.0)
        .map(serde_json::Value::Number)
        .unwrap_or(serde_json::Value::Null)
}

/// A required member, or InvalidArgumentException naming it.
fn required<T>(value: Option<T>, member: &str) -> Result<T, KvsError> {
    value.ok_or_else(|| invalid(format!("{member} is required")))
}

fn invalid(message: impl Into<String>) -> KvsError {
    KvsError::new(KvsErrorKind::InvalidArgument, message)
}

fn not_found(message: impl Into<String>) -> KvsError {
    KvsError::new(KvsErrorKind::ResourceNotFound, message)
}

/// A member's number inside `min..=max`, or InvalidArgumentException naming the member.
fn in_range(value: i64, member: &str, min: i64, max: i64) -> Result<i64, KvsError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(invalid(format!(
            "{member} {value} is out of range: it must be between {min} and {max}"
        )))
    }
}

/// Longest time range of a clip or a session (AWS: 24 hours).
const MAX_RANGE_MS: i64 = 24 * 3600 * 1000;

/// A required `[start, end]` range (`member` names it in errors): end after start, at most
/// `max_ms` long.
fn checked_range(
    range: Option<TimestampRange>,
    member: &str,
    max_ms: i64,
) -> Result<(i64, i64), KvsError> {
    let range = required(range, member)?;
    let start = required(range.start_timestamp, &format!("{member}.StartTimestamp"))?;
    let end = required(range.end_timestamp, &format!("{member}.EndTimestamp"))?;
    if end <= start {
        return Err(invalid(format!(
            "{member}.EndTimestamp must be later than {member}.StartTimestamp"
        )));
    }
    if end - start > max_ms {
        return Err(invalid(format!(
            "{member}: EndTimestamp must be within {} hours of StartTimestamp",
            max_ms / 3_600_000
        )));
    }
    Ok((start, end))
}

/// The fragment log, after resolving the request's stream.
fn stream_log(
    state: &ArchiveState,
    name: Option<&str>,
    arn: Option<&str>,
) -> Result<(String, FragmentLog), KvsError> {
    let stream = state.kvs.stream(name, arn)?;
    Ok((stream, state.kvs.video()?.log().clone()))
}

/// As [`stream_log`], for the operations AWS refuses on a stream that retains no data
/// (GetClip, GetImages, the streaming sessions): a stream created with
/// `DataRetentionInHours` 0 is NoDataRetentionException.
fn retained_stream_log(
    state: &ArchiveState,
    name: Option<&str>,
    arn: Option<&str>,
) -> Result<(String, FragmentLog), KvsError> {
    let (stream, log) = stream_log(state, name, arn)?;
    if let Ok(KvsStream::Created(record)) = state.kvs.stream_info(Some(&stream), None) {
        if record.retention_hours == 0 {
            return Err(KvsError::new(
                KvsErrorKind::NoDataRetention,
                format!(
                    "The stream {stream} does not retain data (DataRetentionInHours is 0): \
                     raise it with UpdateDataRetention"
                ),
            ));
        }
    }
    Ok((stream, log))
}

/// Runs blocking work (fragment-log reads, decoding) off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, KvsError> + Send + 'static,
) -> Result<T, KvsError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(KvsError::internal)?
}

fn log_error(error: VideoLogError) -> KvsError {
    KvsError::internal(error)
}

/// Now, in epoch milliseconds.
fn now_ms() -> i64 {
    crate::video::camera::now_ms()
}
