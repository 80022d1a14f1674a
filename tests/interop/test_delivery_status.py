"""Delivery status: GET /deliveries, `kinedge deliveries status [--json]`, and records lost to a
quota counted per delivery stream (never silent)."""

import json
import os
import re
import subprocess

from firehose_receiver import deliveries, delivery, delivery_toml, http_destination, put_keyed, stream_toml, wait_for
from kutil import KINEDGE_BIN

STATES = {"delivering", "backing_off", "failing", "paused"}
COUNTERS = ("backlog_records", "backlog_bytes", "delivered_records", "delivered_bytes", "batches", "retries",
            "failed_records", "dropped_records", "records_lost")


def cli(gw, *args):
    env = dict(os.environ, KINEDGE_ENDPOINT=gw.url)
    r = subprocess.run([str(KINEDGE_BIN), *args], capture_output=True, env=env, timeout=30)
    assert r.returncode == 0, f"kinedge {' '.join(args)} failed ({r.returncode}): {r.stderr.decode()[-500:]}"
    return r.stdout.decode()


def check_shape(d):
    for k in ("name", "state", "source", "destination", "oldest_undelivered_age_ms", "last_error", "shards",
              *COUNTERS):
        assert k in d, f"/deliveries entry lacks {k!r}: {d}"
    assert d["state"] in STATES, d["state"]
    for k in COUNTERS:
        assert isinstance(d[k], int) and not isinstance(d[k], bool) and d[k] >= 0, f"{k} = {d[k]!r}"
    assert set(d["destination"]) >= {"type", "target"}, d["destination"]
    assert d["oldest_undelivered_age_ms"] is None or isinstance(d["oldest_undelivered_age_ms"], int)
    le = d["last_error"]
    assert le is None or (isinstance(le, dict) and le.get("message") and le.get("at")), le
    for s in d["shards"]:
        assert set(s) >= {"shard_id", "last_delivered_sequence", "backlog_records", "records_lost"}, s
        seq = s["last_delivered_sequence"]
        assert seq is None or (isinstance(seq, str) and seq.isdigit()), s


def test_deliveries_json_and_cli(gateway_factory, receiver):
    rx = receiver(compression="gzip", delivery_stream="good")
    down = receiver(compression="none", delivery_stream="bad", path="/down")
    down.down()
    cfg = (stream_toml("s", 2) + delivery_toml("good", http_destination(rx), source="s", compression="gzip")
           + delivery_toml("bad", http_destination(down), source="s", compression="none"))
    gw = gateway_factory(cfg)
    c = gw.client()
    put_keyed(c, "s", 100, keys=4)
    rx.wait_records(100)
    good = wait_for(lambda: (x := delivery(gw, "good"))["delivered_records"] == 100 and x, what="good: 100 delivered")
    bad = wait_for(lambda: (x := delivery(gw, "bad"))["state"] == "backing_off" and x["backlog_records"] == 100 and x,
                   timeout=15, what="bad: backing_off with 100 behind")
    for d in (good, bad):
        check_shape(d)
    assert good["state"] == "delivering" and good["backlog_records"] == 0 and good["backlog_bytes"] == 0, good
    assert good["delivered_bytes"] > 0, good
    assert good["batches"] >= 1 and good["oldest_undelivered_age_ms"] is None and good["last_error"] is None, good
    assert good["destination"]["type"] == "http_endpoint" and str(rx.port) in good["destination"]["target"], good
    assert {s["shard_id"] for s in good["shards"]} == {"shardId-000000000000", "shardId-000000000001"}
    assert all(s["last_delivered_sequence"] and s["backlog_records"] == 0 for s in good["shards"]), good["shards"]
    assert bad["delivered_records"] == 0 and bad["oldest_undelivered_age_ms"] >= 0, bad
    assert bad["last_error"] is not None, bad
    assert all(s["last_delivered_sequence"] is None for s in bad["shards"]), bad["shards"]
    assert sum(s["backlog_records"] for s in bad["shards"]) == 100, bad["shards"]

    # the CLI: a table and the same JSON
    table = cli(gw, "deliveries", "status")
    rows = {ln.split()[0]: ln for ln in table.splitlines() if ln.split() and ln.split()[0] in ("good", "bad")}
    assert set(rows) == {"good", "bad"}, table
    assert "delivering" in rows["good"] and "backing" in rows["bad"], table
    assert re.search(r"\b100\b", rows["bad"]), f"the backlog (100) is not in the row: {rows['bad']!r}"
    header = table.splitlines()[0].lower()
    for col in ("name", "state", "backlog", "delivered", "retries", "lost"):
        assert col in header, f"column {col!r} missing from {header!r}"
    js = json.loads(cli(gw, "deliveries", "status", "--json"))
    by = {d["name"]: d for d in js["delivery_streams"]}
    assert set(by) == {"good", "bad"} and by["good"]["delivered_records"] == 100
    assert set(deliveries(gw)) == {"good", "bad"}


