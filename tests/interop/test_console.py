"""The web console (issue 15) in a real browser: Playwright (playwright-core from npm, driven by
tests/interop/console/drive.mjs) drives Debian's chromium against the real binary with
credentials, MQTT devices, a loopback test camera and an analytics application.

Checked: a page without a session goes to the login; a wrong secret is refused (no cookie);
the login sets an HttpOnly, SameSite=Strict cookie; every page renders without console
errors; a record put over the API appears in the data viewer; an MQTT publish moves the
overview's ingest chart; the live camera plays (the video's currentTime advances); the
analytics application's output chart gets points; the logout ends the session.

With KINEDGE_CONSOLE_SCREENSHOTS=DIR set, a screenshot of each page goes to DIR (the README
links the ones in docs/console/); without it nothing is written outside pytest's tmp dir.
Everything talks only to 127.0.0.1; every wait is bounded.
"""

import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

import videoutil
from kutil import REPO_ROOT, TEST_KEY, TEST_SECRET_ENV, make_client
from mqttutil import mosquitto_pub, mqtt_gateway, start_mqtt, wait_for

pytestmark = pytest.mark.timeout(300)

SECRET = "console-secret"
CHROMIUM = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
DRIVER = Path(__file__).parent / "console" / "drive.mjs"

APP_SQL = """
CREATE TABLE telemetry (device STRING, temp DOUBLE) WITH ('connector' = 'kinesis',
  'stream' = 'telemetry', 'format' = 'json', 'scan.stream.initpos' = 'TRIM_HORIZON');
CREATE TABLE doubled (device STRING, temp DOUBLE) WITH ('connector' = 'kinesis',
  'stream' = 'doubled', 'format' = 'json');
INSERT INTO doubled SELECT device, temp * 2 FROM telemetry;
"""

ROUTES = """
[[routes]]
topic = "devices/+/telemetry"
stream = "telemetry"
partition_key = "{device}"
format = "raw"
"""


class Browser:
    """The driver process: one JSON command a line in, one JSON answer a line out."""

    def __init__(self):
        if not Path(CHROMIUM).exists():
            pytest.fail(f"chromium not found at {CHROMIUM} (scripts/install-deps --test installs it)")
        if not (REPO_ROOT / "node_modules" / "playwright-core").exists():
            pytest.fail("playwright-core is missing: run `npm ci` at the repository root")
        self.proc = subprocess.Popen(
            ["node", str(DRIVER)], cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env={**os.environ, "CHROMIUM": CHROMIUM})
        self.answers: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        first = self._answer(60)
        assert first == {"ok": True, "value": "ready"}, first

    def _read(self):
        for line in self.proc.stdout:
            self.answers.put(json.loads(line))
        self.answers.put(None)

    def _answer(self, timeout):
        try:
            answer = self.answers.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the browser driver did not answer within {timeout} s") from None
        if answer is None:
            raise AssertionError(f"the browser driver exited: {self.proc.stderr.read()[-3000:]}")
        return answer

    def do(self, command, **args):
        timeout_ms = args.get("timeout", 15000)
        self.proc.stdin.write(json.dumps({"do": command, **args}) + "\n")
        self.proc.stdin.flush()
        answer = self._answer(timeout_ms / 1000 + 30)
        if not answer["ok"]:
            raise AssertionError(f"{command} {args}: {answer['error']}")
        return answer["value"]

    def until(self, js, timeout=30000):
        return self.do("until", js=js, timeout=timeout)

    def close(self):
        try:
            self.do("close")
        except AssertionError:
            pass
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture(scope="module")
def console(module_gateway_factory):
    """A gateway with credentials, a device, a camera and an analytics application, and a
    browser; yields (gateway, browser)."""
    with videoutil.camera(width=320, height=240, fps=15, key_int=15, bitrate_kbps=300) as url:
        gw = mqtt_gateway(
            module_gateway_factory, name="console", devices={"sensor-1": {}},
            streams='[[streams]]\nname = "telemetry"\nshards = 1\n', routes=ROUTES,
            extra=(f'[video]\nfragment_duration_ms = 1000\n\n[[analytics]]\nname = "doubler"\n'
                   f'sql = """\n{APP_SQL}\n"""\n'),
            start=False)
        gw.env[TEST_SECRET_ENV] = SECRET
        with open(gw.config_path, "a") as f:
            f.write(f'\n[[api.credentials]]\naccess_key_id = "{TEST_KEY}"\nsecret_env = "{TEST_SECRET_ENV}"\n')
        (gw.devices_dir / "cam1.toml").write_text(
            f'id = "cam1"\nkind = "camera"\n\n[camera]\nsource = "{url}"\nno_data_timeout_s = 3\n')
        start_mqtt(gw)
        browser = Browser()
        try:
            yield gw, browser
        finally:
            browser.close()


