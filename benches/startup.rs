//! Start-up benchmark: the time from spawning the release binary to its first `200` from
//! `GET /ready` (polled every millisecond on loopback), with an empty data directory and with
//! one holding 10 GB of shard logs; once also after an unclean stop (redb's repair). When the
//! binary speaks the systemd notify protocol, the time to `READY=1` is shown too.
//!
//! `cargo bench --bench startup` (options after `--`: `--runs N` (10), `--gb N` (10 GB of
//! record data), `--skip-large`, `--skip-unclean`, `--cold` (also drop the page cache before
//! each large start; needs root), `--delete` (remove the generated store afterwards)).
//!
//! The binary is `KINEDGE_BIN` or the release build of this package (which `cargo bench`
//! builds). The large store is written once through the library (`kinedge::storage::Store`,
//! 1 KB records in 8 MB appends, 4 shards), closed cleanly, and kept in
//! `target/tmp/startup-bench-<N>g` so that later runs measure without writing it again; delete
//! that folder to regenerate it, or pass `--delete` to remove it after measuring.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kinedge::storage::{AdminOp, NewRecord, Store, StoreOptions, StreamSpec};
use kinedge::streams::{OnFull, StreamMode};

const STREAM: &str = "bench";
const SHARDS: u32 = 4;
const RECORD_BYTES: usize = 1000;
const APPEND_RECORDS: usize = 8000;
/// Appends waiting for their commit at once while generating.
const IN_FLIGHT: usize = 4;
const POLL: Duration = Duration::from_millis(1);
/// Longest wait for one start (a repair of a large file can take minutes on slow disks).
const START_TIMEOUT: Duration = Duration::from_secs(600);

struct Options {
    runs: usize,
    gb: u64,
    skip_large: bool,
    skip_unclean: bool,
    cold: bool,
    delete: bool,
}

fn options() -> Options {
    let mut o = Options {
        runs: 10,
        gb: 10,
        skip_large: false,
        skip_unclean: false,
        cold: false,
        delete: false,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let value = |default| {
            args.get(i + 1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        match args[i].as_str() {
            "--runs" => {
                o.runs = usize::try_from(value(o.runs as u64)).unwrap_or(1).max(1);
                i += 1;
            }
            "--gb" => {
                o.gb = value(o.gb).max(1);
                i += 1;
            }
            "--skip-large" => o.skip_large = true,
            "--skip-unclean" => o.skip_unclean = true,
            "--cold" => o.cold = true,
            "--delete" => o.delete = true,
            _ => {} // cargo passes --bench
        }
        i += 1;
    }
    o
}

fn main() {
    let o = options();
    let binary = kinedge_binary();
    let target = binary
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target"));
    println!(
        "binary: {} ({:.1} MB stripped)",
        binary.display(),
        stripped_size(&binary) as f64 / 1e6
    );

    let mut rows = Vec::new();
    let empty = measure_runs(&binary, o.runs, false, || {
        tempfile::tempdir().expect("a temporary data directory")
    });
    rows.push(("empty data directory".to_owned(), empty));

    let large_dir = target.join("tmp").join(format!("startup-bench-{}g", o.gb));
    let mut notes = Vec::new();
    if !o.skip_large {
        let bytes = o.gb * 1_000_000_000;
        ensure_store(&large_dir, bytes);
        let file = std::fs::metadata(large_dir.join(kinedge::storage::STREAMS_DB))
            .map(|m| m.len())
            .unwrap_or(0);
        let label = format!("{:.1} GB of shard logs (clean stop)", file as f64 / 1e9);
        let large = measure_runs(&binary, o.runs, false, || KeepDir(large_dir.clone()));
        rows.push((label.clone(), large));
        if o.cold {
            let cold = measure_runs(&binary, o.runs, true, || KeepDir(large_dir.clone()));
            rows.push((format!("{label}, cold page cache"), cold));
        }
        if !o.skip_unclean {
            let unclean = unclean_start(&binary, &large_dir, false);
            let label = format!(
                "{:.1} GB after SIGKILL (repair), file in page cache, once",
                file as f64 / 1e9
            );
            rows.push((label.clone(), unclean));
            if o.cold {
                let unclean = unclean_start(&binary, &large_dir, true);
                let label = format!(
                    "{:.1} GB after SIGKILL (repair), cold page cache, once",
                    file as f64 / 1e9
                );
                rows.push((label, unclean));
            }
            notes.push(
                "after SIGKILL redb checks the whole file before it opens (storage.quick_repair = \
                 false, the default); meanwhile the gateway extends systemd's start timeout \
                 (EXTEND_TIMEOUT_USEC)",
            );
        }
    }

    println!();
    println!(
        "| data directory | runs | median to /ready, ms | max, ms | median to READY=1, ms | RSS when ready, MB |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for (label, runs) in &rows {
        let ready: Vec<f64> = runs.iter().map(|r| r.ready_ms).collect();
        let notify: Vec<f64> = runs.iter().filter_map(|r| r.notify_ms).collect();
        let notify = if notify.len() == runs.len() {
            format!("{:.1}", median(&notify))
        } else {
            "—".to_owned()
        };
        let rss: Vec<f64> = runs
            .iter()
            .map(|r| r.rss_kb as f64 * 1024.0 / 1e6)
            .collect();
        println!(
            "| {label} | {} | {:.1} | {:.1} | {notify} | {:.1} |",
            runs.len(),
            median(&ready),
            ready.iter().cloned().fold(0.0, f64::max),
            median(&rss)
        );
    }
    for note in notes {
        println!("note: {note}");
    }
    if o.delete && large_dir.exists() {
        std::fs::remove_dir_all(&large_dir).expect("remove the generated store");
        println!("removed {}", large_dir.display());
    } else if large_dir.exists() {
        println!(
            "the generated store stays in {} (delete it, or run with --delete, to free the disk)",
            large_dir.display()
        );
    }
}

fn kinedge_binary() -> PathBuf {
    let binary = std::env::var_os("KINEDGE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_kinedge")));
    if !binary.is_file() {
        eprintln!(
            "error: no kinedge binary at {}: build it (`cargo build --release`) or set KINEDGE_BIN",
            binary.display()
        );
        std::process::exit(2);
    }
    binary
}

