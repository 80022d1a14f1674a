"""Kinesis Video media (issue 17) against the real binary: PutMedia from a producer built of
GStreamer (`x264enc`/`x265enc ! matroskamux streamable=true`) piped into a chunked, SigV4-signed
POST (signed as the producer SDK signs it: the head, with the payload hash of an empty body),
whose acknowledgement events are read while the body still flows; GetMedia with boto3's
`kinesis-video-media` client and GetMediaForFragmentList with `kinesis-video-archived-media`;
media judged by ffprobe, not by kinedge."""

import json
import queue
import shutil
import socket
import struct
import subprocess
import threading
import time

import boto3
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from kutil import REGION, TEST_KEY, TEST_SECRET_ENV

pytestmark = pytest.mark.timeout(300)

SECRET = "media-secret"
VIDEO_CONFIG = "[mqtt]\nenabled = false\n\n[video]\nfragment_duration_ms = 1000\n"


def client(gw, service, read_timeout=60):
    cfg = Config(retries={"total_max_attempts": 1, "mode": "standard"},
                 read_timeout=read_timeout, connect_timeout=5)
    return boto3.session.Session().client(
        service, endpoint_url=gw.url, region_name=REGION,
        aws_access_key_id=TEST_KEY, aws_secret_access_key=SECRET, config=cfg)


def create_stream(gw, name):
    client(gw, "kinesisvideo").create_stream(StreamName=name, DataRetentionInHours=24)


def signed_get(gw, path, **params):
    prepared = requests.Request("GET", f"{gw.url}{path}", params=params).prepare()
    request = AWSRequest(method="GET", url=prepared.url, headers={})
    SigV4Auth(Credentials(TEST_KEY, SECRET), "kinesisvideo", REGION).add_auth(request)
    r = requests.get(prepared.url, headers=dict(request.headers), timeout=60)
    assert r.status_code == 200, (r.status_code, r.text)
    return r


# ---- the producer ------------------------------------------------------------------------------

def encode(codec="h264", frames=150, live=False, width=320, height=240):
    """An MKV stream as `matroskamux streamable=true` writes it (a keyframe every 30 frames at
    30 fps: one cluster per second), on a pipe."""
    if codec == "h264":
        enc = ("x264enc key-int-max=30 speed-preset=ultrafast tune=zerolatency ! h264parse "
               "! video/x-h264,stream-format=avc")
    else:
        if not shutil.which("gst-inspect-1.0") or subprocess.run(
                ["gst-inspect-1.0", "x265enc"], capture_output=True).returncode != 0:
            pytest.skip("x265enc is not installed")
        enc = ("x265enc key-int-max=30 speed-preset=ultrafast tune=zerolatency ! h265parse "
               "! video/x-h265,stream-format=hvc1")
    pipeline = (f"videotestsrc num-buffers={frames} is-live={'true' if live else 'false'} "
                f"! video/x-raw,format=I420,width={width},height={height},framerate=30/1 "
                f"! {enc} ! matroskamux streamable=true ! fdsink fd=1")
    return subprocess.Popen(["gst-launch-1.0", "-q", *pipeline.split()], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)


def mkv_bytes(codec="h264", frames=90):
    proc = encode(codec, frames)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0 and out[:4] == b"\x1a\x45\xdf\xa3", "gst-launch made no MKV"
    return out


