"""The project's two error kinds and how an error is told to a person.

`InputError`: input the user must fix (data, config, policy, workbook, arguments); the CLI prints it and exits 2,
a worksheet function shows it in its cell, the ribbon in a message box, the service as a 4xx. `OutputError`: a
file that cannot be written (the CLI exits 1). Anything else reaching a front end is a bug.
"""

from __future__ import annotations

import codecs
import contextlib
import itertools
import logging
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from pydantic import ValidationError

log = logging.getLogger(__name__)

MAX_MESSAGE = 255  # a cell message: Excel's own error texts and tooltips stay well below this
MAX_QUOTED = 120  # characters of a library's own message (or of an offending value) a message repeats


class InputError(ValueError):
    """Input the user must fix (data, config, policy, workbook): the CLI prints the message and exits 2."""


#: How the engine names a panel handed over as a DataFrame; a front end that knows better renames it (`data_named`).
FRAME_SOURCE = "DataFrame"


class PanelError(InputError):
    """The panel cannot be used as it is. ``problems`` lists every finding (not just the first)."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + ("\n  ".join([""] + problems) if len(problems) > 1 else problems[0]))


@contextlib.contextmanager
def data_named(label: str) -> Iterator[None]:
    """A panel error about a DataFrame the caller made from a range names that range instead: the user never saw
    a DataFrame ("DataFrame: column 'MOB' rows 5, 9" becomes "Data!A1:F500: column 'MOB' rows 5, 9")."""
    try:
        yield
    except PanelError as exc:
        if exc.source != FRAME_SOURCE:
            raise
        raise PanelError(label, exc.problems) from None


class OutputError(OSError):
    """An output path that cannot be written; the old file, if any, is left as it was."""


def validation_errors(exc: ValidationError) -> list[dict]:
    """pydantic's errors without a list's "should have at least 1 item" where its items failed: that one follows
    from the others ("z.0: true is not a number; z: Tuple should have at least 1 item ..., not 0" said twice)."""
    errors = exc.errors()
    failed_items = {e["loc"][:-1] for e in errors if e["loc"] and isinstance(e["loc"][-1], int)}
    return [e for e in errors if not (e["type"] == "too_short" and e["loc"] in failed_items)] or errors


def describe_error(exc: BaseException, *, one_line: bool = False) -> str:
    """What went wrong, for a person reading a cell or a message box (never a traceback).

    The engine reports bad input (data, config, arguments, sheet names, files) as ValueError, KeyError or OSError
    subclasses (PanelError, ConfigError, SheetConflictError, WorkbookError, ...) whose message is written for the
    user; anything else is a bug, logged with its traceback and shown as "internal error".
    """
    if isinstance(exc, PanelError) and one_line and len(exc.problems) > 1:
        text = f"{exc.source}: {exc.problems[0]} (and {len(exc.problems) - 1} more problems)"
    elif isinstance(exc, ValidationError):
        text = "; ".join(_describe_validation(e) for e in validation_errors(exc))
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
    quoted = error["type"] not in ("missing", "cell_error") and "input" in error
    got = f" (got {shorten(repr(error['input']), 80)})" if quoted else ""
    return f"{where}: {error['msg']}{got}"


def counted(n: int, noun: str, plural: str = "") -> str:
    """``n`` and its noun as a message says it: "1 loan", "2,500 loans" (``plural``: an irregular plural)."""
    return f"{n:,} {agree(n, noun, plural or noun + 's')}"


def agree(n: int, one: str, many: str) -> str:
    """The word that agrees with ``n``: ``agree(1, "has", "have")`` is "has", so "1 cohort has", "2 cohorts have"."""
    return one if n == 1 else many


def runs_text(values) -> str:
    """Sorted whole numbers as a message lists them, consecutive ones as a run: [1, 2, 3, 5, 7, 8] -> "1..3, 5, 7..8"
    (37 clipped MOBs of a thin book are one line, not 37 numbers)."""
    values = sorted({int(v) for v in values})
    runs, start = [], 0
    for i in range(1, len(values) + 1):
        if i == len(values) or values[i] != values[i - 1] + 1:
            first, last = values[start], values[i - 1]
            runs.append(str(first) if first == last else f"{first}..{last}")
            start = i
    return ", ".join(runs)


def shorten(text: object, limit: int = MAX_QUOTED) -> str:
    """``text`` on one line, cut to ``limit`` characters: what a message may repeat of a value or of a library's
    message (a one-line 400 MB CSV must not end up in an error message)."""
    one_line = " ".join(str(text)[: limit * 4].split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"


def closest_name(name: str, names) -> str | None:
    """The one of ``names`` that ``name`` most likely meant (letter case, blanks at the ends or a typo apart), for a
    message's "did you mean ...?"; None when none is close."""
    import difflib

    folded = {str(n).strip().casefold(): str(n) for n in names}
    near = difflib.get_close_matches(name.strip().casefold(), list(folded), n=1, cutoff=0.6)
    return folded[near[0]] if near else None


