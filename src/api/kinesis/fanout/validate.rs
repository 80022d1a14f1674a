//! The model checks of the enhanced fan-out inputs (members in the service model's order,
//! shapes from `validate::model`), run by the Kinesis front before the operations.

use super::types::*;
use crate::api::kinesis::validate::Presence::{Optional, Required};
use crate::api::kinesis::validate::*;

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
