"""Renderers: sheet layouts (pyxl_del.sheets.report) into a workbook.

`render_openpyxl(layouts, workbook)` writes into an openpyxl Workbook, new or loaded with ``keep_vba=True``;
`write_workbook(layouts, path)` is how every command writes sheets to a file: a new .xlsx, replaced atomically
(`write_report(result, path)` is it for the report).

The seam for a live workbook: a renderer is any callable ``(layouts, workbook) -> None`` that honours the
contract written in pyxl_del.sheets.report (blocks are values, strings are never formulas, formats are ordered layers,
colour scales are conditional formats, charts read cells of their own sheet) and the ownership rule below.
pyxl_del.excel.workbook.XlwingsBook gives live Excel the very sheets of this renderer by copying them from a rendered
scratch workbook.

Ownership: every sheet a renderer writes carries the hidden sheet-scoped name ``OWNER_NAME`` whose value records
the layout's ``owner`` (the run that wrote it: report, backtest, risk-stress, ...), the workbook's id (the hidden
workbook-level name ``WORKBOOK_ID_NAME``, made on the first write) and the sheet's name as written. A sheet is
pyxl_del's only while all three hold: a sheet the user renamed, a copy ("Move or Copy" takes the marker along:
the copy has another name), and a sheet copied into another workbook (another id) are the user's, never replaced
or deleted. A later run replaces the owned sheets of its own owners and those with its sheets' names
(`plan_replacement`), writing the new sheets where the first replaced one was, so other runs' sheets, the user's
own sheets, VBA and named ranges elsewhere in the workbook are left alone.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from openpyxl import Workbook
from openpyxl.cell.cell import Cell
from openpyxl.chart import LineChart, Reference, ScatterChart
from openpyxl.chart import Series as XYSeries
from openpyxl.chart.legend import LegendEntry
from openpyxl.chart.series import SeriesLabel
from openpyxl.chart.shapes import GraphicalProperties
from openpyxl.chart.text import RichText, Text
from openpyxl.chart.title import Title
from openpyxl.drawing.text import (
    CharacterProperties,
    Paragraph,
    ParagraphProperties,
    RegularTextRun,
)
from openpyxl.formatting.rule import ColorScaleRule
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.styles.cell_style import StyleArray
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet.hyperlink import Hyperlink
from openpyxl.worksheet.page import PageMargins
from openpyxl.worksheet.pagebreak import Break
from openpyxl.worksheet.worksheet import Worksheet

from pyxl_del import __version__
from pyxl_del.engine.errors import InputError, OutputError, counted
from pyxl_del.engine.files import atomic_replace
from pyxl_del.engine.pipeline import DelResult
from pyxl_del.sheets import report
from pyxl_del.sheets.layout import (
    DEFAULT_SIZE,
    LINK_STYLE,
    OWNER_NAME,
    ColorScale,
    Edge,
    Page,
    SheetLayout,
    Style,
    column_letter,
    resolve_styles,
)
from pyxl_del.sheets.layout import LineChart as LineChartSpec
from pyxl_del.sheets.layout import ScatterChart as ScatterChartSpec

log = logging.getLogger(__name__)

Renderer = Callable[[Sequence[SheetLayout], object], None]


class SheetConflictError(InputError):
    """The workbook already has a sheet of that name which pyxl_del did not write; it is left untouched."""


WORKBOOK_ID_NAME = "pyxl_del_workbook"  # hidden workbook-level name: the id the markers of this workbook carry


def formula_text(value: str) -> str:
    """``value`` as a defined name's string constant (``"..."``, quotes doubled)."""
    return '"' + value.replace('"', '""') + '"'


def constant_text(formula: str | None) -> str | None:
    """The string a defined name holds (``"x"`` or ``="x"``, as openpyxl or Excel show it); None if it holds none."""
    text = (formula or "").strip().removeprefix("=").strip()
    if len(text) < 2 or not (text.startswith('"') and text.endswith('"')):
        return None
    return text[1:-1].replace('""', '"')


def marker(owner: str, workbook_id: str, sheet_name: str) -> str:
    """An OWNER_NAME marker's value: who wrote the sheet, in which workbook, under which name."""
    return formula_text(f"{owner}|{workbook_id}|{sheet_name}")


