"""Stage 3 — calibration: step-wise factors k[m] that make one step of the chain match the actual DEL.

CALIBRATION_MODE "stepwise": for MOB m >= 1, over cohorts with actual rows at m-1 and m,
expected_c = (actual EAD at m-1 @ P[m-1]) in the bad buckets / EAD0_c, actual_c = actual DEL at m,
k[m] = mean(actual_c) / mean(expected_c) (1 where the expected mean is 0), clipped to K_CLIP.
Each step is measured from the actual state before it, so errors do not accumulate from MOB 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pyxl_del.engine.config import Config
from pyxl_del.engine.data import PanelStats

FACTOR_COLUMNS = ["segment", "mob", "k", "n_cohorts_used", "expected_mean", "actual_mean", "k_unclipped"]


@dataclass(frozen=True)
class CalibrationFactors:
    """k[s, m] scales step m-1 -> m of segment s; k[:, 0] is 1 (no step ends at MOB 0)."""

    k: np.ndarray  # (S, M+1)
    k_unclipped: np.ndarray  # (S, M+1)
    n_cohorts_used: np.ndarray  # (S, M+1)
    expected_mean: np.ndarray  # (S, M+1), NaN where no cohort was usable
    actual_mean: np.ndarray  # (S, M+1)

    def table(self, segments: tuple[str, ...]) -> pd.DataFrame:
        """Tidy factors table: one row per (segment, mob) with at least one usable cohort."""
        s_idx, m_idx = np.nonzero(self.n_cohorts_used > 0)
        return pd.DataFrame({
            "segment": pd.array([segments[s] for s in s_idx], dtype="string"),
            "mob": m_idx.astype(np.int64),
            "k": self.k[s_idx, m_idx],
            "n_cohorts_used": self.n_cohorts_used[s_idx, m_idx].astype(np.int64),
            "expected_mean": self.expected_mean[s_idx, m_idx],
            "actual_mean": self.actual_mean[s_idx, m_idx],
            "k_unclipped": self.k_unclipped[s_idx, m_idx],
        }, columns=FACTOR_COLUMNS)


def bad_mask(config: Config, del_type: str) -> np.ndarray:
    return np.isin(config.buckets.order, config.buckets.bad(del_type))


def unit_factors(n_segments: int, max_mob: int) -> CalibrationFactors:
    ones = np.ones((n_segments, max_mob + 1))
    nan = np.full_like(ones, np.nan)
    return CalibrationFactors(ones, ones, np.zeros_like(ones, dtype=np.int64), nan, nan)


def fit_stepwise_factors(stats: PanelStats, transition_matrix: np.ndarray, config: Config) -> CalibrationFactors:
    """Fit k[s, m] for every segment and MOB m >= 1 from the actual EAD at m-1 and the actual DEL at m."""
    bad = bad_mask(config, config.calibration.del_type)
    ead0 = stats.ead[:, :, 0, :].sum(axis=-1)  # (S, C)
    observed = stats.observed
    usable = observed[:, :, :-1] & observed[:, :, 1:] & (ead0 > 0)[:, :, None]  # (S, C, M) for m = 1..M
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        projected = np.einsum("scmk,smkj->scmj", stats.ead[:, :, :-1, :], transition_matrix)
        expected = projected[..., bad].sum(axis=-1) / ead0[:, :, None]
        actual = stats.ead[:, :, 1:, bad].sum(axis=-1) / ead0[:, :, None]
    usable &= np.isfinite(expected) & np.isfinite(actual)  # a near-zero EAD0 can overflow the ratios
    n_used = usable.sum(axis=1)  # (S, M)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        expected_mean = np.where(usable, expected, 0).sum(axis=1) / n_used
        actual_mean = np.where(usable, actual, 0).sum(axis=1) / n_used
        raw = actual_mean / expected_mean
    raw = np.where((expected_mean > 0) & np.isfinite(raw), raw, 1.0)
    raw = np.where(n_used > 0, raw, 1.0)
    lo, hi = config.calibration.K_CLIP
    pad = np.ones((raw.shape[0], 1))
    return CalibrationFactors(
        k=np.concatenate([pad, np.clip(raw, lo, hi)], axis=1),
        k_unclipped=np.concatenate([pad, raw], axis=1),
        n_cohorts_used=np.concatenate([np.zeros_like(pad, dtype=np.int64), n_used], axis=1),
        expected_mean=np.concatenate([pad * np.nan, expected_mean], axis=1),
        actual_mean=np.concatenate([pad * np.nan, actual_mean], axis=1),
    )


def apply_factors(transition_matrix: np.ndarray, k: np.ndarray, bad: np.ndarray,
                  absorbing: np.ndarray) -> np.ndarray:
    """Scale the bad columns of step m-1 by k[m], keeping each row's sum.

    The non-bad entries absorb the change proportionally; where they cannot (they would go negative, or are
    all zero), the bad entries are rescaled to fill the row's sum and the non-bad ones become 0. Absorbing
    rows are left alone.
    """
    step_k = k[:, 1:, None, None]  # (S, M, 1, 1): k[m] for step m-1
    row_sum = transition_matrix.sum(axis=-1, keepdims=True)
    scaled_bad = np.where(bad, transition_matrix * step_k, 0.0)
    good = np.where(bad, 0.0, transition_matrix)
    bad_sum = scaled_bad.sum(axis=-1, keepdims=True)
    good_sum = good.sum(axis=-1, keepdims=True)
    room = row_sum - bad_sum
    absorbs = (good_sum > 0) & (room >= 0)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        good_scaled = good * np.where(absorbs, room / good_sum, 0.0)
        bad_filled = np.where(bad_sum > 0, scaled_bad * row_sum / bad_sum, scaled_bad)
    calibrated = np.where(absorbs, scaled_bad + good_scaled, bad_filled + np.where(bad_sum > 0, 0.0, good))
    return np.where(absorbing[:, None], transition_matrix, calibrated)


def calibrate(stats: PanelStats, transition_matrix: np.ndarray, config: Config
              ) -> tuple[np.ndarray, CalibrationFactors]:
    """(calibrated matrices, factors) for the configured CALIBRATION_MODE."""
    n_seg, n_steps = transition_matrix.shape[:2]
    if config.calibration.CALIBRATION_MODE == "none":
        return transition_matrix, unit_factors(n_seg, n_steps)
    factors = fit_stepwise_factors(stats, transition_matrix, config)
    absorbing = np.isin(config.buckets.order, config.buckets.absorbing)
    bad = bad_mask(config, config.calibration.del_type)
    return apply_factors(transition_matrix, factors.k, bad, absorbing), factors
