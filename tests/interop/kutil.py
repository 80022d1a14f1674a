"""Helpers for the kinedge interop suite: run the real gateway, talk to it with boto3 / raw HTTP.

Everything here talks only to 127.0.0.1.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import boto3
import botocore.session  # noqa: F401  (imported so boto3 sessions share the loader cache)
import cbor2
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

REPO_ROOT = Path(__file__).resolve().parents[2]
KINEDGE_BIN = Path(os.environ.get("KINEDGE_BIN", "target/debug/kinedge"))
if not KINEDGE_BIN.is_absolute():
    KINEDGE_BIN = REPO_ROOT / KINEDGE_BIN

REGION = "us-east-1"
ACCOUNT = "000000000000"
ARN_PREFIX = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/"
TEST_KEY = "AKIDKINEDGETEST"
TEST_SECRET_ENV = "KINEDGE_TEST_SECRET"
HASH_SPACE = 2**128
HASH_MAX = HASH_SPACE - 1
JSON_CT = "application/x-amz-json-1.1"
CBOR_CT = "application/x-amz-cbor-1.1"
TARGET_PREFIX = "Kinesis_20131202."
MiB = 1024 * 1024

CREDENTIALS_BLOCK = f"""
[[api.credentials]]
access_key_id = "{TEST_KEY}"
secret_env = "{TEST_SECRET_ENV}"
"""

# Gateways that are running right now; their logs are attached to failing test reports.
LIVE_GATEWAYS: list["Gateway"] = []
_ALL_PROCS: list[subprocess.Popen] = []


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent():  # runs in the child before exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def unique(prefix: str = "s") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Gateway:
    """One kinedge process (restartable on the same data dir and port)."""

    def __init__(self, base_dir: Path, extra_config: str = "", env: dict | None = None,
                 credentials: bool = False, name: str = "gw"):
        self.name = name
        self.dir = Path(base_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.dir / "data"
        self.port = free_port()
        self.config_path = self.dir / "kinedge.toml"
        self.log_path = self.dir / "kinedge.log"
        self.env = dict(os.environ)
        self.env.setdefault("RUST_BACKTRACE", "1")
        self.env.update(env or {})
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        # Set (to the CA file) before start() for a gateway with [api.tls]: url is https then.
        self.tls_ca: Path | None = None
        cfg = (
            "[storage]\n"
            f'data_dir = "{self.data_dir.as_posix()}"\n'
            'min_free_disk = "1MiB"\n'
            "\n[api]\n"
            f'listen = "127.0.0.1:{self.port}"\n'
            "\n[log]\n"
            'level = "info"\n'
        )
        # The MQTT listener is on by default (0.0.0.0:1883): give each gateway its own
        # loopback port unless the test configures [mqtt] itself.
        self.mqtt_port = free_port()
        # free_port() closes its socket: two calls can give the same port (it happened in CI:
        # the gateway refused a config whose MQTT and API listeners shared one).
        while self.mqtt_port == self.port:
            self.mqtt_port = free_port()
        if "[mqtt]" not in (extra_config or ""):
            cfg += f'\n[mqtt]\nlisten = "127.0.0.1:{self.mqtt_port}"\n'
        if credentials:
            cfg += CREDENTIALS_BLOCK
        if extra_config:
            cfg += "\n" + extra_config.strip() + "\n"
        self.config_path.write_text(cfg)

    # ---- process control -------------------------------------------------
    @property
    def url(self) -> str:
        scheme = "https" if self.tls_ca else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> "Gateway":
        if not KINEDGE_BIN.exists():
            pytest.fail(f"kinedge binary not found at {KINEDGE_BIN} (set KINEDGE_BIN)")
        self.starts += 1
        with open(self.log_path, "ab") as logf:
            logf.write(f"\n===== kinedge start #{self.starts} ({time.strftime('%H:%M:%S')}) =====\n".encode())
            logf.flush()
            self.proc = subprocess.Popen(
                [str(KINEDGE_BIN), "run", "--config", str(self.config_path)],
                stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self.env, cwd=str(self.dir), preexec_fn=_die_with_parent,
            )
        _ALL_PROCS.append(self.proc)
        if self not in LIVE_GATEWAYS:
            LIVE_GATEWAYS.append(self)
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        last_err = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"kinedge exited with code {self.proc.returncode} during startup\n{self.log_tail()}")
            try:
                r = requests.get(f"{self.url}/health", timeout=1, verify=str(self.tls_ca) if self.tls_ca else True)
                if r.status_code == 200:
                    return
                last_err = f"HTTP {r.status_code}: {r.text[:200]}"
            except requests.RequestException as e:
                last_err = repr(e)
            time.sleep(0.1)
        raise RuntimeError(f"kinedge not healthy after {timeout}s (last: {last_err})\n{self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait `timeout` s, then SIGKILL. Returns the exit code (negative = signal)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                self._note("did not exit within %.0fs of SIGTERM; killed" % timeout)
                return None
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL: a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._note("SIGKILLed by the test")

    def restart(self, timeout: float = 20.0) -> "Gateway":
        self.stop()
        return self.start(timeout)

    def close(self) -> None:
        try:
            self.stop()
        finally:
            if self in LIVE_GATEWAYS:
                LIVE_GATEWAYS.remove(self)

    def _note(self, text: str) -> None:
        with open(self.log_path, "ab") as logf:
            logf.write(f"===== test: {text} ({time.strftime('%H:%M:%S')}) =====\n".encode())

    def log_tail(self, lines: int = 150) -> str:
        try:
            data = self.log_path.read_bytes().decode("utf-8", "replace").splitlines()
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(data[-lines:])

    # ---- clients -----------------------------------------------------------
    def client(self, **kw):
        return make_client(self.port, **kw)

    def raw(self, target, body, **kw) -> requests.Response:
        return raw_post(self.port, target, body, **kw)


class GatewayFactory:
    def __init__(self, dir_fn):
        self._dir_fn = dir_fn
        self.gateways: list[Gateway] = []

    def __call__(self, extra_config: str = "", env: dict | None = None, credentials: bool = False,
                 name: str | None = None, start: bool = True) -> Gateway:
        name = name or f"gw{len(self.gateways)}"
        gw = Gateway(self._dir_fn(name), extra_config, env, credentials, name)
        self.gateways.append(gw)
        if start:
            gw.start()
        return gw

    def close(self) -> None:
        for gw in self.gateways:
            gw.close()


def kill_all_leftovers() -> None:
    for p in _ALL_PROCS:
        if p.poll() is None:
            p.kill()


# ---- boto3 ---------------------------------------------------------------------
_session_lock = threading.Lock()
_session = None


def make_client(port: int, key: str = TEST_KEY, secret: str = "secret", validate: bool = True,
                read_timeout: float = 30, connect_timeout: float = 5):
    """A Kinesis client for the gateway: no retries at all (total_max_attempts=1)."""
    global _session
    cfg = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        parameter_validation=validate,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )
    with _session_lock:
        if _session is None:
            _session = boto3.session.Session()
        return _session.client(
            "kinesis", endpoint_url=f"http://127.0.0.1:{port}", region_name=REGION,
            aws_access_key_id=key, aws_secret_access_key=secret, config=cfg)


def expect_error(codes, fn, *args, mentions=(), **kwargs) -> dict:
    """Call fn, expect a ClientError with one of `codes`, HTTP 400, a non-empty message that
    (if `mentions` is given) contains at least one of the given substrings (case-insensitive)."""
    if isinstance(codes, str):
        codes = (codes,)
    try:
        out = fn(*args, **kwargs)
    except ClientError as e:
        resp = e.response
    else:
        meta = out.get("ResponseMetadata", {}) if isinstance(out, dict) else {}
        pytest.fail(f"expected {'/'.join(codes)} but the call succeeded: "
                    f"{ {k: v for k, v in out.items() if k != 'ResponseMetadata'} if isinstance(out, dict) else out} {meta.get('HTTPStatusCode')}")
    err = resp.get("Error", {})
    status = resp.get("ResponseMetadata", {}).get("HTTPStatusCode")
    assert err.get("Code") in codes, f"expected {'/'.join(codes)}, got {err} (HTTP {status})"
    assert status == 400, f"{err.get('Code')} came with HTTP {status}, expected 400"
    msg = (err.get("Message") or "").strip()
    assert msg, f"{err.get('Code')} has an empty message"
    if mentions:
        assert any(m.lower() in msg.lower() for m in mentions), \
            f"message {msg!r} should mention one of {list(mentions)}"
    assert resp.get("ResponseMetadata", {}).get("RequestId"), "error response lacks x-amzn-RequestId"
    return resp


# ---- raw HTTP ------------------------------------------------------------------
class Tag1:
    """CBOR tag 1 (epoch time) kept undecoded: AWS's CBOR puts epoch *milliseconds* there."""

    def __init__(self, value):
        self.value = value

    def __repr__(self):
        return f"Tag1({self.value!r})"


