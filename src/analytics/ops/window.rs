//! Window table-valued functions (TUMBLE, HOP, CUMULATE, SESSION) and the window aggregation
//! over them: rows are assigned to windows by their rowtime, aggregated per (window, group
//! key), and a window fires when the watermark reaches its end - 1 ms, as Flink's does.
//!
//! Lateness is decided as Flink decides it: a row whose slice (TUMBLE: its window; HOP: its
//! gcd(size, slide) slice; CUMULATE: its step) has fired, or whose session has fired after
//! merging, is late: counted and written to the error output, never silently dropped.
//! State is bounded: beyond `max_state_keys` (window, key) entries the oldest window fires
//! early (counted as a state overflow).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::aggregate::{add_row, new_accs, AggSpec};
use super::groups::Groups;
use super::{Output, RowError};
use crate::analytics::sql::expr::Scalar;
use crate::analytics::value::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    Tumble { size: i64, offset: i64 },
    Hop { slide: i64, size: i64, offset: i64 },
    Cumulate { step: i64, max: i64, offset: i64 },
    Session { gap: i64 },
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl WindowKind {
    /// The windows `ts` belongs to, as (start, end).
    pub fn assign(&self, ts: i64, out: &mut Vec<(i64, i64)>) {
        out.clear();
        match *self {
            WindowKind::Tumble { size, offset } => {
                let start = ts - (ts - offset).rem_euclid(size);
                out.push((start, start + size));
            }
            WindowKind::Hop {
                slide,
                size,
                offset,
            } => {
                let mut start = ts - (ts - offset).rem_euclid(slide);
                while start > ts - size {
                    out.push((start, start + size));
                    start -= slide;
                }
                out.reverse();
            }
            WindowKind::Cumulate { step, max, offset } => {
                let start = ts - (ts - offset).rem_euclid(max);
                let mut end = start + step;
                while end <= start + max {
                    if end > ts {
                        out.push((start, end));
                    }
                    end += step;
                }
            }
            WindowKind::Session { gap } => out.push((ts, ts + gap)),
        }
    }

    /// The end of the slice `ts` falls in: the row is late once that slice has fired.
    pub fn slice_end(&self, ts: i64) -> i64 {
        match *self {
            WindowKind::Tumble { size, offset } => ts - (ts - offset).rem_euclid(size) + size,
            WindowKind::Hop {
                slide,
                size,
                offset,
            } => {
                let g = gcd(size, slide);
                ts - (ts - offset).rem_euclid(g) + g
            }
            WindowKind::Cumulate { step, offset, .. } => ts - (ts - offset).rem_euclid(step) + step,
            WindowKind::Session { gap } => ts + gap,
        }
    }
}

/// A window aggregation's plan.
#[derive(Debug, Clone)]
pub struct WindowAggPlan {
    pub kind: WindowKind,
    /// Over the windowed row (input + window_start, window_end, window_time).
    pub filter: Option<Scalar>,
    /// SESSION's PARTITION BY keys, over the input row.
    pub partition: Vec<Scalar>,
    /// Group keys other than window_start/window_end, over the windowed row.
    pub keys: Vec<Scalar>,
    pub aggs: Vec<AggSpec>,
    /// Over the group row (window_start, window_end, window_time, keys..., aggregates...).
    pub having: Option<Scalar>,
    pub select: Vec<Scalar>,
    pub max_state_keys: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Session {
    start: i64,
    end: i64,
    groups: Groups,
}

/// What a window aggregation keeps between rows (serialized into checkpoints).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WindowAggState {
    /// (end, start) -> groups.
    windows: BTreeMap<(i64, i64), Groups>,
    /// SESSION: partition key -> open sessions.
    sessions: HashMap<Vec<Value>, Vec<Session>>,
    /// (window, key) entries held.
    entries: usize,
    pub overflows: u64,
}

pub struct WindowAgg {
    pub plan: WindowAggPlan,
    pub state: WindowAggState,
    scratch: Vec<(i64, i64)>,
    /// The input row's width: window columns follow it.
    width: usize,
    /// Groups of the last window fired: a new window's table is made that big at once.
    last_groups: usize,
    /// The last window fired, emptied: the next window to open takes its room.
    spare: Option<Groups>,
}

