//! The on-demand scaler: reshards streams in ON_DEMAND mode by the write rate the gateway sees.
//!
//! One background task looks every `on_demand.interval_ms` at each ON_DEMAND stream's
//! lifetime append counters (records and bytes of all its shards, from the store's live
//! shard state), averages the rate over `on_demand.window_ms` and applies `policy::decide`:
//! up (at most double, at most `max_shards`, never beyond the gateway's open-shard limit) when
//! the rate passes half the capacity, down (halve, not below `min_shards`) after a long quiet
//! time. A decision goes through the store's writer as `AdminOp::ScaleOnDemand`, the
//! UpdateShardCount path (uniform splits and merges), which refuses a stream that was switched
//! back to PROVISIONED meanwhile.
//!
//! Invariants: the task never blocks the runtime (it only reads the in-memory catalog) and
//! keeps state for ON_DEMAND streams only (at most `ON_DEMAND_STREAM_LIMIT`), with a bounded
//! history per stream; every decision and failure is logged with `tracing`; `/status` shows
//! what it saw and did (`on_demand`).

pub mod config;
pub mod policy;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

pub use config::{OnDemandConfig, RawOnDemand};
use policy::{Decision, Limits, Rate, Trend};

use crate::storage::{now_ms, AdminOp, Catalog, Store};
use crate::streams::{StreamMeta, StreamMode, SHARD_LIMIT};

/// Samples kept per stream at most (the window is cut to this many intervals).
const MAX_SAMPLES: usize = 512;

/// One look at a stream's lifetime append counters.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at_ms: u64,
    records: u64,
    bytes: u64,
}

/// What the scaler knows of one ON_DEMAND stream.
#[derive(Debug, Default)]
struct Tracked {
    samples: VecDeque<Sample>,
    trend: Trend,
    status: StreamStatus,
}

/// One stream in `/status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StreamStatus {
    pub open_shards: u32,
    /// Write rate over the window.
    pub records_per_s: f64,
    pub bytes_per_s: f64,
    /// Share of the open shards' write capacity used (1.0 = full).
    pub utilization: f64,
    pub scale_ups: u64,
    pub scale_downs: u64,
    /// The last reshard: `"4 -> 8"` and when (epoch ms).
    pub last_scaling: Option<String>,
    pub last_scaling_ms: Option<u64>,
    pub last_error: Option<String>,
}

/// The running scaler: its status for `/status`.
#[derive(Clone)]
pub struct OnDemandScaler {
    config: OnDemandConfig,
    streams: Arc<Mutex<BTreeMap<String, Tracked>>>,
}

impl OnDemandScaler {
    /// Starts the scaler's task (none when `on_demand.enabled` is false).
    pub fn spawn(
        store: Store,
        config: OnDemandConfig,
    ) -> (Self, Option<tokio::task::JoinHandle<()>>) {
        let scaler = OnDemandScaler {
            config,
            streams: Arc::default(),
        };
        if !scaler.config.enabled {
            return (scaler, None);
        }
        let runner = scaler.clone();
        let task = tokio::spawn(async move { runner.run(store).await });
        (scaler, Some(task))
    }

    /// `/status`'s `on_demand`: the settings and each ON_DEMAND stream's rate and reshards.
    pub fn status(&self) -> serde_json::Value {
        let streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        let per_stream: BTreeMap<&String, &StreamStatus> =
            streams.iter().map(|(k, v)| (k, &v.status)).collect();
        serde_json::json!({
            "enabled": self.config.enabled,
            "interval_ms": self.config.interval_ms,
            "window_ms": self.config.window_ms,
            "min_shards": self.config.min_shards,
            "max_shards": self.config.max_shards,
            "streams": per_stream,
        })
    }

    fn limits(&self) -> Limits {
        Limits {
            shard_bytes_per_s: self.config.shard_write_bytes_per_s as f64,
            shard_records_per_s: self.config.shard_write_records_per_s as f64,
            min_shards: self.config.min_shards,
            max_shards: self.config.max_shards,
            scale_down_after_ms: self.config.scale_down_after_ms,
        }
    }

