"""Running as a service: the systemd notify protocol (READY, WATCHDOG, STOPPING) spoken to a
real NOTIFY_SOCKET, /health and /ready, /metrics read with Prometheus's own Python parser,
`kinedge status`, and the unit file's hardening score from `systemd-analyze`.

No systemd runs here as PID 1, so the test plays the service manager's side of the notify
socket (a unix datagram socket, as systemd's own) — the gateway's side is the real one.
"""
from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

import kutil
from kutil import KINEDGE_BIN, REPO_ROOT
from mqttutil import Paho, mqtt_gateway

UNIT = REPO_ROOT / "systemd" / "kinedge.service"


class NotifySocket:
    """The service manager's end of NOTIFY_SOCKET: collects what the gateway says, and runs
    `on_ready` the moment READY=1 arrives."""

    def __init__(self, path: Path, on_ready=None):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self.on_ready = on_ready
        self.ready_check = None
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            at, text = time.monotonic(), data.decode()
            if "READY=1" in text.splitlines() and self.on_ready and self.ready_check is None:
                self.ready_check = self.on_ready()
            # Published after the check, so that wait_for("READY=1") sees its result.
            self.messages.append((at, text))

    def lines(self) -> list[str]:
        return [line for _, text in self.messages for line in text.splitlines()]

    def wait_for(self, line: str, timeout: float = 20.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, text in self.messages:
                if line in text.splitlines():
                    return at
            time.sleep(0.02)
        raise AssertionError(f"{line} not received within {timeout}s; got {self.lines()}")

    def close(self):
        self._stop = True
        self.thread.join(2)
        self.sock.close()


def test_notify_ready_watchdog_stopping(gateway_factory, tmp_path):
    gw = gateway_factory(start=False, extra_config='[[streams]]\nname = "s"\nshards = 1\n')

    def check_everything_is_up():
        # Runs the instant READY=1 arrives: the API, readiness and MQTT must already answer.
        out = {}
        try:
            out["ready"] = requests.get(f"{gw.url}/ready", timeout=2).status_code
        except requests.RequestException as e:
            out["ready"] = repr(e)
        try:
            with socket.create_connection(("127.0.0.1", gw.mqtt_port), timeout=2):
                out["mqtt"] = "open"
        except OSError as e:
            out["mqtt"] = repr(e)
        return out

    notify = NotifySocket(tmp_path / "notify.sock", on_ready=check_everything_is_up)
    try:
        # 3 s watchdog: the gateway pings every ~1 s. (A shorter one would test the machine's
        # load rather than the gateway: systemd's own guidance is tens of seconds.)
        gw.env.update({"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "3000000"})
        gw.env.pop("WATCHDOG_PID", None)
        gw.start()
        notify.wait_for("READY=1")
        assert notify.ready_check == {"ready": 200, "mqtt": "open"}, \
            f"READY=1 was sent before everything was up: {notify.ready_check}"
        ready_at = notify.wait_for("READY=1")

        def pings():
            return [at for at, text in list(notify.messages) if "WATCHDOG=1" in text.splitlines() and at > ready_at]
        # Five pings (a sentinel), then no gap the watchdog would have punished.
        deadline = time.monotonic() + 30
        while len(pings()) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        got = pings()
        assert len(got) >= 5, f"expected a WATCHDOG=1 every ~1 s, got {len(got)} in 30 s"
        gaps = [b - a for a, b in zip([ready_at] + got, got)]
        assert max(gaps) < 3.0, f"a watchdog gap of {max(gaps):.2f}s would have tripped a 3 s watchdog"
        assert any(line.startswith("STATUS=serving") for line in notify.lines())

        rc = gw.stop(timeout=20)
        assert rc == 0, f"exit status {rc} after SIGTERM"
        stopping_at = notify.wait_for("STOPPING=1", timeout=10)
        assert stopping_at > ready_at
    finally:
        notify.close()


def test_without_notify_socket_nothing_is_sent_and_it_runs(gateway_factory):
    """Outside systemd (no NOTIFY_SOCKET) the gateway runs the same; a WATCHDOG_USEC meant
    for another process (WATCHDOG_PID) is ignored."""
    gw = gateway_factory(start=False)
    gw.env.pop("NOTIFY_SOCKET", None)
    gw.env.update({"WATCHDOG_USEC": "100000", "WATCHDOG_PID": "1"})
    gw.start()
    assert requests.get(f"{gw.url}/ready", timeout=5).status_code == 200
    assert "systemd watchdog enabled" not in gw.log_tail()
    assert gw.stop() == 0


def test_health_and_ready(gw):
    r = requests.get(f"{gw.url}/health", timeout=5)
    assert r.status_code == 200 and r.text.strip() == "ok"
    r = requests.get(f"{gw.url}/ready", timeout=5)
    assert r.status_code == 200 and r.text.strip() == "ready", r.text


def metric_samples(text: str) -> dict:
    """{(sample name, frozenset(labels)): value} from Prometheus's own parser."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def test_metrics_in_prometheus_format(module_gateway_factory):
    devices = {f"sensor-{i}": {} for i in range(3)}
    gw = mqtt_gateway(
        module_gateway_factory, name="metrics", devices=devices,
        extra='''
[[delivery_streams]]
name = "to-nowhere"
source = { stream = "telemetry", start = "trim_horizon" }
buffer = { size = "1MiB", interval_s = 1 }
destination = { type = "http_endpoint", url = "http://127.0.0.1:9/unreachable", retry_duration_s = 0 }
''')
    client = gw.client()
    for i in range(10):
        client.put_record(StreamName="telemetry", Data=b"x" * 10, PartitionKey=f"k{i}")
    shards = client.list_shards(StreamName="telemetry")["Shards"]
    read = 0
    for shard in shards:
        it = client.get_shard_iterator(StreamName="telemetry", ShardId=shard["ShardId"],
                                       ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        read += len(client.get_records(ShardIterator=it)["Records"])
    assert read == 10
    for dev in devices:
        with Paho(gw, dev) as p:
            assert p.publish(f"devices/{dev}/telemetry", b'{"t": 1}') == 0
    # A refused login and a refused API call.
    refused = Paho(gw, "sensor-0", password="wrong", connect=False)
    refused.connect(expect_ok=False)
    refused.close()
    with pytest.raises(Exception):
        client.describe_stream(StreamName="no-such-stream")

    r = requests.get(f"{gw.url}/metrics", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    m = metric_samples(r.text)

    def total(name, **labels):
        return sum(v for (n, ls), v in m.items()
                   if n == name and all((k, val) in ls for k, val in labels.items()))

    assert total("kinedge_shard_records_in_total", stream="telemetry") == 13
    assert total("kinedge_shard_records_out_total", stream="telemetry") >= 10
    assert total("kinedge_shard_bytes_in_total", stream="telemetry") > 100
    assert len({dict(ls)["shard"] for (n, ls) in m if n == "kinedge_shard_records_in_total"
                and dict(ls).get("stream") == "telemetry"}) == 2
    assert total("kinedge_stream_stored_records", stream="telemetry") == 13
    assert total("kinedge_stream_disk_bytes", stream="telemetry") > 0
    assert total("kinedge_storage_commit_seconds_count") >= 10
    assert total("kinedge_storage_records_per_commit_count") >= 10
    assert total("kinedge_mqtt_messages_stored_total") == 3
    assert total("kinedge_mqtt_refused_total", reason="connect") >= 1
    assert total("kinedge_mqtt_devices") == 3
    assert total("kinedge_api_errors_total", type="ResourceNotFoundException") >= 1
    assert total("kinedge_api_requests_total") >= 14
    assert total("kinedge_ready") == 1
    assert total("kinedge_delivery_backlog_records", delivery_stream="to-nowhere") >= 0
    assert ("kinedge_delivery_retries_total", frozenset({("delivery_stream", "to-nowhere")})) in m
    assert total("process_resident_memory_bytes") > 1_000_000
    # Bounded labels: no device id, client id or partition key ever becomes a label value.
    values = {v for (_, ls) in m for (_, v) in ls}
    for dev in devices:
        assert dev not in values
    assert not any(v.startswith("k") and v[1:].isdigit() for v in values)
    # More devices do not make more series.
    series = len(m)
    for dev in devices:
        with Paho(gw, dev) as p:
            p.publish(f"devices/{dev}/telemetry", b"{}")
    assert len(metric_samples(requests.get(f"{gw.url}/metrics", timeout=10).text)) == series


def test_metrics_need_a_signature_with_credentials(gateway_factory):
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    gw = gateway_factory(credentials=True, env={kutil.TEST_SECRET_ENV: "secret"})
    url = f"{gw.url}/metrics"
    kutil.assert_raw_error(requests.get(url, timeout=5), "MissingAuthenticationTokenException")
    req = AWSRequest(method="GET", url=url)
    SigV4Auth(Credentials(kutil.TEST_KEY, "secret"), "kinesis", kutil.REGION).add_auth(req)
    r = requests.get(url, headers=dict(req.headers.items()), timeout=5)
    assert r.status_code == 200, r.text
    assert metric_samples(r.text)
    # Probes stay open.
    assert requests.get(f"{gw.url}/health", timeout=5).status_code == 200
    assert requests.get(f"{gw.url}/ready", timeout=5).status_code == 200


def test_open_metrics_lets_prometheus_scrape_without_a_signature(gateway_factory):
    gw = gateway_factory(credentials=True, env={kutil.TEST_SECRET_ENV: "secret"}, start=False)
    text = gw.config_path.read_text().replace("[api]\n", "[api]\nopen_metrics = true\n", 1)
    gw.config_path.write_text(text)
    gw.start()
    r = requests.get(f"{gw.url}/metrics", timeout=5)
    assert r.status_code == 200, r.text
    assert metric_samples(r.text)
    # Only /metrics: the API and /status still need a signature.
    kutil.assert_raw_error(requests.get(f"{gw.url}/status", timeout=5),
                           "MissingAuthenticationTokenException")
    kutil.assert_raw_error(gw.raw("ListStreams", {}, sign=False), "MissingAuthenticationTokenException")


def test_status_command_fits_one_screen(module_gateway_factory):
    gw = module_gateway_factory(name="status", extra_config='''
[[streams]]
name = "telemetry"
shards = 2

[[delivery_streams]]
name = "to-dir"
source = { stream = "telemetry", start = "trim_horizon" }
buffer = { size = "1MiB", interval_s = 1 }
destination = { type = "directory", path = "out" }
''')
    gw.client().put_record(StreamName="telemetry", Data=b"hello", PartitionKey="a")
    r = subprocess.run([str(KINEDGE_BIN), "status", "--endpoint", gw.url],
                       capture_output=True, timeout=30, text=True)
    assert r.returncode == 0, r.stderr
    screen = r.stdout
    assert "ready" in screen.splitlines()[0], screen
    assert re.search(r"^telemetry\s+2/2\s+1\s", screen, re.M), screen
    assert re.search(r"^to-dir\s+\S+\s+directory", screen, re.M), screen
    assert "MQTT 0 connected" in screen
    lines = screen.splitlines()
    assert len(lines) <= 24 and max(len(line) for line in lines) <= 100, screen
    j = subprocess.run([str(KINEDGE_BIN), "status", "--json", "--endpoint", gw.url],
                       capture_output=True, timeout=30, text=True)
    assert j.returncode == 0 and '"ready": true' in j.stdout

    # A gateway that is not there: a clear error, exit status 1.
    r = subprocess.run([str(KINEDGE_BIN), "status", "--endpoint", f"http://127.0.0.1:{kutil.free_port()}"],
                       capture_output=True, timeout=30, text=True)
    assert r.returncode == 1 and "error" in r.stderr.lower()


def exposure(unit_dir: Path) -> float:
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", "kinedge.service"],
                       capture_output=True, text=True, timeout=60, cwd=unit_dir)
    out = r.stdout + r.stderr
    found = re.search(r"Overall exposure level for kinedge\.service: ([0-9.]+)", out)
    assert found, f"no exposure level in systemd-analyze output:\n{out}"
    return float(found.group(1))


def test_unit_hardening_exposure_at_most_2(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing (scripts/install-deps --test installs systemd)")
    shutil.copy(UNIT, tmp_path / "kinedge.service")
    score = exposure(tmp_path)
    assert score <= 2.0, f"systemd-analyze security: exposure {score} > 2.0"
    # The v4l2 drop-in opens devices, and stays under 2.0 too.
    dropin = tmp_path / "kinedge.service.d"
    dropin.mkdir()
    shutil.copy(REPO_ROOT / "systemd" / "kinedge-v4l2.conf", dropin / "v4l2.conf")
    with_cameras = exposure(tmp_path)
    assert score < with_cameras <= 2.0, f"with the v4l2 drop-in: {with_cameras}"


def test_unit_file_is_valid(tmp_path):
    """`systemd-analyze verify` on the unit with its binary where ExecStart names it."""
    text = UNIT.read_text()
    for key in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "StateDirectory=kinedge",
                "ConfigurationDirectory=kinedge", "PrivateDevices=yes", "NoNewPrivileges=yes",
                "CapabilityBoundingSet=\n", "SystemCallFilter=@system-service", "MemoryMax=",
                "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                "RestrictAddressFamilies="):
        assert key in text, f"{key!r} missing from the unit"
    unit = tmp_path / "kinedge.service"
    unit.write_text(text.replace("/usr/bin/kinedge", str(KINEDGE_BIN)))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                       capture_output=True, text=True, timeout=60)
    problems = [line for line in (r.stdout + r.stderr).splitlines()
                if "kinedge.service" in line and "Failed to" not in line]
    assert not problems, "\n".join(problems)
    # What ExecStartPre runs must accept what the package installs: /etc/kinedge/kinedge.toml
    # next to the devices/ folder that kinedge.tmpfiles creates.
    etc = tmp_path / "etc-kinedge"
    (etc / "devices").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "config" / "kinedge.toml", etc / "kinedge.toml")
    r = subprocess.run([str(KINEDGE_BIN), "check-config", str(etc / "kinedge.toml")],
                       capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_sigterm_under_load_keeps_everything_acknowledged(gateway_factory):
    """SIGTERM while HTTP producers and MQTT QoS 1 publishers are busy: the gateway stops
    within the unit's TimeoutStopSec, exits 0, and after a restart every record that was
    acknowledged (HTTP 200 / PUBACK) is there."""
    gw = mqtt_gateway(gateway_factory, name="sigterm", devices={"sensor-a": {}, "sensor-b": {}})
    stop_at = re.search(r"^TimeoutStopSec=(\d+)s", UNIT.read_text(), re.M)
    assert stop_at, "TimeoutStopSec missing from the unit"
    acked: list[bytes] = []
    lock = threading.Lock()
    halt = threading.Event()

    def http_producer(n):
        client = gw.client(read_timeout=10, connect_timeout=2)
        i = 0
        while not halt.is_set():
            batch = [{"Data": f"http-{n}-{i + j}".encode(), "PartitionKey": f"p{j}"} for j in range(20)]
            try:
                out = client.put_records(StreamName="telemetry", Records=batch)
            except Exception:
                return
            with lock:
                acked.extend(r["Data"] for r, res in zip(batch, out["Records"]) if "SequenceNumber" in res)
            i += 20

    # Connected before the load starts (a login is a deliberately slow password check).
    publishers = {"sensor-a": Paho(gw, "sensor-a"), "sensor-b": Paho(gw, "sensor-b", version=5)}

    def mqtt_publisher(dev):
        p = publishers[dev]
        i = 0
        try:
            while not halt.is_set():
                payload = f"mqtt-{dev}-{i}".encode()
                info = p.c.publish(f"devices/{dev}/telemetry", payload, 1)
                try:
                    p.wait(lambda: info.mid in p.published or p.disconnected is not None, 5, "PUBACK")
                except AssertionError:
                    return
                if p.published.get(info.mid) != 0:
                    return
                with lock:
                    acked.append(payload)
                i += 1
        finally:
            p.close()

    threads = [threading.Thread(target=http_producer, args=(n,)) for n in range(2)]
    threads += [threading.Thread(target=mqtt_publisher, args=(d,)) for d in ("sensor-a", "sensor-b")]
    for t in threads:
        t.start()
    # Under load: stop once both fronts have acknowledged (a sentinel, not a fixed time).
    def loaded():
        with lock:
            return len(acked) > 100 and any(a.startswith(b"mqtt-") for a in acked)
    deadline = time.monotonic() + 60
    while not loaded() and time.monotonic() < deadline:
        time.sleep(0.05)
    with lock:
        assert len(acked) > 100, f"only {len(acked)} records acknowledged before the stop"
        assert any(a.startswith(b"mqtt-") for a in acked), "no MQTT publish acknowledged"
    started = time.monotonic()
    rc = gw.stop(timeout=int(stop_at.group(1)))
    took = time.monotonic() - started
    halt.set()
    for t in threads:
        t.join(15)
    assert rc == 0, f"exit status {rc} after SIGTERM under load"
    # MQTT 5 clients are told why: DISCONNECT with 0x8B "server shutting down".
    assert publishers["sensor-b"].disconnected == 0x8B, publishers["sensor-b"].disconnected
    assert took < int(stop_at.group(1)), f"stop took {took:.1f}s"

    gw.start()
    stored = {r["Data"] for r in kutil.flatten(kutil.read_all(gw.client(), "telemetry"))}
    missing = [a for a in acked if a not in stored]
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged records are gone, e.g. {missing[:3]}"
