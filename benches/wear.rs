//! SD-card wear at the rate sensors really publish: 100 devices, each sending a 100-byte
//! message every 100 ms (1,000 messages/s), against the real `kinedge` binary, first as MQTT
//! QoS 1 publishes, then as Kinesis PutRecord calls; and the MQTT load against mosquitto with
//! `persistence true` in the same run.
//!
//! `cargo bench --bench wear` (options after `--`: `--seconds N` (default 30),
//! `--commit-interval-ms N` (default: kinedge's own default), `--skip-peer`).
//!
//! Per load it reports acknowledged messages/s, fsyncs/s and bytes written per payload byte,
//! and PUBACK (or PutRecord response) latency. kinedge's fsyncs and bytes are its own
//! counters of what the database file was asked to do (`kinedge_storage_syncs_total`,
//! `kinedge_storage_bytes_written_total`); "kernel" is the process's `write_bytes` from
//! /proc/PID/io, which also counts anything else the process writes. mosquitto with
//! `persistence true` acknowledges from memory and writes its database only at autosave
//! (every 30 min by default) and on exit, so its writes in the window are what it would write
//! between autosaves; a message acknowledged by it can still be lost in a power cut.

mod common;

use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use serde_json::{json, Value};

const DEVICES: usize = 100;
const PERIOD: Duration = Duration::from_millis(100);
const PAYLOAD_BYTES: usize = 100;
/// Devices logging in at once: below `mqtt.max_pending_per_address` (32), as all of them
/// connect from 127.0.0.1.
const CONNECT_CONCURRENCY: usize = 16;

struct Options {
    seconds: u64,
    commit_interval_ms: Option<u64>,
    skip_peer: bool,
}

fn options() -> Options {
    let mut o = Options {
        seconds: 30,
        commit_interval_ms: None,
        skip_peer: false,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let value = args.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match args[i].as_str() {
            "--seconds" => {
                o.seconds = value.unwrap_or(o.seconds);
                i += 1;
            }
            "--commit-interval-ms" => {
                o.commit_interval_ms = value;
                i += 1;
            }
            "--skip-peer" => o.skip_peer = true,
            _ => {} // cargo passes --bench
        }
        i += 1;
    }
    o
}

