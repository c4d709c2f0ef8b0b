"""The layout pass every sheet goes through last (`fit_sheet`): columns wide enough for what they show, long cells
and notes wrapped within the printed width, rows tall enough for their wrapped lines, and a print setup that keeps
type at 8 pt or more on paper.

How text behaves in a cell, as Excel and LibreOffice draw it: a number that does not fit shows "####"; text spills
into the empty cells to its right, and is cut at the first cell that holds a value; wrapped text breaks into lines
at the column's width and needs a row tall enough. So a column must be as wide as its numbers and its text that
cannot spill; text that spills must end before the next value and inside the printed page, or it is wrapped.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd

from pyxl_del.sheets.layout import (
    DEFAULT_SIZE,
    DEFAULT_WIDTH,
    Area,
    Format,
    Link,
    SheetLayout,
    Style,
    cm_to_units,
    columns_spanning,
    display_text,
    line_height,
    resolve_styles,
    text_width,
    wrap_lines,
)

MIN_PRINT_PT = 8.0  # the smallest type on paper
MAX_COLUMN_WIDTH = 60.0  # wider text wraps
SAMPLE_ROWS = 5_000  # a long table's widths are measured on its first rows
MARGINS_PT = 0.8 * 72  # left and right page margins (pyxl_del.excel.render)
MARGINS_TOP_BOTTOM_PT = 1.1 * 72  # top and bottom page margins (pyxl_del.excel.render)
PAPER_PT = {"A4": (595.3, 841.9), "A3": (841.9, 1190.6)}  # portrait width, height
CHART_TEXT_PT = 10.0  # the axis labels and legends of a chart
# A column-width unit on paper: Excel draws it 7 px (5.25 pt) wide, LibreOffice a little wider (Calibri's digit is
# 7.4 px); pages are planned for the wider one.
PRINT_POINTS_PER_UNIT = 5.6
WRAP_STYLE = Style(wrap=True, vertical="top")
BACK_LINK_TEXT = "Back to {name}"


def printable_width(page) -> float:
    """Points across the printable part of a page."""
    short, long = PAPER_PT[page.paper]
    return (long if page.landscape else short) - MARGINS_PT


def printable_height(page) -> float:
    """Points down the printable part of a page (top and bottom margins, pyxl_del.excel.render)."""
    short, long = PAPER_PT[page.paper]
    return (short if page.landscape else long) - MARGINS_TOP_BOTTOM_PT


def chart_breaks(layout: SheetLayout, area: Area, heights: dict[int, float], widths: dict[int, float],
                 page) -> tuple[int, ...]:
    """Rows where a page must start so that no chart is cut by one: a chart, with the heading row above it, or a
    span of `Page.keep_together`, that would run over the bottom of the page it starts on begins the next page
    instead (one taller than a page is left to break). Pages are walked at the scale the sheet prints at (fit to
    its pages across). A sheet fitted to a number of pages down (curves: one) is scaled to them, so it gets none."""
    if page.fit_height:
        return ()
    charts = sorted([(chart.anchor[0], _chart_extent(chart, widths)[0]) for chart in layout.charts
                     if area.first_row < chart.anchor[0] <= area.last_row]
                    + [(first + 1, last) for first, last in page.keep_together
                       if area.first_row < first <= area.last_row])
    if not charts:
        return ()
    total_width = sum(widths.get(c, DEFAULT_WIDTH) * PRINT_POINTS_PER_UNIT
                      for c in range(area.first_col, area.last_col + 1))
    scale = min(1.0, printable_width(page) * page.fit_width / total_width) if total_width else 1.0

    def height(row: int) -> float:
        return heights.get(row, line_height())

    repeated = sum(height(r) for r in range(page.repeat_rows[0], page.repeat_rows[1] + 1)) if page.repeat_rows else 0
    room = printable_height(page) / scale - repeated
    starts = {anchor - 1: end for anchor, end in charts}  # the chart's heading row -> its last row
    breaks, used = [], 0.0
    for row in range(area.first_row, area.last_row + 1):
        end = starts.get(row)
        if end is not None and used > 0:
            span = sum(height(r) for r in range(row, end + 1))
            if used + span > room >= span:
                breaks.append(row)
                used = 0.0
        if used + height(row) > room:  # the page ends here by itself
            used = 0.0
        used += height(row)
    return tuple(breaks)


def _occupied(layout: SheetLayout, shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    for block in layout.blocks:
        a = block.area
        values = block.values
        filled = ~np.isnan(values) if values.dtype.kind == "f" else ~pd.isna(values)
        mask[a.first_row - 1:a.last_row, a.first_col - 1:a.last_col] |= filled
    for link in layout.links:
        mask[link.row - 1, link.col - 1] = True
    return mask


def _measured_cells(layout: SheetLayout):
    """(row, col, value) of the cells whose width matters: every cell of a small block, the first rows of a long
    one, and the extremes of each numeric column (the longest numbers)."""
    for block in layout.blocks:
        values = block.values
        if values.dtype.kind == "f":
            for j in range(values.shape[1]):
                column = values[:, j]
                finite = np.flatnonzero(np.isfinite(column))
                if len(finite):
                    for i in {int(finite[np.argmax(column[finite])]), int(finite[np.argmin(column[finite])])}:
                        yield block.row + i, block.col + j, float(column[i])
            continue
        rows = values[:SAMPLE_ROWS]
        for i, row in enumerate(rows.tolist()):
            for j, value in enumerate(row):
                if value is None or value != value or value == "":
                    continue
                yield block.row + i, block.col + j, value
    for link in layout.links:
        yield link.row, link.col, link.text


def _font(style: Style) -> tuple[float, bool, str | None]:
    """(size, bold, name) of a cell's font."""
    font = style.font
    return (font.size if font and font.size else DEFAULT_SIZE), bool(font and font.bold), font and font.name


