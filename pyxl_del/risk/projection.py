"""The fitted chain rolled past each cohort's last actual month: the projection every risk figure starts from,
the credit-cycle shift of the transition matrices (Belkin-Suchower-Forest; **Z < 0 is adverse**: it moves
probability towards worse destinations) and absorption probabilities for the lifetime tail. Formulas: docs/risk.md.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from pyxl_del.engine.config import Config
from pyxl_del.engine.data import month_label
from pyxl_del.engine.errors import agree, counted
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
    from scipy.special import ndtri  # 0.3 s to import: only when used

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
    from scipy.special import ndtr  # 0.3 s to import: only when used

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


# ------------------------------------------------------------------------------------------ reporting date

CURRENT, ROLLED, EXCLUDED, CLOSED = range(4)
BOOK_STATUS = ("current", "rolled", "excluded", "closed")  # Book.status codes; -1: the segment lacks the cohort


@dataclass(frozen=True)
class Book:
    """The book at the reporting date: the data's last reporting month, the one "today" of every risk figure.

    A cohort-segment with rows in that month is *current*: its actual EAD (rows beyond [forecast] max_mob
    included). One whose rows end earlier is *closed* when its last rows hold no live EAD (every loan has left:
    not outstanding); otherwise ([risk] stale_cohorts) *rolled* forward by the baseline chain from its last rows
    to the reporting date, or *excluded* (no EAD).
    """

    month: int  # the reporting month (month index)
    status: np.ndarray  # (S, C) index into BOOK_STATUS, -1 where the segment does not have the cohort
    final_mob: np.ndarray  # (S, C) MOB of the cohort-segment's last rows
    reporting_mob: np.ndarray  # (S, C) its MOB at the reporting date (-1 where absent)
    final_ead: np.ndarray  # (S, C, K) EAD by state in its last rows
    ead: np.ndarray  # (S, C, K) EAD by state at the reporting date (zeros where excluded or absent)

    @property
    def present(self) -> np.ndarray:
        return self.status >= 0

    @property
    def label(self) -> str:
        return month_label([self.month])[0]

    def notes(self, result: DelResult, config: Config) -> list[str]:
        """Sentences for the sheets and the CLI: the reporting date, and which cohort-segments are not current,
        what was done with them and how much EAD that is."""
        live = ~state_mask(config, config.buckets.absorbing)
        cells = self.ead[..., live].sum(axis=-1)
        lines = [f"Reporting date {self.label} (the data's last reporting month): outstanding EAD {cells.sum():,.0f}."]
        beyond = (self.status == CURRENT) & (self.final_mob > result.stats.max_mob)
        if beyond.any():
            n = int(beyond.sum())
            lines.append(f"{counted(n, 'cohort-segment')} {agree(n, 'is', 'are')} read from the rows at the reporting "
                         f"date beyond [forecast] max_mob = {result.stats.max_mob} (MOB "
                         f"{int(self.final_mob[beyond].min())}..{int(self.final_mob[beyond].max())}): "
                         f"{cells[beyond].sum():,.0f} of EAD.")
        final = self.final_ead[..., live].sum(axis=-1)
        for code, text in ((ROLLED, "rolled forward by the chain to the reporting date ([risk] stale_cohorts = "
                                    "\"roll\"; \"exclude\" leaves them out)"),
                           (EXCLUDED, "excluded from the book ([risk] stale_cohorts = \"exclude\"; \"roll\" rolls "
                                      "them forward by the chain)")):
            hit = self.status == code
            if hit.any():
                now = f", {cells[hit].sum():,.0f} at the reporting date" if code == ROLLED else ""
                lines.append(f"{counted(int(hit.sum()), 'cohort-segment')} whose rows end before the reporting date "
                             f"still had live EAD ({_listed(result, hit)}): {text}; {final[hit].sum():,.0f} of EAD at "
                             f"their last rows{now}.")
        closed = self.status == CLOSED
        if closed.any():
            n = int(closed.sum())
            lines.append(f"{counted(n, 'cohort-segment')} {agree(n, 'is', 'are')} closed (every loan has left before "
                         f"the reporting date): not outstanding.")
        return lines


def _listed(result: DelResult, mask: np.ndarray, limit: int = 4) -> str:
    s_idx, c_idx = np.nonzero(mask)
    names = [f"{result.segments[s]} {result.cohorts[c]}" for s, c in zip(s_idx[:limit], c_idx[:limit], strict=True)]
    return ", ".join(names) + (f" and {len(s_idx) - limit} more" if len(s_idx) > limit else "")


def roll(start: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """EAD by state (..., T+1, K) from ``start`` (..., K) through step matrices (..., T, K, K)."""
    path = np.empty(start.shape[:-1] + (matrices.shape[-3] + 1, start.shape[-1]))
    path[..., 0, :] = start
    for t in range(matrices.shape[-3]):
        path[..., t + 1, :] = np.einsum("...k,...kj->...j", path[..., t, :], matrices[..., t, :, :])
    return path


def _steps(base: np.ndarray, mob: np.ndarray) -> np.ndarray:
    """(S, C, T, K, K) the matrices of the steps out of MOB ``mob`` (S, C, T); after max_mob the last (the tail)."""
    index = np.minimum(np.maximum(mob, 0), base.shape[1] - 1)
    return base[np.arange(base.shape[0])[:, None, None], index]


def reporting_book(result: DelResult, config: Config | None = None) -> Book:
    """The book at the data's last reporting month (see `Book`)."""
    cfg = config or result.config
    stats = result.stats
    final = stats.last_mob
    if stats.final_ead is not None:
        final_ead = stats.final_ead
    else:
        final_ead = np.take_along_axis(stats.ead, np.clip(final, 0, None)[..., None, None], axis=2)[:, :, 0]
    present = final >= 0
    month = stats.reporting_month
    reporting = np.where(present, month - stats.cohorts[None, :], -1)
    behind = present & (reporting > final)
    has_live = final_ead[..., ~state_mask(cfg, cfg.buckets.absorbing)].sum(axis=-1) > 0
    stale = ROLLED if cfg.risk.stale_cohorts == "roll" else EXCLUDED
    status = np.select([~present, behind & ~has_live, behind], [-1, CLOSED, stale], CURRENT).astype(np.int8)

    # A rolled cohort-segment starts from the report's own forecast where the reporting MOB is within max_mob, else
    # from the last of its rows and the report's forecast to max_mob; beyond max_mob the tail matrix moves it.
    m = stats.max_mob
    from_mob = np.where(final > m, final, np.minimum(np.maximum(reporting, 0), m))
    from_ead = np.where((final > m)[..., None], final_ead,
                        np.take_along_axis(result.ead_path, np.minimum(from_mob, m)[..., None, None],
                                           axis=2)[:, :, 0])
    gap = np.where(status == ROLLED, reporting - from_mob, 0)
    if gap.max(initial=0) > 0:
        tail = result.transition_matrix[:, None, None, -1]  # (S, 1, 1, K, K)
        steps = np.where((np.arange(gap.max()) < gap[..., None])[..., None, None], tail, np.eye(tail.shape[-1]))
        steps = result.cohort_chain(steps)  # each cohort's own chain (vintage quality), as in the report's forecast
        from_ead = roll(from_ead, steps)[:, :, -1]
    kept = (status == CURRENT) | (status == CLOSED)
    ead = np.where(kept[..., None], final_ead, np.where((status == ROLLED)[..., None], from_ead, 0.0))
    return Book(month=month, status=status, final_mob=final, reporting_mob=reporting, final_ead=final_ead, ead=ead)


