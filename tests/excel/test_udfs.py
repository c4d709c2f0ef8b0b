"""The worksheet functions (udfs/del_udfs.py over pyxl_del/udf.py), called the way Excel calls them.

The `excel` fixture runs xlwings' own UDF machinery off Windows (xlsm/xlwings_win.py): the functions carry xlwings'
metadata (``__xlfunc__``) and every call goes through xlwings.conversion with the arguments' options, as
xlwings.udfs.call_udf does. Cell values are what COM hands over: 2-D tuples, None for a blank cell, floats for
every number, an int code for a cell error.
"""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pyxl_del
from pyxl_del.datasets.sample import generate_sample
from pyxl_del.excel import udf
from pyxl_del.excel.workbook import CELL_ERRORS

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from xlsm.xlwings_win import MISSING, TimeType, windows_udfs  # noqa: E402

UDF_NAMES = ("DEL_ACTUAL", "DEL_CALIBRATION", "DEL_FLAGS", "DEL_FORECAST", "DEL_MATRIX", "DEL_SEGMENTS",
             "DEL_VERSION", "DEL_WARNINGS")
FORMULA_LIKE = ("=HYPERLINK(\"http://example.com\",\"x\")", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)")


@pytest.fixture(scope="module")
def excel():
    """xlwings' UDF runtime with udfs.del_udfs loaded: ``excel.call(func, *args)`` calls like Excel."""
    with windows_udfs() as runtime:
        runtime.module = runtime.load()
        yield runtime


@pytest.fixture(autouse=True)
def fresh_memo():
    for memo in (udf.FITS, udf.TABLES, udf.CONFIGS):
        memo.clear()


def excel_cells(frame: pd.DataFrame) -> tuple:
    """A DataFrame as COM hands a range over: header row, floats for numbers, None for blanks, tuples."""
    def cell(v):
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
            return None
        if isinstance(v, (bool, np.bool_)):
            return bool(v)
        if isinstance(v, (int, float, np.integer, np.floating)):
            return float(v)
        return v
    rows = [tuple(frame.columns)]
    rows += [tuple(cell(v) for v in row) for row in frame.itertuples(index=False, name=None)]
    return tuple(rows)


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    return generate_sample(loans_per_cohort=12, n_cohorts=10)


@pytest.fixture(scope="module")
def cells(panel) -> tuple:
    return excel_cells(panel)


def assert_cells(value) -> list[list]:
    """What Excel receives is a rectangular 2-D list without None or NaN (a blank is "")."""
    assert isinstance(value, list) and value and all(isinstance(r, list) for r in value), value
    width = len(value[0])
    assert all(len(r) == width for r in value), "ragged rows"
    for row in value:
        for v in row:
            assert v is not None, "None in the result"
            assert not (isinstance(v, float) and math.isnan(v)), "NaN in the result"
            assert isinstance(v, (str, int, float)), f"{type(v)} in the result"
    return value


def message(value) -> str:
    """A one-cell message result."""
    assert_cells(value)
    assert len(value) == 1 and len(value[0]) == 1, value
    text = value[0][0]
    assert isinstance(text, str) and text.startswith("#pyxl_del: "), text
    assert "Traceback" not in text and "\n" not in text and len(text) <= udf.MAX_CELL_TEXT
    return text[len("#pyxl_del: "):]


def assert_same_table(a: list[list], b: list[list]) -> None:
    """Equal tables, numbers up to rounding (the file readers and the cells path sum in another order)."""
    assert [len(r) for r in a] == [len(r) for r in b]
    for x, y in zip((v for r in a for v in r), (v for r in b for v in r), strict=True):
        assert x == pytest.approx(y, rel=1e-12, abs=1e-15) if isinstance(x, float) else x == y


def test_result_check_can_fail():
    with pytest.raises(AssertionError, match="ragged"):
        assert_cells([["a", 1], ["b"]])
    with pytest.raises(AssertionError, match="NaN"):
        assert_cells([["a", float("nan")]])
    with pytest.raises(AssertionError, match="None"):
        assert_cells([["a", None]])


# ------------------------------------------------------------------------------------------------ metadata


