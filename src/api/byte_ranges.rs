//! Byte ranges (RFC 9110 §14) for media answers: video players and browsers fetch clips and
//! segments in pieces (`Range: bytes=…`) and seek by asking for the part they need.
//!
//! One satisfiable range: `206 Partial Content` with `Content-Range`. A range past the end:
//! `416` with `Content-Range: bytes */<length>`. No `Range`, one that does not parse, several
//! ranges (a multipart answer is not worth its weight here), or an `If-Range` that does not
//! match the answer's ETag: the whole body with `200`, as RFC 9110 allows. Every answer says
//! `Accept-Ranges: bytes`. Parsing is the `http-range-header` crate's (strict, bounded).

use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use http_range_header::RangeUnsatisfiableError;

/// `data` as the answer to a GET with `request` headers: whole or the one range asked for.
/// `etag` (a quoted entity tag) is sent and checked against `If-Range`.
pub(super) fn respond(request: &HeaderMap, data: Vec<u8>, etag: Option<&str>) -> Response {
    let len = data.len() as u64;
    let range = request
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| if_range_matches(request, etag));
    let mut response = match range.map(http_range_header::parse_range_header) {
        Some(Ok(ranges)) if ranges.len() == 1 => match ranges.validate(len) {
            Ok(valid) => match valid.first() {
                Some(range) => {
                    let (start, end) = (*range.start(), *range.end());
                    // validate() keeps end < len, so the slice is in bounds.
                    let part = data
                        .get(start as usize..=end as usize)
                        .map(<[u8]>::to_vec)
                        .unwrap_or_default();
                    let mut response = (StatusCode::PARTIAL_CONTENT, part).into_response();
                    insert(
                        &mut response,
                        header::CONTENT_RANGE,
                        &format!("bytes {start}-{end}/{len}"),
                    );
                    response
                }
                // Only for an empty body: nothing to cut.
                None => data.into_response(),
            },
            Err(RangeUnsatisfiableError::Unsatisfiable | RangeUnsatisfiableError::Rejected(_)) => {
                let mut response = (
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    axum::Json(serde_json::json!({
                        "__type": "InvalidArgumentException",
                        "message": format!("the range is outside the {len} bytes there are"),
                    })),
                )
                    .into_response();
                insert(
                    &mut response,
                    header::CONTENT_RANGE,
                    &format!("bytes */{len}"),
                );
                response
            }
            // Malformed: ignored, as RFC 9110 asks.
            Err(_) => data.into_response(),
        },
        _ => data.into_response(),
    };
    response
        .headers_mut()
        .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(etag) = etag {
        insert(&mut response, header::ETAG, etag);
    }
    response
}

/// No `If-Range`, or one naming this very entity (strong comparison; dates are not used).
fn if_range_matches(request: &HeaderMap, etag: Option<&str>) -> bool {
    match request.get(header::IF_RANGE) {
        None => true,
        Some(value) => {
            etag.is_some_and(|e| value.as_bytes() == e.as_bytes() && !e.starts_with("W/"))
        }
    }
}

fn insert(response: &mut Response, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn ask(range: Option<&str>, if_range: Option<&str>) -> (StatusCode, HeaderMap, Vec<u8>) {
        let mut headers = HeaderMap::new();
        if let Some(r) = range {
            headers.insert(header::RANGE, HeaderValue::from_str(r).unwrap());
        }
        if let Some(r) = if_range {
            headers.insert(header::IF_RANGE, HeaderValue::from_str(r).unwrap());
        }
        let response = respond(&headers, (0u8..100).collect(), Some("\"v1\""));
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        (status, headers, body)
    }

    #[tokio::test]
    async fn one_range_is_a_206_with_its_bytes() {
        let (status, headers, body) = ask(Some("bytes=10-19"), None).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(headers[header::CONTENT_RANGE], "bytes 10-19/100");
        assert_eq!(headers[header::ACCEPT_RANGES], "bytes");
        assert_eq!(body, (10u8..20).collect::<Vec<_>>());
        // Open-ended, suffix, and an end past the length (cut to the length).
        assert_eq!(ask(Some("bytes=95-"), None).await.2, [95, 96, 97, 98, 99]);
        assert_eq!(ask(Some("bytes=-3"), None).await.2, [97, 98, 99]);
        let (status, headers, body) = ask(Some("bytes=98-1000"), None).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(headers[header::CONTENT_RANGE], "bytes 98-99/100");
        assert_eq!(body, [98, 99]);
    }

    #[tokio::test]
    async fn a_range_past_the_end_is_a_416() {
        let (status, headers, _) = ask(Some("bytes=100-"), None).await;
        assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(headers[header::CONTENT_RANGE], "bytes */100");
    }

    #[tokio::test]
    async fn otherwise_the_whole_body() {
        for (range, if_range) in [
            (None, None),
            (Some("bytes=abc"), None),           // malformed: ignored
            (Some("items=0-5"), None),           // another unit
            (Some("bytes=0-1, 5-6"), None),      // several ranges
            (Some("bytes=0-1"), Some("\"v0\"")), // the entity changed
        ] {
            let (status, headers, body) = ask(range, if_range).await;
            assert_eq!(status, StatusCode::OK, "{range:?} {if_range:?}");
            assert_eq!(body.len(), 100);
            assert_eq!(headers[header::ACCEPT_RANGES], "bytes");
            assert_eq!(headers[header::ETAG], "\"v1\"");
        }
        assert_eq!(
            ask(Some("bytes=0-1"), Some("\"v1\"")).await.0,
            StatusCode::PARTIAL_CONTENT
        );
    }
}
