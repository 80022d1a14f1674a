"""SplitShard, MergeShards, UpdateShardCount, ListShards filters, reading across reshards."""

import datetime as dt
import time

from kutil import (HASH_MAX, HASH_SPACE, assert_covers_hash_space, assert_seq, create_stream,
                   expect_error, flatten, is_open, list_all_shards, md5_hash, read_all,
                   read_shard, rng, shard_for_hash, unique, wait_active)


def sid(i):
    return f"shardId-{i:012d}"


def by_id(shards):
    return {s["ShardId"]: s for s in shards}


def put_keys(client, name, prefix, n):
    """PutRecord n records with keys prefix-0.. ; returns [(data, key, shard, seq)]."""
    out = []
    for i in range(n):
        key, data = f"{prefix}-{i}", f"{prefix}:{i}".encode()
        r = client.put_record(StreamName=name, Data=data, PartitionKey=key)
        out.append((data, key, r["ShardId"], r["SequenceNumber"]))
    return out


def check_routing(client, name, acks):
    shards = list_all_shards(client, name)
    for data, key, shard, _ in acks:
        assert shard == shard_for_hash(shards, md5_hash(key)), f"{key!r} routed to {shard}"


def check_read_back(client, name, acks):
    recs = flatten(read_all(client, name))
    assert len(recs) == len(acks), f"read {len(recs)} records, {len(acks)} were acknowledged"
    got = {r["Data"]: r for r in recs}
    for data, key, shard, seq in acks:
        r = got.get(data)
        assert r is not None, f"record {data!r} missing"
        assert (r["ShardId"], r["PartitionKey"], r["SequenceNumber"]) == (shard, key, seq)


