//! Encryption at rest of shard log blocks (StartStreamEncryption): the key files and the
//! sealed block format.
//!
//! Keys: a `KeyId` (alias `alias/...`, key id, or a KMS key/alias ARN, which names the same
//! key as its id/alias) maps to a file of 32 random bytes, `<keys_dir>/<name>.key`, where
//! `<name>` is the normalized id with every byte outside `[A-Za-z0-9_-]` written `%XX` (so no
//! `/`, no `..`: a key file is always directly in the keys directory; names longer than 160
//! bytes become `sha256-<hex>`). Files are created 0600 (directory 0700) on first use when
//! auto-creation is on; key material is never logged or printed (`Debug` is redacted).
//!
//! Sealed block (block kind 3; kinds 1 and 2 stay plaintext, so older blocks read as before):
//! ```text
//! 0x03 inner_kind count last_delta payload_bytes name_len name | salt(16) nonce(12) ciphertext tag(16)
//! ```
//! The clear header is what retention and recovery need without the key (record count, last
//! position, record bytes). The ciphertext is the whole plaintext block (kind 1 or 2). Each
//! seal draws a fresh random 128-bit salt and derives a one-use AES-256 key
//! `HMAC-SHA256(master, "kinedge-seal-v1" || salt)`, then encrypts with AES-256-GCM under a
//! random 96-bit nonce; the associated data is the shard uid, the block key (position), the
//! chunk index (large records) and the clear header, so a block cannot be moved to another
//! shard or position, nor its header changed. Chunks of a large record are sealed the same way
//! (`salt nonce ciphertext tag`, no header). Invariant: a key is never used twice with the
//! same nonce (fresh derived key per seal: a repeat needs a 128-bit salt collision).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Block kind of a sealed block.
pub const SEALED: u8 = 3;
/// Bytes a seal adds around its plaintext: salt, nonce and tag.
pub const SEAL_OVERHEAD: usize = 16 + 12 + 16;
/// Key files kept in memory at most (more are read again from disk when needed).
const MAX_CACHED_KEYS: usize = 256;
/// Longest file-safe name kept readable; longer ones are hashed.
const MAX_READABLE_NAME: usize = 160;
/// The key AWS users pass for the AWS managed Kinesis key.
pub const DEFAULT_AWS_KEY: &str = "alias/aws/kinesis";

#[derive(Debug, thiserror::Error)]
pub enum CryptError {
    #[error("KMS key {key_id} does not exist (no key file {path})")]
    KeyNotFound { key_id: String, path: PathBuf },
    #[error("cannot use key file {path}: {source}")]
    KeyFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("key file {path} is not a key: it has {len} bytes, a key has 32")]
    KeyInvalid { path: PathBuf, len: u64 },
    #[error("invalid KeyId: {0}")]
    InvalidKeyId(String),
    #[error("cannot decrypt {what} with key {key}: wrong key or altered data")]
    Decrypt { key: String, what: String },
    #[error("sealed {what} is malformed: {why}")]
    Malformed { what: String, why: &'static str },
}

/// A 32-byte master key, read from its file.
pub struct MasterKey {
    bytes: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        // Best effort (no zeroize dependency): the bytes do not outlive the key here.
        self.bytes.fill(0);
        std::hint::black_box(&self.bytes);
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        MasterKey { bytes }
    }

    fn cipher(&self, salt: &[u8]) -> Aes256Gcm {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.bytes)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"kinedge-seal-v1");
        mac.update(salt);
        let derived = mac.finalize().into_bytes();
        Aes256Gcm::new(&derived)
    }

    /// `salt nonce ciphertext tag` of `plain`, bound to `aad`.
    pub fn seal(&self, aad: &[u8], plain: &[u8], out: &mut Vec<u8>) {
        let mut salt_nonce = [0u8; 28];
        rand::thread_rng().fill_bytes(&mut salt_nonce);
        let (salt, nonce) = salt_nonce.split_at(16);
        let sealed = self
            .cipher(salt)
            .encrypt(Nonce::from_slice(nonce), Payload { msg: plain, aad })
            .unwrap_or_else(|_| unreachable!("AES-GCM encrypts any block under 64 GiB"));
        out.reserve(28 + sealed.len());
        out.extend_from_slice(&salt_nonce);
        out.extend_from_slice(&sealed);
    }

    /// The plaintext of `sealed` (`salt nonce ciphertext tag`), if it was sealed with this
    /// key and `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < SEAL_OVERHEAD {
            return None;
        }
        let (salt, rest) = sealed.split_at(16);
        let (nonce, body) = rest.split_at(12);
        self.cipher(salt)
            .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad })
            .ok()
    }
}

