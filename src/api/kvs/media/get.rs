//! GetMedia (`POST /getMedia`, kinesis-video-media) and GetMediaForFragmentList (`POST
//! /getMediaForFragmentList`, kinesis-video-archived-media): stored fragments sent back as
//! MKV (`video/webm`), one MKV document per fragment with AWS's tags (fragment number,
//! server and producer timestamps; GetMedia adds MILLIS_BEHIND_NOW and the
//! CONTINUATION_TOKEN to resume from).
//!
//! Invariants: one fragment is in memory at a time (read, remuxed, sent, dropped); GetMedia
//! follows new fragments as they are committed (woken by the log after each append, and
//! every `POLL_EVERY` to notice a deleted stream) and ends after `MAX_GET_DURATION`; at most `MAX_GET_SESSIONS` GetMedia
//! requests run at once; a client that stops reading is cut by the server's send timeout,
//! which drops the stream and ends the request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use tokio::sync::OwnedSemaphorePermit;

use crate::api::kvs::{decode, signed_body, KvsError, KvsErrorKind, KvsState};
use crate::video::camera::now_ms;
use crate::video::log::{FragmentLog, FragmentMeta, StreamStatus};
use crate::video::mkv::mux::{fragment_document, FragmentTags, MkvFrame, MkvTrack};
use crate::video::mkv::{CODEC_H264, CODEC_H265};
use crate::video::mp4::{self, write::VideoCodec, TrexDefaults};
use crate::video::VideoService;

/// How often a live GetMedia with nothing new checks that its stream still exists.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// The longest one GetMedia request streams.
pub const MAX_GET_DURATION: Duration = Duration::from_secs(3600);
/// GetMedia requests served at once.
pub const MAX_GET_SESSIONS: usize = 16;
/// Fragments read from the log at once.
const BATCH: usize = 4;
/// GetMediaForFragmentList's most fragments (AWS's limit).
const MAX_LIST: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetMediaInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    start_selector: StartSelector,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StartSelector {
    start_selector_type: String,
    after_fragment_number: Option<String>,
    start_timestamp: Option<f64>,
    continuation_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    fragments: Vec<String>,
}

fn invalid(message: impl Into<String>) -> KvsError {
    KvsError::new(KvsErrorKind::InvalidArgument, message)
}

fn fragment_number(value: Option<&str>, what: &str) -> Result<u64, KvsError> {
    value
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| invalid(format!("{what} must be a fragment number")))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::video::log::VideoLogError> + Send + 'static,
) -> Result<T, KvsError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(KvsError::internal)?
        .map_err(KvsError::internal)
}

/// The number after which a GetMedia starts.
fn start_after(log: &FragmentLog, name: &str, selector: &StartSelector) -> Result<u64, KvsError> {
    let read = |e| KvsError::internal(e);
    let timestamp_ms = || {
        selector
            .start_timestamp
            .filter(|t| t.is_finite())
            .map(|t| (t * 1000.0).round() as i64)
            .ok_or_else(|| invalid("StartTimestamp is required for this StartSelectorType"))
    };
    match selector.start_selector_type.as_str() {
        "NOW" => Ok(log.latest(name, 1).map_err(read)?.first().map_or(0, |m| m.number)),
        "EARLIEST" => Ok(log
            .usage(name)
            .map_err(read)?
            .first
            .map_or(0, |m| m.number.saturating_sub(1))),
        "FRAGMENT_NUMBER" => fragment_number(
            selector.after_fragment_number.as_deref(),
            "AfterFragmentNumber",
        ),
        "CONTINUATION_TOKEN" => fragment_number(
            selector.continuation_token.as_deref(),
            "ContinuationToken",
        ),
        "PRODUCER_TIMESTAMP" => {
            let at = timestamp_ms()?;
            let found = log.fragments(name, at, i64::MAX, 1).map_err(read)?;
            Ok(match found.first() {
                Some(m) => m.number.saturating_sub(1),
                None => log.latest(name, 1).map_err(read)?.first().map_or(0, |m| m.number),
            })
        }
        "SERVER_TIMESTAMP" => {
            let at = timestamp_ms()?;
            let mut after = 0;
            loop {
                let batch = log.fragments_after(name, after, 500).map_err(read)?;
                let Some(last) = batch.last() else {
                    return Ok(after);
                };
                if let Some(m) = batch.iter().find(|m| m.server_ms + i64::from(m.duration_ms) > at) {
                    return Ok(m.number.saturating_sub(1));
                }
                after = last.number;
            }
        }
        other => Err(invalid(format!("StartSelectorType {other:?} is not one of NOW, EARLIEST, FRAGMENT_NUMBER, PRODUCER_TIMESTAMP, SERVER_TIMESTAMP, CONTINUATION_TOKEN"))),
    }
}

