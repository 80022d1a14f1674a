//! Flink SQL's lexical rules on top of sqlparser: backquoted identifiers, `TABLE t` as an
//! argument of a window table-valued function (parsed as `Expr::Prefixed { prefix: TABLE }`),
//! and aggregate `FILTER (WHERE ...)`.

use sqlparser::ast::{Expr, Ident};
use sqlparser::dialect::Dialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Token;

#[derive(Debug, Default)]
pub struct FlinkDialect;

impl Dialect for FlinkDialect {
    fn is_identifier_start(&self, ch: char) -> bool {
        ch.is_alphabetic() || ch == '_' || ch == '$'
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        ch.is_alphanumeric() || ch == '_' || ch == '$'
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        ch == '`'
    }

    fn supports_filter_during_aggregation(&self) -> bool {
        true
    }

    fn supports_window_clause_named_window_reference(&self) -> bool {
        true
    }

    /// `JOIN t FOR SYSTEM_TIME AS OF l.proc_time`: a lookup join.
    fn supports_table_versioning(&self) -> bool {
        true
    }

    fn parse_prefix(&self, parser: &mut Parser) -> Option<Result<Expr, ParserError>> {
        // `TABLE name` inside TUMBLE(...), HOP(...): the table the window function reads.
        let token = parser.peek_token();
        let Token::Word(word) = &token.token else {
            return None;
        };
        if word.keyword != Keyword::TABLE {
            return None;
        }
        let is_name = matches!(parser.peek_nth_token(1).token, Token::Word(_));
        if !is_name {
            return None;
        }
        parser.next_token();
        Some(parse_table_argument(parser))
    }
}

/// `TABLE name [PARTITION BY key | PARTITION BY (key, ...)]`: the partition keys (SESSION)
/// ride along as `Prefixed { prefix: name, value: Tuple(keys) }`.
fn parse_table_argument(parser: &mut Parser) -> Result<Expr, ParserError> {
    let name = parser.parse_identifier()?;
    let value = if parser.parse_keywords(&[Keyword::PARTITION, Keyword::BY]) {
        let keys = if parser.consume_token(&Token::LParen) {
            let keys = parser.parse_comma_separated(|p| p.parse_expr())?;
            parser.expect_token(&Token::RParen)?;
            keys
        } else {
            vec![parser.parse_expr()?]
        };
        Expr::Prefixed {
            prefix: name,
            value: Box::new(Expr::Tuple(keys)),
        }
    } else {
        Expr::Identifier(name)
    };
    Ok(Expr::Prefixed {
        prefix: Ident::new("TABLE"),
        value: Box::new(value),
    })
}
