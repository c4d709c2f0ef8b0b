"""Hostile and odd panels (issue 17): no traceback, no silent wrong answer, on both in-memory backends (pandas,
DuckDB) and through the command line (report, backtest, decide --data: exit 2 with a sentence).

Each case failed on main before its fix: day-first text dates read per row (05/07/2023 as May 7, 15/07/2023 as July
15: one cohort became two), a cohort with 0 EAD at MOB 0 vanishing silently, an all-zero EAD column giving an empty
report, MOB 1e19 or 2**62 (a traceback, or rows "beyond max_mob"), one EAD of 1e300 moving every DEL cell, an all-blank
cohort column (IndexError on pandas), a one-line CSV copied into its own error message.
"""

from __future__ import annotations

import gzip
import io
import math
import unicodedata
import zipfile

import numpy as np
import pandas as pd
import pytest
from _panels import cfg, frame, loan
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pyxl_del
from pyxl_del.cli import main
from pyxl_del.datasets.sample import generate_sample
from pyxl_del.engine.config import ConfigError, config_from_dict, load_config
from pyxl_del.engine.errors import InputError, PanelError
from pyxl_del.engine.panel_sql import spark_pattern

BACKENDS = ["pandas", "duckdb"]
# Two loans of one cohort and one of another, two MOBs each; the cohort column is set by each test.
THREE = (loan("L1", "x", "A", [("CURRENT", 100), ("DPD1+", 90)]) + loan("L2", "x", "A", [("CURRENT", 50), ("CURRENT", 40)])
         + loan("L3", "x", "A", [("CURRENT", 100), ("CURRENT", 100)]))
LOOSE = {"transitions": {"min_count": 1}}


def run(source, backend: str, **sections):
    return pyxl_del.run(source, cfg(**LOOSE, **sections), backend=backend)


def error_of(source, backend: str, **sections) -> str:
    with pytest.raises(PanelError) as info:
        run(source, backend, **sections)
    return str(info.value)


def cohorts(*values) -> pd.DataFrame:
    """THREE with the cohort column: L1, L2 get values[0], L3 values[1]."""
    df = frame(THREE)
    df["DISBURSAL_MONTH"] = [values[0]] * 4 + [values[1]] * 2
    return df


# ------------------------------------------------------------------------------- 1. day-first text dates