struct Server {
    name: &'static str,
    child: common::Process,
    mqtt_port: u16,
    api: Option<String>,
    /// (client id, password) per device; empty for mosquitto (anonymous).
    credentials: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

fn wait_listening(name: &str, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{name} did not listen on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// kinedge with `DEVICES` sensors that publish on `devices/<id>/data`, routed to one stream
/// (one shard, as a stream declared without `shards` has).
fn start_kinedge(commit_interval_ms: Option<u64>) -> Server {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let (mqtt_port, api_port) = (common::free_port(), common::free_port());
    let config = dir.path().join("kinedge.toml");
    let devices_dir = dir.path().join("devices");
    let interval =
        commit_interval_ms.map_or(String::new(), |ms| format!("commit_interval_ms = {ms}\n"));
    std::fs::write(
        &config,
        format!(
            "[storage]\ndata_dir = \"{}\"\nmin_free_disk = \"64MiB\"\n{interval}\
             [api]\nlisten = \"127.0.0.1:{api_port}\"\n\
             [mqtt]\nlisten = \"127.0.0.1:{mqtt_port}\"\n\
             [devices]\ndir = \"{}\"\n\
             [[streams]]\nname = \"telemetry\"\n\
             [[routes]]\ntopic = \"devices/+/data\"\nstream = \"telemetry\"\npartition_key = \"{{topic[1]}}\"\n\
             [log]\nlevel = \"warn\"\n",
            dir.path().join("data").display(),
            devices_dir.display(),
        ),
    )
    .expect("write config");
    // One device through the CLI (Argon2 hash); the others share its secret, which is
    // quicker than hashing 100 times.
    let out = Command::new(env!("CARGO_BIN_EXE_kinedge"))
        .args(["devices", "add", "sensor0", "--config"])
        .arg(&config)
        .stderr(Stdio::null())
        .output()
        .expect("run kinedge devices add");
    assert!(out.status.success(), "kinedge devices add failed");
    let secret = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let file = std::fs::read_to_string(devices_dir.join("sensor0.toml")).expect("sensor0.toml");
    let mut credentials = vec![("sensor0".to_string(), secret.clone())];
    for n in 1..DEVICES {
        let id = format!("sensor{n}");
        let text: String = file
            .lines()
            .map(|l| {
                if l.starts_with("id ") || l.starts_with("id=") {
                    format!("id = \"{id}\"\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        std::fs::write(devices_dir.join(format!("{id}.toml")), text).expect("device file");
        credentials.push((id, secret.clone()));
    }
    let child = Command::new(env!("CARGO_BIN_EXE_kinedge"))
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .spawn()
        .expect("start kinedge");
    let server = Server {
        name: "kinedge",
        child: common::Process(child),
        mqtt_port,
        api: Some(format!("http://127.0.0.1:{api_port}")),
        credentials,
        _dir: dir,
    };
    wait_listening(server.name, mqtt_port);
    server
}

fn start_mosquitto(bin: &Path) -> Server {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let mqtt_port = common::free_port();
    let config = dir.path().join("mosquitto.conf");
    std::fs::write(
        &config,
        format!(
            "listener {mqtt_port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
             persistence_location {}/\nlog_dest none\n",
            dir.path().display()
        ),
    )
    .expect("write mosquitto.conf");
    let child = Command::new(bin)
        .arg("-c")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start mosquitto");
    let server = Server {
        name: "mosquitto",
        child: common::Process(child),
        mqtt_port,
        api: None,
        credentials: Vec::new(),
        _dir: dir,
    };
    wait_listening(server.name, mqtt_port);
    server
}

/// What the server's storage did so far: (fsyncs, bytes into the database file) from
/// kinedge's `/status`, and the kernel's `write_bytes` for the process.
#[derive(Clone, Copy, Default)]
struct Written {
    syncs: Option<u64>,
    file_bytes: Option<u64>,
    kernel_bytes: u64,
}

async fn written(http: &reqwest::Client, server: &Server) -> Written {
    let kernel_bytes = common::proc_field(server.child.id(), "io", "write_bytes:");
    let Some(api) = &server.api else {
        return Written {
            kernel_bytes,
            ..Written::default()
        };
    };
    let status: Value = http
        .get(format!("{api}/status"))
        .send()
        .await
        .expect("GET /status")
        .json()
        .await
        .expect("/status is JSON");
    let writer = &status["writer"];
    Written {
        syncs: writer["syncs"].as_u64(),
        file_bytes: writer["bytes_written"].as_u64(),
        kernel_bytes,
    }
}

struct Row {
    server: &'static str,
    load: &'static str,
    acked_per_s: f64,
    syncs_per_s: Option<f64>,
    file_per_payload: Option<f64>,
    kernel_per_payload: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// MQTT logins: at most `CONNECT_CONCURRENCY` at once, and how many devices are in.
struct Logins {
    permits: tokio::sync::Semaphore,
    connected: AtomicUsize,
}

/// One MQTT device: a publish every `PERIOD` (starting after `offset`); returns the publish ->
/// PUBACK latencies (µs) of the publishes acknowledged while `measuring`.
async fn mqtt_device(
    port: u16,
    credentials: Option<(String, String)>,
    index: usize,
    offset: Duration,
    logins: Arc<Logins>,
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> Vec<u32> {
    let id = credentials
        .as_ref()
        .map_or_else(|| format!("sensor{index}"), |(id, _)| id.clone());
    let mut options = MqttOptions::new(id.clone(), "127.0.0.1", port);
    options
        .set_keep_alive(Duration::from_secs(60))
        .set_clean_session(true);
    if let Some((user, password)) = credentials {
        options.set_credentials(user, password);
    }
    let (client, mut eventloop): (AsyncClient, EventLoop) = AsyncClient::new(options, 16);
    eventloop.network_options.set_connection_timeout(60);
    let login = logins.permits.acquire().await.expect("semaphore");
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                logins.connected.fetch_add(1, Ordering::Relaxed);
                drop(login);
                break;
            }
            Ok(_) => {}
            Err(e) => panic!("device {id} could not connect: {e}"),
        }
    }
    let topic = format!("devices/{id}/data");
    let publisher = tokio::spawn(async move {
        tokio::time::sleep(offset).await;
        let mut tick = tokio::time::interval(PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let payload = vec![b'x'; PAYLOAD_BYTES];
        loop {
            tick.tick().await;
            if client
                .publish(topic.as_str(), QoS::AtLeastOnce, false, payload.clone())
                .await
                .is_err()
            {
                break;
            }
        }
    });
    let mut sent: Vec<Option<(Instant, bool)>> = vec![None; usize::from(u16::MAX) + 1];
    let mut latencies = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let event = match tokio::time::timeout(Duration::from_millis(500), eventloop.poll()).await {
            Ok(Ok(event)) => event,
            Ok(Err(e)) => panic!("device {id} lost its connection: {e}"),
            Err(_) => continue,
        };
        match event {
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                sent[usize::from(pkid)] = Some((Instant::now(), measuring.load(Ordering::Relaxed)))
            }
            Event::Incoming(Packet::PubAck(ack)) => {
                if let Some((at, true)) = sent[usize::from(ack.pkid)].take() {
                    latencies.push(at.elapsed().as_micros().min(u32::MAX as u128) as u32);
                }
            }
            _ => {}
        }
    }
    publisher.abort();
    latencies
}

/// One PutRecord client: a call every `PERIOD`; returns the latencies (µs) of the calls
/// started while `measuring`.
async fn put_record_device(
    http: reqwest::Client,
    api: String,
    index: usize,
    offset: Duration,
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> Vec<u32> {
    let body = serde_json::to_vec(&json!({
        "StreamName": "telemetry",
        "PartitionKey": format!("sensor{index}"),
        "Data": STANDARD.encode(vec![b'x'; PAYLOAD_BYTES]),
    }))
    .expect("JSON");
    tokio::time::sleep(offset).await;
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut latencies = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let counted = measuring.load(Ordering::Relaxed);
        let started = Instant::now();
        let response = http
            .post(format!("{api}/"))
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", "Kinesis_20131202.PutRecord")
            .body(body.clone())
            .send()
            .await
            .expect("PutRecord");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "PutRecord: HTTP {status}: {text}");
        if counted {
            latencies.push(started.elapsed().as_micros().min(u32::MAX as u128) as u32);
        }
    }
    latencies
}

#[derive(Clone, Copy)]
enum Load {
    Mqtt,
    PutRecord,
}

async fn measure(server: &Server, load: Load, seconds: u64) -> Row {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(DEVICES)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client");
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    // MQTT devices count themselves once logged in (each login checks an Argon2 hash, which
    // takes a while for 100 devices on a small board); HTTP clients need no login.
    let logins = Arc::new(Logins {
        permits: tokio::sync::Semaphore::new(CONNECT_CONCURRENCY),
        connected: AtomicUsize::new(match load {
            Load::Mqtt => 0,
            Load::PutRecord => DEVICES,
        }),
    });
    let mut tasks = Vec::new();
    for n in 0..DEVICES {
        // Spread the devices evenly over the period, as independent sensors are.
        let offset = PERIOD * n as u32 / DEVICES as u32;
        let (measuring, stop) = (measuring.clone(), stop.clone());
        tasks.push(match load {
            Load::Mqtt => tokio::spawn(mqtt_device(
                server.mqtt_port,
                server.credentials.get(n).cloned(),
                n,
                offset,
                logins.clone(),
                measuring,
                stop,
            )),
            Load::PutRecord => tokio::spawn(put_record_device(
                http.clone(),
                server.api.clone().expect("kinedge has an API"),
                n,
                offset,
                measuring,
                stop,
            )),
        });
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while logins.connected.load(Ordering::Relaxed) < DEVICES {
        assert!(Instant::now() < deadline, "the devices did not all log in");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await; // warm up
    let before = written(&http, server).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let after = written(&http, server).await;
    // Let the last counted messages be acknowledged before the devices stop.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("device task"));
    }
    latencies.sort_unstable();
    let quantile = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(f64::NAN, |&us| us as f64 / 1000.0)
    };
    let acked = latencies.len() as f64;
    let payload = (acked * PAYLOAD_BYTES as f64).max(1.0);
    let delta = |a: Option<u64>, b: Option<u64>| Some(b?.saturating_sub(a?) as f64);
    Row {
        server: server.name,
        load: match load {
            Load::Mqtt => "MQTT QoS1",
            Load::PutRecord => "PutRecord",
        },
        acked_per_s: acked / elapsed,
        syncs_per_s: delta(before.syncs, after.syncs).map(|s| s / elapsed),
        file_per_payload: delta(before.file_bytes, after.file_bytes).map(|b| b / payload),
        kernel_per_payload: after.kernel_bytes.saturating_sub(before.kernel_bytes) as f64 / payload,
        p50_ms: quantile(0.50),
        p99_ms: quantile(0.99),
    }
}

fn main() {
    let o = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut rows = Vec::new();
    {
        let server = start_kinedge(o.commit_interval_ms);
        rows.push(runtime.block_on(measure(&server, Load::Mqtt, o.seconds)));
        rows.push(runtime.block_on(measure(&server, Load::PutRecord, o.seconds)));
    }
    match (o.skip_peer, common::mosquitto_bin()) {
        (true, _) => {}
        (false, Some(bin)) => {
            let server = start_mosquitto(&bin);
            rows.push(runtime.block_on(measure(&server, Load::Mqtt, o.seconds)));
        }
        (false, None) => {
            eprintln!("mosquitto not found (/usr/sbin/mosquitto or $MOSQUITTO_BIN); peer skipped")
        }
    }
    runtime.shutdown_background();

    println!(
        "\n{DEVICES} devices x one {PAYLOAD_BYTES}-byte message every {} ms, {} s{}",
        PERIOD.as_millis(),
        o.seconds,
        o.commit_interval_ms
            .map_or(String::new(), |ms| format!(", commit_interval_ms = {ms}")),
    );
    println!(
        "{:<10} {:<10} {:>8} {:>9} {:>12} {:>12} {:>8} {:>8} {:>12}",
        "server",
        "load",
        "acked/s",
        "fsyncs/s",
        "file B/B",
        "kernel B/B",
        "p50 ms",
        "p99 ms",
        "GB/day"
    );
    let show =
        |v: Option<f64>, digits: usize| v.map_or("-".to_string(), |v| format!("{v:.digits$}"));
    for r in &rows {
        let per_payload = r.file_per_payload.unwrap_or(r.kernel_per_payload);
        let per_day = per_payload * r.acked_per_s * PAYLOAD_BYTES as f64 * 86_400.0 / 1e9;
        println!(
            "{:<10} {:<10} {:>8.0} {:>9} {:>12} {:>12.2} {:>8.1} {:>8.1} {:>12.2}",
            r.server,
            r.load,
            r.acked_per_s,
            show(r.syncs_per_s, 1),
            show(r.file_per_payload, 2),
            r.kernel_per_payload,
            r.p50_ms,
            r.p99_ms,
            per_day,
        );
    }
    println!(
        "file B/B: bytes kinedge handed its database file per payload byte; kernel B/B: the \
         process's write_bytes per payload byte; GB/day: at this rate, from file B/B (kernel \
         B/B for mosquitto, which writes only at autosave)."
    );
}
