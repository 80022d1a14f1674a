//! One input table of a query: its decoder and its shards' watermarks. An input's
//! watermark is the minimum over its shards that are not idle; a shard that counts and has
//! given no row yet holds it back; an input with no shard that counts holds nothing back.

use std::collections::BTreeMap;

use crate::analytics::format::Decoder;
use crate::analytics::sql::plan::SourcePlan;

/// One input table: its decoder and its shards' watermarks.
pub(super) struct Input {
    pub decoder: Decoder,
    /// Shards whose watermark counts (registered and not idle).
    pub shards: BTreeMap<u64, ShardMark>,
    /// Per shard: the largest watermark value its rows gave.
    pub shard_watermarks: BTreeMap<u64, i64>,
}

/// What an input says of the watermark.
pub(super) enum InputMark {
    /// A shard that counts has no rows yet: the watermark waits.
    Hold,
    /// No shard counts (all idle or retired): the input does not hold the watermark back.
    Idle,
    At(i64),
}

impl Input {
    pub fn new(source: &SourcePlan) -> Input {
        Input {
            decoder: Decoder {
                format: source.format,
                fields: source.fields.clone(),
                delimiter: source.csv_delimiter,
            },
            shards: BTreeMap::new(),
            shard_watermarks: BTreeMap::new(),
        }
    }

    pub fn mark(&self) -> InputMark {
        let mut min: Option<i64> = None;
        for (uid, mark) in &self.shards {
            if mark.idle {
                continue;
            }
            match self.shard_watermarks.get(uid) {
                Some(w) => min = Some(min.map_or(*w, |m| m.min(*w))),
                None => return InputMark::Hold,
            }
        }
        match min {
            Some(w) => InputMark::At(w),
            None => InputMark::Idle,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ShardMark {
    pub idle: bool,
}
