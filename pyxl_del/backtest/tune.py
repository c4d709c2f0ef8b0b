"""Model selection on the user's own data: candidate estimation settings compared by rolling-origin error.

Every candidate is a set of config overrides (``CANDIDATES``, or a user's TOML file). The panel is read and
validated once; at each origin its cut is aggregated once and every candidate fits on the same statistics, beside
the benchmarks (chain-ladder, the last value carried forward). The score of a setting is the Portfolio MAE, the
mean over months ahead 1..horizon of each month's MAE, per DEL type; the winner has the lowest mean over the DEL
types, unless the comparison cannot separate the candidates (a tie, a candidate without a score): then there is none
and `TuneResult.undecided` says why. Every score's difference to the config as it is has a cohort-block bootstrap
interval (`bootstrap`); a winner whose lead may be chance says so (`TuneResult.within_noise`). `write_settings` puts
the winner's settings into config.toml, comments kept. Method: docs/backtesting.md.
"""

from __future__ import annotations

import logging
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from pyxl_del.backtest.bootstrap import (
    LEVEL,
    MIN_BLOCKS,
    MaeDraws,
)
from pyxl_del.backtest.rolling import (
    BENCHMARKS,
    DEFAULT_HORIZON,
    FORECASTERS,
    MODEL_LABELS,
    BacktestResult,
    Calendar,
    Forecaster,
    backtest_forecasters,
    read_validated,
)
from pyxl_del.engine.config import (
    DEL_TYPES,
    SPECIFIED,
    Config,
    ConfigError,
    config_from_dict,
    load_config,
)
from pyxl_del.engine.data import PORTFOLIO, Panel
from pyxl_del.engine.errors import agree, counted, read_text, reading
from pyxl_del.engine.pipeline import Progress

log = logging.getLogger(__name__)

# The sections a candidate may change: how the chain is estimated and calibrated. Columns, buckets and max_mob
# change what is compared, so they stay the config's.
TUNABLE_SECTIONS = ("transitions", "calibration", "forecast")
FIXED_KEYS = (("forecast", "max_mob"),)
UNUSED_BY = {"bayes": (("transitions", "fallback"),),
             "specified": (("transitions", "prior_strength"), ("transitions", "prior_stay"))}
CURRENT = "as configured"
# Scores closer than this tie: 0.001 DEL points, the last digit the ranking shows, so a winner's lead is always
# visible there (settings that change nothing on a panel differ by float noise, far below it).
SCORE_TIE = 1e-5


def _variant(base: Mapping[str, Mapping], **sections: Mapping) -> dict[str, dict]:
    return {name: {**base.get(name, {}), **sections.get(name, {})} for name in {*base, *sections}}


# The shipped settings, every key of the sections the built-in candidates spell out whole: a key a candidate left
# to the user's config.toml made it mean something else there ("the defaults" with the user's min_count 100 was
# "as configured", and a key `tune --write` had set moved the next run's candidates).
DEFAULTS = {section: Config().model_dump()[section] for section in ("transitions", "calibration")}
AS_SPECIFIED = _variant(DEFAULTS, **SPECIFIED)


