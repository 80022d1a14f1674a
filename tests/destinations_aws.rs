//! The AWS destinations (`s3`, `kinesis`, `firehose`) against a real server: moto, started
//! on a free loopback port for each test and killed when the test ends. Batches go through
//! `kinedge::delivery::destinations::build`; what landed is read back through moto's own
//! S3, Kinesis and Firehose APIs.
//!
//! moto comes from `scripts/install-deps --test` (or any `python3` with `moto[server]`);
//! `KINEDGE_PYTHON` picks the interpreter. Without it these tests fail, they never skip.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use kinedge::delivery::batch::{Batch, DeliveryRecord, ErrorBatch, ErrorOutputType, FailedRecord};
use kinedge::delivery::config::{
    AwsCredentialsConfig, Compression, DestinationConfig, FirehoseConfig, KinesisConfig, S3Config,
    Secret,
};
use kinedge::delivery::destinations::{build, DeliveryError, Destination, DestinationContext};

use common::moto::REGION;
const SECRET_VAR: &str = "KINEDGE_TEST_AWS_SECRET";
// 2024-03-05T07:08:09.012Z
const T: u64 = 1_709_622_489_012;

mod common;
use common::moto::{free_port, Moto};

impl Moto {
    /// A JSON API call; the Authorization header only tells moto which service it is for.
    async fn call(
        &self,
        service: &str,
        target: &str,
        body: serde_json::Value,
    ) -> serde_json::Value {
        let answer = self
            .http
            .post(self.url("/"))
            .header("authorization", Moto::auth(service))
            .header("x-amz-target", target)
            .header("content-type", "application/x-amz-json-1.1")
            .body(body.to_string())
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .unwrap();
        let status = answer.status();
        let text = answer.text().await.unwrap();
        assert!(status.is_success(), "{target}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
    }

    /// An object's body and ETag.
    async fn object(&self, bucket: &str, key: &str) -> (Vec<u8>, String) {
        self.object_and_header(bucket, key, "etag").await
    }
}

fn credentials() -> AwsCredentialsConfig {
    std::env::set_var(SECRET_VAR, "testing-secret");
    AwsCredentialsConfig {
        access_key_id: Some("testing".into()),
        secret: Some(Secret::Env(SECRET_VAR.into())),
    }
}

async fn destination(config: DestinationConfig) -> Box<dyn Destination> {
    let context = DestinationContext {
        delivery_stream: "edge".into(),
        source_arn: "arn:aws:firehose:us-east-1:123456789012:deliverystream/edge".into(),
        data_dir: std::env::temp_dir(),
        http: reqwest::Client::new(),
    };
    build(&config, &context).await.expect("destination builds")
}

fn s3_config(moto: &Moto, bucket: &str, prefix: Option<&str>) -> DestinationConfig {
    DestinationConfig::S3(S3Config {
        bucket: bucket.into(),
        region: REGION.into(),
        prefix: prefix.map(str::to_string),
        error_prefix: None,
        endpoint: moto.endpoint(),
        credentials: credentials(),
        force_path_style: true,
    })
}

fn record(data: impl Into<Bytes>, key: &str) -> DeliveryRecord {
    DeliveryRecord {
        data: data.into(),
        partition_key: key.into(),
        sequence_number: "1".into(),
        arrival_ms: T,
        partition_values: Arc::new(BTreeMap::new()),
    }
}

fn batch(id: &str, compression: Compression, records: Vec<DeliveryRecord>) -> Batch {
    Batch {
        delivery_stream: "edge".into(),
        id: id.into(),
        created_ms: T,
        formed_ms: T,
        compression,
        records,
    }
}

fn decompress(compression: Compression, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match compression {
        Compression::None => out = data.to_vec(),
        Compression::Gzip => {
            flate2::read::GzDecoder::new(data)
                .read_to_end(&mut out)
                .unwrap();
        }
        Compression::Zstd => out = zstd::decode_all(data).unwrap(),
        Compression::Snappy => {
            snap::read::FrameDecoder::new(data)
                .read_to_end(&mut out)
                .unwrap();
        }
    }
    out
}

/// Pseudo-random bytes that do not compress (splitmix64).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_objects_have_firehose_names_prefixes_and_compression() {
    let moto = Moto::start().await;
    moto.create_bucket("edge-bucket").await;
    let s3 = destination(s3_config(
        &moto,
        "edge-bucket",
        Some("gw1/!{timestamp:yyyy/MM/dd/HH}/"),
    ))
    .await;
    assert_eq!(
        s3.describe(),
        "s3://edge-bucket/gw1/!{timestamp:yyyy/MM/dd/HH}/"
    );

