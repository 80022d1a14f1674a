//! Expressions: sqlparser's `Expr` compiled against a scope of columns into a [`Scalar`] tree
//! with a result type, and evaluated over a row with Flink's semantics (three-valued logic,
//! NULL in, NULL out; INT / INT is an INT; errors, e.g. a division by zero, fail the row, not
//! the application). `literal` compiles literals, intervals and time units, `operators` the
//! binary operators; `eval` runs the compiled tree.

use std::sync::Arc;

use sqlparser::ast::{
    BinaryOperator, CastKind, CeilFloorKind, DateTimeField, Expr, Ident, UnaryOperator,
    Value as SqlValue,
};

use super::functions::{self, Func, TimeUnit};
use super::SqlError;
use crate::analytics::value::{parse_date, parse_timestamp, SqlType, Value};

mod eval;
mod literal;
mod operators;

pub use eval::{like, string};
use literal::literal;
pub use literal::{interval_ms, time_unit};
use operators::binary;

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
