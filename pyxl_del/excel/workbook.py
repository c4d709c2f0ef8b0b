"""The workbook the ribbon actions work on: a small interface, over live Excel (xlwings) or a file (openpyxl).

The ribbon's actions (pyxl_del.excel.ribbon) are functions of a `Workbook`: read a range or a sheet as a DataFrame,
the current selection and active cell, write report layouts, list and delete the sheets pyxl_del wrote, and a
remembered name.
`XlwingsBook` is the workbook a button was clicked in (``xw.Book.caller()``); `OpenpyxlBook` is a file on disk
for ``pyxl-del ribbon ACTION --workbook FILE.xlsm``. Both write the same sheets: the layouts of pyxl_del.sheets.report,
rendered by pyxl_del.excel.render.render_openpyxl (live Excel gets them by copying the sheets of a rendered scratch
workbook, so formats, colour scales and charts are Excel's own and identical to the file's).

Ownership: every sheet pyxl_del writes carries the hidden sheet-scoped name ``pyxl_del.sheets.layout.OWNER_NAME``
recording the layout's owner (the run that wrote it), the workbook's id and the sheet's name
(`pyxl_del.excel.render.owner_of`): a renamed or copied sheet, or one from another workbook, is the user's. Writing
layouts replaces only owned sheets, those of the owners being written or of the same names
(`pyxl_del.excel.render.plan_replacement`), and refuses to touch a user's sheet that has one of the new names
(`SheetConflictError`).
"""

from __future__ import annotations

import io
import logging
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from pyxl_del.engine.data import row_numbers
from pyxl_del.engine.errors import InputError, agree, reading
from pyxl_del.engine.files import atomic_replace
from pyxl_del.excel.opc import read_parts, restore_ribbon, write_zip
from pyxl_del.excel.render import (
    WORKBOOK_ID_NAME,
    constant_text,
    formula_text,
    new_workbook_id,
    owner_of,
    plan_replacement,
    render_openpyxl,
    sheet_owners,
)
from pyxl_del.sheets.layout import OWNER_NAME, SheetLayout

log = logging.getLogger(__name__)

#: Excel's cell errors: COM hands them over as these codes in a range's values (xlwings/_xlwindows.py cell_errors);
#: openpyxl reads them as their text.
CELL_ERRORS = {-2146826281: "#DIV/0!", -2146826246: "#N/A", -2146826259: "#NAME?", -2146826288: "#NULL!",
               -2146826252: "#NUM!", -2146826265: "#REF!", -2146826273: "#VALUE!"}
_ERROR_TEXTS = frozenset(CELL_ERRORS.values())
MACRO_SUFFIXES = (".xlsm", ".xltm")


class WorkbookError(InputError):
    """Input from a workbook (cells, a range address, a file) that cannot be used; the message says why."""


# ---------------------------------------------------------------------------------------------- ranges


@dataclass(frozen=True)
class Ref:
    """A sheet, or a range of a sheet ("A1:F100")."""

    sheet: str
    address: str | None = None

    def __str__(self) -> str:
        # Quoted as Excel quotes it: unless the name is a plain word that cannot be read as a cell address.
        plain = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", self.sheet) and not re.fullmatch(
            r"[A-Za-z]{1,3}\d+|[Rr]\d*[Cc]\d*", self.sheet)
        name = self.sheet if plain else "'" + self.sheet.replace("'", "''") + "'"
        return name if self.address is None else f"{name}!{self.address}"

    @classmethod
    def parse(cls, text: str) -> Ref:
        """``Sheet!A1:F100``, ``'My sheet'!$A$1:$F$100``, whole columns ``Data!A:F`` or a bare sheet name."""
        text = text.strip().removeprefix("=")
        m = re.fullmatch(r"(?:'((?:[^']|'')+)'|([^!']+))(?:!\$?([A-Za-z]{1,3})\$?(\d+)(?::\$?([A-Za-z]{1,3})\$?(\d+))?)?",
                         text)
        columns = re.fullmatch(r"(?:'((?:[^']|'')+)'|([^!']+))!\$?([A-Za-z]{1,3}):\$?([A-Za-z]{1,3})", text)
        if columns:
            return cls((columns.group(1) or "").replace("''", "'") or columns.group(2),
                       f"{columns.group(3).upper()}:{columns.group(4).upper()}")
        if not m:
            raise WorkbookError(f"not a sheet or range reference: {text!r} (expected e.g. Data!A1:F5000 or Data!A:F)")
        sheet = (m.group(1) or "").replace("''", "'") or m.group(2)
        if m.group(3) is None:
            return cls(sheet)
        first = f"{m.group(3).upper()}{m.group(4)}"
        last = f"{m.group(5).upper()}{m.group(6)}" if m.group(5) else first
        return cls(sheet, f"{first}:{last}")


