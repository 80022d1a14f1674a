//! Planning a window join of two streams, in Flink's form:
//!
//! ```sql
//! SELECT ... FROM
//!   (SELECT * FROM TABLE(TUMBLE(TABLE a, DESCRIPTOR(ts), INTERVAL '1' MINUTE))) L
//!   [LEFT | RIGHT | FULL OUTER] JOIN
//!   (SELECT * FROM TABLE(TUMBLE(TABLE b, DESCRIPTOR(ts), INTERVAL '1' MINUTE))) R
//! ON L.k = R.k AND L.window_start = R.window_start AND L.window_end = R.window_end
//! ```
//!
//! Each side is a window projection of its own table (a subquery planned as any SELECT); both
//! use the same window, on event time. ON must equate both window bounds; its other
//! equalities between a left and a right expression are the join keys, the rest is a residual
//! condition. The outer SELECT projects and filters the joined rows.

use sqlparser::ast::{
    Expr, JoinConstraint, JoinOperator, Select, SetExpr, TableFactor, TableWithJoins,
};

use super::tables::split_and;
use super::windows::{contains_aggregate, contains_over};
use super::{expand_items, JoinSide, Planned, Planner, SourcePlan, Stage};
use crate::analytics::ops::join::{JoinKind, WindowJoinPlan};
use crate::analytics::ops::window::WindowKind;
use crate::analytics::sql::expr::{compile, unify, Scalar, Scope, ScopeColumn};
use crate::analytics::sql::SqlError;
use crate::analytics::value::SqlType;

/// A planned side: its source, its window projection, its columns and its alias.
type PlannedSide = (SourcePlan, JoinSide, Vec<(String, SqlType)>, Option<String>);

const FORM: &str = "(SELECT * FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE))) L";

