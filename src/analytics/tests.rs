//! The engine end to end over a real store: records appended to a stream, a bounded query or
//! an application over them, results checked. The differential test against Apache Flink is
//! tests/interop/test_analytics_flink.py.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::{json, Value as Json};

use super::query;
use super::sql::{parse_script, plan};
use crate::storage::{AdminOp, NewRecord, Store, StoreOptions, StreamSpec};
use crate::streams::{hash_key_of, OnFull, StreamMode};

const TABLE: &str = "CREATE TABLE t (device STRING, temp DOUBLE, hum INT, ts TIMESTAMP(3), \
    WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) WITH ('connector' = 'kinesis', 'stream' = 't', \
    'format' = 'json', 'scan.stream.initpos' = 'TRIM_HORIZON');";

fn spec(name: &str) -> StreamSpec {
    StreamSpec {
        name: name.into(),
        shards: 1,
        retention_hours: 24,
        max_bytes: None,
        on_full: OnFull::OverwriteOldest,
        mode: StreamMode::Provisioned,
        tags: BTreeMap::new(),
    }
}

async fn store_with(rows: &[Json]) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let mut options = StoreOptions::new(dir.path());
    options.min_free_disk = 0;
    options.commit_interval_ms = 0;
    let store = Store::open(options).unwrap();
    store.admin(AdminOp::CreateStream(spec("t"))).await.unwrap();
    let records = rows
        .iter()
        .map(|r| NewRecord {
            partition_key: "k".into(),
            hash_key: hash_key_of("k"),
            data: Bytes::from(r.to_string()),
        })
        .collect();
    store.append("t", records).await.unwrap();
    (dir, store)
}

fn reading(device: &str, temp: f64, second: u32) -> Json {
    json!({"device": device, "temp": temp, "hum": 50, "ts": format!("2026-01-01 00:{:02}:{:02}.000", second / 60, second % 60)})
}

async fn run(store: &Store, select: &str) -> Vec<Json> {
    let sql = format!("{TABLE} {select}");
    let store = store.clone();
    let out = tokio::task::spawn_blocking(move || query::run(store, &sql, 100_000))
        .await
        .unwrap()
        .unwrap();
    let mut rows: Vec<Json> = out.rows.into_iter().map(Json::Object).collect();
    rows.sort_by_key(|r| r.to_string());
    rows
}

/// The planning error of a query ("" when it plans).
fn check(sql: &str) -> String {
    parse_script(sql)
        .and_then(|s| plan::plan(&s, 10, true))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
}

fn sorted(mut rows: Vec<Json>) -> Vec<Json> {
    rows.sort_by_key(|r| r.to_string());
    rows
}

#[tokio::test]
async fn tumbling_average_per_device_fires_every_window_at_the_end() {
    let rows = [
        reading("a", 10.0, 1),
        reading("a", 20.0, 30),
        reading("b", 5.0, 59),
        reading("a", 30.0, 61),
    ];
    let (_dir, store) = store_with(&rows).await;
    let got = run(&store, "SELECT window_start, device, AVG(temp) AS avg_temp, COUNT(*) AS n FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY window_start, window_end, device").await;
    assert_eq!(
        got,
        sorted(vec![
            json!({"window_start": "2026-01-01 00:00:00.000", "device": "a", "avg_temp": 15.0, "n": 2}),
            json!({"window_start": "2026-01-01 00:00:00.000", "device": "b", "avg_temp": 5.0, "n": 1}),
            json!({"window_start": "2026-01-01 00:01:00.000", "device": "a", "avg_temp": 30.0, "n": 1}),
        ])
    );
}

#[tokio::test]
async fn rows_behind_the_watermark_are_late_and_not_counted() {
    // 70 s moves the watermark to 65 s: the first minute's window has fired; 10 s is late.
    let rows = [
        reading("a", 1.0, 1),
        reading("a", 1.0, 70),
        reading("a", 100.0, 10),
    ];
    let (_dir, store) = store_with(&rows).await;
    let got = run(&store, "SELECT window_start, SUM(temp) AS s FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY window_start, window_end").await;
    assert_eq!(
        got,
        vec![
            json!({"window_start": "2026-01-01 00:00:00.000", "s": 1.0}),
            json!({"window_start": "2026-01-01 00:01:00.000", "s": 1.0}),
        ]
    );
}

