"""The input and the queries of the analytics' differential test (issue 14).

The same SELECTs run over the same input in Apache Flink (flink_oracle.py, PyFlink) and in
kinedge (tests/interop/test_analytics_flink.py); their results must agree row by row.

    python tests/analytics/cases.py INPUT.jsonl CASES.json    # writes both files

The input (make_input) is deterministic (seeded): ~2,000 JSON rows over ~10 minutes of event
time, mostly increasing with out-of-order jitter smaller than the 5 s watermark delay, a few
rows more than a minute behind (late: window and OVER aggregations drop them) and a few just
behind the watermark (up to 400 ms), with NULLs in
every column but `ts` (event times are distinct, so ROWS frames and FIRST/LAST_VALUE do not
depend on how ties are broken), negative temperatures and humidities, an empty site, padded
sites, and payloads that are JSON objects, JSON without the path, `not json`, or NULL.

Every case runs in PyFlink 2.3 in streaming mode. What Flink rejected, or fails at run time,
and so is not a case here (probed with tests/analytics/flink_oracle.py; it tells what Flink does
not support):
- APPROX_COUNT_DISTINCT in a (window) aggregation: TableException "APPROX_COUNT_DISTINCT
  aggregate function does not support yet for streaming" (batch mode only).
- PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY x): TableException "Unsupported Function".
  PERCENTILE(x, p) does run, and exactly (continuous, interpolated linearly between the two
  nearest values, as PERCENTILE_CONT: checked against Python over the same rows), so it has
  cases.
- OVER frames with FOLLOWING (`ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING`): TableException
  "OVER RANGE FOLLOWING windows are not supported yet".
- A GROUP BY without a window TVF (e.g. `SELECT device, COUNT(*) ... GROUP BY device`): runs,
  but its result is an updating stream (-U/+U rows), not an append-only one; the oracle
  refuses it, and kinedge's `query` and sinks are append-only, so no case has one.
- JSON_VALUE(... RETURNING DOUBLE) on a JSON *integer* (`{"b": 2}`): the job fails at run
  time (ClassCastException: Integer cannot be cast to BigDecimal, in the generated Calc). The
  payload's `b` is therefore always written with a fraction (`2.0`); `c` is an integer and is
  read RETURNING INT (which works) or as a string.
- INT / 0: the job fails at run time (ArithmeticException: / by zero); divisions by `hum`
  filter `hum <> 0`.
- VAR_SAMP/VAR_POP/STDDEV_* of an INT column: Flink computes them in DOUBLE and truncates, and
  its floating-point path gives e.g. 912.9999999999999 (so 912) where the exact variance is 913
  (n=9, sum=438, sum of squares=28620); kinedge truncates the exact value. The case reads
  VAR_SAMP(CAST(hum AS DOUBLE)) instead (STDDEV_POP(hum) stays: its square root is never whole
  there); docs/analytics.md lists the difference.
- `1 AS one`: ONE is a reserved word in Flink's parser (SqlParserException); renamed.
Not cases although Flink runs them: TRY_CAST, LISTAGG, COUNT(DISTINCT) and FIRST_VALUE in OVER
(issue 14 does not list them); regular (non-window) joins of two streams, which kinedge refuses.
"""
import json
import os
import random
import sys
from datetime import datetime, timedelta

DDL_COLUMNS = ("device STRING, temp DOUBLE, hum INT, ts TIMESTAMP(3), site STRING, "
               "payload STRING, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND")

BASE = datetime(2026, 1, 1, 0, 0, 0)
SEED = 14
N_ROWS = 2000