# Candidate name -> config overrides. A candidate naming a key this version's Config does not know is left out
# with a note, so a candidate of an estimation mode is one line here, added with the mode. Each candidate spells
# out every key of [transitions] and [calibration] (DEFAULTS, and the difference it stands for), so it means the
# same whatever the user's config.toml holds.
CANDIDATES: dict[str, dict[str, dict]] = {
    "as specified (EAD-weighted, calibrated)": AS_SPECIFIED,
    "as specified, uncalibrated": _variant(AS_SPECIFIED, calibration={"mode": "none"}),
    "as specified, balance-weighted": _variant(AS_SPECIFIED, transitions={"weighting": "balance"}),
    "as specified, count-weighted": _variant(AS_SPECIFIED, transitions={"weighting": "count"}),
    "as specified, calibrated on DEL60": _variant(AS_SPECIFIED, calibration={"del_type": "DEL60"}),
    "as specified, pooled below 100 loans": _variant(AS_SPECIFIED, transitions={"min_count": 100,
                                                                                "fallback": "pooled"}),
    "Bayes": _variant(AS_SPECIFIED, transitions={"estimator": "bayes", "prior_stay": 0}),
    "cohort factors": _variant(AS_SPECIFIED, calibration={"weights": "loans", "cohort_factor": "credibility"}),
    "balance-weighted, cohort factors": _variant(DEFAULTS, transitions={"estimator": "specified"}),
    "Bayes, balance-weighted, cohort factors (the defaults)": DEFAULTS,
    "defaults, EAD-weighted": _variant(DEFAULTS, transitions={"weighting": "ead"}),
    "defaults, k over cohorts": _variant(DEFAULTS, calibration={"weights": "cohorts"}),
    "defaults, no step factors k": _variant(DEFAULTS, calibration={"mode": "none"}),
    "defaults, independent vintages": _variant(DEFAULTS, calibration={"vintage_correlation": 0.0}),
    "defaults, half-life 12 months": _variant(DEFAULTS, transitions={"half_life": 12}),
    "defaults, last 24 months": _variant(DEFAULTS, transitions={"window": 24}),
    "defaults, tail from the last step": _variant(DEFAULTS, transitions={"tail_window": 1}),
    "defaults, tail from the last 6 steps": _variant(DEFAULTS, transitions={"tail_window": 6}),
    "defaults, prior leaning to stay (5 loans)": _variant(DEFAULTS, transitions={"prior_stay": 5}),
    "defaults, no calendar level": _variant(DEFAULTS, calibration={"period_level": "none"}),
    "defaults, calendar level always": _variant(DEFAULTS, calibration={"period_level": "always"}),
}


class CandidateError(ConfigError):
    """A candidate that cannot be compared: an unknown section or key, a bad value, a clashing name."""


def unknown_keys(overrides: Mapping, config: Config) -> list[str]:
    """The keys of ``overrides`` this Config does not know, or that a candidate may not change, as "[section] key"."""
    problems = []
    for section, values in overrides.items():
        if section not in TUNABLE_SECTIONS:
            problems.append(f"[{section}] (a candidate may change only {', '.join(f'[{s}]' for s in TUNABLE_SECTIONS)})")
        elif not isinstance(values, Mapping):
            problems.append(f"[{section}] (must be a table of keys, got {values!r})")
        else:
            known = type(getattr(config, section)).model_fields
            problems += [f"[{section}] {key}" + (" (fixed: it changes what is compared)"
                                                  if (section, key) in FIXED_KEYS else "")
                         for key in values if key not in known or (section, key) in FIXED_KEYS]
    return problems


@dataclass(frozen=True)
class Candidates:
    """The settings to compare (name -> config), the overrides each was given, and the candidates left out."""

    configs: dict[str, Config]
    overrides: dict[str, dict]
    notes: tuple[str, ...] = ()


