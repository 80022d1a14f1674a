//! `kinedge status`: one screen summing up a running gateway from its `GET /status` —
//! readiness, storage, streams, MQTT, delivery streams, cameras and analytics applications —
//! for a terminal.

use std::fmt::Write;

use serde_json::Value;

/// The widest line the summary writes.
const WIDTH: usize = 100;

/// Bytes as a short human figure: `512 B`, `12.1 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = "B";
    for u in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = u;
    }
    format!("{value:.1} {unit}")
}

/// Seconds as `45s`, `12m03s`, `3h12m`, `4d07h`.
pub fn human_duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// A count with thousands separators: `1,203,334`.
fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("?")
}

/// Cuts `text` to `width` characters, marking the cut.
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// The whole summary. `now_ms` is the time the last-fragment ages are measured against.
pub fn render(status: &Value, now_ms: i64) -> String {
    let mut out = String::new();
    header(&mut out, status);
    streams(&mut out, status);
    mqtt(&mut out, status);
    deliveries(&mut out, status);
    cameras(&mut out, status, now_ms);
    analytics(&mut out, status);
    out
}

fn header(out: &mut String, status: &Value) {
    let ready = if status["ready"].as_bool() == Some(true) {
        "ready".to_string()
    } else {
        let reasons: Vec<&str> = status["not_ready"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        format!("NOT READY ({})", reasons.join("; "))
    };
    let _ = writeln!(
        out,
        "kinedge {} · {ready} · up {} · memory {}",
        s(&status["version"]),
        human_duration(u(&status["uptime_s"])),
        status["memory_bytes"]
            .as_u64()
            .map_or("?".to_string(), human_bytes),
    );
    let _ = writeln!(
        out,
        "data {} · database {} · disk free {}",
        s(&status["data_dir"]),
        status["storage_file_bytes"]
            .as_u64()
            .map_or("?".to_string(), human_bytes),
        status["disk_free_bytes"]
            .as_u64()
            .map_or("?".to_string(), human_bytes),
    );
    let w = &status["writer"];
    let _ = writeln!(
        out,
        "storage: {} commits · {:.1} rec/commit · {:.1} ms/commit · refused quota {}, disk {} · trimmed {}",
        count(u(&w["commits"])),
        w["records_per_commit"].as_f64().unwrap_or(0.0),
        w["mean_commit_micros"].as_f64().unwrap_or(0.0) / 1000.0,
        count(u(&w["rejected_quota"])),
        count(u(&w["rejected_disk"])),
        count(u(&w["trimmed_records"])),
    );
    let _ = writeln!(
        out,
        "disk writes: {} in {} syncs · ~{}/day at this rate",
        human_bytes(u(&w["bytes_written"])),
        count(u(&w["syncs"])),
        human_bytes(u(&status["storage_writes_per_day_bytes"])),
    );
    if let Some(fault) = status["writes_suspended"].as_object() {
        let _ = writeln!(
            out,
            "WRITES SUSPENDED ({}): {}",
            s(&fault["kind"]),
            s(&fault["error"]),
        );
    }
}

fn streams(out: &mut String, status: &Value) {
    let empty = Vec::new();
    let list = status["streams"].as_array().unwrap_or(&empty);
    out.push('\n');
    if list.is_empty() {
        out.push_str("no streams\n");
        return;
    }
    let _ = writeln!(
        out,
        "{:<24} {:>7} {:>12} {:>10} {:>9} {:>10}",
        "STREAM", "SHARDS", "RECORDS", "BYTES", "RETENTION", "QUOTA"
    );
    for st in list {
        let _ = writeln!(
            out,
            "{:<24} {:>7} {:>12} {:>10} {:>9} {:>10}",
            fit(s(&st["name"]), 24),
            format!("{}/{}", u(&st["open_shards"]), u(&st["shards"])),
            count(u(&st["records"])),
            human_bytes(u(&st["bytes"])),
            format!("{}h", u(&st["retention_hours"])),
            st["max_bytes"]
                .as_u64()
                .map_or("-".to_string(), human_bytes),
        );
    }
}

fn mqtt(out: &mut String, status: &Value) {
    let m = &status["mqtt"];
    out.push('\n');
    if m.is_null() {
        out.push_str("MQTT off\n");
        return;
    }
    let r = &m["refused"];
    let _ = writeln!(
        out,
        "MQTT {} connected · {} devices · {} stored · {} unrouted",
        count(u(&m["connected"])),
        count(u(&m["devices"])),
        count(u(&m["stored"])),
        count(u(&m["unrouted"])),
    );
    let _ = writeln!(
        out,
        "     refused: connect {} · acl {} · stream {} · too large {} · busy {}",
        count(u(&r["connect"])),
        count(u(&r["acl"])),
        count(u(&r["stream"])),
        count(u(&r["too_large"])),
        count(u(&r["busy"])),
    );
}

fn deliveries(out: &mut String, status: &Value) {
    let empty = Vec::new();
    let list = status["delivery_streams"].as_array().unwrap_or(&empty);
    out.push('\n');
    if list.is_empty() {
        out.push_str("no delivery streams\n");
        return;
    }
    let _ = writeln!(
        out,
        "{:<18} {:<11} {:<13} {:>9} {:>9} {:>7} {:>11} {:>7} {:>6}",
        "DELIVERY", "STATE", "TO", "BACKLOG", "BYTES", "AGE", "DELIVERED", "RETRIES", "LOST"
    );
    for d in list {
        let age = d["oldest_undelivered_age_ms"]
            .as_u64()
            .map_or("-".to_string(), |ms| human_duration(ms / 1000));
        let _ = writeln!(
            out,
            "{:<18} {:<11} {:<13} {:>9} {:>9} {:>7} {:>11} {:>7} {:>6}",
            fit(s(&d["name"]), 18),
            fit(s(&d["state"]), 11),
            fit(s(&d["destination"]["type"]), 13),
            count(u(&d["backlog_records"])),
            human_bytes(u(&d["backlog_bytes"])),
            age,
            count(u(&d["delivered_records"])),
            count(u(&d["retries"])),
            count(u(&d["records_lost"])),
        );
        if let Some(reason) = d["paused_reason"].as_str() {
            let _ = writeln!(out, "  paused: {}", fit(reason, WIDTH - 10));
        }
        if let Some(error) = d["last_error"].as_object() {
            let message = error.get("message").and_then(Value::as_str).unwrap_or("?");
            let at = error.get("at").and_then(Value::as_str).unwrap_or("?");
            let prefix = format!("  last error {at}: ");
            let room = WIDTH.saturating_sub(prefix.chars().count());
            let _ = writeln!(out, "{prefix}{}", fit(message, room));
        }
    }
}

fn cameras(out: &mut String, status: &Value, now_ms: i64) {
    let empty = Vec::new();
    let list = status["cameras"].as_array().unwrap_or(&empty);
    if list.is_empty() {
        return;
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "{:<16} {:<10} {:<5} {:>9} {:>9} {:>9} {:>9} {:>5} {:>6} {:>7}",
        "CAMERA",
        "STATE",
        "CODEC",
        "SIZE",
        "BITRATE",
        "FRAGMENTS",
        "STORED",
        "GAPS",
        "RECON",
        "LAST"
    );
    for c in list {
        let size = match (u(&c["width"]), u(&c["height"])) {
            (0, _) | (_, 0) => "-".to_string(),
            (w, h) => format!("{w}x{h}"),
        };
        let bitrate = u(&c["bitrate_bps"]);
        let last = c["last_fragment"]["server_ms"]
            .as_i64()
            .map_or("-".to_string(), |at| {
                human_duration(u64::try_from((now_ms - at).max(0) / 1000).unwrap_or(0))
            });
        let _ = writeln!(
            out,
            "{:<16} {:<10} {:<5} {:>9} {:>9} {:>9} {:>9} {:>5} {:>6} {:>7}",
            fit(s(&c["name"]), 16),
            fit(s(&c["state"]), 10),
            c["codec"].as_str().unwrap_or("-"),
            size,
            format!("{:.1} Mb/s", bitrate as f64 / 1e6),
            count(u(&c["fragments"])),
            human_bytes(u(&c["bytes"])),
            count(u(&c["gaps"])),
            count(u(&c["reconnects"])),
            last,
        );
        if let Some(error) = c["last_error"].as_str() {
            let _ = writeln!(out, "  last error: {}", fit(error, WIDTH - 14));
        }
    }
}

/// The analytics applications, as `kinedge analytics list` shows them (nothing from a gateway
/// without analytics).
fn analytics(out: &mut String, status: &Value) {
    if status["analytics"].as_array().is_none_or(Vec::is_empty) {
        return;
    }
    out.push('\n');
    out.push_str(&super::analytics::applications_table(&status["analytics"]));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_as_people_write_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(12_700_000), "12.1 MiB");
        assert_eq!(human_duration(45), "45s");
        assert_eq!(human_duration(3 * 3600 + 12 * 60), "3h12m");
        assert_eq!(human_duration(4 * 86_400 + 7 * 3600), "4d07h");
        assert_eq!(count(1_203_334), "1,203,334");
        assert_eq!(count(999), "999");
        assert_eq!(fit("abcdef", 4), "abc…");
    }

    #[test]
    fn a_gateway_with_everything_fits_one_screen() {
        let status = serde_json::json!({
            "version": "0.1.0", "ready": false, "not_ready": ["stopping"], "uptime_s": 11_520,
            "memory_bytes": 24_000_000u64, "data_dir": "/var/lib/kinedge",
            "storage_file_bytes": 1_300_000_000u64, "disk_free_bytes": 21_000_000_000u64,
            "writer": {"commits": 1234, "records_per_commit": 4.5, "mean_commit_micros": 2100.0,
                        "rejected_quota": 0, "rejected_disk": 2, "trimmed_records": 10},
            "streams": [{"name": "telemetry", "open_shards": 2, "shards": 2, "records": 120_345,
                         "bytes": 12_700_000u64, "retention_hours": 24, "max_bytes": null}],
            "mqtt": {"connected": 12, "devices": 40, "stored": 1_203_334, "unrouted": 2,
                     "refused": {"connect": 1, "acl": 0, "stream": 0, "too_large": 0, "busy": 0}},
            "delivery_streams": [{"name": "to-s3", "state": "retrying",
                "destination": {"type": "s3"}, "backlog_records": 1203, "backlog_bytes": 120_300,
                "oldest_undelivered_age_ms": 4200, "delivered_records": 1_000_000, "retries": 3,
                "records_lost": 0, "last_error": {"at": "2026-11-25T04:00:00Z", "message": "connection refused"}}],
            "cameras": [{"name": "cam1", "state": "connected", "codec": "h264", "width": 1280,
                "height": 720, "bitrate_bps": 1_900_000, "fragments": 1234, "bytes": 3_650_000_000u64,
                "gaps": 1, "reconnects": 2, "last_fragment": {"server_ms": 1_000_000}}]
        });
        let screen = render(&status, 1_001_500);
        assert!(screen.contains("NOT READY (stopping)"), "{screen}");
        assert!(screen.contains("up 3h12m"));
        assert!(screen.contains("telemetry"));
        assert!(screen.contains("120,345"));
        assert!(screen.contains("12 connected · 40 devices"));
        assert!(screen.contains("retrying"));
        assert!(screen.contains("last error 2026-11-25T04:00:00Z: connection refused"));
        assert!(screen.contains("1280x720"));
        assert!(screen.contains("1.9 Mb/s"));
        assert!(screen.contains("3.4 GiB"));
        let lines: Vec<&str> = screen.lines().collect();
        assert!(lines.len() <= 24, "{} lines", lines.len());
        for line in lines {
            assert!(line.chars().count() <= WIDTH, "too wide: {line}");
        }
    }
}
