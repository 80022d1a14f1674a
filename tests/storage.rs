//! The stream store through its public interface: group commit, durability across reopen,
//! notifications, retention, quotas, the disk guard, large records and resharding.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use kinedge::storage::{AdminOp, NewRecord, Rejected, Store, StoreOptions, StreamSpec};
use kinedge::streams::{hash_key_of, OnFull, Position, StreamMode};

fn options(dir: &std::path::Path) -> StoreOptions {
    let mut o = StoreOptions::new(dir);
    o.min_free_disk = 0;
    o
}

fn spec(name: &str, shards: u32) -> StreamSpec {
    StreamSpec {
        name: name.into(),
        shards,
        retention_hours: 24,
        max_bytes: None,
        on_full: OnFull::OverwriteOldest,
        mode: StreamMode::Provisioned,
        tags: BTreeMap::new(),
    }
}

fn record(key: &str, data: &[u8]) -> NewRecord {
    NewRecord {
        partition_key: key.into(),
        hash_key: hash_key_of(key),
        data: Bytes::copy_from_slice(data),
    }
}

/// Every record of a shard, by its storage id.
fn read_all(store: &Store, uid: u64) -> Vec<(Position, String, Vec<u8>)> {
    store
        .read(uid, Position::ZERO, 1_000_000, usize::MAX)
        .unwrap()
        .records
        .into_iter()
        .map(|r| (r.position, r.partition_key, r.data.to_vec()))
        .collect()
}

