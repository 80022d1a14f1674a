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

/// What the client claims to have signed, from the header or the query.
struct Claim {
    access_key: String,
    scope_date: String,
    region: String,
    service: String,
    terminator: String,
    signed_headers: Vec<String>,
    signature: String,
    amz_date: String,
    /// `Some(seconds)` for the presigned query form.
    presign_expires: Option<u64>,
}

impl SigV4Verifier {
    pub fn new(credentials: Vec<(String, String)>) -> Self {
        Self {
            secrets: credentials.into_iter().collect(),
        }
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

/// `AWS4-HMAC-SHA256 Credential=AKID/20240315/us-east-1/kinesis/aws4_request,
/// SignedHeaders=host;x-amz-date, Signature=<hex>` plus the `X-Amz-Date` header.
fn claim_from_header(parts: &Parts) -> Result<Claim, AuthError> {
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| incomplete("Authorization header is not valid ASCII."))?;
    let header = header.trim();
    let (algorithm, params) = header.split_once(' ').unwrap_or((header, ""));
    if algorithm != ALGORITHM {
        return Err(incomplete(format!(
            "Unsupported Authorization algorithm; only '{ALGORITHM}' is accepted."
        )));
    }
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for param in params.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = param.split_once('=').ok_or_else(|| {
            incomplete(format!(
                "Authorization header parameter is not of the form key=value: '{param}'."
            ))
        })?;
        let slot = match name {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => continue,
        };
        if slot.replace(value.to_owned()).is_some() {
            return Err(incomplete(format!(
                "Authorization header has more than one '{name}' parameter."
            )));
        }
    }
    let missing: Vec<String> = [
        ("Credential", credential.is_none()),
        ("SignedHeaders", signed_headers.is_none()),
        ("Signature", signature.is_none()),
    ]
    .iter()
    .filter(|(_, absent)| *absent)
    .map(|(name, _)| format!("Authorization header requires '{name}' parameter."))
    .collect();
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(incomplete(missing.join(" ")));
    };
    let amz_date = parts
        .headers
        .get("x-amz-date")
        .ok_or_else(|| {
            incomplete("Authorization header requires existence of a 'X-Amz-Date' header.")
        })?
        .to_str()
        .map_err(|_| incomplete("X-Amz-Date header is not valid ASCII."))?
        .trim()
        .to_owned();
    build_claim(&credential, &signed_headers, signature, amz_date, None)
}

/// The presigned form: every `X-Amz-*` value comes from the query string.
fn claim_from_query(query: &[(Vec<u8>, Vec<u8>)]) -> Result<Claim, AuthError> {
    let param = |name: &str| -> Result<String, AuthError> {
        let mut values = query.iter().filter(|(k, _)| k == name.as_bytes());
        match (values.next(), values.next()) {
            (Some((_, v)), None) => String::from_utf8(v.clone())
                .map_err(|_| incomplete(format!("Query parameter '{name}' is not valid UTF-8."))),
            (None, _) => Err(incomplete(format!(
                "Query string requires '{name}' parameter."
            ))),
            (Some(_), Some(_)) => Err(incomplete(format!(
                "Query string has more than one '{name}' parameter."
            ))),
        }
    };
    if param("X-Amz-Algorithm")? != ALGORITHM {
        return Err(incomplete(format!(
            "Unsupported X-Amz-Algorithm; only '{ALGORITHM}' is accepted."
        )));
    }
    let expires = param("X-Amz-Expires")?
        .parse::<u64>()
        .ok()
        .filter(|s| (1..=MAX_PRESIGN_EXPIRES).contains(s))
        .ok_or_else(|| {
            incomplete(format!(
                "X-Amz-Expires must be a whole number of seconds from 1 to {MAX_PRESIGN_EXPIRES}."
            ))
        })?;
    build_claim(
        &param("X-Amz-Credential")?,
        &param("X-Amz-SignedHeaders")?,
        param("X-Amz-Signature")?,
        param("X-Amz-Date")?,
        Some(expires),
    )
}

