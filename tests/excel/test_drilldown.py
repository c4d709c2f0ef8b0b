"""Drill-down from a DEL cell to its loans: the totals rebuild the cell; =DEL_LOANS; the ribbon's Drill sheet."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

import pyxl_del
from pyxl_del.cli import main
from pyxl_del.cli.common import EXIT_BAD_INPUT, EXIT_OK
from pyxl_del.datasets.sample import generate_sample
from pyxl_del.engine import loans as cell_loans
from pyxl_del.engine.config import Config
from pyxl_del.excel import drilldown
from pyxl_del.excel.workbook import OpenpyxlBook
from pyxl_del.sheets import report
from pyxl_del.sheets.abtest import SHEET_NAME as AB_SHEET
from pyxl_del.sheets.drilldown import SHEET_NAME as DRILL_SHEET
from pyxl_del.sheets.drilldown import drill_sheet

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from xlsm import build  # noqa: E402


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    return generate_sample(loans_per_cohort=20, n_cohorts=12)


@pytest.fixture(scope="module")
def result(panel):
    return pyxl_del.run(panel, Config())


def test_loans_rebuild_the_actual_del(panel, result):
    config = Config()
    checked = 0
    for segment in result.segments:
        actual = result.wide(segment, "DEL30", "actual")
        for cohort in actual.index[::3]:
            for mob in (3, 6, 9):
                value = actual.loc[cohort, mob]
                if value != value:
                    continue
                cell = cell_loans.loans_behind(panel, config, segment, str(cohort), mob)
                assert cell.bad_ead["DEL30"] / cell.ead_mob0 == pytest.approx(value)
                bad = cell.loans[cell.loans["state"].isin(config.buckets.del30)]
                assert bad["ead"].sum() == pytest.approx(cell.bad_ead["DEL30"])
                checked += 1
    assert checked > 10


def test_loan_rows(panel):
    cell = cell_loans.loans_behind(panel, Config(), "CD", "2025-02", 5, "DEL30")
    loans = cell.loans
    assert list(loans.columns) == list(cell_loans.LOAN_COLUMNS)
    assert loans["state"].isin(Config().buckets.del30).all()
    assert (np.diff(loans["ead"].to_numpy()) <= 0).all()  # largest first
    prev = panel.set_index(["AGREEMENT_ID", "MOB"])["STATE_MODEL"]
    for loan, before in zip(loans["loan"], loans["previous_state"], strict=True):
        assert before == prev[(loan, 4)]
    everyone = cell_loans.loans_behind(panel, Config(), "Portfolio", "2025-02", 5)
    assert set(everyone.loans["segment"]) == {"CASH LOAN", "CD", "TW/Moto"}
    forecast = cell_loans.loans_behind(panel, Config(), "CD", "2025-12", 5)
    assert forecast.n_loans == 0 and any("forecast" in line for line in forecast.summary())


# "202502" is the number stored as text; 45689.0 and 45700.0 are what =DATE(2025,2,1) and =DATE(2025,2,12) hand a
# worksheet function (Excel's day numbers), which were refused with "use ... a date or 202401".
@pytest.mark.parametrize("cohort", ["2025-02", "2025-02-01", 202502.0, "202502", " 202502 ", 45689.0, 45700.0,
                                    pd.Timestamp("2025-02-17")])
def test_cohort_spellings(cohort):
    assert cell_loans.parse_cohort(cohort) == 2025 * 12 + 1


@pytest.mark.parametrize("cohort", [2012, 2012.0, "2012", 101, 12301])
def test_a_year_or_a_short_number_is_not_a_month(cohort):
    # 2012 was read as December of the year 20, as the panel's parser read it (tests/engine/test_backends.py)
    with pytest.raises(ValueError, match="not a month"):
        cell_loans.parse_cohort(cohort)


def test_bad_arguments(panel):
    with pytest.raises(ValueError, match="not a month"):
        cell_loans.loans_behind(panel, Config(), "CD", "Feb", 5)
    with pytest.raises(ValueError, match="unknown segment 'XX'"):
        cell_loans.loans_behind(panel, Config(), "XX", "2025-02", 5)
    with pytest.raises(ValueError, match="not a bucket"):
        cell_loans.loans_behind(panel, Config(), "CD", "2025-02", 5, "LATE")


def test_drill_sheet_is_capped_with_a_message(panel):
    cell = cell_loans.loans_behind(panel, Config(), "Portfolio", "2025-02", 0)
    layout = drill_sheet(cell, max_rows=20)
    notes = [str(v) for v in layout.blocks[0].values[:, 0]]
    assert any(n.startswith("showing the") and f"of {cell.n_loans:,} loans" in n for n in notes)
    assert layout.extent[0] <= 20


def test_del_loans_udf(panel, tmp_path):
    from xlsm.xlwings_win import windows_udfs

    data = tmp_path / "panel.csv"
    panel.to_csv(data, index=False)
    with windows_udfs() as runtime:
        m = runtime.load("udfs.decide_udfs")
        assert m.DEL_LOANS.__xlfunc__["args"][0]["options"] == {"convert": "raw"}
        table = runtime.call(m.DEL_LOANS, str(data), "CD", "2025-02", 5.0)
        assert table[0] == ["Loan", "Segment", "State", "EAD", "Previous state"] and len(table) == 21
        capped = drilldown.loans_cells(str(data), "Portfolio", "2025-02", 5.0, None, None, max_rows=10)
        assert len(capped) == 10 and capped[-1][0].startswith("#pyxl_del: showing the 8 largest of 60 loans")
        bad = runtime.call(m.DEL_LOANS, str(data), "CD", "someday", 5.0)
        assert bad[0][0].startswith("#pyxl_del: ") and "not a month" in bad[0][0]
        # A cell without loans said nothing (a header alone looks like a broken formula): each says why.
        future = runtime.call(m.DEL_LOANS, str(data), "CD", "2099-01", 5.0)
        assert future[0][0].startswith("#pyxl_del: ") and "no loan of cohort 2099-01 in CD" in future[0][0], future
        unseen = runtime.call(m.DEL_LOANS, str(data), "CD", "2025-02", 99.0)
        assert unseen[0][0].startswith("#pyxl_del: ") and "is observed at MOB 99: the cell is a forecast" in \
            unseen[0][0], unseen
        # A state no loan of the cell is in spilled the header alone, with no word.
        none_late = runtime.call(m.DEL_LOANS, str(data), "CD", "2025-02", 0.0, "DEL30")
        assert none_late == [["#pyxl_del: none of the 20 loans of cohort 2025-02 at MOB 0 is in DEL30"]], none_late


def test_a_forecast_cell_shows_no_actual_del(panel):
    """The drill-down of a cell no loan reaches printed "actual DEL30 0.00%" beside "the cell is a forecast"."""
    config = Config()
    cell = cell_loans.loans_behind(panel, config, "CD", "2025-02", 30)
    lines = cell.summary()
    assert cell.n_loans == 0 and not [line for line in lines if line.startswith("actual")], lines
    assert any("the cell is a forecast" in line for line in lines)
    seen = cell_loans.loans_behind(panel, config, "CD", "2025-02", 5).summary()
    assert [line for line in seen if line.startswith("actual DEL30")]  # the check can pass
    # Its sheets are dated by the data's last month, not the cell's (2027-08 for cohort 2025-02 at MOB 30).
    from pyxl_del.sheets.drilldown import drill_book

    last = str((pd.PeriodIndex(panel["DISBURSAL_MONTH"], freq="M") + panel["MOB"].to_numpy()).max())
    assert cell.as_of == last
    summary = drill_book(cell)[0]
    texts = [v for b in summary.blocks for v in b.values.ravel() if isinstance(v, str)]
    assert f"As of {last}" in texts and "As of 2027-08" not in texts, texts[:4]


@pytest.fixture(scope="module")
def forecast_book(panel, tmp_path_factory) -> Path:
    """A built workbook with the sample on its Data sheet and the report sheets written by Run forecast."""
    book = build.build_workbook(tmp_path_factory.mktemp("book") / "pyxl_del.xlsm", data_frame=panel)
    assert main(["ribbon", "run_forecast", "--workbook", str(book)]) == EXIT_OK
    return book


def test_ribbon_drill_down(panel, forecast_book, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    book = tmp_path / forecast_book.name
    book.write_bytes(forecast_book.read_bytes())
    result = pyxl_del.run(panel, Config())
    sheet = report.sheet_names(result)[("CD", "mixed", "DEL30")]
    ws = openpyxl.load_workbook(book)[sheet]
    row = next(r for r in range(4, ws.max_row + 1) if ws.cell(r, 1).value == "2025-02")
    capsys.readouterr()
    assert main(["ribbon", "drill_down", "--workbook", str(book), "--selection", f"'{sheet}'!G{row}"]) == EXIT_OK
    assert "Drill down" in capsys.readouterr().out
    wb = openpyxl.load_workbook(book)
    drill = wb[DRILL_SHEET]
    assert drill.cell(1, 1).value == "Loans behind CD, cohort 2025-02, MOB 5"
    header = next(r for r in range(1, 12) if drill.cell(r, 1).value == "Loan")
    loans = [drill.cell(r, 1).value for r in range(header + 1, drill.max_row + 1)]
    assert len(loans) == 20 and sheet in wb.sheetnames  # the DEL sheet stays
    assert main(["ribbon", "drill_down", "--workbook", str(book), "--selection", "Data!A2"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "not a DEL sheet" in err and f"(e.g. {report.sheet_names(result)[('Portfolio', 'mixed', 'DEL30')]})" in err
    # A blank cell under the table drilled into the last cohort, and the legend's text was read as a cohort.
    last = max(r for r in range(4, ws.max_row + 1) if str(ws.cell(r, 1).value or "")[:2] == "20")
    for below in (last + 5, last + 2):
        assert main(["ribbon", "drill_down", "--workbook", str(book), "--selection", f"'{sheet}'!C{below}"]) == \
            EXIT_BAD_INPUT
        assert "is not on a cohort row" in capsys.readouterr().err


def select(book: Path, sheet: str, cell: str) -> None:
    """Save ``cell`` of ``sheet`` as the file's active sheet and selection, as Excel would on saving."""
    user = OpenpyxlBook(book)
    ws = user.wb[sheet]
    user.wb.active = user.wb.worksheets.index(ws)
    ws.sheet_view.selection[0].sqref = cell
    ws.sheet_view.selection[0].activeCell = cell
    user.save()


