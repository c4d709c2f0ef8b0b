"""Checks that keep a zero from being silent: an expected loss of 0 where the data lose money, a PD of 0 beside
defaulted EAD, scenarios that cannot differ. Each finding is a sentence naming the cause and the config setting
that changes it; the CLI prints them, the sheets show them in red beside the figures (docs/risk.md §9).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pyxl_del.engine.config import Config
from pyxl_del.engine.data import PORTFOLIO
from pyxl_del.engine.errors import agree, counted, runs_text
from pyxl_del.engine.pipeline import DelResult
from pyxl_del.engine.transitions import ROW_ORIGINS
from pyxl_del.risk.projection import ALL, state_mask

ZERO = 1e-9  # a figure below ZERO x the outstanding EAD counts as zero


@dataclass(frozen=True)
class Finding:
    """A warning on figures: ``figure`` "el" (expected loss and the loss simulation) or "pd" (PD and capital),
    ``segment`` (a segment or "Portfolio") and the sentence."""

    figure: str
    segment: str
    message: str


def loss_target(config: Config) -> tuple[np.ndarray, str]:
    """(mask of the states whose inflow the expected loss counts, their description) under [risk] el_basis."""
    risk = config.risk
    if risk.el_basis == "default":
        return state_mask(config, risk.default_states), f"a default state ({', '.join(risk.default_states)})"
    return state_mask(config, [risk.loss_state]), risk.loss_state


def _moves_into(result: DelResult, s: int, target: np.ndarray) -> tuple[int, np.ndarray]:
    """(loans of segment s moving into ``target`` from outside it, the MOB steps where they do)."""
    counts = result.stats.trans_count[s][:, ~target][..., target].sum(axis=(-1, -2))  # (M,)
    return int(counts.sum()), np.flatnonzero(counts)


def _has_any(result: DelResult, s: int, target: np.ndarray) -> bool:
    """Whether segment s has any EAD in ``target`` in its rows (within max_mob or at its last rows)."""
    stats = result.stats
    final = stats.final_ead[s][..., target].sum() if stats.final_ead is not None else 0.0
    return bool(stats.ead[s][..., target].sum() > 0 or final > 0)


def _reaches(matrix: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(K,) whether each state of a (K, K) chain can reach ``target`` in any number of steps."""
    reaches = target.copy()
    for _ in range(len(target)):
        reaches = reaches | ((matrix > 0) & reaches[None, :]).any(axis=1)
    return reaches


def _tail_rows(result: DelResult, s: int, target: np.ndarray, config: Config) -> tuple[int, str]:
    """(the segment's last estimated MOB step, "DPD30+ row: 8 loans, own data below min_count; ...") for the live
    states outside ``target`` whose tail row has no path into it."""
    step = int(result.transitions.last_estimated_step[s])
    matrix = result.transition_matrix[s, -1]
    stats = result.stats
    used = (stats.trans_count[s].sum(axis=(0, 2)) + stats.trans_count[s].sum(axis=(0, 1)) > 0) | \
        (stats.ead[s].sum(axis=(0, 1)) > 0)  # states the segment's data have at all
    stuck = ~_reaches(matrix, target) & ~state_mask(config, config.buckets.absorbing) & used
    states = result.stats.states
    rows = [f"{states[i]} row: {counted(int(result.transitions.n_obs[s, step, i]), 'loan')}, "
            f"{ROW_ORIGINS[int(result.transitions.origin[s, step, i])]}" for i in np.flatnonzero(stuck)]
    return step, "; ".join(rows)


def _fixes(config: Config, basis_fix: bool) -> str:
    t, m = config.transitions, config.forecast.max_mob
    text = (f"raise [forecast] max_mob (now {m}) so the tail is estimated where loans are lost, or lower "
            f"[transitions] min_count (now {t.min_count}) so thin rows keep their own moves")
    if basis_fix:
        text += (f", or set [risk] el_basis = \"default\" (LGD on the EAD in {', '.join(config.risk.default_states)} "
                 f"instead of the EAD written off)")
    return text


