"""`pyxl-del backtest`: out-of-sample error of the forecast against the benchmarks at past as-of months."""

from __future__ import annotations

import argparse
import math
import time

from pyxl_del.cli.common import (
    CONFIG_HELP,
    EXIT_OK,
    SHEET_HELP,
    add_raw_csv,
    default_data,
    progress_bar,
    write_output,
)


def cmd_backtest(args: argparse.Namespace) -> int:
    import pandas as pd

    from pyxl_del.backtest.bootstrap import verdict_note
    from pyxl_del.backtest.rolling import MODEL_LABELS, backtest, lowest
    from pyxl_del.engine.config import load_config
    from pyxl_del.engine.errors import counted
    from pyxl_del.sheets.backtest import backtest_sheets

    cfg = load_config(args.config)
    data = args.data or default_data()
    n_origins = len(args.as_of) if args.as_of else args.origins
    bar, step = progress_bar(n_origins + 4, not args.quiet)
    started = time.perf_counter()
    with bar:
        result = backtest(data, cfg, as_of=args.as_of, origins=args.origins, horizon=args.horizon,
                          sheet=args.sheet, progress=step)
        step("write")
        written = write_output(args.out, lambda: backtest_sheets(result), result.tables,
                               title="DEL forecast backtest", raw_text=args.raw_csv)
    reached = result.months_ahead
    print(f"backtest of {result.info['rows']:,} rows at {result.origins_text}, 1..{reached} "
          f"months ahead, in {time.perf_counter() - started:.2f} s")
    if not args.as_of and len(result.origins) < args.origins:
        print(f"note: {counted(len(result.origins), 'usable as-of month')}, fewer than --origins {args.origins}: "
              f"all of them are used")
    if reached < result.horizon:
        print(f"note: no cell lies more than {reached} months after its as-of month (--horizon {result.horizon})")
    winners = result.winners[result.winners["segment"] == "Portfolio"]
    if winners.empty:
        # An empty table and "nan% against nan%" said nothing.
        print("no Portfolio cell was scored: a Portfolio cell is scored only where every segment of its cohort is "
              "observed at that MOB, and at these as-of months some segment had no loan left in the data (e.g. a "
              "small segment whose loans all prepaid); each segment's errors are in the workbook's Backtest sheet "
              "or, with --out FOLDER, backtest_winners.csv")
    else:
        print("Portfolio MAE by months ahead, in DEL points (* lowest); last row: the mean over the months ahead")
    overall = result.overall[result.overall["segment"] == "Portfolio"].set_index(["del_type", "model"])["mae"]
    for del_type, part in winners.groupby("del_type", observed=True, sort=False):
        table = {"months ahead": [*part["horizon"].astype(str), "mean"], "cells": [*part["n_cells"], part["n_cells"].sum()]}
        best = lowest(overall[del_type].reindex(list(result.models)).to_numpy()[None, :], result.models)[0]
        for model in result.models:
            table[model] = [f"{v:.3%}{'*' if w == model else ' '}"
                            for v, w in zip(part[f"mae_{model}"], part["winner"], strict=True)]
            table[model].append(f"{overall[del_type, model]:.3%}{'*' if best == model else ' '}")
        if "coverage_markov" in part.columns:
            # The Markov forecast's distribution: its median's MAE, its P10..P90 coverage and CRPS.
            for column, name, fmt in (("mae_median_markov", "markov median", "{:.3%}"),
                                      ("coverage_markov", "coverage", "{:.0%}"), ("crps_markov", "crps", "{:.3%}")):
                table[name] = [fmt.format(v) for v in (*part[column], part[column].mean())]
        print(f"{del_type}\n{pd.DataFrame(table).to_string(index=False)}")
    if "coverage_markov" in result.winners.columns and not winners.empty:
        levels = result.config.forecast.interval_levels
        print(f"markov median: MAE of the forecast's median; coverage: share of the actuals inside its "
              f"P{levels[0] * 100:g}..P{levels[-1] * 100:g} interval (nominally {levels[-1] - levels[0]:.0%}; a tie "
              f"with an end counts in part); crps: continuous ranked probability score (a point forecast's is its MAE)")
    against = result.against_benchmarks
    if not against.empty and not winners.empty:
        print("markov against the better benchmark (Portfolio MAE, mean over months ahead):")
        for row in against.itertuples():
            interval = ("" if math.isnan(row.difference_hi) else
                        f" [{row.difference_lo:+.3%}, {row.difference_hi:+.3%}]")
            print(f"  {row.del_type}: {row.mae:.3%} against {MODEL_LABELS[row.benchmark]} {row.mae_benchmark:.3%}, "
                  f"{row.difference:+.3%}{interval}: {row.verdict}")
        print(verdict_note(against))
    for note in result.notes:
        print(f"note: {note}")
    if result.warnings:
        shown = result.warnings if args.verbose else ()
        for w in shown:
            print(f"warning: {w}")
        if not shown:
            print(f"{counted(len(result.warnings), 'warning')} (thin cohorts or rows, loans leaving the data, "
                  "fallback rows at the origins); -v lists them")
    for path in written:
        print(f"wrote {path}")
    return EXIT_OK


def add_commands(sub) -> None:
    p = sub.add_parser("backtest", help="out-of-sample error of the forecast against chain-ladder, last value "
                                        "and the uncalibrated chain, at past as-of months")
    p.add_argument("data", nargs="?", help="panel: .csv, .parquet or .xlsx (default: the bundled sample)")
    origin = p.add_mutually_exclusive_group(required=True)
    origin.add_argument("--as-of", action="append", metavar="YYYY-MM",
                        help="cut the panel at this reporting month (repeat for a rolling backtest)")
    origin.add_argument("--origins", type=int, metavar="N", help="the last N usable as-of months")
    p.add_argument("--horizon", type=int, default=12, metavar="N", help="months ahead to score (default: 12)")
    p.add_argument("--config", help=CONFIG_HELP)
    p.add_argument("--out", default="backtest.xlsx", help="a .xlsx workbook, or a folder for the CSV tables "
                                                          "(default: backtest.xlsx)")
    p.add_argument("--sheet", help=SHEET_HELP)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_raw_csv(p)
    p.set_defaults(func=cmd_backtest)
