//! Tags by resource ARN: TagResource, UntagResource, ListTagsForResource.
//!
//! A stream ARN names the same tags as AddTagsToStream / ListTagsForStream (the stream's
//! `tags`, changed through the store's writer). A consumer ARN
//! (`arn:aws:kinesis:REGION:ACCOUNT:stream/STREAM/consumer/NAME:EPOCH`), parsed by
//! [`resource_of`] (the one place that reads resource ARNs), names the tags of that
//! registration of the consumer, kept with it in its stream's metadata
//! (`AdminOp::ConsumerTags`): they go when it is deregistered, and an ARN of an earlier
//! registration under the same name names nothing (ResourceNotFoundException).
//!
//! Tag rules are AWS's: at most 50 tags per resource, keys of 1 to 128 and values of 0 to
//! 256 Unicode letters, digits, white space and `_ . : / = + - @ %`, keys not starting with
//! `aws:` (reserved).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::api::error::{ApiError, ErrorKind};
use crate::api::KinesisState;
use crate::storage::{AdminOp, StoreError};

/// Tags one resource can carry (AWS: 50).
pub const MAX_TAGS_PER_RESOURCE: usize = 50;

/// The model pattern of `ResourceARN`.
const RESOURCE_ARN_PATTERN: &str = "arn:aws.*:kinesis:.*:\\d{12}:.*stream/\\S+";

/// What a resource ARN names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Stream {
        account: String,
        stream: String,
    },
    /// An enhanced fan-out consumer (`.../stream/S/consumer/NAME:EPOCH`).
    Consumer {
        account: String,
        stream: String,
        consumer: String,
        created_s: u64,
    },
}

impl Resource {
    pub fn stream(&self) -> &str {
        match self {
            Resource::Stream { stream, .. } | Resource::Consumer { stream, .. } => stream,
        }
    }

    fn account(&self) -> &str {
        match self {
            Resource::Stream { account, .. } | Resource::Consumer { account, .. } => account,
        }
    }
}

/// Reads a `ResourceARN` (stream or consumer). Malformed ARNs are model violations
/// (ValidationException), as AWS answers them.
pub fn resource_of(arn: &str) -> Result<Resource, ApiError> {
    let bad = || {
        ApiError::constraint(
            arn.chars().take(2048).collect::<String>(),
            "resourceARN",
            &format!("Member must satisfy regular expression pattern: {RESOURCE_ARN_PATTERN}"),
        )
    };
    if arn.is_empty() || arn.len() > 2048 {
        return Err(ApiError::constraint(
            arn.chars().take(100).collect::<String>(),
            "resourceARN",
            "Member must have length between 1 and 2048",
        ));
    }
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() != 6
        || parts[0] != "arn"
        || !parts[1].starts_with("aws")
        || parts[2] != "kinesis"
        || parts[4].len() != 12
        || !parts[4].bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let account = parts[4].to_string();
    let path = parts[5].strip_prefix("stream/").ok_or_else(bad)?;
    let Some((stream, consumer)) = path.split_once("/consumer/") else {
        if !crate::streams::validate::is_valid_stream_name(path) {
            return Err(bad());
        }
        return Ok(Resource::Stream {
            account,
            stream: path.to_string(),
        });
    };
    if !crate::streams::validate::is_valid_stream_name(stream) {
        return Err(bad());
    }
    let (name, created) = consumer.rsplit_once(':').ok_or_else(bad)?;
    let created_s = created.parse::<u64>().map_err(|_| bad())?;
    if name.is_empty() || !crate::streams::validate::is_valid_stream_name(name) {
        return Err(bad());
    }
    Ok(Resource::Consumer {
        account,
        stream: stream.to_string(),
        consumer: name.to_string(),
        created_s,
    })
}

/// The stream a resource ARN names, checked to exist in this gateway's account.
pub(super) fn existing_stream(state: &KinesisState, resource: &Resource) -> Result<(), ApiError> {
    if resource.account() != state.account_id
        || state.store.catalog().stream(resource.stream()).is_none()
    {
        return Err(ApiError::not_found(format!(
            "Stream {} under account {} not found.",
            resource.stream(),
            resource.account()
        )));
    }
    Ok(())
}

