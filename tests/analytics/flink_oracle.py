"""Runs the analytics' differential-test cases in Apache Flink (PyFlink): the oracle.

    .venv-flink/bin/python tests/analytics/flink_oracle.py INPUT.jsonl CASES.json OUT_DIR

CASES.json is a list of {name, columns, sql} (tests/analytics/cases.py writes it). All cases run
in one JVM and one TableEnvironment, in streaming mode with parallelism 1, over
    CREATE TABLE telemetry (<columns>) WITH ('connector' = 'filesystem', 'path' = INPUT,
                                            'format' = 'json')
and each case's rows go to OUT_DIR/<name>.jsonl: one JSON object per row, keys = the result's
column names, TIMESTAMP values as 'yyyy-MM-dd HH:mm:ss.SSS', numbers as numbers (DECIMAL as a
float), NULL as null.

By default all cases run as ONE job (a statement set, each SELECT into a filesystem JSON sink of
its own under a temporary directory, committed by the final checkpoint at the end of the
input): ~55 s for 56 cases on a busy 2-core machine, JVM start included, instead of ~290-370 s
as one job each. If that job fails as a whole, the cases are run again one job each, their rows
through execute().collect(), so that the one that fails names itself; --mode=collect does that
from the start. The two modes give the same results as multisets (checked with compare.py):
rows that one watermark fires together may come in another order, and a DOUBLE sum may differ
in its last bit (~1e-16), which is why results are compared as multisets within 1e-9. OUT_DIR/summary.json has each case's row count, seconds and error.

Watermarks: `pipeline.auto-watermark-interval` = 0 ms. Flink's WatermarkAssignerOperator (the
filesystem source does not take the watermark itself) forwards each record and then emits a new
watermark when `current - last emitted > interval`, compared in event time, besides a wall-clock
timer every `interval`. With 0 it emits right after every record that advances the watermark
(max ts seen - 5 s) and has no timer, so which rows are late is a function of the input alone.
With the default 200 ms a watermark that moved less than 200 ms of event time waits for the
wall-clock timer, and a row just behind the watermark is kept or dropped depending on timing.
Checked on Flink 2.3.0: three runs with 0 ms gave byte-identical files for all 56 cases; with
200 ms the files differ (over_rows_unbounded keeps one more row); a 5-row input with a 150 ms
advance followed by a row of the window that advance closed drops that row with 0 ms and counts
it with 200 ms; and Python replaying the per-record model (watermark updated after each row; a
window row dropped iff window_end - 1 ms <= watermark) gives Flink's exact window counts. The
end of the bounded file brings the final watermark (+inf), which fires all windows.

Late rows in OVER aggregations, as Flink does it (replayed in Python, same counts): ROWS/RANGE
frames with a bounded PRECEDING drop a row iff its ts <= the ts of the last row *emitted* for
its partition (rows are emitted, in ts order, when the watermark reaches them); an UNBOUNDED
PRECEDING frame drops a row iff its ts <= the current watermark. So the bounded OVER cases keep
a few rows that are behind the watermark and the unbounded one does not.

Exit status: 0 when every case ran, 1 when any failed (its error is in the summary and printed).
"""
import datetime
import decimal
import json
import os
import sys
import tempfile
import time

WATERMARK_INTERVAL = "0 ms"


