//! How the store is opened: [`StoreOptions`], with the defaults a gateway without a
//! `[storage]` section gets.

use std::path::PathBuf;

use super::{crypt, DEFAULT_COMMIT_INTERVAL_MS};

/// How the store is opened.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub data_dir: PathBuf,
    /// redb's page cache in bytes.
    pub cache_size: u64,
    /// Refuse new records when the file system has less free space than this.
    pub min_free_disk: u64,
    /// Most record bytes one write transaction takes before it commits.
    pub max_commit_bytes: u64,
    /// The writer commits at most this often (ms) unless a big group is waiting: at sensor
    /// rates one fsync then covers many messages. 0 commits as soon as a request arrives.
    pub commit_interval_ms: u64,
    /// Save redb's allocator state with each commit so that opening after a crash is
    /// immediate instead of a full scan of the file. Off by default: the state covers the
    /// whole file, so every commit would write more as the file grows.
    pub quick_repair: bool,
    /// Stream encryption keys: where their files are, whether a new KeyId creates one.
    pub keys: crypt::KeyringOptions,
}

impl StoreOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir: PathBuf = data_dir.into();
        StoreOptions {
            data_dir: data_dir.clone(),
            cache_size: 16 * 1024 * 1024,
            min_free_disk: 256 * 1024 * 1024,
            max_commit_bytes: 8 * 1024 * 1024,
            commit_interval_ms: DEFAULT_COMMIT_INTERVAL_MS,
            quick_repair: false,
            keys: crypt::KeyringOptions {
                dir: data_dir.join("keys"),
                auto_create: true,
            },
        }
    }
}
