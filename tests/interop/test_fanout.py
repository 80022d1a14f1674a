"""Enhanced fan-out against the real gateway: stream consumers (register, describe, list,
deregister) and SubscribeToShard's event stream, with boto3 (HTTP/1.1, JSON), raw CBOR
requests (the Java SDK's and KCL's content type) and the AWS SDK for JavaScript v3 over
HTTP/2 (tests/interop/js/fanout_sdk.mjs).
"""

import json
import os
import shutil
import struct
import subprocess
import threading
import time
import zlib
from pathlib import Path

import cbor2
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import EventStreamError

import kutil
from kutil import CBOR_CT, REGION, TEST_KEY, TEST_SECRET_ENV, create_stream, expect_error, unique

JS_DIR = Path(__file__).resolve().parent / "js"
SHARD0 = "shardId-000000000000"
ACCOUNT = kutil.ACCOUNT


def stream_arn(name):
    return f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{name}"


def register(client, stream, name):
    return client.register_stream_consumer(StreamARN=stream_arn(stream), ConsumerName=name)["Consumer"]


def subscribe(client, consumer_arn, position=None, shard=SHARD0):
    return client.subscribe_to_shard(ConsumerARN=consumer_arn, ShardId=shard,
                                     StartingPosition=position or {"Type": "TRIM_HORIZON"})


def put(client, stream, data, key="k"):
    return client.put_record(StreamName=stream, Data=data, PartitionKey=key)["SequenceNumber"]


def collect(events, count, limit_events=10_000):
    """Reads events until `count` records arrived; returns (records, events)."""
    records, seen = [], []
    for event in events:
        body = event["SubscribeToShardEvent"]
        seen.append(body)
        records.extend(body["Records"])
        if len(records) >= count or len(seen) >= limit_events:
            break
    return records, seen


# ---- consumers ------------------------------------------------------------------------------
def test_register_describe_list_deregister(client):
    s = unique("fo")
    create_stream(client, s)
    before = client.describe_stream_summary(StreamName=s)["StreamDescriptionSummary"]
    assert before["ConsumerCount"] == 0
    c = register(client, s, "app-1")
    assert c["ConsumerName"] == "app-1"
    assert c["ConsumerStatus"] == "CREATING"
    created = int(c["ConsumerCreationTimestamp"].timestamp())
    assert c["ConsumerARN"] == f"{stream_arn(s)}/consumer/app-1:{created}"
    for how in ({"ConsumerARN": c["ConsumerARN"]},
                {"StreamARN": stream_arn(s), "ConsumerName": "app-1"}):
        d = client.describe_stream_consumer(**how)["ConsumerDescription"]
        assert d["ConsumerARN"] == c["ConsumerARN"]
        assert d["ConsumerStatus"] == "ACTIVE"
        assert d["StreamARN"] == stream_arn(s)
    register(client, s, "app-2")
    listed = client.list_stream_consumers(StreamARN=stream_arn(s))["Consumers"]
    assert [x["ConsumerName"] for x in listed] == ["app-1", "app-2"]
    assert all(x["ConsumerStatus"] == "ACTIVE" for x in listed)
    summary = client.describe_stream_summary(StreamName=s)["StreamDescriptionSummary"]
    assert summary["ConsumerCount"] == 2
    expect_error("ResourceInUseException", register, client, s, "app-1", mentions=["app-1"])
    client.deregister_stream_consumer(ConsumerARN=c["ConsumerARN"])
    client.deregister_stream_consumer(StreamARN=stream_arn(s), ConsumerName="app-2")
    expect_error("ResourceNotFoundException", client.describe_stream_consumer,
                 ConsumerARN=c["ConsumerARN"], mentions=["app-1"])
    expect_error("ResourceNotFoundException", client.deregister_stream_consumer,
                 StreamARN=stream_arn(s), ConsumerName="app-2", mentions=["app-2"])
    assert client.list_stream_consumers(StreamARN=stream_arn(s))["Consumers"] == []
    assert client.describe_stream_summary(StreamName=s)["StreamDescriptionSummary"]["ConsumerCount"] == 0


