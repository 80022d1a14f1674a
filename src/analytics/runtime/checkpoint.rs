//! An application's checkpoint: its input cursors and its engine state (watermarks, window or
//! OVER state, counters), stored as the rows of consumer `analytics:<name>` in the stream
//! store, replaced in the same transaction as the output records it covers.
//!
//! Format: CBOR (ciborium) of [`Checkpoint`], compressed with zstd, cut into rows of at most
//! `ROW_BYTES` (redb rounds large values up to a power-of-two page), keyed 0, 1, 2, ... A
//! checkpoint is rewritten with every commit of results, so its size is both SD-card writes and
//! pages of the store's cache: compressed, a window state of 1,000 devices takes about an eighth
//! of its CBOR. Checkpoints written before compression (plain CBOR) still read: a zstd frame's
//! first byte (0x28) never starts the CBOR map of a checkpoint. A checkpoint of another
//! `fingerprint` (the SQL changed) keeps its cursors and drops its state.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::engine::{EngineState, EngineStateRef};
use super::reader::ShardCursor;

/// A row and its key fit one 16 KiB page (a value of exactly 16 KiB would take a 32 KiB one).
const ROW_BYTES: usize = 16 * 1024 - 256;
const VERSION: u32 = 1;
/// zstd's fastest level: on a window state of 1,000 devices (AVG, MAX, COUNT, 80 KB of CBOR)
/// it compresses as well as the default level 3 (10.5 against 11.0 KB) with half the context
/// (357 against 717 KB, allocated for each checkpoint) and less CPU.
const ZSTD_LEVEL: i32 = 1;
/// The first bytes of a zstd frame.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// Largest checkpoint read back, decompressed (a corrupt frame must not exhaust memory).
const MAX_DECODED_BYTES: u64 = 1 << 30;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    /// Hash of the application's SQL.
    pub fingerprint: u64,
    /// The input stream's uid (a re-created stream starts over).
    pub stream_uid: u64,
    pub cursors: BTreeMap<u64, ShardCursor>,
    pub engine: EngineState,
    /// A window join's second input stream: its uid and cursors.
    #[serde(default)]
    pub right_stream_uid: u64,
    #[serde(default)]
    pub right_cursors: BTreeMap<u64, ShardCursor>,
}

pub fn fingerprint(sql: &str) -> u64 {
    // FNV-1a: stable across builds (std's hasher is not).
    sql.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A checkpoint as written: the same fields as [`Checkpoint`], borrowed from the running
/// application (no copy of its state).
#[derive(Serialize)]
pub struct CheckpointRef<'a> {
    pub version: u32,
    pub fingerprint: u64,
    pub stream_uid: u64,
    pub cursors: &'a BTreeMap<u64, ShardCursor>,
    pub engine: EngineStateRef<'a>,
    pub right_stream_uid: u64,
    /// Left out without a second input: [`Checkpoint`] reads a missing field as empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub right_cursors: Option<&'a BTreeMap<u64, ShardCursor>>,
}

impl<'a> CheckpointRef<'a> {
    /// `inputs`: each input stream's uid and cursors (the source's, then a join's right side).
    pub fn new(
        fingerprint: u64,
        inputs: &[(u64, &'a BTreeMap<u64, ShardCursor>)],
        engine: EngineStateRef<'a>,
    ) -> Option<Self> {
        let (stream_uid, cursors) = *inputs.first()?;
        Some(CheckpointRef {
            version: VERSION,
            fingerprint,
            stream_uid,
            cursors,
            engine,
            right_stream_uid: inputs.get(1).map_or(0, |i| i.0),
            right_cursors: inputs.get(1).map(|i| i.1),
        })
    }

    /// The rows to store (compressed CBOR cut into rows of at most `ROW_BYTES`).
    pub fn encode(&self) -> Result<Vec<(u64, Vec<u8>)>, String> {
        let mut cbor = Vec::new();
        ciborium::into_writer(self, &mut cbor)
            .map_err(|e| format!("cannot encode the checkpoint: {e}"))?;
        let bytes = zstd::bulk::compress(&cbor, ZSTD_LEVEL)
            .map_err(|e| format!("cannot compress the checkpoint: {e}"))?;
        drop(cbor);
        Ok(bytes
            .chunks(ROW_BYTES)
            .enumerate()
            .map(|(i, c)| (i as u64, c.to_vec()))
            .collect())
    }
}

/// A compressed checkpoint's CBOR, at most `MAX_DECODED_BYTES` of it.
fn decompress(frame: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let unreadable = |e: std::io::Error| format!("the checkpoint is unreadable: {e}");
    let decoder = zstd::stream::read::Decoder::new(frame).map_err(unreadable)?;
    let mut out = Vec::new();
    decoder
        .take(MAX_DECODED_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(unreadable)?;
    if out.len() as u64 > MAX_DECODED_BYTES {
        return Err(format!(
            "the checkpoint is unreadable: it decompresses to more than {MAX_DECODED_BYTES} bytes"
        ));
    }
    Ok(out)
}

impl Checkpoint {
    /// The checkpoint in `rows` (None when there is none).
    pub fn decode(rows: HashMap<u64, Vec<u8>>) -> Result<Option<Checkpoint>, String> {
        if rows.is_empty() {
            return Ok(None);
        }
        let mut bytes = Vec::new();
        for i in 0..rows.len() as u64 {
            let row = rows
                .get(&i)
                .ok_or_else(|| format!("checkpoint row {i} is missing"))?;
            bytes.extend_from_slice(row);
        }
        if bytes.starts_with(&ZSTD_MAGIC) {
            bytes = decompress(&bytes)?;
        }
        let checkpoint: Checkpoint = ciborium::from_reader(bytes.as_slice())
            .map_err(|e| format!("the checkpoint is unreadable: {e}"))?;
        if checkpoint.version != VERSION {
            return Err(format!(
                "checkpoint version {} is not {VERSION}",
                checkpoint.version
            ));
        }
        Ok(Some(checkpoint))
    }
}