def cells_to_frame(rows: Any, *, ints_are_errors: bool) -> pd.DataFrame:
    """A table with a header row, as cell values, to a DataFrame.

    Blank trailing rows (a whole-column reference) and columns without a header are dropped. A cell error
    (#N/A, #REF!, ...) is an error naming its column and rows: COM hands errors over as int codes (every number
    it hands over is a float), so ``ints_are_errors`` for values from Excel; openpyxl gives them as their text.
    Dates from COM carry a UTC time zone, which is dropped (Excel dates have none).
    """
    if not isinstance(rows, (list, tuple)) or not rows or not isinstance(rows[0], (list, tuple)):
        raise WorkbookError("the data needs a header row and at least one row of data")
    last = len(rows)
    while last > 1 and all(v is None for v in rows[last - 1]):
        last -= 1
    if last < 2:
        raise WorkbookError("the data needs a header row and at least one row of data")
    width = len(rows[0])
    ragged = [i for i, row in enumerate(rows[:last]) if not isinstance(row, (list, tuple)) or len(row) != width]
    if ragged:  # an array from another function or from code, not a range: its rows must line up with the header
        more = f" and {len(ragged) - 10} more" if len(ragged) > 10 else ""
        listed = f"{agree(len(ragged), 'row', 'rows')} {', '.join(str(i + 1) for i in ragged[:10])}{more}"
        raise WorkbookError(f"the data is not a rectangular range: the header has {width} cells, {listed} "
                            f"{agree(len(ragged), 'has', 'have')} another number")
    # A list, not a dict: a header naming one column twice keeps both, for the reader to refuse the ambiguity.
    columns: list[tuple[str, Any]] = []
    for name, values in zip(rows[0], zip(*rows[1:last], strict=True), strict=True):
        if name is None or name == "":
            continue
        name = str(int(name)) if isinstance(name, float) and name.is_integer() else str(name)
        kinds = set(map(type, values))
        if ints_are_errors and int in kinds:
            bad = [i for i, v in enumerate(values) if type(v) is int]
        elif not ints_are_errors and str in kinds and not _ERROR_TEXTS.isdisjoint(values):
            bad = [i for i, v in enumerate(values) if isinstance(v, str) and v in _ERROR_TEXTS]
        else:
            bad = []
        if bad:
            labels = sorted({CELL_ERRORS.get(values[i], values[i]) for i in bad})
            raise WorkbookError(f"column {name!r} has cell errors ({', '.join(map(str, labels))}) in "
                                f"{row_numbers(bad)}")
        if any(issubclass(k, datetime) for k in kinds):
            values = [v.replace(tzinfo=None) if isinstance(v, datetime) and v.tzinfo is not None else v
                      for v in values]
        columns.append((name, values))
    return pd.concat([pd.Series(values, name=name) for name, values in columns], axis=1) if columns else pd.DataFrame()


# ---------------------------------------------------------------------------------------------- interface