def _detail(exc: BaseException, path: Path) -> str:
    """A library's message, shortened, without the path the sentence already names."""
    text = str(exc)
    for spelling in {str(path), str(path.resolve()) if path.is_absolute() else str(path)}:
        text = text.replace(f"'{spelling}'", "the file").replace(spelling, "the file")
    return shorten(text)


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
        return _encoding_advice(exc, path)
    workbook_part = isinstance(exc, (KeyError, SyntaxError, TypeError, EOFError))  # a part missing or damaged
    if isinstance(exc, zipfile.BadZipFile) or (workbook_part and suffix in (".xlsx", ".xlsm")):
        return (f"{path} is not a readable Excel workbook (an .xlsx is a zip package; this may be a renamed CSV, "
                f"a password-protected or damaged workbook): open it in Excel and save it as .xlsx without a "
                f"password, or export the sheet as CSV UTF-8")
    if isinstance(exc, RecursionError):
        return f"{path} is nested too deeply to read; is it the right {what} file?"
    if isinstance(exc, MemoryError):
        return f"{path} does not fit in memory; split it into parts (a folder or a glob of Parquet files)"
    json = sys.modules.get("json")
    if json is not None and isinstance(exc, json.JSONDecodeError):
        return f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); is it the right {what} file?"
    tomllib = sys.modules.get("tomllib")
    if tomllib is not None and isinstance(exc, tomllib.TOMLDecodeError):
        return f"{path} is not valid TOML: {_detail(exc, path)}; fix that line (strings need quotes, e.g. key = \"text\")"
    arrow = sys.modules.get("pyarrow")
    # pyarrow raises a plain OSError for a Parquet file it cannot open (a damaged footer, a text file)
    parquet_io = isinstance(exc, OSError) and "parquet" in str(exc).lower()
    if arrow is not None and (isinstance(exc, arrow.ArrowException) or parquet_io):
        kind = "Parquet" if suffix in (".parquet", ".pq") else "CSV" if suffix in (".csv", ".txt", ".gz") else what
        return f"{path} is not a readable {kind} file ({_detail(exc, path)}); is it complete and of that type?"
    duckdb = sys.modules.get("duckdb")
    if duckdb is not None and isinstance(exc, duckdb.Error):
        return f"cannot read {path}: {_detail(exc, path)}"
    pandas_errors = sys.modules.get("pandas.errors")
    if pandas_errors is not None and isinstance(exc, (pandas_errors.ParserError, pandas_errors.EmptyDataError,
                                                      pandas_errors.ParserWarning)):
        found = "the first data row has more values than the header" if isinstance(
            exc, pandas_errors.ParserWarning) else _detail(exc, path)
        return f"{path} is not a readable CSV file ({found}): check the delimiter (a comma) and the quoting"
    return None


UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
SAVE_AS_UTF8 = "save it as UTF-8 (Excel: 'CSV UTF-8'; Notepad: encoding 'UTF-8')"
_UTF16 = "{path} is UTF-16 text (what Notepad and Excel call 'Unicode'), not UTF-8; " + SAVE_AS_UTF8
TEXT_CHUNK = 1 << 20  # bytes ``utf8_problem`` decodes at a time


