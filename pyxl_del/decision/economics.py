"""Closed-form pieces of the decision engine: logistic take-up, the Lambert-W price, the PD-score link.

Pure functions on numpy arrays (they broadcast); the twin, the optimisers and the environment all call these,
so a formula exists once. docs/decisions.md derives them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from pyxl_del.engine.config import Config

LN2 = np.log(2.0)
ILLUSTRATIVE = "ILLUSTRATIVE"


# ------------------------------------------------------------------------------------------- segment terms


@dataclass(frozen=True)
class Terms:
    """The economics each segment is run on, (S,) arrays, and per segment the settings left at their ILLUSTRATIVE
    defaults (empty: every input is the data's or the config's)."""

    funding_rate: np.ndarray
    opex_rate: np.ndarray
    opex_upfront: np.ndarray
    apr: np.ndarray  # the current APR where the data have none: [economics] segments apr, default_apr
    lgd: np.ndarray
    demand: np.ndarray  # (S, 3) max_take_up, midpoint, steepness
    tax_rate: float
    discount_rate: float
    hurdle_rate: float
    defaults: tuple[tuple[str, ...], ...]

    def caveat(self, segments: np.ndarray | None = None) -> str:
        """"" when the segments' figures (default: all) rest on no default, else "ILLUSTRATIVE: ..." naming the
        settings to give."""
        chosen = range(len(self.defaults)) if segments is None else np.flatnonzero(segments)
        keys = list(dict.fromkeys(k for s in chosen for k in self.defaults[s]))
        if not keys:
            return ""
        # Each section named once ("[economics] funding_rate, opex_rate; [risk] lgd"): with every key left at its
        # default the sentence fits a cell a worksheet function may return (255 characters: =DEL_DECIDE).
        groups: dict[str, list[str]] = {}
        for key in keys:
            simple = re.fullmatch(r"(\[\w+\]) (\w+)", key)  # not a sentence such as a misspelt segment's
            groups.setdefault(simple[1] if simple else key, []).append(simple[2] if simple else "")
        named = "; ".join(f"{head} {', '.join(names)}" if any(names) else head for head, names in groups.items())
        return f"{ILLUSTRATIVE}: default economics ({named}); set them in config.toml"


def segment_terms(config: Config, segments, apr_in_data=None) -> Terms:
    """Resolve [economics], [demand] and [risk] lgd per segment (``apr_in_data`` (S,) bool: the data give the
    segment's APR, so its current APR is no default)."""
    e = config.economics
    names = list(segments)
    has_apr = np.zeros(len(names), dtype=bool) if apr_in_data is None else np.asarray(apr_in_data, dtype=bool)
    per_segment = {k: [e.resolve(k, s) for s in names] for k in ("funding_rate", "opex_rate", "opex_upfront",
                                                                 "default_apr")}
    firm = {k: e.resolve(k) for k in ("tax_rate", "discount_rate", "hurdle_rate")}
    # A name in a per-segment table that is no segment ('Cd' for 'CD'): the segment meant is told beside its defaults.
    misnamed = config.unknown_segment_names(names, ("[economics] segments", "[demand] segments",
                                                    "[risk] lgd_by_segment"))
    defaults = []
    for i, s in enumerate(names):
        keys = [setting for k, pairs in per_segment.items() if (setting := pairs[i][1])
                and not (k == "default_apr" and has_apr[i])]
        keys += [setting for _, setting in firm.values() if setting]
        keys += ["[risk] lgd"] if config.risk.lgd_is_default(s) else []
        keys += config.demand.defaults(s)
        keys += [message for meant, message in misnamed if meant == s]
        defaults.append(tuple(keys))
    value = {k: np.array([v for v, _ in pairs], dtype=np.float64) for k, pairs in per_segment.items()}
    return Terms(funding_rate=value["funding_rate"], opex_rate=value["opex_rate"],
                 opex_upfront=value["opex_upfront"], apr=value["default_apr"],
                 lgd=np.array([config.risk.segment_lgd(s) for s in names], dtype=np.float64),
                 demand=np.array([config.demand.curve(s) for s in names], dtype=np.float64).reshape(len(names), 3),
                 tax_rate=firm["tax_rate"][0], discount_rate=firm["discount_rate"][0],
                 hurdle_rate=firm["hurdle_rate"][0], defaults=tuple(defaults))


def take_up(apr, max_take_up, midpoint, steepness):
    """Share of approved applicants who accept an offer at ``apr``: L / (1 + exp(k (apr - midpoint)))."""
    from scipy import special  # 0.3 s to import: only when used

    return max_take_up * special.expit(-steepness * (np.asarray(apr, dtype=np.float64) - midpoint))


def optimal_apr(unit_cost, midpoint, steepness, apr_min=-np.inf, apr_max=np.inf):
    """The APR maximising take_up(p) * (p - c) for a constant unit cost c (the break-even APR).

    Setting the derivative to zero gives k (p - c) = 1 + exp(-k (p - midpoint)); with y = k (p - c) - 1 this is
    y e^y = exp(-1 - k (c - midpoint)), so p* = c + (1 + W(exp(-1 - k (c - midpoint)))) / k with W the
    principal branch of Lambert's W. The objective is quasi-concave in p, so clipping p* to the bounds is the
    bounded optimum. The exponent is capped where W's argument would overflow: there W(x) ~ log(x), and
    scipy's lambertw is exact to the cap (e^700).
    """
    from scipy import special  # 0.3 s to import: only when used

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
    from scipy import optimize, special  # 0.2 s to import: only when used

    mean_pd = np.clip(np.asarray(mean_pd, dtype=np.float64), 1e-9, 1 - 1e-9)
    slope = -LN2 * np.asarray(score_offsets, dtype=np.float64) / pdo
    w = np.full(slope.shape, 1.0 / slope.size) if weights is None else np.asarray(weights, dtype=np.float64)
    intercepts = np.array([
        optimize.brentq(lambda a, target=t: float(w @ special.expit(a + slope)) - target, -60.0, 60.0, xtol=1e-14)
        for t in mean_pd])
    return special.expit(intercepts[:, None] + slope[None, :])
