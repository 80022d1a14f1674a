//! Listing shards and resharding: ListShards, SplitShard, MergeShards, UpdateShardCount.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::types::*;
use super::{int_in_range, shard_out};
use crate::api::error::ApiError;
use crate::api::KinesisState;
use crate::storage::AdminOp;
use crate::streams::{parse_explicit_hash_key, parse_shard_id, ShardMeta, StreamMeta};

/// What a ListShards NextToken carries: where the next page starts and the filter in force.
#[derive(Serialize, Deserialize)]
struct ListShardsToken {
    stream: String,
    after: u64,
    filter: Option<Filter>,
}

#[derive(Clone, Copy, Serialize, Deserialize)]
enum Filter {
    AfterShardId(u64),
    AtTrimHorizon,
    FromTrimHorizon,
    AtLatest,
    AtTimestamp(u64),
    FromTimestamp(u64),
}

impl Filter {
    fn parse(input: ShardFilterIn) -> Result<Filter, ApiError> {
        let kind = input
            .filter_type
            .ok_or_else(|| ApiError::missing("shardFilter.type"))?;
        let timestamp = || {
            input.timestamp.map(|t| t.0).ok_or_else(|| {
                ApiError::invalid(format!("ShardFilter type {kind} needs a Timestamp."))
            })
        };
        Ok(match kind.as_str() {
            "AFTER_SHARD_ID" => {
                let id = input.shard_id.as_deref().ok_or_else(|| {
                    ApiError::invalid("ShardFilter type AFTER_SHARD_ID needs a ShardId.")
                })?;
                Filter::AfterShardId(parse_shard_id(id).ok_or_else(|| {
                    ApiError::invalid(format!("ShardFilter ShardId '{id}' is not a shard id."))
                })?)
            }
            "AT_TRIM_HORIZON" => Filter::AtTrimHorizon,
            "FROM_TRIM_HORIZON" => Filter::FromTrimHorizon,
            "AT_LATEST" => Filter::AtLatest,
            "AT_TIMESTAMP" => Filter::AtTimestamp(timestamp()?),
            "FROM_TIMESTAMP" => Filter::FromTimestamp(timestamp()?),
            other => return Err(ApiError::constraint(
                other,
                "shardFilter.type",
                "Member must satisfy enum value set: [AFTER_SHARD_ID, AT_TRIM_HORIZON, FROM_TRIM_HORIZON, AT_LATEST, AT_TIMESTAMP, FROM_TIMESTAMP]",
            )),
        })
    }

    fn keeps(self, stream: &StreamMeta, shard: &ShardMeta) -> bool {
        let created = shard.starting.millis();
        let open_at = |t: u64| created <= t && shard.closed.is_none_or(|c| c.at_ms > t);
        match self {
            Filter::AfterShardId(index) => shard.index > index,
            // The shards a reader starts with: those whose parents are gone.
            Filter::AtTrimHorizon => [shard.parent, shard.adjacent_parent]
                .into_iter()
                .flatten()
                .all(|p| stream.shard(p).is_none()),
            Filter::FromTrimHorizon => true,
            Filter::AtLatest => shard.is_open(),
            Filter::AtTimestamp(t) => {
                open_at(t)
                    || (created > t && shard.parent.is_none_or(|p| stream.shard(p).is_none()))
            }
            Filter::FromTimestamp(t) => shard.closed.is_none_or(|c| c.at_ms > t),
        }
    }
}

