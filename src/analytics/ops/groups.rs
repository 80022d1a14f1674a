//! The groups of one window of a window aggregation: group key -> one accumulator per
//! aggregate. A group holds its key as a 4-byte id into [`KEYS`], the dictionary of every group
//! key held by any window of any application (a device id open in two windows of fifty
//! applications is one entry there), and its accumulators in a flat arena (group `i`'s are
//! `accs[i * a..][..a]`); groups are found through a hash table of group indices hashed by id.
//! Per group that costs 4 bytes of key and ~10 bytes of table besides the accumulators: window
//! state is most of an application's memory (50 applications x 1,000 devices x two open
//! windows).
//!
//! Invariants: every index in `table` is `< len()`; all groups have `a` accumulators (fixed by
//! the first insert); a `Groups` holds one reference in [`KEYS`] for each of its ids, taken when
//! a group is inserted (or the groups cloned) and given back when they are dropped or taken
//! apart. Serialized as a map from key to accumulators, as the `HashMap<Box<[Value]>,
//! Box<[Acc]>>` it replaced (checkpoints stay readable).

use std::fmt;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use hashbrown::{DefaultHashBuilder, HashTable};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::aggregate::Acc;
use crate::analytics::value::Value;

#[derive(Default)]
pub struct Groups {
    /// Accumulators per group.
    a: usize,
    /// Each group's key, as its id in [`KEYS`].
    ids: Vec<u32>,
    accs: Vec<Acc>,
    table: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl Groups {
    /// Room for `groups` groups of `a` accumulators, allocated at once (`_k`, the number of key
    /// values, no longer matters: a key is one id whatever its width).
    pub fn with_capacity(_k: usize, a: usize, groups: usize) -> Groups {
        Groups {
            a,
            ids: Vec::with_capacity(groups),
            accs: Vec::with_capacity(a * groups),
            table: HashTable::with_capacity(groups),
            hasher: DefaultHashBuilder::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    fn find(&self, id: u32) -> Option<u32> {
        let ids = &self.ids;
        self.table
            .find(self.hasher.hash_one(id), |&i| ids[i as usize] == id)
            .copied()
    }

    /// The accumulators of the group `key`.
    pub fn get_mut(&mut self, key: &[Value]) -> Option<&mut [Acc]> {
        let i = self.find(KEYS.id_of(key)?)?;
        Some(&mut self.accs[i as usize * self.a..][..self.a])
    }

    /// Adds a group that is not there yet.
    pub fn insert(&mut self, key: Vec<Value>, accs: Vec<Acc>) {
        if self.table.is_empty() {
            self.a = accs.len();
            self.accs.clear();
        }
        debug_assert!(accs.len() == self.a);
        let id = KEYS.acquire(key);
        debug_assert!(self.find(id).is_none(), "a group is inserted once");
        let index = self.table.len() as u32;
        grow_for(&mut self.ids, 1);
        grow_for(&mut self.accs, self.a);
        self.ids.push(id);
        self.accs.extend(accs);
        let (ids, hasher) = (&self.ids, &self.hasher);
        self.table.insert_unique(hasher.hash_one(id), index, |&i| {
            hasher.hash_one(ids[i as usize])
        });
    }

    /// Every group: (key, accumulators), in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (Arc<[Value]>, &[Acc])> {
        KEYS.keys(&self.ids)
            .into_iter()
            .enumerate()
            .map(move |(i, key)| (key, &self.accs[i * self.a..][..self.a]))
    }

    /// Every group, owned (for merging sessions).
    pub fn into_entries(mut self) -> impl Iterator<Item = (Vec<Value>, Vec<Acc>)> {
        let ids = std::mem::take(&mut self.ids);
        let keys = KEYS.keys(&ids);
        KEYS.release(&ids);
        let a = self.a;
        let mut accs = std::mem::take(&mut self.accs).into_iter();
        keys.into_iter()
            .map(move |key| (key.to_vec(), accs.by_ref().take(a).collect()))
    }
}

impl Clone for Groups {
    fn clone(&self) -> Groups {
        KEYS.retain(&self.ids);
        Groups {
            a: self.a,
            ids: self.ids.clone(),
            accs: self.accs.clone(),
            table: self.table.clone(),
            hasher: self.hasher.clone(),
        }
    }
}

impl Drop for Groups {
    fn drop(&mut self) {
        if !self.ids.is_empty() {
            KEYS.release(&self.ids);
        }
    }
}

/// Room for `n` more items, growing by a quarter instead of doubling: a window's number of
/// groups is about the last window's (its capacity hint), so a doubling for the few groups
/// past the hint would leave most of the largest allocation in the state unused.
fn grow_for<T>(v: &mut Vec<T>, n: usize) {
    if v.capacity() - v.len() < n {
        v.reserve_exact((n * 4).max(v.len() / 4));
    }
}

impl fmt::Debug for Groups {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Groups {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter().map(|(key, accs)| (KeySlice(key), accs)))
    }
}

/// A key serialized as the sequence of its values (as `Vec<Value>` was).
struct KeySlice(Arc<[Value]>);

impl Serialize for KeySlice {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter())
    }
}

impl<'de> Deserialize<'de> for Groups {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct GroupsVisitor;
        impl<'de> Visitor<'de> for GroupsVisitor {
            type Value = Groups;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map from group key to accumulators")
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Groups, M::Error> {
                let mut groups = Groups::default();
                let mut width = None;
                while let Some((key, accs)) = map.next_entry::<Vec<Value>, Vec<Acc>>()? {
                    if !groups.is_empty() && (Some(key.len()) != width || accs.len() != groups.a) {
                        return Err(serde::de::Error::custom(
                            "groups of different widths in one window",
                        ));
                    }
                    width = Some(key.len());
                    if groups.get_mut(&key).is_none() {
                        groups.insert(key, accs);
                    }
                }
                Ok(groups)
            }
        }
        deserializer.deserialize_map(GroupsVisitor)
    }
}

