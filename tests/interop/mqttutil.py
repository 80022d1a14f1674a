"""MQTT helpers for the kinedge interop suite: a gateway with an [mqtt] listener, device
secrets made with `kinedge devices add`, a small raw MQTT 3.1.1 / 5 client (byte-exact CONNACK,
PUBACK and SUBACK codes, malformed input), paho-mqtt wrappers and mosquitto_pub/_sub runners.

Everything talks only to 127.0.0.1 and every wait is bounded.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import kutil
from kutil import KINEDGE_BIN, free_port

HOST = "127.0.0.1"

# ---- gateway configuration ------------------------------------------------------------------

DEFAULT_STREAMS = """
[[streams]]
name = "telemetry"
shards = 2

[[streams]]
name = "other"
shards = 1
"""

# Order matters: devices/sensor-3/telemetry matches both the first and the third route, and
# must land in "telemetry" (first match wins).
DEFAULT_ROUTES = """
[[routes]]
topic = "devices/+/telemetry"
stream = "telemetry"
partition_key = "{device}"
format = "raw"

[[routes]]
topic = "devices/+/env"
stream = "telemetry"
partition_key = "{payload.sensor}"
format = "envelope"

[[routes]]
topic = "devices/sensor-3/+"
stream = "other"
partition_key = "{client_id}"
format = "raw"
"""


def wait_port(port: int, timeout: float = 20.0, proc: subprocess.Popen | None = None) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"kinedge exited ({proc.returncode}) before port {port} opened")
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return
        except OSError as e:
            last = e
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s (last: {last!r})")


def add_device(config_path, dev_id: str, publish=(), subscribe=(), kind: str | None = None) -> str:
    """`kinedge devices add ID --config CFG [--publish F].. [--subscribe F]..`; returns the secret
    (the one line the command prints on stdout)."""
    args = [str(KINEDGE_BIN), "devices", "add", dev_id, "--config", str(config_path)]
    if kind:
        args += ["--kind", kind]
    for f in publish:
        args += ["--publish", f]
    for f in subscribe:
        args += ["--subscribe", f]
    env = dict(os.environ)
    env.pop("KINEDGE_CONFIG", None)
    r = subprocess.run(args, capture_output=True, timeout=60, env=env)
    if r.returncode != 0:
        raise AssertionError(f"kinedge devices add {dev_id} failed ({r.returncode}):\n"
                             f"{r.stdout.decode(errors='replace')}\n{r.stderr.decode(errors='replace')}")
    lines = r.stdout.decode().splitlines()
    assert len(lines) == 1 and lines[0].strip() and lines[0] == lines[0].strip(), \
        f"devices add should print the secret alone on one stdout line, got {r.stdout!r}"
    return lines[0]


def mqtt_gateway(factory, name: str | None = None, devices: dict | None = None,
                 streams: str = DEFAULT_STREAMS, routes: str = DEFAULT_ROUTES,
                 allow_anonymous: bool | None = None, max_packet_size: str | None = "64KiB",
                 extra: str = "", start: bool = True, mqtt_extra: str = ""):
    """A Gateway (kutil) with an [mqtt] listener on a free port, a devices dir under its tmp
    dir, the given streams/routes, and devices created through the CLI before the start.

    devices: {id: {"publish": [...], "subscribe": [...]}} (empty dict -> CLI defaults).
    Sets gw.mqtt_port, gw.devices_dir, gw.secrets = {id: secret}.
    """
    gw = factory(name=name, start=False)
    gw.mqtt_port = free_port()
    while gw.mqtt_port == gw.port:
        gw.mqtt_port = free_port()
    gw.devices_dir = gw.dir / "devices"
    cfg = f'\n[mqtt]\nlisten = "{HOST}:{gw.mqtt_port}"\n'
    if allow_anonymous is not None:
        cfg += f"allow_anonymous = {'true' if allow_anonymous else 'false'}\n"
    if max_packet_size is not None:
        cfg += f'max_packet_size = "{max_packet_size}"\n'
    cfg += mqtt_extra
    cfg += f'\n[devices]\ndir = "{gw.devices_dir.as_posix()}"\n'
    cfg += streams + "\n" + routes + "\n" + extra + "\n"
    # kutil may already have given the gateway a default [mqtt] section: replace it.
    base = re.sub(r"(?ms)^\[mqtt\]\n.*?(?=^\[|\Z)", "", gw.config_path.read_text())
    gw.config_path.write_text(base.rstrip("\n") + "\n" + cfg)
    gw.secrets = {}
    for dev_id, perms in (devices or {}).items():
        gw.secrets[dev_id] = add_device(gw.config_path, dev_id, perms.get("publish", ()),
                                        perms.get("subscribe", ()))
    if start:
        start_mqtt(gw)
    return gw


def start_mqtt(gw, timeout: float = 20.0):
    gw.start(timeout)
    wait_port(gw.mqtt_port, timeout, gw.proc)
    return gw


def health_ok(gw) -> None:
    import requests
    assert gw.proc is not None and gw.proc.poll() is None, \
        f"kinedge is not running any more (exit code {gw.proc.returncode if gw.proc else None})"
    r = requests.get(f"{gw.url}/health", timeout=5)
    assert r.status_code == 200, f"/health answered {r.status_code}: {r.text[:200]}"


def wait_for(pred, timeout: float, what: str, interval: float = 0.05):
    """Polls `pred` until it is true; fails naming `what` after `timeout` s. For tests that
    would otherwise sleep a fixed time and hope (a busy machine makes any fixed time short)."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout}s for {what}")
        time.sleep(interval)


