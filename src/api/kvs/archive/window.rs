//! Which fragments a streaming session lists at a given moment (its window), and whether a
//! session has anything to play at all.

use crate::video::log::{FragmentLog, FragmentMeta, VideoLogError};

use super::sessions::{Mode, Session};
use super::{select, Origin};

/// A LIVE session needs a fragment committed this recently (AWS: 30 s).
const LIVE_RECENT_MS: i64 = 30_000;
/// How far ahead of the replay clock a LIVE_REPLAY session lists fragments, so that a player
/// has a few to buffer from the start.
const REPLAY_LEAD_MS: i64 = 6_000;
/// The longest fragment AWS accepts: bounds how far back a window looks for its last ones.
const MAX_FRAGMENT_MS: i64 = 10_000;

/// Whether the session has anything to play: a fragment in its range, or (LIVE) one
/// committed in the last 30 seconds.
pub(super) fn has_media(
    log: &FragmentLog,
    session: &Session,
    now: i64,
) -> Result<bool, VideoLogError> {
    match session.mode {
        Mode::Live => Ok(log
            .latest(&session.stream, 1)?
            .first()
            .is_some_and(|f| f.server_ms >= now - LIVE_RECENT_MS)),
        Mode::OnDemand | Mode::LiveReplay => {
            let range = (
                session.start.unwrap_or(i64::MIN),
                session.end.unwrap_or(i64::MAX),
            );
            Ok(!select::in_range(log, &session.stream, session.origin, range, 0, 1)?.is_empty())
        }
    }
}

/// The fragments a session lists at `now` (ascending by number), and whether that list is
/// final (nothing will be added).
pub(super) fn window(
    log: &FragmentLog,
    session: &Session,
    now: i64,
) -> Result<(Vec<FragmentMeta>, bool), VideoLogError> {
    let max = session.max_fragments;
    let stream = session.stream.as_str();
    match session.mode {
        // The newest fragments.
        Mode::Live => Ok((log.latest(stream, max)?, false)),
        // The oldest fragments of the range.
        Mode::OnDemand => {
            let range = (
                session.start.unwrap_or(i64::MIN),
                session.end.unwrap_or(i64::MAX),
            );
            Ok((
                select::in_range(log, stream, session.origin, range, 0, max)?,
                true,
            ))
        }
        // The range played from its start at the pace of the clock since the session opened.
        Mode::LiveReplay => {
            let start = session.start.unwrap_or(i64::MIN);
            let end = session.end.unwrap_or(i64::MAX);
            let Some(first) =
                select::in_range(log, stream, session.origin, (start, end), 0, 1)?.pop()
            else {
                return Ok((Vec::new(), session.end.is_some_and(|end| end < now)));
            };
            let elapsed = now.saturating_sub(session.opened_ms).max(0);
            let cutoff = session
                .origin
                .of(&first)
                .saturating_add(elapsed)
                .saturating_add(REPLAY_LEAD_MS)
                .min(end);
            let listed = match session.origin {
                Origin::Server => replay_by_number(log, session, first.number, cutoff)?,
                Origin::Producer => {
                    let lookback = (max as i64 + 1).saturating_mul(MAX_FRAGMENT_MS);
                    let from = start.max(cutoff.saturating_sub(lookback));
                    let mut listed =
                        select::in_range(log, stream, session.origin, (from, cutoff), 0, max * 20)?;
                    let keep = listed.len().saturating_sub(max);
                    listed.drain(..keep);
                    listed
                }
            };
            // Final once the clock passed the range's end and what it holds is stored.
            let ended = session.end.is_some_and(|end| cutoff >= end && end < now);
            Ok((listed, ended))
        }
    }
}

/// The last `max_fragments` fragments of a server-timestamp replay committed by `cutoff`,
/// numbered from `first` on: commit times follow the numbers, so they are the numbers just
/// before the first one committed after the cutoff.
fn replay_by_number(
    log: &FragmentLog,
    session: &Session,
    first: u64,
    cutoff: i64,
) -> Result<Vec<FragmentMeta>, VideoLogError> {
    let stream = session.stream.as_str();
    let upto = match select::first_committed_at_or_after(log, stream, cutoff.saturating_add(1))? {
        Some(next) => next.saturating_sub(1),
        None => match log.latest(stream, 1)?.first() {
            Some(last) => last.number,
            None => return Ok(Vec::new()),
        },
    };
    let max = session.max_fragments as u64;
    let from = first.max(upto.saturating_sub(max.saturating_sub(1)));
    let mut listed = log.fragments_after(stream, from.saturating_sub(1), session.max_fragments)?;
    listed.retain(|f| f.number <= upto && session.covers(f));
    Ok(listed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::kvs::archive::sessions::{Discontinuities, Protocol};
    use crate::video::log::{NewFragment, RetentionPolicy, VideoOnFull};

    /// Ten 1 s fragments: producer times 0, 1000, ...; server times 10_000, 10_500, ...
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
            let fragment = NewFragment {
                producer_ms: i * 1000,
                duration_ms: 1000,
                keyframe: true,
                discontinuity: false,
                codec: "h264".into(),
                width: 64,
                height: 48,
                init_id,
                data: bytes::Bytes::from_static(b"fragment"),
            };
            log.append("cam", fragment, &policy, 10_000 + i * 500)
                .unwrap();
        }
        (dir, log)
    }

    fn replay(origin: Origin, start: i64, end: Option<i64>) -> Session {
        Session {
            stream: "cam".into(),
            protocol: Protocol::Hls,
            mode: Mode::LiveReplay,
            origin,
            start: Some(start),
            end,
            max_fragments: 3,
            discontinuities: Discontinuities::Never,
            display_timestamps: false,
            display_numbers: false,
            opened_ms: 100_000,
            expires: std::time::Instant::now(),
        }
    }

    fn numbers(listed: &[FragmentMeta]) -> Vec<u64> {
        listed.iter().map(|f| f.number).collect()
    }

    #[test]
    fn a_replay_moves_with_the_clock_and_ends_at_its_end() {
        let (_dir, log) = log_of_ten();
        // Server times: at opening, the first fragment and 6 s ahead (all ten), the last three.
        let (listed, ended) = window(&log, &replay(Origin::Server, 10_000, None), 100_000).unwrap();
        assert_eq!((numbers(&listed), ended), (vec![8, 9, 10], false));
        // Up to an end: the last three committed by 11_600, and over once the clock passed it.
        let session = replay(Origin::Server, 10_000, Some(11_600));
        let (listed, ended) = window(&log, &session, 100_000).unwrap();
        assert_eq!((numbers(&listed), ended), (vec![2, 3, 4], true));
        // Producer times: from 2000, 6 s ahead at opening (to 8000), 2 s later to 10_000.
        let session = replay(Origin::Producer, 2_000, None);
        assert_eq!(
            numbers(&window(&log, &session, 100_000).unwrap().0),
            [7, 8, 9]
        );
        assert_eq!(
            numbers(&window(&log, &session, 101_000).unwrap().0),
            [8, 9, 10]
        );
        let session = replay(Origin::Producer, 2_000, Some(4_000));
        assert!(window(&log, &session, 100_000).unwrap().1);
        assert_eq!(
            numbers(&window(&log, &session, 100_000).unwrap().0),
            [3, 4, 5]
        );
    }
}
