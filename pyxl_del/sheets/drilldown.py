"""The Drill sheet: the loans behind a DEL cell (pyxl_del.engine.loans), what the cell is and its totals."""

from __future__ import annotations

import numpy as np

from pyxl_del.engine.data import PORTFOLIO
from pyxl_del.engine.files import EXCEL_MAX_ROWS
from pyxl_del.engine.loans import LoansCell
from pyxl_del.sheets import layout
from pyxl_del.sheets.layout import Area, Block, Format, SheetLayout, Style

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
