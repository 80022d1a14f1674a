//! The Kinesis Data Streams API (`X-Amz-Target: Kinesis_20131202.<Operation>`).
//!
//! Each operation decodes its input, checks it the way Kinesis does (ValidationException for
//! model constraints, InvalidArgumentException for semantic ones), calls the store and
//! answers in the request's wire format.

pub mod fanout;
mod records;
mod shards;
mod streams;
pub mod types;

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
}

/// Operations of the Kinesis API that kinedge does not implement, answered with a clear
/// error instead of "unknown".
const UNSUPPORTED: &[&str] = &[
    "DeleteResourcePolicy",
    "DescribeAccountSettings",
    "DisableEnhancedMonitoring",
    "EnableEnhancedMonitoring",
    "GetResourcePolicy",
    "ListTagsForResource",
    "PutResourcePolicy",
    "StartStreamEncryption",
    "StopStreamEncryption",
    "TagResource",
    "UntagResource",
    "UpdateAccountSettings",
    "UpdateMaxRecordSize",
    "UpdateStreamMode",
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
            let out = records::get_records(state, wire.decode_owned(body).await?).await?;
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
            fanout::subscribe_to_shard(state, wire, wire.decode_owned(body).await?).await
        }
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

async fn output<I, O, F, Fut>(wire: Wire, body: Bytes, op: F) -> Result<Response, ApiError>
where
    I: DeserializeOwned + Send + 'static,
    O: Serialize,
    F: FnOnce(I) -> Fut,
    Fut: Future<Output = Result<O, ApiError>>,
{
    let input = wire.decode_owned(body).await?;
    let out = op(input).await?;
    wire.ok(&out)
}

async fn no_output<I, F, Fut>(wire: Wire, body: Bytes, op: F) -> Result<Response, ApiError>
where
    I: DeserializeOwned + Send + 'static,
    F: FnOnce(I) -> Fut,
    Fut: Future<Output = Result<(), ApiError>>,
{
    let input = wire.decode_owned(body).await?;
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

    /// A store error about stream `name`, with Kinesis's wording for a missing stream.
    fn store_error(&self, name: &str, e: crate::storage::StoreError) -> ApiError {
        match e {
            crate::storage::StoreError::StreamNotFound(_) => self.stream_not_found(name),
            other => other.into(),
        }
    }

    /// The stream named by StreamName or StreamARN, checked against Kinesis's name rules.
    fn stream_name(&self, input: &impl NamesStream) -> Result<String, ApiError> {
        let from_arn = match input.stream_arn() {
            Some(arn) => Some(parse_stream_arn(arn)?),
            None => None,
        };
        let name = match (input.stream_name(), from_arn) {
            (Some(name), Some(from_arn)) if name != from_arn => {
                return Err(ApiError::invalid(format!(
                    "StreamName {name} and StreamARN (stream {from_arn}) name different streams."
                )))
            }
            (Some(name), _) => name.to_string(),
            (None, Some(from_arn)) => from_arn,
            (None, None) => return Err(ApiError::missing("streamName")),
        };
        check_stream_name(&name)?;
        Ok(name)
    }

    /// The committed metadata of the stream an input names.
    fn stream(&self, input: &impl NamesStream) -> Result<Arc<StreamMeta>, ApiError> {
        let name = self.stream_name(input)?;
        self.store
            .catalog()
            .stream(&name)
            .cloned()
            .ok_or_else(|| self.stream_not_found(&name))
    }
}

pub(crate) fn check_stream_name(name: &str) -> Result<(), ApiError> {
    if name.chars().count() > crate::streams::validate::MAX_STREAM_NAME_CHARS {
        return Err(ApiError::constraint(
            name,
            "streamName",
            "Member must have length less than or equal to 128",
        ));
    }
    if !is_valid_stream_name(name) {
        return Err(ApiError::constraint(
            name,
            "streamName",
            "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
        ));
    }
    Ok(())
}

/// `arn:<partition>:kinesis:<region>:<account>:stream/<name>` -> name.
fn parse_stream_arn(arn: &str) -> Result<String, ApiError> {
    let bad = || {
        ApiError::invalid(format!(
            "StreamARN '{}' is not a Kinesis stream ARN (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME).",
            arn.chars().take(200).collect::<String>()
        ))
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" || parts[2] != "kinesis" {
        return Err(bad());
    }
    let name = parts[5].strip_prefix("stream/").ok_or_else(bad)?;
    check_stream_name(name)?;
    Ok(name.to_string())
}

/// An integer member checked against its model range.
fn int_in_range(
    value: Option<i64>,
    member: &str,
    min: i64,
    max: i64,
    default: i64,
) -> Result<i64, ApiError> {
    let v = value.unwrap_or(default);
    if v < min {
        return Err(ApiError::constraint(
            v,
            member,
            &format!("Member must have value greater than or equal to {min}"),
        ));
    }
    if v > max {
        return Err(ApiError::constraint(
            v,
            member,
            &format!("Member must have value less than or equal to {max}"),
        ));
    }
    Ok(v)
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
        assert!(parse_stream_arn("arn:aws:s3:::bucket").is_err());
        assert!(parse_stream_arn("arn:aws:kinesis:r:a:stream/bad name").is_err());
        assert!(parse_stream_arn("telemetry").is_err());
    }
}