#[tokio::test]
async fn filters_projections_and_functions() {
    let rows = [
        reading("a", 81.5, 1),
        reading("b", 20.0, 2),
        json!({"device": null, "temp": 90.0, "ts": "2026-01-01 00:00:03.000"}),
    ];
    let (_dir, store) = store_with(&rows).await;
    let got = run(&store, "SELECT UPPER(device) AS d, temp * 2 AS t2, CASE WHEN temp > 85 THEN 'hot' ELSE 'warm' END AS level, hum / 3 AS h FROM t WHERE temp > 80").await;
    assert_eq!(
        got,
        vec![
            json!({"d": "A", "t2": 163.0, "level": "warm", "h": 16}),
            json!({"d": null, "t2": 180.0, "level": "hot", "h": null}),
        ]
    );
}

#[tokio::test]
async fn hop_cumulate_and_session_windows() {
    let rows = [
        reading("a", 1.0, 0),
        reading("a", 2.0, 10),
        reading("a", 3.0, 50),
        reading("a", 4.0, 200),
    ];
    let (_dir, store) = store_with(&rows).await;
    let hop = run(&store, "SELECT window_start, window_end, COUNT(*) AS n FROM TABLE(HOP(TABLE t, DESCRIPTOR(ts), INTERVAL '30' SECOND, INTERVAL '1' MINUTE)) GROUP BY window_start, window_end").await;
    assert_eq!(hop.len(), 5, "{hop:?}");
    let session = run(&store, "SELECT window_start, window_end, SUM(temp) AS s FROM TABLE(SESSION(TABLE t PARTITION BY device, DESCRIPTOR(ts), INTERVAL '45' SECOND)) GROUP BY window_start, window_end").await;
    assert_eq!(
        session,
        sorted(vec![
            json!({"window_start": "2026-01-01 00:00:00.000", "window_end": "2026-01-01 00:01:35.000", "s": 6.0}),
            json!({"window_start": "2026-01-01 00:03:20.000", "window_end": "2026-01-01 00:04:05.000", "s": 4.0}),
        ])
    );
    let cumulate = run(&store, "SELECT window_end, MAX(temp) AS m FROM TABLE(CUMULATE(TABLE t, DESCRIPTOR(ts), INTERVAL '20' SECOND, INTERVAL '1' MINUTE)) GROUP BY window_start, window_end").await;
    assert_eq!(cumulate.len(), 5, "{cumulate:?}");
}

#[tokio::test]
async fn over_rows_frame_in_rowtime_order() {
    let rows = [
        reading("a", 1.0, 1),
        reading("a", 3.0, 3),
        reading("a", 2.0, 2),
        reading("a", 4.0, 20),
    ];
    let (_dir, store) = store_with(&rows).await;
    let got = run(&store, "SELECT temp, SUM(temp) OVER (PARTITION BY device ORDER BY ts ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS s FROM t").await;
    assert_eq!(
        got,
        vec![
            json!({"temp": 1.0, "s": 1.0}),
            json!({"temp": 2.0, "s": 3.0}),
            json!({"temp": 3.0, "s": 5.0}),
            json!({"temp": 4.0, "s": 7.0}),
        ]
    );
}

#[test]
fn errors_name_the_construct_and_position() {
    let e = check(&format!(
        "{TABLE}\nSELECT device, AVG(temp) FROM t GROUP BY device"
    ));
    assert!(e.contains("needs a window"), "{e}");
    let e = check(&format!("{TABLE}\nSELECT nosuch FROM t"));
    assert!(
        e.starts_with("line 2, column 8: column nosuch not found"),
        "{e}"
    );
    let e = check(&format!("{TABLE}\nSELECT FOO(temp) FROM t"));
    assert!(e.contains("function FOO is not supported"), "{e}");
    let e = check("CREATE TABLE x (a INT) WITH ('connector' = 'kinesis', 'stream' = 'x', 'format' = 'json', 'bogus' = '1'); SELECT a FROM x");
    assert!(e.contains("unsupported option 'bogus'"), "{e}");
    let e = check("SELEC 1");
    assert!(e.contains("SQL parse error"), "{e}");
}

