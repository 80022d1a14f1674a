//! The operations router: `/health` and `/ready` (open, for probes), `/status`, `/metrics`
//! and `/deliveries` (signed like the API when credentials are configured; `/metrics` open
//! with `api.open_metrics`).
//!
//! `/metrics` renders the reporters the gateway registered (`metrics::render`); `/status` and
//! `/ready` read the parts' public status, never their internals.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::StatusCode;

use super::auth::{Auth, HasAuth, Signed};
use super::protocol::Wire;
use crate::analytics::AnalyticsService;
use crate::delivery::DeliveryService;
use crate::ingest::mqtt::MqttShared;
use crate::metrics::Reporters;
use crate::storage::Store;

/// What the operations routes read.
pub struct OpsState {
    pub auth: Arc<Auth>,
    pub store: Store,
    /// The MQTT listener's state, when it runs.
    pub mqtt: Option<Arc<MqttShared>>,
    pub deliveries: Option<DeliveryService>,
    /// Cameras and their fragment log, when video runs.
    #[cfg(feature = "video")]
    pub video: Option<crate::video::VideoService>,
    /// The analytics applications, when they run.
    pub analytics: Option<AnalyticsService>,
    /// What `/metrics` renders, in order.
    pub reporters: Reporters,
    /// Set when a stop begins: `/ready` answers 503 from then on.
    pub stopping: Arc<AtomicBool>,
    /// When the gateway started serving.
    pub started: std::time::Instant,
    /// `api.open_metrics`: `/metrics` without a signature.
    pub open_metrics: bool,
    /// The scaler of ON_DEMAND streams, when it runs.
    pub on_demand: Option<crate::ondemand::OnDemandScaler>,
}

impl HasAuth for OpsState {
    fn auth(&self) -> &Auth {
        &self.auth
    }
}

/// The operations routes.
pub fn routes(state: Arc<OpsState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/deliveries", get(deliveries))
        .with_state(state)
}

async fn health() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

/// How long `/ready` waits for the stream writer to answer.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// What is not ready, if anything: stopping, a stream writer that does not answer, an MQTT
/// listener that stopped accepting. The API is up (it answers this).
async fn not_ready(state: &OpsState) -> Vec<String> {
    let mut problems = Vec::new();
    if state.stopping.load(Ordering::Relaxed) {
        problems.push("stopping".to_string());
    }
    match tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => problems.push(format!("storage: {error}")),
        Err(_) => problems.push(format!(
            "storage: the stream writer did not answer within {} s",
            READY_TIMEOUT.as_secs()
        )),
    }
    if let Some(mqtt) = &state.mqtt {
        if !mqtt.is_accepting() {
            problems.push("mqtt: the listener does not accept connections".to_string());
        }
    }
    problems
}

/// `GET /ready`: 200 when storage, the MQTT broker and the API are up; 503 with the reasons
/// otherwise (also while stopping, so that a load balancer stops sending).
async fn ready(State(state): State<Arc<OpsState>>) -> Response {
    let problems = not_ready(&state).await;
    if problems.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", problems.join("; ")),
        )
            .into_response()
    }
}

