//! GetClip: an MP4 file of the fragments that start in the selector's range, as AWS cuts it:
//! the first 200 fragments or the first 100 MB, whichever comes first. A clip is one
//! recording run with one init segment (`video::clip`): it ends where the stream restarted or
//! changed.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::header;
use serde::Deserialize;

use super::{
    blocking, checked_range, log_error, not_found, required, retained_stream_log, select,
    ArchiveState, Origin, Selector, MAX_RANGE_MS,
};
use crate::api::kvs::{decode, signed_body, KvsError};
use crate::video::clip::{self, ClipError};

/// GetClip's limits.
const MAX_CLIP_FRAGMENTS: usize = 200;
const MAX_CLIP_BYTES: u64 = 100 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetClipInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    clip_fragment_selector: Option<Selector>,
}

pub(super) async fn get_clip(State(state): State<Arc<ArchiveState>>, request: Request) -> Response {
    match clip(&state, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn clip(state: &ArchiveState, request: Request) -> Result<Response, KvsError> {
    let body = match signed_body(&state.kvs, request).await {
        Ok(body) => body,
        Err(refused) => return Ok(refused),
    };
    let input: GetClipInput = decode(&body)?;
    let selector = required(input.clip_fragment_selector, "ClipFragmentSelector")?;
    let origin = Origin::parse(
        "ClipFragmentSelector.FragmentSelectorType",
        &required(
            selector.fragment_selector_type,
            "ClipFragmentSelector.FragmentSelectorType",
        )?,
    )?;
    let range = checked_range(
        selector.timestamp_range,
        "ClipFragmentSelector.TimestampRange",
        MAX_RANGE_MS,
    )?;
    let (stream, log) = retained_stream_log(
        state,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    let data = blocking(move || {
        let fragments = select::in_range(&log, &stream, origin, range, 0, MAX_CLIP_FRAGMENTS)
            .map_err(log_error)?;
        if fragments.is_empty() {
            return Err(not_found("No fragments found in the requested time range."));
        }
        let run = clip::first_run(&fragments);
        // The first 100 MB (at least one fragment).
        let mut bytes = 0u64;
        let within = run
            .iter()
            .take_while(|f| {
                bytes = bytes.saturating_add(f.size);
                bytes <= MAX_CLIP_BYTES
            })
            .count()
            .max(1);
        match clip::read_clip(&log, &stream, &run[..within]) {
            Ok(read) => Ok(read.clip.data),
            Err(ClipError::Gone) => Err(not_found(
                "No fragments found in the requested time range (deleted by retention).",
            )),
            Err(error) => Err(KvsError::internal(error)),
        }
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "video/mp4")], data).into_response())
}
