//! The console's routes on the whole API router over a real store, with credentials: the
//! redirects, the login (refused, then accepted), the cookie on the API's own endpoints
//! (reads alone; writes with the console's header), the logout, the embedded assets.

use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::assets;
use super::session::CONSOLE_HEADER;
use crate::api::events::ApiCounters;
use crate::api::sigv4::SigV4Verifier;
use crate::api::{ApiParts, ApiState};
use crate::storage::{Store, StoreOptions};

fn app(dir: &std::path::Path) -> Router {
    let state = ApiState::new(ApiParts {
        store: Store::open(StoreOptions::new(dir.join("data"))).unwrap(),
        verifier: Some(SigV4Verifier::new(vec![("AKIA1".into(), "s3cret".into())])),
        region: "us-east-1".into(),
        account_id: "000000000000".into(),
        iterator_ttl_ms: 300_000,
        mqtt: None,
        deliveries: None,
        #[cfg(feature = "video")]
        video: None,
        analytics: None,
        counters: Arc::new(ApiCounters::default()),
        reporters: Vec::new(),
        open_metrics: false,
        min_free_disk: 1 << 20,
        devices_dir: dir.join("devices"),
        max_consumers_per_stream: 20,
        on_demand: None,
        tls: false,
    });
    crate::api::app(&state, &[])
}

async fn call(app: &Router, request: Request<Body>) -> (StatusCode, http::HeaderMap, Vec<u8>) {
    let response = app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes().to_vec();
    (parts.status, parts.headers, bytes)
}

fn get(uri: &str, cookie: Option<&str>) -> Request<Body> {
    let mut b = Request::get(uri).header(header::ACCEPT, "text/html");
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::empty()).unwrap()
}

fn login(key: &str, secret: &str) -> Request<Body> {
    Request::post("/console/api/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            serde_json::json!({"access_key_id": key, "secret": secret}).to_string(),
        ))
        .unwrap()
}

fn list_streams(cookie: &str, console: bool) -> Request<Body> {
    let mut b = Request::post("/")
        .header(header::COOKIE, cookie)
        .header(header::CONTENT_TYPE, "application/x-amz-json-1.1")
        .header("x-amz-target", "Kinesis_20131202.ListStreams");
    if console {
        b = b.header(CONSOLE_HEADER, "1");
    }
    b.body(Body::from("{}")).unwrap()
}

#[tokio::test]
async fn login_session_and_logout() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());

    let (status, headers, _) = call(&app, get("/", None)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/console/");
    let plain = Request::get("/").body(Body::empty()).unwrap();
    assert_eq!(call(&app, plain).await.0, StatusCode::METHOD_NOT_ALLOWED);

    let (status, headers, _) = call(&app, get("/console/", None)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/console/login");
    assert_eq!(
        call(&app, get("/status", None)).await.0,
        StatusCode::BAD_REQUEST
    );

    let (status, headers, _) = call(&app, login("AKIA1", "wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!headers.contains_key(header::SET_COOKIE));
    assert_eq!(
        call(&app, login("AKIA2", "s3cret")).await.0,
        StatusCode::UNAUTHORIZED
    );

    let (status, headers, _) = call(&app, login("AKIA1", "s3cret")).await;
    assert_eq!(status, StatusCode::OK);
    let set = headers[header::SET_COOKIE].to_str().unwrap().to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Max-Age=")
    );
    // Plain HTTP (loopback): a `Secure` cookie would never come back from a browser.
    assert!(!set.contains("Secure"));
    let cookie = set.split(';').next().unwrap().to_string();

    let (status, headers, body) = call(&app, get("/console/", Some(&cookie))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.contains_key(header::CONTENT_SECURITY_POLICY));
    assert!(String::from_utf8_lossy(&body).contains("<html"));
    assert_eq!(
        call(&app, get("/status", Some(&cookie))).await.0,
        StatusCode::OK
    );
    let (status, _, body) = call(&app, get("/console/api/session", Some(&cookie))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&body).contains("AKIA1"));

    // A write needs the console's header besides the cookie.
    assert_ne!(
        call(&app, list_streams(&cookie, false)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, list_streams(&cookie, true)).await.0,
        StatusCode::OK
    );

    let logout = Request::post("/console/api/logout")
        .header(header::COOKIE, &cookie)
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&app, logout).await.0, StatusCode::NO_CONTENT);
    assert_eq!(
        call(&app, get("/status", Some(&cookie))).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        call(&app, get("/console/", Some(&cookie))).await.0,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn assets_are_served_gzipped_or_plain() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    let gz = Request::get("/console/assets/app.js")
        .header(header::ACCEPT_ENCODING, "br, gzip")
        .body(Body::empty())
        .unwrap();
    let (status, headers, zipped) = call(&app, gz).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_ENCODING], "gzip");
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let (status, headers, plain) = call(&app, get("/console/assets/app.js", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!headers.contains_key(header::CONTENT_ENCODING));
    assert_eq!(assets::gunzip(&zipped).unwrap(), plain);
    assert_eq!(
        call(&app, get("/console/assets/nothing.js", None)).await.0,
        StatusCode::NOT_FOUND
    );
    assert!(assets::total_gzipped_bytes() <= 500 * 1024);
}

#[tokio::test]
async fn live_streams_are_bounded_and_send_a_snapshot_first() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    let (_, headers, _) = call(&app, login("AKIA1", "s3cret")).await;
    let set = headers[header::SET_COOKIE].to_str().unwrap().to_string();
    let cookie = set.split(';').next().unwrap().to_string();
    let events = || get("/console/api/events", Some(&cookie));
    assert_eq!(
        call(&app, get("/console/api/events", None)).await.0,
        StatusCode::BAD_REQUEST
    );
    let mut open = Vec::new();
    for _ in 0..super::MAX_EVENT_CLIENTS {
        let response = app.clone().oneshot(events()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        open.push(response);
    }
    let refused = app.clone().oneshot(events()).await.unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    // The first event is a snapshot, sent at once.
    let mut body = open.pop().unwrap().into_body();
    let frame = tokio::time::timeout(std::time::Duration::from_secs(10), body.frame())
        .await
        .expect("a first event within 10 s")
        .unwrap()
        .unwrap();
    let text = String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap();
    assert!(text.starts_with("event: status\ndata: {"), "{text}");
    assert!(text.contains("\"min_free_disk\":1048576"), "{text}");
    // A closed stream gives its place back.
    drop(body);
    let again = app.clone().oneshot(events()).await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
}
