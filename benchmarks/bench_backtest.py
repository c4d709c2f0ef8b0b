"""Rolling-backtest benchmark (issue #6): 12 origins on a 1M-row panel, end to end from a Parquet file.

Prints the seconds of each part: read + validate once, then per origin the cut, re-aggregation and the four
models (two chain fits, chain-ladder, last value), then writing the workbook. Target: under 30 s on 2 cores.
Usage: python benchmarks/bench_backtest.py [--rows 1e6] [--origins 12] [--horizon 12] [--keep]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).parent / "_data"


def make_panel(rows: int) -> Path:
    """The bundled sample's design (3 products, 30 cohorts, cohort risk effects) scaled to about ``rows`` rows."""
    from pyxl_del.datasets.sample import generate_sample, write_panel

    path = DATA / f"backtest_panel_{rows:.0e}.parquet"
    if path.exists():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    # The sample has 348,750 rows at 250 loans per (segment, cohort).
    loans = max(1, round(250 * rows / 348_750))
    t0 = time.perf_counter()
    frame = generate_sample(loans_per_cohort=loans)
    write_panel(frame, path)
    print(f"generated {len(frame):,} rows in {time.perf_counter() - t0:.1f} s -> {path}")
    return path


def main() -> None:
    import pyxl_del
    from pyxl_del.backtest.rolling import backtest
    from pyxl_del.excel.render import write_workbook
    from pyxl_del.sheets.backtest import backtest_sheets

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=float, default=1e6)
    parser.add_argument("--origins", type=int, default=12)
    parser.add_argument("--horizon", type=int, default=12)
    parser.add_argument("--keep", action="store_true", help="keep the generated panel in benchmarks/_data")
    args = parser.parse_args()

    path = make_panel(int(args.rows))
    marks: list[tuple[str, float]] = []
    t0 = time.perf_counter()
    result = backtest(path, pyxl_del.Config(), origins=args.origins, horizon=args.horizon,
                      progress=lambda name: marks.append((name, time.perf_counter())))
    total = time.perf_counter() - t0
    stages = [(name, end - start) for (name, start), (_, end) in zip(marks, [*marks[1:], ("end", t0 + total)])]
    origin_seconds = [s for name, s in stages if name.startswith("as-of")]
    print(f"rows {result.info['rows']:,}; {len(result.origins)} origins {result.origins[0]} .. {result.origins[-1]}; "
          f"horizon {args.horizon}; models {', '.join(result.models)}; {len(result.cells):,} scored cells")
    for name, seconds in stages:
        if not name.startswith("as-of"):
            print(f"  {name:<10} {seconds:6.2f} s")
    print(f"  per origin {sum(origin_seconds) / len(origin_seconds):6.2f} s (cut, aggregate, 4 models, compare) "
          f"x {len(origin_seconds)} = {sum(origin_seconds):.2f} s")
    t1 = time.perf_counter()
    result.winners  # noqa: B018 - the summary tables are computed on first use
    summary = time.perf_counter() - t1
    with tempfile.TemporaryDirectory() as tmp:
        t2 = time.perf_counter()
        write_workbook(backtest_sheets(result), Path(tmp) / "backtest.xlsx")
        workbook = time.perf_counter() - t2
    print(f"  summaries  {summary:6.2f} s\n  workbook   {workbook:6.2f} s")
    print(f"backtest {total:.2f} s (target < 30 s); with summaries and workbook {total + summary + workbook:.2f} s")
    if not args.keep:
        path.unlink()  # only this script's file: other benchmarks keep their panels in the same folder


if __name__ == "__main__":
    main()
