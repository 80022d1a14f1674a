"""The Firehose API on the gateway's port (boto3 `firehose` client): PutRecord, PutRecordBatch,
Create/Describe/List/DeleteDeliveryStream, limits and error shapes; direct-put records survive
SIGKILL once acknowledged."""

import gzip
import re

import boto3
import pytest
from botocore.config import Config

from firehose_receiver import delivery_toml, http_destination, stream_toml, wait_for, wait_reading_from_latest
from kutil import ACCOUNT, REGION, TEST_KEY, expect_error, unique

INVALID = ("InvalidArgumentException", "ValidationException")


def firehose(gw, validate=True):
    return boto3.session.Session().client(
        "firehose", endpoint_url=gw.url, region_name=REGION, aws_access_key_id=TEST_KEY,
        aws_secret_access_key="secret",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, parameter_validation=validate,
                      connect_timeout=5, read_timeout=30))


def _direct(rx, name="dp", **kw):
    return delivery_toml(name, http_destination(rx), source="direct_put", compression="gzip", **kw)


def test_put_record_and_batch(gateway_factory, receiver):
    rx = receiver(compression="gzip", delivery_stream="dp")
    gw = gateway_factory(_direct(rx))
    fh = firehose(gw)
    r = fh.put_record(DeliveryStreamName="dp", Record={"Data": b"first"})
    assert isinstance(r["RecordId"], str) and r["RecordId"], r
    assert r["Encrypted"] is False, r
    data = [f"batch-{i:03d}".encode() for i in range(500)]
    b = fh.put_record_batch(DeliveryStreamName="dp", Records=[{"Data": d} for d in data])
    assert b["FailedPutCount"] == 0 and b["Encrypted"] is False, {k: v for k, v in b.items() if k != "RequestResponses"}
    assert len(b["RequestResponses"]) == 500
    ids = [x["RecordId"] for x in b["RequestResponses"]]
    assert all(ids) and len(set(ids + [r["RecordId"]])) == 501, "record ids must be unique"
    got = rx.wait_records(501)
    rx.assert_clean()
    assert got == [b"first"] + data, "direct-put records arrive once each, in put order"


def test_limits_and_errors(gateway_factory, receiver):
    rx = receiver(compression="gzip", delivery_stream="dp")
    gw = gateway_factory(_direct(rx))
    fh = firehose(gw, validate=False)
    expect_error(INVALID, fh.put_record_batch, DeliveryStreamName="dp",
                 Records=[{"Data": b"x"} for _ in range(501)], mentions=["500", "501", "records"])
    expect_error(INVALID, fh.put_record, DeliveryStreamName="dp", Record={"Data": b"y" * (1000 * 1024 + 1)},
                 mentions=["1000", "1024000", "size", "length", "large"])
    big = [{"Data": b"z" * (900 * 1024)} for _ in range(5)]  # 4.4 MiB > 4 MiB
    expect_error(INVALID, fh.put_record_batch, DeliveryStreamName="dp", Records=big)
    expect_error("ResourceNotFoundException", fh.put_record, DeliveryStreamName="nope", Record={"Data": b"a"})
    expect_error("ResourceNotFoundException", fh.describe_delivery_stream, DeliveryStreamName="nope")
    # a record of exactly 1000 KiB is fine
    r = fh.put_record(DeliveryStreamName="dp", Record={"Data": b"m" * (1000 * 1024)})
    assert r["RecordId"]
    got = rx.wait_records(1, timeout=20)
    assert got == [b"m" * (1000 * 1024)], "nothing of the refused calls may be delivered"
    rx.assert_clean()


def _arn_ok(arn, name):
    return re.fullmatch(rf"arn:aws:firehose:{REGION}:\d{{12}}:deliverystream/{re.escape(name)}", arn)


