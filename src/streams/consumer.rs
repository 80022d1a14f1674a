//! Enhanced fan-out consumers of a stream, as Kinesis defines them (RegisterStreamConsumer).
//!
//! A consumer is a name registered on one stream, with its registration time; the API forms
//! its ARN from both (`.../stream/<stream>/consumer/<name>:<epoch seconds>`), so a consumer
//! deregistered and registered again under the same name in a later second has a new ARN.
//! Consumers live in their stream's [`super::StreamMeta`] and go with it.
//!
//! Invariants: names are unique within a stream and valid ([`is_valid_consumer_name`]); a
//! stream has at most the configured number of consumers (`api.max_consumers_per_stream`,
//! by default [`MAX_CONSUMERS_PER_STREAM`], Kinesis's limit).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Consumers one stream can have registered at once in Kinesis (kinedge's default).
pub const MAX_CONSUMERS_PER_STREAM: usize = 20;
/// Longest consumer name (Kinesis's model).
pub const MAX_CONSUMER_NAME_CHARS: usize = 128;

/// One registered consumer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamConsumer {
    pub name: String,
    /// When it was registered (epoch ms); its ARN carries it in seconds.
    pub created_ms: u64,
    /// TagResource on the consumer's ARN (absent in databases written before).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

impl StreamConsumer {
    /// The creation time as the ARN writes it (epoch seconds).
    pub fn created_s(&self) -> u64 {
        self.created_ms / 1000
    }
}

/// Consumer names: 1-128 characters of `[a-zA-Z0-9_.-]`.
pub fn is_valid_consumer_name(name: &str) -> bool {
    super::validate::is_valid_stream_name(name)
}

/// Why a change to a stream's consumers was refused, in Kinesis's terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsumerError {
    #[error("Consumer {consumer} under stream {stream} already exists.")]
    Exists { stream: String, consumer: String },
    #[error("Consumer {consumer} under stream {stream} not found.")]
    NotFound { stream: String, consumer: String },
    #[error("Stream {stream} already has {max} registered consumers, the most a stream can have (api.max_consumers_per_stream); deregister one first.")]
    Limit { stream: String, max: usize },
    #[error("Failed to add tags to consumer {consumer} under stream {stream}: a resource can have at most {max} tags (it has {has}).")]
    TooManyTags {
        stream: String,
        consumer: String,
        max: usize,
        has: usize,
    },
}

/// Adds `consumer` to a stream's consumers, or says why not.
pub fn register(
    stream: &str,
    consumers: &mut Vec<StreamConsumer>,
    consumer: StreamConsumer,
    max: usize,
) -> Result<(), ConsumerError> {
    if consumers.iter().any(|c| c.name == consumer.name) {
        return Err(ConsumerError::Exists {
            stream: stream.to_string(),
            consumer: consumer.name,
        });
    }
    if consumers.len() >= max {
        return Err(ConsumerError::Limit {
            stream: stream.to_string(),
            max,
        });
    }
    debug_assert!(is_valid_consumer_name(&consumer.name));
    consumers.push(consumer);
    Ok(())
}

/// Removes the consumer `name` from a stream's consumers, or says it is not there.
pub fn deregister(
    stream: &str,
    consumers: &mut Vec<StreamConsumer>,
    name: &str,
) -> Result<StreamConsumer, ConsumerError> {
    let i = consumers
        .iter()
        .position(|c| c.name == name)
        .ok_or_else(|| ConsumerError::NotFound {
            stream: stream.to_string(),
            consumer: name.to_string(),
        })?;
    Ok(consumers.remove(i))
}

/// The consumer that a consumer ARN names: its name and its registration second (a consumer
/// registered again under the same name has another ARN, and the old ARN names nothing).
pub fn find_mut<'a>(
    stream: &str,
    consumers: &'a mut [StreamConsumer],
    name: &str,
    created_s: u64,
) -> Result<&'a mut StreamConsumer, ConsumerError> {
    consumers
        .iter_mut()
        .find(|c| c.name == name && c.created_s() == created_s)
        .ok_or_else(|| ConsumerError::NotFound {
            stream: stream.to_string(),
            consumer: name.to_string(),
        })
}

