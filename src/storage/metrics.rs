//! What storage reports at each scrape: per shard appends and reads, per stream sizes and
//! trims, the writer's commits (histograms), refusals, failed commits and the file's writes.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::observe::{gauge1, one, MetricsWriter, Report};
use crate::streams::validate::is_internal_stream;

use super::Store;

impl Report for Store {
    fn report(&self, out: &mut MetricsWriter) {
        let store = self;
        let catalog = store.catalog();
        let mut records_in = Vec::new();
        let mut bytes_in = Vec::new();
        let mut records_out = Vec::new();
        let mut bytes_out = Vec::new();
        let mut stored_records = Vec::new();
        let mut stored_bytes = Vec::new();
        let mut trimmed_records = Vec::new();
        let mut trimmed_bytes = Vec::new();
        let mut open_shards = Vec::new();
        for stream in catalog.streams.values() {
            if is_internal_stream(&stream.name) {
                continue;
            }
            let (mut records, mut bytes, mut trimmed, mut trimmed_b) = (0u64, 0u64, 0u64, 0u64);
            for shard in &stream.shards {
                let Some(live) = catalog.live(shard.uid) else {
                    continue;
                };
                let state = live.state();
                let (read_records, read_bytes) = live.reads();
                let labels = vec![
                    ("stream", stream.name.clone()),
                    ("shard", crate::streams::model::shard_id(shard.index)),
                ];
                records_in.push((labels.clone(), state.appended));
                bytes_in.push((labels.clone(), state.appended_bytes));
                records_out.push((labels.clone(), read_records));
                bytes_out.push((labels, read_bytes));
                records += state.records;
                bytes += state.bytes;
                trimmed += state.trimmed;
                trimmed_b += state.trimmed_bytes;
            }
            let labels = vec![("stream", stream.name.clone())];
            stored_records.push((labels.clone(), records as f64));
            stored_bytes.push((labels.clone(), bytes as f64));
            trimmed_records.push((labels.clone(), trimmed));
            trimmed_bytes.push((labels.clone(), trimmed_b));
            open_shards.push((labels, f64::from(stream.open_shard_count())));
        }
        out.counter(
            "kinedge_shard_records_in",
            "Records appended to the shard log (since it was created).",
            records_in,
        );
        out.counter(
            "kinedge_shard_bytes_in",
            "Record bytes (data + partition key) appended to the shard log (since it was created).",
            bytes_in,
        );
        out.counter(
            "kinedge_shard_records_out",
            "Records read from the shard log by GetRecords and delivery streams (since start).",
            records_out,
        );
        out.counter(
        "kinedge_shard_bytes_out",
        "Record bytes read from the shard log by GetRecords and delivery streams (since start).",
        bytes_out,
    );
        out.gauge(
            "kinedge_stream_stored_records",
            "Records held by the stream's shard logs.",
            stored_records,
        );
        out.gauge(
            "kinedge_stream_disk_bytes",
            "Bytes the stream's shard logs take in the database (blocks and chunks).",
            stored_bytes,
        );
        out.gauge(
            "kinedge_stream_open_shards",
            "Open shards of the stream.",
            open_shards,
        );
        out.counter(
            "kinedge_retention_trimmed_records",
            "Records removed by retention (age) or the stream's max_bytes (overwrite_oldest).",
            trimmed_records,
        );
        out.counter(
            "kinedge_retention_trimmed_bytes",
            "Record bytes removed by retention or the stream's max_bytes.",
            trimmed_bytes,
        );
        let stats = store.writer_stats();
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        out.counter(
            "kinedge_storage_trimmed_records_by_reason",
            "Records trimmed since start, by reason: age (retention_hours) or size (max_bytes).",
            vec![
                (vec![("reason", "age".into())], n(&stats.trimmed_by_age)),
                (vec![("reason", "size".into())], n(&stats.trimmed_by_size)),
            ],
        );
        out.counter(
        "kinedge_storage_commits",
        "Group commits of the stream writer (each one durable before anything in it is acknowledged).",
        one(n(&stats.commits)),
    );
        out.histogram(
            "kinedge_storage_commit_seconds",
            "Time from the start of a group commit to its durable end.",
            stats.commit_seconds.clone(),
        );
        out.histogram(
            "kinedge_storage_records_per_commit",
            "Records stored by one group commit.",
            stats.records_per_commit.clone(),
        );
        out.counter(
        "kinedge_refused_records",
        "Records refused by storage, by reason: quota (max_bytes with on_full = reject_new) or disk (below storage.min_free_disk).",
        vec![
            (vec![("reason", "quota".into())], n(&stats.rejected_quota)),
            (vec![("reason", "disk".into())], n(&stats.rejected_disk)),
        ],
    );
        let file = store.file_counters();
        out.counter(
            "kinedge_storage_bytes_written",
            "Bytes written into the stream database file (what the SD card is asked to write).",
            one(n(&file.bytes_written)),
        );
        out.counter(
            "kinedge_storage_syncs",
            "fdatasync calls on the stream database file (one per durable commit).",
            one(n(&file.syncs)),
        );
        if let Some(cache) = store.cache_use() {
            out.gauge(
                "kinedge_storage_cache_bytes",
                "Bytes held by the stream database's page cache (read cache and write buffer; storage.cache_size bounds it).",
                gauge1(cache.used_bytes as f64),
            );
            out.counter(
                "kinedge_storage_cache_evictions",
                "Pages evicted from the stream database's page cache because it was full (since the database was opened).",
                one(cache.evictions),
            );
        }
        out.counter(
        "kinedge_storage_failed_commits",
        "Commits that failed, by kind of fault (no_space, io, corrupted, unavailable, other); nothing in them was acknowledged.",
        crate::storage::FAULT_KINDS
            .iter()
            .map(|k| (vec![("kind", k.as_str().into())], stats.faults(*k)))
            .collect(),
    );
        out.gauge(
            "kinedge_storage_writes_suspended",
            "1 while writes are suspended after a disk error (a full disk), else 0.",
            gauge1(if store.writes_suspended().is_some() {
                1.0
            } else {
                0.0
            }),
        );
        let db = store.data_dir().join(crate::storage::STREAMS_DB);
        if let Ok(meta) = std::fs::metadata(&db) {
            out.gauge(
                "kinedge_storage_file_bytes",
                "Size of the stream database file.",
                gauge1(meta.len() as f64),
            );
        }
        if let Ok(free) = crate::storage::disk::free_bytes(store.data_dir()) {
            out.gauge(
                "kinedge_disk_free_bytes",
                "Free bytes (for the gateway's user) on the file system of the data directory.",
                gauge1(free as f64),
            );
        }
    }
}
