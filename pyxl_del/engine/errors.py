"""The project's two error kinds and how an error is told to a person.

`InputError`: input the user must fix (data, config, policy, workbook, arguments); the CLI prints it and exits 2,
a worksheet function shows it in its cell, the ribbon in a message box, the service as a 4xx. `OutputError`: a
file that cannot be written (the CLI exits 1). Anything else reaching a front end is a bug.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

log = logging.getLogger(__name__)

MAX_MESSAGE = 255  # a cell message: Excel's own error texts and tooltips stay well below this
MAX_QUOTED = 120  # characters of a library's own message (or of an offending value) a message repeats


class InputError(ValueError):
    """Input the user must fix (data, config, policy, workbook): the CLI prints the message and exits 2."""


class PanelError(InputError):
    """The panel cannot be used as it is. ``problems`` lists every finding (not just the first)."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + ("\n  ".join([""] + problems) if len(problems) > 1 else problems[0]))


class OutputError(OSError):
    """An output path that cannot be written; the old file, if any, is left as it was."""


def describe_error(exc: BaseException, *, one_line: bool = False) -> str:
    """What went wrong, for a person reading a cell or a message box (never a traceback).

    The engine reports bad input (data, config, arguments, sheet names, files) as ValueError, KeyError or OSError
    subclasses (PanelError, ConfigError, SheetConflictError, WorkbookError, ...) whose message is written for the
    user; anything else is a bug, logged with its traceback and shown as "internal error".
    """
    if isinstance(exc, PanelError) and one_line and len(exc.problems) > 1:
        text = f"{exc.source}: {exc.problems[0]} (and {len(exc.problems) - 1} more problems)"
    elif isinstance(exc, ValidationError):
        text = "; ".join(_describe_validation(e) for e in exc.errors())
    elif isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])  # str(KeyError) would quote the message
    elif isinstance(exc, (ValueError, LookupError, OSError)):
        log.debug("pyxl_del: input error", exc_info=exc)
        text = str(exc)
    else:
        log.error("pyxl_del: unexpected error", exc_info=exc)
        text = f"internal error ({type(exc).__name__}: {exc}); the Python log has the details"
    if one_line:
        text = " ".join(text.split())
        if len(text) > MAX_MESSAGE:
            text = text[:MAX_MESSAGE - 1] + "…"
    return text


def _describe_validation(error: dict) -> str:
    where = ".".join(str(p) for p in error["loc"]) or "arguments"
    got = f" (got {error['input']!r})" if error["type"] not in ("missing",) and "input" in error else ""
    return f"{where}: {error['msg']}{got}"


def shorten(text: object, limit: int = MAX_QUOTED) -> str:
    """``text`` on one line, cut to ``limit`` characters: what a message may repeat of a value or of a library's
    message (a one-line 400 MB CSV must not end up in an error message)."""
    one_line = " ".join(str(text)[: limit * 4].split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"


def _advice(exc: BaseException, path: Path, what: str) -> str | None:
    """A sentence for the exceptions readers and parsers raise on a bad file; None for anything else."""
    suffix = path.suffix.lower()
    if isinstance(exc, FileNotFoundError):
        return f"{what} not found: {path}"
    if isinstance(exc, IsADirectoryError):
        return f"{path} is a folder, not a {what} file"
    if isinstance(exc, PermissionError):
        return f"cannot read {path}: permission denied (is it open in another program?)"
    if isinstance(exc, UnicodeError):
        return (f"{path} is not UTF-8 text ({shorten(exc, 60)}); save it as UTF-8 (Excel: 'CSV UTF-8'; "
                f"Notepad: encoding 'UTF-8')")
    if isinstance(exc, zipfile.BadZipFile) or (isinstance(exc, KeyError) and suffix in (".xlsx", ".xlsm")):
        return (f"{path} is not a readable Excel workbook (an .xlsx is a zip package; this may be a renamed CSV, "
                f"a password-protected or damaged workbook): open it in Excel and save it as .xlsx without a "
                f"password, or export the sheet as CSV UTF-8")
    if isinstance(exc, RecursionError):
        return f"{path} is nested too deeply to read; is it the right {what} file?"
    if isinstance(exc, MemoryError):
        return f"{path} does not fit in memory; split it into parts (a folder or a glob of Parquet files)"
    tomllib = sys.modules.get("tomllib")
    if tomllib is not None and isinstance(exc, tomllib.TOMLDecodeError):
        return f"{path} is not valid TOML: {shorten(exc)}; fix that line (strings need quotes, e.g. key = \"text\")"
    arrow = sys.modules.get("pyarrow")
    if arrow is not None and isinstance(exc, arrow.ArrowException):
        kind = "Parquet" if suffix in (".parquet", ".pq") else "CSV" if suffix in (".csv", ".txt", ".gz") else what
        return f"{path} is not a readable {kind} file ({shorten(exc)}); is it complete and of that type?"
    duckdb = sys.modules.get("duckdb")
    if duckdb is not None and isinstance(exc, duckdb.Error):
        return f"cannot read {path}: {shorten(exc)}"
    pandas_errors = sys.modules.get("pandas.errors")
    if pandas_errors is not None and isinstance(exc, (pandas_errors.ParserError, pandas_errors.EmptyDataError)):
        return f"{path} is not a readable CSV file ({shorten(exc)}): check the delimiter (a comma) and the quoting"
    return None


@contextlib.contextmanager
def reading(path: str | Path, what: str = "file") -> Iterator[None]:
    """Read ``path`` inside this block: a reader's or parser's exception becomes an InputError whose sentence
    names the file and what to do (zip, encoding, Parquet, CSV, TOML, permissions, size); the project's own
    InputErrors pass through, anything else is a bug and propagates. ``what``: "panel", "config", ..."""
    path = Path(path)
    try:
        yield
    except InputError:
        raise
    except (OSError, ValueError, LookupError, RecursionError, MemoryError, zipfile.BadZipFile) as exc:
        advice = _advice(exc, path, what)
        if advice is None and isinstance(exc, (OSError, ValueError)):
            advice = f"cannot read {what} file {path}: {shorten(exc)}"
        if advice is None:
            raise
        raise InputError(advice) from exc
    except Exception as exc:
        advice = _advice(exc, path, what)  # library errors that are not ValueErrors (duckdb.Error, ...)
        if advice is None:
            raise
        raise InputError(advice) from exc
