//! `CREATE TABLE` as Flink writes it, parsed on sqlparser's tokens (sqlparser does not know
//! Flink's metadata columns, computed columns or WATERMARK clause): columns with their types,
//! `METADATA FROM 'key' [VIRTUAL]`, `name AS expr`, `WATERMARK FOR col AS expr`,
//! `PRIMARY KEY (...) NOT ENFORCED`, and the `WITH ('key' = 'value', ...)` options.

use std::collections::BTreeMap;

use sqlparser::ast::{DataType, Expr, Ident};
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Location, Token};

use super::SqlError;
use crate::analytics::value::SqlType;

/// A metadata column's source (Flink's Kinesis connector names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metadata {
    /// Arrival time at the stream (`'timestamp'`).
    Timestamp,
    PartitionKey,
    ShardId,
    SequenceNumber,
}

#[derive(Debug, Clone)]
pub enum ColumnKind {
    Physical,
    Metadata(Metadata),
    Computed(Box<Expr>),
    /// `PROCTIME()`: the processing time when the row is read.
    ProcTime,
}

#[derive(Debug, Clone)]
pub struct ColumnDef {
    pub name: String,
    pub ty: SqlType,
    pub kind: ColumnKind,
    pub location: Location,
}

#[derive(Debug, Clone)]
pub struct TableDef {
    pub name: String,
    pub columns: Vec<ColumnDef>,
    /// The rowtime column and the watermark expression over it.
    pub watermark: Option<(String, Expr)>,
    /// Option keys as written (Flink's keys are case-sensitive).
    pub options: BTreeMap<String, String>,
    pub location: Location,
}

impl TableDef {
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    }

    pub fn option(&self, key: &str) -> Option<&str> {
        self.options.get(key).map(String::as_str)
    }
}

/// Parses what follows `CREATE TABLE` up to the end of the statement.
pub fn parse_create_table(parser: &mut Parser, location: Location) -> Result<TableDef, SqlError> {
    let name = parser.parse_identifier().map_err(SqlError::from_parser)?;
    parser
        .expect_token(&Token::LParen)
        .map_err(SqlError::from_parser)?;
    let mut columns = Vec::new();
    let mut watermark = None;
    loop {
        let at = parser.peek_token().span.start;
        if parse_word(parser, "WATERMARK") {
            parser
                .expect_keyword_is(Keyword::FOR)
                .map_err(SqlError::from_parser)?;
            let column = parser.parse_identifier().map_err(SqlError::from_parser)?;
            parser
                .expect_keyword_is(Keyword::AS)
                .map_err(SqlError::from_parser)?;
            let expr = parser.parse_expr().map_err(SqlError::from_parser)?;
            if watermark.is_some() {
                return Err(SqlError::at(at, "a table can have only one WATERMARK"));
            }
            watermark = Some((column.value, expr));
        } else if parser.parse_keywords(&[Keyword::PRIMARY, Keyword::KEY]) {
            parser
                .expect_token(&Token::LParen)
                .map_err(SqlError::from_parser)?;
            parser
                .parse_comma_separated(|p| p.parse_identifier())
                .map_err(SqlError::from_parser)?;
            parser
                .expect_token(&Token::RParen)
                .map_err(SqlError::from_parser)?;
            if !parser.parse_keywords(&[Keyword::NOT, Keyword::ENFORCED]) {
                return Err(SqlError::at(
                    at,
                    "Flink supports only PRIMARY KEY (...) NOT ENFORCED",
                ));
            }
        } else {
            columns.push(parse_column(parser)?);
        }
        if parser.consume_token(&Token::Comma) {
            continue;
        }
        parser
            .expect_token(&Token::RParen)
            .map_err(SqlError::from_parser)?;
        break;
    }
    if parser.parse_keywords(&[Keyword::PARTITIONED, Keyword::BY]) {
        let at = parser.peek_token().span.start;
        return Err(SqlError::at(
            at,
            "PARTITIONED BY is not supported: records are partitioned by their group key",
        ));
    }
    let mut options = BTreeMap::new();
    if parser.parse_keyword(Keyword::WITH) {
        parser
            .expect_token(&Token::LParen)
            .map_err(SqlError::from_parser)?;
        loop {
            let key = parser
                .parse_literal_string()
                .map_err(SqlError::from_parser)?;
            parser
                .expect_token(&Token::Eq)
                .map_err(SqlError::from_parser)?;
            let value = parser
                .parse_literal_string()
                .map_err(SqlError::from_parser)?;
            options.insert(key, value);
            if !parser.consume_token(&Token::Comma) {
                break;
            }
        }
        parser
            .expect_token(&Token::RParen)
            .map_err(SqlError::from_parser)?;
    }
    let table = TableDef {
        name: name.value,
        columns,
        watermark,
        options,
        location,
    };
    check_table(&table)?;
    Ok(table)
}

