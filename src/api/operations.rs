//! `POST /`: the AWS JSON (and CBOR) front. It reads the wire format from the head, refuses
//! a request that cannot be authentic before reading its body, reads the body into memory
//! from the body budget, checks the signature, and hands the operation named by
//! `X-Amz-Target` to the Kinesis or the Firehose router (a Kinesis request first passes its
//! stream's resource policy, `kinesis::access`, with the signing key as principal). Every request and every error is
//! counted (`events`).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;

use super::auth::Auth;
use super::error::{ApiError, ErrorKind};
use super::events::{ApiCounters, ApiRequestFailed, ApiRequestReceived};
use super::firehose::{self, FirehoseState};
use super::kinesis::{self, KinesisState};
use super::protocol::Wire;
use super::{body, with_request_id, RequestId, MAX_BODY_BYTES};
use crate::observe::emit;

/// What `POST /` needs: the credentials, the body budget, the counters and the two APIs.
pub struct OperationsState {
    pub auth: Arc<Auth>,
    /// Room for request bodies in KiB (see [`super::BODY_BUDGET_KIB`]).
    pub body_budget: tokio::sync::Semaphore,
    pub counters: Arc<ApiCounters>,
    pub kinesis: KinesisState,
    pub firehose: FirehoseState,
}

pub(super) async fn handle(
    State(state): State<Arc<OperationsState>>,
    axum::Extension(RequestId(id)): axum::Extension<RequestId>,
    request: Request,
) -> Response {
    emit(ApiRequestReceived {
        counters: &state.counters,
    });
    let (parts, body) = request.into_parts();
    let wire = Wire::from_headers(&parts.headers);
    let answer_wire = *wire.as_ref().unwrap_or(&Wire::Json);
    let result = async {
        let wire = wire?;
        // The body's room in the budget is held until the operation is answered.
        let (body, _room, principal) = read_signed(&state, &parts, body).await?;
        let target = header_text(
            &parts,
            "x-amz-target",
            ApiError::new(
                ErrorKind::UnknownOperation,
                "The X-Amz-Target header is missing: it names the operation, e.g. Kinesis_20131202.PutRecord.",
            ),
        )?;
        dispatch(&state, wire, target, body, principal.as_deref()).await
    }
    .await;
    let response = match result {
        Ok(response) => response,
        Err(error) => {
            emit(ApiRequestFailed {
                counters: &state.counters,
                request_id: &id,
                error: &error,
            });
            answer_wire.error(&error)
        }
    };
    with_request_id(response, &id)
}

/// The body of a request whose signature is valid, the room it takes in the body budget and
/// the signing access key id (`None` without credentials): a request that cannot be authentic
/// is refused from its head, before its body is read.
async fn read_signed<'a>(
    state: &'a OperationsState,
    parts: &http::request::Parts,
    body: axum::body::Body,
) -> Result<
    (
        Bytes,
        Option<tokio::sync::SemaphorePermit<'a>>,
        Option<String>,
    ),
    ApiError,
> {
    state.auth.precheck(parts)?;
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let (body, room) = body::read_body(body, declared, MAX_BODY_BYTES, &state.body_budget).await?;
    let principal = state.auth.authorize(parts, &body)?;
    Ok((body, room, principal))
}

/// Runs the operation `target` names (`<Service>.<Operation>`), signed by `principal`.
async fn dispatch(
    state: &OperationsState,
    wire: Wire,
    target: &str,
    body: Bytes,
    principal: Option<&str>,
) -> Result<Response, ApiError> {
    match target.split_once('.') {
        Some(("Kinesis_20131202", operation)) => {
            kinesis::access::enforce(&state.kinesis, principal, wire, operation, &body).await?;
            kinesis::dispatch(&state.kinesis, wire, operation, body).await
        }
        Some(("Firehose_20150804", operation)) => {
            firehose::dispatch(&state.firehose, wire, operation, body).await
        }
        _ => Err(ApiError::new(
            ErrorKind::UnknownOperation,
            format!(
                "Unknown X-Amz-Target '{}': kinedge serves Kinesis_20131202.* and Firehose_20150804.*.",
                target.chars().take(100).collect::<String>()
            ),
        )),
    }
}

/// The value of header `name` as text, or the AWS error naming what is wrong with it.
fn header_text<'a>(
    parts: &'a http::request::Parts,
    name: &str,
    missing: ApiError,
) -> Result<&'a str, ApiError> {
    let value = parts.headers.get(name).ok_or(missing)?;
    value.to_str().map_err(|_| {
        ApiError::new(
            ErrorKind::Serialization,
            format!("The {name} header holds bytes that are not visible ASCII text."),
        )
    })
}
