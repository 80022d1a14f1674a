//! `kinedge storage compact`: returns the free pages inside the stream database to the file
//! system, offline.
//!
//! redb reuses pages freed by deleted streams and trimmed records, so the file never needs
//! to shrink for the gateway to go on (the disk guard counts those pages as room); but only
//! compaction makes the file smaller. It rewrites pages toward the start of the file and
//! truncates the end, which needs the gateway stopped (redb locks the file) and a little
//! free space. Invariant: it runs on a file no gateway has open; it reports before and
//! after sizes.

use std::path::Path;
use std::sync::Arc;

use super::database::open_database;
use super::error::{FaultKind, StorageFault, StoreError};
use super::file::FileCounters;
use super::STREAMS_DB;

/// What compaction did.
#[derive(Debug, Clone, Copy)]
pub struct Compacted {
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// Compacts `data_dir/streams.redb`; fails with a clear message while a gateway has it open.
pub fn compact(data_dir: &Path) -> Result<Compacted, StoreError> {
    let path = data_dir.join(STREAMS_DB);
    let size = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.len())
            .map_err(|e| StorageFault::new(FaultKind::of_io(&e), format!("{}", p.display()), e))
    };
    let bytes_before = size(&path)?;
    let mut db = match open_database(&path, 16 * 1024 * 1024, Arc::new(FileCounters::default())) {
        Ok(db) => db,
        Err(StoreError::Storage(fault)) if fault.to_string().contains("already open") => {
            return Err(StoreError::InvalidArgument(format!(
                "{} is open in a running gateway: stop it first (systemctl stop kinedge), then compact",
                path.display()
            )))
        }
        Err(e) => return Err(e),
    };
    // Each pass moves what it can; stop when a pass frees nothing more.
    while db
        .compact()
        .map_err(|e| StorageFault::redb("compact the stream database", e))?
    {}
    db.close()
        .map_err(|e| StorageFault::redb("close the stream database", e))?;
    Ok(Compacted {
        bytes_before,
        bytes_after: size(&path)?,
    })
}