/// What the documents of fragments with one init segment share.
struct InitTrack {
    id: u64,
    track: MkvTrack,
    timescale: u32,
    trex: TrexDefaults,
}

fn init_track(id: u64, init: &[u8]) -> Result<InitTrack, mp4::Mp4Error> {
    let (codec, config) = mp4::video_config(init)?;
    let info = mp4::init_info(init)?;
    Ok(InitTrack {
        id,
        track: MkvTrack {
            codec_id: match codec {
                VideoCodec::H264 => CODEC_H264,
                VideoCodec::H265 => CODEC_H265,
            }
            .to_string(),
            codec_private: config,
            width: info.width,
            height: info.height,
        },
        timescale: info.timescale,
        trex: mp4::trex_defaults(init)?,
    })
}

/// The MKV document of one stored fragment (`cache`: the last init segment's track).
fn document(
    log: &FragmentLog,
    name: &str,
    meta: &FragmentMeta,
    cache: &mut Option<InitTrack>,
    live: bool,
) -> Result<Option<Vec<u8>>, KvsError> {
    let Some(data) = log.read(name, meta.number).map_err(KvsError::internal)? else {
        return Ok(None); // deleted by retention meanwhile
    };
    if cache.as_ref().map(|c| c.id) != Some(meta.init_id) {
        let init = log
            .init_segment(name, meta.init_id)
            .map_err(KvsError::internal)?
            .ok_or_else(|| {
                KvsError::internal(format!("fragment {} has no init segment", meta.number))
            })?;
        *cache = Some(init_track(meta.init_id, &init).map_err(KvsError::internal)?);
    }
    let Some(init) = cache.as_ref() else {
        return Ok(None);
    };
    let samples = mp4::fragment_samples(&data, init.trex).map_err(KvsError::internal)?;
    let base = samples.first().map_or(0, |s| s.decode_time);
    let scale = i64::from(init.timescale.max(1));
    let frames: Vec<MkvFrame<'_>> = samples
        .iter()
        .map(|s| {
            let ticks = (s.decode_time - base) as i64 + s.composition_offset;
            MkvFrame {
                pts_ms: meta.producer_ms + ticks * 1000 / scale,
                keyframe: s.sync,
                data: &data[s.range.clone()],
            }
        })
        .collect();
    let tags = FragmentTags {
        fragment_number: meta.number.to_string(),
        server_ms: meta.server_ms,
        producer_ms: meta.producer_ms,
        millis_behind_now: live.then(|| (now_ms() - meta.server_ms).max(0)),
        continuation_token: live.then(|| meta.number.to_string()),
    };
    Ok(Some(fragment_document(&init.track, &frames, &tags)))
}

fn webm(body: axum::body::Body) -> Response {
    let mut response = Response::new(body);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("video/webm"),
    );
    response
}

/// A live GetMedia's state between two documents.
struct Live {
    video: VideoService,
    log: FragmentLog,
    name: String,
    after: u64,
    pending: std::collections::VecDeque<FragmentMeta>,
    cache: Option<InitTrack>,
    started: Instant,
    /// Changes after every append to the log.
    appends: tokio::sync::watch::Receiver<u64>,
    _permit: OwnedSemaphorePermit,
}

impl Live {
    /// The next document, waiting for it; None when the request is over.
    async fn next(mut self) -> Option<(Result<Bytes, KvsError>, Live)> {
        loop {
            if self.started.elapsed() >= MAX_GET_DURATION {
                return None;
            }
            if let Some(meta) = self.pending.pop_front() {
                self.after = meta.number;
                let (log, name, mut cache) =
                    (self.log.clone(), self.name.clone(), self.cache.take());
                let result = tokio::task::spawn_blocking(move || {
                    let doc = document(&log, &name, &meta, &mut cache, true);
                    (doc, cache)
                })
                .await;
                match result {
                    Ok((Ok(Some(doc)), cache)) => {
                        self.cache = cache;
                        return Some((Ok(Bytes::from(doc)), self));
                    }
                    Ok((Ok(None), cache)) => {
                        self.cache = cache;
                        continue;
                    }
                    Ok((Err(error), _)) => return Some((Err(error), self)),
                    Err(error) => return Some((Err(KvsError::internal(error)), self)),
                }
            }
            // Seen before reading: an append after this read wakes the wait below.
            self.appends.borrow_and_update();
            let (log, name, after) = (self.log.clone(), self.name.clone(), self.after);
            match blocking(move || log.fragments_after(&name, after, BATCH)).await {
                Ok(batch) if batch.is_empty() => {
                    // A stream deleted meanwhile has nothing more to follow.
                    let exists = self.video.camera(&self.name).is_some()
                        || self
                            .log
                            .stream_record(&self.name)
                            .is_some_and(|r| r.status == StreamStatus::Active);
                    if !exists {
                        return None;
                    }
                    let _ = tokio::time::timeout(POLL_EVERY, self.appends.changed()).await;
                }
                Ok(batch) => self.pending.extend(batch),
                Err(error) => return Some((Err(error), self)),
            }
        }
    }
}

