"""Stream lifecycle, describe, list, tags, retention, limits."""

import datetime as dt

import pytest
import requests

from kutil import (ARN_PREFIX, HASH_MAX, assert_seq, create_stream, even_ranges, expect_error,
                   list_all_shards, rng, unique)


def test_health(gw):
    r = requests.get(f"{gw.url}/health", timeout=5)
    assert r.status_code == 200


def test_create_describe_delete(client):
    name = unique("life")
    before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5)
    resp = client.create_stream(StreamName=name, ShardCount=3)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert resp["ResponseMetadata"].get("RequestId"), "success response lacks x-amzn-RequestId"
    # ACTIVE immediately: the waiter must succeed on its first poll.
    client.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 1})

    d = client.describe_stream(StreamName=name)["StreamDescription"]
    assert d["StreamName"] == name
    assert d["StreamARN"] == ARN_PREFIX + name
    assert d["StreamStatus"] == "ACTIVE"
    assert d["HasMoreShards"] is False
    assert d["RetentionPeriodHours"] == 24
    created = d["StreamCreationTimestamp"]
    assert before <= created <= dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=5), created
    shards = d["Shards"]
    assert [s["ShardId"] for s in shards] == [f"shardId-{i:012d}" for i in range(3)]
    assert [rng(s) for s in shards] == even_ranges(3)
    for s in shards:
        assert "ParentShardId" not in s and "AdjacentParentShardId" not in s
        assert_seq(s["SequenceNumberRange"]["StartingSequenceNumber"])
        assert "EndingSequenceNumber" not in s["SequenceNumberRange"]

    client.delete_stream(StreamName=name)
    client.get_waiter("stream_not_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 10})
    expect_error("ResourceNotFoundException", client.describe_stream, StreamName=name, mentions=[name])
    assert name not in client.list_streams(Limit=10000)["StreamNames"]
    # The name can be reused after deletion.
    create_stream(client, name, 1)
    client.delete_stream(StreamName=name)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 16])
def test_hash_ranges_split_evenly(client, n):
    name = unique(f"even{n}")
    create_stream(client, name, n)
    shards = list_all_shards(client, name)
    assert len(shards) == n
    assert [rng(s) for s in shards] == even_ranges(n)
    assert rng(shards[-1])[1] == HASH_MAX
    client.delete_stream(StreamName=name)


def test_shard_count_1024_allowed(client):
    name = unique("big")
    create_stream(client, name, 1024)
    assert client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["OpenShardCount"] == 1024
    shards = list_all_shards(client, name)
    assert len(shards) == 1024
    assert shards[-1]["ShardId"] == "shardId-000000001023"
    assert [rng(s) for s in shards] == even_ranges(1024)
    client.delete_stream(StreamName=name)


def test_describe_stream_summary(client):
    name = unique("sum")
    create_stream(client, name, 4, StreamModeDetails={"StreamMode": "PROVISIONED"})
    s = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert s["StreamName"] == name
    assert s["StreamARN"] == ARN_PREFIX + name
    assert s["StreamStatus"] == "ACTIVE"
    assert s["OpenShardCount"] == 4
    assert s["RetentionPeriodHours"] == 24
    assert isinstance(s["StreamCreationTimestamp"], dt.datetime)
    if "StreamModeDetails" in s:
        assert s["StreamModeDetails"]["StreamMode"] == "PROVISIONED"
    # by ARN as well
    s2 = client.describe_stream_summary(StreamARN=ARN_PREFIX + name)["StreamDescriptionSummary"]
    assert s2["StreamName"] == name and s2["OpenShardCount"] == 4


