//! Analytics benchmark (issue 14): the tumbling AVG/MAX/COUNT query of the issue over a
//! kinedge stream backlog against the real `kinedge` binary and, in the same run, the same
//! query in PyFlink over the same rows from a JSON-lines file; then the latency of a threshold
//! alert from the input's commit to the MQTT PUBLISH.
//!
//! `cargo bench --bench analytics` (options after `--`: `--rows N` (the larger input, default
//! 4,000,000; the smaller is N/4), `--shards 1,2` (the shard counts to run), `--clients N`,
//! `--section throughput|latency|all`, `--skip-peer`; `KINEDGE_BIN=path` runs another build).
//!
//! Throughput: for each input size a fresh gateway gets stream `telemetry` filled with rows of
//! ~67 bytes (`{"device":"dev-0042","temp":21.37,"ts":"2026-01-01 00:00:01.234"}`, 1,000
//! devices, event time advancing 1 ms every 10 rows, so 10 s windows of 100,000 rows close
//! along the way) by PutRecords of 500 from concurrent clients; then the application is
//! POSTed and timed until its `records_in` equals the input (polled every 20 ms). The figure is
//! the marginal rate (4M - 1M rows) / (t4 - t1), as the issue asks. Extra RSS = peak VmRSS
//! during the run minus VmRSS before the POST. PyFlink (`benches/analytics_flink.py`,
//! parallelism 2, streaming mode, `filesystem` source, `blackhole` sink) is timed end to end
//! over the same rows, with the peak RSS of its whole process tree (python + java).
//!
//! Latency: `INSERT INTO alerts SELECT device, temp FROM telemetry WHERE temp > 80` to an MQTT
//! sink `alerts/{device}`; 5,000 records/s for 20 s in PutRecords of 50, one of them (every
//! 50th) above 80; a subscriber on the embedded broker. p50/p99 from the PutRecords
//! acknowledgement to the PUBLISH, and from the request's start.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

const BATCH: usize = 500;
const DEVICES: usize = 1000;
/// Event time advances 1 ms every ROWS_PER_MS rows: 100,000 rows per 10 s window.
const ROWS_PER_MS: u64 = 10;
const WINDOW_MS: u64 = 10_000;
const WATERMARK_DELAY_MS: u64 = 5_000;
/// 2026-01-01 00:00:00 UTC.
const BASE_MS: u64 = 1_767_225_600_000;

const APP_SQL: &str = "CREATE TABLE telemetry (device STRING, temp DOUBLE, ts TIMESTAMP(3), \
WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) WITH ('connector'='kinesis','stream'='telemetry',\
'format'='json','scan.stream.initpos'='TRIM_HORIZON'); \
CREATE TABLE out (window_start TIMESTAMP(3), device STRING, avg_temp DOUBLE, max_temp DOUBLE, \
n BIGINT) WITH ('connector'='kinesis','stream'='out','format'='json'); \
INSERT INTO out SELECT window_start, device, AVG(temp), MAX(temp), COUNT(*) \
FROM TABLE(TUMBLE(TABLE telemetry, DESCRIPTOR(ts), INTERVAL '10' SECOND)) \
GROUP BY window_start, window_end, device;";

const ALERT_SQL: &str = "CREATE TABLE telemetry (device STRING, temp DOUBLE, ts TIMESTAMP(3)) \
WITH ('connector'='kinesis','stream'='telemetry','format'='json','scan.stream.initpos'='TRIM_HORIZON'); \
CREATE TABLE alerts (device STRING, temp DOUBLE) WITH ('connector'='mqtt','topic'='alerts/{device}','format'='json'); \
INSERT INTO alerts SELECT device, temp FROM telemetry WHERE temp > 80;";

struct Options {
    rows: u64,
    shards: Vec<u32>,
    clients: usize,
    throughput: bool,
    latency: bool,
    skip_peer: bool,
}

fn options() -> Options {
    let mut o = Options {
        rows: 4_000_000,
        shards: vec![1, 2],
        clients: 4,
        throughput: true,
        latency: true,
        skip_peer: false,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--rows" => {
                o.rows = value.parse().unwrap_or(o.rows);
                i += 1;
            }
            "--clients" => {
                o.clients = value.parse().unwrap_or(o.clients);
                i += 1;
            }
            "--shards" => {
                o.shards = value.split(',').filter_map(|s| s.parse().ok()).collect();
                i += 1;
            }
            "--section" => {
                o.throughput = value == "throughput" || value == "all";
                o.latency = value == "latency" || value == "all";
                i += 1;
            }
            "--skip-peer" => o.skip_peer = true,
            _ => {} // cargo passes --bench
        }
        i += 1;
    }
    o
}

