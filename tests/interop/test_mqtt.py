"""The MQTT listener: device logins, topic ACLs, routing publishes into streams (read back with
boto3), the embedded broker (wildcards, retained, last will, persistent sessions), malformed
input, quotas and durability of acknowledged publishes across SIGKILL.

Clients: a byte-level MQTT 3.1.1/5 client (mqttutil.RawMqtt) for exact return/reason codes,
paho-mqtt 2.x (v3.1.1 and v5) and mosquitto_pub/mosquitto_sub.
"""

import base64
import json
import random
import socket
import threading
import time
import uuid
from datetime import datetime, timezone

import paho.mqtt.client as paho_client
import pytest

from kutil import flatten, read_all
from mqttutil import (CONNACK, DISCONNECT, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, Closed,
                      MosquittoSub, Paho, RawMqtt, connect_packet, health_ok, mosquitto_pub, mqtt_gateway,
                      mqtt_connected, packet, raw_login, rss_kib, start_mqtt, varint, wait_for, wait_port)

V3, V5 = 4, 5
VERSIONS = pytest.mark.parametrize("version", [V3, V5], ids=["v311", "v5"])

SUBSCRIBER = {"subscribe": ["devices/#"]}
DEVICES = {
    "sensor-1": {}, "sensor-2": {}, "sensor-3": {}, "sensor-4": {},
    "monitor": SUBSCRIBER, "watcher": SUBSCRIBER, "keeper3": SUBSCRIBER, "keeper5": SUBSCRIBER,
    "mosq": SUBSCRIBER, "will-1": {},
    "controller": {"publish": ["devices/+/commands/#"], "subscribe": ["devices/{device}/commands/#"]},
}


