//! Retention of the fragment log: by age (`trim`), after upload (`delete_through`), and the
//! decisions an append makes about `max_bytes` and the disk's minimum free space
//! ([`refusal`], before anything is deleted, so a refusal changes nothing).
//!
//! Invariants: deletion always takes the oldest fragment first (numbers stay contiguous); at
//! most `TRIM_BATCH` fragments go per transaction; fragments deleted by retention are counted
//! as evicted in the state row, fragments deleted on request are not.

use super::schema::CameraState;
use super::writer::Tables;
use super::{
    fragment_end, Context, FragmentLog, FragmentMeta, FullReason, Result, RetentionPolicy,
    TrimOutcome, VideoLogError, VideoOnFull, TRIM_BATCH,
};

impl FragmentLog {
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

    /// `Some(free bytes)` when writing `size` bytes would leave less than `min_free_disk` free.
    pub(super) fn free_disk_short(&self, size: u64, min_free_disk: u64) -> Option<u64> {
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
        let mut last_deleted: Option<u64> = None;
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
                    debug_assert!(
                        last_deleted < Some(oldest.number),
                        "deletion takes the oldest fragment first"
                    );
                    last_deleted = Some(oldest.number);
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
                t.debug_check_run(camera, &state);
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

/// Why the append of `size` bytes must be refused, if it must; decided before anything is
/// deleted, so a refusal changes nothing.
pub(super) fn refusal(
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
