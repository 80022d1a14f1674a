//! Placeholder: being written.

use super::{BuildError, DestinationContext};
use crate::delivery::config::HttpEndpointConfig;

pub struct HttpEndpointDestination;

impl HttpEndpointDestination {
    pub fn new(
        config: &HttpEndpointConfig,
        context: &DestinationContext,
    ) -> Result<HttpEndpointDestination, BuildError> {
        let _ = (config, context);
        Err(BuildError {
            kind: "http_endpoint",
            message: "not available yet".into(),
        })
    }
}

#[async_trait::async_trait]
impl super::Destination for HttpEndpointDestination {
    fn kind(&self) -> &'static str {
        "http_endpoint"
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
