//! The Kinesis Data Streams API (`X-Amz-Target: Kinesis_20131202.<Operation>`).
//!
//! Each operation decodes its input, checks it the way Kinesis does (every model constraint
//! in one ValidationException by `validate`, before the operation runs; then
//! InvalidArgumentException / ResourceNotFoundException for semantic ones, worded as AWS words
//! them), calls the store and answers in the request's wire format.

pub mod access;
mod capacity;
pub mod encryption;
pub mod fanout;
pub mod monitoring;
mod policy;
mod records;
mod shards;
mod streams;
pub mod tagging;
pub mod types;
pub mod validate;

use std::future::Future;
use std::sync::Arc;

use axum::response::Response;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::{ApiError, ErrorKind};
use super::protocol::Wire;
use crate::streams::validate::is_valid_stream_name;
use crate::streams::{ShardMeta, StreamMeta};
use types::{HashKeyRangeOut, NamesStream, SequenceNumberRangeOut, ShardOut};

/// What the Kinesis operations share.
pub struct KinesisState {
    pub store: crate::storage::Store,
    pub region: String,
    pub account_id: String,
    /// How long shard iterators stay valid (5 minutes, as in Kinesis).
    pub iterator_ttl_ms: u64,
    /// GetRecords calls served at once. A call can hold up to 10 MiB of records plus its
    /// encoded answer, so this bounds the memory reads take.
    pub read_slots: tokio::sync::Semaphore,
    /// Enhanced fan-out's active subscriptions (`fanout`).
    pub fanout: Arc<fanout::Subscriptions>,
    /// Consumers one stream can have (`api.max_consumers_per_stream`; Kinesis: 20).
    pub max_consumers_per_stream: usize,
    /// Enhanced monitoring's shard-level metrics (also a `/metrics` reporter).
    pub monitor: Arc<monitoring::ShardMonitor>,
}

/// Operations of the Kinesis API that kinedge does not implement, answered with a clear
/// error instead of "unknown".
const UNSUPPORTED: &[&str] = &[
    "DescribeAccountSettings",
    "UpdateAccountSettings",
    "UpdateMaxRecordSize",
    "UpdateStreamWarmThroughput",
];

/// Runs one Kinesis operation.
pub async fn dispatch(
    state: &KinesisState,
    wire: Wire,
    operation: &str,
    body: Bytes,
) -> Result<Response, ApiError> {
    match operation {
        "CreateStream" => no_output(wire, body, |i| streams::create_stream(state, i)).await,
        "DeleteStream" => no_output(wire, body, |i| streams::delete_stream(state, i)).await,
        "DescribeStream" => output(wire, body, |i| streams::describe_stream(state, i)).await,
        "DescribeStreamSummary" => {
            output(wire, body, |i| streams::describe_stream_summary(state, i)).await
        }
        "ListStreams" => output(wire, body, |i| streams::list_streams(state, i)).await,
        "DescribeLimits" => output(wire, body, |i: serde::de::IgnoredAny| streams::describe_limits(state, i)).await,
        "IncreaseStreamRetentionPeriod" => {
            no_output(wire, body, |i| streams::increase_retention(state, i)).await
        }
        "DecreaseStreamRetentionPeriod" => {
            no_output(wire, body, |i| streams::decrease_retention(state, i)).await
        }
        "AddTagsToStream" => no_output(wire, body, |i| streams::add_tags(state, i)).await,
        "ListTagsForStream" => output(wire, body, |i| streams::list_tags(state, i)).await,
        "RemoveTagsFromStream" => no_output(wire, body, |i| streams::remove_tags(state, i)).await,
        "ListShards" => output(wire, body, |i| shards::list_shards(state, i)).await,
        "SplitShard" => no_output(wire, body, |i| shards::split_shard(state, i)).await,
        "MergeShards" => no_output(wire, body, |i| shards::merge_shards(state, i)).await,
        "UpdateShardCount" => output(wire, body, |i| shards::update_shard_count(state, i)).await,
        "PutRecord" => output(wire, body, |i| records::put_record(state, i)).await,
        "PutRecords" => output(wire, body, |i| records::put_records(state, i)).await,
        "GetShardIterator" => output(wire, body, |i| records::get_shard_iterator(state, i)).await,
        "GetRecords" => {
            let _slot = state.read_slots.acquire().await.map_err(|_| {
                ApiError::new(ErrorKind::InternalFailure, "the gateway is shutting down")
            })?;
            let input = decode(wire, body).await?;
            let out = records::get_records(state, input).await?;
            let capacity = out.records.json_size_hint() + 1024;
            wire.ok_large(out, capacity).await
        }
        "RegisterStreamConsumer" => {
            output(wire, body, |i| fanout::register_stream_consumer(state, i)).await
        }
        "DeregisterStreamConsumer" => {
            no_output(wire, body, |i| fanout::deregister_stream_consumer(state, i)).await
        }
        "DescribeStreamConsumer" => {
            output(wire, body, |i| fanout::describe_stream_consumer(state, i)).await
        }
        "ListStreamConsumers" => {
            output(wire, body, |i| fanout::list_stream_consumers(state, i)).await
        }
        "SubscribeToShard" => {
            fanout::subscribe_to_shard(state, wire, decode(wire, body).await?).await
        }
        "TagResource" => no_output(wire, body, |i| tagging::tag_resource(state, i)).await,
        "UntagResource" => no_output(wire, body, |i| tagging::untag_resource(state, i)).await,
        "ListTagsForResource" => {
            output(wire, body, |i| tagging::list_tags_for_resource(state, i)).await
        }
        "UpdateStreamMode" => {
            no_output(wire, body, |i| capacity::update_stream_mode(state, i)).await
        }
        "EnableEnhancedMonitoring" => output(wire, body, |i| monitoring::enable(state, i)).await,
        "DisableEnhancedMonitoring" => output(wire, body, |i| monitoring::disable(state, i)).await,
        "PutResourcePolicy" => no_output(wire, body, |i| policy::put(state, i)).await,
        "GetResourcePolicy" => output(wire, body, |i| policy::get(state, i)).await,
        "DeleteResourcePolicy" => no_output(wire, body, |i| policy::delete(state, i)).await,
        "StartStreamEncryption" => no_output(wire, body, |i| encryption::start(state, i)).await,
        "StopStreamEncryption" => no_output(wire, body, |i| encryption::stop(state, i)).await,
        other if UNSUPPORTED.contains(&other) => Err(ApiError::new(
            ErrorKind::UnknownOperation,
            format!("Kinesis operation {other} is not supported by kinedge (see the API compatibility table in docs/kinesis-api.md)."),
        )),
        other => Err(ApiError::new(
            ErrorKind::UnknownOperation,
            format!("Unknown Kinesis operation '{}'.", other.chars().take(100).collect::<String>()),
        )),
    }
}

