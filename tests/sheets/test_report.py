"""The Excel report, read back from the written file: every formatting point, the companion sheets, names,
text that must not become formulas, atomic writes and the rendered picture.

The checker functions below only read a workbook and the DelResult (never the layout code), so each one is
also shown failing on a deliberately broken layout or file.
"""

from __future__ import annotations

import dataclasses
import errno
import importlib.util
import math
import re
import shutil
import struct
import subprocess
import zipfile
import zlib
from pathlib import Path

import numpy as np
import openpyxl
import pytest
from _panels import frame, loan
from openpyxl import Workbook, load_workbook
from openpyxl.styles import Alignment

import pyxl_del
import pyxl_del.engine.files
from pyxl_del.datasets.sample import realistic_matrices, simulate_panel
from pyxl_del.engine.config import DEL_TYPES
from pyxl_del.engine.data import PORTFOLIO
from pyxl_del.engine.errors import OutputError
from pyxl_del.engine.period import PeriodLevels
from pyxl_del.engine.transitions import ESTIMATED, OWN, PRIOR, TAIL_COPY
from pyxl_del.excel.render import (
    SheetConflictError,
    owned_sheets,
    render_openpyxl,
    sheet_owners,
    write_report,
    write_workbook,
)
from pyxl_del.sheets import layout as sheet_layout
from pyxl_del.sheets import report

HEADER_ROW, TOP, LEFT = 3, 4, 2
FORBIDDEN = set('[]:*?/\\')
FLAGS_LINK = re.compile(r"Flags of each cell: sheet '(.+)'$")


# ------------------------------------------------------------------------------------------- colour tests


def rgb(color) -> tuple[int, int, int] | None:
    if color is None or getattr(color, "type", None) != "rgb" or not isinstance(color.rgb, str):
        return None
    h = color.rgb[-6:]
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def is_dark_blue(c) -> bool:
    return c is not None and c[2] >= 0x40 and c[2] > c[0] and c[2] > c[1] and max(c) <= 0x90


def is_light_blue(c) -> bool:
    return c is not None and min(c) >= 0x99 and c[2] - c[0] >= 0x10 and c[2] >= c[1]


def is_green(c) -> bool:
    return c is not None and c[1] > c[0] + 0x20 and c[1] > c[2] + 0x20


def is_yellow(c) -> bool:
    return c is not None and c[0] >= 0xC0 and c[1] >= 0xC0 and c[2] < c[1] - 0x40


def is_red(c) -> bool:
    return c is not None and c[0] >= 0xC0 and c[0] > c[1] + 0x60 and c[0] > c[2] + 0x60


def thick_red(side) -> bool:
    return side is not None and side.style == "thick" and is_red(rgb(side.color))


def mark(cell) -> tuple:
    """How a value cell is marked: the font attributes (the colour scale owns the fill)."""
    f = cell.font
    return bool(f.b), bool(f.i), rgb(f.color), f.u or None


# ----------------------------------------------------------------------------------------------- checkers


def check_sheet_names(names: list[str]) -> list[str]:
    problems = []
    seen = {}
    for name in names:
        if len(name.encode("utf-16-le")) // 2 > 31:
            problems.append(f"sheet name {name!r} is longer than 31 characters")
        if FORBIDDEN & set(name):
            problems.append(f"sheet name {name!r} has a character Excel forbids")
        if not name or name[0] == "'" or name[-1] == "'":
            problems.append(f"sheet name {name!r} is empty or starts/ends with an apostrophe")
        if name.casefold() in seen:
            problems.append(f"sheet names {seen[name.casefold()]!r} and {name!r} collide (Excel ignores case)")
        seen[name.casefold()] = name
    return problems


def text_cells_outside(ws, n_rows: int, n_cols: int) -> list[str]:
    """Text on the sheet outside the title, header and table (where a legend lives)."""
    out = []
    for row in ws.iter_rows():
        for c in row:
            inside = c.row == 1 or c.row == HEADER_ROW or (TOP <= c.row < TOP + n_rows and c.column <= n_cols + 1)
            if isinstance(c.value, str) and not inside:
                out.append(c.value)
    return out


