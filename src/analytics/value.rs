//! Values and SQL types of the analytics engine, with Flink's semantics where they differ from
//! the obvious (integer division, NULL in comparisons, timestamps as milliseconds).
//!
//! Invariant: a `Value` always fits the `SqlType` the planner gave its expression: integer
//! types are `Int`, approximate and exact numerics `Double` (DECIMAL is computed as a double:
//! a documented difference), TIMESTAMP(p) and TIMESTAMP_LTZ(p) are epoch milliseconds (UTC).

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A SQL type as the planner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SqlType {
    Null,
    Boolean,
    TinyInt,
    SmallInt,
    Int,
    BigInt,
    Float,
    Double,
    /// Precision and scale (computed as a double).
    Decimal(u8, u8),
    String,
    /// TIMESTAMP(p), without time zone: wall-clock UTC milliseconds.
    Timestamp,
    /// TIMESTAMP_LTZ(p): an instant (epoch milliseconds), shown in UTC.
    TimestampLtz,
    Date,
    /// INTERVAL ... : milliseconds.
    Interval,
}

impl SqlType {
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            SqlType::TinyInt | SqlType::SmallInt | SqlType::Int | SqlType::BigInt
        )
    }

    pub fn is_numeric(self) -> bool {
        self.is_integer()
            || matches!(
                self,
                SqlType::Float | SqlType::Double | SqlType::Decimal(..)
            )
    }

    pub fn is_approximate(self) -> bool {
        matches!(self, SqlType::Float | SqlType::Double)
    }

    pub fn is_time(self) -> bool {
        matches!(self, SqlType::Timestamp | SqlType::TimestampLtz)
    }

    /// The type of an arithmetic result of two numerics (Flink's rules, simplified).
    pub fn numeric_result(a: SqlType, b: SqlType) -> SqlType {
        use SqlType::*;
        match (a, b) {
            (Double, _) | (_, Double) => Double,
            (Float, _) | (_, Float) => Double,
            (Decimal(..), _) | (_, Decimal(..)) => {
                SqlType::decimal_result('+', a, b).unwrap_or(Double)
            }
            (BigInt, _) | (_, BigInt) => BigInt,
            (Null, x) | (x, Null) => x,
            _ => Int,
        }
    }

    /// Precision and scale of an exact numeric (integers are DECIMAL(n, 0) in arithmetic).
    pub fn decimal_shape(self) -> Option<(u32, u32)> {
        match self {
            SqlType::TinyInt => Some((3, 0)),
            SqlType::SmallInt => Some((5, 0)),
            SqlType::Int => Some((10, 0)),
            SqlType::BigInt => Some((19, 0)),
            SqlType::Decimal(p, s) => Some((p as u32, s as u32)),
            _ => None,
        }
    }

    /// The DECIMAL type of `a op b` when one side is a DECIMAL (Flink's rules, from Calcite
    /// and Hive: precision at most 38, at least 6 digits of scale kept for a division).
    pub fn decimal_result(op: char, a: SqlType, b: SqlType) -> Option<SqlType> {
        if !matches!(a, SqlType::Decimal(..)) && !matches!(b, SqlType::Decimal(..)) {
            return None;
        }
        let ((p1, s1), (p2, s2)) = (a.decimal_shape()?, b.decimal_shape()?);
        let (p, s) = match op {
            '+' | '-' => {
                let s = s1.max(s2);
                ((p1 - s1).max(p2 - s2) + s + 1, s)
            }
            '*' => (p1 + p2, s1 + s2),
            '/' => {
                let s = 6.max(s1 + p2 + 1);
                (p1 - s1 + s2 + s, s)
            }
            _ => {
                let s = s1.max(s2);
                ((p1 - s1).min(p2 - s2) + s, s)
            }
        };
        let (p, s) = if p > 38 {
            let s = s.saturating_sub(p - 38).max(s.min(6));
            (38, s)
        } else {
            (p, s)
        };
        Some(SqlType::Decimal(p as u8, s as u8))
    }

    /// The name Flink gives the type, for messages.
    pub fn name(self) -> String {
        match self {
            SqlType::Null => "NULL".into(),
            SqlType::Boolean => "BOOLEAN".into(),
            SqlType::TinyInt => "TINYINT".into(),
            SqlType::SmallInt => "SMALLINT".into(),
            SqlType::Int => "INT".into(),
            SqlType::BigInt => "BIGINT".into(),
            SqlType::Float => "FLOAT".into(),
            SqlType::Double => "DOUBLE".into(),
            SqlType::Decimal(p, s) => format!("DECIMAL({p}, {s})"),
            SqlType::String => "STRING".into(),
            SqlType::Timestamp => "TIMESTAMP(3)".into(),
            SqlType::TimestampLtz => "TIMESTAMP_LTZ(3)".into(),
            SqlType::Date => "DATE".into(),
            SqlType::Interval => "INTERVAL".into(),
        }
    }
}

