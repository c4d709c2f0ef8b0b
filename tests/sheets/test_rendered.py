"""Every kind of workbook as a credit officer gets it: written, rendered once per session with LibreOffice (PDF), and
checked for what a person sees: it opens on a Summary whose links work, each sheet links back, prints with its
as-of month in the footer, headers repeat on every page, no type on paper below 8 pt, no text cut by its cell, and
each segment in the same colour in every chart.

The checkers only read the files (openpyxl, the PDF), measure text with the font LibreOffice draws (Carlito, the
metric twin of Calibri) and are each shown failing on a broken workbook.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from openpyxl.utils import column_index_from_string, get_column_letter

import pyxl_del
from pyxl_del.backtest.rolling import backtest
from pyxl_del.decision.abtest import simulate
from pyxl_del.decision.dashboard import Dashboard
from pyxl_del.decision.optimise import optimise
from pyxl_del.decision.twin import fit_twin
from pyxl_del.engine.data import PORTFOLIO, read_panel, validate_panel
from pyxl_del.engine.loans import loans_in_panel
from pyxl_del.excel.render import write_workbook
from pyxl_del.risk.analysis import RiskAnalysis
from pyxl_del.sheets import abtest, decision, drilldown, report, risk
from pyxl_del.sheets.backtest import backtest_sheets
from pyxl_del.sheets.layout import PORTFOLIO_COLOR, display_text, segment_colors

pymupdf = pytest.importorskip("pymupdf")
CARLITO = Path("/usr/share/fonts/truetype/crosextra")
MIN_PT = 8.0
PX_PER_UNIT = 7.0  # Excel's column-width unit at 96 dpi
PADDING_PX = 5.0
KINDS = ("report", "backtest", "risk", "stress", "decisions", "abtest", "drill")

needs_office = pytest.mark.skipif(shutil.which("soffice") is None or shutil.which("pdftotext") is None,
                                  reason="LibreOffice (soffice) and poppler are not installed")


# ----------------------------------------------------------------------------------------------- workbooks


@pytest.fixture(scope="session")
def scored_panel() -> pd.DataFrame:
    from pyxl_del.datasets.sample import generate_sample

    return generate_sample(n_cohorts=18, loans_per_cohort=120, score=True)


@pytest.fixture(scope="session")
def workbooks(tmp_path_factory, scored_panel) -> dict[str, Path]:
    """One workbook of each kind, as the CLI and the ribbon write them."""
    folder = tmp_path_factory.mktemp("kinds")
    config = pyxl_del.Config().with_overrides(forecast={"max_mob": 18})
    result = pyxl_del.run(scored_panel, config)
    analysis = RiskAnalysis.of(result, config, data=scored_panel)
    twin = fit_twin(scored_panel, config)
    frame, _ = read_panel(scored_panel, config)
    panel = validate_panel(frame, config, "panel")
    cell = loans_in_panel(panel, frame[config["loan_id"]], config, "CD", result.cohorts[2], 6)
    layouts = {
        "report": report.build_layouts(result),
        "backtest": backtest_sheets(backtest(scored_panel, config, origins=2, horizon=4)),
        "risk": risk.dashboard_sheets(result, config, dashboard=Dashboard(analysis)),
        "stress": risk.stress_sheets(result, config, analysis=analysis),
        "decisions": decision.decision_layouts(optimise(twin), result.as_of),
        "abtest": abtest.simulation_book(simulate(twin, months=3), as_of=result.as_of),
        "drill": drilldown.drill_book(cell),
    }
    return {kind: write_workbook(sheets, folder / f"{kind}.xlsx") for kind, sheets in layouts.items()}


def render(paths: list[Path], folder: Path) -> dict[str, Path]:
    profile = folder / "lo_profile"
    subprocess.run(["soffice", f"-env:UserInstallation={profile.as_uri()}", "--headless", "--convert-to", "pdf",
                    "--outdir", str(folder), *map(str, paths)], check=True, capture_output=True, timeout=600)
    return {p.stem: folder / f"{p.stem}.pdf" for p in paths}


@pytest.fixture(scope="session")
def pdfs(workbooks, tmp_path_factory) -> dict[str, Path]:
    if shutil.which("soffice") is None:
        pytest.skip("LibreOffice (soffice) is not installed")
    return render(list(workbooks.values()), tmp_path_factory.mktemp("pdf"))


# ----------------------------------------------------------------------------------------------- checkers


def links_of(ws) -> list[tuple[str, str]]:
    """(cell, target sheet) of every internal hyperlink on a sheet."""
    out = []
    for row in ws.iter_rows():
        for c in row:
            if c.hyperlink is not None and c.hyperlink.location:
                out.append((c.coordinate, c.hyperlink.location.rsplit("!", 1)[0].strip("'").replace("''", "'")))
    return out


def check_summary_and_links(wb) -> list[str]:
    problems = []
    first = wb.worksheets[0]
    if "summary" not in first.title.lower() or wb.active.title != first.title:
        problems.append(f"opens on {wb.active.title!r}, first sheet {first.title!r}: not a Summary")
    targets = {t for _, t in links_of(first)}
    missing = [ws.title for ws in wb.worksheets[1:] if ws.title not in targets]
    if missing:
        problems.append(f"contents: no link to {missing}")
    broken = sorted(targets - set(wb.sheetnames))
    if broken:
        problems.append(f"contents: links to missing sheets {broken}")
    for ws in wb.worksheets[1:]:
        if first.title not in {t for _, t in links_of(ws)}:
            problems.append(f"{ws.title}: no link back to {first.title!r}")
    return problems


def check_print_setup(wb) -> list[str]:
    problems = []
    for ws in wb.worksheets:
        if ws.print_title_cols and ws.page_setup.fitToWidth != 1:
            # A chart over the repeated columns prints a slice of itself on every page to the right.
            last = column_index_from_string(ws.print_title_cols.split(":")[-1].strip("$"))
            over = [c for c in ws._charts if c.anchor._from.col < last]
            if over:
                problems.append(f"{ws.title}: {len(over)} chart(s) over the repeated columns {ws.print_title_cols}")
        if not ws.print_area:
            problems.append(f"{ws.title}: no print area")
        if not ws.sheet_properties.pageSetUpPr.fitToPage or ws.page_setup.fitToWidth < 1:
            problems.append(f"{ws.title}: not fitted to pages across")
        if "As of" not in (ws.oddFooter.center.text or "") or "&P" not in (ws.oddFooter.right.text or ""):
            problems.append(f"{ws.title}: footer without the as-of month and page number")
        if ws.freeze_panes and ws.freeze_panes != "A1" and not (ws.print_title_rows or ws.print_title_cols):
            problems.append(f"{ws.title}: frozen headers that do not repeat on printed pages")
    return problems


def _font(bold: bool, mono: bool = False):
    if mono:
        return pymupdf.Font(fontfile="/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf")
    return pymupdf.Font(fontfile=str(CARLITO / f"Carlito-{'Bold' if bold else 'Regular'}.ttf"))


def text_px(text: str, size: float, bold: bool, mono: bool = False) -> float:
    return max(_font(bold, mono).text_length(line, fontsize=size) for line in text.split("\n")) * 96 / 72


def wrapped_lines(text: str, room_px: float, size: float, bold: bool, mono: bool) -> int:
    """Lines a renderer breaks ``text`` into at spaces in a cell ``room_px`` wide."""
    lines = 0
    for paragraph in text.split("\n"):
        line = ""
        lines += 1
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if line and text_px(candidate, size, bold, mono) > room_px:
                lines += 1
                line = word
            else:
                line = candidate
    return lines


def clipped_cells(ws, max_rows: int = 400) -> list[str]:
    """Cells whose text does not show whole: numbers wider than their column, text that runs into the next value
    or past the printed edge, wrapped words wider than the column or lines taller than the row."""
    widths = {}
    for letter, dim in ws.column_dimensions.items():
        if dim.width:
            for col in range(column_index_from_string(dim.min and get_column_letter(dim.min) or letter),
                             (dim.max or column_index_from_string(letter)) + 1):
                widths[col] = dim.width

    def px(col: int) -> float:
        return widths.get(col, 8.43) * PX_PER_UNIT

    merged = {(r.min_row, r.min_col): r for r in ws.merged_cells.ranges}
    inside = {(row, col) for r in ws.merged_cells.ranges for row in range(r.min_row, r.max_row + 1)
              for col in range(r.min_col, r.max_col + 1)}
    last_print_col = column_index_from_string(ws.print_area.split("!")[-1].split(":")[-1].strip("$0123456789")
                                              .replace("$", "")) if ws.print_area else ws.max_column
    problems = []
    rows = {}
    for row in ws.iter_rows(max_row=max_rows):
        for c in row:
            if c.value is not None and c.value != "":
                rows.setdefault(c.row, []).append(c.column)
    for row in ws.iter_rows(max_row=max_rows):
        for c in row:
            if c.value is None or c.value == "" or ((c.row, c.column) in inside and (c.row, c.column) not in merged):
                continue
            size = c.font.sz or 11
            bold = bool(c.font.b)
            mono = c.font.name in ("Consolas", "Courier New")
            text = display_text(c.value, c.number_format if c.number_format != "General" else None) \
                if not isinstance(c.value, str) else c.value
            room = px(c.column)
            if (c.row, c.column) in merged:
                r = merged[(c.row, c.column)]
                room = sum(px(col) for col in range(r.min_col, r.max_col + 1))
            need = text_px(text, size, bold, mono) + PADDING_PX
            if c.alignment.wrap_text:
                words = max((text_px(w, size, bold, mono) for w in text.split()), default=0) + PADDING_PX
                if words > room + 1:
                    problems.append(f"{ws.title}!{c.coordinate}: a word of {text[:30]!r} is wider than its cell")
                height = ws.row_dimensions[c.row].height or 15
                lines = wrapped_lines(text, room - PADDING_PX, size, bold, mono)
                if lines * size * 1.2 > height + 2 and lines > 1:
                    problems.append(f"{ws.title}!{c.coordinate}: {lines} lines of {text[:30]!r} in a row "
                                    f"{height} pt tall")
                continue
            if isinstance(c.value, str) and c.alignment.horizontal in (None, "general", "left"):
                later = [col for col in rows.get(c.row, []) if col > c.column]
                # Text spills over empty cells up to the next value, and must end inside the printed columns.
                end = (later[0] - 1) if later else (last_print_col if c.column <= last_print_col else 16_384)
                if c.column <= last_print_col:
                    end = min(end, last_print_col)
                room = max(room, sum(px(col) for col in range(c.column, end + 1)))
            if need > room + 1:
                problems.append(f"{ws.title}!{c.coordinate}: {text[:40]!r} needs {need:.0f} px, has {room:.0f}")
    return problems


def pages_by_sheet(pdf: Path) -> dict[str, list[int]]:
    """Page numbers (0-based) of each sheet: its name is at the left of each page's footer."""
    doc = pymupdf.open(pdf)
    out: dict[str, list[int]] = {}
    for i, page in enumerate(doc):
        footer = [w for w in page.get_text("words") if w[1] > page.rect.height - 45 and w[0] < page.rect.width / 3]
        out.setdefault(" ".join(w[4] for w in sorted(footer, key=lambda w: w[0])), []).append(i)
    return out