/// The tags of the consumer a consumer ARN names (its stream checked to exist first), or
/// ResourceNotFoundException.
pub(super) fn consumer_tags(
    state: &KinesisState,
    resource: &Resource,
) -> Result<BTreeMap<String, String>, ApiError> {
    existing_stream(state, resource)?;
    let Resource::Consumer {
        consumer,
        stream,
        created_s,
        ..
    } = resource
    else {
        return Err(ApiError::new(
            ErrorKind::InternalFailure,
            "not a consumer ARN",
        ));
    };
    state
        .store
        .catalog()
        .stream(stream)
        .and_then(|meta| {
            meta.consumers
                .iter()
                .find(|c| &c.name == consumer && c.created_s() == *created_s)
                .map(|c| c.tags.clone())
        })
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "Consumer {consumer} under stream {stream} under account {} not found.",
                state.account_id
            ))
        })
}

/// Adds and removes tags of the consumer a consumer ARN names.
async fn change_consumer_tags(
    state: &KinesisState,
    resource: Resource,
    add: Vec<(String, String)>,
    remove: Vec<String>,
) -> Result<(), ApiError> {
    consumer_tags(state, &resource)?;
    let Resource::Consumer {
        stream,
        consumer,
        created_s,
        ..
    } = resource
    else {
        return Err(ApiError::new(
            ErrorKind::InternalFailure,
            "not a consumer ARN",
        ));
    };
    state
        .store
        .admin(AdminOp::ConsumerTags {
            stream: stream.clone(),
            consumer,
            created_s,
            add,
            remove,
        })
        .await
        .map_err(|e| tag_store_error(state, &stream, e))
}

/// A tag key or value outside AWS's character set, or a key AWS reserves.
fn check_tag_text(text: &str, what: &str) -> Result<(), ApiError> {
    let allowed = |c: char| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@%".contains(c);
    if let Some(c) = text.chars().find(|c| !allowed(*c)) {
        return Err(ApiError::invalid(format!(
            "Tag {what} '{}' contains '{c}': tags may only contain Unicode letters, digits, white space, or these symbols: _ . : / = + - @ %.",
            text.chars().take(256).collect::<String>()
        )));
    }
    Ok(())
}

/// Checks tag keys (1..128 characters, AWS's set, not `aws:`).
pub fn check_tag_key(key: &str) -> Result<(), ApiError> {
    let n = key.chars().count();
    if n == 0 || n > 128 {
        return Err(ApiError::invalid(format!(
            "Tag key '{}' must be 1 to 128 characters long.",
            key.chars().take(140).collect::<String>()
        )));
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Err(ApiError::invalid(format!(
            "Tag key '{key}' uses the prefix 'aws:', which AWS reserves."
        )));
    }
    check_tag_text(key, "key")
}