    let data = ["{\"t\":1}\n", "{\"t\":2}\n", "{\"t\":3}\n"];
    let mut expected = Vec::new();
    for (id, compression) in [
        ("b-none", Compression::None),
        ("b-gzip", Compression::Gzip),
        ("b-zstd", Compression::Zstd),
        ("b-snappy", Compression::Snappy),
    ] {
        let records = data.iter().map(|d| record(d.to_string(), "k")).collect();
        s3.deliver(&batch(id, compression, records)).await.unwrap();
        let ext = match compression {
            Compression::None => "",
            Compression::Gzip => ".gz",
            Compression::Zstd => ".zst",
            Compression::Snappy => ".snappy",
        };
        let key = format!("gw1/2024/03/05/07/edge-1-2024-03-05-07-08-09-{id}{ext}");
        let (body, _) = moto.object("edge-bucket", &key).await;
        assert_eq!(
            decompress(compression, &body),
            data.concat().as_bytes(),
            "{key}"
        );
        expected.push(key);
    }
    expected.sort();
    assert_eq!(moto.keys("edge-bucket").await, expected);

    // Dynamic partitioning: one object per partition value; a record without the key goes to
    // the error output.
    let part = destination(s3_config(
        &moto,
        "edge-bucket",
        Some("p/device=!{partitionKeyFromQuery:device}/"),
    ))
    .await;
    let with = |data: &str, device: Option<&str>| {
        let mut r = record(data.to_string(), "k");
        if let Some(d) = device {
            r.partition_values = Arc::new(BTreeMap::from([("device".to_string(), d.to_string())]));
        }
        r
    };
    let b = batch(
        "b-part",
        Compression::None,
        vec![
            with("a1", Some("a")),
            with("b1", Some("b")),
            with("x", None),
            with("a2", Some("a")),
        ],
    );
    part.deliver(&b).await.unwrap();
    let name = "edge-1-2024-03-05-07-08-09-b-part";
    assert_eq!(
        moto.object("edge-bucket", &format!("p/device=a/{name}"))
            .await
            .0,
        b"a1a2"
    );
    assert_eq!(
        moto.object("edge-bucket", &format!("p/device=b/{name}"))
            .await
            .0,
        b"b1"
    );
    let unroutable = format!("processing-failed/2024/03/05/07/{name}-unroutable");
    let (errors, _) = moto.object("edge-bucket", &unroutable).await;
    let line: serde_json::Value = serde_json::from_slice(errors.trim_ascii_end()).unwrap();
    assert_eq!(line["rawData"], "eA==");

    // The error output: JSON lines under the error prefix, uncompressed.
    let errors = ErrorBatch {
        delivery_stream: "edge".into(),
        id: "e1".into(),
        created_ms: T,
        kind: ErrorOutputType::HttpEndpointFailed,
        records: vec![FailedRecord {
            record: record("raw", "k"),
            error_code: "Code".into(),
            error_message: "why".into(),
            attempts: 4,
        }],
    };
    assert!(s3.deliver_errors(&errors).await.unwrap());
    let (body, _) = moto
        .object(
            "edge-bucket",
            "http-endpoint-failed/2024/03/05/07/edge-1-2024-03-05-07-08-09-e1",
        )
        .await;
    let line: serde_json::Value = serde_json::from_slice(body.trim_ascii_end()).unwrap();
    assert_eq!(line["errorCode"], "Code");
    assert_eq!(line["attemptsMade"], 4);
    assert_eq!(
        line["rawData"],
        base64::engine::general_purpose::STANDARD.encode("raw")
    );