def fmt_ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S.") + f"{t.microsecond // 1000:03d}"


def make_input(n: int = N_ROWS, seed: int = SEED) -> list[dict]:
    """The rows in file (= arrival) order."""
    rnd = random.Random(seed)
    devices = [f"dev-{i:02d}" for i in range(1, 21)]
    sites = ["north", "south", "East-1", " west ", "", None, "north-2"]
    rows = []
    used = set()
    max_ms = 0
    for i in range(n):
        # ~300 ms per row: 2,000 rows span ~10 minutes.
        ms = i * 300 + rnd.randint(0, 2500)     # jitter < the 5 s watermark delay
        nxt = (i * 300 // 10_000 + 1) * 10_000
        if nxt - i * 300 <= 2500 and rnd.random() < 0.5:
            ms = nxt                            # exactly on a 10 s window boundary
        late = i > 400 and rnd.random() < 0.008
        if late:
            ms = max_ms - rnd.randint(61_000, 150_000)   # > 1 minute behind: late
        elif i > 100 and rnd.random() < 0.008:
            # Just behind the watermark (max - 5 s): dropped by OVER aggregations, and by a
            # window aggregation iff its window has fired, which holds only if the watermark
            # advances after every record (see flink_oracle.py).
            late = True
            ms = max_ms - 5000 - rnd.randint(1, 400)
        while ms in used:
            ms += 1
        used.add(ms)
        if not late:
            max_ms = max(max_ms, ms)
        ts = BASE + timedelta(milliseconds=ms)
        device = None if rnd.random() < 0.03 else rnd.choice(devices)
        temp = None if rnd.random() < 0.04 else round(rnd.gauss(20, 15), 2)
        hum = None if rnd.random() < 0.05 else rnd.randint(-10, 100)
        site = rnd.choice(sites)
        r = rnd.random()
        if r < 0.05:
            payload = None
        elif r < 0.08:
            payload = "not json"
        elif r < 0.15:
            payload = json.dumps({"tag": rnd.choice(["x", "y"])})
        else:
            b = round(rnd.uniform(-5, 5), 3)
            if b == int(b):
                b += 0.5        # a fraction always: see the module doc (RETURNING DOUBLE)
            payload = json.dumps({"a": {"b": float(b), "c": rnd.randint(-50, 50)},
                                  "tag": rnd.choice(["x", "y", "z"])})
        rows.append({"device": device, "temp": temp, "hum": hum, "ts": fmt_ts(ts),
                     "site": site, "payload": payload})
    return rows


# The reference table of the join cases: device metadata in a CSV file beside the input. Some
# devices are missing from it (an inner join drops their rows) and one row names no device.
REFERENCE_FILE = "devices.csv"
REFERENCE_COLUMNS = "device STRING, building STRING, level INT"
PRELUDE_JOIN = (f"CREATE TEMPORARY TABLE devices ({REFERENCE_COLUMNS}) WITH ("
                "'connector' = 'filesystem', 'path' = '{reference}', 'format' = 'csv')")


def reference_rows() -> list[str]:
    rows = [f"dev-{i:02d},{'north' if i % 2 else 'south'} hall,{i % 4}" for i in range(1, 17)]
    rows.append("dev-99,annex,9")
    return rows


def write_input(path, rows=None) -> list[dict]:
    rows = make_input() if rows is None else rows
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    reference = os.path.join(os.path.dirname(os.path.abspath(path)), REFERENCE_FILE)
    with open(reference, "w") as f:
        f.write("\n".join(reference_rows()) + "\n")
    write_tables(os.path.dirname(os.path.abspath(path)))
    return rows


def prelude(case: dict, input_path) -> str:
    """The case's extra CREATE TABLE statements, with the reference file's path filled in."""
    reference = os.path.join(os.path.dirname(os.path.abspath(input_path)), REFERENCE_FILE)
    return case.get("prelude", "").replace("{reference}", reference.replace("'", "''"))


def _tvf(kind: str, *args: str) -> str:
    return f"TABLE({kind}(TABLE telemetry, DESCRIPTOR(ts), {', '.join(args)}))"


TUMBLE_1M = _tvf("TUMBLE", "INTERVAL '1' MINUTE")
TUMBLE_10S = _tvf("TUMBLE", "INTERVAL '10' SECOND")
TUMBLE_30S = _tvf("TUMBLE", "INTERVAL '30' SECOND")
HOP_10S_30S = _tvf("HOP", "INTERVAL '10' SECOND", "INTERVAL '30' SECOND")
HOP_15S_1M = _tvf("HOP", "INTERVAL '15' SECOND", "INTERVAL '1' MINUTE")
CUMULATE_10S_1M = _tvf("CUMULATE", "INTERVAL '10' SECOND", "INTERVAL '1' MINUTE")
CUMULATE_20S_2M = _tvf("CUMULATE", "INTERVAL '20' SECOND", "INTERVAL '2' MINUTE")
OVER_ROWS = "PARTITION BY device ORDER BY ts ROWS BETWEEN 3 PRECEDING AND CURRENT ROW"
OVER_RANGE = ("PARTITION BY device ORDER BY ts "
              "RANGE BETWEEN INTERVAL '1' MINUTE PRECEDING AND CURRENT ROW")

_CASES = [
    # ---- projections, WHERE, CASE -------------------------------------------------------------
    ("proj_all", "SELECT device, temp, hum, ts, site, payload FROM telemetry"),
    ("proj_alias_literals",
     "SELECT device AS d, ts, 1 AS i_lit, 'k' AS k, TRUE AS t, 2.5 AS dec_lit, 1e0 AS dbl_lit "
     "FROM telemetry"),
    ("where_and_or",
     "SELECT device, temp, hum, ts FROM telemetry "
     "WHERE temp > 25 AND (hum < 50 OR site = 'south')"),
    ("where_not_three_valued",
     "SELECT device, temp, ts FROM telemetry WHERE NOT (temp > 20)"),
    ("case_searched",
     "SELECT device, ts, CASE WHEN temp IS NULL THEN 'unknown' WHEN temp < 0 THEN 'freezing' "
     "WHEN temp < 25 THEN 'ok' ELSE 'hot' END AS band FROM telemetry"),
    ("case_simple_no_else",
     "SELECT ts, site, CASE site WHEN 'north' THEN 1 WHEN 'south' THEN 2 END AS code, "
     "CASE WHEN hum > 50 THEN temp ELSE -temp END AS signed_temp FROM telemetry"),
    # ---- arithmetic and comparison -----------------------------------------------------------
    ("arith_int",
     "SELECT ts, hum, hum + 1 AS p, hum - 3 AS m, hum * 2 AS t, hum / 7 AS d, hum % 7 AS r, "
     "-hum AS neg, MOD(hum, 4) AS md FROM telemetry"),
    ("arith_double",
     "SELECT ts, temp + 0.5 AS p, temp * 2 AS t, temp / 3 AS d, temp - hum AS mix, "
     "CAST(hum AS DOUBLE) / 2 AS hd, temp * temp AS sq FROM telemetry"),
    ("arith_double_div_int",
     "SELECT ts, temp / hum AS q, hum / 3.0 AS hq FROM telemetry WHERE hum <> 0"),
    ("comparison",
     "SELECT ts, temp >= 20 AS ge, hum <> 50 AS ne, device = 'dev-03' AS eq, temp < hum AS lt, "
     "site > 'm' AS sgt, ts < TIMESTAMP '2026-01-01 00:05:00' AS early FROM telemetry"),
    # ---- NULL semantics ----------------------------------------------------------------------
    ("null_is",
     "SELECT ts, device IS NULL AS dn, temp IS NOT NULL AS tnn, hum IS NULL AS hn, "
     "(temp > 20) IS TRUE AS hot_true, (temp > 20) IS NOT FALSE AS hot_not_false FROM telemetry"),
    ("null_coalesce_nullif",
     "SELECT ts, COALESCE(temp, -1.0) AS t, COALESCE(device, site, 'none') AS who, "
     "NULLIF(hum, 50) AS h, NULLIF(site, '') AS s FROM telemetry"),
    ("null_compare",
     "SELECT ts, hum = CAST(NULL AS INT) AS eq_null, temp + CAST(NULL AS DOUBLE) AS plus_null, "
     "hum > 0 OR temp > 0 AS either, hum > 0 AND temp > 0 AS both_ FROM telemetry"),
    ("in_between",
     "SELECT ts, hum IN (10, 20, 30) AS h_in, hum NOT IN (1, 2, 3) AS h_not_in, "
     "device IN ('dev-01', 'dev-02') AS d_in, temp BETWEEN 10 AND 20 AS t_btw, "
     "hum NOT BETWEEN 0 AND 50 AS h_nbtw FROM telemetry"),
    ("where_in_between",
     "SELECT device, temp, ts FROM telemetry WHERE device IN ('dev-05', 'dev-06', 'dev-07') "
     "AND temp BETWEEN -5 AND 30"),
    ("like",
     "SELECT ts, site, device LIKE 'dev-1%' AS d1, site LIKE '_ast%' AS east, "
     "site NOT LIKE '%th' AS not_th, site LIKE '% %' AS spaced FROM telemetry"),
    # ---- strings -----------------------------------------------------------------------------
    ("string_case_length_substring",
     "SELECT ts, UPPER(device) AS u, LOWER(site) AS l, CHAR_LENGTH(site) AS n, "
     "SUBSTRING(device, 5) AS tail, SUBSTRING(device FROM 1 FOR 3) AS head, "
     "SUBSTRING(site, 2, 2) AS mid FROM telemetry"),
    ("string_concat_trim_replace",
     "SELECT ts, CONCAT(device, '/', site) AS c, device || '@' || site AS p, TRIM(site) AS t, "
     "REPLACE(device, 'dev', 'd') AS r, POSITION('-' IN device) AS pos, "
     "POSITION('th' IN site) AS pos2 FROM telemetry"),
    ("string_where",
     "SELECT device, site, ts FROM telemetry WHERE TRIM(site) = 'west' OR UPPER(site) = 'EAST-1'"),
    # ---- math --------------------------------------------------------------------------------
    ("math_round_floor_ceil",
     "SELECT ts, ABS(temp) AS a, ROUND(temp, 1) AS r1, ROUND(temp, 0) AS r0, FLOOR(temp) AS f, "
     "CEIL(temp) AS c, ABS(hum) AS ah FROM telemetry"),
    ("math_power_sqrt_mod_ln_exp",
     "SELECT ts, POWER(temp, 2) AS p2, SQRT(ABS(temp)) AS sq, MOD(hum, 7) AS m, LN(hum) AS ln_h, "
     "EXP(temp / 10) AS e FROM telemetry WHERE hum > 0"),
    # ---- JSON --------------------------------------------------------------------------------
    ("json_value",
     "SELECT ts, JSON_VALUE(payload, '$.a.b') AS b_str, "
     "JSON_VALUE(payload, '$.a.b' RETURNING DOUBLE) AS b, "
     "JSON_VALUE(payload, '$.a.c' RETURNING INT) AS c, JSON_VALUE(payload, '$.tag') AS tag, "
     "JSON_VALUE(payload, '$.missing') AS missing FROM telemetry"),
    ("json_value_where",
     "SELECT device, ts, JSON_VALUE(payload, '$.a.b' RETURNING DOUBLE) * 2 AS b2 FROM telemetry "
     "WHERE JSON_VALUE(payload, '$.a.b' RETURNING DOUBLE) > 1.0 "
     "AND JSON_VALUE(payload, '$.tag') = 'x'"),
    # ---- time --------------------------------------------------------------------------------
    ("time_extract",
     "SELECT ts, EXTRACT(SECOND FROM ts) AS s, EXTRACT(MINUTE FROM ts) AS mi, "
     "EXTRACT(HOUR FROM ts) AS h, EXTRACT(DAY FROM ts) AS d, EXTRACT(MONTH FROM ts) AS mo, "
     "EXTRACT(YEAR FROM ts) AS y FROM telemetry"),
    ("time_date_format",
     "SELECT ts, DATE_FORMAT(ts, 'yyyy-MM-dd HH:mm') AS m, DATE_FORMAT(ts, 'HH:mm:ss.SSS') AS t "
     "FROM telemetry"),
    ("time_add_diff",
     "SELECT ts, TIMESTAMPADD(SECOND, 30, ts) AS plus30, TIMESTAMPADD(MINUTE, -1, ts) AS minus1m, "
     "TIMESTAMPDIFF(SECOND, TIMESTAMP '2026-01-01 00:00:00', ts) AS secs, "
     "ts + INTERVAL '1' SECOND AS plus1 FROM telemetry"),
    ("time_floor_ceil",
     "SELECT ts, FLOOR(ts TO MINUTE) AS fm, CEIL(ts TO MINUTE) AS cm, FLOOR(ts TO SECOND) AS fs "
     "FROM telemetry"),
    ("time_where_range",
     "SELECT device, ts FROM telemetry WHERE ts >= TIMESTAMP '2026-01-01 00:03:00' "
     "AND ts < TIMESTAMP '2026-01-01 00:04:00'"),
    # ---- CAST --------------------------------------------------------------------------------
    ("cast_to_string",
     "SELECT ts, CAST(ts AS STRING) AS ts_s, CAST(temp AS STRING) AS temp_s, "
     "CAST(hum AS STRING) AS hum_s FROM telemetry"),
    ("cast_between_types",
     "SELECT ts, CAST(temp AS INT) AS ti, CAST(hum AS DOUBLE) AS hd, CAST(hum AS BIGINT) AS hb, "
     "CAST('42' AS INT) AS lit, CAST(JSON_VALUE(payload, '$.a.c') AS INT) AS c, "
     "CAST(SUBSTRING(device, 5) AS INT) AS dev_no, CAST(hum > 50 AS STRING) AS hb_s FROM telemetry"),
    # ---- TUMBLE ------------------------------------------------------------------------------
    ("tumble_1m_device",
     "SELECT window_start, window_end, device, COUNT(*) AS n, AVG(temp) AS avg_temp, "
     f"MAX(temp) AS max_temp, MIN(temp) AS min_temp FROM {TUMBLE_1M} "
     "GROUP BY window_start, window_end, device"),
    ("tumble_10s_global_counts",
     "SELECT window_start, window_end, window_time, COUNT(*) AS n, COUNT(temp) AS n_temp, "
     f"COUNT(DISTINCT device) AS devices FROM {TUMBLE_10S} "
     "GROUP BY window_start, window_end, window_time"),
    ("tumble_int_aggs_by_site",
     "SELECT window_start, window_end, site, AVG(hum) AS avg_hum, SUM(hum) AS sum_hum, "
     f"MIN(hum) AS min_hum, MAX(hum) AS max_hum, SUM(temp) AS sum_temp FROM {TUMBLE_1M} "
     "GROUP BY window_start, window_end, site"),
    ("tumble_stddev_var",
     "SELECT window_start, window_end, STDDEV_POP(temp) AS sp, STDDEV_SAMP(temp) AS ss, "
     f"VAR_POP(temp) AS vp, VAR_SAMP(temp) AS vs FROM {TUMBLE_1M} "
     "GROUP BY window_start, window_end"),
    ("tumble_stddev_var_device",
     "SELECT window_start, window_end, device, STDDEV_POP(hum) AS sp, STDDEV_SAMP(temp) AS ss, "
     f"VAR_POP(temp) AS vp, VAR_SAMP(CAST(hum AS DOUBLE)) AS vs FROM {TUMBLE_1M} "
     "GROUP BY window_start, window_end, device"),
    ("tumble_first_last_value",
     "SELECT window_start, window_end, device, FIRST_VALUE(temp) AS first_temp, "
     f"LAST_VALUE(temp) AS last_temp, FIRST_VALUE(site) AS first_site FROM {TUMBLE_1M} "
     "GROUP BY window_start, window_end, device"),
    ("tumble_filter_clause",
     "SELECT window_start, window_end, COUNT(*) FILTER (WHERE temp > 25) AS hot, "
     "SUM(hum) FILTER (WHERE site = 'north') AS north_hum, "
     f"AVG(temp) FILTER (WHERE device IS NOT NULL) AS avg_known FROM {TUMBLE_30S} "
     "GROUP BY window_start, window_end"),
    ("tumble_having",
     "SELECT window_start, window_end, device, COUNT(*) AS n, AVG(temp) AS a FROM "
     f"{TUMBLE_1M} GROUP BY window_start, window_end, device "
     "HAVING COUNT(*) > 8 AND AVG(temp) > 15"),
    ("tumble_expr_over_aggs",
     "SELECT window_start, window_end, MAX(temp) - MIN(temp) AS spread, "
     "SUM(temp) / COUNT(temp) AS mean, CAST(COUNT(*) AS DOUBLE) / 30 AS rate, "
     "ROUND(AVG(temp), 2) AS avg2, SUM(CASE WHEN temp > 25 THEN 1 ELSE 0 END) AS hot, "
     f"COUNT(*) * 2 + 1 AS odd FROM {TUMBLE_30S} GROUP BY window_start, window_end"),
    ("tumble_where_two_keys",
     "SELECT window_start, window_end, device, site, COUNT(*) AS n, SUM(hum) AS h "
     f"FROM {TUMBLE_1M} WHERE device IS NOT NULL AND temp IS NOT NULL "
     "GROUP BY window_start, window_end, device, site"),
    ("tumble_count_distinct_json",
     "SELECT window_start, window_end, site, COUNT(DISTINCT hum) AS dh, "
     "AVG(JSON_VALUE(payload, '$.a.b' RETURNING DOUBLE)) AS avg_b, "
     f"COUNT(JSON_VALUE(payload, '$.tag')) AS tags FROM {TUMBLE_1M} "
     "GROUP BY window_start, window_end, site"),
    ("tumble_percentile",
     "SELECT window_start, window_end, PERCENTILE(temp, 0.5) AS p50, PERCENTILE(temp, 0.9) AS p90, "
     f"PERCENTILE(hum, 0.25) AS h25 FROM {TUMBLE_1M} GROUP BY window_start, window_end"),
    ("tumble_percentile_device",
     "SELECT window_start, window_end, device, PERCENTILE(temp, 0.5) AS median_temp, "
     f"PERCENTILE(hum, 1.0) AS max_hum FROM {TUMBLE_1M} GROUP BY window_start, window_end, device"),
    ("tumble_window_time_device",
     "SELECT window_start, window_end, window_time, device, MAX(hum) AS mh FROM "
     f"{TUMBLE_10S} GROUP BY window_start, window_end, window_time, device"),
    # ---- HOP, CUMULATE, SESSION --------------------------------------------------------------
    ("hop_device",
     "SELECT window_start, window_end, device, COUNT(*) AS n, AVG(temp) AS a FROM "
     f"{HOP_10S_30S} "
     "GROUP BY window_start, window_end, device"),
    ("hop_global",
     "SELECT window_start, window_end, window_time, COUNT(*) AS n, MAX(temp) AS mx, "
     f"SUM(hum) AS sh, AVG(hum) AS ah FROM {HOP_15S_1M} "
     "GROUP BY window_start, window_end, window_time"),
    ("cumulate_site",
     "SELECT window_start, window_end, site, COUNT(*) AS n, SUM(temp) AS st FROM "
     f"{CUMULATE_10S_1M} "
     "GROUP BY window_start, window_end, site"),
    ("cumulate_global",
     "SELECT window_start, window_end, COUNT(DISTINCT device) AS devices, MIN(temp) AS mn, "
     f"STDDEV_POP(temp) AS sd FROM {CUMULATE_20S_2M} "
     "GROUP BY window_start, window_end"),
    ("session_device",
     "SELECT window_start, window_end, device, COUNT(*) AS n, AVG(temp) AS a, MAX(hum) AS mh "
     "FROM TABLE(SESSION(TABLE telemetry PARTITION BY device, DESCRIPTOR(ts), "
     "INTERVAL '10' SECOND)) GROUP BY window_start, window_end, device"),
    ("session_site",
     "SELECT window_start, window_end, window_time, site, COUNT(*) AS n, SUM(hum) AS sh "
     "FROM TABLE(SESSION(TABLE telemetry PARTITION BY site, DESCRIPTOR(ts), "
     "INTERVAL '2' SECOND)) GROUP BY window_start, window_end, window_time, site"),
    # ---- OVER --------------------------------------------------------------------------------
    ("over_rows_sum_count_avg",
     f"SELECT device, ts, temp, SUM(temp) OVER w AS s, COUNT(temp) OVER w AS n, "
     f"COUNT(*) OVER w AS n_all, AVG(temp) OVER w AS a FROM telemetry WINDOW w AS ({OVER_ROWS})"),
    ("over_rows_min_max_int",
     f"SELECT device, ts, hum, MIN(hum) OVER w AS mn, MAX(hum) OVER w AS mx, "
     f"SUM(hum) OVER w AS s, AVG(hum) OVER w AS a FROM telemetry WINDOW w AS ({OVER_ROWS})"),
    ("over_range_sum_count_avg",
     f"SELECT device, ts, temp, SUM(temp) OVER w AS s, COUNT(*) OVER w AS n, "
     f"AVG(temp) OVER w AS a FROM telemetry WINDOW w AS ({OVER_RANGE})"),
    ("over_range_min_max",
     f"SELECT device, ts, MIN(temp) OVER w AS mn, MAX(temp) OVER w AS mx, "
     f"COUNT(hum) OVER w AS nh, SUM(hum) OVER w AS sh FROM telemetry WINDOW w AS ({OVER_RANGE})"),
    ("over_rows_unbounded",
     "SELECT device, ts, SUM(hum) OVER w AS s, COUNT(*) OVER w AS n, MAX(temp) OVER w AS mx "
     "FROM telemetry WINDOW w AS (PARTITION BY device ORDER BY ts "
     "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"),
    ("over_rows_inline_site",
     "SELECT site, ts, SUM(hum) OVER (PARTITION BY site ORDER BY ts "
     "ROWS BETWEEN 3 PRECEDING AND CURRENT ROW) AS s FROM telemetry"),
]


# Joins with a reference table: kinedge runs them as lookup joins (the file's rows by key);
# Flink's filesystem connector is not a lookup source, so the same SQL is a regular join there,
# which gives the same rows for a table that does not change. (A LEFT regular join in Flink
# emits updates, which the oracle cannot write: LEFT lookup joins are tested in the unit tests.)
_JOIN_CASES = [
    ("join_reference_inner",
     "SELECT t.device, t.ts, t.temp, d.building, d.level FROM telemetry AS t "
     "JOIN devices AS d ON t.device = d.device"),
    ("join_reference_filter_expr",
     "SELECT t.ts, UPPER(d.building) AS b, d.level * 10 + t.hum AS code FROM telemetry t "
     "JOIN devices d ON d.device = t.device WHERE t.temp > 20 AND d.level > 0"),
]


# Window joins of two streams: two more inputs (TABLES), each a stream in kinedge and a JSON
# file in Flink, with out-of-order rows but none behind its own watermark: which rows are late
# in a two-input operator depends on how the inputs interleave (Flink reads its two files in
# parallel), so only the unit tests have late rows in a join. Devices, values and keys are
# NULL now and then; some devices are on one side only, and some windows have rows on one
# side only (outer joins give NULLs there).
TABLES = {
    "temps": {"columns": "device STRING, temp DOUBLE, ts TIMESTAMP(3), "
                         "WATERMARK FOR ts AS ts - INTERVAL '5' SECOND",
              "file": "temps.jsonl"},
    "levels": {"columns": "device STRING, level INT, ts TIMESTAMP(3), "
                          "WATERMARK FOR ts AS ts - INTERVAL '5' SECOND",
               "file": "levels.jsonl"},
}


def make_table_rows(seed: int = SEED) -> dict:
    """{table: rows in file (= arrival) order}."""
    rnd = random.Random(seed + 1)
    out = {}
    for table, step, devices, n in (("temps", 900, 8, 700), ("levels", 1700, 10, 370)):
        rows, used, max_ms = [], set(), 0
        for i in range(n):
            ms = i * step + rnd.randint(0, 3000)
            ms = max(ms, max_ms - 4000)             # never behind the watermark (max - 5 s)
            while ms in used:
                ms += 1
            used.add(ms)
            max_ms = max(max_ms, ms)
            # levels skip minute 4 entirely: windows with rows on the temps side only.
            if table == "levels" and 240_000 <= ms < 300_000:
                continue
            device = None if rnd.random() < 0.04 else f"dev-{rnd.randint(1, devices):02d}"
            row = {"device": device, "ts": fmt_ts(BASE + timedelta(milliseconds=ms))}
            if table == "temps":
                row["temp"] = None if rnd.random() < 0.05 else round(rnd.gauss(20, 8), 2)
            else:
                row["level"] = None if rnd.random() < 0.05 else rnd.randint(0, 40)
            rows.append(row)
        out[table] = rows
    return out


def write_tables(directory) -> dict:
    rows = make_table_rows()
    for table, spec in TABLES.items():
        with open(os.path.join(directory, spec["file"]), "w") as f:
            for r in rows[table]:
                f.write(json.dumps(r) + "\n")
    return rows


def table_ddl(case: dict, input_path, engine: str) -> str:
    """The CREATE TABLE statements of a case's extra input tables: a JSON file in Flink, a
    stream of the same name in kinedge."""
    directory = os.path.dirname(os.path.abspath(input_path))
    out = []
    for name in case.get("tables", []):
        spec = TABLES[name]
        if engine == "flink":
            path = os.path.join(directory, spec["file"]).replace("'", "''")
            with_ = f"'connector' = 'filesystem', 'path' = '{path}', 'format' = 'json'"
        else:
            with_ = (f"'connector' = 'kinesis', 'stream' = '{name}', 'format' = 'json', "
                     "'scan.stream.initpos' = 'TRIM_HORIZON'")
        out.append(f"CREATE TEMPORARY TABLE {name} ({spec['columns']}) WITH ({with_})")
    return "; ".join(out)


def _side(table: str, tvf: str, select: str = "*", where: str = "") -> str:
    return f"(SELECT {select} FROM TABLE({tvf.format(t=table)}){where})"


_TUMBLE = "TUMBLE(TABLE {t}, DESCRIPTOR(ts), INTERVAL '1' MINUTE)"
_HOP = "HOP(TABLE {t}, DESCRIPTOR(ts), INTERVAL '30' SECOND, INTERVAL '1' MINUTE)"
_CUMULATE = "CUMULATE(TABLE {t}, DESCRIPTOR(ts), INTERVAL '20' SECOND, INTERVAL '1' MINUTE)"
_ON = "L.window_start = R.window_start AND L.window_end = R.window_end"
_WINDOW_JOIN_CASES = [
    ("window_join_inner_tumble",
     f"SELECT L.device, L.temp, L.ts, R.level, CAST(R.ts AS TIMESTAMP(3)) AS level_ts, L.window_start, "
     f"L.window_end "
     f"FROM {_side('temps', _TUMBLE)} L JOIN {_side('levels', _TUMBLE)} R "
     f"ON L.device = R.device AND {_ON}"),
    ("window_join_left_tumble",
     f"SELECT L.device, L.temp, R.level, L.window_start FROM {_side('temps', _TUMBLE)} L "
     f"LEFT JOIN {_side('levels', _TUMBLE)} R ON L.device = R.device AND {_ON}"),
    ("window_join_right_tumble",
     f"SELECT R.device, L.temp, R.level, R.window_end FROM {_side('temps', _TUMBLE)} L "
     f"RIGHT JOIN {_side('levels', _TUMBLE)} R ON L.device = R.device AND {_ON}"),
    ("window_join_full_tumble",
     f"SELECT COALESCE(L.device, R.device) AS device, L.temp, R.level, "
     f"COALESCE(L.window_start, R.window_start) AS window_start "
     f"FROM {_side('temps', _TUMBLE)} L FULL OUTER JOIN {_side('levels', _TUMBLE)} R "
     f"ON L.device = R.device AND {_ON}"),
    ("window_join_hop",
     f"SELECT L.device, L.temp, R.level, L.window_start, L.window_end "
     f"FROM {_side('temps', _HOP)} L "
     f"JOIN {_side('levels', _HOP)} R "
     f"ON L.device = R.device AND {_ON}"),
    ("window_join_cumulate_left",
     f"SELECT L.device, L.temp, R.level, L.window_start, L.window_end "
     f"FROM {_side('temps', _CUMULATE)} L "
     f"LEFT JOIN {_side('levels', _CUMULATE)} R "
     f"ON L.device = R.device AND {_ON}"),
    ("window_join_residual_where",
     f"SELECT L.device, L.temp - R.level AS margin, L.window_start "
     f"FROM {_side('temps', _TUMBLE)} L JOIN {_side('levels', _TUMBLE)} R "
     f"ON L.device = R.device AND {_ON} AND L.temp > R.level WHERE R.level > 5"),
    ("window_join_projected_sides",
     f"SELECT L.d, L.t, R.lv, L.window_end FROM "
     f"{_side('temps', _TUMBLE, 'device AS d, temp * 2 AS t, window_start, window_end', ' WHERE temp IS NOT NULL')} L "
     f"FULL OUTER JOIN "
     f"{_side('levels', _TUMBLE, 'UPPER(device) AS dev, level AS lv, window_start, window_end', ' WHERE level < 30')} R "
     f"ON UPPER(L.d) = R.dev AND {_ON}"),
    ("window_join_no_key",
     f"SELECT L.window_start, L.temp, R.level FROM {_side('temps', _TUMBLE)} L "
     f"JOIN {_side('levels', _TUMBLE)} R ON {_ON} AND L.device = 'dev-01' AND R.device = 'dev-02'"),
]


def cases() -> list[dict]:
    """[{name, columns, sql, ordered, prelude?, tables?}]: every result is compared as a
    multiset."""
    out = [{"name": n, "columns": DDL_COLUMNS, "sql": s, "ordered": False} for n, s in _CASES]
    out += [{"name": n, "columns": DDL_COLUMNS, "sql": s, "ordered": False, "prelude": PRELUDE_JOIN}
            for n, s in _JOIN_CASES]
    out += [{"name": n, "columns": DDL_COLUMNS, "sql": s, "ordered": False,
             "tables": ["temps", "levels"]} for n, s in _WINDOW_JOIN_CASES]
    return out


def write_cases(path, only=None) -> list[dict]:
    cs = [c for c in cases() if only is None or c["name"] in only]
    with open(path, "w") as f:
        json.dump(cs, f, indent=1)
    return cs


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: cases.py INPUT.jsonl CASES.json")
    rows = write_input(sys.argv[1])
    cs = write_cases(sys.argv[2])
    print(f"{len(rows)} rows, {len(cs)} cases")
