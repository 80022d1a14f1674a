//! Kinesis Data Analytics at the edge: continuous Flink SQL over streams.
//!
//! An application is a Flink SQL script (`CREATE TABLE` for its sources and sinks, then
//! `INSERT INTO ... SELECT`). `sql` parses and plans it into a pipeline of kinedge's own
//! streaming operators (`ops`: filters, projections, window aggregations, OVER aggregations);
//! `runtime` runs one pipeline per application over its input shards (parents before children)
//! and commits its output records together with its checkpoint (input positions, watermark,
//! window state) in one write transaction of the stream store: exactly once. `query` runs the
//! same engine over a stream's stored history, bounded. `service` owns the applications
//! (from the config and the API) and their status.
//!
//! Invariants: an application never writes output that is not in the same commit as the
//! checkpoint that covers its input; state is bounded by `max_state_keys`; a bad record goes to
//! the application's error output and never stops it; a query error stops only its application.

pub mod config;
pub mod format;
pub mod ops;
pub mod query;
pub mod runtime;
pub mod service;
pub mod sql;
pub mod value;

pub use service::{
    AnalyticsError, AnalyticsService, ApplicationDef, ApplicationOrigin, ApplicationState,
    ApplicationStatus, QueryOutput,
};

/// The prefix of an application's consumer name in the store (checkpoint rows, definition):
/// delivery stream names cannot contain ':', so the two never collide.
pub const CONSUMER_PREFIX: &str = "analytics:";
#[cfg(test)]
mod tests;