fn build_claim(
    credential: &str,
    signed_headers: &str,
    signature: String,
    amz_date: String,
    presign_expires: Option<u64>,
) -> Result<Claim, AuthError> {
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key, scope_date, region, service, terminator] = scope[..] else {
        return Err(incomplete(format!(
            "Credential must have exactly 5 slash-delimited elements, \
             e.g. keyid/date/region/service/term, got '{credential}'"
        )));
    };
    if scope.iter().any(|s| s.is_empty()) {
        return Err(incomplete(format!(
            "Credential has an empty element: '{credential}'"
        )));
    }
    let signed_headers: Vec<String> = signed_headers.split(';').map(str::to_owned).collect();
    if signed_headers
        .iter()
        .any(|h| h.is_empty() || h.bytes().any(|b| b.is_ascii_uppercase()))
    {
        return Err(incomplete(
            "SignedHeaders must be a ';'-separated list of lowercase header names.",
        ));
    }
    // Over HTTP/2 the AWS SDK for JavaScript signs the `:authority` pseudo-header instead.
    if !signed_headers.iter().any(|h| h == "host" || h == AUTHORITY) {
        return Err(incomplete("SignedHeaders must include 'host'."));
    }
    Ok(Claim {
        access_key: access_key.to_owned(),
        scope_date: scope_date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        terminator: terminator.to_owned(),
        signed_headers,
        signature,
        amz_date,
        presign_expires,
    })
}

fn check_scope(claim: &Claim) -> Result<(), AuthError> {
    if claim.terminator != TERMINATOR {
        return Err(AuthError::InvalidSignature(format!(
            "Credential should be scoped with a valid terminator: '{TERMINATOR}', not '{}'.",
            claim.terminator
        )));
    }
    if !SERVICES.contains(&claim.service.as_str()) {
        return Err(AuthError::InvalidSignature(format!(
            "Credential should be scoped to correct service: '{}'. ",
            SERVICES.join("' or '")
        )));
    }
    let http_date = claim.amz_date.get(..8).unwrap_or(&claim.amz_date);
    if claim.scope_date != http_date {
        return Err(AuthError::InvalidSignature(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
             from HTTP: '{}' != '{http_date}', from '{}'.",
            claim.scope_date, claim.amz_date
        )));
    }
    Ok(())
}

/// Header form: within `MAX_SKEW` of now either way. Presigned form: not more
/// than `MAX_SKEW` in the future and not past `X-Amz-Expires`.
fn check_time(claim: &Claim, signed_at: SystemTime, now: SystemTime) -> Result<(), AuthError> {
    let skew = |t: SystemTime, ahead: bool| {
        if ahead {
            t.checked_add(MAX_SKEW)
        } else {
            t.checked_sub(MAX_SKEW)
        }
        .unwrap_or(t)
    };
    if signed_at > skew(now, true) {
        return Err(AuthError::InvalidSignature(format!(
            "Signature not yet current: {} is still later than {} ({} + 5 min.)",
            claim.amz_date,
            format_amz_date(skew(now, true)),
            format_amz_date(now)
        )));
    }
    let expired = match claim.presign_expires {
        None => (signed_at < skew(now, false)).then(|| {
            format!(
                "{} ({} - 5 min.)",
                format_amz_date(skew(now, false)),
                format_amz_date(now)
            )
        }),
        Some(secs) => (signed_at + Duration::from_secs(secs) < now).then(|| {
            format!(
                "{} ({} - {secs} sec.)",
                format_amz_date(now.checked_sub(Duration::from_secs(secs)).unwrap_or(now)),
                format_amz_date(now)
            )
        }),
    };
    match expired {
        Some(limit) => Err(AuthError::InvalidSignature(format!(
            "Signature expired: {} is now earlier than {limit}",
            claim.amz_date
        ))),
        None => Ok(()),
    }
}

/// The payload hash(es) the client may have signed. A signed
/// `x-amz-content-sha256` is taken as given (after checking it against the
/// body unless it is `UNSIGNED-PAYLOAD`); otherwise the body's SHA-256. A
/// presigned URL may also have been signed with `UNSIGNED-PAYLOAD` (the AWS
/// SDKs do that; botocore hashes the body), so both are tried there.
fn payload_hashes(parts: &Parts, claim: &Claim, body: &[u8]) -> Result<Vec<String>, AuthError> {
    let body_hash = hex::encode(Sha256::digest(body));
    if !claim.signed_headers.iter().any(|h| h == CONTENT_SHA256) {
        return Ok(match claim.presign_expires {
            None => vec![body_hash],
            Some(_) => vec![body_hash, UNSIGNED_PAYLOAD.to_owned()],
        });
    }
    let declared = parts
        .headers
        .get(CONTENT_SHA256)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .ok_or_else(|| {
            incomplete("Signed 'x-amz-content-sha256' header is missing or not ASCII.")
        })?;
    if declared == UNSIGNED_PAYLOAD || declared.eq_ignore_ascii_case(&body_hash) {
        Ok(vec![declared.to_owned()])
    } else if declared.len() == 64 && declared.bytes().all(|b| b.is_ascii_hexdigit()) {
        Err(AuthError::InvalidSignature(
            "The provided 'x-amz-content-sha256' header does not match what was computed.".into(),
        ))
    } else {
        Err(incomplete(
            "x-amz-content-sha256 must be a hex SHA-256 digest or UNSIGNED-PAYLOAD.",
        ))
    }
}