class PutMedia:
    """One PutMedia request on a raw socket: the body is sent in HTTP chunks while a thread
    reads the acknowledgement events (one JSON object per line) as they arrive."""

    def __init__(self, gw, stream, timecode_type="RELATIVE", start=None, secret=SECRET):
        self.events: queue.Queue = queue.Queue()
        self.status = None
        url = f"{gw.url}/putMedia"
        headers = {
            "x-amzn-stream-name": stream,
            "x-amzn-fragment-timecode-type": timecode_type,
            "x-amzn-producer-start-timestamp": f"{start if start is not None else time.time():.3f}",
            "x-amzn-fragment-acknowledgment-required": "1",
            "transfer-encoding": "chunked",
            "connection": "keep-alive",
        }
        request = AWSRequest(method="POST", url=url, headers=headers, data=b"")
        SigV4Auth(Credentials(TEST_KEY, secret), "kinesisvideo", REGION).add_auth(request)
        head = [f"POST /putMedia HTTP/1.1", f"Host: 127.0.0.1:{gw.port}"]
        head += [f"{k}: {v}" for k, v in request.headers.items() if k.lower() != "host"]
        self.sock = socket.create_connection(("127.0.0.1", gw.port), timeout=60)
        self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def send(self, data: bytes):
        if data:
            self.sock.sendall(b"%x\r\n" % len(data) + data + b"\r\n")

    def end(self):
        self.sock.sendall(b"0\r\n\r\n")

    def _read(self):
        f = self.sock.makefile("rb")
        try:
            self.status = int(f.readline().split()[1])
            headers = {}
            while (line := f.readline()) not in (b"\r\n", b""):
                k, _, v = line.decode().partition(":")
                headers[k.strip().lower()] = v.strip()
            if headers.get("transfer-encoding") != "chunked":
                body = f.read(int(headers.get("content-length", "0")))
                self.events.put({"_status": self.status, "_body": body.decode(errors="replace")})
                return
            pending = b""
            while True:
                size = int(f.readline().strip(), 16)
                if size == 0:
                    break
                pending += f.read(size)
                f.readline()
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    if line.strip():
                        self.events.put(json.loads(line))
        except (OSError, ValueError, IndexError):
            pass
        finally:
            self.events.put(None)

    def collect(self, until=None, timeout=120):
        """Events until the answer ends (or `until(events)` holds)."""
        out = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = self.events.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if event is None:
                return out
            out.append(event)
            if until and until(out):
                return out
        raise AssertionError(f"PutMedia answer did not end in {timeout} s: {out}")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def put(gw, stream, data: bytes, chunk=16384, **kw):
    producer = PutMedia(gw, stream, **kw)
    try:
        for i in range(0, len(data), chunk):
            producer.send(data[i:i + chunk])
        producer.end()
        return producer.collect()
    finally:
        producer.close()


def check_acks(events):
    """Every fragment BUFFERING, RECEIVED, PERSISTED in that order; numbers increasing.
    Returns the persisted fragment numbers."""
    assert not [e for e in events if e["EventType"] == "ERROR"], events
    by_timecode = {}
    for e in events:
        if e["EventType"] in ("BUFFERING", "RECEIVED", "PERSISTED"):
            by_timecode.setdefault(e["FragmentTimecode"], []).append(e["EventType"])
    assert by_timecode, events
    for timecode, kinds in by_timecode.items():
        assert kinds == ["BUFFERING", "RECEIVED", "PERSISTED"], (timecode, kinds)
    numbers = [int(e["FragmentNumber"]) for e in events if e["EventType"] == "PERSISTED"]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers), numbers
    return numbers


