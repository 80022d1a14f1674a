//! Reading an input stream for the engine: every shard of the stream, parents before
//! children after a reshard, from a cursor per shard (where the next read starts), in chunks
//! taken from each readable shard in turn so that a backlog drains evenly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::analytics::sql::plan::StartPosition;
use crate::storage::{Store, StoreError, StoredRecord};
use crate::streams::{Position, StreamMeta};

/// Where reading one shard stands (kept in the checkpoint).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ShardCursor {
    pub index: u64,
    /// The next read starts here.
    pub next: Position,
    /// Closed and read to its end.
    pub exhausted: bool,
}

/// One chunk of records of one shard.
pub struct Chunk {
    pub uid: u64,
    pub index: u64,
    pub records: Vec<StoredRecord>,
}

pub struct StreamReader {
    store: Store,
    pub stream: String,
    start: StartPosition,
    pub cursors: BTreeMap<u64, ShardCursor>,
    /// Bounded reads stop at these positions (per shard, inclusive).
    pub ends: Option<BTreeMap<u64, Position>>,
}

impl StreamReader {
    pub fn new(store: Store, stream: String, start: StartPosition) -> StreamReader {
        StreamReader {
            store,
            stream,
            start,
            cursors: BTreeMap::new(),
            ends: None,
        }
    }

    pub fn meta(&self) -> Option<std::sync::Arc<StreamMeta>> {
        self.store.catalog().stream(&self.stream).cloned()
    }

    /// Fixes the end of a bounded read at what is committed now.
    pub fn bound_to_now(&mut self) -> Result<(), StoreError> {
        let meta = self
            .meta()
            .ok_or_else(|| StoreError::StreamNotFound(self.stream.clone()))?;
        let catalog = self.store.catalog();
        let ends = meta
            .shards
            .iter()
            .filter_map(|s| catalog.live(s.uid).map(|l| (s.uid, l.last())))
            .collect();
        self.ends = Some(ends);
        Ok(())
    }

    /// Adds cursors for shards that can be read now (a child once its parents are read to
    /// their end); returns the storage ids added.
    pub fn discover(&mut self) -> Vec<u64> {
        let Some(meta) = self.meta() else {
            return Vec::new();
        };
        let catalog = self.store.catalog();
        let mut added = Vec::new();
        let exhausted_or_gone = |index: u64, cursors: &BTreeMap<u64, ShardCursor>| match meta
            .shards
            .iter()
            .find(|s| s.index == index)
        {
            None => true,
            Some(parent) => cursors.get(&parent.uid).is_some_and(|c| c.exhausted),
        };
        let first_generation = self.cursors.is_empty();
        for shard in &meta.shards {
            if self.cursors.contains_key(&shard.uid) {
                continue;
            }
            let parents: Vec<u64> = shard
                .parent
                .into_iter()
                .chain(shard.adjacent_parent)
                .collect();
            let has_parent_here = parents
                .iter()
                .any(|p| meta.shards.iter().any(|s| s.index == *p));
            if has_parent_here && !parents.iter().all(|p| exhausted_or_gone(*p, &self.cursors)) {
                continue;
            }
            // A shard found on the first look starts where the table says; a child found
            // later (after a reshard) is read from its beginning.
            let next = if first_generation || !has_parent_here {
                match self.start {
                    StartPosition::TrimHorizon => Position::ZERO,
                    StartPosition::Latest if first_generation => catalog
                        .live(shard.uid)
                        .map(|l| l.last().next())
                        .unwrap_or(shard.starting),
                    StartPosition::Latest => Position::ZERO,
                    StartPosition::AtTimestamp(ms) => Position::at_millis(ms),
                }
            } else {
                Position::ZERO
            };
            self.cursors.insert(
                shard.uid,
                ShardCursor {
                    index: shard.index,
                    next,
                    exhausted: false,
                },
            );
            added.push(shard.uid);
        }
        added
    }

    /// Reads the next chunk of every readable shard (blocking). Marks shards read to their
    /// end; returns the chunks and whether any shard has more right now.
    pub fn read(
        &mut self,
        max_records_per_shard: usize,
        max_bytes: usize,
    ) -> Result<(Vec<Chunk>, bool), StoreError> {
        let meta = self.meta();
        let mut chunks = Vec::new();
        let mut more = false;
        let uids: Vec<u64> = self
            .cursors
            .iter()
            .filter(|(_, c)| !c.exhausted)
            .map(|(u, _)| *u)
            .collect();
        for uid in uids {
            let cursor = self.cursors[&uid];
            let end = self
                .ends
                .as_ref()
                .map(|e| e.get(&uid).copied().unwrap_or(Position::ZERO));
            if end.is_some_and(|e| cursor.next > e) {
                continue;
            }
            let batch = self
                .store
                .read(uid, cursor.next, max_records_per_shard, max_bytes)?;
            let mut records = batch.records;
            if let Some(end) = end {
                records.retain(|r| r.position <= end);
            }
            let closed_end = meta
                .as_ref()
                .and_then(|m| m.shards.iter().find(|s| s.uid == uid))
                .and_then(|s| s.closed.map(|c| c.ending));
            let c = self.cursors.get_mut(&uid).expect("cursor listed above");
            if let Some(last) = records.last() {
                c.next = last.position.next();
            }
            if batch.truncated {
                more = true;
            }
            match closed_end {
                // A closed shard gets nothing new: read without a limit cut, it is done.
                Some(_) if !batch.truncated => c.exhausted = true,
                None if meta
                    .as_ref()
                    .is_some_and(|m| !m.shards.iter().any(|s| s.uid == uid)) =>
                {
                    c.exhausted = true
                }
                _ => {}
            }
            if !records.is_empty() {
                chunks.push(Chunk {
                    uid,
                    index: c.index,
                    records,
                });
            }
        }
        Ok((chunks, more))
    }

    /// The shards read to their end (closed, nothing more to come).
    pub fn exhausted(&self) -> Vec<u64> {
        self.cursors
            .iter()
            .filter(|(_, c)| c.exhausted)
            .map(|(u, _)| *u)
            .collect()
    }

    /// True when a bounded read has read everything up to its ends.
    pub fn bounded_done(&self) -> bool {
        let Some(ends) = &self.ends else { return false };
        self.cursors
            .iter()
            .all(|(uid, c)| c.exhausted || ends.get(uid).is_none_or(|e| c.next > *e))
    }
}
