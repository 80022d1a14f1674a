//! Enhanced monitoring: EnableEnhancedMonitoring / DisableEnhancedMonitoring and the
//! shard-level metrics they turn on, on `/metrics`.
//!
//! The enabled metrics are the stream's `settings.shard_metrics` (durable, changed through the
//! store's writer). [`ShardMonitor`] reports, for each shard of a stream with metrics enabled,
//! one series per enabled metric (labels `stream`, `shard`):
//!
//! | Kinesis metric | series | counted from |
//! | --- | --- | --- |
//! | IncomingBytes | `kinedge_shard_incoming_bytes_total` | record bytes appended (all producers, since the shard was created) |
//! | IncomingRecords | `kinedge_shard_incoming_records_total` | records appended (idem) |
//! | OutgoingBytes | `kinedge_shard_outgoing_bytes_total` | record bytes returned by GetRecords (since start) |
//! | OutgoingRecords | `kinedge_shard_outgoing_records_total` | records returned by GetRecords (since start) |
//! | WriteProvisionedThroughputExceeded | `kinedge_shard_write_provisioned_throughput_exceeded_total` | records refused by a quota or the disk guard (since start) |
//! | ReadProvisionedThroughputExceeded | `kinedge_shard_read_provisioned_throughput_exceeded_total` | always 0: kinedge queues reads, it never refuses them |
//! | IteratorAgeMilliseconds | `kinedge_shard_iterator_age_milliseconds` (gauge) | age of the last record the last GetRecords returned (0 at the tip) |
//!
//! The API's own counters (outgoing, refusals, iterator age) are kept only for shards of
//! streams with a metric enabled, in a map bounded by [`MAX_TRACKED_SHARDS`]; a scrape drops
//! the entries of shards that no longer exist.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::types::NamesStream;
use crate::api::error::ApiError;
use crate::api::KinesisState;
use crate::observe::{Labels, MetricsWriter, Report};
use crate::storage::{AdminOp, Store, StoredRecord};
use crate::streams::{ShardMetric, StreamMeta};

/// Shards whose API counters are kept at most (beyond it new shards are not counted).
pub const MAX_TRACKED_SHARDS: usize = 4096;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EnhancedMonitoringInput {
    pub stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    pub shard_level_metrics: Option<Vec<String>>,
}

impl NamesStream for EnhancedMonitoringInput {
    fn stream_name(&self) -> Option<&str> {
        self.stream_name.as_deref()
    }
    fn stream_arn(&self) -> Option<&str> {
        self.stream_arn.as_deref()
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EnhancedMonitoringOutput {
    pub stream_name: String,
    pub current_shard_level_metrics: Vec<&'static str>,
    pub desired_shard_level_metrics: Vec<&'static str>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: String,
}

/// The metrics a request names (`ALL` expanded), checked as the model says.
fn requested_metrics(names: Option<Vec<String>>) -> Result<Vec<ShardMetric>, ApiError> {
    let names = names.ok_or_else(|| ApiError::missing("shardLevelMetrics"))?;
    if names.is_empty() || names.len() > 7 {
        return Err(ApiError::constraint(
            format!("[{}]", names.join(", ")),
            "shardLevelMetrics",
            "Member must have length between 1 and 7",
        ));
    }
    let mut metrics = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let found = ShardMetric::parse(name).ok_or_else(|| {
            ApiError::constraint(
                name,
                &format!("shardLevelMetrics.{}.member", i + 1),
                "Member must satisfy enum value set: [IncomingBytes, IncomingRecords, OutgoingBytes, OutgoingRecords, WriteProvisionedThroughputExceeded, ReadProvisionedThroughputExceeded, IteratorAgeMilliseconds, ALL]",
            )
        })?;
        metrics.extend(found);
    }
    Ok(metrics)
}

fn names(metrics: &[ShardMetric]) -> Vec<&'static str> {
    metrics.iter().map(|m| m.as_aws()).collect()
}