def test_udfs_carry_xlwings_metadata(excel):
    m = excel.module
    found = sorted(n for n in dir(m) if hasattr(getattr(m, n), "__xlfunc__"))
    assert found == sorted(UDF_NAMES)
    for name in UDF_NAMES:
        info = getattr(m, name).__xlfunc__
        assert info["volatile"] is False, name
        assert info["async_mode"] is None, name
        assert "expand" not in info["ret"]["options"], f"{name}: legacy dynamic arrays"
        assert info["category"] == "pyxl_del"
        assert len(info["ret"]["doc"]) <= 255
        for arg in info["args"]:
            assert not arg["doc"].startswith("Positional argument"), f"{name}.{arg['name']} has no help text"
        if info["args"]:
            assert info["call_in_wizard"] is False, f"{name} would recalculate in the function wizard"
            assert info["args"][0]["name"] == "data" and info["args"][0]["options"] == {"convert": "raw"}


def test_optional_arguments_and_defaults(excel):
    args = {a["name"]: a for a in excel.module.DEL_FORECAST.__xlfunc__["args"]}
    assert [n for n in args if "optional" not in args[n]] == ["data", "segment"]
    assert (args["del_type"]["optional"], args["calibrate"]["optional"], args["config"]["optional"]) == \
        ("DEL30", True, None)


def test_vba_wrappers_skip_the_wizard_and_are_not_volatile(excel):
    vba = excel.vba(module=excel.module)
    assert vba.count("Function DEL_") == len(UDF_NAMES)
    assert "Application.Volatile" not in vba
    wizard = 'If (Not Application.CommandBars("Standard").Controls(1).Enabled) Then Exit Function'
    assert vba.count(wizard) == len(UDF_NAMES) - 1  # all but DEL_VERSION, which takes no data
    assert "Function DEL_FORECAST(data, segment, Optional del_type, Optional calibrate, Optional config)" in vba


def test_functions_are_plain_python_without_the_runtime():
    """Off Windows and outside the runtime, xlwings' decorators are no-ops: the module is plain Python."""
    code = ("import udfs.del_udfs as m; assert not hasattr(m.DEL_FORECAST, '__xlfunc__'); "
            "print(m.DEL_VERSION(), m.DEL_FORECAST(42.0, 'CD')[0][0])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split(" ", 1) == [pyxl_del.__version__, "#pyxl_del: data must be a range with a header row, "
                                         "or the path of a .csv or .parquet panel\n"]


# -------------------------------------------------------------------------------------------------- results


def test_del_forecast_spills_the_mixed_table(excel, cells, panel):
    out = assert_cells(excel.call(excel.module.DEL_FORECAST, cells, "CD"))
    expected = pyxl_del.run(panel).wide("CD", "DEL30", "mixed")
    assert out[0] == ["Cohort", *range(len(expected.columns))]
    assert [r[0] for r in out[1:]] == list(expected.index)
    assert all(isinstance(r[0], str) for r in out[1:])
    values = np.array([[np.nan if v == "" else v for v in r[1:]] for r in out[1:]], dtype=float)
    np.testing.assert_allclose(values, expected.to_numpy(dtype=float), equal_nan=True)


def test_a_forecast_from_one_month_of_data_says_illustrative_in_its_corner(excel, panel):
    # The first two cohorts at their first months only: one MOB step of data, forecast to max_mob.
    first, second = sorted(panel["DISBURSAL_MONTH"].unique())[:2]
    young = panel[((panel["DISBURSAL_MONTH"] == first) & (panel["MOB"] <= 1))
                  | ((panel["DISBURSAL_MONTH"] == second) & (panel["MOB"] == 0))]
    cells = excel_cells(young)
    for segment in ("CD", "Portfolio"):
        out = assert_cells(excel.call(excel.module.DEL_FORECAST, cells, segment))
        assert out[0][0] == "Cohort (ILLUSTRATIVE: see DEL_WARNINGS)"
    assert assert_cells(excel.call(excel.module.DEL_ACTUAL, cells, "CD"))[0][0] == "Cohort"  # nothing forecast
    warned = assert_cells(excel.call(excel.module.DEL_WARNINGS, cells))
    assert any(row[0].startswith("ILLUSTRATIVE forecast: every segment") for row in warned[1:])


@pytest.mark.parametrize("name, args, corner", [
    ("DEL_FLAGS", ("CD", "DEL60"), "Cohort"),
    ("DEL_ACTUAL", ("Portfolio",), "Cohort"),
    ("DEL_CALIBRATION", (), "segment"),
    ("DEL_MATRIX", ("TW/Moto", 3.0), "From \\ to"),
    ("DEL_SEGMENTS", (), "Segment"),
    ("DEL_WARNINGS", (), "Warning"),
])
def test_companions_are_rectangular_and_nan_free(excel, cells, name, args, corner):
    out = assert_cells(excel.call(getattr(excel.module, name), cells, *args))
    assert out[0][0] == corner
    assert len(out) > 1


