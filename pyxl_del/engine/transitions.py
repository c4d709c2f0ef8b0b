"""Stage 2 — transitions: transition matrices per segment and MOB step from the panel's sufficient statistics.

P[s, m] is the step m -> m+1 for segment s, shape (S, M, K, K). Two estimators ([transitions] estimator):
"specified" takes a row from its own loans and falls back to pooled or neighbouring data below min_count;
"bayes" shrinks every row toward a prior from neighbouring MOBs, other segments and the segment's other MOBs,
with an empirical-Bayes strength. Both weight transitions by reporting month when asked (half_life, window) and
fill the steps after a segment's data with its last tail_window steps. docs/methodology.md §2 has the rules.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from pyxl_del.engine.config import Config
from pyxl_del.engine.data import PanelStats
from pyxl_del.engine.errors import PanelError, agree, counted

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
    "own data shrunk toward its prior",
    "no own data: its prior",
    "tail: last estimated MOBs pooled",
    "no data anywhere: half cures, half stays",
)
(OWN, POOLED, OWN_NEAREST, POOLED_NEAREST, OWN_THIN, POOLED_THIN, NO_DATA, TAIL_COPY, SHRUNK, PRIOR,
 TAIL_POOLED, NEUTRAL) = range(12)
# The bayes estimator's prior is a mixture of these rows, each left-one-out (none contains the row itself).
PRIOR_PARTS = ("neighbouring MOBs", "other segments at the MOB", "the segment over all MOBs",
               "every segment over all MOBs")
# Neighbouring MOBs: steps m +- d for d = 1..3, weighted 1, 1/2, 1/4 (smooths the rows across MOB).
NEIGHBOUR_WEIGHTS = (1.0, 0.5, 0.25)
AUTO_STRENGTH_BOUNDS = (0.1, 1e7)  # loans; the empirical-Bayes strength is searched in this range


@dataclass(frozen=True)
class TransitionModel:
    """Estimated transition matrices with their provenance; row (s, m, i) is the distribution of step m -> m+1."""

    transition_matrix: np.ndarray  # (S, M, K, K)
    n_obs: np.ndarray  # (S, M, K) loans observed in state i at m and at m+1
    origin: np.ndarray  # (S, M, K) index into ROW_ORIGINS
    # (S,) the last estimated step; later steps are the tail. A segment without a transition of its own (a product
    # launched last month) takes the pooled chain to the book's last step with data.
    last_estimated_step: np.ndarray
    # (S, M, K) how many loans' worth of evidence row (s, m, i) rests on: the Dirichlet concentration of its
    # posterior (forecast intervals draw rows from Dirichlet(concentration * row)). The specified estimator's is
    # the loans observed in the row it was taken from.
    concentration: np.ndarray
    tail_steps: np.ndarray  # (S, K) how many of the last estimated steps each tail row pools (`tail_steps`)
    # (S,) MOB steps with the segment's own transitions: what its chain rests on (0 for a segment borrowing it all)
    steps_of_data: np.ndarray
    estimator: str = "specified"
    # bayes: (K,) the prior strength in loans per from-state (NaN: absorbing or no data) and (K, 3) the weights of
    # PRIOR_PARTS in each from-state's prior.
    prior_strength: np.ndarray | None = None
    prior_weights: np.ndarray | None = None
    tail_window: int | str = 1  # [transitions] tail_window: a number of steps or "auto"

    @property
    def source(self) -> np.ndarray:
        """(S, M, K) index into SOURCES."""
        src = np.where(np.isin(self.origin, (OWN, OWN_THIN, SHRUNK)), ESTIMATED, FALLBACK)
        return np.where(np.isin(self.origin, (TAIL_COPY, TAIL_POOLED)), TAIL, src).astype(np.int8)


def _reporting_months(stats: PanelStats) -> np.ndarray:
    """(C, M) the month step m of cohort c is reported in: cohorts[c] + m + 1 (it arrives at MOB m + 1)."""
    return stats.cohorts[:, None] + np.arange(1, stats.n_loans.shape[2])[None, :]


def months_with_moves(stats: PanelStats, live: np.ndarray | None = None) -> np.ndarray:
    """The reporting months, ascending, that report a transition out of a ``live`` state (K,) (default: any)."""
    moves = stats.cohort_trans_count if live is None else stats.cohort_trans_count[..., live, :]
    return np.unique(_reporting_months(stats)[moves.sum(axis=(0, 3, 4)) > 0])


def calendar_weights(stats: PanelStats, half_life: float, window: int,
                     live: np.ndarray | None = None) -> np.ndarray | None:
    """(C, M) weight of step m of cohort c by its reporting month cohorts[c] + m + 1: 0.5 ** (months back /
    half_life) from the newest month a transition out of a ``live`` state (K,) is reported in (default: any
    state), 0 outside the last ``window`` months that report such transitions. None when both are off (every
    transition counts 1, as specified).

    Counted from the data's transitions, not the calendar: a panel joining quarters of several eras has years
    without a transition, and at the first month of a new quarter the newest transitions are the previous era's
    (a calendar window would hold none, and no chain could be estimated)."""
    if half_life <= 0 and window <= 0:
        return None
    arrives = _reporting_months(stats)
    reported = months_with_moves(stats, live)
    if not len(reported):
        return np.ones(arrives.shape)
    # A step reported after the newest move (a write-off row staying written off) is as recent as it: weight 1,
    # not 0.5 ** (negative), which overflows for a short half-life and makes 0 * inf = NaN in the sums.
    back = np.maximum(reported[-1] - arrives, 0)
    weight = 0.5 ** (back / half_life) if half_life > 0 else np.ones(arrives.shape)
    # months with transitions after each step's month (steps without transitions get a weight that never counts)
    later = len(reported) - np.searchsorted(reported, arrives, side="right")
    return np.where((window <= 0) | (later < window), weight, 0.0)


def _sums(stats: PanelStats, config: Config) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(count, EAD at m, EAD at m+1) of the transitions (S, M, K, K), weighted by reporting month if configured."""
    t = config.transitions
    weight = calendar_weights(stats, t.half_life, t.window, ~np.isin(stats.states, config.buckets.absorbing))
    if weight is None:
        return stats.trans_count.astype(np.float64), stats.trans_ead_from, stats.trans_ead_to
    return tuple(np.einsum("scmij,cm->smij", a, weight) for a in
                 (stats.cohort_trans_count, stats.cohort_trans_ead_from, stats.cohort_trans_ead_to))


