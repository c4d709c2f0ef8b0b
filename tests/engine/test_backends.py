"""Aggregation backends: DuckDB (and the shared SQL) against the pandas path — same statistics, same findings."""

import contextlib
import os
import time

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _backend_panels import (
    assert_same_results,
    assert_same_stats,
    awkward_panel,
    finding_kinds,
    late_quoted_segment_csv,
)
from _panels import CHAIN, cfg, frame, loan, simulate

import pyxl_del
from pyxl_del import PanelError
from pyxl_del.cli import main
from pyxl_del.datasets.sample import write_panel
from pyxl_del.engine import backends, panel_sql
from pyxl_del.engine.backends import (
    _watch,
    aggregate,
    choose_backend,
    fingerprint,
    source_name,
)
from pyxl_del.engine.data import _parse_cohorts, column_numbers

CONFIG = cfg(transitions={"min_count": 1})
GOOD = (loan("L1", "2024-01", "A", [("CURRENT", 100), ("CURRENT", 90), ("DPD1+", 80)])
        + loan("L2", "2024-01", "A", [("CURRENT", 100), ("CURRENT", 90), ("CURRENT", 80)]))


@pytest.fixture(scope="module")
def awkward():
    return awkward_panel()


def test_choose_backend(tmp_path, monkeypatch):
    assert choose_backend(frame(GOOD)) == "pandas"
    assert choose_backend("panel.xlsx") == "pandas"
    assert choose_backend("panel.parquet") == choose_backend("parts/*.parquet") == choose_backend("p.csv") == "duckdb"
    frame(GOOD).to_parquet(tmp_path / "panel.parquet")
    frame(GOOD).to_csv(tmp_path / "panel.csv", index=False)
    # One local Parquet file that fits in memory is read in memory; globs, folders, CSV and remote files by DuckDB.
    assert choose_backend(tmp_path / "panel.parquet") == choose_backend(str(tmp_path / "panel.parquet")) == "pandas"
    assert choose_backend(str(tmp_path / "*.parquet")) == choose_backend(tmp_path) == "duckdb"
    assert choose_backend(tmp_path / "panel.csv") == choose_backend("s3://bucket/panel.parquet") == "duckdb"
    monkeypatch.setattr(backends, "IN_MEMORY_SHARE", 1e-12)  # a file too big for the memory
    assert choose_backend(tmp_path / "panel.parquet") == "duckdb"
    (tmp_path / "broken.parquet").write_text("not parquet")
    assert choose_backend(tmp_path / "broken.parquet") == "duckdb"  # DuckDB words the read error
    with pytest.raises(ValueError, match="unknown backend"):
        aggregate(frame(GOOD), CONFIG, "polars")


def test_categorical_columns_count_only_values_present(tmp_path):
    """Parquet text is read as categoricals: unused categories are no segment, no cohort and no bad value."""
    df = simulate(CHAIN, segments=("A", "B"), cohorts=3, loans=20, max_mob=3)
    expected = aggregate(df, CONFIG, "pandas")
    cat = df.astype({"PRODUCT_TYPE": pd.CategoricalDtype(["Z", "B", "A", "Portfolio"]),
                     "DISBURSAL_MONTH": pd.CategoricalDtype(["not a month", *sorted(set(df["DISBURSAL_MONTH"]))]),
                     "STATE_MODEL": pd.CategoricalDtype(["??", *CONFIG.buckets.order]),
                     "AGREEMENT_ID": "category"})
    cat.to_parquet(tmp_path / "cat.parquet")
    for source in (cat, tmp_path / "cat.parquet"):
        assert_same_stats(expected, aggregate(source, CONFIG, "pandas"))
    assert_same_stats(expected, aggregate(tmp_path / "cat.parquet", CONFIG, "duckdb"))


def test_awkward_panel_same_on_duckdb(awkward, tmp_path):
    df, config = awkward
    expected = aggregate(df, config, "pandas")
    assert any("in loans' MOB sequences" in w for w in expected.warnings)
    assert any("no MOB 0" in w for w in expected.warnings)
    assert any("beyond [forecast] max_mob" in w for w in expected.warnings)
    df.to_parquet(tmp_path / "panel.parquet")
    df.to_csv(tmp_path / "panel.csv", index=False, encoding="utf-8-sig")  # with a BOM, as Excel writes it
    for source in (df, tmp_path / "panel.parquet", tmp_path / "panel.csv"):
        assert_same_results(expected, aggregate(source, config, "duckdb"), config)


def test_sample_panel_same_on_duckdb(tmp_path):
    df = simulate(CHAIN, segments=("CASH LOAN", "CD"), cohorts=8, loans=400, max_mob=8, seed=3)
    config = cfg(forecast={"max_mob": 8})
    write_panel(df, tmp_path / "parts", parts=4)
    assert_same_results(aggregate(df, config, "pandas"), aggregate(tmp_path / "parts", config), config)


@pytest.mark.parametrize("cohorts", [
    pd.to_datetime(["2024-01-15"] * 6),
    pd.PeriodIndex(["2024-01"] * 6, freq="M"),
    ["2024-01-15 10:30:00"] * 6,
    ["2024/1"] * 6,
    [202401] * 6,
    [202401.0] * 6,
])
def test_cohort_types_same_on_duckdb(cohorts, tmp_path):
    df = frame(GOOD)
    df["DISBURSAL_MONTH"] = pd.Series(cohorts, index=df.index)
    expected = aggregate(df, CONFIG, "pandas")
    assert list(expected.cohorts) == [2024 * 12]
    assert_same_stats(expected, aggregate(df, CONFIG, "duckdb"))
    df.to_parquet(tmp_path / "p.parquet")
    for backend in ("pandas", "duckdb"):
        assert_same_stats(expected, aggregate(tmp_path / "p.parquet", CONFIG, backend))


