use std::collections::BTreeMap;
use std::io::Read;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap as AxumHeaders, StatusCode};
use axum::response::{IntoResponse, Response};

use super::*;
use crate::delivery::batch::DeliveryRecord;
use crate::delivery::destinations::Destination;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Ok,
    Status(u16),
    WrongId,
    NotJson,
    Hang,
    Redirect,
}

struct Seen {
    headers: AxumHeaders,
    /// Decompressed when the request said gzip.
    body: Vec<u8>,
}

#[derive(Clone)]
struct Receiver {
    mode: Arc<Mutex<Mode>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    redirected: Arc<Mutex<u32>>,
}

async fn receive(
    State(r): State<Receiver>,
    headers: AxumHeaders,
    body: axum::body::Bytes,
) -> Response {
    let gzip = headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes() == b"gzip");
    let body = if gzip {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        body.to_vec()
    };
    let id = headers
        .get("x-amz-firehose-request-id")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    r.seen.lock().unwrap().push(Seen { headers, body });
    let mode = *r.mode.lock().unwrap();
    let answer = |status: StatusCode, id: &str, error: Option<&str>| {
        let mut json = serde_json::json!({"requestId": id, "timestamp": 1});
        if let Some(e) = error {
            json["errorMessage"] = e.into();
        }
        (
            status,
            [("content-type", "application/json")],
            json.to_string(),
        )
            .into_response()
    };
    match mode {
        Mode::Ok => answer(StatusCode::OK, &id, None),
        Mode::Status(s) => answer(
            StatusCode::from_u16(s).unwrap(),
            &id,
            Some("receiver is sad"),
        ),
        Mode::WrongId => answer(StatusCode::OK, "someone-else", None),
        Mode::NotJson => (StatusCode::OK, "fine, thanks").into_response(),
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            answer(StatusCode::OK, &id, None)
        }
        Mode::Redirect => (StatusCode::FOUND, [("location", "/elsewhere")]).into_response(),
    }
}

async fn elsewhere(State(r): State<Receiver>) -> Response {
    *r.redirected.lock().unwrap() += 1;
    StatusCode::OK.into_response()
}

async fn start_receiver() -> (Receiver, String) {
    let receiver = Receiver {
        mode: Arc::new(Mutex::new(Mode::Ok)),
        seen: Arc::new(Mutex::new(Vec::new())),
        redirected: Arc::new(Mutex::new(0)),
    };
    let app = axum::Router::new()
        .route("/", axum::routing::post(receive))
        .route("/elsewhere", axum::routing::any(elsewhere))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (receiver, url)
}

fn context() -> DestinationContext {
    DestinationContext {
        delivery_stream: "ds".into(),
        source_arn: "arn:aws:firehose:eu-west-1:000000000000:deliverystream/ds".into(),
        data_dir: std::env::temp_dir(),
        http: reqwest::Client::new(),
    }
}

fn config(url: &str) -> HttpEndpointConfig {
    HttpEndpointConfig {
        url: url.to_string(),
        access_key: None,
        common_attributes: BTreeMap::new(),
        retry_duration_s: 60,
    }
}

fn record(data: &[u8]) -> DeliveryRecord {
    DeliveryRecord {
        data: Bytes::copy_from_slice(data),
        partition_key: "pk".into(),
        sequence_number: "1".into(),
        arrival_ms: 1,
        partition_values: Arc::default(),
    }
}

fn batch(compression: Compression, records: Vec<DeliveryRecord>) -> Batch {
    Batch {
        delivery_stream: "ds".into(),
        id: "6f1c2a4e-0000-4000-8000-000000000001".into(),
        created_ms: 1_700_000_000_000,
        formed_ms: 1_700_000_000_123,
        compression,
        records,
    }
}

async fn timed<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("test took too long")
}

