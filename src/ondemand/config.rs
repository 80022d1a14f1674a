//! `[on_demand]`: how the on-demand scaler reshards ON_DEMAND streams. This module owns the
//! keys (the raw serde struct: its fields are the supported keys), their checks and the
//! checked [`OnDemandConfig`].

use serde::Deserialize;
use toml::Value;

use crate::config::check::Check;
use crate::streams::SHARD_LIMIT;

/// `[on_demand]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOnDemand {
    /// Run the scaler for streams in ON_DEMAND mode (UpdateStreamMode, CreateStream); default true.
    pub enabled: Option<Value>,
    /// How often the scaler looks at the write rates (100-3600000 ms); default 60000. Tests use a
    /// few hundred ms.
    pub interval_ms: Option<Value>,
    /// The write rate is averaged over this last stretch of time (at least `interval_ms`, at most
    /// 3600000 ms); default 300000 (5 minutes).
    pub window_ms: Option<Value>,
    /// Write capacity of one shard in bytes per second (Kinesis: 1 MiB/s); default `"1MiB"`.
    pub shard_write_bytes_per_s: Option<Value>,
    /// Write capacity of one shard in records per second (Kinesis: 1000); 1-1000000; default 1000.
    pub shard_write_records_per_s: Option<Value>,
    /// The scaler never scales a stream below this many open shards (1-1024); default 4 (an
    /// ON_DEMAND stream starts with 4, as in Kinesis).
    pub min_shards: Option<Value>,
    /// The scaler never scales a stream above this many open shards (1-1024, and never beyond the
    /// gateway's limit of 1024 open shards in all); default 64.
    pub max_shards: Option<Value>,
    /// A stream is scaled down (halved) only after its rate stayed below a quarter of its
    /// capacity this long (1000-604800000 ms); default 3600000 (1 hour).
    pub scale_down_after_ms: Option<Value>,
}

/// `[on_demand]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnDemandConfig {
    pub enabled: bool,
    pub interval_ms: u64,
    pub window_ms: u64,
    pub shard_write_bytes_per_s: u64,
    pub shard_write_records_per_s: u64,
    pub min_shards: u32,
    pub max_shards: u32,
    pub scale_down_after_ms: u64,
}

impl Default for OnDemandConfig {
    fn default() -> Self {
        OnDemandConfig {
            enabled: true,
            interval_ms: 60_000,
            window_ms: 300_000,
            shard_write_bytes_per_s: 1024 * 1024,
            shard_write_records_per_s: 1000,
            min_shards: 4,
            max_shards: 64,
            scale_down_after_ms: 3_600_000,
        }
    }
}

pub fn validate(check: &mut Check, raw: RawOnDemand) -> OnDemandConfig {
    let d = OnDemandConfig::default();
    let mut config = OnDemandConfig {
        enabled: check
            .boolean("on_demand.enabled", raw.enabled)
            .unwrap_or(d.enabled),
        interval_ms: check
            .integer(
                "on_demand.interval_ms",
                raw.interval_ms,
                100..=3_600_000,
                " ms",
            )
            .unwrap_or(d.interval_ms),
        window_ms: check
            .integer("on_demand.window_ms", raw.window_ms, 100..=3_600_000, " ms")
            .unwrap_or(d.window_ms),
        shard_write_bytes_per_s: check
            .size(
                "on_demand.shard_write_bytes_per_s",
                raw.shard_write_bytes_per_s,
                1..=1024 * 1024 * 1024,
            )
            .unwrap_or(d.shard_write_bytes_per_s),
        shard_write_records_per_s: check
            .integer(
                "on_demand.shard_write_records_per_s",
                raw.shard_write_records_per_s,
                1..=1_000_000,
                "",
            )
            .unwrap_or(d.shard_write_records_per_s),
        min_shards: check
            .integer("on_demand.min_shards", raw.min_shards, 1..=SHARD_LIMIT, "")
            .unwrap_or(d.min_shards),
        max_shards: check
            .integer("on_demand.max_shards", raw.max_shards, 1..=SHARD_LIMIT, "")
            .unwrap_or(d.max_shards),
        scale_down_after_ms: check
            .integer(
                "on_demand.scale_down_after_ms",
                raw.scale_down_after_ms,
                1000..=604_800_000,
                " ms",
            )
            .unwrap_or(d.scale_down_after_ms),
    };
    if config.window_ms < config.interval_ms {
        check.problem(
            "on_demand.window_ms",
            format!(
                "{} ms is shorter than on_demand.interval_ms ({} ms): the window must hold at least one interval",
                config.window_ms, config.interval_ms
            ),
        );
        config.window_ms = config.interval_ms;
    }
    if config.max_shards < config.min_shards {
        check.problem(
            "on_demand.max_shards",
            format!(
                "{} is below on_demand.min_shards ({})",
                config.max_shards, config.min_shards
            ),
        );
        config.max_shards = config.min_shards;
    }
    config
}