/// One value of a row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(Arc<str>),
    /// Epoch milliseconds (TIMESTAMP and TIMESTAMP_LTZ).
    Ts(i64),
    /// Days since 1970-01-01.
    Date(i32),
    /// Milliseconds.
    Interval(i64),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn str(s: &str) -> Value {
        Value::Str(Arc::from(s))
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Double(d) => Some(*d),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) | Value::Ts(i) | Value::Interval(i) => Some(*i),
            Value::Double(d) => Some(*d as i64),
            Value::Date(d) => Some(*d as i64),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// SQL comparison: None when either side is NULL (or the two cannot be compared).
    pub fn sql_cmp(&self, other: &Value) -> Option<Ordering> {
        match (self, other) {
            (Value::Null, _) | (_, Value::Null) => None,
            (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
            (Value::Str(a), Value::Str(b)) => Some(a.as_ref().cmp(b.as_ref())),
            (Value::Ts(a), Value::Ts(b)) => Some(a.cmp(b)),
            (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
            (Value::Date(a), Value::Date(b)) => Some(a.cmp(b)),
            (Value::Interval(a), Value::Interval(b)) => Some(a.cmp(b)),
            (a, b) => match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => x.partial_cmp(&y),
                _ => None,
            },
        }
    }

    /// A total order for sorting and MIN/MAX (NULL first).
    pub fn total_cmp(&self, other: &Value) -> Ordering {
        match (self, other) {
            (Value::Null, Value::Null) => Ordering::Equal,
            (Value::Null, _) => Ordering::Less,
            (_, Value::Null) => Ordering::Greater,
            (Value::Double(a), Value::Double(b)) => a.total_cmp(b),
            (a, b) => a.sql_cmp(b).unwrap_or(Ordering::Equal),
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Double(a), Value::Double(b)) => a.to_bits() == b.to_bits(),
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Ts(a), Value::Ts(b)) => a == b,
            (Value::Date(a), Value::Date(b)) => a == b,
            (Value::Interval(a), Value::Interval(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Value {}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            Value::Null => {}
            Value::Bool(b) => b.hash(state),
            Value::Int(i) | Value::Ts(i) | Value::Interval(i) => i.hash(state),
            Value::Double(d) => d.to_bits().hash(state),
            Value::Str(s) => s.hash(state),
            Value::Date(d) => d.hash(state),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Bool(b) => f.write_str(if *b { "TRUE" } else { "FALSE" }),
            Value::Int(i) => write!(f, "{i}"),
            Value::Double(d) => f.write_str(&format_double(*d)),
            Value::Str(s) => f.write_str(s),
            Value::Ts(ms) => f.write_str(&format_timestamp(*ms)),
            Value::Date(d) => f.write_str(&format_date(*d)),
            Value::Interval(ms) => write!(f, "{ms} ms"),
        }
    }
}

/// Rounds `x` to `scale` decimal places, HALF_UP on its shortest decimal form (as Java's
/// `BigDecimal.valueOf(x).setScale(scale, HALF_UP)`, which Flink's ROUND and DECIMAL use).
pub fn round_half_up(x: f64, scale: i32) -> f64 {
    if !x.is_finite() {
        return x;
    }
    let text = format!("{}", x.abs());
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let digits: Vec<u8> = int.bytes().chain(frac.bytes()).map(|b| b - b'0').collect();
    let point = int.len() as i32;
    let keep = point + scale;
    if keep >= digits.len() as i32 {
        return x;
    }
    if keep < 0 {
        return 0.0 * x.signum();
    }
    let mut kept: Vec<u8> = digits[..keep as usize].to_vec();
    if digits[keep as usize] >= 5 {
        let mut i = kept.len();
        loop {
            if i == 0 {
                kept.insert(0, 1);
                break;
            }
            i -= 1;
            if kept[i] == 9 {
                kept[i] = 0;
            } else {
                kept[i] += 1;
                break;
            }
        }
    }
    let grown = kept.len() as i32 - keep;
    let point = (point + grown) as usize;
    let mut out = String::new();
    for (i, d) in kept.iter().enumerate() {
        if i == point {
            out.push('.');
        }
        out.push((b'0' + d) as char);
    }
    if point >= kept.len() {
        for _ in kept.len()..point {
            out.push('0');
        }
    }
    let value: f64 = if out.is_empty() {
        0.0
    } else {
        out.parse().unwrap_or(x.abs())
    };
    value * x.signum()
}

