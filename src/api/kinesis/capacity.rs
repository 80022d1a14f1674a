//! UpdateStreamMode: a stream's capacity mode, PROVISIONED or ON_DEMAND.
//!
//! The mode is durable (the stream's row, through the store's writer). ON_DEMAND streams are
//! resharded by the gateway's on-demand scaler (`crate::ondemand`) by the write rate it sees;
//! PROVISIONED streams keep the shards they are given. Switching keeps the current shards, as
//! Kinesis does. At most `ON_DEMAND_STREAM_LIMIT` streams are ON_DEMAND (LimitExceeded beyond,
//! checked by the writer). Deliberate difference: Kinesis allows two switches per 24 hours;
//! kinedge allows any number (there is no billing to protect), and setting the mode a stream
//! already has succeeds without change.

use serde::Deserialize;

use super::types::{NamesStream, StreamModeDetails};
use crate::api::error::{ApiError, ErrorKind};
use crate::api::KinesisState;
use crate::storage::{AdminOp, StoreError};
use crate::streams::StreamMode;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UpdateStreamModeInput {
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    pub stream_mode_details: Option<StreamModeDetails>,
}

impl NamesStream for UpdateStreamModeInput {
    fn stream_name(&self) -> Option<&str> {
        None
    }
    fn stream_arn(&self) -> Option<&str> {
        self.stream_arn.as_deref()
    }
}

/// A `StreamMode` member as the model allows it.
pub fn parse_mode(text: &str, member: &str) -> Result<StreamMode, ApiError> {
    match text {
        "PROVISIONED" => Ok(StreamMode::Provisioned),
        "ON_DEMAND" => Ok(StreamMode::OnDemand),
        other => Err(ApiError::constraint(
            other,
            member,
            "Member must satisfy enum value set: [PROVISIONED, ON_DEMAND]",
        )),
    }
}

pub async fn update_stream_mode(
    state: &KinesisState,
    input: UpdateStreamModeInput,
) -> Result<(), ApiError> {
    if input.stream_arn.is_none() {
        return Err(ApiError::missing("streamARN"));
    }
    let details = input
        .stream_mode_details
        .as_ref()
        .ok_or_else(|| ApiError::missing("streamModeDetails"))?;
    let mode = details
        .stream_mode
        .as_deref()
        .ok_or_else(|| ApiError::missing("streamModeDetails.streamMode"))?;
    let mode = parse_mode(mode, "streamModeDetails.streamMode")?;
    let meta = state.stream(&input)?;
    state
        .store
        .admin(AdminOp::SetStreamMode {
            stream: meta.name.clone(),
            mode,
        })
        .await
        .map_err(|e| match e {
            StoreError::LimitExceeded(message) => ApiError::new(ErrorKind::LimitExceeded, message),
            other => state.store_error(&meta.name, other),
        })
}
