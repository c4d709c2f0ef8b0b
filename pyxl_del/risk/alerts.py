"""Alerts: the threshold rules of ``[alerts] rules`` checked against a fitted result.

Each rule that fires gives one row per offending segment / cohort with its severity, the triggering value, the
threshold and a message; the CLI prints them and can exit non-zero at a chosen severity (for schedulers), the
workbook lists them on the Alerts sheet.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from pyxl_del.engine.config import Config, ConfigError
from pyxl_del.engine.data import PORTFOLIO
from pyxl_del.engine.diagnostics import THIN_LOANS
from pyxl_del.engine.errors import counted, runs_text
from pyxl_del.engine.pipeline import DelResult
from pyxl_del.risk.capital import capital
from pyxl_del.risk.concentration import Concentration, concentration

log = logging.getLogger(__name__)

SEVERITIES = ("info", "warning", "critical")  # ascending
ALERT_COLUMNS = ["severity", "rule_id", "rule", "segment", "cohort", "mob", "value", "threshold", "message"]


@dataclass(frozen=True)
class _Context:
    result: DelResult
    config: Config
    given_concentration: Concentration | None = None
    given_capital: pd.DataFrame | None = None

    @cached_property
    def concentration(self) -> Concentration:
        return self.given_concentration or concentration(self.result, self.config)

    @cached_property
    def capital(self) -> pd.DataFrame:
        return capital(self.result, self.config) if self.given_capital is None else self.given_capital

    def segments(self, rule_id: str, name: str, *, portfolio: bool) -> list[str]:
        """The rule's segment, or every segment (and the Portfolio if asked) for ""."""
        known = list(self.result.segments) + [PORTFOLIO]
        if not name:
            return known if portfolio else known[:-1]
        if name not in known:
            raise ConfigError(f"[alerts] rule {rule_id}: unknown segment {name!r}; known: {', '.join(known)}")
        return [name]

    def thin_note(self, segment: str, cohort: str) -> str:
        """"; THIN: N loans at MOB 0 ..." when the cohort-segment started with fewer than THIN_LOANS loans, else "":
        an alert on 4 loans (two of them late) is no signal a scheduler should stop on unread."""
        stats = self.result.stats
        loans = int(stats.n_loans[stats.segments.index(segment), self.result.cohorts.index(cohort), 0])
        if loans >= THIN_LOANS or loans == 0:
            return ""
        return (f"; THIN: {counted(loans, 'loan')} at MOB 0 (fewer than {THIN_LOANS}), one loan moves it by "
                f"{1 / loans:.0%}")


def describe(rule) -> str:
    """One line saying what the rule checks."""
    if rule.rule == "del_above":
        return (f"{rule.del_type} at MOB {rule.mob} > {rule.threshold:.2%} in the newest {rule.recent} cohorts "
                f"({rule.basis})")
    if rule.rule == "k_clipped":
        return "calibration factor k clipped to [calibration] k_clip"
    if rule.rule == "cohort_vs_history":
        return (f"latest actual {rule.del_type} of the newest {rule.recent} cohorts > {rule.n_se:g} standard errors "
                f"above older cohorts at the same MOB")
    if rule.rule == "concentration":
        measure = "HHI" if rule.measure == "hhi" else f"top-{rule.n} share"
        return f"{measure} of outstanding EAD by {rule.by} > {_share(rule.threshold, rule.measure)}"
    return f"NPL ratio (default-state share of outstanding EAD) > {rule.threshold:.2%}"


def _del_above(rule, rule_id: str, ctx: _Context) -> list[dict]:
    result = ctx.result
    if rule.mob > result.stats.max_mob:
        raise ConfigError(f"[alerts] rule {rule_id}: mob {rule.mob} is beyond [forecast] max_mob "
                          f"{result.stats.max_mob}")
    recent = set(result.cohorts[-rule.recent:])
    fired = []
    for segment in ctx.segments(rule_id, rule.segment, portfolio=False):
        values = result.wide(segment, rule.del_type, rule.basis)[rule.mob]
        flags = result.flags_wide(segment, rule.del_type)[rule.mob]
        for cohort, value in values.items():
            if cohort in recent and value > rule.threshold:
                kind = "forecast" if flags[cohort] != "ACTUAL" else "actual"
                fired.append(dict(segment=segment, cohort=cohort, mob=rule.mob, value=value,
                                  threshold=rule.threshold,
                                  message=f"{segment} {cohort}: {rule.del_type} at MOB {rule.mob} is {value:.2%} "
                                          f"({kind}) > {rule.threshold:.2%}{ctx.thin_note(segment, cohort)}"))
    return fired