def cbor_loads(data: bytes):
    return cbor2.loads(data, semantic_decoders={1: lambda v, immutable: Tag1(v)})


def raw_post(port: int, target, body, content_type: str = JSON_CT, sign: bool = True,
             key: str = TEST_KEY, secret: str = "secret", headers: dict | None = None,
             timeout: float = 30) -> requests.Response:
    """POST / with the given X-Amz-Target (bare operation names get the Kinesis prefix; None = no
    header). dict bodies are JSON- or CBOR-encoded according to content_type. Signed with SigV4
    unless sign=False."""
    url = f"http://127.0.0.1:{port}/"
    hdrs = {}
    if content_type is not None:
        hdrs["Content-Type"] = content_type
    if target is not None:
        hdrs["X-Amz-Target"] = target if "." in target else TARGET_PREFIX + target
    if isinstance(body, (dict, list)):
        body = cbor2.dumps(body) if content_type == CBOR_CT else json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    if headers:
        hdrs.update(headers)
    if sign:
        req = AWSRequest(method="POST", url=url, data=body, headers=hdrs)
        SigV4Auth(Credentials(key, secret), "kinesis", REGION).add_auth(req)
        hdrs = dict(req.headers.items())
    return requests.post(url, data=body, headers=hdrs, timeout=timeout)


