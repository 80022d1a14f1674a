"""Analytics plumbing (issue 14): the /analytics paths, `kinedge analytics` and `kinedge query`
on the command line, their authentication, /status, and check-config on [[analytics]] entries.

What an application computes is tested with the engine (the PyFlink differential tests); these
tests need no running application: unknown names, malformed bodies, refused signatures, and
configuration mistakes.
"""

import json
import os
import subprocess

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from kutil import KINEDGE_BIN, TEST_KEY, TEST_SECRET_ENV, unique

SECRET = "kinedge-analytics-secret-2b7e"


def kinedge(*args, gw=None, stdin=None, env=None, timeout=30):
    full_env = dict(os.environ)
    full_env.pop("AWS_ACCESS_KEY_ID", None)
    full_env.pop("AWS_SECRET_ACCESS_KEY", None)
    full_env.pop("KINEDGE_CONFIG", None)
    if gw is not None:
        full_env["KINEDGE_ENDPOINT"] = gw.url
    full_env.update(env or {})
    r = subprocess.run([str(KINEDGE_BIN), *map(str, args)], input=stdin, capture_output=True,
                       env=full_env, timeout=timeout)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def signed(method: str, url: str, body: bytes = b"", secret: str = SECRET) -> requests.Response:
    headers = {"content-type": "application/json"} if body else {}
    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    SigV4Auth(Credentials(TEST_KEY, secret), "kinesis", "us-east-1").add_auth(request)
    return requests.request(method, url, data=body, headers=dict(request.headers.items()), timeout=10)


def assert_error(r: requests.Response, status: int, kind: str, mentions=()):
    assert r.status_code == status, f"{r.status_code}: {r.text}"
    body = r.json()
    assert body.get("error") == kind, body
    for word in mentions:
        assert word in body.get("message", ""), body


# ---- the HTTP paths -----------------------------------------------------------------------------
def test_list_and_status_name_the_applications(gw):
    r = requests.get(f"{gw.url}/analytics", timeout=10)
    assert r.status_code == 200, r.text
    assert r.json() == {"applications": []}
    status = requests.get(f"{gw.url}/status", timeout=10).json()
    assert status["analytics"] == []


def test_unknown_application_is_404(gw):
    name = unique("nope")
    assert_error(requests.get(f"{gw.url}/analytics/{name}", timeout=10), 404, "NotFound", [name])
    for path in (f"/analytics/{name}/stop", f"/analytics/{name}/start"):
        assert_error(requests.post(f"{gw.url}{path}", timeout=10), 404, "NotFound", [name])
    assert_error(requests.delete(f"{gw.url}/analytics/{name}", timeout=10), 404, "NotFound", [name])


@pytest.mark.parametrize("path,body,mentions", [
    ("/analytics", b"{not json", ["not valid"]),
    ("/analytics", b'{"name": "a"}', ["sql"]),
    ("/analytics", b'{"name": "a", "sql": "SELECT 1", "colour": "red"}', ["colour"]),
    ("/analytics", b'{"name": "a b", "sql": "SELECT 1"}', ["not a valid application name"]),
    ("/analytics", b'{"name": "a", "sql": "SELECT 1", "max_state_keys": 0}', ["max_state_keys"]),
    ("/analytics/query", b'{"max_rows": 5}', ["sql"]),
    ("/analytics/query", b'{"sql": "SELECT 1", "max_rows": 1000001}', ["max_rows"]),
])
def test_malformed_post_is_400(gw, path, body, mentions):
    r = requests.post(f"{gw.url}{path}", data=body, headers={"content-type": "application/json"},
                      timeout=10)
    assert_error(r, 400, "Invalid", mentions)


def test_a_body_over_1_mib_is_refused(gw):
    body = json.dumps({"name": "big", "sql": "x" * (1024 * 1024)}).encode()
    r = requests.post(f"{gw.url}/analytics", data=body, timeout=10)
    assert r.status_code == 413, r.text
    assert r.json()["error"] == "TooLarge"


# ---- authentication -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def auth_gw(module_gateway_factory):
    return module_gateway_factory(credentials=True, env={TEST_SECRET_ENV: SECRET},
                                  name="analytics-auth")


@pytest.mark.parametrize("method,path,body", [
    ("GET", "/analytics", b""),
    ("GET", "/analytics/a", b""),
    ("POST", "/analytics", b'{"name": "a", "sql": "SELECT 1"}'),
    ("POST", "/analytics/a/stop", b""),
    ("POST", "/analytics/a/start", b""),
    ("DELETE", "/analytics/a", b""),
    ("POST", "/analytics/query", b'{"sql": "SELECT 1"}'),
])
def test_unsigned_requests_are_refused_with_credentials(auth_gw, method, path, body):
    r = requests.request(method, f"{auth_gw.url}{path}", data=body, timeout=10)
    assert 400 <= r.status_code < 500, f"{r.status_code}: {r.text}"
    assert r.json().get("__type") in ("MissingAuthenticationTokenException",
                                      "IncompleteSignatureException"), r.text
    wrong = signed(method, f"{auth_gw.url}{path}", body, secret=SECRET + "x")
    assert wrong.json().get("__type") == "InvalidSignatureException", wrong.text


