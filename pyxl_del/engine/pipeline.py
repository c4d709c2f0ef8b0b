"""The whole engine in one call: panel + config -> DelResult (tables, matrices, factors, warnings).

``run(data, config)`` is what the CLI, the UDFs and the ribbon call. It is a pure function: parameters in,
a fitted, immutable result out.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import pandas as pd

from pyxl_del import __version__
from pyxl_del.engine.backends import (
    Progress,
    aggregate,
    choose_backend,
    fingerprint,
    source_name,
)
from pyxl_del.engine.calibration import (
    COHORT_FACTOR_COLUMNS,
    CalibrationFactors,
    calibrate,
)
from pyxl_del.engine.config import DEL_TYPES, Config, load_config
from pyxl_del.engine.data import PORTFOLIO, PanelStats, month_label, segment_named
from pyxl_del.engine.diagnostics import (
    diagnostics,
    illustrative_forecast,
    rates_above_one,
    short_history,
)
from pyxl_del.engine.errors import agree, counted
from pyxl_del.engine.forecast import forecast_ead
from pyxl_del.engine.intervals import ForecastIntervals, simulate_intervals
from pyxl_del.engine.metrics import DelRates, del_rates, ead_at_mob0
from pyxl_del.engine.period import (
    PeriodLevels,
    carry_period_level,
    fit_period_levels,
    remove_period_levels,
)
from pyxl_del.engine.portfolio import (
    ACTUAL_FLAG,
    FLAG_LABELS,
    PortfolioRates,
    aggregate_portfolio,
)
from pyxl_del.engine.transitions import (
    SOURCES,
    TransitionModel,
    estimate_transition_matrices,
    fallback_summary,
)

log = logging.getLogger(__name__)

TABLE_KINDS = ("mixed", "actual", "forecast", "flags")
STEPS = ("read", "validate", "aggregate", "transitions", "calibration", "forecast", "tables")


@dataclass(frozen=True)
class DelResult:
    """Everything one run produces. Arrays inside; tidy frames and wide tables through the methods."""

    config: Config
    stats: PanelStats
    transitions: TransitionModel  # as estimated, before calibration
    transition_matrix: np.ndarray  # (S, M, K, K) as applied (after calibration; cohort factors: `cohort_chain`)
    factors: CalibrationFactors
    ead_path: np.ndarray  # (S, C, M+1, K) actual where observed, else forecast
    rates: dict[str, DelRates]
    portfolio: dict[str, PortfolioRates]
    run_info: dict = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    # Quantiles of each cell beside the expected path ([forecast] intervals); None when switched off.
    intervals: ForecastIntervals | None = None
    # The calendar levels ([calibration] period_level); None when "none".
    period: PeriodLevels | None = None

    @property
    def segments(self) -> tuple[str, ...]:
        return self.stats.segments

    @property
    def short_history(self) -> np.ndarray:
        """(S,) the segments whose forecast is ILLUSTRATIVE: extrapolated from too few MOB steps (diagnostics)."""
        return short_history(self.transitions)

    @property
    def illustrative(self) -> str:
        """The sentence that marks the short history's forecast ILLUSTRATIVE (also in ``warnings``); "" if none."""
        return illustrative_forecast(self.transitions, self.stats, self.config)

    def is_illustrative(self, segment: str) -> bool:
        """Whether ``segment``'s forecast is ILLUSTRATIVE (the Portfolio's: when any segment's is)."""
        short = self.short_history
        segment = self.segment_named(segment)
        return bool(short.any() if segment == PORTFOLIO else short[self._segment_index(segment)])

    @property
    def cohorts(self) -> list[str]:
        """Cohort labels YYYY-MM, ascending."""
        return self.stats.cohort_labels

    @property
    def mobs(self) -> np.ndarray:
        return np.arange(self.stats.max_mob + 1)

    @property
    def sheet_segments(self) -> tuple[str, ...]:
        """Portfolio first, then the segments (the order of the workbook's sheets)."""
        return (PORTFOLIO, *self.segments)

    def segment_named(self, name: str) -> str:
        """The segment (or Portfolio) ``name`` reads as (`engine.data.segment_named`); KeyError naming the known."""
        return segment_named(name, self.segments)

    def _segment_index(self, segment: str) -> int:
        try:
            return self.segments.index(segment)
        except ValueError:
            named = self.segment_named(segment)
            if named == PORTFOLIO:  # the DEL tables have it, as a mean over segments; a chain is a segment's
                raise KeyError(f"{PORTFOLIO} has no transition matrix of its own (its DEL is the segments' mean): "
                               f"give a segment — {', '.join(map(repr, self.segments))}") from None
            return self.segments.index(named)

    def wide(self, segment: str, del_type: str = "DEL30", kind: str = "mixed") -> pd.DataFrame:
        """Cohort rows x MOB columns 0..max_mob. kind: mixed, actual, forecast or flags.

        Rows are the cohorts the segment has (every cohort for the Portfolio); absent cells are NaN
        (empty string in flags).
        """
        if del_type not in DEL_TYPES:
            raise KeyError(f"unknown DEL type {del_type!r} — known: {', '.join(DEL_TYPES)}")
        if kind not in TABLE_KINDS:
            raise KeyError(f"unknown table kind {kind!r} — known: {', '.join(TABLE_KINDS)}")
        segment = self.segment_named(segment)
        if segment == PORTFOLIO:
            p = self.portfolio[del_type]
            rows = p.present
            values = FLAG_LABELS_ARRAY[p.flag] if kind == "flags" else getattr(p, kind)
        else:
            s = self._segment_index(segment)
            r = self.rates[del_type]
            rows = r.present[s]
            if kind == "flags":
                values = np.where(r.is_actual[s], "ACTUAL", "FORECAST")
            else:
                values = getattr(r, kind)[s]
        index = pd.Index(np.asarray(self.cohorts, dtype=object)[rows], name="cohort", dtype="string")
        frame = pd.DataFrame(values[rows], index=index, columns=pd.Index(self.mobs, name="mob"))
        return frame.astype("string") if kind == "flags" else frame

    def flags_wide(self, segment: str, del_type: str = "DEL30") -> pd.DataFrame:
        return self.wide(segment, del_type, "flags")

    def quantile_wide(self, segment: str, del_type: str, level: float) -> pd.DataFrame:
        """The ``level`` quantile of each cell (one of ``intervals.levels``), shaped as ``wide``: actual cells hold
        the actual. KeyError when intervals are off or the level was not computed."""
        if self.intervals is None:
            raise KeyError("no forecast intervals: [forecast] intervals = false")
        if level not in self.intervals.levels:
            raise KeyError(f"quantile {level} was not computed — computed: {list(self.intervals.levels)}")
        q = self.intervals.levels.index(level)
        segment = self.segment_named(segment)
        mixed = self.wide(segment, del_type, "mixed")
        if segment == PORTFOLIO:
            values = self.intervals.portfolio[del_type][q][self.portfolio[del_type].present]
        else:
            s = self._segment_index(segment)
            values = self.intervals.segments[del_type][q, s][self.rates[del_type].present[s]]
        return pd.DataFrame(values, index=mixed.index, columns=mixed.columns)

    @cached_property
    def del_long(self) -> pd.DataFrame:
        """segment, del_type, cohort, mob, actual, forecast, mixed, flag — one row per cell of every wide table —
        and with intervals on, the quantiles p10, p50, p90 (``intervals.columns``; actual cells: the actual)."""
        parts = []
        n_mob = len(self.mobs)
        labels = np.asarray(self.cohorts, dtype=object)
        for del_type in DEL_TYPES:
            p = self.portfolio[del_type]
            r = self.rates[del_type]
            iv = self.intervals
            blocks = [(PORTFOLIO, p.present, p.actual, p.forecast, p.mixed, FLAG_LABELS_ARRAY[p.flag],
                       None if iv is None else iv.portfolio[del_type])]
            for s, segment in enumerate(self.segments):
                flags = np.where(r.is_actual[s], "ACTUAL", "FORECAST")
                blocks.append((segment, r.present[s], r.actual[s], r.forecast[s], r.mixed[s], flags,
                               None if iv is None else iv.segments[del_type][:, s]))
            for segment, rows, actual, forecast, mixed, flags, quantiles in blocks:
                n = int(rows.sum())
                columns = {} if quantiles is None else {
                    name: q[rows].ravel() for name, q in zip(iv.columns, quantiles, strict=True)}
                parts.append(pd.DataFrame({
                    "segment": segment,
                    "del_type": del_type,
                    "cohort": np.repeat(labels[rows], n_mob),
                    "mob": np.tile(self.mobs, n),
                    "actual": actual[rows].ravel(),
                    "forecast": forecast[rows].ravel(),
                    "mixed": mixed[rows].ravel(),
                    "flag": flags[rows].ravel(),
                } | columns))
        frame = pd.concat(parts, ignore_index=True)
        for col in ("segment", "del_type", "cohort", "flag"):
            frame[col] = frame[col].astype("string")
        return frame

    def portfolio_as(self, aggregation: str) -> dict[str, PortfolioRates]:
        """The Portfolio aggregated as ``aggregation`` ("mean" | "ead_weighted"), by DEL type: the run's own when
        it is the configured one, else the other view of the same segments."""
        if aggregation == self.config.portfolio.aggregation:
            return self.portfolio
        return _portfolio(self.stats, self.rates, aggregation)

    @cached_property
    def as_of(self) -> str:
        """The reporting month (YYYY-MM): the latest calendar month any cohort has actual data for, rows beyond
        max_mob included (the risk views start from it; the DEL tables stop at max_mob and say so)."""
        return month_label([self.stats.reporting_month])[0] if (self.stats.last_mob >= 0).any() else ""

    @cached_property
    def cohort_sizes(self) -> pd.DataFrame:
        """segment, cohort, loans, ead_mob0, last_actual_mob: the size of each row of the DEL tables (the
        Portfolio's: the sums over its segments, and the last MOB where every one of them is actual)."""
        loans = self.stats.n_loans.max(axis=2)  # (S, C): loans drop out of a panel, they do not join later
        ead0 = ead_at_mob0(self.stats)
        rates = self.rates[DEL_TYPES[0]]

        def last(actual: np.ndarray) -> np.ndarray:
            n_mob = actual.shape[-1]
            return np.where(actual.any(axis=-1), n_mob - 1 - np.argmax(actual[..., ::-1], axis=-1), -1)

        parts = []
        labels = np.asarray(self.cohorts, dtype=object)
        portfolio = self.portfolio[DEL_TYPES[0]]
        present = rates.present
        blocks = [(PORTFOLIO, portfolio.present, np.where(present, loans, 0).sum(axis=0),
                   np.where(present, ead0, 0.0).sum(axis=0), last(portfolio.flag == ACTUAL_FLAG))]
        blocks += [(segment, present[s], loans[s], ead0[s], last(rates.is_actual[s]))
                   for s, segment in enumerate(self.segments)]
        for segment, rows, n, ead, last_mob in blocks:
            parts.append(pd.DataFrame({"segment": segment, "cohort": labels[rows], "loans": n[rows].astype(np.int64),
                                       "ead_mob0": ead[rows].astype(np.float64),
                                       "last_actual_mob": last_mob[rows].astype(np.int64)}))
        frame = pd.concat(parts, ignore_index=True)
        for col in ("segment", "cohort"):
            frame[col] = frame[col].astype("string")
        return frame

    @property
    def calibration_factors(self) -> pd.DataFrame:
        return self.factors.table(self.segments)

    @property
    def cohort_factors(self) -> pd.DataFrame:
        """The vintage quality factors ([calibration] cohort_factor), one row per cohort-segment with loans, columns
        COHORT_FACTOR_COLUMNS; empty when there are none."""
        cohort = self.factors.cohort
        if cohort is None:
            return pd.DataFrame({c: pd.array([], dtype="string" if c in ("segment", "cohort") else "float64")
                                 for c in COHORT_FACTOR_COLUMNS})
        return cohort.table(self.segments, self.stats.cohorts)

    def cohort_chain(self, matrices: np.ndarray) -> np.ndarray:
        """Segment matrices laid out per cohort, (S, C or 1, ..., K, K), as this run rolls each cohort forward:
        scaled by the cohort factors when there are any, else unchanged. Everything that rolls a cohort of the book
        forward (the forecast, the risk projection) goes through it, so their figures agree."""
        cohort = self.factors.cohort
        return matrices if cohort is None else cohort.scale(matrices)

    @cached_property
    def transition_matrices(self) -> pd.DataFrame:
        """segment, mob, from_state, to_state, probability (as applied), n_obs, source — tidy."""
        s, m, i, j = np.indices(self.transition_matrix.shape).reshape(4, -1)
        states = np.asarray(self.stats.states, dtype=object)
        return pd.DataFrame({
            "segment": pd.array(np.asarray(self.segments, dtype=object)[s], dtype="string"),
            "mob": m,
            "from_state": pd.array(states[i], dtype="string"),
            "to_state": pd.array(states[j], dtype="string"),
            "probability": self.transition_matrix.ravel(),
            "n_obs": self.transitions.n_obs[s, m, i],
            "source": pd.array(np.asarray(SOURCES, dtype=object)[self.transitions.source[s, m, i]],
                               dtype="string"),
        })

    def matrix(self, segment: str, mob: int) -> pd.DataFrame:
        """The applied transition matrix of one segment for step mob -> mob+1, states as labels."""
        s = self._segment_index(segment)
        if not 0 <= mob < self.transition_matrix.shape[1]:
            raise KeyError(f"MOB step {mob} is outside 0..{self.transition_matrix.shape[1] - 1}")
        states = pd.Index(self.stats.states, dtype="string")
        return pd.DataFrame(self.transition_matrix[s, mob], index=states.rename("from_state"),
                            columns=states.rename("to_state"))


