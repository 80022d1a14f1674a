//! RegisterStreamConsumer, DeregisterStreamConsumer, DescribeStreamConsumer and
//! ListStreamConsumers; consumer ARNs as Kinesis forms them.
//!
//! Consumers are stored in their stream's metadata through the store's writer
//! (`AdminOp::RegisterConsumer`/`DeregisterConsumer`): an answer means committed. kinedge
//! has nothing to provision, so a consumer is ACTIVE as soon as it is registered (AWS takes
//! a few seconds in CREATING); RegisterStreamConsumer still answers CREATING, as AWS's does,
//! and DeregisterStreamConsumer removes the consumer at once (AWS shows it DELETING first).

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::types::*;
use crate::api::error::ApiError;
use crate::api::kinesis::tagging::{check_tag_key, check_tag_value, MAX_TAGS_PER_RESOURCE};
use crate::api::kinesis::KinesisState;
use crate::api::protocol::Timestamp;
use crate::storage::{now_ms, AdminOp};
use crate::streams::consumer::{is_valid_consumer_name, MAX_CONSUMER_NAME_CHARS};
use crate::streams::validate::is_valid_stream_name;
use crate::streams::{StreamConsumer, StreamMeta};

/// Longest StreamARN and ConsumerARN (Kinesis's model).
const MAX_ARN_CHARS: usize = 2048;
const STREAM_ARN_PATTERN: &str = "arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+";
const CONSUMER_ARN_PATTERN: &str = "^(arn):aws.*:kinesis:.*:\\d{12}:.*stream\\/[a-zA-Z0-9_.-]+\\/consumer\\/[a-zA-Z0-9_.-]+:[0-9]+";

/// A consumer ARN, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerArn {
    pub stream: String,
    pub consumer: String,
    pub created_s: u64,
}

/// `arn:aws:kinesis:<region>:<account>:stream/<stream>/consumer/<name>:<epoch seconds>`.
pub fn consumer_arn(state: &KinesisState, stream: &str, consumer: &StreamConsumer) -> String {
    format!(
        "{}/consumer/{}:{}",
        state.stream_arn(stream),
        consumer.name,
        consumer.created_s()
    )
}

/// The parts of `arn` (ValidationException when it does not match Kinesis's pattern).
pub fn parse_consumer_arn(arn: &str) -> Result<ConsumerArn, ApiError> {
    let bad = || {
        ApiError::constraint(
            arn.chars().take(200).collect::<String>(),
            "consumerARN",
            &format!("Member must satisfy regular expression pattern: {CONSUMER_ARN_PATTERN}"),
        )
    };
    if arn.is_empty() || arn.chars().count() > MAX_ARN_CHARS {
        return Err(ApiError::constraint(
            format!("{} characters", arn.chars().count()),
            "consumerARN",
            "Member must have length between 1 and 2048",
        ));
    }
    let (head, created) = arn.rsplit_once(':').ok_or_else(bad)?;
    let parts: Vec<&str> = head.splitn(6, ':').collect();
    if parts.len() != 6
        || parts[0] != "arn"
        || !parts[1].starts_with("aws")
        || parts[2] != "kinesis"
        || !is_account(parts[4])
        || created.is_empty()
        || !created.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let resource = parts[5].strip_prefix("stream/").ok_or_else(bad)?;
    let (stream, consumer) = resource.split_once("/consumer/").ok_or_else(bad)?;
    if !is_valid_consumer_name(consumer) || !is_valid_stream_name(stream) {
        return Err(bad());
    }
    Ok(ConsumerArn {
        stream: stream.to_string(),
        consumer: consumer.to_string(),
        created_s: created.parse().map_err(|_| bad())?,
    })
}

