use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

use redb::{ReadableTable, ReadableTableMetadata};

use super::*;

fn open(dir: &tempfile::TempDir) -> FragmentLog {
    FragmentLog::open(&dir.path().join("video").join("video.redb")).unwrap()
}

fn keep_all() -> RetentionPolicy {
    RetentionPolicy {
        max_age_ms: 0,
        max_bytes: None,
        on_full: VideoOnFull::DeleteOldest,
        min_free_disk: 0,
    }
}

fn max_bytes(max: u64, on_full: VideoOnFull) -> RetentionPolicy {
    RetentionPolicy {
        max_bytes: Some(max),
        on_full,
        ..keep_all()
    }
}

/// Bytes that differ with `seed` and position (a small xorshift).
fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn fragment(init_id: u64, producer_ms: i64, duration_ms: u32, data: Vec<u8>) -> NewFragment {
    NewFragment {
        producer_ms,
        duration_ms,
        keyframe: true,
        discontinuity: false,
        codec: "h264".into(),
        width: 1280,
        height: 720,
        init_id,
        data: data.into(),
    }
}

/// Appends `sizes.len()` fragments 2 s apart (producer time = index * 2000).
fn append_sizes(log: &FragmentLog, camera: &str, sizes: &[usize], policy: &RetentionPolicy) {
    let init = log.put_init(camera, b"init").unwrap();
    for (i, &size) in sizes.iter().enumerate() {
        let at = i as i64 * 2000;
        log.append(
            camera,
            fragment(init, at, 2000, data(i as u64, size)),
            policy,
            at,
        )
        .unwrap();
    }
}

fn numbers(fragments: &[FragmentMeta]) -> Vec<u64> {
    fragments.iter().map(|f| f.number).collect()
}

#[test]
fn one_megabyte_round_trip_in_chunks_below_256_kib() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    let init = log.put_init("cam", b"ftyp moov").unwrap();
    let bytes = data(7, 1 << 20);
    let mut new = fragment(init, 1_000, 2_000, bytes.clone());
    new.codec = "h265".into();
    let outcome = log.append("cam", new, &keep_all(), 5_000).unwrap();
    let expected = FragmentMeta {
        number: 1,
        producer_ms: 1_000,
        server_ms: 5_000,
        duration_ms: 2_000,
        size: 1 << 20,
        keyframe: true,
        discontinuity: false,
        discontinuity_sequence: 0,
        codec: "h265".into(),
        width: 1280,
        height: 720,
        init_id: init,
    };
    assert_eq!(outcome.meta, expected);
    assert_eq!(log.fragment("cam", 1).unwrap(), Some(expected));
    assert_eq!(log.read("cam", 1).unwrap(), Some(bytes));
    assert_eq!(log.read("cam", 2).unwrap(), None);
    assert_eq!(log.read("other", 1).unwrap(), None);
    assert_eq!(
        log.init_segment("cam", init).unwrap().unwrap(),
        b"ftyp moov"
    );

    let txn = log.db.begin_read().unwrap();
    let chunks = txn.open_table(schema::CHUNKS).unwrap();
    let lengths: Vec<usize> = chunks
        .iter()
        .unwrap()
        .map(|e| e.unwrap().1.value().len())
        .collect();
    assert_eq!(lengths.len(), 5, "{lengths:?}");
    assert!(lengths.iter().all(|&len| len < 256 * 1024), "{lengths:?}");
    assert_eq!(lengths.iter().sum::<usize>(), 1 << 20);
}

#[test]
fn numbers_increase_and_survive_deletion_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(&dir);
        append_sizes(&log, "cam", &[10, 10, 10], &keep_all());
        append_sizes(&log, "other", &[10], &keep_all());
        assert_eq!(log.delete_through("cam", 3).unwrap().fragments, 3);
        assert_eq!(log.usage("cam").unwrap().fragments, 0);
        assert!(log.path().ends_with("video/video.redb"));
    }
    let log = open(&dir);
    let init = log.put_init("cam", b"init").unwrap();
    let next = log
        .append("cam", fragment(init, 0, 2000, vec![1]), &keep_all(), 0)
        .unwrap();
    assert_eq!(next.meta.number, 4);
    assert_eq!(log.usage("other").unwrap().last.unwrap().number, 1);
    assert_eq!(log.cameras().unwrap(), ["cam", "other"]);
}

