"""Delivery to S3 (moto's server): Firehose prefixes and object names, compression, processors
(filter, partition_keys, metadata, append_delimiter) and the processing-failed error output."""

import base64
import datetime as dt
import gzip
import json
import re

import cramjam

from firehose_receiver import delivery_toml, parse_error_lines, stream_toml
from kutil import unique

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
NL = {"type": "append_delimiter"}


def object_name_re(name: str, ext: str = "") -> re.Pattern:
    return re.compile(rf"{re.escape(name)}-1-(\d{{4}})-(\d{{2}})-(\d{{2}})-(\d{{2}})-(\d{{2}})-(\d{{2}})-{UUID}"
                      + re.escape(ext) + "$")


def lines(objs: dict) -> list[bytes]:
    return [ln for body in objs.values() for ln in body.split(b"\n") if ln]


def utc_hours(t0: dt.datetime, t1: dt.datetime) -> set[str]:
    out, t = set(), t0.replace(minute=0, second=0, microsecond=0)
    while t <= t1:
        out.add(t.strftime("%Y/%m/%d/%H"))
        t += dt.timedelta(hours=1)
    return out


def test_default_prefix_and_object_names(gateway_factory, moto):
    bucket = moto.create_bucket(unique("plain"))
    t0 = dt.datetime.now(dt.timezone.utc)
    cfg = stream_toml("s", 2) + delivery_toml("to-s3", moto.s3_destination(bucket), source="s", processors=[NL])
    gw = gateway_factory(cfg, env=moto.gateway_env())
    c = gw.client()
    want = [f"rec-{i:04d}".encode() for i in range(120)]
    c.put_records(StreamName="s", Records=[{"Data": d, "PartitionKey": f"k{i % 5}"} for i, d in enumerate(want)])
    objs = moto.wait_objects(bucket, lambda o: len(lines(o)) >= 120)
    t1 = dt.datetime.now(dt.timezone.utc)
    assert sorted(lines(objs)) == sorted(want)
    for key, body in objs.items():
        m = re.match(r"^(\d{4})/(\d{2})/(\d{2})/(\d{2})/(.+)$", key)
        assert m, f"{key!r} lacks the default YYYY/MM/dd/HH/ prefix"
        assert "/".join(m.groups()[:4]) in utc_hours(t0, t1), f"{key!r}: prefix is not the UTC hour of delivery"
        n = object_name_re("to-s3").match(m.group(5))
        assert n, f"object name {m.group(5)!r} is not <stream>-1-YYYY-MM-dd-HH-MM-SS-<uuid>"
        assert n.groups()[:4] == m.groups()[:4], f"{key!r}: name and prefix disagree on the hour"
        assert body.endswith(b"\n"), "append_delimiter puts a newline after every record"


def test_compression_formats(gateway_factory, moto):
    bucket = moto.create_bucket(unique("comp"))
    cfg = stream_toml("s", 1)
    for comp in ("gzip", "zstd", "snappy"):
        cfg += delivery_toml(f"c-{comp}", moto.s3_destination(bucket, prefix=f"{comp}/"), source="s",
                             compression=comp, processors=[NL])
    gw = gateway_factory(cfg, env=moto.gateway_env())
    want = [json.dumps({"n": i, "pad": "x" * (i % 40)}).encode() for i in range(300)]
    gw.client().put_records(StreamName="s", Records=[{"Data": d, "PartitionKey": "p"} for d in want])
    decode = {"gzip": (".gz", gzip.decompress),
              "zstd": (".zst", lambda b: bytes(cramjam.zstd.decompress(b))),
              "snappy": (".snappy", lambda b: bytes(cramjam.snappy.decompress(b)))}  # framing format
    for comp, (ext, fn) in decode.items():
        objs = moto.wait_objects(
            bucket, lambda o: sum(fn(b).count(b"\n") for b in o.values()) >= 300, prefix=f"{comp}/")
        got = []
        for key in objs:
            assert key.startswith(f"{comp}/"), key
            assert object_name_re(f"c-{comp}", ext).match(key.split("/")[-1]), \
                f"{comp}: object {key!r} should be named <stream>-1-...-<uuid>{ext}"
            got += [ln for ln in fn(objs[key]).split(b"\n") if ln]
        assert sorted(got) == sorted(want), f"{comp}: content is not exactly the records"


