//! `StreamInfo` as AWS gives it (CreationTime in epoch seconds, Version a string, Status), for
//! cameras and created streams, and ListStreams over both, by name, with its filter and
//! pagination (the token is the last name returned, base64-encoded).

use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

use super::super::{decode, KvsError, KvsState};
use super::validate::{self, invalid};
use crate::video::log::{StreamRecord, StreamStatus};

/// Cameras show this version: they change only through their device file.
const CAMERA_VERSION: &str = "1";
/// ListStreams' page without MaxResults, and the largest (the model's limit).
const MAX_PAGE: usize = 10_000;

/// A camera as a stream: `ACTIVE`, its configured retention, its codec as the media type once
/// known; it has no creation time (epoch 0, also in its ARN).
pub fn camera_info(state: &KvsState, name: &str, retention_hours: u64) -> Value {
    let media_type = state
        .video
        .as_ref()
        .and_then(|video| video.camera(name))
        .and_then(|camera| camera.live().codec)
        .map(|codec| format!("video/{codec}"));
    let mut info = json!({
        "DeviceName": name,
        "StreamName": name,
        "StreamARN": state.stream_arn(name, 0),
        "Version": CAMERA_VERSION,
        "Status": "ACTIVE",
        "CreationTime": 0.0,
        "DataRetentionInHours": retention_hours,
    });
    if let Some(media_type) = media_type {
        info["MediaType"] = json!(media_type);
    }
    info
}

/// A stream created through the API.
pub fn created_info(state: &KvsState, record: &StreamRecord) -> Value {
    let mut info = json!({
        "StreamName": record.name,
        "StreamARN": state.stream_arn(&record.name, record.created_ms),
        "Version": record.version(),
        "Status": match record.status {
            StreamStatus::Active => "ACTIVE",
            StreamStatus::Deleting => "DELETING",
        },
        "CreationTime": record.created_ms as f64 / 1000.0,
        "DataRetentionInHours": record.retention_hours,
    });
    for (member, value) in [
        ("DeviceName", &record.device_name),
        ("MediaType", &record.media_type),
        ("KmsKeyId", &record.kms_key_id),
    ] {
        if let Some(value) = value {
            info[member] = json!(value);
        }
    }
    info
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListStreamsInput {
    max_results: Option<i64>,
    next_token: Option<String>,
    stream_name_condition: Option<NameCondition>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NameCondition {
    comparison_operator: Option<String>,
    comparison_value: Option<String>,
}

pub async fn list_streams(state: &KvsState, body: &[u8]) -> Result<Value, KvsError> {
    let input: ListStreamsInput = decode(body)?;
    let limit = match input.max_results {
        None => MAX_PAGE,
        Some(n) if (1..=MAX_PAGE as i64).contains(&n) => n as usize,
        Some(n) => {
            return Err(invalid(format!(
                "MaxResults must be 1 to {MAX_PAGE} (got {n})"
            )))
        }
    };
    let after = match &input.next_token {
        Some(token) => {
            validate::next_token(token)?;
            let name = base64::engine::general_purpose::STANDARD
                .decode(token)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| invalid("NextToken is not a token this gateway handed out"))?;
            Some(name)
        }
        None => None,
    };
    let prefix = match input.stream_name_condition {
        Some(condition) => {
            if let Some(op) = condition.comparison_operator.as_deref() {
                if op != "BEGINS_WITH" {
                    return Err(invalid("ComparisonOperator must be BEGINS_WITH"));
                }
            }
            if let Some(value) = &condition.comparison_value {
                validate::stream_name("ComparisonValue", value)?;
            }
            condition.comparison_value.unwrap_or_default()
        }
        None => String::new(),
    };
    let video = state.video()?;
    // The first `limit + 1` names of the union are among the first `limit + 1` created
    // streams and the cameras; cameras win over created streams of the same name, as in
    // `KvsState::stream_info`.
    let mut streams: std::collections::BTreeMap<String, Value> = video
        .log()
        .stream_records_page(&prefix, after.as_deref(), limit + 1)
        .iter()
        .map(|r| (r.name.clone(), created_info(state, r)))
        .collect();
    for name in video.camera_names() {
        if name.starts_with(&prefix) && after.as_ref().is_none_or(|after| &name > after) {
            let retention = video
                .camera(&name)
                .map_or(0, |camera| camera.policy.max_age_ms / 3_600_000);
            streams.insert(name.clone(), camera_info(state, &name, retention));
        }
    }
    let mut page: Vec<(String, Value)> = streams.into_iter().take(limit + 1).collect();
    let more = page.len() > limit;
    page.truncate(limit);
    let mut output = json!({});
    if more {
        if let Some((last, _)) = page.last() {
            output["NextToken"] =
                json!(base64::engine::general_purpose::STANDARD.encode(last.as_bytes()));
        }
    }
    output["StreamInfoList"] = Value::Array(page.into_iter().map(|(_, info)| info).collect());
    Ok(output)
}
