//! What the device sends: each whole packet in the read buffer is answered (PINGRESP,
//! SUBACK, UNSUBACK, PUBCOMP) or queued (a PUBLISH waits in the in-flight FIFO for its
//! commit); what belongs to the broker (subscriptions, acknowledgements of deliveries) is
//! handed to it in one batch. A device never subscribes or publishes outside its ACL.

use std::sync::atomic::Ordering;

use bytes::BytesMut;
use rumqttd::protocol::{
    DisconnectReasonCode, Packet, PingResp, PubAckReason, PubComp, PubCompReason, PubRec,
    PubRecReason, Publish, PublishProperties, SubAck, Subscribe, SubscribeProperties,
    SubscribeReasonCode, UnsubAck, UnsubAckReason,
};
use tokio::sync::oneshot;

use super::super::codec::{CodecError, Frame, PublishHeader, Version};
use super::super::qos2;
use super::super::refusal::{self, Refusal};
use super::super::routes::PublishContext;
use super::connect::Will;
use super::inflight::{CommitTicket, Inflight};
use super::live::Session;
use super::SessionError;
use crate::devices::topics;
use crate::storage::{now_ms, NewRecord, StoreError};
use crate::streams::hash_key_of;

impl Session {
    /// Handles every whole packet in `rbuf`. Returns true when the client disconnected.
    pub(super) async fn handle_input(
        &mut self,
        rbuf: &mut BytesMut,
        will: &mut Option<Will>,
    ) -> Result<bool, SessionError> {
        let mut to_broker = Vec::new();
        while let Some(frame) = self.read_frame(rbuf)? {
            match frame.packet {
                Packet::Publish(publish, properties) => {
                    let header = frame.publish.unwrap_or_default();
                    self.on_publish(header, publish, properties).await?;
                }
                Packet::PubRel(rel, _) => self.on_pubrel(rel.pkid)?,
                // Acknowledgements of deliveries to this client belong to the broker.
                p @ (Packet::PubAck(..) | Packet::PubRec(..) | Packet::PubComp(..)) => {
                    to_broker.push(p)
                }
                Packet::Subscribe(subscribe, properties) => {
                    if let Some(allowed) = self.on_subscribe(subscribe, properties)? {
                        to_broker.push(allowed);
                    }
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

    /// The next whole packet of `rbuf`, if any. A packet over `mqtt.max_packet_size` or a
    /// malformed one ends the session (MQTT 5: after a DISCONNECT saying why).
    fn read_frame(&mut self, rbuf: &mut BytesMut) -> Result<Option<Frame>, SessionError> {
        let max = self.shared.settings.max_packet_size;
        match self.codec.read(rbuf, max) {
            Ok(frame) => Ok(frame),
            Err(CodecError::TooLarge(n)) => {
                self.shared
                    .stats
                    .refused_too_large
                    .fetch_add(1, Ordering::Relaxed);
                self.shared.activity.refused(self.identity.name());
                tracing::warn!(
                    device = self.identity.name(),
                    bytes = n,
                    "MQTT packet larger than mqtt.max_packet_size; closing the connection"
                );
                self.disconnect_v5(DisconnectReasonCode::PacketTooLarge);
                Err(SessionError::Codec(CodecError::TooLarge(n)))
            }
            Err(e) => {
                self.disconnect_v5(DisconnectReasonCode::MalformedPacket);
                Err(e.into())
            }
        }
    }

    /// PUBREL of a QoS 2 publish: the packet id is released.
    fn on_pubrel(&mut self, pkid: u16) -> Result<(), SessionError> {
        let reason = if qos2::lock(&self.qos2.ids).remove(&pkid) {
            PubCompReason::Success
        } else {
            PubCompReason::PacketIdentifierNotFound
        };
        self.write(Packet::PubComp(PubComp { pkid, reason }, None))
    }

    /// SUBSCRIBE: answers SUBACK with a code per filter; returns the SUBSCRIBE of the allowed
    /// filters for the broker, if any.
    fn on_subscribe(
        &mut self,
        subscribe: Subscribe,
        properties: Option<SubscribeProperties>,
    ) -> Result<Option<Packet>, SessionError> {
        let mut codes = Vec::with_capacity(subscribe.filters.len());
        let mut allowed = Vec::new();
        for filter in subscribe.filters {
            let valid = topics::check_filter(&filter.path).is_ok()
                && (!filter.path.starts_with('$') || filter.path.starts_with("$share/"));
            if valid && self.identity.may_subscribe(&filter.path) {
                codes.push(SubscribeReasonCode::Success(filter.qos));
                allowed.push(filter);
                continue;
            }
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
        let pkid = subscribe.pkid;
        self.write(Packet::SubAck(
            SubAck {
                pkid,
                return_codes: codes,
            },
            None,
        ))?;
        Ok((!allowed.is_empty()).then(|| {
            Packet::Subscribe(
                Subscribe {
                    pkid,
                    filters: allowed,
                },
                properties,
            )
        }))
    }

    /// A PUBLISH from the device: ACL, then (if routed) a commit; it is acknowledged and
    /// forwarded when its turn in the FIFO comes.
    async fn on_publish(
        &mut self,
        header: PublishHeader,
        publish: Publish,
        mut properties: Option<PublishProperties>,
    ) -> Result<(), SessionError> {
        let alias = properties.as_ref().is_some_and(|p| p.topic_alias.is_some());
        let topic = match topics::publish_topic(&publish.topic, alias) {
            Ok(t) => t.to_string(),
            Err(error) => return Err(self.unacceptable_topic(error)),
        };
        if !self.identity.may_publish(&topic) {
            self.shared
                .stats
                .refused_acl
                .fetch_add(1, Ordering::Relaxed);
            self.shared.activity.refused(self.identity.name());
            tracing::warn!(device = self.identity.name(), %topic, "MQTT publish refused: outside the device's publish ACL");
            return self.refuse_publish(
                header,
                PubAckReason::NotAuthorized,
                None,
                "publish outside the ACL",
            );
        }
        if header.qos == 2 && self.qos2_received(header)? {
            return Ok(());
        }
        let commit = self.submit(&topic, header, &publish).await;
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

    /// A PUBLISH whose topic makes the whole packet unacceptable: the session ends (MQTT 5:
    /// after a DISCONNECT with the code the spec gives).
    fn unacceptable_topic(&mut self, error: topics::PublishTopicError) -> SessionError {
        use topics::PublishTopicError as E;
        tracing::warn!(device = self.identity.name(), %error, "MQTT PUBLISH with an unacceptable topic; closing the connection");
        let reason_code = match error {
            E::InvalidUtf8 | E::Nul => DisconnectReasonCode::MalformedPacket,
            E::Empty => DisconnectReasonCode::ProtocolError,
            E::Wildcard => DisconnectReasonCode::TopicNameInvalid,
            E::AliasNotAllowed => DisconnectReasonCode::TopicAliasInvalid,
        };
        self.disconnect_v5(reason_code);
        SessionError::Protocol("a PUBLISH with an unacceptable topic")
    }

    /// For a QoS 2 PUBLISH: true when it was already stored (it is acknowledged again, not
    /// stored twice); an error when the client holds too many unreleased ones.
    fn qos2_received(&mut self, header: PublishHeader) -> Result<bool, SessionError> {
        let received = qos2::lock(&self.qos2.ids);
        if received.contains(&header.pkid) {
            drop(received);
            // A resent QoS 2 publish that was already stored (on this connection or an
            // earlier one of the session): acknowledge again only.
            self.write(Packet::PubRec(
                PubRec {
                    pkid: header.pkid,
                    reason: PubRecReason::Success,
                },
                None,
            ))?;
            return Ok(true);
        }
        // MQTT 5 §3.3.4: unreleased QoS 2 publishes count toward the Receive Maximum
        // (0x93 beyond it); 3.1.1 is bounded by the 65535 packet ids.
        let full = self.codec.version() == Version::V5
            && received.len() >= self.shared.settings.max_inflight;
        drop(received);
        if !full {
            return Ok(false);
        }
        tracing::warn!(
            device = self.identity.name(),
            limit = self.shared.settings.max_inflight,
            "MQTT client exceeded the receive maximum with unreleased QoS 2 publishes; closing the connection"
        );
        self.disconnect_v5(DisconnectReasonCode::ReceiveMaximumExceeded);
        Err(SessionError::Protocol(
            "more unreleased QoS 2 publishes than the receive maximum",
        ))
    }

    /// Queues the record of a routed publish for the next commit (in arrival order); `None`
    /// for an unrouted one.
    async fn submit(
        &mut self,
        topic: &str,
        header: PublishHeader,
        publish: &Publish,
    ) -> Option<CommitTicket> {
        let Some(route) = self.shared.routes.route(topic) else {
            self.shared.stats.unrouted.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let ctx = PublishContext {
            topic,
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

    pub(super) fn refuse_publish(
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
}
