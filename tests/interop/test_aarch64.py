"""The aarch64 build under qemu-user: start the gateway, put and get records, stop it.

KINEDGE_AARCH64_BIN is the cross-built binary (scripts/test builds it with
`cargo build --profile cross-test --target aarch64-unknown-linux-gnu`). It runs through
qemu-aarch64, which takes the arm64 loader and libraries from Debian multiarch
(/lib/ld-linux-aarch64.so.1, /usr/lib/aarch64-linux-gnu). Without the variable the test is
skipped, except in CI, where that is a failure.
"""

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from kutil import free_port, make_client, read_all, flatten, _die_with_parent

# Start-up under qemu emulates every instruction: about 1.5 s on a 2-core x86 machine for a
# dev build, against ~0.1 s natively. Generous, but bounded.
STARTUP_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30


def aarch64_binary() -> Path:
    value = os.environ.get("KINEDGE_AARCH64_BIN")
    if not value:
        if os.environ.get("CI") == "true":
            pytest.fail("KINEDGE_AARCH64_BIN is not set (scripts/test builds the aarch64 binary)")
        pytest.skip("KINEDGE_AARCH64_BIN is not set")
    path = Path(value)
    if not path.is_file():
        pytest.fail(f"KINEDGE_AARCH64_BIN={value} does not exist")
    return path


def qemu() -> str:
    found = shutil.which("qemu-aarch64")
    if found is None:
        pytest.fail("qemu-aarch64 not found (scripts/install-deps --cross installs qemu-user)")
    return found


def run_cli(cmd: list[str], *args: str, endpoint: str, stdin: bytes | None = None) -> bytes:
    env = dict(os.environ, KINEDGE_ENDPOINT=endpoint)
    env.pop("AWS_ACCESS_KEY_ID", None)
    env.pop("AWS_SECRET_ACCESS_KEY", None)
    result = subprocess.run([*cmd, *args], input=stdin, capture_output=True, env=env, timeout=60)
    assert result.returncode == 0, \
        f"kinedge {' '.join(args)} failed ({result.returncode}):\n{result.stderr.decode()}"
    return result.stdout


@pytest.mark.timeout(STARTUP_TIMEOUT_S + STOP_TIMEOUT_S + 120)
def test_aarch64_binary_under_qemu(tmp_path):
    binary = aarch64_binary()
    cmd = [qemu(), "-L", "/", str(binary)]

    # It is an aarch64 executable, not the host's.
    header = binary.read_bytes()[:20]
    assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == 183, \
        f"{binary} is not an aarch64 ELF executable (e_machine 183)"

    version = subprocess.run([*cmd, "--version"], capture_output=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith(b"kinedge "), version

    port, mqtt_port = free_port(), free_port()
    data_dir = tmp_path / "data"
    config = tmp_path / "kinedge.toml"
    config.write_text(
        "[storage]\n"
        f'data_dir = "{data_dir}"\n'
        'min_free_disk = "1MiB"\n'
        "[api]\n"
        f'listen = "127.0.0.1:{port}"\n'
        "[mqtt]\n"
        f'listen = "127.0.0.1:{mqtt_port}"\n'
        "[[streams]]\n"
        'name = "arm"\n'
        "shards = 2\n"
        "retention_hours = 24\n"
    )
    check = subprocess.run([*cmd, "check-config", str(config)], capture_output=True, timeout=60)
    assert check.returncode == 0, check.stderr.decode()

    log_path = tmp_path / "kinedge.log"
    endpoint = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([*cmd, "run", "--config", str(config)], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=tmp_path, preexec_fn=_die_with_parent)
    try:
        started = time.monotonic()
        deadline = started + STARTUP_TIMEOUT_S
        while True:
            assert proc.poll() is None, \
                f"kinedge exited with {proc.returncode} during start-up:\n{log_path.read_text()}"
            try:
                if requests.get(f"{endpoint}/ready", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, \
                f"not ready within {STARTUP_TIMEOUT_S}s under qemu:\n{log_path.read_text()}"
            time.sleep(0.2)
        print(f"aarch64 gateway ready after {time.monotonic() - started:.2f}s under qemu")

        # The aarch64 binary's own client (HTTP client and TLS stack built for aarch64) ...
        out = run_cli(cmd, "put", "arm", "sensor-a", "21.5", endpoint=endpoint).decode().split()
        assert out[0].startswith("shardId-") and len(out[1]) == 56, out
        run_cli(cmd, "put", "arm", "sensor-b", "-", endpoint=endpoint, stdin=b"\xff\x00binary")
        # ... and boto3 on the host.
        client = make_client(port)
        client.put_record(StreamName="arm", PartitionKey="sensor-c", Data=b"from boto3")

        stored = {r["PartitionKey"]: r["Data"] for r in flatten(read_all(client, "arm"))}
        assert stored == {"sensor-a": b"21.5", "sensor-b": b"\xff\x00binary",
                          "sensor-c": b"from boto3"}
        lines = run_cli(cmd, "get", "arm", endpoint=endpoint).decode().splitlines()
        got = {r["partition_key"]: r for r in map(json.loads, lines)}
        assert set(got) == {"sensor-a", "sensor-b", "sensor-c"}
        assert got["sensor-a"]["data"] == "21.5" and got["sensor-c"]["data"] == "from boto3"
        assert "data_base64" in got["sensor-b"]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            code = None
    assert code == 0, f"exit status after SIGTERM: {code}\n{log_path.read_text()}"
    assert "stopped cleanly" in log_path.read_text()
