"""SigV4 authentication: with [[api.credentials]] configured, and without."""

import pytest
import requests

from kutil import (CBOR_CT, TEST_KEY, TEST_SECRET_ENV, assert_raw_error, create_stream,
                   decode_body, expect_error, unique)

SECRET = "kinedge-test-secret-7f3a9c"


@pytest.fixture(scope="module")
def auth_gw(module_gateway_factory):
    return module_gateway_factory(credentials=True, env={TEST_SECRET_ENV: SECRET}, name="auth")


def test_right_secret_works(auth_gw):
    c = auth_gw.client(secret=SECRET)
    name = unique("auth")
    create_stream(c, name, 1)
    r = c.put_record(StreamName=name, Data=b"signed", PartitionKey="k")
    it = c.get_shard_iterator(StreamName=name, ShardId=r["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    assert [x["Data"] for x in c.get_records(ShardIterator=it)["Records"]] == [b"signed"]
    assert name in c.list_streams()["StreamNames"]


def test_wrong_secret(auth_gw):
    c = auth_gw.client(secret=SECRET + "x")
    expect_error("InvalidSignatureException", c.list_streams)
    expect_error("InvalidSignatureException", c.create_stream, StreamName=unique("nope"), ShardCount=1)
    ok = auth_gw.client(secret=SECRET)
    assert not [n for n in ok.list_streams(Limit=10000)["StreamNames"] if n.startswith("nope-")], \
        "a request with a bad signature must not be carried out"


def test_unknown_key_id(auth_gw):
    c = auth_gw.client(key="AKIDUNKNOWN0000", secret=SECRET)
    expect_error("UnrecognizedClientException", c.list_streams)


def test_unsigned_request(auth_gw):
    r = auth_gw.raw("ListStreams", {}, sign=False)
    assert_raw_error(r, "MissingAuthenticationTokenException")
    r = auth_gw.raw("ListStreams", {}, content_type=CBOR_CT, sign=False)
    assert_raw_error(r, "MissingAuthenticationTokenException", json_only=False)


def test_signed_raw_request(auth_gw):
    r = auth_gw.raw("ListStreams", {}, secret=SECRET)
    assert r.status_code == 200, r.text
    r = auth_gw.raw("ListStreams", {}, content_type=CBOR_CT, secret=SECRET)
    assert r.status_code == 200, r.content[:300]
    assert "StreamNames" in decode_body(r)


def test_body_changed_after_signing(auth_gw):
    """The signature covers the body: a body altered after signing is refused."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = f"{auth_gw.url}/"
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "Kinesis_20131202.ListStreams"}
    req = AWSRequest(method="POST", url=url, data=b'{"Limit": 5}', headers=headers)
    SigV4Auth(Credentials(TEST_KEY, SECRET), "kinesis", "us-east-1").add_auth(req)
    signed = dict(req.headers.items())
    good = requests.post(url, data=b'{"Limit": 5}', headers=signed, timeout=10)
    assert good.status_code == 200, good.text
    bad = requests.post(url, data=b'{"Limit": 6}', headers=signed, timeout=10)
    assert_raw_error(bad, "InvalidSignatureException")
    # and the signed target header too
    tampered = dict(signed, **{"X-Amz-Target": "Kinesis_20131202.DescribeLimits"})
    bad = requests.post(url, data=b'{"Limit": 5}', headers=tampered, timeout=10)
    assert_raw_error(bad, "InvalidSignatureException")


def test_health_needs_no_auth(auth_gw):
    assert requests.get(f"{auth_gw.url}/health", timeout=5).status_code == 200


def test_no_credentials_configured_accepts_any_signature(gw):
    for key, secret in (("AKIDWHATEVER", "anything"), ("x", "y"), (TEST_KEY, "wrong")):
        c = gw.client(key=key, secret=secret)
        assert "StreamNames" in c.list_streams()
    name = unique("open")
    create_stream(gw.client(key="AKIDWHATEVER", secret="anything"), name, 1)


def test_no_credentials_configured_accepts_unsigned(gw):
    r = gw.raw("ListStreams", {}, sign=False)
    assert r.status_code == 200, r.text


def test_status_needs_a_signature_when_credentials_are_configured(auth_gw):
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = f"{auth_gw.url}/status"
    assert_raw_error(requests.get(url, timeout=5), "MissingAuthenticationTokenException")
    req = AWSRequest(method="GET", url=url)
    SigV4Auth(Credentials(TEST_KEY, SECRET), "kinesis", "us-east-1").add_auth(req)
    r = requests.get(url, headers=dict(req.headers.items()), timeout=5)
    assert r.status_code == 200, r.text
    assert "streams" in r.json() and "writer" in r.json()
    assert requests.get(f"{auth_gw.url}/ready", timeout=5).status_code == 200