def zero_loss_cause(result: DelResult, rows, config: Config) -> str:
    """Why the fitted chain of ``result``'s segments ``rows`` (indices) loses nothing, and the settings that change
    it: a clause to follow "expected loss is 0: "."""
    target, what = loss_target(config)
    basis_fix = config.risk.el_basis == "writeoff"
    moves = [_moves_into(result, s, target) for s in rows]
    moved = sum(n for n, _ in moves)
    if not moved and not any(_has_any(result, s, target) for s in rows):
        fix = (f"set [risk] el_basis = \"default\" for LGD on the EAD in default "
               f"({', '.join(config.risk.default_states)}), or map the data's loss rows to {config.risk.loss_state} "
               f"([columns] state)") if basis_fix else \
            "check [risk] default_states and how the data's states map to [buckets] order"
        return (f"no balance enters {what} in the data the chain is fitted on (MOB 0..{result.stats.max_mob}, "
                f"[forecast] max_mob), so the chain cannot lose (not a measured zero); raise [forecast] max_mob if "
                f"the data go further, or {fix}")
    steps = np.concatenate([st for _, st in moves])
    step, stuck = _tail_rows(result, rows[0], target, config)
    seen = (f"{moved} loans move into {what} in the data (MOB steps {steps.min()}..{steps.max()})" if moved
            else f"the data have EAD in {what} (with no observed move into it up to [forecast] max_mob)")
    return (f"{seen}, but from the reporting date the book moves by the chain's later steps and its tail (MOB step "
            f"{step} onwards), which have no path into {what}{' (' + stuck + ')' if stuck else ''}; to change it: "
            f"{_fixes(config, basis_fix)}")


def loss_findings(result: DelResult, el: pd.DataFrame, capital: pd.DataFrame, config: Config) -> list[Finding]:
    """Zero expected loss on outstanding EAD, and a zero 12-month PD beside defaulted EAD, per segment, with their
    causes; a Portfolio finding when the Portfolio figure itself is zero."""
    default = state_mask(config, config.risk.default_states)
    totals = el[el["cohort"] == ALL].set_index("segment")
    cap = capital.set_index("segment")
    findings = []
    for s, segment in enumerate(result.segments):
        row = totals.loc[segment]
        ead = float(row["ead"])
        if ead <= 0:
            continue
        if not row["el_lifetime"] > ZERO * ead:
            lgd_key = "[risk] lgd_by_segment" if segment in config.risk.lgd_by_segment else "[risk] lgd"
            cause = (f"its loss given default is 0 ({lgd_key}), so what the chain writes off costs nothing"
                     if config.risk.segment_lgd(segment) == 0 else zero_loss_cause(result, [s], config))
            findings.append(Finding("el", segment, f"{segment}: expected loss is 0: {cause}."))
        npl = float(cap.loc[segment, "npl_ratio"])
        if not row["pd_12m"] > 0 and (npl > 0 or _moves_into(result, s, default)[0] > 0):
            step, rows = _tail_rows(result, s, default, config)
            beside = f"beside an NPL ratio of {npl:.2%}" if npl > 0 else "although loans of it default in the data"
            findings.append(Finding("pd", segment, (
                f"{segment}: PD 12 months is 0 {beside}: from the performing states the fitted chain reaches no "
                f"default state ({', '.join(config.risk.default_states)}) within 12 months"
                f"{' (tail, MOB step ' + str(step) + ': ' + rows + ')' if rows else ''}. The indicative capital "
                f"uses the PD floor. To change it: {_fixes(config, False)}.")))
    for figure, table in (("el", "[risk] lgd_by_segment"), ("pd", "[risk] irb_class_by_segment")):
        # Segment "": a setting of the config, not a zero of the Portfolio's figures (the KPIs' "not a measured zero").
        findings += [Finding(figure, meant, f"{message}.")
                     for meant, message in config.unknown_segment_names(result.segments, (table,))]
    portfolio = totals.loc[PORTFOLIO]
    for figure, column, label in (("el", "el_lifetime", "expected loss"), ("pd", "pd_12m", "PD 12 months")):
        zero = not portfolio[column] > (ZERO * portfolio["ead"] if figure == "el" else 0)
        if zero and any(f.figure == figure for f in findings) and portfolio["ead"] > 0:
            findings.insert(0, Finding(figure, PORTFOLIO, f"Portfolio: {label} is 0 on outstanding EAD "
                                                          f"{portfolio['ead']:,.0f}; the causes per segment follow."))
    return findings


