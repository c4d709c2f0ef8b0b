"""Stage 2b — the calendar level: how much more (or less) than usual loans rolled forward in each reporting month.

Real books move by calendar month (recessions, forbearance), which a chain per MOB pools away: a shock lands in
the MOBs the cohorts of its months happened to be at, and the forecast repeats it at those MOBs forever after.
[calibration] period_level fits, on the loan counts, the Poisson model

    R_scmi ~ N_scmi * p_smi * k_sc * q_t,    t = cohort c + m + 1 (the month the move ends),

(R: loans of cohort c, segment s at MOB m in state i that rolled forward; N: those at risk; p: the segment's
roll-forward rate per step and state; k: the cohort's level; q: the month's), by alternating closed-form updates
(each the MLE given the others; q shrunk toward 1 by a few expected moves and normalised to a weighted mean of 1,
since p and k can absorb any constant). A month's q is identified beside p and k only up to a linear trend
(age, period and cohort add up: t = c + m), so the levels are read for their shape, not their slope.

"auto" keeps the levels only when the months differ by more than chance: the quasi-Poisson F test of q against
q = 1 (deviance drop per month over the estimated dispersion), at p below period_significance;
"always" keeps them. Kept levels are divided out of the transitions (each move's roll-forward entries scaled by
1 / q_t, its row's loans and EAD kept, `scale_rows`) before the chain and calibration are fitted, and the level of
the last period_months months is carried on: it scales the forecast's roll-forward moves.
Method: docs/methodology.md 3b; evidence: docs/backtesting.md items 16 to 18.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from pyxl_del.engine.calibration import absorbing_mask, roll_forward_mask, scale_rows
from pyxl_del.engine.config import Config
from pyxl_del.engine.data import PanelStats, month_label

# Alternations of the fit, at most; it stops once no level moves by more than TOLERANCE. Measured: without q the
# fit settles in 20 passes; with q, on a multi-era book (113 months, 440 loans a quarter) q moves by 2e-5 at pass
# 60 and 2e-7 at 100. Where the months do not differ, q drifts slowly along the trend the data cannot fix (the
# sample: 1e-4 a pass at 100), which moves F by 2e-5 and, with "always", the carried level by 0.4% (1.006 at 100
# passes, 1.010 at 1,000); "auto" does not apply it there.
ITERATIONS = 100
TOLERANCE = 1e-7
# q of a month is shrunk toward 1 as if it had also seen this many expected moves at level 1. A month's level is
# identified only against other months at the same MOBs (other cohorts, other eras), so a prior weighs several times
# its size. The test fits with TEST_PRIOR_MOVES: months of a few loans cannot pass it on noise (with 1 move, calm
# simulated books of 145 loans a cohort reached p = 4e-9 and the real excerpt 2e-25). Levels the test keeps are
# refitted with LEVEL_PRIOR_MOVES, so a shock found is sized: 5 moves sized a x2.5 shock at 1.72 on exact counts of
# two eras of 30 moves a month, 1 move at 2.10 (docs/backtesting.md item 18).
TEST_PRIOR_MOVES = 5.0
LEVEL_PRIOR_MOVES = 1.0
PERIOD_COLUMNS = ["month", "level", "expected_moves"]


@dataclass(frozen=True)
class PeriodLevels:
    """q per reporting month, the test of whether the months differ, and the level carried into the forecast."""

    months: np.ndarray  # (T,) month index of the moves' end, consecutive
    level: np.ndarray  # (T,) q_t (as tested; as refitted for the forecast when applied); 1 without moves
    expected_moves: np.ndarray  # (T,) loans expected to roll forward in the month (the weight of its level)
    f_statistic: float  # NaN when fewer than 3 months have moves
    p_value: float
    applied: bool  # the levels are divided out of the transitions and carried on
    carried: float  # the level scaling the forecast's roll-forward moves; 1 when not applied

    def table(self) -> pd.DataFrame:
        """Tidy: one row per month with moves (month label, level, expected_moves)."""
        seen = self.expected_moves > 0
        return pd.DataFrame({
            "month": pd.array(month_label(self.months[seen]), dtype="string"),
            "level": self.level[seen],
            "expected_moves": self.expected_moves[seen],
        }, columns=PERIOD_COLUMNS)

    def note(self, config: Config) -> str:
        """One sentence for Run info and the CLI: what was found and what it did."""
        c = config.calibration
        n_months = int((self.expected_moves > 0).sum())
        p_value = f"{self.p_value:.3f}" if self.p_value >= 0.001 else f"{self.p_value:.1e}"
        test = (f"F = {self.f_statistic:.2f} over {n_months} months, p = {p_value}" if np.isfinite(self.f_statistic)
                else f"{n_months} months with moves, too few to test")
        if not self.applied:
            return (f"Calendar level: no month-to-month effect beyond chance ({test}; [calibration] period_level "
                    f"= \"{c.period_level}\" needs p < {c.period_significance:g}), so none was applied")
        why = ("reporting months differ beyond chance" if self.p_value < c.period_significance
               else 'applied as [calibration] period_level = "always" asks')
        return (f"Calendar level ({why}: {test}): each month's level was divided out of the transitions, and the "
                f"last {c.period_months} months' level, {self.carried:.3f}, scales the forecast's roll-forward moves")


def _move_month(stats: PanelStats) -> np.ndarray:
    """(C, M) the month each cohort's step m -> m+1 ends in, counted from the first cohort's month."""
    n_steps = stats.cohort_trans_count.shape[2]
    return stats.cohorts[:, None] - stats.cohorts[:1] + np.arange(n_steps)[None, :] + 1


def _counts(stats: PanelStats, config: Config) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(rolled forward R, at risk N) per (S, C, M, from-state that can roll), the month index of each, and T."""
    roll = roll_forward_mask(config)
    can_roll = roll.any(axis=-1)
    count = stats.cohort_trans_count.astype(np.float64)
    at_risk = count.sum(axis=-1)[..., can_roll]
    rolled = np.where(roll, count, 0.0).sum(axis=-1)[..., can_roll]
    month = _move_month(stats)
    n_months = int(month.max()) + 1 if month.size else 0
    return rolled, at_risk, np.broadcast_to(month, at_risk.shape[:3]), n_months


