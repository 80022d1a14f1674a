//! The registry of streams created through the Kinesis Video API (`CreateStream`), kept in the
//! fragment log's database (table `kvs_streams`: name -> a version byte and the record as
//! JSON), so that they survive restarts; their fragments live in the log under their name,
//! as a camera's do.
//!
//! Invariants:
//! - The table is the truth; an in-memory copy (loaded by `open`, bounded by the cap the API
//!   enforces) answers lookups without blocking, so the API resolves a stream on the async
//!   runtime. Writers are serialised by `writer` and update the copy after their commit, so
//!   the copy changes in commit order and never shows an uncommitted record.
//! - `revision` grows with every change that AWS versions (update, retention); the version
//!   string is derived from the creation time and the revision, so a stream deleted and
//!   created again never shows an old version.
//! - Deletion: the row is first marked `Deleting` (committed), then the stream's fragments
//!   go in bounded transactions, then everything else the log holds under the name and the
//!   row itself, in one last transaction. A deletion cut by a crash is finished by the next
//!   `finish_delete` (the video service's retention pass calls it for `Deleting` rows).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::{id_range, number_range, schema, Context, FragmentLog, Result, TrimOutcome};

pub(super) const STREAMS: TableDefinition<&str, &[u8]> = TableDefinition::new("kvs_streams");

const RECORD_VERSION: u8 = 1;

/// The status of an API-created stream (AWS's `Status`; `CREATING` and `UPDATING` never
/// show: changes are committed before they are answered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StreamStatus {
    Active,
    Deleting,
}

/// One stream created through the API.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StreamRecord {
    pub name: String,
    /// When it was created (epoch ms); also the last part of its ARN.
    pub created_ms: i64,
    /// Changes AWS versions so far (0 at creation).
    pub revision: u64,
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub device_name: Option<String>,
    #[serde(default)]
    pub kms_key_id: Option<String>,
    /// AWS's `DataRetentionInHours` (0: AWS keeps no data beyond its buffer).
    pub retention_hours: u32,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub status: StreamStatus,
}

impl StreamRecord {
    /// AWS's opaque `Version` (`[a-zA-Z0-9]+`).
    pub fn version(&self) -> String {
        format!("{:x}v{}", self.created_ms, self.revision)
    }
}

/// Why a registry change was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("stream {0:?} does not exist")]
    NotFound(String),
    #[error("stream {0:?} already exists")]
    Exists(String),
    #[error("stream {0:?} is being deleted")]
    Deleting(String),
    #[error(
        "the fragment log holds video recorded under the name {0:?} (a camera that was \
         removed?): delete it or choose another name"
    )]
    NameHasVideo(String),
    #[error("at most {0} streams can be created on this gateway")]
    Limit(usize),
    #[error("the stream's version is {current}, not {given}")]
    VersionMismatch { current: String, given: String },
    #[error("{0}")]
    Invalid(String),
    #[error("a stream has at most {0} tags")]
    TagLimit(usize),
    #[error(transparent)]
    Log(#[from] super::VideoLogError),
}

/// The in-memory copy of the table and the lock of its writers.
#[derive(Default)]
pub(super) struct Registry {
    records: RwLock<BTreeMap<String, StreamRecord>>,
    writer: Mutex<()>,
    /// One `finish_delete` at a time, so that two never race over a name created again.
    deleter: Mutex<()>,
}

pub(super) type SharedRegistry = Arc<Registry>;

fn encode(record: &StreamRecord) -> Result<Vec<u8>> {
    let mut out = vec![RECORD_VERSION];
    serde_json::to_writer(&mut out, record).context("encode stream record")?;
    Ok(out)
}

fn decode(name: &str, bytes: &[u8]) -> Result<StreamRecord> {
    match bytes.split_first() {
        Some((&RECORD_VERSION, json)) => {
            serde_json::from_slice(json).context(&format!("decode stream record {name:?}"))
        }
        _ => Err(super::VideoLogError::Storage(format!(
            "stream record {name:?} has an unknown layout"
        ))),
    }
}

