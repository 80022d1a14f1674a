"""The API's HTTP front against hostile or careless clients: slow heads, stalled bodies,
connection floods, unsigned megabytes, CORS, missing Content-Type, control bytes, and stops
with connections open."""

import json
import os
import resource
import socket
import threading
import time

import pytest
import requests

from kutil import (JSON_CT, TEST_KEY, TEST_SECRET_ENV, assert_raw_error, create_stream,
                   unique)

# Hundreds of client sockets in this process (and in the gateway, which inherits the limit).
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if _soft < 4096:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, _hard), _hard))

SECRET = "kinedge-front-secret-91c2"
MAX_BODY = 16 * 1024 * 1024


def connect(port, timeout=30):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_response(s, timeout=30.0):
    """Everything the server sends until it closes the connection or `timeout` passes."""
    s.settimeout(timeout)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            data = s.recv(65536)
            if not data:
                break
            out += data
            if b"\r\n\r\n" in out:
                head, _, body = out.partition(b"\r\n\r\n")
                length = [int(l.split(b":")[1]) for l in head.lower().split(b"\r\n") if l.startswith(b"content-length:")]
                if length and len(body) >= length[0]:
                    break
    except (socket.timeout, ConnectionResetError):
        pass
    return out


def parse(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else None
    headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
    return status, headers, body


def stalled_body(port):
    """A PutRecords that declares a 16 MiB body and sends none of it."""
    s = connect(port)
    s.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: " + JSON_CT.encode() +
              b"\r\nX-Amz-Target: Kinesis_20131202.PutRecords\r\nContent-Length: " +
              str(MAX_BODY - 1).encode() + b"\r\n\r\n")
    return s


def slow_head(port):
    """A connection that starts a request head and never finishes it."""
    s = connect(port)
    s.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: Kinesis_")
    return s


def api_gateway(factory, api_lines, name, **kw):
    """A gateway with `api_lines` added to its [api] table."""
    gw = factory(name=name, start=False, **kw)
    listen = f'listen = "127.0.0.1:{gw.port}"\n'
    gw.config_path.write_text(gw.config_path.read_text().replace(listen, listen + api_lines, 1))
    return gw.start()


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


# ---- slow clients -----------------------------------------------------------------------------
def test_slow_heads_and_stalled_bodies_do_not_starve_a_normal_client(gateway_factory):
    """500 slow-head connections and 3 that declared a 16 MiB body and send nothing: a boto3
    client beside them keeps putting records, the stalled bodies get 408 after the grace, and
    the slow heads are closed."""
    gw = gateway_factory(name="slow")
    client = gw.client(read_timeout=15)
    stream = unique("slow")
    create_stream(client, stream, 2)
    slow = [slow_head(gw.port) for _ in range(500)]
    stalled = [stalled_body(gw.port) for _ in range(3)]
    try:
        worst = 0.0
        for i in range(30):
            started = time.monotonic()
            out = client.put_records(StreamName=stream, Records=[
                {"Data": os.urandom(100), "PartitionKey": f"k{i}-{j}"} for j in range(100)])
            worst = max(worst, time.monotonic() - started)
            assert out["FailedRecordCount"] == 0
        # Generous: only a starved client (waiting for the stalled bodies) takes seconds.
        assert worst < 5, f"slowest PutRecords took {worst:.1f} s beside the slow clients"
        for s in stalled:
            status, headers, body = parse(read_response(s, timeout=40))
            assert status == 408, (status, body[:300])
            assert headers.get("x-amzn-requestid")
            assert json.loads(body)["__type"] == "RequestTimeoutException"
        # The slow heads are closed (by the head timeout or to make room): wait for EOF.
        closed = 0
        deadline = time.monotonic() + 40
        for s in slow:
            s.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                closed += s.recv(1024) == b""
            except ConnectionResetError:
                closed += 1
            except socket.timeout:
                pass
        assert closed == len(slow), f"{len(slow) - closed} slow-head connections still open after 40 s"
    finally:
        for s in slow + stalled:
            s.close()


