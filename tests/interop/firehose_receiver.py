"""A real Firehose HTTP endpoint receiver for the delivery tests, and the delivery-test helpers.

FirehoseReceiver listens on 127.0.0.1 (a free port, or a given one) and checks EVERY request
against the HTTP endpoint delivery contract (REFERENCE.md, "Firehose"):

- POST to the configured path, `Content-Type: application/json`,
- `X-Amz-Firehose-Protocol-Version: 1.0`, `X-Amz-Firehose-Request-Id` equal to the body's
  requestId, `X-Amz-Firehose-Source-Arn` (arn:aws:firehose:<region>:<account>:deliverystream/<name>),
- `X-Amz-Firehose-Access-Key` exactly the configured key (absent when none; at most 4096 B),
- `X-Amz-Firehose-Common-Attributes` `{"commonAttributes": {...}}` as AWS sends it (absent or
  empty when none; at most 50 entries),
- `Content-Encoding: gzip` exactly when the delivery stream compresses,
- body `{"requestId", "timestamp" (ms, near now), "records": [{"data": base64}]}`, 1-10,000
  records of at most 1,024,000 B each, at most 64 MiB uncompressed.

Contract violations are appended to `receiver.failures` (tests assert it is empty). Each
request is answered according to a per-request script (`receiver.script(...)`), then by the
default mode: "ok" (200 with the matching requestId), "500", "413", "wrong_id" (200 with another
requestId), "hang" (wait `hang_s`, then drop the connection without an answer) or
("slow", seconds) (wait, then answer ok). `down()` closes the listening socket and every open
connection (connection refused from then on); `up()` listens again on the same port.

The module also has the small helpers every delivery test uses: TOML for `[[delivery_streams]]`,
`/deliveries`, and `wait_for`.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import re
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

MAX_RECORD = 1_024_000
MAX_BODY = 64 * 1024 * 1024
MAX_RECORDS = 10_000
SOURCE_ARN_RE = re.compile(r"^arn:aws:firehose:[a-z0-9-]+:\d{12}:deliverystream/(?P<name>[A-Za-z0-9_.-]{1,64})$")


class Request:
    """One request as the receiver saw it."""

    def __init__(self, n: int):
        self.n = n
        self.t = time.time()
        self.headers: dict[str, str] = {}
        self.request_id: str | None = None
        self.source_arn: str | None = None
        self.records: list[bytes] = []
        self.body_timestamp: int | None = None
        self.mode = "ok"
        self.status: int | None = None   # what was answered (None: no answer)
        self.accepted = False            # 200 with the matching requestId
        self.answered_t: float | None = None

    def __repr__(self):
        return (f"Request(#{self.n} id={self.request_id} records={len(self.records)} mode={self.mode} "
                f"status={self.status})")


class FirehoseReceiver:
    def __init__(self, path: str = "/ingest", compression: str = "none", access_key: str | None = None,
                 common_attributes: dict | None = None, delivery_stream: str | None = None,
                 port: int = 0, hang_s: float = 5.0):
        self.path = path
        self.compression = compression
        self.access_key = access_key
        self.common_attributes = dict(common_attributes or {})
        self.delivery_stream = delivery_stream
        self.hang_s = hang_s
        self.default_mode = "ok"
        self.failures: list[str] = []
        self.requests: list[Request] = []
        self._script: list = []
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._conns: set[socket.socket] = set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.port = port
        self.up()

    # ---- life cycle ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def up(self) -> None:
        """Listen (again) on 127.0.0.1:self.port (a free port the first time when 0)."""
        assert self._server is None, "receiver already up"
        self._stopping.clear()
        deadline = time.monotonic() + 10
        while True:
            try:
                self._server = _Server(("127.0.0.1", self.port), _handler_for(self))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name=f"receiver-{self.port}")
        self._thread.start()

    def down(self) -> None:
        """Stop listening and cut every open connection: the gateway sees connection refused."""
        srv, self._server = self._server, None
        if srv is None:
            return
        self._stopping.set()
        srv.shutdown()
        srv.server_close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread:
            self._thread.join(10)

    def close(self) -> None:
        self.down()

    # ---- behaviour ---------------------------------------------------------------------------
    def script(self, *modes) -> None:
        """The next requests get these answers, in order; then `default_mode`."""
        with self._lock:
            self._script.extend(modes)

    def set_mode(self, mode) -> None:
        with self._lock:
            self.default_mode = mode
            self._script.clear()

    def _next_mode(self):
        with self._lock:
            return self._script.pop(0) if self._script else self.default_mode

    # ---- results -----------------------------------------------------------------------------
    def snapshot(self) -> list[Request]:
        with self._lock:
            return list(self.requests)

    def accepted(self) -> list[Request]:
        return [r for r in self.snapshot() if r.accepted]

    def accepted_records(self) -> list[bytes]:
        """Data of every record in requests answered with success, in the order they came
        (duplicates included)."""
        return [d for r in self.accepted() for d in r.records]

    def unique_records(self) -> list[bytes]:
        """Records of accepted requests with repeated request ids dropped, as a Firehose
        receiver would."""
        seen, out = set(), []
        for r in self.accepted():
            if r.request_id in seen:
                continue
            seen.add(r.request_id)
            out += r.records
        return out

    def wait_records(self, n: int, timeout: float = 20.0, unique: bool = True) -> list[bytes]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = self.unique_records() if unique else self.accepted_records()
                if len(got) >= n:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"receiver got {len(got)} of {n} records in {timeout}s; requests: {self.requests[-10:]}"
                        f"; contract failures: {self.failures[:5]}")
                self._cond.wait(min(left, 0.2))

    def wait_distinct(self, want: set, timeout: float = 20.0) -> list[bytes]:
        """Wait until every record data in `want` was accepted at least once; returns all
        accepted records (duplicates included)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = self.accepted_records()
                missing = want - set(got)
                if not missing:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"receiver lacks {len(missing)} of {len(want)} records after {timeout}s, e.g. "
                        f"{sorted(missing)[:3]}; requests: {self.requests[-5:]}; failures: {self.failures[:5]}")
                self._cond.wait(min(left, 0.2))

    def wait_requests(self, n: int, timeout: float = 20.0) -> list[Request]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"receiver got {len(self.requests)} of {n} requests in {timeout}s")
                self._cond.wait(min(left, 0.2))
            return list(self.requests)

    def assert_clean(self) -> None:
        assert not self.failures, f"{len(self.failures)} contract violations, e.g. {self.failures[:5]}"

    # ---- checking one request ------------------------------------------------------------
    def _fail(self, req: Request, msg: str) -> None:
        with self._lock:
            self.failures.append(f"request #{req.n} ({req.request_id}): {msg}")

    def _check(self, req: Request, method: str, path: str, headers, raw: bytes) -> None:
        h = {k.lower(): v for k, v in headers.items()}
        req.headers = h
        if method != "POST":
            self._fail(req, f"method {method}, expected POST")
        if path != self.path:
            self._fail(req, f"path {path!r}, expected {self.path!r}")
        if h.get("x-amz-firehose-protocol-version") != "1.0":
            self._fail(req, f"X-Amz-Firehose-Protocol-Version {h.get('x-amz-firehose-protocol-version')!r}")
        ct = (h.get("content-type") or "").split(";")[0].strip().lower()
        if ct != "application/json":
            self._fail(req, f"Content-Type {h.get('content-type')!r}, expected application/json")
        rid = h.get("x-amz-firehose-request-id")
        req.request_id = rid
        if not rid:
            self._fail(req, "no X-Amz-Firehose-Request-Id")
        arn = h.get("x-amz-firehose-source-arn")
        req.source_arn = arn
        m = SOURCE_ARN_RE.match(arn or "")
        if not m:
            self._fail(req, f"X-Amz-Firehose-Source-Arn {arn!r} is not a delivery stream ARN")
        elif self.delivery_stream and m.group("name") != self.delivery_stream:
            self._fail(req, f"Source-Arn names {m.group('name')!r}, expected {self.delivery_stream!r}")
        key = h.get("x-amz-firehose-access-key")
        if key != self.access_key:
            self._fail(req, f"X-Amz-Firehose-Access-Key {key!r}, expected {self.access_key!r}")
        if key is not None and len(key.encode()) > 4096:
            self._fail(req, "X-Amz-Firehose-Access-Key longer than 4096 bytes")
        attrs = h.get("x-amz-firehose-common-attributes")
        if self.common_attributes:
            try:
                parsed = json.loads(attrs or "")
            except ValueError:
                parsed = None
            if parsed != {"commonAttributes": self.common_attributes}:
                self._fail(req, f"X-Amz-Firehose-Common-Attributes {attrs!r}, expected "
                                f"{json.dumps({'commonAttributes': self.common_attributes})}")
            elif len(self.common_attributes) > 50:
                self._fail(req, "more than 50 common attributes")
        elif attrs is not None:
            try:
                ok = json.loads(attrs) in ({}, {"commonAttributes": {}})
            except ValueError:
                ok = False
            if not ok:
                self._fail(req, f"X-Amz-Firehose-Common-Attributes {attrs!r} without configured attributes")
        enc = h.get("content-encoding")
        body = raw
        if self.compression == "gzip":
            if (enc or "").lower() != "gzip":
                self._fail(req, f"Content-Encoding {enc!r}, expected gzip")
            try:
                body = gzip.decompress(raw)
            except (OSError, EOFError) as e:
                self._fail(req, f"body is not gzip: {e}")
                return
        elif enc not in (None, "", "identity"):
            self._fail(req, f"Content-Encoding {enc!r} on an uncompressed delivery stream")
        if len(body) > MAX_BODY:
            self._fail(req, f"body of {len(body)} bytes is over 64 MiB")
        try:
            doc = json.loads(body)
        except ValueError as e:
            self._fail(req, f"body is not JSON ({e}): {body[:120]!r}")
            return
        if not isinstance(doc, dict) or set(doc) != {"requestId", "timestamp", "records"}:
            self._fail(req, f"body keys {sorted(doc) if isinstance(doc, dict) else type(doc)}, "
                            "expected requestId, timestamp, records")
            if not isinstance(doc, dict):
                return
        if doc.get("requestId") != rid:
            self._fail(req, f"body requestId {doc.get('requestId')!r} != header {rid!r}")
        ts = doc.get("timestamp")
        req.body_timestamp = ts
        if not isinstance(ts, int) or isinstance(ts, bool) or abs(ts - time.time() * 1000) > 10 * 60 * 1000:
            self._fail(req, f"body timestamp {ts!r} is not epoch milliseconds near now")
        recs = doc.get("records")
        if not isinstance(recs, list) or not 1 <= len(recs) <= MAX_RECORDS:
            self._fail(req, f"records is {type(recs).__name__} of {len(recs) if isinstance(recs, list) else '-'}, "
                            "expected 1..10000")
            return
        for i, r in enumerate(recs):
            if not isinstance(r, dict) or set(r) != {"data"} or not isinstance(r.get("data"), str):
                self._fail(req, f"record {i} is {r!r:.100}, expected {{'data': base64}}")
                continue
            try:
                data = base64.b64decode(r["data"], validate=True)
            except (binascii.Error, ValueError):
                self._fail(req, f"record {i} data is not base64: {r['data'][:60]!r}")
                continue
            if len(data) > MAX_RECORD:
                self._fail(req, f"record {i} has {len(data)} bytes, over 1,024,000")
            req.records.append(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


def _handler_for(rx: FirehoseReceiver):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 60

        def setup(self):
            super().setup()
            with rx._lock:
                rx._conns.add(self.connection)

        def finish(self):
            with rx._lock:
                rx._conns.discard(self.connection)
            try:
                super().finish()
            except OSError:
                pass

        def log_message(self, *a):
            pass

        def _handle(self):
            with rx._lock:
                req = Request(len(rx.requests) + 1)
            n = int(self.headers.get("Content-Length") or 0)
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                raw = self._read_chunked()
            else:
                raw = self.rfile.read(n) if n else b""
            rx._check(req, self.command, self.path, dict(self.headers.items()), raw)
            mode = rx._next_mode()
            req.mode = mode if isinstance(mode, str) else f"{mode[0]}:{mode[1]}"
            with rx._cond:
                rx.requests.append(req)
                rx._cond.notify_all()
            if isinstance(mode, tuple) and mode[0] == "slow":
                time.sleep(mode[1])
                mode = "ok"
            if mode == "hang":
                rx._stopping.wait(rx.hang_s)
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            now = int(time.time() * 1000)
            if mode == "ok":
                self._answer(200, {"requestId": req.request_id, "timestamp": now}, req, accepted=True)
            elif mode == "wrong_id":
                self._answer(200, {"requestId": str(uuid.uuid4()), "timestamp": now}, req)
            elif mode == "500":
                self._answer(500, {"requestId": req.request_id, "timestamp": now,
                                   "errorMessage": "receiver told to fail"}, req)
            elif mode == "413":
                self._answer(413, {"requestId": req.request_id, "timestamp": now,
                                   "errorMessage": "payload too large"}, req)
            else:
                raise ValueError(f"unknown receiver mode {mode!r}")

        def _read_chunked(self) -> bytes:
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()

        def _answer(self, status: int, doc: dict, req: Request, accepted: bool = False):
            body = json.dumps(doc).encode()
            # Recorded before the answer goes out, so that whatever the gateway reports after
            # seeing the answer is already visible here.
            with rx._cond:
                req.status = status
                req.accepted = accepted
                req.answered_t = time.time()
                rx._cond.notify_all()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
            except OSError:
                with rx._cond:  # the client gave up: not delivered
                    req.status = None
                    req.accepted = False

        do_POST = _handle
        do_PUT = _handle
        do_GET = _handle

    return Handler


# ---- helpers shared by the delivery tests -----------------------------------------------------
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_value(v) -> str:
    """A Python value as a one-line TOML value (inline tables and arrays)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, dict):
        items = ", ".join(f"{k if _BARE_KEY.match(k) else json.dumps(k)} = {toml_value(x)}" for k, x in v.items())
        return "{ " + items + " }" if items else "{}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML for {v!r}")


def stream_toml(name: str, shards: int = 1, **extra) -> str:
    lines = ["[[streams]]", f"name = {toml_value(name)}", f"shards = {shards}"]
    lines += [f"{k} = {toml_value(v)}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def delivery_toml(name: str, destination: dict, source="direct_put", start: str | None = "trim_horizon",
                  size: str = "1MiB", interval_s: int = 0, compression: str | None = None,
                  processors: list | None = None, **extra) -> str:
    """One `[[delivery_streams]]` table. `source` is a stream name or "direct_put"."""
    lines = ["[[delivery_streams]]", f"name = {toml_value(name)}"]
    if source == "direct_put":
        lines.append('source = "direct_put"')
    else:
        src = {"stream": source}
        if start:
            src["start"] = start
        lines.append(f"source = {toml_value(src)}")
    lines.append(f"buffer = {toml_value({'size': size, 'interval_s': interval_s})}")
    if compression:
        lines.append(f"compression = {toml_value(compression)}")
    if processors is not None:
        lines.append(f"processors = {toml_value(processors)}")
    lines += [f"{k} = {toml_value(v)}" for k, v in extra.items()]
    lines.append(f"destination = {toml_value(destination)}")
    return "\n".join(lines) + "\n"


def http_destination(rx: FirehoseReceiver, retry_duration_s: int = 60, **extra) -> dict:
    return {"type": "http_endpoint", "url": rx.url, "retry_duration_s": retry_duration_s, **extra}


def wait_for(pred, timeout: float = 20.0, interval: float = 0.1, what: str = "condition"):
    """Poll pred() until it returns something truthy; return it. AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = pred()
        except (requests.RequestException, KeyError, ValueError) as e:
            last = e
            last_ok = None
        else:
            last_ok = last
        if last_ok:
            return last_ok
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout}s (last: {last!r:.500})")
        time.sleep(interval)