def test_records_lost_to_quota_are_counted(gateway_factory, receiver):
    rx = receiver(compression="none", delivery_stream="lossy")
    rx.down()
    cfg = (stream_toml("ring", 1, max_bytes="1MiB", on_full="overwrite_oldest")
           + delivery_toml("lossy", http_destination(rx), source="ring", compression="none"))
    gw = gateway_factory(cfg)
    c = gw.client()
    put = []
    for b in range(6):  # 3 MiB into a 1 MiB ring while the destination is down
        batch = [{"Data": f"b{b}r{i:02d}|".encode().ljust(10 * 1024, b"-"), "PartitionKey": "k"} for i in range(50)]
        assert c.put_records(StreamName="ring", Records=batch)["FailedRecordCount"] == 0
        put += [x["Data"] for x in batch]
    d = wait_for(lambda: (x := delivery(gw, "lossy"))["records_lost"] > 0 and x, timeout=15,
                 what="records_lost > 0")
    check_shape(d)
    assert sum(s["records_lost"] for s in d["shards"]) == d["records_lost"], d
    rx.up()
    got = wait_for(lambda: delivery(gw, "lossy")["backlog_records"] == 0 and rx.unique_records(),
                   timeout=20, what="backlog drained")
    lost = delivery(gw, "lossy")["records_lost"]
    assert len(set(got)) + lost == len(put), f"delivered {len(set(got))} + lost {lost} != put {len(put)}"
    order = list(dict.fromkeys(got))
    index = {d: i for i, d in enumerate(put)}
    assert [index[d] for d in order] == sorted(index[d] for d in order), "delivered out of put order"
    # what was lost is one contiguous run of the puts (a batch already in flight may still go out)
    missing = [i for i, d in enumerate(put) if d not in set(order)]
    assert missing == list(range(missing[0], missing[0] + len(missing))), "lost records are not one contiguous run"

    def warning():
        log = gw.log_path.read_text(errors="replace")
        return [ln for ln in log.splitlines() if "WARN" in ln and "lossy" in ln and re.search(r"\d{20,}", ln)
                and re.search(r"lost|trim|overwr", ln, re.I)]
    wait_for(warning, timeout=10, what="a warning naming the delivery stream and the lost sequence range")


def test_destination_that_cannot_be_set_up_shows_failing_with_its_backlog(gateway_factory):
    # The secret's variable is not set: the destination cannot be built. Ingest goes on, the
    # status says why and how much is waiting, and nothing is delivered or thrown away.
    var = "KINEDGE_TEST_UNSET_SECRET_7f3a"
    dest = {"type": "s3", "bucket": "gw-bucket", "region": "us-east-1", "endpoint": "http://127.0.0.1:9",
            "access_key_id": "AKIDTEST", "secret_env": var}
    env = {k: v for k, v in os.environ.items() if k != var}
    gw = gateway_factory(stream_toml("s", 2) + delivery_toml("nocreds", dest, source="s"), env=env)
    put_keyed(gw.client(), "s", 40, keys=4)
    d = wait_for(lambda: (x := delivery(gw, "nocreds"))["backlog_records"] == 40 and x["state"] == "failing" and x,
                 timeout=15, what="nocreds: failing with 40 behind")
    check_shape(d)
    assert var in d["last_error"]["message"], d["last_error"]
    assert d["delivered_records"] == 0 and d["records_lost"] == 0, d
    assert len(d["shards"]) == 2 and all(s["last_delivered_sequence"] is None for s in d["shards"]), d
