//! Scalar functions (string, math, NULL handling, JSON, time) and CAST, named and typed as
//! Flink names and types them. Aggregate functions are planned by `plan`, not here.

use std::sync::Arc;

use sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentClause, FunctionArguments,
};

use super::expr::{compile, unify, Scalar, Scope, Typed};
use super::SqlError;
use crate::analytics::value::{
    civil_from_days, days_from_civil, format_date, format_double, format_timestamp, parse_date,
    parse_timestamp, SqlType, Value,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    Year,
    Quarter,
    Month,
    Week,
    Day,
    DayOfWeek,
    DayOfYear,
    Hour,
    Minute,
    Second,
    Millisecond,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Func {
    Upper,
    Lower,
    CharLength,
    Substring,
    Concat,
    ConcatWs,
    /// 0 both, 1 leading, 2 trailing.
    Trim(u8),
    Replace,
    Position,
    Lpad,
    Rpad,
    Initcap,
    Abs,
    Round,
    Truncate,
    Floor,
    Ceil,
    Power,
    Sqrt,
    Mod,
    Ln,
    Log10,
    Log2,
    Exp,
    Sign,
    Coalesce,
    NullIf,
    If,
    /// The JSON path, parsed; the RETURNING type.
    JsonValue(Vec<PathStep>, SqlType),
    Extract(TimeUnit),
    /// FLOOR/CEIL(ts TO unit): (unit, ceil)
    TimeRound(TimeUnit, bool),
    DateFormat,
    TimestampAdd(TimeUnit),
    TimestampDiff(TimeUnit),
    ToTimestamp,
    ToTimestampLtz,
    UnixTimestamp,
    CurrentTimestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PathStep {
    Key(String),
    Index(usize),
}

/// Names of the aggregate functions (planned elsewhere).
pub const AGGREGATES: &[&str] = &[
    "COUNT",
    "SUM",
    "MIN",
    "MAX",
    "AVG",
    "STDDEV_POP",
    "STDDEV_SAMP",
    "STDDEV",
    "VAR_POP",
    "VAR_SAMP",
    "VARIANCE",
    "FIRST_VALUE",
    "LAST_VALUE",
    "APPROX_COUNT_DISTINCT",
    "PERCENTILE",
    "PERCENTILE_CONT",
    "PERCENTILE_DISC",
    "LISTAGG",
    "COLLECT",
];

pub fn is_aggregate(name: &str) -> bool {
    AGGREGATES.iter().any(|a| a.eq_ignore_ascii_case(name))
}

/// The plain argument expressions of a call (no named args, no `*`).
pub fn plain_args<'a>(function: &'a Function, at: &Expr) -> Result<Vec<&'a Expr>, SqlError> {
    match &function.args {
        FunctionArguments::None => Ok(Vec::new()),
        FunctionArguments::List(list) => list
            .args
            .iter()
            .map(|arg| match arg {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e),
                _ => Err(SqlError::of(
                    at,
                    format!("argument {arg} of {} is not supported", function.name),
                )),
            })
            .collect(),
        FunctionArguments::Subquery(_) => Err(SqlError::of(at, "subqueries are not supported")),
    }
}

