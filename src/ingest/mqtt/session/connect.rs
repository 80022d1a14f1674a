//! The CONNECT phase of a session: read the CONNECT within the connect timeout,
//! authenticate, check the last will against the publish ACL, take a connection slot, open
//! the broker link and answer CONNACK. Every refusal is answered with a CONNACK code the
//! client's protocol version knows, then the connection closes.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use rumqttd::local::LinkRx;
use rumqttd::protocol::{
    ConnAck, ConnAckProperties, Connect, ConnectReturnCode, LastWill, LastWillProperties, Packet,
    PublishProperties,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::OwnedSemaphorePermit;

use super::super::admission::Pending;
use super::super::codec::{self, Codec, Version};
use super::super::link::RouterLink;
use super::super::shared::MqttShared;
use super::auth::{authenticate, Identity};
use super::SessionError;
use crate::devices::topics;

/// A last will and the properties it is published with.
pub(super) type Will = (LastWill, Option<PublishProperties>);

/// An accepted connection: CONNACK (success) has been sent.
pub(super) struct Connected {
    pub(super) codec: Codec,
    pub(super) identity: Identity,
    pub(super) will: Option<Will>,
    /// The connection slot, held until the session ends.
    pub(super) slot: OwnedSemaphorePermit,
    pub(super) link_tx: RouterLink,
    pub(super) link_rx: LinkRx,
    pub(super) clean: bool,
    /// The negotiated keep-alive, seconds (`None`: none).
    pub(super) keep_alive: Option<u16>,
    /// How long the session outlives the connection (see [`session_keep`]).
    pub(super) keep: Option<Duration>,
}

/// Runs the CONNECT phase on a fresh connection. `rbuf` keeps what was read after the CONNECT.
pub(super) async fn handshake<S>(
    stream: &mut S,
    rbuf: &mut BytesMut,
    shared: &MqttShared,
    certificate_device: Option<String>,
    pending: Pending,
) -> Result<Connected, SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (version, connect) = read_connect(stream, rbuf, shared).await?;
    let codec = Codec::new(version);
    let Packet::Connect(connect, connect_props, will, will_props, login) = connect else {
        return Err(SessionError::Protocol("the first packet must be CONNECT"));
    };
    let login = login.map(|l| (l.username, l.password));
    let identity = match authenticate(shared, &connect.client_id, login, certificate_device).await {
        Ok(identity) => identity,
        Err((code, reason)) => {
            crate::observe::emit(super::super::metrics::ConnectRefused {
                stats: &shared.stats,
                client_id: &connect.client_id,
                reason,
            });
            return Err(refuse(stream, &codec, code, reason).await);
        }
    };
    let will: Option<Will> = will.map(|w| (w, will_properties(will_props)));
    if !will_allowed(shared, &identity, will.as_ref()) {
        let reason = "last will outside the publish ACL";
        return Err(refuse(stream, &codec, ConnectReturnCode::NotAuthorized, reason).await);
    }
    // Authenticated: from the pending budget to a connection slot (held until the end).
    let Some(slot) = shared.admission.connect() else {
        crate::observe::emit(super::super::metrics::ConnectionsFull {
            stats: &shared.stats,
            device: identity.name(),
            limit: shared.settings.max_connections,
        });
        let reason = "mqtt.max_connections reached";
        return Err(refuse(stream, &codec, ConnectReturnCode::ServerUnavailable, reason).await);
    };
    drop(pending);
    let clean = connect.clean_session;
    let keep = session_keep(
        version,
        clean,
        connect_props.and_then(|p| p.session_expiry_interval),
    );
    let (link_tx, link_rx, session_present) =
        open_link(stream, shared, &codec, &identity, clean).await?;
    let keep_alive_max = shared.settings.keep_alive_max_s;
    let keep_alive = match connect.keep_alive {
        0 => None,
        k => Some(k.min(keep_alive_max)),
    };
    write_packet(
        stream,
        &codec,
        connack(shared, version, &connect, session_present),
    )
    .await?;
    Ok(Connected {
        codec,
        identity,
        will,
        slot,
        link_tx,
        link_rx,
        clean,
        keep_alive,
        keep,
    })
}

