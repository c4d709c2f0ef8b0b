"""The ribbon's actions, headless: ``pyxl-del ribbon ACTION --workbook FILE.xlsm`` on workbooks built by xlsm/build.py.

Each check reads the saved file back (openpyxl, the zip parts, olevba): the report sheets written as the report
layouts specify, the VBA project and the ribbon intact, the user's sheets untouched.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import openpyxl
import pytest

import pyxl_del
import pyxl_del.excel.workbook
from pyxl_del.cli import main
from pyxl_del.cli.common import EXIT_BAD_INPUT, EXIT_OK
from pyxl_del.datasets.sample import generate_sample
from pyxl_del.engine.config import Config, load_config
from pyxl_del.excel import ribbon
from pyxl_del.excel.opc import CUSTOMUI_PART, read_parts, restore_ribbon
from pyxl_del.excel.render import (
    SheetConflictError,
    marker,
    owner_of,
    plan_replacement,
    workbook_id_of,
)
from pyxl_del.excel.workbook import OpenpyxlBook, Ref, WorkbookError, XlwingsBook
from pyxl_del.sheets import layout as sheet_layout
from pyxl_del.sheets import report

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from xlsm import build  # noqa: E402

START_SHEETS = ["Instructions", "Data", "xlwings.conf"]


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> bytes:
    panel = generate_sample(loans_per_cohort=8, n_cohorts=10)
    return build.build_workbook(tmp_path_factory.mktemp("tpl") / "pyxl_del.xlsm", data_frame=panel).read_bytes()


@pytest.fixture
def book(template, tmp_path) -> Path:
    path = tmp_path / "pyxl_del.xlsm"
    path.write_bytes(template)
    return path


@pytest.fixture(autouse=True)
def no_config_nearby(tmp_path, monkeypatch):
    """The working directory holds no config.toml: the actions use the one next to the workbook, or defaults."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)


def cli(*args: str | Path) -> int:
    return main(["ribbon", *map(str, args)])


def add_user_sheets(path: Path, sheets: dict[str, list[list]], *, selection: Ref | None = None) -> None:
    """The user's own sheets, written through OpenpyxlBook (which keeps the ribbon)."""
    book = OpenpyxlBook(path)
    for name, rows in sheets.items():
        ws = book.wb.create_sheet(name)
        for row in rows:
            ws.append(row)
    if selection is not None:
        ws = book.wb[selection.sheet]
        book.wb.active = book.wb.worksheets.index(ws)
        ws.sheet_view.selection[0].sqref = selection.address
        ws.sheet_view.selection[0].activeCell = selection.address.split(":")[0]
    book.save()


def data_rows(path: Path) -> list[list]:
    ws = openpyxl.load_workbook(path, read_only=True)["Data"]
    return [list(r) for r in ws.iter_rows(values_only=True)]


def expected_layouts(path: Path, source: Ref = Ref("Data")) -> list[sheet_layout.SheetLayout]:
    frame = OpenpyxlBook(path).read_frame(source)
    return report.build_layouts(pyxl_del.run(frame, Config()))


def run_info_input(path: Path) -> str:
    ws = openpyxl.load_workbook(path)["Run info"]
    return next(row[1] for row in ws.iter_rows(values_only=True) if row[0] == "Input file")


def assert_vba_and_ribbon_intact(before: dict[str, bytes], path: Path) -> None:
    after = read_parts(path.read_bytes())
    build.check_content_types(after)  # still macro-enabled
    assert build.check_customui_relationship(after) == CUSTOMUI_PART
    assert after[CUSTOMUI_PART] == before[CUSTOMUI_PART]
    assert after["xl/vbaProject.bin"] == before["xl/vbaProject.bin"]
    modules = build.read_vba_modules(path.read_bytes())
    assert {"xlwings", "Dictionary", "PyxlDel"} <= set(modules)
    assert build.unresolved_callbacks(after[CUSTOMUI_PART], modules) == []


# -------------------------------------------------------------------------------------------- run forecast


