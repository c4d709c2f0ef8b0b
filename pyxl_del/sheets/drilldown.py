"""The Drill sheet: the loans behind a DEL cell (pyxl_del.engine.loans), what the cell is and its totals."""

from __future__ import annotations

import numpy as np

from pyxl_del.engine.data import PORTFOLIO
from pyxl_del.engine.files import EXCEL_MAX_ROWS
from pyxl_del.engine.loans import LoansCell
from pyxl_del.sheets import layout
from pyxl_del.sheets.layout import Area, Block, Format, SheetLayout, Style
from pyxl_del.sheets.summary import (
    Figure,
    SheetWriter,
    book,
    summary_sheet,
    summary_top,
)

SHEET_NAME = "Drill"
DRILL_HEADER_ROWS = 6  # title, four summary lines, table header


def drill_sheet(cell: LoansCell, *, max_rows: int = EXCEL_MAX_ROWS) -> layout.SheetLayout:
    """The Drill sheet: what the cell is, its totals, then the loans (capped with a clear message)."""
    label = "Portfolio" if cell.segment == PORTFOLIO else cell.segment
    title = f"Loans behind {label}, cohort {cell.cohort}, MOB {cell.mob}"
    lines = cell.summary()
    room = max_rows - DRILL_HEADER_ROWS - len(lines)
    shown = cell.loans.iloc[:room]
    if len(cell.loans) > room:
        lines.append(f"showing the {room:,} largest of {len(cell.loans):,} loans: the list is longer than a sheet "
                     f"holds; use =DEL_LOANS with a state, or filter the data")
    grid = np.empty((len(lines) + 1, 1), dtype=object)
    grid[0, 0] = layout.clean_text(title)
    grid[1:, 0] = [layout.clean_text(line) for line in lines]
    top = len(lines) + 3
    header = np.array([["Loan", "Segment", "State", "EAD", "Previous state"]], dtype=object)
    body = shown.astype(object).to_numpy()
    body[:, :3] = np.vectorize(layout.clean_text, otypes=[object])(body[:, :3]) if len(body) else body[:, :3]
    blocks = [Block(1, 1, grid), Block(top, 1, header)]
    formats = [Format(Area.cell(1, 1), layout.TITLE_STYLE), Format(Area(2, 1, 1 + len(lines), 1), layout.NOTE_STYLE),
               Format(Area(top, 1, top, 5), layout.HEADER_STYLE)]
    if len(body):
        blocks.append(Block(top + 1, 1, body))
        formats.append(Format(Area(top + 1, 4, top + len(body), 4), Style(number_format="#,##0.00")))
    return SheetLayout(name=SHEET_NAME, kind="drill", owner="drill", title=title, segment=cell.segment,
                       blocks=tuple(blocks), formats=tuple(formats),
                       column_widths={1: 24.0, 2: 18.0, 3: 12.0, 4: 14.0, 5: 15.0},
                       row_heights={1: 30.0}, freeze=(top + 1, 1), tab_color="A6A6A6",
                       autofilter=Area(top, 1, top + max(len(body), 1), 5),
                       areas={"loans": Area(top, 1, top + max(len(body), 1), 5)})


def cell_month(cell: LoansCell) -> str:
    """The calendar month of the cell: its cohort plus its MOB."""
    index = int(cell.cohort[:4]) * 12 + int(cell.cohort[5:7]) - 1 + cell.mob
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def drill_book(cell: LoansCell, *, max_rows: int = EXCEL_MAX_ROWS) -> list[layout.SheetLayout]:
    """The drill-down's sheets: its Summary (the cell, its totals by DEL type, the caveats) and the Drill sheet."""
    drill = drill_sheet(cell, max_rows=max_rows)
    label = "Portfolio" if cell.segment == PORTFOLIO else layout.clean_text(cell.segment)
    intro = [f"The loans of {label}, cohort {cell.cohort}, at MOB {cell.mob} (month {cell_month(cell)})."]
    writer = SheetWriter(row=summary_top(intro))
    writer.section("The cell")
    figures = [Figure("Loans observed at the MOB", cell.n_loans, "#,##0"),
               Figure("Their EAD at the MOB", cell.ead, "#,##0"),
               Figure("The cohort's EAD at MOB 0 (the DEL denominator)", cell.ead_mob0, "#,##0")]
    if cell.ead_mob0 > 0:
        figures += [Figure(f"{d}: EAD in its buckets / EAD at MOB 0", v / cell.ead_mob0, layout.PERCENT)
                    for d, v in cell.bad_ead.items()]
    writer.figures(figures)
    caveats = []
    if cell.segment == PORTFOLIO:
        caveats.append("Portfolio: the loans of every segment pooled, so this DEL weights segments by their EAD; "
                       "the Portfolio sheets show the mean of the segments' DEL.")
    if cell.n_loans == 0:
        caveats.append(f"No loan of cohort {cell.cohort} is observed at MOB {cell.mob}: the cell is a forecast.")
    if len(cell.loans) > max_rows - DRILL_HEADER_ROWS:
        caveats.append("The list is longer than a sheet holds: the Drill sheet shows the largest loans.")
    # Dated by the data's last month, as every other summary is: the cell's own month (2026-01 for a forecast
    # cell) is in the introduction.
    as_of = cell.as_of or cell_month(cell)
    summary = summary_sheet("drill", "Drill down: summary", as_of, intro, writer, [drill], caveats=caveats)
    return book(summary, [drill], as_of)
