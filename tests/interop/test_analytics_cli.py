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
# A script the engine accepts; VALID_SQL in a configuration below stands for it.
SQL = ("CREATE TABLE src (device STRING, temp DOUBLE) WITH ('connector' = 'kinesis', "
       "'stream' = 'in', 'format' = 'json'); "
       "CREATE TABLE dst (device STRING, temp DOUBLE) WITH ('connector' = 'kinesis', "
       "'stream' = 'out', 'format' = 'json'); "
       "INSERT INTO dst SELECT device, temp FROM src WHERE temp > 80")


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
    cfg.write_text('[api]\nlisten = "127.0.0.1:4999"\n\n' + text.replace("VALID_SQL", SQL))
    rc, out, err = kinedge("check-config", cfg)
    return cfg, rc, out + err


@pytest.mark.parametrize("text,line,key,words", [
    ('[[analytics]]\nname = "a"\n', 4, "analytics[0].sql", "missing"),
    ('[[analytics]]\nname = "a"\nsql = "VALID_SQL"\nsql_file = "a.sql"\n', 7,
     "analytics[0].sql_file", "both"),
    ('[[analytics]]\nname = "bad name"\nsql = "VALID_SQL"\n', 5, "analytics[0].name",
     "not a valid application name"),
    ('[[analytics]]\nname = "a"\nsql = "VALID_SQL"\n\n[[analytics]]\nname = "a"\nsql = "VALID_SQL"\n',
     9, "analytics[1].name", "duplicate application name `a` (also in analytics[0])"),
    ('[[analytics]]\nname = "a"\nsql_file = "nowhere.sql"\n', 6, "analytics[0].sql_file",
     "nowhere.sql"),
    ('[[analytics]]\nname = "a"\nsql = "VALID_SQL"\nmax_state_keys = 0\n', 7,
     "analytics[0].max_state_keys", "out of range"),
    ('[[analytics]]\nname = "a"\nsql = "VALID_SQL"\nwindow = "1m"\n', 7, "analytics[0].window",
     "unknown key `window`"),
    ('[[analytics]]\nname = "a"\nsql = "INSERT INTO nowhere SELECT FROM"\n', 6,
     "analytics[0].sql", "SQL"),
])
def test_check_config_names_each_mistake(tmp_path, text, line, key, words):
    cfg, rc, out = check_config(tmp_path, text)
    assert rc == 2, out
    assert f"{cfg}:{line}: {key}: " in out, out
    assert out.count(f"{cfg}:") == 1, out  # that mistake alone
    assert words in out, out


def test_check_config_reads_sql_file_beside_the_config(tmp_path):
    (tmp_path / "analytics").mkdir()
    (tmp_path / "analytics" / "avg.sql").write_text(SQL)
    cfg, rc, out = check_config(
        tmp_path, '[[analytics]]\nname = "avg"\nsql_file = "analytics/avg.sql"\nenabled = false\n')
    assert rc == 0, out


# ---- with running applications (the engine) -------------------------------------------------------
def script(source: str, sink: str, where: str = "") -> str:
    return (f"CREATE TABLE src (device STRING, temp DOUBLE) WITH ('connector' = 'kinesis', "
            f"'stream' = '{source}', 'format' = 'json'); "
            f"CREATE TABLE dst (device STRING, temp DOUBLE) WITH ('connector' = 'kinesis', "
            f"'stream' = '{sink}', 'format' = 'json'); "
            f"INSERT INTO dst SELECT device, temp FROM src {where}")


@pytest.fixture(scope="module")
def apps_gw(module_gateway_factory):
    config = ('[[streams]]\nname = "readings"\n\n'
              f'[[analytics]]\nname = "hot"\nsql = "{script("readings", "hot-out", "WHERE temp > 80")}"\n\n'
              f'[[analytics]]\nname = "off"\nenabled = false\nsql = "{script("readings", "off-out")}"\n')
    return module_gateway_factory(extra_config=config, name="analytics-apps")


