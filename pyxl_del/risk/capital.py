"""The Vasicek quantile, Basel IRB retail capital (INDICATIVE: not a regulatory calculation) and the NPL ratio.
Formulas and what "indicative" leaves out: docs/risk.md.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from pyxl_del.engine.config import Config
from pyxl_del.engine.data import PORTFOLIO
from pyxl_del.engine.pipeline import DelResult
from pyxl_del.risk.expected_loss import expected_loss
from pyxl_del.risk.projection import ALL, Book, reporting_book, state_mask

log = logging.getLogger(__name__)

IRB_CONFIDENCE = 0.999
IRB_CORRELATION = {"mortgage": 0.15, "revolving": 0.04}


# ----------------------------------------------------------------------------------------- Vasicek and IRB


def vasicek_quantile(pd: float, rho: float, q: float) -> float:
    """The q-quantile of the loss rate (LGD 1) of a large homogeneous pool (Vasicek):
    Phi((Phi^-1(pd) + sqrt(rho) Phi^-1(q)) / sqrt(1 - rho))."""
    from scipy.special import ndtr, ndtri  # 0.3 s to import: only when used

    value = ndtr((ndtri(pd) + np.sqrt(rho) * ndtri(q)) / np.sqrt(1.0 - rho))
    return float(value) if np.ndim(value) == 0 else value


def irb_correlation(pd, kind: str = "other"):
    """Basel retail asset correlation: residential mortgage 0.15, qualifying revolving 0.04, other retail
    0.03 w + 0.16 (1 - w) with w = (1 - exp(-35 PD)) / (1 - exp(-35))."""
    if kind in IRB_CORRELATION:
        return np.full_like(np.asarray(pd, dtype=np.float64), IRB_CORRELATION[kind])[()]
    if kind != "other":
        raise ValueError(f"unknown IRB retail class {kind!r}; known: other, {', '.join(IRB_CORRELATION)}")
    w = np.expm1(-35.0 * np.asarray(pd, dtype=np.float64)) / np.expm1(-35.0)
    return (0.03 * w + 0.16 * (1.0 - w))[()]


def irb_retail_capital(pd, lgd, correlation=None, kind: str = "other"):
    """Basel IRB retail: (capital requirement K per unit EAD, risk weight) — INDICATIVE.

    K = LGD x (Vasicek 99.9% quantile of the default rate - PD), no maturity adjustment (retail);
    risk weight = 12.5 K. ``correlation`` overrides the class's formula.
    """
    r = irb_correlation(pd, kind) if correlation is None else correlation
    k = np.maximum(np.asarray(lgd, dtype=np.float64) * (vasicek_quantile(pd, r, IRB_CONFIDENCE) - np.asarray(pd)),
                   0.0)[()]
    return k, 12.5 * k


CAPITAL_COLUMNS = ["segment", "irb_class", "pd_12m", "pd_used", "lgd", "correlation", "performing_ead", "k",
                   "risk_weight", "rwa", "capital", "defaulted_ead", "outstanding_ead", "npl_ratio",
                   "writeoff_share"]


def capital(result: DelResult, config: Config | None = None, el: pd.DataFrame | None = None,
            book: Book | None = None) -> pd.DataFrame:
    """INDICATIVE Basel IRB retail capital per segment and for the Portfolio, with the NPL ratio.

    PD = the chain's 12-month default rate of today's performing EAD (floored at [risk] pd_floor), LGD from
    [risk], EAD = performing EAD. Defaulted EAD (live default states, e.g. DPD90+) carries no K here.
    npl_ratio = defaulted EAD / outstanding EAD; writeoff_share = EAD in loss_state / (outstanding + that); all at the
    reporting date (`projection.Book`).
    """
    cfg = config or result.config
    book = book or reporting_book(result, cfg)
    el = expected_loss(result, cfg, book) if el is None else el
    totals = el[el["cohort"] == ALL].set_index("segment")
    now = book.ead.sum(axis=1)  # (S, K)
    absorbing = state_mask(cfg, cfg.buckets.absorbing)
    defaulted = now[:, ~absorbing & state_mask(cfg, cfg.risk.default_states)].sum(axis=-1)
    outstanding = now[:, ~absorbing].sum(axis=-1)
    written = now[:, list(cfg.buckets.order).index(cfg.risk.loss_state)]
    segments = list(result.segments)
    frame = pd.DataFrame({
        "segment": segments,
        "irb_class": [cfg.risk.segment_irb_class(s) for s in segments],
        "pd_12m": totals.loc[segments, "pd_12m"].to_numpy(dtype=np.float64),
        "lgd": [cfg.risk.segment_lgd(s) for s in segments],
        "performing_ead": totals.loc[segments, "performing_ead"].to_numpy(dtype=np.float64),
        "defaulted_ead": defaulted, "outstanding_ead": outstanding, "written": written,
    })
    frame["pd_used"] = np.maximum(frame["pd_12m"].fillna(0.0), cfg.risk.pd_floor)
    frame["correlation"] = [irb_correlation(p, kind) for p, kind in zip(frame["pd_used"], frame["irb_class"],
                                                                         strict=True)]
    frame["k"], frame["risk_weight"] = irb_retail_capital(frame["pd_used"].to_numpy(), frame["lgd"].to_numpy(),
                                                          frame["correlation"].to_numpy())
    frame["rwa"] = frame["risk_weight"] * frame["performing_ead"]
    frame["capital"] = frame["k"] * frame["performing_ead"]
    sums = ["performing_ead", "defaulted_ead", "outstanding_ead", "written", "rwa", "capital"]
    total = frame[sums].sum()
    performing = total["performing_ead"]
    with np.errstate(invalid="ignore", divide="ignore"):
        portfolio = {
            **total.to_dict(), "segment": PORTFOLIO, "irb_class": "",
            "pd_12m": totals.loc[PORTFOLIO, "pd_12m"],
            "pd_used": float(np.dot(frame["pd_used"], frame["performing_ead"]) / performing),
            "lgd": float(np.dot(frame["lgd"], frame["performing_ead"]) / performing),
            "correlation": np.nan, "k": total["capital"] / performing, "risk_weight": total["rwa"] / performing,
        }
    frame = pd.concat([frame, pd.DataFrame([portfolio])], ignore_index=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        frame["npl_ratio"] = frame["defaulted_ead"] / frame["outstanding_ead"]
        frame["writeoff_share"] = frame["written"] / (frame["outstanding_ead"] + frame["written"])
    for col in ("segment", "irb_class"):
        frame[col] = frame[col].astype("string")
    return frame[CAPITAL_COLUMNS]
