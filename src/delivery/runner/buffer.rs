//! The next batch's records, buffered by shard until the batch is due.

use std::collections::BTreeMap;

use crate::delivery::batch::DeliveryRecord;
use crate::delivery::plan;

/// The next batch's records, per shard index in sequence order. A batch lists its shards in
/// index order (a parent before its children), each shard's records in sequence order: the
/// same records always in the same order, however the reads interleaved.
pub(super) struct Buffer {
    shards: BTreeMap<u64, Vec<DeliveryRecord>>,
    pub(super) len: usize,
    pub(super) bytes: u64,
    pub(super) oldest_ms: Option<u64>,
}

impl Buffer {
    pub(super) fn new() -> Buffer {
        Buffer {
            shards: BTreeMap::new(),
            len: 0,
            bytes: 0,
            oldest_ms: None,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(super) fn push(&mut self, shard_index: u64, record: DeliveryRecord) {
        self.oldest_ms = Some(
            self.oldest_ms
                .map_or(record.arrival_ms, |o| o.min(record.arrival_ms)),
        );
        self.shards.entry(shard_index).or_default().push(record);
        self.len += 1;
    }

    /// The batch id (from the first and last sequence number per shard) and the records.
    pub(super) fn into_batch_parts(self, delivery_stream: &str) -> (String, Vec<DeliveryRecord>) {
        let id = plan::batch_id(
            delivery_stream,
            self.shards.iter().filter_map(|(shard, records)| {
                Some((
                    *shard,
                    records.first()?.sequence_number.as_str(),
                    records.last()?.sequence_number.as_str(),
                ))
            }),
        );
        let mut records = Vec::with_capacity(self.len);
        for (_, shard) in self.shards {
            records.extend(shard);
        }
        (id, records)
    }
}