def _encoding_advice(exc: UnicodeError, path: Path, *, whole: bool = False, lines_before: int = 0) -> str:
    """Which encoding the file seems to have; with ``whole`` (the decoder saw the file from its start, or from
    after its first ``lines_before`` lines) the line of the first bad byte."""
    raw = getattr(exc, "object", b"")
    raw = raw if isinstance(raw, (bytes, bytearray)) else b""
    if _utf16(raw):
        return _UTF16.format(path=path)
    start = getattr(exc, "start", None)
    where = ""
    if isinstance(start, int) and 0 <= start < len(raw):
        newlines = raw.count(b"\n", 0, start)
        line = f"line {lines_before + newlines + 1}: " if whole else ""
        where = f" ({line}byte 0x{raw[start]:02x})"
    return f"{path} is not UTF-8 text{where}; {SAVE_AS_UTF8}"


def _utf16(raw: bytes) -> bool:
    """The start of a file (or the text a decoder failed on) is UTF-16: a byte-order mark, or the NUL bytes of
    UTF-16 text without one (which is valid UTF-8)."""
    return raw[:2] in UTF16_BOMS or raw[:200].count(b"\x00") > 1


def utf8_problem(stream: BinaryIO, path: Path) -> str | None:
    """The sentence for the bytes of ``path`` (``stream``, from its start) when they are not UTF-8 text, naming the
    line of the first bad byte; None for UTF-8. Reads to that byte, so to the end of a file that is UTF-8: for
    after a reader has failed, to say why."""
    head = stream.read(TEXT_CHUNK)
    if _utf16(head):
        return _UTF16.format(path=path)
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines = 0
    for chunk in itertools.chain([head], iter(lambda: stream.read(TEXT_CHUNK), b"")):
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError as exc:  # its text is the chunk, after any bytes of a character cut by the last
            return _encoding_advice(exc, path, whole=True, lines_before=lines)
        lines += chunk.count(b"\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:  # a character cut by the end of the file
        return _encoding_advice(exc, path, whole=True, lines_before=lines)
    return None


def read_text(path: str | Path, what: str = "file", *, error: type[InputError] = InputError) -> str:
    """A small text file (config, key, policy) decoded as UTF-8, a UTF-8 byte-order mark dropped (Notepad writes
    one). Any other encoding, a folder, a missing or unreadable file: an ``error`` naming the file, the line of the
    first bad byte and what to do."""
    path = Path(path)
    with reading(path, what, error=error):
        raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(_encoding_advice(exc, path, whole=True)) from None
    if "\x00" in text:  # valid UTF-8, yet UTF-16 without a byte-order mark looks like this
        raise error(f"{path} has NUL bytes: it is UTF-16 ('Unicode') or binary, not UTF-8 text; {SAVE_AS_UTF8}")
    return text.removeprefix("\ufeff")


@contextlib.contextmanager
def reading(path: str | Path, what: str = "file", *, error: type[InputError] = InputError) -> Iterator[None]:
    """Read ``path`` inside this block: a reader's or parser's exception becomes an InputError (``error``, a
    subclass such as ConfigError, if given) whose sentence names the file and what to do (zip, encoding, Parquet,
    CSV, TOML, JSON, permissions, size); the project's own InputErrors pass through, anything else is a bug and
    propagates. ``what``: "panel", "config", ..."""
    path = Path(path)
    try:
        yield
    except InputError:
        raise
    except Exception as exc:
        advice = read_advice(exc, path, what)
        if advice is None:
            raise
        raise error(advice) from exc


def read_advice(exc: BaseException, path: Path, what: str = "file") -> str | None:
    """The sentence for an exception raised while reading ``path`` (see ``reading``); None for a bug (anything a
    reader or parser does not raise for a bad file)."""
    if not isinstance(exc, Exception):
        return None
    advice = _advice(exc, path, what)
    if advice is None and isinstance(exc, (OSError, ValueError)):
        advice = f"cannot read {what} file {path}: {_detail(exc, path)}"
    return advice
