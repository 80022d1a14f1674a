//! CAST between SQL types, and values as text, as Flink converts them.

use super::*;

pub(super) fn text(v: &Value) -> Option<String> {
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

pub(super) fn narrow(i: i64, t: SqlType) -> i64 {
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
