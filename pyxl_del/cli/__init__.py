"""The headless command line, `pyxl-del <command>`: one module per command group. Prints for people; the library
only logs.

Building the parser imports only argparse and the command modules, which import the engine when a command runs,
so `pyxl-del --version` and `--help` answer without loading pandas.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pyxl_del import __version__
from pyxl_del.cli import backtest, decision, importer, realtime, report, risk, tune
from pyxl_del.cli.common import EXIT_BAD_INPUT, EXIT_ERROR, EXIT_INTERRUPTED, set_allocators

GROUPS = (report, backtest, tune, risk, decision, realtime, importer)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyxl-del",
                                     description="Delinquency (DEL30/60/90) forecasting with Markov chains.")
    parser.add_argument("--version", action="version", version=f"pyxl_del {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log the engine's steps")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_commands(sub)
    _verbose_after(sub)
    return parser


def _verbose_after(sub) -> None:
    """-v after the command too (`pyxl-del backtest panel.csv -v`, where a user puts it, was "unrecognized
    arguments"); its default is left unset there, so a -v before the command still counts."""
    for command in sub.choices.values():
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                             help="log the engine's steps (as before the command)")
        for action in command._subparsers._group_actions if command._subparsers else ():
            _verbose_after(action)


def main(argv: list[str] | None = None) -> int:
    set_allocators()
    # A terminal or log file in ASCII or Latin-1 (LC_ALL=C under a scheduler) cannot hold "Vay tiêu dùng": printed,
    # it raised after the report was written, and `alerts` exited 1 instead of paging with 3. Such characters are
    # written escaped instead.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR,
                        format="%(levelname)s %(name)s: %(message)s")
    from pyxl_del.engine.errors import InputError

    out = getattr(args, "out", None)
    if isinstance(out, str) and not out.strip():
        # An unset variable in a job ("--out $OUT"): the tables had been written into the working folder.
        print("error: --out is empty (an unset variable in the job?): give the workbook or folder to write",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    if isinstance(out, str) and Path(out).suffix.lower() in (".xlsx", ".xlsm", ".csv", ".parquet") \
            and Path(out).is_dir():
        # Found only at the end, after the whole run, as "cannot replace ... is it open in Excel?".
        print(f"error: cannot write {out}: it is a folder; give a file name, or the folder without the suffix for "
              f"CSV tables", file=sys.stderr)
        return EXIT_ERROR
    try:
        return args.func(args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:  # Ctrl-C: every output is replaced whole or not at all (engine.files.atomic_replace)
        print("interrupted: the files written before stay, the one being written was not replaced", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: a sentence for the person at the terminal, the traceback for a report with -v
        if args.verbose:
            raise
        from pyxl_del.engine.errors import shorten

        print(f"error: internal error ({type(exc).__name__}: {shorten(exc)}); this is a bug in pyxl_del, not in your "
              f"input: run the command again with -v to see the details for a bug report", file=sys.stderr)
        return EXIT_ERROR

