"""Error codes, messages and the raw error wire format.

Where a test asserts a whole message, the message is AWS's (docs/kinesis-api.md, "Validation
and errors"); `raw_client` is boto3 with its own parameter validation off, so that the
gateway's validation is what answers."""

import base64
import json
import os
import re
import time

import botocore.loaders
import cbor2
import pytest

from kutil import (ACCOUNT, ARN_PREFIX, CBOR_CT, HASH_SPACE, JSON_CT, MiB, assert_raw_error,
                   create_stream, decode_body, expect_error, read_all, unique)

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
    # in the model's pattern but 2^128 or more: the operation refuses it
    exact("InvalidArgumentException",
          f"Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was {HASH_SPACE}",
          raw_client.put_record, StreamName=stream, Data=b"x", PartitionKey="k", ExplicitHashKey=str(HASH_SPACE))
    # outside the pattern: the model refuses it
    for bad in ("notanumber", "-1", "1.5", "01"):
        exact("ValidationException",
              f"1 validation error detected: Value '{bad}' at 'explicitHashKey' failed to satisfy constraint: "
              "Member must satisfy regular expression pattern: 0|([1-9]\\d{0,38})",
              raw_client.put_record, StreamName=stream, Data=b"x", PartitionKey="k", ExplicitHashKey=bad)


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
    resp = expect_error("ExpiredIteratorException", c.get_records, ShardIterator=it)
    date = r"[A-Z][a-z]{2} [A-Z][a-z]{2} \d{2} \d{2}:\d{2}:\d{2} UTC \d{4}"
    assert re.fullmatch(f"Iterator expired. The iterator was created at time {date} while right now it is {date} "
                        "which is further in the future than the tolerated delay of 3000 milliseconds.",
                        resp["Error"]["Message"]), resp["Error"]["Message"]
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


# ---- AWS's wording, rule family by rule family -------------------------------------------
def exact(code, message, fn, **kw):
    """Call fn, expect error `code` with exactly `message`."""
    resp = expect_error(code, fn, **kw)
    assert resp["Error"]["Message"] == message
    return resp


def _v(*failures):
    n = len(failures)
    return f"{n} validation error{'s' if n > 1 else ''} detected: " + "; ".join(failures)


NAME_PATTERN = "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"


def test_validation_lists_every_failure_in_model_order(raw_client):
    exact("ValidationException", _v(
        "Value null at 'streamName' failed to satisfy constraint: Member must not be null",
        f"Value 'a b' at 'shardId' failed to satisfy constraint: {NAME_PATTERN}",
    ), raw_client.get_shard_iterator, ShardId="a b", ShardIteratorType="LATEST")
    exact("ValidationException", _v(
        f"Value '' at 'streamName' failed to satisfy constraint: {NAME_PATTERN}",
        "Value '' at 'streamName' failed to satisfy constraint: Member must have length greater than or equal to 1",
        "Value '0' at 'shardCount' failed to satisfy constraint: Member must have value greater than or equal to 1",
    ), raw_client.create_stream, StreamName="", ShardCount=0)
    exact("ValidationException", _v(
        "Value null at 'streamName' failed to satisfy constraint: Member must not be null",
        "Value null at 'shardToMerge' failed to satisfy constraint: Member must not be null",
        "Value null at 'adjacentShardToMerge' failed to satisfy constraint: Member must not be null",
    ), raw_client.merge_shards)


