//! One MQTT connection, from CONNECT to close.
//!
//! The session authenticates the device against the registry, enforces its topic ACL, and
//! hands routed publishes to the stream store. Publishes wait in a FIFO (at most
//! `max_inflight`) until their commit is done; only then are they acknowledged (PUBACK for
//! QoS 1, PUBREC for QoS 2) and handed to the broker for local subscribers, in the order they
//! arrived. Many publishes, of many connections, share one commit. Everything the broker
//! sends the device (forwarded publishes, PUBREL of deliveries) goes out through the same
//! writer, so frames never interleave.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rumqttd::local::LinkRx;
use rumqttd::protocol::{
    ConnAck, ConnAckProperties, ConnectReturnCode, Disconnect, DisconnectReasonCode, LastWill,
    LastWillProperties, Packet, PingResp, PubAck, PubAckReason, PubComp, PubCompReason, PubRec,
    PubRecReason, Publish, PublishProperties, SubAck, SubscribeReasonCode, UnsubAck,
    UnsubAckReason,
};
use rumqttd::Notification;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::admission::Pending;
use super::codec::{self, Codec, CodecError, PublishHeader, Version};
use super::link::RouterLink;
use super::qos2::{self, Attached};
use super::refusal::{self, committed, storage_answer, CommitResult, Committed, Refusal};
use super::routes::PublishContext;
use super::server::MqttShared;
use super::topics;
use super::Device;
use crate::storage::{now_ms, AppendOutcome, NewRecord, StoreError};
use crate::streams::hash_key_of;

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

/// Who is connected.
struct Identity {
    client_id: String,
    /// `None` for an anonymous client (only with `mqtt.allow_anonymous`).
    device: Option<Arc<Device>>,
}

impl Identity {
    fn name(&self) -> &str {
        self.device.as_ref().map_or(&self.client_id, |d| &d.id)
    }

    fn may_publish(&self, topic: &str) -> bool {
        self.device.as_ref().is_none_or(|d| d.may_publish(topic))
    }

    fn may_subscribe(&self, filter: &str) -> bool {
        self.device.as_ref().is_none_or(|d| d.may_subscribe(filter))
    }
}

/// How long the last packets (a DISCONNECT with its reason) may take to go out when a
/// session ends on an error.
const FINAL_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

type CommitTicket = oneshot::Receiver<Result<Vec<AppendOutcome>, StoreError>>;

/// A publish waiting for its commit (or just for those before it).
struct Inflight {
    header: PublishHeader,
    forward: Packet,
    commit: Option<CommitTicket>,
}

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

