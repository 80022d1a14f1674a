"""Delivery to an HTTP endpoint: the Firehose HTTP endpoint contract, retries with the same
request id, 413 and exhausted retry durations to the local dead-letter directory."""


import pytest

from firehose_receiver import (assert_per_key_order, dead_letters, delivery, delivery_toml, http_destination,
                               put_keyed, stream_toml, wait_for)


def _gw(gateway_factory, rx, name="to-http", shards=2, compression="gzip", retry_duration_s=60, env=None,
        **dest_extra):
    cfg = stream_toml("s", shards) + delivery_toml(
        name, http_destination(rx, retry_duration_s=retry_duration_s, **dest_extra), source="s",
        compression=compression)
    return gateway_factory(cfg, env=env, name=name)


def test_headers_and_body_per_contract(gateway_factory, receiver):
    attrs = {"site": "greenhouse-2", "gateway": "gw1", "quote": 'a "b" c'}
    rx = receiver(compression="gzip", access_key="key-123/abc=", common_attributes=attrs, delivery_stream="to-http")
    gw = _gw(gateway_factory, rx, access_key_env="KINEDGE_TEST_FH_KEY", common_attributes=attrs,
             env={"KINEDGE_TEST_FH_KEY": "key-123/abc="})
    c = gw.client()
    put = put_keyed(c, "s", 400, keys=6)
    got = rx.wait_records(400)
    rx.assert_clean()
    assert sorted(got) == sorted(d for d, _ in put), "receiver did not get exactly the records put"
    assert len(set(got)) == len(got), "duplicates without a lost confirmation"
    assert_per_key_order(got, "gzip")
    reqs = rx.accepted()
    assert len({r.request_id for r in reqs}) == len(reqs), "two batches share a request id"
    arns = {r.source_arn for r in reqs}
    assert len(arns) == 1, f"Source-Arn changes between requests: {arns}"


def test_uncompressed_with_key_file_and_no_attributes(gateway_factory, receiver, tmp_path):
    rx = receiver(compression="none", access_key="from-a-file", delivery_stream="plain")
    key_file = tmp_path / "fh.key"
    key_file.write_text("from-a-file\n")
    gw = _gw(gateway_factory, rx, name="plain", shards=1, compression="none", access_key_file=str(key_file))
    c = gw.client()
    data = [bytes([i % 256]) * (i % 50 + 1) for i in range(100)] + [b"\x00\xff\n{}"]
    for lo in range(0, len(data), 50):
        c.put_records(StreamName="s", Records=[{"Data": d, "PartitionKey": "p"} for d in data[lo:lo + 50]])
    got = rx.wait_records(len(data))
    rx.assert_clean()
    assert got == data, "single-key records arrive in put order, byte for byte"


def test_500_then_200_retried_with_same_request_id(gateway_factory, receiver):
    rx = receiver(compression="gzip", delivery_stream="to-http")
    rx.script("500", "500")
    gw = _gw(gateway_factory, rx, shards=1)
    put = put_keyed(gw.client(), "s", 20, keys=2)
    got = rx.wait_records(20, timeout=20)
    rx.assert_clean()
    assert sorted(got) == sorted(d for d, _ in put)
    all_reqs = rx.snapshot()
    reqs = [r for r in all_reqs if r.request_id == all_reqs[0].request_id]
    assert [r.status for r in reqs] == [500, 500, 200], \
        f"a retry must keep the request id; attempts: {all_reqs[:5]}"
    assert reqs[0].records == reqs[1].records == reqs[2].records, "a retry must send the same records"
    gap1, gap2 = reqs[1].t - reqs[0].t, reqs[2].t - reqs[1].t
    assert 0.8 <= gap1 <= 3.0, f"first retry after {gap1:.2f}s, expected ~1 s"
    assert 1.6 <= gap2 <= 5.0, f"second retry after {gap2:.2f}s, expected ~2 s (doubling)"
    d = wait_for(lambda: (x := delivery(gw, "to-http"))["delivered_records"] >= 20 and x, what="delivered_records 20")
    assert d["retries"] >= 2, d
    assert d["failed_records"] == 0, d


