"""The building blocks of every sheet: styles, areas, blocks of values, formats, charts, page set-up, a layout,
and the helpers that place text and tables. Plain data, no file I/O: `pyxl_del.excel.render` writes a layout.

How a renderer reads a layout:

* ``blocks`` are rectangles of values. A ``str`` is always text, never a formula (segment names, cohorts,
  warnings and config come from the user's data); numbers are numbers; ``None`` and NaN are empty cells.
* ``formats`` are layers applied in order: each sets only the attributes its `Style` gives (a field left
  ``None`` keeps what the layers before it set). This is how Excel's own range formatting behaves, so a live
  renderer can apply them one by one; `resolve_styles` flattens them into one style per cell for renderers
  that write cells (openpyxl).
* ``color_scales`` are conditional formats; they paint the cell fill, so the ACTUAL / FORECAST / MIXED marks
  use fonts and borders, never fills.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd

from pyxl_del.engine.data import column_letter

# ----------------------------------------------------------------------------------------------- styling

TITLE_COLOR = "002060"  # Excel's standard "Dark Blue"
HEADER_FILL = "BDD7EE"  # light blue
STEP_COLOR = "FF0000"  # the staircase: last ACTUAL month of a cohort
FORECAST_COLOR = "595959"
MIXED_COLOR = "7030A0"  # purple: some segments actual, some forecast
NOTE_COLOR = "404040"
WARN_COLOR = "C65911"
SCALE_COLORS = ("63BE7B", "FFEB84", "F8696B")  # Excel's green - yellow - red scale: low is good
MATRIX_SCALE_COLORS = ("FFFFFF", "5B9BD5")
CURVE_COLORS = ("1F77B4", "FF7F0E", "2CA02C", "D62728", "9467BD", "8C564B")
# One colour per segment in every chart of every workbook: the Portfolio always black, the segments in the order of
# their names (the same data gives the same colours in the report, the risk sheets and the decision sheets).
PORTFOLIO_COLOR = "262626"
SEGMENT_COLORS = ("1F77B4", "FF7F0E", "2CA02C", "D62728", "9467BD", "8C564B", "E377C2", "17BECF", "BCBD22",
                  "7F7F7F")
LINK_COLOR = "0563C1"  # Excel's hyperlink blue

PERCENT = "0.00%"
# Differences of rates in percentage points: the value is stored in points (0.0135 -> 1.35) and shown signed.
POINTS = '0.00" pp"'
SIGNED_POINTS = '+0.00" pp";-0.00" pp";0.00" pp"'
P_VALUE = '[<0.001]"<0.001";0.000'  # a p-value: never "0.000"
CHART_WIDTH_CM, CHART_HEIGHT_CM = 18.0, 8.0  # three stacked charts fit one portrait A4 page
MAX_SHEET_NAME = 31  # Excel counts UTF-16 code units
MAX_CELL_TEXT = 32_767
SHEET_NAME_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # openpyxl and Excel reject these in cells

# The sheet-scoped defined name that marks a sheet as written by pyxl_del; its value is the sheet's owner (the run
# that wrote it). A renderer that updates an existing workbook replaces only marked sheets of the owners it writes
# (pyxl_del.excel.render.plan_replacement) and leaves every other sheet alone.
OWNER_NAME = "pyxl_del_sheet"


@dataclass(frozen=True)
class Font:
    name: str | None = None
    size: float | None = None
    bold: bool | None = None
    italic: bool | None = None
    color: str | None = None  # "RRGGBB"
    underline: str | None = None  # "single" | "double"


@dataclass(frozen=True)
class Edge:
    style: str  # "thin" | "medium" | "thick" | "dotted" | "dashed" | "hair"
    color: str = "000000"


@dataclass(frozen=True)
class Border:
    left: Edge | None = None
    right: Edge | None = None
    top: Edge | None = None
    bottom: Edge | None = None


@dataclass(frozen=True)
class Style:
    """Cell formatting; ``None`` means "not set by this layer"."""

    number_format: str | None = None
    font: Font | None = None
    fill: str | None = None  # solid fill colour "RRGGBB"
    border: Border | None = None
    horizontal: str | None = None  # "left" | "center" | "right"
    vertical: str | None = None  # "top" | "center" | "bottom"
    wrap: bool | None = None
    indent: int | None = None

    def over(self, base: Style) -> Style:
        """This layer applied on top of ``base``: fonts and borders merge attribute by attribute."""
        return _merge(self, base)


def _merge(top, base):
    if top is None:
        return base
    if base is None:
        return top
    values = {}
    for f in fields(top):
        a, b = getattr(top, f.name), getattr(base, f.name)
        values[f.name] = _merge(a, b) if isinstance(a, (Font, Border)) else (b if a is None else a)
    return type(top)(**values)


# ------------------------------------------------------------------------------------------------ layout


@dataclass(frozen=True)
class Area:
    """A rectangle of cells, 1-based and inclusive."""

    first_row: int
    first_col: int
    last_row: int
    last_col: int

    def __post_init__(self):
        if not (1 <= self.first_row <= self.last_row and 1 <= self.first_col <= self.last_col):
            raise ValueError(f"empty or inverted area {self}")

    @classmethod
    def cell(cls, row: int, col: int) -> Area:
        return cls(row, col, row, col)

    @property
    def ref(self) -> str:
        start = f"{column_letter(self.first_col)}{self.first_row}"
        if self.first_row == self.last_row and self.first_col == self.last_col:
            return start
        return f"{start}:{column_letter(self.last_col)}{self.last_row}"

    @property
    def shape(self) -> tuple[int, int]:
        return self.last_row - self.first_row + 1, self.last_col - self.first_col + 1


@dataclass(frozen=True, eq=False)
class Block:
    """Values written from (row, col) down and right; ``values`` is 2-D (object or float)."""

    row: int
    col: int
    values: np.ndarray

    @property
    def area(self) -> Area:
        n, m = self.values.shape
        return Area(self.row, self.col, self.row + n - 1, self.col + m - 1)


@dataclass(frozen=True)
class Format:
    area: Area
    style: Style


@dataclass(frozen=True)
class ColorScale:
    """A 3-colour (or 2-colour) scale from the minimum through the median to the maximum of ``area``."""

    area: Area
    colors: tuple[str, ...] = SCALE_COLORS


@dataclass(frozen=True)
class Series:
    title: str
    values: Area  # one column on the same sheet
    color: str
    dashed: bool = False
    in_legend: bool = True
    band: bool = False  # a thin dotted line: an interval's edge beside the line it belongs to


@dataclass(frozen=True)
class LineChart:
    title: str
    anchor: tuple[int, int]  # top-left cell (row, col)
    categories: Area
    series: tuple[Series, ...]
    x_title: str = "MOB"
    y_title: str = ""
    y_format: str = "0%"
    width_cm: float = CHART_WIDTH_CM
    height_cm: float = CHART_HEIGHT_CM


@dataclass(frozen=True)
class XYSeries:
    """A scatter series: x and y are columns of the same length on the same sheet."""

    title: str
    x: Area
    y: Area
    color: str
    secondary: bool = False  # on the right-hand value axis
    dashed: bool = False
    markers: bool = True


@dataclass(frozen=True)
class ScatterChart:
    """Points joined by lines on value axes (uneven x, such as cut-offs), with a second y axis on the right
    for series of another scale."""

    title: str
    anchor: tuple[int, int]
    series: tuple[XYSeries, ...]
    x_title: str = ""
    y_title: str = ""
    y2_title: str = ""
    x_format: str = "0"
    y_format: str = "0%"
    y2_format: str = "0%"
    width_cm: float = CHART_WIDTH_CM
    height_cm: float = CHART_HEIGHT_CM


@dataclass(frozen=True)
class Link:
    """A cell holding ``text`` that jumps to cell ``cell`` of sheet ``target`` of the same workbook."""

    row: int
    col: int
    target: str
    text: str
    cell: str = "A1"


@dataclass(frozen=True)
class Page:
    landscape: bool = True
    fit_width: int = 1  # pages across
    fit_height: int = 0  # 0: as many pages down as needed
    repeat_rows: tuple[int, int] | None = None
    repeat_cols: tuple[int, int] | None = None
    print_area: Area | None = None
    footer: str = ""  # the middle of the footer (the as-of month); the sheet's name and "page n of m" flank it
    paper: str = "A4"  # "A4" | "A3"
    row_breaks: tuple[int, ...] = ()  # rows that start a printed page (before a chart the page would cut)
    # The print area as areas printed in turn, one per page (fit.print_pages; openpyxl writes them sorted, so a
    # sheet taller than a page prints a band of columns down, then the next): the pages right of the first from the
    # repeated header row down, so the title and notes above it, which the repeated columns would print cut at their
    # edge ("Portfol"), print once. Empty: the print area as one.
    areas: tuple[Area, ...] = ()
    # Rows (first, last) a page must not cut, e.g. a transition matrix with its "MOB m → m+1" label: one that would
    # run over the bottom of a page starts the next instead (as a chart does; fit.chart_breaks).
    keep_together: tuple[tuple[int, int], ...] = ()
    # Columns a page across should start at (a group's first: a segment's Current, Recommended, Change together);
    # it steers the pages of a sheet printed as areas (`areas`), a sheet printed whole breaks where the renderer fits.
    break_before: tuple[int, ...] = ()

    @property
    def print_areas(self) -> tuple[Area, ...]:
        """What prints: the areas a page each, else the print area."""
        return self.areas or (() if self.print_area is None else (self.print_area,))


@dataclass(frozen=True, eq=False)
class SheetLayout:
    name: str
    kind: str  # what the sheet shows; the report's: mixed | curves | flags | matrices | calibration | run_info
    title: str
    segment: str | None = None
    del_type: str | None = None
    blocks: tuple[Block, ...] = ()
    formats: tuple[Format, ...] = ()
    color_scales: tuple[ColorScale, ...] = ()
    charts: tuple[LineChart | ScatterChart, ...] = ()
    links: tuple[Link, ...] = ()
    merges: tuple[Area, ...] = ()  # cells shown as one (a long note wrapped across the printed width)
    column_widths: Mapping[int, float] = field(default_factory=dict)
    row_heights: Mapping[int, float] = field(default_factory=dict)
    freeze: tuple[int, int] | None = None  # the first cell that scrolls (row, col)
    show_gridlines: bool = False
    page: Page = Page()
    tab_color: str | None = None
    autofilter: Area | None = None
    areas: Mapping[str, Area] = field(default_factory=dict)  # named parts (values, header, ...) for callers
    # The run that writes the sheet (report, backtest, risk-stress, risk-dashboard, decision, abtest, drill, ...).
    # A run replaces the sheets of its own owner, so the report's sheets and the backtest's live side by side.
    # Required: a default would let a new kind of sheet be swept away by the report's next run.
    owner: str = field(kw_only=True)

    @property
    def extent(self) -> tuple[int, int]:
        """(last row, last column) that any block or format touches."""
        rows, cols = [1], [1]
        for part in [b.area for b in self.blocks] + [f.area for f in self.formats] + list(self.merges):
            rows.append(part.last_row)
            cols.append(part.last_col)
        for link in self.links:
            rows.append(link.row)
            cols.append(link.col)
        return max(rows), max(cols)


def resolve_styles(layout: SheetLayout) -> tuple[list[Style], np.ndarray]:
    """Flatten the format layers: (palette, ids) with ids[r-1, c-1] indexing the palette (0 = unstyled).

    Each layer maps the distinct styles under its area once, so the cost grows with layers x distinct styles,
    not with cells.
    """
    n_rows, n_cols = layout.extent
    ids = np.zeros((n_rows, n_cols), dtype=np.int32)
    palette: list[Style] = [Style()]
    index: dict[Style, int] = {Style(): 0}
    for fmt in layout.formats:
        a = fmt.area
        view = ids[a.first_row - 1:a.last_row, a.first_col - 1:a.last_col]
        old, inverse = np.unique(view, return_inverse=True)
        new = np.empty(len(old), dtype=np.int32)
        for i, o in enumerate(old):
            style = fmt.style.over(palette[o])
            if style not in index:
                index[style] = len(palette)
                palette.append(style)
            new[i] = index[style]
        view[...] = new[inverse].reshape(view.shape)
    return palette, ids


def segment_colors(segments: Sequence[str], portfolio: str = "Portfolio") -> dict[str, str]:
    """The chart colour of each segment: `PORTFOLIO_COLOR` for the Portfolio, the others by the order of their
    names, so every chart of the same data shows a segment in the same colour."""
    others = sorted({s for s in segments if s != portfolio})
    colors = {s: SEGMENT_COLORS[i % len(SEGMENT_COLORS)] for i, s in enumerate(others)}
    return colors | {portfolio: PORTFOLIO_COLOR}


def business_label(name: str) -> str:
    """A code name as a reader's label: "mild_recession" -> "Mild recession" (names from the data keep their
    case beyond the first letter)."""
    text = str(name).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


# ------------------------------------------------------------------------------------------------ naming


def clean_text(value) -> str:
    """Text from the data as a cell can hold it (no control characters, at most Excel's cell length)."""
    return _CONTROL.sub("?", str(value))[:MAX_CELL_TEXT]


LISTED_NAMES = 10  # names a sheet's introduction lists before "and N more"


def listed_names(names) -> str:
    """Segment (or other) names for a sentence: the first LISTED_NAMES, then how many more."""
    names = [clean_text(n) for n in names]
    more = f" and {len(names) - LISTED_NAMES} more" if len(names) > LISTED_NAMES else ""
    return ", ".join(names[:LISTED_NAMES]) + more


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def truncate(text: str, limit: int) -> str:
    while utf16_len(text) > limit:
        text = text[:-1]
    return text.rstrip()


def sheet_stem(segment: str) -> str:
    """A segment name as the start of a sheet name: characters Excel forbids become '-'."""
    text = unicodedata.normalize("NFC", str(segment))
    text = SHEET_NAME_FORBIDDEN.sub("-", _CONTROL.sub("", text))
    text = " ".join(text.split()).strip("'").strip()
    return text or "Segment"


def unique_stems(segments: Sequence[str], limit: int) -> dict[str, str]:
    """One stem per segment, at most ``limit`` UTF-16 units, unique ignoring case (as Excel compares names).

    A stem that collides with an earlier one ("TW/Moto" and "TW:Moto", or two long names sharing a prefix) is
    shortened and numbered: "TW-Moto", "TW-Moto~2".
    """
    used: set[str] = set()
    stems = {}
    for segment in segments:
        base = sheet_stem(segment)
        stem = truncate(base, limit)
        n = 1
        while stem.casefold() in used:
            n += 1
            tag = f"~{n}"
            stem = truncate(base, limit - len(tag)) + tag
        used.add(stem.casefold())
        stems[segment] = stem
    return stems


# ---------------------------------------------------------------------------------------- shared pieces

TITLE_STYLE = Style(font=Font(size=20, bold=True, color=TITLE_COLOR), vertical="center")
SUBTITLE_STYLE = Style(font=Font(size=14, bold=True, color=TITLE_COLOR), vertical="center")
SMALL_SIZE = 10.0  # notes and legends: at the 80% a wide sheet may print at, still 8 pt on paper
NOTE_STYLE = Style(font=Font(italic=True, color=NOTE_COLOR))  # the size of the cells: wide sheets print at 75%
LINK_STYLE = Style(font=Font(color=LINK_COLOR, underline="single"))
HEADER_STYLE = Style(font=Font(bold=True), fill=HEADER_FILL, horizontal="center", vertical="center",
                     border=Border(bottom=Edge("thin", "8EA9DB")))
ROW_HEADER_STYLE = Style(font=Font(bold=True), fill=HEADER_FILL, horizontal="center")
VALUE_STYLE = Style(number_format=PERCENT, horizontal="center")
FORECAST_STYLE = Style(font=Font(italic=True, color=FORECAST_COLOR))
MIXED_STYLE = Style(font=Font(bold=True, italic=True, color=MIXED_COLOR, underline="single"))
STEP_STYLE = Style(border=Border(right=Edge("thick", STEP_COLOR), bottom=Edge("thick", STEP_COLOR)))
STEP_NOTE_STYLE = Style(font=Font(bold=True, color=STEP_COLOR))
SECTION_STYLE = Style(font=Font(size=12, bold=True, color=TITLE_COLOR))
HEADER_WRAP_STYLE = Style(wrap=True).over(HEADER_STYLE)

Column = tuple[str, str, str | None, float]  # (frame column, header, number format or None for text, width)


def text_grid(values) -> np.ndarray:
    """Rows of values as a block's 2-D array; strings cleaned to what a cell holds, short rows padded empty."""
    grid = np.empty((len(values), max((len(r) for r in values), default=0)), dtype=object)
    for i, row in enumerate(values):
        grid[i, :len(row)] = [clean_text(v) if isinstance(v, str) else v for v in row]
    return grid


def cell_block(row: int, col: int, value) -> Block:
    """One value at (row, col)."""
    return Block(row, col, text_grid([[value]]))


def frame_table(frame: pd.DataFrame, columns: Sequence[Column], top: int, left: int = 1
                ) -> tuple[list[Block], list[Format], Area]:
    """A header row at ``top`` and the frame's columns below it; returns blocks, formats and the table's area
    (header and at least one row, so an empty table still has a filter range)."""
    blocks = [Block(top, left, text_grid([[c[1] for c in columns]]))]
    last_col = left + len(columns) - 1
    formats = [Format(Area(top, left, top, last_col), HEADER_WRAP_STYLE)]
    n = len(frame)
    for j, (column, _header, number_format, _width) in enumerate(columns, start=left):
        if not n:
            continue
        values = frame[column]
        if number_format is None:
            blocks.append(Block(top + 1, j, text_grid([["" if pd.isna(v) else str(v)] for v in values])))
        else:
            blocks.append(Block(top + 1, j, values.to_numpy(dtype=np.float64, na_value=np.nan).reshape(-1, 1)))
            formats.append(Format(Area(top + 1, j, top + n, j), Style(number_format=number_format)))
    return blocks, formats, Area(top, left, top + max(n, 1), last_col)


def widths_of(columns: Sequence[Column], left: int = 1) -> dict[int, float]:
    return {j: c[3] for j, c in enumerate(columns, start=left)}


def runs(mask: np.ndarray) -> np.ndarray:
    """(row, first_col, last_col) of every horizontal run of True in a 2-D mask, 0-based."""
    if mask.size == 0:
        return np.empty((0, 3), dtype=np.int64)
    edges = np.diff(np.pad(mask.astype(np.int8), ((0, 0), (1, 1))), axis=1)
    starts = np.argwhere(edges == 1)  # argwhere is row-major, so starts and ends pair up
    ends = np.argwhere(edges == -1)
    return np.column_stack([starts[:, 0], starts[:, 1], ends[:, 1] - 1])


# Advance widths of the printable ASCII characters (" " to "~") in 1/1000 em, regular and bold, of Carlito: the
# metric twin of Calibri, Excel's default font and what LibreOffice renders it with. Other characters: their base
# letter (Vietnamese marks add no width), 1 em for East Asian wide ones, else an average letter.
_ADVANCE = {
    False: (226, 326, 401, 498, 507, 715, 682, 221, 303, 303, 498, 498, 250, 306, 252, 386, 507, 507, 507, 507, 507,
            507, 507, 507, 507, 507, 268, 268, 498, 498, 498, 463, 894, 579, 544, 533, 615, 488, 459, 631, 623, 252,
            319, 520, 420, 855, 646, 662, 517, 673, 543, 459, 487, 642, 567, 890, 519, 487, 468, 307, 386, 307, 498,
            498, 291, 479, 525, 423, 525, 498, 305, 471, 525, 229, 239, 455, 229, 799, 525, 527, 525, 525, 349, 391,
            335, 525, 452, 715, 433, 453, 395, 314, 460, 314, 498),
    True: (226, 326, 438, 498, 507, 729, 705, 233, 312, 312, 498, 498, 258, 306, 267, 430, 507, 507, 507, 507, 507,
           507, 507, 507, 507, 507, 276, 276, 498, 498, 498, 463, 898, 606, 561, 529, 630, 488, 459, 637, 631, 267,
           331, 547, 423, 874, 659, 676, 532, 686, 563, 473, 495, 653, 591, 906, 551, 520, 478, 325, 430, 325, 498,
           498, 300, 494, 537, 418, 537, 503, 316, 474, 537, 246, 255, 480, 246, 813, 537, 538, 537, 537, 355, 399,
           347, 537, 473, 745, 459, 474, 397, 344, 475, 344, 498),
}
_OTHER_ADVANCE = 560
PX_PER_UNIT = 7.0  # a column-width unit: the widest digit of Calibri 11 at 96 dpi
CELL_PADDING_PX = 7.0  # Excel's margins inside a cell, and a little room for renderers that set text wider
POINTS_PER_UNIT = PX_PER_UNIT * 72 / 96
DEFAULT_SIZE = 11.0
DEFAULT_WIDTH = 8.43


def _advance(ch: str, bold: bool) -> int:
    code = ord(ch)
    if 32 <= code < 127:
        return _ADVANCE[bold][code - 32]
    if unicodedata.combining(ch):
        return 0
    base = unicodedata.normalize("NFD", ch)[0]
    if base != ch and 32 <= ord(base) < 127:
        return _ADVANCE[bold][ord(base) - 32]
    return 1000 if unicodedata.east_asian_width(ch) in ("W", "F") else _OTHER_ADVANCE


MONO_FONTS = frozenset({"Consolas", "Courier New", "Lucida Console"})
MONO_ADVANCE = 602  # Consolas, and the DejaVu Sans Mono LibreOffice draws it with where Consolas is missing


def text_points(text: str, size: float = DEFAULT_SIZE, bold: bool = False, font: str | None = None) -> float:
    """The width of one line of text in points, in Calibri (Carlito), or a monospace ``font``, of ``size``."""
    if font in MONO_FONTS:
        return len(text) * MONO_ADVANCE * size / 1000
    return sum(_advance(ch, bold) for ch in text) * size / 1000


def text_width(text: str, size: float = DEFAULT_SIZE, bold: bool = False, font: str | None = None) -> float:
    """The column width (Excel's units) a cell needs to show ``text`` on one line, padding included."""
    return (text_points(text, size, bold, font) * 96 / 72 + CELL_PADDING_PX) / PX_PER_UNIT


def line_height(size: float = DEFAULT_SIZE) -> float:
    """A text line's height in points as Excel sizes rows (15 pt for 11 pt Calibri)."""
    return math.ceil(size * 15 / 11 * 4) / 4


def wrap_lines(text: str, width: float, size: float = DEFAULT_SIZE, bold: bool = False,
               font: str | None = None) -> list[str]:
    """``text`` broken into lines that fit a cell ``width`` units wide (at spaces; a word too long for a line
    on its own is broken where it must be)."""
    room = (width * PX_PER_UNIT - CELL_PADDING_PX) * 72 / 96

    def fits(part: str) -> bool:
        return text_points(part, size, bold, font) <= room

    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if fits(candidate) or not line and not word:
                line = candidate
                continue
            if line:
                lines.append(line)
            while not fits(word) and len(word) > 1:
                cut = max([i for i in range(1, len(word)) if fits(word[:i])] or [1])
                lines.append(word[:cut])
                word = word[cut:]
            line = word
        lines.append(line)
    return lines


_LITERAL = re.compile(r'"([^"]*)"|\\(.)')


def display_text(value, number_format: str | None = None) -> str:
    """A value as Excel shows it under the number formats the sheets use (percent, thousands, fixed decimals,
    signed sections, quoted literals); text as it is."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    x = float(value)
    if not math.isfinite(x):
        return "#NUM!"
    fmt = number_format or "General"
    condition = re.match(r"\[([<>]=?)([\d.]+)\]", fmt)
    if condition:  # [<0.001]"<0.001";0.000: the first section where the condition holds, else the second
        op, limit = condition.group(1), float(condition.group(2))
        holds = {"<": x < limit, "<=": x <= limit, ">": x > limit, ">=": x >= limit}[op]
        first, _, rest = fmt[condition.end():].partition(";")
        return display_text(x, first if holds else rest or "General")
    if fmt == "General":
        return f"{x:.10g}" if not x.is_integer() or abs(x) >= 1e11 else str(int(x))
    sections = fmt.split(";")
    if x < 0 and len(sections) > 1:
        section, x, sign = sections[1], -x, ""
    elif x == 0 and len(sections) > 2:
        section, sign = sections[2], ""
    else:
        section, sign = sections[0], "-" if x < 0 else ""
        x = abs(x)
    literals = []
    code = _LITERAL.sub(lambda m: literals.append(m.group(1) if m.group(1) is not None else m.group(2)) or "\0",
                        section)
    if "%" in code:
        x *= 100
    digits = re.search(r"[0#?,.]+", code)
    if digits is None:
        return code.replace("\0", "".join(literals))
    spec = digits.group(0)
    decimals = len(spec.split(".")[1]) if "." in spec else 0
    number = f"{x:,.{decimals}f}" if "," in spec else f"{x:.{decimals}f}"
    prefix, suffix = code[:digits.start()], code[digits.end():]
    out = sign + prefix + number + suffix
    for literal in literals:
        out = out.replace("\0", literal, 1)
    return out


def columns_spanning(widths: Mapping[int, float], units: float, first: int = 1, default: float = 8.43) -> int:
    """The last column a text or picture ``units`` wide reaches when it starts in column ``first``."""
    col, total = first - 1, 0.0
    while total < units:
        col += 1
        total += widths.get(col, default)
    return col


def cm_to_units(cm: float) -> float:
    return (cm / 2.54 * 96 - 5) / 7  # Excel: ~7 px per width unit at 96 dpi


def legend_cells(items: Sequence[tuple[str, Style]], widths: Mapping[int, float], last_col: int, overflow_row: int
            ) -> tuple[list[Block], list[Format], int]:
    """Legend entries side by side on row 2 (each spills over the empty cells to its right) as far as the table
    is wide; the rest one per row from ``overflow_row`` down, so the legend never widens the printed page.
    Returns the blocks, formats and the last row used."""
    blocks, formats = [], []
    col: int | None = 1
    below, last_row = overflow_row, 2
    for text, style in items:
        font = style.font or Font()
        end = columns_spanning(widths, text_width(text, font.size or DEFAULT_SIZE, bool(font.bold)) + 1,
                               first=col or 1)
        if col is not None and (end <= last_col or col == 1):
            row, at, col = 2, col, end + 1
        else:
            col = None  # once one entry went below the table, the rest follow it, in order
            row, at, below = below, 1, below + 1
        blocks.append(cell_block(row, at, text))
        formats.append(Format(Area.cell(row, at), style))
        last_row = max(last_row, row)
    return blocks, formats, last_row