# ------------------------------------------------------------------------------------------------ projection


@dataclass(frozen=True)
class Projection:
    """The book rolled forward from the reporting date, month by month.

    Forecast month t is the reporting date + t for every cohort (t = 0: the reporting date), at MOB
    ``start`` + t; steps out of MOB max_mob - 1 and later use the tail matrix. After the last step (T) each
    cohort-segment's chain is time-homogeneous: the ``tail`` matrix (stressed by the scenario's last Z).
    """

    path: np.ndarray  # (S, C, T+1, K) EAD by state at forecast month t (zeros where absent or excluded)
    start: np.ndarray  # (S, C) MOB at the reporting date, -1 where the segment does not have the cohort
    matrices: np.ndarray  # (S, C, T, K, K) step matrices applied (stressed where a scenario says so)
    tail: np.ndarray  # (S, C or 1, K, K) the matrix applied after month T (per cohort with cohort factors)
    book: Book
    history: np.ndarray  # (S, C, M+1, K) the report's EAD path (actual, then its forecast)

    @property
    def present(self) -> np.ndarray:
        return self.start >= 0

    def at(self, months: int) -> np.ndarray:
        """(S, C, K) EAD by state ``months`` after the reporting date (zeros where absent or excluded)."""
        return self.path[:, :, months]

    def by_mob(self) -> np.ndarray:
        """(S, C, M+1, K) EAD by state by MOB: the report's path up to the reporting date (and for cohort-segments
        left out of the book), this projection after it: the input of DEL tables under a scenario."""
        mob = np.arange(self.history.shape[2])
        t = mob - self.start[..., None]  # (S, C, M+1)
        ahead = (t > 0) & (self.book.status[..., None] != EXCLUDED)
        projected = np.take_along_axis(self.path, np.clip(t, 0, self.path.shape[2] - 1)[..., None], axis=2)
        return np.where(ahead[..., None], projected, self.history)


def project(result: DelResult, *, months: int = EL_HORIZON, z: Sequence[float] = (), rho: float | None = None,
            config: Config | None = None, book: Book | None = None) -> Projection:
    """Roll the book of the reporting date forward, the matrices moved by a path of Z over forecast months 1, 2, ...

    ``z`` applies to the calendar months after the reporting date (month 1 = the next month), the same for every
    cohort; its last value persists, including in the tail. An empty path is the baseline: for cohorts with rows
    in the reporting month (within max_mob), exactly the report's forecast. The steps run at least ``months`` and
    until every cohort-segment is past max_mob and past the path (then the chain is time-homogeneous).
    """
    cfg = config or result.config
    rho = cfg.risk.rho if rho is None else rho
    book = book or reporting_book(result, cfg)
    base = result.transition_matrix
    n_steps = base.shape[1]
    start = book.reporting_mob
    first = int(start[start >= 0].min()) if (start >= 0).any() else 0
    horizon = max(int(months), len(z), n_steps - first, 1)
    path = np.asarray(z if len(z) else (0.0,), dtype=np.float64)
    z_steps = path[np.minimum(np.arange(horizon), len(path) - 1)]
    # Each cohort rolls through its own chain (the segment's scaled by its cohort factor, when the run has them), the
    # one the report's forecast used; the credit cycle then moves that chain.
    steps = result.cohort_chain(_steps(base, np.maximum(start, 0)[..., None] + np.arange(horizon)))
    matrices = stress_matrices(steps, z_steps, rho, config=cfg)
    tail = stress_matrices(result.cohort_chain(base[:, None, -1]), path[-1], rho, config=cfg)
    return Projection(path=roll(book.ead, matrices), start=start, matrices=matrices, tail=tail, book=book,
                      history=result.ead_path)


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
