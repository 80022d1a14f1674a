//! One running application: read, process, and commit output with the checkpoint (what
//! goes where: `sink`).
//!
//! The loop: read a chunk of every readable input shard and run it through the engine (on a
//! blocking thread); hand MQTT and print results out at once (at-least-once: after a crash
//! they are produced again from the last checkpoint); keep Kinesis/Firehose results and error
//! records pending; then commit the pending records together with the checkpoint (cursors and
//! engine state) in one store transaction: exactly once. It commits when the input is caught
//! up, every `COMMIT_EVERY` under a backlog, and when `PENDING_BYTES` are waiting; with no
//! output it checkpoints every `CHECKPOINT_EVERY` (only replay time is at stake).
//!
//! A commit that fails (a full disk, a quota) is retried with the same records and the same
//! checkpoint, and nothing more is read until it succeeds: nothing is lost or doubled.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::checkpoint::{fingerprint, Checkpoint, CheckpointRef};
use super::engine::{Counters, Engine, ErrorRecord};
use super::reader::StreamReader;
use super::sink::{route, Pending};
use crate::analytics::ops::{OutRow, Output};
use crate::analytics::service::ApplicationState;
use crate::analytics::sql::parse_script;
use crate::analytics::sql::plan::{self, SinkKind};
use crate::ingest::mqtt::Broker;
use crate::storage::{AdminOp, CheckpointOp, NewRecord, Store, StoreError, StreamSpec};
use crate::streams::{OnFull, Position, StreamMode};

const COMMIT_EVERY: Duration = Duration::from_millis(200);
const CHECKPOINT_EVERY: Duration = Duration::from_secs(60);
const PENDING_BYTES: usize = 4 * 1024 * 1024;
/// Records read per shard per step.
const READ_RECORDS: usize = 1_024;
/// A step holds what it read, decoded (about twice the bytes): with a worker per core, at most
/// two steps' reads are in memory. 256 KiB keeps that under ~1 MiB when every application is
/// behind at once (their windows fire together), and still amortises a step's fixed cost.
const READ_BYTES: usize = 256 * 1024;
/// Wake up this often without new records: idle shards (whose timeout is seconds) ...
const TICK: Duration = Duration::from_secs(1);
/// ... and processing-time windows, which fire on the clock.
const PROCTIME_TICK: Duration = Duration::from_millis(200);
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// What `/analytics/{name}` shows of a running application.
#[derive(Debug, Clone, Default)]
pub struct LiveStatus {
    pub state: Option<ApplicationState>,
    pub error: Option<String>,
    pub counters: Counters,
    pub watermark: Option<i64>,
    pub input_lag_ms: Option<u64>,
    pub state_entries: usize,
    pub state_overflows: u64,
    pub commits: u64,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
}

pub type SharedStatus = Arc<Mutex<LiveStatus>>;

pub struct AppContext {
    pub name: String,
    pub sql: String,
    pub max_state_keys: usize,
    pub store: Store,
    pub broker: Option<Broker>,
    pub status: SharedStatus,
    pub stop: watch::Receiver<bool>,
    /// Shared by all applications: how many compute at once.
    pub workers: Arc<tokio::sync::Semaphore>,
}

/// The stream an application's error records go to.
pub fn error_stream(name: &str) -> String {
    format!("{name}-errors")
}

pub fn consumer(name: &str) -> String {
    format!("{}{name}", crate::analytics::CONSUMER_PREFIX)
}

/// Runs until stopped (Ok) or failed (the reason).
pub async fn run(ctx: AppContext) {
    let outcome = run_inner(&ctx).await;
    let mut status = ctx.status.lock().unwrap_or_else(|p| p.into_inner());
    match outcome {
        Ok(()) => {
            status.state = Some(ApplicationState::Stopped);
        }
        Err(error) => {
            tracing::warn!(application = %ctx.name, %error, "analytics application failed");
            status.state = Some(ApplicationState::Failed);
            status.error = Some(error);
        }
    }
}

