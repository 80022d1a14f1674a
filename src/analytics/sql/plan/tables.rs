//! Planning tables: a source table (connector options, format, metadata and computed columns,
//! rowtime), a lookup join's table, and the sink.

use sqlparser::ast::{Expr, TableFactor};

use super::*;
use crate::analytics::sql::ddl::ColumnKind;
use crate::analytics::sql::expr::{compile, Scalar, Scope, ScopeColumn, Typed};
use crate::analytics::sql::SqlError;
use crate::analytics::value::SqlType;

impl Planner<'_> {
    /// The lookup table of a join and the columns it adds to the scope.
    pub(super) fn lookup(
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

    pub(super) fn source(
        &self,
        table: &TableDef,
        alias: Option<String>,
    ) -> Result<SourcePlan, SqlError> {
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

    pub(super) fn sink(
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

pub(super) fn split_and<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
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

/// Keeps in `source.fields` (JSON) only the physical columns the query reads.
pub(super) fn mark_used(source: &mut SourcePlan, stage: &Stage) {
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
                // The sides of a window join are planned (and marked) as SELECTs of their own.
                Stage::WindowJoin { .. } => true,
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
