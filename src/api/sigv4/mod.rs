//! Server-side verification of AWS Signature Version 4 (SigV4).
//!
//! Owns: parsing the `Authorization` header (and the presigned `X-Amz-*` query
//! form), rebuilding the canonical request exactly as the client signed it,
//! checking the credential scope, clock skew and presign expiry, and mapping
//! every failure to the error type AWS itself returns. It does not own the
//! credential store (a plain key id -> secret map) or the HTTP response.
//!
//! The signing math (key derivation and the final HMAC) comes from AWS's own
//! `aws_sigv4::sign::v4`. The canonical request is built here rather than with
//! `aws_sigv4::http_request::sign`, because that is a client signer and cannot
//! reproduce an arbitrary client's canonical request: it inserts its own `host`
//! and `x-amz-date` headers (panicking when the URI has no authority, which is
//! always the case server-side), re-signs `x-amz-date` even when the client did
//! not, and collapses only spaces, not tabs, in header values (botocore and the
//! SigV4 spec's Trimall collapse all whitespace).

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sigv4::sign::v4::{calculate_signature, generate_signing_key};
use http::header::AUTHORIZATION;
use http::request::Parts;
use http::StatusCode;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

mod amz_date;
mod canonical;
mod claim;

use amz_date::*;
use canonical::*;
use claim::*;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const TERMINATOR: &str = "aws4_request";
const SERVICES: [&str; 3] = ["kinesis", "firehose", "kinesisvideo"];
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// The HTTP/2 pseudo-header that carries the host; signed by some SDKs over HTTP/2.
const AUTHORITY: &str = ":authority";
const CONTENT_SHA256: &str = "x-amz-content-sha256";
const ONE_MECHANISM: &str = "Only one authentication mechanism allowed: either the \
                             Authorization header or the X-Amz-Algorithm query parameter.";
/// How far `X-Amz-Date` may be from the server's clock.
const MAX_SKEW: Duration = Duration::from_secs(5 * 60);
/// Longest presigned-URL lifetime SigV4 allows (7 days).
const MAX_PRESIGN_EXPIRES: u64 = 7 * 24 * 60 * 60;

/// Why a request failed authentication. `Display` is the message AWS sends;
/// no variant ever carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("Missing Authentication Token")]
    MissingAuthenticationToken,
    /// The signature information is malformed or incomplete; says what.
    #[error("{0}")]
    IncompleteSignature(String),
    #[error("The security token included in the request is invalid.")]
    UnrecognizedClient,
    #[error(
        "The request signature we calculated does not match the signature you provided. \
         Check your AWS Secret Access Key and signing method."
    )]
    SignatureMismatch,
    /// Well-formed but unacceptable: expired, not yet current, wrong scope.
    #[error("{0}")]
    InvalidSignature(String),
}

impl AuthError {
    /// The AWS `__type` for the error body.
    pub fn aws_error_type(&self) -> &'static str {
        match self {
            Self::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            Self::IncompleteSignature(_) => "IncompleteSignatureException",
            Self::UnrecognizedClient => "UnrecognizedClientException",
            Self::SignatureMismatch | Self::InvalidSignature(_) => "InvalidSignatureException",
        }
    }

    /// Kinesis answers every authentication failure with 400.
    pub fn http_status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }
}

fn incomplete(msg: impl Into<String>) -> AuthError {
    AuthError::IncompleteSignature(msg.into())
}

/// Verifies SigV4-signed requests against a fixed set of credentials.
/// Any region is accepted; the scope's service must be `kinesis` or `firehose`.
pub struct SigV4Verifier {
    secrets: HashMap<String, String>,
}