def test_describe_stream_paging(client):
    name = unique("page")
    create_stream(client, name, 5)
    d = client.describe_stream(StreamName=name, Limit=2)["StreamDescription"]
    assert [s["ShardId"] for s in d["Shards"]] == ["shardId-000000000000", "shardId-000000000001"]
    assert d["HasMoreShards"] is True
    d = client.describe_stream(StreamName=name, Limit=2, ExclusiveStartShardId="shardId-000000000001")["StreamDescription"]
    assert [s["ShardId"] for s in d["Shards"]] == ["shardId-000000000002", "shardId-000000000003"]
    assert d["HasMoreShards"] is True
    d = client.describe_stream(StreamName=name, Limit=2, ExclusiveStartShardId="shardId-000000000003")["StreamDescription"]
    assert [s["ShardId"] for s in d["Shards"]] == ["shardId-000000000004"]
    assert d["HasMoreShards"] is False
    d = client.describe_stream(StreamName=name, Limit=5)["StreamDescription"]
    assert len(d["Shards"]) == 5 and d["HasMoreShards"] is False


def test_list_streams_paging(client):
    prefix = unique("ls")
    names = [f"{prefix}-{i}" for i in range(4)]
    for n in names:
        create_stream(client, n, 1)

    full = client.list_streams(Limit=10000)
    assert set(names) <= set(full["StreamNames"])
    assert full["HasMoreStreams"] is False
    assert len(full["StreamNames"]) == len(set(full["StreamNames"]))
    summaries = {s["StreamName"]: s for s in full.get("StreamSummaries", [])}
    for n in names:
        assert n in summaries, f"{n} missing from StreamSummaries"
        assert summaries[n]["StreamARN"] == ARN_PREFIX + n
        assert summaries[n]["StreamStatus"] == "ACTIVE"
        assert isinstance(summaries[n].get("StreamCreationTimestamp"), dt.datetime)

    # ExclusiveStartStreamName paging, one at a time
    seen, start = [], None
    for _ in range(len(full["StreamNames"]) + 2):
        kw = {"Limit": 1}
        if start:
            kw["ExclusiveStartStreamName"] = start
        page = client.list_streams(**kw)
        assert len(page["StreamNames"]) <= 1
        seen += page["StreamNames"]
        if not page["HasMoreStreams"]:
            break
        assert page["StreamNames"], "HasMoreStreams true with an empty page"
        start = page["StreamNames"][-1]
    assert seen == full["StreamNames"]

    # NextToken paging
    seen, page = [], client.list_streams(Limit=2)
    seen += page["StreamNames"]
    for _ in range(len(full["StreamNames"]) + 2):
        if not page["HasMoreStreams"]:
            break
        assert page.get("NextToken"), "HasMoreStreams true but no NextToken"
        page = client.list_streams(NextToken=page["NextToken"], Limit=2)
        seen += page["StreamNames"]
    assert seen == full["StreamNames"]

    # the boto3 paginator (NextToken based)
    pag = client.get_paginator("list_streams").paginate(PaginationConfig={"PageSize": 3})
    assert [n for p in pag for n in p["StreamNames"]] == full["StreamNames"]


def test_list_shards(client):
    name = unique("lsh")
    create_stream(client, name, 5)
    allsh = client.list_shards(StreamName=name)
    assert [s["ShardId"] for s in allsh["Shards"]] == [f"shardId-{i:012d}" for i in range(5)]
    assert not allsh.get("NextToken")
    assert [rng(s) for s in allsh["Shards"]] == even_ranges(5)

    page = client.list_shards(StreamName=name, MaxResults=2)
    got = [s["ShardId"] for s in page["Shards"]]
    assert got == ["shardId-000000000000", "shardId-000000000001"]
    assert page.get("NextToken")
    for _ in range(5):
        if not page.get("NextToken"):
            break
        page = client.list_shards(NextToken=page["NextToken"], MaxResults=2)
        got += [s["ShardId"] for s in page["Shards"]]
    assert got == [s["ShardId"] for s in allsh["Shards"]]

    after = client.list_shards(StreamName=name, ExclusiveStartShardId="shardId-000000000002")
    assert [s["ShardId"] for s in after["Shards"]] == ["shardId-000000000003", "shardId-000000000004"]

    filt = client.list_shards(StreamName=name, ShardFilter={"Type": "AFTER_SHARD_ID", "ShardId": "shardId-000000000003"})
    assert [s["ShardId"] for s in filt["Shards"]] == ["shardId-000000000004"]

    by_arn = client.list_shards(StreamARN=ARN_PREFIX + name)
    assert [s["ShardId"] for s in by_arn["Shards"]] == [s["ShardId"] for s in allsh["Shards"]]

    tok = client.list_shards(StreamName=name, MaxResults=1)["NextToken"]
    expect_error("InvalidArgumentException", client.list_shards, StreamName=name, NextToken=tok)


