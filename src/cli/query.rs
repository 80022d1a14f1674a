//! `kinedge query "SQL"`: a bounded Flink SQL query over the stored history of streams, run
//! by the gateway (`POST /analytics/query`), printed as an aligned table or as JSON lines.
//!
//! With `--format json`, standard output holds exactly one compact JSON object per row (the
//! gateway's `rows[i]`) and nothing else, so that it can be piped; notes go to standard error.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use reqwest::Method;
use serde_json::{json, Value};

use super::KinesisClient;

/// How long `kinedge query` waits for the gateway's answer.
pub(super) const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// What `kinedge query` was given.
pub(super) struct QueryArgs {
    pub sql: Option<String>,
    pub file: Option<PathBuf>,
    pub format: String,
    pub max_rows: Option<usize>,
}

pub(super) async fn query_command(client: &KinesisClient, args: QueryArgs) -> anyhow::Result<()> {
    let sql = script(args.sql, args.file)?;
    let mut body = json!({ "sql": sql });
    if let Some(max_rows) = args.max_rows {
        body["max_rows"] = json!(max_rows);
    }
    let output = client
        .send_json(Method::POST, "/analytics/query", Some(&body))
        .await?;
    let empty = Vec::new();
    let rows = output["rows"].as_array().unwrap_or(&empty);
    if args.format == "json" {
        let columns: Vec<&str> = output["columns"]
            .as_array()
            .map(|c| c.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut out = String::new();
        for row in rows {
            out.push_str(&json_line(&columns, row)?);
            out.push('\n');
        }
        print!("{out}");
    } else {
        print!("{}", table(&output));
    }
    if output["truncated"].as_bool() == Some(true) {
        eprintln!(
            "note: the result was cut at {} rows (raise --max-rows, at most 1000000)",
            rows.len()
        );
    }
    Ok(())
}

/// A row as one JSON object with its keys in the query's column order (the answer's objects
/// come with sorted keys).
fn json_line(columns: &[&str], row: &Value) -> anyhow::Result<String> {
    let mut line = String::from("{");
    for (i, column) in columns.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        line.push_str(&serde_json::to_string(column)?);
        line.push(':');
        line.push_str(&serde_json::to_string(
            row.get(*column).unwrap_or(&Value::Null),
        )?);
    }
    line.push('}');
    Ok(line)
}

/// The query: the argument, standard input for `-`, or the file.
fn script(sql: Option<String>, file: Option<PathBuf>) -> anyhow::Result<String> {
    match (sql.as_deref(), file) {
        (Some("-"), _) => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the query from standard input")?;
            Ok(text)
        }
        (Some(_), _) => Ok(sql.unwrap_or_default()),
        (None, Some(file)) => std::fs::read_to_string(&file)
            .with_context(|| format!("reading the query from {}", file.display())),
        (None, None) => {
            anyhow::bail!("give the query as an argument, `-` (standard input) or --file FILE")
        }
    }
}

/// A cell as text: strings as they are, NULL for null, numbers and the rest as JSON.
fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "NULL".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The columns as a header, a rule, one line per row (numbers aligned right), then
/// `(N rows)`.
fn table(output: &Value) -> String {
    let columns: Vec<&str> = output["columns"]
        .as_array()
        .map(|c| c.iter().map(|c| c.as_str().unwrap_or("?")).collect())
        .unwrap_or_default();
    let empty = Vec::new();
    let rows = output["rows"].as_array().unwrap_or(&empty);
    let cells: Vec<Vec<(String, bool)>> = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|c| (cell(row.get(c)), row.get(c).is_some_and(Value::is_number)))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|r| r[i].0.chars().count())
                .chain([c.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |texts: Vec<(String, bool)>| {
        let padded: Vec<String> = texts
            .into_iter()
            .zip(&widths)
            .map(|((text, right), &width)| {
                if right {
                    format!("{text:>width$}")
                } else {
                    format!("{text:<width$}")
                }
            })
            .collect();
        format!("{}\n", padded.join(" | ").trim_end())
    };
    let mut out = line(columns.iter().map(|c| (c.to_string(), false)).collect());
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&format!("{}\n", rule.join("-+-")));
    for row in cells {
        out.push_str(&line(row));
    }
    out.push_str(&format!("({} rows)\n", rows.len()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns_under_their_names() {
        let output = json!({
            "columns": ["device", "avg_temp", "n"],
            "rows": [
                {"device": "sensor-1", "avg_temp": 21.5, "n": 12},
                {"device": "s2", "avg_temp": null, "n": 3},
            ],
            "truncated": false,
        });
        assert_eq!(
            table(&output),
            "device   | avg_temp | n\n\
             ---------+----------+---\n\
             sensor-1 |     21.5 | 12\n\
             s2       | NULL     |  3\n\
             (2 rows)\n"
        );
        let none = json!({"columns": ["a"], "rows": [], "truncated": false});
        assert_eq!(table(&none), "a\n-\n(0 rows)\n");
    }
}
