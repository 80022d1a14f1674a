//! Firehose-style S3 naming, shared by the `s3` and `directory` destinations: prefix
//! templates (`!{timestamp:..}`, `!{firehose:random-string}`, `!{firehose:error-output-type}`,
//! `!{partitionKeyFromQuery:KEY}`), their checks for `check-config`, and object names
//! (`<stream>-1-YYYY-MM-dd-HH-MM-SS-<batch id>`). Pure functions: a retried batch renders to
//! the same keys, so a retry overwrites what an earlier attempt may have written.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Timelike, Utc};
use sha2::{Digest, Sha256};

use crate::delivery::batch::{Batch, ErrorBatch, ErrorOutputType, FailedRecord};
use crate::delivery::compression;
use crate::delivery::config::Compression;

/// Firehose's default prefix: UTC `YYYY/MM/dd/HH/`.
pub const DEFAULT_PREFIX: &str = "!{timestamp:yyyy/MM/dd/HH}/";
/// Firehose's default error prefix.
pub const DEFAULT_ERROR_PREFIX: &str = "!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/";
/// Length of `!{firehose:random-string}`.
const RANDOM_STRING_LEN: usize = 11;

/// Checks a prefix template for `check-config`: `error_prefix` templates must contain
/// `!{firehose:error-output-type}`. The message says what is wrong.
pub fn check_prefix(template: &str, error_prefix: bool) -> Result<(), String> {
    Prefix::parse(template, error_prefix).map(|_| ())
}

/// One piece of a date pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DatePart {
    Literal(String),
    Year4,
    Year2,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Millis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Timestamp(Vec<DatePart>),
    RandomString,
    ErrorOutputType,
    PartitionKey(String),
}

/// A checked prefix template, ready to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefix {
    parts: Vec<Part>,
}

/// What a prefix is rendered for.
#[derive(Debug, Clone, Copy)]
pub struct RenderContext<'a> {
    /// The batch's `created_ms`.
    pub created_ms: u64,
    /// The batch id: seeds `!{firehose:random-string}`.
    pub batch_id: &'a str,
    /// `!{firehose:error-output-type}` (error prefixes only).
    pub error_output_type: Option<&'a str>,
    /// The record's `partition_values`.
    pub partition_values: &'a BTreeMap<String, String>,
}

impl Prefix {
    /// Parses `template`, or the default (error) prefix when `None`.
    pub fn parse_or_default(template: Option<&str>, error_prefix: bool) -> Result<Prefix, String> {
        let default = if error_prefix {
            DEFAULT_ERROR_PREFIX
        } else {
            DEFAULT_PREFIX
        };
        Prefix::parse(template.unwrap_or(default), error_prefix)
    }

    pub fn parse(template: &str, error_prefix: bool) -> Result<Prefix, String> {
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(start) = rest.find("!{") {
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| format!("`!{{` without a closing `}}` in {template:?}"))?;
            parts.push(parse_expression(&after[..end])?);
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        let has_error_type = parts.contains(&Part::ErrorOutputType);
        if error_prefix {
            if !has_error_type {
                return Err(format!(
                    "an error prefix must contain !{{firehose:error-output-type}}: {template:?}"
                ));
            }
            if parts.iter().any(|p| matches!(p, Part::PartitionKey(_))) {
                return Err(format!(
                    "!{{partitionKeyFromQuery:..}} cannot be used in an error prefix (failed \
                     records may have no partition keys): {template:?}"
                ));
            }
        } else if has_error_type {
            return Err(format!(
                "!{{firehose:error-output-type}} can only be used in an error prefix: {template:?}"
            ));
        }
        Ok(Prefix { parts })
    }

    /// The `partitionKeyFromQuery` keys the template uses.
    pub fn partition_keys(&self) -> Vec<&str> {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::PartitionKey(k) => Some(k.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Renders the prefix. Fails (naming the key) when a record lacks a partition key.
    pub fn render(&self, ctx: &RenderContext<'_>) -> Result<String, String> {
        let time = utc(ctx.created_ms);
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Timestamp(pattern) => format_date(&mut out, pattern, &time),
                Part::RandomString => out.push_str(&random_string(ctx.batch_id)),
                Part::ErrorOutputType => out.push_str(ctx.error_output_type.unwrap_or("unknown")),
                Part::PartitionKey(key) => match ctx.partition_values.get(key) {
                    Some(value) => out.push_str(value),
                    None => return Err(format!("the record has no partition key {key:?}")),
                },
            }
        }
        Ok(out)
    }
}

