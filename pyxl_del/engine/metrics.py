"""Stage 5 — metrics: DEL30/60/90 rates by segment, cohort and MOB, actual and forecast.

DEL_x(c, m) = EAD in the x bad buckets at m / total EAD of cohort c at MOB 0 (per segment).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pyxl_del.engine.config import DEL_TYPES, Config
from pyxl_del.engine.data import PanelStats


@dataclass(frozen=True)
class DelRates:
    """One DEL type for every segment: arrays (S, C, M+1), NaN where the cell does not exist."""

    del_type: str
    mixed: np.ndarray
    actual: np.ndarray
    forecast: np.ndarray
    is_actual: np.ndarray  # bool
    present: np.ndarray  # (S, C) the segment has this cohort with a positive MOB 0 balance


def ead_at_mob0(stats: PanelStats) -> np.ndarray:
    """(S, C) the DEL denominator."""
    return stats.ead[:, :, 0, :].sum(axis=-1)


def del_rates(stats: PanelStats, ead_path: np.ndarray, config: Config) -> dict[str, DelRates]:
    ead0 = ead_at_mob0(stats)
    present = ead0 > 0
    is_actual = stats.observed & present[..., None]
    rates = {}
    for del_type in DEL_TYPES:
        bad = np.isin(config.buckets.order, config.buckets.bad(del_type))
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            mixed = ead_path[..., bad].sum(axis=-1) / np.where(present, ead0, np.nan)[..., None]
        rates[del_type] = DelRates(
            del_type=del_type,
            mixed=mixed,
            actual=np.where(is_actual, mixed, np.nan),
            forecast=np.where(is_actual, np.nan, mixed),
            is_actual=is_actual,
            present=present,
        )
    return rates