struct Working {
    engine: Engine,
    /// One per input table (the source; a window join's right side).
    readers: Vec<StreamReader>,
}

impl Working {
    /// (input, shard uid) of every shard being read.
    fn open_shards(&self) -> Vec<(usize, u64)> {
        self.readers
            .iter()
            .enumerate()
            .flat_map(|(i, r)| {
                r.cursors
                    .iter()
                    .filter(|(_, c)| !c.exhausted)
                    .map(move |(u, _)| (i, *u))
            })
            .collect()
    }
}

struct Step {
    /// (input, shard uid) of the shards that gave records in this step.
    active: Vec<(usize, u64)>,
    rows: Vec<OutRow>,
    errors: Vec<ErrorRecord>,
    more: bool,
    records: usize,
    newest_arrival: Option<u64>,
}

async fn run_inner(ctx: &AppContext) -> Result<(), String> {
    let script = parse_script(&ctx.sql).map_err(|e| e.to_string())?;
    let plan = plan::plan(&script, ctx.max_state_keys, false).map_err(|e| e.to_string())?;
    // The parsed SQL (tens of KB) is not needed once planned; an application runs for months.
    drop(script);
    let sink = plan
        .sink
        .clone()
        .ok_or("an application needs INSERT INTO")?;
    let inputs: Vec<String> = plan.inputs().iter().map(|s| s.stream.clone()).collect();
    let out_stream = match &sink.kind {
        SinkKind::Kinesis { stream } => Some(stream.clone()),
        SinkKind::Firehose { delivery_stream } => Some(
            crate::delivery::config::direct_put_stream_name(delivery_stream),
        ),
        _ => None,
    };
    {
        let mut status = ctx.status.lock().unwrap_or_else(|p| p.into_inner());
        status.inputs = inputs.clone();
        status.outputs = out_stream
            .iter()
            .cloned()
            .chain(match &sink.kind {
                SinkKind::Mqtt { topic } => Some(format!("mqtt:{topic}")),
                _ => None,
            })
            .collect();
        status.state = Some(ApplicationState::Running);
    }
    if let SinkKind::Kinesis { stream } = &sink.kind {
        ensure_stream(&ctx.store, stream)
            .await
            .map_err(|e| format!("cannot create output stream {stream}: {e}"))?;
    }
    if let SinkKind::Firehose { delivery_stream } = &sink.kind {
        let backing = crate::delivery::config::direct_put_stream_name(delivery_stream);
        if ctx.store.catalog().stream(&backing).is_none() {
            return Err(format!("delivery stream {delivery_stream} does not exist or is not a DirectPut delivery stream"));
        }
    }
    if matches!(sink.kind, SinkKind::Mqtt { .. }) && ctx.broker.is_none() {
        return Err("the mqtt sink needs the MQTT broker ([mqtt] is disabled)".into());
    }
    // An input stream may be created later: wait for it, saying so.
    let mut stop = ctx.stop.clone();
    while let Some(missing) = inputs
        .iter()
        .find(|i| ctx.store.catalog().stream(i).is_none())
    {
        set_error(
            ctx,
            Some(format!(
                "waiting for input stream {missing}, which does not exist"
            )),
        );
        tokio::select! {
            _ = tokio::time::sleep(RETRY_EVERY) => {}
            _ = stop.changed() => return Ok(()),
        }
    }
    set_error(ctx, None);
    let stream_uids: Vec<u64> = inputs
        .iter()
        .map(|i| ctx.store.catalog().stream(i).map(|m| m.uid).unwrap_or(0))
        .collect();
    let fp = fingerprint(&ctx.sql);
    let consumer = consumer(&ctx.name);
    let rows = {
        let store = ctx.store.clone();
        let consumer = consumer.clone();
        tokio::task::spawn_blocking(move || store.checkpoint_rows(&consumer))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?
    };
    let saved = Checkpoint::decode(rows)?;
    let mut working = Working {
        readers: plan
            .inputs()
            .iter()
            .map(|s| StreamReader::new(ctx.store.clone(), s.stream.clone(), s.start))
            .collect(),
        engine: Engine::new(plan.clone()),
    };
    working.engine.lookup = plan
        .source
        .lookup
        .clone()
        .map(|l| super::lookup::Lookup::new(l, &ctx.store));
    let mut fresh = true;
    if let Some(saved) = saved {
        let same_inputs = saved.stream_uid == stream_uids[0]
            && stream_uids
                .get(1)
                .is_none_or(|u| *u == saved.right_stream_uid);
        if same_inputs {
            working.readers[0].cursors = saved.cursors;
            if let Some(right) = working.readers.get_mut(1) {
                right.cursors = saved.right_cursors;
            }
            fresh = false;
            if saved.fingerprint == fp {
                working.engine.restore(saved.engine);
            } else {
                tracing::warn!(application = %ctx.name, "the application's SQL changed: it goes on from its input positions with empty window state");
                working.engine.restore(super::engine::EngineState {
                    counters: saved.engine.counters,
                    ..Default::default()
                });
            }
            for (input, uid) in working.open_shards() {
                working.engine.register_shard(input, uid);
            }
        }
    }
    if fresh {
        for (input, reader) in working.readers.iter_mut().enumerate() {
            for uid in reader.discover() {
                working.engine.register_shard(input, uid);
            }
        }
    }
    let mut pending = Pending::new();
    // The first checkpoint fixes where reading starts (LATEST means "when it was created").
    let mut last_commit = if fresh {
        Instant::now()
            .checked_sub(CHECKPOINT_EVERY)
            .unwrap_or_else(Instant::now)
    } else {
        Instant::now()
    };
    let mut dirty = fresh;
    let mut receivers: HashMap<u64, watch::Receiver<Position>> = HashMap::new();
    let idle_timeout = match plan.idle_timeout_ms {
        0 => None,
        ms => Some(Duration::from_millis(ms)),
    };
    let mut last_data: HashMap<(usize, u64), Instant> = HashMap::new();
    loop {
        if *ctx.stop.borrow() {
            let (_, rows) = encode_checkpoint(working, fp, stream_uids.clone()).await?;
            commit(ctx, &mut pending, rows, &consumer).await?;
            return Ok(());
        }
        for (_, uid) in working.open_shards() {
            if let std::collections::hash_map::Entry::Vacant(e) = receivers.entry(uid) {
                if let Some(rx) = ctx.store.subscribe(uid) {
                    e.insert(rx);
                }
            }
            if let Some(rx) = receivers.get_mut(&uid) {
                rx.borrow_and_update();
            }
        }
        // At most as many applications compute at once as there are cores. An application
        // keeps its worker until the results of its step are committed: the windows of all
        // applications over one stream fire together, and this way only as many of them as
        // there are workers hold encoded results and checkpoints in memory at once.
        let mut worker = Some(ctx.workers.acquire().await);
        let (back, step) = tokio::task::spawn_blocking(move || {
            let step = step(&mut working);
            (working, step)
        })
        .await
        .map_err(|e| format!("the application's worker failed: {e}"))?;
        working = back;
        let step = step.map_err(|e| format!("reading input streams {}: {e}", inputs.join(", ")))?;
        let now = Instant::now();
        for shard in &step.active {
            last_data.insert(*shard, now);
        }
        if let Some(timeout) = idle_timeout {
            let mut out = Output::default();
            let shards: Vec<(usize, u64)> = working
                .readers
                .iter()
                .enumerate()
                .flat_map(|(i, r)| r.cursors.keys().map(move |u| (i, *u)))
                .collect();
            for (input, uid) in shards {
                let seen = *last_data.entry((input, uid)).or_insert(now);
                working
                    .engine
                    .set_idle(input, uid, now.duration_since(seen) >= timeout, &mut out);
            }
            route(
                ctx,
                &sink,
                &plan,
                out.rows,
                &mut pending,
                &mut working.engine,
            )
            .await;
        }
        if step.records > 0 {
            dirty = true;
        }
        route(
            ctx,
            &sink,
            &plan,
            step.rows,
            &mut pending,
            &mut working.engine,
        )
        .await;
        for error in step.errors {
            let data = serde_json::json!({
                "application": ctx.name,
                "reason": error.reason,
                "message": error.message,
                "shard_id": error.shard_id,
                "sequence_number": error.sequence_number,
                "partition_key": error.partition_key,
                "data": error.data,
            });
            let key = if error.partition_key.is_empty() {
                error.reason.to_string()
            } else {
                error.partition_key
            };
            pending.push(&error_stream(&ctx.name), key, data.to_string());
        }
        update_status(ctx, &working, step.more, step.newest_arrival);
        if let Some(error) = working.engine.lookup.as_ref().and_then(|l| l.error.clone()) {
            set_error(ctx, Some(error));
        }
        let due = (!pending.is_empty()
            && (!step.more
                || last_commit.elapsed() >= COMMIT_EVERY
                || pending.bytes >= PENDING_BYTES))
            || (dirty && last_commit.elapsed() >= CHECKPOINT_EVERY);
        if due {
            if pending.records.contains_key(&error_stream(&ctx.name)) {
                ensure_stream(&ctx.store, &error_stream(&ctx.name))
                    .await
                    .map_err(|e| format!("cannot create the error stream: {e}"))?;
            }
            let (back, rows) = encode_checkpoint(working, fp, stream_uids.clone()).await?;
            working = back;
            // Retry the same commit until it goes through (or the application is stopped).
            loop {
                match commit(ctx, &mut pending, rows.clone(), &consumer).await {
                    Ok(()) => {
                        set_error(ctx, None);
                        break;
                    }
                    Err(error) => {
                        // Waiting for the store (a full disk) does not hold a worker.
                        worker = None;
                        set_error(
                            ctx,
                            Some(format!("cannot commit results, retrying: {error}")),
                        );
                        tokio::select! {
                            _ = tokio::time::sleep(RETRY_EVERY) => {}
                            _ = stop.changed() => {
                                if *stop.borrow() {
                                    return Err(format!("stopped while results could not be committed: {error}"));
                                }
                            }
                        }
                    }
                }
            }
            last_commit = Instant::now();
            dirty = false;
        }
        drop(worker);
        if !step.more {
            let tick = if plan.source.proctime.is_some() {
                PROCTIME_TICK
            } else {
                TICK
            };
            wait_for_records(&mut receivers, &mut stop, tick).await;
        }
    }
}