def _chart_extent(chart, widths) -> tuple[int, int]:
    """The last row and column a chart covers (rows of the default height)."""
    row, col = chart.anchor
    rows = math.ceil(chart.height_cm / 2.54 * 72 / line_height())
    return row + rows, columns_spanning(widths, cm_to_units(chart.width_cm), first=col)


def page_ends(widths: dict[int, float], print_area: Area, repeat_cols: tuple[int, int] | None, scale: float,
              page) -> list[int]:
    """The last column of the print area on each page across at ``scale`` (pages break between columns, before a
    column of `Page.break_before` where one is on the page; the repeated columns are on every page)."""
    room = printable_width(page) / scale
    repeated = range(repeat_cols[0], repeat_cols[1] + 1) if repeat_cols else range(0)
    fixed = sum(widths.get(c, DEFAULT_WIDTH) * PRINT_POINTS_PER_UNIT for c in repeated)
    cols = [c for c in range(print_area.first_col, print_area.last_col + 1) if c not in repeated]
    width = [widths.get(c, DEFAULT_WIDTH) * PRINT_POINTS_PER_UNIT for c in cols]
    ends, used, start = [], fixed, 0
    for i in range(len(cols)):
        if used + width[i] > room and used > fixed:
            # A page starts at the last column a group of columns starts at (Page.break_before), if one is on it.
            starts = [j for j in range(start + 1, i + 1) if cols[j] in page.break_before]
            start = starts[-1] if starts else i
            ends.append(cols[start - 1])
            used = fixed + sum(width[start:i])
        used += width[i]
    return [*ends, print_area.last_col]


def pages_across(widths: dict[int, float], print_area: Area, repeat_cols: tuple[int, int] | None, scale: float,
                 page) -> int:
    """How many pages wide the print area prints at ``scale``."""
    return len(page_ends(widths, print_area, repeat_cols, scale, page))


def fitted_scale(widths: dict[int, float], print_area: Area, repeat_cols: tuple[int, int] | None, pages: int,
                 page) -> float:
    """The scale a sheet fitted to ``pages`` across prints at: the largest (at most 1) that fits its width, the
    repeated columns on every page, into them."""
    width = sum(widths.get(c, DEFAULT_WIDTH) for c in range(print_area.first_col, print_area.last_col + 1))
    repeated = sum(widths.get(c, DEFAULT_WIDTH) for c in range(repeat_cols[0], repeat_cols[1] + 1)) if repeat_cols \
        else 0.0
    return min(1.0, pages * printable_width(page) / ((width + (pages - 1) * repeated) * PRINT_POINTS_PER_UNIT))