async fn read_more<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> Result<(), SessionError> {
    if buf.capacity() - buf.len() < 256 {
        buf.reserve(4096);
    }
    if stream.read_buf(buf).await? == 0 {
        return Err(SessionError::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    Ok(())
}

async fn write_packet<S: AsyncWrite + Unpin>(
    stream: &mut S,
    codec: &Codec,
    packet: Packet,
) -> Result<(), SessionError> {
    let mut out = BytesMut::with_capacity(64);
    codec.write(packet, &mut out)?;
    stream.write_all(&out).await?;
    Ok(())
}

fn refused_connack(version: Version, code: ConnectReturnCode) -> Packet {
    Packet::ConnAck(
        ConnAck {
            session_present: false,
            code: match (version, code) {
                // 3.1.1 knows only codes 1-5.
                (
                    Version::V311,
                    ConnectReturnCode::ClientIdentifierNotValid
                    | ConnectReturnCode::BadUserNamePassword
                    | ConnectReturnCode::NotAuthorized,
                ) => code,
                (Version::V311, _) => ConnectReturnCode::ServiceUnavailable,
                (Version::V5, _) => code,
            },
        },
        None,
    )
}

/// True when `client_id` is the device id, or matches `mqtt.client_id_pattern` for it.
fn client_id_allowed(pattern: Option<&str>, device: &str, client_id: &str) -> bool {
    if client_id == device {
        return true;
    }
    let Some(pattern) = pattern else { return false };
    let pattern = pattern.replace("{device}", device);
    // `*` matches a run of id characters.
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = client_id;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i + 1 == parts.len() {
            let Some(middle) = rest.strip_suffix(part) else {
                return false;
            };
            return middle
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        } else {
            let Some(at) = rest.find(part) else {
                return false;
            };
            rest = &rest[at + part.len()..];
        }
    }
    rest.is_empty()
}

async fn authenticate(
    shared: &MqttShared,
    client_id: &str,
    login: Option<(String, String)>,
    certificate_device: Option<String>,
) -> Result<Identity, (ConnectReturnCode, &'static str)> {
    if let Some(cn) = certificate_device {
        let Some(device) = shared.device(&cn) else {
            return Err((
                ConnectReturnCode::NotAuthorized,
                "the client certificate's CN is not a device",
            ));
        };
        if login.as_ref().is_some_and(|(username, _)| *username != cn) {
            return Err((
                ConnectReturnCode::NotAuthorized,
                "the username differs from the client certificate's CN",
            ));
        }
        return device_identity(shared, device, client_id);
    }
    let Some((username, password)) = login else {
        // Anonymous client ids follow the device id rules, so none can pose as the gateway's
        // own broker link.
        if shared.settings.allow_anonymous && super::devices::is_valid_device_id(client_id) {
            return Ok(Identity {
                client_id: client_id.to_string(),
                device: None,
            });
        }
        return Err((
            ConnectReturnCode::NotAuthorized,
            "no credentials, and mqtt.allow_anonymous is false",
        ));
    };
    let device = shared.device(&username);
    let Some(device) = device else {
        return Err((ConnectReturnCode::BadUserNamePassword, "unknown device"));
    };
    // Argon2 is slow on purpose: verify off the runtime, a few at a time.
    let permit = shared.auth_slots.acquire().await;
    let verified = {
        let device = device.clone();
        tokio::task::spawn_blocking(move || device.verify_password(password.as_bytes()))
            .await
            .unwrap_or(false)
    };
    drop(permit);
    if !verified {
        return Err((ConnectReturnCode::BadUserNamePassword, "wrong password"));
    }
    device_identity(shared, device, client_id)
}

/// An authenticated device connecting with `client_id`: the id must be its own (or match
/// `mqtt.client_id_pattern`).
fn device_identity(
    shared: &MqttShared,
    device: Arc<Device>,
    client_id: &str,
) -> Result<Identity, (ConnectReturnCode, &'static str)> {
    if !client_id_allowed(
        shared.settings.client_id_pattern.as_deref(),
        &device.id,
        client_id,
    ) {
        return Err((
            ConnectReturnCode::ClientIdentifierNotValid,
            "the client id is not the device id",
        ));
    }
    Ok(Identity {
        client_id: client_id.to_string(),
        device: Some(device),
    })
}

fn will_properties(p: Option<LastWillProperties>) -> Option<PublishProperties> {
    p.map(|p| PublishProperties {
        payload_format_indicator: p.payload_format_indicator,
        message_expiry_interval: p.message_expiry_interval,
        topic_alias: None,
        response_topic: p.response_topic,
        correlation_data: p.correlation_data,
        user_properties: p.user_properties,
        subscription_identifiers: Vec::new(),
        content_type: p.content_type,
    })
}

async fn run<S>(
    stream: &mut S,
    shared: &Arc<MqttShared>,
    certificate_device: Option<String>,
    pending: Pending,
) -> Result<(), SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let max = shared.settings.max_packet_size;
    let mut rbuf = BytesMut::with_capacity(512);
    // CONNECT, within the connect timeout.
    let timeout = shared.settings.connect_timeout;
    let (version, connect) = tokio::time::timeout(timeout, async {
        loop {
            match codec::read_connect(&mut rbuf, max) {
                Ok(Some(found)) => return Ok(found),
                Ok(None) => read_more(stream, &mut rbuf).await?,
                Err(e) => return Err(SessionError::Codec(e)),
            }
        }
    })
    .await
    .map_err(|_| SessionError::ConnectTimeout(timeout))??;
    let codec = Codec::new(version);
    let Packet::Connect(connect, connect_props, will, will_props, login) = connect else {
        return Err(SessionError::Protocol("the first packet must be CONNECT"));
    };
    let identity = match authenticate(
        shared,
        &connect.client_id,
        login.map(|l| (l.username, l.password)),
        certificate_device,
    )
    .await
    {
        Ok(identity) => identity,
        Err((code, reason)) => {
            crate::observe::emit(super::metrics::ConnectRefused {
                stats: &shared.stats,
                client_id: &connect.client_id,
                reason,
            });
            write_packet(stream, &codec, refused_connack(version, code)).await?;
            return Err(SessionError::Refused(reason));
        }
    };
    let mut will: Option<(LastWill, Option<PublishProperties>)> =
        will.map(|w| (w, will_properties(will_props)));
    if let Some((w, _)) = &will {
        let topic = std::str::from_utf8(&w.topic).unwrap_or("");
        if topics::check_topic_name(topic).is_err() || !identity.may_publish(topic) {
            shared.stats.refused_acl.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                device = identity.name(),
                topic,
                "MQTT last will refused: outside the device's publish ACL"
            );
            write_packet(
                stream,
                &codec,
                refused_connack(version, ConnectReturnCode::NotAuthorized),
            )
            .await?;
            return Err(SessionError::Refused("last will outside the publish ACL"));
        }
    }
    // Authenticated: from the pending budget to a connection slot (held until the end).
    let Some(_slot) = shared.admission.connect() else {
        crate::observe::emit(super::metrics::ConnectionsFull {
            stats: &shared.stats,
            device: identity.name(),
            limit: shared.settings.max_connections,
        });
        write_packet(
            stream,
            &codec,
            refused_connack(version, ConnectReturnCode::ServerUnavailable),
        )
        .await?;
        return Err(SessionError::Refused("mqtt.max_connections reached"));
    };
    drop(pending);
    let clean = connect.clean_session;
    let session_expiry = connect_props.and_then(|p| p.session_expiry_interval);
    let keep = session_keep(version, clean, session_expiry);
    let link = {
        let broker = shared.broker.clone();
        let client_id = identity.client_id.clone();
        tokio::task::spawn_blocking(move || broker.link(&client_id, clean)).await
    };
    let (link_tx, link_rx, connack) = match link {
        Ok(Ok(link)) => link,
        _ => {
            write_packet(
                stream,
                &codec,
                refused_connack(version, ConnectReturnCode::ServerUnavailable),
            )
            .await?;
            return Err(SessionError::Refused(
                "the broker has no room for another connection",
            ));
        }
    };
    let session_present = match Option::<Packet>::from(connack) {
        Some(Packet::ConnAck(ack, _)) => ack.session_present,
        _ => false,
    };
    let keep_alive_max = shared.settings.keep_alive_max_s;
    let keep_alive = match connect.keep_alive {
        0 => None,
        k => Some(k.min(keep_alive_max)),
    };
    let properties = (version == Version::V5).then(|| ConnAckProperties {
        receive_max: Some(shared.settings.max_inflight.min(u16::MAX as usize) as u16),
        max_packet_size: Some(max.min(u32::MAX as usize) as u32),
        topic_alias_max: Some(0),
        retain_available: Some(1),
        server_keep_alive: (connect.keep_alive > keep_alive_max).then_some(keep_alive_max),
        ..ConnAckProperties::default()
    });
    write_packet(
        stream,
        &codec,
        Packet::ConnAck(
            ConnAck {
                session_present,
                code: ConnectReturnCode::Success,
            },
            properties,
        ),
    )
    .await?;
    shared.stats.connected.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(device = identity.name(), client_id = %identity.client_id, ?version, "MQTT client connected");

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
    // Publishes still awaiting their commit when the connection went: a QoS 2 one that is
    // stored counts as received, so its resend (with DUP, on a new connection) is not
    // stored again.
    session.settle_inflight().await;
    shared
        .qos2
        .detach(&session.identity.client_id, &session.qos2, keep);
    if result.is_err() && !session.out.is_empty() {
        // What was answered before the error (MQTT 5: the DISCONNECT with its reason) goes
        // out before the close; bounded, as a client that reads nothing must not hold us.
        let _ = tokio::time::timeout(FINAL_WRITE_TIMEOUT, session.flush(stream)).await;
    }
    shared.stats.connected.fetch_sub(1, Ordering::Relaxed);
    // Tell the router the link is gone, so it keeps (or drops) the session state; unless
    // the router itself ended it (a takeover).
    if !matches!(result, Err(SessionError::Broker)) {
        let _ = session
            .link_tx
            .send(vec![Packet::Disconnect(
                Disconnect {
                    reason_code: DisconnectReasonCode::NormalDisconnection,
                },
                None,
            )])
            .await;
    }
    if let Some((w, properties)) = will {
        shared
            .broker
            .publish_system(w.topic, w.message, w.retain, properties)
            .await;
    }
    result
}

