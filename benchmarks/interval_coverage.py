"""How well the forecast intervals hold (issue 14.8): coverage of the 80% interval, MAE of the mean and of the
median, and CRPS of the Markov forecast with the shipped defaults, backtested on several kinds of book.

Books: one known time-homogeneous chain (balances not amortising; the specified estimator is the true model there,
and the defaults are scored too), simulated vintage books (`simulate_vintage_book`), the bundled sample, and the
Fannie Mae 2017Q1 excerpt when present (cohort = first reporting month, segment = loan purpose; max_mob 63 so its
backtest reaches the data's end). Each is backtested at its last --origins as-of months, 1..--horizon months
ahead; the cells are the segments' (each segment's chain is its own) and, separately, the Portfolio's.

    python benchmarks/interval_coverage.py [--origins 6] [--horizon 12]

Prints a Markdown table (docs/backtesting.md quotes it): coverage by the randomised PIT (a tie counts in part),
plain coverage (ties counted whole), MAE of the expected path and of the median, and CRPS, in DEL points x 100.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from pyxl_del.backtest.rolling import backtest
from pyxl_del.datasets.sample import load_sample_panel, realistic_matrices, simulate_panel, simulate_vintage_book
from pyxl_del.engine.config import Config
from pyxl_del.engine.data import PORTFOLIO, month_label

FANNIE = Path("/work/shared/data/fannie-mae-2017Q1/2017Q1-part.csv")


def _known_chain(loans: int, seed: int, config: Config):
    """Four segments following one constant chain (the realistic rates of MOB step 8), 24 monthly cohorts."""
    chain = realistic_matrices(config, ["CASH LOAN"], config.forecast.max_mob)[0, 8]
    cohorts = [month_label([2023 * 12 + i])[0] for i in range(24)]
    return simulate_panel(chain, cohorts=cohorts, as_of=cohorts[-1], loans_per_cohort=loans,
                          segments=("A", "B", "C", "D"), seed=seed, config=config, amortisation=0.0)


def _books():
    small = Config().with_overrides(forecast={"max_mob": 12})
    books = [(f"one known chain, {n:,} loans per cohort, {label}", _known_chain(n, seed, small), config)
             for n, seed in ((500, 11), (2000, 12))
             for label, config in (("as specified", small.as_specified()), ("defaults", small))]
    books += [(f"vintage book (seed {seed}), defaults", simulate_vintage_book(seed).panel, Config())
              for seed in (1000, 1001)]
    books.append(("bundled sample, defaults", load_sample_panel(), Config()))
    if FANNIE.is_file():
        from pyxl_del.datasets.fannie import read_fannie

        panel, _ = read_fannie([FANNIE], Config().columns.model_dump())
        books.append(("Fannie Mae 2017Q1 excerpt, defaults, max_mob 63", panel,
                      Config().with_overrides(forecast={"max_mob": 63})))
    else:
        print(f"skipped the Fannie Mae excerpt: {FANNIE} is absent")
    return books


def _row(name: str, cells) -> str:
    error = (cells["forecast"] - cells["actual"]).abs()
    median_error = (cells["p50"] - cells["actual"]).abs()
    plain = ((cells["p10"] <= cells["actual"]) & (cells["actual"] <= cells["p90"])).mean()
    return (f"| {name} | {len(cells):,} | {cells['in_interval'].mean():.0%} | {plain:.0%} | {100 * error.mean():.3f} | "
            f"{100 * median_error.mean():.3f} | {100 * cells['crps'].mean():.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--origins", type=int, default=6)
    parser.add_argument("--horizon", type=int, default=12)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the books' thin-data warnings are not what this measures
    started = time.perf_counter()
    print("| book | cells | coverage | plain | MAE mean | MAE median | CRPS |")
    print("|---|---|---|---|---|---|---|")
    for name, panel, config in _books():
        cells = backtest(panel, config, origins=args.origins, horizon=args.horizon).cells
        cells = cells[cells["model"] == "markov"]
        segments = cells[cells["segment"] != PORTFOLIO]
        print(_row(name, segments))
        portfolio = cells[cells["segment"] == PORTFOLIO]
        if segments["segment"].nunique() > 1 and len(portfolio):
            print(_row(f"{name}: the Portfolio's cells", portfolio))
    print(f"\n{args.origins} origins, 1..{args.horizon} months ahead; MAE and CRPS in DEL points x 100; "
          f"{time.perf_counter() - started:.0f} s; numpy {np.__version__}")


if __name__ == "__main__":
    main()
