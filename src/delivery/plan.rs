//! A batch's identity, and the plan that forms a batch again, identical, after a crash.
//!
//! The rule (docs/delivery.md, "Restart"): a batch is named by the records it carries. Its id is
//! a UUID (version 8, from SHA-256 as in RFC 9562 appendix B.2) of the delivery stream's name
//! and, per source shard, the first and last sequence number it holds; its `created_ms` (object
//! names, `!{timestamp:..}` prefixes, the dead-letter path) is the arrival time of its oldest
//! record, Firehose's timestamp for prefixes. So the same id means the same records, and a
//! batch formed again gets the same request id and the same object names.
//!
//! Where a batch ends depends on timing (the buffer interval, what had arrived), so it is
//! written down: before a batch is sent, its plan (where reading stands in every shard once
//! the batch is formed) is committed; a confirmed batch's checkpoints are committed on their
//! own or together with the next batch's plan. After a restart the runner reads from the
//! checkpoints exactly to the plan and cuts there, so the batch whose confirmation was lost
//! goes out again as it was. Retention that trimmed part of it meanwhile, or a smaller size
//! limit in the new configuration, makes a different batch, with a different id.
//!
//! Invariants: plan rows sit in the delivery checkpoint table beside the checkpoints, under the
//! shard's storage id with `PLAN_ROW` set (storage ids never reach that bit). Batches go out one
//! at a time and a plan is committed only once the previous batch's checkpoints are (in the
//! same commit or before), so a plan row ahead of its checkpoint belongs to the one batch that
//! may have been on its way; a plan row at its checkpoint is spent.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::checkpoint::DeliveryCheckpoint;
use super::sources::shard::Cursor;
use crate::streams::Position;

/// Set in the shard id of a plan row.
pub const PLAN_ROW: u64 = 1 << 63;

/// The batch id: a UUID derived from the delivery stream and, per shard index (ascending),
/// the first and last sequence number the batch holds of that shard.
pub fn batch_id<'a>(
    delivery_stream: &str,
    ranges: impl IntoIterator<Item = (u64, &'a str, &'a str)>,
) -> String {
    let mut hash = Sha256::new();
    hash.update(b"kinedge delivery batch\n");
    hash.update(delivery_stream.as_bytes());
    for (shard, first, last) in ranges {
        hash.update(format!("\n{shard}:{first}-{last}").as_bytes());
    }
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// What the store holds for a delivery stream, split: the checkpoints, and the plan of the
/// batch that may have been on its way (shard storage id -> where that batch ends).
pub fn split_saved(
    saved: HashMap<u64, DeliveryCheckpoint>,
) -> (HashMap<u64, DeliveryCheckpoint>, HashMap<u64, Position>) {
    let (plans, checkpoints): (HashMap<_, _>, HashMap<_, _>) =
        saved.into_iter().partition(|(uid, _)| uid & PLAN_ROW != 0);
    let pending = plans
        .into_iter()
        .filter_map(|(row, plan)| {
            let uid = row & !PLAN_ROW;
            let checkpoint = checkpoints.get(&uid)?;
            (plan.position > checkpoint.position).then_some((uid, plan.position))
        })
        .collect();
    (checkpoints, pending)
}

/// The plan rows of a batch just formed: where reading stands in every shard.
pub fn rows<'a>(
    cursors: impl IntoIterator<Item = (&'a u64, &'a Cursor)>,
) -> Vec<(u64, DeliveryCheckpoint)> {
    cursors
        .into_iter()
        .map(|(uid, cursor)| (uid | PLAN_ROW, cursor.read))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_a_uuid_of_the_stream_and_the_ranges() {
        let a = batch_id("d", [(0, "10", "12"), (1, "20", "20")]);
        let parsed = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(parsed.get_version_num(), 8);
        assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(a, batch_id("d", [(0, "10", "12"), (1, "20", "20")]));
        // Another end, shard, or delivery stream: another id.
        assert_ne!(a, batch_id("d", [(0, "10", "13"), (1, "20", "20")]));
        assert_ne!(a, batch_id("d", [(0, "10", "12")]));
        assert_ne!(a, batch_id("d", [(0, "10", "12"), (2, "20", "20")]));
        assert_ne!(a, batch_id("e", [(0, "10", "12"), (1, "20", "20")]));
    }

    #[test]
    fn only_plans_ahead_of_their_checkpoint_are_pending() {
        let at = |p: u64| DeliveryCheckpoint {
            position: Position(p),
            ..DeliveryCheckpoint::default()
        };
        let saved = HashMap::from([
            (1, at(10)),
            (1 | PLAN_ROW, at(15)), // on its way
            (2, at(20)),
            (2 | PLAN_ROW, at(20)), // spent
            (3 | PLAN_ROW, at(5)),  // no checkpoint: ignored
        ]);
        let (checkpoints, pending) = split_saved(saved);
        assert_eq!(checkpoints, HashMap::from([(1, at(10)), (2, at(20))]));
        assert_eq!(pending, HashMap::from([(1, Position(15))]));
    }
}