#[tokio::test]
async fn lookup_join_with_a_file_inner_and_left_and_reloaded_when_it_changes() {
    let rows = [
        reading("a", 1.0, 1),
        reading("b", 2.0, 2),
        json!({"device": null, "temp": 3.0, "ts": "2026-01-01 00:00:03.000"}),
    ];
    let (dir, store) = store_with(&rows).await;
    let csv = dir.path().join("devices.csv");
    std::fs::write(&csv, "a,boiler room,1\n").unwrap();
    let table = format!(
        "CREATE TABLE devices (device STRING, room STRING, level INT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');",
        csv.display()
    );
    let inner = run(&store, &format!("{table} SELECT t.device, d.room, d.level + 1 AS up FROM t JOIN devices FOR SYSTEM_TIME AS OF t.ts AS d ON t.device = d.device")).await;
    assert_eq!(
        inner,
        vec![json!({"device": "a", "room": "boiler room", "up": 2})]
    );
    let left = run(
        &store,
        &format!(
            "{table} SELECT t.device, d.room FROM t LEFT JOIN devices d ON d.device = t.device"
        ),
    )
    .await;
    assert_eq!(
        left,
        sorted(vec![
            json!({"device": "a", "room": "boiler room"}),
            json!({"device": "b", "room": null}),
            json!({"device": null, "room": null}),
        ])
    );
    // A query reads the file as it is now.
    std::fs::write(&csv, "a,boiler room,1\nb,roof,7\n").unwrap();
    let again = run(
        &store,
        &format!("{table} SELECT t.device, d.level FROM t JOIN devices d ON t.device = d.device"),
    )
    .await;
    assert_eq!(
        again,
        sorted(vec![
            json!({"device": "a", "level": 1}),
            json!({"device": "b", "level": 7})
        ])
    );
}

#[tokio::test]
async fn lookup_join_with_a_stream_takes_the_latest_record_per_key() {
    let rows = [reading("a", 1.0, 1), reading("b", 2.0, 2)];
    let (_dir, store) = store_with(&rows).await;
    store
        .admin(AdminOp::CreateStream(spec("meta")))
        .await
        .unwrap();
    let meta = |device: &str, room: &str| NewRecord {
        partition_key: device.into(),
        hash_key: hash_key_of(device),
        data: Bytes::from(json!({"device": device, "room": room}).to_string()),
    };
    store
        .append(
            "meta",
            vec![meta("a", "old"), meta("b", "hall"), meta("a", "new")],
        )
        .await
        .unwrap();
    let table = "CREATE TABLE meta (device STRING, room STRING) WITH ('connector' = 'kinesis', 'stream' = 'meta', 'format' = 'json');";
    let got = run(
        &store,
        &format!("{table} SELECT t.device, m.room FROM t JOIN meta m ON t.device = m.device"),
    )
    .await;
    assert_eq!(
        got,
        sorted(vec![
            json!({"device": "a", "room": "new"}),
            json!({"device": "b", "room": "hall"})
        ])
    );
}

#[test]
fn joins_the_engine_cannot_run_are_refused() {
    let devices = "CREATE TABLE d (device STRING, room STRING) WITH ('connector' = 'filesystem', 'path' = '/nonexistent', 'format' = 'csv');";
    let e = check(&format!(
        "{TABLE} {devices} SELECT t.device FROM t JOIN d ON t.temp > 1"
    ));
    assert!(e.contains("equalities"), "{e}");
    let e = check(&format!(
        "{TABLE} {devices} SELECT t.device FROM t FULL OUTER JOIN d ON t.device = d.device"
    ));
    assert!(e.contains("only [LEFT] JOIN"), "{e}");
    let e = check(&format!("{TABLE} {devices} SELECT window_start, COUNT(*) FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) JOIN d ON d.device = d.device GROUP BY window_start, window_end"));
    assert!(e.contains("lookup join reads a table"), "{e}");
}

/// A second 1-shard stream `u` of the window-join tests (table `u`: device, level, ts).
const TABLE_U: &str = "CREATE TABLE u (device STRING, level INT, ts TIMESTAMP(3), \
    WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) WITH ('connector' = 'kinesis', 'stream' = 'u', \
    'format' = 'json', 'scan.stream.initpos' = 'TRIM_HORIZON');";

