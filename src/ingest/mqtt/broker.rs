//! The embedded pub/sub core: rumqttd's router, and links into it.
//!
//! kinedge owns the sockets; rumqttd's router does what a broker does for local subscribers
//! (wildcards, retained messages, persistent sessions, QoS to subscribers). Each connection
//! gets a local link; a shared system link publishes last wills, which kinedge keeps itself
//! (the router only fires wills for its own network connections). Sends into the router go
//! through `link::Bridge`, never blocking a runtime worker.

use std::sync::Arc;

use rumqttd::local::{LinkBuilder, LinkError, LinkRx, LinkTx};
use rumqttd::protocol::{Packet, Publish, PublishProperties};
use rumqttd::{Notification, Router};

use super::link::{Bridge, RouterLink};

/// The router's own limits.
#[derive(Debug, Clone, Copy)]
pub struct BrokerLimits {
    pub max_connections: usize,
}

/// Why the router refused a link (its error, as text: rumqttd's error type is large).
#[derive(Debug, thiserror::Error)]
#[error("MQTT broker core: {0}")]
pub struct BrokerError(String);

impl From<LinkError> for BrokerError {
    fn from(e: LinkError) -> Self {
        BrokerError(e.to_string())
    }
}

type LinkFactory =
    dyn Fn(&str, bool) -> Result<(LinkTx, LinkRx, Notification), BrokerError> + Send + Sync;

/// A handle on the router thread.
#[derive(Clone)]
pub struct Broker {
    new_link: Arc<LinkFactory>,
    bridge: Bridge,
    system: Arc<RouterLink>,
}

/// Not a valid device id (":" is not allowed in one), so no device can take its place.
const SYSTEM_CLIENT: &str = "kinedge:system";

impl Broker {
    /// Starts the router (one thread of its own).
    pub fn start(limits: BrokerLimits) -> Result<Broker, BrokerError> {
        let config = rumqttd::RouterConfig {
            // Device connections plus the system link.
            max_connections: limits.max_connections + 16,
            max_outgoing_packet_count: 200,
            max_segment_size: 64 * 1024,
            max_segment_count: 2,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        };
        let router_tx = Router::new(0, config).spawn();
        let new_link: Arc<LinkFactory> = Arc::new(move |client_id: &str, clean: bool| {
            LinkBuilder::new(client_id, router_tx.clone())
                .clean_session(clean)
                .topic_alias_max(0)
                .build()
                .map_err(BrokerError::from)
        });
        let bridge = Bridge::start()
            .map_err(|e| BrokerError(format!("cannot start the router bridge thread: {e}")))?;
        let (system, _rx, _ack) = new_link(SYSTEM_CLIENT, true)?;
        // The system link never subscribes; its receiver can go.
        Ok(Broker {
            new_link,
            system: Arc::new(bridge.link(system)),
            bridge,
        })
    }

    /// A link for a device connection. Blocking (it waits for the router): call it from a
    /// blocking context. Returns the link and the CONNACK the router made for it.
    pub fn link(
        &self,
        client_id: &str,
        clean_session: bool,
    ) -> Result<(RouterLink, LinkRx, Notification), BrokerError> {
        let (tx, rx, connack) = (self.new_link)(client_id, clean_session)?;
        Ok((self.bridge.link(tx), rx, connack))
    }

    /// Publishes a message as the gateway (an analytics result) to the router's subscribers,
    /// at QoS 0 (rumqttd 0.20 builds only QoS 0 publishes for a local link). Returns false
    /// when the router did not take it.
    pub async fn publish(&self, topic: bytes::Bytes, payload: bytes::Bytes) -> bool {
        let publish = Publish::new(topic, payload, false);
        match self.system.send(vec![Packet::Publish(publish, None)]).await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%error, "cannot hand an analytics result to the broker");
                false
            }
        }
    }

    /// Publishes a message as the gateway (a client's last will).
    pub async fn publish_system(
        &self,
        topic: bytes::Bytes,
        payload: bytes::Bytes,
        retain: bool,
        properties: Option<PublishProperties>,
    ) {
        let publish = Publish::new(topic, payload, retain);
        if let Err(error) = self
            .system
            .send(vec![Packet::Publish(publish, properties)])
            .await
        {
            tracing::warn!(%error, "cannot hand a will message to the broker");
        }
    }
}
