//! Checking a `[camera]` table key by key into a [`CameraConfig`]: every mistake is
//! reported (with its dotted key), and any mistake means no config.

use std::path::PathBuf;

use super::{
    parse_source, parse_window, CameraConfig, CameraEncoder, CameraOnFull, CameraSource,
    CameraUpload,
};
use crate::config::{field_names, format_size, parse_size, SecretSource};

/// The keys of a device file's `[camera]` table (their names are the supported keys; each
/// value is checked below).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Raw {
    /// `rtsp://`, `rtsps://`, `srt://`, `v4l2:///dev/videoN`, `file:///path` or `test:`.
    source: Option<toml::Value>,
    /// The RTSP user name.
    username: Option<toml::Value>,
    /// A file holding the RTSP password.
    password_file: Option<toml::Value>,
    /// An environment variable holding the RTSP password.
    password_env: Option<toml::Value>,
    /// Hours of video kept.
    retention_hours: Option<toml::Value>,
    /// Bytes of video kept, at most.
    max_bytes: Option<toml::Value>,
    /// What happens when `max_bytes` is reached.
    on_full: Option<toml::Value>,
    /// Target fragment duration.
    fragment_duration_ms: Option<toml::Value>,
    /// Seconds without data before the camera counts as lost.
    no_data_timeout_s: Option<toml::Value>,
    /// The encoder of a V4L2 camera that delivers raw video.
    encoder: Option<toml::Value>,
    /// V4L2 frame width.
    width: Option<toml::Value>,
    /// V4L2 frame height.
    height: Option<toml::Value>,
    /// V4L2 frame rate.
    framerate: Option<toml::Value>,
    /// `{ destination, window, delete_after_upload, segment_minutes }`.
    upload: Option<toml::Value>,
}

/// The keys of `camera.upload`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct RawUpload {
    /// The delivery stream (`source = "video"`) that uploads this camera's fragments.
    destination: Option<toml::Value>,
    /// The daily window uploads may run in, local time (`"01:00-05:00"`).
    window: Option<toml::Value>,
    /// Delete local fragments once they are uploaded.
    delete_after_upload: Option<toml::Value>,
    /// Minutes of video joined into one object; 0 = one fragment per object.
    segment_minutes: Option<toml::Value>,
}

/// Passes each problem on under `camera.<key>` and counts them.
struct Report<'a> {
    problem: &'a mut dyn FnMut(&str, String),
    count: usize,
}

impl Report<'_> {
    fn at(&mut self, key: &str, message: String) {
        self.count += 1;
        (self.problem)(&format!("camera.{key}"), message);
    }
}

/// Checks a `[camera]` table; `None` when it has mistakes (all reported through `problem`).
pub fn parse_camera(
    table: &toml::Table,
    problem: &mut dyn FnMut(&str, String),
) -> Option<CameraConfig> {
    let mut report = Report { problem, count: 0 };
    check_keys(table, &mut report);
    let source = source(table, &mut report);
    let (username, password) = credentials(table, source.as_ref(), &mut report);
    let retention_hours = integer(
        table,
        "retention_hours",
        CameraConfig::RETENTION_HOURS_RANGE,
        &mut report,
    )
    .unwrap_or(CameraConfig::DEFAULT_RETENTION_HOURS);
    let max_bytes = max_bytes(table, &mut report);
    let on_full = on_full(table, &mut report);
    let fragment_duration_ms = integer(
        table,
        "fragment_duration_ms",
        CameraConfig::FRAGMENT_DURATION_MS_RANGE,
        &mut report,
    );
    let no_data_timeout_s = integer(
        table,
        "no_data_timeout_s",
        CameraConfig::NO_DATA_TIMEOUT_S_RANGE,
        &mut report,
    )
    .unwrap_or(CameraConfig::DEFAULT_NO_DATA_TIMEOUT_S);
    let capture = capture(table, source.as_ref(), &mut report);
    let upload = match table.get("upload") {
        None => None,
        Some(toml::Value::Table(upload)) => parse_upload(upload, &mut report),
        Some(other) => {
            let message = expected("a table: upload = { destination = \"video-to-s3\" }", other);
            report.at("upload", message);
            None
        }
    };
    if report.count > 0 {
        return None;
    }
    Some(CameraConfig {
        source: source?,
        username,
        password,
        retention_hours,
        max_bytes,
        on_full,
        fragment_duration_ms,
        no_data_timeout_s,
        encoder: capture.encoder,
        width: capture.width,
        height: capture.height,
        framerate: capture.framerate,
        upload,
    })
}