FLAG_LABELS_ARRAY = np.asarray(FLAG_LABELS, dtype=object)


def _portfolio(stats: PanelStats, rates: dict[str, DelRates], aggregation: str) -> dict[str, PortfolioRates]:
    ead0 = ead_at_mob0(stats)
    return {d: aggregate_portfolio(r.mixed, r.is_actual, r.present, ead0, aggregation) for d, r in rates.items()}


def _thin_factor_warnings(factors: CalibrationFactors, segments: tuple[str, ...], config: Config) -> list[str]:
    """A sentence when step-wise factors rest on fewer loans than [transitions] min_count, and one when cohort factors
    were clipped."""
    out = []
    few = config.transitions.min_count
    table = factors.table(segments)
    thin = table[(table["n_loans"] < few) & (table["k"] != 1.0)]
    if len(thin):
        first = thin.iloc[0]
        out.append(f"{counted(len(thin), 'calibration factor')} {agree(len(thin), 'rests', 'rest')} on fewer "
                   f"than [transitions] min_count = {few} loans (e.g. "
                   f"segment {first['segment']!r} MOB {int(first['mob'])}: k = {first['k']:.3g} from "
                   f"{counted(int(first['n_loans']), 'loan')}); raise [calibration] min_cohort_loans or use "
                   f"weights = \"loans\" so that small cohorts cannot drive them")
    cohort = factors.cohort
    if cohort is not None:
        lo, hi = config.calibration.cohort_clip
        clipped = (cohort.n_loans > 0) & ((cohort.factor <= lo) | (cohort.factor >= hi)) & (cohort.credibility > 0)
        if clipped.any():
            n = int(clipped.sum())
            out.append(f"{counted(n, 'cohort factor')} reached [calibration] cohort_clip {[lo, hi]}")
    return out


