//! The file as serde sees it: table shape only, every value kept as a `toml::Value` so that
//! `validate` can check types and ranges of all keys at once. The supported keys of a table
//! are the fields of its serde struct, read from serde itself (see `super::introspect`), so
//! that every unknown key is reported without a second list of keys to keep in sync.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use toml::Value;
use toml_edit::{Document, DocumentMut, Item, TableLike};

use super::introspect::{shape_of, Shape};

/// `[devices]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Devices {
    /// Folder of the device files, relative to the config file's folder; default `devices`.
    pub dir: Option<Value>,
}

/// A key path and what is wrong there.
pub type Problem = (String, String);

/// Reports every key that is not a field of `R` (or of the structs its fields hold, at any
/// depth) and returns the document without them, so that the remaining keys can still be
/// checked. serde's `deny_unknown_fields` would stop at the first.
pub fn prune_unknown_keys<R: DeserializeOwned>(
    doc: &Document<&str>,
) -> (DocumentMut, Vec<Problem>) {
    let mut pruned = doc.clone().into_mut();
    let mut problems = Vec::new();
    if let Shape::Table(_, fields) = shape_of::<R>() {
        prune_table(pruned.as_table_mut(), &fields, "", &mut problems);
    }
    (pruned, problems)
}

fn prune_table(
    table: &mut dyn TableLike,
    fields: &[(&'static str, Shape)],
    path: &str,
    problems: &mut Vec<Problem>,
) {
    let unknown: Vec<String> = table
        .iter()
        .map(|(key, _)| key)
        .filter(|key| !fields.iter().any(|(name, _)| name == key))
        .map(str::to_owned)
        .collect();
    for key in unknown {
        let supported: Vec<&str> = fields
            .iter()
            .filter(|(_, shape)| !matches!(shape, Shape::Unlisted))
            .map(|(name, _)| *name)
            .collect();
        let message = format!(
            "unknown key `{key}` (this version supports {})",
            supported.join(", ")
        );
        problems.push((join(path, &key), message));
        table.remove(&key);
    }
    for (name, shape) in fields {
        if let Some(item) = table.get_mut(name) {
            prune_item(item, shape, &join(path, name), problems);
        }
    }
}

fn prune_item(item: &mut Item, shape: &Shape, path: &str, problems: &mut Vec<Problem>) {
    match shape {
        Shape::Table(_, fields) => {
            if let Some(table) = item.as_table_like_mut() {
                prune_table(table, fields, path, problems);
            }
        }
        Shape::ArrayOfTables(_, fields) => {
            if let Some(tables) = item.as_array_of_tables_mut() {
                for (i, table) in tables.iter_mut().enumerate() {
                    prune_table(table, fields, &format!("{path}[{i}]"), problems);
                }
            } else if let Some(array) = item.as_array_mut() {
                for (i, value) in array.iter_mut().enumerate() {
                    if let Some(table) = value.as_inline_table_mut() {
                        prune_table(table, fields, &format!("{path}[{i}]"), problems);
                    }
                }
            }
        }
        Shape::Value | Shape::Unlisted => {}
    }
}

/// `path.key`, quoting `key` when it is not a bare TOML key.
pub fn join(path: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let key = if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    };
    if path.is_empty() {
        key
    } else {
        format!("{path}.{key}")
    }
}

/// Maps the (pruned) document onto `File`. Fails only on table shape, e.g. `streams = 5`;
/// serde stops at the first such error, which is reported with its key path.
pub fn deserialize<R: DeserializeOwned>(doc: &DocumentMut) -> Result<R, Problem> {
    let text = doc.to_string();
    let deserializer = toml::Deserializer::parse(&text)
        .map_err(|err| (String::new(), err.message().to_owned()))?;
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let key = err
            .path()
            .iter()
            .fold(String::new(), |path, segment| match segment {
                serde_path_to_error::Segment::Seq { index } => format!("{path}[{index}]"),
                serde_path_to_error::Segment::Map { key } => join(&path, key),
                serde_path_to_error::Segment::Enum { variant } => join(&path, variant),
                serde_path_to_error::Segment::Unknown => join(&path, "?"),
            });
        (key, shape_message(err.inner().message()))
    })
}

/// Turns serde's "invalid type: integer `5`, expected struct Storage" into plain words.
fn shape_message(message: &str) -> String {
    let shape = message
        .strip_prefix("invalid type: ")
        .and_then(|rest| rest.split_once(", expected "));
    match shape {
        Some((found, expected)) => {
            let expected = if expected.starts_with("struct ") {
                "a table"
            } else if expected.starts_with("a sequence") {
                "an array of tables"
            } else {
                expected
            };
            format!("expected {expected}, found {found}")
        }
        None => message.to_owned(),
    }
}