class Workbook(Protocol):
    """What a ribbon action may do with a workbook."""

    @property
    def name(self) -> str: ...

    @property
    def folder(self) -> Path | None:
        """Where the workbook is saved (config.toml is looked for there); None for a new, unsaved book."""

    def sheet_names(self) -> list[str]: ...

    def read_rows(self, ref: Ref) -> list[tuple]:
        """The cell values of a range (or of a sheet's used area), row by row."""

    def read_frame(self, ref: Ref) -> pd.DataFrame:
        """A range (or a sheet's used area) whose first row is the header, as a DataFrame."""

    def selection(self) -> Ref | None:
        """The selected range, when it is more than one cell."""

    def active_cell(self) -> Ref | None:
        """The selected cell: the top-left one of the selection (a single cell included), e.g. ``Ref("S", "B5")``."""

    def own_sheets(self) -> dict[str, str]:
        """Sheets pyxl_del wrote, in tab order: name -> owner."""

    def delete_own_sheets(self, names: Iterable[str]) -> None: ...

    def write_layouts(self, layouts: Sequence[SheetLayout]) -> list[str]:
        """Write the layouts, replacing owned sheets as `excel.plan_replacement` says; returns the names written."""

    def get_name(self, name: str) -> Ref | None:
        """The range a workbook-level name refers to, if it exists."""

    def set_name(self, name: str, ref: Ref | None) -> None:
        """Point a hidden workbook-level name at the range ``ref``, or delete it (None)."""


def _first_cell(sheet: str, address: str) -> Ref:
    """The top-left cell of an address as Excel (``$B$5:$C$7,$E$1``) or openpyxl (``B5:C7 E1``) writes it."""
    return Ref(sheet, re.split(r"[:, ]", address.replace("$", "").strip())[0].upper())


# ---------------------------------------------------------------------------------------------- openpyxl


