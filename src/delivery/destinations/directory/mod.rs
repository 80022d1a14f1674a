//! The `directory` destination (the embedded default): files on local disk, laid out and
//! named exactly like the `s3` destination's objects (`<path>/<prefix><object name>`), with
//! the same compression and error output. Every file is written atomically: `<name>.tmp` in
//! the target folder, fsync, rename, fsync the folder, so a crash never leaves a partial file
//! under a final name. A retried batch writes the same names again.
//!
//! Failed writes (disk full, permissions) are `Retryable`: nothing is lost while the user
//! frees space. Its failure type is `s3-failed`: the layout is S3's.

pub mod config;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::naming::{self, Prefix};
use super::s3::{error_object, object_body};
use super::{BatchLimits, BuildError, DeliveryError, DestinationContext};
use crate::delivery::batch::{Batch, ErrorBatch, ErrorOutputType};
use crate::delivery::config::{DirectoryConfig, MIB};

pub struct DirectoryDestination {
    root: PathBuf,
    prefix: Prefix,
    error_prefix: Prefix,
}

impl DirectoryDestination {
    pub fn new(
        config: &DirectoryConfig,
        context: &DestinationContext,
    ) -> Result<DirectoryDestination, BuildError> {
        let error = |message: String| BuildError {
            kind: "directory",
            message,
        };
        let prefix = Prefix::parse_or_default(config.prefix.as_deref(), false)
            .map_err(|e| error(format!("prefix: {e}")))?;
        let error_prefix = Prefix::parse_or_default(config.error_prefix.as_deref(), true)
            .map_err(|e| error(format!("error_prefix: {e}")))?;
        Ok(DirectoryDestination {
            root: context.data_dir.join(&config.path),
            prefix,
            error_prefix,
        })
    }

    /// Writes `body` under `key` (an object key: `/`-separated, relative to the root).
    async fn write(&self, key: &str, body: Bytes) -> Result<(), DeliveryError> {
        let path = self
            .root
            .join(relative_path(key).map_err(DeliveryError::Permanent)?);
        tokio::task::spawn_blocking(move || write_atomically(&path, &body))
            .await
            .map_err(|e| DeliveryError::Retryable(format!("write task failed: {e}")))?
    }
}

/// An object key as a relative path; refuses `.`, `..` and NUL (a partition value such as
/// `../x` must not leave the folder).
fn relative_path(key: &str) -> Result<PathBuf, String> {
    let mut path = PathBuf::new();
    for segment in key.split('/').filter(|s| !s.is_empty()) {
        if segment == "." || segment == ".." || segment.contains('\0') {
            return Err(format!("{key:?} is not a safe file path"));
        }
        path.push(segment);
    }
    if path.as_os_str().is_empty() {
        return Err(format!("{key:?} names no file"));
    }
    Ok(path)
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> DeliveryError {
    let full = e.kind() == std::io::ErrorKind::StorageFull
        || matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT));
    if full {
        DeliveryError::Retryable(format!(
            "disk full: cannot {what} {} ({e}); retrying until there is space",
            path.display()
        ))
    } else {
        DeliveryError::Retryable(format!("cannot {what} {}: {e}", path.display()))
    }
}

/// Creates missing folders, fsyncing each new folder's parent so that it survives a crash.
fn create_dirs(dir: &Path) -> Result<(), DeliveryError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_error("create folder", dir, e)),
    }
}

fn sync_dir(dir: &Path) -> Result<(), DeliveryError> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_error("sync folder", dir, e))
}

/// `<name>.tmp`, fsync, rename to `<name>`, fsync the folder.
pub(crate) fn write_atomically(path: &Path, body: &[u8]) -> Result<(), DeliveryError> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(DeliveryError::Permanent(format!(
            "{} names no file",
            path.display()
        )));
    };
    create_dirs(dir)?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let written = File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(body)?;
            f.sync_all()
        })
        .map_err(|e| io_error("write", &tmp, e))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| io_error("rename", &tmp, e)));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

