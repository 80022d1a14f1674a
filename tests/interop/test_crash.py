"""Durability: graceful restart keeps everything; SIGKILL loses nothing that was acknowledged.

The crash loop (test_crash_loop_http_and_mqtt) kills the gateway KINEDGE_CRASH_CYCLES times
(default 10) under combined boto3 PutRecords/PutRecord and paho-mqtt QoS 1 load. As a bench,
100 cycles (17 minutes with a debug build on a shared 2-core machine at load ~12):

    KINEDGE_CRASH_CYCLES=100 KINEDGE_BIN=$PWD/target/debug/kinedge \
        python -m pytest tests/interop/test_crash.py -k crash_loop -q -s -p no:cacheprovider

It prints one line of figures (acknowledged, stored, lost, restart times); KINEDGE_CRASH_SEED
replays the kill times of a run. Measured 2026-12-06 (seed 34030956): cycles=100 acked=123946
(http=64270 mqtt=59676) stored=128574 lost=0 restart_s max=5.32 mean=1.63 wall_s=1023.
"""

import os
import random
import threading
import time

import pytest
from botocore.exceptions import ClientError

from kutil import (assert_seq, create_stream, expect_error, flatten, list_all_shards, make_client,
                   read_all, rng, unique)


def _shape(shards):
    return [(s["ShardId"], rng(s), s.get("ParentShardId"), s.get("AdjacentParentShardId"),
             s["SequenceNumberRange"].get("StartingSequenceNumber"),
             s["SequenceNumberRange"].get("EndingSequenceNumber")) for s in shards]


def _records(c, name):
    return [(r["ShardId"], r["SequenceNumber"], r["PartitionKey"], r["Data"], r["ApproximateArrivalTimestamp"])
            for r in flatten(read_all(c, name))]


def test_sigterm_restart_keeps_everything(gateway_factory):
    gw = gateway_factory(name="persist")
    c = gw.client()
    create_stream(c, "p", 2, Tags={"team": "edge", "env": "test"})
    c.increase_stream_retention_period(StreamName="p", RetentionPeriodHours=72)
    c.split_shard(StreamName="p", ShardToSplit="shardId-000000000001", NewStartingHashKey=str(3 * 2**126))
    create_stream(c, "p-other", 3)
    create_stream(c, "p-deleted", 1)
    c.put_record(StreamName="p-deleted", Data=b"bye", PartitionKey="k")
    c.delete_stream(StreamName="p-deleted")
    c.put_records(StreamName="p", Records=[{"Data": b"batch-%d" % i, "PartitionKey": f"k{i}"} for i in range(120)])
    for i in range(10):
        c.put_record(StreamName="p", Data=bytes([i]) * (i + 1), PartitionKey=f"single{i}")
    c.put_record(StreamName="p-other", Data=b"other", PartitionKey="o")

    shards_before = _shape(list_all_shards(c, "p"))
    summary_before = c.describe_stream_summary(StreamName="p")["StreamDescriptionSummary"]
    tags_before = c.list_tags_for_stream(StreamName="p")["Tags"]
    recs_before = _records(c, "p")
    other_before = _records(c, "p-other")
    names_before = sorted(c.list_streams(Limit=10000)["StreamNames"])
    assert len(recs_before) == 130

    rc = gw.stop()
    assert rc == 0, f"kinedge should exit 0 on SIGTERM within 10 s; exit status {rc}"
    gw.start()
    c = gw.client()

    assert sorted(c.list_streams(Limit=10000)["StreamNames"]) == names_before == ["p", "p-other"]
    assert _shape(list_all_shards(c, "p")) == shards_before
    summary = c.describe_stream_summary(StreamName="p")["StreamDescriptionSummary"]
    for k in ("StreamName", "StreamARN", "StreamStatus", "RetentionPeriodHours", "OpenShardCount",
              "StreamCreationTimestamp"):
        assert summary[k] == summary_before[k], f"{k}: {summary_before[k]!r} -> {summary[k]!r}"
    assert summary["RetentionPeriodHours"] == 72
    assert c.list_tags_for_stream(StreamName="p")["Tags"] == tags_before
    assert _records(c, "p") == recs_before
    assert _records(c, "p-other") == other_before
    expect_error("ResourceNotFoundException", c.describe_stream_summary, StreamName="p-deleted")

    # New data continues after the old: higher sequence numbers, new shard ids.
    last0 = max(int(s) for sh, s, *_ in recs_before if sh == "shardId-000000000000")
    r = c.put_record(StreamName="p", Data=b"after", PartitionKey="x", ExplicitHashKey="0")
    assert r["ShardId"] == "shardId-000000000000"
    assert int(r["SequenceNumber"]) > last0
    c.split_shard(StreamName="p", ShardToSplit="shardId-000000000000", NewStartingHashKey=str(2**125))
    ids = [s["ShardId"] for s in list_all_shards(c, "p")]
    assert ids == [f"shardId-{i:012d}" for i in range(6)], ids
    rc = gw.stop()
    assert rc == 0, f"exit status {rc} on the second SIGTERM"