@pytest.mark.parametrize("backend", BACKENDS)
def test_day_first_text_dates_are_rejected_not_guessed(backend):
    """On main the pandas path read 05/07/2023 as May 7 and 15/07/2023 as July 15: two cohorts out of one."""
    msg = error_of(cohorts("05/07/2023", "15/07/2023"), backend)
    assert "'DISBURSAL_MONTH'" in msg and "'05/07/2023'" in msg and "'15/07/2023'" in msg
    assert "day-first or month-first" in msg and "[columns] cohort_format" in msg and "6 values" in msg


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_day_first_text_dates_in_files(tmp_path, backend, suffix):
    if suffix == ".xlsx" and backend != "pandas":
        pytest.skip(".xlsx is read by the pandas backend only")
    path = tmp_path / f"panel{suffix}"
    df = cohorts("05/07/2023", "15/07/2023")
    df.to_csv(path, index=False) if suffix == ".csv" else df.to_excel(path, index=False)
    assert "day-first or month-first" in error_of(path, backend)
    r = run(path, backend, columns={"cohort_format": "%d/%m/%Y"})
    assert r.cohorts == ["2023-07"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_cohort_format_reads_every_row_by_one_rule(backend):
    df = cohorts("5/7/2023", "15/07/2023")
    assert run(df, backend, columns={"cohort_format": "%d/%m/%Y"}).cohorts == ["2023-07"]
    msg = error_of(df, backend, columns={"cohort_format": "%m/%d/%Y"})  # US order: 15 is no month
    assert "2 values do not match [columns] cohort_format '%m/%d/%Y'" in msg and "'15/07/2023'" in msg
    assert run(cohorts("Jul 2023", "Aug 2023"), backend, columns={"cohort_format": "%b %Y"}).cohorts == \
        ["2023-07", "2023-08"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_excels_month_text_is_no_guess(backend):
    """Excel's "mmm-yy" text ("Jul-23", a CSV export of a month cell): the pandas reader took it for July 23rd of
    the year 1, and every row fell into cohort 0001-07. It is an error naming the format that reads it."""
    msg = error_of(cohorts("Jul-23", "Aug-23"), backend)
    assert "6 values are not a month (e.g. " in msg and "'Jul-23'" in msg and "'Aug-23'" in msg, msg
    assert 'cohort_format, e.g. "%b-%y"' in msg, msg
    assert run(cohorts("Jul-23", "Aug-23"), backend, columns={"cohort_format": "%b-%y"}).cohorts == \
        ["2023-07", "2023-08"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_iso_text_and_real_dates_need_no_format(backend):
    assert run(cohorts("2023-07-05", "2023-08"), backend).cohorts == ["2023-07", "2023-08"]
    dates = cohorts(pd.Timestamp("2023-07-05"), pd.Timestamp("2023-08-15"))
    assert run(dates, backend, columns={"cohort_format": "%d/%m/%Y"}).cohorts == ["2023-07", "2023-08"]


def test_xlsx_real_date_cells_keep_their_month_under_a_format(tmp_path):
    """An .xlsx mixing real date cells and day-first text: the dates are dates, the text is read by the format."""
    path = tmp_path / "panel.xlsx"
    df = cohorts("x", "y").astype({"DISBURSAL_MONTH": object})
    df["DISBURSAL_MONTH"] = [pd.Timestamp("2023-07-01").to_pydatetime()] * 4 + ["15/08/2023"] * 2
    df.to_excel(path, index=False)
    assert run(path, "pandas", columns={"cohort_format": "%d/%m/%Y"}).cohorts == ["2023-07", "2023-08"]


def test_xlsx_text_cells_that_look_like_numbers_stay_apart(tmp_path):
    """Excel text cells "007", "7" and "7.0" are three products and "0", "000" two loans, as in a CSV: pandas'
    read_excel turned them into the number 7 (one segment, named "7.0") and 0 (a false duplicate-row error)."""
    df = frame(THREE + loan("L4", "x", "A", [("CURRENT", 80), ("CURRENT", 70)]))
    df["DISBURSAL_MONTH"] = "2023-07"
    df["PRODUCT_TYPE"] = df["AGREEMENT_ID"].map({"L1": "007", "L2": "7", "L3": "7.0", "L4": "7.0"})
    df["AGREEMENT_ID"] = df["AGREEMENT_ID"].map({"L1": "0", "L2": "000", "L3": "L3", "L4": "L4"})
    df.to_excel(path := tmp_path / "panel.xlsx", index=False)
    assert sorted(run(path, "pandas").segments) == ["007", "7", "7.0"]


@pytest.mark.parametrize(("value", "words"), [
    ("%d/%m", "needs a year"), ("%Q-%Y-%m", "%Q"), ("%Y", "needs a year (%Y or %y) and a month"), (5, "string"),
])
def test_cohort_format_key_is_checked(value, words):
    with pytest.raises(ConfigError, match=r"\[columns\] cohort_format") as info:
        config_from_dict({"columns": {"cohort_format": value}})
    assert words in str(info.value)


def test_cohort_format_is_documented_in_config_toml():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "config.toml").read_text(encoding="utf-8")
    assert 'cohort_format = ""' in text
    assert load_config(Path(__file__).resolve().parents[2] / "config.toml").columns.cohort_format == ""


@pytest.mark.parametrize(("strptime", "spark"), [
    ("%d/%m/%Y", "d'/'M'/'yyyy"), ("%Y-%m-%dT%H:%M", "yyyy'-'M'-'d'T'H':'m"), ("%b %y", "MMM' 'yy"),
    ("%B %Y", "MMMM' 'yyyy"), ("%Y%m", "yyyyM"), ("%d'%m'%Y", "d''''M''''yyyy"),
])
def test_spark_reads_the_same_format(strptime, spark):
    assert spark_pattern(strptime) == spark


# ------------------------------------------------------------------------------------- 2. zero EAD


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_cohort_with_zero_ead_at_mob0_is_named(backend):
    df = frame(THREE[:4] + loan("L3", "2024-02", "A", [("CURRENT", 0), ("CURRENT", 10)]))
    df["DISBURSAL_MONTH"] = ["2024-01"] * 4 + ["2024-02"] * 2
    r = run(df, backend)
    named = [w for w in r.warnings if "EAD sums to 0" in w]
    assert named and "A 2024-02" in named[0] and named[0].startswith("1 cohort has MOB 0 rows")
    assert "2024-02" not in set(r.del_long.dropna(subset=["mixed"])["cohort"])  # what the warning explains
    assert not [w for w in run(cohorts("2024-01", "2024-02"), backend).warnings if "EAD sums to 0" in w]


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_all_zero_ead_column_is_an_error(backend):
    df = cohorts("2024-01", "2024-02")
    df["PRINCIPLE_OUTSTANDING"] = 0.0
    msg = error_of(df, backend)
    assert "'PRINCIPLE_OUTSTANDING' ([columns] ead) is 0 on every row" in msg


# ------------------------------------------------------------------------------ 3. config types, MOB bounds


@pytest.mark.parametrize("line", ["max_mob = true", 'max_mob = "36"', "max_mob = 36.0", "max_mob = 601"])
def test_config_values_are_strict(tmp_path, line):
    path = tmp_path / "config.toml"
    path.write_text(f"[forecast]\n{line}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[forecast\] max_mob"):
        load_config(path)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mob", [1e19, float(2**62), 1201.0, -1.0, 2.5, math.inf])
def test_mob_out_of_bounds_names_the_rows(backend, mob):
    df = cohorts("2024-01", "2024-02").astype({"MOB": float})
    df.loc[1, "MOB"] = mob
    msg = error_of(df, backend)
    assert "'MOB' ([columns] mob) must be a whole number from 0 to 1200" in msg
    assert ("row 3" in msg) if backend == "pandas" else ("loan 'L1' MOB" in msg)


@pytest.mark.parametrize("backend", BACKENDS)
def test_mob_1200_is_a_row_beyond_max_mob(backend):
    df = cohorts("2024-01", "2024-02")
    df.loc[1, "MOB"] = 1200
    assert any("beyond [forecast] max_mob" in w for w in run(df, backend).warnings)


# ------------------------------------------------------------------------------------ 4. plausibility


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_absurd_ead_is_an_error_naming_rows(backend):
    df = cohorts("2024-01", "2024-02").astype({"PRINCIPLE_OUTSTANDING": float})
    df.loc[[1, 4], "PRINCIPLE_OUTSTANDING"] = [1e300, 2e15]
    msg = error_of(df, backend)
    assert "([columns] ead) is above 1e15" in msg
    assert ("rows 3, 6" in msg) if backend == "pandas" else ("2 rows" in msg and "loan 'L1' MOB 1" in msg)
    df.loc[[1, 4], "PRINCIPLE_OUTSTANDING"] = [1e15, 1e15]  # the bound itself is a (large) balance
    run(df, backend)


# ------------------------------------------------------------------------------- 5. a blank cohort column


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("blank", [None, np.nan, ""])
def test_a_blank_cohort_column_is_a_sentence(backend, blank):
    df = cohorts(blank, blank)
    if blank == "":
        df["DISBURSAL_MONTH"] = pd.array([None] * 6, dtype="string")
    msg = error_of(df, backend)
    assert "'DISBURSAL_MONTH' ([columns] cohort): 6 values are not a month (e.g. empty" in msg


# ---------------------------------------------------------------------------- the command line entry points


def sample_with(change) -> pd.DataFrame:
    df = generate_sample(loans_per_cohort=12, n_cohorts=8)
    change(df)
    return df


def blank_cohort(df):
    df["DISBURSAL_MONTH"] = None


def day_first(df):
    months = pd.to_datetime(df["DISBURSAL_MONTH"].astype(str))
    df["DISBURSAL_MONTH"] = months.dt.strftime("%d/%m/%Y")


def huge_mob(df):
    df["MOB"] = df["MOB"].astype(float)
    df.loc[df.index[3], "MOB"] = 1e19


def huge_ead(df):
    df.loc[df.index[3], "PRINCIPLE_OUTSTANDING"] = 1e300


def zero_ead(df):
    df["PRINCIPLE_OUTSTANDING"] = 0.0


CASES = {"blank_cohort": (blank_cohort, "are not a month (e.g. empty"),
         "day_first": (day_first, "day-first or month-first"),
         "huge_mob": (huge_mob, "must be a whole number from 0 to 1200"),
         "huge_ead": (huge_ead, "is above 1e15"),
         "zero_ead": (zero_ead, "is 0 on every row")}


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    files = {}
    for name, (change, _) in CASES.items():
        df = sample_with(change)
        for suffix in (".csv", ".xlsx"):
            path = folder / f"{name}{suffix}"
            df.to_csv(path, index=False) if suffix == ".csv" else df.to_excel(path, index=False)
            files[name, suffix] = path
    return files


def exit_and_message(capsys, args: list[str]) -> tuple[int, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.err + captured.out


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
@pytest.mark.parametrize("command", ["report", "backtest", "decide"])
def test_command_line_exits_2_with_the_sentence(bad_files, tmp_path, capsys, case, suffix, command):
    data = str(bad_files[case, suffix])
    if command == "report":
        args = ["report", data, "--out", str(tmp_path / "out"), "-q"]
    elif command == "backtest":
        args = ["backtest", data, "--origins", "2", "--horizon", "3", "--out", str(tmp_path / "bt"), "-q"]
    else:
        apps = tmp_path / "apps.csv"
        pd.DataFrame({"segment": ["CD"], "score": [600.0], "amount": [1000.0]}).to_csv(apps, index=False)
        args = ["decide", str(apps), "--data", data, "--out", str(tmp_path / "d.csv")]
    code, text = exit_and_message(capsys, args)
    assert code == 2, text
    assert CASES[case][1] in text and "Traceback" not in text


# ------------------------------------------------------------------------ 6. a one-line file


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("suffix", [".csv", ".gz"])
def test_a_one_line_file_gives_a_short_message(tmp_path, backend, suffix):
    """On main the pandas path copied the whole line into its message six times (9 GB for a 400 MB line)."""
    line = ("A" * 1000 + ",") * 2100  # 2.1 MB without a newline
    path = tmp_path / f"panel{suffix}"
    (gzip.open if suffix == ".gz" else open)(path, "wt").write(line)
    if backend == "duckdb" and suffix == ".gz":
        path = path.rename(tmp_path / "panel.csv.gz")
    with pytest.raises(PanelError) as info:
        run(path, backend)
    assert len(str(info.value)) < 1500, str(info.value)[:300]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_long_header_name_is_cut_in_the_message(tmp_path, backend):
    path = tmp_path / "panel.csv"
    pd.DataFrame({"X" * 100_000: [1], "MOB": [0]}).to_csv(path, index=False)
    msg = str(pytest.raises(PanelError, run, path, backend).value)
    assert "missing mapped column" in msg and len(msg) < 3000


# ------------------------------------------------------------------- 8. fuzz: own errors or a result


def fuzz_bytes(kind: str, data: bytes) -> bytes:
    """A valid file of ``kind`` damaged by ``data``: cut, with bytes spliced in."""
    good = io.BytesIO()
    df = cohorts("2024-01", "2024-02")
    if kind == "csv":
        good.write(df.to_csv(index=False).encode())
    elif kind == "parquet":
        df.to_parquet(good)
    else:
        df.to_excel(good, index=False)
    raw = good.getvalue()
    cut = len(data) % (len(raw) + 1)
    return raw[:cut] + data + raw[cut + len(data):]


OWN = (InputError,)


@pytest.mark.parametrize("kind", ["csv", "parquet", "xlsx"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=0, max_size=64))
def test_fuzzed_files_give_our_errors_or_a_result(tmp_path, kind, data):
    path = tmp_path / f"fuzz.{kind}"
    path.write_bytes(fuzz_bytes(kind, data))
    for backend in (["pandas"] if kind == "xlsx" else BACKENDS):
        try:
            run(path, backend)
        except OWN:
            pass


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200) | st.sampled_from([
    "[forecast]\nmax_mob = true", "[columns]\ncohort_format = '%'", "[columns]\ncohort_format = 7",
    "[columns]\ncohort = ''", "[buckets]\norder = []", "[[forecast]]", "x = 1e999", "[forecast]\nmax_mob = 1e19",
]))
def test_fuzzed_config_text_gives_config_errors_or_a_config(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path)
    except ConfigError:
        pass


def test_fuzz_helpers_damage_the_file():
    """The fuzz tests would pass on anything if the damage never reached the reader: an xlsx cut in two is no zip."""
    damaged = fuzz_bytes("xlsx", b"\x00" * 8)
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(io.BytesIO(damaged[:100]))
    assert fuzz_bytes("csv", b"").startswith(b"AGREEMENT_ID")


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_ead_far_above_the_book_is_named(backend):
    """Below the 1e15 bound, a balance 1e4 times the book's typical one is named (segment, cohort, MOB)."""
    df = cohorts("2024-01", "2024-02").astype({"PRINCIPLE_OUTSTANDING": float})
    assert not [w for w in run(df, backend).warnings if "times the panel's typical" in w]
    df.loc[5, "PRINCIPLE_OUTSTANDING"] = 1e10
    (warning,) = [w for w in run(df, backend).warnings if "times the panel's typical" in w]
    assert warning.startswith("1 cohort-MOB cell has an EAD per loan") and "A 2024-02 MOB 1" in warning
    assert "typical 88" in warning  # the median of 65, 75, 100 and 1e10


# ------------------------------------------------------------------- 9. files the readers cannot take as they are


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("encoding", "words"), [("latin-1", "is not UTF-8 text (line 4: byte 0xe9)"),
                                                 ("utf-16", "is UTF-16 text (what Notepad and Excel call 'Unicode')")])