def test_consumer_limits_and_pages(client):
    s = unique("fo")
    create_stream(client, s)
    for i in range(20):
        register(client, s, f"c{i:02d}")
    expect_error("LimitExceededException", register, client, s, "one-too-many", mentions=["20"])
    names, token = [], None
    while True:
        kw = {"NextToken": token} if token else {}
        page = client.list_stream_consumers(StreamARN=stream_arn(s), MaxResults=7, **kw)
        assert len(page["Consumers"]) <= 7
        names += [c["ConsumerName"] for c in page["Consumers"]]
        token = page.get("NextToken")
        if not token:
            break
    assert names == [f"c{i:02d}" for i in range(20)]
    expect_error("InvalidArgumentException", client.list_stream_consumers,
                 StreamARN=stream_arn(s), NextToken="bm90LWEtdG9rZW4", mentions=["NextToken"])
    created = client.describe_stream_summary(StreamName=s)["StreamDescriptionSummary"]["StreamCreationTimestamp"]
    assert len(client.list_stream_consumers(StreamARN=stream_arn(s),
                                            StreamCreationTimestamp=created)["Consumers"]) == 20
    expect_error("ResourceNotFoundException", client.list_stream_consumers,
                 StreamARN=stream_arn(s), StreamCreationTimestamp=created.timestamp() - 3600)


def test_consumer_input_errors(client, raw_client):
    s = unique("fo")
    create_stream(client, s)
    expect_error("ValidationException", raw_client.register_stream_consumer,
                 StreamARN=stream_arn(s), ConsumerName="bad name",
                 mentions=["[a-zA-Z0-9_.-]+"])
    expect_error("ValidationException", raw_client.register_stream_consumer,
                 StreamARN=stream_arn(s), ConsumerName="a" * 129, mentions=["128"])
    expect_error("ValidationException", raw_client.register_stream_consumer,
                 StreamARN="telemetry", ConsumerName="a", mentions=["streamARN"])
    expect_error("ValidationException", raw_client.register_stream_consumer,
                 StreamARN=stream_arn(s), mentions=["consumerName"])
    expect_error("ResourceNotFoundException", client.register_stream_consumer,
                 StreamARN=stream_arn(unique("missing")), ConsumerName="a", mentions=["not found"])
    expect_error("InvalidArgumentException", raw_client.describe_stream_consumer,
                 ConsumerName="a", mentions=["ConsumerARN"])
    expect_error("ValidationException", raw_client.describe_stream_consumer,
                 ConsumerARN=f"{stream_arn(s)}/consumer/a", mentions=["consumerARN"])
    expect_error("ResourceNotFoundException", client.describe_stream_consumer,
                 ConsumerARN=f"{stream_arn(s)}/consumer/a:1700000000")
    expect_error("ValidationException", raw_client.list_stream_consumers,
                 StreamARN=stream_arn(s), MaxResults=0, mentions=["maxResults"])


def test_max_consumers_per_stream_is_configurable(gateway_factory):
    gw = gateway_factory(start=False)
    config = gw.config_path.read_text()
    gw.config_path.write_text(config.replace("[api]\n", "[api]\nmax_consumers_per_stream = 3\n", 1))
    c = gw.start().client()
    s = unique("fo")
    create_stream(c, s)
    for i in range(3):
        register(c, s, f"c{i}")
    expect_error("LimitExceededException", register, c, s, "c3", mentions=["3"])


def test_consumers_survive_a_restart_and_go_with_their_stream(gateway_factory):
    gw = gateway_factory()
    c = gw.client()
    s = unique("fo")
    create_stream(c, s)
    consumer = register(c, s, "durable")
    gw.restart()
    c = gw.client()
    d = c.describe_stream_consumer(ConsumerARN=consumer["ConsumerARN"])["ConsumerDescription"]
    assert d["ConsumerName"] == "durable" and d["ConsumerStatus"] == "ACTIVE"
    assert c.describe_stream_summary(StreamName=s)["StreamDescriptionSummary"]["ConsumerCount"] == 1
    # As in Kinesis, a stream with consumers is deleted only with EnforceConsumerDeletion.
    expect_error("ResourceInUseException", c.delete_stream, StreamName=s, mentions=["EnforceConsumerDeletion"])
    c.delete_stream(StreamName=s, EnforceConsumerDeletion=True)
    create_stream(c, s)
    assert c.list_stream_consumers(StreamARN=stream_arn(s))["Consumers"] == []
    expect_error("ResourceNotFoundException", c.describe_stream_consumer,
                 ConsumerARN=consumer["ConsumerARN"])