async fn change(
    state: &KinesisState,
    input: EnhancedMonitoringInput,
    enable: bool,
) -> Result<EnhancedMonitoringOutput, ApiError> {
    let metrics = requested_metrics(input.shard_level_metrics.clone())?;
    let meta = state.stream(&input)?;
    let mut desired = meta.settings.clone();
    let current = desired.change_metrics(&metrics, enable);
    state
        .store
        .admin(AdminOp::ShardMetrics {
            stream: meta.name.clone(),
            metrics,
            enable,
        })
        .await
        .map_err(|e| state.store_error(&meta.name, e))?;
    tracing::info!(stream = %meta.name, metrics = ?desired.shard_metrics, "enhanced monitoring changed");
    Ok(EnhancedMonitoringOutput {
        stream_name: meta.name.clone(),
        current_shard_level_metrics: names(&current),
        desired_shard_level_metrics: names(&desired.shard_metrics),
        stream_arn: state.stream_arn(&meta.name),
    })
}

pub async fn enable(
    state: &KinesisState,
    input: EnhancedMonitoringInput,
) -> Result<EnhancedMonitoringOutput, ApiError> {
    change(state, input, true).await
}

pub async fn disable(
    state: &KinesisState,
    input: EnhancedMonitoringInput,
) -> Result<EnhancedMonitoringOutput, ApiError> {
    change(state, input, false).await
}

/// DescribeStream's `EnhancedMonitoring`: one entry with the enabled metrics.
pub fn enhanced_monitoring_out(meta: &StreamMeta) -> Vec<super::types::EnhancedMetricsOut> {
    vec![super::types::EnhancedMetricsOut {
        shard_level_metrics: names(&meta.settings.shard_metrics)
            .into_iter()
            .map(String::from)
            .collect(),
    }]
}

/// What the API counts for one shard (atomics: GetRecords calls do not wait on each other).
#[derive(Debug, Default)]
struct ShardCounters {
    outgoing_records: AtomicU64,
    outgoing_bytes: AtomicU64,
    write_refused: AtomicU64,
    iterator_age_ms: AtomicU64,
}

/// The shard-level metrics of enhanced monitoring (see the module's table).
pub struct ShardMonitor {
    store: Store,
    shards: Mutex<HashMap<u64, Arc<ShardCounters>>>,
}

impl ShardMonitor {
    pub fn new(store: Store) -> ShardMonitor {
        ShardMonitor {
            store,
            shards: Mutex::new(HashMap::new()),
        }
    }

    fn counters(&self, shard_uid: u64) -> Option<Arc<ShardCounters>> {
        let mut shards = self.shards.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = shards.get(&shard_uid) {
            return Some(c.clone());
        }
        if shards.len() >= MAX_TRACKED_SHARDS {
            return None;
        }
        Some(shards.entry(shard_uid).or_default().clone())
    }

    /// Counts what one GetRecords call returned, when the stream has any metric enabled.
    pub fn count_get(
        &self,
        meta: &StreamMeta,
        shard_uid: u64,
        records: &[StoredRecord],
        now_ms: u64,
    ) {
        if meta.settings.shard_metrics.is_empty() {
            return;
        }
        let Some(c) = self.counters(shard_uid) else {
            return;
        };
        let bytes: usize = records
            .iter()
            .map(|r| r.data.len() + r.partition_key.len())
            .sum();
        c.outgoing_records
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        c.outgoing_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        let age = records
            .last()
            .map_or(0, |r| now_ms.saturating_sub(r.position.millis()));
        c.iterator_age_ms.store(age, Ordering::Relaxed);
    }

