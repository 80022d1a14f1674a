"""QoS 2 exactly-once across a reconnect: a persistent session's PUBLISH QoS 2, acknowledged
with PUBREC, resent with DUP on a new connection before PUBREL, is stored once.

Byte-level client (mqttutil.RawMqtt); the records are read back with the Kinesis API.
"""

import struct
import uuid

import pytest

from kutil import flatten, read_all
from mqttutil import PUBACK, PUBCOMP, PUBREC, PUBREL, mqtt_gateway, packet, raw_login

V3, V5 = 4, 5
TOPIC = "devices/sensor-1/telemetry"


@pytest.fixture(scope="module")
def gw(module_gateway_factory):
    return mqtt_gateway(module_gateway_factory, name="qos2", devices={"sensor-1": {}})


def _stored(gw, needle: bytes) -> int:
    return len([r for r in flatten(read_all(gw.client(), "telemetry")) if needle in r["Data"]])


def _sentinel(gw, version, **session):
    """A QoS 1 publish acknowledged after everything before it on the stream was committed."""
    with raw_login(gw, "sensor-1", version, **session) as c:
        assert c.publish_qos1(TOPIC, b"sentinel-" + uuid.uuid4().hex.encode()).reason == 0
        c.disconnect()


# (version, CONNECT arguments of a session that outlives its connection)
PERSISTENT = {
    "v311-clean-session-false": (V3, dict(clean=False)),
    "v5-clean-start-false-expiry": (V5, dict(clean=False, session_expiry=600)),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", list(PERSISTENT))
def test_qos2_resent_after_reconnect_is_stored_once(gw, case):
    version, session = PERSISTENT[case]
    payload = b"exactly-once-" + uuid.uuid4().hex.encode()
    pid = 321

    first = raw_login(gw, "sensor-1", version, **session)
    first.publish(TOPIC, payload, qos=2, pid=pid)
    assert first.expect(PUBREC, pid=pid).reason in (None, 0)
    first.kill()   # no PUBREL, no DISCONNECT: the client will resend

    with raw_login(gw, "sensor-1", version, **session) as again:
        again.publish(TOPIC, payload, qos=2, pid=pid, dup=True)
        rec = again.expect(PUBREC, pid=pid)
        assert rec.reason in (None, 0), f"the resent PUBLISH got PUBREC {rec}"
        again.send(packet(PUBREL, 0x2, struct.pack("!H", pid)))
        comp = again.expect(PUBCOMP, pid=pid)
        assert comp.reason in (None, 0), f"PUBREL of the resent PUBLISH: {comp}"
        again.disconnect()

    _sentinel(gw, version, **session)
    assert _stored(gw, payload) == 1, "the QoS 2 publish resent after a reconnect was stored twice"


@pytest.mark.timeout(120)
def test_a_clean_session_forgets_unreleased_ids(gw):
    """After a clean start the same packet id is a new message (MQTT 5 §4.3.3: the session,
    and with it the unreleased ids, ended)."""
    payload = b"clean-" + uuid.uuid4().hex.encode()
    pid = 654
    first = raw_login(gw, "sensor-1", V3, clean=False)
    first.publish(TOPIC, payload, qos=2, pid=pid)
    first.expect(PUBREC, pid=pid)
    first.kill()

    with raw_login(gw, "sensor-1", V3, clean=True) as again:
        again.publish(TOPIC, payload, qos=2, pid=pid)
        again.expect(PUBREC, pid=pid)
        again.send(packet(PUBREL, 0x2, struct.pack("!H", pid)))
        assert again.expect(PUBCOMP, pid=pid).reason in (None, 0)
        again.publish(TOPIC, b"after", qos=1, pid=pid)
        assert again.expect(PUBACK, pid=pid).reason in (None, 0)
        again.disconnect()
    assert _stored(gw, payload) == 2
