"""Backtesting: how good is the forecast out of sample, and does the Markov chain beat the simple alternatives?

For each origin (a past reporting month, the "as-of") the validated panel is cut to the rows known then
(cohort + MOB <= as-of), re-aggregated and forecast exactly as `report` forecasts (`pipeline.fit`). On the same
cut run three benchmarks: the chain without calibration, chain-ladder on the DEL curves and the last value
carried forward. Every forecast cell that was observed later, h = (cohort + MOB) - as-of months ahead with
1 <= h <= horizon, is compared with the actual DEL of the full panel. Definitions: docs/backtesting.md.

Pure computation: tidy DataFrames in a BacktestResult; the workbook sheets are in `backtest_report`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from functools import cached_property

import numpy as np
import pandas as pd

from pyxl_del import __version__
from pyxl_del.backtest import bootstrap
from pyxl_del.engine.config import DEL_TYPES, Config, load_config
from pyxl_del.engine.data import (
    PORTFOLIO,
    Panel,
    PanelStats,
    aggregate_panel,
    check_stats,
    month_index,
    month_label,
    read_panel,
    validate_panel,
)
from pyxl_del.engine.errors import InputError, PanelError, counted
from pyxl_del.engine.forecast import forecast_ead
from pyxl_del.engine.intervals import (
    ForecastIntervals,
    quantile_column,
    simulate_intervals,
)
from pyxl_del.engine.metrics import del_rates, ead_at_mob0
from pyxl_del.engine.pipeline import DelResult, Progress, fit
from pyxl_del.engine.portfolio import aggregate_portfolio

log = logging.getLogger(__name__)

MODELS = ("markov", "markov_uncalibrated", "chain_ladder", "carry_forward")
BENCHMARKS = ("chain_ladder", "carry_forward")  # what users do today: the forecast has to beat the better of them
#: The winner of a row whose lowest MAE two models share: every model equal was "won" by the first listed.
TIED = "tie"
MODEL_LABELS = {
    "markov": "Markov (as configured)",
    "markov_uncalibrated": "Markov, no calibration",
    "chain_ladder": "Chain-ladder",
    "carry_forward": "Last value carried forward",
    "oracle": "Oracle (the simulated truth)",
    TIED: "Tie (no model lower)",
}
DEFAULT_HORIZON = 12
METRICS = ("mae", "bias", "mape", "mae_ead", "bias_ead", "mape_ead")
# Of the forecast distribution (the Markov chain's, with [forecast] intervals on; NaN for the other models).
DISTRIBUTION_METRICS = ("mae_median", "coverage", "coverage_plain", "crps")

_MONTH = re.compile(r"^\s*(\d{4})-(\d{1,2})\s*$")

# A forecaster turns the statistics of one cut into DEL tables (S, C, M+1) per DEL type, actual where observed
# and forecast elsewhere, plus the warnings of its fit.
Forecaster = Callable[[PanelStats, Config], tuple[dict[str, np.ndarray], tuple[str, ...]]]


class BacktestError(InputError):
    """The requested backtest cannot be run on this panel (an as-of outside the data, a bad horizon)."""


class NothingToCompareError(BacktestError):
    """Every requested as-of is at or after the panel's last reporting month: no later actual exists."""


# ------------------------------------------------------------------------------------------- the origins


def parse_month(text: str) -> int:
    """'YYYY-MM' -> month index (year * 12 + month - 1), the engine's cohort scale."""
    match = _MONTH.match(str(text))
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise BacktestError(f"as-of {text!r} is not a month: expected YYYY-MM, e.g. 2024-06")
    return int(month_index(int(match.group(1)), int(match.group(2))))