def _weights(count: np.ndarray, ead_from: np.ndarray, ead_to: np.ndarray,
             weighting: str) -> tuple[np.ndarray, np.ndarray]:
    """Numerator (S, M, K, K) and row denominator (S, M, K) of the row estimate for a weighting."""
    if weighting == "count":
        return count, count.sum(axis=-1)
    if weighting == "ead":
        return ead_from, ead_from.sum(axis=-1)
    # "balance": dollar roll rates, EAD arriving at m+1 over EAD leaving at m.
    return ead_to, ead_from.sum(axis=-1)


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


def _specified(own: np.ndarray, num: np.ndarray, den: np.ndarray, count: np.ndarray, n_eff: np.ndarray,
               config: Config) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(matrix, origin, concentration) of the specified estimator: own rows with >= min_count loans, else the
    fallback chain of docs/methodology.md; a row with no data anywhere stays in its state."""
    n_seg, _, n_states = n_eff.shape
    threshold = max(config.transitions.min_count, 1)
    pooled_n = n_eff.sum(axis=0)  # (M, K)
    pooled = _row_estimate(num.sum(axis=0), den.sum(axis=0), count.sum(axis=0))  # (M, K, K)
    i_idx = np.arange(n_states)[None, None, :]
    pooled_b = np.broadcast_to(pooled, own.shape)
    pooled_nb = np.broadcast_to(pooled_n, n_eff.shape)

    origin = np.full(n_eff.shape, NO_DATA, dtype=np.int8)
    matrix = np.broadcast_to(np.eye(n_states), own.shape).copy()
    concentration = np.zeros(n_eff.shape)
    candidates: list[tuple[np.ndarray, np.ndarray, int, np.ndarray]] = [(n_eff >= threshold, own, OWN, n_eff)]
    if config.transitions.fallback == "pooled":
        own_near = _nearest(n_eff >= threshold)  # (S, M, K)
        pooled_near = _nearest(np.broadcast_to(pooled_n >= threshold, n_eff.shape))
        s_idx = np.arange(n_seg)[:, None, None]
        own_at, pooled_at = np.maximum(own_near, 0), np.maximum(pooled_near, 0)
        candidates += [
            (pooled_nb >= threshold, pooled_b, POOLED, pooled_nb),
            (own_near >= 0, own[s_idx, own_at, i_idx], OWN_NEAREST, n_eff[s_idx, own_at, i_idx]),
            (pooled_near >= 0, pooled[pooled_at, i_idx], POOLED_NEAREST, pooled_n[pooled_at, i_idx]),
            (n_eff > 0, own, OWN_THIN, n_eff),
            (pooled_nb > 0, pooled_b, POOLED_THIN, pooled_nb),
        ]
    else:
        candidates += [(n_eff > 0, own, OWN_THIN, n_eff)]
    # Earlier candidates win: fill from the last to the first.
    for ok, rows, code, n in reversed(candidates):
        matrix = np.where(ok[..., None], rows, matrix)
        origin = np.where(ok, code, origin).astype(np.int8)
        concentration = np.where(ok, n, concentration)
    return matrix, origin, concentration


def _prior_parts(num: np.ndarray, den: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The PRIOR_PARTS of every row, each leaving the row's own data out: rows (P, S, M, K, K) by the weighting,
    the same by loan count (P, S, M, K, K), where each part has data (P, S, M, K) and its loans (P, S, M, K)."""
    def shift(a: np.ndarray, d: int) -> np.ndarray:  # a[:, m + d] at m, zero outside the MOB range
        out = np.zeros_like(a)
        if d > 0:
            out[:, :-d] = a[:, d:]
        else:
            out[:, -d:] = a[:, :d]
        return out

    def neighbours(a: np.ndarray) -> np.ndarray:
        return sum(w * (shift(a, d) + shift(a, -d)) for d, w in enumerate(NEIGHBOUR_WEIGHTS, start=1))

    parts = []
    for a in (num, den, count):
        parts.append([neighbours(a), np.maximum(a.sum(axis=0, keepdims=True) - a, 0.0),
                      np.maximum(a.sum(axis=1, keepdims=True) - a, 0.0),
                      np.maximum(a.sum(axis=(0, 1), keepdims=True) - a, 0.0)])
    rows = np.stack([_row_estimate(n, d, c) for n, d, c in zip(*parts, strict=True)])
    count_parts = np.stack(parts[2])
    n_part = count_parts.sum(axis=-1)
    # Left-one-out sums are differences: a part "has data" above the rounding of the totals it came from.
    has = n_part > 1e-9 * np.maximum(count.sum(axis=(0, 1, 3)), 1.0)[None, None, None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        by_count = np.where(has[..., None], count_parts / n_part[..., None], 0.0)
    return np.where(has[..., None], rows, 0.0), by_count, has, np.where(has, n_part, 0.0)


def _mix(parts: np.ndarray, has: np.ndarray, weights: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """The prior rows (..., K): the parts (P, ..., K) mixed by ``weights`` (P, ...) over those with data,
    ``fallback`` (..., K) where none has."""
    w = weights * has
    total = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mixed = (w[..., None] * parts).sum(axis=0) / total[..., None]
    return np.where((total > 0)[..., None], mixed, fallback)


def _log_marginal(x: np.ndarray, n: np.ndarray, alpha_mean: np.ndarray, strength: float
                  ) -> tuple[float, float, np.ndarray]:
    """Dirichlet-multinomial log marginal likelihood of count rows x (R, K) under Dirichlet(strength * mean), and
    its derivatives in the strength and in each entry of the mean (R, K): the optimiser's gradient, analytic, as
    finite differences cost it four likelihoods a step (tests/engine/test_transitions_bayes.py)."""
    # Imported here, as minimize below: a command imports scipy only when it fits the Bayes estimator.
    from scipy.special import digamma, gammaln

    a = strength * alpha_mean
    support = alpha_mean > 0
    safe = np.where(support, a, 1.0)
    terms = np.where(support, gammaln(x + safe) - gammaln(safe), 0.0)
    by_entry = np.where(support, digamma(x + safe) - digamma(safe), 0.0)
    value = float((gammaln(strength) - gammaln(n + strength)).sum() + terms.sum())
    d_strength = float((digamma(strength) - digamma(n + strength)).sum() + (alpha_mean * by_entry).sum())
    return value, d_strength, strength * by_entry


def _unpack(theta: np.ndarray, strength: float | None) -> tuple[float, np.ndarray]:
    """(strength, mixture weights (P,)) of the optimiser's variables: log strength, then the weights' softmax
    logits after the first (fixed at 0)."""
    z = np.concatenate([[0.0], theta[1:]])
    w = np.exp(z - z.max())
    return (float(np.exp(theta[0])) if strength is None else strength), w / w.sum()


def _prior_loss(theta: np.ndarray, x: np.ndarray, parts: np.ndarray, has: np.ndarray, top: np.ndarray,
                strength: float | None) -> tuple[float, np.ndarray]:
    """The negative log marginal likelihood of `_fit_prior` and its gradient in ``theta`` (`_unpack`)."""
    a, w = _unpack(theta, strength)
    mix = _mix(parts, has, w[:, None], top[None, :])
    value, d_strength, d_mean = _log_marginal(x, x.sum(axis=-1), 0.999 * mix + 0.001 * top, a)
    # The mixture's derivative in each weight: has * (part - mix) / total, on the rows some part has.
    total = (w[:, None] * has).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(total > 0, 0.999 / total, 0.0)
    d_w = np.einsum("rk,prk->p", d_mean * scale[:, None], np.where(has[..., None], parts - mix[None], 0.0))
    # Through the softmax, w_j (d_w_j - w . d_w), where w . d_w = 0: scaling every weight alike keeps the mixture.
    d_z = w * d_w
    return -value, -np.concatenate([[a * d_strength if strength is None else 0.0], d_z[1:]])


def _fit_prior(x: np.ndarray, parts: np.ndarray, has: np.ndarray, top: np.ndarray,
               strength: float | None) -> tuple[float, np.ndarray]:
    """Empirical Bayes for one from-state: the mixture weights of the parts (P,) and, when ``strength`` is None,
    the strength maximising the Dirichlet-multinomial marginal likelihood of the rows' loan counts x (R, K).

    parts (P, R, K) by count, has (P, R), top (K,) the state's row over all the data: mixed in at 1e-3 so that a
    move the left-one-out prior has never seen lowers the likelihood instead of zeroing it.
    """
    from scipy.optimize import minimize

    n_parts = parts.shape[0]
    lo, hi = np.log(AUTO_STRENGTH_BOUNDS)
    if strength is None:  # a coarse grid first: the likelihood in the strength can be flat over decades
        grid = np.linspace(lo, hi, 12)
        start = grid[int(np.argmin([_prior_loss(np.concatenate([[g], np.zeros(n_parts - 1)]), x, parts, has, top,
                                                None)[0] for g in grid]))]
    elif strength == 0:
        return 0.0, np.full(n_parts, 1.0 / n_parts)
    else:
        start = 0.0
    bounds = [(lo, hi) if strength is None else (start, start)] + [(-20.0, 20.0)] * (n_parts - 1)
    best = minimize(_prior_loss, np.concatenate([[start], np.zeros(n_parts - 1)]), (x, parts, has, top, strength),
                    jac=True, method="L-BFGS-B", bounds=bounds)
    return _unpack(best.x, strength)


def neutral_rows(absorbing: np.ndarray) -> np.ndarray:
    """(K, K) the prior of a from-state no loan of the panel has left: half cures (to the first state), half stays.
    Neither an invented absorbing state (a delinquent loan that never cures) nor an invented roll to a worse state
    the data never showed; the first state and absorbing ones stay. Only young books have such a state (the first
    as-of months of an agency quarter), where a chain resting on a step or two otherwise piles every delinquent
    loan up for the whole forecast (docs/methodology.md §2)."""
    rows = np.eye(len(absorbing))
    live = np.flatnonzero(~absorbing)[1:]
    rows[live] = 0.5 * rows[live] + 0.5 * np.eye(len(absorbing))[0]
    return rows


def _bayes(own: np.ndarray, num: np.ndarray, den: np.ndarray, count: np.ndarray, loans: np.ndarray,
           absorbing: np.ndarray, strength: float | None, stay: float, neutral: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(matrix, origin, concentration, strength (K,), weights (K, P)) of the bayes estimator: each row is the
    posterior mean (n * own + a * prior) / (n + a) of its own n (calendar-weighted) loans and its prior of
    strength a. ``loans`` are the loan counts without calendar weights: the strength and mix are fitted on them
    (a likelihood of fractional counts is flat enough to let any strength fit), in loans. The prior leans toward
    "stays in its state" with the weight of ``stay`` loans against the loans it rests on. A from-state no loan
    has left takes the ``neutral`` row (`neutral_rows`)."""
    n_eff = count.sum(axis=-1)
    n_states = n_eff.shape[-1]
    parts, loan_parts, has, n_part = _prior_parts(num, den, count)
    loan_has = has
    if loans is not count:  # calendar weights: the strength and mix are fitted on the unweighted loans
        _, loan_parts, loan_has, _ = _prior_parts(loans, loans.sum(axis=-1), loans)
    top_count = count.sum(axis=(0, 1))  # (K, K) every segment and MOB: the prior of a row no part covers
    top = _row_estimate(num.sum(axis=(0, 1)), den.sum(axis=(0, 1)), top_count)
    top_loans = loans.sum(axis=(0, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        top_by_count = np.nan_to_num(top_loans / top_loans.sum(axis=-1, keepdims=True))
    strengths = np.full(n_states, np.nan)
    weights = np.full((n_states, len(PRIOR_PARTS)), np.nan)
    for i in np.flatnonzero(~absorbing & (top_count.sum(axis=-1) > 0)):
        rows = loans[..., i, :].sum(axis=-1) > 0
        strengths[i], weights[i] = _fit_prior(loans[..., i, :][rows], loan_parts[:, rows, i], loan_has[:, rows, i],
                                              top_by_count[i], strength)
    a = np.nan_to_num(strengths)  # (K,)
    w = np.nan_to_num(weights).T[:, None, None, :]  # (P, 1, 1, K)
    no_data = top_count.sum(axis=-1) == 0
    fallback = np.where(no_data[:, None], neutral, top)
    w = np.broadcast_to(w, has.shape)
    prior = _mix(parts, has, w, np.broadcast_to(fallback, own.shape))
    if stay > 0:
        # The loans the prior rests on (its parts' loans, mixed as the rows are): a prior resting on one loan is
        # no surer of it than of staying put, one resting on thousands hardly moves.
        behind = _mix(n_part[..., None], has, w, np.broadcast_to(top_count.sum(axis=-1)[:, None], has.shape[1:] + (1,)))
        # The neutral row of a state nobody left already weighs staying.
        prior = np.where(no_data[:, None], prior, (behind * prior + stay * np.eye(n_states)) / (behind + stay))
    with np.errstate(invalid="ignore", divide="ignore"):
        # own + a / (n + a) * (prior - own) = (n * own + a * prior) / (n + a), exactly own at a = 0.
        posterior = own + (a / (n_eff + a))[..., None] * (prior - own)
    matrix = np.where((n_eff > 0)[..., None], posterior, prior)
    origin = np.where(n_eff > 0, SHRUNK, np.where(no_data, NEUTRAL, PRIOR)).astype(np.int8)
    return matrix, origin, n_eff + a, strengths, weights


def tail_steps(n_obs: np.ndarray, last_step: np.ndarray, window: int | str, min_loans: int) -> np.ndarray:
    """(S, K) how many of a segment's last estimated steps each tail row pools: ``window``, or with "auto" the
    fewest, counted back from the last, whose rows of that from-state hold ``min_loans`` loans (``n_obs`` (S, M,
    K)); all the estimated steps where even they hold fewer."""
    n_seg, n_steps, n_states = n_obs.shape
    if window != "auto":
        return np.full((n_seg, n_states), int(window))
    back = last_step[:, None] - np.arange(n_steps)[None, :]  # (S, M): 0 at the last estimated step
    s_idx, m_idx = np.nonzero(back >= 0)
    loans_back = np.zeros(n_obs.shape)  # (S, B, K): the loans b steps before the last estimated one
    loans_back[s_idx, back[s_idx, m_idx]] = n_obs[s_idx, m_idx]
    enough = np.cumsum(loans_back, axis=1) >= max(min_loans, 1)
    return np.where(enough.any(axis=1), np.argmax(enough, axis=1) + 1, last_step[:, None] + 1)


def _pooled(last_step: np.ndarray, steps: np.ndarray, n_steps: int) -> np.ndarray:
    """(S, M, K) whether step m is among the last ``steps`` (S, K) estimated steps (up to ``last_step`` (S,)) that
    the tail row of from-state k pools."""
    back = last_step[:, None] - np.arange(n_steps)[None, :]  # (S, M): 0 at the last estimated step
    return (back >= 0)[..., None] & (back[..., None] < steps[:, None, :])


def _tail(matrix: np.ndarray, concentration: np.ndarray, last_step: np.ndarray,
          steps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(matrix, concentration, tail mask (S, M)): steps after a segment's last estimated step take, row by row, its
    last ``steps`` (S, K) estimated steps pooled, each weighted by its concentration (equal weights where all are
    0)."""
    tail = np.arange(matrix.shape[1])[None, :] > last_step[:, None]  # (S, M)
    pooled = _pooled(last_step, steps, matrix.shape[1])
    c = np.where(pooled, concentration, 0.0)
    total = c.sum(axis=1, keepdims=True)
    w = np.where(total > 0, c / np.where(total > 0, total, 1.0), pooled / pooled.sum(axis=1, keepdims=True))
    tail_matrix = np.einsum("smi,smij->sij", w, matrix)
    matrix = np.where(tail[..., None, None], tail_matrix[:, None], matrix)
    concentration = np.where(tail[..., None], total, concentration)
    return matrix, concentration, tail


def estimate_transition_matrices(stats: PanelStats, config: Config) -> TransitionModel:
    """Transition matrices (S, M, K, K) by the configured estimator, weighting, calendar weights and tail rule."""
    t = config.transitions
    states = list(stats.states)
    absorbing = np.isin(states, config.buckets.absorbing)
    n_steps, n_states = stats.trans_count.shape[1:3]

    count, ead_from, ead_to = _sums(stats, config)
    num, den = _weights(count, ead_from, ead_to, t.weighting)
    n_obs = stats.trans_count.sum(axis=-1)  # (S, M, K) loans, whatever their calendar weight
    n_eff = count.sum(axis=-1)  # the same weighted by reporting month: the rows' evidence
    own = _row_estimate(num, den, count)

    has_steps = np.where(absorbing, 0, n_eff).sum(axis=-1) > 0  # (S, M)
    if not has_steps.any():
        raise PanelError("panel", ["no loan is observed at two consecutive MOBs in a non-absorbing state, so no "
                                   "transition can be estimated"])
    pooled_last = int(np.flatnonzero(has_steps.any(axis=0))[-1])
    own_last = np.where(has_steps.any(axis=1), n_steps - 1 - np.argmax(has_steps[:, ::-1], axis=1), -1)
    last_step = np.where(own_last >= 0, own_last, pooled_last)

    strengths = weights = None
    if t.estimator == "bayes":
        fixed = None if t.prior_strength == "auto" else float(t.prior_strength)
        loans = count if t.half_life <= 0 and t.window <= 0 else stats.trans_count.astype(np.float64)
        matrix, origin, concentration, strengths, weights = _bayes(own, num, den, count, loans, absorbing, fixed,
                                                                   t.prior_stay, neutral_rows(absorbing))
    else:
        matrix, origin, concentration = _specified(own, num, den, count, n_eff, config)
    matrix[:, :, absorbing, :] = np.eye(n_states)[absorbing]
    origin[:, :, absorbing] = OWN
    concentration[:, :, absorbing] = n_eff[:, :, absorbing]

    steps = tail_steps(n_obs, last_step, t.tail_window, t.min_count)
    matrix, concentration, tail = _tail(matrix, concentration, last_step, steps)
    matrix[:, :, absorbing, :] = np.eye(n_states)[absorbing]  # pooling identities can leave a last-bit 1 + 2e-16
    origin = np.where(tail[..., None], np.where(steps[:, None, :] == 1, TAIL_COPY, TAIL_POOLED), origin).astype(np.int8)

    threshold = max(t.min_count, 1)
    thin = np.isin(origin, (OWN_THIN, POOLED_THIN, NO_DATA)) & ~absorbing
    if thin.any() and t.estimator == "specified":  # the bayes estimator has no min_count switch
        n_thin = int(thin.sum())
        log.warning("%s %s on fewer than min_count=%d loans", counted(n_thin, "transition row"),
                    agree(n_thin, "rests", "rest"), threshold)
    return TransitionModel(
        transition_matrix=matrix,
        n_obs=n_obs,
        origin=origin,
        last_estimated_step=last_step,
        steps_of_data=own_last + 1,
        concentration=concentration.astype(np.float64),
        estimator=t.estimator,
        prior_strength=strengths,
        prior_weights=weights,
        tail_window=t.tail_window,
        tail_steps=steps,
    )


def _tail_loans(model: TransitionModel, s: int, transient: np.ndarray) -> np.ndarray:
    """(K,) the loans behind segment s's tail rows over the steps each pools, -1 for states it never uses."""
    pooled = _pooled(model.last_estimated_step[s:s + 1], model.tail_steps[s:s + 1], model.n_obs.shape[1])[0]
    loans = np.where(pooled, model.n_obs[s], 0).sum(axis=0)
    return np.where(transient & (model.n_obs[s].sum(axis=0) > 0), loans, -1)


def _tail_text(model: TransitionModel, s: int, states: tuple[str, ...], used: np.ndarray) -> str:
    """Which of segment s's steps its tail rows reuse: the last, the last N pooled, or (auto) each used state's
    number of steps."""
    last = int(model.last_estimated_step[s])
    steps = model.tail_steps[s][used]
    # No used row (a segment whose loans have not moved yet): the tail is the segment's step, whatever its window.
    if model.tail_window != "auto" or np.unique(steps).size <= 1:
        first = max(last - int(steps[0]) + 1, 0) if len(steps) else last
        return f"step {last}" if first == last else f"steps {first}..{last} pooled"
    return ("its last estimated steps pooled back to min_count loans a row ("
            + ", ".join(f"{states[i]} {int(model.tail_steps[s, i])}" for i in np.flatnonzero(used))
            + " steps)")


def _strength_text(strength: float) -> str:
    """A prior strength for people. At the top of the search range the number is the range's end, not an
    estimate (a book of a few hundred loans reading "10,000,000 loans" looks absurd): say what it means."""
    if strength >= AUTO_STRENGTH_BOUNDS[1] * 0.99:
        return "at the search's cap (its rows differ from their prior by no more than noise: each row is its prior)"
    return f"{strength:,.0f} loans" if strength >= 1 else f"{strength:.2g} loans"


def fallback_summary(model: TransitionModel, segments: tuple[str, ...], states: tuple[str, ...],
                     absorbing: tuple[str, ...], min_count: int = 0, present: np.ndarray | None = None) -> list[str]:
    """Readable lines on the rows that did not come from the segment's own data alone, the bayes prior and the
    tail (for Run info / warnings); a tail row resting on fewer than ``min_count`` loans is named. ``present``
    (K,): the states some row of the panel is in; the rows of the others (a 1-29 days state of a book that counts
    whole months past due) are said once, not counted as rows without data in every segment."""
    lines = []
    transient = ~np.isin(states, absorbing)
    if present is not None and (missing := [states[k] for k in np.flatnonzero(~present & transient)]):
        lines.append(f"{agree(len(missing), 'state', 'states')} {', '.join(missing)} of [buckets] order "
                     f"{agree(len(missing), 'occurs', 'occur')} in no row of the data: "
                     f"{agree(len(missing), 'its', 'their')} transition rows are a default, which no loan takes "
                     f"(a book that counts whole months past due has no 1-29 days state: leaving "
                     f"{agree(len(missing), 'it', 'them')} out of [buckets] order gives the same forecast)")
        transient &= present
    if model.prior_strength is not None:
        fitted = [(states[i], model.prior_strength[i], model.prior_weights[i]) for i in np.flatnonzero(transient)
                  if np.isfinite(model.prior_strength[i])]
        detail = "; ".join(f"{name} {_strength_text(a)} ("
                           + ", ".join(f"{p} {w:.0%}" for p, w in zip(PRIOR_PARTS, weights, strict=True)) + ")"
                           for name, a, weights in fitted)
        lines.append(f"transitions: estimator \"bayes\", every row shrunk toward its prior; prior strength and "
                     f"mix by from-state: {detail}")
    for s, segment in enumerate(segments):
        last = int(model.last_estimated_step[s])
        origin = model.origin[s, : last + 1][:, transient]
        counts = {ROW_ORIGINS[o]: int((origin == o).sum()) for o in range(len(ROW_ORIGINS)) if o not in (OWN, SHRUNK)}
        used = {k: v for k, v in counts.items() if v}
        if used:
            detail = ", ".join(f"{v} from {k}" for k, v in used.items())
            lines.append(f"segment {segment!r}: of {origin.size} transition rows up to MOB step {last}, {detail}")
        if last + 1 < model.origin.shape[1]:
            loans = _tail_loans(model, s, transient)
            pooled = _tail_text(model, s, states, loans >= 0)
            lines.append(f"segment {segment!r}: MOB steps {last + 1}..{model.origin.shape[1] - 1} reuse the "
                         f"matrix of {pooled} (tail)")
            thin = [f"{states[i]} {int(loans[i])}" for i in np.flatnonzero((loans >= 0) & (loans < min_count))]
            if thin:
                advice = ("its estimated steps hold no more" if model.tail_window == "auto" else
                          f"raise [transitions] tail_window (now {model.tail_window}) to pool more steps")
                lines.append(f"segment {segment!r}: the tail rests on fewer than min_count={min_count} loans in "
                             f"rows {', '.join(thin)} (loans over {pooled}); "
                             f"{advice}")
    return lines
