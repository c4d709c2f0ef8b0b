"""Bad input: each is one clear error naming the column/config key and the rows, or a reported warning."""

import numpy as np
import pandas as pd
import pytest
from _panels import cfg, frame, loan

import pyxl_del
from pyxl_del import PanelError

GOOD = (loan("L1", "2024-01", "A", [("CURRENT", 100), ("CURRENT", 90), ("DPD1+", 80)])
        + loan("L2", "2024-01", "A", [("CURRENT", 100), ("CURRENT", 90), ("CURRENT", 80)]))


def run(df, **sections):
    return pyxl_del.run(df, cfg(transitions={"min_count": 1}, **sections))


def error_of(df, **sections) -> str:
    with pytest.raises(PanelError) as info:
        run(df, **sections)
    return str(info.value)


def test_good_panel_runs():
    assert run(frame(GOOD)).stats.n_rows == 6


def test_missing_mapped_column_names_key_and_column():
    msg = error_of(frame(GOOD).drop(columns="PRINCIPLE_OUTSTANDING"))
    assert "[columns] ead = 'PRINCIPLE_OUTSTANDING'" in msg


def test_remapped_columns_are_used():
    df = frame(GOOD).rename(columns={"MOB": "months on book", "PRODUCT_TYPE": "Sản phẩm"})
    r = pyxl_del.run(df, cfg(columns={"mob": "months on book", "segment": "Sản phẩm"},
                             transitions={"min_count": 1}))
    assert r.segments == ("A",)


def test_unknown_state_labels_listed_with_rows():
    df = frame(GOOD)
    df.loc[[1, 4], "STATE_MODEL"] = ["DPD 30", "current"]
    msg = error_of(df)
    assert "'DPD 30'" in msg and "'current'" in msg and "rows 3, 6" in msg and "STATE_MODEL" in msg


@pytest.mark.parametrize("value, words", [(-5.0, "negative"), ("abc", "not a number"), (None, "empty")])
def test_bad_ead(value, words):
    df = frame(GOOD)
    df["PRINCIPLE_OUTSTANDING"] = df["PRINCIPLE_OUTSTANDING"].astype(object)
    df.loc[2, "PRINCIPLE_OUTSTANDING"] = value
    msg = error_of(df)
    assert words in msg and "row 4" in msg and "[columns] ead" in msg


def test_duplicate_loan_mob_rows():
    df = frame(GOOD + [("L1", "2024-01", 1, "A", "CURRENT", 90.0)])
    msg = error_of(df)
    assert "duplicate (loan, mob)" in msg and "rows 3, 8" in msg


@pytest.mark.parametrize("column, value, key", [("DISBURSAL_MONTH", "2024-02", "cohort"), ("PRODUCT_TYPE", "B", "segment")])
def test_loan_changing_cohort_or_segment(column, value, key):
    df = frame(GOOD)
    df.loc[2, column] = value
    msg = error_of(df)
    assert f"1 loan changes {key}" in msg and "'L1'" in msg


def test_gap_is_a_warning_and_no_transition_crosses_it():
    df = frame(GOOD + loan("L3", "2024-01", "A", [("CURRENT", 100)]) + [("L3", "2024-01", 2, "A", "DPD60+", 100.0)])
    r = run(df)
    assert any("1 gap in loans' MOB sequences" in w and "'L3'" in w for w in r.warnings)
    assert r.stats.trans_count[0, :, 0, 3].sum() == 0  # no CURRENT -> DPD60+ pair was formed


def test_cohort_without_mob0_is_reported_and_left_out():
    df = frame(GOOD + loan("L9", "2024-02", "A", [("CURRENT", 100), ("CURRENT", 100)], start_mob=1))
    r = run(df)
    assert any("no MOB 0 row" in w and "A 2024-02" in w for w in r.warnings)
    assert "2024-02" not in r.wide("A", "DEL30").index


def test_empty_input():
    assert "empty" in error_of(frame([]))


def test_bad_mob_and_cohort_values():
    df = frame(GOOD)
    df["MOB"] = df["MOB"].astype(object)
    df.loc[0, "MOB"] = 1.5
    df.loc[3, "DISBURSAL_MONTH"] = "not a month"
    msg = error_of(df)
    assert "whole number" in msg and "'not a month'" in msg


def test_all_problems_reported_at_once():
    df = frame(GOOD)
    df.loc[0, "STATE_MODEL"] = "??"
    df["PRINCIPLE_OUTSTANDING"] = df["PRINCIPLE_OUTSTANDING"].astype(float)
    df.loc[1, "PRINCIPLE_OUTSTANDING"] = -1
    with pytest.raises(PanelError) as info:
        run(df)
    assert len(info.value.problems) == 2


def test_reserved_portfolio_segment_name():
    df = frame(GOOD)
    df["PRODUCT_TYPE"] = "Portfolio"
    assert "reserved" in error_of(df)


