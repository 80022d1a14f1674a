//! The stream database handle, shared by the writer and readers, and reopened after an I/O
//! error.
//!
//! redb refuses every later operation after one failed write ("previous I/O error") until the
//! database is closed and opened again, which also repairs it from its last commit. The slot
//! lets the writer do that while the gateway runs: it takes the database out, closes it (read
//! transactions still alive then fail with "database closed"), and opens the file again.
//! Invariant: only the writer thread opens, closes or writes; readers only begin read
//! transactions; while the slot is empty every request gets `FaultKind::Unavailable`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use redb::{Database, ReadTransaction, ReadableDatabase, WriteTransaction};

use super::error::{FaultKind, StorageFault, StoreError};
use super::file::{CountedFile, FileCounters};

/// What the database's page cache holds (`storage.cache_size` bounds it).
#[derive(Debug, Clone, Copy)]
pub struct CacheUse {
    pub used_bytes: u64,
    pub evictions: u64,
}

pub(super) struct DbSlot {
    db: RwLock<Option<Database>>,
    path: PathBuf,
    cache_size: u64,
    pub(super) counters: Arc<FileCounters>,
}

impl DbSlot {
    /// Opens (creating, or repairing after a crash) the database file.
    pub(super) fn open(path: &Path, cache_size: u64) -> Result<DbSlot, StoreError> {
        let counters = Arc::new(FileCounters::default());
        let db = open_database(path, cache_size, counters.clone())?;
        Ok(DbSlot {
            db: RwLock::new(Some(db)),
            path: path.to_path_buf(),
            cache_size,
            counters,
        })
    }

    fn unavailable() -> StoreError {
        StoreError::Storage(StorageFault::new(
            FaultKind::Unavailable,
            "stream database",
            std::io::Error::other(
                "the stream database is closed while the gateway reopens it after a disk error; retry shortly",
            ),
        ))
    }

    fn with<T>(&self, f: impl FnOnce(&Database) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let guard = self.db.read().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(db) => f(db),
            None => Err(Self::unavailable()),
        }
    }

    /// The page cache's bytes in use (read cache and write buffer, at most `cache_size`)
    /// and its evictions since the database was opened; `None` while it is closed.
    pub(super) fn cache_use(&self) -> Option<CacheUse> {
        self.with(|db| {
            let stats = db.cache_stats();
            Ok(CacheUse {
                used_bytes: stats.used_bytes() as u64,
                evictions: stats.evictions(),
            })
        })
        .ok()
    }

    pub(super) fn begin_read(&self) -> Result<ReadTransaction, StoreError> {
        self.with(|db| {
            db.begin_read()
                .map_err(|e| self.fault("begin a read transaction", e).into())
        })
    }

    pub(super) fn begin_write(&self) -> Result<WriteTransaction, StoreError> {
        self.with(|db| {
            db.begin_write()
                .map_err(|e| self.fault("begin a write transaction", e).into())
        })
    }

    pub(super) fn is_open(&self) -> bool {
        self.db.read().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// A redb error, with the kind refined from the file's last I/O error: after a failed
    /// write redb only says "previous I/O error", and whether the disk was full matters.
    pub(super) fn fault(&self, context: &str, error: impl Into<redb::Error>) -> StorageFault {
        let error: redb::Error = error.into();
        let previous = matches!(error, redb::Error::PreviousIo);
        let fault = StorageFault::redb(context.to_string(), error);
        match self.counters.last_error() {
            Some(io) if previous || fault.kind == FaultKind::Io => {
                fault.with_kind(FaultKind::of_io(&io))
            }
            _ => fault,
        }
    }

    /// Closes the database (if open). Read transactions still alive fail from now on.
    pub(super) fn close(&self) {
        let db = self.db.write().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(db) = db {
            if let Err(error) = db.close() {
                tracing::debug!(%error, "closing the stream database after an I/O error");
            }
        }
    }

    /// Opens the file again (redb repairs it from its last commit); the slot stays empty if
    /// that fails, and the writer tries again later.
    pub(super) fn reopen(&self) -> Result<(), StoreError> {
        self.close();
        self.counters.clear_error();
        let db = open_database(&self.path, self.cache_size, self.counters.clone())?;
        *self.db.write().unwrap_or_else(|p| p.into_inner()) = Some(db);
        Ok(())
    }

    /// Bytes of free pages inside the file: room that redb reuses before the file grows.
    /// Walks every table (redb keeps no running count): call it rarely.
    pub(super) fn free_in_file(&self) -> Result<u64, StoreError> {
        let len = std::fs::metadata(&self.path)
            .map_err(|e| StorageFault::new(FaultKind::of_io(&e), "stream database size", e))?
            .len();
        self.with(|db| {
            let txn = db
                .begin_write()
                .map_err(|e| self.fault("begin a write transaction", e))?;
            let stats = txn.stats().map_err(|e| self.fault("database stats", e))?;
            txn.abort().map_err(|e| self.fault("abort", e))?;
            let used = stats.allocated_pages() * stats.page_size() as u64;
            Ok(len.saturating_sub(used))
        })
    }
}

pub(super) fn open_database(
    path: &Path,
    cache_size: u64,
    counters: Arc<FileCounters>,
) -> Result<Database, StoreError> {
    let context = format!("cannot open stream database {}", path.display());
    let mut builder = Database::builder();
    builder.set_cache_size(usize::try_from(cache_size).unwrap_or(usize::MAX));
    builder.set_repair_callback(|session| {
        let progress = session.progress();
        tracing::warn!(
            progress = format!("{:.0}%", progress * 100.0),
            "repairing the stream database after an unclean shutdown or a disk error"
        );
    });
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| StorageFault::new(FaultKind::of_io(&e), context.clone(), e))?;
    let backend =
        CountedFile::new(file, counters).map_err(|e| StorageFault::redb(context.clone(), e))?;
    builder
        .create_with_backend(backend)
        .map_err(|e| StorageFault::redb(context, e).into())
}
