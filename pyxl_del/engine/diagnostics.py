"""Honest diagnostics: what the sufficient statistics say about how far the DEL tables can be trusted.

Five findings, each a sentence in DelResult.warnings (so the CLI, the Run info sheet, the UDF messages and the ribbon
show them), computed from PanelStats arrays alone (no second pass over the panel), a sixth from the fitted chain and
a seventh from the DEL tables:

- tiny cohorts: cohort-segments with fewer than `THIN_LOANS` loans at MOB 0, and the weight they carry in the
  Portfolio (the specified mean gives every segment of a cohort the same weight, whatever its size);
- censoring: live loan-months with no row the next month before their cohort's last reporting month (a repurchase,
  a servicing transfer, a file cut, a skipped month): the chain learns from the loans that stay;
- cohorts cut at max_mob: rows exist beyond it, so the DEL tables stop before the data do;
- thin transition rows: rows estimated (at or above [transitions] min_count) from fewer than `THIN_LOANS` loans,
  where one loan moves a probability by 1/n;
- calendar weights across eras: `half_life` or `window` set on a panel whose moves stop for a year or more (quarters
  of different eras joined): at MOBs the newest loans have not reached, the rows rest on the earlier era alone;
- a short history (`illustrative_forecast`): a segment whose chain rests on fewer than `SHORT_HISTORY_STEPS`
  estimated MOB steps and repeats them to max_mob. Its forecast is ILLUSTRATIVE, and the sheets say so where they
  show it;
- actual DEL above 100% (`rates_above_one`, from the DEL tables): balances that grow after MOB 0, which a change of
  units does.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from pyxl_del.engine.config import Config
from pyxl_del.engine.data import PanelStats, month_label
from pyxl_del.engine.errors import agree, counted
from pyxl_del.engine.metrics import DelRates
from pyxl_del.engine.transitions import (
    NEUTRAL,
    NO_DATA,
    ROW_ORIGINS,
    TransitionModel,
    months_with_moves,
)

THIN_LOANS = 30  # the usual floor for a rate quoted as a percentage (one loan = more than 3 points)
EXAMPLES = 3
ERA_GAP = 12  # months without a single move: the loans on either side belong to different eras
# A chain resting on fewer MOB steps than this is ILLUSTRATIVE: backtested from 1-5 months of data the forecasts
# missed by 2.4-3.2 times the true chain's error (agency-shaped books; the excerpt 2.6 times the last value's),
# from 6-8 months by 1.48 times (docs/backtesting.md item 20).
SHORT_HISTORY_STEPS = 6


def diagnostics(stats: PanelStats, config: Config) -> list[str]:
    """The findings that apply, as sentences (none on a large, complete book)."""
    return [w for w in (tiny_cohorts(stats, config), censored_loans(stats, config), cut_cohorts(stats),
                        thin_rows(stats, config), calendar_gap(stats, config)) if w]


def _where(stats: PanelStats, s: np.ndarray, c: np.ndarray, values: np.ndarray, unit: str, *,
           smallest: bool = False) -> str:
    """The first few cells (largest values first, or smallest), named by segment and cohort."""
    order = np.argsort(values if smallest else -values, kind="stable")[:EXAMPLES]
    labels = month_label(stats.cohorts[c[order]])
    return ", ".join(f"{stats.segments[s[o]]} {lab} ({counted(int(values[o]), unit)})"
                     for o, lab in zip(order, labels, strict=True))


def tiny_cohorts(stats: PanelStats, config: Config) -> str:
    loans0 = stats.n_loans[:, :, 0]
    tiny = (loans0 > 0) & (loans0 < THIN_LOANS)
    if not tiny.any():
        return ""
    present = loans0 > 0
    if config.portfolio.aggregation == "ead_weighted":
        ead0 = stats.ead[:, :, 0, :].sum(axis=-1)
        weight = np.where(present, ead0, 0.0)
    else:
        weight = present.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = weight / weight.sum(axis=0, keepdims=True)  # each segment's weight in its cohort's Portfolio row
    loan_share = np.where(present, loans0, 0) / np.maximum(loans0.sum(axis=0, keepdims=True), 1)
    s, c = np.nonzero(tiny)
    mean_weight = float(np.nanmean(np.where(present.any(axis=0), np.where(tiny, share, 0.0).sum(axis=0), np.nan)))
    mean_loans = float(np.nanmean(np.where(present.any(axis=0), np.where(tiny, loan_share, 0.0).sum(axis=0), np.nan)))
    return (f"{len(s)} of {int(present.sum())} cohort-segments start with fewer than {THIN_LOANS} loans at MOB 0 "
            f"(e.g. {_where(stats, s, c, loans0[s, c], 'loan', smallest=True)}): one loan moves "
            f"their DEL by more than {1 / THIN_LOANS:.0%}; in the Portfolio ({config.portfolio.aggregation}) they "
            f"carry {mean_weight:.0%} of a cohort's weight on average for {mean_loans:.0%} of its loans")


def censored_loans(stats: PanelStats, config: Config) -> str:
    """Loans at m in a live state minus those seen again at m + 1: the ones that left (or skipped a month) while
    live. Loans in an absorbing state at m are the ones that entered it from m - 1."""
    absorbing = np.isin(np.asarray(stats.states), config.buckets.absorbing)
    t = stats.cohort_trans_count  # (S, C, M, K, K)
    n_steps = t.shape[2]
    if n_steps == 0:
        return ""
    entered_absorbing = np.zeros(stats.n_loans.shape)
    entered_absorbing[:, :, 1:] = t[..., absorbing].sum(axis=(-1, -2))
    live_seen_next = t[:, :, :, ~absorbing, :].sum(axis=(-1, -2))  # (S, C, M)
    live = stats.n_loans[:, :, :n_steps] - entered_absorbing[:, :, :n_steps]
    left = np.clip(live - live_seen_next, 0, None)
    before_end = np.arange(n_steps) < stats.last_mob[..., None]  # leaving at the cohort's last month is the data's end
    left = np.where(before_end, left, 0)
    total = int(left.sum())
    if total == 0:
        return ""
    by_cell = left.sum(axis=2)
    s, c = np.nonzero(by_cell)
    # Counted in loan-months, not loans: the statistics are per MOB step, and a loan that skips several months
    # counts once for each (as loans, a panel with gaps read "126.5% of the loans at MOB 0").
    at_risk = int(np.where(before_end, live, 0).sum())
    share = total / at_risk
    return (f"{counted(total, 'live loan-month')} ({share:.{1 if share >= 0.01 else 2}%} of the {at_risk:,} before "
            f"their cohort's last month) {agree(total, 'has', 'have')} no row the next month: a loan that leaves the "
            f"data while live, "
            f"or skips a month (e.g. {_where(stats, s, c, by_cell[s, c], 'loan-month')}): the chain learns from the "
            f"loans that stay, so if the leavers differ (repurchases, transfers, a file cut) the DEL is biased")


def rates_above_one(stats: PanelStats, rates: Mapping[str, DelRates], config: Config) -> str:
    """Actual DEL cells above 100%, the largest named: DEL divides the bad balance by the cohort's balance at MOB 0,
    so it passes 100% only when balances grow after MOB 0 (a change of units, capitalised fees): a figure no one
    should read as a rate, with the cause to check."""
    widest = np.fmax.reduce([r.actual for r in rates.values()])  # (S, C, M+1); NaN where forecast
    over = widest > 1.0 + 1e-9
    if not over.any():
        return ""
    s, c, m = np.nonzero(over)
    top = int(np.argmax(widest[s, c, m]))
    n = len(s)
    return (f"{counted(n, 'actual DEL cell')} {agree(n, 'is', 'are')} above 100% (the largest: "
            f"{stats.segments[s[top]]} {month_label(stats.cohorts[c[top:top + 1]])[0]} at MOB {m[top]}, "
            f"{widest[s[top], c[top], m[top]]:,.0%}): DEL divides the bad balance by the cohort's balance at MOB 0, so "
            f"the balances grow after MOB 0 there; a change of units (thousands to units) or capitalised fees and "
            f"interest do that: check the column {config['ead']!r} ([columns] ead)")


def cut_cohorts(stats: PanelStats) -> str:
    if stats.final_mob is None:
        return ""
    cut = stats.final_mob > stats.max_mob
    if not cut.any():
        return ""
    n = int(cut.sum())
    return (f"{counted(n, 'cohort-segment')} {agree(n, 'has', 'have')} data beyond [forecast] max_mob = "
            f"{stats.max_mob} (up to MOB {int(stats.final_mob.max())}): the DEL tables stop at MOB {stats.max_mob}, "
            f"before the data do")


def thin_rows(stats: PanelStats, config: Config) -> str:
    absorbing = np.isin(np.asarray(stats.states), config.buckets.absorbing)
    n = stats.trans_count.sum(axis=-1)[..., ~absorbing]  # (S, M, live from-states)
    thin = (n >= config.transitions.min_count) & (n < THIN_LOANS)
    if not thin.any():
        return ""
    return (f"{int(thin.sum())} of {int((n >= config.transitions.min_count).sum())} estimated transition rows rest on "
            f"{config.transitions.min_count}..{THIN_LOANS - 1} loans ([transitions] min_count = "
            f"{config.transitions.min_count}): one loan moves such a row's probabilities by more than "
            f"{1 / THIN_LOANS:.0%}")


def calendar_gap(stats: PanelStats, config: Config) -> str:
    """The longest stretch without a move inside what the calendar weights reach (the last `window` months with
    moves, or all of them under a half-life alone), when it is at least ERA_GAP months."""
    t = config.transitions
    if t.half_life <= 0 and t.window <= 0:
        return ""
    months = months_with_moves(stats, ~np.isin(np.asarray(stats.states), config.buckets.absorbing))
    if t.window > 0:
        months = months[-t.window:]
    if len(months) < 2:
        return ""
    gaps = np.diff(months) - 1
    i = int(np.argmax(gaps))
    if gaps[i] < ERA_GAP:
        return ""
    setting = " and ".join(f"{key} = {value:g}" for key, value in (("half_life", t.half_life), ("window", t.window))
                           if value > 0)
    first, last = month_label(np.array([months[i] + 1, months[i + 1] - 1]))
    return (f"[transitions] {setting} reaches across {int(gaps[i])} months without a single move ({first}..{last}): "
            f"the panel joins loans of different eras, and the rows at MOBs the newer loans have not yet reached "
            f"rest on the earlier era's moves alone (docs/methodology.md, calendar time)")


def short_history(model: TransitionModel) -> np.ndarray:
    """(S,) the segments whose chain rests on fewer than SHORT_HISTORY_STEPS estimated MOB steps and repeats them
    past its data (a tail): their forecast is extrapolated from the book's first months. A segment without a step of
    its own (a product launched last month) is one whatever the chain it borrows: it had been forecast to MOB 36
    unmarked, said to rest on the book's 29 steps."""
    known = model.steps_of_data
    return (known < SHORT_HISTORY_STEPS) & ((model.last_estimated_step + 1 < model.n_obs.shape[1]) | (known == 0))


