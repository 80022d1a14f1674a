//! Sealing and opening shard log blocks and large-record chunks (format: see the parent
//! module). Invariant: the associated data binds every sealed value to its shard uid, its
//! position and (chunks) its index, and a block's clear header to its ciphertext.

use std::sync::Arc;

use super::{CryptError, Keyring, MasterKey, SEALED};
use crate::storage::block::{self, put_varint, read_varint, CorruptBlock};

/// The key a stream's new blocks are sealed with: its normalized name and the key.
#[derive(Debug, Clone)]
pub struct Sealer {
    pub name: String,
    pub key: Arc<MasterKey>,
}

/// A sealed block's clear header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedHeader {
    /// The kind of the plaintext block inside (records or large head).
    pub inner_kind: u8,
    pub count: u64,
    pub last_delta: u64,
    /// Record bytes (data and partition keys) the block holds.
    pub payload: u64,
    /// The normalized name of the key it was sealed with.
    pub key_name: String,
    /// Where the seal (`salt nonce ciphertext tag`) starts.
    pub body_at: usize,
}

fn block_aad(uid: u64, key: u64, header: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(32 + header.len());
    aad.extend_from_slice(b"kinedge-block");
    aad.extend_from_slice(&uid.to_le_bytes());
    aad.extend_from_slice(&key.to_le_bytes());
    aad.extend_from_slice(header);
    aad
}

fn chunk_aad(uid: u64, key: u64, index: u32) -> Vec<u8> {
    let mut aad = Vec::with_capacity(32);
    aad.extend_from_slice(b"kinedge-chunk");
    aad.extend_from_slice(&uid.to_le_bytes());
    aad.extend_from_slice(&key.to_le_bytes());
    aad.extend_from_slice(&index.to_le_bytes());
    aad
}

/// Seals a plaintext block (kind 1 or 2) stored at `key` in shard `uid`.
pub fn seal_block(
    sealer: &Sealer,
    uid: u64,
    key: u64,
    plain: &[u8],
) -> Result<Vec<u8>, CorruptBlock> {
    let summary = block::summarize(key, plain)?;
    let payload = block::payload_bytes(key, plain)?;
    let mut out = Vec::with_capacity(plain.len() + 64 + sealer.name.len());
    out.push(SEALED);
    out.push(plain[0]);
    put_varint(&mut out, summary.records);
    put_varint(&mut out, summary.last.0 - key);
    put_varint(&mut out, payload);
    put_varint(&mut out, sealer.name.len() as u64);
    out.extend_from_slice(sealer.name.as_bytes());
    let aad = block_aad(uid, key, &out);
    sealer.key.seal(&aad, plain, &mut out);
    Ok(out)
}

/// Reads a sealed block's clear header (no key needed).
pub fn parse_header(key: u64, bytes: &[u8]) -> Result<SealedHeader, CorruptBlock> {
    let corrupt = |what| CorruptBlock { key, what };
    if bytes.first() != Some(&SEALED) {
        return Err(corrupt("not a sealed block"));
    }
    let inner_kind = *bytes
        .get(1)
        .ok_or_else(|| corrupt("truncated sealed header"))?;
    let mut at = 2;
    let mut varint = || read_varint(bytes, &mut at).ok_or_else(|| corrupt("bad varint"));
    let count = varint()?;
    let last_delta = varint()?;
    let payload = varint()?;
    let name_len = varint()?;
    key.checked_add(last_delta)
        .ok_or_else(|| corrupt("position overflow"))?;
    let end = usize::try_from(name_len)
        .ok()
        .and_then(|n| at.checked_add(n))
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| corrupt("truncated key name"))?;
    let key_name = std::str::from_utf8(&bytes[at..end])
        .map_err(|_| corrupt("key name not UTF-8"))?
        .to_string();
    if bytes.len() - end < super::SEAL_OVERHEAD {
        return Err(corrupt("truncated seal"));
    }
    if inner_kind == SEALED {
        return Err(corrupt("sealed block inside a sealed block"));
    }
    Ok(SealedHeader {
        inner_kind,
        count,
        last_delta,
        payload,
        key_name,
        body_at: end,
    })
}

fn decrypt_error(name: &str, what: String) -> CryptError {
    CryptError::Decrypt {
        key: name.to_string(),
        what,
    }
}

/// The plaintext block inside a sealed one, and the key it was sealed with (its chunks, for
/// a large record, are sealed with the same key). Blocking (may read the key file).
pub fn open_block(
    keyring: &Keyring,
    uid: u64,
    key: u64,
    bytes: &[u8],
) -> Result<(Vec<u8>, Sealer), CryptError> {
    let what = || format!("the block at {key} of shard log {uid}");
    let header = parse_header(key, bytes).map_err(|e| CryptError::Malformed {
        what: what(),
        why: e.what,
    })?;
    let master = keyring.load(&header.key_name)?;
    let aad = block_aad(uid, key, &bytes[..header.body_at]);
    let plain = master
        .open(&aad, &bytes[header.body_at..])
        .ok_or_else(|| decrypt_error(&header.key_name, what()))?;
    if plain.first() != Some(&header.inner_kind) {
        return Err(CryptError::Malformed {
            what: what(),
            why: "inner block kind differs from the header",
        });
    }
    Ok((
        plain,
        Sealer {
            name: header.key_name,
            key: master,
        },
    ))
}

/// Seals chunk `index` of the large record at `key` in shard `uid`.
pub fn seal_chunk(sealer: &Sealer, uid: u64, key: u64, index: u32, chunk: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(chunk.len() + super::SEAL_OVERHEAD);
    sealer
        .key
        .seal(&chunk_aad(uid, key, index), chunk, &mut out);
    out
}

/// Opens a chunk sealed by [`seal_chunk`].
pub fn open_chunk(
    sealer: &Sealer,
    uid: u64,
    key: u64,
    index: u32,
    bytes: &[u8],
) -> Result<Vec<u8>, CryptError> {
    sealer
        .key
        .open(&chunk_aad(uid, key, index), bytes)
        .ok_or_else(|| {
            decrypt_error(
                &sealer.name,
                format!("chunk {index} of the record at {key} of shard log {uid}"),
            )
        })
}
