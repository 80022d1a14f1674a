"""Analytics (issue 14): the differential test against Apache Flink.

The same SELECTs (tests/analytics/cases.py) over the same input run in PyFlink
(tests/analytics/flink_oracle.py, in .venv-flink, one JVM and one job for all cases) and in
kinedge (`kinedge query --format json` over a 1-shard stream `telemetry` holding the input rows
in file order); each case is one test item, named by the case, that asserts compare(...) finds
no difference (tests/analytics/compare.py: multisets, floats within 1e-9 relative).

Without .venv-flink (scripts/install-deps --test makes it) the items are skipped, except under
CI=true, where that is a failure: CI installs it.
"""
import json
import os
import subprocess
import sys
import time

import pytest

from kutil import KINEDGE_BIN, REPO_ROOT, create_stream

sys.path.insert(0, str(REPO_ROOT / "tests" / "analytics"))
import cases as analytics_cases  # noqa: E402
from compare import compare, read_jsonl  # noqa: E402

FLINK_PYTHON = REPO_ROOT / ".venv-flink" / "bin" / "python"
ORACLE = REPO_ROOT / "tests" / "analytics" / "flink_oracle.py"
FLINK_TIMEOUT = 300       # s, the whole Flink run (JVM start-up and all cases)
QUERY_TIMEOUT = 60        # s, one `kinedge query`
STREAM = "telemetry"
CASES = analytics_cases.cases()

# The module fixtures (Flink run, gateway, stream) are set up inside the first item's time.
pytestmark = pytest.mark.timeout(FLINK_TIMEOUT + QUERY_TIMEOUT + 120)


@pytest.fixture(scope="module")
def analytics_input(tmp_path_factory):
    """(path of the JSONL input, its lines in file order)."""
    d = tmp_path_factory.mktemp("analytics")
    path = d / "input.jsonl"
    analytics_cases.write_input(path)
    return path, path.read_text().splitlines()


@pytest.fixture(scope="module")
def flink_results(analytics_input, tmp_path_factory):
    """{case name: rows or an error string}: every case, one PyFlink run."""
    if not FLINK_PYTHON.exists():
        msg = (f"{FLINK_PYTHON.relative_to(REPO_ROOT)} is missing: "
               "scripts/install-deps --test installs PyFlink there")
        if os.environ.get("CI") == "true":
            pytest.fail(msg + " (and CI must run this test)")
        pytest.skip(msg)
    input_path, _ = analytics_input
    d = tmp_path_factory.mktemp("flink")
    cases_path = d / "cases.json"
    analytics_cases.write_cases(cases_path)
    out = d / "out"
    t = time.monotonic()
    try:
        run = subprocess.run([str(FLINK_PYTHON), str(ORACLE), str(input_path), str(cases_path),
                              str(out)], capture_output=True, text=True, timeout=FLINK_TIMEOUT,
                             cwd=str(REPO_ROOT))
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the Flink oracle did not finish within {FLINK_TIMEOUT} s:\n"
                    f"{(e.stdout or b'')[-3000:]!r}\n{(e.stderr or b'')[-3000:]!r}")
    summary_path = out / "summary.json"
    if not summary_path.exists():
        pytest.fail(f"the Flink oracle failed (exit {run.returncode}) after "
                    f"{time.monotonic() - t:.0f} s:\n{run.stdout[-3000:]}\n{run.stderr[-5000:]}")
    summary = json.loads(summary_path.read_text())
    results = {}
    for c in CASES:
        st = summary["cases"].get(c["name"], {"error": "not run"})
        if "error" in st:
            results[c["name"]] = f"Flink failed this case: {st['error']}"
        else:
            results[c["name"]] = read_jsonl(out / f"{c['name']}.jsonl")
    return results


@pytest.fixture(scope="module")
def telemetry_gateway(module_gateway_factory, analytics_input):
    """A gateway whose 1-shard stream `telemetry` holds the input rows in file order."""
    _, lines = analytics_input
    gw = module_gateway_factory(name="analytics")
    client = gw.client()
    create_stream(client, STREAM, shards=1)
    put_lines(client, STREAM, lines)
    # The window-join cases' two more inputs, each a stream of its own.
    directory = os.path.dirname(os.path.abspath(analytics_input[0]))
    for name, spec in analytics_cases.TABLES.items():
        create_stream(client, name, shards=1)
        with open(os.path.join(directory, spec["file"])) as f:
            put_lines(client, name, f.read().splitlines())
    return gw


def put_lines(client, stream: str, lines: list[str]) -> None:
    for i in range(0, len(lines), 500):
        batch = lines[i:i + 500]
        records = [{"Data": line.encode(),
                    "PartitionKey": json.loads(line).get("device") or "none"} for line in batch]
        resp = client.put_records(StreamName=stream, Records=records)
        # A retry of a failed record would change the order: none may fail.
        assert resp.get("FailedRecordCount", 0) == 0, resp


def query_script(case: dict, input_path) -> str:
    extra = "; ".join(t for t in (analytics_cases.prelude(case, input_path),
                                  analytics_cases.table_ddl(case, input_path, "kinedge")) if t)
    return (f"CREATE TABLE {STREAM} ({case['columns']}) WITH ('connector' = 'kinesis', "
            f"'stream' = '{STREAM}', 'format' = 'json', 'scan.stream.initpos' = 'TRIM_HORIZON'); "
            + (f"{extra}; " if extra else "") + f"{case['sql']}")


def kinedge_query(gw, case: dict, input_path) -> list[dict]:
    args = [str(KINEDGE_BIN), "query", "--endpoint", gw.url, "--format", "json",
            query_script(case, input_path)]
    env = dict(os.environ)
    env.pop("AWS_ACCESS_KEY_ID", None)
    env.pop("AWS_SECRET_ACCESS_KEY", None)
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=QUERY_TIMEOUT, env=env,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"kinedge query did not finish within {QUERY_TIMEOUT} s: {case['sql']}")
    assert r.returncode == 0, (f"kinedge query failed ({r.returncode}):\n{r.stderr[-3000:]}\n"
                               f"{r.stdout[-1000:]}\nquery: {case['sql']}")
    rows = []
    for n, line in enumerate(r.stdout.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            pytest.fail(f"kinedge query printed a line that is not JSON (line {n}: {e}): "
                        f"{line[:300]!r}")
        assert isinstance(row, dict), f"line {n} is not a JSON object: {line[:300]!r}"
        rows.append(row)
    return rows


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_same_result_as_flink(case, flink_results, telemetry_gateway, analytics_input):
    expected = flink_results[case["name"]]
    if isinstance(expected, str):
        pytest.fail(expected)
    actual = kinedge_query(telemetry_gateway, case, analytics_input[0])
    diff = compare(expected, actual, ordered=case.get("ordered", False))
    assert not diff, f"{case['name']}: kinedge differs from Flink\n{case['sql']}\n{diff}"
