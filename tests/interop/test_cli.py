"""The command line against a running gateway: streams, put, get, tail, check-config."""

import json
import os
import queue
import subprocess
import threading
import time

import pytest

from kutil import KINEDGE_BIN, create_stream, read_all, flatten


def kinedge(*args, gw=None, stdin=None, check=True, timeout=30):
    env = dict(os.environ)
    env.pop("AWS_ACCESS_KEY_ID", None)
    env.pop("AWS_SECRET_ACCESS_KEY", None)
    if gw is not None:
        env["KINEDGE_ENDPOINT"] = gw.url
    result = subprocess.run([str(KINEDGE_BIN), *args], input=stdin, capture_output=True,
                            env=env, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"kinedge {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout.decode()}\n{result.stderr.decode()}")
    return result


def test_streams_put_get(gw, client):
    kinedge("streams", "create", "cli-s", "--shards", "3", gw=gw)
    names = kinedge("streams", "list", gw=gw).stdout.decode().split()
    assert "cli-s" in names
    described = json.loads(kinedge("streams", "describe", "cli-s", gw=gw).stdout)
    assert described["summary"]["OpenShardCount"] == 3
    assert len(described["shards"]) == 3

    out = kinedge("put", "cli-s", "sensor-1", "21.5", gw=gw).stdout.decode().split()
    assert out[0].startswith("shardId-") and len(out[1]) == 56
    kinedge("put", "cli-s", "sensor-2", "-", gw=gw, stdin=b"from stdin")
    kinedge("put", "cli-s", "sensor-3", gw=gw, stdin=b"\xff\x00binary")

    # What the CLI put is what boto3 reads.
    stored = {r["PartitionKey"]: r["Data"] for r in flatten(read_all(client, "cli-s"))}
    assert stored == {"sensor-1": b"21.5", "sensor-2": b"from stdin", "sensor-3": b"\xff\x00binary"}

    lines = [json.loads(l) for l in kinedge("get", "cli-s", gw=gw).stdout.decode().splitlines()]
    by_key = {l["partition_key"]: l for l in lines}
    assert by_key["sensor-1"]["data"] == "21.5"
    assert by_key["sensor-2"]["data"] == "from stdin"
    assert "data_base64" in by_key["sensor-3"]
    assert all(len(l["sequence"]) == 56 and l["shard"].startswith("shardId-") for l in lines)

    raw = kinedge("get", "cli-s", "--raw", "--limit", "2", gw=gw).stdout.splitlines()
    assert len(raw) == 2

    # --from a sequence number reads that record's shard from there.
    seq = by_key["sensor-1"]["sequence"]
    from_seq = [json.loads(l) for l in kinedge("get", "cli-s", "--from", seq, gw=gw).stdout.decode().splitlines()]
    assert from_seq[0]["sequence"] == seq

    kinedge("streams", "reshard", "cli-s", "--shards", "6", gw=gw)
    assert json.loads(kinedge("streams", "describe", "cli-s", gw=gw).stdout)["summary"]["OpenShardCount"] == 6
    # Records are still all there after resharding, read parents first.
    assert len(kinedge("get", "cli-s", gw=gw).stdout.splitlines()) == 3

    kinedge("streams", "delete", "cli-s", gw=gw)
    assert "cli-s" not in kinedge("streams", "list", gw=gw).stdout.decode().split()


def test_errors_are_clear(gw):
    r = kinedge("put", "no-such-stream", "k", "v", gw=gw, check=False)
    assert r.returncode != 0
    assert b"ResourceNotFoundException" in r.stderr and b"no-such-stream" in r.stderr
    r = kinedge("streams", "list", "--endpoint", "http://127.0.0.1:9", check=False)
    assert r.returncode != 0
    assert b"cannot reach the gateway" in r.stderr
    r = kinedge("get", "x", "--from", "yesterday-ish", gw=gw, check=False)
    assert r.returncode != 0 and b"--from" in r.stderr