def small_type(pdf: Path) -> list[str]:
    doc = pymupdf.open(pdf)
    found = []
    for i, page in enumerate(doc):
        for block in page.get_text("dict")["blocks"]:
            for line in block.get("lines", []):
                for span in line["spans"]:
                    if span["text"].strip() and span["size"] < MIN_PT - 0.05:
                        found.append(f"page {i + 1}: {span['text'][:30]!r} at {span['size']:.1f} pt")
    return found


def headers_not_repeated(wb, pdf: Path) -> list[str]:
    """Sheets printing on several pages whose repeated header row is missing from one of them."""
    doc = pymupdf.open(pdf)
    problems = []
    for sheet, pages in pages_by_sheet(pdf).items():
        if len(pages) < 2 or sheet not in wb.sheetnames or not wb[sheet].print_title_rows:
            continue
        ws = wb[sheet]
        row = int(ws.print_title_rows.split(":")[0].strip("$"))
        first = next((str(c.value) for c in ws[row] if isinstance(c.value, str) and c.value.strip()), None)
        word = first.split()[0] if first else None
        for i in pages:
            if word and word not in doc[i].get_text():
                problems.append(f"{sheet}: page {i + 1} lacks the header {first!r}")
    return problems


def notes_cut_by_a_page(wb, pdf: Path) -> list[str]:
    """Wrapped notes (text merged across columns) with a word printed on none of their sheet's pages: a page edge
    crossing the merge cuts every line there, and the cut words are on neither page whole."""
    doc = pymupdf.open(pdf)
    pages = pages_by_sheet(pdf)
    problems = []
    for ws in wb.worksheets:
        if ws.title not in pages:
            continue
        printed = {w[4].strip(".,;:()'\"") for i in pages[ws.title] for w in doc[i].get_text("words")}
        for merge in ws.merged_cells.ranges:
            cell = ws.cell(merge.min_row, merge.min_col)
            if not (isinstance(cell.value, str) and cell.alignment.wrap_text and len(cell.value) > 60):
                continue
            words = {w.strip(".,;:()'\"") for w in cell.value.split()}
            lost = sorted(w for w in words if len(w) >= 5 and w.isalpha() and w not in printed)
            if lost:
                problems.append(f"{ws.title}!{cell.coordinate}: {lost[:3]} cut by a page edge")
    return problems


