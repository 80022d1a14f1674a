//! `/metrics`' exposition from a real store: the shard counters follow appends and reads, the
//! histograms count commits, and the text parses as the Prometheus format.

use std::sync::Arc;

use crate::api::error::{ApiError, ErrorKind};
use crate::api::events::{ApiCounters, ApiRequestFailed, ApiRequestReceived};
use crate::metrics::{render, Reporters};
use crate::storage::Store;
use crate::storage::{AdminOp, NewRecord, StoreOptions, StreamSpec};
use crate::streams::{OnFull, Position, StreamMode};

fn spec(name: &str, shards: u32) -> StreamSpec {
    StreamSpec {
        name: name.into(),
        shards,
        retention_hours: 24,
        max_bytes: None,
        on_full: OnFull::OverwriteOldest,
        mode: StreamMode::Provisioned,
        tags: Default::default(),
    }
}

/// The value of the sample whose name and labels start as `prefix`.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

#[tokio::test]
async fn shard_counters_follow_appends_and_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreOptions::new(dir.path())).unwrap();
    store
        .admin(AdminOp::EnsureStream(spec("telemetry", 1)))
        .await
        .unwrap();
    let records: Vec<NewRecord> = (0..3)
        .map(|i| NewRecord {
            partition_key: format!("k{i}"),
            hash_key: 0,
            data: vec![b'x'; 10].into(),
        })
        .collect();
    store.append("telemetry", records).await.unwrap();
    let uid = store.catalog().stream("telemetry").unwrap().shards[0].uid;
    let store2 = store.clone();
    tokio::task::spawn_blocking(move || store2.read(uid, Position(0), 2, 1 << 20))
        .await
        .unwrap()
        .unwrap();

    let api = Arc::new(ApiCounters::default());
    let error = ApiError::new(ErrorKind::Validation, "bad");
    crate::observe::emit(ApiRequestReceived { counters: &api });
    crate::observe::emit(ApiRequestFailed {
        counters: &api,
        request_id: "r",
        error: &error,
    });
    let reporters: Reporters = vec![Arc::new(store.clone()), api];
    let text = render(true, &reporters).unwrap();
    let shard = r#"{stream="telemetry",shard="shardId-000000000000"}"#;
    assert_eq!(
        sample(&text, &format!("kinedge_shard_records_in_total{shard}")),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, &format!("kinedge_shard_bytes_in_total{shard}")),
        Some(36.0)
    );
    assert_eq!(
        sample(&text, &format!("kinedge_shard_records_out_total{shard}")),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"kinedge_stream_stored_records{stream="telemetry"}"#
        ),
        Some(3.0)
    );
    assert!(sample(&text, "kinedge_storage_commit_seconds_count").unwrap() >= 1.0);
    assert!(
        sample(
            &text,
            r#"kinedge_storage_records_per_commit_bucket{le="4"}"#
        )
        .unwrap()
            >= 1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"kinedge_api_errors_total{type="ValidationException"}"#
        ),
        Some(1.0)
    );
    assert_eq!(sample(&text, "kinedge_ready"), Some(1.0));
    // Every line is a comment or `name{labels} value`, and every family is typed once.
    let mut types = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap();
            assert!(types.insert(name.to_string()), "{name} typed twice");
        } else if !line.starts_with('#') {
            let (_, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "bad sample line {line}");
        }
    }
    store.shutdown().await;
}

#[tokio::test]
async fn ping_answers_through_the_writer_without_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreOptions::new(dir.path())).unwrap();
    let before = store.stats().commits;
    store.ping().await.unwrap();
    store.ping().await.unwrap();
    assert_eq!(store.stats().commits, before);
    store.shutdown().await;
}
