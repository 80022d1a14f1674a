use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::*;
use crate::delivery::config::Secret;

fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

#[test]
fn credentials_from_config_env_and_file() {
    use aws_credential_types::Credentials as C;
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, "s3cr3t\n").unwrap();
    let config = AwsCredentialsConfig {
        access_key_id: Some("AKID".into()),
        secret: Some(Secret::File(secret_file)),
    };
    let c: C = resolve_credentials(&config, &env_of(&[])).unwrap();
    assert_eq!(
        (c.access_key_id(), c.secret_access_key()),
        ("AKID", "s3cr3t")
    );

    let config = AwsCredentialsConfig {
        access_key_id: Some("AKID".into()),
        secret: Some(Secret::Env("MY_SECRET".into())),
    };
    let c = resolve_credentials(&config, &env_of(&[("MY_SECRET", "x")])).unwrap();
    assert_eq!(c.secret_access_key(), "x");
    let err = resolve_credentials(&config, &env_of(&[])).unwrap_err();
    assert!(err.contains("MY_SECRET"), "{err}");

    let env = env_of(&[
        ("AWS_ACCESS_KEY_ID", "EID"),
        ("AWS_SECRET_ACCESS_KEY", "esecret"),
        ("AWS_SESSION_TOKEN", "tok"),
    ]);
    let c = resolve_credentials(&AwsCredentialsConfig::default(), &env).unwrap();
    assert_eq!(c.access_key_id(), "EID");
    assert_eq!(c.session_token(), Some("tok"));

    let file = dir.path().join("credentials");
    std::fs::write(
        &file,
        "# comment\n[default]\naws_access_key_id = DID\naws_secret_access_key = dsecret\n\n\
         [edge]\naws_access_key_id=PID\naws_secret_access_key=psecret\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let c = resolve_credentials(
        &AwsCredentialsConfig::default(),
        &env_of(&[("AWS_SHARED_CREDENTIALS_FILE", path)]),
    )
    .unwrap();
    assert_eq!(c.access_key_id(), "DID");
    let c = resolve_credentials(
        &AwsCredentialsConfig::default(),
        &env_of(&[
            ("AWS_SHARED_CREDENTIALS_FILE", path),
            ("AWS_PROFILE", "edge"),
        ]),
    )
    .unwrap();
    assert_eq!(c.secret_access_key(), "psecret");
    let err = resolve_credentials(
        &AwsCredentialsConfig::default(),
        &env_of(&[
            ("AWS_SHARED_CREDENTIALS_FILE", path),
            ("AWS_PROFILE", "none"),
        ]),
    )
    .unwrap_err();
    assert!(err.contains("[none]") && err.contains(path), "{err}");
    let err = resolve_credentials(
        &AwsCredentialsConfig::default(),
        &env_of(&[("HOME", "/nonexistent-home")]),
    )
    .unwrap_err();
    assert!(err.contains("/nonexistent-home/.aws/credentials"), "{err}");
    assert!(err.contains("AWS_ACCESS_KEY_ID"), "{err}");
}

#[test]
fn endpoints() {
    let none = env_of(&[]);
    let e = resolve_endpoint(None, "kinesis", "eu-west-1", &none).unwrap();
    assert_eq!(e.base(), "https://kinesis.eu-west-1.amazonaws.com");
    assert!(!e.custom);
    let e = resolve_endpoint(Some("http://127.0.0.1:5000/"), "s3", "x", &none).unwrap();
    assert_eq!(e.base(), "http://127.0.0.1:5000");
    assert!(e.custom && e.is_ip_or_localhost());
    let env = env_of(&[
        ("AWS_ENDPOINT_URL_S3", "http://minio:9000"),
        ("AWS_ENDPOINT_URL", "http://all:1"),
    ]);
    assert_eq!(
        resolve_endpoint(None, "s3", "r", &env).unwrap().base(),
        "http://minio:9000"
    );
    assert_eq!(
        resolve_endpoint(None, "firehose", "r", &env)
            .unwrap()
            .base(),
        "http://all:1"
    );
    for bad in ["ftp://x", "http://x/path", "not a url"] {
        let err = resolve_endpoint(Some(bad), "s3", "r", &none).unwrap_err();
        assert!(err.contains("endpoint"), "{err}");
    }
}

