//! A delivery stream's durable rows in the stream store, and their byte format.
//!
//! The store keeps opaque rows per consumer (`crate::storage::CheckpointOp`); a delivery
//! stream is the consumer named by its own name, and its rows are keyed by u64:
//!
//! - shard storage id -> [`DeliveryCheckpoint`]: how far the shard was delivered;
//! - shard storage id | `plan::PLAN_ROW` -> [`DeliveryCheckpoint`]: where the batch that may
//!   have been on its way ends (see `plan`).
//!
//! A row is 32 bytes: four little-endian u64 words, `position`, `records_through`,
//! `bytes_through`, `lost`. A row of another length is skipped when read (never written).
//! The definition of a delivery stream created through the API is its JSON.

use std::collections::HashMap;

use crate::storage::{CheckpointOp, Store, StoreError};
use crate::streams::Position;

/// Bytes of an encoded [`DeliveryCheckpoint`].
const ROW_BYTES: usize = 32;

/// How far a delivery stream has delivered one shard, kept durable by the writer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryCheckpoint {
    /// The position of the last record delivered (or skipped as lost); reading resumes after it.
    pub position: Position,
    /// Records of the shard up to and including `position` (the shard's `appended` count
    /// then): backlog = appended now - this.
    pub records_through: u64,
    /// Record bytes up to and including `position`.
    pub bytes_through: u64,
    /// Records trimmed by retention or a quota before this delivery stream delivered them.
    pub lost: u64,
}

impl DeliveryCheckpoint {
    pub fn encode(&self) -> [u8; ROW_BYTES] {
        let mut out = [0u8; ROW_BYTES];
        for (i, word) in [
            self.position.0,
            self.records_through,
            self.bytes_through,
            self.lost,
        ]
        .iter()
        .enumerate()
        {
            out[i * 8..i * 8 + 8].copy_from_slice(&word.to_le_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<DeliveryCheckpoint> {
        if bytes.len() != ROW_BYTES {
            return None;
        }
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            u64::from_le_bytes(b)
        };
        Some(DeliveryCheckpoint {
            position: Position(word(0)),
            records_through: word(1),
            bytes_through: word(2),
            lost: word(3),
        })
    }
}

/// The op that commits `rows` for the delivery stream `name`.
pub fn save_op(name: &str, rows: Vec<(u64, DeliveryCheckpoint)>) -> CheckpointOp {
    // Delivery stream names are `[a-zA-Z0-9_.-]`: other consumers' prefixes (`analytics:`)
    // can never name a delivery stream's rows.
    debug_assert!(!name.contains(':'), "delivery stream name {name:?}");
    CheckpointOp::Save {
        consumer: name.to_owned(),
        rows: rows
            .into_iter()
            .map(|(key, checkpoint)| (key, checkpoint.encode().to_vec()))
            .collect(),
    }
}

/// The committed rows of the delivery stream `name` (checkpoints and plan rows). Blocking.
pub fn load(store: &Store, name: &str) -> Result<HashMap<u64, DeliveryCheckpoint>, StoreError> {
    Ok(store
        .checkpoint_rows(name)?
        .into_iter()
        .filter_map(|(key, bytes)| Some((key, DeliveryCheckpoint::decode(&bytes)?)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_other_lengths_are_skipped() {
        let checkpoint = DeliveryCheckpoint {
            position: Position(7),
            records_through: 3,
            bytes_through: 300,
            lost: 1,
        };
        let bytes = checkpoint.encode();
        assert_eq!(&bytes[..8], &7u64.to_le_bytes());
        assert_eq!(DeliveryCheckpoint::decode(&bytes), Some(checkpoint));
        assert_eq!(DeliveryCheckpoint::decode(&bytes[..31]), None);
    }
}
