//! The analytics router: Kinesis Data Analytics applications and bounded queries over HTTP,
//! on the API's listener and behind the API's credentials.
//!
//! - `GET /analytics`, `GET /analytics/{name}`: applications and their status;
//! - `POST /analytics` (`{"name", "sql", "max_state_keys"?}`), `POST /analytics/{name}/stop`,
//!   `POST /analytics/{name}/start`, `DELETE /analytics/{name}`;
//! - `POST /analytics/query` (`{"sql", "max_rows"?}`): the same engine over stored history.
//!
//! GETs are checked by the [`Signed`] extractor; a request with a body is refused from its
//! head when it cannot be authentic, then its body (at most [`MAX_BODY_BYTES`]) is read and its
//! signature checked over it. Errors are `{"error": KIND, "message": ...}` with the HTTP status
//! of the kind (404 NotFound, 409 Exists, 403 FromConfig, 400 Sql/Invalid); a signature that
//! is refused is answered as everywhere else in the API. The router only translates: what an
//! application is and does belongs to [`AnalyticsService`].

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;

use super::auth::{Auth, HasAuth, Signed};
use super::body::{read_body, BodyError};
use super::protocol::Wire;
use crate::analytics::{AnalyticsError, AnalyticsService, ApplicationDef, ApplicationOrigin};

/// Largest request body: a script or a query.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Rows a query answers when the request does not say.
pub const DEFAULT_MAX_ROWS: usize = 10_000;
/// Most rows a query may ask for.
pub const MAX_ROWS: usize = 1_000_000;
/// Request bodies this router holds in memory at once, in KiB.
const BODY_BUDGET_KIB: usize = 4 * 1024;

/// What the analytics routes share.
pub struct AnalyticsState {
    auth: Arc<Auth>,
    /// The applications, when analytics run.
    analytics: Option<AnalyticsService>,
    body_budget: tokio::sync::Semaphore,
}

impl AnalyticsState {
    pub fn new(auth: Arc<Auth>, analytics: Option<AnalyticsService>) -> AnalyticsState {
        AnalyticsState {
            auth,
            analytics,
            body_budget: tokio::sync::Semaphore::new(BODY_BUDGET_KIB),
        }
    }
}

impl HasAuth for AnalyticsState {
    fn auth(&self) -> &Auth {
        &self.auth
    }
}

/// The `/analytics` routes. `/analytics/query` answers GET and DELETE too, for an
/// application that happens to be named `query`.
pub fn routes(state: Arc<AnalyticsState>) -> Router {
    Router::new()
        .route("/analytics", get(list).post(create))
        .route(
            "/analytics/query",
            post(query).get(describe_query).delete(delete_query),
        )
        .route("/analytics/{name}", get(describe).delete(delete))
        .route("/analytics/{name}/stop", post(stop))
        .route("/analytics/{name}/start", post(start))
        .with_state(state)
}

/// An error of this router: `{"error": KIND, "message": ...}` with its HTTP status.
#[derive(Debug)]
pub struct AnalyticsApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl AnalyticsApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        AnalyticsApiError {
            status,
            kind,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Invalid", message)
    }

    fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "analytics are not running on this gateway",
        )
    }
}

impl From<AnalyticsError> for AnalyticsApiError {
    fn from(e: AnalyticsError) -> Self {
        let (status, kind) = match &e {
            AnalyticsError::NotFound(_) => (StatusCode::NOT_FOUND, "NotFound"),
            AnalyticsError::Exists(_) => (StatusCode::CONFLICT, "Exists"),
            AnalyticsError::FromConfig(_) => (StatusCode::FORBIDDEN, "FromConfig"),
            AnalyticsError::Sql(_) => (StatusCode::BAD_REQUEST, "Sql"),
            AnalyticsError::Invalid(_) => (StatusCode::BAD_REQUEST, "Invalid"),
            AnalyticsError::Store(store) if store.is_retryable() => {
                (StatusCode::SERVICE_UNAVAILABLE, "Unavailable")
            }
            AnalyticsError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Internal"),
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "analytics request failed");
        }
        Self::new(status, kind, e.to_string())
    }
}

impl From<BodyError> for AnalyticsApiError {
    fn from(e: BodyError) -> Self {
        let (status, kind) = match &e {
            BodyError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "TooLarge"),
            BodyError::Read(_) => (StatusCode::BAD_REQUEST, "Invalid"),
            BodyError::TooSlow { .. } => (StatusCode::REQUEST_TIMEOUT, "RequestTimeout"),
            BodyError::Busy { .. } => (StatusCode::TOO_MANY_REQUESTS, "Throttling"),
            BodyError::Closed => (StatusCode::SERVICE_UNAVAILABLE, "Unavailable"),
        };
        Self::new(status, kind, e.to_string())
    }
}

impl IntoResponse for AnalyticsApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.kind, "message": self.message })),
        )
            .into_response()
    }
}

type Answer = Result<Response, AnalyticsApiError>;

/// The service, or 503 when analytics do not run.
fn service(state: &AnalyticsState) -> Result<&AnalyticsService, AnalyticsApiError> {
    state
        .analytics
        .as_ref()
        .ok_or_else(AnalyticsApiError::unavailable)
}