struct Session {
    shared: Arc<MqttShared>,
    codec: Codec,
    identity: Identity,
    link_tx: RouterLink,
    inflight: VecDeque<Inflight>,
    /// QoS 2 publishes received and stored (PUBREC sent or due), awaiting PUBREL; shared
    /// with the session's other connections (see `qos2`).
    qos2: Attached,
    out: BytesMut,
}

/// Waits for the commit of the oldest in-flight publish (at once if it has none).
async fn head_commit(inflight: &mut VecDeque<Inflight>) -> CommitResult {
    match inflight.front_mut().and_then(|entry| entry.commit.as_mut()) {
        Some(ticket) => Some(ticket.await),
        None => None,
    }
}

impl Session {
    async fn run<S>(
        &mut self,
        stream: &mut S,
        rbuf: &mut BytesMut,
        mut link_rx: LinkRx,
        keep_alive: Option<u16>,
        will: &mut Option<(LastWill, Option<PublishProperties>)>,
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
            tokio::select! {
                result = head_commit(&mut self.inflight), if !self.inflight.is_empty() => {
                    self.complete(result).await?;
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
                    if self.handle_input(rbuf, will).await? {
                        self.flush(stream).await?;
                        return Ok(());
                    }
                }
                notification = link_rx.next() => {
                    match notification {
                        Ok(Some(notification)) => self.on_broker_notification(notification, &link_rx).await?,
                        Ok(None) => {}
                        Err(_) => {
                            if self.codec.version() == Version::V5 {
                                let _ = self.codec.write(Packet::Disconnect(Disconnect { reason_code: DisconnectReasonCode::SessionTakenOver }, None), &mut self.out);
                                self.flush(stream).await?;
                            }
                            return Err(SessionError::Broker);
                        }
                    }
                }
                changed = devices.changed() => {
                    if changed.is_ok() && !self.still_valid() {
                        tracing::info!(device = self.identity.name(), "device removed or changed; disconnecting it");
                        if self.codec.version() == Version::V5 {
                            let _ = self.codec.write(Packet::Disconnect(Disconnect { reason_code: DisconnectReasonCode::NotAuthorized }, None), &mut self.out);
                        }
                        self.flush(stream).await?;
                        return Err(SessionError::Refused("device removed or changed"));
                    }
                }
                _ = sleep_until(deadline) => {
                    return Err(SessionError::KeepAlive);
                }
                _ = stop_requested(&mut stopping) => {
                    // The gateway stops: read nothing more, commit and acknowledge what was
                    // received, then close (MQTT 5: DISCONNECT "server shutting down").
                    while !self.inflight.is_empty() {
                        let result = head_commit(&mut self.inflight).await;
                        self.complete(result).await?;
                    }
                    if self.codec.version() == Version::V5 {
                        let _ = self.codec.write(Packet::Disconnect(Disconnect { reason_code: DisconnectReasonCode::ServerShuttingDown }, None), &mut self.out);
                    }
                    self.flush(stream).await?;
                    tracing::debug!(device = self.identity.name(), "closed for the stop");
                    return Ok(());
                }
            }
            self.flush(stream).await?;
        }
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

