//! The fragment log: every camera's fMP4 fragments and init segments, kept durably in a redb
//! database of their own (not the stream database), so that megabytes of video never delay the
//! telemetry commits.
//!
//! - Numbers: each camera numbers its fragments from 1; the last number handed out lives in the
//!   camera's state row, so numbers are never reused, whatever was deleted and however often the
//!   gateway restarted. Deletion always takes the oldest (lowest numbers) first, so a camera
//!   holds one contiguous run of numbers.
//! - Durability: `append` writes the fragment, its chunks, its time-index row and the camera's
//!   state in one write transaction committed with `Durability::Immediate` before it returns; a
//!   power cut loses at most the fragment being written, and redb repairs the file on open.
//! - Chunks: fragment data is stored in chunks below 256 KiB (`schema::CHUNK_BYTES`), because
//!   redb rounds a value's page up to a power of two.
//! - Size: the camera's state row keeps the exact sum of its fragment sizes, updated in the same
//!   transaction as every append and delete; nothing is recomputed by scanning.
//! - Retention: `append` applies `max_bytes` and the free-disk guard inside its own transaction
//!   (evicting the oldest fragments, or refusing); `trim` applies `max_age_ms` in transactions of
//!   at most `TRIM_BATCH` fragments, then drops gaps that end before the oldest fragment left and
//!   init segments that no fragment plays with any more (except the camera's latest).
//! - Time lookups read the time index `(camera, producer_ms, number) -> duration_ms` from
//!   `start_ms - longest duration ever appended` (kept in the state row) to `end_ms`, so they
//!   read only the index rows near the range and stay right when a camera's clock jumps (the
//!   producer time need not increase with the number, which rules out a binary search by
//!   number).
//!
//! Every method blocks; async callers use `spawn_blocking`. Cameras may append from several
//! threads at once: redb runs one write transaction at a time.
//!
//! The parts: `writer` (appends, init segments, gaps, checkpoints; the tables of a write
//! transaction), `reader` (lookups in short read transactions), `retention` (trim, delete
//! after upload, refusals), `schema` (tables and row layouts), `streams` (the registry of
//! streams created through the Kinesis Video API, and their deletion). Debug builds check the number
//! run and the state row's counts where a write could break them (`debug_assert!`).

mod reader;
mod retention;
mod schema;
mod streams;
#[cfg(test)]
mod tests;
mod writer;

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, Durability, ReadTransaction, ReadableDatabase, WriteTransaction};

pub use streams::{RegistryError, StreamRecord, StreamStatus};
use writer::Tables;

/// At most this many fragments are deleted in one write transaction by `trim` and
/// `delete_through`.
const TRIM_BATCH: usize = 200;
/// Gap rows kept per camera; recording more drops the oldest.
pub const MAX_GAPS_PER_CAMERA: u64 = 1_000;
/// redb's page cache for the video file: video is written once and read rarely (the OS page
/// cache serves live playback), so the cache stays small; each camera's resident memory
/// counts it (redb's default is 1 GiB).
const CACHE_BYTES: usize = 4 << 20;
/// The longest codec name a fragment may carry ("h264", "h265").
const MAX_CODEC_LEN: usize = 32;

/// The fragment log (cheap to clone; all clones share one database).
#[derive(Clone)]
pub struct FragmentLog {
    db: Arc<Database>,
    path: PathBuf,
    /// The streams created through the Kinesis Video API (`streams`).
    registry: streams::SharedRegistry,
    /// Bumped after every committed append (any camera): live readers wait on it.
    appended: Arc<tokio::sync::watch::Sender<u64>>,
}

/// What is stored about one fragment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FragmentMeta {
    pub number: u64,
    /// When the camera produced it (epoch ms).
    pub producer_ms: i64,
    /// When it was committed (epoch ms), set by `append`.
    pub server_ms: i64,
    pub duration_ms: u32,
    /// Bytes of fragment data.
    pub size: u64,
    pub keyframe: bool,
    /// The first fragment of a new recording run (the camera reconnected or the gateway
    /// restarted): its stream timestamps do not continue the previous fragment's.
    pub discontinuity: bool,
    /// Fragments with `discontinuity` set so far, this one included: an HLS playlist whose
    /// first segment is this fragment has this `EXT-X-DISCONTINUITY-SEQUENCE`.
    pub discontinuity_sequence: u64,
    /// "h264" or "h265".
    pub codec: String,
    pub width: u32,
    pub height: u32,
    /// The init segment it plays with (see `FragmentLog::put_init`).
    pub init_id: u64,
}

/// A fragment handed to `append`.
#[derive(Debug, Clone)]
pub struct NewFragment {
    pub producer_ms: i64,
    pub duration_ms: u32,
    pub keyframe: bool,
    pub discontinuity: bool,
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub init_id: u64,
    pub data: bytes::Bytes,
}

/// What a camera does when a new fragment does not fit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum VideoOnFull {
    /// Delete the camera's oldest fragments, in the append's transaction, until it fits.
    #[default]
    DeleteOldest,
    /// Refuse the new fragment; nothing is deleted.
    DenyNew,
}

/// A camera's retention.
#[derive(Debug, Clone)]
pub struct RetentionPolicy {
    /// Fragments that ended more than this long ago are deleted by `trim`; 0: no age limit.
    pub max_age_ms: u64,
    /// Largest sum of the camera's fragment sizes.
    pub max_bytes: Option<u64>,
    pub on_full: VideoOnFull,
    /// Free bytes that must stay on the file system holding the database after an append
    /// (0: no guard).
    pub min_free_disk: u64,
}

