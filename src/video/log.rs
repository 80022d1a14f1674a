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

mod schema;
#[cfg(test)]
mod tests;

use std::fmt::Display;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{
    AccessGuard, Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable,
    StorageError, Table, WriteTransaction,
};

use schema::{CameraState, CHUNK_BYTES};

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
        let log = FragmentLog {
            db: Arc::new(db),
            path: path.to_path_buf(),
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

    /// Keeps an init segment and returns its id; bytes identical to the camera's latest init
    /// segment return that one's id without writing. Ids increase per camera.
    pub fn put_init(&self, camera: &str, data: &[u8]) -> Result<u64> {
        let txn = self.begin_write()?;
        let id = {
            let mut t = Tables::open(&txn)?;
            let latest = match t
                .inits
                .range(id_range(camera))
                .context("read init segments")?
                .next_back()
            {
                Some(entry) => {
                    let (key, value) = entry.context("read init segments")?;
                    Some((key.value().1, value.value() == data))
                }
                None => None,
            };
            if let Some((id, true)) = latest {
                return Ok(id);
            }
            let id = latest.map_or(1, |(id, _)| id + 1);
            t.inits
                .insert((camera, id), data)
                .context("write init segment")?;
            if t.state(camera)?.is_none() {
                t.save_state(camera, &CameraState::default())?;
            }
            id
        };
        txn.commit().context("commit init segment")?;
        Ok(id)
    }

    pub fn init_segment(&self, camera: &str, id: u64) -> Result<Option<Vec<u8>>> {
        let txn = self.begin_read()?;
        let inits = txn
            .open_table(schema::INITS)
            .context("open init segments")?;
        let found = inits.get((camera, id)).context("read init segment")?;
        Ok(found.map(|v| v.value().to_vec()))
    }

    /// Stores a fragment as the camera's next number and commits it durably, after applying
    /// `max_bytes` and `min_free_disk` (evicting the oldest fragments or refusing).
    pub fn append(
        &self,
        camera: &str,
        fragment: NewFragment,
        policy: &RetentionPolicy,
        now_ms: i64,
    ) -> Result<AppendOutcome> {
        if fragment.codec.len() > MAX_CODEC_LEN {
            return Err(VideoLogError::Invalid(format!(
                "codec name of {} bytes (at most {MAX_CODEC_LEN})",
                fragment.codec.len()
            )));
        }
        let size = fragment.data.len() as u64;
        let disk_short = self.free_disk_short(size, policy.min_free_disk);
        let txn = self.begin_write()?;
        let appended = {
            let mut t = Tables::open(&txn)?;
            t.append(camera, fragment, policy, now_ms, disk_short)?
        };
        txn.commit().context("commit fragment")?;
        appended.inspect_err(|error| tracing::debug!(camera, %error, "fragment refused"))
    }

    pub fn fragment(&self, camera: &str, number: u64) -> Result<Option<FragmentMeta>> {
        let txn = self.begin_read()?;
        let fragments = open_fragments(&txn)?;
        get_meta(&fragments, camera, number)
    }

    /// The fragment's data (its chunks concatenated).
    pub fn read(&self, camera: &str, number: u64) -> Result<Option<Vec<u8>>> {
        let txn = self.begin_read()?;
        let Some(meta) = get_meta(&open_fragments(&txn)?, camera, number)? else {
            return Ok(None);
        };
        let chunks = txn
            .open_table(schema::CHUNKS)
            .context("open fragment chunks")?;
        let mut data = Vec::with_capacity(usize::try_from(meta.size).unwrap_or(0));
        let range = (camera, number, 0u32)..=(camera, number, u32::MAX);
        for entry in chunks.range(range).context("read fragment chunks")? {
            let (_, chunk) = entry.context("read fragment chunks")?;
            data.extend_from_slice(chunk.value());
        }
        if data.len() as u64 != meta.size {
            return Err(VideoLogError::Storage(format!(
                "fragment {number} of camera {camera:?} has {} bytes of chunks, not {}",
                data.len(),
                meta.size
            )));
        }
        Ok(Some(data))
    }

    /// Fragments overlapping [start_ms, end_ms): producer_ms < end_ms && producer_ms +
    /// duration_ms > start_ms, ascending by number, at most `limit`.
    pub fn fragments(
        &self,
        camera: &str,
        start_ms: i64,
        end_ms: i64,
        limit: usize,
    ) -> Result<Vec<FragmentMeta>> {
        if limit == 0 || end_ms <= start_ms {
            return Ok(Vec::new());
        }
        let txn = self.begin_read()?;
        let Some(state) = read_state(&open_cameras(&txn)?, camera)? else {
            return Ok(Vec::new());
        };
        let longest = i64::try_from(state.max_duration_ms).unwrap_or(i64::MAX);
        let from = start_ms.saturating_sub(longest);
        let times = txn
            .open_table(schema::TIMES)
            .context("open fragment times")?;
        let mut numbers = Vec::new();
        let range = (camera, from, 0u64)..(camera, end_ms, 0u64);
        for entry in times.range(range).context("read fragment times")? {
            let (key, duration) = entry.context("read fragment times")?;
            let (_, producer_ms, number) = key.value();
            if producer_ms.saturating_add(i64::from(duration.value())) > start_ms {
                numbers.push(number);
            }
        }
        numbers.sort_unstable();
        numbers.truncate(limit);
        let fragments = open_fragments(&txn)?;
        numbers
            .into_iter()
            .map(|number| {
                get_meta(&fragments, camera, number)?.ok_or_else(|| {
                    VideoLogError::Storage(format!(
                        "fragment {number} of camera {camera:?} is in the time index but not stored"
                    ))
                })
            })
            .collect()
    }

    /// The last `n` fragments, ascending.
    pub fn latest(&self, camera: &str, n: usize) -> Result<Vec<FragmentMeta>> {
        let txn = self.begin_read()?;
        let fragments = open_fragments(&txn)?;
        let range = fragments
            .range(number_range(camera))
            .context("read fragments")?;
        let mut out = range
            .rev()
            .take(n)
            .map(|entry| decode_entry(camera, entry))
            .collect::<Result<Vec<_>>>()?;
        out.reverse();
        Ok(out)
    }

    /// Fragments with number > after, ascending, at most limit (for the uploader).
    pub fn fragments_after(
        &self,
        camera: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<FragmentMeta>> {
        let txn = self.begin_read()?;
        let fragments = open_fragments(&txn)?;
        let range = (
            Bound::Excluded((camera, after)),
            Bound::Included((camera, u64::MAX)),
        );
        let range = fragments.range(range).context("read fragments")?;
        range
            .take(limit)
            .map(|entry| decode_entry(camera, entry))
            .collect()
    }

    pub fn usage(&self, camera: &str) -> Result<CameraUsage> {
        let txn = self.begin_read()?;
        let Some(state) = read_state(&open_cameras(&txn)?, camera)? else {
            return Ok(CameraUsage::default());
        };
        let fragments = open_fragments(&txn)?;
        let mut range = fragments
            .range(number_range(camera))
            .context("read fragments")?;
        let first = range.next().map(|e| decode_entry(camera, e)).transpose()?;
        let last = range
            .next_back()
            .map(|e| decode_entry(camera, e))
            .transpose()?;
        Ok(CameraUsage {
            fragments: state.fragments,
            bytes: state.bytes,
            last: last.or_else(|| first.clone()),
            first,
            evicted_fragments: state.evicted_fragments,
            evicted_bytes: state.evicted_bytes,
            denied_fragments: state.denied_fragments,
        })
    }

    /// Every camera that has stored anything (even if all its fragments are gone).
    pub fn cameras(&self) -> Result<Vec<String>> {
        let txn = self.begin_read()?;
        let cameras = open_cameras(&txn)?;
        let range = cameras.iter().context("read cameras")?;
        range
            .map(|entry| {
                let (key, _) = entry.context("read cameras")?;
                Ok(key.value().to_string())
            })
            .collect()
    }

    /// Deletes the camera's fragments that ended before `now_ms - max_age_ms` (and, with
    /// on_full = delete_oldest, any beyond a lowered max_bytes), oldest first, at most
    /// `TRIM_BATCH` per transaction; it stops at the first fragment that may stay (numbers
    /// stay contiguous, even when the camera's clock jumped). Then drops gaps that end before
    /// the oldest fragment left (or, when none is left, before the age cutoff) and init
    /// segments nothing plays with any more.
    pub fn trim(&self, camera: &str, policy: &RetentionPolicy, now_ms: i64) -> Result<TrimOutcome> {
        let cutoff = (policy.max_age_ms > 0)
            .then(|| now_ms.saturating_sub(i64::try_from(policy.max_age_ms).unwrap_or(i64::MAX)));
        let max_bytes = match policy.on_full {
            VideoOnFull::DeleteOldest => policy.max_bytes,
            VideoOnFull::DenyNew => None,
        };
        self.delete_oldest_while(camera, Deletion::Retention, cutoff, |fragment, state| {
            cutoff.is_some_and(|cutoff| fragment_end(fragment) < cutoff)
                || max_bytes.is_some_and(|max| state.bytes > max)
        })
    }

    /// Deletes the camera's fragments numbered `number` and below (delete after upload).
    pub fn delete_through(&self, camera: &str, number: u64) -> Result<TrimOutcome> {
        self.delete_oldest_while(camera, Deletion::Requested, None, |fragment, _| {
            fragment.number <= number
        })
    }

    /// Records a time when the camera produced nothing; at most `MAX_GAPS_PER_CAMERA` are
    /// kept (the oldest go first). Recording the same start and end again replaces the reason.
    pub fn record_gap(&self, camera: &str, gap: Gap) -> Result<()> {
        if gap.end_ms < gap.start_ms {
            return Err(VideoLogError::Invalid(format!(
                "a gap cannot end ({}) before it starts ({})",
                gap.end_ms, gap.start_ms
            )));
        }
        let txn = self.begin_write()?;
        Tables::open(&txn)?.insert_gap(camera, &gap)?;
        txn.commit().context("commit gap")
    }

    /// Gaps overlapping [start_ms, end_ms), ascending by start.
    pub fn gaps(&self, camera: &str, start_ms: i64, end_ms: i64) -> Result<Vec<Gap>> {
        let txn = self.begin_read()?;
        let gaps = txn.open_table(schema::GAPS).context("open gaps")?;
        let mut out = Vec::new();
        for entry in gaps.range(gap_range(camera, end_ms)).context("read gaps")? {
            let (key, reason) = entry.context("read gaps")?;
            let (_, start, end) = key.value();
            if end > start_ms {
                out.push(Gap {
                    start_ms: start,
                    end_ms: end,
                    reason: reason.value().to_string(),
                });
            }
        }
        Ok(out)
    }

    /// The highest fragment number of the camera uploaded to `destination`.
    pub fn upload_checkpoint(&self, camera: &str, destination: &str) -> Result<Option<u64>> {
        let txn = self.begin_read()?;
        let checkpoints = txn
            .open_table(schema::CHECKPOINTS)
            .context("open upload checkpoints")?;
        let found = checkpoints
            .get((camera, destination))
            .context("read upload checkpoint")?;
        Ok(found.map(|v| v.value()))
    }

    /// Sets the checkpoint to `number` (it may move back, to upload again).
    pub fn set_upload_checkpoint(
        &self,
        camera: &str,
        destination: &str,
        number: u64,
    ) -> Result<()> {
        let txn = self.begin_write()?;
        txn.open_table(schema::CHECKPOINTS)
            .context("open upload checkpoints")?
            .insert((camera, destination), number)
            .context("write upload checkpoint")?;
        txn.commit().context("commit upload checkpoint")
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

    /// `Some(free bytes)` when writing `size` bytes would leave less than `min_free_disk` free.
    fn free_disk_short(&self, size: u64, min_free_disk: u64) -> Option<u64> {
        if min_free_disk == 0 {
            return None;
        }
        match crate::storage::disk::free_bytes(&self.path) {
            Ok(free) if free.saturating_sub(size) < min_free_disk => Some(free),
            Ok(_) => None,
            Err(error) => {
                tracing::warn!(%error, "cannot read free disk space; not refusing video");
                None
            }
        }
    }

    /// Deletes the camera's oldest fragments while `doomed` says so, in transactions of at
    /// most `TRIM_BATCH`; the last transaction also drops old gaps and unused init segments.
    /// `gap_cutoff`: gaps ending before it go when no fragment is left.
    fn delete_oldest_while(
        &self,
        camera: &str,
        deletion: Deletion,
        gap_cutoff: Option<i64>,
        mut doomed: impl FnMut(&FragmentMeta, &CameraState) -> bool,
    ) -> Result<TrimOutcome> {
        let mut outcome = TrimOutcome::default();
        let mut deleted_end: Option<i64> = None;
        loop {
            let txn = self.begin_write()?;
            let (changed, finished) = {
                let mut t = Tables::open(&txn)?;
                let Some(mut state) = t.state(camera)? else {
                    return Ok(outcome);
                };
                let before = state;
                let mut batch = 0;
                let finished = loop {
                    if batch == TRIM_BATCH {
                        break false;
                    }
                    let oldest = match t.first(camera)? {
                        Some(oldest) if doomed(&oldest, &state) => oldest,
                        _ => break true,
                    };
                    t.delete_fragment(camera, &oldest, &mut state)?;
                    batch += 1;
                    outcome.fragments += 1;
                    outcome.bytes += oldest.size;
                    if deletion == Deletion::Retention {
                        state.evicted_fragments += 1;
                        state.evicted_bytes += oldest.size;
                    }
                    deleted_end = deleted_end.max(Some(fragment_end(&oldest)));
                };
                let mut cleaned = 0;
                if finished {
                    let cutoff = match t.first(camera)? {
                        Some(oldest) => Some(oldest.producer_ms),
                        None => gap_cutoff.max(deleted_end),
                    };
                    if let Some(cutoff) = cutoff {
                        cleaned += t.trim_gaps(camera, cutoff, &mut state)?;
                    }
                    cleaned += t.sweep_inits(camera)?;
                }
                let changed = state != before || cleaned > 0;
                if changed {
                    t.save_state(camera, &state)?;
                }
                (changed, finished)
            };
            if changed {
                txn.commit().context("commit trim")?;
            } else {
                txn.abort().context("end trim")?;
            }
            if finished {
                return Ok(outcome);
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deletion {
    /// Retention: counted as evicted.
    Retention,
    /// Asked for (after upload): not counted.
    Requested,
}

/// The tables a write transaction changes.
struct Tables<'txn> {
    cameras: Table<'txn, &'static str, &'static [u8]>,
    fragments: Table<'txn, (&'static str, u64), &'static [u8]>,
    chunks: Table<'txn, (&'static str, u64, u32), &'static [u8]>,
    times: Table<'txn, (&'static str, i64, u64), u32>,
    inits: Table<'txn, (&'static str, u64), &'static [u8]>,
    init_refs: Table<'txn, (&'static str, u64), u64>,
    gaps: Table<'txn, (&'static str, i64, i64), &'static str>,
}