def _fit(rolled: np.ndarray, at_risk: np.ndarray, month: np.ndarray, n_months: int, prior_moves: float | None
         ) -> tuple[np.ndarray, np.ndarray, float, float, int]:
    """(q, expected moves per month, deviance, Pearson chi2, residual degrees of freedom) of the Poisson model, each
    month's q shrunk toward 1 by ``prior_moves``; None: every q is 1 (the model without months)."""
    rate = np.ones(at_risk.shape[:1] + at_risk.shape[2:])  # p: (S, M, K')
    cohort = np.ones(at_risk.shape[:2])  # k: (S, C)
    level = np.ones(n_months)
    flat = month.ravel()
    with np.errstate(invalid="ignore", divide="ignore"):
        for _ in range(ITERATIONS):
            previous = np.concatenate([level, cohort.ravel()])
            at_level = at_risk * level[month][..., None]
            den = (at_level * cohort[:, :, None, None]).sum(axis=1)
            rate = np.where(den > 0, rolled.sum(axis=1) / den, 0.0)
            den = (at_level * rate[:, None]).sum(axis=(2, 3))
            cohort = np.where(den > 0, rolled.sum(axis=(2, 3)) / den, 1.0)
            at_level_one = (at_risk * rate[:, None] * cohort[:, :, None, None]).sum(axis=-1)
            expected = np.bincount(flat, at_level_one.ravel(), n_months)
            if prior_moves is not None:
                level = (np.bincount(flat, rolled.sum(axis=-1).ravel(), n_months) + prior_moves) / (
                    expected + prior_moves)
                level /= (expected * level).sum() / max(expected.sum(), 1e-300)
            if np.abs(np.concatenate([level, cohort.ravel()]) - previous).max() < TOLERANCE:
                break
        mean = at_risk * rate[:, None] * cohort[:, :, None, None] * level[month][..., None]
        cells = at_risk > 0
        deviance = 2 * (np.where(rolled > 0, rolled * np.log(rolled / mean), 0.0) - (rolled - mean))[cells].sum()
        pearson = np.where(mean > 0, (rolled - mean) ** 2 / mean, 0.0)[cells].sum()
    n_params = int((rate > 0).sum() + (cohort > 0).sum() + (prior_moves is not None) * (expected > 0).sum())
    return level, expected, float(deviance), float(pearson), int(cells.sum()) - n_params


