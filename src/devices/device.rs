//! One device as its file describes it, and what it may do: publish and subscribe by its
//! topic ACL, log in with the secret whose Argon2 hash its file holds.

use std::collections::BTreeMap;
use std::path::PathBuf;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use super::camera::CameraConfig;
use super::file::DeviceFileError;
use super::topics;

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
    pub camera: Option<CameraConfig>,
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
pub fn hash_secret(secret: &str) -> Result<String, DeviceFileError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| DeviceFileError::Hash(e.to_string()))
}