#[tokio::test]
async fn delivers_with_every_header_and_the_body_of_the_contract() {
    timed(async {
        let (receiver, url) = start_receiver().await;
        let key_file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(key_file.path(), "s3cr3t-key\n").unwrap();
        let mut cfg = config(&url);
        cfg.access_key = Some(Secret::File(key_file.path().to_path_buf()));
        cfg.common_attributes
            .insert("site".into(), "greenhouse-2".into());
        let dest = HttpEndpointDestination::new(&cfg, &context()).unwrap();
        assert_eq!(dest.failure_type(), ErrorOutputType::HttpEndpointFailed);
        assert_eq!(dest.retry_duration(), Some(Duration::from_secs(60)));

        for compression in [Compression::None, Compression::Gzip] {
            let b = batch(
                compression,
                vec![record(b"{\"t\":1}"), record(b""), record(&[0xff, 0, 1, 2])],
            );
            dest.deliver(&b).await.unwrap();
            // The same batch again: the same request id.
            dest.deliver(&b).await.unwrap();
        }
        let seen = receiver.seen.lock().unwrap();
        assert_eq!(seen.len(), 4);
        for (i, s) in seen.iter().enumerate() {
            let h = &s.headers;
            assert_eq!(h["content-type"], "application/json");
            assert_eq!(h["x-amz-firehose-protocol-version"], "1.0");
            assert_eq!(
                h["x-amz-firehose-request-id"],
                "6f1c2a4e-0000-4000-8000-000000000001"
            );
            assert_eq!(
                h["x-amz-firehose-source-arn"],
                "arn:aws:firehose:eu-west-1:000000000000:deliverystream/ds"
            );
            assert_eq!(h["x-amz-firehose-access-key"], "s3cr3t-key");
            let attrs: serde_json::Value =
                serde_json::from_slice(h["x-amz-firehose-common-attributes"].as_bytes())
                    .unwrap();
            assert_eq!(
                attrs,
                serde_json::json!({"commonAttributes": {"site": "greenhouse-2"}})
            );
            assert_eq!(h.get("content-encoding").is_some(), i >= 2, "request {i}");
            let body: serde_json::Value = serde_json::from_slice(&s.body).unwrap();
            assert_eq!(
                body,
                serde_json::json!({
                    "requestId": "6f1c2a4e-0000-4000-8000-000000000001",
                    "timestamp": 1_700_000_000_123u64,
                    "records": [{"data": "eyJ0IjoxfQ=="}, {"data": ""}, {"data": "/wABAg=="}],
                })
            );
            // The exact length computed for the limits is the length written.
            let data: Vec<Bytes> = vec![
                Bytes::from_static(b"{\"t\":1}"),
                Bytes::new(),
                Bytes::from_static(&[0xff, 0, 1, 2]),
            ];
            assert_eq!(
                body_len(
                    "6f1c2a4e-0000-4000-8000-000000000001",
                    1_700_000_000_123,
                    &data
                ),
                s.body.len() as u64
            );
        }
    })
    .await
}

