//! Flink SQL in: the script of an application (`CREATE TABLE`s, then one `INSERT INTO ...
//! SELECT`) or of a query (`CREATE TABLE`s, then one `SELECT`), parsed with sqlparser and a
//! Flink dialect, then planned (`plan`) into the engine's operators with compiled expressions
//! (`expr`). Every error names the construct and its position (line, column).

pub mod ddl;
mod dialect;
pub mod expr;
pub mod functions;
pub mod plan;

use std::fmt;

use sqlparser::ast::{Query, Spanned, Statement};
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Location, Token};

pub use ddl::TableDef;
pub use dialect::FlinkDialect;

/// What is wrong with a script, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    pub message: String,
    /// 1-based; 0 when the position is not known.
    pub line: u64,
    pub column: u64,
}

impl SqlError {
    pub fn at(location: Location, message: impl Into<String>) -> SqlError {
        SqlError {
            message: message.into(),
            line: location.line,
            column: location.column,
        }
    }

    pub fn of(node: &impl Spanned, message: impl Into<String>) -> SqlError {
        SqlError::at(node.span().start, message)
    }

    pub fn from_parser(error: ParserError) -> SqlError {
        // sqlparser ends its messages with "at Line: L, Column: C".
        let text = ddl::parser_message(&error);
        let (message, line, column) = match text.rsplit_once(" at Line: ") {
            Some((message, position)) => {
                let mut parts = position.split(", Column: ");
                let line = parts
                    .next()
                    .and_then(|l| l.trim().parse().ok())
                    .unwrap_or(0);
                let column = parts
                    .next()
                    .and_then(|c| c.trim().parse().ok())
                    .unwrap_or(0);
                (message.to_string(), line, column)
            }
            None => (text, 0, 0),
        };
        SqlError {
            message: format!(
                "SQL parse error: {}",
                message.trim_start_matches("sql parser error: ")
            ),
            line,
            column,
        }
    }
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(
                f,
                "line {}, column {}: {}",
                self.line, self.column, self.message
            )
        } else {
            f.write_str(&self.message)
        }
    }
}

impl std::error::Error for SqlError {}

/// The statement a script runs.
#[derive(Debug, Clone)]
pub enum Action {
    Insert {
        table: String,
        query: Box<Query>,
        location: Location,
    },
    Select(Box<Query>),
}

/// A parsed script.
#[derive(Debug, Clone)]
pub struct Script {
    pub tables: Vec<TableDef>,
    pub action: Action,
    /// `SET 'key' = 'value'` lines, in order.
    pub settings: Vec<(String, String)>,
}

/// Most bytes of a script.
pub const MAX_SCRIPT_BYTES: usize = 256 * 1024;

/// Parses a script: `CREATE TABLE` statements and exactly one `INSERT INTO ... SELECT` or
/// `SELECT`, separated by semicolons. `SET 'key' = 'value'` lines are accepted and ignored
/// when they name a key the gateway leaves to itself.
pub fn parse_script(sql: &str) -> Result<Script, SqlError> {
    if sql.len() > MAX_SCRIPT_BYTES {
        return Err(SqlError::at(
            Location::empty(),
            format!(
                "the SQL is {} bytes, more than the {MAX_SCRIPT_BYTES} allowed",
                sql.len()
            ),
        ));
    }
    let dialect = FlinkDialect;
    let mut parser = Parser::new(&dialect)
        .try_with_sql(sql)
        .map_err(SqlError::from_parser)?;
    let mut tables: Vec<TableDef> = Vec::new();
    let mut action = None;
    let mut settings = Vec::new();
    loop {
        while parser.consume_token(&Token::SemiColon) {}
        let token = parser.peek_token();
        if token.token == Token::EOF {
            break;
        }
        let location = token.span.start;
        if action.is_some() {
            return Err(SqlError::at(
                location,
                "only one INSERT INTO or SELECT per script (an application has one query; make another application for another)",
            ));
        }
        if parser.parse_keyword(Keyword::CREATE) {
            let _ = parser.parse_keyword(Keyword::TEMPORARY);
            if !parser.parse_keyword(Keyword::TABLE) {
                let found = parser.peek_token();
                return Err(SqlError::at(
                    found.span.start,
                    format!(
                        "only CREATE TABLE is supported, found CREATE {}",
                        found.token
                    ),
                ));
            }
            let _ = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
            let table = ddl::parse_create_table(&mut parser, location)?;
            if tables
                .iter()
                .any(|t| t.name.eq_ignore_ascii_case(&table.name))
            {
                return Err(SqlError::at(
                    location,
                    format!("table {} is created twice", table.name),
                ));
            }
            tables.push(table);
            continue;
        }
        if parser.parse_keyword(Keyword::SET) {
            // SET 'table.exec.source.idle-timeout' = '10 s' and the like.
            let key = parser
                .parse_literal_string()
                .map_err(SqlError::from_parser)?;
            parser
                .expect_token(&Token::Eq)
                .map_err(SqlError::from_parser)?;
            let value = parser
                .parse_literal_string()
                .map_err(SqlError::from_parser)?;
            settings.push((key, value));
            continue;
        }
        let statement = parser.parse_statement().map_err(SqlError::from_parser)?;
        action = Some(match statement {
            Statement::Query(query) => Action::Select(query),
            Statement::Insert(insert) => {
                let Some(source) = insert.source else {
                    return Err(SqlError::at(location, "INSERT needs a SELECT"));
                };
                if !insert.columns.is_empty() {
                    return Err(SqlError::at(
                        location,
                        "INSERT INTO t (columns) is not supported: select the sink's columns in order",
                    ));
                }
                Action::Insert {
                    table: insert.table.to_string(),
                    query: source,
                    location,
                }
            }
            other => {
                return Err(SqlError::at(
                    location,
                    format!(
                        "{} is not supported: a script is CREATE TABLE statements and one INSERT INTO ... SELECT or SELECT",
                        other.to_string().split_whitespace().take(2).collect::<Vec<_>>().join(" ")
                    ),
                ))
            }
        });
    }
    let action = action.ok_or_else(|| {
        SqlError::at(
            Location::empty(),
            "the script has no INSERT INTO ... SELECT (or SELECT) to run",
        )
    })?;
    Ok(Script {
        tables,
        action,
        settings,
    })
}