def test_validation_lengths_ranges_enums(raw_client, client, stream):
    it = _iterator(client, stream)
    exact("ValidationException", _v(
        "Value '10001' at 'limit' failed to satisfy constraint: Member must have value less than or equal to 10000",
    ), raw_client.get_records, ShardIterator=it, Limit=10001)
    long_it = "A" * 513
    exact("ValidationException", _v(
        f"Value '{long_it}' at 'shardIterator' failed to satisfy constraint: Member must have length less than or equal to 512",
        "Value '0' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1",
    ), raw_client.get_records, ShardIterator=long_it, Limit=0)
    exact("ValidationException", _v(
        "Value 'SOMETIME' at 'shardIteratorType' failed to satisfy constraint: Member must satisfy enum value set: "
        "[AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER, TRIM_HORIZON, LATEST, AT_TIMESTAMP]",
    ), raw_client.get_shard_iterator, StreamName=stream, ShardId=S0, ShardIteratorType="SOMETIME")
    exact("ValidationException", _v(
        "Value 'FAST' at 'scalingType' failed to satisfy constraint: Member must satisfy enum value set: [UNIFORM_SCALING]",
    ), raw_client.update_shard_count, StreamName=stream, TargetShardCount=2, ScalingType="FAST")
    name = "n" * 129
    exact("ValidationException", _v(
        f"Value '{name}' at 'streamName' failed to satisfy constraint: Member must have length less than or equal to 128",
    ), raw_client.describe_stream_summary, StreamName=name)
    # integers are shown as the 32-bit value AWS reads
    exact("ValidationException", _v(
        "Value '2147483647' at 'limit' failed to satisfy constraint: Member must have value less than or equal to 10000",
    ), raw_client.list_streams, Limit=2**40)


def test_validation_nested_members(raw_client, stream):
    exact("ValidationException", _v(
        "Value 'x' at 'records.2.member.explicitHashKey' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: 0|([1-9]\\d{0,38})",
        "Value '' at 'records.2.member.partitionKey' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1",
    ), raw_client.put_records, StreamName=stream,
        Records=[{"Data": b"x", "PartitionKey": "ok"}, {"Data": b"x", "PartitionKey": "", "ExplicitHashKey": "x"}])
    exact("ValidationException", _v(
        "Value null at 'shardFilter.type' failed to satisfy constraint: Member must not be null",
    ), raw_client.list_shards, StreamName=stream, ShardFilter={"ShardId": S0})
    exact("ValidationException", _v(
        "Value 'FAST' at 'streamModeDetails.streamMode' failed to satisfy constraint: "
        "Member must satisfy enum value set: [PROVISIONED, ON_DEMAND]",
    ), raw_client.create_stream, StreamName=unique("mode"), ShardCount=1, StreamModeDetails={"StreamMode": "FAST"})
    # values shown as AWS shows them: a blob as the Java byte buffer, a list of entries by their class
    exact("ValidationException", _v(
        f"Value 'java.nio.HeapByteBuffer[pos=0 lim={MiB + 1} cap={MiB + 1}]' at 'data' failed to satisfy constraint: "
        "Member must have length less than or equal to 1048576",
    ), raw_client.put_record, StreamName=stream, Data=b"a" * (MiB + 1), PartitionKey="k")
    resp = expect_error("ValidationException", raw_client.put_records, StreamName=stream,
                        Records=[{"Data": b"", "PartitionKey": ""}] * 501)
    msg = resp["Error"]["Message"]
    entry = "com.amazonaws.kinesis.v20131202.PutRecordsRequestEntry@c965e310"
    assert msg.startswith(f"10 validation errors detected: Value '[{entry}, {entry}, "), msg[:200]
    assert "at 'records' failed to satisfy constraint: Member must have length less than or equal to 500; " in msg
    assert msg.endswith("Value '' at 'records.9.member.partitionKey' failed to satisfy constraint: "
                        "Member must have length greater than or equal to 1"), msg[-200:]


def test_serialization_type_errors(gw):
    cases = [
        ("GetShardIterator", {"StreamName": "s", "ShardId": S0, "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": "23"},
         "class java.lang.String can not be converted to milliseconds since epoch"),
        ("ListShards", {"StreamName": "s", "ShardFilter": {"Type": "AT_TIMESTAMP", "Timestamp": "1700000000"}},
         "class java.lang.String can not be converted to milliseconds since epoch"),
        ("DescribeStream", {"StreamName": 23},
         "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String"),
        ("DescribeStream", {"StreamName": "s", "Limit": "5"}, "class java.lang.String can not be converted to an Integer"),
        ("DescribeStream", {"StreamName": ["s"]}, "Start of list found where not expected"),
        ("PutRecords", {"StreamName": "s", "Records": "x"}, "Expected list or null"),
        ("AddTagsToStream", {"StreamName": "s", "Tags": 1}, "Expected map or null"),
    ]
    for op, body, message in cases:
        got = assert_raw_error(gw.raw(op, body), "SerializationException")
        assert got["message"] == message, (op, body, got)


