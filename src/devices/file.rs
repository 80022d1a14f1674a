//! A device file: parsing and checking one (every mistake reported with file, line and key)
//! and writing a new one for `kinedge devices add`.
//!
//! Invariants: a parsed [`Device`] has no mistakes left (any issue means no device); topic
//! filters are stored with `{device}` expanded and checked; a plaintext secret is refused and
//! never echoed in a message; a new file is written under a temporary name, synced, then
//! renamed into place, and never replaces an existing one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use argon2::password_hash::PasswordHash;
use toml_edit::Document;

use super::camera::{parse_camera, CameraConfig};
use super::device::{is_valid_device_id, Device, DeviceKind};
use super::topics::{self, TopicError};
use crate::config::spans::line_of;
use crate::config::ConfigIssue;

/// Why a device file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DeviceFileError {
    #[error("`{0}` is not a device id: 1-128 characters of A-Z a-z 0-9 _ . -")]
    InvalidId(String),
    #[error("`{filter}` is not a topic filter: {source}")]
    InvalidFilter { filter: String, source: TopicError },
    #[error("cannot hash the secret: {0}")]
    Hash(String),
    #[error("{} already exists: remove it first to replace the device", .0.display())]
    Exists(PathBuf),
    #[error("cannot move {} into place: {source}", .path.display())]
    Rename {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot {action} {}: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

pub(super) fn issue(file: &Path, line: Option<usize>, key: &str, message: String) -> ConfigIssue {
    ConfigIssue {
        file: file.display().to_string(),
        line,
        key: key.to_string(),
        message,
    }
}

/// The keys of a device file (their names are the supported keys; `parse_device` checks
/// each value).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Raw {
    /// The device id: the MQTT user name and client id.
    id: Option<toml::Value>,
    /// `"sensor"` or `"camera"`.
    kind: Option<toml::Value>,
    /// The Argon2id hash of the device's secret (`kinedge devices add` writes it).
    password_hash: Option<toml::Value>,
    /// Topic filters the device may publish to.
    publish: Option<toml::Value>,
    /// Topic filters the device may subscribe to.
    subscribe: Option<toml::Value>,
    /// Free-form labels, shown in status.
    metadata: Option<toml::Value>,
    /// A camera's `[camera]` table.
    camera: Option<toml::Value>,
}

/// The mistakes of one file, each with the line of its key.
struct Issues<'a> {
    file: &'a Path,
    doc: &'a Document<&'a str>,
    text: &'a str,
    found: Vec<ConfigIssue>,
}

impl Issues<'_> {
    fn problem(&mut self, key: &str, message: String) {
        let line = line_of(self.doc, self.text, key);
        self.found.push(issue(self.file, line, key, message));
    }
}

/// Parses and checks one device file; every mistake is reported.
pub fn parse_device(text: &str, file: &Path) -> Result<Device, Vec<ConfigIssue>> {
    let (doc, table) = parse_toml(text, file)?;
    let mut issues = Issues {
        file,
        doc: &doc,
        text,
        found: Vec::new(),
    };
    check_keys(&table, &mut issues);
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let id = device_id(&table, stem, &mut issues);
    let kind = device_kind(&table, &mut issues);
    let password_hash = password_hash(&table, &mut issues);
    let publish = topic_filters(&table, "publish", "devices/{device}/#", &id, &mut issues);
    let subscribe = topic_filters(
        &table,
        "subscribe",
        "devices/{device}/commands/#",
        &id,
        &mut issues,
    );
    let metadata = metadata(&table, &mut issues);
    let camera = camera(&table, kind, &mut issues);
    if !issues.found.is_empty() {
        return Err(issues.found);
    }
    Ok(Device {
        id,
        kind,
        password_hash,
        publish,
        subscribe,
        metadata,
        camera,
        file: file.to_path_buf(),
    })
}