def test_run_forecast_writes_the_report_sheets(book, capsys):
    before = read_parts(book.read_bytes())
    layouts = expected_layouts(book)
    assert cli("run_forecast", "--workbook", book) == EXIT_OK
    out = capsys.readouterr().out
    assert f"{len(layouts)} sheets written" in out and f"to {book}" in out

    wb = openpyxl.load_workbook(book, keep_vba=True)
    assert wb.sheetnames == START_SHEETS + [layout.name for layout in layouts]
    for layout in layouts:
        ws = wb[layout.name]
        assert owner_of(ws.defined_names[sheet_layout.OWNER_NAME].attr_text, ws.title, workbook_id_of(wb)) == \
            layout.owner
        first = layout.blocks[0]
        assert ws.cell(first.row, first.col).value == first.values[0, 0]  # the title, as laid out
    portfolio = next(layout for layout in layouts if layout.kind == "mixed")
    values = portfolio.areas["values"]
    assert wb[portfolio.name].cell(values.first_row, values.first_col).value == pytest.approx(
        float(next(b for b in portfolio.blocks if b.row == values.first_row and b.col == values.first_col
                   ).values[0, 0]))
    assert run_info_input(book) == "pyxl_del.xlsm Data"
    assert data_rows(book)[0] == ["AGREEMENT_ID", "DISBURSAL_MONTH", "MOB", "PRODUCT_TYPE", "STATE_MODEL",
                                  "PRINCIPLE_OUTSTANDING"]
    assert_vba_and_ribbon_intact(before, book)


def test_user_sheets_survive_and_a_rerun_replaces_only_own_sheets(book):
    add_user_sheets(book, {"My notes": [["keep me", 42]]})
    assert cli("run_forecast", "--workbook", book) == EXIT_OK
    first = openpyxl.load_workbook(book).sheetnames
    assert first[:4] == START_SHEETS + ["My notes"]
    before = read_parts(book.read_bytes())
    assert cli("run_forecast", "--workbook", book) == EXIT_OK
    wb = openpyxl.load_workbook(book)
    assert wb.sheetnames == first  # replaced in place: no duplicates, no "Calibration1"
    assert [c.value for c in wb["My notes"][1]] == ["keep me", 42]
    assert sheet_layout.OWNER_NAME not in wb["My notes"].defined_names
    assert_vba_and_ribbon_intact(before, book)


def test_a_user_sheet_with_a_report_name_is_an_error(book, capsys):
    add_user_sheets(book, {"calibration": [["my own calibration"]]})  # Excel compares sheet names ignoring case
    unchanged = book.read_bytes()
    assert cli("run_forecast", "--workbook", book) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "'calibration'" in err and "did not write" in err and "Traceback" not in err
    assert book.read_bytes() == unchanged


def test_selection_is_forecast_and_remembered_for_refresh(book, capsys):
    rows = data_rows(book)
    cohorts = sorted({r[1] for r in rows[1:]})[-6:]
    subset = [rows[0]] + [r for r in rows[1:] if r[1] in cohorts]
    add_user_sheets(book, {"Q3 panel": subset})
    selected = f"'Q3 panel'!A1:F{len(subset)}"
    assert cli("run_forecast", "--workbook", book, "--selection", selected) == EXIT_OK
    assert run_info_input(book) == f"pyxl_del.xlsm {selected}"
    assert OpenpyxlBook(book).get_name(ribbon.SOURCE_NAME) == Ref("Q3 panel", f"A1:F{len(subset)}")
    portfolio = openpyxl.load_workbook(book)["Portfolio_DEL30"]
    assert portfolio.cell(4, 1).value == cohorts[0]  # the first cohort row of the table

    assert cli("refresh_report", "--workbook", book) == EXIT_OK
    assert run_info_input(book) == f"pyxl_del.xlsm {selected}"
    # The last six cohorts: the oldest has five MOB steps, so this forecast is ILLUSTRATIVE; the whole sample is not.
    assert ": ILLUSTRATIVE, 3 of 3 segments rest on fewer than 6" in capsys.readouterr().out

    assert cli("run_forecast", "--workbook", book) == EXIT_OK  # one cell selected: the Data sheet
    assert run_info_input(book) == "pyxl_del.xlsm Data"
    assert "ILLUSTRATIVE" not in capsys.readouterr().out
    assert OpenpyxlBook(book).get_name(ribbon.SOURCE_NAME) is None


def test_a_forecast_from_two_months_of_data_says_illustrative(book, capsys):
    # The sample's first two months only (its first cohort at MOB 0 and 1, the second at MOB 0): one MOB step.
    rows = data_rows(book)
    first, second = sorted({r[1] for r in rows[1:]})[:2]
    subset = [rows[0]] + [r for r in rows[1:] if (r[1] == first and r[2] <= 1) or (r[1] == second and r[2] == 0)]
    add_user_sheets(book, {"New book": subset})
    assert cli("run_forecast", "--workbook", book, "--selection", f"'New book'!A1:F{len(subset)}") == EXIT_OK
    out = capsys.readouterr().out
    assert ": ILLUSTRATIVE, 3 of 3 segments rest on fewer than 6 MOB steps of data (sheet 'Summary', Caveats)" in out
    summary = openpyxl.load_workbook(book)["Summary"]
    assert any(isinstance(c.value, str) and c.value.startswith("ILLUSTRATIVE forecast: every segment")
               for row in summary.iter_rows() for c in row)