@dataclass(frozen=True)
class Calendar:
    """The reporting months a panel spans: its first cohort and its last row (cohort + MOB), its cohorts' months
    (ascending, distinct) and the max_mob its cells are forecast to, if any."""

    first_cohort: int
    last_month: int
    cohorts: tuple[int, ...]
    max_mob: int | None = None

    @classmethod
    def of(cls, panel: Panel, max_mob: int | None = None) -> Calendar:
        cohorts = np.unique(panel.cohort)
        return cls(int(cohorts[0]), int((panel.cohort + panel.mob).max()), tuple(int(c) for c in cohorts), max_mob)

    @property
    def first_origin(self) -> int:
        # At the first cohort's own month only MOB 0 is known: no transition can be estimated yet.
        return self.first_cohort + 1

    @property
    def last_origin(self) -> int:
        return self.last_month - 1

    def usable(self) -> str:
        if self.first_origin > self.last_origin:
            return "none: the panel spans fewer than three reporting months"
        return f"{month_label([self.first_origin])[0]} .. {month_label([self.last_origin])[0]}"

    def last(self, n: int) -> list[int]:
        """The last n usable origins, oldest first (all of them when there are fewer). With a max_mob, a month when
        every cohort known is past MOB max_mob is not usable: no cell after it is forecast. That is the end of a
        long book of few cohorts (one agency quarter is past max_mob long before its data end), and the years
        between the quarters of a panel that joins several eras."""
        if n < 1:
            raise BacktestError(f"--origins must be at least 1, got {n}")
        months = np.arange(self.first_origin, self.last_origin + 1)
        if self.max_mob is not None:
            cohorts = np.asarray(self.cohorts)
            newest = cohorts[np.searchsorted(cohorts, months, side="right") - 1]  # the newest cohort known then
            months = months[newest + self.max_mob > months]
        if not len(months):
            past = None if self.max_mob is None else self.cohorts[-1] + self.max_mob
            beyond = ("" if past is None or past > self.last_origin else f"; from {month_label([past])[0]} on every "
                      f"cohort is past [forecast] max_mob, so no forecast cell is left to score")
            raise NothingToCompareError(f"the panel has no usable as-of month (usable: {self.usable()}{beyond})")
        return [int(m) for m in months[-n:]]

    def check(self, origins: Sequence[int]) -> None:
        """Raise one error naming every as-of that cannot be backtested, and why."""
        first, last = month_label([self.first_cohort])[0], month_label([self.last_month])[0]
        problems, late = [], []
        for as_of in sorted(set(origins)):
            label = month_label([as_of])[0]
            if as_of < self.first_cohort:
                problems.append(f"as-of {label} is before the first cohort ({first}): nothing was known then")
            elif as_of < self.first_origin:
                problems.append(f"as-of {label} is the first cohort's month: only MOB 0 was known, so no "
                                f"transition can be estimated")
            elif as_of > self.last_origin:
                late.append(label)
                problems.append(f"as-of {label} is at or after the panel's last reporting month ({last}): "
                                f"nothing happened after it to compare the forecast with")
        if problems:
            error = NothingToCompareError if len(late) == len(problems) else BacktestError
            raise error("; ".join(problems) + f". Usable as-of months: {self.usable()}")


def cut_panel(panel: Panel, as_of: int) -> Panel:
    """The rows known at as-of (cohort + MOB <= as-of), still sorted by (loan, MOB).

    Each loan keeps a prefix of its rows, so the sort order survives the mask. Validation warnings stay with the
    full panel (they would repeat at every origin).
    """
    keep = panel.cohort + panel.mob <= as_of
    rows = {f.name: getattr(panel, f.name)[keep] for f in fields(panel)
            if isinstance(getattr(panel, f.name), np.ndarray)}
    return replace(panel, warnings=(), **rows)


# -------------------------------------------------------------------------------------------- the models


def _fit_point(stats: PanelStats, config: Config) -> DelResult:
    """The chain's expected path; its distribution, when wanted, is simulated by `_distribution` with the draws kept."""
    return fit(stats, config.with_overrides(forecast={"intervals": False}))


def _markov(stats: PanelStats, config: Config) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    result = _fit_point(stats, config)
    return {d: r.mixed for d, r in result.rates.items()}, result.warnings


def _markov_uncalibrated(stats: PanelStats, config: Config) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    # The chain alone: neither the step-wise k, cohort factors nor a calendar level.
    return _markov(stats, config.with_overrides(calibration={"mode": "none", "cohort_factor": "none",
                                                             "period_level": "none"}))


def _develop(actual: np.ndarray, step: Callable[[np.ndarray, int], np.ndarray]) -> np.ndarray:
    """Each DEL curve continued from its last actual value, step(value at m, m) -> value at m+1.

    The same rule as the chain's forecast: actual where observed, otherwise one step on from the month before.
    """
    path = actual.copy()
    for m in range(actual.shape[-1] - 1):
        observed = ~np.isnan(actual[..., m + 1])
        path[..., m + 1] = np.where(observed, actual[..., m + 1], step(path[..., m], m))
    return path