@pytest.fixture(params=["registered", "not registered"])
def period_extension(request):
    """pandas registers its Arrow period type once it has written or read one; a process that only reads the file
    (the command line) sees the column as int64 with the type named in the field's metadata."""
    from pandas.core.arrays.arrow.extension_types import ArrowPeriodType

    yield request.param
    with contextlib.suppress(pa.ArrowKeyError):  # already registered
        pa.register_extension_type(ArrowPeriodType("M"))


def test_period_cohorts_written_to_parquet_by_pandas_are_months(tmp_path, period_extension):
    """pandas stores a Period column as int64 months since 1970-01: both backends read months, not 642 or 648."""
    df = frame(GOOD + loan("L3", "x", "A", [("CURRENT", 100), ("CURRENT", 100)]))
    df["DISBURSAL_MONTH"] = pd.PeriodIndex(["2024-01"] * 6 + ["2023-07"] * 2, freq="M")
    expected = aggregate(df, CONFIG, "pandas")
    assert list(expected.cohorts) == [2023 * 12 + 6, 2024 * 12]
    df.to_parquet(tmp_path / "p.parquet")
    write_panel(df, tmp_path / "parts", parts=2)
    if period_extension == "not registered":
        with contextlib.suppress(pa.ArrowKeyError):  # not registered yet
            pa.unregister_extension_type("pandas.period")
        assert pq.read_schema(tmp_path / "p.parquet").field("DISBURSAL_MONTH").type == pa.int64()
    for source, backend in ((tmp_path / "p.parquet", "pandas"), (tmp_path / "p.parquet", "duckdb"),
                            (tmp_path / "parts", "duckdb")):
        assert_same_stats(expected, aggregate(source, CONFIG, backend))
    # An empty period is an empty cohort on both (the pandas path read NaT as the month '-002-11').
    df["DISBURSAL_MONTH"] = df["DISBURSAL_MONTH"].where(df["AGREEMENT_ID"] != "L3")
    df.to_parquet(tmp_path / "p.parquet")
    for source in (df, tmp_path / "p.parquet"):
        for backend in ("pandas", "duckdb"):
            assert "([columns] cohort): 2 values are not a month (e.g. empty" in str(_errors(source, backend)), backend


def test_period_cohorts_that_sql_cannot_read_say_how_to_write_them(tmp_path):
    df = frame(GOOD)
    df["DISBURSAL_MONTH"] = pd.PeriodIndex(["2024Q1"] * 6, freq="Q")
    df.to_parquet(tmp_path / "q.parquet")
    assert aggregate(tmp_path / "q.parquet", CONFIG, "pandas").n_rows == 6
    assert "column 'DISBURSAL_MONTH' ([columns] cohort) holds pandas periods of frequency 'Q-DEC'" in str(
        _errors(tmp_path / "q.parquet", "duckdb"))
    # Months as periods in one part and as 202401 numbers in another would be read one way for both.
    (tmp_path / "mixed").mkdir()
    df["DISBURSAL_MONTH"] = pd.PeriodIndex(["2024-01"] * 6, freq="M")
    df.iloc[:3].to_parquet(tmp_path / "mixed" / "a.parquet")
    df.iloc[3:].assign(DISBURSAL_MONTH=202401).to_parquet(tmp_path / "mixed" / "b.parquet")
    message = str(_errors(tmp_path / "mixed", "duckdb"))
    assert "pandas periods in a.parquet but not in b.parquet" in message, message


TEXT_COHORTS = ["2023-01", "2023-1", "2023-01-15", "2023-1-5", "2023-01-15 10:30:00", "2023-01-15T10:30", "2023/01",
                "2023/01/15", "2023", " 2023-01 ", "20230115", "2024-02-29", "2023-01-15 10:30:00.123",
                "2023-01-15 10:30:00Z", "2023-01-15T10:30:00+0700", "2023-1-5 1:02", "0999-01", "9999-12",
                # not months, for both
                "2023-02-30", "2023-02-29", "202301", "2023-13", "2023-00", "2023-01-00", "2023-01-32", "2023-W01",
                "2023-01-15Z", "2023-01-15 25:00", "2023-01-15 10:30:61", "", "abc"]
NUMBER_COHORTS = [202301, 202301.0, 12301, 999912, 101, 202313, 202301.5, 1000001, -202301]


@pytest.mark.parametrize("values, dtype, kind", [(TEXT_COHORTS, "string", "text"),
                                                 (NUMBER_COHORTS, "float64", "number")])
def test_sql_cohort_parser_matches_pandas(values, dtype, kind):
    con = duckdb.connect()
    con.register("v", pd.DataFrame({"c": pd.Series(values, dtype=dtype)}))
    parsed = dict(con.execute(panel_sql.cohort_months_query(panel_sql.DUCKDB, "v", '"c"', kind)).fetchall())
    for value in values:
        problems = []
        expected = _parse_cohorts(pd.Series([value], dtype=dtype), "c", problems)[0]
        assert parsed[value] == (None if problems else expected), value


def test_free_form_text_cohorts_are_iso_only_in_sql():
    df = frame(GOOD)
    df["DISBURSAL_MONTH"] = "Jan 2024"
    assert aggregate(df, CONFIG, "pandas").n_rows == 6
    with pytest.raises(PanelError, match="not a month"):
        aggregate(df, CONFIG, "duckdb")


@pytest.mark.parametrize("years", [["2023", "2024"], [2011, 2012], [2011.0, 2012.0]],
                         ids=["text", "integer", "float"])
