//! PutMedia (`POST /putMedia`): a producer's chunked MKV body, read as it arrives, each
//! Cluster stored as one fragment of the stream, acknowledged on the same connection while
//! the body still flows (BUFFERING when a fragment starts, RECEIVED when it is complete,
//! PERSISTED with its number once the fragment log committed it, ERROR and the end of the
//! request on bad input, IDLE while nothing arrives).
//!
//! Invariants:
//! - PERSISTED is sent only after `FragmentLog::append` returned, i.e. after its commit with
//!   `Durability::Immediate`.
//! - Memory per request is bounded: the demuxer holds at most one element
//!   (`MAX_FRAGMENT_BYTES`), the assembler one fragment (`MAX_FRAGMENT_BYTES`), the
//!   acknowledgements queue `ACK_QUEUE` events; the body is never read whole.
//! - The body has no minimum rate (a 100 kbit/s camera is a legitimate producer), but it
//!   must not pause longer than `IDLE_TIMEOUT`, and one request lasts at most
//!   `MAX_CONNECTION_DURATION` (ERROR 4003, as AWS ends its connections).
//! - One PutMedia per stream at a time, and at most `MAX_PUT_SESSIONS` in all.
//! - An error ends this request only: the stream, its stored fragments and other producers
//!   go on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use http::HeaderMap;
use tokio::sync::mpsc;

use super::ack::{Ack, AckError};
use super::{put_target, PutTarget};
use crate::api::kvs::{KvsError, KvsErrorKind, KvsState};
use crate::api::protocol::Wire;
use crate::video::camera::now_ms;
use crate::video::log::{FragmentLog, NewFragment, StreamStatus};
use crate::video::mkv::remux::{Assembler, FragmentLimits, Output, VideoTrack};
use crate::video::mkv::{Demuxer, Limits};

/// AWS's limit on a fragment's size.
pub const MAX_FRAGMENT_BYTES: usize = 50 << 20;
/// AWS's limit on a fragment's duration (`MAX_FRAGMENT_DURATION`).
pub const MAX_FRAGMENT_DURATION: Duration = Duration::from_secs(10);
/// AWS's tracks per stream.
pub const MAX_TRACKS: usize = 3;
/// The longest pause in a body before the request ends with STREAM_READ_ERROR.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often an IDLE event is sent while nothing arrives.
const IDLE_EVERY: Duration = Duration::from_secs(5);
/// The longest one PutMedia request lasts (ERROR 4003 MAX_CONNECTION_DURATION_REACHED).
pub const MAX_CONNECTION_DURATION: Duration = Duration::from_secs(3600);
/// PutMedia requests served at once.
pub const MAX_PUT_SESSIONS: usize = 16;
/// Acknowledgements waiting for the client to read them.
const ACK_QUEUE: usize = 64;

