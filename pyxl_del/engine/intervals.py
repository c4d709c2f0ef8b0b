"""Forecast distributions: quantiles (P10 / P50 / P90 by default) of every forecast DEL cell.

The report's forecast is the chain's expected path. Around it, this module simulates ``interval_draws`` paths of
each cohort from its last actual state, with the sources of uncertainty the chain knows about:

* process noise: the cohort's live loans at its last actual MOB (not in an absorbing state) move as a multinomial
  per step; each carries the average balance of the live loans then (the chain moves balances, so its expected
  path is the mean of these paths). Unequal balances make a DEL move as fewer loans would: the paths move
  Kish's effective number of loans, (sum EAD)^2 / sum EAD^2 of the live ones (`PanelStats.ead_sq`);
* parameter uncertainty: each draw takes every transient transition row (s, m, i) from its posterior
  Dirichlet(concentration * row) (TransitionModel.concentration: the loans' worth of evidence behind the row).
  Rows with concentration 0 or infinite, and absorbing rows, are fixed. A row equal to the previous step's (the
  tail, a copied nearest-MOB row) rests on the same evidence, so it reuses that step's draw. With cohort factors
  each cohort's rows are its segment's drawn rows scaled by its factor (`CohortFactors.scale`'s rule), as the
  expected path scales the segment's matrices;
* the cohort factor's own uncertainty: where the credibility model gives it (`CohortFactors.spread`, the log-sd of
  the cohort's true factor), each draw takes the cohort's factor times a lognormal of mean 1, once for all its steps.

A cell observed inside a cohort's history resets its paths to the actual state, as the expected path does (a gap
is bridged from the month before). Vectorised over draws x cohorts; the loop is over MOB only.

A cohort-segment with at least ``moment_loans`` live loans at its restart does not move loan by loan: its process
noise is that of a sum of many independent loans, normal to good accuracy (the central limit theorem). Its paths
carry, per draw, the expected loans per state under that draw's rows (the parameter uncertainty, exact) and add
normal noise with the multinomial chain's exact covariance (propagated under the applied rows,
``P' Sigma P + sum_i mu_i (diag p_i - p_i p_i')``). Thin cohorts, whose DEL is skewed (usually no move, sometimes a
jump: the median the backtest scores), keep the loan-by-loan simulation. The Portfolio's
quantiles are those of the per-draw Portfolio (engine/portfolio.py's aggregation), segments independent.
Modelling notes and backtest evidence: docs/methodology.md.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np

from pyxl_del.engine.calibration import CohortFactors, row_scales, scale_rows
from pyxl_del.engine.config import DEL_TYPES, Config
from pyxl_del.engine.data import PanelStats
from pyxl_del.engine.metrics import del_rates, ead_at_mob0
from pyxl_del.engine.portfolio import ACTUAL_FLAG, aggregate_portfolio, segment_weights

WORKERS = 2  # parts of the cells moved in parallel at each step (a constant: the draws must not depend on the machine)
# Live loans from which a cohort-segment's process noise is taken as normal (module docstring): at 1,000 loans a bad
# count of mean 10 has skewness 0.3, half a loan at P10 / P90; docs/methodology.md 4a compares the quantiles.
MOMENT_LOANS = 1000


@dataclass(frozen=True)
class ForecastIntervals:
    """Quantiles of each DEL cell; actual cells equal the actual, absent cells are NaN."""

    levels: tuple[float, ...]  # ascending, with 0.5
    n_draws: int
    segments: dict[str, np.ndarray]  # DEL type -> (Q, S, C, M+1)
    portfolio: dict[str, np.ndarray]  # DEL type -> (Q, C, M+1)
    # The simulated DEL itself when asked for (the backtest scores the whole distribution): DEL type ->
    # (D, S, C, M+1) and (D, C, M+1).
    segment_draws: dict[str, np.ndarray] | None = None
    portfolio_draws: dict[str, np.ndarray] | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(quantile_column(q) for q in self.levels)


def quantile_column(level: float) -> str:
    """0.1 -> 'p10', 0.5 -> 'p50', 0.025 -> 'p2.5'."""
    return f"p{round(level * 100, 6):g}"


def _tied(matrix: np.ndarray, concentration: np.ndarray) -> np.ndarray:
    """(S, M, K): the row is step m-1's row on the same evidence, so it takes the same posterior draw."""
    same = np.zeros(matrix.shape[:-1], dtype=bool)
    same[:, 1:, :] = (matrix[:, 1:] == matrix[:, :-1]).all(axis=-1) & (concentration[:, 1:] == concentration[:, :-1])
    return same


