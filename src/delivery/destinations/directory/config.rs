//! The `directory` destination's configuration: its keys (the raw struct, whose fields are the
//! supported keys), their checks, the checked [`DirectoryConfig`] (persisted as JSON with delivery
//! streams created through the Firehose API: its serde form must not change) and how to
//! build the destination from it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use toml::Value;

use super::super::{BuildError, Destination, DestinationCheck, DestinationContext};
use crate::config::check::Check;
use crate::config::field_names;
use crate::delivery::config::fields::parse_path;
use crate::delivery::config::Fields;

/// The keys of the table, as written; each value is checked by [`validate`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct Raw {
    /// `"directory"`.
    pub r#type: Option<Value>,
    /// Directory; a relative path is under the data directory; required.
    pub path: Option<Value>,
    /// Same templates as the s3 prefix; default `YYYY/MM/dd/HH/`.
    pub prefix: Option<Value>,
    /// Same as the s3 error_prefix.
    pub error_prefix: Option<Value>,
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

pub(crate) fn validate(
    check: &mut Check,
    f: &mut Fields,
    what: &str,
    ctx: &DestinationCheck<'_>,
) -> Option<DirectoryConfig> {
    check.unknown_keys(f, what, &field_names::<Raw>(), None);
    let path = check.required(
        f,
        "path",
        "a directory path",
        &format!(
            "{what} needs a path (a relative one is under the data directory), e.g. \
             \"deliveries\""
        ),
        parse_path,
    );
    check.absolute_directory(&f.key("path"), path.as_ref());
    let (prefix, error_prefix) = check.prefixes(f, ctx.partition_keys);
    Some(DirectoryConfig {
        path: path?,
        prefix: prefix?,
        error_prefix: error_prefix?,
    })
}

/// Where it delivers, without secrets (for status).
pub(crate) fn target(c: &DirectoryConfig) -> String {
    c.path.display().to_string()
}

/// Builds the destination.
pub(crate) async fn build(
    c: &DirectoryConfig,
    context: &DestinationContext,
) -> Result<Box<dyn Destination>, BuildError> {
    Ok(Box::new(super::DirectoryDestination::new(c, context)?))
}
