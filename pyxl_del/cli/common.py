"""What every subcommand shares: exit codes, help texts, the default data and the progress bar.

Imports nothing heavy: building the parser must stay fast, so each command imports its engine modules when it runs.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_ALERT = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C

CONFIG_HELP = "config.toml (default: ./config.toml if present, else built-in defaults)"
SHEET_HELP = "sheet name of an .xlsx input (default: the first)"
PANEL_HELP = "panel: .csv, .parquet or .xlsx (default: the bundled sample)"


# Set for this process before numpy and pyarrow load (a user's own setting wins). On Linux with transparent huge
# pages on "madvise" (most distributions' default), numpy asks for huge pages for every large array and each first
# touch then zeroes, and may compact memory for, 2 MB in the kernel; Arrow's default pool (mimalloc) grows the same
# way. With both off, a 10M-row report took 3.9-4.0 s instead of 4.5-5.0 s (kernel time 1.2-1.4 s instead of
# 1.7-2.8 s) and peaked 50-100 MB lower (README.md, Benchmarks). The library itself leaves the
# process's allocators alone: an Excel or notebook session is the user's.
ALLOCATOR_SETTINGS = {"NUMPY_MADVISE_HUGEPAGE": "0", "ARROW_DEFAULT_MEMORY_POOL": "system"}


def set_allocators() -> None:
    if not sys.platform.startswith("linux"):  # measured on Linux only, where the huge pages are
        return
    for name, value in ALLOCATOR_SETTINGS.items():
        os.environ.setdefault(name, value)


def default_data() -> Path:
    """The bundled sample panel, the data of every command run without DATA."""
    from pyxl_del.datasets.sample import SAMPLE_PANEL_PATH

    return Path(SAMPLE_PANEL_PATH)


def progress_bar(total_steps: int, enabled: bool):
    """A tqdm bar on stderr and the callback that advances it by one named step. Where stderr is not a terminal (a
    scheduler's log file), a line per step instead: a bar redrawn with carriage returns is one unreadable line there."""
    if enabled and not sys.stderr.isatty():
        return _step_lines(total_steps)
    from tqdm import tqdm

    bar = tqdm(total=total_steps, desc="pyxl_del", unit="step", disable=not enabled, file=sys.stderr,
               bar_format="{desc}: {n_fmt}/{total_fmt} {bar} {postfix}")

    def step(name: str) -> None:
        # "aggregate 42%" reports progress within the current step (engine.backends) and is not a step of its own.
        if bar.n < bar.total and not name.endswith("%"):
            bar.update(1)
        bar.set_postfix_str(name)

    return bar, step


def _step_lines(total_steps: int):
    """(a no-op context, the callback): "pyxl_del: 3/8 aggregate (1.2 s)" on stderr as each named step starts."""
    done = [0]
    start = time.perf_counter()

    def step(name: str) -> None:
        if name.endswith("%"):
            return
        done[0] = min(done[0] + 1, total_steps)
        print(f"pyxl_del: {done[0]}/{total_steps} {name} ({time.perf_counter() - start:.1f} s)", file=sys.stderr,
              flush=True)

    return contextlib.nullcontext(), step


RAW_CSV_HELP = ("write CSV files for programs: text as it is and no byte order mark. By default the files are for "
                "spreadsheets: text a spreadsheet would run as a formula (starting with =, +, -, @, a tab or CR) gets a "
                "leading single quote, and a UTF-8 byte order mark lets Excel read accented text; numbers are never "
                "changed")


def add_raw_csv(parser) -> None:
    """The --raw-csv switch of a command that writes CSV files."""
    parser.add_argument("--raw-csv", action="store_true", help=RAW_CSV_HELP)


def write_output(out: str | Path, layouts: Callable[[], list], tables: Callable[[], Mapping], *,
                 title: str, raw_text: bool = False) -> list[Path]:
    """``out`` ending in .xlsx: the sheets ``layouts()`` as a new workbook; any other path: a folder (created if
    needed) of the CSV tables ``tables()`` (stem -> DataFrame; formula-like text neutralised unless ``raw_text``).
    Only what is written is computed."""
    if Path(out).suffix.lower() in (".xlsx", ".xlsm"):
        from pyxl_del.excel.render import write_workbook

        return [write_workbook(layouts(), out, title=title)]
    from pyxl_del.engine.files import write_frames

    return write_frames(tables(), out, raw_text=raw_text)
