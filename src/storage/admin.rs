//! Administrative changes to streams, as the writer applies them inside a group commit.
//!
//! Invariant: an operation validates before it changes anything (the working copy or the
//! transaction); a storage error after that fails the whole group, which the writer then
//! aborts and reloads, so a half-done DeleteStream or reshard is never committed.

use std::collections::{BTreeMap, HashSet};

use redb::WriteTransaction;

/// Stream mode, on-demand scaling, enhanced monitoring and resource policies.
mod settings;

use super::error::storage;
use super::log::{drop_shard_tables, write_stream};
use super::schema::{self, ShardState};
use super::writer::Writer;
use super::{now_ms, StoreError};
use crate::streams::{
    OnFull, Position, ShardMeta, StreamMeta, StreamMode, UidSource, MAX_RETENTION_HOURS,
    MIN_RETENTION_HOURS, SHARD_LIMIT,
};

/// How a stream is created.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    pub name: String,
    pub shards: u32,
    pub retention_hours: u32,
    pub max_bytes: Option<u64>,
    pub on_full: OnFull,
    pub mode: StreamMode,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionChange {
    Increase,
    Decrease,
}

/// Changes to streams that go through the writer.
#[derive(Debug, Clone)]
pub enum AdminOp {
    CreateStream(StreamSpec),
    /// Creates the stream if missing; otherwise applies the spec's retention and quota.
    EnsureStream(StreamSpec),
    DeleteStream {
        name: String,
    },
    SplitShard {
        stream: String,
        shard: String,
        new_start: u128,
    },
    MergeShards {
        stream: String,
        shard: String,
        adjacent: String,
    },
    UpdateShardCount {
        stream: String,
        target: u32,
    },
    SetRetention {
        stream: String,
        hours: u32,
        change: RetentionChange,
    },
    AddTags {
        stream: String,
        tags: Vec<(String, String)>,
    },
    RemoveTags {
        stream: String,
        keys: Vec<String>,
    },
    /// Registers an enhanced fan-out consumer on a stream (RegisterStreamConsumer).
    RegisterConsumer {
        stream: String,
        consumer: crate::streams::StreamConsumer,
        /// Consumers the stream may have at most (`api.max_consumers_per_stream`).
        max: usize,
    },
    /// Removes a stream's consumer (DeregisterStreamConsumer).
    DeregisterConsumer {
        stream: String,
        consumer: String,
    },
    /// TagResource / UntagResource on a consumer's ARN (name and registration second).
    ConsumerTags {
        stream: String,
        consumer: String,
        created_s: u64,
        add: Vec<(String, String)>,
        remove: Vec<String>,
    },
    /// UpdateStreamMode; to ON_DEMAND only within the gateway's on-demand stream limit.
    SetStreamMode {
        stream: String,
        mode: StreamMode,
    },
    /// The on-demand scaler's UpdateShardCount: refused unless the stream is ON_DEMAND.
    ScaleOnDemand {
        stream: String,
        target: u32,
    },
    /// Enable (`enable`) or DisableEnhancedMonitoring.
    ShardMetrics {
        stream: String,
        metrics: Vec<crate::streams::ShardMetric>,
        enable: bool,
    },
    /// PutResourcePolicy (`Some`, already checked) or DeleteResourcePolicy (`None`).
    ResourcePolicy {
        stream: String,
        policy: Option<String>,
    },
    /// StartStreamEncryption (`Some`: its key file exists) or StopStreamEncryption (`None`).
    Encryption {
        stream: String,
        encryption: Option<crate::streams::settings::StreamEncryption>,
    },
}

pub const MAX_TAGS_PER_STREAM: usize = 50;

/// Changes to a consumer's durable rows: checkpoint rows and a definition, opaque bytes to
/// the store. A consumer is named by a string: a delivery stream by its own name (so the rows
/// of existing data directories stay where they are); later consumers (analytics
/// applications) by a name with a prefix such as `analytics:` that delivery stream names
/// cannot contain. Rows live in `delivery_checkpoints` ((consumer, row key) -> bytes) and
/// definitions in `delivery_streams` (consumer -> bytes); see `schema`.
#[derive(Debug, Clone)]
pub enum CheckpointOp {
    /// Writes rows (a delivery stream saves them after the destination confirmed).
    Save {
        consumer: String,
        rows: Vec<(u64, Vec<u8>)>,
    },
    /// Replaces all the consumer's rows with `rows` (an analytics checkpoint: its state
    /// chunks shrink as well as grow).
    Replace {
        consumer: String,
        rows: Vec<(u64, Vec<u8>)>,
    },
    /// Keeps the consumer's definition (a delivery stream created through the API: JSON).
    SaveDefinition { consumer: String, bytes: Vec<u8> },
    /// Forgets a consumer: its definition and all its rows.
    Remove { consumer: String },
}

