"""Concentration of outstanding EAD: HHI and top-n shares by segment and cohort, today and over time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pyxl_del.engine.config import Config
from pyxl_del.engine.data import month_label
from pyxl_del.engine.pipeline import DelResult
from pyxl_del.risk.projection import Book, reporting_book, state_mask

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------------- concentration


def hhi(values, axis: int = -1):
    """Herfindahl-Hirschman index: the sum of squared shares (1/n for n equal shares, 1 for one holder)."""
    v = np.asarray(values, dtype=np.float64)
    total = v.sum(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((v / total) ** 2).sum(axis=axis)[()]


def top_share(values, n: int, axis: int = -1):
    """The share of the n largest values."""
    v = np.sort(np.asarray(values, dtype=np.float64), axis=axis)
    top = np.take(v, np.arange(max(v.shape[axis] - n, 0), v.shape[axis]), axis=axis).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (top / v.sum(axis=axis))[()]


@dataclass(frozen=True)
class Concentration:
    """Outstanding EAD concentration by segment and by cohort: today (reporting date) and by calendar month."""

    current: pd.DataFrame  # by, name, ead, share, rank
    summary: pd.DataFrame  # by, n, ead, hhi, effective_n, top1_share, topn_share (today)
    trend: pd.DataFrame  # month, by, n, ead, hhi, effective_n, top1_share, topn_share (actual data)
    mix: pd.DataFrame  # month rows x segment columns: share of outstanding EAD
    top_n: int

    def value(self, by: str, measure: str, n: int = 1) -> float:
        """Today's HHI ("hhi") or top-n share ("top_share") by "segment" or "cohort"."""
        ead = self.current.loc[self.current["by"] == by, "ead"].to_numpy()
        return float(hhi(ead) if measure == "hhi" else top_share(ead, n))


def _concentration_row(ead: np.ndarray, n: int) -> dict:
    index = hhi(ead, axis=0)
    return {"n": (ead > 0).sum(axis=0), "ead": ead.sum(axis=0), "hhi": index,
            "effective_n": np.divide(1.0, index, out=np.full_like(index, np.nan), where=index > 0),
            "top1_share": top_share(ead, 1, axis=0), "topn_share": top_share(ead, n, axis=0)}


def concentration(result: DelResult, config: Config | None = None, book: Book | None = None) -> Concentration:
    """HHI, effective number and top-n shares of outstanding EAD by segment and by cohort at the reporting date
    (`projection.Book`), with the monthly trend of the actual data."""
    cfg = config or result.config
    n = cfg.risk.top_n
    live = ~state_mask(cfg, cfg.buckets.absorbing)
    today = (book or reporting_book(result, cfg)).ead[..., live].sum(axis=-1)  # (S, C)
    parts = {"segment": (list(result.segments), today.sum(axis=1)), "cohort": (result.cohorts, today.sum(axis=0))}
    current = []
    for by, (names, ead) in parts.items():
        with np.errstate(invalid="ignore", divide="ignore"):
            share = ead / ead.sum()
        rank = pd.Series(ead).rank(ascending=False, method="first").astype(np.int64).to_numpy()
        current.append(pd.DataFrame({"by": by, "name": names, "ead": ead, "share": share, "rank": rank}))
    current = pd.concat(current, ignore_index=True)
    summary = pd.DataFrame([{"by": by, **{k: v[0] for k, v in _concentration_row(ead[:, None], n).items()}}
                            for by, (_, ead) in parts.items()])

    stats = result.stats
    observed = stats.ead[..., live].sum(axis=-1) * stats.observed  # (S, C, M+1)
    month = stats.cohorts[:, None] + np.arange(stats.max_mob + 1)  # (C, M+1) calendar month index
    first = int(month.min())
    n_months = int(month.max()) - first + 1
    by_segment = np.stack([np.bincount((month - first).ravel(), weights=observed[s].ravel(), minlength=n_months)
                           for s in range(len(result.segments))])  # (S, months)
    by_cohort = np.stack([np.bincount(month[c] - first, weights=observed[:, c].sum(axis=0), minlength=n_months)
                          for c in range(len(result.cohorts))])  # (C, months)
    has_data = by_segment.sum(axis=0) > 0
    labels = np.asarray(month_label(np.arange(first, first + n_months)), dtype=object)[has_data]
    trend = pd.concat([pd.DataFrame({"month": labels, "by": by,
                                     **{k: v[has_data] for k, v in _concentration_row(ead, n).items()}})
                       for by, ead in (("segment", by_segment), ("cohort", by_cohort))], ignore_index=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        mix = pd.DataFrame((by_segment / by_segment.sum(axis=0)).T[has_data],
                           index=pd.Index(labels, name="month", dtype="string"),
                           columns=pd.Index(result.segments, name="segment", dtype="string"))
    for frame in (current, summary, trend):
        for col in frame.columns.intersection(["by", "name", "month"]):
            frame[col] = frame[col].astype("string")
    return Concentration(current=current, summary=summary, trend=trend, mix=mix, top_n=n)