def test_create_describe_list_delete(gateway_factory, receiver):
    rx_cfg = receiver(compression="gzip", delivery_stream="dp")
    rx_api = receiver(compression="gzip", delivery_stream="api-http", access_key="k-api",
                      common_attributes={"a": "1"})
    gw = gateway_factory(_direct(rx_cfg))
    fh = firehose(gw)
    resp = fh.create_delivery_stream(
        DeliveryStreamName="api-http", DeliveryStreamType="DirectPut",
        HttpEndpointDestinationConfiguration={
            "EndpointConfiguration": {"Url": rx_api.url, "Name": "test receiver", "AccessKey": "k-api"},
            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 0},
            "RequestConfiguration": {"ContentEncoding": "GZIP",
                                     "CommonAttributes": [{"AttributeName": "a", "AttributeValue": "1"}]},
            "RetryOptions": {"DurationInSeconds": 60},
            "S3BackupMode": "FailedDataOnly",
            "S3Configuration": {"RoleARN": f"arn:aws:iam::{ACCOUNT}:role/x", "BucketARN": "arn:aws:s3:::unused"},
        })
    assert _arn_ok(resp["DeliveryStreamARN"], "api-http"), resp
    d = fh.describe_delivery_stream(DeliveryStreamName="api-http")["DeliveryStreamDescription"]
    assert d["DeliveryStreamName"] == "api-http" and d["DeliveryStreamARN"] == resp["DeliveryStreamARN"]
    assert d["DeliveryStreamStatus"] == "ACTIVE" and d["DeliveryStreamType"] == "DirectPut", d
    assert d["Destinations"] and "HttpEndpointDestinationDescription" in d["Destinations"][0], d["Destinations"]
    names = fh.list_delivery_streams()
    assert set(names["DeliveryStreamNames"]) == {"dp", "api-http"} and names["HasMoreDeliveryStreams"] is False
    cfg_desc = fh.describe_delivery_stream(DeliveryStreamName="dp")["DeliveryStreamDescription"]
    assert _arn_ok(cfg_desc["DeliveryStreamARN"], "dp") and cfg_desc["DeliveryStreamStatus"] == "ACTIVE"

    expect_error("ResourceInUseException", fh.create_delivery_stream, DeliveryStreamName="api-http",
                 DeliveryStreamType="DirectPut",
                 HttpEndpointDestinationConfiguration={
                     "EndpointConfiguration": {"Url": rx_api.url},
                     "S3Configuration": {"RoleARN": f"arn:aws:iam::{ACCOUNT}:role/x",
                                         "BucketARN": "arn:aws:s3:::unused"}})
    expect_error("ResourceInUseException", fh.create_delivery_stream, DeliveryStreamName="dp",
                 DeliveryStreamType="DirectPut",
                 HttpEndpointDestinationConfiguration={
                     "EndpointConfiguration": {"Url": rx_api.url},
                     "S3Configuration": {"RoleARN": f"arn:aws:iam::{ACCOUNT}:role/x",
                                         "BucketARN": "arn:aws:s3:::unused"}})

    fh.put_record_batch(DeliveryStreamName="api-http", Records=[{"Data": b"api-%d" % i} for i in range(20)])
    assert rx_api.wait_records(20) == [b"api-%d" % i for i in range(20)]
    rx_api.assert_clean()

    # API-made delivery streams are kept across a restart
    gw.restart()
    fh = firehose(gw)
    assert set(fh.list_delivery_streams()["DeliveryStreamNames"]) == {"dp", "api-http"}
    fh.put_record(DeliveryStreamName="api-http", Record={"Data": b"after restart"})
    assert rx_api.wait_records(21)[-1] == b"after restart"

    # config-file delivery streams cannot be deleted through the API
    expect_error(("ResourceInUseException", "InvalidArgumentException"), fh.delete_delivery_stream,
                 DeliveryStreamName="dp")
    fh.delete_delivery_stream(DeliveryStreamName="api-http")
    wait_for(lambda: "api-http" not in fh.list_delivery_streams()["DeliveryStreamNames"], timeout=10,
             what="api-http gone from ListDeliveryStreams")
    expect_error("ResourceNotFoundException", fh.describe_delivery_stream, DeliveryStreamName="api-http")
    expect_error("ResourceNotFoundException", fh.delete_delivery_stream, DeliveryStreamName="api-http")


