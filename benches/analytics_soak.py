"""Analytics soak: many applications over one stream at a sensor rate, memory over time.

    .venv/bin/python benches/analytics_soak.py [--apps 50] [--keys 1000] [--rate 5000]
        [--minutes 30] [--bin target/release/kinedge]

Starts the release gateway on loopback with a fresh data dir, creates the stream `telemetry`
(2 shards) and puts `rate` records/s over `keys` devices into it (PutRecords of 250, event
time = now) throughout. First `--warmup` seconds without applications: half of it with the
stream only written, half with a Kinesis consumer reading both shards at the tip as well
(GetRecords every 200 ms, on until the end). The RSS at the end of each half is a baseline:
the second includes what reading the stream at all costs, whoever reads it (the store's read
cache, `storage.cache_size`, 16 MiB by default, fills with the pages read). Then it creates N
applications through POST /analytics, each a 10-second tumbling AVG/MAX/COUNT per device over
the stream into its own output stream, and samples the gateway's RSS (VmRSS) and CPU
(utime+stime) every 10 s for `minutes`. It reports the extra RSS over the baseline (peak, and
the mean of the first and last minute, and the trend over the second half: flat = no
growth), the same less what the store's page
cache (kinedge_storage_cache_bytes, bounded by storage.cache_size) gained over the baseline,
the CPU used with and without the applications, and that every application read every record. Issue 14's figure: 50 apps x 1,000
keys at 5,000 records/s, <= 20 MB extra RSS, flat over 30 minutes.
"""
import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone

import boto3
import requests
from botocore.config import Config

SQL = """
CREATE TABLE telemetry (device STRING, temp DOUBLE, ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
  WITH ('connector' = 'kinesis', 'stream' = 'telemetry', 'format' = 'json');
CREATE TABLE out_{i} (window_start TIMESTAMP(3), device STRING, avg_temp DOUBLE, max_temp DOUBLE, n BIGINT)
  WITH ('connector' = 'kinesis', 'stream' = 'agg-{i}', 'format' = 'json');
INSERT INTO out_{i}
SELECT window_start, device, AVG(temp), MAX(temp), COUNT(*)
FROM TABLE(TUMBLE(TABLE telemetry, DESCRIPTOR(ts), INTERVAL '10' SECOND))
GROUP BY window_start, window_end, device;
"""


def second_half_trend(samples):
    """Least-squares slope of the RSS (KiB) over the second half of the samples, per 10
    minutes: how much it still grows once the applications have run a while."""
    half = [(t, r) for t, r, _, _ in samples if t >= samples[-1][0] / 2]
    if len(half) < 2:
        return 0.0
    mt = sum(t for t, _ in half) / len(half)
    mr = sum(r for _, r in half) / len(half)
    var = sum((t - mt) ** 2 for t, _ in half)
    return sum((t - mt) * (r - mr) for t, r in half) / var * 600 if var else 0.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_stat(pid):
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return rss, ticks / os.sysconf("SC_CLK_TCK")


def rss_file(pid):
    """Resident file-backed pages (KiB): mostly the binary's code, paged in as it first runs."""
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("RssFile:"))


def metric(url, name):
    """One unlabelled sample of /metrics (0 when absent)."""
    for line in requests.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def bytes_written(url):
    """The store's file writes so far."""
    return metric(url, "kinedge_storage_bytes_written_total")


