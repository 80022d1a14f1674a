//! The device registry's tests: device files, the registry, the shipped examples.

use std::path::Path;

use super::*;
use crate::config::ConfigIssue;

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
    let found: Vec<(String, Option<usize>)> = err.iter().map(|i| (i.key.clone(), i.line)).collect();
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
    assert!(write_device_file(dir.path(), "pump-7", DeviceKind::Sensor, &[], &[], &hash).is_err());
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
