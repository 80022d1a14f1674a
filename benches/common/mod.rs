//! What the benchmark commands share: loopback ports, server processes that stop with the
//! benchmark, and reading a process's counters from /proc.

use std::net::TcpListener;
use std::process::Child;

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The kinedge binary a benchmark runs: `KINEDGE_BIN` when set (to compare builds on the
/// same machine), else the one cargo built with the benchmark.
#[allow(dead_code)] // not every benchmark starts kinedge
pub fn kinedge_bin() -> std::path::PathBuf {
    std::env::var_os("KINEDGE_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_kinedge").into())
}

/// A server process, killed when dropped so that no benchmark leaves one behind.
pub struct Process(pub Child);

impl Process {
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A numeric field of /proc/PID/FILE, e.g. `("io", "write_bytes:")` or `("status", "VmRSS:")`.
pub fn proc_field(pid: u32, file: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// mosquitto, the MQTT peer: `$MOSQUITTO_BIN` or Debian's `/usr/sbin/mosquitto`, if present.
#[allow(dead_code)] // only the MQTT benchmarks run it
pub fn mosquitto_bin() -> Option<std::path::PathBuf> {
    let bin = std::env::var_os("MOSQUITTO_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("/usr/sbin/mosquitto"));
    bin.exists().then_some(bin)
}
