"""Stage 3 — calibration: step-wise factors k[m] that make one step of the chain match the actual DEL, and
(optionally) cohort factors for vintage quality.

CALIBRATION_MODE "stepwise": for MOB m >= 1, over cohorts with actual rows at m-1 and m,
expected_c = (actual EAD at m-1 @ P[m-1]) in the bad buckets / EAD0_c, actual_c = actual DEL at m,
k[m] = mean(actual_c) / mean(expected_c) (1 where the expected mean is 0), clipped to K_CLIP.
Each step is measured from the actual state before it, so errors do not accumulate from MOB 0.
[calibration] weights: the mean over cohorts is plain ("cohorts", as specified) or weighted by EAD at MOB 0
("ead") or by loans at m-1 ("loans"); cohorts with fewer than min_cohort_loans loans at m-1 are left out.

[calibration] cohort_factor "credibility": each cohort's roll-forward moves (to a worse state) are scaled by a
factor built from own_sc, the ratio of its actual roll-forward moves to the chain's expectation from its actual
states (over its observed steps), weighted by w_sc, the expected number of roll-forward moves (loans). With
cohort_credibility "auto" the credibility is nested (Jewell): a vintage's quality is shared by its segments, so
f_sc = Z_sc own_sc + (1 - Z_sc) mu_c with mu_c = 1 + Z_c (B_c - 1) the cohort's factor over all its segments,
Z_sc = w_sc / (w_sc + sigma2 / tau2) and Z_c = Z_c. / (Z_c. + tau2 / nu2) (sigma2: noise per expected move,
tau2: segments within a cohort, nu2: between cohorts; Bühlmann-Gisler's estimators); a thin segment borrows its
vintage's signal from the others, and a segment with no history yet gets its cohort's. With a number kappa,
f_sc = 1 + Z (own_sc - 1), Z = w_sc / (w_sc + kappa), segment by segment. k and f are fitted alternately so that
they do not count a cohort twice.
Method and evidence: docs/methodology.md, "Vintage quality".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pyxl_del.engine.config import Config
from pyxl_del.engine.data import PanelStats, month_label

FACTOR_COLUMNS = ["segment", "mob", "k", "n_cohorts_used", "expected_mean", "actual_mean", "k_unclipped", "n_loans"]
COHORT_FACTOR_COLUMNS = ["segment", "cohort", "factor", "factor_log_sd", "credibility", "own_factor", "vintage_factor",
                         "vintage_credibility", "expected_moves", "n_loans", "kappa"]
# Alternations of the joint fit (k given the cohort factors, then the factors given k). On the bundled sample k
# moves by at most 0.03 after the first pass, 0.003 after the second and 0.0002 after the third (against six).
JOINT_PASSES = 3
# A non-positive estimate of the within-cohort variance of the segments' factors is replaced by this share of the
# noise variance: its limit (Z_sc -> 0), kept finite so the cohort level's formulas hold unchanged.
TAU_FLOOR = 1e-9
# The vintages' correlation one month apart is searched up to this: 0.99 ** 12 = 0.89, so eras years apart stay apart
# unless the data says otherwise (0.99 ** 84 = 0.43 between acquisitions seven years apart).
MAX_VINTAGE_CORRELATION = 0.99


@dataclass(frozen=True)
class CohortFactors:
    """Vintage quality: cohort c of segment s has its roll-forward moves scaled by factor[s, c] (rows keep their
    sums, as `scale_rows` does). factor is 1 where the cohort has no history anywhere (credibility 0)."""

    factor: np.ndarray  # (S, C) applied: credibility * own + (1 - credibility) * vintage_factor, clipped to cohort_clip
    own: np.ndarray  # (S, C) actual / expected roll-forward moves over the cohort's observed steps; NaN: none
    credibility: np.ndarray  # (S, C) Z = expected_moves / (expected_moves + kappa): the weight of own
    # (S, C) what own is shrunk toward: the cohort's factor over all its segments, 1 + vintage_credibility * (B_c - 1)
    # with cohort_credibility "auto"; 1 (and credibility 0) with a number
    vintage_factor: np.ndarray
    vintage_credibility: np.ndarray
    expected_moves: np.ndarray  # (S, C) loans the chain expected to roll forward over those steps (the weight)
    n_loans: np.ndarray  # (S, C) loans of the cohort-segment
    kappa: np.ndarray  # (S,) the expected moves at which a cohort's own history gets half the weight
    roll_forward: np.ndarray  # (K, K) bool: from-state i to a worse state j
    absorbing: np.ndarray  # (K,) bool
    vintage_correlation: float = 0.0  # of the vintage levels of cohorts one month apart (0: independent)
    # (S, C) the log-sd of the cohort's true factor around ``factor``: its posterior under the credibility model
    # (`_nested_credibility`), drawn per path by the forecast intervals; None with a fixed cohort_credibility.
    spread: np.ndarray | None = None

    def scale(self, matrices: np.ndarray) -> np.ndarray:
        """Matrices (S, C or 1, ..., K, K) -> (S, C, ..., K, K) with each cohort's factor applied."""
        factor = self.factor.reshape(self.factor.shape + (1,) * (matrices.ndim - 4))
        return scale_rows(matrices, factor, self.roll_forward, self.absorbing)

    def table(self, segments: tuple[str, ...], cohorts: np.ndarray) -> pd.DataFrame:
        """Tidy: one row per cohort-segment with loans (segment, cohort label, factor, credibility, ...)."""
        s_idx, c_idx = np.nonzero(self.n_loans > 0)
        return pd.DataFrame({
            "segment": pd.array([segments[s] for s in s_idx], dtype="string"),
            "cohort": pd.array(month_label(cohorts[c_idx]), dtype="string"),
            "factor": self.factor[s_idx, c_idx],
            "factor_log_sd": (np.full(len(s_idx), np.nan) if self.spread is None else self.spread[s_idx, c_idx]),
            "credibility": self.credibility[s_idx, c_idx],
            "own_factor": self.own[s_idx, c_idx],
            "vintage_factor": self.vintage_factor[s_idx, c_idx],
            "vintage_credibility": self.vintage_credibility[s_idx, c_idx],
            "expected_moves": self.expected_moves[s_idx, c_idx],
            "n_loans": self.n_loans[s_idx, c_idx].astype(np.int64),
            "kappa": self.kappa[s_idx],
        }, columns=COHORT_FACTOR_COLUMNS)