fn read_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Registry {
    /// Creates the table if needed and loads it (called by `FragmentLog::open`).
    pub(super) fn load(db: &redb::Database) -> Result<Registry> {
        let txn = db.begin_write().context("begin video write transaction")?;
        txn.open_table(STREAMS).context("create stream registry")?;
        txn.commit().context("create stream registry")?;
        let txn = db.begin_read().context("begin video read transaction")?;
        let table = txn.open_table(STREAMS).context("open stream registry")?;
        let mut records = BTreeMap::new();
        for entry in table.iter().context("read stream registry")? {
            let (key, value) = entry.context("read stream registry")?;
            let record = decode(key.value(), value.value())?;
            records.insert(record.name.clone(), record);
        }
        Ok(Registry {
            records: RwLock::new(records),
            writer: Mutex::new(()),
            deleter: Mutex::new(()),
        })
    }
}

impl FragmentLog {
    /// The API-created stream `name`, whatever its status (no I/O).
    pub fn stream_record(&self, name: &str) -> Option<StreamRecord> {
        read_lock(&self.registry.records).get(name).cloned()
    }

    /// Every API-created stream, by name (no I/O).
    pub fn stream_records(&self) -> Vec<StreamRecord> {
        read_lock(&self.registry.records)
            .values()
            .cloned()
            .collect()
    }