fn level(device: &str, level: i64, second: u32) -> Json {
    json!({"device": device, "level": level, "ts": format!("2026-01-01 00:{:02}:{:02}.000", second / 60, second % 60)})
}

async fn add_stream(store: &Store, name: &str, rows: &[Json]) {
    store
        .admin(AdminOp::CreateStream(spec(name)))
        .await
        .unwrap();
    let records = rows
        .iter()
        .map(|r| NewRecord {
            partition_key: "k".into(),
            hash_key: hash_key_of("k"),
            data: Bytes::from(r.to_string()),
        })
        .collect();
    store.append(name, records).await.unwrap();
}

fn window_join(kind: &str) -> String {
    format!(
        "{TABLE_U} SELECT L.device AS l_device, R.device AS r_device, L.temp, R.level, \
         COALESCE(L.window_start, R.window_start) AS ws FROM \
         (SELECT * FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE))) L {kind} \
         (SELECT * FROM TABLE(TUMBLE(TABLE u, DESCRIPTOR(ts), INTERVAL '1' MINUTE))) R \
         ON L.device = R.device AND L.window_start = R.window_start AND L.window_end = R.window_end"
    )
}

#[tokio::test]
async fn window_joins_match_rows_of_the_same_window_and_key() {
    // Minute 0: a on both sides (twice on the left), b only left, c only right.
    // Minute 1: a only right (its left row is in minute 0: no match across windows).
    let (_dir, store) = store_with(&[
        reading("a", 1.0, 5),
        reading("a", 2.0, 50),
        reading("b", 3.0, 20),
        reading("x", 0.0, 200),
    ])
    .await;
    add_stream(
        &store,
        "u",
        &[
            level("a", 7, 10),
            level("c", 9, 30),
            level("a", 8, 70),
            level("x", 0, 200),
        ],
    )
    .await;
    let row = |l: Option<&str>, r: Option<&str>, temp: Option<f64>, lv: Option<i64>, ws: &str| json!({"l_device": l, "r_device": r, "temp": temp, "level": lv, "ws": format!("2026-01-01 00:0{ws}:00.000")});
    let inner = vec![
        row(Some("a"), Some("a"), Some(1.0), Some(7), "0"),
        row(Some("a"), Some("a"), Some(2.0), Some(7), "0"),
        row(Some("x"), Some("x"), Some(0.0), Some(0), "3"),
    ];
    assert_eq!(
        run(&store, &window_join("JOIN")).await,
        sorted(inner.clone())
    );
    let mut left = inner.clone();
    left.push(row(Some("b"), None, Some(3.0), None, "0"));
    assert_eq!(run(&store, &window_join("LEFT JOIN")).await, sorted(left));
    let mut right = inner.clone();
    right.push(row(None, Some("c"), None, Some(9), "0"));
    right.push(row(None, Some("a"), None, Some(8), "1"));
    assert_eq!(run(&store, &window_join("RIGHT JOIN")).await, sorted(right));
    let mut full = inner;
    full.push(row(Some("b"), None, Some(3.0), None, "0"));
    full.push(row(None, Some("c"), None, Some(9), "0"));
    full.push(row(None, Some("a"), None, Some(8), "1"));
    assert_eq!(
        run(&store, &window_join("FULL OUTER JOIN")).await,
        sorted(full)
    );
    // A residual condition and an outer WHERE.
    let sql = window_join("JOIN").replace(
        "AND L.window_end = R.window_end",
        "AND L.window_end = R.window_end AND L.temp > 1.5 WHERE R.level < 8",
    );
    assert_eq!(
        run(&store, &sql).await,
        vec![row(Some("a"), Some("a"), Some(2.0), Some(7), "0")]
    );
}

