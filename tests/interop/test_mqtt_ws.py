"""MQTT over WebSocket (mqtt.websocket_listen), with paho's websocket transport."""

import subprocess
import threading

import paho.mqtt.client as mqtt
import pytest

from kutil import KINEDGE_BIN, free_port, flatten, read_all


def make_ws_gw(factory, tmp_path_factory, name="ws", mqtt_extra=""):
    devices = tmp_path_factory.mktemp(f"{name}-devices")
    secrets = {}
    for device, extra in (("sensor-1", []), ("watcher", ["--subscribe", "devices/#"])):
        out = subprocess.run([str(KINEDGE_BIN), "devices", "add", device, "--dir", str(devices), *extra],
                             capture_output=True, check=True, timeout=30)
        secrets[device] = out.stdout.decode().strip()
    ws_port = free_port()
    gw = factory(name=name, extra_config=f"""
[mqtt]
listen = "127.0.0.1:{free_port()}"
websocket_listen = "127.0.0.1:{ws_port}"
{mqtt_extra}
[devices]
dir = "{devices}"
[[streams]]
name = "telemetry"
shards = 1
[[routes]]
topic = "devices/+/telemetry"
stream = "telemetry"
""")
    gw.ws_port, gw.secrets, gw.devices_dir = ws_port, secrets, devices
    return gw


@pytest.fixture(scope="module")
def ws_gw(module_gateway_factory, tmp_path_factory):
    return make_ws_gw(module_gateway_factory, tmp_path_factory)


@pytest.fixture(scope="module")
def ws_patient_gw(module_gateway_factory, tmp_path_factory):
    """Waits 5 minutes for CONNECT: a connection it closes sooner was closed for another
    reason than the CONNECT timeout."""
    return make_ws_gw(module_gateway_factory, tmp_path_factory, name="ws-patient",
                      mqtt_extra="connect_timeout_s = 300")


def ws_client(gw, device, version=mqtt.MQTTv311):
    connected = threading.Event()
    result = {}

    def on_connect(client, userdata, flags, reason_code, properties):
        result["rc"] = reason_code
        connected.set()

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device, transport="websockets",
                    protocol=version)
    c.username_pw_set(device, gw.secrets.get(device, "wrong"))
    c.on_connect = on_connect
    c.connect("127.0.0.1", gw.ws_port, keepalive=30)
    c.loop_start()
    assert connected.wait(15), "no CONNACK over WebSocket"
    return c, result["rc"]


@pytest.mark.parametrize("version", [mqtt.MQTTv311, mqtt.MQTTv5], ids=["v311", "v5"])
def test_publish_and_subscribe_over_websocket(ws_gw, version):
    got = []
    arrived = threading.Event()
    watcher, rc = ws_client(ws_gw, "watcher", version)
    assert not rc.is_failure
    watcher.on_message = lambda c, u, m: (got.append(m.payload), arrived.set())
    subacked = threading.Event()
    watcher.on_subscribe = lambda *args: subacked.set()
    sub = watcher.subscribe("devices/+/telemetry", qos=1)
    assert sub[0] == mqtt.MQTT_ERR_SUCCESS
    # The SUBACK (not a sleep) says the subscription is in place before the publish.
    assert subacked.wait(15), "no SUBACK over WebSocket"
    sensor, rc = ws_client(ws_gw, "sensor-1", version)
    assert not rc.is_failure
    payload = f"over-ws-{version}".encode()
    info = sensor.publish("devices/sensor-1/telemetry", payload, qos=1)
    info.wait_for_publish(timeout=15)
    assert info.is_published()
    assert arrived.wait(15), "the subscriber got nothing"
    assert payload in got
    assert payload in [r["Data"] for r in flatten(read_all(ws_gw.client(), "telemetry"))]
    for c in (sensor, watcher):
        c.disconnect()
        c.loop_stop()


def test_wrong_password_over_websocket(ws_gw):
    c, rc = ws_client(ws_gw, "intruder")
    assert rc.is_failure
    c.loop_stop()


def rss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# 35 Argon2 logins: ~1 s each in a debug build on an idle core, several times that on a busy
# machine, so the default 60 s bound measured the machine's load rather than the gateway.
@pytest.mark.timeout(400)
def test_repeated_logins_do_not_grow_memory(ws_gw):
    """Each login runs Argon2 (19 MiB of work memory): freed, it must go back to the system."""
    def login_once():
        c, rc = ws_client(ws_gw, "sensor-1")
        assert not rc.is_failure
        c.disconnect()
        c.loop_stop()

    for _ in range(5):
        login_once()
    before = rss_kb(ws_gw.proc.pid)
    for _ in range(30):
        login_once()
    after = rss_kb(ws_gw.proc.pid)
    assert after - before < 30 * 1024, f"RSS grew from {before} kB to {after} kB over 30 logins"


def add_device(gw, device):
    out = subprocess.run([str(KINEDGE_BIN), "devices", "add", device, "--dir", str(gw.devices_dir)],
                         capture_output=True, check=True, timeout=30)
    gw.secrets[device] = out.stdout.decode().strip()


