//! kinedge: Amazon Kinesis at the edge.
//!
//! One binary for ARM gateways: durable local shard logs in redb, a Kinesis-compatible HTTP
//! API, and (in later parts) MQTT ingest, Firehose-style delivery and video.

pub mod api;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod gateway;
pub mod ingest;
pub mod storage;
pub mod streams;
#[cfg(feature = "video")]
pub mod video;
