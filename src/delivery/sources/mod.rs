//! The sources of the delivery engine: what a delivery stream reads, each from a durable
//! checkpoint that moves only after the destination confirmed (or the error output took what
//! the engine gave up on).
//!
//! - `shard`: the shard logs of a stream, or of a delivery stream's own direct-put stream,
//!   read in batches of records by the record runner (`delivery::runner`).
//! - `video`: camera fragments read from the video fragment log, put as objects (one fragment
//!   or a `segment_minutes` run each), with the runner's retry policy, bandwidth cap, error
//!   output and status.

pub mod shard;
#[cfg(feature = "video")]
pub mod video;
