//! CORS (`api.cors_origins`): lets a page from another origin (a dashboard, an hls.js player,
//! the AWS SDK for JavaScript in a browser) call the API and read its answers.
//!
//! Without `cors_origins` nothing changes: no CORS header is sent and `OPTIONS` is answered
//! like any other method a route does not serve (405, or 404 off the routes). With it, every
//! answer on every route (API, video, `/health`, `/status`, ...) carries the CORS headers for
//! a listed origin (`"*"`: any), and an `OPTIONS` request is a preflight answered at once,
//! before routing and authentication (browsers never sign a preflight).
//!
//! A preflight may ask for the headers the AWS SDKs send (`authorization`, `content-type`,
//! `x-amz-*`, `x-amzn-*`, `amz-sdk-*`) and those a video player sends (`range`); others are
//! not granted. Credentials (cookies) are never allowed: SigV4 travels in headers.

use std::time::Duration;

use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer, ExposeHeaders};

/// How long a browser may cache a preflight answer.
const MAX_AGE: Duration = Duration::from_secs(600);

/// Request headers a preflight may ask for: exact names, then prefixes.
const ALLOWED_HEADERS: &[&str] = &["authorization", "content-type", "content-encoding", "range"];
const ALLOWED_PREFIXES: &[&str] = &["x-amz-", "x-amzn-", "amz-sdk-"];

/// Response headers a page may read besides the CORS-safelisted ones.
const EXPOSED_HEADERS: &[&str] = &[
    "x-amzn-requestid",
    "x-amzn-errortype",
    "x-amz-id-2",
    "date",
    "content-length",
    "content-range",
    "accept-ranges",
];

/// The layer for `origins` (`api.cors_origins`, already validated); `None` without origins.
pub fn layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([Method::GET, Method::HEAD, Method::POST])
            // The preflight's requested headers, after `filter_requested_headers` kept only
            // the allowed ones.
            .allow_headers(AllowHeaders::mirror_request())
            .expose_headers(ExposeHeaders::list(
                EXPOSED_HEADERS.iter().map(|h| HeaderName::from_static(h)),
            ))
            .max_age(MAX_AGE),
    )
}

fn allowed(name: &str) -> bool {
    ALLOWED_HEADERS.contains(&name) || ALLOWED_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Keeps only allowed names in a preflight's `Access-Control-Request-Headers`, so that the
/// layer's mirrored answer grants those and no others.
pub fn filter_requested_headers(headers: &mut HeaderMap) {
    let Some(requested) = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) else {
        return;
    };
    let kept: Vec<String> = requested
        .to_str()
        .unwrap_or("")
        .split(',')
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| allowed(name))
        .collect();
    match HeaderValue::from_str(&kept.join(",")) {
        Ok(value) if !kept.is_empty() => {
            headers.insert(header::ACCESS_CONTROL_REQUEST_HEADERS, value);
        }
        _ => {
            headers.remove(header::ACCESS_CONTROL_REQUEST_HEADERS);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sdk_and_player_headers_are_granted() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_static(
                "Authorization, content-type,X-Amz-Date,x-amz-target, amz-sdk-invocation-id,x-evil,range",
            ),
        );
        filter_requested_headers(&mut headers);
        assert_eq!(
            headers[header::ACCESS_CONTROL_REQUEST_HEADERS],
            "authorization,content-type,x-amz-date,x-amz-target,amz-sdk-invocation-id,range"
        );
        headers.insert(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_static("x-evil"),
        );
        filter_requested_headers(&mut headers);
        assert!(headers
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .is_none());
    }

    #[test]
    fn no_origins_no_layer() {
        assert!(layer(&[]).is_none());
        assert!(layer(&["*".to_string()]).is_some());
        assert!(layer(&["https://dash.example".to_string()]).is_some());
    }
}