def test_ribbon_drill_down_on_the_cell_selected_in_the_file(panel, forecast_book, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    book = tmp_path / forecast_book.name
    book.write_bytes(forecast_book.read_bytes())
    names = report.sheet_names(pyxl_del.run(panel, Config()))
    sheet = names[("CD", "mixed", "DEL30")]
    ws = openpyxl.load_workbook(book)[sheet]
    row = next(r for r in range(4, ws.max_row + 1) if ws.cell(r, 1).value == "2025-02")
    select(book, sheet, f"G{row}")
    assert main(["ribbon", "drill_down", "--workbook", str(book)]) == EXIT_OK
    assert openpyxl.load_workbook(book)[DRILL_SHEET].cell(1, 1).value == \
        "Loans behind CD, cohort 2025-02, MOB 5"
    select(book, names[("CD", "flags", None)], f"G{row}")  # a report sheet, but not a DEL one
    capsys.readouterr()
    assert main(["ribbon", "drill_down", "--workbook", str(book)]) == EXIT_BAD_INPUT
    assert "is not a DEL sheet written by pyxl_del" in capsys.readouterr().err


def test_ribbon_abtest(forecast_book, tmp_path, capsys, monkeypatch):

    monkeypatch.chdir(tmp_path)
    book = tmp_path / forecast_book.name
    book.write_bytes(forecast_book.read_bytes())
    assert main(["ribbon", "abtest", "--workbook", str(book)]) == EXIT_OK
    assert "A/B test of current against recommended policy" in capsys.readouterr().out
    ws = openpyxl.load_workbook(book)[AB_SHEET]
    assert ws.cell(1, 1).value == "Champion / challenger (simulated)"
    assert ws._charts
