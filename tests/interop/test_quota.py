"""Per-stream size quotas from the config file: reject_new and overwrite_oldest."""

from kutil import MiB, create_stream, expect_error, flatten, read_all, unique

REC = 10 * 1024  # 10 KiB payloads
QUOTA_WORDS = ["quota", "max_bytes", "full", "2MiB", "2097152", "limit", "exceed"]


def stream_cfg(name, max_bytes, on_full, shards=1):
    return f"""
[[streams]]
name = "{name}"
shards = {shards}
retention_hours = 24
max_bytes = "{max_bytes}"
on_full = "{on_full}"
"""


def test_reject_new(gateway_factory):
    gw = gateway_factory(stream_cfg("q", "2MiB", "reject_new"), name="reject")
    c = gw.client()
    s = c.describe_stream_summary(StreamName="q")["StreamDescriptionSummary"]
    assert (s["StreamStatus"], s["OpenShardCount"], s["RetentionPeriodHours"]) == ("ACTIVE", 1, 24)

    acked = []  # (data, seq)
    failed_resp = None
    for b in range(12):  # 12 x 500 KiB = 6 MiB, three times the quota
        batch = [{"Data": f"b{b:02d}r{i:02d}".encode().ljust(REC, b"."), "PartitionKey": f"k{i}"} for i in range(50)]
        resp = c.put_records(StreamName="q", Records=batch)
        assert len(resp["Records"]) == 50
        n_err = sum(1 for r in resp["Records"] if "ErrorCode" in r)
        assert resp["FailedRecordCount"] == n_err
        for req, res in zip(batch, resp["Records"]):
            if "ErrorCode" not in res:
                acked.append((req["Data"], res["SequenceNumber"]))
        if n_err:
            failed_resp = resp
            break
    assert failed_resp is not None, "6 MiB went into a 2 MiB reject_new stream without a single failure"
    errs = [r for r in failed_resp["Records"] if "ErrorCode" in r]
    for r in errs:
        assert r["ErrorCode"] == "ProvisionedThroughputExceededException", r
        assert r.get("ErrorMessage"), r
        assert any(w.lower() in r["ErrorMessage"].lower() for w in QUOTA_WORDS), \
            f"ErrorMessage {r['ErrorMessage']!r} should name the quota"
        assert "SequenceNumber" not in r, f"a failed entry carries a SequenceNumber: {r}"
    flags = ["ErrorCode" in r for r in failed_resp["Records"]]
    first = flags.index(True)
    assert all(flags[first:]), f"with reject_new and equal-sized records, failures should be a suffix: {flags}"

    acked_bytes = sum(len(d) + 2 for d, _ in acked)
    assert acked_bytes <= 2 * MiB, f"{acked_bytes} bytes acknowledged into a 2 MiB stream"
    assert acked_bytes >= 1 * MiB, f"only {acked_bytes} bytes acknowledged before a 2 MiB quota refused data"

    e = expect_error("ProvisionedThroughputExceededException", c.put_record, StreamName="q",
                     Data=b"z" * REC, PartitionKey="k", mentions=QUOTA_WORDS)
    assert e["ResponseMetadata"]["HTTPStatusCode"] == 400

    # everything acknowledged is there, nothing else
    got = flatten(read_all(c, "q"))
    assert [(r["Data"], r["SequenceNumber"]) for r in got] == acked

    # the quota is per stream: another stream still takes data
    other = unique("free")
    create_stream(c, other, 1)
    c.put_record(StreamName=other, Data=b"z" * REC, PartitionKey="k")


def test_overwrite_oldest(gateway_factory):
    gw = gateway_factory(stream_cfg("ring", "1MiB", "overwrite_oldest"), name="ring")
    c = gw.client()
    put = []
    for b in range(6):  # 300 x 10 KiB = 3 MiB into a 1 MiB stream
        batch = [{"Data": f"b{b}r{i:02d}".encode().ljust(REC, b"-"), "PartitionKey": f"k{i}"} for i in range(50)]
        resp = c.put_records(StreamName="ring", Records=batch)
        assert resp["FailedRecordCount"] == 0, [r for r in resp["Records"] if "ErrorCode" in r][:3]
        put += [(q["Data"], r["SequenceNumber"]) for q, r in zip(batch, resp["Records"])]
    r = c.put_record(StreamName="ring", Data=b"last".ljust(REC, b"!"), PartitionKey="k")
    put.append((b"last".ljust(REC, b"!"), r["SequenceNumber"]))

    got = [(x["Data"], x["SequenceNumber"]) for x in flatten(read_all(c, "ring"))]
    assert got, "overwrite_oldest stream reads back empty"
    assert got[-1] == put[-1], "the newest record must be kept"
    assert put[0] not in got, "TRIM_HORIZON still returns the first record after 3x the quota"
    # what is left is a contiguous tail of what was put
    assert got == put[len(put) - len(got):], "retained records are not a contiguous tail of the puts"
    kept = sum(len(d) + 1 for d, _ in got)
    assert kept <= MiB, f"{kept} bytes retained in a 1 MiB stream"
