//! Who may call the API: with `api.credentials` configured, every request (except `/health`,
//! `/ready` and, with `api.open_metrics`, `/metrics`) carries a valid SigV4 signature; without
//! them any signature is accepted, which is why the default listener is loopback only.
//! A browser logged in to the console carries a session cookie instead of a signature: this is
//! the one place that accepts it (for reads; for writes only with the console's header, see
//! [`Sessions::of_request`]).
//!
//! [`Signed`] is the extractor every router's GET handlers share: it checks the signature of
//! a request without a body and refuses with the AWS-shaped JSON error, so no handler repeats
//! the check. `POST /` reads its body first and calls [`Auth::precheck`] and
//! [`Auth::authorize`] itself.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::FromRequestParts;
use axum::response::Response;
use http::request::Parts;

use super::console::session::Sessions;
use super::error::{ApiError, ErrorKind};
use super::protocol::Wire;
use super::sigv4::{AuthError, SigV4Verifier};

/// The API's credentials (none: every request is accepted), its region and the console's
/// sessions.
pub struct Auth {
    pub verifier: Option<SigV4Verifier>,
    pub region: String,
    pub sessions: Sessions,
}

impl Auth {
    /// Refuses from its head a request that cannot be authentic, before its body is read.
    pub fn precheck(&self, parts: &Parts) -> Result<(), ApiError> {
        match &self.verifier {
            Some(_) if self.console_session(parts).is_some() => Ok(()),
            Some(verifier) => verifier
                .precheck(parts, SystemTime::now())
                .map_err(auth_error),
            None => Ok(()),
        }
    }

    /// With credentials configured, the request must carry a valid SigV4 signature over
    /// `body`, or be the console's with a live session; the signing (or logged in) access key
    /// id is returned (`None` without credentials).
    pub fn authorize(&self, parts: &Parts, body: &[u8]) -> Result<Option<String>, ApiError> {
        if self.verifier.is_some() {
            if let Some(key) = self.console_session(parts) {
                return Ok(Some(key));
            }
        }
        match &self.verifier {
            Some(verifier) => verifier
                .verify(parts, body, SystemTime::now())
                .map(Some)
                .map_err(auth_error),
            None => Ok(None),
        }
    }

    /// The access key id of the console session a request carries, when it carries no
    /// signature (a signed request is judged by its signature alone).
    fn console_session(&self, parts: &Parts) -> Option<String> {
        let signed = parts.headers.contains_key(http::header::AUTHORIZATION)
            || parts
                .uri
                .query()
                .is_some_and(|q| q.contains("X-Amz-Algorithm"));
        if signed {
            return None;
        }
        self.sessions.of_request(parts)
    }
}

fn auth_error(e: AuthError) -> ApiError {
    ApiError::new(ErrorKind::Auth(e.aws_error_type()), e.to_string())
}

/// A request without a body whose signature was checked (when credentials are configured):
/// the access key id that signed it and the `Host` it was sent to.
pub struct Signed {
    pub key: Option<String>,
    pub host: String,
}

/// A router's state that holds the API's credentials.
pub trait HasAuth {
    fn auth(&self) -> &Auth;
}

impl<S> FromRequestParts<Arc<S>> for Signed
where
    S: HasAuth + Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<S>) -> Result<Signed, Response> {
        let key = state
            .auth()
            .authorize(parts, &[])
            .map_err(|error| Wire::Json.error(&error))?;
        let host = parts
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
            .to_string();
        Ok(Signed { key, host })
    }
}