pub async fn list_shards(
    state: &KinesisState,
    input: ListShardsInput,
) -> Result<ListShardsOutput, ApiError> {
    let max = int_in_range(input.max_results, "maxResults", 1, 10_000, 1_000)? as usize;
    let (meta, after, filter) = match input.next_token.as_deref() {
        Some(token) => {
            if input.stream_name.is_some() || input.stream_arn.is_some() {
                return Err(ApiError::invalid(
                    "NextToken and StreamName cannot be provided together.",
                ));
            }
            let token: ListShardsToken = URL_SAFE_NO_PAD
                .decode(token.as_bytes())
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| ApiError::invalid("NextToken is malformed: pass the NextToken of a previous ListShards answer."))?;
            let meta = state
                .store
                .catalog()
                .stream(&token.stream)
                .cloned()
                .ok_or_else(|| state.stream_not_found(&token.stream))?;
            (meta, Some(token.after), token.filter)
        }
        None => {
            let meta = state.stream(&input)?;
            let after = match input.exclusive_start_shard_id.as_deref() {
                Some(id) => Some(parse_shard_id(id).ok_or_else(|| {
                    ApiError::invalid(format!("ExclusiveStartShardId '{id}' is not a shard id."))
                })?),
                None => None,
            };
            let filter = input.shard_filter.map(Filter::parse).transpose()?;
            (meta, after, filter)
        }
    };
    let mut shards = meta
        .shards
        .iter()
        .filter(|s| after.is_none_or(|a| s.index > a))
        .filter(|s| filter.is_none_or(|f| f.keeps(&meta, s)));
    let page: Vec<&ShardMeta> = shards.by_ref().take(max).collect();
    let next_token = match (shards.next(), page.last()) {
        (Some(_), Some(last)) => {
            let token = ListShardsToken {
                stream: meta.name.clone(),
                after: last.index,
                filter,
            };
            Some(URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).unwrap_or_default()))
        }
        _ => None,
    };
    Ok(ListShardsOutput {
        shards: page.into_iter().map(shard_out).collect(),
        next_token,
    })
}

fn shard_member(value: Option<String>, member: &str) -> Result<String, ApiError> {
    let value = value.ok_or_else(|| ApiError::missing(member))?;
    if parse_shard_id(&value).is_none() {
        return Err(ApiError::constraint(
            &value,
            member,
            "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
        ));
    }
    Ok(value)
}

pub async fn split_shard(state: &KinesisState, input: SplitShardInput) -> Result<(), ApiError> {
    let name = state.stream_name(&input)?;
    let shard = shard_member(input.shard_to_split, "shardToSplit")?;
    let key = input
        .new_starting_hash_key
        .ok_or_else(|| ApiError::missing("newStartingHashKey"))?;
    let matches_pattern = key == "0"
        || (key.len() <= 39 && !key.starts_with('0') && key.bytes().all(|b| b.is_ascii_digit()));
    if !matches_pattern {
        return Err(ApiError::constraint(
            &key,
            "newStartingHashKey",
            "Member must satisfy regular expression pattern: 0|([1-9]\\d{0,38})",
        ));
    }
    let new_start = parse_explicit_hash_key(&key).ok_or_else(|| {
        ApiError::invalid(format!(
            "NewStartingHashKey {key} is out of range: hash keys are 0 to 2^128-1."
        ))
    })?;
    state
        .store
        .admin(AdminOp::SplitShard {
            stream: name.clone(),
            shard,
            new_start,
        })
        .await
        .map_err(|e| state.store_error(&name, e))
}

pub async fn merge_shards(state: &KinesisState, input: MergeShardsInput) -> Result<(), ApiError> {
    let name = state.stream_name(&input)?;
    let shard = shard_member(input.shard_to_merge, "shardToMerge")?;
    let adjacent = shard_member(input.adjacent_shard_to_merge, "adjacentShardToMerge")?;
    state
        .store
        .admin(AdminOp::MergeShards {
            stream: name.clone(),
            shard,
            adjacent,
        })
        .await
        .map_err(|e| state.store_error(&name, e))
}

pub async fn update_shard_count(
    state: &KinesisState,
    input: UpdateShardCountInput,
) -> Result<UpdateShardCountOutput, ApiError> {
    let name = state.stream_name(&input)?;
    let target = input
        .target_shard_count
        .ok_or_else(|| ApiError::missing("targetShardCount"))?;
    let target = int_in_range(Some(target), "targetShardCount", 1, 1_000_000, 1)? as u32;
    match input.scaling_type.as_deref() {
        Some("UNIFORM_SCALING") => {}
        None => return Err(ApiError::missing("scalingType")),
        Some(other) => {
            return Err(ApiError::constraint(
                other,
                "scalingType",
                "Member must satisfy enum value set: [UNIFORM_SCALING]",
            ))
        }
    }
    let current = state
        .store
        .catalog()
        .stream(&name)
        .map(|m| m.open_shard_count())
        .ok_or_else(|| state.stream_not_found(&name))?;
    state
        .store
        .admin(AdminOp::UpdateShardCount {
            stream: name.clone(),
            target,
        })
        .await
        .map_err(|e| state.store_error(&name, e))?;
    Ok(UpdateShardCountOutput {
        stream_arn: state.stream_arn(&name),
        stream_name: name,
        current_shard_count: current,
        target_shard_count: target,
    })
}
