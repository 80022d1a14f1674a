//! What a request claims to have signed, from the `Authorization` header or the presigned
//! query, and the checks of its credential scope and its time (skew, presign expiry).

use super::*;
/// What the client claims to have signed, from the header or the query.
pub(super) struct Claim {
    pub(super) access_key: String,
    pub(super) scope_date: String,
    pub(super) region: String,
    pub(super) service: String,
    pub(super) terminator: String,
    pub(super) signed_headers: Vec<String>,
    pub(super) signature: String,
    pub(super) amz_date: String,
    /// `Some(seconds)` for the presigned query form.
    pub(super) presign_expires: Option<u64>,
}

/// `AWS4-HMAC-SHA256 Credential=AKID/20240315/us-east-1/kinesis/aws4_request,
/// SignedHeaders=host;x-amz-date, Signature=<hex>` plus the `X-Amz-Date` header.
pub(super) fn claim_from_header(parts: &Parts) -> Result<Claim, AuthError> {
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
pub(super) fn claim_from_query(query: &[(Vec<u8>, Vec<u8>)]) -> Result<Claim, AuthError> {
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

pub(super) fn build_claim(
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

pub(super) fn check_scope(claim: &Claim) -> Result<(), AuthError> {
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
pub(super) fn check_time(
    claim: &Claim,
    signed_at: SystemTime,
    now: SystemTime,
) -> Result<(), AuthError> {
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