#[async_trait::async_trait]
impl super::Destination for DirectoryDestination {
    fn kind(&self) -> &'static str {
        "directory"
    }
    fn describe(&self) -> String {
        self.root.display().to_string()
    }
    fn limits(&self) -> BatchLimits {
        BatchLimits {
            max_bytes: 128 * MIB,
            max_records: usize::MAX,
        }
    }
    fn failure_type(&self) -> ErrorOutputType {
        ErrorOutputType::S3Failed
    }

    fn uses_network(&self) -> bool {
        false
    }

    /// One file per rendered prefix; records whose prefix is missing a partition key or is not
    /// a safe path go to the error output.
    async fn deliver(&self, batch: &Batch) -> Result<(), DeliveryError> {
        let mut groups = naming::group_records(&self.prefix, batch);
        let name = naming::object_name(
            &batch.delivery_stream,
            batch.created_ms,
            &batch.id,
            batch.compression,
        );
        for (prefix, indices) in &groups.groups {
            let key = format!("{prefix}{name}");
            if let Err(why) = relative_path(&key) {
                groups
                    .failed
                    .extend(indices.iter().map(|&i| (i, why.clone())));
                continue;
            }
            let body = object_body(batch, indices, batch.compression).await?;
            self.write(&key, body).await?;
        }
        if !groups.failed.is_empty() {
            groups.failed.sort_unstable_by_key(|(i, _)| *i);
            self.deliver_errors(&naming::unroutable_errors(batch, &groups.failed))
                .await?;
        }
        Ok(())
    }

    async fn deliver_errors(&self, errors: &ErrorBatch) -> Result<bool, DeliveryError> {
        let (key, body) = error_object(&self.error_prefix, errors)?;
        self.write(&key, Bytes::from(body)).await?;
        Ok(true)
    }
}

#[async_trait::async_trait]
impl super::ObjectStore for DirectoryDestination {
    fn prefix(&self) -> &Prefix {
        &self.prefix
    }

