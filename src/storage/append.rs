//! Appending records and trimming shard logs, as the writer does inside a group commit.
//!
//! Invariant: `stage` only numbers records in the working copy; `flush` writes them; the
//! working copy is reloaded from the last commit whenever a commit fails.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;

use redb::WriteTransaction;

use super::block::{self, PendingRecord};
use super::crypt::Sealer;
use super::error::{other, storage};
use super::log::{
    drop_shard_tables, expired_blocks, first_block_key, remove_block, write_blocks, write_stream,
};
use super::schema::{self, ShardState};
use super::writer::Writer;
use super::{now_ms, AppendOutcome, Appended, NewRecord, Rejected, StoreError};
use crate::streams::{OnFull, Position, SequenceNumber, StreamMeta};

/// The free-disk guard's verdict for a group: `Err((room, min_free))` refuses new records.
pub(super) type DiskCheck = Result<(), (u64, u64)>;

impl Writer {
    /// The key a stream's new blocks are sealed with, if it is encrypted.
    pub(super) fn sealer(&self, stream: &StreamMeta) -> Result<Option<Sealer>, StoreError> {
        let Some(encryption) = &stream.settings.encryption else {
            return Ok(None);
        };
        let key = self.keyring.load(&encryption.key_name)?;
        Ok(Some(Sealer {
            name: encryption.key_name.clone(),
            key,
        }))
    }

    pub(super) fn stream_bytes(&self, stream: &StreamMeta) -> u64 {
        stream
            .shards
            .iter()
            .filter_map(|s| self.states.get(&s.uid))
            .map(|s| s.bytes)
            .sum()
    }

    /// Routes and numbers the records of one append; they are written by `flush`.
    pub(super) fn stage(
        &mut self,
        name: &str,
        records: Vec<NewRecord>,
        staged: &mut BTreeMap<u64, Vec<PendingRecord>>,
        disk: DiskCheck,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        let stream = self
            .streams
            .get(name)
            .ok_or_else(|| StoreError::StreamNotFound(name.to_string()))?;
        // An encrypted stream whose key cannot be read takes no records (refused here, so
        // that the group commit of the others goes on).
        self.sealer(stream)?;
        let now = now_ms();
        let quota = match (stream.on_full, stream.max_bytes) {
            (OnFull::RejectNew, Some(max)) => Some(max),
            _ => None,
        };
        let mut used = if quota.is_some() {
            self.stream_bytes(stream)
        } else {
            0
        };
        let mut outcomes = Vec::with_capacity(records.len());
        for record in records {
            if let Err((free, min_free)) = disk {
                self.stats.rejected_disk.fetch_add(1, Ordering::Relaxed);
                outcomes.push(Err(Rejected::DiskFull { free, min_free }));
                continue;
            }
            let size =
                block::encoded_record_bytes(record.partition_key.len(), record.data.len()) as u64;
            if let Some(max) = quota {
                if used + size > max {
                    self.stats.rejected_quota.fetch_add(1, Ordering::Relaxed);
                    outcomes.push(Err(Rejected::QuotaFull {
                        stream: name.to_string(),
                        max_bytes: max,
                    }));
                    continue;
                }
                used += size;
            }
            let shard = stream.route(record.hash_key).ok_or_else(|| {
                other(
                    "route a record",
                    std::io::Error::other(format!(
                        "stream {name} has no open shard for a hash key"
                    )),
                )
            })?;
            let state = self.states.entry(shard.uid).or_insert(ShardState {
                last: shard.starting,
                ..ShardState::default()
            });
            let position = state.last.successor_at(now);
            state.last = position;
            staged.entry(shard.uid).or_default().push(PendingRecord {
                position,
                partition_key: record.partition_key,
                data: record.data,
            });
            outcomes.push(Ok(Appended {
                shard_index: shard.index,
                sequence: SequenceNumber {
                    shard_index: shard.index,
                    position,
                },
            }));
        }
        Ok(outcomes)
    }

    /// Stages the appends of a transaction: all of them, or (a record refused, a stream
    /// missing) none, with the working copy as it was.
    pub(super) fn stage_all(
        &mut self,
        appends: Vec<(String, Vec<NewRecord>)>,
        staged: &mut BTreeMap<u64, Vec<PendingRecord>>,
        disk: DiskCheck,
    ) -> Result<(), StoreError> {
        let touched: Vec<u64> = appends
            .iter()
            .filter_map(|(name, _)| self.streams.get(name))
            .flat_map(|s| s.shards.iter().map(|sh| sh.uid))
            .collect();
        let before: Vec<(u64, Option<ShardState>)> = touched
            .iter()
            .map(|uid| (*uid, self.states.get(uid).copied()))
            .collect();
        let mut mine = BTreeMap::new();
        let mut result = Ok(());
        for (name, records) in appends {
            match self.stage(&name, records, &mut mine, disk) {
                Ok(outcomes) => {
                    if let Some(Err(rejected)) = outcomes.into_iter().find(|o| o.is_err()) {
                        result = Err(StoreError::Refused(rejected));
                        break;
                    }
                }
                Err(error) => {
                    result = Err(error);
                    break;
                }
            }
        }
        if result.is_err() {
            for (uid, state) in before {
                match state {
                    Some(state) => self.states.insert(uid, state),
                    None => self.states.remove(&uid),
                };
            }
            return result;
        }
        for (uid, records) in mine {
            staged.entry(uid).or_default().extend(records);
        }
        Ok(())
    }