def test_the_selection_saved_in_the_file_is_used(book):
    rows = data_rows(book)
    add_user_sheets(book, {"Mine": rows[:2000]}, selection=Ref("Mine", "A1:F2000"))
    assert cli("run_forecast", "--workbook", book) == EXIT_OK
    assert run_info_input(book) == "pyxl_del.xlsm Mine!A1:F2000"


def test_whole_columns_selected_are_read_row_by_row(book):
    """Columns A:F clicked on Data: openpyxl handed them back as six "rows" of 34,876 cells, and the loan ids were
    taken for the header ("missing mapped columns ... present: AGREEMENT_ID, CASH-2023-07-000001, ..."); as
    --selection, "Data!A:F" was "not a sheet or range reference"."""
    rows = data_rows(book)
    add_user_sheets(book, {"Mine": rows[:2000]}, selection=Ref("Mine", "A:F"))
    assert OpenpyxlBook(book).read_rows(Ref("Mine", "A:F"))[:2] == [tuple(r) for r in rows[:2]]
    assert cli("run_forecast", "--workbook", book) == EXIT_OK
    assert run_info_input(book) == "pyxl_del.xlsm Mine!A:F"
    assert cli("run_forecast", "--workbook", book, "--selection", "Data!A:F") == EXIT_OK
    assert OpenpyxlBook(book).get_name(ribbon.SOURCE_NAME) == Ref("Data", "A:F")
    assert cli("refresh_report", "--workbook", book) == EXIT_OK


def test_a_selection_on_a_report_sheet_falls_back_to_data(book):
    assert cli("run_forecast", "--workbook", book) == EXIT_OK
    assert cli("run_forecast", "--workbook", book, "--selection", "Portfolio_DEL30!A3:F20") == EXIT_OK
    assert run_info_input(book) == "pyxl_del.xlsm Data"


def test_backtest_sheets_sit_beside_the_report(book):
    assert cli("run_forecast", "--workbook", book) == EXIT_OK
    report_sheets = openpyxl.load_workbook(book).sheetnames
    assert cli("backtest", "--workbook", book) == EXIT_OK
    both = openpyxl.load_workbook(book).sheetnames
    assert both[:len(report_sheets)] == report_sheets and len(both) > len(report_sheets)
    assert cli("run_forecast", "--workbook", book) == EXIT_OK
    assert openpyxl.load_workbook(book).sheetnames == both  # the backtest's sheets are not the report's


def test_bad_data_is_a_readable_error(book, capsys):
    add_user_sheets(book, {"Broken": [["AGREEMENT_ID", "MOB"], ["a", 1]]})
    assert cli("run_forecast", "--workbook", book, "--selection", "Broken!A1:B2") == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "missing mapped column" in err and "Traceback" not in err


def test_config_next_to_the_workbook_is_used(book):
    (book.parent / "config.toml").write_text("[forecast]\nmax_mob = 10\n")
    assert cli("run_forecast", "--workbook", book) == EXIT_OK
    header = [c.value for c in openpyxl.load_workbook(book)["Portfolio_DEL30"][3]]
    assert [v for v in header if isinstance(v, int)][-1] == 10


# ------------------------------------------------------------------------------------ the other buttons


def test_open_config_creates_the_defaults_next_to_the_workbook(book, capsys):
    unchanged = book.read_bytes()
    assert cli("open_config", "--workbook", book) == EXIT_OK
    created = book.parent / "config.toml"
    assert f"Config: {created} (created with the defaults)" in capsys.readouterr().out
    assert load_config(created) == Config()
    assert cli("open_config", "--workbook", book) == EXIT_OK
    assert capsys.readouterr().out.strip() == f"Config: {created}"
    assert book.read_bytes() == unchanged


def test_diagnostics(book, capsys):
    unchanged = book.read_bytes()
    assert cli("diagnostics", "--workbook", book) == EXIT_OK
    out = capsys.readouterr().out
    assert f"pyxl_del {pyxl_del.__version__}" in out and sys.executable in out
    assert "xlwings 0.37.8 (pinned, ok)" in out
    assert "Config: none found: built-in defaults (valid)" in out
    assert "Data Data: all mapped columns present" in out
    assert book.read_bytes() == unchanged

    (book.parent / "config.toml").write_text("[columns]\nloan_id = \"LOAN\"\n")
    assert cli("diagnostics", "--workbook", book) == EXIT_OK
    assert "missing columns LOAN ([columns] loan_id)" in capsys.readouterr().out
    (book.parent / "config.toml").write_text("[forecast]\nmax_mob = -3\n")
    assert cli("diagnostics", "--workbook", book) == EXIT_OK
    assert "(INVALID: " in capsys.readouterr().out