@dataclass(frozen=True)
class CalibrationFactors:
    """k[s, m] scales step m-1 -> m of segment s; k[:, 0] is 1 (no step ends at MOB 0)."""

    k: np.ndarray  # (S, M+1)
    k_unclipped: np.ndarray  # (S, M+1)
    n_cohorts_used: np.ndarray  # (S, M+1)
    expected_mean: np.ndarray  # (S, M+1), NaN where no cohort was usable
    actual_mean: np.ndarray  # (S, M+1)
    n_loans: np.ndarray | None = None  # (S, M+1) loans at m-1 of the cohorts used
    cohort: CohortFactors | None = None  # [calibration] cohort_factor = "credibility"

    def table(self, segments: tuple[str, ...]) -> pd.DataFrame:
        """Tidy factors table: one row per (segment, mob) with at least one usable cohort."""
        s_idx, m_idx = np.nonzero(self.n_cohorts_used > 0)
        loans = self.n_loans if self.n_loans is not None else np.zeros_like(self.n_cohorts_used)
        return pd.DataFrame({
            "segment": pd.array([segments[s] for s in s_idx], dtype="string"),
            "mob": m_idx.astype(np.int64),
            "k": self.k[s_idx, m_idx],
            "n_cohorts_used": self.n_cohorts_used[s_idx, m_idx].astype(np.int64),
            "expected_mean": self.expected_mean[s_idx, m_idx],
            "actual_mean": self.actual_mean[s_idx, m_idx],
            "k_unclipped": self.k_unclipped[s_idx, m_idx],
            "n_loans": loans[s_idx, m_idx].astype(np.int64),
        }, columns=FACTOR_COLUMNS)


def bad_mask(config: Config, del_type: str) -> np.ndarray:
    return np.isin(config.buckets.order, config.buckets.bad(del_type))


def absorbing_mask(config: Config) -> np.ndarray:
    return np.isin(config.buckets.order, config.buckets.absorbing)


def roll_forward_mask(config: Config) -> np.ndarray:
    """(K, K) moves to a worse state: a live state later in [buckets] order, or an absorbing state that is bad
    (in a DEL bucket, e.g. WRITEOFF). Leaving the book unharmed (PREPAY), staying and curing are not."""
    b = config.buckets
    absorbing = absorbing_mask(config)
    bad = np.isin(b.order, [*b.del30, *b.del60, *b.del90])
    position = np.arange(len(b.order))
    later = position[None, :] > position[:, None]
    return ~absorbing[:, None] & ((later & ~absorbing[None, :]) | (absorbing & bad)[None, :])