/// Decodes an input (type errors worded as AWS words them) and checks it against its model.
async fn decode<I>(wire: Wire, body: Bytes) -> Result<I, ApiError>
where
    I: DeserializeOwned + validate::Validate + Send + 'static,
{
    let input = wire
        .decode_owned(body)
        .await
        .map_err(validate::serialization::aws_words)?;
    validate::check(&input)?;
    Ok(input)
}

async fn output<I, O, F, Fut>(wire: Wire, body: Bytes, op: F) -> Result<Response, ApiError>
where
    I: DeserializeOwned + validate::Validate + Send + 'static,
    O: Serialize,
    F: FnOnce(I) -> Fut,
    Fut: Future<Output = Result<O, ApiError>>,
{
    let input = decode(wire, body).await?;
    let out = op(input).await?;
    wire.ok(&out)
}

async fn no_output<I, F, Fut>(wire: Wire, body: Bytes, op: F) -> Result<Response, ApiError>
where
    I: DeserializeOwned + validate::Validate + Send + 'static,
    F: FnOnce(I) -> Fut,
    Fut: Future<Output = Result<(), ApiError>>,
{
    let input = decode(wire, body).await?;
    op(input).await?;
    Ok(wire.empty())
}

impl KinesisState {
    pub fn stream_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:kinesis:{}:{}:stream/{name}",
            self.region, self.account_id
        )
    }

    fn stream_not_found(&self, name: &str) -> ApiError {
        ApiError::not_found(format!(
            "Stream {name} under account {} not found.",
            self.account_id
        ))
    }

    /// A store error about stream `name`, worded as Kinesis words it.
    fn store_error(&self, name: &str, e: crate::storage::StoreError) -> ApiError {
        use crate::storage::StoreError;
        use crate::streams::ReshardError;
        let account = &self.account_id;
        match e {
            StoreError::StreamNotFound(_) => self.stream_not_found(name),
            StoreError::Reshard(ReshardError::ShardNotFound { shard, .. }) => {
                self.shard_not_findable(name, &shard)
            }
            StoreError::Reshard(ReshardError::ShardClosed { shard, .. }) => ApiError::new(
                ErrorKind::ResourceInUse,
                format!("Shard {shard} in stream {name} under account {account} has already been merged or split, and thus is not eligible for merging or splitting."),
            ),
            StoreError::Reshard(ReshardError::NotAdjacent { a, b, .. }) => {
                ApiError::invalid(not_adjacent(name, account, &a, &b))
            }
            StoreError::Reshard(ReshardError::SplitKeyOutOfRange {
                shard, key, start, end, ..
            }) => ApiError::invalid(split_key_refused(name, account, &shard, key, start, end)),
            other => other.into(),
        }
    }

    /// The stream named by StreamName or StreamARN (both already checked against the model).
    fn stream_name(&self, input: &impl NamesStream) -> Result<String, ApiError> {
        let from_arn = input.stream_arn().map(parse_stream_arn).transpose()?;
        match (input.stream_name(), from_arn) {
            (Some(name), Some(from_arn)) if name != from_arn => Err(ApiError::invalid(format!(
                "StreamARN {} and StreamName {name} do not name the same stream.",
                input.stream_arn().unwrap_or_default()
            ))),
            (Some(name), _) => Ok(name.to_string()),
            (None, Some(from_arn)) => Ok(from_arn),
            (None, None) => Err(ApiError::missing("streamName")),
        }
    }

    /// The committed metadata of the stream an input names.
    fn stream(&self, input: &impl NamesStream) -> Result<Arc<StreamMeta>, ApiError> {
        let name = self.stream_name(input)?;
        self.meta(&name)
    }

    /// The committed metadata of stream `name`.
    fn meta(&self, name: &str) -> Result<Arc<StreamMeta>, ApiError> {
        self.store
            .catalog()
            .stream(name)
            .cloned()
            .ok_or_else(|| self.stream_not_found(name))
    }

    /// "Shard shardId-000000000009 in stream foo under account 123456789012 does not exist"
    fn shard_not_found(&self, stream: &str, index: u64) -> ApiError {
        ApiError::not_found(format!(
            "Shard {} in stream {stream} under account {} does not exist",
            crate::streams::shard_id(index),
            self.account_id
        ))
    }

    /// "Could not find shard abc in stream foo under account 123456789012." (SplitShard,
    /// MergeShards, and a ShardId that names no shard number).
    fn shard_not_findable(&self, stream: &str, shard: &str) -> ApiError {
        ApiError::not_found(format!(
            "Could not find shard {shard} in stream {stream} under account {}.",
            self.account_id
        ))
    }
}

