//! MQTT benchmark: QoS1 publishes against the real `kinedge` binary (routed to a stream, so
//! each PUBACK follows a durable commit) and, in the same run, the same load against
//! mosquitto (in memory, `persistence false`); then kinedge's resident memory with idle
//! authenticated clients.
//!
//! `cargo bench --bench mqtt` (options after `--`: `--seconds N`, `--idle N`, `--skip-peer`).
//! 10 clients, each keeping up to 100 QoS1 publishes of 100 bytes in flight, measured for N s
//! (default 10) after a 2 s warm-up. Latency is publish -> PUBACK as seen by the client's
//! event loop. mosquitto (`/usr/sbin/mosquitto` or `$MOSQUITTO_BIN`) is skipped when absent.

mod common;

use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};

const CLIENTS: usize = 10;
const INFLIGHT: u16 = 100;
const PAYLOAD_BYTES: usize = 100;
const CONNECT_CONCURRENCY: usize = 50;

struct Options {
    seconds: u64,
    idle: usize,
    skip_peer: bool,
}

fn options() -> Options {
    let mut o = Options {
        seconds: 10,
        idle: 1000,
        skip_peer: false,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let value = args.get(i + 1).and_then(|v| v.parse().ok());
        match args[i].as_str() {
            "--seconds" => {
                o.seconds = value.unwrap_or(o.seconds);
                i += 1;
            }
            "--idle" => {
                o.idle = value.map_or(o.idle, |v| v as usize);
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
    api_port: Option<u16>,
    /// (username, password) per client index; empty for anonymous.
    credentials: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

impl Server {
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.mqtt_port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "{} did not listen on port {}",
                self.name,
                self.mqtt_port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn rss_mb(&self) -> f64 {
        common::proc_field(self.child.id(), "status", "VmRSS:") as f64 / 1024.0
    }
}

fn kinedge(config: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kinedge"))
        .args(args)
        .arg("--config")
        .arg(config)
        .stderr(Stdio::null())
        .output()
        .expect("run kinedge");
    assert!(out.status.success(), "kinedge {args:?} failed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// kinedge with `devices` bench devices (may publish to `bench/#`) and `idle` devices that
/// share one secret (files written here: `devices add` hashes with Argon2 each time).
fn start_kinedge(devices: usize, idle: usize) -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mqtt_port, api_port) = (common::free_port(), common::free_port());
    let config = dir.path().join("kinedge.toml");
    let devices_dir = dir.path().join("devices");
    std::fs::write(
        &config,
        format!(
            "[storage]\ndata_dir = \"{}\"\nmin_free_disk = \"64MiB\"\n\
             [api]\nlisten = \"127.0.0.1:{api_port}\"\n\
             [mqtt]\nlisten = \"127.0.0.1:{mqtt_port}\"\nmax_connections = {}\n\
             [devices]\ndir = \"{}\"\n\
             [[streams]]\nname = \"telemetry\"\nshards = 4\n\
             [[routes]]\ntopic = \"bench/+/data\"\nstream = \"telemetry\"\npartition_key = \"{{topic[1]}}\"\n\
             [log]\nlevel = \"warn\"\n",
            dir.path().join("data").display(),
            (devices + idle).max(1000) + 10,
            devices_dir.display(),
        ),
    )
    .expect("write config");
    let mut credentials = Vec::new();
    for n in 0..devices {
        let id = format!("bench{n}");
        let secret = kinedge(&config, &["devices", "add", &id, "--publish", "bench/#"]);
        credentials.push((id, secret));
    }
    if idle > 0 {
        let secret = kinedge(&config, &["devices", "add", "idle0"]);
        let file = std::fs::read_to_string(devices_dir.join("idle0.toml")).expect("idle0.toml");
        let hash_line = file
            .lines()
            .find(|l| l.starts_with("password_hash"))
            .expect("password_hash in idle0.toml");
        credentials.push(("idle0".into(), secret.clone()));
        for n in 1..idle {
            let id = format!("idle{n}");
            std::fs::write(
                devices_dir.join(format!("{id}.toml")),
                format!("id = \"{id}\"\n{hash_line}\n"),
            )
            .expect("write device file");
            credentials.push((id, secret.clone()));
        }
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
        api_port: Some(api_port),
        credentials,
        _dir: dir,
    };
    server.wait_ready();
    server
}

fn start_mosquitto(bin: &Path) -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let mqtt_port = common::free_port();
    let config = dir.path().join("mosquitto.conf");
    std::fs::write(
        &config,
        format!(
            "listener {mqtt_port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
             max_inflight_messages 100\nmax_queued_messages 1000\nlog_dest none\n"
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
        api_port: None,
        credentials: Vec::new(),
        _dir: dir,
    };
    server.wait_ready();
    server
}

/// What a client needs to connect to `server` as its `index`-th device (anonymous for
/// mosquitto): (port, client id, optional password).
fn identity(server: &Server, index: usize) -> (u16, String, Option<String>) {
    match server.credentials.get(index) {
        Some((id, password)) => (server.mqtt_port, id.clone(), Some(password.clone())),
        None => (server.mqtt_port, format!("client{index}"), None),
    }
}

/// A connected client (CONNACK received); panics when the server refuses it.
async fn connect(
    (port, id, password): (u16, String, Option<String>),
    inflight: u16,
) -> (AsyncClient, EventLoop) {
    let mut options = MqttOptions::new(id.clone(), "127.0.0.1", port);
    options
        .set_keep_alive(Duration::from_secs(60))
        .set_inflight(inflight)
        .set_clean_session(true);
    if let Some(password) = password {
        options.set_credentials(id.clone(), password);
    }
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    eventloop.network_options.set_connection_timeout(60);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => return (client, eventloop),
            Ok(_) => {}
            Err(e) => panic!("client {id} could not connect: {e}"),
        }
    }
}

struct Load {
    name: &'static str,
    acked_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    records_per_commit: Option<f64>,
}

/// One client: publishes as fast as its in-flight window allows; returns the publish -> PUBACK
/// latencies (µs) of the publishes acknowledged while `measuring`.
async fn drive(
    client: AsyncClient,
    mut eventloop: EventLoop,
    topic: String,
    acked: Arc<AtomicU64>,
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> Vec<u32> {
    let publisher = tokio::spawn(async move {
        let payload = vec![b'x'; PAYLOAD_BYTES];
        while client
            .publish(topic.as_str(), QoS::AtLeastOnce, false, payload.clone())
            .await
            .is_ok()
        {}
    });
    let mut sent: Vec<Option<Instant>> = vec![None; usize::from(u16::MAX) + 1];
    let mut latencies = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let event = match tokio::time::timeout(Duration::from_secs(1), eventloop.poll()).await {
            Ok(Ok(event)) => event,
            Ok(Err(e)) => panic!("connection failed under load: {e}"),
            Err(_) => continue,
        };
        match event {
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                sent[usize::from(pkid)] = Some(Instant::now())
            }
            Event::Incoming(Packet::PubAck(ack)) => {
                if let Some(at) = sent[usize::from(ack.pkid)].take() {
                    if measuring.load(Ordering::Relaxed) {
                        acked.fetch_add(1, Ordering::Relaxed);
                        latencies.push(at.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    }
                }
            }
            _ => {}
        }
    }
    publisher.abort();
    latencies
}

async fn load(server: &Server, seconds: u64) -> Load {
    let acked = Arc::new(AtomicU64::new(0));
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for n in 0..CLIENTS {
        let (client, eventloop) = connect(identity(server, n), INFLIGHT).await;
        tasks.push(tokio::spawn(drive(
            client,
            eventloop,
            format!("bench/{n}/data"),
            acked.clone(),
            measuring.clone(),
            stop.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_secs(2)).await; // warm-up
    let commits_before = kinedge_status(server).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let commits_after = kinedge_status(server).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap_or_default());
    }
    latencies.sort_unstable();
    let quantile = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(f64::NAN, |&us| us as f64 / 1000.0)
    };
    let records_per_commit = match (commits_before, commits_after) {
        (Some((r0, c0)), Some((r1, c1))) if c1 > c0 => Some((r1 - r0) as f64 / (c1 - c0) as f64),
        _ => None,
    };
    Load {
        name: server.name,
        acked_per_s: acked.load(Ordering::Relaxed) as f64 / elapsed,
        p50_ms: quantile(0.50),
        p99_ms: quantile(0.99),
        records_per_commit,
    }
}

/// kinedge's writer counters from `/status`: (records, commits).
async fn kinedge_status(server: &Server) -> Option<(u64, u64)> {
    let port = server.api_port?;
    let status: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/status"))
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let writer = &status["writer"];
    Some((writer["records"].as_u64()?, writer["commits"].as_u64()?))
}

/// Resident memory of `server` before and after `count` idle clients connect (keep-alive
/// 60 s, `CONNECT_CONCURRENCY` connects at a time); returns (MB idle, MB with the clients, s
/// to connect them all). The clients stay connected until the runtime is dropped.
async fn idle(server: &Server, count: usize) -> (f64, f64, f64) {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = server.rss_mb();
    let started = Instant::now();
    let permits = Arc::new(tokio::sync::Semaphore::new(CONNECT_CONCURRENCY));
    let (connected, mut done) = tokio::sync::mpsc::channel::<()>(count.max(1));
    for n in 0..count {
        let permits = permits.clone();
        let connected = connected.clone();
        let identity = identity(server, n);
        tokio::spawn(async move {
            let permit = permits.acquire_owned().await.expect("semaphore");
            let (_client, mut eventloop) = connect(identity, 1).await;
            drop(permit);
            let _ = connected.send(()).await;
            // Keep polling so that keep-alives go out.
            while eventloop.poll().await.is_ok() {}
        });
    }
    for _ in 0..count {
        done.recv().await.expect("an idle client failed to connect");
    }
    let connect_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    (before, server.rss_mb(), connect_s)
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
        let server = start_kinedge(CLIENTS, 0);
        results.push(runtime.block_on(load(&server, o.seconds)));
    }
    let peer = if o.skip_peer {
        None
    } else {
        common::mosquitto_bin()
    };
    match &peer {
        Some(bin) => {
            let server = start_mosquitto(bin);
            results.push(runtime.block_on(load(&server, o.seconds)));
        }
        None if o.skip_peer => {}
        None => {
            eprintln!("mosquitto not found (/usr/sbin/mosquitto or $MOSQUITTO_BIN); peer skipped")
        }
    }
    let mut idle_rows = Vec::new();
    if o.idle > 0 {
        let server = start_kinedge(0, o.idle);
        idle_rows.push(("kinedge", runtime.block_on(idle(&server, o.idle))));
        if let Some(bin) = &peer {
            let server = start_mosquitto(bin);
            idle_rows.push(("mosquitto", runtime.block_on(idle(&server, o.idle))));
        }
    }
    runtime.shutdown_background();

    println!(
        "\nQoS1, {PAYLOAD_BYTES}-byte payloads, {CLIENTS} clients x {INFLIGHT} in flight, {} s",
        o.seconds
    );
    println!(
        "{:<12} {:>12} {:>8} {:>8} {:>11}",
        "server", "acked msg/s", "p50 ms", "p99 ms", "rec/commit"
    );
    for r in &results {
        println!(
            "{:<12} {:>12.0} {:>8.2} {:>8.2} {:>11}   {}",
            r.name,
            r.acked_per_s,
            r.p50_ms,
            r.p99_ms,
            r.records_per_commit
                .map_or("-".into(), |v| format!("{v:.0}")),
            if r.name == "kinedge" {
                "(PUBACK after fsync)"
            } else {
                "(in memory, persistence false)"
            },
        );
    }
    if let [k, m] = results.as_slice() {
        println!(
            "kinedge/mosquitto throughput ratio: {:.2}",
            k.acked_per_s / m.acked_per_s.max(1.0)
        );
    }
    for (name, (before, after, connect_s)) in &idle_rows {
        println!(
            "{name} idle RSS: 0 clients {before:.1} MB, {} clients {after:.1} MB \
             ({:.1} KB per client; connected in {connect_s:.1} s)",
            o.idle,
            (after - before) * 1024.0 / o.idle as f64,
        );
    }
}
