//! Per operation, its input members in the service model's order with what each must satisfy
//! (the shapes are in `model`).

use super::super::capacity::UpdateStreamModeInput;
use super::super::fanout::types::*;
use super::super::monitoring::EnhancedMonitoringInput;
use super::super::policy::{PutResourcePolicyInput, ResourcePolicyInput};
use super::super::tagging::{ListTagsForResourceInput, TagResourceInput, UntagResourceInput};
use super::super::types::*;
use super::model::*;
use super::Presence::{Optional, Required};
use super::{Presence, Validate, Violations};

/// StreamName is optional in the model since StreamARN was added, but one of the two must
/// name the stream: without both, AWS's answer names the missing StreamName.
fn stream_name_presence(stream_arn: &Option<String>) -> Presence {
    if stream_arn.is_some() {
        Optional
    } else {
        Required
    }
}

/// StreamName and StreamARN of an input that names a stream by either.
fn stream_name(v: &mut Violations, name: &Option<String>, arn: &Option<String>) {
    v.string(
        "StreamName",
        name.as_deref(),
        &STREAM_NAME,
        stream_name_presence(arn),
    );
}

fn stream_arn(v: &mut Violations, arn: &Option<String>) {
    v.string("StreamARN", arn.as_deref(), &STREAM_ARN, Optional);
}

impl Validate for StreamModeDetails {
    fn members(&self, v: &mut Violations) {
        v.string(
            "StreamMode",
            self.stream_mode.as_deref(),
            &STREAM_MODE,
            Required,
        );
    }
}

impl Validate for CreateStreamInput {
    fn members(&self, v: &mut Violations) {
        v.string(
            "StreamName",
            self.stream_name.as_deref(),
            &STREAM_NAME,
            Required,
        );
        v.int("ShardCount", self.shard_count, &POSITIVE, Optional);
        v.structure(
            "StreamModeDetails",
            self.stream_mode_details.as_ref(),
            Optional,
        );
        v.string_map(
            "Tags",
            self.tags.as_ref(),
            &TAG_MAP,
            &TAG_KEY,
            &TAG_VALUE,
            Optional,
        );
    }
}

/// DeleteStream and DescribeStreamSummary (same members but EnforceConsumerDeletion).
impl Validate for DeleteStreamInput {
    fn members(&self, v: &mut Violations) {
        stream_name(v, &self.stream_name, &self.stream_arn);
        v.other(
            "EnforceConsumerDeletion",
            self.enforce_consumer_deletion,
            Optional,
        );
        stream_arn(v, &self.stream_arn);
    }
}

impl Validate for DescribeStreamInput {
    fn members(&self, v: &mut Violations) {
        stream_name(v, &self.stream_name, &self.stream_arn);
        v.int("Limit", self.limit, &LIMIT_10000, Optional);
        v.string(
            "ExclusiveStartShardId",
            self.exclusive_start_shard_id.as_deref(),
            &SHARD_ID,
            Optional,
        );
        stream_arn(v, &self.stream_arn);
    }
}

impl Validate for ListStreamsInput {
    fn members(&self, v: &mut Violations) {
        v.int("Limit", self.limit, &LIMIT_10000, Optional);
        v.string(
            "ExclusiveStartStreamName",
            self.exclusive_start_stream_name.as_deref(),
            &STREAM_NAME,
            Optional,
        );
        v.string(
            "NextToken",
            self.next_token.as_deref(),
            &NEXT_TOKEN,
            Optional,
        );
    }
}

impl Validate for ShardFilterIn {
    fn members(&self, v: &mut Violations) {
        v.string(
            "Type",
            self.filter_type.as_deref(),
            &SHARD_FILTER_TYPE,
            Required,
        );
        v.string("ShardId", self.shard_id.as_deref(), &SHARD_ID, Optional);
        v.other("Timestamp", self.timestamp, Optional);
    }
}

