//! The groups of one window of a window aggregation: group key -> one accumulator per
//! aggregate. A group holds its key as a 4-byte id into [`KEYS`], the dictionary of every group
//! key held by any window of any application (a device id open in two windows of fifty
//! applications is one entry there), and its accumulators in a flat arena; groups are found
//! through a hash table of group indices hashed by id.
//!
//! The arena is packed when every accumulator of the first group is a plain number
//! ([`Slot`]: a COUNT in one 8-byte word, a SUM/AVG or a MIN/MAX/FIRST/LAST of a number in
//! two): `AVG, MAX, COUNT(*)` take 40 bytes a group instead of three 24-byte [`Acc`]s. A row
//! updates a packed group by unpacking its accumulators, adding to them as any other, and
//! packing them back; the first accumulator that no longer fits (a MAX over strings) turns the
//! whole window into the general arena of `Acc`s (wide). Per group that costs 4 bytes of key
//! and ~10 bytes of table besides the accumulators: window state is most of an application's
//! memory (50 applications x 1,000 devices x two open windows).
//!
//! Invariants: every index in `table` is `< len()`; all groups have `a` accumulators (fixed by
//! the first insert), packed as `slots` say or wide; a `Groups` holds one reference in [`KEYS`]
//! for each of its ids, taken when a group is inserted (or the groups cloned) and given back
//! when they are dropped or taken apart. Serialized as a map from key to accumulators, as the
//! `HashMap<Box<[Value]>, Box<[Acc]>>` it replaced (checkpoints stay readable).

use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::{DefaultHashBuilder, HashTable};
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::aggregate::Acc;
use super::keys::KEYS;
use super::packed::{pack, Slot};
use crate::analytics::value::Value;

/// Every group's accumulators, group `i`'s at `i * stride` (packed) or `i * a` (wide).
#[derive(Clone)]
enum Arena {
    Packed {
        slots: Box<[Slot]>,
        /// Words a group.
        stride: usize,
        words: Vec<u64>,
    },
    Wide(Vec<Acc>),
}

impl Default for Arena {
    fn default() -> Arena {
        Arena::Wide(Vec::new())
    }
}

/// One group's accumulators, as kept.
pub struct GroupAccs<'a>(Kept<'a>);

enum Kept<'a> {
    Packed(&'a [Slot], &'a [u64]),
    Wide(&'a [Acc]),
}

impl GroupAccs<'_> {
    /// The number of accumulators (one per aggregate).
    pub fn count(&self) -> usize {
        match self.0 {
            Kept::Packed(slots, _) => slots.len(),
            Kept::Wide(accs) => accs.len(),
        }
    }

    /// Calls `f` with each accumulator, in order.
    pub fn for_each(&self, mut f: impl FnMut(&Acc)) {
        match self.0 {
            Kept::Packed(slots, words) => {
                let mut at = 0;
                for slot in slots.iter() {
                    f(&slot.unpack(&words[at..]));
                    at += slot.words();
                }
            }
            Kept::Wide(accs) => accs.iter().for_each(f),
        }
    }

    pub fn to_vec(&self) -> Vec<Acc> {
        let mut out = Vec::new();
        self.for_each(|acc| out.push(acc.clone()));
        out
    }
}

impl Serialize for GroupAccs<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.count()))?;
        let mut result = Ok(());
        self.for_each(|acc| {
            if result.is_ok() {
                result = seq.serialize_element(acc);
            }
        });
        result?;
        seq.end()
    }
}

impl fmt::Debug for GroupAccs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.to_vec()).finish()
    }
}

#[derive(Default)]
pub struct Groups {
    /// Accumulators per group.
    a: usize,
    /// Groups to make room for at the first insert (when the arena's layout is known).
    hint: usize,
    /// Each group's key, as its id in [`KEYS`].
    ids: Vec<u32>,
    accs: Arena,
    table: HashTable<u32>,
    hasher: DefaultHashBuilder,
    /// A packed group's accumulators while a row updates them.
    scratch: Vec<Acc>,
}