    /// At most `limit` API-created streams whose names start with `prefix` and come after
    /// `after`, by name (no I/O; only those are copied).
    pub fn stream_records_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Vec<StreamRecord> {
        use std::ops::Bound;
        let records = read_lock(&self.registry.records);
        let start = match after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        records
            .range::<str, _>((start, Bound::Unbounded))
            .map(|(_, record)| record)
            .take_while(|record| record.name.starts_with(prefix))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Registers `record` (status `Active`, revision 0), unless the name is taken (by a
    /// stream or by video the log holds under it) or `max_streams` exist.
    pub fn create_stream(
        &self,
        record: StreamRecord,
        max_streams: usize,
    ) -> Result<StreamRecord, RegistryError> {
        let _writer = self
            .registry
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let txn = self.begin_write()?;
        {
            let mut table = txn.open_table(STREAMS).context("open stream registry")?;
            if let Some(existing) = table.get(record.name.as_str()).context("read stream")? {
                let existing = decode(&record.name, existing.value())?;
                return Err(match existing.status {
                    StreamStatus::Deleting => RegistryError::Deleting(record.name),
                    StreamStatus::Active => RegistryError::Exists(record.name),
                });
            }
            if table.len().context("count streams")? >= max_streams as u64 {
                return Err(RegistryError::Limit(max_streams));
            }
            let cameras = txn.open_table(schema::CAMERAS).context("open cameras")?;
            if cameras
                .get(record.name.as_str())
                .context("read camera")?
                .is_some()
            {
                return Err(RegistryError::NameHasVideo(record.name));
            }
            table
                .insert(record.name.as_str(), encode(&record)?.as_slice())
                .context("write stream")?;
        }
        txn.commit().context("commit stream creation")?;
        write_lock(&self.registry.records).insert(record.name.clone(), record.clone());
        Ok(record)
    }

    /// Changes the `Active` stream `name` with `change`, if its version is `current_version`
    /// (when given); `bump` makes it a new version. Returns the record as committed.
    pub fn update_stream(
        &self,
        name: &str,
        current_version: Option<&str>,
        bump: bool,
        change: impl FnOnce(&mut StreamRecord) -> Result<(), RegistryError>,
    ) -> Result<StreamRecord, RegistryError> {
        let _writer = self
            .registry
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let txn = self.begin_write()?;
        let record = {
            let mut table = txn.open_table(STREAMS).context("open stream registry")?;
            let mut record = match table.get(name).context("read stream")? {
                Some(row) => decode(name, row.value())?,
                None => return Err(RegistryError::NotFound(name.to_string())),
            };
            if record.status == StreamStatus::Deleting {
                return Err(RegistryError::Deleting(name.to_string()));
            }
            if let Some(given) = current_version {
                if given != record.version() {
                    return Err(RegistryError::VersionMismatch {
                        current: record.version(),
                        given: given.to_string(),
                    });
                }
            }
            change(&mut record)?;
            if bump {
                record.revision += 1;
            }
            table
                .insert(name, encode(&record)?.as_slice())
                .context("write stream")?;
            record
        };
        txn.commit().context("commit stream change")?;
        write_lock(&self.registry.records).insert(name.to_string(), record.clone());
        Ok(record)
    }

    /// Marks the stream `Deleting` (if its version is `current_version`, when given); from
    /// then on it takes no change and `finish_delete` removes it.
    pub fn begin_delete(
        &self,
        name: &str,
        current_version: Option<&str>,
    ) -> Result<StreamRecord, RegistryError> {
        self.update_stream(name, current_version, false, |record| {
            record.status = StreamStatus::Deleting;
            Ok(())
        })
    }

    /// Deletes everything the log holds under the `Deleting` stream `name` (fragments in
    /// bounded transactions, then init segments, gaps, checkpoints, its state row and its
    /// registry row in one). Does nothing to a stream that is not being deleted.
    pub fn finish_delete(&self, name: &str) -> Result<TrimOutcome, RegistryError> {
        let _deleter = self
            .registry
            .deleter
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match self.stream_record(name) {
            Some(record) if record.status == StreamStatus::Deleting => {}
            _ => return Ok(TrimOutcome::default()),
        }
        let outcome = self.delete_through(name, u64::MAX)?;
        let _writer = self
            .registry
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let txn = self.begin_write()?;
        {
            let mut table = txn.open_table(STREAMS).context("open stream registry")?;
            // Another caller may have finished this deletion (and the name been created
            // again) since the check above: only a row still being deleted goes.
            let still_deleting = match table.get(name).context("read stream")? {
                Some(row) => decode(name, row.value())?.status == StreamStatus::Deleting,
                None => false,
            };
            if !still_deleting {
                return Ok(outcome);
            }
            table.remove(name).context("delete stream")?;
            purge(&txn, name)?;
        }
        txn.commit().context("commit stream deletion")?;
        write_lock(&self.registry.records).remove(name);
        Ok(outcome)
    }
}

/// Removes every row the log keeps under `name` once its fragments are gone.
fn purge(txn: &redb::WriteTransaction, name: &str) -> Result<()> {
    let mut fragments = txn
        .open_table(schema::FRAGMENTS)
        .context("open fragments")?;
    // Fragments appended after `delete_through` (a producer still pushing) go too.
    fragments
        .retain_in(number_range(name), |_, _| false)
        .context("delete fragments")?;
    let mut chunks = txn.open_table(schema::CHUNKS).context("open chunks")?;
    chunks
        .retain_in((name, 0, 0)..=(name, u64::MAX, u32::MAX), |_, _| false)
        .context("delete chunks")?;
    let mut times = txn.open_table(schema::TIMES).context("open times")?;
    times
        .retain_in((name, i64::MIN, 0)..=(name, i64::MAX, u64::MAX), |_, _| {
            false
        })
        .context("delete time index")?;
    let mut inits = txn.open_table(schema::INITS).context("open inits")?;
    inits
        .retain_in(id_range(name), |_, _| false)
        .context("delete init segments")?;
    let mut refs = txn
        .open_table(schema::INIT_REFS)
        .context("open init refs")?;
    refs.retain_in(id_range(name), |_, _| false)
        .context("delete init references")?;
    let mut gaps = txn.open_table(schema::GAPS).context("open gaps")?;
    gaps.retain_in(
        (name, i64::MIN, i64::MIN)..=(name, i64::MAX, i64::MAX),
        |_, _| false,
    )
    .context("delete gaps")?;
    let mut checkpoints = txn
        .open_table(schema::CHECKPOINTS)
        .context("open checkpoints")?;
    let mut destinations = Vec::new();
    for entry in checkpoints
        .range((name, "")..)
        .context("read checkpoints")?
    {
        let (key, _) = entry.context("read checkpoints")?;
        let (camera, destination) = key.value();
        if camera != name {
            break;
        }
        destinations.push(destination.to_string());
    }
    for destination in destinations {
        checkpoints
            .remove((name, destination.as_str()))
            .context("delete checkpoint")?;
    }
    txn.open_table(schema::CAMERAS)
        .context("open cameras")?
        .remove(name)
        .context("delete stream state")?;
    Ok(())
}

#[cfg(test)]
#[path = "streams_tests.rs"]
mod tests;