class OpenpyxlBook:
    """A workbook file, read and written with openpyxl; `save` replaces the file atomically and keeps the VBA
    project (keep_vba) and the ribbon (re-added after openpyxl's save, see pyxl_del.excel.opc)."""

    def __init__(self, path: str | Path, *, selection: Ref | None = None):
        import openpyxl

        self.path = Path(path)
        with reading(self.path, "workbook", error=WorkbookError):
            content = self.path.read_bytes()
            self._original = read_parts(content)
            self.wb = openpyxl.load_workbook(io.BytesIO(content), keep_vba=self.path.suffix.lower() in MACRO_SUFFIXES)
        self._selection = selection

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def folder(self) -> Path | None:
        return self.path.resolve().parent

    def sheet_names(self) -> list[str]:
        return list(self.wb.sheetnames)

    def _sheet(self, name: str):
        if name not in self.wb.sheetnames:
            raise WorkbookError(f"{self.name} has no sheet {name!r} (sheets: {', '.join(self.wb.sheetnames)})")
        return self.wb[name]

    def read_rows(self, ref: Ref) -> list[tuple]:
        ws = self._sheet(ref.sheet)
        if ref.address is None:
            return list(ws.iter_rows(values_only=True))
        # Row by row whatever the address: ws["A:F"] hands whole columns back as columns, and the table was read
        # sideways (its loan ids taken for the header); whole columns end at the sheet's last used row.
        from openpyxl.utils.cell import range_boundaries

        first_col, first_row, last_col, last_row = range_boundaries(ref.address)
        return list(ws.iter_rows(min_row=first_row or 1, max_row=last_row or max(ws.max_row, 1), min_col=first_col,
                                 max_col=last_col, values_only=True))

    def read_frame(self, ref: Ref) -> pd.DataFrame:
        return cells_to_frame(self.read_rows(ref), ints_are_errors=False)

    def selection(self) -> Ref | None:
        """The selection given to the constructor, else the one saved in the file (active sheet)."""
        if self._selection is not None:
            return self._selection
        ws = self.wb.active
        sqref = str(ws.sheet_view.selection[0].sqref or "") if ws.sheet_view.selection else ""
        if not sqref or " " in sqref or ":" not in sqref:  # one cell, or several areas: no table selected
            return None
        return Ref(ws.title, sqref)

    def active_cell(self) -> Ref | None:
        """The top-left cell of the selection given to the constructor, else of the one saved in the file."""
        if self._selection is not None:
            return None if self._selection.address is None else _first_cell(self._selection.sheet,
                                                                              self._selection.address)
        ws = self.wb.active
        selected = ws.sheet_view.selection[0] if ws.sheet_view.selection else None
        address = str(selected.sqref or selected.activeCell or "") if selected is not None else ""
        return _first_cell(ws.title, address) if address else None

    def own_sheets(self) -> dict[str, str]:
        return sheet_owners(self.wb)

    def delete_own_sheets(self, names: Iterable[str]) -> None:
        own = self.own_sheets()
        for name in names:
            if name not in own:
                raise WorkbookError(f"sheet {name!r} was not written by pyxl_del; it is left alone")
            self.wb.remove(self.wb[name])

    def write_layouts(self, layouts: Sequence[SheetLayout]) -> list[str]:
        return [ws.title for ws in render_openpyxl(layouts, self.wb)]

    def get_name(self, name: str) -> Ref | None:
        defined = self.wb.defined_names.get(name)
        if defined is None:
            return None
        for sheet, address in defined.destinations:
            return Ref(sheet, address.replace("$", ""))
        return None

    def set_name(self, name: str, ref: Ref | None) -> None:
        from openpyxl.workbook.defined_name import DefinedName

        self.wb.defined_names.pop(name, None)
        if ref is not None:
            target = str(Ref(ref.sheet, _absolute(ref.address)))
            self.wb.defined_names[name] = DefinedName(name, attr_text=target, hidden=True)

    def save(self) -> Path:
        """Write the workbook back in one rename; the ribbon part and relationship are restored."""
        with atomic_replace(self.path) as tmp:
            self.wb.save(tmp)
            parts = restore_ribbon(read_parts(tmp.read_bytes()), self._original)
            tmp.write_bytes(write_zip(parts, stamp=datetime.now(timezone.utc)))
        log.info("saved %s", self.path)
        return self.path


def _whole_columns(address: str) -> bool:
    """An address of whole columns ("A:F"), as `Ref.parse` keeps one."""
    return re.fullmatch(r"[A-Za-z]{1,3}:[A-Za-z]{1,3}", address) is not None


def _absolute(address: str | None) -> str:
    if address is None:
        raise WorkbookError("a name can only refer to a range, not a whole sheet")
    if _whole_columns(address):  # relative, a name would move them
        return "$" + address.replace(":", ":$")
    return re.sub(r"([A-Za-z]+)(\d+)", r"$\1$\2", address)


# ---------------------------------------------------------------------------------------------- xlwings


