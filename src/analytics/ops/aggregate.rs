//! Aggregate functions as accumulators: COUNT, SUM, MIN, MAX, AVG, STDDEV/VAR, FIRST/LAST_VALUE,
//! APPROX_COUNT_DISTINCT (exact here), PERCENTILE, each with DISTINCT and FILTER. NULLs are
//! skipped (COUNT(*) counts rows); results are typed as Flink types them (AVG of INT is INT).
//!
//! Invariant: an accumulator holds running values only (a DISTINCT or percentile keeps the
//! values it needs), and serializes into the application's checkpoint.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::analytics::sql::expr::Scalar;
use crate::analytics::value::{SqlType, Value};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AggKind {
    CountStar,
    Count,
    Sum,
    Min,
    Max,
    Avg,
    StddevPop,
    StddevSamp,
    VarPop,
    VarSamp,
    First,
    Last,
    ApproxCountDistinct,
    /// Continuous percentile (linear interpolation), 0..=1.
    Percentile(f64),
}

/// One aggregate call of a query.
#[derive(Debug, Clone)]
pub struct AggSpec {
    pub kind: AggKind,
    pub arg: Option<Scalar>,
    pub distinct: bool,
    pub filter: Option<Scalar>,
    pub input: SqlType,
    pub output: SqlType,
}

impl AggSpec {
    /// The result type of `kind` over `input` (Flink's).
    pub fn output_type(kind: AggKind, input: SqlType) -> SqlType {
        match kind {
            AggKind::CountStar | AggKind::Count | AggKind::ApproxCountDistinct => SqlType::BigInt,
            AggKind::Sum | AggKind::Min | AggKind::Max | AggKind::First | AggKind::Last => input,
            AggKind::Avg => input,
            AggKind::StddevPop | AggKind::StddevSamp | AggKind::VarPop | AggKind::VarSamp => {
                if input.is_integer() {
                    input
                } else {
                    SqlType::Double
                }
            }
            AggKind::Percentile(_) => SqlType::Double,
        }
    }

    pub fn new_acc(&self) -> Acc {
        let inner = match self.kind {
            AggKind::CountStar | AggKind::Count | AggKind::ApproxCountDistinct => Acc::Count(0),
            AggKind::Sum | AggKind::Avg => Acc::Sum {
                n: 0,
                isum: 0,
                sum: 0.0,
            },
            AggKind::StddevPop | AggKind::StddevSamp | AggKind::VarPop | AggKind::VarSamp => {
                Acc::Moments(Box::default())
            }
            AggKind::Min | AggKind::Max | AggKind::First | AggKind::Last => Acc::One(Value::Null),
            AggKind::Percentile(_) => Acc::Values(Box::default()),
        };
        if self.distinct || self.kind == AggKind::ApproxCountDistinct {
            Acc::Distinct(Box::new((HashSet::new(), inner)))
        } else {
            inner
        }
    }

    /// Adds one input row.
    pub fn add(&self, acc: &mut Acc, row: &[Value]) -> Result<(), String> {
        if let Some(filter) = &self.filter {
            if !matches!(filter.eval(row)?, Value::Bool(true)) {
                return Ok(());
            }
        }
        let value = match &self.arg {
            Some(arg) => arg.eval(row)?,
            None => Value::Bool(true),
        };
        self.add_value(acc, value);
        Ok(())
    }

    pub fn add_value(&self, acc: &mut Acc, value: Value) {
        if value.is_null() {
            return;
        }
        match acc {
            Acc::Distinct(distinct) => {
                let (seen, inner) = distinct.as_mut();
                if seen.insert(value.clone()) {
                    self.add_value(inner, value);
                }
            }
            Acc::Count(n) => *n += 1,
            Acc::Sum { n, isum, sum } => {
                *n += 1;
                if let Value::Int(i) = value {
                    *isum = isum.wrapping_add(i);
                }
                *sum += value.as_f64().unwrap_or(0.0);
            }
            Acc::Moments(m) => {
                m.n += 1;
                if let Value::Int(i) = value {
                    m.isum = m.isum.wrapping_add(i);
                    m.isumsq = m.isumsq.wrapping_add(i.wrapping_mul(i));
                }
                let x = value.as_f64().unwrap_or(0.0);
                m.sum += x;
                m.sumsq += x * x;
            }
            Acc::One(current) => {
                let replace = match self.kind {
                    AggKind::Min => current.is_null() || value.total_cmp(current).is_lt(),
                    AggKind::Max => current.is_null() || value.total_cmp(current).is_gt(),
                    AggKind::First => current.is_null(),
                    _ => true,
                };
                if replace {
                    *current = value;
                }
            }
            Acc::Values(values) => {
                if let Some(x) = value.as_f64() {
                    values.push(x);
                }
            }
        }
    }

