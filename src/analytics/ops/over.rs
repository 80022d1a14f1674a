//! OVER aggregations ordered by the rowtime: `agg(x) OVER (PARTITION BY k ORDER BY ts
//! ROWS BETWEEN n PRECEDING AND CURRENT ROW)` or `RANGE BETWEEN INTERVAL ... PRECEDING AND
//! CURRENT ROW` (or UNBOUNDED PRECEDING). As Flink does, rows wait until the watermark passes
//! their rowtime, are then taken in rowtime order, and each is emitted with the aggregates over
//! its frame; rows with the same rowtime are peers in a RANGE frame. A row is late when its
//! partition key already emitted a row at or after its rowtime (Flink's per-key
//! `lastTriggeringTs`); a row behind the watermark but not behind its key waits for the next
//! watermark.
//!
//! Invariant: per partition key only the rows the frame can still reach are kept.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::aggregate::{new_accs, AggSpec};
use super::{Output, RowError};
use crate::analytics::sql::expr::Scalar;
use crate::analytics::value::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// The last n rows before the current one (None: unbounded).
    Rows(Option<u64>),
    /// Rows whose rowtime is within this many ms before the current one (None: unbounded).
    Range(Option<i64>),
}

#[derive(Debug, Clone)]
pub struct OverPlan {
    pub partition: Vec<Scalar>,
    pub frame: Frame,
    pub aggs: Vec<AggSpec>,
    /// Over the input row followed by the aggregate results.
    pub select: Vec<Scalar>,
    pub filter: Option<Scalar>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OverState {
    /// Rows waiting for the watermark: (rowtime, arrival seq) -> (partition key, row).
    pending: BTreeMap<(i64, u64), (Vec<Value>, Vec<Value>)>,
    seq: u64,
    /// Per partition key: the rows the frame still reaches, with their rowtime.
    frames: HashMap<Vec<Value>, VecDeque<(i64, Vec<Value>)>>,
    /// Per partition key: the rowtime last emitted. A row at or before it is late (Flink keeps
    /// this per key, not the watermark).
    emitted: HashMap<Vec<Value>, i64>,
}

pub struct Over {
    pub plan: OverPlan,
    pub state: OverState,
}

impl Over {
    pub fn new(plan: OverPlan) -> Over {
        Over {
            plan,
            state: OverState::default(),
        }
    }

    pub fn open_entries(&self) -> usize {
        self.state.pending.len() + self.state.frames.values().map(VecDeque::len).sum::<usize>()
    }

    pub fn process(
        &mut self,
        row: Vec<Value>,
        ts: i64,
        watermark: Option<i64>,
    ) -> Result<(), RowError> {
        let key = self
            .plan
            .partition
            .iter()
            .map(|k| k.eval(&row))
            .collect::<Result<Vec<_>, _>>()
            .map_err(RowError::Eval)?;
        // Flink's bounded frames drop a row behind its key's last emitted rowtime; its
        // unbounded ones (a different operator) a row at or behind the watermark.
        let unbounded = matches!(self.plan.frame, Frame::Rows(None) | Frame::Range(None));
        let late = if unbounded {
            watermark.is_some_and(|wm| ts <= wm)
        } else {
            self.state.emitted.get(&key).is_some_and(|last| ts <= *last)
        };
        if late {
            return Err(RowError::Late);
        }
        self.state.seq += 1;
        self.state.pending.insert((ts, self.state.seq), (key, row));
        Ok(())
    }

    pub fn advance(&mut self, watermark: i64, out: &mut Output) {
        while let Some(entry) = self.state.pending.first_entry() {
            let ts = entry.key().0;
            if ts > watermark {
                break;
            }
            // All rows of this rowtime (peers), in arrival order.
            let mut peers = Vec::new();
            while let Some(e) = self.state.pending.first_entry() {
                if e.key().0 != ts {
                    break;
                }
                peers.push(e.remove());
            }
            match self.plan.frame {
                Frame::Range(range) => {
                    let mut by_key: Vec<(Vec<Value>, Vec<Vec<Value>>)> = Vec::new();
                    for (key, row) in peers {
                        match by_key.iter_mut().find(|(k, _)| *k == key) {
                            Some((_, rows)) => rows.push(row),
                            None => by_key.push((key, vec![row])),
                        }
                    }
                    for (key, rows) in by_key {
                        self.state.emitted.insert(key.clone(), ts);
                        let frame = self.state.frames.entry(key).or_default();
                        if let Some(range) = range {
                            while frame.front().is_some_and(|(t, _)| *t < ts - range) {
                                frame.pop_front();
                            }
                        }
                        frame.extend(rows.iter().map(|r| (ts, r.clone())));
                        let results = aggregate(&self.plan.aggs, frame);
                        for row in rows {
                            emit(&self.plan, row, &results, out);
                        }
                        if range.is_none() {
                            // Unbounded: the frame is all rows so far; keep them (bounded by
                            // max_state_keys at the application level).
                        }
                    }
                }
                Frame::Rows(n) => {
                    for (key, row) in peers {
                        self.state.emitted.insert(key.clone(), ts);
                        let frame = self.state.frames.entry(key).or_default();
                        frame.push_back((ts, row.clone()));
                        if let Some(n) = n {
                            while frame.len() as u64 > n + 1 {
                                frame.pop_front();
                            }
                        }
                        let results = aggregate(&self.plan.aggs, frame);
                        emit(&self.plan, row, &results, out);
                    }
                }
            }
        }
    }
}

fn aggregate(aggs: &[AggSpec], frame: &VecDeque<(i64, Vec<Value>)>) -> Vec<Value> {
    let mut accs = new_accs(aggs);
    for (_, row) in frame {
        for (spec, acc) in aggs.iter().zip(accs.iter_mut()) {
            // A row that failed to evaluate was refused when it arrived.
            let _ = spec.add(acc, row);
        }
    }
    aggs.iter()
        .zip(&accs)
        .map(|(spec, acc)| spec.result(acc))
        .collect()
}

fn emit(plan: &OverPlan, mut row: Vec<Value>, results: &[Value], out: &mut Output) {
    row.extend(results.iter().cloned());
    out.project(&row, plan.filter.as_ref(), &plan.select, None);
}
