"""Stage 2 — transitions: transition matrices per segment and MOB step from the panel's sufficient statistics.

P[s, m] is the step m -> m+1 for segment s, shape (S, M, K, K). How a row is estimated, and which rows fall
back to pooled or neighbouring data, is documented in docs/methodology.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from pyxl_del.engine.config import Config
from pyxl_del.engine.data import PanelStats
from pyxl_del.engine.errors import PanelError

log = logging.getLogger(__name__)

SOURCES = ("estimated", "fallback", "tail")
ESTIMATED, FALLBACK, TAIL = range(3)

# Where each row came from, finer than SOURCES (the Run info sheet lists the fallback rows by this).
ROW_ORIGINS = (
    "own data",
    "all segments pooled at this MOB",
    "own data at the nearest MOB",
    "all segments pooled at the nearest MOB",
    "own data below min_count",
    "pooled data below min_count",
    "no data: stays in its state",
    "tail: last estimated MOB",
)
OWN, POOLED, OWN_NEAREST, POOLED_NEAREST, OWN_THIN, POOLED_THIN, NO_DATA, TAIL_COPY = range(8)


@dataclass(frozen=True)
class TransitionModel:
    """Estimated transition matrices with their provenance; row (s, m, i) is the distribution of step m -> m+1."""

    transition_matrix: np.ndarray  # (S, M, K, K)
    n_obs: np.ndarray  # (S, M, K) loans observed in state i at m and at m+1
    origin: np.ndarray  # (S, M, K) index into ROW_ORIGINS
    last_estimated_step: np.ndarray  # (S,) last step with own transitions; later steps are the tail
    # (S, M, K) how many loans' worth of evidence row (s, m, i) rests on: the Dirichlet concentration of its
    # posterior (forecast intervals draw rows from Dirichlet(concentration * row)). The specified estimator's is
    # the loans observed in the row it was taken from.
    concentration: np.ndarray

    @property
    def source(self) -> np.ndarray:
        """(S, M, K) index into SOURCES."""
        src = np.where(np.isin(self.origin, (OWN, OWN_THIN)), ESTIMATED, FALLBACK)
        return np.where(self.origin == TAIL_COPY, TAIL, src).astype(np.int8)


def _weights(stats: PanelStats, weighting: str) -> tuple[np.ndarray, np.ndarray]:
    """Numerator (S, M, K, K) and row denominator (S, M, K) of the row estimate for a weighting."""
    if weighting == "count":
        num = stats.trans_count.astype(np.float64)
        return num, num.sum(axis=-1)
    if weighting == "ead":
        return stats.trans_ead_from, stats.trans_ead_from.sum(axis=-1)
    # "balance": dollar roll rates, EAD arriving at m+1 over EAD leaving at m.
    return stats.trans_ead_to, stats.trans_ead_from.sum(axis=-1)


def _row_estimate(num: np.ndarray, den: np.ndarray, count: np.ndarray) -> np.ndarray:
    """num / den per row; rows whose weights are all zero (e.g. zero balances) fall back to loan counts."""
    count_den = count.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        by_weight = num / den[..., None]
        by_count = count / count_den[..., None]
    # A denormal denominator can overflow the ratio; such a row has no usable weight either.
    usable = (den > 0) & np.isfinite(by_weight).all(axis=-1)
    return np.where(usable[..., None], by_weight, by_count)


def _nearest(valid: np.ndarray) -> np.ndarray:
    """For each position along axis 1, the index of the nearest valid one (ties: the earlier), -1 if none."""
    n = valid.shape[1]
    shape = [1] * valid.ndim
    shape[1] = n
    idx = np.arange(n).reshape(shape)
    prev = np.maximum.accumulate(np.where(valid, idx, -1), axis=1)
    nxt = np.flip(np.minimum.accumulate(np.flip(np.where(valid, idx, n), axis=1), axis=1), axis=1)
    use_prev = (prev >= 0) & ((nxt == n) | (idx - prev <= nxt - idx))
    return np.where(use_prev, prev, np.where(nxt < n, nxt, -1))


def estimate_transition_matrices(stats: PanelStats, config: Config) -> TransitionModel:
    """Transition matrices (S, M, K, K) by the configured weighting, min_count fallback and tail rule."""
    states = list(stats.states)
    absorbing = np.isin(states, config.buckets.absorbing)
    n_seg, n_steps, n_states = stats.trans_count.shape[:3]
    weighting = config.transitions.weighting
    threshold = max(config.transitions.min_count, 1)

    num, den = _weights(stats, weighting)
    count = stats.trans_count
    n_obs = count.sum(axis=-1)  # (S, M, K)
    own = _row_estimate(num, den, count)
    pooled_n = n_obs.sum(axis=0)  # (M, K)
    pooled = _row_estimate(num.sum(axis=0), den.sum(axis=0), count.sum(axis=0))  # (M, K, K)

    transient_n = np.where(absorbing, 0, n_obs).sum(axis=-1)  # (S, M)
    has_steps = transient_n > 0
    pooled_last = int(np.flatnonzero(has_steps.any(axis=0))[-1]) if has_steps.any() else -1
    if pooled_last < 0:
        raise PanelError("panel", ["no loan is observed at two consecutive MOBs in a non-absorbing state, so no "
                                   "transition can be estimated"])
    own_last = np.where(has_steps.any(axis=1), n_steps - 1 - np.argmax(has_steps[:, ::-1], axis=1), -1)
    last_step = np.where(own_last >= 0, own_last, pooled_last)

    step_idx = np.arange(n_steps)[None, :, None]
    i_idx = np.arange(n_states)[None, None, :]
    pooled_b = np.broadcast_to(pooled, own.shape)
    pooled_nb = np.broadcast_to(pooled_n, n_obs.shape)

    origin = np.full(n_obs.shape, NO_DATA, dtype=np.int8)
    matrix = np.broadcast_to(np.eye(n_states), own.shape).copy()
    candidates: list[tuple[np.ndarray, np.ndarray, int]] = [(n_obs >= threshold, own, OWN)]
    if config.transitions.fallback == "pooled":
        own_near = _nearest(n_obs >= threshold)  # (S, M, K)
        pooled_near = _nearest(np.broadcast_to(pooled_n >= threshold, n_obs.shape))
        s_idx = np.arange(n_seg)[:, None, None]
        candidates += [
            (pooled_nb >= threshold, pooled_b, POOLED),
            (own_near >= 0, own[s_idx, np.maximum(own_near, 0), i_idx], OWN_NEAREST),
            (pooled_near >= 0, pooled[np.maximum(pooled_near, 0), i_idx], POOLED_NEAREST),
            (n_obs > 0, own, OWN_THIN),
            (pooled_nb > 0, pooled_b, POOLED_THIN),
        ]
    else:
        candidates += [(n_obs > 0, own, OWN_THIN)]
    # Earlier candidates win: fill from the last to the first.
    for ok, rows, code in reversed(candidates):
        matrix = np.where(ok[..., None], rows, matrix)
        origin = np.where(ok, code, origin).astype(np.int8)

    matrix[:, :, absorbing, :] = np.eye(n_states)[absorbing]
    origin[:, :, absorbing] = OWN
    source_n = {OWN: n_obs, OWN_THIN: n_obs, POOLED: pooled_nb, POOLED_THIN: pooled_nb}
    concentration = np.zeros(n_obs.shape)
    for code, n in source_n.items():
        concentration = np.where(origin == code, n, concentration)
    if config.transitions.fallback == "pooled":
        concentration = np.where(origin == OWN_NEAREST, n_obs[s_idx, np.maximum(own_near, 0), i_idx], concentration)
        concentration = np.where(origin == POOLED_NEAREST, pooled_n[np.maximum(pooled_near, 0), i_idx],
                                 concentration)

    # The tail: steps after a segment's last estimated step reuse that step's matrix.
    tail = step_idx[..., 0] > last_step[:, None]  # (S, M)
    last_matrix = matrix[np.arange(n_seg), np.minimum(last_step, n_steps - 1)]  # (S, K, K)
    matrix = np.where(tail[..., None, None], last_matrix[:, None], matrix)
    last_conc = concentration[np.arange(n_seg), np.minimum(last_step, n_steps - 1)]  # (S, K)
    concentration = np.where(tail[..., None], last_conc[:, None], concentration)
    origin = np.where(tail[..., None], TAIL_COPY, origin).astype(np.int8)

    thin = np.isin(origin, (OWN_THIN, POOLED_THIN, NO_DATA)) & ~absorbing
    if thin.any():
        log.warning("%d transition rows rest on fewer than min_count=%d loans", int(thin.sum()), threshold)
    return TransitionModel(
        transition_matrix=matrix,
        n_obs=n_obs,
        origin=origin,
        last_estimated_step=last_step,
        concentration=concentration.astype(np.float64),
    )


def fallback_summary(model: TransitionModel, segments: tuple[str, ...], states: tuple[str, ...],
                     absorbing: tuple[str, ...]) -> list[str]:
    """Readable lines on the rows that did not come from the segment's own data (for Run info / warnings)."""
    lines = []
    transient = ~np.isin(states, absorbing)
    for s, segment in enumerate(segments):
        last = int(model.last_estimated_step[s])
        origin = model.origin[s, : last + 1][:, transient]
        counts = {ROW_ORIGINS[o]: int((origin == o).sum()) for o in range(len(ROW_ORIGINS)) if o != OWN}
        used = {k: v for k, v in counts.items() if v}
        if used:
            detail = ", ".join(f"{v} from {k}" for k, v in used.items())
            lines.append(f"segment {segment!r}: of {origin.size} transition rows up to MOB step {last}, {detail}")
        if last + 1 < model.origin.shape[1]:
            lines.append(f"segment {segment!r}: MOB steps {last + 1}..{model.origin.shape[1] - 1} reuse the "
                         f"matrix of step {last} (tail)")
    return lines
