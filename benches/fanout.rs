//! Enhanced fan-out benchmark (SubscribeToShard) against the real `kinedge` binary, on loopback.
//!
//! `cargo bench --bench fanout` (options after `--`: `--records N` (catch-up phase, default
//! 1,000,000), `--seconds N` (each ingest window, default 10), `--subscribers N` (default
//! 100), `--producers N` (default 4); `KINEDGE_BIN=path` runs another kinedge binary).
//! 100-byte records, PutRecords of 500, one shard. Reports:
//!
//! - catch-up: records/s that one subscriber receives reading `--records` stored records from
//!   TRIM_HORIZON (the gateway's push rate to one subscriber);
//! - at the tip: the delay from a PutRecord's acknowledgement (sent right after its commit)
//!   to the event carrying the record, and from the request's start, p50/p99/max of 200
//!   single-record puts 20 ms apart;
//! - paced ingest: PutRecords of 100 at `--paced-rate` records/s (default 1,000, a Kinesis
//!   shard's write limit) for `--seconds`, the rate reached and the calls' latency, without
//!   and with `--subscribers` subscribers;
//! - ingest with subscribers: acknowledged records/s of `--producers` PutRecords clients for
//!   `--seconds`, with no subscriber, then with `--subscribers` subscribers at LATEST on the
//!   same shard (each must receive every record), then with none again; the slowdown is
//!   against the mean of the two runs without;
//!   the gateway's CPU time per ingested record in both windows (the subscribers run on the
//!   same machine and take CPU from it: this tells the gateway's own share);
//! - the gateway's peak resident memory (VmHWM).
//!
//! Subscribers read HTTP/1.1 event streams with reqwest and decode every event's JSON.

mod common;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

const RECORD_BYTES: usize = 100;
const BATCH: usize = 500;
const ACCOUNT: &str = "000000000000";

struct Options {
    records: u64,
    seconds: u64,
    subscribers: usize,
    producers: usize,
    paced_rate: u64,
}

fn options() -> Options {
    let mut o = Options {
        records: 1_000_000,
        seconds: 10,
        subscribers: 100,
        producers: 4,
        paced_rate: 1_000,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let value = args.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match (args[i].as_str(), value) {
            ("--records", Some(v)) => o.records = v,
            ("--seconds", Some(v)) => o.seconds = v,
            ("--subscribers", Some(v)) => o.subscribers = v as usize,
            ("--producers", Some(v)) => o.producers = v as usize,
            ("--paced-rate", Some(v)) => o.paced_rate = v.max(100),
            _ => {} // cargo passes --bench
        }
        i += 1;
    }
    o
}

struct Gateway {
    child: common::Process,
    endpoint: String,
    _dir: tempfile::TempDir,
}

