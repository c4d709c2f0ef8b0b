"""Drill-down in Excel: =DEL_LOANS(data, segment, cohort, mob, [state]) (udfs/decide_udfs.py) and the ribbon's
Drill down, which reads the selected cell of a DEL sheet and writes a Drill sheet. Both cap the list at what a
sheet holds and say so. The loans themselves: pyxl_del.engine.loans.
"""

from __future__ import annotations

import re
from typing import Any

from pyxl_del.engine.data import PORTFOLIO, read_panel, validate_panel
from pyxl_del.engine.errors import counted, data_named
from pyxl_del.engine.files import EXCEL_MAX_ROWS
from pyxl_del.engine.loans import loans_in_panel
from pyxl_del.engine.memo import LruMemo
from pyxl_del.excel.udf import DATA_RANGE, CellText, DataArgs, Inputs, Mob, excel_safe
from pyxl_del.excel.workbook import Ref, WorkbookError, cells_to_frame
from pyxl_del.sheets import layout, report
from pyxl_del.sheets.drilldown import drill_book

PANEL_MEMO_SIZE = 4
TITLE_PATTERN = re.compile(r"^(?P<segment>.*)_(?P<del_type>DEL\d+) Actual & Forecast$")

# ------------------------------------------------------------------------------------ worksheet function

PANELS = LruMemo(PANEL_MEMO_SIZE)


class LoansArgs(DataArgs):
    segment: CellText
    cohort: Any
    mob: Mob
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
        with data_named(DATA_RANGE):
            frame, source = read_panel(given, cfg)
            return validate_panel(frame, cfg, source), frame[cfg["loan_id"]]

    panel, ids = PANELS.get((inputs.data_key, inputs.config_key), validated)
    cell = loans_in_panel(panel, ids, cfg, args.segment, args.cohort, args.mob, args.state)
    if cell.n_loans == 0:  # a header alone would look like a formula that failed
        return [[f"#pyxl_del: {cell.unobserved}"]]
    if cell.loans.empty:
        return [[f"#pyxl_del: none of the {counted(cell.n_loans, 'loan')} of cohort {cell.cohort} at MOB {cell.mob} "
                 f"is in {cell.state}"]]
    room = max_rows - 2  # the header, and a last row for the message when the list is cut
    rows = cell.loans.iloc[:room]
    out = [["Loan", "Segment", "State", "EAD", "Previous state"],
           *([str(v) for v in r[:3]] + [float(r[3]), str(r[4])] for r in rows.itertuples(index=False, name=None))]
    if len(cell.loans) > room:
        out.append([f"#pyxl_del: showing the {room:,} largest of {len(cell.loans):,} loans: the list is longer "
                    f"than a sheet; narrow it with the state argument", "", "", "", ""])
    return out


# ------------------------------------------------------------------------------------------------ ribbon


def cell_of_sheet(book, ref: Ref) -> tuple[str, str, str, int]:
    """(segment label, DEL type, cohort, MOB) of a selected cell of a DEL sheet written by pyxl_del."""
    # The report's DEL sheets are the ones it owns whose title names a DEL type (not flags, curves, ...).
    own = book.own_sheets()
    owned = own.get(ref.sheet) == report.OWNER
    parsed = TITLE_PATTERN.fullmatch(str(book.read_frame(Ref(ref.sheet, "A1:A2")).columns[0])) if owned else None
    if parsed is None:
        # An example from this workbook (the sample's "CASH LOAN_DEL30" is no sheet of a book with other products).
        examples = [name for name, owner in own.items() if owner == report.OWNER and re.search(r"_DEL\d+$", name)]
        one = f"(e.g. {examples[0]})" if examples else "(run the forecast first: it writes them)"
        raise WorkbookError(f"sheet {ref.sheet!r} is not a DEL sheet written by pyxl_del: select a cell of one "
                            f"{one} and click Drill down again")
    m = re.fullmatch(r"([A-Z]{1,3})(\d+)", ref.address)
    col = sum((ord(c) - 64) * 26**i for i, c in enumerate(reversed(m.group(1))))
    row = int(m.group(2))
    if row < 4 or col < 2:
        raise WorkbookError(f"{ref} is not a DEL value: select a cell under a MOB and right of a cohort")
    # The selected row's own cohort cell and column's own header: a block from row 3 lost its blank last rows, so
    # a blank cell under the table drilled into the last cohort, and the legend's text was taken for a cohort.
    (cohort,), = book.read_rows(Ref(ref.sheet, f"A{row}:A{row}"))
    (header,), = book.read_rows(Ref(ref.sheet, f"{m.group(1)}3:{m.group(1)}3"))
    try:
        mob = int(float(header))
    except (TypeError, ValueError):
        raise WorkbookError(f"{ref} is not under a MOB column") from None
    if not re.fullmatch(r"\d{4}-\d{2}", str(cohort or "").strip()):
        raise WorkbookError(f"{ref} is not on a cohort row: select a DEL value right of a cohort (e.g. 2024-01)")
    return parsed["segment"], parsed["del_type"], str(cohort).strip(), mob


def drill_down_action(ctx):
    """Ribbon: the loans behind the selected DEL cell, on a Drill sheet."""
    ref = ctx.book.active_cell()
    if ref is None:
        raise WorkbookError("select a cell of a DEL sheet (a cohort row, a MOB column) and click Drill down")
    label, del_type, cohort, mob = cell_of_sheet(ctx.book, ref)
    config = ctx.config()
    source = ctx.data_source()
    with ctx.names(source):
        frame, _ = read_panel(ctx.book.read_frame(source), config)
        panel = validate_panel(frame, config)
    segments = {layout.clean_text(s): s for s in panel.segments} | {PORTFOLIO: PORTFOLIO}
    if label not in segments:
        raise WorkbookError(f"the data in {source} has no segment {label!r}: run the forecast again")
    cell = loans_in_panel(panel, frame[config["loan_id"]], config, segments[label], cohort, mob)
    return ctx.write(drill_book(cell), f"Drill down {ref} ({del_type}): {counted(cell.n_loans, 'loan')}")
