//! Delivery benchmark: the HTTP endpoint delivery of the real `kinedge` binary against a
//! Firehose HTTP endpoint receiver that runs inside this benchmark.
//!
//! `cargo bench --bench delivery` (options after `--`: `--seconds N` for the plain load
//! generator, `--records N` for the backlog, `--rate N` and `--latency-seconds N` for the live
//! phase, `--plain-only` for the receiver alone). Three measurements:
//! - the receiver fed by a plain load generator (2 connections, 10,000 records of 100 bytes
//!   per request, gzip at kinedge's level): once with bodies it builds fresh for every request
//!   (base64, JSON, gzip: what any sender of new records does; the figure the drain is
//!   compared with), and once with 4 pre-built bodies sent again and again (the receiver's
//!   ceiling, for reference);
//! - backlog drain: 1,000,000 records of 100 bytes put into a 4-shard stream before the
//!   delivery stream exists, then kinedge restarted with an `http_endpoint` delivery stream
//!   (gzip, buffer 5 MiB / 60 s): records/s until the receiver has all, and the ratio to the
//!   plain load generator (target: at least 200,000 records/s and 80%);
//! - live latency: records put at a steady rate with the send time inside, buffer interval 1 s:
//!   end-to-end p50/p99 (target p99 at most 1.5 s).

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

const RECORD_BYTES: usize = 100;
const PUT_BATCH: usize = 500;
const SHARDS: u32 = 4;
/// Records per HTTP request: the Firehose HTTP endpoint limit, which is what kinedge's batches
/// of 100-byte records hit first.
const REQUEST_RECORDS: usize = 10_000;
const AUTHORIZATION: &str = "AWS4-HMAC-SHA256 Credential=AKIDBENCH/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=00";
const AMZ_DATE: &str = "20260101T000000Z";

struct Options {
    seconds: u64,
    records: u64,
    rate: u64,
    latency_seconds: u64,
    plain_only: bool,
}

