//! Expressions: sqlparser's `Expr` compiled against a scope of columns into a [`Scalar`] tree
//! with a result type, and evaluated over a row with Flink's semantics (three-valued logic,
//! NULL in, NULL out; INT / INT is an INT; errors, e.g. a division by zero, fail the row, not
//! the application).

use std::sync::Arc;

use sqlparser::ast::{
    BinaryOperator, CastKind, CeilFloorKind, DateTimeField, Expr, Ident, UnaryOperator,
    Value as SqlValue,
};

use super::functions::{self, Func, TimeUnit};
use super::SqlError;
use crate::analytics::value::{parse_date, parse_timestamp, SqlType, Value};

/// Why a row could not be evaluated (it goes to the error output).
pub type EvalResult = Result<Value, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A compiled expression.
#[derive(Debug, Clone)]
pub enum Scalar {
    Col(usize),
    Lit(Value),
    Neg(Box<Scalar>),
    Not(Box<Scalar>),
    Arith(ArithOp, Box<Scalar>, Box<Scalar>, SqlType),
    Cmp(CmpOp, Box<Scalar>, Box<Scalar>),
    And(Box<Scalar>, Box<Scalar>),
    Or(Box<Scalar>, Box<Scalar>),
    IsNull(Box<Scalar>, bool),
    /// IS [NOT] TRUE / FALSE: (operand, TRUE?, negated)
    IsBool(Box<Scalar>, bool, bool),
    Case {
        operand: Option<Box<Scalar>>,
        whens: Vec<(Scalar, Scalar)>,
        otherwise: Option<Box<Scalar>>,
    },
    Cast(Box<Scalar>, SqlType, bool),
    In(Box<Scalar>, Vec<Scalar>, bool),
    Between(Box<Scalar>, Box<Scalar>, Box<Scalar>, bool),
    Like(Box<Scalar>, Box<Scalar>, bool),
    Call(Func, Vec<Scalar>),
}

/// A compiled expression and its type.
#[derive(Debug, Clone)]
pub struct Typed {
    pub scalar: Scalar,
    pub ty: SqlType,
}

/// One column a scope offers: its name, the table (alias) it comes from, its type.
#[derive(Debug, Clone)]
pub struct ScopeColumn {
    pub name: String,
    pub qualifier: Option<String>,
    pub ty: SqlType,
}

/// What names and whole expressions mean where an expression is compiled.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub columns: Vec<ScopeColumn>,
    /// Whole expressions bound to a slot of the row (GROUP BY keys, aggregate calls).
    pub bound: Vec<(Expr, usize, SqlType)>,
    /// True after an aggregation: a column that is not a group key is an error.
    pub aggregated: bool,
}

impl Scope {
    pub fn new(columns: Vec<ScopeColumn>) -> Scope {
        Scope {
            columns,
            ..Scope::default()
        }
    }

    fn lookup(&self, parts: &[Ident], at: &Expr) -> Result<(usize, SqlType), SqlError> {
        let (qualifier, name) = match parts {
            [name] => (None, &name.value),
            [q, name] => (Some(&q.value), &name.value),
            _ => {
                return Err(SqlError::of(
                    at,
                    format!("column {at} is not supported (one qualifier at most)"),
                ))
            }
        };
        let matches: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                c.name.eq_ignore_ascii_case(name)
                    && qualifier.is_none_or(|q| {
                        c.qualifier
                            .as_deref()
                            .is_some_and(|cq| cq.eq_ignore_ascii_case(q))
                    })
            })
            .map(|(i, _)| i)
            .collect();
        match matches.as_slice() {
            [i] => Ok((*i, self.columns[*i].ty)),
            [] if self.aggregated => Err(SqlError::of(
                at,
                format!("column {at} is neither grouped nor aggregated: add it to GROUP BY or use it in an aggregate function"),
            )),
            [] => Err(SqlError::of(
                at,
                format!(
                    "column {at} not found (available: {})",
                    self.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
            )),
            _ => Err(SqlError::of(at, format!("column {at} is ambiguous: qualify it with its table"))),
        }
    }
}