def test_tags_as_aws_refuses_them(raw_client, client):
    name = unique("tags")
    create_stream(client, name, 1)
    invalid = ("Some tags contain invalid characters. Valid characters: "
               "Unicode letters, digits, white space, _ . / = + - % @.")
    for tags in ({"abc;def": "1"}, {"a\tb": "1"}, {"a": "x,y"}, {"a": "line\nbreak"}):
        exact("InvalidArgumentException", invalid, raw_client.add_tags_to_stream, StreamName=name, Tags=tags)
    exact("InvalidArgumentException", invalid, raw_client.remove_tags_from_stream, StreamName=name, TagKeys=["a;b"])
    key = "k" * 129
    exact("ValidationException", _v(
        f"Value '{{{key}=v}}' at 'tags' failed to satisfy constraint: Map keys must satisfy constraint: "
        "[Member must have length less than or equal to 128, Member must have length greater than or equal to 1]",
    ), raw_client.add_tags_to_stream, StreamName=name, Tags={key: "v"})
    value = "v" * 257
    exact("ValidationException", _v(
        f"Value '{{a={value}}}' at 'tags' failed to satisfy constraint: Map value must satisfy constraint: "
        "[Member must have length less than or equal to 256, Member must have length greater than or equal to 0]",
    ), raw_client.add_tags_to_stream, StreamName=name, Tags={"a": value})
    eleven = {f"t{i:02d}": "v" for i in range(11)}
    shown = ", ".join(f"{k}=v" for k in sorted(eleven))
    exact("ValidationException", _v(
        f"Value '{{{shown}}}' at 'tags' failed to satisfy constraint: Member must have length less than or equal to 10",
    ), raw_client.add_tags_to_stream, StreamName=name, Tags=eleven)
    # valid characters pass: letters of any script, digits, spaces, _ . / = + - % @
    client.add_tags_to_stream(StreamName=name, Tags={"ü0 _.": "a", "/=+-@%": "名前", "c": ""})
    for start in range(0, 40, 10):
        client.add_tags_to_stream(StreamName=name, Tags={f"n{i:02d}": "v" for i in range(start, start + 10)})
    exact("InvalidArgumentException",
          f"Failed to add tags to stream {name} under account {ACCOUNT} because a given stream cannot have more "
          "than 50 tags associated with it.",
          client.add_tags_to_stream, StreamName=name, Tags={f"z{i}": "v" for i in range(8)})
    other = unique("tags51")
    exact("InvalidArgumentException",
          f"Failed to add tags to stream {other} under account {ACCOUNT} because a given stream cannot have more "
          "than 50 tags associated with it.",
          raw_client.create_stream, StreamName=other, ShardCount=1, Tags={f"t{i}": "v" for i in range(51)})


