"""The loans behind a DEL cell (segment, cohort, MOB): who they are, their states and EAD, and the totals that
rebuild the cell.

`loans_behind(data, config, segment, cohort, mob, state)` lists the loans of a segment (or the Portfolio) and
cohort observed at a MOB: loan, segment, state, EAD and the state the month before, largest EAD first, with the
totals that rebuild the cell (EAD in the DEL buckets / the cohort's EAD at MOB 0 is the actual DEL). ``state``
keeps one bucket, or the buckets of a DEL type ("DEL30"). Front ends: =DEL_LOANS and the ribbon's Drill down
(pyxl_del.excel.drilldown).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from pyxl_del.engine.config import DEL_TYPES, Config
from pyxl_del.engine.data import (
    EXCEL_DAYS,
    EXCEL_EPOCH,
    PORTFOLIO,
    Panel,
    month_label,
    read_panel,
    segment_named,
    validate_panel,
)
from pyxl_del.engine.errors import InputError, counted

log = logging.getLogger(__name__)

LOAN_COLUMNS = ("loan", "segment", "state", "ead", "previous_state")


class LoansError(InputError):
    """A cell that does not exist: unknown segment, a cohort that is not a month, a state that is no bucket."""


@dataclass(frozen=True, eq=False)
class LoansCell:
    """The loans of one (segment, cohort, MOB) cell, largest EAD first, and the cell's totals."""

    segment: str
    cohort: str
    mob: int
    state: str | None
    loans: pd.DataFrame  # LOAN_COLUMNS
    n_loans: int  # observed at the MOB (before the state filter)
    ead: float  # their EAD at the MOB
    ead_mob0: float  # the cohort's EAD at MOB 0: the DEL denominator
    bad_ead: dict[str, float]  # EAD in each DEL type's buckets at the MOB
    as_of: str = ""  # the data's last reporting month (YYYY-MM), which dates the drill-down's sheets

    @property
    def unobserved(self) -> str:
        """What a cell no loan reaches is."""
        return f"no loan of cohort {self.cohort} is observed at MOB {self.mob}: the cell is a forecast"

    def summary(self) -> list[str]:
        lines = [f"{counted(self.n_loans, 'loan')} observed at MOB {self.mob}, EAD {self.ead:,.2f}; cohort EAD at "
                 f"MOB 0 {self.ead_mob0:,.2f}"]
        if self.ead_mob0 > 0 and self.n_loans:  # a cell no loan reaches has no actual DEL, not 0%
            pooled = "; pooled over the segments, while the Portfolio sheet averages their DEL" \
                if self.segment == PORTFOLIO else ""
            lines.append("actual " + ", ".join(f"{d} {v / self.ead_mob0:.2%}" for d, v in self.bad_ead.items())
                         + f" (EAD in the DEL buckets / cohort EAD at MOB 0{pooled})")
        if self.n_loans == 0:
            lines.append(self.unobserved)
        if self.state is not None:
            lines.append(f"listed: {counted(len(self.loans), 'loan')} in {self.state}")
        return lines