def deliveries(gw) -> dict[str, dict]:
    """GET /deliveries as {name: entry}."""
    r = requests.get(f"{gw.url}/deliveries", timeout=5)
    assert r.status_code == 200, f"GET /deliveries: HTTP {r.status_code}: {r.text[:300]}"
    assert "json" in r.headers.get("Content-Type", ""), r.headers.get("Content-Type")
    doc = r.json()
    assert isinstance(doc.get("delivery_streams"), list), doc
    return {d["name"]: d for d in doc["delivery_streams"]}


def delivery(gw, name: str) -> dict:
    d = deliveries(gw)
    assert name in d, f"delivery stream {name!r} not in /deliveries: {sorted(d)}"
    return d[name]


def put_keyed(client, stream: str, n: int, keys: int = 4, tag: str = "r", start: int = 0) -> list[tuple[bytes, str]]:
    """PutRecords n records `<tag>|<key>|<i>` over `keys` partition keys; all must be accepted.
    Returns [(data, key)] in put order."""
    out = []
    for lo in range(start, start + n, 500):
        batch = []
        for i in range(lo, min(start + n, lo + 500)):
            key = f"k{i % keys}"
            batch.append({"Data": f"{tag}|{key}|{i:07d}".encode(), "PartitionKey": key})
        resp = client.put_records(StreamName=stream, Records=batch)
        assert resp["FailedRecordCount"] == 0, [r for r in resp["Records"] if "ErrorCode" in r][:3]
        out += [(b["Data"], b["PartitionKey"]) for b in batch]
    return out