/// The size of the binary without symbols: `strip` of a copy (the release profile strips
/// already; this also holds for a `KINEDGE_BIN` that is not).
fn stripped_size(binary: &Path) -> u64 {
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let Ok(dir) = tempfile::tempdir() else {
        return size(binary);
    };
    let copy = dir.path().join("kinedge");
    let stripped = std::fs::copy(binary, &copy).is_ok()
        && Command::new("strip")
            .arg(&copy)
            .status()
            .is_ok_and(|s| s.success());
    if stripped {
        size(&copy)
    } else {
        size(binary)
    }
}

/// A data directory that stays (the generated store).
struct KeepDir(PathBuf);

trait DataDir {
    fn path(&self) -> &Path;
}

impl DataDir for KeepDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl DataDir for tempfile::TempDir {
    fn path(&self) -> &Path {
        tempfile::TempDir::path(self)
    }
}

#[derive(Clone, Copy)]
struct Start {
    ready_ms: f64,
    notify_ms: Option<f64>,
    /// Resident memory when ready.
    rss_kb: u64,
}

fn measure_runs<D: DataDir>(
    binary: &Path,
    runs: usize,
    cold: bool,
    data_dir: impl Fn() -> D,
) -> Vec<Start> {
    (0..runs)
        .map(|_| {
            let dir = data_dir();
            if cold {
                drop_page_cache();
            }
            let mut gateway = Gateway::start(binary, dir.path());
            let start = gateway.wait_ready();
            gateway.stop();
            start
        })
        .collect()
}

/// Once: a gateway on the large store is killed after a write, then started again (and
/// stopped cleanly, so that the store is clean for the next run).
fn unclean_start(binary: &Path, data_dir: &Path, cold: bool) -> Vec<Start> {
    let mut gateway = Gateway::start(binary, data_dir);
    gateway.wait_ready();
    gateway.put_record();
    gateway.kill();
    if cold {
        drop_page_cache();
    } else {
        read_through(&data_dir.join(kinedge::storage::STREAMS_DB));
    }
    let mut gateway = Gateway::start(binary, data_dir);
    let start = gateway.wait_ready();
    gateway.stop();
    vec![start]
}