def owner_of(marker_formula: str, sheet_name: str, workbook_id: str | None) -> str | None:
    """The owner a marker records, if it marks ``sheet_name`` of the workbook ``workbook_id``; None otherwise (a
    renamed sheet, a copy, a sheet from another workbook or an earlier marker format)."""
    parts = (constant_text(marker_formula) or "").split("|", 2)
    if workbook_id is None or len(parts) != 3:
        return None
    owner, wid, name = parts
    return owner if wid == workbook_id and name == sheet_name else None


def new_workbook_id() -> str:
    return secrets.token_hex(6)


def workbook_id_of(workbook: Workbook) -> str | None:
    defined = workbook.defined_names.get(WORKBOOK_ID_NAME)
    return None if defined is None else constant_text(defined.attr_text)


def owned_sheets(workbook: Workbook) -> list[Worksheet]:
    wid = workbook_id_of(workbook)
    return [ws for ws in workbook.worksheets if OWNER_NAME in ws.defined_names
            and owner_of(ws.defined_names[OWNER_NAME].attr_text, ws.title, wid) is not None]


def sheet_owners(workbook: Workbook) -> dict[str, str]:
    """Sheets pyxl_del wrote, in tab order: name -> owner."""
    wid = workbook_id_of(workbook)
    return {ws.title: owner_of(ws.defined_names[OWNER_NAME].attr_text, ws.title, wid)
            for ws in owned_sheets(workbook)}


def plan_replacement(sheet_names: Sequence[str], own: dict[str, str],
                     layouts: Sequence[SheetLayout]) -> list[str]:
    """The owned sheets (``own``: name -> owner) the layouts replace, in tab order: those of the layouts' owners (so
    a report drops the sheets of a segment no longer in the data) and those with a layout's name. Raises
    SheetConflictError when a sheet pyxl_del did not write has a layout's name (compared as Excel does, ignoring
    case)."""
    new = {sheet.name.casefold() for sheet in layouts}
    owners = {sheet.owner for sheet in layouts}
    clashes = [s for s in sheet_names if s not in own and s.casefold() in new]
    if clashes:
        raise SheetConflictError(
            f"the workbook already has sheets named {', '.join(map(repr, clashes))} that pyxl_del did not write (or "
            f"that were renamed, copied or brought from another workbook, and so are yours now); rename or delete "
            f"them and run again")
    return [s for s in sheet_names if s in own and (own[s] in owners or s.casefold() in new)]


def render_openpyxl(layouts: Sequence[SheetLayout], workbook: Workbook, *,
                    workbook_id: str | None = None) -> list[Worksheet]:
    """Write the layouts into ``workbook``, replacing the sheets `plan_replacement` names; returns the new sheets.
    The markers carry the workbook's id (``workbook_id``, else the workbook's own, else a new one it is given).

    Raises SheetConflictError (before changing anything) if a layout's name is taken by a sheet pyxl_del does
    not own.
    """
    replaced = set(plan_replacement(workbook.sheetnames, sheet_owners(workbook), layouts))
    wid = workbook_id or workbook_id_of(workbook) or new_workbook_id()
    workbook.defined_names[WORKBOOK_ID_NAME] = DefinedName(WORKBOOK_ID_NAME, attr_text=formula_text(wid), hidden=True)
    old = [ws for ws in workbook.worksheets if ws.title in replaced]
    position = workbook.worksheets.index(old[0]) if old else len(workbook.worksheets)
    for ws in old:
        workbook.remove(ws)
    styles = _StyleCache(workbook)
    written = []
    for i, sheet in enumerate(layouts):
        ws = workbook.create_sheet(sheet.name, index=position + i)
        ws.defined_names[OWNER_NAME] = DefinedName(OWNER_NAME, attr_text=marker(sheet.owner, wid, ws.title),
                                                   hidden=True)
        _render_sheet(ws, sheet, styles)
        written.append(ws)
    if written:
        for ws in workbook.worksheets:
            ws.sheet_view.tabSelected = False
        workbook.active = workbook.worksheets.index(written[0])
        written[0].sheet_view.tabSelected = True
    return written


