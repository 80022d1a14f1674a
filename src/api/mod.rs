//! The HTTP API (axum): the Kinesis-compatible API on `POST /`, plus health, readiness,
//! status and metrics, served by `server` (HTTP/1.1 and HTTP/2, TLS, timeouts, connection
//! limit) with CORS (`cors`) when configured.
//!
//! Every answer carries an `x-amzn-RequestId`. When `api.credentials` are configured, every
//! API request must carry a valid SigV4 signature; without them any signature is accepted,
//! which is why the default listener is loopback only. A request body is read only after
//! its signature header passed the checks a head allows (`SigV4Verifier::precheck`), into
//! memory taken from the body budget as it arrives (`body`).

pub mod body;
mod byte_ranges;
pub mod config;
pub mod cors;
pub mod error;
pub mod firehose;
pub mod kinesis;
pub mod protocol;
pub mod server;
pub mod sigv4;
pub mod tls;
#[cfg(feature = "video")]
pub mod video;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::{HeaderValue, StatusCode};
use tokio::net::TcpListener;

use crate::storage::Store;
use error::{ApiError, ErrorKind};
use protocol::Wire;
use sigv4::SigV4Verifier;

/// Largest request body read: a full PutRecords (5 MiB of data) in base64 JSON with keys.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// What every request handler shares.
pub struct ApiState {
    pub store: Store,
    pub verifier: Option<SigV4Verifier>,
    pub region: String,
    pub account_id: String,
    /// How long shard iterators stay valid (5 minutes, as in Kinesis).
    pub iterator_ttl_ms: u64,
    /// GetRecords calls served at once. A call can hold up to 10 MiB of records plus its
    /// encoded answer, so this bounds the memory reads take.
    pub read_slots: tokio::sync::Semaphore,
    /// Room for request bodies in KiB (see [`BODY_BUDGET_KIB`]).
    pub body_budget: tokio::sync::Semaphore,
    /// The MQTT listener's state, for `/status`, when it runs.
    pub mqtt: Option<Arc<crate::ingest::mqtt::MqttShared>>,
    pub deliveries: Option<crate::delivery::DeliveryService>,
    /// Cameras and their fragment log, when video runs.
    #[cfg(feature = "video")]
    pub video: Option<crate::video::VideoService>,
    /// Image requests decoded at once (decoding is the heaviest thing video does here).
    #[cfg(feature = "video")]
    pub image_slots: tokio::sync::Semaphore,
    /// API requests and errors, for `/metrics`.
    pub counters: crate::metrics::ApiCounters,
    /// Set when a stop begins: `/ready` answers 503 from then on.
    pub stopping: std::sync::atomic::AtomicBool,
    /// When the gateway started serving.
    pub started: std::time::Instant,
    /// `api.open_metrics`: `/metrics` without a signature.
    pub open_metrics: bool,
}

impl ApiState {
    pub fn new(
        store: Store,
        verifier: Option<SigV4Verifier>,
        region: String,
        account_id: String,
        iterator_ttl_ms: u64,
    ) -> ApiState {
        ApiState {
            store,
            verifier,
            region,
            account_id,
            iterator_ttl_ms,
            read_slots: tokio::sync::Semaphore::new(READ_SLOTS),
            body_budget: tokio::sync::Semaphore::new(BODY_BUDGET_KIB),
            mqtt: None,
            deliveries: None,
            #[cfg(feature = "video")]
            video: None,
            #[cfg(feature = "video")]
            image_slots: tokio::sync::Semaphore::new(1),
            counters: Default::default(),
            stopping: Default::default(),
            started: std::time::Instant::now(),
            open_metrics: false,
        }
    }
}

/// How many GetRecords calls are served at once by default.
pub const READ_SLOTS: usize = 2;

/// Request bodies held in memory at once, in KiB: requests beyond it wait for room
/// (backpressure) instead of growing memory with the number of producers.
pub const BODY_BUDGET_KIB: usize = 32 * 1024;

/// The API's routes.
pub fn router(state: Arc<ApiState>) -> Router {
    let router = Router::new()
        .route("/", post(handle_api))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/deliveries", get(deliveries));
    #[cfg(feature = "video")]
    let router = router.merge(video::routes());
    router.with_state(state)
}