/// Adds or replaces tags of a consumer, at most `max` in all.
pub fn add_tags(
    stream: &str,
    consumer: &mut StreamConsumer,
    tags: Vec<(String, String)>,
    max: usize,
) -> Result<(), ConsumerError> {
    let new_keys = tags
        .iter()
        .filter(|(k, _)| !consumer.tags.contains_key(k))
        .map(|(k, _)| k)
        .collect::<std::collections::HashSet<_>>()
        .len();
    if consumer.tags.len() + new_keys > max {
        return Err(ConsumerError::TooManyTags {
            stream: stream.to_string(),
            consumer: consumer.name.clone(),
            max,
            has: consumer.tags.len(),
        });
    }
    consumer.tags.extend(tags);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str) -> StreamConsumer {
        StreamConsumer {
            name: name.into(),
            created_ms: 1_700_000_000_123,
            tags: BTreeMap::new(),
        }
    }

    #[test]
    fn names_are_unique_and_bounded() {
        let mut all = Vec::new();
        register("s", &mut all, c("a"), MAX_CONSUMERS_PER_STREAM).unwrap();
        assert_eq!(
            register("s", &mut all, c("a"), MAX_CONSUMERS_PER_STREAM),
            Err(ConsumerError::Exists {
                stream: "s".into(),
                consumer: "a".into()
            })
        );
        for i in 1..MAX_CONSUMERS_PER_STREAM {
            register("s", &mut all, c(&format!("c{i}")), MAX_CONSUMERS_PER_STREAM).unwrap();
        }
        assert!(matches!(
            register("s", &mut all, c("one-more"), MAX_CONSUMERS_PER_STREAM),
            Err(ConsumerError::Limit { .. })
        ));
        assert_eq!(deregister("s", &mut all, "a").unwrap().name, "a");
        assert!(matches!(
            deregister("s", &mut all, "a"),
            Err(ConsumerError::NotFound { .. })
        ));
        register("s", &mut all, c("one-more"), MAX_CONSUMERS_PER_STREAM).unwrap();
        assert_eq!(all.len(), MAX_CONSUMERS_PER_STREAM);
    }

    #[test]
    fn consumer_tags_are_found_by_arn_and_bounded() {
        let mut all = vec![c("a")];
        assert!(find_mut("s", &mut all, "a", 1_700_000_001).is_err());
        let consumer = find_mut("s", &mut all, "a", 1_700_000_000).unwrap();
        let tags = |n: usize| (0..n).map(|i| (format!("k{i}"), "v".to_string())).collect();
        add_tags("s", consumer, tags(49), 50).unwrap();
        add_tags("s", consumer, tags(50), 50).unwrap();
        assert!(matches!(
            add_tags("s", consumer, vec![("x".into(), "y".into())], 50),
            Err(ConsumerError::TooManyTags { has: 50, .. })
        ));
        // Tags are kept in the stream's JSON and read back; none is no field at all.
        let json = serde_json::to_string(&all[0]).unwrap();
        assert_eq!(
            serde_json::from_str::<StreamConsumer>(&json).unwrap(),
            all[0]
        );
        assert!(!serde_json::to_string(&c("b")).unwrap().contains("tags"));
    }

    #[test]
    fn stream_metadata_from_before_consumers_still_reads() {
        struct Uids(u64);
        impl crate::streams::UidSource for Uids {
            fn next_uid(&mut self) -> u64 {
                self.0 += 1;
                self.0
            }
        }
        let meta = crate::streams::StreamMeta::new("s".into(), 1, 2, 1_000, &mut Uids(1));
        // As a database written before consumers existed holds it (the writer stores JSON).
        let json = serde_json::to_string(&meta).unwrap();
        let old_json = json.replace(",\"consumers\":[]", "");
        assert_ne!(json, old_json);
        let old: crate::streams::StreamMeta = serde_json::from_str(&old_json).unwrap();
        assert!(old.consumers.is_empty());
        assert_eq!(old.shards.len(), 2);
    }

    #[test]
    fn arn_time_is_seconds_and_names_follow_the_pattern() {
        assert_eq!(c("a").created_s(), 1_700_000_000);
        assert!(is_valid_consumer_name("app_1.a-b"));
        assert!(!is_valid_consumer_name(""));
        assert!(!is_valid_consumer_name("a:b"));
        assert!(!is_valid_consumer_name(&"a".repeat(129)));
    }
}