#[test]
fn time_range_queries_overlap_and_limit() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    // Fragments 1..=5 at 0, 2000, ..., 8000, each 2 s long.
    append_sizes(&log, "cam", &[10; 5], &keep_all());
    let range = |start, end, limit| numbers(&log.fragments("cam", start, end, limit).unwrap());
    assert_eq!(range(3000, 5000, 10), [2, 3]);
    assert_eq!(range(4000, 6000, 10), [3], "touching ends do not overlap");
    assert_eq!(range(3999, 4001, 10), [2, 3]);
    assert_eq!(range(-100, 20_000, 10), [1, 2, 3, 4, 5]);
    assert_eq!(range(-100, 20_000, 2), [1, 2]);
    assert_eq!(range(10_000, 20_000, 10), Vec::<u64>::new());
    assert_eq!(range(5000, 5000, 10), Vec::<u64>::new());
    assert_eq!(range(0, 10_000, 0), Vec::<u64>::new());
    assert!(log.fragments("nobody", 0, 10_000, 10).unwrap().is_empty());

    // A long fragment starting well before the range, and a clock that went back.
    let init = log.put_init("jumpy", b"init").unwrap();
    let policy = keep_all();
    for (at, duration) in [(0, 60_000), (1_000, 1_000), (500, 1_000), (70_000, 2_000)] {
        let f = fragment(init, at, duration, vec![0; 4]);
        log.append("jumpy", f, &policy, 0).unwrap();
    }
    let jumpy = |start, end, limit| numbers(&log.fragments("jumpy", start, end, limit).unwrap());
    assert_eq!(jumpy(30_000, 31_000, 10), [1]);
    assert_eq!(jumpy(0, 2_000, 10), [1, 2, 3], "ascending by number");
    assert_eq!(jumpy(0, 2_000, 2), [1, 2]);
    assert_eq!(jumpy(1_400, 100_000, 10), [1, 2, 3, 4]);
}

#[test]
fn latest_and_fragments_after() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    append_sizes(&log, "cam", &[10; 5], &keep_all());
    assert_eq!(numbers(&log.latest("cam", 2).unwrap()), [4, 5]);
    assert_eq!(numbers(&log.latest("cam", 10).unwrap()), [1, 2, 3, 4, 5]);
    assert!(log.latest("cam", 0).unwrap().is_empty());
    assert!(log.latest("nobody", 3).unwrap().is_empty());
    assert_eq!(numbers(&log.fragments_after("cam", 2, 2).unwrap()), [3, 4]);
    assert_eq!(
        numbers(&log.fragments_after("cam", 0, 10).unwrap()),
        [1, 2, 3, 4, 5]
    );
    assert!(log.fragments_after("cam", 5, 10).unwrap().is_empty());
    assert!(log.fragments_after("cam", u64::MAX, 10).unwrap().is_empty());
}

#[test]
fn max_bytes_delete_oldest_evicts_oldest_first_with_exact_usage() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    let policy = max_bytes(3_500, VideoOnFull::DeleteOldest);
    let init = log.put_init("cam", b"init").unwrap();
    let mut evicted = Vec::new();
    for (i, size) in [1_000, 1_500, 700, 2_000, 300, 3_500]
        .into_iter()
        .enumerate()
    {
        let f = fragment(init, i as i64 * 2000, 2000, data(i as u64, size));
        let outcome = log.append("cam", f, &policy, 0).unwrap();
        evicted.push((outcome.evicted_fragments, outcome.evicted_bytes));
    }
    // 1000+1500+700 fit; 2000 evicts 1 and 2 (leaves 700+2000); 300 fits (3000);
    // 3500 evicts everything else.
    assert_eq!(
        evicted,
        [(0, 0), (0, 0), (0, 0), (2, 2_500), (0, 0), (3, 3_000)]
    );
    let usage = log.usage("cam").unwrap();
    assert_eq!((usage.fragments, usage.bytes), (1, 3_500));
    assert_eq!((usage.evicted_fragments, usage.evicted_bytes), (5, 5_500));
    assert_eq!(usage.first.as_ref().unwrap().number, 6);
    assert_eq!(usage.last.unwrap().number, 6);
    for gone in 1..=5 {
        assert_eq!(log.read("cam", gone).unwrap(), None);
    }
    let txn = log.db.begin_read().unwrap();
    let chunks = txn.open_table(schema::CHUNKS).unwrap();
    assert_eq!(chunks.len().unwrap(), 1, "evicted chunks are deleted");
    let times = txn.open_table(schema::TIMES).unwrap();
    assert_eq!(times.len().unwrap(), 1, "evicted time rows are deleted");
}

