//! Stream lifecycle, description, listing, retention, tags and limits.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::types::*;
use super::{exclusive_start, shard_out};
use crate::api::error::{ApiError, ErrorKind};
use crate::api::protocol::Timestamp;
use crate::api::KinesisState;
use crate::storage::{AdminOp, RetentionChange, StoreError, StreamSpec};
use crate::streams::validate::is_valid_tag_text;
use crate::streams::{
    OnFull, StreamMeta, StreamMode, MAX_RETENTION_HOURS, MIN_RETENTION_HOURS, SHARD_LIMIT,
};

const ON_DEMAND_SHARDS: u32 = 4;
/// Tags one stream can have (as in AWS; the store's writer holds the same limit).
const MAX_TAGS_PER_STREAM: usize = 50;

fn mode_out(meta: &StreamMeta) -> StreamModeOut {
    StreamModeOut {
        stream_mode: meta.mode.as_aws(),
    }
}

pub async fn create_stream(state: &KinesisState, input: CreateStreamInput) -> Result<(), ApiError> {
    let name = input
        .stream_name
        .ok_or_else(|| ApiError::missing("streamName"))?;
    let mode = match input
        .stream_mode_details
        .and_then(|d| d.stream_mode)
        .as_deref()
    {
        Some("ON_DEMAND") => StreamMode::OnDemand,
        _ => StreamMode::Provisioned,
    };
    let shards = match (mode, input.shard_count) {
        (StreamMode::OnDemand, None) => ON_DEMAND_SHARDS,
        (StreamMode::Provisioned, None) => {
            return Err(ApiError::invalid(
                "ShardCount is required for a PROVISIONED stream.",
            ))
        }
        (_, Some(n)) => {
            if n > i64::from(SHARD_LIMIT) {
                return Err(ApiError::new(
                    ErrorKind::LimitExceeded,
                    format!(
                        "ShardCount {n} exceeds the gateway's limit of {SHARD_LIMIT} open shards."
                    ),
                ));
            }
            u32::try_from(n).unwrap_or(1)
        }
    };
    let tags = input.tags.unwrap_or_default();
    check_tag_text(tags.keys().chain(tags.values()))?;
    if tags.len() > MAX_TAGS_PER_STREAM {
        return Err(too_many_tags(state, &name));
    }
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
    let limit = input.limit.map_or(100, |l| l as usize);
    let after = input
        .exclusive_start_shard_id
        .as_deref()
        .and_then(|id| exclusive_start(&meta, id));
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
            enhanced_monitoring: super::monitoring::enhanced_monitoring_out(&meta),
            encryption_type: super::encryption::described(&meta).0,
            key_id: super::encryption::described(&meta).1,
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
            enhanced_monitoring: super::monitoring::enhanced_monitoring_out(&meta),
            encryption_type: super::encryption::described(&meta).0,
            key_id: super::encryption::described(&meta).1,
            open_shard_count: meta.open_shard_count(),
            consumer_count: meta.consumers.len() as u32,
        },
    })
}

pub async fn list_streams(
    state: &KinesisState,
    input: ListStreamsInput,
) -> Result<ListStreamsOutput, ApiError> {
    let limit = input.limit.map_or(100, |l| l as usize);
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
        on_demand_stream_count_limit: crate::streams::settings::ON_DEMAND_STREAM_LIMIT,
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
    if hours < i64::from(MIN_RETENTION_HOURS) {
        return Err(ApiError::invalid(format!("Minimum allowed retention period is {MIN_RETENTION_HOURS} hours. Requested retention period ({hours} hours) is too short.")));
    }
    if hours > i64::from(MAX_RETENTION_HOURS) {
        return Err(ApiError::invalid(format!("Maximum allowed retention period is {MAX_RETENTION_HOURS} hours. Requested retention period ({hours} hours) is too long.")));
    }
    let hours = hours as u32;
    let current = state.meta(&name)?.retention_hours;
    let refused = match change {
        RetentionChange::Increase if hours < current => Some(("shorter", "Decrease")),
        RetentionChange::Decrease if hours > current => Some(("longer", "Increase")),
        _ => None,
    };
    if let Some((than, api)) = refused {
        return Err(ApiError::invalid(format!("Requested retention period ({hours} hours) for stream {name} can not be {than} than existing retention period ({current} hours). Use {api}RetentionPeriod API.")));
    }
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

/// Tag keys and values in AWS's character set.
fn check_tag_text<'a>(mut texts: impl Iterator<Item = &'a String>) -> Result<(), ApiError> {
    if texts.all(|t| is_valid_tag_text(t)) {
        return Ok(());
    }
    Err(ApiError::invalid("Some tags contain invalid characters. Valid characters: Unicode letters, digits, white space, _ . / = + - % @."))
}

fn too_many_tags(state: &KinesisState, stream: &str) -> ApiError {
    ApiError::invalid(format!(
        "Failed to add tags to stream {stream} under account {} because a given stream cannot have more than {MAX_TAGS_PER_STREAM} tags associated with it.",
        state.account_id
    ))
}

pub async fn add_tags(state: &KinesisState, input: AddTagsInput) -> Result<(), ApiError> {
    let name = state.stream_name(&input)?;
    let tags = input.tags.ok_or_else(|| ApiError::missing("tags"))?;
    let meta = state.meta(&name)?;
    check_tag_text(tags.keys().chain(tags.values()))?;
    let new_keys = tags.keys().filter(|k| !meta.tags.contains_key(*k)).count();
    if meta.tags.len() + new_keys > MAX_TAGS_PER_STREAM {
        return Err(too_many_tags(state, &name));
    }
    state
        .store
        .admin(AdminOp::AddTags {
            stream: name.clone(),
            tags: tags.into_iter().collect(),
        })
        .await
        .map_err(|e| match e {
            // Tags added by another request in the meantime.
            StoreError::LimitExceeded(_) => too_many_tags(state, &name),
            other => state.store_error(&name, other),
        })
}

pub async fn list_tags(
    state: &KinesisState,
    input: ListTagsInput,
) -> Result<ListTagsOutput, ApiError> {
    let meta = state.stream(&input)?;
    let limit = input.limit.map_or(50, |l| l as usize);
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
    state.meta(&name)?;
    check_tag_text(keys.iter())?;
    state
        .store
        .admin(AdminOp::RemoveTags {
            stream: name.clone(),
            keys,
        })
        .await
        .map_err(|e| state.store_error(&name, e))
}
