//! The pump on a real store: records committed while subscribed arrive in events, in order,
//! soon after their commit; a subscription ends cleanly when its lifetime is up; subscribers
//! at the same position share events.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::pump::{Outgoing, Pump};
use super::registry::Subscriptions;
use crate::api::protocol::Wire;
use crate::storage::{AdminOp, NewRecord, Store, StoreOptions, StreamSpec};
use crate::streams::{hash_key_of, OnFull, Position, StreamConsumer, StreamMode};

async fn store_with_consumer(dir: &std::path::Path) -> (Store, StreamConsumer) {
    let mut options = StoreOptions::new(dir);
    options.commit_interval_ms = 0;
    let store = Store::open(options).unwrap();
    store
        .admin(AdminOp::CreateStream(StreamSpec {
            name: "s".into(),
            shards: 1,
            retention_hours: 24,
            max_bytes: None,
            on_full: OnFull::OverwriteOldest,
            mode: StreamMode::Provisioned,
            tags: BTreeMap::new(),
        }))
        .await
        .unwrap();
    let consumer = StreamConsumer {
        name: "c".into(),
        created_ms: 1_700_000_000_000,
        tags: BTreeMap::new(),
    };
    store
        .admin(AdminOp::RegisterConsumer {
            stream: "s".into(),
            consumer: consumer.clone(),
            max: 20,
        })
        .await
        .unwrap();
    (store, consumer)
}

fn pump(
    store: &Store,
    subs: &Arc<Subscriptions>,
    consumer: &StreamConsumer,
    arn: &str,
    lifetime: Duration,
) -> mpsc::Receiver<Outgoing> {
    let meta = store.catalog().stream("s").cloned().unwrap();
    let shard = meta.shard(0).cloned().unwrap();
    let (tx, rx) = mpsc::channel(1);
    let pump = Pump {
        store: store.clone(),
        subs: subs.clone(),
        claim: subs.claim(arn, shard.uid, &shard.id()).unwrap(),
        wire: Wire::Json,
        stream_uid: meta.uid,
        shard,
        consumer: consumer.clone(),
        consumer_arn: arn.into(),
        position: Position::ZERO,
        tx,
        lifetime,
    };
    tokio::spawn(pump.run());
    rx
}

/// The event type and JSON payload of a frame.
fn decode(frame: &Bytes) -> (String, serde_json::Value) {
    let message = aws_smithy_eventstream::frame::read_message_from(frame.clone()).unwrap();
    let event_type = message
        .headers()
        .iter()
        .find(|h| h.name().as_str() == ":event-type")
        .and_then(|h| h.value().as_string().ok())
        .map(|s| s.as_str().to_string())
        .unwrap_or_default();
    let payload = serde_json::from_slice(message.payload()).unwrap();
    (event_type, payload)
}

async fn next(rx: &mut mpsc::Receiver<Outgoing>) -> Option<(String, serde_json::Value)> {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("an event within 30 s")
        .map(|(frame, _)| decode(&frame))
}

fn record(data: &str) -> NewRecord {
    NewRecord {
        partition_key: "k".into(),
        hash_key: hash_key_of("k"),
        data: Bytes::from(data.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_records_are_pushed_in_order_then_the_subscription_ends() {
    let dir = tempfile::tempdir().unwrap();
    let (store, consumer) = store_with_consumer(dir.path()).await;
    let subs = Arc::new(Subscriptions::default());
    let mut rx = pump(&store, &subs, &consumer, "arn-c", Duration::from_secs(3));
    assert_eq!(next(&mut rx).await.unwrap().0, "initial-response");
    let (kind, first) = next(&mut rx).await.unwrap();
    assert_eq!(kind, "SubscribeToShardEvent");
    assert_eq!(first["Records"].as_array().unwrap().len(), 0);
    // One record at a time, each waited for: the delay from the commit (append returns
    // once committed) to its event.
    let mut delays = Vec::new();
    for i in 0..20 {
        store
            .append("s", vec![record(&format!("r{i}"))])
            .await
            .unwrap();
        let committed = Instant::now();
        let (_, event) = next(&mut rx).await.unwrap();
        delays.push(committed.elapsed());
        let records = event["Records"].as_array().unwrap();
        assert_eq!(records.len(), 1, "{event}");
        assert_eq!(
            event["ContinuationSequenceNumber"],
            records[0]["SequenceNumber"]
        );
        let data = records[0]["Data"].as_str().unwrap();
        assert_eq!(data, base64_of(&format!("r{i}")));
    }
    delays.sort();
    eprintln!(
        "commit -> event: median {:?}, max {:?} (debug build)",
        delays[delays.len() / 2],
        delays[delays.len() - 1]
    );
    assert!(delays[delays.len() - 1] < Duration::from_secs(5));
    // The lifetime is up: the stream ends (heartbeats may come before).
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        while rx.recv().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the subscription did not end");
    assert!(subs.is_empty(), "its claim is released");
    store.shutdown().await;
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_at_the_same_position_get_the_same_event() {
    let dir = tempfile::tempdir().unwrap();
    let (store, consumer) = store_with_consumer(dir.path()).await;
    store
        .append("s", (0..100).map(|i| record(&format!("r{i}"))).collect())
        .await
        .unwrap();
    let subs = Arc::new(Subscriptions::default());
    let mut a = pump(&store, &subs, &consumer, "arn-a", Duration::from_secs(60));
    let mut b = pump(&store, &subs, &consumer, "arn-b", Duration::from_secs(60));
    for rx in [&mut a, &mut b] {
        assert_eq!(next(rx).await.unwrap().0, "initial-response");
    }
    let (_, from_a) = tokio::time::timeout(Duration::from_secs(30), a.recv())
        .await
        .unwrap()
        .unwrap();
    let (_, from_b) = tokio::time::timeout(Duration::from_secs(30), b.recv())
        .await
        .unwrap()
        .unwrap();
    let (from_a, from_b) = (from_a.unwrap(), from_b.unwrap());
    assert!(
        Arc::ptr_eq(&from_a, &from_b),
        "one read and encoding for both"
    );
    let (_, event) = decode(&from_a.frame);
    assert_eq!(event["Records"].as_array().unwrap().len(), 100);
    subs.stop_all();
    store.shutdown().await;
}
