"""The layout primitives and the layout pass, on hand-worked cases: text measured in Calibri's metrics, values as
Excel shows them, wrapping, pages across, links back, colours by segment, the A/B verdict in words."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from openpyxl import Workbook, load_workbook

from pyxl_del.excel.render import render_openpyxl
from pyxl_del.sheets import fit
from pyxl_del.sheets.abtest import verdict
from pyxl_del.sheets.layout import (
    HEADER_WRAP_STYLE,
    NOTE_STYLE,
    P_VALUE,
    PORTFOLIO_COLOR,
    SIGNED_POINTS,
    Area,
    Block,
    Format,
    LineChart,
    Page,
    Series,
    SheetLayout,
    Style,
    business_label,
    cell_block,
    cm_to_units,
    display_text,
    resolve_styles,
    segment_colors,
    text_grid,
    text_width,
    wrap_lines,
)


def test_text_width_follows_calibri():
    # Calibri's digits are 0.507 em: "0" at 11 pt is 7.4 px, + 7 px of cell margins = 2.06 units of 7 px.
    assert text_width("0") == pytest.approx((0.507 * 11 * 96 / 72 + 7) / 7, rel=1e-3)
    assert text_width("iiii") < text_width("MMMM")  # proportional, not a count of characters
    assert text_width("Severity", bold=True) > text_width("Severity")
    assert text_width("ệ") == text_width("e")  # Vietnamese marks add no width
    assert text_width("x" * 10, font="Consolas") > text_width("x" * 10)


@pytest.mark.parametrize(("value", "fmt", "shown"), [
    (0.1234, "0.00%", "12.34%"), (1234567.4, "#,##0", "1,234,567"), (12, '"MOB "0', "MOB 12"),
    (1.35, SIGNED_POINTS, "+1.35 pp"), (-1.35, SIGNED_POINTS, "-1.35 pp"), (0.0, SIGNED_POINTS, "0.00 pp"),
    (0.0002, P_VALUE, "<0.001"), (0.0312, P_VALUE, "0.031"), (-0.05, "+0.0%;-0.0%;0.0%", "-5.0%"),
    ("text", "0.00%", "text"), (3.0, None, "3"),
])
def test_display_text_as_excel_shows_it(value, fmt, shown):
    assert display_text(value, fmt) == shown


def test_wrap_lines_fit_their_width():
    text = "Last value carried forward to the end of the horizon"
    lines = wrap_lines(text, 12.0, bold=True)
    assert " ".join(lines) == text and len(lines) > 2
    assert all(text_width(line, bold=True) <= 12.0 + 1e-9 for line in lines)
    assert wrap_lines("x" * 80, 5.0)[0] and len(wrap_lines("x" * 80, 5.0)) > 1  # a word too long is broken


def test_business_labels_and_segment_colours():
    assert business_label("mild_recession") == "Mild recession" and business_label("CD") == "CD"
    colors = segment_colors(["TW/Moto", "Portfolio", "CASH LOAN", "CD"])
    assert colors["Portfolio"] == PORTFOLIO_COLOR
    assert colors == segment_colors(["CD", "CASH LOAN", "TW/Moto"]) | {"Portfolio": PORTFOLIO_COLOR}
    assert len(set(colors.values())) == 4


def _sheet(**options) -> SheetLayout:
    values = np.array([[0.123456, 1234567.0], [0.5, 2.0]])
    blocks = (cell_block(1, 1, "A title long enough to run over several columns of the sheet"),
              cell_block(2, 1, "A note " * 40),
              Block(3, 1, text_grid([["Rate", "Last value carried forward"]])), Block(4, 1, values))
    formats = (Format(Area(3, 1, 3, 2), HEADER_WRAP_STYLE), Format(Area.cell(2, 1), NOTE_STYLE),
               Format(Area(4, 1, 5, 1), Style(number_format="0.00%")),
               Format(Area(4, 2, 5, 2), Style(number_format="#,##0")))
    return SheetLayout(name="S", kind="test", owner="test", title="t", blocks=blocks, formats=formats,
                       column_widths={1: 4.0, 2: 4.0}, **options)


def test_fit_widens_wraps_and_links_back():
    fitted = fit.fit_sheet(_sheet(), footer="As of 2025-06", back_link="Summary")
    widths = fitted.column_widths
    assert widths[1] >= text_width("12.35%") and widths[2] >= text_width("1,234,567")
    assert widths[2] >= text_width("carried", bold=True)  # the header wraps at words
    assert fitted.row_heights[3] >= 2 * 15  # ... on two lines or more
    # the long note wraps across the printed width, in a merged cell as tall as its lines
    note = next(m for m in fitted.merges if m.first_row == 2)
    assert note.first_col == 1 and fitted.row_heights[2] > 15
    link = fitted.links[-1]
    assert (link.row, link.target) == (1, "Summary") and link.col > 1
    assert fitted.page.footer == "As of 2025-06" and fitted.page.print_area is not None


def test_pages_across_keep_type_at_8_pt():
    widths = {1: 10.0} | {c: 8.0 for c in range(2, 60)}
    area = Area(1, 1, 30, 59)
    at_full_size = fit.pages_across(widths, area, (1, 1), 1.0, Page())
    at_75 = fit.pages_across(widths, area, (1, 1), 0.75, Page())
    assert at_full_size > at_75 >= 2
    assert fit.pages_across(widths, area, (1, 1), 0.75, Page(paper="A3")) < at_75


def test_verdict_in_words():
    table = pd.DataFrame({"metric": ["DEL30 at MOB 6 (simulated)"], "unit": ["pct"], "champion": [0.035],
                          "challenger": [0.022], "difference": [-0.013], "ci_low": [-0.024], "ci_high": [-0.002],
                          "p_value": [0.2]})
    power = pd.DataFrame({"what": ["expected difference"], "months_needed": [21.4], "power_after_6_months": [0.31]})
    assert verdict(table, power) == ("Not enough evidence yet: 31% power, 21 months needed (for the expected "
                                     "difference in DEL30 at MOB 6 (simulated)).")
    assert verdict(table.assign(p_value=0.01), power.assign(power_after_6_months=0.9)).startswith(
        "Significant: the challenger's DEL30 at MOB 6 (simulated) differs by -1.30 pp (p = 0.010)")
    assert "likely overstated" in verdict(table.assign(p_value=0.0001), power)
    assert verdict(table, power.assign(power_after_6_months=0.95)).startswith("No difference found")


def _chart_sheet(chart_row: int, page: Page | None = None) -> SheetLayout:
    """Text in rows 1..chart_row - 2, a heading, then a 7.5 cm chart (15 rows of 15 pt) at chart_row."""
    lines = [cell_block(r, 1, f"line {r}") for r in range(1, chart_row - 1)] + [cell_block(chart_row - 1, 1, "Chart")]
    chart = LineChart(title="c", anchor=(chart_row, 1), categories=Area(1, 1, 2, 1),
                      series=(Series("s", Area(1, 2, 2, 2), "000000"),), height_cm=7.5)
    return SheetLayout(name="S", kind="test", owner="test", title="t", blocks=tuple(lines), charts=(chart,),
                       page=page or Page())


def test_a_chart_the_page_would_cut_starts_the_next_page(tmp_path):
    # Landscape A4 prints 516 pt down (34 rows of 15 pt). A heading at row 26 and its chart (rows 27..42) would
    # run from 375 pt to 630 pt: the page starts at the heading instead. At row 5 the chart fits: no break.
    cut = fit.fit_sheet(_chart_sheet(27))
    assert cut.page.row_breaks == (26,)
    assert fit.fit_sheet(_chart_sheet(5)).page.row_breaks == ()
    # A sheet scaled to its pages down (fit_height) is not broken by hand.
    assert fit.fit_sheet(_chart_sheet(27, Page(fit_height=1))).page.row_breaks == ()
    wb = Workbook()
    wb.remove(wb.active)
    render_openpyxl([cut], wb)
    wb.save(tmp_path / "breaks.xlsx")
    assert [b.id for b in load_workbook(tmp_path / "breaks.xlsx")["S"].row_breaks.brk] == [25]  # after row 25


def test_a_chart_inside_a_set_print_area_ends_at_its_edge():
    """The stress sheet's 22 cm chart in a print area of columns A..E (18 cm) printed without its legend, the
    concentration sheet's without its title and the right of its plot."""
    wide = LineChart(title="c", anchor=(3, 1), categories=Area(1, 1, 2, 1),
                     series=(Series("s", Area(1, 2, 2, 2), "000000"),), width_cm=22.0)
    layout = SheetLayout(name="S", kind="test", owner="test", title="t", blocks=(cell_block(1, 1, "t"),),
                         charts=(wide,), column_widths={1: 28.0} | {c: 17.0 for c in range(2, 6)},
                         page=Page(print_area=Area(1, 1, 30, 5)))
    fitted = fit.fit_sheet(layout)
    room = sum(fitted.column_widths.get(c, 8.43) for c in range(1, 6))
    assert fitted.charts[0].width_cm < 22.0 and cm_to_units(fitted.charts[0].width_cm) <= room
    assert cm_to_units(fitted.charts[0].width_cm) > room - 1  # as wide as the area, not narrower
    # A chart that fits, or one starting outside the print area, is left as it is.
    narrow = SheetLayout(**{**layout.__dict__, "charts": (replace(wide, width_cm=10.0), replace(wide, anchor=(3, 8)))})
    assert [c.width_cm for c in fit.fit_sheet(narrow).charts] == [10.0, 22.0]


