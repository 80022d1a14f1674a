//! The retention pass of streams created through the Kinesis Video API.

use std::collections::BTreeMap;

use super::*;
use crate::video::log::NewFragment;

fn record(name: &str, retention_hours: u32) -> StreamRecord {
    StreamRecord {
        name: name.to_string(),
        created_ms: 1,
        revision: 0,
        media_type: None,
        device_name: None,
        kms_key_id: None,
        retention_hours,
        tags: BTreeMap::new(),
        status: StreamStatus::Active,
    }
}

/// Fragments of 1 s ending `ages_s` seconds ago.
fn append(service: &VideoService, name: &str, ages_s: &[i64]) {
    let log = service.log();
    let init = log.put_init(name, b"init").unwrap();
    let policy = service.created_stream_policy(&service.log().stream_record(name).unwrap());
    for age in ages_s {
        let fragment = NewFragment {
            producer_ms: now_ms() - age * 1000 - 1000,
            duration_ms: 1000,
            keyframe: true,
            discontinuity: false,
            codec: "h264".into(),
            width: 640,
            height: 480,
            init_id: init,
            data: vec![1u8; 64].into(),
        };
        log.append(name, fragment, &policy, now_ms()).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_streams_keep_their_retention_and_deletions_finish() {
    let dir = tempfile::tempdir().unwrap();
    let service = VideoService::start(
        VideoConfig::default(),
        dir.path().to_path_buf(),
        0,
        Vec::new(),
        None,
    )
    .await
    .unwrap();
    let log = service.log().clone();
    log.create_stream(record("hour", 1), 10).unwrap();
    log.create_stream(record("none", 0), 10).unwrap();
    log.create_stream(record("gone", 5), 10).unwrap();
    append(&service, "hour", &[2 * 3600, 3500, 10]);
    // Retention 0: AWS's 5-minute buffer.
    append(&service, "none", &[400, 200, 10]);
    append(&service, "gone", &[10, 5]);
    log.begin_delete("gone", None).unwrap();

    service.created_streams_retention().await;

    assert_eq!(log.usage("hour").unwrap().fragments, 2);
    assert_eq!(log.usage("none").unwrap().fragments, 2);
    assert_eq!(log.usage("gone").unwrap().fragments, 0);
    assert!(log.stream_record("gone").is_none());
    assert_eq!(
        service.created_stream_policy(&record("x", 0)).max_age_ms,
        300_000
    );
    assert_eq!(
        service.created_stream_policy(&record("x", 2)).max_age_ms,
        7_200_000
    );
    service.shutdown().await;
}
