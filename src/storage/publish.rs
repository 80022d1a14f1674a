//! What a commit makes visible, done by the writer after it: the catalog readers see (streams
//! and each shard's live state), new shard positions, the waiting readers to wake (woken by
//! the caller once the producers are answered) and the commit counted.
//!
//! Invariant: a shard's position is published before its producers are answered, so a read
//! after an acknowledgement sees the records it acknowledged.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::writer::Writer;
use super::{Catalog, ShardLive};

impl Writer {
    /// Publishes the catalog readers see: every stream and its shards' live state.
    pub(super) fn publish(&mut self) {
        let known: HashSet<u64> = self
            .streams
            .values()
            .flat_map(|s| s.shards.iter().map(|sh| sh.uid))
            .collect();
        self.live.retain(|uid, _| known.contains(uid));
        let mut catalog = Catalog::default();
        for (name, meta) in &self.streams {
            let meta = Arc::new(meta.clone());
            catalog.by_uid.insert(meta.uid, meta.clone());
            catalog.streams.insert(name.clone(), meta);
        }
        catalog.live = self.live.clone();
        *self
            .published
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(catalog);
    }

    pub(super) fn count_commit(&self, started: Instant, records: u64, bytes: u64) {
        let stats = &self.stats;
        stats.commits.fetch_add(1, Ordering::Relaxed);
        stats.records.fetch_add(records, Ordering::Relaxed);
        stats.record_bytes.fetch_add(bytes, Ordering::Relaxed);
        let elapsed = started.elapsed();
        stats
            .commit_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        stats.commit_seconds.observe(elapsed.as_secs_f64());
        stats.records_per_commit.observe(records as f64);
    }

    /// After a commit: publish new positions and a changed catalog; answers the shards whose
    /// waiting readers are to be woken (once the producers have their answers).
    pub(super) fn after_commit(&mut self, catalog_changed: bool) -> Vec<Arc<ShardLive>> {
        let mut woken = Vec::new();
        for (uid, state) in &self.states {
            let live = self
                .live
                .entry(*uid)
                .or_insert_with(|| Arc::new(ShardLive::new(*state)));
            live.set_state(*state);
            if live.last() != state.last {
                live.last.store(state.last.0, Ordering::Release);
                woken.push(live.clone());
            }
        }
        if catalog_changed {
            let known: HashSet<u64> = self
                .streams
                .values()
                .flat_map(|s| s.shards.iter().map(|sh| sh.uid))
                .collect();
            self.states.retain(|uid, _| known.contains(uid));
            self.publish();
        }
        woken
    }
}
