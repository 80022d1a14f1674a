//! The `kinesis` destination's configuration: its keys (the raw struct, whose fields are the
//! supported keys), their checks, the checked [`KinesisConfig`] (persisted as JSON with delivery
//! streams created through the Firehose API: its serde form must not change) and how to
//! build the destination from it.

use serde::{Deserialize, Serialize};
use toml::Value;

use super::super::{BuildError, Destination, DestinationCheck, DestinationContext};
use crate::config::check::{Check, parse_stream_name};
use crate::config::field_names;
use crate::delivery::config::fields::AWS_SECRET_KEYS;
use crate::delivery::config::{AwsCredentialsConfig, Fields};

/// The keys of the table, as written; each value is checked by [`validate`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct Raw {
    /// `"kinesis"`.
    pub r#type: Option<Value>,
    /// Name of the upstream stream; required.
    pub stream: Option<Value>,
    /// Region of the upstream; required.
    pub region: Option<Value>,
    /// Kinesis-compatible endpoint, `http(s)://host:port`.
    pub endpoint: Option<Value>,
    /// AWS access key id; without it the AWS environment variables and shared credentials file are
    /// used.
    pub access_key_id: Option<Value>,
    /// Environment variable holding the secret access key (with `access_key_id`).
    pub secret_env: Option<Value>,
    /// File holding the secret access key (with `access_key_id`).
    pub secret_file: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KinesisConfig {
    pub stream: String,
    pub region: String,
    pub endpoint: Option<String>,
    pub credentials: AwsCredentialsConfig,
}

pub(crate) fn validate(
    check: &mut Check,
    f: &mut Fields,
    what: &str,
    _ctx: &DestinationCheck<'_>,
) -> Option<KinesisConfig> {
    let refused = check.unknown_keys(f, what, &field_names::<Raw>(), AWS_SECRET_KEYS);
    let stream = check.required(
        f,
        "stream",
        "a stream name",
        &format!("{what} needs the name of the upstream stream"),
        parse_stream_name,
    );
    let region = check.region(f, what);
    let endpoint = check.endpoint(f);
    let credentials = check.aws_credentials(f, refused);
    Some(KinesisConfig {
        stream: stream?,
        region: region?,
        endpoint: endpoint?,
        credentials: credentials?,
    })
}

/// Where it delivers, without secrets (for status).
pub(crate) fn target(c: &KinesisConfig) -> String {
    format!("kinesis:{}", c.stream)
}

/// Builds the destination.
pub(crate) async fn build(
    c: &KinesisConfig,
    context: &DestinationContext,
) -> Result<Box<dyn Destination>, BuildError> {
    Ok(Box::new(super::KinesisDestination::new(c, context)?))
}
