//! Planning windows and aggregations: the window table-valued functions, window aggregation
//! (GROUP BY window_start, window_end, keys) and OVER aggregation, and their aggregate calls.

use std::ops::ControlFlow;

use sqlparser::ast::{
    DuplicateTreatment, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, Ident,
    Select, WindowFrameBound, WindowFrameUnits, WindowType,
};

use super::*;
use crate::analytics::ops::aggregate::{AggKind, AggSpec};
use crate::analytics::ops::over::{Frame, OverPlan};
use crate::analytics::ops::window::{WindowAggPlan, WindowKind};
use crate::analytics::sql::expr::{compile, interval_ms, Scalar, Scope};
use crate::analytics::sql::functions::is_aggregate;
use crate::analytics::sql::SqlError;
use crate::analytics::value::SqlType;

impl Planner<'_> {
    /// TUMBLE(TABLE t, DESCRIPTOR(ts), size[, offset]) and the others: (table, (kind, time
    /// column name, partition keys)).
    pub(super) fn window_function(&self, expr: &Expr) -> Result<(Ident, WindowCall), SqlError> {
        let Expr::Function(f) = expr else {
            return Err(SqlError::of(
                expr,
                "TABLE(...) takes TUMBLE, HOP, CUMULATE or SESSION",
            ));
        };
        let name = f.name.to_string().to_ascii_uppercase();
        let args = crate::analytics::sql::functions::plain_args(f, expr)?;
        let (table, partition) = match args.first() {
            Some(Expr::Prefixed { prefix, value }) if prefix.value == "TABLE" => {
                match value.as_ref() {
                    Expr::Identifier(t) => (t.clone(), Vec::new()),
                    Expr::Prefixed { prefix: t, value } => match value.as_ref() {
                        Expr::Tuple(keys) => (t.clone(), keys.clone()),
                        _ => return Err(SqlError::of(expr, "bad PARTITION BY")),
                    },
                    _ => return Err(SqlError::of(expr, "bad TABLE argument")),
                }
            }
            _ => {
                return Err(SqlError::of(
                    expr,
                    format!("the first argument of {name} is TABLE name"),
                ))
            }
        };
        let time = match args.get(1) {
            Some(Expr::Function(d)) if d.name.to_string().eq_ignore_ascii_case("DESCRIPTOR") => {
                match crate::analytics::sql::functions::plain_args(d, expr)?.as_slice() {
                    [Expr::Identifier(c)] => c.value.clone(),
                    _ => return Err(SqlError::of(expr, "DESCRIPTOR takes one time column")),
                }
            }
            _ => {
                return Err(SqlError::of(
                    expr,
                    format!("the second argument of {name} is DESCRIPTOR(time column)"),
                ))
            }
        };
        let intervals: Vec<i64> = args[2..]
            .iter()
            .map(|a| match a {
                Expr::Interval(i) => interval_ms(i, a),
                other => Err(SqlError::of(
                    *other,
                    format!("{name} takes INTERVAL arguments"),
                )),
            })
            .collect::<Result<_, _>>()?;
        if intervals.iter().any(|i| *i <= 0) && name != "TUMBLE" {
            return Err(SqlError::of(expr, "window sizes must be positive"));
        }
        let kind = match (name.as_str(), intervals.as_slice()) {
            ("TUMBLE", [size]) if *size > 0 => WindowKind::Tumble { size: *size, offset: 0 },
            ("TUMBLE", [size, offset]) if *size > 0 => WindowKind::Tumble { size: *size, offset: *offset },
            ("HOP", [slide, size]) | ("HOP", [slide, size, _]) => {
                if size % slide != 0 {
                    return Err(SqlError::of(expr, "HOP needs a size that is a multiple of the slide (as Flink)"));
                }
                WindowKind::Hop { slide: *slide, size: *size, offset: intervals.get(2).copied().unwrap_or(0) }
            }
            ("CUMULATE", [step, max]) | ("CUMULATE", [step, max, _]) => {
                if max % step != 0 {
                    return Err(SqlError::of(expr, "CUMULATE needs a max size that is a multiple of the step (as Flink)"));
                }
                WindowKind::Cumulate { step: *step, max: *max, offset: intervals.get(2).copied().unwrap_or(0) }
            }
            ("SESSION", [gap]) => WindowKind::Session { gap: *gap },
            ("TUMBLE" | "HOP" | "CUMULATE" | "SESSION", _) => {
                return Err(SqlError::of(expr, format!("wrong arguments for {name}: TUMBLE(TABLE t, DESCRIPTOR(ts), size[, offset]), HOP(..., slide, size), CUMULATE(..., step, max), SESSION(TABLE t [PARTITION BY k], DESCRIPTOR(ts), gap)")))
            }
            _ => return Err(SqlError::of(expr, format!("window function {name} is not supported (TUMBLE, HOP, CUMULATE, SESSION)"))),
        };
        if !partition.is_empty() && !matches!(kind, WindowKind::Session { .. }) {
            return Err(SqlError::of(
                expr,
                "PARTITION BY is only for SESSION windows",
            ));
        }
        Ok((table, (kind, time, partition)))
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn window_agg(
        &self,
        kind: WindowKind,
        partition: Vec<Expr>,
        items: &[(Expr, String)],
        group_by: &[Expr],
        select: &Select,
        scope: &Scope,
        input_width: usize,
    ) -> Result<(WindowAggPlan, Vec<(String, SqlType)>), SqlError> {
        let is_window_col = |e: &Expr, name: &str| {
            matches!(e, Expr::Identifier(i) if i.value.eq_ignore_ascii_case(name))
                || matches!(e, Expr::CompoundIdentifier(p) if p.last().is_some_and(|i| i.value.eq_ignore_ascii_case(name)))
        };
        if !group_by.iter().any(|e| is_window_col(e, "window_start"))
            || !group_by.iter().any(|e| is_window_col(e, "window_end"))
        {
            return Err(SqlError::of(
                select,
                "a window aggregation must GROUP BY window_start, window_end (and its keys)",
            ));
        }
        let mut post = Scope {
            aggregated: true,
            ..Scope::default()
        };
        for (i, name) in ["window_start", "window_end", "window_time"]
            .iter()
            .enumerate()
        {
            post.bound
                .push((Expr::Identifier(Ident::new(*name)), i, SqlType::Timestamp));
        }
        let mut keys = Vec::new();
        for e in group_by {
            if is_window_col(e, "window_start")
                || is_window_col(e, "window_end")
                || is_window_col(e, "window_time")
            {
                if is_window_col(e, "window_start") || is_window_col(e, "window_end") {
                    let name = if is_window_col(e, "window_start") {
                        "window_start"
                    } else {
                        "window_end"
                    };
                    let slot = if name == "window_start" { 0 } else { 1 };
                    post.bound.push((e.clone(), slot, SqlType::Timestamp));
                }
                continue;
            }
            let t = compile(e, scope)?;
            post.bound.push((e.clone(), 3 + keys.len(), t.ty));
            // A grouped column can be named alone as well as qualified.
            if let Expr::CompoundIdentifier(parts) = e {
                if let Some(last) = parts.last() {
                    post.bound
                        .push((Expr::Identifier(last.clone()), 3 + keys.len(), t.ty));
                }
            }
            keys.push(t.scalar);
        }
        let mut aggs = Vec::new();
        let mut collect = |e: &Expr, post: &mut Scope| -> Result<(), SqlError> {
            let mut found = Vec::new();
            let _ = sqlparser::ast::visit_expressions(e, |x| {
                if let Expr::Function(f) = x {
                    if f.over.is_none() && is_aggregate(&f.name.to_string()) {
                        found.push(x.clone());
                    }
                }
                ControlFlow::<()>::Continue(())
            });
            for x in found {
                if post.bound.iter().any(|(b, _, _)| *b == x) {
                    continue;
                }
                let Expr::Function(f) = &x else { continue };
                let spec = aggregate(f, &x, scope)?;
                post.bound
                    .push((x.clone(), 3 + keys.len() + aggs.len(), spec.output));
                aggs.push(spec);
            }
            Ok(())
        };
        for (e, _) in items {
            collect(e, &mut post)?;
        }
        if let Some(h) = &select.having {
            collect(h, &mut post)?;
        }
        let mut columns = Vec::new();
        let mut select_scalars = Vec::new();
        for (e, name) in items {
            let t = compile(e, &post)?;
            columns.push((name.clone(), t.ty));
            select_scalars.push(t.scalar);
        }
        let having = select
            .having
            .as_ref()
            .map(|h| compile(h, &post).map(|t| t.scalar))
            .transpose()?;
        let filter = select
            .selection
            .as_ref()
            .map(|w| compile(w, scope).map(|t| t.scalar))
            .transpose()?;
        let partition = partition
            .iter()
            .map(|p| {
                compile(p, &Scope::new(scope.columns[..input_width].to_vec())).map(|t| t.scalar)
            })
            .collect::<Result<_, _>>()?;
        Ok((
            WindowAggPlan {
                kind,
                filter,
                partition,
                keys,
                aggs,
                having,
                select: select_scalars,
                max_state_keys: self.max_state_keys,
            },
            columns,
        ))
    }

    pub(super) fn over(
        &self,
        items: &[(Expr, String)],
        scope: &Scope,
        select: &Select,
        time: usize,
    ) -> Result<(OverPlan, Vec<(String, SqlType)>), SqlError> {
        let mut post = scope.clone();
        let width = scope.columns.len();
        let mut aggs = Vec::new();
        let mut spec_seen: Option<(Vec<Expr>, Frame)> = None;
        let mut found = Vec::new();
        for (e, _) in items {
            let _ = sqlparser::ast::visit_expressions(e, |x| {
                if let Expr::Function(f) = x {
                    if f.over.is_some() {
                        found.push(x.clone());
                    }
                }
                ControlFlow::<()>::Continue(())
            });
        }
        for x in found {
            let Expr::Function(f) = &x else { continue };
            let window = match &f.over {
                Some(WindowType::WindowSpec(spec)) => spec.clone(),
                Some(WindowType::NamedWindow(name)) => {
                    let def = select
                        .named_window
                        .iter()
                        .find(|d| d.0.value.eq_ignore_ascii_case(&name.value))
                        .ok_or_else(|| {
                            SqlError::of(
                                &x,
                                format!(
                                    "window {} is not defined (WINDOW {} AS (...))",
                                    name.value, name.value
                                ),
                            )
                        })?;
                    match &def.1 {
                        sqlparser::ast::NamedWindowExpr::WindowSpec(spec) => spec.clone(),
                        other => {
                            return Err(SqlError::of(
                                &x,
                                format!("window {other} is not supported"),
                            ))
                        }
                    }
                }
                None => continue,
            };
            let [order] = window.order_by.as_slice() else {
                return Err(SqlError::of(&x, "OVER needs ORDER BY the time attribute"));
            };
            let order_col = compile(&order.expr, scope)?;
            if !matches!(order_col.scalar, Scalar::Col(c) if c == time)
                || matches!(order.options.sort, Some(sqlparser::ast::OrderBySort::Desc))
            {
                return Err(SqlError::of(&x, "OVER windows must be ORDER BY the table's rowtime column ascending (as Flink requires)"));
            }
            let frame = match &window.window_frame {
                None => Frame::Range(None),
                Some(frame) => {
                    if !matches!(frame.end_bound, None | Some(WindowFrameBound::CurrentRow)) {
                        return Err(SqlError::of(&x, "OVER frames end at CURRENT ROW"));
                    }
                    match (&frame.units, &frame.start_bound) {
                        (WindowFrameUnits::Rows, WindowFrameBound::Preceding(None)) => Frame::Rows(None),
                        (WindowFrameUnits::Rows, WindowFrameBound::Preceding(Some(n))) => {
                            let n = n.to_string().parse::<u64>().map_err(|_| SqlError::of(&x, "ROWS BETWEEN n PRECEDING needs a number"))?;
                            Frame::Rows(Some(n))
                        }
                        (WindowFrameUnits::Range, WindowFrameBound::Preceding(None)) => Frame::Range(None),
                        (WindowFrameUnits::Range, WindowFrameBound::Preceding(Some(e))) => match e.as_ref() {
                            Expr::Interval(i) => Frame::Range(Some(interval_ms(i, e)?)),
                            other => return Err(SqlError::of(other, "RANGE BETWEEN takes an INTERVAL")),
                        },
                        (WindowFrameUnits::Rows | WindowFrameUnits::Range, WindowFrameBound::CurrentRow) => Frame::Rows(Some(0)),
                        _ => return Err(SqlError::of(&x, "this OVER frame is not supported (ROWS|RANGE BETWEEN ... PRECEDING AND CURRENT ROW)")),
                    }
                }
            };
            match &spec_seen {
                None => spec_seen = Some((window.partition_by.clone(), frame)),
                Some((p, fr)) if *p == window.partition_by && *fr == frame => {}
                Some(_) => return Err(SqlError::of(&x, "all OVER aggregations of a SELECT must use the same window (as Flink requires)")),
            }
            let mut plain = f.clone();
            plain.over = None;
            let spec = aggregate(&plain, &x, scope)?;
            post.bound
                .push((x.clone(), width + aggs.len(), spec.output));
            aggs.push(spec);
        }
        let (partition_by, frame) =
            spec_seen.ok_or_else(|| SqlError::of(select, "no OVER aggregation found"))?;
        let partition = partition_by
            .iter()
            .map(|p| compile(p, scope).map(|t| t.scalar))
            .collect::<Result<_, _>>()?;
        let mut columns = Vec::new();
        let mut select_scalars = Vec::new();
        for (e, name) in items {
            let t = compile(e, &post)?;
            columns.push((name.clone(), t.ty));
            select_scalars.push(t.scalar);
        }
        Ok((
            OverPlan {
                partition,
                frame,
                aggs,
                select: select_scalars,
                filter: None,
            },
            columns,
        ))
    }
}