fn parse_expression(expr: &str) -> Result<Part, String> {
    let (namespace, value) = expr
        .split_once(':')
        .ok_or_else(|| format!("!{{{expr}}} is not of the form !{{namespace:value}}"))?;
    match namespace {
        "timestamp" => Ok(Part::Timestamp(parse_date_pattern(value)?)),
        "firehose" => match value {
            "random-string" => Ok(Part::RandomString),
            "error-output-type" => Ok(Part::ErrorOutputType),
            _ => Err(format!(
                "!{{firehose:{value}}}: the firehose namespace has only random-string and \
                 error-output-type"
            )),
        },
        "partitionKeyFromQuery" if !value.is_empty() => Ok(Part::PartitionKey(value.to_string())),
        "partitionKeyFromQuery" => Err("!{partitionKeyFromQuery:} needs a key name".into()),
        "partitionKeyFromLambda" => Err(format!(
            "!{{partitionKeyFromLambda:{value}}} is not supported: use a partition_keys \
             processor and !{{partitionKeyFromQuery:{value}}}"
        )),
        _ => Err(format!(
            "unknown namespace {namespace:?} in !{{{expr}}} (known: timestamp, firehose, \
             partitionKeyFromQuery)"
        )),
    }
}

/// Parses the subset of Java's DateTimeFormatter patterns Firehose prefixes use.
fn parse_date_pattern(pattern: &str) -> Result<Vec<DatePart>, String> {
    let bad = |what: String| {
        Err(format!(
            "!{{timestamp:{pattern}}}: {what} (supported: yyyy, yy, MM, dd, HH, mm, ss, SSS and \
             'quoted text')"
        ))
    };
    if pattern.is_empty() {
        return bad("empty pattern".into());
    }
    let chars: Vec<char> = pattern.chars().collect();
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // 'text' is literal; '' is one quote, inside or outside quotes.
            if chars.get(i + 1) == Some(&'\'') {
                literal.push('\'');
                i += 2;
                continue;
            }
            i += 1;
            loop {
                match chars.get(i) {
                    None => return bad("unterminated quote".into()),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        literal.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(&ch) => {
                        literal.push(ch);
                        i += 1;
                    }
                }
            }
        } else if c.is_ascii_alphabetic() {
            let run = chars[i..].iter().take_while(|&&x| x == c).count();
            let letters: String = chars[i..i + run].iter().collect();
            let part = match letters.as_str() {
                "yyyy" => DatePart::Year4,
                "yy" => DatePart::Year2,
                "MM" => DatePart::Month,
                "dd" => DatePart::Day,
                "HH" => DatePart::Hour,
                "mm" => DatePart::Minute,
                "ss" => DatePart::Second,
                "SSS" => DatePart::Millis,
                _ => return bad(format!("unsupported pattern letters {letters:?}")),
            };
            if !literal.is_empty() {
                parts.push(DatePart::Literal(std::mem::take(&mut literal)));
            }
            parts.push(part);
            i += run;
        } else if matches!(c, '[' | ']' | '#' | '{' | '}') {
            return bad(format!("reserved character {c:?}"));
        } else {
            literal.push(c);
            i += 1;
        }
    }
    if !literal.is_empty() {
        parts.push(DatePart::Literal(literal));
    }
    Ok(parts)
}

fn utc(ms: u64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(i64::MAX)).unwrap_or_default()
}

fn format_date(out: &mut String, pattern: &[DatePart], t: &DateTime<Utc>) {
    use std::fmt::Write;
    for part in pattern {
        // Writing to a String cannot fail.
        let _ = match part {
            DatePart::Literal(s) => write!(out, "{s}"),
            DatePart::Year4 => write!(out, "{:04}", t.year()),
            DatePart::Year2 => write!(out, "{:02}", t.year().rem_euclid(100)),
            DatePart::Month => write!(out, "{:02}", t.month()),
            DatePart::Day => write!(out, "{:02}", t.day()),
            DatePart::Hour => write!(out, "{:02}", t.hour()),
            DatePart::Minute => write!(out, "{:02}", t.minute()),
            DatePart::Second => write!(out, "{:02}", t.second()),
            DatePart::Millis => write!(out, "{:03}", t.timestamp_subsec_millis().min(999)),
        };
    }
}

