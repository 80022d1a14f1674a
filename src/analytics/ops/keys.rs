//! The dictionary of group keys shared by every window of every application: each key held
//! once, with the number of groups that hold it, found by its 4-byte id; a key no group holds
//! any more is removed and its id reused.
//!
//! Invariant: a key's holder count is the number of ids in live `Groups` that name it.

use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use hashbrown::{DefaultHashBuilder, HashTable};

use crate::analytics::value::Value;

/// Every group key held by any window of any application, once, with the number of groups
/// that hold it; a key no group holds any more is removed and its id reused.
pub(super) static KEYS: KeyTable = KeyTable {
    inner: Mutex::new(None),
};

pub(super) struct KeyTable {
    inner: Mutex<Option<Keys>>,
}

#[derive(Default)]
struct Keys {
    /// By id: the key and its holders (None: a free id).
    slots: Vec<Option<(Arc<[Value]>, u32)>>,
    free: Vec<u32>,
    /// Ids, hashed by their key's values.
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl Keys {
    fn find(&self, key: &[Value]) -> Option<u32> {
        let slots = &self.slots;
        self.index
            .find(self.hasher.hash_one(key), |&id| {
                slots[id as usize]
                    .as_ref()
                    .is_some_and(|(k, _)| &k[..] == key)
            })
            .copied()
    }
}

impl KeyTable {
    fn with<T>(&self, f: impl FnOnce(&mut Keys) -> T) -> T {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(guard.get_or_insert_with(Keys::default))
    }

    /// The id of `key`, if some group holds it.
    pub(super) fn id_of(&self, key: &[Value]) -> Option<u32> {
        self.with(|keys| keys.find(key))
    }

    /// The id of `key`, one more holder counted.
    pub(super) fn acquire(&self, key: Vec<Value>) -> u32 {
        self.with(|keys| {
            if let Some(id) = keys.find(&key) {
                if let Some((_, holders)) = &mut keys.slots[id as usize] {
                    *holders += 1;
                }
                return id;
            }
            let hash = keys.hasher.hash_one(key.as_slice());
            let entry = Some((Arc::<[Value]>::from(key), 1));
            let id = match keys.free.pop() {
                Some(id) => {
                    keys.slots[id as usize] = entry;
                    id
                }
                None => {
                    keys.slots.push(entry);
                    (keys.slots.len() - 1) as u32
                }
            };
            let (slots, hasher) = (&keys.slots, &keys.hasher);
            keys.index.insert_unique(hash, id, |&other| {
                hasher.hash_one(
                    slots[other as usize]
                        .as_ref()
                        .map_or(&[][..], |(k, _)| &k[..]),
                )
            });
            id
        })
    }

    /// One more holder of each of `ids`.
    pub(super) fn retain(&self, ids: &[u32]) {
        self.with(|keys| {
            for &id in ids {
                if let Some(Some((_, holders))) = keys.slots.get_mut(id as usize) {
                    *holders += 1;
                }
            }
        })
    }

    /// One holder fewer of each of `ids`; keys no longer held are removed.
    pub(super) fn release(&self, ids: &[u32]) {
        self.with(|keys| {
            for &id in ids {
                let Some(slot) = keys.slots.get_mut(id as usize) else {
                    continue;
                };
                let gone = match slot {
                    Some((_, holders)) => {
                        *holders = holders.saturating_sub(1);
                        *holders == 0
                    }
                    None => false,
                };
                if gone {
                    if let Some((key, _)) = slot.take() {
                        let hash = keys.hasher.hash_one(&key[..]);
                        if let Ok(entry) = keys.index.find_entry(hash, |&other| other == id) {
                            entry.remove();
                        }
                        keys.free.push(id);
                    }
                }
            }
        })
    }

    /// The keys of `ids`.
    pub(super) fn keys(&self, ids: &[u32]) -> Vec<Arc<[Value]>> {
        self.with(|keys| {
            ids.iter()
                .map(|&id| {
                    keys.slots
                        .get(id as usize)
                        .and_then(|slot| slot.as_ref())
                        .map_or_else(|| Arc::from(Vec::new()), |(key, _)| key.clone())
                })
                .collect()
        })
    }

    #[cfg(test)]
    pub(super) fn held(&self, key: &[Value]) -> u32 {
        self.with(|keys| {
            keys.find(key)
                .and_then(|id| keys.slots[id as usize].as_ref().map(|(_, n)| *n))
                .unwrap_or(0)
        })
    }
}
