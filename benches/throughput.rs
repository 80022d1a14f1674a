//! Throughput benchmark: durable PutRecords and GetRecords against the real `kinedge` binary,
//! and the same load against `ferrokinesis` (an in-memory Kinesis mock) in the same run.
//!
//! `cargo bench --bench throughput` (options after `--`: `--seconds N`, `--clients N`,
//! `--skip-peer`, `--encrypted`; `KINEDGE_BIN=path` runs another kinedge binary, e.g. an older
//! build). `--encrypted` also runs kinedge with the bench stream encrypted at rest
//! (StartStreamEncryption, AES-256-GCM) right after the plaintext run, and prints the ratio. 100-byte records, PutRecords of 500, 4 shards, 8 concurrent clients by
//! default. Reports acknowledged records/s, GetRecords records/s, bytes written to disk per
//! byte of record data (from /proc/PID/io), peak resident memory (VmHWM) and, for kinedge,
//! records per commit.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

const RECORD_BYTES: usize = 100;
const BATCH: usize = 500;
const SHARDS: u32 = 4;
/// Neither server checks signatures here (kinedge without credentials, ferrokinesis never),
/// but ferrokinesis wants the headers to be present.
const AUTHORIZATION: &str = "AWS4-HMAC-SHA256 Credential=AKIDBENCH/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=00";
const AMZ_DATE: &str = "20260101T000000Z";

struct Options {
    seconds: u64,
    clients: usize,
    skip_peer: bool,
    encrypted: bool,
}

fn options() -> Options {
    let mut o = Options {
        seconds: 10,
        clients: 8,
        skip_peer: false,
        encrypted: false,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--seconds" => {
                o.seconds = args
                    .get(i + 1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(o.seconds);
                i += 1;
            }
            "--clients" => {
                o.clients = args
                    .get(i + 1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(o.clients);
                i += 1;
            }
            "--skip-peer" => o.skip_peer = true,
            "--encrypted" => o.encrypted = true,
            _ => {} // cargo passes --bench
        }
        i += 1;
    }
    o
}

struct Server {
    name: &'static str,
    child: common::Process,
    endpoint: String,
    _dir: tempfile::TempDir,
}

