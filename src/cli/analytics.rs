//! `kinedge analytics list | describe | create | stop | start | delete`: the gateway's
//! analytics applications through `/analytics`, and their table (also in `kinedge status`).

use std::fmt::Write;
use std::path::PathBuf;

use anyhow::Context;
use reqwest::Method;
use serde_json::{json, Value};

use super::args::AnalyticsAction;
use super::KinesisClient;

pub(super) async fn analytics_command(
    client: &KinesisClient,
    action: AnalyticsAction,
) -> anyhow::Result<()> {
    match action {
        AnalyticsAction::List => {
            let list = client.get_json("/analytics").await?;
            print!("{}", applications_table(&list["applications"]));
        }
        AnalyticsAction::Describe { name } => {
            let status = client.get_json(&path(&name)?).await?;
            println!("{}", serde_json::to_string_pretty(&status)?);
        }
        AnalyticsAction::Create {
            name,
            sql,
            sql_file,
            max_state_keys,
        } => {
            path(&name)?;
            let sql = script(sql, sql_file)?;
            let mut body = json!({ "name": name, "sql": sql });
            if let Some(keys) = max_state_keys {
                body["max_state_keys"] = json!(keys);
            }
            let status = client
                .send_json(Method::POST, "/analytics", Some(&body))
                .await?;
            print_state(&status);
        }
        AnalyticsAction::Stop { name } => {
            let path = format!("{}/stop", path(&name)?);
            print_state(&client.send_json(Method::POST, &path, None).await?);
        }
        AnalyticsAction::Start { name } => {
            let path = format!("{}/start", path(&name)?);
            print_state(&client.send_json(Method::POST, &path, None).await?);
        }
        AnalyticsAction::Delete { name } => {
            client
                .send_json(Method::DELETE, &path(&name)?, None)
                .await?;
            println!("{name}: deleted");
        }
    }
    Ok(())
}

/// `/analytics/NAME`, once the name is one the gateway can hold.
fn path(name: &str) -> anyhow::Result<String> {
    if !crate::analytics::config::is_valid_name(name) {
        anyhow::bail!(
            "`{name}` is not a valid application name: use 1..=128 characters from a-z, A-Z, \
             0-9, `_`, `.`, `-`"
        );
    }
    Ok(format!("/analytics/{name}"))
}

/// The script of `create`: `--sql TEXT` or the contents of `--sql-file F`.
fn script(sql: Option<String>, file: Option<PathBuf>) -> anyhow::Result<String> {
    match (sql, file) {
        (Some(sql), _) => Ok(sql),
        (None, Some(file)) => std::fs::read_to_string(&file)
            .with_context(|| format!("reading the SQL script {}", file.display())),
        (None, None) => anyhow::bail!("give the script with --sql TEXT or --sql-file FILE"),
    }
}

/// `NAME: STATE` (and why, when it failed).
fn print_state(status: &Value) {
    let name = status["name"].as_str().unwrap_or("?");
    let state = status["state"].as_str().unwrap_or("?");
    match status["error"].as_str() {
        Some(error) => println!("{name}: {state} ({error})"),
        None => println!("{name}: {state}"),
    }
}

/// Epoch milliseconds as `2026-01-01T00:00:00.000Z`; `-` when not known yet.
fn time(ms: &Value) -> String {
    match ms.as_i64().and_then(|ms| u64::try_from(ms).ok()) {
        Some(ms) => humantime::format_rfc3339_millis(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
        )
        .to_string(),
        None => "-".to_string(),
    }
}

/// One line per application (name, state, records in/out, late, errors, watermark), then
/// why a failed one failed (or what a running one waits for).
pub(super) fn applications_table(list: &Value) -> String {
    let empty = Vec::new();
    let list = list.as_array().unwrap_or(&empty);
    if list.is_empty() {
        return "no analytics applications\n".to_string();
    }
    let mut out = format!(
        "{:<24} {:<8} {:>12} {:>12} {:>8} {:>8}  {}\n",
        "APPLICATION", "STATE", "IN", "OUT", "LATE", "ERRORS", "WATERMARK"
    );
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    for a in list {
        let _ = writeln!(
            out,
            "{:<24} {:<8} {:>12} {:>12} {:>8} {:>8}  {}",
            a["name"].as_str().unwrap_or("?"),
            a["state"].as_str().unwrap_or("?"),
            n(&a["records_in"]),
            n(&a["records_out"]),
            n(&a["late_records"]),
            n(&a["error_records"]),
            time(&a["watermark"]),
        );
        if let Some(error) = a["error"].as_str() {
            let label = match a["state"].as_str() {
                Some("running") => "waiting",
                _ => "error",
            };
            let _ = writeln!(out, "    {label}: {error}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_a_line_per_application_and_the_error() {
        let list = json!([
            {"name": "minute-avg", "state": "running", "records_in": 1200, "records_out": 20,
             "late_records": 3, "error_records": 1, "watermark": 1767225600000i64, "error": null},
            {"name": "alerts", "state": "failed", "records_in": 0, "records_out": 0,
             "late_records": 0, "error_records": 0, "watermark": null,
             "error": "division by zero"},
        ]);
        let table = applications_table(&list);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(lines[0].starts_with("APPLICATION"));
        assert!(lines[1].starts_with("minute-avg"), "{table}");
        assert!(lines[1].contains("running") && lines[1].contains("1200"));
        assert!(lines[1].ends_with("2026-01-01T00:00:00.000Z"), "{table}");
        assert!(lines[2].starts_with("alerts") && lines[2].ends_with('-'));
        assert_eq!(lines[3], "    error: division by zero");
        assert_eq!(
            applications_table(&json!([])),
            "no analytics applications\n"
        );
    }

    #[test]
    fn a_running_application_says_what_it_waits_for() {
        let list = json!([{"name": "a", "state": "running", "error": "stream in does not exist"}]);
        let table = applications_table(&list);
        assert_eq!(
            table.lines().last(),
            Some("    waiting: stream in does not exist")
        );
    }

    #[test]
    fn names_are_checked_before_asking() {
        assert_eq!(path("a.b_c-1").unwrap(), "/analytics/a.b_c-1");
        assert!(path("a/b").is_err());
        assert!(path("").is_err());
    }
}