fn options() -> Options {
    let mut o = Options {
        seconds: 5,
        records: 1_000_000,
        rate: 2_000,
        latency_seconds: 10,
        plain_only: false,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let value = args.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match (args[i].as_str(), value) {
            ("--seconds", Some(v)) => o.seconds = v,
            ("--records", Some(v)) => o.records = v,
            ("--rate", Some(v)) => o.rate = v.max(1),
            ("--latency-seconds", Some(v)) => o.latency_seconds = v,
            ("--plain-only", _) => {
                o.plain_only = true;
                i += 1;
                continue;
            }
            _ => {
                i += 1; // cargo passes --bench
                continue;
            }
        }
        i += 2;
    }
    o
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

// ---- the receiver ---------------------------------------------------------------------------

#[derive(Deserialize)]
struct FirehoseRequest {
    #[serde(rename = "requestId")]
    request_id: String,
    #[allow(dead_code)]
    timestamp: u64,
    records: Vec<FirehoseRecord>,
}

#[derive(Deserialize)]
struct FirehoseRecord {
    data: String,
}

/// What one receiver path has seen.
#[derive(Default)]
struct Sink {
    records: AtomicU64,
    requests: AtomicU64,
    duplicate_requests: AtomicU64,
    bad_requests: AtomicU64,
    request_ids: Mutex<HashSet<String>>,
    /// With `measure_latency`: end-to-end latency of each record in ms (the record's first
    /// bytes are `t=<send time, µs>|`).
    latencies_ms: Mutex<Vec<f64>>,
    measure_latency: bool,
    /// Count every request (the plain load generator repeats its pre-built bodies).
    count_repeats: bool,
}

/// Checks the protocol headers, decodes gzip, parses the body, counts records and answers
/// with the requestId — what a Firehose receiver does.
async fn receive(
    State(sink): State<Arc<Sink>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let header_id = headers
        .get("x-amz-firehose-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let gzip = headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let protocol_ok = headers
        .get("x-amz-firehose-protocol-version")
        .is_some_and(|v| v == "1.0");
    let measure = sink.measure_latency;
    let parsed =
        tokio::task::spawn_blocking(move || -> Result<(FirehoseRequest, Vec<f64>), String> {
            let json = if gzip {
                let mut out = Vec::with_capacity(body.len() * 8);
                flate2::read::GzDecoder::new(&body[..])
                    .read_to_end(&mut out)
                    .map_err(|e| format!("gzip: {e}"))?;
                out
            } else {
                body.to_vec()
            };
            let request: FirehoseRequest =
                serde_json::from_slice(&json).map_err(|e| format!("json: {e}"))?;
            let mut latencies = Vec::new();
            if measure {
                let now = now_us();
                for r in &request.records {
                    let data = STANDARD
                        .decode(&r.data)
                        .map_err(|e| format!("base64: {e}"))?;
                    let sent = std::str::from_utf8(&data)
                        .ok()
                        .and_then(|s| s.strip_prefix("t="))
                        .and_then(|s| s.split('|').next())
                        .and_then(|s| s.parse::<u64>().ok());
                    if let Some(sent) = sent {
                        latencies.push(now.saturating_sub(sent) as f64 / 1000.0);
                    }
                }
            }
            Ok((request, latencies))
        })
        .await;
    let (request, latencies) = match parsed {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            sink.bad_requests.fetch_add(1, Ordering::Relaxed);
            return (
                StatusCode::BAD_REQUEST,
                json!({"requestId": header_id, "timestamp": now_ms(), "errorMessage": e})
                    .to_string(),
            );
        }
        Err(e) => {
            sink.bad_requests.fetch_add(1, Ordering::Relaxed);
            return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
        }
    };
    if !protocol_ok || request.request_id != header_id {
        sink.bad_requests.fetch_add(1, Ordering::Relaxed);
    }
    sink.requests.fetch_add(1, Ordering::Relaxed);
    let fresh = sink.count_repeats
        || sink
            .request_ids
            .lock()
            .map(|mut ids| ids.insert(request.request_id.clone()))
            .unwrap_or(true);
    if fresh {
        sink.records
            .fetch_add(request.records.len() as u64, Ordering::Relaxed);
        if !latencies.is_empty() {
            if let Ok(mut all) = sink.latencies_ms.lock() {
                all.extend(latencies);
            }
        }
    } else {
        sink.duplicate_requests.fetch_add(1, Ordering::Relaxed);
    }
    (
        StatusCode::OK,
        json!({"requestId": request.request_id, "timestamp": now_ms()}).to_string(),
    )
}

struct Receiver {
    port: u16,
    plain: Arc<Sink>,
    drain: Arc<Sink>,
    live: Arc<Sink>,
}

async fn start_receiver() -> Receiver {
    let plain = Arc::new(Sink {
        count_repeats: true,
        ..Sink::default()
    });
    let drain = Arc::new(Sink::default());
    let live = Arc::new(Sink {
        measure_latency: true,
        ..Sink::default()
    });
    let app = Router::new()
        .route("/plain", post(receive).with_state(plain.clone()))
        .route("/drain", post(receive).with_state(drain.clone()))
        .route("/live", post(receive).with_state(live.clone()))
        .layer(axum::extract::DefaultBodyLimit::max(80 * 1024 * 1024));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the receiver");
    let port = listener.local_addr().expect("receiver address").port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Receiver {
        port,
        plain,
        drain,
        live,
    }
}

// ---- (b) plain load generator -----------------------------------------------------------------

fn record_data(n: u64) -> Vec<u8> {
    let mut data = vec![0u8; RECORD_BYTES];
    for (j, byte) in data.iter_mut().enumerate() {
        *byte = ((n as usize * 31 + j * 7) % 251) as u8;
    }
    data
}

/// A Firehose HTTP endpoint request body of `REQUEST_RECORDS` records, gzipped at the level
/// kinedge uses, built the way any sender has to: base64, JSON, gzip.
fn gzip_body(request_id: &str, first: u64) -> Vec<u8> {
    let records: Vec<Value> = (0..REQUEST_RECORDS as u64)
        .map(|i| json!({"data": STANDARD.encode(record_data(first + i))}))
        .collect();
    let body = serde_json::to_vec(
        &json!({"requestId": request_id, "timestamp": now_ms(), "records": records}),
    )
    .expect("json");
    let mut enc =
        flate2::write::GzEncoder::new(Vec::new(), kinedge::delivery::compression::gzip_level());
    enc.write_all(&body).expect("gzip");
    enc.finish().expect("gzip")
}

/// Posts bodies to the receiver from 2 connections for `seconds`; returns records/s the
/// receiver accepted. With `prebuilt`, 4 bodies per connection are built once and sent again
/// and again (what the receiver alone can take); without, every request's body is built
/// fresh (base64, JSON, gzip), as a plain sender of new records must.
async fn plain_load(rx: &Receiver, seconds: u64, prebuilt: bool) -> f64 {
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{}/plain", rx.port);
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let start_requests = rx.plain.requests.load(Ordering::Relaxed);
    for conn in 0..2u64 {
        let http = http.clone();
        let url = url.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let prebuilt_bodies: Vec<(String, Bytes)> = if prebuilt {
                tokio::task::spawn_blocking(move || {
                    (0..4u64)
                        .map(|b| {
                            let id = format!("plain-{conn}-{b}");
                            let body = gzip_body(&id, (conn * 4 + b) * REQUEST_RECORDS as u64);
                            (id, Bytes::from(body))
                        })
                        .collect()
                })
                .await
                .expect("pre-built bodies")
            } else {
                Vec::new()
            };
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let (id, body) = if prebuilt {
                    prebuilt_bodies[n as usize % prebuilt_bodies.len()].clone()
                } else {
                    let id = format!("fresh-{conn}-{n}");
                    let first = (n * 2 + conn) * REQUEST_RECORDS as u64;
                    let built_id = id.clone();
                    let body = tokio::task::spawn_blocking(move || gzip_body(&built_id, first))
                        .await
                        .expect("body");
                    (id, Bytes::from(body))
                };
                n += 1;
                let _ = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("content-encoding", "gzip")
                    .header("x-amz-firehose-protocol-version", "1.0")
                    .header("x-amz-firehose-request-id", id)
                    .header(
                        "x-amz-firehose-source-arn",
                        "arn:aws:firehose:us-east-1:000000000000:deliverystream/plain",
                    )
                    .body(body)
                    .send()
                    .await
                    .and_then(|r| r.error_for_status());
            }
        }));
    }
    // warm-up (connections open), then measure what the receiver accepts
    let ready_by = Instant::now() + Duration::from_secs(60);
    while rx.plain.requests.load(Ordering::Relaxed) < start_requests + 4
        && Instant::now() < ready_by
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rx.plain.records.load(Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let got = rx.plain.records.load(Ordering::Relaxed) - before;
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    got as f64 / elapsed
}