def test_a_year_alone_is_not_a_month_on_every_backend(tmp_path, years):
    """Yearly vintages were read as January ("2023") or, as numbers, as a month of the year 20 (2012 -> 0020-12, by
    pandas only: DuckDB read a CSV's 2012 as 2012-01), so every reporting month moved. Each backend now names them."""
    df = frame(GOOD + loan("L3", "2024-01", "A", [("CURRENT", 100), ("CURRENT", 90)]))
    df["DISBURSAL_MONTH"] = pd.Series([years[0]] * 6 + [years[1]] * 2, dtype=object).astype(type(years[0]))
    df.to_csv(tmp_path / "p.csv", index=False)
    df.to_parquet(tmp_path / "p.parquet")
    for source, backend in ((df, "pandas"), (tmp_path / "p.csv", "duckdb"), (tmp_path / "p.parquet", "duckdb"),
                            (tmp_path / "p.parquet", "pandas")):
        message = str(_errors(source, backend))
        assert "([columns] cohort): 8 values such as" in message and "are a year without a month" in message, (
            backend, message)
        assert "np." not in message  # numpy 2 quoted 2011 as np.int64(2011)
    # The month beside them still reads: six digits, or text with its month.
    for months in (["2023-01", "2024-12"], [202301, 202412]):
        df["DISBURSAL_MONTH"] = [months[0]] * 6 + [months[1]] * 2
        stats = aggregate(df, CONFIG, "pandas")
        assert list(stats.cohorts) == [2023 * 12, 2024 * 12 + 11]
        df.to_csv(tmp_path / "p.csv", index=False)
        assert_same_stats(stats, aggregate(tmp_path / "p.csv", CONFIG, "duckdb"))


def test_excel_day_numbers_as_cohorts_are_named_on_every_backend(tmp_path):
    """A date column saved from cells formatted as numbers: 45123 is Excel's 2023-07-16, not a month."""
    df = frame(GOOD)
    df["DISBURSAL_MONTH"] = [45123] * 3 + [45154] * 3
    df.to_csv(tmp_path / "p.csv", index=False)
    for source, backend in ((df, "pandas"), (tmp_path / "p.csv", "duckdb")):
        message = str(_errors(source, backend))
        assert "6 values such as" in message and "look like Excel's day numbers (45123 is 2023-07-16)" in message, (
            backend, message)
    df["DISBURSAL_MONTH"] = 12345  # five digits, but no day of a loan's era: not a month, said plainly
    assert "([columns] cohort): 6 values are not a month (e.g. 12345;" in str(_errors(df, "pandas"))


def _broken(case: str) -> pd.DataFrame:
    df = frame(GOOD).astype(object)
    if case == "empty":
        return df.iloc[:0]
    if case == "missing column":
        return df.drop(columns="PRINCIPLE_OUTSTANDING")
    for column, row, value in BAD_INPUTS[case]:
        df.loc[row if row is not None else df.index, column] = value
    return df


BAD_INPUTS = {  # (column, row or None for every row, value)
    "empty": [],
    "missing column": [],
    "unknown state": [("STATE_MODEL", 1, "DPD 30")],
    "negative ead": [("PRINCIPLE_OUTSTANDING", 2, -5)],
    "text ead": [("PRINCIPLE_OUTSTANDING", 2, "abc")],
    "empty ead": [("PRINCIPLE_OUTSTANDING", 2, None)],
    "fractional mob": [("MOB", 0, 1.5)],
    "negative mob": [("MOB", 0, -1)],
    "bad cohort": [("DISBURSAL_MONTH", 3, "not a month")],
    "empty loan": [("AGREEMENT_ID", 4, None)],
    "empty segment": [("PRODUCT_TYPE", 4, None)],
    "reserved segment": [("PRODUCT_TYPE", None, "Portfolio")],
    "reserved in another case": [("PRODUCT_TYPE", None, "portfolio ")],
    "blank segment": [("PRODUCT_TYPE", None, "   ")],
    "duplicate": [("MOB", 2, 1)],
    "changes cohort": [("DISBURSAL_MONTH", 2, "2024-02")],
    "changes segment": [("PRODUCT_TYPE", 2, "B")],
    "several at once": [("STATE_MODEL", 0, "??"), ("PRINCIPLE_OUTSTANDING", 1, -1)],
}


def _errors(source, backend) -> PanelError:
    with pytest.raises(PanelError) as info:
        aggregate(source, CONFIG, backend)
    return info.value


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gives_the_same_findings(case, tmp_path):
    df = _broken(case)
    expected = _errors(df, "pandas")
    path = tmp_path / "bad.csv"
    df.to_csv(path, index=False)
    for source in (df, path):
        got = _errors(source, "duckdb")
        assert len(got.problems) == len(expected.problems)
        assert finding_kinds(str(got)) == finding_kinds(str(expected)), (str(got), str(expected))


@pytest.mark.parametrize("case", [c for c in BAD_INPUTS if c not in ("text ead", "missing column")])
def test_bad_parquet_gives_the_same_findings_in_memory(case, tmp_path):
    """The in-memory Parquet reader (text as dictionaries) names the same rows and values as the DataFrame path."""
    df = _broken(case).infer_objects()
    df.to_parquet(tmp_path / "bad.parquet")
    assert _errors(tmp_path / "bad.parquet", "pandas").problems == _errors(df, "pandas").problems


def test_sql_findings_name_rows_by_loan_and_mob(tmp_path):
    df = _broken("negative ead")
    df.to_parquet(tmp_path / "bad.parquet")
    message = str(_errors(tmp_path / "bad.parquet", "duckdb"))
    assert "bad.parquet" in message and "[columns] ead" in message and "1 row (loan 'L1' MOB 2)" in message
    with pytest.raises(PanelError) as info:
        aggregate(tmp_path / "bad.parquet", CONFIG, "duckdb", examples=0)
    assert info.value.problems[0].endswith("is negative in 1 row")


