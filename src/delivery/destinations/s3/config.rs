//! The `s3` destination's configuration: its keys (the raw struct, whose fields are the
//! supported keys), their checks, the checked [`S3Config`] (persisted as JSON with delivery
//! streams created through the Firehose API: its serde form must not change) and how to
//! build the destination from it.

use serde::{Deserialize, Serialize};
use toml::Value;

use super::super::{BuildError, Destination, DestinationCheck, DestinationContext};
use crate::config::check::Check;
use crate::config::field_names;
use crate::delivery::config::fields::AWS_SECRET_KEYS;
use crate::delivery::config::{AwsCredentialsConfig, Fields};

/// The keys of the table, as written; each value is checked by [`validate`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct Raw {
    /// `"s3"`.
    pub r#type: Option<Value>,
    /// Bucket name; required.
    pub bucket: Option<Value>,
    /// Region of the bucket; required.
    pub region: Option<Value>,
    /// Object key prefix template; default `YYYY/MM/dd/HH/` (UTC).
    pub prefix: Option<Value>,
    /// Error output prefix; must contain `!{firehose:error-output-type}`.
    pub error_prefix: Option<Value>,
    /// S3-compatible endpoint, `http(s)://host:port`.
    pub endpoint: Option<Value>,
    /// AWS access key id; without it the AWS environment variables and shared credentials file are
    /// used.
    pub access_key_id: Option<Value>,
    /// Environment variable holding the secret access key (with `access_key_id`).
    pub secret_env: Option<Value>,
    /// File holding the secret access key (with `access_key_id`).
    pub secret_file: Option<Value>,
    /// Path-style requests (MinIO); default false.
    pub force_path_style: Option<Value>,
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

pub(crate) fn validate(
    check: &mut Check,
    f: &mut Fields,
    what: &str,
    ctx: &DestinationCheck<'_>,
) -> Option<S3Config> {
    let refused = check.unknown_keys(f, what, &field_names::<Raw>(), AWS_SECRET_KEYS);
    let bucket = check.required(
        f,
        "bucket",
        "a bucket name",
        &format!("{what} needs a bucket"),
        parse_bucket,
    );
    let region = check.region(f, what);
    let (prefix, error_prefix) = check.prefixes(f, ctx.partition_keys);
    let endpoint = check.endpoint(f);
    let credentials = check.aws_credentials(f, refused);
    let force_path_style = check.boolean(&f.key("force_path_style"), f.take("force_path_style"));
    Some(S3Config {
        bucket: bucket?,
        region: region?,
        prefix: prefix?,
        error_prefix: error_prefix?,
        endpoint: endpoint?,
        credentials: credentials?,
        force_path_style: force_path_style.unwrap_or(false),
    })
}

/// Where it delivers, without secrets (for status).
pub(crate) fn target(c: &S3Config) -> String {
    format!("s3://{}/{}", c.bucket, c.prefix.as_deref().unwrap_or(""))
}

/// Builds the destination.
pub(crate) async fn build(
    c: &S3Config,
    context: &DestinationContext,
) -> Result<Box<dyn Destination>, BuildError> {
    Ok(Box::new(super::S3Destination::new(c, context)?))
}

/// An S3 bucket name: 3..=63 of `[a-z0-9.-]`, starting and ending with a letter or digit.
fn parse_bucket(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let edge = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let valid = (3..=63).contains(&s.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-'))
        && edge(bytes.first())
        && edge(bytes.last())
        && !s.contains("..");
    if valid {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "`{s}` is not a valid bucket name: use 3..=63 characters from a-z, 0-9, `.`, `-`, \
             starting and ending with a letter or digit"
        ))
    }
}