pub fn compile_call(function: &Function, at: &Expr, scope: &Scope) -> Result<Typed, SqlError> {
    let name = function.name.to_string().to_ascii_uppercase();
    if function.over.is_some() {
        return Err(SqlError::of(
            at,
            format!(
                "{name}(...) OVER (...) is allowed only as a SELECT item of a query over a table"
            ),
        ));
    }
    if is_aggregate(&name) {
        return Err(SqlError::of(
            at,
            format!("aggregate function {name} is not allowed here (use it in a SELECT with GROUP BY window_start, window_end, ... over a window table function, or with OVER)"),
        ));
    }
    let mut exprs = plain_args(function, at)?;
    // TIMESTAMPADD(unit, n, ts) and TIMESTAMPDIFF(unit, a, b): the unit is a word, not a column.
    let unit_word =
        if matches!(name.as_str(), "TIMESTAMPADD" | "TIMESTAMPDIFF") && !exprs.is_empty() {
            Some(exprs.remove(0).to_string().to_ascii_uppercase())
        } else {
            None
        };
    let args: Vec<Typed> = exprs
        .iter()
        .map(|e| compile(e, scope))
        .collect::<Result<_, _>>()?;
    let arity = |min: usize, max: usize| -> Result<(), SqlError> {
        if args.len() < min || args.len() > max {
            Err(SqlError::of(
                at,
                format!(
                    "{name} takes {} arguments, not {}",
                    if min == max {
                        min.to_string()
                    } else {
                        format!("{min} to {max}")
                    },
                    args.len()
                ),
            ))
        } else {
            Ok(())
        }
    };
    let first_ty = args.first().map(|a| a.ty).unwrap_or(SqlType::Null);
    let (func, ty) = match name.as_str() {
        "UPPER" => (arity(1, 1).map(|_| Func::Upper)?, SqlType::String),
        "LOWER" => (arity(1, 1).map(|_| Func::Lower)?, SqlType::String),
        "CHAR_LENGTH" | "CHARACTER_LENGTH" => {
            (arity(1, 1).map(|_| Func::CharLength)?, SqlType::Int)
        }
        "SUBSTRING" | "SUBSTR" => (arity(2, 3).map(|_| Func::Substring)?, SqlType::String),
        "CONCAT" => (arity(1, 64).map(|_| Func::Concat)?, SqlType::String),
        "CONCAT_WS" => (arity(2, 64).map(|_| Func::ConcatWs)?, SqlType::String),
        "LTRIM" => (arity(1, 1).map(|_| Func::Trim(1))?, SqlType::String),
        "RTRIM" => (arity(1, 1).map(|_| Func::Trim(2))?, SqlType::String),
        "REPLACE" => (arity(3, 3).map(|_| Func::Replace)?, SqlType::String),
        "LPAD" => (arity(3, 3).map(|_| Func::Lpad)?, SqlType::String),
        "RPAD" => (arity(3, 3).map(|_| Func::Rpad)?, SqlType::String),
        "INITCAP" => (arity(1, 1).map(|_| Func::Initcap)?, SqlType::String),
        "LOCATE" => (arity(2, 2).map(|_| Func::Position)?, SqlType::Int),
        "ABS" => (arity(1, 1).map(|_| Func::Abs)?, first_ty),
        "ROUND" => (arity(1, 2).map(|_| Func::Round)?, first_ty),
        "TRUNCATE" => (arity(1, 2).map(|_| Func::Truncate)?, first_ty),
        "POWER" | "POW" => (arity(2, 2).map(|_| Func::Power)?, SqlType::Double),
        "SQRT" => (arity(1, 1).map(|_| Func::Sqrt)?, SqlType::Double),
        "MOD" => (
            arity(2, 2).map(|_| Func::Mod)?,
            args.get(1).map(|a| a.ty).unwrap_or(first_ty),
        ),
        "LN" => (arity(1, 1).map(|_| Func::Ln)?, SqlType::Double),
        "LOG10" => (arity(1, 1).map(|_| Func::Log10)?, SqlType::Double),
        "LOG2" => (arity(1, 1).map(|_| Func::Log2)?, SqlType::Double),
        "EXP" => (arity(1, 1).map(|_| Func::Exp)?, SqlType::Double),
        "SIGN" => (arity(1, 1).map(|_| Func::Sign)?, first_ty),
        "COALESCE" | "IFNULL" => {
            arity(1, 64)?;
            let mut ty = SqlType::Null;
            for (a, e) in args.iter().zip(&exprs) {
                ty = unify(ty, a.ty, e)?;
            }
            (Func::Coalesce, ty)
        }
        "NULLIF" => (arity(2, 2).map(|_| Func::NullIf)?, first_ty),
        "IF" => {
            arity(3, 3)?;
            (Func::If, unify(args[1].ty, args[2].ty, at)?)
        }
        "JSON_VALUE" => {
            arity(2, 2)?;
            let path = match &args[1].scalar {
                Scalar::Lit(Value::Str(p)) => parse_path(p).map_err(|m| SqlError::of(at, m))?,
                _ => {
                    return Err(SqlError::of(
                        at,
                        "the path of JSON_VALUE must be a string literal",
                    ))
                }
            };
            let mut ty = SqlType::String;
            if let FunctionArguments::List(list) = &function.args {
                for clause in &list.clauses {
                    match clause {
                        FunctionArgumentClause::JsonReturningClause(r) => {
                            ty = super::ddl::sql_type(&r.data_type)
                                .map_err(|m| SqlError::of(at, m))?;
                        }
                        other => {
                            return Err(SqlError::of(
                                at,
                                format!("JSON_VALUE ... {other} is not supported"),
                            ))
                        }
                    }
                }
            }
            (Func::JsonValue(path, ty), ty)
        }
        "DATE_FORMAT" => (arity(2, 2).map(|_| Func::DateFormat)?, SqlType::String),
        "TIMESTAMPADD" | "TIMESTAMPDIFF" => {
            arity(2, 2)?;
            let unit = match unit_word.as_deref().unwrap_or_default() {
                "YEAR" => TimeUnit::Year,
                "QUARTER" => TimeUnit::Quarter,
                "MONTH" => TimeUnit::Month,
                "WEEK" => TimeUnit::Week,
                "DAY" => TimeUnit::Day,
                "HOUR" => TimeUnit::Hour,
                "MINUTE" => TimeUnit::Minute,
                "SECOND" => TimeUnit::Second,
                other => {
                    return Err(SqlError::of(
                        at,
                        format!("{name} unit {other} is not supported"),
                    ))
                }
            };
            if name == "TIMESTAMPADD" {
                (Func::TimestampAdd(unit), args[1].ty)
            } else {
                (Func::TimestampDiff(unit), SqlType::Int)
            }
        }
        "TO_TIMESTAMP" => (arity(1, 2).map(|_| Func::ToTimestamp)?, SqlType::Timestamp),
        "TO_TIMESTAMP_LTZ" => (
            arity(1, 2).map(|_| Func::ToTimestampLtz)?,
            SqlType::TimestampLtz,
        ),
        "UNIX_TIMESTAMP" => (arity(0, 2).map(|_| Func::UnixTimestamp)?, SqlType::BigInt),
        "CURRENT_TIMESTAMP" | "NOW" | "LOCALTIMESTAMP" | "PROCTIME" | "CURRENT_ROW_TIMESTAMP" => (
            arity(0, 0).map(|_| Func::CurrentTimestamp)?,
            SqlType::TimestampLtz,
        ),
        "YEAR" => (
            arity(1, 1).map(|_| Func::Extract(TimeUnit::Year))?,
            SqlType::BigInt,
        ),
        "QUARTER" => (
            arity(1, 1).map(|_| Func::Extract(TimeUnit::Quarter))?,
            SqlType::BigInt,
        ),
        "MONTH" => (
            arity(1, 1).map(|_| Func::Extract(TimeUnit::Month))?,
            SqlType::BigInt,
        ),
        "DAYOFMONTH" => (
            arity(1, 1).map(|_| Func::Extract(TimeUnit::Day))?,
            SqlType::BigInt,
        ),
        "DAYOFYEAR" => (
            arity(1, 1).map(|_| Func::Extract(TimeUnit::DayOfYear))?,
            SqlType::BigInt,
        ),
        "DAYOFWEEK" => (
            arity(1, 1).map(|_| Func::Extract(TimeUnit::DayOfWeek))?,
            SqlType::BigInt,
        ),
        "HOUR" => (
            arity(1, 1).map(|_| Func::Extract(TimeUnit::Hour))?,
            SqlType::BigInt,
        ),
        "MINUTE" => (
            arity(1, 1).map(|_| Func::Extract(TimeUnit::Minute))?,
            SqlType::BigInt,
        ),
        "SECOND" => (
            arity(1, 1).map(|_| Func::Extract(TimeUnit::Second))?,
            SqlType::BigInt,
        ),
        _ => {
            return Err(SqlError::of(
                at,
                format!("function {name} is not supported (docs/analytics.md lists the functions)"),
            ))
        }
    };
    Ok(Typed {
        ty,
        scalar: Scalar::Call(func, args.into_iter().map(|a| a.scalar).collect()),
    })
}