def test_many_bad_rows_are_counted_and_a_few_quoted(tmp_path):
    df = simulate(CHAIN, cohorts=3, loans=40, max_mob=2)
    df.loc[::2, "PRINCIPLE_OUTSTANDING"] = -1.0
    message = str(_errors(df, "duckdb"))
    assert f"negative in {len(df[::2])} rows (e.g. loan " in message and message.count("MOB") == 10


def test_gap_warning_names_the_loans():
    df = frame(GOOD + loan("L3", "2024-01", "A", [("CURRENT", 100)]) + [("L3", "2024-01", 2, "A", "DPD60+", 100.0)])
    stats = aggregate(df, CONFIG, "duckdb")
    assert stats.warnings == aggregate(df, CONFIG, "pandas").warnings
    assert stats.warnings[0].startswith("1 gap in loans' MOB sequences (1 loan, e.g. 'L3')")
    assert stats.trans_count[0, :, 0, 3].sum() == 0  # no CURRENT -> DPD60+ pair across the gap


def _warnings_on_both(df: pd.DataFrame) -> tuple[str, ...]:
    warnings = aggregate(df, CONFIG, "duckdb").warnings
    assert warnings == aggregate(df, CONFIG, "pandas").warnings
    return warnings


def test_a_panel_without_any_mob_0_is_an_error():
    """A panel whose MOB counts from 1 gave an empty report (exit 0, "nan%" in the Summary)."""
    df = frame(GOOD).assign(MOB=lambda d: d["MOB"] + 1)
    for backend in ("pandas", "duckdb"):
        with pytest.raises(PanelError, match=r"no cohort has a MOB 0 row.*\[columns\] mob 'MOB'.*counts from 1"):
            aggregate(df, CONFIG, backend)


def test_moves_out_of_an_absorbing_state_are_named():
    """A written-off loan reported CURRENT again: the chain keeps WRITEOFF absorbing, the DEL tables count it CURRENT."""
    revived = loan("L9", "2024-01", "A", [("CURRENT", 50), ("WRITEOFF", 50), ("CURRENT", 50)])
    found = [w for w in _warnings_on_both(frame(GOOD + revived)) if "absorbing" in w]
    assert found and found[0].startswith("1 move out of an absorbing state (WRITEOFF -> CURRENT 1)"), found
    assert not [w for w in _warnings_on_both(frame(GOOD)) if "absorbing" in w]


def test_segment_names_alike_but_for_spaces_case_or_unicode_form_are_named():
    nfc, nfd = "Vay ti\u1ec1n", "Vay tie\u0302\u0300n"  # the same text, composed and decomposed
    df = frame(GOOD + loan("L3", "2024-01", "CD", [("CURRENT", 10)] * 2) + loan("L4", "2024-01", "CD ", [("CURRENT", 10)] * 2)
               + loan("L5", "2024-01", nfc, [("CURRENT", 10)] * 2) + loan("L6", "2024-01", nfd, [("CURRENT", 10)] * 2))
    found = [w for w in _warnings_on_both(df) if "differ only" in w]
    assert len(found) == 1 and "'CD' and 'CD '" in found[0], found
    assert f"{nfd!r} (decomposed Unicode) and {nfc!r};" in found[0], found
    assert not [w for w in _warnings_on_both(frame(GOOD)) if "differ only" in w]


def test_bucket_labels_are_escaped():
    order = ["Trong hạn", "it's late", "back\\slash", "DPD60+", "DPD90+", "WRITEOFF", "PREPAY"]
    config = cfg(buckets={"order": order, "del30": order[2:6], "del60": order[3:6], "del90": order[4:6]},
                 transitions={"min_count": 1})
    df = frame(loan("L1", "2024-01", "A", [("Trong hạn", 10), ("it's late", 9), ("back\\slash", 8), ("DPD60+", 7)]))
    assert_same_stats(aggregate(df, config, "pandas"), aggregate(df, config, "duckdb"))


def test_globs_and_folders(tmp_path):
    df = simulate(CHAIN, segments=("A", "B"), cohorts=4, loans=50, max_mob=3)
    expected = aggregate(df, CONFIG, "pandas")
    write_panel(df, tmp_path / "parts", parts=3)
    sub = tmp_path / "csv"
    sub.mkdir()
    for i, part in enumerate(np.array_split(np.arange(len(df)), 2)):
        piece = df.iloc[part]
        (piece if i == 0 else piece[piece.columns[::-1]]).to_csv(sub / f"p{i}.csv", index=False)  # columns by name
    for source in (tmp_path / "parts", str(tmp_path / "parts" / "*.parquet"), str(tmp_path / "**" / "*.parquet"),
                   sub, str(sub / "p*.csv")):
        assert_same_stats(expected, aggregate(source, CONFIG))
    with pytest.raises(PanelError, match="no files match"):
        aggregate(str(tmp_path / "nothing" / "*.parquet"), CONFIG)
    with pytest.raises(PanelError, match="one file"):
        aggregate(tmp_path / "parts", CONFIG, "pandas")


