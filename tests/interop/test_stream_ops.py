"""The Kinesis operations of issue 16's "missing operations" (encryption aside), with boto3:
tags by resource ARN, UpdateStreamMode and on-demand scaling, enhanced monitoring (and its
per-shard series on /metrics), resource policies, DescribeLimits; bad input answered as AWS
does, and everything durable across a restart."""

import json
import time

import requests
from prometheus_client.parser import text_string_to_metric_families

from kutil import (ACCOUNT, ARN_PREFIX, REGION, TEST_KEY, TEST_SECRET_ENV, create_stream, expect_error,
                   unique)

ALL_METRICS = ["IncomingBytes", "IncomingRecords", "OutgoingBytes", "OutgoingRecords",
               "WriteProvisionedThroughputExceeded", "ReadProvisionedThroughputExceeded",
               "IteratorAgeMilliseconds"]

POLICY = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{
        "Sid": "readers",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
        "Action": ["kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:DescribeStreamSummary"],
        "Resource": "*",
    }],
})


def consumer_arn(stream: str) -> str:
    return f"{ARN_PREFIX}{stream}/consumer/app-1:1700000000"


def tags_of(client, arn: str) -> dict:
    return {t["Key"]: t.get("Value", "") for t in client.list_tags_for_resource(ResourceARN=arn)["Tags"]}


def summary(client, name: str) -> dict:
    return client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]