def test_wrong_request_id_is_not_success(gateway_factory, receiver):
    rx = receiver(compression="gzip", delivery_stream="to-http")
    rx.script("wrong_id")
    gw = _gw(gateway_factory, rx, shards=1)
    put = put_keyed(gw.client(), "s", 10, keys=1)
    got = rx.wait_records(10, timeout=15)
    rx.assert_clean()
    assert got == [d for d, _ in put]
    all_reqs = rx.snapshot()
    reqs = [r for r in all_reqs if r.request_id == all_reqs[0].request_id]
    assert [r.mode for r in reqs] == ["wrong_id", "ok"] and reqs[1].accepted, all_reqs[:4]
    assert reqs[1].records == reqs[0].records


def test_hang_then_drop_is_retried(gateway_factory, receiver):
    rx = receiver(compression="gzip", delivery_stream="to-http", hang_s=2)
    rx.script("hang")
    gw = _gw(gateway_factory, rx, shards=1)
    put = put_keyed(gw.client(), "s", 10, keys=1)
    got = rx.wait_records(10, timeout=20)
    rx.assert_clean()
    assert got == [d for d, _ in put]
    all_reqs = rx.snapshot()
    reqs = [r for r in all_reqs if r.request_id == all_reqs[0].request_id]
    assert [r.mode for r in reqs] == ["hang", "ok"] and reqs[0].status is None and reqs[1].accepted, all_reqs[:4]


def test_413_goes_to_dead_letter_without_retry(gateway_factory, receiver):
    rx = receiver(compression="gzip", delivery_stream="to-http")
    rx.set_mode("413")
    gw = _gw(gateway_factory, rx, shards=1)
    c = gw.client()
    first = put_keyed(c, "s", 5, keys=1, tag="first")

    def all_dead():
        errs = [e for recs in dead_letters(gw, "to-http").values() for e in recs]
        return len(errs) >= 5 and errs
    errs = wait_for(all_dead, timeout=15, what="5 records in dead-letter files")
    assert sorted(e["raw"] for e in errs) == sorted(d for d, _ in first)
    for e in errs:
        assert e["partitionKey"] == "k0", e
        assert e["sequenceNumber"].isdigit(), e
        assert e["errorMessage"], e
    d = delivery(gw, "to-http")
    assert d["failed_records"] >= 5 and d["last_error"] is not None, d
    rx.set_mode("ok")
    # the delivery stream goes on with new records
    second = put_keyed(c, "s", 5, keys=1, tag="second")
    got = rx.wait_records(5, timeout=15)
    assert got == [d for d, _ in second]
    # The sentinel for "no retry" (instead of a sleep): one key, one shard, delivered in order,
    # so a retry of the first batch would have come before the second (and been accepted now).
    ids = [r.request_id for r in rx.snapshot()]
    assert len(ids) == len(set(ids)), f"413 is permanent, but a batch was sent again: {rx.snapshot()}"
    rx.assert_clean()
    assert delivery(gw, "to-http")["failed_records"] >= 5


@pytest.mark.timeout(90)
def test_retry_duration_exhausted_goes_to_dead_letter(gateway_factory, receiver):
    rx = receiver(compression="none", delivery_stream="to-http")
    rx.set_mode("500")
    gw = _gw(gateway_factory, rx, shards=1, compression="none", retry_duration_s=3)
    c = gw.client()
    first = put_keyed(c, "s", 8, keys=2, tag="first")
    wait_for(lambda: delivery(gw, "to-http")["state"] in ("backing_off", "failing"), timeout=10,
             what="backing_off while the receiver answers 500")
    files = wait_for(lambda: dead_letters(gw, "to-http"), timeout=20, what="a dead-letter file after 3 s of 500s")
    errs = [e for recs in files.values() for e in recs]
    assert sorted(e["raw"] for e in errs) == sorted(d for d, _ in first)
    assert all(e["attemptsMade"] >= 2 for e in errs), errs[:2]
    attempts = {}
    for r in rx.snapshot():
        attempts[r.request_id] = attempts.get(r.request_id, 0) + 1
    # 0 s, 1 s, 3 s (7 s is past 3 s): a handful of attempts per batch, not a busy loop
    assert all(2 <= n <= 5 for n in attempts.values()), f"attempts per request id: {attempts}"
    rx.set_mode("ok")
    second = put_keyed(c, "s", 8, keys=2, tag="second")
    got = rx.wait_records(8, timeout=20)
    assert sorted(got) == sorted(d for d, _ in second), "the failed batch must not be delivered again"
    rx.assert_clean()
    d = delivery(gw, "to-http")
    assert d["failed_records"] >= 8, d