/// ListShards names its stream by StreamName, StreamARN or NextToken: a missing one is an
/// InvalidArgumentException of the operation, not a model failure.
impl Validate for ListShardsInput {
    fn members(&self, v: &mut Violations) {
        v.string(
            "StreamName",
            self.stream_name.as_deref(),
            &STREAM_NAME,
            Optional,
        );
        v.string(
            "NextToken",
            self.next_token.as_deref(),
            &NEXT_TOKEN,
            Optional,
        );
        v.string(
            "ExclusiveStartShardId",
            self.exclusive_start_shard_id.as_deref(),
            &SHARD_ID,
            Optional,
        );
        v.int("MaxResults", self.max_results, &LIMIT_10000, Optional);
        v.other(
            "StreamCreationTimestamp",
            self.stream_creation_timestamp,
            Optional,
        );
        v.structure("ShardFilter", self.shard_filter.as_ref(), Optional);
        stream_arn(v, &self.stream_arn);
    }
}

impl Validate for PutRecordInput {
    fn members(&self, v: &mut Violations) {
        stream_name(v, &self.stream_name, &self.stream_arn);
        v.blob(
            "Data",
            self.data.as_ref().map(|d| d.0.len()),
            &DATA,
            Required,
        );
        v.string(
            "PartitionKey",
            self.partition_key.as_deref(),
            &PARTITION_KEY,
            Required,
        );
        v.string(
            "ExplicitHashKey",
            self.explicit_hash_key.as_deref(),
            &HASH_KEY,
            Optional,
        );
        v.string(
            "SequenceNumberForOrdering",
            self.sequence_number_for_ordering.as_deref(),
            &SEQUENCE_NUMBER,
            Optional,
        );
        stream_arn(v, &self.stream_arn);
    }
}

impl Validate for PutRecordsEntry {
    fn members(&self, v: &mut Violations) {
        v.blob(
            "Data",
            self.data.as_ref().map(|d| d.0.len()),
            &DATA,
            Required,
        );
        v.string(
            "ExplicitHashKey",
            self.explicit_hash_key.as_deref(),
            &HASH_KEY,
            Optional,
        );
        v.string(
            "PartitionKey",
            self.partition_key.as_deref(),
            &PARTITION_KEY,
            Required,
        );
    }
}

impl Validate for PutRecordsInput {
    fn members(&self, v: &mut Violations) {
        v.list(
            "Records",
            self.records.as_deref(),
            &PUT_RECORDS_LIST,
            PUT_RECORDS_ENTRY_SHOWN,
            Required,
        );
        stream_name(v, &self.stream_name, &self.stream_arn);
        stream_arn(v, &self.stream_arn);
    }
}

impl Validate for GetShardIteratorInput {
    fn members(&self, v: &mut Violations) {
        stream_name(v, &self.stream_name, &self.stream_arn);
        v.string("ShardId", self.shard_id.as_deref(), &SHARD_ID, Required);
        v.string(
            "ShardIteratorType",
            self.shard_iterator_type.as_deref(),
            &SHARD_ITERATOR_TYPE,
            Required,
        );
        v.string(
            "StartingSequenceNumber",
            self.starting_sequence_number.as_deref(),
            &SEQUENCE_NUMBER,
            Optional,
        );
        v.other("Timestamp", self.timestamp, Optional);
        stream_arn(v, &self.stream_arn);
    }
}

impl Validate for GetRecordsInput {
    fn members(&self, v: &mut Violations) {
        v.string(
            "ShardIterator",
            self.shard_iterator.as_deref(),
            &SHARD_ITERATOR,
            Required,
        );
        v.int("Limit", self.limit, &LIMIT_10000, Optional);
        stream_arn(v, &self.stream_arn);
    }
}

impl Validate for SplitShardInput {
    fn members(&self, v: &mut Violations) {
        stream_name(v, &self.stream_name, &self.stream_arn);
        v.string(
            "ShardToSplit",
            self.shard_to_split.as_deref(),
            &SHARD_ID,
            Required,
        );
        v.string(
            "NewStartingHashKey",
            self.new_starting_hash_key.as_deref(),
            &HASH_KEY,
            Required,
        );
        stream_arn(v, &self.stream_arn);
    }
}

