"""`pyxl-del import fannie|freddie SOURCE... --out panel.parquet`: public agency loan performance files -> a panel
in the config's [columns] names, ready for `report`, `backtest` and the workbook (docs/real-data.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pyxl_del.cli.common import CONFIG_HELP, EXIT_OK, add_raw_csv

SOURCES = ("fannie", "freddie")
OUT_SUFFIXES = (".parquet", ".csv")


def cmd_import(args: argparse.Namespace) -> int:
    from pyxl_del.engine.config import load_config
    from pyxl_del.engine.errors import InputError
    from pyxl_del.engine.files import atomic_replace, write_csv

    out = Path(args.out)
    if out.suffix.lower() not in OUT_SUFFIXES:
        raise InputError(f"--out {out}: write a .parquet or a .csv file")
    # The agency files are often named .csv too: a slip of the command line would replace the raw data.
    if out.is_file() and any(Path(f).is_file() and out.samefile(f) for f in args.files):
        raise InputError(f"--out {out} is one of the input files: the panel would replace the raw data; write it "
                         f"to another file")
    cfg = load_config(args.config)
    columns = {k: cfg[k] for k in ("loan_id", "cohort", "mob", "segment", "state", "ead", "apr")}
    cohort_by = args.cohort.replace("-", "_")
    segment_by = args.segment
    if args.source == "fannie":
        from pyxl_del.datasets.fannie import read_fannie as read
    else:
        from pyxl_del.datasets.freddie import read_freddie as read
    panel, summary = read(args.files, columns, cohort_by=cohort_by, segment_by=segment_by)
    with atomic_replace(out) as tmp:
        if out.suffix.lower() == ".csv":
            write_csv(panel, tmp, raw_text=args.raw_csv)
        else:
            panel.to_parquet(tmp, index=False)
    for line in summary.lines():
        print(line)
    print(f"columns ([columns] of {args.config or 'the default config'}): {', '.join(panel.columns)}")
    print(f"wrote {out}")
    return EXIT_OK


def add_commands(sub) -> None:
    p = sub.add_parser("import", help="read Fannie Mae or Freddie Mac single-family loan performance files into a "
                                      "panel (.parquet or .csv) in the config's [columns] names")
    p.add_argument("source", choices=SOURCES, help="whose files: fannie (combined 108-field layout, or "
                                                   "Performance_ + Acquisition_ files) or freddie (origination + "
                                                   "monthly performance files)")
    p.add_argument("files", nargs="+", metavar="SOURCE", help="the pipe-delimited files (.txt, .csv, compressed "
                                                              ".gz / .bz2 / .zst, or the .zip archives as downloaded); "
                                                              "several quarters at once")
    p.add_argument("--out", required=True, help="the panel to write: a .parquet or .csv file, not one of the "
                                                "SOURCE files")
    p.add_argument("--cohort", choices=("first-report", "origination"), default="first-report",
                   help="cohort of a loan: its first reporting month (default: every loan has a MOB 0 row) or its "
                        "origination month (loans enter seasoned, without MOB 0)")
    p.add_argument("--segment", choices=("purpose", "none"), default="purpose",
                   help="segment: the loan purpose (default) or one segment ALL")
    p.add_argument("--config", help=CONFIG_HELP + "; its [columns] name the output columns")
    add_raw_csv(p)
    p.set_defaults(func=cmd_import)
