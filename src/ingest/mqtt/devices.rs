//! The device registry: one TOML file per sensor or camera in the devices directory.
//!
//! A device file names the device (its id is also its MQTT client id), its kind, an Argon2
//! password hash (a PHC string; never a plaintext secret), the topic filters it may publish
//! and subscribe to (`{device}` stands for its own id), and free-form metadata. Loading
//! checks every file and reports every mistake with file, line and key, like the
//! configuration.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use toml_edit::Document;

use super::topics;
use crate::config::spans::line_of;
use crate::config::ConfigIssue;

/// What a device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Sensor,
    Camera,
}

impl DeviceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Sensor => "sensor",
            DeviceKind::Camera => "camera",
        }
    }

    pub fn parse(text: &str) -> Option<DeviceKind> {
        match text {
            "sensor" => Some(DeviceKind::Sensor),
            "camera" => Some(DeviceKind::Camera),
            _ => None,
        }
    }
}

/// One device as its file describes it.
#[derive(Debug, Clone)]
pub struct Device {
    pub id: String,
    pub kind: DeviceKind,
    /// Argon2 PHC string; without one the device cannot log in with a password.
    pub password_hash: Option<String>,
    /// Topic filters with `{device}` already replaced by the id.
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
    pub metadata: BTreeMap<String, toml::Value>,
    /// The checked `[camera]` table of a camera (the video part reads it).
    pub camera: Option<crate::config::camera::CameraConfig>,
    pub file: PathBuf,
}

impl Device {
    /// May this device publish on `topic`?
    pub fn may_publish(&self, topic: &str) -> bool {
        self.publish.iter().any(|f| topics::matches(f, topic))
    }

    /// May this device subscribe to `filter`? Only if an allowed filter covers all of it.
    pub fn may_subscribe(&self, filter: &str) -> bool {
        self.subscribe.iter().any(|f| topics::covers(f, filter))
    }

    /// Checks a password against the stored hash. Deliberately slow (Argon2): call it off
    /// the async runtime.
    pub fn verify_password(&self, password: &[u8]) -> bool {
        let Some(hash) = &self.password_hash else {
            return false;
        };
        match PasswordHash::new(hash) {
            Ok(parsed) => Argon2::default().verify_password(password, &parsed).is_ok(),
            Err(_) => false,
        }
    }
}

/// Device ids: 1-128 characters of `[A-Za-z0-9_.-]` (they are MQTT client ids and file names).
pub fn is_valid_device_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && !id.starts_with('.')
}

/// Hashes a secret for a device file (Argon2id, the crate's default parameters: 19 MiB, 2
/// passes, 1 lane, as OWASP recommends).
pub fn hash_secret(secret: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the secret: {e}"))
}

/// All devices of a directory.
#[derive(Debug, Clone, Default)]
pub struct DeviceRegistry {
    devices: HashMap<String, Device>,
    dir: PathBuf,
}

/// Every mistake found in the device files.
#[derive(Debug, Clone)]
pub struct DeviceErrors {
    pub issues: Vec<ConfigIssue>,
}

impl std::fmt::Display for DeviceErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DeviceErrors {}

impl DeviceRegistry {
    /// Loads every `*.toml` file of `dir`. A missing directory is an empty registry.
    pub fn load(dir: &Path) -> Result<DeviceRegistry, DeviceErrors> {
        let (registry, issues) = DeviceRegistry::load_all(dir);
        if issues.is_empty() {
            Ok(registry)
        } else {
            Err(DeviceErrors { issues })
        }
    }

