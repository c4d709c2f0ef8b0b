"""`pyxl-del report`, `sample` and `ribbon`: the DEL report from a panel, the synthetic panel, a ribbon button
run on a saved workbook."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pyxl_del.cli.common import (
    CONFIG_HELP,
    EXIT_BAD_INPUT,
    EXIT_OK,
    SHEET_HELP,
    add_raw_csv,
    default_data,
    progress_bar,
)


def cmd_report(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from pyxl_del.engine.config import config_source, load_config
    from pyxl_del.engine.errors import InputError, counted
    from pyxl_del.engine.files import write_tables
    from pyxl_del.engine.pipeline import STEPS, run

    if args.backtest is not None and args.backtest < 1:
        raise InputError(f"--backtest {args.backtest}: give the number of as-of months to backtest, at least 1")
    cfg = load_config(args.config)
    data = args.data or default_data()
    out = Path(args.out)
    bar, step = progress_bar(len(STEPS) + 1, not args.quiet)
    started = time.perf_counter()
    with bar:
        backend = "spark" if args.spark_master and args.backend == "auto" else args.backend
        result = run(data, cfg, sheet=args.sheet, progress=step, backend=backend, spark=args.spark_master)
        result = replace(result, run_info=result.run_info | {"config_file": config_source(args.config)})
        if args.backtest is not None:
            result = _with_backtest(result, data, cfg, args)
        step("write")
        if out.suffix.lower() in (".xlsx", ".xlsm"):
            from pyxl_del.excel.render import write_report

            written = [write_report(result, out)]
        else:
            written = write_tables(result, out, raw_text=args.raw_csv)
    elapsed = time.perf_counter() - started
    rows = result.stats.n_rows
    print(f"{counted(rows, 'row')}, {counted(len(result.segments), 'segment')}, "
          f"{counted(len(result.cohorts), 'cohort')} in {elapsed:.2f} s "
          f"({rows / max(elapsed, 1e-9):,.0f} rows/s, {result.run_info['backend']})")
    print(f"config: {result.run_info['config_file']}")
    for w in result.warnings:
        print(f"warning: {w}")
    if "backtest" in result.run_info:
        print(f"backtest: {result.run_info['backtest']}")
    for path in written:
        print(f"wrote {path}")
    return EXIT_OK


def _with_backtest(result, data, cfg, args: argparse.Namespace):
    """The result with its backtest in Run info: the model's error beside the benchmarks' at the last N as-of
    months (pyxl-del tune compares other settings)."""
    from dataclasses import replace

    from pyxl_del.backtest.rolling import backtest
    from pyxl_del.backtest.tune import backtest_text

    scored = backtest(data, cfg, origins=args.backtest, models=("markov", "chain_ladder", "carry_forward"),
                      sheet=args.sheet)
    return replace(result, run_info=result.run_info | {"backtest": backtest_text(scored)})


def cmd_sample(args: argparse.Namespace) -> int:
    from pyxl_del.datasets.sample import generate_sample, write_panel
    from pyxl_del.engine.errors import InputError, OutputError
    from pyxl_del.engine.files import atomic_replace

    out = Path(args.out)
    if out.suffix.lower() not in (".csv", ".parquet", ".xlsx"):
        raise InputError(f"--out {out}: the sample is written as .csv, .parquet or .xlsx, by the path's ending")
    # A sample has the columns of the user's own panel, so nothing tells the two apart: an existing file is the user's.
    if out.exists() and not args.force:
        raise OutputError(f"{out} exists: it is left as it is; write the sample to another path, or give --force to "
                          f"replace it")
    frame = generate_sample(seed=args.seed, score=not args.plain)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_replace(out) as tmp:
        write_panel(frame, tmp, raw_text=args.raw_csv)
    print(f"wrote {len(frame):,} rows to {out}")
    return EXIT_OK


def cmd_ribbon(args: argparse.Namespace) -> int:
    from pyxl_del.engine.errors import counted, describe_error
    from pyxl_del.excel.ribbon import run_headless

    try:
        outcome = run_headless(args.action, args.workbook, config=args.config, selection=args.selection)
    except ValueError as exc:  # bad data, config, sheet-name clash, unknown action: the message is for the user
        print(f"error: {describe_error(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(outcome.message)
    if outcome.sheets:
        print(f"wrote {counted(len(outcome.sheets), 'sheet')} to {args.workbook}")
    return EXIT_OK


def add_commands(sub) -> None:
    from pyxl_del.excel.buttons import BUTTONS

    p = sub.add_parser("report", help="DEL tables from a panel: a formatted workbook (.xlsx) or a folder of CSVs")
    p.add_argument("data", nargs="?", help="panel: .csv, .parquet or .xlsx, a glob (\"parts/*.parquet\") or a "
                                           "folder of parts (default: the bundled sample)")
    p.add_argument("--config", help=CONFIG_HELP)
    p.add_argument("--out", default="report.xlsx", help="a .xlsx workbook, or a folder for the CSV tables "
                                                        "(default: report.xlsx)")
    p.add_argument("--sheet", help=SHEET_HELP)
    p.add_argument("--backend", choices=("auto", "pandas", "duckdb", "spark"), default="auto",
                   help="aggregation engine (default auto: .xlsx and one Parquet file that fits in memory -> "
                        "pandas, other files -> duckdb; spark when --spark-master is given)")
    p.add_argument("--spark-master", metavar="URL", help="Spark master for --backend spark, e.g. local[4] or "
                                                         "spark://host:7077 (default: a local session)")
    p.add_argument("--backtest", type=int, metavar="N", help="also backtest the model at the last N as-of months "
                                                              "and show its error beside the benchmarks' in Run info")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_raw_csv(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("sample", help="write the synthetic sample panel")
    p.add_argument("--out", required=True, help=".csv, .parquet or .xlsx")
    p.add_argument("--seed", type=int, default=20240101)
    p.add_argument("--plain", action="store_true", help="only the six engine columns, as the bundled sample "
                                                        "(default: with SCORE and APR, the score driving the roll rates)")
    p.add_argument("--force", action="store_true", help="replace the file at --out if there is one (default: an "
                                                        "existing file is left as it is)")
    add_raw_csv(p)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("ribbon", help="run a button of the workbook's pyxl_del ribbon on a saved workbook (headless): "
                                      "writes the same sheets, keeps the VBA, the ribbon and your own sheets")
    p.add_argument("action", choices=list(BUTTONS), help="the button's action")
    p.add_argument("--workbook", required=True, help="the workbook file, e.g. pyxl_del.xlsm (saved in place)")
    p.add_argument("--config", help="config.toml (default: next to the workbook, else ./config.toml, else built-in "
                                    "defaults)")
    p.add_argument("--selection", metavar="SHEET!RANGE", help="the range Run forecast reads, as if selected "
                                                              "(default: the selection saved in the file)")
    p.set_defaults(func=cmd_ribbon)
