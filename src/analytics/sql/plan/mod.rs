//! Planning: a parsed script becomes a [`Plan`]: the source table (stream, format, the fields
//! to decode, metadata and computed columns, rowtime and watermark), one stage (projection,
//! window projection, window aggregation or OVER aggregation), the result columns, and the
//! sink. Everything the engine cannot run is refused here, with its position. `tables` plans
//! the source, lookup and sink tables; `windows` the window functions and aggregations.

mod join;
mod tables;
mod windows;

use tables::mark_used;
use windows::{contains_aggregate, contains_over};

use sqlparser::ast::{Expr, GroupByExpr, Ident, Select, SelectItem, SetExpr, TableFactor};
use sqlparser::tokenizer::Location;

use super::ddl::{ColumnKind, Metadata, TableDef};
use super::expr::{compile, Scalar, Scope, ScopeColumn};
use super::{Action, Script, SqlError};
use crate::analytics::ops::aggregate::AggSpec;
use crate::analytics::ops::join::WindowJoinPlan;
use crate::analytics::ops::over::OverPlan;
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
    /// A window join of two streams: the plan's source is the left side's table.
    WindowJoin {
        left: Box<JoinSide>,
        right: Box<JoinSide>,
        right_source: Box<SourcePlan>,
        join: Box<WindowJoinPlan>,
    },
}

/// One side of a window join: the window projection of its table (event time).
#[derive(Debug, Clone)]
pub struct JoinSide {
    pub kind: WindowKind,
    pub time: usize,
    pub filter: Option<Scalar>,
    pub select: Vec<Scalar>,
    /// Its table's row width: window_start, window_end and window_time follow.
    pub input_width: usize,
}

impl JoinSide {
    /// True when the side's output column `col` is its window_start.
    fn is_start(&self, col: usize) -> bool {
        matches!(self.select.get(col), Some(Scalar::Col(s)) if *s == self.input_width)
    }

    fn is_end(&self, col: usize) -> bool {
        matches!(self.select.get(col), Some(Scalar::Col(s)) if *s == self.input_width + 1)
    }
}

impl Plan {
    /// The tables the plan reads: its source, and a window join's right side.
    pub fn inputs(&self) -> Vec<&SourcePlan> {
        match &self.stage {
            Stage::WindowJoin { right_source, .. } => vec![&self.source, right_source],
            _ => vec![&self.source],
        }
    }
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
pub(super) type Planned = (SourcePlan, Stage, Vec<(String, SqlType)>);

/// A window TVF call: the window, the time column's name, SESSION's partition keys.
type WindowCall = (WindowKind, String, Vec<Expr>);

pub(super) struct Planner<'a> {
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
                "a SELECT reads one table or window function, or joins two: FROM a JOIN b ON ... (a comma join is not supported)",
            ));
        };
        let derived = |t: &TableFactor| matches!(t, TableFactor::Derived { .. });
        if derived(&from.relation) || from.joins.first().is_some_and(|j| derived(&j.relation)) {
            if from.joins.len() != 1 {
                return Err(SqlError::of(&from.relation, "a nested query is supported only as a side of a window join of two streams: FROM (SELECT * FROM TABLE(TUMBLE(...))) L JOIN (SELECT * FROM TABLE(TUMBLE(...))) R ON ..."));
            }
            return self.window_join(select, from);
        }
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
}

/// SELECT items with their output names (`*` expanded; unnamed expressions are `EXPR$n`).
pub(super) fn expand_items(
    items: &[SelectItem],
    scope: &Scope,
) -> Result<Vec<(Expr, String)>, SqlError> {
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
