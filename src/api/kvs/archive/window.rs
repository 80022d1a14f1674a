//! Which fragments a streaming session lists at a given moment (its window), and whether a
//! session has anything to play at all.

use crate::video::log::{FragmentLog, FragmentMeta, VideoLogError};

use super::select;
use super::sessions::{Mode, Session};

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
            let lookback = (max as i64 + 1).saturating_mul(MAX_FRAGMENT_MS);
            let from = start.max(cutoff.saturating_sub(lookback));
            let mut listed =
                select::in_range(log, stream, session.origin, (from, cutoff), 0, max * 20)?;
            let keep = listed.len().saturating_sub(max);
            listed.drain(..keep);
            // Final once the clock passed the range's end and what it holds is stored.
            let ended = session.end.is_some_and(|end| cutoff >= end && end < now);
            Ok((listed, ended))
        }
    }
}
