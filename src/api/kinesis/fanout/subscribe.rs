//! SubscribeToShard: checks the request, claims the (consumer, shard) subscription, and
//! answers 200 with an `application/vnd.amazon.eventstream` body that the pump task
//! (`pump`) fills as records commit.
//!
//! Errors found before the answer starts (validation, unknown consumer or shard, a
//! subscription already active) are ordinary AWS error answers; later ones are exception
//! events inside the stream.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::response::Response;
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use hyper::body::Frame;
use tokio::sync::mpsc;

use super::consumers::{consumer_arn, resolve_consumer_arn};
use super::events::Built;
use super::pump::{Outgoing, Pump, SUBSCRIPTION_LIFETIME};
use super::types::{StartingPositionIn, SubscribeToShardInput};
use crate::api::error::ApiError;
use crate::api::eventstream;
use crate::api::kinesis::KinesisState;
use crate::api::protocol::Wire;
use crate::streams::{parse_shard_id, Position, SequenceNumber, ShardMeta};

const POSITION_TYPE_NAMES: [&str; 5] = [
    "AT_SEQUENCE_NUMBER",
    "AFTER_SEQUENCE_NUMBER",
    "TRIM_HORIZON",
    "LATEST",
    "AT_TIMESTAMP",
];
const POSITION_TYPES: &str =
    "[AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER, TRIM_HORIZON, LATEST, AT_TIMESTAMP]";

pub async fn subscribe_to_shard(
    state: &KinesisState,
    wire: Wire,
    input: SubscribeToShardInput,
) -> Result<Response, ApiError> {
    let arn = input
        .consumer_arn
        .ok_or_else(|| ApiError::missing("consumerARN"))?;
    let shard_text = input.shard_id.ok_or_else(|| ApiError::missing("shardId"))?;
    if shard_text.is_empty() || shard_text.chars().count() > 128 {
        return Err(ApiError::constraint(
            &shard_text,
            "shardId",
            "Member must have length between 1 and 128",
        ));
    }
    let start = input
        .starting_position
        .ok_or_else(|| ApiError::missing("startingPosition"))?;
    let kind = start
        .kind
        .clone()
        .ok_or_else(|| ApiError::missing("startingPosition.type"))?;
    if !POSITION_TYPE_NAMES.contains(&kind.as_str()) {
        return Err(ApiError::constraint(
            &kind,
            "startingPosition.type",
            &format!("Member must satisfy enum value set: {POSITION_TYPES}"),
        ));
    }
    let (meta, consumer) = resolve_consumer_arn(state, &arn)?;
    let shard = parse_shard_id(&shard_text)
        .and_then(|i| meta.shard(i))
        .cloned()
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "Shard {shard_text} in stream {} under account {} does not exist",
                meta.name, state.account_id
            ))
        })?;
    let position = starting_position(state, &meta.name, &shard, &kind, &start)?;
    // The ARN as kinedge forms it: one consumer has one key whatever region or account the
    // client wrote in its ARN.
    let arn = consumer_arn(state, &meta.name, &consumer);
    let claim = state.fanout.claim(&arn, shard.uid, &shard.id())?;
    let (tx, rx) = mpsc::channel(1);
    let pump = Pump {
        store: state.store.clone(),
        subs: state.fanout.clone(),
        claim,
        wire,
        stream_uid: meta.uid,
        shard,
        consumer,
        consumer_arn: arn,
        position,
        tx,
        lifetime: SUBSCRIPTION_LIFETIME,
    };
    tokio::spawn(pump.run());
    let mut response = Response::new(axum::body::Body::new(EventBody { rx, held: None }));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(eventstream::CONTENT_TYPE),
    );
    Ok(response)
}

/// Where a subscription starts, as GetShardIterator computes it (with SubscribeToShard's
/// wording of the errors).
fn starting_position(
    state: &KinesisState,
    stream: &str,
    shard: &ShardMeta,
    kind: &str,
    start: &StartingPositionIn,
) -> Result<Position, ApiError> {
    let sequence = || -> Result<Position, ApiError> {
        let text = start.sequence_number.as_deref().ok_or_else(|| {
            ApiError::invalid(format!(
                "StartingPosition.SequenceNumber is required for a starting position of type {kind}."
            ))
        })?;
        let seq: SequenceNumber =
            text.parse()
                .map_err(|e: crate::streams::sequence::SequenceNumberError| {
                    ApiError::invalid(e.to_string())
                })?;
        if seq.shard_index != shard.index {
            return Err(ApiError::invalid(format!(
                "StartingSequenceNumber {text} used in SubscribeToShard on shard {} in stream {stream} under account {} is invalid because it did not come from this shard.",
                shard.id(), state.account_id
            )));
        }
        Ok(seq.position)
    };
    let timestamp = || {
        start.timestamp.map(|ts| ts.0).ok_or_else(|| {
            ApiError::invalid("Must specify timestampInMillis parameter for starting position of type AT_TIMESTAMP. Current request has no timestamp parameter.")
        })
    };
    super::super::records::start_position(state, shard, kind, sequence, timestamp)
}

/// The event-stream body: frames from the pump; a shared event is held (with its share of
/// the event budget) until the connection asks for the next one (by then hyper has taken
/// the frame). Ends
/// when the pump ends; dropping it (the client went away) ends the pump.
struct EventBody {
    rx: mpsc::Receiver<Outgoing>,
    held: Option<Arc<Built>>,
}

impl hyper::body::Body for EventBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.held = None;
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some((bytes, shared))) => {
                self.held = shared;
                Poll::Ready(Some(Ok(Frame::data(bytes))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}