def check_mixed_sheet(ws, result, segment: str, del_type: str) -> list[str]:
    """Points 2-8 of the issue for one mixed sheet, against the result's tables."""
    problems = []
    expected = result.wide(segment, del_type, "mixed")
    flags = result.wide(segment, del_type, "flags").to_numpy(dtype=object, na_value="")
    n_rows, n_cols = expected.shape
    portfolio = segment == PORTFOLIO

    # 2. title
    title = ws["A1"]
    if title.value != f"{segment}_{del_type} Actual & Forecast" or title.data_type != "s":
        problems.append(f"title: A1 is {title.value!r} ({title.data_type})")
    if title.font.sz != 20 or not title.font.b or not is_dark_blue(rgb(title.font.color)):
        problems.append(f"title font: size {title.font.sz}, bold {title.font.b}, colour {rgb(title.font.color)}")

    # 3. headers
    header = [ws.cell(HEADER_ROW, c) for c in range(1, n_cols + 2)]
    if header[0].value != "Cohort" or [h.value for h in header[1:]] != list(range(n_cols)):
        problems.append(f"header: row 3 is {[h.value for h in header][:5]}...")
    for h in header:
        if not (h.font.b and h.fill.fill_type == "solid" and is_light_blue(rgb(h.fill.fgColor))
                and h.alignment.horizontal == "center"):
            problems.append(f"header style: {h.coordinate} bold={h.font.b} fill={h.fill.fill_type} "
                            f"{rgb(h.fill.fgColor)} align={h.alignment.horizontal}")
            break

    # cohort column: text YYYY-MM
    cohorts = [ws.cell(TOP + i, 1) for i in range(n_rows)]
    if [c.value for c in cohorts] != list(expected.index) or any(c.data_type != "s" for c in cohorts):
        problems.append("cohorts: column A does not hold the cohorts as text")

    # 4. numbers formatted 0.00%
    values = expected.to_numpy(dtype=np.float64)
    bad_type = bad_format = bad_value = 0
    for i in range(n_rows):
        for j in range(n_cols):
            c = ws.cell(TOP + i, LEFT + j)
            if c.data_type != "n" or not isinstance(c.value, (int, float)):
                bad_type += 1
            elif not math.isclose(c.value, values[i, j], rel_tol=1e-12, abs_tol=1e-15):
                bad_value += 1
            if c.number_format != "0.00%":
                bad_format += 1
    if bad_type:
        problems.append(f"values: {bad_type} MOB cells are not numbers")
    if bad_value:
        problems.append(f"values: {bad_value} MOB cells differ from the result")
    if bad_format:
        problems.append(f"number format: {bad_format} MOB cells are not 0.00%")

    # 5. green-yellow-red colour scale over exactly the MOB cells
    value_ref = f"{openpyxl.utils.get_column_letter(LEFT)}{TOP}:" \
                f"{openpyxl.utils.get_column_letter(LEFT + n_cols - 1)}{TOP + n_rows - 1}"
    scales = [(str(cf.sqref), r) for cf in ws.conditional_formatting for r in cf.rules if r.type == "colorScale"]
    covering = [r for ref, r in scales if ref == value_ref]
    if not covering:
        problems.append(f"colour scale: none over {value_ref} (found {[ref for ref, _ in scales]})")
    else:
        scale = covering[0].colorScale
        colors = [rgb(c) for c in scale.color]
        kinds = [v.type for v in scale.cfvo]
        if len(colors) != 3 or not (is_green(colors[0]) and is_yellow(colors[1]) and is_red(colors[2])) \
                or kinds[0] != "min" or kinds[-1] != "max":
            problems.append(f"colour scale: expected green (min) - yellow - red (max), got {kinds} {colors}")

    # 6. the staircase: thick red right and bottom edge on the last ACTUAL cell of each run
    actual = flags == "ACTUAL"
    want = {(int(i), int(j)) for i, j in np.argwhere(actual[:, :-1] & ~actual[:, 1:])}
    missing, extra = [], []
    for i in range(n_rows):
        for j in range(n_cols):
            b = ws.cell(TOP + i, LEFT + j).border
            step = thick_red(b.right) and thick_red(b.bottom)
            any_red = thick_red(b.right) or thick_red(b.bottom) or thick_red(b.left) or thick_red(b.top)
            if (i, j) in want and not step:
                missing.append((expected.index[i], j))
            elif (i, j) not in want and any_red:
                extra.append((expected.index[i], j))
    if missing:
        problems.append(f"staircase: {len(missing)} last-ACTUAL cells lack the thick red right+bottom edge, "
                        f"e.g. {missing[:3]}")
    if extra:
        problems.append(f"staircase: {len(extra)} cells have a red edge but are not a last ACTUAL cell, "
                        f"e.g. {extra[:3]}")

    # 7. no grid lines, frozen below the header and right of the cohorts
    if ws.sheet_view.showGridLines is not False:
        problems.append("gridlines: shown")
    if ws.freeze_panes != "B4":
        problems.append(f"freeze panes: {ws.freeze_panes} instead of B4")

    # 8. marks: one mark per flag; FORECAST italic; ACTUAL upright; MIXED unlike both; explained in a legend
    marks: dict[str, set] = {}
    for i in range(n_rows):
        for j in range(n_cols):
            marks.setdefault(flags[i, j], set()).add(mark(ws.cell(TOP + i, LEFT + j)))
    for flag, found in marks.items():
        if len(found) != 1:
            problems.append(f"marks: {flag} cells are marked {len(found)} different ways")
    forecast = next(iter(marks.get("FORECAST", {None})))
    actual_mark = next(iter(marks.get("ACTUAL", {None})))
    if forecast is not None and not forecast[1]:
        problems.append("marks: FORECAST cells are not italic")
    if actual_mark is not None and actual_mark[1]:
        problems.append("marks: ACTUAL cells are italic")
    if actual_mark is not None and forecast is not None and actual_mark == forecast:
        problems.append("marks: ACTUAL and FORECAST cells look the same")
    legend = " ".join(text_cells_outside(ws, n_rows, n_cols))
    if "FORECAST" not in legend or "ACTUAL" not in legend:
        problems.append("legend: the sheet does not say how ACTUAL and FORECAST are marked")
    if portfolio and "MIXED" in marks:
        mixed = next(iter(marks["MIXED"]))
        if mixed in (forecast, actual_mark):
            problems.append("marks: MIXED cells look like ACTUAL or FORECAST cells")
        if "MIXED" not in legend:
            problems.append("legend: the Portfolio sheet does not say how MIXED cells are marked")
    return problems


def find_by_title(wb, title: str):
    return [ws for ws in wb.worksheets if ws["A1"].value == title]


def check_flags_sheet(ws, result, segment, del_type) -> list[str]:
    flags = result.wide(segment, del_type, "flags")
    problems = []
    got = [[ws.cell(TOP + i, LEFT + j).value for j in range(flags.shape[1])] for i in range(flags.shape[0])]
    if got != flags.to_numpy(dtype=object).tolist():
        problems.append(f"flags: {ws.title} does not match the result's flags at the mixed sheet's addresses")
    if [ws.cell(TOP + i, 1).value for i in range(flags.shape[0])] != list(flags.index):
        problems.append(f"flags: {ws.title} cohorts differ")
    return problems


def check_matrices_sheet(ws, result, segment) -> list[str]:
    problems = []
    k = len(result.stats.states)
    labels = {c.value: c.row for c in ws["A"] if isinstance(c.value, str) and c.value.startswith("MOB ")}
    for m in range(result.transition_matrix.shape[1]):
        row = labels.get(f"MOB {m} → {m + 1}")
        if row is None:
            problems.append(f"matrices: {ws.title} has no block for MOB step {m}")
            continue
        block = np.array([[ws.cell(row + 1 + i, 2 + j).value for j in range(k)] for i in range(k)], dtype=float)
        if not np.allclose(block, result.matrix(segment, m).to_numpy(), atol=1e-12):
            problems.append(f"matrices: {ws.title} block MOB {m} differs from result.matrix")
        if ws.cell(row + 1, 2).number_format != "0.00%":
            problems.append(f"matrices: {ws.title} block MOB {m} is not in percent")
        if [ws.cell(row + 1 + i, 1).value for i in range(k)] != list(result.stats.states):
            problems.append(f"matrices: {ws.title} block MOB {m} rows are not the states")
    return problems


def check_calibration_sheet(ws, result) -> list[str]:
    table = result.calibration_factors
    header = next(r for r in range(1, 16) if ws.cell(r, 1).value == "Segment")
    got_segments = [ws.cell(header + 1 + i, 1).value for i in range(len(table))]
    got_k = np.array([ws.cell(header + 1 + i, 3).value for i in range(len(table))], dtype=float)
    problems = []
    if got_segments != list(table["segment"]) or not np.allclose(got_k, table["k"].to_numpy()):
        problems.append("calibration: the table differs from result.calibration_factors")
    return problems