def test_a_note_among_the_parts_is_skipped_and_an_empty_part_is_named(tmp_path):
    """A README.txt in a folder of Parquet parts stopped the run as "mixes CSV and Parquet files", naming no file;
    a zero-byte part was an internal error on Spark, SQL in DuckDB's message and skipped by pandas."""
    df = simulate(CHAIN, segments=("A", "B"), cohorts=4, loans=50, max_mob=3)
    expected = aggregate(df, CONFIG, "pandas")
    write_panel(df, tmp_path / "parts", parts=3)
    (tmp_path / "parts" / "README.txt").write_text("These are the parts of December's tape\n")
    assert_same_stats(expected, aggregate(tmp_path / "parts", CONFIG, "duckdb"))
    (tmp_path / "parts" / "extra.csv").write_text("AGREEMENT_ID\n")
    with pytest.raises(PanelError, match=r"mixes CSV and Parquet files \(.*extra\.csv, .*part"):
        aggregate(tmp_path / "parts", CONFIG, "duckdb")
    (tmp_path / "parts" / "extra.csv").unlink()
    (tmp_path / "parts" / "p9.parquet").write_bytes(b"")
    for source in (tmp_path / "parts", str(tmp_path / "parts" / "*.parquet")):
        with pytest.raises(PanelError, match=r"p9\.parquet is empty \(0 bytes; an interrupted write\?\): delete it"):
            aggregate(source, CONFIG, "duckdb")


def test_a_quoted_line_break_and_a_blank_row_read_alike_on_every_backend(tmp_path):
    """A note typed with Alt+Enter (a line break inside a quoted field): DuckDB read it, pandas refused the file
    ("Expected 7 columns, got 5"). A row of empty fields (",,,,,", the end of an Excel export) was "empty loan MOB
    None" on the SQL backends."""
    df = simulate(CHAIN, segments=("A", "B"), cohorts=4, loans=50, max_mob=3)
    expected = aggregate(df, CONFIG, "pandas")
    df.assign(NOTE='line one\nline "two", with comma').to_csv(tmp_path / "notes.csv", index=False)
    for backend in ("pandas", "duckdb"):
        assert_same_stats(expected, aggregate(tmp_path / "notes.csv", CONFIG, backend))
    df.to_csv(tmp_path / "blank.csv", index=False)
    with open(tmp_path / "blank.csv", "a") as fh:
        fh.write(",,,,,\n")
    message = str(_errors(tmp_path / "blank.csv", "duckdb"))
    assert "a row with neither loan nor MOB, as the empty lines at the end of an Excel export" in message, message
    assert "None" not in message
    # Past pyarrow's first block (1 MB) the same note was "CSV parser got out of sync with chunker", which pandas 3
    # raises as its own ParserError: the pandas path (backtest, tune) refused a file report read.
    big = simulate(CHAIN, segments=("A", "B"), cohorts=6, loans=600, max_mob=4)
    big.assign(NOTE='line one\nline "two", with comma').to_csv(tmp_path / "big.csv", index=False)
    assert (tmp_path / "big.csv").stat().st_size > 2**20
    assert_same_stats(aggregate(big, CONFIG, "pandas"), aggregate(tmp_path / "big.csv", CONFIG, "pandas"))


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_a_part_without_a_mapped_column_is_named(tmp_path, suffix):
    """Parts are read by name: a part without the EAD column read as empty EADs, and the message named the folder
    and rows, not the file."""
    df = frame(GOOD)
    (tmp_path / "parts").mkdir()
    parts = {"a": df.iloc[:3], "b": df.iloc[3:].drop(columns="PRINCIPLE_OUTSTANDING"), "c": df.iloc[:0]}
    for name, part in parts.items():
        part.to_parquet(tmp_path / "parts" / f"{name}{suffix}") if suffix == ".parquet" else part.to_csv(
            tmp_path / "parts" / f"{name}{suffix}", index=False)
    error = _errors(tmp_path / "parts", "duckdb")
    assert error.problems[0] == (f"missing mapped column [columns] ead = 'PRINCIPLE_OUTSTANDING' in 1 of 3 files: "
                                 f"b{suffix} (the other files have it; its rows read as empty)"), str(error)


def test_a_part_not_in_utf8_is_named(tmp_path):
    (tmp_path / "parts").mkdir()
    frame(GOOD).iloc[:3].to_csv(tmp_path / "parts" / "a.csv", index=False)
    frame(GOOD).iloc[3:].assign(PRODUCT_TYPE="Crédit").to_csv(tmp_path / "parts" / "b.csv", index=False,
                                                              encoding="latin-1")
    message = str(_errors(tmp_path / "parts", "duckdb"))
    assert f"{tmp_path / 'parts' / 'b.csv'} is not UTF-8 text (line 2: byte 0xe9); save it as UTF-8" in message
    assert "CSV Error" not in message, message


def test_run_info_for_globs(tmp_path):
    df = simulate(CHAIN, cohorts=3, loans=30, max_mob=2)
    paths = write_panel(df, tmp_path / "parts", parts=2)
    pattern = str(tmp_path / "parts" / "*.parquet")
    result = pyxl_del.run(pattern, CONFIG)
    assert result.run_info["input"] == pattern and result.run_info["backend"] == "duckdb"
    assert result.run_info["rows"] == len(df) and len(result.run_info["fingerprint"]) == 16
    assert fingerprint(pattern, CONFIG) == result.run_info["fingerprint"]
    assert fingerprint(tmp_path / "parts", CONFIG) == result.run_info["fingerprint"]  # same files, same names
    os.utime(paths[1], ns=(time.time_ns(), time.time_ns() + 10**9))
    assert fingerprint(pattern, CONFIG) != result.run_info["fingerprint"]
    assert source_name(paths[0]) == paths[0].name
    single = pyxl_del.run(paths[0], CONFIG)
    assert single.run_info["fingerprint"] == pyxl_del.run(paths[0], CONFIG, backend="pandas").run_info["fingerprint"]


