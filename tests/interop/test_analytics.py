"""Analytics applications on the real gateway: exactly-once output across SIGKILL, MQTT alerts,
the error output, and status.

The exactly-once test kills the gateway several times while a producer writes telemetry and a
tumbling-window application aggregates it; afterwards the output stream must hold exactly the
windows a run without crashes gives (computed here from the stored input): no gap, no duplicate.
"""

import json
import random
import threading
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone

import pytest
import requests

from kutil import create_stream, flatten, read_all
from mqttutil import Paho, mqtt_gateway, wait_for

BASE = datetime(2026, 1, 1, tzinfo=timezone.utc)


def ts_text(ms: int) -> str:
    t = BASE + timedelta(milliseconds=ms)
    return t.strftime("%Y-%m-%d %H:%M:%S.") + f"{t.microsecond // 1000:03d}"


def app_config(name: str, sql: str) -> str:
    return f'[[analytics]]\nname = "{name}"\nsql = """\n{sql}\n"""\n'


TUMBLE_SQL = """
CREATE TABLE telemetry (device STRING, temp DOUBLE, ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts) WITH ('connector' = 'kinesis', 'stream' = 'telemetry',
  'format' = 'json', 'scan.stream.initpos' = 'TRIM_HORIZON');
CREATE TABLE per_second (window_start TIMESTAMP(3), device STRING, total DOUBLE, n BIGINT)
  WITH ('connector' = 'kinesis', 'stream' = 'per-second', 'format' = 'json');
INSERT INTO per_second
SELECT window_start, device, SUM(temp), COUNT(*)
FROM TABLE(TUMBLE(TABLE telemetry, DESCRIPTOR(ts), INTERVAL '1' SECOND))
GROUP BY window_start, window_end, device;
"""


