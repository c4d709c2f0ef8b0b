"""Forecast intervals (engine/intervals.py): known answers on tiny panels and invariants of the quantiles."""

from dataclasses import replace

import numpy as np
import pytest
from _panels import CHAIN, cfg, frame, loan, simulate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pyxl_del
from pyxl_del.engine.calibration import CohortFactors, absorbing_mask, roll_forward_mask
from pyxl_del.engine.config import ConfigError
from pyxl_del.engine.intervals import quantile_column, simulate_intervals

BASE = {"transitions": {"min_count": 0, "fallback": "none"}, "calibration": {"mode": "none"}}
# Every known answer holds whether the loans move one by one or, in a big cohort, by their moments.
PATHS = pytest.mark.parametrize("moment_loans", [10**12, 1], ids=["loan by loan", "moments"])


def config(max_mob=2, **forecast):
    return cfg(**BASE, forecast={"max_mob": max_mob} | forecast)


def test_one_loan_on_a_deterministic_chain_has_no_interval():
    # Cohort 2024-01 shows the chain: CURRENT -> DPD1+ -> DPD30+ with certainty; 2024-02 has one loan at MOB 0.
    df = frame(loan("L1", "2024-01", "A", [("CURRENT", 100), ("DPD1+", 100), ("DPD30+", 100)])
               + loan("L2", "2024-02", "A", [("CURRENT", 50), ("DPD1+", 50)]))
    r = pyxl_del.run(df, config())
    q = r.intervals.segments["DEL30"][:, 0, 1]  # (Q, M+1) of cohort 2024-02
    assert r.intervals.levels == (0.1, 0.5, 0.9)
    np.testing.assert_array_equal(q, np.broadcast_to(r.rates["DEL30"].mixed[0, 1], q.shape))
    assert q[:, 2].tolist() == [1.0, 1.0, 1.0]  # the forecast cell: in DPD30+ for sure


def binomial_panel(n=400):
    """Cohort 2024-01: n loans at MOB 0, half written off at MOB 1; cohort 2024-02: n loans at MOB 0 only."""
    rows = []
    for i in range(n):
        rows += loan(f"A{i}", "2024-01", "A", [("CURRENT", 10), ("WRITEOFF" if i % 2 else "CURRENT", 10)])
        rows += loan(f"B{i}", "2024-02", "A", [("CURRENT", 10)])
    return frame(rows)


@PATHS
def test_median_of_a_symmetric_case_is_the_mean(moment_loans):
    # The row CURRENT -> (CURRENT, WRITEOFF) is (0.5, 0.5), fixed (infinite concentration): next month's written-off
    # loans of cohort 2024-02 are Binomial(400, 0.5), so DEL30 = X / 400 has median 0.5 and P10 / P90 at
    # 0.5 -+ 1.2816 * sqrt(400 * 0.25) / 400 = 0.5 -+ 0.0320.
    r = pyxl_del.run(binomial_panel(), config(max_mob=1, interval_draws=4000))
    conc = np.full_like(r.transitions.concentration, np.inf)
    iv = simulate_intervals(r.stats, r.transition_matrix, conc, r.config, moment_loans=moment_loans)
    p10, p50, p90 = iv.segments["DEL30"][:, 0, 1, 1]
    assert r.rates["DEL30"].mixed[0, 1, 1] == pytest.approx(0.5)
    assert p50 == pytest.approx(0.5, abs=1 / 400)
    assert p10 == pytest.approx(0.5 - 0.0320, abs=2 / 400)
    assert p90 == pytest.approx(0.5 + 0.0320, abs=2 / 400)


