//! The per-day playlists of a camera's uploads: `<prefix><camera>/<yyyy>/<MM>/<dd>/playlist.m3u8`
//! (UTC), an EVENT playlist while the day lasts and VOD with EXT-X-ENDLIST after, written from
//! the manifest at most every [`PLAYLIST_EVERY`] while a backlog goes up.

use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::NaiveDate;

use super::manifest::{day_file, manifest_days, read_objects, ObjectEntry};
use super::objects::{now_ms, utc_day, utc_folders};
use super::put::Put;
use super::Uploader;
use crate::delivery::runner::send::Stopped;
use crate::video::hls::{self, Playlist, Segment};

/// Playlists are rewritten at most this often while a backlog goes up.
const PLAYLIST_EVERY: Duration = Duration::from_secs(30);
const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";

impl Uploader {
    /// Rewrites the playlists of days with new objects, and once those of days that ended
    /// since; at most every [`PLAYLIST_EVERY`] unless `now` (and there are new objects). Also
    /// called while idle, so that the last objects of a trickle show.
    pub(super) async fn write_playlists(&mut self, now: bool) -> Result<(), Stopped> {
        let due = self.playlists_written.elapsed() >= PLAYLIST_EVERY;
        let wanted_now = now && !self.dirty_days.is_empty();
        if !(due || wanted_now) {
            return Ok(());
        }
        let dir = self.manifest.clone();
        let kept = self
            .blocking("read the upload manifest", move |_| manifest_days(&dir))
            .await?;
        let today = utc_day(now_ms());
        let mut days = std::mem::take(&mut self.dirty_days);
        days.extend(
            kept.into_iter()
                .filter(|d| *d < today && !self.ended_days.contains(d)),
        );
        for day in days {
            self.write_playlist(day, today).await?;
        }
        self.playlists_written = Instant::now();
        Ok(())
    }

    async fn write_playlist(&mut self, day: NaiveDate, today: NaiveDate) -> Result<(), Stopped> {
        let file = self.manifest.join(day_file(day));
        let entries = self
            .blocking("read the upload manifest", move |_| read_objects(&file))
            .await?;
        if entries.is_empty() {
            return Ok(());
        }
        let day_start = day
            .and_hms_opt(0, 0, 0)
            .map_or(0, |t| t.and_utc().timestamp_millis());
        let dir = format!(
            "{}{}/{}/",
            self.prefix_at(day_start),
            self.camera,
            utc_folders(day_start, false)
        );
        let ended = day < today;
        let text = playlist_text(&dir, &entries, ended);
        let key = format!("{dir}playlist.m3u8");
        if self.put(&key, Bytes::from(text), PLAYLIST_TYPE).await? == Put::GaveUp {
            return Ok(()); // written again when the day has new objects
        }
        if ended {
            self.ended_days.insert(day);
        }
        Ok(())
    }
}

/// `key` relative to the folder `dir` (ending in `/`), as a playlist names it.
pub(super) fn relative_uri(dir: &str, key: &str) -> String {
    let dir: Vec<&str> = dir.split('/').filter(|s| !s.is_empty()).collect();
    let key: Vec<&str> = key.split('/').collect();
    let (folders, _) = key.split_at(key.len().saturating_sub(1));
    let common = dir.iter().zip(folders).take_while(|(a, b)| a == b).count();
    let mut uri = "../".repeat(dir.len() - common);
    uri.push_str(&key[common..].join("/"));
    uri
}

/// The day's playlist, in the folder `dir`: VOD and ended once the day is over, else EVENT.
pub(super) fn playlist_text(dir: &str, entries: &[ObjectEntry], ended: bool) -> String {
    let mut prev_end: Option<i64> = None;
    let segments = entries
        .iter()
        .map(|e| {
            let discontinuity = prev_end
                .is_some_and(|p| e.discontinuity || hls::discontinuity_between(p, e.start_ms));
            prev_end = Some(e.end_ms);
            Segment {
                uri: relative_uri(dir, &e.key),
                duration_ms: e.duration_ms,
                program_date_time_ms: e.start_ms,
                map_uri: relative_uri(dir, &e.init_key),
                discontinuity,
            }
        })
        .collect();
    let text = hls::render(&Playlist {
        media_sequence: 0,
        discontinuity_sequence: 0,
        segments,
        ended,
        playlist_type_vod: ended,
        program_dates: hls::ProgramDates::AtDiscontinuities,
    });
    if ended {
        return text;
    }
    // Segments are only ever added to a day's playlist while it lasts.
    text.replacen(
        "#EXT-X-INDEPENDENT-SEGMENTS\n",
        "#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-PLAYLIST-TYPE:EVENT\n",
        1,
    )
}