def cut_at_repeated_columns(wb, pdf: Path) -> list[str]:
    """Text of the repeated columns printed cut short mid-word: a title or note above a wide table's header spills
    from column A over the first page, and on the pages after it, A repeated, only its first letters print
    ("Portfol"). A printed line that is itself a cell's whole text ("DEL" beside "DEL30") is not a cut."""
    doc = pymupdf.open(pdf)
    problems = []
    for sheet, pages in pages_by_sheet(pdf).items():
        if sheet not in wb.sheetnames or not wb[sheet].print_title_cols:
            continue
        ws = wb[sheet]
        first, last = (column_index_from_string(c.strip("$")) for c in ws.print_title_cols.split(":"))
        repeated = {c.value for row in ws.iter_rows(min_col=first, max_col=last) for c in row
                    if isinstance(c.value, str)}
        whole = {c.value.strip() for row in ws.iter_rows() for c in row if isinstance(c.value, str)}
        for i in pages:
            for block in doc[i].get_text("dict")["blocks"]:
                for line in block.get("lines", []):
                    shown = "".join(span["text"] for span in line["spans"]).strip()
                    if len(shown) < 3 or not shown[-1].isalnum() or shown in whole:
                        continue
                    problems += [f"{sheet}: page {i + 1} shows {shown!r} of {text[:40]!r}" for text in repeated
                                 if text.startswith(shown) and len(text) > len(shown) and text[len(shown)].isalnum()]
    return problems