def test_stress_and_dashboard_keep_each_other_and_read_the_scenarios_sheet(book):
    assert cli("run_forecast", "--workbook", book) == EXIT_OK
    assert cli("stress_test", "--workbook", book) == EXIT_OK
    assert cli("risk_dashboard", "--workbook", book) == EXIT_OK
    names = openpyxl.load_workbook(book).sheetnames
    assert {"Stress test", "Scenarios", "Risk dashboard"} <= set(names)
    user = OpenpyxlBook(book)  # a scenario of the user's own, added on the Scenarios sheet
    ws = user.wb["Scenarios"]
    row = ws.max_row + 1
    for col, value in enumerate(["my_shock", "mine", -2.5, -2.5, 0.0], start=1):
        ws.cell(row, col, value)
    user.save()
    assert cli("stress_test", "--workbook", book) == EXIT_OK
    wb = openpyxl.load_workbook(book)
    assert wb.sheetnames == names
    assert "my_shock" in [c.value for c in wb["Scenarios"]["A"]]
    assert "my_shock" in [c.value for row in wb["Stress test"].iter_rows() for c in row]


def sheet_table(path: Path, sheet: str, header: str) -> dict[str, list]:
    """Rows of a sheet below the row whose first cell is ``header``, by their first cell."""
    rows = list(openpyxl.load_workbook(path)[sheet].iter_rows(values_only=True))
    top = next(i for i, row in enumerate(rows) if row[0] == header)
    return {row[0]: list(row[1:]) for row in rows[top:] if row[0] is not None}


def test_an_edited_scenarios_sheet_changes_the_stress_output(book):
    assert cli("stress_test", "--workbook", book) == EXIT_OK
    before = sheet_table(book, "Stress test", "Metric")
    severe = before["Metric"].index("Severe recession")  # the scenario severe_recession, labelled
    user = OpenpyxlBook(book)  # the user deepens a built-in scenario on the sheet: Z -3 in every month it lists
    ws = user.wb["Scenarios"]
    row = next(r for r in range(1, ws.max_row + 1) if ws.cell(r, 1).value == "severe_recession")
    months = [c for c in range(3, ws.max_column + 1) if ws.cell(row, c).value is not None]
    assert len(months) > 12
    for col in months:
        ws.cell(row, col).value = -3.0
    user.save()
    assert cli("stress_test", "--workbook", book) == EXIT_OK
    after = sheet_table(book, "Stress test", "Metric")
    assert after["Metric"] == before["Metric"]
    assert after["Lowest Z"][severe] == -3.0 and before["Lowest Z"][severe] == -1.5
    for metric in ("Expected loss, lifetime", "Write-offs, lifetime"):
        assert after[metric][severe] > before[metric][severe] * 1.05, metric
        others = [i for i in range(len(before["Metric"])) if i != severe]
        assert [after[metric][i] for i in others] == pytest.approx([before[metric][i] for i in others])
    z = sheet_table(book, "Scenarios", "Scenario")["severe_recession"]
    assert [v for v in z[1:] if v is not None] == [-3.0] * len(months)  # written back as it was read


def test_risk_dashboard_shows_the_portfolio_roe(book):
    assert cli("risk_dashboard", "--workbook", book) == EXIT_OK
    kpis = sheet_table(book, "Risk dashboard", "Indicator")
    roe = kpis["ROE (steady book) (ILLUSTRATIVE)"][0]  # the workbook's config leaves the economics at their defaults
    assert isinstance(roe, float) and -1 < roe < 10
    assert kpis["New lending a month"][0] > 0 and "Expected loss, lifetime (ILLUSTRATIVE)" in kpis
    cells = [c for row in openpyxl.load_workbook(book)["Risk dashboard"].iter_rows(values_only=True) for c in row]
    assert not any(isinstance(c, str) and "ROE not shown" in c for c in cells)


def test_risk_dashboard_without_a_twin_says_why(book):
    """A [policy] for segments the data does not have: no twin figures, the rest of the dashboard as usual."""
    (book.parent / "config.toml").write_text('[policy]\nsegments = { OTHER = { apr = 0.2, budget_share = 1.0 } }\n')
    assert cli("risk_dashboard", "--workbook", book) == EXIT_OK
    kpis = sheet_table(book, "Risk dashboard", "Indicator")
    assert not any(str(k).startswith("ROE (steady book)") for k in kpis)
    assert "Expected loss, lifetime (ILLUSTRATIVE)" in kpis  # the workbook's config leaves the LGD at its default
    cells = [c for row in openpyxl.load_workbook(book)["Risk dashboard"].iter_rows(values_only=True) for c in row]
    (note,) = [c for c in cells if isinstance(c, str) and c.startswith("WARNING: ROE not shown")]
    assert "does not match the data's segments" in note and "OTHER" in note