impl<'txn> Tables<'txn> {
    fn open(txn: &'txn WriteTransaction) -> Result<Self> {
        Ok(Tables {
            cameras: txn.open_table(schema::CAMERAS).context("open cameras")?,
            fragments: txn
                .open_table(schema::FRAGMENTS)
                .context("open fragments")?,
            chunks: txn
                .open_table(schema::CHUNKS)
                .context("open fragment chunks")?,
            times: txn
                .open_table(schema::TIMES)
                .context("open fragment times")?,
            inits: txn
                .open_table(schema::INITS)
                .context("open init segments")?,
            init_refs: txn
                .open_table(schema::INIT_REFS)
                .context("open init references")?,
            gaps: txn.open_table(schema::GAPS).context("open gaps")?,
        })
    }

    fn state(&self, camera: &str) -> Result<Option<CameraState>> {
        read_state(&self.cameras, camera)
    }

    fn save_state(&mut self, camera: &str, state: &CameraState) -> Result<()> {
        self.cameras
            .insert(camera, state.encode().as_slice())
            .context("write camera state")?;
        Ok(())
    }

    fn first(&self, camera: &str) -> Result<Option<FragmentMeta>> {
        let mut range = self
            .fragments
            .range(number_range(camera))
            .context("read fragments")?;
        range.next().map(|e| decode_entry(camera, e)).transpose()
    }

