//! The configuration toolkit: how a TOML document is read and checked, for any component.
//! It knows no component's keys: each component owns its section (a raw serde struct whose
//! fields are its keys, a checked type, and `validate(&mut Check, raw)`) beside its code, and
//! the document that assembles them lives above the components (`gateway::config`).
//!
//! How a document is checked (`read_file`): a span-keeping `toml_edit` document gives syntax
//! errors and lines; unknown keys are all reported (and pruned) against the fields serde
//! itself knows (`introspect`); serde then maps the rest onto the raw structs (only
//! table/array shape can fail there), and the sections' checks report every value's mistakes
//! into a [`check::Check`]. Issues carry file, line and dotted key (`streams[1].shards`).
//! `Reference`s name what only `check-config` can look at (files, directories, variables).
//!
//! Invariant: this part imports no other part of the crate.

pub mod check;
pub mod introspect;
mod load;
pub mod raw;
mod size;
pub(crate) mod spans;
mod validate;

pub use load::{read_file, Parsed};

use std::fmt;
use std::path::PathBuf;

pub use size::{format_size, parse_size};

/// The keys a table of type `T` supports: the fields of its serde struct, in their order.
pub fn field_names<T: serde::de::DeserializeOwned>() -> Vec<&'static str> {
    match introspect::shape_of::<T>() {
        introspect::Shape::Table(_, fields) => fields.into_iter().map(|(name, _)| name).collect(),
        _ => Vec::new(),
    }
}

/// `[devices]`: where the device files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicesConfig {
    /// Relative paths in a config file are relative to that file's folder.
    pub dir: PathBuf,
}

impl DevicesConfig {
    pub const DEFAULT_DIR: &'static str = "devices";
}

/// Where a [`Config`] came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    BuiltIn,
    File(PathBuf),
}

/// Where a secret is kept: `secret_file` or `secret_env`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::BuiltIn => f.write_str("<built-in config>"),
            ConfigSource::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A file, directory or environment variable that the configuration names. `Config::parse`
/// checks only how it is written (the gateway may be configured on another machine);
/// `check-config` checks that it is there and usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// A secret in a file or variable: readable and not empty.
    Secret(SecretSource),
    /// PEM certificates (a chain or a CA bundle).
    Certificates(PathBuf),
    /// A PEM private key.
    PrivateKey(PathBuf),
    /// A directory: a directory if it exists; `must_exist` when the gateway only reads it.
    Directory { path: PathBuf, must_exist: bool },
    /// An AWS destination without `access_key_id`: its credentials come from the environment.
    AwsEnvironment,
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::File(path) => write!(f, "secret_file `{}`", path.display()),
            SecretSource::Env(var) => write!(f, "secret_env `{var}`"),
        }
    }
}

/// Every problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    pub issues: Vec<ConfigIssue>,
}

/// One problem: `FILE:LINE: KEY: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub file: String,
    /// 1-based; `None` when the key is not in the file (e.g. a read error).
    pub line: Option<usize>,
    /// Dotted key path such as `streams[1].retention_hours`; empty for syntax and read errors.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