    /// Counts records a quota or the disk guard refused, by the shard each would have gone to
    /// (hash keys of the refused records), when the stream counts WriteProvisionedThroughputExceeded.
    pub fn count_refused(&self, stream: &str, refused_hash_keys: &[u128]) {
        if refused_hash_keys.is_empty() {
            return;
        }
        let Some(meta) = self.store.catalog().stream(stream).cloned() else {
            return;
        };
        if !meta
            .settings
            .has_metric(ShardMetric::WriteProvisionedThroughputExceeded)
        {
            return;
        }
        for key in refused_hash_keys {
            if let Some(c) = meta.route(*key).and_then(|s| self.counters(s.uid)) {
                c.write_refused.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Report for ShardMonitor {
    fn report(&self, out: &mut MetricsWriter) {
        let catalog = self.store.catalog();
        let mut rows: HashMap<ShardMetric, Vec<(Labels, u64)>> = HashMap::new();
        let mut ages = Vec::new();
        let mut shards = self.shards.lock().unwrap_or_else(|p| p.into_inner());
        shards.retain(|uid, _| catalog.live(*uid).is_some());
        for stream in catalog.streams.values() {
            let enabled = &stream.settings.shard_metrics;
            if enabled.is_empty() {
                continue;
            }
            for shard in &stream.shards {
                let Some(live) = catalog.live(shard.uid) else {
                    continue;
                };
                let state = live.state();
                let api = shards.get(&shard.uid).cloned().unwrap_or_default();
                let labels: Labels = vec![("stream", stream.name.clone()), ("shard", shard.id())];
                for metric in enabled {
                    let value = match metric {
                        ShardMetric::IncomingBytes => state.appended_bytes,
                        ShardMetric::IncomingRecords => state.appended,
                        ShardMetric::OutgoingBytes => api.outgoing_bytes.load(Ordering::Relaxed),
                        ShardMetric::OutgoingRecords => {
                            api.outgoing_records.load(Ordering::Relaxed)
                        }
                        ShardMetric::WriteProvisionedThroughputExceeded => {
                            api.write_refused.load(Ordering::Relaxed)
                        }
                        ShardMetric::ReadProvisionedThroughputExceeded => 0,
                        ShardMetric::IteratorAgeMilliseconds => {
                            let age = api.iterator_age_ms.load(Ordering::Relaxed);
                            ages.push((labels.clone(), age as f64));
                            continue;
                        }
                    };
                    rows.entry(*metric)
                        .or_default()
                        .push((labels.clone(), value));
                }
            }
        }
        drop(shards);
        let mut take = |m: ShardMetric| rows.remove(&m).unwrap_or_default();
        out.counter("kinedge_shard_incoming_bytes", "Enhanced monitoring (IncomingBytes): record bytes appended to the shard since it was created.", take(ShardMetric::IncomingBytes));
        out.counter("kinedge_shard_incoming_records", "Enhanced monitoring (IncomingRecords): records appended to the shard since it was created.", take(ShardMetric::IncomingRecords));
        out.counter("kinedge_shard_outgoing_bytes", "Enhanced monitoring (OutgoingBytes): record bytes returned by GetRecords since the gateway started.", take(ShardMetric::OutgoingBytes));
        out.counter("kinedge_shard_outgoing_records", "Enhanced monitoring (OutgoingRecords): records returned by GetRecords since the gateway started.", take(ShardMetric::OutgoingRecords));
        out.counter("kinedge_shard_write_provisioned_throughput_exceeded", "Enhanced monitoring (WriteProvisionedThroughputExceeded): records refused by a quota or the disk guard since the gateway started.", take(ShardMetric::WriteProvisionedThroughputExceeded));
        out.counter("kinedge_shard_read_provisioned_throughput_exceeded", "Enhanced monitoring (ReadProvisionedThroughputExceeded): always 0, kinedge queues reads instead of refusing them.", take(ShardMetric::ReadProvisionedThroughputExceeded));
        out.gauge("kinedge_shard_iterator_age_milliseconds", "Enhanced monitoring (IteratorAgeMilliseconds): age of the last record the shard's last GetRecords returned (0 when it returned none).", ages);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_are_checked_and_all_expands() {
        let all = requested_metrics(Some(vec!["ALL".into()])).unwrap();
        assert_eq!(all.len(), 7);
        let two = requested_metrics(Some(vec!["IncomingBytes".into(), "OutgoingRecords".into()]))
            .unwrap();
        assert_eq!(
            two,
            vec![ShardMetric::IncomingBytes, ShardMetric::OutgoingRecords]
        );
        let err =
            requested_metrics(Some(vec!["IncomingBytes".into(), "Bogus".into()])).unwrap_err();
        assert!(
            err.message.contains("'shardLevelMetrics.2.member'"),
            "{}",
            err.message
        );
        assert!(requested_metrics(Some(vec![])).is_err());
        assert!(requested_metrics(None).is_err());
    }
}