impl Groups {
    /// Room for `groups` groups of `a` accumulators, allocated at the first insert (`_k`, the
    /// number of key values, no longer matters: a key is one id whatever its width).
    pub fn with_capacity(_k: usize, a: usize, groups: usize) -> Groups {
        Groups {
            a,
            hint: groups,
            ids: Vec::with_capacity(groups),
            accs: Arena::default(),
            table: HashTable::with_capacity(groups),
            hasher: DefaultHashBuilder::default(),
            scratch: Vec::new(),
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

    /// Runs `f` on the accumulators of the group `key` (None: no such group).
    pub fn update<R>(&mut self, key: &[Value], f: impl FnOnce(&mut [Acc]) -> R) -> Option<R> {
        let i = self.find(KEYS.id_of(key)?)? as usize;
        let a = self.a;
        let (slots, stride, words) = match &mut self.accs {
            Arena::Wide(accs) => return Some(f(&mut accs[i * a..][..a])),
            Arena::Packed {
                slots,
                stride,
                words,
            } => (slots, *stride, words),
        };
        let group = &mut words[i * stride..][..stride];
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        GroupAccs(Kept::Packed(slots, group)).for_each(|acc| scratch.push(acc.clone()));
        let result = f(&mut scratch);
        if !pack(slots, &scratch, group) {
            self.widen();
            if let Arena::Wide(accs) = &mut self.accs {
                accs[i * a..][..a].clone_from_slice(&scratch);
            }
        }
        self.scratch = scratch;
        Some(result)
    }

    /// Whether the group `key` is there.
    pub fn contains(&self, key: &[Value]) -> bool {
        KEYS.id_of(key).and_then(|id| self.find(id)).is_some()
    }

    /// Adds a group that is not there yet.
    pub fn insert(&mut self, key: Vec<Value>, accs: Vec<Acc>) {
        if self.table.is_empty() {
            self.a = accs.len();
            let room = self.hint.max(self.ids.capacity()).max(1);
            self.accs.reset_for(&accs, room);
        }
        debug_assert!(accs.len() == self.a);
        let id = KEYS.acquire(key);
        debug_assert!(self.find(id).is_none(), "a group is inserted once");
        let index = self.table.len() as u32;
        grow_for(&mut self.ids, 1);
        self.ids.push(id);
        if let Arena::Packed {
            slots,
            stride,
            words,
        } = &mut self.accs
        {
            let at = words.len();
            grow_for(words, *stride);
            words.resize(at + *stride, 0);
            if !pack(slots, &accs, &mut words[at..]) {
                words.truncate(at);
                self.widen();
            }
        }
        if let Arena::Wide(wide) = &mut self.accs {
            grow_for(wide, self.a);
            wide.extend(accs);
        }
        let (ids, hasher) = (&self.ids, &self.hasher);
        self.table.insert_unique(hasher.hash_one(id), index, |&i| {
            hasher.hash_one(ids[i as usize])
        });
    }

    /// Empties the groups and keeps their room for the next window: an application's next
    /// window has about as many groups, and reusing the room spares the allocator carving
    /// (and fragmenting) new blocks every window.
    pub fn clear(&mut self) {
        KEYS.release(&self.ids);
        self.ids.clear();
        self.table.clear();
        match &mut self.accs {
            Arena::Packed { words, .. } => words.clear(),
            Arena::Wide(accs) => accs.clear(),
        }
    }

    /// Groups there is room for without growing.
    pub fn capacity(&self) -> usize {
        self.ids.capacity()
    }

    /// Turns a packed arena into a wide one (the accumulators of the groups held so far).
    fn widen(&mut self) {
        if let Arena::Packed {
            slots,
            stride,
            words,
        } = &self.accs
        {
            let mut wide = Vec::with_capacity(self.a * (self.len() + 1));
            for group in words.chunks_exact(*stride) {
                GroupAccs(Kept::Packed(slots, group)).for_each(|acc| wide.push(acc.clone()));
            }
            self.accs = Arena::Wide(wide);
        }
    }

    fn accs_of(&self, i: usize) -> GroupAccs<'_> {
        match &self.accs {
            Arena::Packed {
                slots,
                stride,
                words,
            } => GroupAccs(Kept::Packed(slots, &words[i * stride..][..*stride])),
            Arena::Wide(accs) => GroupAccs(Kept::Wide(&accs[i * self.a..][..self.a])),
        }
    }

    /// Every group: (key, accumulators), in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (Arc<[Value]>, GroupAccs<'_>)> {
        KEYS.keys(&self.ids)
            .into_iter()
            .enumerate()
            .map(move |(i, key)| (key, self.accs_of(i)))
    }

    /// Every group, owned (for merging sessions).
    pub fn into_entries(mut self) -> impl Iterator<Item = (Vec<Value>, Vec<Acc>)> {
        let ids = std::mem::take(&mut self.ids);
        let keys = KEYS.keys(&ids);
        KEYS.release(&ids);
        let accs: Vec<Vec<Acc>> = (0..keys.len()).map(|i| self.accs_of(i).to_vec()).collect();
        keys.into_iter()
            .zip(accs)
            .map(|(key, accs)| (key.to_vec(), accs))
    }
}