def check_run_info(ws, result) -> list[str]:
    texts = {str(c.value) for row in ws.iter_rows() for c in row if c.value is not None}
    problems = []
    info = result.run_info
    for key in ("package_version", "fingerprint", "input", "rows"):
        if str(info[key]) not in texts:
            problems.append(f"run info: {key} {info[key]!r} is missing")
    for line in info["config"].strip().splitlines():
        if line and line not in texts:
            problems.append(f"run info: config line {line!r} is missing")
    for w in result.warnings:
        if w not in texts:
            problems.append(f"run info: warning {w[:40]!r}... is missing")
    return problems + labels_at_top(ws, "run info")


def labels_at_top(ws, name: str) -> list[str]:
    """A wrapped value fills a tall row from the top: a label in column A left at the bottom reads as the next
    row's (a header row, centred across, is not such a pair)."""
    return [f"{name}: label {label.value!r} is not at the top of its wrapped row"
            for label, value in ws.iter_rows(min_col=1, max_col=2)
            if value.alignment.wrap_text and value.alignment.vertical == "top" and label.value is not None
            and label.alignment.vertical != "top"]


def check_curves(ws) -> list[str]:
    charts = ws._charts
    if len(charts) != len(DEL_TYPES):
        return [f"curves: {ws.title} has {len(charts)} charts"]
    dashes = {s.graphicalProperties.line.prstDash for c in charts for s in c.series}
    # Actual solid, forecast dashed, and with intervals on (the default) the fan's edges dotted.
    return [] if dashes == {"solid", "dash", "sysDot"} else [f"curves: {ws.title} line styles {dashes}"]


def check_workbook(wb, result) -> list[str]:
    """Point 1 (sheets, order, names), 7 (every sheet), text never a formula, and the companion sheets."""
    problems = check_sheet_names(wb.sheetnames)
    order = [(s, d) for s in result.sheet_segments for d in DEL_TYPES]
    titles = {f"{s}_{d} Actual & Forecast": (s, d) for s, d in order}
    found = [titles[ws["A1"].value] for ws in wb.worksheets if ws["A1"].value in titles]
    if found != order:
        problems.append(f"order: mixed sheets are {found[:4]}..., expected Portfolio first then the segments")
    if wb.worksheets[0].title != "Summary":
        problems.append(f"order: the first sheet is {wb.worksheets[0].title!r}, not the Summary")
    if wb.worksheets[1]["A1"].value != f"{PORTFOLIO}_DEL30 Actual & Forecast":
        problems.append(f"order: the first sheet after the Summary is {wb.worksheets[1].title!r}, not the Portfolio")
    for ws in wb.worksheets:
        if ws.sheet_view.showGridLines is not False:
            problems.append(f"gridlines: shown on {ws.title!r}")
        formulas = [c.coordinate for row in ws.iter_rows() for c in row if c.data_type == "f"]
        if formulas:
            problems.append(f"formula: {ws.title!r} has formula cells {formulas[:3]}")
    for segment, del_type in order:
        mixed = find_by_title(wb, f"{segment}_{del_type} Actual & Forecast")
        if not mixed:
            continue
        problems += [f"{mixed[0].title}: {p}" for p in check_mixed_sheet(mixed[0], result, segment, del_type)]
        # The sheet names its flags sheet; follow that link and compare at the same addresses.
        links = [m.group(1) for row in mixed[0].iter_rows() for c in row if isinstance(c.value, str)
                 for m in [FLAGS_LINK.search(c.value)] if m]
        if not links or links[0] not in wb.sheetnames:
            problems.append(f"flags: {mixed[0].title!r} names no existing flags sheet ({links})")
        else:
            problems += check_flags_sheet(wb[links[0]], result, segment, del_type)
    for segment in result.sheet_segments:
        curves = find_by_title(wb, f"{segment} DEL curves by cohort")
        problems += check_curves(curves[0]) if curves else [f"curves: none for {segment}"]
    for segment in result.segments:
        matrices = find_by_title(wb, f"{segment} transition matrices")
        problems += check_matrices_sheet(matrices[0], result, segment) if matrices else \
            [f"matrices: none for {segment}"]
    problems += check_calibration_sheet(wb["Calibration"], result) if "Calibration" in wb.sheetnames else \
        ["calibration: no sheet"]
    problems += check_run_info(wb["Run info"], result) if "Run info" in wb.sheetnames else ["run info: no sheet"]
    problems += labels_at_top(wb.worksheets[0], "summary")
    return problems


# ----------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def books(tmp_path_factory, sample_result, mixed_result, awkward_result):
    folder = tmp_path_factory.mktemp("books")
    return {name: write_report(result, folder / f"{name}.xlsx") for name, result in
            (("sample", sample_result), ("mixed", mixed_result), ("awkward", awkward_result))}


@pytest.fixture(scope="module")
def loaded(books):
    return {name: load_workbook(path) for name, path in books.items()}


def render_one(layout: sheet_layout.SheetLayout, folder: Path):
    wb = Workbook()
    wb.remove(wb.active)
    render_openpyxl([layout], wb)
    path = folder / "one.xlsx"
    wb.save(path)
    return load_workbook(path)[layout.name]


def layout_of(result, name: str) -> sheet_layout.SheetLayout:
    return next(layout for layout in report.build_layouts(result) if layout.name == name)


# ------------------------------------------------------------------------------------------ the workbooks


@pytest.mark.parametrize("name", ["sample", "mixed", "awkward"])
def test_workbook_meets_every_point(name, loaded, sample_result, mixed_result, awkward_result):
    result = {"sample": sample_result, "mixed": mixed_result, "awkward": awkward_result}[name]
    assert check_workbook(loaded[name], result) == []


def test_sheet_list_and_order(loaded, sample_result):
    names = loaded["sample"].sheetnames
    front = [f"{s}_{d}" for s in ("Portfolio", "CASH LOAN", "CD", "TW-Moto") for d in ("DEL30", "DEL60", "DEL90")]
    assert [n for n in names if n.endswith(("_DEL30", "_DEL60", "_DEL90"))] == front
    assert names[:5] == ["Summary", "Portfolio_DEL30", "Portfolio_DEL60", "Portfolio_DEL90", "Portfolio_curves"]
    assert names[-2:] == ["Calibration", "Run info"]
    assert {f"{s}_matrices" for s in ("CASH LOAN", "CD", "TW-Moto")} <= set(names)
    assert {f"{s}_flags" for s in ("Portfolio", "CASH LOAN", "CD", "TW-Moto")} <= set(names)
    assert len(names) == 1 + 4 * 3 + 4 + 4 + 3 + 2


