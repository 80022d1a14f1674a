//! Video benchmark: the real `kinedge` binary recording N loopback RTSP cameras, and in the
//! same run, over the same window, a plain GStreamer recorder per camera as the peer.
//!
//! `cargo bench --features test-camera --bench video` (options after `--`: `--cameras 1,4`,
//! `--seconds 60`, `--skip-peer`, `--peer-only`). Each camera is the test camera
//! (examples/test_camera.rs) serving a pre-encoded 1080p30 H.264 4 Mbit/s CBR MPEG-TS file
//! (made once with x264 and kept under target/tmp) in real time to each client from its start,
//! so no camera encodes and the cameras' own CPU, in their own processes, is not counted. The
//! file is 30 s longer than the window (at least 90 s): the camera would loop it, but a
//! looping demuxer now and then hands on a frame without a timestamp at the wrap, which stops
//! the GStreamer recorder. For each N:
//! - the peer: one `gst-launch-1.0 rtspsrc ! rtph264depay ! h264parse ! splitmuxsink` per
//!   camera (2 s MP4 files);
//! - kinedge (release build, or `KINEDGE_BIN`) with one device file per camera and 2 s
//!   fragments;
//! - measured for `--seconds` once every camera has a first fragment: CPU % of one core
//!   (utime + stime from /proc/PID/stat), VmRSS and VmHWM; kinedge also per camera (less the
//!   idle gateway, measured alone first), fragments stored and dropped (`GET /video/cameras`)
//!   and the HLS live latency: the live playlist is polled every 100 ms and each new segment's
//!   latency is now - (its EXT-X-PROGRAM-DATE-TIME + its EXTINF duration). kinedge dates
//!   fragments by the stream's clock anchored at the arrival of the first one, so this is the
//!   delay from a fragment's end to its playlist entry, not the camera-to-gateway delay.
//!
//! The test camera is `KINEDGE_TEST_CAMERA` or the example built (debug) into this target
//! directory. With the defaults a run takes about 2.5 minutes, plus about 1.5 minutes the first
//! time for the file.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

const FRAGMENT_MS: u64 = 2000;
/// The shortest camera file, in seconds.
const MIN_FILE_SECONDS: u64 = 90;
const FILE_BITRATE_KBPS: u64 = 4000;
const POLL: Duration = Duration::from_millis(100);

struct Options {
    cameras: Vec<usize>,
    seconds: u64,
    skip_peer: bool,
    peer_only: bool,
}

fn options() -> Options {
    let mut o = Options {
        cameras: vec![1, 4],
        seconds: 60,
        skip_peer: false,
        peer_only: false,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let value = args.get(i + 1);
        match args[i].as_str() {
            "--cameras" => {
                if let Some(list) = value {
                    o.cameras = list
                        .split(',')
                        .filter_map(|n| n.trim().parse().ok())
                        .filter(|&n| n > 0)
                        .collect();
                }
                i += 1;
            }
            "--seconds" => {
                o.seconds = value.and_then(|v| v.parse().ok()).unwrap_or(o.seconds);
                i += 1;
            }
            "--skip-peer" => o.skip_peer = true,
            "--peer-only" => o.peer_only = true,
            _ => {} // cargo passes --bench
        }
        i += 1;
    }
    assert!(!o.cameras.is_empty(), "--cameras needs a list such as 1,4");
    assert!(
        !(o.skip_peer && o.peer_only),
        "--skip-peer and --peer-only exclude each other"
    );
    o
}

fn target_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).to_path_buf()
}

/// A command whose process is killed when the benchmark dies, even without running its
/// destructors (Ctrl-C).
fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd
}

// ---- inputs: the camera file and the camera binary -------------------------------------------

