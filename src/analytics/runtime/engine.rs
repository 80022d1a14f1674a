//! One query's pipeline over records: decode, metadata and computed columns, the watermark
//! (per input shard, the minimum over the shards that are not idle; with two inputs, a window
//! join, the minimum over the inputs that are not idle), the operator, and what it fires. Used by applications (continuous, checkpointed) and queries (bounded: a
//! final watermark fires everything at the end, as Flink does at the end of a bounded input).
//!
//! Invariant: a row is processed with the watermark as it was before that row; the row's own
//! contribution to the watermark is applied after it (Flink's order).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::input::{Input, InputMark};
use crate::analytics::ops::join::{Side, WindowJoin, WindowJoinState};
use crate::analytics::ops::over::{Over, OverState};
use crate::analytics::ops::window::{WindowAgg, WindowAggState, WindowKind};
use crate::analytics::ops::{Output, RowError};
use crate::analytics::sql::ddl::Metadata;
use crate::analytics::sql::plan::{Plan, Stage};
use crate::analytics::value::Value;
use crate::storage::StoredRecord;
use crate::streams::{shard_id, SequenceNumber};

/// A record that could not be processed, for the error output.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorRecord {
    /// `late`, `parse` or `eval`.
    pub reason: &'static str,
    pub message: String,
    pub shard_id: String,
    pub sequence_number: String,
    pub partition_key: String,
    pub data: String,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Counters {
    pub records_in: u64,
    pub records_out: u64,
    pub late_records: u64,
    pub error_records: u64,
}

enum Operator {
    Project,
    WindowProject,
    WindowAgg(Box<WindowAgg>),
    Over(Box<Over>),
    WindowJoin(Box<WindowJoin>),
}

/// The engine's state in a checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EngineState {
    /// Per shard storage id: the largest watermark value its rows gave.
    pub shard_watermarks: BTreeMap<u64, i64>,
    pub watermark: Option<i64>,
    pub window: Option<WindowAggState>,
    pub over: Option<OverState>,
    pub counters: Counters,
    /// A window join's second input: as `shard_watermarks`.
    #[serde(default)]
    pub right_shard_watermarks: BTreeMap<u64, i64>,
    #[serde(default)]
    pub join: Option<WindowJoinState>,
}

/// [`EngineState`] borrowed from the engine, for writing a checkpoint without a copy.
#[derive(Debug, Serialize)]
pub struct EngineStateRef<'a> {
    pub shard_watermarks: &'a BTreeMap<u64, i64>,
    pub watermark: Option<i64>,
    pub window: Option<&'a WindowAggState>,
    pub over: Option<&'a OverState>,
    pub counters: Counters,
    /// Left out without a second input (read back as empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub right_shard_watermarks: Option<&'a BTreeMap<u64, i64>>,
    pub join: Option<&'a WindowJoinState>,
}

pub struct Engine {
    pub plan: Plan,
    /// The rows of a lookup join's table.
    pub lookup: Option<super::lookup::Lookup>,
    op: Operator,
    /// The plan's inputs (0: its source; 1: a window join's right side).
    inputs: Vec<Input>,
    pub watermark: Option<i64>,
    pub counters: Counters,
    time_slot: Option<usize>,
    proctime_windows: bool,
    window_scratch: Vec<(i64, i64)>,
}

impl Engine {
    pub fn new(plan: Plan) -> Engine {
        let inputs = plan.inputs().into_iter().map(Input::new).collect();
        let width = plan.source.width;
        let (op, time_slot) = match &plan.stage {
            Stage::Project { .. } => (Operator::Project, None),
            Stage::WindowProject { time, .. } => (Operator::WindowProject, Some(*time)),
            Stage::WindowAgg { time, plan: p, .. } => (
                Operator::WindowAgg(Box::new(WindowAgg::new(p.clone(), width))),
                Some(*time),
            ),
            Stage::Over { time, plan: p, .. } => {
                (Operator::Over(Box::new(Over::new(p.clone()))), Some(*time))
            }
            Stage::WindowJoin { left, join, .. } => (
                Operator::WindowJoin(Box::new(WindowJoin::new((**join).clone()))),
                Some(left.time),
            ),
        };
        let proctime_windows = time_slot.is_some() && time_slot == plan.source.proctime;
        Engine {
            plan,
            lookup: None,
            op,
            inputs,
            watermark: None,
            counters: Counters::default(),
            time_slot,
            proctime_windows,
            window_scratch: Vec::new(),
        }
    }

    /// (window, key) entries and waiting rows the operator holds.
    pub fn state_entries(&self) -> usize {
        match &self.op {
            Operator::WindowAgg(w) => w.open_entries(),
            Operator::Over(o) => o.open_entries(),
            Operator::WindowJoin(j) => j.open_entries(),
            _ => 0,
        }
    }

