"""Portfolio risk on the fitted chain: the Markov model as the portfolio's digital twin.

Expected loss (12-month and lifetime; the fundamental matrix for the time-homogeneous tail), the one-factor
credit-cycle shift of the transition matrices (Belkin-Suchower-Forest), Monte Carlo credit VaR and expected
shortfall, the Vasicek and Basel IRB retail formulas, the NPL ratio and concentration (HHI, top-n shares).
Pure functions of a DelResult and a Config: numpy inside, tidy DataFrames at the edges. Formulas and conventions
are in docs/risk.md. **Z < 0 is adverse** everywhere: it moves probability towards worse destinations.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri
from scipy.stats import norm

from .config import Config
from .data import PORTFOLIO, PanelStats, month_label
from .forecast import forecast_ead, last_actual_mob
from .pipeline import DelResult

log = logging.getLogger(__name__)

Anchor = Literal["median", "mean"]
ALL = "All"  # the cohort label of a segment's (or the Portfolio's) total row
EL_HORIZON = 12  # months of the "12-month" figures: expected loss and PD
IRB_CONFIDENCE = 0.999
IRB_CORRELATION = {"mortgage": 0.15, "revolving": 0.04}
BOOTSTRAP_SAMPLES = 200


# ------------------------------------------------------------------------------------------------ states


def state_mask(config: Config, names: Sequence[str]) -> np.ndarray:
    return np.isin(config.buckets.order, list(names))


def severity_order(config: Config) -> np.ndarray:
    """State indices from the best destination to the worst: the ranking the Z shift moves probability along.

    ``[scenarios] severity_order`` when given; else the absorbing states that are not bad (PREPAY: leaving the
    book is the best outcome, and prepayments fall in a downturn), then the live states in [buckets] order
    (which runs from current to most delinquent), then the absorbing bad states (WRITEOFF).
    """
    order = list(config.buckets.order)
    if config.scenarios.severity_order:
        return np.array([order.index(s) for s in config.scenarios.severity_order])
    b = config.buckets
    bad = {*b.del30, *b.del60, *b.del90, config.risk.loss_state}
    exits = [s for s in order if s in b.absorbing and s not in bad]
    live = [s for s in order if s not in b.absorbing]
    losses = [s for s in order if s in b.absorbing and s in bad]
    return np.array([order.index(s) for s in exits + live + losses])


# ----------------------------------------------------------------------------- the credit-cycle shift (BSF)


def _bsf_thresholds(p: np.ndarray, rho, anchor: Anchor) -> tuple[np.ndarray, np.ndarray]:
    """Rows (..., K) with columns best to worst -> (normal thresholds of "this destination or worse", row sums).

    The thresholds are exactly +inf where no better destination has mass and -inf where nothing this bad or
    worse has, so a shift never creates a move the base matrix does not have.
    """
    total = p.sum(axis=-1, keepdims=True)
    q = np.divide(p, total, out=np.zeros_like(p), where=total > 0)
    worse = np.clip(np.cumsum(q[..., ::-1], axis=-1)[..., ::-1], 0.0, 1.0)
    worse = np.where(np.cumsum(q, axis=-1) - q <= 0, 1.0, worse)
    x = ndtri(worse)
    if anchor == "median":
        # The base row is the Z = 0 row: x_median = sqrt(1 - rho) * x_mean.
        x = x * np.sqrt(1.0 - np.asarray(rho, dtype=np.float64))[..., None, None]
    return x, total


def _bsf_apply(x: np.ndarray, total: np.ndarray, z, rho) -> np.ndarray:
    """Probabilities (columns best to worst) at factor z: P(this or worse | z) = Phi((x - sqrt(rho) z) / sqrt(1 - rho)).

    ``rho`` varies at most over the leading axes of ``x``; ``z`` over them and over extra axes in front (paths).
    """
    z = np.asarray(z, dtype=np.float64)[..., None, None]
    r = np.broadcast_to(np.asarray(rho, dtype=np.float64)[..., None, None], x.shape)
    worse = np.empty(np.broadcast_shapes(z.shape, x.shape))
    worse[...] = x > 0
    # Only finite thresholds move (+inf stays 1, -inf stays 0), and a sparse row has few of them.
    finite = np.isfinite(x)
    r = r[finite]
    worse[..., finite] = ndtr((x[finite] - np.sqrt(r) * np.broadcast_to(z, worse.shape)[..., finite])
                              / np.sqrt(1.0 - r))
    worse[..., :-1] -= worse[..., 1:]
    return worse * total


def stress_matrices(transition_matrix: np.ndarray, z, rho, *, config: Config | None = None,
                    anchor: Anchor = "median") -> np.ndarray:
    """Transition matrices (..., K, K) moved by the systematic credit-cycle factor ``z`` (Belkin-Suchower-Forest).

    Each row's probabilities of "this destination or worse" (destinations ranked by `severity_order`) go through
    the normal quantile function, are shifted by ``-sqrt(rho) z`` and mapped back. ``z`` is a scalar or an array
    broadcastable against the leading axes (e.g. one value per MOB step of an (S, M, K, K) array); the result has
    the broadcast leading shape. Z < 0 is adverse. Rows keep their sums (so stochastic rows stay stochastic) and
    absorbing rows stay absorbing.

    anchor "median" (scenarios): the base matrix is the Z = 0 matrix, so Z = 0 returns it unchanged.
    anchor "mean" (Monte Carlo): the base matrix is the average over Z ~ N(0, 1), the Vasicek/IRB reading.
    """
    cfg = config or Config()
    base = np.asarray(transition_matrix, dtype=np.float64)
    severity = severity_order(cfg)
    if base.shape[-1] != len(severity) or base.shape[-2] != len(severity):
        raise ValueError(f"matrices must end in ({len(severity)}, {len(severity)}) (the [buckets] order), got "
                         f"{base.shape}")
    z = np.asarray(z, dtype=np.float64)
    lead = np.broadcast_shapes(base.shape[:-2], z.shape, np.shape(rho))
    x, total = _bsf_thresholds(np.broadcast_to(base[..., severity], lead + base.shape[-2:]), rho, anchor)
    stressed = np.empty(lead + base.shape[-2:])
    stressed[..., severity] = _bsf_apply(x, total, np.broadcast_to(z, lead), np.broadcast_to(rho, lead))
    if anchor == "median":
        stressed = np.where(np.broadcast_to(z, lead)[..., None, None] == 0, base, stressed)
    return stressed


# ------------------------------------------------------------------------------------------------ projection


@dataclass(frozen=True)
class Projection:
    """Every cohort-segment rolled forward from its last actual MOB, past max_mob on the tail matrix.

    Forecast month t of a cohort is MOB last + t (t = 0 is its reporting date). Steps after max_mob reuse the
    last step's matrix (the tail), after MOB E (= max_mob + the months asked for) the chain is time-homogeneous.
    """

    ead: np.ndarray  # (S, C, E+1, K): as result.ead_path up to the last actual MOB, projected after
    last: np.ndarray  # (S, C) last actual MOB; -1 where the segment does not have the cohort
    matrices: np.ndarray  # (S, C, E, K, K) step matrices applied (stressed where a scenario says so)
    tail: np.ndarray  # (S, K, K) the matrix applied after MOB E

    @property
    def present(self) -> np.ndarray:
        return self.last >= 0

    def at(self, months: int) -> np.ndarray:
        """(S, C, K) EAD by state ``months`` after each cohort's reporting date (zeros where absent)."""
        index = np.clip(self.last + months, 0, None)[..., None, None]
        values = np.take_along_axis(self.ead, index, axis=2)[:, :, 0]
        return np.where(self.present[..., None], values, 0.0)