#: Paths beyond a VaR level below which its ES is an average of too few to read (and the VaR one path's loss).
MIN_TAIL_PATHS = 20


def tail_findings(config: Config, n_paths: int) -> list[Finding]:
    """A VaR level whose tail holds fewer than `MIN_TAIL_PATHS` of the simulated paths: at 99.9999% of 2,000 paths
    the VaR is the worst path and its ES that path again, which the table showed as '100.0%' beside the others."""
    out = []
    for q in config.risk.confidence:
        tail = (1.0 - q) * n_paths
        if tail < MIN_TAIL_PATHS:
            out.append(Finding("var", "", (
                f"Credit VaR and ES at {q * 100:.10g}% rest on the worst {max(tail, 1):.0f} of {n_paths:,} simulated "
                f"paths: their standard errors say how little that is; raise [risk] n_paths to "
                f"{math.ceil(MIN_TAIL_PATHS / (1.0 - q)):,} or more for this level.")))
    return out


def scenarios_differ(el_lifetime: np.ndarray) -> bool:
    """Whether the scenarios' lifetime expected losses differ at all (else there is nothing to rank)."""
    el = np.asarray(el_lifetime, dtype=np.float64)
    return len(el) < 2 or bool(np.ptp(el) > ZERO * max(1.0, float(np.abs(el).max())))


def stress_finding(summary: pd.DataFrame, findings: list[Finding], result: DelResult,
                   key_mobs: tuple[int, ...], beyond: Sequence[int] = ()) -> str | None:
    """Sentences when no scenario changes the lifetime expected loss (nothing to rank) or the DEL rows, or when key
    MOBs (``beyond``) lie past [forecast] max_mob and are left out of the DEL rows, else None."""
    notes = []
    el = summary["el_lifetime"].to_numpy(dtype=np.float64)
    if not scenarios_differ(el):
        cause = next((f.message for f in findings if f.figure == "el" and f.segment not in (PORTFOLIO, "")
                      and "expected loss is 0" in f.message), None)
        notes.append(f"No scenario changes the lifetime expected loss (all {el[0]:,.0f}): the scenarios are not "
                     f"ranked. " + (f"The cause: {cause}" if cause else
                                    "The chain has no move that the credit-cycle shift can change."))
    stats = result.stats
    last = stats.last_mob[stats.n_loans[:, :, 0] > 0]
    # A cohort whose data reach a key MOB shows its actual DEL there in every scenario: a seasoned book (a single
    # quarter of agency loans years on) has nothing left to stress on the DEL rows, which is not a finding of zero.
    if len(summary) > 1 and len(last) and last.min() >= max(key_mobs):
        notes.append(f"No scenario changes the DEL rows: every cohort's data reach MOB {last.min()} or later, so its "
                     f"DEL at MOB {runs_text(key_mobs)} is actual in every scenario. The scenarios move only what "
                     f"is still to come from the reporting date: the write-offs and the expected loss.")
    if beyond:
        notes.append(f"[risk] key_mobs {runs_text(beyond)} {agree(len(beyond), 'is', 'are')} beyond [forecast] max_mob "
                     f"{result.stats.max_mob}: the DEL rows show MOB {runs_text(key_mobs)} only.")
    return " ".join(notes) or None
