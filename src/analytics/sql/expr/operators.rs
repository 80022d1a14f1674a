//! Binary operators (arithmetic, comparison, AND/OR, ||), typed as Flink types them.

use super::*;

pub(super) fn binary(
    at: &Expr,
    op: &BinaryOperator,
    l: Typed,
    r: Typed,
) -> Result<Typed, SqlError> {
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
