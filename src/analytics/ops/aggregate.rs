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
            AggKind::Sum | AggKind::Avg if self.input.is_integer() => Acc::IntSum { n: 0, sum: 0 },
            AggKind::Sum | AggKind::Avg => Acc::DoubleSum { n: 0, sum: 0.0 },
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
        self.upgrade(acc);
        match acc {
            Acc::Distinct(distinct) => {
                let (seen, inner) = distinct.as_mut();
                if seen.insert(value.clone()) {
                    self.add_value(inner, value);
                }
            }
            Acc::Count(n) => *n += 1,
            Acc::IntSum { n, sum } => {
                *n += 1;
                if let Value::Int(i) = value {
                    *sum = sum.wrapping_add(i);
                }
            }
            Acc::DoubleSum { n, sum } => {
                *n += 1;
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
            // Upgraded above.
            Acc::Sum(_) => {}
        }
    }

    /// Folds `from` (a later session's accumulator) into `into`.
    pub fn merge(&self, into: &mut Acc, mut from: Acc) {
        self.upgrade(into);
        self.upgrade(&mut from);
        match (into, from) {
            (Acc::Count(a), Acc::Count(b)) => *a += b,
            (Acc::IntSum { n, sum }, Acc::IntSum { n: n2, sum: s2 }) => {
                *n += n2;
                *sum = sum.wrapping_add(s2);
            }
            (Acc::DoubleSum { n, sum }, Acc::DoubleSum { n: n2, sum: s2 }) => {
                *n += n2;
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
        if let Acc::Sum(legacy) = acc {
            return self.result(&self.upgraded(legacy));
        }
        let int = self.input.is_integer();
        match (acc, self.kind) {
            (Acc::Count(n), _) => Value::Int(*n),
            (Acc::IntSum { n: 0, .. } | Acc::DoubleSum { n: 0, .. }, _) => Value::Null,
            (Acc::IntSum { sum, .. }, AggKind::Sum) => Value::Int(narrow(*sum, self.input)),
            (Acc::DoubleSum { sum, .. }, AggKind::Sum) => Value::Double(*sum),
            (Acc::IntSum { n, sum }, _) => Value::Int(sum / n),
            (Acc::DoubleSum { n, sum }, _) => Value::Double(sum / *n as f64),
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

/// The running state of one aggregate for one group: 24 bytes (window state holds one per
/// aggregate per group and window, so the rare big ones are boxed).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Acc {
    Count(i64),
    /// SUM, AVG over integers: the count of non-null values and the sum (wrapping as Java's
    /// long).
    IntSum {
        n: i64,
        sum: i64,
    },
    /// SUM, AVG over other numbers: the count of non-null values and the sum.
    DoubleSum {
        n: i64,
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
    /// SUM, AVG as checkpoints before `IntSum`/`DoubleSum` stored them (both sums): read from
    /// such a checkpoint, and made one of the two by the first `AggSpec` that touches it.
    Sum(Box<LegacySum>),
}

/// The old SUM/AVG accumulator, as checkpoints stored it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct LegacySum {
    pub n: i64,
    pub isum: i64,
    pub sum: f64,
}

impl AggSpec {
    /// A SUM/AVG accumulator of an old checkpoint as the one this aggregate keeps.
    fn upgraded(&self, legacy: &LegacySum) -> Acc {
        if self.input.is_integer() {
            Acc::IntSum {
                n: legacy.n,
                sum: legacy.isum,
            }
        } else {
            Acc::DoubleSum {
                n: legacy.n,
                sum: legacy.sum,
            }
        }
    }

    fn upgrade(&self, acc: &mut Acc) {
        if let Acc::Sum(legacy) = acc {
            *acc = self.upgraded(legacy);
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: AggKind, input: SqlType) -> AggSpec {
        AggSpec {
            kind,
            arg: None,
            distinct: false,
            filter: None,
            input,
            output: AggSpec::output_type(kind, input),
        }
    }

    #[test]
    fn an_accumulator_is_24_bytes() {
        assert_eq!(std::mem::size_of::<Acc>(), 24);
    }

    /// The SUM/AVG accumulator as checkpoints stored it before it was split by type.
    #[derive(Serialize)]
    enum OldAcc {
        Sum { n: i64, isum: i64, sum: f64 },
    }

    #[test]
    fn sums_of_old_checkpoints_read_back_for_either_type() {
        let mut bytes = Vec::new();
        let old = vec![OldAcc::Sum {
            n: 2,
            isum: 7,
            sum: 7.5,
        }];
        ciborium::into_writer(&old, &mut bytes).unwrap();
        let accs: Vec<Acc> = ciborium::from_reader(bytes.as_slice()).unwrap();
        let int_sum = spec(AggKind::Sum, SqlType::Int);
        assert_eq!(int_sum.result(&accs[0]), Value::Int(7));
        assert_eq!(
            spec(AggKind::Avg, SqlType::Int).result(&accs[0]),
            Value::Int(3)
        );
        let double_sum = spec(AggKind::Sum, SqlType::Double);
        assert_eq!(double_sum.result(&accs[0]), Value::Double(7.5));
        // Touched once, it is the typed accumulator and goes on from the old values.
        let mut acc = accs[0].clone();
        int_sum.add_value(&mut acc, Value::Int(3));
        assert!(matches!(acc, Acc::IntSum { n: 3, sum: 10 }), "{acc:?}");
        let mut acc = accs[0].clone();
        double_sum.merge(&mut acc, Acc::DoubleSum { n: 1, sum: 0.5 });
        assert!(
            matches!(acc, Acc::DoubleSum { n: 3, sum } if sum == 8.0),
            "{acc:?}"
        );
    }
}