/// The 1080p30 H.264 4 Mbit/s CBR MPEG-TS file the cameras serve, at least 30 s longer than
/// `window_seconds` (in steps of 30 s); made once per length (x264 encodes noise, which takes
/// about as long as it plays here) and kept under target/tmp.
fn camera_file(window_seconds: u64) -> PathBuf {
    let seconds = (window_seconds + 30)
        .div_ceil(30)
        .max(MIN_FILE_SECONDS / 30)
        * 30;
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("video-bench");
    let file = dir.join(format!(
        "1080p30-h264-{FILE_BITRATE_KBPS}kbps-{seconds}s.ts"
    ));
    if file.exists() {
        return file;
    }
    std::fs::create_dir_all(&dir).expect("create the camera file directory");
    let partial = file.with_extension("ts.partial");
    let expected_mb = (FILE_BITRATE_KBPS * seconds) as f64 / 8.0 / 1000.0;
    eprintln!(
        "making the camera file {} ({seconds} s of 1080p30 noise, x264 at {FILE_BITRATE_KBPS} kbit/s CBR; once)...",
        file.display()
    );
    let pipeline = format!(
        "videotestsrc num-buffers={frames} pattern=snow \
         ! video/x-raw,format=I420,width=1920,height=1080,framerate=30/1 \
         ! x264enc bitrate={FILE_BITRATE_KBPS} pass=cbr key-int-max=60 speed-preset=ultrafast tune=zerolatency \
         ! video/x-h264,profile=constrained-baseline ! h264parse ! mpegtsmux \
         ! filesink location={}",
        partial.display(),
        frames = seconds * 30,
    );
    let mut child = common::Process(
        command("gst-launch-1.0")
            .arg("-q")
            .args(pipeline.split_whitespace())
            .stdout(Stdio::null())
            .spawn()
            .expect("run gst-launch-1.0 (install the GStreamer tools)"),
    );
    let started = Instant::now();
    let mut reported = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait for gst-launch-1.0") {
            break status;
        }
        if reported.elapsed() >= Duration::from_secs(10) {
            reported = Instant::now();
            let mb = std::fs::metadata(&partial).map_or(0, |m| m.len()) as f64 / 1e6;
            eprintln!(
                "  {:.0} s: {mb:.1} of ~{expected_mb:.0} MB",
                started.elapsed().as_secs_f64()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(status.success(), "making the camera file failed: {status}");
    std::fs::rename(&partial, &file).expect("keep the camera file");
    eprintln!("  done in {:.0} s", started.elapsed().as_secs_f64());
    file
}

/// The test camera: `KINEDGE_TEST_CAMERA`, or the example built (debug; it only serves a file,
/// its speed is not measured) into this target directory.
fn camera_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("KINEDGE_TEST_CAMERA") {
        return PathBuf::from(path);
    }
    let target = target_dir();
    eprintln!(
        "building the test camera (cargo build --features test-camera --example test_camera)..."
    );
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args([
            "build",
            "--locked",
            "--quiet",
            "--features",
            "test-camera",
            "--example",
            "test_camera",
            "--target-dir",
        ])
        .arg(&target)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo");
    assert!(status.success(), "building the test camera failed");
    target.join("debug/examples/test_camera")
}

fn kinedge_binary() -> PathBuf {
    std::env::var_os("KINEDGE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_kinedge")))
}

// ---- processes and their counters ------------------------------------------------------------

/// A test camera serving `file`; returns the process and its URL.
fn start_camera(binary: &Path, file: &Path) -> (common::Process, String) {
    let mut child = command(binary)
        .arg("--file")
        .arg(file)
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
    let stdout = child.stdout.take().expect("camera stdout");
    let process = common::Process(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let url = rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_default()
        .trim()
        .to_string();
    assert!(
        url.starts_with("rtsp://127.0.0.1:"),
        "the test camera printed no URL within 20 s ({url:?})"
    );
    (process, url)
}

/// A plain GStreamer recorder of `url` into 2 s MP4 files under `dir`.
fn start_recorder(url: &str, dir: &Path) -> common::Process {
    let child = command("gst-launch-1.0")
        .args([
            "-q",
            "-e",
            "rtspsrc",
            &format!("location={url}"),
            "protocols=tcp",
            "latency=200",
            "!",
            "rtph264depay",
            "!",
            "h264parse",
            "!",
            "splitmuxsink",
            &format!("location={}/seg%05d.mp4", dir.display()),
            &format!("max-size-time={}", FRAGMENT_MS * 1_000_000),
        ])
        .stdout(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .expect("start gst-launch-1.0");
    common::Process(child)
}

/// CPU time (user + system) of a process in seconds, from /proc/PID/stat.
fn cpu_seconds(pid: u32) -> f64 {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // fields after the command name, which may contain spaces: state is field 3,
            // utime 14 and stime 15
            let rest = stat.rsplit_once(')')?.1.to_string();
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some(utime + stime)
        })
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    ticks as f64 / per_second as f64
}

/// Resources of a group of processes over a window.
#[derive(Clone, Copy, Default)]
struct Usage {
    /// CPU, % of one core.
    cpu_pct: f64,
    /// VmRSS at the end of the window, MB.
    rss_mb: f64,
    /// VmHWM (peak RSS) at the end of the window, MB.
    peak_mb: f64,
}

