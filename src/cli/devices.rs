//! `kinedge devices`: adds, lists and checks device files (sensors and cameras) in the
//! devices directory, without a running gateway.

use std::path::PathBuf;
use std::process::ExitCode;

use super::args::DevicesAction;
use super::load_config;
use crate::devices::{hash_secret, write_device_file, DeviceKind, DeviceRegistry};

pub(super) fn devices_command(
    action: DevicesAction,
    config: Option<PathBuf>,
    dir: Option<PathBuf>,
) -> ExitCode {
    let dir = match dir {
        Some(dir) => dir,
        None => match load_config(config.as_deref()) {
            Ok(config) => config.devices.dir,
            Err(code) => return code,
        },
    };
    match action {
        DevicesAction::Add {
            id,
            kind,
            publish,
            subscribe,
        } => {
            let kind = DeviceKind::parse(&kind).unwrap_or(DeviceKind::Sensor);
            let publish = if publish.is_empty() {
                vec!["devices/{device}/#".to_string()]
            } else {
                publish
            };
            let subscribe = if subscribe.is_empty() {
                vec!["devices/{device}/commands/#".to_string()]
            } else {
                subscribe
            };
            let secret_bytes: [u8; 24] = rand::random();
            use base64::Engine;
            let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret_bytes);
            let result = hash_secret(&secret)
                .and_then(|hash| write_device_file(&dir, &id, kind, &publish, &subscribe, &hash));
            match result {
                Ok(path) => {
                    eprintln!(
                        "created {} ({}); its secret, shown once (only a hash is stored):",
                        path.display(),
                        kind.as_str()
                    );
                    println!("{secret}");
                    eprintln!("devices connect with MQTT client id and username `{id}` and this secret as password");
                    ExitCode::SUCCESS
                }
                Err(message) => {
                    eprintln!("error: {message}");
                    ExitCode::FAILURE
                }
            }
        }
        DevicesAction::List => match DeviceRegistry::load(&dir) {
            Ok(registry) => {
                println!(
                    "{:<24} {:<7} {:<9} {:<40} metadata",
                    "id", "kind", "password", "publish"
                );
                for d in registry.devices() {
                    let metadata = d
                        .metadata
                        .iter()
                        .map(|(k, v)| {
                            format!(
                                "{k}={}",
                                v.as_str()
                                    .map(String::from)
                                    .unwrap_or_else(|| v.to_string())
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(" ");
                    println!(
                        "{:<24} {:<7} {:<9} {:<40} {metadata}",
                        d.id,
                        d.kind.as_str(),
                        if d.password_hash.is_some() {
                            "yes"
                        } else {
                            "none"
                        },
                        d.publish.join(",")
                    );
                }
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::from(2)
            }
        },
    }
}
