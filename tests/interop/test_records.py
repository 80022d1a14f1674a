"""PutRecord(s) / GetRecords: round trips, routing, iterators, sequence order, CBOR."""

import base64
import datetime as dt
import math
import os
import random
import time

import pytest

from kutil import (ARN_PREFIX, CBOR_CT, HASH_MAX, MiB, Tag1, assert_seq, create_stream,
                   decode_body, even_ranges, expect_error, flatten, list_all_shards, md5_hash,
                   read_all, read_shard, rng, shard_for_hash, unique)

S0 = "shardId-000000000000"


def _get(client, stream, shard, typ="TRIM_HORIZON", limit=10000, **kw):
    it = client.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType=typ, **kw)["ShardIterator"]
    return client.get_records(ShardIterator=it, Limit=limit)


def test_put_get_roundtrip(client):
    name = unique("rt")
    create_stream(client, name, 1)
    payloads = [
        (b"hello", "k1"),
        (bytes(range(256)), "binary"),
        (b"", "empty-data"),
        ("ünïcödé ✓".encode(), "ключ-🔑"),
        (os.urandom(4096), "x" * 256),
        (b"\x00" * 10, "zeros"),
    ]
    t0 = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=2)
    acks = []
    for data, key in payloads:
        r = client.put_record(StreamName=name, Data=data, PartitionKey=key)
        assert r["ShardId"] == S0
        assert r["ResponseMetadata"].get("RequestId")
        acks.append(assert_seq(r["SequenceNumber"]))
    t1 = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=2)
    assert acks == sorted(acks) and len(set(acks)) == len(acks), "sequence numbers not strictly increasing"

    resp = _get(client, name, S0)
    recs = resp["Records"]
    assert [(r["Data"], r["PartitionKey"]) for r in recs] == payloads
    assert [int(r["SequenceNumber"]) for r in recs] == acks
    for r in recs:
        ts = r["ApproximateArrivalTimestamp"]
        assert t0 <= ts <= t1, f"ApproximateArrivalTimestamp {ts} not within [{t0}, {t1}]"
        assert "EncryptionType" not in r or r["EncryptionType"] in ("NONE", "KMS")
    assert resp["MillisBehindLatest"] == 0
    assert resp.get("NextShardIterator"), "open shard must return a NextShardIterator"
    assert "ChildShards" not in resp or resp["ChildShards"] == []
    # The next iterator returns nothing new, still with an iterator.
    again = client.get_records(ShardIterator=resp["NextShardIterator"])
    assert again["Records"] == [] and again["MillisBehindLatest"] == 0 and again.get("NextShardIterator")


