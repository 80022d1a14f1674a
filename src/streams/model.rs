//! Streams and shards as Kinesis defines them, and resharding.
//!
//! A [`StreamMeta`] is everything kinedge knows about a stream except its records: its
//! shards with their hash-key ranges and lineage, retention, quota and tags. The storage
//! writer owns the only mutable copy; these functions change it and say what went wrong in
//! Kinesis's own terms.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::hash::HashRange;
use super::sequence::{Position, SequenceNumber};

pub const MIN_RETENTION_HOURS: u32 = 24;
pub const MAX_RETENTION_HOURS: u32 = 8760;
/// Open shards a gateway serves in all (DescribeLimits' ShardLimit).
pub const SHARD_LIMIT: u32 = 1024;

/// What a stream does when its byte quota is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnFull {
    /// Trim the oldest records to make room (the default).
    #[default]
    OverwriteOldest,
    /// Refuse new records until retention frees room.
    RejectNew,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum StreamMode {
    #[default]
    Provisioned,
    OnDemand,
}

impl StreamMode {
    pub fn as_aws(self) -> &'static str {
        match self {
            StreamMode::Provisioned => "PROVISIONED",
            StreamMode::OnDemand => "ON_DEMAND",
        }
    }
}

/// Everything about a stream but its records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamMeta {
    pub name: String,
    /// Unique per created stream: a deleted and re-created stream gets a new one.
    pub uid: u64,
    pub created_ms: u64,
    pub retention_hours: u32,
    pub max_bytes: Option<u64>,
    pub on_full: OnFull,
    pub mode: StreamMode,
    pub tags: BTreeMap<String, String>,
    /// All shards, open and closed, ordered by index.
    pub shards: Vec<ShardMeta>,
    pub next_shard_index: u64,
    /// Enhanced fan-out consumers (`consumer`); absent in databases from before them.
    #[serde(default)]
    pub consumers: Vec<super::consumer::StreamConsumer>,
    /// Enhanced monitoring and the resource policy (absent in rows of older gateways).
    #[serde(default)]
    pub settings: super::settings::StreamSettings,
}

/// One shard: a hash-key range and its place in the lineage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardMeta {
    pub index: u64,
    /// The storage id of this shard's log (unique in the database).
    pub uid: u64,
    pub range: HashRange,
    pub parent: Option<u64>,
    pub adjacent_parent: Option<u64>,
    pub starting: Position,
    pub closed: Option<ClosedShard>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ClosedShard {
    pub at_ms: u64,
    pub ending: Position,
}

impl ShardMeta {
    pub fn id(&self) -> String {
        shard_id(self.index)
    }

    pub fn is_open(&self) -> bool {
        self.closed.is_none()
    }

    pub fn starting_sequence(&self) -> SequenceNumber {
        SequenceNumber {
            shard_index: self.index,
            position: self.starting,
        }
    }

    pub fn ending_sequence(&self) -> Option<SequenceNumber> {
        self.closed.map(|c| SequenceNumber {
            shard_index: self.index,
            position: c.ending,
        })
    }
}

pub fn shard_id(index: u64) -> String {
    format!("shardId-{index:012}")
}

/// Parses `shardId-000000000007` (AWS also accepts the bare number, and so do we).
pub fn parse_shard_id(text: &str) -> Option<u64> {
    let digits = text.strip_prefix("shardId-").unwrap_or(text);
    if digits.is_empty() || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Why a change to a stream's shards was refused, in Kinesis's terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReshardError {
    #[error("Could not find shard {shard} in stream {stream}.")]
    ShardNotFound { stream: String, shard: String },
    #[error("Shard {shard} in stream {stream} has already been merged or split, and thus is not eligible for merging or splitting.")]
    ShardClosed { stream: String, shard: String },
    #[error("NewStartingHashKey {key} used in SplitShard on shard {shard} in stream {stream} is invalid: it must be greater than the shard's starting hash key {start} and at most its ending hash key {end}.")]
    SplitKeyOutOfRange {
        stream: String,
        shard: String,
        key: u128,
        start: u128,
        end: u128,
    },
    #[error(
        "Shards {a} and {b} in stream {stream} are not adjacent: their hash key ranges must touch."
    )]
    NotAdjacent {
        stream: String,
        a: String,
        b: String,
    },
    #[error("UpdateShardCount on stream {stream} from {current} to {target} shards is not allowed: the target must be between half and double the current open shard count.")]
    ScalingOutOfBounds {
        stream: String,
        current: u32,
        target: u32,
    },
    #[error(
        "This request would exceed the gateway's limit of {limit} open shards (currently {open})."
    )]
    ShardLimit { limit: u32, open: u32 },
}

