"""Writing results to files: the tidy CSV tables, and the atomic replace every file output goes through.

CSV files are opened in Excel, which runs a field starting with ``=``, ``+``, ``-`` or ``@`` as a formula (OWASP
"CSV injection": a segment named ``=HYPERLINK(...)`` in the data would become a live link). Every CSV written
here therefore writes such text — and text starting with a tab or a carriage return — with a leading single
quote (`csv_safe`); numbers stay numbers (-0.5 is not text), and the file starts with a UTF-8 byte order mark so
that Excel reads Vietnamese text as written. ``raw_text=True`` (the CLI's ``--raw-csv``) writes text as it is and no
mark, for pipelines that read the CSV with a program rather than a spreadsheet.
"""

from __future__ import annotations

import contextlib
import csv
import glob
import logging
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pyxl_del.engine.errors import OutputError, shorten

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import pandas as pd

    from pyxl_del.engine.pipeline import DelResult

TABLE_FILES = ("del_long.csv", "calibration_factors.csv", "transition_matrices.csv")
COHORT_FACTORS_FILE = "cohort_factors.csv"  # written only when the run has cohort factors ([calibration] cohort_factor)
EXCEL_MAX_ROWS = 1_048_576  # rows of one sheet, header included
# Suffixes of files a table folder must not be named with (`--out result.csv` meant a file, not a folder of CSVs).
FILE_SUFFIXES = (".csv", ".txt", ".tsv", ".xls", ".xlsb", ".xlsm", ".ods", ".json", ".parquet", ".zip")


#: Text a spreadsheet would take for a formula: = + - @ (ASCII or full-width) after any blanks, or a leading tab / CR.
FORMULA_TEXT = r"^(?:[\s\u3000]*[=+\-@\uff1d\uff0b\uff0d\uff20]|[\t\r])"
#: ... unless it is a plain number, which a spreadsheet reads as the number it is.
NUMBER_TEXT = r"^\s*[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)\s*$"
_FORMULA_TEXT, _NUMBER_TEXT = re.compile(FORMULA_TEXT), re.compile(NUMBER_TEXT, re.IGNORECASE)
TEMP_MARK = ".pyxl_del-"  # in the names of our temporary files: ``.<name>.pyxl_del-<random><suffix>``


@contextlib.contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (a lock file, created if missing and left in place) for the block;
    other processes asking for it wait their turn. Advisory: flock on POSIX, a byte-range lock on Windows. A
    process that dies releases its lock."""
    path = Path(path)
    try:
        fh = open(path, "a+b")  # noqa: SIM115 - closed below, after the lock is released
    except OSError as exc:
        raise OutputError(f"cannot lock {path} ({exc.strerror or exc})") from exc
    with fh:
        _lock(fh, wait=True)
        try:
            yield
        finally:
            _unlock(fh)


def _lock(fh, *, wait: bool) -> bool:
    """Lock the open file ``fh``; False when ``wait`` is off and another process holds it."""
    if os.name == "nt":
        import msvcrt

        fh.seek(0)
        while True:
            try:
                msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
                return True
            except OSError:
                if not wait:
                    return False
                time.sleep(0.05)
    import fcntl

    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def _unlock(fh) -> None:
    if os.name == "nt":
        import msvcrt

        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _remove_stale_temporaries(path: Path) -> None:
    """Delete temporary files of earlier writes of ``path`` that a killed process left behind: ours by name, and
    no longer held by a live writer (on POSIX each holds a lock on its own, on Windows an open handle, until it is
    renamed or removed)."""
    for stale in path.parent.glob(f".{glob.escape(path.name)}{TEMP_MARK}*{glob.escape(path.suffix)}"):
        try:
            if os.name != "nt":
                with open(stale, "rb") as fh:
                    if not _lock(fh, wait=False):
                        continue  # a write in progress
            stale.unlink()  # Windows refuses while a live writer holds the file open
            log.info("removed %s, left by an interrupted write", stale)
        except OSError:
            continue


def check_writable(path: str | Path) -> Path:
    """The file an output to ``path`` replaces, checked before any work is spent on it: a symbolic link is followed
    (the file it names is replaced; replacing the link by a file left the shared file unchanged), its folder must
    exist, and a file marked read-only is refused. Replacing is a rename, which a file's own read-only mark does not
    stop: its owner meant it to stay."""
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise OutputError(f"cannot write {path}: {folder} {what}")
    if path.is_file() and not path.stat().st_mode & 0o222:
        raise OutputError(f"cannot write {path}: {path} is read-only, so it is left as it is; make it writable or "
                          f"write to another path")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"cannot write {path}: folder {folder} is not writable")
    return path


@contextlib.contextmanager
def atomic_replace(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename, on failure it is removed.

    A reader never sees a half-written file, and an error (unwritable folder, file locked by Excel on
    Windows) leaves the previous file intact. A process killed while writing leaves its hidden temporary file
    (``.<name>.pyxl_del-XXXXXXXX<suffix>``); the next write of the same file removes it.
    """
    path = check_writable(path)
    folder = path.parent
    _remove_stale_temporaries(folder / path.name)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}{TEMP_MARK}", suffix=path.suffix, dir=folder)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: folder {folder} is not writable ({exc.strerror})") from exc
    tmp = Path(tmp_name)
    guard = os.fdopen(fd, "rb")  # held (and on POSIX locked) while the file is ours: see _remove_stale_temporaries
    try:
        if os.name != "nt":  # Windows byte-range locks are mandatory: the writer itself could not write
            _lock(guard, wait=True)
        # mkstemp makes the file private (0600): a file replaced keeps its own permissions (a config kept private
        # stays so), a new one gets those any new file would.
        if path.is_file():
            tmp.chmod(stat.S_IMODE(path.stat().st_mode))
        else:
            umask = os.umask(0)
            os.umask(umask)
            tmp.chmod(0o666 & ~umask)
        try:
            yield tmp
        except OutputError:
            raise
        except OSError as exc:  # a full disk, a quota: "[Errno 28] No space left on device" named no file
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}; the previous file is unchanged") from exc
        guard.close()  # Windows renames no file that is open
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise OutputError(
                f"cannot replace {path} ({exc.strerror}); is it open in Excel? The previous file is unchanged"
            ) from exc
    finally:
        guard.close()
        tmp.unlink(missing_ok=True)


