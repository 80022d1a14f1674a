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
    let mut readers = Vec::new();
    for source in plan.inputs() {
        let mut reader = StreamReader::new(store.clone(), source.stream.clone(), source.start);
        reader.bound_to_now()?;
        readers.push(reader);
    }
    let columns = plan.columns.clone();
    let lookup = plan.source.lookup.clone().map(|l| Lookup::new(l, &store));
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
        let mut read_any = false;
        let mut added_any = false;
        // Every input's shards count before any row is processed: an input without rows yet
        // holds the watermark back.
        for (input, reader) in readers.iter_mut().enumerate() {
            for uid in reader.discover() {
                engine.register_shard(input, uid);
            }
        }
        for (input, reader) in readers.iter_mut().enumerate() {
            let (chunks, _) = reader.read(10_000, 4 * 1024 * 1024)?;
            if chunks.is_empty() {
                // Shards read to their end (closed ones are retired so they hold nothing back).
                for uid in reader.exhausted() {
                    engine.retire_shard(input, uid, &mut out);
                }
                for uid in reader.discover() {
                    engine.register_shard(input, uid);
                    added_any = true;
                }
                continue;
            }
            read_any = true;
            for chunk in chunks {
                for record in &chunk.records {
                    engine.process(input, chunk.uid, chunk.index, record, &mut out, &mut errors);
                }
            }
        }
        if !read_any && !added_any {
            break;
        }
        errors.clear();
        if out.rows.len() >= limit {
            truncated = out.rows.len() > limit || !readers.iter().all(|r| r.bounded_done());
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