def parse_cohort(value: Any) -> int:
    """A cohort as a month index: "2024-01", a date, 202401 (a number or its text), or Excel's day number of a
    date (=DATE(2024,1,1) hands a worksheet function 45292)."""
    if isinstance(value, (datetime, date, pd.Timestamp)):
        return value.year * 12 + value.month - 1
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer():
        v = int(value)
        if 1 <= v % 100 <= 12 and 100_000 <= v < 1_000_000:  # 2012 is a year, not December of the year 20
            return (v // 100) * 12 + v % 100 - 1
        if EXCEL_DAYS[0] <= v < EXCEL_DAYS[1]:
            day = EXCEL_EPOCH + pd.Timedelta(days=v)
            return day.year * 12 + day.month - 1
    m = re.fullmatch(r"\s*(\d{4})-(\d{1,2})(?:-\d{1,2})?\s*", str(value))
    if m and 1 <= int(m.group(2)) <= 12:
        return int(m.group(1)) * 12 + int(m.group(2)) - 1
    raise LoansError(f"cohort {value!r} is not a month: use YYYY-MM (e.g. 2024-01), a date or 202401")


def _states(config: Config, state: str | None) -> tuple[str, ...] | None:
    if state is None:
        return None
    key = state.strip().upper()
    if key in DEL_TYPES:
        return config.buckets.bad(key)
    for bucket in config.buckets.order:
        if bucket.upper() == key:
            return (bucket,)
    raise LoansError(f"state {state!r} is not a bucket ({', '.join(config.buckets.order)}) or a DEL type "
                        f"({', '.join(DEL_TYPES)})")


def loans_in_panel(panel: Panel, loan_ids: pd.Series, config: Config, segment: str, cohort: Any, mob: int,
                   state: str | None = None) -> LoansCell:
    """The cell's loans from a validated panel; ``loan_ids`` is the panel's original loan-id column."""
    month = parse_cohort(cohort)
    try:
        segment = segment_named(segment, panel.segments)
    except KeyError as exc:
        raise LoansError(exc.args[0]) from None
    if segment == PORTFOLIO:
        in_segment = np.ones(panel.n_rows, dtype=bool)
    else:
        in_segment = panel.segment == panel.segments.index(segment)
    in_cohort = in_segment & (panel.cohort == month)
    if not in_cohort.any():
        known = np.unique(panel.cohort[in_segment])
        raise LoansError(f"no loan of cohort {month_label([month])[0]} in {segment}: its cohorts run "
                         f"{month_label([known[0]])[0]} to {month_label([known[-1]])[0]}")
    rows = np.flatnonzero(in_cohort & (panel.mob == mob))
    order = np.asarray(config.buckets.order, dtype=object)
    bad = {d: float(panel.ead[rows][np.isin(order[panel.state[rows]], config.buckets.bad(d))].sum()) for d in DEL_TYPES}
    n_loans, ead = len(rows), float(panel.ead[rows].sum())
    ead0 = float(panel.ead[in_cohort & (panel.mob == 0)].sum())
    wanted = _states(config, state)
    if wanted is not None:
        rows = rows[np.isin(order[panel.state[rows]], wanted)]
    rows = rows[np.argsort(-panel.ead[rows], kind="stable")]
    # Sorted by (loan, mob): the row before is the same loan's previous month when it is at mob - 1.
    before = np.maximum(rows - 1, 0)
    has_prev = (rows > 0) & (panel.loan[before] == panel.loan[rows]) & (panel.mob[before] == mob - 1)
    loans = pd.DataFrame({
        "loan": pd.array(loan_ids.iloc[panel.row[rows]].astype(str).to_numpy(), dtype="string"),
        "segment": pd.array(np.asarray(panel.segments, dtype=object)[panel.segment[rows]], dtype="string"),
        "state": pd.array(order[panel.state[rows]], dtype="string"),
        "ead": panel.ead[rows],
        "previous_state": pd.array(np.where(has_prev, order[panel.state[before]], ""), dtype="string"),
    })
    return LoansCell(segment=segment, cohort=month_label([month])[0], mob=int(mob),
                     state=None if state is None else state.strip(), loans=loans, n_loans=n_loans, ead=ead,
                     ead_mob0=ead0, bad_ead=bad, as_of=month_label([int((panel.cohort + panel.mob).max())])[0])


def loans_behind(data, config: Config, segment: str, cohort: Any, mob: int, state: str | None = None, *,
                 sheet=None) -> LoansCell:
    """The loans behind a DEL cell of a panel (DataFrame or file)."""
    frame, source = read_panel(data, config, sheet=sheet)
    return loans_in_panel(validate_panel(frame, config, source), frame[config["loan_id"]], config, segment, cohort,
                          mob, state)
