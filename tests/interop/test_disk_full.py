"""A full disk, for real: the data directory on a small tmpfs that the test fills.

The gateway must refuse clearly (a retryable AWS error naming the disk), keep serving reads,
say so on /ready, resume by itself when space returns, stop on SIGTERM in every state, and
lose nothing it acknowledged. Needs root for `mount -t tmpfs` (CI runs as root).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
import requests
from botocore.exceptions import ClientError

from kutil import KINEDGE_BIN, create_stream, read_all

MiB = 1024 * 1024


@pytest.fixture
def small_disk(tmp_path):
    """A 40 MiB tmpfs, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def gateway_on(gateway_factory, disk: Path, min_free_disk: str):
    gw = gateway_factory(start=False)
    gw.data_dir = disk / "data"
    text = gw.config_path.read_text()
    text = text.replace('min_free_disk = "1MiB"', f'min_free_disk = "{min_free_disk}"')
    text = text.replace(f'data_dir = "{(gw.dir / "data").as_posix()}"', f'data_dir = "{gw.data_dir.as_posix()}"')
    gw.config_path.write_text(text)
    return gw.start()


def fill(disk: Path, name: str = "filler") -> Path:
    """Writes a file until the file system is full."""
    path = disk / name
    chunk = b"\0" * (256 * 1024)
    with open(path, "ab", buffering=0) as f:
        while True:
            try:
                f.write(chunk)
            except OSError:
                break
        # The last bytes a smaller write still fits.
        for size in (64 * 1024, 4096, 512):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError:
                pass
    return path


def wait_for(what, fn, timeout=60.0, every=0.2):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def put_until_refused(client, stream, acked, size=64 * 1024, limit=4000):
    """Puts records until the gateway refuses one; returns the refusal."""
    for i in range(limit):
        key = f"k{len(acked)}"
        data = os.urandom(size)
        try:
            out = client.put_record(StreamName=stream, PartitionKey=key, Data=data)
        except ClientError as e:
            return e
        acked.append((out["SequenceNumber"], data))
    raise AssertionError(f"{limit} records of {size} bytes accepted on a full disk")


def assert_all_acked_present(client, stream, acked):
    records = [r for recs in read_all(client, stream).values() for r in recs]
    stored = {r["SequenceNumber"]: bytes(r["Data"]) for r in records}
    missing = [seq for seq, data in acked if stored.get(seq) != data]
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged records lost: {missing[:5]}"


def test_a_full_disk_refuses_keeps_reading_and_heals_without_a_restart(gateway_factory, small_disk):
    gw = gateway_on(gateway_factory, small_disk, "0")
    client = gw.client()
    create_stream(client, "full")
    acked = []
    for i in range(20):
        data = os.urandom(1000)
        out = client.put_record(StreamName="full", PartitionKey=f"a{i}", Data=data)
        acked.append((out["SequenceNumber"], data))

    filler = fill(small_disk)
    refusal = put_until_refused(client, "full", acked)
    err = refusal.response["Error"]
    assert err["Code"] == "ProvisionedThroughputExceededException", err
    assert "disk" in err["Message"].lower(), err
    assert "retry" in err["Message"].lower(), err

    # Refused at once from now on, with the same clear error; reads go on.
    try:
        client.put_record(StreamName="full", PartitionKey="x", Data=b"x")
        raise AssertionError("a put was accepted while writes are suspended")
    except ClientError as e:
        assert e.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert_all_acked_present(client, "full", acked)
    ready = requests.get(f"{gw.url}/ready", timeout=10)
    assert ready.status_code == 503, ready.text
    assert "no space" in ready.text.lower() or "disk" in ready.text.lower(), ready.text
    metrics = requests.get(f"{gw.url}/metrics", timeout=10).text
    assert "kinedge_storage_writes_suspended 1" in metrics
    assert 'kinedge_storage_failed_commits_total{kind="no_space"}' in metrics

    # Space returns: writes resume by themselves, /ready turns green.
    filler.unlink()
    resumed = time.monotonic()

    def accepted():
        try:
            out = client.put_record(StreamName="full", PartitionKey="back", Data=b"back")
            acked.append((out["SequenceNumber"], b"back"))
            return True
        except ClientError:
            return False

    wait_for("writes to resume", accepted, timeout=60)
    print(f"writes resumed {time.monotonic() - resumed:.1f} s after space returned")
    assert requests.get(f"{gw.url}/ready", timeout=10).status_code == 200
    assert_all_acked_present(client, "full", acked)

    # Full again, then SIGTERM: the gateway stops (in time) and restarts with everything.
    filler = fill(small_disk)
    put_until_refused(client, "full", acked)
    started = time.monotonic()
    code = gw.stop(timeout=20)
    assert code == 0, f"exit code {code} after SIGTERM on a full disk\n{gw.log_tail()}"
    assert time.monotonic() - started < 20
    filler.unlink()
    gw.start()
    assert_all_acked_present(gw.client(), "full", acked)


def test_space_freed_inside_the_file_counts_and_compact_returns_it(gateway_factory, small_disk):
    gw = gateway_on(gateway_factory, small_disk, "8MiB")
    client = gw.client()
    create_stream(client, "big")
    create_stream(client, "keep")
    for i in range(24):
        client.put_record(StreamName="big", PartitionKey=f"b{i}", Data=os.urandom(512 * 1024))
    filler = fill(small_disk)
    # Leave less than min_free_disk on the file system, without the database growing.
    filler_size = filler.stat().st_size
    with open(filler, "r+b") as f:
        f.truncate(max(0, filler_size - 4 * MiB))
    # Free pages inside the file are room too: the guard refuses once they are used up (or,
    # should the file still have to grow, the full disk does: the same retryable error).
    kept = []
    refusal = put_until_refused(client, "keep", kept)
    assert refusal.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert "disk" in refusal.response["Error"]["Message"], refusal.response

    # Deleting a stream frees pages inside streams.redb: room, although the file keeps its size.
    db = gw.data_dir / "streams.redb"
    size_before = db.stat().st_size
    client.delete_stream(StreamName="big")

    def accepted():
        try:
            out = client.put_record(StreamName="keep", PartitionKey="k", Data=b"y" * 100)
            kept.append((out["SequenceNumber"], b"y" * 100))
            return True
        except ClientError:
            return False

    wait_for("the freed pages to count as room", accepted, timeout=60)
    assert db.stat().st_size >= size_before - MiB

    # Offline compaction gives them back to the file system.
    refused = subprocess.run([str(KINEDGE_BIN), "storage", "compact", "--data-dir", str(gw.data_dir)],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "stop it first" in refused.stderr, refused
    assert gw.stop(timeout=20) == 0
    filler.unlink()
    done = subprocess.run([str(KINEDGE_BIN), "storage", "compact", "--data-dir", str(gw.data_dir)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done
    assert db.stat().st_size < size_before / 2, (size_before, db.stat().st_size, done.stdout)
    gw.start()
    assert_all_acked_present(gw.client(), "keep", kept)
