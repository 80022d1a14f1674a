//! `kinedge deliveries status` as a table.

/// `kinedge deliveries status`: one line per delivery stream, then its last error.
pub(super) fn deliveries_table(status: &serde_json::Value) -> String {
    use std::fmt::Write;
    let empty = Vec::new();
    let list = status["delivery_streams"].as_array().unwrap_or(&empty);
    if list.is_empty() {
        return "no delivery streams\n".to_string();
    }
    let mut out = format!(
        "{:<24} {:<12} {:<14} {:>10} {:>12} {:>8} {:>12} {:>8} {:>7}  {}\n",
        "NAME",
        "STATE",
        "DESTINATION",
        "BACKLOG",
        "BACKLOG B",
        "AGE",
        "DELIVERED",
        "RETRIES",
        "LOST",
        "TARGET"
    );
    for d in list {
        let age = d["oldest_undelivered_age_ms"]
            .as_u64()
            .map(|ms| format!("{:.1}s", ms as f64 / 1000.0))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "{:<24} {:<12} {:<14} {:>10} {:>12} {:>8} {:>12} {:>8} {:>7}  {}",
            d["name"].as_str().unwrap_or("?"),
            d["state"].as_str().unwrap_or("?"),
            d["destination"]["type"].as_str().unwrap_or("?"),
            d["backlog_records"].as_u64().unwrap_or(0),
            crate::config::format_size(d["backlog_bytes"].as_u64().unwrap_or(0)),
            age,
            d["delivered_records"].as_u64().unwrap_or(0),
            d["retries"].as_u64().unwrap_or(0),
            d["records_lost"].as_u64().unwrap_or(0),
            d["destination"]["target"].as_str().unwrap_or(""),
        );
        if let Some(reason) = d["paused_reason"].as_str() {
            let _ = writeln!(out, "    paused: {reason}");
        }
        if let Some(error) = d["last_error"].as_object() {
            let _ = writeln!(
                out,
                "    last error at {}: {}",
                error.get("at").and_then(|v| v.as_str()).unwrap_or("?"),
                error.get("message").and_then(|v| v.as_str()).unwrap_or("?")
            );
        }
    }
    out
}