def print_plan(widths: dict[int, float], print_area: Area, repeat_cols: tuple[int, int] | None, smallest_pt: float,
               page) -> tuple[int, float, list[int]]:
    """(pages across, scale, the last column on each page) of ``print_area`` printed with its smallest type,
    ``smallest_pt``, at MIN_PRINT_PT or more; a sheet fitted to a number of pages down keeps its pages across."""
    scale = min(1.0, MIN_PRINT_PT * 1.03 / smallest_pt)
    pages = page.fit_width if page.fit_height else pages_across(widths, print_area, repeat_cols, scale, page)
    scale = fitted_scale(widths, print_area, repeat_cols, pages, page)
    if pages == 1:
        return pages, scale, [print_area.last_col]
    # Pages break between columns, so the width shared out evenly may not fit: shrink as a printer's "fit to
    # pages wide" does, until the columns fit the pages.
    while len(ends := page_ends(widths, print_area, repeat_cols, scale, page)) > pages and scale > 0.1:
        scale *= 0.98
    return pages, scale, ends


# Pages are planned on estimated row heights: a page is filled to this share of its height, so that a renderer
# drawing rows a little taller still fits each area on one page (one that does not spills a few rows onto a page
# of their own).
PAGE_FILL = 0.93


def print_pages(area: Area, ends: list[int], repeat_rows: tuple[int, int] | None,
                repeat_cols: tuple[int, int] | None, occupied: np.ndarray, heights: dict[int, float],
                scale: float, page) -> tuple[Area, ...]:
    """Page.areas: the print area cut into one area a page, where the sheet prints several pages
    wide with repeated columns below rows of its own (a title, notes): repeated, the text those rows hold in the
    repeated columns is cut at their edge ("Portfol"), as is a note under the table. The pages right of the first
    start at the repeated header row, the pages below the first at the row after the page above (the header row
    repeats on them), and each ends at its last row with a value. Not where something above the header lies
    beyond the first page, which would then not print (nor, in `fit_sheet`, where a chart is on the printed area).
    ``occupied``: the cells that hold something, links included."""
    if len(ends) < 2 or not repeat_cols or not repeat_rows or repeat_rows[0] <= area.first_row:
        return ()
    header = repeat_rows[0]
    if occupied[area.first_row - 1:header - 1, ends[0]:area.last_col].any():
        return ()

    def height(row: int) -> float:
        return heights.get(row, line_height())

    repeated = sum(height(r) for r in range(repeat_rows[0], repeat_rows[1] + 1))

    def bands_of(room: float) -> list[tuple[int, int]]:
        bands, first, used = [], area.first_row, 0.0
        for row in range(area.first_row, area.last_row + 1):
            if used + height(row) > room - (repeated if bands else 0.0) and used > 0:
                bands.append((first, row - 1))
                first, used = row, 0.0
            used += height(row)
        return [*bands, (first, area.last_row)]

    room = printable_height(page) / scale * PAGE_FILL
    bands = bands_of(room)
    if len(bands) > 1:
        # As many pages down, evenly filled: the last of them had held a few rows (6 of 72 cohorts) on each page
        # across.
        total = sum(height(r) for r in range(area.first_row, area.last_row + 1)) + repeated * (len(bands) - 1)
        even = bands_of(min(room, total / len(bands) + max(heights.values(), default=line_height())))
        bands = even if len(even) == len(bands) else bands
    parts = []
    for i, (top, bottom) in enumerate(bands):
        for j, (left, right) in enumerate(zip([area.first_col, *(e + 1 for e in ends[:-1])], ends)):
            start = header if i == 0 and j > 0 else top
            filled = np.flatnonzero(occupied[start - 1:bottom, left - 1:right].any(axis=1))
            if j == 0 or len(filled):
                parts.append(Area(start, left, start + int(filled[-1]) if len(filled) and j else bottom, right))
    return tuple(parts)


