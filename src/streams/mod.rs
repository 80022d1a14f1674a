//! The Kinesis Data Streams model: streams, shards, hash-key ranges, sequence numbers,
//! iterators and resharding. Pure logic with no I/O; the storage writer owns the live copy.

pub mod config;
pub mod consumer;
pub mod hash;
pub mod iterator;
pub mod model;
pub mod sequence;
pub mod settings;
pub mod validate;

pub use consumer::{ConsumerError, StreamConsumer, MAX_CONSUMERS_PER_STREAM};
pub use hash::{hash_key_of, parse_explicit_hash_key, HashRange};
pub use iterator::{IteratorError, ShardIterator, ITERATOR_TTL_MS};
pub use model::{
    parse_shard_id, shard_id, OnFull, ReshardError, ShardMeta, StreamMeta, StreamMode, UidSource,
    MAX_RETENTION_HOURS, MIN_RETENTION_HOURS, SHARD_LIMIT,
};
pub use sequence::{Position, SequenceNumber};
pub use settings::{ShardMetric, StreamSettings};
