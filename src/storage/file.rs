//! The stream database's file, as redb sees it: redb's own `FileBackend` with counters.
//!
//! Every byte redb hands to the file system and every `fdatasync` pass through here, so the
//! gateway can say what it costs an SD card (`kinedge_storage_bytes_written_total`,
//! `kinedge_storage_syncs_total`), and the last I/O error keeps its `io::ErrorKind` and OS
//! error code: redb reports a failed write once and then only "previous I/O error", which
//! would hide whether the disk was full or failing.
//!
//! Invariant: this type adds no behaviour to the file; it forwards every call unchanged
//! (locks included) and only counts.

use std::fs::File;
use std::io;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

/// What the stream database's file has been asked to do since the gateway started.
#[derive(Debug, Default)]
pub struct FileCounters {
    /// Bytes written (by `pwrite`) into the database file.
    pub bytes_written: AtomicU64,
    /// Write calls.
    pub writes: AtomicU64,
    /// `fdatasync` calls: one per durable commit, plus a few when the file is opened.
    pub syncs: AtomicU64,
    /// The last failed I/O call, kept for diagnosis (redb reports later calls as
    /// "previous I/O error").
    last_error: Mutex<Option<Arc<io::Error>>>,
    /// Unit tests: writes that reach past this offset fail with ENOSPC, as on a full file
    /// system (space already in the file can still be rewritten). 0 = off.
    #[cfg(test)]
    pub(crate) full_at: AtomicU64,
}

impl FileCounters {
    /// The last I/O error the file returned, if any since `clear_error`.
    pub fn last_error(&self) -> Option<Arc<io::Error>> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn clear_error(&self) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn failed(&self, error: &io::Error) {
        let copy = io::Error::new(error.kind(), error.to_string());
        let copy = match error.raw_os_error() {
            Some(code) => io::Error::from_raw_os_error(code),
            None => copy,
        };
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(copy));
    }
}

/// redb's file backend, counting.
#[derive(Debug)]
pub struct CountedFile {
    inner: FileBackend,
    counters: Arc<FileCounters>,
}

impl CountedFile {
    pub fn new(
        file: File,
        counters: Arc<FileCounters>,
    ) -> Result<CountedFile, redb::DatabaseError> {
        #[allow(clippy::useless_conversion)]
        let inner = FileBackend::new(file)?;
        Ok(CountedFile { inner, counters })
    }

    fn track<T>(&self, result: Result<T, io::Error>) -> Result<T, io::Error> {
        if let Err(error) = &result {
            self.counters.failed(error);
        }
        result
    }
}

impl StorageBackend for CountedFile {
    fn len(&self) -> Result<u64, io::Error> {
        self.track(self.inner.len())
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.track(self.inner.read(offset, out))
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.track(self.inner.set_len(len))
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        self.counters.syncs.fetch_add(1, Ordering::Relaxed);
        self.track(self.inner.sync_data())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        #[cfg(test)]
        {
            let full_at = self.counters.full_at.load(Ordering::Relaxed);
            if full_at != 0 && offset + data.len() as u64 > full_at {
                // ENOSPC, as a full file system answers.
                return self.track(Err(io::Error::from_raw_os_error(28)));
            }
        }
        self.counters.writes.fetch_add(1, Ordering::Relaxed);
        self.counters
            .bytes_written
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        self.track(self.inner.write(offset, data))
    }

    fn close(&self) -> Result<(), io::Error> {
        self.track(self.inner.close())
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}