/// Every group key held by any window of any application, once, with the number of groups
/// that hold it; a key no group holds any more is removed and its id reused.
static KEYS: KeyTable = KeyTable {
    inner: Mutex::new(None),
};

struct KeyTable {
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
    fn id_of(&self, key: &[Value]) -> Option<u32> {
        self.with(|keys| keys.find(key))
    }

    /// The id of `key`, one more holder counted.
    fn acquire(&self, key: Vec<Value>) -> u32 {
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
    fn retain(&self, ids: &[u32]) {
        self.with(|keys| {
            for &id in ids {
                if let Some(Some((_, holders))) = keys.slots.get_mut(id as usize) {
                    *holders += 1;
                }
            }
        })
    }

    /// One holder fewer of each of `ids`; keys no longer held are removed.
    fn release(&self, ids: &[u32]) {
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
    fn keys(&self, ids: &[u32]) -> Vec<Arc<[Value]>> {
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
    fn held(&self, key: &[Value]) -> u32 {
        self.with(|keys| {
            keys.find(key)
                .and_then(|id| keys.slots[id as usize].as_ref().map(|(_, n)| *n))
                .unwrap_or(0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_found_by_key_and_survive_a_round_trip() {
        let mut g = Groups::with_capacity(1, 1, 2);
        for i in 0..100 {
            g.insert(vec![Value::str(&format!("dev-{i}"))], vec![Acc::Count(i)]);
        }
        assert_eq!(g.len(), 100);
        let Some([Acc::Count(n)]) = g.get_mut(&[Value::str("dev-42")]) else {
            panic!("dev-42 is there");
        };
        *n += 1;
        assert!(g.get_mut(&[Value::str("dev-100")]).is_none());
        let mut bytes = Vec::new();
        ciborium::into_writer(&g, &mut bytes).unwrap();
        let mut back: Groups = ciborium::from_reader(bytes.as_slice()).unwrap();
        assert!(matches!(
            back.get_mut(&[Value::str("dev-42")]),
            Some([Acc::Count(43)])
        ));
        // The format of the map it replaced: older checkpoints still load.
        let old: std::collections::HashMap<Box<[Value]>, Box<[Acc]>> =
            ciborium::from_reader(bytes.as_slice()).unwrap();
        assert_eq!(old.len(), 100);
        let entries: Vec<_> = back.into_entries().collect();
        assert_eq!(entries.len(), 100);
        assert!(entries.iter().all(|(k, a)| k.len() == 1 && a.len() == 1));
        // No key columns (GROUP BY window_start, window_end only).
        let mut g = Groups::default();
        g.insert(vec![], vec![Acc::Count(1)]);
        assert!(g.get_mut(&[]).is_some());
        assert_eq!(g.into_entries().count(), 1);
    }

    #[test]
    fn keys_are_held_once_while_some_window_holds_them() {
        // Keys no other test uses: the dictionary is shared by every window of the process.
        let key = |i: usize| vec![Value::str(&format!("held-{i}")), Value::Int(i as i64)];
        let mut first = Groups::with_capacity(2, 1, 4);
        let mut second = Groups::with_capacity(2, 1, 4);
        for i in 0..10 {
            first.insert(key(i), vec![Acc::Count(1)]);
        }
        for i in 5..15 {
            second.insert(key(i), vec![Acc::Count(2)]);
        }
        assert_eq!(KEYS.held(&key(0)), 1);
        assert_eq!(KEYS.held(&key(7)), 2, "one entry for both windows");
        let copy = first.clone();
        assert_eq!(KEYS.held(&key(7)), 3);
        drop(copy);
        assert_eq!(KEYS.held(&key(7)), 2);
        let taken: Vec<_> = first.into_entries().collect();
        assert_eq!(taken.len(), 10);
        assert_eq!(taken[7].0, key(7));
        assert_eq!(
            KEYS.held(&key(0)),
            0,
            "gone with the last window that held it"
        );
        assert_eq!(KEYS.held(&key(7)), 1);
        assert!(matches!(second.get_mut(&key(7)), Some([Acc::Count(2)])));
        assert!(second.get_mut(&key(0)).is_none());
        // A key given up and used again gets a (possibly reused) id of its own.
        let mut third = Groups::default();
        third.insert(key(0), vec![Acc::Count(3)]);
        assert!(matches!(third.get_mut(&key(0)), Some([Acc::Count(3)])));
        assert!(second.get_mut(&key(0)).is_none());
        drop(second);
        drop(third);
        for i in 0..15 {
            assert_eq!(KEYS.held(&key(i)), 0, "key {i}");
        }
    }

    #[test]
    fn a_group_costs_its_accumulators_and_four_bytes_of_key() {
        let mut g = Groups::with_capacity(3, 3, 1_000);
        for i in 0..1_000 {
            let key = vec![
                Value::str(&format!("cost-{i}")),
                Value::Int(i),
                Value::Double(0.5),
            ];
            g.insert(key, vec![Acc::Count(1), Acc::Count(2), Acc::Count(3)]);
        }
        assert_eq!(g.ids.capacity(), 1_000);
        assert_eq!(g.accs.capacity(), 3_000);
        assert_eq!(std::mem::size_of_val(&g.ids[0]), 4);
    }
}