def fit_sheet(layout: SheetLayout, *, footer: str | None = None, back_link: str | None = None) -> SheetLayout:
    """The layout with its columns, rows, wrapping and print setup fitted to its content; ``footer`` goes in the
    middle of every printed page's footer (the as-of month), ``back_link`` names the sheet a link at the right of
    the title jumps to (the Summary)."""
    palette, ids = resolve_styles(layout)
    shape = ids.shape
    occupied = _occupied(layout, shape)
    widths = dict(layout.column_widths)
    heights = dict(layout.row_heights)
    formats = list(layout.formats)
    merges = list(layout.merges)

    def style_at(row: int, col: int) -> Style:
        return palette[ids[row - 1, col - 1]]

    def right_free(row: int, col: int) -> bool:
        return col >= shape[1] or not occupied[row - 1, col]

    # 1. Widths from the cells that cannot spill; note the ones that can.
    needed: dict[int, float] = {}
    spills, wrapped = [], []
    for row, col, value in _measured_cells(layout):
        style = style_at(row, col)
        size, bold, name = _font(style)
        text = display_text(value, style.number_format)
        if style.wrap or "\n" in text:
            longest = max((text_width(word, size, bold, name) for word in text.split()), default=0.0)
            needed[col] = max(needed.get(col, 0.0), min(longest, MAX_COLUMN_WIDTH))
            wrapped.append((row, col, text, (size, bold, name), None))
        elif isinstance(value, str) and style.horizontal in (None, "left") and right_free(row, col):
            spills.append((row, col, text, (size, bold, name)))
        else:
            need = text_width(text, size, bold, name)
            needed[col] = max(needed.get(col, 0.0), min(need, MAX_COLUMN_WIDTH))
            if need > MAX_COLUMN_WIDTH and isinstance(value, str):
                formats.append(Format(Area.cell(row, col), WRAP_STYLE))
                wrapped.append((row, col, text, (size, bold, name), None))
    for col, need in needed.items():
        widths[col] = max(widths.get(col, DEFAULT_WIDTH), math.ceil(need * 100) / 100)

    # 2. What prints: the layout's print area, else everything it holds (charts included).
    page = layout.page
    area = page.print_area
    charts = list(layout.charts)
    if area is None:
        last_row, last_col = shape
        for chart in charts:
            r, c = _chart_extent(chart, widths)
            last_row, last_col = max(last_row, r), max(last_col, c)
        area = Area(1, 1, last_row, last_col)
    else:
        # A chart starting inside a set print area ends at its right edge: wider, its legend and the right of its
        # plot were cut from the page (the stress and concentration sheets).
        charts = [_chart_within(chart, widths, area.last_col) if area.first_row <= chart.anchor[0] <= area.last_row
                  and area.first_col <= chart.anchor[1] <= area.last_col else chart for chart in charts]

    # The print scale: the smallest type in the area, charts' included, prints at MIN_PRINT_PT.
    inside = ids[area.first_row - 1:area.last_row, area.first_col - 1:area.last_col]
    used = np.unique(inside[occupied[area.first_row - 1:area.last_row, area.first_col - 1:area.last_col]])
    smallest = min([_font(palette[i])[0] for i in used] or [DEFAULT_SIZE])
    if any(chart.anchor[0] <= area.last_row and chart.anchor[1] <= area.last_col for chart in layout.charts):
        smallest = min(smallest, CHART_TEXT_PT)
    # Pages across: as many as keep the smallest type at MIN_PRINT_PT; headers repeat on each.
    repeat_rows, repeat_cols = page.repeat_rows, page.repeat_cols
    if layout.freeze is not None and repeat_rows is None and repeat_cols is None:
        top, left = layout.freeze
        repeat_rows = (top - 1, top - 1) if top > 1 else None
        repeat_cols = (1, left - 1) if left > 1 else None
    fit_width, scale, ends = print_plan(widths, area, repeat_cols, smallest, page)

    # 3. Text that spills past the next value or the printed edge is wrapped across the free cells up to it; on a
    # sheet printed several pages wide, the edge is that of the page the text starts on.
    links = list(layout.links)
    if back_link is not None:
        spills = [s for s in spills if (s[0], s[1]) != (1, 1)]
        title = layout.blocks[0].values[0, 0] if layout.blocks else None
        title_end = columns_spanning(widths, text_width(str(title or ""), *_font(style_at(1, 1))), first=1)
        free = np.flatnonzero(occupied[0, 1:])
        col = min(title_end, int(free[0])) + 1 if len(free) else title_end + 1
        text = BACK_LINK_TEXT.format(name=back_link)
        need = text_width(text)
        if col <= area.last_col and sum(widths.get(c, DEFAULT_WIDTH) for c in range(col, area.last_col + 1)) < need:
            widths[col] = max(widths.get(col, DEFAULT_WIDTH), math.ceil(need * 100) / 100)  # at the print edge
        links.append(Link(1, col, back_link, text))
    for row, col, text, font in spills:
        after = np.flatnonzero(occupied[row - 1, col:])
        free_end = col + int(after[0]) if len(after) else None
        if col <= area.last_col and area.first_row <= row <= area.last_row:
            edge = next(end for end in ends if end >= col)
            end = edge if free_end is None else min(free_end, edge)
        elif free_end is not None:
            end = free_end
        else:
            continue
        room = sum(widths.get(c, DEFAULT_WIDTH) for c in range(col, end + 1))
        if text_width(text, *font) <= room:
            continue
        if end > col:
            merges.append(Area(row, col, row, end))
        formats.append(Format(Area(row, col, row, end), WRAP_STYLE))
        wrapped.append((row, col, text, font, room))

    # 4. Rows tall enough for their wrapped lines; the other cells of such a row at its top, as the wrapped text is
    # (at the bottom, Excel's default, a figure printed lines below the label it belongs to: the VaR reconciliation).
    tall = set()
    for row, col, text, font, room in wrapped:
        lines = len(wrap_lines(text, room or widths.get(col, DEFAULT_WIDTH), *font))
        heights[row] = max(heights.get(row, 0.0), lines * line_height(font[0]) + 1)
        if lines > 1:
            tall.add(row)
    unaligned = np.array([style.vertical is None for style in palette])
    for row in sorted(tall):
        cols = np.flatnonzero(occupied[row - 1] & unaligned[ids[row - 1]]) + 1
        formats += [Format(Area.cell(row, int(c)), Style(vertical="top")) for c in cols]

    # 5. The print setup.
    filled = np.zeros((max(shape[0], area.last_row), max(shape[1], area.last_col, *(k.col for k in links))), bool)
    filled[:shape[0], :shape[1]] = occupied
    for link in links:
        filled[link.row - 1, link.col - 1] = True
    # A chart on the page is left whole: an area per page would cut it where the pages meet.
    charted = any(area.first_row <= c.anchor[0] <= area.last_row and area.first_col <= c.anchor[1] <= area.last_col
                  for c in charts)
    areas = () if charted or page.keep_together else print_pages(area, ends, repeat_rows, repeat_cols, filled,
                                                                   heights, scale, page)
    page = replace(page, print_area=area, fit_width=fit_width, repeat_rows=repeat_rows, repeat_cols=repeat_cols,
                   footer=page.footer if footer is None else footer, areas=areas)
    # 6. No chart cut by a page.
    page = replace(page, row_breaks=chart_breaks(layout, area, heights, widths, page))
    return replace(layout, column_widths=widths, row_heights=heights, formats=tuple(formats), merges=tuple(merges),
                   links=tuple(links), page=page, charts=tuple(charts))


def _chart_within(chart, widths: dict[int, float], last_col: int):
    """The chart no wider than the columns from its anchor to ``last_col``."""
    units = sum(widths.get(c, DEFAULT_WIDTH) for c in range(chart.anchor[1], last_col + 1))
    room_cm = (units * 7 + 5) / 96 * 2.54  # the inverse of cm_to_units
    return chart if chart.width_cm <= room_cm else replace(chart, width_cm=math.floor(room_cm * 10) / 10)