def fit(stats: PanelStats, config: Config, progress: Progress | None = None) -> DelResult:
    """Sufficient statistics -> result (every stage after aggregation)."""
    step = progress or (lambda _name: None)
    step("transitions")
    period = fit_period_levels(stats, config) if config.calibration.period_level != "none" else None
    kept = period if period is not None and period.applied else None
    # the chain and its calibration see the moves of a level-1 month; the actual cells stay as reported
    level_one = remove_period_levels(stats, kept, config) if kept is not None else stats
    model = estimate_transition_matrices(level_one, config)
    step("calibration")
    applied, factors = calibrate(level_one, model.transition_matrix, config)
    if kept is not None:
        applied = carry_period_level(applied, kept, config)
    step("forecast")
    path = forecast_ead(stats, applied, factors.cohort)
    intervals = (simulate_intervals(stats, applied, model.concentration, config, factors.cohort)
                 if config.forecast.intervals else None)
    step("tables")
    rates = del_rates(stats, path, config)
    portfolio = _portfolio(stats, rates, config.portfolio.aggregation)
    warnings = list(stats.warnings)
    if illustrative := illustrative_forecast(model, stats, config):
        warnings.append(illustrative)
    warnings += diagnostics(stats, config)
    if above := rates_above_one(stats, rates, config):
        warnings.append(above)
    present = (stats.ead.sum(axis=(0, 1, 2)) > 0) | (stats.cohort_trans_count.sum(axis=(0, 1, 2, 3)) > 0)
    warnings += fallback_summary(model, stats.segments, stats.states, config.buckets.absorbing,
                                 config.transitions.min_count, present)
    table = factors.table(stats.segments)
    clipped = table[table["k"] != table["k_unclipped"]]
    if len(clipped):
        # "of" how many: 92 clipped says something else of 100 factors than of 10,000.
        warnings.append(f"{len(clipped):,} of {counted(len(table), 'calibration factor')} "
                        f"{agree(len(clipped), 'was', 'were')} clipped to k_clip {list(config.calibration.k_clip)} "
                        f"(sheet Calibration, k against k_unclipped)")
    warnings += _thin_factor_warnings(factors, stats.segments, config)
    if kept is not None:
        warnings.append(kept.note(config))
    return DelResult(
        config=config, stats=stats, transitions=model, transition_matrix=applied, factors=factors,
        ead_path=path, rates=rates, portfolio=portfolio, warnings=tuple(warnings), intervals=intervals,
        period=period,
    )


