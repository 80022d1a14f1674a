//! Literals, INTERVALs and time units, as compiled expressions.

use super::*;

pub(super) fn literal(value: &SqlValue, at: &Expr) -> Result<Typed, SqlError> {
    Ok(match value {
        SqlValue::Number(text, _) => {
            if let Ok(i) = text.parse::<i64>() {
                let ty = if i32::try_from(i).is_ok() {
                    SqlType::Int
                } else {
                    SqlType::BigInt
                };
                Typed {
                    scalar: Scalar::Lit(Value::Int(i)),
                    ty,
                }
            } else {
                let d: f64 = text
                    .parse()
                    .map_err(|_| SqlError::of(at, format!("{text} is not a number")))?;
                let ty = if text.contains(['e', 'E']) {
                    SqlType::Double
                } else {
                    let scale = text.split_once('.').map(|(_, f)| f.len()).unwrap_or(0) as u8;
                    let digits = text
                        .trim_start_matches(['-', '0', '.'])
                        .bytes()
                        .filter(u8::is_ascii_digit)
                        .count()
                        .max(scale as usize)
                        .max(1);
                    SqlType::Decimal(digits as u8, scale)
                };
                Typed {
                    scalar: Scalar::Lit(Value::Double(d)),
                    ty,
                }
            }
        }
        SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => Typed {
            scalar: Scalar::Lit(Value::str(s)),
            ty: SqlType::String,
        },
        SqlValue::Boolean(b) => Typed {
            scalar: Scalar::Lit(Value::Bool(*b)),
            ty: SqlType::Boolean,
        },
        SqlValue::Null => Typed {
            scalar: Scalar::Lit(Value::Null),
            ty: SqlType::Null,
        },
        other => {
            return Err(SqlError::of(
                at,
                format!("literal {other} is not supported"),
            ))
        }
    })
}

/// An `INTERVAL 'n' UNIT` literal in milliseconds.
pub fn interval_ms(interval: &sqlparser::ast::Interval, at: &Expr) -> Result<i64, SqlError> {
    let text = match interval.value.as_ref() {
        Expr::Value(v) => match &v.value {
            SqlValue::SingleQuotedString(s) => s.clone(),
            SqlValue::Number(n, _) => n.clone(),
            other => other.to_string(),
        },
        other => other.to_string(),
    };
    let unit = interval
        .leading_field
        .as_ref()
        .ok_or_else(|| SqlError::of(at, "an INTERVAL needs a unit (INTERVAL '5' SECOND)"))?;
    if interval.last_field.is_some() {
        return Err(SqlError::of(
            at,
            "INTERVAL ... TO ... is not supported: use one unit (INTERVAL '90' SECOND)",
        ));
    }
    let unit_ms = match time_unit(unit, at)? {
        TimeUnit::Millisecond => 1.0,
        TimeUnit::Second => 1_000.0,
        TimeUnit::Minute => 60_000.0,
        TimeUnit::Hour => 3_600_000.0,
        TimeUnit::Day => 86_400_000.0,
        _ => {
            return Err(SqlError::of(
                at,
                "INTERVAL units are MILLISECOND, SECOND, MINUTE, HOUR and DAY here",
            ))
        }
    };
    let n: f64 = text
        .trim()
        .parse()
        .map_err(|_| SqlError::of(at, format!("'{text}' is not a number of {unit}s")))?;
    Ok((n * unit_ms).round() as i64)
}

pub fn time_unit(field: &DateTimeField, at: &Expr) -> Result<TimeUnit, SqlError> {
    Ok(match field {
        DateTimeField::Year | DateTimeField::Years => TimeUnit::Year,
        DateTimeField::Quarter => TimeUnit::Quarter,
        DateTimeField::Month | DateTimeField::Months => TimeUnit::Month,
        DateTimeField::Week(_) | DateTimeField::Weeks => TimeUnit::Week,
        DateTimeField::Day | DateTimeField::Days => TimeUnit::Day,
        DateTimeField::DayOfWeek | DateTimeField::Dow => TimeUnit::DayOfWeek,
        DateTimeField::DayOfYear | DateTimeField::Doy => TimeUnit::DayOfYear,
        DateTimeField::Hour | DateTimeField::Hours => TimeUnit::Hour,
        DateTimeField::Minute | DateTimeField::Minutes => TimeUnit::Minute,
        DateTimeField::Second | DateTimeField::Seconds => TimeUnit::Second,
        DateTimeField::Millisecond | DateTimeField::Milliseconds => TimeUnit::Millisecond,
        other => {
            return Err(SqlError::of(
                at,
                format!("time unit {other} is not supported"),
            ))
        }
    })
}
