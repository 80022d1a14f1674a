//! Slow-client benchmark: PutRecord latency of a normal client against the real `kinedge`
//! binary, first alone, then with hostile connections open beside it: `--slow` connections
//! that send half a request head and nothing more (slowloris) and `--stalled` connections
//! that declare a 16 MiB PutRecords body and send none of it. Each hostile connection is
//! opened again as soon as the gateway closes it, so they stay open for the whole phase.
//!
//! `cargo bench --bench slow_clients` (options after `--`: `--seconds N` per phase (10),
//! `--slow N` (500), `--stalled N` (3), `--clients N` normal clients (2);
//! `KINEDGE_BIN=path` runs another kinedge binary). Target: p99 <= 50 ms with the hostile
//! connections open. The gateway runs with `storage.commit_interval_ms = 0`: this measures
//! the HTTP front, not the commit schedule (which adds up to its interval when the normal
//! clients' requests pile up, alone or not).

mod common;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

struct Options {
    seconds: u64,
    slow: usize,
    stalled: usize,
    clients: usize,
}

fn options() -> Options {
    let mut o = Options {
        seconds: 10,
        slow: 500,
        stalled: 3,
        clients: 2,
    };
    let args: Vec<String> = std::env::args().collect();
    let value = |i: usize| args.get(i + 1).and_then(|v| v.parse().ok());
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--seconds" => o.seconds = value(i).unwrap_or(o.seconds as usize) as u64,
            "--slow" => o.slow = value(i).unwrap_or(o.slow),
            "--stalled" => o.stalled = value(i).unwrap_or(o.stalled),
            "--clients" => o.clients = value(i).unwrap_or(o.clients),
            _ => {} // cargo passes --bench
        }
        i += 1;
    }
    o
}

/// Room for the hostile sockets in this process and in the gateway (which inherits it).
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < 8192 {
            limit.rlim_cur = limit.rlim_max.min(8192);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

struct Latencies {
    ms: Vec<f64>,
    failed: u64,
}

impl Latencies {
    fn percentile(&self, p: f64) -> f64 {
        if self.ms.is_empty() {
            return f64::NAN;
        }
        let mut sorted = self.ms.clone();
        sorted.sort_by(f64::total_cmp);
        sorted[((sorted.len() - 1) as f64 * p).round() as usize]
    }
}

async fn put_record(http: &reqwest::Client, endpoint: &str, n: u64) -> Result<(), String> {
    let body =
        json!({"StreamName": "slow", "PartitionKey": format!("k{n}"), "Data": "AAECAwQFBgcICQ=="});
    let response = http
        .post(format!("{endpoint}/"))
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", "Kinesis_20131202.PutRecord")
        .body(body.to_string())
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let _ = response.bytes().await;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {status}"))
    }
}

/// PutRecord calls from `clients` sequential clients for `seconds`.
async fn measure(endpoint: &str, clients: usize, seconds: u64) -> Latencies {
    let all = Arc::new(Mutex::new(Latencies {
        ms: Vec::new(),
        failed: 0,
    }));
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let all = all.clone();
        let endpoint = endpoint.to_string();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut n = (c as u64) << 32;
            while Instant::now() < until {
                n += 1;
                let started = Instant::now();
                let result = put_record(&http, &endpoint, n).await;
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                let mut all = all.lock().expect("latencies");
                match result {
                    Ok(()) => all.ms.push(ms),
                    Err(_) => all.failed += 1,
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Arc::try_unwrap(all)
        .ok()
        .expect("all clients done")
        .into_inner()
        .expect("latencies")
}

/// Keeps one hostile connection open: sends `head`, waits until the gateway closes or
/// answers, opens it again. Counts the connections opened.
fn hostile(port: u16, head: &'static [u8], stop: Arc<AtomicBool>, opened: Arc<AtomicU64>) {
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            opened.fetch_add(1, Ordering::Relaxed);
            if s.write_all(head).await.is_err() {
                continue;
            }
            let mut buf = [0u8; 4096];
            loop {
                tokio::select! {
                    read = s.read(&mut buf) => match read {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {} // an answer (408): read on until the close
                    },
                    () = tokio::time::sleep(Duration::from_millis(200)) => {
                        if stop.load(Ordering::Relaxed) { return; }
                    }
                }
            }
        }
    });
}

fn main() {
    let o = options();
    raise_fd_limit();
    let dir = tempfile::tempdir().expect("temp dir");
    let port = common::free_port();
    let config = dir.path().join("kinedge.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\ndata_dir = \"{}\"\nmin_free_disk = \"64MiB\"\ncommit_interval_ms = 0\n[api]\nlisten = \"127.0.0.1:{port}\"\n[mqtt]\nenabled = false\n[log]\nlevel = \"warn\"\n",
            dir.path().join("data").display()
        ),
    )
    .expect("write config");
    let bin = common::kinedge_bin();
    let child = common::Process(
        Command::new(&bin)
            .args(["run", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .spawn()
            .expect("start kinedge"),
    );
    let endpoint = format!("http://127.0.0.1:{port}");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let created = http
                .post(format!("{endpoint}/"))
                .header("content-type", "application/x-amz-json-1.1")
                .header("x-amz-target", "Kinesis_20131202.CreateStream")
                .body(r#"{"StreamName":"slow","ShardCount":2}"#)
                .send()
                .await;
            if created.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(Instant::now() < deadline, "kinedge did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        measure(&endpoint, o.clients, 2).await; // warm-up
        let alone = measure(&endpoint, o.clients, o.seconds).await;

        let stop = Arc::new(AtomicBool::new(false));
        let opened = Arc::new(AtomicU64::new(0));
        const SLOW: &[u8] = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: Kinesis_";
        const STALLED: &[u8] = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: Kinesis_20131202.PutRecords\r\nContent-Length: 16777215\r\n\r\n";
        for _ in 0..o.stalled {
            hostile(port, STALLED, stop.clone(), opened.clone());
        }
        for _ in 0..o.slow {
            hostile(port, SLOW, stop.clone(), opened.clone());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let fds = std::fs::read_dir(format!("/proc/{}/fd", child.id()))
            .map(|d| d.count())
            .unwrap_or(0);
        let beside = measure(&endpoint, o.clients, o.seconds).await;
        let rss_mb = common::proc_field(child.id(), "status", "VmRSS:") as f64 / 1024.0;
        stop.store(true, Ordering::Relaxed);

        println!(
            "\nPutRecord latency, {} clients, {} s per phase ({})",
            o.clients,
            o.seconds,
            bin.display()
        );
        println!(
            "{:<44} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "phase", "calls", "failed", "p50 ms", "p99 ms", "max ms"
        );
        for (name, l) in [
            ("alone".to_string(), &alone),
            (
                format!("{} slow-head + {} stalled-body", o.slow, o.stalled),
                &beside,
            ),
        ] {
            println!(
                "{:<44} {:>8} {:>8} {:>8.1} {:>8.1} {:>8.1}",
                name,
                l.ms.len(),
                l.failed,
                l.percentile(0.5),
                l.percentile(0.99),
                l.percentile(1.0)
            );
        }
        println!(
            "hostile connections opened: {} (re-opened when closed); gateway: {fds} descriptors 1 s in, {rss_mb:.1} MB resident at the end",
            opened.load(Ordering::Relaxed)
        );
        println!(
            "target: p99 <= 50 ms beside the hostile connections: {}",
            if beside.failed == 0 && beside.percentile(0.99) <= 50.0 {
                "met"
            } else {
                "NOT met"
            }
        );
    });
}