def test_connections_are_capped_and_a_new_client_still_gets_in(gateway_factory):
    """With api.max_connections = 50, 300 connections that never send a request do not raise
    the gateway's descriptors past the cap; a new client still gets served (an idle
    connection makes room), and MQTT keeps accepting."""
    gw = api_gateway(gateway_factory, "max_connections = 50\n", "cap")
    pid = gw.proc.pid
    baseline = open_fds(pid)
    idle = [connect(gw.port) for _ in range(300)]
    try:
        time.sleep(1)  # let the accept loop take what it will
        assert open_fds(pid) <= baseline + 50 + 5, \
            f"{open_fds(pid) - baseline} descriptors for 300 idle connections with max_connections = 50"
        started = time.monotonic()
        r = requests.get(f"{gw.url}/health", timeout=20)
        assert r.status_code == 200
        assert time.monotonic() - started < 10
        with socket.create_connection(("127.0.0.1", gw.mqtt_port), timeout=5) as m:
            m.sendall(bytes([0x10, 12, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 60, 0, 0]))
            m.settimeout(5)
            assert m.recv(4)[:1] == b"\x20", "MQTT CONNACK expected"
    finally:
        for s in idle:
            s.close()


def test_unsigned_megabytes_are_refused_from_the_head(gateway_factory):
    """With credentials configured, a request whose signature header cannot be valid is
    refused before its (declared 16 MiB) body: the answer comes without a byte of body sent."""
    gw = gateway_factory(credentials=True, env={TEST_SECRET_ENV: SECRET}, name="precheck")
    for auth, expected in [
        (None, "MissingAuthenticationTokenException"),
        (f"AWS4-HMAC-SHA256 Credential=AKIDNOBODY/20200101/us-east-1/kinesis/aws4_request, "
         f"SignedHeaders=host;x-amz-date, Signature=00", "UnrecognizedClientException"),
        (f"AWS4-HMAC-SHA256 Credential={TEST_KEY}/20200101/us-east-1/kinesis/aws4_request, "
         f"SignedHeaders=host;x-amz-date, Signature=00", "InvalidSignatureException"),
    ]:
        s = connect(gw.port)
        head = (f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {JSON_CT}\r\n"
                f"X-Amz-Target: Kinesis_20131202.PutRecords\r\nX-Amz-Date: 20200101T000000Z\r\n"
                f"Content-Length: {MAX_BODY - 1}\r\n")
        if auth:
            head += f"Authorization: {auth}\r\n"
        s.sendall((head + "\r\n").encode())
        status, headers, body = parse(read_response(s, timeout=5))
        s.close()
        assert status == 400, (expected, status, body[:200])
        assert json.loads(body)["__type"] == expected


# ---- stopping ---------------------------------------------------------------------------------
def test_sigterm_finishes_requests_in_flight_and_closes_idle_connections(gateway_factory):
    gw = gateway_factory(name="stop")
    client = gw.client()
    stream = unique("stop")
    create_stream(client, stream, 1)
    # Idle keep-alive connections (each served one request) and slow heads.
    idle = []
    for _ in range(20):
        s = connect(gw.port)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert parse(read_response(s, timeout=10))[0] == 200
        idle.append(s)
    idle += [slow_head(gw.port) for _ in range(5)]
    # A PutRecord whose body is half sent when the stop comes.
    body = json.dumps({"StreamName": stream, "PartitionKey": "k", "Data": "aGVsbG8="}).encode()
    s = connect(gw.port)
    s.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: " + JSON_CT.encode() +
              b"\r\nX-Amz-Target: Kinesis_20131202.PutRecord\r\nContent-Length: " +
              str(len(body)).encode() + b"\r\n\r\n" + body[:10])
    time.sleep(0.5)  # the head is in and its handler reads the body
    started = time.monotonic()
    gw.proc.send_signal(15)
    time.sleep(0.5)
    s.sendall(body[10:])
    status, _, answer = parse(read_response(s, timeout=10))
    assert status == 200, answer[:300]
    assert json.loads(answer)["SequenceNumber"]
    gw.proc.wait(15)
    elapsed = time.monotonic() - started
    assert gw.proc.returncode == 0
    assert elapsed < 8, f"SIGTERM took {elapsed:.1f} s with idle connections open"
    for c in idle + [s]:
        c.close()


# ---- CORS -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cors_gw(module_gateway_factory):
    return api_gateway(module_gateway_factory, 'cors_origins = ["https://dash.example"]\n', "cors")


REQUESTED = "authorization,content-type,x-amz-target,x-amz-date,x-amz-user-agent,amz-sdk-invocation-id,amz-sdk-request,x-evil"