fn aggregate(f: &Function, at: &Expr, scope: &Scope) -> Result<AggSpec, SqlError> {
    let name = f.name.to_string().to_ascii_uppercase();
    let (args, distinct) = match &f.args {
        FunctionArguments::List(list) => (
            &list.args,
            matches!(list.duplicate_treatment, Some(DuplicateTreatment::Distinct)),
        ),
        FunctionArguments::None => {
            return Err(SqlError::of(at, format!("{name} needs an argument")))
        }
        FunctionArguments::Subquery(_) => {
            return Err(SqlError::of(at, "subqueries are not supported"))
        }
    };
    let star = matches!(
        args.as_slice(),
        [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)]
    );
    let exprs: Vec<&Expr> = if star {
        Vec::new()
    } else {
        crate::analytics::sql::functions::plain_args(f, at)?
    };
    let kind = match (name.as_str(), star) {
        ("COUNT", true) => AggKind::CountStar,
        ("COUNT", false) => AggKind::Count,
        ("SUM", _) => AggKind::Sum,
        ("MIN", _) => AggKind::Min,
        ("MAX", _) => AggKind::Max,
        ("AVG", _) => AggKind::Avg,
        ("STDDEV_POP", _) => AggKind::StddevPop,
        ("STDDEV_SAMP" | "STDDEV", _) => AggKind::StddevSamp,
        ("VAR_POP", _) => AggKind::VarPop,
        ("VAR_SAMP" | "VARIANCE", _) => AggKind::VarSamp,
        ("FIRST_VALUE", _) => AggKind::First,
        ("LAST_VALUE", _) => AggKind::Last,
        ("APPROX_COUNT_DISTINCT", _) => AggKind::ApproxCountDistinct,
        ("PERCENTILE", _) => {
            let p = match exprs.get(1) {
                Some(Expr::Value(v)) => v
                    .value
                    .to_string()
                    .parse::<f64>()
                    .ok()
                    .filter(|p| (0.0..=1.0).contains(p)),
                _ => None,
            }
            .ok_or_else(|| {
                SqlError::of(
                    at,
                    "PERCENTILE(x, p) needs p as a number literal between 0 and 1",
                )
            })?;
            AggKind::Percentile(p)
        }
        _ => {
            return Err(SqlError::of(
                at,
                format!("aggregate function {name} is not supported"),
            ))
        }
    };
    let arity_ok = match kind {
        AggKind::CountStar => true,
        AggKind::Percentile(_) => exprs.len() == 2,
        AggKind::Count => !exprs.is_empty(),
        _ => exprs.len() == 1,
    };
    if !arity_ok {
        return Err(SqlError::of(
            at,
            format!("wrong number of arguments for {name}"),
        ));
    }
    let arg = match exprs.first() {
        Some(e) if kind != AggKind::CountStar => Some(compile(e, scope)?),
        _ => None,
    };
    let input = arg.as_ref().map(|a| a.ty).unwrap_or(SqlType::BigInt);
    if matches!(
        kind,
        AggKind::Sum
            | AggKind::Avg
            | AggKind::StddevPop
            | AggKind::StddevSamp
            | AggKind::VarPop
            | AggKind::VarSamp
            | AggKind::Percentile(_)
    ) && !input.is_numeric()
        && input != SqlType::Null
    {
        return Err(SqlError::of(
            at,
            format!("{name} needs a numeric argument, not {}", input.name()),
        ));
    }
    let filter = f
        .filter
        .as_ref()
        .map(|w| compile(w, scope).map(|t| t.scalar))
        .transpose()?;
    Ok(AggSpec {
        kind,
        arg: arg.map(|a| a.scalar),
        distinct,
        filter,
        input,
        output: AggSpec::output_type(kind, input),
    })
}

pub(super) fn contains_aggregate(e: &Expr) -> bool {
    sqlparser::ast::visit_expressions(e, |x| match x {
        Expr::Function(f) if f.over.is_none() && is_aggregate(&f.name.to_string()) => {
            ControlFlow::Break(())
        }
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

pub(super) fn contains_over(e: &Expr) -> bool {
    sqlparser::ast::visit_expressions(e, |x| match x {
        Expr::Function(f) if f.over.is_some() => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}
