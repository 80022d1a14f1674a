//! The tables of the stream database and how their rows are laid out.
//!
//! - `system`: the gateway's iterator-signing key and the next storage id.
//! - `streams`: stream name -> `StreamMeta` (JSON; written only when a stream changes).
//! - `shard_state`: shard storage id -> last position, bytes and record count (24 bytes),
//!   written with every commit that touches the shard, so start-up needs no scan.
//! - `shard.<id>`: one shard log: first position of a block -> block (see `block`).
//! - `chunks.<id>`: (position, chunk number) -> data of a large record.

use redb::TableDefinition;

use crate::streams::Position;

pub const SYSTEM: TableDefinition<&str, &[u8]> = TableDefinition::new("system");
pub const STREAMS: TableDefinition<&str, &[u8]> = TableDefinition::new("streams");
pub const SHARD_STATE: TableDefinition<u64, &[u8]> = TableDefinition::new("shard_state");

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
    pub records: u64,
}

impl ShardState {
    pub fn encode(&self) -> [u8; 24] {
        let mut out = [0u8; 24];
        out[..8].copy_from_slice(&self.last.0.to_le_bytes());
        out[8..16].copy_from_slice(&self.bytes.to_le_bytes());
        out[16..].copy_from_slice(&self.records.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<ShardState> {
        if bytes.len() != 24 {
            return None;
        }
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            u64::from_le_bytes(b)
        };
        Some(ShardState {
            last: Position(word(0)),
            bytes: word(1),
            records: word(2),
        })
    }
}