# ------------------------------------------------------------------------------------- optimise and apply


def test_optimise_then_apply_the_edited_policy(book, capsys):
    assert cli("run_forecast", "--workbook", book) == EXIT_OK
    report_sheets = openpyxl.load_workbook(book).sheetnames
    assert cli("optimise", "--workbook", book) == EXIT_OK
    assert "portfolio ROE now" in capsys.readouterr().out
    wb = openpyxl.load_workbook(book)
    decision_sheets = ["Decision summary", "Recommendations", "Frontier", "Policy"]
    assert wb.sheetnames == [*report_sheets, *decision_sheets]  # the report stays
    assert OpenpyxlBook(book).own_sheets()["Policy"] == "decision"
    policy = sheet_table(book, "Policy", "Segment")  # business headers; Apply reads them back as the fields
    segments = [s for s in policy if s != "Segment"]
    assert segments == ["CASH LOAN", "CD", "TW/Moto"]

    # The user raises CD's cut-off on the sheet (its APR can only stay: these data have no APR column, so the
    # allowed price is today's; test_apply_policy_refuses_a_bad_policy_sheet shows another refused).
    user = OpenpyxlBook(book)
    ws = user.wb["Policy"]
    row = next(r for r in range(1, ws.max_row + 1) if ws.cell(r, 1).value == "CD")
    cutoff = float(ws.cell(row, 2).value) + 12.5
    ws.cell(row, 2).value = cutoff
    user.save()
    unchanged = book.read_bytes()
    assert cli("apply_policy", "--workbook", book) == EXIT_OK
    out = capsys.readouterr().out
    config, log = book.parent / "config.toml", book.parent / "decisions.jsonl"
    assert f"to {config} [policy]" in out and str(log) in out
    assert book.read_bytes() == unchanged  # the workbook is not written
    applied = load_config(config).policy.segments
    assert list(applied) == segments and applied["CD"].cutoff == pytest.approx(cutoff)
    from pyxl_del.decision.audit import read_log, verify_log

    ((_, entry),) = read_log(log)
    assert entry["after"]["segments"]["CD"]["cutoff"] == pytest.approx(cutoff) and entry["expected_impact"]
    assert verify_log(log).ok
    assert cli("optimise", "--workbook", book) == EXIT_OK  # again: its own sheets replaced in place
    assert openpyxl.load_workbook(book).sheetnames == [*report_sheets, *decision_sheets]


def edit_policy(book: Path, segment: str, column: int | None, value=None) -> None:
    """Set a cell of ``segment``'s row on the Policy sheet, or (column None) clear the row."""
    user = OpenpyxlBook(book)
    ws = user.wb["Policy"]
    row = next(r for r in range(1, ws.max_row + 1) if ws.cell(r, 1).value == segment)
    for col in [column] if column else range(1, 5):
        ws.cell(row, col).value = value
    user.save()


@pytest.mark.parametrize("edit, message", [
    (("CD", 3, "twelve"), "pyxl_del.xlsm Policy!A4:D7: row 3 (CD): apr: Input should be a valid number"),
    (("CD", 4, -0.2), "pyxl_del.xlsm Policy!A4:D7: row 3 (CD): budget_share: Input should be greater than or equal"),
    (("CD", 1, "CASH LOAN"), "pyxl_del.xlsm Policy!A4:D7: row 3: segment 'CASH LOAN' is already in row 2"),
    (("CD", None), "the policy does not match the data's segments: missing ['CD']"),
    # Priced where the engine itself would refuse to lend (the CLI's apply refused it; the button did not).
    (("CD", 3, 0.9), "row 3 (CD): apr 90.000% is outside the allowed"),
])
def test_apply_policy_refuses_a_bad_policy_sheet(book, edit, message, capsys):
    assert cli("optimise", "--workbook", book) == EXIT_OK
    edit_policy(book, *edit)
    assert cli("apply_policy", "--workbook", book) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert not (book.parent / "config.toml").exists() and not (book.parent / "decisions.jsonl").exists()


def test_apply_policy_without_a_policy_sheet(book, capsys):
    assert cli("apply_policy", "--workbook", book) == EXIT_BAD_INPUT
    assert "no 'Policy' sheet: run Optimise first" in capsys.readouterr().err
    assert not (book.parent / "config.toml").exists()


def test_unknown_action_is_refused(book):
    with pytest.raises(WorkbookError, match="unknown ribbon action 'fly' — known: run_forecast"):
        ribbon.run_headless("fly", book)


# --------------------------------------------------------------------------------- ownership and ribbon


