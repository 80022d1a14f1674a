//! The window join of two streams (Flink's window join): each side's rows, already assigned to
//! windows by their window TVF, wait in their window; when the watermark (the minimum of both
//! inputs') reaches the window's end - 1 ms, the two sides' rows of that window are joined on
//! their equality keys (a key with a NULL matches nothing), the residual condition is applied,
//! and the window's rows are dropped. INNER, LEFT, RIGHT and FULL OUTER as Flink's
//! `WindowJoinOperator`: an outer side's row without a match comes out once, with NULLs.
//!
//! A row whose window has fired is late (counted, written to the error output). State is
//! bounded: beyond `max_rows` waiting rows the oldest window fires early (a state overflow).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::{Output, RowError};
use crate::analytics::sql::expr::Scalar;
use crate::analytics::value::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
}

impl JoinKind {
    fn keeps_left(self) -> bool {
        matches!(self, JoinKind::Left | JoinKind::Full)
    }

    fn keeps_right(self) -> bool {
        matches!(self, JoinKind::Right | JoinKind::Full)
    }
}

/// Which input a row comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Left,
    Right,
}

#[derive(Debug, Clone)]
pub struct WindowJoinPlan {
    pub kind: JoinKind,
    /// The equality keys, each over its own side's row.
    pub left_keys: Vec<Scalar>,
    pub right_keys: Vec<Scalar>,
    /// The rest of ON, over the joined row (left columns, then right columns).
    pub residual: Option<Scalar>,
    pub left_width: usize,
    pub right_width: usize,
    /// The outer SELECT's WHERE and items, over the joined row.
    pub filter: Option<Scalar>,
    pub select: Vec<Scalar>,
    pub max_rows: usize,
}

/// The rows of one window, per side.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JoinWindow {
    pub left: Vec<Box<[Value]>>,
    pub right: Vec<Box<[Value]>>,
}

/// What a checkpoint keeps of a window join.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WindowJoinState {
    /// Keyed by (window end, window start): fired in end order.
    pub windows: BTreeMap<(i64, i64), JoinWindow>,
    /// Rows waiting in all windows.
    pub rows: usize,
    pub overflows: u64,
}

pub struct WindowJoin {
    pub plan: WindowJoinPlan,
    pub state: WindowJoinState,
}

impl WindowJoin {
    pub fn new(plan: WindowJoinPlan) -> WindowJoin {
        WindowJoin {
            plan,
            state: WindowJoinState::default(),
        }
    }

    /// Adds one side's row of window [start, end); late when that window has fired.
    pub fn process(
        &mut self,
        side: Side,
        row: Vec<Value>,
        start: i64,
        end: i64,
        watermark: Option<i64>,
        out: &mut Output,
    ) -> Result<(), RowError> {
        if watermark.is_some_and(|wm| end - 1 <= wm) {
            return Err(RowError::Late);
        }
        let window = self.state.windows.entry((end, start)).or_default();
        let rows = match side {
            Side::Left => &mut window.left,
            Side::Right => &mut window.right,
        };
        rows.push(row.into_boxed_slice());
        self.state.rows += 1;
        while self.state.rows > self.plan.max_rows {
            let Some((&(end, start), _)) = self.state.windows.iter().next() else {
                break;
            };
            let window = self.state.windows.remove(&(end, start)).unwrap_or_default();
            self.state.rows -= window.left.len() + window.right.len();
            self.state.overflows += 1;
            self.join(window, out);
        }
        Ok(())
    }

    /// Fires every window whose end - 1 ms the watermark has reached.
    pub fn advance(&mut self, watermark: i64, out: &mut Output) {
        while let Some((&(end, start), _)) = self.state.windows.iter().next() {
            if end - 1 > watermark {
                break;
            }
            let window = self.state.windows.remove(&(end, start)).unwrap_or_default();
            self.state.rows -= window.left.len() + window.right.len();
            self.join(window, out);
        }
    }

    fn join(&self, window: JoinWindow, out: &mut Output) {
        let plan = &self.plan;
        // The right side's rows by key (rows whose key has a NULL match nothing).
        let mut by_key: HashMap<Vec<Value>, Vec<usize>> = HashMap::new();
        for (i, row) in window.right.iter().enumerate() {
            match key(&plan.right_keys, row) {
                Ok(Some(k)) => by_key.entry(k).or_default().push(i),
                Ok(None) => {}
                Err(e) => out.errors.push(e),
            }
        }
        let mut right_matched = vec![false; window.right.len()];
        let mut joined: Vec<Value> = Vec::with_capacity(plan.left_width + plan.right_width);
        for left in &window.left {
            let mut matched = false;
            let candidates = match key(&plan.left_keys, left) {
                Ok(Some(k)) => by_key.get(&k).map(Vec::as_slice).unwrap_or_default(),
                Ok(None) => &[],
                Err(e) => {
                    out.errors.push(e);
                    &[]
                }
            };
            for &i in candidates {
                joined.clear();
                joined.extend(left.iter().cloned());
                joined.extend(window.right[i].iter().cloned());
                if let Some(residual) = &plan.residual {
                    match residual.eval(&joined) {
                        Ok(Value::Bool(true)) => {}
                        Ok(_) => continue,
                        Err(e) => {
                            out.errors.push(e);
                            continue;
                        }
                    }
                }
                matched = true;
                right_matched[i] = true;
                out.project(&joined, plan.filter.as_ref(), &plan.select, None);
            }
            if !matched && plan.kind.keeps_left() {
                joined.clear();
                joined.extend(left.iter().cloned());
                joined.extend(std::iter::repeat_n(Value::Null, plan.right_width));
                out.project(&joined, plan.filter.as_ref(), &plan.select, None);
            }
        }
        if plan.kind.keeps_right() {
            for (right, _) in window
                .right
                .iter()
                .zip(&right_matched)
                .filter(|(_, matched)| !**matched)
            {
                joined.clear();
                joined.extend(std::iter::repeat_n(Value::Null, plan.left_width));
                joined.extend(right.iter().cloned());
                out.project(&joined, plan.filter.as_ref(), &plan.select, None);
            }
        }
    }

    /// Rows waiting in windows.
    pub fn open_entries(&self) -> usize {
        self.state.rows
    }
}

/// A row's join key; None when a part of it is NULL (`=` is never true then).
fn key(keys: &[Scalar], row: &[Value]) -> Result<Option<Vec<Value>>, String> {
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        let v = k.eval(row)?;
        if v.is_null() {
            return Ok(None);
        }
        out.push(v);
    }
    Ok(Some(out))
}
