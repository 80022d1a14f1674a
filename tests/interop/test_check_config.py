"""`kinedge check-config` on the shipped examples (config/examples/farm and shop) and on mistakes
only the machine can show (secret files, certificates and keys, the devices folder); the
examples also start, answer, and stop cleanly on SIGTERM.

The examples name secrets under /etc/kinedge. The tests copy an example into a temporary folder
and point those paths at temporary secret files; nothing outside 127.0.0.1 is contacted (camera
and upstream addresses are rewritten to a closed loopback port).
"""

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import boto3
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from kutil import KINEDGE_BIN, REPO_ROOT, _die_with_parent, free_port, make_client

EXAMPLES = REPO_ROOT / "config" / "examples"
ETC_PATH = re.compile(r'"(/etc/kinedge/[^"]+)"')
SECRET = "example-secret"
# What each example holds, as the success line says it.
SUMMARY = {
    "farm": "(2 streams, 2 delivery streams, 4 devices (0 cameras) in ",
    "shop": "(2 streams, 3 delivery streams, 7 devices (2 cameras) in ",
}


def check_config(*args, env=None):
    full_env = dict(os.environ)
    full_env.pop("KINEDGE_CONFIG", None)
    full_env.update(env or {})
    r = subprocess.run([str(KINEDGE_BIN), "check-config", *map(str, args)], capture_output=True,
                       env=full_env, timeout=60)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def example_files(root: Path) -> list[Path]:
    return [root / "kinedge.toml", *sorted((root / "devices").glob("*.toml"))]


def install(name: str, tmp_path: Path) -> Path:
    """A copy of config/examples/NAME whose /etc/kinedge files are temporary secret files."""
    root = tmp_path / name
    shutil.copytree(EXAMPLES / name, root)
    etc = tmp_path / "etc-kinedge"
    etc.mkdir()
    for f in example_files(root):
        text = f.read_text()
        for path in ETC_PATH.findall(text):
            secret = etc / Path(path).name
            secret.write_text(SECRET + "\n")
            secret.chmod(0o600)
        f.write_text(text.replace('"/etc/kinedge/', f'"{etc}/'))
    return root


@pytest.mark.parametrize("name", ["farm", "shop"])
def test_example_names_each_missing_secret(name):
    # As shipped, only the secrets (which never ship) are missing; each is named with its file,
    # line and key.
    root = EXAMPLES / name
    expected = set()
    for f in example_files(root):
        for number, line in enumerate(f.read_text().splitlines(), start=1):
            for path in ETC_PATH.findall(line):
                if not Path(path).exists():
                    key = line.split("=")[0].strip()
                    expected.add(f"{f}:{number}: ")
                    assert key.endswith(("secret_file", "password_file", "access_key_file")), line
    assert expected, "the example names no secret file"
    rc, out, err = check_config(root / "kinedge.toml")
    assert rc == 2, out + err
    lines = err.splitlines()
    assert all(" does not exist: put the secret in it" in l for l in lines), err
    assert {l[: l.index(": ") + 2] for l in lines} == expected, err


@pytest.mark.parametrize("name", ["farm", "shop"])
def test_example_passes_with_its_secrets(name, tmp_path):
    root = install(name, tmp_path)
    rc, out, err = check_config(root / "kinedge.toml")
    assert rc == 0, out + err
    assert err == "", err  # not even a warning
    assert out.startswith(f"{root / 'kinedge.toml'}: ok {SUMMARY[name]}{root / 'devices'}"), out


def loopback(root: Path, api_port: int, mqtt_port: int) -> None:
    """Listeners on loopback ports; cameras and upstreams at a closed loopback port."""
    closed = free_port()
    for f in example_files(root):
        section, lines = "", []
        for line in f.read_text().splitlines():
            if line.startswith("["):
                section = line.strip("[] ")
            if line.startswith("listen = ") and section in ("api", "mqtt"):
                line = f'listen = "127.0.0.1:{api_port if section == "api" else mqtt_port}"'
            line = re.sub(r"rtsp://[^/\"]+", f"rtsp://127.0.0.1:{closed}", line)
            line = re.sub(r'^url = "https://[^/"]+', f'url = "http://127.0.0.1:{closed}', line)
            lines.append(line)
            if line in ('type = "s3"', 'type = "kinesis"'):
                lines.append(f'endpoint = "http://127.0.0.1:{closed}"')
        f.write_text("\n".join(lines) + "\n")


