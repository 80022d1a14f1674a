//! The runner's checkpoints: where a delivery stream starts in new shards, the checkpoints
//! of a confirmed batch (committed alone or with the next batch's plan), and what status shows
//! of them.
//!
//! Invariant: a checkpoint is committed only after the destination confirmed every record
//! up to it (or the error output took them).

use std::collections::HashMap;

use tokio::task::JoinHandle;

use super::buffer::Buffer;
use super::send::{Delivered, Shared, Stopped};
use crate::delivery::checkpoint::{self, DeliveryCheckpoint};
use crate::delivery::sources::shard::{Cursor, ShardSource};
use crate::delivery::status::{DeliveryState, ShardProgress, StatusCell};
use crate::storage::Store;

/// A batch on its way, with the checkpoints to save when it is confirmed.
pub(super) struct InFlight {
    pub(super) task: JoinHandle<Result<Delivered, Stopped>>,
    pub(super) marks: Vec<(u64, Cursor)>,
    pub(super) oldest_ms: Option<u64>,
}

/// Matches the cursors with the source's shards and saves where a new delivery stream or a
/// new shard starts. False when the checkpoints cannot be saved (the gateway is stopping).
pub(super) async fn refresh_source(
    name: &str,
    source: &mut ShardSource,
    saved: &mut Option<HashMap<u64, DeliveryCheckpoint>>,
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
pub(super) async fn finish(flight: InFlight, store: &Store, shared: &Shared) -> bool {
    let InFlight { task, marks, .. } = flight;
    let result = task.await;
    record_outcome(result, marks, store, shared).await
}

pub(super) async fn record_outcome(
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
pub(super) async fn save_before_sending(
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
pub(super) fn confirmed(
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
pub(super) async fn save_checkpoints(
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
pub(super) fn publish_delivered(delivered: Delivered, marks: &[(u64, Cursor)], shared: &Shared) {
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
pub(super) fn publish_cursors(status: &StatusCell, source: &ShardSource) {
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

pub(super) fn publish_pending(status: &StatusCell, buffer: &Buffer, in_flight: Option<&InFlight>) {
    let oldest = match (buffer.oldest_ms, in_flight.and_then(|f| f.oldest_ms)) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    status.update(|s| s.oldest_pending_ms = oldest);
}
