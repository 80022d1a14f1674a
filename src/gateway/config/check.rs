//! `kinedge check-config`: everything about a configuration and its device files that can be
//! known before the gateway starts, reported all at once as `FILE:LINE: KEY: message`.
//!
//! `Config::parse` checks the file on its own. This adds what only the machine can tell: the
//! secret files and variables, certificates, keys and directories the configuration names;
//! every device file; and what the device files name (camera passwords, file sources, the
//! video delivery stream of an upload). The systemd unit runs it before the gateway
//! (`ExecStartPre`), so it sees the same user, files and environment as the gateway.
//!
//! Warnings (a route to a stream that is not configured, a secret file every user can read,
//! AWS credentials that only the environment could supply) are printed but do not fail.

use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::{parse_document, Config, DEFAULT_CONFIG_TOML};
use crate::config::{ConfigIssue, ConfigSource, Reference, SecretSource};
use crate::delivery::config::SourceConfig;
use crate::devices::camera::CameraSource;
use crate::devices::{Device, DeviceRegistry};

/// What `check-config` found.
#[derive(Debug, Default)]
pub struct Report {
    /// Mistakes: the gateway would refuse to start, or a part of it would not work. The
    /// configuration file's first, by line, then the device files'.
    pub errors: Vec<ConfigIssue>,
    /// Worth a look, but not wrong; each message starts with `warning: `.
    pub warnings: Vec<ConfigIssue>,
    /// One line about a configuration without errors: what it holds.
    pub summary: Option<String>,
    /// The configuration file as messages name it.
    file: String,
}

/// Checks `file` (the built-in configuration when `None`) and its device files.
pub fn check(file: Option<&Path>) -> Report {
    let (text, source) = match file {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => (text, ConfigSource::File(path.to_owned())),
            Err(err) => {
                let issue = ConfigIssue {
                    file: path.display().to_string(),
                    line: None,
                    key: String::new(),
                    message: format!("cannot read the config file: {err}"),
                };
                return Report {
                    errors: vec![issue],
                    ..Report::default()
                };
            }
        },
        None => (DEFAULT_CONFIG_TOML.to_owned(), ConfigSource::BuiltIn),
    };
    let file = source.to_string();
    let parsed = parse_document(&text, source);
    let mut report = Report {
        errors: parsed.issues,
        warnings: Vec::new(),
        summary: None,
        file,
    };
    for warning in &parsed.warnings {
        report.add(warning, Finding::Warning(warning.message.clone()));
    }
    for (at, reference) in &parsed.references {
        for finding in inspect(reference) {
            report.add(at, finding);
        }
    }
    let Some(config) = parsed.config else {
        return report;
    };
    tls_fits(&config, &parsed.references, &mut report);
    let by_line = |issue: &ConfigIssue| issue.line.unwrap_or(usize::MAX);
    report.errors.sort_by_key(by_line);
    report.warnings.sort_by_key(by_line);

    // The device files, unless the folder itself is wrong.
    if report.errors.iter().any(|i| i.key.starts_with("devices")) {
        return report;
    }
    let (registry, issues) = DeviceRegistry::load_all(&config.devices.dir);
    report.errors.extend(issues);
    for device in registry.devices() {
        check_device(&config, device, &mut report);
    }
    if report.errors.is_empty() {
        let cameras = registry
            .devices()
            .iter()
            .filter(|d| d.camera.is_some())
            .count();
        let name = match &config.source {
            ConfigSource::BuiltIn => "built-in configuration".to_owned(),
            ConfigSource::File(path) => path.display().to_string(),
        };
        report.summary = Some(format!(
            "{name}: ok ({} streams, {} delivery streams, {} devices ({cameras} cameras) in {}, \
             API on {})",
            config.streams.len(),
            config.delivery_streams.len(),
            registry.len(),
            config.devices.dir.display(),
            config.api.listen
        ));
    }
    report
}

impl Report {
    /// Whether the configuration can be used as it is.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// Errors and warnings together, in the order to print them: the configuration file's by
    /// line, then each device file's.
    pub fn all(&self) -> Vec<&ConfigIssue> {
        let mut all: Vec<&ConfigIssue> = self.errors.iter().chain(&self.warnings).collect();
        all.sort_by(|a, b| {
            let key = |i: &ConfigIssue| (i.file != self.file, i.file.clone(), i.line);
            key(a).cmp(&key(b))
        });
        all
    }

    fn add(&mut self, at: &ConfigIssue, finding: Finding) {
        let (list, message) = match finding {
            Finding::Error(message) => (&mut self.errors, message),
            Finding::Warning(message) => (&mut self.warnings, format!("warning: {message}")),
        };
        list.push(ConfigIssue {
            message,
            ..at.clone()
        });
    }
}