# ---- crash test ------------------------------------------------------------------
N_PRODUCERS = 4
BATCH = 50
PAYLOAD = 100
STREAM = "crash"


def _payload(pid, rnd, n):
    return f"P{pid}|R{rnd}|{n:08d}|".encode().ljust(PAYLOAD, b"x")


def _key(pid, n):
    return f"p{pid}-k{n % 8}"


def _parse(data):
    head = data.split(b"|")
    return int(head[0][1:]), int(head[1][1:]), int(head[2])


class Producer(threading.Thread):
    def __init__(self, pid, port, rnd, stop, acked, stream=STREAM):
        super().__init__(daemon=True, name=f"producer-{pid}")
        self.pid, self.port, self.rnd, self.stop_ev, self.acked = pid, port, rnd, stop, acked
        self.stream = stream
        self.n = 0
        self.errors = []      # (monotonic time, repr)
        self.throttled = 0    # entries refused inside a 200 PutRecords
        self.calls = 0

    def run(self):
        c = make_client(self.port, read_timeout=10, connect_timeout=2)
        while not self.stop_ev.is_set():
            try:
                self.calls += 1
                if self.calls % 2:
                    batch = []
                    for _ in range(BATCH):
                        batch.append({"Data": _payload(self.pid, self.rnd, self.n), "PartitionKey": _key(self.pid, self.n)})
                        self.n += 1
                    resp = c.put_records(StreamName=self.stream, Records=batch)
                    assert len(resp["Records"]) == len(batch)
                    for req, res in zip(batch, resp["Records"]):
                        if "ErrorCode" in res:
                            self.throttled += 1
                        else:
                            self.acked.append((req["Data"], req["PartitionKey"], res["ShardId"], res["SequenceNumber"]))
                else:
                    data, key = _payload(self.pid, self.rnd, self.n), _key(self.pid, self.n)
                    self.n += 1
                    res = c.put_record(StreamName=self.stream, Data=data, PartitionKey=key)
                    self.acked.append((data, key, res["ShardId"], res["SequenceNumber"]))
            except Exception as e:  # connection errors once the gateway is killed
                self.errors.append((time.monotonic(), repr(e)[:300]))
                if self.stop_ev.wait(0.05):
                    break


