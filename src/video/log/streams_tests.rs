//! Unit tests of the stream registry (`streams.rs`).

use super::*;
use crate::video::log::{NewFragment, RetentionPolicy, VideoOnFull};

fn open(dir: &tempfile::TempDir) -> FragmentLog {
    FragmentLog::open(&dir.path().join("video.redb")).unwrap()
}

fn record(name: &str) -> StreamRecord {
    StreamRecord {
        name: name.to_string(),
        created_ms: 1_700_000_000_123,
        revision: 0,
        media_type: Some("video/h264".into()),
        device_name: None,
        kms_key_id: None,
        retention_hours: 2,
        tags: BTreeMap::from([("team".to_string(), "edge".to_string())]),
        status: StreamStatus::Active,
    }
}

fn append(log: &FragmentLog, name: &str, n: usize) {
    let policy = RetentionPolicy {
        max_age_ms: 0,
        max_bytes: None,
        on_full: VideoOnFull::DeleteOldest,
        min_free_disk: 0,
    };
    let init = log.put_init(name, b"init").unwrap();
    for i in 0..n {
        let fragment = NewFragment {
            producer_ms: i as i64 * 1000,
            duration_ms: 1000,
            keyframe: true,
            discontinuity: false,
            codec: "h264".into(),
            width: 640,
            height: 480,
            init_id: init,
            data: vec![i as u8; 100].into(),
        };
        log.append(name, fragment, &policy, 1_000_000).unwrap();
    }
}

#[test]
fn streams_are_created_listed_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    log.create_stream(record("b"), 10).unwrap();
    log.create_stream(record("a"), 10).unwrap();
    assert!(matches!(
        log.create_stream(record("a"), 10),
        Err(RegistryError::Exists(_))
    ));
    assert!(matches!(
        log.create_stream(record("c"), 2),
        Err(RegistryError::Limit(2))
    ));
    drop(log);
    let log = open(&dir);
    let names: Vec<String> = log.stream_records().into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(log.stream_record("a"), Some(record("a")));
}

#[test]
fn updates_check_and_bump_the_version() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    let created = log.create_stream(record("s"), 10).unwrap();
    let v0 = created.version();
    let updated = log
        .update_stream("s", Some(&v0), true, |r| {
            r.device_name = Some("cam-1".into());
            Ok(())
        })
        .unwrap();
    assert_ne!(updated.version(), v0);
    assert!(updated.version().chars().all(|c| c.is_ascii_alphanumeric()));
    assert!(matches!(
        log.update_stream("s", Some(&v0), true, |_| Ok(())),
        Err(RegistryError::VersionMismatch { .. })
    ));
    assert!(matches!(
        log.update_stream("nope", None, true, |_| Ok(())),
        Err(RegistryError::NotFound(_))
    ));
    // A refused change writes nothing.
    assert!(log
        .update_stream("s", None, true, |r| {
            r.retention_hours = 99;
            Err(RegistryError::Invalid("no".into()))
        })
        .is_err());
    drop(log);
    let log = open(&dir);
    let stored = log.stream_record("s").unwrap();
    assert_eq!(stored, updated);
}

#[test]
fn deletion_removes_the_fragments_and_everything_under_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    log.create_stream(record("gone"), 10).unwrap();
    log.create_stream(record("kept"), 10).unwrap();
    append(&log, "gone", 250);
    append(&log, "kept", 3);
    let deleting = log.begin_delete("gone", None).unwrap();
    assert_eq!(deleting.status, StreamStatus::Deleting);
    assert!(matches!(
        log.update_stream("gone", None, true, |_| Ok(())),
        Err(RegistryError::Deleting(_))
    ));
    assert!(matches!(
        log.create_stream(record("gone"), 10),
        Err(RegistryError::Deleting(_))
    ));
    // Survives a restart half-way: the row says Deleting.
    drop(log);
    let log = open(&dir);
    assert_eq!(
        log.stream_record("gone").map(|r| r.status),
        Some(StreamStatus::Deleting)
    );
    let outcome = log.finish_delete("gone").unwrap();
    assert_eq!(outcome.fragments, 250);
    assert_eq!(log.stream_record("gone"), None);
    assert_eq!(log.usage("gone").unwrap().fragments, 0);
    assert!(!log.cameras().unwrap().contains(&"gone".to_string()));
    assert_eq!(log.init_segment("gone", 1).unwrap(), None);
    assert_eq!(log.usage("kept").unwrap().fragments, 3);
    // The name is free again, with nothing of the old stream under it.
    log.create_stream(record("gone"), 10).unwrap();
    assert_eq!(log.usage("gone").unwrap().fragments, 0);
    // finish_delete of an active stream does nothing.
    assert_eq!(log.finish_delete("kept").unwrap().fragments, 0);
    assert!(log.stream_record("kept").is_some());
}

#[test]
fn a_name_with_video_in_the_log_cannot_be_created() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    append(&log, "old-camera", 1);
    assert!(matches!(
        log.create_stream(record("old-camera"), 10),
        Err(RegistryError::NameHasVideo(_))
    ));
}

#[test]
fn pages_of_records_follow_the_prefix_and_the_last_name() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    for name in ["a1", "b1", "b2", "b3", "c1"] {
        log.create_stream(record(name), 10).unwrap();
    }
    let names = |page: Vec<StreamRecord>| page.into_iter().map(|r| r.name).collect::<Vec<_>>();
    assert_eq!(names(log.stream_records_page("b", None, 2)), ["b1", "b2"]);
    assert_eq!(names(log.stream_records_page("b", Some("b2"), 2)), ["b3"]);
    assert_eq!(
        names(log.stream_records_page("b", Some("a9"), 9)),
        ["b1", "b2", "b3"]
    );
    assert_eq!(names(log.stream_records_page("", Some("b3"), 9)), ["c1"]);
    assert!(log.stream_records_page("d", None, 9).is_empty());
}

/// A `video.redb` written before the registry existed opens, its video intact, and gets the
/// table.
#[test]
fn a_log_from_before_the_registry_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("video.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(schema::CAMERAS).unwrap();
        txn.commit().unwrap();
    }
    let log = FragmentLog::open(&path).unwrap();
    append(&log, "cam", 2);
    assert!(log.stream_records().is_empty());
    log.create_stream(record("s"), 10).unwrap();
    drop(log);
    let log = FragmentLog::open(&path).unwrap();
    assert_eq!(log.usage("cam").unwrap().fragments, 2);
    assert_eq!(log.stream_records().len(), 1);
}