def test_portfolio_has_mixed_cells_marked(loaded, mixed_result):
    flags = mixed_result.wide(PORTFOLIO, "DEL30", "flags")
    assert (flags == "MIXED").to_numpy().sum() > 5  # the fixture is built to have them
    ws = loaded["mixed"]["Portfolio_DEL30"]
    i, j = np.argwhere((flags == "MIXED").to_numpy())[0]
    cell = ws.cell(TOP + int(i), LEFT + int(j))
    assert cell.font.b and cell.font.i and cell.font.u == "single" and rgb(cell.font.color) == (0x70, 0x30, 0xA0)


def test_awkward_names_are_legal_unique_and_titles_keep_the_full_name(loaded, awkward_result):
    wb = loaded["awkward"]
    assert check_sheet_names(wb.sheetnames) == []
    stems = {}
    for segment in awkward_result.segments:
        sheet = find_by_title(wb, f"{segment}_DEL30 Actual & Forecast")
        assert len(sheet) == 1, segment
        stems[segment] = sheet[0].title
    # segments that collide once cleaned (or ignoring case) still get sheets of their own
    assert len({v.casefold() for v in stems.values()}) == len(awkward_result.segments)
    assert stems["TW/Moto"] == "TW-Moto_DEL30" and stems["TW:Moto"] == "TW-Moto~2_DEL30"
    assert stems["CD"] == "CD_DEL30" and stems["cd"] == "cd~2_DEL30"
    assert stems["Vay tiêu dùng/Xe máy"] == "Vay tiêu dùng-Xe máy_DEL30"
    long = [stems[s] for s in awkward_result.segments if s.startswith("Consumer durables")]
    assert long == ["Consumer durables inst_DEL30", "Consumer durables in~2_DEL30"]


def test_formula_looking_text_is_stored_as_text(books, loaded, awkward_result):
    wb = loaded["awkward"]
    for segment in ('=HYPERLINK("http://example.com","click me")', "+cmd|' /C calc'!A0"):
        ws = find_by_title(wb, f"{segment}_DEL30 Actual & Forecast")[0]
        assert ws["A1"].data_type == "s" and ws["A1"].value.startswith(segment)
    cal = wb["Calibration"]
    assert any(c.value == '=HYPERLINK("http://example.com","click me")' and c.data_type == "s" for c in cal["A"])
    # In the file itself: no sheet holds a single formula element.
    with zipfile.ZipFile(books["awkward"]) as z:
        sheets = [n for n in z.namelist() if n.startswith("xl/worksheets/sheet")]
        assert sheets and not [n for n in sheets if b"<f>" in z.read(n) or b"<f " in z.read(n)]


def test_cohorts_are_text_and_values_numbers(loaded):
    ws = loaded["sample"]["CD_DEL30"]
    assert ws["A4"].data_type == "s" and len(ws["A4"].value) == 7 and ws["A4"].value[4] == "-"
    assert ws["B4"].data_type == "n" and ws["B4"].number_format == "0.00%"


def test_print_setup(loaded):
    ws = loaded["sample"]["Portfolio_DEL30"]
    assert ws.page_setup.orientation == "landscape"
    # 37 MOB columns and the cohort's size, at 8 pt or more on paper: two landscape pages across, each printed as
    # an area fitted to one page wide; the second from the header row down (the title and legend, above it, would
    # print there cut at the repeated Cohort column's edge: "Portfol"), and only as deep as the table.
    assert ws.sheet_properties.pageSetUpPr.fitToPage and ws.page_setup.fitToWidth == 1
    assert ws.page_setup.fitToHeight == 0
    assert ws.print_title_rows == "$3:$3" and ws.print_title_cols == "$A:$A"
    first, second = ws.print_area.replace("'Portfolio_DEL30'!", "").replace("$", "").split(",")
    last_row = ws.max_row
    while ws.cell(last_row, 1).value is None or not str(ws.cell(last_row, 1).value)[:1].isdigit():
        last_row -= 1  # the last cohort
    assert first.startswith("A1:") and second.startswith("W3:" if first.split(":")[1][0] == "V" else "")
    assert second.split(":")[0].endswith("3") and second.endswith(f"AO{last_row}")


def test_the_summarys_contents_and_each_matrix_print_whole(sample_result):
    """A page held one stray row of the contents; a matrix was cut between pages, its label left at a page's foot."""
    summary = layout_of(sample_result, "Summary")
    first, last = summary.page.keep_together[-1]
    assert summary.blocks and any(b.row == first and b.values[0, 0] == "Contents" for b in summary.blocks)
    assert last == summary.page.print_area.last_row
    # Each table with its heading (the 12th of 12 segments had printed alone on the next page).
    headings = {b.row: b.values[0, 0] for b in summary.blocks if b.values.shape == (1, 1)}
    assert {"Portfolio DEL", "Segments"} <= {headings.get(first) for first, _ in summary.page.keep_together}
    matrices = layout_of(sample_result, "CD_matrices")
    labels = [b.row + i for b in matrices.blocks if b.col == 1 for i, v in enumerate(b.values[:, 0])
              if isinstance(v, str) and "→" in v]
    assert [first for first, _ in matrices.page.keep_together] == labels
    assert all(last - first == len(sample_result.stats.states) for first, last in matrices.page.keep_together)


def test_run_info_lists_warnings_and_sheets(loaded, mixed_result):
    ws = loaded["mixed"]["Run info"]
    texts = [c.value for row in ws.iter_rows() for c in row if isinstance(c.value, str)]
    assert mixed_result.warnings and all(w in texts for w in mixed_result.warnings)
    assert all(name in texts for name in loaded["mixed"].sheetnames)


# ----------------------------------------------------------------------- the checkers catch broken output


def _restyle(layout, old: sheet_layout.Style, new: sheet_layout.Style | None):
    formats = tuple(f if f.style != old else dataclasses.replace(f, style=new) for f in layout.formats
                    if not (f.style == old and new is None))
    return dataclasses.replace(layout, formats=formats)


def _shift_steps(layout):
    formats = tuple(dataclasses.replace(f, area=sheet_layout.Area.cell(f.area.first_row, f.area.first_col + 1))
                    if f.style == sheet_layout.STEP_STYLE else f for f in layout.formats)
    return dataclasses.replace(layout, formats=formats)


def _values_as_text(layout):
    blocks = tuple(dataclasses.replace(b, values=np.vectorize(lambda v: f"{v:.4f}", otypes=[object])(b.values))
                   if b.values.dtype == np.float64 else b for b in layout.blocks)
    return dataclasses.replace(layout, blocks=blocks)


def _retitle(layout):
    blocks = list(layout.blocks)
    blocks[0] = sheet_layout.Block(1, 1, np.array([["Portfolio DEL30"]], dtype=object))
    return dataclasses.replace(layout, blocks=tuple(blocks))