def shot(browser, name):
    target = os.environ.get("KINEDGE_CONSOLE_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        browser.do("screenshot", path=str(Path(target) / f"{name}.png"))


def test_without_a_session_the_console_sends_to_the_login_and_refuses_a_wrong_secret(console):
    gw, b = console
    r = requests.get(f"{gw.url}/", headers={"Accept": "text/html"}, allow_redirects=False, timeout=10)
    assert r.status_code == 303 and r.headers["location"] == "/console/"
    assert b.do("goto", url=f"{gw.url}/").endswith("/console/login")
    shot(b, "login")
    b.do("fill", selector="input[name=access_key_id]", value=TEST_KEY)
    b.do("fill", selector="input[name=secret]", value="not-the-secret")
    b.do("click", selector="button[type=submit]")
    message = b.until("!document.getElementById('error').hidden && document.getElementById('error').textContent")
    assert "wrong secret" in message
    assert b.do("url").endswith("/console/login")
    assert not [c for c in b.do("cookies") if c["name"] == "kinedge_session"]
    b.do("errors")  # the refused login's 401 is logged by the browser: expected here


def test_login_then_every_page_renders_without_errors(console):
    gw, b = console
    b.do("goto", url=f"{gw.url}/console/login")
    b.do("fill", selector="input[name=access_key_id]", value=TEST_KEY)
    b.do("fill", selector="input[name=secret]", value=SECRET)
    b.do("click", selector="button[type=submit]")
    b.until("location.pathname === '/console/' && document.getElementById('who').textContent.length > 0")
    cookie = [c for c in b.do("cookies") if c["name"] == "kinedge_session"]
    assert cookie and cookie[0]["httpOnly"] and cookie[0]["sameSite"] == "Strict", cookie
    assert cookie[0]["expires"] > time.time() + 3600
    assert b.do("eval", js="document.cookie") == ""  # HttpOnly: not readable by scripts
    pages = {
        "overview": "document.querySelectorAll('#overview-cards .card').length >= 8",
        "streams": "!!document.querySelector('#streams-list tr[data-stream=telemetry]')",
        "devices": "!!document.querySelector('#devices-list tr[data-device=\"sensor-1\"]')",
        "deliveries": "!!document.querySelector('#deliveries-list p, #deliveries-list table')",
        "cameras": "!!document.querySelector('#cameras-list table') && !!document.getElementById('live-video')",
        "analytics": "!!document.querySelector('#analytics-list tr[data-app=doubler]')",
    }
    for name, ready in pages.items():
        b.do("goto", url=f"{gw.url}/console/#/{name}")
        b.until(ready)
        shot(b, name)
        assert b.do("errors") == [], name
    # A refused login is logged as a warning: the overview lists the log's recent warnings.
    r = requests.post(f"{gw.url}/console/api/login", json={"access_key_id": "AKIDNOBODY", "secret": "x"},
                      timeout=10)
    assert r.status_code == 401 and "set-cookie" not in r.headers
    b.do("goto", url=f"{gw.url}/console/#/overview")
    b.until("document.getElementById('warnings').textContent.includes('access_key_id=AKIDNOBODY')")


def test_a_record_put_over_the_api_appears_in_the_data_viewer(console):
    gw, b = console
    client = make_client(gw.port, secret=SECRET)
    client.put_record(StreamName="telemetry", PartitionKey="viewer-key",
                      Data=json.dumps({"device": "viewer", "temp": 21.5}).encode())
    b.do("goto", url=f"{gw.url}/console/#/streams/telemetry")
    b.until("document.getElementById('page').dataset.ready === '1'")
    b.do("click", selector="#get-records")
    text = b.until("[...document.querySelectorAll('#records tr.record')].map(r => r.textContent)"
                   ".find(t => t.includes('viewer-key'))")
    assert '"temp": 21.5' in text
    b.do("select", selector="select[name=format]", value="hex")
    hexed = b.until("[...document.querySelectorAll('#records tr.record')].map(r => r.textContent)"
                    ".find(t => t.includes('viewer-key'))")
    assert "7b 22" in hexed  # '{"'
    shot(b, "stream-viewer")
    assert b.do("errors") == []


def test_an_mqtt_publish_moves_the_overview_chart(console):
    gw, b = console
    b.do("goto", url=f"{gw.url}/console/#/overview")
    b.until("Number(document.getElementById('ingest-records').dataset.points || 0) >= 1")
    stop = threading.Event()

    def publish():
        while not stop.is_set():
            mosquitto_pub(gw, "sensor-1", "devices/sensor-1/telemetry",
                          json.dumps({"device": "sensor-1", "temp": 20.0}))
            stop.wait(0.2)

    t = threading.Thread(target=publish, daemon=True)
    t.start()
    try:
        b.until("Number(document.getElementById('ingest-records').dataset.max || 0) > 0", timeout=30000)
        if os.environ.get("KINEDGE_CONSOLE_SCREENSHOTS"):  # a chart with a few points to show
            b.until("Number(document.getElementById('ingest-records').dataset.points) >= 8", timeout=60000)
        shot(b, "overview")
    finally:
        stop.set()
        t.join(40)
    assert b.do("errors") == []


def test_the_live_camera_plays(console):
    gw, b = console
    unsigned = requests.get(f"{gw.url}/video/cam1/live.m3u8", timeout=10)
    assert unsigned.status_code in (400, 403)  # no signature, no session: refused
    b.do("goto", url=f"{gw.url}/console/#/cameras/cam1")
    b.until("document.getElementById('live-video') && document.getElementById('live-video').currentTime > 0",
            timeout=60000)
    first = b.do("eval", js="document.getElementById('live-video').currentTime")
    later = b.until(f"(v => v.currentTime > {first} + 1 && v.currentTime)(document.getElementById('live-video'))",
                    timeout=30000)
    assert later > first + 1
    b.until("document.querySelectorAll('#timeline .rec').length > 0")
    b.do("click", selector="#snapshot")
    assert b.until("(i => i && i.complete && i.naturalWidth)(document.querySelector('#camera-view img'))") == 320
    b.do("click", selector="#make-clip")
    href = b.until("(a => a && a.href)(document.getElementById('clip-link'))")
    length = b.do("eval", js=f"fetch({json.dumps(href)}).then(r => r.ok && r.headers.get('content-type') "
                              "=== 'video/mp4' ? r.arrayBuffer().then(b => b.byteLength) : -r.status)")
    assert length > 1000, length
    shot(b, "cameras")
    assert b.do("errors") == []


def test_the_analytics_output_chart_gets_points(console):
    gw, b = console
    client = make_client(gw.port, secret=SECRET)
    for i in range(5):
        client.put_record(StreamName="telemetry", PartitionKey="d",
                          Data=json.dumps({"device": f"d{i % 2}", "temp": 10.0 + i}).encode())
    b.do("goto", url=f"{gw.url}/console/#/analytics/doubler")
    b.until("Number((document.getElementById('app-output') || {dataset: {}}).dataset.points || 0) > 0",
            timeout=60000)
    b.do("fill", selector="textarea[name=sql]",
         value="CREATE TABLE telemetry (device STRING, temp DOUBLE) WITH ('connector' = 'kinesis', "
               "'stream' = 'telemetry', 'format' = 'json'); SELECT device, temp FROM telemetry")
    b.do("click", selector="#run-query")
    rows = b.until("(t => t && /\\d+ rows/.test(t.textContent) && t.textContent)(document.getElementById('query-result'))")
    assert "d1" in rows
    shot(b, "analytics")
    b.do("fill", selector="input[name=app-name]", value="from-editor")
    b.do("fill", selector="textarea[name=sql]", value=APP_SQL.replace("doubled", "tripled").replace("* 2", "* 3"))
    b.do("click", selector="#create-app")
    b.until("!!document.querySelector('#analytics-list tr[data-app=\"from-editor\"]')")
    assert requests.get(f"{gw.url}/analytics/from-editor", timeout=10).status_code in (400, 403)  # unsigned
    b.do("click", selector="#analytics-list tr[data-app=\"from-editor\"] button.danger")
    b.until("!document.querySelector('#analytics-list tr[data-app=\"from-editor\"]')")
    assert b.do("errors") == []


def test_streams_are_created_resharded_and_deleted_from_the_console(console):
    gw, b = console
    client = make_client(gw.port, secret=SECRET)
    b.do("goto", url=f"{gw.url}/console/#/streams")
    b.until("!!document.querySelector('#streams-list tr[data-stream=telemetry]')")
    b.do("fill", selector="input[name=name]", value="from-console")
    b.do("fill", selector="input[name=shards]", value="1")
    b.do("click", selector="form button[type=submit]")
    b.until("!!document.querySelector('#streams-list tr[data-stream=\"from-console\"]')")
    assert client.describe_stream_summary(StreamName="from-console")["StreamDescriptionSummary"]["OpenShardCount"] == 1
    b.do("prompt", value="2")
    b.do("click", selector="#streams-list tr[data-stream=\"from-console\"] button.plain")
    wait_for(lambda: client.describe_stream_summary(
        StreamName="from-console")["StreamDescriptionSummary"]["OpenShardCount"] == 2, 30, "two open shards")
    b.do("click", selector="#streams-list tr[data-stream=\"from-console\"] button.danger")
    b.until("!document.querySelector('#streams-list tr[data-stream=\"from-console\"]')")
    assert "from-console" not in client.list_streams()["StreamNames"]
    assert b.do("errors") == []


def test_a_device_added_from_the_console_connects_with_the_secret_shown_once(console):
    gw, b = console
    b.do("goto", url=f"{gw.url}/console/#/devices")
    b.until("!!document.querySelector('#devices-list tr[data-device=\"sensor-1\"]')")
    b.do("fill", selector="input[name=device-id]", value="added-1")
    b.do("click", selector="form button[type=submit]")
    secret = b.until("(e => e && e.textContent)(document.getElementById('new-secret'))")
    b.until("!!document.querySelector('#devices-list tr[data-device=\"added-1\"]')")
    assert "$argon2" in (gw.devices_dir / "added-1.toml").read_text()
    assert secret not in (gw.devices_dir / "added-1.toml").read_text()
    gw.secrets["added-1"] = secret
    # The gateway's directory watch loads the new file within seconds.
    wait_for(lambda: mosquitto_pub(gw, "added-1", "devices/added-1/telemetry", "{}").returncode == 0,
             30, "the new device to connect", interval=1)
    # Its row shows what it did, live: the publish stored, from loopback.
    b.until("(r => !!r && Number(r.querySelector('td[data-field=messages]').textContent) >= 1"
            " && r.querySelector('td[data-field=address]').textContent === '127.0.0.1'"
            " && /offline|online/.test(r.querySelector('td[data-field=state]').textContent))"
            "(document.querySelector('#devices-list tr[data-device=\"added-1\"]'))")
    b.do("click", selector="#devices-list tr[data-device=\"added-1\"] button.danger")
    b.until("!document.querySelector('#devices-list tr[data-device=\"added-1\"]')")
    assert not (gw.devices_dir / "added-1.toml").exists()
    wait_for(lambda: mosquitto_pub(gw, "added-1", "devices/added-1/telemetry", "{}").returncode != 0,
             30, "the removed device to be refused", interval=1)
    assert b.do("errors") == []


def test_without_credentials_every_page_says_the_console_is_open(gateway_factory):
    gw = gateway_factory(name="open")
    b = Browser()
    try:
        assert b.do("goto", url=f"{gw.url}/").endswith("/console/")
        for name in ("overview", "streams", "devices", "deliveries", "cameras", "analytics"):
            b.do("goto", url=f"{gw.url}/console/#/{name}")
            banner = b.until("!document.getElementById('banner').hidden && document.getElementById('banner').textContent")
            assert "no [[api.credentials]]" in banner and "open" in banner
            assert b.do("eval", js="document.getElementById('logout').hidden") is True
        assert b.do("errors") == []
    finally:
        b.close()


def test_logout_ends_the_session(console):
    gw, b = console
    b.do("goto", url=f"{gw.url}/console/#/overview")
    b.until("!document.getElementById('logout').hidden")
    b.do("click", selector="#logout")
    b.until("location.pathname === '/console/login'")
    assert b.do("goto", url=f"{gw.url}/console/#/streams").endswith("/console/login#/streams")