    /// Decides, evicts and writes one append. A refusal is counted in the state row and
    /// returned as the inner error (the transaction is still committed, to keep the count).
    fn append(
        &mut self,
        camera: &str,
        fragment: NewFragment,
        policy: &RetentionPolicy,
        now_ms: i64,
        disk_short: Option<u64>,
    ) -> Result<Result<AppendOutcome>> {
        let mut state = self.state(camera)?.unwrap_or_default();
        let size = fragment.data.len() as u64;
        let init_known = self
            .inits
            .get((camera, fragment.init_id))
            .context("read init segment")?
            .is_some();
        if !init_known {
            return Err(VideoLogError::Invalid(format!(
                "camera {camera:?} has no init segment {}",
                fragment.init_id
            )));
        }
        if let Some(refusal) = refusal(camera, &state, size, policy, disk_short) {
            state.denied_fragments += 1;
            self.save_state(camera, &state)?;
            return Ok(Err(refusal));
        }

        let (mut evicted_fragments, mut evicted_bytes) = (0, 0);
        loop {
            let over_max = policy.max_bytes.is_some_and(|max| state.bytes + size > max);
            let disk_needs_room = disk_short.is_some() && evicted_bytes < size;
            if !over_max && !disk_needs_room {
                break;
            }
            let Some(oldest) = self.first(camera)? else {
                return Err(VideoLogError::Storage(format!(
                    "camera {camera:?} counts {} bytes but has no fragments left",
                    state.bytes
                )));
            };
            self.delete_fragment(camera, &oldest, &mut state)?;
            evicted_fragments += 1;
            evicted_bytes += oldest.size;
        }

        let meta = FragmentMeta {
            number: state.last_number + 1,
            producer_ms: fragment.producer_ms,
            server_ms: now_ms,
            duration_ms: fragment.duration_ms,
            size,
            keyframe: fragment.keyframe,
            discontinuity: fragment.discontinuity,
            discontinuity_sequence: state.discontinuities + u64::from(fragment.discontinuity),
            codec: fragment.codec,
            width: fragment.width,
            height: fragment.height,
            init_id: fragment.init_id,
        };
        self.insert_fragment(camera, &meta, &fragment.data)?;
        state.last_number = meta.number;
        state.fragments += 1;
        state.bytes += size;
        state.evicted_fragments += evicted_fragments;
        state.evicted_bytes += evicted_bytes;
        state.max_duration_ms = state.max_duration_ms.max(u64::from(meta.duration_ms));
        state.discontinuities = meta.discontinuity_sequence;
        self.save_state(camera, &state)?;
        Ok(Ok(AppendOutcome {
            meta,
            evicted_fragments,
            evicted_bytes,
        }))
    }