@pytest.mark.parametrize("cohorts", [
    pd.to_datetime(["2024-01-15"] * 6),
    pd.PeriodIndex(["2024-01"] * 6, freq="M"),
    ["2024-01-01"] * 6,
    [202401] * 6,
])
def test_cohort_types_give_yyyy_mm(cohorts):
    df = frame(GOOD)
    df["DISBURSAL_MONTH"] = pd.Series(cohorts, index=df.index)
    r = run(df)
    assert r.cohorts == ["2024-01"]
    assert set(r.del_long["cohort"]) == {"2024-01"}


def test_row_order_does_not_matter():
    df = frame(GOOD + loan("L3", "2024-02", "B", [("CURRENT", 50), ("DPD1+", 50)]))
    a = run(df)
    b = run(df.sample(frac=1, random_state=3))
    pd.testing.assert_frame_equal(a.del_long, b.del_long)
    np.testing.assert_array_equal(a.transition_matrix, b.transition_matrix)


def test_file_inputs(tmp_path):
    df = frame(GOOD)
    df["PRODUCT_TYPE"] = "Vay tiêu dùng/Xe máy"
    for suffix in (".csv", ".parquet", ".xlsx"):
        path = tmp_path / f"panel{suffix}"
        if suffix == ".csv":
            df.to_csv(path, index=False, encoding="utf-8-sig")  # with a BOM, as Excel writes it
        elif suffix == ".parquet":
            df.to_parquet(path)
        else:
            df.to_excel(path, index=False)
        r = run(path)
        assert r.segments == ("Vay tiêu dùng/Xe máy",) and r.stats.n_rows == 6
        assert r.run_info["input"] == path.name and len(r.run_info["fingerprint"]) == 16


def test_missing_file_is_named(tmp_path):
    with pytest.raises(PanelError, match="nowhere.csv"):
        run(tmp_path / "nowhere.csv")


@pytest.mark.parametrize("backend", ["pandas", "duckdb"])
def test_csv_cohorts_as_numbers_and_with_time_zones(tmp_path, backend):
    df = frame(GOOD + loan("L3", "x", "A", [("CURRENT", 100), ("CURRENT", 100)]))
    df["DISBURSAL_MONTH"] = ["202401"] * 6 + ["2024-02-01T00:00:00+07:00", "2024-02-01T00:00:00-05:00"]
    path = tmp_path / "panel.csv"
    df.to_csv(path, index=False)
    r = pyxl_del.run(path, cfg(transitions={"min_count": 1}), backend=backend)
    assert r.cohorts == ["2024-01", "2024-02"]


def test_a_missing_column_names_its_near_match():
    """A header 'AGREEMENT_ID ' (a trailing space) or 'agreement_id' read "missing mapped column ... present:
    AGREEMENT_ID, ..." — the two look the same. The near match is named with repr, so the space shows."""
    df = frame(GOOD).rename(columns={"AGREEMENT_ID": "AGREEMENT_ID ", "MOB": "mob"})
    message = error_of(df)
    assert "[columns] loan_id = 'AGREEMENT_ID': the data have 'AGREEMENT_ID ' (it differs in spaces or letter case)" \
        in message, message
    assert "[columns] mob = 'MOB': the data have 'mob'" in message, message


def test_text_read_as_categories_keeps_only_the_values_present():
    """Parquet text arrives as categoricals whose categories may be unused or out of order; an empty cell is -1."""
    from pyxl_del.engine.data import _factorize, _parse_cohorts

    segment = pd.Series(pd.Categorical(["c", "a", None, "c"], categories=["b", "c", "a"]))
    codes, uniques = _factorize(segment, sort=True)
    assert list(uniques) == ["a", "c"] and codes.tolist() == [1, 0, -1, 1]
    codes, uniques = _factorize(segment)  # first seen order of the categories, "b" (unused) dropped
    assert list(uniques) == ["c", "a"] and codes.tolist() == [0, 1, -1, 0]
    ordered = pd.Series(pd.Categorical(["x", "y", "x"], categories=["x", "y"]))
    codes, uniques = _factorize(ordered, sort=True)
    assert list(uniques) == ["x", "y"] and codes.tolist() == [0, 1, 0]
    codes, uniques = _factorize(pd.Series(pd.Categorical(["x", "y"], categories=["y", "x"])), sort=True)
    assert list(uniques) == ["x", "y"] and codes.tolist() == [0, 1]  # every category used, in another order
    problems: list[str] = []
    cohort = pd.Series(pd.Categorical(["2024-02", None, "2024-01"], categories=["2023-12", "2024-01", "2024-02"]))
    months = _parse_cohorts(cohort, "DISBURSAL_MONTH", problems)
    assert months.tolist() == [2024 * 12 + 1, -1, 2024 * 12] and "empty" in problems[0] and "row 3" in problems[0]


def test_whole_number_mobs_out_of_range_are_named():
    from pyxl_del.engine.data import PANEL_MAX_MOB

    df = frame(GOOD)
    df["MOB"] = df["MOB"].astype(np.int64)
    df.loc[2, "MOB"] = PANEL_MAX_MOB + 1
    df.loc[4, "MOB"] = -3
    msg = error_of(df)
    assert "whole number from 0 to" in msg and "rows 4, 6" in msg
