"""The AWS SDK for JavaScript v3 (@aws-sdk/client-kinesis) against the real gateway.

In Node the Kinesis client's default request handler is NodeHttp2Handler: it speaks HTTP/2
only, with prior knowledge over http:// (h2c) and by ALPN over https://. Against an HTTP/1-only
server every call ends in ECONNRESET. These tests run the SDK (tests/interop/js, installed
with `npm ci` by scripts/install-deps --test) with its default handler, an explicit
NodeHttp2Handler, and the HTTP/1.1 NodeHttpHandler, over h2c and over TLS, with SigV4.
"""

import json
import os
import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from kutil import TEST_KEY, TEST_SECRET_ENV, create_stream, unique

JS_DIR = Path(__file__).resolve().parent / "js"
SECRET = "kinedge-js-secret-4e1b"

@pytest.fixture(scope="module", autouse=True)
def sdk_installed():
    if shutil.which("node") is None or not (JS_DIR / "node_modules" / "@aws-sdk" / "client-kinesis").is_dir():
        pytest.fail("node or tests/interop/js/node_modules is missing: run scripts/install-deps --test "
                    "(it runs npm ci in tests/interop/js)")


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA and a server certificate for 127.0.0.1 signed by it."""
    d = tmp_path_factory.mktemp("api-pki")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=kinedge test CA", cwd=d)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    return d


@pytest.fixture(scope="module")
def h2c_gw(module_gateway_factory):
    return module_gateway_factory(credentials=True, env={TEST_SECRET_ENV: SECRET}, name="js-h2c")


@pytest.fixture(scope="module")
def tls_gw(module_gateway_factory, pki):
    gw = module_gateway_factory(
        credentials=True, env={TEST_SECRET_ENV: SECRET}, name="js-tls", start=False,
        extra_config=f'[api.tls]\ncert = "{pki / "server.crt"}"\nkey = "{pki / "server.key"}"\n')
    gw.tls_ca = pki / "ca.crt"
    return gw.start()


def run_sdk(gw, stream, handler, count=50, ca=None):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=TEST_KEY, AWS_SECRET_ACCESS_KEY=SECRET)
    env.pop("AWS_PROFILE", None)
    if ca:
        env["NODE_EXTRA_CA_CERTS"] = str(ca)
    proc = subprocess.run(["node", str(JS_DIR / "kinesis_sdk.mjs"), gw.url, stream, handler, str(count)],
                          cwd=JS_DIR, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"node failed ({handler} on {gw.url}):\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check_round_trip(out, count):
    assert out["failed"] == 0, out
    assert all(out["put"]), out["put"]
    assert sorted(out["read"]) == sorted(f"js-record-{i}" for i in range(count))
    assert out["requestId"], "the SDK saw no x-amzn-RequestId"


@pytest.mark.parametrize("handler", ["default", "http2", "http1"])
def test_js_sdk_over_h2c(h2c_gw, handler):
    stream = unique("js")
    create_stream(h2c_gw.client(secret=SECRET), stream, 2)
    out = run_sdk(h2c_gw, stream, handler)
    if handler == "default":
        assert out["handler"] == "NodeHttp2Handler", "the Kinesis client's default handler in Node"
    check_round_trip(out, 50)


@pytest.mark.parametrize("handler", ["default", "http2", "http1"])
def test_js_sdk_over_tls_with_alpn(tls_gw, pki, handler):
    stream = unique("jstls")
    boto = boto3.session.Session().client(
        "kinesis", endpoint_url=tls_gw.url, region_name="us-east-1", aws_access_key_id=TEST_KEY,
        aws_secret_access_key=SECRET, verify=str(pki / "ca.crt"),
        config=Config(retries={"total_max_attempts": 1}))
    create_stream(boto, stream, 2)
    out = run_sdk(tls_gw, stream, handler, ca=pki / "ca.crt")
    check_round_trip(out, 50)


def test_js_sdk_large_put_records_over_h2(h2c_gw):
    """500 records in one PutRecords over HTTP/2, with the SDK's concurrent streams."""
    stream = unique("jsbig")
    create_stream(h2c_gw.client(secret=SECRET), stream, 1)
    check_round_trip(run_sdk(h2c_gw, stream, "http2", count=500), 500)


@pytest.mark.parametrize("offered, chosen", [(["h2", "http/1.1"], "h2"), (["http/1.1"], "http/1.1")])
def test_alpn_offers_h2_then_http11(tls_gw, pki, offered, chosen):
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.set_alpn_protocols(offered)
    with socket.create_connection(("127.0.0.1", tls_gw.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.selected_alpn_protocol() == chosen