def _k_clipped(rule, rule_id: str, ctx: _Context) -> list[dict]:
    factors = ctx.result.calibration_factors
    clipped = factors[factors["k"] != factors["k_unclipped"]]
    lo, hi = ctx.config.calibration.k_clip
    fired = []
    for segment, rows in clipped.groupby("segment", sort=False):
        k = rows["k_unclipped"].to_numpy()
        with np.errstate(divide="ignore"):
            worst = rows.iloc[int(np.argmax(np.maximum(k, 1 / k)))]  # furthest from 1 either way
        bound = hi if worst["k_unclipped"] > hi else lo
        mobs = runs_text(rows["mob"])
        fired.append(dict(segment=segment, cohort="", mob=int(worst["mob"]), value=float(worst["k_unclipped"]),
                          threshold=bound,
                          message=f"{segment}: calibration factor clipped at MOB {mobs} (most extreme "
                                  f"k {worst['k_unclipped']:.3f} at MOB {worst['mob']}, k_clip [{lo}, {hi}])"))
    return fired


def _cohort_vs_history(rule, rule_id: str, ctx: _Context) -> list[dict]:
    result = ctx.result
    recent = result.cohorts[-rule.recent:]
    fired = []
    for segment in ctx.segments(rule_id, "", portfolio=False):
        actual = result.wide(segment, rule.del_type, "actual")
        history = actual[~actual.index.isin(recent)]
        for cohort in actual.index.intersection(recent):
            row = actual.loc[cohort].dropna()
            if row.empty:
                continue
            mob = int(row.index[-1])
            value = float(row.iloc[-1])
            past = history[mob].dropna().to_numpy()
            if len(past) < rule.min_history:
                continue
            # The standard error of one new cohort around the mean of n older ones: sd * sqrt(1 + 1/n).
            se = past.std(ddof=1) * np.sqrt(1 + 1 / len(past))
            limit = past.mean() + rule.n_se * se
            if value > limit:
                score = (value - past.mean()) / se if se > 0 else np.inf
                fired.append(dict(segment=segment, cohort=cohort, mob=mob, value=value, threshold=limit,
                                  message=f"{segment} {cohort}: actual {rule.del_type} {value:.2%} at MOB {mob} is "
                                          f"{score:.1f} standard errors above the {len(past)} older cohorts' "
                                          f"{past.mean():.2%}{ctx.thin_note(segment, cohort)}"))
    return fired


def _concentration(rule, rule_id: str, ctx: _Context) -> list[dict]:
    value = ctx.concentration.value(rule.by, rule.measure, rule.n)
    if not value > rule.threshold:
        return []
    measure = "HHI" if rule.measure == "hhi" else f"top-{rule.n} share"
    return [dict(segment="", cohort="", mob=pd.NA, value=value, threshold=rule.threshold,
                 message=f"{measure} of outstanding EAD by {rule.by} is {_share(value, rule.measure)} > "
                         f"{_share(rule.threshold, rule.measure)}")]


def _share(value: float, measure: str) -> str:
    """An HHI as the index the Concentration sheet and the dashboard show (0.396); a top-n share as a percent."""
    return f"{value:.3f}" if measure == "hhi" else f"{value:.2%}"


def _npl_above(rule, rule_id: str, ctx: _Context) -> list[dict]:
    table = ctx.capital.set_index("segment")
    fired = []
    for segment in ctx.segments(rule_id, rule.segment, portfolio=True):
        value = float(table.loc[segment, "npl_ratio"])
        if value > rule.threshold:
            fired.append(dict(segment=segment, cohort="", mob=pd.NA, value=value, threshold=rule.threshold,
                              message=f"{segment}: NPL ratio {value:.2%} > {rule.threshold:.2%}"))
    return fired


CHECKS = {"del_above": _del_above, "k_clipped": _k_clipped, "cohort_vs_history": _cohort_vs_history,
          "concentration": _concentration, "npl_above": _npl_above}


def evaluate_alerts(result: DelResult, config: Config | None = None, *, concentration: Concentration | None = None,
                    capital: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every rule of ``[alerts] rules`` that fires, most severe first (then in rule order): ALERT_COLUMNS."""
    cfg = config or result.config
    ctx = _Context(result, cfg, concentration, capital)
    rows = []
    for n, rule in enumerate(cfg.alerts.rules, start=1):
        rule_id = f"R{n}"
        for alert in CHECKS[rule.rule](rule, rule_id, ctx):
            rows.append({"severity": rule.severity, "rule_id": rule_id, "rule": describe(rule), **alert})
    frame = pd.DataFrame(rows, columns=ALERT_COLUMNS)
    frame["mob"] = frame["mob"].astype("Int64")
    frame["value"] = frame["value"].astype(np.float64)
    frame["threshold"] = frame["threshold"].astype(np.float64)
    rank = frame["severity"].map({s: -i for i, s in enumerate(SEVERITIES)})
    frame = frame.iloc[np.lexsort((np.arange(len(frame)), rank.to_numpy(dtype=np.int64)))].reset_index(drop=True)
    for col in ("severity", "rule_id", "rule", "segment", "cohort", "message"):
        frame[col] = frame[col].astype("string")
    log.info("%d alerts from %d rules", len(frame), len(cfg.alerts.rules))
    return frame


def fires_at(alerts: pd.DataFrame, severity: str) -> bool:
    """Whether any alert is at ``severity`` or more severe."""
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r}; known: {', '.join(SEVERITIES)}")
    return bool(alerts["severity"].isin(SEVERITIES[SEVERITIES.index(severity):]).any())