def test_a_csv_not_in_utf8_is_named_with_its_line(tmp_path, backend, encoding, words):
    """DuckDB's own message blamed 'Line: 2', quoting the header, or the CSV dialect; the pandas path named no line."""
    df = cohorts("2024-01", "2024-02")
    df.loc[2, "PRODUCT_TYPE"] = "Crédit"  # the third data row: line 4
    path = tmp_path / "panel.csv"
    df.to_csv(path, index=False, encoding=encoding)
    msg = error_of(path, backend)
    assert f"{path} {words}" in msg and "save it as UTF-8" in msg, msg
    assert "Error" not in msg, msg


def test_an_xlsx_panel_on_another_sheet_is_pointed_to(tmp_path):
    """The first sheet's columns were listed as the ones to map; the sheet that has the mapped columns was not named."""
    path = tmp_path / "book.xlsx"
    with pd.ExcelWriter(path) as book:
        pd.DataFrame({"Notes": ["see the other sheet"]}).to_excel(book, sheet_name="Notes", index=False)
        cohorts("2024-01", "2024-02").to_excel(book, sheet_name="Loan panel", index=False)
    msg = error_of(path, "pandas")
    assert msg == (f"{path} [sheet 1]: the first sheet, 'Notes', lacks mapped columns ('AGREEMENT_ID', "
                   f"'DISBURSAL_MONTH', 'MOB', 'PRODUCT_TYPE', 'STATE_MODEL', 'PRINCIPLE_OUTSTANDING'); sheet "
                   f"'Loan panel' has them all: read that sheet (sheet='Loan panel'; on the command line --sheet "
                   f"\"Loan panel\")")
    assert pyxl_del.run(path, cfg(**LOOSE), sheet="Loan panel").cohorts == ["2024-01", "2024-02"]
    # Without such a sheet, the first sheet's columns are listed as before.
    with pd.ExcelWriter(path) as book:
        pd.DataFrame({"Notes": ["no panel here"]}).to_excel(book, sheet_name="Notes", index=False)
        pd.DataFrame({"MOB": [0]}).to_excel(book, sheet_name="Other", index=False)
    assert "one of the columns present: Notes)" in error_of(path, "pandas")