struct Uids<'a>(&'a mut u64);

impl UidSource for Uids<'_> {
    fn next_uid(&mut self) -> u64 {
        *self.0 += 1;
        *self.0
    }
}

impl Writer {
    pub(super) fn stream_mut(&mut self, name: &str) -> Result<&mut StreamMeta, StoreError> {
        self.streams
            .get_mut(name)
            .ok_or_else(|| StoreError::StreamNotFound(name.to_string()))
    }

    pub(super) fn open_in_gateway(&self) -> u32 {
        self.streams.values().map(|s| s.open_shard_count()).sum()
    }

    pub(super) fn apply_admin(
        &mut self,
        txn: &WriteTransaction,
        op: AdminOp,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let name = match op {
            AdminOp::CreateStream(spec) => {
                if self.streams.contains_key(&spec.name) {
                    return Err(StoreError::StreamExists(spec.name));
                }
                self.create(spec, now)?
            }
            AdminOp::EnsureStream(spec) => match self.streams.get_mut(&spec.name) {
                None => self.create(spec, now)?,
                Some(stream) => {
                    if stream.retention_hours != spec.retention_hours
                        || stream.max_bytes != spec.max_bytes
                        || stream.on_full != spec.on_full
                    {
                        tracing::info!(stream = %spec.name, retention_hours = spec.retention_hours, max_bytes = ?spec.max_bytes, on_full = ?spec.on_full, "applying retention and quota from the configuration");
                    }
                    if stream.open_shard_count() != spec.shards {
                        tracing::warn!(stream = %spec.name, configured = spec.shards, open = stream.open_shard_count(), "the configured shard count differs from the stream's; reshard explicitly (kinedge streams reshard) to change it");
                    }
                    stream.retention_hours = spec.retention_hours;
                    stream.max_bytes = spec.max_bytes;
                    stream.on_full = spec.on_full;
                    spec.name
                }
            },
            AdminOp::DeleteStream { name } => {
                let stream = self
                    .streams
                    .remove(&name)
                    .ok_or_else(|| StoreError::StreamNotFound(name.clone()))?;
                for shard in &stream.shards {
                    drop_shard_tables(txn, shard.uid)?;
                    self.states.remove(&shard.uid);
                    txn.open_table(schema::SHARD_STATE)
                        .map_err(storage)?
                        .remove(shard.uid)
                        .map_err(storage)?;
                }
                txn.open_table(schema::STREAMS)
                    .map_err(storage)?
                    .remove(name.as_str())
                    .map_err(storage)?;
                return Ok(());
            }
            AdminOp::SplitShard {
                stream,
                shard,
                new_start,
            } => {
                self.reshard(&stream, |meta, last, uids, open| {
                    meta.split(&shard, new_start, now, last, uids, open)
                })?;
                stream
            }
            AdminOp::MergeShards {
                stream,
                shard,
                adjacent,
            } => {
                self.reshard(&stream, |meta, last, uids, _| {
                    meta.merge(&shard, &adjacent, now, last, uids)
                })?;
                stream
            }
            AdminOp::UpdateShardCount { stream, target } => {
                self.refuse_on_demand(&stream)?;
                self.reshard(&stream, |meta, last, uids, open| {
                    meta.update_shard_count(target, now, last, uids, open)
                })?;
                stream
            }
            AdminOp::SetRetention {
                stream,
                hours,
                change,
            } => {
                let meta = self.stream_mut(&stream)?;
                let current = meta.retention_hours;
                let refused = match change {
                    RetentionChange::Increase if hours < current => Some(format!("Requested retention period ({hours} hours) for stream {stream} can not be shorter than existing retention period ({current} hours). Use DecreaseStreamRetentionPeriod API.")),
                    RetentionChange::Decrease if hours > current => Some(format!("Requested retention period ({hours} hours) for stream {stream} can not be longer than existing retention period ({current} hours). Use IncreaseStreamRetentionPeriod API.")),
                    _ if !(MIN_RETENTION_HOURS..=MAX_RETENTION_HOURS).contains(&hours) => Some(format!("Requested retention period ({hours} hours) for stream {stream} is out of range: {MIN_RETENTION_HOURS} to {MAX_RETENTION_HOURS} hours.")),
                    _ => None,
                };
                if let Some(message) = refused {
                    return Err(StoreError::InvalidArgument(message));
                }
                meta.retention_hours = hours;
                stream
            }
            AdminOp::AddTags { stream, tags } => {
                let meta = self.stream_mut(&stream)?;
                let new_keys = tags
                    .iter()
                    .filter(|(k, _)| !meta.tags.contains_key(k))
                    .map(|(k, _)| k)
                    .collect::<HashSet<_>>()
                    .len();
                if meta.tags.len() + new_keys > MAX_TAGS_PER_STREAM {
                    return Err(StoreError::LimitExceeded(format!(
                        "Failed to add tags to stream {stream}: a stream can have at most {MAX_TAGS_PER_STREAM} tags (it has {}).",
                        meta.tags.len()
                    )));
                }
                meta.tags.extend(tags);
                stream
            }
            AdminOp::RemoveTags { stream, keys } => {
                let meta = self.stream_mut(&stream)?;
                for key in keys {
                    meta.tags.remove(&key);
                }
                stream
            }
            AdminOp::RegisterConsumer {
                stream,
                consumer,
                max,
            } => {
                let meta = self.stream_mut(&stream)?;
                crate::streams::consumer::register(&stream, &mut meta.consumers, consumer, max)?;
                stream
            }
            AdminOp::DeregisterConsumer { stream, consumer } => {
                let meta = self.stream_mut(&stream)?;
                crate::streams::consumer::deregister(&stream, &mut meta.consumers, &consumer)?;
                stream
            }
            AdminOp::ConsumerTags {
                stream,
                consumer,
                created_s,
                add,
                remove,
            } => {
                let meta = self.stream_mut(&stream)?;
                let found = crate::streams::consumer::find_mut(
                    &stream,
                    &mut meta.consumers,
                    &consumer,
                    created_s,
                )?;
                crate::streams::consumer::add_tags(&stream, found, add, MAX_TAGS_PER_STREAM)?;
                for key in remove {
                    found.tags.remove(&key);
                }
                stream
            }
            AdminOp::SetStreamMode { stream, mode } => self.set_stream_mode(stream, mode)?,
            AdminOp::ScaleOnDemand { stream, target } => self.scale_on_demand(stream, target)?,
            AdminOp::ShardMetrics {
                stream,
                metrics,
                enable,
            } => self.change_shard_metrics(stream, &metrics, enable)?,
            AdminOp::ResourcePolicy { stream, policy } => self.set_policy(stream, policy)?,
            AdminOp::Encryption { stream, encryption } => {
                self.stream_mut(&stream)?.settings.encryption = encryption;
                stream
            }
        };
        let meta = self
            .streams
            .get(&name)
            .ok_or_else(|| StoreError::StreamNotFound(name.clone()))?;
        for shard in &meta.shards {
            self.states.entry(shard.uid).or_insert(ShardState {
                last: shard.starting,
                ..ShardState::default()
            });
        }
        write_stream(txn, meta)
    }