def decode_body(resp: requests.Response):
    ct = resp.headers.get("Content-Type", "")
    if not resp.content:
        return {}
    if "cbor" in ct:
        return cbor_loads(resp.content)
    if "json" in ct:
        return json.loads(resp.content)
    raise AssertionError(f"response has Content-Type {ct!r}; body {resp.content[:200]!r}")


def assert_raw_error(resp: requests.Response, code, status: int = 400, mentions=(), json_only=True) -> dict:
    codes = (code,) if isinstance(code, str) else tuple(code)
    assert resp.status_code == status, \
        f"expected HTTP {status} {codes}, got {resp.status_code}: {resp.content[:300]!r}"
    assert resp.headers.get("x-amzn-RequestId"), \
        f"error response lacks x-amzn-RequestId header: {dict(resp.headers)}"
    ct = resp.headers.get("Content-Type", "")
    if json_only:
        assert "json" in ct, f"error Content-Type is {ct!r}, expected JSON"
        try:
            body = json.loads(resp.content)
        except ValueError:
            raise AssertionError(f"error body is not JSON: {resp.content[:300]!r}")
    else:
        body = decode_body(resp)
    assert isinstance(body, dict), f"error body is not an object: {body!r}"
    typ = str(body.get("__type", ""))
    assert typ.split("#")[-1] in codes, f"__type {typ!r}, expected {codes}; body {body}"
    msg = body.get("message")
    assert isinstance(msg, str) and msg.strip(), f"error body lacks a non-empty 'message': {body}"
    if mentions:
        assert any(m.lower() in msg.lower() for m in mentions), \
            f"message {msg!r} should mention one of {list(mentions)}"
    return body


# ---- Kinesis helpers -----------------------------------------------------------
def md5_hash(key: str) -> int:
    return int.from_bytes(hashlib.md5(key.encode("utf-8")).digest(), "big")


def even_ranges(n: int) -> list[tuple[int, int]]:
    step = HASH_SPACE // n
    return [(step * i, (step * (i + 1) - 1) if i < n - 1 else HASH_MAX) for i in range(n)]