impl Validate for MergeShardsInput {
    fn members(&self, v: &mut Violations) {
        stream_name(v, &self.stream_name, &self.stream_arn);
        v.string(
            "ShardToMerge",
            self.shard_to_merge.as_deref(),
            &SHARD_ID,
            Required,
        );
        v.string(
            "AdjacentShardToMerge",
            self.adjacent_shard_to_merge.as_deref(),
            &SHARD_ID,
            Required,
        );
        stream_arn(v, &self.stream_arn);
    }
}

impl Validate for UpdateShardCountInput {
    fn members(&self, v: &mut Violations) {
        stream_name(v, &self.stream_name, &self.stream_arn);
        v.int(
            "TargetShardCount",
            self.target_shard_count,
            &POSITIVE,
            Required,
        );
        v.string(
            "ScalingType",
            self.scaling_type.as_deref(),
            &SCALING_TYPE,
            Required,
        );
        stream_arn(v, &self.stream_arn);
    }
}

/// Increase- and DecreaseStreamRetentionPeriod.
impl Validate for RetentionInput {
    fn members(&self, v: &mut Violations) {
        stream_name(v, &self.stream_name, &self.stream_arn);
        v.int(
            "RetentionPeriodHours",
            self.retention_period_hours,
            &RETENTION_HOURS,
            Required,
        );
        stream_arn(v, &self.stream_arn);
    }
}

impl Validate for AddTagsInput {
    fn members(&self, v: &mut Violations) {
        stream_name(v, &self.stream_name, &self.stream_arn);
        v.string_map(
            "Tags",
            self.tags.as_ref(),
            &ADD_TAGS_MAP,
            &TAG_KEY,
            &TAG_VALUE,
            Required,
        );
        stream_arn(v, &self.stream_arn);
    }
}

impl Validate for ListTagsInput {
    fn members(&self, v: &mut Violations) {
        stream_name(v, &self.stream_name, &self.stream_arn);
        v.string(
            "ExclusiveStartTagKey",
            self.exclusive_start_tag_key.as_deref(),
            &TAG_KEY,
            Optional,
        );
        v.int("Limit", self.limit, &LIST_TAGS_LIMIT, Optional);
        stream_arn(v, &self.stream_arn);
    }
}

impl Validate for RemoveTagsInput {
    fn members(&self, v: &mut Violations) {
        stream_name(v, &self.stream_name, &self.stream_arn);
        v.string_list(
            "TagKeys",
            self.tag_keys.as_deref(),
            &TAG_KEY_LIST,
            &TAG_KEY,
            Required,
        );
        stream_arn(v, &self.stream_arn);
    }
}

impl Validate for TagResourceInput {
    fn members(&self, v: &mut Violations) {
        v.string_map(
            "Tags",
            self.tags.as_ref(),
            &TAG_MAP,
            &TAG_KEY,
            &TAG_VALUE,
            Required,
        );
        resource_arn(v, &self.resource_arn);
    }
}

impl Validate for UntagResourceInput {
    fn members(&self, v: &mut Violations) {
        v.string_list(
            "TagKeys",
            self.tag_keys.as_deref(),
            &TAG_KEY_LIST,
            &TAG_KEY,
            Required,
        );
        resource_arn(v, &self.resource_arn);
    }
}

impl Validate for ListTagsForResourceInput {
    fn members(&self, v: &mut Violations) {
        resource_arn(v, &self.resource_arn);
    }
}

impl Validate for UpdateStreamModeInput {
    fn members(&self, v: &mut Violations) {
        v.string(
            "StreamARN",
            self.stream_arn.as_deref(),
            &STREAM_ARN,
            Required,
        );
        v.structure(
            "StreamModeDetails",
            self.stream_mode_details.as_ref(),
            Required,
        );
    }
}