def run(data, config: Config | str | None = None, *, sheet=None, progress: Progress | None = None,
        backend: str = "auto", spark=None) -> DelResult:
    """Panel + config -> DelResult. ``data``: a DataFrame, a .csv/.parquet/.xlsx file, a glob or a folder of
    parts, or a Spark DataFrame. ``backend``: "auto" (DataFrame, .xlsx and one Parquet file that fits in memory
    -> pandas, other files -> duckdb), "pandas", "duckdb" or "spark" (``spark``: a SparkSession or a master URL);
    see backends.py."""
    started = time.perf_counter()
    cfg = config if isinstance(config, Config) else load_config(config)
    step = progress or (lambda _name: None)
    chosen = choose_backend(data) if backend == "auto" else backend
    stats = aggregate(data, cfg, chosen, spark=spark, progress=step, sheet=sheet)
    result = fit(stats, cfg, progress=step)
    elapsed = time.perf_counter() - started
    info = {
        "package_version": __version__,
        "input": source_name(data),
        "backend": chosen,
        "rows": int(stats.n_rows),
        "fingerprint": fingerprint(data, cfg),
        "run_seconds": round(elapsed, 3),
        "run_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "segments": len(stats.segments),
        "cohorts": f"{month_label(stats.cohorts[:1])[0]} .. {month_label(stats.cohorts[-1:])[0]} "
                   f"({len(stats.cohorts)})",
        "config": cfg.to_toml(),
    }
    log.info("pyxl_del run: %d rows in %.2f s (%.0f rows/s)", stats.n_rows, elapsed, stats.n_rows / max(elapsed, 1e-9))
    return replace(result, run_info=info)