def cache_kib(url):
    """What the store's page cache holds (KiB): bounded by storage.cache_size, filled by any
    reader or writer of the store, so part of the extra RSS until it is full."""
    return metric(url, "kinedge_storage_cache_bytes") / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--apps", type=int, default=50)
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--bin", default="target/release/kinedge")
    ap.add_argument("--warmup", type=float, default=60)
    ap.add_argument("--warm-cache", action="store_true",
                    help="the baseline's consumer first reads the whole history (a full page cache)")
    ap.add_argument("--cache-size", default=None,
                    help="storage.cache_size (e.g. 4MiB; default: the gateway's, 16 MiB)")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="kinedge-soak-")
    port, mqtt = free_port(), free_port()
    cfg = os.path.join(work, "kinedge.toml")
    with open(cfg, "w") as f:
        cache = f'cache_size = "{a.cache_size}"\n' if a.cache_size else ""
        f.write(f'[storage]\ndata_dir = "{work}/data"\nmin_free_disk = "1MiB"\n{cache}'
                f'[api]\nlisten = "127.0.0.1:{port}"\n[mqtt]\nlisten = "127.0.0.1:{mqtt}"\n'
                '[log]\nlevel = "warn"\n')
    gw = subprocess.Popen([a.bin, "run", "--config", cfg], stdout=open(os.path.join(work, "log"), "w"),
                          stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if requests.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        k = boto3.client("kinesis", endpoint_url=url, region_name="us-east-1", aws_access_key_id="x",
                         aws_secret_access_key="x", config=Config(retries={"max_attempts": 10}))
        k.create_stream(StreamName="telemetry", ShardCount=2)
        time.sleep(0.5)
        stop = threading.Event()
        sent = [0]
        rnd = random.Random(14)

        def produce():
            period = 250 / a.rate
            nxt = time.monotonic()
            while not stop.is_set():
                now = datetime.now(timezone.utc)
                ts = now.strftime("%Y-%m-%d %H:%M:%S.") + f"{now.microsecond // 1000:03d}"
                batch = []
                for _ in range(250):
                    d = f"dev-{rnd.randrange(a.keys):04d}"
                    batch.append({"Data": json.dumps({"device": d, "temp": round(rnd.uniform(-10, 40), 2), "ts": ts}).encode(),
                                  "PartitionKey": d})
                resp = k.put_records(StreamName="telemetry", Records=batch)
                sent[0] += 250 - resp.get("FailedRecordCount", 0)
                nxt += period
                time.sleep(max(0.0, nxt - time.monotonic()))

        def consume():
            if a.warm_cache:
                for shard in ("shardId-000000000000", "shardId-000000000001"):
                    it = k.get_shard_iterator(StreamName="telemetry", ShardId=shard,
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
                    while it:
                        r = k.get_records(ShardIterator=it, Limit=10000)
                        it = r.get("NextShardIterator")
                        if not r["Records"] and r.get("MillisBehindLatest", 0) == 0:
                            break
            iters = {}
            for shard in ("shardId-000000000000", "shardId-000000000001"):
                iters[shard] = k.get_shard_iterator(StreamName="telemetry", ShardId=shard,
                                                    ShardIteratorType="LATEST")["ShardIterator"]
            while not stop.is_set():
                for shard, it in iters.items():
                    iters[shard] = k.get_records(ShardIterator=it, Limit=10000)["NextShardIterator"]
                time.sleep(0.2)

        threads = [threading.Thread(target=produce, daemon=True)]
        for t in threads:
            t.start()
        w0 = time.monotonic()
        cpu_w0 = proc_stat(gw.pid)[1]
        base, base_unread = [], []
        while time.monotonic() < w0 + a.warmup:
            time.sleep(10)
            reading = len(threads) > 1
            (base if reading else base_unread).append(proc_stat(gw.pid)[0])
            print(f"  warmup rss={proc_stat(gw.pid)[0] / 1024:6.1f} MiB sent={sent[0]} "
                  f"read={'yes' if reading else 'no'}", flush=True)
            if not reading and time.monotonic() >= w0 + a.warmup / 2:
                threads.append(threading.Thread(target=consume, daemon=True))
                threads[-1].start()
        cpu_base = (proc_stat(gw.pid)[1] - cpu_w0) / (time.monotonic() - w0)
        written_base = (bytes_written(url), time.monotonic())
        time.sleep(10)
        written_base = (bytes_written(url) - written_base[0]) / (time.monotonic() - written_base[1])
        rss_base = max(base[-2:])
        rss_unread = max(base_unread[-2:])
        file_base = rss_file(gw.pid)
        cache_base = cache_kib(url)
        file_peak = file_base
        for i in range(a.apps):
            r = requests.post(f"{url}/analytics", json={"name": f"app-{i}", "sql": SQL.format(i=i)}, timeout=30)
            assert r.status_code == 200, r.text
        rss_apps, _ = proc_stat(gw.pid)
        # The applications start at LATEST: they read what is put from now on (the second of
        # creating them aside).
        sent_at_apps = sent[0]
        samples = []
        t0 = time.monotonic()
        cpu_start = proc_stat(gw.pid)[1]
        written_start = bytes_written(url)
        end = t0 + a.minutes * 60
        while time.monotonic() < end:
            time.sleep(10)
            rss, cpu = proc_stat(gw.pid)
            file_peak = max(file_peak, rss_file(gw.pid))
            cache = cache_kib(url)
            samples.append((time.monotonic() - t0, rss, cpu, cache))
            print(f"  t={samples[-1][0]:6.0f}s rss={rss / 1024:6.1f} MiB store_cache={cache / 1024:5.1f} MiB "
                  f"sent={sent[0]}", flush=True)
        stop.set()
        for t in threads:
            t.join()
        wall = time.monotonic() - t0
        cpu_used = proc_stat(gw.pid)[1] - cpu_start
        written_apps = (bytes_written(url) - written_start) / wall
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            apps = requests.get(f"{url}/analytics", timeout=30).json()["applications"]
            if all(x["records_in"] >= sent[0] - sent_at_apps - a.rate for x in apps):
                break
            time.sleep(1)
        apps = requests.get(f"{url}/analytics", timeout=30).json()["applications"]
        behind = [x["name"] for x in apps if x["records_in"] < sent[0] - sent_at_apps - a.rate]
        failed = [x["name"] for x in apps if x["state"] != "running"]
        first = [r for t, r, _, _ in samples if t <= 60]
        last = [r for t, r, _, _ in samples if t >= samples[-1][0] - 60]
        peak = max(r for _, r, _, _ in samples)
        # The extra RSS less what the store's page cache gained over the baseline's.
        beyond = [(t, r - rss_base - (c - cache_base)) for t, r, _, c in samples]
        beyond_first = [x for t, x in beyond if t <= 60]
        beyond_last = [x for t, x in beyond if t >= samples[-1][0] - 60]
        print(f"apps={a.apps} keys={a.keys} rate={a.rate}/s minutes={a.minutes} records={sent[0]}")
        print(f"rss_baseline_unread={rss_unread / 1024:.1f} MiB (same load, no reader) "
              f"extra_peak_over_it={(peak - rss_unread) / 1024:.1f} MiB")
        print(f"rss_baseline={rss_base / 1024:.1f} MiB (same load, one consumer, no applications) "
              f"rss_apps_created={rss_apps / 1024:.1f} MiB peak={peak / 1024:.1f} MiB "
              f"extra_peak={(peak - rss_base) / 1024:.1f} MiB")
        print(f"extra_file_backed={(file_peak - file_base) / 1024:.1f} MiB (code of the binary "
              f"first run by the applications: the SQL parser, planner and engine; part of the extra)")
        print(f"extra_first_minute={(sum(first) / len(first) - rss_base) / 1024:.1f} MiB "
              f"extra_last_minute={(sum(last) / len(last) - rss_base) / 1024:.1f} MiB "
              f"second_half_trend={second_half_trend(samples) / 1024:+.2f} MiB per 10 minutes")
        print(f"store_cache={cache_base / 1024:.1f} MiB at the baseline, "
              f"{max(c for *_, c in samples) / 1024:.1f} MiB at most (kinedge_storage_cache_bytes); "
              f"extra beyond the cache's growth: peak={max(x for _, x in beyond) / 1024:.1f} MiB "
              f"first_minute={sum(beyond_first) / len(beyond_first) / 1024:.1f} MiB "
              f"last_minute={sum(beyond_last) / len(beyond_last) / 1024:.1f} MiB")
        print(f"store_writes={written_apps / 1024:.0f} KiB/s with the applications, "
              f"{written_base / 1024:.0f} KiB/s without (kinedge_storage_bytes_written_total)")
        print(f"gateway_cpu={cpu_used / wall * 100:.1f}% of a core with the applications, "
              f"{cpu_base * 100:.1f}% without, over {wall:.0f}s")
        print(f"applications_behind={behind} failed={failed} "
              f"window_groups_held={sum(x['state_entries'] for x in apps)}")
    finally:
        gw.terminate()
        try:
            gw.wait(timeout=30)
        except subprocess.TimeoutExpired:
            gw.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