@pytest.mark.parametrize("path", ["/", "/health", "/status", "/video/cameras", "/no/such/path"])
def test_cors_preflight(cors_gw, path):
    r = requests.options(f"{cors_gw.url}{path}", headers={
        "Origin": "https://dash.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": REQUESTED}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == "https://dash.example"
    assert "POST" in r.headers["access-control-allow-methods"]
    granted = {h.strip() for h in r.headers["access-control-allow-headers"].split(",")}
    assert granted >= {"authorization", "content-type", "x-amz-target", "x-amz-date",
                       "x-amz-user-agent", "amz-sdk-invocation-id", "amz-sdk-request"}
    assert "x-evil" not in granted
    assert int(r.headers["access-control-max-age"]) > 0
    assert r.headers.get("x-amzn-requestid")


@pytest.mark.parametrize("method, path", [("GET", "/health"), ("GET", "/ready"), ("GET", "/status"),
                                          ("GET", "/video/cameras"), ("POST", "/")])
def test_cors_headers_on_every_route(cors_gw, method, path):
    headers = {"Origin": "https://dash.example"}
    if method == "POST":
        headers.update({"Content-Type": JSON_CT, "X-Amz-Target": "Kinesis_20131202.ListStreams"})
    r = requests.request(method, f"{cors_gw.url}{path}", headers=headers, data=b"{}" if method == "POST" else None,
                         timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == "https://dash.example"
    assert "x-amzn-requestid" in r.headers["access-control-expose-headers"].lower()
    assert "origin" in r.headers.get("vary", "").lower()


def test_cors_other_origin_gets_no_grant(cors_gw):
    r = requests.options(f"{cors_gw.url}/", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}, timeout=10)
    assert "access-control-allow-origin" not in r.headers
    r = requests.get(f"{cors_gw.url}/health", headers={"Origin": "https://evil.example"}, timeout=10)
    assert r.status_code == 200
    assert "access-control-allow-origin" not in r.headers


def test_cors_any_origin(gateway_factory):
    gw = api_gateway(gateway_factory, 'cors_origins = ["*"]\n', "cors-any")
    r = requests.get(f"{gw.url}/health", headers={"Origin": "https://anywhere.example"}, timeout=10)
    assert r.headers["access-control-allow-origin"] == "*"


def test_without_cors_origins_no_cors_and_options_is_405(gw):
    r = requests.options(f"{gw.url}/", headers={
        "Origin": "https://dash.example", "Access-Control-Request-Method": "POST"}, timeout=10)
    assert r.status_code == 405
    assert "access-control-allow-origin" not in r.headers
    assert r.headers.get("x-amzn-requestid")
    r = requests.get(f"{gw.url}/health", headers={"Origin": "https://dash.example"}, timeout=10)
    assert "access-control-allow-origin" not in r.headers


# ---- Content-Type and control bytes -----------------------------------------------------------
def test_missing_content_type_is_an_aws_error(gw):
    r = gw.raw("ListStreams", {}, content_type=None)
    assert_raw_error(r, "SerializationException", mentions=["Content-Type"])


@pytest.mark.parametrize("header", [
    b"X-Amz-Target: Kinesis_20131202.ListStreams\x01",
    b"X-Amz-Target: Kinesis_20131202.List\x00Streams",
    b"Content-Type: application/x-amz-json-1.1\x1b",
    b"X-Custom: a\x7fb",
])
def test_control_bytes_in_headers_get_the_aws_error_shape(gw, header):
    s = connect(gw.port)
    head = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n"
    if not header.startswith(b"Content-Type"):
        head += b"Content-Type: " + JSON_CT.encode() + b"\r\n"
    if not header.startswith(b"X-Amz-Target"):
        head += b"X-Amz-Target: Kinesis_20131202.ListStreams\r\n"
    s.sendall(head + header + b"\r\n\r\n{}")
    status, headers, body = parse(read_response(s, timeout=10))
    s.close()
    assert status == 400, (status, body)
    assert headers.get("x-amzn-requestid"), headers
    assert "json" in headers.get("content-type", "")
    error = json.loads(body)
    assert error["__type"] == "SerializationException"
    assert "control character" in error["message"]
    # The gateway goes on serving.
    assert gw.raw("ListStreams", {}).status_code == 200


def test_non_ascii_target_is_named(gw):
    s = connect(gw.port)
    s.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\nContent-Type: " + JSON_CT.encode() +
              b"\r\nX-Amz-Target: Kinesis_20131202.ListStreams\xff\r\n\r\n{}")
    status, headers, body = parse(read_response(s, timeout=10))
    s.close()
    assert status == 400
    error = json.loads(body)
    assert error["__type"] == "SerializationException"
    assert "x-amz-target" in error["message"].lower()