def test_create_s3_delivery_stream_via_api(gateway_factory, moto):
    bucket = moto.create_bucket(unique("api"))
    gw = gateway_factory("", env=moto.aws_env())
    fh = firehose(gw)
    fh.create_delivery_stream(
        DeliveryStreamName="api-s3", DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": f"arn:aws:iam::{ACCOUNT}:role/x", "BucketARN": f"arn:aws:s3:::{bucket}",
            "Prefix": "api/!{timestamp:yyyy}/", "ErrorOutputPrefix": "apierr/!{firehose:error-output-type}/",
            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 0}, "CompressionFormat": "GZIP"})
    d = fh.describe_delivery_stream(DeliveryStreamName="api-s3")["DeliveryStreamDescription"]
    assert d["DeliveryStreamStatus"] == "ACTIVE" and d["Destinations"], d
    want = [b"line-%03d\n" % i for i in range(100)]
    fh.put_record_batch(DeliveryStreamName="api-s3", Records=[{"Data": x} for x in want])
    objs = moto.wait_objects(bucket, lambda o: sum(gzip.decompress(b).count(b"\n") for b in o.values()) >= 100,
                             prefix="api/")
    for key in objs:
        assert re.fullmatch(r"api/\d{4}/api-s3-1-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-[0-9a-f-]{36}\.gz", key), key
    got = [ln + b"\n" for b in objs.values() for ln in gzip.decompress(b).splitlines()]
    assert sorted(got) == sorted(want), "objects hold exactly the records"


def test_kinesis_source_via_api(gateway_factory, receiver):
    rx = receiver(compression="none", delivery_stream="from-kinesis")
    gw = gateway_factory(stream_toml("src", 2))
    c = gw.client()
    # like Firehose, a delivery stream made through the API reads its Kinesis source from LATEST
    c.put_records(StreamName="src", Records=[{"Data": b"old-%d" % i, "PartitionKey": "p"} for i in range(5)])
    fh = firehose(gw)
    fh.create_delivery_stream(
        DeliveryStreamName="from-kinesis", DeliveryStreamType="KinesisStreamAsSource",
        KinesisStreamSourceConfiguration={
            "KinesisStreamARN": f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/src",
            "RoleARN": f"arn:aws:iam::{ACCOUNT}:role/x"},
        HttpEndpointDestinationConfiguration={
            "EndpointConfiguration": {"Url": rx.url},
            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 0},
            "RequestConfiguration": {"ContentEncoding": "NONE"},
            "S3Configuration": {"RoleARN": f"arn:aws:iam::{ACCOUNT}:role/x", "BucketARN": "arn:aws:s3:::unused"}})
    d = fh.describe_delivery_stream(DeliveryStreamName="from-kinesis")["DeliveryStreamDescription"]
    assert d["DeliveryStreamType"] == "KinesisStreamAsSource", d
    expect_error(INVALID + ("ResourceInUseException",), fh.put_record, DeliveryStreamName="from-kinesis",
                 Record={"Data": b"no direct put here"})
    # LATEST is taken when the runner opens the source: probes say when (no sleep).
    wait_reading_from_latest(c, "src", rx, keys=["p"])
    c.put_records(StreamName="src", Records=[{"Data": b"k-%d" % i, "PartitionKey": "p"} for i in range(30)])
    rx.wait_distinct({b"k-%d" % i for i in range(30)}, timeout=30)
    # One key, one shard, delivered in order: an old record would have come before these.
    got = [d for d in rx.unique_records() if not d.startswith(b"probe|")]
    assert got == [b"k-%d" % i for i in range(30)], "exactly the records put after the creation, in order"
    rx.assert_clean()


@pytest.mark.timeout(90)
def test_acknowledged_direct_put_survives_sigkill(gateway_factory, receiver):
    rx = receiver(compression="gzip", delivery_stream="dp")
    rx.down()
    gw = gateway_factory(_direct(rx))
    fh = firehose(gw)
    acked = []
    for b in range(6):
        recs = [f"dur-{b}-{i:03d}".encode() for i in range(100)]
        r = fh.put_record_batch(DeliveryStreamName="dp", Records=[{"Data": d} for d in recs])
        acked += [d for d, x in zip(recs, r["RequestResponses"]) if "RecordId" in x]
    assert len(acked) == 600
    gw.kill()
    gw.start()
    rx.up()
    got = rx.wait_distinct(set(acked), timeout=30)
    rx.assert_clean()
    assert set(got) == set(acked)
