//! The writer's counters, for `/status`, `/metrics` and `kinedge status`.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

use super::error::FaultKind;

/// Counters the writer keeps, for status and metrics.
#[derive(Debug)]
pub struct WriterStats {
    pub commits: AtomicU64,
    pub records: AtomicU64,
    pub record_bytes: AtomicU64,
    pub commit_micros: AtomicU64,
    pub rejected_quota: AtomicU64,
    pub rejected_disk: AtomicU64,
    pub trimmed_records: AtomicU64,
    /// Records trimmed because they were older than the stream's retention.
    pub trimmed_by_age: AtomicU64,
    /// Records trimmed to keep an `overwrite_oldest` stream within `max_bytes`.
    pub trimmed_by_size: AtomicU64,
    /// Seconds from the start of a group commit to its durable end.
    pub commit_seconds: Histogram,
    /// Records stored by one group commit.
    pub records_per_commit: Histogram,
    /// Failed commits by kind of fault (`FaultKind` order).
    pub faults: [AtomicU64; 5],
}

impl WriterStats {
    pub(super) fn count_fault(&self, kind: FaultKind) {
        self.faults[fault_index(kind)].fetch_add(1, Ordering::Relaxed);
    }

    /// Failed commits of one kind since the gateway started.
    pub fn faults(&self, kind: FaultKind) -> u64 {
        self.faults[fault_index(kind)].load(Ordering::Relaxed)
    }
}

/// Every fault kind, in the order of `WriterStats::faults`.
pub const FAULT_KINDS: [FaultKind; 5] = [
    FaultKind::NoSpace,
    FaultKind::Io,
    FaultKind::Corrupted,
    FaultKind::Unavailable,
    FaultKind::Other,
];

fn fault_index(kind: FaultKind) -> usize {
    FAULT_KINDS.iter().position(|k| *k == kind).unwrap_or(4)
}

impl Default for WriterStats {
    fn default() -> Self {
        WriterStats {
            commits: AtomicU64::new(0),
            records: AtomicU64::new(0),
            record_bytes: AtomicU64::new(0),
            commit_micros: AtomicU64::new(0),
            rejected_quota: AtomicU64::new(0),
            rejected_disk: AtomicU64::new(0),
            trimmed_records: AtomicU64::new(0),
            trimmed_by_age: AtomicU64::new(0),
            trimmed_by_size: AtomicU64::new(0),
            // 0.5 ms .. 4 s: an fsync on an SD card takes milliseconds, a slow card seconds.
            commit_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            // 1 .. 16384 records.
            records_per_commit: Histogram::new(exponential_buckets(1.0, 4.0, 8)),
            faults: Default::default(),
        }
    }
}

/// A snapshot of [`WriterStats`].
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct WriterStatsSnapshot {
    pub commits: u64,
    pub records: u64,
    pub record_bytes: u64,
    pub records_per_commit: f64,
    pub mean_commit_micros: f64,
    pub rejected_quota: u64,
    pub rejected_disk: u64,
    pub trimmed_records: u64,
    /// Bytes written into the database file and fsyncs since the gateway started.
    pub bytes_written: u64,
    pub syncs: u64,
    /// Failed commits (all kinds) since the gateway started.
    pub failed_commits: u64,
}