/// Reads a file once so that its pages are in the page cache (as after a crash of the process,
/// unlike after a power cut).
fn read_through(path: &Path) {
    let mut file = std::fs::File::open(path).expect("open the store file");
    let mut buf = vec![0u8; 8 << 20];
    while file.read(&mut buf).is_ok_and(|n| n > 0) {}
}

fn drop_page_cache() {
    // Written-back pages can be dropped too.
    let _ = Command::new("sync").status();
    if let Err(e) = std::fs::write("/proc/sys/vm/drop_caches", "3\n") {
        eprintln!("error: --cold needs root to drop the page cache: {e}");
        std::process::exit(2);
    }
}

/// One gateway process with its own config, ports and notify socket.
struct Gateway {
    process: Option<common::Process>,
    api: SocketAddr,
    spawned: Instant,
    notified: Arc<Mutex<Option<Instant>>>,
    _dir: tempfile::TempDir,
}

impl Gateway {
    fn start(binary: &Path, data_dir: &Path) -> Gateway {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let api: SocketAddr = format!("127.0.0.1:{}", common::free_port())
            .parse()
            .expect("an address");
        let config = dir.path().join("kinedge.toml");
        std::fs::create_dir(dir.path().join("devices")).expect("devices folder");
        std::fs::write(
            &config,
            format!(
                "[api]\nlisten = \"{api}\"\n\n[mqtt]\nlisten = \"127.0.0.1:{}\"\n\n\
                 [devices]\ndir = \"devices\"\n\n[log]\nlevel = \"info\"\n",
                common::free_port()
            ),
        )
        .expect("write the config");
        // The systemd notify protocol: READY=1 arrives here when the binary sends it.
        let socket_path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
        let notified = Arc::new(Mutex::new(None));
        {
            let notified = notified.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = socket.recv(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]);
                    if text.lines().any(|l| l == "READY=1") {
                        let mut slot = notified.lock().unwrap_or_else(|p| p.into_inner());
                        slot.get_or_insert_with(Instant::now);
                    }
                }
            });
        }
        let spawned = Instant::now();
        let child = Command::new(binary)
            .args(["run", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(data_dir)
            .env("NOTIFY_SOCKET", &socket_path)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start kinedge");
        Gateway {
            process: Some(common::Process(child)),
            api,
            spawned,
            notified,
            _dir: dir,
        }
    }

    /// Polls `GET /ready` every millisecond until the first 200.
    fn wait_ready(&mut self) -> Start {
        loop {
            if ready(self.api) {
                break;
            }
            if let Some(Ok(Some(status))) = self.process.as_mut().map(|p| p.0.try_wait()) {
                panic!("kinedge exited during start-up: {status}");
            }
            assert!(
                self.spawned.elapsed() < START_TIMEOUT,
                "kinedge not ready after {START_TIMEOUT:?}"
            );
            std::thread::sleep(POLL);
        }
        let ready_ms = self.spawned.elapsed().as_secs_f64() * 1000.0;
        let rss_kb = self
            .process
            .as_ref()
            .map_or(0, |p| common::proc_field(p.id(), "status", "VmRSS:"));
        // READY=1 is sent when start-up is done, around the time /ready answers.
        let deadline = Instant::now() + Duration::from_millis(500);
        let notify_ms = loop {
            let at = *self.notified.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(at) = at {
                break Some((at - self.spawned).as_secs_f64() * 1000.0);
            }
            if Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(POLL);
        };
        Start {
            ready_ms,
            notify_ms,
            rss_kb,
        }
    }

    /// One PutRecord, answered after its commit.
    fn put_record(&self) {
        let body = format!(
            "{{\"StreamName\":\"{STREAM}\",\"PartitionKey\":\"unclean\",\"Data\":\"aGVsbG8=\"}}"
        );
        let request = format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nX-Amz-Target: Kinesis_20131202.PutRecord\r\n\
             Content-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            self.api,
            body.len()
        );
        let status = http(self.api, &request).unwrap_or_default();
        assert!(status.contains(" 200 "), "PutRecord failed: {status}");
    }

    /// SIGTERM, and wait for a clean exit.
    fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let pid = i32::try_from(process.id()).expect("a pid");
            // SAFETY: sends a signal to the child this benchmark started.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
            let status = process.0.wait().expect("wait for kinedge");
            assert!(status.success(), "kinedge stopped with {status}");
        }
    }

    /// SIGKILL: a crash.
    fn kill(&mut self) {
        // Dropping the process kills it and waits for it.
        self.process = None;
    }
}

