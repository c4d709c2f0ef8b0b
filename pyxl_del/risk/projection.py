"""The fitted chain rolled past each cohort's last actual month: the projection every risk figure starts from,
the credit-cycle shift of the transition matrices (Belkin-Suchower-Forest; **Z < 0 is adverse**: it moves
probability towards worse destinations) and absorption probabilities for the lifetime tail. Formulas: docs/risk.md.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from scipy.special import ndtr, ndtri

from pyxl_del.engine.config import Config
from pyxl_del.engine.data import PanelStats
from pyxl_del.engine.forecast import forecast_ead, last_actual_mob
from pyxl_del.engine.pipeline import DelResult

log = logging.getLogger(__name__)

Anchor = Literal["median", "mean"]
ALL = "All"  # the cohort label of a segment's (or the Portfolio's) total row
EL_HORIZON = 12  # months of the "12-month" figures: expected loss and PD


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