def mqtt_connected(gw) -> int:
    """The MQTT sessions the gateway counts as connected (/status)."""
    import requests
    return int(requests.get(f"{gw.url}/status", timeout=10).json()["mqtt"]["connected"])


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ---- raw MQTT codec -------------------------------------------------------------------------

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14
NAMES = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL", 7: "PUBCOMP",
         8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK", 12: "PINGREQ", 13: "PINGRESP",
         14: "DISCONNECT", 15: "AUTH"}


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            b |= 0x80
        out.append(b)
        if not n:
            return bytes(out)


def mstr(s) -> bytes:
    b = s.encode() if isinstance(s, str) else bytes(s)
    return struct.pack("!H", len(b)) + b


def packet(ptype: int, flags: int, body: bytes) -> bytes:
    return bytes([(ptype << 4) | flags]) + varint(len(body)) + body


def props(**kw) -> bytes:
    """MQTT 5 properties (only the few the tests use), with their length prefix."""
    out = b""
    if "session_expiry" in kw:
        out += b"\x11" + struct.pack("!I", kw["session_expiry"])
    if "receive_maximum" in kw:
        out += b"\x21" + struct.pack("!H", kw["receive_maximum"])
    if "maximum_packet_size" in kw:
        out += b"\x27" + struct.pack("!I", kw["maximum_packet_size"])
    return varint(len(out)) + out


def connect_packet(client_id: str, username=None, password=None, version: int = 4, clean: bool = True,
                   keepalive: int = 60, will: tuple | None = None, session_expiry: int | None = None) -> bytes:
    """will = (topic, payload, qos, retain)."""
    flags = 0x02 if clean else 0
    if will:
        flags |= 0x04 | (will[2] << 3) | (0x20 if will[3] else 0)
    if username is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    vh = mstr("MQTT") + bytes([version, flags]) + struct.pack("!H", keepalive)
    if version == 5:
        vh += props(session_expiry=session_expiry) if session_expiry is not None else props()
    pl = mstr(client_id)
    if will:
        if version == 5:
            pl += props()
        pl += mstr(will[0]) + mstr(will[1])
    if username is not None:
        pl += mstr(username)
    if password is not None:
        pl += mstr(password)
    return packet(CONNECT, 0, vh + pl)


