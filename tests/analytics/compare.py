"""Row-by-row comparison of two query results (the analytics' differential test).

compare(expected_rows, actual_rows, ordered=False) -> "" when they agree, else a readable diff.

Rows are dicts (column name -> value). Unless `ordered`, the two lists are compared as
multisets. Two rows match when they have the same keys and each value matches: strings, ints,
bools and None exactly (a bool never equals an int; an int equals a float only when they are
the same number, 3 and 3.0, never within a tolerance); floats within 1e-9 relative, or 1e-12
absolute near zero; strings that both parse as timestamps
('yyyy-MM-dd HH:mm:ss[.fff]' or ISO with 'T', an optional 'Z') by the instant they name, so
'2026-01-01 00:00:03.9' equals '2026-01-01T00:00:03.900'.

    python tests/analytics/compare.py EXPECTED.jsonl ACTUAL.jsonl [--ordered]
"""
import json
import math
import re
import sys
from datetime import datetime

REL = 1e-9
ABS = 1e-12
_TS = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z?$")
SHOW = 10


def parse_ts(s: str):
    if not isinstance(s, str) or not _TS.match(s):
        return None
    s = s.rstrip("Z").replace("T", " ")
    base, _, frac = s.partition(".")
    try:
        dt = datetime.strptime(base, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    nanos = int((frac + "000000000")[:9]) if frac else 0
    return (dt, nanos)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def values_equal(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_num(a) and _is_num(b):
        if isinstance(a, int) and isinstance(b, int):
            return a == b
        if isinstance(a, int) or isinstance(b, int):
            # 3 against 3.0: the same number (a DECIMAL may print either way); 3 against 3.5
            # is not (AVG over INT is an INT in Flink).
            return float(a) == float(b)
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        if a == b:
            return True
        return abs(a - b) <= max(ABS, REL * max(abs(a), abs(b)))
    if isinstance(a, str) and isinstance(b, str):
        if a == b:
            return True
        ta, tb = parse_ts(a), parse_ts(b)
        return ta is not None and ta == tb
    return a == b


def rows_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(values_equal(a[k], b[k]) for k in a)


def _canon(v):
    """A sort/bucket key under which equal values (as values_equal says) fall together, up to
    float tolerance: floats are bucketed coarsely and matched exactly afterwards."""
    if v is None:
        return (0, "")
    if isinstance(v, bool):
        return (1, str(v))
    if _is_num(v):
        f = float(v)
        if math.isnan(f):
            return (2, "nan")
        return (2, f"{f:.6g}" if abs(f) > 1e-6 else "0")
    if isinstance(v, str):
        ts = parse_ts(v)
        if ts is not None:
            return (3, f"{ts[0].isoformat()}.{ts[1]:09d}")
        return (4, v)
    return (5, json.dumps(v, sort_keys=True))


def _row_key(r: dict):
    return tuple(sorted((k, _canon(v)) for k, v in r.items()))


def _fmt(r: dict) -> str:
    return json.dumps(r, sort_keys=True)


def compare(expected_rows: list[dict], actual_rows: list[dict], ordered: bool = False) -> str:
    """"" when the two results agree, else a diff naming at most 10 differing rows each side."""
    if ordered:
        exp_only, act_only = [], []
        for i in range(max(len(expected_rows), len(actual_rows))):
            e = expected_rows[i] if i < len(expected_rows) else None
            a = actual_rows[i] if i < len(actual_rows) else None
            if e is None or a is None or not rows_equal(e, a):
                if e is not None:
                    exp_only.append((i, e))
                if a is not None:
                    act_only.append((i, a))
    else:
        # Bucket by a coarse key, then match exactly (with tolerance) inside a bucket; a row
        # whose float sits at a bucket's edge is retried against all the leftovers.
        buckets: dict = {}
        for i, a in enumerate(actual_rows):
            buckets.setdefault(_row_key(a), []).append((i, a))
        exp_left = []
        for i, e in enumerate(expected_rows):
            cands = buckets.get(_row_key(e), [])
            for j, (_, a) in enumerate(cands):
                if rows_equal(e, a):
                    del cands[j]
                    break
            else:
                exp_left.append((i, e))
        act_left = [x for c in buckets.values() for x in c]
        exp_only = []
        for i, e in exp_left:
            for j, (_, a) in enumerate(act_left):
                if rows_equal(e, a):
                    del act_left[j]
                    break
            else:
                exp_only.append((i, e))
        act_only = sorted(act_left, key=lambda x: x[0])
    if not exp_only and not act_only:
        return ""
    out = [f"{len(expected_rows)} expected rows, {len(actual_rows)} actual rows; "
           f"{len(exp_only)} expected rows unmatched, {len(act_only)} actual rows unmatched"
           + (" (compared in order)" if ordered else " (compared as multisets)")]
    keys_e = set().union(*(r.keys() for r in expected_rows)) if expected_rows else set()
    keys_a = set().union(*(r.keys() for r in actual_rows)) if actual_rows else set()
    if keys_e != keys_a:
        out.append(f"columns differ: expected {sorted(keys_e)}, actual {sorted(keys_a)}")
    if exp_only:
        out.append(f"expected, not in actual (first {min(SHOW, len(exp_only))}):")
        out += [f"  #{i}: {_fmt(r)}" for i, r in exp_only[:SHOW]]
    if act_only:
        out.append(f"actual, not in expected (first {min(SHOW, len(act_only))}):")
        out += [f"  #{i}: {_fmt(r)}" for i, r in act_only[:SHOW]]
    return "\n".join(out)


def read_jsonl(path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: compare.py EXPECTED.jsonl ACTUAL.jsonl [--ordered]")
    diff = compare(read_jsonl(sys.argv[1]), read_jsonl(sys.argv[2]),
                   ordered=len(sys.argv) == 4 and sys.argv[3] == "--ordered")
    print(diff or "same")
    sys.exit(1 if diff else 0)