def test_flags_and_actual_match_the_engine(excel, cells, panel):
    result = pyxl_del.run(panel)
    flags = assert_cells(excel.call(excel.module.DEL_FLAGS, cells, "Portfolio", "DEL90"))
    assert {v for r in flags[1:] for v in r[1:]} <= {"ACTUAL", "FORECAST", "MIXED", ""}
    assert [r[1:] for r in flags[1:]] == result.flags_wide("Portfolio", "DEL90").fillna("").values.tolist()
    actual = excel.call(excel.module.DEL_ACTUAL, cells, "CASH LOAN")
    assert sum(v == "" for r in actual[1:] for v in r[1:]) > 0  # future months are blank, not zero


def test_warnings_are_the_runs(excel, cells, panel):
    """=DEL_WARNINGS lists the run's warnings (the thin sample here: tiny cohorts among them); bad data, a message."""
    result = pyxl_del.run(panel)
    shown = assert_cells(excel.call(excel.module.DEL_WARNINGS, cells))
    # A warning longer than a cell may return goes on over the next rows, each "… "; read back, nothing is lost.
    assert any(len(w) > udf.MAX_CELL_TEXT for w in result.warnings)  # the estimator's summary: 1,000+ characters
    assert all(len(r[0]) <= udf.MAX_CELL_TEXT for r in shown)
    rejoined = []
    for (line,) in shown[1:]:
        if line.startswith("… "):
            rejoined[-1] += " " + line[2:]
        else:
            rejoined.append(line)
    assert rejoined == [" ".join(w.split()) for w in result.warnings]
    assert any("fewer than 30 loans at MOB 0" in r[0] for r in shown[1:])
    bad = assert_cells(excel.call(excel.module.DEL_WARNINGS, [["x"], [1]]))
    assert bad[0][0].startswith("#pyxl_del: ")


def test_matrix_rows_sum_to_the_balance_kept(excel, cells):
    # The default weighting is balance: a row sums to the share of the balance still on the book a month later
    # (amortisation leaves it), below 1 for live states, exactly 1 for the absorbing ones.
    out = assert_cells(excel.call(excel.module.DEL_MATRIX, cells, "CD", 6.0))
    states = [r[0] for r in out[1:]]
    assert out[0][1:] == states == list(pyxl_del.Config().buckets.order)
    sums = np.array([sum(r[1:]) for r in out[1:]])
    absorbing = np.isin(states, pyxl_del.Config().buckets.absorbing)
    np.testing.assert_allclose(sums[absorbing], 1.0)
    assert ((sums[~absorbing] > 0.8) & (sums[~absorbing] <= 1.0 + 1e-12)).all() and (sums[~absorbing] < 1).any()


def test_version(excel):
    assert excel.call(excel.module.DEL_VERSION) == [[pyxl_del.__version__]]


def test_calibrate_false_differs_and_blank_arguments_take_defaults(excel, cells):
    f = excel.module.DEL_FORECAST
    default = excel.call(f, cells, "CD")
    assert excel.call(f, cells, "CD", None, None, None) == default  # blank cells
    assert excel.call(f, cells, "CD", "", True, MISSING) == default
    assert excel.call(f, cells, "CD", "del30") == default  # case-insensitive DEL type
    assert excel.call(f, cells, "CD", "DEL30", False) != default


def test_whole_column_reference_is_trimmed(excel, cells):
    blank = (None,) * len(cells[0])
    padded = cells + (blank,) * 500
    assert excel.call(excel.module.DEL_FORECAST, padded, "CD") == excel.call(excel.module.DEL_FORECAST, cells, "CD")


def test_unnamed_columns_are_ignored(excel, cells):
    extra = tuple(row + (None,) for row in cells[:1]) + tuple(row + ("note",) for row in cells[1:])
    assert excel.call(excel.module.DEL_FORECAST, extra, "CD") == excel.call(excel.module.DEL_FORECAST, cells, "CD")


