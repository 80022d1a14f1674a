//! Tests of the SigV4 verifier: botocore's vectors, AWS's messages, the AWS SDKs' requests.

use super::*;
use serde_json::Value;

const VECTORS: &str = include_str!("../../../tests/data/sigv4_vectors.json");

fn vectors() -> Value {
    serde_json::from_str(VECTORS).expect("vectors file is valid JSON")
}

fn verifier(doc: &Value) -> SigV4Verifier {
    let creds = doc["credentials"].as_array().expect("credentials");
    SigV4Verifier::new(
        creds
            .iter()
            .map(|c| (c[0].as_str().unwrap().into(), c[1].as_str().unwrap().into()))
            .collect(),
    )
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Parts and body of one vector.
fn request(v: &Value) -> (Parts, Vec<u8>) {
    let mut builder = http::Request::builder()
        .method(v["method"].as_str().unwrap())
        .uri(v["uri"].as_str().unwrap());
    for h in v["headers"].as_array().unwrap() {
        builder = builder.header(h[0].as_str().unwrap(), h[1].as_str().unwrap());
    }
    let body = match (v.get("body"), v.get("body_hex")) {
        (Some(text), _) => text.as_str().unwrap().as_bytes().to_vec(),
        (None, Some(hex_body)) => hex::decode(hex_body.as_str().unwrap()).unwrap(),
        (None, None) => Vec::new(),
    };
    (builder.body(()).unwrap().into_parts().0, body)
}

#[test]
fn presigned_get_verifies_and_only_for_its_path() {
    let verifier = SigV4Verifier::new(vec![("AKIDVIDEO".into(), "s3cret".into())]);
    let now = at(1_790_000_000);
    let query = verifier
        .presign_get(
            "AKIDVIDEO",
            "eu-west-1",
            "kinesisvideo",
            "127.0.0.1:4567",
            "/video/cam/fragments/7.m4s",
            3600,
            now,
        )
        .unwrap();
    let get = |path: &str| {
        http::Request::get(format!("{path}?{query}"))
            .header("host", "127.0.0.1:4567")
            .body(())
            .unwrap()
            .into_parts()
            .0
    };
    assert_eq!(
        verifier
            .verify(&get("/video/cam/fragments/7.m4s"), &[], now)
            .unwrap(),
        "AKIDVIDEO"
    );
    assert!(verifier
        .verify(&get("/video/cam/fragments/8.m4s"), &[], now)
        .is_err());
    assert!(verifier
        .verify(
            &get("/video/cam/fragments/7.m4s"),
            &[],
            now + Duration::from_secs(3601)
        )
        .is_err());
    assert!(verifier
        .presign_get("nobody", "eu-west-1", "kinesisvideo", "h", "/", 60, now)
        .is_none());
}

#[test]
fn botocore_vectors() {
    let doc = vectors();
    let verifier = verifier(&doc);
    let vectors = doc["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 20, "vectors file looks truncated");
    for v in vectors {
        let name = v["name"].as_str().unwrap();
        let now = at(v.get("now").unwrap_or(&doc["now"]).as_u64().unwrap());
        let (parts, body) = request(v);
        let result = verifier.verify(&parts, &body, now);
        match (v["expect"].as_str().unwrap(), &result) {
            ("ok", Ok(key)) => assert_eq!(key, v["expect_key"].as_str().unwrap(), "{name}"),
            ("ok", Err(e)) => panic!("{name}: expected success, got {e:?}"),
            (expected, Err(e)) => assert_eq!(e.aws_error_type(), expected, "{name}: {e}"),
            (expected, Ok(_)) => panic!("{name}: expected {expected}, got success"),
        }
        if let Err(e) = result {
            assert_eq!(e.http_status(), StatusCode::BAD_REQUEST);
            for cred in doc["credentials"].as_array().unwrap() {
                let secret = cred[1].as_str().unwrap();
                assert!(
                    !e.to_string().contains(secret),
                    "{name}: message leaks secret"
                );
                assert!(
                    !format!("{e:?}").contains(secret),
                    "{name}: Debug leaks secret"
                );
            }
        }
    }
}

fn error_for(name: &str) -> AuthError {
    let doc = vectors();
    let v = doc["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no vector {name}"));
    let now = at(v.get("now").unwrap_or(&doc["now"]).as_u64().unwrap());
    let (parts, body) = request(v);
    verifier(&doc).verify(&parts, &body, now).unwrap_err()
}

#[test]
fn messages_match_aws() {
    assert_eq!(
        error_for("missing_authorization").to_string(),
        "Missing Authentication Token"
    );
    assert_eq!(
        error_for("unknown_access_key").to_string(),
        "The security token included in the request is invalid."
    );
    assert!(error_for("wrong_secret")
        .to_string()
        .starts_with("The request signature we calculated does not match"));
    assert_eq!(
        error_for("expired_date").to_string(),
        "Signature expired: 20240315T120000Z is now earlier than 20240315T120001Z \
         (20240315T120501Z - 5 min.)"
    );
    assert_eq!(
        error_for("date_in_future").to_string(),
        "Signature not yet current: 20240315T120000Z is still later than 20240315T115959Z \
         (20240315T115459Z + 5 min.)"
    );
    assert_eq!(
        error_for("malformed_authorization_no_signature").to_string(),
        "Authorization header requires 'Signature' parameter."
    );
    assert!(error_for("missing_x_amz_date")
        .to_string()
        .contains("X-Amz-Date"));
}

/// A second, independent client: aws-sigv4's own signer.
#[test]
fn accepts_aws_sigv4_signed_request() {
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4::SigningParams;

    let identity = Credentials::new("AKIDRUST", "rust/secret", None, None, "test").into();
    let signed_at = at(1_700_000_000);
    let params = SigningParams::builder()
        .identity(&identity)
        .region("ap-southeast-2")
        .name("kinesis")
        .time(signed_at)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let body = br#"{"StreamName":"s","Data":"AA==","PartitionKey":"\u00e9"}"#;
    let mut req = http::Request::builder()
        .method("POST")
        .uri("https://kinesis.ap-southeast-2.amazonaws.com/?b=2&a=%2F")
        .header("host", "kinesis.ap-southeast-2.amazonaws.com")
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", "Kinesis_20131202.PutRecord")
        .body(())
        .unwrap();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str(), v.to_str().unwrap()));
    let signable = SignableRequest::new(
        "POST",
        req.uri().to_string(),
        headers,
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    instructions.apply_to_request_http1x(&mut req);
    let (mut parts, ()) = req.into_parts();
    // As a server sees it: origin-form URI.
    parts.uri = "/?b=2&a=%2F".parse().unwrap();

    let verifier = SigV4Verifier::new(vec![("AKIDRUST".into(), "rust/secret".into())]);
    assert_eq!(
        verifier.verify(&parts, body, signed_at).unwrap(),
        "AKIDRUST"
    );
    let err = verifier.verify(&parts, b"{}", signed_at).unwrap_err();
    assert!(matches!(err, AuthError::SignatureMismatch));
}