fn step(working: &mut Working) -> Result<Step, StoreError> {
    let mut out = Output::default();
    let mut errors = Vec::new();
    if let Some(lookup) = working.engine.lookup.as_mut() {
        lookup.refresh();
    }
    let mut records = 0;
    let mut newest_arrival = None;
    let mut active = Vec::new();
    let mut more = false;
    // Every input's shards count before any row is processed: an input without rows yet
    // holds the watermark back.
    for (input, reader) in working.readers.iter_mut().enumerate() {
        for uid in reader.discover() {
            working.engine.register_shard(input, uid);
        }
    }
    for (input, reader) in working.readers.iter_mut().enumerate() {
        let (chunks, more_here) = reader.read(READ_RECORDS, READ_BYTES)?;
        more |= more_here;
        for chunk in &chunks {
            active.push((input, chunk.uid));
            for record in &chunk.records {
                working.engine.process(
                    input,
                    chunk.uid,
                    chunk.index,
                    record,
                    &mut out,
                    &mut errors,
                );
            }
            records += chunk.records.len();
            if let Some(last) = chunk.records.last() {
                newest_arrival = newest_arrival.max(Some(last.position.millis()));
            }
        }
        for uid in reader.exhausted() {
            working.engine.retire_shard(input, uid, &mut out);
        }
    }
    working.engine.tick(&mut out);
    Ok(Step {
        active,
        rows: out.rows,
        errors,
        more,
        records,
        newest_arrival,
    })
}