/// The routes with what every answer gets: a request id, and CORS headers for the origins
/// in `cors_origins` (none: no CORS).
pub fn app(state: Arc<ApiState>, cors_origins: &[String]) -> Router {
    router(state)
        .layer(tower::util::option_layer(cors::layer(cors_origins)))
        .layer(axum::middleware::from_fn(front))
}

/// The request id of one request (`x-amzn-RequestId`), set by [`front`] for the handlers.
#[derive(Clone)]
pub struct RequestId(pub String);

/// Gives every request an id, answered in `x-amzn-RequestId` on every answer (errors,
/// preflights and 404s included), and keeps a preflight's requested headers to those CORS
/// grants.
async fn front(mut request: Request, next: Next) -> Response {
    let id = request_id();
    if request.method() == http::Method::OPTIONS {
        cors::filter_requested_headers(request.headers_mut());
    }
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(request).await;
    if !response.headers().contains_key(REQUEST_ID_HEADER) {
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
    }
    response
}

const REQUEST_ID_HEADER: &str = "x-amzn-requestid";

/// Serves the API on `listener` until `shutdown` resolves; in-flight requests finish first.
pub async fn serve(
    listener: TcpListener,
    state: Arc<ApiState>,
    cors_origins: &[String],
    options: server::ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    server::serve(listener, app(state, cors_origins), options, shutdown).await
}

/// With `api.credentials` configured, a request must carry a valid SigV4 signature; the
/// signing access key id is returned (`None` without credentials).
fn authorize(
    state: &ApiState,
    parts: &http::request::Parts,
    body: &[u8],
) -> Result<Option<String>, ApiError> {
    match &state.verifier {
        Some(verifier) => verifier
            .verify(parts, body, SystemTime::now())
            .map(Some)
            .map_err(|e| ApiError::new(ErrorKind::Auth(e.aws_error_type()), e.to_string())),
        None => Ok(None),
    }
}

pub(crate) fn request_id() -> String {
    let bytes: [u8; 16] = rand::random();
    let h = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The value of header `name` as text, or the AWS error naming what is wrong with it.
fn header_text<'a>(
    parts: &'a http::request::Parts,
    name: &str,
    missing: ApiError,
) -> Result<&'a str, ApiError> {
    let value = parts.headers.get(name).ok_or(missing)?;
    value.to_str().map_err(|_| {
        ApiError::new(
            ErrorKind::Serialization,
            format!("The {name} header holds bytes that are not visible ASCII text."),
        )
    })
}

async fn handle_api(
    State(state): State<Arc<ApiState>>,
    axum::Extension(RequestId(id)): axum::Extension<RequestId>,
    request: Request,
) -> Response {
    state.counters.request();
    let (parts, body) = request.into_parts();
    let wire = Wire::from_headers(&parts.headers);
    let answer_wire = *wire.as_ref().unwrap_or(&Wire::Json);
    let result = async {
        let wire = wire?;
        // A request that cannot be authentic is refused from its head, before its body.
        if let Some(verifier) = &state.verifier {
            verifier
                .precheck(&parts, SystemTime::now())
                .map_err(|e| ApiError::new(ErrorKind::Auth(e.aws_error_type()), e.to_string()))?;
        }
        let declared = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let (body, _room) =
            body::read_body(body, declared, MAX_BODY_BYTES, &state.body_budget).await?;
        authorize(&state, &parts, &body)?;
        let target = header_text(
            &parts,
            "x-amz-target",
            ApiError::new(
                ErrorKind::UnknownOperation,
                "The X-Amz-Target header is missing: it names the operation, e.g. Kinesis_20131202.PutRecord.",
            ),
        )?;
        match target.split_once('.') {
            Some(("Kinesis_20131202", operation)) => {
                kinesis::dispatch(&state, wire, operation, body).await
            }
            Some(("Firehose_20150804", operation)) => {
                firehose::dispatch(&state, wire, operation, body).await
            }
            _ => Err(ApiError::new(
                ErrorKind::UnknownOperation,
                format!(
                    "Unknown X-Amz-Target '{}': kinedge serves Kinesis_20131202.* and Firehose_20150804.*.",
                    target.chars().take(100).collect::<String>()
                ),
            )),
        }
    }
    .await;
    let response = match result {
        Ok(response) => response,
        Err(error) => {
            state.counters.error(error.kind.aws_type());
            if error.kind == ErrorKind::InternalFailure {
                tracing::error!(request_id = %id, %error, "API request failed");
            } else {
                tracing::debug!(request_id = %id, %error, "API request refused");
            }
            answer_wire.error(&error)
        }
    };
    with_request_id(response, &id)
}