    fn insert_fragment(&mut self, camera: &str, meta: &FragmentMeta, data: &[u8]) -> Result<()> {
        let number = meta.number;
        self.fragments
            .insert((camera, number), schema::encode_meta(meta).as_slice())
            .context("write fragment")?;
        for (index, chunk) in data.chunks(CHUNK_BYTES).enumerate() {
            let index = u32::try_from(index)
                .map_err(|_| VideoLogError::Invalid("fragment too large".into()))?;
            self.chunks
                .insert((camera, number, index), chunk)
                .context("write fragment chunk")?;
        }
        self.times
            .insert((camera, meta.producer_ms, number), meta.duration_ms)
            .context("write fragment time")?;
        let refs = self.init_refs(camera, meta.init_id)?;
        self.init_refs
            .insert((camera, meta.init_id), refs + 1)
            .context("write init reference")?;
        Ok(())
    }

    fn delete_fragment(
        &mut self,
        camera: &str,
        meta: &FragmentMeta,
        state: &mut CameraState,
    ) -> Result<()> {
        let number = meta.number;
        self.fragments
            .remove((camera, number))
            .context("delete fragment")?;
        self.chunks
            .retain_in(
                (camera, number, 0u32)..=(camera, number, u32::MAX),
                |_, _| false,
            )
            .context("delete fragment chunks")?;
        self.times
            .remove((camera, meta.producer_ms, number))
            .context("delete fragment time")?;
        let refs = self.init_refs(camera, meta.init_id)?;
        if refs > 1 {
            self.init_refs
                .insert((camera, meta.init_id), refs - 1)
                .context("write init reference")?;
        } else {
            self.init_refs
                .remove((camera, meta.init_id))
                .context("delete init reference")?;
        }
        state.fragments = state.fragments.saturating_sub(1);
        state.bytes = state.bytes.saturating_sub(meta.size);
        Ok(())
    }