def chain_ladder(actual: np.ndarray, ead0: np.ndarray) -> np.ndarray:
    """Chain-ladder on DEL curves (S, C, M+1), NaN where not observed; ead0 (S, C) weights the cohorts.

    Per segment and step m -> m+1, over the cohorts observed at both MOBs, the development factor is the
    volume-weighted one of the chain-ladder method: f[m] = sum(EAD0 * DEL[m+1]) / sum(EAD0 * DEL[m]), i.e. bad
    balance at m+1 over bad balance at m. A factor cannot grow a zero: where the projected DEL is 0 (a young
    cohort, a clean one) or f[m] is undefined (no cohort was delinquent at m, e.g. MOB 0), the step adds the
    EAD0-weighted mean increment DEL[m+1] - DEL[m] instead (floored at 0). Steps no cohort has observed keep
    the curve flat. A DEL is a share of the MOB-0 balance, so every step stops at 1 (a factor > 1 compounded over
    many steps, or a large increment, would otherwise forecast more bad balance than was lent).
    """
    both = ~np.isnan(actual[..., :-1]) & ~np.isnan(actual[..., 1:])
    weight = np.where(both, ead0[..., None], 0.0)
    base = (weight * np.nan_to_num(actual[..., :-1])).sum(axis=1)  # (S, M)
    developed = (weight * np.nan_to_num(actual[..., 1:])).sum(axis=1)
    total = weight.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        factor = np.where(total > 0, np.where(base > 0, developed / base, np.nan), 1.0)
        increment = np.where(total > 0, (developed - base) / total, 0.0)

    def step(value: np.ndarray, m: int) -> np.ndarray:
        f = factor[:, m, None]
        multiply = (value > 0) & np.isfinite(f)
        with np.errstate(invalid="ignore", over="ignore"):
            return np.minimum(np.where(multiply, value * f, np.maximum(value + increment[:, m, None], 0.0)), 1.0)

    return _develop(actual, step)


def carry_forward(actual: np.ndarray) -> np.ndarray:
    """Each cohort's last actual DEL, unchanged at every later MOB."""
    return _develop(actual, lambda value, _m: value)


