//! The MQTT listener: admits connections (see `admission`: a pre-CONNECT budget, then
//! `mqtt.max_connections` slots for authenticated sessions) and runs a session for each,
//! handing it the state all sessions share (`shared`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::admission::Busy;
use super::broker::{Broker, BrokerLimits};
use super::config::MqttConfig;
use super::routes::Routes;
use super::session;
use super::shared::{MqttShared, Settings};
use crate::devices::DeviceRegistry;
use crate::storage::Store;

/// A running MQTT listener.
pub struct MqttServer {
    pub shared: Arc<MqttShared>,
    pub local_addr: SocketAddr,
    pub tls_addr: Option<SocketAddr>,
    pub websocket_addr: Option<SocketAddr>,
    accept: Vec<tokio::task::JoinHandle<()>>,
}

/// Listens on `addr` (named by its config key in the error); the address actually bound.
async fn bind(addr: SocketAddr, key: &str) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (config key {key})"))?;
    let local = listener.local_addr().unwrap_or(addr);
    Ok((listener, local))
}

impl MqttServer {
    /// The embedded broker core, for the gateway's own publishers (analytics' MQTT sinks).
    pub fn broker(&self) -> Broker {
        self.shared.broker.clone()
    }

    /// Starts the broker core and listens on `config.listen`.
    pub async fn start(
        config: &MqttConfig,
        store: Store,
        devices: DeviceRegistry,
        routes: Routes,
    ) -> anyhow::Result<MqttServer> {
        let settings = Settings::from_config(config);
        let broker = tokio::task::spawn_blocking({
            let max_connections = settings.max_connections;
            move || Broker::start(BrokerLimits { max_connections })
        })
        .await
        .context("starting the MQTT broker core")?
        .map_err(|e| anyhow::anyhow!("starting the MQTT broker core: {e}"))?;
        let (listener, local_addr) = bind(config.listen, "mqtt.listen").await?;
        let shared = Arc::new(MqttShared::new(settings, store, broker, devices, routes));
        let mut accept = vec![tokio::spawn(accept_loop(
            listener,
            Transport::Tcp,
            shared.clone(),
        ))];
        let mut tls_addr = None;
        let mut websocket_addr = None;
        if let Some(addr) = config.websocket_listen {
            let (listener, addr) = bind(addr, "mqtt.websocket_listen").await?;
            websocket_addr = Some(addr);
            accept.push(tokio::spawn(accept_loop(
                listener,
                Transport::WebSocket,
                shared.clone(),
            )));
        }
        if let Some(tls) = &config.tls {
            let acceptor = super::tls::acceptor(tls)?;
            let (listener, addr) = bind(tls.listen, "mqtt.tls.listen").await?;
            tls_addr = Some(addr);
            accept.push(tokio::spawn(accept_loop(
                listener,
                Transport::Tls(acceptor),
                shared.clone(),
            )));
        }
        Ok(MqttServer {
            shared,
            local_addr,
            tls_addr,
            websocket_addr,
            accept,
        })
    }

    /// Stops: no new connections; each session commits and acknowledges what it received,
    /// then closes. Returns once every session ended, or after `timeout` (false then).
    pub async fn shutdown(&self, timeout: Duration) -> bool {
        self.shared.stopping.send_replace(true);
        for task in &self.accept {
            task.abort();
        }
        let all = u32::try_from(self.shared.settings.max_connections).unwrap_or(u32::MAX);
        tokio::time::timeout(timeout, self.shared.admission.slots.acquire_many(all))
            .await
            .is_ok()
    }
}

/// Logs sockets refused for the pending limits at most once per `REFUSAL_LOG_EVERY`, with
/// the number refused since: a flood of sockets must not become a flood of log lines.
#[derive(Default)]
struct RefusalLog {
    last: Option<std::time::Instant>,
    unlogged: u64,
}

const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

impl RefusalLog {
    fn refused(&mut self, peer: SocketAddr, busy: Busy, settings: &Settings) {
        self.unlogged += 1;
        if self.last.is_some_and(|at| at.elapsed() < REFUSAL_LOG_EVERY) {
            return;
        }
        let refused = std::mem::take(&mut self.unlogged);
        self.last = Some(std::time::Instant::now());
        match busy {
            Busy::Pending => tracing::warn!(
                %peer,
                refused,
                limit = settings.max_pending_connections,
                "MQTT connections refused: mqtt.max_pending_connections not-yet-authenticated \
                 connections are open (refused: since the last such line)"
            ),
            Busy::Address => tracing::warn!(
                %peer,
                refused,
                limit = settings.max_pending_per_address,
                "MQTT connections refused: mqtt.max_pending_per_address not-yet-authenticated \
                 connections from this address are open (refused: since the last such line)"
            ),
        }
    }
}

