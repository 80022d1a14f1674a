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
//!
//! `buffer` holds the next batch, `send` sends one batch until confirmed (with the engine's
//! retry policy, `delivery::retry`), `checkpoints` commits what was confirmed; this module is
//! the loop that drives them ([`Runner::step`]).

mod buffer;
mod checkpoints;
pub(crate) mod send;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::bandwidth::Bandwidth;
use super::batch::Batch;
use super::checkpoint::{self, DeliveryCheckpoint};
use super::config::{DeliveryStreamConfig, SourceConfig, StartPosition};
use super::dead_letter::DeadLetter;
use super::destinations::{Destination, DestinationContext};
use super::plan;
use super::processors::Processors;
use super::sources::shard::{ReadOutcome, ShardSource};
use super::status::{DeliveryState, StatusCell};
use crate::storage::{now_ms, Store};
use buffer::Buffer;
use checkpoints::{
    finish, publish_cursors, publish_pending, record_outcome, refresh_source, save_before_sending,
    InFlight,
};
use send::{build_destination, deliver_batch, sleep_or_stop, Shared};

/// How often the runner looks for new shards or a source stream that appeared.
const REFRESH: Duration = Duration::from_secs(1);
/// How long the runner waits after the source could not be read.
const READ_ERROR_PAUSE: Duration = Duration::from_secs(5);

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

/// Runs a delivery stream until it is stopped.
pub async fn run(parts: RunnerParts) {
    let Some(mut runner) = Runner::start(parts).await else {
        return;
    };
    while let Flow::Continue = runner.step().await {}
    runner.stop().await;
}

/// Whether the loop goes on.
enum Flow {
    Continue,
    Stop,
}

/// A running delivery stream: its source, the batch being buffered and the one on its way.
struct Runner {
    name: String,
    config: DeliveryStreamConfig,
    store: Store,
    status: Arc<StatusCell>,
    stop: watch::Receiver<bool>,
    shared: Shared,
    source: ShardSource,
    /// The committed checkpoints, until the source matched them with its shards.
    saved: Option<HashMap<u64, DeliveryCheckpoint>>,
    paused_logged: bool,
    destination: Arc<dyn Destination>,
    processors: Arc<Processors>,
    max_bytes: u64,
    max_records: usize,
    interval_ms: u64,
    buffer: Buffer,
    in_flight: Option<InFlight>,
    last_refresh: Instant,
}

impl Runner {
    /// Reads the checkpoints, matches them with the source and sets up the destination and
    /// processors; `None` when stopped first or when it cannot deliver at all.
    async fn start(parts: RunnerParts) -> Option<Runner> {
        let RunnerParts {
            config,
            store,
            context,
            bandwidth,
            dead_letter,
            status,
            stop,
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
        let mut saved = Some(load_saved(&store, &name, &mut source).await?);
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
            return None;
        }
        let destination: Arc<dyn Destination> =
            Arc::from(build_destination(&config, &context, &shared).await?);
        let processors = processors(&config, &context, &shared)?;
        let limits = destination.limits();
        Some(Runner {
            max_bytes: config.buffer.size_bytes.min(limits.max_bytes).max(1),
            max_records: limits.max_records.max(1),
            interval_ms: u64::from(config.buffer.interval_s) * 1000,
            name,
            config,
            store,
            status,
            stop,
            shared,
            source,
            saved,
            paused_logged,
            destination,
            processors,
            buffer: Buffer::new(),
            in_flight: None,
            last_refresh: Instant::now(),
        })
    }

    /// One turn: refresh the shards when due, read while there is room, send a batch when it
    /// is due, else wait for something to happen.
    async fn step(&mut self) -> Flow {
        if *self.stop.borrow() {
            return Flow::Stop;
        }
        if self.last_refresh.elapsed() >= REFRESH {
            self.last_refresh = Instant::now();
            if !self.refresh().await {
                return Flow::Stop;
            }
        }
        let Some(more) = self.read().await else {
            if sleep_or_stop(&mut self.stop, READ_ERROR_PAUSE).await {
                return Flow::Stop;
            }
            return Flow::Continue;
        };
        publish_cursors(&self.status, &self.source);
        publish_pending(&self.status, &self.buffer, self.in_flight.as_ref());

        let full = self.is_full();
        let deadline = self.buffer.oldest_ms.map(|o| o + self.interval_ms);
        // A replayed batch is cut where its plan ends (or where it is full), not by time.
        let replayed = self.source.replaying() && self.source.replay_complete();
        if replayed && self.buffer.is_empty() {
            self.source.end_replay(); // its records were trimmed meanwhile
        }
        let due = !self.buffer.is_empty()
            && if self.source.replaying() {
                full || replayed
            } else {
                full || deadline.is_some_and(|d| now_ms() >= d)
            };
        // Also a batch of no records when only lost-record markers moved: they are saved
        // without waiting for records.
        let only_losses = self.buffer.is_empty() && self.source.has_dirty();
        if due || (!more && only_losses) {
            return self.send(replayed).await;
        }
        if more && !full {
            return Flow::Continue;
        }
        self.wait(full, deadline).await
    }

    async fn refresh(&mut self) -> bool {
        refresh_source(
            &self.name,
            &mut self.source,
            &mut self.saved,
            &self.store,
            &self.status,
            &mut self.paused_logged,
        )
        .await
    }

    fn is_full(&self) -> bool {
        self.buffer.bytes >= self.max_bytes || self.buffer.len >= self.max_records
    }

