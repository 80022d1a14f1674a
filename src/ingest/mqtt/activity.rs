//! What each device did on the MQTT listener, for the console and `/status`: connected now
//! (how many connections), from which address, since when, last seen, messages and bytes
//! stored, publishes and connections refused. Keyed by the device name (the client id of an
//! anonymous client); bounded: beyond `MAX_DEVICES` entries the one seen longest ago that is
//! not connected is forgotten.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use serde::Serialize;

/// Devices remembered at most.
pub const MAX_DEVICES: usize = 10_000;

#[derive(Debug, Clone, Default, Serialize)]
pub struct DeviceSeen {
    pub connections: u32,
    pub address: Option<String>,
    /// Epoch ms.
    pub connected_at: Option<u64>,
    pub last_seen: u64,
    pub messages: u64,
    pub bytes: u64,
    pub refused: u64,
}

#[derive(Debug, Default)]
pub struct DeviceActivity {
    seen: Mutex<HashMap<String, DeviceSeen>>,
}

impl DeviceActivity {
    fn update(&self, device: &str, f: impl FnOnce(&mut DeviceSeen)) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if !seen.contains_key(device) && seen.len() >= MAX_DEVICES {
            let oldest = seen
                .iter()
                .filter(|(_, s)| s.connections == 0)
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    seen.remove(&k);
                }
                None => return,
            }
        }
        let entry = seen.entry(device.to_string()).or_default();
        entry.last_seen = crate::storage::now_ms();
        f(entry);
    }

    pub fn connected(&self, device: &str, address: IpAddr) {
        self.update(device, |s| {
            s.connections += 1;
            s.address = Some(address.to_string());
            s.connected_at = Some(crate::storage::now_ms());
        });
    }

    pub fn disconnected(&self, device: &str) {
        self.update(device, |s| s.connections = s.connections.saturating_sub(1));
    }

    pub fn stored(&self, device: &str, bytes: usize) {
        self.update(device, |s| {
            s.messages += 1;
            s.bytes += bytes as u64;
        });
    }

    pub fn refused(&self, device: &str) {
        self.update(device, |s| s.refused += 1);
    }

    /// Every device seen, by name.
    pub fn snapshot(&self) -> HashMap<String, DeviceSeen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_counted_and_the_oldest_offline_one_is_forgotten() {
        let a = DeviceActivity::default();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        a.connected("d1", ip);
        a.stored("d1", 10);
        a.stored("d1", 5);
        a.refused("d1");
        let s = &a.snapshot()["d1"];
        assert_eq!(
            (s.connections, s.messages, s.bytes, s.refused),
            (1, 2, 15, 1)
        );
        assert_eq!(s.address.as_deref(), Some("127.0.0.1"));
        a.disconnected("d1");
        assert_eq!(a.snapshot()["d1"].connections, 0);
        for i in 0..MAX_DEVICES + 5 {
            a.connected(&format!("x{i}"), ip);
        }
        // All connected: nothing to forget, so the newest are not tracked; d1 (offline) went.
        let snap = a.snapshot();
        assert_eq!(snap.len(), MAX_DEVICES);
        assert!(!snap.contains_key("d1"));
    }
}