def test_a_sheet_under_a_title_is_pointed_to_and_a_sheet_name_in_other_case_is_found(tmp_path):
    """A panel on the second sheet under a title block: the first sheet's title was listed as "the columns present"
    (only the other sheets' first rows were searched). `--sheet "loan panel"` for 'Loan Panel' (Excel ignores the
    case) or a name typed wrong said only "Worksheet named ... not found", listing no sheet."""
    path = tmp_path / "book.xlsx"
    with pd.ExcelWriter(path) as book:
        pd.DataFrame({"Hướng dẫn": ["see the other sheet"]}).to_excel(book, sheet_name="Notes", index=False)
        pd.DataFrame({"BÁO CÁO DƯ NỢ": []}).to_excel(book, sheet_name="Loan Panel", index=False)
        cohorts("2024-01", "2024-02").to_excel(book, sheet_name="Loan Panel", index=False, startrow=2)
    assert "sheet 'Loan Panel' has them all: read that sheet" in error_of(path, "pandas")
    assert pyxl_del.run(path, cfg(**LOOSE), sheet="loan panel").cohorts == ["2024-01", "2024-02"]
    msg = error_of_sheet(path, "Loan Panels")
    assert msg == f"{path}: no sheet 'Loan Panels'; did you mean 'Loan Panel'? (the sheets: 'Notes', 'Loan Panel')"


