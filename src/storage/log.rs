//! The tables of the stream database as the writer changes them: shard logs (blocks of
//! records keyed by the first record's position, large records as chunks), stream metadata,
//! consumers' checkpoint rows. Plain functions over a write transaction; no working state.

use redb::{ReadableTable, TableError, WriteTransaction};

use super::database::DbSlot;
use rand::RngCore;

use super::admin::CheckpointOp;
use super::block::{self, PendingRecord};
use super::crypt::{self, Sealer};
use super::error::{corrupted, other, storage};
use super::schema::{self, ShardState};
use super::StoreError;
use crate::streams::{Position, StreamMeta};

/// Retention removes at most this many blocks per shard per pass, so the writer stays
/// responsive; the next pass continues.
pub(super) const TRIM_BATCH: usize = 4096;

pub(super) fn init_system(db: &DbSlot) -> Result<[u8; 32], StoreError> {
    let txn = db.begin_write()?;
    let key = {
        let mut system = txn.open_table(schema::SYSTEM).map_err(storage)?;
        let existing = system
            .get(schema::ITERATOR_KEY)
            .map_err(storage)?
            .and_then(|v| <[u8; 32]>::try_from(v.value()).ok());
        match existing {
            Some(key) => key,
            None => {
                let mut key = [0u8; 32];
                rand::thread_rng().fill_bytes(&mut key);
                system
                    .insert(schema::ITERATOR_KEY, key.as_slice())
                    .map_err(storage)?;
                key
            }
        }
    };
    txn.open_table(schema::STREAMS).map_err(storage)?;
    txn.open_table(schema::SHARD_STATE).map_err(storage)?;
    txn.commit().map_err(storage)?;
    Ok(key)
}

pub(super) fn write_stream(txn: &WriteTransaction, meta: &StreamMeta) -> Result<(), StoreError> {
    let json = serde_json::to_vec(meta).map_err(|e| other("encode stream metadata", e))?;
    txn.open_table(schema::STREAMS)
        .map_err(storage)?
        .insert(meta.name.as_str(), json.as_slice())
        .map_err(storage)?;
    Ok(())
}

/// Writes records (positions increasing) as blocks, sealed with `sealer` when the stream is
/// encrypted; returns the bytes stored.
pub(super) fn write_blocks(
    txn: &WriteTransaction,
    uid: u64,
    records: &[PendingRecord],
    sealer: Option<&Sealer>,
) -> Result<u64, StoreError> {
    let name = schema::shard_table_name(uid);
    let mut table = txn
        .open_table(schema::shard_table(&name))
        .map_err(storage)?;
    // Exact encoded size of each record, with its delta from the previous one.
    let sizes: Vec<usize> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let delta = if i == 0 {
                0
            } else {
                r.position.0 - records[i - 1].position.0
            };
            block::record_bytes(delta, r.partition_key.len(), r.data.len())
        })
        .collect();
    let mut prefix = Vec::with_capacity(sizes.len() + 1);
    prefix.push(0usize);
    for size in &sizes {
        prefix.push(prefix.last().copied().unwrap_or(0) + size);
    }
    // For each record, where its run of ordinary (not large) records ends.
    let mut run_ends = vec![records.len(); records.len()];
    for i in (0..records.len()).rev() {
        let large = block::is_large(records[i].partition_key.len(), records[i].data.len());
        run_ends[i] = if large {
            i
        } else if i + 1 < records.len() {
            run_ends[i + 1]
        } else {
            records.len()
        };
    }
    let mut written = 0u64;
    let mut start = 0;
    while start < records.len() {
        let record = &records[start];
        if block::is_large(record.partition_key.len(), record.data.len()) {
            written += write_large(txn, &mut table, uid, record, sealer)?;
            start += 1;
            continue;
        }
        let run_end = run_ends[start];
        let remaining = prefix[run_end] - prefix[start];
        let cap = block::block_cap(remaining);
        let mut end = start;
        let mut size = 0;
        while end < run_end && (end == start || size + sizes[end] <= cap) {
            size += sizes[end];
            end += 1;
        }
        let mut value = block::encode_records(&records[start..end]);
        if let Some(sealer) = sealer {
            value = seal(sealer, uid, records[start].position.0, &value)?;
        }
        table
            .insert(records[start].position.0, value.as_slice())
            .map_err(storage)?;
        written += value.len() as u64;
        start = end;
    }
    Ok(written)
}