def test_sequence_numbers_as_aws_checks_them(raw_client, client):
    name = unique("seqchk")
    create_stream(client, name, 1)
    exact("InvalidArgumentException",
          f"ExclusiveMinimumSequenceNumber 12345 used in PutRecord on stream {name} under account {ACCOUNT} is invalid.",
          raw_client.put_record, StreamName=name, Data=b"x", PartitionKey="k", SequenceNumberForOrdering="12345")
    exact("ValidationException", _v(
        "Value 'abc' at 'sequenceNumberForOrdering' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: 0|([1-9]\\d{0,128})",
    ), raw_client.put_record, StreamName=name, Data=b"x", PartitionKey="k", SequenceNumberForOrdering="abc")
    first = client.put_record(StreamName=name, Data=b"a", PartitionKey="k")["SequenceNumber"]
    # a sequence number this gateway issued orders the next record
    client.put_record(StreamName=name, Data=b"b", PartitionKey="k", SequenceNumberForOrdering=first)
    both = ("Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or "
            "(2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. Request specified {} and {} StartingSequenceNumber.")
    for typ in ("LATEST", "TRIM_HORIZON"):
        exact("InvalidArgumentException", both.format(typ, "also a"), client.get_shard_iterator,
              StreamName=name, ShardId=S0, ShardIteratorType=typ, StartingSequenceNumber=first)
    for typ in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
        exact("InvalidArgumentException", both.format(typ, "no"), client.get_shard_iterator,
              StreamName=name, ShardId=S0, ShardIteratorType=typ)
    exact("InvalidArgumentException",
          f"StartingSequenceNumber 12345 used in GetShardIterator on shard {S0} in stream {name} under account "
          f"{ACCOUNT} is invalid.",
          client.get_shard_iterator, StreamName=name, ShardId=S0, ShardIteratorType="AT_SEQUENCE_NUMBER",
          StartingSequenceNumber="12345")


