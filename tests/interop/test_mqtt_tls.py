"""MQTT over TLS: a server certificate, and client certificates whose CN is the device id."""

import subprocess

import pytest

from kutil import KINEDGE_BIN, free_port, flatten, read_all


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=kinedge test CA", cwd=d)

    def issue(name, cn, server=False):
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
        ext = d / f"{name}.ext"
        ext.write_text("subjectAltName=IP:127.0.0.1\n" if server else "extendedKeyUsage=clientAuth\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", ext.name, cwd=d)

    issue("server", "127.0.0.1", server=True)
    issue("sensor", "sensor-1")
    issue("intruder", "intruder")
    return d


@pytest.fixture(scope="module")
def tls_gw(module_gateway_factory, tmp_path_factory, pki):
    devices = tmp_path_factory.mktemp("tls-devices")
    out = subprocess.run([str(KINEDGE_BIN), "devices", "add", "sensor-2", "--dir", str(devices)],
                         capture_output=True, check=True, timeout=30)
    secret = out.stdout.decode().strip()
    subprocess.run([str(KINEDGE_BIN), "devices", "add", "sensor-1", "--dir", str(devices)],
                   capture_output=True, check=True, timeout=30)
    tls_port = free_port()
    gw = module_gateway_factory(name="tls", extra_config=f"""
[mqtt]
listen = "127.0.0.1:{free_port()}"
[mqtt.tls]
listen = "127.0.0.1:{tls_port}"
cert = "{pki / 'server.crt'}"
key = "{pki / 'server.key'}"
client_ca = "{pki / 'ca.crt'}"
[devices]
dir = "{devices}"
[[streams]]
name = "telemetry"
shards = 1
[[routes]]
topic = "devices/+/telemetry"
stream = "telemetry"
""")
    gw.tls_port = tls_port
    gw.secret2 = secret
    return gw


def pub(gw, pki, client_id, message, *extra):
    return subprocess.run(
        ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(gw.tls_port), "--cafile", str(pki / "ca.crt"),
         "-i", client_id, "-t", f"devices/{client_id}/telemetry", "-m", message, "-q", "1", *extra],
        capture_output=True, timeout=30)


def stored(gw):
    return [r["Data"] for r in flatten(read_all(gw.client(), "telemetry"))]


def test_client_certificate_authenticates_the_device(tls_gw, pki):
    r = pub(tls_gw, pki, "sensor-1", "by-certificate",
            "--cert", str(pki / "sensor.crt"), "--key", str(pki / "sensor.key"))
    assert r.returncode == 0, r.stderr
    assert b"by-certificate" in stored(tls_gw)


def test_password_over_tls_without_client_certificate(tls_gw, pki):
    r = pub(tls_gw, pki, "sensor-2", "by-password", "-u", "sensor-2", "-P", tls_gw.secret2)
    assert r.returncode == 0, r.stderr
    assert b"by-password" in stored(tls_gw)


def test_refusals_over_tls(tls_gw, pki):
    # A certificate whose CN is no device.
    r = pub(tls_gw, pki, "intruder", "x", "--cert", str(pki / "intruder.crt"), "--key", str(pki / "intruder.key"))
    assert r.returncode != 0
    # No certificate and no password.
    r = pub(tls_gw, pki, "sensor-1", "x")
    assert r.returncode != 0
    # A certificate for sensor-1 cannot publish as sensor-2.
    r = pub(tls_gw, pki, "sensor-2", "x", "--cert", str(pki / "sensor.crt"), "--key", str(pki / "sensor.key"))
    assert r.returncode != 0
    assert b"x" not in stored(tls_gw)


def test_plain_tcp_on_the_tls_port_closes_only_that_connection(tls_gw, pki):
    import socket
    with socket.create_connection(("127.0.0.1", tls_gw.tls_port), timeout=5) as s:
        s.sendall(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00")
        s.settimeout(5)
        try:
            data = s.recv(100)
        except (ConnectionResetError, TimeoutError):
            data = b""
        assert not data.startswith(b"\x20"), "no CONNACK over a TLS port without TLS"
    r = pub(tls_gw, pki, "sensor-1", "still-serving",
            "--cert", str(pki / "sensor.crt"), "--key", str(pki / "sensor.key"))
    assert r.returncode == 0, r.stderr


def test_status_counts_mqtt_traffic_and_refusals(tls_gw, pki):
    import requests
    status = requests.get(f"{tls_gw.url}/status", timeout=5).json()["mqtt"]
    assert status["devices"] == 2
    assert status["stored"] >= 3
    assert status["refused"]["connect"] >= 3, status