def status(gw, name):
    r = requests.get(f"{gw.url}/analytics/{name}", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def expected_windows(rows):
    """What a run without crashes gives over the stored rows, in stored order: Flink's
    semantics with WATERMARK FOR ts AS ts (the watermark is the largest ts before the row; a row
    whose 1 s window already fired is late). A batch the producer sent again after a kill is
    stored twice, and its second copy's rows behind the watermark are late. Every window whose
    end - 1 <= the final watermark fires: per (window, device) (sum, count). Returns (windows,
    late rows)."""
    wm = None
    late = 0
    out = defaultdict(lambda: [0.0, 0])
    for r in rows:
        start = r["ms"] - r["ms"] % 1000
        if wm is not None and start + 1000 - 1 <= wm:
            late += 1
            continue
        out[(ts_text(start), r["device"])][0] += r["temp"]
        out[(ts_text(start), r["device"])][1] += 1
        wm = r["ms"] if wm is None else max(wm, r["ms"])
    fired = {k: v for k, v in out.items()
             if datetime.strptime(k[0], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=timezone.utc)
             - BASE + timedelta(milliseconds=999) <= timedelta(milliseconds=wm)}
    return fired, late


def test_output_is_exactly_once_across_sigkill(gateway_factory):
    gw = gateway_factory(name="eo", extra_config=app_config("per-second", TUMBLE_SQL))
    c = gw.client()
    create_stream(c, "telemetry", 1)
    sent = {"n": 0}
    stop = threading.Event()
    lock = threading.Lock()

    def produce():
        i = 0
        while not stop.is_set():
            batch = []
            for _ in range(50):
                ms = i * 7  # strictly increasing event time, 7 ms apart
                batch.append({"Data": json.dumps({"device": f"d{i % 5}", "temp": float(i % 13), "ts": ts_text(ms)}).encode(),
                              "PartitionKey": f"d{i % 5}"})
                i += 1
            while not stop.is_set():
                try:
                    with lock:
                        client = c
                    r = client.put_records(StreamName="telemetry", Records=batch)
                    if r.get("FailedRecordCount", 0) == 0:
                        break
                except Exception:
                    time.sleep(0.2)
            sent["n"] = i

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    rnd = random.Random(20261206)
    for _ in range(3):
        wait_for(lambda: sent["n"] > 0, 30, "the producer to start")
        time.sleep(rnd.uniform(1.0, 3.0))
        gw.kill()
        time.sleep(rnd.uniform(0.1, 0.5))
        gw.start()
        with lock:
            c = gw.client()
    time.sleep(1.0)
    stop.set()
    producer.join(timeout=30)

    stored = [json.loads(r["Data"]) for r in flatten(read_all(c, "telemetry"))]
    assert len(stored) >= 1000, f"only {len(stored)} input records stored"
    for r in stored:
        t = datetime.strptime(r["ts"], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=timezone.utc)
        r["ms"] = int((t - BASE).total_seconds() * 1000)
    wait_for(lambda: status(gw, "per-second")["records_in"] >= len(stored), 120,
             f"the application to read all {len(stored)} input records")
    expected, late = expected_windows(stored)

    def output():
        return [json.loads(r["Data"]) for r in flatten(read_all(c, "per-second"))]

    wait_for(lambda: len(output()) >= len(expected), 60, f"{len(expected)} result records")
    got = output()
    keys = [(r["window_start"], r["device"]) for r in got]
    dups = {k for k in keys if keys.count(k) > 1}
    assert not dups, f"windows written more than once: {sorted(dups)[:5]}"
    assert set(keys) == set(expected), (
        f"missing {sorted(set(expected) - set(keys))[:5]}, extra {sorted(set(keys) - set(expected))[:5]}")
    for r in got:
        total, n = expected[(r["window_start"], r["device"])]
        assert r["n"] == n and abs(r["total"] - total) < 1e-9, f"{r} != sum {total}, count {n}"
    s = status(gw, "per-second")
    assert s["state"] == "running" and s["error"] is None, s
    assert s["late_records"] == late and s["error_records"] == 0, (s, late)


ALERT_SQL = """
CREATE TABLE telemetry (device STRING, temp DOUBLE) WITH ('connector' = 'kinesis',
  'stream' = 'telemetry', 'format' = 'json');
CREATE TABLE alerts (device STRING, temp DOUBLE, level STRING)
  WITH ('connector' = 'mqtt', 'topic' = 'alerts/{device}', 'format' = 'json');
INSERT INTO alerts
SELECT device, temp, CASE WHEN temp > 100 THEN 'critical' ELSE 'high' END FROM telemetry WHERE temp > 80;
"""


def test_threshold_alert_reaches_an_mqtt_subscriber_and_bad_records_go_to_the_error_stream(gateway_factory):
    gw = mqtt_gateway(gateway_factory, name="alerts",
                      devices={"watcher": {"subscribe": ["alerts/#"]}},
                      streams='[[streams]]\nname = "telemetry"\nshards = 1\n',
                      routes="", extra=app_config("alerts", ALERT_SQL))
    wait_for(lambda: status(gw, "alerts")["state"] == "running" and status(gw, "alerts")["commits"] >= 1, 30,
             "the application to start and fix its starting position")
    sub = Paho(gw, "watcher", version=5)
    assert sub.subscribe("alerts/#", qos=1) == [1]
    c = gw.client()
    c.put_records(StreamName="telemetry", Records=[
        {"Data": json.dumps({"device": "boiler-1", "temp": 85.5}).encode(), "PartitionKey": "boiler-1"},
        {"Data": json.dumps({"device": "boiler-2", "temp": 20.0}).encode(), "PartitionKey": "boiler-2"},
        {"Data": b"{not json", "PartitionKey": "broken"},
        {"Data": json.dumps({"device": "boiler-3", "temp": 120}).encode(), "PartitionKey": "boiler-3"},
    ])
    wait_for(lambda: len(sub.messages) >= 2, 30, "two alerts on alerts/#")
    got = sorted((m.topic, json.loads(m.payload)) for m in sub.messages)
    assert got == [("alerts/boiler-1", {"device": "boiler-1", "temp": 85.5, "level": "high"}),
                   ("alerts/boiler-3", {"device": "boiler-3", "temp": 120.0, "level": "critical"})], got
    wait_for(lambda: status(gw, "alerts")["error_records"] == 1, 30, "the bad record to be counted")
    errors = wait_for_records(c, "alerts-errors", 1)
    e = json.loads(errors[0]["Data"])
    assert e["reason"] == "parse" and e["data"] == "{not json" and e["application"] == "alerts", e
    assert "JSON" in e["message"], e
    s = status(gw, "alerts")
    assert s["state"] == "running" and s["records_in"] == 4 and s["records_out"] == 2, s
    sub.close()


def wait_for_records(c, stream, n):
    box = {}

    def enough():
        try:
            box["r"] = flatten(read_all(c, stream))
        except Exception:
            return False
        return len(box["r"]) >= n

    wait_for(enough, 30, f"{n} records in {stream}")
    return box["r"]


def test_a_failing_application_stops_alone_and_says_why(gateway_factory):
    orphan_sql = """
CREATE TABLE telemetry (device STRING, temp DOUBLE) WITH ('connector' = 'kinesis',
  'stream' = 'telemetry', 'format' = 'json');
CREATE TABLE out (device STRING, temp DOUBLE) WITH ('connector' = 'firehose',
  'delivery-stream' = 'no-such-delivery', 'format' = 'json');
INSERT INTO out SELECT device, temp FROM telemetry;
"""
    copy_sql = """
CREATE TABLE telemetry (device STRING, temp DOUBLE) WITH ('connector' = 'kinesis',
  'stream' = 'telemetry', 'format' = 'json', 'scan.stream.initpos' = 'TRIM_HORIZON');
CREATE TABLE copy (device STRING, temp DOUBLE) WITH ('connector' = 'kinesis',
  'stream' = 'copy', 'format' = 'json');
INSERT INTO copy SELECT device, temp * 2 FROM telemetry;
"""
    gw = gateway_factory(name="isolation", extra_config=app_config("orphan", orphan_sql) + app_config("copy", copy_sql))
    c = gw.client()
    create_stream(c, "telemetry", 1)
    c.put_record(StreamName="telemetry", PartitionKey="d", Data=json.dumps({"device": "d", "temp": 1.5}).encode())
    wait_for(lambda: status(gw, "orphan")["state"] == "failed", 30, "orphan to fail")
    s = status(gw, "orphan")
    assert "no-such-delivery" in s["error"], s
    copied = wait_for_records(c, "copy", 1)
    assert json.loads(copied[0]["Data"]) == {"device": "d", "temp": 3.0}
    assert status(gw, "copy")["state"] == "running"
    r = requests.get(f"{gw.url}/analytics", timeout=10).json()
    assert sorted(a["name"] for a in r["applications"]) == ["copy", "orphan"]
    assert requests.get(f"{gw.url}/health", timeout=10).status_code == 200


JOIN_SQL = """
CREATE TABLE temps (device STRING, temp DOUBLE, ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) WITH ('connector' = 'kinesis', 'stream' = 'temps',
  'format' = 'json', 'scan.stream.initpos' = 'TRIM_HORIZON');
CREATE TABLE levels (device STRING, level INT, ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) WITH ('connector' = 'kinesis', 'stream' = 'levels',
  'format' = 'json', 'scan.stream.initpos' = 'TRIM_HORIZON');
CREATE TABLE joined (window_start TIMESTAMP(3), device STRING, temp DOUBLE, level INT)
  WITH ('connector' = 'kinesis', 'stream' = 'joined', 'format' = 'json');
INSERT INTO joined
SELECT L.window_start, L.device, L.temp, R.level
FROM (SELECT * FROM TABLE(TUMBLE(TABLE temps, DESCRIPTOR(ts), INTERVAL '1' SECOND))) L
JOIN (SELECT * FROM TABLE(TUMBLE(TABLE levels, DESCRIPTOR(ts), INTERVAL '1' SECOND))) R
ON L.device = R.device AND L.window_start = R.window_start AND L.window_end = R.window_end;
"""


def test_a_window_join_of_two_streams_is_exactly_once_across_sigkill(gateway_factory):
    """Two producers write `temps` and `levels` (each value unique, event time increasing) while
    the gateway is killed and restarted; the joined output must be exactly the join of the
    stored inputs (a batch resent after a kill is stored twice and joins twice) over every
    window the final watermark (the smaller of the two inputs' - 5 s) has fired."""
    gw = gateway_factory(name="wj", extra_config=app_config("joined", JOIN_SQL))
    c = gw.client()
    create_stream(c, "temps", 1)
    create_stream(c, "levels", 1)
    stop = threading.Event()
    lock = threading.Lock()
    sent = {"temps": 0, "levels": 0}
    box = {"c": c}

    def produce(stream, field, step_ms):
        i = 0
        while not stop.is_set():
            batch = []
            for _ in range(40):
                row = {"device": f"d{i % 3}", field: (float(i) if field == "temp" else i),
                       "ts": ts_text(i * step_ms)}
                batch.append({"Data": json.dumps(row).encode(), "PartitionKey": row["device"]})
                i += 1
            while not stop.is_set():
                try:
                    with lock:
                        client = box["c"]
                    if client.put_records(StreamName=stream, Records=batch).get("FailedRecordCount", 0) == 0:
                        break
                except Exception:
                    time.sleep(0.2)
            sent[stream] = i
            time.sleep(0.01)

    threads = [threading.Thread(target=produce, args=a, daemon=True)
               for a in (("temps", "temp", 13), ("levels", "level", 29))]
    for t in threads:
        t.start()
    rnd = random.Random(20261207)
    for _ in range(2):
        wait_for(lambda: min(sent.values()) > 0, 30, "the producers to start")
        time.sleep(rnd.uniform(1.0, 3.0))
        gw.kill()
        time.sleep(rnd.uniform(0.1, 0.5))
        gw.start()
        with lock:
            box["c"] = gw.client()
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    c = box["c"]

    def stored(stream):
        rows = [json.loads(r["Data"]) for r in flatten(read_all(c, stream))]
        for r in rows:
            t = datetime.strptime(r["ts"], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=timezone.utc)
            r["ms"] = int((t - BASE).total_seconds() * 1000)
        return rows

    temps, levels = stored("temps"), stored("levels")
    assert len(temps) >= 400 and len(levels) >= 400, (len(temps), len(levels))
    final_wm = min(max(r["ms"] for r in temps), max(r["ms"] for r in levels)) - 5000
    by_window = defaultdict(lambda: ([], []))
    for side, rows in ((0, temps), (1, levels)):
        for r in rows:
            start = r["ms"] - r["ms"] % 1000
            if start + 1000 - 1 <= final_wm:
                by_window[(start, r["device"])][side].append(r)
    expected = Counter()
    for (start, device), (ls, rs) in by_window.items():
        for left in ls:
            for right in rs:
                expected[(ts_text(start), device, left["temp"], right["level"])] += 1
    wait_for(lambda: status(gw, "joined")["records_in"] >= len(temps) + len(levels), 120,
             "the application to read every input record")

    def output():
        return Counter((r["window_start"], r["device"], r["temp"], r["level"])
                       for r in (json.loads(x["Data"]) for x in flatten(read_all(c, "joined"))))

    n = sum(expected.values())
    wait_for(lambda: sum(output().values()) >= n, 60, f"{n} joined records")
    got = output()
    assert got == expected, (f"missing {list((expected - got).items())[:5]}, "
                             f"extra {list((got - expected).items())[:5]}")
    s = status(gw, "joined")
    assert s["state"] == "running" and s["error"] is None, s
    assert s["late_records"] == 0 and s["error_records"] == 0, s
