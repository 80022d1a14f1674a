//! Evaluating a compiled expression over a row: three-valued logic, Flink's arithmetic,
//! LIKE.

use super::*;

impl Scalar {
    /// Evaluates over one row.
    pub fn eval(&self, row: &[Value]) -> EvalResult {
        Ok(match self {
            Scalar::Col(i) => row.get(*i).cloned().unwrap_or(Value::Null),
            Scalar::Lit(v) => v.clone(),
            Scalar::Neg(e) => match e.eval(row)? {
                Value::Int(i) => Value::Int(i.checked_neg().ok_or("integer overflow")?),
                Value::Double(d) => Value::Double(-d),
                Value::Interval(i) => Value::Interval(-i),
                _ => Value::Null,
            },
            Scalar::Not(e) => match e.eval(row)? {
                Value::Bool(b) => Value::Bool(!b),
                _ => Value::Null,
            },
            Scalar::Arith(op, a, b, ty) => arith(*op, a.eval(row)?, b.eval(row)?, *ty)?,
            Scalar::Cmp(op, a, b) => {
                let (a, b) = (a.eval(row)?, b.eval(row)?);
                match a.sql_cmp(&b) {
                    None => Value::Null,
                    Some(o) => Value::Bool(match op {
                        CmpOp::Eq => o.is_eq(),
                        CmpOp::Ne => o.is_ne(),
                        CmpOp::Lt => o.is_lt(),
                        CmpOp::Le => o.is_le(),
                        CmpOp::Gt => o.is_gt(),
                        CmpOp::Ge => o.is_ge(),
                    }),
                }
            }
            Scalar::And(a, b) => match a.eval(row)? {
                Value::Bool(false) => Value::Bool(false),
                left => match (left, b.eval(row)?) {
                    (_, Value::Bool(false)) => Value::Bool(false),
                    (Value::Bool(true), Value::Bool(true)) => Value::Bool(true),
                    _ => Value::Null,
                },
            },
            Scalar::Or(a, b) => match a.eval(row)? {
                Value::Bool(true) => Value::Bool(true),
                left => match (left, b.eval(row)?) {
                    (_, Value::Bool(true)) => Value::Bool(true),
                    (Value::Bool(false), Value::Bool(false)) => Value::Bool(false),
                    _ => Value::Null,
                },
            },
            Scalar::IsNull(e, negated) => Value::Bool(e.eval(row)?.is_null() != *negated),
            Scalar::IsBool(e, truth, negated) => {
                let is = matches!(e.eval(row)?, Value::Bool(b) if b == *truth);
                Value::Bool(is != *negated)
            }
            Scalar::Case {
                operand,
                whens,
                otherwise,
            } => {
                let operand = operand.as_ref().map(|o| o.eval(row)).transpose()?;
                for (when, then) in whens {
                    let hit = match &operand {
                        Some(v) => v.sql_cmp(&when.eval(row)?).is_some_and(|o| o.is_eq()),
                        None => matches!(when.eval(row)?, Value::Bool(true)),
                    };
                    if hit {
                        return then.eval(row);
                    }
                }
                match otherwise {
                    Some(e) => e.eval(row)?,
                    None => Value::Null,
                }
            }
            Scalar::Cast(e, to, lenient) => match functions::cast(e.eval(row)?, *to) {
                Ok(v) => v,
                Err(_) if *lenient => Value::Null,
                Err(message) => return Err(message),
            },
            Scalar::In(e, list, negated) => {
                let v = e.eval(row)?;
                if v.is_null() {
                    return Ok(Value::Null);
                }
                let mut saw_null = false;
                for item in list {
                    let item = item.eval(row)?;
                    match v.sql_cmp(&item) {
                        Some(o) if o.is_eq() => return Ok(Value::Bool(!*negated)),
                        None => saw_null = true,
                        _ => {}
                    }
                }
                if saw_null {
                    Value::Null
                } else {
                    Value::Bool(*negated)
                }
            }
            Scalar::Between(e, low, high, negated) => {
                let v = e.eval(row)?;
                let (lo, hi) = (v.sql_cmp(&low.eval(row)?), v.sql_cmp(&high.eval(row)?));
                match (lo, hi) {
                    (Some(lo), Some(hi)) => Value::Bool((lo.is_ge() && hi.is_le()) != *negated),
                    _ => Value::Null,
                }
            }
            Scalar::Like(e, pattern, negated) => match (e.eval(row)?, pattern.eval(row)?) {
                (Value::Str(s), Value::Str(p)) => Value::Bool(like(&s, &p) != *negated),
                _ => Value::Null,
            },
            Scalar::Call(func, args) => functions::call(func, args, row)?,
        })
    }