// ---- kinedge ----------------------------------------------------------------------------------

struct Kinedge {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<common::Process>,
}

impl Kinedge {
    fn new() -> Kinedge {
        Kinedge {
            dir: tempfile::tempdir().expect("temp dir"),
            port: common::free_port(),
            child: None,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// (Re)starts kinedge with the base config plus `extra`.
    fn start(&mut self, extra: &str) {
        if let Some(child) = self.child.take() {
            // A clean stop (SIGTERM), as a service manager does: the restart then opens the
            // database without a repair pass.
            let pid = child.id() as libc::pid_t;
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
            let mut child = child;
            let deadline = Instant::now() + Duration::from_secs(30);
            while child.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let config = self.dir.path().join("kinedge.toml");
        std::fs::write(
            &config,
            format!(
                "[storage]\ndata_dir = \"{}\"\nmin_free_disk = \"64MiB\"\n[api]\nlisten = \"127.0.0.1:{}\"\n[mqtt]\nenabled = false\n[log]\nlevel = \"warn\"\n\n[[streams]]\nname = \"bench\"\nshards = {SHARDS}\n\n[[streams]]\nname = \"live\"\nshards = 2\n{extra}",
                self.dir.path().join("data").display(),
                self.port
            ),
        )
        .expect("write config");
        let child = Command::new(env!("CARGO_BIN_EXE_kinedge"))
            .args(["run", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .spawn()
            .expect("start kinedge");
        self.child = Some(common::Process(child));
    }
}

async fn kinesis(
    http: &reqwest::Client,
    endpoint: &str,
    op: &str,
    body: &Value,
) -> Result<Value, String> {
    let response = http
        .post(format!("{endpoint}/"))
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", format!("Kinesis_20131202.{op}"))
        .header("authorization", AUTHORIZATION)
        .header("x-amz-date", AMZ_DATE)
        .body(serde_json::to_vec(body).map_err(|e| e.to_string())?)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| e.to_string())?;
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status.is_success() {
        Ok(value)
    } else {
        Err(format!("{op}: HTTP {status}: {value}"))
    }
}

async fn wait_ready(http: &reqwest::Client, endpoint: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        match kinesis(http, endpoint, "ListStreams", &json!({})).await {
            Ok(_) => return,
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{endpoint} did not become ready: {last}");
}

/// Puts `total` 100-byte records into `bench` with 4 concurrent PutRecords clients.
async fn load(http: &reqwest::Client, endpoint: &str, total: u64) -> f64 {
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for client in 0..4 {
        let http = http.clone();
        let endpoint = endpoint.to_string();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let first = next.fetch_add(PUT_BATCH as u64, Ordering::Relaxed);
                if first >= total {
                    break;
                }
                let n = (total - first).min(PUT_BATCH as u64);
                let records: Vec<Value> = (first..first + n)
                    .map(|i| json!({"PartitionKey": format!("k{client}-{}", i % 64), "Data": STANDARD.encode(record_data(i))}))
                    .collect();
                let body = json!({"StreamName": "bench", "Records": records});
                let mut pending = body;
                for _ in 0..100 {
                    match kinesis(&http, &endpoint, "PutRecords", &pending).await {
                        Ok(out) if out["FailedRecordCount"].as_u64() == Some(0) => break,
                        Ok(out) => {
                            // keep only the refused entries
                            let failed: Vec<Value> = pending["Records"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .zip(out["Records"].as_array().into_iter().flatten())
                                .filter(|(_, r)| r.get("ErrorCode").is_some())
                                .map(|(q, _)| q.clone())
                                .collect();
                            pending = json!({"StreamName": "bench", "Records": failed});
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(e) => panic!("PutRecords: {e}"),
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("loader");
    }
    total as f64 / started.elapsed().as_secs_f64()
}

fn delivery_toml(name: &str, stream: &str, url: &str, interval_s: u32, size: &str) -> String {
    format!(
        "\n[[delivery_streams]]\nname = \"{name}\"\nsource = {{ stream = \"{stream}\", start = \"trim_horizon\" }}\nbuffer = {{ size = \"{size}\", interval_s = {interval_s} }}\ncompression = \"gzip\"\ndestination = {{ type = \"http_endpoint\", url = \"{url}\", retry_duration_s = 300 }}\n"
    )
}

struct Drain {
    load_rps: f64,
    drain_rps: f64,
    drain_s: f64,
    restart_s: f64,
    duplicates: u64,
    peak_rss_mb: f64,
}

async fn drain(rx: &Receiver, kinedge: &mut Kinedge, http: &reqwest::Client, total: u64) -> Drain {
    kinedge.start("");
    wait_ready(http, &kinedge.endpoint()).await;
    let load_rps = load(http, &kinedge.endpoint(), total).await;
    let live_url = format!("http://127.0.0.1:{}/live", rx.port);
    let drain_url = format!("http://127.0.0.1:{}/drain", rx.port);
    let extra = delivery_toml("drain", "bench", &drain_url, 60, "5MiB")
        + &delivery_toml("live", "live", &live_url, 1, "1MiB");
    let restarting = Instant::now();
    kinedge.start(&extra);
    // The drain is timed from the moment the restarted gateway answers /ready (delivery
    // starts then); the restart itself is reported on its own.
    wait_ready(http, &kinedge.endpoint()).await;
    let restart_s = restarting.elapsed().as_secs_f64();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(600);
    while rx.drain.records.load(Ordering::Relaxed) < total {
        if let Some(status) = kinedge
            .child
            .as_mut()
            .and_then(|c| c.0.try_wait().ok().flatten())
        {
            panic!("kinedge exited during the drain: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "backlog not drained in 600 s: {} of {total}",
            rx.drain.records.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain_s = started.elapsed().as_secs_f64();
    let peak_rss_mb = kinedge.child.as_ref().map_or(0.0, |c| {
        common::proc_field(c.id(), "status", "VmHWM:") as f64 / 1024.0
    });
    wait_ready(http, &kinedge.endpoint()).await;
    Drain {
        load_rps,
        drain_rps: total as f64 / drain_s,
        drain_s,
        restart_s,
        duplicates: rx.drain.duplicate_requests.load(Ordering::Relaxed),
        peak_rss_mb,
    }
}

/// Puts records at `rate`/s into `live` for `seconds` (20 PutRecords per second), each with
/// its send time; returns (p50, p99, max, count) of the receiver's latencies in ms.
async fn live(
    rx: &Receiver,
    kinedge: &Kinedge,
    http: &reqwest::Client,
    rate: u64,
    seconds: u64,
) -> (f64, f64, f64, usize) {
    let per_tick = (rate / 20).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut sent = 0u64;
    let end = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < end {
        tick.tick().await;
        let records: Vec<Value> = (0..per_tick)
            .map(|i| {
                let mut data = format!("t={}|{}|", now_us(), sent + i).into_bytes();
                data.resize(RECORD_BYTES, b'.');
                json!({"PartitionKey": format!("live-{}", (sent + i) % 16), "Data": STANDARD.encode(data)})
            })
            .collect();
        sent += per_tick;
        let http = http.clone();
        let endpoint = kinedge.endpoint();
        tokio::spawn(async move {
            let _ = kinesis(
                &http,
                &endpoint,
                "PutRecords",
                &json!({"StreamName": "live", "Records": records}),
            )
            .await;
        });
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while rx.live.records.load(Ordering::Relaxed) < sent && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut l = rx
        .live
        .latencies_ms
        .lock()
        .map(|v| v.clone())
        .unwrap_or_default();
    l.sort_by(|a, b| a.total_cmp(b));
    let pick = |q: f64| -> f64 {
        if l.is_empty() {
            f64::NAN
        } else {
            l[((l.len() as f64 * q) as usize).min(l.len() - 1)]
        }
    };
    (
        pick(0.5),
        pick(0.99),
        l.last().copied().unwrap_or(f64::NAN),
        l.len(),
    )
}

fn main() {
    let o = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let rx = start_receiver().await;
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(16)
            .build()
            .expect("client");
        eprintln!("receiver alone (pre-built bodies) for {} s...", o.seconds);
        let ceiling_rps = plain_load(&rx, o.seconds, true).await;
        eprintln!("plain load generator (fresh bodies) for {} s...", o.seconds);
        let plain_rps = plain_load(&rx, o.seconds, false).await;
        if o.plain_only {
            println!("receiver alone, pre-built bodies: records/s {ceiling_rps:.0}");
            println!("plain load generator, fresh bodies: records/s {plain_rps:.0}");
            return;
        }
        eprintln!("loading {} records, then draining...", o.records);
        let mut kinedge = Kinedge::new();
        let d = drain(&rx, &mut kinedge, &http, o.records).await;
        eprintln!("live delivery at {} records/s for {} s...", o.rate, o.latency_seconds);
        let (p50, p99, max, n) = live(&rx, &kinedge, &http, o.rate, o.latency_seconds).await;
        let bad = rx.plain.bad_requests.load(Ordering::Relaxed)
            + rx.drain.bad_requests.load(Ordering::Relaxed)
            + rx.live.bad_requests.load(Ordering::Relaxed);

        println!(
            "\nHTTP endpoint delivery, gzip, {RECORD_BYTES}-byte records, {SHARDS} shards, receiver in the bench"
        );
        println!("{:<44} {:>14}", "measure", "value");
        println!("{:<44} {:>14.0}", "receiver alone (pre-built bodies), records/s", ceiling_rps);
        println!("{:<44} {:>14.0}", "plain load generator (fresh bodies), records/s", plain_rps);
        println!("{:<44} {:>14.0}", "PutRecords load before delivery, records/s", d.load_rps);
        println!(
            "{:<44} {:>14.0}",
            format!("backlog drain of {} records, records/s", o.records),
            d.drain_rps
        );
        println!("{:<44} {:>14.2}", "backlog drain time, s (from ready)", d.drain_s);
        println!("{:<44} {:>14.2}", "restart to ready, s (SIGTERM, start)", d.restart_s);
        println!(
            "{:<44} {:>14.2}",
            "drain / plain load generator",
            d.drain_rps / plain_rps.max(1.0)
        );
        println!("{:<44} {:>14}", "drain: repeated request ids", d.duplicates);
        println!("{:<44} {:>14.1}", "kinedge peak RSS while draining, MB", d.peak_rss_mb);
        println!("{:<44} {:>14.0}", format!("live p50 latency, ms ({n} records)"), p50);
        println!("{:<44} {:>14.0}", "live p99 latency, ms", p99);
        println!("{:<44} {:>14.0}", "live max latency, ms", max);
        println!("{:<44} {:>14}", "requests breaking the contract", bad);
        println!(
            "targets: drain >= 200000 records/s ({}), >= 80% of plain ({}), live p99 <= 1500 ms ({})",
            if d.drain_rps >= 200_000.0 { "met" } else { "NOT met" },
            if d.drain_rps >= 0.8 * plain_rps { "met" } else { "NOT met" },
            if p99 <= 1500.0 { "met" } else { "NOT met" },
        );
    });
}
