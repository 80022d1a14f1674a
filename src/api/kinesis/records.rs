//! Writing and reading records: PutRecord, PutRecords, GetShardIterator, GetRecords.

use super::hash_range_out;
use super::types::*;
use crate::api::error::{ApiError, ErrorKind};
use crate::api::protocol::Blob;
use crate::api::KinesisState;
use crate::storage::{now_ms, NewRecord, Rejected};
use crate::streams::validate::{
    resolve_shard_id, MAX_GET_RECORDS, MAX_GET_RECORDS_BYTES, MAX_PUT_RECORDS_BYTES,
    MAX_RECORD_BYTES,
};
use crate::streams::{
    hash_key_of, parse_explicit_hash_key, shard_id, IteratorError, Position, SequenceNumber,
    ShardIterator, ShardMeta,
};

/// One record's key, data and explicit hash key (checked against the model already); `at`
/// names the member for errors.
fn new_record(
    data: Option<Blob>,
    partition_key: Option<String>,
    explicit_hash_key: Option<String>,
    at: &str,
) -> Result<NewRecord, ApiError> {
    let partition_key =
        partition_key.ok_or_else(|| ApiError::missing(&format!("{at}partitionKey")))?;
    let data = data
        .ok_or_else(|| ApiError::missing(&format!("{at}data")))?
        .0;
    // The data alone passed the model's limit; with its partition key the record must fit too.
    let size = data.len() + partition_key.len();
    if size > MAX_RECORD_BYTES {
        return Err(ApiError::new(
            ErrorKind::Validation,
            format!(
                "1 validation error detected: Value 'java.nio.HeapByteBuffer[pos=0 lim={0} cap={0}]' at '{at}data' failed to satisfy constraint: Member must have length less than or equal to {1} (with the partition key the record is {size} bytes)",
                data.len(),
                MAX_RECORD_BYTES - partition_key.len(),
            ),
        ));
    }
    let hash_key = match explicit_hash_key {
        Some(text) => parse_explicit_hash_key(&text).ok_or_else(|| {
            ApiError::invalid(format!(
                "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was {text}"
            ))
        })?,
        None => hash_key_of(&partition_key),
    };
    Ok(NewRecord {
        partition_key,
        hash_key,
        data,
    })
}

/// A time as AWS's messages show it: `Mon Dec 07 02:00:00 UTC 2026` (Java's `Date`).
fn aws_date(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(i64::MAX)).map_or_else(
        || ms.to_string(),
        |t| t.format("%a %b %d %H:%M:%S UTC %Y").to_string(),
    )
}

/// `EncryptionType` of what a put just stored (the stream's current setting).
fn put_encryption(state: &KinesisState, name: &str) -> &'static str {
    state
        .meta(name)
        .map_or("NONE", |meta| super::encryption::put_type(&meta))
}

fn rejected(state: &KinesisState, r: &Rejected) -> ApiError {
    let _ = state;
    ApiError::new(ErrorKind::ProvisionedThroughputExceeded, r.to_string())
}

pub async fn put_record(
    state: &KinesisState,
    input: PutRecordInput,
) -> Result<PutRecordOutput, ApiError> {
    let name = state.stream_name(&input)?;
    if let Some(text) = input.sequence_number_for_ordering.as_deref() {
        // Only a sequence number this gateway issued can order records.
        if text.parse::<SequenceNumber>().is_err() {
            state.meta(&name)?;
            return Err(ApiError::invalid(format!(
                "ExclusiveMinimumSequenceNumber {text} used in PutRecord on stream {name} under account {} is invalid.",
                state.account_id
            )));
        }
    }
    let record = new_record(input.data, input.partition_key, input.explicit_hash_key, "")?;
    let hash_key = record.hash_key;
    let outcomes = state
        .store
        .append(&name, vec![record])
        .await
        .map_err(|e| state.store_error(&name, e))?;
    match outcomes.into_iter().next() {
        Some(Ok(appended)) => Ok(PutRecordOutput {
            shard_id: shard_id(appended.shard_index),
            sequence_number: appended.sequence.to_string(),
            encryption_type: put_encryption(state, &name),
        }),
        Some(Err(r)) => {
            state.monitor.count_refused(&name, &[hash_key]);
            Err(rejected(state, &r))
        }
        None => Err(ApiError::new(
            ErrorKind::InternalFailure,
            "the store returned no outcome",
        )),
    }
}

