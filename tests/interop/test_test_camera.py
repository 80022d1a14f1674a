"""The loopback test camera itself (examples/test_camera.rs), judged by GStreamer's own tools:
it serves what it is asked for, refuses clients without the right credentials, and loops a
file in real time. Also the other helpers the video tests rely on (SRT sender, discover,
jpeg_size)."""

import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from videoutil import camera, discover, jpeg_size, srt_sender

if shutil.which("gst-launch-1.0") is None:
    pytest.skip("GStreamer tools are not installed", allow_module_level=True)


def gst_launch(*pipeline: str, timeout: float = 20) -> None:
    out = subprocess.run(["gst-launch-1.0", "-q", *pipeline], capture_output=True, timeout=timeout)
    assert out.returncode == 0, (
        f"gst-launch-1.0 {' '.join(pipeline)}:\n{(out.stdout + out.stderr).decode(errors='replace')}")


def record(url: str, path, frames: int) -> float:
    """Records `frames` frames of `url` (H.264 over RTSP/TCP) into an MP4; returns the wall
    time it took. The MP4 is for discover() to judge: rtspsrc sometimes reports an error while
    it shuts down after the end of stream (the server closes the connection after TEARDOWN
    while rtspsrc still sends a PAUSE), so the exit status says nothing about the recording."""
    started = time.monotonic()
    out = subprocess.run(
        ["gst-launch-1.0", "-q", "rtspsrc", f"location={url}", "protocols=tcp", "!",
         "rtph264depay", "!", "h264parse", "!", "identity", f"eos-after={frames}", "!", "mp4mux",
         "!", "filesink", f"location={path}"],
        capture_output=True, timeout=20)
    wall = time.monotonic() - started
    assert path.exists() and path.stat().st_size > 0, (out.stdout + out.stderr).decode(errors="replace")
    return wall


def test_serves_h264_at_the_asked_size():
    with camera(width=320, height=240, fps=15) as url:
        assert url.startswith("rtsp://127.0.0.1:") and url.endswith("/cam"), url
        info = discover(url)
    assert (info["codec"], info["width"], info["height"]) == ("h264", 320, 240), info["output"]
    assert info["duration_s"] is None, "a live camera has no duration"


def test_serves_h265():
    if subprocess.run(["gst-inspect-1.0", "x265enc"], capture_output=True, timeout=20).returncode:
        pytest.skip("x265enc is not installed")
    with camera(codec="h265", width=320, height=240, mount="/other") as url:
        assert url.endswith("/other"), url
        info = discover(url)
    assert (info["codec"], info["width"], info["height"]) == ("h265", 320, 240), info["output"]


def test_basic_auth_refuses_missing_or_wrong_credentials():
    with camera(width=320, height=240, user="viewer", password="s3cret") as url:
        rest = url.removeprefix("rtsp://")
        with pytest.raises(AssertionError, match="Unauthorized"):
            discover(url, timeout=10)
        with pytest.raises(AssertionError, match="Unauthorized"):
            discover(f"rtsp://viewer:wrong@{rest}", timeout=10)
        info = discover(f"rtsp://viewer:s3cret@{rest}")
    assert (info["codec"], info["width"], info["height"]) == ("h264", 320, 240), info["output"]


def test_file_loops_in_real_time(tmp_path):
    ts = tmp_path / "clip.ts"
    gst_launch("videotestsrc", "num-buffers=30", "pattern=ball", "!",
               "video/x-raw,format=I420,width=320,height=240,framerate=20/1", "!",
               "x264enc", "key-int-max=10", "tune=zerolatency", "speed-preset=ultrafast", "!",
               "h264parse", "!", "mpegtsmux", "!", "filesink", f"location={ts}")
    mp4 = tmp_path / "recorded.mp4"
    with camera(file=ts) as url:
        wall = record(url, mp4, frames=90)  # the 1.5 s file three times
    info = discover(mp4)
    assert (info["codec"], info["width"], info["height"]) == ("h264", 320, 240), info["output"]
    # timestamps went on increasing across the loops, at the pace of the clock
    assert 4.4 <= info["duration_s"] <= 4.7, info["duration_s"]
    assert wall >= info["duration_s"] - 0.3, (wall, info["duration_s"])


def test_file_serves_clients_that_come_at_once(tmp_path):
    ts = tmp_path / "clip.ts"
    gst_launch("videotestsrc", "num-buffers=40", "pattern=ball", "!",
               "video/x-raw,format=I420,width=320,height=240,framerate=20/1", "!",
               "x264enc", "key-int-max=10", "tune=zerolatency", "speed-preset=ultrafast", "!",
               "h264parse", "!", "mpegtsmux", "!", "filesink", f"location={ts}")
    with camera(file=ts) as url, ThreadPoolExecutor(3) as pool:
        # every client gets the file from its start: none is turned away while another plays
        results = list(pool.map(lambda i: record(url, tmp_path / f"{i}.mp4", frames=20), range(3)))
    assert len(results) == 3
    for i in range(3):
        info = discover(tmp_path / f"{i}.mp4")
        assert (info["codec"], info["width"], info["height"]) == ("h264", 320, 240), info["output"]


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(AssertionError, match="is not a file"):
        with camera(file=tmp_path / "absent.ts"):
            pass


@pytest.mark.parametrize("mode", ["listener", "caller"])
def test_srt_sender(mode):
    with srt_sender(mode=mode, width=320, height=240) as sender:
        info = discover(sender.source)
    assert (info["codec"], info["width"], info["height"]) == ("h264", 320, 240), info["output"]


def test_jpeg_size(tmp_path):
    jpg = tmp_path / "frame.jpg"
    gst_launch("videotestsrc", "num-buffers=1", "!", "video/x-raw,width=200,height=120", "!",
               "jpegenc", "!", "filesink", f"location={jpg}")
    assert jpeg_size(jpg.read_bytes()) == (200, 120)
    with pytest.raises(ValueError):
        jpeg_size(b"\x89PNG\r\n")


def test_discover_fails_clearly_on_garbage(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 100)
    with pytest.raises(AssertionError, match="could not read"):
        discover(junk, timeout=10)