def _verify(c, acked_by_pid, label):
    per_shard = read_all(c, STREAM)
    stored = flatten(per_shard)
    # per shard: strictly increasing sequence numbers in read order
    for sid, recs in per_shard.items():
        seqs = [assert_seq(r["SequenceNumber"]) for r in recs]
        assert all(a < b for a, b in zip(seqs, seqs[1:])), f"{label}: {sid} read order is not by increasing sequence number"
    # no record twice
    datas = [r["Data"] for r in stored]
    dup = len(datas) - len(set(datas))
    assert dup == 0, f"{label}: {dup} records appear more than once"
    # every stored record is intact (acknowledged or not)
    for r in stored:
        try:
            pid, _, n = _parse(r["Data"])
        except Exception:
            raise AssertionError(f"{label}: corrupt record {r['Data'][:60]!r} in {r['ShardId']}")
        assert len(r["Data"]) == PAYLOAD and r["PartitionKey"] == _key(pid, n), \
            f"{label}: record {r['Data'][:30]!r} has key {r['PartitionKey']!r}"
    index = {r["Data"]: r for r in stored}
    missing, wrong = [], []
    total = 0
    for pid, acked in acked_by_pid.items():
        last = {}
        for data, key, shard, seq in acked:
            total += 1
            r = index.get(data)
            if r is None:
                missing.append((data[:24], shard, seq))
                continue
            if (r["ShardId"], r["SequenceNumber"], r["PartitionKey"]) != (shard, seq, key):
                wrong.append((data[:24], (shard, seq, key), (r["ShardId"], r["SequenceNumber"], r["PartitionKey"])))
            s = int(seq)
            assert s > last.get(shard, -1), f"{label}: producer {pid} acks in {shard} not in sequence order"
            last[shard] = s
    assert not missing, f"{label}: {len(missing)} of {total} acknowledged records lost, e.g. {missing[:5]}"
    assert not wrong, f"{label}: {len(wrong)} acknowledged records changed, e.g. {wrong[:3]}"
    return total, len(stored)


@pytest.mark.timeout(200)
def test_sigkill_loses_no_acknowledged_record(gateway_factory):
    gw = gateway_factory(name="crash")
    c = gw.client()
    create_stream(c, STREAM, 4)
    acked_by_pid = {pid: [] for pid in range(N_PRODUCERS)}
    stats = []
    for rnd in range(3):
        stop = threading.Event()
        producers = [Producer(pid, gw.port, rnd, stop, acked_by_pid[pid]) for pid in range(N_PRODUCERS)]
        before = sum(len(v) for v in acked_by_pid.values())
        for p in producers:
            p.start()
        # ~2 s of load once every producer has had an answer (a sentinel, not a fixed time).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(p.calls > 1 for p in producers):
            time.sleep(0.02)
        time.sleep(2.0)
        kill_time = time.monotonic()
        gw.kill()
        stop.set()
        for p in producers:
            p.join(30)
            assert not p.is_alive(), f"{p.name} still running 30 s after the kill"
        early = [e for p in producers for t, e in p.errors if t < kill_time]
        assert not early, f"round {rnd}: requests failed while the gateway was up: {early[:3]}"
        acked_now = sum(len(v) for v in acked_by_pid.values()) - before
        assert acked_now > 0, f"round {rnd}: nothing acknowledged"

        t0 = time.monotonic()
        gw.start()
        restart_s = time.monotonic() - t0
        c = gw.client()
        s = c.describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"]
        assert (s["StreamStatus"], s["OpenShardCount"]) == ("ACTIVE", 4)
        total, stored = _verify(c, acked_by_pid, f"after kill #{rnd + 1}")
        stats.append(dict(round=rnd, acked_this_round=acked_now, acked_total=total, stored=stored,
                          throttled=sum(p.throttled for p in producers), restart_s=round(restart_s, 2)))
    print("crash test stats:", stats)
    gw.stop()


# ---- crash loop: HTTP and MQTT at once ---------------------------------------------------------
LOOP_STREAM = "loop"
LOOP_HTTP_PRODUCERS = 2
LOOP_DEVICES = 3
LOOP_INFLIGHT = 20
LOOP_MAX_PER_CYCLE = 60000          # below paho's 16-bit packet id space
CRASH_CYCLES = int(os.environ.get("KINEDGE_CRASH_CYCLES", "10"))
LOOP_STREAMS = f"""
[[streams]]
name = "{LOOP_STREAM}"
shards = 4
"""
LOOP_ROUTES = f"""
[[routes]]
topic = "devices/+/telemetry"
stream = "{LOOP_STREAM}"
partition_key = "{{device}}"
format = "raw"
"""


def _mqtt_payload(dev, cycle, n):
    return f"C{dev}|R{cycle}|{n:08d}|".encode().ljust(PAYLOAD, b"y")


