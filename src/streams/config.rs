//! `[[streams]]`: the streams created at start. This module owns their keys (the raw serde
//! struct: its fields are the supported keys), their checks and the checked [`StreamConfig`].

use std::collections::HashMap;

use serde::Deserialize;
use toml::Value;

use super::SHARD_LIMIT;
use crate::config::check::{parse_stream_name, Check};

const MIB: u64 = 1024 * 1024;

/// One `[[streams]]` entry as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStream {
    /// Stream name, 1-128 of a-z A-Z 0-9 _ . -; required.
    pub name: Option<Value>,
    /// Shards (1-1024); default 1.
    pub shards: Option<Value>,
    /// Hours records are kept (24-8760); default 24.
    pub retention_hours: Option<Value>,
    /// Optional quota for the whole stream, at least 1 MiB.
    pub max_bytes: Option<Value>,
    /// At `max_bytes`: `"overwrite_oldest"` (default) or `"reject_new"`.
    pub on_full: Option<Value>,
}

/// `[[streams]]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    pub name: String,
    pub shards: u32,
    pub retention_hours: u32,
    /// Optional quota for the whole stream, bytes.
    pub max_bytes: Option<u64>,
    pub on_full: OnFull,
}

/// What a stream does when `max_bytes` is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFull {
    #[default]
    OverwriteOldest,
    RejectNew,
}

impl StreamConfig {
    pub const DEFAULT_SHARDS: u32 = 1;
    pub const SHARDS_RANGE: std::ops::RangeInclusive<u32> = 1..=1024;
    pub const DEFAULT_RETENTION_HOURS: u32 = 24;
    pub const RETENTION_HOURS_RANGE: std::ops::RangeInclusive<u32> = 24..=8760;
    pub const MIN_MAX_BYTES: u64 = MIB;
    pub const MAX_NAME_LEN: usize = crate::config::check::MAX_STREAM_NAME_LEN;

    /// Whether `name` is a valid stream name: 1..=128 of `[a-zA-Z0-9_.-]`.
    pub fn is_valid_name(name: &str) -> bool {
        crate::config::check::is_valid_stream_name(name)
    }
}

impl OnFull {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            OnFull::OverwriteOldest => "overwrite_oldest",
            OnFull::RejectNew => "reject_new",
        }
    }
}

pub fn validate(check: &mut Check, raw: Vec<RawStream>) -> Vec<StreamConfig> {
    let mut streams = Vec::new();
    let mut open_shards = 0u32;
    let mut seen: HashMap<String, String> = HashMap::new();
    for (i, raw) in raw.into_iter().enumerate() {
        let key = format!("streams[{i}]");
        let name_key = format!("{key}.name");
        if raw.name.is_none() {
            check.problem(&name_key, "missing: every stream needs a name");
        }
        let name = check.string(&name_key, raw.name, "a string", parse_stream_name);
        let name = name.filter(|name| match seen.get(name) {
            Some(first) => {
                let message = format!("duplicate stream name `{name}` (also in {first})");
                check.problem(&name_key, message);
                false
            }
            None => {
                seen.insert(name.clone(), key.clone());
                true
            }
        });
        let shards = check.integer(
            &format!("{key}.shards"),
            raw.shards,
            StreamConfig::SHARDS_RANGE,
            "",
        );
        let retention_hours = check.integer(
            &format!("{key}.retention_hours"),
            raw.retention_hours,
            StreamConfig::RETENTION_HOURS_RANGE,
            " hours",
        );
        let max_bytes = check.size(
            &format!("{key}.max_bytes"),
            raw.max_bytes,
            StreamConfig::MIN_MAX_BYTES..=u64::MAX,
        );
        let on_full = check.string(
            &format!("{key}.on_full"),
            raw.on_full,
            "a string",
            |s| match s {
                "overwrite_oldest" => Ok(OnFull::OverwriteOldest),
                "reject_new" => Ok(OnFull::RejectNew),
                _ => Err(format!(
                    "`{s}` is not allowed: use \"overwrite_oldest\" or \"reject_new\""
                )),
            },
        );
        if let Some(shards) = shards {
            open_shards += shards;
            if open_shards > SHARD_LIMIT && open_shards - shards <= SHARD_LIMIT {
                check.problem(
                    &format!("{key}.shards"),
                    format!(
                        "the streams up to this one have {open_shards} shards: a gateway \
                         holds at most {SHARD_LIMIT} open shards"
                    ),
                );
            }
        }
        if let Some(name) = name {
            streams.push(StreamConfig {
                name,
                shards: shards.unwrap_or(StreamConfig::DEFAULT_SHARDS),
                retention_hours: retention_hours.unwrap_or(StreamConfig::DEFAULT_RETENTION_HOURS),
                max_bytes,
                on_full: on_full.unwrap_or_default(),
            });
        }
    }
    streams
}