    /// Folds `from` (a later session's accumulator) into `into`.
    pub fn merge(&self, into: &mut Acc, from: Acc) {
        match (into, from) {
            (Acc::Count(a), Acc::Count(b)) => *a += b,
            (
                Acc::Sum { n, isum, sum },
                Acc::Sum {
                    n: n2,
                    isum: i2,
                    sum: s2,
                },
            ) => {
                *n += n2;
                *isum = isum.wrapping_add(i2);
                *sum += s2;
            }
            (Acc::Moments(a), Acc::Moments(b)) => {
                a.n += b.n;
                a.isum = a.isum.wrapping_add(b.isum);
                a.isumsq = a.isumsq.wrapping_add(b.isumsq);
                a.sum += b.sum;
                a.sumsq += b.sumsq;
            }
            (Acc::One(current), Acc::One(value))
                if !value.is_null() && (self.kind != AggKind::First || current.is_null()) =>
            {
                let mut acc = Acc::One(current.clone());
                self.add_value(&mut acc, value);
                if let Acc::One(v) = acc {
                    *current = v;
                }
            }
            (Acc::Values(a), Acc::Values(b)) => a.extend(b.iter()),
            (Acc::Distinct(distinct), Acc::Distinct(other)) => {
                let (seen, inner) = distinct.as_mut();
                for value in other.0 {
                    if seen.insert(value.clone()) {
                        self.add_value(inner, value);
                    }
                }
            }
            _ => {}
        }
    }

    /// The aggregate's value now.
    pub fn result(&self, acc: &Acc) -> Value {
        let acc = match acc {
            Acc::Distinct(distinct) => &distinct.1,
            other => other,
        };
        let int = self.input.is_integer();
        match (acc, self.kind) {
            (Acc::Count(n), _) => Value::Int(*n),
            (Acc::Sum { n: 0, .. }, _) => Value::Null,
            (Acc::Sum { isum, sum, .. }, AggKind::Sum) => {
                if int {
                    Value::Int(narrow(*isum, self.input))
                } else {
                    Value::Double(*sum)
                }
            }
            (Acc::Sum { n, isum, sum }, _) => {
                if int {
                    Value::Int(isum / n)
                } else {
                    Value::Double(sum / *n as f64)
                }
            }
            (Acc::Moments(m), _) if m.n == 0 => Value::Null,
            (Acc::Moments(m), kind) => {
                let Moments {
                    n,
                    isum,
                    isumsq,
                    sum,
                    sumsq,
                } = **m;
                let n = &n;
                let n_f = *n as f64;
                let pop = matches!(kind, AggKind::VarPop | AggKind::StddevPop);
                if !pop && *n < 2 {
                    return Value::Null;
                }
                let root = matches!(kind, AggKind::StddevPop | AggKind::StddevSamp);
                if int {
                    // (SUM(x*x) - SUM(x)*SUM(x)/COUNT(x)) / (COUNT(x) [- 1]) over the exact
                    // integer sums (the inner division half-up at 6 decimals), truncated to the
                    // argument's type. Flink's floating-point path can give one less when the
                    // variance is whole (docs/analytics.md).
                    const SCALE: i128 = 1_000_000;
                    let (sum, sumsq, count) = (isum as i128, isumsq as i128, *n as i128);
                    let square = sum * sum * SCALE;
                    let avg = (square + count / 2) / count; // half-up (non-negative)
                    let diff = sumsq * SCALE - avg;
                    let den = if pop { count } else { count - 1 } * SCALE;
                    let v = if root {
                        ((diff as f64) / (den as f64)).max(0.0).powf(0.5) as i64
                    } else {
                        (diff / den) as i64
                    };
                    return Value::Int(narrow(v, self.input));
                }
                // Flink rewrites them to (SUM(x*x) - SUM(x)*SUM(x)/COUNT(x)) / (COUNT(x) [- 1]).
                let var = (sumsq - sum * sum / n_f) / if pop { n_f } else { n_f - 1.0 };
                let _ = (isum, isumsq);
                Value::Double(if root { var.powf(0.5) } else { var })
            }
            (Acc::One(v), _) => v.clone(),
            (Acc::Values(values), AggKind::Percentile(p)) => {
                if values.is_empty() {
                    return Value::Null;
                }
                let mut sorted = values.clone();
                sorted.sort_by(f64::total_cmp);
                let rank = p * (sorted.len() - 1) as f64;
                let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
                Value::Double(sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64))
            }
            _ => Value::Null,
        }
    }
}

fn narrow(i: i64, ty: SqlType) -> i64 {
    match ty {
        SqlType::TinyInt => i as i8 as i64,
        SqlType::SmallInt => i as i16 as i64,
        SqlType::Int => i as i32 as i64,
        _ => i,
    }
}

/// The running state of one aggregate for one group: 32 bytes (window state holds one per
/// aggregate per group and window, so the rare big ones are boxed).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Acc {
    Count(i64),
    /// SUM, AVG: the count of non-null values, the integer sum (wrapping as Java's long) and
    /// the double sum.
    Sum {
        n: i64,
        isum: i64,
        sum: f64,
    },
    /// STDDEV_*, VAR_*.
    Moments(Box<Moments>),
    /// MIN, MAX, FIRST_VALUE, LAST_VALUE.
    One(Value),
    /// PERCENTILE: the values.
    Values(Box<Vec<f64>>),
    /// DISTINCT: the values seen, and the aggregate over them.
    Distinct(Box<(HashSet<Value>, Acc)>),
}

/// Sums for the variance family.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Moments {
    pub n: i64,
    pub isum: i64,
    pub isumsq: i64,
    pub sum: f64,
    pub sumsq: f64,
}

/// Aggregates for a set of specs.
pub fn new_accs(specs: &[AggSpec]) -> Vec<Acc> {
    specs.iter().map(AggSpec::new_acc).collect()
}

pub fn add_row(specs: &[AggSpec], accs: &mut [Acc], row: &[Value]) -> Result<(), String> {
    for (spec, acc) in specs.iter().zip(accs.iter_mut()) {
        spec.add(acc, row)?;
    }
    Ok(())
}
