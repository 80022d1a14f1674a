//! The SigV4 targets: verification of arbitrary requests never panics, and a request signed
//! by AWS's own signer (aws-sigv4) verifies.

use std::time::{Duration, UNIX_EPOCH};

use crate::api::sigv4::{AuthError, SigV4Verifier};

pub(super) const FUZZ_KEY_ID: &str = "AKIDFUZZ";
pub(super) const FUZZ_SECRET: &str = "fuzz/secret";

pub(super) fn fuzz_verifier() -> SigV4Verifier {
    SigV4Verifier::new(vec![(FUZZ_KEY_ID.into(), FUZZ_SECRET.into())])
}

/// SigV4 verification of an arbitrary request: must answer, never panic.
///
/// Input, as text lines: the method, the request target (path and query), then `name: value`
/// headers up to an empty line, then the body. The clock is set to the request's own
/// `X-Amz-Date` when it has one, so that the fuzzer gets past the skew check.
pub fn sigv4_verify(data: &[u8]) {
    let Some((parts, body)) = request_from_bytes(data) else {
        return;
    };
    let verifier = fuzz_verifier();
    let now = parts
        .headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| chrono::NaiveDateTime::parse_from_str(s, "%Y%m%dT%H%M%SZ").ok())
        .and_then(|t| u64::try_from(t.and_utc().timestamp()).ok())
        .map_or(UNIX_EPOCH + Duration::from_secs(1_700_000_000), |s| {
            UNIX_EPOCH + Duration::from_secs(s)
        });
    let result = verifier.verify(&parts, body, now);
    if let Err(e) = &result {
        // Every refusal maps to an AWS error type and status.
        let _ = (e.aws_error_type(), e.http_status(), e.to_string());
    }
}

pub(super) fn request_from_bytes(data: &[u8]) -> Option<(http::request::Parts, &[u8])> {
    let mut rest = data;
    let mut line = || -> Option<&[u8]> {
        let at = rest.iter().position(|&b| b == b'\n')?;
        let (l, r) = rest.split_at(at);
        rest = &r[1..];
        Some(l)
    };
    let method = line()?;
    let target = line()?;
    let mut builder = http::Request::builder()
        .method(http::Method::from_bytes(method).ok()?)
        .uri(http::Uri::try_from(target).ok()?);
    while let Some(header) = line() {
        if header.is_empty() {
            break;
        }
        let colon = header.iter().position(|&b| b == b':')?;
        let name = http::HeaderName::from_bytes(&header[..colon]).ok()?;
        let value = http::HeaderValue::from_bytes(header[colon + 1..].trim_ascii_start()).ok()?;
        builder = builder.header(name, value);
    }
    let (parts, ()) = builder.body(()).ok()?.into_parts();
    Some((parts, rest))
}

/// A request signed by AWS's own signer (aws-sigv4) from arbitrary parts must verify, and
/// must stop verifying when its body changes.
pub fn sigv4_signed(input: &SignedRequest) -> Result<(), String> {
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4::SigningParams;

    let identity = Credentials::new(FUZZ_KEY_ID, FUZZ_SECRET, None, None, "fuzz").into();
    let signed_at = UNIX_EPOCH + Duration::from_secs(input.time_s);
    let region = if input.region.is_empty() {
        "us-east-1"
    } else {
        &input.region
    };
    let service = if input.firehose {
        "firehose"
    } else {
        "kinesis"
    };
    let params = SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(signed_at)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let target = input.target();
    let mut builder = http::Request::builder()
        .method(input.method.as_str())
        .uri(format!("http://gateway.local{target}"))
        .header("host", "gateway.local");
    for (name, value) in &input.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let Ok(mut request) = builder.body(()) else {
        return Ok(()); // not a request an HTTP client can send
    };
    let headers: Vec<(&str, &str)> = request
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    let Ok(signable) = SignableRequest::new(
        input.method.as_str(),
        request.uri().to_string(),
        headers.into_iter(),
        SignableBody::Bytes(&input.body),
    ) else {
        return Ok(());
    };
    let Ok(signed) = sign(signable, &params) else {
        return Ok(());
    };
    let (instructions, _) = signed.into_parts();
    instructions.apply_to_request_http1x(&mut request);
    let (mut parts, ()) = request.into_parts();
    // As a server sees it: an origin-form request target.
    parts.uri = target
        .parse()
        .map_err(|e| format!("target {target:?}: {e}"))?;
    let verifier = fuzz_verifier();
    verifier
        .verify(&parts, &input.body, signed_at)
        .map_err(|e| format!("a request signed by aws-sigv4 was refused: {e}"))?;
    let mut altered = input.body.clone();
    altered.push(b'!');
    match verifier.verify(&parts, &altered, signed_at) {
        Err(AuthError::SignatureMismatch) => Ok(()),
        other => Err(format!("an altered body was not refused: {other:?}")),
    }
}

/// The parts of a request for [`sigv4_signed`].
#[derive(Debug, Clone)]
pub struct SignedRequest {
    pub method: String,
    pub path_segments: Vec<String>,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub region: String,
    pub firehose: bool,
    pub time_s: u64,
}

impl SignedRequest {
    /// The origin-form request target: each path segment and query part percent-encoded as
    /// an HTTP client does (unreserved characters kept).
    pub fn target(&self) -> String {
        let mut out = String::new();
        for segment in &self.path_segments {
            out.push('/');
            out.push_str(&encode(segment));
        }
        if out.is_empty() {
            out.push('/');
        }
        for (i, (k, v)) in self.query.iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            out.push_str(&encode(k));
            out.push('=');
            out.push_str(&encode(v));
        }
        out
    }

    /// Builds the parts from fuzzer bytes (fields separated by 0xff).
    pub fn from_bytes(data: &[u8]) -> Option<SignedRequest> {
        let mut fields = data.split(|&b| b == 0xff);
        let head = fields.next()?;
        let flags = *head.first()?;
        let time_s = 1_000_000_000
            + u64::from(u32::from_le_bytes(
                head.get(1..5)?.try_into().unwrap_or_default(),
            ));
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let method = ["POST", "GET", "PUT", "DELETE"][usize::from(flags & 3)].to_owned();
        let region = text(fields.next()?)
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        let path_segments = text(fields.next()?)
            .split('/')
            .map(str::to_owned)
            .filter(|s| !s.is_empty() && s != "." && s != "..")
            .collect();
        let query = text(fields.next()?)
            .split('&')
            .filter(|s| !s.is_empty())
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (kv.to_owned(), String::new()),
            })
            .collect();
        let headers = text(fields.next()?)
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(':')?;
                let name: String = k
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect::<String>()
                    .to_ascii_lowercase();
                let value: String = v
                    .chars()
                    .filter(|c| c.is_ascii_graphic() || *c == ' ')
                    .collect();
                let reserved = ["host", "authorization", "x-amz-date", "content-length"];
                let known = name.starts_with("x-amz-") || reserved.contains(&name.as_str());
                (!name.is_empty() && !known).then(|| ("x-fz-".to_owned() + &name, value))
            })
            .collect();
        let body = fields.collect::<Vec<_>>().join(&0xffu8);
        Some(SignedRequest {
            method,
            path_segments,
            query,
            headers,
            body,
            region,
            firehose: flags & 4 != 0,
            time_s,
        })
    }
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