impl WindowAgg {
    pub fn new(plan: WindowAggPlan, width: usize) -> WindowAgg {
        WindowAgg {
            plan,
            state: WindowAggState::default(),
            scratch: Vec::new(),
            width,
            last_groups: 0,
            spare: None,
        }
    }

    pub fn open_entries(&self) -> usize {
        self.state.entries
    }

    /// Adds a row with rowtime `ts`; `watermark` is the current one (None: none yet).
    pub fn process(
        &mut self,
        mut row: Vec<Value>,
        ts: i64,
        watermark: Option<i64>,
        out: &mut Output,
    ) -> Result<(), RowError> {
        let fired = |end: i64| watermark.is_some_and(|wm| end - 1 <= wm);
        if let WindowKind::Session { gap } = self.plan.kind {
            return self.process_session(row, ts, gap, watermark, out);
        }
        let mut windows = std::mem::take(&mut self.scratch);
        self.plan.kind.assign(ts, &mut windows);
        // Late only when every window of the row has fired: a row whose slice fired still
        // counts in the windows that are open (Flink's slicing window operator).
        if windows.iter().all(|(_, end)| fired(*end)) {
            self.scratch = windows;
            return Err(RowError::Late);
        }
        row.truncate(self.width);
        row.extend([Value::Null, Value::Null, Value::Null]);
        for &(start, end) in &windows {
            if fired(end) {
                continue;
            }
            row[self.width] = Value::Ts(start);
            row[self.width + 1] = Value::Ts(end);
            row[self.width + 2] = Value::Ts(end - 1);
            if let Some(filter) = &self.plan.filter {
                if !matches!(
                    filter.eval(&row).map_err(RowError::Eval)?,
                    Value::Bool(true)
                ) {
                    continue;
                }
            }
            let key = self
                .plan
                .keys
                .iter()
                .map(|k| k.eval(&row))
                .collect::<Result<Vec<_>, _>>()
                .map_err(RowError::Eval)?;
            // The last window's groups and a little more: most windows fit without growing.
            let last_groups = self.last_groups + self.last_groups / 32;
            let spare = &mut self.spare;
            let groups = self.state.windows.entry((end, start)).or_insert_with(|| {
                // The room of the last window unless it is far more than this one needs.
                match spare.take() {
                    Some(room) if room.capacity() <= 2 * last_groups + 64 => room,
                    _ => Groups::with_capacity(
                        self.plan.keys.len(),
                        self.plan.aggs.len(),
                        last_groups,
                    ),
                }
            });
            let aggs = &self.plan.aggs;
            match groups.update(key.as_slice(), |accs| add_row(aggs, accs, &row)) {
                Some(added) => added.map_err(RowError::Eval)?,
                None => {
                    let mut accs = new_accs(aggs);
                    add_row(aggs, &mut accs, &row).map_err(RowError::Eval)?;
                    self.state.entries += 1;
                    groups.insert(key, accs);
                }
            }
        }
        self.scratch = windows;
        while self.state.entries > self.plan.max_state_keys {
            let Some((&(end, start), _)) = self.state.windows.iter().next() else {
                break;
            };
            let groups = self.state.windows.remove(&(end, start)).unwrap_or_default();
            self.state.overflows += 1;
            self.emit(start, end, groups, out);
        }
        Ok(())
    }