/// Whether `GET /ready` answers 200 now.
fn ready(api: SocketAddr) -> bool {
    let request = format!("GET /ready HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n\r\n");
    http(api, &request).is_some_and(|status| status.starts_with("HTTP/1.1 200"))
}

/// Sends `request` and returns the status line of the answer.
fn http(addr: SocketAddr, request: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(100)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    text.lines().next().map(str::to_owned)
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

// ---- the large store -------------------------------------------------------------------------

/// Writes `bytes` of record data into `dir` unless a complete store of that size is there.
fn ensure_store(dir: &Path, bytes: u64) {
    let marker = dir.join("complete");
    let expected = format!("{bytes} bytes of {RECORD_BYTES}-byte records in {SHARDS} shards\n");
    if std::fs::read_to_string(&marker).is_ok_and(|m| m == expected) {
        println!("using the store in {}", dir.display());
        return;
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("create the store folder");
    println!(
        "writing {:.1} GB of shard logs into {} (once) ...",
        bytes as f64 / 1e9,
        dir.display()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let began = Instant::now();
    runtime.block_on(generate(dir, bytes));
    let elapsed = began.elapsed().as_secs_f64();
    println!(
        "wrote {:.1} GB in {elapsed:.0} s ({:.0} MB/s)",
        bytes as f64 / 1e9,
        bytes as f64 / 1e6 / elapsed
    );
    std::fs::write(&marker, expected).expect("write the marker");
}

async fn generate(dir: &Path, bytes: u64) {
    let mut options = StoreOptions::new(dir);
    options.min_free_disk = 1024 * 1024 * 1024;
    let store = Store::open(options).expect("open the store");
    store
        .admin(AdminOp::EnsureStream(StreamSpec {
            name: STREAM.into(),
            shards: SHARDS,
            // A year: a store generated today is still whole when measured next month.
            retention_hours: 8760,
            max_bytes: None,
            on_full: OnFull::OverwriteOldest,
            mode: StreamMode::Provisioned,
            tags: BTreeMap::new(),
        }))
        .await
        .expect("create the stream");
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        // xorshift64*: spreads hash keys over the shards and fills the records.
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        seed.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let appends = bytes.div_ceil((RECORD_BYTES * APPEND_RECORDS) as u64);
    let mut pending = std::collections::VecDeque::new();
    for i in 0..appends {
        let records: Vec<NewRecord> = (0..APPEND_RECORDS)
            .map(|j| {
                let mut data = vec![0u8; RECORD_BYTES];
                for chunk in data.chunks_mut(8) {
                    let word = next().to_le_bytes();
                    chunk.copy_from_slice(&word[..chunk.len()]);
                }
                NewRecord {
                    partition_key: format!("sensor-{}", j % 500),
                    hash_key: (u128::from(next()) << 64) | u128::from(next()),
                    data: Bytes::from(data),
                }
            })
            .collect();
        pending.push_back(store.submit(STREAM, records).await.expect("queue records"));
        if pending.len() >= IN_FLIGHT {
            committed(pending.pop_front()).await;
        }
        if i % 100 == 99 {
            println!(
                "  {:.1} GB",
                ((i + 1) * APPEND_RECORDS as u64 * RECORD_BYTES as u64) as f64 / 1e9
            );
        }
    }
    while let Some(reply) = pending.pop_front() {
        committed(Some(reply)).await;
    }
    // A clean stop: what is measured is a clean start.
    store.shutdown().await;
    drop(store);
}

type Reply = tokio::sync::oneshot::Receiver<
    Result<Vec<kinedge::storage::AppendOutcome>, kinedge::storage::StoreError>,
>;

async fn committed(reply: Option<Reply>) {
    let Some(reply) = reply else { return };
    let outcomes = reply
        .await
        .expect("the writer answers")
        .expect("the append commits");
    if let Some(Err(refused)) = outcomes.into_iter().find(|o| o.is_err()) {
        panic!("a record was refused while generating the store: {refused}");
    }
}