BREAKAGES = {
    "staircase removed": (lambda L: _restyle(L, sheet_layout.STEP_STYLE, None), "staircase"),
    "staircase shifted": (_shift_steps, "staircase"),
    "staircase only right edge": (lambda L: _restyle(L, sheet_layout.STEP_STYLE, sheet_layout.Style(border=sheet_layout.Border(
        right=sheet_layout.Edge("thick", sheet_layout.STEP_COLOR)))), "staircase"),
    "one decimal": (lambda L: _restyle(L, sheet_layout.VALUE_STYLE, dataclasses.replace(
        sheet_layout.VALUE_STYLE, number_format="0.0%")), "number format"),
    "values as text": (_values_as_text, "not numbers"),
    "title size 14": (lambda L: _restyle(L, sheet_layout.TITLE_STYLE, dataclasses.replace(
        sheet_layout.TITLE_STYLE, font=sheet_layout.Font(size=14, bold=True, color=sheet_layout.TITLE_COLOR))), "title font"),
    "title text": (_retitle, "title:"),
    "header without fill": (lambda L: _restyle(L, sheet_layout.HEADER_STYLE, dataclasses.replace(
        sheet_layout.HEADER_STYLE, fill=None)), "header style"),
    "header left aligned": (lambda L: _restyle(L, sheet_layout.HEADER_STYLE, dataclasses.replace(
        sheet_layout.HEADER_STYLE, horizontal="left")), "header style"),
    "colour scale reversed": (lambda L: dataclasses.replace(L, color_scales=tuple(
        dataclasses.replace(s, colors=s.colors[::-1]) for s in L.color_scales)), "colour scale"),
    "colour scale missing": (lambda L: dataclasses.replace(L, color_scales=()), "colour scale"),
    "gridlines shown": (lambda L: dataclasses.replace(L, show_gridlines=True), "gridlines"),
    "frozen at A3": (lambda L: dataclasses.replace(L, freeze=(3, 1)), "freeze panes"),
    "MIXED marked as FORECAST": (lambda L: _restyle(L, sheet_layout.MIXED_STYLE, sheet_layout.FORECAST_STYLE), "MIXED"),
    "FORECAST upright": (lambda L: _restyle(L, sheet_layout.FORECAST_STYLE, None), "FORECAST"),
}


def summary_texts(result, folder: Path) -> tuple[list[str], list]:
    """The Summary's text cells, and the cells under the segments' newest-cohort column."""
    sheet = render_one(report.summary_of(result, report.build_layouts(result)), folder)
    texts = [c.value for row in sheet.iter_rows() for c in row if isinstance(c.value, str)]
    head = next(c for row in sheet.iter_rows() for c in row if str(c.value).startswith("DEL30 MOB 12, newest cohort"))
    below = [sheet.cell(head.row + 1 + i, head.column).value for i in range(len(result.segments))]
    return texts, below


def test_summary_says_forecast_only_where_it_is(mixed_result, tmp_path):
    # The newest cohort of a book that keeps booking: its MOB 12 is a forecast, and says so.
    texts, newest = summary_texts(mixed_result, tmp_path)
    assert any(t.startswith("MOB 12, newest cohort (2025-06), forecast") for t in texts)
    assert all(isinstance(v, float) for v in newest)
    # One quarter followed for years (the agency shape): the newest cohort's MOB 12 is observed; nothing calls it
    # a forecast, and the segments' forecast column is blank (the observed figure stands beside it).
    config = pyxl_del.Config().with_overrides(forecast={"max_mob": 12})
    seasoned = simulate_panel(realistic_matrices(config, ("A", "B"), 12), cohorts=["2024-01", "2024-02", "2024-03"],
                              as_of="2025-06", loans_per_cohort=60, segments=("A", "B"), seed=3, config=config)
    texts, newest = summary_texts(pyxl_del.run(seasoned, config), tmp_path)
    assert not any(re.match(r"MOB \d+, newest cohort \(.*forecast", t) for t in texts)
    assert any(t == "MOB 12, newest cohort observed there (2024-03)" for t in texts)
    assert newest == [None, None]


def test_summary_counts_in_the_right_number(tmp_path):
    """A one-segment book is '1 segment', not '1 segments'; two are '2 segments' (the helper both go through)."""
    config = pyxl_del.Config().with_overrides(forecast={"max_mob": 6})
    for segments, said, thin in (
            (("A",), "1 segment (A) and 1 monthly cohort (2025-01)", "Thin data: 1 of 1 segment cohort has fewer"),
            (("A", "B"), "2 segments (A, B) and 1 monthly cohort (2025-01)",
             "Thin data: 2 of 2 segment cohorts have fewer")):
        panel = simulate_panel(realistic_matrices(config, segments, 6), cohorts=["2025-01"], as_of="2025-04",
                               loans_per_cohort=40, segments=segments, seed=3, config=config)
        result = pyxl_del.run(panel, config)
        texts, _ = summary_texts(result, tmp_path)
        assert any(said in t for t in texts), [t for t in texts if "loan-month" in t]
        # How far the data go and how far the forecast: "followed to MOB 6" had named only the forecast's end.
        assert any(t.endswith("(2025-01), observed to MOB 3 and forecast to MOB 6.") for t in texts), texts
        assert any(t.startswith(thin) for t in texts), [t for t in texts if "Thin data" in t]
    # The live rows that borrowed data or repeat the tail: 24 and 30 in the two-segment book; the same result with
    # one of each (the other rows their own data) says "1 transition row ... borrows", "1 row ... repeats".
    origin = result.transitions.origin
    flat = np.arange(origin.size).reshape(origin.shape)  # row 0: segment A, step 0, CURRENT; row 1: DPD1+
    one_each = np.select([flat == 0, flat == 1], [PRIOR, TAIL_COPY], OWN).astype(origin.dtype)
    prior = "have no loans of their own and take their prior (the segment's neighbouring MOBs and the other segments)"
    # Rows of their own data below min_count (30) are thin too (Bayes: they lean on their prior): counted apart. Here
    # every row of own data has 39-40 loans; one set to 5 loans is counted.
    n_obs = result.transitions.n_obs.copy()
    n_obs[0, 0, 0] = 5  # segment A, step 0, CURRENT: a row of its own data (shrunk toward its prior)
    assert result.transitions.source[0, 0, 0] == ESTIMATED
    for transitions, said in (
            (result.transitions, (f"24 transition rows {prior}; 30 rows past the last MOB with data repeat the last "
                                  f"estimated steps (the tail).")),
            (dataclasses.replace(result.transitions, n_obs=n_obs),
             f"24 transition rows {prior}, and 1 more rests on fewer than 30 loans ([transitions] min_count) and "
             f"leans on its; 30 rows"),
            (dataclasses.replace(result.transitions, origin=one_each),
             "1 transition row has no loans of its own and takes its prior (the segment's"),
            (dataclasses.replace(result.transitions, origin=np.full_like(origin, OWN)), f"0 transition rows {prior}.")):
        texts, _ = summary_texts(dataclasses.replace(result, transitions=transitions), tmp_path)
        assert any(said in t for t in texts), [t for t in texts if "Thin data" in t]
    # The specified estimator replaces a thin row by pooled data: said so.
    specified = pyxl_del.run(panel, config.as_specified())
    texts, _ = summary_texts(specified, tmp_path)
    assert any("transition rows had too few loans and borrow pooled or nearby data" in t for t in texts), texts