    fn process_session(
        &mut self,
        mut row: Vec<Value>,
        ts: i64,
        gap: i64,
        watermark: Option<i64>,
        _out: &mut Output,
    ) -> Result<(), RowError> {
        let partition = self
            .plan
            .partition
            .iter()
            .map(|k| k.eval(&row))
            .collect::<Result<Vec<_>, _>>()
            .map_err(RowError::Eval)?;
        let sessions = self.state.sessions.entry(partition).or_default();
        // Merge every session that overlaps [ts, ts + gap).
        let mut merged = Session {
            start: ts,
            end: ts + gap,
            groups: Groups::default(),
        };
        let mut absorbed = Vec::new();
        // Sessions that touch or overlap merge (Flink's TimeWindow.intersects is inclusive),
        // until none is left to merge.
        loop {
            let before = absorbed.len();
            let mut i = 0;
            while i < sessions.len() {
                let s = &sessions[i];
                if s.start <= merged.end && merged.start <= s.end {
                    let s = sessions.swap_remove(i);
                    merged.start = merged.start.min(s.start);
                    merged.end = merged.end.max(s.end);
                    absorbed.push(s);
                } else {
                    i += 1;
                }
            }
            if absorbed.len() == before {
                break;
            }
        }
        if watermark.is_some_and(|wm| merged.end - 1 <= wm) {
            sessions.extend(absorbed);
            return Err(RowError::Late);
        }
        absorbed.sort_by_key(|s| s.start);
        for s in absorbed {
            for (key, accs) in s.groups.into_entries() {
                if merged.groups.contains(&key) {
                    let aggs = &self.plan.aggs;
                    merged.groups.update(&key, |into| {
                        for ((spec, into), from) in aggs.iter().zip(into.iter_mut()).zip(accs) {
                            spec.merge(into, from);
                        }
                    });
                    self.state.entries = self.state.entries.saturating_sub(1);
                } else {
                    merged.groups.insert(key, accs);
                }
            }
        }
        row.truncate(self.width);
        row.extend([
            Value::Ts(merged.start),
            Value::Ts(merged.end),
            Value::Ts(merged.end - 1),
        ]);
        let keep = match &self.plan.filter {
            Some(filter) => matches!(
                filter.eval(&row).map_err(RowError::Eval)?,
                Value::Bool(true)
            ),
            None => true,
        };
        if keep {
            let key = self
                .plan
                .keys
                .iter()
                .map(|k| k.eval(&row))
                .collect::<Result<Vec<_>, _>>()
                .map_err(RowError::Eval)?;
            let aggs = &self.plan.aggs;
            match merged
                .groups
                .update(key.as_slice(), |accs| add_row(aggs, accs, &row))
            {
                Some(added) => added.map_err(RowError::Eval)?,
                None => {
                    let mut accs = new_accs(aggs);
                    add_row(aggs, &mut accs, &row).map_err(RowError::Eval)?;
                    self.state.entries += 1;
                    merged.groups.insert(key, accs);
                }
            }
        }
        sessions.push(merged);
        Ok(())
    }

    /// Fires every window whose end - 1 is at or before `watermark`, in end order.
    pub fn advance(&mut self, watermark: i64, out: &mut Output) {
        while let Some((&(end, start), _)) = self.state.windows.iter().next() {
            if end - 1 > watermark {
                break;
            }
            let groups = self.state.windows.remove(&(end, start)).unwrap_or_default();
            self.emit(start, end, groups, out);
        }
        if matches!(self.plan.kind, WindowKind::Session { .. }) && !self.state.sessions.is_empty() {
            let mut due = Vec::new();
            self.state.sessions.retain(|_, sessions| {
                let mut i = 0;
                while i < sessions.len() {
                    if sessions[i].end - 1 <= watermark {
                        due.push(sessions.swap_remove(i));
                    } else {
                        i += 1;
                    }
                }
                !sessions.is_empty()
            });
            due.sort_by_key(|s| (s.end, s.start));
            for s in due {
                self.emit(s.start, s.end, s.groups, out);
            }
        }
    }

    fn emit(&mut self, start: i64, end: i64, mut groups: Groups, out: &mut Output) {
        self.state.entries = self.state.entries.saturating_sub(groups.len());
        self.last_groups = groups.len();
        for (key, accs) in groups.iter() {
            let mut row = Vec::with_capacity(3 + key.len() + accs.count());
            row.extend([Value::Ts(start), Value::Ts(end), Value::Ts(end - 1)]);
            let partition_key = key
                .iter()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .join("|");
            row.extend(key.iter().cloned());
            let mut specs = self.plan.aggs.iter();
            accs.for_each(|acc| {
                if let Some(spec) = specs.next() {
                    row.push(spec.result(acc));
                }
            });
            out.project(
                &row,
                self.plan.having.as_ref(),
                &self.plan.select,
                Some(partition_key),
            );
        }
        if !matches!(self.plan.kind, WindowKind::Session { .. }) {
            groups.clear();
            self.spare = Some(groups);
        }
    }
}
