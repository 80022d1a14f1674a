"""Error codes, messages and the raw error wire format."""

import base64
import json
import os
import time

import cbor2
import pytest

from kutil import (ARN_PREFIX, CBOR_CT, HASH_SPACE, JSON_CT, MiB, assert_raw_error, create_stream,
                   decode_body, expect_error, read_all, unique)

MISSING = "no-such-stream-kinedge"
S0, S1 = "shardId-000000000000", "shardId-000000000001"


@pytest.fixture(scope="module")
def stream(client):
    """An empty 2-shard stream."""
    name = unique("err")
    create_stream(client, name, 2)
    return name


def _iterator(client, stream, shard=S0):
    return client.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]


# ---- ResourceNotFoundException ---------------------------------------------------
NOT_FOUND_CALLS = [
    ("delete_stream", {}),
    ("describe_stream", {}),
    ("describe_stream_summary", {}),
    ("list_shards", {}),
    ("put_record", {"Data": b"x", "PartitionKey": "k"}),
    ("put_records", {"Records": [{"Data": b"x", "PartitionKey": "k"}]}),
    ("get_shard_iterator", {"ShardId": S0, "ShardIteratorType": "TRIM_HORIZON"}),
    ("split_shard", {"ShardToSplit": S0, "NewStartingHashKey": "100"}),
    ("merge_shards", {"ShardToMerge": S0, "AdjacentShardToMerge": S1}),
    ("update_shard_count", {"TargetShardCount": 2, "ScalingType": "UNIFORM_SCALING"}),
    ("increase_stream_retention_period", {"RetentionPeriodHours": 48}),
    ("decrease_stream_retention_period", {"RetentionPeriodHours": 24}),
    ("add_tags_to_stream", {"Tags": {"a": "b"}}),
    ("list_tags_for_stream", {}),
    ("remove_tags_from_stream", {"TagKeys": ["a"]}),
]


@pytest.mark.parametrize("op,kw", NOT_FOUND_CALLS, ids=[c[0] for c in NOT_FOUND_CALLS])
def test_unknown_stream(client, op, kw):
    expect_error("ResourceNotFoundException", getattr(client, op), StreamName=MISSING, mentions=[MISSING], **kw)


@pytest.mark.parametrize("op,kw", NOT_FOUND_CALLS[:8], ids=[c[0] for c in NOT_FOUND_CALLS[:8]])
def test_unknown_stream_by_arn(client, op, kw):
    expect_error("ResourceNotFoundException", getattr(client, op), StreamARN=ARN_PREFIX + MISSING,
                 mentions=[MISSING], **kw)


def test_unknown_shard(client, stream):
    expect_error("ResourceNotFoundException", client.get_shard_iterator, StreamName=stream,
                 ShardId="shardId-000000000099", ShardIteratorType="TRIM_HORIZON",
                 mentions=["shardId-000000000099"])
    expect_error("ResourceNotFoundException", client.split_shard, StreamName=stream,
                 ShardToSplit="shardId-000000000099", NewStartingHashKey="100")


def test_iterator_of_deleted_stream(client):
    name = unique("gone")
    create_stream(client, name, 1)
    it = _iterator(client, name)
    client.delete_stream(StreamName=name)
    expect_error("ResourceNotFoundException", client.get_records, ShardIterator=it)


def test_create_existing(client, stream):
    expect_error("ResourceInUseException", client.create_stream, StreamName=stream, ShardCount=1, mentions=[stream])


# ---- ValidationException (model constraints) -----------------------------------------
def test_partition_key_length(raw_client, stream):
    expect_error("ValidationException", raw_client.put_record, StreamName=stream, Data=b"x", PartitionKey="",
                 mentions=["partition", "key"])
    expect_error("ValidationException", raw_client.put_record, StreamName=stream, Data=b"x", PartitionKey="k" * 257,
                 mentions=["partition", "key", "256"])
    expect_error("ValidationException", raw_client.put_record, StreamName=stream, Data=b"x", PartitionKey="é" * 257)
    expect_error("ValidationException", raw_client.put_records, StreamName=stream,
                 Records=[{"Data": b"x", "PartitionKey": "ok"}, {"Data": b"x", "PartitionKey": ""}])
    expect_error("ValidationException", raw_client.put_records, StreamName=stream,
                 Records=[{"Data": b"x", "PartitionKey": "k" * 257}])


