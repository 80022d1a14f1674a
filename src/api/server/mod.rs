//! The API's HTTP server: accepts connections on `api.listen` (TLS with ALPN when `[api.tls]`
//! is set), serves HTTP/1.1 and HTTP/2 on the same port (cleartext HTTP/2 with prior
//! knowledge, as the AWS SDKs for JavaScript and Java use it; `h2` by ALPN over TLS), and
//! keeps slow or idle clients from taking what others need.
//!
//! Invariants:
//! - At most `max_connections` connections are served at once (plus the one just accepted).
//!   At the limit, the idle connection least likely to be a working client is closed (one
//!   that never completed a request first, see [`connections::Registry::evict_one`]); when
//!   every connection is serving a request, new ones wait in the kernel's listen backlog. The API
//!   never takes file descriptors beyond that, so MQTT and the device reload keep theirs.
//! - A request head must be complete [`HEADER_TIMEOUT`] after the connection opened or after
//!   its first byte; a connection idle for [`IDLE_TIMEOUT`] is closed; a client that does not
//!   read its answer for [`SEND_TIMEOUT`] is closed. Bodies have their own minimum rate
//!   (`super::body`). A streaming answer (SubscribeToShard) keeps its connection busy until
//!   it ends, so only [`SEND_TIMEOUT`] applies to it, however long it runs.
//! - A stop closes idle connections at once and lets requests in progress finish (HTTP/1:
//!   the connection closes after the answer; HTTP/2: GOAWAY); `serve` returns when the last
//!   connection is gone.

pub mod connections;
mod io;
#[cfg(test)]
mod streaming_tests;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::Router;
use http::{Request, Response, StatusCode, Version};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use connections::{Command, Reason, Registered, Registry, RequestGuard, Timeouts};
use io::TrackedIo;

/// A request head must be complete this long after the connection opened (TLS handshake
/// included) or after its first byte arrived.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// An open connection without a request in progress is closed after this long.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A client that reads nothing of its answer for this long is disconnected.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the reaper looks for connections past their timeouts.
const REAP_EVERY: Duration = Duration::from_secs(1);
/// Streams one HTTP/2 connection may have open at once.
const MAX_STREAMS: u32 = 100;

/// How the listener serves.
pub struct ServeOptions {
    /// `api.max_connections`.
    pub max_connections: usize,
    /// `[api.tls]`.
    pub tls: Option<TlsAcceptor>,
    pub timeouts: Timeouts,
}

impl ServeOptions {
    pub fn new(max_connections: usize, tls: Option<TlsAcceptor>) -> ServeOptions {
        ServeOptions {
            max_connections: max_connections.max(1),
            tls,
            timeouts: Timeouts {
                header: HEADER_TIMEOUT,
                idle: IDLE_TIMEOUT,
                send: SEND_TIMEOUT,
            },
        }
    }
}

fn builder() -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // The reaper enforces the head and idle timeouts for both protocols; hyper's own
        // head timer is a backstop.
        .header_read_timeout(IDLE_TIMEOUT + HEADER_TIMEOUT)
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS);
    builder
}

/// Serves `app` on `listener` until `shutdown` resolves, then finishes the requests in
/// progress and returns once every connection is closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let registry = Arc::new(Registry::default());
    let builder = Arc::new(builder());
    let reaper = tokio::spawn(reap(registry.clone(), options.timeouts));
    let mut limit_warned: Option<Instant> = None;
    tokio::pin!(shutdown);
    'accept: loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(&error).await;
                    continue;
                }
            },
            () = &mut shutdown => break 'accept,
        };
        // Make room: close an idle connection, or hold this one (and leave the next ones in
        // the kernel's backlog) until a connection goes away.
        while registry.len() >= options.max_connections {
            if !registry.evict_one()
                && limit_warned.is_none_or(|at| at.elapsed() > Duration::from_secs(60))
            {
                limit_warned = Some(Instant::now());
                tracing::warn!(
                    max_connections = options.max_connections,
                    "the API has api.max_connections connections and none can be closed yet; new connections wait"
                );
            }
            tokio::select! {
                () = registry.changed(Duration::from_millis(50)) => {}
                () = &mut shutdown => break 'accept,
            }
        }
        let _ = stream.set_nodelay(true);
        let conn = registry.register();
        tracing::trace!(%peer, "API connection accepted");
        tokio::spawn(serve_connection(
            conn,
            stream,
            options.tls.clone(),
            app.clone(),
            builder.clone(),
        ));
    }
    drop(listener);
    registry.shutdown();
    // Connections that were sending a head when the stop came are idle and closed; the
    // rest finish their requests.
    while !registry.is_empty() {
        registry.changed(Duration::from_millis(100)).await;
        registry.shutdown();
    }
    reaper.abort();
    Ok(())
}

/// An accept that failed: a connection reset before it was accepted is nothing; running out
/// of file descriptors or memory is logged and waited out without spinning.
async fn accept_failed(error: &std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted
    ) {
        return;
    }
    tracing::warn!(%error, "the API cannot accept a connection; trying again in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

async fn reap(registry: Arc<Registry>, timeouts: Timeouts) {
    let mut tick = tokio::time::interval(REAP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for reason in registry.reap(timeouts) {
            match reason {
                Reason::SlowHeader => tracing::debug!(
                    "API connection closed: no complete request head within {} s",
                    timeouts.header.as_secs()
                ),
                Reason::Idle => tracing::trace!("API connection closed: idle"),
                Reason::SlowReader => tracing::debug!(
                    "API connection closed: the client read nothing of its answer for {} s",
                    timeouts.send.as_secs()
                ),
            }
        }
    }
}

async fn serve_connection(
    conn: Registered,
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    app: Router,
    builder: Arc<Builder<TokioExecutor>>,
) {
    let activity = conn.activity.clone();
    match tls {
        None => serve_io(conn, TrackedIo::new(stream, activity), app, &builder).await,
        Some(acceptor) => {
            // The handshake runs inside the head timeout; a stop or eviction ends it too.
            let handshake = tokio::select! {
                handshake = acceptor.accept(stream) => handshake,
                _ = activity.next_command() => return,
            };
            match handshake {
                Ok(stream) => serve_io(conn, TrackedIo::new(stream, activity), app, &builder).await,
                Err(error) => tracing::debug!(%error, "API TLS handshake failed"),
            }
        }
    }
}

async fn serve_io<T>(
    conn: Registered,
    io: TrackedIo<T>,
    app: Router,
    builder: &Builder<TokioExecutor>,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = conn.activity.clone();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let guard = activity.begin_request(request.version() == Version::HTTP_2);
        let app = app.clone();
        async move {
            let Some(guard) = guard else {
                return Ok::<_, Infallible>(closing());
            };
            let response = match app.oneshot(request.map(Body::new)).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            Ok(response.map(|body| {
                Body::new(GuardedBody {
                    body,
                    _guard: guard,
                })
            }))
        }
    });
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    loop {
        tokio::select! {
            biased;
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::trace!(%error, "API connection ended with an error");
                }
                break;
            }
            command = conn.activity.next_command() => match command {
                Command::Graceful => connection.as_mut().graceful_shutdown(),
                Command::Close => break,
                Command::None => {}
            },
        }
    }
}

/// The answer to a request that arrived on a connection being closed.
fn closing() -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    response.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    response
}

/// A response body that keeps its connection marked busy until it is sent (or dropped).
struct GuardedBody {
    body: Body,
    _guard: RequestGuard,
}

impl hyper::body::Body for GuardedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