/// The request's parameters, from its headers.
struct PutHeaders {
    name: Option<String>,
    arn: Option<String>,
    absolute: bool,
    /// `x-amzn-producer-start-timestamp`, epoch ms.
    start_ms: i64,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

fn invalid(message: impl Into<String>) -> KvsError {
    KvsError::new(KvsErrorKind::InvalidArgument, message)
}

fn put_headers(headers: &HeaderMap) -> Result<PutHeaders, KvsError> {
    let absolute = match header(headers, "x-amzn-fragment-timecode-type") {
        Some("ABSOLUTE") => true,
        Some("RELATIVE") => false,
        other => {
            return Err(invalid(format!(
                "x-amzn-fragment-timecode-type must be ABSOLUTE or RELATIVE, not {other:?}"
            )))
        }
    };
    let start = header(headers, "x-amzn-producer-start-timestamp")
        .ok_or_else(|| invalid("x-amzn-producer-start-timestamp is required"))?;
    let seconds: f64 = start
        .parse()
        .ok()
        .filter(|s: &f64| s.is_finite() && *s >= 0.0 && *s < 1e11)
        .ok_or_else(|| {
            invalid(format!(
                "x-amzn-producer-start-timestamp {start:?} is not epoch seconds"
            ))
        })?;
    Ok(PutHeaders {
        name: header(headers, "x-amzn-stream-name").map(str::to_string),
        arn: header(headers, "x-amzn-stream-arn").map(str::to_string),
        absolute,
        start_ms: (seconds * 1000.0).round() as i64,
    })
}

/// `POST /putMedia`.
pub(super) async fn put_media(State(state): State<Arc<KvsState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    // The producer SDK signs the head with the payload hash of an empty body (the body is a
    // stream); `UNSIGNED-PAYLOAD` is accepted too.
    if let Err(error) = state
        .auth
        .precheck(&parts)
        .and_then(|()| state.auth.authorize(&parts, &[]))
    {
        return Wire::Json.error(&error);
    }
    let headers = match put_headers(&parts.headers) {
        Ok(headers) => headers,
        Err(error) => return error.into_response(),
    };
    let target = match put_target(&state, headers.name.as_deref(), headers.arn.as_deref()) {
        Ok(target) => target,
        Err(error) => return error.into_response(),
    };
    let Some(slot) = super::Slot::take(state.clone(), &target.name) else {
        return KvsError::new(
            KvsErrorKind::ConnectionLimitExceeded,
            format!(
                "stream {:?} already has a PutMedia connection, or the gateway serves {MAX_PUT_SESSIONS} already",
                target.name
            ),
        )
        .into_response();
    };
    let (acks, rx) = mpsc::channel::<Bytes>(ACK_QUEUE);
    let session = Session {
        log: match state.video() {
            Ok(video) => video.log().clone(),
            Err(error) => return error.into_response(),
        },
        target,
        absolute: headers.absolute,
        start_ms: headers.start_ms,
        acks,
        init_id: None,
        track: None,
        new_run: true,
    };
    tokio::spawn(async move {
        let _slot = slot;
        session.run(body).await;
    });
    let stream = ack_stream(rx);
    let mut response = Response::new(axum::body::Body::from_stream(stream));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// The answer's body: the acknowledgements as the session queues them; it ends when the
/// session does.
fn ack_stream(
    rx: mpsc::Receiver<Bytes>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>> {
    futures_util::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|b| (Ok(b), rx)) },
    )
}

/// One PutMedia request being served.
struct Session {
    log: FragmentLog,
    target: PutTarget,
    absolute: bool,
    start_ms: i64,
    acks: mpsc::Sender<Bytes>,
    init_id: Option<u64>,
    track: Option<VideoTrack>,
    /// The next fragment starts a new recording run (the first one, or after a new init).
    new_run: bool,
}

/// Why a session ends early.
struct Stop(AckError, Option<u64>);

impl Session {
    async fn send(&self, ack: Ack) -> bool {
        self.acks.send(ack.line()).await.is_ok()
    }

    async fn run(mut self, body: axum::body::Body) {
        let stream = self.target.name.clone();
        match self.read(body).await {
            Ok(()) => tracing::debug!(stream, "PutMedia ended"),
            Err(Stop(error, timecode)) => {
                tracing::info!(stream, error = error.code(), "PutMedia ended with an error");
                self.send(Ack::error(error, timecode)).await;
            }
        }
    }

    async fn read(&mut self, body: axum::body::Body) -> Result<(), Stop> {
        let started = Instant::now();
        let mut demuxer = Demuxer::new(Limits {
            max_element: MAX_FRAGMENT_BYTES as u64,
            max_tracks: MAX_TRACKS,
        });
        let mut assembler = Assembler::new(FragmentLimits {
            max_bytes: MAX_FRAGMENT_BYTES,
            max_duration_ns: MAX_FRAGMENT_DURATION.as_nanos() as i64,
        });
        let mut body = body.into_data_stream();
        let mut events = Vec::new();
        let mut timecode = None;
        let mut last_data = Instant::now();
        loop {
            if started.elapsed() >= MAX_CONNECTION_DURATION {
                return Err(Stop(AckError::MaxConnectionDurationReached, timecode));
            }
            let next = tokio::time::timeout(IDLE_EVERY, body.next()).await;
            let chunk = match next {
                Err(_) => {
                    if last_data.elapsed() >= IDLE_TIMEOUT {
                        return Err(Stop(AckError::StreamReadError, timecode));
                    }
                    if !self.send(Ack::idle()).await {
                        return Ok(());
                    }
                    continue;
                }
                Ok(None) => None,
                Ok(Some(Ok(chunk))) => Some(chunk),
                Ok(Some(Err(error))) => {
                    tracing::debug!(stream = self.target.name, %error, "PutMedia body ended");
                    return Err(Stop(AckError::StreamReadError, timecode));
                }
            };
            last_data = Instant::now();
            let parsed = match &chunk {
                Some(chunk) => demuxer.push(chunk, &mut events),
                None => demuxer.finish(&mut events),
            };
            // Events before a bad byte still count.
            for event in events.drain(..) {
                let output = assembler.event(event).map_err(|e| stop(&e, timecode))?;
                if let Some(output) = output {
                    self.output(output, &mut timecode).await?;
                }
            }
            parsed.map_err(|e| stop(&e.into(), timecode))?;
            if chunk.is_none() {
                return Ok(());
            }
        }
    }