def resolve_candidates(config: Config, candidates: Mapping[str, Mapping] | None = None, *,
                       strict: bool = False, source: str = "candidates") -> Candidates:
    """The config as it is (``CURRENT``) and each candidate applied to it.

    A candidate with keys this version does not know is left out with a note, or with ``strict`` (a user's
    file) raises a CandidateError naming every such key; a bad value always raises, naming the candidate. A
    candidate whose settings equal an earlier one's is left out with a note (it would score the same).
    """
    built_in = candidates is None
    candidates = CANDIDATES if candidates is None else candidates
    configs, overrides, notes, problems = {CURRENT: config}, {CURRENT: {}}, [], []
    for name, values in candidates.items():
        if name in (CURRENT, *BENCHMARKS, *MODEL_LABELS):
            raise CandidateError(f"{source}: candidate name {name!r} is taken (by the config as it is or a "
                                 f"benchmark); choose another")
        if not isinstance(values, Mapping):
            problems.append(f"{name!r}: not a table of [section] keys")
            continue
        unknown = unknown_keys(values, config)
        if unknown:
            problems.append(f"{name!r}: {', '.join(unknown)}")
            continue
        data = config.model_dump()
        for section, changed in values.items():
            data[section].update(changed)
        try:
            candidate = config_from_dict(data, source=f"{source}: candidate {name!r}")
        except ConfigError as exc:
            raise CandidateError(str(exc)) from None
        same = next((n for n, c in configs.items() if c == candidate), None)
        if same is not None:
            notes.append(f"candidate {name!r} has the same settings as {same!r}; left out")
            continue
        # A built-in candidate spells out every key; what it stands for, and what the tables say it sets, is its
        # difference to the shipped defaults.
        configs[name], overrides[name] = candidate, {
            s: {k: v for k, v in values_.items() if not built_in or DEFAULTS.get(s, {}).get(k) != v}
            for s, values_ in values.items()}
    if problems and strict:
        raise CandidateError(f"{source}: unknown keys in candidates (this version's [transitions] keys: "
                             f"{', '.join(Config().transitions.model_dump())}; [calibration]: "
                             f"{', '.join(Config().calibration.model_dump())}): " + "; ".join(problems))
    notes += [f"candidate {p}: not a setting of this version; left out" for p in problems]
    return Candidates(configs, overrides, tuple(notes))


def load_candidates(path: str | Path) -> dict[str, dict]:
    """A candidates file: one TOML table per candidate, its sub-tables the config sections it changes::

        ["count-weighted"]
        transitions = { weighting = "count" }
        calibration = { mode = "none" }
    """
    path = Path(path)
    if not path.is_file():
        raise CandidateError(f"candidates file not found: {path}")
    text = read_text(path, "candidates", error=CandidateError)
    with reading(path, "candidates", error=CandidateError):
        data = tomllib.loads(text)
    if not data:
        raise CandidateError(f"{path}: no candidate in the file; write one table per candidate, e.g. "
                             f'["count-weighted"] transitions = {{ weighting = "count" }}')
    return data


def settings_text(config: Config) -> str:
    """The estimation settings of a config, one line: what `tune` compares and Run info names as the model. A key
    the estimator does not read is left out (`fallback` under "bayes", whose thin rows take their prior; the prior's
    keys under "specified"), as naming it said the model used it."""
    unused = UNUSED_BY[config.transitions.estimator]
    parts = []
    for section in TUNABLE_SECTIONS:
        values = {k: v for k, v in getattr(config, section).model_dump().items()
                  if (section, k) not in FIXED_KEYS and (section, k) not in unused and v is not None}
        if values:
            parts.append(f"[{section}] " + ", ".join(f"{k} = {list(v) if isinstance(v, tuple) else v}"
                                                     for k, v in values.items()))
    return "; ".join(parts)


def overrides_text(overrides: Mapping[str, Mapping]) -> str:
    """A candidate's overrides, one short line: "[transitions] weighting = count; [calibration] mode = none";
    "config.toml as it is" for none ({}, *as configured*), "the shipped defaults" for sections without a change (the
    built-in candidate of the defaults)."""
    text = "; ".join(f"[{section}] " + ", ".join(f"{k} = {list(v) if isinstance(v, tuple) else v}"
                                                 for k, v in values.items())
                     for section, values in overrides.items() if values)
    return text or ("the shipped defaults" if overrides else "config.toml as it is")


def changes(current: Config, chosen: Config) -> list[tuple[str, str, object, object]]:
    """(section, key, old, new) for every tunable key that differs."""
    out = []
    for section in TUNABLE_SECTIONS:
        old, new = getattr(current, section).model_dump(), getattr(chosen, section).model_dump()
        out += [(section, key, old[key], new[key]) for key in new if old.get(key) != new[key]]
    return out


