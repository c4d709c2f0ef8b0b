"""The paired cohort-block bootstrap of backtest scores (`pyxl_del.backtest.bootstrap`): known answers on cells
made by hand (the score as `tune` ranks by it, the leads, their intervals and verdicts)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pyxl_del.backtest.bootstrap import (
    MIN_BLOCKS,
    against_benchmarks,
    portfolio_mae_draws,
    verdict_note,
)
from pyxl_del.engine.config import DEL_TYPES
from pyxl_del.engine.data import PORTFOLIO


def _cells(errors: dict[str, np.ndarray], cohorts: int, horizon: int = 2) -> pd.DataFrame:
    """One Portfolio cell per (model, DEL type, cohort, month ahead); ``errors[model]`` (cohorts, horizon) is its
    forecast minus an actual of 0.05. A segment's cells beside them must not count."""
    rows = []
    for model, error in errors.items():
        for del_type in DEL_TYPES:
            for c in range(cohorts):
                for h in range(1, horizon + 1):
                    rows += [(model, segment, del_type, f"2024-{c + 1:02d}", h, 0.05 + error[c, h - 1] * scale, 0.05)
                             for segment, scale in ((PORTFOLIO, 1.0), ("A", 7.0))]
    frame = pd.DataFrame(rows, columns=["model", "segment", "del_type", "cohort", "horizon", "forecast", "actual"])
    for column, categories in (("model", list(errors)), ("del_type", list(DEL_TYPES)),
                               ("cohort", sorted(frame["cohort"].unique()))):
        frame[column] = pd.Categorical(frame[column], categories)
    return frame


def test_a_model_worse_by_the_same_amount_on_every_cell_has_that_lead_in_every_draw():
    rng = np.random.default_rng(1)
    base = rng.uniform(0, 0.02, (12, 2))
    draws = portfolio_mae_draws(_cells({"a": base, "b": base + 0.01}, 12), 2, np.random.default_rng(0))
    assert draws.n_cohorts == 12 and draws.n_blocks == 6  # blocks of 2: 12 cohorts give no 5 blocks of 3
    assert draws.lead("b", "a") == pytest.approx((0.01, 0.01, 0.01))
    assert draws.lead("a", "a") == (0.0, 0.0, 0.0)
    assert draws.mae[0] == pytest.approx([base.mean()] * 3)  # every month ahead has 12 cells: their mean


def test_the_score_is_the_mean_over_months_ahead_however_many_cells_each_has():
    error = np.full((10, 2), np.nan)
    error[:, 0], error[0, 1] = 0.01, 0.03  # month 1: 10 cells at 1 point; month 2: one cell at 3 points
    draws = portfolio_mae_draws(_cells({"a": error, "b": error}, 10), 2, np.random.default_rng(0))
    assert draws.mae[0] == pytest.approx([0.02] * 3)  # (0.01 + 0.03) / 2, not 0.13 / 11


def test_a_lead_carried_by_one_cohort_reaches_zero():
    """b is right where a is 2 points off, in one cohort of 15: a draw that leaves that cohort's block out sees no
    lead, about a third of them, so the 90% interval reaches 0."""
    a = np.zeros((15, 2))
    a[4] = 0.02
    draws = portfolio_mae_draws(_cells({"a": a, "b": np.zeros((15, 2))}, 15), 2, np.random.default_rng(0))
    difference, lo, hi = draws.lead("b", "a")
    assert difference == pytest.approx(-0.02 / 15) and lo < difference and hi == 0.0
    # Every cohort 2 points better: clear.
    clear = portfolio_mae_draws(_cells({"a": np.full((15, 2), 0.02), "b": np.zeros((15, 2))}, 15), 2,
                                np.random.default_rng(0))
    assert clear.lead("b", "a")[2] == pytest.approx(-0.02)


def test_too_few_cohorts_give_no_interval():
    draws = portfolio_mae_draws(_cells({"a": np.zeros((4, 2)), "b": np.ones((4, 2)) / 100}, 4), 2,
                                np.random.default_rng(0))
    assert draws.n_blocks == 4 < MIN_BLOCKS and draws.draws is None
    difference, lo, hi = draws.lead("b", "a")
    assert difference == pytest.approx(0.01) and np.isnan(lo) and np.isnan(hi)


def test_the_forecast_is_compared_with_the_better_benchmark_per_del_type():
    """markov is 1 point off everywhere, chain_ladder 3 points, carry_forward 2: markov is better, clearly. Then a
    carry_forward 1.05 points off, but exact in one cohort of 15: the better benchmark by a hair, within noise."""
    markov, chain_ladder, carry = np.full((15, 2), 0.01), np.full((15, 2), 0.03), np.full((15, 2), 0.02)
    draws = portfolio_mae_draws(_cells({"markov": markov, "chain_ladder": chain_ladder, "carry_forward": carry},
                                       15), 2, np.random.default_rng(0))
    table = against_benchmarks(draws, "markov", ("chain_ladder", "carry_forward"))
    assert list(table["del_type"]) == list(DEL_TYPES) and set(table["benchmark"]) == {"carry_forward"}
    assert table["difference"].to_numpy() == pytest.approx([-0.01] * 3)
    assert list(table["verdict"]) == ["better"] * 3
    close = np.full((15, 2), 0.0105)
    close[3] = 0.0
    draws = portfolio_mae_draws(_cells({"markov": markov, "chain_ladder": chain_ladder, "carry_forward": close},
                                       15), 2, np.random.default_rng(0))
    table = against_benchmarks(draws, "markov", ("chain_ladder", "carry_forward"))
    assert list(table["verdict"]) == ["within noise"] * 3, table
    assert "'within noise' when it does not" in verdict_note(table)
    few = portfolio_mae_draws(_cells({"markov": markov[:4], "chain_ladder": chain_ladder[:4],
                                      "carry_forward": carry[:4]}, 4), 2, np.random.default_rng(0))
    table = against_benchmarks(few, "markov", ("chain_ladder", "carry_forward"))
    assert list(table["verdict"]) == ["too few cohorts"] * 3 and table["difference_lo"].isna().all()
    assert "No interval: the scored cells come from 4 blocks of cohorts, fewer than 5" in verdict_note(table)