def _author_and_title(path: Path) -> tuple[str | None, str | None]:
    """(creator, title) of an .xlsx's document properties; (None, None) when it is no .xlsx."""
    import zipfile
    from xml.etree import ElementTree

    dc = "{http://purl.org/dc/elements/1.1/}"
    try:
        with zipfile.ZipFile(path) as archive:
            core = ElementTree.fromstring(archive.read("docProps/core.xml"))
    except (OSError, KeyError, zipfile.BadZipFile, ElementTree.ParseError):
        return None, None
    return core.findtext(f"{dc}creator"), core.findtext(f"{dc}title")


def _foreign_sheets(path: Path) -> list[str]:
    """The sheets of an .xlsx that carry no marker of pyxl_del's (`owner_of`): added, renamed or copied by the user.
    Read from xl/workbook.xml alone (sheet-scoped names are kept there), not by loading the workbook."""
    import zipfile
    from xml.etree import ElementTree

    ns = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
    try:
        with zipfile.ZipFile(path) as archive:
            book = ElementTree.fromstring(archive.read("xl/workbook.xml"))
    except (OSError, KeyError, zipfile.BadZipFile, ElementTree.ParseError):
        return []
    names = [sheet.get("name", "") for sheet in book.iter(f"{ns}sheet")]
    defined = list(book.iter(f"{ns}definedName"))
    wid = next((constant_text(d.text) for d in defined
                if d.get("name") == WORKBOOK_ID_NAME and d.get("localSheetId") is None), None)
    owned = {int(d.get("localSheetId")) for d in defined
             if d.get("name") == OWNER_NAME and (d.get("localSheetId") or "").isdigit()
             and int(d.get("localSheetId")) < len(names)
             and owner_of(d.text or "", names[int(d.get("localSheetId"))], wid) is not None}
    return [name for i, name in enumerate(names) if i not in owned]


def _check_replaceable(path: Path, title: str | None) -> None:
    """A file at ``path`` is replaced only by the output it holds: a workbook pyxl_del wrote (its author) with the
    same document title, and no sheet of the user's in it. Never the panel the run read (`report data.xlsx --out
    data.xlsx`), a workbook of the user's own, another command's workbook (`el --out report.xlsx` would leave 2 of
    its 26 sheets), or a report the user added notes to (the next nightly run would have dropped them)."""
    if not path.is_file():
        return
    author, found = _author_and_title(path)
    advice = "it is left as it is; write to another path, or move the file first"
    if not (author or "").startswith("pyxl_del"):
        who = "it is not an .xlsx workbook" if author is None and found is None else f"its author is {author!r}"
        raise OutputError(f"{path} exists and pyxl_del did not write it ({who}): {advice}")
    if found != title:
        raise OutputError(f"{path} holds pyxl_del's {found!r}, not this command's {title!r}: {advice}")
    foreign = _foreign_sheets(path)
    if foreign:
        shown = ", ".join(repr(name) for name in foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5
                                                                 else "")
        raise OutputError(f"{path} holds {counted(len(foreign), 'sheet')} pyxl_del did not write ({shown}): replacing "
                          f"the file would lose them, so {advice}")


def write_workbook(layouts: Sequence[SheetLayout], path: str | Path, *, title: str | None = None) -> Path:
    """The layouts as a new .xlsx at ``path``; the file is replaced in one rename, or not at all, and only when it
    holds the same output (`_check_replaceable`). ``title`` is the file's document title (default: the first
    sheet's)."""
    path = Path(path)
    if path.suffix.lower() != ".xlsx":
        raise OutputError(
            f"cannot write {path}: pyxl_del writes a new .xlsx workbook (a macro workbook keeps its ribbon only "
            f"when the ribbon writes into it: pyxl-del ribbon ACTION --workbook FILE.xlsm); use a path ending in "
            f".xlsx")
    title = title or (layouts[0].title if layouts else None)
    _check_replaceable(path, title)
    started = time.perf_counter()
    workbook = Workbook()
    workbook.remove(workbook.active)
    render_openpyxl(layouts, workbook)
    workbook.properties.creator = f"pyxl_del {__version__}"
    workbook.properties.title = title
    with atomic_replace(path) as tmp:
        try:
            workbook.save(tmp)
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    log.info("wrote %s: %d sheets in %.2f s", path, len(layouts), time.perf_counter() - started)
    return path


