//! The `http_endpoint` destination's configuration: its keys (the raw struct, whose fields are the
//! supported keys), their checks, the checked [`HttpEndpointConfig`] (persisted as JSON with delivery
//! streams created through the Firehose API: its serde form must not change) and how to
//! build the destination from it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use toml::Value;

use super::super::{BuildError, Destination, DestinationCheck, DestinationContext};
use crate::config::check::Check;
use crate::config::field_names;
use crate::delivery::config::fields::parse_url;
use crate::delivery::config::{Fields, Secret, MIB};

/// Firehose's limits for HTTP endpoint common attributes.
const MAX_COMMON_ATTRIBUTES: usize = 50;
const MAX_ATTRIBUTE_NAME: usize = 256;
const MAX_ATTRIBUTE_VALUE: usize = 1024;

/// The keys of the table, as written; each value is checked by [`validate`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct Raw {
    /// `"http_endpoint"`.
    pub r#type: Option<Value>,
    /// Endpoint URL, `http(s)://`; required.
    pub url: Option<Value>,
    /// Environment variable holding the access key (`X-Amz-Firehose-Access-Key`).
    pub access_key_env: Option<Value>,
    /// File holding the access key.
    pub access_key_file: Option<Value>,
    /// Table of attributes sent with every request.
    pub common_attributes: Option<Value>,
    /// Seconds a batch is retried while the endpoint answers with errors (0-7200); default 300.
    pub retry_duration_s: Option<Value>,
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

pub(crate) fn validate(
    check: &mut Check,
    f: &mut Fields,
    what: &str,
    _ctx: &DestinationCheck<'_>,
) -> Option<HttpEndpointConfig> {
    check.unknown_keys(
        f,
        what,
        &field_names::<Raw>(),
        Some(("access_key_file", "access_key_env")),
    );
    let url = check.required(
        f,
        "url",
        "a URL",
        &format!(
            "{what} needs the endpoint's url, e.g. \"https://receiver.example.com/firehose\""
        ),
        |s| {
            parse_url(
                s,
                &["http", "https"],
                "https://receiver.example.com/firehose",
            )
        },
    );
    let access_key = check.secret(f, "access_key_file", "access_key_env");
    let common_attributes =
        common_attributes(check, &f.key("common_attributes"), f.take("common_attributes"));
    let retry_duration_s = check.integer(
        &f.key("retry_duration_s"),
        f.take("retry_duration_s"),
        0..=HttpEndpointConfig::MAX_RETRY_DURATION_S,
        " seconds",
    );
    Some(HttpEndpointConfig {
        url: url?,
        access_key: access_key.ok()?.map(|(secret, _)| secret),
        common_attributes: common_attributes?,
        retry_duration_s: retry_duration_s
            .unwrap_or(HttpEndpointConfig::DEFAULT_RETRY_DURATION_S),
    })
}

/// Where it delivers, without secrets (for status).
pub(crate) fn target(c: &HttpEndpointConfig) -> String {
    c.url.clone()
}

/// Builds the destination.
pub(crate) async fn build(
    c: &HttpEndpointConfig,
    context: &DestinationContext,
) -> Result<Box<dyn Destination>, BuildError> {
    Ok(Box::new(super::HttpEndpointDestination::new(c, context)?))
}

/// `common_attributes = { name = "value" }` of an HTTP endpoint; `None` when wrong.
fn common_attributes(
    check: &mut Check,
    key: &str,
    value: Option<Value>,
) -> Option<BTreeMap<String, String>> {
    let mut attributes = BTreeMap::new();
    let Some(value) = value else {
        return Some(attributes);
    };
    let mut table = check.table(key, value, "a table like { site = \"greenhouse-2\" }")?;
    let before = check.problems.len();
    if table.map.len() > MAX_COMMON_ATTRIBUTES {
        check.problem(
            key,
            format!(
                "{} attributes are too many: at most {MAX_COMMON_ATTRIBUTES}",
                table.map.len()
            ),
        );
    }
    for (name, value) in std::mem::take(&mut table.map) {
        let key = table.key(&name);
        if name.is_empty() || name.len() > MAX_ATTRIBUTE_NAME {
            check.problem(
                &key,
                format!("attribute names must be 1..={MAX_ATTRIBUTE_NAME} bytes long"),
            );
            continue;
        }
        let value = check.string(&key, Some(value), "a string", |s| {
            if s.len() > MAX_ATTRIBUTE_VALUE {
                Err(format!(
                    "is {} bytes long: at most {MAX_ATTRIBUTE_VALUE}",
                    s.len()
                ))
            } else {
                Ok(s.to_owned())
            }
        });
        if let Some(value) = value {
            attributes.insert(name, value);
        }
    }
    (check.problems.len() == before).then_some(attributes)
}