/// Checks a tag value (0..256 characters, AWS's set).
pub fn check_tag_value(key: &str, value: &str) -> Result<(), ApiError> {
    if value.chars().count() > 256 {
        return Err(ApiError::invalid(format!(
            "The value of tag '{key}' is longer than 256 characters."
        )));
    }
    check_tag_text(value, "value")
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TagResourceInput {
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(rename = "ResourceARN")]
    pub resource_arn: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UntagResourceInput {
    pub tag_keys: Option<Vec<String>>,
    #[serde(rename = "ResourceARN")]
    pub resource_arn: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ListTagsForResourceInput {
    #[serde(rename = "ResourceARN")]
    pub resource_arn: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsForResourceOutput {
    pub tags: Vec<super::types::TagOut>,
}

fn resource_arg(arn: Option<String>) -> Result<Resource, ApiError> {
    resource_of(&arn.ok_or_else(|| ApiError::missing("resourceARN"))?)
}

/// A store error of a tag change, in Kinesis's terms (too many tags: InvalidArgument).
fn tag_store_error(state: &KinesisState, stream: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::LimitExceeded(message) => ApiError::invalid(message),
        other => state.store_error(stream, other),
    }
}

pub async fn tag_resource(state: &KinesisState, input: TagResourceInput) -> Result<(), ApiError> {
    let tags = input.tags.ok_or_else(|| ApiError::missing("tags"))?;
    let resource = resource_arg(input.resource_arn)?;
    if tags.is_empty() || tags.len() > 200 {
        return Err(ApiError::constraint(
            format!("{} tags", tags.len()),
            "tags",
            "Member must have length between 1 and 200",
        ));
    }
    for (key, value) in &tags {
        check_tag_key(key)?;
        check_tag_value(key, value)?;
    }
    if tags.len() > MAX_TAGS_PER_RESOURCE {
        existing_stream(state, &resource)?;
        let stream = resource.stream();
        return Err(ApiError::invalid(format!(
            "Failed to add tags to stream {stream}: a resource can have at most {MAX_TAGS_PER_RESOURCE} tags; the request has {}.",
            tags.len()
        )));
    }
    if let Resource::Consumer { .. } = resource {
        return change_consumer_tags(state, resource, tags.into_iter().collect(), Vec::new()).await;
    }
    existing_stream(state, &resource)?;
    let stream = resource.stream().to_string();
    state
        .store
        .admin(AdminOp::AddTags {
            stream: stream.clone(),
            tags: tags.into_iter().collect(),
        })
        .await
        .map_err(|e| tag_store_error(state, &stream, e))
}

pub async fn untag_resource(
    state: &KinesisState,
    input: UntagResourceInput,
) -> Result<(), ApiError> {
    let keys = input.tag_keys.ok_or_else(|| ApiError::missing("tagKeys"))?;
    let resource = resource_arg(input.resource_arn)?;
    if keys.is_empty() || keys.len() > MAX_TAGS_PER_RESOURCE {
        return Err(ApiError::constraint(
            format!("{} keys", keys.len()),
            "tagKeys",
            "Member must have length between 1 and 50",
        ));
    }
    for key in &keys {
        let n = key.chars().count();
        if n == 0 || n > 128 {
            return Err(ApiError::constraint(
                key,
                "tagKeys.member",
                "Member must have length between 1 and 128",
            ));
        }
    }
    if let Resource::Consumer { .. } = resource {
        return change_consumer_tags(state, resource, Vec::new(), keys).await;
    }
    existing_stream(state, &resource)?;
    let stream = resource.stream().to_string();
    state
        .store
        .admin(AdminOp::RemoveTags {
            stream: stream.clone(),
            keys,
        })
        .await
        .map_err(|e| tag_store_error(state, &stream, e))
}

pub async fn list_tags_for_resource(
    state: &KinesisState,
    input: ListTagsForResourceInput,
) -> Result<ListTagsForResourceOutput, ApiError> {
    let resource = resource_arg(input.resource_arn)?;
    let tags = match &resource {
        Resource::Consumer { .. } => consumer_tags(state, &resource)?,
        Resource::Stream { .. } => {
            existing_stream(state, &resource)?;
            state
                .store
                .catalog()
                .stream(resource.stream())
                .map(|meta| meta.tags.clone())
                .ok_or_else(|| state.stream_not_found(resource.stream()))?
        }
    };
    Ok(ListTagsForResourceOutput {
        tags: tags
            .iter()
            .map(|(k, v)| super::types::TagOut {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_and_consumer_arns() {
        assert_eq!(
            resource_of("arn:aws:kinesis:eu-west-1:123456789012:stream/telemetry").unwrap(),
            Resource::Stream {
                account: "123456789012".into(),
                stream: "telemetry".into()
            }
        );
        assert_eq!(
            resource_of(
                "arn:aws:kinesis:eu-west-1:123456789012:stream/t/consumer/app-1:1700000000"
            )
            .unwrap(),
            Resource::Consumer {
                account: "123456789012".into(),
                stream: "t".into(),
                consumer: "app-1".into(),
                created_s: 1_700_000_000
            }
        );
        for bad in [
            "",
            "telemetry",
            "arn:aws:s3:::bucket",
            "arn:aws:kinesis:r:12345:stream/t",
            "arn:aws:kinesis:r:123456789012:table/t",
            "arn:aws:kinesis:r:123456789012:stream/t/consumer/c",
            "arn:aws:kinesis:r:123456789012:stream/t/consumer/c:x",
            "arn:aws:kinesis:r:123456789012:stream/bad name",
        ] {
            assert!(resource_of(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tag_character_set() {
        assert!(check_tag_key("env").is_ok());
        assert!(check_tag_key("Größe _.:/=+-@%").is_ok());
        assert!(check_tag_key("").is_err());
        assert!(check_tag_key(&"k".repeat(129)).is_err());
        assert!(check_tag_key("a*b").is_err());
        assert!(check_tag_key("aws:owner").is_err());
        assert!(check_tag_value("k", "").is_ok());
        assert!(check_tag_value("k", &"v".repeat(256)).is_ok());
        assert!(check_tag_value("k", &"v".repeat(257)).is_err());
        assert!(check_tag_value("k", "a#b").is_err());
    }
}