fn start_kinedge(max_consumers: usize) -> Gateway {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = common::free_port();
    let config = dir.path().join("kinedge.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\ndata_dir = \"{}\"\nmin_free_disk = \"64MiB\"\n[api]\nlisten = \"127.0.0.1:{port}\"\nmax_consumers_per_stream = {max_consumers}\n[mqtt]\nenabled = false\n[log]\nlevel = \"warn\"\n",
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
    Gateway {
        child: common::Process(child),
        endpoint: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

fn request(
    http: &reqwest::Client,
    endpoint: &str,
    op: &str,
    body: &Value,
) -> reqwest::RequestBuilder {
    http.post(format!("{endpoint}/"))
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", format!("Kinesis_20131202.{op}"))
        .body(serde_json::to_vec(body).expect("json"))
}

async fn call(
    http: &reqwest::Client,
    endpoint: &str,
    op: &str,
    body: Value,
) -> Result<Value, String> {
    let response = request(http, endpoint, op, &body)
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
    while Instant::now() < deadline {
        if call(http, endpoint, "ListStreams", json!({})).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{endpoint} did not become ready");
}

async fn create_stream(http: &reqwest::Client, endpoint: &str, name: &str) -> String {
    call(
        http,
        endpoint,
        "CreateStream",
        json!({"StreamName": name, "ShardCount": 1}),
    )
    .await
    .expect("CreateStream");
    format!("arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/{name}")
}

async fn register(http: &reqwest::Client, endpoint: &str, stream_arn: &str, name: &str) -> String {
    let out = call(
        http,
        endpoint,
        "RegisterStreamConsumer",
        json!({"StreamARN": stream_arn, "ConsumerName": name}),
    )
    .await
    .expect("RegisterStreamConsumer");
    out["Consumer"]["ConsumerARN"]
        .as_str()
        .expect("ARN")
        .to_string()
}

fn batch_body(stream: &str, n: usize, tag: u64) -> Value {
    let data = STANDARD.encode(vec![b'x'; RECORD_BYTES]);
    let records: Vec<Value> = (0..n)
        .map(|i| json!({"Data": data, "PartitionKey": format!("k{tag}-{i}")}))
        .collect();
    json!({"StreamName": stream, "Records": records})
}

/// Puts `total` records with `producers` concurrent clients.
async fn fill(http: &reqwest::Client, endpoint: &str, stream: &str, total: u64, producers: usize) {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..producers {
        let (http, endpoint, stream, next) = (
            http.clone(),
            endpoint.to_string(),
            stream.to_string(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let body = batch_body(&stream, BATCH, 0);
            while next.fetch_add(BATCH as u64, Ordering::Relaxed) < total {
                call(&http, &endpoint, "PutRecords", body.clone())
                    .await
                    .expect("PutRecords");
            }
        }));
    }
    for t in tasks {
        t.await.expect("producer");
    }
}

/// Acknowledged records/s of `producers` clients putting for `seconds`.
async fn ingest(
    http: &reqwest::Client,
    endpoint: &str,
    stream: &str,
    seconds: u64,
    producers: usize,
) -> (f64, u64) {
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..producers {
        let (http, endpoint, stream) = (http.clone(), endpoint.to_string(), stream.to_string());
        let (acked, stop) = (acked.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let body = batch_body(&stream, BATCH, p as u64);
            while !stop.load(Ordering::Relaxed) {
                let out = call(&http, &endpoint, "PutRecords", body.clone())
                    .await
                    .expect("PutRecords");
                let failed = out["FailedRecordCount"].as_u64().unwrap_or(0);
                acked.fetch_add(BATCH as u64 - failed, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("producer");
    }
    let n = acked.load(Ordering::Relaxed);
    (n as f64 / start.elapsed().as_secs_f64(), n)
}

/// PutRecords of 100 records at `rate` records/s for `seconds`: the rate reached, the
/// calls' latency (p50, p99) in ms and the records acknowledged.
async fn paced(
    http: &reqwest::Client,
    endpoint: &str,
    stream: &str,
    rate: u64,
    seconds: u64,
) -> (f64, f64, f64, u64) {
    const PACED_BATCH: u64 = 100;
    let body = batch_body(stream, PACED_BATCH as usize, 7);
    let every = Duration::from_secs_f64(PACED_BATCH as f64 / rate as f64);
    let start = Instant::now();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut latencies = Vec::new();
    let mut acked = 0;
    while start.elapsed() < Duration::from_secs(seconds) {
        tick.tick().await;
        let t = Instant::now();
        call(http, endpoint, "PutRecords", body.clone())
            .await
            .expect("PutRecords");
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        acked += PACED_BATCH;
    }
    latencies.sort_by(f64::total_cmp);
    (
        acked as f64 / start.elapsed().as_secs_f64(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        acked,
    )
}

/// The sequence numbers of an event's records.
fn sequence_numbers(payload: &[u8]) -> Vec<String> {
    let event: Value = serde_json::from_slice(payload).expect("event JSON");
    let records = event["Records"].as_array().cloned().unwrap_or_default();
    records
        .iter()
        .filter_map(|r| r["SequenceNumber"].as_str().map(str::to_string))
        .collect()
}

/// How many records an event's JSON holds, without decoding it (subscribers on the same
/// two cores as the gateway should take as little CPU as they can from it).
fn count_records(payload: &[u8]) -> u64 {
    const KEY: &[u8] = b"\"SequenceNumber\"";
    let mut n = 0;
    let mut i = 0;
    while i + KEY.len() <= payload.len() {
        if payload[i] == b'"' && &payload[i..i + KEY.len()] == KEY {
            n += 1;
            i += KEY.len();
        } else {
            i += 1;
        }
    }
    n
}

/// One subscriber: calls `on_event(event JSON, arrival)` for every SubscribeToShardEvent
/// until it returns false or the stream ends.
async fn subscribe(
    http: reqwest::Client,
    endpoint: String,
    consumer_arn: String,
    position: &'static str,
    mut on_event: impl FnMut(&[u8], Instant) -> bool,
) {
    let body = json!({"ConsumerARN": consumer_arn, "ShardId": "shardId-000000000000",
                      "StartingPosition": {"Type": position}});
    let mut response = request(&http, &endpoint, "SubscribeToShard", &body)
        .send()
        .await
        .expect("SubscribeToShard");
    assert!(
        response.status().is_success(),
        "SubscribeToShard: {}",
        response.status()
    );
    let mut buf: Vec<u8> = Vec::new();
    while let Some(chunk) = response.chunk().await.expect("event stream") {
        let arrived = Instant::now();
        buf.extend_from_slice(&chunk);
        let mut used = 0;
        while buf.len() - used >= 12 {
            let total = u32::from_be_bytes(buf[used..used + 4].try_into().expect("4")) as usize;
            if buf.len() - used < total {
                break;
            }
            let message =
                aws_smithy_eventstream::frame::read_message_from(&buf[used..used + total])
                    .expect("a valid event-stream message");
            used += total;
            let event_type = message
                .headers()
                .iter()
                .find(|h| h.name().as_str() == ":event-type")
                .and_then(|h| h.value().as_string().ok())
                .map(|s| s.as_str().to_string());
            if event_type.as_deref() != Some("SubscribeToShardEvent") {
                continue;
            }
            if !on_event(message.payload(), arrived) {
                return;
            }
        }
        buf.drain(..used);
    }
}

/// CPU seconds (user + system) a process used so far, from /proc/PID/stat.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    // USER_HZ is 100 on Linux.
    ticks / 100.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn catch_up(http: &reqwest::Client, endpoint: &str, o: &Options) {
    let arn = create_stream(http, endpoint, "catch-up").await;
    fill(http, endpoint, "catch-up", o.records, o.producers).await;
    let stored = o.records.div_ceil(BATCH as u64) * BATCH as u64;
    let consumer = register(http, endpoint, &arn, "reader").await;
    let start = Instant::now();
    let mut received = 0u64;
    subscribe(
        http.clone(),
        endpoint.to_string(),
        consumer,
        "TRIM_HORIZON",
        |payload, _| {
            received += count_records(payload);
            received < stored
        },
    )
    .await;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "catch-up, one subscriber: {received} records in {secs:.2} s = {:.0} records/s",
        received as f64 / secs
    );
    // The same records through GetRecords (same read path, one caller), for comparison.
    let out = call(
        http,
        endpoint,
        "GetShardIterator",
        json!({"StreamName": "catch-up", "ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"}),
    )
    .await
    .expect("GetShardIterator");
    let mut iterator = out["ShardIterator"].as_str().expect("iterator").to_string();
    let start = Instant::now();
    let mut read = 0u64;
    while read < stored {
        let out = call(
            http,
            endpoint,
            "GetRecords",
            json!({"ShardIterator": iterator, "Limit": 10000}),
        )
        .await
        .expect("GetRecords");
        read += out["Records"].as_array().map_or(0, |r| r.len() as u64);
        iterator = out["NextShardIterator"]
            .as_str()
            .expect("next iterator")
            .to_string();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "same records through GetRecords (Limit 10,000, one caller): {read} in {secs:.2} s = {:.0} records/s",
        read as f64 / secs
    );
}

async fn latency(http: &reqwest::Client, endpoint: &str) {
    const PUTS: usize = 200;
    let arn = create_stream(http, endpoint, "latency").await;
    let consumer = register(http, endpoint, &arn, "tip").await;
    let arrivals: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let seen = arrivals.clone();
    let sub = tokio::spawn(subscribe(
        http.clone(),
        endpoint.to_string(),
        consumer,
        "LATEST",
        move |payload, at| {
            let mut seen = seen.lock().expect("lock");
            seen.extend(sequence_numbers(payload).into_iter().map(|s| (s, at)));
            seen.len() < PUTS
        },
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut sent = Vec::new();
    let data = STANDARD.encode(vec![b'x'; RECORD_BYTES]);
    for i in 0..PUTS {
        let started = Instant::now();
        let out = call(
            http,
            endpoint,
            "PutRecord",
            json!({"StreamName": "latency", "Data": data, "PartitionKey": format!("k{i}")}),
        )
        .await
        .expect("PutRecord");
        let acked = Instant::now();
        sent.push((
            out["SequenceNumber"].as_str().expect("seq").to_string(),
            started,
            acked,
        ));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(30), sub).await;
    let arrivals = arrivals.lock().expect("lock");
    let mut from_ack = Vec::new();
    let mut from_start = Vec::new();
    for (seq, started, acked) in &sent {
        if let Some((_, at)) = arrivals.iter().find(|(s, _)| s == seq) {
            from_ack.push(at.saturating_duration_since(*acked).as_secs_f64() * 1000.0);
            from_start.push(at.saturating_duration_since(*started).as_secs_f64() * 1000.0);
        }
    }
    from_ack.sort_by(f64::total_cmp);
    from_start.sort_by(f64::total_cmp);
    println!(
        "at the tip ({} of {PUTS} records seen): acknowledgement -> event p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (0 when the event came first); request start -> event p50 {:.1} ms, p99 {:.1} ms",
        from_ack.len(),
        percentile(&from_ack, 0.5),
        percentile(&from_ack, 0.99),
        from_ack.last().copied().unwrap_or(f64::NAN),
        percentile(&from_start, 0.5),
        percentile(&from_start, 0.99),
    );
}

async fn many_subscribers(http: &reqwest::Client, endpoint: &str, pid: u32, o: &Options) {
    let arn = create_stream(http, endpoint, "many").await;
    let paced_before = paced(http, endpoint, "many", o.paced_rate, o.seconds).await;
    let cpu = cpu_seconds(pid);
    let (before, before_n) = ingest(http, endpoint, "many", o.seconds, o.producers).await;
    let cpu_before = (cpu_seconds(pid) - cpu) / before_n as f64 * 1e6;
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut subs = Vec::new();
    for i in 0..o.subscribers {
        let consumer = register(http, endpoint, &arn, &format!("c{i}")).await;
        // One connection per subscriber, as separate consumer processes would have.
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("client");
        let (received, stop) = (received.clone(), stop.clone());
        subs.push(tokio::spawn(subscribe(
            client,
            endpoint.to_string(),
            consumer,
            "LATEST",
            move |payload, _| {
                received.fetch_add(count_records(payload), Ordering::Relaxed);
                !stop.load(Ordering::Relaxed)
            },
        )));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let paced_with = paced(http, endpoint, "many", o.paced_rate, o.seconds).await;
    let cpu = cpu_seconds(pid);
    let (with, acked) = ingest(http, endpoint, "many", o.seconds, o.producers).await;
    let cpu_with = (cpu_seconds(pid) - cpu) / acked as f64 * 1e6;
    // Every subscriber gets every record acknowledged in both windows.
    let expected = (acked + paced_with.3) * o.subscribers as u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while received.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let delivered = received.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for s in subs {
        s.abort();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (after, _) = ingest(http, endpoint, "many", o.seconds, o.producers).await;
    let baseline = (before + after) / 2.0;
    println!(
        "ingest, one shard, {} producers: {before:.0} records/s without subscribers, {with:.0} with {} subscribers, {after:.0} without again: {:+.1}% against the mean without; subscribers received {delivered} of {expected} records",
        o.producers,
        o.subscribers,
        (with / baseline - 1.0) * 100.0,
    );
    println!(
        "paced ingest at {} records/s (PutRecords of 100): {:.0} records/s, latency p50 {:.1} ms p99 {:.1} ms without subscribers; {:.0} records/s, p50 {:.1} ms p99 {:.1} ms with {}",
        o.paced_rate,
        paced_before.0,
        paced_before.1,
        paced_before.2,
        paced_with.0,
        paced_with.1,
        paced_with.2,
        o.subscribers
    );
    println!(
        "gateway CPU per ingested record: {cpu_before:.1} us without subscribers, {cpu_with:.1} us with {} (while they received it)",
        o.subscribers
    );
}

fn main() {
    let o = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let gateway = start_kinedge(o.subscribers.max(20));
        let http = reqwest::Client::new();
        wait_ready(&http, &gateway.endpoint).await;
        println!(
            "kinedge {} ({}), {RECORD_BYTES}-byte records",
            common::kinedge_bin().display(),
            if cfg!(debug_assertions) {
                "bench built without optimisation"
            } else {
                "optimised bench"
            }
        );
        catch_up(&http, &gateway.endpoint, &o).await;
        latency(&http, &gateway.endpoint).await;
        many_subscribers(&http, &gateway.endpoint, gateway.child.id(), &o).await;
        println!(
            "gateway peak resident memory (VmHWM): {:.1} MiB",
            common::proc_field(gateway.child.id(), "status", "VmHWM:") as f64 / 1024.0
        );
    });
}
