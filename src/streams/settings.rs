//! A stream's optional settings that Kinesis operations change after creation: the
//! shard-level metrics of enhanced monitoring and the resource policy.
//!
//! They live in [`StreamMeta::settings`](super::StreamMeta) (the stream's JSON row, written by
//! the storage writer like every other change to a stream), with serde defaults so that a row
//! written before they existed reads as "nothing enabled, no policy". Invariant: the metrics
//! are a set (no duplicates, never `ALL`: `ALL` is expanded when a request is read), kept in
//! AWS's order.

use serde::{Deserialize, Serialize};

/// Most bytes of a resource policy (Kinesis' limit: 20 KB).
pub const MAX_POLICY_BYTES: usize = 20 * 1024;

/// Streams in ON_DEMAND mode a gateway serves at once (DescribeLimits'
/// OnDemandStreamCountLimit; AWS's default quota per account and region is 50).
pub const ON_DEMAND_STREAM_LIMIT: u32 = 50;

/// One shard-level metric of enhanced monitoring, as Kinesis names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ShardMetric {
    IncomingBytes,
    IncomingRecords,
    OutgoingBytes,
    OutgoingRecords,
    WriteProvisionedThroughputExceeded,
    ReadProvisionedThroughputExceeded,
    IteratorAgeMilliseconds,
}

impl ShardMetric {
    /// Every metric, in AWS's order (what `ALL` stands for).
    pub const ALL: [ShardMetric; 7] = [
        ShardMetric::IncomingBytes,
        ShardMetric::IncomingRecords,
        ShardMetric::OutgoingBytes,
        ShardMetric::OutgoingRecords,
        ShardMetric::WriteProvisionedThroughputExceeded,
        ShardMetric::ReadProvisionedThroughputExceeded,
        ShardMetric::IteratorAgeMilliseconds,
    ];

    pub fn as_aws(self) -> &'static str {
        match self {
            ShardMetric::IncomingBytes => "IncomingBytes",
            ShardMetric::IncomingRecords => "IncomingRecords",
            ShardMetric::OutgoingBytes => "OutgoingBytes",
            ShardMetric::OutgoingRecords => "OutgoingRecords",
            ShardMetric::WriteProvisionedThroughputExceeded => "WriteProvisionedThroughputExceeded",
            ShardMetric::ReadProvisionedThroughputExceeded => "ReadProvisionedThroughputExceeded",
            ShardMetric::IteratorAgeMilliseconds => "IteratorAgeMilliseconds",
        }
    }

    /// The metrics a name stands for (`ALL`: every one); `None` for an unknown name.
    pub fn parse(name: &str) -> Option<Vec<ShardMetric>> {
        if name == "ALL" {
            return Some(Self::ALL.to_vec());
        }
        Self::ALL
            .into_iter()
            .find(|m| m.as_aws() == name)
            .map(|m| vec![m])
    }
}

/// A stream's settings beyond its shards, retention and tags.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamSettings {
    /// Enhanced monitoring: the shard-level metrics enabled (a set in AWS's order).
    pub shard_metrics: Vec<ShardMetric>,
    /// The resource policy (PutResourcePolicy), as the client sent it: JSON text with a
    /// `Statement`, at most [`MAX_POLICY_BYTES`].
    pub resource_policy: Option<String>,
}

impl StreamSettings {
    pub fn has_metric(&self, metric: ShardMetric) -> bool {
        self.shard_metrics.contains(&metric)
    }

    /// Enables (`enable`) or disables `metrics`; returns the set before the change.
    pub fn change_metrics(&mut self, metrics: &[ShardMetric], enable: bool) -> Vec<ShardMetric> {
        let before = self.shard_metrics.clone();
        let mut set: std::collections::BTreeSet<ShardMetric> = before.iter().copied().collect();
        for metric in metrics {
            if enable {
                set.insert(*metric);
            } else {
                set.remove(metric);
            }
        }
        self.shard_metrics = set.into_iter().collect();
        before
    }
}