/// The normalized name of a KeyId: a KMS ARN names the same key as its alias or id.
pub fn normalize_key_id(key_id: &str) -> Result<String, CryptError> {
    if key_id.is_empty() || key_id.len() > 2048 {
        return Err(CryptError::InvalidKeyId(
            "a KeyId has 1 to 2048 characters".into(),
        ));
    }
    if let Some(rest) = key_id.strip_prefix("arn:") {
        // arn:<partition>:kms:<region>:<account>:key/<id> or :alias/<name>
        let parts: Vec<&str> = rest.splitn(5, ':').collect();
        match parts.as_slice() {
            [_, "kms", _, _, resource]
                if resource.starts_with("alias/") || resource.starts_with("key/") =>
            {
                let name = resource.strip_prefix("key/").unwrap_or(resource);
                if name.is_empty() || name == "alias/" {
                    return Err(CryptError::InvalidKeyId(format!("{key_id} names no key")));
                }
                return Ok(name.to_string());
            }
            _ => {
                return Err(CryptError::InvalidKeyId(format!(
                    "{key_id} is not a KMS key or alias ARN"
                )))
            }
        }
    }
    if key_id == "alias/" {
        return Err(CryptError::InvalidKeyId("alias/ names no key".into()));
    }
    Ok(key_id.to_string())
}

/// The file stem of a normalized key name: `[A-Za-z0-9_-]` kept, other bytes `%XX`.
pub fn file_stem(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.len() > MAX_READABLE_NAME {
        let digest = Sha256::digest(name.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        return format!("sha256-{hex}");
    }
    out
}

/// Where key files live and whether a new KeyId creates one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyringOptions {
    pub dir: PathBuf,
    pub auto_create: bool,
}

/// The key files of a gateway, with a bounded cache of the keys read.
#[derive(Debug)]
pub struct Keyring {
    options: KeyringOptions,
    keys: Mutex<HashMap<String, Arc<MasterKey>>>,
}

impl Keyring {
    pub fn new(options: KeyringOptions) -> Self {
        Keyring {
            options,
            keys: Mutex::new(HashMap::new()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.options.dir
    }

    pub fn path_of(&self, name: &str) -> PathBuf {
        self.options.dir.join(format!("{}.key", file_stem(name)))
    }

    fn cached(&self, name: &str) -> Option<Arc<MasterKey>> {
        self.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    fn remember(&self, name: &str, key: Arc<MasterKey>) {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if keys.len() >= MAX_CACHED_KEYS {
            keys.clear();
        }
        keys.insert(name.to_string(), key);
    }

    /// The key of a normalized name, read from its file (never created). Blocking.
    pub fn load(&self, name: &str) -> Result<Arc<MasterKey>, CryptError> {
        if let Some(key) = self.cached(name) {
            return Ok(key);
        }
        let path = self.path_of(name);
        let key = Arc::new(read_key(&path).map_err(|e| match e {
            CryptError::KeyFile { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                CryptError::KeyNotFound {
                    key_id: name.to_string(),
                    path: path.clone(),
                }
            }
            other => other,
        })?);
        self.remember(name, key.clone());
        Ok(key)
    }

    /// The key a KeyId names (its normalized name and the key), created with 32 random
    /// bytes when it does not exist and auto-creation is on. Blocking.
    pub fn get_or_create(&self, key_id: &str) -> Result<(String, Arc<MasterKey>), CryptError> {
        let name = normalize_key_id(key_id)?;
        match self.load(&name) {
            Ok(key) => Ok((name, key)),
            Err(CryptError::KeyNotFound { .. }) if self.options.auto_create => {
                let path = self.path_of(&name);
                create_key(&self.options.dir, &path)?;
                tracing::info!(key = %name, path = %path.display(), "created a stream encryption key file");
                let key = self.load(&name)?;
                Ok((name, key))
            }
            Err(CryptError::KeyNotFound { path, .. }) => Err(CryptError::KeyNotFound {
                key_id: key_id.to_string(),
                path,
            }),
            Err(e) => Err(e),
        }
    }
}

fn key_file_error(path: &Path) -> impl FnOnce(std::io::Error) -> CryptError + '_ {
    move |source| CryptError::KeyFile {
        path: path.to_path_buf(),
        source,
    }
}

fn read_key(path: &Path) -> Result<MasterKey, CryptError> {
    let bytes = std::fs::read(path).map_err(key_file_error(path))?;
    let array = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| CryptError::KeyInvalid {
        path: path.to_path_buf(),
        len: bytes.len() as u64,
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "key file is readable by group or others; it should be 0600");
            }
        }
    }
    Ok(MasterKey::from_bytes(array))
}

/// Writes a new key file (0600; directory 0700 if created); an existing file is kept (two
/// requests racing both use the first one's key).
fn create_key(dir: &Path, path: &Path) -> Result<(), CryptError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(key_file_error(dir))?;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(path).and_then(|mut file| {
        file.write_all(&bytes)?;
        file.sync_all()
    });
    bytes.fill(0);
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(key_file_error(path)(e)),
    }
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// The sealed block and chunk formats.
mod sealed;

pub use sealed::{
    open_block, open_chunk, parse_header, seal_block, seal_chunk, SealedHeader, Sealer,
};

#[cfg(test)]
mod store_tests;
#[cfg(test)]
mod tests;
