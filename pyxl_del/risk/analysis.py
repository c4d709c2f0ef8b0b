"""Every risk view of one fitted result (the portfolio's digital twin), each computed once, on first use.

The CLI subcommands, the risk sheets and the ribbon share one `RiskAnalysis`, so the dashboard, which shows a
little of everything, costs no more than the views it shows. ``data`` (the panel behind the result) is kept for the
decision twin of the dashboard's ROE (pyxl_del.decision.dashboard).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from pyxl_del.engine.config import Config, ScenarioSpec
from pyxl_del.engine.data import PORTFOLIO
from pyxl_del.engine.pipeline import DelResult
from pyxl_del.risk.alerts import SEVERITIES, evaluate_alerts
from pyxl_del.risk.capital import capital
from pyxl_del.risk.concentration import Concentration, concentration
from pyxl_del.risk.expected_loss import expected_loss
from pyxl_del.risk.projection import ALL, Book, reporting_book
from pyxl_del.risk.stress import StressResult, run_stress, scenario_set
from pyxl_del.risk.var import LossSimulation, credit_var

log = logging.getLogger(__name__)

KPI_COLUMNS = ["kpi", "value", "unit"]  # unit: "pct" | "amount" | "count" | "ratio"
ALERTS_PREFIX = "Alerts: "  # the KPI rows counting alerts by severity


@dataclass(frozen=True)
class RiskAnalysis:
    """Risk views of ``result`` under ``config`` (default: the result's own); ``scenarios`` extend the config's.
    ``data`` is the panel behind ``result`` (a DataFrame, or a file read with ``sheet``): the decision twin behind the
    ROE figures is fitted on it, so it uses the data's score and APR columns; without it, on ``result``."""

    result: DelResult
    config: Config
    extra_scenarios: tuple[ScenarioSpec, ...] = ()
    data: Any = field(default=None, compare=False)
    sheet: str | int | None = None

    @classmethod
    def of(cls, result: DelResult, config: Config | None = None, scenarios=(), *, data=None,
           sheet: str | int | None = None) -> RiskAnalysis:
        return cls(result, config or result.config, tuple(scenarios), data, sheet)

    @cached_property
    def book(self) -> Book:
        """The book at the reporting date: every view below starts from it."""
        return reporting_book(self.result, self.config)

    @cached_property
    def el(self) -> pd.DataFrame:
        return expected_loss(self.result, self.config, self.book)

    @cached_property
    def capital(self) -> pd.DataFrame:
        return capital(self.result, self.config, el=self.el, book=self.book)

    @cached_property
    def concentration(self) -> Concentration:
        return concentration(self.result, self.config, self.book)

    @cached_property
    def var(self) -> LossSimulation:
        return credit_var(self.result, self.config, book=self.book)

    @cached_property
    def stress(self) -> StressResult:
        return run_stress(self.result, self.config, scenario_set(self.config, self.extra_scenarios), self.book)

    @cached_property
    def alerts(self) -> pd.DataFrame:
        return evaluate_alerts(self.result, self.config, concentration=self.concentration, capital=self.capital)

    def portfolio_del_curve(self, segment: str = PORTFOLIO, del_type: str = "DEL30") -> np.ndarray:
        """The mean over cohorts of a segment's (or the Portfolio's) mixed DEL at each MOB."""
        return self.result.wide(segment, del_type).mean(axis=0).to_numpy(dtype=np.float64)

    @cached_property
    def kpis(self) -> pd.DataFrame:
        """The risk figures at a glance (KPI_COLUMNS), the alert counts last. The dashboard adds the decision
        twin's ROE (pyxl_del.decision.dashboard)."""
        max_mob = self.result.stats.max_mob
        curve = self.portfolio_del_curve()
        el = self.el.set_index(["segment", "cohort"]).loc[(PORTFOLIO, ALL)]
        cap = self.capital.set_index("segment").loc[PORTFOLIO]
        top = max(self.config.risk.confidence)
        rows = [(f"Portfolio DEL30 at MOB {m} (mean of cohorts)", curve[m], "pct")
                for m in self.config.risk.key_mobs if m <= max_mob]
        rows += [
            ("Outstanding EAD", el["ead"], "amount"),
            ("Expected loss, 12 months", el["el_12m"], "amount"),
            ("Expected loss, lifetime", el["el_lifetime"], "amount"),
            ("Lifetime EL / outstanding EAD", el["el_lifetime_rate"], "pct"),
            (f"Credit VaR {top:.0%}, {self.var.horizon} months", self.var.var(top), "amount"),
            (f"Expected shortfall {top:.0%}, {self.var.horizon} months", self.var.es(top), "amount"),
            ("PD 12 months (performing EAD)", el["pd_12m"], "pct"),
            ("NPL ratio", cap["npl_ratio"], "pct"),
            ("Indicative IRB capital", cap["capital"], "amount"),
            ("HHI of EAD by segment", self.concentration.value("segment", "hhi"), "ratio"),
        ]
        rows += [(f"{ALERTS_PREFIX}{s}", int((self.alerts["severity"] == s).sum()), "count") for s in reversed(SEVERITIES)]
        frame = pd.DataFrame(rows, columns=KPI_COLUMNS)
        frame["kpi"] = frame["kpi"].astype("string")
        return frame