def error_of_sheet(path, sheet: str) -> str:
    with pytest.raises(PanelError) as info:
        pyxl_del.run(path, cfg(**LOOSE), sheet=sheet)
    return str(info.value)


@pytest.mark.parametrize("kind", ["DataFrame", "csv", "xlsx", "duckdb csv"])
def test_a_mapped_column_twice_in_the_header_is_an_error(tmp_path, kind):
    """Two columns named PRINCIPLE_OUTSTANDING: the UDF path took the last, the file readers the first, silently."""
    df = cohorts("2023-07", "2023-08")
    df.insert(len(df.columns), "EXTRA", df["PRINCIPLE_OUTSTANDING"] * 7)
    df.columns = [*df.columns[:-1], "PRINCIPLE_OUTSTANDING"]
    source = df
    if kind != "DataFrame":
        source = tmp_path / f"panel.{kind.split()[-1]}"
        df.to_csv(source, index=False) if kind.endswith("csv") else df.to_excel(source, index=False)
    msg = error_of(source, "duckdb" if kind.startswith("duckdb") else "pandas")
    assert "column 'PRINCIPLE_OUTSTANDING' ([columns] ead) appears 2 times in the header" in msg, msg
    # an unmapped column twice is no one's business
    df.columns = [*df.columns[:-2], "NOTE", "NOTE"]
    df["PRINCIPLE_OUTSTANDING"] = 100.0
    assert run(df, "pandas").cohorts == ["2023-07", "2023-08"]


