//! The device registry: one TOML file per sensor or camera in the devices directory.
//!
//! A device file names the device (its id is also its MQTT client id), its kind, an Argon2
//! password hash (a PHC string; never a plaintext secret), the topic filters it may publish
//! and subscribe to (`{device}` stands for its own id), free-form metadata and, for a camera,
//! its `[camera]` table. Loading checks every file and reports every mistake with file, line
//! and key, like the configuration.
//!
//! Used by MQTT (authentication, ACLs) and video (the cameras to run). Invariants: a loaded
//! [`Device`] is fully checked (its filters are valid and expanded, its hash is an Argon2 PHC
//! string, a camera's table is a checked [`camera::CameraConfig`]); ids are unique in a
//! registry; a device file is never written in place (temporary file, then rename). This part
//! depends only on the `config` toolkit (spans, issues, sizes): never on ingest, video,
//! delivery or api.

pub mod camera;
mod device;
mod file;
mod registry;
pub mod topics;

#[cfg(test)]
mod tests;

pub use device::{hash_secret, is_valid_device_id, Device, DeviceKind};
pub use file::{parse_device, write_device_file, DeviceFileError};
pub use registry::{DeviceErrors, DeviceRegistry};
