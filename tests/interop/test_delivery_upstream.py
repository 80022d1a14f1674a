"""Delivery to upstream services: Kinesis and Firehose (moto's server) and an MQTT broker
(mosquitto), each started by the test on a loopback port."""

import os
import shutil
import subprocess
import threading
import time

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from firehose_receiver import assert_per_key_order, delivery, delivery_toml, put_keyed, stream_toml, wait_for
from kutil import _ALL_PROCS, _die_with_parent, free_port, unique

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
NL = {"type": "append_delimiter"}


def test_kinesis_upstream_keeps_keys_and_order(gateway_factory, moto):
    up = unique("up")
    moto.create_stream(up, 2)
    cfg = stream_toml("s", 2) + delivery_toml("to-kinesis", moto.kinesis_destination(up), source="s")
    gw = gateway_factory(cfg, env=moto.gateway_env())
    put = put_keyed(gw.client(), "s", 300, keys=7)
    recs = moto.wait_stream_records(up, 300)
    got = [(r["Data"], r["PartitionKey"]) for r in recs]
    assert set(got) == set(put), "upstream records (data, partition key) differ from what was put"
    # per shard of the upstream stream, per key: order kept (first occurrences)
    for shard in {r["ShardId"] for r in recs}:
        assert_per_key_order([r["Data"] for r in recs if r["ShardId"] == shard], f"upstream {shard}")
    d = wait_for(lambda: (x := delivery(gw, "to-kinesis"))["delivered_records"] >= 300 and x,
                 what="delivered_records 300")
    assert d["destination"]["type"] == "kinesis", d


def test_firehose_upstream(gateway_factory, moto):
    bucket = moto.create_bucket(unique("fhup"))
    fh = unique("fh")
    moto.create_firehose_to_s3(fh, bucket, prefix="fh/")
    cfg = stream_toml("s", 1) + delivery_toml("to-firehose", moto.firehose_destination(fh), source="s",
                                              processors=[NL])
    gw = gateway_factory(cfg, env=moto.gateway_env())
    want = [f"fh-record-{i:04d}".encode() for i in range(700)]  # more than one PutRecordBatch
    c = gw.client()
    for lo in range(0, 700, 350):
        c.put_records(StreamName="s", Records=[{"Data": d, "PartitionKey": "p"} for d in want[lo:lo + 350]])
    objs = moto.wait_objects(bucket, lambda o: sum(b.count(b"\n") for b in o.values()) >= 700, prefix="fh/")
    got = [ln for b in objs.values() for ln in b.split(b"\n") if ln]
    assert sorted(got) == sorted(want)


class Mosquitto:
    def __init__(self, tmp_path):
        self.port = free_port()
        conf = tmp_path / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self.log = open(tmp_path / "mosquitto.log", "wb")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=self.log, stderr=subprocess.STDOUT,
                                     preexec_fn=_die_with_parent)
        _ALL_PROCS.append(self.proc)
        from mqttutil import wait_port
        wait_port(self.port, 10)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()


@pytest.fixture
def mosquitto(tmp_path):
    if not shutil.which(MOSQUITTO) and not os.path.exists(MOSQUITTO):
        pytest.fail("mosquitto is not installed (Debian package mosquitto; scripts/install-deps --test)")
    m = Mosquitto(tmp_path)
    yield m
    m.close()


def test_mqtt_upstream_gets_every_record(gateway_factory, mosquitto):
    got, lock, subscribed = [], threading.Lock(), threading.Event()
    sub = paho.Client(CallbackAPIVersion.VERSION2, client_id=unique("sub"))
    sub.on_connect = lambda c, u, f, rc, p: c.subscribe("up/#", qos=1)
    sub.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()

    def on_message(c, u, msg):
        with lock:
            got.append((msg.topic, msg.payload))
    sub.on_message = on_message
    sub.connect("127.0.0.1", mosquitto.port, keepalive=30)
    sub.loop_start()
    try:
        assert subscribed.wait(10), "subscriber not subscribed to the local mosquitto"
        dest = {"type": "mqtt", "url": f"mqtt://127.0.0.1:{mosquitto.port}", "topic": "up/{partition_key}",
                "client_id": unique("kinedge")}
        cfg = stream_toml("s", 2) + delivery_toml("to-mqtt", dest, source="s")
        gw = gateway_factory(cfg)
        put = put_keyed(gw.client(), "s", 200, keys=4)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with lock:
                if len({p for _, p in got}) >= 200:
                    break
            time.sleep(0.1)
        with lock:
            msgs = list(got)
        assert {(t, p) for t, p in msgs} == {(f"up/{k}", d) for d, k in put}, \
            f"{len(msgs)} messages; want every record on up/<partition key>"
        assert_per_key_order([p for _, p in msgs], "mqtt")
    finally:
        sub.loop_stop()
        sub.disconnect()
