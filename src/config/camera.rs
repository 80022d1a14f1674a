//! The `[camera]` table of a camera's device file, checked into a [`CameraConfig`].
//!
//! Owns the names and ranges of the camera keys and the messages for their mistakes; the video
//! part reads the result. Every problem is reported through `problem(key, message)` with the
//! dotted key (`camera.retention_hours`) so that the device loader can add file and line.

use std::path::PathBuf;

use super::parse_size;

/// Where a camera's video comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraSource {
    /// `rtsp://` or `rtsps://` (pulled over TCP); the URL carries no credentials.
    Rtsp { url: String },
    /// `srt://host:port` (caller) or `srt://:port` / `?mode=listener` (listener); MPEG-TS inside.
    Srt { url: String, listener: bool },
    /// `v4l2:///dev/videoN`: a local camera; raw formats are encoded on the gateway.
    V4l2 { device: PathBuf },
    /// `file:///path`: a recorded H.264/H.265 file (MPEG-TS, MP4 or Matroska), played in real
    /// time and looped; for demos and tests.
    File { path: PathBuf },
}

impl CameraSource {
    /// The URL as shown in status: never with credentials (they are not allowed in it).
    pub fn display(&self) -> String {
        match self {
            CameraSource::Rtsp { url } | CameraSource::Srt { url, .. } => url.clone(),
            CameraSource::V4l2 { device } => format!("v4l2://{}", device.display()),
            CameraSource::File { path } => format!("file://{}", path.display()),
        }
    }
}

/// What a camera does when its `max_bytes` (or the disk's minimum free space) is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CameraOnFull {
    /// Delete the oldest fragments to make room (Kinesis Video's DELETE_OLDEST_MEDIA).
    #[default]
    DeleteOldest,
    /// Refuse new fragments until room is made (DENY_NEW_MEDIA).
    DenyNew,
}

/// The encoder a `v4l2` camera uses when it delivers raw video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CameraEncoder {
    /// The V4L2 hardware encoder when the board has one (`v4l2h264enc`, Raspberry Pi), else x264.
    #[default]
    Auto,
    Hardware,
    X264,
    OpenH264,
}

/// `upload = { ... }`: send the camera's fragments upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraUpload {
    /// A `[[delivery_streams]]` entry with `source = "video"` (an `s3` or `directory` destination).
    pub destination: String,
    /// Upload only inside this daily window, minutes after local midnight; `start > end` wraps
    /// around midnight. `None` = any time.
    pub window: Option<(u16, u16)>,
    pub delete_after_upload: bool,
    /// One object per this many minutes of video; 0 = one object per fragment.
    pub segment_minutes: u32,
}

/// A checked `[camera]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraConfig {
    pub source: CameraSource,
    /// RTSP user name; the password comes from `password_file` or `password_env`.
    pub username: Option<String>,
    pub password: Option<super::SecretSource>,
    pub retention_hours: u32,
    pub max_bytes: Option<u64>,
    pub on_full: CameraOnFull,
    /// Target fragment duration; `None` = `[video] fragment_duration_ms`.
    pub fragment_duration_ms: Option<u32>,
    /// No data for this long counts as a lost camera.
    pub no_data_timeout_s: u32,
    pub encoder: CameraEncoder,
    /// Capture size and rate asked of a `v4l2` camera (its default when absent).
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub framerate: Option<u32>,
    pub upload: Option<CameraUpload>,
}

impl CameraConfig {
    pub const DEFAULT_RETENTION_HOURS: u32 = 24;
    pub const RETENTION_HOURS_RANGE: std::ops::RangeInclusive<u32> = 1..=720;
    pub const MIN_MAX_BYTES: u64 = 16 * 1024 * 1024;
    pub const FRAGMENT_DURATION_MS_RANGE: std::ops::RangeInclusive<u32> = 500..=10_000;
    pub const DEFAULT_NO_DATA_TIMEOUT_S: u32 = 10;
    pub const NO_DATA_TIMEOUT_S_RANGE: std::ops::RangeInclusive<u32> = 2..=300;
}

const KNOWN_KEYS: &[&str] = &[
    "source",
    "username",
    "password_file",
    "password_env",
    "retention_hours",
    "max_bytes",
    "on_full",
    "fragment_duration_ms",
    "no_data_timeout_s",
    "encoder",
    "width",
    "height",
    "framerate",
    "upload",
];

const UPLOAD_KEYS: &[&str] = &[
    "destination",
    "window",
    "delete_after_upload",
    "segment_minutes",
];