def test_stream_arn_everywhere(client):
    name = unique("arn")
    arn = ARN_PREFIX + name
    create_stream(client, name, 2)
    d = client.describe_stream(StreamARN=arn)["StreamDescription"]
    assert d["StreamName"] == name and len(d["Shards"]) == 2
    put = client.put_record(StreamARN=arn, Data=b"via-arn", PartitionKey="k")
    recs = client.put_records(StreamARN=arn, Records=[{"Data": b"x", "PartitionKey": "k2"}])
    assert recs["FailedRecordCount"] == 0
    it = client.get_shard_iterator(StreamARN=arn, ShardId=put["ShardId"],
                                   ShardIteratorType="AT_SEQUENCE_NUMBER",
                                   StartingSequenceNumber=put["SequenceNumber"])["ShardIterator"]
    got = client.get_records(ShardIterator=it, StreamARN=arn)["Records"]
    assert got and got[0]["Data"] == b"via-arn"
    client.add_tags_to_stream(StreamARN=arn, Tags={"a": "1"})
    assert client.list_tags_for_stream(StreamARN=arn)["Tags"] == [{"Key": "a", "Value": "1"}]
    client.remove_tags_from_stream(StreamARN=arn, TagKeys=["a"])
    client.increase_stream_retention_period(StreamARN=arn, RetentionPeriodHours=30)
    client.decrease_stream_retention_period(StreamARN=arn, RetentionPeriodHours=25)
    assert client.describe_stream_summary(StreamARN=arn)["StreamDescriptionSummary"]["RetentionPeriodHours"] == 25
    client.delete_stream(StreamARN=arn)
    expect_error("ResourceNotFoundException", client.describe_stream_summary, StreamName=name)


def test_create_existing_name(client):
    name = unique("dup")
    create_stream(client, name, 1)
    expect_error("ResourceInUseException", client.create_stream, StreamName=name, ShardCount=1, mentions=[name])
    # unchanged by the failed create
    assert client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["OpenShardCount"] == 1


def test_stream_name_limits(client, raw_client):
    ok = "a" * 128
    create_stream(client, ok, 1)
    client.delete_stream(StreamName=ok)
    create_stream(client, "Az09_.-x", 1)
    client.delete_stream(StreamName="Az09_.-x")
    for bad in ["a" * 129, "bad name", "bad/name", "bad:name", "naïve"]:
        expect_error("ValidationException", raw_client.create_stream, StreamName=bad, ShardCount=1)
    expect_error("ValidationException", raw_client.create_stream, StreamName="", ShardCount=1)


def test_shard_count_limits(raw_client):
    expect_error("ValidationException", raw_client.create_stream, StreamName=unique("z"), ShardCount=0)
    expect_error(("InvalidArgumentException", "LimitExceededException", "ValidationException"),
                 raw_client.create_stream, StreamName=unique("z"), ShardCount=1025)


