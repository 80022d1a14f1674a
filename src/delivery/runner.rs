//! One delivery stream at work: read the source, buffer by size and time, process, deliver,
//! retry, and move the checkpoints only after the destination confirmed.
//!
//! Reading and delivering overlap: while one batch is on its way (or being retried through
//! an outage), the next one is read and buffered, so a backlog drains at the speed of the
//! slower of the two. At most two batches are in memory. When the destination is down the
//! runner stops reading after one buffered batch: the shard log is the buffer.
//!
//! Batches keep their identity across crashes (`plan`): a batch's id and object names derive
//! from the records it holds, its plan is committed before it is sent, and after a restart
//! the planned batch is formed again before anything else.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::backoff;
use super::bandwidth::Bandwidth;
use super::batch::{Batch, DeliveryRecord, ErrorBatch, ErrorOutputType, FailedRecord};
use super::checkpoint::{self, DeliveryCheckpoint};
use super::config::{DeliveryStreamConfig, SourceConfig, StartPosition};
use super::dead_letter::DeadLetter;
use super::destinations::{self, DeliveryError, Destination, DestinationContext};
use super::plan;
use super::processors::Processors;
use super::source::{Cursor, ShardSource};
use super::status::{rfc3339, DeliveryState, LastError, ShardProgress, StatusCell};
use crate::storage::{now_ms, Store};

/// How often the runner looks for new shards or a source stream that appeared.
const REFRESH: Duration = Duration::from_secs(1);
/// While a problem lasts, a summary line this often (one warning per state change).
const SUMMARY_EVERY: Duration = Duration::from_secs(300);

/// Everything a runner needs.
pub struct RunnerParts {
    pub config: DeliveryStreamConfig,
    pub store: Store,
    pub context: DestinationContext,
    pub bandwidth: Arc<Bandwidth>,
    pub dead_letter: DeadLetter,
    pub status: Arc<StatusCell>,
    pub stop: watch::Receiver<bool>,
}

/// The source stream a delivery stream reads.
pub fn source_stream(config: &DeliveryStreamConfig) -> (String, StartPosition) {
    match &config.source {
        SourceConfig::Stream { stream, start } => (stream.clone(), *start),
        SourceConfig::DirectPut => (
            super::config::direct_put_stream_name(&config.name),
            StartPosition::TrimHorizon,
        ),
        // The service starts no runner for video; a runner would find no such stream and pause.
        SourceConfig::Video => (String::new(), StartPosition::TrimHorizon),
    }
}

/// A batch on its way, with the checkpoints to save when it is confirmed.
struct InFlight {
    task: JoinHandle<Result<Delivered, Stopped>>,
    marks: Vec<(u64, Cursor)>,
    oldest_ms: Option<u64>,
}

struct Delivered {
    records: u64,
    bytes: u64,
}

/// The gateway is stopping; the batch was not (fully) confirmed.
struct Stopped;

/// The next batch's records, per shard index in sequence order. A batch lists its shards in
/// index order (a parent before its children), each shard's records in sequence order: the
/// same records always in the same order, however the reads interleaved.
struct Buffer {
    shards: BTreeMap<u64, Vec<DeliveryRecord>>,
    len: usize,
    bytes: u64,
    oldest_ms: Option<u64>,
}