/// Hands out storage ids for new shards.
pub trait UidSource {
    fn next_uid(&mut self) -> u64;
}

impl StreamMeta {
    pub fn new(
        name: String,
        uid: u64,
        shard_count: u32,
        now_ms: u64,
        uids: &mut dyn UidSource,
    ) -> StreamMeta {
        let starting = Position::at_millis(now_ms);
        let shards = HashRange::even_split(shard_count)
            .into_iter()
            .enumerate()
            .map(|(i, range)| ShardMeta {
                index: i as u64,
                uid: uids.next_uid(),
                range,
                parent: None,
                adjacent_parent: None,
                starting,
                closed: None,
            })
            .collect();
        StreamMeta {
            name,
            uid,
            created_ms: now_ms,
            retention_hours: MIN_RETENTION_HOURS,
            max_bytes: None,
            on_full: OnFull::OverwriteOldest,
            mode: StreamMode::Provisioned,
            tags: BTreeMap::new(),
            shards,
            next_shard_index: u64::from(shard_count),
            consumers: Vec::new(),
            settings: Default::default(),
        }
    }

    pub fn open_shards(&self) -> impl Iterator<Item = &ShardMeta> {
        self.shards.iter().filter(|s| s.is_open())
    }

    pub fn open_shard_count(&self) -> u32 {
        self.open_shards().count() as u32
    }

    pub fn shard(&self, index: u64) -> Option<&ShardMeta> {
        self.shards
            .binary_search_by_key(&index, |s| s.index)
            .ok()
            .map(|i| &self.shards[i])
    }

    fn shard_mut(&mut self, index: u64) -> Option<&mut ShardMeta> {
        self.shards
            .binary_search_by_key(&index, |s| s.index)
            .ok()
            .map(|i| &mut self.shards[i])
    }

    /// The open shard whose range contains `hash_key`. Open shards always cover the whole
    /// hash space, so this finds one unless the stream is broken.
    pub fn route(&self, hash_key: u128) -> Option<&ShardMeta> {
        self.open_shards().find(|s| s.range.contains(hash_key))
    }

    /// Shards created from `index` by a split or merge.
    pub fn children_of(&self, index: u64) -> impl Iterator<Item = &ShardMeta> {
        self.shards
            .iter()
            .filter(move |s| s.parent == Some(index) || s.adjacent_parent == Some(index))
    }

    pub fn retention_ms(&self) -> u64 {
        u64::from(self.retention_hours) * 3_600_000
    }

    fn open_child(
        &mut self,
        range: HashRange,
        parent: u64,
        adjacent_parent: Option<u64>,
        starting: Position,
        uids: &mut dyn UidSource,
    ) -> u64 {
        let index = self.next_shard_index;
        self.next_shard_index += 1;
        self.shards.push(ShardMeta {
            index,
            uid: uids.next_uid(),
            range,
            parent: Some(parent),
            adjacent_parent,
            starting,
            closed: None,
        });
        index
    }

    fn open_shard_checked(&self, index: u64, given: &str) -> Result<&ShardMeta, ReshardError> {
        let shard = self
            .shard(index)
            .ok_or_else(|| ReshardError::ShardNotFound {
                stream: self.name.clone(),
                shard: given.to_string(),
            })?;
        if !shard.is_open() {
            return Err(ReshardError::ShardClosed {
                stream: self.name.clone(),
                shard: shard.id(),
            });
        }
        Ok(shard)
    }

    fn close(&mut self, index: u64, now_ms: u64, last: Position) -> Position {
        let shard = self
            .shard_mut(index)
            .expect("closing a shard that was just checked");
        let ending = last.max(shard.starting);
        shard.closed = Some(ClosedShard {
            at_ms: now_ms,
            ending,
        });
        ending
    }

    /// Splits an open shard at `new_start`: the parent closes; the children own
    /// `[start, new_start-1]` and `[new_start, end]`.
    ///
    /// `last_position` tells the last position written to a shard, so children start after it.
    pub fn split(
        &mut self,
        shard: &str,
        new_start: u128,
        now_ms: u64,
        last_position: &dyn Fn(&ShardMeta) -> Position,
        uids: &mut dyn UidSource,
        open_in_gateway: u32,
    ) -> Result<(), ReshardError> {
        let index = parse_shard_id(shard).unwrap_or(u64::MAX);
        let parent = self.open_shard_checked(index, shard)?.clone();
        if new_start <= parent.range.start || new_start > parent.range.end {
            return Err(ReshardError::SplitKeyOutOfRange {
                stream: self.name.clone(),
                shard: parent.id(),
                key: new_start,
                start: parent.range.start,
                end: parent.range.end,
            });
        }
        if open_in_gateway + 1 > SHARD_LIMIT {
            return Err(ReshardError::ShardLimit {
                limit: SHARD_LIMIT,
                open: open_in_gateway,
            });
        }
        let ending = self.close(index, now_ms, last_position(&parent));
        let starting = ending.successor_at(now_ms);
        let low = HashRange {
            start: parent.range.start,
            end: new_start - 1,
        };
        let high = HashRange {
            start: new_start,
            end: parent.range.end,
        };
        self.open_child(low, index, None, starting, uids);
        self.open_child(high, index, None, starting, uids);
        Ok(())
    }