def test_plan_replacement():
    own = {"A_DEL30": "report", "Run info": "report", "Backtest": "backtest"}
    layouts = [sheet_layout.SheetLayout(name="A_DEL30", kind="mixed", title="", owner="report"),
               sheet_layout.SheetLayout(name="Run info", kind="run_info", title="", owner="report")]
    names = ["Data", *own]
    assert plan_replacement(names, own, layouts) == ["A_DEL30", "Run info"]
    dropped = {**own, "B_DEL30": "report"}  # a segment gone from the data: its old sheet goes too
    assert plan_replacement([*names, "B_DEL30"], dropped, layouts) == ["A_DEL30", "Run info", "B_DEL30"]
    with pytest.raises(SheetConflictError, match="'run INFO'"):
        plan_replacement(["Data", "run INFO"], {}, layouts)


def test_delete_own_sheets_refuses_user_sheets(book):
    assert cli("run_forecast", "--workbook", book) == EXIT_OK
    wb = OpenpyxlBook(book)
    own = list(wb.own_sheets())
    with pytest.raises(WorkbookError, match="'Data' was not written by pyxl_del"):
        wb.delete_own_sheets(["Data"])
    wb.delete_own_sheets(own)
    assert wb.sheet_names() == START_SHEETS and wb.own_sheets() == {}


def test_openpyxl_alone_loses_the_ribbon(template, tmp_path):
    """Why OpenpyxlBook.save restores the ribbon: a plain keep_vba save drops its relationship."""
    path = tmp_path / "plain.xlsm"
    path.write_bytes(template)
    openpyxl.load_workbook(path, keep_vba=True).save(path)
    saved = read_parts(path.read_bytes())
    with pytest.raises(build.BuildError, match="ui/extensibility"):
        build.check_customui_relationship(saved)
    restored = restore_ribbon(saved, read_parts(template))
    assert build.check_customui_relationship(restored) == CUSTOMUI_PART


@pytest.mark.parametrize("text, ref, shown", [
    ("Data", Ref("Data"), "Data"),
    ("Data!A1:F10", Ref("Data", "A1:F10"), "Data!A1:F10"),
    ("='My sheet'!$A$1:$F$10", Ref("My sheet", "A1:F10"), "'My sheet'!A1:F10"),
    ("'it''s'!b2", Ref("it's", "B2:B2"), "'it''s'!B2:B2"),
    ("A1!A1:B2", Ref("A1", "A1:B2"), "'A1'!A1:B2"),
    ("=Data!$A:$F", Ref("Data", "A:F"), "Data!A:F"),  # whole columns, as a user clicks the column headers
])
def test_ref_parse_and_show(text, ref, shown):
    assert Ref.parse(text) == ref and str(ref) == shown and Ref.parse(str(ref)) == ref


def test_ref_parse_rejects_garbage():
    with pytest.raises(WorkbookError, match="not a sheet or range reference"):
        Ref.parse("Data!A1:")


# ------------------------------------------------------------------------------------- the Excel front end


class FakeApp:
    def __init__(self):
        self.alerts, self.status_bar = [], None

    def alert(self, prompt, title=None, buttons="ok", mode=None, callback=None):
        self.alerts.append((prompt, title, mode))
        return "ok"


class HeadlessCaller(OpenpyxlBook):
    """The workbook a button was clicked in, stood in for by a file (run_action's front end is what is tested)."""

    def __init__(self, path):
        super().__init__(path)
        self.book = SimpleNamespace(app=FakeApp())


def test_run_action_shows_errors_as_messages_not_tracebacks(book, monkeypatch):
    add_user_sheets(book, {"Calibration": [["mine"]]})
    caller = HeadlessCaller(book)
    monkeypatch.setattr(XlwingsBook, "caller", classmethod(lambda cls: caller))
    ribbon.run_action("run_forecast")
    ((prompt, title, mode),) = caller.book.app.alerts
    assert mode == "critical" and title == "pyxl_del: run_forecast"
    assert "'Calibration'" in prompt and "Traceback" not in prompt

    ribbon.run_action("diagnostics")
    prompt, _, mode = caller.book.app.alerts[-1]
    assert mode == "info" and prompt.startswith(f"pyxl_del {pyxl_del.__version__}")


def test_run_action_reports_a_forecast_in_the_status_bar(book, monkeypatch):
    caller = HeadlessCaller(book)
    monkeypatch.setattr(XlwingsBook, "caller", classmethod(lambda cls: caller))
    ribbon.run_action("run_forecast")
    assert caller.book.app.alerts == []
    assert caller.book.app.status_bar.startswith("pyxl_del: Forecast of ")


class FakeRange:
    def __init__(self, sheet, address, raw_value):
        self.sheet, self.address, self.raw_value = sheet, address, raw_value
        self.count = sum(len(r) for r in raw_value) if isinstance(raw_value, tuple) else 1


