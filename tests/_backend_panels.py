"""Panels and comparisons shared by the backend tests (tests/test_backends.py, tests/test_spark.py)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from _panels import CHAIN, COLUMNS, cfg, simulate

import pyxl_del
from pyxl_del.engine.config import LOGICAL_COLUMNS
from pyxl_del.engine.pipeline import fit

STAT_ARRAYS = ("cohorts", "ead", "ead_sq", "n_loans", "trans_count", "trans_ead_from", "trans_ead_to")
# Column names a real book has: spaces, Vietnamese letters, quote characters of both SQL dialects.
AWKWARD_COLUMNS = {"loan_id": "Mã hợp đồng", "cohort": "Tháng giải ngân", "mob": "months on book",
                   "segment": "Sản phẩm", "state": 'Trạng thái "model"', "ead": "dư nợ `gốc`"}


def awkward_panel() -> tuple[pd.DataFrame, pyxl_del.Config]:
    """Vietnamese segment names, renamed columns, gaps, a cohort without MOB 0 and rows beyond max_mob."""
    df = simulate(CHAIN, segments=("Vay tiêu dùng/Xe máy", "TW/Moto"), cohorts=6, loans=60, max_mob=6, seed=7)
    loans = df["AGREEMENT_ID"].drop_duplicates()
    gap_loans = set(loans.iloc[[0, 5, 9]])
    df = df[~(df["AGREEMENT_ID"].isin(gap_loans) & (df["MOB"] == 2))]  # three gaps
    no_mob0 = (df["PRODUCT_TYPE"] == "TW/Moto") & (df["DISBURSAL_MONTH"] == "2024-02") & (df["MOB"] == 0)
    df = df[~no_mob0]
    config = cfg(columns=AWKWARD_COLUMNS, forecast={"max_mob": 3}, transitions={"min_count": 5})
    renamed = df.rename(columns=dict(zip(COLUMNS, [AWKWARD_COLUMNS[k] for k in LOGICAL_COLUMNS], strict=True)))
    return renamed.reset_index(drop=True), config


def assert_same_stats(expected, actual) -> None:
    assert actual.segments == expected.segments and actual.states == expected.states
    assert actual.n_rows == expected.n_rows
    for name in STAT_ARRAYS:
        a, b = getattr(expected, name), getattr(actual, name)
        assert a.shape == b.shape, name
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-9, err_msg=name)
    assert actual.warnings == expected.warnings


def assert_same_results(expected_stats, actual_stats, config) -> None:
    """The statistics, then what the engine makes of them: the DEL tables and the transition matrices."""
    assert_same_stats(expected_stats, actual_stats)
    a, b = fit(expected_stats, config), fit(actual_stats, config)
    # The forecast quantiles are drawn: a last-bit difference of the two backends' sums can move one simulated loan
    # in one path (in a cohort of a few loans, a whole loan's share of its DEL). The expected path must agree
    # exactly; the quantiles in almost every cell.
    drawn = [c for c in a.del_long.columns if c in ("p10", "p50", "p90")]
    pd.testing.assert_frame_equal(b.del_long.drop(columns=drawn), a.del_long.drop(columns=drawn), rtol=1e-9,
                                  atol=1e-12)
    if drawn:
        qa, qb = a.del_long[drawn].to_numpy(dtype=float), b.del_long[drawn].to_numpy(dtype=float)
        same = np.isclose(qb, qa, rtol=1e-9, atol=1e-12, equal_nan=True)
        assert same.mean() > 0.95 and np.nanmean(np.abs(qb - qa)) < 0.05 * np.nanmean(np.abs(qa))
    pd.testing.assert_frame_equal(b.transition_matrices, a.transition_matrices, rtol=1e-9, atol=1e-12)


# Where a finding points at rows: "rows 3, 6 and 4 more" (pandas), "2 rows (loan 'L1' MOB 1, ...)" (SQL),
# "'L1' at rows 4" / "'L1' at MOB 2" (loans that change cohort or segment).
_WHERE = re.compile(r"(rows? \d[\d, ]*(?: and \d+ more)?|[\d,]+ rows?(?: \([^)]*\))?|at rows? \d[\d, ]*|at MOB \d+)")


def finding_kinds(message: str) -> list[str]:
    """A PanelError's findings without their row locations: what must agree between backends."""
    return [_WHERE.sub("<rows>", line.strip()) for line in message.splitlines()[1:] or [message.split(": ", 1)[1]]]


def late_quoted_segment_csv(path) -> pd.DataFrame:
    """A CSV whose segment name needs quotes (a comma, quotes of its own) first after DuckDB's sniffing sample of
    20,480 lines, as in a tape sorted by loan id; returns the panel written."""
    df = simulate(CHAIN, segments=("A", 'Vay "tiêu dùng", tín chấp'), cohorts=4, loans=2200, max_mob=6, seed=6)
    df = df.sort_values("PRODUCT_TYPE", kind="stable", ignore_index=True)
    assert (df["PRODUCT_TYPE"] == "A").sum() > 20_480
    df.to_csv(path, index=False)
    return df