def test_com_dates_work_like_text_months(excel, panel, cells):
    dated = panel.copy()
    dated["DISBURSAL_MONTH"] = [TimeType(int(m[:4]), int(m[5:]), 1, tzinfo=timezone.utc)
                                for m in panel["DISBURSAL_MONTH"]]
    out = excel.call(excel.module.DEL_FORECAST, excel_cells(dated), "CD")
    assert_same_table(out, excel.call(excel.module.DEL_FORECAST, cells, "CD"))


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_data_from_a_file_path(excel, cells, panel, tmp_path, suffix):
    path = tmp_path / f"panel{suffix}"
    panel.to_parquet(path) if suffix == ".parquet" else panel.to_csv(path, index=False)
    from_file = excel.call(excel.module.DEL_FORECAST, str(path), "CD")
    assert_same_table(from_file, excel.call(excel.module.DEL_FORECAST, cells, "CD"))


# ------------------------------------------------------------------------------------------------ text safety


def test_formula_like_segment_names_come_back_as_plain_text(excel, panel):
    weird = panel.copy()
    codes = {s: FORMULA_LIKE[i] for i, s in enumerate(sorted(panel["PRODUCT_TYPE"].unique()))}
    weird["PRODUCT_TYPE"] = weird["PRODUCT_TYPE"].map(codes)
    cells = excel_cells(weird)
    segments = assert_cells(excel.call(excel.module.DEL_SEGMENTS, cells))
    names = [r[0] for r in segments[1:]]
    # Returned unchanged: a UDF result is a value, Excel does not parse it (no apostrophe needed, or wanted).
    assert names == ["Portfolio", *sorted(codes.values())]
    assert all(type(n) is str for n in names)
    calibration = assert_cells(excel.call(excel.module.DEL_CALIBRATION, cells))
    assert {r[0] for r in calibration[1:]} <= set(codes.values())
    table = assert_cells(excel.call(excel.module.DEL_FORECAST, cells, FORMULA_LIKE[0]))
    assert len(table) > 1 and all(type(r[0]) is str and r[0][:2] == "20" for r in table[1:])


# ------------------------------------------------------------------------------------------------- errors


def test_segment_codes_typed_as_numbers_are_found(excel, panel):
    """Product codes kept as numbers reach a function as 101.0 in the data and 101 as the argument: the data's were
    the segments '101.0', which no argument matched ("unknown segment '101' — known: 101.0, ...")."""
    coded = panel.copy()
    codes = {s: 101 + i for i, s in enumerate(sorted(panel["PRODUCT_TYPE"].unique()))}
    coded["PRODUCT_TYPE"] = coded["PRODUCT_TYPE"].map(codes)
    cells = excel_cells(coded)
    assert [r[0] for r in assert_cells(excel.call(excel.module.DEL_SEGMENTS, cells))] == \
        ["Segment", "Portfolio", "101", "102", "103"]
    by_code = assert_cells(excel.call(excel.module.DEL_FORECAST, cells, 102.0))
    by_name = assert_cells(excel.call(excel.module.DEL_FORECAST, excel_cells(panel), "CD"))
    assert_same_table(by_code, by_name)
    # A column with the code as a number in some cells and as text in others is still one segment.
    mixed = [list(row) for row in cells]
    column = mixed[0].index("PRODUCT_TYPE")
    for row in mixed[1::2]:
        row[column] = str(int(row[column]))
    segments = assert_cells(excel.call(excel.module.DEL_SEGMENTS, tuple(map(tuple, mixed))))
    assert [r[0] for r in segments] == ["Segment", "Portfolio", "101", "102", "103"]


def test_a_segment_name_that_reads_alike_is_found(excel, panel):
    """A Mac types Vietnamese decomposed, a cell may hold 'cd' for 'CD': the name looked the same as a known one in
    the message and was refused."""
    import unicodedata

    named = panel.copy()
    named["PRODUCT_TYPE"] = named["PRODUCT_TYPE"].replace({"CASH LOAN": "Vay tiền mặt", "CD": "Xe máy  trả góp"})
    cells = excel_cells(named)
    exact = assert_cells(excel.call(excel.module.DEL_FORECAST, cells, "Vay tiền mặt"))
    for typed in (unicodedata.normalize("NFD", "Vay tiền mặt"), "vay tiền mặt", " Vay  tiền mặt"):
        assert_same_table(assert_cells(excel.call(excel.module.DEL_FORECAST, cells, typed)), exact)
    assert_same_table(assert_cells(excel.call(excel.module.DEL_FORECAST, cells, "portfolio")),
                      assert_cells(excel.call(excel.module.DEL_FORECAST, cells, "Portfolio")))
    assert len(assert_cells(excel.call(excel.module.DEL_FORECAST, cells, "Xe máy trả góp"))) > 1
    # Two segments that read alike: the one meant cannot be told, and the message shows both as they are.
    twins = named.copy()
    twins.loc[twins["PRODUCT_TYPE"] == "TW/Moto", "PRODUCT_TYPE"] = "Vay tiền mặt "
    text = message(excel.call(excel.module.DEL_FORECAST, excel_cells(twins), "vay tiền mặt"))
    assert text == "segment 'vay tiền mặt' reads like each of 'Vay tiền mặt', 'Vay tiền mặt ': give one exactly"


