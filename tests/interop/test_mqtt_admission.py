"""Connections that never authenticate must not lock devices out: 1,000 idle sockets (no
CONNECT) from 127.0.0.1 while 12 devices log in with paho-mqtt from 127.0.0.2.

Not-yet-authenticated sockets have their own budget (mqtt.max_pending_connections) and a cap
per address (mqtt.max_pending_per_address); only authenticated sessions take one of the
mqtt.max_connections slots.
"""

import subprocess
import sys
import threading

import pytest

from mqttutil import HOST, Paho, health_ok, mqtt_gateway

DEVICES = {f"dev-{i}": {} for i in range(12)}
IDLE = int(__import__("os").environ.get("ADMISSION_IDLE", "1000"))


# The idle sockets live in a child process: paho's network loop uses select(), which cannot
# watch descriptors above 1023, so this process must stay below that many.
HOLDER = r"""
import socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
idle = []
for _ in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.connect((host, port))
    idle.append(s)
closed = "none"
if n >= 16:
    # Sentinel: one more socket from the same address is closed by the gateway; the listener
    # accepts in order, so every idle socket before it has been dealt with.
    s = socket.create_connection((host, port), source_address=("127.0.0.1", 0))
    s.settimeout(60)
    try:
        closed = "yes" if s.recv(1) == b"" else "data"
    except ConnectionResetError:
        closed = "yes"
    except socket.timeout:
        closed = "no"
print(closed, flush=True)
sys.stdin.read()
"""


@pytest.mark.timeout(420)
def test_idle_sockets_do_not_lock_devices_out(gateway_factory):
    # connect_timeout_s long enough that the idle sockets outlive the device logins (Argon2 checks
    # run two at a time, slow in a debug build on a busy machine).
    gw = mqtt_gateway(gateway_factory, name="admission", devices=DEVICES,
                      mqtt_extra="connect_timeout_s = 120\nmax_pending_per_address = 16\n")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, HOST, str(gw.mqtt_port), str(IDLE)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        closed = holder.stdout.readline().strip()
        assert closed in ("yes", "none"), \
            f"the gateway kept a socket beyond the per-address cap open ({closed!r})"

        results = {}

        def login(dev):
            try:
                p = Paho(gw, dev, version=5 if int(dev[4:]) % 2 else 4, bind_address="127.0.0.2",
                         connect=False)
                results[dev] = p.connect(expect_ok=False, timeout=240)
                p.close()
            except Exception as e:  # noqa: BLE001 - reported below
                results[dev] = repr(e)

        threads = [threading.Thread(target=login, args=(d,)) for d in DEVICES]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        failed = {d: r for d, r in results.items() if not (isinstance(r, tuple) and r[0] == 0)}
        assert len(results) == 12 and not failed, f"device logins failed: {failed}"
        health_ok(gw)
    finally:
        holder.kill()
        holder.wait()