pub async fn put_records(
    state: &KinesisState,
    input: PutRecordsInput,
) -> Result<PutRecordsOutput, ApiError> {
    let name = state.stream_name(&input)?;
    let entries = input.records.ok_or_else(|| ApiError::missing("records"))?;
    let mut records = Vec::with_capacity(entries.len());
    let mut total = 0usize;
    for (i, entry) in entries.into_iter().enumerate() {
        let record = new_record(
            entry.data,
            entry.partition_key,
            entry.explicit_hash_key,
            &format!("records.{}.member.", i + 1),
        )?;
        total += record.data.len() + record.partition_key.len();
        records.push(record);
    }
    if total > MAX_PUT_RECORDS_BYTES {
        return Err(ApiError::invalid(format!(
            "Records size exceeds 5 MB limit: the request carries {total} bytes of data and partition keys."
        )));
    }
    let hash_keys: Vec<u128> = records.iter().map(|r| r.hash_key).collect();
    let outcomes = state
        .store
        .append(&name, records)
        .await
        .map_err(|e| state.store_error(&name, e))?;
    let refused: Vec<u128> = (outcomes.iter().zip(&hash_keys))
        .filter(|(outcome, _)| outcome.is_err())
        .map(|(_, key)| *key)
        .collect();
    state.monitor.count_refused(&name, &refused);
    let mut failed = 0;
    let results = outcomes
        .into_iter()
        .map(|outcome| match outcome {
            Ok(appended) => PutRecordsResultEntry {
                sequence_number: Some(appended.sequence.to_string()),
                shard_id: Some(shard_id(appended.shard_index)),
                error_code: None,
                error_message: None,
            },
            Err(r) => {
                failed += 1;
                PutRecordsResultEntry {
                    sequence_number: None,
                    shard_id: None,
                    error_code: Some(ErrorKind::ProvisionedThroughputExceeded.aws_type()),
                    error_message: Some(r.to_string()),
                }
            }
        })
        .collect();
    Ok(PutRecordsOutput {
        failed_record_count: failed,
        records: results,
        encryption_type: put_encryption(state, &name),
    })
}

pub async fn get_shard_iterator(
    state: &KinesisState,
    input: GetShardIteratorInput,
) -> Result<GetShardIteratorOutput, ApiError> {
    let name = state.stream_name(&input)?;
    let shard_text = input.shard_id.ok_or_else(|| ApiError::missing("shardId"))?;
    let index = resolve_shard_id(&shard_text)
        .ok_or_else(|| state.shard_not_findable(&name, &shard_text))?;
    // AWS answers a missing stream as a missing shard of it.
    let meta = state
        .meta(&name)
        .map_err(|_| state.shard_not_found(&name, index))?;
    let shard = meta
        .shard(index)
        .ok_or_else(|| state.shard_not_found(&name, index))?;
    let kind = input
        .shard_iterator_type
        .ok_or_else(|| ApiError::missing("shardIteratorType"))?;
    let wants_sequence = matches!(
        kind.as_str(),
        "AT_SEQUENCE_NUMBER" | "AFTER_SEQUENCE_NUMBER"
    );
    let has_sequence = input.starting_sequence_number.is_some();
    if matches!(kind.as_str(), "TRIM_HORIZON" | "LATEST") && has_sequence
        || wants_sequence && !has_sequence
    {
        return Err(ApiError::invalid(format!(
            "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. Request specified {kind} and {} StartingSequenceNumber.",
            if has_sequence { "also a" } else { "no" }
        )));
    }
    let sequence = || -> Result<Position, ApiError> {
        let text = input
            .starting_sequence_number
            .as_deref()
            .unwrap_or_default();
        let seq: SequenceNumber = text.parse().map_err(|_| {
            ApiError::invalid(format!(
                "StartingSequenceNumber {text} used in GetShardIterator on shard {} in stream {} under account {} is invalid.",
                shard.id(), meta.name, state.account_id
            ))
        })?;
        if seq.shard_index != shard.index {
            return Err(ApiError::invalid(format!(
                "Invalid StartingSequenceNumber. It encodes {}, while it was used in a call to a shard with {}",
                shard_id(seq.shard_index),
                shard.id()
            )));
        }
        Ok(seq.position)
    };
    let timestamp = || {
        input.timestamp.map(|ts| ts.0).ok_or_else(|| {
            ApiError::invalid("Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP. Current request has no timestamp parameter.")
        })
    };
    let position = start_position(state, shard, &kind, sequence, timestamp)?;
    let iterator = ShardIterator {
        stream_uid: meta.uid,
        shard_index: shard.index,
        position,
        issued_ms: now_ms(),
    };
    Ok(GetShardIteratorOutput {
        shard_iterator: iterator.encode(state.store.iterator_key()),
    })
}

