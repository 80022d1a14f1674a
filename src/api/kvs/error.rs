//! The errors of the KVS operations as AWS answers them (REST-JSON): the HTTP status of the
//! kind, the kind in `x-amzn-ErrorType` (botocore reads the error code from it) and
//! `{"Message": ...}` in the body.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};

/// The exceptions of the `kinesisvideo`, `kinesis-video-archived-media` and
/// `kinesis-video-media` models that the gateway answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvsErrorKind {
    ResourceNotFound,
    ResourceInUse,
    InvalidArgument,
    ClientLimitExceeded,
    AccountStreamLimitExceeded,
    VersionMismatch,
    TagsPerResourceExceededLimit,
    NotAuthorized,
    NoDataRetention,
    UnsupportedStreamMediaType,
    MissingCodecPrivateData,
    InvalidCodecPrivateData,
    ConnectionLimitExceeded,
    InvalidEndpoint,
    Internal,
    AccessDenied,
    InvalidResourceFormat,
}

impl KvsErrorKind {
    /// The exception's name as AWS spells it.
    pub fn name(self) -> &'static str {
        use KvsErrorKind::*;
        match self {
            ResourceNotFound => "ResourceNotFoundException",
            ResourceInUse => "ResourceInUseException",
            InvalidArgument => "InvalidArgumentException",
            ClientLimitExceeded => "ClientLimitExceededException",
            AccountStreamLimitExceeded => "AccountStreamLimitExceededException",
            VersionMismatch => "VersionMismatchException",
            TagsPerResourceExceededLimit => "TagsPerResourceExceededLimitException",
            NotAuthorized => "NotAuthorizedException",
            NoDataRetention => "NoDataRetentionException",
            UnsupportedStreamMediaType => "UnsupportedStreamMediaTypeException",
            MissingCodecPrivateData => "MissingCodecPrivateDataException",
            InvalidCodecPrivateData => "InvalidCodecPrivateDataException",
            ConnectionLimitExceeded => "ConnectionLimitExceededException",
            InvalidEndpoint => "InvalidEndpointException",
            Internal => "InternalFailure",
            AccessDenied => "AccessDeniedException",
            InvalidResourceFormat => "InvalidResourceFormatException",
        }
    }

    /// The HTTP status AWS's models give the exception.
    pub fn status(self) -> StatusCode {
        use KvsErrorKind::*;
        match self {
            ResourceNotFound => StatusCode::NOT_FOUND,
            NotAuthorized | AccessDenied => StatusCode::UNAUTHORIZED,
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// One refused KVS request.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", kind.name())]
pub struct KvsError {
    pub kind: KvsErrorKind,
    pub message: String,
}

impl KvsError {
    pub fn new(kind: KvsErrorKind, message: impl Into<String>) -> KvsError {
        KvsError {
            kind,
            message: message.into(),
        }
    }

    /// An internal failure, logged with its cause.
    pub fn internal(cause: impl std::fmt::Display) -> KvsError {
        tracing::error!(error = %cause, "Kinesis Video request failed");
        KvsError::new(KvsErrorKind::Internal, cause.to_string())
    }
}

impl IntoResponse for KvsError {
    fn into_response(self) -> Response {
        let mut response = (
            self.kind.status(),
            axum::Json(serde_json::json!({ "Message": self.message })),
        )
            .into_response();
        response.headers_mut().insert(
            "x-amzn-ErrorType",
            HeaderValue::from_static(self.kind.name()),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_carries_its_kind_in_status_header_and_body() {
        let response =
            KvsError::new(KvsErrorKind::ResourceNotFound, "no such stream").into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            response.headers()["x-amzn-ErrorType"],
            "ResourceNotFoundException"
        );
    }
}