enum Finding {
    Error(String),
    Warning(String),
}

/// Looks at one file, directory or variable the configuration names.
fn inspect(reference: &Reference) -> Vec<Finding> {
    match reference {
        Reference::Secret(source) => secret(source),
        Reference::Certificates(path) => certificates(path),
        Reference::PrivateKey(path) => private_key(path),
        Reference::Directory { path, must_exist } => directory(path, *must_exist),
        Reference::AwsEnvironment => aws_environment(),
    }
}

fn secret(source: &SecretSource) -> Vec<Finding> {
    match source {
        SecretSource::File(path) => {
            let bytes = match std::fs::read(path) {
                Ok(bytes) => bytes,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    return vec![Finding::Error(format!(
                        "`{}` does not exist: put the secret in it (readable only by the \
                         gateway's user, e.g. mode 0640 with group kinedge)",
                        path.display()
                    ))]
                }
                Err(err) => return vec![Finding::Error(unreadable(path, &err))],
            };
            if bytes.iter().all(|b| matches!(b, b'\n' | b'\r')) {
                return vec![Finding::Error(format!(
                    "`{}` is empty: write the secret into it",
                    path.display()
                ))];
            }
            readable_by_all(path)
                .map(Finding::Warning)
                .into_iter()
                .collect()
        }
        SecretSource::Env(var) => match std::env::var(var) {
            Ok(value) if value.is_empty() => {
                vec![Finding::Error(format!(
                    "the environment variable `{var}` is empty"
                ))]
            }
            Ok(_) => Vec::new(),
            Err(std::env::VarError::NotPresent) => vec![Finding::Error(format!(
                "the environment variable `{var}` is not set (for the service, set it with \
                 Environment= or EnvironmentFile= in a drop-in: `systemctl edit kinedge`)"
            ))],
            Err(std::env::VarError::NotUnicode(_)) => vec![Finding::Error(format!(
                "the environment variable `{var}` is not valid UTF-8"
            ))],
        },
    }
}

/// Why a file cannot be read, in words that say what to do.
fn unreadable(path: &Path, err: &std::io::Error) -> String {
    let path = path.display();
    match err.kind() {
        std::io::ErrorKind::NotFound => format!("`{path}` does not exist"),
        std::io::ErrorKind::PermissionDenied => format!(
            "`{path}` cannot be read by the user this check runs as ({err}): the gateway \
             needs to read it as its own user (kinedge under systemd)"
        ),
        _ => format!("cannot read `{path}`: {err}"),
    }
}