    /// Merges two open shards with adjacent ranges into one child.
    pub fn merge(
        &mut self,
        shard: &str,
        adjacent: &str,
        now_ms: u64,
        last_position: &dyn Fn(&ShardMeta) -> Position,
        uids: &mut dyn UidSource,
    ) -> Result<(), ReshardError> {
        let a_index = parse_shard_id(shard).unwrap_or(u64::MAX);
        let b_index = parse_shard_id(adjacent).unwrap_or(u64::MAX);
        let a = self.open_shard_checked(a_index, shard)?.clone();
        let b = self.open_shard_checked(b_index, adjacent)?.clone();
        let range = if a.range.is_followed_by(&b.range) {
            HashRange {
                start: a.range.start,
                end: b.range.end,
            }
        } else if b.range.is_followed_by(&a.range) {
            HashRange {
                start: b.range.start,
                end: a.range.end,
            }
        } else {
            return Err(ReshardError::NotAdjacent {
                stream: self.name.clone(),
                a: a.id(),
                b: b.id(),
            });
        };
        let end_a = self.close(a_index, now_ms, last_position(&a));
        let end_b = self.close(b_index, now_ms, last_position(&b));
        let starting = end_a.max(end_b).successor_at(now_ms);
        self.open_child(range, a_index, Some(b_index), starting, uids);
        Ok(())
    }

