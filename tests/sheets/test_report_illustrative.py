"""A forecast that rests on a short history (engine.diagnostics.short_history) says ILLUSTRATIVE where the report
shows it: the Summary's figures, segments and caveats, each DEL sheet's legend and each curves sheet; a book with
enough history shows none of it."""

from __future__ import annotations

import pytest
from _panels import frame, loan
from openpyxl import load_workbook

import pyxl_del
from pyxl_del.datasets.sample import generate_sample
from pyxl_del.excel.render import write_report
from pyxl_del.risk.analysis import RiskAnalysis
from pyxl_del.sheets.report import FIXED_SHEETS
from pyxl_del.sheets.risk import view_sheets


def new_product() -> object:
    """Segment A: cohort 2024-01 followed to MOB 8, 3 loans late at MOB 1 who cure; segment B, launched later:
    cohort 2024-08 followed one month (MOB 0..1), 3 loans late at MOB 1. The as-of is 2024-09: B's chain rests on
    one MOB step, A's on eight."""
    records = []
    for i in range(60):
        late = i < 3
        records += loan(f"A{i}", "2024-01", "A",
                        [("CURRENT", 100.0)] + [("DPD30+" if late and m == 1 else "CURRENT", 100.0) for m in range(1, 9)])
        records += loan(f"B{i}", "2024-08", "B", [("CURRENT", 100.0), ("DPD30+" if late else "CURRENT", 100.0)])
    return frame(records)


def texts(ws) -> list[str]:
    return [str(c.value) for row in ws.iter_rows() for c in row if isinstance(c.value, str)]


def summary_table(ws, header: str) -> tuple[int, dict[str, int]]:
    """(header row, column of each header) of the Summary table whose first header cell is ``header``."""
    for row in ws.iter_rows():
        if row[0].value == header:
            return row[0].row, {c.value: c.column for c in row if c.value is not None}
    raise AssertionError(f"no table headed {header!r}")


@pytest.fixture(scope="module")
def young(tmp_path_factory):
    result = pyxl_del.run(new_product(), pyxl_del.Config().with_overrides(forecast={"max_mob": 12}))
    return result, load_workbook(write_report(result, tmp_path_factory.mktemp("young") / "young.xlsx"))


def test_the_summary_marks_the_figures_segments_and_caveats(young):
    result, wb = young
    assert result.short_history.tolist() == [False, True]
    ws = wb[FIXED_SHEETS["summary"]]
    top, cols = summary_table(ws, "Figure")
    notes = {}
    r = top + 1
    while ws.cell(r, 1).value:
        notes[ws.cell(r, 1).value] = ws.cell(r, cols["Note"]).value
        r += 1
    # MOB 6 of cohort 2024-01 is actual: not illustrative; every figure holding a forecast is.
    assert notes.pop("MOB 6, newest cohort observed there (2024-01)") is None
    assert notes and set(notes.values()) == {"ILLUSTRATIVE"}
    top, cols = summary_table(ws, "Segment")
    assert [ws.cell(top + 1 + i, 1).value for i in range(2)] == ["A", "B (ILLUSTRATIVE)"]
    assert [ws.cell(top + 1 + i, cols["MOB steps of data"]).value for i in range(2)] == [8, 1]
    caveats = texts(ws)[texts(ws).index("Caveats") + 1]
    assert caveats == result.illustrative + "."
    assert caveats.startswith("ILLUSTRATIVE forecast: segment 'B' rests on 1 MOB step of data (up to MOB 1), "
                              "repeated to MOB 12")


def test_each_del_and_curves_sheet_of_the_short_segment_says_so(young):
    _result, wb = young
    for name in ("B_DEL30", "B_DEL90", "Portfolio_DEL60"):
        assert [t for t in texts(wb[name]) if t.startswith("ILLUSTRATIVE")], name
    for name in ("A_DEL30", "A_DEL60", "A_curves"):
        assert not [t for t in texts(wb[name]) if "ILLUSTRATIVE" in t], name
    assert any(t.startswith("ILLUSTRATIVE: 1 of 2 segments rests on fewer than 6 MOB steps")
               for t in texts(wb["Portfolio_DEL30"]))
    note = wb["B_curves"]["A3"]
    assert note.value.startswith("ILLUSTRATIVE: the chain rests on 1 MOB step of data, repeated to MOB 12")
    assert note.font.b and note.font.color.rgb.endswith("C65911")


def test_a_book_with_history_shows_none_of_it(tmp_path):
    result = pyxl_del.run(generate_sample(loans_per_cohort=60, n_cohorts=12), pyxl_del.Config())
    assert not result.short_history.any()
    wb = load_workbook(write_report(result, tmp_path / "long.xlsx"))
    assert not [t for name in wb.sheetnames for t in texts(wb[name]) if "ILLUSTRATIVE" in t]
    _top, cols = summary_table(wb[FIXED_SHEETS["summary"]], "Figure")
    assert "Note" not in cols


def test_the_risk_sheets_carry_the_mark(young, sample_result):
    # Every loss and capital figure projects the chain: the risk views of the new product say ILLUSTRATIVE, the
    # sample's (years of data) do not.
    result, _wb = young
    for analysis, marked in ((RiskAnalysis.of(result), True), (RiskAnalysis.of(sample_result), False)):
        for view in ("el", "var", "capital"):
            lines = [t for layout in view_sheets(analysis, view) for block in layout.blocks
                     for t in block.values.ravel().tolist() if isinstance(t, str)]
            found = [t for t in lines if t.startswith("ILLUSTRATIVE forecast: B rests on fewer than 6 MOB steps")]
            assert bool(found) == marked, (view, marked)


def test_a_product_with_no_month_on_book_but_the_first_is_illustrative(tmp_path):
    """A product launched last month (MOB 0 rows only) borrowed the other segments' chain to their last step, so
    it counted as resting on their 8 steps: forecast to MOB 12 with no ILLUSTRATIVE mark, "8 MOB steps of data" on the
    Summary. It rests on none."""
    records = []
    for i in range(60):
        records += loan(f"A{i}", "2024-01", "A", [("CURRENT", 100.0)] * 9)
        records += loan(f"C{i}", "2024-09", "C", [("CURRENT", 100.0)])
    result = pyxl_del.run(frame(records), pyxl_del.Config().with_overrides(forecast={"max_mob": 8}))
    assert result.transitions.steps_of_data.tolist() == [8, 0]
    assert result.short_history.tolist() == [False, True]  # A's chain is complete: not marked whatever its length
    assert "segment 'C' rests on no MOB step of data of its own: its chain is the other segments'" in \
        result.illustrative
    ws = load_workbook(write_report(result, tmp_path / "new.xlsx"))[FIXED_SHEETS["summary"]]
    top, cols = summary_table(ws, "Segment")
    rows = {ws.cell(r, 1).value: r for r in range(top + 1, top + 3)}
    assert ws.cell(rows["C (ILLUSTRATIVE)"], cols["MOB steps of data"]).value == 0
    assert ws.cell(rows["A"], cols["MOB steps of data"]).value == 8
