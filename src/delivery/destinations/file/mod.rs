//! The `file` destination, for debugging: appends every record to one local file, one record
//! per line (a newline is added after each record that does not end with one). With the
//! delivery stream's `compression`, each batch is appended as one compressed member (gzip,
//! zstd and framed snappy streams may be concatenated, so the file stays readable as a whole).
//!
//! Invariant: a batch is confirmed only after its bytes are appended and `fsync`ed. Delivery is
//! at least once: a batch retried after a crash between the write and the checkpoint is
//! appended again. Failed writes (disk full, permissions) are `Retryable`: nothing is lost.

pub mod config;

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{BatchLimits, BuildError, DeliveryError, DestinationContext};
use crate::delivery::batch::{Batch, ErrorOutputType};
use crate::delivery::compression;
use crate::delivery::config::{Compression, MIB};

pub struct FileDestination {
    path: PathBuf,
}

impl FileDestination {
    /// A relative `path` is under the data directory.
    pub fn new(
        config: &config::FileConfig,
        context: &DestinationContext,
    ) -> Result<FileDestination, BuildError> {
        Ok(FileDestination {
            path: context.data_dir.join(&config.path),
        })
    }
}

/// The records of `batch`, one per line, compressed as a whole with `compression`.
fn batch_body(batch: &Batch) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::with_capacity(batch.data_bytes() as usize + batch.records.len());
    for record in &batch.records {
        data.extend_from_slice(&record.data);
        if !record.data.ends_with(b"\n") {
            data.push(b'\n');
        }
    }
    match batch.compression {
        Compression::None => Ok(data),
        c => compression::compress(c, &data),
    }
}

/// Appends `body` to `path` (creating it and its folder) and syncs it.
fn append(path: &Path, body: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(body)?;
    file.sync_data()
}

#[async_trait::async_trait]
impl super::Destination for FileDestination {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn limits(&self) -> BatchLimits {
        BatchLimits {
            max_bytes: 128 * MIB,
            max_records: usize::MAX,
        }
    }

    /// It has no error output of its own: failed records go to the dead-letter directory,
    /// named like the `directory` destination's.
    fn failure_type(&self) -> ErrorOutputType {
        ErrorOutputType::S3Failed
    }

    fn uses_network(&self) -> bool {
        false
    }

    async fn deliver(&self, batch: &Batch) -> Result<(), DeliveryError> {
        let path = self.path.clone();
        let batch = batch.clone();
        tokio::task::spawn_blocking(move || {
            let body = batch_body(&batch)
                .map_err(|e| DeliveryError::Retryable(format!("compression failed: {e}")))?;
            append(&path, &body).map_err(|e| {
                DeliveryError::Retryable(format!("cannot append to {}: {e}", path.display()))
            })
        })
        .await
        .map_err(|e| DeliveryError::Retryable(format!("write task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::delivery::batch::DeliveryRecord;
    use crate::delivery::destinations::Destination;

    fn batch(records: &[&str], compression: Compression) -> Batch {
        Batch {
            delivery_stream: "ds".into(),
            id: "id".into(),
            created_ms: 0,
            formed_ms: 0,
            compression,
            records: records
                .iter()
                .map(|data| DeliveryRecord {
                    data: Bytes::from(data.to_string()),
                    partition_key: "k".into(),
                    sequence_number: "1".into(),
                    arrival_ms: 0,
                    partition_values: Arc::new(BTreeMap::new()),
                })
                .collect(),
        }
    }

    fn destination(root: &Path) -> FileDestination {
        let context = DestinationContext {
            delivery_stream: "ds".into(),
            source_arn: String::new(),
            data_dir: root.to_path_buf(),
            http: reqwest::Client::new(),
        };
        let config = config::FileConfig {
            path: "debug/out.jsonl".into(),
        };
        FileDestination::new(&config, &context).unwrap()
    }

    #[tokio::test]
    async fn appends_one_record_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = destination(dir.path());
        file.deliver(&batch(&["{\"a\":1}", "b\n"], Compression::None))
            .await
            .unwrap();
        file.deliver(&batch(&["c"], Compression::None)).await.unwrap();
        let written = std::fs::read_to_string(dir.path().join("debug/out.jsonl")).unwrap();
        assert_eq!(written, "{\"a\":1}\nb\nc\n");
        assert_eq!(file.describe(), dir.path().join("debug/out.jsonl").display().to_string());
        assert!(!file.uses_network());
    }

    #[tokio::test]
    async fn compressed_batches_concatenate() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let file = destination(dir.path());
        file.deliver(&batch(&["x"], Compression::Gzip)).await.unwrap();
        file.deliver(&batch(&["y"], Compression::Gzip)).await.unwrap();
        let bytes = std::fs::read(dir.path().join("debug/out.jsonl")).unwrap();
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "x\ny\n");
        assert_eq!(batch_body(&batch(&["z"], Compression::None)).unwrap(), b"z\n");
    }
}