def wait_reading_from_latest(client, stream: str, rx, keys: int | list[str] = 4,
                             timeout: float = 30.0) -> set[bytes]:
    """A delivery stream that starts at LATEST takes its position when its runner opens the
    source, which a busy machine may delay: put probe records `probe|<key>|<n>` under the
    partition keys (`keys` of put_keyed's `k0`.., or these names) until the receiver `rx` has
    one of every key. Records put afterwards are delivered. Returns every probe put (so the
    caller can leave them out)."""
    names = keys if isinstance(keys, list) else [f"k{k}" for k in range(keys)]
    deadline = time.monotonic() + timeout
    probes: set[bytes] = set()
    n = 0
    while True:
        batch = [{"Data": f"probe|{k}|{n:07d}".encode(), "PartitionKey": k} for k in names]
        assert client.put_records(StreamName=stream, Records=batch)["FailedRecordCount"] == 0
        probes |= {b["Data"] for b in batch}
        n += 1
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            seen = {d.split(b"|")[1] for d in rx.accepted_records() if d.startswith(b"probe|")}
            if len(seen) >= len(names):
                return probes
            time.sleep(0.1)
        if time.monotonic() > deadline:
            raise AssertionError(f"{stream} delivered no probe of every key in {timeout}s")


def assert_per_key_order(received: list[bytes], label: str = "") -> None:
    """Records `<tag>|<key>|<i>`: for each key, the first occurrences come in increasing i."""
    seen, last = set(), {}
    for d in received:
        if d in seen:
            continue
        seen.add(d)
        _, key, i = d.decode().split("|")
        i = int(i)
        assert i > last.get(key, -1), f"{label}: key {key} got #{i} after #{last[key]}"
        last[key] = i


