//! The engine's streaming operators: filter and projection, window aggregation
//! (`window`), OVER aggregation (`over`), the window join of two streams (`join`), and
//! aggregate accumulators (`aggregate`).
//! Operators take rows one at a time with their rowtime and the current watermark and put
//! results into an [`Output`]; `advance` fires what the watermark completes.

pub mod aggregate;
pub mod groups;
pub mod join;
mod keys;
pub mod over;
mod packed;
pub mod window;

use crate::analytics::sql::expr::Scalar;
use crate::analytics::value::Value;

/// Why one row was not processed (it goes to the error output).
#[derive(Debug, Clone)]
pub enum RowError {
    /// Behind the watermark: its window (or slice) already fired.
    Late,
    /// An expression failed on it (a division by zero, a bad CAST).
    Eval(String),
}

/// A result row, and the partition key its record gets.
#[derive(Debug, Clone)]
pub struct OutRow {
    pub values: Vec<Value>,
    pub partition_key: Option<String>,
}

/// What operators produced: result rows and rows that failed late in the pipeline.
#[derive(Debug, Default)]
pub struct Output {
    pub rows: Vec<OutRow>,
    /// Rows that failed in a projection after an aggregation (reason).
    pub errors: Vec<String>,
}

impl Output {
    /// Projects `row` through `select` (after `filter`, e.g. HAVING) into a result row.
    pub fn project(
        &mut self,
        row: &[Value],
        filter: Option<&Scalar>,
        select: &[Scalar],
        partition_key: Option<String>,
    ) {
        if let Some(filter) = filter {
            match filter.eval(row) {
                Ok(Value::Bool(true)) => {}
                Ok(_) => return,
                Err(e) => {
                    self.errors.push(e);
                    return;
                }
            }
        }
        match select
            .iter()
            .map(|s| s.eval(row))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(values) => self.rows.push(OutRow {
                values,
                partition_key,
            }),
            Err(e) => self.errors.push(e),
        }
    }
}
