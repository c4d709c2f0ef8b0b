"""Hostile and odd workbooks and cells: a report sheet the user renamed or copied is theirs (never deleted by the
next Run forecast), a file that is not a workbook is a sentence, a cell error is named as one."""

from __future__ import annotations

import io
from pathlib import Path

import openpyxl
import pytest
from openpyxl.workbook.defined_name import DefinedName
from test_ribbon import FakeXlApp, FakeXlBook, cli, template  # noqa: F401 - the fixture

from pyxl_del.cli import main
from pyxl_del.datasets.sample import generate_sample
from pyxl_del.excel.decide_udf import decide_cells
from pyxl_del.excel.drilldown import loans_cells
from pyxl_del.excel.render import WORKBOOK_ID_NAME, render_openpyxl, sheet_owners
from pyxl_del.excel.udf import matrix, table
from pyxl_del.excel.workbook import OpenpyxlBook, XlwingsBook
from pyxl_del.sheets import layout as sheet_layout

NA, REF = -2146826246, -2146826265  # how COM hands #N/A and #REF! to a function


@pytest.fixture
def forecast_book(template, tmp_path) -> Path:  # noqa: F811
    path = tmp_path / "pyxl_del.xlsm"
    path.write_bytes(template)
    assert cli("run_forecast", "--workbook", path) == 0
    return path


def edit(path: Path, change) -> None:
    """A change the user makes in Excel, saved through OpenpyxlBook (which keeps the ribbon)."""
    book = OpenpyxlBook(path)
    change(book.wb)
    book.save()


def excel_copy(wb, name: str, new_name: str):
    """Excel's "Move or Copy" (create a copy): the cells and the sheet-scoped names, the marker included."""
    copy = wb.copy_worksheet(wb[name])
    copy.title = new_name
    for key, defined in wb[name].defined_names.items():
        copy.defined_names[key] = DefinedName(key, attr_text=defined.attr_text, hidden=True)
    copy["A1"] = "my annotated copy"
    return copy


def test_a_renamed_report_sheet_survives_the_next_forecast(forecast_book):
    def rename(wb):
        wb["Portfolio_DEL30"].title = "My DEL30 for the board"
        wb["My DEL30 for the board"]["A1"] = "keep me"

    edit(forecast_book, rename)
    assert "My DEL30 for the board" not in OpenpyxlBook(forecast_book).own_sheets()
    assert cli("run_forecast", "--workbook", forecast_book) == 0
    wb = openpyxl.load_workbook(forecast_book)
    assert wb["My DEL30 for the board"]["A1"].value == "keep me"
    assert "Portfolio_DEL30" in wb.sheetnames  # written anew beside it


def test_a_copied_report_sheet_survives_the_next_forecast(forecast_book):
    edit(forecast_book, lambda wb: excel_copy(wb, "Portfolio_DEL30", "Portfolio_DEL30 (2)"))
    assert cli("run_forecast", "--workbook", forecast_book) == 0
    wb = openpyxl.load_workbook(forecast_book)
    assert wb["Portfolio_DEL30 (2)"]["A1"].value == "my annotated copy"
    assert "Portfolio_DEL30" in sheet_owners(wb) and "Portfolio_DEL30 (2)" not in sheet_owners(wb)


def test_a_sheet_copied_from_another_workbook_is_the_users(forecast_book, tmp_path):
    """Same name, same marker, but another workbook's id: the user's, and a clash is an error, not a deletion."""
    other = openpyxl.Workbook()
    other.remove(other.active)
    render_openpyxl([sheet_layout.SheetLayout(name="Run info", kind="mixed", title="t", owner="report")], other)

    def bring(wb):
        ws = wb.create_sheet("Run info")
        ws["A1"] = "brought from another workbook"
        ws.defined_names[sheet_layout.OWNER_NAME] = other["Run info"].defined_names[sheet_layout.OWNER_NAME]

    edit(forecast_book, lambda wb: wb.remove(wb["Run info"]))
    edit(forecast_book, bring)
    before = forecast_book.read_bytes()
    assert main(["ribbon", "run_forecast", "--workbook", str(forecast_book)]) == 2
    assert forecast_book.read_bytes() == before
    assert openpyxl.load_workbook(forecast_book)["Run info"]["A1"].value == "brought from another workbook"


