"""Protocol errors close the connection: a PUBLISH with a malformed topic (invalid UTF-8, NUL,
a wildcard, empty without a topic alias, a topic alias when the gateway allows none) and a
PUBREL with wrong fixed-header flags. MQTT 5 clients get a DISCONNECT with the reason code the
spec gives for each case first. Byte-level client (mqttutil.RawMqtt) for exact codes.
"""

import struct

import pytest

from mqttutil import DISCONNECT, PUBREL, RawMqtt, health_ok, mqtt_gateway, mstr, packet, props, varint

V3, V5 = 4, 5
PUBLISH = 3


@pytest.fixture(scope="module")
def gw(module_gateway_factory):
    return mqtt_gateway(module_gateway_factory, name="protocol", devices={"sensor-1": {}})


def _publish(topic: bytes, version: int, properties: bytes | None = None) -> bytes:
    body = mstr(topic) + struct.pack("!H", 1)
    if version == V5:
        body += props() if properties is None else varint(len(properties)) + properties
    return packet(PUBLISH, 0x02, body + b"payload")   # QoS 1


# (topic, properties, MQTT 5 DISCONNECT reason)
TOPICS = {
    "invalid-utf8": (b"devices/sensor-1/\xff\xfe", None, 0x81),
    "nul": (b"devices/sensor-1/a\x00b", None, 0x81),
    "wildcard-plus": (b"devices/sensor-1/+", None, 0x90),
    "wildcard-hash": (b"devices/sensor-1/#", None, 0x90),
    "empty-no-alias": (b"", None, 0x82),
    "topic-alias": (b"devices/sensor-1/telemetry", b"\x23" + struct.pack("!H", 1), 0x94),
}


def _login(gw, version):
    c = RawMqtt(gw.mqtt_port, version)
    c.login("sensor-1", gw.secrets["sensor-1"])
    return c


def _still_serving(gw, version):
    health_ok(gw)
    with _login(gw, version) as c:
        assert c.is_open(), "a fresh connection does not answer PINGREQ"


@pytest.mark.parametrize("case", list(TOPICS))
@pytest.mark.parametrize("version", [V3, V5], ids=["v311", "v5"])
def test_malformed_publish_topic_closes_the_connection(gw, version, case):
    topic, properties, reason = TOPICS[case]
    if version == V3 and properties is not None:
        pytest.skip("3.1.1 has no properties")
    with _login(gw, version) as c:
        c.send(_publish(topic, version, properties))
        got = c.wait_closed(timeout=15)
        if version == V5:
            assert got and got[-1].type == DISCONNECT and got[-1].reason == reason, \
                f"{case}: expected DISCONNECT {reason:#x} then close, got {got}"
        else:
            assert not got, f"{case}: expected the connection closed without an answer, got {got}"
    _still_serving(gw, version)


@pytest.mark.parametrize("flags", [0x0, 0x3])
@pytest.mark.parametrize("version", [V3, V5], ids=["v311", "v5"])
def test_pubrel_with_wrong_flags_closes_the_connection(gw, version, flags):
    with _login(gw, version) as c:
        c.send(packet(PUBREL, flags, struct.pack("!H", 7)))
        got = c.wait_closed(timeout=15)
        if version == V5:
            assert got and got[-1].type == DISCONNECT and got[-1].reason == 0x81, \
                f"expected DISCONNECT 0x81 (malformed) then close, got {got}"
        else:
            assert not got, f"expected the connection closed without an answer, got {got}"
    _still_serving(gw, version)