def metric_samples(text: str) -> dict:
    """{(sample name, frozenset(labels)): value} from Prometheus's own parser."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


# ---- tags by ARN -------------------------------------------------------------------------------
def test_tags_by_stream_arn_are_the_stream_tags(client):
    name = unique("tagarn")
    create_stream(client, name, 1)
    arn = ARN_PREFIX + name
    assert tags_of(client, arn) == {}
    client.tag_resource(ResourceARN=arn, Tags={"env": "edge", "owner": "ops team", "empty": ""})
    assert tags_of(client, arn) == {"env": "edge", "owner": "ops team", "empty": ""}
    listed = client.list_tags_for_stream(StreamName=name)["Tags"]
    assert {t["Key"]: t["Value"] for t in listed} == {"env": "edge", "owner": "ops team", "empty": ""}
    # the other way round: AddTagsToStream shows in ListTagsForResource
    client.add_tags_to_stream(StreamName=name, Tags={"site": "plant-7"})
    assert tags_of(client, arn)["site"] == "plant-7"
    client.tag_resource(ResourceARN=arn, Tags={"env": "prod"})
    client.untag_resource(ResourceARN=arn, TagKeys=["owner", "no-such-key"])
    assert tags_of(client, arn) == {"env": "prod", "empty": "", "site": "plant-7"}
    # AWS's character set: letters (any script), digits, white space, _ . : / = + - @ %
    client.tag_resource(ResourceARN=arn, Tags={"Größe _.:/=+-@%": "ünïcode 1/2"})
    assert tags_of(client, arn)["Größe _.:/=+-@%"] == "ünïcode 1/2"
    client.delete_stream(StreamName=name)


def test_tag_errors_as_aws(client, raw_client):
    name = unique("tagerr")
    create_stream(client, name, 1)
    arn = ARN_PREFIX + name
    expect_error("InvalidArgumentException", client.tag_resource, ResourceARN=arn,
                 Tags={"a*b": "x"}, mentions=["a*b"])
    expect_error("InvalidArgumentException", client.tag_resource, ResourceARN=arn,
                 Tags={"k": "v#1"}, mentions=["v#1"])
    expect_error("InvalidArgumentException", client.tag_resource, ResourceARN=arn,
                 Tags={"aws:owner": "x"}, mentions=["aws:"])
    expect_error(("InvalidArgumentException", "ValidationException"), raw_client.tag_resource,
                 ResourceARN=arn, Tags={"k": "v" * 257}, mentions=["256"])
    # 50 tags per resource
    client.tag_resource(ResourceARN=arn, Tags={f"k{i}": str(i) for i in range(50)})
    expect_error("InvalidArgumentException", client.tag_resource, ResourceARN=arn,
                 Tags={"one-more": "x"}, mentions=["50"])
    expect_error("InvalidArgumentException", raw_client.tag_resource, ResourceARN=arn,
                 Tags={f"n{i}": "x" for i in range(51)}, mentions=["50"])
    client.tag_resource(ResourceARN=arn, Tags={"k0": "replaced"})  # an existing key is fine
    assert len(tags_of(client, arn)) == 50
    # ARNs: malformed -> ValidationException, unknown stream -> ResourceNotFoundException
    for bad in ("telemetry", "arn:aws:s3:::bucket", f"arn:aws:kinesis:{REGION}:123:stream/{name}"):
        expect_error("ValidationException", raw_client.list_tags_for_resource, ResourceARN=bad,
                     mentions=["resourceARN"])
    expect_error("ValidationException", raw_client.list_tags_for_resource,
                 ResourceARN=ARN_PREFIX + "bad name", mentions=["pattern"])
    expect_error("ValidationException", raw_client.tag_resource, ResourceARN=arn, Tags={},
                 mentions=["tags"])
    expect_error("ValidationException", raw_client.untag_resource, ResourceARN=arn, TagKeys=[],
                 mentions=["tagKeys"])
    missing = ARN_PREFIX + unique("nope")
    for call, kw in ((client.tag_resource, {"Tags": {"a": "b"}}),
                     (client.untag_resource, {"TagKeys": ["a"]}),
                     (client.list_tags_for_resource, {})):
        expect_error("ResourceNotFoundException", call, ResourceARN=missing, mentions=["not found"], **kw)
    # a consumer that is not registered (or an ARN of an earlier registration): not found
    expect_error("ResourceNotFoundException", client.list_tags_for_resource,
                 ResourceARN=consumer_arn(name), mentions=["app-1"])
    expect_error("ResourceNotFoundException", client.tag_resource,
                 ResourceARN=consumer_arn(name), Tags={"a": "b"}, mentions=["app-1"])
    client.delete_stream(StreamName=name)


def test_consumer_tags_by_consumer_arn(client, raw_client):
    name = unique("ctags")
    create_stream(client, name, 1)
    stream_arn = ARN_PREFIX + name
    expect_error("InvalidArgumentException", client.register_stream_consumer, StreamARN=stream_arn,
                 ConsumerName="app-1", Tags={"a*b": "x"}, mentions=["a*b"])
    consumer = client.register_stream_consumer(StreamARN=stream_arn, ConsumerName="app-1",
                                               Tags={"site": "farm-2"})["Consumer"]
    arn = consumer["ConsumerARN"]
    assert tags_of(client, arn) == {"site": "farm-2"}
    client.untag_resource(ResourceARN=arn, TagKeys=["site"])
    assert tags_of(client, arn) == {}
    client.tag_resource(ResourceARN=arn, Tags={"team": "line-3", "env": "edge"})
    client.untag_resource(ResourceARN=arn, TagKeys=["env"])
    assert tags_of(client, arn) == {"team": "line-3"}
    assert tags_of(client, stream_arn) == {}, "a consumer's tags are its own, not the stream's"
    # AWS's rules apply to consumers as to streams
    expect_error("InvalidArgumentException", client.tag_resource, ResourceARN=arn,
                 Tags={"a*b": "x"}, mentions=["a*b"])
    client.tag_resource(ResourceARN=arn, Tags={f"k{i}": str(i) for i in range(49)})
    expect_error("InvalidArgumentException", client.tag_resource, ResourceARN=arn,
                 Tags={"one-more": "x"}, mentions=["50"])
    assert len(tags_of(client, arn)) == 50
    # resource policies are kept for streams only: a consumer's ARN is refused, clearly
    expect_error("InvalidArgumentException", client.put_resource_policy, ResourceARN=arn,
                 Policy=POLICY, mentions=["consumers", "stream"])
    # deregistered: its tags go with it, and its ARN names nothing, even after a new
    # registration under the same name (which gets another ARN, without tags)
    client.deregister_stream_consumer(ConsumerARN=arn)
    deadline = time.monotonic() + 20
    while client.list_stream_consumers(StreamARN=stream_arn)["Consumers"]:
        assert time.monotonic() < deadline, "the consumer was never deregistered"
        time.sleep(0.1)
    expect_error("ResourceNotFoundException", client.list_tags_for_resource, ResourceARN=arn,
                 mentions=["app-1"])
    expect_error("ResourceNotFoundException", client.tag_resource, ResourceARN=arn,
                 Tags={"a": "b"}, mentions=["app-1"])
    client.delete_stream(StreamName=name)


# ---- UpdateStreamMode, DescribeLimits -----------------------------------------------------------
def test_update_stream_mode(client, raw_client):
    name = unique("mode")
    create_stream(client, name, 2)
    arn = ARN_PREFIX + name
    before = client.describe_limits()
    assert summary(client, name)["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}
    client.update_stream_mode(StreamARN=arn, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    s = summary(client, name)
    assert s["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
    assert s["OpenShardCount"] == 2, "switching keeps the shards"
    d = client.describe_stream(StreamName=name)["StreamDescription"]
    assert d["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
    listed = [x for x in client.list_streams()["StreamSummaries"] if x["StreamName"] == name]
    assert listed[0]["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
    assert client.describe_limits()["OnDemandStreamCount"] == before["OnDemandStreamCount"] + 1
    # the same mode again is accepted and changes nothing
    client.update_stream_mode(StreamARN=arn, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    # UpdateShardCount is for PROVISIONED streams only, as in Kinesis
    expect_error("InvalidArgumentException", client.update_shard_count, StreamName=name,
                 TargetShardCount=4, ScalingType="UNIFORM_SCALING", mentions=["PROVISIONED"])
    client.update_stream_mode(StreamARN=arn, StreamModeDetails={"StreamMode": "PROVISIONED"})
    assert summary(client, name)["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}
    client.update_shard_count(StreamName=name, TargetShardCount=4, ScalingType="UNIFORM_SCALING")
    assert client.describe_limits()["OnDemandStreamCount"] == before["OnDemandStreamCount"]

    expect_error("ValidationException", raw_client.update_stream_mode, StreamARN=arn,
                 StreamModeDetails={"StreamMode": "FAST"}, mentions=["PROVISIONED, ON_DEMAND"])
    expect_error("ValidationException", raw_client.update_stream_mode, StreamARN=arn,
                 mentions=["streamModeDetails"])
    expect_error("ValidationException", raw_client.update_stream_mode,
                 StreamModeDetails={"StreamMode": "ON_DEMAND"}, mentions=["streamARN"])
    expect_error("ResourceNotFoundException", client.update_stream_mode,
                 StreamARN=ARN_PREFIX + unique("nope"), StreamModeDetails={"StreamMode": "ON_DEMAND"})
    expect_error("ValidationException", raw_client.update_stream_mode, StreamARN="not-an-arn",
                 StreamModeDetails={"StreamMode": "ON_DEMAND"}, mentions=["streamARN"])
    client.delete_stream(StreamName=name)


def test_describe_limits_match_the_gateway(client):
    limits = client.describe_limits()
    assert limits["ShardLimit"] == 1024
    assert limits["OnDemandStreamCountLimit"] == 50
    name = unique("lim-od")
    client.create_stream(StreamName=name, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    after = client.describe_limits()
    assert after["OpenShardCount"] == limits["OpenShardCount"] + 4, "ON_DEMAND streams start with 4 shards"
    assert after["OnDemandStreamCount"] == limits["OnDemandStreamCount"] + 1
    listed = client.list_streams(Limit=10000)["StreamNames"]
    open_shards = sum(summary(client, n)["OpenShardCount"] for n in listed)
    assert open_shards == after["OpenShardCount"]
    client.delete_stream(StreamName=name)


def test_on_demand_stream_limit(gateway_factory):
    gw = gateway_factory(extra_config="[on_demand]\nenabled = false\n")
    client = gw.client()
    for i in range(50):
        client.create_stream(StreamName=f"od-{i}", ShardCount=1,
                             StreamModeDetails={"StreamMode": "ON_DEMAND"})
    assert client.describe_limits()["OnDemandStreamCount"] == 50
    expect_error("LimitExceededException", client.create_stream, StreamName="od-50",
                 StreamModeDetails={"StreamMode": "ON_DEMAND"}, mentions=["50"])
    create_stream(client, "prov", 1)
    expect_error("LimitExceededException", client.update_stream_mode, StreamARN=ARN_PREFIX + "prov",
                 StreamModeDetails={"StreamMode": "ON_DEMAND"}, mentions=["50"])
    client.update_stream_mode(StreamARN=ARN_PREFIX + "od-0", StreamModeDetails={"StreamMode": "PROVISIONED"})
    client.update_stream_mode(StreamARN=ARN_PREFIX + "prov", StreamModeDetails={"StreamMode": "ON_DEMAND"})
    assert client.describe_limits()["OnDemandStreamCount"] == 50


# ---- enhanced monitoring ------------------------------------------------------------------------
def test_enhanced_monitoring(client, raw_client):
    name = unique("mon")
    create_stream(client, name, 1)
    arn = ARN_PREFIX + name
    d = client.describe_stream(StreamName=name)["StreamDescription"]
    assert d["EnhancedMonitoring"] == [{"ShardLevelMetrics": []}]
    out = client.enable_enhanced_monitoring(StreamName=name,
                                            ShardLevelMetrics=["IteratorAgeMilliseconds", "IncomingBytes"])
    assert out["StreamName"] == name and out["StreamARN"] == arn
    assert out["CurrentShardLevelMetrics"] == []
    assert out["DesiredShardLevelMetrics"] == ["IncomingBytes", "IteratorAgeMilliseconds"]
    out = client.enable_enhanced_monitoring(StreamARN=arn, ShardLevelMetrics=["ALL"])
    assert out["CurrentShardLevelMetrics"] == ["IncomingBytes", "IteratorAgeMilliseconds"]
    assert out["DesiredShardLevelMetrics"] == ALL_METRICS
    d = client.describe_stream(StreamName=name)["StreamDescription"]
    assert d["EnhancedMonitoring"] == [{"ShardLevelMetrics": ALL_METRICS}]
    assert summary(client, name)["EnhancedMonitoring"] == [{"ShardLevelMetrics": ALL_METRICS}]
    out = client.disable_enhanced_monitoring(StreamName=name,
                                             ShardLevelMetrics=["IncomingBytes", "OutgoingBytes"])
    assert out["CurrentShardLevelMetrics"] == ALL_METRICS
    assert out["DesiredShardLevelMetrics"] == [m for m in ALL_METRICS if m not in ("IncomingBytes", "OutgoingBytes")]
    out = client.disable_enhanced_monitoring(StreamName=name, ShardLevelMetrics=["ALL"])
    assert out["DesiredShardLevelMetrics"] == []
    assert client.describe_stream(StreamName=name)["StreamDescription"]["EnhancedMonitoring"] == \
        [{"ShardLevelMetrics": []}]

    expect_error("ValidationException", raw_client.enable_enhanced_monitoring, StreamName=name,
                 ShardLevelMetrics=["IncomingBytes", "Bogus"],
                 mentions=["shardLevelMetrics", "enum value set"])
    expect_error("ValidationException", raw_client.enable_enhanced_monitoring, StreamName=name,
                 ShardLevelMetrics=[], mentions=["shardLevelMetrics"])
    expect_error("ValidationException", raw_client.disable_enhanced_monitoring, StreamName=name,
                 mentions=["shardLevelMetrics"])
    expect_error("ResourceNotFoundException", client.enable_enhanced_monitoring,
                 StreamName=unique("nope"), ShardLevelMetrics=["ALL"])
    client.delete_stream(StreamName=name)


def test_shard_metrics_on_metrics_after_enabling(client, gw):
    name = unique("monm")
    create_stream(client, name, 2)

    def ours():
        m = metric_samples(requests.get(f"{gw.url}/metrics", timeout=10).text)
        return {(n, dict(ls)["shard"]): v for (n, ls), v in m.items()
                if n.startswith("kinedge_shard_") and dict(ls).get("stream") == name
                and not n.startswith(("kinedge_shard_records_", "kinedge_shard_bytes_"))}

    assert ours() == {}, "no enhanced series before EnableEnhancedMonitoring"
    client.enable_enhanced_monitoring(StreamName=name, ShardLevelMetrics=["ALL"])
    records = [{"Data": b"x" * 10, "PartitionKey": "same-key"} for _ in range(7)]
    shard = client.put_records(StreamName=name, Records=records)["Records"][0]["ShardId"]
    it = client.get_shard_iterator(StreamName=name, ShardId=shard,
                                   ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    got = client.get_records(ShardIterator=it)["Records"]
    assert len(got) == 7
    m = ours()
    assert m[("kinedge_shard_incoming_records_total", shard)] == 7
    assert m[("kinedge_shard_incoming_bytes_total", shard)] == 7 * (10 + len("same-key"))
    assert m[("kinedge_shard_outgoing_records_total", shard)] == 7
    assert m[("kinedge_shard_outgoing_bytes_total", shard)] == 7 * (10 + len("same-key"))
    assert m[("kinedge_shard_write_provisioned_throughput_exceeded_total", shard)] == 0
    assert m[("kinedge_shard_read_provisioned_throughput_exceeded_total", shard)] == 0
    assert m[("kinedge_shard_iterator_age_milliseconds", shard)] >= 0
    assert len({s for (_, s) in m}) == 2, "every shard of the stream has its series"
    # only the metrics enabled are reported
    client.disable_enhanced_monitoring(StreamName=name, ShardLevelMetrics=["ALL"])
    client.enable_enhanced_monitoring(StreamName=name, ShardLevelMetrics=["IncomingRecords"])
    assert {n for (n, _) in ours()} == {"kinedge_shard_incoming_records_total"}
    client.delete_stream(StreamName=name)


# ---- resource policies --------------------------------------------------------------------------
def test_resource_policy(client, raw_client):
    name = unique("pol")
    create_stream(client, name, 1)
    arn = ARN_PREFIX + name
    assert client.get_resource_policy(ResourceARN=arn)["Policy"] == "{}"
    client.put_resource_policy(ResourceARN=arn, Policy=POLICY)
    assert client.get_resource_policy(ResourceARN=arn)["Policy"] == POLICY
    replaced = POLICY.replace("readers", "readers-2")
    client.put_resource_policy(ResourceARN=arn, Policy=replaced)
    assert client.get_resource_policy(ResourceARN=arn)["Policy"] == replaced
    # an Allow grants nothing more: the stream stays usable by the gateway's clients
    client.put_record(StreamName=name, Data=b"x", PartitionKey="k")

    for bad, why in (("not json", "JSON"), ("[]", "object"), ('{"Version": "2012-10-17"}', "Statement"),
                     ('{"Statement": [{"Effect": "Maybe", "Action": "kinesis:*"}]}', "Effect"),
                     ('{"Statement": [{"Effect": "Deny", "Action": "kinesis:*"}]}', "Principal"),
                     ('{"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "kinesis:*",'
                      ' "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}]}', "Condition")):
        expect_error("InvalidArgumentException", client.put_resource_policy, ResourceARN=arn,
                     Policy=bad, mentions=[why])
    big = json.dumps({"Statement": [{"Effect": "Allow", "Action": "kinesis:*", "Sid": "x" * 20480}]})
    expect_error("InvalidArgumentException", client.put_resource_policy, ResourceARN=arn, Policy=big,
                 mentions=["20480"])
    assert client.get_resource_policy(ResourceARN=arn)["Policy"] == replaced, "refused policies change nothing"
    expect_error("ValidationException", raw_client.put_resource_policy, ResourceARN=arn,
                 mentions=["policy"])
    missing = ARN_PREFIX + unique("nope")
    expect_error("ResourceNotFoundException", client.get_resource_policy, ResourceARN=missing)
    expect_error("ResourceNotFoundException", client.put_resource_policy, ResourceARN=missing, Policy=POLICY)
    expect_error("ResourceNotFoundException", client.get_resource_policy, ResourceARN=consumer_arn(name),
                 mentions=["app-1"])
    expect_error("ValidationException", raw_client.delete_resource_policy, ResourceARN="stream/x")

    client.delete_resource_policy(ResourceARN=arn)
    assert client.get_resource_policy(ResourceARN=arn)["Policy"] == "{}"
    client.delete_stream(StreamName=name)
    create_stream(client, name, 1)
    assert client.get_resource_policy(ResourceARN=arn)["Policy"] == "{}", "deleted with its stream"
    client.delete_stream(StreamName=name)


# ---- durability --------------------------------------------------------------------------------
def test_settings_survive_a_restart(gateway_factory):
    gw = gateway_factory()
    client = gw.client()
    create_stream(client, "kept", 2)
    arn = ARN_PREFIX + "kept"
    client.tag_resource(ResourceARN=arn, Tags={"env": "edge"})
    client.update_stream_mode(StreamARN=arn, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    client.enable_enhanced_monitoring(StreamName="kept", ShardLevelMetrics=["IncomingRecords", "IteratorAgeMilliseconds"])
    client.put_resource_policy(ResourceARN=arn, Policy=POLICY)
    client.put_record(StreamName="kept", Data=b"x", PartitionKey="k")
    consumer_arn_ = client.register_stream_consumer(StreamARN=arn, ConsumerName="c")["Consumer"]["ConsumerARN"]
    client.tag_resource(ResourceARN=consumer_arn_, Tags={"owner": "ops"})
    gw.kill()  # acknowledged means committed: a crash keeps all of it
    gw.start()
    client = gw.client()
    assert tags_of(client, arn) == {"env": "edge"}
    assert tags_of(client, consumer_arn_) == {"owner": "ops"}
    s = summary(client, "kept")
    assert s["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
    assert s["EnhancedMonitoring"] == [{"ShardLevelMetrics": ["IncomingRecords", "IteratorAgeMilliseconds"]}]
    assert client.get_resource_policy(ResourceARN=arn)["Policy"] == POLICY
    assert client.describe_limits()["OnDemandStreamCount"] == 1
    m = metric_samples(requests.get(f"{gw.url}/metrics", timeout=10).text)
    assert sum(v for (n, ls), v in m.items()
               if n == "kinedge_shard_incoming_records_total" and dict(ls)["stream"] == "kept") == 1


# ---- on-demand scaling ---------------------------------------------------------------------------
SCALING = """
[on_demand]
interval_ms = 200
window_ms = 1000
shard_write_records_per_s = 20
min_shards = 4
max_shards = 8
"""


def test_on_demand_scales_up_under_a_write_load(gateway_factory):
    """With a test-sized shard capacity (20 records/s, looked at every 200 ms): a write load
    above half of 4 shards' capacity doubles an ON_DEMAND stream to 8 shards (max_shards), and
    never beyond; a PROVISIONED stream under the same load keeps its shard."""
    gw = gateway_factory(extra_config=SCALING)
    client = gw.client()
    client.create_stream(StreamName="auto", StreamModeDetails={"StreamMode": "ON_DEMAND"})
    create_stream(client, "fixed", 1)
    assert summary(client, "auto")["OpenShardCount"] == 4
    batch = [{"Data": b"r" * 50, "PartitionKey": f"k{i}"} for i in range(50)]
    deadline = time.monotonic() + 60
    seen = []
    while time.monotonic() < deadline:
        for stream in ("auto", "fixed"):
            out = client.put_records(StreamName=stream, Records=batch)
            assert out["FailedRecordCount"] == 0
        seen.append(summary(client, "auto")["OpenShardCount"])
        if seen[-1] == 8:
            break
        time.sleep(0.05)
    assert seen[-1] == 8, f"open shards over time: {seen}"
    assert max(seen) <= 8
    assert summary(client, "fixed")["OpenShardCount"] == 1
    # the reshard went the UpdateShardCount way: closed parents, children covering the space
    shards = client.list_shards(StreamName="auto")["Shards"]
    open_shards = [s for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]]
    assert len(open_shards) == 8
    status = requests.get(f"{gw.url}/status", timeout=10).json()["on_demand"]
    assert status["streams"]["auto"]["scale_ups"] >= 1, status
    assert status["streams"]["auto"]["last_scaling"].endswith("-> 8"), status
    assert "fixed" not in status["streams"]
    # records written across the reshards are all there
    total = 0
    for s in shards:
        it = client.get_shard_iterator(StreamName="auto", ShardId=s["ShardId"],
                                       ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            out = client.get_records(ShardIterator=it)
            total += len(out["Records"])
            if not out["Records"]:
                break
            it = out.get("NextShardIterator")
    assert total == 50 * len(seen)


# ---- resource policy enforcement ------------------------------------------------------------------
OTHER_KEY = "AKIDKINEDGEOTHER"


def test_resource_policy_deny_is_enforced_for_api_keys(gateway_factory):
    """Deny statements refuse the keys, actions and streams they name (AccessDeniedException,
    AWS's wording); other keys, actions and streams are untouched; deleting the policy lifts it."""
    secret = "s3cret-ops"
    gw = gateway_factory(credentials=True, env={TEST_SECRET_ENV: secret, "OTHER_SECRET": "other-s3cret"},
                         extra_config=f"""
[[api.credentials]]
access_key_id = "{OTHER_KEY}"
secret_env = "OTHER_SECRET"
""")
    admin = gw.client(key=TEST_KEY, secret=secret)
    other = gw.client(key=OTHER_KEY, secret="other-s3cret")
    create_stream(admin, "guarded", 1)
    create_stream(admin, "open", 1)
    arn = ARN_PREFIX + "guarded"
    deny_writes = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kinesis:*",
         "Resource": arn},
        {"Effect": "Deny", "Principal": {"AWS": [OTHER_KEY]}, "Action": ["kinesis:Put*", "kinesis:AddTagsToStream"],
         "Resource": "arn:aws:kinesis:*:*:stream/guarded"},
    ]})
    admin.put_resource_policy(ResourceARN=arn, Policy=deny_writes)
    err = expect_error("AccessDeniedException", other.put_record, StreamName="guarded", Data=b"x",
                       PartitionKey="k", mentions=["explicit deny"])
    assert f"user/{OTHER_KEY}" in err["Error"]["Message"] and "kinesis:PutRecord" in err["Error"]["Message"]
    expect_error("AccessDeniedException", other.put_records, StreamARN=arn,
                 Records=[{"Data": b"x", "PartitionKey": "k"}])
    expect_error("AccessDeniedException", other.add_tags_to_stream, StreamName="guarded", Tags={"a": "b"})
    # what the Deny does not name still works: other actions, other streams, other keys
    shard = other.list_shards(StreamName="guarded")["Shards"][0]["ShardId"]
    admin.put_record(StreamName="guarded", Data=b"from-admin", PartitionKey="k")
    it = other.get_shard_iterator(StreamName="guarded", ShardId=shard,
                                  ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    assert [r["Data"] for r in other.get_records(ShardIterator=it)["Records"]] == [b"from-admin"]
    other.put_record(StreamName="open", Data=b"x", PartitionKey="k")

    # GetRecords is judged by the iterator's stream
    deny_reads = json.dumps({"Statement": [
        {"Effect": "Deny", "Principal": {"AWS": OTHER_KEY}, "Action": "kinesis:GetRecords", "Resource": arn}]})
    admin.put_resource_policy(ResourceARN=arn, Policy=deny_reads)
    expect_error("AccessDeniedException", other.get_records, ShardIterator=it)
    other.put_record(StreamName="guarded", Data=b"now-allowed", PartitionKey="k")

    # a policy that would lock its own key out of changing it is refused
    lockout = json.dumps({"Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "kinesis:*", "Resource": "*"}]})
    expect_error("InvalidArgumentException", admin.put_resource_policy, ResourceARN=arn, Policy=lockout,
                 mentions=["could not be changed"])
    assert admin.get_resource_policy(ResourceARN=arn)["Policy"] == deny_reads
    # ... but another key may deny everyone else
    deny_others = json.dumps({"Statement": [
        {"Effect": "Deny", "Principal": {"AWS": OTHER_KEY}, "Action": "kinesis:*", "Resource": "*"}]})
    admin.put_resource_policy(ResourceARN=arn, Policy=deny_others)
    expect_error("AccessDeniedException", other.describe_stream_summary, StreamName="guarded")
    expect_error("AccessDeniedException", other.delete_resource_policy, ResourceARN=arn)
    expect_error("AccessDeniedException", other.delete_stream, StreamName="guarded")

    # durable: enforced after a restart; deleting the policy lifts it
    gw.restart()
    admin = gw.client(key=TEST_KEY, secret=secret)
    other = gw.client(key=OTHER_KEY, secret="other-s3cret")
    expect_error("AccessDeniedException", other.put_record, StreamName="guarded", Data=b"x", PartitionKey="k")
    admin.delete_resource_policy(ResourceARN=arn)
    other.put_record(StreamName="guarded", Data=b"x", PartitionKey="k")


def test_write_refusals_counted_per_shard(gateway_factory):
    """WriteProvisionedThroughputExceeded counts the records a reject_new quota refuses, on the
    shard each was routed to (PutRecords entries and PutRecord alike)."""
    gw = gateway_factory(extra_config="""
[[streams]]
name = "quota"
shards = 2
max_bytes = "1MiB"
on_full = "reject_new"
""")
    client = gw.client()
    client.enable_enhanced_monitoring(StreamName="quota", ShardLevelMetrics=["WriteProvisionedThroughputExceeded"])
    refused = 0
    for b in range(8):  # 8 x 250 KiB: twice the quota
        batch = [{"Data": b"." * 10240, "PartitionKey": f"b{b}k{i}"} for i in range(25)]
        refused += client.put_records(StreamName="quota", Records=batch)["FailedRecordCount"]
    assert refused > 0
    expect_error("ProvisionedThroughputExceededException", client.put_record, StreamName="quota",
                 Data=b"." * 10240, PartitionKey="one-more")
    m = metric_samples(requests.get(f"{gw.url}/metrics", timeout=10).text)
    counted = {dict(ls)["shard"]: v for (n, ls), v in m.items()
               if n == "kinedge_shard_write_provisioned_throughput_exceeded_total"}
    assert set(counted) == {"shardId-000000000000", "shardId-000000000001"}
    assert sum(counted.values()) == refused + 1
