"""Honest diagnostics from PanelStats: tiny cohorts and their Portfolio weight, loans leaving while live, cohorts
cut at max_mob, thin transition rows, calendar weights across eras, and from the chain a short history (ILLUSTRATIVE)
— known answers on a hand-made panel, and silence on a complete book."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from _panels import CHAIN, cfg, frame, loan, simulate

from pyxl_del.engine.config import Config
from pyxl_del.engine.data import month_label
from pyxl_del.engine.diagnostics import (
    calendar_gap,
    censored_loans,
    cut_cohorts,
    diagnostics,
    illustrative_forecast,
    short_history,
    thin_rows,
    tiny_cohorts,
)
from pyxl_del.engine.pipeline import run


def book():
    """Segment A, cohort 2024-01: 40 loans at MOB 0..3, except X (leaves live after MOB 1) and Y (prepays at MOB 2,
    its last row: not censored). Segment B, same cohort: 10 loans, MOB 0..3."""
    records = []
    for i in range(38):
        records += loan(f"A{i}", "2024-01", "A", [("CURRENT", 100.0)] * 4)
    records += loan("X", "2024-01", "A", [("CURRENT", 100.0)] * 2)
    records += loan("Y", "2024-01", "A", [("CURRENT", 100.0), ("CURRENT", 100.0), ("PREPAY", 0.0)])
    for i in range(10):
        records += loan(f"B{i}", "2024-01", "B", [("CURRENT", 100.0)] * 4)
    return frame(records)


CONFIG = cfg(forecast={"max_mob": 2}, transitions={"min_count": 5})


def test_known_answers_on_a_hand_made_book():
    stats = run(book(), CONFIG).stats
    tiny = tiny_cohorts(stats, CONFIG)
    # B is 10 of the cohort's 50 loans but half the Portfolio mean's weight (2 segments, equal weights).
    assert tiny.startswith("1 of 2 cohort-segments start with fewer than 30 loans at MOB 0 (e.g. B 2024-01 (10 loans))")
    assert "carry 50% of a cohort's weight on average for 20% of its loans" in tiny
    # Counted per loan-month at risk (40 + 40 in A, 10 + 10 in B before MOB 2): a loan skipping months counts once
    # per gap, which "loans" (out of the loans at MOB 0) had reported as more than 100% of the book.
    assert censored_loans(stats, CONFIG).startswith(
        "1 live loan-month (1.0% of the 100 before their cohort's last month) has no row the next month: a loan that "
        "leaves the data while live, or skips a month (e.g. A 2024-01 (1 loan-month))")
    assert cut_cohorts(stats).startswith("2 cohort-segments have data beyond [forecast] max_mob = 2 (up to MOB 3)")
    # From CURRENT: A 40 then 39 loans (X gone), B 10 and 10: B's two rows are thin, A's are not.
    assert thin_rows(stats, CONFIG).startswith("2 of 4 estimated transition rows rest on 5..29 loans")


def test_last_mob_and_reporting_month_read_beyond_max_mob():
    """The book's rows run to MOB 3 (2024-04) with max_mob 2: last_mob and the reporting month see them; without the
    rows beyond max_mob they fall back to the last MOB kept."""
    stats = run(book(), CONFIG).stats
    assert stats.last_mob.tolist() == [[3], [3]]
    assert month_label([stats.reporting_month]) == ["2024-04"]
    kept_only = dataclasses.replace(stats, final_mob=None)
    assert kept_only.last_mob.tolist() == [[2], [2]]
    assert month_label([kept_only.reporting_month]) == ["2024-03"]


def test_they_reach_the_result_warnings():
    result = run(book(), CONFIG)
    found = diagnostics(result.stats, CONFIG)
    assert len(found) == 4 and all(w in result.warnings for w in found)


def test_silent_on_a_large_complete_book():
    panel = simulate(CHAIN, segments=("A", "B"), cohorts=4, loans=200, max_mob=6)
    config = cfg(forecast={"max_mob": 6})
    assert diagnostics(run(panel, config).stats, config) == []


def test_ead_weighted_portfolio_weight():
    config = cfg(forecast={"max_mob": 2}, transitions={"min_count": 5}, portfolio={"aggregation": "ead_weighted"})
    # Equal balances: B's weight is its share of the EAD at MOB 0, 20%.
    assert "carry 20% of a cohort's weight on average for 20% of its loans" in tiny_cohorts(run(book(), config).stats,
                                                                                           config)


def test_calendar_weights_across_eras():
    """Moves reported 2020-02 and 2020-03 (cohort 2020-01), then none until 2024-04 (cohort 2024-03): 48 months
    without a move. A window of the last 2 months with moves, or any half-life, reaches across them."""
    def two_eras(second: str):
        return frame(loan("a", "2020-01", "A", [("CURRENT", 100.0), ("DPD1+", 100.0), ("CURRENT", 100.0)])
                     + loan("b", second, "A", [("CURRENT", 100.0)] * 2))

    def found(panel, **transitions):
        config = cfg(forecast={"max_mob": 2}, transitions=transitions)
        return calendar_gap(run(panel, config).stats, config)

    panel = two_eras("2024-03")
    assert found(panel, window=2).startswith("[transitions] window = 2 reaches across 48 months without a single "
                                             "move (2020-04..2024-03)")
    assert found(panel, half_life=12).startswith("[transitions] half_life = 12 reaches across 48 months")
    result = run(panel, cfg(forecast={"max_mob": 2}, transitions={"window": 3}))
    assert any(w.startswith("[transitions] window = 3 reaches across") for w in result.warnings)
    # Silent: weights off; a window of the newest era only; a gap shorter than a year (2020-04..2020-11).
    assert found(panel) == "" and found(panel, window=1) == ""
    assert found(two_eras("2020-11"), window=2) == ""


def young_book(months: int) -> pd.DataFrame:
    """Segment A: 40 loans of cohort 2024-01 followed ``months`` months (MOB 0..months): 4 fall 30 days behind at
    MOB 1 and cure at MOB 2; segment B: 40 loans, always current."""
    records = []
    for i in range(40):
        late = i < 4
        path = [("CURRENT", 100.0)] + [("DPD30+" if late and m == 1 else "CURRENT", 100.0) for m in range(1, months + 1)]
        records += loan(f"A{i}", "2024-01", "A", path)
        records += loan(f"B{i}", "2024-01", "B", [("CURRENT", 100.0)] * (months + 1))
    return frame(records)


def test_a_short_history_is_illustrative():
    # One month of data (one MOB step) forecast to MOB 12: both segments rest on 1 step; A's 4 loans in DPD30+ have
    # not left it yet, so that state's moves are the default row.
    config = cfg(forecast={"max_mob": 12})
    result = run(young_book(1), config)
    assert result.short_history.tolist() == [True, True]
    text = illustrative_forecast(result.transitions, result.stats, config)
    assert text.startswith("ILLUSTRATIVE forecast: every segment ('A', 'B') rest on 1 MOB step of data (up to MOB 1), "
                           "repeated to MOB 12; no loan has left DPD30+ yet, so its moves are a default (stays in its "
                           "state). Backtested from fewer than 6 MOB steps")
    assert text == result.illustrative and result.warnings[0] == text  # first among the run's warnings
    # The shipped defaults (bayes) name their own default row.
    assert "so its moves are a default (half cures, half stays)" in run(young_book(1), Config().with_overrides(
        forecast={"max_mob": 12})).illustrative
    # Three months: DPD30+ was left (cured), so no default is named; still fewer than 6 steps.
    three = run(young_book(3), config)
    assert three.illustrative.startswith("ILLUSTRATIVE forecast: every segment ('A', 'B') rest on 3 MOB steps of data")
    assert "default" not in three.illustrative


def test_six_steps_or_no_tail_is_not_illustrative():
    # Six months of data: six MOB steps, the threshold (docs/backtesting.md item 20).
    config = cfg(forecast={"max_mob": 12})
    six = run(young_book(6), config)
    assert not six.short_history.any() and six.illustrative == ""
    assert not any(w.startswith("ILLUSTRATIVE") for w in six.warnings)
    # Three steps that are the whole chain (max_mob 3): nothing is extrapolated.
    whole = run(young_book(3), cfg(forecast={"max_mob": 3}))
    assert not whole.short_history.any() and whole.illustrative == ""
    # Five months, one short of the threshold, flags again: the check above can fail.
    assert short_history(run(young_book(5), config).transitions).all()


def test_a_segment_with_no_moves_yet_gets_a_tail_line():
    """A segment whose loans have only MOB 0 so far (a new product, or one score band of the decision twin) has no
    row to name in its tail: the summary says which step it reuses instead of failing."""
    moved = [r for i in range(8) for r in loan(f"a{i}", "2024-01", "A", [("CURRENT", 100.0), ("CURRENT", 90.0)])]
    new = [r for i in range(8) for r in loan(f"b{i}", "2024-02", "B", [("CURRENT", 100.0)])]
    result = run(frame(moved + new), Config().with_overrides(forecast={"max_mob": 4}))
    tails = [w for w in result.warnings if "(tail)" in w]
    assert "segment 'B': MOB steps 1..3 reuse the matrix of step 0 (tail)" in tails, result.warnings


def test_a_state_no_row_is_in_is_said_once_not_counted_in_every_segment():
    """A mortgage book counts whole months past due, so DPD1+ of [buckets] order is never seen: every segment said
    "48 from no data anywhere: half cures, half stays" about rows no loan can take."""
    no_dpd1 = CHAIN.copy()
    no_dpd1[:, 2] += no_dpd1[:, 1]
    no_dpd1[:, 1] = 0.0
    warnings = run(simulate(no_dpd1, segments=("A", "B")), Config()).warnings
    said = [w for w in warnings if "occurs in no row" in w]
    assert said == ["state DPD1+ of [buckets] order occurs in no row of the data: its transition rows are a default, "
                    "which no loan takes (a book that counts whole months past due has no 1-29 days state: leaving "
                    "it out of [buckets] order gives the same forecast)"], warnings
    # Left out, as the message says: the same DEL, and nothing to say.
    order = [s for s in Config().buckets.order if s != "DPD1+"]
    without = run(simulate(no_dpd1, segments=("A", "B")), Config().with_overrides(buckets={"order": order}))
    assert not any("occurs in no row" in w for w in without.warnings)
    with_state = run(simulate(no_dpd1, segments=("A", "B")), Config())
    for del_type in ("DEL30", "DEL60", "DEL90"):
        assert np.allclose(without.rates[del_type].mixed, with_state.rates[del_type].mixed, equal_nan=True)
    segment_lines = [w for w in warnings if w.startswith("segment 'A': of")]
    assert not any("no data anywhere" in w for w in segment_lines), segment_lines
    assert not any("occurs in no row" in w for w in run(simulate(CHAIN), Config()).warnings)


def test_actual_del_above_100_percent_is_named_with_its_cause():
    """Balances multiplied by 1,000 from one reporting month on (a change of units) gave DEL30 cells of millions of
    percent, with exit 0 and no word: DEL divides by the balance at MOB 0."""
    records = []
    for i in range(40):
        states = [("CURRENT", 100.0)] * 2 + [("DPD30+" if i < 4 else "CURRENT", 100.0 * 1000)] * 2
        records += loan(f"A{i}", "2024-01", "A", states)
    result = run(frame(records), CONFIG)
    text = next(w for w in result.warnings if "above 100%" in w)
    # DEL30 at MOB 2 = 4 x 100,000 / (40 x 100) = 10,000%.
    assert text.startswith("1 actual DEL cell is above 100% (the largest: A 2024-01 at MOB 2, 10,000%): DEL divides "
                           "the bad balance by the cohort's balance at MOB 0"), text
    assert "check the column 'PRINCIPLE_OUTSTANDING' ([columns] ead)" in text
    assert not [w for w in run(book(), CONFIG).warnings if "above 100%" in w]