    async fn flush<S: AsyncWrite + Unpin>(&mut self, stream: &mut S) -> Result<(), SessionError> {
        if !self.out.is_empty() {
            stream.write_all(&self.out).await?;
            self.out.clear();
            if self.out.capacity() > 64 * 1024 {
                self.out = BytesMut::with_capacity(256);
            }
        }
        Ok(())
    }

    fn write(&mut self, packet: Packet) -> Result<(), SessionError> {
        self.codec.write(packet, &mut self.out)?;
        Ok(())
    }

    /// Handles every whole packet in `rbuf`. Returns true when the client disconnected.
    async fn handle_input(
        &mut self,
        rbuf: &mut BytesMut,
        will: &mut Option<(LastWill, Option<PublishProperties>)>,
    ) -> Result<bool, SessionError> {
        let max = self.shared.settings.max_packet_size;
        let mut to_broker = Vec::new();
        loop {
            let frame = match self.codec.read(rbuf, max) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(CodecError::TooLarge(n)) => {
                    self.shared
                        .stats
                        .refused_too_large
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        device = self.identity.name(),
                        bytes = n,
                        "MQTT packet larger than mqtt.max_packet_size; closing the connection"
                    );
                    if self.codec.version() == Version::V5 {
                        self.write(Packet::Disconnect(
                            Disconnect {
                                reason_code: DisconnectReasonCode::PacketTooLarge,
                            },
                            None,
                        ))?;
                    }
                    return Err(SessionError::Codec(CodecError::TooLarge(n)));
                }
                Err(e) => {
                    if self.codec.version() == Version::V5 {
                        let _ = self.write(Packet::Disconnect(
                            Disconnect {
                                reason_code: DisconnectReasonCode::MalformedPacket,
                            },
                            None,
                        ));
                    }
                    return Err(e.into());
                }
            };
            match frame.packet {
                Packet::Publish(publish, properties) => {
                    let header = frame.publish.unwrap_or_default();
                    self.on_publish(header, publish, properties).await?;
                }
                Packet::PubRel(rel, _) => {
                    let reason = if qos2::lock(&self.qos2.ids).remove(&rel.pkid) {
                        PubCompReason::Success
                    } else {
                        PubCompReason::PacketIdentifierNotFound
                    };
                    self.write(Packet::PubComp(
                        PubComp {
                            pkid: rel.pkid,
                            reason,
                        },
                        None,
                    ))?;
                }
                // Acknowledgements of deliveries to this client belong to the broker.
                p @ (Packet::PubAck(..) | Packet::PubRec(..) | Packet::PubComp(..)) => {
                    to_broker.push(p)
                }
                Packet::Subscribe(subscribe, properties) => {
                    let mut codes = Vec::with_capacity(subscribe.filters.len());
                    let mut allowed = Vec::new();
                    for filter in subscribe.filters {
                        let valid = topics::check_filter(&filter.path).is_ok()
                            && (!filter.path.starts_with('$')
                                || filter.path.starts_with("$share/"));
                        if valid && self.identity.may_subscribe(&filter.path) {
                            codes.push(SubscribeReasonCode::Success(filter.qos));
                            allowed.push(filter);
                        } else {
                            self.shared
                                .stats
                                .refused_acl
                                .fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(device = self.identity.name(), filter = %filter.path, "MQTT subscribe refused: outside the device's subscribe ACL");
                            codes.push(match self.codec.version() {
                                Version::V311 => SubscribeReasonCode::Failure,
                                Version::V5 if !valid => SubscribeReasonCode::TopicFilterInvalid,
                                Version::V5 => SubscribeReasonCode::NotAuthorized,
                            });
                        }
                    }
                    if !allowed.is_empty() {
                        to_broker.push(Packet::Subscribe(
                            rumqttd::protocol::Subscribe {
                                pkid: subscribe.pkid,
                                filters: allowed,
                            },
                            properties,
                        ));
                    }
                    self.write(Packet::SubAck(
                        SubAck {
                            pkid: subscribe.pkid,
                            return_codes: codes,
                        },
                        None,
                    ))?;
                }
                Packet::Unsubscribe(unsubscribe, properties) => {
                    let reasons = vec![UnsubAckReason::Success; unsubscribe.filters.len()];
                    let pkid = unsubscribe.pkid;
                    to_broker.push(Packet::Unsubscribe(unsubscribe, properties));
                    self.write(Packet::UnsubAck(UnsubAck { pkid, reasons }, None))?;
                }
                Packet::PingReq(_) => self.write(Packet::PingResp(PingResp))?,
                Packet::Disconnect(disconnect, _) => {
                    // A normal DISCONNECT discards the will (v5: unless asked to send it).
                    if disconnect.reason_code != DisconnectReasonCode::DisconnectWithWillMessage {
                        *will = None;
                    }
                    self.send_to_broker(to_broker).await?;
                    return Ok(true);
                }
                Packet::Connect(..) => return Err(SessionError::Protocol("a second CONNECT")),
                _ => return Err(SessionError::Protocol("a packet a client may not send")),
            }
        }
        self.send_to_broker(to_broker).await?;
        Ok(false)
    }

    /// A PUBLISH from the device: ACL, then (if routed) a commit; it is acknowledged and
    /// forwarded when its turn in the FIFO comes.
    async fn on_publish(
        &mut self,
        header: PublishHeader,
        publish: Publish,
        properties: Option<PublishProperties>,
    ) -> Result<(), SessionError> {
        let alias = properties.as_ref().is_some_and(|p| p.topic_alias.is_some());
        let topic = match topics::publish_topic(&publish.topic, alias) {
            Ok(t) => t.to_string(),
            Err(error) => {
                tracing::warn!(device = self.identity.name(), %error, "MQTT PUBLISH with an unacceptable topic; closing the connection");
                if self.codec.version() == Version::V5 {
                    use topics::PublishTopicError as E;
                    let reason_code = match error {
                        E::InvalidUtf8 | E::Nul => DisconnectReasonCode::MalformedPacket,
                        E::Empty => DisconnectReasonCode::ProtocolError,
                        E::Wildcard => DisconnectReasonCode::TopicNameInvalid,
                        E::AliasNotAllowed => DisconnectReasonCode::TopicAliasInvalid,
                    };
                    self.write(Packet::Disconnect(Disconnect { reason_code }, None))?;
                }
                return Err(SessionError::Protocol(
                    "a PUBLISH with an unacceptable topic",
                ));
            }
        };
        if !self.identity.may_publish(&topic) {
            self.shared
                .stats
                .refused_acl
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(device = self.identity.name(), %topic, "MQTT publish refused: outside the device's publish ACL");
            return self.refuse_publish(
                header,
                PubAckReason::NotAuthorized,
                None,
                "publish outside the ACL",
            );
        }
        if header.qos == 2 {
            let received = qos2::lock(&self.qos2.ids);
            if received.contains(&header.pkid) {
                drop(received);
                // A resent QoS 2 publish that was already stored (on this connection or an
                // earlier one of the session): acknowledge again only.
                return self.write(Packet::PubRec(
                    PubRec {
                        pkid: header.pkid,
                        reason: PubRecReason::Success,
                    },
                    None,
                ));
            }
            // MQTT 5 §3.3.4: unreleased QoS 2 publishes count toward the Receive Maximum
            // (0x93 beyond it); 3.1.1 is bounded by the 65535 packet ids.
            let full = self.codec.version() == Version::V5
                && received.len() >= self.shared.settings.max_inflight;
            drop(received);
            if full {
                tracing::warn!(
                    device = self.identity.name(),
                    limit = self.shared.settings.max_inflight,
                    "MQTT client exceeded the receive maximum with unreleased QoS 2 publishes; closing the connection"
                );
                self.write(Packet::Disconnect(
                    Disconnect {
                        reason_code: DisconnectReasonCode::ReceiveMaximumExceeded,
                    },
                    None,
                ))?;
                return Err(SessionError::Protocol(
                    "more unreleased QoS 2 publishes than the receive maximum",
                ));
            }
        }
        let commit = match self.shared.routes.route(&topic) {
            Some(route) => {
                let ctx = PublishContext {
                    topic: &topic,
                    device: self.identity.name(),
                    client_id: &self.identity.client_id,
                    qos: header.qos,
                    retain: publish.retain,
                    payload: &publish.payload,
                    received_ms: now_ms(),
                };
                let partition_key = route.partition_key(&ctx);
                let record = NewRecord {
                    hash_key: hash_key_of(&partition_key),
                    partition_key,
                    data: route.record_data(&ctx),
                };
                // Queued here, in arrival order; only the wait for the commit is deferred.
                let stream = route.stream.clone();
                match self.shared.store.submit(&stream, vec![record]).await {
                    Ok(ticket) => Some(ticket),
                    Err(_) => {
                        let (tx, rx) = oneshot::channel();
                        let _ = tx.send(Err(StoreError::ShuttingDown));
                        Some(rx)
                    }
                }
            }
            None => {
                self.shared.stats.unrouted.fetch_add(1, Ordering::Relaxed);
                None
            }
        };
        let mut properties = properties;
        if let Some(p) = properties.as_mut() {
            p.topic_alias = None;
        }
        let forward = Packet::Publish(
            Publish::new(publish.topic, publish.payload, publish.retain),
            properties,
        );
        self.inflight.push_back(Inflight {
            header,
            forward,
            commit,
        });
        Ok(())
    }

    fn refuse_publish(
        &mut self,
        header: PublishHeader,
        reason: PubAckReason,
        text: Option<String>,
        why: &'static str,
    ) -> Result<(), SessionError> {
        match refusal::refusal(self.codec.version(), header, reason, text) {
            Refusal::Answer(packet) => self.write(*packet),
            Refusal::Drop => Ok(()),
            // 3.1.1 has no way to refuse a publish: drop it and close, as the spec allows.
            Refusal::Close => Err(SessionError::Refused(why)),
        }
    }

    /// The oldest in-flight publish is committed: acknowledge and forward it, and every
    /// following one whose commit is already done.
    async fn complete(&mut self, first: CommitResult) -> Result<(), SessionError> {
        let mut result = first;
        let mut forward = Vec::new();
        while let Some(entry) = self.inflight.pop_front() {
            let header = entry.header;
            let outcome = committed(result);
            match storage_answer(&outcome) {
                None => {
                    if entry.commit.is_some() {
                        self.shared.stats.stored.fetch_add(1, Ordering::Relaxed);
                    }
                    forward.push(entry.forward);
                    match header.qos {
                        1 => self.write(Packet::PubAck(
                            PubAck {
                                pkid: header.pkid,
                                reason: PubAckReason::Success,
                            },
                            None,
                        ))?,
                        2 => {
                            qos2::lock(&self.qos2.ids).insert(header.pkid);
                            self.write(Packet::PubRec(
                                PubRec {
                                    pkid: header.pkid,
                                    reason: PubRecReason::Success,
                                },
                                None,
                            ))?;
                        }
                        _ => {}
                    }
                }
                Some((reason, text)) => {
                    if matches!(outcome, Committed::Refused(_) | Committed::Invalid(_)) {
                        self.shared
                            .stats
                            .refused_stream
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(device = self.identity.name(), reason = %text, "MQTT publish refused by its stream");
                    } else {
                        tracing::error!(device = self.identity.name(), reason = %text, "MQTT publish could not be stored");
                    }
                    self.send_to_broker(forward).await?;
                    forward = Vec::new();
                    self.refuse_publish(
                        header,
                        reason,
                        Some(text),
                        "the record could not be stored (storage refused or failed)",
                    )?;
                }
            }
            // Continue with the next one only if it is ready now.
            result = match self.inflight.front_mut() {
                None => break,
                Some(next) => match next.commit.as_mut() {
                    None => None,
                    Some(ticket) => match ticket.try_recv() {
                        Ok(r) => Some(Ok(r)),
                        Err(oneshot::error::TryRecvError::Empty) => break,
                        Err(oneshot::error::TryRecvError::Closed) => {
                            Some(Ok(Err(StoreError::ShuttingDown)))
                        }
                    },
                },
            };
        }
        self.send_to_broker(forward).await
    }

    /// After the connection ended: waits for the commits of publishes never acknowledged and
    /// records the stored QoS 2 ones as received (they get PUBREC, not a second record, when
    /// the client resends them on its next connection).
    async fn settle_inflight(&mut self) {
        while let Some(entry) = self.inflight.pop_front() {
            let result = match entry.commit {
                Some(ticket) => Some(ticket.await),
                None => None,
            };
            if entry.header.qos == 2 && storage_answer(&committed(result)).is_none() {
                qos2::lock(&self.qos2.ids).insert(entry.header.pkid);
            }
        }
    }

    /// Hands packets to the router; waits (the session reads no more from its socket) while
    /// the router lags.
    async fn send_to_broker(&mut self, packets: Vec<Packet>) -> Result<(), SessionError> {
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

/// How long the session (and its unreleased QoS 2 ids) outlives a connection: 3.1.1 clean
/// session, until the end of the connection; else for ever. MQTT 5: the Session Expiry
/// Interval of the CONNECT (absent or 0: until the end; 0xFFFFFFFF: for ever).
fn session_keep(version: Version, clean: bool, session_expiry: Option<u32>) -> Option<Duration> {
    match (version, session_expiry.unwrap_or(0)) {
        (Version::V311, _) if clean => None,
        (Version::V311, _) | (Version::V5, u32::MAX) => Some(Duration::MAX),
        (Version::V5, 0) => None,
        (Version::V5, seconds) => Some(Duration::from_secs(u64::from(seconds))),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_id_patterns() {
        assert!(client_id_allowed(None, "s1", "s1"));
        assert!(!client_id_allowed(None, "s1", "s2"));
        assert!(client_id_allowed(Some("{device}-*"), "s1", "s1-abc"));
        assert!(!client_id_allowed(Some("{device}-*"), "s1", "s2-abc"));
        assert!(!client_id_allowed(Some("{device}-*"), "s1", "s1-a/b"));
        assert!(client_id_allowed(Some("gw-{device}"), "s1", "gw-s1"));
        assert!(!client_id_allowed(Some("gw-{device}"), "s1", "gw-s1x"));
    }

    #[test]
    fn session_lifetimes() {
        assert_eq!(session_keep(Version::V311, true, None), None);
        assert_eq!(
            session_keep(Version::V311, false, None),
            Some(Duration::MAX)
        );
        assert_eq!(session_keep(Version::V5, false, None), None);
        assert_eq!(session_keep(Version::V5, false, Some(0)), None);
        assert_eq!(
            session_keep(Version::V5, true, Some(60)),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            session_keep(Version::V5, false, Some(u32::MAX)),
            Some(Duration::MAX)
        );
    }

    #[test]
    fn v311_connack_codes_stay_in_range() {
        for code in [
            ConnectReturnCode::BadUserNamePassword,
            ConnectReturnCode::ServerUnavailable,
            ConnectReturnCode::NotAuthorized,
        ] {
            let mut out = BytesMut::new();
            Codec::new(Version::V311)
                .write(refused_connack(Version::V311, code), &mut out)
                .unwrap();
            assert!(out[3] <= 5, "{code:?} -> {}", out[3]);
        }
    }
}