    /// Reads into the buffer while there is room; whether more records wait (`None` when the
    /// source could not be read).
    async fn read(&mut self) -> Option<bool> {
        if self.is_full() {
            return Some(false);
        }
        let read = self
            .source
            .read(
                self.max_records - self.buffer.len,
                self.max_bytes - self.buffer.bytes,
            )
            .await;
        match read {
            Ok(outcome) => Some(self.take(outcome)),
            Err(error) => {
                tracing::error!(delivery_stream = %self.name, %error, "cannot read the source");
                self.shared.set_error(
                    DeliveryState::Failing,
                    &format!("reading the source: {error}"),
                );
                None
            }
        }
    }

    /// Buffers what was read (and logs what retention took first); whether more wait.
    fn take(&mut self, outcome: ReadOutcome) -> bool {
        for lost in &outcome.lost {
            tracing::warn!(
                delivery_stream = %self.name,
                stream = self.source.stream(),
                shard = lost.shard_index,
                records = lost.records,
                after_sequence = %lost.after,
                through_sequence = %lost.through,
                "retention or a quota trimmed records before they were delivered"
            );
        }
        self.buffer.bytes += outcome.bytes;
        for (shard_index, record) in outcome.records {
            self.buffer.push(shard_index, record);
        }
        outcome.more
    }

    /// Forms the batch and sends it, after the previous one was confirmed and this one's plan
    /// committed.
    async fn send(&mut self, replayed: bool) -> Flow {
        let marks = self.source.take_dirty();
        let formed = std::mem::replace(&mut self.buffer, Buffer::new());
        let plan_rows = if formed.is_empty() {
            Vec::new()
        } else {
            plan::rows(&self.source.cursors)
        };
        if replayed {
            self.source.end_replay();
        }
        // One batch at a time on the wire: wait for the previous one; its checkpoints and this
        // batch's plan are committed together, before this batch is sent.
        let previous = self.in_flight.take();
        if !save_before_sending(previous, plan_rows, &self.store, &self.shared).await {
            return Flow::Stop;
        }
        let oldest_ms = formed.oldest_ms;
        let (id, records) = formed.into_batch_parts(&self.name);
        let batch = Batch {
            delivery_stream: self.name.clone(),
            id,
            created_ms: oldest_ms.unwrap_or_else(now_ms),
            formed_ms: now_ms(),
            compression: self.config.compression,
            records,
        };
        let task = tokio::spawn(deliver_batch(
            batch,
            self.processors.clone(),
            self.destination.clone(),
            self.shared.clone(),
        ));
        self.in_flight = Some(InFlight {
            task,
            marks,
            oldest_ms,
        });
        publish_pending(&self.status, &self.buffer, self.in_flight.as_ref());
        Flow::Continue
    }

    /// Nothing to do until records arrive, the batch in flight ends, the buffer is due, the
    /// refresh tick, or stop.
    async fn wait(&mut self, full: bool, deadline: Option<u64>) -> Flow {
        let wait_until = match deadline {
            Some(d) if !self.buffer.is_empty() => {
                Duration::from_millis(d.saturating_sub(now_ms())).min(REFRESH)
            }
            _ => REFRESH,
        };
        let watchers = if full {
            Some(Vec::new())
        } else {
            self.source.watchers()
        };
        let Some(watchers) = watchers else {
            return Flow::Continue; // records are already waiting
        };
        let new_records = any_change(watchers);
        let Some(flight) = self.in_flight.as_mut() else {
            tokio::select! {
                _ = new_records => {}
                _ = tokio::time::sleep(wait_until) => {}
                _ = self.stop.changed() => {}
            }
            return Flow::Continue;
        };
        tokio::select! {
            result = &mut flight.task => {
                let marks = self.in_flight.take().map(|f| f.marks).unwrap_or_default();
                if !record_outcome(result, marks, &self.store, &self.shared).await {
                    return Flow::Stop;
                }
            }
            _ = new_records => {}
            _ = tokio::time::sleep(wait_until) => {}
            _ = self.stop.changed() => {}
        }
        Flow::Continue
    }

    /// Stopping: a batch on its way is given the chance to finish its current attempt;
    /// whatever is not confirmed is read again from the checkpoints next time.
    async fn stop(mut self) {
        if let Some(flight) = self.in_flight.take() {
            let _ = finish(flight, &self.store, &self.shared).await;
        }
        self.destination.close().await;
        self.status.update(|s| {
            s.state = DeliveryState::Paused;
            s.paused_reason = Some("stopped".into());
        });
    }
}

/// The committed checkpoints; the plan of the batch that may have been on its way goes to
/// the source, to form it again.
async fn load_saved(
    store: &Store,
    name: &str,
    source: &mut ShardSource,
) -> Option<HashMap<u64, DeliveryCheckpoint>> {
    let loaded = {
        let (store, key) = (store.clone(), name.to_owned());
        tokio::task::spawn_blocking(move || checkpoint::load(&store, &key)).await
    };
    match loaded {
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
            None
        }
        Err(_) => None,
    }
}

fn processors(
    config: &DeliveryStreamConfig,
    context: &DestinationContext,
    shared: &Shared,
) -> Option<Arc<Processors>> {
    match Processors::new(
        &config.processors,
        context.http.clone(),
        &context.source_arn,
    ) {
        Ok(p) => Some(Arc::new(p)),
        Err(error) => {
            // check-config refuses these; an API-created stream could still carry one.
            shared.set_error(DeliveryState::Failing, &format!("processors: {error}"));
            tracing::error!(delivery_stream = %shared.name, %error, "cannot set up processors; not delivering");
            None
        }
    }
}

/// Resolves when any of the shards' watchers sees a change (never without watchers).
async fn any_change(watchers: Vec<watch::Receiver<crate::streams::Position>>) {
    if watchers.is_empty() {
        std::future::pending::<()>().await;
    }
    let changes = watchers.into_iter().map(|mut rx| {
        Box::pin(async move {
            let _ = rx.changed().await;
        })
    });
    futures_util::future::select_all(changes).await;
}