def ffprobe_frames(data: bytes, fmt=None) -> int:
    args = ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
            "-show_entries", "stream=nb_read_frames,codec_name", "-of", "json"]
    if fmt:
        args += ["-f", fmt]
    out = subprocess.run(args + ["-i", "pipe:0"], input=data, capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    stream = json.loads(out.stdout)["streams"][0]
    return int(stream["nb_read_frames"]), stream["codec_name"]


def media_for(gw, stream, numbers):
    kvam = client(gw, "kinesis-video-archived-media")
    r = kvam.get_media_for_fragment_list(StreamName=stream, Fragments=[str(n) for n in numbers])
    assert r["ContentType"] == "video/webm"
    return r["Payload"].read()


@pytest.fixture(scope="module")
def gw(module_gateway_factory):
    gw = module_gateway_factory(extra_config=VIDEO_CONFIG, name="kvsmedia", start=False,
                                credentials=True, env={TEST_SECRET_ENV: SECRET})
    d = gw.dir / "devices"
    d.mkdir(exist_ok=True)
    # A camera of the device files (its source need not answer): PutMedia must refuse it.
    (d / "devcam.toml").write_text(
        'id = "devcam"\nkind = "camera"\n\n[camera]\nsource = "rtsp://127.0.0.1:9/none"\n')
    gw.start()
    return gw


# ---- PutMedia ----------------------------------------------------------------------------------

@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_put_media_acknowledges_every_fragment_and_it_plays(gw, codec, tmp_path):
    stream = f"put-{codec}"
    create_stream(gw, stream)
    data = mkv_bytes(codec, frames=150)
    numbers = check_acks(put(gw, stream, data, chunk=5000))
    assert len(numbers) == 5, numbers

    # The fragments are the stream's, listed and played by /video as a camera's are.
    listed = signed_get(gw, f"/video/{stream}/fragments").json()["fragments"]
    assert [f["number"] for f in listed] == numbers
    assert all(f["codec"] == codec and f["width"] == 320 for f in listed), listed
    clip = signed_get(gw, f"/video/{stream}/clip.mp4", start=listed[0]["producer_ms"],
                      end=listed[-1]["producer_ms"] + listed[-1]["duration_ms"]).content
    frames, _ = ffprobe_frames(clip)
    assert frames >= 140, frames
    payload = media_for(gw, stream, numbers)
    frames, name = ffprobe_frames(payload, "matroska")
    assert frames >= 140 and name == ("h264" if codec == "h264" else "hevc"), (frames, name)
    assert payload.count(b"AWS_KINESISVIDEO_FRAGMENT_NUMBER") == len(numbers)


def test_put_media_to_a_camera_or_an_unknown_stream_is_refused(gw):
    producer = PutMedia(gw, "devcam")
    events = producer.collect()
    producer.close()
    assert events and events[0]["_status"] == 400 and "camera" in events[0]["_body"], events
    producer = PutMedia(gw, "no-such-stream")
    events = producer.collect()
    producer.close()
    assert events[0]["_status"] == 404, events


def ebml(id_bytes: bytes, body: bytes) -> bytes:
    size = len(body)
    return id_bytes + struct.pack(">Q", size | (1 << 56)) + body


def crafted(codec_private: bytes, clusters, size_override=None):
    """A one-track H.264 MKV made by hand: clusters of (timecode, [(offset, keyframe, size)])."""
    out = ebml(b"\x1a\x45\xdf\xa3", ebml(b"\x42\x82", b"matroska"))
    out += b"\x18\x53\x80\x67\x01\xff\xff\xff\xff\xff\xff\xff"
    entry = (ebml(b"\xd7", b"\x01") + ebml(b"\x83", b"\x01") + ebml(b"\x86", b"V_MPEG4/ISO/AVC")
             + ebml(b"\x63\xa2", codec_private)
             + ebml(b"\xe0", ebml(b"\xb0", b"\x01\x40") + ebml(b"\xba", b"\xf0")))
    out += ebml(b"\x16\x54\xae\x6b", ebml(b"\xae", entry))
    for timecode, frames in clusters:
        out += b"\x1f\x43\xb6\x75\x01\xff\xff\xff\xff\xff\xff\xff"
        out += ebml(b"\xe7", struct.pack(">Q", timecode))
        for offset, key, size in frames:
            block = b"\x81" + struct.pack(">h", offset) + (b"\x80" if key else b"\x00")
            if size_override:
                out += b"\xa3" + struct.pack(">Q", (size_override + 4) | (1 << 56)) + block
            else:
                out += ebml(b"\xa3", block + b"\x55" * size)
    return out


# An avcC record's head (version 1, profile, level, one empty SPS): enough for a stream that is
# refused before anything decodes it.
AVCC = bytes([1, 0x64, 0x00, 0x0A, 0xFF, 0xE1, 0x00, 0x00, 0x01, 0x00, 0x00])


def test_bad_input_gets_the_error_aws_sends_and_others_go_on(gw):
    create_stream(gw, "bad")
    create_stream(gw, "good")
    good_data = mkv_bytes("h264", frames=150)
    good = PutMedia(gw, "good")
    results = {}

    def feed():
        for i in range(0, len(good_data), 4096):
            good.send(good_data[i:i + 4096])
            time.sleep(0.005)
        good.end()
        results["good"] = good.collect()

    feeder = threading.Thread(target=feed)
    feeder.start()
    cases = [
        ("not mkv", b"GET / HTTP/1.1 this is not matroska" * 10, 4006),
        ("no keyframe", crafted(AVCC, [(0, [(0, True, 100)]), (1000, [(0, False, 100)])]), 4006),
        ("timecode back", crafted(AVCC, [(5000, [(0, True, 100)]), (4000, [(0, True, 100)])]), 4004),
        ("too long", crafted(AVCC, [(0, [(0, True, 100), (20000, False, 100)])]), 4002),
        ("over size", crafted(AVCC, [(0, [(0, True, 100)])], size_override=60 << 20), 4001),
        ("codec change", mkv_bytes("h264", 30) + mkv_bytes("h265", 30)
         if shutil.which("gst-inspect-1.0") and subprocess.run(
             ["gst-inspect-1.0", "x265enc"], capture_output=True).returncode == 0 else None, 4006),
    ]
    for what, data, error_id in cases:
        if data is None:
            continue
        events = put(gw, "bad", data, chunk=1000)
        errors = [e for e in events if e["EventType"] == "ERROR"]
        assert len(errors) == 1 and errors[0]["ErrorId"] == error_id, (what, events)
        assert events[-1]["EventType"] == "ERROR", (what, events)
    feeder.join(timeout=120)
    good.close()
    assert len(check_acks(results["good"])) == 5
    # The stream that got bad input takes a good producer afterwards.
    assert len(check_acks(put(gw, "bad", good_data))) == 5


def test_sigkill_keeps_every_persisted_fragment_playable(gateway_factory):
    gw = gateway_factory(extra_config=VIDEO_CONFIG, credentials=True, env={TEST_SECRET_ENV: SECRET})
    create_stream(gw, "crash")
    encoder = encode("h264", frames=30 * 60, live=True)
    producer = PutMedia(gw, "crash")
    persisted = []

    def pump():
        try:
            while chunk := encoder.stdout.read1(8192):
                producer.send(chunk)
        except OSError:
            pass

    pumper = threading.Thread(target=pump, daemon=True)
    pumper.start()
    try:
        events = producer.collect(
            until=lambda ev: sum(e["EventType"] == "PERSISTED" for e in ev) >= 3, timeout=60)
        persisted = [int(e["FragmentNumber"]) for e in events if e["EventType"] == "PERSISTED"]
        gw.kill()
    finally:
        encoder.kill()
        encoder.wait()
        producer.close()
    gw.start()
    payload = media_for(gw, "crash", persisted)
    assert payload.count(b"AWS_KINESISVIDEO_FRAGMENT_NUMBER") == len(persisted)
    frames, _ = ffprobe_frames(payload, "matroska")
    assert frames >= 30 * len(persisted) - 5, frames


# ---- GetMedia ----------------------------------------------------------------------------------

def read_documents(payload, count, timeout=60):
    """Reads a GetMedia payload until `count` fragments (documents) have arrived."""
    data = b""
    deadline = time.monotonic() + timeout
    while data.count(b"AWS_KINESISVIDEO_CONTINUATION_TOKEN") < count:
        assert time.monotonic() < deadline, data.count(b"AWS_KINESISVIDEO_CONTINUATION_TOKEN")
        # What has arrived (read() would wait for a full buffer the live stream may never fill).
        chunk = payload._raw_stream.read1(65536)
        assert chunk, "GetMedia ended"
        data += chunk
    return data


def tag_values(data, name):
    out = []
    key = name.encode()
    at = data.find(key)
    while at >= 0:
        # TagName, then TagString: id 0x4487, a one-byte size (our writer's, for short values).
        s = data.find(b"\x44\x87", at)
        size = data[s + 2] & 0x7F
        out.append(data[s + 3:s + 3 + size].decode())
        at = data.find(key, at + 1)
    return out


def test_get_media_from_now_earliest_and_a_fragment_number(gw):
    create_stream(gw, "live")
    numbers = check_acks(put(gw, "live", mkv_bytes("h264", 90)))
    kvm = client(gw, "kinesis-video-media")

    earliest = kvm.get_media(StreamName="live", StartSelector={"StartSelectorType": "EARLIEST"})
    assert earliest["ContentType"] == "video/webm"
    data = read_documents(earliest["Payload"], len(numbers))
    earliest["Payload"].close()
    assert [int(n) for n in tag_values(data, "AWS_KINESISVIDEO_FRAGMENT_NUMBER")] == numbers
    frames, _ = ffprobe_frames(data, "matroska")
    assert frames >= 85, frames

    after = kvm.get_media(StreamName="live", StartSelector={
        "StartSelectorType": "FRAGMENT_NUMBER", "AfterFragmentNumber": str(numbers[0])})
    data = read_documents(after["Payload"], 1)
    after["Payload"].close()
    assert int(tag_values(data, "AWS_KINESISVIDEO_FRAGMENT_NUMBER")[0]) == numbers[1]

    # From NOW: nothing until a producer pushes; then its first fragment arrives.
    now = kvm.get_media(StreamName="live", StartSelector={"StartSelectorType": "NOW"})
    got = {}

    def reader():
        got["data"] = read_documents(now["Payload"], 2, timeout=90)
        got["at"] = time.monotonic()

    t = threading.Thread(target=reader)
    t.start()
    sent = time.monotonic()
    more = check_acks(put(gw, "live", mkv_bytes("h264", 90), start=time.time() + 10))
    t.join(timeout=120)
    now["Payload"].close()
    numbers_now = [int(n) for n in tag_values(got["data"], "AWS_KINESISVIDEO_FRAGMENT_NUMBER")]
    assert numbers_now[:2] == more[:2], (numbers_now, more)
    frames, _ = ffprobe_frames(got["data"], "matroska")
    assert frames >= 55
    assert got["at"] - sent < 60


def test_deleting_the_stream_ends_its_producer_and_its_readers(gw):
    create_stream(gw, "doomed")
    kvv = client(gw, "kinesisvideo")
    encoder = encode("h264", frames=30 * 60, live=True)
    producer = PutMedia(gw, "doomed")

    def pump():
        try:
            while chunk := encoder.stdout.read1(8192):
                producer.send(chunk)
        except OSError:
            pass

    threading.Thread(target=pump, daemon=True).start()
    try:
        producer.collect(until=lambda ev: any(e["EventType"] == "PERSISTED" for e in ev), timeout=60)
        reader = client(gw, "kinesis-video-media").get_media(
            StreamName="doomed", StartSelector={"StartSelectorType": "NOW"})
        arn = kvv.describe_stream(StreamName="doomed")["StreamInfo"]["StreamARN"]
        kvv.delete_stream(StreamARN=arn)
        events = producer.collect(timeout=60)
        assert events[-1]["EventType"] == "ERROR" and events[-1]["ErrorId"] == 4008, events
        # The live reader's answer ends (whatever it got before the deletion).
        deadline = time.monotonic() + 60
        while reader["Payload"]._raw_stream.read1(65536):
            assert time.monotonic() < deadline, "GetMedia did not end"
    finally:
        encoder.kill()
        encoder.wait()
        producer.close()