#[test]
fn error_classification() {
    let s3 = b"<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>The specified \
               bucket does not exist</Message></Error>";
    match classify("s3", 404, s3, None) {
        DeliveryError::Retryable(m) => assert_eq!(
            m,
            "s3 answered HTTP 404 NoSuchBucket: The specified bucket does not exist"
        ),
        other => panic!("{other:?}"),
    }
    let big = b"<Error><Code>EntityTooLarge</Code><Message>too big</Message></Error>";
    assert!(matches!(
        classify("s3", 400, big, None),
        DeliveryError::Permanent(_)
    ));
    let kinesis = br#"{"__type":"com.amazonaws#ProvisionedThroughputExceededException","message":"Rate exceeded"}"#;
    match classify("kinesis", 400, kinesis, None) {
        DeliveryError::Retryable(m) => assert_eq!(
            m,
            "kinesis answered HTTP 400 ProvisionedThroughputExceededException: Rate exceeded"
        ),
        other => panic!("{other:?}"),
    }
    match classify(
        "firehose",
        503,
        b"",
        Some("ServiceUnavailableException:http"),
    ) {
        DeliveryError::Retryable(m) => assert!(m.contains("503 ServiceUnavailableException")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        classify("x", 413, b"", None),
        DeliveryError::Permanent(_)
    ));
}

#[test]
fn splitting() {
    // 500 records at most.
    let (r, o) = split_requests(&[1; 1001], 500, 1000, 10);
    assert_eq!(
        r.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![500, 500, 1]
    );
    assert!(o.is_empty());
    // Bytes per request, and oversize records kept out.
    let (r, o) = split_requests(&[4, 4, 11, 4, 2, 10], 500, 10, 10);
    assert_eq!(r, vec![vec![0, 1], vec![3, 4], vec![5]]);
    assert_eq!(o, vec![2]);
    let (r, o) = split_requests(&[11], 500, 10, 10);
    assert!(r.is_empty());
    assert_eq!(o, vec![0]);
}

#[test]
fn per_entry_failures() {
    let body = br#"{"FailedRecordCount":2,"Records":[{"SequenceNumber":"1","ShardId":"s"},
        {"ErrorCode":"ProvisionedThroughputExceededException","ErrorMessage":"Rate exceeded"},
        {"SequenceNumber":"2","ShardId":"s"},{"ErrorCode":"InternalFailure","ErrorMessage":"x"}]}"#;
    let (failed, first) = failed_entries(body, "Records", 4).unwrap();
    assert_eq!(failed, vec![1, 3]);
    assert_eq!(
        first.unwrap(),
        "ProvisionedThroughputExceededException: Rate exceeded"
    );
    assert!(failed_entries(body, "Records", 3).is_err());
    assert!(failed_entries(body, "RequestResponses", 4).is_err());
    let ok = br#"{"FailedPutCount":0,"RequestResponses":[{"RecordId":"a"}]}"#;
    assert_eq!(
        failed_entries(ok, "RequestResponses", 1).unwrap().0,
        Vec::<usize>::new()
    );
}

#[test]
fn uri_encoding() {
    assert_eq!(uri_encode("a b/c=d~é", true), "a%20b/c%3Dd~%C3%A9");
    assert_eq!(uri_encode("a/b+", false), "a%2Fb%2B");
    assert_eq!(
        xml_tag("<A><UploadId>x&amp;y</UploadId></A>", "UploadId").unwrap(),
        "x&y"
    );
}