def chart_colors(wb) -> dict[str, set[str]]:
    """Series title -> the line colours it has in the workbook's charts."""
    found: dict[str, set[str]] = {}
    for ws in wb.worksheets:
        for chart in ws._charts:
            for series in chart.series:
                title = series.tx.v if series.tx is not None and series.tx.v else None
                line = series.graphicalProperties.line if series.graphicalProperties is not None else None
                if title and line is not None and line.solidFill is not None:
                    rgb = line.solidFill.srgbClr
                    found.setdefault(title, set()).add(rgb if isinstance(rgb, str) else getattr(rgb, "val", None))
    return found


# ------------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("kind", KINDS)
def test_opens_on_a_summary_with_working_links(workbooks, kind):
    assert check_summary_and_links(openpyxl.load_workbook(workbooks[kind])) == []


@pytest.mark.parametrize("kind", KINDS)
def test_every_sheet_is_set_up_for_print(workbooks, kind):
    assert check_print_setup(openpyxl.load_workbook(workbooks[kind])) == []


@pytest.mark.skipif(not CARLITO.is_dir(), reason="the Carlito font (fonts-crosextra-carlito) is not installed")
@pytest.mark.parametrize("kind", KINDS)
def test_no_text_is_cut_by_its_cell(workbooks, kind):
    wb = openpyxl.load_workbook(workbooks[kind])
    assert [p for ws in wb.worksheets for p in clipped_cells(ws)] == []