def test_config_applications_are_listed_with_their_state(apps_gw):
    rc, out, err = kinedge("analytics", "list", gw=apps_gw)
    assert rc == 0, err
    states = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:]}
    assert states == {"hot": "running", "off": "stopped"}, out
    status = requests.get(f"{apps_gw.url}/status", timeout=10).json()
    assert {a["name"]: a["state"] for a in status["analytics"]} == states
    rc, out, err = kinedge("analytics", "describe", "hot", gw=apps_gw)
    described = json.loads(out)
    assert (described["name"], described["origin"], described["inputs"]) == ("hot", "config", ["readings"])
    rc, out, err = kinedge("status", gw=apps_gw)
    assert "APPLICATION" in out and "hot" in out, out


def test_config_applications_cannot_be_deleted_or_replaced(apps_gw):
    rc, _, err = kinedge("analytics", "delete", "hot", gw=apps_gw)
    assert rc == 1 and "FromConfig" in err, err
    r = requests.post(f"{apps_gw.url}/analytics", json={"name": "hot", "sql": script("readings", "x")},
                      timeout=10)
    assert r.status_code in (403, 409), r.text


def test_api_application_lifecycle(apps_gw, tmp_path):
    name = unique("app")
    sql_file = tmp_path / "app.sql"
    sql_file.write_text(script("readings", f"{name}-out"))
    rc, out, err = kinedge("analytics", "create", name, "--sql-file", sql_file,
                           "--max-state-keys", "50", gw=apps_gw)
    assert (rc, out) == (0, f"{name}: running\n"), err
    assert requests.get(f"{apps_gw.url}/analytics/{name}", timeout=10).json()["origin"] == "api"
    rc, _, err = kinedge("analytics", "create", name, "--sql", script("readings", "y"), gw=apps_gw)
    assert rc == 1 and "Exists" in err, err
    r = requests.post(f"{apps_gw.url}/analytics", json={"name": name, "sql": script("readings", "y")},
                      timeout=10)
    assert_error(r, 409, "Exists", [name])
    assert kinedge("analytics", "stop", name, gw=apps_gw)[1] == f"{name}: stopped\n"
    assert kinedge("analytics", "start", name, gw=apps_gw)[1] == f"{name}: running\n"
    assert kinedge("analytics", "delete", name, gw=apps_gw)[1] == f"{name}: deleted\n"
    assert_error(requests.get(f"{apps_gw.url}/analytics/{name}", timeout=10), 404, "NotFound")


def test_bad_sql_is_400_with_the_reason(apps_gw):
    r = requests.post(f"{apps_gw.url}/analytics",
                      json={"name": unique("bad"), "sql": "INSERT INTO nowhere SELECT FROM"}, timeout=10)
    assert_error(r, 400, "Sql")
    rc, _, err = kinedge("query", "SELEC 1", gw=apps_gw)
    assert rc == 1 and "Sql" in err, err


def test_query_prints_a_table_or_json_lines(apps_gw):
    c = apps_gw.client()
    stream = unique("q")
    c.create_stream(StreamName=stream, ShardCount=1)
    for i, temp in enumerate([21.5, 30.0, 99.25]):
        c.put_record(StreamName=stream, PartitionKey=f"d{i}",
                     Data=json.dumps({"device": f"d{i}", "temp": temp}).encode())
    sql = (f"CREATE TABLE t (device STRING, temp DOUBLE) WITH ('connector' = 'kinesis', "
           f"'stream' = '{stream}', 'format' = 'json'); SELECT device, temp FROM t")
    rc, out, err = kinedge("query", sql, "--format", "json", gw=apps_gw)
    assert rc == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows == [{"device": "d0", "temp": 21.5}, {"device": "d1", "temp": 30.0},
                    {"device": "d2", "temp": 99.25}], out
    assert err == ""
    rc, out, err = kinedge("query", "-", "--max-rows", "2", gw=apps_gw, stdin=sql.encode())
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["device", "|", "temp"], out
    assert lines[2].startswith("d0") and lines[-1] == "(2 rows)", out
    assert "cut at 2 rows" in err, err