    /// UpdateShardCount with UNIFORM_SCALING: reaches `target` evenly sized open shards
    /// through splits and merges, as Kinesis does, so every child has at most two parents.
    pub fn update_shard_count(
        &mut self,
        target: u32,
        now_ms: u64,
        last_position: &dyn Fn(&ShardMeta) -> Position,
        uids: &mut dyn UidSource,
        open_in_gateway: u32,
    ) -> Result<(), ReshardError> {
        let current = self.open_shard_count();
        if target == 0 || target > current.saturating_mul(2) || target.saturating_mul(2) < current {
            return Err(ReshardError::ScalingOutOfBounds {
                stream: self.name.clone(),
                current,
                target,
            });
        }
        if target > current && open_in_gateway - current + target > SHARD_LIMIT {
            return Err(ReshardError::ShardLimit {
                limit: SHARD_LIMIT,
                open: open_in_gateway,
            });
        }
        let targets = HashRange::even_split(target);
        // 1. Split wherever a target boundary falls inside an open shard.
        for boundary in targets.iter().skip(1).map(|r| r.start) {
            let containing = self
                .open_shards()
                .find(|s| s.range.contains(boundary) && s.range.start != boundary)
                .map(ShardMeta::id);
            if let Some(id) = containing {
                self.split(&id, boundary, now_ms, last_position, uids, 0)?;
            }
        }
        // 2. Merge the open shards inside each target range until one is left.
        for range in &targets {
            loop {
                let mut inside: Vec<(u128, String)> = self
                    .open_shards()
                    .filter(|s| range.start <= s.range.start && s.range.end <= range.end)
                    .map(|s| (s.range.start, s.id()))
                    .collect();
                if inside.len() < 2 {
                    break;
                }
                inside.sort();
                self.merge(&inside[0].1, &inside[1].1, now_ms, last_position, uids)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter(u64);
    impl UidSource for Counter {
        fn next_uid(&mut self) -> u64 {
            self.0 += 1;
            self.0
        }
    }

    fn no_records(s: &ShardMeta) -> Position {
        s.starting
    }

    fn covers_space(stream: &StreamMeta) -> bool {
        let mut open: Vec<HashRange> = stream.open_shards().map(|s| s.range).collect();
        open.sort_by_key(|r| r.start);
        open.first().map(|r| r.start) == Some(0)
            && open.last().map(|r| r.end) == Some(u128::MAX)
            && open.windows(2).all(|w| w[0].is_followed_by(&w[1]))
    }

    #[test]
    fn split_then_merge_lineage() {
        let mut uids = Counter(0);
        let mut s = StreamMeta::new("s".into(), 1, 1, 1_000, &mut uids);
        s.split(
            "shardId-000000000000",
            1u128 << 127,
            2_000,
            &no_records,
            &mut uids,
            1,
        )
        .unwrap();
        assert_eq!(s.open_shard_count(), 2);
        assert!(!s.shards[0].is_open());
        assert_eq!(s.shards[1].parent, Some(0));
        assert_eq!(s.shards[2].parent, Some(0));
        assert_eq!(s.shards[1].range.end + 1, s.shards[2].range.start);
        assert!(s.shards[1].starting > s.shards[0].closed.unwrap().ending);
        assert!(covers_space(&s));

        // splitting the closed parent again is refused
        let err = s
            .split("shardId-000000000000", 5, 3_000, &no_records, &mut uids, 2)
            .unwrap_err();
        assert!(matches!(err, ReshardError::ShardClosed { .. }));

        s.merge(
            "shardId-000000000002",
            "shardId-000000000001",
            3_000,
            &no_records,
            &mut uids,
        )
        .unwrap();
        let child = s.shards.last().unwrap();
        assert_eq!(child.index, 3);
        assert_eq!(child.parent, Some(2));
        assert_eq!(child.adjacent_parent, Some(1));
        assert_eq!(child.range, HashRange::FULL);
        assert!(covers_space(&s));
    }

    #[test]
    fn split_key_bounds() {
        let mut uids = Counter(0);
        let mut s = StreamMeta::new("s".into(), 1, 1, 0, &mut uids);
        // The new starting key must be above the shard's own starting key.
        assert!(matches!(
            s.split("shardId-000000000000", 0, 0, &no_records, &mut uids, 1),
            Err(ReshardError::SplitKeyOutOfRange { .. })
        ));
        s.split(
            "shardId-000000000000",
            u128::MAX,
            0,
            &no_records,
            &mut uids,
            1,
        )
        .unwrap();
        assert_eq!(s.shards[2].range.start, u128::MAX);
    }

    #[test]
    fn merge_needs_adjacent() {
        let mut uids = Counter(0);
        let mut s = StreamMeta::new("s".into(), 1, 3, 0, &mut uids);
        let err = s
            .merge(
                "shardId-000000000000",
                "shardId-000000000002",
                0,
                &no_records,
                &mut uids,
            )
            .unwrap_err();
        assert!(matches!(err, ReshardError::NotAdjacent { .. }));
        let err = s
            .merge(
                "shardId-000000000000",
                "shardId-000000000009",
                0,
                &no_records,
                &mut uids,
            )
            .unwrap_err();
        assert!(matches!(err, ReshardError::ShardNotFound { .. }));
    }

    #[test]
    fn uniform_scaling_reaches_even_ranges() {
        for (from, to) in [
            (1u32, 2u32),
            (2, 4),
            (4, 2),
            (3, 5),
            (5, 3),
            (4, 7),
            (8, 4),
            (6, 6),
        ] {
            let mut uids = Counter(0);
            let mut s = StreamMeta::new("s".into(), 1, from, 0, &mut uids);
            s.update_shard_count(to, 10, &no_records, &mut uids, from)
                .unwrap();
            let mut open: Vec<HashRange> = s.open_shards().map(|x| x.range).collect();
            open.sort_by_key(|r| r.start);
            assert_eq!(open, HashRange::even_split(to), "{from}->{to}");
            for shard in &s.shards {
                // every parent named exists, and children have at most two parents (by type)
                if let Some(p) = shard.parent {
                    assert!(s.shard(p).is_some());
                    assert!(!s.shard(p).unwrap().is_open());
                }
            }
        }
        let mut uids = Counter(0);
        let mut s = StreamMeta::new("s".into(), 1, 4, 0, &mut uids);
        assert!(s
            .update_shard_count(9, 0, &no_records, &mut uids, 4)
            .is_err());
        assert!(s
            .update_shard_count(1, 0, &no_records, &mut uids, 4)
            .is_err());
    }

    #[test]
    fn routing_picks_the_containing_open_shard() {
        let mut uids = Counter(0);
        let s = StreamMeta::new("s".into(), 1, 4, 0, &mut uids);
        let quarter = HashRange::even_split(4)[1].start;
        assert_eq!(s.route(0).unwrap().index, 0);
        assert_eq!(s.route(quarter - 1).unwrap().index, 0);
        assert_eq!(s.route(quarter).unwrap().index, 1);
        assert_eq!(s.route(u128::MAX).unwrap().index, 3);
    }

    #[test]
    fn shard_ids() {
        assert_eq!(shard_id(3), "shardId-000000000003");
        assert_eq!(parse_shard_id("shardId-000000000003"), Some(3));
        assert_eq!(parse_shard_id("3"), Some(3));
        assert_eq!(parse_shard_id("shardId-x"), None);
        assert_eq!(parse_shard_id(""), None);
    }
}