#[test]
fn deny_new_refuses_naming_max_bytes_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    let policy = max_bytes(2_500, VideoOnFull::DenyNew);
    append_sizes(&log, "cam", &[1_000, 1_000], &policy);
    let before = log.usage("cam").unwrap();

    let error = log
        .append("cam", fragment(1, 9_000, 2000, vec![0; 1_000]), &policy, 0)
        .unwrap_err();
    let message = error.to_string();
    assert!(matches!(
        error,
        VideoLogError::Full {
            needed: 3_000,
            limit: 2_500,
            ..
        }
    ));
    assert!(message.contains("max_bytes"), "{message}");
    assert!(message.contains("deny_new"), "{message}");

    let after = log.usage("cam").unwrap();
    assert_eq!(
        (after.fragments, after.bytes),
        (before.fragments, before.bytes)
    );
    assert_eq!(after.first, before.first);
    assert_eq!(after.last, before.last);
    assert_eq!(after.evicted_fragments, 0);
    assert_eq!(after.denied_fragments, 1);
    assert_eq!(numbers(&log.latest("cam", 10).unwrap()), [1, 2]);

    // A fragment that fits takes the next number: refusals use none.
    let fits = fragment(1, 9_000, 2000, vec![0; 500]);
    assert_eq!(log.append("cam", fits, &policy, 0).unwrap().meta.number, 3);
}

#[test]
fn a_fragment_larger_than_max_bytes_is_too_large() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    append_sizes(&log, "cam", &[100], &keep_all());
    for on_full in [VideoOnFull::DeleteOldest, VideoOnFull::DenyNew] {
        let policy = max_bytes(1_000, on_full);
        let error = log
            .append("cam", fragment(1, 0, 2000, vec![0; 1_001]), &policy, 0)
            .unwrap_err();
        assert!(
            matches!(
                error,
                VideoLogError::TooLarge {
                    size: 1_001,
                    max_bytes: 1_000,
                    ..
                }
            ),
            "{error}"
        );
    }
    let usage = log.usage("cam").unwrap();
    assert_eq!(
        (usage.fragments, usage.bytes, usage.denied_fragments),
        (1, 100, 2)
    );
}

#[test]
fn min_free_disk_guard_evicts_just_enough_or_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    append_sizes(&log, "cam", &[1_000; 4], &keep_all());
    let starved = RetentionPolicy {
        min_free_disk: u64::MAX / 2,
        ..keep_all()
    };
    let f = |size| fragment(1, 100_000, 2000, vec![1; size]);

    let outcome = log.append("cam", f(1_000), &starved, 0).unwrap();
    assert_eq!(
        (outcome.evicted_fragments, outcome.evicted_bytes),
        (1, 1_000)
    );
    let outcome = log.append("cam", f(1_500), &starved, 0).unwrap();
    assert_eq!(
        (outcome.evicted_fragments, outcome.evicted_bytes),
        (2, 2_000)
    );
    assert_eq!(numbers(&log.latest("cam", 10).unwrap()), [4, 5, 6]);
    assert_eq!(log.usage("cam").unwrap().bytes, 3_500);

    // More than the camera holds: refused, nothing deleted.
    let error = log.append("cam", f(4_000), &starved, 0).unwrap_err();
    assert!(error.to_string().contains("min_free_disk"), "{error}");
    assert_eq!(numbers(&log.latest("cam", 10).unwrap()), [4, 5, 6]);

    // An empty camera has nothing to delete.
    log.put_init("empty", b"init").unwrap();
    let error = log.append("empty", f(10), &starved, 0).unwrap_err();
    assert!(matches!(
        error,
        VideoLogError::Full {
            reason: FullReason::NothingToDelete { .. },
            ..
        }
    ));

    let deny = RetentionPolicy {
        on_full: VideoOnFull::DenyNew,
        ..starved
    };
    let error = log.append("cam", f(10), &deny, 0).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("min_free_disk"), "{message}");
    assert!(message.contains("deny_new"), "{message}");
    let usage = log.usage("cam").unwrap();
    assert_eq!(
        (usage.fragments, usage.bytes, usage.denied_fragments),
        (3, 3_500, 2)
    );
}

