"""How long =DEL_FORECAST takes when Excel recalculates it: a script that prints figures (not a timed test).

The data argument is a ~100,000-row x 6-column range as COM hands it over (a tuple of row tuples, floats for
numbers, fresh string objects on every call, so no cached string hash helps), and each call goes through xlwings'
conversion the way xlwings.udfs.call_udf makes it (xlsm/xlwings_win.py runs that machinery off Windows). What
Excel itself spends marshalling the range over COM is not included: there is no Excel here.

    python benchmarks/bench_udfs.py [--rows-per-cohort 72] [--repeat 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pyxl_del import udf  # noqa: E402
from xlsm.build import sample_slice  # noqa: E402
from xlsm.xlwings_win import windows_udfs  # noqa: E402

TARGET_MS = 50.0


def com_cells(frame) -> tuple:
    """A DataFrame as COM hands a range over: header row, then rows; floats for numbers."""
    header = tuple(frame.columns)
    rows = frame.astype(object).where(frame.notna(), None).itertuples(index=False, name=None)
    return (header, *(tuple(float(v) if isinstance(v, int) else v for v in row) for row in rows))


def fresh(cells: tuple) -> tuple:
    """Equal cells made of new objects, as every COM read produces (a str caches its hash once computed)."""
    return tuple(tuple((v + " ")[:-1] if type(v) is str else v for v in row) for row in cells)


def timed(fn, cells: tuple, repeat: int) -> list[float]:
    """Milliseconds per call of ``fn`` on fresh copies of ``cells`` (one copy alive at a time, as in Excel)."""
    times = []
    for _ in range(repeat):
        value = fresh(cells)
        started = time.perf_counter()
        fn(value)
        times.append((time.perf_counter() - started) * 1000)
        del value
    return times


def describe(label: str, times: list[float]) -> str:
    ordered = sorted(times)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return f"  {label:<42} median {statistics.median(times):7.1f} ms   p90 {p90:7.1f} ms   (n={len(times)})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loans-per-cohort", type=int, default=72, help="loans per segment and cohort of the "
                                                                         "bundled sample (72: about 100,000 rows)")
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args(argv)

    frame = sample_slice(args.loans_per_cohort)
    cells = com_cells(frame)
    print(f"DEL_FORECAST on a {len(frame):,}-row x {frame.shape[1]}-column range "
          f"(xlwings conversion, data argument read raw; Python {sys.version.split()[0]})")
    with windows_udfs() as excel:
        udfs = excel.load()
        n = args.repeat
        first = timed(lambda c: excel.call(udfs.DEL_FORECAST, c, "CD"), cells, 1)[0]
        print(f"  {'first call (read the cells, fit, table)':<42} {first:7.1f} ms")
        same = timed(lambda c: excel.call(udfs.DEL_FORECAST, c, "CD"), cells, n)
        print(describe("recalculation, unchanged inputs", same))
        print(describe("other segment / DEL type, same data",
                       timed(lambda c: excel.call(udfs.DEL_FORECAST, c, "TW/Moto", "DEL90"), cells, n)))
        print(describe("DEL_FLAGS, same data", timed(lambda c: excel.call(udfs.DEL_FLAGS, c, "Portfolio"), cells, n)))
        print(describe("of which: fingerprint of the cells", timed(udf.data_key, cells, n)))
        print(f"  fits: {udf.FITS.misses} computed, {udf.FITS.hits} reused; "
              f"answers: {udf.TABLES.misses} computed, {udf.TABLES.hits} from the memo")
    verdict = "ok" if statistics.median(same) < TARGET_MS else "TOO SLOW"
    print(f"target: median recalculation under {TARGET_MS:.0f} ms: {verdict}")
    return 0 if verdict == "ok" else 1


if __name__ == "__main__":
    raise SystemExit(main())