/// The span-keeping document (for lines) and the plain table (for values).
fn parse_toml<'a>(
    text: &'a str,
    file: &Path,
) -> Result<(Document<&'a str>, toml::Table), Vec<ConfigIssue>> {
    let doc = Document::parse(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| crate::config::spans::line_at(text, s.start));
        let message = format!("not valid TOML: {}", e.message());
        vec![issue(file, line, "", message)]
    })?;
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        let message = format!("not valid TOML: {}", e.message());
        vec![issue(file, None, "", message)]
    })?;
    Ok((doc, table))
}

fn check_keys(table: &toml::Table, issues: &mut Issues) {
    let known = crate::config::field_names::<Raw>();
    for key in table.keys() {
        if !known.contains(&key.as_str()) {
            let message = format!(
                "unknown key `{key}` (a device file has {})",
                known.join(", ")
            );
            issues.problem(key, message);
        }
    }
}

fn device_id(table: &toml::Table, stem: &str, issues: &mut Issues) -> String {
    match table.get("id") {
        Some(toml::Value::String(id)) if is_valid_device_id(id) => {
            if id != stem {
                issues.problem(
                    "id",
                    format!("the id `{id}` differs from the file name: name the file {id}.toml"),
                );
            }
            id.clone()
        }
        Some(toml::Value::String(id)) => {
            issues.problem("id", format!("`{id}` is not a device id: 1-128 characters of A-Z a-z 0-9 _ . - (it is also the MQTT client id)"));
            id.clone()
        }
        Some(other) => {
            let message = format!("expected a string, found {}", other.type_str());
            issues.problem("id", message);
            String::new()
        }
        None => {
            issues.problem("id", "missing: every device file needs an id".into());
            String::new()
        }
    }
}

fn device_kind(table: &toml::Table, issues: &mut Issues) -> DeviceKind {
    match table.get("kind") {
        None => DeviceKind::Sensor,
        Some(toml::Value::String(k)) => DeviceKind::parse(k).unwrap_or_else(|| {
            let message = format!("`{k}` is not a kind: \"sensor\" or \"camera\"");
            issues.problem("kind", message);
            DeviceKind::Sensor
        }),
        Some(other) => {
            let message = format!(
                "expected \"sensor\" or \"camera\", found {}",
                other.type_str()
            );
            issues.problem("kind", message);
            DeviceKind::Sensor
        }
    }
}

/// The Argon2 PHC string; the value itself is never put in a message (it may be a secret).
fn password_hash(table: &toml::Table, issues: &mut Issues) -> Option<String> {
    let key = "password_hash";
    match table.get(key) {
        None => None,
        Some(toml::Value::String(h)) => match PasswordHash::new(h) {
            Ok(parsed) if parsed.algorithm.as_str().starts_with("argon2") => Some(h.clone()),
            Ok(parsed) => {
                issues.problem(key, format!("algorithm `{}` is not accepted: use an Argon2 hash (`kinedge devices add` makes one)", parsed.algorithm));
                None
            }
            Err(_) => {
                issues.problem(key, "not a PHC password hash string ($argon2id$v=19$...): plaintext secrets are not allowed; `kinedge devices add` makes a hash".into());
                None
            }
        },
        Some(other) => {
            issues.problem(
                key,
                format!("expected a string, found {}", other.type_str()),
            );
            None
        }
    }
}

/// `publish` or `subscribe`: a list of filters, `{device}` expanded to `id`, each checked.
fn topic_filters(
    table: &toml::Table,
    key: &str,
    default: &str,
    id: &str,
    issues: &mut Issues,
) -> Vec<String> {
    let raw: Vec<String> = match table.get(key) {
        None => vec![default.to_string()],
        Some(toml::Value::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, v)| match v {
                toml::Value::String(s) => Some(s.clone()),
                other => {
                    let message =
                        format!("expected a topic filter string, found {}", other.type_str());
                    issues.problem(&format!("{key}[{i}]"), message);
                    None
                }
            })
            .collect(),
        Some(other) => {
            let message = format!(
                "expected a list of topic filters, found {}",
                other.type_str()
            );
            issues.problem(key, message);
            Vec::new()
        }
    };
    // As before the split: the index counts the string entries only.
    raw.into_iter()
        .enumerate()
        .filter_map(|(i, filter)| {
            expand_filter(&filter, id)
                .map_err(|message| issues.problem(&format!("{key}[{i}]"), message))
                .ok()
        })
        .collect()
}

