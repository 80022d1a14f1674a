//! Stream lifecycle, description, listing, retention, tags and limits.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::types::*;
use super::{check_stream_name, int_in_range, shard_out};
use crate::api::error::{ApiError, ErrorKind};
use crate::api::protocol::Timestamp;
use crate::api::KinesisState;
use crate::storage::{AdminOp, RetentionChange, StreamSpec};
use crate::streams::{
    parse_shard_id, OnFull, StreamMeta, StreamMode, MIN_RETENTION_HOURS, SHARD_LIMIT,
};

const ON_DEMAND_SHARDS: u32 = 4;
const MAX_TAGS_PER_CALL: usize = 50;

fn mode_out(meta: &StreamMeta) -> StreamModeOut {
    StreamModeOut {
        stream_mode: meta.mode.as_aws(),
    }
}

fn no_metrics() -> Vec<EnhancedMetricsOut> {
    vec![EnhancedMetricsOut {
        shard_level_metrics: Vec::new(),
    }]
}

pub async fn create_stream(state: &KinesisState, input: CreateStreamInput) -> Result<(), ApiError> {
    let name = input
        .stream_name
        .ok_or_else(|| ApiError::missing("streamName"))?;
    check_stream_name(&name)?;
    let mode = match input
        .stream_mode_details
        .and_then(|d| d.stream_mode)
        .as_deref()
    {
        None | Some("PROVISIONED") => StreamMode::Provisioned,
        Some("ON_DEMAND") => StreamMode::OnDemand,
        Some(other) => {
            return Err(ApiError::constraint(
                other,
                "streamModeDetails.streamMode",
                "Member must satisfy enum value set: [PROVISIONED, ON_DEMAND]",
            ))
        }
    };
    let shards = match (mode, input.shard_count) {
        (StreamMode::OnDemand, None) => ON_DEMAND_SHARDS,
        (StreamMode::Provisioned, None) => {
            return Err(ApiError::invalid(
                "ShardCount is required for a PROVISIONED stream.",
            ))
        }
        (_, Some(n)) => {
            let n = int_in_range(Some(n), "shardCount", 1, i64::from(u32::MAX), 1)?;
            if n > i64::from(SHARD_LIMIT) {
                return Err(ApiError::new(
                    ErrorKind::LimitExceeded,
                    format!(
                        "ShardCount {n} exceeds the gateway's limit of {SHARD_LIMIT} open shards."
                    ),
                ));
            }
            n as u32
        }
    };
    let tags = input.tags.unwrap_or_default();
    check_tags(&tags)?;
    state
        .store
        .admin(AdminOp::CreateStream(StreamSpec {
            name,
            shards,
            retention_hours: MIN_RETENTION_HOURS,
            max_bytes: None,
            on_full: OnFull::OverwriteOldest,
            mode,
            tags,
        }))
        .await
        .map_err(|e| match e {
            crate::storage::StoreError::StreamExists(name) => ApiError::new(
                ErrorKind::ResourceInUse,
                format!(
                    "Stream {name} under account {} already exists.",
                    state.account_id
                ),
            ),
            other => other.into(),
        })
}

pub async fn delete_stream(state: &KinesisState, input: DeleteStreamInput) -> Result<(), ApiError> {
    let name = state.stream_name(&input)?;
    super::fanout::check_delete(state, &name, input.enforce_consumer_deletion)?;
    state
        .store
        .admin(AdminOp::DeleteStream { name: name.clone() })
        .await
        .map_err(|e| state.store_error(&name, e))
}

