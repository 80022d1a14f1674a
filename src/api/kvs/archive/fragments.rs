//! ListFragments: the stream's fragments whose start timestamp (producer or server) is in the
//! selector's range, or all of them without a selector, ascending by number, in pages of
//! `MaxResults` (1..=1000, 1000 by default) with a `NextToken` while more remain.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::tokens::ListPosition;
use super::{
    blocking, epoch_seconds, in_range, invalid, log_error, required, select, stream_log,
    ArchiveState, Origin, Selector,
};
use crate::api::kvs::{decode, signed_body, KvsError};
use crate::video::log::FragmentMeta;

const MAX_RESULTS: i64 = 1000;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListFragmentsInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
    fragment_selector: Option<Selector>,
}

pub(super) async fn list_fragments(
    State(state): State<Arc<ArchiveState>>,
    request: Request,
) -> Response {
    match list(&state, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn list(state: &ArchiveState, request: Request) -> Result<Response, KvsError> {
    let body = match signed_body(&state.kvs, request).await {
        Ok(body) => body,
        Err(refused) => return Ok(refused),
    };
    let input: ListFragmentsInput = decode(&body)?;
    let limit = in_range(
        input.max_results.unwrap_or(MAX_RESULTS),
        "MaxResults",
        1,
        MAX_RESULTS,
    )? as usize;
    let position = match input.next_token.as_deref() {
        Some(token) => ListPosition::decode(token).ok_or_else(|| {
            invalid("NextToken is not valid: pass the NextToken of the previous page")
        })?,
        None => ListPosition {
            selector: input.fragment_selector.map(selector).transpose()?,
            after: 0,
        },
    };
    let (stream, log) = stream_log(
        state,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    let (mut fragments, more) = blocking(move || {
        let mut fragments = match position.selector {
            Some((origin, start, end)) => select::in_range(
                &log,
                &stream,
                origin,
                (start, end),
                position.after,
                limit + 1,
            ),
            None => log.fragments_after(&stream, position.after, limit + 1),
        }
        .map_err(log_error)?;
        let more = fragments.len() > limit;
        fragments.truncate(limit);
        Ok((fragments, more))
    })
    .await?;
    let next_token = match (more, fragments.last()) {
        (true, Some(last)) => Some(
            ListPosition {
                selector: position.selector,
                after: last.number,
            }
            .encode(),
        ),
        _ => None,
    };
    let listed: Vec<serde_json::Value> = fragments.drain(..).map(|f| fragment_json(&f)).collect();
    let mut output = serde_json::json!({ "Fragments": listed });
    if let Some(token) = next_token {
        output["NextToken"] = token.into();
    }
    Ok(Json(output).into_response())
}

/// A `FragmentSelector`: its type and its required `[start, end]`.
fn selector(selector: Selector) -> Result<(Origin, i64, i64), KvsError> {
    let origin = Origin::parse(
        "FragmentSelector.FragmentSelectorType",
        &required(
            selector.fragment_selector_type,
            "FragmentSelector.FragmentSelectorType",
        )?,
    )?;
    let range = required(selector.timestamp_range, "FragmentSelector.TimestampRange")?;
    let start = required(
        range.start_timestamp,
        "FragmentSelector.TimestampRange.StartTimestamp",
    )?;
    let end = required(
        range.end_timestamp,
        "FragmentSelector.TimestampRange.EndTimestamp",
    )?;
    if end < start {
        return Err(invalid(
            "FragmentSelector.TimestampRange.EndTimestamp must not be before its StartTimestamp",
        ));
    }
    Ok((origin, start, end))
}

/// A `Fragment` as AWS lists it.
fn fragment_json(f: &FragmentMeta) -> serde_json::Value {
    serde_json::json!({
        "FragmentNumber": f.number.to_string(),
        "FragmentSizeInBytes": f.size,
        "ProducerTimestamp": epoch_seconds(f.producer_ms),
        "ServerTimestamp": epoch_seconds(f.server_ms),
        "FragmentLengthInMilliseconds": f.duration_ms,
    })
}