pub(super) fn write_large(
    txn: &WriteTransaction,
    table: &mut redb::Table<u64, &[u8]>,
    uid: u64,
    record: &PendingRecord,
    sealer: Option<&Sealer>,
) -> Result<u64, StoreError> {
    let key = record.position.0;
    let mut head = block::encode_large_head(record);
    if let Some(sealer) = sealer {
        head = seal(sealer, uid, key, &head)?;
    }
    table.insert(key, head.as_slice()).map_err(storage)?;
    let name = schema::chunk_table_name(uid);
    let mut chunks = txn
        .open_table(schema::chunk_table(&name))
        .map_err(storage)?;
    let mut written = head.len() as u64;
    for (i, chunk) in block::chunks(&record.data).enumerate() {
        let index = i as u32;
        match sealer {
            Some(sealer) => {
                let sealed = crypt::seal_chunk(sealer, uid, key, index, chunk);
                written += sealed.len() as u64;
                chunks
                    .insert((key, index), sealed.as_slice())
                    .map_err(storage)?;
            }
            None => {
                written += chunk.len() as u64;
                chunks.insert((key, index), chunk).map_err(storage)?;
            }
        }
    }
    Ok(written)
}

fn seal(sealer: &Sealer, uid: u64, key: u64, plain: &[u8]) -> Result<Vec<u8>, StoreError> {
    crypt::seal_block(sealer, uid, key, plain)
        .map_err(|e| corrupted(format!("shard log {uid}: sealing a block"), e))
}

pub(super) fn first_block_key(txn: &WriteTransaction, uid: u64) -> Result<Option<u64>, StoreError> {
    let name = schema::shard_table_name(uid);
    let table = match txn.open_table(schema::shard_table(&name)) {
        Ok(t) => t,
        Err(e) => return Err(storage(e)),
    };
    let first = table.first().map_err(storage)?.map(|(k, _)| k.value());
    Ok(first)
}

/// Keys of the leading blocks whose records are all older than `cutoff`.
pub(super) fn expired_blocks(
    txn: &WriteTransaction,
    uid: u64,
    cutoff: Position,
) -> Result<Vec<u64>, StoreError> {
    let name = schema::shard_table_name(uid);
    let table = txn
        .open_table(schema::shard_table(&name))
        .map_err(storage)?;
    let mut keys = Vec::new();
    for entry in table.range(..cutoff.0).map_err(storage)? {
        let (key, value) = entry.map_err(storage)?;
        let summary = block::summarize(key.value(), value.value())
            .map_err(|e| corrupted(format!("shard log {uid}"), e))?;
        if summary.last >= cutoff || keys.len() >= TRIM_BATCH {
            break;
        }
        keys.push(key.value());
    }
    Ok(keys)
}

