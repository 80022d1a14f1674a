"""Encryption at rest (StartStreamEncryption / StopStreamEncryption) with boto3 against the real
binary: records of an encrypted stream read back as written, are reported as KMS, and are not in
the database file (the stolen SD card); plaintext streams and records written before or after
encryption stay plaintext; key files; errors as AWS answers them."""
import os
import stat

import pytest

from kutil import create_stream, expect_error, read_shard

KEY = "alias/aws/kinesis"


def _db(gw) -> bytes:
    return (gw.data_dir / "streams.redb").read_bytes()


def _payloads(c, stream):
    recs, _ = read_shard(c, stream, "shardId-000000000000")
    return recs


def test_encrypted_stream_is_not_in_the_database_file_and_reads_back(gateway_factory):
    gw = gateway_factory(name="enc")
    c = gw.client()
    create_stream(c, "plain", 1)
    create_stream(c, "secret", 1)
    c.put_record(StreamName="secret", Data=b"BEFORE-ENCRYPTION-7d1f", PartitionKey="k")

    c.start_stream_encryption(StreamName="secret", EncryptionType="KMS", KeyId=KEY)
    d = c.describe_stream(StreamName="secret")["StreamDescription"]
    assert d["EncryptionType"] == "KMS" and d["KeyId"] == KEY
    s = c.describe_stream_summary(StreamName="secret")["StreamDescriptionSummary"]
    assert s["EncryptionType"] == "KMS" and s["KeyId"] == KEY
    p = c.describe_stream_summary(StreamName="plain")["StreamDescriptionSummary"]
    assert p["EncryptionType"] == "NONE" and "KeyId" not in p

    key_file = gw.data_dir / "keys" / "alias%2Faws%2Fkinesis.key"
    assert key_file.stat().st_size == 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    out = c.put_record(StreamName="secret", Data=b"ENCRYPTED-PAYLOAD-4c2a", PartitionKey="k")
    assert out["EncryptionType"] == "KMS"
    big = b"ENCRYPTED-LARGE-91be" * 20_000  # 400 KB: a large record, stored in chunks
    batch = c.put_records(StreamName="secret", Records=[
        {"Data": b"ENCRYPTED-BATCH-%03d" % i, "PartitionKey": f"p{i}"} for i in range(50)
    ] + [{"Data": big, "PartitionKey": "big"}])
    assert batch["FailedRecordCount"] == 0 and batch["EncryptionType"] == "KMS"
    out = c.put_record(StreamName="plain", Data=b"PLAINTEXT-PAYLOAD-3e9b", PartitionKey="k")
    assert out["EncryptionType"] == "NONE"

    def check(client):
        recs = _payloads(client, "secret")
        assert [r["Data"] for r in recs] == (
            [b"BEFORE-ENCRYPTION-7d1f", b"ENCRYPTED-PAYLOAD-4c2a"]
            + [b"ENCRYPTED-BATCH-%03d" % i for i in range(50)] + [big])
        assert "EncryptionType" not in recs[0] or recs[0]["EncryptionType"] == "NONE"
        assert all(r.get("EncryptionType") == "KMS" for r in recs[1:])
        assert [r["Data"] for r in _payloads(client, "plain")] == [b"PLAINTEXT-PAYLOAD-3e9b"]

    check(c)
    gw.stop()
    db = _db(gw)
    assert b"PLAINTEXT-PAYLOAD-3e9b" in db      # a plaintext stream is readable from the card
    assert b"BEFORE-ENCRYPTION-7d1f" in db      # so is what was written before the switch
    assert b"ENCRYPTED-PAYLOAD" not in db        # not what was written after it
    assert b"ENCRYPTED-BATCH" not in db
    assert b"ENCRYPTED-LARGE" not in db

    gw.start()
    c = gw.client()
    check(c)

    c.stop_stream_encryption(StreamName="secret", EncryptionType="KMS", KeyId=KEY)
    assert c.describe_stream(StreamName="secret")["StreamDescription"]["EncryptionType"] == "NONE"
    out = c.put_record(StreamName="secret", Data=b"AFTER-STOP-55aa", PartitionKey="k")
    assert out["EncryptionType"] == "NONE"
    recs = _payloads(c, "secret")
    assert recs[-1]["Data"] == b"AFTER-STOP-55aa" and "EncryptionType" not in recs[-1]
    assert recs[1]["EncryptionType"] == "KMS"
    # Stopping again, or a stream that never was encrypted: nothing to do.
    c.stop_stream_encryption(StreamName="secret", EncryptionType="KMS", KeyId=KEY)
    gw.stop()
    assert b"AFTER-STOP-55aa" in _db(gw)


