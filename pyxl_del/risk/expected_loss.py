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
              "writeoff_12m", "writeoff_lifetime", "el_12m", "el_lifetime", "el_12m_rate", "el_lifetime_rate"]


def _default_mass(projection: Projection, config: Config, months: int) -> tuple[np.ndarray, np.ndarray]:
    """(EAD of today's performing loans in default within ``months``, today's performing EAD), both (S, C).

    Default states are made absorbing so a loan that defaults and then cures still counts once.
    """
    default = state_mask(config, config.risk.default_states)
    performing = ~state_mask(config, config.buckets.absorbing) & ~default
    start = projection.at(0) * performing
    trapped = projection.matrices[:, :, :months].copy()
    trapped[..., default, :] = np.eye(len(default))[default]
    ended = roll(start, trapped)[:, :, -1]
    return ended[..., default].sum(axis=-1), start.sum(axis=-1)


def loss_table(result: DelResult, projection: Projection, config: Config | None = None) -> pd.DataFrame:
    """Expected loss per cohort-segment with segment and Portfolio totals (cohort "All") for one projection."""
    cfg = config or result.config
    order = list(cfg.buckets.order)
    loss = order.index(cfg.risk.loss_state)
    absorbing = state_mask(cfg, cfg.buckets.absorbing)
    now = projection.at(0)
    later = projection.at(EL_HORIZON)
    writeoff_12m = later[..., loss] - now[..., loss]
    b = absorption_probabilities(projection.tail, absorbing)  # (S, live, absorbing)
    to_loss = b[..., list(np.flatnonzero(absorbing)).index(loss)]  # (S, live)
    end = projection.path[:, :, -1]
    beyond = np.einsum("sck,sk->sc", end[..., ~absorbing], to_loss)
    writeoff_life = end[..., loss] - now[..., loss] + np.where(projection.present, beyond, 0.0)
    defaulted, performing = _default_mass(projection, cfg, EL_HORIZON)
    lgd = np.array([cfg.risk.segment_lgd(s) for s in result.segments])

    book = projection.book
    s_idx, c_idx = np.nonzero(book.present)
    cells = {
        "ead": now[..., ~absorbing].sum(axis=-1), "performing_ead": performing, "defaulted": defaulted,
        "writeoff_12m": writeoff_12m, "writeoff_lifetime": writeoff_life,
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
    rows["el_12m"] = rows["writeoff_12m"] * rows["lgd"]
    rows["el_lifetime"] = rows["writeoff_lifetime"] * rows["lgd"]
    sums = ["ead", "performing_ead", "defaulted", "writeoff_12m", "writeoff_lifetime", "el_12m", "el_lifetime"]
    segment_totals = rows.groupby("segment", sort=False)[sums].sum().reset_index()
    segment_totals["cohort"] = ALL
    portfolio = rows[sums].sum().to_frame().T.assign(segment=PORTFOLIO, cohort=ALL)
    table = pd.concat([rows, segment_totals, portfolio], ignore_index=True)
    # Totals carry the LGD their expected loss implies (the write-off-weighted mean) and no single MOB or status.
    with np.errstate(invalid="ignore", divide="ignore"):
        table["lgd"] = table["lgd"].fillna(table["el_lifetime"] / table["writeoff_lifetime"])
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

    EL = EAD flowing into [risk] loss_state x LGD: in the 12 months after each cohort's last actual month, and
    over its lifetime (explicit steps, then absorption probabilities of the tail matrix). ead is the outstanding
    EAD (live states) at the reporting date (`projection.Book`, status says how each cohort-segment got there);
    pd_12m the share of its performing EAD in a default state within 12 months.
    """
    cfg = config or result.config
    return loss_table(result, project(result, months=EL_HORIZON, config=cfg, book=book), cfg)
