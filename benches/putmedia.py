"""PutMedia and GetMedia figures against the real binary (issue 17).

A 1080p30 H.264 stream at about 4 Mbit/s (x264enc, a keyframe per second: 1 s fragments) is
encoded once, then sent by PutMedia paced at real time (the bytes of each second in that
second, 20 chunks a second), as a camera would. Measured:

- the gateway's CPU over the run (% of one core, from /proc/PID/stat) and its extra resident
  memory (the highest VmRSS during the run minus VmRSS before it);
- RECEIVED -> PERSISTED per fragment as the producer sees the acknowledgements (p50, p99);
- GetMedia from NOW, started at random points of the stream: the time to its first bytes,
  against the fragment duration (a reader waits for the next fragment to be committed).

`KINEDGE_BIN=... python benches/putmedia.py [SECONDS]`; prints one `key=value` line.
"""

import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "interop"))

import test_kvs_media as media  # noqa: E402
from kutil import TEST_SECRET_ENV, Gateway  # noqa: E402


def encode(seconds: int) -> bytes:
    pipeline = (f"videotestsrc num-buffers={30 * seconds} pattern=snow "
                "! video/x-raw,format=I420,width=1920,height=1080,framerate=30/1 "
                "! x264enc bitrate=4000 key-int-max=30 speed-preset=ultrafast tune=zerolatency "
                "! h264parse ! video/x-h264,stream-format=avc ! matroskamux streamable=true "
                "! fdsink fd=1")
    out = subprocess.run(["gst-launch-1.0", "-q", *pipeline.split()], capture_output=True,
                         timeout=1200, check=True).stdout
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main() -> None:
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    data = encode(seconds)
    with tempfile.TemporaryDirectory() as d:
        gw = Gateway(Path(d), media.VIDEO_CONFIG, env={TEST_SECRET_ENV: media.SECRET},
                     credentials=True)
        gw.start()
        try:
            media.create_stream(gw, "bench")
            pid = gw.proc.pid
            rss_before = rss_kib(pid)
            cpu_before = cpu_seconds(pid)
            peak = [rss_before]
            done = threading.Event()

            def sample():
                while not done.wait(0.2):
                    peak[0] = max(peak[0], rss_kib(pid))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()

            producer = media.PutMedia(gw, "bench")
            events = []
            stamps = []

            def collect():
                while (event := producer.events.get()) is not None:
                    events.append(event)
                    stamps.append(time.monotonic())

            collector = threading.Thread(target=collect, daemon=True)
            collector.start()

            first_bytes = []
            kvm = media.client(gw, "kinesis-video-media")

            def get_media_at(delay):
                time.sleep(delay)
                started = time.monotonic()
                r = kvm.get_media(StreamName="bench", StartSelector={"StartSelectorType": "NOW"})
                r["Payload"]._raw_stream.read1(1)
                first_bytes.append(time.monotonic() - started)
                r["Payload"].close()

            readers = [threading.Thread(target=get_media_at, args=(2 + random.random() * (seconds - 5),))
                       for _ in range(5)]
            for r in readers:
                r.start()

            started = time.monotonic()
            per_tick = len(data) / (seconds * 20)
            sent = 0
            tick = 0
            while sent < len(data):
                tick += 1
                end = min(len(data), int(per_tick * tick))
                producer.send(data[sent:end])
                sent = end
                time.sleep(max(0.0, started + tick / 20 - time.monotonic()))
            producer.end()
            collector.join(timeout=120)
            elapsed = time.monotonic() - started
            cpu = cpu_seconds(pid) - cpu_before
            done.set()
            for r in readers:
                r.join(timeout=60)
            producer.close()

            received = {}
            latencies = []
            for event, at in zip(events, stamps):
                if event["EventType"] == "RECEIVED":
                    received[event["FragmentTimecode"]] = at
                elif event["EventType"] == "PERSISTED":
                    latencies.append((at - received[event["FragmentTimecode"]]) * 1000)
            errors = [e for e in events if e["EventType"] == "ERROR"]
            assert not errors, errors
            print(f"seconds={seconds} bytes={len(data)} mbit_s={len(data) * 8 / seconds / 1e6:.2f} "
                  f"fragments={len(latencies)} gateway_cpu_pct={100 * cpu / elapsed:.1f} "
                  f"extra_rss_mib={(peak[0] - rss_before) / 1024:.1f} "
                  f"received_to_persisted_ms_p50={percentile(latencies, 50):.1f} "
                  f"p99={percentile(latencies, 99):.1f} "
                  f"getmedia_now_first_bytes_s={','.join(f'{v:.2f}' for v in sorted(first_bytes))} "
                  f"fragment_s=1.0", flush=True)
        finally:
            gw.close()


if __name__ == "__main__":
    main()