def test_shard_ids_resolved_as_aws(client):
    name = unique("sid")
    create_stream(client, name, 2)
    client.put_record(StreamName=name, Data=b"one", PartitionKey="k", ExplicitHashKey=str(HASH_SPACE - 1))
    for shard in ("shardId-000000000001", "1", "abc-000000000001", "shardId-1"):
        it = client.get_shard_iterator(StreamName=name, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        assert [r["Data"] for r in client.get_records(ShardIterator=it)["Records"]] == [b"one"], shard
    exact("ResourceNotFoundException",
          f"Shard shardId-000000000009 in stream {name} under account {ACCOUNT} does not exist",
          client.get_shard_iterator, StreamName=name, ShardId="x-9", ShardIteratorType="LATEST")
    exact("ResourceNotFoundException",
          f"Could not find shard ABKLFD8 in stream {name} under account {ACCOUNT}.",
          client.get_shard_iterator, StreamName=name, ShardId="ABKLFD8", ShardIteratorType="LATEST")
    exact("ResourceNotFoundException",
          f"Could not find shard shardId-000000000005 in stream {name} under account {ACCOUNT}.",
          client.split_shard, StreamName=name, ShardToSplit="shardId-5", NewStartingHashKey="100")
    # listings start after the shard an ExclusiveStartShardId names; an id without a shard
    # number goes by the order of shard ids
    for start, want in (("1", []), ("abc-0", ["shardId-000000000001"]), ("a", [S0, "shardId-000000000001"]),
                        ("zzz", [])):
        got = [s["ShardId"] for s in client.list_shards(StreamName=name, ExclusiveStartShardId=start)["Shards"]]
        assert got == want, (start, got)
        got = client.describe_stream(StreamName=name, ExclusiveStartShardId=start)["StreamDescription"]["Shards"]
        assert [s["ShardId"] for s in got] == want, (start, got)
    # 'abc-0' matches the ShardId pattern and names shard 0
    client.split_shard(StreamName=name, ShardToSplit="abc-0", NewStartingHashKey=str(HASH_SPACE // 4))
    ids = [s["ShardId"] for s in client.list_shards(StreamName=name)["Shards"]]
    assert ids == [f"shardId-00000000000{i}" for i in range(4)], ids


def test_merge_and_split_refusals(client):
    name = unique("merge")
    create_stream(client, name, 3)
    # AWS merges a shard with the one after it, not in the other order
    exact("InvalidArgumentException",
          f"Shards shardId-000000000001 and shardId-000000000000 in stream {name} under account {ACCOUNT} "
          "are not an adjacent pair of shards eligible for merging",
          client.merge_shards, StreamName=name, ShardToMerge="shardId-000000000001", AdjacentShardToMerge=S0)
    exact("InvalidArgumentException",
          f"Shards shardId-000000000000 and shardId-000000000002 in stream {name} under account {ACCOUNT} "
          "are not an adjacent pair of shards eligible for merging",
          client.merge_shards, StreamName=name, ShardToMerge=S0, AdjacentShardToMerge="2")
    end0 = client.list_shards(StreamName=name)["Shards"][0]["HashKeyRange"]["EndingHashKey"]
    for key in ("1", end0):
        exact("InvalidArgumentException",
              f"NewStartingHashKey {key} used in SplitShard() on shard {S0} in stream {name} under account {ACCOUNT} "
              f"is not both greater than one plus the shard's StartingHashKey 0 and less than the shard's "
              f"EndingHashKey {end0}.",
              client.split_shard, StreamName=name, ShardToSplit=S0, NewStartingHashKey=key)
    client.merge_shards(StreamName=name, ShardToMerge=S0, AdjacentShardToMerge="shard-1")
    exact("ResourceInUseException",
          f"Shard {S0} in stream {name} under account {ACCOUNT} has already been merged or split, and thus is "
          "not eligible for merging or splitting.",
          client.split_shard, StreamName=name, ShardToSplit=S0, NewStartingHashKey="100")


def test_list_shards_needs_a_stream_or_token(raw_client, client, stream):
    exact("InvalidArgumentException", "Either NextToken or StreamName should be provided.", raw_client.list_shards)
    token = client.list_shards(StreamName=stream, MaxResults=1)["NextToken"]
    exact("InvalidArgumentException", "NextToken and StreamName cannot be provided together.",
          client.list_shards, StreamARN=ARN_PREFIX + stream, NextToken=token)
    exact("InvalidArgumentException", "NextToken and ExclusiveStartShardId cannot be provided together.",
          client.list_shards, ExclusiveStartShardId=S0, NextToken=token)
    exact("InvalidArgumentException", "NextToken and StreamCreationTimestamp cannot be provided together.",
          client.list_shards, StreamCreationTimestamp=1_700_000_000, NextToken=token)


def test_not_found_and_retention_messages(client, raw_client):
    exact("ResourceNotFoundException", f"Stream {MISSING} under account {ACCOUNT} not found.",
          client.describe_stream, StreamName=MISSING)
    name = unique("retmsg")
    create_stream(client, name, 1)
    exact("InvalidArgumentException",
          "Minimum allowed retention period is 24 hours. Requested retention period (23 hours) is too short.",
          client.increase_stream_retention_period, StreamName=name, RetentionPeriodHours=23)
    exact("InvalidArgumentException",
          "Maximum allowed retention period is 8760 hours. Requested retention period (8761 hours) is too long.",
          client.increase_stream_retention_period, StreamName=name, RetentionPeriodHours=8761)
    exact("InvalidArgumentException",
          f"Requested retention period (48 hours) for stream {name} can not be longer than existing retention "
          "period (24 hours). Use IncreaseRetentionPeriod API.",
          client.decrease_stream_retention_period, StreamName=name, RetentionPeriodHours=48)
    exact("ValidationException", _v(
        "Value null at 'retentionPeriodHours' failed to satisfy constraint: Member must not be null",
    ), raw_client.increase_stream_retention_period, StreamName=name)
    exact("InvalidArgumentException", "Invalid ShardIterator.", client.get_records, ShardIterator="garbage!!!")


def test_extended_request_id_header(gw):
    for r in (gw.raw("ListStreams", {}), gw.raw("DescribeStream", {"StreamName": MISSING})):
        value = r.headers.get("x-amz-id-2")
        assert value and r.headers.get("x-amzn-RequestId"), dict(r.headers)
        assert len(base64.b64decode(value, validate=True)) >= 32, value


# ---- the whole model, read from botocore ---------------------------------------------------
IMPLEMENTED = ["CreateStream", "DeleteStream", "DescribeStream", "DescribeStreamSummary", "ListStreams",
               "IncreaseStreamRetentionPeriod", "DecreaseStreamRetentionPeriod", "AddTagsToStream",
               "ListTagsForStream", "RemoveTagsFromStream", "ListShards", "SplitShard", "MergeShards",
               "UpdateShardCount", "PutRecord", "PutRecords", "GetShardIterator", "GetRecords",
               "TagResource", "UntagResource", "ListTagsForResource", "UpdateStreamMode",
               "EnableEnhancedMonitoring", "DisableEnhancedMonitoring", "PutResourcePolicy",
               "GetResourcePolicy", "DeleteResourcePolicy", "RegisterStreamConsumer",
               "DeregisterStreamConsumer", "DescribeStreamConsumer", "ListStreamConsumers", "SubscribeToShard"]
# Members kinedge does not take (StreamId is AWS-internal; warm throughput and record size
# cannot be changed on kinedge streams).
NOT_TAKEN = {"StreamId", "WarmThroughputMiBps", "MaxRecordSizeInKiB"}


def _model_case(shapes, input_shape, case):
    """A body breaking every top-level string and integer member of `input_shape` (case
    "short": empty strings, integers below their minimum; "long": strings over their maximum,
    integers over theirs; required members of other types left out), and the failures AWS's
    model validation lists for it, in the model's member order."""
    body, failures = {}, []
    required = set(input_shape.get("required", []))
    for member, ref in input_shape["members"].items():
        if member in NOT_TAKEN:
            continue
        shape = shapes[ref["shape"]]
        path = member[0].lower() + member[1:]
        value = None
        if shape["type"] == "string" and case == "short" and (shape.get("min", 0) >= 1 or "pattern" in shape
                                                               or "enum" in shape):
            value = ""
        elif shape["type"] == "string" and case == "long" and shape.get("max", 10**9) <= 4096:
            value = "x" * (shape["max"] + 1)
        elif shape["type"] == "integer" and case == "short" and "min" in shape:
            value = shape["min"] - 1
        elif shape["type"] == "integer" and case == "long" and "max" in shape:
            value = shape["max"] + 1
        if value is None:
            if member in required:
                failures.append(f"Value null at '{path}' failed to satisfy constraint: Member must not be null")
            continue
        body[member] = value
        at = f"Value '{value}' at '{path}' failed to satisfy constraint: "
        if shape["type"] == "integer":
            if value < shape.get("min", value):
                failures.append(at + f"Member must have value greater than or equal to {shape['min']}")
            if value > shape.get("max", value):
                failures.append(at + f"Member must have value less than or equal to {shape['max']}")
            continue
        if "pattern" in shape and not re.fullmatch(shape["pattern"], value):
            failures.append(at + f"Member must satisfy regular expression pattern: {shape['pattern']}")
        if len(value) < shape.get("min", 0):
            failures.append(at + f"Member must have length greater than or equal to {shape['min']}")
        if len(value) > shape.get("max", len(value)):
            failures.append(at + f"Member must have length less than or equal to {shape['max']}")
        if "enum" in shape and value not in shape["enum"]:
            failures.append(at + f"Member must satisfy enum value set: [{', '.join(shape['enum'])}]")
    return body, failures[:10]


@pytest.mark.parametrize("case", ["short", "long"])
@pytest.mark.parametrize("op", IMPLEMENTED)
def test_validation_follows_the_botocore_model(gw, op, case):
    """Every implemented operation answers the failures botocore's service model predicts, all in
    one message, in the model's member order and AWS's wording."""
    model = botocore.loaders.create_loader().load_service_model("kinesis", "service-2")
    shapes = model["shapes"]
    input_shape = shapes[model["operations"][op]["input"]["shape"]]
    body, failures = _model_case(shapes, input_shape, case)
    r = gw.raw(op, body)
    if not failures:
        assert r.status_code != 400 or r.json().get("__type") != "ValidationException", r.text
        return
    got = assert_raw_error(r, "ValidationException")
    assert got["message"] == _v(*failures), f"{op} {body}"
