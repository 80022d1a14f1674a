//! MQTT ingest: who may connect and what each device may publish and subscribe to.
//!
//! This part holds the device registry (`devices/<id>.toml`: Argon2 password hashes, topic
//! ACLs, metadata) and MQTT topic-filter logic. The listener that authenticates against the
//! registry, commits routed publishes before acknowledging them and hands them to the
//! embedded broker builds on it.

pub mod devices;
pub mod topics;

pub use devices::{Device, DeviceErrors, DeviceKind, DeviceRegistry};
