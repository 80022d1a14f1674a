//! QoS 2 packet ids received (stored, PUBREC sent or due) and not yet released by PUBREL,
//! per client id, kept across connections of a persistent session.
//!
//! MQTT 5 §4.3.3 / 3.1.1 §4.3.3: the receiver must not deliver a QoS 2 message twice; a client
//! that reconnects to its session resends an unreleased PUBLISH with DUP, and that must get
//! PUBREC without a second record. So the ids live here, not in the connection.
//!
//! Invariants: a clean session (3.1.1 clean session, MQTT 5 clean start) starts with no ids;
//! ids of a session that ends at disconnect (3.1.1 clean session, MQTT 5 session expiry 0)
//! are dropped then; those of an expired MQTT 5 session are dropped when it expires (checked
//! at every attach and detach). A client has at most 65535 ids (one per packet id); an entry
//! without ids is not kept once its connection ends.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One client's unreleased QoS 2 packet ids.
pub type Ids = Arc<Mutex<HashSet<u16>>>;

/// Locks `ids` (a poisoned lock still holds a valid set).
pub fn lock(ids: &Ids) -> MutexGuard<'_, HashSet<u16>> {
    ids.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Entry {
    ids: Ids,
    /// Which connection attached last (a detach of an older one changes nothing).
    connection: u64,
    /// `None` while a connection holds the session, or for a session that never expires.
    expires: Option<Instant>,
}

/// The unreleased ids of every client with a session.
#[derive(Default)]
pub struct Qos2Sessions {
    clients: Mutex<HashMap<String, Entry>>,
    connections: std::sync::atomic::AtomicU64,
}

/// A connection's hold on its session's ids.
pub struct Attached {
    pub ids: Ids,
    connection: u64,
}

impl Qos2Sessions {
    fn clients(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The ids of `client_id`'s session for a new connection: none if `clean` (or the session
    /// expired), else those left by its last connection.
    pub fn attach(&self, client_id: &str, clean: bool) -> Attached {
        let connection = self
            .connections
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = Instant::now();
        let mut clients = self.clients();
        clients.retain(|_, e| e.expires.is_none_or(|at| at > now));
        if !clean {
            if let Some(entry) = clients.get_mut(client_id) {
                entry.expires = None;
                entry.connection = connection;
                return Attached {
                    ids: entry.ids.clone(),
                    connection,
                };
            }
        }
        let ids = Ids::default();
        clients.insert(
            client_id.to_string(),
            Entry {
                ids: ids.clone(),
                connection,
                expires: None,
            },
        );
        Attached { ids, connection }
    }

    /// The connection that attached ended. `keep`: how long the session outlives it
    /// (`None`: it ends now; `Some(Duration::MAX)`: it never expires).
    pub fn detach(&self, client_id: &str, attached: &Attached, keep: Option<Duration>) {
        let now = Instant::now();
        let mut clients = self.clients();
        clients.retain(|_, e| e.expires.is_none_or(|at| at > now));
        // A newer connection may have taken the session over: leave its entry alone.
        let Some(entry) = clients.get_mut(client_id) else {
            return;
        };
        if entry.connection != attached.connection {
            return;
        }
        match keep {
            Some(keep) if !lock(&entry.ids).is_empty() => entry.expires = now.checked_add(keep),
            _ => {
                clients.remove(client_id);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.clients().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_survive_a_reconnect_of_a_persistent_session_only() {
        let sessions = Qos2Sessions::default();
        let ids = sessions.attach("c1", false);
        lock(&ids.ids).insert(7);
        sessions.detach("c1", &ids, Some(Duration::MAX));
        let again = sessions.attach("c1", false);
        assert!(lock(&again.ids).contains(&7));
        sessions.detach("c1", &again, Some(Duration::MAX));
        // A clean start forgets them.
        let clean = sessions.attach("c1", true);
        assert!(lock(&clean.ids).is_empty());
        sessions.detach("c1", &clean, None);
        assert_eq!(sessions.len(), 0);
    }

    #[test]
    fn a_session_ending_at_disconnect_or_expired_drops_its_ids() {
        let sessions = Qos2Sessions::default();
        let ids = sessions.attach("c1", false);
        lock(&ids.ids).insert(1);
        sessions.detach("c1", &ids, None);
        assert!(lock(&sessions.attach("c1", false).ids).is_empty());

        let ids = sessions.attach("c2", false);
        lock(&ids.ids).insert(2);
        sessions.detach("c2", &ids, Some(Duration::ZERO));
        assert!(lock(&sessions.attach("c2", false).ids).is_empty());
    }

    #[test]
    fn a_taken_over_connection_leaves_the_new_one_alone() {
        let sessions = Qos2Sessions::default();
        let old = sessions.attach("c1", false);
        let new = sessions.attach("c1", false);
        assert!(Arc::ptr_eq(&old.ids, &new.ids));
        lock(&new.ids).insert(3);
        // The old connection ends after the new one took over: the ids stay.
        sessions.detach("c1", &old, None);
        let clean = sessions.attach("c1", true);
        assert!(lock(&clean.ids).is_empty());
        sessions.detach("c1", &new, None);
        lock(&clean.ids).insert(4);
        sessions.detach("c1", &clean, Some(Duration::MAX));
        let again = sessions.attach("c1", false);
        assert!(lock(&again.ids).contains(&4) && !lock(&again.ids).contains(&3));
    }
}