def _benchmark(project: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Forecaster:
    def forecaster(stats: PanelStats, config: Config) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
        ead0 = ead_at_mob0(stats)
        return {d: project(r.actual, ead0) for d, r in del_rates(stats, stats.ead, config).items()}, ()

    return forecaster


def oracle(matrices: np.ndarray, cohorts: Sequence[str], segments: Sequence[str]) -> Forecaster:
    """The forecaster that knows a simulated book's truth: the chain run with the true transition matrices of
    each cohort (C, S, M, K, K), the cohort and calendar effects included (``datasets.sample.VintageBook``).

    ``cohorts`` (YYYY-MM) and ``segments`` name the matrices' first two axes; K follows [buckets] order. Its error
    is what sampling noise alone leaves, the floor a fitted model's error is measured against (model / oracle).
    Steps beyond the matrices' M reuse the last one.
    """
    cohort_at = {c: i for i, c in enumerate(cohorts)}
    segment_at = {s: i for i, s in enumerate(segments)}

    def forecaster(stats: PanelStats, config: Config) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
        missing = [c for c in stats.cohort_labels if c not in cohort_at] + \
                  [s for s in stats.segments if s not in segment_at]
        if missing:
            raise BacktestError(f"the oracle has no true matrices for {missing}")
        steps = np.minimum(np.arange(stats.max_mob), matrices.shape[2] - 1)
        P = matrices[[cohort_at[c] for c in stats.cohort_labels]][:, [segment_at[s] for s in stats.segments]]
        path = forecast_ead(stats, P[:, :, steps].swapaxes(0, 1))  # per-cohort matrices (S, C, M, K, K)
        return {d: r.mixed for d, r in del_rates(stats, path, config).items()}, ()

    return forecaster


FORECASTERS: dict[str, Forecaster] = {
    "markov": _markov,
    "markov_uncalibrated": _markov_uncalibrated,
    "chain_ladder": _benchmark(chain_ladder),
    "carry_forward": _benchmark(lambda actual, _ead0: carry_forward(actual)),
}


# ---------------------------------------------------------------------------------------- the comparison


def _with_portfolio(stats: PanelStats, config: Config, mixed: dict[str, np.ndarray], is_actual: np.ndarray,
                    present: np.ndarray, *, actual_only: bool = False) -> dict[str, np.ndarray]:
    """(S+1, C, M+1) per DEL type: the Portfolio (row 0, aggregated as the report does), then the segments.

    actual_only: NaN wherever the cell is not ACTUAL; a Portfolio cell is ACTUAL only where every segment that
    has the cohort is (the report's flag).
    """
    ead0 = ead_at_mob0(stats)
    out = {}
    for d, values in mixed.items():
        p = aggregate_portfolio(values, is_actual, present, ead0, config.portfolio.aggregation)
        if actual_only:
            out[d] = np.concatenate([p.actual[None], np.where(is_actual, values, np.nan)])
        else:
            out[d] = np.concatenate([p.mixed[None], values])
    return out


def _distribution(fitted: DelResult) -> ForecastIntervals:
    return simulate_intervals(fitted.stats, fitted.transition_matrix, fitted.transitions.concentration,
                              fitted.config, fitted.factors.cohort, keep_draws=True)


def crps_of_draws(draws: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """CRPS of each column's empirical distribution (draws (D, n)) at the actual (n,): E|X - y| - E|X - X'| / 2,
    in DEL points like the MAE (a point forecast's CRPS is its absolute error)."""
    x = np.sort(draws, axis=0)
    n_draws = x.shape[0]
    spread = 2.0 / n_draws**2 * ((2 * np.arange(1, n_draws + 1) - n_draws - 1)[:, None] * x).sum(axis=0)
    # The score is >= 0; where the draws sit on the actual the two terms cancel and rounding can leave -1e-17.
    return np.maximum(np.abs(x - actual).mean(axis=0) - spread / 2, 0.0)


TIE = 1e-9  # a draw this close to the actual DEL is the same outcome (the two are computed differently)


def coverage_share(draws: np.ndarray, actual: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """How much of each actual (n,) lies in the central interval [lo, hi] of its draws' distribution (D, n),
    by the randomised PIT: the actual's probability-integral transform is uniform on [F(y-), F(y)], and the share
    of that range inside [lo, hi] counts. A continuous outcome counts 1 or 0; an outcome with many tied draws (a
    thin cohort that usually does not move) counts in part, so a right model covers hi - lo on average. An actual
    no draw ties lies between two neighbouring draws, so its PIT is taken on [F(y), F(y) + 1/D]: one above 90 of
    100 draws had counted as inside [0.1, 0.9] while it lay above the printed P90."""
    below = (draws < actual - TIE).mean(axis=0)
    upto = (draws <= actual + TIE).mean(axis=0)
    upto = np.where(upto > below, upto, below + 1.0 / draws.shape[0])
    return (np.minimum(upto, hi) - np.maximum(below, lo)).clip(0) / (upto - below)


def _actuals(stats: PanelStats, config: Config) -> dict[str, np.ndarray]:
    """What happened: the actual DEL (S+1, C, M+1) per DEL type, Portfolio first, NaN where not observed."""
    rates = del_rates(stats, stats.ead, config)
    first = rates[DEL_TYPES[0]]
    return _with_portfolio(stats, config, {d: r.mixed for d, r in rates.items()}, first.is_actual, first.present,
                           actual_only=True)


@dataclass(frozen=True)
class _Truth:
    """The full panel's actual DEL and the labels every origin's cells share."""

    cohorts: np.ndarray  # (C,) month index
    actual: dict[str, np.ndarray]  # (S+1, C, M+1)
    segments: pd.Index  # Portfolio, then the segments
    cohort_labels: pd.Index


def _origin_cells(as_of: int, stats: PanelStats, truth: _Truth, config: Config, horizon: int,
                  forecasters: Mapping[str, Forecaster]) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """One origin: every (model, segment, DEL type, cohort, MOB) cell 1..horizon months ahead with an actual.

    The model column's categories are the forecasters' names, in their order."""
    position = np.searchsorted(truth.cohorts, stats.cohorts)  # the cut's cohorts are among the full panel's
    ahead = stats.cohorts[:, None] + np.arange(stats.max_mob + 1)[None, :] - as_of  # (C, M+1)
    rates = del_rates(stats, stats.ead, config)
    first = rates[DEL_TYPES[0]]
    present = np.concatenate([first.present.any(axis=0)[None], first.present])  # (S+1, C)
    ead0 = ead_at_mob0(stats)
    weight = np.concatenate([np.where(first.present, ead0, 0.0).sum(axis=0)[None], ead0])
    actual = {d: a[:, position] for d, a in truth.actual.items()}
    # Observation does not depend on the DEL type, so one mask serves all three.
    mask = (ahead >= 1) & (ahead <= horizon)
    mask = mask[None] & present[..., None] & ~np.isnan(actual[DEL_TYPES[0]])
    seg, coh, mob = np.nonzero(mask)
    n = len(seg)

    predictions, warnings, spread = {}, [], {}
    for model, forecaster in forecasters.items():
        if model == "markov" and config.forecast.intervals:
            fitted = _fit_point(stats, config)
            mixed, fit_warnings = {d: r.mixed for d, r in fitted.rates.items()}, fitted.warnings
            dist = _distribution(fitted)
            for d in DEL_TYPES:
                quantiles = np.concatenate([dist.portfolio[d][:, None], dist.segments[d]], axis=1)[:, mask]
                draws = np.concatenate([dist.portfolio_draws[d][:, None], dist.segment_draws[d]], axis=1)[:, mask]
                y = actual[d][mask]
                spread[d] = (dist.levels, quantiles, crps_of_draws(draws, y),
                             coverage_share(draws, y, dist.levels[0], dist.levels[-1]))
        else:
            mixed, fit_warnings = forecaster(stats, config)
        predictions[model] = _with_portfolio(stats, config, mixed, first.is_actual, first.present)
        warnings += [w for w in fit_warnings if w not in warnings]

    names = list(forecasters)
    blocks = [(m, d) for m in names for d in DEL_TYPES]
    reps = len(blocks)
    frame = pd.DataFrame({
        "origin": np.repeat(month_label([as_of]), n * reps),
        "model": pd.Categorical.from_codes(np.repeat([names.index(m) for m, _ in blocks], n), names),
        "segment": pd.Categorical.from_codes(np.tile(seg, reps), truth.segments),
        "del_type": pd.Categorical.from_codes(np.repeat([DEL_TYPES.index(d) for _, d in blocks], n), DEL_TYPES),
        "cohort": pd.Categorical.from_codes(np.tile(position[coh], reps), truth.cohort_labels),
        "mob": np.tile(mob, reps),
        "horizon": np.tile(ahead[coh, mob], reps),
        "forecast": np.concatenate([predictions[m][d][mask] for m, d in blocks]) if n else np.empty(0),
        "actual": np.concatenate([actual[d][mask] for _, d in blocks]) if n else np.empty(0),
        "weight": np.tile(weight[seg, coh], reps),
    })
    if spread:
        levels = spread[DEL_TYPES[0]][0]
        for q, level in enumerate(levels):
            frame[quantile_column(level)] = np.concatenate(
                [spread[d][1][q] if m == "markov" else np.full(n, np.nan) for m, d in blocks]) if n else np.empty(0)
        for column, item in (("crps", 2), ("in_interval", 3)):
            frame[column] = np.concatenate(
                [spread[d][item] if m == "markov" else np.full(n, np.nan) for m, d in blocks]) if n else np.empty(0)
    return frame, tuple(warnings)


def lowest(values: np.ndarray, models: Sequence[str]) -> np.ndarray:
    """(n,) the model of the lowest of each row of (n, models) errors, or `TIED` where two share it (to float
    noise: the models are computed differently)."""
    winner = np.asarray(models, dtype=object)[np.argmin(values, axis=1)]
    if len(models) > 1:
        ranked = np.sort(values, axis=1)
        winner[np.isclose(ranked[:, 0], ranked[:, 1], rtol=1e-9, atol=1e-12)] = TIED
    return winner


def summarise(cells: pd.DataFrame, by: Sequence[str] = ("horizon",)) -> pd.DataFrame:
    """Error metrics per model, segment, DEL type and the ``by`` columns.

    mae = mean |forecast - actual|, bias = mean (forecast - actual) (both in DEL points), mape = mean
    |forecast - actual| / actual over the cells whose actual is positive (NaN if none is). The *_ead versions
    weight each cell by its cohort's EAD at MOB 0. n_origins: how many as-of months contributed cells.
    With a forecast distribution (cells with quantile columns p.., crps and in_interval): mae_median = mean
    |median - actual|; coverage = mean in_interval, the share of the actuals inside the central interval between
    the lowest and highest quantile (nominally their difference, 80% for P10..P90), a tie with the interval's end
    counting in part (randomised PIT, `coverage_share`); coverage_plain = share of cells with lowest <= actual <=
    highest quantile (ties count whole: above nominal where outcomes are discrete); crps = mean continuous ranked
    probability score (DEL points). NaN for models without a distribution.
    """
    keys = ["model", "segment", "del_type", *by]
    error = (cells["forecast"] - cells["actual"]).to_numpy()
    actual = cells["actual"].to_numpy()
    weight = cells["weight"].to_numpy()
    scored = actual > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        ape = np.where(scored, np.abs(error) / np.where(scored, actual, 1.0), 0.0)
    parts = pd.DataFrame({
        "n": 1, "abs": np.abs(error), "err": error, "ape": ape, "scored": scored.astype(np.int64),
        "w": weight, "w_abs": weight * np.abs(error), "w_err": weight * error, "w_ape": weight * ape,
        "w_scored": weight * scored,
    }, index=cells.index)
    grouped = pd.concat([cells[keys], parts], axis=1).groupby(keys, observed=True, sort=True)
    s = grouped.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        out = pd.DataFrame({
            "n_origins": cells.groupby(keys, observed=True, sort=True)["origin"].nunique(),
            "n_cells": s["n"],
            "mae": s["abs"] / s["n"],
            "bias": s["err"] / s["n"],
            "mape": (s["ape"] / s["scored"]).where(s["scored"] > 0),
            "mae_ead": s["w_abs"] / s["w"],
            "bias_ead": s["w_err"] / s["w"],
            "mape_ead": (s["w_ape"] / s["w_scored"]).where(s["w_scored"] > 0),
        })
    quantiles = [c for c in cells.columns if c.startswith("p") and c[1:2].isdigit()]
    if "crps" in cells.columns and quantiles:
        lo, hi = cells[quantiles[0]].to_numpy(), cells[quantiles[-1]].to_numpy()
        scored = pd.DataFrame({
            "has": ~np.isnan(cells["crps"].to_numpy()),
            "abs_median": np.abs(cells["p50"].to_numpy() - actual),
            "covered": (lo <= actual) & (actual <= hi),
            "in_interval": cells["in_interval"].to_numpy(),
            "crps": cells["crps"].to_numpy(),
        }, index=cells.index)
        g = pd.concat([cells[keys], scored], axis=1).groupby(keys, observed=True, sort=True)
        has = g["has"].sum()
        sums = g[["abs_median", "covered", "in_interval", "crps"]].sum(min_count=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            for name, column in (("mae_median", "abs_median"), ("coverage", "in_interval"),
                                 ("coverage_plain", "covered"), ("crps", "crps")):
                out[name] = (sums[column] / has).where(has > 0)
    return out.reset_index()


# --------------------------------------------------------------------------------------------- the result


@dataclass(frozen=True)
class BacktestResult:
    """Every compared cell (``cells``) and the error tables derived from it."""

    cells: pd.DataFrame  # origin, model, segment, del_type, cohort, mob, horizon, forecast, actual, weight
    origins: tuple[str, ...]  # YYYY-MM, ascending
    horizon: int
    models: tuple[str, ...]
    config: Config
    segments: tuple[str, ...]  # Portfolio first
    info: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # origins that compared nothing, models left out
    warnings: tuple[str, ...] = ()

    @property
    def origins_text(self) -> str:
        """The as-of months as every message names them: "12 as-of months (2024-01 .. 2024-12)", "1 as-of month
        (2024-12)"."""
        o = self.origins
        return f"{counted(len(o), 'as-of month')} ({o[0]}{f' .. {o[-1]}' if len(o) > 1 else ''})"

    @property
    def months_ahead(self) -> int:
        """The most months ahead a scored cell lies, at most `horizon`: what the tables cover (a panel that ends 6
        months after its last as-of month has nothing 7..12 months ahead, and its sheets had said "1 to 12")."""
        return min(self.horizon, int(self.cells["horizon"].max())) if len(self.cells) else self.horizon

    @cached_property
    def by_horizon(self) -> pd.DataFrame:
        """Error metrics by months ahead, pooled over the origins."""
        return summarise(self.cells, ("horizon",))

    @cached_property
    def overall(self) -> pd.DataFrame:
        """Per model, segment and DEL type: MAE, bias and EAD-weighted MAE, the mean over months ahead. Each month
        ahead counts once however many cells it has (the near months have the most): the figure `tune` ranks by,
        Run info and the backtest summary show."""
        keys = ["model", "segment", "del_type"]
        return self.by_horizon.groupby(keys, observed=True, sort=False)[["mae", "bias", "mae_ead"]].mean().reset_index()

    @cached_property
    def by_mob(self) -> pd.DataFrame:
        """Error metrics by MOB of the forecast cell, pooled over the origins and horizons."""
        return summarise(self.cells, ("mob",))

    @cached_property
    def winners(self) -> pd.DataFrame:
        """Per segment, DEL type and months ahead: each model's MAE (plain and EAD-weighted) and the lowest.

        margin = 1 - best / runner-up: how much lower the winner's MAE is than the next model's; where the lowest is
        shared the winner is `TIED` and the margin 0. With a forecast distribution, the Markov chain's
        DISTRIBUTION_METRICS too (``coverage_markov``, ...).
        """
        table = self.by_horizon
        index = ["segment", "del_type", "horizon"]
        # Every model is scored on the same cells, so the counts of any one model serve.
        counts = table[table["model"] == self.models[0]].set_index(index)[["n_origins", "n_cells"]]
        out = counts.reset_index()
        for metric, suffix in (("mae", ""), ("mae_ead", "_ead")):
            wide = table.pivot(index=index, columns="model", values=metric).reindex(counts.index)
            values = wide[list(self.models)].to_numpy(dtype=np.float64)
            for model, column in zip(self.models, values.T, strict=True):
                out[f"{metric}_{model}"] = column
            ranked = np.sort(values, axis=1)
            out[f"winner{suffix}"] = pd.array(lowest(values, self.models), dtype="string")
            with np.errstate(invalid="ignore", divide="ignore"):
                out[f"margin{suffix}"] = 1 - ranked[:, 0] / ranked[:, 1] if len(self.models) > 1 else np.nan
        if "coverage" in table.columns and "markov" in self.models:
            markov = table[table["model"] == "markov"].set_index(index).reindex(counts.index)
            for metric in DISTRIBUTION_METRICS:
                out[f"{metric}_markov"] = markov[metric].to_numpy(dtype=np.float64)
        return out

    @cached_property
    def against_benchmarks(self) -> pd.DataFrame:
        """Per DEL type, the Markov forecast's Portfolio MAE against the better benchmark's, the difference with its
        interval from a paired bootstrap of cohort blocks and the verdict (`bootstrap.against_benchmarks`); empty
        without the Markov model or a benchmark."""
        benchmarks = tuple(m for m in BENCHMARKS if m in self.models)
        if "markov" not in self.models or not benchmarks or self.cells.empty:
            return pd.DataFrame()
        return bootstrap.against_benchmarks(self.mae_draws, "markov", benchmarks)

    @cached_property
    def mae_draws(self) -> bootstrap.MaeDraws:
        """Every model's Portfolio MAE under a paired bootstrap of cohort blocks, seeded (`bootstrap`): drawn once
        for the verdicts here and `tune`'s intervals."""
        return bootstrap.portfolio_mae_draws(self.cells, self.horizon, np.random.default_rng(bootstrap.SEED))

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tidy tables by file stem: cells, by horizon, by MOB, winners, the forecast against the benchmarks."""
        return {"backtest_cells": self.cells, "backtest_by_horizon": self.by_horizon,
                "backtest_by_mob": self.by_mob, "backtest_winners": self.winners,
                "backtest_vs_benchmark": self.against_benchmarks}


# ------------------------------------------------------------------------------------------------ running


def backtest_panel(panel: Panel, config: Config, origins: Sequence[int], *, horizon: int = DEFAULT_HORIZON,
                   models: Sequence[str] = MODELS, progress: Progress | None = None) -> BacktestResult:
    """A validated panel, backtested at each as-of month index in ``origins``."""
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise BacktestError(f"unknown models {unknown}; known: {', '.join(MODELS)}")
    notes = []
    models = [m for m in MODELS if m in models]
    c = config.calibration
    uncalibrated = c.mode == "none" and c.cohort_factor == "none" and c.period_level == "none"
    if uncalibrated and "markov" in models and "markov_uncalibrated" in models:
        models.remove("markov_uncalibrated")
        notes.append("calibration is off in the config, so 'markov' is already the uncalibrated chain; "
                     "'markov_uncalibrated' is left out")
    result = backtest_forecasters(panel, config, origins, {m: FORECASTERS[m] for m in models}, horizon=horizon,
                                  progress=progress)
    return replace(result, notes=(*notes, *result.notes))


def backtest_forecasters(panel: Panel, config: Config, origins: Sequence[int], forecasters: Mapping[str, Forecaster],
                         *, horizon: int = DEFAULT_HORIZON, progress: Progress | None = None) -> BacktestResult:
    """A validated panel, backtested at each as-of month index in ``origins`` with any named forecasters (the
    candidate settings of `tune`, an oracle that knows the simulated truth, the benchmarks).

    The full panel and each origin's cut are aggregated once with ``config``, whatever the forecasters are: a
    forecaster may fit with other estimation settings, but not with other buckets, columns or max_mob.
    """
    step = progress or (lambda _name: None)
    if horizon < 1:
        raise BacktestError(f"--horizon must be at least 1 month, got {horizon}")
    if not forecasters:
        raise BacktestError("nothing to backtest: no model was given")
    Calendar.of(panel).check(origins)
    origins = sorted({int(o) for o in origins})
    notes = []

    step("aggregate")
    full = check_stats(aggregate_panel(panel, config), config, panel.source)
    truth = _Truth(
        cohorts=full.cohorts,
        actual=_actuals(full, config),
        segments=pd.Index([PORTFOLIO, *full.segments]),
        cohort_labels=pd.Index(full.cohort_labels),
    )
    labels = month_label(origins)
    parts, warnings = [], list(full.warnings)
    for as_of, label in zip(origins, labels, strict=True):
        step(f"as-of {label}")
        stats = aggregate_panel(cut_panel(panel, as_of), config)
        try:
            cells, fit_warnings = _origin_cells(as_of, stats, truth, config, horizon, forecasters)
        except PanelError as exc:
            raise BacktestError(f"as-of {label}: {exc}") from exc
        if cells.empty:
            notes.append(f"as-of {label}: no forecast cell within {horizon} months was observed later "
                         f"(beyond [forecast] max_mob = {config.forecast.max_mob}?)")
        parts.append(cells)
        warnings += [f"as-of {label}: {w}" for w in fit_warnings if w not in full.warnings]
        log.info("backtest as-of %s: %d cells", label, len(cells) // max(len(forecasters) * len(DEL_TYPES), 1))
    cells = pd.concat(parts, ignore_index=True)
    if cells.empty:
        raise NothingToCompareError("no forecast cell at any as-of was observed later: " + "; ".join(notes))
    cells["origin"] = pd.Categorical(cells["origin"], categories=labels)
    return BacktestResult(
        cells=cells, origins=tuple(labels), horizon=horizon, models=tuple(forecasters), config=config,
        segments=tuple(truth.segments), notes=tuple(notes), warnings=tuple(warnings),
        info={"package_version": __version__, "input": panel.source, "rows": panel.n_rows},
    )


def read_validated(data, config: Config, *, sheet=None, progress: Progress | None = None) -> Panel:
    """A panel (DataFrame or file) read and validated once: the first steps of a backtest and of tune."""
    step = progress or (lambda _name: None)
    step("read")
    frame, source = read_panel(data, config, sheet=sheet)
    step("validate")
    return validate_panel(frame, config, source)


def backtest(data, config: Config | str | None = None, *, as_of: str | Sequence[str] | None = None,
             origins: int | None = None, horizon: int = DEFAULT_HORIZON, models: Sequence[str] = MODELS,
             sheet=None, progress: Progress | None = None) -> BacktestResult:
    """Panel (DataFrame or file) -> BacktestResult at the given as-of month(s), or at the last ``origins`` usable.

    The panel is read and validated once; every origin is a mask on the validated arrays.
    """
    started = time.perf_counter()
    if (as_of is None) == (origins is None):
        raise BacktestError("give the as-of month(s) or the number of origins, not both and not neither")
    cfg = config if isinstance(config, Config) else load_config(config)
    requested = [parse_month(a) for a in ([as_of] if isinstance(as_of, str) else as_of or [])]
    step = progress or (lambda _name: None)
    panel = read_validated(data, cfg, sheet=sheet, progress=step)
    chosen = requested or Calendar.of(panel, cfg.forecast.max_mob).last(origins)
    result = backtest_panel(panel, cfg, chosen, horizon=horizon, models=models, progress=step)
    elapsed = time.perf_counter() - started
    log.info("backtest: %d rows, %d origins in %.2f s", panel.n_rows, len(chosen), elapsed)
    return replace(result, info=result.info | {"run_seconds": round(elapsed, 3),
                                               "run_at": time.strftime("%Y-%m-%d %H:%M:%S")})