fn parse_path(path: &str) -> Result<Vec<PathStep>, String> {
    let rest = path
        .trim()
        .strip_prefix("$")
        .ok_or_else(|| format!("JSON path '{path}' must start with $"))?;
    let mut steps = Vec::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                let mut key = String::new();
                while let Some(&n) = chars.peek() {
                    if n == '.' || n == '[' {
                        break;
                    }
                    key.push(n);
                    chars.next();
                }
                if key.is_empty() {
                    return Err(format!("JSON path '{path}' has an empty key"));
                }
                steps.push(PathStep::Key(key));
            }
            '[' => {
                let mut inside = String::new();
                for n in chars.by_ref() {
                    if n == ']' {
                        break;
                    }
                    inside.push(n);
                }
                let inside = inside.trim();
                if let Some(key) = inside.strip_prefix('\'').and_then(|k| k.strip_suffix('\'')) {
                    steps.push(PathStep::Key(key.to_string()));
                } else {
                    let i = inside
                        .parse()
                        .map_err(|_| format!("JSON path '{path}': [{inside}] is not an index"))?;
                    steps.push(PathStep::Index(i));
                }
            }
            _ => {
                return Err(format!(
                    "JSON path '{path}' is not supported (use $.a.b[0])"
                ))
            }
        }
    }
    Ok(steps)
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Str(s) => Some(s.to_string()),
        other => Some(cast_to_string(other)),
    }
}