def test_progress_reports_steps_and_percentages():
    class SlowEngine:
        def query(self, sql):
            time.sleep(1.3)
            return sql

        def progress(self):
            return 40.0

        def cancel(self):
            raise AssertionError("not cancelled")

    seen = []
    assert _watch(SlowEngine(), "done", seen.append) == "done"
    assert seen == ["aggregate 40%"]
    steps = []
    pyxl_del.run(frame(GOOD), CONFIG, backend="duckdb", progress=steps.append)
    assert steps[:3] == ["read", "validate", "aggregate"]


def test_cli_backend_flag(tmp_path, capsys):
    df = simulate(CHAIN, segments=("CASH LOAN", "Vay tiêu dùng"), cohorts=4, loans=60, max_mob=3)
    write_panel(df, tmp_path / "parts", parts=2)
    for backend in ("duckdb", "pandas"):
        data = tmp_path / "parts" / ("*.parquet" if backend == "duckdb" else "part-00000.parquet")
        assert main(["report", str(data), "--backend", backend, "--out", str(tmp_path / backend), "-q"]) == 0
        printed = capsys.readouterr().out
        assert "rows/s" in printed and backend in printed
    assert main(["report", str(tmp_path / "parts"), "--backend", "pandas", "--out", str(tmp_path / "x"), "-q"]) == 2


def test_rows_reported_after_this_month_are_named(monkeypatch):
    """A cohort typed 2099-01 for 2019-01 made the report "As of 2099-01" without a word. Rows whose reporting
    month (cohort + MOB) is after the machine's month cannot be actual data: a warning names their cells."""
    from pyxl_del.engine import data

    typo = loan("L9", "2099-01", "A", [("CURRENT", 50), ("CURRENT", 50)])
    monkeypatch.setattr(data, "this_month", lambda: data.month_index(2026, 12))
    found = [w for w in _warnings_on_both(frame(GOOD + typo)) if "after this month" in w]
    assert found and found[0].startswith("1 cohort-segment reports rows after this month (2026-12), up to 2099-02: "
                                         "A 2099-01"), found
    assert not [w for w in _warnings_on_both(frame(GOOD)) if "after this month" in w]  # GOOD ends 2024-03


def test_loans_joining_a_cohort_after_mob_0_are_named():
    """A seasoned loan booked into a cohort that has MOB 0 rows: its balance counts in the DEL from its first month
    on, while the DEL divides by the cohort's MOB 0 EAD without it, so the DEL reads high; it was not said."""
    late = loan("L9", "2024-01", "A", [("DPD30+", 50), ("DPD60+", 50)], start_mob=2)
    lone = loan("L7", "2023-06", "A", [("CURRENT", 70), ("CURRENT", 70)], start_mob=4)  # a cohort with no MOB 0
    found = [w for w in _warnings_on_both(frame(GOOD + late + lone)) if "after MOB 0" in w]
    mob0 = frame(GOOD).query("MOB == 0 and DISBURSAL_MONTH == '2024-01'")["PRINCIPLE_OUTSTANDING"].sum()
    assert found == [
        f"1 loan first appears after MOB 0 in 1 cohort-segment that has MOB 0 rows (e.g. 'L9' at MOB 2): their "
        f"balances count in the DEL from that MOB on, but the DEL divides by the EAD at MOB 0 without them, so a "
        f"cohort's DEL can read high by up to their balance over its MOB 0 balance, {50 / mob0:.1%} at most "
        f"(A 2024-01); give such a loan the cohort of its first reported month, or its rows from MOB 0"], found
    assert not [w for w in _warnings_on_both(frame(GOOD + lone)) if "after MOB 0" in w]
    assert not [w for w in _warnings_on_both(frame(GOOD)) if "after MOB 0" in w]


def test_late_start_examples_of_number_ids_agree_on_both_backends():
    """Loan ids that are numbers: pandas listed them as text sorted ("1067" before "97") and unquoted, the SQL
    backends by value and quoted."""
    late = [row for i in (1067, 97, 194) for row in loan(i, "2024-01", "A", [("CURRENT", 50)], start_mob=2)]
    df = frame(loan(5, "2024-01", "A", [("CURRENT", 100), ("CURRENT", 90), ("CURRENT", 80)]) + late)
    assert df["AGREEMENT_ID"].dtype == "int64"
    (found,) = [w for w in _warnings_on_both(df) if "after MOB 0" in w]
    assert "(e.g. '97' at MOB 2, '194' at MOB 2, '1067' at MOB 2)" in found, found


@pytest.mark.parametrize("spelling", ["text", "date", "number"])
def test_calendar_months_mapped_as_the_mob_say_how_to_make_one(tmp_path, spelling):
    """A reporting-month column mapped as the MOB was "must be a whole number" with rows only: the finding now names
    the months and how to make the MOB, on every backend; a MOB that is no month keeps the plain finding."""
    df = frame(GOOD)
    months = pd.Series(["2024-01", "2024-02", "2024-03"] * 2)
    df["MOB"] = {"text": months, "date": pd.to_datetime(months),
                 "number": months.str.replace("-", "").astype(int)}[spelling]
    df.to_parquet(tmp_path / "p.parquet")
    df.to_csv(tmp_path / "p.csv", index=False)
    for source, backend in ((df, "pandas"), (tmp_path / "p.parquet", "duckdb"), (tmp_path / "p.csv", "duckdb")):
        message = str(_errors(source, backend))
        named = message.partition("not months on book")[0]  # the rows listed after it are the engine's text
        assert "([columns] mob) holds calendar months such as" in named and "2024-01" in named.replace(
            "202401", "2024-01") and "00:00" not in named and "Timestamp" not in named, (backend, message)
    df["MOB"] = [0, 1, 2.5, 0, 1, 2]
    for backend in ("pandas", "duckdb"):
        message = str(_errors(df, backend))
        assert "must be a whole number" in message and "calendar months" not in message, (backend, message)