# ---- SubscribeToShard -----------------------------------------------------------------------
def test_records_before_and_while_subscribed_arrive_in_order(client, gw):
    s = unique("fo")
    create_stream(client, s)
    arn = register(client, s, "reader")["ConsumerARN"]
    before = [put(client, s, f"before-{i}".encode()) for i in range(30)]
    sub = subscribe(client, arn)
    assert sub["ResponseMetadata"]["HTTPHeaders"]["content-type"] == "application/vnd.amazon.eventstream"
    events = iter(sub["EventStream"])
    first = next(events)["SubscribeToShardEvent"]
    during = []

    def producer():
        c2 = gw.client()
        during.extend(put(c2, s, f"during-{i}".encode()) for i in range(30))

    t = threading.Thread(target=producer)
    t.start()
    records, seen = collect(events, 60 - len(first["Records"]))
    t.join(30)
    records = first["Records"] + records
    seen = [first] + seen
    assert [r["Data"] for r in records] == [f"before-{i}".encode() for i in range(30)] + \
        [f"during-{i}".encode() for i in range(30)]
    assert [r["SequenceNumber"] for r in records] == before + during
    assert all(r["PartitionKey"] == "k" for r in records)
    for body in seen:
        assert body["MillisBehindLatest"] >= 0
        if body["Records"]:
            assert body["ContinuationSequenceNumber"] == body["Records"][-1]["SequenceNumber"]
    sub["EventStream"].close()

    # Resuming after a continuation number gives exactly what came after it.
    mid = seen[0]["ContinuationSequenceNumber"]
    n_first = len(seen[0]["Records"])
    sub2 = subscribe_when_free(client, arn, {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": mid})
    rest, _ = collect(sub2["EventStream"], 60 - n_first)
    assert [r["SequenceNumber"] for r in rest] == (before + during)[n_first:]
    sub2["EventStream"].close()


def subscribe_when_free(client, arn, position=None, shard=SHARD0):
    """A subscription of the same consumer and shard can take over 5 s after the last one
    started (Kinesis's rule); until then the gateway answers ResourceInUseException."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return subscribe(client, arn, position, shard)
        except client.exceptions.ResourceInUseException:
            if time.monotonic() > deadline:
                pytest.fail("the consumer's subscription was still in use after 30 s")
            time.sleep(0.5)


def take_over(client, arn):
    subscribe_when_free(client, arn, {"Type": "LATEST"})["EventStream"].close()


def ends_with_error(events, code):
    """Reads a subscription to its end; it must end with an exception event of type `code`."""
    with pytest.raises(EventStreamError) as e:
        for _ in events:
            pass
    assert e.value.response["Error"]["Code"] == code, e.value.response


def test_starting_positions(client):
    s = unique("fo")
    create_stream(client, s)
    arn = register(client, s, "positions")["ConsumerARN"]
    seqs = [put(client, s, f"r{i}".encode()) for i in range(5)]
    cases = [
        ({"Type": "AT_SEQUENCE_NUMBER", "SequenceNumber": seqs[2]}, seqs[2:]),
        ({"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": seqs[2]}, seqs[3:]),
        ({"Type": "AT_TIMESTAMP", "Timestamp": 0}, seqs),
    ]
    for position, expected in cases:
        sub = subscribe_when_free(client, arn, position)
        records, _ = collect(sub["EventStream"], len(expected))
        assert [r["SequenceNumber"] for r in records] == expected, position
        sub["EventStream"].close()
    # LATEST: only what is put after the subscription started.
    sub = subscribe_when_free(client, arn, {"Type": "LATEST"})
    events = iter(sub["EventStream"])
    first = next(events)["SubscribeToShardEvent"]
    assert first["Records"] == []
    assert first["ContinuationSequenceNumber"] == seqs[-1]
    new = put(client, s, b"after")
    records, _ = collect(events, 1)
    assert [r["SequenceNumber"] for r in records] == [new]
    sub["EventStream"].close()


def test_one_subscription_per_consumer_and_shard(client):
    s = unique("fo")
    create_stream(client, s, shards=2)
    a = register(client, s, "a")["ConsumerARN"]
    b = register(client, s, "b")["ConsumerARN"]
    first = subscribe(client, a)
    expect_error("ResourceInUseException", subscribe, client, a, mentions=["subscription"])
    # Another shard of the same consumer, and another consumer, are fine.
    subscribe(client, a, shard="shardId-000000000001")["EventStream"].close()
    subscribe(client, b)["EventStream"].close()
    # 5 s later a new subscription takes over: the old stream ends with ResourceInUseException.
    take_over(client, a)
    ends_with_error(first["EventStream"], "ResourceInUseException")


def test_subscribe_input_errors(client, raw_client):
    s = unique("fo")
    create_stream(client, s)
    arn = register(client, s, "errs")["ConsumerARN"]
    expect_error("ResourceNotFoundException", subscribe, client, f"{stream_arn(s)}/consumer/nobody:1700000000")
    expect_error("ResourceNotFoundException", subscribe, client, arn, shard="shardId-000000000007",
                 mentions=["shardId-000000000007"])
    expect_error("InvalidArgumentException", subscribe, client, arn, {"Type": "AT_SEQUENCE_NUMBER"},
                 mentions=["SequenceNumber"])
    expect_error("InvalidArgumentException", subscribe, client, arn, {"Type": "AT_TIMESTAMP"},
                 mentions=["timestamp"])
    expect_error("ValidationException", raw_client.subscribe_to_shard, ConsumerARN=arn, ShardId=SHARD0,
                 StartingPosition={"Type": "SOMETIME"}, mentions=["enum"])
    expect_error("ValidationException", raw_client.subscribe_to_shard, ConsumerARN=arn, ShardId=SHARD0,
                 mentions=["startingPosition"])
    expect_error("ValidationException", raw_client.subscribe_to_shard, ConsumerARN="nope", ShardId=SHARD0,
                 StartingPosition={"Type": "LATEST"}, mentions=["consumerARN"])


def test_a_closed_shard_ends_with_its_children(client):
    s = unique("fo")
    create_stream(client, s)
    arn = register(client, s, "resharding")["ConsumerARN"]
    seqs = [put(client, s, f"r{i}".encode()) for i in range(3)]
    client.split_shard(StreamName=s, ShardToSplit=SHARD0, NewStartingHashKey=str(2**127))
    kutil.wait_active(client, s)
    sub = subscribe(client, arn)
    bodies = [e["SubscribeToShardEvent"] for e in sub["EventStream"]]  # ends by itself
    records = [r for b in bodies for r in b["Records"]]
    assert [r["SequenceNumber"] for r in records] == seqs
    last = bodies[-1]
    assert last.get("ContinuationSequenceNumber") is None
    assert sorted(c["ShardId"] for c in last["ChildShards"]) == ["shardId-000000000001", "shardId-000000000002"]
    assert all(c["ParentShards"] == [SHARD0] for c in last["ChildShards"])


def test_deregistering_ends_the_subscription(client):
    s = unique("fo")
    create_stream(client, s)
    arn = register(client, s, "leaving")["ConsumerARN"]
    sub = subscribe(client, arn)
    events = iter(sub["EventStream"])
    next(events)
    client.deregister_stream_consumer(ConsumerARN=arn)
    # Seen at the subscription's next wake-up: a commit or its 5-second heartbeat.
    ends_with_error(events, "ResourceNotFoundException")


def test_deleting_the_stream_ends_its_subscriptions(client):
    s = unique("fo")
    create_stream(client, s)
    arn = register(client, s, "doomed")["ConsumerARN"]
    sub = subscribe(client, arn)
    events = iter(sub["EventStream"])
    next(events)
    client.delete_stream(StreamName=s, EnforceConsumerDeletion=True)
    ends_with_error(events, "ResourceNotFoundException")


def test_a_subscription_ends_when_the_gateway_stops(gateway_factory):
    gw = gateway_factory()
    c = gw.client()
    s = unique("fo")
    create_stream(c, s)
    arn = register(c, s, "stopping")["ConsumerARN"]
    sub = subscribe(c, arn)
    events = iter(sub["EventStream"])
    next(events)
    # Without the stop signal the open stream would hold the stop for its 5 minutes (the
    # gateway gives requests in flight 20 s, the fixture kills after 15).
    assert gw.stop(timeout=15) == 0
    try:  # the stream ends (cleanly, or with the connection)
        for _ in events:
            pass
    except Exception:
        pass


# ---- CBOR, raw ------------------------------------------------------------------------------
def read_frames(raw):
    """Event-stream frames from a file-like body, each checked against its two CRCs:
    yields (headers dict, payload)."""
    while True:
        prelude = raw.read(12)
        if not prelude:
            return
        assert len(prelude) == 12, prelude
        total, headers_len, prelude_crc = struct.unpack(">III", prelude)
        assert zlib.crc32(prelude[:8]) == prelude_crc
        rest = raw.read(total - 12)
        assert len(rest) == total - 12
        message, message_crc = prelude + rest[:-4], struct.unpack(">I", rest[-4:])[0]
        assert zlib.crc32(message) == message_crc
        headers, i, hb = {}, 0, rest[:headers_len]
        while i < len(hb):
            n = hb[i]
            name = hb[i + 1:i + 1 + n].decode()
            i += 1 + n
            assert hb[i] == 7, "string headers only"
            (vlen,) = struct.unpack(">H", hb[i + 1:i + 3])
            headers[name] = hb[i + 3:i + 3 + vlen].decode()
            i += 3 + vlen
        yield headers, rest[headers_len:-4]


def test_cbor_subscription(gw, client):
    s = unique("fo")
    create_stream(client, s)
    arn = register(client, s, "java-style")["ConsumerARN"]
    seqs = [put(client, s, bytes([0, 1, 2, i])) for i in range(3)]
    url = f"http://127.0.0.1:{gw.port}/"
    body = cbor2.dumps({"ConsumerARN": arn, "ShardId": SHARD0,
                              "StartingPosition": {"Type": "TRIM_HORIZON"}})
    hdrs = {"Content-Type": CBOR_CT, "X-Amz-Target": "Kinesis_20131202.SubscribeToShard"}
    req = AWSRequest(method="POST", url=url, data=body, headers=hdrs)
    SigV4Auth(Credentials(TEST_KEY, "secret"), "kinesis", REGION).add_auth(req)
    with requests.post(url, data=body, headers=dict(req.headers.items()), stream=True, timeout=30) as resp:
        assert resp.status_code == 200
        assert resp.headers["Content-Type"] == "application/vnd.amazon.eventstream"
        frames = read_frames(resp.raw)
        headers, payload = next(frames)
        assert headers[":message-type"] == "event"
        assert headers[":event-type"] == "initial-response"
        assert headers[":content-type"] == CBOR_CT
        headers, payload = next(frames)
        assert headers[":event-type"] == "SubscribeToShardEvent"
        assert headers[":content-type"] == CBOR_CT
        event = kutil.cbor_loads(payload)
        assert [r["Data"] for r in event["Records"]] == [bytes([0, 1, 2, i]) for i in range(3)]
        assert [r["SequenceNumber"] for r in event["Records"]] == seqs
        # CBOR timestamps are epoch milliseconds under tag 1, as the Java SDK reads them.
        at = event["Records"][0]["ApproximateArrivalTimestamp"]
        assert isinstance(at, kutil.Tag1) and at.value > 1_600_000_000_000
        assert event["ContinuationSequenceNumber"] == seqs[-1]


def test_exception_events_are_framed_as_aws_does(gw, client):
    """A subscription taken over ends with an exception message (raw: the headers AWS uses)."""
    s = unique("fo")
    create_stream(client, s)
    arn = register(client, s, "raw-exc")["ConsumerARN"]
    url = f"http://127.0.0.1:{gw.port}/"
    body = json.dumps({"ConsumerARN": arn, "ShardId": SHARD0,
                       "StartingPosition": {"Type": "LATEST"}}).encode()
    hdrs = {"Content-Type": kutil.JSON_CT, "X-Amz-Target": "Kinesis_20131202.SubscribeToShard"}
    req = AWSRequest(method="POST", url=url, data=body, headers=hdrs)
    SigV4Auth(Credentials(TEST_KEY, "secret"), "kinesis", REGION).add_auth(req)
    with requests.post(url, data=body, headers=dict(req.headers.items()), stream=True, timeout=60) as resp:
        frames = read_frames(resp.raw)
        assert next(frames)[0][":event-type"] == "initial-response"
        take_over(client, arn)
        last = list(frames)[-1]
        assert last[0][":message-type"] == "exception"
        assert last[0][":exception-type"] == "ResourceInUseException"
        assert last[0][":content-type"] == "application/json"
        assert "took this one over" in json.loads(last[1])["message"]


# ---- the AWS SDK for JavaScript v3, HTTP/2 --------------------------------------------------
def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def server_pki(d):
    """A CA and a certificate for 127.0.0.1 signed by it, in `d`."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=kinedge test CA", cwd=d)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf", cwd=d)


@pytest.mark.parametrize("transport", ["h2c", "tls"])
def test_js_sdk_subscribe_to_shard_over_http2(gateway_factory, tmp_path, transport):
    """The client's default handler: HTTP/2 with prior knowledge over http://, h2 by ALPN over
    https://."""
    if shutil.which("node") is None or not (JS_DIR / "node_modules" / "@aws-sdk" / "client-kinesis").is_dir():
        pytest.fail("node or tests/interop/js/node_modules is missing: run scripts/install-deps --test")
    secret = "kinedge-fanout-secret"
    extra, ca = "", None
    if transport == "tls":
        server_pki(tmp_path)
        extra = f'[api.tls]\ncert = "{tmp_path / "server.crt"}"\nkey = "{tmp_path / "server.key"}"\n'
        ca = tmp_path / "ca.crt"
    gw = gateway_factory(credentials=True, env={TEST_SECRET_ENV: secret}, name=f"fanout-js-{transport}",
                         extra_config=extra, start=False)
    gw.tls_ca = ca
    gw.start()
    s = unique("fo")
    create = {"StreamName": s, "ShardCount": 1}
    r = requests.post(f"{gw.url}/", data=json.dumps(create), headers=signed_headers(gw.url, "CreateStream", create, secret),
                      verify=str(ca) if ca else True, timeout=30)
    assert r.status_code == 200, r.text
    env = dict(os.environ, AWS_ACCESS_KEY_ID=TEST_KEY, AWS_SECRET_ACCESS_KEY=secret)
    env.pop("AWS_PROFILE", None)
    if ca:
        env["NODE_EXTRA_CA_CERTS"] = str(ca)
    proc = subprocess.run(["node", str(JS_DIR / "fanout_sdk.mjs"), gw.url, stream_arn(s), "js-app", "40"],
                          cwd=JS_DIR, env=env, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["handler"] == "NodeHttp2Handler"
    assert out["registeredStatus"] == "CREATING" and out["describedStatus"] == "ACTIVE"
    assert out["data"] == [f"fanout-{i}" for i in range(40)]
    for e in out["events"]:
        if e["records"]:
            assert e["continuation"] == e["last"]


def signed_headers(url, op, body, secret):
    hdrs = {"Content-Type": kutil.JSON_CT, "X-Amz-Target": f"Kinesis_20131202.{op}"}
    req = AWSRequest(method="POST", url=f"{url}/", data=json.dumps(body), headers=hdrs)
    SigV4Auth(Credentials(TEST_KEY, secret), "kinesis", REGION).add_auth(req)
    return dict(req.headers.items())
