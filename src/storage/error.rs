//! Why a storage request failed, with the kind of storage fault kept.
//!
//! A failed commit can mean a full disk (the gateway refuses and waits for room), a failing
//! card (EIO), a damaged file, or a database that is being reopened after one of those.
//! Callers map the kind to their protocol's error (a retryable AWS error, MQTT 0x97), and
//! metrics count faults by kind. Invariant: a [`StorageFault`] keeps the error that caused it
//! as its `source`, and its kind is decided once, where the error is seen.

use std::sync::Arc;

use crate::streams::ReshardError;

/// What kind of storage fault happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The file system is full (ENOSPC, EDQUOT): writes wait for room.
    NoSpace,
    /// The disk or file system failed (EIO and other I/O errors).
    Io,
    /// The database file holds something redb or kinedge did not write.
    Corrupted,
    /// The database is closed while the writer reopens it after an I/O error.
    Unavailable,
    /// Anything else.
    Other,
}

impl FaultKind {
    /// The label used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::NoSpace => "no_space",
            FaultKind::Io => "io",
            FaultKind::Corrupted => "corrupted",
            FaultKind::Unavailable => "unavailable",
            FaultKind::Other => "other",
        }
    }

    /// The kind of an OS I/O error.
    pub fn of_io(error: &std::io::Error) -> FaultKind {
        match error.raw_os_error() {
            Some(code) if code == libc_enospc() || code == libc_edquot() => FaultKind::NoSpace,
            _ if error.kind() == std::io::ErrorKind::StorageFull => FaultKind::NoSpace,
            _ => FaultKind::Io,
        }
    }
}

fn libc_enospc() -> i32 {
    rustix::io::Errno::NOSPC.raw_os_error()
}

fn libc_edquot() -> i32 {
    rustix::io::Errno::DQUOT.raw_os_error()
}

/// A storage fault: its kind, what was being done, and the error underneath.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{context}: {source}")]
pub struct StorageFault {
    pub kind: FaultKind,
    context: String,
    #[source]
    source: Arc<dyn std::error::Error + Send + Sync>,
}

impl StorageFault {
    pub fn new(
        kind: FaultKind,
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StorageFault {
            kind,
            context: context.into(),
            source: Arc::new(source),
        }
    }

    /// A fault of redb, classified by what redb reports.
    pub fn redb(context: impl Into<String>, error: impl Into<redb::Error>) -> Self {
        let error: redb::Error = error.into();
        let kind = match &error {
            redb::Error::Io(io) => FaultKind::of_io(io),
            // redb reports an I/O failure once, then "previous I/O error": the writer refines
            // the kind from the file's last error (see `CountedFile`).
            redb::Error::PreviousIo => FaultKind::Io,
            redb::Error::Corrupted(_) => FaultKind::Corrupted,
            redb::Error::DatabaseClosed => FaultKind::Unavailable,
            _ => FaultKind::Other,
        };
        StorageFault::new(kind, context, error)
    }

    /// The same fault with another kind (when more is known than the error said).
    pub fn with_kind(mut self, kind: FaultKind) -> Self {
        self.kind = kind;
        self
    }

    pub fn context(&self) -> &str {
        &self.context
    }
}

/// Why a storage request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("Stream {0} not found.")]
    StreamNotFound(String),
    #[error("Stream {0} already exists.")]
    StreamExists(String),
    #[error(transparent)]
    Reshard(#[from] ReshardError),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    LimitExceeded(String),
    /// A record over the limits every producer shares (1 MiB of data and key, key 1-256).
    #[error("{0}")]
    InvalidRecord(String),
    #[error("storage failure: {0}")]
    Storage(#[from] StorageFault),
    #[error("the gateway is shutting down")]
    ShuttingDown,
    /// A transaction (`Store::transact`) held a record the store refuses (a quota, the disk
    /// guard): nothing of it was stored.
    #[error(transparent)]
    Refused(#[from] super::Rejected),
    /// A change to a stream's enhanced fan-out consumers was refused.
    #[error(transparent)]
    Consumer(#[from] crate::streams::ConsumerError),
    /// A stream encryption key that is missing or unusable, or a sealed block it cannot open.
    #[error(transparent)]
    Crypt(std::sync::Arc<super::crypt::CryptError>),
}

impl From<super::crypt::CryptError> for StoreError {
    fn from(e: super::crypt::CryptError) -> Self {
        StoreError::Crypt(std::sync::Arc::new(e))
    }
}

impl StoreError {
    /// The storage fault's kind, when this is one.
    pub fn fault_kind(&self) -> Option<FaultKind> {
        match self {
            StoreError::Storage(fault) => Some(fault.kind),
            _ => None,
        }
    }

    /// True when a later retry can succeed without anything changing in the request (the
    /// disk is full, the database is being reopened): a retryable error for the client.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.fault_kind(),
            Some(FaultKind::NoSpace | FaultKind::Unavailable | FaultKind::Io)
        )
    }
}

/// Any redb error (of any of redb's error types), without a particular context.
pub(super) fn storage<E: Into<redb::Error>>(e: E) -> StoreError {
    StoreError::Storage(StorageFault::redb("stream database", e))
}

/// Data in the file that cannot be read back as kinedge wrote it.
pub(super) fn corrupted(
    context: impl Into<String>,
    source: impl std::error::Error + Send + Sync + 'static,
) -> StoreError {
    StoreError::Storage(StorageFault::new(FaultKind::Corrupted, context, source))
}

/// Something that is neither the disk's nor the file's fault.
pub(super) fn other(
    context: impl Into<String>,
    source: impl std::error::Error + Send + Sync + 'static,
) -> StoreError {
    StoreError::Storage(StorageFault::new(FaultKind::Other, context, source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_is_no_space_and_eio_is_io() {
        let full = std::io::Error::from_raw_os_error(28);
        assert_eq!(FaultKind::of_io(&full), FaultKind::NoSpace);
        let fault = StorageFault::redb("commit", redb::Error::Io(full));
        assert_eq!(fault.kind, FaultKind::NoSpace);
        assert!(std::error::Error::source(&fault).is_some());
        let eio = std::io::Error::from_raw_os_error(5);
        assert_eq!(FaultKind::of_io(&eio), FaultKind::Io);
        let corrupted = StorageFault::redb("read", redb::Error::Corrupted("bad".into()));
        assert_eq!(corrupted.kind, FaultKind::Corrupted);
        assert!(StoreError::from(fault).is_retryable());
        assert!(!StoreError::from(corrupted).is_retryable());
    }
}
