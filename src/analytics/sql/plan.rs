//! Planning: a parsed script becomes a [`Plan`]: the source table (stream, format, the fields
//! to decode, metadata and computed columns, rowtime and watermark), one stage (projection,
//! window projection, window aggregation or OVER aggregation), the result columns, and the
//! sink. Everything the engine cannot run is refused here, with its position.

use std::ops::ControlFlow;

use sqlparser::ast::{
    DuplicateTreatment, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments,
    GroupByExpr, Ident, Select, SelectItem, SetExpr, TableFactor, WindowFrameBound,
    WindowFrameUnits, WindowType,
};
use sqlparser::tokenizer::Location;

use super::ddl::{ColumnKind, Metadata, TableDef};
use super::expr::{compile, interval_ms, Scalar, Scope, ScopeColumn, Typed};
use super::functions::is_aggregate;
use super::{Action, Script, SqlError};
use crate::analytics::ops::aggregate::{AggKind, AggSpec};
use crate::analytics::ops::over::{Frame, OverPlan};
use crate::analytics::ops::window::{WindowAggPlan, WindowKind};
use crate::analytics::value::SqlType;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Raw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPosition {
    Latest,
    TrimHorizon,
    AtTimestamp(u64),
}

/// A physical column to decode: its field name, type and slot in the row.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub ty: SqlType,
    pub slot: usize,
}

#[derive(Debug, Clone)]
pub struct SourcePlan {
    pub table: String,
    pub stream: String,
    pub format: Format,
    /// Only the physical columns the query reads (JSON); all of them in order (CSV).
    pub fields: Vec<Field>,
    pub csv_delimiter: char,
    pub metadata: Vec<(Metadata, usize)>,
    pub computed: Vec<(usize, Scalar)>,
    pub proctime: Option<usize>,
    /// The rowtime column's slot and the watermark over the row.
    pub rowtime: Option<(usize, Scalar)>,
    pub width: usize,
    pub start: StartPosition,
    pub columns: Vec<ScopeColumn>,
    /// A lookup join: its columns follow the source's in the row.
    pub lookup: Option<LookupPlan>,
}

/// Where a lookup table's rows come from.
#[derive(Debug, Clone, PartialEq)]
pub enum LookupSource {
    /// A CSV or JSON-lines file, read again when it changes.
    File { path: String },
    /// A stream: the latest record per key.
    Stream { stream: String },
}

/// `JOIN t FOR SYSTEM_TIME AS OF ... ON l.k = t.k`: enrich each row with the table's row of
/// the same key (INNER: rows without one are dropped; LEFT: they get NULLs).
#[derive(Debug, Clone)]
pub struct LookupPlan {
    pub table: String,
    pub source: LookupSource,
    pub format: Format,
    pub csv_delimiter: char,
    /// The table's columns (all physical), decoded into slots 0.. of the lookup row.
    pub fields: Vec<Field>,
    /// The key over the source row, and the lookup columns it matches.
    pub left_keys: Vec<Scalar>,
    pub right_keys: Vec<usize>,
    pub outer: bool,
}

