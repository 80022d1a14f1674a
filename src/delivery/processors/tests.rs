use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::Bytes;

use super::*;

const ARN: &str = "arn:aws:firehose:eu-west-1:000000000000:deliverystream/ds";

fn record(i: usize, data: &str) -> DeliveryRecord {
    DeliveryRecord {
        data: Bytes::from(data.to_string()),
        partition_key: format!("pk-{i}"),
        sequence_number: format!("{i:05}"),
        arrival_ms: 1_700_000_000_000 + i as u64,
        partition_values: Arc::default(),
    }
}

fn records(data: &[&str]) -> Vec<DeliveryRecord> {
    data.iter().enumerate().map(|(i, d)| record(i, d)).collect()
}

fn processors(configs: Vec<ProcessorConfig>) -> Processors {
    Processors::new(&configs, reqwest::Client::new(), ARN).unwrap()
}

fn data(records: &[DeliveryRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8_lossy(&r.data).into_owned())
        .collect()
}

async fn timed<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("test took too long")
}

#[tokio::test]
async fn filter_keeps_drops_and_fails() {
    let p = processors(vec![ProcessorConfig::Filter {
        expression: ".temp > 20".into(),
    }]);
    let out = p
        .apply(records(&[
            r#"{"temp":25}"#,
            r#"{"temp":10}"#,
            "not json",
            r#"{"temp":30}"#,
        ]))
        .await;
    assert_eq!(data(&out.records), [r#"{"temp":25}"#, r#"{"temp":30}"#]);
    assert_eq!(out.records[1].sequence_number, "00003");
    assert_eq!(out.dropped, 1);
    assert_eq!(out.failed.len(), 1);
    assert_eq!(out.failed[0].error_code, "Processor.InvalidJson");
    assert_eq!(out.failed[0].record.data, "not json");

    // null and no output drop; anything but a boolean fails; runtime errors fail.
    let p = processors(vec![ProcessorConfig::Filter {
        expression: ".keep".into(),
    }]);
    let out = p
        .apply(records(&[
            r#"{"keep":null}"#,
            r#"{}"#,
            r#"{"keep":"yes"}"#,
            r#"{"keep":true}"#,
            "[1]",
        ]))
        .await;
    assert_eq!(data(&out.records), [r#"{"keep":true}"#]);
    assert_eq!(out.dropped, 2);
    let codes: Vec<_> = out.failed.iter().map(|f| f.error_code.as_str()).collect();
    assert_eq!(codes, ["Processor.FilterNotBoolean", "Processor.JqError"]);
    assert!(out.failed[1].error_message.contains("filter"));

    let p = processors(vec![ProcessorConfig::Filter {
        expression: "empty".into(),
    }]);
    assert_eq!(p.apply(records(&["1"])).await.dropped, 1);
}

#[tokio::test]
async fn partition_keys_are_kept_as_text() {
    let mut keys = BTreeMap::new();
    keys.insert("device".to_string(), ".device".to_string());
    keys.insert("hour".to_string(), ".ts / 3600 | floor".to_string());
    keys.insert("ok".to_string(), ".ok".to_string());
    let p = processors(vec![ProcessorConfig::PartitionKeys { keys }]);
    let out = p
        .apply(records(&[
            r#"{"device":"s-1","ts":7300,"ok":true}"#,
            r#"{"device":{"id":1},"ts":1,"ok":true}"#,
            r#"{"ts":1,"ok":true}"#,
            r#"{"device":"s-2","ts":"x","ok":false}"#,
            r#"{"device":"s-3","ts":3600,"ok":false}"#,
        ]))
        .await;
    assert_eq!(out.records.len(), 2);
    let values = |i: usize| out.records[i].partition_values.as_ref().clone();
    assert_eq!(
        values(0),
        BTreeMap::from([
            ("device".to_string(), "s-1".to_string()),
            ("hour".to_string(), "2".to_string()),
            ("ok".to_string(), "true".to_string()),
        ])
    );
    assert_eq!(values(1)["device"], "s-3");
    assert_eq!(values(1)["hour"], "1");
    let codes: Vec<_> = out.failed.iter().map(|f| f.error_code.as_str()).collect();
    assert_eq!(
        codes,
        [
            "Processor.PartitionKeyNotScalar",
            "Processor.PartitionKeyNotScalar",
            "Processor.JqError"
        ]
    );
    assert!(out.failed[0].error_message.contains("`device`"));
}

#[tokio::test]
async fn delimiter_metadata_and_failures_keep_the_original_data() {
    let p = processors(vec![
        ProcessorConfig::Metadata,
        ProcessorConfig::AppendDelimiter {
            delimiter: "\n".into(),
        },
        // After metadata, the record's JSON is under .data.
        ProcessorConfig::Filter {
            expression: r#".data | if type == "object" then .t != 0 else true end"#.into(),
        },
    ]);
    let mut input = records(&[r#" {"t":1} "#, "\u{1}raw", r#"{"t":0}"#, "[1,"]);
    input[1].partition_key = "k\"q".into();
    let out = p.apply(input).await;
    assert_eq!(out.dropped, 1);
    assert_eq!(
        data(&out.records),
        [
            "{\"arrivalTimestamp\":1700000000000,\"partitionKey\":\"pk-0\",\
             \"sequenceNumber\":\"00000\",\"data\":{\"t\":1}}\n",
            // Not JSON: base64.
            "{\"arrivalTimestamp\":1700000000001,\"partitionKey\":\"k\\\"q\",\
             \"sequenceNumber\":\"00001\",\"data\":\"AXJhdw==\"}\n",
            "{\"arrivalTimestamp\":1700000000003,\"partitionKey\":\"pk-3\",\
             \"sequenceNumber\":\"00003\",\"data\":\"WzEs\"}\n",
        ]
    );
    for r in &out.records {
        serde_json::from_slice::<serde_json::Value>(&r.data).unwrap();
    }

    // A failure after a step that changed the data reports the data as it came in.
    let p = processors(vec![
        ProcessorConfig::AppendDelimiter {
            delimiter: "|".into(),
        },
        ProcessorConfig::Filter {
            expression: ".".into(),
        },
    ]);
    let out = p.apply(records(&["true", "x"])).await;
    // "true|" and "x|" are not JSON.
    assert!(out.records.is_empty());
    assert_eq!(out.failed.len(), 2);
    assert_eq!(out.failed[0].record.data, "true");
    assert_eq!(out.failed[1].record.data, "x");
}

#[test]
fn check_jq_explains() {
    assert!(check_jq(".a | select(.b > 1)").is_ok());
    let e = check_jq(".a |").err().unwrap();
    assert!(e.contains("syntax error"), "{e}");
    let e = check_jq("frobnicate").err().unwrap();
    assert!(e.contains("undefined function `frobnicate/0`"), "{e}");
    let err = Processors::new(
        &[ProcessorConfig::PartitionKeys {
            keys: BTreeMap::from([("dev".to_string(), ".a | nope".to_string())]),
        }],
        reqwest::Client::new(),
        ARN,
    )
    .err()
    .unwrap();
    assert!(
        err.0
            .contains("processors[0] (partition_keys): key `dev`: undefined function"),
        "{err}"
    );
}

/// A transformation service: `up:X` → Ok with X upper-cased, `drop` → Dropped, `fail` →
/// ProcessingFailed, `missing` → left out, `dup` → answered twice, `bad64` → Ok with data
/// that is not base64; plus one invented record id per answer. The first `fail_calls`
/// calls answer 500.
#[derive(Clone, Default)]
struct Service {
    calls: Arc<Mutex<Vec<serde_json::Value>>>,
    fail_calls: Arc<Mutex<u32>>,
}

async fn transform(State(s): State<Service>, body: axum::body::Bytes) -> Response {
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap();
    s.calls.lock().unwrap().push(request.clone());
    {
        let mut fail = s.fail_calls.lock().unwrap();
        if *fail > 0 {
            *fail -= 1;
            return (StatusCode::INTERNAL_SERVER_ERROR, "try again").into_response();
        }
    }
    let b64 = &base64::engine::general_purpose::STANDARD;
    let mut answer = Vec::new();
    for r in request["records"].as_array().unwrap() {
        let id = r["recordId"].as_str().unwrap();
        let data = String::from_utf8(b64.decode(r["data"].as_str().unwrap()).unwrap()).unwrap();
        let ok =
            |d: &str| serde_json::json!({"recordId": id, "result": "Ok", "data": b64.encode(d)});
        match data.as_str() {
            "drop" => answer.push(serde_json::json!({"recordId": id, "result": "Dropped"})),
            "fail" => {
                answer.push(serde_json::json!({"recordId": id, "result": "ProcessingFailed"}))
            }
            "missing" => {}
            "dup" => {
                answer.push(ok("one"));
                answer.push(ok("two"));
            }
            "bad64" => {
                answer.push(serde_json::json!({"recordId": id, "result": "Ok", "data": "%%%"}))
            }
            d => {
                let mut out = ok(&d.trim_start_matches("up:").to_uppercase());
                out["metadata"] = serde_json::json!({"partitionKeys": {"len": d.len()}});
                answer.push(out);
            }
        }
    }
    answer.push(serde_json::json!({"recordId": "invented", "result": "Ok", "data": ""}));
    axum::Json(serde_json::json!({"records": answer})).into_response()
}

async fn start_service() -> (Service, String) {
    let service = Service::default();
    let app = axum::Router::new()
        .route("/", axum::routing::post(transform))
        .with_state(service.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (service, url)
}

fn transform_config(url: &str, max_records: u32, retries: u32) -> ProcessorConfig {
    ProcessorConfig::HttpTransform {
        url: url.to_string(),
        max_records,
        timeout_s: 5,
        retries,
    }
}

#[tokio::test]
async fn http_transform_follows_the_lambda_contract() {
    timed(async {
        let (service, url) = start_service().await;
        let p = processors(vec![transform_config(&url, 3, 0)]);
        let out = p
            .apply(records(&[
                "up:a", "drop", "fail", "missing", "dup", "bad64", "up:b",
            ]))
            .await;
        assert_eq!(data(&out.records), ["A", "B"]);
        assert_eq!(out.records[0].partition_values["len"], "4");
        assert_eq!(out.records[1].sequence_number, "00006");
        assert_eq!(out.dropped, 1);
        let failed: Vec<_> = out
            .failed
            .iter()
            .map(|f| {
                (
                    f.error_code.as_str(),
                    String::from_utf8_lossy(&f.record.data).into_owned(),
                )
            })
            .collect();
        assert_eq!(
            failed,
            [
                ("Transform.ProcessingFailed", "fail".to_string()),
                ("Transform.MissingRecordId", "missing".to_string()),
                ("Transform.DuplicatedRecordId", "dup".to_string()),
                ("Transform.InvalidData", "bad64".to_string()),
            ]
        );
        let calls = service.calls.lock().unwrap();
        assert_eq!(calls.len(), 3, "max_records 3 for 7 records");
        let first = &calls[0];
        assert_eq!(first["deliveryStreamArn"], ARN);
        assert_eq!(first["region"], "eu-west-1");
        assert!(uuid::Uuid::parse_str(first["invocationId"].as_str().unwrap()).is_ok());
        assert_eq!(
            first["records"][0]["approximateArrivalTimestamp"],
            1_700_000_000_000u64
        );
        assert_ne!(calls[0]["invocationId"], calls[1]["invocationId"]);
    })
    .await
}

#[tokio::test]
async fn http_transform_retries_then_fails_records() {
    timed(async {
        let (service, url) = start_service().await;
        // 500, then success within the retries.
        *service.fail_calls.lock().unwrap() = 2;
        let mut p = processors(vec![transform_config(&url, 100, 2)]);
        p.set_transform_backoff(Duration::from_millis(10));
        let out = p.apply(records(&["up:x"])).await;
        assert_eq!(data(&out.records), ["X"]);
        assert_eq!(service.calls.lock().unwrap().len(), 3);

        // 500 more often than the retries: the records fail, with their data.
        *service.fail_calls.lock().unwrap() = 10;
        let out = p.apply(records(&["up:x", "up:y"])).await;
        assert!(out.records.is_empty());
        assert_eq!(out.failed.len(), 2);
        assert_eq!(out.failed[0].error_code, "Transform.CallFailed");
        assert_eq!(out.failed[0].attempts, 3);
        assert!(
            out.failed[0].error_message.contains("500"),
            "{}",
            out.failed[0].error_message
        );
        assert_eq!(out.failed[1].record.data, "up:y");

        // Nobody listening.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        let mut p = processors(vec![
            ProcessorConfig::AppendDelimiter {
                delimiter: "\n".into(),
            },
            transform_config(&url, 100, 1),
        ]);
        p.set_transform_backoff(Duration::from_millis(10));
        let out = p.apply(records(&["a"])).await;
        assert_eq!(out.failed.len(), 1);
        assert_eq!(out.failed[0].attempts, 2);
        assert_eq!(out.failed[0].record.data, "a");
    })
    .await
}

#[tokio::test]
async fn a_large_batch_keeps_its_order() {
    let p = processors(vec![
        ProcessorConfig::Filter {
            expression: ".n % 3 != 0".into(),
        },
        ProcessorConfig::AppendDelimiter {
            delimiter: "\n".into(),
        },
    ]);
    let input: Vec<DeliveryRecord> = (0..50_000)
        .map(|n| record(n, &format!("{{\"n\":{n}}}")))
        .collect();
    let started = std::time::Instant::now();
    let out = p.apply(input).await;
    let elapsed = started.elapsed();
    assert_eq!(out.dropped, 16_667);
    assert_eq!(out.records.len(), 33_333);
    let ns: Vec<u64> = out
        .records
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_slice(&r.data).unwrap();
            v["n"].as_u64().unwrap()
        })
        .collect();
    assert!(ns.windows(2).all(|w| w[0] < w[1]));
    eprintln!("filter + delimiter: 50,000 records in {elapsed:?}");
}
