"""Compare a pytest-benchmark run with a stored baseline and flag regressions.

    python -m pytest -q tests/perf --benchmark-json=.benchmarks/run.json
    python -m bench.compare bench/baselines/cpu-2core.json .benchmarks/run.json [--threshold 0.25]

Per test: the median time (a regression: more than `threshold` slower than the baseline)
and, when the test records one, extra_info["ratio"] (the speedup of a fast method over
naive, measured in the same run; a regression: more than `threshold` lower). Times only
compare on the same machine; the ratio also holds across machines, hence --ratio-only.
Exit status 1 when a regression (or a test missing from the run) is found.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from pixelcnn.cli import Parser


def load(path: str) -> dict:
    """{test fullname: benchmark entry}, plus the file's machine_info under None."""
    try:
        data = json.loads(Path(path).read_text())
        out = {b["fullname"]: b for b in data["benchmarks"]}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SystemExit(f"{path}: not a pytest-benchmark JSON file ({type(e).__name__}: {e})")
    out[None] = data.get("machine_info", {})
    return out


def compare(base: dict, run: dict, threshold: float, ratio_only: bool = False) -> tuple:
    """(table rows, number of regressions)."""
    rows = [("test", "base median s", "run median s", "change", "base ratio", "run ratio",
             "change", "verdict")]
    bad = 0
    for name, b in base.items():
        if name is None:
            continue
        r = run.get(name)
        if r is None:
            rows.append((name, "", "", "", "", "", "", "MISSING from the run"))
            bad += 1
            continue
        tb, tr = b["stats"]["median"], r["stats"]["median"]
        dt = tr / tb - 1
        rb, rr = b.get("extra_info", {}).get("ratio"), r.get("extra_info", {}).get("ratio")
        dr = rr / rb - 1 if rb and rr else None
        why = []
        if not ratio_only and dt > threshold:
            why.append("slower")
        if dr is not None and dr < -threshold:
            why.append("ratio lower")
        bad += bool(why)
        rows.append((name, f"{tb:.4g}", f"{tr:.4g}", f"{dt:+.0%}",
                     "" if rb is None else f"{rb:.2f}", "" if rr is None else f"{rr:.2f}",
                     "" if dr is None else f"{dr:+.0%}",
                     "REGRESSION: " + ", ".join(why) if why else "ok"))
    return rows, bad


def main(argv=None) -> int:
    p = Parser(prog="python -m bench.compare", description=__doc__.split("\n")[0])
    p.add_argument("baseline", help="pytest-benchmark JSON (e.g. bench/baselines/*.json)")
    p.add_argument("run", help="pytest-benchmark JSON of the run to check")
    p.add_argument("--threshold", type=float, default=0.25,
                   help="tolerated relative change (default 0.25: 25%% slower / lower ratio)")
    p.add_argument("--ratio-only", action="store_true",
                   help="ignore absolute times (baseline from another machine)")
    args = p.parse_args(argv)
    if args.threshold <= 0:
        p.error("--threshold must be > 0")
    base, run = load(args.baseline), load(args.run)
    cpu = lambda m: (m.get("cpu") or {}).get("brand_raw")
    if not args.ratio_only and cpu(base[None]) != cpu(run[None]):
        print(f"note: different CPUs ({cpu(base[None])} vs {cpu(run[None])}): times are not "
              "comparable; consider --ratio-only")
    from .report import table
    rows, bad = compare(base, run, args.threshold, args.ratio_only)
    print(table(rows))
    print(f"{bad} regression(s) beyond {args.threshold:.0%}" if bad else
          f"no regression beyond {args.threshold:.0%}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