def write_report(result: DelResult, path: str | Path) -> Path:
    """The formatted report as a new .xlsx at ``path`` (see `write_workbook`)."""
    return write_workbook(report.build_layouts(result), path, title="DEL30/60/90 actual & forecast")


# ------------------------------------------------------------------------------------------------ styles


class _StyleCache:
    """Style -> openpyxl StyleArray, registered once per workbook.

    Assigning font/fill/border objects cell by cell makes openpyxl hash and look up each object per cell;
    copying a ready StyleArray (the workbook's style ids) costs one small array copy.
    """

    def __init__(self, workbook: Workbook):
        self.workbook = workbook
        self._arrays: dict[Style, StyleArray] = {}

    def array(self, style: Style) -> StyleArray:
        found = self._arrays.get(style)
        if found is None:
            found = self._arrays[style] = self._register(style)
        return found

    def _register(self, style: Style) -> StyleArray:
        # A detached cell of any sheet reaches the workbook's style tables through the public setters.
        cell = Cell(self.workbook.worksheets[0])
        # Every cell gets its font, so the sheets look the same in a workbook whose default font differs.
        f = style.font or Font()
        cell.font = Font(name=f.name or "Calibri", sz=f.size or DEFAULT_SIZE, b=bool(f.bold), i=bool(f.italic),
                         color=_argb(f.color), u=f.underline)
        if style.fill is not None:
            cell.fill = PatternFill(fill_type="solid", fgColor=_argb(style.fill), bgColor=_argb(style.fill))
        if style.border is not None:
            b = style.border
            cell.border = Border(**{side: _side(getattr(b, side)) for side in ("left", "right", "top", "bottom")})
        if style.number_format is not None:
            cell.number_format = style.number_format
        if any(v is not None for v in (style.horizontal, style.vertical, style.wrap, style.indent)):
            cell.alignment = Alignment(horizontal=style.horizontal, vertical=style.vertical,
                                       wrap_text=style.wrap, indent=style.indent or 0)
        return StyleArray(cell._style)


def _argb(color: str | None) -> str | None:
    # Opaque alpha: openpyxl would prefix "00" (transparent), which some readers take literally.
    return None if color is None else "FF" + color


def _side(edge: Edge | None) -> Side:
    return Side() if edge is None else Side(style=edge.style, color=_argb(edge.color))


# ------------------------------------------------------------------------------------------------ sheets


def _render_sheet(ws: Worksheet, sheet: SheetLayout, styles: _StyleCache) -> None:
    palette, ids = resolve_styles(sheet)
    arrays = [styles.array(s) for s in palette]
    cells = ws._cells  # filling the cell dict directly: ws.cell() per cell is several times slower
    for block in sheet.blocks:
        style_rows = ids[block.row - 1:block.row - 1 + block.values.shape[0],
                         block.col - 1:block.col - 1 + block.values.shape[1]].tolist()
        for r, (values, style_ids) in enumerate(zip(block.values.tolist(), style_rows), start=block.row):
            for c, (value, sid) in enumerate(zip(values, style_ids), start=block.col):
                if value is None or value != value:  # empty, or NaN
                    continue
                if type(value) is float or type(value) is int:
                    # Numbers skip openpyxl's type sniffing, the costliest part of creating a cell.
                    cell = Cell(ws, row=r, column=c, style_array=arrays[sid])
                    cell._value = value
                else:
                    cell = Cell(ws, row=r, column=c, value=value, style_array=arrays[sid])
                    if isinstance(value, str):
                        cell.data_type = "s"  # text from the data stays text even when it starts with "="
                cells[(r, c)] = cell
    # Styled cells without a value (e.g. a staircase edge on an empty cell) still need their formats.
    for r, c in zip(*ids.nonzero(), strict=True):
        key = (int(r) + 1, int(c) + 1)
        if key not in cells:
            cells[key] = Cell(ws, row=key[0], column=key[1], style_array=arrays[ids[r, c]])
    for link in sheet.links:
        cell = Cell(ws, row=link.row, column=link.col, value=link.text,
                    style_array=styles.array(LINK_STYLE.over(palette[_style_id(ids, link.row, link.col)])))
        cell.data_type = "s"
        target = "'" + link.target.replace("'", "''") + "'!" + link.cell
        cell.hyperlink = Hyperlink(ref=cell.coordinate, location=target, display=link.text)
        cells[(link.row, link.col)] = cell
    for area in sheet.merges:
        ws.merge_cells(area.ref)

    for col, width in sheet.column_widths.items():
        ws.column_dimensions[column_letter(col)].width = width
    for row, height in sheet.row_heights.items():
        ws.row_dimensions[row].height = height
    ws.sheet_view.showGridLines = sheet.show_gridlines
    if sheet.freeze is not None:
        ws.freeze_panes = f"{column_letter(sheet.freeze[1])}{sheet.freeze[0]}"
    if sheet.tab_color:
        ws.sheet_properties.tabColor = sheet.tab_color
    if sheet.autofilter is not None:
        ws.auto_filter.ref = sheet.autofilter.ref
    for scale in sheet.color_scales:
        ws.conditional_formatting.add(scale.area.ref, _color_scale_rule(scale))
    for chart in sheet.charts:
        drawn = _scatter_chart(ws, chart) if isinstance(chart, ScatterChartSpec) else _line_chart(ws, chart)
        ws.add_chart(drawn, f"{column_letter(chart.anchor[1])}{chart.anchor[0]}")
    _page_setup(ws, sheet.page)