@PATHS
def test_unequal_balances_move_as_fewer_loans(moment_loans):
    # Cohort 2024-02 as above, but half its loans owe 30 and half 10: the written-off share of its balance has sd
    # sqrt(sum b^2 * 0.25) / sum b = sqrt(200,000 * 0.25) / 8,000 = 0.02795 (Kish: 8,000^2 / 200,000 = 320 loans of
    # equal balance), so P10 / P90 are 0.5 -+ 1.2816 * 0.02795 = 0.5 -+ 0.0358, not 0.5 -+ 0.0320.
    rows = []
    for i in range(400):
        rows += loan(f"A{i}", "2024-01", "A", [("CURRENT", 10), ("WRITEOFF" if i % 2 else "CURRENT", 10)])
        rows += loan(f"B{i}", "2024-02", "A", [("CURRENT", 30 if i % 2 else 10)])
    r = pyxl_del.run(frame(rows), config(max_mob=1, interval_draws=4000))
    conc = np.full_like(r.transitions.concentration, np.inf)
    iv = simulate_intervals(r.stats, r.transition_matrix, conc, r.config, moment_loans=moment_loans)
    p10, p50, p90 = iv.segments["DEL30"][:, 0, 1, 1]
    assert p50 == pytest.approx(0.5, abs=2 / 400)
    assert p10 == pytest.approx(0.5 - 0.0358, abs=2 / 400)
    assert p90 == pytest.approx(0.5 + 0.0358, abs=2 / 400)
    # Without the sum of squares (a statistic that does not know the balances) the loans count as equal.
    unknown = simulate_intervals(replace(r.stats, ead_sq=None), r.transition_matrix, conc, r.config,
                                 moment_loans=moment_loans)
    assert unknown.segments["DEL30"][2, 0, 1, 1] - unknown.segments["DEL30"][0, 0, 1, 1] == pytest.approx(
        2 * 0.0320, abs=3 / 400)


@PATHS
def test_parameter_uncertainty_widens_the_interval(moment_loans):
    # Concentration 400 (the loans behind the row) adds the row's posterior: Beta(200, 200) has sd 0.025, so DEL30
    # has sd sqrt(0.025^2 + 0.025^2) = 0.0354 instead of 0.025; the 80% interval widens by a factor of about 1.41.
    r = pyxl_del.run(binomial_panel(), config(max_mob=1, interval_draws=4000))
    fixed = simulate_intervals(r.stats, r.transition_matrix, np.full_like(r.transitions.concentration, np.inf),
                               r.config, moment_loans=moment_loans)
    posterior = simulate_intervals(r.stats, r.transition_matrix, r.transitions.concentration, r.config,
                                   moment_loans=moment_loans)
    assert r.transitions.concentration[0, 0, 0] == 400
    width = [x.segments["DEL30"][2, 0, 1, 1] - x.segments["DEL30"][0, 0, 1, 1] for x in (fixed, posterior)]
    assert width[1] / width[0] == pytest.approx(np.sqrt(2), rel=0.12)


def test_many_loans_and_certain_rows_shrink_the_interval_to_the_expected_path():
    r = pyxl_del.run(simulate(CHAIN, cohorts=6, loans=300, max_mob=6), config(max_mob=6))
    stats = r.stats
    big = replace(stats, n_loans=stats.n_loans * 10**6, cohort_trans_count=stats.cohort_trans_count * 10**6,
                  ead_sq=stats.ead_sq / 10**6)  # a million times the loans, each a millionth of the balance
    conc = np.full_like(r.transitions.concentration, np.inf)
    narrow = simulate_intervals(big, r.transition_matrix, conc, r.config)
    wide = simulate_intervals(stats, r.transition_matrix, r.transitions.concentration, r.config)
    forecast = ~r.rates["DEL30"].is_actual & r.rates["DEL30"].present[..., None]
    expected = r.rates["DEL30"].mixed[forecast]
    q_narrow, q_wide = narrow.segments["DEL30"][:, forecast], wide.segments["DEL30"][:, forecast]
    np.testing.assert_allclose(q_narrow, np.broadcast_to(expected, q_narrow.shape), atol=2e-4)
    assert (q_wide[2] - q_wide[0]).mean() > 50 * (q_narrow[2] - q_narrow[0]).mean()
    # A broken simulation (interval around something else) fails here: the expected path is inside the interval.
    assert ((q_wide[0] <= expected + 1e-12) & (expected <= q_wide[2] + 1e-12)).mean() > 0.95


