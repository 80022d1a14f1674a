//! Enhanced fan-out: stream consumers (RegisterStreamConsumer, DeregisterStreamConsumer,
//! DescribeStreamConsumer, ListStreamConsumers) and SubscribeToShard, which pushes records
//! to a consumer over an `application/vnd.amazon.eventstream` answer as they commit.
//!
//! - `consumers`: the four consumer operations and consumer ARNs; consumers are durable
//!   (stored in their stream's metadata through the store's writer, gone with the stream);
//! - `subscribe`: SubscribeToShard's checks and its streaming answer;
//! - `pump`: the task that follows a shard and sends the events of one subscription;
//! - `events`: reading and encoding events, once for all subscribers at the same place;
//! - `registry`: the active subscriptions (one per consumer and shard, bounded in number and
//!   in the memory their events take) and the stop signal of the gateway.
//!
//! Never: block the runtime (reads go to the blocking pool), hold a subscription past its
//! 5 minutes or past the gateway's stop, or skip or repeat a record inside a subscription.

mod consumers;
mod events;
mod pump;
mod registry;
mod subscribe;
#[cfg(test)]
mod tests;
pub mod types;

pub use consumers::{
    check_delete, deregister_stream_consumer, describe_stream_consumer, list_stream_consumers,
    register_stream_consumer,
};
pub use events::{MAX_EVENT_BYTES, MAX_EVENT_RECORDS};
pub use pump::{HEARTBEAT, SUBSCRIPTION_LIFETIME};
pub use registry::{Subscriptions, MAX_SUBSCRIPTIONS};
pub use subscribe::subscribe_to_shard;