/// CanonicalRequest = Method \n URI \n Query \n Headers \n SignedHeaders \n PayloadHash,
/// as bytes (header values need not be UTF-8).
fn canonical_request(
    parts: &Parts,
    query: &[(Vec<u8>, Vec<u8>)],
    claim: &Claim,
    payload_hash: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_uri(parts.uri.path()).as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_query(query, claim.presign_expires.is_some()).as_bytes());
    out.push(b'\n');
    for name in &claim.signed_headers {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        if name == AUTHORITY {
            // HTTP/2's `:authority` is no header: hyper puts it in the URI.
            if let Some(authority) = parts.uri.authority() {
                out.extend_from_slice(authority.as_str().as_bytes());
            }
            out.push(b'\n');
            continue;
        }
        let mut values = parts.headers.get_all(name.as_str()).iter().peekable();
        if values.peek().is_none() && name == "host" {
            // HTTP/2 carries the host in `:authority`, which ends up in the URI.
            if let Some(authority) = parts.uri.authority() {
                out.extend_from_slice(authority.as_str().as_bytes());
            }
        }
        for (i, value) in values.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_trimmed(&mut out, value.as_bytes());
        }
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(claim.signed_headers.join(";").as_bytes());
    out.push(b'\n');
    out.extend_from_slice(payload_hash.as_bytes());
    out
}

/// Trimall: drop leading/trailing whitespace and collapse inner runs to one space.
fn push_trimmed(out: &mut Vec<u8>, value: &[u8]) {
    let words = value
        .split(|b| matches!(b, b' ' | b'\t'))
        .filter(|w| !w.is_empty());
    for (i, word) in words.enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(word);
    }
}

/// The path as received (already percent-encoded) with dot segments and empty
/// segments removed, then encoded once more: the "double encoding" SigV4
/// prescribes for every service but S3.
fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut normalized = format!("/{}", segments.join("/"));
    if path.ends_with('/') && !segments.is_empty() {
        normalized.push('/');
    }
    uri_encode(normalized.as_bytes(), false)
}

/// Every parameter decoded and re-encoded the SigV4 way, sorted by key then
/// value; the presigned form leaves out `X-Amz-Signature`.
fn canonical_query(query: &[(Vec<u8>, Vec<u8>)], presigned: bool) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .filter(|(k, _)| !(presigned && k == b"X-Amz-Signature"))
        .map(|(k, v)| (uri_encode(k, true), uri_encode(v, true)))
        .collect();
    pairs.sort();
    let pairs: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join("&")
}

/// Decoded query pairs. `+` is a space, as in the form encoding clients use.
fn parse_query(query: Option<&str>) -> Vec<(Vec<u8>, Vec<u8>)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 3)
            .filter(|h| bytes[i] == b'%' && h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], escaped) {
            (_, Some(b)) => {
                out.push(b);
                i += 3;
                continue;
            }
            (b'+', None) => out.push(b' '),
            (b, None) => out.push(b),
        }
        i += 1;
    }
    out
}

/// RFC 3986 unreserved characters stay, everything else becomes `%XX`
/// (and `/` too when `encode_slash`).
fn uri_encode(bytes: &[u8], encode_slash: bool) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (b == b'/' && !encode_slash)
        {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `yyyyMMdd'T'HHmmss'Z'` (UTC) to a time.
fn parse_amz_date(s: &str) -> Result<SystemTime, AuthError> {
    let invalid = || {
        incomplete(format!(
            "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\", got '{s}'."
        ))
    };
    let b = s.as_bytes();
    if !s.is_ascii() || b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return Err(invalid());
    }
    let num = |range: std::ops::Range<usize>| -> Result<u32, AuthError> {
        let digits = &s[range];
        if digits.bytes().all(|c| c.is_ascii_digit()) {
            digits.parse().map_err(|_| invalid())
        } else {
            Err(invalid())
        }
    };
    let (year, month, day) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hour, minute, second) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if year < 1970
        || !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(invalid());
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + u64::from(hour * 3600 + minute * 60 + second);
    Ok(UNIX_EPOCH + Duration::from_secs(secs))
}

fn format_amz_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (year, month, day) = civil_from_days(secs / 86_400);
    let rem = secs % 86_400;
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (H. Hinnant's algorithm, restricted to year >= 1970).
fn days_from_civil(year: u32, month: u32, day: u32) -> u64 {
    let y = u64::from(if month <= 2 { year - 1 } else { year });
    let (era, yoe) = (y / 400, y % 400);
    let mp = u64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + u64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let (era, doe) = (z / 146_097, z % 146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = era * 400 + yoe + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests;
