"""Stress testing: scenarios of the credit-cycle factor Z run through the fitted chain, side by side.

A scenario is a path of Z over the months after the reporting date (the last value persists); each month's matrices
are moved by the Belkin-Suchower-Forest shift (`risk.stress_matrices`, Z < 0 adverse) and the book of the
reporting date (`projection.Book`) is rolled forward as in the report. Output per scenario: DEL30/60/90 at the key MOBs,
12-month and lifetime write-offs and expected loss, and a ranking by lifetime EL.

Scenarios come from the built-in set (`PREDEFINED`), ``[scenarios] custom`` in config.toml, or a "Scenarios"
sheet (`scenarios_from_rows`, `read_scenarios_sheet`), whose layout `risk_report.scenarios_sheet` writes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import ValidationError

from pyxl_del.engine.config import DEL_TYPES, Config, ConfigError, ScenarioSpec
from pyxl_del.engine.data import ONLY_EMPTY_IS_MISSING, PORTFOLIO, column_letter
from pyxl_del.engine.errors import validation_errors
from pyxl_del.engine.metrics import del_rates, ead_at_mob0
from pyxl_del.engine.pipeline import DelResult
from pyxl_del.engine.portfolio import aggregate_portfolio
from pyxl_del.risk.checks import scenarios_differ
from pyxl_del.risk.expected_loss import loss_table
from pyxl_del.risk.projection import ALL, EL_HORIZON, Book, project, reporting_book

log = logging.getLogger(__name__)

#: The count of adverse months of a path whose last Z, which persists, is below 0.
ADVERSE_TO_THE_END = "all (the last Z persists)"

SCENARIOS_SHEET = "Scenarios"
SHEET_HEADER = ("Scenario", "Description")  # then one column per forecast month: "Z month 1", "Z month 2", ...


def _recovering(level: float, hold: int, recover: int) -> tuple[float, ...]:
    """Z at ``level`` for ``hold`` months, back to 0 in a straight line over ``recover`` months, then 0."""
    # Rounded so the values read back from a sheet unchanged.
    return (level,) * hold + tuple(round(level * (1 - i / recover), 4) for i in range(1, recover)) + (0.0,)


PREDEFINED: tuple[ScenarioSpec, ...] = (
    ScenarioSpec(name="baseline", z=(0.0,), description="Z = 0: the fitted matrices as they are (the report)"),
    ScenarioSpec(name="mild_recession", z=_recovering(-0.5, 12, 6),
                 description="Z = -0.5 (each month as bad as 1 in 3) for 12 months, back to 0 over 6 months"),
    ScenarioSpec(name="severe_recession", z=_recovering(-1.5, 18, 12),
                 description="Z = -1.5 (each month as bad as 1 in 15) for 18 months, back to 0 over 12 months"),
    ScenarioSpec(name="rate_shock", z=_recovering(-1.0, 6, 6),
                 description="interest-rate shock: payment stress Z = -1 at once for 6 months, fading over 6"),
)


def scenario_set(config: Config, extra: Iterable[ScenarioSpec] = ()) -> tuple[ScenarioSpec, ...]:
    """The predefined scenarios (if on), then [scenarios] custom, then ``extra`` (e.g. from a sheet).

    A later scenario with an earlier one's name replaces it in place.
    """
    chosen: dict[str, ScenarioSpec] = {}
    for spec in (*(PREDEFINED if config.scenarios.predefined else ()), *config.scenarios.custom, *extra):
        chosen[spec.name] = spec
    if not chosen:
        raise ConfigError("no stress scenarios: [scenarios] predefined = false and no custom scenario given")
    return tuple(chosen.values())


def scenarios_from_rows(rows: Sequence[Sequence], source: str = SCENARIOS_SHEET) -> tuple[ScenarioSpec, ...]:
    """Scenarios from a sheet's cell values (rows of cells, e.g. from openpyxl or xlwings).

    The header row is the first whose first cell is "Scenario"; below it each row with a name holds the
    description and then Z for forecast months 1, 2, ... up to the first empty cell.
    """
    header = next((i for i, row in enumerate(rows) if row and str(row[0]).strip().casefold() == "scenario"), None)
    if header is None:
        raise ConfigError(f"{source}: no header row starting with 'Scenario'")
    specs = []
    for i, row in enumerate(rows[header + 1:], start=header + 2):
        cells = [None if c is None or (isinstance(c, float) and np.isnan(c)) or str(c).strip() == "" else c
                 for c in row]
        if not cells or cells[0] is None:
            continue
        z = []
        for cell in cells[2:]:
            if cell is None:
                break
            z.append(cell)
        try:
            specs.append(ScenarioSpec(name=str(cells[0]).strip(), z=tuple(z),
                                      description="" if len(cells) < 2 or cells[1] is None else str(cells[1])))
        except ValidationError as exc:
            problems = "; ".join(f"{_column_of(e['loc'], rows[header])}: {e['msg']} (got {e.get('input')!r})"
                                 for e in validation_errors(exc))
            raise ConfigError(f"{source} row {i}: {problems}") from None
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{source}: two scenarios share a name: {dupes}")
    return tuple(specs)


def _column_of(loc: tuple, header: Sequence) -> str:
    """The sheet's column of a ScenarioSpec field: "column E ('Z month 3')", not pydantic's "z.2" (0-based, which
    sent a user to the valid Z month 2)."""
    fields = {"name": 0, "description": 1}
    j = 2 + int(loc[1]) if loc[0] == "z" and len(loc) > 1 else fields.get(loc[0])
    if j is None:
        return ".".join(map(str, loc))
    label = header[j] if j < len(header) and header[j] is not None and header[j] == header[j] else None
    return f"column {column_letter(j + 1)}" + (f" ({str(label).strip()!r})" if label is not None else "")


def read_scenarios_sheet(path: str | Path, sheet: str = SCENARIOS_SHEET) -> tuple[ScenarioSpec, ...]:
    """Scenarios from the sheet ``sheet`` of an .xlsx/.xlsm workbook (see `scenarios_from_rows`)."""
    path = Path(path)
    try:
        frame = pd.read_excel(path, sheet_name=sheet, header=None, engine="openpyxl", **ONLY_EMPTY_IS_MISSING)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read sheet {sheet!r}: {exc}") from None
    return scenarios_from_rows(frame.astype(object).to_numpy().tolist(), source=f"{path} [{sheet}]")


@dataclass(frozen=True)
class StressResult:
    """Scenarios side by side. Frames are tidy; `side_by_side` is the sheet's metrics x scenarios table."""

    scenarios: tuple[ScenarioSpec, ...]
    summary: pd.DataFrame  # one row per scenario: DEL at key MOBs, write-offs, EL, change vs baseline, rank
    curves: pd.DataFrame  # scenario, del_type, mob, value: Portfolio DEL mean over cohorts
    el: pd.DataFrame  # scenario + risk.EL_COLUMNS for the segment and Portfolio totals
    z_paths: pd.DataFrame  # scenario, month, z
    key_mobs: tuple[int, ...]

    def side_by_side(self) -> pd.DataFrame:
        """Metrics as rows, scenarios as columns (in the order run)."""
        table = self.summary.set_index("scenario").drop(columns=["description"]).T
        table.index.name = "metric"
        return table