/// CAST(v AS to).
pub fn cast(v: Value, to: SqlType) -> Result<Value, String> {
    use SqlType as T;
    Ok(match (v, to) {
        (Value::Null, _) => Value::Null,
        (v, T::String) => Value::Str(Arc::from(cast_to_string(&v))),
        (Value::Int(i), t) if t.is_integer() => Value::Int(narrow(i, t)),
        (Value::Int(i), T::Float | T::Double | T::Decimal(..)) => Value::Double(i as f64),
        (Value::Double(d), t) if t.is_integer() => Value::Int(narrow(d.trunc() as i64, t)),
        (Value::Double(d), T::Double | T::Float) => Value::Double(d),
        (Value::Double(d), T::Decimal(_, s)) => {
            let f = 10f64.powi(s as i32);
            Value::Double((d * f).round() / f)
        }
        (Value::Bool(b), t) if t.is_integer() => Value::Int(b as i64),
        (Value::Str(s), t) if t.is_integer() => Value::Int(narrow(
            s.trim()
                .parse::<i64>()
                .map_err(|_| format!("cannot cast '{s}' to {}", t.name()))?,
            t,
        )),
        (Value::Str(s), T::Float | T::Double | T::Decimal(..)) => Value::Double(
            s.trim()
                .parse::<f64>()
                .map_err(|_| format!("cannot cast '{s}' to {}", to.name()))?,
        ),
        (Value::Str(s), T::Boolean) => match s.trim().to_ascii_lowercase().as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(format!("cannot cast '{s}' to BOOLEAN")),
        },
        (Value::Str(s), T::Timestamp | T::TimestampLtz) => Value::Ts(
            parse_timestamp(&s).ok_or_else(|| format!("cannot cast '{s}' to {}", to.name()))?,
        ),
        (Value::Str(s), T::Date) => {
            Value::Date(parse_date(s.trim()).ok_or_else(|| format!("cannot cast '{s}' to DATE"))?)
        }
        (Value::Ts(t), T::Timestamp | T::TimestampLtz) => Value::Ts(t),
        (Value::Ts(t), T::Date) => Value::Date(t.div_euclid(86_400_000) as i32),
        (Value::Ts(t), T::BigInt) => Value::Int(t.div_euclid(1000)),
        (Value::Date(d), T::Timestamp | T::TimestampLtz) => Value::Ts(d as i64 * 86_400_000),
        (Value::Date(d), T::Date) => Value::Date(d),
        (Value::Bool(b), T::Boolean) => Value::Bool(b),
        (Value::Int(i), T::Boolean) => Value::Bool(i != 0),
        (v, t) => return Err(format!("cannot cast {v} to {}", t.name())),
    })
}

fn narrow(i: i64, t: SqlType) -> i64 {
    match t {
        SqlType::TinyInt => i as i8 as i64,
        SqlType::SmallInt => i as i16 as i64,
        SqlType::Int => i as i32 as i64,
        _ => i,
    }
}

pub fn cast_to_string(v: &Value) -> String {
    match v {
        Value::Bool(b) => if *b { "TRUE" } else { "FALSE" }.into(),
        Value::Double(d) => format_double(*d),
        Value::Ts(t) => format_timestamp(*t),
        Value::Date(d) => format_date(*d),
        other => other.to_string(),
    }
}