/// A double as Java prints it (`1.0`, `1.5E10`), as Flink's CAST to STRING does.
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "NaN".into();
    }
    if d.is_infinite() {
        return if d > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let abs = d.abs();
    if abs == 0.0 || (1e-3..1e7).contains(&abs) {
        let s = format!("{d}");
        if s.contains('.') {
            s
        } else {
            format!("{s}.0")
        }
    } else {
        let s = format!("{d:E}");
        // Rust: 1.5E10, 1E-5; Java: 1.5E10, 1.0E-5.
        match s.split_once('E') {
            Some((m, e)) if !m.contains('.') => format!("{m}.0E{e}"),
            _ => s,
        }
    }
}

const MS_PER_DAY: i64 = 86_400_000;

/// `yyyy-MM-dd HH:mm:ss.SSS` (UTC).
pub fn format_timestamp(ms: i64) -> String {
    let days = ms.div_euclid(MS_PER_DAY);
    let in_day = ms.rem_euclid(MS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

pub fn format_date(days: i32) -> String {
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Parses `yyyy-MM-dd[ |T]HH:mm[:ss[.f...]][Z]` (UTC) or `yyyy-MM-dd` to epoch milliseconds.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    let s = s.strip_suffix('Z').unwrap_or(s);
    let (date, time) = match s.find([' ', 'T']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let days = parse_date(date)? as i64;
    let mut ms = 0i64;
    if let Some(time) = time {
        let (hms, frac) = match time.split_once('.') {
            Some((hms, frac)) => (hms, Some(frac)),
            None => (time, None),
        };
        let mut parts = hms.split(':');
        let h: i64 = parts.next()?.parse().ok()?;
        let m: i64 = parts.next()?.parse().ok()?;
        let sec: i64 = match parts.next() {
            Some(p) => p.parse().ok()?,
            None => 0,
        };
        if parts.next().is_some() || h > 23 || m > 59 || sec > 59 {
            return None;
        }
        ms = (h * 3600 + m * 60 + sec) * 1000;
        if let Some(frac) = frac {
            if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let digits: String = frac.chars().chain("000".chars()).take(3).collect();
            ms += digits.parse::<i64>().ok()?;
        }
    }
    Some(days * MS_PER_DAY + ms)
}

/// `yyyy-MM-dd` to days since the epoch.
pub fn parse_date(s: &str) -> Option<i32> {
    let mut parts = s.split('-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d) as i32)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Howard Hinnant's days_from_civil.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Howard Hinnant's civil_from_days: (year, month, day).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        for s in [
            "2026-01-01 00:00:00.000",
            "1999-12-31 23:59:59.999",
            "2024-02-29 12:34:56.789",
        ] {
            assert_eq!(format_timestamp(parse_timestamp(s).unwrap()), s);
        }
        assert_eq!(
            parse_timestamp("2026-01-01T00:00:01.5Z"),
            Some(1_767_225_601_500)
        );
        assert_eq!(parse_timestamp("2026-02-30 00:00:00"), None);
        assert_eq!(format_timestamp(-1), "1969-12-31 23:59:59.999");
    }

    #[test]
    fn rounding_is_half_up_on_the_decimal_form() {
        assert_eq!(round_half_up(2.675, 2), 2.68);
        assert_eq!(round_half_up(-2.5, 0), -3.0);
        assert_eq!(round_half_up(16.666666666666668, 6), 16.666667);
        assert_eq!(round_half_up(9.995, 2), 10.0);
        assert_eq!(round_half_up(1234.5, -2), 1200.0);
        assert_eq!(round_half_up(0.125, 5), 0.125);
    }

    #[test]
    fn doubles_print_as_java() {
        assert_eq!(format_double(1.0), "1.0");
        assert_eq!(format_double(0.5), "0.5");
        assert_eq!(format_double(1.5e10), "1.5E10");
        assert_eq!(format_double(1e-5), "1.0E-5");
    }
}
