"""The risk dashboard's figures: the risk analysis' KPIs and, beside them, what the applied policy earns.

ROE needs both layers (the risk views of the fitted chains, and the decision twin of the same data), so the
dashboard is composed here, above both; `RiskAnalysis` stays free of decision code. The two DEL30 figures at
MOB 12 (the book's and a new cohort's) differ on purpose; `del30_reconciliation` takes one to the other.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from pyxl_del.decision.optimise import PORTFOLIO, current_policy, evaluate, roe_kpis
from pyxl_del.decision.twin import Twin, fit_twin
from pyxl_del.risk.analysis import (
    ALERTS_PREFIX,
    KPI_COLUMNS,
    RECONCILIATION_COLUMNS,
    RiskAnalysis,
)

log = logging.getLogger(__name__)

RECONCILED_MOB = 12


@dataclass(frozen=True)
class Dashboard:
    """The dashboard of one `RiskAnalysis`: its KPIs with the ROE rows of the applied policy before the alert
    counts, each computed once."""

    analysis: RiskAnalysis

    @cached_property
    def twin(self) -> tuple[Twin | None, str | None]:
        """(the decision twin of the analysis' data, None), or (None, why) when it cannot be fitted, e.g. a
        [policy] whose segments are not the data's. The risk views do not depend on it."""
        a = self.analysis
        try:
            twin = fit_twin(a.result if a.data is None else a.data, a.config, sheet=a.sheet)
            current_policy(twin).arrays(twin.segments, twin.n_bands)  # a [policy] for other segments fails here
        except ValueError as exc:  # the twin's input errors (PanelError, PolicyError, ConfigError) say what is wrong
            log.warning("no ROE on the dashboard: %s", exc)
            return None, " ".join(str(exc).split())
        return twin, None

    @cached_property
    def roe(self) -> tuple[pd.DataFrame, str | None]:
        """(KPI rows, None): `optimise.roe_kpis` of the applied policy in the decision twin (portfolio ROE, the value,
        volume and approval rate of a month's bookings, ...); or (no rows, why) when the twin cannot be fitted."""
        twin, why = self.twin
        if twin is None:
            return pd.DataFrame(columns=KPI_COLUMNS), why
        return roe_kpis(twin), None

    @property
    def warnings(self) -> list[str]:
        """What the dashboard cannot show, and why."""
        _, why = self.roe
        return [] if why is None else [f"ROE not shown: the decision twin could not be fitted: {why}"]

    @cached_property
    def kpis(self) -> pd.DataFrame:
        """KPI_COLUMNS: the risk figures, the ROE rows, then the alert counts."""
        risk = self.analysis.kpis
        alerts = risk["kpi"].str.startswith(ALERTS_PREFIX).to_numpy()
        rows = [*risk[~alerts].itertuples(index=False, name=None), *self.roe[0].itertuples(index=False, name=None),
                *risk[alerts].itertuples(index=False, name=None)]
        frame = pd.DataFrame(rows, columns=KPI_COLUMNS)
        for col in ("kpi", "note"):
            frame[col] = frame[col].astype("string")
        return frame

    @cached_property
    def del30_reconciliation(self) -> pd.DataFrame:
        """From the book's DEL30 at MOB 12 to the new cohort's (RECONCILIATION_COLUMNS): the Portfolio's (mean of
        cohorts, actual where observed), the same from the fitted chain alone, and a cohort booked now under the
        current policy in the twin. Empty when the twin cannot be fitted or max_mob < 12."""
        twin, _ = self.twin
        a = self.analysis
        m = RECONCILED_MOB
        if twin is None or a.result.stats.max_mob < m:
            return pd.DataFrame(columns=RECONCILIATION_COLUMNS)
        book = float(a.portfolio_del_curve()[m])
        chain = float(a.chain_del_curve()[m])
        new = float(evaluate(twin, current_policy(twin)).set_index("segment").loc[PORTFOLIO, "del30_mob12"])
        rows = [
            (f"Portfolio DEL30 at MOB {m}: the book (mean of cohorts, actual where observed)", book,
             "the dashboard's Portfolio DEL30"),
            (f"The same from the fitted chain alone (each cohort's MOB 0 book rolled to MOB {m})", chain,
             "the actuals: how the observed months differ from the calibrated chain"),
            (f"Expected DEL30 at MOB {m}: a cohort booked now under the current policy (the twin)", new,
             "a new cohort starts in the first bucket, weighted by booked volume over segments and score bands, "
             "not the past cohorts' MOB 0 states and equal weights"),
        ]
        values = np.array([r[1] for r in rows])
        frame = pd.DataFrame({"step": [r[0] for r in rows], "value": values,
                              "difference": np.r_[np.nan, np.diff(values)], "std_error": np.nan,
                              "explanation": [r[2] for r in rows]})
        for col in ("step", "explanation"):
            frame[col] = frame[col].astype("string")
        return frame