def unit_factors(n_segments: int, max_mob: int) -> CalibrationFactors:
    ones = np.ones((n_segments, max_mob + 1))
    nan = np.full_like(ones, np.nan)
    zeros = np.zeros_like(ones, dtype=np.int64)
    return CalibrationFactors(ones, ones, zeros, nan, nan, zeros)


def _one_step(stats: PanelStats, transition_matrix: np.ndarray, cohort: CohortFactors | None) -> np.ndarray:
    """(S, C, M, K) actual EAD at m @ the chain of step m (each cohort's own chain when there are cohort factors)."""
    if cohort is None:
        return np.einsum("scmk,smkj->scmj", stats.ead[:, :, :-1, :], transition_matrix)
    out = np.empty(stats.ead[:, :, :-1].shape)
    for m in range(stats.max_mob):  # one MOB at a time: the per-cohort matrices of all steps can be large
        out[:, :, m] = np.einsum("sck,sckj->scj", stats.ead[:, :, m], cohort.scale(transition_matrix[:, None, m]))
    return out


def fit_stepwise_factors(stats: PanelStats, transition_matrix: np.ndarray, config: Config,
                         cohort: CohortFactors | None = None) -> CalibrationFactors:
    """Fit k[s, m] for every segment and MOB m >= 1 from the actual EAD at m-1 and the actual DEL at m (the chain's
    expectation through each cohort's own chain when ``cohort`` factors are given)."""
    c = config.calibration
    bad = bad_mask(config, c.del_type)
    ead0 = stats.ead[:, :, 0, :].sum(axis=-1)  # (S, C)
    observed = stats.observed
    loans = stats.n_loans[:, :, :-1]  # (S, C, M) loans at m-1 for the step ending at m
    usable = observed[:, :, :-1] & observed[:, :, 1:] & (ead0 > 0)[:, :, None] & (loans >= c.min_cohort_loans)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        projected = _one_step(stats, transition_matrix, cohort)
        expected = projected[..., bad].sum(axis=-1) / ead0[:, :, None]
        actual = stats.ead[:, :, 1:, bad].sum(axis=-1) / ead0[:, :, None]
    usable &= np.isfinite(expected) & np.isfinite(actual)  # a near-zero EAD0 can overflow the ratios
    n_used = usable.sum(axis=1)  # (S, M)
    weight = {"cohorts": np.ones_like(loans, dtype=np.float64), "ead": np.broadcast_to(ead0[:, :, None], loans.shape),
              "loans": loans.astype(np.float64)}[c.weights]
    weight = np.where(usable, weight, 0.0)
    total = weight.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        expected_mean = np.where(usable, weight * expected, 0).sum(axis=1) / total
        actual_mean = np.where(usable, weight * actual, 0).sum(axis=1) / total
        raw = actual_mean / expected_mean
    raw = np.where((expected_mean > 0) & np.isfinite(raw), raw, 1.0)
    raw = np.where(n_used > 0, raw, 1.0)
    expected_mean = np.where(n_used > 0, expected_mean, np.nan)
    actual_mean = np.where(n_used > 0, actual_mean, np.nan)
    lo, hi = c.K_CLIP
    pad = np.ones((raw.shape[0], 1))
    zero = np.zeros_like(pad, dtype=np.int64)
    return CalibrationFactors(
        k=np.concatenate([pad, np.clip(raw, lo, hi)], axis=1),
        k_unclipped=np.concatenate([pad, raw], axis=1),
        n_cohorts_used=np.concatenate([zero, n_used], axis=1),
        expected_mean=np.concatenate([pad * np.nan, expected_mean], axis=1),
        actual_mean=np.concatenate([pad * np.nan, actual_mean], axis=1),
        n_loans=np.concatenate([zero, np.where(usable, loans, 0).sum(axis=1)], axis=1),
        cohort=cohort,
    )


