//! What a delivery stream is made of, as the config file (`[[delivery_streams]]`) and the
//! Firehose API (CreateDeliveryStream) describe it. `validate` checks a file into these types
//! (the raw serde structs of `[[delivery_streams]]` and `[delivery]` live there); the rest of
//! the delivery part only reads them. They serialize to JSON so that delivery streams
//! created through the API are kept in the stream database across restarts.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

mod validate;

pub use validate::{RawDelivery, RawDeliveryStream};

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
    /// destination (`crate::video::upload`). No record runner reads it; only the config file
    /// can define one.
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DestinationConfig {
    S3(S3Config),
    HttpEndpoint(HttpEndpointConfig),
    Kinesis(KinesisConfig),
    Firehose(FirehoseConfig),
    Mqtt(MqttDestinationConfig),
    Directory(DirectoryConfig),
}

impl DestinationConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            DestinationConfig::S3(_) => "s3",
            DestinationConfig::HttpEndpoint(_) => "http_endpoint",
            DestinationConfig::Kinesis(_) => "kinesis",
            DestinationConfig::Firehose(_) => "firehose",
            DestinationConfig::Mqtt(_) => "mqtt",
            DestinationConfig::Directory(_) => "directory",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Config {
    pub bucket: String,
    pub region: String,
    /// Firehose prefix template; `None` = `YYYY/MM/dd/HH/` (UTC).
    pub prefix: Option<String>,
    /// Must contain `!{firehose:error-output-type}`; `None` = Firehose's default
    /// (`!{firehose:error-output-type}/YYYY/MM/dd/HH/`).
    pub error_prefix: Option<String>,
    /// S3-compatible stores (MinIO, moto, ...): `http(s)://host:port`.
    pub endpoint: Option<String>,
    pub credentials: AwsCredentialsConfig,
    pub force_path_style: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpEndpointConfig {
    pub url: String,
    /// Sent as `X-Amz-Firehose-Access-Key`.
    pub access_key: Option<Secret>,
    /// Sent as `X-Amz-Firehose-Common-Attributes`.
    pub common_attributes: BTreeMap<String, String>,
    /// How long a batch is retried while the endpoint answers with errors (0–7200 s).
    pub retry_duration_s: u32,
}

impl HttpEndpointConfig {
    pub const DEFAULT_RETRY_DURATION_S: u32 = 300;
    pub const MAX_RETRY_DURATION_S: u32 = 7200;
    /// HTTP endpoints take at most 64 MiB per request.
    pub const MAX_BUFFER_BYTES: u64 = 64 * MIB;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KinesisConfig {
    pub stream: String,
    pub region: String,
    pub endpoint: Option<String>,
    pub credentials: AwsCredentialsConfig,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirehoseConfig {
    pub delivery_stream: String,
    pub region: String,
    pub endpoint: Option<String>,
    pub credentials: AwsCredentialsConfig,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MqttDestinationConfig {
    /// `mqtt://host:1883` or `mqtts://host:8883`.
    pub url: String,
    /// Template: `{stream}` (delivery stream), `{partition_key}` and text.
    pub topic: String,
    pub client_id: String,
    /// PEM CA bundle for `mqtts://` (else the system roots).
    pub ca: Option<PathBuf>,
    /// PEM client certificate and key (AWS IoT Core), both or neither.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryConfig {
    /// Relative paths are relative to the data directory.
    pub path: PathBuf,
    /// Same templates as `s3.prefix`; `None` = `YYYY/MM/dd/HH/`.
    pub prefix: Option<String>,
    /// Same as `s3.error_prefix`.
    pub error_prefix: Option<String>,
}
