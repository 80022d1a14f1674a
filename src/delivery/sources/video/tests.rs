use std::time::Duration;

use chrono::NaiveDate;

use super::manifest::{
    append_line, json_line, manifest_days, read_inits, read_lines, read_objects, InitEntry,
    ObjectEntry, INITS_FILE, MANIFEST_INITS,
};
use super::objects::{group, in_window, may_grow, until_window};
use super::playlists::{playlist_text, relative_uri};
use crate::video::log::FragmentMeta;

// 2024-05-01T12:00:00Z
const NOON: i64 = 1_714_564_800_000;

fn fragment(number: u64, start_ms: i64, duration_ms: u32, init_id: u64) -> FragmentMeta {
    FragmentMeta {
        number,
        producer_ms: start_ms,
        server_ms: start_ms + i64::from(duration_ms),
        duration_ms,
        size: 100,
        keyframe: true,
        discontinuity: false,
        discontinuity_sequence: 0,
        codec: "h264".into(),
        width: 640,
        height: 360,
        init_id,
    }
}

fn numbers(objects: &[&[FragmentMeta]]) -> Vec<Vec<u64>> {
    objects
        .iter()
        .map(|o| o.iter().map(|f| f.number).collect())
        .collect()
}

#[test]
fn grouping_by_minutes_init_and_gaps() {
    // 2 s fragments: 1-3 continuous, 4 after a 2 s gap, 5 with a new init, 6-40 continuous.
    let mut fragments = vec![
        fragment(1, NOON, 2000, 1),
        fragment(2, NOON + 2000, 2000, 1),
        fragment(3, NOON + 4400, 2000, 1), // 400 ms late: still continuous
        fragment(4, NOON + 8400, 2000, 1),
        fragment(5, NOON + 10_400, 2000, 2),
    ];
    for n in 6..=40 {
        fragments.push(fragment(n, NOON + 12_400 + (n as i64 - 6) * 2000, 2000, 2));
    }
    assert_eq!(
        numbers(&group(&fragments, 0)),
        (1..=40).map(|n| vec![n]).collect::<Vec<_>>()
    );
    let objects = group(&fragments, 1);
    // One minute holds 30 fragments of 2 s: 5..=34, then 35..=40.
    assert_eq!(
        numbers(&objects),
        vec![
            vec![1, 2, 3],
            vec![4],
            (5..=34).collect(),
            (35..=40).collect()
        ]
    );
    // The last object is young and short: held while the camera may add to it.
    let last = objects[3];
    assert!(may_grow(last, 1, last[5].server_ms + 1000));
    assert!(!may_grow(last, 1, last[5].server_ms + 11_000));
    assert!(!may_grow(objects[2], 1, last[5].server_ms));
    assert!(!may_grow(last, 0, last[5].server_ms));
    // A new recording run (the camera reconnected) starts a new object, even on time.
    fragments[36].discontinuity = true;
    let objects = group(&fragments, 1);
    assert_eq!(
        numbers(&objects[3..]),
        vec![vec![35, 36], (37..=40).collect()]
    );
}

#[test]
fn windows_wrap_around_midnight() {
    assert!(in_window(None, 0));
    let night = Some((23 * 60, 5 * 60));
    assert!(in_window(night, 23 * 60));
    assert!(in_window(night, 0));
    assert!(in_window(night, 4 * 60 + 59));
    assert!(!in_window(night, 5 * 60));
    assert!(!in_window(night, 12 * 60));
    let day = Some((60, 5 * 60));
    assert!(in_window(day, 60));
    assert!(!in_window(day, 59));
    assert!(!in_window(day, 5 * 60));
    assert!(until_window(None).is_zero());
    assert!(until_window(day) <= Duration::from_secs(86_400));
}

#[test]
fn playlist_uris_are_relative_to_the_playlist() {
    let dir = "gw1/cam/2024/05/01/";
    assert_eq!(
        relative_uri(dir, "gw1/cam/2024/05/01/12/5-1.m4s"),
        "12/5-1.m4s"
    );
    assert_eq!(
        relative_uri(dir, "gw1/cam/init-2.mp4"),
        "../../../init-2.mp4"
    );
    assert_eq!(
        relative_uri("a/2024/05/01/", "b/init-1.mp4"),
        "../../../../b/init-1.mp4"
    );
    let entry = |first: u64, start_ms: i64, init: u64| ObjectEntry {
        key: format!("cam/2024/05/01/12/{first}-{start_ms}.m4s"),
        init_key: format!("cam/init-{init}.mp4"),
        first,
        last: first,
        start_ms,
        end_ms: start_ms + 2000,
        duration_ms: 2000,
        discontinuity: false,
    };
    let entries = [
        entry(1, NOON, 1),
        entry(2, NOON + 2000, 1),
        entry(3, NOON + 60_000, 1),
    ];
    let text = playlist_text("cam/2024/05/01/", &entries, false);
    assert_eq!(
        text,
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n\
         #EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-PLAYLIST-TYPE:EVENT\n\
         #EXT-X-MAP:URI=\"../../../init-1.mp4\"\n\
         #EXT-X-PROGRAM-DATE-TIME:2024-05-01T12:00:00.000Z\n\
         #EXTINF:2.000,\n12/1-1714564800000.m4s\n#EXTINF:2.000,\n12/2-1714564802000.m4s\n\
         #EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:2024-05-01T12:01:00.000Z\n\
         #EXTINF:2.000,\n12/3-1714564860000.m4s\n"
    );
    let mut restarted = entries.clone();
    restarted[1].discontinuity = true;
    let text = playlist_text("cam/2024/05/01/", &restarted, false);
    assert!(
        text.contains("#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:2024-05-01T12:00:02.000Z\n"),
        "{text}"
    );
    let ended = playlist_text("cam/2024/05/01/", &entries, true);
    assert!(ended.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"));
    assert!(ended.ends_with("#EXT-X-ENDLIST\n"));
}

#[test]
fn manifest_survives_torn_lines_and_repeats() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("cam/d/2024-05-01.jsonl");
    let entry = |first: u64, key: &str| ObjectEntry {
        key: key.into(),
        init_key: "i".into(),
        first,
        last: first,
        start_ms: NOON,
        end_ms: NOON,
        duration_ms: 0,
        discontinuity: false,
    };
    append_line(&file, &json_line(&entry(2, "b"))).unwrap();
    append_line(&file, &json_line(&entry(1, "a"))).unwrap();
    append_line(&file, &json_line(&entry(2, "b2"))).unwrap();
    append_line(&file, "{\"key\": \"torn").unwrap();
    let keys: Vec<String> = read_objects(&file)
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(keys, ["a", "b2"]);
    assert_eq!(
        manifest_days(&tmp.path().join("cam/d")).unwrap(),
        [NaiveDate::from_ymd_opt(2024, 5, 1).unwrap()]
    );
    assert!(manifest_days(&tmp.path().join("none")).unwrap().is_empty());

    let dir = tmp.path().join("inits");
    for id in 1..=2 * MANIFEST_INITS as u64 {
        append_line(
            &dir.join(INITS_FILE),
            &json_line(&InitEntry {
                init_id: id,
                key: format!("k{id}"),
            }),
        )
        .unwrap();
    }
    let inits = read_inits(&dir).unwrap();
    assert_eq!(inits.len(), MANIFEST_INITS);
    assert_eq!(inits.keys().next(), Some(&(MANIFEST_INITS as u64 + 1)));
    assert_eq!(
        read_lines::<InitEntry>(&dir.join(INITS_FILE))
            .unwrap()
            .len(),
        MANIFEST_INITS
    );
}
