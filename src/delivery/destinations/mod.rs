//! Destinations: where a delivery stream's batches go. One file per kind, all behind
//! [`Destination`]. A destination turns a [`Batch`] into its upstream's requests (objects,
//! HTTP bodies, PutRecords, MQTT publishes), compresses when its kind does, and says whether
//! the upstream confirmed. It never retries on its own: the delivery runner owns retries,
//! backoff, checkpoints and status, so every destination behaves the same through outages.
//!
//! Each type is a folder: `mod.rs` is the destination, `config.rs` its keys, checks, checked
//! configuration and `build`. [`registry!`] below has one line per type and makes the tagged
//! [`DestinationConfig`] (whose JSON is persisted: variants and fields must not change), the
//! list of types, the dispatch of checks and builds. Adding a type = one folder + one line.
//!
//! The `s3` and `directory` destinations are also [`ObjectStore`]s: single objects under keys
//! the caller chooses (camera video), with the same signing, multipart, atomic writes and
//! error kinds.

pub(crate) mod aws;
pub mod naming;

use std::path::PathBuf;
use std::time::Duration;

use std::collections::BTreeSet;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::batch::{Batch, ErrorBatch};
use super::config::Fields;
use crate::config::check::Check;

/// Declares the destination types: `module: Variant(Config)`, the module's name being the
/// `type` in the config file and in the persisted JSON.
macro_rules! registry {
    ($($module:ident: $variant:ident($config:ident),)*) => {
        $(pub mod $module;)*

        /// A destination's checked configuration, tagged by its `type`.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        pub enum DestinationConfig {
            $($variant($module::config::$config),)*
        }

        /// The `type`s, in the order messages list them.
        pub(crate) const TYPES: &[&str] = &[$(stringify!($module),)*];

        impl DestinationConfig {
            pub fn kind(&self) -> &'static str {
                match self {
                    $(DestinationConfig::$variant(_) => stringify!($module),)*
                }
            }

            /// Where it delivers, without secrets (for status).
            pub fn target(&self) -> String {
                match self {
                    $(DestinationConfig::$variant(c) => $module::config::target(c),)*
                }
            }
        }

        /// The keys a destination of type `kind` supports (none for an unknown type).
        #[cfg(test)]
        pub(crate) fn field_names(kind: &str) -> Vec<&'static str> {
            match kind {
                $(stringify!($module) => crate::config::field_names::<$module::config::Raw>(),)*
                _ => Vec::new(),
            }
        }

        /// Checks the keys of a destination of type `kind` (one of [`TYPES`]).
        pub(crate) fn validate(
            kind: &str,
            check: &mut Check,
            f: &mut Fields,
            what: &str,
            context: &DestinationCheck<'_>,
        ) -> Option<DestinationConfig> {
            match kind {
                $(stringify!($module) => {
                    $module::config::validate(check, f, what, context).map(DestinationConfig::$variant)
                })*
                _ => None,
            }
        }

        /// Builds the destination a configuration describes.
        pub async fn build(
            config: &DestinationConfig,
            context: &DestinationContext,
        ) -> Result<Box<dyn Destination>, BuildError> {
            match config {
                $(DestinationConfig::$variant(c) => $module::config::build(c, context).await,)*
            }
        }
    };
}

registry! {
    s3: S3(S3Config),
    http_endpoint: HttpEndpoint(HttpEndpointConfig),
    kinesis: Kinesis(KinesisConfig),
    firehose: Firehose(FirehoseConfig),
    mqtt: Mqtt(MqttDestinationConfig),
    directory: Directory(DirectoryConfig),
    file: File(FileConfig),
}

/// What a destination's checks need to know of its delivery stream.
pub(crate) struct DestinationCheck<'a> {
    /// The delivery stream's name.
    pub name: &'a str,
    /// The keys the `partition_keys` processor sets (for `!{partitionKeyFromQuery:KEY}`).
    pub partition_keys: &'a BTreeSet<String>,
}

