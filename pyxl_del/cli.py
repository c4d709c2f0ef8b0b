"""The headless command line: `pyxl-del report|sample|...`. Prints for people; the library only logs."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from tqdm import tqdm

from . import __version__
from .config import ConfigError, load_config
from .data import PanelError

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT = 0, 1, 2


def _progress_bar(total_steps: int, enabled: bool):
    bar = tqdm(total=total_steps, desc="pyxl_del", unit="step", disable=not enabled, file=sys.stderr,
               bar_format="{desc}: {n_fmt}/{total_fmt} {bar} {postfix}")

    def step(name: str) -> None:
        if bar.n < bar.total:
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
        result = run(data, cfg, sheet=args.sheet, progress=step)
        step("write")
        if out.suffix.lower() in (".xlsx", ".xlsm"):
            from .excel import write_report

            written = [write_report(result, out)]
        else:
            written = write_tables(result, out)
    elapsed = time.perf_counter() - started
    rows = result.stats.n_rows
    print(f"{rows:,} rows, {len(result.segments)} segments, {len(result.cohorts)} cohorts "
          f"in {elapsed:.2f} s ({rows / max(elapsed, 1e-9):,.0f} rows/s)")
    for w in result.warnings:
        print(f"warning: {w}")
    for path in written:
        print(f"wrote {path}")
    return EXIT_OK


def cmd_sample(args: argparse.Namespace) -> int:
    from .sample import generate_sample, write_panel

    frame = generate_sample(seed=args.seed)
    write_panel(frame, args.out)
    print(f"wrote {len(frame):,} rows to {args.out}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyxl-del", description="Delinquency (DEL30/60/90) forecasting with Markov chains.")
    parser.add_argument("--version", action="version", version=f"pyxl_del {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log the engine's steps")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("report", help="DEL tables from a panel: a formatted workbook (.xlsx) or a folder of CSVs")
    p.add_argument("data", nargs="?", help="panel: .csv, .parquet or .xlsx (default: the bundled sample)")
    p.add_argument("--config", help="config.toml (default: ./config.toml if present, else built-in defaults)")
    p.add_argument("--out", default="report.xlsx", help="a .xlsx workbook, or a folder for the CSV tables "
                                                        "(default: report.xlsx)")
    p.add_argument("--sheet", help="sheet name of an .xlsx input (default: the first)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("sample", help="write the synthetic sample panel")
    p.add_argument("--out", required=True, help=".csv, .parquet or .xlsx")
    p.add_argument("--seed", type=int, default=20240101)
    p.set_defaults(func=cmd_sample)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ConfigError, PanelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