@dataclass
class Packet:
    type: int
    flags: int
    body: bytes
    version: int = 4
    # decoded fields (filled for the types the tests look at)
    reason: int | None = None          # CONNACK return code / v5 reason; PUBACK..PUBCOMP, DISCONNECT
    session_present: bool | None = None
    pid: int | None = None
    codes: list = field(default_factory=list)   # SUBACK
    topic: str | None = None
    payload: bytes | None = None
    qos: int = 0
    retain: bool = False
    dup: bool = False

    @property
    def name(self) -> str:
        return NAMES.get(self.type, f"type{self.type}")

    def __repr__(self):
        extra = {k: v for k, v in dict(reason=self.reason, pid=self.pid, codes=self.codes or None,
                                       topic=self.topic, qos=self.qos if self.type == PUBLISH else None,
                                       retain=self.retain or None).items() if v is not None}
        if self.payload is not None:
            extra["payload"] = self.payload[:40]
        return f"<{self.name} {extra}>"


def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    mult, val = 1, 0
    while True:
        b = buf[i]
        i += 1
        val += (b & 0x7F) * mult
        if not b & 0x80:
            return val, i
        mult *= 128


def decode(ptype: int, flags: int, body: bytes, version: int) -> Packet:
    p = Packet(ptype, flags, body, version)
    if ptype == CONNACK:
        p.session_present = bool(body[0] & 1)
        p.reason = body[1]
    elif ptype in (PUBACK, PUBREC, PUBREL, PUBCOMP):
        p.pid = struct.unpack("!H", body[:2])[0]
        p.reason = body[2] if (version == 5 and len(body) > 2) else 0
    elif ptype == SUBACK:
        p.pid = struct.unpack("!H", body[:2])[0]
        i = 2
        if version == 5:
            n, i = _read_varint(body, i)
            i += n
        p.codes = list(body[i:])
    elif ptype == DISCONNECT:
        p.reason = body[0] if body else 0
    elif ptype == PUBLISH:
        p.qos = (flags >> 1) & 3
        p.retain = bool(flags & 1)
        p.dup = bool(flags & 8)
        tl = struct.unpack("!H", body[:2])[0]
        p.topic = body[2:2 + tl].decode("utf-8", "replace")
        i = 2 + tl
        if p.qos:
            p.pid = struct.unpack("!H", body[i:i + 2])[0]
            i += 2
        if version == 5:
            n, i = _read_varint(body, i)
            i += n
        p.payload = body[i:]
    return p


class Closed(Exception):
    """The server closed the connection (EOF or reset)."""


