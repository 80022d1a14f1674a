//! Which fragments a selector picks: those whose start timestamp (producer or server) lies in
//! `[start, end]` (both inclusive, as AWS compares a fragment's start), numbered above
//! `after`, ascending by number.
//!
//! Producer time goes through the log's time index. Server time is the commit time, which
//! never decreases with the fragment number (the log numbers fragments in commit order), so
//! the first fragment at or after a time is found by a binary search over the stream's one
//! contiguous run of numbers. Blocking: callers run it on the blocking pool.

use crate::video::log::{FragmentLog, FragmentMeta, VideoLogError};

use super::Origin;

/// Fragments read from the log per step of a selection.
const BATCH: usize = 256;

/// Fragments whose `origin` timestamp is in `[start, end]`, numbered above `after`, ascending
/// by number, at most `limit`.
pub(super) fn in_range(
    log: &FragmentLog,
    stream: &str,
    origin: Origin,
    (start, end): (i64, i64),
    after: u64,
    limit: usize,
) -> Result<Vec<FragmentMeta>, VideoLogError> {
    if limit == 0 || end < start {
        return Ok(Vec::new());
    }
    match origin {
        Origin::Producer => producer_range(log, stream, start, end, after, limit),
        Origin::Server => server_range(log, stream, start, end, after, limit),
    }
}

fn producer_range(
    log: &FragmentLog,
    stream: &str,
    start: i64,
    end: i64,
    mut after: u64,
    limit: usize,
) -> Result<Vec<FragmentMeta>, VideoLogError> {
    let mut out = Vec::new();
    let end_exclusive = end.saturating_add(1);
    loop {
        // Overlapping [start, end + 1): those that start before `start` are skipped here.
        let batch = log.fragments_after_in(stream, start, end_exclusive, after, BATCH)?;
        let full = batch.len() == BATCH;
        for fragment in batch {
            after = fragment.number;
            if fragment.producer_ms >= start {
                out.push(fragment);
                if out.len() == limit {
                    return Ok(out);
                }
            }
        }
        if !full {
            return Ok(out);
        }
    }
}

fn server_range(
    log: &FragmentLog,
    stream: &str,
    start: i64,
    end: i64,
    after: u64,
    limit: usize,
) -> Result<Vec<FragmentMeta>, VideoLogError> {
    let Some(first) = first_committed_at_or_after(log, stream, start)? else {
        return Ok(Vec::new());
    };
    let mut from = after.max(first.saturating_sub(1));
    let mut out = Vec::new();
    loop {
        let batch = log.fragments_after(stream, from, BATCH)?;
        let full = batch.len() == BATCH;
        for fragment in batch {
            if fragment.server_ms > end {
                return Ok(out);
            }
            from = fragment.number;
            if fragment.server_ms >= start {
                out.push(fragment);
                if out.len() == limit {
                    return Ok(out);
                }
            }
        }
        if !full {
            return Ok(out);
        }
    }
}

/// The lowest fragment number committed at or after `at` (epoch ms), if any.
pub(super) fn first_committed_at_or_after(
    log: &FragmentLog,
    stream: &str,
    at: i64,
) -> Result<Option<u64>, VideoLogError> {
    let usage = log.usage(stream)?;
    let (Some(first), Some(last)) = (usage.first, usage.last) else {
        return Ok(None);
    };
    if last.server_ms < at {
        return Ok(None);
    }
    if first.server_ms >= at {
        return Ok(Some(first.number));
    }
    // Invariant: fragment `low` was committed before `at` (or is deleted: retention deletes
    // the oldest first), fragment `high` at or after it.
    let (mut low, mut high) = (first.number, last.number);
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        match log.fragment(stream, middle)? {
            Some(meta) if meta.server_ms >= at => high = middle,
            _ => low = middle,
        }
    }
    Ok(Some(high))
}

