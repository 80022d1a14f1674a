"""`kinedge check-config` on `[[delivery_streams]]`: bad destination configs are rejected with the
key named; a good one passes."""

import os
import subprocess

import pytest

from firehose_receiver import delivery_toml, stream_toml
from kutil import KINEDGE_BIN

S3 = {"type": "s3", "bucket": "fleet-data", "region": "eu-west-1"}
HTTP = {"type": "http_endpoint", "url": "https://example.invalid/ingest"}
BASE = '[api]\nlisten = "127.0.0.1:4999"\n[mqtt]\nenabled = false\n\n' + stream_toml("s", 1)


def check(tmp_path, text, name="kinedge.toml"):
    f = tmp_path / name
    f.write_text(BASE + text)
    env = dict(os.environ)
    env.pop("KINEDGE_CONFIG", None)
    r = subprocess.run([str(KINEDGE_BIN), "check-config", str(f)], capture_output=True, env=env, timeout=30)
    return r.returncode, r.stderr.decode(errors="replace") + r.stdout.decode(errors="replace")


def test_good_config_passes(tmp_path):
    text = (delivery_toml("a", S3, source="s", compression="zstd",
                          processors=[{"type": "filter", "expression": ".x > 1"},
                                      {"type": "partition_keys", "keys": {"dev": ".device"}},
                                      {"type": "append_delimiter"}])
            + delivery_toml("b", dict(HTTP, retry_duration_s=7200, common_attributes={"a": "b"}), source="direct_put",
                            compression="gzip", size="64MiB", interval_s=900, priority=1)
            + delivery_toml("c", {"type": "directory", "path": "out"}, source="s", start="latest",
                            processors=[{"type": "metadata"}])
            + '\n[delivery]\nmax_bandwidth = "1MiB"\n')
    rc, out = check(tmp_path, text)
    assert rc == 0, out


BAD = [
    ("no bucket", {"type": "s3", "region": "eu-west-1"}, {}, "delivery_streams[0].destination.bucket"),
    ("unknown type", {"type": "ftp", "url": "ftp://x"}, {}, "delivery_streams[0].destination"),
    ("zstd over http", HTTP, {"compression": "zstd"}, "delivery_streams[0].compression"),
    ("bad jq", S3, {"processors": [{"type": "filter", "expression": ".a | ]["}]},
     "delivery_streams[0].processors[0].expression"),
    ("bad partition jq", S3, {"processors": [{"type": "partition_keys", "keys": {"k": "(("}}]},
     "delivery_streams[0].processors[0].keys"),
    ("interval", S3, {"interval_s": 901}, "delivery_streams[0].buffer.interval_s"),
    ("size", S3, {"size": "512KiB"}, "delivery_streams[0].buffer.size"),
    ("http 65MiB", HTTP, {"size": "65MiB"}, "delivery_streams[0].buffer.size"),
    ("error prefix", dict(S3, error_prefix="errors/"), {}, "delivery_streams[0].destination.error_prefix"),
    ("retry duration", dict(HTTP, retry_duration_s=7201), {}, "delivery_streams[0].destination.retry_duration_s"),
    ("priority", S3, {"priority": 11}, "delivery_streams[0].priority"),
    ("unknown compression", S3, {"compression": "lz4"}, "delivery_streams[0].compression"),
    ("unknown key", dict(S3, buckt="x"), {}, "delivery_streams[0].destination"),
    ("kinesis no stream", {"type": "kinesis", "region": "eu-west-1"}, {}, "delivery_streams[0].destination.stream"),
    ("mqtt url", {"type": "mqtt", "url": "http://broker", "topic": "t", "client_id": "c"}, {},
     "delivery_streams[0].destination.url"),
]


@pytest.mark.parametrize("label,dest,kw,key", BAD, ids=[b[0] for b in BAD])
def test_bad_config_names_the_key(tmp_path, label, dest, kw, key):
    rc, out = check(tmp_path, delivery_toml("d", dest, source="s", **kw))
    assert rc == 2, f"{label}: check-config exited {rc}, expected 2\n{out}"
    assert key in out, f"{label}: the error should name {key!r}:\n{out}"


def test_duplicate_names(tmp_path):
    rc, out = check(tmp_path, delivery_toml("d", S3, source="s") + delivery_toml("d", S3, source="s"))
    assert rc == 2 and "delivery_streams[1].name" in out, out