fn parse_column(parser: &mut Parser) -> Result<ColumnDef, SqlError> {
    let location = parser.peek_token().span.start;
    let name: Ident = parser.parse_identifier().map_err(SqlError::from_parser)?;
    if parser.parse_keyword(Keyword::AS) {
        let expr = parser.parse_expr().map_err(SqlError::from_parser)?;
        let is_proctime = matches!(&expr, Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("PROCTIME"));
        return Ok(ColumnDef {
            name: name.value,
            ty: if is_proctime {
                SqlType::TimestampLtz
            } else {
                SqlType::Null
            },
            kind: if is_proctime {
                ColumnKind::ProcTime
            } else {
                ColumnKind::Computed(Box::new(expr))
            },
            location,
        });
    }
    let data_type = parser.parse_data_type().map_err(SqlError::from_parser)?;
    let ty = sql_type(&data_type).map_err(|m| SqlError::at(location, m))?;
    let mut kind = ColumnKind::Physical;
    if parser.parse_keyword(Keyword::METADATA) {
        let key = if parser.parse_keyword(Keyword::FROM) {
            parser
                .parse_literal_string()
                .map_err(SqlError::from_parser)?
        } else {
            name.value.clone()
        };
        let _ = parser.parse_keyword(Keyword::VIRTUAL);
        let metadata = match key.as_str() {
            "timestamp" => Metadata::Timestamp,
            "partition-key" => Metadata::PartitionKey,
            "shard-id" => Metadata::ShardId,
            "sequence-number" => Metadata::SequenceNumber,
            other => {
                return Err(SqlError::at(
                    location,
                    format!("unknown metadata key '{other}': the kinesis connector has 'timestamp', 'partition-key', 'shard-id' and 'sequence-number'"),
                ))
            }
        };
        kind = ColumnKind::Metadata(metadata);
    }
    // Column constraints Flink allows and ignores here.
    let _ = parser.parse_keywords(&[Keyword::NOT, Keyword::NULL])
        || parser.parse_keyword(Keyword::NULL);
    if parser.parse_keyword(Keyword::COMMENT) {
        parser
            .parse_literal_string()
            .map_err(SqlError::from_parser)?;
    }
    Ok(ColumnDef {
        name: name.value,
        ty,
        kind,
        location,
    })
}

/// The engine's type for a declared SQL type.
pub fn sql_type(data_type: &DataType) -> Result<SqlType, String> {
    let text = data_type.to_string().to_ascii_uppercase();
    let base = text
        .split(['(', ' '])
        .next()
        .unwrap_or_default()
        .to_string();
    let params: Vec<u8> = text
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(inside, _)| {
            inside
                .split(',')
                .filter_map(|p| p.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default();
    Ok(match base.as_str() {
        "STRING" | "VARCHAR" | "CHAR" | "TEXT" | "CHARACTER" => SqlType::String,
        "BOOLEAN" | "BOOL" => SqlType::Boolean,
        "TINYINT" => SqlType::TinyInt,
        "SMALLINT" => SqlType::SmallInt,
        "INT" | "INTEGER" => SqlType::Int,
        "BIGINT" => SqlType::BigInt,
        "FLOAT" | "REAL" => SqlType::Float,
        "DOUBLE" => SqlType::Double,
        "DECIMAL" | "DEC" | "NUMERIC" => SqlType::Decimal(
            params.first().copied().unwrap_or(10),
            params.get(1).copied().unwrap_or(0),
        ),
        "TIMESTAMP_LTZ" => SqlType::TimestampLtz,
        "TIMESTAMP" if text.contains("LOCAL TIME ZONE") => SqlType::TimestampLtz,
        "TIMESTAMP" => SqlType::Timestamp,
        "DATE" => SqlType::Date,
        _ => {
            return Err(format!(
                "type {text} is not supported (supported: STRING, VARCHAR, BOOLEAN, TINYINT, SMALLINT, INT, BIGINT, FLOAT, DOUBLE, DECIMAL, TIMESTAMP(3), TIMESTAMP_LTZ(3), DATE)"
            ))
        }
    })
}

fn check_table(table: &TableDef) -> Result<(), SqlError> {
    let mut seen = std::collections::HashSet::new();
    for column in &table.columns {
        if !seen.insert(column.name.to_ascii_lowercase()) {
            return Err(SqlError::at(
                column.location,
                format!(
                    "column {} is declared twice in table {}",
                    column.name, table.name
                ),
            ));
        }
    }
    if let Some((column, _)) = &table.watermark {
        match table.column(column) {
            None => {
                return Err(SqlError::at(
                    table.location,
                    format!("the WATERMARK of table {} is FOR {column}, which is not a column of it", table.name),
                ))
            }
            Some(i)
                if !matches!(table.columns[i].kind, ColumnKind::Computed(_))
                    && !table.columns[i].ty.is_time() =>
            {
                return Err(SqlError::at(
                    table.columns[i].location,
                    format!("the rowtime column {column} must be TIMESTAMP(3) or TIMESTAMP_LTZ(3), not {}", table.columns[i].ty.name()),
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Consumes the next token when it is the word `word` (Flink words sqlparser does not
/// reserve, such as WATERMARK).
fn parse_word(parser: &mut Parser, word: &str) -> bool {
    match &parser.peek_token().token {
        Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word) => {
            parser.next_token();
            true
        }
        _ => false,
    }
}

/// Tells a `ParserError` apart from a kinedge message (used by `SqlError`).
pub fn parser_message(error: &ParserError) -> String {
    match error {
        ParserError::ParserError(m) | ParserError::TokenizerError(m) => m.clone(),
        ParserError::RecursionLimitExceeded => "the statement is nested too deeply".into(),
    }
}