// ---------------------------------------------------------------------------------------
// The rows

fn event_ms(i: u64) -> u64 {
    BASE_MS + i / ROWS_PER_MS
}

fn format_ts(ms: u64) -> String {
    let secs = ms / 1000;
    let (day_secs, days) = (secs % 86_400, secs / 86_400);
    // days since 1970-01-01 to a civil date (Howard Hinnant's algorithm)
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}",
        day_secs / 3600,
        day_secs / 60 % 60,
        day_secs % 60,
        ms % 1000
    )
}

fn device(i: u64) -> String {
    format!("dev-{:04}", i % DEVICES as u64)
}

fn row(i: u64) -> String {
    let temp = 15.0 + ((i.wrapping_mul(7919) ^ (i >> 3)) % 2000) as f64 / 100.0;
    format!(
        "{{\"device\":\"{}\",\"temp\":{temp:.2},\"ts\":\"{}\"}}",
        device(i),
        format_ts(event_ms(i))
    )
}

/// The (window, device) groups whose window fired once the watermark passed every row of
/// `rows`: a window [s, s + 10 s) fires when the watermark (max ts - 5 s) reaches its end - 1.
fn fired_groups(rows: u64) -> u64 {
    let max_ts = event_ms(rows - 1) - BASE_MS;
    let watermark = max_ts.saturating_sub(WATERMARK_DELAY_MS);
    // windows k with (k + 1) * W - 1 <= watermark
    let windows = (watermark + 1) / WINDOW_MS;
    // every window holds 100,000 consecutive rows: all 1,000 devices
    windows * DEVICES as u64
}

// ---------------------------------------------------------------------------------------
// The gateway

struct Gateway {
    child: common::Process,
    endpoint: String,
    mqtt_port: u16,
    _dir: tempfile::TempDir,
}