/// Reads the CONNECT (and the protocol version it names) within the connect timeout.
async fn read_connect<S: AsyncRead + Unpin>(
    stream: &mut S,
    rbuf: &mut BytesMut,
    shared: &MqttShared,
) -> Result<(Version, Packet), SessionError> {
    let max = shared.settings.max_packet_size;
    let timeout = shared.settings.connect_timeout;
    tokio::time::timeout(timeout, async {
        loop {
            match codec::read_connect(rbuf, max) {
                Ok(Some(found)) => return Ok(found),
                Ok(None) => read_more(stream, rbuf).await?,
                Err(e) => return Err(SessionError::Codec(e)),
            }
        }
    })
    .await
    .map_err(|_| SessionError::ConnectTimeout(timeout))?
}

/// A last will must have a valid topic name inside the device's publish ACL.
fn will_allowed(shared: &MqttShared, identity: &Identity, will: Option<&Will>) -> bool {
    let Some((w, _)) = will else { return true };
    let topic = std::str::from_utf8(&w.topic).unwrap_or("");
    if topics::check_topic_name(topic).is_ok() && identity.may_publish(topic) {
        return true;
    }
    shared.stats.refused_acl.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(
        device = identity.name(),
        topic,
        "MQTT last will refused: outside the device's publish ACL"
    );
    false
}

/// The rumqttd link of this client (blocking, so off the runtime); and whether the router
/// kept a session for it.
async fn open_link<S: AsyncWrite + Unpin>(
    stream: &mut S,
    shared: &MqttShared,
    codec: &Codec,
    identity: &Identity,
    clean: bool,
) -> Result<(RouterLink, LinkRx, bool), SessionError> {
    let link = {
        let broker = shared.broker.clone();
        let client_id = identity.client_id.clone();
        tokio::task::spawn_blocking(move || broker.link(&client_id, clean)).await
    };
    let Ok(Ok((link_tx, link_rx, connack))) = link else {
        let reason = "the broker has no room for another connection";
        return Err(refuse(stream, codec, ConnectReturnCode::ServerUnavailable, reason).await);
    };
    let session_present = match Option::<Packet>::from(connack) {
        Some(Packet::ConnAck(ack, _)) => ack.session_present,
        _ => false,
    };
    Ok((link_tx, link_rx, session_present))
}

/// The successful CONNACK; MQTT 5 also gets the gateway's limits.
fn connack(
    shared: &MqttShared,
    version: Version,
    connect: &Connect,
    session_present: bool,
) -> Packet {
    let max = shared.settings.max_packet_size;
    let keep_alive_max = shared.settings.keep_alive_max_s;
    let properties = (version == Version::V5).then(|| ConnAckProperties {
        receive_max: Some(shared.settings.max_inflight.min(u16::MAX as usize) as u16),
        max_packet_size: Some(max.min(u32::MAX as usize) as u32),
        topic_alias_max: Some(0),
        retain_available: Some(1),
        server_keep_alive: (connect.keep_alive > keep_alive_max).then_some(keep_alive_max),
        ..ConnAckProperties::default()
    });
    Packet::ConnAck(
        ConnAck {
            session_present,
            code: ConnectReturnCode::Success,
        },
        properties,
    )
}

/// Answers a refused CONNECT; the error the session ends with.
async fn refuse<S: AsyncWrite + Unpin>(
    stream: &mut S,
    codec: &Codec,
    code: ConnectReturnCode,
    reason: &'static str,
) -> SessionError {
    match write_packet(stream, codec, refused_connack(codec.version(), code)).await {
        Ok(()) => SessionError::Refused(reason),
        Err(error) => error,
    }
}

pub(super) fn refused_connack(version: Version, code: ConnectReturnCode) -> Packet {
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

/// How long the session (and its unreleased QoS 2 ids) outlives a connection: 3.1.1 clean
/// session, until the end of the connection; else for ever. MQTT 5: the Session Expiry
/// Interval of the CONNECT (absent or 0: until the end; 0xFFFFFFFF: for ever).
pub(super) fn session_keep(
    version: Version,
    clean: bool,
    session_expiry: Option<u32>,
) -> Option<Duration> {
    match (version, session_expiry.unwrap_or(0)) {
        (Version::V311, _) if clean => None,
        (Version::V311, _) | (Version::V5, u32::MAX) => Some(Duration::MAX),
        (Version::V5, 0) => None,
        (Version::V5, seconds) => Some(Duration::from_secs(u64::from(seconds))),
    }
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