struct Window {
    pids: Vec<u32>,
    cpu_start: f64,
    started: Instant,
}

impl Window {
    fn start(pids: Vec<u32>) -> Window {
        let cpu_start = pids.iter().map(|&p| cpu_seconds(p)).sum();
        Window {
            pids,
            cpu_start,
            started: Instant::now(),
        }
    }

    fn finish(&self) -> Usage {
        let elapsed = self.started.elapsed().as_secs_f64();
        let cpu: f64 = self.pids.iter().map(|&p| cpu_seconds(p)).sum();
        let kb = |field| {
            self.pids
                .iter()
                .map(|&p| common::proc_field(p, "status", field))
                .sum::<u64>() as f64
                / 1024.0
        };
        Usage {
            cpu_pct: (cpu - self.cpu_start) / elapsed * 100.0,
            rss_mb: kb("VmRSS:"),
            peak_mb: kb("VmHWM:"),
        }
    }
}

// ---- kinedge ---------------------------------------------------------------------------------

struct Kinedge {
    dir: tempfile::TempDir,
    port: u16,
    process: common::Process,
}

impl Kinedge {
    /// Starts kinedge with one device file per camera URL.
    fn start(cameras: &[String]) -> Kinedge {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = common::free_port();
        let devices = dir.path().join("devices");
        std::fs::create_dir_all(&devices).expect("devices dir");
        for (i, url) in cameras.iter().enumerate() {
            let id = format!("cam{}", i + 1);
            std::fs::write(
                devices.join(format!("{id}.toml")),
                format!("id = \"{id}\"\nkind = \"camera\"\n[camera]\nsource = \"{url}\"\n"),
            )
            .expect("write a device file");
        }
        let config = dir.path().join("kinedge.toml");
        std::fs::write(
            &config,
            format!(
                "[storage]\ndata_dir = \"{}\"\nmin_free_disk = \"64MiB\"\n[api]\nlisten = \"127.0.0.1:{port}\"\n[mqtt]\nenabled = false\n[log]\nlevel = \"warn\"\n[devices]\ndir = \"{}\"\n[video]\nfragment_duration_ms = {FRAGMENT_MS}\n",
                dir.path().join("data").display(),
                devices.display(),
            ),
        )
        .expect("write config");
        let binary = kinedge_binary();
        let child = command(&binary)
            .args(["run", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        Kinedge {
            dir,
            port,
            process: common::Process(child),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn assert_running(&mut self) {
        if let Some(status) = self.process.0.try_wait().ok().flatten() {
            panic!(
                "kinedge exited: {status} (config and data in {})",
                self.dir.path().display()
            );
        }
    }

    async fn wait_ready(&mut self, http: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            self.assert_running();
            let ready = http.get(self.url("/ready")).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(Instant::now() < deadline, "kinedge not ready after 30 s");
            tokio::time::sleep(POLL).await;
        }
    }

    async fn cameras(&self, http: &reqwest::Client) -> Result<Vec<CameraStatus>, String> {
        let response = http
            .get(self.url("/video/cameras"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response.text().await.map_err(|e| e.to_string())?;
        if status == reqwest::StatusCode::NOT_FOUND {
            panic!("GET /video/cameras: 404, this kinedge has no video API");
        }
        if !status.is_success() {
            return Err(format!("GET /video/cameras: HTTP {status}: {body}"));
        }
        serde_json::from_str::<CamerasResponse>(&body)
            .map(|c| c.cameras)
            .map_err(|e| format!("GET /video/cameras: {e}: {body}"))
    }

    /// Waits until every camera has stored a fragment.
    async fn wait_first_fragments(&mut self, http: &reqwest::Client, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            self.assert_running();
            let cameras = self.cameras(http).await;
            if let Ok(list) = &cameras {
                if list.len() == n && list.iter().all(|c| c.fragments > 0) {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "not every camera had a fragment after 60 s: {cameras:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// SIGTERM, as a service manager stops it; killed if it takes longer than 30 s.
    fn stop(mut self) {
        // SAFETY: kill has no memory effects; the pid is our child's.
        unsafe {
            libc::kill(self.process.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.process.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[derive(Deserialize)]
struct CamerasResponse {
    cameras: Vec<CameraStatus>,
}

#[derive(Deserialize, Debug, Clone)]
#[allow(dead_code)] // fields are read through Debug in failure messages
struct CameraStatus {
    name: String,
    state: String,
    #[serde(default)]
    fragments: u64,
    #[serde(default)]
    dropped_fragments: u64,
    #[serde(default)]
    refused_fragments: u64,
    #[serde(default)]
    reconnects: u64,
    #[serde(default)]
    gaps: u64,
    #[serde(default)]
    last_error: Option<serde_json::Value>,
}

// ---- HLS live latency ------------------------------------------------------------------------

/// A media segment of a live playlist: URI, wall-clock start (ms), duration (ms).
#[derive(Debug)]
struct Segment {
    uri: String,
    start_ms: Option<f64>,
    duration_ms: f64,
}

/// The media segments of an HLS playlist with their wall-clock start: an
/// EXT-X-PROGRAM-DATE-TIME dates the segment after it, and those that follow it without one
/// start where the previous one ended (RFC 8216, 4.3.2.6); after an EXT-X-DISCONTINUITY
/// without a date the start is unknown.
fn parse_playlist(text: &str) -> Vec<Segment> {
    let mut segments = Vec::new();
    let mut next_start_ms: Option<f64> = None;
    let mut duration_ms = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(time) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            next_start_ms = chrono::DateTime::parse_from_rfc3339(time)
                .ok()
                .map(|t| t.timestamp_micros() as f64 / 1000.0);
        } else if line == "#EXT-X-DISCONTINUITY" {
            next_start_ms = None;
        } else if let Some(info) = line.strip_prefix("#EXTINF:") {
            duration_ms = info
                .split(',')
                .next()
                .and_then(|d| d.trim().parse::<f64>().ok())
                .map(|s| s * 1000.0);
        } else if !line.starts_with('#') {
            let duration_ms = duration_ms.take().unwrap_or(0.0);
            segments.push(Segment {
                uri: line.to_string(),
                start_ms: next_start_ms,
                duration_ms,
            });
            next_start_ms = next_start_ms.map(|start| start + duration_ms);
        }
    }
    segments
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as f64 / 1000.0)
        .unwrap_or(0.0)
}

/// Polls every camera's live playlist every 100 ms for `seconds`; returns the latency (ms) of
/// each segment that appeared meanwhile (segments already listed at the first poll are not
/// counted) and how many playlist requests failed.
async fn hls_latencies(
    http: &reqwest::Client,
    kinedge: &Kinedge,
    n: usize,
    seconds: u64,
) -> (Vec<f64>, u64) {
    let urls: Vec<String> = (1..=n)
        .map(|i| kinedge.url(&format!("/video/cam{i}/live.m3u8")))
        .collect();
    let mut seen: Vec<Option<HashSet<String>>> = vec![None; n];
    let mut latencies = Vec::new();
    let mut failures = 0;
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut tick = tokio::time::interval(POLL);
    while Instant::now() < end {
        tick.tick().await;
        let bodies = futures_util::future::join_all(urls.iter().map(|url| async move {
            let response = http.get(url).send().await.ok()?;
            if !response.status().is_success() {
                return None;
            }
            response.text().await.ok()
        }))
        .await;
        let now = now_ms();
        for (body, seen) in bodies.into_iter().zip(seen.iter_mut()) {
            let Some(body) = body else {
                failures += 1;
                continue;
            };
            let segments = parse_playlist(&body);
            match seen {
                None => *seen = Some(segments.into_iter().map(|s| s.uri).collect()),
                Some(seen) => {
                    for segment in segments {
                        if seen.insert(segment.uri.clone()) {
                            if let Some(start) = segment.start_ms {
                                latencies.push(now - (start + segment.duration_ms));
                            }
                        }
                    }
                }
            }
        }
    }
    (latencies, failures)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

// ---- one run ---------------------------------------------------------------------------------

struct KinedgeRun {
    usage: Usage,
    fragments_per_camera: f64,
    dropped_per_camera: f64,
    refused: u64,
    reconnects: u64,
    gaps: u64,
    /// Sorted HLS live latencies, ms.
    latencies: Vec<f64>,
    playlist_failures: u64,
}

struct Run {
    cameras: usize,
    peer: Option<Usage>,
    peer_files_per_camera: f64,
    kinedge: Option<KinedgeRun>,
}

/// The idle gateway: no device files; CPU over 5 s after ready, memory at the end.
async fn idle_gateway(http: &reqwest::Client) -> Usage {
    let mut kinedge = Kinedge::start(&[]);
    kinedge.wait_ready(http).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let window = Window::start(vec![kinedge.process.id()]);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let usage = window.finish();
    kinedge.stop();
    usage
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

async fn run(o: &Options, http: &reqwest::Client, camera_bin: &Path, file: &Path, n: usize) -> Run {
    eprintln!("{n} camera(s): starting...");
    let (_cameras, urls): (Vec<_>, Vec<_>) = (0..n).map(|_| start_camera(camera_bin, file)).unzip();
    let peer_dir = tempfile::tempdir().expect("temp dir");
    let recorders: Vec<(common::Process, PathBuf)> = if o.skip_peer {
        Vec::new()
    } else {
        urls.iter()
            .enumerate()
            .map(|(i, url)| {
                let dir = peer_dir.path().join(format!("cam{}", i + 1));
                std::fs::create_dir_all(&dir).expect("recorder dir");
                (start_recorder(url, &dir), dir)
            })
            .collect()
    };
    let mut kinedge = (!o.peer_only).then(|| Kinedge::start(&urls));
    if let Some(k) = kinedge.as_mut() {
        k.wait_ready(http).await;
        k.wait_first_fragments(http, n).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !recorders.iter().all(|(_, dir)| count_files(dir) > 0) {
        assert!(
            Instant::now() < deadline,
            "a GStreamer recorder wrote nothing in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    eprintln!("{n} camera(s): measuring for {} s...", o.seconds);
    let peer_files_before: usize = recorders.iter().map(|(_, d)| count_files(d)).sum();
    let before = match kinedge.as_ref() {
        Some(k) => k.cameras(http).await.expect("camera status"),
        None => Vec::new(),
    };
    let kinedge_window = kinedge
        .as_ref()
        .map(|k| Window::start(vec![k.process.id()]));
    let peer_window = (!recorders.is_empty())
        .then(|| Window::start(recorders.iter().map(|(p, _)| p.id()).collect()));
    let (mut latencies, playlist_failures) = match kinedge.as_ref() {
        Some(k) => hls_latencies(http, k, n, o.seconds).await,
        None => {
            tokio::time::sleep(Duration::from_secs(o.seconds)).await;
            (Vec::new(), 0)
        }
    };
    let kinedge_usage = kinedge_window.map(|w| w.finish());
    let peer = peer_window.map(|w| w.finish());
    let peer_files_after: usize = recorders.iter().map(|(_, d)| count_files(d)).sum();
    for (mut process, _) in recorders {
        if let Some(status) = process.0.try_wait().ok().flatten() {
            panic!("a GStreamer recorder exited during the window: {status}");
        }
    }

    let kinedge_run = match kinedge.take() {
        Some(mut k) => {
            k.assert_running();
            let after = k.cameras(http).await.expect("camera status");
            let delta = |count: fn(&CameraStatus) -> u64| -> u64 {
                let total = |list: &[CameraStatus]| list.iter().map(count).sum::<u64>();
                total(&after).saturating_sub(total(&before))
            };
            latencies.sort_by(|a, b| a.total_cmp(b));
            let run = KinedgeRun {
                usage: kinedge_usage.unwrap_or_default(),
                fragments_per_camera: delta(|c| c.fragments) as f64 / n as f64,
                dropped_per_camera: delta(|c| c.dropped_fragments) as f64 / n as f64,
                refused: delta(|c| c.refused_fragments),
                reconnects: delta(|c| c.reconnects),
                gaps: delta(|c| c.gaps),
                latencies,
                playlist_failures,
            };
            k.stop();
            Some(run)
        }
        None => None,
    };
    Run {
        cameras: n,
        peer,
        peer_files_per_camera: (peer_files_after - peer_files_before) as f64 / n as f64,
        kinedge: kinedge_run,
    }
}

// ---- report ----------------------------------------------------------------------------------

fn print_report(o: &Options, idle: Option<Usage>, runs: &[Run]) {
    println!(
        "\nVideo ingest: N loopback RTSP cameras, 1080p30 H.264 {} Mbit/s CBR (file, no encoding), {} s fragments, {} s window",
        FILE_BITRATE_KBPS / 1000,
        FRAGMENT_MS / 1000,
        o.seconds
    );
    println!(
        "{:<34} {:>7} {:>7} {:>9} {:>7} {:>10} {:>11}",
        "recorder", "cameras", "CPU %", "CPU %/cam", "RSS MB", "RSS MB/cam", "peak RSS MB"
    );
    if let Some(idle) = idle {
        println!(
            "{:<34} {:>7} {:>7.1} {:>9} {:>7.1} {:>10} {:>11.1}",
            "kinedge, idle (no cameras)", 0, idle.cpu_pct, "-", idle.rss_mb, "-", idle.peak_mb
        );
    }
    let idle = idle.unwrap_or_default();
    for r in runs {
        let n = r.cameras as f64;
        if let Some(k) = &r.kinedge {
            println!(
                "{:<34} {:>7} {:>7.1} {:>9.1} {:>7.1} {:>10.1} {:>11.1}",
                "kinedge (per camera: minus idle)",
                r.cameras,
                k.usage.cpu_pct,
                (k.usage.cpu_pct - idle.cpu_pct) / n,
                k.usage.rss_mb,
                (k.usage.rss_mb - idle.rss_mb) / n,
                k.usage.peak_mb
            );
        }
        if let Some(p) = &r.peer {
            println!(
                "{:<34} {:>7} {:>7.1} {:>9.1} {:>7.1} {:>10.1} {:>11.1}",
                "gst-launch, one process per camera",
                r.cameras,
                p.cpu_pct,
                p.cpu_pct / n,
                p.rss_mb,
                p.rss_mb / n,
                p.peak_mb
            );
        }
        if let (Some(k), Some(p)) = (&r.kinedge, &r.peer) {
            println!(
                "{:<34} {:>7} {:>7.2} {:>9} {:>7.2} {:>10} {:>11.2}",
                "kinedge / gst-launch",
                r.cameras,
                k.usage.cpu_pct / p.cpu_pct.max(0.01),
                format!(
                    "{:.2}",
                    (k.usage.cpu_pct - idle.cpu_pct) / p.cpu_pct.max(0.01)
                ),
                k.usage.rss_mb / p.rss_mb.max(0.01),
                format!("{:.2}", (k.usage.rss_mb - idle.rss_mb) / p.rss_mb.max(0.01)),
                k.usage.peak_mb / p.peak_mb.max(0.01)
            );
        }
    }
    if runs.iter().any(|r| r.peer.is_some()) {
        println!(
            "gst-launch files per camera in the window: {}",
            runs.iter()
                .map(|r| format!("{:.1} (N={})", r.peer_files_per_camera, r.cameras))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !runs.iter().any(|r| r.kinedge.is_some()) {
        return;
    }
    let fragment = FRAGMENT_MS as f64;
    println!(
        "\nkinedge, {} s window\n{:<8} {:>10} {:>11} {:>10} {:>5} {:>9} {:>10} {:>7} {:>7} {:>18}",
        o.seconds,
        "cameras",
        "frags/cam",
        "dropped/cam",
        "reconnects",
        "gaps",
        "HLS segs",
        "HLS p50 ms",
        "p99 ms",
        "max ms",
        "p50/p99/max frags"
    );
    for r in runs {
        let Some(k) = &r.kinedge else { continue };
        let (p50, p99) = (
            percentile(&k.latencies, 0.5),
            percentile(&k.latencies, 0.99),
        );
        let max = k.latencies.last().copied().unwrap_or(f64::NAN);
        println!(
            "{:<8} {:>10.1} {:>11.1} {:>10} {:>5} {:>9} {:>10.0} {:>7.0} {:>7.0} {:>18}",
            r.cameras,
            k.fragments_per_camera,
            k.dropped_per_camera,
            k.reconnects,
            k.gaps,
            k.latencies.len(),
            p50,
            p99,
            max,
            format!(
                "{:.2}/{:.2}/{:.2}",
                p50 / fragment,
                p99 / fragment,
                max / fragment
            )
        );
        if k.playlist_failures > 0 || k.refused > 0 {
            println!(
                "  N={}: {} live playlist requests failed, {} fragments refused by the log",
                r.cameras, k.playlist_failures, k.refused
            );
        }
    }
}

fn main() {
    let o = options();
    let file = camera_file(o.seconds);
    let camera_bin = camera_binary();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("http client");
        let idle = if o.peer_only {
            None
        } else {
            eprintln!("kinedge without cameras (idle) for 5 s...");
            Some(idle_gateway(&http).await)
        };
        let mut runs = Vec::new();
        for &n in &o.cameras {
            runs.push(run(&o, &http, &camera_bin, &file, n).await);
        }
        print_report(&o, idle, &runs);
    });
}