@needs_office
@pytest.mark.libreoffice
@pytest.mark.parametrize("kind", KINDS)
def test_printed_pages_are_readable_and_repeat_their_headers(workbooks, pdfs, kind):
    wb = openpyxl.load_workbook(workbooks[kind])
    assert small_type(pdfs[kind]) == []
    assert headers_not_repeated(wb, pdfs[kind]) == []
    assert notes_cut_by_a_page(wb, pdfs[kind]) == []
    # Known and left: a wide sheet with charts on its pages prints as one area (an area per page would cut a
    # chart), so the pages right of its first still cut the text of its repeated columns (the Backtest sheet).
    assert [p for p in cut_at_repeated_columns(wb, pdfs[kind]) if not p.startswith("Backtest:")] == []
    pages = pages_by_sheet(pdfs[kind])
    assert set(wb.sheetnames) <= set(pages), f"sheets that print nothing: {set(wb.sheetnames) - set(pages)}"


def test_segment_colours_are_the_same_in_every_chart(workbooks):
    palette = segment_colors(["CASH LOAN", "CD", "TW/Moto", PORTFOLIO])
    assert palette[PORTFOLIO] == PORTFOLIO_COLOR and len(set(palette.values())) == 4
    seen: dict[str, set[str]] = {}
    for kind in ("report", "risk"):
        for title, colors in chart_colors(openpyxl.load_workbook(workbooks[kind])).items():
            seen.setdefault(title, set()).update(colors)
    for segment, color in palette.items():
        name = segment if segment != "TW/Moto" else "TW/Moto"
        if name in seen:
            assert seen[name] == {color}, (segment, seen[name])
    assert {PORTFOLIO, "CD"} <= set(seen)


# ------------------------------------------------------------------------------------ the checkers fail


def test_checkers_report_a_broken_workbook(workbooks, tmp_path):
    wb = openpyxl.load_workbook(workbooks["abtest"])
    summary = wb.worksheets[0]
    link = next(c for row in summary.iter_rows() for c in row if c.hyperlink is not None and c.hyperlink.location)
    link.hyperlink.location = "'No such sheet'!A1"
    sheet = wb.worksheets[1]
    sheet.oddFooter.center.text = ""
    sheet.column_dimensions["B"].width = 3  # the champion's numbers cannot fit
    for row in sheet.iter_rows():
        for c in row:
            if c.hyperlink is not None:
                c.hyperlink = None
    path = tmp_path / "broken.xlsx"
    wb.save(path)
    wb = openpyxl.load_workbook(path)
    problems = check_summary_and_links(wb)
    assert any("missing sheets" in p for p in problems) and any("no link back" in p for p in problems)
    assert any("footer" in p for p in check_print_setup(wb))
    backtest = openpyxl.load_workbook(workbooks["backtest"])
    backtest["Backtest"]._charts[0].anchor._from.col = 0
    assert any("over the repeated columns" in p for p in check_print_setup(backtest))
    if CARLITO.is_dir():
        assert any("!B" in p for p in clipped_cells(wb.worksheets[1]))


