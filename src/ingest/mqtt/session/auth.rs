//! Who a connection is: a device authenticated by its password (Argon2, verified off the
//! runtime, a few at a time) or its TLS client certificate, or an anonymous client when
//! `mqtt.allow_anonymous` is set. A device's client id must be its id (or match
//! `mqtt.client_id_pattern`).

use std::sync::Arc;

use rumqttd::protocol::ConnectReturnCode;

use super::super::shared::MqttShared;
use crate::devices::Device;

/// Who is connected.
pub(super) struct Identity {
    pub(super) client_id: String,
    /// `None` for an anonymous client (only with `mqtt.allow_anonymous`).
    pub(super) device: Option<Arc<Device>>,
}

impl Identity {
    pub(super) fn name(&self) -> &str {
        self.device.as_ref().map_or(&self.client_id, |d| &d.id)
    }

    pub(super) fn may_publish(&self, topic: &str) -> bool {
        self.device.as_ref().is_none_or(|d| d.may_publish(topic))
    }

    pub(super) fn may_subscribe(&self, filter: &str) -> bool {
        self.device.as_ref().is_none_or(|d| d.may_subscribe(filter))
    }
}

/// Why a CONNECT is refused: the CONNACK code and the reason for the log.
pub(super) type AuthRefusal = (ConnectReturnCode, &'static str);

/// True when `client_id` is the device id, or matches `mqtt.client_id_pattern` for it.
pub(super) fn client_id_allowed(pattern: Option<&str>, device: &str, client_id: &str) -> bool {
    if client_id == device {
        return true;
    }
    let Some(pattern) = pattern else { return false };
    let pattern = pattern.replace("{device}", device);
    // `*` matches a run of id characters.
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = client_id;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i + 1 == parts.len() {
            let Some(middle) = rest.strip_suffix(part) else {
                return false;
            };
            return middle
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        } else {
            let Some(at) = rest.find(part) else {
                return false;
            };
            rest = &rest[at + part.len()..];
        }
    }
    rest.is_empty()
}

pub(super) async fn authenticate(
    shared: &MqttShared,
    client_id: &str,
    login: Option<(String, String)>,
    certificate_device: Option<String>,
) -> Result<Identity, AuthRefusal> {
    if let Some(cn) = certificate_device {
        return certificate_identity(shared, &cn, login.as_ref(), client_id);
    }
    let Some((username, password)) = login else {
        // Anonymous client ids follow the device id rules, so none can pose as the gateway's
        // own broker link.
        if shared.settings.allow_anonymous && crate::devices::is_valid_device_id(client_id) {
            return Ok(Identity {
                client_id: client_id.to_string(),
                device: None,
            });
        }
        return Err((
            ConnectReturnCode::NotAuthorized,
            "no credentials, and mqtt.allow_anonymous is false",
        ));
    };
    let device = shared.device(&username);
    let Some(device) = device else {
        return Err((ConnectReturnCode::BadUserNamePassword, "unknown device"));
    };
    // Argon2 is slow on purpose: verify off the runtime, a few at a time.
    let permit = shared.auth_slots.acquire().await;
    let verified = {
        let device = device.clone();
        tokio::task::spawn_blocking(move || device.verify_password(password.as_bytes()))
            .await
            .unwrap_or(false)
    };
    drop(permit);
    if !verified {
        return Err((ConnectReturnCode::BadUserNamePassword, "wrong password"));
    }
    device_identity(shared, device, client_id)
}

/// A device authenticated by the CN of its verified TLS client certificate (a username, if
/// any, must be that CN).
fn certificate_identity(
    shared: &MqttShared,
    cn: &str,
    login: Option<&(String, String)>,
    client_id: &str,
) -> Result<Identity, AuthRefusal> {
    let Some(device) = shared.device(cn) else {
        return Err((
            ConnectReturnCode::NotAuthorized,
            "the client certificate's CN is not a device",
        ));
    };
    if login.is_some_and(|(username, _)| username != cn) {
        return Err((
            ConnectReturnCode::NotAuthorized,
            "the username differs from the client certificate's CN",
        ));
    }
    device_identity(shared, device, client_id)
}

/// An authenticated device connecting with `client_id`: the id must be its own (or match
/// `mqtt.client_id_pattern`).
fn device_identity(
    shared: &MqttShared,
    device: Arc<Device>,
    client_id: &str,
) -> Result<Identity, AuthRefusal> {
    if !client_id_allowed(
        shared.settings.client_id_pattern.as_deref(),
        &device.id,
        client_id,
    ) {
        return Err((
            ConnectReturnCode::ClientIdentifierNotValid,
            "the client id is not the device id",
        ));
    }
    Ok(Identity {
        client_id: client_id.to_string(),
        device: Some(device),
    })
}
