"""The web console's figures (issue 15, docs/performance.md "Console (issue 15)").

    .venv/bin/python benches/console.py [--bin target/release/kinedge] [--seconds 30]

Starts a gateway (no credentials, loopback, an MQTT listener, one loopback test camera at
640x480 when target/debug/examples/test_camera exists, one analytics application) and reports:

- the assets' sizes as served with `Accept-Encoding: gzip` (what a first visit downloads);
- the first load: a fresh browser context opens /console/ and the time until the overview
  shows its first live snapshot (navigation start to cards drawn), median of 5;
- the gateway's CPU (utime + stime from /proc/PID/stat, in % of one core) and RSS (VmRSS)
  over --seconds with no browser (idle), then with the console open on each page in turn for
  --seconds each; the figure is each page's CPU minus idle and its peak RSS minus idle.

The browser is Debian's chromium through tests/interop/console/drive.mjs (playwright-core);
its own CPU is not counted. Loopback only; every wait is bounded.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "interop"))

import kutil  # noqa: E402
import videoutil  # noqa: E402
from test_console import APP_SQL, Browser  # noqa: E402

PAGES = ["overview", "streams", "devices", "deliveries", "cameras", "analytics"]
ASSETS = ["/console/", "/console/login", "/console/assets/app.js", "/console/assets/app.css",
          "/console/assets/login.js", "/console/assets/login.css"]


def proc_stats(pid):
    """(CPU seconds used so far, RSS bytes) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    return ticks / os.sysconf("SC_CLK_TCK"), rss


def measure(pid, seconds):
    """CPU % of one core over `seconds`, and the peak RSS sampled every 0.5 s."""
    cpu0, rss = proc_stats(pid)
    t0 = time.monotonic()
    peak = rss
    while time.monotonic() - t0 < seconds:
        time.sleep(0.5)
        peak = max(peak, proc_stats(pid)[1])
    cpu1, _ = proc_stats(pid)
    return 100.0 * (cpu1 - cpu0) / (time.monotonic() - t0), peak


def asset_sizes(url):
    sizes = {}
    for path in ASSETS:
        r = requests.get(url + path, headers={"Accept-Encoding": "gzip", "Accept": "text/html"},
                         stream=True, allow_redirects=False, timeout=10)
        assert r.status_code == 200, (path, r.status_code)
        assert r.headers.get("content-encoding") == "gzip", path
        sizes[path] = len(r.raw.read(decode_content=False))
    return sizes


def first_load(b, url):
    times = []
    for _ in range(5):
        b.do("goto", url="about:blank")
        b.do("goto", url=f"{url}/console/#/overview")
        b.until("document.querySelectorAll('#overview-cards .card').length >= 8", timeout=20000)
        times.append(b.do("eval", js="performance.now()"))
    return statistics.median(times)


def run(args):
    base = Path(args.dir)
    gw = kutil.Gateway(base / "gw", extra_config=(
        '[devices]\ndir = "%s"\n\n[video]\nfragment_duration_ms = 1000\n\n'
        '[[streams]]\nname = "telemetry"\nshards = 1\n\n'
        '[[analytics]]\nname = "doubler"\nsql = """\n%s\n"""\n') % ((base / "gw" / "devices").as_posix(), APP_SQL),
        name="bench")
    (base / "gw" / "devices").mkdir(parents=True, exist_ok=True)
    camera = None
    if videoutil.TEST_CAMERA.exists():
        camera = videoutil.camera(width=640, height=480, fps=30, key_int=30, bitrate_kbps=1000)
        url = camera.__enter__()
        (base / "gw" / "devices" / "cam1.toml").write_text(
            f'id = "cam1"\nkind = "camera"\n\n[camera]\nsource = "{url}"\n')
    b = None
    try:
        gw.start()
        time.sleep(5)  # the camera connects, the application starts
        sizes = asset_sizes(gw.url)
        total = sum(sizes.values())
        print(f"assets (gzip): {total} bytes = {total / 1024:.1f} KiB")
        for path, size in sizes.items():
            print(f"  {path}: {size}")
        idle_cpu, idle_rss = measure(gw.proc.pid, args.seconds)
        print(f"idle: cpu {idle_cpu:.2f}% of a core, rss {idle_rss / 1e6:.1f} MB")
        b = Browser()
        load_ms = first_load(b, gw.url)
        print(f"first load to the first live snapshot: median {load_ms:.0f} ms of 5")
        rows = []
        for page in PAGES:
            b.do("goto", url=f"{gw.url}/console/#/{page}")
            time.sleep(3)  # the page settles (first requests, video start)
            cpu, rss = measure(gw.proc.pid, args.seconds)
            rows.append((page, cpu - idle_cpu, rss - idle_rss))
            print(f"{page}: cpu {cpu:.2f}% (+{cpu - idle_cpu:.2f}), rss {rss / 1e6:.1f} MB "
                  f"(+{(rss - idle_rss) / 1e6:.1f})", flush=True)
        print("\n| page | CPU above idle, % of a core | RSS above idle, MB |\n| --- | --- | --- |")
        for page, cpu, rss in rows:
            print(f"| {page} | {cpu:.2f} | {rss / 1e6:.1f} |")
    finally:
        if b:
            b.close()
        gw.close()
        if camera:
            camera.__exit__(None, None, None)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin", default=os.environ.get("KINEDGE_BIN", str(ROOT / "target/release/kinedge")))
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--dir", default="/tmp/kinedge-console-bench")
    args = p.parse_args()
    kutil.KINEDGE_BIN = Path(args.bin).resolve()
    import shutil
    shutil.rmtree(args.dir, ignore_errors=True)
    run(args)


if __name__ == "__main__":
    main()