class FakeName:
    def __init__(self, name, refers_to):
        self.name, self.refers_to = name, refers_to
        self.api = SimpleNamespace(Visible=True)


class FakeNames(list):
    """Like xlwings' Names: iterable, with add."""

    def add(self, name, refers_to):
        self.append(FakeName(name, refers_to))
        return self[-1]


class FakeSheets(list):
    """Like xlwings' Sheets: iterable, indexed by position or by name."""

    def __getitem__(self, key):
        return next(s for s in self if s.name == key) if isinstance(key, str) else super().__getitem__(key)


def test_xlwings_book_reads_com_values(tmp_path):
    """XlwingsBook over objects shaped like xlwings' (no Excel here): COM values, names, the selection."""
    cells = (("AGREEMENT_ID", "MOB", None), ("a", 0.0, None), ("a", -2146826246, None))
    sheet = SimpleNamespace(name="Data", names=[])
    sheet.used_range = FakeRange(sheet, "$A$1:$C$3", cells)
    sheet.range = lambda address: FakeRange(sheet, address, cells[:2])
    report_sheet = SimpleNamespace(name="Portfolio_DEL30", names=[FakeName(
        "Portfolio_DEL30!pyxl_del_sheet", "=" + marker("mixed", "b0b0", "Portfolio_DEL30"))])
    # A copy ("Move or Copy" takes the marker along) and a sheet whose marker is of an earlier format are the user's.
    copied = SimpleNamespace(name="Portfolio_DEL30 (2)", names=[FakeName("'Portfolio_DEL30 (2)'!pyxl_del_sheet",
                                                                         report_sheet.names[0].refers_to)])
    older = SimpleNamespace(name="Old", names=[FakeName("Old!pyxl_del_sheet", '="report"')])
    xl = SimpleNamespace(name="b.xlsm", fullname=str(tmp_path / "b.xlsm"),
                         sheets=FakeSheets([sheet, report_sheet, copied, older]),
                         names=FakeNames([FakeName("pyxl_del_source", "=Data!$A$1:$B$2"),
                                          FakeName("pyxl_del_workbook", '="b0b0"')]))
    book = XlwingsBook(xl)
    assert book.folder == tmp_path and book.sheet_names() == ["Data", "Portfolio_DEL30", "Portfolio_DEL30 (2)", "Old"]
    assert book.read_frame(Ref("Data", "A1:B2")).to_dict("list") == {"AGREEMENT_ID": ["a"], "MOB": [0.0]}
    with pytest.raises(WorkbookError, match=r"column 'MOB' has cell errors \(#N/A\) in row 3"):
        book.read_frame(Ref("Data"))
    assert book.own_sheets() == {"Portfolio_DEL30": "mixed"}
    assert book.get_name("pyxl_del_source") == Ref("Data", "A1:B2")
    xl.selection = FakeRange(sheet, "$A$1", "x")
    sheet.book = xl
    assert book.selection() is None  # one cell: no table selected
    assert book.active_cell() == Ref("Data", "A1")
    xl.selection = FakeRange(sheet, "$B$2:$C$3", cells)
    assert book.selection() == Ref("Data", "B2:C3")
    assert book.active_cell() == Ref("Data", "B2")
    xl.selection = FakeRange(SimpleNamespace(name="Other", book=object()), "$A$1", "x")  # another workbook's
    assert book.active_cell() is None


def interface_gaps(cls) -> list[str]:
    """Members of the Workbook interface that ``cls`` lacks."""
    from pyxl_del.excel.workbook import Workbook

    return [name for name in vars(Workbook) if not name.startswith("_") and not hasattr(cls, name)]


def test_both_workbooks_implement_the_whole_interface():
    assert "active_cell" in vars(pyxl_del.excel.workbook.Workbook)
    assert interface_gaps(OpenpyxlBook) == [] and interface_gaps(XlwingsBook) == []
    without = type("Older", (), {n: v for n, v in vars(OpenpyxlBook).items() if n != "active_cell"})
    assert interface_gaps(without) == ["active_cell"]


def test_openpyxl_book_active_cell(book):
    assert OpenpyxlBook(book, selection=Ref("Data", "C5:D9")).active_cell() == Ref("Data", "C5")
    assert OpenpyxlBook(book, selection=Ref("Data")).active_cell() is None
    add_user_sheets(book, {"Mine": [["a", "b"], [1, 2]]}, selection=Ref("Mine", "B2:B2"))
    assert OpenpyxlBook(book).active_cell() == Ref("Mine", "B2")