class RawMqtt:
    """A byte-level MQTT client. version 4 = 3.1.1, 5 = MQTT 5."""

    def __init__(self, port: int, version: int = 4, timeout: float = 15.0):
        self.port, self.version, self.timeout = port, version, timeout
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self._pid = 0
        self.pending: list[Packet] = []   # packets read but not yet asked for

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def kill(self):
        """Drop the TCP connection without DISCONNECT (RST where possible)."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    def next_pid(self) -> int:
        self._pid = self._pid % 65535 + 1
        return self._pid

    def send(self, data: bytes):
        self.sock.sendall(data)

    # -- reading
    def _fill(self, deadline: float):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no complete packet from the server in time")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no complete packet from the server in time")
        except (ConnectionResetError, BrokenPipeError) as e:
            raise Closed(repr(e))
        if not chunk:
            raise Closed("EOF")
        self.buf += chunk

    def recv(self, timeout: float | None = None) -> Packet:
        if self.pending:
            return self.pending.pop(0)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            if len(self.buf) >= 2:
                try:
                    rl, i = _read_varint(self.buf, 1)
                except IndexError:
                    rl, i = None, None
                if rl is not None and len(self.buf) >= i + rl:
                    h = self.buf[0]
                    body = self.buf[i:i + rl]
                    self.buf = self.buf[i + rl:]
                    return decode(h >> 4, h & 0xF, body, self.version)
            self._fill(deadline)

    def expect(self, ptype: int, timeout: float | None = None, pid: int | None = None) -> Packet:
        """The next packet of `ptype` (with `pid`); other packets received meanwhile stay pending
        (PUBLISH deliveries) or fail the test (anything else)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        stash = []
        try:
            while True:
                try:
                    p = self.recv(max(0.01, deadline - time.monotonic()))
                except Closed:
                    raise AssertionError(f"server closed the connection while waiting for {NAMES[ptype]}"
                                         f" (received before: {stash})")
                except TimeoutError:
                    raise AssertionError(f"no {NAMES[ptype]} within the time limit (received: {stash})")
                if p.type == ptype and (pid is None or p.pid == pid):
                    return p
                if p.type in (PUBLISH, PINGRESP):
                    stash.append(p)
                    continue
                raise AssertionError(f"expected {NAMES[ptype]}, got {p!r}")
        finally:
            self.pending[:0] = [s for s in stash if s.type == PUBLISH]

    def wait_closed(self, timeout: float = 10.0) -> list[Packet]:
        """Read until the server closes the connection; returns what arrived before. Fails the
        test when the connection is still open after `timeout`."""
        got = list(self.pending)
        self.pending = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                got.append(self.recv(max(0.01, deadline - time.monotonic())))
            except Closed:
                return got
            except TimeoutError:
                raise AssertionError(f"the server did not close the connection within {timeout}s "
                                     f"(received: {got})")
            except (IndexError, struct.error):
                return got  # an undecodable tail right before EOF

    def is_open(self, timeout: float = 5.0) -> bool:
        """PINGREQ -> PINGRESP proves the connection is alive."""
        try:
            self.send(packet(PINGREQ, 0, b""))
            self.expect(PINGRESP, timeout)
            return True
        except (AssertionError, OSError):
            return False

    # -- writing
    def connect(self, client_id: str, username=None, password=None, **kw) -> Packet:
        self.send(connect_packet(client_id, username, password, version=self.version, **kw))
        p = self.recv()
        assert p.type == CONNACK, f"expected CONNACK, got {p!r}"
        return p

    def login(self, dev_id: str, secret: str, **kw) -> Packet:
        ack = self.connect(dev_id, dev_id, secret, **kw)
        assert ack.reason == 0, f"{dev_id}: CONNACK code {ack.reason:#x}, expected 0 (accepted)"
        return ack

    def publish_packet(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False,
                       pid: int | None = None, dup: bool = False) -> bytes:
        flags = (qos << 1) | (1 if retain else 0) | (8 if dup else 0)
        body = mstr(topic)
        if qos:
            body += struct.pack("!H", pid)
        if self.version == 5:
            body += props()
        return packet(PUBLISH, flags, body + payload)

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False,
                pid: int | None = None, dup: bool = False) -> int | None:
        if qos and pid is None:
            pid = self.next_pid()
        self.send(self.publish_packet(topic, payload, qos, retain, pid, dup))
        return pid

    def publish_qos1(self, topic: str, payload: bytes, retain: bool = False, timeout=None) -> Packet:
        pid = self.publish(topic, payload, 1, retain)
        return self.expect(PUBACK, timeout, pid=pid)

    def subscribe(self, filters: list[tuple[str, int]], timeout=None) -> Packet:
        pid = self.next_pid()
        body = struct.pack("!H", pid)
        if self.version == 5:
            body += props()
        for f, q in filters:
            body += mstr(f) + bytes([q])
        self.send(packet(SUBSCRIBE, 2, body))
        return self.expect(SUBACK, timeout, pid=pid)

    def ack(self, p: Packet):
        if p.qos == 1:
            self.send(packet(PUBACK, 0, struct.pack("!H", p.pid)))
        elif p.qos == 2:
            self.send(packet(PUBREC, 0, struct.pack("!H", p.pid)))
            self.expect(PUBREL, pid=p.pid)
            self.send(packet(PUBCOMP, 0, struct.pack("!H", p.pid)))

    def disconnect(self):
        body = b"\x00\x00" if self.version == 5 else b""
        try:
            self.send(packet(DISCONNECT, 0, body))
        except OSError:
            pass
        self.close()

    def messages(self, count: int, timeout: float = 10.0, ack: bool = True) -> list[Packet]:
        """Receive `count` PUBLISH deliveries (acknowledging them)."""
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            try:
                p = self.recv(max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                raise AssertionError(f"got {len(out)} of {count} expected messages: {out}")
            if p.type == PUBLISH:
                out.append(p)
                if ack:
                    self.ack(p)
            elif p.type != PINGRESP:
                raise AssertionError(f"unexpected {p!r} while waiting for messages")
        return out


def raw_login(gw, dev_id: str, version: int = 4, **kw) -> RawMqtt:
    c = RawMqtt(gw.mqtt_port, version)
    c.login(dev_id, gw.secrets[dev_id], **kw)
    return c


# ---- paho-mqtt ------------------------------------------------------------------------------

class Paho:
    """A paho-mqtt 2.x client with its network loop in a thread and waitable callbacks."""

    def __init__(self, gw, dev_id: str, version: int = 4, password: str | None = None,
                 username: str | None = None, client_id: str | None = None,
                 clean: bool = True, session_expiry: int | None = None, max_inflight: int | None = None,
                 will: tuple | None = None, connect: bool = True, bind_address: str = ""):
        proto = paho.MQTTv5 if version == 5 else paho.MQTTv311
        cid = dev_id if client_id is None else client_id
        if version == 5:
            self.c = paho.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=proto,
                                 reconnect_on_failure=False)
        else:
            self.c = paho.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=proto,
                                 clean_session=clean, reconnect_on_failure=False)
        self.version = version
        self.gw, self.port = gw, gw.mqtt_port
        self.clean, self.session_expiry = clean, session_expiry
        self.bind_address = bind_address
        user = dev_id if username is None else username
        pw = gw.secrets.get(dev_id) if password is None else password
        if user is not None:
            self.c.username_pw_set(user, pw)
        if max_inflight:
            self.c.max_inflight_messages_set(max_inflight)
        if will:
            self.c.will_set(will[0], will[1], will[2], will[3])
        self.lock = threading.Condition()
        self.connack = None             # (reason code int, session_present)
        self.disconnected = None        # reason code int
        self.messages: list[paho.MQTTMessage] = []
        self.published: dict[int, int] = {}    # mid -> reason code value
        self.subacks: dict[int, list[int]] = {}
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_message = self._on_message
        self.c.on_publish = self._on_publish
        self.c.on_subscribe = self._on_subscribe
        self.publish_hook = None
        if connect:
            self.connect()

    # callbacks (paho network thread)
    def _on_connect(self, client, userdata, flags, rc, properties):
        with self.lock:
            self.connack = (rc.value, bool(flags.session_present))
            self.lock.notify_all()

    def _on_disconnect(self, client, userdata, flags, rc, properties):
        with self.lock:
            self.disconnected = rc.value if hasattr(rc, "value") else int(rc)
            self.lock.notify_all()

    def _on_message(self, client, userdata, msg):
        with self.lock:
            self.messages.append(msg)
            self.lock.notify_all()

    def _on_publish(self, client, userdata, mid, rc, properties):
        if self.publish_hook:
            self.publish_hook(mid, rc.value)
        with self.lock:
            self.published[mid] = rc.value
            self.lock.notify_all()

    def _on_subscribe(self, client, userdata, mid, rcs, properties):
        with self.lock:
            self.subacks[mid] = [r.value for r in rcs]
            self.lock.notify_all()

    def wait(self, pred, timeout: float = 10.0, what: str = "condition"):
        with self.lock:
            if not self.lock.wait_for(pred, timeout):
                raise AssertionError(f"paho {self.c._client_id!r}: no {what} within {timeout}s "
                                     f"(connack={self.connack}, disconnected={self.disconnected})")

    def connect(self, expect_ok: bool = True, timeout: float = 15.0):
        self.connack = None
        self.disconnected = None
        kw = {}
        if self.version == 5:
            kw["clean_start"] = self.clean
            if self.session_expiry is not None:
                p = Properties(PacketTypes.CONNECT)
                p.SessionExpiryInterval = self.session_expiry
                kw["properties"] = p
        self.c.connect(HOST, self.port, keepalive=60, bind_address=self.bind_address, **kw)
        self.c.loop_start()
        self.wait(lambda: self.connack is not None or self.disconnected is not None, timeout, "CONNACK")
        if expect_ok:
            assert self.connack and self.connack[0] == 0, \
                f"paho connect refused: connack={self.connack} disconnected={self.disconnected}"
        return self.connack

    def subscribe(self, filters, qos: int = 1, timeout: float = 10.0) -> list[int]:
        if isinstance(filters, str):
            filters = [filters]
        rc, mid = self.c.subscribe([(f, qos) for f in filters])
        assert rc == paho.MQTT_ERR_SUCCESS, f"subscribe not sent: {rc}"
        self.wait(lambda: mid in self.subacks, timeout, "SUBACK")
        return self.subacks[mid]

    def publish(self, topic: str, payload, qos: int = 1, retain: bool = False, timeout: float = 15.0) -> int:
        """Publish and wait for the acknowledgement (QoS 1/2); returns the reason code value."""
        info = self.c.publish(topic, payload, qos, retain)
        assert info.rc == paho.MQTT_ERR_SUCCESS, f"publish not sent: {info.rc}"
        if qos == 0:
            return 0
        self.wait(lambda: info.mid in self.published, timeout, f"PUBACK/PUBCOMP for {topic}")
        return self.published[info.mid]

    def wait_messages(self, pred, count: int = 1, timeout: float = 10.0):
        self.wait(lambda: len([m for m in self.messages if pred(m)]) >= count, timeout,
                  f"{count} matching message(s)")
        with self.lock:
            return [m for m in self.messages if pred(m)]

    def close(self):
        try:
            self.c.disconnect()
        except Exception:
            pass
        self.c.loop_stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---- mosquitto clients ----------------------------------------------------------------------

