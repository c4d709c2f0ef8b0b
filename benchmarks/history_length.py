"""How the forecast's error grows as the history behind it shrinks: the evidence for marking a forecast that rests
on fewer than `SHORT_HISTORY_STEPS` estimated MOB steps ILLUSTRATIVE (engine/diagnostics.py; docs/backtesting.md,
section 6b item 20).

The one-quarter books of `forecast_evidence.py` (agency-shaped, with and without a shock; thin prime) and the
Fannie Mae excerpt when present are backtested from every usable origin, 1..12 months ahead, with the shipped
defaults, the last value, chain-ladder and (simulated books) the oracle, the true chain with the true cohort
factors. Each Portfolio DEL30 cell is put in a bin by the months of data at its origin (the estimated MOB steps: a
one-quarter book's oldest cohort is that old); printed per bin: the MAE of each model, the defaults over the
oracle, and the share of the cells inside the defaults' 80% interval.

    python benchmarks/history_length.py [--seeds 3]
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import pandas as pd
from forecast_evidence import (
    AGENCY_CRISIS,
    EVERY_ORIGIN,
    _agency,
    _fannie,
    _fitted,
    _thin_prime,
)

from pyxl_del.backtest.rolling import (
    FORECASTERS,
    Calendar,
    backtest,
    backtest_forecasters,
)
from pyxl_del.engine.data import PORTFOLIO, validate_panel
from pyxl_del.engine.diagnostics import SHORT_HISTORY_STEPS

BINS = (0, 2, SHORT_HISTORY_STEPS - 1, 8, 11, 23, 1_000)
HORIZON = 12


def _label(interval: pd.Interval) -> str:
    last = "+" if interval.right >= BINS[-1] else f"-{int(interval.right)}"
    return f"{int(interval.left) + 1}{last}"


def _cells(book) -> pd.DataFrame:
    """Portfolio DEL30 cells of every model, with the months of data at their origin and the defaults' interval."""
    panel = validate_panel(book.panel, book.config, book.kind)
    as_of = Calendar.of(panel, book.config.forecast.max_mob).last(book.origins)
    models = {"defaults": _fitted(book.config), "last value": FORECASTERS["carry_forward"],
              "chain-ladder": FORECASTERS["chain_ladder"]} | {k: v for k, v in book.oracles.items() if k == "oracle"}
    cells = backtest_forecasters(panel, book.config, as_of, models, horizon=HORIZON).cells
    cells = cells[(cells["segment"] == PORTFOLIO) & (cells["del_type"] == "DEL30")].copy()
    covered = backtest(book.panel, book.config, as_of=[str(a) for a in cells["origin"].unique()], horizon=HORIZON,
                       models=("markov",)).cells
    covered = covered[(covered["segment"] == PORTFOLIO) & (covered["del_type"] == "DEL30")]
    keys = ["origin", "cohort", "mob"]
    cells = cells.merge(covered[keys + ["in_interval"]].drop_duplicates(keys), on=keys, how="left")
    origins = sorted(cells["origin"].astype(str).unique())
    cells["months"] = cells["origin"].astype(str).map({o: i + 1 for i, o in enumerate(origins)})
    return cells


def _table(cells: pd.DataFrame) -> pd.DataFrame:
    cells = cells.assign(error=(cells["forecast"] - cells["actual"]).abs() * 100,
                         bin=pd.cut(cells["months"], BINS).map(_label))
    mae = cells.pivot_table(index="bin", columns="model", values="error", aggfunc="mean", observed=True, sort=False)
    table = mae.reindex(columns=[m for m in ("defaults", "last value", "chain-ladder", "oracle") if m in mae])
    if "oracle" in table:
        table["defaults / oracle"] = table["defaults"] / table["oracle"]
    defaults = cells[cells["model"] == "defaults"]
    table["80% interval covers"] = defaults.groupby("bin", sort=False)["in_interval"].mean()
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # every young origin warns that it is ILLUSTRATIVE: that is what is measured
    started = time.perf_counter()
    kinds = {
        "agency-shaped books": [_agency(s, None) for s in range(args.seeds)],
        "agency-shaped books with a shock": [_agency(s, AGENCY_CRISIS) for s in range(args.seeds)],
        "thin prime books": [_thin_prime(s, EVERY_ORIGIN) for s in range(args.seeds)],
        "Fannie Mae 2017Q1 excerpt": _fannie()[-1:],
    }
    for kind, books in kinds.items():
        if not books:
            continue
        cells = pd.concat([_cells(book).assign(book=i) for i, book in enumerate(books)], ignore_index=True)
        print(f"\n**{kind}** ({len(books)} book{'s' if len(books) > 1 else ''}, every usable origin; Portfolio DEL30 "
              f"MAE in points by months of data at the origin)\n")
        table = _table(cells)
        formats = {c: ("{:.0%}" if c == "80% interval covers" else "{:.2f}" if "/" in c else "{:.3f}")
                   for c in table.columns}
        print("| months of data | " + " | ".join(table.columns) + " |")
        print("|---" * (len(table.columns) + 1) + "|")
        for label, row in table.iterrows():
            print(f"| {label} | " + " | ".join("" if np.isnan(v) else formats[c].format(v) for c, v in row.items())
                  + " |")
    print(f"\nSHORT_HISTORY_STEPS = {SHORT_HISTORY_STEPS}; {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