#[tokio::test]
async fn classifies_what_the_receiver_answers() {
    timed(async {
        let (receiver, url) = start_receiver().await;
        let dest = HttpEndpointDestination::with_answer_timeout(
            &config(&url),
            &context(),
            Duration::from_millis(500),
        )
        .unwrap();
        let b = batch(Compression::Gzip, vec![record(b"x")]);
        let set = |m| *receiver.mode.lock().unwrap() = m;

        set(Mode::Status(500));
        match dest.deliver(&b).await {
            Err(DeliveryError::Retryable(m)) => {
                assert!(m.contains("500") && m.contains("receiver is sad"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        set(Mode::Status(413));
        match dest.deliver(&b).await {
            Err(DeliveryError::Permanent(m)) => assert!(m.contains("413"), "{m}"),
            other => panic!("{other:?}"),
        }
        set(Mode::WrongId);
        match dest.deliver(&b).await {
            Err(DeliveryError::Retryable(m)) => assert!(m.contains("someone-else"), "{m}"),
            other => panic!("{other:?}"),
        }
        set(Mode::NotJson);
        match dest.deliver(&b).await {
            Err(DeliveryError::Retryable(m)) => assert!(m.contains("fine, thanks"), "{m}"),
            other => panic!("{other:?}"),
        }
        set(Mode::Redirect);
        match dest.deliver(&b).await {
            Err(DeliveryError::Retryable(m)) => {
                assert!(m.contains("302") && m.contains("/elsewhere"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(*receiver.redirected.lock().unwrap(), 0, "redirect followed");
        set(Mode::Hang);
        let started = std::time::Instant::now();
        match dest.deliver(&b).await {
            Err(DeliveryError::Retryable(m)) => assert!(m.contains("no answer"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        set(Mode::Ok);
        dest.deliver(&b).await.unwrap();
    })
    .await
}

#[tokio::test]
async fn no_listener_is_unreachable() {
    timed(async {
        // A port that was free a moment ago.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        let dest = HttpEndpointDestination::new(&config(&url), &context()).unwrap();
        match dest
            .deliver(&batch(Compression::None, vec![record(b"x")]))
            .await
        {
            Err(DeliveryError::Unreachable(_)) => {}
            other => panic!("{other:?}"),
        }
    })
    .await
}

#[tokio::test]
async fn records_too_large_are_left_out_and_reported() {
    timed(async {
        let (receiver, url) = start_receiver().await;
        let dest = HttpEndpointDestination::new(&config(&url), &context()).unwrap();
        let big = vec![b'a'; MAX_RECORD_BYTES + 1];
        let b = batch(
            Compression::None,
            vec![record(b"one"), record(&big), record(b"two")],
        );
        match dest.deliver(&b).await {
            Err(DeliveryError::Partial { failed, .. }) => assert_eq!(failed, vec![1]),
            other => panic!("{other:?}"),
        }
        let body: serde_json::Value =
            serde_json::from_slice(&receiver.seen.lock().unwrap()[0].body).unwrap();
        assert_eq!(body["records"].as_array().unwrap().len(), 2);
        // A retry of only the large record is refused for good without a request.
        match dest
            .deliver(&batch(Compression::None, vec![record(&big)]))
            .await
        {
            Err(DeliveryError::Permanent(_)) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(receiver.seen.lock().unwrap().len(), 1);
    })
    .await
}

#[test]
fn configuration_is_checked() {
    let ctx = context();
    let mut cfg = config("ftp://example.com/");
    assert!(HttpEndpointDestination::new(&cfg, &ctx).is_err());
    cfg.url = "http://127.0.0.1:9/".into();
    for i in 0..=MAX_COMMON_ATTRIBUTES {
        cfg.common_attributes.insert(format!("k{i}"), "v".into());
    }
    assert!(HttpEndpointDestination::new(&cfg, &ctx).is_err());
    cfg.common_attributes.clear();
    let key_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(key_file.path(), "k".repeat(MAX_ACCESS_KEY_BYTES + 1)).unwrap();
    cfg.access_key = Some(Secret::File(key_file.path().to_path_buf()));
    let err = HttpEndpointDestination::new(&cfg, &ctx).err().unwrap();
    assert!(!err.message.contains("kkkk"), "the key leaks: {err}");
    std::fs::write(key_file.path(), "k".repeat(MAX_ACCESS_KEY_BYTES)).unwrap();
    assert!(HttpEndpointDestination::new(&cfg, &ctx).is_ok());
}

#[test]
fn limits_keep_the_body_within_64_mib() {
    // The worst case: all records as small as the limits allow for the most bytes.
    let per = max_data_bytes() / MAX_RECORDS as u64;
    let data: Vec<Bytes> = (0..MAX_RECORDS)
        .map(|_| Bytes::from(vec![0u8; per as usize]))
        .collect();
    let len = body_len("6f1c2a4e-0000-4000-8000-000000000001", u64::MAX, &data);
    assert!(len <= MAX_BODY_BYTES, "{len}");
    assert!(len > MAX_BODY_BYTES - MIB, "limits waste room: {len}");
}

/// Body building + gzip throughput for 100-byte records (`--ignored --nocapture`).
#[test]
#[ignore]
fn measure_body_throughput() {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    // JSON telemetry of 100 bytes with varying values, as sensors send.
    let data: Vec<Bytes> = (0..10_000)
        .map(|i| {
            let mut s = format!(
                "{{\"device\":\"sensor-{:03}\",\"temp\":{:.3},\"hum\":{:.2},\"ts\":{},\"seq\":{i}",
                rng.gen_range(0..200),
                rng.gen_range(-10.0..40.0),
                rng.gen_range(0.0..100.0),
                1_700_000_000_000u64 + rng.gen_range(0..1_000_000u64),
            );
            while s.len() < 98 {
                s.push(char::from(b'a' + rng.gen_range(0..26u8)));
            }
            s.push_str("\"}");
            Bytes::from(s.into_bytes()).slice(..100)
        })
        .collect();
    let len = body_len("id", 1, &data) as usize;
    for level in [None, Some(1), Some(3), Some(6)] {
        let started = std::time::Instant::now();
        let mut out = 0;
        let rounds = 30;
        for _ in 0..rounds {
            out = encode_body("id", 1, &data, level.map(flate2::Compression::new), len)
                .unwrap()
                .len();
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "gzip level {level:?}: {:.0} records/s, body {len} -> {out} bytes",
            (rounds * data.len()) as f64 / secs
        );
    }
}
