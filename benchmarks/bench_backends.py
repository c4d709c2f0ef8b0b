"""Aggregation backends at scale: `pyxl-del report` on 10M and 100M-row Parquet panels, DuckDB vs pandas (vs Spark).

Each run is a fresh child process (the command line, CSV tables out), so its time includes Python's start and
its peak RSS is its own (os.wait4). Runs repeat and the fastest is shown: the machine may be shared.

    python benchmarks/bench_backends.py [--skip-100m] [--spark] [--repeat 3] [--keep]

Targets (issue #7): 10M rows in under 5 s with DuckDB on 2 cores, peak under 1.5 GB; 100M rows within 24 GB,
time no worse than linear from 10M. The 100M panel is generated in parts (sample.iter_panel_parts) into
benchmarks/_data/backends/ and deleted afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).parent / "_data" / "backends"
SEGMENTS = ("CASH LOAN", "CD", "TW/Moto")
N_COHORTS = 60  # five years of monthly vintages
AS_OF = "2025-12"
BYTES_PER_ROW = 8  # Parquet (zstd) on disk is about 4 bytes a row; twice that leaves room for DuckDB's spill
FREE_AFTER = 2 << 30  # leave this much disk free


def _cohorts() -> list[str]:
    first = int(AS_OF[:4]) * 12 + int(AS_OF[5:]) - N_COHORTS
    return [f"{(first + i) // 12:04d}-{(first + i) % 12 + 1:02d}" for i in range(N_COHORTS)]


def _loans_per_cohort(rows: int) -> int:
    max_mob = 36
    rows_per_loan_set = len(SEGMENTS) * sum(min(N_COHORTS - 1 - i, max_mob) + 1 for i in range(N_COHORTS))
    return max(1, round(rows / rows_per_loan_set))


def make_panel(rows: int, parts: int) -> Path:
    """A realistic panel of about `rows` rows: one file (parts=1) or a folder of parts, written once."""
    from pyxl_del.datasets.sample import (
        iter_panel_parts,
        realistic_matrices,
        simulate_panel,
        write_panel,
    )

    target = DATA / (f"panel_{rows:.0e}.parquet" if parts == 1 else f"panel_{rows:.0e}")
    if target.exists():
        return target
    need = rows * BYTES_PER_ROW + FREE_AFTER
    DATA.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(DATA).free
    print(f"  disk: {free / 2**30:.1f} GB free, {need / 2**30:.1f} GB needed for {rows:,} rows")
    if free < need:
        raise SystemExit(f"not enough disk space in {DATA} for {rows:,} rows")
    started = time.perf_counter()
    kwargs = dict(loans_per_cohort=_loans_per_cohort(rows), segments=SEGMENTS, cohorts=_cohorts(), as_of=AS_OF)
    if parts == 1:
        frame = simulate_panel(realistic_matrices(), seed=1, **kwargs)
        write_panel(frame, target)
    else:
        write_panel(iter_panel_parts(realistic_matrices(), parts=parts, seed=1, **kwargs), target)
    print(f"  generated {target.name} in {time.perf_counter() - started:.0f} s "
          f"({sum(f.stat().st_size for f in ([target] if parts == 1 else target.iterdir())) / 2**20:.0f} MB)")
    return target


def report(data: Path, backend: str, env: dict | None = None) -> dict:
    """One `pyxl-del report` in a child process: wall and CPU seconds, the report's own seconds and rows, peak RSS.
    CPU seconds do not grow when other work shares the machine; wall seconds do."""
    out = Path(tempfile.mkdtemp(prefix="pyxl_del_bench_"))
    command = [sys.executable, "-m", "pyxl_del.cli", "report", str(data), "--backend", backend, "--out", str(out), "-q"]
    if backend == "spark":
        command += ["--spark-master", "local[2]"]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, **(env or {})})
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    stdout, stderr = child.stdout.read(), child.stderr.read()
    shutil.rmtree(out, ignore_errors=True)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{stderr[-3000:]}")
    summary = re.search(r"([\d,]+) rows, .* in ([\d.]+) s", stdout)
    return {"backend": backend, "rows": int(summary.group(1).replace(",", "")), "wall": wall,
            "cpu": usage.ru_utime + usage.ru_stime, "engine": float(summary.group(2)), "peak": usage.ru_maxrss * 1024}


def best_of(repeat: int, *args, **kwargs) -> dict:
    return min((report(*args, **kwargs) for _ in range(repeat)), key=lambda r: r["wall"])


def show(r: dict, label: str = "") -> None:
    # Spark's work happens in a JVM the child starts but does not wait for: its CPU and memory are not the child's.
    jvm = r["backend"] == "spark"
    cpu, peak = ("jvm", "jvm") if jvm else (f"{r['cpu']:.2f}", f"{r['peak'] / 2**20:,.0f}")
    print(f"{label or r['backend']:>16} {r['rows']:>13,} {r['wall']:>8.2f} {cpu:>8} {r['engine']:>8.2f} "
          f"{r['rows'] / r['wall']:>12,.0f} {peak:>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-100m", action="store_true", help="skip the 100M-row panel (generation takes minutes)")
    parser.add_argument("--spark", action="store_true", help="also run the Spark backend on local[2] (10M rows)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the fastest is shown")
    parser.add_argument("--keep", action="store_true", help="keep the generated panels in benchmarks/_data/backends")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    try:
        small = make_panel(10_000_000, parts=1)
        print(f"\n{'run':>16} {'rows':>13} {'wall s':>8} {'cpu s':>8} {'report s':>8} {'rows/s':>12} {'peak MB':>8}")
        duck = best_of(args.repeat, small, "duckdb")
        show(duck, "duckdb 10M")
        pandas = best_of(args.repeat, small, "pandas")
        show(pandas, "pandas 10M")
        print(f"pandas / duckdb: {pandas['wall'] / duck['wall']:.1f}x the time, "
              f"{pandas['peak'] / duck['peak']:.1f}x the memory")
        if args.spark:
            # A 1 GB driver (Spark's default) spills the window too much for 10M rows.
            spark = best_of(1, small, "spark", env={"PYSPARK_SUBMIT_ARGS": "--driver-memory 4g pyspark-shell"})
            show(spark, "spark local[2]")
            print(f"spark / duckdb: {spark['wall'] / duck['wall']:.1f}x the time (JVM start included)")
        if not args.skip_100m:
            big = make_panel(100_000_000, parts=20)
            large = best_of(max(1, args.repeat - 2), big, "duckdb")
            show(large, "duckdb 100M")
            rows, seconds = large["rows"] / duck["rows"], large["wall"] / duck["wall"]
            print(f"100M / 10M: {seconds:.1f}x the time for {rows:.1f}x the rows "
                  f"({'no worse than' if seconds <= rows else 'worse than'} linear); "
                  f"peak {large['peak'] / 2**30:.1f} GB")
    finally:
        if not args.keep:
            shutil.rmtree(DATA, ignore_errors=True)


if __name__ == "__main__":
    main()