/// Applies a consumer's checkpoint op (rows and definition are opaque bytes here).
pub(super) fn apply_checkpoint(txn: &WriteTransaction, op: CheckpointOp) -> Result<(), StoreError> {
    match op {
        CheckpointOp::Save { consumer, rows } => {
            let mut table = txn
                .open_table(schema::DELIVERY_CHECKPOINTS)
                .map_err(storage)?;
            for (key, bytes) in rows {
                table
                    .insert((consumer.as_str(), key), bytes.as_slice())
                    .map_err(storage)?;
            }
        }
        CheckpointOp::Replace { consumer, rows } => {
            let mut table = txn
                .open_table(schema::DELIVERY_CHECKPOINTS)
                .map_err(storage)?;
            let old: Vec<u64> = table
                .range((consumer.as_str(), 0)..=(consumer.as_str(), u64::MAX))
                .map_err(storage)?
                .map(|entry| entry.map(|(key, _)| key.value().1))
                .collect::<Result<_, _>>()
                .map_err(storage)?;
            for key in old {
                table.remove((consumer.as_str(), key)).map_err(storage)?;
            }
            for (key, bytes) in rows {
                table
                    .insert((consumer.as_str(), key), bytes.as_slice())
                    .map_err(storage)?;
            }
        }
        CheckpointOp::SaveDefinition { consumer, bytes } => {
            txn.open_table(schema::DELIVERY_STREAMS)
                .map_err(storage)?
                .insert(consumer.as_str(), bytes.as_slice())
                .map_err(storage)?;
        }
        CheckpointOp::Remove { consumer: name } => {
            txn.open_table(schema::DELIVERY_STREAMS)
                .map_err(storage)?
                .remove(name.as_str())
                .map_err(storage)?;
            let mut table = txn
                .open_table(schema::DELIVERY_CHECKPOINTS)
                .map_err(storage)?;
            let uids: Vec<u64> = table
                .range((name.as_str(), 0)..=(name.as_str(), u64::MAX))
                .map_err(storage)?
                .map(|entry| entry.map(|(key, _)| key.value().1))
                .collect::<Result<_, _>>()
                .map_err(storage)?;
            for uid in uids {
                table.remove((name.as_str(), uid)).map_err(storage)?;
            }
        }
    }
    Ok(())
}

/// What removing a block took away.
pub(super) struct RemovedBlock {
    pub(super) stored_bytes: u64,
    pub(super) records: u64,
    record_bytes: u64,
    last: Position,
}

impl ShardState {
    pub(super) fn trim(&mut self, removed: &RemovedBlock) {
        self.bytes = self.bytes.saturating_sub(removed.stored_bytes);
        self.records = self.records.saturating_sub(removed.records);
        self.trimmed += removed.records;
        self.trimmed_bytes += removed.record_bytes;
        self.trimmed_through = self.trimmed_through.max(removed.last);
    }
}

pub(super) fn remove_block(
    txn: &WriteTransaction,
    uid: u64,
    key: u64,
) -> Result<RemovedBlock, StoreError> {
    let name = schema::shard_table_name(uid);
    let mut table = txn
        .open_table(schema::shard_table(&name))
        .map_err(storage)?;
    let Some(value) = table.remove(key).map_err(storage)? else {
        return Ok(RemovedBlock {
            stored_bytes: 0,
            records: 0,
            record_bytes: 0,
            last: Position(key),
        });
    };
    let bytes = value.value().to_vec();
    drop(value);
    let summary =
        block::summarize(key, &bytes).map_err(|e| corrupted(format!("shard log {uid}"), e))?;
    let record_bytes =
        block::payload_bytes(key, &bytes).map_err(|e| corrupted(format!("shard log {uid}"), e))?;
    let mut removed = bytes.len() as u64;
    if summary.large {
        let chunk_name = schema::chunk_table_name(uid);
        let mut chunks = txn
            .open_table(schema::chunk_table(&chunk_name))
            .map_err(storage)?;
        let mut index = 0u32;
        while let Some(chunk) = chunks.remove((key, index)).map_err(storage)? {
            removed += chunk.value().len() as u64;
            index += 1;
        }
    }
    Ok(RemovedBlock {
        stored_bytes: removed,
        records: summary.records,
        record_bytes,
        last: summary.last,
    })
}

pub(super) fn drop_shard_tables(txn: &WriteTransaction, uid: u64) -> Result<(), StoreError> {
    let name = schema::shard_table_name(uid);
    match txn.delete_table(schema::shard_table(&name)) {
        Ok(_) | Err(TableError::TableDoesNotExist(_)) => {}
        Err(e) => return Err(storage(e)),
    }
    let chunk_name = schema::chunk_table_name(uid);
    match txn.delete_table(schema::chunk_table(&chunk_name)) {
        Ok(_) | Err(TableError::TableDoesNotExist(_)) => {}
        Err(e) => return Err(storage(e)),
    }
    Ok(())
}