def neutral_text(text: str) -> str:
    """``text`` with a leading single quote if a spreadsheet would run it as a formula."""
    return "'" + text if _FORMULA_TEXT.match(text) and not _NUMBER_TEXT.match(text) else text


def written_text(text: str) -> str:
    """The inverse of `neutral_text`: text as it was before a CSV neutralised it (a file pyxl_del wrote and reads
    back, such as the policy.csv that apply takes)."""
    return text[1:] if text.startswith("'") and neutral_text(text[1:]) != text[1:] else text


def _neutral_column(values: pd.Series) -> pd.Series:
    import numpy as np
    import pandas as pd

    if isinstance(values.dtype, pd.CategoricalDtype):
        categories = values.cat.categories
        renamed = [neutral_text(c) if isinstance(c, str) else c for c in categories]
        if renamed == list(categories):
            return values
        if len(set(renamed)) == len(renamed):
            return values.cat.rename_categories(renamed)
        values = values.astype(object)
    if not (pd.api.types.is_object_dtype(values.dtype) or pd.api.types.is_string_dtype(values.dtype)):
        return values  # numbers, dates, booleans
    # Each distinct value is checked once: a long table repeats a few segment, state and cohort names.
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    text = pd.Series(uniques, dtype="string")  # a number among text reads as itself, and NUMBER_TEXT lets it through
    risky_unique = (text.str.match(FORMULA_TEXT) & ~text.str.match(NUMBER_TEXT, case=False)).fillna(False).to_numpy()
    if not risky_unique.any():
        return values
    risky = np.append(risky_unique, False)[codes]  # the appended False is the -1 code of a missing value
    out = values.astype(object).copy()
    out[risky] = ("'" + text).to_numpy(dtype=object)[codes[risky]]
    return out


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell (and column name) a spreadsheet would run as a formula prefixed with a
    single quote; numbers, dates and other text unchanged. The frame itself is not modified."""
    out = frame
    for i in range(frame.shape[1]):
        column = frame.iloc[:, i]
        safe = _neutral_column(column)
        if safe is not column:
            out = frame.copy() if out is frame else out  # copy-on-write: the columns are not copied
            out.isetitem(i, safe)
    names = [neutral_text(c) if isinstance(c, str) else c for c in frame.columns]
    return out.set_axis(names, axis=1) if names != list(frame.columns) else out


def write_csv(frame: pd.DataFrame, path: str | Path, *, raw_text: bool = False) -> None:
    """One table as a UTF-8 CSV, empty cells for missing values; formula-like text neutralised unless
    ``raw_text`` (see `csv_safe`). Numbers are written bare, in their shortest exact form; everything else as text,
    quoted. Unless ``raw_text``, the file starts with a UTF-8 byte order mark: Excel opens a CSV without one in the
    machine's ANSI code page, and "Vay tiêu dùng" reads "Vay tiÃªu dÃ¹ng" (pandas, pyarrow and DuckDB skip it)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    frame = frame if raw_text else csv_safe(frame)
    # Arrow writes a table ten times as fast as pandas' to_csv (del_long.csv of the 10M-row benchmark: 0.02 s against
    # 0.19 s). Dates, periods, categories, booleans and mixed objects go as pandas spells them.
    columns = []
    for i in range(frame.shape[1]):
        values = frame.iloc[:, i]
        numeric = pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype)
        columns.append(pa.array(values if numeric else values.astype("string"), from_pandas=True))
    table = pa.Table.from_arrays(columns, names=[str(name) for name in frame.columns])  # repeated names kept
    with open(path, "wb") as sink:
        if not raw_text:
            sink.write("\ufeff".encode())
        pa_csv.write_csv(table, sink, pa_csv.WriteOptions(quoting_style="needed"))


