//! The tables of the stream database and how their rows are laid out.
//!
//! - `system`: the gateway's iterator-signing key and the next storage id.
//! - `streams`: stream name -> `StreamMeta` (JSON; written only when a stream changes).
//! - `shard_state`: shard storage id -> last position, bytes and record count (64 bytes;
//!   24-byte rows of older gateways are still read),
//!   written with every commit that touches the shard, so start-up needs no scan.
//!   Also the shard's lifetime counters: records and record bytes ever appended and ever
//!   trimmed, and the last trimmed position (delivery streams count what they lost from these).
//! - `delivery_checkpoints`: (consumer, row key) -> opaque bytes, written through
//!   `CheckpointOp`. A delivery stream is the consumer named by its own name and keys its rows
//!   by shard storage id (its row format: the `checkpoint` module of delivery); other consumers use
//!   names with a prefix (`analytics:`) that delivery stream names cannot contain.
//! - `delivery_streams`: consumer -> its definition (opaque bytes; for delivery streams
//!   created through the Firehose API, JSON).
//! - `shard.<id>`: one shard log: first position of a block -> block (see `block`).
//! - `chunks.<id>`: (position, chunk number) -> data of a large record.

use redb::TableDefinition;

use crate::streams::Position;

pub const SYSTEM: TableDefinition<&str, &[u8]> = TableDefinition::new("system");
pub const STREAMS: TableDefinition<&str, &[u8]> = TableDefinition::new("streams");
pub const SHARD_STATE: TableDefinition<u64, &[u8]> = TableDefinition::new("shard_state");

pub const DELIVERY_CHECKPOINTS: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("delivery_checkpoints");
pub const DELIVERY_STREAMS: TableDefinition<&str, &[u8]> = TableDefinition::new("delivery_streams");

pub const ITERATOR_KEY: &str = "iterator_key";
pub const NEXT_UID: &str = "next_uid";

pub fn shard_table_name(uid: u64) -> String {
    format!("shard.{uid}")
}

pub fn chunk_table_name(uid: u64) -> String {
    format!("chunks.{uid}")
}

pub fn shard_table(name: &str) -> TableDefinition<'_, u64, &'static [u8]> {
    TableDefinition::new(name)
}

pub fn chunk_table(name: &str) -> TableDefinition<'_, (u64, u32), &'static [u8]> {
    TableDefinition::new(name)
}

/// What the writer knows about a shard log between commits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardState {
    /// The last position handed out (the shard's starting position while it is empty).
    pub last: Position,
    /// Bytes of blocks and chunks stored.
    pub bytes: u64,
    /// Records stored.
    pub records: u64,
    /// Records ever appended to the shard (never goes down).
    pub appended: u64,
    /// Record bytes (data + partition key) ever appended.
    pub appended_bytes: u64,
    /// Records ever trimmed by retention or a quota (always the oldest first).
    pub trimmed: u64,
    /// Record bytes ever trimmed.
    pub trimmed_bytes: u64,
    /// The position of the last record trimmed (zero when none was).
    pub trimmed_through: Position,
}

const STATE_V1_BYTES: usize = 24;
const STATE_BYTES: usize = 64;

impl ShardState {
    pub fn encode(&self) -> [u8; STATE_BYTES] {
        let words = [
            self.last.0,
            self.bytes,
            self.records,
            self.appended,
            self.appended_bytes,
            self.trimmed,
            self.trimmed_bytes,
            self.trimmed_through.0,
        ];
        let mut out = [0u8; STATE_BYTES];
        for (i, word) in words.iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&word.to_le_bytes());
        }
        out
    }

    /// Reads a state row; rows written before the lifetime counters existed count what is
    /// stored as appended.
    pub fn decode(bytes: &[u8]) -> Option<ShardState> {
        if bytes.len() != STATE_BYTES && bytes.len() != STATE_V1_BYTES {
            return None;
        }
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            u64::from_le_bytes(b)
        };
        let mut state = ShardState {
            last: Position(word(0)),
            bytes: word(1),
            records: word(2),
            ..ShardState::default()
        };
        if bytes.len() == STATE_BYTES {
            state.appended = word(3);
            state.appended_bytes = word(4);
            state.trimmed = word(5);
            state.trimmed_bytes = word(6);
            state.trimmed_through = Position(word(7));
        } else {
            state.appended = state.records;
            state.appended_bytes = state.bytes;
        }
        Some(state)
    }
}
