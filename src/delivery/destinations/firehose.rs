//! Placeholder: being written.

use super::{BuildError, DestinationContext};
use crate::delivery::config::FirehoseConfig;

pub struct FirehoseDestination;

impl FirehoseDestination {
    pub fn new(
        config: &FirehoseConfig,
        context: &DestinationContext,
    ) -> Result<FirehoseDestination, BuildError> {
        let _ = (config, context);
        Err(BuildError {
            kind: "firehose",
            message: "not available yet".into(),
        })
    }
}

#[async_trait::async_trait]
impl super::Destination for FirehoseDestination {
    fn kind(&self) -> &'static str {
        "firehose"
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
