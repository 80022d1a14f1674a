//! Placeholder: being written.

use super::{BuildError, DestinationContext};
use crate::delivery::config::KinesisConfig;

pub struct KinesisDestination;

impl KinesisDestination {
    pub fn new(
        config: &KinesisConfig,
        context: &DestinationContext,
    ) -> Result<KinesisDestination, BuildError> {
        let _ = (config, context);
        Err(BuildError {
            kind: "kinesis",
            message: "not available yet".into(),
        })
    }
}

#[async_trait::async_trait]
impl super::Destination for KinesisDestination {
    fn kind(&self) -> &'static str {
        "kinesis"
    }
    fn describe(&self) -> String {
        String::new()
    }
    fn limits(&self) -> super::BatchLimits {
        super::BatchLimits {
            max_bytes: 0,
            max_records: 0,
        }
    }
    fn failure_type(&self) -> crate::delivery::batch::ErrorOutputType {
        crate::delivery::batch::ErrorOutputType::S3Failed
    }
    async fn deliver(
        &self,
        _batch: &crate::delivery::batch::Batch,
    ) -> Result<(), super::DeliveryError> {
        Err(super::DeliveryError::Permanent("not available yet".into()))
    }
}