fn kinedge_cli(config: &Path, args: &[&str]) -> String {
    let out = Command::new(common::kinedge_bin())
        .args(args)
        .arg("--config")
        .arg(config)
        .stderr(Stdio::null())
        .output()
        .expect("run kinedge");
    assert!(out.status.success(), "kinedge {args:?} failed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A gateway on a temp data dir; `devices` are (id, subscribe filter) added before it starts,
/// their secrets returned.
fn start_gateway(mqtt: bool, devices: &[(&str, &str)]) -> (Gateway, Vec<String>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (port, mqtt_port) = (common::free_port(), common::free_port());
    let config = dir.path().join("kinedge.toml");
    let mqtt_section = if mqtt {
        format!(
            "[mqtt]\nlisten = \"127.0.0.1:{mqtt_port}\"\n[devices]\ndir = \"{}\"\n",
            dir.path().join("devices").display()
        )
    } else {
        "[mqtt]\nenabled = false\n".to_string()
    };
    std::fs::write(
        &config,
        format!(
            "[storage]\ndata_dir = \"{}\"\nmin_free_disk = \"64MiB\"\n[api]\nlisten = \"127.0.0.1:{port}\"\n{mqtt_section}[log]\nlevel = \"warn\"\n",
            dir.path().join("data").display()
        ),
    )
    .expect("write config");
    let secrets = devices
        .iter()
        .map(|(id, filter)| kinedge_cli(&config, &["devices", "add", id, "--subscribe", filter]))
        .collect();
    let child = Command::new(common::kinedge_bin())
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .spawn()
        .expect("start kinedge");
    (
        Gateway {
            child: common::Process(child),
            endpoint: format!("http://127.0.0.1:{port}"),
            mqtt_port,
            _dir: dir,
        },
        secrets,
    )
}

impl Gateway {
    fn rss_kb(&self) -> u64 {
        common::proc_field(self.child.id(), "status", "VmRSS:")
    }
}

const AUTHORIZATION: &str = "AWS4-HMAC-SHA256 Credential=AKIDBENCH/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=00";

async fn call(
    http: &reqwest::Client,
    endpoint: &str,
    op: &str,
    body: Vec<u8>,
) -> Result<Value, String> {
    let response = http
        .post(format!("{endpoint}/"))
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", format!("Kinesis_20131202.{op}"))
        .header("authorization", AUTHORIZATION)
        .header("x-amz-date", "20260101T000000Z")
        .body(body)
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
        match call(http, endpoint, "ListStreams", b"{}".to_vec()).await {
            Ok(_) => return,
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{endpoint} did not become ready: {last}");
}

async fn create_stream(http: &reqwest::Client, endpoint: &str, name: &str, shards: u32) {
    let body = json!({"StreamName": name, "ShardCount": shards}).to_string();
    call(http, endpoint, "CreateStream", body.into_bytes())
        .await
        .expect("create stream");
    loop {
        let body = json!({"StreamName": name}).to_string();
        let d = call(http, endpoint, "DescribeStreamSummary", body.into_bytes())
            .await
            .expect("describe");
        if d["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn put_body(rows: impl Iterator<Item = (String, String)>) -> Vec<u8> {
    let records: Vec<Value> = rows
        .map(|(key, data)| json!({"PartitionKey": key, "Data": STANDARD.encode(data)}))
        .collect();
    serde_json::to_vec(&json!({"StreamName": "telemetry", "Records": records})).expect("json")
}

/// PutRecords until every row of 0..rows is acknowledged; batch b goes to client b % clients.
async fn fill(http: &reqwest::Client, endpoint: &str, rows: u64, clients: usize) -> f64 {
    let started = Instant::now();
    let batches = rows.div_ceil(BATCH as u64);
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, endpoint, next) = (http.clone(), endpoint.to_string(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= batches {
                    return;
                }
                let range = b * BATCH as u64..((b + 1) * BATCH as u64).min(rows);
                let body = put_body(range.map(|i| (device(i), row(i))));
                loop {
                    match call(&http, &endpoint, "PutRecords", body.clone()).await {
                        Ok(v) if v["FailedRecordCount"].as_u64() == Some(0) => break,
                        Ok(v) => panic!("PutRecords failed records: {v}"),
                        Err(e) => {
                            eprintln!("PutRecords retried: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("fill task");
    }
    rows as f64 / started.elapsed().as_secs_f64()
}

async fn app_status(http: &reqwest::Client, endpoint: &str, name: &str) -> Value {
    http.get(format!("{endpoint}/analytics/{name}"))
        .send()
        .await
        .expect("GET /analytics/NAME")
        .json()
        .await
        .expect("status JSON")
}

async fn post_app(http: &reqwest::Client, endpoint: &str, name: &str, sql: &str) {
    let response = http
        .post(format!("{endpoint}/analytics"))
        .json(&json!({"name": name, "sql": sql}))
        .send()
        .await
        .expect("POST /analytics");
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert!(status.is_success(), "POST /analytics: {status}: {text}");
}

struct KinedgeRun {
    rows: u64,
    fill_rps: f64,
    seconds: f64,
    rss_before_mb: f64,
    rss_extra_mb: f64,
    records_out: u64,
    late: u64,
    errors: u64,
}

async fn kinedge_run(rows: u64, shards: u32, clients: usize) -> KinedgeRun {
    let (gateway, _) = start_gateway(false, &[]);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    let endpoint = gateway.endpoint.clone();
    wait_ready(&http, &endpoint).await;
    create_stream(&http, &endpoint, "telemetry", shards).await;
    let fill_rps = fill(&http, &endpoint, rows, clients).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = gateway.rss_kb();
    let mut peak = rss_before;
    let started = Instant::now();
    post_app(&http, &endpoint, "bench", APP_SQL).await;
    let deadline = started + Duration::from_secs(240);
    let status = loop {
        peak = peak.max(gateway.rss_kb());
        let s = app_status(&http, &endpoint, "bench").await;
        if s["records_in"].as_u64() == Some(rows) {
            break s;
        }
        assert!(
            s["state"] == "running" && Instant::now() < deadline,
            "application did not read {rows} rows: {s}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let seconds = started.elapsed().as_secs_f64();
    peak = peak.max(gateway.rss_kb());
    // records_out is committed with the input positions; settle for a moment to be sure
    tokio::time::sleep(Duration::from_millis(300)).await;
    let settled = app_status(&http, &endpoint, "bench").await;
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0);
    if n(&settled, "records_out") != n(&status, "records_out") {
        eprintln!(
            "records_out moved after records_in reached {rows}: {} -> {}",
            n(&status, "records_out"),
            n(&settled, "records_out")
        );
    }
    KinedgeRun {
        rows,
        fill_rps,
        seconds,
        rss_before_mb: rss_before as f64 / 1024.0,
        rss_extra_mb: peak.saturating_sub(rss_before) as f64 / 1024.0,
        records_out: n(&settled, "records_out"),
        late: n(&settled, "late_records"),
        errors: n(&settled, "error_records"),
    }
}

// ---------------------------------------------------------------------------------------
// PyFlink

fn flink_python() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv-flink/bin/python");
    python.exists().then_some(python)
}

/// VmRSS (kB) of `pid` and every process below it, and of the largest of them (the JVM).
fn tree_rss_kb(pid: u32) -> (u64, u64) {
    let mut parent = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parent.insert(p, ppid);
            }
        }
    }
    parent
        .keys()
        .filter(|&&p| {
            let mut q = p;
            for _ in 0..64 {
                if q == pid {
                    return true;
                }
                match parent.get(&q) {
                    Some(&up) if up != 0 => q = up,
                    _ => return false,
                }
            }
            false
        })
        .map(|&p| common::proc_field(p, "status", "VmRSS:"))
        .fold((0, 0), |(sum, max), r| (sum + r, max.max(r)))
}

struct FlinkRun {
    rows: u64,
    seconds: f64,
    job_seconds: f64,
    peak_rss_mb: f64,
    peak_jvm_mb: f64,
}

fn flink_run(python: &Path, file: &Path, rows: u64) -> Option<FlinkRun> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/analytics_flink.py");
    let started = Instant::now();
    let mut child = Command::new(python)
        .arg(&script)
        .arg(file)
        .arg("2")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let pid = child.id();
    let (mut peak, mut peak_jvm) = (0, 0);
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        let (tree, largest) = tree_rss_kb(pid);
        peak = peak.max(tree);
        peak_jvm = peak_jvm.max(largest);
        std::thread::sleep(Duration::from_millis(50));
    };
    let seconds = started.elapsed().as_secs_f64();
    let out = child.wait_with_output().ok()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !status.success() {
        eprintln!(
            "PyFlink failed ({status}):\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let job_seconds = stdout
        .lines()
        .find_map(|l| l.strip_prefix("job_seconds="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    Some(FlinkRun {
        rows,
        seconds,
        job_seconds,
        peak_rss_mb: peak as f64 / 1024.0,
        peak_jvm_mb: peak_jvm as f64 / 1024.0,
    })
}

fn write_rows(path: &Path, rows: u64) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("rows file"));
    for i in 0..rows {
        writeln!(out, "{}", row(i)).expect("write rows");
    }
    out.flush().expect("flush rows");
}

// ---------------------------------------------------------------------------------------
// Latency

async fn latency() {
    let (gateway, secrets) = start_gateway(true, &[("alertsub", "alerts/#")]);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    let endpoint = gateway.endpoint.clone();
    wait_ready(&http, &endpoint).await;
    create_stream(&http, &endpoint, "telemetry", 1).await;
    post_app(&http, &endpoint, "alerts", ALERT_SQL).await;

    let mut options = rumqttc::MqttOptions::new("alertsub", "127.0.0.1", gateway.mqtt_port);
    options.set_credentials("alertsub", secrets[0].clone());
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = rumqttc::AsyncClient::new(options, 1000);
    client
        .subscribe("alerts/#", rumqttc::QoS::AtMostOnce)
        .await
        .expect("subscribe");
    // arrival time per alert id (the id is in the device name: alert-ID)
    let arrivals: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let (sub_ready_tx, sub_ready_rx) = tokio::sync::oneshot::channel();
    let subscriber = {
        let arrivals = arrivals.clone();
        tokio::spawn(async move {
            let mut ready = Some(sub_ready_tx);
            loop {
                match events.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(());
                        }
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        let now = Instant::now();
                        if let Some(id) = p
                            .topic
                            .strip_prefix("alerts/alert-")
                            .and_then(|s| s.parse().ok())
                        {
                            arrivals.lock().unwrap().insert(id, now);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("subscriber: {e}");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        })
    };
    tokio::time::timeout(Duration::from_secs(10), sub_ready_rx)
        .await
        .expect("SUBACK")
        .ok();
    // let the application reach its input
    tokio::time::sleep(Duration::from_millis(500)).await;

    const RATE: u64 = 5_000;
    const SECONDS: u64 = 20;
    const SMALL: u64 = 50;
    let sends: Arc<Mutex<HashMap<u64, (Instant, Instant)>>> = Arc::default();
    let mut tick = tokio::time::interval(Duration::from_millis(1000 * SMALL / RATE));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    let t0 = Instant::now();
    for b in 0..RATE * SECONDS / SMALL {
        tick.tick().await;
        let (http, endpoint, sends) = (http.clone(), endpoint.clone(), sends.clone());
        tasks.push(tokio::spawn(async move {
            let now_ms = BASE_MS + t0.elapsed().as_millis() as u64;
            let rows = (0..SMALL).map(|j| {
                let i = b * SMALL + j;
                if j == SMALL / 2 {
                    // the alert: every 50th record, its id in the device, its send time inside
                    let sent_us = t0.elapsed().as_micros();
                    let data = format!(
                        "{{\"device\":\"alert-{b}\",\"temp\":85.5,\"ts\":\"{}\",\"sent_us\":{sent_us}}}",
                        format_ts(now_ms)
                    );
                    (format!("alert-{b}"), data)
                } else {
                    let data = format!(
                        "{{\"device\":\"{}\",\"temp\":21.37,\"ts\":\"{}\"}}",
                        device(i),
                        format_ts(now_ms)
                    );
                    (device(i), data)
                }
            });
            let body = put_body(rows);
            let sent = Instant::now();
            match call(&http, &endpoint, "PutRecords", body).await {
                Ok(v) if v["FailedRecordCount"].as_u64() == Some(0) => {
                    sends.lock().unwrap().insert(b, (sent, Instant::now()));
                }
                Ok(v) => eprintln!("PutRecords failed records: {v}"),
                Err(e) => eprintln!("PutRecords: {e}"),
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let produce_seconds = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    subscriber.abort();
    let status = app_status(&http, &endpoint, "alerts").await;
    let sends = sends.lock().unwrap();
    let arrivals = arrivals.lock().unwrap();
    let mut from_ack = Vec::new();
    let mut from_send = Vec::new();
    let mut early = 0;
    for (id, (sent, acked)) in sends.iter() {
        if let Some(arrived) = arrivals.get(id) {
            from_send.push(arrived.duration_since(*sent).as_secs_f64() * 1000.0);
            match arrived.checked_duration_since(*acked) {
                Some(d) => from_ack.push(d.as_secs_f64() * 1000.0),
                None => {
                    early += 1;
                    from_ack.push(0.0);
                }
            }
        }
    }
    let pct = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(|a, b| a.total_cmp(b));
        if v.is_empty() {
            f64::NAN
        } else {
            v[((v.len() as f64 - 1.0) * p).round() as usize]
        }
    };
    println!(
        "\nThreshold alert to MQTT: {RATE} records/s for {SECONDS} s in PutRecords of {SMALL} \
         (sent in {produce_seconds:.1} s), 1 shard, one alert per batch, QoS 0 subscriber"
    );
    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>9}",
        "alerts sent/acked/received", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    let counts = format!(
        "{}/{}/{}",
        RATE * SECONDS / SMALL,
        sends.len(),
        from_ack.len()
    );
    for (label, v) in [
        ("from ack", &mut from_ack),
        ("from request start", &mut from_send),
    ] {
        println!(
            "{:<28} {:>9.2} {:>9.2} {:>9.2} {:>9.2}   {label}",
            counts,
            pct(v, 0.5),
            pct(v, 0.9),
            pct(v, 0.99),
            pct(v, 1.0)
        );
    }
    println!(
        "PUBLISH before the PutRecords answer: {early}; application records_in {} records_out {}",
        status["records_in"], status["records_out"]
    );
}

// ---------------------------------------------------------------------------------------

fn main() {
    let o = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if o.throughput {
        throughput(&o, &runtime);
    }
    if o.latency {
        runtime.block_on(latency());
    }
}

fn throughput(o: &Options, runtime: &tokio::runtime::Runtime) {
    let large = o.rows;
    let small = (o.rows / 4).max(1);
    let mut kinedge: Vec<(u32, KinedgeRun, KinedgeRun)> = Vec::new();
    for &shards in &o.shards {
        let a = runtime.block_on(kinedge_run(small, shards, o.clients));
        eprintln!(
            "kinedge {shards} shard(s) {small} rows: {:.2} s (fill {:.0} rows/s)",
            a.seconds, a.fill_rps
        );
        let b = runtime.block_on(kinedge_run(large, shards, o.clients));
        eprintln!(
            "kinedge {shards} shard(s) {large} rows: {:.2} s (fill {:.0} rows/s)",
            b.seconds, b.fill_rps
        );
        kinedge.push((shards, a, b));
    }
    let mut flink: Option<(FlinkRun, FlinkRun)> = None;
    let mut peer_note = String::new();
    if o.skip_peer {
        peer_note = "PyFlink skipped (--skip-peer)".into();
    } else if let Some(python) = flink_python() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (fa, fb) = (dir.path().join("small.json"), dir.path().join("large.json"));
        write_rows(&fa, small);
        write_rows(&fb, large);
        let a = flink_run(&python, &fa, small);
        let b = a.as_ref().and_then(|_| flink_run(&python, &fb, large));
        match (a, b) {
            (Some(a), Some(b)) => flink = Some((a, b)),
            _ => peer_note = "PyFlink failed (see above)".into(),
        }
    } else {
        peer_note = "PyFlink skipped: .venv-flink missing (scripts/install-deps --test)".into();
    }

    let avg_len = (0..1000).map(|i| row(i * 997).len()).sum::<usize>() as f64 / 1000.0;
    println!(
        "\nTumbling 10 s AVG/MAX/COUNT per device, {DEVICES} devices, {avg_len:.0}-byte JSON rows, \
         {small} and {large} rows; marginal rate = ({large} - {small}) / (t_large - t_small)"
    );
    println!(
        "{:<22} {:>9} {:>9} {:>12} {:>11} {:>9} {:>11} {:>12} {:>10}",
        "engine",
        "t small s",
        "t large s",
        "marginal/s",
        "end-to-end/s",
        "RSS MB",
        "out records",
        "fired groups",
        "fill rows/s"
    );
    let mut best_kinedge: Option<(f64, f64)> = None;
    for (shards, a, b) in &kinedge {
        let marginal = (b.rows - a.rows) as f64 / (b.seconds - a.seconds);
        let extra = a.rss_extra_mb.max(b.rss_extra_mb);
        println!(
            "{:<22} {:>9.2} {:>9.2} {:>12.0} {:>11.0} {:>9} {:>11} {:>12} {:>10.0}",
            format!("kinedge, {shards} shard(s)"),
            a.seconds,
            b.seconds,
            marginal,
            b.rows as f64 / b.seconds,
            format!("+{extra:.1}"),
            format!("{}/{}", a.records_out, b.records_out),
            format!("{}/{}", fired_groups(a.rows), fired_groups(b.rows)),
            b.fill_rps
        );
        if a.late + b.late + a.errors + b.errors > 0 {
            println!(
                "  late rows {}/{}, error rows {}/{}",
                a.late, b.late, a.errors, b.errors
            );
        }
        println!(
            "  RSS before the POST {:.1}/{:.1} MB, extra {:.1}/{:.1} MB",
            a.rss_before_mb, b.rss_before_mb, a.rss_extra_mb, b.rss_extra_mb
        );
        if best_kinedge.is_none_or(|(m, _)| marginal > m) {
            best_kinedge = Some((marginal, extra));
        }
    }
    if let Some((a, b)) = &flink {
        let marginal = (b.rows - a.rows) as f64 / (b.seconds - a.seconds);
        println!(
            "{:<22} {:>9.2} {:>9.2} {:>12.0} {:>11.0} {:>9.1} {:>11} {:>12} {:>10}",
            "PyFlink, parallelism 2",
            a.seconds,
            b.seconds,
            marginal,
            b.rows as f64 / b.seconds,
            a.peak_rss_mb.max(b.peak_rss_mb),
            "blackhole",
            "-",
            "file"
        );
        println!(
            "  RSS peak of the process tree (python + java) {:.1}/{:.1} MB, of its largest process (the JVM) {:.1}/{:.1} MB",
            a.peak_rss_mb, b.peak_rss_mb, a.peak_jvm_mb, b.peak_jvm_mb
        );
        println!(
            "  job only (execute_sql .. wait): {:.2}/{:.2} s, marginal {:.0} rows/s",
            a.job_seconds,
            b.job_seconds,
            (b.rows - a.rows) as f64 / (b.job_seconds - a.job_seconds)
        );
        for (shards, ka, kb) in &kinedge {
            let km = (kb.rows - ka.rows) as f64 / (kb.seconds - ka.seconds);
            let extra = ka.rss_extra_mb.max(kb.rss_extra_mb);
            let flink_rss = a.peak_rss_mb.max(b.peak_rss_mb);
            println!(
                "kinedge ({shards} shard(s)) / PyFlink: rate x{:.2}, memory {:.1} MB extra vs {:.1} MB = 1/{:.0}",
                km / marginal,
                extra,
                flink_rss,
                flink_rss / extra.max(0.1)
            );
        }
    } else {
        println!("{peer_note}");
    }
}