/// A fake Kinesis that answers PutRecords requests in turn: `Ok(failed positions)` is a
/// 200 with those entries refused, `Err(status)` an error answer.
async fn fake_kinesis(answers: Vec<Result<Vec<usize>, u16>>) -> (String, Arc<AtomicUsize>) {
    use axum::response::IntoResponse;
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move |body: axum::body::Bytes| {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            let answer = answers.get(n).cloned().unwrap_or(Ok(Vec::new()));
            async move {
                let request: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let count = request["Records"].as_array().unwrap().len();
                match answer {
                    Ok(failed) => {
                        let entries: Vec<serde_json::Value> = (0..count)
                            .map(|i| {
                                if failed.contains(&i) {
                                    serde_json::json!({"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "Rate exceeded"})
                                } else {
                                    serde_json::json!({"SequenceNumber": "1", "ShardId": "shardId-0"})
                                }
                            })
                            .collect();
                        let body = serde_json::json!({"FailedRecordCount": failed.len(), "Records": entries});
                        (axum::http::StatusCode::OK, body.to_string()).into_response()
                    }
                    Err(status) => (
                        axum::http::StatusCode::from_u16(status).unwrap(),
                        r#"{"__type":"InternalFailure","message":"boom"}"#,
                    )
                        .into_response(),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, calls)
}

fn putter(endpoint: &str) -> RecordPutter {
    RecordPutter {
        client: AwsClient {
            http: reqwest::Client::new(),
            credentials: Credentials::new("AKID", "secret", None, None, "test"),
            region: "us-east-1".into(),
            service: "kinesis",
            endpoint: resolve_endpoint(Some(endpoint), "kinesis", "", &env_of(&[])).unwrap(),
        },
        target: "Kinesis_20131202.PutRecords",
        name: "s".into(),
        max_records: 500,
        max_request_bytes: 5 * 1024 * 1024,
        max_record_bytes: 1024 * 1024,
        record_size: |r| r.data.len() + r.partition_key.len(),
        body: |name, records| {
            let records: Vec<serde_json::Value> = records
                .iter()
                .map(|r| serde_json::json!({"Data": "", "PartitionKey": r.partition_key}))
                .collect();
            serde_json::json!({"StreamName": name, "Records": records})
                .to_string()
                .into_bytes()
        },
        entries_key: "Records",
    }
}

fn batch(n: usize) -> Batch {
    Batch {
        delivery_stream: "d".into(),
        id: "b".into(),
        created_ms: 0,
        formed_ms: 0,
        compression: crate::delivery::config::Compression::None,
        records: (0..n)
            .map(|i| DeliveryRecord {
                data: Bytes::from(vec![b'x'; 10]),
                partition_key: format!("k{i}"),
                sequence_number: i.to_string(),
                arrival_ms: 0,
                partition_values: Default::default(),
            })
            .collect(),
    }
}

#[tokio::test]
async fn partial_failures_name_every_unconfirmed_record() {
    // Request 1 (0..500) fine, request 2 (500..1000) refuses entries 1 and 3: stop there;
    // request 3 (1000..1200) is never sent.
    let (url, calls) = fake_kinesis(vec![Ok(vec![]), Ok(vec![1, 3])]).await;
    match putter(&url).put(&batch(1200)).await {
        Err(DeliveryError::Partial { failed, message }) => {
            let mut want = vec![501, 503];
            want.extend(1000..1200);
            assert_eq!(failed, want);
            assert!(message.contains("2 of 500"), "{message}");
            assert!(
                message.contains("ProvisionedThroughputExceededException"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // A later request fails as a whole: all of it and what follows is unconfirmed.
    let (url, _) = fake_kinesis(vec![Ok(vec![]), Err(500)]).await;
    match putter(&url).put(&batch(1200)).await {
        Err(DeliveryError::Partial { failed, message }) => {
            assert_eq!(failed, (500..1200).collect::<Vec<_>>());
            assert!(
                message.contains("HTTP 500 InternalFailure: boom"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }

    // The first request fails as a whole: the batch's error as it is.
    let (url, _) = fake_kinesis(vec![Err(503)]).await;
    assert!(matches!(
        putter(&url).put(&batch(1200)).await,
        Err(DeliveryError::Retryable(m)) if m.contains("503")
    ));

    // Every entry refused: nothing was confirmed, retry it all.
    let (url, _) = fake_kinesis(vec![Ok(vec![0, 1])]).await;
    assert!(matches!(
        putter(&url).put(&batch(2)).await,
        Err(DeliveryError::Retryable(_))
    ));

    let (url, calls) = fake_kinesis(vec![]).await;
    putter(&url).put(&batch(1001)).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

/// AWS's SigV4 test suite, `get-vanilla`: the signature aws-sigv4 computes with the
/// settings used for Kinesis and Firehose must match AWS's published one.
#[test]
fn sigv4_test_vector() {
    let identity = Credentials::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        None,
        None,
        "test",
    )
    .into();
    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160); // 20150830T123600Z
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("service")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let request = SignableRequest::new(
        "GET",
        "https://example.amazonaws.com/",
        std::iter::empty(),
        SignableBody::Precomputed(hex::encode(Sha256::digest(b""))),
    )
    .unwrap();
    let (_, signature) = sign(request, &params).unwrap().into_parts();
    assert_eq!(
        signature,
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    );
}