/// The stream name of a StreamARN that passed the model's pattern: the text after
/// `:stream/`, which must itself be a stream name.
fn parse_stream_arn(arn: &str) -> Result<String, ApiError> {
    let name = arn
        .rsplit_once(":stream/")
        .map(|(_, name)| name)
        .filter(|name| is_valid_stream_name(name))
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "StreamARN {} is not a valid Kinesis stream ARN (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME).",
                arn.chars().take(200).collect::<String>()
            ))
        })?;
    Ok(name.to_string())
}

/// Where a listing that starts after shard `id` (ExclusiveStartShardId) goes on: after the
/// shard the id names, or, for an id that names no shard number, after the shards whose ids
/// sort before it (None: from the first shard).
fn exclusive_start(meta: &StreamMeta, id: &str) -> Option<u64> {
    crate::streams::validate::resolve_shard_id(id).or_else(|| {
        meta.shards
            .iter()
            .filter(|s| s.id().as_str() <= id)
            .map(|s| s.index)
            .max()
    })
}

/// MergeShards of shards that are not an adjacent pair, in that order.
fn not_adjacent(stream: &str, account: &str, a: &str, b: &str) -> String {
    format!("Shards {a} and {b} in stream {stream} under account {account} are not an adjacent pair of shards eligible for merging")
}

/// SplitShard at a key that does not leave both children a range.
fn split_key_refused(
    stream: &str,
    account: &str,
    shard: &str,
    key: u128,
    start: u128,
    end: u128,
) -> String {
    format!("NewStartingHashKey {key} used in SplitShard() on shard {shard} in stream {stream} under account {account} is not both greater than one plus the shard's StartingHashKey {start} and less than the shard's EndingHashKey {end}.")
}

fn hash_range_out(range: crate::streams::HashRange) -> HashKeyRangeOut {
    HashKeyRangeOut {
        starting_hash_key: range.start.to_string(),
        ending_hash_key: range.end.to_string(),
    }
}

fn shard_out(shard: &ShardMeta) -> ShardOut {
    ShardOut {
        shard_id: shard.id(),
        parent_shard_id: shard.parent.map(crate::streams::shard_id),
        adjacent_parent_shard_id: shard.adjacent_parent.map(crate::streams::shard_id),
        hash_key_range: hash_range_out(shard.range),
        sequence_number_range: SequenceNumberRangeOut {
            starting_sequence_number: shard.starting_sequence().to_string(),
            ending_sequence_number: shard.ending_sequence().map(|s| s.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_arns() {
        assert_eq!(
            parse_stream_arn("arn:aws:kinesis:eu-west-1:123456789012:stream/telemetry").unwrap(),
            "telemetry"
        );
        assert!(parse_stream_arn("arn:aws:kinesis:r:000000000000:stream/bad name").is_err());
        assert!(parse_stream_arn("telemetry").is_err());
    }
}
