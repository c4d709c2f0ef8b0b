"""Whole-pipeline benchmark (issue: DEL engine): 1M and 10M-row synthetic panels, pandas in memory.

Prints rows/s and peak memory against the panel's in-memory size. Each run is a fresh child process, so
its peak RSS is its own. Usage: python benchmarks/bench_pipeline.py [--sizes 1e6 1e7] [--keep]
Targets: 10M rows end to end in under 15 s on 2 cores; peak memory under 4x the panel's in-memory size.
"intervals s": what the forecast intervals (on by default) add to a run, fit with them on less fit without;
"calendar s": what the calendar level (period_level "auto", the default: its fit and F test) adds, likewise.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(__file__).parent / "_data"

CHILD = r"""
import json, resource, sys, time
import pyxl_del
from pyxl_del.engine.data import read_panel
path = sys.argv[1]
cfg = pyxl_del.Config()
t0 = time.perf_counter()
frame, _ = read_panel(path, cfg)
panel_bytes = int(frame.memory_usage(deep=True).sum())
t_read = time.perf_counter() - t0
del frame
t0 = time.perf_counter()
result = pyxl_del.run(path, cfg, backend="pandas")
total = time.perf_counter() - t0
# What the forecast intervals ([forecast] intervals, on by default) add: every stage after aggregation, on and off.
from pyxl_del.engine.pipeline import fit
fits = {}
for on in (True, False):
    t0 = time.perf_counter()
    fit(result.stats, cfg.with_overrides(forecast={"intervals": on}))
    fits[on] = time.perf_counter() - t0
calendar = {}
for level in ("auto", "none"):
    t0 = time.perf_counter()
    fit(result.stats, cfg.with_overrides(forecast={"intervals": False}, calibration={"period_level": level}))
    calendar[level] = time.perf_counter() - t0
print(json.dumps({"rows": result.stats.n_rows, "seconds": total, "read_seconds": t_read,
                  "panel_bytes": panel_bytes, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "fit_on": fits[True], "fit_off": fits[False], "calendar": calendar["auto"] - calendar["none"]}))
"""


def make_panel(rows: int) -> Path:
    """A realistic panel of about `rows` rows (3 segments x 36 cohorts), written once and reused."""
    from pyxl_del.datasets.sample import realistic_matrices, simulate_panel, write_panel

    path = DATA / f"panel_{rows:.0e}.parquet"
    if path.exists():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    cohorts = [f"{2023 + i // 12}-{i % 12 + 1:02d}" for i in range(36)]
    # Cohort c is observed for 36 - c months: sum over cohorts of (months + 1) rows per loan.
    rows_per_loan_set = 3 * sum(36 - i for i in range(36))
    loans = max(1, round(rows / rows_per_loan_set))
    t0 = time.perf_counter()
    frame = simulate_panel(realistic_matrices(), cohorts=cohorts, as_of="2025-12", loans_per_cohort=loans,
                           segments=("CASH LOAN", "CD", "TW/Moto"), seed=1)
    write_panel(frame, path)
    print(f"  generated {len(frame):,} rows in {time.perf_counter() - t0:.1f} s -> {path}")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=float, default=[1e6, 1e7])
    parser.add_argument("--keep", action="store_true", help="keep the generated panels in benchmarks/_data")
    args = parser.parse_args()
    print(f"{'rows':>12} {'seconds':>8} {'rows/s':>12} {'panel MB':>9} {'peak MB':>8} {'peak/panel':>10} "
          f"{'intervals s':>11} {'calendar s':>10}")
    results = []
    for size in args.sizes:
        path = make_panel(int(size))
        out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(r)
        print(f"{r['rows']:>12,} {r['seconds']:>8.2f} {r['rows'] / r['seconds']:>12,.0f} "
              f"{r['panel_bytes'] / 1e6:>9.0f} {r['peak_rss'] / 1e6:>8.0f} {r['peak_rss'] / r['panel_bytes']:>10.2f} "
              f"{r['fit_on'] - r['fit_off']:>11.2f} {r['calendar']:>10.2f}")
    if len(results) > 1:
        a, b = results[0], results[-1]
        print(f"time ratio {b['seconds'] / a['seconds']:.1f}x for {b['rows'] / a['rows']:.1f}x the rows")
    if not args.keep:
        shutil.rmtree(DATA, ignore_errors=True)


if __name__ == "__main__":
    main()