    async fn output(&mut self, output: Output, timecode: &mut Option<u64>) -> Result<(), Stop> {
        match output {
            Output::Track(track) => {
                let (log, name, init) = (
                    self.log.clone(),
                    self.target.name.clone(),
                    track.init.clone(),
                );
                let id = blocking(move || log.put_init(&name, &init))
                    .await
                    .map_err(|()| Stop(AckError::InternalError, *timecode))?;
                if self.init_id != Some(id) {
                    self.new_run = true;
                }
                self.init_id = Some(id);
                self.track = Some(track);
            }
            Output::Buffering { timecode: t } => {
                *timecode = Some(t);
                self.send(Ack::buffering(t)).await;
            }
            Output::Fragment(fragment) => {
                self.send(Ack::received(fragment.timecode)).await;
                let (Some(init_id), Some(track)) = (self.init_id, self.track.as_ref()) else {
                    return Err(Stop(AckError::InvalidMkvData, *timecode));
                };
                // A stream deleted (or being deleted) meanwhile takes no more fragments.
                let active = self
                    .log
                    .stream_record(&self.target.name)
                    .is_some_and(|r| r.status == StreamStatus::Active);
                if !active {
                    return Err(Stop(AckError::StreamNotActive, Some(fragment.timecode)));
                }
                let producer_ms = fragment.timecode_ns.div_euclid(1_000_000)
                    + if self.absolute { 0 } else { self.start_ms };
                let new = NewFragment {
                    producer_ms,
                    duration_ms: fragment.duration_ms,
                    keyframe: true,
                    discontinuity: self.new_run,
                    codec: track.codec.name().to_string(),
                    width: track.width,
                    height: track.height,
                    init_id,
                    data: fragment.data,
                };
                let (log, target) = (self.log.clone(), self.target.clone());
                let outcome =
                    blocking(move || log.append(&target.name, new, &target.policy, now_ms()))
                        .await
                        .map_err(|()| Stop(AckError::InternalError, *timecode))?;
                self.new_run = false;
                // Only now, committed: PERSISTED.
                self.send(Ack::persisted(fragment.timecode, outcome.meta.number))
                    .await;
            }
        }
        Ok(())
    }
}

fn stop(error: &crate::video::mkv::remux::RemuxError, timecode: Option<u64>) -> Stop {
    tracing::debug!(%error, "PutMedia input refused");
    Stop(AckError::from(error), timecode)
}

async fn blocking<T: Send + 'static, E: std::fmt::Display + Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ()> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => {
            tracing::error!(%error, "PutMedia cannot store");
            Err(())
        }
        Err(error) => {
            tracing::error!(%error, "PutMedia's store task failed");
            Err(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, http::HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn the_producer_sdks_headers_are_read() {
        let h = put_headers(&headers(&[
            ("x-amzn-stream-name", "door"),
            ("x-amzn-fragment-timecode-type", "RELATIVE"),
            ("x-amzn-producer-start-timestamp", "1700000000.123"),
        ]))
        .unwrap();
        assert_eq!(h.name.as_deref(), Some("door"));
        assert!(!h.absolute);
        assert_eq!(h.start_ms, 1_700_000_000_123);
    }

    #[test]
    fn bad_headers_are_invalid_arguments() {
        for bad in [
            &[
                ("x-amzn-fragment-timecode-type", "SOMETIMES"),
                ("x-amzn-producer-start-timestamp", "1"),
            ][..],
            &[("x-amzn-fragment-timecode-type", "ABSOLUTE")][..],
            &[
                ("x-amzn-fragment-timecode-type", "ABSOLUTE"),
                ("x-amzn-producer-start-timestamp", "yesterday"),
            ][..],
            &[
                ("x-amzn-fragment-timecode-type", "ABSOLUTE"),
                ("x-amzn-producer-start-timestamp", "-5"),
            ][..],
        ] {
            let error = put_headers(&headers(bad)).err().expect("refused");
            assert_eq!(error.kind, KvsErrorKind::InvalidArgument, "{bad:?}");
        }
    }
}
