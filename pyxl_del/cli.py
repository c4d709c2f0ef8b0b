"""The headless command line: `pyxl-del report|sample|...`. Prints for people; the library only logs."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from tqdm import tqdm

from . import __version__
from .config import InputError, load_config

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT = 0, 1, 2


def _progress_bar(total_steps: int, enabled: bool):
    bar = tqdm(total=total_steps, desc="pyxl_del", unit="step", disable=not enabled, file=sys.stderr,
               bar_format="{desc}: {n_fmt}/{total_fmt} {bar} {postfix}")

    def step(name: str) -> None:
        # "aggregate 42%" reports progress within the current step (backends.py) and is not a step of its own.
        if bar.n < bar.total and not name.endswith("%"):
            bar.update(1)
        bar.set_postfix_str(name)

    return bar, step


def default_data() -> Path:
    from .sample import SAMPLE_PANEL_PATH

    return Path(SAMPLE_PANEL_PATH)


def cmd_report(args: argparse.Namespace) -> int:
    from .export import write_tables
    from .pipeline import STEPS, run

    cfg = load_config(args.config)
    data = args.data or default_data()
    out = Path(args.out)
    bar, step = _progress_bar(len(STEPS) + 1, not args.quiet)
    started = time.perf_counter()
    with bar:
        backend = "spark" if args.spark_master and args.backend == "auto" else args.backend
        result = run(data, cfg, sheet=args.sheet, progress=step, backend=backend, spark=args.spark_master)
        step("write")
        if out.suffix.lower() in (".xlsx", ".xlsm"):
            from .excel import write_report

            written = [write_report(result, out)]
        else:
            written = write_tables(result, out)
    elapsed = time.perf_counter() - started
    rows = result.stats.n_rows
    print(f"{rows:,} rows, {len(result.segments)} segments, {len(result.cohorts)} cohorts "
          f"in {elapsed:.2f} s ({rows / max(elapsed, 1e-9):,.0f} rows/s, {result.run_info['backend']})")
    for w in result.warnings:
        print(f"warning: {w}")
    for path in written:
        print(f"wrote {path}")
    return EXIT_OK


def cmd_sample(args: argparse.Namespace) -> int:
    from .sample import generate_sample, write_panel

    frame = generate_sample(seed=args.seed, score=not args.plain)
    write_panel(frame, args.out)
    print(f"wrote {len(frame):,} rows to {args.out}")
    return EXIT_OK


def cmd_backtest(args: argparse.Namespace) -> int:
    import pandas as pd

    from .backtest import backtest
    from .backtest_report import write_backtest

    cfg = load_config(args.config)
    data = args.data or default_data()
    n_origins = len(args.as_of) if args.as_of else args.origins
    bar, step = _progress_bar(n_origins + 4, not args.quiet)
    started = time.perf_counter()
    with bar:
        result = backtest(data, cfg, as_of=args.as_of, origins=args.origins, horizon=args.horizon,
                          sheet=args.sheet, progress=step)
        step("write")
        written = write_backtest(result, args.out)
    origins = result.origins
    print(f"backtest of {result.info['rows']:,} rows at {len(origins)} as-of months ({origins[0]} .. {origins[-1]}), "
          f"1..{result.horizon} months ahead, in {time.perf_counter() - started:.2f} s")
    print("Portfolio MAE by months ahead, in DEL points (* lowest):")
    winners = result.winners[result.winners["segment"] == "Portfolio"]
    for del_type, part in winners.groupby("del_type", observed=True, sort=False):
        table = {"months ahead": part["horizon"].to_numpy(), "cells": part["n_cells"].to_numpy()}
        for model in result.models:
            table[model] = [f"{v:.3%}{'*' if w == model else ' '}"
                            for v, w in zip(part[f"mae_{model}"], part["winner"], strict=True)]
        print(f"{del_type}\n{pd.DataFrame(table).to_string(index=False)}")
    for note in result.notes:
        print(f"note: {note}")
    if result.warnings:
        shown = result.warnings if args.verbose else ()
        for w in shown:
            print(f"warning: {w}")
        if not shown:
            print(f"{len(result.warnings)} warnings (thin or fallback transition rows at the origins); -v lists them")
    for path in written:
        print(f"wrote {path}")
    return EXIT_OK


def cmd_ribbon(args: argparse.Namespace) -> int:
    from .ribbon import ActionUnavailable, run_headless
    from .workbook import describe_error

    try:
        outcome = run_headless(args.action, args.workbook, config=args.config, selection=args.selection)
    except ActionUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except ValueError as exc:  # bad data, config, sheet-name clash, unknown action: the message is for the user
        print(f"error: {describe_error(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(outcome.message)
    if outcome.sheets:
        print(f"wrote {len(outcome.sheets)} sheets to {args.workbook}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyxl-del", description="Delinquency (DEL30/60/90) forecasting with Markov chains.")
    parser.add_argument("--version", action="version", version=f"pyxl_del {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log the engine's steps")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("report", help="DEL tables from a panel: a formatted workbook (.xlsx) or a folder of CSVs")
    p.add_argument("data", nargs="?", help="panel: .csv, .parquet or .xlsx, a glob (\"parts/*.parquet\") or a "
                                           "folder of parts (default: the bundled sample)")
    p.add_argument("--config", help="config.toml (default: ./config.toml if present, else built-in defaults)")
    p.add_argument("--out", default="report.xlsx", help="a .xlsx workbook, or a folder for the CSV tables "
                                                        "(default: report.xlsx)")
    p.add_argument("--sheet", help="sheet name of an .xlsx input (default: the first)")
    p.add_argument("--backend", choices=("auto", "pandas", "duckdb", "spark"), default="auto",
                   help="aggregation engine (default auto: .xlsx -> pandas, other files -> duckdb; "
                        "spark when --spark-master is given)")
    p.add_argument("--spark-master", metavar="URL", help="Spark master for --backend spark, e.g. local[4] or "
                                                         "spark://host:7077 (default: a local session)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("sample", help="write the synthetic sample panel")
    p.add_argument("--out", required=True, help=".csv, .parquet or .xlsx")
    p.add_argument("--seed", type=int, default=20240101)
    p.add_argument("--plain", action="store_true", help="only the six engine columns, as the bundled sample "
                                                        "(default: with SCORE and APR, the score driving the roll rates)")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("backtest", help="out-of-sample error of the forecast against chain-ladder, last value "
                                        "and the uncalibrated chain, at past as-of months")
    p.add_argument("data", nargs="?", help="panel: .csv, .parquet or .xlsx (default: the bundled sample)")
    origin = p.add_mutually_exclusive_group(required=True)
    origin.add_argument("--as-of", action="append", metavar="YYYY-MM",
                        help="cut the panel at this reporting month (repeat for a rolling backtest)")
    origin.add_argument("--origins", type=int, metavar="N", help="the last N usable as-of months")
    p.add_argument("--horizon", type=int, default=12, metavar="N", help="months ahead to score (default: 12)")
    p.add_argument("--config", help="config.toml (default: ./config.toml if present, else built-in defaults)")
    p.add_argument("--out", default="backtest.xlsx", help="a .xlsx workbook, or a folder for the CSV tables "
                                                          "(default: backtest.xlsx)")
    p.add_argument("--sheet", help="sheet name of an .xlsx input (default: the first)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_backtest)

    from .ribbon import ACTIONS

    p = sub.add_parser("ribbon", help="run a button of the workbook's pyxl_del ribbon on a saved workbook (headless): "
                                      "writes the same sheets, keeps the VBA, the ribbon and your own sheets")
    p.add_argument("action", choices=list(ACTIONS), help="the button's action")
    p.add_argument("--workbook", required=True, help="the workbook file, e.g. pyxl_del.xlsm (saved in place)")
    p.add_argument("--config", help="config.toml (default: next to the workbook, else ./config.toml, else built-in "
                                    "defaults)")
    p.add_argument("--selection", metavar="SHEET!RANGE", help="the range Run forecast reads, as if selected "
                                                              "(default: the selection saved in the file)")
    p.set_defaults(func=cmd_ribbon)

    from .decision_cli import add_decision_commands

    add_decision_commands(sub)

    from .risk_cli import add_risk_commands

    add_risk_commands(sub)

    from .realtime_cli import add_realtime_commands

    add_realtime_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
