"""A batch sent again after a crash is the same batch: the same HTTP request id, the same records,
the same object name (docs/delivery.md: "the same HTTP request id so that receivers can drop it").

The gateway is SIGKILLed while a batch is on its way (the receiver holds its answer), then
restarted: the unconfirmed batch must come again under its id with the same records, so that a
receiver that drops repeated request ids ends with exactly the records put; a directory or S3
destination overwrites the object it had written instead of writing a second one."""

import os
import select
import socket
import threading
import time
from pathlib import Path

import pytest

from firehose_receiver import delivery_toml, http_destination, stream_toml, wait_for
from kutil import unique

NL = {"type": "append_delimiter"}


class Producer:
    """Puts records `r|<key>|<i>|....` in calls of 500 with a pause between them, in a thread
    (batches then form by time, from whatever the runner had read), until the gateway dies.
    `put`: acknowledged; `maybe`: the call that the kill cut off (stored or not)."""

    def __init__(self, client, lo, hi, pause=0.15, keys=6, pad=60):
        self.put, self.maybe = [], []
        self._args = (client, lo, hi, pause, keys, pad)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        client, lo, hi, pause, keys, pad = self._args
        for start in range(lo, hi, 500):
            batch = [{"Data": f"r|k{i % keys}|{i:07d}|".encode().ljust(pad, b"."), "PartitionKey": f"k{i % keys}"}
                     for i in range(start, min(hi, start + 500))]
            data = [b["Data"] for b in batch]
            try:
                resp = client.put_records(StreamName="s", Records=batch)
            except Exception:  # the gateway was killed
                self.maybe += data
                return
            assert resp["FailedRecordCount"] == 0
            self.put += data
            time.sleep(pause)

    def join(self):
        self.thread.join(60)
        assert not self.thread.is_alive()


def _exactly_once(where: dict, put: list, maybe: list, what: str):
    """`where` maps record data to the places it was delivered: each acknowledged record
    exactly once, a record of a cut-off call at most once, nothing else."""
    twice = {d: places for d, places in where.items() if len(places) > 1}
    assert not twice, f"{len(twice)} records are in two {what}, e.g. {next(iter(twice.items()))}"
    missing = set(put) - set(where)
    assert not missing, f"{len(missing)} acknowledged records were not delivered, e.g. {sorted(missing)[:2]}"
    extra = set(where) - set(put) - set(maybe)
    assert not extra, f"{len(extra)} records delivered that were never put, e.g. {sorted(extra)[:2]}"


def _in_flight(rx, after: int):
    """A request after request #`after` that the receiver holds (arrived, not answered yet),
    once at least one request was accepted."""
    reqs = rx.snapshot()
    if not any(r.accepted for r in reqs):
        return None
    held = [r for r in reqs if r.n > after and r.answered_t is None]
    return held[-1] if held else None


@pytest.mark.timeout(150)
def test_http_batch_resent_after_sigkill_keeps_its_request_id(gateway_factory, receiver):
    rx = receiver(compression="gzip", delivery_stream="out")
    rx.set_mode(("slow", 1.5))
    cfg = stream_toml("s", 2) + delivery_toml("out", http_destination(rx), source="s", compression="gzip")
    gw = gateway_factory(cfg, name="ids")
    put, maybe, held = [], [], []
    # Two crashes, each while a batch is on its way; the second one right after a restart, so
    # that it may hit the batch formed again from the plan.
    for cycle in range(2):
        producer = Producer(gw.client(), cycle * 5000, cycle * 5000 + 5000)
        after = held[-1].n if held else 0
        req = wait_for(lambda: _in_flight(rx, after), timeout=40, interval=0.02, what="a batch on its way")
        gw.kill()
        producer.join()
        put += producer.put
        maybe += producer.maybe
        held.append(req)
        gw.start()
    rx.set_mode("ok")
    rx.wait_distinct(set(put), timeout=60)
    rx.assert_clean()

    by_id = {}
    for r in rx.snapshot():
        by_id.setdefault(r.request_id, []).append(r)
    for rid, reqs in by_id.items():
        assert all(r.records == reqs[0].records for r in reqs), \
            f"request id {rid} was sent with different records: {[len(r.records) for r in reqs]}"
    for req in held:
        again = [r for r in by_id[req.request_id] if r.n > req.n]
        assert again, (f"the batch on its way at the kill ({req}) was not sent again under its request id; "
                       f"requests after it: {[r for r in rx.snapshot() if r.n > req.n][:5]}")
    # A receiver that drops repeated request ids has every record exactly once.
    where = {}
    for r in rx.accepted():
        for d in r.records:
            where.setdefault(d, set()).add(r.request_id)
    _exactly_once({d: sorted(ids) for d, ids in where.items()}, put, maybe, "requests (by request id)")


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and not p.name.startswith(".")}