/// A warning when every user of the machine may read a secret.
fn readable_by_all(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode();
        if mode & 0o004 != 0 {
            return Some(format!(
                "`{}` can be read by every user of this machine (mode {:04o}): chmod o-r \
                 (0600, or 0640 with the gateway's group)",
                path.display(),
                mode & 0o7777
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    None
}

fn certificates(path: &Path) -> Vec<Finding> {
    let shown = path.display();
    let certs = match CertificateDer::pem_file_iter(path) {
        Ok(iter) => iter.collect::<Result<Vec<_>, _>>(),
        Err(rustls_pki_types::pem::Error::Io(err)) => {
            return vec![Finding::Error(unreadable(path, &err))]
        }
        Err(err) => Err(err),
    };
    let certs = match certs {
        Ok(certs) if certs.is_empty() => {
            return vec![Finding::Error(format!(
                "`{shown}` holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
            ))]
        }
        Ok(certs) => certs,
        Err(err) => {
            return vec![Finding::Error(format!(
                "`{shown}` is not a PEM certificate file: {err}"
            ))]
        }
    };
    let mut found = Vec::new();
    for (i, cert) in certs.iter().enumerate() {
        let n = i + 1;
        match x509_parser::parse_x509_certificate(cert.as_ref()) {
            Ok((_, parsed)) => {
                let validity = parsed.validity();
                if !validity.is_valid() {
                    found.push(Finding::Warning(format!(
                        "certificate {n} of `{shown}` is not valid now: valid from {} to {}",
                        validity.not_before, validity.not_after
                    )));
                }
            }
            Err(err) => found.push(Finding::Error(format!(
                "certificate {n} of `{shown}` is not an X.509 certificate: {err}"
            ))),
        }
    }
    found
}

fn private_key(path: &Path) -> Vec<Finding> {
    let mut found = match PrivateKeyDer::from_pem_file(path) {
        Ok(_) => Vec::new(),
        Err(rustls_pki_types::pem::Error::Io(err)) => {
            return vec![Finding::Error(unreadable(path, &err))]
        }
        Err(rustls_pki_types::pem::Error::NoItemsFound) => vec![Finding::Error(format!(
            "`{}` holds no PEM private key (-----BEGIN PRIVATE KEY-----, RSA or EC)",
            path.display()
        ))],
        Err(err) => vec![Finding::Error(format!(
            "`{}` is not a PEM private key: {err}",
            path.display()
        ))],
    };
    found.extend(readable_by_all(path).map(Finding::Warning));
    found
}

fn directory(path: &Path, must_exist: bool) -> Vec<Finding> {
    let shown = path.display();
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Vec::new(),
        Ok(_) => vec![Finding::Error(format!("`{shown}` is not a directory"))],
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && !must_exist => Vec::new(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            vec![Finding::Error(format!(
                "`{shown}` does not exist: create it (`kinedge devices add ID --config FILE` \
                 writes device files there) or correct the path (a relative one is relative \
                 to the folder of the config file)"
            ))]
        }
        Err(err) => vec![Finding::Error(format!("cannot look at `{shown}`: {err}"))],
    }
}

fn aws_environment() -> Vec<Finding> {
    let env = |name: &str| std::env::var(name).ok();
    match crate::delivery::destinations::aws::resolve_credentials(&Default::default(), &env) {
        Ok(_) => Vec::new(),
        Err(why) => vec![Finding::Warning(format!(
            "{why}: this delivery stream fails until the gateway's environment has them"
        ))],
    }
}

/// Whether the TLS listeners' certificates and keys belong together (once both are readable).
fn tls_fits(config: &Config, references: &[(ConfigIssue, Reference)], report: &mut Report) {
    let mut check = |prefix: &str, result: Result<(), String>| {
        if report.errors.iter().any(|i| i.key.starts_with(prefix)) {
            return;
        }
        if let Err(err) = result {
            let key = format!("{prefix}key");
            if let Some((at, _)) = references.iter().find(|(at, _)| at.key == key) {
                report.add(at, Finding::Error(err));
            }
        }
    };
    if let Some(tls) = &config.mqtt.tls {
        check(
            "mqtt.tls.",
            crate::ingest::mqtt::tls::acceptor(tls)
                .map(drop)
                .map_err(|e| e.to_string()),
        );
    }
    if let Some(tls) = &config.api.tls {
        check(
            "api.tls.",
            crate::api::tls::acceptor(tls)
                .map(drop)
                .map_err(|e| e.to_string()),
        );
    }
}

/// What a device file names: a camera's password, its file or device, its upload.
fn check_device(config: &Config, device: &Device, report: &mut Report) {
    let Some(camera) = &device.camera else { return };
    let text = std::fs::read_to_string(&device.file).unwrap_or_default();
    let doc = toml_edit::Document::parse(text.as_str()).ok();
    let at = |key: &str| ConfigIssue {
        file: device.file.display().to_string(),
        line: doc
            .as_ref()
            .and_then(|doc| crate::config::spans::line_of(doc, &text, key)),
        key: key.to_owned(),
        message: String::new(),
    };
    if let Some(password) = &camera.password {
        let key = match password {
            SecretSource::File(_) => "camera.password_file",
            SecretSource::Env(_) => "camera.password_env",
        };
        for finding in secret(password) {
            report.add(&at(key), finding);
        }
    }
    match &camera.source {
        CameraSource::File { path } if !path.is_file() => {
            let why = match std::fs::metadata(path) {
                Ok(_) => "is not a file".to_owned(),
                Err(err) => unreadable_reason(&err),
            };
            let message = format!("`{}` {why}", path.display());
            report.add(&at("camera.source"), Finding::Error(message));
        }
        CameraSource::V4l2 { device: dev } if !dev.exists() => {
            let message = format!(
                "`{}` is not there now: the camera is retried until it appears (under \
                 systemd, cameras in v4l2 mode need the kinedge-v4l2.conf drop-in)",
                dev.display()
            );
            report.add(&at("camera.source"), Finding::Warning(message));
        }
        _ => {}
    }
    if let Some(upload) = &camera.upload {
        let found = config
            .delivery_streams
            .iter()
            .find(|d| d.name == upload.destination);
        let problem = match found {
            Some(d) if d.source == SourceConfig::Video => None,
            Some(_) => Some("is not a video delivery stream (it needs source = \"video\")"),
            None => Some("names no [[delivery_streams]] entry (one with source = \"video\")"),
        };
        if let Some(problem) = problem {
            let message = format!("`{}` {problem}", upload.destination);
            report.add(&at("camera.upload.destination"), Finding::Error(message));
        }
    }
}

/// `does not exist` / `cannot be read: ...` after a path.
fn unreadable_reason(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::NotFound => "does not exist".to_owned(),
        _ => format!("cannot be read: {err}"),
    }
}