/// Why a delivery attempt failed; the runner decides what happens next from the kind.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DeliveryError {
    /// No answer: connection refused or reset, DNS, TLS handshake, broker down. An outage:
    /// retried with backoff for as long as it lasts (the shard log is the buffer).
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The upstream answered with an error worth retrying (5xx, throttling, a wrong request
    /// id, no answer in time). Retried with backoff within the destination's retry duration.
    #[error("{0}")]
    Retryable(String),
    /// The upstream refused the batch for good (HTTP 413, a record too large): the batch goes
    /// to the error output at once.
    #[error("{0}")]
    Permanent(String),
    /// Some records were confirmed, these (indices into `batch.records`) were not; only they
    /// are retried.
    #[error("{message} ({} records not confirmed)", failed.len())]
    Partial { failed: Vec<usize>, message: String },
}

/// Most a destination takes in one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Data bytes (after processing, before compression).
    pub max_bytes: u64,
    pub max_records: usize,
}

/// What destinations share with the gateway.
#[derive(Debug, Clone)]
pub struct DestinationContext {
    /// The delivery stream's name.
    pub delivery_stream: String,
    /// The delivery stream's ARN (`arn:aws:firehose:REGION:ACCOUNT:deliverystream/NAME`),
    /// sent as `X-Amz-Firehose-Source-Arn`.
    pub source_arn: String,
    /// The gateway's data directory; relative `directory.path` values are under it.
    pub data_dir: PathBuf,
    /// One HTTP client for all destinations (connection pools, TLS roots).
    pub http: reqwest::Client,
}

#[async_trait]
pub trait Destination: Send + Sync {
    /// `s3`, `http_endpoint`, ... (for logs and status).
    fn kind(&self) -> &'static str;

    /// Where it delivers, for status and logs, without secrets
    /// (`s3://bucket/prefix`, the URL, `kinesis:stream`).
    fn describe(&self) -> String;

    fn limits(&self) -> BatchLimits;

    /// How long a batch is retried while the upstream answers with errors before it goes to
    /// the error output; `None` = until it succeeds.
    fn retry_duration(&self) -> Option<Duration> {
        None
    }

    /// False for destinations that write locally (a directory): the shared bandwidth cap is
    /// for the network link and does not apply to them.
    fn uses_network(&self) -> bool {
        true
    }

    /// The error output type for records this destination gave up on.
    fn failure_type(&self) -> super::batch::ErrorOutputType;

    /// Delivers the batch; `Ok` only once the upstream confirmed all of it.
    async fn deliver(&self, batch: &Batch) -> Result<(), DeliveryError>;

    /// Writes failed records to this destination's error output (S3's error prefix, a
    /// directory's error folder). `Ok(false)` when this kind has no error output of its own:
    /// the runner writes to the local dead-letter directory instead.
    async fn deliver_errors(&self, errors: &ErrorBatch) -> Result<bool, DeliveryError> {
        let _ = errors;
        Ok(false)
    }

    /// Called once when the delivery stream stops (close connections cleanly).
    async fn close(&self) {}
}

/// A destination that takes single objects under keys its user chooses.
#[async_trait]
pub trait ObjectStore: Destination {
    /// The configured prefix; keys are usually made of it, rendered for the object's time.
    fn prefix(&self) -> &naming::Prefix;

    /// Puts `body` under `key` (after the root or bucket; the prefix is not added). `Ok` only
    /// once the upstream confirmed; errors are classified as for [`Destination::deliver`].
    async fn put_object(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<(), DeliveryError>;
}

/// Builds the object store a configuration describes (`s3` or `directory`). Without a
/// configured prefix the prefix is empty (not Firehose's date folders: callers name their
/// objects with dates of their own).
pub fn object_store(
    config: &DestinationConfig,
    context: &DestinationContext,
) -> Result<Box<dyn ObjectStore>, BuildError> {
    let store: Box<dyn ObjectStore> = match config {
        DestinationConfig::S3(c) => {
            let mut c = c.clone();
            c.prefix.get_or_insert_with(String::new);
            Box::new(s3::S3Destination::new(&c, context)?)
        }
        DestinationConfig::Directory(c) => {
            let mut c = c.clone();
            c.prefix.get_or_insert_with(String::new);
            Box::new(directory::DirectoryDestination::new(&c, context)?)
        }
        other => {
            return Err(BuildError {
                kind: other.kind(),
                message: "cannot store objects: use an s3 or directory destination".into(),
            })
        }
    };
    Ok(store)
}

/// Why a destination could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
#[error("destination {kind}: {message}")]
pub struct BuildError {
    pub kind: &'static str,
    pub message: String,
}