    /// Writes staged records as blocks, then trims streams over their quota.
    pub(super) fn flush(
        &mut self,
        txn: &WriteTransaction,
        staged: BTreeMap<u64, Vec<PendingRecord>>,
    ) -> Result<(u64, u64), StoreError> {
        let mut total_records = 0u64;
        let mut total_bytes = 0u64;
        let mut touched_streams = HashSet::new();
        let shard_owner: HashMap<u64, String> = self
            .streams
            .values()
            .flat_map(|s| s.shards.iter().map(move |sh| (sh.uid, s.name.clone())))
            .collect();
        for (uid, records) in staged {
            // The stream may have been deleted later in the same group.
            let Some(owner) = shard_owner.get(&uid) else {
                continue;
            };
            touched_streams.insert(owner.clone());
            let record_bytes = records
                .iter()
                .map(|r| (r.data.len() + r.partition_key.len()) as u64)
                .sum::<u64>();
            total_records += records.len() as u64;
            total_bytes += record_bytes;
            let sealer = match self.streams.get(owner) {
                Some(stream) => self.sealer(stream)?,
                None => None,
            };
            let written = write_blocks(txn, uid, &records, sealer.as_ref())?;
            let state = self.states.entry(uid).or_default();
            state.bytes += written;
            state.records += records.len() as u64;
            state.appended += records.len() as u64;
            state.appended_bytes += record_bytes;
        }
        for name in touched_streams {
            self.enforce_quota(txn, &name)?;
        }
        Ok((total_records, total_bytes))
    }

    /// For `overwrite_oldest` streams over their quota: remove the oldest blocks, across all
    /// shards, until the stream fits.
    pub(super) fn enforce_quota(
        &mut self,
        txn: &WriteTransaction,
        name: &str,
    ) -> Result<(), StoreError> {
        let Some(stream) = self.streams.get(name) else {
            return Ok(());
        };
        let Some(max) = stream.max_bytes else {
            return Ok(());
        };
        if stream.on_full != OnFull::OverwriteOldest {
            return Ok(());
        }
        let uids: Vec<u64> = stream.shards.iter().map(|s| s.uid).collect();
        let mut used = self.stream_bytes(stream);
        let mut trimmed = 0u64;
        while used > max {
            // The shard whose first block is the oldest.
            let mut oldest: Option<(u64, u64)> = None;
            for &uid in &uids {
                if let Some(first) = first_block_key(txn, uid)? {
                    if oldest.is_none_or(|(_, key)| first < key) {
                        oldest = Some((uid, first));
                    }
                }
            }
            let Some((uid, key)) = oldest else { break };
            let removed = remove_block(txn, uid, key)?;
            self.states.entry(uid).or_default().trim(&removed);
            used = used.saturating_sub(removed.stored_bytes);
            trimmed += removed.records;
        }
        if trimmed > 0 {
            self.stats
                .trimmed_records
                .fetch_add(trimmed, Ordering::Relaxed);
            self.stats
                .trimmed_by_size
                .fetch_add(trimmed, Ordering::Relaxed);
            tracing::debug!(
                stream = name,
                records = trimmed,
                "quota trimmed the oldest records"
            );
        }
        Ok(())
    }

    /// Retention by age; drops closed shards that are empty and past retention.
    pub(super) fn maintain(
        &mut self,
        txn: &WriteTransaction,
        now: u64,
    ) -> Result<bool, StoreError> {
        let mut catalog_changed = false;
        let names: Vec<String> = self.streams.keys().cloned().collect();
        for name in names {
            let Some(stream) = self.streams.get(&name) else {
                continue;
            };
            let cutoff = Position::at_millis(now.saturating_sub(stream.retention_ms()));
            let uids: Vec<u64> = stream.shards.iter().map(|s| s.uid).collect();
            let mut trimmed = 0u64;
            for uid in uids {
                let expired = expired_blocks(txn, uid, cutoff)?;
                for key in expired {
                    let removed = remove_block(txn, uid, key)?;
                    self.states.entry(uid).or_default().trim(&removed);
                    trimmed += removed.records;
                }
            }
            if trimmed > 0 {
                self.stats
                    .trimmed_records
                    .fetch_add(trimmed, Ordering::Relaxed);
                self.stats
                    .trimmed_by_age
                    .fetch_add(trimmed, Ordering::Relaxed);
                tracing::info!(stream = %name, records = trimmed, "retention trimmed records older than {} hours", stream.retention_hours);
            }
            // Closed shards past retention with nothing left go away, as in Kinesis.
            let retention = stream.retention_ms();
            let gone: Vec<u64> = stream
                .shards
                .iter()
                .filter(|s| {
                    s.closed.is_some_and(|c| c.at_ms + retention < now)
                        && self.states.get(&s.uid).is_none_or(|st| st.records == 0)
                })
                .map(|s| s.uid)
                .collect();
            if !gone.is_empty() {
                for &uid in &gone {
                    drop_shard_tables(txn, uid)?;
                    self.states.remove(&uid);
                }
                let stream = self.streams.get_mut(&name).expect("stream listed above");
                stream.shards.retain(|s| !gone.contains(&s.uid));
                let meta = stream.clone();
                write_stream(txn, &meta)?;
                catalog_changed = true;
            }
        }
        Ok(catalog_changed)
    }

    pub(super) fn write_states(&self, txn: &WriteTransaction) -> Result<(), StoreError> {
        let mut table = txn.open_table(schema::SHARD_STATE).map_err(storage)?;
        for (uid, state) in &self.states {
            let committed = self.live.get(uid).map(|l| l.state());
            if committed != Some(*state) {
                table
                    .insert(*uid, state.encode().as_slice())
                    .map_err(storage)?;
            }
        }
        Ok(())
    }

    pub(super) fn write_system(&self, txn: &WriteTransaction) -> Result<(), StoreError> {
        let mut table = txn.open_table(schema::SYSTEM).map_err(storage)?;
        table
            .insert(schema::NEXT_UID, self.next_uid.to_le_bytes().as_slice())
            .map_err(storage)?;
        Ok(())
    }
}
