"""Closed-form pieces of the decision engine: logistic take-up, the Lambert-W price, the PD-score link.

Pure functions on numpy arrays (they broadcast); the twin, the optimisers and the environment all call these,
so a formula exists once. docs/decisions.md derives them.
"""

from __future__ import annotations

import numpy as np
from scipy import special

LN2 = np.log(2.0)


def take_up(apr, max_take_up, midpoint, steepness):
    """Share of approved applicants who accept an offer at ``apr``: L / (1 + exp(k (apr - midpoint)))."""
    return max_take_up * special.expit(-steepness * (np.asarray(apr, dtype=np.float64) - midpoint))


def optimal_apr(unit_cost, midpoint, steepness, apr_min=-np.inf, apr_max=np.inf):
    """The APR maximising take_up(p) * (p - c) for a constant unit cost c (the break-even APR).

    Setting the derivative to zero gives k (p - c) = 1 + exp(-k (p - midpoint)); with y = k (p - c) - 1 this is
    y e^y = exp(-1 - k (c - midpoint)), so p* = c + (1 + W(exp(-1 - k (c - midpoint)))) / k with W the
    principal branch of Lambert's W. The objective is quasi-concave in p, so clipping p* to the bounds is the
    bounded optimum. The exponent is capped where W's argument would overflow: there W(x) ~ log(x), and
    scipy's lambertw is exact to the cap (e^700).
    """
    c = np.asarray(unit_cost, dtype=np.float64)
    exponent = -1.0 - steepness * (c - midpoint)
    big = exponent > 700.0
    w = special.lambertw(np.exp(np.minimum(exponent, 700.0))).real
    # Asymptotic W(e^x) = x - log x + log x / x, accurate far beyond double precision needs here.
    x = np.maximum(exponent, 1.0)
    w = np.where(big, x - np.log(x) + np.log(x) / x, w)
    return np.clip(c + (1.0 + w) / steepness, apr_min, apr_max)


def optimal_apr_numeric(unit_cost: float, midpoint: float, steepness: float, apr_min: float, apr_max: float,
                        max_take_up: float = 1.0) -> float:
    """The same optimum by bounded Brent search on the profit per applicant (a check on the closed form, and the
    general path for non-linear unit values)."""
    from scipy import optimize  # 0.2 s to import: only when used

    res = optimize.minimize_scalar(
        lambda p: -take_up(p, max_take_up, midpoint, steepness) * (p - unit_cost),
        bounds=(apr_min, apr_max), method="bounded", options={"xatol": 1e-12, "maxiter": 500})
    return float(res.x)


def discount_factors(annual_rate: float, n_months: int) -> np.ndarray:
    """(n_months + 1,) monthly-compounded discount factors at month 0 .. n_months."""
    return (1.0 + annual_rate / 12.0) ** -np.arange(n_months + 1, dtype=np.float64)


# ------------------------------------------------------------------------------------------- PD-score link


def linked_band_pd(mean_pd, score_offsets, pdo: float, weights=None) -> np.ndarray:
    """PD per band under the logistic PD-score link, with the bands' weighted mean PD equal to ``mean_pd``.

    log odds of going bad = a - ln2 * offset / pdo (the odds double every ``pdo`` points down the scale);
    the intercept a is solved per row so the mixture keeps the segment's PD. mean_pd: (S,); score_offsets:
    (B,) band scores minus the scale's mean; returns (S, B).
    """
    from scipy import optimize  # 0.2 s to import: only when used

    mean_pd = np.clip(np.asarray(mean_pd, dtype=np.float64), 1e-9, 1 - 1e-9)
    slope = -LN2 * np.asarray(score_offsets, dtype=np.float64) / pdo
    w = np.full(slope.shape, 1.0 / slope.size) if weights is None else np.asarray(weights, dtype=np.float64)
    intercepts = np.array([
        optimize.brentq(lambda a, target=t: float(w @ special.expit(a + slope)) - target, -60.0, 60.0, xtol=1e-14)
        for t in mean_pd])
    return special.expit(intercepts[:, None] + slope[None, :])