impl fmt::Debug for SigV4Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigV4Verifier")
            .field("access_key_ids", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SigV4Verifier {
    pub fn new(credentials: Vec<(String, String)>) -> Self {
        Self {
            secrets: credentials.into_iter().collect(),
        }
    }

    /// Whether `secret` is the secret of `access_key_id` (the console's login), compared in
    /// constant time; an unknown key id is compared against itself so that it takes as long.
    pub fn check_secret(&self, access_key_id: &str, secret: &str) -> bool {
        let (known, expected) = match self.secrets.get(access_key_id) {
            Some(expected) => (true, expected.as_bytes()),
            None => (false, secret.as_bytes()),
        };
        let (a, b) = (Sha256::digest(expected), Sha256::digest(secret.as_bytes()));
        let same: bool = a.as_slice().ct_eq(b.as_slice()).into();
        known && same
    }

    /// Checks everything but the signature itself, from the head alone: a signature is
    /// present and well formed, its access key id is known, its scope and date are sane.
    /// Run before reading a body, so that a request that cannot be authentic never gets
    /// the gateway to take megabytes in.
    pub fn precheck(&self, parts: &Parts, now: SystemTime) -> Result<(), AuthError> {
        let query = parse_query(parts.uri.query());
        self.checked_claim(parts, &query, now).map(drop)
    }

    /// The claim of a request, checked up to the signature; with the signing time and secret.
    fn checked_claim(
        &self,
        parts: &Parts,
        query: &[(Vec<u8>, Vec<u8>)],
        now: SystemTime,
    ) -> Result<(Claim, SystemTime, &String), AuthError> {
        let presigned = query.iter().any(|(k, _)| k == b"X-Amz-Algorithm");
        let auth_headers = parts.headers.get_all(AUTHORIZATION).iter().count();
        let claim = match (auth_headers, presigned) {
            (0, false) => return Err(AuthError::MissingAuthenticationToken),
            (0, true) => claim_from_query(query)?,
            (1, false) => claim_from_header(parts)?,
            (1, true) => return Err(incomplete(ONE_MECHANISM)),
            _ => return Err(incomplete("Only one Authorization header is allowed.")),
        };
        let signed_at = parse_amz_date(&claim.amz_date)?;
        check_scope(&claim)?;
        let secret = self
            .secrets
            .get(&claim.access_key)
            .ok_or(AuthError::UnrecognizedClient)?;
        check_time(&claim, signed_at, now)?;
        Ok((claim, signed_at, secret))
    }

    /// Verify a request. `body` is the full request body. Returns the access key id on success.
    pub fn verify(&self, parts: &Parts, body: &[u8], now: SystemTime) -> Result<String, AuthError> {
        let query = parse_query(parts.uri.query());
        let (claim, signed_at, secret) = self.checked_claim(parts, &query, now)?;

        let payload_hashes = payload_hashes(parts, &claim, body)?;
        let scope = format!(
            "{}/{}/{}/{TERMINATOR}",
            claim.scope_date, claim.region, claim.service
        );
        let key = generate_signing_key(secret, signed_at, &claim.region, &claim.service);
        let matches = payload_hashes.iter().any(|payload_hash| {
            let request = canonical_request(parts, &query, &claim, payload_hash);
            let string_to_sign = format!(
                "{ALGORITHM}\n{}\n{scope}\n{}",
                claim.amz_date,
                hex::encode(Sha256::digest(&request))
            );
            let expected = calculate_signature(&key, string_to_sign.as_bytes());
            expected.as_bytes().ct_eq(claim.signature.as_bytes()).into()
        });
        if matches {
            Ok(claim.access_key)
        } else {
            Err(AuthError::SignatureMismatch)
        }
    }
}

impl SigV4Verifier {
    /// A presigned query string (`X-Amz-Algorithm=..&..&X-Amz-Signature=..`) for `GET path`
    /// on `host`, valid for `expires_s`, signed with `access_key`'s secret: what a playlist
    /// hands its player so that segment requests carry the playlist request's credentials.
    /// `None` when the key is unknown.
    #[allow(clippy::too_many_arguments)]
    pub fn presign_get(
        &self,
        access_key: &str,
        region: &str,
        service: &str,
        host: &str,
        path: &str,
        expires_s: u64,
        now: SystemTime,
    ) -> Option<String> {
        let secret = self.secrets.get(access_key)?;
        let when: chrono::DateTime<chrono::Utc> = now.into();
        let amz_date = when.format("%Y%m%dT%H%M%SZ").to_string();
        let scope = format!("{}/{region}/{service}/{TERMINATOR}", &amz_date[..8]);
        let query: Vec<(Vec<u8>, Vec<u8>)> = [
            ("X-Amz-Algorithm", ALGORITHM.to_string()),
            ("X-Amz-Credential", format!("{access_key}/{scope}")),
            ("X-Amz-Date", amz_date.clone()),
            (
                "X-Amz-Expires",
                expires_s.min(MAX_PRESIGN_EXPIRES).to_string(),
            ),
            ("X-Amz-SignedHeaders", "host".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.into_bytes()))
        .collect();
        let canonical_query = canonical_query(&query, true);
        let request = format!(
            "GET\n{}\n{canonical_query}\nhost:{}\n\nhost\n{UNSIGNED_PAYLOAD}",
            canonical_uri(path),
            host.trim()
        );
        let string_to_sign = format!(
            "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
            hex::encode(Sha256::digest(request.as_bytes()))
        );
        let key = generate_signing_key(secret, now, region, service);
        let signature = calculate_signature(&key, string_to_sign.as_bytes());
        Some(format!("{canonical_query}&X-Amz-Signature={signature}"))
    }
}

#[cfg(test)]
mod tests;