ERROR_RECORD_KEYS = {"attemptsMade", "arrivalTimestamp", "errorCode", "errorMessage",
                     "attemptEndingTimestamp", "rawData", "partitionKey", "sequenceNumber"}


def parse_error_lines(body: bytes, label: str = "") -> list[dict]:
    """Firehose error records: one JSON object per line, with every documented key; rawData is
    decoded into `raw`."""
    out = []
    for line in body.decode().splitlines():
        if not line.strip():
            continue
        doc = json.loads(line)
        missing = ERROR_RECORD_KEYS - set(doc)
        assert not missing, f"{label}: error record lacks {sorted(missing)}: {line[:300]}"
        assert isinstance(doc["errorCode"], str) and doc["errorCode"], doc
        assert isinstance(doc["attemptsMade"], int), doc
        doc["raw"] = base64.b64decode(doc["rawData"])
        out.append(doc)
    return out


def dead_letters(gw, name: str, kind: str = "http-endpoint-failed") -> dict:
    """{path: [error records]} under <data_dir>/dead-letter/<name>/<kind>/YYYY/MM/dd/HH/."""
    root = gw.data_dir / "dead-letter" / name / kind
    out = {}
    if not root.exists():
        return out
    for p in sorted(root.rglob("*")):
        if p.is_file():
            rel = p.relative_to(root).parts
            assert len(rel) == 5 and [len(x) for x in rel[:4]] == [4, 2, 2, 2] and all(x.isdigit() for x in rel[:4]), \
                f"dead-letter file {p} is not under YYYY/MM/dd/HH/"
            assert rel[4].startswith(f"{name}-1-"), f"dead-letter object name {rel[4]!r}"
            body = p.read_bytes()
            if body.startswith(b"\x1f\x8b"):
                body = gzip.decompress(body)
            out[str(p)] = parse_error_lines(body, str(p))
    return out