def signed_get(url: str, key: str, secret: str) -> requests.Response:
    request = AWSRequest(method="GET", url=url)
    SigV4Auth(Credentials(key, secret), "kinesis", "us-east-1").add_auth(request)
    return requests.get(url, headers=dict(request.headers.items()), timeout=5)


@pytest.mark.parametrize("name", ["farm", "shop"])
def test_example_starts_and_stops(name, tmp_path):
    root = install(name, tmp_path)
    api_port, mqtt_port = free_port(), free_port()
    loopback(root, api_port, mqtt_port)
    rc, out, err = check_config(root / "kinedge.toml")
    assert rc == 0 and err == "", out + err
    log = tmp_path / "kinedge.log"
    with open(log, "wb") as logf:
        proc = subprocess.Popen(
            [str(KINEDGE_BIN), "run", "--config", str(root / "kinedge.toml"),
             "--data-dir", str(tmp_path / "data")],
            stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=tmp_path,
            preexec_fn=_die_with_parent)
    try:
        url = f"http://127.0.0.1:{api_port}"
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"kinedge exited with {proc.returncode}:\n{log.read_text()}"
            try:
                if requests.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, f"not ready after 30 s:\n{log.read_text()}"
            time.sleep(0.05)

        # The configured streams and delivery streams are there, with the example's credentials.
        key = "AKIAEXAMPLESHOP042" if name == "shop" else "AKIDANY"
        kinesis = make_client(api_port, key=key, secret=SECRET)
        streams = kinesis.list_streams()["StreamNames"]
        firehose = boto3.client("firehose", endpoint_url=url, region_name="us-east-1",
                                aws_access_key_id=key, aws_secret_access_key=SECRET)
        deliveries = firehose.list_delivery_streams()["DeliveryStreamNames"]
        if name == "farm":
            assert sorted(streams) == ["alarms", "telemetry"]
            assert sorted(deliveries) == ["alarms-to-s3", "telemetry-to-s3"]
        else:
            assert sorted(streams) == ["footfall", "fridges"]
            assert sorted(deliveries) == ["footfall-to-analytics", "fridges-to-kinesis",
                                          "video-to-s3"]
            # Unsigned requests are refused; the cameras are there (and cannot connect).
            assert requests.get(f"{url}/video/cameras", timeout=5).status_code in (400, 403)
            cameras = signed_get(f"{url}/video/cameras", key, SECRET)
            assert cameras.status_code == 200, cameras.text
            names = sorted(c["name"] for c in cameras.json()["cameras"])
            assert names == ["entrance-cam", "till-cam"], cameras.text
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
            code = None
    assert code == 0, f"exit {code} after SIGTERM:\n{log.read_text()}"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def test_tls_certificate_and_key_are_checked(tmp_path):
    for name in ("a", "b"):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2",
                "-subj", f"/CN=gateway-{name}", cwd=tmp_path)
        (tmp_path / f"{name}.key").chmod(0o600)
    (tmp_path / "devices").mkdir()
    cfg = tmp_path / "kinedge.toml"

    def check(cert, key, ca="a.crt"):
        cfg.write_text(
            '[api]\nlisten = "127.0.0.1:4999"\n\n[mqtt]\nlisten = "127.0.0.1:1999"\n\n[mqtt.tls]\n'
            f'listen = "127.0.0.1:8999"\ncert = "{tmp_path / cert}"\nkey = "{tmp_path / key}"\n'
            f'client_ca = "{tmp_path / ca}"\n')
        return check_config(cfg)

    rc, out, err = check("a.crt", "a.key")
    assert rc == 0 and err == "", out + err
    # A key that is not the certificate's.
    rc, out, err = check("a.crt", "b.key")
    assert rc == 2 and f"{cfg}:10: mqtt.tls.key: " in err and "do not fit" in err, err
    # Key and certificate swapped, a CA that is not there: every one named.
    rc, out, err = check("a.key", "a.crt", ca="missing.crt")
    assert rc == 2, out + err
    assert f"{cfg}:9: mqtt.tls.cert: `{tmp_path / 'a.key'}` holds no PEM certificate" in err, err
    assert f"{cfg}:10: mqtt.tls.key: `{tmp_path / 'a.crt'}` holds no PEM private key" in err, err
    assert f"{cfg}:11: mqtt.tls.client_ca: `{tmp_path / 'missing.crt'}` does not exist" in err, err
    # A private key every user may read is worth a warning, not a failure.
    (tmp_path / "a.key").chmod(0o644)
    rc, out, err = check("a.crt", "a.key")
    assert rc == 0 and f"{cfg}:10: mqtt.tls.key: warning: " in err, out + err


