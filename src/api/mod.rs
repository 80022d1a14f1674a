//! The HTTP API (axum), served by `server` (HTTP/1.1 and HTTP/2, TLS, timeouts, connection
//! limit) with CORS (`cors`) when configured. One router per API, each with its own state
//! (the parts it needs), merged here:
//!
//! - `operations`: `POST /`, the AWS JSON front, handing each operation to `kinesis` or
//!   `firehose` by `X-Amz-Target`;
//! - `video`: `/video/...` (playback, clips, images), when built with video;
//! - `ops`: `/health`, `/ready`, `/status`, `/metrics`, `/deliveries`;
//! - `analytics`: `/analytics/...` (applications, bounded queries);
//! - `console`: `GET /` from browsers and `/console/...`, the web console.
//!
//! Every answer carries an `x-amzn-RequestId` (`front`). Signatures are checked by `auth`
//! (the [`auth::Signed`] extractor for GETs); errors are AWS-shaped (`error`, `protocol`). A
//! request body is read only after its signature header passed the checks a head allows
//! (`SigV4Verifier::precheck`), into memory taken from the body budget as it arrives (`body`).

pub mod analytics;
pub mod auth;
pub mod body;
#[cfg(feature = "video")]
mod byte_ranges;
pub mod config;
pub mod console;
pub mod cors;
pub mod error;
pub mod events;
pub mod eventstream;
pub mod firehose;
pub mod kinesis;
#[cfg(feature = "video")]
pub mod kvs;
pub mod operations;
pub mod ops;
pub mod protocol;
pub mod server;
pub mod sigv4;
pub mod tls;
#[cfg(feature = "video")]
pub mod video;

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use http::HeaderValue;
use tokio::net::TcpListener;

use crate::analytics::AnalyticsService;
use crate::delivery::DeliveryService;
use crate::ingest::mqtt::MqttShared;
use crate::metrics::Reporters;
use crate::storage::Store;
use auth::Auth;
use events::ApiCounters;
use firehose::FirehoseState;
use kinesis::KinesisState;
use operations::OperationsState;
use ops::OpsState;
use sigv4::SigV4Verifier;

/// Largest request body read: a full PutRecords (5 MiB of data) in base64 JSON with keys.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// How many GetRecords calls are served at once by default.
pub const READ_SLOTS: usize = 2;

/// Request bodies held in memory at once, in KiB: requests beyond it wait for room
/// (backpressure) instead of growing memory with the number of producers.
pub const BODY_BUDGET_KIB: usize = 32 * 1024;

/// What the gateway hands the API: the parts it serves and the metric reporters, in the
/// order `/metrics` lists them.
pub struct ApiParts {
    pub store: Store,
    pub verifier: Option<SigV4Verifier>,
    pub region: String,
    pub account_id: String,
    /// How long shard iterators stay valid (5 minutes, as in Kinesis).
    pub iterator_ttl_ms: u64,
    pub mqtt: Option<Arc<MqttShared>>,
    pub deliveries: Option<DeliveryService>,
    #[cfg(feature = "video")]
    pub video: Option<crate::video::VideoService>,
    /// The analytics applications, when they run.
    pub analytics: Option<AnalyticsService>,
    /// The API's own counters (also among `reporters`).
    pub counters: Arc<ApiCounters>,
    pub reporters: Reporters,
    /// `api.open_metrics`: `/metrics` without a signature.
    pub open_metrics: bool,
    /// `storage.min_free_disk` (the console shows the free space against it).
    pub min_free_disk: u64,
    /// `devices.dir` (the console's Devices page manages its files).
    pub devices_dir: std::path::PathBuf,
    /// `api.max_consumers_per_stream` (enhanced fan-out).
    pub max_consumers_per_stream: usize,
    /// The scaler of ON_DEMAND streams, when it runs (`/status` shows it).
    pub on_demand: Option<crate::ondemand::OnDemandScaler>,
    /// `[api.tls]` is set: the console's session cookie is marked `Secure`.
    pub tls: bool,
}