#[derive(Debug, Clone)]
pub enum Stage {
    Project {
        filter: Option<Scalar>,
        select: Vec<Scalar>,
    },
    /// A window TVF without aggregation: each row once per window, with its columns.
    WindowProject {
        kind: WindowKind,
        time: usize,
        filter: Option<Scalar>,
        select: Vec<Scalar>,
    },
    WindowAgg {
        time: usize,
        pre_filter: Option<Scalar>,
        plan: WindowAggPlan,
    },
    Over {
        time: usize,
        pre_filter: Option<Scalar>,
        plan: OverPlan,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkKind {
    Kinesis { stream: String },
    Firehose { delivery_stream: String },
    Mqtt { topic: String },
    Print,
    Blackhole,
}

#[derive(Debug, Clone)]
pub struct SinkPlan {
    pub table: String,
    pub kind: SinkKind,
    pub format: Format,
    pub columns: Vec<(String, SqlType)>,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub source: SourcePlan,
    pub stage: Stage,
    pub columns: Vec<(String, SqlType)>,
    pub sink: Option<SinkPlan>,
    /// `table.exec.source.idle-timeout` in ms: a shard without records for this long does not
    /// hold the watermark back. 0 turns it off (Flink's default); the gateway's default is
    /// `DEFAULT_IDLE_TIMEOUT_MS`, so that a quiet shard does not stall every window.
    pub idle_timeout_ms: u64,
    /// LIMIT of a bounded query.
    pub limit: Option<usize>,
}

/// The idle timeout when the script sets none.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 10_000;

/// Options Flink's connectors take that the gateway accepts and does not need.
const IGNORED_OPTIONS: &[&str] = &[
    "scan.shard-assigner",
    "scan.shard.discovery.intervalmillis",
    "scan.shard.getrecords.maxrecordcount",
    "scan.stream.recordpublisher",
    "sink.partitioner",
    "sink.partitioner-field-delimiter",
    "sink.fail-on-error",
    "sink.batch.max-size",
    "sink.requests.max-inflight",
    "sink.flush-buffer.size",
    "sink.flush-buffer.timeout",
    "json.fail-on-missing-field",
    "json.map-null-key.mode",
    "json.encode.decimal-as-plain-number",
    "csv.ignore-parse-errors",
    "json.ignore-parse-errors",
    "json.timestamp-format.standard",
    "source.shard.discovery.interval",
];

/// Plans a script. `max_state_keys` bounds window state; `bounded` is a `kinedge query`.
pub fn plan(script: &Script, max_state_keys: usize, bounded: bool) -> Result<Plan, SqlError> {
    let (query, sink, location) = match &script.action {
        Action::Insert {
            table,
            query,
            location,
        } => (query.as_ref(), Some(table.as_str()), *location),
        Action::Select(query) => (query.as_ref(), None, Location::empty()),
    };
    if sink.is_some() && bounded {
        return Err(SqlError::at(
            location,
            "a query runs a SELECT; INSERT INTO belongs in an application",
        ));
    }
    if sink.is_none() && !bounded {
        return Err(SqlError::at(location, "an application runs INSERT INTO sink SELECT ...; a bare SELECT is a query (kinedge query)"));
    }
    if query.with.is_some() {
        return Err(SqlError::of(query, "WITH is not supported"));
    }
    if query.order_by.is_some() {
        return Err(SqlError::of(query, "ORDER BY is not supported over a stream (Flink allows it only on the rowtime, ascending)"));
    }
    let limit = match &query.limit_clause {
        None => None,
        Some(clause) => {
            let text = clause.to_string();
            let n = text
                .trim()
                .trim_start_matches("LIMIT")
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|_| bounded);
            Some(n.ok_or_else(|| {
                SqlError::of(
                    query,
                    format!("{text} is supported only as LIMIT n in a query"),
                )
            })?)
        }
    };
    let SetExpr::Select(select) = query.body.as_ref() else {
        return Err(SqlError::of(
            query,
            "only a SELECT is supported (no UNION, VALUES or nested queries)",
        ));
    };
    let idle_timeout_ms = script
        .settings
        .iter()
        .find(|(k, _)| k == "table.exec.source.idle-timeout")
        .map(|(_, v)| {
            parse_duration_ms(v).ok_or_else(|| {
                SqlError::at(
                    Location::empty(),
                    format!(
                        "table.exec.source.idle-timeout '{v}' is not a duration ('10 s', '500 ms')"
                    ),
                )
            })
        })
        .transpose()?
        .unwrap_or(DEFAULT_IDLE_TIMEOUT_MS);
    let mut planner = Planner {
        script,
        max_state_keys,
        bounded,
    };
    let (source, stage, columns) = planner.select(select)?;
    let sink = match sink {
        None => None,
        Some(name) => Some(planner.sink(name, &columns, location)?),
    };
    Ok(Plan {
        source,
        stage,
        columns,
        sink,
        idle_timeout_ms,
        limit,
    })
}

fn parse_duration_ms(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n: u64 = t[..split].parse().ok()?;
    let unit = t[split..].trim().to_ascii_lowercase();
    Some(match unit.as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => n,
        "s" | "sec" | "secs" | "second" | "seconds" => n * 1000,
        "min" | "minute" | "minutes" => n * 60_000,
        "h" | "hour" | "hours" => n * 3_600_000,
        _ => return None,
    })
}

/// A planned SELECT: its source, its stage and its result columns.
type Planned = (SourcePlan, Stage, Vec<(String, SqlType)>);

/// A window TVF call: the window, the time column's name, SESSION's partition keys.
type WindowCall = (WindowKind, String, Vec<Expr>);

struct Planner<'a> {
    script: &'a Script,
    max_state_keys: usize,
    bounded: bool,
}

