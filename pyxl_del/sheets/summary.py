"""The Summary sheet each kind of workbook opens on, and the last pass over a workbook's sheets (`book`).

A Summary says what the workbook is about (as-of month, scope), its key figures, the caveats a reader must know
(illustrative economics, how the Portfolio is aggregated, thin data) and has a contents table with a link to every
sheet; `book` puts it first, gives every other sheet a link back to it and the as-of month in its printed footer,
and fits every sheet (pyxl_del.sheets.fit).

Each kind of run has its own Summary (`SUMMARY_NAMES`, owned like the run's other sheets), so in a workbook that
holds several runs' sheets (the ribbon's) each run replaces only its own Summary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pyxl_del.sheets.fit import fit_sheet
from pyxl_del.sheets.layout import (
    HEADER_STYLE,
    NOTE_STYLE,
    SECTION_STYLE,
    TITLE_STYLE,
    WARN_COLOR,
    Area,
    Block,
    Column,
    Font,
    Format,
    LineChart,
    Link,
    Page,
    ScatterChart,
    SheetLayout,
    Style,
    cell_block,
    frame_table,
    text_grid,
)

SUMMARY_NAMES = {"report": "Summary", "backtest": "Backtest summary", "risk-dashboard": "Risk summary",
                 "risk-stress": "Stress summary", "decision": "Decision summary", "abtest": "A-B summary",
                 "drill": "Drill summary", "tracking": "Tracking summary",
                 "tune": "Tune summary"}
SUMMARY_TAB_COLOR = "002060"
LABEL_WIDTH = 48.0
VALUE_WIDTH = 12.0
VALUE_COLUMNS = 7  # B..H: with A, one landscape A4 page across
DATA_COLUMN = 3 + VALUE_COLUMNS  # chart data starts right of the printed columns, apart from their widths
LABEL_STYLE = Style(font=Font(bold=True))
CAVEAT_STYLE = Style(font=Font(color=WARN_COLOR))


@dataclass(frozen=True)
class Figure:
    """A labelled value: ``number_format`` None shows it as text."""

    label: str
    value: object
    number_format: str | None = None


@dataclass
class SheetWriter:
    """Rows of a sheet written top down: a title, notes, sections of label/value pairs and tables, charts."""

    blocks: list = field(default_factory=list)
    formats: list = field(default_factory=list)
    charts: list = field(default_factory=list)
    links: list = field(default_factory=list)
    row: int = 1
    # (first, last) rows a printed page must not cut: each table with the section heading right above it.
    kept: list = field(default_factory=list)
    heading: int = 0  # the row of the last section heading

    def text(self, text: str, style: Style, col: int = 1) -> int:
        self.blocks.append(cell_block(self.row, col, text))
        self.formats.append(Format(Area.cell(self.row, col), style))
        self.row += 1
        return self.row - 1

    def notes(self, lines: Sequence[str], style: Style = NOTE_STYLE) -> None:
        for line in lines:
            self.text(line, style)

    def section(self, heading: str) -> int:
        self.row += 1
        self.heading = self.text(heading, SECTION_STYLE)
        return self.heading

    def figures(self, figures: Sequence[Figure]) -> None:
        for figure in figures:
            value = figure.value
            text = figure.number_format is None or not isinstance(value, (int, float, np.number))
            self.blocks.append(Block(self.row, 1, text_grid([[figure.label, str(value) if text else float(value)]])))
            self.formats.append(Format(Area.cell(self.row, 1), LABEL_STYLE))
            self.formats.append(Format(Area.cell(self.row, 2), Style(horizontal="left") if text else
                                       Style(number_format=figure.number_format, horizontal="right")))
            self.row += 1

    def table(self, frame: pd.DataFrame, columns: Sequence[Column], left: int = 1) -> Area:
        blocks, formats, area = frame_table(frame, columns, self.row, left)
        self.blocks += blocks
        self.formats += formats
        self.row = area.last_row + 1
        # A table whole on a page with its heading (the 12th of 12 segments had printed alone on the next page).
        self.kept.append((self.heading if self.heading == area.first_row - 1 else area.first_row, area.last_row))
        return area

    def chart(self, chart: LineChart | ScatterChart, rows: int) -> None:
        """A chart at the current row (column A), ``rows`` rows tall."""
        self.charts.append(chart)
        self.row += rows


def chart_rows(height_cm: float) -> int:
    """Rows of the default height a chart ``height_cm`` tall covers, and one to spare."""
    return int(np.ceil(height_cm / 2.54 * 72 / 15)) + 1


def contents(writer: SheetWriter, layouts: Sequence[SheetLayout], what: dict[str, str] | None = None) -> int:
    """The contents table: each sheet's name as a link to it, and what it shows (its title, or ``what``); returns
    the row of its heading."""
    anchor = writer.section("Contents")
    writer.blocks.append(Block(writer.row, 1, text_grid([["Sheet", "What it shows"]])))
    writer.formats.append(Format(Area(writer.row, 1, writer.row, 2), HEADER_STYLE.over(Style(horizontal="left"))))
    writer.row += 1
    for layout in layouts:
        writer.links.append(Link(writer.row, 1, layout.name, layout.name))
        writer.blocks.append(cell_block(writer.row, 2, (what or {}).get(layout.name, layout.title)))
        # A long description wraps: the link stays beside its first line, not under it.
        writer.formats.append(Format(Area(writer.row, 1, writer.row, 2), Style(vertical="top")))
        writer.row += 1
    return anchor


def summary_sheet(owner: str, title: str, as_of: str, intro: Sequence[str], writer: SheetWriter,
                  layouts: Sequence[SheetLayout], *, caveats: Sequence[str] = (),
                  what: dict[str, str] | None = None) -> SheetLayout:
    """The Summary of ``layouts``: the title and ``intro`` lines, then what ``writer`` holds (its rows start
    under the intro: build it with ``row=summary_top(intro)``), the caveats and the contents. Chart data goes
    from column `DATA_COLUMN` on, outside the printed pages."""
    head = SheetWriter()
    head.text(title, TITLE_STYLE)
    head.notes([f"As of {as_of}" if as_of else "As of: not known", *intro])
    if caveats:
        writer.section("Caveats")
        writer.notes(list(dict.fromkeys(caveats)), CAVEAT_STYLE)  # a caveat also among the notes is said once
    heading = contents(writer, layouts, what)
    last = writer.row - 1
    blocks = head.blocks + writer.blocks
    formats = head.formats + writer.formats
    name = SUMMARY_NAMES[owner]
    return SheetLayout(
        name=name, kind="summary", owner=owner, title=title, blocks=tuple(blocks), formats=tuple(formats),
        charts=tuple(writer.charts), links=tuple(writer.links),
        column_widths={1: LABEL_WIDTH} | {c: VALUE_WIDTH for c in range(2, 2 + VALUE_COLUMNS)},
        row_heights={1: 30.0}, tab_color=SUMMARY_TAB_COLOR,
        # The contents on one page with their heading (a page had held one stray row of them).
        page=Page(print_area=Area(1, 1, last, 1 + VALUE_COLUMNS), keep_together=(*writer.kept, (heading, last))),
    )


def summary_top(intro: Sequence[str]) -> int:
    """The first row under a Summary's title, as-of line and ``intro``."""
    return 3 + len(intro)


def book(summary: SheetLayout, layouts: Sequence[SheetLayout], as_of: str) -> list[SheetLayout]:
    """The workbook's sheets in order: the Summary, then ``layouts``, each with a link back to the Summary and the
    as-of month in its footer, every one fitted (widths, wrapping, print setup)."""
    footer = f"As of {as_of}" if as_of else ""
    return [fit_sheet(summary, footer=footer),
            *(fit_sheet(layout, footer=footer, back_link=summary.name) for layout in layouts)]