#[tokio::test]
async fn a_window_join_waits_for_both_inputs_and_counts_late_rows() {
    use super::ops::Output;
    use super::runtime::engine::Engine;
    // Left runs to minute 3 before the right side has any row: nothing fires (the right
    // input holds the watermark back). Then a left row of minute 0 is still on time.
    let sql = format!("{TABLE} {}", window_join("JOIN"));
    let plan = plan::plan(&parse_script(&sql).unwrap(), 100, true).unwrap();
    let mut engine = Engine::new(plan);
    engine.register_shard(0, 1);
    engine.register_shard(1, 2);
    let record = |row: Json, position: u64| crate::storage::StoredRecord {
        position: crate::streams::Position(position),
        partition_key: "k".into(),
        data: Bytes::from(row.to_string()),
        encrypted: false,
    };
    let mut out = Output::default();
    let mut errors = Vec::new();
    engine.process(
        0,
        1,
        0,
        &record(reading("a", 1.0, 10), 1),
        &mut out,
        &mut errors,
    );
    engine.process(
        0,
        1,
        0,
        &record(reading("a", 2.0, 200), 2),
        &mut out,
        &mut errors,
    );
    engine.process(
        0,
        1,
        0,
        &record(reading("a", 3.0, 20), 3),
        &mut out,
        &mut errors,
    );
    assert!(out.rows.is_empty() && errors.is_empty(), "{errors:?}");
    // The right side's watermark passes minute 0: it fires with both left rows.
    engine.process(
        1,
        2,
        0,
        &record(level("a", 5, 30), 1),
        &mut out,
        &mut errors,
    );
    engine.process(
        1,
        2,
        0,
        &record(level("a", 6, 100), 2),
        &mut out,
        &mut errors,
    );
    assert_eq!(out.rows.len(), 2, "{:?}", out.rows);
    // Minute 0 has fired: a row of it on either side is late, counted and reported.
    engine.process(
        0,
        1,
        0,
        &record(reading("a", 4.0, 40), 4),
        &mut out,
        &mut errors,
    );
    engine.process(
        1,
        2,
        0,
        &record(level("a", 7, 50), 3),
        &mut out,
        &mut errors,
    );
    assert_eq!(engine.counters.late_records, 2);
    assert!(errors.iter().all(|e| e.reason == "late"), "{errors:?}");
    // State survives a checkpoint: a restored engine fires minute 1 as the first would.
    let saved: super::runtime::engine::EngineState = {
        let mut bytes = Vec::new();
        ciborium::into_writer(&engine.state(), &mut bytes).unwrap();
        ciborium::from_reader(bytes.as_slice()).unwrap()
    };
    let mut restored = Engine::new(engine.plan.clone());
    restored.register_shard(0, 1);
    restored.register_shard(1, 2);
    restored.restore(saved);
    let (mut a, mut b) = (Output::default(), Output::default());
    engine.finish(&mut a);
    restored.finish(&mut b);
    let values = |o: &Output| o.rows.iter().map(|r| r.values.clone()).collect::<Vec<_>>();
    assert_eq!(values(&a), values(&b));
    assert_eq!(
        a.rows.len(),
        0,
        "minute 1 has a right row only: an inner join gives none"
    );
}

#[test]
fn window_joins_the_engine_cannot_run_are_refused() {
    let tvf = |table: &str, size: &str| {
        format!("(SELECT * FROM TABLE(TUMBLE(TABLE {table}, DESCRIPTOR(ts), INTERVAL '{size}' MINUTE)))")
    };
    let on = "ON L.device = R.device AND L.window_start = R.window_start AND L.window_end = R.window_end";
    let e = check(&format!(
        "{TABLE} {TABLE_U} SELECT L.device FROM {} L JOIN {} R ON L.device = R.device",
        tvf("t", "1"),
        tvf("u", "1")
    ));
    assert!(e.contains("L.window_start = R.window_start"), "{e}");
    let e = check(&format!(
        "{TABLE} {TABLE_U} SELECT L.device FROM {} L JOIN {} R {on}",
        tvf("t", "1"),
        tvf("u", "2")
    ));
    assert!(e.contains("the same window"), "{e}");
    let e = check(&format!(
        "{TABLE} {TABLE_U} SELECT COUNT(*) FROM {} L JOIN {} R {on}",
        tvf("t", "1"),
        tvf("u", "1")
    ));
    assert!(e.contains("second application"), "{e}");
    let e = check(&format!(
        "{TABLE} {TABLE_U} SELECT L.device FROM {} L JOIN (SELECT * FROM u) R {on}",
        tvf("t", "1")
    ));
    assert!(e.contains("without aggregation"), "{e}");
    let e = check(&format!(
        "{TABLE} {TABLE_U} SELECT L.device FROM {} L CROSS JOIN {} R",
        tvf("t", "1"),
        tvf("u", "1")
    ));
    assert!(e.contains("a window join is"), "{e}");
}