def _written_with_a_decimal_comma(values: pd.Series) -> pd.Series:
    """Balances as a Vietnamese Excel saves them: 1.234.567,5."""
    return values.map(lambda v: f"{v:,.2f}".replace(",", " ").replace(".", ",").replace(" ", "."))


def test_decimal_comma_csv_reads_as_the_decimal_point_one_on_every_backend(tmp_path):
    """[columns] decimal = ",": a CSV of 1.234.567,5 balances gives the statistics of the same panel written with a
    decimal point; "12.5" is then no number (never 125); numbers stored as numbers are read as they are."""
    df = simulate(CHAIN, segments=("A",), cohorts=3, loans=40, max_mob=4, seed=3)
    # thousands and millions, so that points group them; cents, as written
    df["PRINCIPLE_OUTSTANDING"] = (df["PRINCIPLE_OUTSTANDING"] * 1234.5).round(2)
    comma = cfg(transitions={"min_count": 1}, columns={"decimal": ","})
    expected = aggregate(df, CONFIG, "pandas")
    written = df.assign(PRINCIPLE_OUTSTANDING=_written_with_a_decimal_comma(df["PRINCIPLE_OUTSTANDING"]))
    assert written["PRINCIPLE_OUTSTANDING"].str.contains(r"^\d{1,3}\.\d{3}", regex=True).any()
    written.to_csv(tmp_path / "vn.csv", index=False, sep=";")
    df.to_parquet(tmp_path / "p.parquet")
    for source, backend in ((tmp_path / "vn.csv", "pandas"), (tmp_path / "vn.csv", "duckdb"), (written, "pandas"),
                            (df, "pandas"), (tmp_path / "p.parquet", "duckdb"), (tmp_path / "p.parquet", "pandas")):
        actual = aggregate(source, comma, backend)
        assert np.allclose(actual.ead, expected.ead, rtol=1e-12) and np.array_equal(actual.n_loans, expected.n_loans)
    for source, backend in ((tmp_path / "vn.csv", "pandas"), (tmp_path / "vn.csv", "duckdb")):
        # without the setting: named, with the setting to use
        assert 'or set [columns] decimal = ","' in str(_errors(source, backend)), backend
    written.loc[3, "PRINCIPLE_OUTSTANDING"] = "12.5"
    written.to_csv(tmp_path / "vn.csv", index=False, sep=";")
    for source, backend in ((written, "pandas"), (tmp_path / "vn.csv", "pandas"), (tmp_path / "vn.csv", "duckdb")):
        with pytest.raises(PanelError) as info:
            aggregate(source, comma, backend)
        message = str(info.value)
        assert 'is not a number as [columns] decimal = "," reads them' in message and "'12.5'" in message, message
    # A US thousands comma is not a decimal comma: the setting is not offered.
    us = df.assign(PRINCIPLE_OUTSTANDING=df["PRINCIPLE_OUTSTANDING"].map(lambda v: f"{v:,.0f}"))
    assert "decimal =" not in str(_errors(us, "pandas"))


def test_decimal_comma_reads_text_cells_only():
    """An .xlsx column mixes number cells and text ones: the numbers stay numbers, the text is read as written."""
    cells = pd.Series([1234.5, "1.234,5", "1 234 567,25", "-7,5", "12.5", "1,234", True, None], dtype=object)
    assert np.array_equal(column_numbers(cells, ","), [1234.5, 1234.5, 1234567.25, -7.5, np.nan, 1.234, np.nan, np.nan],
                          equal_nan=True)
    assert np.array_equal(column_numbers(cells), [1234.5, np.nan, np.nan, np.nan, 12.5, np.nan, np.nan, np.nan],
                          equal_nan=True)


def test_a_loan_level_column_mapped_as_the_segment_is_an_error_on_every_backend(tmp_path):
    """Segment = loan id: 688 one-loan segments had made 4,136 sheets in 94 s from 20,000 rows; now one finding."""
    df = simulate(CHAIN, segments=("A",), cohorts=2, loans=15, max_mob=2, seed=2)
    df["PRODUCT_TYPE"] = df["AGREEMENT_ID"]  # 30 loans, 30 segments
    df.to_parquet(tmp_path / "p.parquet")
    for source, backend in ((df, "pandas"), (tmp_path / "p.parquet", "duckdb")):
        message = str(_errors(source, backend))
        assert "([columns] segment): 30 of its 30 segments hold a single loan (e.g. 'A-2024-01-000001'" in message, (
            backend, message)
    # Two loans each, or fewer segments than checked: segments as the user chose them.
    df["PRODUCT_TYPE"] = df["AGREEMENT_ID"].str[:-1]
    assert aggregate(df, CONFIG, "pandas").segments[0] == "A-2024-01-00000"
    few = df[df["AGREEMENT_ID"].isin(df["AGREEMENT_ID"].unique()[:19])].assign(PRODUCT_TYPE=lambda f: f["AGREEMENT_ID"])
    assert len(aggregate(few, CONFIG, "pandas").segments) == 19


def test_days_past_due_as_the_state_are_named_on_every_backend(tmp_path):
    df = frame(GOOD)
    df["STATE_MODEL"] = [0, 0, 35, 0, 0, 0]
    df.to_csv(tmp_path / "p.csv", index=False)
    for source, backend in ((df, "pandas"), (tmp_path / "p.csv", "duckdb")):
        assert "(whole numbers: days past due, not buckets;" in str(_errors(source, backend)), backend
    df["STATE_MODEL"] = ["CURRENT", "CURRENT", "35", "LATE", "CURRENT", "CURRENT"]  # not only numbers: no such note
    assert "days past due" not in str(_errors(df, "pandas"))


