//! StartStreamEncryption / StopStreamEncryption: encryption at rest of a stream's records.
//!
//! The `KeyId` names a local key file (see `storage::crypt`): StartStreamEncryption finds it,
//! or creates it when `storage.auto_create_keys` is on (KMSNotFoundException otherwise), then
//! stores the setting in the stream's row through the store's writer. Records appended after
//! the answer are stored sealed (AES-256-GCM); records stored before stay as they were, and
//! StopStreamEncryption makes new records plaintext again. Reads open sealed blocks
//! transparently in the store's read path. Kinesis switches through UPDATING; kinedge applies
//! the change at once (the stream stays ACTIVE). Only `KMS` is an encryption type, as in
//! Kinesis; StopStreamEncryption of a stream that is not encrypted succeeds without change.

use serde::Deserialize;

use super::types::NamesStream;
use crate::api::error::{ApiError, ErrorKind};
use crate::api::KinesisState;
use crate::storage::crypt::CryptError;
use crate::storage::AdminOp;
use crate::streams::settings::StreamEncryption;
use crate::streams::StreamMeta;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct StreamEncryptionInput {
    pub stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    pub encryption_type: Option<String>,
    pub key_id: Option<String>,
}

impl NamesStream for StreamEncryptionInput {
    fn stream_name(&self) -> Option<&str> {
        self.stream_name.as_deref()
    }
    fn stream_arn(&self) -> Option<&str> {
        self.stream_arn.as_deref()
    }
}

/// The AWS error a key problem is answered with (the message names the key, never its bytes).
pub fn error_kind(e: &CryptError) -> ErrorKind {
    match e {
        CryptError::KeyNotFound { .. } => ErrorKind::Kms("KMSNotFoundException"),
        CryptError::Decrypt { .. } => ErrorKind::Kms("KMSAccessDeniedException"),
        CryptError::KeyFile { .. } | CryptError::KeyInvalid { .. } => {
            ErrorKind::Kms("KMSInvalidStateException")
        }
        CryptError::InvalidKeyId(_) => ErrorKind::InvalidArgument,
        CryptError::Malformed { .. } => ErrorKind::InternalFailure,
    }
}

/// `EncryptionType` and `KeyId` of a stream, as DescribeStream reports them.
pub fn described(meta: &StreamMeta) -> (&'static str, Option<String>) {
    match &meta.settings.encryption {
        Some(e) => ("KMS", Some(e.key_id.clone())),
        None => ("NONE", None),
    }
}

/// `EncryptionType` of records a PutRecord(s) stores in the stream.
pub fn put_type(meta: &StreamMeta) -> &'static str {
    described(meta).0
}

fn checked(input: &StreamEncryptionInput) -> Result<String, ApiError> {
    let kind = input
        .encryption_type
        .as_deref()
        .ok_or_else(|| ApiError::missing("encryptionType"))?;
    let key_id = input
        .key_id
        .clone()
        .ok_or_else(|| ApiError::missing("keyId"))?;
    if kind != "KMS" {
        return Err(ApiError::invalid(format!(
            "Encryption type {kind} is not supported; the only encryption type is KMS."
        )));
    }
    Ok(key_id)
}

pub async fn start(state: &KinesisState, input: StreamEncryptionInput) -> Result<(), ApiError> {
    let key_id = checked(&input)?;
    let meta = state.stream(&input)?;
    let store = state.store.clone();
    let id = key_id.clone();
    let (key_name, _key) = tokio::task::spawn_blocking(move || store.keyring().get_or_create(&id))
        .await
        .map_err(|_| ApiError::new(ErrorKind::InternalFailure, "the key lookup failed"))?
        .map_err(|e| ApiError::new(error_kind(&e), kms_message(&e)))?;
    state
        .store
        .admin(AdminOp::Encryption {
            stream: meta.name.clone(),
            encryption: Some(StreamEncryption {
                key_id: key_id.clone(),
                key_name: key_name.clone(),
            }),
        })
        .await
        .map_err(|e| state.store_error(&meta.name, e))?;
    tracing::info!(stream = %meta.name, key = %key_name, "stream encryption started");
    Ok(())
}

pub async fn stop(state: &KinesisState, input: StreamEncryptionInput) -> Result<(), ApiError> {
    checked(&input)?;
    let meta = state.stream(&input)?;
    if meta.settings.encryption.is_none() {
        return Ok(());
    }
    state
        .store
        .admin(AdminOp::Encryption {
            stream: meta.name.clone(),
            encryption: None,
        })
        .await
        .map_err(|e| state.store_error(&meta.name, e))?;
    tracing::info!(stream = %meta.name, "stream encryption stopped");
    Ok(())
}

/// A key error as the client sees it: a missing key worded as KMS words it.
fn kms_message(e: &CryptError) -> String {
    match e {
        CryptError::KeyNotFound { key_id, .. } => format!(
            "Key '{key_id}' does not exist (kinedge: no key file for it in the keys directory)."
        ),
        other => other.to_string(),
    }
}
