//! `kinedge query`: the engine over a stream's stored history, bounded. It reads every shard
//! from the table's start position (TRIM_HORIZON unless the table says otherwise) to what was
//! committed when the query began, then fires every window (the end of a bounded input),
//! and returns the rows. A query is bounded in rows, in state and in time.

use std::time::{Duration, Instant};

use super::format::json_object;
use super::ops::Output;
use super::runtime::engine::Engine;
use super::runtime::lookup::Lookup;
use super::runtime::reader::StreamReader;
use super::service::{AnalyticsError, QueryOutput};
use super::sql::{parse_script, plan};
use crate::storage::Store;

/// Window state a query may hold (group keys x open windows).
const QUERY_STATE_KEYS: usize = 1_000_000;

/// A query that runs longer than this is stopped with an error.
pub const QUERY_TIME_LIMIT: Duration = Duration::from_secs(120);

/// Runs a bounded query. Blocking: call it from a blocking context.
pub fn run(store: Store, sql: &str, max_rows: usize) -> Result<QueryOutput, AnalyticsError> {
    let script = parse_script(sql).map_err(|e| AnalyticsError::Sql(e.to_string()))?;
    let plan = plan::plan(&script, QUERY_STATE_KEYS, true)
        .map_err(|e| AnalyticsError::Sql(e.to_string()))?;
    let limit = plan.limit.unwrap_or(usize::MAX).min(max_rows);
    let reader_store = store.clone();
    let mut reader = StreamReader::new(store, plan.source.stream.clone(), plan.source.start);
    reader.bound_to_now()?;
    let columns = plan.columns.clone();
    let lookup = plan
        .source
        .lookup
        .clone()
        .map(|l| Lookup::new(l, &reader_store));
    let mut engine = Engine::new(plan);
    if let Some(mut lookup) = lookup {
        lookup.refresh();
        if let Some(error) = &lookup.error {
            return Err(AnalyticsError::Invalid(error.clone()));
        }
        engine.lookup = Some(lookup);
    }
    let mut out = Output::default();
    let mut errors = Vec::new();
    let started = Instant::now();
    let mut truncated = false;
    loop {
        for uid in reader.discover() {
            engine.register_shard(uid);
        }
        let (chunks, _) = reader.read(10_000, 4 * 1024 * 1024)?;
        if chunks.is_empty() {
            // Shards read to their end (closed ones are retired so they hold nothing back).
            let retired: Vec<u64> = reader
                .cursors
                .iter()
                .filter(|(_, c)| c.exhausted)
                .map(|(u, _)| *u)
                .collect();
            for uid in retired {
                engine.retire_shard(uid, &mut out);
            }
            let added = reader.discover();
            if added.is_empty() {
                break;
            }
            for uid in added {
                engine.register_shard(uid);
            }
            continue;
        }
        for chunk in chunks {
            for record in &chunk.records {
                engine.process(chunk.uid, chunk.index, record, &mut out, &mut errors);
            }
        }
        errors.clear();
        if out.rows.len() >= limit {
            truncated = out.rows.len() > limit || !reader.bounded_done();
            break;
        }
        if started.elapsed() > QUERY_TIME_LIMIT {
            return Err(AnalyticsError::Invalid(format!(
                "the query ran for more than {} s and was stopped; narrow it (AT_TIMESTAMP, a smaller stream) or run it as an application",
                QUERY_TIME_LIMIT.as_secs()
            )));
        }
    }
    if out.rows.len() < limit {
        engine.finish(&mut out);
    }
    if out.rows.len() > limit {
        out.rows.truncate(limit);
        truncated = true;
    }
    let rows = out
        .rows
        .iter()
        .map(|r| json_object(&columns, &r.values))
        .collect();
    Ok(QueryOutput {
        columns: columns.into_iter().map(|(name, _)| name).collect(),
        rows,
        truncated,
    })
}