/// EnableEnhancedMonitoring and DisableEnhancedMonitoring.
impl Validate for EnhancedMonitoringInput {
    fn members(&self, v: &mut Violations) {
        stream_name(v, &self.stream_name, &self.stream_arn);
        v.string_list(
            "ShardLevelMetrics",
            self.shard_level_metrics.as_deref(),
            &METRICS_LIST,
            &METRICS_NAME,
            Required,
        );
        stream_arn(v, &self.stream_arn);
    }
}

impl Validate for PutResourcePolicyInput {
    fn members(&self, v: &mut Violations) {
        resource_arn(v, &self.resource_arn);
        v.string("Policy", self.policy.as_deref(), &POLICY, Required);
    }
}

/// GetResourcePolicy and DeleteResourcePolicy.
impl Validate for ResourcePolicyInput {
    fn members(&self, v: &mut Violations) {
        resource_arn(v, &self.resource_arn);
    }
}

/// StartStreamEncryption and StopStreamEncryption.
impl Validate for super::super::encryption::StreamEncryptionInput {
    fn members(&self, v: &mut Violations) {
        stream_name(v, &self.stream_name, &self.stream_arn);
        v.string(
            "EncryptionType",
            self.encryption_type.as_deref(),
            &ENCRYPTION_TYPE,
            Required,
        );
        v.string("KeyId", self.key_id.as_deref(), &KEY_ID, Required);
        stream_arn(v, &self.stream_arn);
    }
}

fn resource_arn(v: &mut Violations, arn: &Option<String>) {
    v.string("ResourceARN", arn.as_deref(), &RESOURCE_ARN, Required);
}

// Enhanced fan-out.

impl Validate for RegisterStreamConsumerInput {
    fn members(&self, v: &mut Violations) {
        v.string(
            "StreamARN",
            self.stream_arn.as_deref(),
            &STREAM_ARN,
            Required,
        );
        v.string(
            "ConsumerName",
            self.consumer_name.as_deref(),
            &CONSUMER_NAME,
            Required,
        );
        v.string_map(
            "Tags",
            self.tags.as_ref(),
            &TAG_MAP,
            &TAG_KEY,
            &TAG_VALUE,
            Optional,
        );
    }
}

/// DeregisterStreamConsumer and DescribeStreamConsumer: every member optional in the model
/// (which combination names the consumer is the operation's check).
impl Validate for ConsumerRefInput {
    fn members(&self, v: &mut Violations) {
        v.string(
            "StreamARN",
            self.stream_arn.as_deref(),
            &STREAM_ARN,
            Optional,
        );
        v.string(
            "ConsumerName",
            self.consumer_name.as_deref(),
            &CONSUMER_NAME,
            Optional,
        );
        v.string(
            "ConsumerARN",
            self.consumer_arn.as_deref(),
            &CONSUMER_ARN,
            Optional,
        );
    }
}

impl Validate for ListStreamConsumersInput {
    fn members(&self, v: &mut Violations) {
        v.string(
            "StreamARN",
            self.stream_arn.as_deref(),
            &STREAM_ARN,
            Required,
        );
        v.string(
            "NextToken",
            self.next_token.as_deref(),
            &NEXT_TOKEN,
            Optional,
        );
        v.int("MaxResults", self.max_results, &LIMIT_10000, Optional);
        v.other(
            "StreamCreationTimestamp",
            self.stream_creation_timestamp,
            Optional,
        );
    }
}

impl Validate for StartingPositionIn {
    fn members(&self, v: &mut Violations) {
        v.string("Type", self.kind.as_deref(), &SHARD_ITERATOR_TYPE, Required);
        v.string(
            "SequenceNumber",
            self.sequence_number.as_deref(),
            &SEQUENCE_NUMBER,
            Optional,
        );
        v.other("Timestamp", self.timestamp, Optional);
    }
}

impl Validate for SubscribeToShardInput {
    fn members(&self, v: &mut Violations) {
        v.string(
            "ConsumerARN",
            self.consumer_arn.as_deref(),
            &CONSUMER_ARN,
            Required,
        );
        v.string("ShardId", self.shard_id.as_deref(), &SHARD_ID, Required);
        v.structure(
            "StartingPosition",
            self.starting_position.as_ref(),
            Required,
        );
    }
}
