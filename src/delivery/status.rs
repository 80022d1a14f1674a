//! What a delivery stream reports about itself: state, per-shard checkpoints, counters and the
//! last error. The runner updates a [`StatusCell`]; `/deliveries` and `kinedge deliveries
//! status` read snapshots of it, with backlogs computed from the shards' live counters.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

use super::checkpoint::DeliveryCheckpoint;
use crate::storage::Catalog;
use crate::streams::SequenceNumber;

/// What a delivery stream is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Delivering, or up to date and waiting for records.
    Delivering,
    /// The destination is unreachable; retrying while records stay in the shard log.
    BackingOff,
    /// The destination answers with errors (or cannot be set up); retrying.
    Failing,
    /// Not reading: the source stream does not exist (yet), or the gateway is stopping.
    Paused,
    /// A `source = "video"` delivery stream: cameras upload through it (see `uploads`).
    Video,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Delivering => "delivering",
            DeliveryState::BackingOff => "backing_off",
            DeliveryState::Failing => "failing",
            DeliveryState::Paused => "paused",
            DeliveryState::Video => "video",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LastError {
    pub message: String,
    /// RFC 3339.
    pub at: String,
    pub at_ms: u64,
}

/// Per-shard delivery progress, as the runner last committed it.
#[derive(Debug, Clone, Copy)]
pub struct ShardProgress {
    pub shard_index: u64,
    pub checkpoint: DeliveryCheckpoint,
    /// True once a record of this shard was delivered (or skipped as lost) by this delivery
    /// stream; the checkpoint's position is then a real sequence number.
    pub delivered_any: bool,
    /// Where reading stands (ahead of the checkpoint by what is buffered or on its way).
    pub read: DeliveryCheckpoint,
}

/// The runner's view, updated as it goes.
#[derive(Debug, Clone)]
pub struct StatusData {
    pub state: DeliveryState,
    /// Storage id of the source stream's shards -> progress.
    pub shards: BTreeMap<u64, ShardProgress>,
    pub delivered_records: u64,
    pub delivered_bytes: u64,
    pub batches: u64,
    pub retries: u64,
    pub failed_records: u64,
    pub dropped_records: u64,
    /// Arrival time (epoch ms) of the oldest record read but not yet confirmed.
    pub oldest_pending_ms: Option<u64>,
    pub last_error: Option<LastError>,
    /// Why the stream is paused, when it is.
    pub paused_reason: Option<String>,
}

impl Default for StatusData {
    fn default() -> Self {
        StatusData {
            state: DeliveryState::Delivering,
            shards: BTreeMap::new(),
            delivered_records: 0,
            delivered_bytes: 0,
            batches: 0,
            retries: 0,
            failed_records: 0,
            dropped_records: 0,
            oldest_pending_ms: None,
            last_error: None,
            paused_reason: None,
        }
    }
}

/// Shared between a runner and the status readers.
#[derive(Debug, Default)]
pub struct StatusCell(Mutex<StatusData>);

impl StatusCell {
    pub fn update<T>(&self, f: impl FnOnce(&mut StatusData) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn get(&self) -> StatusData {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// `/deliveries` entry for one delivery stream.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryStatus {
    pub name: String,
    pub state: DeliveryState,
    /// `{"stream": NAME}` or `"direct_put"`.
    pub source: serde_json::Value,
    pub destination: DestinationStatus,
    pub priority: u8,
    pub backlog_records: u64,
    pub backlog_bytes: u64,
    pub oldest_undelivered_age_ms: Option<u64>,
    pub delivered_records: u64,
    pub delivered_bytes: u64,
    pub batches: u64,
    pub retries: u64,
    pub failed_records: u64,
    pub dropped_records: u64,
    pub records_lost: u64,
    pub last_error: Option<LastError>,
    pub paused_reason: Option<String>,
    pub shards: Vec<ShardStatus>,
    /// Video delivery streams: the cameras uploading through it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub uploads: Vec<UploadStatus>,
}

#[cfg(feature = "video")]
pub use crate::video::uploads::{UploadState, UploadStatus};

/// Without video there are no camera uploads to show.
#[cfg(not(feature = "video"))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum UploadStatus {}

/// The uploads' backlog: (fragments, bytes).
#[cfg(feature = "video")]
pub fn upload_backlog(uploads: &[UploadStatus]) -> (u64, u64) {
    uploads.iter().fold((0, 0), |(fragments, bytes), u| {
        (fragments + u.backlog_fragments, bytes + u.backlog_bytes)
    })
}

/// Without video there are no uploads.
#[cfg(not(feature = "video"))]
pub fn upload_backlog(_uploads: &[UploadStatus]) -> (u64, u64) {
    (0, 0)
}

#[derive(Debug, Clone, Serialize)]
pub struct DestinationStatus {
    #[serde(rename = "type")]
    pub kind: String,
    pub target: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShardStatus {
    pub shard_id: String,
    pub last_delivered_sequence: Option<String>,
    pub backlog_records: u64,
    pub backlog_bytes: u64,
    pub records_lost: u64,
}

/// Backlog of one shard: records appended after the checkpoint and not trimmed since.
pub fn shard_backlog(catalog: &Catalog, uid: u64, checkpoint: &DeliveryCheckpoint) -> (u64, u64) {
    let Some(live) = catalog.live(uid) else {
        return (0, 0);
    };
    let state = live.state();
    let records_from = checkpoint.records_through.max(state.trimmed);
    let bytes_from = checkpoint.bytes_through.max(state.trimmed_bytes);
    (
        state.appended.saturating_sub(records_from),
        state.appended_bytes.saturating_sub(bytes_from),
    )
}

/// Records of a shard lost to trimming: those the runner noticed while reading, plus those
/// trimmed beyond where it has read (it notices them when it reads there).
pub fn shard_lost(catalog: &Catalog, uid: u64, read: &DeliveryCheckpoint) -> u64 {
    let unnoticed = catalog
        .live(uid)
        .map(|live| live.state().trimmed.saturating_sub(read.records_through))
        .unwrap_or(0);
    read.lost + unnoticed
}

pub fn sequence_of(shard_index: u64, checkpoint: &DeliveryCheckpoint) -> String {
    SequenceNumber {
        shard_index,
        position: checkpoint.position,
    }
    .to_string()
}

pub fn rfc3339(ms: u64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms as i64)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}