def test_a_title_above_the_table_of_an_xlsx_is_skipped(tmp_path):
    """Every mapped column had been "missing", with "Unnamed: 1" offered as a name to map: the header is row 4."""
    import openpyxl

    df = frame(GOOD)
    df.to_excel(tmp_path / "p.xlsx", index=False, startrow=3)
    book = openpyxl.load_workbook(tmp_path / "p.xlsx")
    book.active["A1"], book.active["A2"] = "Loan tape, December 2025", "AGREEMENT_ID"  # a name alone is no header
    book.save(tmp_path / "p.xlsx")
    assert_same_stats(aggregate(df, CONFIG, "pandas"), aggregate(tmp_path / "p.xlsx", CONFIG, "pandas"))
    book.active.delete_rows(4)  # no row holds every mapped name: the missing columns are named as before
    book.save(tmp_path / "p.xlsx")
    assert "missing mapped column [columns] loan_id = 'AGREEMENT_ID'" in str(_errors(tmp_path / "p.xlsx", "pandas"))


def test_a_title_above_the_table_of_a_csv_is_skipped_on_every_backend(tmp_path):
    """DuckDB's sniffer skipped the title lines; the pandas reader had named every column missing."""
    df = frame(GOOD)
    (tmp_path / "p.csv").write_text("Loan tape, December 2025\n\n" + df.to_csv(index=False), encoding="utf-8")
    expected = aggregate(df, CONFIG, "pandas")
    for backend in ("pandas", "duckdb"):
        assert_same_stats(expected, aggregate(tmp_path / "p.csv", CONFIG, backend))


def test_row_numbers_count_the_title_above_the_table(tmp_path):
    """A bad MOB on file row 6 below a title line was named "row 5", a valid row: the rows were counted from the
    header as if it were row 1."""
    import openpyxl

    df = frame(GOOD)
    df.loc[3, "MOB"] = -1  # data row 4: row 5 under a header on row 1, row 7 under two lines of title
    (tmp_path / "p.csv").write_text("Loan tape, December 2025\n\n" + df.to_csv(index=False), encoding="utf-8")
    df.to_excel(tmp_path / "p.xlsx", index=False, startrow=2)
    book = openpyxl.load_workbook(tmp_path / "p.xlsx")
    book.active["A1"] = "Loan tape, December 2025"
    book.save(tmp_path / "p.xlsx")
    for path in (tmp_path / "p.csv", tmp_path / "p.xlsx"):
        assert "must be a whole number from 0 to 1200; not so in row 7" in str(_errors(path, "pandas")), path
    assert "not so in row 5" in str(_errors(df, "pandas"))  # a frame: its header is row 1


def test_a_quoted_field_after_the_sniffing_sample_is_read_on_every_backend(tmp_path):
    """DuckDB had sniffed 'no quote character' from the first 20,480 lines and then stopped at the first quoted
    name: 'CSV Error on Line: 22002 ... Expected Number of Columns: 6 Found: 7'."""
    df = late_quoted_segment_csv(tmp_path / "p.csv")
    expected = aggregate(df, CONFIG, "pandas")
    for backend in ("pandas", "duckdb"):
        actual = aggregate(tmp_path / "p.csv", CONFIG, backend)
        assert actual.segments == expected.segments == ("A", 'Vay "tiêu dùng", tín chấp'), backend
        assert_same_stats(expected, actual)


def test_month_year_cohorts_are_named_with_the_format_that_reads_them(tmp_path):
    """'07/2023' (a European or Vietnamese month) was "not a month" on DuckDB with a generic hint, and pandas read it
    without a word (so `backtest` ran on a file `report` refused)."""
    df = frame(GOOD + loan("L3", "2023-12", "A", [("CURRENT", 100), ("CURRENT", 90)]))
    expected = aggregate(df, CONFIG, "pandas")
    df["DISBURSAL_MONTH"] = df["DISBURSAL_MONTH"].map({"2024-01": "1/2024", "2023-12": "12/2023"})
    df.to_csv(tmp_path / "p.csv", index=False)
    for backend in ("pandas", "duckdb"):
        message = str(_errors(tmp_path / "p.csv", backend))
        assert "such as '1/2024', '12/2023' are month/year: set [columns] cohort_format = '%m/%Y'" in message, backend
    told = cfg(transitions={"min_count": 1}, columns={"cohort_format": "%m/%Y"})
    for backend in ("pandas", "duckdb"):
        assert_same_stats(expected, aggregate(tmp_path / "p.csv", told, backend))


def test_a_folder_given_where_one_file_is_read_is_named_as_a_folder(tmp_path, capsys):
    """`backtest panel/` on a folder of parts that `report panel/` reads said "file not found: panel"."""
    write_panel(frame(GOOD), tmp_path / "panel" / "part-0.parquet")
    assert main(["backtest", str(tmp_path / "panel"), "--origins", "1", "-q"]) == 2
    assert "panel: is a folder: this reads one file (`report` reads a folder of parts)" in capsys.readouterr().err


def test_a_one_month_snapshot_is_named_with_its_file_on_every_backend(tmp_path):
    """One row per loan: the error came from the transitions, as "panel: ...", without the file or the cause."""
    df = frame(loan("L1", "2024-03", "A", [("CURRENT", 100)]) + loan("L2", "2024-03", "A", [("DPD1+", 90)]))
    df.to_csv(tmp_path / "snapshot.csv", index=False)
    for backend in ("pandas", "duckdb"):
        message = str(_errors(tmp_path / "snapshot.csv", backend))
        assert message.startswith("snapshot.csv: no loan is observed at two consecutive MOBs") and (
            "a snapshot of one month holds one row per loan" in message), (backend, message)