def _records_in(objs: dict[str, bytes]) -> dict[bytes, list[str]]:
    where = {}
    for name, body in objs.items():
        for line in body.split(b"\n"):
            if line:
                where.setdefault(line, []).append(name)
    return where


@pytest.mark.timeout(150)
def test_directory_object_rewritten_after_sigkill_keeps_its_name(gateway_factory, tmp_path):
    out = tmp_path / "out"
    cfg = stream_toml("s", 2) + delivery_toml(
        "to-dir", {"type": "directory", "path": str(out)}, source="s", processors=[NL])
    gw = gateway_factory(cfg, name="dir")
    put, maybe = [], []
    # Kill right after a file appears: before the batch's checkpoint is committed, most times.
    for cycle in range(6):
        producer = Producer(gw.client(), cycle * 3000, cycle * 3000 + 3000, pause=0.05)
        before = set(_names(out))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not set(_names(out)) - before:
            time.sleep(0.001)
        gw.kill()
        producer.join()
        put += producer.put
        maybe += producer.maybe
        gw.start()
    objs = wait_for(lambda: (o := _files(out)) and set(put) <= set(_records_in(o)) and o, timeout=60,
                    what="every record in the directory")
    # (A temporary file the kill left behind is rewritten and renamed when its batch is formed
    # again: none may be left.)
    _exactly_once(_records_in(objs), put, maybe, "files")


def _names(root: Path):
    for dirpath, _, names in os.walk(root):
        for n in names:
            if not n.startswith("."):
                yield os.path.join(dirpath, n)


class HoldingProxy:
    """A TCP proxy on 127.0.0.1 that passes requests through at once and holds every answer
    for `hold_s` before passing it on: the upstream has done the work, the client does not know
    yet. `held` counts answers being held right now."""

    def __init__(self, upstream_port: int, hold_s: float):
        self.upstream_port = upstream_port
        self.hold_s = hold_s
        self.held = 0
        self.answers = 0
        self._lock = threading.Lock()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self):
        while not self._closed:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._pump, args=(client,), daemon=True).start()

    def _pump(self, client):
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        try:
            while True:
                ready, _, _ = select.select([client, upstream], [], [], 60)
                if not ready:
                    return
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    if s is upstream:
                        with self._lock:
                            self.held += 1
                        time.sleep(self.hold_s)
                        with self._lock:
                            self.held -= 1
                            self.answers += 1
                        client.sendall(data)
                    else:
                        upstream.sendall(data)
        except OSError:
            return
        finally:
            client.close()
            upstream.close()

    def close(self):
        self._closed = True
        self._sock.close()


@pytest.mark.timeout(150)
def test_s3_object_rewritten_after_sigkill_keeps_its_key(gateway_factory, moto):
    bucket = moto.create_bucket(unique("ids"))
    proxy = HoldingProxy(moto.port, hold_s=1.5)
    try:
        cfg = stream_toml("s", 2) + delivery_toml(
            "to-s3", moto.s3_destination(bucket, endpoint=proxy.url), source="s", processors=[NL])
        gw = gateway_factory(cfg, env=moto.gateway_env(), name="s3")
        put, maybe = [], []
        for cycle in range(2):
            producer = Producer(gw.client(), cycle * 2000, cycle * 2000 + 2000)
            # An object stored in moto whose answer the gateway has not seen.
            wait_for(lambda: proxy.answers >= 1 and proxy.held >= 1 and moto.list_keys(bucket), timeout=40,
                     interval=0.02, what="an object put, its answer held")
            gw.kill()
            producer.join()
            put += producer.put
            maybe += producer.maybe
            gw.start()
        proxy.hold_s = 0
        objs = moto.wait_objects(bucket, lambda o: set(put) <= set(_records_in(o)), timeout=60)
        _exactly_once(_records_in(objs), put, maybe, "objects")
    finally:
        proxy.close()