impl Arena {
    /// Makes an empty arena the one for groups like `accs` (packed when every one of them
    /// fits a slot) with room for `groups` of them, keeping its memory when it already is.
    fn reset_for(&mut self, accs: &[Acc], groups: usize) {
        let slots = accs.iter().map(Slot::of).collect::<Option<Box<[Slot]>>>();
        match (&mut *self, slots) {
            (
                Arena::Packed {
                    slots: kept, words, ..
                },
                Some(slots),
            ) if *kept == slots => {
                words.clear();
            }
            (Arena::Wide(wide), None) if wide.capacity() > 0 => wide.clear(),
            (_, Some(slots)) => {
                let stride = slots.iter().map(|s| s.words()).sum();
                *self = Arena::Packed {
                    slots,
                    stride,
                    words: Vec::with_capacity(stride * groups),
                };
            }
            (_, None) => *self = Arena::Wide(Vec::with_capacity(accs.len() * groups)),
        }
    }
}

impl Clone for Groups {
    fn clone(&self) -> Groups {
        KEYS.retain(&self.ids);
        Groups {
            a: self.a,
            hint: self.hint,
            ids: self.ids.clone(),
            accs: self.accs.clone(),
            table: self.table.clone(),
            hasher: self.hasher.clone(),
            scratch: Vec::new(),
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
                    if !groups.contains(&key) {
                        groups.insert(key, accs);
                    }
                }
                Ok(groups)
            }
        }
        deserializer.deserialize_map(GroupsVisitor)
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
        let bumped = g.update(&[Value::str("dev-42")], |accs| match accs {
            [Acc::Count(n)] => *n += 1,
            other => panic!("{other:?}"),
        });
        assert!(bumped.is_some(), "dev-42 is there");
        assert!(g.update(&[Value::str("dev-100")], |_| ()).is_none());
        let mut bytes = Vec::new();
        ciborium::into_writer(&g, &mut bytes).unwrap();
        let mut back: Groups = ciborium::from_reader(bytes.as_slice()).unwrap();
        assert!(matches!(
            back.update(&[Value::str("dev-42")], |accs| accs.to_vec())
                .as_deref(),
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
        assert!(g.contains(&[]));
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
        assert!(matches!(
            second.update(&key(7), |accs| accs.to_vec()).as_deref(),
            Some([Acc::Count(2)])
        ));
        assert!(!second.contains(&key(0)));
        // A key given up and used again gets a (possibly reused) id of its own.
        let mut third = Groups::default();
        third.insert(key(0), vec![Acc::Count(3)]);
        assert!(matches!(
            third.update(&key(0), |accs| accs.to_vec()).as_deref(),
            Some([Acc::Count(3)])
        ));
        assert!(!second.contains(&key(0)));
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
        assert_eq!(std::mem::size_of_val(&g.ids[0]), 4);
        // Three counts: three words a group.
        let Arena::Packed { words, .. } = &g.accs else {
            panic!("counts are packed");
        };
        assert_eq!(words.capacity(), 3_000);
    }

    /// AVG, MAX and COUNT(*) of a DOUBLE, as the accumulators of a group.
    fn avg_max_count(n: i64, x: f64) -> Vec<Acc> {
        vec![
            Acc::DoubleSum {
                n,
                sum: x * n as f64,
            },
            Acc::One(Value::Double(x)),
            Acc::Count(n),
        ]
    }

    #[test]
    fn plain_numbers_are_packed_into_forty_bytes_a_group_and_read_back_the_same() {
        let key = |i: i64| vec![Value::str(&format!("packed-{i}"))];
        let mut g = Groups::with_capacity(1, 3, 100);
        for i in 0..100 {
            g.insert(key(i), avg_max_count(i + 1, i as f64 / 8.0));
        }
        let Arena::Packed { stride, .. } = &g.accs else {
            panic!("AVG, MAX, COUNT(*) are packed");
        };
        assert_eq!(*stride * 8, 40);
        // Every kind of value a packed MIN/MAX/FIRST/LAST keeps.
        for (i, value) in [
            Value::Null,
            Value::Bool(true),
            Value::Int(-7),
            Value::Double(-0.0),
            Value::Double(f64::NAN),
            Value::Ts(1_700_000_000_123),
            Value::Date(-3),
            Value::Interval(60_000),
        ]
        .into_iter()
        .enumerate()
        {
            let updated = g.update(&key(i as i64), |accs| {
                accs[1] = Acc::One(value.clone());
                accs.to_vec()
            });
            assert!(updated.is_some());
            let back = g.update(&key(i as i64), |accs| accs.to_vec()).unwrap();
            assert_eq!(format!("{:?}", back[1]), format!("{:?}", Acc::One(value)));
        }
        let mut ints = Groups::default();
        ints.insert(key(0), vec![Acc::IntSum { n: 2, sum: -9 }]);
        assert!(matches!(ints.accs, Arena::Packed { .. }));
        let back = ints.update(&key(0), |accs| accs.to_vec()).unwrap();
        assert!(matches!(back[..], [Acc::IntSum { n: 2, sum: -9 }]));
        // The checkpoint of packed groups is that of the accumulators themselves.
        let mut plain = std::collections::BTreeMap::new();
        for (k, accs) in g.iter() {
            plain.insert(format!("{k:?}"), format!("{accs:?}"));
        }
        let mut bytes = Vec::new();
        ciborium::into_writer(&g, &mut bytes).unwrap();
        let back: Groups = ciborium::from_reader(bytes.as_slice()).unwrap();
        assert!(matches!(back.accs, Arena::Packed { .. }));
        let mut again = std::collections::BTreeMap::new();
        for (k, accs) in back.iter() {
            again.insert(format!("{k:?}"), format!("{accs:?}"));
        }
        assert_eq!(plain, again);
        let old: std::collections::HashMap<Box<[Value]>, Box<[Acc]>> =
            ciborium::from_reader(bytes.as_slice()).unwrap();
        assert!(matches!(
            old[&key(99)[..]][..],
            [
                Acc::DoubleSum { n: 100, .. },
                Acc::One(Value::Double(_)),
                Acc::Count(100)
            ]
        ));
    }

    #[test]
    fn a_string_in_a_packed_window_makes_it_wide_and_keeps_every_group() {
        let key = |i: i64| vec![Value::Int(i)];
        let mut g = Groups::with_capacity(1, 3, 10);
        for i in 0..10 {
            g.insert(key(i), avg_max_count(i + 1, 1.5));
        }
        assert!(matches!(g.accs, Arena::Packed { .. }));
        // MAX over a column whose first rows were NULL, then a string.
        g.update(&key(4), |accs| accs[1] = Acc::One(Value::str("zeta")));
        assert!(matches!(g.accs, Arena::Wide(_)));
        for i in 0..10 {
            let accs = g.update(&key(i), |accs| accs.to_vec()).unwrap();
            let expected = if i == 4 {
                Value::str("zeta")
            } else {
                Value::Double(1.5)
            };
            assert!(
                matches!(&accs[..], [Acc::DoubleSum { n, .. }, Acc::One(v), Acc::Count(c)]
                    if *n == i + 1 && *c == i + 1 && *v == expected),
                "group {i}: {accs:?}"
            );
        }
        // Inserted after, and a group that never fitted: both wide.
        g.insert(key(10), avg_max_count(1, 2.0));
        assert_eq!(g.len(), 11);
        let mut strings = Groups::default();
        strings.insert(key(0), vec![Acc::One(Value::str("a"))]);
        assert!(matches!(strings.accs, Arena::Wide(_)));
        let mut mixed = Groups::default();
        mixed.insert(key(0), avg_max_count(1, 1.0));
        mixed.insert(
            key(1),
            vec![
                Acc::DoubleSum { n: 1, sum: 1.0 },
                Acc::One(Value::str("b")),
                Acc::Count(1),
            ],
        );
        assert!(matches!(mixed.accs, Arena::Wide(_)));
        let firsts: Vec<_> = mixed.iter().map(|(_, accs)| format!("{accs:?}")).collect();
        assert_eq!(firsts.len(), 2);
        assert!(firsts[1].contains("\"b\""), "{firsts:?}");
    }

    #[test]
    fn a_cleared_window_keeps_its_room_and_gives_back_its_keys() {
        let key = |i: i64| vec![Value::str(&format!("room-{i}"))];
        let words_at = |g: &Groups| match &g.accs {
            Arena::Packed { words, .. } => words.as_ptr(),
            Arena::Wide(_) => panic!("packed"),
        };
        let mut g = Groups::with_capacity(1, 3, 100);
        for i in 0..100 {
            g.insert(key(i), avg_max_count(1, 1.0));
        }
        let (room, at) = (g.capacity(), words_at(&g));
        g.clear();
        assert!(g.is_empty());
        assert_eq!(KEYS.held(&key(0)), 0, "the keys are given back");
        for i in 0..100 {
            g.insert(key(i), avg_max_count(2, 2.0));
        }
        assert_eq!(g.capacity(), room);
        assert_eq!(words_at(&g), at, "the same block holds the next window");
        assert!(matches!(
            g.update(&key(7), |accs| accs.to_vec()).as_deref(),
            Some([_, _, Acc::Count(2)])
        ));
        // A next window of other aggregates gets an arena of its own.
        g.clear();
        g.insert(key(0), vec![Acc::One(Value::str("s"))]);
        assert!(matches!(g.accs, Arena::Wide(_)));
        assert_eq!(g.len(), 1);
    }
}