    pub fn state_overflows(&self) -> u64 {
        match &self.op {
            Operator::WindowAgg(w) => w.state.overflows,
            Operator::WindowJoin(j) => j.state.overflows,
            _ => 0,
        }
    }

    /// A shard of input `input` whose rows count for the watermark from now on.
    pub fn register_shard(&mut self, input: usize, uid: u64) {
        if let Some(i) = self.inputs.get_mut(input) {
            i.shards.entry(uid).or_default();
        }
    }

    /// A shard that will give no more rows (closed and read to its end).
    pub fn retire_shard(&mut self, input: usize, uid: u64, out: &mut Output) {
        if let Some(i) = self.inputs.get_mut(input) {
            i.shards.remove(&uid);
        }
        self.recompute_watermark(out);
    }

    /// An idle shard does not hold the watermark back (`table.exec.source.idle-timeout`).
    pub fn set_idle(&mut self, input: usize, uid: u64, idle: bool, out: &mut Output) {
        let Some(i) = self.inputs.get_mut(input) else {
            return;
        };
        if let Some(mark) = i.shards.get_mut(&uid) {
            if mark.idle != idle {
                mark.idle = idle;
                self.recompute_watermark(out);
            }
        }
    }

    /// Processes one record of input `input`'s shard `shard_uid` (index `shard_index`).
    pub fn process(
        &mut self,
        input: usize,
        shard_uid: u64,
        shard_index: u64,
        record: &StoredRecord,
        out: &mut Output,
        errors: &mut Vec<ErrorRecord>,
    ) {
        self.counters.records_in += 1;
        match self.process_row(input, shard_uid, shard_index, record, out) {
            Ok(()) => {}
            Err((reason, message)) => {
                if reason == "late" {
                    self.counters.late_records += 1;
                } else {
                    self.counters.error_records += 1;
                }
                errors.push(ErrorRecord {
                    reason,
                    message,
                    shard_id: shard_id(shard_index),
                    sequence_number: SequenceNumber {
                        shard_index,
                        position: record.position,
                    }
                    .to_string(),
                    partition_key: record.partition_key.clone(),
                    data: String::from_utf8_lossy(&record.data).into_owned(),
                });
            }
        }
        self.count_output_errors(out, errors);
    }

    fn count_output_errors(&mut self, out: &mut Output, errors: &mut Vec<ErrorRecord>) {
        for message in out.errors.drain(..) {
            self.counters.error_records += 1;
            errors.push(ErrorRecord {
                reason: "eval",
                message,
                shard_id: String::new(),
                sequence_number: String::new(),
                partition_key: String::new(),
                data: String::new(),
            });
        }
    }

