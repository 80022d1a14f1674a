//! The analytics routes' answers that do not need running applications: errors in their
//! shape and status, bodies refused, signatures required when credentials are configured.

use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;
use crate::api::sigv4::SigV4Verifier;

fn app(credentials: bool) -> Router {
    let verifier = credentials.then(|| SigV4Verifier::new(vec![("AKIA1".into(), "s".into())]));
    let auth = Arc::new(Auth {
        verifier,
        region: "us-east-1".into(),
        sessions: Default::default(),
    });
    routes(Arc::new(AnalyticsState::new(auth, None)))
}

async fn call(app: Router, method: &str, uri: &str, body: &str) -> (StatusCode, serde_json::Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, json)
}

#[tokio::test]
async fn list_is_empty_without_analytics() {
    let (status, json) = call(app(false), "GET", "/analytics", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json, serde_json::json!({ "applications": [] }));
}

#[tokio::test]
async fn a_malformed_body_is_refused_with_the_reason() {
    for (uri, body) in [
        ("/analytics", "{not json"),
        ("/analytics", r#"{"name": "a"}"#),
        (
            "/analytics",
            r#"{"name": "a", "sql": "SELECT 1", "extra": 1}"#,
        ),
        ("/analytics/query", r#"{"max_rows": 3}"#),
    ] {
        let (status, json) = call(app(false), "POST", uri, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri} {body}: {json}");
        assert_eq!(json["error"], "Invalid", "{json}");
        assert!(
            json["message"].as_str().unwrap().contains("not valid"),
            "{json}"
        );
    }
}

#[tokio::test]
async fn values_are_checked_before_the_service() {
    let cases = [
        (
            "/analytics",
            r#"{"name": "a b", "sql": "SELECT 1"}"#,
            "name",
        ),
        ("/analytics", r#"{"name": "a", "sql": " "}"#, "empty"),
        (
            "/analytics",
            r#"{"name": "a", "sql": "SELECT 1", "max_state_keys": 0}"#,
            "at least 1",
        ),
        (
            "/analytics/query",
            r#"{"sql": "SELECT 1", "max_rows": 0}"#,
            "1..=1000000",
        ),
        (
            "/analytics/query",
            r#"{"sql": "SELECT 1", "max_rows": 1000001}"#,
            "out of range",
        ),
    ];
    for (uri, body, words) in cases {
        let (status, json) = call(app(false), "POST", uri, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {json}");
        let message = json["message"].as_str().unwrap();
        assert!(message.contains(words), "`{message}` lacks `{words}`");
    }
}

#[tokio::test]
async fn without_analytics_the_service_is_unavailable() {
    let (status, json) = call(app(false), "GET", "/analytics/minute-avg", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json["error"], "Unavailable");
    let (status, _) = call(app(false), "POST", "/analytics/a/stop", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_body_over_1_mib_is_refused() {
    let sql = "x".repeat(MAX_BODY_BYTES);
    let body = format!(r#"{{"name": "a", "sql": "{sql}"}}"#);
    let (status, json) = call(app(false), "POST", "/analytics", &body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{json}");
    assert_eq!(json["error"], "TooLarge");
}

#[tokio::test]
async fn unsigned_requests_are_refused_when_credentials_are_configured() {
    for (method, uri, body) in [
        ("GET", "/analytics", ""),
        ("GET", "/analytics/a", ""),
        ("POST", "/analytics", r#"{"name": "a", "sql": "SELECT 1"}"#),
        ("POST", "/analytics/a/stop", ""),
        ("POST", "/analytics/a/start", ""),
        ("DELETE", "/analytics/a", ""),
        ("POST", "/analytics/query", r#"{"sql": "SELECT 1"}"#),
    ] {
        let (status, json) = call(app(true), method, uri, body).await;
        assert!(status.is_client_error(), "{method} {uri}: {status}");
        assert!(
            json["__type"].as_str().is_some_and(|t| !t.is_empty()),
            "{method} {uri}: {json}"
        );
    }
}

#[test]
fn service_errors_have_their_status() {
    let cases = [
        (AnalyticsError::NotFound("a".into()), 404, "NotFound"),
        (AnalyticsError::Exists("a".into()), 409, "Exists"),
        (AnalyticsError::FromConfig("a".into()), 403, "FromConfig"),
        (AnalyticsError::Sql("bad".into()), 400, "Sql"),
        (AnalyticsError::Invalid("bad".into()), 400, "Invalid"),
    ];
    for (error, status, kind) in cases {
        let message = error.to_string();
        let answer = AnalyticsApiError::from(error);
        assert_eq!(
            (answer.status.as_u16(), answer.kind),
            (status, kind),
            "{message}"
        );
        assert_eq!(answer.message, message);
    }
}