pub async fn describe_stream(
    state: &KinesisState,
    input: DescribeStreamInput,
) -> Result<DescribeStreamOutput, ApiError> {
    let meta = state.stream(&input)?;
    let limit = int_in_range(input.limit, "limit", 1, 10_000, 100)? as usize;
    let after = match input.exclusive_start_shard_id.as_deref() {
        Some(id) => Some(parse_shard_id(id).ok_or_else(|| {
            ApiError::constraint(
                id,
                "exclusiveStartShardId",
                "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
            )
        })?),
        None => None,
    };
    let candidates: Vec<_> = meta
        .shards
        .iter()
        .filter(|s| after.is_none_or(|a| s.index > a))
        .collect();
    let has_more = candidates.len() > limit;
    Ok(DescribeStreamOutput {
        stream_description: StreamDescriptionOut {
            stream_name: meta.name.clone(),
            stream_arn: state.stream_arn(&meta.name),
            stream_status: "ACTIVE",
            stream_mode_details: mode_out(&meta),
            shards: candidates.into_iter().take(limit).map(shard_out).collect(),
            has_more_shards: has_more,
            retention_period_hours: meta.retention_hours,
            stream_creation_timestamp: Timestamp(meta.created_ms),
            enhanced_monitoring: no_metrics(),
            encryption_type: "NONE",
        },
    })
}

pub async fn describe_stream_summary(
    state: &KinesisState,
    input: DeleteStreamInput,
) -> Result<DescribeStreamSummaryOutput, ApiError> {
    let meta = state.stream(&input)?;
    Ok(DescribeStreamSummaryOutput {
        stream_description_summary: StreamDescriptionSummaryOut {
            stream_name: meta.name.clone(),
            stream_arn: state.stream_arn(&meta.name),
            stream_status: "ACTIVE",
            stream_mode_details: mode_out(&meta),
            retention_period_hours: meta.retention_hours,
            stream_creation_timestamp: Timestamp(meta.created_ms),
            enhanced_monitoring: no_metrics(),
            encryption_type: "NONE",
            open_shard_count: meta.open_shard_count(),
            consumer_count: meta.consumers.len() as u32,
        },
    })
}

pub async fn list_streams(
    state: &KinesisState,
    input: ListStreamsInput,
) -> Result<ListStreamsOutput, ApiError> {
    let limit = int_in_range(input.limit, "limit", 1, 10_000, 100)? as usize;
    let after = match (&input.next_token, &input.exclusive_start_stream_name) {
        (Some(token), _) => Some(
            URL_SAFE_NO_PAD
                .decode(token.as_bytes())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| ApiError::invalid("NextToken is malformed: pass the NextToken of a previous ListStreams answer."))?,
        ),
        (None, Some(name)) => Some(name.clone()),
        (None, None) => None,
    };
    let catalog = state.store.catalog();
    let mut names = catalog
        .streams
        .range::<String, _>((
            after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded),
            std::ops::Bound::Unbounded,
        ))
        .map(|(_, meta)| meta)
        .filter(|meta| !crate::streams::validate::is_internal_stream(&meta.name));
    let page: Vec<_> = names.by_ref().take(limit).collect();
    let has_more = names.next().is_some();
    let next_token = if has_more {
        page.last()
            .map(|m| URL_SAFE_NO_PAD.encode(m.name.as_bytes()))
    } else {
        None
    };
    Ok(ListStreamsOutput {
        stream_names: page.iter().map(|m| m.name.clone()).collect(),
        has_more_streams: has_more,
        next_token,
        stream_summaries: page
            .iter()
            .map(|m| StreamSummaryOut {
                stream_name: m.name.clone(),
                stream_arn: state.stream_arn(&m.name),
                stream_status: "ACTIVE",
                stream_mode_details: mode_out(m),
                stream_creation_timestamp: Timestamp(m.created_ms),
            })
            .collect(),
    })
}

pub async fn describe_limits(
    state: &KinesisState,
    _input: serde::de::IgnoredAny,
) -> Result<DescribeLimitsOutput, ApiError> {
    let catalog = state.store.catalog();
    Ok(DescribeLimitsOutput {
        shard_limit: SHARD_LIMIT,
        open_shard_count: catalog.open_shards_in_gateway(),
        on_demand_stream_count: catalog
            .streams
            .values()
            .filter(|s| s.mode == StreamMode::OnDemand)
            .count() as u32,
        on_demand_stream_count_limit: 50,
    })
}

