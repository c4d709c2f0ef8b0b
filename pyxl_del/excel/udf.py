"""The engine side of the worksheet functions (=DEL_FORECAST and companions); udfs/del_udfs.py is the xlwings glue.

Arguments arrive as Excel hands them to xlwings: a range as a 2-D tuple of cell values (None for a blank cell,
a float for every number, an int for a cell error such as #N/A), a single cell as a scalar. The functions here
take those plain values, validate the scalar arguments with pydantic models (the project's rule: pydantic at the
boundaries), and return a rectangular list of rows with no None or NaN in it (a missing value is "") — or one
cell "#pyxl_del: <what is wrong>". They never raise, so a traceback never reaches a cell.

Memo: a recalculation hands over the same cells again. Two bounded LRU maps answer it: the fitted DelResult per
(data, config) — so the tables of several segments, DEL types and kinds share one fit — and each function's cells
per (data, config, arguments). The fingerprint of cells is Python's hash of the tuple: it is recomputed on every
call (10-20 ms for 100,000 rows x 6 columns; no copy of the cells is kept), 64 bits wide and process-local, which
is what a memo of a few entries needs. The fingerprint of a file (the data as a path, the config) is its resolved
path, size and modification time, so saving the file invalidates the memo without the file being read.
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import numpy as np
import pandas as pd
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from pyxl_del import __version__
from pyxl_del.engine.config import (
    CONFIG_FILE_NAME,
    MAX_MOB,
    CellText,
    Config,
    DelType,
    load_config,
)
from pyxl_del.engine.errors import data_named, describe_error
from pyxl_del.engine.memo import LruMemo
from pyxl_del.engine.pipeline import DelResult, run
from pyxl_del.excel.workbook import CELL_ERRORS, WorkbookError, cells_to_frame

log = logging.getLogger(__name__)

MESSAGE_PREFIX = "#pyxl_del: "
# The longest text a worksheet function returns in a cell: xlwings hands a result to Excel as a VBA Variant array,
# and one string of 256 characters or more in it turns the whole spill into #VALUE! (xlwings issue #456).
MAX_CELL_TEXT = 255
# How a message names the data argument's cells (short: a cell message has 255 characters); its row numbers count
# the range's header row as row 1 (docs/excel.md).
DATA_RANGE = "data range"
# The corner of a DEL table whose forecast rests on too few months of data (the cause: =DEL_WARNINGS).
ILLUSTRATIVE_CORNER = "Cohort (ILLUSTRATIVE: see DEL_WARNINGS)"
FIT_MEMO_SIZE = 8  # fitted results kept: a DelResult is small (arrays of segment x cohort x MOB x state)
TABLE_MEMO_SIZE = 256  # answers kept: a few thousand cells each
CONFIG_MEMO_SIZE = 16

Cells = list[list[Any]]
_F = TypeVar("_F", bound=Callable[..., Any])


# ------------------------------------------------------------------------------------------- arguments


def _del_type(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


def cell_error(value: Any) -> str | None:
    """The Excel error a value stands for (#N/A, #REF!, ...): COM hands a cell error to a function as an int code
    (every number it hands over is a float), openpyxl as its text; None for any other value."""
    if type(value) is int:
        return CELL_ERRORS.get(value)
    return value.strip() if isinstance(value, str) and value.strip() in CELL_ERRORS.values() else None


class _Arguments(BaseModel):
    """Scalar UDF arguments. A blank cell or an omitted optional argument takes the default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _blank_is_default(cls, values: Any) -> Any:
        if isinstance(values, dict):
            return {k: v for k, v in values.items() if v is not None and v != ""}
        return values

    @field_validator("*", mode="before")
    @classmethod
    def _no_cell_error(cls, value: Any) -> Any:
        # An argument cell showing #N/A must say so, not "must be > 0" about the error's code.
        error = cell_error(value)
        if error is not None:
            raise PydanticCustomError("cell_error", "the cell holds the error {error}", {"error": error})
        return value


def _mob(value: Any) -> Any:
    # pydantic's own words for 1e19 ("exceeded maximum size") or 2.5 say little in a cell; and it reads TRUE as 1.
    if isinstance(value, bool) or (isinstance(value, float) and not (value.is_integer() and 0 <= value <= MAX_MOB)):
        raise PydanticCustomError("mob", "a MOB is a whole number from 0 to {max_mob}", {"max_mob": MAX_MOB})
    return value


#: A months-on-book argument.
Mob = Annotated[int, BeforeValidator(_mob), Field(ge=0, le=MAX_MOB)]


class DataArgs(_Arguments):
    config: CellText | None = None  # path of a config.toml; default: the one next to the workbook


class TableArgs(DataArgs):
    segment: CellText
    del_type: Annotated[DelType, BeforeValidator(_del_type)] = "DEL30"
    calibrate: bool = True


class MatrixArgs(DataArgs):
    segment: CellText
    mob: Mob
    calibrate: bool = True


# ------------------------------------------------------------------------------------------------ memo


FITS = LruMemo(FIT_MEMO_SIZE)
TABLES = LruMemo(TABLE_MEMO_SIZE)
CONFIGS = LruMemo(CONFIG_MEMO_SIZE)


def file_key(path: Path, what: str) -> tuple:
    """A file's identity for the memo: resolved path, size and modification time (no content read)."""
    try:
        st = path.stat()
    except OSError as exc:
        raise WorkbookError(f"{what} not found: {path}") from exc
    return ("file", str(path.resolve()), st.st_size, st.st_mtime_ns)


def locate_config(explicit: str | Path | None, folder: Path | None) -> Path | None:
    """The config file to use: ``explicit``; else config.toml next to the workbook (``folder``); else in the
    working directory; else None (the built-in defaults)."""
    if explicit is not None:
        return Path(str(explicit).strip()).expanduser()  # a path typed with a space around it, as data's is read
    for place in (folder, Path.cwd()):
        if place is not None and (place / CONFIG_FILE_NAME).is_file():
            return place / CONFIG_FILE_NAME
    return None


# -------------------------------------------------------------------------------------------------- data


def _data_rows(data: Any) -> tuple:
    """A range's values as a tuple of row tuples (the form COM hands over, and hashable)."""
    if isinstance(data, tuple) and (not data or isinstance(data[0], tuple)):
        return data
    if isinstance(data, (list, tuple)) and data and isinstance(data[0], (list, tuple)):
        return tuple(map(tuple, data))
    raise WorkbookError("data must be a range with a header row, or the path of a .csv or .parquet panel")


def data_key(data: Any) -> tuple:
    """The memo key of the data argument: cells by their hash, a file path by its identity."""
    if isinstance(data, str):
        if not data.strip():  # a cell whose formula gives "": Path("") would be the working directory
            raise WorkbookError("data is empty: give a range with a header row, or the path of a .csv or .parquet "
                                "panel")
        return file_key(Path(data.strip()).expanduser(), "data file")
    rows = _data_rows(data)
    return ("cells", len(rows), len(rows[0]) if rows else 0, hash(rows))


@dataclass(frozen=True)
class Inputs:
    """The data and config of one call, with their memo keys."""

    data: Any
    data_key: tuple
    config_path: Path | None
    config_key: tuple
    calibrate: bool

    @classmethod
    def of(cls, data: Any, args: DataArgs, folder: Path | None, calibrate: bool = True) -> Inputs:
        path = locate_config(args.config, folder)
        config_key = ("defaults",) if path is None else file_key(path, "config file")
        return cls(data, data_key(data), path, config_key, calibrate)

    @property
    def key(self) -> tuple:
        return self.data_key, self.config_key, self.calibrate

    def config(self) -> Config:
        """The validated config, parsed once per version of the file; without calibration if asked."""
        cfg = CONFIGS.get(self.config_key, lambda: Config() if self.config_path is None else load_config(self.config_path))
        return cfg if self.calibrate else cfg.with_overrides(calibration={"mode": "none"})

    def fit(self) -> DelResult:
        """The DelResult of the data under the config, fitted once per (data, config)."""
        def compute() -> DelResult:
            if isinstance(self.data, str):
                return run(Path(self.data.strip()).expanduser(), self.config())
            with data_named(DATA_RANGE):
                return run(cells_to_frame(_data_rows(self.data), ints_are_errors=True), self.config())

        return FITS.get(self.key, compute)


# ---------------------------------------------------------------------------------------------- results


def frame_to_cells(frame: pd.DataFrame, index_label: str | None) -> Cells:
    """A table as rows for a spill: the header row, then the rows; NaN and NA become "".

    With ``index_label`` the index is the first column (cohort labels, states: always text), under that label.
    """
    body = frame.astype(object).where(frame.notna(), "").to_numpy(dtype=object).tolist()
    header = [c.item() if isinstance(c, np.generic) else c for c in frame.columns]
    if index_label is None:
        return [header, *body]
    return [[index_label, *header], *([str(i), *row] for i, row in zip(frame.index, body, strict=True))]


def excel_safe(fn: _F) -> _F:
    """Run a worksheet function; any exception becomes one cell [["#pyxl_del: <message>"]]."""

    @wraps(fn)
    def guarded(*args, **kwargs):
        try:
            cells = fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - a worksheet function answers with a message, never a traceback
            cells = [[MESSAGE_PREFIX + describe_error(exc, one_line=True)]]
        return [[cell_text(v) for v in row] for row in cells]

    return guarded  # type: ignore[return-value]


def cell_text(value: Any) -> Any:
    """A value as a worksheet function may return it: text of at most MAX_CELL_TEXT characters, a longer one cut in
    the middle (" … "), so that what it is about (its start) and what to do (its end, where a message names the
    settings: "or set [risk] el_basis = ...") show; the end gets more, as the settings come last."""
    if isinstance(value, str) and len(value) > MAX_CELL_TEXT:
        head = (MAX_CELL_TEXT - 3) // 3
        return f"{value[:head]} … {value[len(value) - (MAX_CELL_TEXT - 3 - head):]}"
    return value


def text_rows(text: str) -> list[str]:
    """A long text as rows of at most MAX_CELL_TEXT characters, broken between words, each after the first
    starting with "… " (a warning kept whole down a column rather than cut)."""
    return textwrap.wrap(text, MAX_CELL_TEXT, subsequent_indent="… ") or [text]


def _answer(inputs: Inputs, args: _Arguments, what: str, make: Callable[[DelResult], Cells]) -> Cells:
    """The cells of one worksheet function, computed once per (data, config, arguments)."""
    cells = TABLES.get((inputs.key, what, args), lambda: make(inputs.fit()))
    return [list(row) for row in cells]  # the memo keeps its own copy


@excel_safe
def table(data: Any, segment: Any, del_type: Any, calibrate: Any, config: Any, *, kind: str,
          folder: Path | None = None) -> Cells:
    """The cohort x MOB table of ``kind`` (mixed, actual, forecast, flags) with a header row and cohort column."""
    args = TableArgs(segment=segment, del_type=del_type, calibrate=calibrate, config=config)

    def cells(result: DelResult) -> Cells:
        # A forecast from too few months of data says so in the spill's corner (engine.diagnostics.short_history).
        marked = kind in ("mixed", "forecast") and result.is_illustrative(args.segment)
        return frame_to_cells(result.wide(args.segment, args.del_type, kind),
                              ILLUSTRATIVE_CORNER if marked else "Cohort")

    return _answer(Inputs.of(data, args, folder, args.calibrate), args, kind, cells)


@excel_safe
def matrix(data: Any, segment: Any, mob: Any, calibrate: Any, config: Any, *, folder: Path | None = None) -> Cells:
    """The transition matrix of a segment for MOB step mob -> mob + 1, as applied in the forecast."""
    args = MatrixArgs(segment=segment, mob=mob, calibrate=calibrate, config=config)
    return _answer(Inputs.of(data, args, folder, args.calibrate), args, "matrix",
                   lambda result: frame_to_cells(result.matrix(args.segment, args.mob), "From \\ to"))


@excel_safe
def calibration(data: Any, config: Any, *, folder: Path | None = None) -> Cells:
    """The step-wise calibration factors, one row per segment and MOB."""
    args = DataArgs(config=config)
    return _answer(Inputs.of(data, args, folder), args, "calibration",
                   lambda result: frame_to_cells(result.calibration_factors, None))


@excel_safe
def segments(data: Any, config: Any, *, folder: Path | None = None) -> Cells:
    """The segment names a table accepts: Portfolio first, then the data's segments, one per row."""
    args = DataArgs(config=config)
    return _answer(Inputs.of(data, args, folder), args, "segments",
                   lambda result: [["Segment"], *([str(s)] for s in result.sheet_segments)])


@excel_safe
def warnings(data: Any, config: Any, *, folder: Path | None = None) -> Cells:
    """The run's warnings, one per row under a "Warning" header (thin data, fallbacks, diagnostics); "none" when the
    run has none, so an empty spill never looks like a failed one. A warning longer than a cell may return goes on
    over the next rows (`text_rows`)."""
    args = DataArgs(config=config)
    return _answer(Inputs.of(data, args, folder), args, "warnings",
                   lambda result: [["Warning"], *([line] for w in result.warnings or ("none",)
                                                  for line in text_rows(str(w)))])


def version() -> str:
    return __version__
