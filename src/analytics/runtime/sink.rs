//! Where an application's result rows go: Kinesis and Firehose results wait in [`Pending`]
//! for the commit that also stores the checkpoint (exactly once); MQTT and print results go
//! out at once (at-least-once across a crash).

use std::collections::BTreeMap;

use bytes::Bytes;

use super::app::AppContext;
use super::engine::Engine;
use crate::analytics::format::encode;
use crate::analytics::ops::OutRow;
use crate::analytics::sql::plan::{self, Plan, SinkKind};
use crate::analytics::value::Value;
use crate::storage::NewRecord;
use crate::streams::hash_key_of;

pub(super) struct Pending {
    /// (stream, records)
    pub records: BTreeMap<String, Vec<NewRecord>>,
    pub bytes: usize,
}

impl Pending {
    pub fn new() -> Pending {
        Pending {
            records: BTreeMap::new(),
            bytes: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn push(&mut self, stream: &str, partition_key: String, data: String) {
        self.bytes += data.len() + partition_key.len();
        self.records
            .entry(stream.to_string())
            .or_default()
            .push(NewRecord {
                hash_key: hash_key_of(&partition_key),
                partition_key,
                data: Bytes::from(data),
            });
    }
}

/// Sends result rows where the sink wants them.
pub(super) async fn route(
    ctx: &AppContext,
    sink: &plan::SinkPlan,
    plan: &Plan,
    rows: Vec<OutRow>,
    pending: &mut Pending,
    engine: &mut Engine,
) {
    if rows.is_empty() {
        return;
    }
    engine.count_out(rows.len());
    for row in rows {
        let data = encode(sink.format, &sink.columns, &row.values);
        match &sink.kind {
            SinkKind::Kinesis { stream } => pending.push(stream, partition_key(&row), data),
            SinkKind::Firehose { delivery_stream } => pending.push(
                &crate::delivery::config::direct_put_stream_name(delivery_stream),
                partition_key(&row),
                data,
            ),
            SinkKind::Mqtt { topic } => {
                if let Some(broker) = &ctx.broker {
                    let topic = fill_topic(topic, &plan.columns, &row.values);
                    broker.publish(Bytes::from(topic), Bytes::from(data)).await;
                }
            }
            SinkKind::Print => {
                tracing::info!(application = %ctx.name, row = %data, "analytics result")
            }
            SinkKind::Blackhole => {}
        }
    }
}

fn partition_key(row: &OutRow) -> String {
    let key = match &row.partition_key {
        Some(k) if !k.is_empty() => k.clone(),
        _ => row
            .values
            .first()
            .map(|v| v.to_string())
            .unwrap_or_default(),
    };
    let key: String = key
        .chars()
        .take(crate::storage::MAX_PARTITION_KEY_CHARS)
        .collect();
    if key.is_empty() {
        "-".into()
    } else {
        key
    }
}

/// `alerts/{device}`: each `{column}` replaced by the row's value (MQTT wildcards removed).
pub fn fill_topic(
    template: &str,
    columns: &[(String, crate::analytics::value::SqlType)],
    values: &[Value],
) -> String {
    let mut topic = template.to_string();
    for ((name, _), value) in columns.iter().zip(values) {
        let needle = format!("{{{name}}}");
        if topic.contains(&needle) {
            let text: String = value
                .to_string()
                .chars()
                .filter(|c| !matches!(c, '+' | '#' | '/' | '\0'))
                .collect();
            topic = topic.replace(&needle, &text);
        }
    }
    topic
}