/// Encodes the checkpoint that covers what is pending (on a blocking thread: a big window
/// state takes a while).
async fn encode_checkpoint(
    working: Working,
    fp: u64,
    stream_uids: Vec<u64>,
) -> Result<(Working, Vec<(u64, Vec<u8>)>), String> {
    let (working, rows) = tokio::task::spawn_blocking(move || {
        let inputs: Vec<_> = stream_uids
            .iter()
            .zip(&working.readers)
            .map(|(uid, r)| (*uid, &r.cursors))
            .collect();
        let rows = match CheckpointRef::new(fp, &inputs, working.engine.state()) {
            Some(checkpoint) => checkpoint.encode(),
            None => Err("an application without an input".to_string()),
        };
        (working, rows)
    })
    .await
    .map_err(|e| format!("the application's worker failed: {e}"))?;
    Ok((working, rows?))
}

/// Commits the pending records with the checkpoint rows, in one transaction.
async fn commit(
    ctx: &AppContext,
    pending: &mut Pending,
    rows: Vec<(u64, Vec<u8>)>,
    consumer: &str,
) -> Result<(), String> {
    let appends: Vec<(String, Vec<NewRecord>)> = pending
        .records
        .iter()
        .map(|(s, r)| (s.clone(), r.clone()))
        .collect();
    ctx.store
        .transact(
            appends,
            CheckpointOp::Replace {
                consumer: consumer.to_string(),
                rows,
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    *pending = Pending::new();
    let mut status = ctx.status.lock().unwrap_or_else(|p| p.into_inner());
    status.commits += 1;
    Ok(())
}

async fn ensure_stream(store: &Store, name: &str) -> Result<(), StoreError> {
    if store.catalog().stream(name).is_some() {
        return Ok(());
    }
    let spec = StreamSpec {
        name: name.to_string(),
        shards: 1,
        retention_hours: 24,
        max_bytes: None,
        on_full: OnFull::OverwriteOldest,
        mode: StreamMode::Provisioned,
        tags: BTreeMap::new(),
    };
    match store.admin(AdminOp::CreateStream(spec)).await {
        Ok(()) | Err(StoreError::StreamExists(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

fn set_error(ctx: &AppContext, error: Option<String>) {
    ctx.status.lock().unwrap_or_else(|p| p.into_inner()).error = error;
}

fn update_status(ctx: &AppContext, working: &Working, more: bool, newest_arrival: Option<u64>) {
    let mut status = ctx.status.lock().unwrap_or_else(|p| p.into_inner());
    status.counters = working.engine.counters;
    status.watermark = working
        .engine
        .watermark
        .filter(|w| *w != i64::MAX && *w != i64::MIN);
    status.state_entries = working.engine.state_entries();
    status.state_overflows = working.engine.state_overflows();
    status.input_lag_ms = if more {
        newest_arrival.map(|t| crate::storage::now_ms().saturating_sub(t))
    } else {
        Some(0)
    };
}

async fn wait_for_records(
    receivers: &mut HashMap<u64, watch::Receiver<Position>>,
    stop: &mut watch::Receiver<bool>,
    tick: Duration,
) {
    let changes: Vec<_> = receivers
        .values_mut()
        .map(|rx| Box::pin(rx.changed()))
        .collect();
    if changes.is_empty() {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = stop.changed() => {}
        }
        return;
    }
    tokio::select! {
        _ = futures_util::future::select_all(changes) => {}
        _ = tokio::time::sleep(tick) => {}
        _ = stop.changed() => {}
    }
}
