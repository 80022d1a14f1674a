//! Sending one batch: processors, the bandwidth cap, attempts until the destination confirms
//! (the policy is `delivery::retry`), and the error output for what it gave up on. Also what
//! every sender of one delivery stream shares ([`Shared`]), which camera video uploads use too.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::delivery::backoff;
use crate::delivery::bandwidth::Bandwidth;
use crate::delivery::batch::{Batch, ErrorBatch, ErrorOutputType, FailedRecord};
use crate::delivery::config::DeliveryStreamConfig;
use crate::delivery::dead_letter::DeadLetter;
use crate::delivery::destinations::{self, DeliveryError, Destination, DestinationContext};
use crate::delivery::processors::Processors;
use crate::delivery::retry::{give_up_code, Attempts, Next};
use crate::delivery::status::{rfc3339, DeliveryState, LastError, StatusCell};
use crate::storage::now_ms;

/// The gateway is stopping; what was being sent was not (fully) confirmed.
pub(crate) struct Stopped;

/// A confirmed batch: records read from the source, bytes delivered.
pub(super) struct Delivered {
    pub(super) records: u64,
    pub(super) bytes: u64,
}

/// What the delivery tasks of one stream share.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) name: String,
    pub(crate) priority: u8,
    pub(crate) status: Arc<StatusCell>,
    pub(crate) bandwidth: Arc<Bandwidth>,
    pub(crate) dead_letter: DeadLetter,
    pub(crate) stop: watch::Receiver<bool>,
}

impl Shared {
    pub(crate) fn set_error(&self, state: DeliveryState, message: &str) {
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
    pub(crate) fn note_error(&self, message: &str) {
        let at_ms = now_ms();
        self.status.update(|s| {
            s.last_error = Some(LastError {
                message: message.to_owned(),
                at: rfc3339(at_ms),
                at_ms,
            });
        });
    }

    pub(crate) fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    pub(crate) async fn sleep(&self, d: Duration) -> bool {
        let mut stop = self.stop.clone();
        sleep_or_stop(&mut stop, d).await
    }
}

pub(super) async fn sleep_or_stop(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

pub(super) async fn build_destination(
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
pub(super) async fn deliver_batch(
    batch: Batch,
    processors: Arc<Processors>,
    destination: Arc<dyn Destination>,
    shared: Shared,
) -> Result<Delivered, Stopped> {
    let read_records = batch.records.len() as u64;
    let mut batch = process(batch, &processors, destination.as_ref(), &shared).await?;
    let delivered = Delivered {
        records: read_records,
        bytes: batch.data_bytes(),
    };
    if batch.records.is_empty() {
        return Ok(Delivered {
            bytes: 0,
            ..delivered
        });
    }
    let mut attempts = Attempts::new();
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
        attempts.begin();
        let error = match destination.deliver(&batch).await {
            Ok(()) => {
                attempts.log_recovered(&shared.name);
                shared
                    .status
                    .update(|s| s.state = DeliveryState::Delivering);
                return Ok(delivered);
            }
            Err(error) => error,
        };
        shared.status.update(|s| s.retries += 1);
        // Only the records the destination did not confirm are sent again (or given up on).
        if let DeliveryError::Partial { failed, .. } = &error {
            keep_only(&mut batch, failed);
            if batch.records.is_empty() {
                return Ok(delivered);
            }
        }
        match attempts.after(&error, destination.retry_duration()) {
            Next::GiveUp => {
                give_up(
                    &mut batch,
                    &error,
                    attempts.count(),
                    destination.as_ref(),
                    &shared,
                )
                .await?;
                return Ok(delivered);
            }
            Next::Retry { state, wait } => {
                let target = destination.describe();
                shared.set_error(state, &format!("{} {target}: {error}", destination.kind()));
                attempts.log_retry(
                    &shared.name,
                    &target,
                    &error,
                    state,
                    "records stay in the shard log",
                );
                if shared.sleep(wait).await {
                    return Err(Stopped);
                }
            }
        }
    }
}

/// Runs the processors; what they fail goes to the error output at once.
async fn process(
    mut batch: Batch,
    processors: &Processors,
    destination: &dyn Destination,
    shared: &Shared,
) -> Result<Batch, Stopped> {
    if processors.is_empty() {
        return Ok(batch);
    }
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
        write_errors(&errors, destination, shared).await?;
    }
    Ok(batch)
}

/// Keeps the records at the indexes `failed` (in order).
fn keep_only(batch: &mut Batch, failed: &[usize]) {
    let keep: std::collections::HashSet<usize> = failed.iter().copied().collect();
    let records = std::mem::take(&mut batch.records);
    batch.records = records
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep.contains(i))
        .map(|(_, r)| r)
        .collect();
}

/// Sends the batch's records to the error output after the destination gave up on them.
async fn give_up(
    batch: &mut Batch,
    error: &DeliveryError,
    attempts: u32,
    destination: &dyn Destination,
    shared: &Shared,
) -> Result<(), Stopped> {
    let code = give_up_code(error);
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
pub(crate) async fn write_errors(
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