def first_column(path: Path) -> str | None:
    """The first column name in the header of the CSV at ``path``; None when it is no UTF-8 text."""
    header = read_header(path)
    return None if header is None else (header or [""])[0]


def read_header(path: Path) -> list[str] | None:
    """The column names of the table at ``path``: a Parquet file's schema, else the first line of a CSV; None when
    it is neither (not UTF-8 text, or no Parquet file)."""
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return pq.read_schema(path).names
        except (OSError, pa.ArrowException):
            return None
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            line = fh.readline(1 << 16)
    except (OSError, UnicodeDecodeError):
        return None
    return next(csv.reader([line]), [])


def check_replaceable(target: Path, columns: Sequence[str], table: str | None = None) -> None:
    """A file at ``target`` is replaced only when it is the table pyxl_del writes there, ``table`` (default: the
    file's stem): its header starts with ``columns``, as written with or without `neutral_text`. Never the panel
    the run read (`report csvin/del_long.csv --out csvin`), its config or any other file of that name."""
    if not target.is_file():
        return
    found = read_header(target)
    expected = [str(c) for c in columns]
    if found is None or len(found) < len(expected) or any(
            f not in (e, neutral_text(e)) for f, e in zip(found, expected, strict=False)):
        shown = ", ".join(expected)
        what = ("it is no table pyxl_del can read" if found is None else
                f"its columns start {shorten(', '.join(found[:len(expected)]), 120)!r}, not {shorten(shown, 120)!r}")
        raise OutputError(f"{target} exists and is not the {table or target.stem} table pyxl_del writes ({what}): "
                          f"it is left as it is; write to another path, or move the file first")


def write_frames(frames: Mapping[str, pd.DataFrame], folder: str | Path, *, raw_text: bool = False) -> list[Path]:
    """Each frame as ``folder/<stem>.csv`` (`write_csv`; the folder is created if needed); every file is replaced
    atomically, and only if it is that table (`check_replaceable` on its first column, checked before anything is
    written)."""
    folder = Path(folder)
    if folder.suffix.lower() in FILE_SUFFIXES and not folder.is_dir():
        raise OutputError(f"cannot write {folder}: the tables go into a folder, and one named like a {folder.suffix} "
                          f"file would read as a file; give a folder name, or a path ending in .xlsx for a workbook")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {folder} ({exc.strerror})") from exc
    targets = {folder / f"{stem}.csv": frame for stem, frame in frames.items()}
    for target, frame in targets.items():
        check_replaceable(target, frame.columns[:1])
    written = []
    for target, frame in targets.items():
        try:
            with atomic_replace(target) as tmp:
                write_csv(frame, tmp, raw_text=raw_text)
        except OutputError as exc:
            if not written:
                raise
            raise OutputError(f"{exc}; already replaced by this run: {', '.join(p.name for p in written)} (the "
                              f"folder's other tables are an earlier run's)") from exc
        written.append(target)
    return written


def write_tables(result: DelResult, folder: str | Path, *, raw_text: bool = False) -> list[Path]:
    """del_long.csv, calibration_factors.csv and transition_matrices.csv into `folder` (created if needed), and
    cohort_factors.csv when the run has cohort factors."""
    frames = (result.del_long, result.calibration_factors, result.transition_matrices)
    named = {Path(name).stem: frame for name, frame in zip(TABLE_FILES, frames, strict=True)}
    if result.factors.cohort is not None:
        named[Path(COHORT_FACTORS_FILE).stem] = result.cohort_factors
    written = write_frames(named, folder, raw_text=raw_text)
    stale = Path(folder) / COHORT_FACTORS_FILE
    # An earlier run's cohort factors would read as this run's: removed, when it is that table.
    if result.factors.cohort is None and stale.is_file() and first_column(stale) == result.cohort_factors.columns[0]:
        try:
            stale.unlink()
            log.warning("removed %s, an earlier run's: this run has no cohort factors ([calibration] cohort_factor)",
                        stale)
        except OSError as exc:
            log.warning("%s is an earlier run's (this run has no cohort factors) and could not be removed: %s", stale,
                        exc.strerror or exc)
    return written
