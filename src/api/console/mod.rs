//! The web console (docs/console.md): a single-page application served from assets built into
//! the binary (`assets`, made by build.rs from `web/`), its login (`session`) and its live
//! status stream (`events`). Routes:
//!
//! - `GET /` from a browser (`Accept: text/html`): redirect to `/console/`;
//! - `GET /console/`: the application; `GET /console/login`: the login page;
//!   `GET /console/assets/{file}`: scripts and styles (gzip when the client takes it);
//! - `POST /console/api/login` (`{"access_key_id", "secret"}`), `POST /console/api/logout`,
//!   `GET /console/api/session`, `GET /console/api/events` (Server-Sent Events);
//! - `/console/api/devices`: the device registry (`devices`).
//!
//! `warnings` keeps the recent WARN and ERROR log events that the live snapshots carry.
//!
//! With `[[api.credentials]]` every page but the login and every call needs a session (or a
//! SigV4 signature); the application reads the gateway through the API's own endpoints, which
//! accept the session cookie in [`Auth`]. Without credentials the console is as open as the
//! API and says so. It never holds a secret: the login's secret is checked and dropped.

pub mod assets;
mod devices;
mod events;
pub mod session;
pub mod warnings;

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use serde::Deserialize;

use super::auth::{Auth, HasAuth, Signed};
use super::ops::OpsState;

/// Most live status streams open at once; more are answered 503.
pub const MAX_EVENT_CLIENTS: usize = 16;

/// What the console's routes share.
pub struct ConsoleState {
    pub auth: Arc<Auth>,
    /// What the status snapshots read.
    pub ops: Arc<OpsState>,
    /// `storage.min_free_disk`, shown against the free space.
    pub min_free_disk: u64,
    /// `devices.dir`: the device files the Devices page lists, adds and removes.
    pub devices_dir: std::path::PathBuf,
    /// One permit per open status stream.
    pub event_clients: Arc<tokio::sync::Semaphore>,
    /// The listener speaks TLS: session cookies are `Secure` (never sent over plain HTTP).
    pub secure_cookie: bool,
}

impl ConsoleState {
    pub fn new(
        auth: Arc<Auth>,
        ops: Arc<OpsState>,
        min_free_disk: u64,
        devices_dir: std::path::PathBuf,
        secure_cookie: bool,
    ) -> ConsoleState {
        ConsoleState {
            auth,
            ops,
            min_free_disk,
            devices_dir,
            event_clients: Arc::new(tokio::sync::Semaphore::new(MAX_EVENT_CLIENTS)),
            secure_cookie,
        }
    }

    /// Credentials are configured: pages and calls need a session.
    fn closed(&self) -> bool {
        self.auth.verifier.is_some()
    }
}

impl HasAuth for ConsoleState {
    fn auth(&self) -> &Auth {
        &self.auth
    }
}

/// The console's routes.
pub fn routes(state: Arc<ConsoleState>) -> Router {
    Router::new()
        .route("/console", get(to_console))
        .route("/console/", get(index))
        .route("/console/login", get(login_page))
        .route("/console/assets/{file}", get(asset))
        .route("/console/api/login", post(login))
        .route("/console/api/logout", post(logout))
        .route("/console/api/session", get(session_info))
        .route("/console/api/events", get(events::stream))
        .route(
            "/console/api/devices",
            get(devices::list).post(devices::add),
        )
        .route(
            "/console/api/devices/{id}",
            axum::routing::delete(devices::remove),
        )
        .with_state(state)
}

/// `GET /`: browsers go to the console; anything else is told that `/` takes POSTs (the AWS
/// JSON API), as before the console existed.
pub async fn root(headers: HeaderMap) -> Response {
    let browser = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if browser {
        redirect("/console/")
    } else {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "POST")],
            "GET / is for browsers (Accept: text/html); the API takes POST\n",
        )
            .into_response()
    }
}

fn redirect(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
}

async fn to_console() -> Response {
    redirect("/console/")
}

/// The application, or the login page's address when a session is needed and missing.
async fn index(State(state): State<Arc<ConsoleState>>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    if state.closed() && state.auth.authorize(&parts, &[]).is_err() {
        return redirect("/console/login");
    }
    serve_asset(&parts.headers, "index.html").await
}

async fn login_page(request: Request) -> Response {
    serve_asset(request.headers(), "login.html").await
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    if file.ends_with(".html") {
        return StatusCode::NOT_FOUND.into_response();
    }
    serve_asset(&headers, &file).await
}

/// One embedded asset, gzip-compressed when the client accepts it, with the headers every
/// console answer carries.
async fn serve_asset(headers: &HeaderMap, file: &str) -> Response {
    let Some(gzipped) = assets::find(file) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let takes_gzip = headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let mut response = if takes_gzip {
        let mut r = gzipped.into_response();
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        match tokio::task::spawn_blocking(move || assets::gunzip(gzipped)).await {
            Ok(Ok(body)) => body.into_response(),
            _ => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        }
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, assets::content_type(file));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    security_headers(h);
    response
}

/// What every console page gets: no framing, no sniffing, no referrer, scripts and media
/// from the gateway only (hls.js runs its transmuxer in a worker made from a blob).
fn security_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; \
             worker-src 'self' blob:; style-src 'self'; frame-ancestors 'none'; \
             base-uri 'none'; form-action 'self'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

#[derive(Deserialize)]
struct Login {
    access_key_id: String,
    secret: String,
}

/// How long a refused login waits before it is answered (slows guessing down).
const REFUSED_LOGIN_DELAY: std::time::Duration = std::time::Duration::from_millis(500);

/// `POST /console/api/login`: a session for a configured access key id and its secret.
async fn login(State(state): State<Arc<ConsoleState>>, Json(login): Json<Login>) -> Response {
    let Some(verifier) = &state.auth.verifier else {
        return message(
            StatusCode::CONFLICT,
            "no [[api.credentials]] are configured: the console is open without a login",
        );
    };
    if !verifier.check_secret(&login.access_key_id, &login.secret) {
        tracing::warn!(
            access_key_id = %login.access_key_id,
            "console login refused: unknown access key id or wrong secret"
        );
        tokio::time::sleep(REFUSED_LOGIN_DELAY).await;
        return message(
            StatusCode::UNAUTHORIZED,
            "unknown access key id or wrong secret",
        );
    }
    let token = state.auth.sessions.open(&login.access_key_id);
    tracing::info!(access_key_id = %login.access_key_id, "console login");
    let mut response =
        Json(serde_json::json!({"access_key_id": login.access_key_id})).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session::set_cookie(&token, state.secure_cookie),
    );
    response
}

/// `POST /console/api/logout`: ends the session the request carries.
async fn logout(State(state): State<Arc<ConsoleState>>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    if let Some(token) = session::token_of(&parts) {
        state.auth.sessions.close(token);
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session::clear_cookie(state.secure_cookie),
    );
    response
}

/// `GET /console/api/session`: who is logged in, and whether the console is open.
async fn session_info(State(state): State<Arc<ConsoleState>>, signed: Signed) -> Response {
    Json(serde_json::json!({
        "open": !state.closed(),
        "access_key_id": signed.key,
        "version": env!("CARGO_PKG_VERSION"),
    }))
    .into_response()
}

fn message(status: StatusCode, text: &str) -> Response {
    (status, Json(serde_json::json!({ "message": text }))).into_response()
}

#[cfg(test)]
mod tests;