/// Checks a `[camera]` table; `None` when it has mistakes (all reported through `problem`).
pub fn parse_camera(
    table: &toml::Table,
    problem: &mut dyn FnMut(&str, String),
) -> Option<CameraConfig> {
    let mut count = 0usize;
    let mut report = |key: &str, message: String| {
        count += 1;
        problem(&format!("camera.{key}"), message);
    };
    for key in table.keys() {
        if !KNOWN_KEYS.contains(&key.as_str()) {
            let message = if key == "password" {
                "plaintext secrets are not allowed in device files: put the password in a file \
                 (password_file, mode 0600) or an environment variable (password_env)"
                    .to_string()
            } else {
                format!(
                    "unknown key `{key}` (a [camera] table has {})",
                    KNOWN_KEYS.join(", ")
                )
            };
            report(key, message);
        }
    }
    let source = match table.get("source") {
        None => {
            report(
                "source",
                "missing: rtsp://, srt://, v4l2:///dev/videoN or file:///path".into(),
            );
            None
        }
        Some(toml::Value::String(s)) => parse_source(s).map_err(|m| report("source", m)).ok(),
        Some(other) => {
            report("source", expected("a URL in quotes", other));
            None
        }
    };
    let text = |key: &str, report: &mut dyn FnMut(&str, String)| -> Option<String> {
        match table.get(key) {
            None => None,
            Some(toml::Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(other) => {
                report(key, expected("a non-empty string", other));
                None
            }
        }
    };
    let username = text("username", &mut report);
    let password = match (
        text("password_file", &mut report),
        text("password_env", &mut report),
    ) {
        (Some(_), Some(_)) => {
            report(
                "password_file",
                "set password_file or password_env, not both".into(),
            );
            None
        }
        (Some(file), None) => Some(super::SecretSource::File(PathBuf::from(file))),
        (None, Some(env)) => Some(super::SecretSource::Env(env)),
        (None, None) => None,
    };
    if password.is_some() && username.is_none() {
        report(
            "username",
            "missing: a camera password needs a username".into(),
        );
    }
    if username.is_some() && source.is_some() && !matches!(source, Some(CameraSource::Rtsp { .. }))
    {
        report(
            "username",
            "credentials are used only by rtsp:// sources".into(),
        );
    }
    let retention_hours = integer(
        table,
        "retention_hours",
        CameraConfig::RETENTION_HOURS_RANGE,
        &mut report,
    )
    .unwrap_or(CameraConfig::DEFAULT_RETENTION_HOURS);
    let max_bytes = match table.get("max_bytes") {
        None => None,
        Some(value) => {
            let bytes = match value {
                toml::Value::Integer(n) => {
                    u64::try_from(*n).map_err(|_| format!("{n} is negative"))
                }
                toml::Value::String(s) => parse_size(s),
                other => Err(expected("a number of bytes or a size like \"8GiB\"", other)),
            };
            match bytes {
                Ok(n) if n >= CameraConfig::MIN_MAX_BYTES => Some(n),
                Ok(n) => {
                    report(
                        "max_bytes",
                        format!(
                            "{} is too small: at least {} (a few fragments)",
                            super::format_size(n),
                            super::format_size(CameraConfig::MIN_MAX_BYTES)
                        ),
                    );
                    None
                }
                Err(m) => {
                    report("max_bytes", m);
                    None
                }
            }
        }
    };
    let on_full = match table.get("on_full") {
        None => CameraOnFull::DeleteOldest,
        Some(toml::Value::String(s)) if s == "delete_oldest" => CameraOnFull::DeleteOldest,
        Some(toml::Value::String(s)) if s == "deny_new" => CameraOnFull::DenyNew,
        Some(other) => {
            report(
                "on_full",
                format!(
                    "expected \"delete_oldest\" or \"deny_new\", found {}",
                    show(other)
                ),
            );
            CameraOnFull::DeleteOldest
        }
    };
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
    let encoder = match table.get("encoder") {
        None => CameraEncoder::Auto,
        Some(toml::Value::String(s)) => match s.as_str() {
            "auto" => CameraEncoder::Auto,
            "hardware" => CameraEncoder::Hardware,
            "x264" => CameraEncoder::X264,
            "openh264" => CameraEncoder::OpenH264,
            _ => {
                report(
                    "encoder",
                    format!("`{s}`: expected \"auto\", \"hardware\", \"x264\" or \"openh264\""),
                );
                CameraEncoder::Auto
            }
        },
        Some(other) => {
            report("encoder", expected("a string", other));
            CameraEncoder::Auto
        }
    };
    let width = integer(table, "width", 16..=7680, &mut report);
    let height = integer(table, "height", 16..=4320, &mut report);
    let framerate = integer(table, "framerate", 1..=120, &mut report);
    let is_v4l2 = matches!(source, Some(CameraSource::V4l2 { .. }));
    for key in ["encoder", "width", "height", "framerate"] {
        if table.contains_key(key) && source.is_some() && !is_v4l2 {
            report(
                key,
                "only v4l2:// cameras are encoded on the gateway; other sources are stored as they come".into(),
            );
        }
    }
    let upload = match table.get("upload") {
        None => None,
        Some(toml::Value::Table(upload)) => parse_upload(upload, &mut report),
        Some(other) => {
            report(
                "upload",
                expected("a table: upload = { destination = \"video-to-s3\" }", other),
            );
            None
        }
    };
    if count > 0 {
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
        encoder,
        width,
        height,
        framerate,
        upload,
    })
}

