"""Video helpers for the kinedge interop suite: the loopback RTSP test camera
(examples/test_camera.rs), an SRT sender made with gst-launch-1.0, `gst-discoverer-1.0` as an
independent judge of what a stream or file holds, and the size of a JPEG image.

KINEDGE_TEST_CAMERA picks the camera binary (default target/debug/examples/test_camera,
relative to the repo root; build it with `cargo build --features test-camera --example
test_camera`). Everything talks only to 127.0.0.1, every wait is bounded, and every process
started here is killed when its `with` block ends (or when the test process dies).
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kutil import _ALL_PROCS, REPO_ROOT, _die_with_parent, free_port

HOST = "127.0.0.1"
TEST_CAMERA = Path(os.environ.get("KINEDGE_TEST_CAMERA", "target/debug/examples/test_camera"))
if not TEST_CAMERA.is_absolute():
    TEST_CAMERA = REPO_ROOT / TEST_CAMERA


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        pass


def _tail(f, limit: int = 4000) -> str:
    f.seek(0)
    return f.read().decode("utf-8", "replace")[-limit:]


# ---- RTSP test camera ------------------------------------------------------------------------

@contextlib.contextmanager
def camera(codec: str = "h264", width: int | None = None, height: int | None = None,
           fps: int | None = None, bitrate_kbps: int | None = None, key_int: int | None = None,
           file: str | os.PathLike | None = None, user: str | None = None,
           password: str | None = None, mount: str | None = None, port: int = 0,
           timeout: float = 20.0):
    """Starts the test camera and yields its URL (`rtsp://127.0.0.1:PORT/cam`, without
    credentials); the camera is killed when the block ends. Options left at None take the
    camera's defaults (640x480, 30 fps, 1000 kbit/s, a keyframe per second, mount /cam)."""
    if not TEST_CAMERA.exists():
        pytest.fail(f"test camera not found at {TEST_CAMERA} (build it with `cargo build "
                    "--features test-camera --example test_camera`, or set KINEDGE_TEST_CAMERA)")
    args = [str(TEST_CAMERA), "--port", str(port), "--codec", codec]
    for flag, value in (("--width", width), ("--height", height), ("--fps", fps),
                        ("--bitrate-kbps", bitrate_kbps), ("--key-int", key_int),
                        ("--file", file), ("--user", user), ("--password", password),
                        ("--mount", mount)):
        if value is not None:
            args += [flag, str(value)]
    with tempfile.TemporaryFile() as errf:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=errf,
                                stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        _ALL_PROCS.append(proc)
        try:
            try:
                url = _first_line(proc, timeout)
            except (RuntimeError, AssertionError) as e:
                raise AssertionError(f"{e}\n{_tail(errf)}") from None
            if not url.startswith(f"rtsp://{HOST}:"):
                raise AssertionError(f"test camera printed {url!r}, not its URL\n{_tail(errf)}")
            yield url
        finally:
            _stop(proc)


def _first_line(proc: subprocess.Popen, timeout: float) -> str:
    """The first line of `proc`'s stdout, waiting at most `timeout` s."""
    deadline = time.monotonic() + timeout
    line = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no URL from the test camera within {timeout} s")
            if sel.select(min(left, 0.5)):
                chunk = os.read(proc.stdout.fileno(), 1)
                if not chunk:
                    raise RuntimeError("the test camera closed its stdout without a URL")
                line += chunk
            elif proc.poll() is not None:
                raise RuntimeError("the test camera exited before printing its URL")
    return line.decode().strip()


# ---- SRT sender ------------------------------------------------------------------------------

@dataclass
class SrtSender:
    """A gst-launch-1.0 pipeline sending H.264 in MPEG-TS over SRT. `source` is what the
    gateway's device file should say to receive it."""
    port: int
    mode: str
    source: str
    procs: list[subprocess.Popen] = field(default_factory=list)
    log: object = None

    def log_tail(self) -> str:
        return _tail(self.log) if self.log is not None else ""


