//! `GET /metrics`: the gateway's counters in the Prometheus text format (0.0.4).
//!
//! Nothing is counted twice, and nothing here knows a part's internals: each part implements
//! [`Report`] beside its code (`storage/metrics.rs`, `ingest/mqtt/metrics.rs`,
//! `delivery/metrics.rs`, `video/metrics.rs`, the API's counters), the gateway hands the list
//! of reporters to the API, and a scrape renders the process's own numbers followed by each
//! reporter's, in the order given.

mod process;

use std::sync::Arc;

use crate::observe::{gauge1, MetricsWriter, Report};

pub use crate::observe::CONTENT_TYPE;
pub use process::ProcessStats;

/// The registered reporters, in the order their families appear on `/metrics`.
pub type Reporters = Vec<Arc<dyn Report>>;

/// Renders every metric: the build, readiness and process first, then each reporter's.
/// Blocking (reporters read the databases' files and the cameras' usage): call it from a
/// blocking thread.
pub fn render(ready: bool, reporters: &[Arc<dyn Report>]) -> Result<String, std::fmt::Error> {
    let mut out = MetricsWriter::default();
    Process { ready }.report(&mut out);
    for reporter in reporters {
        reporter.report(&mut out);
    }
    out.encode()
}

/// The running build, readiness (as `GET /ready`) and the process's resources.
struct Process {
    ready: bool,
}

impl Report for Process {
    fn report(&self, out: &mut MetricsWriter) {
        out.gauge(
            "kinedge_build_info",
            "The running version (value 1).",
            vec![(
                vec![("version", env!("CARGO_PKG_VERSION").to_string())],
                1.0,
            )],
        );
        out.gauge(
            "kinedge_ready",
            "1 when storage, the MQTT broker and the API are up (as GET /ready).",
            gauge1(if self.ready { 1.0 } else { 0.0 }),
        );
        let process = ProcessStats::read();
        if let Some(start) = process.start_time_seconds {
            out.gauge(
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch, in seconds.",
                gauge1(start),
            );
        }
        if let Some(rss) = process.resident_memory_bytes {
            out.gauge(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                gauge1(rss as f64),
            );
        }
        if let Some(cpu) = process.cpu_seconds {
            out.seconds_counter(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                cpu,
            );
        }
        if let Some(fds) = process.open_fds {
            out.gauge(
                "process_open_fds",
                "Open file descriptors.",
                gauge1(fds as f64),
            );
        }
    }
}
