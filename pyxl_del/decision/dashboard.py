"""The risk dashboard's figures: the risk analysis' KPIs and, beside them, what the applied policy earns.

ROE needs both layers (the risk views of the fitted chains, and the decision twin of the same data), so the
dashboard is composed here, above both; `RiskAnalysis` stays free of decision code.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property

import pandas as pd

from pyxl_del.decision.optimise import roe_kpis
from pyxl_del.decision.twin import fit_twin
from pyxl_del.risk.analysis import ALERTS_PREFIX, KPI_COLUMNS, RiskAnalysis

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dashboard:
    """The dashboard of one `RiskAnalysis`: its KPIs with the ROE rows of the applied policy before the alert
    counts, each computed once."""

    analysis: RiskAnalysis

    @cached_property
    def roe(self) -> tuple[pd.DataFrame, str | None]:
        """(KPI rows, None): `optimise.roe_kpis` of the applied policy in the decision twin (portfolio ROE, the value,
        volume and approval rate of a month's bookings, ...); or (no rows, why) when the twin cannot be fitted, e.g.
        a [policy] whose segments are not the data's. The risk views do not depend on it."""
        a = self.analysis
        try:
            rows = roe_kpis(fit_twin(a.result if a.data is None else a.data, a.config, sheet=a.sheet))
        except ValueError as exc:  # the twin's input errors (PanelError, PolicyError, ConfigError) say what is wrong
            log.warning("no ROE on the dashboard: %s", exc)
            return pd.DataFrame(columns=KPI_COLUMNS), " ".join(str(exc).split())
        return rows, None

    @cached_property
    def kpis(self) -> pd.DataFrame:
        """KPI_COLUMNS: the risk figures, the ROE rows, then the alert counts."""
        risk = self.analysis.kpis
        alerts = risk["kpi"].str.startswith(ALERTS_PREFIX).to_numpy()
        rows = [*risk[~alerts].itertuples(index=False, name=None), *self.roe[0].itertuples(index=False, name=None),
                *risk[alerts].itertuples(index=False, name=None)]
        frame = pd.DataFrame(rows, columns=KPI_COLUMNS)
        frame["kpi"] = frame["kpi"].astype("string")
        return frame