/// Compiles `expr` in `scope`.
pub fn compile(expr: &Expr, scope: &Scope) -> Result<Typed, SqlError> {
    for (bound, slot, ty) in &scope.bound {
        if bound == expr {
            return Ok(Typed {
                scalar: Scalar::Col(*slot),
                ty: *ty,
            });
        }
    }
    let c = |e: &Expr| compile(e, scope);
    Ok(match expr {
        Expr::Identifier(ident) => {
            let (i, ty) = scope.lookup(std::slice::from_ref(ident), expr)?;
            Typed {
                scalar: Scalar::Col(i),
                ty,
            }
        }
        Expr::CompoundIdentifier(parts) => {
            let (i, ty) = scope.lookup(parts, expr)?;
            Typed {
                scalar: Scalar::Col(i),
                ty,
            }
        }
        Expr::Nested(inner) => c(inner)?,
        Expr::Value(v) => literal(&v.value, expr)?,
        Expr::Interval(interval) => {
            let ms = interval_ms(interval, expr)?;
            Typed {
                scalar: Scalar::Lit(Value::Interval(ms)),
                ty: SqlType::Interval,
            }
        }
        Expr::TypedString(typed) => {
            let ty = super::ddl::sql_type(&typed.data_type).map_err(|m| SqlError::of(expr, m))?;
            let text = match &typed.value.value {
                SqlValue::SingleQuotedString(s) => s.clone(),
                other => other.to_string(),
            };
            let value = match ty {
                SqlType::Timestamp | SqlType::TimestampLtz => parse_timestamp(&text).map(Value::Ts),
                SqlType::Date => parse_date(&text).map(Value::Date),
                _ => None,
            }
            .ok_or_else(|| {
                SqlError::of(
                    expr,
                    format!("'{text}' is not a valid {} literal", ty.name()),
                )
            })?;
            Typed {
                scalar: Scalar::Lit(value),
                ty,
            }
        }
        Expr::UnaryOp { op, expr: inner } => {
            let inner_t = c(inner)?;
            match op {
                UnaryOperator::Minus => {
                    if !inner_t.ty.is_numeric() && inner_t.ty != SqlType::Interval {
                        return Err(SqlError::of(
                            expr,
                            format!("cannot negate a {}", inner_t.ty.name()),
                        ));
                    }
                    Typed {
                        ty: inner_t.ty,
                        scalar: Scalar::Neg(Box::new(inner_t.scalar)),
                    }
                }
                UnaryOperator::Plus => inner_t,
                UnaryOperator::Not => {
                    expect_bool(&inner_t, inner)?;
                    Typed {
                        ty: SqlType::Boolean,
                        scalar: Scalar::Not(Box::new(inner_t.scalar)),
                    }
                }
                other => {
                    return Err(SqlError::of(
                        expr,
                        format!("operator {other} is not supported"),
                    ))
                }
            }
        }
        Expr::BinaryOp { left, op, right } => binary(expr, op, c(left)?, c(right)?)?,
        Expr::IsNull(inner) => Typed {
            ty: SqlType::Boolean,
            scalar: Scalar::IsNull(Box::new(c(inner)?.scalar), false),
        },
        Expr::IsNotNull(inner) => Typed {
            ty: SqlType::Boolean,
            scalar: Scalar::IsNull(Box::new(c(inner)?.scalar), true),
        },
        Expr::IsTrue(inner) => Typed {
            ty: SqlType::Boolean,
            scalar: Scalar::IsBool(Box::new(c(inner)?.scalar), true, false),
        },
        Expr::IsNotTrue(inner) => Typed {
            ty: SqlType::Boolean,
            scalar: Scalar::IsBool(Box::new(c(inner)?.scalar), true, true),
        },
        Expr::IsFalse(inner) => Typed {
            ty: SqlType::Boolean,
            scalar: Scalar::IsBool(Box::new(c(inner)?.scalar), false, false),
        },
        Expr::IsNotFalse(inner) => Typed {
            ty: SqlType::Boolean,
            scalar: Scalar::IsBool(Box::new(c(inner)?.scalar), false, true),
        },
        Expr::In {
            expr: inner,
            target,
            negated,
            ..
        } => {
            let sqlparser::ast::InTarget::List(list) = target else {
                return Err(SqlError::of(
                    expr,
                    "IN takes a list of values here (no subqueries)",
                ));
            };
            let inner = c(inner)?;
            let list = list
                .iter()
                .map(|e| c(e).map(|t| t.scalar))
                .collect::<Result<_, _>>()?;
            Typed {
                ty: SqlType::Boolean,
                scalar: Scalar::In(Box::new(inner.scalar), list, *negated),
            }
        }
        Expr::Between {
            expr: inner,
            negated,
            low,
            high,
        } => Typed {
            ty: SqlType::Boolean,
            scalar: Scalar::Between(
                Box::new(c(inner)?.scalar),
                Box::new(c(low)?.scalar),
                Box::new(c(high)?.scalar),
                *negated,
            ),
        },
        Expr::Like {
            negated,
            expr: inner,
            pattern,
            escape_char,
            any,
        } => {
            if escape_char.is_some() || *any {
                return Err(SqlError::of(
                    expr,
                    "LIKE ... ESCAPE and LIKE ANY are not supported",
                ));
            }
            Typed {
                ty: SqlType::Boolean,
                scalar: Scalar::Like(
                    Box::new(c(inner)?.scalar),
                    Box::new(c(pattern)?.scalar),
                    *negated,
                ),
            }
        }
        Expr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            let operand = operand.as_ref().map(|o| c(o)).transpose()?;
            let mut whens = Vec::new();
            let mut ty = SqlType::Null;
            for when in conditions {
                let cond = c(&when.condition)?;
                let result = c(&when.result)?;
                ty = unify(ty, result.ty, &when.result)?;
                whens.push((cond.scalar, result.scalar));
            }
            let otherwise = match else_result {
                Some(e) => {
                    let t = c(e)?;
                    ty = unify(ty, t.ty, e)?;
                    Some(Box::new(t.scalar))
                }
                None => None,
            };
            let whens = whens.into_iter().map(|(w, r)| (w, coerce(r, ty))).collect();
            let otherwise = otherwise.map(|o| Box::new(coerce(*o, ty)));
            Typed {
                ty,
                scalar: Scalar::Case {
                    operand: operand.map(|o| Box::new(o.scalar)),
                    whens,
                    otherwise,
                },
            }
        }
        Expr::Cast {
            kind,
            expr: inner,
            data_type,
            format,
        } => {
            if format.is_some() {
                return Err(SqlError::of(expr, "CAST ... FORMAT is not supported"));
            }
            let to = super::ddl::sql_type(data_type).map_err(|m| SqlError::of(expr, m))?;
            let inner = c(inner)?;
            let lenient = matches!(kind, CastKind::TryCast | CastKind::SafeCast);
            Typed {
                ty: to,
                scalar: Scalar::Cast(Box::new(inner.scalar), to, lenient),
            }
        }
        Expr::Extract {
            field, expr: inner, ..
        } => {
            let unit = time_unit(field, expr)?;
            let inner = c(inner)?;
            Typed {
                ty: SqlType::BigInt,
                scalar: Scalar::Call(Func::Extract(unit), vec![inner.scalar]),
            }
        }
        Expr::Floor { expr: inner, field } | Expr::Ceil { expr: inner, field } => {
            let ceil = matches!(expr, Expr::Ceil { .. });
            let inner = c(inner)?;
            match field {
                CeilFloorKind::DateTimeField(DateTimeField::NoDateTime) => {
                    let func = if ceil { Func::Ceil } else { Func::Floor };
                    let ty = if inner.ty.is_approximate() || inner.ty.is_integer() {
                        inner.ty
                    } else {
                        SqlType::Double
                    };
                    Typed {
                        ty,
                        scalar: Scalar::Call(func, vec![inner.scalar]),
                    }
                }
                CeilFloorKind::DateTimeField(unit) => {
                    let unit = time_unit(unit, expr)?;
                    Typed {
                        ty: inner.ty,
                        scalar: Scalar::Call(Func::TimeRound(unit, ceil), vec![inner.scalar]),
                    }
                }
                CeilFloorKind::Scale(_) => {
                    return Err(SqlError::of(
                        expr,
                        "FLOOR/CEIL with a scale is not supported",
                    ))
                }
            }
        }
        Expr::Position { expr: needle, r#in } => Typed {
            ty: SqlType::Int,
            scalar: Scalar::Call(Func::Position, vec![c(needle)?.scalar, c(r#in)?.scalar]),
        },
        Expr::Substring {
            expr: inner,
            substring_from,
            substring_for,
            ..
        } => {
            let mut args = vec![c(inner)?.scalar];
            args.push(match substring_from {
                Some(from) => c(from)?.scalar,
                None => Scalar::Lit(Value::Int(1)),
            });
            if let Some(len) = substring_for {
                args.push(c(len)?.scalar);
            }
            Typed {
                ty: SqlType::String,
                scalar: Scalar::Call(Func::Substring, args),
            }
        }
        Expr::Trim {
            trim_where,
            trim_what,
            expr: inner,
            trim_characters,
        } => {
            if trim_characters.is_some() {
                return Err(SqlError::of(
                    expr,
                    "TRIM with a character list is not supported",
                ));
            }
            let mode = match trim_where {
                Some(sqlparser::ast::TrimWhereField::Leading) => 1,
                Some(sqlparser::ast::TrimWhereField::Trailing) => 2,
                _ => 0,
            };
            let what = match trim_what {
                Some(w) => c(w)?.scalar,
                None => Scalar::Lit(Value::str(" ")),
            };
            Typed {
                ty: SqlType::String,
                scalar: Scalar::Call(Func::Trim(mode), vec![c(inner)?.scalar, what]),
            }
        }
        Expr::Function(function) => functions::compile_call(function, expr, scope)?,
        Expr::Prefixed { .. } => {
            return Err(SqlError::of(
                expr,
                "TABLE t is only allowed as the first argument of TUMBLE, HOP, CUMULATE or SESSION",
            ))
        }
        other => {
            return Err(SqlError::of(
                expr,
                format!("the expression {other} is not supported"),
            ))
        }
    })
}

fn expect_bool(t: &Typed, at: &Expr) -> Result<(), SqlError> {
    if matches!(t.ty, SqlType::Boolean | SqlType::Null) {
        Ok(())
    } else {
        Err(SqlError::of(
            at,
            format!("{at} is a {}, not a BOOLEAN", t.ty.name()),
        ))
    }
}

/// The common type of two branches (CASE, COALESCE).
pub fn unify(a: SqlType, b: SqlType, at: &Expr) -> Result<SqlType, SqlError> {
    Ok(match (a, b) {
        (SqlType::Null, x) | (x, SqlType::Null) => x,
        (x, y) if x == y => x,
        (x, y) if x.is_numeric() && y.is_numeric() => SqlType::numeric_result(x, y),
        (x, y) if x.is_time() && y.is_time() => x,
        (x, y) => {
            return Err(SqlError::of(
                at,
                format!("cannot mix {} and {} here", x.name(), y.name()),
            ))
        }
    })
}

/// Converts a branch's value to the common type when they differ (an INT branch in a DOUBLE
/// CASE).
pub fn coerce(scalar: Scalar, _ty: SqlType) -> Scalar {
    scalar
}

fn literal(value: &SqlValue, at: &Expr) -> Result<Typed, SqlError> {
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

fn binary(at: &Expr, op: &BinaryOperator, l: Typed, r: Typed) -> Result<Typed, SqlError> {
    use BinaryOperator as B;
    let arith = |op: ArithOp| -> Result<Typed, SqlError> {
        let symbol = match op {
            ArithOp::Add => '+',
            ArithOp::Sub => '-',
            ArithOp::Mul => '*',
            ArithOp::Div => '/',
            ArithOp::Mod => '%',
        };
        let ty = match (l.ty, r.ty, op) {
            (a, b, _) if a.is_numeric() && b.is_numeric() => SqlType::decimal_result(symbol, a, b)
                .unwrap_or_else(|| SqlType::numeric_result(a, b)),
            (SqlType::Null, b, _) | (b, SqlType::Null, _) => b,
            (t, SqlType::Interval, ArithOp::Add | ArithOp::Sub) if t.is_time() => t,
            (SqlType::Interval, t, ArithOp::Add) if t.is_time() => t,
            (SqlType::Date, SqlType::Interval, ArithOp::Add | ArithOp::Sub) => SqlType::Timestamp,
            (SqlType::Interval, SqlType::Interval, ArithOp::Add | ArithOp::Sub) => {
                SqlType::Interval
            }
            (a, b, _) => {
                return Err(SqlError::of(
                    at,
                    format!("cannot apply {op:?} to {} and {}", a.name(), b.name()),
                ))
            }
        };
        Ok(Typed {
            ty,
            scalar: Scalar::Arith(
                op,
                Box::new(l.scalar.clone()),
                Box::new(r.scalar.clone()),
                ty,
            ),
        })
    };
    let cmp = |op: CmpOp| -> Result<Typed, SqlError> {
        let comparable = l.ty == r.ty
            || matches!(l.ty, SqlType::Null)
            || matches!(r.ty, SqlType::Null)
            || (l.ty.is_numeric() && r.ty.is_numeric())
            || (l.ty.is_time() && r.ty.is_time());
        if !comparable {
            return Err(SqlError::of(
                at,
                format!("cannot compare {} with {}", l.ty.name(), r.ty.name()),
            ));
        }
        Ok(Typed {
            ty: SqlType::Boolean,
            scalar: Scalar::Cmp(op, Box::new(l.scalar.clone()), Box::new(r.scalar.clone())),
        })
    };
    match op {
        B::Plus => arith(ArithOp::Add),
        B::Minus => arith(ArithOp::Sub),
        B::Multiply => arith(ArithOp::Mul),
        B::Divide => arith(ArithOp::Div),
        B::Modulo => arith(ArithOp::Mod),
        B::Eq => cmp(CmpOp::Eq),
        B::NotEq => cmp(CmpOp::Ne),
        B::Lt => cmp(CmpOp::Lt),
        B::LtEq => cmp(CmpOp::Le),
        B::Gt => cmp(CmpOp::Gt),
        B::GtEq => cmp(CmpOp::Ge),
        B::And | B::Or => {
            expect_bool(&l, at)?;
            expect_bool(&r, at)?;
            let (a, b) = (Box::new(l.scalar), Box::new(r.scalar));
            Ok(Typed {
                ty: SqlType::Boolean,
                scalar: if *op == B::And {
                    Scalar::And(a, b)
                } else {
                    Scalar::Or(a, b)
                },
            })
        }
        B::StringConcat => Ok(Typed {
            ty: SqlType::String,
            scalar: Scalar::Call(Func::Concat, vec![l.scalar, r.scalar]),
        }),
        other => Err(SqlError::of(
            at,
            format!("operator {other} is not supported"),
        )),
    }
}

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

fn arith(op: ArithOp, a: Value, b: Value, ty: SqlType) -> EvalResult {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_matches_sql() {
        assert!(like("sensor-1", "sensor%"));
        assert!(like("abc", "a_c"));
        assert!(!like("abc", "a_"));
        assert!(like("", "%"));
        assert!(like("a%b", "a%b"));
    }
}
