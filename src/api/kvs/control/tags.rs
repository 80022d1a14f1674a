//! Tags of created streams: TagStream, UntagStream, ListTagsForStream (by name or ARN) and
//! TagResource, UntagResource, ListTagsForResource (by ARN, tags as a Key/Value list), with
//! AWS's limits (50 tags a stream, keys of 1-128 and values of 0-256 characters). Tags are not
//! versioned (a tag change leaves the stream's Version as it is). Cameras have no tags and take
//! none (NotAuthorizedException; AccessDeniedException for the *Resource operations).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::super::{decode, signed_body, KvsError, KvsErrorKind, KvsState, KvsStream};
use super::validate::{self, invalid, MAX_TAGS};
use super::{blocking, camera_is_read_only, check_names, handler, respond, StreamRef};
use crate::video::log::{RegistryError, StreamRecord};

pub(super) fn routes() -> Router<Arc<KvsState>> {
    Router::new()
        .route("/tagStream", post(tag_stream))
        .route("/untagStream", post(untag_stream))
        .route("/listTagsForStream", post(list_tags_for_stream))
        .route("/TagResource", post(tag_resource))
        .route("/UntagResource", post(untag_resource))
        .route("/ListTagsForResource", post(list_tags_for_resource))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagStreamInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    tags: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UntagStreamInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    tag_key_list: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListTagsInput {
    next_token: Option<String>,
    #[serde(flatten)]
    stream: StreamRef,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Tag {
    key: Option<String>,
    value: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagResourceInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
    tags: Option<Vec<Tag>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UntagResourceInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
    tag_key_list: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListTagsForResourceInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
    next_token: Option<String>,
}

handler!(tag_stream, tag_stream_op);
handler!(untag_stream, untag_stream_op);
handler!(list_tags_for_stream, list_tags_for_stream_op);
handler!(tag_resource, tag_resource_op);
handler!(untag_resource, untag_resource_op);
handler!(list_tags_for_resource, list_tags_for_resource_op);

/// The created stream a tag operation names; `refusal`: what a camera answers.
fn target(
    state: &KvsState,
    name: Option<&str>,
    arn: Option<&str>,
    refusal: KvsErrorKind,
) -> Result<StreamRecord, KvsError> {
    match state.stream_info(name, arn)? {
        KvsStream::Camera { name, .. } => Err(camera_is_read_only(&name, refusal)),
        KvsStream::Created(record) => Ok(record),
    }
}

/// The `ResourceARN` of a *Resource operation, as the model constrains it.
fn resource_arn(arn: Option<String>) -> Result<String, KvsError> {
    let arn = arn.ok_or_else(|| invalid("ResourceARN is required"))?;
    validate::arn("ResourceARN", &arn)?;
    Ok(arn)
}

/// Adds `tags` (replacing the values of keys already there), at most `MAX_TAGS` in all.
async fn add_tags(
    state: &KvsState,
    record: StreamRecord,
    tags: BTreeMap<String, String>,
) -> Result<Value, KvsError> {
    let log = state.video()?.log().clone();
    blocking(move || {
        log.update_stream(&record.name, None, false, |record| {
            record.tags.extend(tags);
            if record.tags.len() > MAX_TAGS {
                return Err(RegistryError::TagLimit(MAX_TAGS));
            }
            Ok(())
        })
    })
    .await?;
    Ok(json!({}))
}

async fn remove_tags(
    state: &KvsState,
    record: StreamRecord,
    keys: Vec<String>,
) -> Result<Value, KvsError> {
    let log = state.video()?.log().clone();
    blocking(move || {
        log.update_stream(&record.name, None, false, |record| {
            for key in &keys {
                record.tags.remove(key);
            }
            Ok(())
        })
    })
    .await?;
    Ok(json!({}))
}

/// All of a stream's tags fit one page (at most 50); a NextToken given is checked and ends
/// the listing.
fn list_tags(
    state: &KvsState,
    name: Option<&str>,
    arn: Option<&str>,
    next_token: Option<&str>,
) -> Result<Value, KvsError> {
    if let Some(token) = next_token {
        validate::next_token(token)?;
    }
    let tags = match state.stream_info(name, arn)? {
        KvsStream::Camera { .. } => BTreeMap::new(),
        KvsStream::Created(record) if next_token.is_none() => record.tags,
        KvsStream::Created(_) => BTreeMap::new(),
    };
    Ok(json!({ "Tags": tags }))
}

async fn tag_stream_op(state: &KvsState, body: &[u8]) -> Result<Value, KvsError> {
    let input: TagStreamInput = decode(body)?;
    let (name, arn) = (input.stream_name.as_deref(), input.stream_arn.as_deref());
    check_names(name, arn)?;
    let tags = input.tags.ok_or_else(|| invalid("Tags is required"))?;
    validate::tags(&tags)?;
    let record = target(state, name, arn, KvsErrorKind::NotAuthorized)?;
    add_tags(state, record, tags).await
}

async fn untag_stream_op(state: &KvsState, body: &[u8]) -> Result<Value, KvsError> {
    let input: UntagStreamInput = decode(body)?;
    let (name, arn) = (input.stream_name.as_deref(), input.stream_arn.as_deref());
    check_names(name, arn)?;
    let keys = input
        .tag_key_list
        .ok_or_else(|| invalid("TagKeyList is required"))?;
    validate::tag_keys(&keys)?;
    let record = target(state, name, arn, KvsErrorKind::NotAuthorized)?;
    remove_tags(state, record, keys).await
}

async fn list_tags_for_stream_op(state: &KvsState, body: &[u8]) -> Result<Value, KvsError> {
    let input: ListTagsInput = decode(body)?;
    let (name, arn) = (
        input.stream.stream_name.as_deref(),
        input.stream.stream_arn.as_deref(),
    );
    check_names(name, arn)?;
    list_tags(state, name, arn, input.next_token.as_deref())
}

async fn tag_resource_op(state: &KvsState, body: &[u8]) -> Result<Value, KvsError> {
    let input: TagResourceInput = decode(body)?;
    let arn = resource_arn(input.resource_arn)?;
    let list = input.tags.ok_or_else(|| invalid("Tags is required"))?;
    if list.is_empty() || list.len() > MAX_TAGS {
        return Err(invalid(format!("Tags must hold 1 to {MAX_TAGS} tags")));
    }
    let mut tags = BTreeMap::new();
    for tag in list {
        match (tag.key, tag.value) {
            (Some(key), Some(value)) => {
                validate::tag_key(&key)?;
                validate::tag_value(&key, &value)?;
                tags.insert(key, value);
            }
            _ => return Err(invalid("every tag needs a Key and a Value")),
        }
    }
    let record = target(state, None, Some(&arn), KvsErrorKind::AccessDenied)?;
    add_tags(state, record, tags).await
}

async fn untag_resource_op(state: &KvsState, body: &[u8]) -> Result<Value, KvsError> {
    let input: UntagResourceInput = decode(body)?;
    let arn = resource_arn(input.resource_arn)?;
    let keys = input
        .tag_key_list
        .ok_or_else(|| invalid("TagKeyList is required"))?;
    validate::tag_keys(&keys)?;
    let record = target(state, None, Some(&arn), KvsErrorKind::AccessDenied)?;
    remove_tags(state, record, keys).await
}

async fn list_tags_for_resource_op(state: &KvsState, body: &[u8]) -> Result<Value, KvsError> {
    let input: ListTagsForResourceInput = decode(body)?;
    let arn = resource_arn(input.resource_arn)?;
    list_tags(state, None, Some(&arn), input.next_token.as_deref())
}
