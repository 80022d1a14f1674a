//! Scalar functions (string, math, NULL handling, JSON, time) and CAST, named and typed as
//! Flink names and types them: here their names, types and compilation; `eval` runs them,
//! `cast`, `time` and `json` are the conversions, calendar arithmetic and JSON paths they use.
//! Aggregate functions are planned by `plan`, not here.

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

mod cast;
mod eval;
mod json;
mod time;

use cast::text;
pub use cast::{cast, cast_to_string};
pub use eval::call;
use json::{json_value, parse_path};
use time::{add_months, date_format, extract, unit_ms};

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
