//! A connected session's event loop: it waits at once for the oldest publish's commit, the
//! socket (only while fewer than `max_inflight` publishes wait), the broker's notifications,
//! registry changes, the keep-alive deadline and the gateway's stop. Everything the session
//! answers is written into `out` and flushed after each event, so frames never interleave.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rumqttd::local::LinkRx;
use rumqttd::protocol::{Disconnect, DisconnectReasonCode, Packet};
use rumqttd::Notification;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::super::codec::{Codec, Version};
use super::super::link::RouterLink;
use super::super::qos2::Attached;
use super::super::shared::MqttShared;
use super::auth::Identity;
use super::connect::Will;
use super::inflight::{head_commit, Inflight};
use super::SessionError;

/// A connected session.
pub(super) struct Session {
    pub(super) shared: Arc<MqttShared>,
    pub(super) codec: Codec,
    pub(super) identity: Identity,
    pub(super) link_tx: RouterLink,
    /// Publishes in arrival order, waiting for their commit (at most `max_inflight`).
    pub(super) inflight: VecDeque<Inflight>,
    /// QoS 2 publishes received and stored (PUBREC sent or due), awaiting PUBREL; shared
    /// with the session's other connections (see `qos2`).
    pub(super) qos2: Attached,
    /// Packets answered but not yet written to the socket.
    pub(super) out: BytesMut,
}

/// How the loop ends without an error.
enum Step {
    Continue,
    Done,
}

impl Session {
    pub(super) async fn run<S>(
        &mut self,
        stream: &mut S,
        rbuf: &mut BytesMut,
        mut link_rx: LinkRx,
        keep_alive: Option<u16>,
        will: &mut Option<Will>,
    ) -> Result<(), SessionError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let grace = |k: u16| Duration::from_millis(u64::from(k) * 1500);
        let mut deadline = keep_alive.map(|k| Instant::now() + grace(k));
        let mut devices = self.shared.devices.subscribe();
        let mut stopping = self.shared.stopping.subscribe();
        // Packets already read together with the CONNECT.
        if self.handle_input(rbuf, will).await? {
            return Ok(());
        }
        loop {
            let can_read = self.inflight.len() < self.shared.settings.max_inflight;
            let step = tokio::select! {
                result = head_commit(&mut self.inflight), if !self.inflight.is_empty() => {
                    self.complete(result).await?;
                    Step::Continue
                }
                read = stream.read_buf(rbuf), if can_read => {
                    if read? == 0 {
                        return Err(SessionError::Io(std::io::ErrorKind::UnexpectedEof.into()));
                    }
                    if rbuf.capacity() - rbuf.len() < 256 {
                        rbuf.reserve(4096);
                    }
                    if let Some(k) = keep_alive {
                        deadline = Some(Instant::now() + grace(k));
                    }
                    match self.handle_input(rbuf, will).await? {
                        true => Step::Done,
                        false => Step::Continue,
                    }
                }
                notification = link_rx.next() => match notification {
                    Ok(Some(notification)) => {
                        self.on_broker_notification(notification, &link_rx).await?;
                        Step::Continue
                    }
                    Ok(None) => Step::Continue,
                    Err(_) => return self.taken_over(stream).await,
                },
                changed = devices.changed() => {
                    if changed.is_ok() && !self.still_valid() {
                        return self.device_changed(stream).await;
                    }
                    Step::Continue
                }
                _ = sleep_until(deadline) => return Err(SessionError::KeepAlive),
                _ = stop_requested(&mut stopping) => {
                    self.stop().await?;
                    Step::Done
                }
            };
            self.flush(stream).await?;
            if let Step::Done = step {
                return Ok(());
            }
        }
    }

    /// The router ended the link: another connection took the session over (or it stops).
    async fn taken_over<S: AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
    ) -> Result<(), SessionError> {
        if self.disconnect_v5(DisconnectReasonCode::SessionTakenOver) {
            self.flush(stream).await?;
        }
        Err(SessionError::Broker)
    }

    /// The device was removed from the registry or changed: it must log in again.
    async fn device_changed<S: AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
    ) -> Result<(), SessionError> {
        tracing::info!(
            device = self.identity.name(),
            "device removed or changed; disconnecting it"
        );
        self.disconnect_v5(DisconnectReasonCode::NotAuthorized);
        self.flush(stream).await?;
        Err(SessionError::Refused("device removed or changed"))
    }

    /// The gateway stops: read nothing more, commit and acknowledge what was received, then
    /// close (MQTT 5: DISCONNECT "server shutting down").
    async fn stop(&mut self) -> Result<(), SessionError> {
        while !self.inflight.is_empty() {
            let result = head_commit(&mut self.inflight).await;
            self.complete(result).await?;
        }
        self.disconnect_v5(DisconnectReasonCode::ServerShuttingDown);
        tracing::debug!(device = self.identity.name(), "closed for the stop");
        Ok(())
    }

    /// Queues a DISCONNECT with `reason_code` for an MQTT 5 client (3.1.1 has none to send);
    /// true when one was queued.
    pub(super) fn disconnect_v5(&mut self, reason_code: DisconnectReasonCode) -> bool {
        if self.codec.version() != Version::V5 {
            return false;
        }
        let _ = self.write(Packet::Disconnect(Disconnect { reason_code }, None));
        true
    }

    /// Is the device still in the registry, unchanged?
    fn still_valid(&self) -> bool {
        match &self.identity.device {
            None => true,
            Some(device) => self.shared.device(&device.id).is_some_and(|now| {
                now.password_hash == device.password_hash
                    && now.publish == device.publish
                    && now.subscribe == device.subscribe
            }),
        }
    }

    pub(super) async fn flush<S: AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
    ) -> Result<(), SessionError> {
        if !self.out.is_empty() {
            stream.write_all(&self.out).await?;
            self.out.clear();
            if self.out.capacity() > 64 * 1024 {
                self.out = BytesMut::with_capacity(256);
            }
        }
        Ok(())
    }

    pub(super) fn write(&mut self, packet: Packet) -> Result<(), SessionError> {
        self.codec.write(packet, &mut self.out)?;
        Ok(())
    }

    /// Hands packets to the router; waits (the session reads no more from its socket) while
    /// the router lags.
    pub(super) async fn send_to_broker(
        &mut self,
        packets: Vec<Packet>,
    ) -> Result<(), SessionError> {
        self.link_tx
            .send(packets)
            .await
            .map_err(|_| SessionError::Broker)
    }

    async fn on_broker_notification(
        &mut self,
        notification: Notification,
        link_rx: &LinkRx,
    ) -> Result<(), SessionError> {
        match notification {
            Notification::Forward(forward) => {
                self.write(Packet::Publish(forward.publish, forward.properties))?;
            }
            Notification::Unschedule => {
                let _ = link_rx.wake().await;
            }
            Notification::Disconnect(..) => return Err(SessionError::Broker),
            other => {
                // Of the broker's acknowledgements only PUBREL (of a QoS 2 delivery) goes to
                // the client; kinedge answers SUBSCRIBE, UNSUBSCRIBE and publishes itself.
                if let Some(packet @ Packet::PubRel(..)) = Option::<Packet>::from(other) {
                    self.write(packet)?;
                }
            }
        }
        Ok(())
    }
}

/// Resolves once the gateway begins to stop.
async fn stop_requested(stopping: &mut watch::Receiver<bool>) {
    if stopping.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