    fn process_row(
        &mut self,
        input: usize,
        shard_uid: u64,
        shard_index: u64,
        record: &StoredRecord,
        out: &mut Output,
    ) -> Result<(), (&'static str, String)> {
        let source = match (&self.plan.stage, input) {
            (Stage::WindowJoin { right_source, .. }, 1) => right_source,
            _ => &self.plan.source,
        };
        let mut row = vec![Value::Null; source.width];
        self.inputs[input]
            .decoder
            .decode(&record.data, &mut row)
            .map_err(|m| ("parse", m))?;
        for (metadata, slot) in &source.metadata {
            row[*slot] = match metadata {
                Metadata::Timestamp => Value::Ts(record.position.millis() as i64),
                Metadata::PartitionKey => Value::str(&record.partition_key),
                Metadata::ShardId => Value::str(&shard_id(shard_index)),
                Metadata::SequenceNumber => Value::str(
                    &SequenceNumber {
                        shard_index,
                        position: record.position,
                    }
                    .to_string(),
                ),
            };
        }
        if let Some(slot) = source.proctime {
            row[slot] = Value::Ts(crate::storage::now_ms() as i64);
        }
        for (slot, expr) in &source.computed {
            row[*slot] = expr.eval(&row).map_err(|m| ("eval", m))?;
        }
        if let (Some(plan), Some(lookup)) = (&source.lookup, &self.lookup) {
            let key = plan
                .left_keys
                .iter()
                .map(|k| k.eval(&row))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|m| ("eval", m))?;
            match lookup.get(&key) {
                Some(found) => row.extend(found.iter().cloned()),
                None if plan.outer => row.extend(std::iter::repeat_n(Value::Null, lookup.width())),
                None => return Ok(()),
            }
        }
        let mark = match &source.rowtime {
            Some((slot, expr)) => {
                if row[*slot].is_null() {
                    return Err((
                        "parse",
                        format!("the rowtime column {} is NULL", source.columns[*slot].name),
                    ));
                }
                expr.eval(&row).map_err(|m| ("eval", m))?.as_i64()
            }
            None => None,
        };
        let rowtime = self
            .time_slot
            .and_then(|slot| row.get(slot))
            .and_then(Value::as_i64);
        let watermark = if self.proctime_windows {
            Some(crate::storage::now_ms() as i64 - 1)
        } else {
            self.watermark
        };
        let eval = |e: RowError| match e {
            RowError::Late => (
                "late",
                "the row is behind the watermark: its window has fired".to_string(),
            ),
            RowError::Eval(m) => ("eval", m),
        };
        match (&mut self.op, &self.plan.stage) {
            (Operator::Project, Stage::Project { filter, select }) => {
                if let Some(filter) = filter {
                    if !matches!(
                        filter.eval(&row).map_err(|m| ("eval", m))?,
                        Value::Bool(true)
                    ) {
                        self.after_row(input, shard_uid, mark, out);
                        return Ok(());
                    }
                }
                let values = select
                    .iter()
                    .map(|s| s.eval(&row))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|m| ("eval", m))?;
                out.rows.push(crate::analytics::ops::OutRow {
                    values,
                    partition_key: Some(record.partition_key.clone()),
                });
            }
            (
                Operator::WindowProject,
                Stage::WindowProject {
                    kind,
                    filter,
                    select,
                    ..
                },
            ) => {
                let ts = rowtime.ok_or(("parse", "the time column is NULL".to_string()))?;
                if watermark.is_some_and(|wm| kind.slice_end(ts) - 1 <= wm) {
                    return Err(eval(RowError::Late));
                }
                let mut windows = std::mem::take(&mut self.window_scratch);
                kind.assign(ts, &mut windows);
                let width = row.len();
                row.extend([Value::Null, Value::Null, Value::Null]);
                for &(start, end) in &windows {
                    if matches!(kind, WindowKind::Session { .. }) {
                        return Err(("eval", "SESSION windows need an aggregation".into()));
                    }
                    row[width] = Value::Ts(start);
                    row[width + 1] = Value::Ts(end);
                    row[width + 2] = Value::Ts(end - 1);
                    if let Some(filter) = filter {
                        if !matches!(
                            filter.eval(&row).map_err(|m| ("eval", m))?,
                            Value::Bool(true)
                        ) {
                            continue;
                        }
                    }
                    let values = select
                        .iter()
                        .map(|s| s.eval(&row))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|m| ("eval", m))?;
                    out.rows.push(crate::analytics::ops::OutRow {
                        values,
                        partition_key: Some(record.partition_key.clone()),
                    });
                }
                self.window_scratch = windows;
            }
            (Operator::WindowAgg(op), Stage::WindowAgg { pre_filter, .. }) => {
                let ts = rowtime.ok_or(("parse", "the time column is NULL".to_string()))?;
                if let Some(filter) = pre_filter {
                    if !matches!(
                        filter.eval(&row).map_err(|m| ("eval", m))?,
                        Value::Bool(true)
                    ) {
                        self.after_row(input, shard_uid, mark, out);
                        return Ok(());
                    }
                }
                op.process(row, ts, watermark, out).map_err(eval)?;
            }
            (Operator::Over(op), Stage::Over { pre_filter, .. }) => {
                let ts = rowtime.ok_or(("parse", "the time column is NULL".to_string()))?;
                if let Some(filter) = pre_filter {
                    if !matches!(
                        filter.eval(&row).map_err(|m| ("eval", m))?,
                        Value::Bool(true)
                    ) {
                        self.after_row(input, shard_uid, mark, out);
                        return Ok(());
                    }
                }
                op.process(row, ts, watermark).map_err(eval)?;
            }
            (Operator::WindowJoin(op), Stage::WindowJoin { left, right, .. }) => {
                let (side, plan) = if input == 0 {
                    (Side::Left, left)
                } else {
                    (Side::Right, right)
                };
                let ts = row[plan.time]
                    .as_i64()
                    .ok_or(("parse", "the time column is NULL".to_string()))?;
                let mut windows = std::mem::take(&mut self.window_scratch);
                plan.kind.assign(ts, &mut windows);
                let width = row.len();
                row.extend([Value::Null, Value::Null, Value::Null]);
                let mut late = 0;
                for &(start, end) in &windows {
                    row[width] = Value::Ts(start);
                    row[width + 1] = Value::Ts(end);
                    row[width + 2] = Value::Ts(end - 1);
                    if let Some(filter) = &plan.filter {
                        if !matches!(
                            filter.eval(&row).map_err(|m| ("eval", m))?,
                            Value::Bool(true)
                        ) {
                            continue;
                        }
                    }
                    let values = plan
                        .select
                        .iter()
                        .map(|s| s.eval(&row))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|m| ("eval", m))?;
                    match op.process(side, values, start, end, watermark, out) {
                        Ok(()) => {}
                        Err(RowError::Late) => late += 1,
                        Err(e) => return Err(eval(e)),
                    }
                }
                let total = windows.len();
                self.window_scratch = windows;
                if late > 0 {
                    return Err((
                        "late",
                        format!("the row is behind the watermark: {late} of its {total} windows have fired"),
                    ));
                }
            }
            _ => return Err(("eval", "the operator does not match the plan".into())),
        }
        self.after_row(input, shard_uid, mark, out);
        Ok(())
    }

    fn after_row(&mut self, input: usize, shard_uid: u64, mark: Option<i64>, out: &mut Output) {
        if self.proctime_windows {
            self.advance_to(crate::storage::now_ms() as i64 - 1, out);
            return;
        }
        let Some(mark) = mark else { return };
        let current = self.inputs[input]
            .shard_watermarks
            .entry(shard_uid)
            .or_insert(i64::MIN);
        if mark > *current {
            *current = mark;
            self.recompute_watermark(out);
        }
    }

    fn recompute_watermark(&mut self, out: &mut Output) {
        let mut min: Option<i64> = None;
        for input in &self.inputs {
            match input.mark() {
                InputMark::Hold => return,
                InputMark::Idle => {}
                InputMark::At(w) => min = Some(min.map_or(w, |m| m.min(w))),
            }
        }
        if let Some(wm) = min {
            self.advance_to(wm, out);
        }
    }

    /// Moves the watermark forward (never back) and fires what it completes.
    pub fn advance_to(&mut self, wm: i64, out: &mut Output) {
        if self.watermark.is_some_and(|w| w >= wm) {
            return;
        }
        self.watermark = Some(wm);
        match &mut self.op {
            Operator::WindowAgg(op) => op.advance(wm, out),
            Operator::Over(op) => op.advance(wm, out),
            Operator::WindowJoin(op) => op.advance(wm, out),
            _ => {}
        }
    }

    /// Processing-time windows fire on the clock, also without rows.
    pub fn tick(&mut self, out: &mut Output) {
        if self.proctime_windows {
            self.advance_to(crate::storage::now_ms() as i64 - 1, out);
        }
    }

    /// The end of a bounded input: everything fires.
    pub fn finish(&mut self, out: &mut Output) {
        self.advance_to(i64::MAX, out);
    }

    pub fn state(&self) -> EngineStateRef<'_> {
        EngineStateRef {
            shard_watermarks: &self.inputs[0].shard_watermarks,
            right_shard_watermarks: self.inputs.get(1).map(|i| &i.shard_watermarks),
            join: match &self.op {
                Operator::WindowJoin(j) => Some(&j.state),
                _ => None,
            },
            watermark: self.watermark,
            window: match &self.op {
                Operator::WindowAgg(w) => Some(&w.state),
                _ => None,
            },
            over: match &self.op {
                Operator::Over(o) => Some(&o.state),
                _ => None,
            },
            counters: self.counters,
        }
    }

    pub fn snapshot(&self) -> EngineState {
        EngineState {
            shard_watermarks: self.inputs[0].shard_watermarks.clone(),
            right_shard_watermarks: self
                .inputs
                .get(1)
                .map(|i| i.shard_watermarks.clone())
                .unwrap_or_default(),
            join: match &self.op {
                Operator::WindowJoin(j) => Some(j.state.clone()),
                _ => None,
            },
            watermark: self.watermark,
            window: match &self.op {
                Operator::WindowAgg(w) => Some(w.state.clone()),
                _ => None,
            },
            over: match &self.op {
                Operator::Over(o) => Some(o.state.clone()),
                _ => None,
            },
            counters: self.counters,
        }
    }

    pub fn restore(&mut self, state: EngineState) {
        self.inputs[0].shard_watermarks = state.shard_watermarks;
        if let Some(right) = self.inputs.get_mut(1) {
            right.shard_watermarks = state.right_shard_watermarks;
        }
        self.watermark = state.watermark;
        self.counters = state.counters;
        match &mut self.op {
            Operator::WindowAgg(w) => w.state = state.window.unwrap_or_default(),
            Operator::Over(o) => o.state = state.over.unwrap_or_default(),
            Operator::WindowJoin(j) => j.state = state.join.unwrap_or_default(),
            _ => {}
        }
    }

    /// Counts rows that left through the sink.
    pub fn count_out(&mut self, n: usize) {
        self.counters.records_out += n as u64;
    }
}