def test_every_mistake_at_once(tmp_path):
    devices = tmp_path / "devices"
    devices.mkdir()
    (devices / "cam.toml").write_text(
        'id = "cam"\nkind = "camera"\n\n[camera]\nsource = "rtsp://127.0.0.1:9/x"\nusername = "u"\n'
        'password_file = "/nonexistent/cam.secret"\n')
    (devices / "s1.toml").write_text('id = "s1"\npublish = ["a/#/b"]\n')
    cfg = tmp_path / "kinedge.toml"
    cfg.write_text(
        '[api]\nlisten = "127.0.0.1:4999"\n\n[[api.credentials]]\naccess_key_id = "AKIA1"\n'
        'secret_env = "KINEDGE_TEST_SURELY_UNSET_3f9a"\n\n[mqtt]\nlisten = "127.0.0.1:4999"\n\n'
        '[[streams]]\nname = "s"\nshards = 0\n\n[[routes]]\ntopic = "t/#"\nstream = "other"\n')
    rc, out, err = check_config(cfg)
    assert rc == 2 and out == "", out + err
    expected = [
        f"{cfg}:6: api.credentials[0].secret_env: the environment variable "
        "`KINEDGE_TEST_SURELY_UNSET_3f9a` is not set",
        f"{cfg}:9: mqtt.listen: `127.0.0.1:4999` is the port of api.listen",
        f"{cfg}:13: streams[0].shards: 0 is out of range: 1..=1024",
        f"{cfg}:17: routes[0].stream: warning: stream `other` is not in [[streams]]",
        f"{devices / 'cam.toml'}:7: camera.password_file: `/nonexistent/cam.secret` does not exist",
        f"{devices / 's1.toml'}:2: publish[0]: `a/#/b` is not a topic filter",
    ]
    lines = err.splitlines()
    assert len(lines) == len(expected), err
    for line, start in zip(lines, expected):
        assert line.startswith(start), f"{line!r} should start with {start!r}\n{err}"
    # The variable set: the same mistakes less that one.
    rc, out, err = check_config(cfg, env={"KINEDGE_TEST_SURELY_UNSET_3f9a": "x"})
    assert rc == 2 and len(err.splitlines()) == len(expected) - 1, err


def test_warnings_alone_do_not_fail(tmp_path):
    cfg = tmp_path / "kinedge.toml"
    cfg.write_text('[api]\nlisten = "127.0.0.1:4999"\n\n[[routes]]\ntopic = "t/#"\nstream = "later"\n')
    rc, out, err = check_config(cfg)
    assert rc == 0, out + err
    assert err.startswith(f"{cfg}:6: routes[0].stream: warning: stream `later` is not in [[streams]]")
    assert out.startswith(f"{cfg}: ok (0 streams"), out


def test_devices_folder_named_in_a_file_must_exist(tmp_path):
    cfg = tmp_path / "kinedge.toml"
    cfg.write_text('[api]\nlisten = "127.0.0.1:4999"\n\n[devices]\ndir = "devics"\n')
    rc, out, err = check_config(cfg)
    assert rc == 2
    assert err.startswith(f"{cfg}:5: devices.dir: `{tmp_path / 'devics'}` does not exist"), err
    (tmp_path / "devics").mkdir()
    assert check_config(cfg)[0] == 0