@pytest.mark.parametrize("kind", ["DataFrame", "xlsx"])
def test_true_and_false_are_no_numbers(tmp_path, kind):
    """A TRUE cell in the MOB column was MOB 1, in the EAD column a balance of 1 (pandas reads booleans as 1 and 0)."""
    df = cohorts("2023-07", "2023-08").astype({"MOB": object, "PRINCIPLE_OUTSTANDING": object})
    df.loc[1, "MOB"] = True
    df.loc[3, "PRINCIPLE_OUTSTANDING"] = False
    source = df
    if kind == "xlsx":
        source = tmp_path / "panel.xlsx"
        df.to_excel(source, index=False)
    msg = error_of(source, "pandas")
    assert "column 'MOB' ([columns] mob) must be a whole number from 0 to 1200; not so in row 3" in msg, msg
    assert "column 'PRINCIPLE_OUTSTANDING' ([columns] ead) is empty or not a number in row 5" in msg, msg
    whole = cohorts("2023-07", "2023-08")
    whole["MOB"] = whole["MOB"] > 0  # a column of booleans
    assert "column 'MOB' ([columns] mob) must be a whole number" in error_of(whole, "pandas")


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_decimal_comma_is_named_with_its_fix(tmp_path, backend):
    """Balances saved by a Vietnamese or German Excel ("31784,69", semicolon-separated) were "not a number in 1,980
    rows" with no hint why, and the pandas reader took the whole header for one column."""
    df = cohorts("2023-07", "2023-08")
    df["PRINCIPLE_OUTSTANDING"] = [f"{v:,.2f}".replace(",", " ").replace(".", ",") for v in df["PRINCIPLE_OUTSTANDING"]]
    path = tmp_path / "panel.csv"
    df.to_csv(path, sep=";", index=False)
    msg = error_of(path, backend)
    assert "holds numbers written with a decimal comma or thousands separators" in msg, msg
    assert "('100,00', " in msg or "'100,00'" in msg, msg
    assert msg.index("decimal point") < msg.index("not a number in"), msg  # the advice first: a cell is 255 long
    df["PRINCIPLE_OUTSTANDING"] = ["unknown", *df["PRINCIPLE_OUTSTANDING"][1:].str.replace(",", ".")]
    df.to_csv(path, sep=";", index=False)
    msg = error_of(path, backend)
    assert "is empty or not a number in" in msg and "values such as 'unknown'" in msg and "comma" not in msg, msg
    # An English file's thousands commas are no Vietnamese or German decimal comma: said as what they are.
    df["PRINCIPLE_OUTSTANDING"] = [f"{v:,.1f}" for v in cohorts("2023-07", "2023-08")["PRINCIPLE_OUTSTANDING"] + 1000]
    df.to_csv(path, index=False)
    msg = error_of(path, backend)
    assert "holds numbers written with thousands separators ('1," in msg and "German" not in msg, msg


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_both_readers_take_the_delimiter_excel_saved(tmp_path, sep):
    df = cohorts("2023-07", "2023-08")
    path = tmp_path / "panel.csv"
    df.to_csv(path, sep=sep, index=False)
    by_pandas, by_duckdb = run(path, "pandas"), run(path, "duckdb")
    assert by_pandas.stats.n_rows == by_duckdb.stats.n_rows == len(df)
    np.testing.assert_allclose(by_pandas.stats.ead, by_duckdb.stats.ead)


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_a_segment_called_na_is_a_segment(tmp_path, suffix):
    """pandas read a product called "NA", "N/A" or "None" as missing: the pandas reader refused the panel ("empty in
    rows ...") where DuckDB read it. Only an empty cell is missing."""
    df = cohorts("2023-07", "2023-08")
    df["PRODUCT_TYPE"] = ["NA", "NA", "N/A", "N/A", "None", "None"]
    path = tmp_path / f"panel{suffix}"
    df.to_csv(path, index=False) if suffix == ".csv" else df.to_excel(path, index=False)
    backends = ["pandas", "duckdb"] if suffix == ".csv" else ["pandas"]
    for backend in backends:
        assert run(path, backend).segments == ("N/A", "NA", "None"), backend
    df["PRODUCT_TYPE"] = ["NA", "", "N/A", "N/A", "None", "None"]
    df.to_csv(path, index=False) if suffix == ".csv" else df.to_excel(path, index=False)
    assert "([columns] segment) is empty in row 3" in error_of(path, "pandas")


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_total_row_at_the_end_of_an_export_is_named(tmp_path, backend):
    """A "Total" row under the data (an Excel export): the pandas reader failed with pyarrow's "cannot convert NA to
    integer: Error while type casting for column 'MOB'", naming no row."""
    path = tmp_path / "panel.csv"
    cohorts("2023-07", "2023-08").to_csv(path, index=False)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("Total,,,,,440.00\n")
    msg = error_of(path, backend)
    assert "column 'MOB' ([columns] mob) must be a whole number from 0 to 1200" in msg and "cast" not in msg, msg
    assert "row 8" in msg or "loan 'Total'" in msg, msg


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_state_label_in_another_case_is_named_with_its_bucket(backend):
    """'current' and 'CURRENT ' were listed as unknown labels beside the order, with no word of why."""
    df = cohorts("2023-07", "2023-08").astype({"STATE_MODEL": object})
    df.loc[1, "STATE_MODEL"], df.loc[2, "STATE_MODEL"], df.loc[3, "STATE_MODEL"] = "current", "CURRENT ", None
    msg = error_of(df, backend)
    assert "'current'" in msg and "'CURRENT '" in msg and ", empty in " in msg, msg  # an empty cell is "empty"
    assert "'current' as 'CURRENT': it differs in spaces or letter case" in msg, msg
    assert "'CURRENT ' as 'CURRENT': it differs in spaces or letter case" in msg, msg
    assert msg.endswith("letter case; labels must match [buckets] order as written)"), msg
    df.loc[1, "STATE_MODEL"], df.loc[2, "STATE_MODEL"] = "LATE", "CURRENT"
    assert "letter case" not in error_of(df, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_name_in_decomposed_unicode_is_named_as_such(backend):
    """A Mac's export stores "Nhóm 1" decomposed: it prints exactly as the config's name, and the message said it
    "differs in spaces or letter case", a difference nobody could see."""
    order = ["Nhóm 1", "DPD1+", "DPD30+", "DPD60+", "DPD90+", "WRITEOFF", "PREPAY"]
    df = cohorts("2023-07", "2023-08").astype({"STATE_MODEL": object})
    df["STATE_MODEL"] = df["STATE_MODEL"].replace({"CURRENT": "Nhóm 1"})
    df.loc[1, "STATE_MODEL"] = unicodedata.normalize("NFD", "Nhóm 1")
    msg = error_of(df, backend, buckets={"order": order})
    assert "as 'Nhóm 1': the same letters in another Unicode form: decomposed, as a Mac saves them" in msg, msg
    assert "letter case" not in msg
    # A column header so stored: the same words.
    df = cohorts("2023-07", "2023-08").rename(columns={"PRODUCT_TYPE": unicodedata.normalize("NFD", "Sản phẩm")})
    msg = error_of(df, backend, columns={"segment": "Sản phẩm"})
    assert ("missing mapped column [columns] segment = 'Sản phẩm': the data have 'Sản phẩm' (the same letters in "
            "another Unicode form") in unicodedata.normalize("NFC", msg), msg


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_loan_changing_segment_is_told_what_to_do(backend):
    df = cohorts("2023-07", "2023-08").astype({"PRODUCT_TYPE": object})
    df.loc[1, "PRODUCT_TYPE"] = "B"
    msg = error_of(df, backend)
    assert "1 loan changes segment (column 'PRODUCT_TYPE') between months, e.g. 'L1' at " in msg, msg
    assert msg.endswith(": a loan keeps the segment of its first month on every row (a refinanced or switched loan is "
                        "a new loan id)"), msg
