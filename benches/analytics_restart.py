"""Analytics restart: SIGKILL with open windows, time to ready, and the results afterwards.

    .venv/bin/python benches/analytics_restart.py [--keys 1000] [--bin target/release/kinedge]

A release gateway with one application (1-minute tumbling COUNT/SUM per device, TRIM_HORIZON)
gets one record per device inside one minute, so `keys` windows are open; after the
application's checkpoint holds them (its first commit, forced by the window of a first
closing record), the gateway is killed with SIGKILL and started again. It reports the time
from the start to `/ready` and to the application running again, then closes the windows and
checks that each device's result is in the output exactly once with the right count and sum.
Issue 14's figure: 1,000 open windows, ready < 1 s, output identical.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import boto3
import requests

SQL = """
CREATE TABLE telemetry (device STRING, v DOUBLE, ts TIMESTAMP(3), WATERMARK FOR ts AS ts)
  WITH ('connector' = 'kinesis', 'stream' = 'telemetry', 'format' = 'json', 'scan.stream.initpos' = 'TRIM_HORIZON');
CREATE TABLE per_minute (window_start TIMESTAMP(3), device STRING, n BIGINT, total DOUBLE)
  WITH ('connector' = 'kinesis', 'stream' = 'per-minute', 'format' = 'json');
INSERT INTO per_minute SELECT window_start, device, COUNT(*), SUM(v)
FROM TABLE(TUMBLE(TABLE telemetry, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY window_start, window_end, device;
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--bin", default="target/release/kinedge")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="kinedge-restart-")
    port, mqtt = free_port(), free_port()
    cfg = os.path.join(work, "kinedge.toml")
    with open(cfg, "w") as f:
        f.write(f'[storage]\ndata_dir = "{work}/data"\nmin_free_disk = "1MiB"\n'
                f'[api]\nlisten = "127.0.0.1:{port}"\n[mqtt]\nlisten = "127.0.0.1:{mqtt}"\n'
                '[log]\nlevel = "warn"\n[[streams]]\nname = "telemetry"\nshards = 1\n'
                f'[[analytics]]\nname = "per-minute"\nsql = """{SQL}"""\n')
    url = f"http://127.0.0.1:{port}"
    log = open(os.path.join(work, "log"), "w")

    def start():
        t = time.monotonic()
        p = subprocess.Popen([a.bin, "run", "--config", cfg], stdout=log, stderr=subprocess.STDOUT)
        while True:
            try:
                if requests.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.005)
        ready = time.monotonic() - t
        return p, ready, t

    def status():
        return requests.get(f"{url}/analytics/per-minute", timeout=10).json()

    gw, _, _ = start()
    try:
        k = boto3.client("kinesis", endpoint_url=url, region_name="us-east-1",
                         aws_access_key_id="x", aws_secret_access_key="x")
        recs = [{"Data": json.dumps({"device": f"dev-{i:04d}", "v": float(i), "ts": f"2026-01-01 00:00:{i * 59 // a.keys:02d}.000"}).encode(),
                 "PartitionKey": f"dev-{i:04d}"} for i in range(a.keys)]
        for i in range(0, len(recs), 500):
            k.put_records(StreamName="telemetry", Records=recs[i:i + 500])
        # A record of an earlier minute's device closes nothing yet (watermark 00:00:59); the
        # commit after the state holds every open window comes when the input is caught up and
        # there is output: put one record in the next minute for a throwaway key whose window
        # of 23:59 fires.
        k.put_records(StreamName="telemetry", Records=[{"Data": json.dumps({"device": "x", "v": 0.0, "ts": "2025-12-31 23:59:00.000"}).encode(), "PartitionKey": "x"},
                                                       {"Data": json.dumps({"device": "x", "v": 0.0, "ts": "2026-01-01 00:00:59.500"}).encode(), "PartitionKey": "x"}])
        deadline = time.monotonic() + 60
        while status()["records_in"] < a.keys + 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        commits = status()["commits"]
        time.sleep(1.0)
        s = status()
        print(f"before the kill: records_in={s['records_in']} state_entries={s['state_entries']} commits={s['commits']} (was {commits})")
        gw.send_signal(signal.SIGKILL)
        gw.wait()
        gw, ready, t0 = start()
        while status()["state_entries"] < a.keys and time.monotonic() - t0 < 10:
            time.sleep(0.005)
        s = status()
        print(f"restart after SIGKILL with {s['state_entries']} open windows: ready in {ready * 1000:.0f} ms, "
              f"application running with its state in {(time.monotonic() - t0) * 1000:.0f} ms")
        k.put_records(StreamName="telemetry", Records=[{"Data": json.dumps({"device": "x", "v": 0.0, "ts": "2026-01-01 00:02:00.000"}).encode(), "PartitionKey": "x"}])
        want = {f"dev-{i:04d}": (1, float(i)) for i in range(a.keys)}
        deadline = time.monotonic() + 60
        got = []
        while time.monotonic() < deadline:
            shard = k.list_shards(StreamName="per-minute")["Shards"][0]["ShardId"]
            it = k.get_shard_iterator(StreamName="per-minute", ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            got = []
            while it:
                r = k.get_records(ShardIterator=it, Limit=10000)
                got += [json.loads(x["Data"]) for x in r["Records"]]
                if not r["Records"]:
                    break
                it = r.get("NextShardIterator")
            if sum(1 for g in got if g["device"] != "x") >= a.keys:
                break
            time.sleep(0.2)
        mine = [g for g in got if g["device"] != "x" and g["window_start"].startswith("2026-01-01 00:00")]
        devices = [g["device"] for g in mine]
        ok = (len(devices) == len(set(devices)) == a.keys
              and all((g["n"], g["total"]) == want[g["device"]] for g in mine))
        print(f"output after the restart: {len(mine)} results for {a.keys} devices, "
              f"{'each exactly once with the right count and sum' if ok else 'WRONG'}")
    finally:
        gw.terminate()
        gw.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