#[test]
fn age_trim_deletes_old_fragments_across_bounded_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    let init = log.put_init("cam", b"init").unwrap();
    for i in 0..500 {
        let at = i * 10;
        log.append(
            "cam",
            fragment(init, at, 10, vec![i as u8; 8]),
            &keep_all(),
            at,
        )
        .unwrap();
    }
    let policy = RetentionPolicy {
        max_age_ms: 1_000,
        ..keep_all()
    };
    // Now 5000: fragments ending before 4000 (numbers 1..=399) are old.
    let outcome = log.trim("cam", &policy, 5_000).unwrap();
    assert!(outcome.fragments > TRIM_BATCH as u64);
    assert_eq!(
        outcome,
        TrimOutcome {
            fragments: 399,
            bytes: 399 * 8
        }
    );
    let usage = log.usage("cam").unwrap();
    assert_eq!(usage.first.unwrap().number, 400);
    assert_eq!((usage.fragments, usage.bytes), (101, 101 * 8));
    assert_eq!(
        (usage.evicted_fragments, usage.evicted_bytes),
        (399, 399 * 8)
    );
    assert_eq!(
        log.trim("cam", &policy, 5_000).unwrap(),
        TrimOutcome::default()
    );
    assert_eq!(
        log.trim("cam", &policy, 100_000).unwrap().fragments,
        101,
        "all old fragments go"
    );
    assert!(log.latest("cam", 1).unwrap().is_empty());

    let no_age_limit = keep_all();
    append_sizes(&log, "cam", &[1], &no_age_limit);
    assert_eq!(
        log.trim("cam", &no_age_limit, i64::MAX).unwrap().fragments,
        0
    );
}

#[test]
fn trim_applies_a_lowered_max_bytes_for_delete_oldest_only() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    append_sizes(&log, "cam", &[1_000; 5], &keep_all());
    let deny = max_bytes(2_000, VideoOnFull::DenyNew);
    assert_eq!(log.trim("cam", &deny, 0).unwrap().fragments, 0);
    let delete = max_bytes(2_000, VideoOnFull::DeleteOldest);
    assert_eq!(log.trim("cam", &delete, 0).unwrap().fragments, 3);
    assert_eq!(log.usage("cam").unwrap().bytes, 2_000);
}

#[test]
fn gaps_are_bounded_queried_by_overlap_and_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    let gap = |start: i64, end: i64| Gap {
        start_ms: start,
        end_ms: end,
        reason: format!("lost {start}"),
    };
    // The first 1004 in one transaction (a commit each would take seconds), the last through
    // the API.
    let txn = log.begin_write().unwrap();
    {
        let mut tables = Tables::open(&txn).unwrap();
        for i in 0..1_004 {
            tables
                .insert_gap("cam", &gap(i * 100, i * 100 + 50))
                .unwrap();
        }
    }
    txn.commit().unwrap();
    log.record_gap("cam", gap(100_400, 100_450)).unwrap();
    let all = log.gaps("cam", i64::MIN, i64::MAX).unwrap();
    assert_eq!(all.len(), MAX_GAPS_PER_CAMERA as usize);
    assert_eq!(all[0], gap(500, 550), "the oldest went first");
    // Recording the same gap again replaces it.
    log.record_gap("cam", gap(500, 550)).unwrap();
    assert_eq!(log.gaps("cam", i64::MIN, i64::MAX).unwrap().len(), 1_000);

    assert_eq!(
        log.gaps("cam", 540, 700).unwrap(),
        [gap(500, 550), gap(600, 650)]
    );
    assert_eq!(
        log.gaps("cam", 550, 600).unwrap(),
        [],
        "touching ends do not overlap"
    );
    assert!(log.gaps("other", i64::MIN, i64::MAX).unwrap().is_empty());
    assert!(log.record_gap("cam", gap(10, 5)).is_err());

    // Fragments from 60_000 on: trimming drops the gaps that end before the first of them.
    let init = log.put_init("cam", b"init").unwrap();
    for at in [60_000, 62_000] {
        log.append("cam", fragment(init, at, 2000, vec![0; 4]), &keep_all(), at)
            .unwrap();
    }
    log.trim("cam", &keep_all(), 70_000).unwrap();
    let left = log.gaps("cam", i64::MIN, i64::MAX).unwrap();
    assert_eq!(left.first(), Some(&gap(60_000, 60_050)));
    assert_eq!(left.len(), 1_005 - 600);

    // With no fragment left, gaps before the age cutoff go too.
    let policy = RetentionPolicy {
        max_age_ms: 1_000,
        ..keep_all()
    };
    log.trim("cam", &policy, 101_400).unwrap();
    assert_eq!(
        log.gaps("cam", i64::MIN, i64::MAX).unwrap(),
        [gap(100_400, 100_450)]
    );
}