@needs_office
@pytest.mark.libreoffice
def test_small_type_and_missing_headers_are_reported(workbooks, tmp_path):
    original = openpyxl.load_workbook(workbooks["report"])
    wb = openpyxl.load_workbook(workbooks["report"])
    squeezed = wb["Portfolio_DEL30"]
    squeezed.sheet_properties.pageSetUpPr.fitToPage = False
    squeezed.page_setup.fitToWidth = squeezed.page_setup.fitToHeight = None
    squeezed.page_setup.scale = 40  # 11 pt cells at 4.4 pt on paper
    wb["CD_matrices"]._print_rows = None  # a long table whose header no longer repeats (the setter keeps it)
    for name in wb.sheetnames:
        if name not in ("Portfolio_DEL30", "CD_matrices"):
            del wb[name]
    path = tmp_path / "squeezed.xlsx"
    wb.save(path)
    pdf = render([path], tmp_path)["squeezed"]
    assert len(pages_by_sheet(pdf)["CD_matrices"]) > 1
    assert any("pt" in p for p in small_type(pdf))
    assert any(p.startswith("CD_matrices: page") for p in headers_not_repeated(original, pdf))


@needs_office
@pytest.mark.libreoffice
def test_a_note_merged_across_the_pages_of_a_wide_sheet_is_reported(workbooks, tmp_path):
    """The Backtest sheet prints two pages wide; its notes had been merged up to its last column, so the first
    page's edge cut every line (\"the DEL observed later, 1 to 12 months ahe\")."""
    wb = openpyxl.load_workbook(workbooks["backtest"])
    for name in wb.sheetnames:
        if name != "Backtest":
            del wb[name]
    ws = wb["Backtest"]
    ws.page_setup.fitToWidth = 3
    last = openpyxl.utils.column_index_from_string(ws.print_area.split(":")[-1].strip("$0123456789").replace("$", ""))
    for merge in list(ws.merged_cells.ranges):
        if merge.min_row == 2:
            ws.unmerge_cells(str(merge))
            ws.merge_cells(start_row=2, start_column=1, end_row=2, end_column=last)
    path = tmp_path / "wide_note.xlsx"
    wb.save(path)
    pdf = render([path], tmp_path)["wide_note"]
    assert len(pages_by_sheet(pdf)["Backtest"]) > 1
    assert any(p.startswith("Backtest!A2: ") for p in notes_cut_by_a_page(wb, pdf))


@needs_office
@pytest.mark.libreoffice
def test_a_title_cut_at_the_repeated_column_is_reported(workbooks, tmp_path):
    """A wide DEL table printed as one area two pages across: its second page repeated column A from row 1, so the
    title and legend printed there cut at A's edge ("Portfol", "ACTUAL: upr")."""
    wb = openpyxl.load_workbook(workbooks["report"])
    for name in wb.sheetnames:
        if name != "Portfolio_DEL30":
            del wb[name]
    ws = wb["Portfolio_DEL30"]
    assert "," in ws.print_area  # as written: the second page is an area of its own, from the header row
    last = ws.print_area.split(",")[-1].split(":")[-1].replace("$", "")
    ws.print_area = f"A1:{last}"
    ws.page_setup.fitToWidth = 2
    path = tmp_path / "one_area.xlsx"
    wb.save(path)
    pdf = render([path], tmp_path)["one_area"]
    assert len(pages_by_sheet(pdf)["Portfolio_DEL30"]) == 2
    assert any("of 'Portfolio_DEL30 Actual & Forecast'" in p for p in cut_at_repeated_columns(wb, pdf))