fn is_account(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

/// The stream named by a StreamARN member (ValidationException when it is missing or does
/// not match Kinesis's pattern).
fn stream_from_arn(arn: Option<&str>) -> Result<String, ApiError> {
    let arn = arn.ok_or_else(|| ApiError::missing("streamARN"))?;
    let bad = || {
        ApiError::constraint(
            arn.chars().take(200).collect::<String>(),
            "streamARN",
            &format!("Member must satisfy regular expression pattern: {STREAM_ARN_PATTERN}"),
        )
    };
    if arn.is_empty() || arn.chars().count() > MAX_ARN_CHARS {
        return Err(ApiError::constraint(
            format!("{} characters", arn.chars().count()),
            "streamARN",
            "Member must have length between 1 and 2048",
        ));
    }
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() != 6
        || parts[0] != "arn"
        || !parts[1].starts_with("aws")
        || parts[2] != "kinesis"
        || !is_account(parts[4])
    {
        return Err(bad());
    }
    let name = parts[5].strip_prefix("stream/").ok_or_else(bad)?;
    if !is_valid_stream_name(name) {
        return Err(bad());
    }
    Ok(name.to_string())
}

fn check_consumer_name(name: Option<&str>) -> Result<&str, ApiError> {
    let name = name.ok_or_else(|| ApiError::missing("consumerName"))?;
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_CONSUMER_NAME_CHARS {
        return Err(ApiError::constraint(
            name,
            "consumerName",
            "Member must have length between 1 and 128",
        ));
    }
    if !is_valid_consumer_name(name) {
        return Err(ApiError::constraint(
            name,
            "consumerName",
            "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
        ));
    }
    Ok(name)
}

fn committed_stream(state: &KinesisState, name: &str) -> Result<Arc<StreamMeta>, ApiError> {
    state
        .store
        .catalog()
        .stream(name)
        .cloned()
        .ok_or_else(|| state.stream_not_found(name))
}

/// The committed consumer an ARN names, with its stream: ResourceNotFoundException when the
/// stream or the consumer is gone, or the consumer was registered again since (its creation
/// time differs).
pub fn resolve_consumer_arn(
    state: &KinesisState,
    arn: &str,
) -> Result<(Arc<StreamMeta>, StreamConsumer), ApiError> {
    let parts = parse_consumer_arn(arn)?;
    let not_found = || {
        ApiError::not_found(format!(
            "Consumer {arn} under account {} not found.",
            state.account_id
        ))
    };
    let meta = state
        .store
        .catalog()
        .stream(&parts.stream)
        .cloned()
        .ok_or_else(not_found)?;
    let consumer = meta
        .consumers
        .iter()
        .find(|c| c.name == parts.consumer && c.created_s() == parts.created_s)
        .cloned()
        .ok_or_else(not_found)?;
    Ok((meta, consumer))
}

/// The consumer an input names, by ConsumerARN or by StreamARN and ConsumerName.
fn resolve(
    state: &KinesisState,
    input: &ConsumerRefInput,
) -> Result<(Arc<StreamMeta>, StreamConsumer), ApiError> {
    if let Some(arn) = input.consumer_arn.as_deref() {
        return resolve_consumer_arn(state, arn);
    }
    if input.stream_arn.is_none() || input.consumer_name.is_none() {
        return Err(ApiError::invalid(
            "ConsumerARN or both ConsumerName and StreamARN are required for this request.",
        ));
    }
    let stream = stream_from_arn(input.stream_arn.as_deref())?;
    let name = check_consumer_name(input.consumer_name.as_deref())?;
    let meta = committed_stream(state, &stream)?;
    let consumer = meta
        .consumers
        .iter()
        .find(|c| c.name == name)
        .cloned()
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "Consumer {name} under stream {stream} under account {} not found.",
                state.account_id
            ))
        })?;
    Ok((meta, consumer))
}

pub async fn register_stream_consumer(
    state: &KinesisState,
    input: RegisterStreamConsumerInput,
) -> Result<RegisterStreamConsumerOutput, ApiError> {
    let stream = stream_from_arn(input.stream_arn.as_deref())?;
    let name = check_consumer_name(input.consumer_name.as_deref())?.to_string();
    let tags = input.tags.unwrap_or_default();
    for (key, value) in &tags {
        check_tag_key(key)?;
        check_tag_value(key, value)?;
    }
    if tags.len() > MAX_TAGS_PER_RESOURCE {
        return Err(ApiError::invalid(format!(
            "Failed to register consumer {name}: a resource can have at most {} tags; the request has {}.",
            MAX_TAGS_PER_RESOURCE,
            tags.len()
        )));
    }
    committed_stream(state, &stream)?;
    let consumer = StreamConsumer {
        name,
        created_ms: now_ms(),
        tags,
    };
    state
        .store
        .admin(AdminOp::RegisterConsumer {
            stream: stream.clone(),
            consumer: consumer.clone(),
            max: state.max_consumers_per_stream,
        })
        .await
        .map_err(|e| state.store_error(&stream, e))?;
    Ok(RegisterStreamConsumerOutput {
        consumer: ConsumerOut {
            consumer_arn: consumer_arn(state, &stream, &consumer),
            consumer_name: consumer.name,
            consumer_status: "CREATING",
            consumer_creation_timestamp: Timestamp(consumer.created_ms),
        },
    })
}

pub async fn deregister_stream_consumer(
    state: &KinesisState,
    input: ConsumerRefInput,
) -> Result<(), ApiError> {
    let (meta, consumer) = resolve(state, &input)?;
    state
        .store
        .admin(AdminOp::DeregisterConsumer {
            stream: meta.name.clone(),
            consumer: consumer.name,
        })
        .await
        .map_err(|e| state.store_error(&meta.name, e))
}