impl Buffer {
    fn new() -> Buffer {
        Buffer {
            shards: BTreeMap::new(),
            len: 0,
            bytes: 0,
            oldest_ms: None,
        }
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn push(&mut self, shard_index: u64, record: DeliveryRecord) {
        self.oldest_ms = Some(
            self.oldest_ms
                .map_or(record.arrival_ms, |o| o.min(record.arrival_ms)),
        );
        self.shards.entry(shard_index).or_default().push(record);
        self.len += 1;
    }

    /// The batch id (from the first and last sequence number per shard) and the records.
    fn into_batch_parts(self, delivery_stream: &str) -> (String, Vec<DeliveryRecord>) {
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

pub async fn run(parts: RunnerParts) {
    let RunnerParts {
        config,
        store,
        context,
        bandwidth,
        dead_letter,
        status,
        mut stop,
    } = parts;
    let name = config.name.clone();
    let shared = Shared {
        name: name.clone(),
        priority: config.priority,
        status: status.clone(),
        bandwidth,
        dead_letter,
        stop: stop.clone(),
    };
    let (stream, start) = source_stream(&config);
    let mut source = ShardSource::new(store.clone(), stream, start);
    let mut saved = {
        let store = store.clone();
        let key = name.clone();
        match tokio::task::spawn_blocking(move || checkpoint::load(&store, &key)).await {
            Ok(Ok(saved)) => {
                let (checkpoints, pending) = plan::split_saved(saved);
                if !pending.is_empty() {
                    tracing::info!(delivery_stream = %name, shards = pending.len(), "forming the batch that was on its way again, with its id");
                }
                source.set_plan(pending);
                Some(checkpoints)
            }
            Ok(Err(error)) => {
                tracing::error!(delivery_stream = %name, %error, "cannot read checkpoints");
                return;
            }
            Err(_) => return,
        }
    };
    let mut paused_logged = false;
    // Checkpoints and backlog show in status even while the destination cannot be set up.
    if !refresh_source(
        &name,
        &mut source,
        &mut saved,
        &store,
        &status,
        &mut paused_logged,
    )
    .await
    {
        return;
    }
    let Some(destination) = build_destination(&config, &context, &shared).await else {
        return;
    };
    let destination: Arc<dyn Destination> = Arc::from(destination);
    let processors = match Processors::new(
        &config.processors,
        context.http.clone(),
        &context.source_arn,
    ) {
        Ok(p) => Arc::new(p),
        Err(error) => {
            // check-config refuses these; an API-created stream could still carry one.
            shared.set_error(DeliveryState::Failing, &format!("processors: {error}"));
            tracing::error!(delivery_stream = %name, %error, "cannot set up processors; not delivering");
            return;
        }
    };
    let limits = destination.limits();
    let max_bytes = config.buffer.size_bytes.min(limits.max_bytes).max(1);
    let max_records = limits.max_records.max(1);
    let interval_ms = u64::from(config.buffer.interval_s) * 1000;

    let mut buffer = Buffer::new();
    let mut in_flight: Option<InFlight> = None;
    let mut last_refresh: Option<Instant> = Some(Instant::now());

    'run: loop {
        if *stop.borrow() {
            break;
        }
        if last_refresh.is_none_or(|t| t.elapsed() >= REFRESH) {
            last_refresh = Some(Instant::now());
            if !refresh_source(
                &name,
                &mut source,
                &mut saved,
                &store,
                &status,
                &mut paused_logged,
            )
            .await
            {
                break;
            }
        }

        // Read while there is room.
        let mut more = false;
        if buffer.bytes < max_bytes && buffer.len < max_records {
            let read = source
                .read(max_records - buffer.len, max_bytes - buffer.bytes)
                .await;
            match read {
                Ok(outcome) => {
                    more = outcome.more;
                    for lost in &outcome.lost {
                        tracing::warn!(
                            delivery_stream = %name,
                            stream = source.stream(),
                            shard = lost.shard_index,
                            records = lost.records,
                            after_sequence = %lost.after,
                            through_sequence = %lost.through,
                            "retention or a quota trimmed records before they were delivered"
                        );
                    }
                    buffer.bytes += outcome.bytes;
                    for (shard_index, record) in outcome.records {
                        buffer.push(shard_index, record);
                    }
                }
                Err(error) => {
                    tracing::error!(delivery_stream = %name, %error, "cannot read the source");
                    shared.set_error(
                        DeliveryState::Failing,
                        &format!("reading the source: {error}"),
                    );
                    if sleep_or_stop(&mut stop, Duration::from_secs(5)).await {
                        break;
                    }
                    continue;
                }
            }
        }
        publish_cursors(&status, &source);
        publish_pending(&status, &buffer, in_flight.as_ref());

        let full = buffer.bytes >= max_bytes || buffer.len >= max_records;
        let deadline = buffer.oldest_ms.map(|o| o + interval_ms);
        // A replayed batch is cut where its plan ends (or where it is full), not by time.
        let replayed = source.replaying() && source.replay_complete();
        if replayed && buffer.is_empty() {
            source.end_replay(); // its records were trimmed meanwhile
        }
        let due = !buffer.is_empty()
            && if source.replaying() {
                full || replayed
            } else {
                full || deadline.is_some_and(|d| now_ms() >= d)
            };
        // Also a batch of no records when only lost-record markers moved: they are saved
        // without waiting for records.
        let only_losses = buffer.is_empty() && source.has_dirty();
        if due || (!more && only_losses) {
            let marks = source.take_dirty();
            let formed = std::mem::replace(&mut buffer, Buffer::new());
            let plan_rows = if formed.is_empty() {
                Vec::new()
            } else {
                plan::rows(&source.cursors)
            };
            if replayed {
                source.end_replay();
            }
            // One batch at a time on the wire: wait for the previous one; its checkpoints
            // and this batch's plan are committed together, before this batch is sent.
            if !save_before_sending(in_flight.take(), plan_rows, &store, &shared).await {
                break 'run;
            }
            let oldest_ms = formed.oldest_ms;
            let (id, records) = formed.into_batch_parts(&name);
            let batch = Batch {
                delivery_stream: name.clone(),
                id,
                created_ms: oldest_ms.unwrap_or_else(now_ms),
                formed_ms: now_ms(),
                compression: config.compression,
                records,
            };
            let task = tokio::spawn(deliver_batch(
                batch,
                processors.clone(),
                destination.clone(),
                shared.clone(),
            ));
            in_flight = Some(InFlight {
                task,
                marks,
                oldest_ms,
            });
            publish_pending(&status, &buffer, in_flight.as_ref());
            continue;
        }
        if more && !full {
            continue;
        }

        // Nothing to do until records arrive, the batch in flight ends, the buffer is due,
        // the refresh tick, or stop.
        let wait_until = match deadline {
            Some(d) if !buffer.is_empty() => {
                Duration::from_millis(d.saturating_sub(now_ms())).min(REFRESH)
            }
            _ => REFRESH,
        };
        let watchers = if full {
            Some(Vec::new())
        } else {
            source.watchers()
        };
        let Some(watchers) = watchers else {
            continue; // records are already waiting
        };
        let new_records = async {
            if watchers.is_empty() {
                std::future::pending::<()>().await;
            }
            let changes = watchers.into_iter().map(|mut rx| {
                Box::pin(async move {
                    let _ = rx.changed().await;
                })
            });
            futures_util::future::select_all(changes).await;
        };
        match in_flight.as_mut() {
            Some(flight) => {
                tokio::select! {
                    result = &mut flight.task => {
                        let marks = in_flight.take().map(|f| f.marks).unwrap_or_default();
                        if !record_outcome(result, marks, &store, &shared).await {
                            break 'run;
                        }
                    }
                    _ = new_records => {}
                    _ = tokio::time::sleep(wait_until) => {}
                    _ = stop.changed() => {}
                }
            }
            None => {
                tokio::select! {
                    _ = new_records => {}
                    _ = tokio::time::sleep(wait_until) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }
    // Stopping: a batch on its way is given the chance to finish its current attempt;
    // whatever is not confirmed is read again from the checkpoints next time.
    if let Some(flight) = in_flight.take() {
        let _ = finish(flight, &store, &shared).await;
    }
    destination.close().await;
    status.update(|s| {
        s.state = DeliveryState::Paused;
        s.paused_reason = Some("stopped".into());
    });
}

/// Matches the cursors with the source's shards and saves where a new delivery stream or a
/// new shard starts. False when the checkpoints cannot be saved (the gateway is stopping).
async fn refresh_source(
    name: &str,
    source: &mut ShardSource,
    saved: &mut Option<std::collections::HashMap<u64, DeliveryCheckpoint>>,
    store: &Store,
    status: &StatusCell,
    paused_logged: &mut bool,
) -> bool {
    match source.refresh(saved) {
        Ok(initial) => {
            if *paused_logged {
                tracing::info!(delivery_stream = %name, stream = source.stream(), "the source stream is there; delivering");
                *paused_logged = false;
                status.update(|s| {
                    s.state = DeliveryState::Delivering;
                    s.paused_reason = None;
                });
            }
            if !initial.is_empty() {
                let op = checkpoint::save_op(name, initial);
                if let Err(error) = store.checkpoint(op).await {
                    tracing::warn!(delivery_stream = %name, %error, "cannot save starting checkpoints");
                    return false;
                }
            }
            publish_cursors(status, source);
        }
        Err(reason) => {
            if !*paused_logged {
                tracing::warn!(delivery_stream = %name, "{reason}; waiting for it");
                *paused_logged = true;
            }
            status.update(|s| {
                s.state = DeliveryState::Paused;
                s.paused_reason = Some(reason);
            });
        }
    }
    true
}

/// Waits for a batch in flight and saves its checkpoints. False when stopping.
async fn finish(flight: InFlight, store: &Store, shared: &Shared) -> bool {
    let InFlight { task, marks, .. } = flight;
    let result = task.await;
    record_outcome(result, marks, store, shared).await
}

async fn record_outcome(
    result: Result<Result<Delivered, Stopped>, tokio::task::JoinError>,
    marks: Vec<(u64, Cursor)>,
    store: &Store,
    shared: &Shared,
) -> bool {
    let Some(delivered) = confirmed(result, shared) else {
        return false;
    };
    let rows = marks.iter().map(|(uid, c)| (*uid, c.read)).collect();
    if !save_checkpoints(rows, store, shared).await {
        return false;
    }
    publish_delivered(delivered, &marks, shared);
    true
}

/// Before a new batch is sent: waits for the previous one (if any) and commits its
/// checkpoints together with the new batch's plan. False when stopping.
async fn save_before_sending(
    previous: Option<InFlight>,
    plan_rows: Vec<(u64, DeliveryCheckpoint)>,
    store: &Store,
    shared: &Shared,
) -> bool {
    let mut rows = Vec::new();
    let mut done = None;
    if let Some(InFlight { task, marks, .. }) = previous {
        let Some(delivered) = confirmed(task.await, shared) else {
            return false;
        };
        rows.extend(marks.iter().map(|(uid, c)| (*uid, c.read)));
        done = Some((delivered, marks));
    }
    rows.extend(plan_rows);
    if !save_checkpoints(rows, store, shared).await {
        return false;
    }
    if let Some((delivered, marks)) = done {
        publish_delivered(delivered, &marks, shared);
    }
    true
}

/// What a delivery task ended with; `None` when it was stopped or failed.
fn confirmed(
    result: Result<Result<Delivered, Stopped>, tokio::task::JoinError>,
    shared: &Shared,
) -> Option<Delivered> {
    match result {
        Ok(Ok(delivered)) => Some(delivered),
        Ok(Err(Stopped)) => None,
        Err(error) => {
            tracing::error!(delivery_stream = %shared.name, %error, "a delivery task failed");
            None
        }
    }
}

/// Commits checkpoint (and plan) rows; false when they cannot be saved (stopping).
async fn save_checkpoints(
    rows: Vec<(u64, DeliveryCheckpoint)>,
    store: &Store,
    shared: &Shared,
) -> bool {
    if rows.is_empty() {
        return true;
    }
    let op = checkpoint::save_op(&shared.name, rows);
    if let Err(error) = store.checkpoint(op).await {
        tracing::warn!(delivery_stream = %shared.name, %error, "cannot save checkpoints; the batch will be delivered again");
        return false;
    }
    true
}

/// Status after a batch was confirmed and its checkpoints committed.
fn publish_delivered(delivered: Delivered, marks: &[(u64, Cursor)], shared: &Shared) {
    shared.status.update(|s| {
        s.delivered_records += delivered.records;
        s.delivered_bytes += delivered.bytes;
        if delivered.records > 0 {
            s.batches += 1;
        }
        for (uid, cursor) in marks {
            s.shards.insert(
                *uid,
                ShardProgress {
                    shard_index: cursor.shard_index,
                    checkpoint: cursor.read,
                    delivered_any: cursor.delivered_any,
                    read: cursor.read,
                },
            );
        }
    });
}

/// Where reading stands, per shard (the delivered checkpoints are published on confirmation).
fn publish_cursors(status: &StatusCell, source: &ShardSource) {
    status.update(|s| {
        s.shards.retain(|uid, _| source.cursors.contains_key(uid));
        for (uid, cursor) in &source.cursors {
            let progress = s.shards.entry(*uid).or_insert(ShardProgress {
                shard_index: cursor.shard_index,
                checkpoint: cursor.read,
                delivered_any: cursor.delivered_any,
                read: cursor.read,
            });
            progress.read = cursor.read;
        }
    });
}

fn publish_pending(status: &StatusCell, buffer: &Buffer, in_flight: Option<&InFlight>) {
    let oldest = match (buffer.oldest_ms, in_flight.and_then(|f| f.oldest_ms)) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    status.update(|s| s.oldest_pending_ms = oldest);
}

async fn sleep_or_stop(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

/// What the delivery tasks of one stream share.
#[derive(Clone)]
struct Shared {
    name: String,
    priority: u8,
    status: Arc<StatusCell>,
    bandwidth: Arc<Bandwidth>,
    dead_letter: DeadLetter,
    stop: watch::Receiver<bool>,
}

impl Shared {
    fn set_error(&self, state: DeliveryState, message: &str) {
        let at_ms = now_ms();
        self.status.update(|s| {
            s.state = state;
            s.last_error = Some(LastError {
                message: message.to_owned(),
                at: rfc3339(at_ms),
                at_ms,
            });
        });
    }

    /// Keeps an error for status without changing the state.
    fn note_error(&self, message: &str) {
        let at_ms = now_ms();
        self.status.update(|s| {
            s.last_error = Some(LastError {
                message: message.to_owned(),
                at: rfc3339(at_ms),
                at_ms,
            });
        });
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    async fn sleep(&self, d: Duration) -> bool {
        let mut stop = self.stop.clone();
        sleep_or_stop(&mut stop, d).await
    }
}

async fn build_destination(
    config: &DeliveryStreamConfig,
    context: &DestinationContext,
    shared: &Shared,
) -> Option<Box<dyn Destination>> {
    let mut attempt = 0u32;
    loop {
        match destinations::build(&config.destination, context).await {
            Ok(d) => {
                if attempt > 0 {
                    tracing::info!(delivery_stream = %shared.name, "destination set up");
                    shared
                        .status
                        .update(|s| s.state = DeliveryState::Delivering);
                }
                return Some(d);
            }
            Err(error) => {
                attempt += 1;
                if attempt == 1 {
                    tracing::warn!(delivery_stream = %shared.name, %error, "cannot set up the destination; retrying, records stay in the shard log");
                }
                shared.set_error(DeliveryState::Failing, &error.to_string());
                if shared.sleep(backoff::after_error(attempt)).await {
                    return None;
                }
            }
        }
    }
}

/// Processes a batch, sends it until confirmed (retrying as its errors say), and routes
/// failed records to the error output.
async fn deliver_batch(
    batch: Batch,
    processors: Arc<Processors>,
    destination: Arc<dyn Destination>,
    shared: Shared,
) -> Result<Delivered, Stopped> {
    let read_records = batch.records.len() as u64;
    let mut batch = batch;
    if !processors.is_empty() {
        let records = std::mem::take(&mut batch.records);
        let processed = processors.apply(records).await;
        batch.records = processed.records;
        if processed.dropped > 0 {
            shared
                .status
                .update(|s| s.dropped_records += processed.dropped);
        }
        if !processed.failed.is_empty() {
            let errors = ErrorBatch {
                delivery_stream: batch.delivery_stream.clone(),
                id: format!("{}-processing", batch.id),
                created_ms: batch.created_ms,
                kind: ErrorOutputType::ProcessingFailed,
                records: processed.failed,
            };
            write_errors(&errors, destination.as_ref(), &shared).await?;
        }
    }
    let delivered_bytes = batch.data_bytes();
    if batch.records.is_empty() {
        return Ok(Delivered {
            records: read_records,
            bytes: 0,
        });
    }
    let started = Instant::now();
    let mut errors_since: Option<Instant> = None;
    let mut error_attempts = 0u32;
    let mut attempts = 0u32;
    let mut last_summary = Instant::now();
    let mut problem: Option<DeliveryState> = None;
    loop {
        if shared.stopping() {
            return Err(Stopped);
        }
        if destination.uses_network() {
            shared
                .bandwidth
                .acquire(shared.priority, batch.data_bytes())
                .await;
        }
        attempts += 1;
        let result = destination.deliver(&batch).await;
        let error = match result {
            Ok(()) => {
                if let Some(state) = problem {
                    tracing::info!(
                        delivery_stream = %shared.name,
                        after = ?started.elapsed(),
                        attempts,
                        "the destination confirmed again (was {}); delivering",
                        state.as_str()
                    );
                }
                shared
                    .status
                    .update(|s| s.state = DeliveryState::Delivering);
                return Ok(Delivered {
                    records: read_records,
                    bytes: delivered_bytes,
                });
            }
            Err(error) => error,
        };
        shared.status.update(|s| s.retries += 1);
        // Only the records the destination did not confirm are sent again (or given up on).
        if let DeliveryError::Partial { failed, .. } = &error {
            let keep: std::collections::HashSet<usize> = failed.iter().copied().collect();
            let records = std::mem::take(&mut batch.records);
            batch.records = records
                .into_iter()
                .enumerate()
                .filter(|(i, _)| keep.contains(i))
                .map(|(_, r)| r)
                .collect();
            if batch.records.is_empty() {
                return Ok(Delivered {
                    records: read_records,
                    bytes: delivered_bytes,
                });
            }
        }
        let (state, wait) = match &error {
            DeliveryError::Unreachable(_) => {
                (DeliveryState::BackingOff, backoff::while_unreachable())
            }
            DeliveryError::Retryable(_) | DeliveryError::Partial { .. } => {
                error_attempts += 1;
                let since = *errors_since.get_or_insert_with(Instant::now);
                let expired = destination
                    .retry_duration()
                    .is_some_and(|limit| since.elapsed() >= limit);
                if expired {
                    give_up(&mut batch, &error, attempts, destination.as_ref(), &shared).await?;
                    return Ok(Delivered {
                        records: read_records,
                        bytes: delivered_bytes,
                    });
                }
                (DeliveryState::Failing, backoff::after_error(error_attempts))
            }
            DeliveryError::Permanent(_) => {
                give_up(&mut batch, &error, attempts, destination.as_ref(), &shared).await?;
                return Ok(Delivered {
                    records: read_records,
                    bytes: delivered_bytes,
                });
            }
        };
        shared.set_error(
            state,
            &format!("{} {}: {error}", destination.kind(), destination.describe()),
        );
        if problem != Some(state) {
            tracing::warn!(
                delivery_stream = %shared.name,
                destination = %destination.describe(),
                %error,
                "delivery failed ({}); retrying, records stay in the shard log",
                state.as_str()
            );
            problem = Some(state);
            last_summary = Instant::now();
        } else if last_summary.elapsed() >= SUMMARY_EVERY {
            tracing::warn!(
                delivery_stream = %shared.name,
                attempts,
                since = ?started.elapsed(),
                %error,
                "still {}",
                state.as_str()
            );
            last_summary = Instant::now();
        }
        if shared.sleep(wait).await {
            return Err(Stopped);
        }
    }
}

/// Sends the batch's records to the error output after the destination gave up on them.
async fn give_up(
    batch: &mut Batch,
    error: &DeliveryError,
    attempts: u32,
    destination: &dyn Destination,
    shared: &Shared,
) -> Result<(), Stopped> {
    let code = match error {
        DeliveryError::Permanent(_) => "Delivery.PermanentFailure",
        _ => "Delivery.RetriesExhausted",
    };
    tracing::warn!(
        delivery_stream = %shared.name,
        records = batch.records.len(),
        %error,
        "giving up on a batch; its records go to the error output"
    );
    shared.note_error(&format!(
        "{} {}: gave up on {} records after {attempts} attempts: {error}",
        destination.kind(),
        destination.describe(),
        batch.records.len()
    ));
    let failed: Vec<FailedRecord> = std::mem::take(&mut batch.records)
        .into_iter()
        .map(|record| FailedRecord {
            record,
            error_code: code.to_owned(),
            error_message: error.to_string(),
            attempts,
        })
        .collect();
    let errors = ErrorBatch {
        delivery_stream: batch.delivery_stream.clone(),
        id: batch.id.clone(),
        created_ms: batch.created_ms,
        kind: destination.failure_type(),
        records: failed,
    };
    write_errors(&errors, destination, shared).await
}

/// Error output: the destination's own, else the dead-letter directory; retried until one
/// of them takes the records (they are never dropped).
async fn write_errors(
    errors: &ErrorBatch,
    destination: &dyn Destination,
    shared: &Shared,
) -> Result<(), Stopped> {
    let count = errors.records.len() as u64;
    let mut attempt = 0u32;
    loop {
        let own = match destination.deliver_errors(errors).await {
            Ok(true) => true,
            Ok(false) => false,
            Err(error) => {
                tracing::warn!(delivery_stream = %shared.name, %error, "the destination's error output failed; using the dead-letter directory");
                false
            }
        };
        if own {
            break;
        }
        let dead_letter = shared.dead_letter.clone();
        let copy = errors.clone();
        let written = tokio::task::spawn_blocking(move || dead_letter.write(&copy, now_ms())).await;
        match written {
            Ok(Ok(path)) => {
                tracing::warn!(delivery_stream = %shared.name, records = count, kind = errors.kind.as_str(), file = %path.display(), "records written to the dead-letter directory");
                break;
            }
            Ok(Err(error)) => {
                attempt += 1;
                shared.set_error(
                    DeliveryState::Failing,
                    &format!("cannot write the dead-letter directory: {error}"),
                );
                if shared.sleep(backoff::after_error(attempt)).await {
                    return Err(Stopped);
                }
            }
            Err(_) => return Err(Stopped),
        }
    }
    shared.status.update(|s| s.failed_records += count);
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The retry logic of one batch, against a scripted destination (the real destinations
    //! are tested against real servers in their own tests and in tests/interop).

    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use async_trait::async_trait;
    use bytes::Bytes;

    use super::*;
    use crate::delivery::destinations::BatchLimits;

    struct Scripted {
        answers: Mutex<Vec<Result<(), DeliveryError>>>,
        seen: Mutex<Vec<Vec<String>>>,
        retry: Option<Duration>,
        network: bool,
    }

    #[async_trait]
    impl Destination for Scripted {
        fn kind(&self) -> &'static str {
            "scripted"
        }
        fn describe(&self) -> String {
            "scripted".into()
        }
        fn limits(&self) -> BatchLimits {
            BatchLimits {
                max_bytes: 1 << 20,
                max_records: 100,
            }
        }
        fn retry_duration(&self) -> Option<Duration> {
            self.retry
        }
        fn uses_network(&self) -> bool {
            self.network
        }
        fn failure_type(&self) -> ErrorOutputType {
            ErrorOutputType::KinesisFailed
        }
        async fn deliver(&self, batch: &Batch) -> Result<(), DeliveryError> {
            self.seen.lock().unwrap().push(
                batch
                    .records
                    .iter()
                    .map(|r| String::from_utf8_lossy(&r.data).into_owned())
                    .collect(),
            );
            let mut answers = self.answers.lock().unwrap();
            if answers.is_empty() {
                Ok(())
            } else {
                answers.remove(0)
            }
        }
    }

    fn batch(n: usize) -> Batch {
        Batch {
            delivery_stream: "d".into(),
            id: "b1".into(),
            created_ms: 1_700_000_000_000,
            formed_ms: 1_700_000_000_000,
            compression: crate::delivery::config::Compression::None,
            records: (0..n)
                .map(|i| DeliveryRecord {
                    data: Bytes::from(format!("r{i}")),
                    partition_key: "k".into(),
                    sequence_number: i.to_string(),
                    arrival_ms: 1,
                    partition_values: Arc::new(BTreeMap::new()),
                })
                .collect(),
        }
    }

    fn shared(dir: &std::path::Path) -> (Shared, watch::Sender<bool>) {
        let (stop, stop_rx) = watch::channel(false);
        let shared = Shared {
            name: "d".into(),
            priority: 5,
            status: Arc::new(StatusCell::default()),
            bandwidth: Arc::new(Bandwidth::new(0)),
            dead_letter: DeadLetter::new(dir.to_path_buf()),
            stop: stop_rx,
        };
        (shared, stop)
    }

    fn dead_letters(dir: &std::path::Path) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let text = std::fs::read_to_string(&path).unwrap();
                    out.extend(text.lines().map(|l| serde_json::from_str(l).unwrap()));
                }
            }
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn partial_failure_sends_only_the_unconfirmed_records_again() {
        let dir = tempfile::tempdir().unwrap();
        let (shared, _stop) = shared(dir.path());
        let destination = Arc::new(Scripted {
            answers: Mutex::new(vec![Err(DeliveryError::Partial {
                failed: vec![1],
                message: "throttled".into(),
            })]),
            seen: Mutex::new(Vec::new()),
            retry: None,
            network: true,
        });
        let processors = Arc::new(Processors::new(&[], reqwest::Client::new(), "arn").unwrap());
        let delivered = deliver_batch(batch(3), processors, destination.clone(), shared.clone())
            .await
            .ok()
            .unwrap();
        assert_eq!(delivered.records, 3);
        assert_eq!(
            *destination.seen.lock().unwrap(),
            vec![vec!["r0", "r1", "r2"], vec!["r1"]]
        );
        assert_eq!(shared.status.get().retries, 1);
        assert!(dead_letters(dir.path()).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn giving_up_after_a_partial_failure_keeps_confirmed_records_out_of_the_error_output() {
        let dir = tempfile::tempdir().unwrap();
        let (shared, _stop) = shared(dir.path());
        let destination = Arc::new(Scripted {
            answers: Mutex::new(vec![Err(DeliveryError::Partial {
                failed: vec![2],
                message: "invalid topic".into(),
            })]),
            seen: Mutex::new(Vec::new()),
            retry: Some(Duration::ZERO),
            network: true,
        });
        let processors = Arc::new(Processors::new(&[], reqwest::Client::new(), "arn").unwrap());
        deliver_batch(batch(3), processors, destination.clone(), shared.clone())
            .await
            .ok()
            .unwrap();
        let errors = dead_letters(dir.path());
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0]["rawData"], "cjI="); // "r2"
        assert_eq!(shared.status.get().failed_records, 1);
        assert!(shared.status.get().last_error.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn unreachable_is_retried_until_it_answers_and_stop_ends_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let (shared, stop) = shared(dir.path());
        let destination = Arc::new(Scripted {
            answers: Mutex::new(
                (0..5)
                    .map(|_| Err(DeliveryError::Unreachable("refused".into())))
                    .collect(),
            ),
            seen: Mutex::new(Vec::new()),
            retry: Some(Duration::from_secs(1)),
            network: true,
        });
        let processors = Arc::new(Processors::new(&[], reqwest::Client::new(), "arn").unwrap());
        // An outage does not use up the retry duration: delivered after 5 refusals.
        let started = tokio::time::Instant::now();
        deliver_batch(
            batch(2),
            processors.clone(),
            destination.clone(),
            shared.clone(),
        )
        .await
        .ok()
        .unwrap();
        assert_eq!(destination.seen.lock().unwrap().len(), 6);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "retried about every second"
        );
        assert!(dead_letters(dir.path()).is_empty());
        assert_eq!(shared.status.get().state, DeliveryState::Delivering);

        // While it is unreachable, stopping the gateway ends the retries without a verdict.
        destination
            .answers
            .lock()
            .unwrap()
            .extend((0..1000).map(|_| Err(DeliveryError::Unreachable("refused".into()))));
        let task = tokio::spawn(deliver_batch(
            batch(1),
            processors,
            destination,
            shared.clone(),
        ));
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(shared.status.get().state, DeliveryState::BackingOff);
        stop.send(true).unwrap();
        assert!(task.await.unwrap().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn the_bandwidth_cap_holds_back_network_destinations_only() {
        let dir = tempfile::tempdir().unwrap();
        let processors = Arc::new(Processors::new(&[], reqwest::Client::new(), "arn").unwrap());
        for network in [true, false] {
            let (mut shared, _stop) = shared(dir.path());
            shared.bandwidth = Arc::new(Bandwidth::new(10)); // 10 bytes/s
            let destination = Arc::new(Scripted {
                answers: Mutex::new(Vec::new()),
                seen: Mutex::new(Vec::new()),
                retry: None,
                network,
            });
            let started = tokio::time::Instant::now();
            for _ in 0..3 {
                // 10 records of 2 bytes: 20 bytes, 2 s of the cap each
                deliver_batch(
                    batch(10),
                    processors.clone(),
                    destination.clone(),
                    shared.clone(),
                )
                .await
                .ok()
                .unwrap();
            }
            let took = started.elapsed();
            if network {
                assert!(
                    took >= Duration::from_secs(3),
                    "network destination: {took:?}"
                );
            } else {
                assert!(
                    took < Duration::from_millis(100),
                    "local directory: {took:?}"
                );
            }
        }
    }
}