@pytest.mark.timeout(60)
def test_tail_follows_new_records(gw, client):
    create_stream(client, "cli-tail", 2)
    client.put_record(StreamName="cli-tail", PartitionKey="old", Data=b"before tail")
    env = dict(os.environ, KINEDGE_ENDPOINT=gw.url)
    proc = subprocess.Popen([str(KINEDGE_BIN), "tail", "cli-tail"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(json.loads(line)) for line in proc.stdout],
                     daemon=True).start()
    try:
        # Sentinel instead of a sleep: probes until tail prints one, so its LATEST iterators
        # (all taken before its first read) are in place however slow the machine is.
        seen = []
        deadline = time.time() + 30
        while not any(r["data"].startswith("probe") for r in seen) and time.time() < deadline:
            client.put_record(StreamName="cli-tail", PartitionKey="probe", Data=b"probe")
            try:
                seen.append(lines.get(timeout=0.5))
            except queue.Empty:
                pass
        assert any(r["data"].startswith("probe") for r in seen), "tail printed no probe in 30 s"
        for i in range(5):
            client.put_record(StreamName="cli-tail", PartitionKey=f"k{i}", Data=f"live {i}".encode())
        deadline = time.time() + 20
        while sum(r["data"].startswith("live") for r in seen) < 5 and time.time() < deadline:
            try:
                seen.append(lines.get(timeout=0.5))
            except queue.Empty:
                pass
        assert sorted(r["data"] for r in seen if r["data"].startswith("live")) == [f"live {i}" for i in range(5)]
        assert all(r["data"] != "before tail" for r in seen)
    finally:
        proc.kill()
        proc.wait()


def test_check_config_names_file_line_and_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[api]\nlisten = "nowhere"\n\n[[streams]]\nname = "bad name"\nretention_hours = 1\n'
                   '\n[storage]\nsecret = "x"\n')
    r = kinedge("check-config", str(bad), check=False)
    assert r.returncode == 2
    err = r.stderr.decode()
    assert f"{bad}:2: api.listen" in err
    assert f"{bad}:5: streams[0].name" in err
    assert f"{bad}:6: streams[0].retention_hours" in err
    assert ":9: storage.secret" in err
    ok = tmp_path / "ok.toml"
    ok.write_text('[api]\nlisten = "127.0.0.1:4999"\n')
    assert kinedge("check-config", str(ok)).returncode == 0
    assert kinedge("check-config").returncode == 0  # the built-in configuration


def test_run_refuses_a_bad_config(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[storage]\nmin_free_disk = "lots"\n')
    r = kinedge("run", "--config", str(bad), check=False, timeout=10)
    assert r.returncode == 2
    assert b"storage.min_free_disk" in r.stderr


def test_devices_add_list_and_check(tmp_path):
    cfg = tmp_path / "kinedge.toml"
    cfg.write_text('[devices]\ndir = "devs"\n')
    r = kinedge("devices", "add", "pump-7", "--config", str(cfg))
    secret = r.stdout.decode().strip()
    assert len(secret) >= 32 and "pump-7" in r.stderr.decode()
    path = tmp_path / "devs" / "pump-7.toml"       # relative to the config file
    text = path.read_text()
    assert secret not in text and "$argon2id$" in text
    assert 'publish = ["devices/{device}/#"]' in text

    kinedge("devices", "add", "cam-1", "--kind", "camera", "--publish", "video/{device}/#",
            "--config", str(cfg))
    again = kinedge("devices", "add", "pump-7", "--config", str(cfg), check=False)
    assert again.returncode != 0 and b"already exists" in again.stderr
    bad = kinedge("devices", "add", "bad id", "--config", str(cfg), check=False)
    assert bad.returncode != 0 and b"not a device id" in bad.stderr

    listing = kinedge("devices", "list", "--config", str(cfg)).stdout.decode()
    assert "pump-7" in listing and "cam-1" in listing and "video/cam-1/#" in listing

    assert kinedge("check-config", str(cfg)).returncode == 0
    (tmp_path / "devs" / "broken.toml").write_text('id = "broken"\npassword_hash = "plaintext!"\n')
    r = kinedge("check-config", str(cfg), check=False)
    assert r.returncode == 2
    assert "broken.toml:2: password_hash" in r.stderr.decode()
    assert "plaintext!" not in r.stderr.decode()
