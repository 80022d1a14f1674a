//! What a delivery stream is made of, as the config file (`[[delivery_streams]]`) and the
//! Firehose API (CreateDeliveryStream) describe it. `validate` checks a file into these types
//! (the raw serde structs of `[[delivery_streams]]` and `[delivery]` live there); the rest of
//! the delivery part only reads them. They serialize to JSON so that delivery streams
//! created through the API are kept in the stream database across restarts.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub(crate) mod fields;
pub(crate) mod validate;

pub use super::destinations::directory::config::DirectoryConfig;
pub use super::destinations::firehose::config::FirehoseConfig;
pub use super::destinations::http_endpoint::config::HttpEndpointConfig;
pub use super::destinations::kinesis::config::KinesisConfig;
pub use super::destinations::mqtt::config::MqttDestinationConfig;
pub use super::destinations::s3::config::S3Config;
pub use super::destinations::DestinationConfig;
pub(crate) use fields::Fields;
pub use validate::{RawBuffer, RawDelivery, RawDeliveryStream, RawStreamSource};

pub const MIB: u64 = 1024 * 1024;

/// One delivery stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryStreamConfig {
    /// 1–64 characters of `[a-zA-Z0-9_.-]`, as in Firehose.
    pub name: String,
    pub source: SourceConfig,
    pub buffer: BufferHints,
    pub compression: Compression,
    /// 1 (served first) ..= 10, for the shared bandwidth cap.
    pub priority: u8,
    /// Applied in order to every record.
    pub processors: Vec<ProcessorConfig>,
    pub destination: DestinationConfig,
}

impl DeliveryStreamConfig {
    pub const DEFAULT_PRIORITY: u8 = 5;
    pub const PRIORITY_RANGE: std::ops::RangeInclusive<u8> = 1..=10;
}

/// Where a delivery stream's records come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceConfig {
    /// All shards of a stream, from a durable checkpoint per shard.
    Stream {
        stream: String,
        start: StartPosition,
    },
    /// Firehose PutRecord/PutRecordBatch on the API port; records are kept in an internal
    /// stream (see [`direct_put_stream_name`]) until delivered.
    DirectPut,
    /// Camera fragments: cameras whose device file names this delivery stream in
    /// `upload = { destination = .. }` put their video as objects to its `s3` or `directory`
    /// destination through the engine's video source (`sources::video`), with the same
    /// retries, error output and status as records. Only the config file can define one.
    Video,
}

/// Where a new delivery stream (one without checkpoints) starts reading its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartPosition {
    /// The oldest record still kept.
    #[default]
    TrimHorizon,
    /// Only records that arrive after the delivery stream was created.
    Latest,
}

/// The internal stream that holds a direct-put delivery stream's records. `:` is not allowed
/// in Kinesis stream names, so it never collides with a user's stream, and the Kinesis API
/// cannot reach it.
pub fn direct_put_stream_name(delivery_stream: &str) -> String {
    format!("firehose:{delivery_stream}")
}

/// Buffering hints: a batch goes out when it holds `size_bytes`, or when its oldest record
/// has waited `interval_s`, whichever comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BufferHints {
    pub size_bytes: u64,
    pub interval_s: u32,
}

impl BufferHints {
    pub const SIZE_RANGE: std::ops::RangeInclusive<u64> = MIB..=128 * MIB;
    pub const INTERVAL_S_RANGE: std::ops::RangeInclusive<u32> = 0..=900;
}

impl Default for BufferHints {
    fn default() -> Self {
        BufferHints {
            size_bytes: 5 * MIB,
            interval_s: 300,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Zstd,
    /// Snappy's framing format (what Firehose writes for "Snappy").
    Snappy,
}

impl Compression {
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Snappy => "snappy",
        }
    }
}

/// One record processor (`processors = [{ type = ..., ... }]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProcessorConfig {
    /// Keeps a record when the jq expression yields `true` for its JSON data; a record that is
    /// not JSON, or for which the expression fails, goes to the error output
    /// (`processing-failed`).
    Filter { expression: String },
    /// Dynamic partitioning: each key's jq expression picks a value from the record's JSON
    /// data, used by `!{partitionKeyFromQuery:KEY}` in prefixes. A record that is not JSON or
    /// yields no string/number goes to the error output.
    PartitionKeys { keys: BTreeMap<String, String> },
    /// Appends a delimiter (default `"\n"`) to every record.
    AppendDelimiter { delimiter: String },
    /// Wraps every record as JSON: `{"arrivalTimestamp", "partitionKey", "sequenceNumber",
    /// "data"}`; `data` is the record's JSON when it is JSON, else its base64.
    Metadata,
    /// Calls a transformation service with Firehose's Lambda contract.
    HttpTransform {
        url: String,
        /// Records per call, at most.
        max_records: u32,
        /// Seconds to wait for an answer.
        timeout_s: u32,
        /// Retries after a failed call before the records go to the error output.
        retries: u32,
    },
}

impl ProcessorConfig {
    pub const DEFAULT_DELIMITER: &'static str = "\n";
    pub const DEFAULT_TRANSFORM_MAX_RECORDS: u32 = 1000;
    pub const DEFAULT_TRANSFORM_TIMEOUT_S: u32 = 60;
    pub const DEFAULT_TRANSFORM_RETRIES: u32 = 3;
}

/// Where a secret is kept; never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Secret {
    File(PathBuf),
    Env(String),
}

/// AWS credentials for an upstream service. Without `access_key_id` the standard AWS
/// environment variables and the shared credentials file are used.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AwsCredentialsConfig {
    pub access_key_id: Option<String>,
    /// Required with `access_key_id`.
    pub secret: Option<Secret>,
}

/// `[delivery]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeliverySettings {
    /// Bytes per second for all uploads together; 0 = unlimited.
    pub max_bandwidth: u64,
    /// Where records go whose destination is unreachable for good and that have no error
    /// output of their own. `None` = `<data_dir>/dead-letter`; a relative path is relative to
    /// the data directory (both resolved by the caller, which knows the data directory).
    pub dead_letter_dir: Option<PathBuf>,
}

impl DeliverySettings {
    pub const DEFAULT_DEAD_LETTER_DIR: &'static str = "dead-letter";
}