    fn init_refs(&self, camera: &str, init_id: u64) -> Result<u64> {
        let refs = self
            .init_refs
            .get((camera, init_id))
            .context("read init reference")?;
        Ok(refs.map_or(0, |r| r.value()))
    }

    /// Stores a gap and drops the camera's oldest beyond `MAX_GAPS_PER_CAMERA`.
    fn insert_gap(&mut self, camera: &str, gap: &Gap) -> Result<()> {
        let mut state = self.state(camera)?.unwrap_or_default();
        let replaced = self
            .gaps
            .insert((camera, gap.start_ms, gap.end_ms), gap.reason.as_str())
            .context("write gap")?
            .is_some();
        if !replaced {
            state.gaps += 1;
        }
        let excess = state.gaps.saturating_sub(MAX_GAPS_PER_CAMERA);
        let oldest = self
            .gaps
            .extract_from_if(gap_range(camera, i64::MAX), |_, _| true)
            .context("delete gaps")?;
        // Only the rows taken from the iterator are deleted.
        for removed in oldest.take(usize::try_from(excess).unwrap_or(usize::MAX)) {
            removed.context("delete gaps")?;
            state.gaps -= 1;
        }
        self.save_state(camera, &state)
    }

    /// Deletes gaps that ended before `cutoff`; returns how many.
    fn trim_gaps(&mut self, camera: &str, cutoff: i64, state: &mut CameraState) -> Result<u64> {
        let mut removed = 0;
        self.gaps
            .retain_in(gap_range(camera, cutoff), |(_, _, end), _| {
                let keep = end >= cutoff;
                removed += u64::from(!keep);
                keep
            })
            .context("delete gaps")?;
        state.gaps = state.gaps.saturating_sub(removed);
        Ok(removed)
    }