def _roll(stats: PanelStats, start: np.ndarray, start_mob: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """EAD by state (S, C, E+1, K) from ``start`` (S, C, K) at ``start_mob`` through per-cohort step matrices.

    The engine's forecast_ead with each cohort-segment as its own one-cohort "segment" and its start as the only
    actual month, so per-cohort (stressed) matrices go through exactly the report's forecast.
    """
    n_seg, n_coh, n_steps, k = matrices.shape[:4]
    at_start = np.arange(n_steps + 1) == start_mob[..., None]
    seeded = replace(
        stats,
        ead=np.where(at_start[..., None], start[:, :, None, :], 0.0).reshape(n_seg * n_coh, 1, n_steps + 1, k),
        n_loans=at_start.reshape(n_seg * n_coh, 1, n_steps + 1).astype(np.int64),
    )
    path = forecast_ead(seeded, matrices.reshape(n_seg * n_coh, n_steps, k, k))
    return path.reshape(n_seg, n_coh, n_steps + 1, k)


def project(result: DelResult, *, months: int = EL_HORIZON, z: Sequence[float] = (), rho: float | None = None,
            config: Config | None = None) -> Projection:
    """Roll the book ``months`` past max_mob, the matrices moved by a path of Z over forecast months 1, 2, ...

    ``z`` applies to each cohort's own forecast months (month 1 = the month after its last actual month); its
    last value persists, including in the tail. An empty path is the baseline: exactly the report's forecast.
    """
    cfg = config or result.config
    rho = cfg.risk.rho if rho is None else rho
    base = result.transition_matrix
    n_seg, n_steps = base.shape[:2]
    horizon = n_steps + max(int(months), len(z))
    last = last_actual_mob(result.stats)
    path = np.asarray(z if len(z) else (0.0,), dtype=np.float64)
    ahead = np.arange(horizon) - last[..., None] + 1  # forecast month of step m -> m+1
    z_steps = np.where(ahead >= 1, path[np.clip(ahead - 1, 0, len(path) - 1)], 0.0)
    steps = base[:, None, np.minimum(np.arange(horizon), n_steps - 1)]
    matrices = stress_matrices(steps, z_steps, rho, config=cfg)
    tail = stress_matrices(base[:, -1], path[-1], rho, config=cfg)
    history = np.zeros(last.shape + (horizon + 1, base.shape[-1]))
    history[:, :, :n_steps + 1] = result.ead_path
    start = np.take_along_axis(history, np.clip(last, 0, None)[..., None, None], axis=2)[:, :, 0]
    rolled = _roll(result.stats, start, last, matrices)
    ead = np.where((np.arange(horizon + 1) <= last[..., None])[..., None], history, rolled)
    return Projection(ead=ead, last=last, matrices=matrices, tail=tail)


def absorption_probabilities(matrix: np.ndarray, absorbing: np.ndarray) -> np.ndarray:
    """B = (I - Q)^-1 R for time-homogeneous chains (..., K, K): (..., transient, absorbing) probabilities.

    Q is the transient-to-transient block, R transient-to-absorbing, (I - Q)^-1 the fundamental matrix. A transient
    state from which no absorbing state can be reached (a "stay" row from the thin-data fallback) never gets
    absorbed: its row of B is 0.
    """
    live = ~np.asarray(absorbing, dtype=bool)
    q = matrix[..., live, :][..., :, live]
    r = matrix[..., live, :][..., :, ~live]
    reaches = r.sum(axis=-1) > 0
    for _ in range(int(live.sum())):
        reaches = reaches | ((q > 0) & reaches[..., None, :]).any(axis=-1)
    q = np.where(reaches[..., :, None] & reaches[..., None, :], q, 0.0)
    r = np.where(reaches[..., None], r, 0.0)
    return np.linalg.solve(np.eye(int(live.sum())) - q, r)


# ----------------------------------------------------------------------------------------------- expected loss

EL_COLUMNS = ["segment", "cohort", "last_mob", "ead", "performing_ead", "pd_12m", "lgd", "writeoff_12m",
              "writeoff_lifetime", "el_12m", "el_lifetime", "el_12m_rate", "el_lifetime_rate"]


def _default_mass(result: DelResult, projection: Projection, config: Config, months: int) -> tuple[np.ndarray,
                                                                                                    np.ndarray]:
    """(EAD of today's performing loans in default within ``months``, today's performing EAD), both (S, C).

    Default states are made absorbing so a loan that defaults and then cures still counts once.
    """
    default = state_mask(config, config.risk.default_states)
    performing = ~state_mask(config, config.buckets.absorbing) & ~default
    start = projection.at(0) * performing
    trapped = projection.matrices.copy()
    trapped[..., default, :] = np.eye(len(default))[default]
    rolled = _roll(result.stats, start, projection.last, trapped)
    index = np.clip(projection.last + months, 0, None)[..., None, None]
    ended = np.take_along_axis(rolled, index, axis=2)[:, :, 0]
    return ended[..., default].sum(axis=-1), start.sum(axis=-1)


def loss_table(result: DelResult, projection: Projection, config: Config | None = None) -> pd.DataFrame:
    """Expected loss per cohort-segment with segment and Portfolio totals (cohort "All") for one projection."""
    cfg = config or result.config
    order = list(cfg.buckets.order)
    loss = order.index(cfg.risk.loss_state)
    absorbing = state_mask(cfg, cfg.buckets.absorbing)
    now = projection.at(0)
    later = projection.at(EL_HORIZON)
    writeoff_12m = later[..., loss] - now[..., loss]
    b = absorption_probabilities(projection.tail, absorbing)  # (S, live, absorbing)
    to_loss = b[..., list(np.flatnonzero(absorbing)).index(loss)]  # (S, live)
    end = projection.ead[:, :, -1]
    beyond = np.einsum("sck,sk->sc", end[..., ~absorbing], to_loss)
    writeoff_life = end[..., loss] - now[..., loss] + np.where(projection.present, beyond, 0.0)
    defaulted, performing = _default_mass(result, projection, cfg, EL_HORIZON)
    lgd = np.array([cfg.risk.segment_lgd(s) for s in result.segments])

    present = projection.present
    s_idx, c_idx = np.nonzero(present)
    cells = {
        "ead": now[..., ~absorbing].sum(axis=-1), "performing_ead": performing, "defaulted": defaulted,
        "writeoff_12m": writeoff_12m, "writeoff_lifetime": writeoff_life,
    }
    rows = pd.DataFrame({
        "segment": [result.segments[s] for s in s_idx],
        "cohort": [result.cohorts[c] for c in c_idx],
        "last_mob": projection.last[s_idx, c_idx],
        "lgd": lgd[s_idx],
        **{k: v[s_idx, c_idx] for k, v in cells.items()},
    })
    rows["el_12m"] = rows["writeoff_12m"] * rows["lgd"]
    rows["el_lifetime"] = rows["writeoff_lifetime"] * rows["lgd"]
    sums = ["ead", "performing_ead", "defaulted", "writeoff_12m", "writeoff_lifetime", "el_12m", "el_lifetime"]
    segment_totals = rows.groupby("segment", sort=False)[sums].sum().reset_index()
    segment_totals["cohort"] = ALL
    portfolio = rows[sums].sum().to_frame().T.assign(segment=PORTFOLIO, cohort=ALL)
    table = pd.concat([rows, segment_totals, portfolio], ignore_index=True)
    # Totals carry the LGD their expected loss implies (the write-off-weighted mean) and no single last MOB.
    with np.errstate(invalid="ignore", divide="ignore"):
        table["lgd"] = table["lgd"].fillna(table["el_lifetime"] / table["writeoff_lifetime"])
        table["pd_12m"] = table["defaulted"] / table["performing_ead"]
        table["el_12m_rate"] = table["el_12m"] / table["ead"]
        table["el_lifetime_rate"] = table["el_lifetime"] / table["ead"]
    table["last_mob"] = table["last_mob"].astype("Int64")
    for col in ("segment", "cohort"):
        table[col] = table[col].astype("string")
    return table[EL_COLUMNS]


def expected_loss(result: DelResult, config: Config | None = None) -> pd.DataFrame:
    """12-month and lifetime expected loss per cohort-segment, per segment and for the Portfolio (cohort "All").

    EL = EAD flowing into [risk] loss_state x LGD: in the 12 months after each cohort's last actual month, and
    over its lifetime (explicit steps, then absorption probabilities of the tail matrix). ead is today's
    outstanding EAD (live states); pd_12m the share of today's performing EAD in a default state within 12 months.
    """
    cfg = config or result.config
    return loss_table(result, project(result, months=EL_HORIZON, config=cfg), cfg)


# ----------------------------------------------------------------------------------------- Vasicek and IRB


def vasicek_quantile(pd: float, rho: float, q: float) -> float:
    """The q-quantile of the loss rate (LGD 1) of a large homogeneous pool (Vasicek):
    Phi((Phi^-1(pd) + sqrt(rho) Phi^-1(q)) / sqrt(1 - rho))."""
    value = norm.cdf((norm.ppf(pd) + np.sqrt(rho) * norm.ppf(q)) / np.sqrt(1.0 - rho))
    return float(value) if np.ndim(value) == 0 else value


def irb_correlation(pd, kind: str = "other"):
    """Basel retail asset correlation: residential mortgage 0.15, qualifying revolving 0.04, other retail
    0.03 w + 0.16 (1 - w) with w = (1 - exp(-35 PD)) / (1 - exp(-35))."""
    if kind in IRB_CORRELATION:
        return np.full_like(np.asarray(pd, dtype=np.float64), IRB_CORRELATION[kind])[()]
    if kind != "other":
        raise ValueError(f"unknown IRB retail class {kind!r}; known: other, {', '.join(IRB_CORRELATION)}")
    w = np.expm1(-35.0 * np.asarray(pd, dtype=np.float64)) / np.expm1(-35.0)
    return (0.03 * w + 0.16 * (1.0 - w))[()]


def irb_retail_capital(pd, lgd, correlation=None, kind: str = "other"):
    """Basel IRB retail: (capital requirement K per unit EAD, risk weight) — INDICATIVE.

    K = LGD x (Vasicek 99.9% quantile of the default rate - PD), no maturity adjustment (retail);
    risk weight = 12.5 K. ``correlation`` overrides the class's formula.
    """
    r = irb_correlation(pd, kind) if correlation is None else correlation
    k = np.maximum(np.asarray(lgd, dtype=np.float64) * (vasicek_quantile(pd, r, IRB_CONFIDENCE) - np.asarray(pd)),
                   0.0)[()]
    return k, 12.5 * k


def _reporting_ead(result: DelResult) -> np.ndarray:
    """(S, C, K) EAD by state at each cohort-segment's last actual month (zeros where absent)."""
    last = last_actual_mob(result.stats)
    values = np.take_along_axis(result.ead_path, np.clip(last, 0, None)[..., None, None], axis=2)[:, :, 0]
    return np.where((last >= 0)[..., None], values, 0.0)


CAPITAL_COLUMNS = ["segment", "irb_class", "pd_12m", "pd_used", "lgd", "correlation", "performing_ead", "k",
                   "risk_weight", "rwa", "capital", "defaulted_ead", "outstanding_ead", "npl_ratio",
                   "writeoff_share"]


def capital(result: DelResult, config: Config | None = None, el: pd.DataFrame | None = None) -> pd.DataFrame:
    """INDICATIVE Basel IRB retail capital per segment and for the Portfolio, with the NPL ratio.

    PD = the chain's 12-month default rate of today's performing EAD (floored at [risk] pd_floor), LGD from
    [risk], EAD = performing EAD. Defaulted EAD (live default states, e.g. DPD90+) carries no K here.
    npl_ratio = defaulted EAD / outstanding EAD; writeoff_share = EAD in loss_state / (outstanding + that).
    """
    cfg = config or result.config
    el = expected_loss(result, cfg) if el is None else el
    totals = el[el["cohort"] == ALL].set_index("segment")
    now = _reporting_ead(result).sum(axis=1)  # (S, K)
    absorbing = state_mask(cfg, cfg.buckets.absorbing)
    defaulted = now[:, ~absorbing & state_mask(cfg, cfg.risk.default_states)].sum(axis=-1)
    outstanding = now[:, ~absorbing].sum(axis=-1)
    written = now[:, list(cfg.buckets.order).index(cfg.risk.loss_state)]
    segments = list(result.segments)
    frame = pd.DataFrame({
        "segment": segments,
        "irb_class": [cfg.risk.segment_irb_class(s) for s in segments],
        "pd_12m": totals.loc[segments, "pd_12m"].to_numpy(dtype=np.float64),
        "lgd": [cfg.risk.segment_lgd(s) for s in segments],
        "performing_ead": totals.loc[segments, "performing_ead"].to_numpy(dtype=np.float64),
        "defaulted_ead": defaulted, "outstanding_ead": outstanding, "written": written,
    })
    frame["pd_used"] = np.maximum(frame["pd_12m"].fillna(0.0), cfg.risk.pd_floor)
    frame["correlation"] = [irb_correlation(p, kind) for p, kind in zip(frame["pd_used"], frame["irb_class"],
                                                                         strict=True)]
    frame["k"], frame["risk_weight"] = irb_retail_capital(frame["pd_used"].to_numpy(), frame["lgd"].to_numpy(),
                                                          frame["correlation"].to_numpy())
    frame["rwa"] = frame["risk_weight"] * frame["performing_ead"]
    frame["capital"] = frame["k"] * frame["performing_ead"]
    sums = ["performing_ead", "defaulted_ead", "outstanding_ead", "written", "rwa", "capital"]
    total = frame[sums].sum()
    performing = total["performing_ead"]
    with np.errstate(invalid="ignore", divide="ignore"):
        portfolio = {
            **total.to_dict(), "segment": PORTFOLIO, "irb_class": "",
            "pd_12m": totals.loc[PORTFOLIO, "pd_12m"],
            "pd_used": float(np.dot(frame["pd_used"], frame["performing_ead"]) / performing),
            "lgd": float(np.dot(frame["lgd"], frame["performing_ead"]) / performing),
            "correlation": np.nan, "k": total["capital"] / performing, "risk_weight": total["rwa"] / performing,
        }
    frame = pd.concat([frame, pd.DataFrame([portfolio])], ignore_index=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        frame["npl_ratio"] = frame["defaulted_ead"] / frame["outstanding_ead"]
        frame["writeoff_share"] = frame["written"] / (frame["outstanding_ead"] + frame["written"])
    for col in ("segment", "irb_class"):
        frame[col] = frame[col].astype("string")
    return frame[CAPITAL_COLUMNS]


# ------------------------------------------------------------------------------------------ Monte Carlo VaR


@dataclass(frozen=True)
class LossSimulation:
    """Simulated credit losses over a horizon: one row per Z path, one column per segment (currency)."""

    losses: np.ndarray  # (n_paths, S)
    exposure: float  # outstanding EAD at the start (live states)
    segments: tuple[str, ...]
    horizon: int
    seed: int

    @property
    def total(self) -> np.ndarray:
        return self.losses.sum(axis=1)

    def var(self, q: float) -> float:
        """Value at risk: the q-quantile of the loss (expected loss included)."""
        return float(np.quantile(self.total, q))

    def es(self, q: float) -> float:
        """Expected shortfall: the mean of the worst ceil(n (1 - q)) losses."""
        return float(_var_es(np.sort(self.total), q)[1])

    def _bootstrap(self, n: int) -> np.ndarray:
        """(BOOTSTRAP_SAMPLES, n) sorted resamples of the first n paths, seeded from the simulation's seed."""
        rng = np.random.default_rng([self.seed, n])
        return np.sort(self.total[:n][rng.integers(0, n, size=(BOOTSTRAP_SAMPLES, n))], axis=1)

    def summary(self, confidence: Sequence[float] = (0.95, 0.99)) -> pd.DataFrame:
        """measure (EL, VaR, ES, UL = VaR - EL), confidence, value, pct_of_ead, std_error (bootstrap; EL: s/sqrt(n))."""
        return self.convergence(confidence, sizes=(len(self.total),)).drop(columns="paths")

    def convergence(self, confidence: Sequence[float] = (0.95, 0.99), sizes: Sequence[int] | None = None
                    ) -> pd.DataFrame:
        """The summary on the first n paths for growing n (default n/16 .. n): estimates settle as SEs shrink."""
        n_all = len(self.total)
        sizes = sizes or sorted({max(n_all // d, 1) for d in (16, 8, 4, 2, 1)})
        rows = []
        for n in sizes:
            losses = self.total[:n]
            boot = self._bootstrap(n)
            mean = losses.mean()
            rows.append((n, "EL", np.nan, mean, losses.std(ddof=1) / np.sqrt(n)))
            for q in confidence:
                var, es = _var_es(np.sort(losses), q)
                boot_var, boot_es = _var_es(boot, q)
                rows += [(n, "VaR", q, var, boot_var.std(ddof=1)), (n, "ES", q, es, boot_es.std(ddof=1)),
                         (n, "UL", q, var - mean, (boot_var - boot.mean(axis=1)).std(ddof=1))]
        frame = pd.DataFrame(rows, columns=["paths", "measure", "confidence", "value", "std_error"])
        frame["pct_of_ead"] = frame["value"] / self.exposure if self.exposure > 0 else np.nan
        frame["measure"] = frame["measure"].astype("string")
        return frame[["paths", "measure", "confidence", "value", "pct_of_ead", "std_error"]]

    def contributions(self, q: float) -> pd.DataFrame:
        """Per segment: mean loss and its mean over the paths at or beyond VaR_q (they add up to EL and ES)."""
        order = np.argsort(self.total)
        tail = order[len(order) - max(1, int(np.ceil(len(order) * (1 - q)))):]
        return pd.DataFrame({
            "segment": pd.array(self.segments, dtype="string"),
            "expected_loss": self.losses.mean(axis=0),
            "es_contribution": self.losses[tail].mean(axis=0),
        })


def _var_es(sorted_losses: np.ndarray, q: float) -> tuple[np.ndarray, np.ndarray]:
    n = sorted_losses.shape[-1]
    k = max(1, int(np.ceil(n * (1 - q))))
    return np.quantile(sorted_losses, q, axis=-1), sorted_losses[..., n - k:].mean(axis=-1)


def _z_paths(rng: np.random.Generator, n_paths: int, months: int, persistence: float) -> np.ndarray:
    """(months, n_paths) stationary AR(1) paths: every Z_t is N(0, 1), corr(Z_t, Z_t+1) = persistence."""
    z = rng.standard_normal((months, n_paths))
    innovation = np.sqrt(1.0 - persistence**2)
    for t in range(1, months):
        z[t] = persistence * z[t - 1] + innovation * z[t]
    return z


def simulate_credit_loss(matrices: np.ndarray, start: np.ndarray, lgd, rho, *, n_paths: int = 10_000,
                         seed: int = 0, persistence: float = 0.0, n_loans=None, config: Config | None = None,
                         segments: Sequence[str] | None = None) -> LossSimulation:
    """Monte Carlo of the credit loss over T months: LGD x EAD flowing into [risk] loss_state.

    ``matrices`` (S, T, K, K): each segment's base step matrix for forecast months 1..T, states in [buckets]
    order; ``start`` (S, K): EAD by state at the start; ``lgd`` and ``rho``: scalars or one per segment.
    Each path draws Z_1..Z_T (stationary AR(1) with the given month-to-month ``persistence``; one period: Vasicek's
    single factor) and month t applies the matrices shifted by Z_t, read as the average over Z (anchor "mean").
    Large pool (``n_loans`` None): the state vector moves by its conditional expectation given Z. With ``n_loans``
    (one int per segment), each segment is that many equal loans moving multinomially given Z (needs
    row-stochastic matrices). Vectorised over paths; the loop runs over months.
    """
    cfg = config or Config()
    matrices = np.asarray(matrices, dtype=np.float64)
    n_seg, n_months, k = matrices.shape[:3]
    severity = severity_order(cfg)
    labels = np.asarray(cfg.buckets.order)[severity]
    # The chain in severity order is the same chain relabelled; there the shift needs no column permutation.
    p = matrices[..., severity, :][..., :, severity]
    v0 = np.asarray(start, dtype=np.float64)[:, severity]
    absorbing = np.isin(labels, cfg.buckets.absorbing)
    live = ~absorbing
    loss = int(np.flatnonzero(labels == cfg.risk.loss_state)[0])
    rho = np.broadcast_to(np.asarray(rho, dtype=np.float64), (n_seg,))
    lgd = np.broadcast_to(np.asarray(lgd, dtype=np.float64), (n_seg,))
    x, total = _bsf_thresholds(p[:, :, live, :], rho[:, None], "mean")
    rng = np.random.default_rng(seed)
    z = _z_paths(rng, n_paths, n_months, persistence)[:, :, None]  # (T, n, 1) against (S,)
    exposure = v0[:, live].sum(axis=1)

    if n_loans is None:
        v = np.broadcast_to(v0, (n_paths, n_seg, k)).copy()
        for t in range(n_months):
            moved = _bsf_apply(x[:, t], total[:, t], z[t], rho)  # (n, S, live, K)
            v = np.einsum("psl,pslk->psk", v[..., live], moved) + v * absorbing
        written = v[..., loss] - v0[:, loss]
    else:
        if not np.allclose(total, 1.0):
            raise ValueError("n_loans needs row-stochastic matrices ([transitions] weighting 'ead' or 'count')")
        n_loans = np.broadcast_to(np.asarray(n_loans, dtype=np.int64), (n_seg,))
        per_loan = np.divide(exposure, n_loans, out=np.zeros(n_seg), where=n_loans > 0)
        counts = np.zeros((n_paths, n_seg, k), dtype=np.int64)
        counts[..., live] = np.rint(np.divide(v0[:, live], per_loan[:, None], out=np.zeros_like(v0[:, live]),
                                              where=per_loan[:, None] > 0))
        for t in range(n_months):
            moved = np.clip(_bsf_apply(x[:, t], total[:, t], z[t], rho), 0.0, 1.0)
            moved /= moved.sum(axis=-1, keepdims=True)
            counts = counts * absorbing + sum(rng.multinomial(counts[..., j], moved[..., i, :])
                                               for i, j in enumerate(np.flatnonzero(live)))
        written = counts[..., loss] * per_loan
    return LossSimulation(losses=written * lgd, exposure=float(exposure.sum()),
                          segments=tuple(segments or (f"segment {i + 1}" for i in range(n_seg))),
                          horizon=n_months, seed=int(seed))


def segment_chain(projection: Projection, months: int) -> tuple[np.ndarray, np.ndarray]:
    """Each segment's book as one chain: ((S, T, K, K) step matrices for forecast months 1..T, (S, K) start EAD).

    Row i of month t mixes the cohorts' rows i weighted by their projected EAD in state i before the step, so the
    segment chain reproduces the sum of the cohorts' baseline projections exactly.
    """
    present = projection.present
    index = np.clip(projection.last, 0, None)[..., None] + np.arange(months)  # (S, C, T) MOB before each step
    before = np.take_along_axis(projection.ead, index[..., None], axis=2) * present[..., None, None]
    steps = np.take_along_axis(projection.matrices, index[..., None, None], axis=2)
    weight = before.sum(axis=1)[..., None]  # (S, T, K, 1)
    mixed = np.einsum("sctk,sctkj->stkj", before, steps)
    plain = (steps * present[..., None, None, None]).sum(axis=1) / np.maximum(present.sum(axis=1), 1)[:, None,
                                                                                                    None, None]
    matrices = np.where(weight > 0, mixed / np.where(weight > 0, weight, 1.0), plain)
    return matrices, before[:, :, 0].sum(axis=1)


def credit_var(result: DelResult, config: Config | None = None, *, n_paths: int | None = None,
               seed: int | None = None, horizon: int | None = None) -> LossSimulation:
    """The portfolio's simulated credit loss over [risk] horizon months ([risk] n_paths, seed, rho, z_persistence)."""
    cfg = config or result.config
    risk = cfg.risk
    months = horizon or risk.horizon
    matrices, start = segment_chain(project(result, months=months, config=cfg), months)
    return simulate_credit_loss(
        matrices, start, [risk.segment_lgd(s) for s in result.segments], risk.rho,
        n_paths=n_paths or risk.n_paths, seed=risk.seed if seed is None else seed,
        persistence=risk.z_persistence, config=cfg, segments=result.segments,
    )


# ----------------------------------------------------------------------------------------------- concentration


def hhi(values, axis: int = -1):
    """Herfindahl-Hirschman index: the sum of squared shares (1/n for n equal shares, 1 for one holder)."""
    v = np.asarray(values, dtype=np.float64)
    total = v.sum(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((v / total) ** 2).sum(axis=axis)[()]


def top_share(values, n: int, axis: int = -1):
    """The share of the n largest values."""
    v = np.sort(np.asarray(values, dtype=np.float64), axis=axis)
    top = np.take(v, np.arange(max(v.shape[axis] - n, 0), v.shape[axis]), axis=axis).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (top / v.sum(axis=axis))[()]


@dataclass(frozen=True)
class Concentration:
    """Outstanding EAD concentration by segment and by cohort: today (reporting date) and by calendar month."""

    current: pd.DataFrame  # by, name, ead, share, rank
    summary: pd.DataFrame  # by, n, ead, hhi, effective_n, top1_share, topn_share (today)
    trend: pd.DataFrame  # month, by, n, ead, hhi, effective_n, top1_share, topn_share (actual data)
    mix: pd.DataFrame  # month rows x segment columns: share of outstanding EAD
    top_n: int

    def value(self, by: str, measure: str, n: int = 1) -> float:
        """Today's HHI ("hhi") or top-n share ("top_share") by "segment" or "cohort"."""
        ead = self.current.loc[self.current["by"] == by, "ead"].to_numpy()
        return float(hhi(ead) if measure == "hhi" else top_share(ead, n))


def _concentration_row(ead: np.ndarray, n: int) -> dict:
    index = hhi(ead, axis=0)
    return {"n": (ead > 0).sum(axis=0), "ead": ead.sum(axis=0), "hhi": index,
            "effective_n": np.divide(1.0, index, out=np.full_like(index, np.nan), where=index > 0),
            "top1_share": top_share(ead, 1, axis=0), "topn_share": top_share(ead, n, axis=0)}


def concentration(result: DelResult, config: Config | None = None) -> Concentration:
    """HHI, effective number and top-n shares of outstanding EAD by segment and by cohort, with the monthly trend."""
    cfg = config or result.config
    n = cfg.risk.top_n
    live = ~state_mask(cfg, cfg.buckets.absorbing)
    today = _reporting_ead(result)[..., live].sum(axis=-1)  # (S, C)
    parts = {"segment": (list(result.segments), today.sum(axis=1)), "cohort": (result.cohorts, today.sum(axis=0))}
    current = []
    for by, (names, ead) in parts.items():
        with np.errstate(invalid="ignore", divide="ignore"):
            share = ead / ead.sum()
        rank = pd.Series(ead).rank(ascending=False, method="first").astype(np.int64).to_numpy()
        current.append(pd.DataFrame({"by": by, "name": names, "ead": ead, "share": share, "rank": rank}))
    current = pd.concat(current, ignore_index=True)
    summary = pd.DataFrame([{"by": by, **{k: v[0] for k, v in _concentration_row(ead[:, None], n).items()}}
                            for by, (_, ead) in parts.items()])

    stats = result.stats
    observed = stats.ead[..., live].sum(axis=-1) * stats.observed  # (S, C, M+1)
    month = stats.cohorts[:, None] + np.arange(stats.max_mob + 1)  # (C, M+1) calendar month index
    first = int(month.min())
    n_months = int(month.max()) - first + 1
    by_segment = np.stack([np.bincount((month - first).ravel(), weights=observed[s].ravel(), minlength=n_months)
                           for s in range(len(result.segments))])  # (S, months)
    by_cohort = np.stack([np.bincount(month[c] - first, weights=observed[:, c].sum(axis=0), minlength=n_months)
                          for c in range(len(result.cohorts))])  # (C, months)
    has_data = by_segment.sum(axis=0) > 0
    labels = np.asarray(month_label(np.arange(first, first + n_months)), dtype=object)[has_data]
    trend = pd.concat([pd.DataFrame({"month": labels, "by": by,
                                     **{k: v[has_data] for k, v in _concentration_row(ead, n).items()}})
                       for by, ead in (("segment", by_segment), ("cohort", by_cohort))], ignore_index=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        mix = pd.DataFrame((by_segment / by_segment.sum(axis=0)).T[has_data],
                           index=pd.Index(labels, name="month", dtype="string"),
                           columns=pd.Index(result.segments, name="segment", dtype="string"))
    for frame in (current, summary, trend):
        for col in frame.columns.intersection(["by", "name", "month"]):
            frame[col] = frame[col].astype("string")
    return Concentration(current=current, summary=summary, trend=trend, mix=mix, top_n=n)