class FakeXlSheet:
    """An Excel sheet as xlwings shows it, just enough for XlwingsBook.write_layouts. ``kind``: the owner of a sheet
    pyxl_del wrote in this book (a marker with the book's id and the sheet's name), or a marker's formula as is."""

    def __init__(self, book, name, kind=None):
        self.book, self.name = book, name
        if kind and not kind.startswith('="'):
            kind = "=" + marker(kind, book.wid, name)
        self.names = [FakeName(f"{name}!{sheet_layout.OWNER_NAME}", kind)] if kind else []

    def copy(self, before=None, after=None):
        target = (before or after).book
        position = target.sheets.index(before) if before else target.sheets.index(after) + 1
        copied = FakeXlSheet(target, self.name)
        copied.names = [FakeName(f"{self.name}!{n.name.split('!')[1]}", n.refers_to) for n in self.names]
        target.sheets.insert(position, copied)
        return copied

    def delete(self):
        assert not self.book.app.display_alerts, "Excel would ask before deleting"
        self.book.sheets.remove(self)

    def activate(self):
        self.book.active = self.name


class FakeXlBook:
    def __init__(self, app, name, sheets, wid="feed"):
        self.app, self.name, self.fullname, self.closed, self.wid = app, name, name, False, wid
        self.names = FakeNames([FakeName("pyxl_del_workbook", f'="{wid}"')] if wid else [])
        self.sheets = FakeSheets(FakeXlSheet(self, n, k) for n, k in sheets)

    def close(self):
        self.closed = True


class FakeXlApp:
    def __init__(self):
        self.display_alerts, self.screen_updating, self.opened = True, True, []
        self.books = SimpleNamespace(open=self._open)

    def _open(self, path):
        scratch = openpyxl.load_workbook(path)
        own = {ws.title: "=" + ws.defined_names[sheet_layout.OWNER_NAME].attr_text for ws in scratch.worksheets}
        self.opened.append(FakeXlBook(self, Path(path).name, list(own.items()), wid=None))
        return self.opened[-1]


def test_xlwings_book_writes_by_copying_rendered_sheets(book):
    """The live path over stand-ins for Excel: replaced sheets go, the new ones take their place, the rest stay."""
    layouts = expected_layouts(book)
    app = FakeXlApp()
    xl = FakeXlBook(app, "pyxl_del.xlsm", [("Data", None), ("Portfolio_DEL30", "report"),
                                           ("Old segment_DEL30", "report"), ("Mine", None), ("Backtest", "backtest")])
    written = XlwingsBook(xl).write_layouts(layouts)
    assert written == [layout.name for layout in layouts]
    assert [s.name for s in xl.sheets] == ["Data", *written, "Mine", "Backtest"]
    assert XlwingsBook(xl).own_sheets() == {**{layout.name: layout.owner for layout in layouts}, "Backtest": "backtest"}
    assert (app.display_alerts, app.screen_updating) == (True, True)
    assert app.opened[0].closed and xl.active == written[0]
    with pytest.raises(SheetConflictError, match="'Mine'"):
        XlwingsBook(xl).write_layouts([sheet_layout.SheetLayout(name="MINE", kind="mixed", title="", owner="report")])


@pytest.mark.libreoffice
def test_libreoffice_opens_a_headless_result(book, tmp_path):
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if soffice is None:
        pytest.skip("LibreOffice (soffice) not installed")
    assert cli("run_forecast", "--workbook", book) == EXIT_OK
    out = tmp_path / "pdf"
    cmd = [soffice, "--headless", "--norestore", f"-env:UserInstallation={(tmp_path / 'lo').as_uri()}",
           "--convert-to", "pdf", "--outdir", str(out), str(book)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    pdf = out / "pyxl_del.pdf"
    assert pdf.exists(), f"soffice failed: {done.returncode} {done.stdout} {done.stderr}"
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, timeout=120).stdout
        assert "Portfolio_DEL30 Actual & Forecast" in text and "Run info" in text


# ---------------------------------------------------------------------------------- the committed workbook


@pytest.mark.slow
def test_run_forecast_on_the_committed_workbook(tmp_path, capsys):
    path = tmp_path / "pyxl_del.xlsm"
    shutil.copy(build.DEFAULT_OUT, path)
    before = read_parts(path.read_bytes())
    add_user_sheets(path, {"My notes": [["keep me"]]})
    layouts = expected_layouts(path)
    assert cli("run_forecast", "--workbook", path) == EXIT_OK
    wb = openpyxl.load_workbook(path, keep_vba=True)
    assert wb.sheetnames == [*START_SHEETS, "My notes", *(layout.name for layout in layouts)]
    assert wb["My notes"]["A1"].value == "keep me"
    assert_vba_and_ribbon_intact(before, path)
    assert "xlwings_udfs" in build.read_vba_modules(path.read_bytes())
