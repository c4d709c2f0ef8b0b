"""A small panel shaped like a real mortgage book (issue 15): seasoned loans, thin delinquent rows, a sticky 90+
state, losses in the data, an old cohort whose rows end years before the others while its loans are live, a
cohort whose loans have all left, rows far beyond max_mob, and no score or APR column.

Built loan by loan from a seeded generator (a loop over months, vectorised over loans), so every figure the tests
check can be worked out from the frame itself.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from pyxl_del import Config

COLUMNS = ["AGREEMENT_ID", "DISBURSAL_MONTH", "MOB", "PRODUCT_TYPE", "STATE_MODEL", "PRINCIPLE_OUTSTANDING"]
REPORTING = "2022-03"
STALE = "2015-01"  # its rows stop in 2017-06 although its loans are live (a feed that stopped)
STALE_END = "2017-06"
CLOSED = "2016-01"  # every loan prepays by 2017
# Monthly moves of a mortgage (CURRENT, DPD30+, DPD60+, DPD90+, WRITEOFF, PREPAY): 90+ is sticky and few loans
# are ever late, so the delinquent rows of a MOB's matrix rest on a handful of loans.
MOVES = {
    "CURRENT": {"CURRENT": 0.977, "DPD30+": 0.006, "PREPAY": 0.017},
    "DPD30+": {"CURRENT": 0.55, "DPD30+": 0.15, "DPD60+": 0.30},
    "DPD60+": {"CURRENT": 0.20, "DPD60+": 0.20, "DPD90+": 0.60},
    "DPD90+": {"CURRENT": 0.04, "DPD90+": 0.86, "WRITEOFF": 0.10},
}
ABSORBING = ("WRITEOFF", "PREPAY")


def _month(label: str) -> int:
    return int(label[:4]) * 12 + int(label[5:]) - 1


def _label(month: int) -> str:
    return f"{month // 12:04d}-{month % 12 + 1:02d}"


def _cohort(rng: np.random.Generator, cohort: str, n: int, segment: str, end: str, first_id: int,
            prepay_all_by: int | None = None) -> list[pd.DataFrame]:
    """Loans booked in ``cohort``, reported from loan age 0-3 (seasoned: first row at MOB 0-3) to ``end``."""
    states = list(MOVES) + list(ABSORBING)
    start, stop = _month(cohort), _month(end)
    state = np.zeros(n, dtype=np.int64)
    balance = rng.uniform(100_000, 400_000, n)
    first = rng.integers(0, 4, n)
    gone = np.zeros(n, dtype=bool)  # absorbed in an earlier month: no more rows
    table = np.array([[MOVES.get(a, {}).get(b, 0.0) for b in states] for a in states])
    table[[states.index(a) for a in ABSORBING], [states.index(a) for a in ABSORBING]] = 1.0
    frames = []
    for mob in range(stop - start + 1):
        if mob > 0:
            live = ~gone & (state < len(MOVES))
            draw = (rng.random(n)[:, None] > np.cumsum(table[state], axis=1)).sum(axis=1)
            if prepay_all_by is not None and mob >= prepay_all_by:
                draw = np.full(n, states.index("PREPAY"))
            gone |= state >= len(MOVES)
            state = np.where(live, draw, state)
            balance = np.where(state == states.index("CURRENT"), balance * 0.997, balance)
        rows = (mob >= first) & ~gone
        ead = np.where(np.asarray(states)[state] == "PREPAY", 0.0, balance)
        frames.append(pd.DataFrame({
            "AGREEMENT_ID": [f"L{first_id + i:05d}" for i in np.flatnonzero(rows)],
            "DISBURSAL_MONTH": cohort, "MOB": mob, "PRODUCT_TYPE": segment,
            "STATE_MODEL": np.asarray(states, dtype=object)[state[rows]], "PRINCIPLE_OUTSTANDING": ead[rows]}))
    return frames


@functools.cache
def real_book_panel(seed: int = 15) -> pd.DataFrame:
    """About 900 loans in two segments: monthly cohorts 2019-01 .. 2021-12 reported to 2022-03, the stale cohort
    and the closed one."""
    rng = np.random.default_rng(seed)
    frames, next_id = [], 0
    cohorts = [_label(m) for m in range(_month("2019-01"), _month("2021-12") + 1)]
    for segment, per_cohort in (("PURCHASE", 14), ("REFI", 10)):
        for cohort in cohorts:
            frames += _cohort(rng, cohort, per_cohort, segment, REPORTING, next_id)
            next_id += per_cohort
    frames += _cohort(rng, STALE, 40, "PURCHASE", STALE_END, next_id)
    frames += _cohort(rng, CLOSED, 8, "REFI", REPORTING, next_id + 40, prepay_all_by=12)
    frame = pd.concat(frames, ignore_index=True)
    frame = frame.sort_values(["AGREEMENT_ID", "MOB"], kind="stable").reset_index(drop=True)
    for col in ("AGREEMENT_ID", "DISBURSAL_MONTH", "PRODUCT_TYPE", "STATE_MODEL"):
        frame[col] = frame[col].astype("string")
    return frame[COLUMNS]


def config(**sections) -> Config:
    """The real-book tests' config: max_mob 24 (the 2019 cohorts run to MOB 38, the stale one to MOB 29), and the
    specification's estimator, whose thin rows stay put: the no-path and zero-PD warnings are worked for it (the
    default Bayes rows borrow a path to loss from the other segments)."""
    return Config().as_specified().with_overrides(**({"forecast": {"max_mob": 24}} | sections))


def live_ead_at(frame: pd.DataFrame, month: str) -> pd.Series:
    """Live (not absorbed) EAD of the rows in a calendar month, by (segment, cohort): the book at that date."""
    when = frame["DISBURSAL_MONTH"].map(_month) + frame["MOB"]
    rows = frame[(when == _month(month)) & ~frame["STATE_MODEL"].isin(ABSORBING)]
    return rows.groupby(["PRODUCT_TYPE", "DISBURSAL_MONTH"])["PRINCIPLE_OUTSTANDING"].sum()
