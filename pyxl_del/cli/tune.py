"""`pyxl-del tune`: candidate estimation settings compared by rolling-origin error on your own data; --write puts
the winner's settings into config.toml, and nothing when the comparison names no winner."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from pyxl_del.cli.common import (
    CONFIG_HELP,
    EXIT_OK,
    PANEL_HELP,
    SHEET_HELP,
    add_raw_csv,
    default_data,
    progress_bar,
    write_output,
)


def _points(value: float) -> str:
    return f"{value:.3%}"


def _relative(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:+.1%}"


def print_table(result) -> None:
    """The ranking as a table for the terminal: the winner starred (none without one), the benchmarks below the
    candidates; a ratio to benchmarks without error is "n/a"."""
    import pandas as pd

    from pyxl_del.backtest.rolling import MODEL_LABELS
    from pyxl_del.engine.config import DEL_TYPES

    table = result.table
    shown = pd.DataFrame({
        "rank": [("" if pd.isna(r) else str(r)) for r in table["rank"]],
        "model": [MODEL_LABELS.get(m, m) + (" *" if m == result.winner else "") for m in table["model"]],
        **{d: [_points(v) for v in table[f"mae_{d}"]] for d in DEL_TYPES},
        "mean": [_points(v) for v in table["score"]],
        "vs best benchmark": [_relative(v) for v in table["vs_best_benchmark"]],
    })
    print(shown.to_string(index=False))


def cmd_tune(args: argparse.Namespace) -> int:
    from pyxl_del.backtest.bootstrap import LEVEL
    from pyxl_del.backtest.tune import (
        CURRENT,
        load_candidates,
        resolve_candidates,
        settings_text,
        tune,
        write_settings,
    )
    from pyxl_del.engine.config import CONFIG_FILE_NAME, ConfigError, load_config
    from pyxl_del.engine.errors import read_text
    from pyxl_del.engine.files import check_writable
    from pyxl_del.sheets.tune import tune_sheets

    cfg = load_config(args.config)
    target = Path(args.config) if args.config else Path.cwd() / CONFIG_FILE_NAME
    if args.write:  # refused now, not after the candidates' backtests
        target = check_writable(target)
        read_as = read_text(target, "config", error=ConfigError) if target.exists() else ""
    candidates = load_candidates(args.candidates) if args.candidates else None
    if candidates is not None:  # a mistake in the file is reported before the data is read
        resolve_candidates(cfg, candidates, strict=True, source=args.candidates)
    data = args.data or default_data()
    bar, step = progress_bar(args.origins + 4, not args.quiet)
    started = time.perf_counter()
    with bar:
        result = tune(data, cfg, origins=args.origins, horizon=args.horizon, candidates=candidates,
                      strict=bool(args.candidates), sheet=args.sheet, progress=step)
        step("write")
        written = write_output(args.out, lambda: tune_sheets(result), result.tables,
                               title="DEL forecast model selection", raw_text=args.raw_csv)
    bt = result.backtest
    print(f"tune: {len(result.candidates.configs)} candidate settings and 2 benchmarks on {bt.info['rows']:,} rows at "
          f"{bt.origins_text}, 1..{bt.months_ahead} months ahead, in {time.perf_counter() - started:.2f} s")
    print("Portfolio MAE in DEL points, mean over months ahead"
          + (" (* lowest mean over the DEL types):" if result.winner is not None else ":"))
    print_table(result)
    for note in result.notes:
        print(f"note: {note}")
    if result.behind_benchmark:
        print(f"warning: {result.behind_benchmark}")
    for path in written:
        print(f"wrote {path}")
    winner = result.winner
    if winner is None:
        print(f"no winner: {result.undecided}")
        if args.write:
            print(f"not written: {target} is left as it is, as no candidate is better than the others")
        return EXIT_OK
    if winner == CURRENT:
        print(f"the config as it is has the lowest error: {settings_text(cfg)}")
        return EXIT_OK
    print(f"winner: {winner}: {settings_text(result.candidates.configs[winner])}")
    if result.within_noise:
        print(f"warning: {result.within_noise}; keep the config as it is, or write the winner with --write --force")
    else:
        difference, lo, hi = result.lead
        print(f"its lead over {CURRENT!r}: {difference:+.3%} mean MAE, {LEVEL:.0%} interval [{lo:+.3%}, "
              f"{hi:+.3%}]: clear of noise")
    if not args.write:
        print(f"run again with --write{' --force' if result.within_noise else ''} to put these settings into "
              f"{target}")
        return EXIT_OK
    if result.within_noise and not args.force:
        print(f"not written: {target} is left as it is, as the lead may be chance (--force writes it)")
        return EXIT_OK
    write_settings(target, result.changes, read_as=read_as)
    print(f"wrote {target}: " + "; ".join(f"[{s}] {k} {old!r} -> {new!r}" for s, k, old, new in result.changes))
    return EXIT_OK


def add_commands(sub) -> None:
    p = sub.add_parser("tune", help="compare estimation settings by backtest error on your data; --write puts the "
                                    "winner's into config.toml")
    p.add_argument("data", nargs="?", help=PANEL_HELP)
    p.add_argument("--origins", type=int, default=12, metavar="N", help="backtest at the last N usable as-of months "
                                                                        "(default: 12)")
    p.add_argument("--horizon", type=int, default=12, metavar="N", help="months ahead to score (default: 12)")
    p.add_argument("--candidates", metavar="FILE.toml", help="your candidate settings, one table per candidate "
                                                             '(e.g. ["count"] transitions = { weighting = "count" }); '
                                                             "default: the built-in candidates")
    p.add_argument("--config", help=CONFIG_HELP)
    p.add_argument("--write", action="store_true", help="write the winner's settings into the config file (--config, "
                                                        "else ./config.toml), keeping its comments")
    p.add_argument("--force", action="store_true", help="with --write: write the winner also when its lead over "
                                                        "the config as it is may be chance (its 90%% interval "
                                                        "reaches 0, or too few cohorts for one)")
    p.add_argument("--out", default="tune.xlsx", help="a .xlsx workbook, or a folder for the CSV tables "
                                                      "(default: tune.xlsx)")
    p.add_argument("--sheet", help=SHEET_HELP)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_raw_csv(p)
    p.set_defaults(func=cmd_tune)