#[test]
fn checkpoints_of_one_and_two_inputs_read_back() {
    use super::runtime::checkpoint::{Checkpoint, CheckpointRef};
    use super::runtime::engine::Engine;
    use super::runtime::reader::ShardCursor;
    let cursors: BTreeMap<u64, ShardCursor> = [(
        7,
        ShardCursor {
            index: 0,
            next: crate::streams::Position(42),
            exhausted: false,
        },
    )]
    .into();
    let one = format!("{TABLE} SELECT device, temp FROM t");
    let two = format!("{TABLE} {}", window_join("LEFT JOIN"));
    for (sql, inputs) in [(one, 1), (two, 2)] {
        let plan = plan::plan(&parse_script(&sql).unwrap(), 100, true).unwrap();
        let engine = Engine::new(plan);
        let streams: Vec<_> = (0..inputs).map(|i| (10 + i as u64, &cursors)).collect();
        let rows = CheckpointRef::new(1, &streams, engine.state())
            .unwrap()
            .encode()
            .unwrap();
        let back = Checkpoint::decode(rows.into_iter().collect())
            .unwrap()
            .unwrap();
        assert_eq!(back.stream_uid, 10);
        assert_eq!(back.cursors.len(), 1);
        assert_eq!(back.right_cursors.len(), inputs - 1, "{sql}");
        assert_eq!(back.right_stream_uid, if inputs == 2 { 11 } else { 0 });
    }
}

#[test]
fn checkpoints_are_compressed_and_old_plain_ones_still_read() {
    use super::ops::Output;
    use super::runtime::checkpoint::{Checkpoint, CheckpointRef};
    use super::runtime::engine::Engine;
    use crate::storage::StoredRecord;
    let sql = format!(
        "{TABLE} SELECT window_start, device, AVG(temp) AS a, MAX(temp) AS m, COUNT(*) AS n \
         FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) \
         GROUP BY window_start, window_end, device"
    );
    let plan = plan::plan(&parse_script(&sql).unwrap(), 100_000, true).unwrap();
    let mut engine = Engine::new(plan);
    engine.register_shard(0, 7);
    let (mut out, mut errors) = (Output::default(), Vec::new());
    for i in 0..3_000u64 {
        let row = reading(&format!("dev-{:04}", i % 1_000), (i % 97) as f64 / 3.0, 5);
        let record = StoredRecord {
            position: crate::streams::Position(i),
            partition_key: "k".into(),
            data: Bytes::from(row.to_string()),
            encrypted: false,
        };
        engine.process(0, 7, 0, &record, &mut out, &mut errors);
    }
    assert!(errors.is_empty(), "{errors:?}");
    let cursors = BTreeMap::new();
    let checkpoint = CheckpointRef::new(1, &[(10, &cursors)], engine.state()).unwrap();
    let rows = checkpoint.encode().unwrap();
    let mut cbor = Vec::new();
    ciborium::into_writer(&checkpoint, &mut cbor).unwrap();
    let stored: usize = rows.iter().map(|(_, r)| r.len()).sum();
    // 1,000 groups: the stored checkpoint is a fraction of its CBOR, cut into small rows.
    assert!(stored * 3 < cbor.len(), "{stored} of {}", cbor.len());
    assert!(rows.iter().all(|(_, r)| r.len() <= 16 * 1024 - 256));
    let back = Checkpoint::decode(rows.iter().cloned().collect())
        .unwrap()
        .unwrap();
    let groups = |c: &Checkpoint| format!("{:?}", c.engine.window).matches("dev-").count();
    assert_eq!(groups(&back), 1_000);
    // A checkpoint written before compression: plain CBOR, in rows of up to 192 KiB.
    let old = Checkpoint::decode(
        cbor.chunks(192 * 1024)
            .enumerate()
            .map(|(i, c)| (i as u64, c.to_vec()))
            .collect(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(groups(&old), 1_000);
    // A damaged frame is an error that says so, not a panic or an empty state.
    let mut damaged: std::collections::HashMap<u64, Vec<u8>> = rows.into_iter().collect();
    let first = damaged.get_mut(&0).unwrap();
    first.truncate(first.len() / 2);
    let e = Checkpoint::decode(damaged).unwrap_err();
    assert!(e.contains("unreadable"), "{e}");
}
