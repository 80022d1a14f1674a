//! A DASH session's manifest (GetDASHManifest): the session's window of fragments as an MPD
//! over the same fMP4 init segments and fragments HLS serves. One Period per run of fragments
//! with one init segment and no recording restart; each Period a `SegmentList` with a
//! `SegmentTimeline` (times in ms of the session's timestamps) and one URL per fragment, so
//! that gaps in numbers or time stay exact. ON_DEMAND sessions (and finished LIVE_REPLAY ones)
//! are `static`; LIVE and LIVE_REPLAY ones `dynamic`, with the wall clock as timeline
//! (`availabilityStartTime` at the Unix epoch) and a refresh every second.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat};
use http::header;

use super::media::{session_of, SessionQuery};
use super::sessions::{Protocol, Session};
use super::window::window;
use super::{blocking, log_error, not_found, now_ms, ArchiveState};
use crate::api::kvs::KvsError;
use crate::video::log::FragmentMeta;
use crate::video::mp4::{self, InitInfo};

pub(super) async fn manifest(
    State(state): State<Arc<ArchiveState>>,
    Query(query): Query<SessionQuery>,
) -> Response {
    mpd(&state, query)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn mpd(state: &ArchiveState, query: SessionQuery) -> Result<Response, KvsError> {
    let (session, log) = session_of(state, &query, Protocol::Dash)?;
    let token = query.session_token.unwrap_or_default();
    let now = now_ms();
    let (fragments, ended, inits) = {
        let session = session.clone();
        blocking(move || {
            let (fragments, ended) = window(&log, &session, now).map_err(log_error)?;
            let mut inits: Vec<(u64, Option<InitInfo>)> = Vec::new();
            for f in &fragments {
                if inits.iter().all(|(id, _)| *id != f.init_id) {
                    let info = log
                        .init_segment(&session.stream, f.init_id)
                        .map_err(log_error)?
                        .and_then(|init| mp4::init_info(&init).ok());
                    inits.push((f.init_id, info));
                }
            }
            Ok((fragments, ended, inits))
        })
        .await?
    };
    if fragments.is_empty() {
        return Err(not_found(
            "No fragments found in the stream for this session.",
        ));
    }
    let text = render(&session, &token, &fragments, ended, &inits, now);
    Ok((
        [
            (header::CONTENT_TYPE, "application/dash+xml"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        text,
    )
        .into_response())
}

/// Fragments split where the init segment changes or a recording run starts.
fn periods(fragments: &[FragmentMeta]) -> Vec<&[FragmentMeta]> {
    let mut out = Vec::new();
    let mut begin = 0;
    for i in 1..fragments.len() {
        if fragments[i].init_id != fragments[i - 1].init_id || fragments[i].discontinuity {
            out.push(&fragments[begin..i]);
            begin = i;
        }
    }
    if begin < fragments.len() {
        out.push(&fragments[begin..]);
    }
    out
}

/// `PT<seconds>S` with milliseconds.
fn duration(ms: i64) -> String {
    format!("PT{}.{:03}S", ms / 1000, ms % 1000)
}

fn iso(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

/// The MPD of a session's window (not empty).
fn render(
    session: &Session,
    token: &str,
    fragments: &[FragmentMeta],
    ended: bool,
    inits: &[(u64, Option<InitInfo>)],
    now: i64,
) -> String {
    let origin = session.origin;
    let start_of = |f: &FragmentMeta| origin.of(f);
    let end_of = |f: &FragmentMeta| start_of(f).saturating_add(i64::from(f.duration_ms));
    let longest = fragments
        .iter()
        .map(|f| i64::from(f.duration_ms))
        .max()
        .unwrap_or(1000);
    let dynamic = !ended;
    let periods = periods(fragments);
    // Writing to a String cannot fail: the results of `write!` are ignored below.
    let mut text = String::with_capacity(512 + fragments.len() * 160);
    text.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    text.push_str(
        "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" xmlns:kvs=\"urn:kinedge:kinesisvideo:dash\" \
         profiles=\"urn:mpeg:dash:profile:isoff-live:2011\"",
    );
    if dynamic {
        let window = end_of(&fragments[fragments.len() - 1]) - start_of(&fragments[0]);
        let _ = write!(
            text,
            " type=\"dynamic\" availabilityStartTime=\"1970-01-01T00:00:00Z\" publishTime=\"{}\" \
             minimumUpdatePeriod=\"PT1S\" timeShiftBufferDepth=\"{}\" \
             suggestedPresentationDelay=\"{}\"",
            iso(now),
            duration(window.max(longest)),
            duration(3 * longest),
        );
    } else {
        let total: i64 = periods
            .iter()
            .map(|p| end_of(&p[p.len() - 1]) - start_of(&p[0]))
            .sum();
        let _ = write!(
            text,
            " type=\"static\" mediaPresentationDuration=\"{}\"",
            duration(total)
        );
    }
    let _ = writeln!(text, " minBufferTime=\"{}\">", duration(longest));

    let mut static_offset = 0i64;
    for period in periods {
        let first = &period[0];
        let period_start = if dynamic {
            start_of(first)
        } else {
            static_offset
        };
        static_offset += end_of(&period[period.len() - 1]) - start_of(first);
        let _ = writeln!(
            text,
            "  <Period id=\"{}.{}\" start=\"{}\">",
            first.init_id,
            first.discontinuity_sequence,
            duration(period_start)
        );
        let info = inits
            .iter()
            .find(|(id, _)| *id == first.init_id)
            .and_then(|(_, info)| info.as_ref());
        let bandwidth = period
            .iter()
            .map(|f| f.size.saturating_mul(8000) / u64::from(f.duration_ms.max(1)))
            .max()
            .unwrap_or(1)
            .max(1);
        text.push_str(
            "    <AdaptationSet contentType=\"video\" mimeType=\"video/mp4\" \
             segmentAlignment=\"true\" startWithSAP=\"1\">\n",
        );
        let _ = write!(
            text,
            "      <Representation id=\"{}\" bandwidth=\"{bandwidth}\"",
            first.init_id
        );
        match info {
            Some(info) => {
                let _ = write!(
                    text,
                    " codecs=\"{}\" width=\"{}\" height=\"{}\"",
                    info.codec, info.width, info.height
                );
            }
            None => {
                let _ = write!(
                    text,
                    " width=\"{}\" height=\"{}\"",
                    first.width, first.height
                );
            }
        }
        text.push_str(">\n        <SegmentList timescale=\"1000\">\n");
        let _ = writeln!(
            text,
            "          <Initialization sourceURL=\"getMP4InitFragment.mp4?SessionToken={token}&amp;InitId={}\"/>",
            first.init_id
        );
        text.push_str("          <SegmentTimeline>\n");
        for f in period {
            let t = start_of(f) - start_of(first);
            let _ = write!(text, "            <S t=\"{t}\" d=\"{}\"", f.duration_ms);
            if session.display_timestamps {
                let _ = write!(text, " kvs:ts=\"{}\"", start_of(f));
            }
            if session.display_numbers {
                let _ = write!(text, " kvs:fn=\"{}\"", f.number);
            }
            text.push_str("/>\n");
        }
        text.push_str("          </SegmentTimeline>\n");
        for f in period {
            let _ = writeln!(
                text,
                "          <SegmentURL media=\"getMP4MediaFragment.mp4?SessionToken={token}&amp;FragmentNumber={}\"/>",
                f.number
            );
        }
        text.push_str(
            "        </SegmentList>\n      </Representation>\n    </AdaptationSet>\n  </Period>\n",
        );
    }
    text.push_str("</MPD>\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::kvs::archive::sessions::{Discontinuities, Mode};
    use crate::api::kvs::archive::Origin;

    fn meta(number: u64, producer_ms: i64, init_id: u64, discontinuity: bool) -> FragmentMeta {
        FragmentMeta {
            number,
            producer_ms,
            server_ms: producer_ms + 500,
            duration_ms: 1000,
            size: 1000,
            keyframe: true,
            discontinuity,
            discontinuity_sequence: number,
            codec: "h264".into(),
            width: 64,
            height: 48,
            init_id,
        }
    }

    fn session(display: bool) -> Session {
        Session {
            stream: "cam".into(),
            protocol: Protocol::Dash,
            mode: Mode::OnDemand,
            origin: Origin::Producer,
            start: None,
            end: None,
            max_fragments: 1000,
            discontinuities: Discontinuities::Never,
            display_timestamps: display,
            display_numbers: display,
            opened_ms: 0,
            expires: std::time::Instant::now(),
        }
    }

    #[test]
    fn static_manifest_has_a_period_per_run() {
        let fragments = [
            meta(1, 10_000, 1, false),
            meta(2, 11_000, 1, false),
            meta(3, 20_000, 1, true),
            meta(4, 21_000, 2, false),
        ];
        let text = render(&session(true), "T", &fragments, true, &[], 0);
        assert!(
            text.contains("type=\"static\" mediaPresentationDuration=\"PT4.000S\""),
            "{text}"
        );
        assert_eq!(text.matches("<Period ").count(), 3, "{text}");
        assert!(
            text.contains("<Period id=\"1.3\" start=\"PT2.000S\">"),
            "{text}"
        );
        assert!(
            text.contains("<S t=\"1000\" d=\"1000\" kvs:ts=\"11000\" kvs:fn=\"2\"/>"),
            "{text}"
        );
        assert!(
            text.contains("getMP4MediaFragment.mp4?SessionToken=T&amp;FragmentNumber=4\"/>"),
            "{text}"
        );
        assert!(
            text.contains("getMP4InitFragment.mp4?SessionToken=T&amp;InitId=2\"/>"),
            "{text}"
        );
        assert!(!text.contains("SessionToken=T&F"), "bare ampersand: {text}");
    }

    #[test]
    fn live_manifest_is_dynamic_on_the_wall_clock() {
        let fragments = [
            meta(5, 1_700_000_000_000, 1, false),
            meta(6, 1_700_000_001_000, 1, false),
        ];
        let text = render(
            &session(false),
            "T",
            &fragments,
            false,
            &[],
            1_700_000_002_500,
        );
        assert!(
            text.contains("type=\"dynamic\" availabilityStartTime=\"1970-01-01T00:00:00Z\""),
            "{text}"
        );
        assert!(
            text.contains("publishTime=\"2023-11-14T22:13:22.500Z\""),
            "{text}"
        );
        assert!(text.contains("start=\"PT1700000000.000S\""), "{text}");
        assert!(!text.contains("kvs:ts"));
    }
}