def test_routing_by_md5(client):
    name = unique("route")
    create_stream(client, name, 4)
    shards = list_all_shards(client, name)
    assert [rng(s) for s in shards] == even_ranges(4)
    rnd = random.Random(42)
    expected = {}
    for i in range(80):
        key = f"key-{rnd.getrandbits(64):x}-{i}"
        r = client.put_record(StreamName=name, Data=f"single-{i}".encode(), PartitionKey=key)
        want = shard_for_hash(shards, md5_hash(key))
        assert r["ShardId"] == want, f"key {key!r} (md5 {md5_hash(key)}) went to {r['ShardId']}, expected {want}"
        expected[f"single-{i}".encode()] = (want, key, r["SequenceNumber"])

    batch = [{"Data": f"batch-{i}".encode(), "PartitionKey": f"bk-{i}-{rnd.random()}"} for i in range(200)]
    resp = client.put_records(StreamName=name, Records=batch)
    assert resp["FailedRecordCount"] == 0
    assert len(resp["Records"]) == len(batch)
    for req, res in zip(batch, resp["Records"]):
        want = shard_for_hash(shards, md5_hash(req["PartitionKey"]))
        assert res["ShardId"] == want, f"{req['PartitionKey']!r} went to {res['ShardId']}, expected {want}"
        assert_seq(res["SequenceNumber"])
        expected[req["Data"]] = (want, req["PartitionKey"], res["SequenceNumber"])
    assert len({s for s, _, _ in expected.values()}) == 4, "280 random keys should reach all 4 shards"

    # ExplicitHashKey overrides the partition key's hash
    for idx, s in enumerate(shards):
        lo, hi = rng(s)
        for h in (lo, hi, (lo + hi) // 2):
            data = f"ehk-{idx}-{h}".encode()
            r = client.put_record(StreamName=name, Data=data, PartitionKey="same-key", ExplicitHashKey=str(h))
            assert r["ShardId"] == s["ShardId"], f"ExplicitHashKey {h} went to {r['ShardId']}, expected {s['ShardId']}"
            expected[data] = (s["ShardId"], "same-key", r["SequenceNumber"])
    r = client.put_records(StreamName=name, Records=[
        {"Data": b"ehk-batch-max", "PartitionKey": "p", "ExplicitHashKey": str(HASH_MAX)},
        {"Data": b"ehk-batch-0", "PartitionKey": "p", "ExplicitHashKey": "0"},
    ])
    assert [x["ShardId"] for x in r["Records"]] == [shards[-1]["ShardId"], shards[0]["ShardId"]]
    expected[b"ehk-batch-max"] = (shards[-1]["ShardId"], "p", r["Records"][0]["SequenceNumber"])
    expected[b"ehk-batch-0"] = (shards[0]["ShardId"], "p", r["Records"][1]["SequenceNumber"])

    # Reading back: every record in the shard it was acknowledged in, same key and seq.
    got = flatten(read_all(client, name))
    assert len(got) == len(expected)
    for rec in got:
        shard, key, seq = expected[rec["Data"]]
        assert (rec["ShardId"], rec["PartitionKey"], rec["SequenceNumber"]) == (shard, key, seq)


def test_put_records_500_in_order(client):
    name = unique("p500")
    create_stream(client, name, 3)
    batch = [{"Data": f"r{i:04d}".encode() * 10, "PartitionKey": f"k{i % 7}"} for i in range(500)]
    resp = client.put_records(StreamName=name, Records=batch)
    assert resp["FailedRecordCount"] == 0
    assert len(resp["Records"]) == 500
    assert resp["ResponseMetadata"].get("RequestId")
    last = {}
    for i, res in enumerate(resp["Records"]):
        assert "ErrorCode" not in res, res
        seq = assert_seq(res["SequenceNumber"])
        assert seq > last.get(res["ShardId"], -1), f"entry {i}: sequence numbers not increasing in request order"
        last[res["ShardId"]] = seq
    per_shard = read_all(client, name)
    for sid, recs in per_shard.items():
        want = [(b["Data"], b["PartitionKey"], r["SequenceNumber"]) for b, r in zip(batch, resp["Records"]) if r["ShardId"] == sid]
        assert [(r["Data"], r["PartitionKey"], r["SequenceNumber"]) for r in recs] == want


def test_sequence_numbers_increase(client):
    name = unique("seq")
    create_stream(client, name, 2)
    last = {}
    prev_seq = None
    for i in range(60):
        kw = {}
        if prev_seq and i % 2:
            kw["SequenceNumberForOrdering"] = prev_seq
        r = client.put_record(StreamName=name, Data=b"d%d" % i, PartitionKey=f"key{i % 5}", **kw)
        seq = assert_seq(r["SequenceNumber"])
        assert seq > last.get(r["ShardId"], -1)
        last[r["ShardId"]] = seq
        prev_seq = r["SequenceNumber"]
    desc = client.describe_stream(StreamName=name)["StreamDescription"]
    for s in desc["Shards"]:
        start = int(s["SequenceNumberRange"]["StartingSequenceNumber"])
        if s["ShardId"] in last:
            assert start <= last[s["ShardId"]]


def test_iterator_types(client):
    name = unique("iter")
    create_stream(client, name, 1)
    latest = client.get_shard_iterator(StreamName=name, ShardId=S0, ShardIteratorType="LATEST")["ShardIterator"]
    assert 1 <= len(latest) <= 512
    empty = client.get_records(ShardIterator=latest)
    assert empty["Records"] == [] and empty["MillisBehindLatest"] == 0

    seqs = [client.put_record(StreamName=name, Data=b"v%d" % i, PartitionKey="k")["SequenceNumber"] for i in range(5)]
    after_latest = client.get_records(ShardIterator=empty["NextShardIterator"])["Records"]
    assert [r["Data"] for r in after_latest] == [b"v%d" % i for i in range(5)]
    # An iterator obtained before the puts also sees them (LATEST = position at the time it was made)
    assert [r["Data"] for r in client.get_records(ShardIterator=latest)["Records"]] == [b"v%d" % i for i in range(5)]

    # LATEST after the puts sees nothing
    assert _get(client, name, S0, "LATEST")["Records"] == []

    at = _get(client, name, S0, "AT_SEQUENCE_NUMBER", StartingSequenceNumber=seqs[2])["Records"]
    assert [r["SequenceNumber"] for r in at] == seqs[2:]
    aft = _get(client, name, S0, "AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=seqs[2])["Records"]
    assert [r["SequenceNumber"] for r in aft] == seqs[3:]
    aft_last = _get(client, name, S0, "AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=seqs[-1])
    assert aft_last["Records"] == [] and aft_last["MillisBehindLatest"] == 0
    th = _get(client, name, S0, "TRIM_HORIZON")["Records"]
    assert [r["SequenceNumber"] for r in th] == seqs
    # the shard's own StartingSequenceNumber is a valid AT_SEQUENCE_NUMBER position
    start = client.describe_stream(StreamName=name)["StreamDescription"]["Shards"][0]["SequenceNumberRange"]["StartingSequenceNumber"]
    frm = _get(client, name, S0, "AT_SEQUENCE_NUMBER", StartingSequenceNumber=start)["Records"]
    assert [r["SequenceNumber"] for r in frm] == seqs


def test_at_timestamp(client):
    name = unique("ts")
    create_stream(client, name, 1)
    t_before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5)
    a = [client.put_record(StreamName=name, Data=b"A%d" % i, PartitionKey="k")["SequenceNumber"] for i in range(3)]
    # boto3 sends whole seconds: wait for the next second boundary
    boundary = math.floor(time.time()) + 1
    time.sleep(max(0.0, boundary - time.time()) + 0.05)
    b = [client.put_record(StreamName=name, Data=b"B%d" % i, PartitionKey="k")["SequenceNumber"] for i in range(3)]
    ts = dt.datetime.fromtimestamp(boundary, dt.timezone.utc)

    got = _get(client, name, S0, "AT_TIMESTAMP", Timestamp=ts)["Records"]
    assert [r["SequenceNumber"] for r in got] == b
    got = _get(client, name, S0, "AT_TIMESTAMP", Timestamp=t_before)["Records"]
    assert [r["SequenceNumber"] for r in got] == a + b
    future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    resp = _get(client, name, S0, "AT_TIMESTAMP", Timestamp=future)
    assert resp["Records"] == []


def test_at_timestamp_millisecond_precision_raw_json(gw, client):
    """Raw JSON: timestamps are epoch seconds as floats; AT_TIMESTAMP honours milliseconds."""
    name = unique("tsms")
    create_stream(client, name, 1)
    for i in range(6):
        client.put_record(StreamName=name, Data=b"m%d" % i, PartitionKey="k")
        time.sleep(0.02)
    it = decode_body(gw.raw("GetShardIterator", {"StreamName": name, "ShardId": S0, "ShardIteratorType": "TRIM_HORIZON"}))["ShardIterator"]
    r = gw.raw("GetRecords", {"ShardIterator": it})
    assert r.status_code == 200, r.text
    assert "json" in r.headers["Content-Type"]
    assert r.headers.get("x-amzn-RequestId")
    body = r.json()
    recs = body["Records"]
    assert [base64.b64decode(x["Data"]) for x in recs] == [b"m%d" % i for i in range(6)]
    for x in recs:
        assert isinstance(x["ApproximateArrivalTimestamp"], (int, float))
        assert abs(x["ApproximateArrivalTimestamp"] - time.time()) < 120, "JSON timestamps are epoch seconds"
    stamps = [x["ApproximateArrivalTimestamp"] for x in recs]
    assert stamps == sorted(stamps)
    i = next(i for i in range(3, 6) if stamps[i] > stamps[i - 1])
    it2 = decode_body(gw.raw("GetShardIterator", {"StreamName": name, "ShardId": S0, "ShardIteratorType": "AT_TIMESTAMP",
                                                  "Timestamp": stamps[i]}))["ShardIterator"]
    got = gw.raw("GetRecords", {"ShardIterator": it2}).json()["Records"]
    assert got and got[0]["SequenceNumber"] == recs[i]["SequenceNumber"], \
        f"AT_TIMESTAMP {stamps[i]} should start at record {i}; got {[g['SequenceNumber'] for g in got][:3]}"


def test_get_records_limit_and_lag(client):
    name = unique("lim")
    create_stream(client, name, 1)
    seqs = [client.put_record(StreamName=name, Data=b"%d" % i, PartitionKey="k")["SequenceNumber"] for i in range(7)]
    it = client.get_shard_iterator(StreamName=name, ShardId=S0, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    pages = []
    for _ in range(10):
        resp = client.get_records(ShardIterator=it, Limit=3)
        assert len(resp["Records"]) <= 3
        assert isinstance(resp["MillisBehindLatest"], int) and resp["MillisBehindLatest"] >= 0
        pages.append([r["SequenceNumber"] for r in resp["Records"]])
        it = resp["NextShardIterator"]
        assert it and len(it) <= 512
        if not resp["Records"]:
            break
    assert pages[:3] == [seqs[0:3], seqs[3:6], seqs[6:7]]
    assert resp["MillisBehindLatest"] == 0


def test_iterator_reusable_and_bounded(client):
    name = unique("reuse")
    create_stream(client, name, 1)
    client.put_record(StreamName=name, Data=b"x", PartitionKey="k")
    it = client.get_shard_iterator(StreamName=name, ShardId=S0, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    assert 1 <= len(it) <= 512
    first = client.get_records(ShardIterator=it)["Records"]
    second = client.get_records(ShardIterator=it)["Records"]
    assert [r["Data"] for r in first] == [r["Data"] for r in second] == [b"x"]


def test_largest_record_and_key(client):
    name = unique("big")
    create_stream(client, name, 1)
    key = "é" * 256  # 256 characters (512 UTF-8 bytes): the maximum
    r1 = client.put_record(StreamName=name, Data=b"small", PartitionKey=key)
    small_key = "k"
    data = os.urandom(MiB - len(small_key))  # data + key == 1 MiB exactly
    r2 = client.put_record(StreamName=name, Data=data, PartitionKey=small_key)
    recs, _ = read_shard(client, name, S0)
    assert [(r["SequenceNumber"], r["PartitionKey"], r["Data"]) for r in recs] == [
        (r1["SequenceNumber"], key, b"small"), (r2["SequenceNumber"], small_key, data)]


def test_put_records_near_5mib_total(client):
    name = unique("5m")
    create_stream(client, name, 2)
    # 5 records of 1 MiB - 64 bytes each: under 5 MiB in all
    batch = [{"Data": os.urandom(MiB - 64), "PartitionKey": f"k{i}"} for i in range(5)]
    resp = client.put_records(StreamName=name, Records=batch)
    assert resp["FailedRecordCount"] == 0
    got = {r["Data"] for r in flatten(read_all(client, name))}
    assert got == {b["Data"] for b in batch}


# ---- CBOR ----------------------------------------------------------------------
def _cbor(gw, op, body):
    r = gw.raw(op, body, content_type=CBOR_CT)
    assert r.status_code == 200, f"{op} over CBOR: HTTP {r.status_code} {r.content[:300]!r}"
    assert "cbor" in r.headers.get("Content-Type", ""), f"{op}: answered {r.headers.get('Content-Type')!r} to a CBOR request"
    assert r.headers.get("x-amzn-RequestId")
    return decode_body(r)


def test_cbor_put_and_get(gw, client):
    name = unique("cbor")
    create_stream(client, name, 1)
    payload = b"\x00\x01\xffcbor-binary\x80"
    put = _cbor(gw, "PutRecord", {"StreamName": name, "Data": payload, "PartitionKey": "ck"})
    assert put["ShardId"] == S0
    seq = assert_seq(put["SequenceNumber"])
    put2 = _cbor(gw, "PutRecords", {"StreamName": name, "Records": [
        {"Data": b"second", "PartitionKey": "ck"}, {"Data": b"", "PartitionKey": "ck"}]})
    assert put2["FailedRecordCount"] == 0 and len(put2["Records"]) == 2

    it = _cbor(gw, "GetShardIterator", {"StreamName": name, "ShardId": S0, "ShardIteratorType": "TRIM_HORIZON"})["ShardIterator"]
    assert isinstance(it, str)
    got = _cbor(gw, "GetRecords", {"ShardIterator": it, "Limit": 100})
    recs = got["Records"]
    assert [r["Data"] for r in recs] == [payload, b"second", b""]
    assert all(isinstance(r["Data"], bytes) for r in recs), "CBOR Data must be a byte string"
    assert int(recs[0]["SequenceNumber"]) == seq
    assert recs[0]["PartitionKey"] == "ck"
    now_ms = time.time() * 1000
    for r in recs:
        ts = r["ApproximateArrivalTimestamp"]
        if isinstance(ts, Tag1):
            ts = ts.value
        assert isinstance(ts, int) and not isinstance(ts, bool), f"CBOR ApproximateArrivalTimestamp {ts!r} is not an integer"
        assert abs(ts - now_ms) < 120_000, f"ApproximateArrivalTimestamp {ts} is not epoch milliseconds (now {now_ms:.0f})"
    assert got["MillisBehindLatest"] == 0
    assert isinstance(got["NextShardIterator"], str)

    # The same records through boto3/JSON are identical.
    assert [r["Data"] for r in _get(client, name, S0)["Records"]] == [payload, b"second", b""]


def test_cbor_describe_and_list(gw, client):
    name = unique("cbord")
    create_stream(client, name, 2)
    s = _cbor(gw, "DescribeStreamSummary", {"StreamName": name})["StreamDescriptionSummary"]
    assert s["StreamName"] == name and s["OpenShardCount"] == 2 and s["StreamARN"] == ARN_PREFIX + name
    ts = s["StreamCreationTimestamp"]
    ts = ts.value if isinstance(ts, Tag1) else ts
    assert isinstance(ts, int) and abs(ts - time.time() * 1000) < 600_000, f"CBOR StreamCreationTimestamp {ts!r}"
    names = _cbor(gw, "ListStreams", {})["StreamNames"]
    assert name in names
    # an operation with no output: empty 200
    r = gw.raw("AddTagsToStream", {"StreamName": name, "Tags": {"t": "v"}}, content_type=CBOR_CT)
    assert r.status_code == 200, r.content[:300]
    assert client.list_tags_for_stream(StreamName=name)["Tags"] == [{"Key": "t", "Value": "v"}]