class XlwingsBook:
    """The workbook open in Excel (xlwings; Windows and macOS). Nothing is saved: the user saves as usual."""

    def __init__(self, book):
        self.book = book

    @classmethod
    def caller(cls) -> XlwingsBook:
        import xlwings as xw

        return cls(xw.Book.caller())

    @property
    def name(self) -> str:
        return self.book.name

    @property
    def folder(self) -> Path | None:
        full = Path(self.book.fullname)
        return full.parent if full.is_absolute() and full.parent.is_dir() else None

    def sheet_names(self) -> list[str]:
        return [s.name for s in self.book.sheets]

    def read_rows(self, ref: Ref) -> list[tuple]:
        if ref.sheet not in self.sheet_names():
            raise WorkbookError(f"{self.name} has no sheet {ref.sheet!r}")
        sheet = self.book.sheets[ref.sheet]
        address = ref.address
        if address is not None and _whole_columns(address):
            # Whole columns to the used area's last row: COM would hand over all 1,048,576 rows of them.
            first, last = address.split(":")
            address = f"{first}1:{last}{max(sheet.used_range.last_cell.row, 1)}"
        rng = sheet.used_range if address is None else sheet.range(address)
        values = rng.raw_value  # COM values: a tuple of row tuples, or a scalar for one cell
        return list(values) if isinstance(values, tuple) else [(values,)]

    def read_frame(self, ref: Ref) -> pd.DataFrame:
        # the same rules as the worksheet functions' data argument, which also arrives as COM values
        return cells_to_frame(self.read_rows(ref), ints_are_errors=True)

    def selection(self) -> Ref | None:
        selected = self.book.selection
        if selected is None or selected.sheet.book != self.book or selected.count < 2:
            return None
        return Ref(selected.sheet.name, selected.address.replace("$", ""))

    def active_cell(self) -> Ref | None:
        selected = self.book.selection
        if selected is None or selected.sheet.book != self.book:
            return None
        return _first_cell(selected.sheet.name, selected.address)

    def _workbook_id(self) -> str | None:
        found = [n for n in self.book.names if n.name == WORKBOOK_ID_NAME]
        return constant_text(found[0].refers_to) if found else None

    def own_sheets(self) -> dict[str, str]:
        wid = self._workbook_id()
        own = {}
        for sheet in self.book.sheets:
            for defined in sheet.names:
                if defined.name.rsplit("!", 1)[-1] == OWNER_NAME:
                    owner = owner_of(defined.refers_to, sheet.name, wid)
                    if owner is not None:
                        own[sheet.name] = owner
        return own

    def delete_own_sheets(self, names: Iterable[str]) -> None:
        own = self.own_sheets()
        app = self.book.app
        alerts, app.display_alerts = app.display_alerts, False  # no "delete this sheet?" prompt
        try:
            for name in names:
                if name not in own:
                    raise WorkbookError(f"sheet {name!r} was not written by pyxl_del; it is left alone")
                self.book.sheets[name].delete()
        finally:
            app.display_alerts = alerts

    def write_layouts(self, layouts: Sequence[SheetLayout]) -> list[str]:
        import openpyxl

        names = self.sheet_names()
        replaced = plan_replacement(names, self.own_sheets(), layouts)
        wid = self._workbook_id()
        if wid is None:
            wid = new_workbook_id()
            self.book.names.add(WORKBOOK_ID_NAME, "=" + formula_text(wid)).api.Visible = False
        app = self.book.app
        updating, app.screen_updating = app.screen_updating, False
        with tempfile.TemporaryDirectory(prefix="pyxl_del_") as tmp:
            scratch_path = Path(tmp) / "pyxl_del_sheets.xlsx"
            scratch = openpyxl.Workbook()
            scratch.remove(scratch.active)
            render_openpyxl(layouts, scratch, workbook_id=wid)  # the markers carry this workbook's id
            scratch.save(scratch_path)
            scratch_book = app.books.open(str(scratch_path))
            try:
                position = names.index(replaced[0]) if replaced else len(names)
                self.delete_own_sheets(replaced)
                written = []
                for sheet in scratch_book.sheets:  # Sheet.copy takes the sheet's local names (the marker) along
                    sheets = self.book.sheets
                    copy = (sheet.copy(before=sheets[position]) if position < len(sheets)
                            else sheet.copy(after=sheets[len(sheets) - 1]))
                    written.append(copy.name)
                    position += 1
            finally:
                scratch_book.close()
                app.screen_updating = updating
        if written:
            self.book.sheets[written[0]].activate()
        return written

    def get_name(self, name: str) -> Ref | None:
        found = [n for n in self.book.names if n.name == name]
        return Ref.parse(found[0].refers_to) if found else None

    def set_name(self, name: str, ref: Ref | None) -> None:
        for defined in [n for n in self.book.names if n.name == name]:
            defined.delete()
        if ref is not None:
            defined = self.book.names.add(name, "=" + str(Ref(ref.sheet, _absolute(ref.address))))
            defined.api.Visible = False