def test_big_cohorts_moved_by_moments_match_the_loans_moved_one_by_one():
    # 1,500 loans a cohort, a year ahead, posterior rows and cohort factors: the quantiles of the paths moved by
    # their moments are those of the loans moved one by one, within the draws' own noise (a quantile of 2,000 draws
    # wanders about 3% of the interval's width), at every horizon.
    shipped = pyxl_del.Config().with_overrides(forecast={"max_mob": 12, "interval_draws": 2000})
    r = pyxl_del.run(simulate(CHAIN, cohorts=12, loans=1500, max_mob=12, seed=3), shipped)
    args = (r.stats, r.transition_matrix, r.transitions.concentration, r.config, r.factors.cohort)
    assert r.factors.cohort is not None
    by_loan, by_moments = (simulate_intervals(*args, moment_loans=n) for n in (10**12, 1000))
    for d in ("DEL30", "DEL90"):
        exact, approx = by_loan.segments[d], by_moments.segments[d]
        forecast = np.isfinite(exact[0]) & (exact[2] > exact[0])
        width = (exact[2] - exact[0])[forecast]
        gap = np.abs(approx - exact)[:, forecast]
        # A few loans' DEL90 is discrete where the normal is not: one loan's worth (1 / 1,500) more is allowed.
        assert forecast.sum() > 60 and (gap <= 0.2 * width + 1 / 1500).all() and np.median(gap / width) < 0.05, d
        # A spread that did not carry last month's covariance forward would narrow with the horizon.
        far = forecast & (np.arange(exact.shape[-1]) >= 8)
        width = (approx[2] - approx[0])[far] / (exact[2] - exact[0])[far]
        assert 0.9 < np.median(width) < 1.1, d


def test_actual_cells_equal_the_actual_and_del_long_carries_the_quantiles():
    r = pyxl_del.run(simulate(CHAIN, cohorts=4, loans=50, max_mob=4), config(max_mob=4))
    long = r.del_long
    actual = long[long.flag == "ACTUAL"]
    for column in ("p10", "p50", "p90"):
        np.testing.assert_array_equal(actual[column].to_numpy(), actual["actual"].to_numpy())
    forecast = long[long.flag == "FORECAST"]
    assert (forecast["p90"] > forecast["p10"]).any()
    wide = r.quantile_wide("A", "DEL30", 0.9)
    assert wide.shape == r.wide("A", "DEL30").shape
    with pytest.raises(KeyError, match="0.25"):
        r.quantile_wide("A", "DEL30", 0.25)


def test_intervals_off_leaves_the_expected_path_alone():
    df = simulate(CHAIN, cohorts=4, loans=50, max_mob=4)
    on, off = pyxl_del.run(df, config(max_mob=4)), pyxl_del.run(df, config(max_mob=4, intervals=False))
    assert off.intervals is None and "p50" not in off.del_long.columns
    np.testing.assert_array_equal(on.ead_path, off.ead_path)
    with pytest.raises(KeyError, match="intervals = false"):
        off.quantile_wide("A", "DEL30", 0.5)


def test_same_seed_same_intervals_other_seed_other_draws():
    df = simulate(CHAIN, cohorts=4, loans=50, max_mob=4)
    a, b = pyxl_del.run(df, config(max_mob=4)), pyxl_del.run(df, config(max_mob=4))
    c = pyxl_del.run(df, config(max_mob=4, seed=7))
    np.testing.assert_array_equal(a.intervals.segments["DEL30"], b.intervals.segments["DEL30"])
    assert not np.array_equal(np.nan_to_num(a.intervals.segments["DEL30"]),
                              np.nan_to_num(c.intervals.segments["DEL30"]))


def test_cohort_factors_scale_the_drawn_rows():
    r = pyxl_del.run(simulate(CHAIN, cohorts=4, loans=50, max_mob=4), config(max_mob=4))
    n_seg, n_coh = r.stats.ead.shape[:2]
    conc = np.full_like(r.transitions.concentration, np.inf)  # fixed rows: the draws then use the same numbers
    mask, absorbing = roll_forward_mask(r.config), absorbing_mask(r.config)

    def factors(value):
        f = np.full((n_seg, n_coh), value)
        return CohortFactors(factor=f, own=f, credibility=np.ones_like(f), vintage_factor=np.ones_like(f),
                             vintage_credibility=np.zeros_like(f), expected_moves=np.ones_like(f),
                             n_loans=np.ones_like(f), kappa=np.zeros(n_seg), roll_forward=mask, absorbing=absorbing)

    shared = simulate_intervals(r.stats, r.transition_matrix, conc, r.config)
    ones = simulate_intervals(r.stats, r.transition_matrix, conc, r.config, factors(1.0))
    np.testing.assert_array_equal(shared.segments["DEL30"], ones.segments["DEL30"])
    worse = simulate_intervals(r.stats, r.transition_matrix, conc, r.config, factors(1.5))
    forecast = ~r.rates["DEL30"].is_actual & (r.stats.ead[:, :, :1].sum(axis=-1) > 0)
    assert (worse.segments["DEL30"][1][forecast] >= shared.segments["DEL30"][1][forecast]).all()
    assert (worse.segments["DEL30"][1][forecast] > shared.segments["DEL30"][1][forecast]).any()


