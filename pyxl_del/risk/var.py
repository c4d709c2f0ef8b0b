"""Credit VaR and expected shortfall by Monte Carlo over paths of the credit-cycle factor Z, with standard errors
and convergence. Formulas: docs/risk.md.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from pyxl_del.engine.config import Config
from pyxl_del.engine.pipeline import DelResult
from pyxl_del.risk.projection import (
    Book,
    Projection,
    _bsf_apply,
    _bsf_thresholds,
    project,
    severity_order,
    state_mask,
)

log = logging.getLogger(__name__)

BOOTSTRAP_SAMPLES = 200


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
        """measure (mean, VaR, ES, UL = VaR - mean), confidence, value, pct_of_ead, std_error (bootstrap; mean:
        s/sqrt(n)). The mean is the simulated mean loss, not the expected loss of `expected_loss` (the Credit VaR
        sheet reconciles the two: `RiskAnalysis.el_reconciliation`)."""
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
            rows.append((n, "mean", np.nan, mean, losses.std(ddof=1) / np.sqrt(n)))
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
        """Per segment: ``mean_loss`` and its mean over the paths at or beyond VaR_q (`es_column(q)`); they add up to
        the simulated mean loss and ES_q. The mean is not the expected loss (`RiskAnalysis.el_reconciliation`)."""
        order = np.argsort(self.total)
        tail = order[len(order) - max(1, int(np.ceil(len(order) * (1 - q)))):]
        return pd.DataFrame({
            "segment": pd.array(self.segments, dtype="string"),
            "mean_loss": self.losses.mean(axis=0),
            es_column(q): self.losses[tail].mean(axis=0),
        })


def es_column(q: float) -> str:
    """The contributions' ES column at level q: "es99_contribution", "es97_5_contribution" (the level in the name, so
    a CSV read on its own says which ES it adds up to; "_" for the point, which a column name should not hold)."""
    return f"es{q * 100:.10g}_contribution".replace(".", "_")


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
                         segments: Sequence[str] | None = None, into: Sequence[str] = ()) -> LossSimulation:
    """Monte Carlo of the credit loss over T months: LGD x EAD flowing into the states ``into`` (made absorbing, so
    a balance counts once; default: [risk] loss_state).

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
    target = np.isin(labels, list(into) or [cfg.risk.loss_state])
    outstanding = ~np.isin(labels, cfg.buckets.absorbing)
    absorbing = ~outstanding | target
    live = ~absorbing
    rho = np.broadcast_to(np.asarray(rho, dtype=np.float64), (n_seg,))
    lgd = np.broadcast_to(np.asarray(lgd, dtype=np.float64), (n_seg,))
    x, total = _bsf_thresholds(p[:, :, live, :], rho[:, None], "mean")
    rng = np.random.default_rng(seed)
    z = _z_paths(rng, n_paths, n_months, persistence)[:, :, None]  # (T, n, 1) against (S,)
    exposure = v0[:, outstanding].sum(axis=1)

    if n_loans is None:
        v = np.broadcast_to(v0, (n_paths, n_seg, k)).copy()
        for t in range(n_months):
            moved = _bsf_apply(x[:, t], total[:, t], z[t], rho)  # (n, S, live, K)
            v = np.einsum("psl,pslk->psk", v[..., live], moved) + v * absorbing
        written = v[..., target].sum(axis=-1) - v0[:, target].sum(axis=-1)
    else:
        if not np.allclose(total, 1.0):
            raise ValueError("n_loans needs row-stochastic matrices ([transitions] weighting 'ead' or 'count')")
        n_loans = np.broadcast_to(np.asarray(n_loans, dtype=np.int64), (n_seg,))
        per_loan = np.divide(v0[:, live].sum(axis=1), n_loans, out=np.zeros(n_seg), where=n_loans > 0)
        counts = np.zeros((n_paths, n_seg, k), dtype=np.int64)
        counts[..., live] = np.rint(np.divide(v0[:, live], per_loan[:, None], out=np.zeros_like(v0[:, live]),
                                              where=per_loan[:, None] > 0))
        for t in range(n_months):
            moved = np.clip(_bsf_apply(x[:, t], total[:, t], z[t], rho), 0.0, 1.0)
            moved /= moved.sum(axis=-1, keepdims=True)
            counts = counts * absorbing + sum(rng.multinomial(counts[..., j], moved[..., i, :])
                                               for i, j in enumerate(np.flatnonzero(live)))
        written = counts[..., target].sum(axis=-1) * per_loan
    return LossSimulation(losses=written * lgd, exposure=float(exposure.sum()),
                          segments=tuple(segments or (f"segment {i + 1}" for i in range(n_seg))),
                          horizon=n_months, seed=int(seed))


def segment_chain(projection: Projection, months: int) -> tuple[np.ndarray, np.ndarray]:
    """Each segment's book as one chain: ((S, T, K, K) step matrices for forecast months 1..T, (S, K) start EAD).

    Row i of month t mixes the cohorts' rows i weighted by their projected EAD in state i before the step, so the
    segment chain reproduces the sum of the cohorts' baseline projections exactly.
    """
    present = projection.present
    before = projection.path[:, :, :months] * present[..., None, None]  # (S, C, T, K)
    steps = projection.matrices[:, :, :months]
    weight = before.sum(axis=1)[..., None]  # (S, T, K, 1)
    mixed = np.einsum("sctk,sctkj->stkj", before, steps)
    plain = (steps * present[..., None, None, None]).sum(axis=1) / np.maximum(present.sum(axis=1), 1)[:, None,
                                                                                                    None, None]
    matrices = np.where(weight > 0, mixed / np.where(weight > 0, weight, 1.0), plain)
    return matrices, before[:, :, 0].sum(axis=1)


def credit_var(result: DelResult, config: Config | None = None, *, n_paths: int | None = None,
               seed: int | None = None, horizon: int | None = None, book: Book | None = None) -> LossSimulation:
    """The portfolio's simulated credit loss over [risk] horizon months from the reporting date ([risk] n_paths,
    seed, rho, z_persistence)."""
    cfg = config or result.config
    risk = cfg.risk
    months = horizon or risk.horizon
    matrices, start = segment_chain(project(result, months=months, config=cfg, book=book), months)
    lgd = np.array([risk.segment_lgd(s) for s in result.segments])
    into = risk.default_states if risk.el_basis == "default" else ()
    sim = simulate_credit_loss(matrices, start, lgd, risk.rho, n_paths=n_paths or risk.n_paths,
                               seed=risk.seed if seed is None else seed, persistence=risk.z_persistence,
                               config=cfg, segments=result.segments, into=into)
    if not into:
        return sim
    # On the default basis the EAD in default today is lost on every path (as in the expected loss).
    stock = start[:, ~state_mask(cfg, cfg.buckets.absorbing) & state_mask(cfg, into)].sum(axis=-1)
    return replace(sim, losses=sim.losses + lgd * stock)
