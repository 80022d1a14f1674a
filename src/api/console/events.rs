//! `GET /console/api/events`: the console's one live connection per page, a Server-Sent
//! Events stream of status snapshots (what `/status` answers, with the ingest rates computed
//! here from the store's counters, each stream's rate from its record count,
//! `storage.min_free_disk` and the recent log warnings), one every [`PERIOD`].
//!
//! Bounded: at most [`super::MAX_EVENT_CLIENTS`] streams at once (a permit is held for the
//! stream's life); a stream ends when the gateway begins to stop, so that a graceful stop
//! never waits on a browser.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, Stream};
use http::StatusCode;
use tokio::sync::OwnedSemaphorePermit;

use super::super::auth::Signed;
use super::super::ops::status_json;
use super::ConsoleState;

/// Time between two snapshots.
pub const PERIOD: Duration = Duration::from_secs(2);

/// One stream's state: its permit, and the counters of its last snapshot.
struct Feed {
    state: Arc<ConsoleState>,
    _permit: OwnedSemaphorePermit,
    last: Option<(Instant, u64, u64)>,
    /// Each stream's records and bytes at the last snapshot.
    streams: HashMap<String, (u64, u64)>,
    first: bool,
}

pub(super) async fn stream(State(state): State<Arc<ConsoleState>>, _signed: Signed) -> Response {
    let Ok(permit) = state.event_clients.clone().try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"message": "too many console pages are open"})),
        )
            .into_response();
    };
    let feed = Feed {
        state,
        _permit: permit,
        last: None,
        streams: HashMap::new(),
        first: true,
    };
    Sse::new(events(feed))
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn events(feed: Feed) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(feed, |mut feed| async move {
        if !feed.first {
            tokio::time::sleep(PERIOD).await;
        }
        feed.first = false;
        if feed.state.ops.stopping.load(Ordering::Relaxed) {
            return None;
        }
        let snapshot = snapshot(&mut feed).await;
        let event = Event::default()
            .event("status")
            .json_data(snapshot)
            .unwrap_or_else(|_| Event::default().comment("unencodable snapshot"));
        Some((Ok(event), feed))
    })
}

/// Log warnings a snapshot carries at most (the newest).
const SNAPSHOT_WARNINGS: usize = 20;

fn recent_warnings() -> Vec<super::warnings::Warning> {
    let mut all = super::warnings::recent();
    all.drain(..all.len().saturating_sub(SNAPSHOT_WARNINGS));
    all
}

/// The status with the rates since the last snapshot of this stream.
async fn snapshot(feed: &mut Feed) -> serde_json::Value {
    let ops = &feed.state.ops;
    let status = status_json(ops).await;
    let stats = ops.store.stats();
    let now = Instant::now();
    let (rates, stream_rates) = match feed.last {
        Some((then, records, bytes)) => {
            let seconds = now.duration_since(then).as_secs_f64().max(0.001);
            let rate = |now: u64, then: u64| now.saturating_sub(then) as f64 / seconds;
            let mut per_stream = serde_json::Map::new();
            for s in status["streams"].as_array().into_iter().flatten() {
                let (Some(name), Some(records), Some(bytes)) = (
                    s["name"].as_str(),
                    s["records"].as_u64(),
                    s["bytes"].as_u64(),
                ) else {
                    continue;
                };
                if let Some(&(r, b)) = feed.streams.get(name) {
                    per_stream.insert(
                        name.to_string(),
                        serde_json::json!({"records_per_s": rate(records, r), "bytes_per_s": rate(bytes, b)}),
                    );
                }
            }
            (
                serde_json::json!({
                    "records_per_s": rate(stats.records, records),
                    "bytes_per_s": rate(stats.record_bytes, bytes),
                }),
                per_stream,
            )
        }
        None => (
            serde_json::json!({"records_per_s": null, "bytes_per_s": null}),
            serde_json::Map::new(),
        ),
    };
    feed.last = Some((now, stats.records, stats.record_bytes));
    feed.streams = status["streams"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| {
            Some((
                s["name"].as_str()?.to_string(),
                (s["records"].as_u64()?, s["bytes"].as_u64()?),
            ))
        })
        .collect();
    serde_json::json!({
        "time_ms": chrono::Utc::now().timestamp_millis(),
        "open": feed.state.auth.verifier.is_none(),
        "min_free_disk": feed.state.min_free_disk,
        "rates": rates,
        "stream_rates": stream_rates,
        "warnings": recent_warnings(),
        "status": status,
    })
}