def test_the_other_weighting_is_compared_only_where_it_shows_a_difference(mixed_result, tmp_path):
    """The caveat on the Portfolio's weighting quotes the other weighting's average beside this one's; where the
    two print alike (a book nobody falls behind in: both 0.00%) it says they agree instead of "0.00% instead of
    0.00%"."""
    sentence = re.compile(r"The Portfolio is the plain mean of the segments in each cohort; weighted by EAD at MOB 0, "
                          r"its DEL30 at MOB 12 averages (\d+\.\d\d%) over the cohorts instead of (\d+\.\d\d%)\.$")
    texts, _ = summary_texts(mixed_result, tmp_path)
    quoted = [m.groups() for m in map(sentence.match, texts) if m]
    assert len(quoted) == 1 and quoted[0][0] != quoted[0][1]

    records = [row for segment, ead in (("A", 1000.0), ("B", 5000.0)) for cohort in ("2024-01", "2024-02")
               for i in range(3) for row in loan(f"{segment}{cohort}-{i}", cohort, segment, [("CURRENT", ead)] * 4)]
    result = pyxl_del.run(frame(records), pyxl_del.Config().with_overrides(forecast={"max_mob": 6}))
    texts, _ = summary_texts(result, tmp_path)
    said = [t for t in texts if t.startswith("The Portfolio is the")]
    assert said == ["The Portfolio is the plain mean of the segments in each cohort; weighted by EAD at MOB 0, its "
                    "DEL30 at MOB 6 averages the same over the cohorts (0.00%)."]


def test_a_calendar_level_is_named_where_it_changes_the_forecast(mixed_result, tmp_path):
    """Run info names the calendar level (none, found or not); the Summary warns only when a level is carried."""
    months = np.arange(3)
    found = PeriodLevels(months=months, level=np.array([0.9, 1.0, 1.3]), expected_moves=np.ones(3),
                         f_statistic=4.2, p_value=1e-9, applied=True, carried=1.234)
    for period, summary, run_info in (
            (None, None, 'none ([calibration] period_level = "none")'),
            (dataclasses.replace(found, applied=False, carried=1.0, p_value=0.4), None,
             "Calendar level: no month-to-month effect beyond chance (F = 4.20 over 3 months, p = 0.400;"),
            (found, "the forecast carries the last 3 months' level, 1.23, over its whole horizon",
             "Calendar level (reporting months differ beyond chance: F = 4.20 over 3 months, p = 1.0e-09): ")):
        result = dataclasses.replace(mixed_result, period=period)
        texts, _ = summary_texts(result, tmp_path)
        carried = [t for t in texts if "Reporting months differed beyond chance" in t]
        assert (summary in carried[0]) if summary else not carried, carried
        layout = next(L for L in report.build_layouts(result) if L.name == "Run info")
        sheet = render_one(layout, tmp_path)
        row = next(r for r in sheet.iter_rows(min_col=1, max_col=2) if r[0].value == "Calendar level")
        assert row[1].value.startswith(run_info), row[1].value


def test_unbroken_portfolio_sheet_passes(mixed_result, tmp_path):
    ws = render_one(layout_of(mixed_result, "Portfolio_DEL30"), tmp_path)
    assert check_mixed_sheet(ws, mixed_result, PORTFOLIO, "DEL30") == []


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_checker_reports_broken_mixed_sheet(breakage, mixed_result, tmp_path):
    breaker, expected = BREAKAGES[breakage]
    ws = render_one(breaker(layout_of(mixed_result, "Portfolio_DEL30")), tmp_path)
    problems = check_mixed_sheet(ws, mixed_result, PORTFOLIO, "DEL30")
    assert any(expected in p for p in problems), problems


def test_checker_reports_wrong_sheet_order(mixed_result, tmp_path):
    layouts = report.build_layouts(mixed_result)
    wb = Workbook()
    wb.remove(wb.active)
    render_openpyxl(layouts[4:] + layouts[:4], wb)  # the Portfolio sheets moved behind the segments
    wb.save(tmp_path / "order.xlsx")
    problems = check_workbook(load_workbook(tmp_path / "order.xlsx"), mixed_result)
    assert any(p.startswith("order:") for p in problems), problems


def test_checker_reports_formula_cell(books, mixed_result, tmp_path):
    wb = load_workbook(books["mixed"])
    wb["Run info"]["D1"] = '=HYPERLINK("http://example.com")'
    wb.save(tmp_path / "formula.xlsx")
    problems = check_workbook(load_workbook(tmp_path / "formula.xlsx"), mixed_result)
    assert any(p.startswith("formula:") for p in problems), problems


def test_checker_reports_bad_companions_and_gridlines(books, mixed_result, tmp_path):
    wb = load_workbook(books["mixed"])
    wb["CD_flags"]["C5"] = "ACTUAL" if wb["CD_flags"]["C5"].value != "ACTUAL" else "FORECAST"
    wb["CD_matrices"]["C8"] = 0.5
    calibration = wb["Calibration"]
    header = next(r for r in range(1, 16) if calibration.cell(r, 1).value == "Segment")
    calibration.cell(header + 1, 3).value = 9.0  # the first k
    del wb["TW-Moto_curves"]._charts[0]
    wb["Run info"].sheet_view.showGridLines = True
    model = next(row[0] for row in wb["Run info"].iter_rows(min_col=1, max_col=1) if row[0].value == "Model")
    model.alignment = Alignment(vertical="bottom")
    contents = next(row[0] for row in wb["Summary"].iter_rows(min_col=1, max_col=2)
                    if row[0].value == "Portfolio_DEL30" and row[1].alignment.wrap_text)
    contents.alignment = Alignment(vertical="bottom")
    wb.save(tmp_path / "companions.xlsx")
    problems = check_workbook(load_workbook(tmp_path / "companions.xlsx"), mixed_result)
    for prefix in ("flags:", "matrices:", "calibration:", "curves:", "gridlines: shown on 'Run info'",
                   "run info: label 'Model'", "summary: label 'Portfolio_DEL30'"):
        assert any(p.startswith(prefix) for p in problems), (prefix, problems)


