//! kinedge: Amazon Kinesis at the edge.
//!
//! One binary for ARM gateways: durable local shard logs in redb, a Kinesis-compatible HTTP
//! API, MQTT ingest, Firehose-style delivery streams and video, run as a systemd service.

pub mod api;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod gateway;
pub mod ingest;
pub mod metrics;
pub mod storage;
pub mod streams;
pub mod systemd;
#[cfg(feature = "video")]
pub mod video;