def fit_period_levels(stats: PanelStats, config: Config) -> PeriodLevels:
    """The calendar levels of ``stats`` and whether [calibration] period_level applies them."""
    # F's survival function from scipy.special: scipy.stats would add 0.6 s of imports to every report.
    from scipy.special import fdtrc

    c = config.calibration
    rolled, at_risk, month, n_months = _counts(stats, config)
    months = stats.cohorts[0] + np.arange(n_months) if len(stats.cohorts) else np.zeros(0, dtype=np.int64)
    _, _, deviance_flat, _, _ = _fit(rolled, at_risk, month, n_months, prior_moves=None)
    level, expected, deviance, pearson, dof = _fit(rolled, at_risk, month, n_months, prior_moves=TEST_PRIOR_MOVES)
    seen = expected > 0
    df_levels = int(seen.sum()) - 2  # the constant and the trend are the chain's and the cohorts'
    if df_levels < 1 or dof < 1:
        f_statistic, p_value = float("nan"), 1.0
    else:
        # Estimated, not floored at 1: a roll rate far from 0 varies less than a Poisson count (binomially), and a
        # floor took the power to see a two-year shock in books of 145 loans a quarter (docs/backtesting.md 17).
        dispersion = pearson / dof if pearson > 0 else 1.0
        f_statistic = max(deviance_flat - deviance, 0.0) / df_levels / dispersion
        p_value = float(fdtrc(df_levels, dof, f_statistic))
    applied = c.period_level == "always" or (c.period_level == "auto" and p_value < c.period_significance)
    if applied:
        level, expected, *_ = _fit(rolled, at_risk, month, n_months, prior_moves=LEVEL_PRIOR_MOVES)
    last = np.flatnonzero(seen)[-c.period_months:]
    carried = float((expected[last] * level[last]).sum() / expected[last].sum()) if applied and len(last) else 1.0
    return PeriodLevels(months=months, level=level, expected_moves=expected, f_statistic=f_statistic,
                        p_value=p_value, applied=applied, carried=carried)


def remove_period_levels(stats: PanelStats, levels: PeriodLevels, config: Config) -> PanelStats:
    """``stats`` with each move's roll-forward entries divided by its month's level (loans and EAD of every row
    kept): the transitions as they would have been in a month of level 1."""
    roll, absorbing = roll_forward_mask(config), absorbing_mask(config)
    factor = (1.0 / levels.level)[_move_month(stats)][None]  # (1, C, M): every segment and from-state of the move
    return replace(stats, **{name: scale_rows(getattr(stats, name).astype(np.float64), factor, roll, absorbing)
                             for name in ("cohort_trans_count", "cohort_trans_ead_from", "cohort_trans_ead_to")})


def carry_period_level(transition_matrix: np.ndarray, levels: PeriodLevels, config: Config) -> np.ndarray:
    """The forecast's matrices with their roll-forward moves scaled by the carried level."""
    return scale_rows(transition_matrix, levels.carried, roll_forward_mask(config), absorbing_mask(config))