    // A bucket that does not exist: retried (the user can create it), saying what S3 said.
    let missing = destination(s3_config(&moto, "no-such-bucket", None)).await;
    match missing
        .deliver(&batch("b-x", Compression::None, vec![record("x", "k")]))
        .await
    {
        Err(DeliveryError::Retryable(m)) => {
            assert!(m.contains("NoSuchBucket") && m.contains("404"), "{m}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_large_objects_use_multipart_upload() {
    let moto = Moto::start().await;
    moto.create_bucket("big-bucket").await;
    let s3 = destination(s3_config(&moto, "big-bucket", Some("big/"))).await;
    // 18 MiB that do not compress: above the 16 MiB threshold after zstd too.
    let records: Vec<DeliveryRecord> = (0..18)
        .map(|i| record(noise(1024 * 1024, i + 1), "k"))
        .collect();
    let expected: Vec<u8> = records.iter().flat_map(|r| r.data.to_vec()).collect();
    s3.deliver(&batch("b-big", Compression::Zstd, records))
        .await
        .unwrap();
    let key = "big/edge-1-2024-03-05-07-08-09-b-big.zst";
    let (body, etag) = moto.object("big-bucket", key).await;
    assert!(
        body.len() > 16 * 1024 * 1024,
        "{} bytes, ETag {etag}",
        body.len()
    );
    // A multipart object's ETag ends in -<parts>: 18+ MiB in 8 MiB parts = 3.
    assert!(etag.trim_matches('"').ends_with("-3"), "ETag {etag}");
    assert!(
        decompress(Compression::Zstd, &body) == expected,
        "content differs"
    );
    assert_eq!(moto.keys("big-bucket").await, vec![key.to_string()]);
}

fn kinesis_config(moto: &Moto, stream: &str) -> DestinationConfig {
    DestinationConfig::Kinesis(KinesisConfig {
        stream: stream.into(),
        region: REGION.into(),
        endpoint: moto.endpoint(),
        credentials: credentials(),
    })
}

/// Every record of the stream's only shard: (partition key, data).
async fn kinesis_records(moto: &Moto, stream: &str) -> Vec<(String, Vec<u8>)> {
    let shards = moto
        .call(
            "kinesis",
            "Kinesis_20131202.ListShards",
            serde_json::json!({"StreamName": stream}),
        )
        .await;
    let shard = shards["Shards"][0]["ShardId"].as_str().unwrap().to_string();
    let it = moto
        .call(
            "kinesis",
            "Kinesis_20131202.GetShardIterator",
            serde_json::json!({"StreamName": stream, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"}),
        )
        .await;
    let mut iterator = it["ShardIterator"].as_str().unwrap().to_string();
    let mut out = Vec::new();
    for _ in 0..100 {
        let page = moto
            .call(
                "kinesis",
                "Kinesis_20131202.GetRecords",
                serde_json::json!({"ShardIterator": iterator, "Limit": 10000}),
            )
            .await;
        let records = page["Records"].as_array().unwrap();
        if records.is_empty() {
            break;
        }
        for r in records {
            let data = base64::engine::general_purpose::STANDARD
                .decode(r["Data"].as_str().unwrap())
                .unwrap();
            out.push((r["PartitionKey"].as_str().unwrap().to_string(), data));
        }
        iterator = page["NextShardIterator"].as_str().unwrap().to_string();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinesis_records_arrive_with_their_partition_keys() {
    let moto = Moto::start().await;
    moto.call(
        "kinesis",
        "Kinesis_20131202.CreateStream",
        serde_json::json!({"StreamName": "upstream", "ShardCount": 1}),
    )
    .await;
    let kinesis = destination(kinesis_config(&moto, "upstream")).await;

    // 1,203 records: three PutRecords requests (500 records each at most).
    let records: Vec<DeliveryRecord> = (0..1203)
        .map(|i| record(format!("record-{i}"), &format!("sensor-{}", i % 7)))
        .collect();
    kinesis
        .deliver(&batch("k1", Compression::None, records.clone()))
        .await
        .unwrap();
    let got = kinesis_records(&moto, "upstream").await;
    let want: Vec<(String, Vec<u8>)> = records
        .iter()
        .map(|r| (r.partition_key.clone(), r.data.to_vec()))
        .collect();
    assert_eq!(got, want);

    // A record over 1 MiB can never be delivered: the others are, it is reported as not
    // confirmed, and alone it is permanent (the runner sends it to the error output).
    let big = record(vec![b'x'; 1024 * 1024 + 1], "big");
    let b = batch(
        "k2",
        Compression::None,
        vec![record("small", "s"), big.clone()],
    );
    match kinesis.deliver(&b).await {
        Err(DeliveryError::Partial { failed, message }) => {
            assert_eq!(failed, vec![1]);
            assert!(message.contains("limit"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let got = kinesis_records(&moto, "upstream").await;
    assert_eq!(got.len(), 1204);
    assert_eq!(got[1203], ("s".to_string(), b"small".to_vec()));
    assert!(matches!(
        kinesis
            .deliver(&batch("k3", Compression::None, vec![big]))
            .await,
        Err(DeliveryError::Permanent(_))
    ));

    // A stream that does not exist: retried, with what Kinesis answered.
    let missing = destination(kinesis_config(&moto, "missing")).await;
    match missing
        .deliver(&batch("k4", Compression::None, vec![record("x", "k")]))
        .await
    {
        Err(DeliveryError::Retryable(m)) => {
            assert!(
                m.contains("ResourceNotFoundException") && m.contains("400"),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firehose_records_reach_the_upstream_delivery_stream() {
    let moto = Moto::start().await;
    moto.create_bucket("firehose-bucket").await;
    moto.call(
        "firehose",
        "Firehose_20150804.CreateDeliveryStream",
        serde_json::json!({
            "DeliveryStreamName": "upstream",
            "DeliveryStreamType": "DirectPut",
            "ExtendedS3DestinationConfiguration": {
                "RoleARN": "arn:aws:iam::123456789012:role/firehose",
                "BucketARN": "arn:aws:s3:::firehose-bucket",
                "Prefix": "fh/"
            }
        }),
    )
    .await;
    let firehose = destination(DestinationConfig::Firehose(FirehoseConfig {
        delivery_stream: "upstream".into(),
        region: REGION.into(),
        endpoint: moto.endpoint(),
        credentials: credentials(),
    }))
    .await;
    // moto writes one object per PutRecordBatch: 2 requests for 600 records.
    let records: Vec<DeliveryRecord> = (0..600).map(|i| record(format!("r{i};"), "k")).collect();
    firehose
        .deliver(&batch("f1", Compression::None, records))
        .await
        .unwrap();
    let keys = moto.keys("firehose-bucket").await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    let mut all = Vec::new();
    for key in &keys {
        assert!(key.starts_with("fh/"), "{key}");
        all.push(String::from_utf8(moto.object("firehose-bucket", key).await.0).unwrap());
    }
    // Keys carry a random part: order the two objects by content.
    all.sort_by_key(|s| s.len());
    let want_first: String = (0..500).map(|i| format!("r{i};")).collect();
    let want_second: String = (500..600).map(|i| format!("r{i};")).collect();
    assert!(
        all.contains(&want_first) && all.contains(&want_second),
        "{all:?}"
    );
}

#[tokio::test]
async fn an_endpoint_nobody_listens_on_is_unreachable() {
    // A port that was free a moment ago: nothing listens there.
    let endpoint = Some(format!("http://127.0.0.1:{}", free_port()));
    let configs = [
        DestinationConfig::S3(S3Config {
            bucket: "edge-bucket".into(),
            region: REGION.into(),
            prefix: None,
            error_prefix: None,
            endpoint: endpoint.clone(),
            credentials: credentials(),
            force_path_style: true,
        }),
        DestinationConfig::Kinesis(KinesisConfig {
            stream: "s".into(),
            region: REGION.into(),
            endpoint: endpoint.clone(),
            credentials: credentials(),
        }),
        DestinationConfig::Firehose(FirehoseConfig {
            delivery_stream: "f".into(),
            region: REGION.into(),
            endpoint: endpoint.clone(),
            credentials: credentials(),
        }),
    ];
    for config in configs {
        let d = destination(config).await;
        let result = tokio::time::timeout(
            Duration::from_secs(20),
            d.deliver(&batch("u1", Compression::Gzip, vec![record("x", "k")])),
        )
        .await
        .expect("an answer in time");
        match result {
            Err(DeliveryError::Unreachable(m)) => assert!(m.contains("127.0.0.1"), "{m}"),
            other => panic!("{}: {other:?}", d.kind()),
        }
    }
}

#[tokio::test]
async fn missing_credentials_name_where_they_were_looked_for() {
    let config = DestinationConfig::Kinesis(KinesisConfig {
        stream: "s".into(),
        region: REGION.into(),
        endpoint: Some("http://127.0.0.1:1".into()),
        credentials: AwsCredentialsConfig {
            access_key_id: Some("id".into()),
            secret: Some(Secret::Env("KINEDGE_TEST_UNSET_SECRET".into())),
        },
    });
    let context = DestinationContext {
        delivery_stream: "edge".into(),
        source_arn: String::new(),
        data_dir: std::env::temp_dir(),
        http: reqwest::Client::new(),
    };
    let err = build(&config, &context)
        .await
        .err()
        .expect("no credentials");
    assert!(
        err.to_string().contains("KINEDGE_TEST_UNSET_SECRET"),
        "{err}"
    );
}