def test_split_shard(client):
    name = unique("split")
    create_stream(client, name, 1)
    before = put_keys(client, name, "pre", 10)
    mid = 2**127
    r = client.split_shard(StreamName=name, ShardToSplit=sid(0), NewStartingHashKey=str(mid))
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    wait_active(client, name)
    d = client.describe_stream(StreamName=name)["StreamDescription"]
    assert d["StreamStatus"] == "ACTIVE"
    sh = by_id(d["Shards"])
    assert sorted(sh) == [sid(0), sid(1), sid(2)]
    parent = sh[sid(0)]
    assert not is_open(parent), "split parent must get an EndingSequenceNumber"
    end_seq = assert_seq(parent["SequenceNumberRange"]["EndingSequenceNumber"])
    assert end_seq >= max(int(s) for *_, s in before)
    assert rng(parent) == (0, HASH_MAX)
    for c, want in ((sid(1), (0, mid - 1)), (sid(2), (mid, HASH_MAX))):
        assert sh[c]["ParentShardId"] == sid(0)
        assert "AdjacentParentShardId" not in sh[c]
        assert rng(sh[c]) == want
        assert is_open(sh[c])
        assert_seq(sh[c]["SequenceNumberRange"]["StartingSequenceNumber"])
    s = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert s["OpenShardCount"] == 2

    after = put_keys(client, name, "post", 30)
    assert {a[2] for a in after} == {sid(1), sid(2)}
    check_routing(client, name, after)

    # The parent still holds exactly the pre-split records, then ends with ChildShards.
    recs, last = read_shard(client, name, sid(0))
    assert [(r["Data"], r["SequenceNumber"]) for r in recs] == [(a[0], a[3]) for a in before]
    assert last.get("NextShardIterator") is None, "a closed shard read to its end has no NextShardIterator"
    kids = {c["ShardId"]: c for c in last.get("ChildShards", [])}
    assert sorted(kids) == [sid(1), sid(2)], f"ChildShards = {last.get('ChildShards')}"
    for c, want in ((sid(1), (0, mid - 1)), (sid(2), (mid, HASH_MAX))):
        assert kids[c]["ParentShards"] == [sid(0)]
        assert rng(kids[c]) == want
    check_read_back(client, name, before + after)

    # a closed shard cannot be split again
    expect_error(("ResourceInUseException", "InvalidArgumentException"), client.split_shard,
                 StreamName=name, ShardToSplit=sid(0), NewStartingHashKey=str(mid // 2))
    # split key must lie strictly inside the shard's range
    expect_error("InvalidArgumentException", client.split_shard,
                 StreamName=name, ShardToSplit=sid(2), NewStartingHashKey=str(mid))
    expect_error("InvalidArgumentException", client.split_shard,
                 StreamName=name, ShardToSplit=sid(2), NewStartingHashKey=str(mid - 5))
    expect_error("ResourceNotFoundException", client.split_shard,
                 StreamName=name, ShardToSplit=sid(77), NewStartingHashKey=str(mid))
    # nothing changed by the failed calls
    assert len(list_all_shards(client, name)) == 3


def test_split_key_out_of_range(client):
    """2^128 matches the model pattern (39 digits) but is outside every range: InvalidArgument."""
    name = unique("splitoor")
    create_stream(client, name, 1)
    expect_error("InvalidArgumentException", client.split_shard,
                 StreamName=name, ShardToSplit=sid(0), NewStartingHashKey=str(HASH_SPACE))
    assert len(list_all_shards(client, name)) == 1


def test_closed_shard_paged_to_end(client):
    name = unique("pages")
    create_stream(client, name, 1)
    seqs = [client.put_record(StreamName=name, Data=b"%d" % i, PartitionKey="k")["SequenceNumber"] for i in range(5)]
    client.split_shard(StreamName=name, ShardToSplit=sid(0), NewStartingHashKey=str(2**127))
    wait_active(client, name)
    it = client.get_shard_iterator(StreamName=name, ShardId=sid(0), ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    got = []
    for _ in range(10):
        resp = client.get_records(ShardIterator=it, Limit=2)
        got += [r["SequenceNumber"] for r in resp["Records"]]
        it = resp.get("NextShardIterator")
        if it is None:
            break
        assert not resp.get("ChildShards"), f"ChildShards before the end of the shard (after {len(got)} records)"
    assert it is None, "a closed shard never reported its end"
    assert got == seqs
    assert sorted(c["ShardId"] for c in resp["ChildShards"]) == [sid(1), sid(2)]
    # starting after the last record of the closed shard: straight to the end
    end = client.get_shard_iterator(StreamName=name, ShardId=sid(0), ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                                    StartingSequenceNumber=seqs[-1])["ShardIterator"]
    resp = client.get_records(ShardIterator=end)
    assert resp["Records"] == [] and resp.get("NextShardIterator") is None
    assert sorted(c["ShardId"] for c in resp["ChildShards"]) == [sid(1), sid(2)]


def test_merge_shards(client):
    name = unique("merge")
    create_stream(client, name, 3)
    before = put_keys(client, name, "pre", 30)
    expect_error("InvalidArgumentException", client.merge_shards, StreamName=name,
                 ShardToMerge=sid(0), AdjacentShardToMerge=sid(2))
    expect_error("ResourceNotFoundException", client.merge_shards, StreamName=name,
                 ShardToMerge=sid(0), AdjacentShardToMerge=sid(9))
    assert len(list_all_shards(client, name)) == 3

    client.merge_shards(StreamName=name, ShardToMerge=sid(0), AdjacentShardToMerge=sid(1))
    wait_active(client, name)
    sh = by_id(list_all_shards(client, name))
    assert sorted(sh) == [sid(0), sid(1), sid(2), sid(3)]
    child = sh[sid(3)]
    assert child["ParentShardId"] == sid(0)
    assert child["AdjacentParentShardId"] == sid(1)
    assert rng(child) == (rng(sh[sid(0)])[0], rng(sh[sid(1)])[1])
    assert is_open(child) and is_open(sh[sid(2)])
    assert not is_open(sh[sid(0)]) and not is_open(sh[sid(1)])
    assert_covers_hash_space([s for s in sh.values() if is_open(s)])

    after = put_keys(client, name, "post", 30)
    assert {a[2] for a in after} <= {sid(2), sid(3)}
    check_routing(client, name, after)

    for parent in (sid(0), sid(1)):
        recs, last = read_shard(client, name, parent)
        assert [r["SequenceNumber"] for r in recs] == [a[3] for a in before if a[2] == parent]
        assert last.get("NextShardIterator") is None
        kids = last.get("ChildShards", [])
        assert [k["ShardId"] for k in kids] == [sid(3)], f"ChildShards = {kids}"
        assert sorted(kids[0]["ParentShards"]) == [sid(0), sid(1)]
        assert rng(kids[0]) == rng(child)
    check_read_back(client, name, before + after)

    # merging a closed shard fails
    expect_error(("ResourceInUseException", "InvalidArgumentException"), client.merge_shards,
                 StreamName=name, ShardToMerge=sid(1), AdjacentShardToMerge=sid(2))


def test_update_shard_count(client):
    name = unique("usc")
    create_stream(client, name, 2)
    acks = put_keys(client, name, "r0", 20)

    r = client.update_shard_count(StreamName=name, TargetShardCount=4, ScalingType="UNIFORM_SCALING")
    assert (r["CurrentShardCount"], r["TargetShardCount"]) == (2, 4)
    assert r.get("StreamName", name) == name
    wait_active(client, name)
    open_shards = [s for s in list_all_shards(client, name) if is_open(s)]
    assert len(open_shards) == 4
    assert_covers_hash_space(open_shards)
    assert client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["OpenShardCount"] == 4
    acks += put_keys(client, name, "r1", 40)

    expect_error(("InvalidArgumentException", "LimitExceededException"), client.update_shard_count,
                 StreamName=name, TargetShardCount=9, ScalingType="UNIFORM_SCALING")
    expect_error(("InvalidArgumentException", "LimitExceededException"), client.update_shard_count,
                 StreamName=name, TargetShardCount=1, ScalingType="UNIFORM_SCALING")

    r = client.update_shard_count(StreamName=name, TargetShardCount=3, ScalingType="UNIFORM_SCALING")
    assert (r["CurrentShardCount"], r["TargetShardCount"]) == (4, 3)
    wait_active(client, name)
    open_shards = [s for s in list_all_shards(client, name) if is_open(s)]
    assert len(open_shards) == 3
    assert_covers_hash_space(open_shards)
    acks += put_keys(client, name, "r2", 40)

    r = client.update_shard_count(StreamName=name, TargetShardCount=6, ScalingType="UNIFORM_SCALING")
    assert (r["CurrentShardCount"], r["TargetShardCount"]) == (3, 6)
    wait_active(client, name)
    all_shards = list_all_shards(client, name)
    open_shards = [s for s in all_shards if is_open(s)]
    assert len(open_shards) == 6
    assert_covers_hash_space(open_shards)
    # shard ids are unique and count up
    ids = [s["ShardId"] for s in all_shards]
    assert len(set(ids)) == len(ids)
    acks += put_keys(client, name, "r3", 40)

    # every record is where it was acknowledged, and is routed by the layout at put time
    check_read_back(client, name, acks)
    # per partition key, reading parents before children yields put order
    exact_read, exact_put = {}, {}
    for rec in flatten(read_all(client, name)):
        exact_read.setdefault(rec["PartitionKey"], []).append(rec["SequenceNumber"])
    for data, key, _, seq in acks:
        exact_put.setdefault(key, []).append(seq)
    assert exact_read == exact_put


def test_per_key_order_across_reshards(client):
    """One key written across two reshards: readers going parents-first see put order."""
    name = unique("order")
    create_stream(client, name, 1)
    keys = ["alpha", "beta", "gamma", "delta"]
    put_order = {k: [] for k in keys}
    n = 0

    def burst():
        nonlocal n
        for _ in range(5):
            for k in keys:
                data = f"{k}:{n}".encode()
                n += 1
                client.put_record(StreamName=name, Data=data, PartitionKey=k)
                put_order[k].append(data)

    burst()
    client.update_shard_count(StreamName=name, TargetShardCount=2, ScalingType="UNIFORM_SCALING")
    wait_active(client, name)
    burst()
    client.update_shard_count(StreamName=name, TargetShardCount=4, ScalingType="UNIFORM_SCALING")
    wait_active(client, name)
    burst()
    client.update_shard_count(StreamName=name, TargetShardCount=2, ScalingType="UNIFORM_SCALING")
    wait_active(client, name)
    burst()
    got = {k: [] for k in keys}
    for rec in flatten(read_all(client, name)):
        got[rec["PartitionKey"]].append(rec["Data"])
    assert got == put_order


def test_list_shards_filters(client):
    name = unique("filt")
    create_stream(client, name, 1)
    client.put_record(StreamName=name, Data=b"x", PartitionKey="k")
    t_before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=2)
    time.sleep(2.1)  # boto3 sends whole-second timestamps
    client.split_shard(StreamName=name, ShardToSplit=sid(0), NewStartingHashKey=str(2**127))
    wait_active(client, name)
    time.sleep(1.1)
    t_after = dt.datetime.now(dt.timezone.utc)

    def ids(**flt):
        return sorted(s["ShardId"] for s in list_all_shards(client, name, ShardFilter=flt))

    everything = [sid(0), sid(1), sid(2)]
    assert sorted(s["ShardId"] for s in list_all_shards(client, name)) == everything
    assert ids(Type="AT_LATEST") == [sid(1), sid(2)]
    assert ids(Type="AFTER_SHARD_ID", ShardId=sid(0)) == [sid(1), sid(2)]
    assert ids(Type="AFTER_SHARD_ID", ShardId=sid(1)) == [sid(2)]
    assert ids(Type="FROM_TRIM_HORIZON") == everything
    assert sid(0) in ids(Type="AT_TRIM_HORIZON")
    assert ids(Type="AT_TIMESTAMP", Timestamp=t_before) == [sid(0)]
    assert ids(Type="AT_TIMESTAMP", Timestamp=t_after) == [sid(1), sid(2)]
    assert ids(Type="FROM_TIMESTAMP", Timestamp=t_before) == everything
    assert ids(Type="FROM_TIMESTAMP", Timestamp=t_after) == [sid(1), sid(2)]
