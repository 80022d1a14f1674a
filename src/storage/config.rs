//! `[storage]`: the stream database's settings. This module owns their keys (the raw serde
//! struct: its fields are the supported keys), their checks and the checked [`StorageConfig`].

use std::path::PathBuf;

use serde::Deserialize;
use toml::Value;

use crate::config::check::Check;
use crate::config::Reference;

const MIB: u64 = 1024 * 1024;

/// `[storage]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    /// Where `streams.redb` lives; default `--data-dir`, else `$STATE_DIRECTORY`, else `./data`.
    pub data_dir: Option<Value>,
    /// Below this much free disk new records are refused (free pages inside `streams.redb` count as
    /// room); default `"256MiB"`.
    pub min_free_disk: Option<Value>,
    /// redb page cache, at least 1 MiB; default `"16MiB"`.
    pub cache_size: Option<Value>,
    /// Most record bytes in one group commit (1 MiB-128 MiB); default `"8MiB"`.
    pub max_commit_bytes: Option<Value>,
    /// After a commit, gather arriving records this long (0-1000 ms) before the next one; 0 commits
    /// on every arrival; default 100.
    pub commit_interval_ms: Option<Value>,
    /// Save redb's allocator state with every commit (no file check after a crash, more bytes
    /// written); default false.
    pub quick_repair: Option<Value>,
    /// Stream encryption key files (StartStreamEncryption's KeyId, 32 bytes each, 0600); default
    /// `$CONFIGURATION_DIRECTORY/keys` under systemd (`/etc/kinedge/keys`), else `<data_dir>/keys`.
    pub keys_dir: Option<Value>,
    /// Create the key file of a KeyId not seen before (as if the KMS key existed); false refuses
    /// it with KMSNotFoundException; default true.
    pub auto_create_keys: Option<Value>,
}

/// `[storage]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// `None` = not set: the caller uses `--data-dir`, then this, then `$STATE_DIRECTORY`,
    /// then `./data`.
    pub data_dir: Option<PathBuf>,
    /// Bytes of free disk below which new data is refused.
    pub min_free_disk: u64,
    /// Storage engine page cache, bytes.
    pub cache_size: u64,
    /// Group commit cap per write transaction, bytes.
    pub max_commit_bytes: u64,
    /// The writer commits at most this often (ms) unless a big group waits.
    pub commit_interval_ms: u64,
    /// Save redb's allocator state with every commit, so that opening after a crash needs
    /// no scan of the file; costs bytes written per commit that grow with the file size.
    pub quick_repair: bool,
    /// Stream encryption key files; `None`: `$CONFIGURATION_DIRECTORY/keys`, else
    /// `<data_dir>/keys`.
    pub keys_dir: Option<PathBuf>,
    /// A new KeyId creates its key file.
    pub auto_create_keys: bool,
}

impl StorageConfig {
    pub const DEFAULT_MIN_FREE_DISK: u64 = 256 * MIB;
    pub const DEFAULT_CACHE_SIZE: u64 = 16 * MIB;
    pub const MIN_CACHE_SIZE: u64 = MIB;
    pub const DEFAULT_MAX_COMMIT_BYTES: u64 = 8 * MIB;
    pub const MAX_COMMIT_BYTES_RANGE: std::ops::RangeInclusive<u64> = MIB..=128 * MIB;
    pub const DEFAULT_COMMIT_INTERVAL_MS: u64 = crate::storage::DEFAULT_COMMIT_INTERVAL_MS;
    pub const COMMIT_INTERVAL_MS_RANGE: std::ops::RangeInclusive<u64> = 0..=1000;
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: None,
            min_free_disk: Self::DEFAULT_MIN_FREE_DISK,
            cache_size: Self::DEFAULT_CACHE_SIZE,
            max_commit_bytes: Self::DEFAULT_MAX_COMMIT_BYTES,
            commit_interval_ms: Self::DEFAULT_COMMIT_INTERVAL_MS,
            quick_repair: false,
            keys_dir: None,
            auto_create_keys: true,
        }
    }
}

pub fn validate(check: &mut Check, raw: RawStorage) -> StorageConfig {
    let data_dir = check.string("storage.data_dir", raw.data_dir, "a directory path", |s| {
        if s.is_empty() {
            Err("must not be empty; leave data_dir out to use the default".into())
        } else {
            Ok(PathBuf::from(s))
        }
    });
    if let Some(path) = &data_dir {
        check.reference(
            "storage.data_dir",
            Reference::Directory {
                path: path.clone(),
                must_exist: false,
            },
        );
    }
    let keys_dir = check.string("storage.keys_dir", raw.keys_dir, "a directory path", |s| {
        if s.is_empty() {
            Err("must not be empty; leave keys_dir out to use the default".into())
        } else {
            Ok(PathBuf::from(s))
        }
    });
    StorageConfig {
        data_dir,
        keys_dir,
        auto_create_keys: check
            .boolean("storage.auto_create_keys", raw.auto_create_keys)
            .unwrap_or(true),
        min_free_disk: check
            .size("storage.min_free_disk", raw.min_free_disk, 0..=u64::MAX)
            .unwrap_or(StorageConfig::DEFAULT_MIN_FREE_DISK),
        cache_size: check
            .size(
                "storage.cache_size",
                raw.cache_size,
                StorageConfig::MIN_CACHE_SIZE..=u64::MAX,
            )
            .unwrap_or(StorageConfig::DEFAULT_CACHE_SIZE),
        max_commit_bytes: check
            .size(
                "storage.max_commit_bytes",
                raw.max_commit_bytes,
                StorageConfig::MAX_COMMIT_BYTES_RANGE,
            )
            .unwrap_or(StorageConfig::DEFAULT_MAX_COMMIT_BYTES),
        commit_interval_ms: check
            .integer(
                "storage.commit_interval_ms",
                raw.commit_interval_ms,
                StorageConfig::COMMIT_INTERVAL_MS_RANGE,
                " ms",
            )
            .unwrap_or(StorageConfig::DEFAULT_COMMIT_INTERVAL_MS),
        quick_repair: check
            .boolean("storage.quick_repair", raw.quick_repair)
            .unwrap_or(false),
    }
}
