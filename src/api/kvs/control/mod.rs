//! The `kinesisvideo` control plane: CreateStream, DescribeStream, ListStreams, DeleteStream,
//! UpdateStream, UpdateDataRetention, GetDataEndpoint (here) and the tag operations (`tags`),
//! REST-JSON on `POST /createStream`, ... as botocore's model gives them.
//!
//! Streams are the cameras of the device files (read-only here: a write answers
//! NotAuthorizedException naming the device file) and the streams created through this API,
//! kept by the fragment log's registry (`crate::video::log::streams`). Every request's members
//! are checked against the model first (`validate`); registry writes block, so they run in
//! `spawn_blocking`; lookups read the registry's in-memory copy. At most [`MAX_STREAMS`]
//! streams can be created (AccountStreamLimitExceededException beyond).

mod info;
mod tags;
mod validate;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::{decode, signed_body, KvsError, KvsErrorKind, KvsState, KvsStream};
use crate::video::log::{RegistryError, StreamRecord, StreamStatus};
use info::{camera_info, created_info, list_streams};
use validate::invalid;

/// Streams that can be created through the API on one gateway (cameras not counted).
pub const MAX_STREAMS: usize = 1_000;

/// A handler: checks the signature, then answers `$op(&state, &body)` as JSON.
macro_rules! handler {
    ($name:ident, $op:path) => {
        async fn $name(State(state): State<Arc<KvsState>>, request: Request) -> Response {
            let body = match signed_body(&state, request).await {
                Ok(body) => body,
                Err(refused) => return refused,
            };
            respond($op(&state, &body).await)
        }
    };
}
pub(super) use handler;

pub(super) fn routes(state: Arc<KvsState>) -> Router {
    Router::new()
        .route("/createStream", post(create_stream))
        .route("/describeStream", post(describe_stream))
        .route("/listStreams", post(list_streams_route))
        .route("/deleteStream", post(delete_stream))
        .route("/updateStream", post(update_stream))
        .route("/updateDataRetention", post(update_data_retention))
        .route("/getDataEndpoint", post(get_data_endpoint))
        .merge(tags::routes())
        .with_state(state)
}

/// An operation's answer: its JSON output, or the error as AWS answers it.
pub(super) fn respond(result: Result<serde_json::Value, KvsError>) -> Response {
    match result {
        Ok(output) => Json(output).into_response(),
        Err(error) => error.into_response(),
    }
}

/// The KVS error of a refused registry change.
pub(super) fn registry_error(error: RegistryError) -> KvsError {
    use KvsErrorKind::*;
    let kind = match &error {
        RegistryError::NotFound(_) => {
            return KvsError::new(
                ResourceNotFound,
                "The requested stream is not found or not active.",
            )
        }
        RegistryError::Exists(_) | RegistryError::Deleting(_) | RegistryError::NameHasVideo(_) => {
            ResourceInUse
        }
        RegistryError::Limit(_) => AccountStreamLimitExceeded,
        RegistryError::VersionMismatch { .. } => VersionMismatch,
        RegistryError::Invalid(_) => InvalidArgument,
        RegistryError::TagLimit(_) => TagsPerResourceExceededLimit,
        RegistryError::Log(_) => return KvsError::internal(error),
    };
    KvsError::new(kind, error.to_string())
}

/// Runs a registry change off the async runtime.
pub(super) async fn blocking<T: Send + 'static>(
    change: impl FnOnce() -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, KvsError> {
    tokio::task::spawn_blocking(change)
        .await
        .map_err(KvsError::internal)?
        .map_err(registry_error)
}

/// The refusal of a write to a camera: the device file owns it.
pub(super) fn camera_is_read_only(name: &str, kind: KvsErrorKind) -> KvsError {
    KvsError::new(
        kind,
        format!(
            "stream `{name}` is the camera of device file `{name}.toml` in the gateway's \
             devices directory: it is read-only through this API; change the device file"
        ),
    )
}

