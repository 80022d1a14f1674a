//! Delivery streams: Firehose at the edge.
//!
//! A delivery stream reads a stream's shard logs (or its own direct-put stream) from a
//! durable checkpoint per shard, buffers records by size and time, runs processors,
//! compresses, and sends batches to one destination. The shard log is the buffer: nothing is
//! copied into a second queue, and a checkpoint moves only after the destination confirmed.
//! Through outages it backs off and keeps its place; when the destination answers again it
//! drains the backlog oldest-first at full speed. Video delivery streams carry cameras'
//! fragments instead (`sources::video`, reading the video fragment log), through the same
//! destinations, retry policy, error output, status and bandwidth cap.
//!
//! This part owns the delivery runners, their checkpoints (kept in the stream database by
//! the storage writer), status, the shared bandwidth cap, processors, compression and the
//! destinations.

pub mod backoff;
pub mod bandwidth;
pub mod batch;
pub mod checkpoint;
pub mod compression;
pub mod config;
pub mod dead_letter;
pub mod destinations;
mod metrics;
mod plan;
pub mod processors;
mod retry;
mod runner;
mod service;
pub mod sources;
pub mod status;

pub use service::{DeliveryService, DeliveryServiceError, DeliverySettings, VideoDelivery};