/// `POST /getMedia`.
pub(super) async fn get_media(State(state): State<Arc<KvsState>>, request: Request) -> Response {
    match start_get_media(state, request).await {
        Ok(response) => response,
        Err(response) => response,
    }
}

async fn start_get_media(state: Arc<KvsState>, request: Request) -> Result<Response, Response> {
    let bytes = signed_body(&state, request).await?;
    let input: GetMediaInput = decode(&bytes).map_err(IntoResponse::into_response)?;
    let name = state
        .stream(input.stream_name.as_deref(), input.stream_arn.as_deref())
        .map_err(IntoResponse::into_response)?;
    let video = state.video().map_err(IntoResponse::into_response)?.clone();
    let log = video.log().clone();
    let permit = super::get_sessions(&state)
        .try_acquire_owned()
        .map_err(|_| {
            KvsError::new(
                KvsErrorKind::ConnectionLimitExceeded,
                format!("the gateway serves {MAX_GET_SESSIONS} GetMedia connections already"),
            )
            .into_response()
        })?;
    let selector = input.start_selector;
    let after = {
        let (log, name) = (log.clone(), name.clone());
        tokio::task::spawn_blocking(move || start_after(&log, &name, &selector))
            .await
            .map_err(|e| KvsError::internal(e).into_response())?
            .map_err(IntoResponse::into_response)?
    };
    let live = Live {
        video,
        appends: log.appends(),
        log,
        name,
        after,
        pending: Default::default(),
        cache: None,
        started: Instant::now(),
        _permit: permit,
    };
    let stream = futures_util::stream::unfold(live, Live::next);
    Ok(webm(axum::body::Body::from_stream(stream)))
}

/// `POST /getMediaForFragmentList`.
pub(super) async fn get_media_for_fragment_list(
    State(state): State<Arc<KvsState>>,
    request: Request,
) -> Response {
    match start_list(state, request).await {
        Ok(response) => response,
        Err(response) => response,
    }
}

async fn start_list(state: Arc<KvsState>, request: Request) -> Result<Response, Response> {
    let bytes = signed_body(&state, request).await?;
    let input: ListInput = decode(&bytes).map_err(IntoResponse::into_response)?;
    let name = state
        .stream(input.stream_name.as_deref(), input.stream_arn.as_deref())
        .map_err(IntoResponse::into_response)?;
    if input.fragments.is_empty() || input.fragments.len() > MAX_LIST {
        return Err(invalid(format!(
            "Fragments must list 1 to {MAX_LIST} fragment numbers"
        ))
        .into_response());
    }
    let numbers = input
        .fragments
        .iter()
        .map(|f| fragment_number(Some(f), "Fragments"))
        .collect::<Result<Vec<u64>, _>>()
        .map_err(IntoResponse::into_response)?;
    let log = state
        .video()
        .map_err(IntoResponse::into_response)?
        .log()
        .clone();
    let metas = {
        let (log, name) = (log.clone(), name.clone());
        blocking(move || {
            numbers
                .iter()
                .map(|n| log.fragment(&name, *n))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(IntoResponse::into_response)?
    };
    let mut found = Vec::with_capacity(metas.len());
    for (meta, number) in metas.into_iter().zip(&input.fragments) {
        found.push(meta.ok_or_else(|| {
            KvsError::new(
                KvsErrorKind::ResourceNotFound,
                format!("fragment {number} of stream {name:?} does not exist"),
            )
            .into_response()
        })?);
    }
    let state = (log, name, found.into_iter(), None::<InitTrack>);
    let stream = futures_util::stream::unfold(state, |(log, name, mut metas, cache)| async move {
        let meta = metas.next()?;
        let (l, n) = (log.clone(), name.clone());
        let mut cache_in = cache;
        let joined = tokio::task::spawn_blocking(move || {
            let doc = document(&l, &n, &meta, &mut cache_in, false);
            (doc, cache_in)
        })
        .await;
        // A fragment deleted by retention since it was looked up is left out.
        let (item, cache) = match joined {
            Ok((Ok(doc), cache)) => (
                Ok::<_, KvsError>(Bytes::from(doc.unwrap_or_default())),
                cache,
            ),
            Ok((Err(error), cache)) => (Err(error), cache),
            Err(error) => (Err(KvsError::internal(error)), None),
        };
        Some((item, (log, name, metas, cache)))
    });
    Ok(webm(axum::body::Body::from_stream(stream)))
}