def try_login(gw, device, deadline_s):
    import time
    end = time.time() + deadline_s
    while time.time() < end:
        c, rc = ws_client(gw, device)
        if not rc.is_failure:
            return c
        c.loop_stop()
        time.sleep(0.5)
    return None


def test_registry_reloads_on_change_and_sighup(ws_gw):
    import os
    import signal
    import time
    # A device added while the gateway runs can log in once the directory is noticed.
    add_device(ws_gw, "late-1")
    late = try_login(ws_gw, "late-1", 15)
    assert late is not None, "a device added at run time never got in"
    dropped = threading.Event()
    late.on_disconnect = lambda *a: dropped.set()
    bystander, rc = ws_client(ws_gw, "watcher")
    assert not rc.is_failure
    stayed = threading.Event()
    bystander.on_disconnect = lambda *a: stayed.set()
    # Removing its file disconnects it; other devices stay connected.
    (ws_gw.devices_dir / "late-1.toml").unlink()
    assert dropped.wait(15), "a removed device stayed connected"
    late.loop_stop()
    assert not stayed.is_set(), "another device was disconnected by the reload"
    c, rc = ws_client(ws_gw, "late-1")
    assert rc.is_failure, "a removed device could log in again"
    c.loop_stop()
    # SIGHUP reloads even a change the directory poll cannot see (same names, sizes and
    # modification times): late-2's secret is replaced by another of the same length.
    add_device(ws_gw, "late-2")
    c = try_login(ws_gw, "late-2", 30)
    assert c is not None, "a device added at run time never got in"
    c.disconnect()
    c.loop_stop()
    spare = ws_gw.dir / "spare-devices"
    spare.mkdir(exist_ok=True)
    out = subprocess.run([str(KINEDGE_BIN), "devices", "add", "late-2", "--dir", str(spare)],
                         capture_output=True, check=True, timeout=30)
    path = ws_gw.devices_dir / "late-2.toml"
    before = path.stat()
    replacement = (spare / "late-2.toml").read_bytes()
    assert len(replacement) == before.st_size, "the two device files should differ only in the hash"
    path.write_bytes(replacement)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    ws_gw.secrets["late-2"] = out.stdout.decode().strip()
    os.kill(ws_gw.proc.pid, signal.SIGHUP)
    c = try_login(ws_gw, "late-2", 30)
    assert c is not None, "SIGHUP did not reload the registry"
    c.disconnect()
    c.loop_stop()
    bystander.disconnect()
    bystander.loop_stop()


# ---- WebSocket frame and message size (mqtt.max_packet_size, 1 MiB by default) ---------------

def ws_upgrade(gw):
    """A raw socket with a finished WebSocket upgrade (subprotocol mqtt)."""
    import base64
    import os
    import socket
    s = socket.create_connection(("127.0.0.1", gw.ws_port), timeout=30)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1:{gw.ws_port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               f"Sec-WebSocket-Protocol: mqtt\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        assert chunk, f"the server closed during the WebSocket upgrade: {head!r}"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def ws_frame(payload: bytes, opcode: int = 0x2, fin: bool = True, length: int | None = None) -> bytes:
    """A masked client frame; `length` may claim more than `payload` holds."""
    import struct
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    mask = b"\x01\x02\x03\x04"
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def wait_ws_closed(s, timeout=20.0):
    """True once the server closed the connection (EOF or reset; a close frame may come
    first); False if it is still open after `timeout`."""
    import socket
    import time
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        s.settimeout(max(0.05, end - time.monotonic()))
        try:
            if s.recv(65536) == b"":
                return True
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
    return False


@pytest.mark.timeout(90)
@pytest.mark.parametrize("shape", ["one-frame", "fragments"])
def test_oversized_websocket_message_closes_the_connection(ws_patient_gw, shape):
    """Before CONNECT, one frame (or one message of small fragments) beyond max_packet_size
    closes the connection, without the gateway buffering it; a normal client still works."""
    s = ws_upgrade(ws_patient_gw)
    try:
        if shape == "one-frame":
            # Claims 8 MiB (tungstenite's defaults would wait for 16 MiB frames, 64 MiB
            # messages); only the start is sent.
            s.sendall(ws_frame(b"\x10" * 1024, length=8 << 20)[:14 + 1024])
        else:
            # 5 fragments of 256 KiB, no final one: 1.25 MiB of a message not yet complete.
            chunk = b"\x10" * (256 << 10)
            try:
                s.sendall(ws_frame(chunk, fin=False))
                for _ in range(4):
                    s.sendall(ws_frame(chunk, opcode=0x0, fin=False))
            except (BrokenPipeError, ConnectionResetError):
                pass   # closed while sending: what the test wants
        assert wait_ws_closed(s, timeout=60), f"{shape}: the connection stayed open"
    finally:
        s.close()
    c, rc = ws_client(ws_patient_gw, "sensor-1")
    assert not rc.is_failure, "a normal WebSocket client could not log in afterwards"
    c.disconnect()
    c.loop_stop()
