"""Hostile panels in Excel (issue 17): the worksheet functions and the ribbon answer a bad Data range with a sentence
(a blank cohort column, day-first text dates, MOB 1e19, an EAD of 1e300, an all-zero EAD column), and odd arguments
with clear words (a ragged array, a #N/A amount, DEL_LOANS at MOB -3)."""

from __future__ import annotations

import openpyxl
import pytest
from test_ribbon import cli, template  # noqa: F401 - the fixture
from test_udfs import excel_cells, message

from pyxl_del.datasets.sample import generate_sample
from pyxl_del.excel import udf
from pyxl_del.excel.decide_udf import decide_cells
from pyxl_del.excel.drilldown import PANELS, loans_cells
from pyxl_del.excel.workbook import OpenpyxlBook
from xlsm.xlwings_win import windows_udfs

NA = -2146826246  # how COM hands #N/A to a function
COHORT, MOB, EAD = 1, 2, 5  # columns of the sample panel


@pytest.fixture(scope="module")
def excel():
    with windows_udfs() as runtime:
        runtime.module = runtime.load()
        runtime.decide = runtime.load("udfs.decide_udfs")
        yield runtime


@pytest.fixture(autouse=True)
def fresh_memo():
    for memo in (udf.FITS, udf.TABLES, udf.CONFIGS, PANELS):
        memo.clear()


@pytest.fixture(scope="module")
def cells() -> tuple:
    return excel_cells(generate_sample(loans_per_cohort=12, n_cohorts=10))


def blank_cohort(rows):
    for row in rows[1:]:
        row[COHORT] = None


def day_first(rows):
    for row in rows[1:]:
        year, month = str(row[COHORT])[:7].split("-")
        row[COHORT] = f"05/{month}/{year}"


def huge_mob(rows):
    rows[5][MOB] = 1e19


def huge_ead(rows):
    rows[5][EAD] = 1e300


def zero_ead(rows):
    for row in rows[1:]:
        row[EAD] = 0.0


CASES = {"blank_cohort": (blank_cohort, "'DISBURSAL_MONTH' ([columns] cohort)"),
         "day_first": (day_first, "day-first or month-first"),
         "huge_mob": (huge_mob, "must be a whole number from 0 to 1200; not so in row 6"),
         "huge_ead": (huge_ead, "is above 1e15"),
         "zero_ead": (zero_ead, "is 0 on every row")}


def damaged(cells: tuple, change) -> tuple:
    rows = [list(r) for r in cells]
    change(rows)
    return tuple(map(tuple, rows))


@pytest.mark.parametrize("case", CASES)
def test_worksheet_functions_name_the_bad_data(excel, cells, case):
    change, words = CASES[case]
    data = damaged(cells, change)
    for f, args in ((excel.module.DEL_FORECAST, ("CD",)), (excel.module.DEL_SEGMENTS, ()),
                    (excel.decide.DEL_LOANS, ("CD", "2024-01", 1.0))):
        if case == "zero_ead" and f is excel.decide.DEL_LOANS:
            continue  # the loans behind a cell are listed from the rows, whatever their EAD
        text = message(excel.call(f, data, *args))
        # Named as the range the user gave, not as the DataFrame made of it.
        assert words in text and text.startswith("data range: "), (f.__name__, text)
    (row,) = decide_cells("CD", 600.0, 1000.0, None, data, None)
    assert words in row[0] and "data range: " in row[0] and "DataFrame" not in row[0], row


def test_a_ragged_array_is_named(excel, cells):
    """An array from another function or from code may have rows of another width; on main: "zip() argument 5 is
    shorter than arguments 1-4"."""
    rows = list(cells)
    rows[5] = rows[5][:-1]
    assert message(excel.call(excel.module.DEL_FORECAST, tuple(rows), "CD")) == \
        "the data is not a rectangular range: the header has 6 cells, row 6 has another number"


@pytest.mark.parametrize(("mob", "words"), [(-3.0, "got -3.0"), (1e19, "got 1e+19"), (2.5, "got 2.5")])
def test_del_loans_mob_argument(excel, cells, mob, words):
    text = message(excel.call(excel.decide.DEL_LOANS, cells, "CD", "2024-01", mob))
    assert text.startswith("mob: a MOB is a whole number from 0 to 600") and words in text
    assert loans_cells(cells, "CD", "2024-01", mob, None, None)[0][0].endswith(text)


@pytest.mark.parametrize(("amount", "words"), [
    (NA, "amount: the cell holds the error #N/A"), (1.7e308, "amount: Input should be less than or equal to"),
    (-5.0, "amount: Input should be greater than 0"),
])
def test_decide_amount_cells(amount, words):
    (row,) = decide_cells("CD", 600.0, amount, None, None, None)
    assert words in row[0]


@pytest.mark.parametrize("case", CASES)
def test_the_ribbon_names_the_bad_data(template, tmp_path, capsys, case):  # noqa: F811
    path = tmp_path / "pyxl_del.xlsm"
    path.write_bytes(template)
    book = OpenpyxlBook(path)
    ws = book.wb["Data"]
    rows = [list(r) for r in ws.iter_rows(values_only=True)]
    CASES[case][0](rows)
    for r, row in enumerate(rows[1:], start=2):
        for c in (COHORT, MOB, EAD):
            ws.cell(r, c + 1).value = row[c]
    book.save()
    for action in ("run_forecast", "backtest"):
        assert cli(action, "--workbook", path) == 2
        err = capsys.readouterr().err
        assert CASES[case][1].split(";")[0] in err and "Traceback" not in err, (action, err)
        assert "pyxl_del.xlsm Data: " in err and "DataFrame" not in err, (action, err)
    assert "Portfolio_DEL30" not in openpyxl.load_workbook(path, read_only=True).sheetnames  # nothing half-written