/// How a listener's connections carry MQTT.
#[derive(Clone)]
enum Transport {
    Tcp,
    Tls(TlsAcceptor),
    /// MQTT over WebSocket (binary frames, subprotocol `mqtt`).
    WebSocket,
}

/// WebSocket limits from the first frame on (before CONNECT): no frame and no message larger
/// than `mqtt.max_packet_size` (tungstenite's defaults, 16 MiB frames and 64 MiB messages,
/// would let a client that never authenticates make the gateway buffer that much), and a
/// small read buffer (tungstenite allocates 128 KiB per connection up front).
fn websocket_config(max_packet_size: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(WEBSOCKET_READ_BUFFER.min(max_packet_size))
        .max_frame_size(Some(max_packet_size))
        .max_message_size(Some(max_packet_size))
}

/// Bytes a WebSocket connection reads at a time.
const WEBSOCKET_READ_BUFFER: usize = 16 * 1024;

/// Answers a WebSocket upgrade with the `mqtt` subprotocol, as MQTT clients expect.
struct MqttSubprotocol;

impl async_tungstenite::tungstenite::handshake::server::Callback for MqttSubprotocol {
    fn on_request(
        self,
        _request: &async_tungstenite::tungstenite::handshake::server::Request,
        mut response: async_tungstenite::tungstenite::handshake::server::Response,
    ) -> Result<
        async_tungstenite::tungstenite::handshake::server::Response,
        async_tungstenite::tungstenite::handshake::server::ErrorResponse,
    > {
        response.headers_mut().insert(
            "sec-websocket-protocol",
            async_tungstenite::tungstenite::http::HeaderValue::from_static("mqtt"),
        );
        Ok(response)
    }
}

/// Accepts connections while pending places are free (see `admission`). A TLS or WebSocket
/// handshake runs in the connection's own task, within the CONNECT timeout, so a slow or
/// silent client never holds up others.
async fn accept_loop(listener: TcpListener, transport: Transport, shared: Arc<MqttShared>) {
    let mut refusals = RefusalLog::default();
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%error, "MQTT accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let pending = match shared.admission.admit(peer.ip()) {
            Ok(pending) => pending,
            Err(busy) => {
                shared
                    .stats
                    .refused_busy
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                refusals.refused(peer, busy, &shared.settings);
                drop(socket);
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let shared = shared.clone();
        let transport = transport.clone();
        tokio::spawn(async move {
            match transport {
                Transport::Tcp => session::serve(socket, peer, shared, None, pending).await,
                Transport::WebSocket => {
                    let timeout = shared.settings.connect_timeout;
                    let upgrade = async_tungstenite::tokio::accept_hdr_async_with_config(
                        socket,
                        MqttSubprotocol,
                        Some(websocket_config(shared.settings.max_packet_size)),
                    );
                    match tokio::time::timeout(timeout, upgrade).await {
                        Ok(Ok(ws)) => {
                            let stream = ws_stream_tungstenite::WsStream::new(ws);
                            session::serve(stream, peer, shared, None, pending).await;
                        }
                        Ok(Err(error)) => {
                            tracing::info!(%peer, %error, "MQTT WebSocket handshake failed")
                        }
                        Err(_) => tracing::info!(%peer, "MQTT WebSocket handshake timed out"),
                    }
                }
                Transport::Tls(acceptor) => {
                    let timeout = shared.settings.connect_timeout;
                    match tokio::time::timeout(timeout, acceptor.accept(socket)).await {
                        Ok(Ok(stream)) => {
                            let device = stream
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|chain| chain.first())
                                .and_then(super::tls::common_name);
                            session::serve(stream, peer, shared, device, pending).await;
                        }
                        Ok(Err(error)) => {
                            tracing::info!(%peer, %error, "MQTT TLS handshake failed")
                        }
                        Err(_) => tracing::info!(%peer, "MQTT TLS handshake timed out"),
                    }
                }
            }
        });
    }
}
