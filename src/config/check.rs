//! `Check`: collects every problem of a configuration under its dotted key path (`streams[1].
//! retention_hours`), the warnings, and the files, directories and variables it names (for
//! `check-config`), plus the value parsers every section uses. A value with a problem is
//! reported and replaced by its default by the caller, so that checking goes on.
//!
//! Invariant: checking never stops at the first mistake; every `Check` method reports its own
//! problem and returns `None`.

use std::collections::HashSet;
use std::fmt::Display;
use std::net::SocketAddr;
use std::ops::RangeInclusive;

use toml::Value;

use super::raw::Problem;
use super::{format_size, parse_size, Reference};

/// What checking a configuration found.
#[derive(Default)]
pub struct Check {
    /// Mistakes: the file is refused.
    pub problems: Vec<Problem>,
    /// Legal but probably not meant (a route to a stream that is not configured).
    pub warnings: Vec<Problem>,
    /// Files, directories and variables the configuration names, under their keys; only
    /// `check-config` looks at them.
    pub references: Vec<(String, Reference)>,
    /// The names in `[[streams]]`, for routes and delivery sources.
    pub stream_names: HashSet<String>,
}

impl Check {
    pub fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push((key.to_owned(), message.into()));
    }

    pub fn warning(&mut self, key: &str, message: impl Into<String>) {
        self.warnings.push((key.to_owned(), message.into()));
    }

    /// Notes a file, directory or variable that `check-config` should look at.
    pub fn reference(&mut self, key: &str, reference: Reference) {
        self.references.push((key.to_owned(), reference));
    }

    /// A string value checked by `parse`; `None` when absent or wrong (the problem is noted).
    pub fn string<T>(
        &mut self,
        key: &str,
        value: Option<Value>,
        expected: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let value = value?;
        let Some(s) = value.as_str() else {
            self.problem(key, wrong_type(&format!("{expected} in quotes"), &value));
            return None;
        };
        parse(s).map_err(|message| self.problem(key, message)).ok()
    }

    pub fn boolean(&mut self, key: &str, value: Option<Value>) -> Option<bool> {
        let value = value?;
        match value.as_bool() {
            Some(b) => Some(b),
            None => {
                self.problem(key, wrong_type("true or false", &value));
                None
            }
        }
    }

    /// A whole number in `range`; `unit` follows the range in messages (" hours").
    pub fn integer<T>(
        &mut self,
        key: &str,
        value: Option<Value>,
        range: RangeInclusive<T>,
        unit: &str,
    ) -> Option<T>
    where
        T: TryFrom<i64> + PartialOrd + Display,
    {
        let value = value?;
        let Some(n) = value.as_integer() else {
            self.problem(key, wrong_type("a whole number", &value));
            return None;
        };
        match T::try_from(n) {
            Ok(n) if range.contains(&n) => Some(n),
            _ => {
                self.problem(
                    key,
                    format!(
                        "{n} is out of range: {}..={}{unit}",
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
        }
    }

    /// A size (bytes or a string with a unit) in `range`.
    pub fn size(
        &mut self,
        key: &str,
        value: Option<Value>,
        range: RangeInclusive<u64>,
    ) -> Option<u64> {
        let bytes = match value? {
            Value::Integer(n) => u64::try_from(n).map_err(|_| format!("{n} is negative")),
            Value::String(s) => parse_size(&s),
            other => Err(wrong_type(
                "a number of bytes or a size like \"256MiB\"",
                &other,
            )),
        };
        let message = match bytes {
            Ok(n) if range.contains(&n) => return Some(n),
            Ok(n) if *range.end() == u64::MAX => format!(
                "{} is too small: at least {}",
                format_size(n),
                format_size(*range.start())
            ),
            Ok(n) => format!(
                "{} is out of range: {}..={}",
                format_size(n),
                format_size(*range.start()),
                format_size(*range.end())
            ),
            Err(message) => message,
        };
        self.problem(key, message);
        None
    }
}

pub fn wrong_type(expected: &str, found: &Value) -> String {
    format!("expected {expected}, found {} {found}", found.type_str())
}
/// An AWS region name (`eu-west-1`).
pub fn parse_region(s: &str) -> Result<String, String> {
    let valid = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "`{s}` is not a region name: use a-z, 0-9 and `-`, e.g. \"eu-west-1\""
        ))
    }
}

/// An access key id: 1..=128 of `[A-Za-z0-9_]`.
pub fn parse_access_key_id(s: &str) -> Result<String, String> {
    let valid =
        (1..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "`{s}` is not an access key id: use 1..=128 characters from A-Z, a-z, 0-9, `_`"
        ))
    }
}

/// The name of an environment variable that holds a secret.
pub fn parse_env_name(s: &str) -> Result<String, String> {
    if s.is_empty() || s.contains(['=', '\0']) {
        Err(format!("`{s}` is not an environment variable name"))
    } else {
        Ok(s.to_owned())
    }
}

/// Why a secret written into the file is refused; `file_key`/`env_key` are the keys to use.
pub fn plaintext_secret(file_key: &str, env_key: &str) -> String {
    format!(
        "plaintext secrets are not allowed in config: put the secret in a file and set \
         {file_key}, or in an environment variable and set {env_key}"
    )
}

/// Longest stream name.
pub const MAX_STREAM_NAME_LEN: usize = 128;

/// Whether `name` is a valid stream name: 1..=128 of `[a-zA-Z0-9_.-]`.
pub fn is_valid_stream_name(name: &str) -> bool {
    (1..=MAX_STREAM_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

pub fn parse_stream_name(s: &str) -> Result<String, String> {
    if is_valid_stream_name(s) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "`{s}` is not a valid stream name: use 1..=128 characters \
             from a-z, A-Z, 0-9, `_`, `.`, `-`"
        ))
    }
}

/// An `IP:PORT`; the message shows `example`.
pub fn parse_socket_addr(s: &str, example: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .map_err(|_| format!("`{s}` is not a socket address: write IP:PORT, e.g. \"{example}\""))
}
