"""Tiny hand-made panels for known-answer tests (default config column names)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pyxl_del import Config
from pyxl_del.datasets.sample import simulate_panel

COLUMNS = ["AGREEMENT_ID", "DISBURSAL_MONTH", "MOB", "PRODUCT_TYPE", "STATE_MODEL", "PRINCIPLE_OUTSTANDING"]
STATES = Config().buckets.order


def frame(records) -> pd.DataFrame:
    """records: (loan, cohort, mob, segment, state, ead) tuples."""
    return pd.DataFrame(records, columns=COLUMNS)


def loan(loan_id: str, cohort: str, segment: str, path: list[tuple[str, float]], start_mob: int = 0):
    """Rows of one loan from a list of (state, ead) by MOB."""
    return [(loan_id, cohort, start_mob + m, segment, s, e) for m, (s, e) in enumerate(path)]


def cfg(**sections) -> Config:
    """The specification's exact estimator (the known answers are worked for it), with ``sections`` changed."""
    return Config().as_specified().with_overrides(**sections)


def simulate(matrix: np.ndarray, *, segments=("A",), cohorts=6, loans=300, max_mob=6, seed=0) -> pd.DataFrame:
    """A full loan x MOB grid from one (K, K) chain: monthly cohorts from 2024-01, the last one at MOB 0."""
    labels = [f"2024-{c + 1:02d}" for c in range(cohorts)]
    return simulate_panel(matrix, cohorts=labels, as_of=labels[-1], loans_per_cohort=loans, segments=segments,
                          seed=seed, max_mob=max_mob)


CHAIN = np.array([
    [0.90, 0.06, 0.00, 0.00, 0.00, 0.00, 0.04],
    [0.50, 0.30, 0.20, 0.00, 0.00, 0.00, 0.00],
    [0.20, 0.10, 0.30, 0.40, 0.00, 0.00, 0.00],
    [0.05, 0.00, 0.05, 0.30, 0.60, 0.00, 0.00],
    [0.00, 0.00, 0.00, 0.05, 0.55, 0.40, 0.00],
    [0.00, 0.00, 0.00, 0.00, 0.00, 1.00, 0.00],
    [0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 1.00],
])
