use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::storage::block::{self, Decoded, PendingRecord, CHUNK_BYTES};
use crate::streams::Position;

fn keyring(dir: &Path, auto_create: bool) -> Keyring {
    Keyring::new(KeyringOptions {
        dir: dir.join("keys"),
        auto_create,
    })
}

fn sealer(ring: &Keyring, key_id: &str) -> Sealer {
    let (name, key) = ring.get_or_create(key_id).unwrap();
    Sealer { name, key }
}

fn records() -> Vec<PendingRecord> {
    (0..5u64)
        .map(|i| PendingRecord {
            position: Position(100 + i),
            partition_key: format!("pk-{i}"),
            data: Bytes::from(format!("secret payload {i}")),
        })
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn sealed_block_round_trip_hides_data_and_keeps_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let ring = keyring(dir.path(), true);
    let s = sealer(&ring, "alias/aws/kinesis");
    let plain = block::encode_records(&records());
    let sealed = seal_block(&s, 7, 100, &plain).unwrap();
    assert!(!contains(&sealed, b"secret payload"));
    assert!(!contains(&sealed, b"pk-3"));
    // Retention and recovery read the clear header without the key.
    let summary = block::summarize(100, &sealed).unwrap();
    assert_eq!(summary.records, 5);
    assert_eq!(summary.last, Position(104));
    assert!(!summary.large);
    assert_eq!(
        block::payload_bytes(100, &sealed).unwrap(),
        block::payload_bytes(100, &plain).unwrap()
    );
    assert!(block::decode(100, &sealed, Position(0)).is_err());
    let (opened, used) = open_block(&ring, 7, 100, &sealed).unwrap();
    assert_eq!(opened, plain);
    assert_eq!(used.name, "alias/aws/kinesis");
    let Decoded::Records(back) = block::decode_owned(100, opened.into(), Position(102)).unwrap()
    else {
        panic!("records")
    };
    assert_eq!(back.len(), 3);
    assert_eq!(back[0].data.as_ref(), b"secret payload 2");
}

#[test]
fn tampered_or_moved_blocks_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ring = keyring(dir.path(), true);
    let s = sealer(&ring, "alias/a");
    let sealed = seal_block(&s, 7, 100, &block::encode_records(&records())).unwrap();
    // Every byte of ciphertext and tag matters.
    let header = parse_header(100, &sealed).unwrap();
    for at in header.body_at..sealed.len() {
        let mut bad = sealed.clone();
        bad[at] ^= 0x01;
        assert!(
            matches!(
                open_block(&ring, 7, 100, &bad),
                Err(CryptError::Decrypt { .. })
            ),
            "flip at {at}"
        );
    }
    // The clear header is authenticated too (count changed).
    let mut bad = sealed.clone();
    bad[2] = 4;
    assert!(open_block(&ring, 7, 100, &bad).is_err());
    // Another shard or position: refused.
    assert!(matches!(
        open_block(&ring, 8, 100, &sealed),
        Err(CryptError::Decrypt { .. })
    ));
    assert!(matches!(
        open_block(&ring, 7, 101, &sealed),
        Err(CryptError::Decrypt { .. })
    ));
    // Truncated: an error, no panic.
    for cut in 0..sealed.len() {
        assert!(open_block(&ring, 7, 100, &sealed[..cut]).is_err());
        let _ = block::summarize(100, &sealed[..cut]);
    }
}

#[test]
fn wrong_or_missing_key_is_refused_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let ring = keyring(dir.path(), true);
    let s = sealer(&ring, "alias/a");
    let sealed = seal_block(&s, 1, 5, &block::encode_records(&records()[..1])).unwrap();
    // The key file replaced by another key (a restore with the wrong backup).
    let path = ring.path_of("alias/a");
    std::fs::write(&path, [9u8; 32]).unwrap();
    let fresh = keyring(dir.path(), true);
    let err = open_block(&fresh, 1, 5, &sealed).unwrap_err();
    assert!(matches!(err, CryptError::Decrypt { .. }));
    assert!(err.to_string().contains("alias/a"), "{err}");
    // The key file gone: not found, never garbage, never created on read.
    std::fs::remove_file(&path).unwrap();
    let fresh = keyring(dir.path(), true);
    let err = open_block(&fresh, 1, 5, &sealed).unwrap_err();
    assert!(matches!(err, CryptError::KeyNotFound { .. }), "{err}");
    assert!(!path.exists());
    // A file that is not 32 bytes.
    std::fs::write(&path, b"short").unwrap();
    let fresh = keyring(dir.path(), true);
    assert!(matches!(
        open_block(&fresh, 1, 5, &sealed),
        Err(CryptError::KeyInvalid { len: 5, .. })
    ));
}