    /// True when the expression reads column `i`.
    pub fn reads(&self, i: usize) -> bool {
        match self {
            Scalar::Col(c) => *c == i,
            Scalar::Lit(_) => false,
            Scalar::Neg(e)
            | Scalar::Not(e)
            | Scalar::IsNull(e, _)
            | Scalar::IsBool(e, _, _)
            | Scalar::Cast(e, _, _) => e.reads(i),
            Scalar::Arith(_, a, b, _)
            | Scalar::Cmp(_, a, b)
            | Scalar::And(a, b)
            | Scalar::Or(a, b)
            | Scalar::Like(a, b, _) => a.reads(i) || b.reads(i),
            Scalar::Case {
                operand,
                whens,
                otherwise,
            } => {
                operand.as_ref().is_some_and(|o| o.reads(i))
                    || whens.iter().any(|(w, t)| w.reads(i) || t.reads(i))
                    || otherwise.as_ref().is_some_and(|o| o.reads(i))
            }
            Scalar::In(e, list, _) => e.reads(i) || list.iter().any(|l| l.reads(i)),
            Scalar::Between(a, b, c, _) => a.reads(i) || b.reads(i) || c.reads(i),
            Scalar::Call(_, args) => args.iter().any(|a| a.reads(i)),
        }
    }
}

pub(super) fn arith(op: ArithOp, a: Value, b: Value, ty: SqlType) -> EvalResult {
    use Value as V;
    Ok(match (a, b) {
        (V::Null, _) | (_, V::Null) => V::Null,
        (V::Int(x), V::Int(y)) if ty.is_integer() => {
            let narrow = !matches!(ty, SqlType::BigInt);
            let r = match op {
                ArithOp::Add => x.checked_add(y),
                ArithOp::Sub => x.checked_sub(y),
                ArithOp::Mul => x.checked_mul(y),
                ArithOp::Div => {
                    if y == 0 {
                        return Err("division by zero".into());
                    }
                    x.checked_div(y)
                }
                ArithOp::Mod => {
                    if y == 0 {
                        return Err("division by zero".into());
                    }
                    x.checked_rem(y)
                }
            }
            .ok_or("integer overflow")?;
            // INT arithmetic wraps at 32 bits as Java's int does.
            V::Int(if narrow { r as i32 as i64 } else { r })
        }
        (V::Ts(t), V::Interval(i)) => match op {
            ArithOp::Add => V::Ts(t + i),
            ArithOp::Sub => V::Ts(t - i),
            _ => return Err("bad interval arithmetic".into()),
        },
        (V::Interval(i), V::Ts(t)) => V::Ts(t + i),
        (V::Date(d), V::Interval(i)) => {
            let t = d as i64 * 86_400_000;
            V::Ts(if op == ArithOp::Add { t + i } else { t - i })
        }
        (V::Interval(x), V::Interval(y)) => {
            V::Interval(if op == ArithOp::Add { x + y } else { x - y })
        }
        (a, b) => {
            let (x, y) = match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => (x, y),
                _ => return Err(format!("cannot apply {op:?} to {a} and {b}")),
            };
            let r = match op {
                ArithOp::Add => x + y,
                ArithOp::Sub => x - y,
                ArithOp::Mul => x * y,
                ArithOp::Div => {
                    if y == 0.0 && matches!(ty, SqlType::Decimal(..)) {
                        return Err("division by zero".into());
                    }
                    x / y
                }
                ArithOp::Mod => x % y,
            };
            match ty {
                SqlType::Decimal(_, scale) => {
                    V::Double(crate::analytics::value::round_half_up(r, scale as i32))
                }
                _ => V::Double(r),
            }
        }
    })
}

/// SQL LIKE with `%` and `_`.
pub fn like(s: &str, pattern: &str) -> bool {
    let s: Vec<char> = s.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    let (mut si, mut pi) = (0usize, 0usize);
    let (mut star, mut mark) = (None, 0usize);
    while si < s.len() {
        if pi < p.len() && (p[pi] == '_' || p[pi] == s[si]) {
            si += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '%' {
        pi += 1;
    }
    pi == p.len()
}

/// A string value.
pub fn string(s: impl Into<Arc<str>>) -> Value {
    Value::Str(s.into())
}