#[test]
fn upload_checkpoints_per_destination_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(&dir);
        assert_eq!(log.upload_checkpoint("cam", "s3").unwrap(), None);
        log.set_upload_checkpoint("cam", "s3", 7).unwrap();
        log.set_upload_checkpoint("cam", "kvs", 3).unwrap();
        log.set_upload_checkpoint("cam", "s3", 9).unwrap();
    }
    let log = open(&dir);
    assert_eq!(log.upload_checkpoint("cam", "s3").unwrap(), Some(9));
    assert_eq!(log.upload_checkpoint("cam", "kvs").unwrap(), Some(3));
    assert_eq!(log.upload_checkpoint("other", "s3").unwrap(), None);
}

#[test]
fn delete_through_deletes_uploaded_fragments() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    append_sizes(&log, "cam", &[100, 200, 300, 400, 500], &keep_all());
    let outcome = log.delete_through("cam", 3).unwrap();
    assert_eq!(
        outcome,
        TrimOutcome {
            fragments: 3,
            bytes: 600
        }
    );
    assert_eq!(numbers(&log.fragments_after("cam", 0, 10).unwrap()), [4, 5]);
    let usage = log.usage("cam").unwrap();
    assert_eq!((usage.fragments, usage.bytes), (2, 900));
    assert_eq!(
        usage.evicted_fragments, 0,
        "deleting after upload is no eviction"
    );
    assert_eq!(
        log.delete_through("cam", 3).unwrap(),
        TrimOutcome::default()
    );
    assert_eq!(log.delete_through("cam", 100).unwrap().fragments, 2);
    assert_eq!(log.usage("cam").unwrap().bytes, 0);
    assert_eq!(
        log.delete_through("nobody", 100).unwrap(),
        TrimOutcome::default()
    );
}

#[test]
fn init_segments_dedupe_and_unused_ones_are_cleaned_up() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    assert_eq!(log.put_init("cam", b"A").unwrap(), 1);
    assert_eq!(log.put_init("cam", b"A").unwrap(), 1);
    assert_eq!(log.put_init("cam", b"B").unwrap(), 2);
    assert_eq!(
        log.put_init("other", b"B").unwrap(),
        1,
        "ids are per camera"
    );
    let policy = keep_all();
    log.append("cam", fragment(1, 0, 2000, vec![1]), &policy, 0)
        .unwrap();
    log.append("cam", fragment(2, 0, 2000, vec![2]), &policy, 0)
        .unwrap();
    assert_eq!(
        log.put_init("cam", b"A").unwrap(),
        3,
        "only the latest dedupes"
    );
    assert_eq!(log.put_init("cam", b"C").unwrap(), 4);
    log.append("cam", fragment(3, 0, 2000, vec![3]), &policy, 0)
        .unwrap();
    let unknown = log.append("cam", fragment(9, 0, 2000, vec![3]), &policy, 0);
    assert!(matches!(unknown, Err(VideoLogError::Invalid(_))));

    log.delete_through("cam", 1).unwrap();
    let kept = |id| log.init_segment("cam", id).unwrap().is_some();
    assert_eq!(
        [kept(1), kept(2), kept(3), kept(4)],
        [false, true, true, true]
    );
    log.delete_through("cam", 3).unwrap();
    assert_eq!(
        [kept(1), kept(2), kept(3), kept(4)],
        [false, false, false, true],
        "the latest stays"
    );
    assert_eq!(log.put_init("cam", b"D").unwrap(), 5, "ids are not reused");
    assert!(log.init_segment("other", 1).unwrap().is_some());
}