def test_unknown_segment_message(excel, cells):
    """The known names are quoted (a doubled or trailing space shows) and the Portfolio is one of them."""
    text = message(excel.call(excel.module.DEL_FORECAST, cells, "CASHH"))
    assert text == "unknown segment 'CASHH' — known: 'Portfolio', 'CASH LOAN', 'CD', 'TW/Moto'"


@pytest.mark.parametrize("name, args, expected", [
    ("DEL_FORECAST", ("CD", "DEL45"), "del_type: Input should be 'DEL30', 'DEL60' or 'DEL90' (got 'DEL45')"),
    ("DEL_FORECAST", (None,), "segment: Field required"),
    ("DEL_FORECAST", ("CD", "DEL30", "maybe"), "calibrate: Input should be a valid boolean"),
    ("DEL_MATRIX", ("CD", 6.5), "mob: a MOB is a whole number from 0 to 600 (got 6.5)"),
    ("DEL_MATRIX", ("CD", -1.0), "mob: a MOB is a whole number from 0 to 600 (got -1.0)"),
    ("DEL_MATRIX", ("CD", True), "mob: a MOB is a whole number from 0 to 600 (got True)"),  # not MOB 1
    ("DEL_MATRIX", ("CD", 400.0), "MOB step 400 is outside"),
    ("DEL_MATRIX", ("Portfolio", 1.0), "Portfolio has no transition matrix of its own (its DEL is the segments' "
                                       "mean): give a segment — 'CASH LOAN', 'CD', 'TW/Moto'"),
    ("DEL_FORECAST", ("CD", "DEL30", True, "/no/such/config.toml"), "config file not found: /no/such/config.toml"),
])
def test_argument_errors_are_short_messages(excel, cells, name, args, expected):
    assert message(excel.call(getattr(excel.module, name), cells, *args)).startswith(expected)


NA, REF = -2146826246, -2146826265  # the codes COM hands over for #N/A and #REF!


@pytest.mark.parametrize("name, args, expected", [
    ("DEL_FORECAST", ("CD", "DEL30", True, NA), "config: the cell holds the error #N/A"),
    ("DEL_FORECAST", (NA,), "segment: the cell holds the error #N/A"),
    ("DEL_FORECAST", ("CD", REF), "del_type: the cell holds the error #REF!"),
    ("DEL_FORECAST", ("CD", "DEL30", NA), "calibrate: the cell holds the error #N/A"),
    ("DEL_MATRIX", ("CD", NA), "mob: the cell holds the error #N/A"),
    ("DEL_WARNINGS", (NA,), "config: the cell holds the error #N/A"),
])
def test_a_cell_error_in_any_argument_is_named(excel, cells, name, args, expected):
    """xlwings turned an error cell into a blank before pyxl_del saw it: DEL_FORECAST(...,#N/A) as its config
    silently took the defaults, and #N/A as the segment read "Field required"."""
    assert message(excel.call(getattr(excel.module, name), cells, *args)).startswith(expected)


def test_no_text_longer_than_a_cell_returns(excel, cells):
    """One string of 256 characters or more in a result makes Excel show #VALUE! for the whole spill (xlwings issue
    #456): a message of 255 characters behind its "#pyxl_del: " prefix was 266."""
    amounts = (cells[0],) + tuple((*r[:5], f"{r[5]:,.2f}", *r[6:]) for r in cells[1:])  # EAD typed as '31,784.69'
    assert len(message(excel.call(excel.module.DEL_FORECAST, amounts, "CD"))) > 200
    long = "what it is. " + "x" * 300 + " What to do."
    assert len(udf.cell_text(long)) == 255 and udf.cell_text(long).startswith("what it is. xx")
    assert " … " in udf.cell_text(long) and udf.cell_text(long).endswith("xx What to do.")
    assert udf.cell_text("x" * 255) == "x" * 255
    assert udf.cell_text(1.5) == 1.5