async fn set_retention(
    state: &KinesisState,
    input: RetentionInput,
    change: RetentionChange,
) -> Result<(), ApiError> {
    let name = state.stream_name(&input)?;
    let hours = input
        .retention_period_hours
        .ok_or_else(|| ApiError::missing("retentionPeriodHours"))?;
    let hours = int_in_range(Some(hours), "retentionPeriodHours", 1, 2_147_483_647, 24)?;
    let hours = u32::try_from(hours)
        .map_err(|_| ApiError::invalid("RetentionPeriodHours is too large."))?;
    state
        .store
        .admin(AdminOp::SetRetention {
            stream: name.clone(),
            hours,
            change,
        })
        .await
        .map_err(|e| state.store_error(&name, e))
}

pub async fn increase_retention(
    state: &KinesisState,
    input: RetentionInput,
) -> Result<(), ApiError> {
    set_retention(state, input, RetentionChange::Increase).await
}

pub async fn decrease_retention(
    state: &KinesisState,
    input: RetentionInput,
) -> Result<(), ApiError> {
    set_retention(state, input, RetentionChange::Decrease).await
}

fn check_tags(tags: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if tags.len() > MAX_TAGS_PER_CALL {
        return Err(ApiError::invalid(format!(
            "A request can add at most {MAX_TAGS_PER_CALL} tags; this one has {}.",
            tags.len()
        )));
    }
    for (key, value) in tags {
        check_tag_key(key)?;
        if value.chars().count() > 256 {
            return Err(ApiError::invalid(format!(
                "The value of tag '{key}' is longer than 256 characters."
            )));
        }
    }
    Ok(())
}

fn check_tag_key(key: &str) -> Result<(), ApiError> {
    let n = key.chars().count();
    if n == 0 || n > 128 {
        return Err(ApiError::invalid(format!(
            "Tag key '{}' must be 1 to 128 characters long.",
            key.chars().take(140).collect::<String>()
        )));
    }
    Ok(())
}

pub async fn add_tags(state: &KinesisState, input: AddTagsInput) -> Result<(), ApiError> {
    let name = state.stream_name(&input)?;
    let tags = input.tags.ok_or_else(|| ApiError::missing("tags"))?;
    if tags.is_empty() {
        return Err(ApiError::constraint(
            "{}",
            "tags",
            "Member must have length greater than or equal to 1",
        ));
    }
    check_tags(&tags)?;
    state
        .store
        .admin(AdminOp::AddTags {
            stream: name.clone(),
            tags: tags.into_iter().collect(),
        })
        .await
        .map_err(|e| state.store_error(&name, e))
}

pub async fn list_tags(
    state: &KinesisState,
    input: ListTagsInput,
) -> Result<ListTagsOutput, ApiError> {
    let meta = state.stream(&input)?;
    let limit = int_in_range(input.limit, "limit", 1, 50, 50)? as usize;
    let start = match &input.exclusive_start_tag_key {
        Some(k) => std::ops::Bound::Excluded(k.clone()),
        None => std::ops::Bound::Unbounded,
    };
    let mut tags = meta
        .tags
        .range::<String, _>((start, std::ops::Bound::Unbounded));
    let page: Vec<TagOut> = tags
        .by_ref()
        .take(limit)
        .map(|(k, v)| TagOut {
            key: k.clone(),
            value: v.clone(),
        })
        .collect();
    Ok(ListTagsOutput {
        has_more_tags: tags.next().is_some(),
        tags: page,
    })
}

pub async fn remove_tags(state: &KinesisState, input: RemoveTagsInput) -> Result<(), ApiError> {
    let name = state.stream_name(&input)?;
    let keys = input.tag_keys.ok_or_else(|| ApiError::missing("tagKeys"))?;
    if keys.is_empty() || keys.len() > MAX_TAGS_PER_CALL {
        return Err(ApiError::constraint(
            keys.len(),
            "tagKeys",
            "Member must have length between 1 and 50",
        ));
    }
    for key in &keys {
        check_tag_key(key)?;
    }
    state
        .store
        .admin(AdminOp::RemoveTags {
            stream: name.clone(),
            keys,
        })
        .await
        .map_err(|e| state.store_error(&name, e))
}