def rng(shard) -> tuple[int, int]:
    r = shard["HashKeyRange"]
    return int(r["StartingHashKey"]), int(r["EndingHashKey"])


def is_open(shard) -> bool:
    return "EndingSequenceNumber" not in shard.get("SequenceNumberRange", {})


def shard_for_hash(shards, h: int) -> str:
    hits = [s["ShardId"] for s in shards if is_open(s) and rng(s)[0] <= h <= rng(s)[1]]
    assert len(hits) == 1, f"hash {h} is in {len(hits)} open shards: {hits}"
    return hits[0]


def assert_covers_hash_space(shards) -> None:
    """The given (open) shards tile 0..2^128-1 with no gap and no overlap."""
    ranges = sorted(rng(s) for s in shards)
    assert ranges, "no shards"
    assert ranges[0][0] == 0, f"first range starts at {ranges[0][0]}"
    assert ranges[-1][1] == HASH_MAX, f"last range ends at {ranges[-1][1]}"
    for (a0, a1), (b0, b1) in zip(ranges, ranges[1:]):
        assert a1 + 1 == b0, f"gap/overlap between ..{a1} and {b0}.."
        assert a0 <= a1


def assert_seq(s) -> int:
    assert isinstance(s, str) and s.isdigit() and len(s) == 56, f"bad sequence number {s!r}"
    return int(s)


def create_stream(client, name: str, shards: int = 1, **kw) -> dict:
    client.create_stream(StreamName=name, ShardCount=shards, **kw)
    wait_active(client, name)
    return client.describe_stream(StreamName=name)["StreamDescription"]


def wait_active(client, name: str) -> None:
    client.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 15})


def list_all_shards(client, stream: str, **kw) -> list[dict]:
    resp = client.list_shards(StreamName=stream, **kw)
    shards = list(resp["Shards"])
    for _ in range(1000):
        tok = resp.get("NextToken")
        if not tok:
            break
        resp = client.list_shards(NextToken=tok)
        shards += resp["Shards"]
    return shards


def parents_first(shards: list[dict]) -> list[dict]:
    ids = {s["ShardId"] for s in shards}
    done, out = set(), []
    pending = sorted(shards, key=lambda s: s["ShardId"])
    while pending:
        progressed = False
        for s in list(pending):
            parents = [p for p in (s.get("ParentShardId"), s.get("AdjacentParentShardId")) if p and p in ids]
            if all(p in done for p in parents):
                out.append(s)
                done.add(s["ShardId"])
                pending.remove(s)
                progressed = True
        assert progressed, f"shard parent cycle: {pending}"
    return out


def read_shard(client, stream: str, shard_id: str, iterator_type: str = "TRIM_HORIZON",
               limit: int = 10000, max_calls: int = 2000, **kw):
    """Read a shard until it is closed-and-done (NextShardIterator absent) or caught up (an empty
    page with MillisBehindLatest 0). Returns (records, last GetRecords response)."""
    it = client.get_shard_iterator(StreamName=stream, ShardId=shard_id,
                                   ShardIteratorType=iterator_type, **kw)["ShardIterator"]
    records, last = [], None
    for _ in range(max_calls):
        last = client.get_records(ShardIterator=it, Limit=limit)
        records += last["Records"]
        nxt = last.get("NextShardIterator")
        if not nxt:
            break
        if not last["Records"] and last.get("MillisBehindLatest", 0) == 0:
            break
        it = nxt
    else:
        raise AssertionError(f"shard {shard_id} not read to its end after {max_calls} GetRecords")
    return records, last


def read_all(client, stream: str) -> dict[str, list[dict]]:
    """Every shard from TRIM_HORIZON, parents before children. {shard_id: [records]}."""
    out = {}
    for s in parents_first(list_all_shards(client, stream)):
        recs, _ = read_shard(client, stream, s["ShardId"])
        out[s["ShardId"]] = recs
    return out


def flatten(per_shard: dict[str, list[dict]]) -> list[dict]:
    return [dict(r, ShardId=sid) for sid, recs in per_shard.items() for r in recs]
