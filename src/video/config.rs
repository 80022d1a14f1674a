//! `[video]`: settings shared by all cameras. This module owns their keys (the raw serde
//! struct: its fields are the supported keys), their checks and the checked [`VideoConfig`].

use std::path::PathBuf;

use serde::Deserialize;
use toml::Value;

use crate::config::check::Check;
use crate::config::Reference;

/// `[video]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVideo {
    /// The fragment log (`video.redb`); default `<storage.data_dir>/video`.
    pub data_dir: Option<Value>,
    /// Target fragment duration (500-10000 ms); default 2000.
    pub fragment_duration_ms: Option<Value>,
    /// Fragments in a live HLS playlist (3-100); default 5.
    pub live_segments: Option<Value>,
}

/// `[video]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoConfig {
    /// Where the fragment log lives; `None` = `<data_dir>/video`, a relative path is relative to
    /// the data directory.
    pub data_dir: Option<PathBuf>,
    /// Target fragment duration (fragments are cut at the first keyframe after it).
    pub fragment_duration_ms: u32,
    /// Fragments in a live HLS playlist.
    pub live_segments: u32,
}

impl VideoConfig {
    pub const DEFAULT_FRAGMENT_DURATION_MS: u32 = 2000;
    pub const DEFAULT_LIVE_SEGMENTS: u32 = 5;
    pub const LIVE_SEGMENTS_RANGE: std::ops::RangeInclusive<u32> = 3..=100;
}

impl Default for VideoConfig {
    fn default() -> Self {
        VideoConfig {
            data_dir: None,
            fragment_duration_ms: Self::DEFAULT_FRAGMENT_DURATION_MS,
            live_segments: Self::DEFAULT_LIVE_SEGMENTS,
        }
    }
}

pub fn validate(check: &mut Check, raw: RawVideo) -> VideoConfig {
    let default = VideoConfig::default();
    let data_dir = check.string("video.data_dir", raw.data_dir, "a directory path", |s| {
        if s.is_empty() {
            Err("must not be empty; leave data_dir out to use <storage.data_dir>/video".into())
        } else {
            Ok(PathBuf::from(s))
        }
    });
    if let Some(path) = data_dir.as_ref().filter(|p| p.is_absolute()) {
        check.reference(
            "video.data_dir",
            Reference::Directory {
                path: path.clone(),
                must_exist: false,
            },
        );
    }
    VideoConfig {
        data_dir,
        fragment_duration_ms: check
            .integer(
                "video.fragment_duration_ms",
                raw.fragment_duration_ms,
                crate::devices::camera::CameraConfig::FRAGMENT_DURATION_MS_RANGE,
                " ms",
            )
            .unwrap_or(default.fragment_duration_ms),
        live_segments: check
            .integer(
                "video.live_segments",
                raw.live_segments,
                VideoConfig::LIVE_SEGMENTS_RANGE,
                "",
            )
            .unwrap_or(default.live_segments),
    }
}