class MqttProducer(threading.Thread):
    """paho-mqtt QoS 1 (3.1.1 or 5) with up to LOOP_INFLIGHT publishes in flight; keeps the
    payload numbers whose PUBACK arrived with a success code, in PUBACK order."""

    def __init__(self, gw, dev, cycle, stop, version):
        from mqttutil import Paho
        super().__init__(daemon=True, name=f"mqtt-{dev}")
        self.dev, self.cycle, self.stop_ev = dev, cycle, stop
        self.sem = threading.Semaphore(LOOP_INFLIGHT)
        self.mid_to_n: dict[int, list[int]] = {}
        self.ack_mids: list[tuple[int, int]] = []     # (mid, reason) in PUBACK order
        self.ack_lock = threading.Lock()
        self.sent = 0
        self.c = Paho(gw, f"dev-{dev}", version=version, max_inflight=LOOP_INFLIGHT, connect=False)
        self.c.publish_hook = self._acked
        self.c.connect(timeout=30)

    def _acked(self, mid, reason):
        with self.ack_lock:
            self.ack_mids.append((mid, reason))
        self.sem.release()

    def run(self):
        import paho.mqtt.client as paho_client
        topic = f"devices/dev-{self.dev}/telemetry"
        try:
            while not self.stop_ev.is_set() and self.sent < LOOP_MAX_PER_CYCLE:
                if not self.sem.acquire(timeout=0.1):
                    continue
                n = self.sent
                # No lock of ours around publish(): paho calls on_publish under its own mutex.
                info = self.c.c.publish(topic, _mqtt_payload(self.dev, self.cycle, n), qos=1)
                if info.rc != paho_client.MQTT_ERR_SUCCESS:
                    break
                self.mid_to_n.setdefault(info.mid, []).append(n)
                self.sent += 1
        except Exception:  # the connection is lost at the kill
            pass

    def acked_ns(self) -> list[int]:
        with self.ack_lock:
            pending = {mid: list(ns) for mid, ns in self.mid_to_n.items()}
            out = []
            for mid, reason in self.ack_mids:
                ns = pending.get(mid)
                assert ns, f"dev-{self.dev}: PUBACK for unknown packet id {mid}"
                n = ns.pop(0)
                if reason < 0x80:
                    out.append(n)
            return out


def _verify_loop(c, http_acked, mqtt_acked, label):
    """Every acknowledged record is stored once, intact, where its ack said (HTTP), and in
    order per partition key; nothing stored was never sent."""
    per_shard = read_all(c, LOOP_STREAM)
    index = {}
    problems = []
    for sid, recs in per_shard.items():
        seqs = [assert_seq(r["SequenceNumber"]) for r in recs]
        if not all(a < b for a, b in zip(seqs, seqs[1:])):
            problems.append(f"{sid}: read order is not by increasing sequence number")
        for r in recs:
            data = r["Data"]
            if data in index:
                problems.append(f"{data[:30]!r} stored twice")
            index[data] = (sid, int(r["SequenceNumber"]), r["PartitionKey"])
            try:
                head = data.split(b"|")
                who, n = int(head[0][1:]), int(head[2])
                if data[:1] == b"P":
                    ok = data == _payload(who, int(head[1][1:]), n) and r["PartitionKey"] == _key(who, n)
                else:
                    ok = data == _mqtt_payload(who, int(head[1][1:]), n) and r["PartitionKey"] == f"dev-{who}"
            except (ValueError, IndexError):
                ok = False
            if not ok:
                problems.append(f"corrupt or misplaced record {data[:40]!r} key {r['PartitionKey']!r} in {sid}")
    lost = []
    for pid, acked in http_acked.items():
        last = {}
        for data, key, shard, seq in acked:
            got = index.get(data)
            if got is None:
                lost.append(data[:24])
                continue
            if got != (shard, int(seq), key):
                problems.append(f"{data[:24]!r} acked as {(shard, seq, key)}, stored as {got}")
            if int(seq) <= last.get(key, -1):
                problems.append(f"producer {pid}: key {key} acked out of sequence order")
            last[key] = int(seq)
    for dev, cycles in mqtt_acked.items():
        last = (None, -1)
        for cycle, ns in enumerate(cycles):
            for n in ns:
                data = _mqtt_payload(dev, cycle, n)
                got = index.get(data)
                if got is None:
                    lost.append(data[:24])
                    continue
                if last[0] == got[0] and got[1] <= last[1]:
                    problems.append(f"dev-{dev}: {data[:24]!r} stored before an earlier publish")
                last = (got[0], got[1])
    total = sum(len(v) for v in http_acked.values()) + sum(len(ns) for v in mqtt_acked.values() for ns in v)
    assert not lost, f"{label}: {len(lost)} of {total} acknowledged records lost, e.g. {lost[:5]}"
    assert not problems, f"{label}: {len(problems)} problems, e.g. {problems[:5]}"
    return total, len(index)