def _style_id(ids, row: int, col: int) -> int:
    return int(ids[row - 1, col - 1]) if row <= ids.shape[0] and col <= ids.shape[1] else 0


def _color_scale_rule(scale: ColorScale) -> ColorScaleRule:
    if len(scale.colors) == 3:
        low, mid, high = scale.colors
        return ColorScaleRule(start_type="min", start_color=_argb(low), mid_type="percentile", mid_value=50,
                              mid_color=_argb(mid), end_type="max", end_color=_argb(high))
    low, high = scale.colors
    return ColorScaleRule(start_type="min", start_color=_argb(low), end_type="max", end_color=_argb(high))


def _page_setup(ws: Worksheet, page: Page) -> None:
    ws.page_setup.orientation = "landscape" if page.landscape else "portrait"
    ws.page_setup.paperSize = ws.PAPERSIZE_A3 if page.paper == "A3" else ws.PAPERSIZE_A4
    # A sheet printed as areas, one a page (Page.areas), fits each to one page wide: Excel and LibreOffice print
    # them all at the scale of the widest.
    ws.page_setup.fitToWidth = 1 if page.areas else page.fit_width
    ws.page_setup.fitToHeight = page.fit_height
    if page.fit_width > 1 and not page.areas:
        # A table's right part prints next after its left part: "down, then over" (the default) put a segment's
        # Recommended and Change columns, or the backtest's Winner column, pages after the rows they belong to.
        ws.page_setup.pageOrder = "overThenDown"
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.page_margins = PageMargins(left=0.4, right=0.4, top=0.5, bottom=0.6, header=0.25, footer=0.3)
    for part, text in ((ws.oddFooter.left, "&A"), (ws.oddFooter.center, page.footer),
                       (ws.oddFooter.right, "Page &P of &N")):
        if text:
            part.text = text.replace("&", "&&") if part is ws.oddFooter.center else text
            part.size = DEFAULT_SIZE  # the footer scales with the page, as the cells do
    if page.repeat_rows:
        ws.print_title_rows = f"{page.repeat_rows[0]}:{page.repeat_rows[1]}"
    if page.repeat_cols:
        a, b = (column_letter(c) for c in page.repeat_cols)
        ws.print_title_cols = f"{a}:{b}"
    if page.print_area is not None:
        ws.print_area = [area.ref for area in page.print_areas]
    for row in page.row_breaks:
        ws.row_breaks.append(Break(id=row - 1))  # a break after row - 1: the page starts at row


def _chart_title(text: str, size_pt: int = 12) -> Title:
    font = CharacterProperties(sz=size_pt * 100, b=True)
    paragraph = Paragraph(pPr=ParagraphProperties(defRPr=font), r=[RegularTextRun(rPr=font, t=text)])
    return Title(tx=Text(rich=RichText(p=[paragraph])), overlay=False)