/// The body of a request whose signature is valid (checked over the body), or the answer
/// that refuses it: a request that cannot be authentic is refused before its body is read.
async fn signed_body(state: &AnalyticsState, request: Request) -> Result<Bytes, Response> {
    let (parts, body) = request.into_parts();
    state
        .auth
        .precheck(&parts)
        .map_err(|error| Wire::Json.error(&error))?;
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let (bytes, _room) = read_body(body, declared, MAX_BODY_BYTES, &state.body_budget)
        .await
        .map_err(|error| AnalyticsApiError::from(error).into_response())?;
    state
        .auth
        .authorize(&parts, &bytes)
        .map_err(|error| Wire::Json.error(&error))?;
    Ok(bytes)
}

/// A JSON body as `T`, or 400 naming what is wrong with it.
fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, AnalyticsApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| AnalyticsApiError::invalid(format!("the request body is not valid: {e}")))
}

/// `GET /analytics`: every application (none when analytics do not run).
async fn list(State(state): State<Arc<AnalyticsState>>, _signed: Signed) -> Response {
    let applications = state
        .analytics
        .as_ref()
        .map(AnalyticsService::list)
        .unwrap_or_default();
    Json(serde_json::json!({ "applications": applications })).into_response()
}

/// `GET /analytics/{name}`.
async fn describe(
    State(state): State<Arc<AnalyticsState>>,
    Path(name): Path<String>,
    _signed: Signed,
) -> Answer {
    Ok(Json(service(&state)?.describe(&name)?).into_response())
}

async fn describe_query(state: State<Arc<AnalyticsState>>, signed: Signed) -> Answer {
    describe(state, Path("query".to_owned()), signed).await
}

/// `POST /analytics`: what creates an application.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    name: String,
    sql: String,
    max_state_keys: Option<usize>,
}

/// `POST /analytics`: creates and starts an application (kept in the store).
async fn create(State(state): State<Arc<AnalyticsState>>, request: Request) -> Answer {
    let body = match signed_body(&state, request).await {
        Ok(body) => body,
        Err(refused) => return Ok(refused),
    };
    let input: CreateRequest = decode(&body)?;
    if !crate::analytics::config::is_valid_name(&input.name) {
        return Err(AnalyticsApiError::invalid(format!(
            "`{}` is not a valid application name: use 1..=128 characters from a-z, A-Z, \
             0-9, `_`, `.`, `-`",
            input.name.chars().take(200).collect::<String>()
        )));
    }
    if input.sql.trim().is_empty() {
        return Err(AnalyticsApiError::invalid("`sql` is empty"));
    }
    let max_state_keys = match input.max_state_keys {
        Some(0) => {
            return Err(AnalyticsApiError::invalid(
                "`max_state_keys` must be at least 1",
            ))
        }
        Some(n) => n,
        None => crate::analytics::config::ApplicationConfig::DEFAULT_MAX_STATE_KEYS,
    };
    let status = service(&state)?
        .create(ApplicationDef {
            name: input.name,
            sql: input.sql,
            max_state_keys,
            origin: ApplicationOrigin::Api,
            enabled: true,
        })
        .await?;
    Ok(Json(status).into_response())
}

/// `POST /analytics/{name}/stop`.
async fn stop(
    State(state): State<Arc<AnalyticsState>>,
    Path(name): Path<String>,
    request: Request,
) -> Answer {
    if let Err(refused) = signed_body(&state, request).await {
        return Ok(refused);
    }
    Ok(Json(service(&state)?.stop(&name).await?).into_response())
}

/// `POST /analytics/{name}/start`: runs a stopped or failed application again from its
/// checkpoint.
async fn start(
    State(state): State<Arc<AnalyticsState>>,
    Path(name): Path<String>,
    request: Request,
) -> Answer {
    if let Err(refused) = signed_body(&state, request).await {
        return Ok(refused);
    }
    Ok(Json(service(&state)?.resume(&name).await?).into_response())
}

/// `DELETE /analytics/{name}`: stops the application and forgets it (its output stays).
async fn delete(
    State(state): State<Arc<AnalyticsState>>,
    Path(name): Path<String>,
    request: Request,
) -> Answer {
    if let Err(refused) = signed_body(&state, request).await {
        return Ok(refused);
    }
    service(&state)?.delete(&name).await?;
    Ok(Json(serde_json::json!({ "name": name, "deleted": true })).into_response())
}

async fn delete_query(state: State<Arc<AnalyticsState>>, request: Request) -> Answer {
    delete(state, Path("query".to_owned()), request).await
}

/// `POST /analytics/query`: a bounded query.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryRequest {
    sql: String,
    max_rows: Option<usize>,
}

/// `POST /analytics/query`: runs a query over stored history, at most `max_rows` rows.
async fn query(State(state): State<Arc<AnalyticsState>>, request: Request) -> Answer {
    let body = match signed_body(&state, request).await {
        Ok(body) => body,
        Err(refused) => return Ok(refused),
    };
    let input: QueryRequest = decode(&body)?;
    let max_rows = input.max_rows.unwrap_or(DEFAULT_MAX_ROWS);
    if !(1..=MAX_ROWS).contains(&max_rows) {
        return Err(AnalyticsApiError::invalid(format!(
            "`max_rows` {max_rows} is out of range: 1..={MAX_ROWS}"
        )));
    }
    if input.sql.trim().is_empty() {
        return Err(AnalyticsApiError::invalid("`sql` is empty"));
    }
    Ok(Json(service(&state)?.query(&input.sql, max_rows).await?).into_response())
}

#[cfg(test)]
mod tests;
