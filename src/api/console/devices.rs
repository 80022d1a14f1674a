//! The console's device registry calls, the `kinedge devices` commands over HTTP:
//! `GET /console/api/devices` (the device files, as the gateway would load them),
//! `POST /console/api/devices` (`{"id", "kind"?, "publish"?, "subscribe"?}`: writes a device
//! file with a new random secret, answered once and stored only as its Argon2 hash) and
//! `DELETE /console/api/devices/{id}` (removes its file). The gateway's directory watch loads
//! the change within seconds and disconnects a removed device. Hashing and file I/O run on
//! the blocking pool.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use http::StatusCode;
use serde::Deserialize;

use super::super::auth::Signed;
use super::{message, ConsoleState};
use crate::devices::{hash_secret, write_device_file, DeviceFileError, DeviceKind, DeviceRegistry};

/// Every device file in the devices directory, with the problems of those that do not load.
pub(super) async fn list(State(state): State<Arc<ConsoleState>>, _signed: Signed) -> Response {
    let dir = state.devices_dir.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        let (registry, issues) = DeviceRegistry::load_all(&dir);
        let devices: Vec<serde_json::Value> = registry
            .devices()
            .into_iter()
            .map(|d| {
                serde_json::json!({
                    "id": d.id,
                    "kind": d.kind.as_str(),
                    "has_secret": d.password_hash.is_some(),
                    "publish": d.publish,
                    "subscribe": d.subscribe,
                    "metadata": d.metadata,
                })
            })
            .collect();
        let problems: Vec<String> = issues.iter().map(|i| i.to_string()).collect();
        serde_json::json!({"dir": dir, "devices": devices, "problems": problems})
    })
    .await;
    match loaded {
        Ok(mut answer) => {
            answer["mqtt"] = state
                .ops
                .mqtt
                .as_ref()
                .map(|m| m.status())
                .unwrap_or_default();
            Json(answer).into_response()
        }
        Err(e) => message(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

#[derive(Deserialize)]
pub(super) struct NewDevice {
    id: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    publish: Vec<String>,
    #[serde(default)]
    subscribe: Vec<String>,
}

/// Adds a device (the defaults of `kinedge devices add`); its secret is in the answer only.
pub(super) async fn add(
    State(state): State<Arc<ConsoleState>>,
    _signed: Signed,
    Json(new): Json<NewDevice>,
) -> Response {
    let kind = match new.kind.as_deref() {
        None | Some("") => DeviceKind::Sensor,
        Some(k) => match DeviceKind::parse(k) {
            Some(kind) => kind,
            None => return message(StatusCode::BAD_REQUEST, "kind is `sensor` or `camera`"),
        },
    };
    let publish = or_default(new.publish, "devices/{device}/#");
    let subscribe = or_default(new.subscribe, "devices/{device}/commands/#");
    let secret =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>());
    let dir = state.devices_dir.clone();
    let id = new.id.clone();
    let hashed = secret.clone();
    let written = tokio::task::spawn_blocking(move || {
        hash_secret(&hashed)
            .and_then(|hash| write_device_file(&dir, &id, kind, &publish, &subscribe, &hash))
    })
    .await;
    match written {
        Ok(Ok(path)) => {
            tracing::info!(device = %new.id, file = %path.display(), "device added from the console");
            Json(serde_json::json!({"id": new.id, "kind": kind.as_str(), "secret": secret, "file": path}))
                .into_response()
        }
        Ok(Err(e @ DeviceFileError::Exists(_))) => message(StatusCode::CONFLICT, &e.to_string()),
        Ok(Err(e @ (DeviceFileError::InvalidId(_) | DeviceFileError::InvalidFilter { .. }))) => {
            message(StatusCode::BAD_REQUEST, &e.to_string())
        }
        Ok(Err(e)) => message(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Err(e) => message(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

fn or_default(filters: Vec<String>, default: &str) -> Vec<String> {
    if filters.is_empty() {
        vec![default.to_string()]
    } else {
        filters
    }
}

/// Removes a device's file.
pub(super) async fn remove(
    State(state): State<Arc<ConsoleState>>,
    _signed: Signed,
    Path(id): Path<String>,
) -> Response {
    let dir = state.devices_dir.clone();
    let removed =
        tokio::task::spawn_blocking(move || -> Result<Option<PathBuf>, std::io::Error> {
            let (registry, _) = DeviceRegistry::load_all(&dir);
            let Some(device) = registry.get(&id) else {
                return Ok(None);
            };
            std::fs::remove_file(&device.file)?;
            Ok(Some(device.file.clone()))
        })
        .await;
    match removed {
        Ok(Ok(Some(file))) => {
            tracing::info!(file = %file.display(), "device removed from the console");
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(Ok(None)) => message(StatusCode::NOT_FOUND, "no such device"),
        Ok(Err(e)) => message(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Err(e) => message(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}