def test_timestamp_and_partition_key_prefixes(gateway_factory, moto):
    bucket = moto.create_bucket(unique("part"))
    cfg = stream_toml("s", 2) + delivery_toml(
        "parts", moto.s3_destination(bucket, prefix="data/dev=!{partitionKeyFromQuery:dev}/!{timestamp:yyyy/MM/dd}/"),
        source="s", processors=[{"type": "partition_keys", "keys": {"dev": ".device"}}, NL]) + delivery_toml(
        "rand", moto.s3_destination(bucket, prefix="rnd/!{firehose:random-string}/"), source="s", processors=[NL])
    gw = gateway_factory(cfg, env=moto.gateway_env())
    today = {dt.datetime.now(dt.timezone.utc).strftime("%Y/%m/%d")}
    recs = [json.dumps({"device": f"dev{i % 3}", "n": i}).encode() for i in range(90)]
    gw.client().put_records(StreamName="s", Records=[{"Data": d, "PartitionKey": f"k{i}"} for i, d in enumerate(recs)])
    objs = moto.wait_objects(bucket, lambda o: len(lines(o)) >= 90, prefix="data/")
    today.add(dt.datetime.now(dt.timezone.utc).strftime("%Y/%m/%d"))
    for key, body in objs.items():
        m = re.match(r"^data/dev=(dev\d)/(\d{4}/\d{2}/\d{2})/(parts-1-.+)$", key)
        assert m, f"{key!r} does not follow data/dev=<device>/yyyy/MM/dd/<name>"
        assert m.group(2) in today, key
        devices = {json.loads(ln)["device"] for ln in body.split(b"\n") if ln}
        assert devices == {m.group(1)}, f"{key!r} holds records of {devices}"
    assert sorted(lines(objs)) == sorted(recs)
    robjs = moto.wait_objects(bucket, lambda o: len(lines(o)) >= 90, prefix="rnd/")
    for key in robjs:
        m = re.match(r"^rnd/([A-Za-z0-9]+)/(rand-1-.+)$", key)
        assert m, f"{key!r}: !{{firehose:random-string}} should be one path segment of letters and digits"


def test_filter_drops_and_non_json_goes_to_processing_failed(gateway_factory, moto):
    bucket = moto.create_bucket(unique("filt"))
    dest = moto.s3_destination(bucket, prefix="ok/", error_prefix="err/!{firehose:error-output-type}/")
    cfg = stream_toml("s", 1) + delivery_toml(
        "filt", dest, source="s", processors=[{"type": "filter", "expression": ".level == \"error\""}, NL])
    gw = gateway_factory(cfg, env=moto.gateway_env())
    c = gw.client()
    keep = [json.dumps({"level": "error", "n": i}).encode() for i in range(10)]
    drop = [json.dumps({"level": "info", "n": i}).encode() for i in range(10)]
    bad = [b"not json at all", b"\xff\xfe binary"]
    batch = [keep[i // 2] if i % 2 == 0 else drop[i // 2] for i in range(20)] + bad
    resp = c.put_records(StreamName="s", Records=[{"Data": d, "PartitionKey": "p"} for d in batch])
    seqs = {d: r["SequenceNumber"] for d, r in zip(batch, resp["Records"])}
    ok = moto.wait_objects(bucket, lambda o: len(lines(o)) >= 10, prefix="ok/")
    assert sorted(lines(ok)) == sorted(keep), "the filter must keep exactly the matching records"
    err = moto.wait_objects(bucket, lambda o: o, prefix="err/")
    for key in err:
        assert key.startswith("err/processing-failed/"), f"error object {key!r}"
    errs = [e for key, body in err.items() for e in parse_error_lines(body, key)]
    assert sorted(e["raw"] for e in errs) == sorted(bad)
    for e in errs:
        assert e["partitionKey"] == "p" and e["sequenceNumber"] == seqs[e["raw"]], e


def test_metadata_wrapping(gateway_factory, moto):
    bucket = moto.create_bucket(unique("meta"))
    cfg = stream_toml("s", 1) + delivery_toml("meta", moto.s3_destination(bucket), source="s",
                                              processors=[{"type": "metadata"}, NL])
    gw = gateway_factory(cfg, env=moto.gateway_env())
    c = gw.client()
    r1 = c.put_record(StreamName="s", Data=b'{"t": 21.5, "unit": "C"}', PartitionKey="sensor-1")
    r2 = c.put_record(StreamName="s", Data=b"\x00\x01raw", PartitionKey="sensor-2")
    objs = moto.wait_objects(bucket, lambda o: len(lines(o)) >= 2)
    docs = [json.loads(ln) for ln in lines(objs)]
    by_key = {d["partitionKey"]: d for d in docs}
    assert set(by_key) == {"sensor-1", "sensor-2"}, docs
    for d in docs:
        assert set(d) == {"arrivalTimestamp", "partitionKey", "sequenceNumber", "data"}, d
        assert isinstance(d["arrivalTimestamp"], int) and d["arrivalTimestamp"] > 1.6e12, d
    assert by_key["sensor-1"]["data"] == {"t": 21.5, "unit": "C"}
    assert by_key["sensor-1"]["sequenceNumber"] == r1["SequenceNumber"]
    assert base64.b64decode(by_key["sensor-2"]["data"]) == b"\x00\x01raw"
    assert by_key["sensor-2"]["sequenceNumber"] == r2["SequenceNumber"]
