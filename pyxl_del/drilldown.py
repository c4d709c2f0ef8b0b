"""Drill-down: from a cell of a DEL sheet (segment, cohort, MOB) to the loans behind it.

`loans_behind(data, config, segment, cohort, mob, state)` lists the loans of a segment (or the Portfolio) and
cohort observed at a MOB: loan, segment, state, EAD and the state the month before, largest EAD first, with the
totals that rebuild the cell (EAD in the DEL buckets / the cohort's EAD at MOB 0 is the actual DEL). ``state``
keeps one bucket, or the buckets of a DEL type ("DEL30").

Front ends: =DEL_LOANS(data, segment, cohort, mob, [state]) (udfs/decide_udfs.py) and the ribbon's Drill down,
which reads the selected cell of a DEL sheet and writes a Drill sheet. Both cap the list at what a sheet holds
and say so.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from . import report
from .config import DEL_TYPES, Config
from .data import PORTFOLIO, Panel, month_label, read_panel, validate_panel
from .sample import EXCEL_MAX_ROWS
from .udf import CellText, DataArgs, LruMemo, Inputs, excel_safe
from .workbook import Ref, WorkbookError, cells_to_frame

log = logging.getLogger(__name__)

SHEET_NAME = "Drill"
LOAN_COLUMNS = ("loan", "segment", "state", "ead", "previous_state")
PANEL_MEMO_SIZE = 4
DRILL_HEADER_ROWS = 6  # title, four summary lines, table header
TITLE_PATTERN = re.compile(r"^(?P<segment>.*)_(?P<del_type>DEL\d+) Actual & Forecast$")


@dataclass(frozen=True, eq=False)
class LoansCell:
    """The loans of one (segment, cohort, MOB) cell, largest EAD first, and the cell's totals."""

    segment: str
    cohort: str
    mob: int
    state: str | None
    loans: pd.DataFrame  # LOAN_COLUMNS
    n_loans: int  # observed at the MOB (before the state filter)
    ead: float  # their EAD at the MOB
    ead_mob0: float  # the cohort's EAD at MOB 0: the DEL denominator
    bad_ead: dict[str, float]  # EAD in each DEL type's buckets at the MOB

    def summary(self) -> list[str]:
        lines = [f"{self.n_loans:,} loans observed at MOB {self.mob}, EAD {self.ead:,.2f}; cohort EAD at MOB 0 "
                 f"{self.ead_mob0:,.2f}"]
        if self.ead_mob0 > 0:
            pooled = "; pooled over the segments, while the Portfolio sheet averages their DEL" \
                if self.segment == PORTFOLIO else ""
            lines.append("actual " + ", ".join(f"{d} {v / self.ead_mob0:.2%}" for d, v in self.bad_ead.items())
                         + f" (EAD in the DEL buckets / cohort EAD at MOB 0{pooled})")
        if self.n_loans == 0:
            lines.append(f"no loan of cohort {self.cohort} is observed at MOB {self.mob}: the cell is a forecast")
        if self.state is not None:
            lines.append(f"listed: {len(self.loans):,} loans in {self.state}")
        return lines


