//! Evaluating a compiled function call over a row.

use super::*;

pub(super) fn num1(v: Value, f: impl Fn(f64) -> f64) -> Value {
    match v.as_f64() {
        Some(x) => Value::Double(f(x)),
        None => Value::Null,
    }
}

/// Evaluates a call.
pub fn call(func: &Func, args: &[Scalar], row: &[Value]) -> Result<Value, String> {
    // Lazily evaluated ones first.
    match func {
        Func::Coalesce => {
            for a in args {
                let v = a.eval(row)?;
                if !v.is_null() {
                    return Ok(v);
                }
            }
            return Ok(Value::Null);
        }
        Func::If => {
            return match args[0].eval(row)? {
                Value::Bool(true) => args[1].eval(row),
                _ => args[2].eval(row),
            }
        }
        Func::CurrentTimestamp => return Ok(Value::Ts(crate::storage::now_ms() as i64)),
        _ => {}
    }
    let values: Vec<Value> = args.iter().map(|a| a.eval(row)).collect::<Result<_, _>>()?;
    let null_in = values.iter().any(Value::is_null);
    let s = |i: usize| text(&values[i]).unwrap_or_default();
    Ok(match func {
        Func::Concat => {
            if null_in {
                return Ok(Value::Null);
            }
            Value::str(&values.iter().filter_map(text).collect::<String>())
        }
        Func::ConcatWs => {
            let Some(sep) = text(&values[0]) else {
                return Ok(Value::Null);
            };
            Value::str(
                &values[1..]
                    .iter()
                    .filter_map(text)
                    .collect::<Vec<_>>()
                    .join(&sep),
            )
        }
        Func::NullIf => {
            if values[0].sql_cmp(&values[1]).is_some_and(|o| o.is_eq()) {
                Value::Null
            } else {
                values[0].clone()
            }
        }
        _ if null_in => Value::Null,
        Func::Upper => Value::str(&s(0).to_uppercase()),
        Func::Lower => Value::str(&s(0).to_lowercase()),
        Func::Initcap => {
            let mut out = String::new();
            let mut start = true;
            for c in s(0).chars() {
                if c.is_alphanumeric() {
                    if start {
                        out.extend(c.to_uppercase())
                    } else {
                        out.extend(c.to_lowercase())
                    }
                    start = false;
                } else {
                    out.push(c);
                    start = true;
                }
            }
            Value::str(&out)
        }
        Func::CharLength => Value::Int(s(0).chars().count() as i64),
        Func::Substring => {
            let chars: Vec<char> = s(0).chars().collect();
            let from = values[1].as_i64().unwrap_or(1);
            let start = if from > 0 {
                from - 1
            } else if from < 0 {
                chars.len() as i64 + from
            } else {
                0
            }
            .max(0) as usize;
            let len = match values.get(2) {
                Some(l) => {
                    let l = l.as_i64().unwrap_or(0);
                    if l < 0 {
                        return Err(format!("SUBSTRING length {l} is negative"));
                    }
                    l as usize
                }
                None => usize::MAX,
            };
            Value::str(&chars.iter().skip(start).take(len).collect::<String>())
        }
        Func::Trim(mode) => {
            let st = s(0);
            let what: Vec<char> = match values.get(1) {
                Some(w) => text(w).unwrap_or_default().chars().collect(),
                None => vec![' '],
            };
            let t = match mode {
                1 => st.trim_start_matches(&what[..]),
                2 => st.trim_end_matches(&what[..]),
                _ => st.trim_matches(&what[..]),
            };
            Value::str(t)
        }
        Func::Replace => Value::str(&s(0).replace(&s(1), &s(2))),
        Func::Position => {
            let (needle, hay) = (s(0), s(1));
            Value::Int(match hay.find(&needle) {
                Some(byte) => hay[..byte].chars().count() as i64 + 1,
                None => 0,
            })
        }
        Func::Lpad | Func::Rpad => {
            let base: Vec<char> = s(0).chars().collect();
            let len = values[1].as_i64().unwrap_or(0);
            let pad: Vec<char> = s(2).chars().collect();
            if len < 0 {
                return Ok(Value::Null);
            }
            let len = len as usize;
            if base.len() >= len {
                Value::str(&base[..len].iter().collect::<String>())
            } else if pad.is_empty() {
                Value::str(&base.iter().collect::<String>())
            } else {
                let fill: String = pad.iter().cycle().take(len - base.len()).collect();
                let base: String = base.iter().collect();
                Value::str(&if *func == Func::Lpad {
                    fill + &base
                } else {
                    base + &fill
                })
            }
        }
        Func::Abs => match &values[0] {
            Value::Int(i) => Value::Int(i.abs()),
            v => num1(v.clone(), f64::abs),
        },
        Func::Round | Func::Truncate => {
            let digits = values.get(1).and_then(Value::as_i64).unwrap_or(0) as i32;
            match &values[0] {
                Value::Int(i) if digits >= 0 => Value::Int(*i),
                Value::Int(i) => {
                    let f = 10i64.pow((-digits) as u32);
                    Value::Int(if *func == Func::Round {
                        (i + f / 2 * i.signum()) / f * f
                    } else {
                        i / f * f
                    })
                }
                v => {
                    let x = v.as_f64().unwrap_or(f64::NAN);
                    if *func == Func::Round {
                        Value::Double(crate::analytics::value::round_half_up(x, digits))
                    } else {
                        let f = 10f64.powi(digits);
                        Value::Double((x * f).trunc() / f)
                    }
                }
            }
        }
        Func::Floor => match &values[0] {
            Value::Int(i) => Value::Int(*i),
            v => num1(v.clone(), f64::floor),
        },
        Func::Ceil => match &values[0] {
            Value::Int(i) => Value::Int(*i),
            v => num1(v.clone(), f64::ceil),
        },
        Func::Power => match (values[0].as_f64(), values[1].as_f64()) {
            (Some(a), Some(b)) => Value::Double(a.powf(b)),
            _ => Value::Null,
        },
        Func::Sqrt => num1(values[0].clone(), f64::sqrt),
        Func::Ln => num1(values[0].clone(), f64::ln),
        Func::Log10 => num1(values[0].clone(), f64::log10),
        Func::Log2 => num1(values[0].clone(), f64::log2),
        Func::Exp => num1(values[0].clone(), f64::exp),
        Func::Sign => match &values[0] {
            Value::Int(i) => Value::Int(i.signum()),
            v => num1(v.clone(), |x| if x == 0.0 { 0.0 } else { x.signum() }),
        },
        Func::Mod => match (&values[0], &values[1]) {
            (Value::Int(a), Value::Int(b)) => {
                if *b == 0 {
                    return Err("division by zero".into());
                }
                Value::Int(a % b)
            }
            (a, b) => match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => Value::Double(x % y),
                _ => Value::Null,
            },
        },
        Func::JsonValue(path, ty) => json_value(&s(0), path, *ty),
        Func::Extract(unit) => extract(*unit, &values[0])
            .map(Value::Int)
            .unwrap_or(Value::Null),
        Func::TimeRound(unit, ceil) => {
            let Value::Ts(t) = values[0] else {
                return Ok(values[0].clone());
            };
            match unit_ms(*unit) {
                Some(u) => {
                    let floor = t - t.rem_euclid(u);
                    Value::Ts(if *ceil && floor != t {
                        floor + u
                    } else {
                        floor
                    })
                }
                None => {
                    let (y, m, _) = civil_from_days(t.div_euclid(86_400_000));
                    let start = match unit {
                        TimeUnit::Year => days_from_civil(y, 1, 1),
                        TimeUnit::Quarter => days_from_civil(y, (m - 1) / 3 * 3 + 1, 1),
                        _ => days_from_civil(y, m, 1),
                    } * 86_400_000;
                    let months = match unit {
                        TimeUnit::Year => 12,
                        TimeUnit::Quarter => 3,
                        _ => 1,
                    };
                    Value::Ts(if *ceil && start != t {
                        add_months(start, months)
                    } else {
                        start
                    })
                }
            }
        }
        Func::DateFormat => match &values[0] {
            Value::Ts(t) => Value::str(&date_format(*t, &s(1))),
            Value::Str(st) => match parse_timestamp(st) {
                Some(t) => Value::str(&date_format(t, &s(1))),
                None => Value::Null,
            },
            _ => Value::Null,
        },
        Func::TimestampAdd(unit) => {
            let n = values[0].as_i64().unwrap_or(0);
            let Value::Ts(t) = values[1] else {
                return Ok(Value::Null);
            };
            Value::Ts(match unit_ms(*unit) {
                Some(u) => t + n * u,
                None => add_months(
                    t,
                    n * match unit {
                        TimeUnit::Year => 12,
                        TimeUnit::Quarter => 3,
                        _ => 1,
                    },
                ),
            })
        }
        Func::TimestampDiff(unit) => {
            let (Value::Ts(a), Value::Ts(b)) = (&values[0], &values[1]) else {
                return Ok(Value::Null);
            };
            Value::Int(match unit_ms(*unit) {
                Some(u) => (b - a) / u,
                None => {
                    let months = |t: i64| {
                        let (y, m, _) = civil_from_days(t.div_euclid(86_400_000));
                        y * 12 + m as i64
                    };
                    let mut diff = months(*b) - months(*a);
                    if diff > 0 && add_months(*a, diff) > *b {
                        diff -= 1;
                    } else if diff < 0 && add_months(*a, diff) < *b {
                        diff += 1;
                    }
                    match unit {
                        TimeUnit::Year => diff / 12,
                        TimeUnit::Quarter => diff / 3,
                        _ => diff,
                    }
                }
            })
        }
        Func::ToTimestamp => match parse_timestamp(&s(0)) {
            Some(t) => Value::Ts(t),
            None => Value::Null,
        },
        Func::ToTimestampLtz => {
            let precision = values.get(1).and_then(Value::as_i64).unwrap_or(3);
            match values[0].as_i64() {
                Some(n) if precision == 0 => Value::Ts(n * 1000),
                Some(n) => Value::Ts(n),
                None => Value::Null,
            }
        }
        Func::UnixTimestamp => match values.first() {
            None => Value::Int(crate::storage::now_ms() as i64 / 1000),
            Some(_) => match parse_timestamp(&s(0)) {
                Some(t) => Value::Int(t.div_euclid(1000)),
                None => Value::Null,
            },
        },
        Func::Coalesce | Func::If | Func::CurrentTimestamp => unreachable!("evaluated above"),
    })
}
