"""Every risk view of one fitted result (the portfolio's digital twin), each computed once, on first use.

The CLI subcommands, the risk sheets and the ribbon share one `RiskAnalysis`, so the dashboard, which shows a
little of everything, costs no more than the views it shows. ``data`` (the panel behind the result) is kept for the
decision twin of the dashboard's ROE (pyxl_del.decision.dashboard).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from pyxl_del.engine.config import Config, ScenarioSpec
from pyxl_del.engine.data import PORTFOLIO
from pyxl_del.engine.diagnostics import too_few_steps
from pyxl_del.engine.forecast import forecast_ead
from pyxl_del.engine.pipeline import DelResult
from pyxl_del.risk.alerts import SEVERITIES, evaluate_alerts
from pyxl_del.risk.capital import capital
from pyxl_del.risk.checks import Finding, loss_findings, stress_finding, tail_findings
from pyxl_del.risk.concentration import Concentration, concentration
from pyxl_del.risk.expected_loss import expected_loss, loss_over
from pyxl_del.risk.projection import ALL, Book, reporting_book
from pyxl_del.risk.stress import StressResult, mean_del_curves, run_stress, scenario_set
from pyxl_del.risk.var import LossSimulation, credit_var

log = logging.getLogger(__name__)

KPI_COLUMNS = ["kpi", "value", "unit", "note"]  # unit: "pct" | "amount" | "count" | "ratio"; note: a caveat or ""
RECONCILIATION_COLUMNS = ["step", "value", "difference", "std_error", "explanation"]
WARNING_NOTE = "WARNING: not a measured zero (see the warnings)"
# The findings each view's figures rest on (checks.Finding.figure): its CLI command and its sheet show these. A zero
# LGD or an LGD key naming no segment bears on the capital (LGD x K) and the stress losses as on the EL.
VIEW_FIGURES = {"el": ("el", "pd"), "var": ("el", "var"), "stress": ("el",), "capital": ("el", "pd"),
                "dashboard": ("el", "pd")}
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

    @cached_property
    def findings(self) -> list[Finding]:
        """Zero expected losses and PDs that are not measured zeros, with their causes, and VaR levels resting on few
        paths (pyxl_del.risk.checks)."""
        return (loss_findings(self.result, self.el, self.capital, self.config)
                + tail_findings(self.config, self.config.risk.n_paths))

    def warnings(self, figure: str | None = None) -> list[str]:
        """The findings' sentences (of one figure, "el", "pd" or "var", if given)."""
        return [f.message for f in self.findings if figure is None or f.figure == figure]

    def view_warnings(self, view: str) -> list[str]:
        """The findings' sentences on the figures of one view (VIEW_FIGURES), in the order of the findings."""
        return [f.message for f in self.findings if f.figure in VIEW_FIGURES[view]]

    @cached_property
    def default_lgd_segments(self) -> list[str]:
        """The segments whose LGD is the ILLUSTRATIVE default: neither [risk] lgd nor lgd_by_segment sets it."""
        return [s for s in self.result.segments if self.config.risk.lgd_is_default(s)]

    @cached_property
    def short_history_segments(self) -> list[str]:
        """The segments whose forecast rests on too few MOB steps of data (engine.diagnostics.short_history)."""
        return [s for s, short in zip(self.result.segments, self.result.short_history, strict=True) if short]

    @cached_property
    def stress_note(self) -> str | None:
        """Why the scenarios are not ranked or leave the DEL rows as they are, when they do."""
        # Only key MOBs the config sets: the defaults (6 .. 36) beyond a short book's max_mob are no one's choice.
        chosen = self.config.risk.key_mobs != type(self.config.risk).model_fields["key_mobs"].default
        beyond = [m for m in self.config.risk.key_mobs if m > self.result.stats.max_mob] if chosen else []
        return stress_finding(self.stress.summary, self.findings, self.result, self.stress.key_mobs, beyond)

    @cached_property
    def el_reconciliation(self) -> pd.DataFrame:
        """The expected loss of the projection against the simulated mean loss of the Credit VaR, step by step
        (RECONCILIATION_COLUMNS): the projection's EL over the VaR horizon, the simulated mean with independent
        months (equal in expectation: the difference is Monte Carlo error), then with the configured persistence
        of Z (the difference is the cycle: a bad year raises all roll rates of a path together, and they compound)."""
        sim, risk = self.var, self.config.risk
        projected = loss_over(self.result, self.config, sim.horizon, self.book)
        independent = sim if risk.z_persistence == 0 else credit_var(
            self.result, self.config.with_overrides(risk={"z_persistence": 0.0}), n_paths=len(sim.total),
            seed=sim.seed, horizon=sim.horizon, book=self.book)
        se = [np.nan, *(s.total.std(ddof=1) / np.sqrt(len(s.total)) for s in (independent, sim))]
        values = [projected, independent.total.mean(), sim.total.mean()]
        rows = [
            (f"Expected loss over {sim.horizon} months (projection, Z = 0)", "the Expected loss sheet's definition"),
            (f"Mean simulated loss, months independent (persistence 0, {len(sim.total):,} paths)",
             "Monte Carlo error: equal to the line above in expectation"),
            (f"Mean simulated loss, persistence {risk.z_persistence:g} (the Credit VaR's mean)",
             "the credit cycle: a bad year raises every roll rate of a path together and they compound"),
        ]
        frame = pd.DataFrame({"step": [r[0] for r in rows], "value": values,
                              "difference": [np.nan, values[1] - values[0], values[2] - values[1]],
                              "std_error": se, "explanation": [r[1] for r in rows]})
        for col in ("step", "explanation"):
            frame[col] = frame[col].astype("string")
        return frame

    def portfolio_del_curve(self, segment: str = PORTFOLIO, del_type: str = "DEL30") -> np.ndarray:
        """The mean over cohorts of a segment's (or the Portfolio's) mixed DEL at each MOB."""
        return self.result.wide(segment, del_type).mean(axis=0).to_numpy(dtype=np.float64)

    def chain_del_curve(self, del_type: str = "DEL30") -> np.ndarray:
        """The Portfolio's DEL by MOB (mean of cohorts) that the fitted chain alone gives: every cohort's MOB 0 book
        rolled forward with no actual month after it (through its own chain when the run has cohort factors). Against
        `portfolio_del_curve` it shows what the actuals add."""
        stats = self.result.stats
        first = replace(stats, n_loans=np.where(np.arange(stats.max_mob + 1) == 0, stats.n_loans, 0))
        return mean_del_curves(stats, forecast_ead(first, self.result.transition_matrix, self.result.factors.cohort),
                               self.config)[del_type]

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
        zero_el = WARNING_NOTE if any(f.segment == PORTFOLIO for f in self.findings if f.figure == "el") else ""
        zero_pd = WARNING_NOTE if any(f.segment == PORTFOLIO for f in self.findings if f.figure == "pd") else ""
        # A zero that is not measured says so first; else a figure resting on a default says ILLUSTRATIVE (§10): the
        # losses and the capital on the default LGD or a short-history chain, the PD (no LGD in it) on the chain only.
        illustrative = illustrative_note(self.default_lgd_segments, self.short_history_segments, self.config)
        loss = zero_el or illustrative
        mean = self.var.total.mean()
        rows += [
            ("Outstanding EAD", el["ead"], "amount", f"at the reporting date {self.book.label}"),
            ("Expected loss, 12 months", el["el_12m"], "amount", zero_el or _joined(
                illustrative, f"projection (Z = 0); the Credit VaR's mean loss is {mean:,.0f}: reconciled on "
                              f"'Credit VaR'")),
            ("Expected loss, lifetime", el["el_lifetime"], "amount", loss),
            ("Lifetime EL / outstanding EAD", el["el_lifetime_rate"], "pct", loss),
            (f"Credit VaR {top:.0%}, {self.var.horizon} months", self.var.var(top), "amount", loss),
            (f"Expected shortfall {top:.0%}, {self.var.horizon} months", self.var.es(top), "amount", loss),
            ("PD 12 months (performing EAD)", el["pd_12m"], "pct",
             zero_pd or illustrative_note((), self.short_history_segments, self.config)),
            ("NPL ratio", cap["npl_ratio"], "pct", ""),
            ("Indicative IRB capital", cap["capital"], "amount", zero_pd or _joined(illustrative, "INDICATIVE")),
            ("HHI of EAD by segment", self.concentration.value("segment", "hhi"), "ratio", ""),
        ]
        rows = [r if len(r) == 4 else (*r, "") for r in rows]
        rows += [(f"{ALERTS_PREFIX}{s}", int((self.alerts["severity"] == s).sum()), "count", "")
                 for s in reversed(SEVERITIES)]
        frame = pd.DataFrame(rows, columns=KPI_COLUMNS)
        frame["note"] = frame["note"].astype("string")
        frame["kpi"] = frame["kpi"].astype("string")
        return frame


def illustrative_note(default_lgd: Sequence[str], short: Sequence[str], config: Config) -> str:
    """A KPI's note when it rests on the default LGD of the segments ``default_lgd`` or on the short-history forecast
    of the segments ``short``: "ILLUSTRATIVE: default LGD 65% for A; B rests on fewer than 6 MOB steps of data", or
    "" when on neither."""
    clauses = [f"default LGD {config.risk.segment_lgd(''):.0%} for {_listed(default_lgd)}"] if default_lgd else []
    if short:
        clauses.append(too_few_steps(_listed(short), len(short)))
    return f"ILLUSTRATIVE: {'; '.join(clauses)}" if clauses else ""


def _listed(names: Sequence[str], most: int = 5) -> str:
    """Names for a KPI's note: a few, then how many more (the sheets' notes below the KPIs list them all)."""
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more


def _joined(*notes: str) -> str:
    return "; ".join(n for n in notes if n)