@contextlib.contextmanager
def srt_sender(mode: str = "listener", port: int | None = None, width: int = 640,
               height: int = 480, fps: int = 30, bitrate_kbps: int = 1000,
               key_int: int | None = None, latency_ms: int = 125):
    """Yields an `SrtSender` for a live test pattern over SRT on 127.0.0.1.

    mode "listener": the sender waits for the gateway, whose source is
    `srt://127.0.0.1:PORT` (the gateway calls). mode "caller": the sender calls the gateway,
    whose source is `srt://127.0.0.1:PORT?mode=listener`; srtsink gives up ~3 s after a call
    nobody answers, so the sender is started again whenever it exits, like a camera that keeps
    dialling. Killed when the block ends."""
    if mode not in ("listener", "caller"):
        raise ValueError(f"SRT mode must be listener or caller, not {mode!r}")
    port = port or free_port()
    key_int = key_int or fps
    pipeline = [
        "gst-launch-1.0", "-q", "videotestsrc", "is-live=true", "pattern=ball", "!",
        f"video/x-raw,format=I420,width={width},height={height},framerate={fps}/1", "!",
        "x264enc", f"key-int-max={key_int}", "tune=zerolatency", "speed-preset=ultrafast",
        # As SRT cameras do: SPS/PPS with every keyframe (a receiver can join at any time) and
        # 7 TS packets per SRT message (1316 bytes; larger messages do not fit one SRT packet).
        f"bitrate={bitrate_kbps}", "!", "h264parse", "config-interval=-1", "!",
        "mpegtsmux", "alignment=7", "!",
        "srtsink", f"uri=srt://{HOST}:{port}?mode={mode}", f"latency={latency_ms}",
    ]
    source = (f"srt://{HOST}:{port}" if mode == "listener"
              else f"srt://{HOST}:{port}?mode=listener")
    stopping = threading.Event()
    with tempfile.TemporaryFile() as log:
        sender = SrtSender(port=port, mode=mode, source=source, log=log)
        lock = threading.Lock()

        def launch() -> subprocess.Popen:
            proc = subprocess.Popen(pipeline, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
            _ALL_PROCS.append(proc)
            sender.procs.append(proc)
            return proc

        def redial():
            proc = sender.procs[-1]
            while not stopping.is_set():
                if proc.poll() is not None:
                    stopping.wait(0.5)
                    with lock:
                        if stopping.is_set():
                            return
                        proc = launch()
                stopping.wait(0.2)

        launch()
        watcher = threading.Thread(target=redial, daemon=True) if mode == "caller" else None
        if watcher is not None:
            watcher.start()
        try:
            yield sender
        finally:
            with lock:
                stopping.set()
            if watcher is not None:
                watcher.join(5)
            for proc in sender.procs:
                _stop(proc)


# ---- gst-discoverer --------------------------------------------------------------------------

_CODECS = {"video/x-h264": "h264", "video/x-h265": "h265", "image/jpeg": "jpeg"}


def discover(path_or_uri, timeout: float = 20.0) -> dict:
    """Runs `gst-discoverer-1.0 -v` on a file or URI and returns
    `{"duration_s": float | None, "codec": "h264" | ..., "width": int, "height": int,
    "output": str}` for its first video stream (duration None for a live source). Fails the
    test with discoverer's output when it cannot read the input or finds no video."""
    target = str(path_or_uri)
    if "://" not in target:
        target = Path(target).resolve().as_uri()
    try:
        out = subprocess.run(
            ["gst-discoverer-1.0", "-v", "-t", str(max(1, int(timeout) - 2)), target],
            capture_output=True, timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"gst-discoverer-1.0 {target}: no answer within {timeout} s") from e
    text = (out.stdout + out.stderr).decode("utf-8", "replace")
    failed = ("An error was encountered" in text or "Missing plugins" in text
              or out.returncode != 0)
    video = re.search(r"^\s*video #\d+: ([\w/-]+)", text, re.MULTILINE)
    width = re.search(r"^\s*Width: (\d+)", text, re.MULTILINE)
    height = re.search(r"^\s*Height: (\d+)", text, re.MULTILINE)
    if failed or not (video and width and height):
        raise AssertionError(f"gst-discoverer-1.0 could not read {target}:\n{text}")
    return {
        "duration_s": _duration_s(text),
        "codec": _CODECS.get(video.group(1), video.group(1)),
        "width": int(width.group(1)),
        "height": int(height.group(1)),
        "output": text,
    }


def _duration_s(text: str) -> float | None:
    m = re.search(r"^\s*Duration: (\d+):(\d\d):(\d\d)\.(\d+)", text, re.MULTILINE)
    if not m or m.group(0).strip().startswith("Duration: 99:99:99"):
        return None
    h, mi, s, frac = m.groups()
    return int(h) * 3600 + int(mi) * 60 + int(s) + int(frac) / 10 ** len(frac)


# ---- JPEG ------------------------------------------------------------------------------------

_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's start-of-frame marker; ValueError if `data` is not a JPEG
    with one."""
    if data[:2] != b"\xff\xd8":
        raise ValueError(f"not a JPEG (starts with {data[:4].hex()})")
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise ValueError(f"JPEG marker expected at byte {i}, found {data[i]:#04x}")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no frame header before
            break
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if marker in _SOF:
            if i + 9 > len(data):
                break
            height = int.from_bytes(data[i + 5:i + 7], "big")
            width = int.from_bytes(data[i + 7:i + 9], "big")
            return width, height
        i += 2 + length
    raise ValueError("JPEG without a start-of-frame marker")
