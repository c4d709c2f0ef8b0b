"""Every finding about the panel says its count in the right number, on both in-memory backends: "1 loan changes
cohort", "2 loans change cohort" (a credit officer reads these sentences in the CLI, Run info and the ribbon)."""

from __future__ import annotations

import pandas as pd
import pytest
from _panels import cfg, frame, loan

import pyxl_del
from pyxl_del import PanelError
from pyxl_del.engine.diagnostics import cut_cohorts

BACKENDS = ["pandas", "duckdb"]
PATH = [("CURRENT", 100), ("CURRENT", 90), ("CURRENT", 80)]  # MOB 0..2


def loans(n: int, cohort: str = "2024-01", path=PATH, start_mob: int = 0) -> list:
    return [row for i in range(n) for row in loan(f"{cohort}-L{i}", cohort, "A", path, start_mob)]


def book() -> pd.DataFrame:
    """Four sound loans of 2024-01, into which each case below puts n cases of its finding."""
    return frame(loans(4))


def duplicates(n):
    df = book()
    return pd.concat([df, df.iloc[:n]], ignore_index=True), {}


def changes(n):
    df = book()
    df.loc[[3 * i + 2 for i in range(n)], "DISBURSAL_MONTH"] = "2024-02"  # each loan's MOB 2 row
    return df, {}


def not_a_month(n):
    df = book()
    df.loc[: n - 1, "DISBURSAL_MONTH"] = "soon"
    return df, {}


def not_the_format(n):
    df = book()
    df["DISBURSAL_MONTH"] = "01/2024"
    df.loc[: n - 1, "DISBURSAL_MONTH"] = "2024-01-01"
    return df, {"columns": {"cohort_format": "%m/%Y"}}


def no_mob0(n):
    cohorts = [f"2024-{m:02d}" for m in range(2, 2 + n)]
    return frame(loans(4) + [r for c in cohorts for r in loans(1, c, PATH[1:], start_mob=1)]), {}


def zero_mob0(n):
    cohorts = [f"2024-{m:02d}" for m in range(2, 2 + n)]
    zero = [("CURRENT", 0), ("CURRENT", 10)]
    return frame(loans(4) + [r for c in cohorts for r in loans(1, c, zero)]), {}


def beyond(n):
    rows = loans(4, path=PATH[:2]) + loans(1, "2024-02", PATH[:2] + [("CURRENT", 70)] * n)  # MOB 2 .. n + 1
    return frame(rows), {"forecast": {"max_mob": 1}}


def far(n):
    """Three cohorts of four loans; one loan's balance 1e8 times the others' at MOB 0..n-1: n cells far off."""
    df = frame(loans(4) + loans(4, "2024-02") + loans(4, "2024-03")).astype({"PRINCIPLE_OUTSTANDING": float})
    df.loc[: n - 1, "PRINCIPLE_OUTSTANDING"] = 1e10
    return df, {}


# the panel with n cases of a finding, and what its sentence says for one and for two
CASES = {
    "duplicates": (duplicates, "1 duplicate (loan, mob) row (", "2 duplicate (loan, mob) rows ("),
    "changes": (changes, "1 loan changes cohort", "2 loans change cohort"),
    "not_a_month": (not_a_month, "1 value is not a month", "2 values are not a month"),
    "not_the_format": (not_the_format, "1 value does not match", "2 values do not match"),
    "no_mob0": (no_mob0, "1 cohort has no MOB 0 row", "2 cohorts have no MOB 0 row"),
    "zero_mob0": (zero_mob0, "1 cohort has MOB 0 rows whose EAD sums to 0", "2 cohorts have MOB 0 rows"),
    "beyond": (beyond, "1 row beyond [forecast] max_mob = 1 is not used", "2 rows beyond [forecast] max_mob = 1 are"),
    "far": (far, "1 cohort-MOB cell has an EAD per loan", "2 cohort-MOB cells have an EAD per loan"),
}


def sentences(df, sections, backend) -> list[str]:
    config = cfg(transitions={"min_count": 1}, **sections)
    try:
        return list(pyxl_del.run(df, config, backend=backend).warnings)
    except PanelError as error:
        return list(error.problems)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES)
def test_each_finding_counts_in_the_right_number(case, backend):
    make, one, two = CASES[case]
    for n, expected in ((1, one), (2, two)):
        said = sentences(*make(n), backend)
        assert len([s for s in said if expected in s]) == 1, (n, expected, said)


def test_cut_cohorts_count_in_the_right_number():
    df, sections = beyond(1)
    stats = pyxl_del.run(df, cfg(transitions={"min_count": 1}, **sections)).stats
    assert cut_cohorts(stats).startswith("1 cohort-segment has data beyond [forecast] max_mob = 1 (up to MOB 2)")
