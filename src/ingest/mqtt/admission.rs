//! Who may hold a connection: the pre-CONNECT budget and the connection slots.
//!
//! A new socket first takes a *pending* place: at most `mqtt.max_pending_connections` in all
//! and `mqtt.max_pending_per_address` per IP address; beyond either it is closed at once.
//! Only an authenticated session takes one of the `mqtt.max_connections` *slots*, and gives
//! its pending place back. So sockets that never send CONNECT (or send a wrong password)
//! cannot lock devices out; they only compete with each other, and one address cannot take
//! the whole pending budget.
//!
//! Invariants: every place and slot is given back when its guard drops; the per-address map
//! holds only addresses with at least one pending connection.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a new socket was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// `mqtt.max_pending_connections` reached.
    Pending,
    /// `mqtt.max_pending_per_address` reached for this address.
    Address,
}

pub struct Admission {
    pending: Arc<Semaphore>,
    per_address: Arc<Mutex<HashMap<IpAddr, u32>>>,
    max_per_address: u32,
    /// One permit per authenticated connection that may be open.
    pub slots: Arc<Semaphore>,
}

/// A not-yet-authenticated connection's place; given back on drop.
pub struct Pending {
    _permit: OwnedSemaphorePermit,
    address: IpAddr,
    per_address: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

impl Pending {
    /// The client's address.
    pub fn address(&self) -> IpAddr {
        self.address
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut map = match self.per_address.lock() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(n) = map.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.address);
            }
        }
    }
}

impl Admission {
    pub fn new(max_connections: usize, max_pending: usize, max_per_address: u32) -> Admission {
        Admission {
            pending: Arc::new(Semaphore::new(max_pending)),
            per_address: Arc::default(),
            max_per_address,
            slots: Arc::new(Semaphore::new(max_connections)),
        }
    }

    /// A pending place for a new socket from `address`.
    pub fn admit(&self, address: IpAddr) -> Result<Pending, Busy> {
        let mut map = match self.per_address.lock() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        };
        let count = map.entry(address).or_insert(0);
        if *count >= self.max_per_address {
            if *count == 0 {
                map.remove(&address);
            }
            return Err(Busy::Address);
        }
        let Ok(permit) = self.pending.clone().try_acquire_owned() else {
            if *count == 0 {
                map.remove(&address);
            }
            return Err(Busy::Pending);
        };
        *count += 1;
        Ok(Pending {
            _permit: permit,
            address,
            per_address: self.per_address.clone(),
        })
    }

    /// A connection slot for an authenticated session, if one is free.
    pub fn connect(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_places_per_address_and_in_all() {
        let admission = Admission::new(1, 3, 2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let a1 = admission.admit(a).unwrap();
        let _a2 = admission.admit(a).unwrap();
        assert_eq!(admission.admit(a).err(), Some(Busy::Address));
        let _b1 = admission.admit(b).unwrap();
        assert_eq!(admission.admit(b).err(), Some(Busy::Pending));
        drop(a1);
        let _b2 = admission.admit(b).unwrap();
        // Slots are separate from pending places.
        let slot = admission.connect().unwrap();
        assert!(admission.connect().is_none());
        drop(slot);
        assert!(admission.connect().is_some());
        assert_eq!(admission.per_address.lock().unwrap().len(), 2);
    }
}
