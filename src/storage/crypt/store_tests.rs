//! Encrypted streams through the real store: the writer seals, the read path opens, the
//! database file holds no plaintext of an encrypted stream, old blocks stay readable.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::storage::{AdminOp, NewRecord, Store, StoreError, StoreOptions, StreamSpec, STREAMS_DB};
use crate::streams::settings::StreamEncryption;
use crate::streams::{hash_key_of, OnFull, Position, StreamMode};

fn open(dir: &std::path::Path) -> Store {
    let mut options = StoreOptions::new(dir);
    options.min_free_disk = 0;
    options.commit_interval_ms = 0;
    Store::open(options).unwrap()
}

fn record(key: &str, data: Vec<u8>) -> NewRecord {
    NewRecord {
        partition_key: key.into(),
        hash_key: hash_key_of(key),
        data: Bytes::from(data),
    }
}

fn read_all(store: &Store, stream: &str) -> Result<Vec<(Vec<u8>, bool)>, StoreError> {
    let catalog = store.catalog();
    let meta = catalog.stream(stream).unwrap();
    let uid = meta.shards[0].uid;
    let batch = store.read(uid, Position::ZERO, 100_000, usize::MAX)?;
    Ok(batch
        .records
        .into_iter()
        .map(|r| (r.data.to_vec(), r.encrypted))
        .collect())
}

async fn set_key(store: &Store, key: Option<&str>) {
    let encryption = key.map(|id| {
        let (name, _) = store.keyring().get_or_create(id).unwrap();
        StreamEncryption {
            key_id: id.to_string(),
            key_name: name,
        }
    });
    store
        .admin(AdminOp::Encryption {
            stream: "s".into(),
            encryption,
        })
        .await
        .unwrap();
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_records_round_trip_across_restarts_and_switches() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
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
    store
        .append("s", vec![record("k", b"PLAIN-BEFORE-0001".to_vec())])
        .await
        .unwrap();
    set_key(&store, Some("alias/aws/kinesis")).await;
    let big: Vec<u8> = b"SECRET-LARGE-0002"
        .iter()
        .copied()
        .cycle()
        .take(300_000)
        .collect();
    store
        .append(
            "s",
            vec![
                record("k", b"SECRET-SMALL-0001".to_vec()),
                record("k", big.clone()),
            ],
        )
        .await
        .unwrap();
    set_key(&store, None).await;
    store
        .append("s", vec![record("k", b"PLAIN-AFTER-0003".to_vec())])
        .await
        .unwrap();
    let expected = vec![
        (b"PLAIN-BEFORE-0001".to_vec(), false),
        (b"SECRET-SMALL-0001".to_vec(), true),
        (big.clone(), true),
        (b"PLAIN-AFTER-0003".to_vec(), false),
    ];
    assert_eq!(read_all(&store, "s").unwrap(), expected);
    store.shutdown().await;
    drop(store);

    let file = std::fs::read(dir.path().join(STREAMS_DB)).unwrap();
    assert!(contains(&file, b"PLAIN-BEFORE-0001"));
    assert!(contains(&file, b"PLAIN-AFTER-0003"));
    assert!(!contains(&file, b"SECRET-SMALL"));
    assert!(!contains(&file, b"SECRET-LARGE"));

    let store = open(dir.path());
    assert_eq!(read_all(&store, "s").unwrap(), expected);
    store.shutdown().await;
    drop(store);

    // The key file lost: plaintext blocks would still read, the sealed ones are refused with
    // the key named, never returned as garbage.
    let key_file = dir.path().join("keys").join("alias%2Faws%2Fkinesis.key");
    std::fs::remove_file(&key_file).unwrap();
    let store = open(dir.path());
    let err = read_all(&store, "s").unwrap_err();
    assert!(err.to_string().contains("alias/aws/kinesis"), "{err}");
    assert!(matches!(err, StoreError::Crypt(_)));
    store.shutdown().await;
}