def token(prefix="t"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def records(gw, stream):
    return flatten(read_all(gw.client(), stream))


def with_data(recs, needle: bytes):
    return [r for r in recs if needle in r["Data"]]


# ---- fixtures --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mq(module_gateway_factory):
    """One gateway with [mqtt], the default streams/routes and the DEVICES above."""
    return mqtt_gateway(module_gateway_factory, name="mqtt", devices=DEVICES)


@pytest.fixture(scope="module")
def monitor(mq):
    """A v5 paho subscriber on devices/# for the whole module."""
    m = Paho(mq, "monitor", version=V5)
    codes = m.subscribe("devices/#", qos=1)
    assert codes == [1], f"monitor SUBACK {codes}"
    yield m
    m.close()


# ---- devices and logins ------------------------------------------------------------------------

def test_devices_add_writes_hashed_device_file(mq):
    f = mq.devices_dir / "sensor-1.toml"
    assert f.exists(), f"devices add did not write {f} (devices.dir from the config)"
    text = f.read_text()
    assert 'id = "sensor-1"' in text
    assert "$argon2id$" in text, f"no Argon2id PHC hash in {f}:\n{text}"
    assert mq.secrets["sensor-1"] not in text, "the plaintext secret is in the device file"
    assert len(set(mq.secrets.values())) == len(mq.secrets), "two devices got the same secret"
    ctl = (mq.devices_dir / "controller.toml").read_text()
    assert "devices/+/commands/#" in ctl and "devices/{device}/commands/#" in ctl, ctl


@VERSIONS
def test_connect_accepted(mq, version):
    with RawMqtt(mq.mqtt_port, version) as c:
        ack = c.login("sensor-1", mq.secrets["sensor-1"])
        assert ack.session_present is False, "clean session/clean start must not report a session"
        assert c.is_open()
        c.disconnect()


REFUSALS = {
    # case: (client id, username, password (None = absent; "@dev" = that device's secret), v3 codes, v5 codes)
    "wrong_password": ("sensor-1", "sensor-1", "not-the-secret", {4, 5}, {0x86}),
    "other_devices_secret": ("sensor-1", "sensor-1", "@sensor-2", {4, 5}, {0x86}),
    "unknown_user": ("ghost-7", "ghost-7", "whatever", {4, 5}, {0x86}),
    "no_credentials": ("sensor-1", None, None, {5, 4}, {0x87, 0x86}),
    "empty_password": ("sensor-1", "sensor-1", "", {4, 5}, {0x86}),
    "client_id_not_username": ("sensor-2", "sensor-1", "@sensor-1", {2}, {0x85}),
}


@VERSIONS
@pytest.mark.parametrize("case", list(REFUSALS))
def test_connect_refused(mq, version, case):
    cid, user, pw, v3_codes, v5_codes = REFUSALS[case]
    if pw is not None and pw.startswith("@"):
        pw = mq.secrets[pw[1:]]
    with RawMqtt(mq.mqtt_port, version) as c:
        ack = c.connect(cid, user, pw)
        expected = v5_codes if version == V5 else v3_codes
        assert ack.reason in expected, \
            f"{case}: CONNACK code {ack.reason:#x}, expected one of {[hex(x) for x in sorted(expected)]}"
        assert ack.session_present is False, f"{case}: refused CONNACK has session present set"
        after = c.wait_closed(10)
        assert not after, f"{case}: server sent {after} after refusing the CONNECT"


@VERSIONS
def test_paho_login_and_refusal(mq, version):
    with Paho(mq, "sensor-1", version=version) as ok:
        assert ok.connack == (0, False)
    bad = Paho(mq, "sensor-1", version=version, password="wrong", connect=False)
    try:
        rc, _ = bad.connect(expect_ok=False)
        # paho reports v3 return codes as the equivalent v5 reason codes (4 -> 0x86, 5 -> 0x87)
        assert rc in ({0x86} if version == V5 else {0x86, 0x87}), f"paho saw CONNACK reason {rc:#x}"
    finally:
        bad.close()


@pytest.mark.parametrize("v5", [False, True], ids=["v311", "v5"])
def test_mosquitto_pub_wrong_password_fails(mq, monitor, v5):
    t = token("badpw")
    r = mosquitto_pub(mq, "sensor-1", "devices/sensor-1/telemetry", t, qos=1, password="wrong-secret", v5=v5)
    assert r.returncode != 0, f"mosquitto_pub with a wrong password exited 0: {r.stdout!r} {r.stderr!r}"
    assert not with_data(records(mq, "telemetry"), t.encode()), "a refused client's publish was stored"


# ---- ACL -----------------------------------------------------------------------------------------

def test_publish_outside_acl_v5_puback_0x87(mq, monitor):
    denied, allowed = token("denied5"), token("allowed5")
    with raw_login(mq, "sensor-1", V5) as c:
        ack = c.publish_qos1("devices/sensor-2/telemetry", denied.encode())
        assert ack.reason == 0x87, f"PUBACK reason {ack.reason:#x} for a publish outside the ACL, expected 0x87"
        assert c.is_open(), "the v5 connection was closed after a refused publish"
        ack = c.publish_qos1("devices/sensor-1/telemetry", allowed.encode())
        assert ack.reason == 0, f"allowed publish after a refused one: PUBACK {ack.reason:#x}"
        c.disconnect()
    monitor.wait_messages(lambda m: m.payload == allowed.encode())
    assert not [m for m in monitor.messages if m.payload == denied.encode()], "a refused publish was delivered"
    stored = records(mq, "telemetry")
    assert not with_data(stored, denied.encode()), "a refused publish was stored"
    assert len(with_data(stored, allowed.encode())) == 1


def test_publish_outside_acl_v3_closes_connection(mq, monitor):
    denied, sentinel = token("denied3"), token("sentinel3")
    with raw_login(mq, "sensor-1", V3) as c:
        c.publish("devices/sensor-2/telemetry", denied.encode(), qos=1)
        got = c.wait_closed(10)
        assert not [p for p in got if p.type == PUBACK], f"v3 refused publish was acknowledged: {got}"
    with raw_login(mq, "sensor-2", V3) as c2:
        assert c2.publish_qos1("devices/sensor-2/telemetry", sentinel.encode()).reason == 0
        c2.disconnect()
    # The sentinel was published after the refused publish: once it is here, so would be that.
    monitor.wait_messages(lambda m: m.payload == sentinel.encode())
    assert not [m for m in monitor.messages if m.payload == denied.encode()], "a refused publish was delivered"
    assert not with_data(records(mq, "telemetry"), denied.encode()), "a refused publish was stored"


@VERSIONS
def test_subscribe_outside_acl(mq, version):
    refused = 0x87 if version == V5 else 0x80
    with raw_login(mq, "sensor-1", version) as c:
        sub = c.subscribe([("devices/sensor-1/commands/#", 1), ("devices/#", 1),
                           ("devices/sensor-2/commands/x", 0)])
        assert len(sub.codes) == 3, f"SUBACK has {len(sub.codes)} codes for 3 filters: {sub.codes}"
        assert sub.codes[0] in (0, 1), f"allowed filter refused: SUBACK {[hex(x) for x in sub.codes]}"
        assert sub.codes[1:] == [refused, refused], \
            f"filters outside the ACL: SUBACK {[hex(x) for x in sub.codes]}, expected {refused:#x}"
        assert c.is_open(), "connection closed after a partly refused SUBSCRIBE"
        other, mine, other2, mine2 = (token(t) for t in ("cmd-other", "cmd-mine", "cmd-other", "cmd-mine"))
        with raw_login(mq, "controller", V3) as ctl:
            # Refused, allowed, refused, allowed: the second allowed one is the sentinel that the
            # refused ones had their chance to arrive (no absence checked after a sleep).
            for topic, payload in (("devices/sensor-2/commands/x", other), ("devices/sensor-1/commands/reboot", mine),
                                   ("devices/sensor-2/commands/x", other2), ("devices/sensor-1/commands/reboot", mine2)):
                assert ctl.publish_qos1(topic, payload.encode()).reason == 0
            ctl.disconnect()
        got = c.messages(2, timeout=20)
        assert [(m.payload, m.topic) for m in got] == [(mine.encode(), "devices/sensor-1/commands/reboot"),
                                                       (mine2.encode(), "devices/sensor-1/commands/reboot")], \
            f"received through a refused subscription: {got}"
        c.disconnect()


# ---- routing -------------------------------------------------------------------------------------

@VERSIONS
def test_raw_route_stores_payload_before_puback(mq, monitor, version):
    t = token("raw")
    payload = t.encode() + b"\x00\xff\xfe binary \x80"
    with Paho(mq, "sensor-1", version=version) as p:
        rc = p.publish("devices/sensor-1/telemetry", payload, qos=1)
        assert rc == 0, f"PUBACK reason {rc:#x}"
        # Acknowledged means stored: read back at once, no polling.
        hits = with_data(records(mq, "telemetry"), t.encode())
    assert len(hits) == 1, f"{len(hits)} records for one acknowledged publish: {hits}"
    assert hits[0]["Data"] == payload
    assert hits[0]["PartitionKey"] == "sensor-1"
    monitor.wait_messages(lambda m: m.payload == payload)


def test_envelope_route(mq):
    t = token("env")
    sensor = "bme-" + t
    body = {"sensor": sensor, "t": 21.5, "note": t}
    raw = json.dumps(body).encode()
    before = time.time()
    with Paho(mq, "sensor-2", version=V5) as p:
        assert p.publish("devices/sensor-2/env", raw, qos=1) == 0
    hits = with_data(records(mq, "telemetry"), t.encode())
    assert len(hits) == 1, f"{len(hits)} envelope records: {hits}"
    rec = hits[0]
    assert rec["PartitionKey"] == sensor, f"partition key {rec['PartitionKey']!r}, expected payload.sensor {sensor!r}"
    env = json.loads(rec["Data"])
    missing = {"topic", "device", "client_id", "qos", "retain", "received_at", "payload",
               "payload_encoding"} - set(env)
    assert not missing, f"envelope lacks {missing}: {env}"
    assert env["topic"] == "devices/sensor-2/env"
    assert env["device"] == "sensor-2"
    assert env["client_id"] == "sensor-2"
    assert env["qos"] == 1
    assert env["retain"] is False
    enc = str(env["payload_encoding"]).lower()
    pl = env["payload"]
    if enc == "base64":
        assert base64.b64decode(pl) == raw, f"base64 payload {pl!r} does not decode to the publish"
    elif enc == "json":
        assert pl == body, f"json payload {pl!r}"
    elif enc in ("utf8", "utf-8", "text", "string"):
        assert pl == raw.decode(), f"text payload {pl!r}"
    else:
        raise AssertionError(f"unknown payload_encoding {env['payload_encoding']!r}")
    ra = env["received_at"]
    if isinstance(ra, (int, float)):
        secs = ra / 1000 if ra > 1e11 else ra
    else:
        secs = datetime.fromisoformat(str(ra).replace("Z", "+00:00")).astimezone(timezone.utc).timestamp()
    assert before - 5 <= secs <= time.time() + 5, f"received_at {ra!r} is not the time of the publish"


def _envelope_payload_bytes(env):
    enc, pl = str(env.get("payload_encoding")).lower(), env.get("payload")
    if enc == "base64":
        return base64.b64decode(pl)
    if enc == "json":
        return json.dumps(pl).encode()
    return str(pl).encode()


def test_envelope_binary_payload_not_corrupted(mq):
    """A non-UTF-8 payload on an envelope route (whose key wants payload.sensor): either it is
    not stored, or the envelope carries the exact bytes (e.g. payload_encoding base64)."""
    t = token("envbin")
    raw = b"\xff\xfe" + t.encode() + b"\x00\x80"
    with raw_login(mq, "sensor-2", V5) as c:
        ack = c.publish_qos1("devices/sensor-2/env", raw)
        assert c.is_open(), "connection closed after a binary publish on an envelope route"
        c.disconnect()
    found = []
    for r in records(mq, "telemetry"):
        try:
            env = json.loads(r["Data"])
        except ValueError:
            continue
        if isinstance(env, dict) and env.get("topic") == "devices/sensor-2/env":
            b = _envelope_payload_bytes(env)
            if t.encode() in b:
                found.append((b, env))
    for b, env in found:
        assert b == raw, f"binary payload altered in the envelope: {env}"
    assert len(found) <= 1
    if found:
        assert ack.reason == 0


def test_first_matching_route_wins(mq):
    t1, t2 = token("first"), token("third")
    with raw_login(mq, "sensor-3", V3) as c:
        assert c.publish_qos1("devices/sensor-3/telemetry", t1.encode()).reason == 0
        assert c.publish_qos1("devices/sensor-3/misc", t2.encode()).reason == 0
        c.disconnect()
    tel, other = records(mq, "telemetry"), records(mq, "other")
    hits = with_data(tel, t1.encode())
    assert len(hits) == 1 and hits[0]["PartitionKey"] == "sensor-3", \
        f"devices/sensor-3/telemetry should go to telemetry (route 1) only: {hits}"
    assert not with_data(other, t1.encode()), "a publish was stored by a later matching route as well"
    hits = with_data(other, t2.encode())
    assert len(hits) == 1 and hits[0]["PartitionKey"] == "sensor-3", \
        f"devices/sensor-3/misc should go to 'other' with key {{client_id}}: {hits}"
    assert not with_data(tel, t2.encode())


def test_unrouted_publish_delivered_not_stored(mq, monitor):
    t = token("unrouted")
    with raw_login(mq, "sensor-4", V5) as c:
        assert c.publish_qos1("devices/sensor-4/status", t.encode()).reason == 0
        c.disconnect()
    monitor.wait_messages(lambda m: m.payload == t.encode() and m.topic == "devices/sensor-4/status")
    for s in ("telemetry", "other"):
        assert not with_data(records(mq, s), t.encode()), f"an unrouted publish was stored in {s}"


@VERSIONS
def test_qos_0_1_2_are_stored(mq, version):
    t0, t1, t2 = token("q0"), token("q1"), token("q2")
    topic = "devices/sensor-4/telemetry"
    with raw_login(mq, "sensor-4", version) as c:
        c.publish(topic, t0.encode(), qos=0)
        assert c.publish_qos1(topic, t1.encode()).reason == 0
        assert len(with_data(records(mq, "telemetry"), t1.encode())) == 1

        pid = c.publish(topic, t2.encode(), qos=2)
        rec = c.expect(PUBREC, pid=pid)
        assert rec.reason == 0, f"PUBREC reason {rec.reason:#x}"
        assert len(with_data(records(mq, "telemetry"), t2.encode())) == 1, "QoS 2 publish not stored at PUBREC"
        # A retransmission (DUP) before PUBREL must not be stored again (exactly once).
        c.publish(topic, t2.encode(), qos=2, pid=pid, dup=True)
        rec2 = c.expect(PUBREC, pid=pid)
        assert rec2.reason == 0
        c.send(packet(PUBREL, 2, pid.to_bytes(2, "big")))
        comp = c.expect(PUBCOMP, pid=pid)
        assert comp.reason == 0
        c.disconnect()
    stored = records(mq, "telemetry")
    assert len(with_data(stored, t2.encode())) == 1, "QoS 2 publish stored more than once"
    deadline = time.monotonic() + 30
    while not with_data(stored, t0.encode()) and time.monotonic() < deadline:
        time.sleep(0.2)
        stored = records(mq, "telemetry")
    hits = with_data(stored, t0.encode())
    assert len(hits) == 1 and hits[0]["PartitionKey"] == "sensor-4", f"QoS 0 publish: {hits}"


@VERSIONS
def test_pipelined_qos1_publishes_keep_order(mq, version):
    """One connection sends 200 QoS 1 publishes without waiting: PUBACKs come back in publish
    order (MQTT 4.6) and the records are stored in publish order (one partition key = one shard)."""
    t = token("pipe")
    topic = "devices/sensor-4/telemetry"
    with raw_login(mq, "sensor-4", version) as c:
        pids = []
        for i in range(200):
            pids.append(c.publish(topic, f"{t}|{i:04d}".encode(), qos=1))
        acks = [c.expect(PUBACK, timeout=30) for _ in pids]
        c.disconnect()
    assert all(a.reason == 0 for a in acks), [hex(a.reason) for a in acks if a.reason]
    assert [a.pid for a in acks] == pids, "PUBACKs not in the order of the PUBLISHes"
    hits = with_data(records(mq, "telemetry"), t.encode())
    assert len({h["ShardId"] for h in hits}) == 1, "one partition key spread over several shards"
    got = [int(h["Data"].split(b"|")[1]) for h in hits]
    assert sorted(got) == list(range(200)), f"{len(got)} records for 200 acknowledged publishes"
    assert got == list(range(200)), f"stored out of publish order, first differences: " \
        f"{[(i, n) for i, n in enumerate(got) if i != n][:8]}"


# ---- broker behaviour ------------------------------------------------------------------------------

@VERSIONS
def test_wildcard_subscriptions(mq, version):
    a, b, c_, d, e = token("wa"), token("wb"), token("wc"), token("wd"), token("we")
    with Paho(mq, "watcher", version=version) as w:
        codes = w.subscribe(["devices/+/telemetry", "devices/sensor-2/alerts/#"], qos=1)
        assert codes == [1, 1], f"SUBACK {codes}"
        with raw_login(mq, "sensor-2", V3) as s2, raw_login(mq, "sensor-1", V3) as s1:
            assert s1.publish_qos1("devices/sensor-1/telemetry", a.encode()).reason == 0
            assert s2.publish_qos1("devices/sensor-2/alerts/fire/high", b.encode()).reason == 0
            assert s2.publish_qos1("devices/sensor-2/alerts", c_.encode()).reason == 0   # '#' matches the parent
            assert s2.publish_qos1("devices/sensor-2/other", d.encode()).reason == 0      # no match
            # Sentinel: matches, and comes after the non-matching publish on the same connection.
            assert s2.publish_qos1("devices/sensor-2/alerts", e.encode()).reason == 0
            s1.disconnect()
            s2.disconnect()
        want = {a.encode(): "devices/sensor-1/telemetry", b.encode(): "devices/sensor-2/alerts/fire/high",
                c_.encode(): "devices/sensor-2/alerts"}
        got = w.wait_messages(lambda m: m.payload in want, count=3)
        assert {m.payload: m.topic for m in got} == want
        assert all(m.qos == 1 for m in got), [(m.topic, m.qos) for m in got]
        w.wait_messages(lambda m: m.payload == e.encode())
        assert not [m for m in w.messages if m.payload == d.encode()], "a non-matching publish was delivered"
        assert len([m for m in w.messages if m.payload in want]) == 3, "duplicate deliveries"


@VERSIONS
def test_retained_message_to_later_subscriber(mq, monitor, version):
    t = token("ret")
    topic = f"devices/sensor-1/state-{t}"
    with raw_login(mq, "sensor-1", version) as c:
        assert c.publish_qos1(topic, t.encode(), retain=True).reason == 0
        c.disconnect()
    live = monitor.wait_messages(lambda m: m.topic == topic)
    assert live[0].retain is False, "an existing subscriber got the live publish with the retain flag set"
    with Paho(mq, "watcher", version=version) as w:
        w.subscribe("devices/sensor-1/+", qos=1)
        got = w.wait_messages(lambda m: m.topic == topic)
        assert got[0].payload == t.encode()
        assert got[0].retain is True, "retained message delivered to a new subscriber without the retain flag"
    # An empty retained publish clears it.
    with raw_login(mq, "sensor-1", version) as c:
        assert c.publish_qos1(topic, b"", retain=True).reason == 0
        c.disconnect()
    with Paho(mq, "watcher", version=version) as w:
        w.subscribe(topic, qos=1)
        # A retained message goes out with the SUBACK, before any later live publish: a live
        # publish is the sentinel.
        live = token("live")
        with raw_login(mq, "sensor-1", version) as c:
            assert c.publish_qos1(topic, live.encode()).reason == 0
            c.disconnect()
        w.wait_messages(lambda m: m.payload == live.encode())
        assert [m.payload for m in w.messages if m.topic == topic] == [live.encode()], \
            "a cleared retained message was delivered"


@VERSIONS
def test_last_will_on_dropped_connection(mq, version):
    t, sentinel = token("will"), token("graceful")
    topic = "devices/will-1/status"
    with Paho(mq, "watcher", version=version) as w:
        w.subscribe("devices/will-1/#", qos=1)
        c = RawMqtt(mq.mqtt_port, version)
        c.login("will-1", mq.secrets["will-1"], will=(topic, t.encode(), 1, False))
        assert c.is_open()
        c.kill()   # no DISCONNECT
        got = w.wait_messages(lambda m: m.payload == t.encode(), timeout=10)
        assert got[0].topic == topic

        # A clean DISCONNECT discards the will.
        t2 = token("nowill")
        c = RawMqtt(mq.mqtt_port, version)
        c.login("will-1", mq.secrets["will-1"], will=(topic, t2.encode(), 1, False))
        assert c.publish_qos1("devices/will-1/bye", sentinel.encode()).reason == 0
        c.disconnect()
        w.wait_messages(lambda m: m.payload == sentinel.encode())
        # Sentinel: the same client id logs in again (the old connection is over by then, its
        # will sent or dropped) and publishes.
        after = token("after")
        c = RawMqtt(mq.mqtt_port, version)
        c.login("will-1", mq.secrets["will-1"])
        assert c.publish_qos1("devices/will-1/bye", after.encode()).reason == 0
        c.disconnect()
        w.wait_messages(lambda m: m.payload == after.encode())
        assert not [m for m in w.messages if m.payload == t2.encode()], "will published after a clean DISCONNECT"


def _persistent_session(mq, version, dev):
    topic = f"devices/sensor-3/persist-{token()}"
    payloads = [f"{topic}#{i}".encode() for i in range(3)]
    # Start from no session.
    with Paho(mq, dev, version=version, clean=True):
        pass
    s = Paho(mq, dev, version=version, clean=False, session_expiry=300)
    assert s.connack == (0, False), f"first persistent connect: {s.connack} (session present on a fresh session?)"
    assert s.subscribe(topic, qos=1) == [1]
    connected = mqtt_connected(mq)
    s.close()
    # The publishes below must find the session offline (queued), not the closing connection.
    wait_for(lambda: mqtt_connected(mq) < connected, 20, "the gateway to see the DISCONNECT")
    with raw_login(mq, "sensor-3", V3) as p:
        for pl in payloads:
            assert p.publish_qos1(topic, pl).reason == 0
        p.disconnect()
    s = Paho(mq, dev, version=version, clean=False, session_expiry=300)
    try:
        assert s.connack == (0, True), f"reconnect of a persistent session: CONNACK {s.connack}, expected session present"
        got = s.wait_messages(lambda m: m.topic == topic, count=3, timeout=10)
        assert [m.payload for m in got] == payloads, f"queued messages: {[m.payload for m in got]}"
        assert all(m.qos == 1 for m in got)
    finally:
        s.close()
    with Paho(mq, dev, version=version, clean=True):   # drop the session again
        pass


def test_persistent_session_v311(mq):
    _persistent_session(mq, V3, "keeper3")


def test_persistent_session_v5(mq):
    _persistent_session(mq, V5, "keeper5")


@pytest.mark.parametrize("v5", [False, True], ids=["v311", "v5"])
def test_mosquitto_pub_is_stored(mq, v5):
    t = token("mpub")
    r = mosquitto_pub(mq, "sensor-1", "devices/sensor-1/telemetry", t, qos=1, v5=v5)
    assert r.returncode == 0, f"mosquitto_pub failed ({r.returncode}): {r.stdout!r} {r.stderr!r}"
    hits = with_data(records(mq, "telemetry"), t.encode())
    assert len(hits) == 1 and hits[0]["Data"] == t.encode() and hits[0]["PartitionKey"] == "sensor-1", hits


@pytest.mark.parametrize("v5", [False, True], ids=["v311", "v5"])
def test_mosquitto_sub_qos1_delivery(mq, v5):
    t = token("msub")
    topic = "devices/sensor-4/mq"
    sub = MosquittoSub(mq, "mosq", "devices/+/mq", count=2, qos=1, v5=v5)
    for i in range(2):
        r = mosquitto_pub(mq, "sensor-4", topic, f"{t}-{i}", qos=1, v5=v5)
        assert r.returncode == 0, f"mosquitto_pub failed: {r.stderr!r}"
    rc, lines = sub.finish()
    msgs = sub.messages()
    assert rc == 0, f"mosquitto_sub exited {rc}: {lines}"
    assert msgs == [f"MSG> q=1 r=0 t={topic} p={t}-{i}" for i in range(2)], lines
    assert any("received PUBLISH (d0, q1" in l for l in lines), lines
    assert any("sending PUBACK" in l for l in lines), lines


@VERSIONS
def test_paho_qos1_delivery(mq, version):
    t = token("pq1")
    with Paho(mq, "watcher", version=version) as w, Paho(mq, "sensor-4", version=version) as p:
        assert w.subscribe("devices/sensor-4/q1", qos=1) == [1]
        for i in range(5):
            assert p.publish("devices/sensor-4/q1", f"{t}-{i}".encode(), qos=1) == 0
        got = w.wait_messages(lambda m: m.payload.startswith(t.encode()), count=5)
        assert [m.payload for m in got] == [f"{t}-{i}".encode() for i in range(5)], "out of order or duplicated"
        assert all(m.qos == 1 for m in got)


# ---- robustness ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def robust(module_gateway_factory):
    return mqtt_gateway(module_gateway_factory, name="robust",
                        devices={"sensor-1": {}, "sensor-2": {}, "sensor-3": {}})


@pytest.fixture(scope="module")
def steady(robust):
    """A well-behaved client connected through all the abuse."""
    p = Paho(robust, "sensor-1", version=V3)
    yield p
    p.close()


def _still_fine(gw, steady, label):
    health_ok(gw)
    assert steady.disconnected is None, f"{label}: the well-behaved client was disconnected ({steady.disconnected})"
    t = token("steady")
    assert steady.publish("devices/sensor-1/telemetry", t.encode(), qos=1) == 0, f"{label}: steady publish refused"
    assert len(with_data(records(gw, "telemetry"), t.encode())) == 1, f"{label}: steady publish not stored"


def _random_garbage(seed):
    rnd = random.Random(seed)
    data = bytearray(rnd.getrandbits(8) for _ in range(4096))
    # Not a CONNECT, and a complete frame (remaining length < 128), so the server has to react
    # to the content rather than wait for more bytes.
    data[0] = rnd.choice([b for b in range(256) if not 0x10 <= b <= 0x1F])
    data[1] = rnd.randrange(0, 128)
    return bytes(data)


def _connect_body(gw):
    full = connect_packet("sensor-2", "sensor-2", gw.secrets["sensor-2"])
    rl, i = full[1], 2   # short packet: one-byte remaining length
    assert rl < 128
    return full, full[i:]


ATTACKS = ["random-1", "random-2", "random-3", "connect-cut-inside", "connect-cut-then-eof",
           "huge-remaining-length", "huge-after-login", "publish-before-connect"]


@pytest.mark.parametrize("attack", ATTACKS)
def test_malformed_input_closes_only_that_connection(robust, steady, attack):
    _still_fine(robust, steady, "before")
    rss_before = rss_kib(robust.proc.pid)
    c = RawMqtt(robust.mqtt_port, V3)
    try:
        if attack.startswith("random"):
            c.send(_random_garbage(int(attack[-1])))
        elif attack == "connect-cut-inside":
            full, body = _connect_body(robust)
            cut = body[:9]   # protocol name, level, flags, half the keep-alive; frame says 9 bytes
            c.send(bytes([0x10]) + varint(len(cut)) + cut)
        elif attack == "connect-cut-then-eof":
            full, _ = _connect_body(robust)
            c.send(full[: len(full) // 2])
            c.sock.shutdown(socket.SHUT_WR)
        elif attack == "huge-remaining-length":
            c.send(b"\x10" + varint(100_000_000) + b"\x00\x04MQTT\x04\xc2\x00\x3c" + b"A" * 2048)
        elif attack == "huge-after-login":
            c.login("sensor-2", robust.secrets["sensor-2"])
            c.send(b"\x32" + varint(100_000_000) + b"\x00\x1adevices/sensor-2/telemetry\x00\x01" + b"B" * 2048)
        elif attack == "publish-before-connect":
            c.send(packet(PUBLISH, 2, b"\x00\x1adevices/sensor-1/telemetry\x00\x01hello"))
        got = c.wait_closed(10)
        if attack == "huge-after-login":
            assert not [p for p in got if p.type == PUBACK], got
        else:
            assert not [p for p in got if p.type == CONNACK and p.reason == 0], \
                f"{attack}: server accepted a malformed CONNECT: {got}"
    except (BrokenPipeError, ConnectionResetError):
        pass   # closed while we were still sending: fine
    finally:
        c.close()
    _still_fine(robust, steady, f"after {attack}")
    grown = rss_kib(robust.proc.pid) - rss_before
    assert grown < 64 * 1024, f"{attack}: gateway RSS grew by {grown} KiB"


@VERSIONS
def test_publish_over_max_packet_size_closes_connection(robust, steady, version):
    big, ok = token("big"), token("fits")
    with raw_login(robust, "sensor-3", version) as c:
        try:
            c.publish("devices/sensor-3/telemetry", big.encode() + b"x" * (100 * 1024), qos=1)
        except (BrokenPipeError, ConnectionResetError):
            pass
        got = c.wait_closed(10)
    assert not [p for p in got if p.type == PUBACK], f"an oversized publish was acknowledged: {got}"
    disc = [p for p in got if p.type == DISCONNECT]
    if version == V5:
        assert all(p.reason == 0x95 for p in disc), f"DISCONNECT reason {[hex(p.reason) for p in disc]}, expected 0x95"
    else:
        assert not disc, f"a v3.1.1 server must not send DISCONNECT: {got}"
    assert not with_data(records(robust, "telemetry"), big.encode()), "the oversized publish was stored"
    with raw_login(robust, "sensor-3", version) as c:
        data = ok.encode() + b"y" * (60 * 1024)
        assert c.publish_qos1("devices/sensor-3/telemetry", data).reason == 0
        c.disconnect()
    hits = with_data(records(robust, "telemetry"), ok.encode())
    assert len(hits) == 1 and hits[0]["Data"] == data
    _still_fine(robust, steady, "after the oversized publish")


def test_allow_anonymous(gateway_factory):
    gw = mqtt_gateway(gateway_factory, name="anon", devices={"sensor-1": {}}, allow_anonymous=True)
    for version in (V3, V5):
        with RawMqtt(gw.mqtt_port, version) as c:
            ack = c.connect(f"anon-{version}", None, None)
            assert ack.reason == 0, f"v{version}: anonymous CONNECT refused with allow_anonymous = true: {ack.reason:#x}"
            c.disconnect()
        with RawMqtt(gw.mqtt_port, version) as c:
            ack = c.connect("sensor-1", "sensor-1", "wrong")
            assert ack.reason in ({0x86} if version == V5 else {4, 5}), \
                f"v{version}: a wrong password must still be refused: {ack.reason:#x}"


# ---- quota -----------------------------------------------------------------------------------------

QUOTA_STREAMS = """
[[streams]]
name = "telemetry"
shards = 2

[[streams]]
name = "small"
shards = 1
max_bytes = "1MiB"
on_full = "reject_new"
"""

QUOTA_ROUTES = """
[[routes]]
topic = "devices/+/bulk"
stream = "small"
partition_key = "{device}"
format = "raw"

[[routes]]
topic = "devices/+/telemetry"
stream = "telemetry"
partition_key = "{device}"
format = "raw"
"""


@pytest.mark.timeout(120)
def test_quota_reject_new(gateway_factory):
    gw = mqtt_gateway(gateway_factory, name="quota", devices={"sensor-1": {}, "sensor-2": {}},
                      streams=QUOTA_STREAMS, routes=QUOTA_ROUTES)
    chunk = b"z" * (32 * 1024)
    accepted, refused = 0, None
    with raw_login(gw, "sensor-1", V5) as c:
        for i in range(200):
            t = f"fill-{i:04d}|".encode()
            ack = c.publish_qos1("devices/sensor-1/bulk", t + chunk)
            if ack.reason != 0:
                refused = (i, ack.reason, t)
                break
            accepted += 1
        assert refused is not None, f"{accepted} x 32 KiB publishes accepted into a 1 MiB reject_new stream"
        assert refused[1] == 0x97, f"PUBACK reason {refused[1]:#x} once the stream is full, expected 0x97"
        assert accepted >= 8, f"only {accepted} x 32 KiB accepted before 'quota exceeded' on a 1 MiB stream"
        # Still refused on the next try.
        assert c.publish_qos1("devices/sensor-1/bulk", b"again|" + chunk).reason == 0x97
        c.disconnect()
    stored = records(gw, "small")
    assert len(stored) == accepted, f"{len(stored)} records stored, {accepted} acknowledged"
    assert not with_data(stored, refused[2]), "the refused publish was stored"

    v3t = token("v3full")
    with raw_login(gw, "sensor-2", V3) as c:
        c.publish("devices/sensor-2/bulk", v3t.encode() + chunk, qos=1)
        got = c.wait_closed(10)
        assert not [p for p in got if p.type == PUBACK], f"v3 publish into a full stream acknowledged: {got}"
    assert not with_data(records(gw, "small"), v3t.encode())

    # Other streams are not affected.
    t = token("elsewhere")
    with raw_login(gw, "sensor-2", V3) as c:
        assert c.publish_qos1("devices/sensor-2/telemetry", t.encode()).reason == 0
        c.disconnect()
    assert len(with_data(records(gw, "telemetry"), t.encode())) == 1
    health_ok(gw)


# ---- crash test --------------------------------------------------------------------------------------

CRASH_CLIENTS = 4
CRASH_PAYLOAD = 100
CRASH_INFLIGHT = 50
CRASH_MAX_PER_ROUND = 60000   # below the 16-bit packet id space


def _crash_payload(cid, rnd, n):
    return f"C{cid}|R{rnd}|{n:08d}|".encode().ljust(CRASH_PAYLOAD, b"x")


def _crash_parse(data):
    head = data.split(b"|")
    return int(head[0][1:]), int(head[1][1:]), int(head[2])


class CrashPublisher(threading.Thread):
    """paho v3.1.1, QoS 1 as fast as max_inflight allows; records what was acknowledged."""

    def __init__(self, gw, cid, rnd, stop):
        super().__init__(daemon=True, name=f"mqtt-crash-{cid}")
        self.cid, self.rnd, self.stop_ev = cid, rnd, stop
        self.dev = f"crash-{cid}"
        self.sem = threading.Semaphore(CRASH_INFLIGHT)
        self.mid_to_n: dict[int, list[int]] = {}
        self.ack_mids: list[tuple[int, int]] = []    # (mid, reason) in PUBACK order
        self.ack_lock = threading.Lock()
        self.sent = 0
        self.error = None
        self.c = Paho(gw, self.dev, version=V3, max_inflight=CRASH_INFLIGHT, connect=False)
        self.c.publish_hook = self._acked
        self.c.connect()

    def _acked(self, mid, reason):
        with self.ack_lock:
            self.ack_mids.append((mid, reason))
        self.sem.release()

    def run(self):
        topic = f"devices/{self.dev}/telemetry"
        try:
            while not self.stop_ev.is_set() and self.sent < CRASH_MAX_PER_ROUND:
                if not self.sem.acquire(timeout=0.1):
                    continue
                n = self.sent
                # (no lock around publish(): paho runs on_publish under its own message mutex)
                info = self.c.c.publish(topic, _crash_payload(self.cid, self.rnd, n), qos=1)
                if info.rc != paho_client.MQTT_ERR_SUCCESS:
                    self.sem.release()
                    break
                self.mid_to_n.setdefault(info.mid, []).append(n)   # resolved after the round
                self.sent += 1
        except Exception as e:  # connection lost at the kill
            self.error = repr(e)

    def acked_ns(self) -> list[int]:
        """The payload numbers whose PUBACK arrived, in PUBACK order."""
        with self.ack_lock:
            pending = {mid: list(ns) for mid, ns in self.mid_to_n.items()}
            out = []
            for mid, reason in self.ack_mids:
                assert reason == 0, f"{self.dev}: PUBACK reason {reason:#x}"
                ns = pending.get(mid)
                assert ns, f"{self.dev}: PUBACK for unknown packet id {mid}"
                out.append(ns.pop(0))
            return out


def _crash_verify(gw, acked, sent, label):
    per_shard = read_all(gw.client(), "telemetry")
    problems = []
    counts = {}
    for sid, recs in per_shard.items():
        order = {}
        for r in recs:
            try:
                cid, rnd, n = _crash_parse(r["Data"])
            except Exception:
                problems.append(f"corrupt record {r['Data'][:40]!r} in {sid}")
                continue
            key = (cid, rnd, n)
            if r["Data"] != _crash_payload(cid, rnd, n):
                problems.append(f"record {key} altered: {r['Data'][:60]!r}")
            if r["PartitionKey"] != f"crash-{cid}":
                problems.append(f"record {key} has partition key {r['PartitionKey']!r}")
            if (cid, rnd) not in sent or n >= sent[(cid, rnd)]:
                problems.append(f"record {key} was never published")
            counts[key] = counts.get(key, 0) + 1
            if counts[key] == 1:
                order.setdefault((cid, rnd), []).append(n)
        for (cid, rnd), ns in order.items():
            bad = [(a, b) for a, b in zip(ns, ns[1:]) if a >= b]
            if bad:
                problems.append(f"client {cid} round {rnd} out of publish order in {sid}, e.g. {bad[:3]}")
    shards_of = {}
    for sid, recs in per_shard.items():
        for r in recs:
            shards_of.setdefault(r["PartitionKey"], set()).add(sid)
    for k, sids in shards_of.items():
        if len(sids) > 1:
            problems.append(f"partition key {k} in several shards: {sids}")
    lost, dup = [], []
    for (cid, rnd), ns in acked.items():
        for n in ns:
            c = counts.get((cid, rnd, n), 0)
            if c == 0:
                lost.append((cid, rnd, n))
            elif c > 1:
                dup.append(((cid, rnd, n), c))
    total = sum(len(v) for v in acked.values())
    assert not lost, f"{label}: {len(lost)} of {total} acknowledged publishes lost, e.g. {lost[:5]}"
    assert not dup, f"{label}: {len(dup)} acknowledged publishes stored more than once, e.g. {dup[:5]}"
    assert not problems, f"{label}: {len(problems)} problems: {problems[:8]}"
    return total, sum(counts.values())


@pytest.mark.timeout(240)
def test_sigkill_loses_no_acknowledged_publish(gateway_factory):
    gw = mqtt_gateway(gateway_factory, name="mqtt-crash",
                      devices={f"crash-{i}": {} for i in range(CRASH_CLIENTS)})
    acked, sent, stats = {}, {}, []
    for rnd in range(2):
        stop = threading.Event()
        pubs = [CrashPublisher(gw, cid, rnd, stop) for cid in range(CRASH_CLIENTS)]
        for p in pubs:
            p.start()
        # Load for ~2 s once every client has its first PUBACK (a sentinel, not a sleep).
        wait_for(lambda: all(p.ack_mids for p in pubs), 60, "a PUBACK for every client")
        time.sleep(2.0)
        gw.kill()
        stop.set()
        for p in pubs:
            p.join(20)
            assert not p.is_alive(), f"{p.name} still publishing 20 s after the kill"
            p.c.close()
        order_problems = []
        for p in pubs:
            ns = p.acked_ns()
            sent[(p.cid, rnd)] = p.sent
            acked[(p.cid, rnd)] = ns
            # MQTT 3.1.1 4.6: PUBACKs come in the order of the PUBLISHes.
            if ns != list(range(len(ns))):
                order_problems.append((p.dev, ns[:10], len(ns)))
        n_acked = sum(len(acked[(c, rnd)]) for c in range(CRASH_CLIENTS))
        assert all(acked[(c, rnd)] for c in range(CRASH_CLIENTS)), \
            f"round {rnd}: some client got no PUBACK: { {c: len(acked[(c, rnd)]) for c in range(CRASH_CLIENTS)} }"

        t0 = time.monotonic()
        start_mqtt(gw, timeout=60)
        restart_s = time.monotonic() - t0
        total, stored = _crash_verify(gw, acked, sent, f"after kill #{rnd + 1}")
        stats.append(dict(round=rnd, acked=n_acked, sent=sum(sent[(c, rnd)] for c in range(CRASH_CLIENTS)),
                          acked_total=total, stored=stored, restart_s=round(restart_s, 2)))
        assert not order_problems, f"round {rnd}: PUBACKs not in publish order: {order_problems}"
    print("mqtt crash test stats:", stats)
    health_ok(gw)
