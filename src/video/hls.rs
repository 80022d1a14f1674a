//! HLS media playlists (RFC 8216, version 7) over fMP4 segments: the stored fragments, served
//! unchanged, each with the init segment (`EXT-X-MAP`) it needs and its wall-clock time.
//!
//! Owns rendering a [`Playlist`] to text and the rule for when two fragments in a row are
//! discontinuous.

use std::fmt::Write;

use chrono::{DateTime, SecondsFormat};

/// One media segment (a stored fragment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub uri: String,
    pub duration_ms: u32,
    /// Wall-clock time of the segment's first frame, milliseconds since the Unix epoch.
    pub program_date_time_ms: i64,
    /// The init segment this segment needs.
    pub map_uri: String,
    /// Set when this segment does not follow the previous one (a gap, a restart); implied when
    /// `map_uri` changes.
    pub discontinuity: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Playlist {
    /// Media sequence number of the first segment.
    pub media_sequence: u64,
    /// Discontinuities before the first segment's (`EXT-X-DISCONTINUITY-SEQUENCE`): a live
    /// window counts those that slid out of it, so players keep their timelines apart.
    pub discontinuity_sequence: u64,
    pub segments: Vec<Segment>,
    /// No more segments will be added (`EXT-X-ENDLIST`).
    pub ended: bool,
    /// `EXT-X-PLAYLIST-TYPE:VOD`.
    pub playlist_type_vod: bool,
    /// Which segments carry `EXT-X-PROGRAM-DATE-TIME`.
    pub program_dates: ProgramDates,
}

/// Which segments of a playlist carry their wall-clock time (`EXT-X-PROGRAM-DATE-TIME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgramDates {
    /// The first segment and each one after a discontinuity (where the time cannot be
    /// derived from the previous segment's).
    #[default]
    AtDiscontinuities,
    /// Every segment.
    Every,
    /// None.
    Never,
}

/// Gaps (or overlaps) between fragments larger than this are discontinuities.
const MAX_CONTINUOUS_GAP_MS: u64 = 500;

/// Whether a segment starting at `next_start_ms` does not continue one that ended at
/// `prev_end_ms` (wall-clock milliseconds): they are more than 500 ms apart, either way.
pub fn discontinuity_between(prev_end_ms: i64, next_start_ms: i64) -> bool {
    prev_end_ms.abs_diff(next_start_ms) > MAX_CONTINUOUS_GAP_MS
}