    /// Deletes the camera's init segments that no fragment plays with, except the latest;
    /// returns how many.
    fn sweep_inits(&mut self, camera: &str) -> Result<u64> {
        let ids = self
            .inits
            .range(id_range(camera))
            .context("read init segments")?
            .map(|entry| Ok(entry.context("read init segments")?.0.value().1))
            .collect::<Result<Vec<u64>>>()?;
        let Some((_latest, older)) = ids.split_last() else {
            return Ok(0);
        };
        let mut removed = 0;
        for &id in older {
            if self.init_refs(camera, id)? == 0 {
                self.inits
                    .remove((camera, id))
                    .context("delete init segment")?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Why the append of `size` bytes must be refused, if it must; decided before anything is
/// deleted, so a refusal changes nothing.
fn refusal(
    camera: &str,
    state: &CameraState,
    size: u64,
    policy: &RetentionPolicy,
    disk_short: Option<u64>,
) -> Option<VideoLogError> {
    if let Some(max_bytes) = policy.max_bytes {
        if size > max_bytes {
            return Some(VideoLogError::TooLarge {
                camera: camera.to_string(),
                size,
                max_bytes,
            });
        }
        let needed = state.bytes + size;
        if policy.on_full == VideoOnFull::DenyNew && needed > max_bytes {
            return Some(VideoLogError::Full {
                camera: camera.to_string(),
                needed,
                limit: max_bytes,
                reason: FullReason::MaxBytes,
            });
        }
    }
    let free = disk_short?;
    let reason = match policy.on_full {
        VideoOnFull::DenyNew => FullReason::MinFreeDisk { free },
        // Evicting for max_bytes frees room too, but never more than the camera holds.
        VideoOnFull::DeleteOldest if state.bytes < size => FullReason::NothingToDelete { free },
        VideoOnFull::DeleteOldest => return None,
    };
    Some(VideoLogError::Full {
        camera: camera.to_string(),
        needed: size,
        limit: policy.min_free_disk,
        reason,
    })
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

fn open_cameras(txn: &ReadTransaction) -> Result<redb::ReadOnlyTable<&'static str, &'static [u8]>> {
    txn.open_table(schema::CAMERAS).context("open cameras")
}

fn open_fragments(
    txn: &ReadTransaction,
) -> Result<redb::ReadOnlyTable<(&'static str, u64), &'static [u8]>> {
    txn.open_table(schema::FRAGMENTS).context("open fragments")
}

fn read_state(
    cameras: &impl ReadableTable<&'static str, &'static [u8]>,
    camera: &str,
) -> Result<Option<CameraState>> {
    let Some(row) = cameras.get(camera).context("read camera state")? else {
        return Ok(None);
    };
    CameraState::decode(row.value())
        .map(Some)
        .ok_or_else(|| VideoLogError::Storage(format!("unreadable state of camera {camera:?}")))
}

fn get_meta(
    fragments: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    camera: &str,
    number: u64,
) -> Result<Option<FragmentMeta>> {
    let Some(row) = fragments.get((camera, number)).context("read fragment")? else {
        return Ok(None);
    };
    decode_meta(camera, number, row.value()).map(Some)
}

type FragmentEntry<'a> = std::result::Result<
    (
        AccessGuard<'a, (&'static str, u64)>,
        AccessGuard<'a, &'static [u8]>,
    ),
    StorageError,
>;

fn decode_entry(camera: &str, entry: FragmentEntry<'_>) -> Result<FragmentMeta> {
    let (key, value) = entry.context("read fragments")?;
    decode_meta(camera, key.value().1, value.value())
}

fn decode_meta(camera: &str, number: u64, bytes: &[u8]) -> Result<FragmentMeta> {
    schema::decode_meta(number, bytes).ok_or_else(|| {
        VideoLogError::Storage(format!(
            "unreadable metadata of fragment {number} of camera {camera:?}"
        ))
    })
}