def test_record_over_1mib(client, stream):
    name = unique("big")
    create_stream(client, name, 1)
    expect_error("ValidationException", client.put_record, StreamName=name,
                 Data=b"a" * (MiB - 3), PartitionKey="four", mentions=["MiB", "1048576", "size", "large", "byte", "exceed"])
    expect_error("ValidationException", client.put_record, StreamName=name,
                 Data=b"a" * (MiB + 1), PartitionKey="k")
    # nothing was stored
    assert read_all(client, name) == {S0: []}
    # exactly 1 MiB in all is fine
    client.put_record(StreamName=name, Data=b"a" * (MiB - 4), PartitionKey="four")


def test_put_records_count(raw_client, client, stream):
    expect_error("ValidationException", raw_client.put_records, StreamName=stream, Records=[])
    expect_error("ValidationException", client.put_records, StreamName=stream,
                 Records=[{"Data": b"x", "PartitionKey": "k"}] * 501, mentions=["500", "records"])


def test_put_records_over_5mib(client):
    name = unique("5mib")
    create_stream(client, name, 1)
    # six records of just under 1 MiB each: each one valid, the request too big in all
    batch = [{"Data": os.urandom(MiB - 100), "PartitionKey": f"k{i}"} for i in range(6)]
    expect_error("InvalidArgumentException", client.put_records, StreamName=name, Records=batch,
                 mentions=["5 MiB", "5MiB", "5242880", "size", "large", "byte", "exceed"])
    assert read_all(client, name) == {S0: []}, "a rejected PutRecords request must store nothing"


def test_get_records_limit(raw_client, client, stream):
    it = _iterator(client, stream)
    expect_error("ValidationException", raw_client.get_records, ShardIterator=it, Limit=0)
    expect_error("ValidationException", raw_client.get_records, ShardIterator=it, Limit=10001,
                 mentions=["limit", "10000"])
    # 10000 is fine
    client.get_records(ShardIterator=it, Limit=10000)


def test_shard_iterator_length(raw_client):
    expect_error("ValidationException", raw_client.get_records, ShardIterator="A" * 513)
    expect_error("ValidationException", raw_client.get_records, ShardIterator="")


def test_invalid_stream_names(raw_client):
    for bad in ("has space", "a" * 129, "slash/", "star*"):
        expect_error("ValidationException", raw_client.describe_stream_summary, StreamName=bad)
        expect_error("ValidationException", raw_client.create_stream, StreamName=bad, ShardCount=1)


# ---- InvalidArgumentException ------------------------------------------------------
def test_malformed_iterators(client):
    for bad in ("garbage!!!", base64.b64encode(os.urandom(120)).decode(), "AAAA", "x" * 300):
        expect_error("InvalidArgumentException", client.get_records, ShardIterator=bad)


