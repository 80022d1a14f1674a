"""Durability: graceful restart keeps everything; SIGKILL loses nothing that was acknowledged."""

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
    def __init__(self, pid, port, rnd, stop, acked):
        super().__init__(daemon=True, name=f"producer-{pid}")
        self.pid, self.port, self.rnd, self.stop_ev, self.acked = pid, port, rnd, stop, acked
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
                    resp = c.put_records(StreamName=STREAM, Records=batch)
                    assert len(resp["Records"]) == len(batch)
                    for req, res in zip(batch, resp["Records"]):
                        if "ErrorCode" in res:
                            self.throttled += 1
                        else:
                            self.acked.append((req["Data"], req["PartitionKey"], res["ShardId"], res["SequenceNumber"]))
                else:
                    data, key = _payload(self.pid, self.rnd, self.n), _key(self.pid, self.n)
                    self.n += 1
                    res = c.put_record(StreamName=STREAM, Data=data, PartitionKey=key)
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
        assert acked_now > 0, f"round {rnd}: nothing acknowledged in 2 s"

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