/// A time when a camera produced nothing (lost, restarted).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Gap {
    pub start_ms: i64,
    pub end_ms: i64,
    pub reason: String,
}

/// What one camera stores; the evicted and denied counts are lifetime counters.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CameraUsage {
    pub fragments: u64,
    pub bytes: u64,
    pub first: Option<FragmentMeta>,
    pub last: Option<FragmentMeta>,
    /// Fragments deleted by retention (max_bytes, free disk, age); not `delete_through`.
    pub evicted_fragments: u64,
    pub evicted_bytes: u64,
    /// Fragments refused (full with on_full = deny_new, too large).
    pub denied_fragments: u64,
}

/// A committed append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    pub meta: FragmentMeta,
    /// Oldest fragments deleted to make room for it.
    pub evicted_fragments: u64,
    pub evicted_bytes: u64,
}

/// What a `trim` or `delete_through` deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrimOutcome {
    pub fragments: u64,
    pub bytes: u64,
}

/// Which limit refused a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FullReason {
    /// The camera's `max_bytes`, with on_full = deny_new.
    MaxBytes,
    /// `min_free_disk`, with on_full = deny_new.
    MinFreeDisk { free: u64 },
    /// `min_free_disk`, with on_full = delete_oldest but too little of the camera left to
    /// delete.
    NothingToDelete { free: u64 },
}

impl Display for FullReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FullReason::MaxBytes => {
                write!(
                    f,
                    "the camera's max_bytes is reached and on_full = \"deny_new\""
                )
            }
            FullReason::MinFreeDisk { free } => write!(
                f,
                "the disk would have less than min_free_disk free ({free} bytes free) and \
                 on_full = \"deny_new\""
            ),
            FullReason::NothingToDelete { free } => write!(
                f,
                "the disk would have less than min_free_disk free ({free} bytes free) and the \
                 camera has too few fragments left to delete"
            ),
        }
    }
}

/// Why a fragment log request failed.
#[derive(Debug, thiserror::Error)]
pub enum VideoLogError {
    #[error("video storage failure: {0}")]
    Storage(String),
    /// `needed` and `limit`: for max_bytes, the camera's bytes with the new fragment and
    /// max_bytes; for min_free_disk, the fragment size and min_free_disk.
    #[error(
        "the video log of camera {camera:?} is full: {reason} (needed {needed} bytes, limit \
         {limit} bytes)"
    )]
    Full {
        camera: String,
        needed: u64,
        limit: u64,
        reason: FullReason,
    },
    #[error(
        "a fragment of {size} bytes is larger than the max_bytes ({max_bytes}) of camera \
         {camera:?}"
    )]
    TooLarge {
        camera: String,
        size: u64,
        max_bytes: u64,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
}

type Result<T, E = VideoLogError> = std::result::Result<T, E>;

/// Turns a redb error into `VideoLogError::Storage`, saying what was being done.
trait Context<T> {
    fn context(self, doing: &str) -> Result<T>;
}

impl<T, E: Display> Context<T> for std::result::Result<T, E> {
    fn context(self, doing: &str) -> Result<T> {
        self.map_err(|e| VideoLogError::Storage(format!("{doing}: {e}")))
    }
}

impl FragmentLog {
    /// Opens (or creates, with its parent directory) the database at `path`, repairing it
    /// after an unclean shutdown.
    pub fn open(path: &Path) -> Result<FragmentLog> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                VideoLogError::Io(format!("cannot create directory {}", parent.display()), e)
            })?;
        }
        let mut builder = Database::builder();
        builder.set_cache_size(CACHE_BYTES);
        builder.set_repair_callback(|session| {
            tracing::warn!(
                progress = format!("{:.0}%", session.progress() * 100.0),
                "repairing the video database after an unclean shutdown"
            );
        });
        let db = builder
            .create(path)
            .context(&format!("cannot open video database {}", path.display()))?;
        let registry = Arc::new(streams::Registry::load(&db)?);
        let log = FragmentLog {
            db: Arc::new(db),
            path: path.to_path_buf(),
            registry,
            appended: Arc::new(tokio::sync::watch::Sender::new(0)),
        };
        let txn = log.begin_write()?;
        Tables::open(&txn)?;
        txn.open_table(schema::CHECKPOINTS)
            .context("create upload checkpoints")?;
        txn.commit().context("create video tables")?;
        Ok(log)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Changes after every committed append of any camera or stream: a live reader (GetMedia)
    /// waits on it instead of polling.
    pub fn appends(&self) -> tokio::sync::watch::Receiver<u64> {
        self.appended.subscribe()
    }

    fn begin_write(&self) -> Result<WriteTransaction> {
        let mut txn = self
            .db
            .begin_write()
            .context("begin video write transaction")?;
        txn.set_durability(Durability::Immediate)
            .context("set durability")?;
        Ok(txn)
    }

    fn begin_read(&self) -> Result<ReadTransaction> {
        self.db.begin_read().context("begin video read transaction")
    }
}

fn fragment_end(meta: &FragmentMeta) -> i64 {
    meta.producer_ms.saturating_add(i64::from(meta.duration_ms))
}

fn number_range(camera: &str) -> std::ops::RangeInclusive<(&str, u64)> {
    (camera, 0)..=(camera, u64::MAX)
}

fn id_range(camera: &str) -> std::ops::RangeInclusive<(&str, u64)> {
    number_range(camera)
}

/// The camera's gaps that start before `before`.
fn gap_range(camera: &str, before: i64) -> std::ops::Range<(&str, i64, i64)> {
    (camera, i64::MIN, i64::MIN)..(camera, before, i64::MIN)
}