def test_the_cells_of_a_row_made_tall_by_wrapping_sit_at_its_top():
    """The VaR reconciliation's figures printed at the bottom of rows made tall by their wrapped explanation, lines
    below their own labels and beside the next row's."""
    note = "a long explanation " * 8
    layout = SheetLayout(name="S", kind="test", owner="test", title="t",
                         blocks=(Block(1, 1, text_grid([["Figure", "Value", "Why"]])),
                                 Block(2, 1, text_grid([["Mean loss", None, note]])), Block(2, 2, np.array([[5.0]]))),
                         formats=(Format(Area.cell(2, 3), Style(wrap=True, vertical="top")),
                                  Format(Area.cell(1, 1), Style(vertical="center"))),
                         column_widths={3: 20.0}, page=Page(print_area=Area(1, 1, 2, 3)))
    fitted = fit.fit_sheet(layout)
    palette, ids = resolve_styles(fitted)
    assert fitted.row_heights[2] > 30
    assert [palette[ids[1, c]].vertical for c in range(3)] == ["top", "top", "top"]
    assert palette[ids[0, 0]].vertical == "center"  # a row of one line keeps its own


def test_a_sheet_several_pages_wide_prints_across_then_down(tmp_path):
    """Printed "down, then over" (the default), a table's right part came pages after the rows it belongs to: a
    segment's Recommended and Change columns two pages after its Current ones, the backtest's Winner six."""
    wide = SheetLayout(name="W", kind="test", owner="test", title="t", blocks=(cell_block(1, 1, "t"),),
                       page=Page(fit_width=2))
    narrow = replace(wide, name="N", page=Page(fit_width=1))
    wb = Workbook()
    wb.remove(wb.active)
    render_openpyxl([wide, narrow], wb)
    wb.save(tmp_path / "order.xlsx")
    book = load_workbook(tmp_path / "order.xlsx")
    assert book["W"].page_setup.pageOrder == "overThenDown"
    assert book["N"].page_setup.pageOrder in (None, "downThenOver")