pub async fn describe_stream_consumer(
    state: &KinesisState,
    input: ConsumerRefInput,
) -> Result<DescribeStreamConsumerOutput, ApiError> {
    let (meta, consumer) = resolve(state, &input)?;
    Ok(DescribeStreamConsumerOutput {
        consumer_description: ConsumerDescriptionOut {
            consumer_arn: consumer_arn(state, &meta.name, &consumer),
            consumer_name: consumer.name,
            consumer_status: "ACTIVE",
            consumer_creation_timestamp: Timestamp(consumer.created_ms),
            stream_arn: state.stream_arn(&meta.name),
        },
    })
}

pub async fn list_stream_consumers(
    state: &KinesisState,
    input: ListStreamConsumersInput,
) -> Result<ListStreamConsumersOutput, ApiError> {
    let stream = stream_from_arn(input.stream_arn.as_deref())?;
    // The model's range (1-10,000) was checked before the operation ran.
    let max = input.max_results.unwrap_or(100).clamp(1, 10_000) as usize;
    let meta = committed_stream(state, &stream)?;
    if let Some(created) = input.stream_creation_timestamp {
        // The stream of that name created then: a re-created stream is another stream.
        if created.0 / 1000 != meta.created_ms / 1000 {
            return Err(state.stream_not_found(&stream));
        }
    }
    let start = match input.next_token.as_deref() {
        None => 0,
        Some(token) => decode_token(token, &meta)?,
    };
    let consumers: Vec<ConsumerOut> = meta
        .consumers
        .iter()
        .skip(start)
        .take(max)
        .map(|c| ConsumerOut {
            consumer_arn: consumer_arn(state, &meta.name, c),
            consumer_name: c.name.clone(),
            consumer_status: "ACTIVE",
            consumer_creation_timestamp: Timestamp(c.created_ms),
        })
        .collect();
    let end = start + consumers.len();
    let next_token =
        (end < meta.consumers.len()).then(|| URL_SAFE_NO_PAD.encode(format!("{}:{end}", meta.uid)));
    Ok(ListStreamConsumersOutput {
        consumers,
        next_token,
    })
}

/// DeleteStream of a stream with consumers needs EnforceConsumerDeletion (as in Kinesis);
/// with it the consumers go with the stream.
pub fn check_delete(
    state: &KinesisState,
    stream: &str,
    enforce_consumer_deletion: Option<bool>,
) -> Result<(), ApiError> {
    let consumers = state
        .store
        .catalog()
        .stream(stream)
        .map_or(0, |m| m.consumers.len());
    if consumers > 0 && enforce_consumer_deletion != Some(true) {
        return Err(ApiError::new(
            crate::api::error::ErrorKind::ResourceInUse,
            format!("Stream {stream} under account {} has {consumers} registered consumers: deregister them, or set EnforceConsumerDeletion to delete them with the stream.", state.account_id),
        ));
    }
    Ok(())
}

/// A ListStreamConsumers token: the stream's uid and the index to go on from.
fn decode_token(token: &str, meta: &StreamMeta) -> Result<usize, ApiError> {
    let invalid = || {
        ApiError::invalid(format!(
            "Invalid NextToken '{}': pass the NextToken of the previous ListStreamConsumers answer for stream {}.",
            token.chars().take(100).collect::<String>(),
            meta.name
        ))
    };
    let text = URL_SAFE_NO_PAD
        .decode(token.as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(invalid)?;
    let (uid, index) = text.split_once(':').ok_or_else(invalid)?;
    if uid.parse::<u64>().ok() != Some(meta.uid) {
        return Err(invalid());
    }
    index.parse().map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_arns_parse() {
        let arn =
            "arn:aws:kinesis:eu-west-1:123456789012:stream/telemetry/consumer/app-1:1700000000";
        assert_eq!(
            parse_consumer_arn(arn).unwrap(),
            ConsumerArn {
                stream: "telemetry".into(),
                consumer: "app-1".into(),
                created_s: 1_700_000_000
            }
        );
        for bad in [
            "",
            "arn:aws:kinesis:eu-west-1:123456789012:stream/telemetry",
            "arn:aws:kinesis:eu-west-1:123456789012:stream/telemetry/consumer/app-1",
            "arn:aws:kinesis:eu-west-1:1234:stream/telemetry/consumer/app-1:1",
            "arn:aws:s3:eu-west-1:123456789012:stream/telemetry/consumer/app-1:1",
            "arn:aws:kinesis:eu-west-1:123456789012:stream/telemetry/consumer/a b:1",
        ] {
            let e = parse_consumer_arn(bad).unwrap_err();
            assert_eq!(e.kind, crate::api::error::ErrorKind::Validation, "{bad}");
        }
    }

    #[test]
    fn stream_arns_are_checked_against_the_model() {
        assert_eq!(
            stream_from_arn(Some("arn:aws:kinesis:r:000000000000:stream/s")).unwrap(),
            "s"
        );
        assert!(stream_from_arn(None).unwrap_err().message.contains("null"));
        let e = stream_from_arn(Some("telemetry")).unwrap_err();
        assert!(e.message.contains("regular expression"), "{}", e.message);
    }
}