fn parse_upload(table: &toml::Table, report: &mut dyn FnMut(&str, String)) -> Option<CameraUpload> {
    let mut ok = true;
    for key in table.keys() {
        if !UPLOAD_KEYS.contains(&key.as_str()) {
            report(
                &format!("upload.{key}"),
                format!(
                    "unknown key `{key}` (upload has {})",
                    UPLOAD_KEYS.join(", ")
                ),
            );
            ok = false;
        }
    }
    let destination = match table.get("destination") {
        Some(toml::Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(other) => {
            report(
                "upload.destination",
                expected("the name of a delivery stream", other),
            );
            None
        }
        None => {
            report(
                "upload.destination",
                "missing: the name of a [[delivery_streams]] entry with source = \"video\"".into(),
            );
            None
        }
    };
    let window = match table.get("window") {
        None => None,
        Some(toml::Value::String(s)) => match parse_window(s) {
            Ok(w) => Some(w),
            Err(m) => {
                report("upload.window", m);
                ok = false;
                None
            }
        },
        Some(other) => {
            report(
                "upload.window",
                expected("a window like \"01:00-05:00\"", other),
            );
            ok = false;
            None
        }
    };
    let delete_after_upload = match table.get("delete_after_upload") {
        None => false,
        Some(toml::Value::Boolean(b)) => *b,
        Some(other) => {
            report(
                "upload.delete_after_upload",
                expected("true or false", other),
            );
            ok = false;
            false
        }
    };
    let segment_minutes = match table.get("segment_minutes") {
        None => 0,
        Some(toml::Value::Integer(n)) if (0..=60).contains(n) => *n as u32,
        Some(other) => {
            report(
                "upload.segment_minutes",
                format!(
                    "expected 0 (one object per fragment) ..= 60 minutes, found {}",
                    show(other)
                ),
            );
            ok = false;
            0
        }
    };
    if !ok {
        return None;
    }
    Some(CameraUpload {
        destination: destination?,
        window,
        delete_after_upload,
        segment_minutes,
    })
}

/// `"01:00-05:00"` → minutes after midnight (start, end).
pub fn parse_window(text: &str) -> Result<(u16, u16), String> {
    let bad =
        || format!("`{text}` is not a window: HH:MM-HH:MM in local time, e.g. \"01:00-05:00\"");
    let (start, end) = text.split_once('-').ok_or_else(bad)?;
    let minutes = |t: &str| -> Option<u16> {
        let (h, m) = t.trim().split_once(':')?;
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60).then_some(h * 60 + m)
    };
    let (start, end) = (
        minutes(start).ok_or_else(bad)?,
        minutes(end).ok_or_else(bad)?,
    );
    if start == end {
        return Err(format!(
            "`{text}`: the window is empty; leave window out to upload at any time"
        ));
    }
    Ok((start, end))
}

/// Checks a source URL.
pub fn parse_source(text: &str) -> Result<CameraSource, String> {
    let (scheme, rest) = text.split_once("://").ok_or_else(|| {
        format!("`{text}` is not a source: rtsp://, srt://, v4l2:///dev/videoN or file:///path")
    })?;
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    match scheme {
        "rtsp" | "rtsps" => {
            if authority.contains('@') {
                return Err("credentials in the URL are plaintext secrets: use username and password_file (or password_env)".into());
            }
            if authority.is_empty() {
                return Err(format!("`{text}` has no host"));
            }
            Ok(CameraSource::Rtsp { url: text.into() })
        }
        "srt" => {
            let query = rest.split_once('?').map(|(_, q)| q).unwrap_or("");
            let mode = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("mode="))
                .unwrap_or("");
            let (host, port) = authority.rsplit_once(':').ok_or_else(|| {
                format!("`{text}` has no port: srt://host:port (caller) or srt://:port (listener)")
            })?;
            port.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("`{port}` is not a port"))?;
            let listener = match mode {
                "listener" => true,
                "caller" => false,
                "" => host.is_empty(),
                other => {
                    return Err(format!(
                        "mode `{other}`: srt sources are mode=caller or mode=listener"
                    ))
                }
            };
            if !listener && host.is_empty() {
                return Err("a caller needs a host: srt://host:port".into());
            }
            Ok(CameraSource::Srt {
                url: text.into(),
                listener,
            })
        }
        "v4l2" => {
            let device = PathBuf::from(rest);
            if !rest.starts_with("/dev/") {
                return Err(format!(
                    "`{text}`: a v4l2 source names a device, v4l2:///dev/video0"
                ));
            }
            Ok(CameraSource::V4l2 { device })
        }
        "file" => {
            if !rest.starts_with('/') {
                return Err(format!(
                    "`{text}`: a file source needs an absolute path, file:///path/to/video.ts"
                ));
            }
            Ok(CameraSource::File {
                path: PathBuf::from(rest),
            })
        }
        other => Err(format!(
            "`{other}://` is not supported: rtsp://, srt://, v4l2:///dev/videoN or file:///path"
        )),
    }
}