@pytest.mark.timeout(120 + 60 * CRASH_CYCLES)
def test_crash_loop_http_and_mqtt(gateway_factory):
    """KINEDGE_CRASH_CYCLES SIGKILLs at random moments under boto3 and paho-mqtt load at once;
    after the last restart every acknowledged record is there, in order, exactly once."""
    from mqttutil import mqtt_gateway, start_mqtt
    seed = int(os.environ.get("KINEDGE_CRASH_SEED", str(random.randrange(1 << 30))))
    print(f"crash loop: {CRASH_CYCLES} cycles, KINEDGE_CRASH_SEED={seed}")
    rand = random.Random(seed)
    gw = mqtt_gateway(gateway_factory, name="crash-loop", streams=LOOP_STREAMS, routes=LOOP_ROUTES,
                      devices={f"dev-{d}": {} for d in range(LOOP_DEVICES)}, start=False)
    start_mqtt(gw, timeout=60)
    http_acked = {pid: [] for pid in range(LOOP_HTTP_PRODUCERS)}
    mqtt_acked = {dev: [] for dev in range(LOOP_DEVICES)}
    restarts, started = [], time.monotonic()
    for cycle in range(CRASH_CYCLES):
        stop = threading.Event()
        # MQTT 3.1.1 and 5 devices side by side.
        mqtt = [MqttProducer(gw, dev, cycle, stop, 5 if dev % 2 else 4) for dev in range(LOOP_DEVICES)]
        http = [Producer(pid, gw.port, cycle, stop, http_acked[pid], stream=LOOP_STREAM)
                for pid in range(LOOP_HTTP_PRODUCERS)]
        for p in mqtt + http:
            p.start()
        # Wait for the first acknowledgements (a sentinel, not a sleep), then kill at a random
        # moment: mid-batch, mid-commit, or between commits.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
                all(p.ack_mids for p in mqtt) and all(p.calls > 1 for p in http)):
            time.sleep(0.02)
        time.sleep(rand.uniform(0.0, 1.0))
        kill_time = time.monotonic()
        gw.kill()
        stop.set()
        for p in mqtt + http:
            p.join(30)
            assert not p.is_alive(), f"cycle {cycle}: {p.name} still running 30 s after the kill"
        for p in mqtt:
            p.c.close()
            mqtt_acked[p.dev].append(p.acked_ns())
        early = [e for p in http for t, e in p.errors if t < kill_time]
        assert not early, f"cycle {cycle}: requests failed while the gateway was up: {early[:3]}"
        t0 = time.monotonic()
        start_mqtt(gw, timeout=60)
        restarts.append(time.monotonic() - t0)
    c = gw.client()
    total, stored = _verify_loop(c, http_acked, mqtt_acked, f"after {CRASH_CYCLES} kills")
    http_total = sum(len(v) for v in http_acked.values())
    assert http_total > 0 and total - http_total > 0, \
        f"both fronts must have acknowledged something: HTTP {http_total}, MQTT {total - http_total}"
    print(f"crash loop figures: cycles={CRASH_CYCLES} acked={total} (http={http_total} "
          f"mqtt={total - http_total}) stored={stored} lost=0 "
          f"restart_s max={max(restarts):.2f} mean={sum(restarts) / len(restarts):.2f} "
          f"wall_s={time.monotonic() - started:.0f}")
    assert gw.stop() == 0, "SIGTERM after the crash loop"
