"""Expected loss, 12-month and lifetime, per cohort-segment, segment and Portfolio: LGD x the EAD the projection
sends into the loss state from the reporting date (the fundamental matrix for the time-homogeneous tail).
Formulas: docs/risk.md.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from pyxl_del.engine.config import Config
from pyxl_del.engine.data import PORTFOLIO
from pyxl_del.engine.pipeline import DelResult
from pyxl_del.risk.projection import (
    ALL,
    BOOK_STATUS,
    EL_HORIZON,
    Book,
    Projection,
    absorption_probabilities,
    project,
    roll,
    state_mask,
)

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------------- expected loss

EL_COLUMNS = ["segment", "cohort", "status", "last_mob", "reporting_mob", "ead", "performing_ead", "pd_12m", "lgd",
              "writeoff_12m", "writeoff_lifetime", "default_12m", "default_lifetime", "el_12m", "el_lifetime",
              "el_12m_rate", "el_lifetime_rate"]


def inflow(projection: Projection, config: Config, target: np.ndarray,
           months: int = EL_HORIZON) -> tuple[np.ndarray, np.ndarray]:
    """(S, C) EAD of the reporting date's book that enters the ``target`` states (a mask) in the next ``months``
    months and over its lifetime (explicit steps, then the tail's absorption probabilities).

    The target states are made absorbing, so a balance that enters them and leaves again counts once; for absorbing
    targets (WRITEOFF) that is the projection itself.
    """
    absorbing = state_mask(config, config.buckets.absorbing)
    now = projection.at(0)
    if not (target & ~absorbing).any():
        path, tail = projection.path - (now * target)[:, :, None], projection.tail
    else:
        trapped = projection.matrices.copy()
        trapped[..., target, :] = np.eye(len(target))[target]
        tail = projection.tail.copy()
        tail[..., target, :] = np.eye(len(target))[target]
        path = roll(now * ~target, trapped)
    ends = absorbing | target
    b = absorption_probabilities(tail, ends)[..., target[ends]].sum(axis=-1)  # (S, C or 1, non-ending states)
    end = path[:, :, -1]
    beyond = (end[..., ~ends] * b).sum(axis=-1)
    return path[:, :, months, target].sum(axis=-1), end[..., target].sum(axis=-1) + beyond


def loss_table(result: DelResult, projection: Projection, config: Config | None = None) -> pd.DataFrame:
    """Expected loss per cohort-segment with segment and Portfolio totals (cohort "All") for one projection."""
    cfg = config or result.config
    absorbing = state_mask(cfg, cfg.buckets.absorbing)
    default = state_mask(cfg, cfg.risk.default_states)
    now = projection.at(0)
    writeoff_12m, writeoff_life = inflow(projection, cfg, state_mask(cfg, [cfg.risk.loss_state]))
    defaulted_12m, defaulted_life = inflow(projection, cfg, default)
    stock = now[..., ~absorbing & default].sum(axis=-1)  # in default today (the NPL)
    lgd = np.array([cfg.risk.segment_lgd(s) for s in result.segments])

    book = projection.book
    s_idx, c_idx = np.nonzero(book.present)
    cells = {
        "ead": now[..., ~absorbing].sum(axis=-1), "performing_ead": now[..., ~absorbing & ~default].sum(axis=-1),
        "defaulted": defaulted_12m, "writeoff_12m": writeoff_12m, "writeoff_lifetime": writeoff_life,
        "default_12m": stock + defaulted_12m, "default_lifetime": stock + defaulted_life,
    }
    rows = pd.DataFrame({
        "segment": [result.segments[s] for s in s_idx],
        "cohort": [result.cohorts[c] for c in c_idx],
        "status": np.asarray(BOOK_STATUS, dtype=object)[book.status[s_idx, c_idx]],
        "last_mob": book.final_mob[s_idx, c_idx],
        "reporting_mob": book.reporting_mob[s_idx, c_idx],
        "lgd": lgd[s_idx],
        **{k: v[s_idx, c_idx] for k, v in cells.items()},
    })
    basis = "writeoff" if cfg.risk.el_basis == "writeoff" else "default"
    rows["el_12m"] = rows[f"{basis}_12m"] * rows["lgd"]
    rows["el_lifetime"] = rows[f"{basis}_lifetime"] * rows["lgd"]
    sums = ["ead", "performing_ead", "defaulted", "writeoff_12m", "writeoff_lifetime", "default_12m",
            "default_lifetime", "el_12m", "el_lifetime"]
    segment_totals = rows.groupby("segment", sort=False)[sums].sum().reset_index()
    segment_totals["cohort"] = ALL
    portfolio = rows[sums].sum().to_frame().T.assign(segment=PORTFOLIO, cohort=ALL)
    table = pd.concat([rows, segment_totals, portfolio], ignore_index=True)
    # Totals carry the LGD their expected loss implies (the loss-weighted mean) and no single MOB or status.
    with np.errstate(invalid="ignore", divide="ignore"):
        table["lgd"] = table["lgd"].fillna(table["el_lifetime"] / table[f"{basis}_lifetime"])
        table["pd_12m"] = table["defaulted"] / table["performing_ead"]
        table["el_12m_rate"] = table["el_12m"] / table["ead"]
        table["el_lifetime_rate"] = table["el_lifetime"] / table["ead"]
    for col in ("last_mob", "reporting_mob"):
        table[col] = table[col].astype("Int64")
    for col in ("segment", "cohort", "status"):
        table[col] = table[col].astype("string")
    return table[EL_COLUMNS]


def expected_loss(result: DelResult, config: Config | None = None, book: Book | None = None) -> pd.DataFrame:
    """12-month and lifetime expected loss per cohort-segment, per segment and for the Portfolio (cohort "All").

    EL = LGD x the EAD lost: by [risk] el_basis, the EAD flowing into [risk] loss_state ("writeoff"), or the EAD in
    a default state today plus what enters one ("default"); in the 12 months after the reporting date and over the
    lifetime (explicit steps, then absorption probabilities of the tail matrix). ead is the outstanding EAD (live
    states) at the reporting date (`projection.Book`, status says how each cohort-segment got there); pd_12m the
    share of its performing EAD in a default state within 12 months.
    """
    cfg = config or result.config
    return loss_table(result, project(result, months=EL_HORIZON, config=cfg, book=book), cfg)


def loss_over(result: DelResult, config: Config, months: int, book: Book | None = None) -> float:
    """The Portfolio's expected loss over the next ``months`` months, as `expected_loss` defines it for 12."""
    cfg = config or result.config
    projection = project(result, months=months, config=cfg, book=book)
    risk = cfg.risk
    absorbing = state_mask(cfg, cfg.buckets.absorbing)
    if risk.el_basis == "default":
        default = state_mask(cfg, risk.default_states)
        lost = inflow(projection, cfg, default, months)[0] + projection.at(0)[..., ~absorbing & default].sum(-1)
    else:
        lost = inflow(projection, cfg, state_mask(cfg, [risk.loss_state]), months)[0]
    lgd = np.array([risk.segment_lgd(s) for s in result.segments])
    return float((lost.sum(axis=1) * lgd).sum())
