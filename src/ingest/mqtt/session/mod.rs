//! One MQTT connection, from CONNECT to close.
//!
//! The session authenticates the device against the registry, enforces its topic ACL, and
//! hands routed publishes to the stream store. Publishes wait in a FIFO (at most
//! `max_inflight`) until their commit is done; only then are they acknowledged (PUBACK for
//! QoS 1, PUBREC for QoS 2) and handed to the broker for local subscribers, in the order they
//! arrived. Many publishes, of many connections, share one commit. Everything the broker
//! sends the device (forwarded publishes, PUBREL of deliveries) goes out through the same
//! writer, so frames never interleave.
//!
//! The parts: `connect` (the CONNECT phase, with `auth`), `live` (the event loop), `input`
//! (packets from the device), `inflight` (the FIFO of publishes awaiting their commit).

mod auth;
mod connect;
mod inflight;
mod input;
mod live;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rumqttd::protocol::{Disconnect, DisconnectReasonCode, Packet};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::admission::Pending;
use super::codec::CodecError;
use super::shared::MqttShared;
use connect::{handshake, Connected};
use live::Session;

/// Why a session ended (for the log).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Codec(#[from] CodecError),
    #[error("no CONNECT within {0:?}")]
    ConnectTimeout(Duration),
    #[error("connection refused: {0}")]
    Refused(&'static str),
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
    #[error("keep-alive expired")]
    KeepAlive,
    #[error("the broker closed the session (taken over by a new connection, or shut down)")]
    Broker,
}

/// How long the last packets (a DISCONNECT with its reason) may take to go out when a
/// session ends on an error.
const FINAL_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves one connection until it closes. Never panics on input.
///
/// `certificate_device` is the CN of a verified TLS client certificate: that device is
/// authenticated by its certificate and needs no password.
pub async fn serve<S>(
    mut stream: S,
    peer: SocketAddr,
    shared: Arc<MqttShared>,
    certificate_device: Option<String>,
    pending: Pending,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match run(&mut stream, &shared, certificate_device, pending).await {
        Ok(()) => tracing::debug!(%peer, "MQTT connection closed"),
        Err(SessionError::Refused(reason)) => {
            tracing::info!(%peer, reason, "MQTT connection refused")
        }
        Err(error) => tracing::debug!(%peer, %error, "MQTT connection ended"),
    }
    let _ = stream.shutdown().await;
}

/// CONNECT, the session, then what its end requires (settling, the will).
async fn run<S>(
    stream: &mut S,
    shared: &Arc<MqttShared>,
    certificate_device: Option<String>,
    pending: Pending,
) -> Result<(), SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut rbuf = BytesMut::with_capacity(512);
    let address = pending.address();
    let connected = handshake(stream, &mut rbuf, shared, certificate_device, pending).await?;
    let Connected {
        codec,
        identity,
        mut will,
        slot: _slot,
        link_tx,
        link_rx,
        clean,
        keep_alive,
        keep,
    } = connected;
    shared.stats.connected.fetch_add(1, Ordering::Relaxed);
    shared.activity.connected(identity.name(), address);
    tracing::debug!(device = identity.name(), client_id = %identity.client_id, version = ?codec.version(), "MQTT client connected");
    let qos2 = shared.qos2.attach(&identity.client_id, clean);
    let mut session = Session {
        shared: shared.clone(),
        codec,
        identity,
        link_tx,
        inflight: VecDeque::new(),
        qos2,
        out: BytesMut::with_capacity(256),
    };
    let result = session
        .run(stream, &mut rbuf, link_rx, keep_alive, &mut will)
        .await;
    session.end(stream, &result, keep).await;
    if let Some((w, properties)) = will {
        shared
            .broker
            .publish_system(w.topic, w.message, w.retain, properties)
            .await;
    }
    result
}

impl Session {
    /// After the loop: settles the in-flight publishes, keeps the QoS 2 state for the
    /// session's next connection, writes what was answered, and releases the broker link.
    async fn end<S: AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        result: &Result<(), SessionError>,
        keep: Option<Duration>,
    ) {
        // Publishes still awaiting their commit when the connection went: a QoS 2 one that is
        // stored counts as received, so its resend (with DUP, on a new connection) is not
        // stored again.
        self.settle_inflight().await;
        debug_assert!(self.inflight.is_empty(), "settled publishes leave the FIFO");
        self.shared
            .qos2
            .detach(&self.identity.client_id, &self.qos2, keep);
        if result.is_err() && !self.out.is_empty() {
            // What was answered before the error (MQTT 5: the DISCONNECT with its reason) goes
            // out before the close; bounded, as a client that reads nothing must not hold us.
            let _ = tokio::time::timeout(FINAL_WRITE_TIMEOUT, self.flush(stream)).await;
        }
        self.shared.stats.connected.fetch_sub(1, Ordering::Relaxed);
        self.shared.activity.disconnected(self.identity.name());
        // Tell the router the link is gone, so it keeps (or drops) the session state; unless
        // the router itself ended it (a takeover).
        if !matches!(result, Err(SessionError::Broker)) {
            let disconnect = Disconnect {
                reason_code: DisconnectReasonCode::NormalDisconnection,
            };
            let _ = self
                .link_tx
                .send(vec![Packet::Disconnect(disconnect, None)])
                .await;
        }
    }
}