fn start_kinedge(encrypted: bool) -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = common::free_port();
    let config = dir.path().join("kinedge.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\ndata_dir = \"{}\"\nmin_free_disk = \"64MiB\"\n[api]\nlisten = \"127.0.0.1:{port}\"\n[mqtt]\nenabled = false\n[log]\nlevel = \"warn\"\n",
            dir.path().join("data").display()
        ),
    )
    .expect("write config");
    let child = Command::new(common::kinedge_bin())
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .spawn()
        .expect("start kinedge");
    Server {
        name: if encrypted { "kinedge+kms" } else { "kinedge" },
        child: common::Process(child),
        endpoint: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

fn ferrokinesis_bin() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("FERROKINESIS_BIN") {
        return Some(PathBuf::from(path));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/peers");
    let bin = root.join("bin/ferrokinesis");
    if !bin.exists() {
        eprintln!(
            "installing ferrokinesis 0.7.0 into {} (once)...",
            root.display()
        );
        let status = Command::new("cargo")
            .args([
                "install",
                "ferrokinesis",
                "--version",
                "0.7.0",
                "--locked",
                "--root",
            ])
            .arg(&root)
            .status()
            .ok()?;
        if !status.success() {
            return None;
        }
    }
    Some(bin)
}

fn start_ferrokinesis(bin: &Path) -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = common::free_port();
    let child = Command::new(bin)
        .args([
            "--port",
            &port.to_string(),
            "--create-stream-ms",
            "0",
            "--update-stream-ms",
            "0",
            "--max-request-body-mb",
            "32",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ferrokinesis");
    Server {
        name: "ferrokinesis",
        child: common::Process(child),
        endpoint: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

async fn call(
    http: &reqwest::Client,
    endpoint: &str,
    op: &str,
    body: Value,
) -> Result<Value, String> {
    let response = http
        .post(format!("{endpoint}/"))
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", format!("Kinesis_20131202.{op}"))
        .header("authorization", AUTHORIZATION)
        .header("x-amz-date", AMZ_DATE)
        .body(serde_json::to_vec(&body).map_err(|e| e.to_string())?)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| e.to_string())?;
    let value = if bytes.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())?
    };
    if status.is_success() {
        Ok(value)
    } else {
        Err(format!("{op}: HTTP {status}: {value}"))
    }
}

async fn wait_ready(http: &reqwest::Client, endpoint: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while Instant::now() < deadline {
        match call(http, endpoint, "ListStreams", json!({})).await {
            Ok(_) => return,
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{endpoint} did not become ready: {last}");
}

struct Measured {
    name: &'static str,
    put_rps: f64,
    get_rps: f64,
    disk_per_byte: f64,
    peak_rss_mb: f64,
    put_peak_rss_mb: f64,
    records_per_commit: Option<f64>,
}

fn bodies(client: usize) -> Vec<Vec<u8>> {
    (0..8)
        .map(|b| {
            let records: Vec<Value> = (0..BATCH)
                .map(|i| {
                    let mut data = vec![0u8; RECORD_BYTES];
                    for (j, byte) in data.iter_mut().enumerate() {
                        *byte = ((i * 31 + j * 7 + b + client) % 251) as u8;
                    }
                    json!({"PartitionKey": format!("sensor-{client}-{b}-{i}"), "Data": STANDARD.encode(&data)})
                })
                .collect();
            serde_json::to_vec(&json!({"StreamName": "bench", "Records": records})).expect("json")
        })
        .collect()
}

async fn run(server: &Server, o: &Options) -> Measured {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    wait_ready(&http, &server.endpoint).await;
    call(
        &http,
        &server.endpoint,
        "CreateStream",
        json!({"StreamName": "bench", "ShardCount": SHARDS}),
    )
    .await
    .expect("create stream");
    if server.name == "kinedge+kms" {
        call(
            &http,
            &server.endpoint,
            "StartStreamEncryption",
            json!({"StreamName": "bench", "EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"}),
        )
        .await
        .expect("start stream encryption");
    }
    loop {
        let d = call(
            &http,
            &server.endpoint,
            "DescribeStreamSummary",
            json!({"StreamName": "bench"}),
        )
        .await
        .expect("describe");
        if d["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = server.child.id();
    let acked = Arc::new(AtomicU64::new(0));
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for client in 0..o.clients {
        let http = http.clone();
        let endpoint = server.endpoint.clone();
        let acked = acked.clone();
        let measuring = measuring.clone();
        let stop = stop.clone();
        let bodies = bodies(client);
        tasks.push(tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let body = bodies[n % bodies.len()].clone();
                n += 1;
                let response = http
                    .post(format!("{endpoint}/"))
                    .header("content-type", "application/x-amz-json-1.1")
                    .header("x-amz-target", "Kinesis_20131202.PutRecords")
                    .header("authorization", AUTHORIZATION)
                    .header("x-amz-date", AMZ_DATE)
                    .body(body)
                    .send()
                    .await;
                let Ok(response) = response else { continue };
                let ok = response.status().is_success();
                let Ok(bytes) = response.bytes().await else {
                    continue;
                };
                if !ok {
                    continue;
                }
                let failed = serde_json::from_slice::<Value>(&bytes)
                    .ok()
                    .and_then(|v| v["FailedRecordCount"].as_u64())
                    .unwrap_or(BATCH as u64);
                if measuring.load(Ordering::Relaxed) {
                    acked.fetch_add(BATCH as u64 - failed, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await; // warm-up
    let io_before = common::proc_field(pid, "io", "write_bytes:");
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(o.seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let io_after = common::proc_field(pid, "io", "write_bytes:");
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let put_peak_rss_mb = common::proc_field(pid, "status", "VmHWM:") as f64 / 1024.0;
    let acked = acked.load(Ordering::Relaxed);
    let put_rps = acked as f64 / elapsed;
    let disk_per_byte =
        (io_after.saturating_sub(io_before)) as f64 / (acked as f64 * RECORD_BYTES as f64).max(1.0);
    let records_per_commit = if server.name.starts_with("kinedge") {
        match http.get(format!("{}/status", server.endpoint)).send().await {
            Ok(r) => r
                .json::<Value>()
                .await
                .ok()
                .and_then(|v| v["writer"]["records_per_commit"].as_f64()),
            Err(_) => None,
        }
    } else {
        None
    };

    // Read everything back from TRIM_HORIZON, all shards at once.
    let read_started = Instant::now();
    let mut readers = Vec::new();
    let shards = call(
        &http,
        &server.endpoint,
        "ListShards",
        json!({"StreamName": "bench"}),
    )
    .await
    .expect("list shards");
    for shard in shards["Shards"].as_array().cloned().unwrap_or_default() {
        let http = http.clone();
        let endpoint = server.endpoint.clone();
        let id = shard["ShardId"].as_str().unwrap_or_default().to_string();
        readers.push(tokio::spawn(async move {
            let mut it = call(
                &http,
                &endpoint,
                "GetShardIterator",
                json!({"StreamName": "bench", "ShardId": id, "ShardIteratorType": "TRIM_HORIZON"}),
            )
            .await
            .expect("iterator")["ShardIterator"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let mut count = 0u64;
            loop {
                let out = call(
                    &http,
                    &endpoint,
                    "GetRecords",
                    json!({"ShardIterator": it, "Limit": 10000}),
                )
                .await
                .expect("get records");
                let n = out["Records"].as_array().map_or(0, |r| r.len());
                count += n as u64;
                if n == 0 {
                    break;
                }
                match out["NextShardIterator"].as_str() {
                    Some(next) => it = next.to_string(),
                    None => break,
                }
            }
            count
        }));
    }
    let mut read = 0u64;
    for r in readers {
        read += r.await.unwrap_or(0);
    }
    let get_rps = read as f64 / read_started.elapsed().as_secs_f64();
    let peak_rss_mb = common::proc_field(pid, "status", "VmHWM:") as f64 / 1024.0;
    Measured {
        name: server.name,
        put_rps,
        get_rps,
        disk_per_byte,
        peak_rss_mb,
        put_peak_rss_mb,
        records_per_commit,
    }
}

fn main() {
    let o = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut results = Vec::new();
    {
        let server = start_kinedge(false);
        results.push(runtime.block_on(run(&server, &o)));
    }
    if o.encrypted {
        let server = start_kinedge(true);
        results.push(runtime.block_on(run(&server, &o)));
    }
    if !o.skip_peer {
        match ferrokinesis_bin() {
            Some(bin) => {
                let server = start_ferrokinesis(&bin);
                results.push(runtime.block_on(run(&server, &o)));
            }
            None => eprintln!("ferrokinesis could not be installed; peer skipped"),
        }
    }
    println!(
        "\nPutRecords x{BATCH} of {RECORD_BYTES}-byte records, {SHARDS} shards, {} clients, {} s",
        o.clients, o.seconds
    );
    println!(
        "{:<14} {:>14} {:>14} {:>10} {:>14} {:>14} {:>11}",
        "server",
        "put records/s",
        "get records/s",
        "disk B/B",
        "RSS put MB",
        "RSS put+get MB",
        "rec/commit"
    );
    for r in &results {
        println!(
            "{:<14} {:>14.0} {:>14.0} {:>10} {:>14.1} {:>14.1} {:>11}",
            r.name,
            r.put_rps,
            r.get_rps,
            if r.name.starts_with("kinedge") {
                format!("{:.2}", r.disk_per_byte)
            } else {
                "in-memory".into()
            },
            r.put_peak_rss_mb,
            r.peak_rss_mb,
            r.records_per_commit
                .map_or("-".into(), |v| format!("{v:.0}")),
        );
    }
    let find = |name: &str| results.iter().find(|r| r.name == name);
    if let (Some(k), Some(f)) = (find("kinedge"), find("ferrokinesis")) {
        println!(
            "kinedge/ferrokinesis put ratio: {:.2}",
            k.put_rps / f.put_rps.max(1.0)
        );
    }
    if let (Some(k), Some(e)) = (find("kinedge"), find("kinedge+kms")) {
        println!(
            "encrypted/plaintext: put {:.2}, get {:.2}",
            e.put_rps / k.put_rps.max(1.0),
            e.get_rps / k.get_rps.max(1.0)
        );
    }
}
