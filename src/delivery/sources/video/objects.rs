//! Which fragments make one object, when uploads may run, and the UTC folders of object keys.
//!
//! Objects: one fragment each, or with `segment_minutes` the fragments of a run that share an
//! init segment and have no gap, concatenated, up to [`MAX_OBJECT_BYTES`]. The last object is
//! held back while its camera may still add to it.

use std::time::Duration;

use chrono::{DateTime, Datelike, Local, NaiveDate, Timelike, Utc};

use crate::video::hls;
use crate::video::log::FragmentMeta;

/// Largest object made of several fragments (it is held in memory while it goes up).
const MAX_OBJECT_BYTES: u64 = 64 * 1024 * 1024;
/// A growing object is uploaded once its camera added nothing for this long.
const OPEN_OBJECT_WAIT_MS: i64 = 10_000;

pub(super) fn now_ms() -> i64 {
    crate::storage::now_ms() as i64
}

pub(super) fn end_ms(fragment: &FragmentMeta) -> i64 {
    fragment.producer_ms + i64::from(fragment.duration_ms)
}

/// Splits fragments (ascending by number) into objects: one per fragment, or with
/// `segment_minutes` runs of consecutive fragments of one recording run with the same init
/// segment and no gap (see [`hls::discontinuity_between`]), spanning at most that many minutes
/// and [`MAX_OBJECT_BYTES`].
pub(super) fn group(fragments: &[FragmentMeta], segment_minutes: u32) -> Vec<&[FragmentMeta]> {
    let span_ms = i64::from(segment_minutes) * 60_000;
    let mut objects = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, f) in fragments.iter().enumerate() {
        if i > start {
            let (first, prev) = (&fragments[start], &fragments[i - 1]);
            let joins = segment_minutes > 0
                && f.init_id == first.init_id
                && f.number == prev.number + 1
                && !f.discontinuity
                && !hls::discontinuity_between(end_ms(prev), f.producer_ms)
                && end_ms(f) - first.producer_ms <= span_ms
                && bytes + f.size <= MAX_OBJECT_BYTES;
            if !joins {
                objects.push(&fragments[start..i]);
                (start, bytes) = (i, 0);
            }
        }
        bytes += f.size;
    }
    if start < fragments.len() {
        objects.push(&fragments[start..]);
    }
    objects
}

/// Whether the camera may still add to this (last) object: it is shorter than
/// `segment_minutes` and its last fragment is recent.
pub(super) fn may_grow(object: &[FragmentMeta], segment_minutes: u32, now_ms: i64) -> bool {
    let (Some(first), Some(last)) = (object.first(), object.last()) else {
        return false;
    };
    let bytes: u64 = object.iter().map(|f| f.size).sum();
    let wait = OPEN_OBJECT_WAIT_MS.max(2 * i64::from(last.duration_ms));
    segment_minutes > 0
        && end_ms(last) - first.producer_ms < i64::from(segment_minutes) * 60_000
        && bytes < MAX_OBJECT_BYTES
        && now_ms - last.server_ms < wait
}

/// Whether `minute` (after local midnight) is inside the window; no window = always.
pub(super) fn in_window(window: Option<(u16, u16)>, minute: u16) -> bool {
    match window {
        None => true,
        Some((start, end)) if start < end => (start..end).contains(&minute),
        Some((start, end)) => minute >= start || minute < end,
    }
}

pub(super) fn local_minute() -> u16 {
    let now = Local::now();
    (now.hour() * 60 + now.minute()) as u16
}

/// How long until the window opens (zero when it is open).
pub(super) fn until_window(window: Option<(u16, u16)>) -> Duration {
    let Some((start, _)) = window else {
        return Duration::ZERO;
    };
    let now = Local::now();
    let now_s = now.num_seconds_from_midnight();
    let start_s = u32::from(start) * 60;
    Duration::from_secs(u64::from((start_s + 86_400 - now_s) % 86_400))
}

pub(super) fn utc(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

pub(super) fn utc_day(ms: i64) -> NaiveDate {
    utc(ms).date_naive()
}

/// `yyyy/MM/dd` or `yyyy/MM/dd/HH` (UTC).
pub(super) fn utc_folders(ms: i64, hour: bool) -> String {
    let t = utc(ms);
    let day = format!("{:04}/{:02}/{:02}", t.year(), t.month(), t.day());
    if hour {
        format!("{day}/{:02}", t.hour())
    } else {
        day
    }
}