def test_tampered_iterator(client, stream):
    it = _iterator(client, stream)
    assert client.get_records(ShardIterator=it)["ResponseMetadata"]["HTTPStatusCode"] == 200
    tried = 0
    for pos in (len(it) // 2, len(it) // 3, (2 * len(it)) // 3):
        c = it[pos]
        repl = "B" if c == "A" else ("A" if c.isalpha() else ("1" if c == "0" else "0"))
        bad = it[:pos] + repl + it[pos + 1:]
        assert bad != it and len(bad) == len(it)
        expect_error("InvalidArgumentException", client.get_records, ShardIterator=bad)
        tried += 1
    assert tried == 3


def test_sequence_number_of_other_shard(client):
    name = unique("seqsh")
    create_stream(client, name, 2)
    r0 = client.put_record(StreamName=name, Data=b"a", PartitionKey="k", ExplicitHashKey="0")
    assert r0["ShardId"] == S0
    client.put_record(StreamName=name, Data=b"b", PartitionKey="k", ExplicitHashKey=str(HASH_SPACE - 1))
    for typ in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
        expect_error("InvalidArgumentException", client.get_shard_iterator, StreamName=name, ShardId=S1,
                     ShardIteratorType=typ, StartingSequenceNumber=r0["SequenceNumber"])
    expect_error("InvalidArgumentException", client.get_shard_iterator, StreamName=name, ShardId=S0,
                 ShardIteratorType="AT_SEQUENCE_NUMBER", StartingSequenceNumber="12345")


def test_explicit_hash_key(raw_client, stream):
    for bad in (str(HASH_SPACE), "notanumber", "-1", "1.5"):
        expect_error("InvalidArgumentException", raw_client.put_record, StreamName=stream, Data=b"x",
                     PartitionKey="k", ExplicitHashKey=bad)


def test_iterator_missing_parameters(client, stream):
    expect_error("InvalidArgumentException", client.get_shard_iterator, StreamName=stream, ShardId=S0,
                 ShardIteratorType="AT_TIMESTAMP", mentions=["timestamp"])
    expect_error("InvalidArgumentException", client.get_shard_iterator, StreamName=stream, ShardId=S0,
                 ShardIteratorType="AT_SEQUENCE_NUMBER", mentions=["sequence"])
    expect_error("InvalidArgumentException", client.get_shard_iterator, StreamName=stream, ShardId=S0,
                 ShardIteratorType="AFTER_SEQUENCE_NUMBER", mentions=["sequence"])


def test_list_shards_name_and_token(client, stream):
    tok = client.list_shards(StreamName=stream, MaxResults=1)["NextToken"]
    expect_error("InvalidArgumentException", client.list_shards, StreamName=stream, NextToken=tok)
    # the token alone works
    assert [s["ShardId"] for s in client.list_shards(NextToken=tok)["Shards"]] == [S1]


# ---- ExpiredIteratorException --------------------------------------------------------
def test_expired_iterator(gateway_factory):
    # 3 s: long enough for a fresh iterator to be used on a busy machine.
    gw = gateway_factory(env={"KINEDGE_ITERATOR_TTL_MS": "3000"}, name="ttl")
    c = gw.client()
    create_stream(c, "ttl", 1)
    c.put_record(StreamName="ttl", Data=b"x", PartitionKey="k")
    it = c.get_shard_iterator(StreamName="ttl", ShardId=S0, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    first = c.get_records(ShardIterator=it)
    assert [r["Data"] for r in first["Records"]] == [b"x"]
    nxt = first["NextShardIterator"]
    time.sleep(3.5)
    expect_error("ExpiredIteratorException", c.get_records, ShardIterator=it, mentions=["expire"])
    expect_error("ExpiredIteratorException", c.get_records, ShardIterator=nxt)
    # a fresh one works
    it2 = c.get_shard_iterator(StreamName="ttl", ShardId=S0, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    assert len(c.get_records(ShardIterator=it2)["Records"]) == 1


# ---- raw protocol ---------------------------------------------------------------------
def test_success_headers(gw):
    r = gw.raw("ListStreams", {})
    assert r.status_code == 200, r.text
    assert r.headers.get("x-amzn-RequestId")
    assert r.headers.get("Content-Type", "").startswith(JSON_CT)
    assert "StreamNames" in r.json()


def test_raw_json_error_shape(gw):
    r = gw.raw("DescribeStream", {"StreamName": MISSING})
    body = assert_raw_error(r, "ResourceNotFoundException", mentions=[MISSING])
    assert set(body) >= {"__type", "message"}


def test_malformed_json(gw):
    for bad in (b'{"StreamName": ', b"not json at all", b"\xff\xfe\x00"):
        r = gw.raw("DescribeStreamSummary", bad)
        assert_raw_error(r, "SerializationException")


def test_malformed_cbor(gw):
    good = cbor2.dumps({"StreamName": "whatever", "Limit": 1})
    for bad in (good[:-3], b"\x1c", b"\xbf\x61"):
        r = gw.raw("DescribeStreamSummary", bad, content_type=CBOR_CT)
        assert_raw_error(r, "SerializationException", json_only=False)


def test_cbor_error_for_cbor_request(gw):
    r = gw.raw("DescribeStreamSummary", {"StreamName": MISSING}, content_type=CBOR_CT)
    assert_raw_error(r, "ResourceNotFoundException", json_only=False, mentions=[MISSING])


def test_unknown_operation(gw):
    r = gw.raw("Kinesis_20131202.NoSuchThing", {})
    assert_raw_error(r, "UnknownOperationException")


@pytest.mark.parametrize("op", ["UpdateAccountSettings", "UpdateStreamWarmThroughput"])
def test_unsupported_operation(gw, op):
    r = gw.raw(op, {"StreamARN": ARN_PREFIX + "x"})
    assert_raw_error(r, "UnknownOperationException", mentions=["not supported"])


def test_wrong_content_type(gw):
    r = gw.raw("ListStreams", "{}", content_type="text/plain")
    assert_raw_error(r, "SerializationException", mentions=["text/plain"])


def test_missing_target(gw):
    r = gw.raw(None, {})
    assert r.status_code == 400, f"HTTP {r.status_code} {r.text[:300]}"
    assert r.headers.get("x-amzn-RequestId")
    body = json.loads(r.content)
    assert body.get("__type"), body
    assert isinstance(body.get("message"), str) and body["message"].strip(), body
