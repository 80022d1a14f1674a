//! Placeholder: being written.

use super::{BuildError, DestinationContext};
use crate::delivery::config::S3Config;

pub struct S3Destination;

impl S3Destination {
    pub fn new(
        config: &S3Config,
        context: &DestinationContext,
    ) -> Result<S3Destination, BuildError> {
        let _ = (config, context);
        Err(BuildError {
            kind: "s3",
            message: "not available yet".into(),
        })
    }
}

#[async_trait::async_trait]
impl super::Destination for S3Destination {
    fn kind(&self) -> &'static str {
        "s3"
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