/// `!{firehose:random-string}`: 11 lowercase letters and digits, the same for a given batch id
/// so that a retry writes the same key.
pub fn random_string(batch_id: &str) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    Sha256::digest(batch_id.as_bytes())
        .iter()
        .take(RANDOM_STRING_LEN)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// Firehose's object name: `<stream>-1-YYYY-MM-dd-HH-MM-SS-<batch id><extension>`.
pub fn object_name(
    delivery_stream: &str,
    created_ms: u64,
    batch_id: &str,
    compression: Compression,
) -> String {
    let t = utc(created_ms);
    format!(
        "{delivery_stream}-1-{:04}-{:02}-{:02}-{:02}-{:02}-{:02}-{batch_id}{}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        compression::extension(compression)
    )
}

/// A batch's records grouped by rendered prefix (one object per group), in record order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Groups {
    /// Rendered prefix -> indices into `batch.records`.
    pub groups: BTreeMap<String, Vec<usize>>,
    /// Records whose prefix cannot be rendered: (index, why).
    pub failed: Vec<(usize, String)>,
}

/// Groups a batch's records by their rendered prefix.
pub fn group_records(prefix: &Prefix, batch: &Batch) -> Groups {
    let mut out = Groups::default();
    let dynamic = !prefix.partition_keys().is_empty();
    let empty = BTreeMap::new();
    for (i, record) in batch.records.iter().enumerate() {
        let ctx = RenderContext {
            created_ms: batch.created_ms,
            batch_id: &batch.id,
            error_output_type: None,
            partition_values: if dynamic {
                &record.partition_values
            } else {
                &empty
            },
        };
        match prefix.render(&ctx) {
            Ok(p) => out.groups.entry(p).or_default().push(i),
            Err(e) => out.failed.push((i, e)),
        }
        if !dynamic && i == 0 {
            // Every record renders the same: skip rendering the rest.
            if let Some((_, first)) = out.groups.iter_mut().next() {
                first.extend(1..batch.records.len());
            }
            break;
        }
    }
    out
}