def test_checker_reports_a_broken_flags_link(books, mixed_result, tmp_path):
    wb = load_workbook(books["mixed"])
    ws = wb["TW-Moto_DEL60"]
    link = next(c for row in ws.iter_rows() for c in row if isinstance(c.value, str) and FLAGS_LINK.search(c.value))
    link.value = "Flags of each cell: sheet 'no such sheet'"
    wb.save(tmp_path / "link.xlsx")
    problems = check_workbook(load_workbook(tmp_path / "link.xlsx"), mixed_result)
    assert any("names no existing flags sheet" in p for p in problems), problems


def test_flags_that_differ_by_del_type_get_a_sheet_each(mixed_result, tmp_path):
    # The engine's flags do not depend on the DEL type; a result where they do must still be reported right.
    rates = mixed_result.rates["DEL90"]
    is_actual = rates.is_actual.copy()
    is_actual[0, -1, :3] = True  # the newest CASH LOAN cohort: three "actual" months for DEL90 only
    changed = dataclasses.replace(mixed_result, rates=mixed_result.rates | {
        "DEL90": dataclasses.replace(rates, is_actual=is_actual)})
    path = write_report(changed, tmp_path / "by_del.xlsx")
    wb = load_workbook(path)
    assert {"CASH LOAN_flags30", "CASH LOAN_flags60", "CASH LOAN_flags90", "CD_flags"} <= set(wb.sheetnames)
    assert "CASH LOAN_flags" not in wb.sheetnames
    assert check_workbook(wb, changed) == []


def test_sheet_name_checker_reports_bad_names():
    problems = check_sheet_names(["TW/Moto_DEL30", "x" * 32, "CD_DEL30", "cd_DEL30", "'quoted'"])
    assert len(problems) == 4


def test_sheet_names_rule():
    stems = sheet_layout.unique_stems(["TW/Moto", "TW:Moto", "A" * 40 + "1", "A" * 40 + "2", "cd", "CD", "'x'", "[]"], 19)
    assert stems["TW/Moto"] == "TW-Moto" and stems["TW:Moto"] == "TW-Moto~2"
    assert stems["A" * 40 + "1"] == "A" * 19 and stems["A" * 40 + "2"] == "A" * 17 + "~2"
    assert stems["cd"] == "cd" and stems["CD"] == "CD~2"
    assert stems["'x'"] == "x" and stems["[]"] == "--"
    assert sheet_layout.unique_stems(["😀" * 12], 19)["😀" * 12] == "😀" * 9  # Excel counts UTF-16 units


# --------------------------------------------------------------------------- updating an existing workbook


def test_render_replaces_only_its_own_sheets(mixed_result, tiny_result, tmp_path):
    spec = importlib.util.find_spec("xlwings")
    source = Path(spec.origin).parent / "quickstart_standalone.xlsm" if spec and spec.origin else None
    if source is not None and source.is_file():  # a real macro workbook: its VBA must survive
        path = tmp_path / "book.xlsm"
        shutil.copy(source, path)
        wb = load_workbook(path, keep_vba=True)
    else:
        path = tmp_path / "book.xlsx"
        wb = Workbook()
    user_sheets = list(wb.sheetnames)
    wb.create_sheet("Notes")["A1"] = "my notes"
    render_openpyxl(report.build_layouts(mixed_result), wb)
    wb.save(path)

    wb = load_workbook(path, keep_vba=path.suffix == ".xlsm")
    new = report.build_layouts(tiny_result)
    render_openpyxl(new, wb)
    wb.save(path)

    wb = load_workbook(path, keep_vba=path.suffix == ".xlsm")
    assert [ws.title for ws in owned_sheets(wb)] == [layout.name for layout in new]
    assert "CD_DEL30" not in wb.sheetnames  # the previous run's sheets are gone
    assert wb["Notes"]["A1"].value == "my notes"
    assert set(user_sheets) <= set(wb.sheetnames)
    if path.suffix == ".xlsm":
        with zipfile.ZipFile(path) as z:
            assert "xl/vbaProject.bin" in z.namelist()


def test_a_run_replaces_only_the_sheets_of_its_owner(mixed_result, tiny_result):
    """Each run (report, backtest, risk, ...) owns its sheets: rerunning one keeps the others'."""
    wb = Workbook()
    wb.remove(wb.active)
    backtest = sheet_layout.SheetLayout(name="Backtest", kind="backtest", owner="backtest", title="Backtest",
                                  blocks=(sheet_layout.cell_block(1, 1, "kept"),))
    render_openpyxl(report.build_layouts(mixed_result), wb)
    render_openpyxl([backtest], wb)
    new = report.build_layouts(tiny_result)
    render_openpyxl(new, wb)
    assert wb.sheetnames == [layout.name for layout in new] + ["Backtest"]
    assert wb["Backtest"]["A1"].value == "kept"
    assert sheet_owners(wb) == {**{layout.name: "report" for layout in new}, "Backtest": "backtest"}
    # A sheet of another owner with one of the new names is replaced (by name), and only that one.
    named_like_run_info = dataclasses.replace(backtest, name="Run info", owner="drill")
    render_openpyxl([named_like_run_info], wb)
    assert sheet_owners(wb) == {**{layout.name: "report" for layout in new if layout.name != "Run info"},
                                "Backtest": "backtest", "Run info": "drill"}
    assert wb["Run info"]["A1"].value == "kept"


def test_write_workbook_marks_each_sheet_with_its_owner(tiny_result, tmp_path):
    layouts = report.build_layouts(tiny_result)[:2]
    path = write_workbook(layouts, tmp_path / "two.xlsx")
    wb = load_workbook(path)
    assert sheet_owners(wb) == {layout.name: "report" for layout in layouts}
    assert wb.properties.title == layouts[0].title
    with pytest.raises(OutputError, match=r"\.xlsx"):
        write_workbook(layouts, tmp_path / "two.xlsm")


def test_render_refuses_to_overwrite_a_user_sheet(mixed_result):
    wb = Workbook()
    wb.active.title = "Run info"
    wb["Run info"]["A1"] = "mine"
    with pytest.raises(SheetConflictError, match="Run info"):
        render_openpyxl(report.build_layouts(mixed_result), wb)
    assert wb.sheetnames == ["Run info"] and wb["Run info"]["A1"].value == "mine"