def test_signed_requests_pass(auth_gw):
    r = signed("GET", f"{auth_gw.url}/analytics")
    assert r.status_code == 200 and r.json() == {"applications": []}, r.text
    assert_error(signed("GET", f"{auth_gw.url}/analytics/nope"), 404, "NotFound")
    assert_error(signed("POST", f"{auth_gw.url}/analytics/nope/stop"), 404, "NotFound")
    # The body is signed too: a malformed one passes the signature and is refused for itself.
    assert_error(signed("POST", f"{auth_gw.url}/analytics", b'{"name": 5}'), 400, "Invalid")


def test_cli_signs_with_the_environment(auth_gw):
    rc, out, err = kinedge("analytics", "list", gw=auth_gw)
    assert rc == 1 and "MissingAuthenticationToken" in err, err
    keys = {"AWS_ACCESS_KEY_ID": TEST_KEY, "AWS_SECRET_ACCESS_KEY": SECRET}
    rc, out, err = kinedge("analytics", "list", gw=auth_gw, env=keys)
    assert rc == 0, err
    assert out == "no analytics applications\n"
    rc, out, err = kinedge("analytics", "stop", "nope", gw=auth_gw, env=keys)
    assert rc == 1 and "NotFound" in err and "nope" in err, err


# ---- the command line ---------------------------------------------------------------------------
def test_cli_list_is_empty(gw):
    rc, out, err = kinedge("analytics", "list", gw=gw)
    assert (rc, out) == (0, "no analytics applications\n"), err


@pytest.mark.parametrize("action", ["describe", "stop", "start", "delete"])
def test_cli_unknown_application(gw, action):
    name = unique("nope")
    rc, out, err = kinedge("analytics", action, name, gw=gw)
    assert rc == 1, (out, err)
    assert out == ""
    assert "NotFound" in err and name in err, err


def test_cli_refuses_what_the_gateway_would(gw, tmp_path):
    rc, _, err = kinedge("analytics", "describe", "a/b", gw=gw)
    assert rc == 1 and "not a valid application name" in err, err
    rc, _, err = kinedge("analytics", "create", "a", gw=gw)
    assert rc == 2 and "--sql" in err, err  # one of --sql and --sql-file is required
    rc, _, err = kinedge("analytics", "create", "a", "--sql", "SELECT 1", "--sql-file",
                         tmp_path / "a.sql", gw=gw)
    assert rc == 2, err
    rc, _, err = kinedge("analytics", "create", "a", "--sql-file", tmp_path / "missing.sql", gw=gw)
    assert rc == 1 and "missing.sql" in err, err
    rc, _, err = kinedge("query", gw=gw)
    assert rc == 2, err  # the query is required
    rc, _, err = kinedge("query", "SELECT 1", "--format", "csv", gw=gw)
    assert rc == 2 and "csv" in err, err
    rc, _, err = kinedge("query", "SELECT 1", "--max-rows", "1000001", gw=gw)
    assert rc == 1 and "max_rows" in err, err


def test_cli_status_shows_no_analytics_section_when_there_are_none(gw):
    rc, out, err = kinedge("status", gw=gw)
    assert rc == 0, err
    assert "APPLICATION" not in out


# ---- check-config -------------------------------------------------------------------------------
def check_config(tmp_path, text: str):
    cfg = tmp_path / "kinedge.toml"
    cfg.write_text('[api]\nlisten = "127.0.0.1:4999"\n\n' + text)
    rc, out, err = kinedge("check-config", cfg)
    return cfg, rc, out + err


@pytest.mark.parametrize("text,line,key,words", [
    ('[[analytics]]\nname = "a"\n', 4, "analytics[0].sql", "missing"),
    ('[[analytics]]\nname = "a"\nsql = "SELECT 1"\nsql_file = "a.sql"\n', 7,
     "analytics[0].sql_file", "both"),
    ('[[analytics]]\nname = "bad name"\nsql = "SELECT 1"\n', 5, "analytics[0].name",
     "not a valid application name"),
    ('[[analytics]]\nname = "a"\nsql = "SELECT 1"\n\n[[analytics]]\nname = "a"\nsql = "SELECT 2"\n',
     9, "analytics[1].name", "duplicate application name `a` (also in analytics[0])"),
    ('[[analytics]]\nname = "a"\nsql_file = "nowhere.sql"\n', 6, "analytics[0].sql_file",
     "nowhere.sql"),
    ('[[analytics]]\nname = "a"\nsql = "SELECT 1"\nmax_state_keys = 0\n', 7,
     "analytics[0].max_state_keys", "out of range"),
    ('[[analytics]]\nname = "a"\nsql = "SELECT 1"\nwindow = "1m"\n', 7, "analytics[0].window",
     "unknown key `window`"),
])
def test_check_config_names_each_mistake(tmp_path, text, line, key, words):
    cfg, rc, out = check_config(tmp_path, text)
    assert rc == 2, out
    assert f"{cfg}:{line}: {key}: " in out, out
    assert words in out, out


def test_check_config_reads_sql_file_beside_the_config(tmp_path):
    (tmp_path / "analytics").mkdir()
    (tmp_path / "analytics" / "avg.sql").write_text("SELECT 1")
    cfg, rc, out = check_config(
        tmp_path, '[[analytics]]\nname = "avg"\nsql_file = "analytics/avg.sql"\nenabled = false\n')
    assert rc == 0, out