fn integer<T: TryFrom<i64> + PartialOrd + std::fmt::Display>(
    table: &toml::Table,
    key: &str,
    range: std::ops::RangeInclusive<T>,
    report: &mut dyn FnMut(&str, String),
) -> Option<T> {
    let value = table.get(key)?;
    let Some(n) = value.as_integer() else {
        report(key, expected("a whole number", value));
        return None;
    };
    match T::try_from(n) {
        Ok(n) if range.contains(&n) => Some(n),
        _ => {
            report(
                key,
                format!("{n} is out of range: {}..={}", range.start(), range.end()),
            );
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

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<CameraConfig, Vec<(String, String)>> {
        let table: toml::Table = toml::from_str(text).unwrap();
        let mut problems = Vec::new();
        match parse_camera(&table, &mut |k, m| problems.push((k.to_string(), m))) {
            Some(c) if problems.is_empty() => Ok(c),
            _ => Err(problems),
        }
    }

    #[test]
    fn defaults_for_an_rtsp_camera() {
        let c = check("source = \"rtsp://192.0.2.10:554/stream1\"\nusername = \"viewer\"\npassword_file = \"/etc/kinedge/cam1.secret\"\n").unwrap();
        assert_eq!(c.retention_hours, 24);
        assert_eq!(c.on_full, CameraOnFull::DeleteOldest);
        assert_eq!(c.no_data_timeout_s, 10);
        assert!(c.upload.is_none());
        assert!(matches!(
            c.password,
            Some(super::super::SecretSource::File(_))
        ));
    }

    #[test]
    fn sources() {
        assert!(matches!(
            parse_source("srt://:7001"),
            Ok(CameraSource::Srt { listener: true, .. })
        ));
        assert!(matches!(
            parse_source("srt://10.0.0.2:7001"),
            Ok(CameraSource::Srt {
                listener: false,
                ..
            })
        ));
        assert!(matches!(
            parse_source("srt://0.0.0.0:7001?mode=listener"),
            Ok(CameraSource::Srt { listener: true, .. })
        ));
        assert!(parse_source("v4l2:///dev/video0").is_ok());
        assert!(parse_source("file:///tmp/a.ts").is_ok());
        assert!(parse_source("rtsp://u:p@cam/x")
            .unwrap_err()
            .contains("plaintext"));
        assert!(parse_source("http://cam/x")
            .unwrap_err()
            .contains("not supported"));
        assert!(parse_source("srt://cam").unwrap_err().contains("port"));
        assert!(parse_source("file://rel.ts")
            .unwrap_err()
            .contains("absolute"));
    }

    #[test]
    fn every_mistake_is_named() {
        let problems = check(
            "source = \"rtsp://cam/1\"\npassword = \"hunter2\"\nretention_hours = 721\nmax_bytes = \"1MiB\"\non_full = \"drop\"\nwidth = 640\nupload = { destination = \"v\", window = \"25:00-01:00\", colour = 1 }\n",
        )
        .unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        for key in [
            "camera.password",
            "camera.retention_hours",
            "camera.max_bytes",
            "camera.on_full",
            "camera.width",
            "camera.upload.window",
            "camera.upload.colour",
        ] {
            assert!(keys.contains(&key), "{key} not in {problems:?}");
        }
        assert!(problems
            .iter()
            .any(|(_, m)| m.contains("plaintext secrets are not allowed")));
    }

    #[test]
    fn upload_window() {
        let c = check("source = \"file:///v.ts\"\nupload = { destination = \"video-to-s3\", window = \"23:30-05:00\", delete_after_upload = true }\n").unwrap();
        let upload = c.upload.unwrap();
        assert_eq!(upload.window, Some((23 * 60 + 30, 5 * 60)));
        assert!(upload.delete_after_upload);
        assert!(parse_window("01:00-01:00").is_err());
    }
}