/// What the AWS SDK for JavaScript sends over HTTP/2: `:authority` signed instead of
/// `host`, which hyper hands over in the URI (and no `host` header).
#[test]
fn accepts_authority_signed_over_http2() {
    let signed_at = at(1_700_000_000);
    let amz_date = format_amz_date(signed_at);
    let body = b"{}";
    let canonical = format!(
        "POST\n/\n\n:authority:127.0.0.1:4567\ncontent-type:application/x-amz-json-1.1\nx-amz-date:{amz_date}\n\n:authority;content-type;x-amz-date\n{}",
        hex::encode(Sha256::digest(body))
    );
    let scope = format!("{}/us-east-1/kinesis/{TERMINATOR}", &amz_date[..8]);
    let to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = generate_signing_key("s3cret", signed_at, "us-east-1", "kinesis");
    let signature = calculate_signature(&key, to_sign.as_bytes());
    let request = http::Request::builder()
        .method("POST")
        .version(http::Version::HTTP_2)
        .uri("http://127.0.0.1:4567/")
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-date", &amz_date)
        .header(
            "authorization",
            format!("{ALGORITHM} Credential=AKIDJS/{scope}, SignedHeaders=:authority;content-type;x-amz-date, Signature={signature}"),
        )
        .body(())
        .unwrap();
    let (parts, ()) = request.into_parts();
    let verifier = SigV4Verifier::new(vec![("AKIDJS".into(), "s3cret".into())]);
    verifier.precheck(&parts, signed_at).unwrap();
    assert_eq!(verifier.verify(&parts, body, signed_at).unwrap(), "AKIDJS");
}

#[test]
fn precheck_refuses_from_the_head_alone() {
    let verifier = SigV4Verifier::new(vec![("AKIDKNOWN".into(), "s".into())]);
    let now = at(1_700_000_000);
    let date = format_amz_date(now);
    let head = |auth: Option<String>| {
        let mut b = http::Request::builder()
            .method("POST")
            .uri("/")
            .header("x-amz-date", &date);
        if let Some(auth) = auth {
            b = b.header("authorization", auth);
        }
        b.body(()).unwrap().into_parts().0
    };
    let auth = |key: &str| {
        Some(format!(
            "{ALGORITHM} Credential={key}/{}/us-east-1/kinesis/{TERMINATOR}, SignedHeaders=host;x-amz-date, Signature=00",
            &date[..8]
        ))
    };
    assert!(matches!(
        verifier.precheck(&head(None), now),
        Err(AuthError::MissingAuthenticationToken)
    ));
    assert!(matches!(
        verifier.precheck(&head(auth("AKIDOTHER")), now),
        Err(AuthError::UnrecognizedClient)
    ));
    let late = now + Duration::from_secs(3600);
    assert!(matches!(
        verifier.precheck(&head(auth("AKIDKNOWN")), late),
        Err(AuthError::InvalidSignature(_))
    ));
    // Well formed, known key, in time: the signature itself is checked with the body.
    verifier.precheck(&head(auth("AKIDKNOWN")), now).unwrap();
}

#[test]
fn canonical_uri_normalises_and_double_encodes() {
    assert_eq!(canonical_uri("/"), "/");
    assert_eq!(canonical_uri(""), "/");
    assert_eq!(canonical_uri("/a/./b/../c//d/"), "/a/c/d/");
    assert_eq!(canonical_uri("/some%20path/x"), "/some%2520path/x");
}

#[test]
fn dates_round_trip() {
    for s in [
        "19700101T000000Z",
        "20000229T235959Z",
        "20240315T120000Z",
        "21001231T000001Z",
    ] {
        assert_eq!(format_amz_date(parse_amz_date(s).unwrap()), s);
    }
    for bad in [
        "20230229T000000Z",
        "20240315T240000Z",
        "2024031T120000Z",
        "20240315 120000Z",
    ] {
        assert!(parse_amz_date(bad).is_err(), "{bad}");
    }
}

#[test]
fn debug_hides_secrets() {
    let v = SigV4Verifier::new(vec![("AKID".into(), "topsecret".into())]);
    assert!(!format!("{v:?}").contains("topsecret"));
}
