//! `[devices]`: where the device files are (until the device registry becomes its own part
//! and takes this section with it): from its raw struct to [`DevicesConfig`].

use super::check::Check;
use super::raw;
use super::{ConfigSource, DevicesConfig, Reference};

impl Check {
    pub(crate) fn devices(&mut self, raw: raw::Devices, source: &ConfigSource) -> DevicesConfig {
        let given = raw.dir.is_some();
        let dir = self
            .string("devices.dir", raw.dir, "a directory path", |s| {
                if s.is_empty() {
                    Err("must not be empty".to_string())
                } else {
                    Ok(std::path::PathBuf::from(s))
                }
            })
            .unwrap_or_else(|| std::path::PathBuf::from(DevicesConfig::DEFAULT_DIR));
        // Relative to the config file's folder (the working directory for the built-in one).
        let dir = match source {
            ConfigSource::File(file) if dir.is_relative() => file
                .parent()
                .map_or(dir.clone(), |parent| parent.join(&dir)),
            _ => dir,
        };
        // A devices folder named in a file must be there: a typo would leave every device
        // unable to log in. The built-in default (./devices) may be missing.
        self.reference(
            "devices.dir",
            Reference::Directory {
                path: dir.clone(),
                must_exist: given && matches!(source, ConfigSource::File(_)),
            },
        );
        DevicesConfig { dir }
    }
}