#[test]
fn cameras_append_from_several_threads() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    let threads: Vec<_> = (0..4)
        .map(|c| {
            let log = log.clone();
            std::thread::spawn(move || {
                let camera = format!("cam{c}");
                let init = log.put_init(&camera, b"init").unwrap();
                (1..=10)
                    .map(|i| {
                        let f = fragment(init, i, 2000, data(i as u64, 1000));
                        log.append(&camera, f, &keep_all(), i).unwrap().meta.number
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().unwrap(), (1..=10).collect::<Vec<u64>>());
    }
    assert_eq!(log.cameras().unwrap().len(), 4);
    assert_eq!(log.usage("cam2").unwrap().bytes, 10_000);
}

const CRASH_DB_ENV: &str = "KINEDGE_VIDEO_LOG_CRASH_DB";
const COMMITTED: &str = "KINEDGE_COMMITTED";

/// The child of `appended_fragments_survive_sigkill`: appends until killed, printing each
/// committed number (does nothing when run by the test harness).
#[test]
fn crash_child() {
    let Some(path) = std::env::var_os(CRASH_DB_ENV) else {
        return;
    };
    let log = FragmentLog::open(Path::new(&path)).unwrap();
    let init = log.put_init("cam", b"init").unwrap();
    let mut stdout = std::io::stdout();
    for i in 0..2_000 {
        let f = fragment(init, i, 2000, data(i as u64, 600_000));
        let number = log.append("cam", f, &keep_all(), i).unwrap().meta.number;
        writeln!(stdout, "{COMMITTED} {number} {i}").unwrap();
        stdout.flush().unwrap();
    }
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// (number, index) from a complete "KINEDGE_COMMITTED number index" line.
fn committed(line: &str) -> Option<(u64, i64)> {
    let line = line.strip_suffix('\n')?;
    let mut words = line[line.find(COMMITTED)?..].split_whitespace().skip(1);
    Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
}

#[test]
fn appended_fragments_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("video.redb");
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "video::log::tests::crash_child", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(CRASH_DB_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let mut reader = BufReader::new(child.0.stdout.take().unwrap());
    let mut seen = Vec::new();
    let mut line = String::new();
    while seen.len() < 12 {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        seen.extend(committed(&line));
    }
    let pid = i32::try_from(child.0.id()).unwrap();
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    child.0.wait().unwrap();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        seen.extend(committed(&line));
    }
    assert!(seen.len() >= 12, "the child printed only {seen:?}");

    let log = FragmentLog::open(&path).unwrap();
    for &(number, i) in &seen {
        assert_eq!(log.fragment("cam", number).unwrap().unwrap().producer_ms, i);
        assert!(
            log.read("cam", number).unwrap() == Some(data(i as u64, 600_000)),
            "fragment {number} differs"
        );
    }
    let last = seen.iter().map(|&(number, _)| number).max().unwrap();
    let usage = log.usage("cam").unwrap();
    assert!(usage.fragments >= last && usage.bytes == usage.fragments * 600_000);
    let next = log
        .append("cam", fragment(1, 0, 2000, vec![1]), &keep_all(), 0)
        .unwrap();
    assert!(next.meta.number > last);
}

#[test]
fn discontinuities_are_counted_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("video.redb");
    let flags = [true, false, false, true, false];
    let mut sequences = Vec::new();
    {
        let log = FragmentLog::open(&path).unwrap();
        let init = log.put_init("cam", b"init").unwrap();
        for (i, flag) in flags.iter().enumerate() {
            let mut new = fragment(init, i as i64 * 2_000, 2_000, data(i as u64, 10));
            new.discontinuity = *flag;
            sequences.push(
                log.append("cam", new, &keep_all(), 0)
                    .unwrap()
                    .meta
                    .discontinuity_sequence,
            );
        }
    }
    assert_eq!(sequences, [1, 1, 1, 2, 2]);
    let log = FragmentLog::open(&path).unwrap();
    let init = log.put_init("cam", b"init").unwrap();
    let mut new = fragment(init, 20_000, 2_000, data(9, 10));
    new.discontinuity = true;
    assert_eq!(
        log.append("cam", new, &keep_all(), 0)
            .unwrap()
            .meta
            .discontinuity_sequence,
        3
    );
    assert!(log.fragment("cam", 4).unwrap().unwrap().discontinuity);
}