def _draw_rows(rng: np.random.Generator, rows: np.ndarray, conc: np.ndarray, n_draws: int) -> np.ndarray:
    """(D, *rows.shape) rows drawn from Dirichlet(conc * row); rows with concentration 0 or inf stay as they are."""
    fixed = ~np.isfinite(conc) | (conc <= 0)
    alpha = np.where(fixed, 1.0, conc)[..., None] * rows
    gamma = rng.standard_gamma(np.broadcast_to(alpha, (n_draws, *alpha.shape)))
    total = gamma.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        # A row need not sum to 1 (weighting "balance"): its draws keep its sum.
        drawn = gamma / total * rows.sum(axis=-1, keepdims=True)
    # A row of tiny shapes can underflow to all zeros: it keeps its mean.
    return np.where(fixed[..., None] | (total <= 0), rows, drawn)


def _multinomial(rng: np.random.Generator, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Multinomial counts (N, K) of n (N,) trials with probabilities p (N, K), as binomials column by column.

    Only the rows with trials and the columns with probability are drawn (most states hold few loans, and a
    transition row reaches few states). A row summing to less than 1 (weighting "balance": balance paid down)
    loses the rest of its loans; one summing to more is normalised."""
    out = np.zeros(p.shape, dtype=np.int64)
    busy = np.flatnonzero(n > 0)
    if not len(busy):
        return out
    p = p[busy]
    total = p.sum(axis=-1, keepdims=True)
    p = np.concatenate([p / np.maximum(total, 1.0), np.clip(1.0 - total, 0.0, None)], axis=-1)
    left = n[busy].astype(np.int64)
    reach = np.flatnonzero((p > 0).any(axis=0))
    rest = np.flip(np.cumsum(np.flip(p[:, reach], axis=-1), axis=-1), axis=-1)  # P(column >= j) among reach
    drawn = np.zeros((len(busy), len(reach)), dtype=np.int64)
    for col in range(len(reach) - 1):
        with np.errstate(invalid="ignore", divide="ignore"):
            q = np.clip(np.where(rest[:, col] > 0, p[:, reach[col]] / rest[:, col], 0.0), 0.0, 1.0)
        drawn[:, col] = rng.binomial(left, q)
        left -= drawn[:, col]
    drawn[:, -1] = left
    keep = reach < out.shape[-1]  # the last column is the loans that left
    out[busy[:, None], reach[None, keep]] = drawn[:, keep]
    return out


def _allocate(rng: np.random.Generator, loans: np.ndarray, share: np.ndarray, n_draws: int) -> np.ndarray:
    """(D, A, T) whole loans per state with mean loans * share (systematic rounding; each draw sums to loans)."""
    cum = loans[:, None] * np.cumsum(share, axis=-1)
    cum[:, -1] = loans  # no rounding drift in the total
    u = rng.random((n_draws, len(loans), 1))
    upto = np.floor(cum[None] + u)
    return np.diff(upto, axis=-1, prepend=np.floor(u)).astype(np.int64)


def _move_cells(cells: tuple[np.ndarray, np.ndarray], rng: np.random.Generator, *, counts: np.ndarray,
                drawn: np.ndarray, restarting: np.ndarray, live: np.ndarray, share: np.ndarray,
                cohort: CohortFactors | None, factors: np.ndarray | None, absorbing: np.ndarray) -> np.ndarray:
    """(D, a, K) loans of the rolling cells (segment and cohort indices) after one step: those restarting from an
    actual state are allocated afresh (``restarting``, ``live``, ``share`` at the step), then every live loan moves
    by its draw's row (``drawn`` (D, S, T, K)), scaled by its cohort's factor."""
    s, c = cells
    transient = np.flatnonzero(~absorbing)
    n_draws, k = counts.shape[0], counts.shape[-1]
    source = counts[:, s, c]  # (D, a, K)
    r = np.flatnonzero(restarting[s, c])
    if len(r):
        fresh = np.zeros((n_draws, len(r), k), dtype=np.int64)
        fresh[..., transient] = _allocate(rng, live[s[r], c[r]], share[s[r], c[r]], n_draws)
        source[:, r] = fresh
    p = drawn[:, s]  # (D, a, T, K)
    if cohort is not None:  # only the rows of the cohorts rolling now are scaled
        p = scale_rows(p, factors[:, s, c], cohort.roll_forward[transient], absorbing[transient])
    # Absorbed loans stay; the live ones move, every from-state in one multinomial call.
    arrived = _multinomial(rng, source[..., transient].ravel(), p.reshape(-1, k)).reshape(p.shape)
    return source * absorbing + arrived.sum(axis=-2)


@dataclass
class _Moments:
    """The paths of the cohort-segments moved by their moments: per draw the expected loans per state under the
    draw's rows (D, S, C, K); under the applied rows the expected loans (S, C, K) and their covariance
    (S, C, K, K) from the loans' own (process) noise."""

    mean: np.ndarray
    applied_mean: np.ndarray
    covariance: np.ndarray


def _move_moments(cells: tuple[np.ndarray, np.ndarray], rng: np.random.Generator, moments: _Moments, *,
                  drawn: np.ndarray, applied: np.ndarray, restarting: np.ndarray, live: np.ndarray,
                  share: np.ndarray, cohort: CohortFactors | None, factors: np.ndarray | None, absorbing: np.ndarray,
                  bad: np.ndarray) -> np.ndarray:
    """(3, D, a) loans in each DEL type's bad states of the cells (segment and cohort indices) after one step, moved
    by their moments (updated in place); ``applied`` (S, T, K): the step's applied rows, the rest as `_move_cells`."""
    s, c = cells
    transient = np.flatnonzero(~absorbing)
    k = absorbing.size
    r = np.flatnonzero(restarting[s, c])
    if len(r):  # allocated afresh: the expected loans, no spread yet
        fresh = np.zeros((len(r), k))
        fresh[:, transient] = live[s[r], c[r], None] * share[s[r], c[r]]
        moments.mean[:, s[r], c[r]] = fresh
        moments.applied_mean[s[r], c[r]] = fresh
        moments.covariance[s[r], c[r]] = 0.0
    mean, mu, cov = moments.mean[:, s, c], moments.applied_mean[s, c], moments.covariance[s, c]

    # Per draw only the expected loans move, so a cohort's scaled rows never need to exist: its loans in from-state
    # t split into the share moving by the masked (roll-forward) entries and the share moving by the rest, each
    # times `row_scales`' multiplier, and a row summing to more than 1 moves as normalised (`_multinomial`).
    mask = cohort.roll_forward[transient] if cohort is not None else np.zeros((len(transient), k), dtype=bool)
    masked_part, rest_part = np.where(mask, drawn, 0.0), np.where(mask, 0.0, drawn)  # (D, S, T, K)
    masked_sum, rest_sum = masked_part.sum(axis=-1), rest_part.sum(axis=-1)  # (D, S, T)
    if cohort is not None:
        masked_scale, rest_scale = row_scales(masked_sum[:, s], rest_sum[:, s], factors[:, s, c][..., None],
                                              absorbing[transient])
    else:
        masked_scale = rest_scale = np.ones_like(masked_sum[:, s])
    from_state = mean[..., transient] / np.maximum(masked_sum + rest_sum, 1.0)[:, s]
    weights = np.concatenate([from_state * masked_scale, from_state * rest_scale], axis=-1)  # (D, a, 2T)
    rows = np.concatenate([masked_part, rest_part], axis=-2)  # (D, S, 2T, K)
    moved = np.empty_like(mean)
    for segment in np.unique(s):  # one batched product per segment: an einsum over rows[:, s] was 5x slower
        at = np.flatnonzero(s == segment)
        moved[:, at] = weights[:, at] @ rows[:, segment]
    mean = mean * absorbing + moved

    # The loans' own noise, under the applied rows: Var(x') = E[Var(x' | x)] + Var(E[x' | x]), each state's loans a
    # multinomial, the spread so far moved by the chain.
    p = applied[s] if cohort is None else scale_rows(applied[s], cohort.factor[s, c], mask, absorbing[transient])
    p = p / np.maximum(p.sum(axis=-1, keepdims=True), 1.0)
    step = np.broadcast_to(np.eye(k), cov.shape).copy()  # absorbed loans stay
    step[:, transient] = p
    arrived = np.einsum("at,atk->ak", mu[:, transient], p)
    # Batched 7 x 7 products as matmul: einsum's three-operand loop was 40x slower here.
    cov = (step.transpose(0, 2, 1) @ cov @ step + arrived[:, :, None] * np.eye(k)
           - (p * mu[:, transient, None]).transpose(0, 2, 1) @ p)
    mu = mu * absorbing + arrived
    moments.mean[:, s, c], moments.applied_mean[s, c], moments.covariance[s, c] = mean, mu, cov

    bad_weights = bad.astype(np.float64)
    spread = np.einsum("tk,akl,ul->atu", bad_weights, cov, bad_weights)  # (a, 3, 3) of the bad counts
    value, vector = np.linalg.eigh(spread)
    root = vector * np.sqrt(np.clip(value, 0.0, None))[:, None, :]
    z = rng.standard_normal((mean.shape[0], len(s), len(bad_weights)))
    count = np.einsum("dak,tk->tda", mean, bad_weights) + np.einsum("atu,dau->tda", root, z)
    return np.clip(count, 0.0, mean.sum(axis=-1)[None])


def simulate_intervals(stats: PanelStats, transition_matrix: np.ndarray, concentration: np.ndarray, config: Config,
                       cohort: CohortFactors | None = None, *, keep_draws: bool = False,
                       moment_loans: int = MOMENT_LOANS) -> ForecastIntervals:
    """Quantiles (config [forecast] interval_levels and the median) of every DEL cell from simulated paths.

    ``transition_matrix``: the applied segment matrices (S, M, K, K); ``concentration`` (S, M, K) the posterior
    concentration of each row; ``cohort``: the factors that scale each cohort's rows. ``keep_draws``: also return
    the simulated DEL. ``moment_loans``: live loans from which a cohort-segment moves by its moments.
    """
    settings = config.forecast
    n_draws, levels = settings.interval_draws, settings.quantile_levels
    # Separate streams for the rows and the loans, so the loans' draws do not depend on how the rows are laid out.
    rng_rows, *rngs, rng_moments, rng_factors = np.random.default_rng(settings.seed).spawn(3 + WORKERS)
    n_seg, n_coh, n_mob1, k = stats.ead.shape
    absorbing = np.isin(config.buckets.order, config.buckets.absorbing)
    transient = np.flatnonzero(~absorbing)
    bad = np.stack([np.isin(config.buckets.order, config.buckets.bad(d)) for d in DEL_TYPES])  # (3, K)

    observed = stats.observed
    ead0 = ead_at_mob0(stats)
    present = ead0 > 0
    rates = del_rates(stats, stats.ead, config)
    actual = np.stack([rates[d].mixed for d in DEL_TYPES])  # (3, S, C, M+1), NaN where not observed
    # Live loans at each observed MOB: the rows less those that arrived in an absorbing state from the MOB before.
    absorbed = stats.cohort_trans_count[..., absorbing].sum(axis=(-2, -1))  # (S, C, M)
    live = stats.n_loans.astype(np.int64)
    live[:, :, 1:] = np.maximum(live[:, :, 1:] - absorbed, 0)
    live_ead = stats.ead[..., transient].sum(axis=-1)  # (S, C, M+1)
    if stats.ead_sq is not None:
        # Unequal balances move a DEL as fewer loans of equal balance would: (sum EAD)^2 / sum EAD^2 of them (Kish's
        # effective number), at most the loans there are; equal balances give the loans themselves.
        live_sq = stats.ead_sq[..., transient].sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            effective = np.rint(np.where(live_sq > 0, live_ead ** 2 / live_sq, live)).astype(np.int64)
        live = np.minimum(live, effective)
    live = np.where(live_ead > 0, np.maximum(live, 1), live)  # a live balance is carried by at least one loan
    with np.errstate(invalid="ignore", divide="ignore"):
        per_loan = np.where(live > 0, live_ead / live, 0.0)
        share = np.where(live_ead[..., None] > 0, stats.ead[..., transient] / live_ead[..., None], 0.0)
    absorbed_bad = np.einsum("scmk,dk->dscm", np.where(absorbing, stats.ead, 0.0), bad.astype(np.float64))
    # The MOB each cell's paths last restarted from (its last observed MOB so far), -1 before the first.
    mob = np.arange(n_mob1)
    restart = np.maximum.accumulate(np.where(observed, mob, -1), axis=-1)

    tied = _tied(transition_matrix, concentration)
    factors = None
    if cohort is not None:
        factors = np.broadcast_to(cohort.factor, (n_draws, *cohort.factor.shape))
        if cohort.spread is not None:
            sd = cohort.spread
            z = rng_factors.standard_normal((n_draws, *sd.shape))
            # Inside [calibration] cohort_clip, as the factor itself.
            factors = np.clip(factors * np.exp(sd * z - 0.5 * sd ** 2), *config.calibration.cohort_clip)
    drawn = None
    counts = np.zeros((n_draws, n_seg, n_coh, k), dtype=np.int64)  # loans live at the restart, where they are now
    moments = _Moments(mean=np.zeros((n_draws, n_seg, n_coh, k)), applied_mean=np.zeros((n_seg, n_coh, k)),
                       covariance=np.zeros((n_seg, n_coh, k, k)))
    weights = segment_weights(present, ead0, config.portfolio.aggregation)
    with np.errstate(invalid="ignore", divide="ignore"):
        weights = weights / weights.sum(axis=0)
    portfolio_actual = [aggregate_portfolio(actual[t], rates[d].is_actual, present, ead0,
                                            config.portfolio.aggregation) for t, d in enumerate(DEL_TYPES)]
    q_seg = np.where(present[..., None], actual, np.nan)[:, None].repeat(len(levels), axis=1)  # (3, Q, S, C, M+1)
    q_port = np.stack([p.mixed for p in portfolio_actual])[:, None].repeat(len(levels), axis=1)  # (3, Q, C, M+1)
    keep_seg = np.broadcast_to(q_seg[:, :1], (3, n_draws, n_seg, n_coh, n_mob1)).copy() if keep_draws else None
    keep_port = np.broadcast_to(q_port[:, :1], (3, n_draws, n_coh, n_mob1)).copy() if keep_draws else None

    with ThreadPoolExecutor(WORKERS) as pool:
        for m in range(n_mob1 - 1):
            rows = transition_matrix[:, m][:, transient]  # (S, T, K)
            conc = concentration[:, m, transient]
            fresh = _draw_rows(rng_rows, rows, conc, n_draws)  # (D, S, T, K)
            drawn = fresh if drawn is None else np.where(tied[:, m, transient][None, ..., None], drawn, fresh)
            roll = present & ~observed[:, :, m + 1] & (restart[:, :, m] >= 0)
            if not roll.any():
                continue
            s_idx, c_idx = np.nonzero(roll)
            start = restart[s_idx, c_idx, m]
            by_moments = live[s_idx, c_idx, start] >= moment_loans
            bad_loans = np.zeros((3, n_draws, len(s_idx)))
            if by_moments.any():
                bad_loans[..., by_moments] = _move_moments(
                    (s_idx[by_moments], c_idx[by_moments]), rng_moments, moments, drawn=drawn,
                    applied=transition_matrix[:, m][:, transient], restarting=observed[:, :, m], live=live[:, :, m],
                    share=share[:, :, m], cohort=cohort, factors=factors, absorbing=absorbing, bad=bad)
            loan_by_loan = np.flatnonzero(~by_moments)
            if len(loan_by_loan):
                # The cells move independently: WORKERS fixed parts, each with its own stream, so the draws do not
                # depend on the machine; numpy's samplers release the GIL, so two cores share the work.
                move = partial(_move_cells, counts=counts, drawn=drawn, restarting=observed[:, :, m],
                               live=live[:, :, m], share=share[:, :, m], cohort=cohort, factors=factors,
                               absorbing=absorbing)
                parts = [(s_idx[part], c_idx[part]) for part in np.array_split(loan_by_loan, WORKERS)]
                moved = np.concatenate(list(pool.map(move, parts, rngs)), axis=1)
                counts[:, s_idx[loan_by_loan], c_idx[loan_by_loan]] = moved
                bad_loans[..., loan_by_loan] = np.einsum("dak,tk->tda", moved, bad.astype(np.float64))
            bad_ead = absorbed_bad[:, s_idx, c_idx, start][:, None] + bad_loans * per_loan[s_idx, c_idx, start]
            sim = bad_ead / ead0[s_idx, c_idx]  # (3, D, A)
            q_seg[:, :, s_idx, c_idx, m + 1] = np.quantile(sim, levels, axis=1).transpose(1, 0, 2)
            step = np.broadcast_to(np.where(present, actual[..., m + 1], np.nan)[:, None],
                                   (3, n_draws, n_seg, n_coh)).copy()
            step[:, :, s_idx, c_idx] = sim
            port = np.einsum("sc,tdsc->tdc", np.nan_to_num(weights), np.nan_to_num(step))  # (3, D, C)
            forecast_c = portfolio_actual[0].flag[:, m + 1] != ACTUAL_FLAG  # the flag does not depend on the DEL type
            q_port[:, :, forecast_c, m + 1] = np.quantile(port[:, :, forecast_c], levels, axis=1).transpose(1, 0, 2)
            if keep_draws:
                keep_seg[:, :, s_idx, c_idx, m + 1] = sim
                keep_port[:, :, forecast_c, m + 1] = port[:, :, forecast_c]

    return ForecastIntervals(
        levels=levels,
        n_draws=n_draws,
        segments={d: q_seg[t] for t, d in enumerate(DEL_TYPES)},
        portfolio={d: q_port[t] for t, d in enumerate(DEL_TYPES)},
        segment_draws={d: keep_seg[t] for t, d in enumerate(DEL_TYPES)} if keep_draws else None,
        portfolio_draws={d: keep_port[t] for t, d in enumerate(DEL_TYPES)} if keep_draws else None,
    )