/// What a resource policy must look like to be stored: a JSON object of at most
/// [`MAX_POLICY_BYTES`] with a `Statement` that is a non-empty list of objects (or one object,
/// as IAM also accepts). Returns why not.
pub fn check_policy(text: &str) -> Result<(), String> {
    if text.len() > MAX_POLICY_BYTES {
        return Err(format!(
            "The policy is {} bytes; a resource policy has at most {MAX_POLICY_BYTES} bytes.",
            text.len()
        ));
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("The policy is not valid JSON: {e}."))?;
    let object = value
        .as_object()
        .ok_or("The policy must be a JSON object with a Statement.")?;
    let statements = match object.get("Statement") {
        Some(serde_json::Value::Array(list)) if !list.is_empty() => list.iter().collect(),
        Some(one @ serde_json::Value::Object(_)) => vec![one],
        _ => {
            return Err("The policy must have a Statement: a non-empty list of statements.".into())
        }
    };
    for (i, statement) in statements.into_iter().enumerate() {
        let statement = statement
            .as_object()
            .ok_or_else(|| format!("Statement {} is not a JSON object.", i + 1))?;
        match statement.get("Effect").and_then(|e| e.as_str()) {
            Some("Allow" | "Deny") => {}
            _ => {
                return Err(format!(
                    "Statement {} must have an Effect of Allow or Deny.",
                    i + 1
                ))
            }
        }
        if !statement.contains_key("Action") {
            return Err(format!("Statement {} must have an Action.", i + 1));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_expands_and_names_round_trip() {
        assert_eq!(ShardMetric::parse("ALL").unwrap().len(), 7);
        for m in ShardMetric::ALL {
            assert_eq!(ShardMetric::parse(m.as_aws()), Some(vec![m]));
        }
        assert_eq!(ShardMetric::parse("IncomingBytez"), None);
    }

    #[test]
    fn metrics_stay_a_set_in_aws_order() {
        let mut s = StreamSettings::default();
        let before = s.change_metrics(
            &[
                ShardMetric::IteratorAgeMilliseconds,
                ShardMetric::IncomingBytes,
            ],
            true,
        );
        assert!(before.is_empty());
        s.change_metrics(&[ShardMetric::IncomingBytes], true);
        assert_eq!(
            s.shard_metrics,
            vec![
                ShardMetric::IncomingBytes,
                ShardMetric::IteratorAgeMilliseconds
            ]
        );
        let before = s.change_metrics(&ShardMetric::ALL, false);
        assert_eq!(before.len(), 2);
        assert!(s.shard_metrics.is_empty());
    }

    #[test]
    fn old_rows_read_without_settings() {
        let s: StreamSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(s, StreamSettings::default());
    }

    #[test]
    fn stream_rows_of_older_gateways_still_read() {
        struct One(u64);
        impl crate::streams::UidSource for One {
            fn next_uid(&mut self) -> u64 {
                self.0 += 1;
                self.0
            }
        }
        let meta = crate::streams::StreamMeta::new("s".into(), 1, 2, 0, &mut One(1));
        // (u128 hash keys do not go through serde_json::Value: edit the text)
        let row = serde_json::to_string(&meta).unwrap();
        let old = row.replace(
            r#","settings":{"shard_metrics":[],"resource_policy":null}"#,
            "",
        );
        assert!(!old.contains("settings"), "{old}");
        let read: crate::streams::StreamMeta = serde_json::from_str(&old).unwrap();
        assert_eq!(read.settings, StreamSettings::default());
        assert_eq!(read.shards.len(), 2);
    }

    #[test]
    fn policies_are_checked() {
        let ok = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"kinesis:*","Resource":"*"}]}"#;
        assert!(check_policy(ok).is_ok());
        assert!(check_policy("not json").is_err());
        assert!(check_policy("[]").is_err());
        assert!(check_policy(r#"{"Statement":[]}"#).is_err());
        assert!(check_policy(r#"{"Statement":[{"Effect":"Maybe","Action":"x"}]}"#).is_err());
        assert!(check_policy(r#"{"Statement":{"Effect":"Deny","Action":"kinesis:*"}}"#).is_ok());
        let big = format!(
            r#"{{"Statement":[{{"Effect":"Allow","Action":"kinesis:*","Sid":"{}"}}]}}"#,
            "x".repeat(MAX_POLICY_BYTES)
        );
        assert!(check_policy(&big).unwrap_err().contains("20480"));
    }
}