def mosquitto_pub(gw, dev_id: str, topic: str, message, qos: int = 1, password: str | None = None,
                  v5: bool = False, extra=(), timeout: float = 30) -> subprocess.CompletedProcess:
    args = ["mosquitto_pub", "-h", HOST, "-p", str(gw.mqtt_port), "-i", dev_id, "-u", dev_id,
            "-P", gw.secrets[dev_id] if password is None else password,
            "-t", topic, "-q", str(qos)]
    if v5:
        args += ["-V", "mqttv5"]
    args += list(extra)
    if isinstance(message, bytes):
        args += ["-s"]
        return subprocess.run(args, input=message, capture_output=True, timeout=timeout)
    return subprocess.run(args + ["-m", message], capture_output=True, timeout=timeout)


class MosquittoSub:
    """mosquitto_sub -d ... -C count; waits for its SUBACK before returning."""

    def __init__(self, gw, dev_id: str, topic: str, count: int, qos: int = 1, v5: bool = False,
                 wait_s: int = 20):
        # stdbuf: mosquitto_sub block-buffers stdout into a pipe; we need the SUBACK line now.
        args = ["stdbuf", "-oL", "mosquitto_sub", "-d", "-h", HOST, "-p", str(gw.mqtt_port), "-i", dev_id, "-u", dev_id,
                "-P", gw.secrets[dev_id], "-t", topic, "-q", str(qos), "-C", str(count),
                "-W", str(wait_s), "-F", "MSG> q=%q r=%r t=%t p=%p"]
        if v5:
            args += ["-V", "mqttv5"]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: list[str] = []
        self.suback = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        if not self.suback.wait(15):
            self.proc.kill()
            self.reader.join(5)
            raise AssertionError(f"mosquitto_sub got no SUBACK within 15 s: {self.lines}")

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            if "received SUBACK" in line:
                self.suback.set()

    def finish(self, timeout: float = 25) -> tuple[int, list[str]]:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            rc = None
        self.reader.join(5)
        return rc, self.lines

    def messages(self) -> list[str]:
        return [l for l in self.lines if l.startswith("MSG> ")]
