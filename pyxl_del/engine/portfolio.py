"""Stage 6 — portfolio: segments' DEL aggregated per cohort and MOB, with ACTUAL / MIXED / FORECAST flags."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FLAG_LABELS = ("FORECAST", "ACTUAL", "MIXED")
FORECAST_FLAG, ACTUAL_FLAG, MIXED_FLAG = range(3)


@dataclass(frozen=True)
class PortfolioRates:
    mixed: np.ndarray  # (C, M+1)
    actual: np.ndarray  # (C, M+1) where every segment present is actual
    forecast: np.ndarray  # (C, M+1) where at least one segment is forecast
    flag: np.ndarray  # (C, M+1) index into FLAG_LABELS
    present: np.ndarray  # (C,)


def segment_weights(present: np.ndarray, ead0: np.ndarray, aggregation: str) -> np.ndarray:
    """(S, C) each segment's weight in its cohort's Portfolio value (not normalised): 1 (the specified mean) or its
    EAD at MOB 0 ("ead_weighted") where the segment has the cohort, else 0."""
    return np.where(present, ead0 if aggregation == "ead_weighted" else 1.0, 0.0)


def aggregate_portfolio(mixed: np.ndarray, is_actual: np.ndarray, present: np.ndarray, ead0: np.ndarray,
                        aggregation: str) -> PortfolioRates:
    """mean (as specified) or EAD-at-MOB-0-weighted mean of the segments present for each cohort."""
    weights = segment_weights(present, ead0, aggregation)  # (S, C)
    total = weights.sum(axis=0)  # (C,)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        agg = np.einsum("sc,scm->cm", weights, np.nan_to_num(mixed)) / total[:, None]
    n_present = present.sum(axis=0)[:, None]
    n_actual = (is_actual & present[..., None]).sum(axis=0)
    flag = np.where(n_actual == n_present, ACTUAL_FLAG, np.where(n_actual > 0, MIXED_FLAG, FORECAST_FLAG))
    cohort_present = total > 0
    agg = np.where(cohort_present[:, None], agg, np.nan)
    return PortfolioRates(
        mixed=agg,
        actual=np.where(flag == ACTUAL_FLAG, agg, np.nan),
        forecast=np.where(flag == ACTUAL_FLAG, np.nan, agg),
        flag=flag.astype(np.int8),
        present=cohort_present,
    )