/// `StreamName` or `StreamARN` as the model constrains them.
pub(super) fn check_names(name: Option<&str>, arn: Option<&str>) -> Result<(), KvsError> {
    if let Some(name) = name {
        validate::stream_name("StreamName", name)?;
    }
    if let Some(arn) = arn {
        validate::arn("StreamARN", arn)?;
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateStreamInput {
    stream_name: Option<String>,
    device_name: Option<String>,
    media_type: Option<String>,
    kms_key_id: Option<String>,
    data_retention_in_hours: Option<i64>,
    tags: Option<std::collections::BTreeMap<String, String>>,
    stream_storage_configuration: Option<StorageConfiguration>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StorageConfiguration {
    default_storage_tier: Option<String>,
}

handler!(create_stream, create);

async fn create(state: &KvsState, body: &[u8]) -> Result<serde_json::Value, KvsError> {
    let input: CreateStreamInput = decode(body)?;
    let name = input
        .stream_name
        .ok_or_else(|| invalid("StreamName is required"))?;
    validate::stream_name("StreamName", &name)?;
    if let Some(device) = &input.device_name {
        validate::device_name(device)?;
    }
    if let Some(media_type) = &input.media_type {
        validate::media_type(media_type)?;
    }
    if let Some(key) = &input.kms_key_id {
        validate::kms_key_id(key)?;
    }
    let retention_hours = validate::retention_hours(input.data_retention_in_hours.unwrap_or(0))?;
    if let Some(tags) = &input.tags {
        validate::tags(tags)?;
    }
    if let Some(storage) = &input.stream_storage_configuration {
        match storage.default_storage_tier.as_deref() {
            Some("HOT" | "WARM") => {}
            _ => return Err(invalid("DefaultStorageTier must be HOT or WARM")),
        }
    }
    let video = state.video()?;
    if video.camera(&name).is_some() {
        return Err(KvsError::new(
            KvsErrorKind::ResourceInUse,
            format!(
                "stream `{name}` already exists: it is the camera of device file `{name}.toml`"
            ),
        ));
    }
    let record = StreamRecord {
        name,
        created_ms: crate::video::camera::now_ms(),
        revision: 0,
        media_type: input.media_type,
        device_name: input.device_name,
        kms_key_id: input.kms_key_id,
        retention_hours,
        tags: input.tags.unwrap_or_default(),
        status: StreamStatus::Active,
    };
    let log = video.log().clone();
    let record = blocking(move || log.create_stream(record, MAX_STREAMS)).await?;
    tracing::info!(stream = %record.name, retention_hours, "Kinesis Video stream created");
    Ok(json!({ "StreamARN": state.stream_arn(&record.name, record.created_ms) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct StreamRef {
    pub stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
}

handler!(describe_stream, describe);

async fn describe(state: &KvsState, body: &[u8]) -> Result<serde_json::Value, KvsError> {
    let input: StreamRef = decode(body)?;
    let (name, arn) = (input.stream_name.as_deref(), input.stream_arn.as_deref());
    check_names(name, arn)?;
    let info = match state.stream_info(name, arn)? {
        KvsStream::Camera {
            name,
            retention_hours,
        } => camera_info(state, &name, retention_hours),
        KvsStream::Created(record) => created_info(state, &record),
    };
    Ok(json!({ "StreamInfo": info }))
}

handler!(list_streams_route, list_streams);

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteStreamInput {
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    current_version: Option<String>,
}

handler!(delete_stream, delete);

/// Marks the stream `DELETING` (committed before the answer), then deletes its fragments in
/// the background; the retention pass finishes a deletion a restart cut.
async fn delete(state: &KvsState, body: &[u8]) -> Result<serde_json::Value, KvsError> {
    let input: DeleteStreamInput = decode(body)?;
    let arn = input
        .stream_arn
        .ok_or_else(|| invalid("StreamARN is required"))?;
    check_names(None, Some(&arn))?;
    if let Some(version) = &input.current_version {
        validate::version(version)?;
    }
    let record = match state.stream_info(None, Some(&arn))? {
        KvsStream::Camera { name, .. } => {
            return Err(camera_is_read_only(&name, KvsErrorKind::NotAuthorized))
        }
        KvsStream::Created(record) => record,
    };
    let log = state.video()?.log().clone();
    let name = record.name.clone();
    let version = input.current_version;
    let deleting = blocking({
        let log = log.clone();
        move || log.begin_delete(&name, version.as_deref())
    })
    .await?;
    tracing::info!(stream = %deleting.name, "Kinesis Video stream being deleted");
    tokio::task::spawn_blocking(move || match log.finish_delete(&deleting.name) {
        Ok(outcome) => {
            tracing::info!(stream = %deleting.name, fragments = outcome.fragments, bytes = outcome.bytes, "Kinesis Video stream deleted")
        }
        Err(error) => {
            tracing::warn!(stream = %deleting.name, %error, "deleting the stream failed; the retention pass will finish it")
        }
    });
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateStreamInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    current_version: Option<String>,
    device_name: Option<String>,
    media_type: Option<String>,
}

handler!(update_stream, update);

async fn update(state: &KvsState, body: &[u8]) -> Result<serde_json::Value, KvsError> {
    let input: UpdateStreamInput = decode(body)?;
    let (name, arn) = (input.stream_name.as_deref(), input.stream_arn.as_deref());
    check_names(name, arn)?;
    let version = input
        .current_version
        .ok_or_else(|| invalid("CurrentVersion is required"))?;
    validate::version(&version)?;
    if let Some(device) = &input.device_name {
        validate::device_name(device)?;
    }
    if let Some(media_type) = &input.media_type {
        validate::media_type(media_type)?;
    }
    let record = created_stream(state, name, arn)?;
    let log = state.video()?.log().clone();
    let (device_name, media_type) = (input.device_name, input.media_type);
    blocking(move || {
        log.update_stream(&record.name, Some(&version), true, |record| {
            if device_name.is_some() {
                record.device_name = device_name;
            }
            if media_type.is_some() {
                record.media_type = media_type;
            }
            Ok(())
        })
    })
    .await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateDataRetentionInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    current_version: Option<String>,
    operation: Option<String>,
    data_retention_change_in_hours: Option<i64>,
}

handler!(update_data_retention, update_retention);

async fn update_retention(state: &KvsState, body: &[u8]) -> Result<serde_json::Value, KvsError> {
    let input: UpdateDataRetentionInput = decode(body)?;
    let (name, arn) = (input.stream_name.as_deref(), input.stream_arn.as_deref());
    check_names(name, arn)?;
    let version = input
        .current_version
        .ok_or_else(|| invalid("CurrentVersion is required"))?;
    validate::version(&version)?;
    let increase = match input.operation.as_deref() {
        Some("INCREASE_DATA_RETENTION") => true,
        Some("DECREASE_DATA_RETENTION") => false,
        _ => {
            return Err(invalid(
                "Operation must be INCREASE_DATA_RETENTION or DECREASE_DATA_RETENTION",
            ))
        }
    };
    let change = input
        .data_retention_change_in_hours
        .filter(|&h| h >= 1)
        .ok_or_else(|| invalid("DataRetentionChangeInHours must be at least 1"))?;
    let record = created_stream(state, name, arn)?;
    let log = state.video()?.log().clone();
    blocking(move || {
        log.update_stream(&record.name, Some(&version), true, |record| {
            let current = i64::from(record.retention_hours);
            let wanted = if increase {
                current.saturating_add(change)
            } else {
                current - change
            };
            if wanted < 0 {
                return Err(RegistryError::Invalid(format!(
                    "the retention of {current} hours cannot decrease by {change} hours"
                )));
            }
            record.retention_hours =
                validate::retention_hours(wanted).map_err(|e| RegistryError::Invalid(e.message))?;
            Ok(())
        })
    })
    .await?;
    Ok(json!({}))
}

/// The API-created stream a write names; a camera is refused (its device file owns it).
fn created_stream(
    state: &KvsState,
    name: Option<&str>,
    arn: Option<&str>,
) -> Result<StreamRecord, KvsError> {
    match state.stream_info(name, arn)? {
        KvsStream::Camera { name, .. } => {
            Err(camera_is_read_only(&name, KvsErrorKind::NotAuthorized))
        }
        KvsStream::Created(record) => Ok(record),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetDataEndpointInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    #[serde(rename = "APIName")]
    api_name: Option<String>,
}

/// Every `APIName` of the model: the gateway serves them all on its own listener.
const API_NAMES: [&str; 8] = [
    "PUT_MEDIA",
    "GET_MEDIA",
    "LIST_FRAGMENTS",
    "GET_MEDIA_FOR_FRAGMENT_LIST",
    "GET_HLS_STREAMING_SESSION_URL",
    "GET_DASH_STREAMING_SESSION_URL",
    "GET_CLIP",
    "GET_IMAGES",
];

/// Answers the gateway's own URL: the scheme of its listener and the request's `Host`.
async fn get_data_endpoint(State(state): State<Arc<KvsState>>, request: Request) -> Response {
    let host = request
        .headers()
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.to_string()));
    let body = match signed_body(&state, request).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    respond(data_endpoint(&state, &body, host))
}

fn data_endpoint(
    state: &KvsState,
    body: &[u8],
    host: Option<String>,
) -> Result<serde_json::Value, KvsError> {
    let input: GetDataEndpointInput = decode(body)?;
    let (name, arn) = (input.stream_name.as_deref(), input.stream_arn.as_deref());
    check_names(name, arn)?;
    match input.api_name.as_deref() {
        Some(api) if API_NAMES.contains(&api) => {}
        _ => {
            return Err(invalid(format!(
                "APIName must be one of {}",
                API_NAMES.join(", ")
            )))
        }
    }
    state.stream(name, arn)?;
    let host = host
        .filter(|h| !h.is_empty() && !h.contains(['/', ' ', '@']))
        .ok_or_else(|| invalid("the request has no usable Host header"))?;
    Ok(json!({ "DataEndpoint": format!("{}://{host}", state.scheme()) }))
}