    async fn run(self, store: Store) {
        tracing::info!(
            interval_ms = self.config.interval_ms,
            window_ms = self.config.window_ms,
            max_shards = self.config.max_shards,
            "on-demand scaler started"
        );
        let mut tick = tokio::time::interval(Duration::from_millis(self.config.interval_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let decisions = self.look(&store.catalog(), now_ms());
            for (stream, from, decision) in decisions {
                self.apply(&store, stream, from, decision).await;
            }
        }
    }

    /// Samples every ON_DEMAND stream and decides; forgets streams that are not ON_DEMAND.
    fn look(&self, catalog: &Catalog, now: u64) -> Vec<(String, u32, Decision)> {
        let limits = self.limits();
        let room = SHARD_LIMIT.saturating_sub(catalog.open_shards_in_gateway());
        let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        streams.retain(|name, _| {
            catalog
                .stream(name)
                .is_some_and(|s| s.mode == StreamMode::OnDemand)
        });
        let mut decisions = Vec::new();
        for meta in catalog.streams.values() {
            if meta.mode != StreamMode::OnDemand {
                continue;
            }
            let tracked = streams.entry(meta.name.clone()).or_default();
            let rate = self.observe(tracked, sample_of(catalog, meta, now));
            let current = meta.open_shard_count();
            let decision = policy::decide(&mut tracked.trend, current, rate, room, now, &limits);
            tracked.status.open_shards = current;
            tracked.status.records_per_s = rate.records_per_s;
            tracked.status.bytes_per_s = rate.bytes_per_s;
            tracked.status.utilization = policy::utilization(rate, current, &limits);
            if decision != Decision::Keep {
                decisions.push((meta.name.clone(), current, decision));
            }
        }
        decisions
    }

    /// Adds a sample and returns the rate over the window (zero until two samples).
    fn observe(&self, tracked: &mut Tracked, sample: Sample) -> Rate {
        let samples = &mut tracked.samples;
        // Counters going down (a closed shard left with its retention): start again.
        if samples
            .back()
            .is_some_and(|last| sample.records < last.records || sample.bytes < last.bytes)
        {
            samples.clear();
        }
        samples.push_back(sample);
        while samples.len() > MAX_SAMPLES
            || samples.len() > 2
                && samples
                    .get(1)
                    .is_some_and(|s| sample.at_ms.saturating_sub(s.at_ms) >= self.config.window_ms)
        {
            samples.pop_front();
        }
        let Some(first) = samples.front() else {
            return Rate::default();
        };
        let elapsed_s = sample.at_ms.saturating_sub(first.at_ms) as f64 / 1000.0;
        if elapsed_s <= 0.0 {
            return Rate::default();
        }
        Rate {
            records_per_s: (sample.records - first.records) as f64 / elapsed_s,
            bytes_per_s: (sample.bytes - first.bytes) as f64 / elapsed_s,
        }
    }

    async fn apply(&self, store: &Store, stream: String, from: u32, decision: Decision) {
        let (target, up) = match decision {
            Decision::Up(n) => (n, true),
            Decision::Down(n) => (n, false),
            Decision::Keep => return,
        };
        let result = store
            .admin(AdminOp::ScaleOnDemand {
                stream: stream.clone(),
                target,
            })
            .await;
        let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        let Some(tracked) = streams.get_mut(&stream) else {
            return;
        };
        match result {
            Ok(()) => {
                tracing::info!(%stream, from, to = target, rate_records_per_s = tracked.status.records_per_s, rate_bytes_per_s = tracked.status.bytes_per_s, "on-demand scaling: resharded");
                let status = &mut tracked.status;
                if up {
                    status.scale_ups += 1;
                } else {
                    status.scale_downs += 1;
                }
                status.open_shards = target;
                status.last_scaling = Some(format!("{from} -> {target}"));
                status.last_scaling_ms = Some(now_ms());
                status.last_error = None;
                // The rate seen so far was for the old shards; measure afresh.
                tracked.samples.clear();
            }
            Err(e) => {
                tracing::warn!(%stream, from, to = target, error = %e, "on-demand scaling failed");
                tracked.status.last_error = Some(e.to_string());
            }
        }
    }
}

/// A stream's lifetime append counters (all its shards) now.
fn sample_of(catalog: &Catalog, meta: &StreamMeta, now: u64) -> Sample {
    let (mut records, mut bytes) = (0u64, 0u64);
    for shard in &meta.shards {
        if let Some(live) = catalog.live(shard.uid) {
            let state = live.state();
            records += state.appended;
            bytes += state.appended_bytes;
        }
    }
    Sample {
        at_ms: now,
        records,
        bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scaler(window_ms: u64) -> OnDemandScaler {
        OnDemandScaler {
            config: OnDemandConfig {
                window_ms,
                ..OnDemandConfig::default()
            },
            streams: Arc::default(),
        }
    }

    #[test]
    fn rate_is_averaged_over_the_window() {
        let s = scaler(10_000);
        let mut t = Tracked::default();
        let at = |at_ms, records| Sample {
            at_ms,
            records,
            bytes: records * 10,
        };
        assert_eq!(s.observe(&mut t, at(0, 0)), Rate::default());
        let r = s.observe(&mut t, at(1_000, 500));
        assert_eq!(r.records_per_s, 500.0);
        assert_eq!(r.bytes_per_s, 5000.0);
        for i in 2..=30u64 {
            s.observe(
                &mut t,
                at(
                    i * 1_000,
                    i * 500 + if i > 20 { (i - 20) * 1000 } else { 0 },
                ),
            );
        }
        // the last 10 s: 500/s plus 1000/s more
        let r = s.observe(&mut t, at(31_000, 31 * 500 + 11 * 1000));
        assert!((r.records_per_s - 1500.0).abs() < 1.0, "{r:?}");
        assert!(t.samples.len() <= 12);
        // counters going down start again
        assert_eq!(s.observe(&mut t, at(32_000, 5)), Rate::default());
    }
}