/// The playlist as M3U8 text.
pub fn render(playlist: &Playlist) -> String {
    let longest_ms = playlist
        .segments
        .iter()
        .map(|s| s.duration_ms)
        .max()
        .unwrap_or(0);
    let target_duration = longest_ms.div_ceil(1000).max(1);

    let mut text = String::with_capacity(256 + playlist.segments.len() * 128);
    // Writing to a String cannot fail: the results of `writeln!` are ignored below.
    text.push_str("#EXTM3U\n#EXT-X-VERSION:7\n");
    let _ = writeln!(text, "#EXT-X-TARGETDURATION:{target_duration}");
    let _ = writeln!(text, "#EXT-X-MEDIA-SEQUENCE:{}", playlist.media_sequence);
    if playlist.discontinuity_sequence > 0 {
        let _ = writeln!(
            text,
            "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
            playlist.discontinuity_sequence
        );
    }
    text.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    if playlist.playlist_type_vod {
        text.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n");
    }

    let mut current_map: Option<&str> = None;
    for segment in &playlist.segments {
        let map_changed = current_map != Some(segment.map_uri.as_str());
        let first = current_map.is_none();
        let discontinuity = !first && (segment.discontinuity || map_changed);
        if discontinuity {
            text.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if map_changed {
            let _ = writeln!(text, "#EXT-X-MAP:URI=\"{}\"", uri_text(&segment.map_uri));
            current_map = Some(&segment.map_uri);
        }
        let dated = match playlist.program_dates {
            ProgramDates::AtDiscontinuities => first || discontinuity,
            ProgramDates::Every => true,
            ProgramDates::Never => false,
        };
        if dated {
            if let Some(time) = DateTime::from_timestamp_millis(segment.program_date_time_ms) {
                let time = time.to_rfc3339_opts(SecondsFormat::Millis, true);
                let _ = writeln!(text, "#EXT-X-PROGRAM-DATE-TIME:{time}");
            }
        }
        let _ = writeln!(
            text,
            "#EXTINF:{}.{:03},\n{}",
            segment.duration_ms / 1000,
            segment.duration_ms % 1000,
            uri_text(&segment.uri)
        );
    }
    if playlist.ended {
        text.push_str("#EXT-X-ENDLIST\n");
    }
    text
}

/// A URI as it may appear in a playlist: no line breaks, no double quotes (percent-encoded).
fn uri_text(uri: &str) -> std::borrow::Cow<'_, str> {
    if !uri.contains(['"', '\r', '\n']) {
        return uri.into();
    }
    uri.replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(uri: &str, duration_ms: u32, time_ms: i64, map: &str) -> Segment {
        Segment {
            uri: uri.into(),
            duration_ms,
            program_date_time_ms: time_ms,
            map_uri: map.into(),
            discontinuity: false,
        }
    }

    // 2024-05-01T12:00:00Z
    const NOON: i64 = 1_714_564_800_000;

    #[test]
    fn renders_discontinuities_and_map_changes() {
        let mut gap = segment("f/12.m4s", 2000, NOON + 60_000, "init/1.mp4");
        gap.discontinuity = true;
        let playlist = Playlist {
            media_sequence: 10,
            discontinuity_sequence: 0,
            segments: vec![
                segment("f/10.m4s", 2002, NOON, "init/1.mp4"),
                segment("f/11.m4s", 1999, NOON + 2002, "init/1.mp4"),
                gap,
                // A new init segment without the flag: a discontinuity all the same.
                segment("f/13.m4s", 2501, NOON + 62_000, "init/2.mp4"),
            ],
            ended: true,
            playlist_type_vod: true,
            program_dates: ProgramDates::AtDiscontinuities,
        };
        let expected = "\
#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:3
#EXT-X-MEDIA-SEQUENCE:10
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-MAP:URI=\"init/1.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2024-05-01T12:00:00.000Z
#EXTINF:2.002,
f/10.m4s
#EXTINF:1.999,
f/11.m4s
#EXT-X-DISCONTINUITY
#EXT-X-PROGRAM-DATE-TIME:2024-05-01T12:01:00.000Z
#EXTINF:2.000,
f/12.m4s
#EXT-X-DISCONTINUITY
#EXT-X-MAP:URI=\"init/2.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2024-05-01T12:01:02.000Z
#EXTINF:2.501,
f/13.m4s
#EXT-X-ENDLIST
";
        assert_eq!(render(&playlist), expected);
    }

    #[test]
    fn live_playlist_has_no_type_nor_end() {
        let playlist = Playlist {
            media_sequence: 0,
            discontinuity_sequence: 0,
            segments: vec![segment("a.m4s", 40, NOON + 5, "i.mp4")],
            ended: false,
            playlist_type_vod: false,
            program_dates: ProgramDates::AtDiscontinuities,
        };
        let text = render(&playlist);
        assert!(text.contains("#EXT-X-TARGETDURATION:1\n"), "{text}");
        assert!(text.contains("#EXT-X-PROGRAM-DATE-TIME:2024-05-01T12:00:00.005Z\n"));
        assert!(text.ends_with("#EXTINF:0.040,\na.m4s\n"), "{text}");
        assert!(!text.contains("ENDLIST") && !text.contains("PLAYLIST-TYPE"));
    }

    #[test]
    fn program_dates_on_every_segment_or_none() {
        let mut playlist = Playlist {
            segments: vec![
                segment("a.m4s", 1000, NOON, "i.mp4"),
                segment("b.m4s", 1000, NOON + 1000, "i.mp4"),
            ],
            program_dates: ProgramDates::Every,
            ..Playlist::default()
        };
        let text = render(&playlist);
        assert!(
            text.contains("12:00:00.000Z\n#EXTINF:1.000,\na.m4s\n"),
            "{text}"
        );
        assert!(
            text.contains("12:00:01.000Z\n#EXTINF:1.000,\nb.m4s\n"),
            "{text}"
        );
        playlist.program_dates = ProgramDates::Never;
        assert!(!render(&playlist).contains("PROGRAM-DATE-TIME"));
    }

    #[test]
    fn empty_playlist_still_has_a_target_duration() {
        let text = render(&Playlist::default());
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n"
        );
    }

    #[test]
    fn uris_cannot_break_lines_or_quotes() {
        let playlist = Playlist {
            segments: vec![segment("a\n#EXT-X-ENDLIST", 1000, NOON, "i\".mp4")],
            ..Playlist::default()
        };
        let text = render(&playlist);
        assert!(text.contains("#EXT-X-MAP:URI=\"i%22.mp4\"\n"), "{text}");
        assert!(text.contains("\na%0A#EXT-X-ENDLIST\n"), "{text}");
    }

    #[test]
    fn discontinuity_is_a_gap_over_half_a_second_either_way() {
        assert!(!discontinuity_between(10_000, 10_000));
        assert!(!discontinuity_between(10_000, 10_500));
        assert!(!discontinuity_between(10_000, 9_500));
        assert!(discontinuity_between(10_000, 10_501));
        assert!(discontinuity_between(10_000, 9_499));
        assert!(discontinuity_between(i64::MIN, i64::MAX));
    }
}