/// The raw-records table a query gets for a stream it did not declare.
fn raw_table(name: &str) -> TableDef {
    use super::ddl::ColumnDef;
    let column = |n: &str, ty, kind| ColumnDef {
        name: n.into(),
        ty,
        kind,
        location: Location::empty(),
    };
    let mut options = std::collections::BTreeMap::new();
    options.insert("connector".into(), "kinesis".into());
    options.insert("stream".into(), name.into());
    options.insert("format".into(), "raw".into());
    TableDef {
        name: name.into(),
        columns: vec![
            column("data", SqlType::String, ColumnKind::Physical),
            column(
                "partition_key",
                SqlType::String,
                ColumnKind::Metadata(Metadata::PartitionKey),
            ),
            column(
                "sequence_number",
                SqlType::String,
                ColumnKind::Metadata(Metadata::SequenceNumber),
            ),
            column(
                "shard_id",
                SqlType::String,
                ColumnKind::Metadata(Metadata::ShardId),
            ),
            column(
                "arrival_time",
                SqlType::TimestampLtz,
                ColumnKind::Metadata(Metadata::Timestamp),
            ),
        ],
        watermark: None,
        options,
        location: Location::empty(),
    }
}

impl Planner<'_> {
    fn table(&self, name: &Ident) -> Result<TableDef, SqlError> {
        match self.script.tables.iter().find(|t| t.name.eq_ignore_ascii_case(&name.value)) {
            Some(t) => Ok(t.clone()),
            None if self.bounded => Ok(raw_table(&name.value)),
            None => Err(SqlError::at(name.span.start, format!("table {} is not created in this script (CREATE TABLE {} (...) WITH ('connector' = 'kinesis', ...))", name.value, name.value))),
        }
    }

    fn select(&mut self, select: &Select) -> Result<Planned, SqlError> {
        if select.distinct.is_some() {
            return Err(SqlError::of(
                select,
                "SELECT DISTINCT over a stream produces updates; use a window aggregation",
            ));
        }
        let [from] = select.from.as_slice() else {
            return Err(SqlError::of(
                select,
                "a SELECT reads exactly one table or window function (joins are not supported yet)",
            ));
        };
        if from.joins.len() > 1 {
            return Err(SqlError::of(
                &from.joins[1].relation,
                "one lookup join per query is supported (docs/analytics.md)",
            ));
        }
        let (table_name, alias, window) = match &from.relation {
            TableFactor::Table { name, alias, args: None, .. } => {
                let ident = name.0.last().and_then(|p| p.as_ident()).cloned().ok_or_else(|| SqlError::of(&from.relation, "bad table name"))?;
                (ident, alias.as_ref().map(|a| a.name.value.clone()), None)
            }
            TableFactor::TableFunction { expr, alias } => {
                let (table, window) = self.window_function(expr)?;
                (table, alias.as_ref().map(|a| a.name.value.clone()), Some(window))
            }
            other => return Err(SqlError::of(other, format!("FROM {other} is not supported: read a table or TABLE(TUMBLE|HOP|CUMULATE|SESSION(...))"))),
        };
        let table = self.table(&table_name)?;
        let mut source = self.source(&table, alias.clone())?;
        let window = match window {
            None => None,
            Some((kind, time, partition)) => {
                let slot = table.column(&time).ok_or_else(|| {
                    SqlError::of(
                        &from.relation,
                        format!(
                            "DESCRIPTOR({time}): table {} has no column {time}",
                            table.name
                        ),
                    )
                })?;
                let is_rowtime = source.rowtime.as_ref().is_some_and(|(t, _)| *t == slot);
                if !is_rowtime && source.proctime != Some(slot) {
                    return Err(SqlError::of(&from.relation, format!("DESCRIPTOR({time}) must name a time attribute: declare WATERMARK FOR {time} AS ... on table {} (or use a PROCTIME() column)", table.name)));
                }
                Some((kind, slot, partition))
            }
        };
        let input_width = source.width;
        let mut scope = Scope::new(source.columns.clone());
        if let Some(join) = from.joins.first() {
            if window.is_some() {
                return Err(SqlError::of(&join.relation, "a lookup join reads a table, not a window function: enrich in one application and aggregate the result in another"));
            }
            let (lookup, columns) = self.lookup(join, &scope)?;
            scope.columns.extend(columns);
            source.lookup = Some(lookup);
        }
        if window.is_some() {
            for name in ["window_start", "window_end", "window_time"] {
                scope.columns.push(ScopeColumn {
                    name: name.into(),
                    qualifier: alias.clone(),
                    ty: SqlType::Timestamp,
                });
            }
        }
        let items = expand_items(&select.projection, &scope)?;
        let aggregated = !matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty())
            || items.iter().any(|(e, _)| contains_aggregate(e))
            || select.having.is_some();
        let has_over = items.iter().any(|(e, _)| contains_over(e));
        let group_by = match &select.group_by {
            GroupByExpr::Expressions(exprs, modifiers) if modifiers.is_empty() => exprs.clone(),
            other => {
                return Err(SqlError::of(
                    select,
                    format!("GROUP BY {other} is not supported"),
                ))
            }
        };
        let where_scalar = |scope: &Scope| -> Result<Option<Scalar>, SqlError> {
            match &select.selection {
                None => Ok(None),
                Some(e) => {
                    let t = compile(e, scope)?;
                    if !matches!(t.ty, SqlType::Boolean | SqlType::Null) {
                        return Err(SqlError::of(e, "WHERE needs a BOOLEAN condition"));
                    }
                    Ok(Some(t.scalar))
                }
            }
        };
        let stage;
        let mut columns = Vec::new();
        if has_over {
            if aggregated {
                return Err(SqlError::of(
                    select,
                    "OVER aggregations cannot be mixed with GROUP BY",
                ));
            }
            if window.is_some() {
                return Err(SqlError::of(
                    select,
                    "OVER aggregations read a table, not a window function",
                ));
            }
            let (time, _) = source.rowtime.clone().ok_or_else(|| {
                SqlError::of(
                    select,
                    format!(
                        "OVER ... ORDER BY needs a time attribute: declare a WATERMARK on table {}",
                        table.name
                    ),
                )
            })?;
            let pre_filter = where_scalar(&scope)?;
            let (plan, cols) = self.over(&items, &scope, select, time)?;
            columns = cols;
            stage = Stage::Over {
                time,
                pre_filter,
                plan,
            };
        } else if aggregated {
            let Some((kind, time, partition)) = window else {
                return Err(SqlError::of(select, "an aggregation over a stream needs a window: FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) ... GROUP BY window_start, window_end, ... (an unbounded GROUP BY produces updates, which these sinks cannot take)"));
            };
            let (plan, cols) = self.window_agg(
                kind,
                partition,
                &items,
                &group_by,
                select,
                &scope,
                input_width,
            )?;
            columns = cols;
            stage = Stage::WindowAgg {
                time,
                pre_filter: None,
                plan,
            };
        } else {
            let filter = where_scalar(&scope)?;
            let mut select_scalars = Vec::new();
            for (expr, name) in &items {
                let t = compile(expr, &scope)?;
                columns.push((name.clone(), t.ty));
                select_scalars.push(t.scalar);
            }
            stage = match window {
                None => Stage::Project {
                    filter,
                    select: select_scalars,
                },
                Some((kind, time, _)) => Stage::WindowProject {
                    kind,
                    time,
                    filter,
                    select: select_scalars,
                },
            };
        }
        if source.lookup.is_some() && !matches!(stage, Stage::Project { .. }) {
            return Err(SqlError::of(select, "a query with a lookup join projects and filters; aggregate the enriched stream in a second application"));
        }
        mark_used(&mut source, &stage);
        Ok((source, stage, columns))
    }

    /// The lookup table of a join and the columns it adds to the scope.
    fn lookup(
        &self,
        join: &sqlparser::ast::Join,
        left: &Scope,
    ) -> Result<(LookupPlan, Vec<ScopeColumn>), SqlError> {
        use sqlparser::ast::{JoinConstraint, JoinOperator};
        let (constraint, outer) = match &join.join_operator {
            JoinOperator::Join(c) | JoinOperator::Inner(c) => (c, false),
            JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (c, true),
            _ => return Err(SqlError::of(&join.relation, "only [LEFT] JOIN ... ON is supported: a lookup join is [LEFT] JOIN t FOR SYSTEM_TIME AS OF l.proc_time ON l.k = t.k")),
        };
        let JoinConstraint::On(on) = constraint else {
            return Err(SqlError::of(
                &join.relation,
                "a lookup join needs ON l.k = t.k",
            ));
        };
        let TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } = &join.relation
        else {
            return Err(SqlError::of(
                &join.relation,
                "a lookup join reads a table created in the script",
            ));
        };
        let ident = name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .cloned()
            .ok_or_else(|| SqlError::of(&join.relation, "bad table name"))?;
        let table = self
            .script
            .tables
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(&ident.value))
            .cloned()
            .ok_or_else(|| {
                SqlError::of(
                    &join.relation,
                    format!("lookup table {} is not created in this script", ident.value),
                )
            })?;
        let qualifier = alias
            .as_ref()
            .map(|a| a.name.value.clone())
            .unwrap_or_else(|| table.name.clone());
        let mut fields = Vec::new();
        for (slot, column) in table.columns.iter().enumerate() {
            if !matches!(column.kind, ColumnKind::Physical) {
                return Err(SqlError::at(
                    column.location,
                    "a lookup table has physical columns only",
                ));
            }
            fields.push(Field {
                name: column.name.clone(),
                ty: column.ty,
                slot,
            });
        }
        let connector = table.option("connector").unwrap_or_default();
        let source = match connector {
            "filesystem" => {
                check_options(&table, &["connector", "path", "format", "csv.field-delimiter", "lookup.cache", "lookup.cache.ttl"])?;
                LookupSource::File { path: table.option("path").ok_or_else(|| SqlError::at(table.location, "a filesystem lookup table needs 'path'"))?.to_string() }
            }
            "kinesis" => {
                check_options(&table, &["connector", "stream", "stream.arn", "format", "scan.stream.initpos"])?;
                LookupSource::Stream { stream: stream_name(&table)? }
            }
            other => return Err(SqlError::at(table.location, format!("lookup tables are 'filesystem' (a CSV or JSON file) or 'kinesis' (a stream: the latest record per key), not '{other}'"))),
        };
        let format = format_of(&table)?;
        if format == Format::Raw {
            return Err(SqlError::at(
                table.location,
                "a lookup table is 'csv' or 'json'",
            ));
        }
        let right_columns: Vec<ScopeColumn> = table
            .columns
            .iter()
            .map(|c| ScopeColumn {
                name: c.name.clone(),
                qualifier: Some(qualifier.clone()),
                ty: c.ty,
            })
            .collect();
        let mut both = left.clone();
        both.columns.extend(right_columns.clone());
        let left_width = left.columns.len();
        let mut conjuncts = Vec::new();
        split_and(on, &mut conjuncts);
        let (mut left_keys, mut right_keys) = (Vec::new(), Vec::new());
        for part in conjuncts {
            let Expr::BinaryOp {
                left: a,
                op: sqlparser::ast::BinaryOperator::Eq,
                right: b,
            } = part
            else {
                return Err(SqlError::of(part, "a lookup join's ON is equalities between the stream's and the table's columns, joined with AND"));
            };
            let (ca, cb) = (compile(a, &both)?, compile(b, &both)?);
            let side = |t: &Typed| match t.scalar {
                Scalar::Col(i) if i >= left_width => Some(i - left_width),
                _ => None,
            };
            let (l, r) = match (side(&ca), side(&cb)) {
                (None, Some(r)) => (a, r),
                (Some(r), None) => (b, r),
                _ => return Err(SqlError::of(part, "each equality of a lookup join compares a stream expression with a column of the lookup table")),
            };
            left_keys.push(compile(l, left)?.scalar);
            right_keys.push(r);
        }
        let lookup = LookupPlan {
            table: table.name.clone(),
            source,
            format,
            csv_delimiter: table
                .option("csv.field-delimiter")
                .and_then(|d| d.chars().next())
                .unwrap_or(','),
            fields,
            left_keys,
            right_keys,
            outer,
        };
        Ok((lookup, right_columns))
    }

    /// TUMBLE(TABLE t, DESCRIPTOR(ts), size[, offset]) and the others: (table, (kind, time
    /// column name, partition keys)).
    fn window_function(&self, expr: &Expr) -> Result<(Ident, WindowCall), SqlError> {
        let Expr::Function(f) = expr else {
            return Err(SqlError::of(
                expr,
                "TABLE(...) takes TUMBLE, HOP, CUMULATE or SESSION",
            ));
        };
        let name = f.name.to_string().to_ascii_uppercase();
        let args = super::functions::plain_args(f, expr)?;
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
                match super::functions::plain_args(d, expr)?.as_slice() {
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

    fn source(&self, table: &TableDef, alias: Option<String>) -> Result<SourcePlan, SqlError> {
        let connector = table.option("connector").unwrap_or_default();
        if connector != "kinesis" {
            return Err(SqlError::at(table.location, format!("table {} is read with 'connector' = '{connector}': the gateway reads 'kinesis' tables (its streams)", table.name)));
        }
        check_options(
            table,
            &[
                "connector",
                "stream",
                "stream.arn",
                "format",
                "scan.stream.initpos",
                "scan.stream.initpos.timestamp",
                "source.init.position",
                "source.init.timestamp",
                "csv.field-delimiter",
            ],
        )?;
        let stream = stream_name(table)?;
        let format = format_of(table)?;
        let initpos = table
            .option("scan.stream.initpos")
            .or(table.option("source.init.position"));
        let start = match initpos.map(|p| p.to_ascii_uppercase()) {
            None => {
                if self.bounded {
                    StartPosition::TrimHorizon
                } else {
                    StartPosition::Latest
                }
            }
            Some(p) if p == "LATEST" => StartPosition::Latest,
            Some(p) if p == "TRIM_HORIZON" => StartPosition::TrimHorizon,
            Some(p) if p == "AT_TIMESTAMP" => {
                let ts = table.option("scan.stream.initpos.timestamp").or(table.option("source.init.timestamp")).ok_or_else(|| SqlError::at(table.location, "AT_TIMESTAMP needs 'scan.stream.initpos.timestamp' (epoch seconds or 'yyyy-MM-dd HH:mm:ss')"))?;
                let ms = match ts.parse::<f64>() {
                    Ok(secs) => (secs * 1000.0) as u64,
                    Err(_) => crate::analytics::value::parse_timestamp(ts).ok_or_else(|| {
                        SqlError::at(table.location, format!("'{ts}' is not a timestamp"))
                    })? as u64,
                };
                StartPosition::AtTimestamp(ms)
            }
            Some(p) => {
                return Err(SqlError::at(
                    table.location,
                    format!("initial position '{p}' is not LATEST, TRIM_HORIZON or AT_TIMESTAMP"),
                ))
            }
        };
        let mut columns: Vec<ScopeColumn> = table
            .columns
            .iter()
            .map(|c| ScopeColumn {
                name: c.name.clone(),
                qualifier: Some(alias.clone().unwrap_or_else(|| table.name.clone())),
                ty: c.ty,
            })
            .collect();
        let mut fields = Vec::new();
        let mut metadata = Vec::new();
        let mut computed = Vec::new();
        let mut proctime = None;
        for (slot, column) in table.columns.iter().enumerate() {
            match &column.kind {
                ColumnKind::Physical => fields.push(Field {
                    name: column.name.clone(),
                    ty: column.ty,
                    slot,
                }),
                ColumnKind::Metadata(m) => {
                    let expected = match m {
                        Metadata::Timestamp => column.ty.is_time(),
                        _ => column.ty == SqlType::String,
                    };
                    if !expected {
                        return Err(SqlError::at(column.location, format!("metadata column {} has the wrong type {} (timestamp: TIMESTAMP_LTZ(3), the others: STRING)", column.name, column.ty.name())));
                    }
                    metadata.push((*m, slot));
                }
                ColumnKind::ProcTime => proctime = Some(slot),
                ColumnKind::Computed(expr) => {
                    let scope = Scope::new(columns[..slot].to_vec());
                    let t: Typed = compile(expr, &scope)?;
                    columns[slot].ty = t.ty;
                    computed.push((slot, t.scalar));
                }
            }
        }
        if format == Format::Raw && fields.len() != 1 {
            return Err(SqlError::at(
                table.location,
                "'format' = 'raw' needs exactly one physical column (STRING)",
            ));
        }
        let rowtime = match &table.watermark {
            None => None,
            Some((column, expr)) => {
                let slot = table.column(column).unwrap_or(0);
                let t = compile(expr, &Scope::new(columns.clone()))?;
                if !t.ty.is_time() {
                    return Err(SqlError::of(
                        expr,
                        "the WATERMARK expression must give a timestamp (ts - INTERVAL '5' SECOND)",
                    ));
                }
                Some((slot, t.scalar))
            }
        };
        Ok(SourcePlan {
            table: table.name.clone(),
            stream,
            format,
            fields,
            csv_delimiter: table
                .option("csv.field-delimiter")
                .and_then(|d| d.chars().next())
                .unwrap_or(','),
            metadata,
            computed,
            proctime,
            rowtime,
            width: table.columns.len(),
            start,
            columns,
            lookup: None,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn window_agg(
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

    fn over(
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

    fn sink(
        &self,
        name: &str,
        columns: &[(String, SqlType)],
        location: Location,
    ) -> Result<SinkPlan, SqlError> {
        let table = self
            .script
            .tables
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                SqlError::at(
                    location,
                    format!("sink table {name} is not created in this script"),
                )
            })?;
        let physical: Vec<(String, SqlType)> = table
            .columns
            .iter()
            .filter(|c| matches!(c.kind, ColumnKind::Physical))
            .map(|c| (c.name.clone(), c.ty))
            .collect();
        if physical.len() != columns.len() {
            return Err(SqlError::at(
                location,
                format!(
                    "the query gives {} columns ({}) but sink {name} has {} ({})",
                    columns.len(),
                    columns
                        .iter()
                        .map(|c| c.0.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    physical.len(),
                    physical
                        .iter()
                        .map(|c| c.0.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        for ((qn, qt), (sn, st)) in columns.iter().zip(&physical) {
            let fits = qt == st
                || *qt == SqlType::Null
                || (qt.is_numeric() && st.is_numeric())
                || (qt.is_time() && st.is_time())
                || *st == SqlType::String;
            if !fits {
                return Err(SqlError::at(
                    location,
                    format!(
                        "column {qn} of the query is {} but sink column {sn} is {}",
                        qt.name(),
                        st.name()
                    ),
                ));
            }
        }
        let connector = table.option("connector").unwrap_or_default();
        let kind = match connector {
            "kinesis" => {
                check_options(table, &["connector", "stream", "stream.arn", "format"])?;
                SinkKind::Kinesis { stream: stream_name(table)? }
            }
            "firehose" => {
                check_options(table, &["connector", "delivery-stream", "format"])?;
                SinkKind::Firehose { delivery_stream: table.option("delivery-stream").ok_or_else(|| SqlError::at(table.location, "a firehose sink needs 'delivery-stream'"))?.to_string() }
            }
            "mqtt" => {
                check_options(table, &["connector", "topic", "qos", "format"])?;
                let qos = table.option("qos").unwrap_or("0");
                if qos != "0" {
                    return Err(SqlError::at(table.location, "the mqtt sink publishes at 'qos' = '0' into the embedded broker (results are at-least-once across restarts)"));
                }
                SinkKind::Mqtt { topic: table.option("topic").ok_or_else(|| SqlError::at(table.location, "an mqtt sink needs 'topic' (e.g. 'alerts/{device}')"))?.to_string() }
            }
            "print" => SinkKind::Print,
            "blackhole" => SinkKind::Blackhole,
            other => return Err(SqlError::at(table.location, format!("sink connector '{other}' is not supported (kinesis, firehose, mqtt, print, blackhole)"))),
        };
        let format = match kind {
            SinkKind::Print | SinkKind::Blackhole => Format::Json,
            _ => format_of(table)?,
        };
        if format == Format::Raw && physical.len() != 1 {
            return Err(SqlError::at(
                table.location,
                "'format' = 'raw' needs exactly one column",
            ));
        }
        Ok(SinkPlan {
            table: table.name.clone(),
            kind,
            format,
            columns: physical,
        })
    }
}

fn split_and<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match e {
        Expr::BinaryOp {
            left,
            op: sqlparser::ast::BinaryOperator::And,
            right,
        } => {
            split_and(left, out);
            split_and(right, out);
        }
        Expr::Nested(inner) => split_and(inner, out),
        other => out.push(other),
    }
}

fn check_options(table: &TableDef, known: &[&str]) -> Result<(), SqlError> {
    for key in table.options.keys() {
        if known.contains(&key.as_str())
            || key.starts_with("aws.")
            || IGNORED_OPTIONS.contains(&key.as_str())
        {
            continue;
        }
        return Err(SqlError::at(
            table.location,
            format!(
                "unsupported option '{key}' for table {} (supported: {})",
                table.name,
                known.join(", ")
            ),
        ));
    }
    Ok(())
}

fn stream_name(table: &TableDef) -> Result<String, SqlError> {
    if let Some(s) = table.option("stream") {
        return Ok(s.to_string());
    }
    if let Some(arn) = table.option("stream.arn") {
        return arn
            .rsplit_once(":stream/")
            .map(|(_, name)| name.to_string())
            .ok_or_else(|| {
                SqlError::at(
                    table.location,
                    format!(
                        "'{arn}' is not a stream ARN (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME)"
                    ),
                )
            });
    }
    Err(SqlError::at(
        table.location,
        format!("table {} needs 'stream' (or 'stream.arn')", table.name),
    ))
}

fn format_of(table: &TableDef) -> Result<Format, SqlError> {
    match table.option("format") {
        Some("json") => Ok(Format::Json),
        Some("csv") => Ok(Format::Csv),
        Some("raw") => Ok(Format::Raw),
        Some(other) => Err(SqlError::at(
            table.location,
            format!("format '{other}' is not supported (json, csv, raw)"),
        )),
        None => Err(SqlError::at(
            table.location,
            format!("table {} needs 'format' (json, csv or raw)", table.name),
        )),
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
        super::functions::plain_args(f, at)?
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

fn contains_aggregate(e: &Expr) -> bool {
    sqlparser::ast::visit_expressions(e, |x| match x {
        Expr::Function(f) if f.over.is_none() && is_aggregate(&f.name.to_string()) => {
            ControlFlow::Break(())
        }
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

fn contains_over(e: &Expr) -> bool {
    sqlparser::ast::visit_expressions(e, |x| match x {
        Expr::Function(f) if f.over.is_some() => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

/// SELECT items with their output names (`*` expanded; unnamed expressions are `EXPR$n`).
fn expand_items(items: &[SelectItem], scope: &Scope) -> Result<Vec<(Expr, String)>, SqlError> {
    let mut out = Vec::new();
    for item in items {
        match item {
            SelectItem::UnnamedExpr(e) => {
                let name = match e {
                    Expr::Identifier(i) => i.value.clone(),
                    Expr::CompoundIdentifier(p) => {
                        p.last().map(|i| i.value.clone()).unwrap_or_default()
                    }
                    _ => format!("EXPR${}", out.len()),
                };
                out.push((e.clone(), name));
            }
            SelectItem::ExprWithAlias { expr, alias } => {
                out.push((expr.clone(), alias.value.clone()))
            }
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                for c in &scope.columns {
                    out.push((Expr::Identifier(Ident::new(c.name.clone())), c.name.clone()));
                }
            }
            other => {
                return Err(SqlError::of(
                    other,
                    format!("SELECT item {other} is not supported"),
                ))
            }
        }
    }
    Ok(out)
}

/// Keeps in `source.fields` (JSON) only the physical columns the query reads.
fn mark_used(source: &mut SourcePlan, stage: &Stage) {
    if source.format != Format::Json {
        return;
    }
    let reads = |slot: usize| -> bool {
        let s = |x: &Scalar| x.reads(slot);
        let o = |x: &Option<Scalar>| x.as_ref().is_some_and(|x| x.reads(slot));
        let aggs = |a: &[AggSpec]| {
            a.iter()
                .any(|a| a.arg.as_ref().is_some_and(|x| x.reads(slot)) || o(&a.filter))
        };
        source.computed.iter().any(|(_, c)| c.reads(slot))
            || source
                .lookup
                .as_ref()
                .is_some_and(|l| l.left_keys.iter().any(s))
            || source
                .rowtime
                .as_ref()
                .is_some_and(|(t, w)| *t == slot || w.reads(slot))
            || match stage {
                Stage::Project { filter, select } => o(filter) || select.iter().any(s),
                Stage::WindowProject {
                    time,
                    filter,
                    select,
                    ..
                } => *time == slot || o(filter) || select.iter().any(s),
                Stage::WindowAgg {
                    time,
                    pre_filter,
                    plan,
                } => {
                    *time == slot
                        || o(pre_filter)
                        || o(&plan.filter)
                        || plan.keys.iter().any(s)
                        || plan.partition.iter().any(s)
                        || aggs(&plan.aggs)
                }
                Stage::Over {
                    time,
                    pre_filter,
                    plan,
                } => {
                    *time == slot
                        || o(pre_filter)
                        || plan.partition.iter().any(s)
                        || plan.select.iter().any(s)
                        || aggs(&plan.aggs)
                }
            }
    };
    let used: Vec<bool> = source.fields.iter().map(|f| reads(f.slot)).collect();
    let mut i = 0;
    source.fields.retain(|_| {
        i += 1;
        used[i - 1]
    });
}