def test_an_empty_data_cell_is_not_the_working_directory(excel, panel, tmp_path, monkeypatch):
    """=DEL_FORECAST(A1, ...) where A1's formula gives "": Path("") is ".", which read a panel from the folder the
    server runs in."""
    panel.to_csv(tmp_path / "panel.csv", index=False)
    monkeypatch.chdir(tmp_path)
    for blank in ("", "   "):
        assert message(excel.call(excel.module.DEL_FORECAST, blank, "CD")).startswith("data is empty")


def test_a_config_path_with_spaces_around_it_is_found(excel, cells, tmp_path):
    (tmp_path / "config.toml").write_text("[forecast]\nmax_mob = 12\n")
    table = assert_cells(excel.call(excel.module.DEL_FORECAST, cells, "CD", "DEL30", True, f" {tmp_path}/config.toml "))
    assert table[0][-1] == 12.0


def test_data_errors_are_short_messages(excel, cells, tmp_path):
    f = excel.module.DEL_FORECAST
    assert message(excel.call(f, 42.0, "CD")).startswith("data must be a range with a header row")
    assert message(excel.call(f, cells[:1], "CD")) == "the data needs a header row and at least one row of data"
    assert message(excel.call(f, str(tmp_path / "missing.parquet"), "CD")).startswith("data file not found: ")
    broken = list(map(list, cells))
    broken[5][2] = -2146826246  # #N/A in the MOB column, sheet row 6
    broken[9][2] = -2146826265  # #REF!
    assert message(excel.call(f, tuple(map(tuple, broken)), "CD")) == \
        "column 'MOB' has cell errors (#N/A, #REF!) in rows 6, 10"
    renamed = (tuple("LOAN" if c == "AGREEMENT_ID" else c for c in cells[0]),) + cells[1:]
    text = message(excel.call(f, renamed, "CD"))
    # The user gave a range, never saw a DataFrame: the message names the range and how its rows count.
    assert text.startswith("data range: ") and "DataFrame" not in text, text
    assert "missing mapped column [columns] loan_id = 'AGREEMENT_ID'" in text
    bad_state = list(map(list, cells))
    bad_state[3][4] = "LATE"
    text = message(excel.call(f, tuple(map(tuple, bad_state)), "CD"))
    assert "'LATE' in row 4" in text and text.startswith("data range: "), text


def test_a_mapped_column_twice_in_the_range_is_named(excel, cells):
    """A second PRINCIPLE_OUTSTANDING column silently replaced the first (the last of a header's names won)."""
    doubled = tuple((*row, row[5] if i else "PRINCIPLE_OUTSTANDING") for i, row in enumerate(cells))
    text = message(excel.call(excel.module.DEL_FORECAST, doubled, "CD"))
    assert "column 'PRINCIPLE_OUTSTANDING' ([columns] ead) appears 2 times in the header" in text, text


def test_many_problems_fit_one_cell(excel, cells):
    broken = [list(cells[0])] + [[*r[:4], "???", -1.0] for r in cells[1:]]
    text = message(excel.call(excel.module.DEL_FORECAST, tuple(map(tuple, broken)), "CD"))
    assert "more problems" in text and len(text) <= 255


def test_unexpected_errors_are_reported_without_traceback(excel, cells, monkeypatch, caplog):
    def boom(*_a, **_k):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(udf, "run", boom)
    text = message(excel.call(excel.module.DEL_FORECAST, cells, "CD"))
    assert text.startswith("internal error (ZeroDivisionError: division by zero)")
    assert any(r.exc_info for r in caplog.records)  # the traceback goes to the log


def test_cell_error_codes_match_xlwings():
    """The codes pyxl_del recognises are the ones xlwings maps (executed from xlwings/_xlwindows.py)."""
    from xlsm.xlwings_win import _excel_engine_impl

    engine = _excel_engine_impl()
    cleaned = engine.clean_value_data([list(CELL_ERRORS)], None, None, None, True)
    assert cleaned == [list(CELL_ERRORS.values())]


# --------------------------------------------------------------------------------------------------- memo