def too_few_steps(subject: str, n: int) -> str:
    """"<subject> rest(s) on fewer than SHORT_HISTORY_STEPS MOB steps of data", the verb agreeing with ``n``: the
    one wording every view of a short history uses."""
    return f"{subject} {agree(n, 'rests', 'rest')} on fewer than {SHORT_HISTORY_STEPS} MOB steps of data"


def illustrative_forecast(model: TransitionModel, stats: PanelStats, config: Config) -> str:
    """The sentence that marks a short history's forecast ILLUSTRATIVE, naming the segments, the steps they rest on,
    the delinquent states whose row is a default (no loan has left them yet) and the cause; "" when none."""
    short = short_history(model)
    if not short.any():
        return ""
    known = model.steps_of_data[short]
    names = [stats.segments[s] for s in np.flatnonzero(short)]
    who = (f"segment '{names[0]}' rests" if len(names) == 1 else
           f"{'every segment' if short.all() else f'{len(names)} segments'} ("
           + ", ".join(f"'{n}'" for n in names[:EXAMPLES]) + (", ..." if len(names) > EXAMPLES else "") + ") rest")
    lo, hi = int(known.min()), int(known.max())
    steps = counted(hi, "MOB step") if lo == hi else f"{lo}-{hi} MOB steps"
    absorbing = np.isin(np.asarray(stats.states), config.buckets.absorbing)
    # A state no loan has left but some loan has entered: the forecast moves loans out of it by a default row
    # (the bayes estimator's neutral one, the specified estimator's "stays").
    entered = stats.ead[short].sum(axis=(0, 1, 2)) > 0  # (K,)
    never_left = entered & ~absorbing & (model.n_obs[short].sum(axis=(0, 1)) == 0)
    defaults = ""
    for origin in (NEUTRAL, NO_DATA):
        states = [stats.states[k] for k in np.flatnonzero((model.origin[short] == origin).any(axis=(0, 1)) & never_left)]
        if states:
            rule = ROW_ORIGINS[origin].split(": ", 1)[1]
            defaults += (f"; no loan has left {', '.join(states)} yet, so {agree(len(states), 'its', 'their')} moves "
                         f"are a default ({rule})")
    rests = (f"on {steps} of data (up to MOB {hi}), repeated to MOB {stats.max_mob}" if hi else
             "on no MOB step of data of its own: its chain is the other segments'")
    return (f"ILLUSTRATIVE forecast: {who} {rests}{defaults}. Backtested from fewer than {SHORT_HISTORY_STEPS} MOB "
            f"steps, forecasts missed by 2-3 times the error of the true chain (docs/backtesting.md item 20): an "
            f"illustration until more months are in")