def test_each_workbook_gets_its_own_id():
    first, second = openpyxl.Workbook(), openpyxl.Workbook()
    layouts = [sheet_layout.SheetLayout(name="Portfolio_DEL30", kind="mixed", title="t", owner="report")]
    for wb in (first, second):
        wb.remove(wb.active)
        render_openpyxl(layouts, wb)
    assert first.defined_names[WORKBOOK_ID_NAME].attr_text != second.defined_names[WORKBOOK_ID_NAME].attr_text


def test_the_live_path_gives_a_workbook_its_id():
    app = FakeXlApp()
    xl = FakeXlBook(app, "new.xlsx", [("Data", None)], wid=None)
    layouts = [sheet_layout.SheetLayout(name="Portfolio_DEL30", kind="mixed", title="t", owner="report")]
    XlwingsBook(xl).write_layouts(layouts)
    (name,) = [n for n in xl.names if n.name == WORKBOOK_ID_NAME]
    assert name.api.Visible is False
    assert XlwingsBook(xl).own_sheets() == {"Portfolio_DEL30": "report"}
    xl.sheets[1].name = "Renamed"  # Excel renames the sheet, the marker stays
    assert XlwingsBook(xl).own_sheets() == {}


@pytest.mark.parametrize(("content", "expected"), [
    (b"AGREEMENT_ID,MOB\n1,0\n", "not a readable Excel workbook"),  # a CSV renamed
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600), "not a readable Excel workbook"),  # an encrypted one (OLE)
    (b"", "not a readable Excel workbook"),
], ids=["csv", "password", "empty"])
def test_a_file_that_is_not_a_workbook(tmp_path, capsys, content, expected):
    path = tmp_path / "book.xlsm"
    path.write_bytes(content)
    assert main(["ribbon", "run_forecast", "--workbook", str(path)]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err and path.read_bytes() == content


def test_a_workbook_without_its_content_types(template, tmp_path, capsys):  # noqa: F811
    import zipfile

    source = zipfile.ZipFile(io.BytesIO(template))
    path = tmp_path / "book.xlsm"
    with zipfile.ZipFile(path, "w") as out:
        for item in source.infolist():
            if item.filename != "[Content_Types].xml":
                out.writestr(item, source.read(item))
    assert main(["ribbon", "run_forecast", "--workbook", str(path)]) == 2
    assert "not a readable Excel workbook" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ UDFs


@pytest.fixture(scope="module")
def panel_path(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("udf") / "panel.parquet"
    generate_sample(score=True, loans_per_cohort=20, n_cohorts=12).to_parquet(path)
    return str(path)


def test_a_cell_error_is_named_not_taken_for_its_code(panel_path):
    """#N/A reached =DEL_DECIDE as its COM code and read "amount must be > 0"."""
    assert decide_cells("CD", 600.0, NA, None, panel_path, None) == [
        ["#pyxl_del: DEL_DECIDE: amount: the cell holds the error #N/A"]]
    assert decide_cells(("CD", "CD"), (600.0, REF), (100.0, 100.0), None, panel_path, None) == [
        ["#pyxl_del: DEL_DECIDE: application 2: score: the cell holds the error #REF!"]]
    assert decide_cells("CD", 600.0, 100.0, "#N/A", panel_path, None)[0][0].endswith("the cell holds the error #N/A")
    assert table(panel_path, NA, None, None, None, kind="mixed") == [["#pyxl_del: segment: the cell holds the error #N/A"]]
    assert matrix(panel_path, "CD", NA, None, None)[0][0] == "#pyxl_del: mob: the cell holds the error #N/A"


@pytest.mark.parametrize(("amount", "expected"), [(1.7e308, "less than or equal to 1000000000000"),
                                                  (float("inf"), "finite"), (-1.0, "greater than 0")])
def test_absurd_amounts_are_refused(panel_path, amount, expected):
    out = decide_cells("CD", 600.0, amount, None, panel_path, None)
    assert out[0][0].startswith("#pyxl_del: ") and expected in out[0][0]


@pytest.mark.parametrize("mob", [-3.0, 2.5, 1e19, 2.0**62, 601.0])
def test_a_mob_argument_must_be_a_month_on_book(panel_path, mob):
    """DEL_LOANS took -3; 1e19 read "unable to parse input string as an integer, exceeded maximum size"."""
    expected = [[f"#pyxl_del: mob: a MOB is a whole number from 0 to 600 (got {mob!r})"]]
    assert loans_cells(panel_path, "CD", "2023-01", mob, None, None) == expected
    assert matrix(panel_path, "CD", mob, None, None) == expected
