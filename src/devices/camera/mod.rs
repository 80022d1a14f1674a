//! The `[camera]` table of a camera's device file, checked into a [`CameraConfig`].
//!
//! Owns the camera's configuration types, the names and ranges of the camera keys and the
//! messages for their mistakes; the video part reads the result. `table` checks the table,
//! `urls` the source URL and the upload window. Every problem is reported through
//! `problem(key, message)` with the dotted key (`camera.retention_hours`) so that the device
//! loader can add file and line. Invariant: a `CameraConfig` exists only for a table without
//! mistakes.

mod table;
#[cfg(test)]
mod tests;
mod urls;

use std::path::PathBuf;

use crate::config::SecretSource;

pub use table::parse_camera;
pub use urls::{parse_source, parse_window};

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
    pub password: Option<SecretSource>,
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
