//! MQTT ingest: kinedge's own MQTT listener in front of an embedded rumqttd router.
//!
//! Devices authenticate against the registry (`devices/<id>.toml`: Argon2 password hashes,
//! topic ACLs). Publishes that match a route become records in a stream; their PUBACK
//! (QoS 1) or PUBREC (QoS 2) is sent only after the commit that holds them. Every accepted
//! publish also goes to the router, so local subscribers get normal broker behaviour.

mod admission;
mod broker;
pub(crate) mod codec;
pub mod config;
pub mod devices;
mod link;
mod qos2;
mod refusal;
pub mod routes;
mod server;
mod session;
pub(crate) mod tls;
pub mod topics;

pub use devices::{Device, DeviceErrors, DeviceKind, DeviceRegistry};
pub use server::{MqttServer, MqttShared, MqttStats};
