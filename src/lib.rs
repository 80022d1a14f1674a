//! kinedge: Amazon Kinesis at the edge.
//!
//! One binary for ARM gateways: durable local shard logs in redb, a Kinesis-compatible HTTP
//! API, MQTT ingest, Firehose-style delivery streams and video, run as a systemd service.

pub mod analytics;
pub mod api;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod devices;
/// Entry points for the fuzz targets in fuzz/ and their property tests; not an API.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
pub mod ingest;
pub mod metrics;
pub mod observe;
pub mod ondemand;
pub mod storage;
pub mod streams;
pub mod systemd;
pub mod video;
