//! What the writer does when the disk fails, and the free-disk guard.
//!
//! After an I/O error redb refuses everything until the database is reopened, so `failed`
//! reopens it at once (reads go on) and suspends writes; `probe` resumes them when the cause
//! has gone (room on the disk again, the database open), checking every second and backing
//! off to 32 s while resumed writes keep failing. `disk_check` is the `min_free_disk` guard,
//! which counts free pages inside the file as room.
//!
//! Invariants: while suspended, nothing touches the disk but what frees space; `WriterHealth`
//! names the cause exactly while writes are suspended.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::append::DiskCheck;
use super::error::{FaultKind, StorageFault};
use super::writer::Writer;
use super::StoreError;

/// How often a suspended writer checks whether it can write again.
pub(super) const PROBE_EVERY: Duration = Duration::from_secs(1);

/// Free space (on the file system plus free pages in the file) a writer suspended by a full
/// disk waits for, at least, before it writes again.
const RESUME_FREE_BYTES: u64 = 16 * 1024 * 1024;

/// How long the count of free pages inside the file is trusted by the disk guard.
const FILE_ROOM_TTL: Duration = Duration::from_secs(10);

/// The writer's health, shared with the store's handle for status and readiness.
#[derive(Debug, Default)]
pub struct WriterHealth {
    /// Why writes are suspended, while they are.
    suspended: Mutex<Option<StorageFault>>,
    /// Set by the writer once it stopped taking requests (after a shutdown): the store then
    /// refuses new ones at once instead of queueing them where nobody reads.
    closed: std::sync::atomic::AtomicBool,
}

impl WriterHealth {
    pub fn suspended(&self) -> Option<StorageFault> {
        self.suspended
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(super) fn set(&self, fault: Option<StorageFault>) {
        *self.suspended.lock().unwrap_or_else(|p| p.into_inner()) = fault;
    }

    pub(super) fn close(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Writer {
    /// A storage error from inside a transaction, with the kind refined from the file's last
    /// I/O error (redb reports "previous I/O error" after the first).
    pub(super) fn refine(&self, error: StoreError) -> StoreError {
        match error {
            StoreError::Storage(fault)
                if matches!(fault.kind, FaultKind::Io | FaultKind::Other) =>
            {
                match self.db.counters.last_error() {
                    Some(io) => StoreError::Storage(fault.with_kind(FaultKind::of_io(&io))),
                    None => StoreError::Storage(fault),
                }
            }
            error => error,
        }
    }

    /// After a failed group: reload the working copy; after an I/O error, reopen the
    /// database (redb requires it) so that reads go on, and suspend writes.
    pub(super) fn failed(&mut self, error: &StoreError) {
        let fault = match error {
            StoreError::Storage(fault) => fault.clone(),
            _ => return,
        };
        self.stats.count_fault(fault.kind);
        self.faults_in_a_row = self.faults_in_a_row.saturating_add(1);
        let io = matches!(
            fault.kind,
            FaultKind::NoSpace | FaultKind::Io | FaultKind::Unavailable
        );
        if io {
            tracing::error!(error = %fault, kind = fault.kind.as_str(), "a commit failed; nothing in its group was acknowledged; writes are suspended until the cause goes away");
            if let Err(reopen) = self.db.reopen() {
                tracing::error!(error = %reopen, "cannot reopen the stream database yet; trying again every second");
            }
            if self.suspended.is_none() {
                self.health.set(Some(fault.clone()));
                self.suspended = Some(fault);
            }
            self.last_probe = Instant::now();
        } else {
            tracing::error!(error = %fault, kind = fault.kind.as_str(), "a commit failed; nothing in its group was acknowledged");
        }
        if self.db.is_open() {
            if let Err(reload) = self.reload() {
                tracing::error!(error = %reload, "cannot reload the stream database state");
            }
        }
    }

    /// While suspended: resume when the cause has gone (room on the disk again, the
    /// database open).
    pub(super) fn probe(&mut self) {
        // 1 s, then 2, 4, ... 32 s while resumed writes keep failing.
        let backoff = PROBE_EVERY * (1u32 << self.faults_in_a_row.saturating_sub(1).min(5));
        if self.last_probe.elapsed() < backoff {
            return;
        }
        self.last_probe = Instant::now();
        let Some(fault) = self.suspended.clone() else {
            return;
        };
        if fault.kind == FaultKind::NoSpace {
            let threshold = self.options.min_free_disk.max(RESUME_FREE_BYTES);
            match self.room() {
                Ok(room) if room >= threshold => {}
                Ok(_) => return,
                Err(error) => {
                    tracing::debug!(%error, "cannot tell the free disk space yet");
                    return;
                }
            }
        }
        if !self.db.is_open() {
            if let Err(error) = self.db.reopen() {
                tracing::warn!(%error, "cannot reopen the stream database yet");
                return;
            }
        }
        if let Err(error) = self.reload() {
            tracing::warn!(%error, "cannot reload the stream database yet");
            return;
        }
        tracing::info!(cause = %fault, "writes resumed");
        self.suspended = None;
        self.health.set(None);
    }

    /// Room for new data: free space on the file system plus free pages inside the file.
    pub(super) fn room(&mut self) -> Result<u64, StoreError> {
        let free = super::disk::free_bytes(&self.options.data_dir)
            .map_err(|e| StorageFault::new(FaultKind::of_io(&e), "free disk space", e))?;
        Ok(free.saturating_add(self.file_room()))
    }

    /// Free pages inside the file, counted at most every `FILE_ROOM_TTL` (and again after a
    /// commit that deleted or trimmed).
    pub(super) fn file_room(&mut self) -> u64 {
        if let Some((at, bytes)) = self.file_room {
            if at.elapsed() < FILE_ROOM_TTL {
                return bytes;
            }
        }
        match self.db.free_in_file() {
            Ok(bytes) => {
                self.file_room = Some((Instant::now(), bytes));
                bytes
            }
            Err(error) => {
                tracing::debug!(%error, "cannot count the free pages in the stream database");
                0
            }
        }
    }

    /// Free-disk guard, before a group's transaction begins.
    pub(super) fn disk_check(&mut self) -> DiskCheck {
        let min = self.options.min_free_disk;
        if min == 0 || self.suspended.is_some() {
            return Ok(());
        }
        match super::disk::free_bytes(&self.options.data_dir) {
            Ok(free) if free >= min => Ok(()),
            // Pages freed inside the file (a deleted stream, trimmed records) are room too:
            // redb reuses them before the file grows. Counted at half, as free pages are
            // scattered and a big value may still need the file to grow.
            Ok(free) => match free.saturating_add(self.file_room() / 2) {
                room if room >= min => Ok(()),
                room => Err((room, min)),
            },
            Err(error) => {
                tracing::warn!(%error, "cannot read free disk space; not refusing data");
                Ok(())
            }
        }
    }
}
