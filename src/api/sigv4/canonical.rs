//! The canonical request exactly as the client built it: payload hashes, canonical URI,
//! query and headers (SigV4's Trimall), and the percent-coding they use.

use super::*;

/// The payload hash(es) the client may have signed. A signed
/// `x-amz-content-sha256` is taken as given (after checking it against the
/// body unless it is `UNSIGNED-PAYLOAD`); otherwise the body's SHA-256. A
/// presigned URL may also have been signed with `UNSIGNED-PAYLOAD` (the AWS
/// SDKs do that; botocore hashes the body), so both are tried there.
pub(super) fn payload_hashes(
    parts: &Parts,
    claim: &Claim,
    body: &[u8],
) -> Result<Vec<String>, AuthError> {
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
pub(super) fn canonical_request(
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
pub(super) fn push_trimmed(out: &mut Vec<u8>, value: &[u8]) {
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
pub(super) fn canonical_uri(path: &str) -> String {
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
pub(super) fn canonical_query(query: &[(Vec<u8>, Vec<u8>)], presigned: bool) -> String {
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
pub(super) fn parse_query(query: Option<&str>) -> Vec<(Vec<u8>, Vec<u8>)> {
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

pub(super) fn percent_decode(s: &str) -> Vec<u8> {
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
pub(super) fn uri_encode(bytes: &[u8], encode_slash: bool) -> String {
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
