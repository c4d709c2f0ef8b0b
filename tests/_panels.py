"""Tiny hand-made panels for known-answer tests (default config column names)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pyxl_del import Config

COLUMNS = ["AGREEMENT_ID", "DISBURSAL_MONTH", "MOB", "PRODUCT_TYPE", "STATE_MODEL", "PRINCIPLE_OUTSTANDING"]
STATES = Config().buckets.order


def frame(records) -> pd.DataFrame:
    """records: (loan, cohort, mob, segment, state, ead) tuples."""
    return pd.DataFrame(records, columns=COLUMNS)


def loan(loan_id: str, cohort: str, segment: str, path: list[tuple[str, float]], start_mob: int = 0):
    """Rows of one loan from a list of (state, ead) by MOB."""
    return [(loan_id, cohort, start_mob + m, segment, s, e) for m, (s, e) in enumerate(path)]


def cfg(**sections) -> Config:
    return Config().with_overrides(**sections)


def simulate(matrix: np.ndarray, *, segments=("A",), cohorts=6, loans=300, max_mob=6, seed=0,
             amortisation=0.98) -> pd.DataFrame:
    """A full loan x MOB grid from one (K, K) chain; cohort c observed up to MOB cohorts-1-c."""
    rng = np.random.default_rng(seed)
    k = matrix.shape[0]
    cum = matrix.cumsum(axis=1)
    parts = []
    for s, segment in enumerate(segments):
        for c in range(cohorts):
            state = np.zeros(loans, dtype=np.int64)
            ead = rng.uniform(500, 1500, loans)
            ids = np.array([f"{segment}-{c}-{i}" for i in range(loans)], dtype=object)
            for m in range(min(cohorts - 1 - c, max_mob) + 1):
                parts.append(pd.DataFrame({
                    COLUMNS[0]: ids, COLUMNS[1]: f"2024-{c + 1:02d}", COLUMNS[2]: m, COLUMNS[3]: segment,
                    COLUMNS[4]: np.asarray(STATES, dtype=object)[state], COLUMNS[5]: ead.copy(),
                }))
                u = rng.random(loans)
                state = np.minimum((u[:, None] > cum[state]).sum(axis=1), k - 1)
                ead = np.where(state == k - 1, 0.0, ead * amortisation)
    return pd.concat(parts, ignore_index=True)


CHAIN = np.array([
    [0.90, 0.06, 0.00, 0.00, 0.00, 0.00, 0.04],
    [0.50, 0.30, 0.20, 0.00, 0.00, 0.00, 0.00],
    [0.20, 0.10, 0.30, 0.40, 0.00, 0.00, 0.00],
    [0.05, 0.00, 0.05, 0.30, 0.60, 0.00, 0.00],
    [0.00, 0.00, 0.00, 0.05, 0.55, 0.40, 0.00],
    [0.00, 0.00, 0.00, 0.00, 0.00, 1.00, 0.00],
    [0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 1.00],
])