def del_columns(key_mobs: Sequence[int]) -> list[str]:
    return [f"{d} MOB {m}" for d in DEL_TYPES for m in key_mobs]


def mean_del_curves(stats, path: np.ndarray, config: Config) -> dict[str, np.ndarray]:
    """Per DEL type, the Portfolio's DEL by MOB, mean over cohorts ([portfolio] aggregation over segments), of an
    EAD path (S, C, M+1, K): the report's Portfolio curve for its own path."""
    ead0 = ead_at_mob0(stats)
    return {d: np.nanmean(aggregate_portfolio(r.mixed, r.is_actual, r.present, ead0,
                                              config.portfolio.aggregation).mixed, axis=0)
            for d, r in del_rates(stats, path, config).items()}


def run_stress(result: DelResult, config: Config | None = None,
               scenarios: Sequence[ScenarioSpec] | None = None, book: Book | None = None) -> StressResult:
    """Every scenario through the chain from the reporting date: ``scenarios`` or `scenario_set` (predefined +
    config)."""
    cfg = config or result.config
    book = book or reporting_book(result, cfg)
    specs = tuple(scenarios) if scenarios is not None else scenario_set(cfg)
    stats = result.stats
    max_mob = stats.max_mob
    key_mobs = tuple(m for m in cfg.risk.key_mobs if m <= max_mob) or (max_mob,)
    rows, curves, els, paths = [], [], [], []
    for spec in specs:
        projection = project(result, months=max(EL_HORIZON, len(spec.z)), z=spec.z, config=cfg, book=book)
        # The path's last Z persists: a last Z below 0 is adverse for every month after it too.
        row = {"scenario": spec.name, "description": spec.description, "min_z": min(spec.z),
               "adverse_months": ADVERSE_TO_THE_END if spec.z[-1] < 0 else sum(v < 0 for v in spec.z)}
        for del_type, mean_curve in mean_del_curves(stats, projection.by_mob(), cfg).items():
            row |= {f"{del_type} MOB {m}": mean_curve[m] for m in key_mobs}
            curves.append(pd.DataFrame({"scenario": spec.name, "del_type": del_type,
                                        "mob": np.arange(max_mob + 1), "value": mean_curve}))
        el = loss_table(result, projection, cfg)
        totals = el[el["cohort"] == ALL]
        portfolio = totals[totals["segment"] == PORTFOLIO].iloc[0]
        row |= {k: float(portfolio[k]) for k in ("writeoff_12m", "writeoff_lifetime", "el_12m", "el_lifetime",
                                                 "el_lifetime_rate")}
        rows.append(row)
        els.append(totals.drop(columns=["cohort", "status", "last_mob", "reporting_mob"]).assign(scenario=spec.name))
        paths.append(pd.DataFrame({"scenario": spec.name, "month": np.arange(1, len(spec.z) + 1), "z": spec.z}))
        log.info("scenario %s: lifetime EL %.4g", spec.name, portfolio["el_lifetime"])
    summary = pd.DataFrame(rows)
    base = summary.loc[summary["scenario"] == "baseline", "el_lifetime"]
    base = float(base.iloc[0]) if len(base) else 0.0
    summary["el_lifetime_vs_baseline"] = summary["el_lifetime"] / base - 1 if base > 0 else np.nan
    # Ties everywhere are no ranking: a chain the cycle cannot move (checks.stress_finding says why).
    rank = summary["el_lifetime"].rank(ascending=False, method="min").astype("Int64")
    summary["rank"] = rank if scenarios_differ(summary["el_lifetime"]) else pd.array([pd.NA] * len(rank), "Int64")
    el = pd.concat(els, ignore_index=True)
    el = el[["scenario", *[c for c in el.columns if c != "scenario"]]]
    frames = [summary, pd.concat(curves, ignore_index=True), el, pd.concat(paths, ignore_index=True)]
    for frame in frames:
        for col in frame.columns.intersection(["scenario", "description", "del_type", "segment"]):
            frame[col] = frame[col].astype("string")
    return StressResult(specs, *frames, key_mobs=key_mobs)