/// One ACL filter with `{device}` replaced by `id`, if it is then a valid filter.
fn expand_filter(filter: &str, id: &str) -> Result<String, String> {
    let expanded = filter.replace("{device}", id);
    if expanded.contains(['{', '}']) {
        return Err(format!("`{filter}`: the only placeholder is {{device}}"));
    }
    topics::check_filter(&expanded)
        .map_err(|e| format!("`{filter}` is not a topic filter: {e}"))?;
    Ok(expanded)
}

fn metadata(table: &toml::Table, issues: &mut Issues) -> BTreeMap<String, toml::Value> {
    match table.get("metadata") {
        None => BTreeMap::new(),
        Some(toml::Value::Table(t)) => t.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        Some(other) => {
            let message = format!("expected a table ([metadata]), found {}", other.type_str());
            issues.problem("metadata", message);
            BTreeMap::new()
        }
    }
}

fn camera(table: &toml::Table, kind: DeviceKind, issues: &mut Issues) -> Option<CameraConfig> {
    match (table.get("camera"), kind) {
        (None, _) => None,
        (Some(toml::Value::Table(t)), DeviceKind::Camera) => {
            parse_camera(t, &mut |key, message| issues.problem(key, message))
        }
        (Some(_), DeviceKind::Sensor) => {
            let message = "a [camera] table needs kind = \"camera\"".into();
            issues.problem("camera", message);
            None
        }
        (Some(other), DeviceKind::Camera) => {
            let message = format!("expected a table ([camera]), found {}", other.type_str());
            issues.problem("camera", message);
            None
        }
    }
}

/// Writes a new device file with a freshly hashed secret; refuses to overwrite one.
pub fn write_device_file(
    dir: &Path,
    id: &str,
    kind: DeviceKind,
    publish: &[String],
    subscribe: &[String],
    password_hash: &str,
) -> Result<PathBuf, DeviceFileError> {
    if !is_valid_device_id(id) {
        return Err(DeviceFileError::InvalidId(id.to_string()));
    }
    for filter in publish.iter().chain(subscribe) {
        topics::check_filter(&filter.replace("{device}", id)).map_err(|source| {
            DeviceFileError::InvalidFilter {
                filter: filter.clone(),
                source,
            }
        })?;
    }
    let io = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| DeviceFileError::Io {
            action,
            path,
            source,
        }
    };
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    let path = dir.join(format!("{id}.toml"));
    let text = device_file_text(id, kind, publish, subscribe, password_hash);
    if path.exists() {
        return Err(DeviceFileError::Exists(path));
    }
    // Written under a temporary name and moved into place, so a reader never sees half a file.
    let tmp = dir.join(format!(".{id}.toml.tmp"));
    write_new_synced(&tmp, text.as_bytes()).map_err(io("write", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(|source| DeviceFileError::Rename {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

fn device_file_text(
    id: &str,
    kind: DeviceKind,
    publish: &[String],
    subscribe: &[String],
    password_hash: &str,
) -> String {
    let quote = |items: &[String]| {
        items
            .iter()
            .map(|s| toml::Value::String(s.clone()).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "id = \"{id}\"\nkind = \"{}\"\n# Argon2id hash of the device's secret; the secret itself is not stored.\npassword_hash = \"{password_hash}\"\npublish = [{}]\nsubscribe = [{}]\n\n[metadata]\n# model = \"\"\n# location = \"\"\n",
        kind.as_str(),
        quote(publish),
        quote(subscribe),
    )
}

/// Creates `path` afresh (mode 0640: it holds a hash), writes `bytes` and syncs them.
fn write_new_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o640);
    }
    let _ = std::fs::remove_file(path);
    let mut f = options.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}