def _wide_table(note_col: int | None = None, chart: bool = False, rows: int = 20) -> SheetLayout:
    """A title in A1, a header in row 3 and a table 40 columns wide: two landscape pages at 8 pt."""
    values = np.full((rows, 40), 0.1234)
    blocks = [cell_block(1, 1, "A wide table's long title"), Block(3, 1, text_grid([[f"col {j}" for j in range(41)]])),
              Block(4, 2, values), Block(4, 1, text_grid([[f"2024-{i:02d}"] for i in range(1, rows + 1)]))]
    if note_col is not None:
        blocks.append(cell_block(2, note_col, "a note above the header"))
    charts = (LineChart(title="c", anchor=(4, 30), categories=Area(4, 1, 5, 1),
                        series=(Series("s", Area(4, 2, 5, 2), "000000"),)),) if chart else ()
    return SheetLayout(name="W", kind="test", owner="test", title="t", blocks=tuple(blocks), charts=charts,
                       column_widths={j: 9.0 for j in range(1, 42)},
                       page=Page(repeat_rows=(3, 3), repeat_cols=(1, 1), print_area=Area(1, 1, 3 + rows, 41)))


def test_a_wide_sheet_prints_its_pages_right_of_the_first_from_the_header_row():
    """The repeated column A printed the title's first letters on the pages right of the first ("A wi"): each page
    is an area of its own, over then down, those right of the first from the header row down, those below from the
    row after the page above. Not where it would lose a note above the header beyond the first page, or cut a
    chart."""
    first, *right = fit.fit_sheet(_wide_table()).page.areas
    assert (first.first_row, first.first_col) == (1, 1) and right and right[-1].last_col == 41
    assert all(a.first_row == 3 and a.last_row == 23 for a in right)
    assert [a.first_col for a in right] == [b.last_col + 1 for b in [first, *right][:-1]]
    assert fit.fit_sheet(_wide_table(note_col=38)).page.areas == ()
    assert fit.fit_sheet(_wide_table(chart=True)).page.areas == ()
    tall = fit.fit_sheet(_wide_table(rows=90)).page.areas
    across = 1 + len(right)
    assert len(tall) % across == 0 and len(tall) > across  # whole bands of pages across, over then down
    assert tall[across].first_row == tall[0].last_row + 1 and tall[across].first_col == 1
    assert all(a.last_row == tall[0].last_row for a in tall[:across])
    assert tall[-1].last_row == 93 and all(a.last_row - a.first_row < 50 for a in tall)