fn with_request_id(mut response: Response, id: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(id) {
        response.headers_mut().insert("x-amzn-requestid", value);
    }
    response
}

async fn health() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

/// How long `/ready` waits for the stream writer to answer.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// What is not ready, if anything: stopping, a stream writer that does not answer, an MQTT
/// listener that stopped accepting. The API is up (it answers this).
async fn not_ready(state: &ApiState) -> Vec<String> {
    use std::sync::atomic::Ordering;
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
async fn ready(State(state): State<Arc<ApiState>>) -> Response {
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
async fn metrics(State(state): State<Arc<ApiState>>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    if !state.open_metrics {
        if let Err(error) = authorize(&state, &parts, &[]) {
            return Wire::Json.error(&error);
        }
    }
    let ready = not_ready(&state).await.is_empty();
    let rendered = tokio::task::spawn_blocking(move || {
        crate::metrics::render(&crate::metrics::Sources {
            store: &state.store,
            mqtt: state.mqtt.as_deref(),
            deliveries: state.deliveries.as_ref(),
            #[cfg(feature = "video")]
            video: state.video.as_ref(),
            api: &state.counters,
            ready,
        })
    })
    .await;
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

/// `/status` names streams and sizes: with credentials configured it needs a signed request
/// like the API (e.g. `curl --aws-sigv4 "aws:amz:us-east-1:kinesis" --user KEY:SECRET`);
/// `/health` and `/ready` stay open for probes.
async fn status(State(state): State<Arc<ApiState>>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    if let Err(error) = authorize(&state, &parts, &[]) {
        return Wire::Json.error(&error);
    }
    let cameras = camera_status(&state).await;
    let not_ready = not_ready(&state).await;
    let catalog = state.store.catalog();
    let streams: Vec<StatusStream> = catalog
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
        .collect();
    let data_dir = state.store.data_dir();
    let process = crate::metrics::ProcessStats::read();
    Json(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "ready": not_ready.is_empty(),
        "not_ready": not_ready,
        "uptime_s": state.started.elapsed().as_secs(),
        "memory_bytes": process.resident_memory_bytes,
        "data_dir": data_dir,
        "storage_file_bytes": std::fs::metadata(data_dir.join(crate::storage::STREAMS_DB)).map(|m| m.len()).ok(),
        "disk_free_bytes": crate::storage::disk::free_bytes(data_dir).ok(),
        "streams": streams,
        "writer": state.store.stats(),
        "writes_suspended": state.store.writes_suspended().map(|f| serde_json::json!({"kind": f.kind, "error": f.to_string()})),
        "storage_writes_per_day_bytes": writes_per_day(state.store.stats().bytes_written, state.started.elapsed()),
        "mqtt": state.mqtt.as_ref().map(|m| m.status()),
        "delivery_streams": state.deliveries.as_ref().map(|d| d.status()).unwrap_or_default(),
        "cameras": cameras,
    }))
    .into_response()
}

/// Bytes written into the stream database per day at the rate since start: what the SD card
/// is asked to write (compare with its endurance, e.g. TBW / 365 / years).
fn writes_per_day(bytes_written: u64, uptime: std::time::Duration) -> u64 {
    let seconds = uptime.as_secs_f64().max(1.0);
    (bytes_written as f64 / seconds * 86_400.0) as u64
}

/// Every camera's status (empty without video).
async fn camera_status(state: &ApiState) -> serde_json::Value {
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
async fn deliveries(State(state): State<Arc<ApiState>>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    if let Err(error) = authorize(&state, &parts, &[]) {
        return Wire::Json.error(&error);
    }
    let list = state
        .deliveries
        .as_ref()
        .map(|d| d.status())
        .unwrap_or_default();
    Json(serde_json::json!({ "delivery_streams": list })).into_response()
}

/// Binds the API listener, with a message that says which key to change on failure.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    use anyhow::Context;
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (config key api.listen)"))
}