# ------------------------------------------------------------------------------------------ atomic writes


def _leftovers(folder: Path, keep: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p != keep]


def test_second_write_replaces_the_file(mixed_result, tiny_result, tmp_path):
    path = tmp_path / "report.xlsx"
    write_report(mixed_result, path)
    assert "CD_DEL30" in load_workbook(path).sheetnames
    assert write_report(tiny_result, path) == path
    names = load_workbook(path).sheetnames
    assert "CD_DEL30" not in names and "CASH LOAN_DEL30" in names
    assert _leftovers(tmp_path, path) == []


def test_failed_replace_keeps_the_old_file(mixed_result, tiny_result, tmp_path, monkeypatch):
    path = tmp_path / "report.xlsx"
    write_report(tiny_result, path)
    before = path.read_bytes()

    def locked(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(pyxl_del.engine.files.os, "replace", locked)
    with pytest.raises(OutputError, match="previous file is unchanged"):
        write_report(mixed_result, path)
    assert path.read_bytes() == before
    assert _leftovers(tmp_path, path) == []


def test_failed_save_keeps_the_old_file(mixed_result, tiny_result, tmp_path, monkeypatch):
    path = tmp_path / "report.xlsx"
    write_report(tiny_result, path)
    before = path.read_bytes()

    def disk_full(self, filename):
        Path(filename).write_bytes(b"half a workbook")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(openpyxl.Workbook, "save", disk_full)
    with pytest.raises(OutputError, match="No space left"):
        write_report(mixed_result, path)
    assert path.read_bytes() == before
    assert _leftovers(tmp_path, path) == []


def test_unwritable_folder_is_a_clear_error(tiny_result, tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(OutputError, match="not_a_folder"):
        write_report(tiny_result, blocker / "report.xlsx")


def test_non_xlsx_path_is_refused(tiny_result, tmp_path):
    with pytest.raises(OutputError, match=r"\.xlsx"):
        write_report(tiny_result, tmp_path / "report.xlsm")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------- rendered picture


def png_pixels(path: Path) -> np.ndarray:
    """Decode an 8-bit RGB/RGBA/grey PNG (what pdftoppm writes) to an (h, w, channels) array."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (0, 2, 6), (depth, color)
            channels = {0: 1, 2: 3, 6: 4}[color]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    out = np.zeros((height, stride), dtype=np.int64)
    prev = np.zeros(stride, dtype=np.int64)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], np.frombuffer(raw, np.uint8, stride, y * (stride + 1) + 1).astype(np.int64)
        if kind == 0:
            cur = line
        elif kind == 2:
            cur = (line + prev) % 256
        else:  # Sub, Average, Paeth depend on the byte to the left: decode byte by byte
            cur = np.zeros(stride, dtype=np.int64)
            for x in range(stride):
                a = cur[x - channels] if x >= channels else 0
                b, c = prev[x], prev[x - channels] if x >= channels else 0
                if kind == 1:
                    pred = a
                elif kind == 3:
                    pred = (a + b) // 2
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[x] = (line[x] + pred) % 256
        out[y] = cur
        prev = cur
    return out.reshape(height, width, channels)


@pytest.mark.libreoffice
@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice (soffice) is not installed")
def test_rendered_pages_show_the_table(books, tmp_path):
    profile = tmp_path / "lo_profile"
    subprocess.run(["soffice", f"-env:UserInstallation={profile.as_uri()}", "--headless", "--convert-to", "pdf",
                    "--outdir", str(tmp_path), str(books["mixed"])], check=True, capture_output=True, timeout=180)
    pdf = tmp_path / "mixed.pdf"
    assert pdf.is_file()
    # The book opens on its Summary; the DEL table's first page has its title.
    first = next(i for i in range(1, 20) if "Portfolio_DEL30 Actual & Forecast" in subprocess.run(
        ["pdftotext", "-f", str(i), "-l", str(i), str(pdf), "-"], check=True, capture_output=True, text=True).stdout)
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", str(first), "-l", str(first + 1), str(pdf),
                    str(tmp_path / "page")], check=True, capture_output=True, timeout=60)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) == 2
    for page in pages:
        pixels = png_pixels(page)[..., :3]
        ink = (pixels.min(axis=-1) < 200).mean()
        assert ink > 0.02, f"{page.name} is nearly blank ({ink:.1%} ink)"
        # The staircase (pure red, unlike the colour scale's salmon) survives into the picture.
        red = (pixels[..., 0] > 200) & (pixels[..., 1] < 60) & (pixels[..., 2] < 60)
        assert red.sum() > 30, f"{page.name}: no red staircase visible"


def test_curves_fan_is_the_forecast_quantiles(sample_result):
    """Each plotted cohort has its P10 and P90 dotted beside the forecast: the quantiles in the forecast cells (and
    the last actual point, where the fan opens), nothing over the actual ones."""
    name = "Portfolio_curves"
    sheet = report.curves_sheet(sample_result, PORTFOLIO, name)
    chart = sheet.charts[0]
    bands = [s for s in chart.series if s.band]
    assert bands and all(not s.in_legend for s in bands)
    values = {(b.row, b.col): b.values for b in sheet.blocks}
    header_row = sheet.areas["data"].first_row
    headers = values[(header_row, 2)][0]  # DEL30's columns start at column 2
    data = values[(header_row + 1, 2)]
    mixed = sample_result.wide(PORTFOLIO, "DEL30")
    flags = sample_result.flags_wide(PORTFOLIO, "DEL30").to_numpy(dtype=object)
    for series in bands:
        cohort, label = series.title.rsplit(" ", 1)
        column = data[:, series.values.first_col - 2]
        assert headers[series.values.first_col - 2] == series.title
        row = mixed.index.get_loc(cohort)
        quantile = sample_result.quantile_wide(PORTFOLIO, "DEL30", float(label[1:]) / 100).to_numpy()[row]
        forecast = flags[row] != "ACTUAL"
        np.testing.assert_array_equal(column[forecast], quantile[forecast])
        assert np.isnan(column[~forecast]).sum() == (~forecast).sum() - 1  # the last actual point joins the fan


def test_curves_without_intervals_have_no_fan(sample_result):
    result = dataclasses.replace(sample_result, intervals=None)
    sheet = report.curves_sheet(result, PORTFOLIO, "Portfolio_curves")
    assert not any(s.band for chart in sheet.charts for s in chart.series)
    assert "Dotted" not in str(sheet.blocks[1].values[0, 0])
