//! Reading shard logs: short read transactions that never block the writer.

use bytes::{Bytes, BytesMut};
use redb::TableError;

use super::block::{self, Decoded, StoredRecord};
use super::crypt::{self, Keyring};
use super::database::DbSlot;
use super::error::{corrupted, storage};
use super::schema::{self, ShardState};
use super::StoreError;
use crate::streams::Position;

/// Records read from one shard.
#[derive(Debug, Default)]
pub struct ReadBatch {
    pub records: Vec<StoredRecord>,
    /// True when the read stopped at the byte or record limit rather than the end of the log.
    pub truncated: bool,
    /// The shard's committed counters as of this read (same transaction).
    pub state: ShardState,
}

pub(super) fn read(
    db: &DbSlot,
    keyring: &Keyring,
    uid: u64,
    from: Position,
    max_records: usize,
    max_bytes: usize,
) -> Result<ReadBatch, StoreError> {
    let mut batch = ReadBatch::default();
    if max_records == 0 {
        return Ok(batch);
    }
    let txn = db.begin_read()?;
    match txn.open_table(schema::SHARD_STATE) {
        Ok(states) => {
            if let Some(state) = states.get(uid).map_err(storage)? {
                batch.state = ShardState::decode(state.value()).unwrap_or_default();
            }
        }
        Err(TableError::TableDoesNotExist(_)) => {}
        Err(e) => return Err(storage(e)),
    }
    let name = schema::shard_table_name(uid);
    let table = match txn.open_table(schema::shard_table(&name)) {
        Ok(table) => table,
        Err(TableError::TableDoesNotExist(_)) => return Ok(batch),
        Err(e) => return Err(storage(e)),
    };
    // Start at the block that holds `from`, if one does.
    let start = table
        .range(..=from.0)
        .map_err(storage)?
        .next_back()
        .transpose()
        .map_err(storage)?
        .map_or(from.0, |(key, _)| key.value());
    let mut bytes = 0usize;
    'blocks: for entry in table.range(start..).map_err(storage)? {
        let (key, value) = entry.map_err(storage)?;
        let key = key.value();
        // Sealed blocks (encrypted streams) are opened here, the one place records are read.
        let raw = value.value();
        let (decoded, sealer) = if raw.first() == Some(&crypt::SEALED) {
            let (plain, sealer) = crypt::open_block(keyring, uid, key, raw)?;
            (
                block::decode_owned(key, Bytes::from(plain), from),
                Some(sealer),
            )
        } else {
            (block::decode(key, raw, from), None)
        };
        match decoded.map_err(|e| corrupted(format!("shard log {uid}"), e))? {
            Decoded::Records(records) => {
                for mut record in records {
                    record.encrypted = sealer.is_some();
                    let size = record.data.len() + record.partition_key.len();
                    if batch.records.len() >= max_records
                        || (bytes + size > max_bytes && !batch.records.is_empty())
                    {
                        batch.truncated = true;
                        break 'blocks;
                    }
                    bytes += size;
                    batch.records.push(record);
                }
            }
            Decoded::Large {
                partition_key,
                data_len,
                chunk_count,
            } => {
                if key < from.0 {
                    continue;
                }
                let size = data_len as usize + partition_key.len();
                if batch.records.len() >= max_records
                    || (bytes + size > max_bytes && !batch.records.is_empty())
                {
                    batch.truncated = true;
                    break 'blocks;
                }
                let chunk_name = schema::chunk_table_name(uid);
                let chunks = txn
                    .open_table(schema::chunk_table(&chunk_name))
                    .map_err(storage)?;
                let mut data = BytesMut::with_capacity(data_len as usize);
                for i in 0..chunk_count {
                    let index = u32::try_from(i)
                        .map_err(|e| corrupted(format!("shard log {uid}: chunk count"), e))?;
                    let chunk = chunks.get((key, index)).map_err(storage)?.ok_or_else(|| {
                        corrupted(
                            format!("shard log {uid}"),
                            std::io::Error::other(format!(
                                "chunk {i} of the record at {key} is missing"
                            )),
                        )
                    })?;
                    match &sealer {
                        Some(sealer) => data.extend_from_slice(&crypt::open_chunk(
                            sealer,
                            uid,
                            key,
                            index,
                            chunk.value(),
                        )?),
                        None => data.extend_from_slice(chunk.value()),
                    }
                }
                bytes += size;
                batch.records.push(StoredRecord {
                    position: Position(key),
                    partition_key,
                    data: data.freeze(),
                    encrypted: sealer.is_some(),
                });
            }
        }
    }
    Ok(batch)
}