fn check_keys(table: &toml::Table, report: &mut Report) {
    let known = field_names::<Raw>();
    for key in table.keys() {
        if !known.contains(&key.as_str()) {
            let message = if key == "password" {
                "plaintext secrets are not allowed in device files: put the password in a file \
                 (password_file, mode 0600) or an environment variable (password_env)"
                    .to_string()
            } else {
                format!(
                    "unknown key `{key}` (a [camera] table has {})",
                    known.join(", ")
                )
            };
            report.at(key, message);
        }
    }
}

fn source(table: &toml::Table, report: &mut Report) -> Option<CameraSource> {
    match table.get("source") {
        None => {
            let message = "missing: rtsp://, srt://, v4l2:///dev/videoN or file:///path".into();
            report.at("source", message);
            None
        }
        Some(toml::Value::String(s)) => parse_source(s).map_err(|m| report.at("source", m)).ok(),
        Some(other) => {
            report.at("source", expected("a URL in quotes", other));
            None
        }
    }
}

fn text(table: &toml::Table, key: &str, report: &mut Report) -> Option<String> {
    match table.get(key) {
        None => None,
        Some(toml::Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(other) => {
            report.at(key, expected("a non-empty string", other));
            None
        }
    }
}

/// The RTSP user name and where its password is kept (a file or a variable, never the value).
fn credentials(
    table: &toml::Table,
    source: Option<&CameraSource>,
    report: &mut Report,
) -> (Option<String>, Option<SecretSource>) {
    let username = text(table, "username", report);
    let file = text(table, "password_file", report);
    let env = text(table, "password_env", report);
    let password = match (file, env) {
        (Some(_), Some(_)) => {
            let message = "set password_file or password_env, not both".into();
            report.at("password_file", message);
            None
        }
        (Some(file), None) => Some(SecretSource::File(PathBuf::from(file))),
        (None, Some(env)) => Some(SecretSource::Env(env)),
        (None, None) => None,
    };
    if password.is_some() && username.is_none() {
        let message = "missing: a camera password needs a username".into();
        report.at("username", message);
    }
    if username.is_some() && source.is_some() && !matches!(source, Some(CameraSource::Rtsp { .. }))
    {
        let message = "credentials are used only by rtsp:// sources".into();
        report.at("username", message);
    }
    (username, password)
}

fn max_bytes(table: &toml::Table, report: &mut Report) -> Option<u64> {
    let value = table.get("max_bytes")?;
    let bytes = match value {
        toml::Value::Integer(n) => u64::try_from(*n).map_err(|_| format!("{n} is negative")),
        toml::Value::String(s) => parse_size(s),
        other => Err(expected("a number of bytes or a size like \"8GiB\"", other)),
    };
    match bytes {
        Ok(n) if n >= CameraConfig::MIN_MAX_BYTES => Some(n),
        Ok(n) => {
            let message = format!(
                "{} is too small: at least {} (a few fragments)",
                format_size(n),
                format_size(CameraConfig::MIN_MAX_BYTES)
            );
            report.at("max_bytes", message);
            None
        }
        Err(m) => {
            report.at("max_bytes", m);
            None
        }
    }
}

fn on_full(table: &toml::Table, report: &mut Report) -> CameraOnFull {
    match table.get("on_full") {
        None => CameraOnFull::DeleteOldest,
        Some(toml::Value::String(s)) if s == "delete_oldest" => CameraOnFull::DeleteOldest,
        Some(toml::Value::String(s)) if s == "deny_new" => CameraOnFull::DenyNew,
        Some(other) => {
            let message = format!(
                "expected \"delete_oldest\" or \"deny_new\", found {}",
                show(other)
            );
            report.at("on_full", message);
            CameraOnFull::DeleteOldest
        }
    }
}

/// What a `v4l2` camera is asked for: encoder, size and rate.
struct Capture {
    encoder: CameraEncoder,
    width: Option<u32>,
    height: Option<u32>,
    framerate: Option<u32>,
}

/// The capture keys; they are mistakes on any source but `v4l2`.
fn capture(table: &toml::Table, source: Option<&CameraSource>, report: &mut Report) -> Capture {
    let capture = Capture {
        encoder: encoder(table, report),
        width: integer(table, "width", 16..=7680, report),
        height: integer(table, "height", 16..=4320, report),
        framerate: integer(table, "framerate", 1..=120, report),
    };
    let is_v4l2 = matches!(source, Some(CameraSource::V4l2 { .. }));
    for key in ["encoder", "width", "height", "framerate"] {
        if table.contains_key(key) && source.is_some() && !is_v4l2 {
            report.at(
                key,
                "only v4l2:// cameras are encoded on the gateway; other sources are stored as they come".into(),
            );
        }
    }
    capture
}

fn encoder(table: &toml::Table, report: &mut Report) -> CameraEncoder {
    match table.get("encoder") {
        None => CameraEncoder::Auto,
        Some(toml::Value::String(s)) => match s.as_str() {
            "auto" => CameraEncoder::Auto,
            "hardware" => CameraEncoder::Hardware,
            "x264" => CameraEncoder::X264,
            "openh264" => CameraEncoder::OpenH264,
            _ => {
                let message =
                    format!("`{s}`: expected \"auto\", \"hardware\", \"x264\" or \"openh264\"");
                report.at("encoder", message);
                CameraEncoder::Auto
            }
        },
        Some(other) => {
            report.at("encoder", expected("a string", other));
            CameraEncoder::Auto
        }
    }
}

/// `upload = { ... }`; `None` when it has mistakes.
fn parse_upload(table: &toml::Table, report: &mut Report) -> Option<CameraUpload> {
    let before = report.count;
    let upload_keys = field_names::<RawUpload>();
    for key in table.keys() {
        if !upload_keys.contains(&key.as_str()) {
            let message = format!(
                "unknown key `{key}` (upload has {})",
                upload_keys.join(", ")
            );
            report.at(&format!("upload.{key}"), message);
        }
    }
    let destination = match table.get("destination") {
        Some(toml::Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(other) => {
            let message = expected("the name of a delivery stream", other);
            report.at("upload.destination", message);
            None
        }
        None => {
            let message =
                "missing: the name of a [[delivery_streams]] entry with source = \"video\"".into();
            report.at("upload.destination", message);
            None
        }
    };
    let window = match table.get("window") {
        None => None,
        Some(toml::Value::String(s)) => parse_window(s)
            .map_err(|m| report.at("upload.window", m))
            .ok(),
        Some(other) => {
            let message = expected("a window like \"01:00-05:00\"", other);
            report.at("upload.window", message);
            None
        }
    };
    let delete_after_upload = match table.get("delete_after_upload") {
        None => false,
        Some(toml::Value::Boolean(b)) => *b,
        Some(other) => {
            let message = expected("true or false", other);
            report.at("upload.delete_after_upload", message);
            false
        }
    };
    let segment_minutes = match table.get("segment_minutes") {
        None => 0,
        Some(toml::Value::Integer(n)) if (0..=60).contains(n) => *n as u32,
        Some(other) => {
            let message = format!(
                "expected 0 (one object per fragment) ..= 60 minutes, found {}",
                show(other)
            );
            report.at("upload.segment_minutes", message);
            0
        }
    };
    if report.count > before {
        return None;
    }
    Some(CameraUpload {
        destination: destination?,
        window,
        delete_after_upload,
        segment_minutes,
    })
}

fn integer<T: TryFrom<i64> + PartialOrd + std::fmt::Display>(
    table: &toml::Table,
    key: &str,
    range: std::ops::RangeInclusive<T>,
    report: &mut Report,
) -> Option<T> {
    let value = table.get(key)?;
    let Some(n) = value.as_integer() else {
        report.at(key, expected("a whole number", value));
        return None;
    };
    match T::try_from(n) {
        Ok(n) if range.contains(&n) => Some(n),
        _ => {
            let message = format!("{n} is out of range: {}..={}", range.start(), range.end());
            report.at(key, message);
            None
        }
    }
}

fn expected(what: &str, found: &toml::Value) -> String {
    format!("expected {what}, found {}", show(found))
}

fn show(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => format!("\"{s}\""),
        other => other.type_str().to_string(),
    }
}