def row_scales(masked_sum: np.ndarray, rest_sum: np.ndarray, factor: np.ndarray,
               absorbing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The multipliers (masked, rest) `scale_rows` applies to a row's entries under and outside its mask, from the
    row's sums under (``masked_sum``) and outside (``rest_sum``) the mask, by ``factor``; absorbing rows keep 1.

    The rest absorbs the change proportionally; where it cannot (it would go negative, or is all zero), the masked
    entries are rescaled to fill the row's sum and the rest becomes 0."""
    row_sum = masked_sum + rest_sum
    scaled_sum = masked_sum * factor
    room = row_sum - scaled_sum
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        rest_scale = room / rest_sum
        # A rest of a few denormals (a drawn row's underflow) cannot absorb anything: its multiplier overflows.
        absorbs = (rest_sum > 0) & (room >= 0) & np.isfinite(rest_scale)
        masked = np.where(absorbs | (scaled_sum <= 0), factor, factor * row_sum / scaled_sum)
        rest = np.where(absorbs, rest_scale, np.where(scaled_sum > 0, 0.0, 1.0))
    return np.where(absorbing, 1.0, masked), np.where(absorbing, 1.0, rest)


def scale_rows(transition_matrix: np.ndarray, factor: np.ndarray, mask: np.ndarray,
               absorbing: np.ndarray) -> np.ndarray:
    """Scale the entries under ``mask`` ((K,) columns or (K, K) entries) by ``factor`` (broadcast against the
    leading axes), keeping each row's sum (`row_scales`'s rule). Absorbing rows are left alone.
    """
    factor = np.asarray(factor, dtype=np.float64)[..., None]
    masked, rest = row_scales(np.where(mask, transition_matrix, 0.0).sum(axis=-1),
                              np.where(mask, 0.0, transition_matrix).sum(axis=-1), factor, absorbing)
    return transition_matrix * np.where(mask, masked[..., None], rest[..., None])


def apply_factors(transition_matrix: np.ndarray, k: np.ndarray, bad: np.ndarray,
                  absorbing: np.ndarray) -> np.ndarray:
    """Scale the bad columns of step m-1 by k[m], keeping each row's sum (`scale_rows`)."""
    return scale_rows(transition_matrix, k[:, 1:], bad, absorbing)


def fit_cohort_factors(stats: PanelStats, transition_matrix: np.ndarray, config: Config) -> CohortFactors:
    """Credibility-weighted cohort factors against the chain ``transition_matrix`` (S, M, K, K).

    Observation (s, c, m): X = actual / expected roll-forward moves of the cohort-segment at step m (EAD at m, or
    loans with [transitions] weighting = "count"), the expectation from its actual states at m; weight w = the loans
    the chain expected to roll forward; own_sc = sum_m w X / w_sc. cohort_credibility "auto": the nested credibility
    of `_nested_credibility`; a number kappa: Z = w_sc / (w_sc + kappa) toward 1, segment by segment.
    """
    c = config.calibration
    roll = roll_forward_mask(config)
    absorbing = absorbing_mask(config)
    rate = np.where(roll, transition_matrix, 0.0).sum(axis=-1)  # (S, M, K) chance of rolling forward
    count = stats.cohort_trans_count
    expected_moves = np.einsum("scmk,smk->scm", count.sum(axis=-1), rate)  # (S, C, M)
    if config.transitions.weighting == "count":
        actual, expected = np.where(roll, count, 0).sum(axis=(-2, -1)).astype(np.float64), expected_moves
    else:
        ead = stats.cohort_trans_ead_from
        actual = np.where(roll, ead, 0.0).sum(axis=(-2, -1))
        expected = np.einsum("scmk,smk->scm", ead.sum(axis=-1), rate)
    valid = (expected_moves > 0) & (expected > 0)
    w = np.where(valid, expected_moves, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.where(valid, actual / expected, 0.0)
        w_c = w.sum(axis=-1)  # (S, C)
        own = np.where(w_c > 0, (w * x).sum(axis=-1) / w_c, np.nan)
    n_steps = valid.sum(axis=-1)
    rho = 0.0
    if c.cohort_credibility == "auto":
        z, toward, z_vintage, kappa, rho, variance = _nested_credibility(w, x, w_c, own, n_steps, stats.cohorts,
                                                                         c.vintage_correlation)
    else:
        kappa = np.full(w.shape[0], float(c.cohort_credibility))
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.where(w_c > 0, w_c / (w_c + kappa[:, None]), 0.0)
        toward, z_vintage, variance = np.ones_like(z), np.zeros_like(z), None
    lo, hi = c.cohort_clip
    factor = np.clip(z * np.nan_to_num(own, nan=1.0) + (1.0 - z) * toward, lo, hi)
    # On the log scale the paths draw from (a factor stays positive): sd / factor, the delta method.
    spread = None if variance is None else np.where(stats.n_loans.max(axis=2) > 0, np.sqrt(variance) / factor, 0.0)
    return CohortFactors(factor=factor, own=own, credibility=z, vintage_factor=toward, vintage_credibility=z_vintage,
                         expected_moves=w_c, n_loans=stats.n_loans.max(axis=2), kappa=kappa, roll_forward=roll,
                         absorbing=absorbing, vintage_correlation=rho, spread=spread)


def _nested_credibility(w: np.ndarray, x: np.ndarray, w_c: np.ndarray, own: np.ndarray, n_steps: np.ndarray,
                        months: np.ndarray, correlation: float | str = 0.0
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, np.ndarray]:
    """Two-level (Jewell) credibility of the cohort-segment ratios: Z_sc, then mu_c and Z_c broadcast to (S, C),
    kappa = sigma2 / tau2 (S,), the vintages' correlation one month apart (`_vintage_levels`) and the posterior
    variance (S, C) of each cohort-segment's true factor, (1 - Z_sc) tau2 + (1 - Z_sc)^2 Var(level_c | data): what
    its own history leaves unknown of its segment's part, and what is carried of its vintage's level's.

    sigma2 = sum w (x - own_sc)^2 / sum (n_sc - 1) is the noise per expected move; tau2, the variance of the
    segments' factors within a cohort, and nu2, of the cohorts' factors, are Bühlmann-Gisler's unbiased
    estimators. A tau2 that is not positive (segments that agree within a cohort, or one segment) is taken at its
    limit, where Z_sc -> 0 and Z_c -> w_c / (w_c + sigma2 / nu2): the one-level Bühlmann-Straub factor of the
    pooled cohort. A nu2 that is not positive means no vintage effect is detectable: mu_c = 1."""
    own0 = np.nan_to_num(own)
    present = w_c > 0  # (S, C)
    dof = np.maximum(n_steps - 1, 0).sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        sigma2 = (w * (x - own0[..., None]) ** 2).sum() / dof if dof > 0 else np.nan
        w_cohort = w_c.sum(axis=0)  # (C,)
        pooled = np.where(w_cohort > 0, (w_c * own0).sum(axis=0) / w_cohort, 1.0)  # (C,)
        spread = (w_c * (own0 - pooled) ** 2).sum() - (np.maximum(present.sum(axis=0) - 1, 0) * sigma2).sum()
        scale = np.where(w_cohort > 0, w_cohort - (w_c ** 2).sum(axis=0) / w_cohort, 0.0).sum()
        tau2 = spread / scale if scale > 0 else np.nan
    if not np.isfinite(sigma2):  # one step per cohort: the noise cannot be measured, so no factor is trusted
        return (np.zeros_like(w_c), np.ones_like(w_c), np.zeros_like(w_c), np.full(w.shape[0], np.inf), 0.0,
                np.zeros_like(w_c))
    if sigma2 <= 0:  # every step of every cohort agrees with its cohort's ratio: no noise, own data only
        return (present.astype(np.float64), np.ones_like(w_c), np.zeros_like(w_c), np.zeros(w.shape[0]), 0.0,
                np.zeros_like(w_c))
    segments_differ = bool(np.isfinite(tau2) and tau2 > 0)
    tau2 = tau2 if segments_differ else TAU_FLOOR * sigma2
    z = np.where(present, w_c / (w_c + sigma2 / tau2), 0.0)  # (S, C)
    z_cohort = z.sum(axis=0)  # (C,)
    with np.errstate(invalid="ignore", divide="ignore"):
        level = np.where(z_cohort > 0, (z * own0).sum(axis=0) / z_cohort, 1.0)  # (C,) B_c
        z_total = z_cohort.sum()
        mean = (z_cohort * level).sum() / z_total
        n_cohorts = int((z_cohort > 0).sum())
        nu2 = (((z_cohort * (level - mean) ** 2).sum() - (n_cohorts - 1) * tau2)
               / (z_total - (z_cohort ** 2).sum() / z_total))
    toward, z_level, rho, level_variance = _vintage_levels(level, z_cohort, tau2, nu2, months, correlation)
    kappa = np.full(w.shape[0], sigma2 / tau2 if segments_differ else np.inf)  # inf: all weight at the cohort level
    variance = (1.0 - z) * tau2 + (1.0 - z) ** 2 * level_variance[None, :]
    return (z, np.broadcast_to(toward, w_c.shape).copy(), np.broadcast_to(z_level, w_c.shape).copy(), kappa, rho,
            variance)


def _vintage_levels(level: np.ndarray, z_cohort: np.ndarray, tau2: float, nu2: float, months: np.ndarray,
                    correlation: float | str) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """(mu_c (C,), the weight of the cohort's own level B_c in it (C,), rho, the posterior variance of each level
    (C,), Sigma_cc - Sigma_c.o (Sigma_oo + D)^-1 Sigma_o.c): the vintage levels' posterior.

    The true levels are 1 + a stationary series over the cohort months with variance nu2 and correlation
    rho^|months apart| (AR(1)); B_c is one of them seen with noise variance tau2 / Z_c. mu = 1 + Sigma_.o (Sigma_oo
    + D)^-1 (B_o - 1) over the cohorts o with history, so a cohort with little history of its own takes its
    neighbours' level, not the average of all eras. rho 0 is the independent credibility, mu_c = 1 + Z_c (B_c - 1)
    with Z_c = nu2 / (nu2 + tau2 / Z_c); "auto" chooses rho by maximum likelihood (scipy), 0 unless it does better.
    """
    seen = z_cohort > 0
    if not (np.isfinite(nu2) and nu2 > 0) or not seen.any():
        return np.ones_like(level), np.zeros_like(level), 0.0, np.zeros_like(level)
    from scipy.linalg import cho_factor, cho_solve

    lag = np.abs(months[:, None] - months[None, :]).astype(np.float64)  # (C, C) months apart
    residual = level[seen] - 1.0
    noise = tau2 / z_cohort[seen]

    def covariance(rho: float) -> np.ndarray:
        return nu2 * rho ** lag  # 0 ** 0 = 1: the diagonal is nu2 whatever rho

    def factor(rho: float):
        return cho_factor(covariance(rho)[np.ix_(seen, seen)] + np.diag(noise))

    def neg_log_likelihood(rho: float) -> float:
        chol = factor(rho)
        return float(np.log(np.diag(chol[0])).sum() + 0.5 * residual @ cho_solve(chol, residual))

    rho = float(correlation) if correlation != "auto" else _max_likelihood_rho(neg_log_likelihood)
    chol = factor(rho)
    toward = 1.0 + covariance(rho)[:, seen] @ cho_solve(chol, residual)
    own_weight = np.zeros_like(level)
    # Sigma (Sigma + D)^-1 = I - D (Sigma + D)^-1: the hat matrix's diagonal without forming it
    own_weight[seen] = 1.0 - noise * np.diag(cho_solve(chol, np.eye(int(seen.sum()))))
    cross = covariance(rho)[:, seen]  # (C, O)
    variance = np.clip(nu2 - (cross * cho_solve(chol, cross.T).T).sum(axis=1), 0.0, None)
    return toward, own_weight, rho, variance


def _max_likelihood_rho(neg_log_likelihood) -> float:
    """The correlation in [0, MAX_VINTAGE_CORRELATION] that maximises the likelihood; 0 where it does as well."""
    from scipy.optimize import minimize_scalar

    best = minimize_scalar(neg_log_likelihood, bounds=(0.0, MAX_VINTAGE_CORRELATION), method="bounded")
    return float(best.x) if best.fun < neg_log_likelihood(0.0) else 0.0


def calibrate(stats: PanelStats, transition_matrix: np.ndarray, config: Config
              ) -> tuple[np.ndarray, CalibrationFactors]:
    """(calibrated segment matrices, factors) for the configured CALIBRATION_MODE and cohort_factor.

    With cohort factors the matrices returned are the segment's (k applied); factors.cohort scales them per cohort
    (`CohortFactors.scale`) wherever a cohort is rolled forward. k and the cohort factors are fitted alternately
    (JOINT_PASSES): k against each cohort's own chain, then the factors against the chain with k.
    """
    n_seg, n_steps = transition_matrix.shape[:2]
    stepwise = config.calibration.CALIBRATION_MODE == "stepwise"
    with_cohorts = config.calibration.cohort_factor == "credibility"
    absorbing = absorbing_mask(config)
    bad = bad_mask(config, config.calibration.del_type)
    factors = unit_factors(n_seg, n_steps)
    applied = transition_matrix
    cohort = None
    for _ in range(JOINT_PASSES if stepwise and with_cohorts else 1):
        if stepwise:
            factors = fit_stepwise_factors(stats, transition_matrix, config, cohort)
            applied = apply_factors(transition_matrix, factors.k, bad, absorbing)
        if with_cohorts:
            cohort = fit_cohort_factors(stats, applied, config)
    if cohort is not None:
        factors = CalibrationFactors(**{**factors.__dict__, "cohort": cohort})
    return applied, factors