def test_recalculation_with_unchanged_cells_reuses_the_fit(excel, cells, monkeypatch):
    calls = []
    real_run = udf.run
    monkeypatch.setattr(udf, "run", lambda *a, **k: calls.append(1) or real_run(*a, **k))
    f = excel.module.DEL_FORECAST
    first = excel.call(f, cells, "CD")
    again = excel.call(f, copy.deepcopy(cells), "CD")  # equal cells, new objects: as COM hands them over
    assert again == first and len(calls) == 1
    excel.call(excel.module.DEL_FLAGS, cells, "TW/Moto", "DEL90")  # another segment / kind: same fit
    excel.call(excel.module.DEL_MATRIX, cells, "CD", 2.0)
    assert len(calls) == 1
    changed = list(map(list, cells))
    changed[1][5] = changed[1][5] + 1.0
    excel.call(f, tuple(map(tuple, changed)), "CD")
    assert len(calls) == 2
    excel.call(f, cells, "CD", "DEL30", False)  # another config (no calibration): its own fit
    assert len(calls) == 3
    assert udf.FITS.hits == 2 and udf.TABLES.hits == 1  # the other kinds reuse the fit; the recalc its answer


def test_memo_is_bounded(cells):
    for i in range(udf.FIT_MEMO_SIZE + 3):
        rows = list(map(list, cells))
        rows[1][5] = float(i)
        udf.table(tuple(map(tuple, rows)), "CD", None, None, None, kind="mixed")
    assert len(udf.FITS) == udf.FIT_MEMO_SIZE


def test_file_data_is_refitted_when_the_file_changes(excel, panel, tmp_path, monkeypatch):
    calls = []
    real_run = udf.run
    monkeypatch.setattr(udf, "run", lambda *a, **k: calls.append(1) or real_run(*a, **k))
    path = tmp_path / "panel.parquet"
    panel.to_parquet(path)
    f = excel.module.DEL_FORECAST
    first = excel.call(f, str(path), "CD")
    excel.call(f, str(path), "CD", "DEL60")
    assert len(calls) == 1
    smaller = panel[panel["DISBURSAL_MONTH"] > panel["DISBURSAL_MONTH"].min()]
    smaller.to_parquet(path)
    os.utime(path, ns=(1, 2_000_000_000_000_000_000))  # a new modification time, whatever the clock
    assert excel.call(f, str(path), "CD") != first
    assert len(calls) == 2


def test_config_file_is_reread_when_it_changes(excel, cells, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("[forecast]\nmax_mob = 12\n")
    f = excel.module.DEL_FORECAST
    short = assert_cells(excel.call(f, cells, "CD", "DEL30", True, str(config)))
    assert short[0][-1] == 12
    config.write_text("[forecast]\nmax_mob = 20\n")
    os.utime(config, ns=(1, 2_000_000_000_000_000_000))
    assert excel.call(f, cells, "CD", "DEL30", True, str(config))[0][-1] == 20


def test_config_next_to_the_workbook_is_found(cells, tmp_path):
    (tmp_path / "config.toml").write_text("[forecast]\nmax_mob = 9\n")
    out = udf.table(cells, "CD", None, None, None, kind="mixed", folder=tmp_path)
    assert out[0][-1] == 9
    broken = tmp_path / "bad"
    broken.mkdir()
    (broken / "config.toml").write_text("[forecast]\nmax_mob = 'x'\n")
    text = udf.table(cells, "CD", None, None, None, kind="mixed", folder=broken)[0][0]
    assert text.startswith("#pyxl_del: ") and "[forecast] max_mob" in text


def test_data_key_of_cells_depends_on_every_cell(cells):
    key = udf.data_key(cells)
    assert udf.data_key(copy.deepcopy(cells)) == key
    rows = list(map(list, cells))
    rows[-1][0] = rows[-1][0] + "x"
    assert udf.data_key(tuple(map(tuple, rows))) != key


def test_cells_to_frame_keeps_text_as_text(cells):
    from pyxl_del.excel.workbook import cells_to_frame

    frame = cells_to_frame(((" id", "when"), ("=1+1", datetime(2024, 1, 1, tzinfo=timezone.utc)), ("007", None)),
                           ints_are_errors=True)
    assert list(frame.columns) == [" id", "when"]
    assert frame[" id"].tolist() == ["=1+1", "007"]
    assert frame["when"].iloc[0] == datetime(2024, 1, 1)