    /// Loads the good files of `dir` and reports every mistake in the others (for
    /// `check-config`, which goes on to check what the good ones refer to).
    pub fn load_all(dir: &Path) -> (DeviceRegistry, Vec<ConfigIssue>) {
        let mut registry = DeviceRegistry {
            devices: HashMap::new(),
            dir: dir.to_path_buf(),
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (registry, Vec::new()),
            Err(e) => {
                let message = format!("cannot read the devices directory: {e}");
                return (registry, vec![issue(dir, None, "", message)]);
            }
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        let mut issues = Vec::new();
        for file in files {
            let text = match std::fs::read_to_string(&file) {
                Ok(text) => text,
                Err(e) => {
                    issues.push(issue(&file, None, "", format!("cannot read: {e}")));
                    continue;
                }
            };
            match parse_device(&text, &file) {
                Ok(device) => {
                    if let Some(other) = registry.devices.get(&device.id) {
                        let line = Document::parse(text.as_str())
                            .ok()
                            .and_then(|doc| line_of(&doc, &text, "id"));
                        issues.push(issue(
                            &file,
                            line,
                            "id",
                            format!(
                                "device id `{}` is also used by {}",
                                device.id,
                                other.file.display()
                            ),
                        ));
                    } else {
                        registry.devices.insert(device.id.clone(), device);
                    }
                }
                Err(mut found) => issues.append(&mut found),
            }
        }
        (registry, issues)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn get(&self, id: &str) -> Option<&Device> {
        self.devices.get(id)
    }

    pub fn len(&self) -> usize {
        self.devices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// Devices sorted by id.
    pub fn devices(&self) -> Vec<&Device> {
        let mut all: Vec<&Device> = self.devices.values().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }
}

fn issue(file: &Path, line: Option<usize>, key: &str, message: String) -> ConfigIssue {
    ConfigIssue {
        file: file.display().to_string(),
        line,
        key: key.to_string(),
        message,
    }
}

const KNOWN_KEYS: &[&str] = &[
    "id",
    "kind",
    "password_hash",
    "publish",
    "subscribe",
    "metadata",
    "camera",
];

/// Parses and checks one device file; every mistake is reported.
pub fn parse_device(text: &str, file: &Path) -> Result<Device, Vec<ConfigIssue>> {
    let doc = match Document::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let line = e
                .span()
                .map(|s| crate::config::spans::line_at(text, s.start));
            return Err(vec![issue(
                file,
                line,
                "",
                format!("not valid TOML: {}", e.message()),
            )]);
        }
    };
    let table: toml::Table = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => {
            return Err(vec![issue(
                file,
                None,
                "",
                format!("not valid TOML: {}", e.message()),
            )])
        }
    };
    let mut issues = Vec::new();
    let mut problem = |key: &str, message: String| {
        issues.push(issue(file, line_of(&doc, text, key), key, message));
    };
    for key in table.keys() {
        if !KNOWN_KEYS.contains(&key.as_str()) {
            problem(
                key,
                format!(
                    "unknown key `{key}` (a device file has {})",
                    KNOWN_KEYS.join(", ")
                ),
            );
        }
    }
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let id = match table.get("id") {
        Some(toml::Value::String(id)) if is_valid_device_id(id) => {
            if id != stem {
                problem(
                    "id",
                    format!("the id `{id}` differs from the file name: name the file {id}.toml"),
                );
            }
            id.clone()
        }
        Some(toml::Value::String(id)) => {
            problem("id", format!("`{id}` is not a device id: 1-128 characters of A-Z a-z 0-9 _ . - (it is also the MQTT client id)"));
            id.clone()
        }
        Some(other) => {
            problem(
                "id",
                format!("expected a string, found {}", other.type_str()),
            );
            String::new()
        }
        None => {
            problem("id", "missing: every device file needs an id".into());
            String::new()
        }
    };
    let kind = match table.get("kind") {
        None => DeviceKind::Sensor,
        Some(toml::Value::String(k)) => DeviceKind::parse(k).unwrap_or_else(|| {
            problem(
                "kind",
                format!("`{k}` is not a kind: \"sensor\" or \"camera\""),
            );
            DeviceKind::Sensor
        }),
        Some(other) => {
            problem(
                "kind",
                format!(
                    "expected \"sensor\" or \"camera\", found {}",
                    other.type_str()
                ),
            );
            DeviceKind::Sensor
        }
    };
    let password_hash = match table.get("password_hash") {
        None => None,
        Some(toml::Value::String(h)) => match PasswordHash::new(h) {
            Ok(parsed) if parsed.algorithm.as_str().starts_with("argon2") => Some(h.clone()),
            Ok(parsed) => {
                problem("password_hash", format!("algorithm `{}` is not accepted: use an Argon2 hash (`kinedge devices add` makes one)", parsed.algorithm));
                None
            }
            Err(_) => {
                problem("password_hash", "not a PHC password hash string ($argon2id$v=19$...): plaintext secrets are not allowed; `kinedge devices add` makes a hash".into());
                None
            }
        },
        Some(other) => {
            problem(
                "password_hash",
                format!("expected a string, found {}", other.type_str()),
            );
            None
        }
    };
    let mut filters = |key: &str, default: &[&str]| -> Vec<String> {
        let raw: Vec<String> = match table.get(key) {
            None => default.iter().map(|s| s.to_string()).collect(),
            Some(toml::Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, v)| match v {
                    toml::Value::String(s) => Some(s.clone()),
                    other => {
                        problem(
                            &format!("{key}[{i}]"),
                            format!("expected a topic filter string, found {}", other.type_str()),
                        );
                        None
                    }
                })
                .collect(),
            Some(other) => {
                problem(
                    key,
                    format!(
                        "expected a list of topic filters, found {}",
                        other.type_str()
                    ),
                );
                Vec::new()
            }
        };
        raw.iter()
            .enumerate()
            .filter_map(|(i, f)| {
                let expanded = f.replace("{device}", &id);
                if expanded.contains(['{', '}']) {
                    problem(
                        &format!("{key}[{i}]"),
                        format!("`{f}`: the only placeholder is {{device}}"),
                    );
                    return None;
                }
                match topics::check_filter(&expanded) {
                    Ok(()) => Some(expanded),
                    Err(e) => {
                        problem(
                            &format!("{key}[{i}]"),
                            format!("`{f}` is not a topic filter: {e}"),
                        );
                        None
                    }
                }
            })
            .collect()
    };
    let publish = filters("publish", &["devices/{device}/#"]);
    let subscribe = filters("subscribe", &["devices/{device}/commands/#"]);
    let metadata = match table.get("metadata") {
        None => BTreeMap::new(),
        Some(toml::Value::Table(t)) => t.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        Some(other) => {
            problem(
                "metadata",
                format!("expected a table ([metadata]), found {}", other.type_str()),
            );
            BTreeMap::new()
        }
    };
    let camera = match (table.get("camera"), kind) {
        (None, _) => None,
        (Some(toml::Value::Table(t)), DeviceKind::Camera) => {
            crate::config::camera::parse_camera(t, &mut problem)
        }
        (Some(_), DeviceKind::Sensor) => {
            problem("camera", "a [camera] table needs kind = \"camera\"".into());
            None
        }
        (Some(other), DeviceKind::Camera) => {
            problem(
                "camera",
                format!("expected a table ([camera]), found {}", other.type_str()),
            );
            None
        }
    };
    if !issues.is_empty() {
        return Err(issues);
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

/// Writes a new device file with a freshly hashed secret; refuses to overwrite one.
pub fn write_device_file(
    dir: &Path,
    id: &str,
    kind: DeviceKind,
    publish: &[String],
    subscribe: &[String],
    password_hash: &str,
) -> Result<PathBuf, String> {
    if !is_valid_device_id(id) {
        return Err(format!(
            "`{id}` is not a device id: 1-128 characters of A-Z a-z 0-9 _ . -"
        ));
    }
    for filter in publish.iter().chain(subscribe) {
        topics::check_filter(&filter.replace("{device}", id))
            .map_err(|e| format!("`{filter}` is not a topic filter: {e}"))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join(format!("{id}.toml"));
    let quote = |items: &[String]| {
        items
            .iter()
            .map(|s| toml::Value::String(s.clone()).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let text = format!(
        "id = \"{id}\"\nkind = \"{}\"\n# Argon2id hash of the device's secret; the secret itself is not stored.\npassword_hash = \"{password_hash}\"\npublish = [{}]\nsubscribe = [{}]\n\n[metadata]\n# model = \"\"\n# location = \"\"\n",
        kind.as_str(),
        quote(publish),
        quote(subscribe),
    );
    // Written under a temporary name and moved into place, so a reader never sees half a file.
    let tmp = dir.join(format!(".{id}.toml.tmp"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o640);
    }
    if path.exists() {
        return Err(format!(
            "{} already exists: remove it first to replace the device",
            path.display()
        ));
    }
    {
        use std::io::Write;
        let _ = std::fs::remove_file(&tmp);
        let mut f = options
            .open(&tmp)
            .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        f.write_all(text.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    }
    std::fs::rename(&tmp, &path)
        .map_err(|e| format!("cannot move {} into place: {e}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Device, Vec<ConfigIssue>> {
        parse_device(text, Path::new("devices/sensor-1.toml"))
    }

    #[test]
    fn example_file_parses() {
        let d = parse(
            r#"
id = "sensor-1"
kind = "sensor"
password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$1mUj3fTm9B2rlWu1y0uxGg3DbhYxT7bqwAC7tVQHWVQ"
publish = ["devices/{device}/#"]
subscribe = ["devices/{device}/commands/#"]

[metadata]
model = "BME280"
location = "greenhouse 2"
"#,
        )
        .unwrap();
        assert_eq!(d.publish, vec!["devices/sensor-1/#"]);
        assert!(d.may_publish("devices/sensor-1/telemetry"));
        assert!(!d.may_publish("devices/sensor-2/telemetry"));
        assert!(d.may_subscribe("devices/sensor-1/commands/reboot"));
        assert!(!d.may_subscribe("devices/#"));
        assert_eq!(d.metadata["model"].as_str(), Some("BME280"));
    }

    #[test]
    fn every_mistake_is_named_with_its_line() {
        let err = parse("id = \"sensor-1\"\nkind = \"toaster\"\npassword_hash = \"hunter2\"\npublish = [\"a/#/b\"]\ncolour = \"red\"\n").unwrap_err();
        let found: Vec<(String, Option<usize>)> =
            err.iter().map(|i| (i.key.clone(), i.line)).collect();
        assert!(found.contains(&("kind".into(), Some(2))), "{found:?}");
        assert!(
            found.contains(&("password_hash".into(), Some(3))),
            "{found:?}"
        );
        assert!(found.contains(&("publish[0]".into(), Some(4))), "{found:?}");
        assert!(found.contains(&("colour".into(), Some(5))), "{found:?}");
        let plaintext = err.iter().find(|i| i.key == "password_hash").unwrap();
        assert!(plaintext.message.contains("plaintext"));
        assert!(
            !plaintext.message.contains("hunter2"),
            "the secret must not be echoed"
        );
    }

    #[test]
    fn id_must_match_the_file_name() {
        let err = parse("id = \"sensor-2\"\n").unwrap_err();
        assert_eq!(err[0].key, "id");
        assert!(err[0].message.contains("sensor-2.toml"));
    }

    #[test]
    fn hashes_verify_and_files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let hash = hash_secret("s3cret").unwrap();
        let path = write_device_file(
            dir.path(),
            "pump-7",
            DeviceKind::Sensor,
            &["devices/{device}/#".into()],
            &["devices/{device}/commands/#".into()],
            &hash,
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("s3cret"));
        let registry = DeviceRegistry::load(dir.path()).unwrap();
        let device = registry.get("pump-7").unwrap();
        assert!(device.verify_password(b"s3cret"));
        assert!(!device.verify_password(b"s3cret "));
        assert!(!device.verify_password(b""));
        // No overwriting an existing device.
        assert!(
            write_device_file(dir.path(), "pump-7", DeviceKind::Sensor, &[], &[], &hash).is_err()
        );
    }

    #[test]
    fn registry_reports_all_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), "id = \"a\"\nkind = 3\n").unwrap();
        std::fs::write(
            dir.path().join("b.toml"),
            "id = \"b\"\n[camera]\nsource = \"file:///x\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("c.toml"), "id = \"c\"\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let err = DeviceRegistry::load(dir.path()).unwrap_err();
        assert_eq!(err.issues.len(), 2, "{err}");
        assert!(err.to_string().contains("a.toml:2: kind"));
        assert!(err.to_string().contains("b.toml:2: camera"));
        assert!(DeviceRegistry::load(&dir.path().join("missing"))
            .unwrap()
            .is_empty());
    }
}

#[cfg(test)]
mod shipped_examples {
    use super::*;

    #[test]
    fn the_examples_in_the_repository_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("devices/examples");
        let registry = DeviceRegistry::load(&dir).unwrap();
        assert_eq!(registry.len(), 2);
        assert_eq!(registry.get("camera-1").unwrap().kind, DeviceKind::Camera);
        assert!(registry.get("camera-1").unwrap().camera.is_some());
        // The examples carry no usable secret.
        assert!(registry.devices().iter().all(|d| d.password_hash.is_none()));
    }
}