def test_tags(client):
    name = unique("tag")
    create_stream(client, name, 1, Tags={"env": "test", "owner": "me"})
    t = client.list_tags_for_stream(StreamName=name)
    assert {x["Key"]: x["Value"] for x in t["Tags"]} == {"env": "test", "owner": "me"}
    assert t["HasMoreTags"] is False

    client.add_tags_to_stream(StreamName=name, Tags={"a": "1", "b": "2", "c": "3", "env": "prod"})
    want = {"env": "prod", "owner": "me", "a": "1", "b": "2", "c": "3"}
    t = client.list_tags_for_stream(StreamName=name)
    assert {x["Key"]: x["Value"] for x in t["Tags"]} == want

    # paging with Limit / ExclusiveStartTagKey
    seen, start = [], None
    for _ in range(10):
        kw = {"StreamName": name, "Limit": 2}
        if start:
            kw["ExclusiveStartTagKey"] = start
        page = client.list_tags_for_stream(**kw)
        assert len(page["Tags"]) <= 2
        seen += page["Tags"]
        if not page["HasMoreTags"]:
            break
        start = page["Tags"][-1]["Key"]
    assert len(seen) == 5
    assert {x["Key"]: x["Value"] for x in seen} == want

    client.remove_tags_from_stream(StreamName=name, TagKeys=["a", "owner", "not-there"])
    t = client.list_tags_for_stream(StreamName=name)
    assert {x["Key"]: x["Value"] for x in t["Tags"]} == {"env": "prod", "b": "2", "c": "3"}


def test_tag_limits(client, raw_client):
    # 10 per call (AWS's AddTagsToStream takes "a set of up to 10 key-value pairs"), 50 per stream
    full, other = unique("tag50"), unique("tag51")
    create_stream(client, full, 1)
    create_stream(client, other, 1)
    for start in range(0, 50, 10):
        client.add_tags_to_stream(StreamName=full, Tags={f"k{i:02d}": str(i) for i in range(start, start + 10)})
    t = client.list_tags_for_stream(StreamName=full, Limit=50)
    assert len(t["Tags"]) == 50 and t["HasMoreTags"] is False
    expect_error("ValidationException", raw_client.add_tags_to_stream, StreamName=other,
                 Tags={f"x{i:02d}": str(i) for i in range(11)}, mentions=["less than or equal to 10"])
    assert client.list_tags_for_stream(StreamName=other)["Tags"] == [], "a refused AddTagsToStream added tags"
    # overwriting existing keys does not count as new tags
    client.add_tags_to_stream(StreamName=full, Tags={"k00": "changed"})
    expect_error("InvalidArgumentException", client.add_tags_to_stream, StreamName=full, Tags={"one-more": "x"},
                 mentions=["more than 50 tags"])


def test_retention(client):
    name = unique("ret")
    create_stream(client, name, 1)

    def hours():
        return client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["RetentionPeriodHours"]

    assert hours() == 24
    client.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=48)
    assert hours() == 48
    assert client.describe_stream(StreamName=name)["StreamDescription"]["RetentionPeriodHours"] == 48
    expect_error("InvalidArgumentException", client.increase_stream_retention_period,
                 StreamName=name, RetentionPeriodHours=24)
    expect_error("InvalidArgumentException", client.increase_stream_retention_period,
                 StreamName=name, RetentionPeriodHours=8761)
    assert hours() == 48
    client.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=8760)
    assert hours() == 8760
    client.decrease_stream_retention_period(StreamName=name, RetentionPeriodHours=100)
    assert hours() == 100
    expect_error("InvalidArgumentException", client.decrease_stream_retention_period,
                 StreamName=name, RetentionPeriodHours=200)
    expect_error("InvalidArgumentException", client.decrease_stream_retention_period,
                 StreamName=name, RetentionPeriodHours=23)
    assert hours() == 100
    client.decrease_stream_retention_period(StreamName=name, RetentionPeriodHours=24)
    assert hours() == 24


def test_describe_limits(client):
    before = client.describe_limits()
    for k in ("ShardLimit", "OpenShardCount"):
        assert isinstance(before[k], int), f"DescribeLimits.{k} = {before.get(k)!r}"
    assert before["ShardLimit"] > 0
    name = unique("lim")
    create_stream(client, name, 3)
    after = client.describe_limits()
    assert after["OpenShardCount"] == before["OpenShardCount"] + 3
    client.delete_stream(StreamName=name)
    assert client.describe_limits()["OpenShardCount"] == before["OpenShardCount"]