/// `GET /metrics`: Prometheus text format. Like `/status`, it needs a signed request when
/// `api.credentials` are configured, unless `api.open_metrics` is set.
async fn metrics(State(state): State<Arc<OpsState>>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    if !state.open_metrics {
        if let Err(error) = state.auth.authorize(&parts, &[]) {
            return Wire::Json.error(&error);
        }
    }
    let ready = not_ready(&state).await.is_empty();
    let rendered =
        tokio::task::spawn_blocking(move || crate::metrics::render(ready, &state.reporters)).await;
    match rendered {
        Ok(Ok(text)) => (
            [(http::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
            text,
        )
            .into_response(),
        Ok(Err(error)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the metrics: {error}\n"),
        )
            .into_response(),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("metrics task failed: {error}\n"),
        )
            .into_response(),
    }
}

#[derive(serde::Serialize)]
struct StatusStream {
    name: String,
    open_shards: u32,
    shards: usize,
    records: u64,
    bytes: u64,
    retention_hours: u32,
    max_bytes: Option<u64>,
}

/// Every stream's sizes, internal streams left out.
fn stream_status(store: &Store) -> Vec<StatusStream> {
    let catalog = store.catalog();
    catalog
        .streams
        .values()
        .filter(|s| !crate::streams::validate::is_internal_stream(&s.name))
        .map(|s| StatusStream {
            name: s.name.clone(),
            open_shards: s.open_shard_count(),
            shards: s.shards.len(),
            records: s
                .shards
                .iter()
                .filter_map(|sh| catalog.live(sh.uid))
                .map(|l| l.records())
                .sum(),
            bytes: catalog.stream_bytes(s),
            retention_hours: s.retention_hours,
            max_bytes: s.max_bytes,
        })
        .collect()
}

/// `/status` names streams and sizes: with credentials configured it needs a signed request
/// like the API (e.g. `curl --aws-sigv4 "aws:amz:us-east-1:kinesis" --user KEY:SECRET`);
/// `/health` and `/ready` stay open for probes.
async fn status(State(state): State<Arc<OpsState>>, _signed: Signed) -> Response {
    Json(status_json(&state).await).into_response()
}

/// What `/status` answers (also the console's live snapshot).
pub async fn status_json(state: &OpsState) -> serde_json::Value {
    let cameras = camera_status(state).await;
    let not_ready = not_ready(state).await;
    let streams = stream_status(&state.store);
    let store = &state.store;
    let data_dir = store.data_dir();
    let process = crate::metrics::ProcessStats::read();
    serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "ready": not_ready.is_empty(),
        "not_ready": not_ready,
        "uptime_s": state.started.elapsed().as_secs(),
        "memory_bytes": process.resident_memory_bytes,
        "data_dir": data_dir,
        "storage_file_bytes": std::fs::metadata(data_dir.join(crate::storage::STREAMS_DB)).map(|m| m.len()).ok(),
        "disk_free_bytes": crate::storage::disk::free_bytes(data_dir).ok(),
        "streams": streams,
        "writer": store.stats(),
        "writes_suspended": store.writes_suspended().map(|f| serde_json::json!({"kind": f.kind, "error": f.to_string()})),
        "storage_writes_per_day_bytes": writes_per_day(store.stats().bytes_written, state.started.elapsed()),
        "mqtt": state.mqtt.as_ref().map(|m| m.status()),
        "delivery_streams": state.deliveries.as_ref().map(|d| d.status()).unwrap_or_default(),
        "cameras": cameras,
        "analytics": state.analytics.as_ref().map(AnalyticsService::list).unwrap_or_default(),
        "on_demand": state.on_demand.as_ref().map(|s| s.status()),
    })
}

/// Bytes written into the stream database per day at the rate since start: what the SD card
/// is asked to write (compare with its endurance, e.g. TBW / 365 / years).
fn writes_per_day(bytes_written: u64, uptime: std::time::Duration) -> u64 {
    let seconds = uptime.as_secs_f64().max(1.0);
    (bytes_written as f64 / seconds * 86_400.0) as u64
}

/// Every camera's status (empty without video).
async fn camera_status(state: &OpsState) -> serde_json::Value {
    #[cfg(feature = "video")]
    if let Some(video) = state.video.clone() {
        return tokio::task::spawn_blocking(move || serde_json::json!(video.status()))
            .await
            .unwrap_or_default();
    }
    let _ = state;
    serde_json::json!([])
}

/// `GET /deliveries`: per delivery stream state, backlog, checkpoints, last error, losses.
async fn deliveries(State(state): State<Arc<OpsState>>, _signed: Signed) -> Response {
    let list = state
        .deliveries
        .as_ref()
        .map(|d| d.status())
        .unwrap_or_default();
    Json(serde_json::json!({ "delivery_streams": list })).into_response()
}

#[cfg(test)]
mod tests;