def to_json_value(v):
    if isinstance(v, datetime.datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S.") + f"{v.microsecond // 1000:03d}"
    if isinstance(v, datetime.date):
        return v.isoformat()
    if isinstance(v, datetime.time):
        return v.strftime("%H:%M:%S.") + f"{v.microsecond // 1000:03d}"
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
        return repr(v)      # NaN / Infinity: not JSON numbers; the test would show them
    return v


def make_env():
    from pyflink.table import EnvironmentSettings, TableEnvironment
    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    conf = env.get_config()
    conf.set("parallelism.default", "1")
    conf.set("pipeline.auto-watermark-interval", WATERMARK_INTERVAL)
    conf.set("table.local-time-zone", "UTC")
    # The streaming filesystem sink commits its files on checkpoints; the end of the bounded
    # input brings a final one (checkpoints after tasks finish), so one is enough.
    conf.set("execution.checkpointing.interval", "1 h")
    # With checkpointing on, Flink's default restart strategy retries a failed job forever:
    # a case that fails at run time must fail the job at once.
    conf.set("restart-strategy.type", "none")
    return env


def prelude_of(case: dict, input_path: str) -> str:
    """A case's extra CREATE TABLE statements ('{reference}': the CSV beside the input; the
    tables a window join reads: JSON files beside the input, as cases.table_ddl writes them)."""
    reference = os.path.join(os.path.dirname(os.path.abspath(input_path)), "devices.csv")
    text = case.get("prelude", "").replace("{reference}", reference.replace("'", "''"))
    if case.get("tables"):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import cases as analytics_cases
        text = "; ".join(t for t in (text, analytics_cases.table_ddl(case, input_path, "flink")) if t)
    return text


def declare(env, input_path: str, columns: str) -> None:
    env.execute_sql("DROP TEMPORARY TABLE IF EXISTS telemetry")
    path = os.path.abspath(input_path).replace("'", "''")
    env.execute_sql(
        f"CREATE TEMPORARY TABLE telemetry ({columns}) WITH ("
        f"'connector' = 'filesystem', 'path' = '{path}', 'format' = 'json')")


def short_error(e: Exception) -> str:
    # py4j's message carries the whole Java stack: keep the messages and causes only.
    lines = [ln for ln in str(e).splitlines() if ln.strip() and not ln.lstrip().startswith("at ")
             and not ln.lstrip().startswith("... ")]
    return "\n".join(lines[:12])


def run_case_collect(env, case: dict) -> list[dict]:
    """One job for one case, its rows through execute().collect()."""
    from pyflink.common import RowKind
    result = env.execute_sql(case["sql"])
    names = result.get_table_schema().get_field_names()
    rows = []
    with result.collect() as it:
        for row in it:
            kind = row.get_row_kind()
            if kind != RowKind.INSERT:
                raise RuntimeError(f"not an append-only result: a {kind} row {row}")
            rows.append({n: to_json_value(v) for n, v in zip(names, row)})
    return rows


def _fix_value(v, is_ts: bool, is_decimal: bool):
    if v is None:
        return None
    if is_ts:
        return _fix_ts(v)
    if is_decimal:
        return float(v)     # as collect() gives it (a Decimal, written as a float)
    return v


def _fix_ts(v):
    """Flink's JSON format writes TIMESTAMP(3) with the fraction's trailing zeros dropped
    ('...:03.9'); the oracle's files carry exactly three digits."""
    if v is None:
        return None
    dt = datetime.datetime.strptime(v.replace("T", " "), "%Y-%m-%d %H:%M:%S.%f" if "." in v
                                    else "%Y-%m-%d %H:%M:%S")
    return to_json_value(dt)


def run_statement_set(env, cases: list[dict], out_dir: str, tmp_dir: str, status: dict) -> list:
    """All cases as one job: each case's SELECT into a filesystem JSON sink of its own.
    Planning errors are per case (recorded in status); returns the cases that were planned."""
    planned = []
    stmts = env.create_statement_set()
    for case in cases:
        name = case["name"]
        t = time.monotonic()
        try:
            table = env.sql_query(case["sql"])
            cols = table._j_table.getResolvedSchema().getColumns()
            defs, ts_cols, dec_cols = [], [], []
            for i in range(cols.size()):
                col = cols.get(i)
                logical = col.getDataType().getLogicalType()
                # asSerializableString drops *ROWTIME*; nullable so NOT NULL never bites.
                typ = logical.copy(True).asSerializableString()
                if typ.startswith("TIMESTAMP("):
                    ts_cols.append(col.getName())
                elif typ.startswith("DECIMAL("):
                    dec_cols.append(col.getName())
                defs.append(f"`{col.getName()}` {typ}")
            sink = f"oracle_sink_{len(planned)}"
            path = os.path.join(tmp_dir, name).replace("'", "''")
            env.execute_sql(f"DROP TEMPORARY TABLE IF EXISTS `{sink}`")
            env.execute_sql(f"CREATE TEMPORARY TABLE `{sink}` ({', '.join(defs)}) WITH ("
                            f"'connector' = 'filesystem', 'path' = '{path}', 'format' = 'json')")
            stmts.add_insert(sink, table)
        except Exception as e:  # noqa: BLE001 -- reported per case, the others go on
            status[name] = {"error": short_error(e), "seconds": round(time.monotonic() - t, 2)}
            print(f"FAIL  {name}: {status[name]['error']}", file=sys.stderr, flush=True)
            continue
        planned.append((case, [c.getName() for c in cols.toArray()], ts_cols, dec_cols))
    if not planned:
        return []
    t = time.monotonic()
    stmts.execute().wait()
    secs = time.monotonic() - t
    for case, names, ts_cols, dec_cols in planned:
        name = case["name"]
        d = os.path.join(tmp_dir, name)
        files = sorted(os.listdir(d)) if os.path.isdir(d) else []
        pending = [f for f in files if f.startswith(".")]
        if pending:
            raise RuntimeError(f"{name}: uncommitted sink files {pending}")
        rows = []
        for fn in files:
            with open(os.path.join(d, fn)) as f:
                for line in f:
                    r = json.loads(line)
                    rows.append({n: _fix_value(r.get(n), n in ts_cols, n in dec_cols)
                                 for n in names})
        write_rows(out_dir, name, rows)
        status[name] = {"rows": len(rows), "seconds": None}
        print(f"ok    {name:34s} {len(rows):6d} rows", flush=True)
    print(f"one job for {len(planned)} cases: {secs:.1f} s", flush=True)
    return [p[0] for p in planned]


def write_rows(out_dir: str, name: str, rows: list[dict]) -> None:
    with open(os.path.join(out_dir, f"{name}.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def run_collect(env, cases: list[dict], out_dir: str, status: dict) -> None:
    for case in cases:
        name = case["name"]
        t = time.monotonic()
        try:
            rows = run_case_collect(env, case)
        except Exception as e:  # noqa: BLE001 -- reported per case, the others go on
            status[name] = {"error": short_error(e), "seconds": round(time.monotonic() - t, 2)}
            print(f"FAIL  {name}: {status[name]['error']}", file=sys.stderr, flush=True)
            continue
        secs = time.monotonic() - t
        write_rows(out_dir, name, rows)
        status[name] = {"rows": len(rows), "seconds": round(secs, 2)}
        print(f"ok    {name:34s} {len(rows):6d} rows {secs:6.2f} s", flush=True)


def main(argv) -> int:
    args = argv[1:]
    global WATERMARK_INTERVAL
    mode = "statement-set"
    while args and args[0].startswith("--"):
        opt, _, val = args.pop(0).partition("=")
        if opt == "--mode":
            mode = val
        elif opt == "--watermark-interval":     # only to show why it is 0 (see the doc)
            WATERMARK_INTERVAL = val
        else:
            args = []
            break
    if len(args) != 3 or mode not in ("statement-set", "collect"):
        print("usage: flink_oracle.py [--mode=statement-set|collect] [--watermark-interval=D] "
              "INPUT.jsonl CASES.json OUT_DIR", file=sys.stderr)
        return 2
    input_path, cases_path, out_dir = args
    with open(cases_path) as f:
        cases = json.load(f)
    os.makedirs(out_dir, exist_ok=True)
    for fn in os.listdir(out_dir):
        if fn.endswith(".jsonl") or fn == "summary.json":
            os.remove(os.path.join(out_dir, fn))
    t0 = time.monotonic()
    env = make_env()
    start_s = time.monotonic() - t0
    status: dict = {}
    by_columns: dict = {}
    for c in cases:
        by_columns.setdefault(c["columns"], []).append(c)
    for columns, group in by_columns.items():
        declare(env, input_path, columns)
        # Extra tables of some cases (a join's reference table), declared once.
        for text in sorted({prelude_of(c, input_path) for c in group} - {""}):
            for stmt in filter(str.strip, text.split(";")):
                name = stmt.split("(")[0].split()[-1]
                env.execute_sql(f"DROP TEMPORARY TABLE IF EXISTS {name}")
                env.execute_sql(stmt)
        todo = group
        if mode == "statement-set":
            with tempfile.TemporaryDirectory(prefix="flink-oracle-") as tmp:
                try:
                    run_statement_set(env, group, out_dir, tmp, status)
                    todo = []
                except Exception as e:  # noqa: BLE001
                    # The job failed as a whole: run the cases one job each, so that the
                    # failing one names itself.
                    print(f"the one job failed ({short_error(e)}); running case by case",
                          file=sys.stderr, flush=True)
                    todo = [c for c in group if "error" not in status.get(c["name"], {})]
        run_collect(env, todo, out_dir, status)
    total = time.monotonic() - t0
    failed = sum(1 for s in status.values() if "error" in s)
    summary = {"flink_version": flink_version(), "mode": mode,
               "watermark_interval": WATERMARK_INTERVAL, "startup_seconds": round(start_s, 2),
               "total_seconds": round(total, 2), "failed": failed,
               "cases": {c["name"]: status.get(c["name"], {"error": "not run"}) for c in cases}}
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"Flink {summary['flink_version']} ({mode}): {len(cases) - failed} of {len(cases)} "
          f"cases ran, {failed} failed; start-up {start_s:.1f} s, total {total:.1f} s", flush=True)
    return 1 if failed else 0


def flink_version() -> str:
    try:
        from importlib.metadata import version
        return version("apache-flink")
    except Exception:  # noqa: BLE001
        return "?"


if __name__ == "__main__":
    sys.exit(main(sys.argv))
