//! The local dead-letter directory: where failed records go when the destination has no
//! error output of its own (HTTP endpoints, Kinesis, Firehose, MQTT) or cannot take them.
//! Files are `<dir>/<delivery stream>/<error-output-type>/YYYY/MM/dd/HH/<name>`, one JSON
//! object per line (Firehose's error record shape), written atomically: a temporary file,
//! fsync, rename, fsync of the folder.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::batch::ErrorBatch;
use super::config::Compression;
use super::destinations::directory::write_atomically;
use super::destinations::naming::object_name;
use super::destinations::DeliveryError;

#[derive(Debug, Clone)]
pub struct DeadLetter {
    dir: PathBuf,
}

impl DeadLetter {
    pub fn new(dir: PathBuf) -> DeadLetter {
        DeadLetter { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the failed records; returns the file written. Blocking: call from a blocking
    /// context.
    pub fn write(&self, errors: &ErrorBatch, now_ms: u64) -> Result<PathBuf, DeliveryError> {
        let at: DateTime<Utc> =
            DateTime::from_timestamp_millis(errors.created_ms as i64).unwrap_or_default();
        let path = self
            .dir
            .join(&errors.delivery_stream)
            .join(errors.kind.as_str())
            .join(at.format("%Y/%m/%d/%H").to_string())
            .join(object_name(
                &errors.delivery_stream,
                errors.created_ms,
                &errors.id,
                Compression::None,
            ));
        write_atomically(&path, &errors.to_json_lines(now_ms))?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::delivery::batch::{DeliveryRecord, ErrorOutputType, FailedRecord};

    #[test]
    fn writes_json_lines_under_type_and_hour() {
        let dir = tempfile::tempdir().unwrap();
        let dl = DeadLetter::new(dir.path().to_path_buf());
        let errors = ErrorBatch {
            delivery_stream: "d1".into(),
            id: "abc".into(),
            created_ms: 1_700_000_000_000, // 2023-11-14T22:13:20Z
            kind: ErrorOutputType::HttpEndpointFailed,
            records: vec![FailedRecord {
                record: DeliveryRecord {
                    data: bytes::Bytes::from_static(b"hello"),
                    partition_key: "k".into(),
                    sequence_number: "49".into(),
                    arrival_ms: 5,
                    partition_values: Arc::new(BTreeMap::new()),
                },
                error_code: "HttpEndpoint.ResponseErrorCode".into(),
                error_message: "500".into(),
                attempts: 3,
            }],
        };
        let path = dl.write(&errors, 9).unwrap();
        assert_eq!(
            path,
            dir.path()
                .join("d1/http-endpoint-failed/2023/11/14/22/d1-1-2023-11-14-22-13-20-abc")
        );
        let line: serde_json::Value =
            serde_json::from_str(std::fs::read_to_string(&path).unwrap().trim()).unwrap();
        assert_eq!(line["rawData"], "aGVsbG8=");
        assert_eq!(line["attemptsMade"], 3);
        assert_eq!(line["partitionKey"], "k");
    }
}