# ------------------------------------------------------------------------------------------------ the result


@dataclass(frozen=True)
class TuneResult:
    """The backtest of every candidate and benchmark, and the table that ranks them."""

    backtest: BacktestResult
    candidates: Candidates
    notes: tuple[str, ...] = ()
    info: dict = field(default_factory=dict)

    @property
    def config(self) -> Config:
        return self.candidates.configs[CURRENT]

    @cached_property
    def by_horizon(self) -> pd.DataFrame:
        """The Portfolio's MAE by months ahead: one row per model, DEL type and months ahead."""
        table = self.backtest.by_horizon
        return table[table["segment"] == PORTFOLIO].reset_index(drop=True)

    @cached_property
    def by_segment(self) -> pd.DataFrame:
        """Every segment's MAE, the mean over months ahead, per model and DEL type."""
        return self.backtest.overall

    @cached_property
    def _ranked(self) -> pd.DataFrame:
        wide = portfolio_mae(self.backtest)
        out = pd.DataFrame({"model": wide.index.astype(str)})
        out["kind"] = ["benchmark" if m in BENCHMARKS else "candidate" for m in out["model"]]
        out["overrides"] = ["" if m in BENCHMARKS else overrides_text(self.candidates.overrides[m])
                            for m in out["model"]]
        out["settings"] = [MODEL_LABELS[m] if m in BENCHMARKS else settings_text(self.candidates.configs[m])
                           for m in out["model"]]
        for del_type in DEL_TYPES:
            out[f"mae_{del_type}"] = wide[del_type].to_numpy(dtype=np.float64)
        out["score"] = out[[f"mae_{d}" for d in DEL_TYPES]].mean(axis=1)
        candidate = out["kind"] == "candidate"
        scores = out["score"].where(candidate).to_numpy(dtype=np.float64)
        # Scores within SCORE_TIE share a rank: a lead the table cannot show is no lead.
        lower = (scores[None, :] < scores[:, None] - SCORE_TIE).sum(axis=1)
        out["rank"] = pd.Series(1 + lower, dtype="Int64").where(~np.isnan(scores))
        best_benchmark = out.loc[~candidate, "score"].min()
        # Against benchmarks that made no error (or have no score) a ratio means nothing.
        out["vs_best_benchmark"] = out["score"] / best_benchmark - 1 if best_benchmark > 0 else np.nan
        return out

    @cached_property
    def undecided(self) -> str | None:
        """Why no candidate can be called the best, or None when one is: no candidate has a score, some have none
        (nothing can be said to beat them), only the config as it is was compared, or the lowest score is shared
        (within SCORE_TIE)."""
        table = self._ranked[self._ranked["kind"] == "candidate"]
        missing = table.loc[table["score"].isna(), "model"].tolist()
        if len(missing) == len(table):
            return "no candidate has a score: none of their forecasts was compared with an observed DEL"
        if missing:
            return (f"{counted(len(missing), 'candidate')} {agree(len(missing), 'has', 'have')} no score "
                    f"({'; '.join(missing)}): no other can be said to beat {agree(len(missing), 'it', 'them')}")
        if len(table) == 1:
            return "only the config as it is was compared: every other candidate was left out"
        tied = table.loc[table["rank"] == 1, "model"].tolist()
        lowest = f"{table['score'].min():.3%} mean MAE"
        if len(tied) == len(table):
            return f"all {len(table)} candidates score the same ({lowest}): this panel cannot tell them apart"
        if len(tied) > 1:
            return f"{len(tied)} candidates share the lowest score ({lowest}): {'; '.join(tied)}"
        return None

    @cached_property
    def behind_benchmark(self) -> str | None:
        """The sentence for a comparison no candidate wins against a benchmark (the best candidate's score above
        the best benchmark's by more than SCORE_TIE); None when one does. Writing the winner still makes the chain
        better than it was; it does not make it better than the benchmark."""
        ranked = self._ranked
        candidates = ranked[ranked["kind"] == "candidate"].dropna(subset=["score"])
        benchmarks = ranked[ranked["kind"] == "benchmark"].dropna(subset=["score"])
        if candidates.empty or benchmarks.empty:
            return None
        best = candidates.loc[candidates["score"].idxmin()]
        bench = benchmarks.loc[benchmarks["score"].idxmin()]
        if best["score"] <= bench["score"] + SCORE_TIE:
            return None
        # A benchmark that made no error has no ratio to it (as in vs_best_benchmark).
        ratio = f" ({best['score'] / bench['score'] - 1:+.1%})" if bench["score"] > 0 else ""
        return (f"no candidate beats the benchmark '{MODEL_LABELS[bench['model']]}' on these as-of months: the best, "
                f"{best['model']!r}, scores {best['score']:.3%} mean MAE against {bench['score']:.3%}{ratio}; on "
                f"this data the chain's forecast has been worse than that benchmark, so read the forecasts beside it")

    @property
    def draws(self) -> MaeDraws:
        """The scores under a paired bootstrap of cohort blocks (`BacktestResult.mae_draws`)."""
        return self.backtest.mae_draws

    @cached_property
    def lead(self) -> tuple[float, float, float] | None:
        """The winner's score minus the config as it is's (negative: better) and its LEVEL interval (NaN with
        too few cohorts for one); None without a winner other than the config as it is."""
        if self.winner is None or self.winner == CURRENT:
            return None
        return self.draws.lead(self.winner, CURRENT, LEVEL)

    @cached_property
    def within_noise(self) -> str | None:
        """Why the winner's lead over the config as it is may be chance (its interval reaches 0, or the panel has
        too few cohorts for an interval), or None when the lead is clear of noise or there is no such winner."""
        if self.lead is None:
            return None
        difference, lo, hi = self.lead
        if np.isnan(hi):
            return (f"with {counted(self.draws.n_cohorts, 'cohort')} the lead of {self.winner!r} over {CURRENT!r} "
                    f"({difference:+.3%} mean MAE) cannot be told from chance: an interval needs "
                    f"{MIN_BLOCKS} blocks of cohorts")
        if hi < 0:
            return None
        return (f"the lead of {self.winner!r} over {CURRENT!r}, {difference:+.3%} mean MAE, is within noise: its "
                f"{LEVEL:.0%} interval [{lo:+.3%}, {hi:+.3%}] reaches 0 (a bootstrap of "
                f"{counted(self.draws.n_blocks, 'block')} of cohorts)")

    @cached_property
    def table(self) -> pd.DataFrame:
        """One row per candidate, then the benchmarks: the Portfolio MAE (mean over months ahead) per DEL type,
        their mean (the score), the rank among the candidates (tied scores share it), the score against the best
        benchmark, the score's difference to the config as it is with its LEVEL interval (vs_configured,
        vs_configured_lo, vs_configured_hi; NaN bounds with too few cohorts) and the verdict: "winner", "tied
        lowest" (the lowest score is shared: no winner), "no score"."""
        out = self._ranked.copy()
        leads = [self.draws.lead(m, CURRENT, LEVEL) if m in self.draws.models else (np.nan,) * 3
                 for m in out["model"]]
        leads = np.array(leads, dtype=float)
        # Settings that change nothing differ by float noise, which would print as -0.000%.
        leads[np.abs(leads) < 1e-12] = 0.0
        out["vs_configured"], out["vs_configured_lo"], out["vs_configured_hi"] = leads.T
        candidate = out["kind"] == "candidate"
        tied = candidate & (out["rank"] == 1).fillna(False)
        out["verdict"] = ""
        if self.winner is not None:
            out.loc[out["model"] == self.winner, "verdict"] = "winner"
        elif tied.sum() > 1:
            out.loc[tied, "verdict"] = "tied lowest"
        out.loc[candidate & out["score"].isna(), "verdict"] = "no score"
        return out

    @property
    def winner(self) -> str | None:
        """The candidate with the lowest score, the config as it is when none beats it; None when the comparison
        cannot separate the candidates (``undecided`` says why)."""
        if self.undecided is not None:
            return None
        ranked = self._ranked
        return str(ranked.loc[ranked["rank"] == 1, "model"].iloc[0])

    @property
    def changes(self) -> list[tuple[str, str, object, object]]:
        """What --write changes in config.toml: (section, key, old, new); nothing without a winner."""
        return [] if self.winner is None else changes(self.config, self.candidates.configs[self.winner])

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tidy tables by file stem (the CSV output)."""
        return {"tune": self.table, "tune_by_horizon": self.by_horizon, "tune_by_segment": self.by_segment}


def portfolio_mae(result: BacktestResult) -> pd.DataFrame:
    """The Portfolio MAE per model (rows, in the result's order) and DEL type (columns), the mean over months
    ahead: the figure `tune` ranks by."""
    table = result.overall
    wide = table[table["segment"] == PORTFOLIO].pivot(index="model", columns="del_type", values="mae")
    return wide.reindex(index=list(result.models), columns=list(DEL_TYPES))


def backtest_text(result: BacktestResult) -> str:
    """One line for Run info: the first model's Portfolio MAE per DEL type beside the other models', and with the
    Markov model and a benchmark, the difference to the better benchmark with its interval and verdict."""
    wide = portfolio_mae(result)
    first, others = result.models[0], result.models[1:]
    per_type = [f"{d} {wide.loc[first, d]:.2%}" + (" (" + ", ".join(
        f"{MODEL_LABELS.get(m, m).lower()} {wide.loc[m, d]:.2%}" for m in others) + ")" if others else "")
        for d in DEL_TYPES]
    against = result.against_benchmarks
    verdicts = "" if against.empty else "; against the better benchmark: " + "; ".join(
        f"{row.del_type} {row.difference:+.2%}"
        + ("" if np.isnan(row.difference_hi) else f" [{row.difference_lo:+.2%}, {row.difference_hi:+.2%}]")
        + f" {row.verdict}" for row in against.itertuples())
    return (f"Portfolio MAE, mean over 1..{result.months_ahead} months ahead at {result.origins_text}: "
            + "; ".join(per_type) + verdicts)


# ------------------------------------------------------------------------------------------------ running


def _candidate(config: Config) -> Forecaster:
    markov = FORECASTERS["markov"]
    return lambda stats, _config: markov(stats, config)


def tune_panel(panel: Panel, config: Config, origins: Sequence[int], *,
               candidates: Mapping[str, Mapping] | None = None, strict: bool = False,
               horizon: int = DEFAULT_HORIZON, progress: Progress | None = None) -> TuneResult:
    """A validated panel: every candidate and the benchmarks backtested at the as-of month indices ``origins``."""
    resolved = resolve_candidates(config, candidates, strict=strict)
    forecasters = {name: _candidate(c) for name, c in resolved.configs.items()}
    forecasters |= {name: FORECASTERS[name] for name in BENCHMARKS}
    result = backtest_forecasters(panel, config, origins, forecasters, horizon=horizon, progress=progress)
    return TuneResult(backtest=result, candidates=resolved, notes=(*resolved.notes, *result.notes),
                      info=dict(result.info))


def tune(data, config: Config | str | None = None, *, origins: int = 12, horizon: int = DEFAULT_HORIZON,
         candidates: Mapping[str, Mapping] | None = None, strict: bool = False, sheet=None,
         progress: Progress | None = None) -> TuneResult:
    """Panel (DataFrame or file) -> TuneResult at its last ``origins`` usable as-of months."""
    started = time.perf_counter()
    cfg = config if isinstance(config, Config) else load_config(config)
    step = progress or (lambda _name: None)
    panel = read_validated(data, cfg, sheet=sheet, progress=step)
    as_of = Calendar.of(panel, cfg.forecast.max_mob).last(origins)  # as backtest counts them (a long book of few cohorts)
    result = tune_panel(panel, cfg, as_of, candidates=candidates, strict=strict, horizon=horizon, progress=step)
    elapsed = time.perf_counter() - started
    log.info("tune: %d candidates, %d origins in %.2f s", len(result.candidates.configs), origins, elapsed)
    return TuneResult(backtest=result.backtest, candidates=result.candidates, notes=result.notes,
                      info=result.info | {"run_seconds": round(elapsed, 3),
                                          "run_at": time.strftime("%Y-%m-%d %H:%M:%S")})


# ------------------------------------------------------------------------------------------------ writing


def _toml_item(value):
    return list(value) if isinstance(value, tuple) else value


def _insert(table, key: str, value, *, top_level: bool = False) -> None:
    """Add ``key`` to a tomlkit table (or the document) after its last key, not after the comments that follow it:
    appended, a new key landed under the next section's heading comment ("# ===== forecast =====" then half_life,
    then [forecast]). A new section (``top_level``) goes before the first array of tables ([[alerts.rules]]), whose
    entries would otherwise seem to end with it, else at the end; a key into an empty table before its blank line."""
    import tomlkit.items

    def holds_array(item) -> bool:  # [[alerts.rules]] is the table "alerts" holding the array "rules"
        return isinstance(item, tomlkit.items.AoT) or (
            isinstance(item, tomlkit.items.Table) and any(holds_array(v) for v in item.value.values()))

    container = table if hasattr(table, "body") else table.value
    keys = [i for i, (k, _item) in enumerate(container.body) if k is not None]
    arrays = [i for i in keys if holds_array(container.body[i][1])] if top_level else []
    if arrays:
        at = arrays[0]
    elif keys:
        at = keys[-1] + 1
    else:  # an empty document: at its end, after any leading comment; an empty table: before its blank line
        at = len(container.body) if top_level else 0
    if at >= len(container.body):
        container.append(key, value)
    else:
        container._insert_at(at, key, value)  # tomlkit's insertion at a position (its public add() only appends)


def write_settings(path: str | Path, settings: Sequence[tuple[str, str, object, object]], *,
                   read_as: str | None = None) -> Path:
    """Set each (section, key, _old, new) in the TOML file at ``path`` (created if absent), keeping its comments
    and layout; the result is validated as a config before it replaces the file in one rename, so a failure
    leaves the old file as it was. ``read_as``: the file's text when the settings were chosen ("" if it did not
    exist); a file changed since is left as it is (a ConfigError), as the user's edits would be lost and the
    settings were chosen against the old ones."""
    import tomlkit

    from pyxl_del.engine.files import atomic_replace

    path = Path(path)
    now = read_text(path, "config", error=ConfigError) if path.exists() else ""
    if read_as is not None and now != read_as:
        raise ConfigError(f"{path} changed while the candidates were compared, so it is left as it is (your edits "
                          f"stay, and the winner was chosen against the settings it had before): run tune again, "
                          f"or set the winner's settings by hand")
    if path.exists():
        text = now
        with reading(path, "config", error=ConfigError):
            document = tomlkit.parse(text)
    else:
        document = tomlkit.document()
    for section, key, _old, new in settings:
        if section not in document:
            table = tomlkit.table()
            table.add(tomlkit.nl())  # a blank line before whatever follows it
            _insert(document, section, table, top_level=True)
        if key in document[section]:
            document[section][key] = _toml_item(new)
        else:
            _insert(document[section], key, _toml_item(new))
    written = tomlkit.dumps(document)
    config_from_dict(tomllib.loads(written), source=f"{path} (as it would be written)")
    with atomic_replace(path) as tmp:
        tmp.write_text(written, encoding="utf-8")
    return path

