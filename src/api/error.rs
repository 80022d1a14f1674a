//! API errors in the AWS JSON shape: `{"__type": ..., "message": ...}` with HTTP 400 (500 for
//! internal failures).

use http::StatusCode;

use crate::storage::StoreError;
use crate::streams::{ConsumerError, ReshardError};

/// The AWS error types kinedge answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    ResourceNotFound,
    ResourceInUse,
    InvalidArgument,
    LimitExceeded,
    ProvisionedThroughputExceeded,
    ExpiredIterator,
    ExpiredNextToken,
    Validation,
    Serialization,
    UnknownOperation,
    InternalFailure,
    /// Firehose: the gateway cannot take records now (disk or quota full).
    ServiceUnavailable,
    /// A request body that did not arrive at the minimum rate (HTTP 408; SDKs retry it).
    RequestTimeout,
    /// The gateway holds as many request bodies as it may; retry (SDKs back off).
    Throttling,
    /// Authentication errors carry their own type names (see `sigv4`).
    Auth(&'static str),
    /// Stream encryption keys (KMSNotFoundException, KMSAccessDeniedException, ...).
    Kms(&'static str),
}

impl ErrorKind {
    pub fn aws_type(self) -> &'static str {
        match self {
            ErrorKind::ResourceNotFound => "ResourceNotFoundException",
            ErrorKind::ResourceInUse => "ResourceInUseException",
            ErrorKind::InvalidArgument => "InvalidArgumentException",
            ErrorKind::LimitExceeded => "LimitExceededException",
            ErrorKind::ProvisionedThroughputExceeded => "ProvisionedThroughputExceededException",
            ErrorKind::ExpiredIterator => "ExpiredIteratorException",
            ErrorKind::ExpiredNextToken => "ExpiredNextTokenException",
            ErrorKind::Validation => "ValidationException",
            ErrorKind::Serialization => "SerializationException",
            ErrorKind::UnknownOperation => "UnknownOperationException",
            ErrorKind::InternalFailure => "InternalFailure",
            ErrorKind::ServiceUnavailable => "ServiceUnavailableException",
            ErrorKind::RequestTimeout => "RequestTimeoutException",
            ErrorKind::Throttling => "ThrottlingException",
            ErrorKind::Auth(name) | ErrorKind::Kms(name) => name,
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::InternalFailure => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// An error answered to an API client.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {message}", kind.aws_type())]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ResourceNotFound, message)
    }

    /// A model constraint violation, worded as AWS words them.
    pub fn constraint(value: impl std::fmt::Display, member: &str, constraint: &str) -> Self {
        Self::new(
            ErrorKind::Validation,
            format!("1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"),
        )
    }

    /// A required member that is missing.
    pub fn missing(member: &str) -> Self {
        Self::new(
            ErrorKind::Validation,
            format!("1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"),
        )
    }
}

/// The header AWS sends beside `x-amzn-RequestId` (an extended request id, base64).
pub const EXTENDED_REQUEST_ID_HEADER: &str = "x-amz-id-2";

/// A fresh value for [`EXTENDED_REQUEST_ID_HEADER`]: 48 random bytes in base64 (64
/// characters), shaped like AWS's.
pub fn extended_request_id() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 48];
    rand::Rng::fill(&mut rand::thread_rng(), &mut bytes[..]);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// What a client reads when the gateway's disk refuses: the cause and that a retry will do.
pub fn disk_message(fault: &crate::storage::StorageFault) -> String {
    use crate::storage::FaultKind;
    let what = match fault.kind {
        FaultKind::NoSpace => "the gateway's disk is full",
        FaultKind::Unavailable => "the gateway is reopening its stream database after a disk error",
        _ => "the gateway's disk failed",
    };
    format!("Records cannot be stored now: {what} ({fault}). Nothing in this request was stored; retry later.")
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let kind = match &e {
            StoreError::StreamNotFound(_) => ErrorKind::ResourceNotFound,
            StoreError::StreamExists(_) => ErrorKind::ResourceInUse,
            StoreError::Reshard(ReshardError::ShardNotFound { .. }) => ErrorKind::ResourceNotFound,
            StoreError::Reshard(ReshardError::ShardClosed { .. }) => ErrorKind::ResourceInUse,
            StoreError::Reshard(ReshardError::ShardLimit { .. }) => ErrorKind::LimitExceeded,
            StoreError::Reshard(_) | StoreError::InvalidArgument(_) => ErrorKind::InvalidArgument,
            StoreError::LimitExceeded(_) => ErrorKind::LimitExceeded,
            StoreError::InvalidRecord(_) => ErrorKind::InvalidArgument,
            StoreError::Refused(_) => ErrorKind::ProvisionedThroughputExceeded,
            StoreError::Consumer(ConsumerError::Exists { .. }) => ErrorKind::ResourceInUse,
            StoreError::Consumer(ConsumerError::NotFound { .. }) => ErrorKind::ResourceNotFound,
            StoreError::Consumer(ConsumerError::Limit { .. }) => ErrorKind::LimitExceeded,
            StoreError::Consumer(ConsumerError::TooManyTags { .. }) => ErrorKind::InvalidArgument,
            // A full disk or a database being reopened: retryable, as throttling is.
            StoreError::Storage(fault) if e.is_retryable() => {
                return ApiError::new(
                    ErrorKind::ProvisionedThroughputExceeded,
                    disk_message(fault),
                )
            }
            StoreError::Storage(_) | StoreError::ShuttingDown => ErrorKind::InternalFailure,
            StoreError::Crypt(crypt) => crate::api::kinesis::encryption::error_kind(crypt),
        };
        if kind == ErrorKind::InternalFailure {
            tracing::error!(error = %e, "storage request failed");
        }
        ApiError::new(kind, e.to_string())
    }
}