fn date_format(ms: i64, pattern: &str) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, mo, d) = civil_from_days(days);
    let mut out = String::new();
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let mut n = 1;
        while i + n < chars.len() && chars[i + n] == c {
            n += 1;
        }
        let field = match c {
            'y' => Some(if n == 2 { y % 100 } else { y }),
            'M' => Some(mo as i64),
            'd' => Some(d as i64),
            'H' => Some(in_day / 3_600_000),
            'm' => Some(in_day / 60_000 % 60),
            's' => Some(in_day / 1000 % 60),
            'S' => Some(in_day % 1000),
            _ => None,
        };
        match field {
            Some(v) => out.push_str(&format!("{v:0n$}")),
            None if c == '\'' => {
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    out.push(chars[i]);
                    i += 1;
                }
                i += 1;
                continue;
            }
            None => (0..n).for_each(|_| out.push(c)),
        }
        i += n;
    }
    out
}

fn add_months(ms: i64, months: i64) -> i64 {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let total = y * 12 + (m as i64 - 1) + months;
    let (ny, nm) = (total.div_euclid(12), (total.rem_euclid(12) + 1) as u32);
    let dim = [
        31,
        if (ny % 4 == 0 && ny % 100 != 0) || ny % 400 == 0 {
            29
        } else {
            28
        },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let nd = d.min(dim[nm as usize - 1]);
    days_from_civil(ny, nm, nd) * 86_400_000 + in_day
}

fn unit_ms(unit: TimeUnit) -> Option<i64> {
    Some(match unit {
        TimeUnit::Week => 7 * 86_400_000,
        TimeUnit::Day => 86_400_000,
        TimeUnit::Hour => 3_600_000,
        TimeUnit::Minute => 60_000,
        TimeUnit::Second => 1000,
        TimeUnit::Millisecond => 1,
        _ => return None,
    })
}

fn extract(unit: TimeUnit, v: &Value) -> Option<i64> {
    let ms = match v {
        Value::Ts(t) => *t,
        Value::Date(d) => *d as i64 * 86_400_000,
        _ => return None,
    };
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    Some(match unit {
        TimeUnit::Year => y,
        TimeUnit::Quarter => (m as i64 - 1) / 3 + 1,
        TimeUnit::Month => m as i64,
        TimeUnit::Day => d as i64,
        TimeUnit::DayOfWeek => (days + 4).rem_euclid(7) + 1,
        TimeUnit::DayOfYear => days - days_from_civil(y, 1, 1) + 1,
        TimeUnit::Week => {
            // ISO week number.
            let dow = (days + 3).rem_euclid(7); // Monday = 0
            let thursday = days - dow + 3;
            let (ty, _, _) = civil_from_days(thursday);
            (thursday - days_from_civil(ty, 1, 1)) / 7 + 1
        }
        TimeUnit::Hour => in_day / 3_600_000,
        TimeUnit::Minute => in_day / 60_000 % 60,
        TimeUnit::Second => in_day / 1000 % 60,
        TimeUnit::Millisecond => in_day % 1000 + in_day / 1000 % 60 * 1000,
    })
}

fn json_value(doc: &str, path: &[PathStep], ty: SqlType) -> Value {
    let Ok(mut node) = serde_json::from_str::<serde_json::Value>(doc) else {
        return Value::Null;
    };
    for step in path {
        node = match (step, node) {
            (PathStep::Key(k), serde_json::Value::Object(mut map)) => match map.remove(k) {
                Some(v) => v,
                None => return Value::Null,
            },
            (PathStep::Index(i), serde_json::Value::Array(mut items)) if *i < items.len() => {
                items.swap_remove(*i)
            }
            _ => return Value::Null,
        };
    }
    let scalar = match node {
        serde_json::Value::String(s) => Value::str(&s),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) if !ty.is_approximate() => Value::Int(i),
            _ => Value::Double(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::Bool(b) => Value::Bool(b),
        _ => return Value::Null,
    };
    match ty {
        SqlType::String => match scalar {
            Value::Str(_) => scalar,
            Value::Int(i) => Value::str(&i.to_string()),
            Value::Double(d) => Value::str(
                &serde_json::Number::from_f64(d)
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
            ),
            Value::Bool(b) => Value::str(if b { "true" } else { "false" }),
            other => other,
        },
        ty => cast(scalar, ty).unwrap_or(Value::Null),
    }
}

fn num1(v: Value, f: impl Fn(f64) -> f64) -> Value {
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