    /// Applies a change to a stream's shards. The change works on a copy, so a refusal
    /// half-way (UpdateShardCount is several splits and merges) leaves the stream untouched.
    pub(super) fn reshard(
        &mut self,
        stream: &str,
        change: impl FnOnce(
            &mut StreamMeta,
            &dyn Fn(&ShardMeta) -> Position,
            &mut dyn UidSource,
            u32,
        ) -> Result<(), crate::streams::ReshardError>,
    ) -> Result<(), StoreError> {
        let open = self.open_in_gateway();
        let states = &self.states;
        let last = |s: &ShardMeta| states.get(&s.uid).map_or(s.starting, |st| st.last);
        let meta = self
            .streams
            .get_mut(stream)
            .ok_or_else(|| StoreError::StreamNotFound(stream.to_string()))?;
        let mut changed = meta.clone();
        let mut next_uid = self.next_uid;
        change(&mut changed, &last, &mut Uids(&mut next_uid), open)?;
        *meta = changed;
        self.next_uid = next_uid;
        Ok(())
    }

    fn create(&mut self, spec: StreamSpec, now: u64) -> Result<String, StoreError> {
        let open = self.open_in_gateway();
        if open + spec.shards > SHARD_LIMIT {
            return Err(StoreError::LimitExceeded(format!(
                "This request would exceed the gateway's limit of {SHARD_LIMIT} open shards (currently {open})."
            )));
        }
        if spec.mode == StreamMode::OnDemand {
            self.check_on_demand_room()?;
        }
        self.next_uid += 1;
        let uid = self.next_uid;
        let mut meta = StreamMeta::new(
            spec.name.clone(),
            uid,
            spec.shards,
            now,
            &mut Uids(&mut self.next_uid),
        );
        meta.retention_hours = spec.retention_hours;
        meta.max_bytes = spec.max_bytes;
        meta.on_full = spec.on_full;
        meta.mode = spec.mode;
        meta.tags = spec.tags;
        self.streams.insert(spec.name.clone(), meta);
        Ok(spec.name)
    }
}