fn shard_uids(store: &Store, stream: &str) -> Vec<u64> {
    store
        .catalog()
        .stream(stream)
        .unwrap()
        .shards
        .iter()
        .map(|s| s.uid)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_producers_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(options(dir.path())).unwrap();
    store
        .admin(AdminOp::CreateStream(spec("s", 4)))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for p in 0..32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                let out = store
                    .append("s", vec![record(&format!("p{p}-{i}"), b"0123456789")])
                    .await
                    .unwrap();
                assert!(out[0].is_ok());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stats = store.stats();
    assert_eq!(stats.records, 32 * 50);
    assert!(
        stats.commits < stats.records / 2,
        "producers did not share commits: {} commits for {} records",
        stats.commits,
        stats.records
    );
    let total: usize = shard_uids(&store, "s")
        .iter()
        .map(|&u| read_all(&store, u).len())
        .sum();
    assert_eq!(total, 1600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_survive_reopen_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked = Vec::new();
    {
        let store = Store::open(options(dir.path())).unwrap();
        store
            .admin(AdminOp::CreateStream(spec("s", 2)))
            .await
            .unwrap();
        for i in 0..300 {
            let out = store
                .append(
                    "s",
                    vec![record(&format!("k{}", i % 7), format!("v{i}").as_bytes())],
                )
                .await
                .unwrap();
            acked.push(out[0].clone().unwrap());
        }
        store.shutdown().await;
    }
    let store = Store::open(options(dir.path())).unwrap();
    let catalog = store.catalog();
    let meta = catalog.stream("s").unwrap();
    let mut found = 0;
    for shard in &meta.shards {
        let records = read_all(&store, shard.uid);
        assert!(
            records.windows(2).all(|w| w[0].0 < w[1].0),
            "positions increase"
        );
        for appended in acked.iter().filter(|a| a.shard_index == shard.index) {
            assert!(records.iter().any(|r| r.0 == appended.sequence.position));
            found += 1;
        }
    }
    assert_eq!(found, 300);
    // New records continue after the old ones.
    let next = store
        .append("s", vec![record("k0", b"after")])
        .await
        .unwrap()[0]
        .clone()
        .unwrap();
    let before = acked
        .iter()
        .filter(|a| a.shard_index == next.shard_index)
        .map(|a| a.sequence.position)
        .max()
        .unwrap();
    assert!(next.sequence.position > before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_are_woken_by_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(options(dir.path())).unwrap();
    store
        .admin(AdminOp::CreateStream(spec("s", 1)))
        .await
        .unwrap();
    let uid = shard_uids(&store, "s")[0];
    let mut rx = store.subscribe(uid).unwrap();
    let before = *rx.borrow_and_update();
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            store.append("s", vec![record("a", b"x")]).await.unwrap()
        })
    };
    tokio::time::timeout(Duration::from_secs(5), rx.changed())
        .await
        .unwrap()
        .unwrap();
    let appended = writer.await.unwrap()[0].clone().unwrap();
    assert!(*rx.borrow() > before);
    assert_eq!(*rx.borrow(), appended.sequence.position);
    assert_eq!(read_all(&store, uid).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_trims_only_expired_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(options(dir.path())).unwrap();
    store
        .admin(AdminOp::CreateStream(spec("s", 1)))
        .await
        .unwrap();
    let uid = shard_uids(&store, "s")[0];
    store.append("s", vec![record("a", b"old")]).await.unwrap();
    let first = read_all(&store, uid)[0].0;
    tokio::time::sleep(Duration::from_millis(20)).await;
    store.append("s", vec![record("a", b"new")]).await.unwrap();
    // Just after the first record's retention ends, only it is gone.
    let retention_ms = 24 * 3_600_000;
    store
        .maintain_as_of(Some(first.millis() + retention_ms + 5))
        .await
        .unwrap();
    let left = read_all(&store, uid);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].2, b"new");
    // Nothing expired now.
    store.maintain().await.unwrap();
    assert_eq!(read_all(&store, uid).len(), 1);
    assert_eq!(store.stats().trimmed_records, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_overwrites_oldest_across_shards() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(options(dir.path())).unwrap();
    let mut s = spec("s", 2);
    s.max_bytes = Some(1024 * 1024);
    store.admin(AdminOp::CreateStream(s)).await.unwrap();
    let payload = vec![7u8; 10_000];
    for i in 0..300 {
        let out = store
            .append("s", vec![record(&format!("k{i}"), &payload)])
            .await
            .unwrap();
        assert!(out[0].is_ok());
    }
    let catalog = store.catalog();
    let meta = catalog.stream("s").unwrap();
    let bytes = catalog.stream_bytes(meta);
    assert!(bytes <= 1024 * 1024, "stream holds {bytes} bytes");
    let kept: usize = meta
        .shards
        .iter()
        .map(|s| read_all(&store, s.uid).len())
        .sum();
    assert!(kept > 80 && kept < 300, "kept {kept}");
    // The newest record is always kept.
    let newest = store.append("s", vec![record("last", b"z")]).await.unwrap()[0]
        .clone()
        .unwrap();
    let shard = meta
        .shards
        .iter()
        .find(|s| s.index == newest.shard_index)
        .unwrap();
    assert!(read_all(&store, shard.uid)
        .iter()
        .any(|r| r.0 == newest.sequence.position));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_rejects_new_records_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(options(dir.path())).unwrap();
    let mut s = spec("s", 1);
    s.max_bytes = Some(1024 * 1024);
    s.on_full = OnFull::RejectNew;
    store.admin(AdminOp::CreateStream(s)).await.unwrap();
    let payload = vec![1u8; 100_000];
    let batch: Vec<_> = (0..15)
        .map(|i| record(&format!("k{i}"), &payload))
        .collect();
    let out = store.append("s", batch).await.unwrap();
    let ok = out.iter().filter(|o| o.is_ok()).count();
    assert!((9..=10).contains(&ok), "accepted {ok}");
    let refused = out.iter().find_map(|o| o.clone().err()).unwrap();
    assert!(matches!(
        refused,
        Rejected::QuotaFull {
            max_bytes: 1048576,
            ..
        }
    ));
    assert!(refused.to_string().contains("quota"));
    // Everything accepted is stored; nothing refused is.
    assert_eq!(read_all(&store, shard_uids(&store, "s")[0]).len(), ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_guard_refuses_before_the_disk_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(dir.path());
    o.min_free_disk = u64::MAX;
    let store = Store::open(o).unwrap();
    store
        .admin(AdminOp::CreateStream(spec("s", 1)))
        .await
        .unwrap();
    let out = store.append("s", vec![record("a", b"x")]).await.unwrap();
    match &out[0] {
        Err(Rejected::DiskFull { min_free, .. }) => assert_eq!(*min_free, u64::MAX),
        other => panic!("expected DiskFull, got {other:?}"),
    }
    assert!(out[0]
        .clone()
        .unwrap_err()
        .to_string()
        .contains("min_free_disk"));
    assert!(read_all(&store, shard_uids(&store, "s")[0]).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_records_round_trip_and_trim() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(options(dir.path())).unwrap();
    let mut s = spec("s", 1);
    s.max_bytes = Some(3 * 1024 * 1024);
    store.admin(AdminOp::CreateStream(s)).await.unwrap();
    let big: Vec<u8> = (0..1_048_000u32).map(|i| (i % 253) as u8).collect();
    let mid: Vec<u8> = vec![9u8; 70_000];
    store
        .append(
            "s",
            vec![
                record("small", b"a"),
                record("big", &big),
                record("mid", &mid),
                record("small", b"b"),
            ],
        )
        .await
        .unwrap();
    let uid = shard_uids(&store, "s")[0];
    let all = read_all(&store, uid);
    assert_eq!(all.len(), 4);
    assert_eq!(all[1].2, big);
    assert_eq!(all[2].2, mid);
    assert_eq!(all[3].2, b"b");
    // A read limited in bytes still returns at least one record, and stops before the limit.
    let first = store.read(uid, all[1].0, 10, 10).unwrap();
    assert_eq!(first.records.len(), 1);
    assert!(first.truncated);
    // Filling the quota trims the large record with its chunks.
    for _ in 0..3 {
        store.append("s", vec![record("big2", &big)]).await.unwrap();
    }
    let catalog = store.catalog();
    assert!(catalog.stream_bytes(catalog.stream("s").unwrap()) <= 3 * 1024 * 1024);
    assert!(read_all(&store, uid).iter().all(|r| r.1 != "big"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_routes_new_records_to_children_and_keeps_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(options(dir.path())).unwrap();
    store
        .admin(AdminOp::CreateStream(spec("s", 1)))
        .await
        .unwrap();
    for i in 0..20 {
        store
            .append("s", vec![record(&format!("k{i}"), b"before")])
            .await
            .unwrap();
    }
    store
        .admin(AdminOp::SplitShard {
            stream: "s".into(),
            shard: "shardId-000000000000".into(),
            new_start: 1u128 << 127,
        })
        .await
        .unwrap();
    let mut children_got = 0;
    for i in 0..20 {
        let key = format!("k{i}");
        let out = store
            .append("s", vec![record(&key, b"after")])
            .await
            .unwrap();
        let appended = out[0].clone().unwrap();
        let expected = if hash_key_of(&key) < (1u128 << 127) {
            1
        } else {
            2
        };
        assert_eq!(appended.shard_index, expected);
        children_got += 1;
    }
    assert_eq!(children_got, 20);
    let catalog = store.catalog();
    let meta = catalog.stream("s").unwrap();
    let parent = &meta.shards[0];
    let ending = parent.closed.unwrap().ending;
    let parent_records = read_all(&store, parent.uid);
    assert_eq!(parent_records.len(), 20);
    assert_eq!(parent_records.last().unwrap().0, ending);
    for child in &meta.shards[1..] {
        assert!(child.starting > ending);
        assert!(read_all(&store, child.uid).iter().all(|r| r.0 > ending));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_stream_and_deleted_stream() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(options(dir.path())).unwrap();
    assert!(store.append("nope", vec![record("a", b"x")]).await.is_err());
    store
        .admin(AdminOp::CreateStream(spec("s", 1)))
        .await
        .unwrap();
    store.append("s", vec![record("a", b"x")]).await.unwrap();
    let uid = shard_uids(&store, "s")[0];
    store
        .admin(AdminOp::DeleteStream { name: "s".into() })
        .await
        .unwrap();
    assert!(store.catalog().stream("s").is_none());
    assert!(read_all(&store, uid).is_empty());
    // Re-created under the same name: a new stream, empty.
    store
        .admin(AdminOp::CreateStream(spec("s", 1)))
        .await
        .unwrap();
    assert!(read_all(&store, shard_uids(&store, "s")[0]).is_empty());
}
