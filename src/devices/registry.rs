//! All devices of a directory: loads every `*.toml` file, keeps the good ones by id and
//! reports every mistake in the others. Invariant: ids are unique (a second file with a
//! known id is a mistake, never a replacement).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use toml_edit::Document;

use super::device::Device;
use super::file::{issue, parse_device};
use crate::config::spans::line_of;
use crate::config::ConfigIssue;

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
        let files = match device_files(dir) {
            Ok(files) => files,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (registry, Vec::new()),
            Err(e) => {
                let message = format!("cannot read the devices directory: {e}");
                return (registry, vec![issue(dir, None, "", message)]);
            }
        };
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
                    if let Err(duplicate) = registry.insert(device, &text) {
                        issues.push(duplicate);
                    }
                }
                Err(mut found) => issues.append(&mut found),
            }
        }
        (registry, issues)
    }

    /// Adds a checked device, unless its id is taken (then the mistake, on the new file).
    fn insert(&mut self, device: Device, text: &str) -> Result<(), ConfigIssue> {
        if let Some(other) = self.devices.get(&device.id) {
            let line = Document::parse(text)
                .ok()
                .and_then(|doc| line_of(&doc, text, "id"));
            let message = format!(
                "device id `{}` is also used by {}",
                device.id,
                other.file.display()
            );
            return Err(issue(&device.file, line, "id", message));
        }
        self.devices.insert(device.id.clone(), device);
        Ok(())
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

/// The `*.toml` files of `dir`, sorted (so that the first of two files with one id wins).
fn device_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    Ok(files)
}