def parse_cohort(value: Any) -> int:
    """A cohort as a month index: "2024-01", a date, or 202401."""
    if isinstance(value, (datetime, date, pd.Timestamp)):
        return value.year * 12 + value.month - 1
    if isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer():
        v = int(value)
        if 1 <= v % 100 <= 12 and v >= 100:
            return (v // 100) * 12 + v % 100 - 1
    m = re.fullmatch(r"\s*(\d{4})-(\d{1,2})(?:-\d{1,2})?\s*", str(value))
    if m and 1 <= int(m.group(2)) <= 12:
        return int(m.group(1)) * 12 + int(m.group(2)) - 1
    raise WorkbookError(f"cohort {value!r} is not a month: use YYYY-MM (e.g. 2024-01), a date or 202401")


def _states(config: Config, state: str | None) -> tuple[str, ...] | None:
    if state is None:
        return None
    key = state.strip().upper()
    if key in DEL_TYPES:
        return config.buckets.bad(key)
    for bucket in config.buckets.order:
        if bucket.upper() == key:
            return (bucket,)
    raise WorkbookError(f"state {state!r} is not a bucket ({', '.join(config.buckets.order)}) or a DEL type "
                        f"({', '.join(DEL_TYPES)})")


def loans_in_panel(panel: Panel, loan_ids: pd.Series, config: Config, segment: str, cohort: Any, mob: int,
                   state: str | None = None) -> LoansCell:
    """The cell's loans from a validated panel; ``loan_ids`` is the panel's original loan-id column."""
    month = parse_cohort(cohort)
    if segment == PORTFOLIO:
        in_segment = np.ones(panel.n_rows, dtype=bool)
    elif segment in panel.segments:
        in_segment = panel.segment == panel.segments.index(segment)
    else:
        raise WorkbookError(f"unknown segment {segment!r} — known: {', '.join((PORTFOLIO, *panel.segments))}")
    in_cohort = in_segment & (panel.cohort == month)
    rows = np.flatnonzero(in_cohort & (panel.mob == mob))
    order = np.asarray(config.buckets.order, dtype=object)
    bad = {d: float(panel.ead[rows][np.isin(order[panel.state[rows]], config.buckets.bad(d))].sum()) for d in DEL_TYPES}
    n_loans, ead = len(rows), float(panel.ead[rows].sum())
    ead0 = float(panel.ead[in_cohort & (panel.mob == 0)].sum())
    wanted = _states(config, state)
    if wanted is not None:
        rows = rows[np.isin(order[panel.state[rows]], wanted)]
    rows = rows[np.argsort(-panel.ead[rows], kind="stable")]
    # Sorted by (loan, mob): the row before is the same loan's previous month when it is at mob - 1.
    before = np.maximum(rows - 1, 0)
    has_prev = (rows > 0) & (panel.loan[before] == panel.loan[rows]) & (panel.mob[before] == mob - 1)
    loans = pd.DataFrame({
        "loan": pd.array(loan_ids.iloc[panel.row[rows]].astype(str).to_numpy(), dtype="string"),
        "segment": pd.array(np.asarray(panel.segments, dtype=object)[panel.segment[rows]], dtype="string"),
        "state": pd.array(order[panel.state[rows]], dtype="string"),
        "ead": panel.ead[rows],
        "previous_state": pd.array(np.where(has_prev, order[panel.state[before]], ""), dtype="string"),
    })
    return LoansCell(segment=segment, cohort=month_label([month])[0], mob=int(mob),
                     state=None if state is None else state.strip(), loans=loans, n_loans=n_loans, ead=ead,
                     ead_mob0=ead0, bad_ead=bad)


def loans_behind(data, config: Config, segment: str, cohort: Any, mob: int, state: str | None = None, *,
                 sheet=None) -> LoansCell:
    """The loans behind a DEL cell of a panel (DataFrame or file)."""
    frame, source = read_panel(data, config, sheet=sheet)
    return loans_in_panel(validate_panel(frame, config, source), frame[config["loan_id"]], config, segment, cohort,
                          mob, state)


# ------------------------------------------------------------------------------------ worksheet function

PANELS = LruMemo(PANEL_MEMO_SIZE)


class LoansArgs(DataArgs):
    segment: CellText
    cohort: Any
    mob: int
    state: CellText | None = None


@excel_safe
def loans_cells(data: Any, segment: Any, cohort: Any, mob: Any, state: Any, config: Any, *,
                folder=None, max_rows: int = EXCEL_MAX_ROWS) -> list[list]:
    """=DEL_LOANS: a header row and one row per loan; capped with a last row saying how many were left out."""
    args = LoansArgs(segment=segment, cohort=cohort, mob=mob, state=state, config=config)
    inputs = Inputs.of(data, args, folder)
    cfg = inputs.config()

    def validated():
        given = data.strip() if isinstance(data, str) else cells_to_frame(data, ints_are_errors=True)
        frame, source = read_panel(given, cfg)
        return validate_panel(frame, cfg, source), frame[cfg["loan_id"]]

    panel, ids = PANELS.get((inputs.data_key, inputs.config_key), validated)
    cell = loans_in_panel(panel, ids, cfg, args.segment, args.cohort, args.mob, args.state)
    room = max_rows - 2  # the header, and a last row for the message when the list is cut
    rows = cell.loans.iloc[:room]
    out = [["Loan", "Segment", "State", "EAD", "Previous state"],
           *([str(v) for v in r[:3]] + [float(r[3]), str(r[4])] for r in rows.itertuples(index=False, name=None))]
    if len(cell.loans) > room:
        out.append([f"#pyxl_del: showing the {room:,} largest of {len(cell.loans):,} loans: the list is longer "
                    f"than a sheet; narrow it with the state argument", "", "", "", ""])
    return out


# ------------------------------------------------------------------------------------------------ sheet


def drill_sheet(cell: LoansCell, *, max_rows: int = EXCEL_MAX_ROWS) -> report.SheetLayout:
    """The Drill sheet: what the cell is, its totals, then the loans (capped with a clear message)."""
    from .report import Area, Block, Format, SheetLayout, Style

    label = "Portfolio" if cell.segment == PORTFOLIO else cell.segment
    title = f"Loans behind {label}, cohort {cell.cohort}, MOB {cell.mob}"
    lines = cell.summary()
    room = max_rows - DRILL_HEADER_ROWS - len(lines)
    shown = cell.loans.iloc[:room]
    if len(cell.loans) > room:
        lines.append(f"showing the {room:,} largest of {len(cell.loans):,} loans: the list is longer than a sheet "
                     f"holds; use =DEL_LOANS with a state, or filter the data")
    grid = np.empty((len(lines) + 1, 1), dtype=object)
    grid[0, 0] = report.clean_text(title)
    grid[1:, 0] = [report.clean_text(line) for line in lines]
    top = len(lines) + 3
    header = np.array([["Loan", "Segment", "State", "EAD", "Previous state"]], dtype=object)
    body = shown.astype(object).to_numpy()
    body[:, :3] = np.vectorize(report.clean_text, otypes=[object])(body[:, :3]) if len(body) else body[:, :3]
    blocks = [Block(1, 1, grid), Block(top, 1, header)]
    formats = [Format(Area.cell(1, 1), report.TITLE_STYLE), Format(Area(2, 1, 1 + len(lines), 1), report.NOTE_STYLE),
               Format(Area(top, 1, top, 5), report.HEADER_STYLE)]
    if len(body):
        blocks.append(Block(top + 1, 1, body))
        formats.append(Format(Area(top + 1, 4, top + len(body), 4), Style(number_format="#,##0.00")))
    return SheetLayout(name=SHEET_NAME, kind="drill", owner="drill", title=title, segment=cell.segment,
                       blocks=tuple(blocks), formats=tuple(formats),
                       column_widths={1: 24.0, 2: 18.0, 3: 12.0, 4: 14.0, 5: 15.0},
                       row_heights={1: 30.0}, freeze=(top + 1, 1), tab_color="A6A6A6",
                       autofilter=Area(top, 1, top + max(len(body), 1), 5),
                       areas={"loans": Area(top, 1, top + max(len(body), 1), 5)})


# ------------------------------------------------------------------------------------------------ ribbon


def cell_of_sheet(book, ref: Ref) -> tuple[str, str, str, int]:
    """(segment label, DEL type, cohort, MOB) of a selected cell of a DEL sheet written by pyxl_del."""
    # The report's DEL sheets are the ones it owns whose title names a DEL type (not flags, curves, ...).
    owned = book.own_sheets().get(ref.sheet) == report.OWNER
    parsed = TITLE_PATTERN.fullmatch(str(book.read_frame(Ref(ref.sheet, "A1:A2")).columns[0])) if owned else None
    if parsed is None:
        raise WorkbookError(f"sheet {ref.sheet!r} is not a DEL sheet written by pyxl_del: select a cell of one "
                            f"(e.g. CASH LOAN_DEL30) and click Drill down again")
    m = re.fullmatch(r"([A-Z]{1,3})(\d+)", ref.address)
    col = sum((ord(c) - 64) * 26**i for i, c in enumerate(reversed(m.group(1))))
    row = int(m.group(2))
    if row < 4 or col < 2:
        raise WorkbookError(f"{ref} is not a DEL value: select a cell under a MOB and right of a cohort")
    block = book.read_frame(Ref(ref.sheet, f"A3:{m.group(1)}{row}"))
    cohort = block.iloc[-1, 0]
    try:
        mob = int(float(block.columns[-1]))
    except ValueError:
        raise WorkbookError(f"{ref} is not under a MOB column") from None
    if cohort is None or cohort != cohort:
        raise WorkbookError(f"{ref} is not on a cohort row")
    return parsed["segment"], parsed["del_type"], str(cohort), mob


def drill_down_action(ctx):
    """Ribbon: the loans behind the selected DEL cell, on a Drill sheet."""
    ref = ctx.book.active_cell()
    if ref is None:
        raise WorkbookError("select a cell of a DEL sheet (a cohort row, a MOB column) and click Drill down")
    label, del_type, cohort, mob = cell_of_sheet(ctx.book, ref)
    config = ctx.config()
    source = ctx.data_source()
    frame, _ = read_panel(ctx.book.read_frame(source), config)
    panel = validate_panel(frame, config, f"{ctx.book.name} {source}")
    segments = {report.clean_text(s): s for s in panel.segments} | {PORTFOLIO: PORTFOLIO}
    if label not in segments:
        raise WorkbookError(f"the data in {source} has no segment {label!r}: run the forecast again")
    cell = loans_in_panel(panel, frame[config["loan_id"]], config, segments[label], cohort, mob)
    return ctx.write([drill_sheet(cell)], f"Drill down {ref} ({del_type}): {cell.n_loans:,} loans")