#[test]
fn nonces_and_salts_never_repeat() {
    let key = MasterKey::from_bytes([1u8; 32]);
    let mut seen = HashSet::new();
    for _ in 0..10_000 {
        let mut out = Vec::new();
        key.seal(b"aad", b"same plaintext", &mut out);
        assert!(seen.insert(out[..28].to_vec()), "salt+nonce repeated");
        assert_eq!(key.open(b"aad", &out).unwrap(), b"same plaintext");
    }
}

#[test]
fn plaintext_blocks_still_read_and_large_records_seal_their_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let ring = keyring(dir.path(), true);
    let s = sealer(&ring, "k1");
    // An old (plaintext) block is untouched by the sealed format.
    let plain = block::encode_records(&records());
    assert!(block::decode(100, &plain, Position(0)).is_ok());
    // A large record: sealed head, sealed chunks bound to their index.
    let big = PendingRecord {
        position: Position(9),
        partition_key: "big".into(),
        data: Bytes::from(vec![7u8; CHUNK_BYTES + 10]),
    };
    let head = seal_block(&s, 3, 9, &block::encode_large_head(&big)).unwrap();
    let summary = block::summarize(9, &head).unwrap();
    assert!(summary.large);
    assert_eq!(
        block::payload_bytes(9, &head).unwrap(),
        3 + CHUNK_BYTES as u64 + 10
    );
    let (opened, used) = open_block(&ring, 3, 9, &head).unwrap();
    assert!(matches!(
        block::decode(9, &opened, Position(0)).unwrap(),
        Decoded::Large { chunk_count: 2, .. }
    ));
    let chunks: Vec<&[u8]> = block::chunks(&big.data).collect();
    let sealed0 = seal_chunk(&s, 3, 9, 0, chunks[0]);
    assert!(sealed0.len() <= CHUNK_BYTES + SEAL_OVERHEAD);
    assert_eq!(open_chunk(&used, 3, 9, 0, &sealed0).unwrap(), chunks[0]);
    assert!(open_chunk(&used, 3, 9, 1, &sealed0).is_err());
}

#[test]
fn key_ids_map_to_safe_file_names() {
    assert_eq!(
        normalize_key_id("alias/aws/kinesis").unwrap(),
        "alias/aws/kinesis"
    );
    assert_eq!(
        normalize_key_id("arn:aws:kms:us-east-1:123456789012:alias/aws/kinesis").unwrap(),
        "alias/aws/kinesis"
    );
    assert_eq!(
        normalize_key_id("arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab").unwrap(),
        "1234abcd-12ab"
    );
    assert!(normalize_key_id("").is_err());
    assert!(normalize_key_id("arn:aws:s3:::bucket").is_err());
    for id in ["../../etc/passwd", "alias/..", "..", "a/b\\c", "é\0x"] {
        let stem = file_stem(&normalize_key_id(id).unwrap());
        assert!(
            !stem.contains('/') && !stem.contains('.') && !stem.contains('\\'),
            "{stem}"
        );
    }
    // Distinct ids, distinct files.
    assert_ne!(file_stem("alias/a"), file_stem("alias_a"));
    assert_ne!(file_stem("alias/a"), file_stem("alias%2Fa"));
    let long = "x".repeat(500);
    assert!(file_stem(&long).starts_with("sha256-"));
}

#[test]
fn key_files_are_created_once_0600_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ring = keyring(dir.path(), true);
    let (name, key) = ring.get_or_create("alias/aws/kinesis").unwrap();
    let path = ring.path_of(&name);
    assert_eq!(std::fs::read(&path).unwrap().len(), 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The same KeyId (or its ARN) is the same key, also after a restart.
    let again = keyring(dir.path(), true);
    let (_, key2) = again
        .get_or_create("arn:aws:kms:eu-west-1:1:alias/aws/kinesis")
        .unwrap();
    let mut a = Vec::new();
    key.seal(b"", b"x", &mut a);
    assert_eq!(key2.open(b"", &a).unwrap(), b"x");
    assert!(!format!("{key:?}").contains('1'));
    // Auto-creation off: a new KeyId is not found.
    let strict = keyring(dir.path(), false);
    assert!(matches!(
        strict.get_or_create("alias/new"),
        Err(CryptError::KeyNotFound { .. })
    ));
    assert!(strict.get_or_create("alias/aws/kinesis").is_ok());
    let _: Arc<MasterKey> = key2;
}