/// The routers' states.
pub struct ApiState {
    pub operations: Arc<OperationsState>,
    pub ops: Arc<OpsState>,
    #[cfg(feature = "video")]
    pub video: Arc<video::VideoState>,
    #[cfg(feature = "video")]
    pub kvs: Arc<kvs::KvsState>,
    pub analytics: Arc<analytics::AnalyticsState>,
    pub console: Arc<console::ConsoleState>,
    /// Set when a stop begins: `/ready` answers 503 from then on.
    pub stopping: Arc<AtomicBool>,
}

impl ApiState {
    pub fn new(parts: ApiParts) -> ApiState {
        let auth = Arc::new(Auth {
            verifier: parts.verifier,
            region: parts.region.clone(),
            sessions: Default::default(),
        });
        let stopping = Arc::new(AtomicBool::new(false));
        let monitor = Arc::new(kinesis::monitoring::ShardMonitor::new(parts.store.clone()));
        let mut reporters = parts.reporters;
        reporters.push(monitor.clone());
        let operations = Arc::new(OperationsState {
            auth: auth.clone(),
            body_budget: tokio::sync::Semaphore::new(BODY_BUDGET_KIB),
            counters: parts.counters,
            kinesis: KinesisState {
                store: parts.store.clone(),
                region: parts.region.clone(),
                account_id: parts.account_id.clone(),
                iterator_ttl_ms: parts.iterator_ttl_ms,
                read_slots: tokio::sync::Semaphore::new(READ_SLOTS),
                fanout: Default::default(),
                max_consumers_per_stream: parts.max_consumers_per_stream,
                monitor,
            },
            firehose: FirehoseState {
                store: parts.store.clone(),
                deliveries: parts.deliveries.clone(),
                region: parts.region,
                account_id: parts.account_id,
            },
        });
        #[cfg(feature = "video")]
        let video = Arc::new(video::VideoState::new(auth.clone(), parts.video.clone()));
        #[cfg(feature = "video")]
        let kvs = Arc::new(kvs::KvsState::new(
            auth.clone(),
            parts.video.clone(),
            operations.kinesis.region.clone(),
            operations.kinesis.account_id.clone(),
        ));
        #[cfg(feature = "video")]
        kvs.set_tls(parts.tls);
        let analytics = Arc::new(analytics::AnalyticsState::new(
            auth.clone(),
            parts.analytics.clone(),
        ));
        let ops = Arc::new(OpsState {
            auth: auth.clone(),
            store: parts.store,
            mqtt: parts.mqtt,
            deliveries: parts.deliveries,
            #[cfg(feature = "video")]
            video: parts.video,
            analytics: parts.analytics,
            reporters,
            stopping: stopping.clone(),
            started: std::time::Instant::now(),
            open_metrics: parts.open_metrics,
            on_demand: parts.on_demand,
        });
        ApiState {
            operations,
            #[cfg(feature = "video")]
            video,
            #[cfg(feature = "video")]
            kvs,
            analytics,
            console: Arc::new(console::ConsoleState::new(
                auth,
                ops.clone(),
                parts.min_free_disk,
                parts.devices_dir,
                parts.tls,
            )),
            ops,
            stopping,
        }
    }
}

/// The API's routes: every router with its own state, merged.
pub fn router(state: &ApiState) -> Router {
    let router = Router::new()
        .route("/", post(operations::handle).get(console::root))
        .with_state(state.operations.clone())
        .merge(ops::routes(state.ops.clone()))
        .merge(console::routes(state.console.clone()))
        .merge(analytics::routes(state.analytics.clone()));
    #[cfg(feature = "video")]
    let router = router
        .merge(video::routes(state.video.clone()))
        .merge(kvs::routes(state.kvs.clone()));
    router
}

/// The routes with what every answer gets: a request id, and CORS headers for the origins
/// in `cors_origins` (none: no CORS).
pub fn app(state: &ApiState, cors_origins: &[String]) -> Router {
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
    server::serve(listener, app(&state, cors_origins), options, shutdown).await
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

/// An answer of the AWS API (`POST /`) with its request ids, as AWS sends them:
/// `x-amzn-RequestId` and `x-amz-id-2`.
fn with_request_id(mut response: Response, id: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    if let Ok(value) = HeaderValue::from_str(&error::extended_request_id()) {
        response
            .headers_mut()
            .insert(error::EXTENDED_REQUEST_ID_HEADER, value);
    }
    response
}

/// Binds the API listener, with a message that says which key to change on failure.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    use anyhow::Context;
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (config key api.listen)"))
}