/// Where a read of `shard` starts for a starting-position type, as GetShardIterator and
/// SubscribeToShard take it (the model allows five types: anything else is AT_TIMESTAMP).
/// The starting sequence number (parsed and checked against the shard) and the timestamp
/// come from the caller, which words its own errors as AWS words them for its operation.
pub(super) fn start_position(
    state: &KinesisState,
    shard: &ShardMeta,
    kind: &str,
    sequence: impl FnOnce() -> Result<Position, ApiError>,
    timestamp_ms: impl FnOnce() -> Result<u64, ApiError>,
) -> Result<Position, ApiError> {
    Ok(match kind {
        "TRIM_HORIZON" => Position::ZERO,
        "LATEST" => state
            .store
            .catalog()
            .live(shard.uid)
            .map_or(shard.starting, |l| l.last())
            .next(),
        "AT_SEQUENCE_NUMBER" => sequence()?,
        "AFTER_SEQUENCE_NUMBER" => sequence()?.next(),
        _ => Position::at_millis(timestamp_ms()?),
    })
}

pub async fn get_records(
    state: &KinesisState,
    input: GetRecordsInput,
) -> Result<GetRecordsOutput, ApiError> {
    let text = input
        .shard_iterator
        .ok_or_else(|| ApiError::missing("shardIterator"))?;
    let limit = input.limit.map_or(MAX_GET_RECORDS as usize, |l| l as usize);
    let now = now_ms();
    let iterator = ShardIterator::decode(
        &text,
        state.store.iterator_key(),
        now,
        state.iterator_ttl_ms,
    )
    .map_err(|e| match e {
        IteratorError::Expired {
            issued_ms,
            now_ms,
            ttl_ms,
        } => ApiError::new(
            ErrorKind::ExpiredIterator,
            format!(
                "Iterator expired. The iterator was created at time {} while right now it is {} which is further in the future than the tolerated delay of {ttl_ms} milliseconds.",
                aws_date(issued_ms),
                aws_date(now_ms)
            ),
        ),
        _ => ApiError::invalid("Invalid ShardIterator."),
    })?;
    let catalog = state.store.catalog();
    let meta = catalog
        .stream_by_uid(iterator.stream_uid)
        .cloned()
        .ok_or_else(|| {
            ApiError::not_found("The stream this iterator belongs to no longer exists.")
        })?;
    if let Some(arn) = input.stream_arn.as_deref() {
        if super::parse_stream_arn(arn)? != meta.name {
            return Err(ApiError::invalid(format!(
                "StreamARN {arn} does not name the stream of this iterator ({}).",
                meta.name
            )));
        }
    }
    let shard = meta
        .shard(iterator.shard_index)
        .cloned()
        .ok_or_else(|| state.shard_not_found(&meta.name, iterator.shard_index))?;
    let live = catalog.live(shard.uid).cloned();
    drop(catalog);
    // The tip is read before the records: everything up to it is visible to the read below.
    let tip = live.as_ref().map_or(shard.starting, |l| l.last());
    let store = state.store.clone();
    let from = iterator.position;
    let batch = tokio::task::spawn_blocking(move || {
        store.read(shard.uid, from, limit, MAX_GET_RECORDS_BYTES)
    })
    .await
    .map_err(|e| ApiError::new(ErrorKind::InternalFailure, format!("read task failed: {e}")))??;
    state
        .monitor
        .count_get(&meta, shard.uid, &batch.records, now);
    let next = match batch.records.last() {
        Some(last) => last.position.next(),
        // Nothing at or after `from` up to the tip: continue after the tip.
        None => from.max(tip.next()),
    };
    let millis_behind = match batch.records.last() {
        Some(last) if last.position < tip => tip.millis().saturating_sub(last.position.millis()),
        _ => 0,
    };
    let records = RecordsOut {
        shard_index: shard.index,
        records: batch.records,
    };
    let finished = shard.closed.is_some_and(|c| next > c.ending);
    let (next_shard_iterator, child_shards) = if finished {
        let children = meta
            .children_of(shard.index)
            .map(|child| ChildShardOut {
                shard_id: child.id(),
                parent_shards: [child.parent, child.adjacent_parent]
                    .into_iter()
                    .flatten()
                    .map(shard_id)
                    .collect(),
                hash_key_range: hash_range_out(child.range),
            })
            .collect();
        (None, Some(children))
    } else {
        let next_iterator = ShardIterator {
            stream_uid: meta.uid,
            shard_index: shard.index,
            position: next,
            issued_ms: now,
        };
        (Some(next_iterator.encode(state.store.iterator_key())), None)
    };
    Ok(GetRecordsOutput {
        records,
        next_shard_iterator,
        millis_behind_latest: millis_behind,
        child_shards,
    })
}