/// The fragment whose `origin` time span holds `at`: the latest to start at or before it
/// that has not ended yet.
pub(super) fn holding(
    log: &FragmentLog,
    stream: &str,
    origin: Origin,
    at: i64,
) -> Result<Option<FragmentMeta>, VideoLogError> {
    let ends_after = |f: &FragmentMeta| origin.of(f).saturating_add(i64::from(f.duration_ms)) > at;
    match origin {
        Origin::Producer => Ok(log.fragments(stream, at, at + 1, 1)?.into_iter().next()),
        Origin::Server => {
            // The last fragment committed at or before `at`.
            let candidate = match first_committed_at_or_after(log, stream, at.saturating_add(1))? {
                Some(next) => log.fragment(stream, next.saturating_sub(1))?,
                None => log.latest(stream, 1)?.pop(),
            };
            Ok(candidate.filter(|f| origin.of(f) <= at && ends_after(f)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::log::{NewFragment, RetentionPolicy, VideoOnFull};

    fn fragment(producer_ms: i64, init_id: u64) -> NewFragment {
        NewFragment {
            producer_ms,
            duration_ms: 1000,
            keyframe: true,
            discontinuity: false,
            codec: "h264".into(),
            width: 64,
            height: 48,
            init_id,
            data: bytes::Bytes::from_static(b"fragment"),
        }
    }

    /// Ten fragments: producer times 0, 1000, ... but a clock jump at the sixth (back to
    /// 100); server times 10_000, 10_500, 11_000, ...
    fn log_of_ten() -> (tempfile::TempDir, FragmentLog) {
        let dir = tempfile::tempdir().unwrap();
        let log = FragmentLog::open(&dir.path().join("video.redb")).unwrap();
        let policy = RetentionPolicy {
            max_age_ms: 0,
            max_bytes: None,
            on_full: VideoOnFull::DeleteOldest,
            min_free_disk: 0,
        };
        let init_id = log.put_init("cam", b"init segment").unwrap();
        for i in 0..10i64 {
            let producer = if i < 5 {
                i * 1000
            } else {
                100 + (i - 5) * 1000
            };
            log.append(
                "cam",
                fragment(producer, init_id),
                &policy,
                10_000 + i * 500,
            )
            .unwrap();
        }
        (dir, log)
    }

    fn numbers(fragments: &[FragmentMeta]) -> Vec<u64> {
        fragments.iter().map(|f| f.number).collect()
    }

    #[test]
    fn producer_selection_compares_starts_inclusively_and_pages() {
        let (_dir, log) = log_of_ten();
        let all = in_range(&log, "cam", Origin::Producer, (0, 2000), 0, 100).unwrap();
        // 0, 1000, 2000 and, after the jump, 100 and 1100.
        assert_eq!(numbers(&all), [1, 2, 3, 6, 7]);
        // Fragments that start before the range and reach into it are not picked.
        let later = in_range(&log, "cam", Origin::Producer, (50, 2000), 0, 100).unwrap();
        assert_eq!(numbers(&later), [2, 3, 6, 7]);
        let page = in_range(&log, "cam", Origin::Producer, (0, 2000), 0, 2).unwrap();
        assert_eq!(numbers(&page), [1, 2]);
        let next = in_range(&log, "cam", Origin::Producer, (0, 2000), 2, 2).unwrap();
        assert_eq!(numbers(&next), [3, 6]);
    }

    #[test]
    fn server_selection_searches_the_commit_times() {
        let (_dir, log) = log_of_ten();
        assert_eq!(
            first_committed_at_or_after(&log, "cam", 0).unwrap(),
            Some(1)
        );
        assert_eq!(
            first_committed_at_or_after(&log, "cam", 11_001).unwrap(),
            Some(4)
        );
        assert_eq!(
            first_committed_at_or_after(&log, "cam", 11_500).unwrap(),
            Some(4)
        );
        assert_eq!(
            first_committed_at_or_after(&log, "cam", 14_501).unwrap(),
            None
        );
        let picked = in_range(&log, "cam", Origin::Server, (11_000, 12_000), 0, 100).unwrap();
        assert_eq!(numbers(&picked), [3, 4, 5]);
        let page = in_range(&log, "cam", Origin::Server, (11_000, 12_000), 3, 1).unwrap();
        assert_eq!(numbers(&page), [4]);
        assert!(in_range(&log, "other", Origin::Server, (0, i64::MAX), 0, 9)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn the_fragment_holding_a_time() {
        let (_dir, log) = log_of_ten();
        let at = |origin, t| holding(&log, "cam", origin, t).unwrap().map(|f| f.number);
        assert_eq!(at(Origin::Server, 10_000), Some(1));
        assert_eq!(at(Origin::Server, 10_499), Some(1));
        assert_eq!(at(Origin::Server, 10_500), Some(2));
        assert_eq!(at(Origin::Server, 9_999), None);
        // The last one lasts 1000 ms from 14_500.
        assert_eq!(at(Origin::Server, 15_499), Some(10));
        assert_eq!(at(Origin::Server, 15_500), None);
        assert_eq!(at(Origin::Producer, 3_500), Some(4));
    }
}