/// Records whose prefix cannot be rendered (a missing partition key) as an error batch for
/// the destination's own error output (`processing-failed`). Its id derives from the batch's,
/// so a retried batch writes the same error object.
pub fn unroutable_errors(batch: &Batch, failed: &[(usize, String)]) -> ErrorBatch {
    ErrorBatch {
        delivery_stream: batch.delivery_stream.clone(),
        id: format!("{}-unroutable", batch.id),
        created_ms: batch.created_ms,
        kind: ErrorOutputType::ProcessingFailed,
        records: failed
            .iter()
            .filter_map(|(i, why)| {
                Some(FailedRecord {
                    record: batch.records.get(*i)?.clone(),
                    error_code: "DynamicPartitioning.InvalidPartitionKey".into(),
                    error_message: why.clone(),
                    attempts: 1,
                })
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::delivery::batch::DeliveryRecord;

    // 2024-03-05T07:08:09.012Z
    const T: u64 = 1_709_622_489_012;

    fn ctx<'a>(values: &'a BTreeMap<String, String>) -> RenderContext<'a> {
        RenderContext {
            created_ms: T,
            batch_id: "6f1c1b1e-3c1d-4a8e-9a55-0c1c2d3e4f50",
            error_output_type: Some("processing-failed"),
            partition_values: values,
        }
    }

    fn render(template: &str, error: bool) -> String {
        Prefix::parse(template, error)
            .unwrap()
            .render(&ctx(&BTreeMap::new()))
            .unwrap()
    }

    #[test]
    fn defaults_are_firehose_s() {
        let p = Prefix::parse_or_default(None, false).unwrap();
        assert_eq!(p.render(&ctx(&BTreeMap::new())).unwrap(), "2024/03/05/07/");
        let e = Prefix::parse_or_default(None, true).unwrap();
        assert_eq!(
            e.render(&ctx(&BTreeMap::new())).unwrap(),
            "processing-failed/2024/03/05/07/"
        );
    }

    #[test]
    fn timestamp_patterns() {
        assert_eq!(
            render("gw1/!{timestamp:yyyy/MM/dd/HH}/", false),
            "gw1/2024/03/05/07/"
        );
        assert_eq!(
            render("dt=!{timestamp:yyyy'-'MM'-'dd}/h=!{timestamp:HH}/", false),
            "dt=2024-03-05/h=07/"
        );
        assert_eq!(render("!{timestamp:yy-mm-ss.SSS}", false), "24-08-09.012");
        assert_eq!(
            render("!{timestamp:'year='yyyy'/it''s'}/", false),
            "year=2024/it's/"
        );
        assert_eq!(render("plain/", false), "plain/");
        assert_eq!(render("", false), "");
    }

    #[test]
    fn random_string_is_stable_per_batch() {
        let a = render("!{firehose:random-string}/", false);
        assert_eq!(a, render("!{firehose:random-string}/", false));
        assert_eq!(a.len(), RANDOM_STRING_LEN + 1);
        assert!(a[..RANDOM_STRING_LEN]
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        assert_ne!(random_string("a"), random_string("b"));
    }

    #[test]
    fn partition_keys() {
        let p = Prefix::parse("d=!{partitionKeyFromQuery:device}/", false).unwrap();
        assert_eq!(p.partition_keys(), vec!["device"]);
        let mut values = BTreeMap::new();
        values.insert("device".to_string(), "s1".to_string());
        assert_eq!(p.render(&ctx(&values)).unwrap(), "d=s1/");
        let err = p.render(&ctx(&BTreeMap::new())).unwrap_err();
        assert!(err.contains("device"), "{err}");
    }

    #[test]
    fn check_prefix_rejects_with_clear_messages() {
        let cases: &[(&str, bool, &str)] = &[
            ("!{foo:bar}/", false, "unknown namespace"),
            ("!{timestamp:yyyy-MMM}/", false, "\"MMM\""),
            ("!{timestamp:YYYY}/", false, "\"YYYY\""),
            ("!{timestamp:}/", false, "empty pattern"),
            ("!{timestamp:'abc}/", false, "unterminated quote"),
            ("!{timestamp:yyyy", false, "closing"),
            ("!{firehose:other}/", false, "random-string"),
            ("errors/!{timestamp:yyyy}/", true, "must contain"),
            (
                "!{firehose:error-output-type}/",
                false,
                "only be used in an error",
            ),
            (
                "!{firehose:error-output-type}/!{partitionKeyFromQuery:k}/",
                true,
                "error prefix",
            ),
            ("!{partitionKeyFromLambda:k}/", false, "not supported"),
            ("!{partitionKeyFromQuery:}/", false, "key name"),
            ("!{timestamp}/", false, "namespace:value"),
        ];
        for (template, error, want) in cases {
            let err = check_prefix(template, *error).unwrap_err();
            assert!(err.contains(want), "{template}: {err}");
        }
        check_prefix(
            "!{firehose:error-output-type}/!{firehose:random-string}",
            true,
        )
        .unwrap();
        check_prefix(DEFAULT_PREFIX, false).unwrap();
        check_prefix(DEFAULT_ERROR_PREFIX, true).unwrap();
    }

    #[test]
    fn object_names() {
        assert_eq!(
            object_name("telemetry", T, "0b2f", Compression::Gzip),
            "telemetry-1-2024-03-05-07-08-09-0b2f.gz"
        );
        assert_eq!(
            object_name("t", T, "x", Compression::None),
            "t-1-2024-03-05-07-08-09-x"
        );
    }

    fn record(device: Option<&str>) -> DeliveryRecord {
        let mut values = BTreeMap::new();
        if let Some(d) = device {
            values.insert("device".to_string(), d.to_string());
        }
        DeliveryRecord {
            data: Bytes::from_static(b"x"),
            partition_key: "k".into(),
            sequence_number: "1".into(),
            arrival_ms: T,
            partition_values: Arc::new(values),
        }
    }

    #[test]
    fn grouping() {
        let batch = Batch {
            delivery_stream: "s".into(),
            id: "id".into(),
            created_ms: T,
            formed_ms: T,
            compression: Compression::None,
            records: vec![
                record(Some("a")),
                record(Some("b")),
                record(None),
                record(Some("a")),
            ],
        };
        let dynamic = Prefix::parse("!{partitionKeyFromQuery:device}/", false).unwrap();
        let g = group_records(&dynamic, &batch);
        assert_eq!(g.groups["a/"], vec![0, 3]);
        assert_eq!(g.groups["b/"], vec![1]);
        assert_eq!(g.failed.len(), 1);
        assert_eq!(g.failed[0].0, 2);

        let fixed = Prefix::parse_or_default(None, false).unwrap();
        let g = group_records(&fixed, &batch);
        assert_eq!(g.groups.len(), 1);
        assert_eq!(g.groups["2024/03/05/07/"], vec![0, 1, 2, 3]);
        assert!(g.failed.is_empty());
    }
}
