//! The groups of one window of a window aggregation: group key -> one accumulator per
//! aggregate. Keys and accumulators live in two flat arenas (group `i`'s key is
//! `keys[i * k..][..k]`, its accumulators `accs[i * a..][..a]`) found through a hash table of
//! group indices. Per group that costs the values themselves and ~10 bytes of table, where a
//! map of boxed slices costs two allocations and a 32-byte bucket: window state is most of an
//! application's memory (50 applications x 1,000 devices x two open windows).
//!
//! Invariants: every index in `table` is `< len()`; all groups have `k` key values and `a`
//! accumulators (fixed by the first insert). Serialized as a map from key to accumulators,
//! as the `HashMap<Box<[Value]>, Box<[Acc]>>` it replaced (checkpoints stay readable).

use std::collections::HashSet;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use hashbrown::{DefaultHashBuilder, HashTable};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::aggregate::Acc;
use crate::analytics::value::Value;

#[derive(Clone, Default)]
pub struct Groups {
    /// Key values per group (k) and accumulators per group (a).
    k: usize,
    a: usize,
    keys: Vec<Value>,
    accs: Vec<Acc>,
    table: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl Groups {
    /// Room for `groups` groups of `k` key values and `a` accumulators, allocated at once.
    pub fn with_capacity(k: usize, a: usize, groups: usize) -> Groups {
        Groups {
            k,
            a,
            keys: Vec::with_capacity(k * groups),
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

    fn key_at(keys: &[Value], k: usize, i: u32) -> &[Value] {
        &keys[i as usize * k..][..k]
    }

    /// The accumulators of the group `key`.
    pub fn get_mut(&mut self, key: &[Value]) -> Option<&mut [Acc]> {
        let hash = self.hasher.hash_one(key);
        let (k, keys) = (self.k, &self.keys);
        let i = *self
            .table
            .find(hash, |&i| Self::key_at(keys, k, i) == key)?;
        Some(&mut self.accs[i as usize * self.a..][..self.a])
    }

    /// Adds a group that is not there yet.
    pub fn insert(&mut self, key: Vec<Value>, accs: Vec<Acc>) {
        if self.table.is_empty() {
            self.k = key.len();
            self.a = accs.len();
            self.keys.clear();
            self.accs.clear();
        }
        debug_assert!(key.len() == self.k && accs.len() == self.a);
        let index = self.table.len() as u32;
        let hash = self.hasher.hash_one(key.as_slice());
        grow_for(&mut self.keys, self.k);
        grow_for(&mut self.accs, self.a);
        self.keys.extend(key);
        self.accs.extend(accs);
        let (k, keys, hasher) = (self.k, &self.keys, &self.hasher);
        self.table
            .insert_unique(hash, index, |&i| hasher.hash_one(Self::key_at(keys, k, i)));
    }

    /// Every group: (key, accumulators), in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&[Value], &[Acc])> {
        (0..self.len() as u32).map(move |i| {
            (
                Self::key_at(&self.keys, self.k, i),
                &self.accs[i as usize * self.a..][..self.a],
            )
        })
    }

    /// Every group, owned (for merging sessions).
    pub fn into_entries(self) -> impl Iterator<Item = (Vec<Value>, Vec<Acc>)> {
        let (k, a, n) = (self.k, self.a, self.len());
        let mut keys = self.keys.into_iter();
        let mut accs = self.accs.into_iter();
        (0..n).map(move |_| {
            (
                keys.by_ref().take(k).collect(),
                accs.by_ref().take(a).collect(),
            )
        })
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
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Groups {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Groups, D::Error> {
        struct GroupsVisitor;
        impl<'de> Visitor<'de> for GroupsVisitor {
            type Value = Groups;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map from group key to accumulators")
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Groups, M::Error> {
                let mut groups = Groups::default();
                while let Some((key, accs)) = map.next_entry::<Vec<Value>, Vec<Acc>>()? {
                    if !groups.is_empty() && (key.len() != groups.k || accs.len() != groups.a) {
                        return Err(serde::de::Error::custom(
                            "groups of different widths in one window",
                        ));
                    }
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

/// Every string of the group keys held, once for all applications: a device id in every open
/// window of every application shares one allocation. Swept of strings no group holds any more
/// when it has doubled since the last sweep.
static STRINGS: Mutex<Interned> = Mutex::new(Interned {
    strings: None,
    swept_at: 0,
});

struct Interned {
    strings: Option<HashSet<Arc<str>>>,
    /// The set's size after the last sweep.
    swept_at: usize,
}

/// `key` with its strings shared (see [`STRINGS`]).
pub fn intern(key: Vec<Value>) -> Vec<Value> {
    if !key.iter().any(|v| matches!(v, Value::Str(_))) {
        return key;
    }
    let mut guard = STRINGS.lock().unwrap_or_else(|p| p.into_inner());
    let interned = &mut *guard;
    let strings = interned.strings.get_or_insert_with(HashSet::new);
    if strings.len() > 2 * interned.swept_at + 4096 {
        strings.retain(|s| Arc::strong_count(s) > 1);
        interned.swept_at = strings.len();
    }
    key.into_iter()
        .map(|v| match v {
            Value::Str(s) => match strings.get(&s) {
                Some(shared) => Value::Str(shared.clone()),
                None => {
                    strings.insert(s.clone());
                    Value::Str(s)
                }
            },
            other => other,
        })
        .collect()
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
}
