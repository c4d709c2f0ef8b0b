"""The decision engine's twin: the fitted chains per segment x score band, and what one unit booked is worth.

`fit_twin(data_or_result, config) -> Twin` is estimator-style: parameters in, a frozen result of arrays out.

* With a score column, the chain is estimated per segment x score band by running the ordinary engine
  (`pipeline.run`) on the panel with the segment key replaced by "segment|band"; nothing is re-estimated here.
* Without one, each segment's chain is split into illustrative bands by the logistic PD-score link of
  [economics] (`economics.linked_band_pd`): a band's chain is the segment's with its deteriorating transitions
  scaled until its 12-month PD equals the band's linked PD.

From the chains, per segment x band: the lifetime EAD path of one unit booked in the first bucket at MOB 0,
its write-off flow, 12-month and lifetime PD, DEL30 at MOB 6 and 12, the capital held, and the discounted
unit economics, linear in the APR: value(p) = (1 - tax) * (annuity * p - funding - opex - loss) - capital
charge. Loss given default, the IRB class, the loss and default states and rho are [risk]'s (pyxl_del.risk).
docs/decisions.md has the formulas.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pyxl_del.datasets.scores import normal_band_edges, normal_band_means
from pyxl_del.decision.economics import (
    ILLUSTRATIVE,
    Terms,
    discount_factors,
    linked_band_pd,
    segment_terms,
    take_up,
)
from pyxl_del.engine.config import Config, ConfigError, load_config
from pyxl_del.engine.data import column_numbers, first_data_row, read_panel, row_numbers
from pyxl_del.engine.diagnostics import too_few_steps
from pyxl_del.engine.errors import PanelError
from pyxl_del.engine.pipeline import DelResult, fit, run
from pyxl_del.risk.capital import irb_retail_capital, vasicek_quantile
from pyxl_del.risk.checks import zero_loss_cause
from pyxl_del.risk.projection import severity_order

log = logging.getLogger(__name__)

BAND_SEPARATOR = "|"
PD_HORIZON = 12
VAR_QUANTILE = 0.99
RECENT_COHORTS = 12  # the cohorts that define the current monthly volume and practice


@dataclass(frozen=True, eq=False)
class Twin:
    """Per segment x band arrays (S segments, B bands, M MOB steps, K states). Fitted by `fit_twin`."""

    config: Config
    segments: tuple[str, ...]
    states: tuple[str, ...]
    scored: bool  # the data had a score; False: bands from the illustrative PD-score link
    band_edges: np.ndarray  # (S, B+1) score edges, ascending; band b holds scores in [edges[b], edges[b+1])
    band_weight: np.ndarray  # (S, B) share of the applicant amount per band (rows sum to 1)
    transition_matrix: np.ndarray  # (S, B, M, K, K) as applied by the engine
    amortisation: np.ndarray  # (S, M) share of a live balance kept from MOB m to m+1
    distribution: np.ndarray  # (S, B, M+1, K) state shares of one unit booked (the engine's DEL semantics)
    ead: np.ndarray  # (S, B, M+1) outstanding (live) balance of one unit booked
    performing: np.ndarray  # (S, B, M+1) the part of it that earns interest (not in a DEL30 bucket)
    writeoff: np.ndarray  # (S, B, M+1) balance lost in the month ending at MOB m: flowing into [risk] loss_state
    # (or, [risk] el_basis = "default", entering a default state: the risk module's definition of the loss)
    pd12: np.ndarray  # (S, B) first passage into a [risk] default state within 12 months
    pd_life: np.ndarray  # (S, B) ... within max_mob months
    del30_mob6: np.ndarray  # (S, B)
    del30_mob12: np.ndarray  # (S, B)
    capital: np.ndarray  # (S, B) capital per unit outstanding EAD
    terms: Terms  # per segment: funding, opex, LGD, demand, ..., and which are ILLUSTRATIVE defaults
    current_apr: np.ndarray  # (S, B) APR of the booked loans (data) or [economics] segments apr / default_apr
    observed_apr: np.ndarray  # (S, 2) lowest and highest APR of the booked loans (NaN: the data have none)
    volume: np.ndarray  # (S,) recent monthly amount booked
    applications: np.ndarray  # (S,) monthly amount applied for
    result: DelResult | None = field(default=None, repr=False)  # the engine run behind the chains

    @property
    def n_bands(self) -> int:
        return self.band_weight.shape[1]

    @property
    def lgd(self) -> np.ndarray:
        """(S,) [risk] loss given default."""
        return self.terms.lgd

    @property
    def demand(self) -> np.ndarray:
        """(S, 3) max_take_up, midpoint, steepness."""
        return self.terms.demand

    def caveat(self, segments: np.ndarray | None = None) -> str:
        """"ILLUSTRATIVE: ..." when the economics of the segments (a mask; default all) rest on a default, or their
        chain on too few months of data (engine.diagnostics.short_history), else ""."""
        parts = (self.terms.caveat(segments), self._margin_caveat(segments), self._history_caveat(segments),
                 self._loans_caveat(segments))
        return " | ".join(t for t in parts if t)

    def _loans_caveat(self, segments: np.ndarray | None) -> str:
        """"ILLUSTRATIVE: ..." for segments whose chains rest on fewer loans than [transitions] min_count, or that
        were booked at zero balance (no amount to weigh or size them by), else ""."""
        if self.result is None:
            return ""
        chosen = np.flatnonzero(np.ones(len(self.segments), dtype=bool) if segments is None else segments)
        stats, floor = self.result.stats, self.config.transitions.min_count
        parts = []
        for s in chosen:
            rows = self._result_rows(int(s))
            loans = int(stats.n_loans[rows].max(axis=2).sum())
            if loans < floor:
                parts.append(f"{self.segments[s]} rests on {loans} loan{'s' * (loans != 1)} (fewer than [transitions] "
                             f"min_count {floor}): its PDs and values are a few loans' history")
            if not stats.ead[rows][:, :, 0].sum() > 0:
                parts.append(f"{self.segments[s]} has no balance at MOB 0, the amount booked: its bands are weighted "
                             f"by loans and its monthly volume is 0")
        return f"{ILLUSTRATIVE}: " + "; ".join(parts) if parts else ""

    def _margin_caveat(self, segments: np.ndarray | None) -> str:
        """Why the value and ROE are far below zero when the booked APR does not cover default running costs (a
        mortgage book at 4% under the consumer-lending defaults of 7% funding and 10% opex), else ""."""
        chosen = np.ones(len(self.segments), dtype=bool) if segments is None else np.asarray(segments, dtype=bool)
        apr = (self.band_weight * self.current_apr).sum(axis=1)
        costs = self.terms.funding_rate + self.terms.opex_rate
        cost_keys = ("[economics] funding_rate", "[economics] opex_rate")
        defaulted = np.array([any(k in keys for k in cost_keys) for keys in self.terms.defaults], dtype=bool)
        below = np.flatnonzero(chosen & defaulted & (apr < costs))
        if not len(below):
            return ""
        named = ", ".join(f"{self.segments[s]} {apr[s]:.1%}" for s in below)
        return (f"{ILLUSTRATIVE}: the APR booked ({named}) is below the default cost of funds and running costs "
                f"({self.terms.funding_rate[below[0]]:.0%} + {self.terms.opex_rate[below[0]]:.0%}), so every unit "
                f"booked loses before any credit loss: set [economics] funding_rate and opex_rate for this book")

    def _result_rows(self, s: int) -> list[int]:
        """The engine's segments behind twin segment s (itself, or its score bands)."""
        segment, names = self.segments[s], list(self.result.segments)
        return [i for i, n in enumerate(names) if n == segment or n.startswith(f"{segment}{BAND_SEPARATOR}")]

    def _history_caveat(self, segments: np.ndarray | None) -> str:
        if self.result is None:
            return ""
        chosen = np.flatnonzero(np.ones(len(self.segments), dtype=bool) if segments is None else segments)
        short = self.result.short_history
        named = [self.segments[s] for s in chosen if short[self._result_rows(int(s))].any()]
        if not named:
            return ""
        return "ILLUSTRATIVE: " + too_few_steps("the chain of " + ", ".join(named), 1)

    def zero_loss_note(self, s: int) -> str:
        """"expected loss 0: <cause and setting>" when some band of segment s never loses (its chain has no path to
        the loss), else "": the risk module's diagnosis of the same chain."""
        if (self.writeoff[s].sum(axis=-1) > 0).all() or self.result is None:
            return ""
        return f"expected loss 0: {zero_loss_cause(self.result, self._result_rows(s) or [0], self.config)}"

    def band_caveats(self) -> np.ndarray:
        """(S, B) what a band's figures need said beside them: the segment's ILLUSTRATIVE economics, and an
        expected loss of 0 that is no measured zero, with its cause; "" where nothing."""
        out = np.full(self.band_weight.shape, "", dtype=object)
        lost = self.writeoff.sum(axis=-1) > 0
        for s in range(len(self.segments)):
            caveat, zero = self.caveat(np.arange(len(self.segments)) == s), self.zero_loss_note(s)
            for b in range(self.n_bands):
                out[s, b] = " | ".join(t for t in (caveat, "" if lost[s, b] else zero) if t)
        return out

    def apr_range(self) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        """(lowest (S,), highest (S,), where from) of the APRs allowed per segment: [policy] apr_min / apr_max where
        set, else the range of the APRs booked in the data, else the current APR only (nothing to reprice with)."""
        pol = self.config.policy
        current = (self.band_weight * self.current_apr).sum(axis=1)
        seen = ~np.isnan(self.observed_apr[:, 0])
        lo = np.where(seen, self.observed_apr[:, 0], current) if pol.apr_min is None else np.full(len(current),
                                                                                                 pol.apr_min)
        hi = np.where(seen, self.observed_apr[:, 1], current) if pol.apr_max is None else np.full(len(current),
                                                                                                 pol.apr_max)
        hi = np.maximum(hi, lo)
        where = []
        for s in range(len(current)):
            if pol.apr_min is not None and pol.apr_max is not None:
                where.append("[policy] apr_min .. apr_max")
            elif seen[s]:
                where.append("the APRs booked in the data" + (" and [policy]" if pol.apr_min is not None
                                                             or pol.apr_max is not None else ""))
            else:
                where.append("the current APR only: set [policy] apr_min and apr_max (or give the data an APR "
                             "column) to let the optimiser price")
        return lo, hi, tuple(where)

    @property
    def max_mob(self) -> int:
        return self.transition_matrix.shape[2]

    # ------------------------------------------------------------------------------------- unit economics

    def _annuities(self, discount_rate: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(S, B) present values per unit booked: performing EAD-years, outstanding EAD-years, written-off EAD.

        Interest, funding, opex and capital for month m -> m+1 accrue on the balance at m and are paid at m+1;
        the balance left at max_mob is repaid there.
        """
        df = discount_factors(discount_rate, self.max_mob)
        perf = np.einsum("sbm,m->sb", self.performing[..., :-1], df[1:]) / 12.0
        ead = np.einsum("sbm,m->sb", self.ead[..., :-1], df[1:]) / 12.0
        wo = np.einsum("sbm,m->sb", self.writeoff, df)
        return perf, ead, wo

    def unit_economics(self) -> dict[str, np.ndarray]:
        """Discounted economics of one unit booked, (S, B) each: value(p) = slope * p - intercept.

        Keys: annuity (PV of performing EAD-years: interest per unit of APR), funding, opex, loss, capital_charge
        (pre-tax costs; the charge is after tax), slope = (1 - tax) * annuity, intercept, unit_cost (the
        break-even APR) and its parts cost_funding, cost_opex, cost_loss, cost_capital (APR points that add up
        to unit_cost).
        """
        t = self.terms
        annuity, ead_years, pv_wo = self._annuities(t.discount_rate)
        parts = {
            "funding": t.funding_rate[:, None] * ead_years,
            "opex": t.opex_upfront[:, None] + t.opex_rate[:, None] * ead_years,
            "loss": self.lgd[:, None] * pv_wo,
            "capital_charge": t.hurdle_rate * self.capital * ead_years,
        }
        keep = 1.0 - t.tax_rate
        slope = keep * annuity
        intercept = keep * (parts["funding"] + parts["opex"] + parts["loss"]) + parts["capital_charge"]
        with np.errstate(divide="ignore", invalid="ignore"):
            costs = {
                "cost_funding": parts["funding"] / annuity,
                "cost_opex": parts["opex"] / annuity,
                "cost_loss": parts["loss"] / annuity,
                "cost_capital": parts["capital_charge"] / slope,
            }
        return {"annuity": annuity, **parts, "slope": slope, "intercept": intercept,
                "unit_cost": intercept / slope, **costs}

    def unit_value(self, apr) -> np.ndarray:
        """(S, B) discounted economic value of one unit booked at ``apr`` (broadcast to (S, B))."""
        u = self.unit_economics()
        return u["slope"] * np.asarray(apr, dtype=np.float64) - u["intercept"]

    def lifetime_sums(self) -> dict[str, np.ndarray]:
        """(S, B) undiscounted per unit booked: performing and outstanding EAD-months, written-off EAD.

        With a constant monthly volume V the steady-state book holds V * ead_months outstanding, so these turn
        one booking into the annual flows and capital of a steady book (ROE).
        """
        return {"perf_months": self.performing[..., :-1].sum(axis=-1), "ead_months": self.ead[..., :-1].sum(axis=-1),
                "writeoff": self.writeoff.sum(axis=-1)}

    def income_terms(self) -> tuple[np.ndarray, np.ndarray]:
        """(a, c), (S, B) each: the annual net income after tax of the steady book that booking one unit a month
        builds is a x APR - c, i.e. (interest - funding - opex - expected loss) x (1 - tax); with `capital_months`
        it gives the steady-state ROE (docs/decisions.md §2)."""
        t, sums = self.terms, self.lifetime_sums()
        keep = 1.0 - t.tax_rate
        costs = (t.funding_rate + t.opex_rate)[:, None] * sums["ead_months"] + \
            12.0 * (self.lgd[:, None] * sums["writeoff"] + t.opex_upfront[:, None])
        return keep * sums["perf_months"], keep * costs

    def capital_months(self) -> np.ndarray:
        """(S, B) capital of the steady book per unit booked a month."""
        return self.capital * self.lifetime_sums()["ead_months"]

    def take_up(self, apr) -> np.ndarray:
        """Take-up at ``apr``, broadcast against (S, B) by segment."""
        d = self.demand
        return take_up(apr, d[:, 0, None], d[:, 1, None], d[:, 2, None])

    def acceptance(self, cutoff) -> np.ndarray:
        """(S, B) accepted share of each band for per-segment cut-offs (S,) (NaN: accept all).

        Scores are taken as uniform within a band, so a cut-off inside a band accepts part of it. A band of zero
        width (tied scores: every loan of a segment scored 600) holds that one score, accepted or not as a whole.
        """
        c = np.asarray(cutoff, dtype=np.float64).reshape(-1, 1)
        lo, hi = self.band_edges[:, :-1], self.band_edges[:, 1:]
        width = hi - lo
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.where(width > 0, np.clip((hi - c) / width, 0.0, 1.0), (lo >= c).astype(np.float64))
        return np.where(np.isnan(c), 1.0, frac)

    def var99_rate(self) -> np.ndarray:
        """(S, B) 99% one-year loss quantile per unit booked: LGD x the Vasicek quantile of the 12-month PD at
        [risk] rho (a large pool driven by the one credit-cycle factor, as in pyxl_del.risk.var)."""
        return self.lgd[:, None] * vasicek_quantile(self.pd12, self.config.risk.rho, VAR_QUANTILE)

    def frame(self) -> pd.DataFrame:
        """One row per segment x band: edges, weight, PDs, DEL30, capital, unit economics at the current APR."""
        u = self.unit_economics()
        s_idx, b_idx = np.indices(self.band_weight.shape).reshape(2, -1)
        return pd.DataFrame({
            "segment": pd.array(np.asarray(self.segments, dtype=object)[s_idx], dtype="string"),
            "band": b_idx + 1,
            "score_from": self.band_edges[:, :-1].ravel(),
            "score_to": self.band_edges[:, 1:].ravel(),
            "weight": self.band_weight.ravel(),
            "pd12": self.pd12.ravel(),
            "pd_lifetime": self.pd_life.ravel(),
            "del30_mob6": self.del30_mob6.ravel(),
            "del30_mob12": self.del30_mob12.ravel(),
            "capital_per_ead": self.capital.ravel(),
            "current_apr": self.current_apr.ravel(),
            "unit_cost": u["unit_cost"].ravel(),
            "value_at_current_apr": self.unit_value(self.current_apr).ravel(),
            "illustrative": pd.array([self.caveat(np.arange(len(self.segments)) == s) for s in s_idx], dtype="string"),
        })


# ------------------------------------------------------------------------------------------------ reading


def read_decision_panel(data, config: Config, *, sheet=None) -> tuple[pd.DataFrame, str]:
    """The six mapped columns plus score and apr where the config maps them and the data has them, read and checked
    by `data.read_panel` (the panel's delimiter, title lines and sheet)."""
    wanted = [config[k] for k in ("score", "apr") if config[k] is not None]
    return read_panel(data, config, sheet=sheet, optional=wanted)


def _numeric_column(frame: pd.DataFrame, key: str, config: Config, source: str) -> np.ndarray:
    column = config[key]
    values = column_numbers(frame[column], config.columns.decimal)  # "519,0" with [columns] decimal = ","
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        raise PanelError(source, [f"column {column!r} ([columns] {key}) is empty or not a number in "
                                  f"{row_numbers(bad, first_data_row(frame))}; "
                                  f"every row needs one (or set [columns] {key} = \"\" not to use it)"])
    return values


# ------------------------------------------------------------------------------------------------ fitting


def fit_twin(data_or_result, config: Config | str | None = None, *, sheet=None) -> Twin:
    """A panel (DataFrame or file) or an engine result -> fitted Twin. A result has no score: illustrative bands."""
    if isinstance(data_or_result, DelResult):
        cfg = data_or_result.config if config is None else _config(config)
        result = data_or_result
        if result.config.transitions.weighting != _loan_chain(cfg).transitions.weighting:
            result = fit(result.stats, _loan_chain(cfg))
        return _linked_twin(result, cfg, apr=None, frame=None)
    cfg = _config(config)
    frame, source = read_decision_panel(data_or_result, cfg, sheet=sheet)
    apr = _numeric_column(frame, "apr", cfg, source) if cfg["apr"] in frame.columns else None
    if apr is not None and (apr < 0).any():
        raise PanelError(source, [f"column {cfg['apr']!r} ([columns] apr) is negative in "
                                  f"{row_numbers(np.flatnonzero(apr < 0), first_data_row(frame))}"])
    if apr is not None and np.median(apr) > 5:
        raise PanelError(source, [f"column {cfg['apr']!r} ([columns] apr) looks like percent (median "
                                  f"{np.median(apr):g}); give APRs as fractions, e.g. 0.24 for 24%"])
    if cfg["score"] is None or cfg["score"] not in frame.columns:
        log.info("no score column: bands from the illustrative logistic PD-score link")
        return _linked_twin(run(frame, _loan_chain(cfg)), cfg, apr=apr, frame=frame)
    return _scored_twin(frame, cfg, source, apr)


def _config(config) -> Config:
    return config if isinstance(config, Config) else load_config(config)


def _loan_chain(cfg: Config) -> Config:
    """The twin moves one unit's loans between states and amortises their balance separately (`_amortisation`),
    so its chain's rows must sum to 1: dollar roll rates ([transitions] weighting "balance", whose rows lose the
    balance paid down) would amortise twice. Such a config gets the EAD-weighted chain; the rest is unchanged."""
    chain = {"weighting": "ead"} if cfg.transitions.weighting == "balance" else {}
    # The twin uses the expected paths only: forecast intervals would be simulated (for every band) for nothing.
    return cfg.with_overrides(transitions=chain, forecast={"intervals": False})


def _recent_volume(result: DelResult, ead0: np.ndarray) -> np.ndarray:
    """Mean monthly amount booked over the last RECENT_COHORTS cohorts; ead0 (..., C)."""
    recent = result.stats.cohorts >= result.stats.cohorts.max() - RECENT_COHORTS + 1
    return ead0[..., recent].mean(axis=-1)


def _booked_apr(frame: pd.DataFrame, cfg: Config, apr: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """(n_groups,) MOB-0-EAD-weighted mean APR per group code (NaN where a group has none)."""
    mob0 = (column_numbers(frame[cfg["mob"]]) == 0) & (group >= 0)
    ead = column_numbers(frame[cfg["ead"]], cfg.columns.decimal)
    w = np.bincount(group[mob0], weights=ead[mob0], minlength=n_groups)
    num = np.bincount(group[mob0], weights=(ead * apr)[mob0], minlength=n_groups)
    return np.divide(num, w, out=np.full_like(w, np.nan), where=w > 0)


def _apr_range(apr: np.ndarray, seg_codes: np.ndarray, n_seg: int) -> np.ndarray:
    """(S, 2) the lowest and highest APR in each segment's rows (NaN where it has none)."""
    ok = seg_codes >= 0
    lo, hi = np.full(n_seg, np.inf), np.full(n_seg, -np.inf)
    np.minimum.at(lo, seg_codes[ok], apr[ok])
    np.maximum.at(hi, seg_codes[ok], apr[ok])
    return np.where(np.isfinite(lo), np.stack([lo, hi]), np.nan).T


def _scored_twin(frame: pd.DataFrame, cfg: Config, source: str, apr: np.ndarray | None) -> Twin:
    score = _numeric_column(frame, "score", cfg, source)
    loans = frame[cfg["loan_id"]]
    # The origination score: a loan's first row (its MOB 0 in a sorted panel) speaks for all its rows.
    first = pd.Series(score).groupby(loans.to_numpy(), sort=False).transform("first").to_numpy()
    seg_codes, segments = pd.factorize(frame[cfg["segment"]], sort=True)
    if (seg_codes < 0).any():
        run(frame, cfg)  # the engine's validation names the empty segment cells
    n_seg, n_bands = len(segments), cfg.economics.score_bands
    is_first = ~loans.duplicated().to_numpy()
    edges = np.empty((n_seg, n_bands + 1))
    band = np.empty(len(frame), dtype=np.int64)
    for s in range(n_seg):
        rows = seg_codes == s
        edges[s] = np.quantile(first[rows & is_first], np.linspace(0.0, 1.0, n_bands + 1))
        band[rows] = np.clip(np.searchsorted(edges[s, 1:-1], first[rows], side="right"), 0, n_bands - 1)
    edges[:, -1] = np.nextafter(edges[:, -1], np.inf)  # the best score itself is inside the top band
    labels = np.array([f"{seg}{BAND_SEPARATOR}{b:03d}" for seg in segments for b in range(n_bands)], dtype=object)
    banded = frame.copy()
    banded[cfg["segment"]] = pd.array(labels[seg_codes * n_bands + band], dtype="string")
    result = run(banded, _loan_chain(cfg))

    where = {label: i for i, label in enumerate(labels)}
    have = np.zeros(len(labels), dtype=bool)
    pos = np.zeros(len(labels), dtype=np.int64)
    for i, label in enumerate(result.segments):
        have[where[label]], pos[where[label]] = True, i
    have, pos = have.reshape(n_seg, n_bands), pos.reshape(n_seg, n_bands)
    # A band with no loans (tied quantiles) borrows its nearest neighbour's chain; its weight is 0.
    for s in range(n_seg):
        present = np.flatnonzero(have[s])
        pos[s] = pos[s, present[np.abs(np.arange(n_bands)[:, None] - present[None, :]).argmin(axis=1)]]
    ead0 = np.where(have[..., None], result.stats.ead[:, :, 0, :].sum(axis=-1)[pos], 0.0)  # (S, B, C)
    # A segment booked at zero balance (its balance first reported at MOB 1) weighs its bands by loans instead: by
    # balance its weights were 0 / 0, and NaN reached every price (band_caveats says so beside its figures).
    loans0 = np.where(have, result.stats.n_loans.max(axis=2).sum(axis=1)[pos], 0.0)  # (S, B)
    weight = np.where((ead0.sum(axis=(1, 2)) > 0)[:, None], ead0.sum(axis=-1), loans0)  # one measure a segment
    weight = weight / np.maximum(weight.sum(axis=1, keepdims=True), 1e-300)
    volume = _recent_volume(result, ead0.sum(axis=1))

    current_apr = np.full((n_seg, n_bands), np.nan)
    observed = np.full((n_seg, 2), np.nan)
    if apr is not None:
        by_band = _booked_apr(frame, cfg, apr, seg_codes * n_bands + band, n_seg * n_bands).reshape(n_seg, n_bands)
        known = ~np.isnan(by_band)
        with np.errstate(invalid="ignore", divide="ignore"):
            seg_mean = np.nansum(by_band * weight, axis=1, keepdims=True) / (weight * known).sum(axis=1, keepdims=True)
        current_apr = np.where(known, by_band, seg_mean)
        observed = _apr_range(apr, seg_codes, n_seg)

    group = np.array([where[s] // n_bands for s in result.segments])
    amort = _amortisation(result.stats, cfg, group, n_seg)
    return _assemble(cfg, tuple(str(s) for s in segments), True, edges, weight, result.transition_matrix[pos],
                     amort, current_apr, observed, volume, result)


def _linked_twin(result: DelResult, cfg: Config, apr: np.ndarray | None, frame: pd.DataFrame | None) -> Twin:
    e = cfg.economics
    n_bands = e.score_bands
    base = result.transition_matrix  # (S, M, K, K)
    n_seg = base.shape[0]
    pd_seg = _first_passage(base[:, None], cfg, PD_HORIZON)[:, 0]
    target = linked_band_pd(pd_seg, e.score_sd * normal_band_means(n_bands), e.score_pdo)  # (S, B)
    matrix = np.broadcast_to(base[:, None], (n_seg, n_bands, *base.shape[1:]))
    # A chain that never reaches default within the horizon has no PD to spread over bands: its bands keep it.
    matrix = np.where((pd_seg > 0)[:, None, None, None, None], _match_pd(matrix, target, cfg), matrix)

    z_edges = np.clip(normal_band_edges(n_bands), -4.0, 4.0)
    edges = np.broadcast_to(e.score_mean + e.score_sd * z_edges, (n_seg, n_bands + 1)).copy()
    weight = np.full((n_seg, n_bands), 1.0 / n_bands)
    volume = _recent_volume(result, result.stats.ead[:, :, 0, :].sum(axis=-1))
    current_apr = np.full((n_seg, n_bands), np.nan)
    observed = np.full((n_seg, 2), np.nan)
    if apr is not None and frame is not None:
        seg_codes = pd.Index(result.segments).get_indexer(frame[cfg["segment"]].astype(str))
        booked = _booked_apr(frame, cfg, apr, seg_codes, n_seg)
        current_apr = np.broadcast_to(booked[:, None], (n_seg, n_bands)).copy()
        observed = _apr_range(apr, seg_codes, n_seg)
    amort = _amortisation(result.stats, cfg, np.arange(n_seg), n_seg)
    return _assemble(cfg, result.segments, False, edges, weight, matrix, amort, current_apr, observed, volume,
                     result)


# ------------------------------------------------------------------------------------------- chain pieces


def _masks(cfg: Config) -> dict[str, np.ndarray]:
    order = list(cfg.buckets.order)
    absorbing = np.isin(order, cfg.buckets.absorbing)
    bad30 = np.isin(order, cfg.buckets.del30)
    loss = np.isin(order, [cfg.risk.loss_state])
    if not (loss & absorbing).any():
        raise ConfigError(f"[risk] loss_state = {cfg.risk.loss_state!r} must be one of [buckets] absorbing "
                          f"{list(cfg.buckets.absorbing)}: the decision engine measures losses as its inflow")
    return {"absorbing": absorbing, "live": ~absorbing, "performing": ~absorbing & ~bad30, "loss": loss,
            "del30": bad30, "default": np.isin(order, cfg.risk.default_states)}


def _first_passage(matrix: np.ndarray, cfg: Config, horizon: int) -> np.ndarray:
    """(...) probability of reaching a [risk] default state within ``horizon`` steps from the first bucket at
    MOB 0."""
    default = _masks(cfg)["default"]
    k = matrix.shape[-1]
    trapped = np.where(default[:, None], np.eye(k), matrix)
    x = np.zeros((*matrix.shape[:-3], k))
    x[..., 0] = 1.0
    for m in range(min(horizon, matrix.shape[-3])):
        x = np.einsum("...k,...kj->...j", x, trapped[..., m, :, :])
    return x[..., default].sum(axis=-1)


def _worsen(matrix: np.ndarray, factor: np.ndarray, cfg: Config) -> np.ndarray:
    """Scale every transition to a worse bucket by ``factor`` (per leading index), keeping rows' sums.

    Worse: later in `risk.severity_order` (the ranking the credit-cycle shift uses). The rest of the row absorbs
    the change; the worse share is capped at 99.9% of the row.
    """
    rank = np.empty(matrix.shape[-1], dtype=np.int64)
    rank[severity_order(cfg)] = np.arange(matrix.shape[-1])
    worse = rank[None, :] > rank[:, None]
    w = np.where(worse, matrix, 0.0)
    rest = matrix - w
    w_sum, r_sum = w.sum(axis=-1, keepdims=True), rest.sum(axis=-1, keepdims=True)
    f = np.asarray(factor, dtype=np.float64).reshape(factor.shape + (1,) * (matrix.ndim - np.ndim(factor)))
    new_w = np.minimum(w_sum * f, 0.999 * (w_sum + r_sum))
    scale_w = np.divide(new_w, w_sum, out=np.ones_like(w_sum), where=w_sum > 0)
    scale_r = np.divide(w_sum + r_sum - new_w, r_sum, out=np.ones_like(r_sum), where=r_sum > 0)
    return w * scale_w + rest * scale_r


def _match_pd(matrix: np.ndarray, target: np.ndarray, cfg: Config, iterations: int = 60) -> np.ndarray:
    """Chains (S, B, M, K, K) whose 12-month PD equals ``target`` (S, B): bisection on log(factor), vectorised."""
    lo = np.full(target.shape, -8.0)
    hi = np.full(target.shape, 8.0)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        too_risky = _first_passage(_worsen(matrix, np.exp(mid), cfg), cfg, PD_HORIZON) > target
        hi = np.where(too_risky, mid, hi)
        lo = np.where(too_risky, lo, mid)
    return _worsen(matrix, np.exp(0.5 * (lo + hi)), cfg)


def _amortisation(stats, cfg: Config, group: np.ndarray, n_groups: int) -> np.ndarray:
    """(G, M) balance kept per month by loans that stay live, from the panel's own EAD at m and m+1."""
    live = _masks(cfg)["live"]
    sel = live[:, None] & live[None, :]
    to = np.where(sel, stats.trans_ead_to, 0.0).sum(axis=(-1, -2))  # (S*, M)
    frm = np.where(sel, stats.trans_ead_from, 0.0).sum(axis=(-1, -2))
    to_g = np.zeros((n_groups, to.shape[1]))
    frm_g = np.zeros_like(to_g)
    np.add.at(to_g, group, to)
    np.add.at(frm_g, group, frm)
    ratio = np.divide(to_g, frm_g, out=np.full_like(to_g, np.nan), where=frm_g > 0)
    # Steps without data (the tail) keep the last observed rate.
    filled = pd.DataFrame(ratio.T).ffill().fillna(1.0).to_numpy().T
    return np.clip(filled, 0.0, 1.0)


def _capital(pd12: np.ndarray, lgd: np.ndarray, segments, cfg: Config) -> np.ndarray:
    """(S, B) capital per unit EAD: [economics] capital_ratio, or IRB retail on the floored 12-month PD."""
    if cfg.economics.capital == "ratio":
        return np.full_like(pd12, cfg.economics.capital_ratio)
    floored = np.maximum(pd12, cfg.risk.pd_floor)
    return np.stack([np.asarray(irb_retail_capital(floored[s], lgd[s], kind=cfg.risk.segment_irb_class(name))[0],
                                dtype=np.float64) for s, name in enumerate(segments)])


def _assemble(cfg: Config, segments, scored: bool, edges, weight, matrix, amort, current_apr, observed_apr, volume,
              result) -> Twin:
    masks = _masks(cfg)
    n_seg, n_bands, m_steps, k, _ = matrix.shape
    x = np.zeros((n_seg, n_bands, m_steps + 1, k))
    x[..., 0, 0] = 1.0
    for m in range(m_steps):
        x[..., m + 1, :] = np.einsum("sbk,sbkj->sbj", x[..., m, :], matrix[..., m, :, :])
    balance = np.concatenate([np.ones((n_seg, 1)), np.cumprod(amort, axis=1)], axis=1)[:, None, :]  # (S, 1, M+1)
    writeoff = np.concatenate([np.zeros((n_seg, n_bands, 1)), _loss_flow(matrix, cfg) * balance[..., :-1]], axis=-1)
    pd12 = _first_passage(matrix, cfg, PD_HORIZON)
    terms = segment_terms(cfg, segments, apr_in_data=~np.isnan(current_apr).all(axis=1))
    current_apr = np.where(np.isnan(current_apr), terms.apr[:, None], current_apr)
    del30 = x[..., masks["del30"]].sum(axis=-1)
    current_take_up = (weight * take_up(current_apr, terms.demand[:, :1], terms.demand[:, 1:2],
                                        terms.demand[:, 2:])).sum(axis=1)
    applications = (np.full(n_seg, cfg.demand.applications) if cfg.demand.applications > 0
                    else volume / np.maximum(current_take_up, 1e-12))
    return Twin(
        config=cfg, segments=tuple(segments), states=tuple(cfg.buckets.order), scored=scored,
        band_edges=edges, band_weight=weight, transition_matrix=matrix, amortisation=amort, distribution=x,
        ead=x[..., masks["live"]].sum(axis=-1) * balance,
        performing=x[..., masks["performing"]].sum(axis=-1) * balance,
        writeoff=writeoff, pd12=pd12, pd_life=_first_passage(matrix, cfg, m_steps),
        del30_mob6=del30[..., min(6, m_steps)], del30_mob12=del30[..., min(12, m_steps)],
        capital=_capital(pd12, terms.lgd, segments, cfg), terms=terms, current_apr=current_apr,
        observed_apr=observed_apr, volume=volume, applications=applications, result=result,
    )


def _loss_flow(matrix: np.ndarray, cfg: Config) -> np.ndarray:
    """(S, B, M) share of one unit booked in the first bucket that is lost in step m -> m+1: flowing into [risk]
    loss_state, or with [risk] el_basis = "default" entering a default state for the first time (the risk module's
    two definitions of the loss)."""
    masks = _masks(cfg)
    target = masks["default"] if cfg.risk.el_basis == "default" else masks["loss"]
    trapped = np.where(target[:, None], np.eye(matrix.shape[-1]), matrix)
    x = np.zeros(matrix.shape[:2] + (matrix.shape[-1],))
    x[..., 0] = 1.0
    flows = np.empty(matrix.shape[:3])
    for m in range(matrix.shape[2]):
        flows[..., m] = (x * ~target * trapped[..., m, :, :][..., target].sum(axis=-1)).sum(axis=-1)
        x = np.einsum("sbk,sbkj->sbj", x, trapped[..., m, :, :])
    return flows