def _line_chart(ws: Worksheet, spec: LineChartSpec) -> LineChart:
    chart = LineChart()
    chart.title = _chart_title(spec.title)
    chart.width, chart.height = spec.width_cm, spec.height_cm
    chart.y_axis.title = spec.y_title
    chart.x_axis.title = spec.x_title
    chart.y_axis.number_format = spec.y_format
    # openpyxl 3.1 writes axes as deleted unless told otherwise, and Excel then hides them.
    chart.x_axis.delete = False
    chart.y_axis.delete = False
    n_categories = spec.categories.shape[0] * spec.categories.shape[1]
    chart.x_axis.tickLblSkip = max(1, math.ceil(n_categories / 13))  # about a dozen MOB labels
    chart.legend.position = "r"
    chart.display_blanks = "gap"
    hidden = []
    for i, s in enumerate(spec.series):
        a = s.values
        ref = Reference(ws, min_col=a.first_col, min_row=a.first_row, max_col=a.last_col, max_row=a.last_row)
        chart.add_data(ref, titles_from_data=False)
        series = chart.series[-1]
        series.tx = SeriesLabel(v=s.title)
        series.smooth = False
        # A line needs two points: with one category (a book of one cohort) a chart without markers was empty.
        series.marker.symbol = "circle" if n_categories == 1 else "none"
        if n_categories == 1:
            series.marker.graphicalProperties = GraphicalProperties(solidFill=s.color)
            series.marker.graphicalProperties.line.solidFill = s.color
        line = series.graphicalProperties.line
        line.solidFill = s.color
        line.width = 9525 if s.band else 22225  # 0.75 / 1.75 pt in EMU
        line.prstDash = "sysDot" if s.band else "dash" if s.dashed else "solid"
        if not s.in_legend:
            hidden.append(LegendEntry(idx=i, delete=True))
    c = spec.categories
    chart.set_categories(Reference(ws, min_col=c.first_col, min_row=c.first_row, max_col=c.last_col,
                                   max_row=c.last_row))
    chart.legend.legendEntry = hidden
    return chart


def _axis_title(axis, text: str) -> None:
    axis.title = text or None
    axis.delete = False  # openpyxl 3.1 writes axes as deleted unless told otherwise


def _scatter_chart(ws: Worksheet, spec: ScatterChartSpec) -> ScatterChart:
    """Points joined by straight lines on value axes; series marked ``secondary`` on a second chart sharing the
    x axis, with its value axis on the right."""
    charts = []
    for secondary in (False, True):
        chosen = [s for s in spec.series if s.secondary == secondary]
        if not chosen:
            continue
        chart = ScatterChart()
        chart.style = 13
        for s in chosen:
            x, y = s.x, s.y
            series = XYSeries(Reference(ws, min_col=y.first_col, min_row=y.first_row, max_col=y.last_col,
                                        max_row=y.last_row),
                              Reference(ws, min_col=x.first_col, min_row=x.first_row, max_col=x.last_col,
                                        max_row=x.last_row), title=s.title)
            series.smooth = False
            series.marker.symbol = "circle" if s.markers else "none"
            series.marker.size = 5
            series.marker.graphicalProperties.solidFill = s.color
            series.marker.graphicalProperties.line.solidFill = s.color
            line = series.graphicalProperties.line
            line.solidFill = s.color
            line.width = 22225
            line.prstDash = "dash" if s.dashed else "solid"
            chart.series.append(series)
        charts.append((secondary, chart))
    main = charts[0][1]
    main.title = _chart_title(spec.title)
    main.width, main.height = spec.width_cm, spec.height_cm
    main.legend.position = "b"
    _axis_title(main.x_axis, spec.x_title)
    main.x_axis.number_format = spec.x_format
    main.x_axis.axPos = "b"  # openpyxl's scatter x axis says "l", which LibreOffice draws along the top
    main.x_axis.majorGridlines = None
    _axis_title(main.y_axis, spec.y_title)
    main.y_axis.number_format = spec.y_format
    if len(charts) == 2 and not charts[0][0]:
        right = charts[1][1]
        right.y_axis.axId = 200
        _axis_title(right.y_axis, spec.y2_title)
        right.y_axis.number_format = spec.y2_format
        right.y_axis.crosses = "max"
        right.y_axis.axPos = "r"
        right.y_axis.majorGridlines = None
        right.x_axis = main.x_axis  # one x axis: the second chart only adds its value axis on the right
        main += right
    return main