@PATHS
def test_the_cohort_factors_spread_widens_the_interval(moment_loans):
    # Rows fixed, every cohort's factor 1.2: a spread of 0 draws nothing (the same quantiles as without one, so the
    # factor draws use a stream of their own); a spread of 0.3 on the log scale widens P10..P90 of the forecast
    # cells, around the same median within the draws' noise.
    r = pyxl_del.run(simulate(CHAIN, cohorts=4, loans=200, max_mob=6), config(max_mob=6))
    n_seg, n_coh = r.stats.ead.shape[:2]
    conc = np.full_like(r.transitions.concentration, np.inf)
    f = np.full((n_seg, n_coh), 1.2)
    factors = CohortFactors(factor=f, own=f, credibility=np.ones_like(f), vintage_factor=np.ones_like(f),
                            vintage_credibility=np.zeros_like(f), expected_moves=np.ones_like(f),
                            n_loans=np.ones_like(f), kappa=np.zeros(n_seg), roll_forward=roll_forward_mask(r.config),
                            absorbing=absorbing_mask(r.config))

    def quantiles(spread):
        cohort = factors if spread is None else replace(factors, spread=np.full((n_seg, n_coh), spread))
        return simulate_intervals(r.stats, r.transition_matrix, conc, r.config, cohort,
                                  moment_loans=moment_loans).segments["DEL30"]

    plain, zero, wide = quantiles(None), quantiles(0.0), quantiles(0.3)
    np.testing.assert_array_equal(zero, plain)
    forecast = ~r.rates["DEL30"].is_actual & (r.stats.ead[:, :, :1].sum(axis=-1) > 0)
    forecast[:, :, :2] = False  # a step or two ahead, a few loans' moves: too few to show the factor
    width_plain, width_wide = (plain[2] - plain[0])[forecast], (wide[2] - wide[0])[forecast]
    assert width_wide.mean() > 1.2 * width_plain.mean()
    assert abs(wide[1][forecast] - plain[1][forecast]).mean() < 0.25 * width_plain.mean()


@pytest.mark.parametrize("levels, message", [([0.9, 0.1], "ascending"), ([0.0, 0.9], "greater than 0"),
                                             ([0.1, 1.0], "less than 1")])
def test_bad_interval_levels_name_the_key(levels, message):
    with pytest.raises(ConfigError, match=f"(?s)interval_levels.*{message}"):
        cfg(forecast={"interval_levels": levels})


def test_quantile_column_names():
    assert [quantile_column(q) for q in (0.1, 0.5, 0.9, 0.025)] == ["p10", "p50", "p90", "p2.5"]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), loans=st.integers(1, 40), cohorts=st.integers(2, 5),
       weighting=st.sampled_from(["ead", "count", "balance"]), mode=st.sampled_from(["none", "stepwise"]))
def test_quantiles_are_ordered_and_within_zero_and_one(seed, loans, cohorts, weighting, mode):
    df = simulate(CHAIN, cohorts=cohorts, loans=loans, max_mob=4, seed=seed)
    r = pyxl_del.run(df, cfg(transitions={"weighting": weighting}, calibration={"mode": mode},
                             forecast={"max_mob": 4, "interval_draws": 30, "seed": seed}))
    for quantiles in (*r.intervals.segments.values(), *r.intervals.portfolio.values()):
        present = ~np.isnan(quantiles[1])
        assert (np.isnan(quantiles) == ~present).all()
        q = quantiles[:, present]
        assert (q[0] <= q[1]).all() and (q[1] <= q[2]).all()
        assert (q >= 0).all() and (q <= 1 + 1e-12).all()
