"""How sure a backtest lead is: the Portfolio MAE of every model under a paired bootstrap of cohort blocks.

A backtest's cells are not independent draws: origins overlap, and a cohort's cells at every origin share that
cohort's luck. So whole blocks of consecutive cohorts are resampled with replacement (neighbouring vintages are
alike too), the same draws for every model, and each draw recomputes the figure `tune` ranks by: per DEL type the
mean over months ahead of each month ahead's MAE. Used by `pyxl-del backtest` (does the forecast beat the better
benchmark beyond noise?), `pyxl-del tune` (is the winner's lead over the config as it is more than noise?) and
benchmarks/forecast_evidence.py (the intervals of docs/backtesting.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pyxl_del.engine.config import DEL_TYPES
from pyxl_del.engine.data import PORTFOLIO
from pyxl_del.engine.errors import counted

BLOCK_COHORTS = 3
# Fewer clusters than this give no interval: every draw would be nearly the same book.
MIN_BLOCKS = 5
DRAWS = 400
LEVEL = 0.9
# The draws are seeded: a panel gives one verdict, run after run.
SEED = 20240101


@dataclass(frozen=True)
class MaeDraws:
    """The Portfolio MAE per model and DEL type (the mean over months ahead) and its bootstrap replicates."""

    models: tuple[str, ...]
    mae: np.ndarray  # (models, DEL types)
    draws: np.ndarray | None  # (draws, models, DEL types); None with fewer than MIN_BLOCKS cohort blocks
    n_cohorts: int
    n_blocks: int

    def lead(self, model: str, against: str, level: float = LEVEL, del_type: str | None = None
             ) -> tuple[float, float, float]:
        """``model``'s MAE minus ``against``'s (negative: ``model`` is better), for ``del_type`` or else their mean
        over the DEL types, and the central ``level`` interval of that difference; the interval is NaN without
        replicates."""
        m, a = self.models.index(model), self.models.index(against)
        types = slice(None) if del_type is None else [DEL_TYPES.index(del_type)]
        difference = float(self.mae[m, types].mean() - self.mae[a, types].mean())
        replicates = (None if self.draws is None else
                      self.draws[:, m, types].mean(axis=1) - self.draws[:, a, types].mean(axis=1))
        if replicates is None or not np.isfinite(replicates).any():  # too few blocks, or a model without a score
            return difference, np.nan, np.nan
        tail = (1 - level) / 2 * 100
        lo, hi = np.nanpercentile(replicates, [tail, 100 - tail])
        return difference, float(lo), float(hi)


def portfolio_mae_draws(cells: pd.DataFrame, horizon: int, rng: np.random.Generator, *, draws: int = DRAWS,
                        block: int = BLOCK_COHORTS) -> MaeDraws:
    """The Portfolio cells of a backtest (`BacktestResult.cells`) scored per model and DEL type, with ``draws``
    bootstrap replicates over blocks of ``block`` consecutive cohorts (smaller blocks when the cohorts are few,
    none when there are fewer than MIN_BLOCKS blocks)."""
    cells = cells[cells["segment"] == PORTFOLIO]
    models = tuple(str(m) for m in cells["model"].cat.categories)
    cohort = cells["cohort"].cat.codes.to_numpy()
    n_cohorts = len(np.unique(cohort))
    # Blocks over the cohorts that have cells, in their order.
    rank = np.searchsorted(np.unique(cohort), cohort)
    block = max(1, min(block, n_cohorts // MIN_BLOCKS))
    blocks = rank // block
    n_blocks = int(blocks.max()) + 1 if len(blocks) else 0
    horizons = cells["horizon"].to_numpy() - 1
    model = cells["model"].cat.codes.to_numpy()
    del_type = cells["del_type"].cat.codes.to_numpy()
    error = np.abs(cells["forecast"].to_numpy(dtype=np.float64) - cells["actual"].to_numpy(dtype=np.float64))
    seen = np.isfinite(error)
    # Sums and counts per (model, DEL type, month ahead, block): one bincount each.
    shape = (len(models), len(DEL_TYPES), horizon, max(n_blocks, 1))
    index = np.ravel_multi_index((model[seen], del_type[seen], horizons[seen], blocks[seen]), shape)
    total = np.bincount(index, error[seen], np.prod(shape)).reshape(shape)
    count = np.bincount(index, minlength=np.prod(shape)).reshape(shape).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mae = _mean_of_seen(total.sum(axis=3) / count.sum(axis=3))  # (models, DEL types)
    if n_blocks < MIN_BLOCKS:
        return MaeDraws(models, mae, None, n_cohorts, n_blocks)
    # A bootstrap draw is a weight per block: how often it was drawn.
    weights = rng.multinomial(n_blocks, np.full(n_blocks, 1 / n_blocks), size=draws).astype(np.float64)  # (R, B)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_horizon = np.einsum("rb,mdhb->rmdh", weights, total) / np.einsum("rb,mdhb->rmdh", weights, count)
    # A month ahead no cell of the panel reached is no month of the score; one a draw left out is left out of it.
    reached = count.sum(axis=3) > 0  # (models, DEL types, months ahead)
    per_horizon = np.where(reached[None], per_horizon, np.nan)
    return MaeDraws(models, mae, _mean_of_seen(per_horizon), n_cohorts, n_blocks)


def _mean_of_seen(values: np.ndarray) -> np.ndarray:
    """The mean over the last axis of the finite values; NaN where there is none."""
    seen = np.isfinite(values)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(seen, values, 0.0).sum(axis=-1) / seen.sum(axis=-1)


def against_benchmarks(draws: MaeDraws, model: str, benchmarks: tuple[str, ...], level: float = LEVEL
                       ) -> pd.DataFrame:
    """Per DEL type, ``model``'s Portfolio MAE against the better of ``benchmarks`` (the lower MAE): both MAEs,
    the difference with its ``level`` interval, and the verdict: "better" or "worse" when the interval is clear of
    0, "within noise" when it is not, "too few cohorts" without one."""
    rows = []
    for d, del_type in enumerate(DEL_TYPES):
        scores = {b: draws.mae[draws.models.index(b), d] for b in benchmarks}
        best = min(scores, key=lambda b: np.inf if np.isnan(scores[b]) else scores[b])
        difference, lo, hi = draws.lead(model, best, level, del_type)
        verdict = ("too few cohorts" if np.isnan(hi) else "better" if hi < 0 else "worse" if lo > 0 else
                   "within noise")
        rows.append({"del_type": del_type, "model": model, "benchmark": best,
                     "mae": draws.mae[draws.models.index(model), d], "mae_benchmark": scores[best],
                     "difference": difference, "difference_lo": lo, "difference_hi": hi, "verdict": verdict,
                     "cohort_blocks": draws.n_blocks})
    return pd.DataFrame(rows)


def verdict_note(table: pd.DataFrame) -> str:
    """How to read `against_benchmarks`'s table, with its number of cohort blocks."""
    blocks = int(table["cohort_blocks"].iloc[0]) if len(table) else 0
    what = "Difference = the Markov MAE minus the better benchmark's (below 0: the forecast is better). "
    if blocks < MIN_BLOCKS:
        return (what + f"No interval: the scored cells come from {counted(blocks, 'block')} of cohorts, fewer than "
                f"{MIN_BLOCKS}, and a bootstrap of so few would redraw nearly the same book; read the difference "
                f"as an indication.")
    return (what + f"Its {LEVEL:.0%} interval is a paired bootstrap of {blocks} blocks of consecutive cohorts "
            f"({DRAWS} draws; origins overlap and a cohort's cells share its luck, so cells are not independent): "
            f"'better' or 'worse' when it excludes 0, 'within noise' when it does not.")