    /// Writes the file atomically; a file has no content type.
    async fn put_object(&self, key: &str, body: Bytes, _: &str) -> Result<(), DeliveryError> {
        self.write(key, body).await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Read;
    use std::sync::Arc;

    use super::*;
    use crate::delivery::batch::{DeliveryRecord, FailedRecord};
    use crate::delivery::config::Compression;
    use crate::delivery::destinations::Destination;

    // 2024-03-05T07:08:09.012Z
    const T: u64 = 1_709_622_489_012;

    fn record(data: &str, device: Option<&str>) -> DeliveryRecord {
        let mut values = BTreeMap::new();
        if let Some(d) = device {
            values.insert("device".to_string(), d.to_string());
        }
        DeliveryRecord {
            data: Bytes::from(data.to_string()),
            partition_key: "k".into(),
            sequence_number: "1".into(),
            arrival_ms: T,
            partition_values: Arc::new(values),
        }
    }

    fn destination(root: &Path, prefix: Option<&str>) -> DirectoryDestination {
        let context = DestinationContext {
            delivery_stream: "ds".into(),
            source_arn: String::new(),
            data_dir: root.to_path_buf(),
            http: reqwest::Client::new(),
        };
        let config = DirectoryConfig {
            path: "out".into(),
            prefix: prefix.map(str::to_string),
            error_prefix: None,
        };
        DirectoryDestination::new(&config, &context).unwrap()
    }

    fn batch(compression: Compression, records: Vec<DeliveryRecord>) -> Batch {
        Batch {
            delivery_stream: "ds".into(),
            id: "b1".into(),
            created_ms: T,
            formed_ms: T,
            compression,
            records,
        }
    }

    /// Every file under `dir`, relative, sorted.
    fn files(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p.strip_prefix(dir).unwrap().display().to_string());
                }
            }
        }
        out.sort();
        out
    }

    #[tokio::test]
    async fn writes_objects_like_s3() {
        let tmp = tempfile::tempdir().unwrap();
        let d = destination(tmp.path(), None);
        let b = batch(
            Compression::Gzip,
            vec![record("a\n", None), record("b\n", None)],
        );
        d.deliver(&b).await.unwrap();
        let out = tmp.path().join("out");
        assert_eq!(
            files(&out),
            vec!["2024/03/05/07/ds-1-2024-03-05-07-08-09-b1.gz"]
        );
        let mut text = String::new();
        flate2::read::GzDecoder::new(
            File::open(out.join("2024/03/05/07/ds-1-2024-03-05-07-08-09-b1.gz")).unwrap(),
        )
        .read_to_string(&mut text)
        .unwrap();
        assert_eq!(text, "a\nb\n");
        // A retry of the same batch writes the same file again, nothing more.
        d.deliver(&b).await.unwrap();
        assert_eq!(files(&out).len(), 1);
    }

    #[tokio::test]
    async fn partitions_and_unroutable_records() {
        let tmp = tempfile::tempdir().unwrap();
        let d = destination(tmp.path(), Some("!{partitionKeyFromQuery:device}/"));
        let b = batch(
            Compression::None,
            vec![
                record("1", Some("a")),
                record("2", Some("b")),
                record("3", None),
                record("4", Some("..")),
                record("5", Some("a")),
            ],
        );
        d.deliver(&b).await.unwrap();
        let out = tmp.path().join("out");
        let name = "ds-1-2024-03-05-07-08-09-b1";
        assert_eq!(
            files(&out),
            vec![
                format!("a/{name}"),
                format!("b/{name}"),
                format!("processing-failed/2024/03/05/07/ds-1-2024-03-05-07-08-09-b1-unroutable"),
            ]
        );
        assert_eq!(std::fs::read(out.join("a").join(name)).unwrap(), b"15");
        let errors = std::fs::read_to_string(
            out.join("processing-failed/2024/03/05/07/ds-1-2024-03-05-07-08-09-b1-unroutable"),
        )
        .unwrap();
        let lines: Vec<serde_json::Value> = errors
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["rawData"], "Mw=="); // "3"
        assert!(lines[0]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("device"));
        assert_eq!(lines[1]["rawData"], "NA=="); // "4"
    }

    #[tokio::test]
    async fn error_output() {
        let tmp = tempfile::tempdir().unwrap();
        let d = destination(tmp.path(), None);
        let errors = ErrorBatch {
            delivery_stream: "ds".into(),
            id: "e1".into(),
            created_ms: T,
            kind: ErrorOutputType::HttpEndpointFailed,
            records: vec![FailedRecord {
                record: record("x", None),
                error_code: "E".into(),
                error_message: "m".into(),
                attempts: 3,
            }],
        };
        assert!(d.deliver_errors(&errors).await.unwrap());
        let out = tmp.path().join("out");
        assert_eq!(
            files(&out),
            vec!["http-endpoint-failed/2024/03/05/07/ds-1-2024-03-05-07-08-09-e1"]
        );
    }

    #[test]
    fn atomic_write_leaves_no_partial_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a/b/file");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(files(tmp.path()), vec!["a/b/file"]);

        // The final name is a folder: the rename fails, the .tmp is removed, the error is
        // retryable and names the file.
        let blocked = tmp.path().join("blocked");
        std::fs::create_dir_all(blocked.join("inside")).unwrap();
        match write_atomically(&blocked, b"x") {
            Err(DeliveryError::Retryable(m)) => assert!(m.contains("blocked"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(!tmp.path().join("blocked.tmp").exists());
    }

    #[test]
    fn disk_full_is_retryable_and_says_so() {
        let e = io_error(
            "write",
            Path::new("/x"),
            std::io::Error::from_raw_os_error(libc::ENOSPC),
        );
        match e {
            DeliveryError::Retryable(m) => assert!(m.contains("disk full"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unsafe_keys() {
        assert!(relative_path("a/../b").is_err());
        assert!(relative_path("./b").is_err());
        assert!(relative_path("/").is_err());
        assert_eq!(relative_path("/a//b").unwrap(), PathBuf::from("a/b"));
    }
}
