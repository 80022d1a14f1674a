//! MQTT ingest: kinedge's own MQTT listener in front of an embedded rumqttd router.
//!
//! Devices authenticate against the device registry (`crate::devices`: `devices/<id>.toml`,
//! Argon2 password hashes, topic ACLs). Publishes that match a route become records in a stream; their PUBACK
//! (QoS 1) or PUBREC (QoS 2) is sent only after the commit that holds them. Every accepted
//! publish also goes to the router, so local subscribers get normal broker behaviour.
//!
//! The listener (`server`) admits connections and starts a `session` for each; both share
//! only `shared` (store, broker, registry, routes, limits, counters), so neither imports the
//! other. Never: acknowledge a publish before its commit, or block the runtime (password
//! checks and the router's blocking calls run on blocking threads).

mod activity;
mod admission;
mod broker;
pub(crate) mod codec;
pub mod config;
mod link;
mod metrics;
mod qos2;
mod refusal;
pub mod routes;
mod server;
mod session;
mod shared;
pub(crate) mod tls;

pub use broker::Broker;
pub use server::MqttServer;
pub use shared::{MqttShared, MqttStats};