def test_a_lost_key_is_a_clear_error_not_garbage(gateway_factory):
    gw = gateway_factory(name="lost")
    c = gw.client()
    create_stream(c, "s", 1)
    arn = c.describe_stream_summary(StreamName="s")["StreamDescriptionSummary"]["StreamARN"]
    c.start_stream_encryption(StreamARN=arn, EncryptionType="KMS", KeyId="alias/team-key")
    c.put_record(StreamName="s", Data=b"x" * 10, PartitionKey="k")
    gw.stop()
    (gw.data_dir / "keys" / "alias%2Fteam-key.key").unlink()
    gw.start()
    c = gw.client()
    it = c.get_shard_iterator(StreamName="s", ShardId="shardId-000000000000",
                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    expect_error("KMSNotFoundException", c.get_records, ShardIterator=it, mentions=["alias/team-key"])
    # A new record cannot be sealed either: refused with the key named, nothing stored.
    expect_error("KMSNotFoundException", c.put_record, StreamName="s", Data=b"y",
                 PartitionKey="k", mentions=["alias/team-key"])


def test_without_auto_creation_an_unknown_key_is_not_found(gateway_factory):
    gw = gateway_factory(name="strict", start=False)
    text = gw.config_path.read_text()
    gw.config_path.write_text(text.replace("[storage]\n", "[storage]\nauto_create_keys = false\n", 1))
    gw.start()
    c = gw.client()
    create_stream(c, "s", 1)
    expect_error("KMSNotFoundException", c.start_stream_encryption, StreamName="s",
                 EncryptionType="KMS", KeyId="alias/missing", mentions=["alias/missing"])
    keys = gw.data_dir / "keys"
    keys.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(keys / "alias%2Fprovisioned.key", os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, os.urandom(32))
    os.close(fd)
    c.start_stream_encryption(StreamName="s", EncryptionType="KMS", KeyId="alias/provisioned")
    c.put_record(StreamName="s", Data=b"ok", PartitionKey="k")
    assert _payloads(c, "s")[0]["Data"] == b"ok"


@pytest.mark.parametrize("op", ["start_stream_encryption", "stop_stream_encryption"])
def test_errors(gw, client, raw_client, op):
    create_stream(client, f"e-{op}", 1)
    fn = getattr(raw_client, op)
    expect_error("ResourceNotFoundException", getattr(client, op), StreamName="nope-enc",
                 EncryptionType="KMS", KeyId=KEY, mentions=["nope-enc"])
    expect_error("ValidationException", fn, StreamName=f"e-{op}", EncryptionType="AES",
                 KeyId=KEY, mentions=["encryptionType"])
    expect_error("InvalidArgumentException", fn, StreamName=f"e-{op}", EncryptionType="NONE",
                 KeyId=KEY, mentions=["KMS"])
    expect_error("ValidationException", fn, StreamName=f"e-{op}", EncryptionType="KMS",
                 mentions=["keyId"])
    expect_error("ValidationException", fn, StreamName=f"e-{op}", KeyId=KEY,
                 mentions=["encryptionType"])
    if op == "start_stream_encryption":
        expect_error("InvalidArgumentException", fn, StreamName=f"e-{op}", EncryptionType="KMS",
                     KeyId="arn:aws:s3:::bucket", mentions=["KMS"])


def test_key_arn_and_alias_name_the_same_key(gw, client):
    create_stream(client, "arn-key", 1)
    arn = "arn:aws:kms:us-east-1:000000000000:alias/shared-key"
    client.start_stream_encryption(StreamName="arn-key", EncryptionType="KMS", KeyId=arn)
    assert client.describe_stream(StreamName="arn-key")["StreamDescription"]["KeyId"] == arn
    client.put_record(StreamName="arn-key", Data=b"a", PartitionKey="k")
    client.start_stream_encryption(StreamName="arn-key", EncryptionType="KMS", KeyId="alias/shared-key")
    client.put_record(StreamName="arn-key", Data=b"b", PartitionKey="k")
    # Another key: blocks keep the key they were written with.
    client.start_stream_encryption(StreamName="arn-key", EncryptionType="KMS", KeyId="team-key-2")
    assert client.describe_stream(StreamName="arn-key")["StreamDescription"]["KeyId"] == "team-key-2"
    client.put_record(StreamName="arn-key", Data=b"c", PartitionKey="k")
    recs = _payloads(client, "arn-key")
    assert [r["Data"] for r in recs] == [b"a", b"b", b"c"]
    assert all(r["EncryptionType"] == "KMS" for r in recs)
    assert (gw.data_dir / "keys" / "team-key-2.key").exists()
    assert (gw.data_dir / "keys" / "alias%2Fshared-key.key").exists()


def test_subscribers_get_encrypted_records_decrypted(gw, client):
    """Enhanced fan-out reads through the same store path: SubscribeToShard events carry the
    records in clear, marked KMS."""
    create_stream(client, "fo-enc", 1)
    client.put_record(StreamName="fo-enc", Data=b"clear-before", PartitionKey="k")
    client.start_stream_encryption(StreamName="fo-enc", EncryptionType="KMS", KeyId=KEY)
    client.put_record(StreamName="fo-enc", Data=b"sealed-after", PartitionKey="k")
    arn = client.describe_stream_summary(StreamName="fo-enc")["StreamDescriptionSummary"]["StreamARN"]
    consumer = client.register_stream_consumer(StreamARN=arn, ConsumerName="reader")["Consumer"]
    sub = client.subscribe_to_shard(ConsumerARN=consumer["ConsumerARN"], ShardId="shardId-000000000000",
                                    StartingPosition={"Type": "TRIM_HORIZON"})
    records = []
    for event in sub["EventStream"]:
        records.extend(event["SubscribeToShardEvent"]["Records"])
        if len(records) >= 2:
            break
    assert [r["Data"] for r in records] == [b"clear-before", b"sealed-after"]
    assert "EncryptionType" not in records[0] or records[0]["EncryptionType"] == "NONE"
    assert records[1]["EncryptionType"] == "KMS"
