//! Listing shards and resharding: ListShards, SplitShard, MergeShards, UpdateShardCount.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::types::*;
use super::{exclusive_start, not_adjacent, shard_out, split_key_refused};
use crate::api::error::ApiError;
use crate::api::KinesisState;
use crate::storage::AdminOp;
use crate::streams::validate::resolve_shard_id;
use crate::streams::{parse_explicit_hash_key, shard_id, ShardMeta, StreamMeta};

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
                Filter::AfterShardId(resolve_shard_id(id).ok_or_else(|| {
                    ApiError::invalid(format!("ShardFilter ShardId '{id}' is not a shard id."))
                })?)
            }
            "AT_TRIM_HORIZON" => Filter::AtTrimHorizon,
            "FROM_TRIM_HORIZON" => Filter::FromTrimHorizon,
            "AT_LATEST" => Filter::AtLatest,
            "AT_TIMESTAMP" => Filter::AtTimestamp(timestamp()?),
            // FROM_TIMESTAMP; the model allows no other type.
            _ => Filter::FromTimestamp(timestamp()?),
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
    let max = input.max_results.map_or(1_000, |m| m as usize);
    if input.next_token.is_none() && input.stream_name.is_none() && input.stream_arn.is_none() {
        return Err(ApiError::invalid(
            "Either NextToken or StreamName should be provided.",
        ));
    }
    let (meta, after, filter) = match input.next_token.as_deref() {
        Some(token) => {
            // The token names the stream and where the listing goes on (AWS's API reference:
            // none of these may come with it).
            let with = if input.stream_name.is_some() || input.stream_arn.is_some() {
                Some("StreamName")
            } else if input.exclusive_start_shard_id.is_some() {
                Some("ExclusiveStartShardId")
            } else if input.stream_creation_timestamp.is_some() {
                Some("StreamCreationTimestamp")
            } else {
                None
            };
            if let Some(member) = with {
                return Err(ApiError::invalid(format!(
                    "NextToken and {member} cannot be provided together."
                )));
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
            let after = input
                .exclusive_start_shard_id
                .as_deref()
                .and_then(|id| exclusive_start(&meta, id));
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

/// The shard a SplitShard or MergeShards member names, as `shardId-NNNNNNNNNNNN`.
fn named_shard(
    state: &KinesisState,
    meta: &StreamMeta,
    value: Option<String>,
    member: &str,
) -> Result<ShardMeta, ApiError> {
    let text = value.ok_or_else(|| ApiError::missing(member))?;
    resolve_shard_id(&text)
        .and_then(|i| meta.shard(i))
        .cloned()
        .ok_or_else(|| {
            let shown = resolve_shard_id(&text).map_or(text.clone(), shard_id);
            state.shard_not_findable(&meta.name, &shown)
        })
}

/// A shard that was already split or merged cannot be again.
fn ensure_open(state: &KinesisState, meta: &StreamMeta, shard: &ShardMeta) -> Result<(), ApiError> {
    if shard.is_open() {
        return Ok(());
    }
    Err(ApiError::new(
        crate::api::error::ErrorKind::ResourceInUse,
        format!(
            "Shard {} in stream {} under account {} has already been merged or split, and thus is not eligible for merging or splitting.",
            shard.id(), meta.name, state.account_id
        ),
    ))
}

pub async fn split_shard(state: &KinesisState, input: SplitShardInput) -> Result<(), ApiError> {
    let meta = state.stream(&input)?;
    let shard = named_shard(state, &meta, input.shard_to_split, "shardToSplit")?;
    ensure_open(state, &meta, &shard)?;
    let key = input
        .new_starting_hash_key
        .ok_or_else(|| ApiError::missing("newStartingHashKey"))?;
    let refused = |key: &str| {
        ApiError::invalid(format!(
            "NewStartingHashKey {key} used in SplitShard() on shard {} in stream {} under account {} is not both greater than one plus the shard's StartingHashKey {} and less than the shard's EndingHashKey {}.",
            shard.id(), meta.name, state.account_id, shard.range.start, shard.range.end
        ))
    };
    // A key of up to 39 digits can still be 2^128 or more.
    let new_start = parse_explicit_hash_key(&key).ok_or_else(|| refused(&key))?;
    if new_start <= shard.range.start.saturating_add(1) || new_start >= shard.range.end {
        return Err(ApiError::invalid(split_key_refused(
            &meta.name,
            &state.account_id,
            &shard.id(),
            new_start,
            shard.range.start,
            shard.range.end,
        )));
    }
    state
        .store
        .admin(AdminOp::SplitShard {
            stream: meta.name.clone(),
            shard: shard.id(),
            new_start,
        })
        .await
        .map_err(|e| state.store_error(&meta.name, e))
}

pub async fn merge_shards(state: &KinesisState, input: MergeShardsInput) -> Result<(), ApiError> {
    let meta = state.stream(&input)?;
    let shard = named_shard(state, &meta, input.shard_to_merge, "shardToMerge")?;
    let adjacent = named_shard(
        state,
        &meta,
        input.adjacent_shard_to_merge,
        "adjacentShardToMerge",
    )?;
    ensure_open(state, &meta, &shard)?;
    ensure_open(state, &meta, &adjacent)?;
    // AWS merges a shard with the one whose range follows it, not the other way round. A
    // shard's range never changes, so this holds for the store's copy too.
    if !shard.range.is_followed_by(&adjacent.range) {
        return Err(ApiError::invalid(not_adjacent(
            &meta.name,
            &state.account_id,
            &shard.id(),
            &adjacent.id(),
        )));
    }
    state
        .store
        .admin(AdminOp::MergeShards {
            stream: meta.name.clone(),
            shard: shard.id(),
            adjacent: adjacent.id(),
        })
        .await
        .map_err(|e| state.store_error(&meta.name, e))
}

pub async fn update_shard_count(
    state: &KinesisState,
    input: UpdateShardCountInput,
) -> Result<UpdateShardCountOutput, ApiError> {
    let name = state.stream_name(&input)?;
    let target = input
        .target_shard_count
        .ok_or_else(|| ApiError::missing("targetShardCount"))?;
    let target = u32::try_from(target.min(i64::from(u32::MAX))).unwrap_or(u32::MAX);
    let current = state.meta(&name)?.open_shard_count();
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