def test_rows_kept_together_start_the_next_page_instead_of_being_cut():
    """The matrices sheets broke a step's matrix between pages (a lone "MOB 5 → 6" at a page's foot, a PREPAY row
    without its label at the next one's head): each block of 9 rows is kept on one page."""
    blocks = tuple(cell_block(r, 1, f"row {r}") for r in range(1, 121))
    spans = tuple((r, r + 8) for r in range(3, 120, 10))
    layout = SheetLayout(name="M", kind="test", owner="test", title="t", blocks=blocks,
                         page=Page(landscape=False, repeat_rows=(1, 1), keep_together=spans))
    breaks = fit.fit_sheet(layout).page.row_breaks
    assert breaks and set(breaks) <= {first for first, _ in spans}
    # A portrait A4 page holds 50 rows of 15 pt: each page ends before the block that would not fit whole.
    assert all(0 < b - a <= 50 for a, b in zip([1, *breaks], breaks))
    assert fit.fit_sheet(replace(layout, page=Page(landscape=False, repeat_rows=(1, 1)))).page.row_breaks == ()


def test_a_page_across_starts_at_a_group_of_columns():
    """The Recommendations' second page began inside TW/Moto's Current, Recommended, Change: its last two columns
    under the Portfolio's label. With `break_before` a page starts at a group's first column."""
    widths = {c: 12.0 for c in range(1, 14)}
    area, page = Area(1, 1, 20, 13), Page(landscape=False)
    plain = fit.page_ends(widths, area, (1, 1), 1.0, page)
    grouped = fit.page_ends(widths, area, (1, 1), 1.0, replace(page, break_before=tuple(range(2, 14, 3))))
    assert plain[0] % 3 != 1  # A4 portrait holds 7 columns of 12 beside the repeated one: it ends inside a group
    assert all(end % 3 == 1 for end in grouped[:-1]) and grouped[-1] == 13 and grouped[0] < plain[0]


@pytest.mark.parametrize("n, symbol", [(1, "circle"), (3, None)])  # openpyxl keeps "none" as None
def test_a_line_of_one_point_is_drawn_as_a_marker(tmp_path, n, symbol):
    """A book of one cohort: each Summary series had one point and no marker, so its charts were empty."""
    values = Block(1, 1, text_grid([[f"c{i}"] for i in range(n)]))
    numbers = Block(1, 2, np.full((n, 1), 0.02))
    chart = LineChart(title="c", anchor=(5, 1), categories=Area(1, 1, n, 1),
                      series=(Series("s", Area(1, 2, n, 2), "1F77B4"),))
    layout = SheetLayout(name="S", kind="test", owner="test", title="t", blocks=(values, numbers), charts=(chart,))
    wb = Workbook()
    wb.remove(wb.active)
    render_openpyxl([layout], wb)
    assert wb["S"]._charts[0].series[0].marker.symbol == symbol