impl Planner<'_> {
    /// `FROM (window TVF) L JOIN (window TVF) R ON ...`.
    pub(super) fn window_join(
        &mut self,
        select: &Select,
        from: &TableWithJoins,
    ) -> Result<Planned, SqlError> {
        let join = &from.joins[0];
        let (kind, constraint) = match &join.join_operator {
            JoinOperator::Join(c) | JoinOperator::Inner(c) => (JoinKind::Inner, c),
            JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (JoinKind::Left, c),
            JoinOperator::Right(c) | JoinOperator::RightOuter(c) => (JoinKind::Right, c),
            JoinOperator::FullOuter(c) => (JoinKind::Full, c),
            _ => {
                return Err(SqlError::of(
                    &join.relation,
                    "a window join is [INNER | LEFT | RIGHT | FULL OUTER] JOIN ... ON",
                ))
            }
        };
        let JoinConstraint::On(on) = constraint else {
            return Err(SqlError::of(&join.relation, "a window join needs ON L.window_start = R.window_start AND L.window_end = R.window_end [AND L.k = R.k ...]"));
        };
        let (left_source, left, left_columns, left_alias) = self.join_side(&from.relation)?;
        let (right_source, right, right_columns, right_alias) = self.join_side(&join.relation)?;
        if left.kind != right.kind {
            return Err(SqlError::of(
                &join.relation,
                "both sides of a window join need the same window (the same function, size, slide and offset)",
            ));
        }
        let left_width = left_columns.len();
        let scope_of = |columns: &[(String, SqlType)], alias: &Option<String>| {
            columns
                .iter()
                .map(|(name, ty)| ScopeColumn {
                    name: name.clone(),
                    qualifier: alias.clone(),
                    ty: *ty,
                })
                .collect::<Vec<_>>()
        };
        let left_scope = Scope::new(scope_of(&left_columns, &left_alias));
        let right_scope = Scope::new(scope_of(&right_columns, &right_alias));
        let mut both = left_scope.clone();
        both.columns.extend(right_scope.columns.clone());

        let mut terms = Vec::new();
        split_and(on, &mut terms);
        let (mut left_keys, mut right_keys) = (Vec::new(), Vec::new());
        let (mut same_start, mut same_end) = (false, false);
        let mut residual: Option<Scalar> = None;
        for term in terms {
            let compiled = compile(term, &both)?;
            if !matches!(compiled.ty, SqlType::Boolean | SqlType::Null) {
                return Err(SqlError::of(term, "ON needs BOOLEAN conditions"));
            }
            if let Expr::BinaryOp {
                left: a,
                op: sqlparser::ast::BinaryOperator::Eq,
                right: b,
            } = term
            {
                let (ca, cb) = (compile(a, &both)?, compile(b, &both)?);
                let side = |s: &Scalar| {
                    let l = (0..left_width).any(|i| s.reads(i));
                    let r = (left_width..both.columns.len()).any(|i| s.reads(i));
                    (l, r)
                };
                let pair = match (side(&ca.scalar), side(&cb.scalar)) {
                    ((true, false), (false, true)) => Some((a, b, ca, cb)),
                    ((false, true), (true, false)) => Some((b, a, cb, ca)),
                    _ => None,
                };
                if let Some((l, r, cl, cr)) = pair {
                    match (&cl.scalar, &cr.scalar) {
                        (Scalar::Col(i), Scalar::Col(j))
                            if left.is_start(*i) && right.is_start(*j - left_width) =>
                        {
                            same_start = true;
                            continue;
                        }
                        (Scalar::Col(i), Scalar::Col(j))
                            if left.is_end(*i) && right.is_end(*j - left_width) =>
                        {
                            same_end = true;
                            continue;
                        }
                        _ => {}
                    }
                    let ty = unify(cl.ty, cr.ty, term)?;
                    let cast = |s: Scalar, from: SqlType| {
                        if from == ty || from == SqlType::Null {
                            s
                        } else {
                            Scalar::Cast(Box::new(s), ty, false)
                        }
                    };
                    left_keys.push(cast(compile(l, &left_scope)?.scalar, cl.ty));
                    right_keys.push(cast(compile(r, &right_scope)?.scalar, cr.ty));
                    continue;
                }
            }
            residual = Some(match residual {
                None => compiled.scalar,
                Some(prev) => Scalar::And(Box::new(prev), Box::new(compiled.scalar)),
            });
        }
        if !same_start || !same_end {
            return Err(SqlError::of(on, "a window join needs ON L.window_start = R.window_start AND L.window_end = R.window_end (each side selects its window_start and window_end)"));
        }

        let items = expand_items(&select.projection, &both)?;
        let grouped = !matches!(&select.group_by, sqlparser::ast::GroupByExpr::Expressions(e, _) if e.is_empty());
        if grouped
            || select.having.is_some()
            || items
                .iter()
                .any(|(e, _)| contains_aggregate(e) || contains_over(e))
        {
            return Err(SqlError::of(select, "a window join projects and filters its rows; aggregate them in a second application that reads its output"));
        }
        let filter = match &select.selection {
            None => None,
            Some(e) => {
                let t = compile(e, &both)?;
                if !matches!(t.ty, SqlType::Boolean | SqlType::Null) {
                    return Err(SqlError::of(e, "WHERE needs a BOOLEAN condition"));
                }
                Some(t.scalar)
            }
        };
        let mut columns = Vec::new();
        let mut select_scalars = Vec::new();
        for (expr, name) in &items {
            let t = compile(expr, &both)?;
            columns.push((name.clone(), t.ty));
            select_scalars.push(t.scalar);
        }
        let join = WindowJoinPlan {
            kind,
            left_keys,
            right_keys,
            residual,
            left_width,
            right_width: right_columns.len(),
            filter,
            select: select_scalars,
            max_rows: self.max_state_keys,
        };
        let stage = Stage::WindowJoin {
            left: Box::new(left),
            right: Box::new(right),
            right_source: Box::new(right_source),
            join: Box::new(join),
        };
        Ok((left_source, stage, columns))
    }

    fn join_side(&mut self, relation: &TableFactor) -> Result<PlannedSide, SqlError> {
        let (subquery, alias) = match relation {
            TableFactor::Derived {
                subquery, alias, ..
            } => (subquery, alias.as_ref().map(|a| a.name.value.clone())),
            other => {
                return Err(SqlError::of(
                    other,
                    format!(
                        "each side of a window join is a window function in a subquery: {FORM}"
                    ),
                ))
            }
        };
        if subquery.with.is_some() || subquery.order_by.is_some() || subquery.limit_clause.is_some()
        {
            return Err(SqlError::of(
                subquery.as_ref(),
                format!("a side of a window join is a plain SELECT over a window function: {FORM}"),
            ));
        }
        let SetExpr::Select(inner) = subquery.body.as_ref() else {
            return Err(SqlError::of(
                subquery.as_ref(),
                format!("a side of a window join is a SELECT over a window function: {FORM}"),
            ));
        };
        let (source, stage, columns) = self.select(inner)?;
        let Stage::WindowProject {
            kind,
            time,
            filter,
            select,
        } = stage
        else {
            return Err(SqlError::of(
                subquery.as_ref(),
                format!("a side of a window join selects the rows of a window function, without aggregation: {FORM}"),
            ));
        };
        if matches!(kind, WindowKind::Session { .. }) {
            return Err(SqlError::of(
                subquery.as_ref(),
                "a window join is over TUMBLE, HOP or CUMULATE windows",
            ));
        }
        if source.rowtime.as_ref().is_none_or(|(t, _)| *t != time) {
            return Err(SqlError::of(
                subquery.as_ref(),
                format!(
                    "a window join needs event time: DESCRIPTOR names the rowtime column of table {} (WATERMARK FOR ...)",
                    source.table
                ),
            ));
        }
        if source.lookup.is_some() {
            return Err(SqlError::of(
                subquery.as_ref(),
                "a side of a window join cannot have a lookup join",
            ));
        }
        let side = JoinSide {
            kind,
            time,
            filter,
            select,
            input_width: source.width,
        };
        Ok((source, side, columns, alias))
    }
}
