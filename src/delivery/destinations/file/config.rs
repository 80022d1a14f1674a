//! The `file` destination's configuration: its keys (the raw struct, whose fields are the
//! supported keys), their checks, the checked [`FileConfig`] (persisted as JSON with the
//! delivery stream: its serde form must not change) and how to build the destination.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use toml::Value;

use super::super::{BuildError, Destination, DestinationCheck, DestinationContext};
use crate::config::check::Check;
use crate::config::{field_names, Reference};
use crate::delivery::config::fields::parse_path;
use crate::delivery::config::Fields;

/// The keys of the table, as written; each value is checked by [`validate`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct Raw {
    /// `"file"`.
    pub r#type: Option<Value>,
    /// The file records are appended to, one per line; a relative path is under the data
    /// directory; required.
    pub path: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileConfig {
    /// Relative paths are relative to the data directory.
    pub path: PathBuf,
}

pub(crate) fn validate(
    check: &mut Check,
    f: &mut Fields,
    what: &str,
    _ctx: &DestinationCheck<'_>,
) -> Option<FileConfig> {
    check.unknown_keys(f, what, &field_names::<Raw>(), None);
    let key = f.key("path");
    let path = check.required(
        f,
        "path",
        "a file path",
        &format!(
            "{what} needs a path (a relative one is under the data directory), e.g. \
             \"debug/records.jsonl\""
        ),
        parse_path,
    );
    let folder = path
        .as_ref()
        .filter(|p| p.is_absolute())
        .and_then(|p| p.parent());
    if let Some(folder) = folder {
        let reference = Reference::Directory {
            path: folder.to_path_buf(),
            must_exist: false,
        };
        check.reference(&key, reference);
    }
    Some(FileConfig { path: path? })
}

/// Where it delivers (for status).
pub(crate) fn target(c: &FileConfig) -> String {
    c.path.display().to_string()
}

/// Builds the destination.
pub(crate) async fn build(
    c: &FileConfig,
    context: &DestinationContext,
) -> Result<Box<dyn Destination>, BuildError> {
    Ok(Box::new(super::FileDestination::new(c, context)?))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::config::ConfigSource;
    use crate::delivery::config::DestinationConfig;
    use crate::gateway::Config;

    fn parse(destination: &str) -> Result<Config, Vec<(String, String)>> {
        let text = format!(
            "[[delivery_streams]]\nname = \"debug\"\nsource = \"direct_put\"\n\
             destination = {destination}\n"
        );
        Config::parse(&text, ConfigSource::File(PathBuf::from("test.toml"))).map_err(|e| {
            e.issues
                .into_iter()
                .map(|i| (i.key, i.message))
                .collect()
        })
    }

    #[test]
    fn a_file_destination_is_configured_by_its_path() {
        let config = parse("{ type = \"file\", path = \"debug/records.jsonl\" }").unwrap();
        let destination = &config.delivery_streams[0].destination;
        assert_eq!(destination.kind(), "file");
        assert_eq!(destination.target(), "debug/records.jsonl");
        let json = serde_json::to_string(destination).unwrap();
        assert_eq!(json, r#"{"type":"file","path":"debug/records.jsonl"}"#);
        let back: DestinationConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, destination);
    }

    #[test]
    fn its_mistakes_are_named() {
        let issues = parse("{ type = \"file\", pth = \"x\" }").unwrap_err();
        assert_eq!(
            issues,
            vec![
                (
                    "delivery_streams[0].destination.pth".to_owned(),
                    "unknown key `pth` for destination type \"file\" (this version supports \
                     type, path)"
                        .to_owned()
                ),
                (
                    "delivery_streams[0].destination.path".to_owned(),
                    "missing: destination type \"file\" needs a path (a relative one is under \
                     the data directory), e.g. \"debug/records.jsonl\""
                        .to_owned()
                ),
            ]
        );
    }
}
