"""The calendar level ([calibration] period_level, engine/period.py): known answers on exact and simulated books,
the invariants of dividing it out, and "auto" leaving a book without a calendar effect exactly as it was."""

import numpy as np
import pandas as pd
import pytest
from _panels import CHAIN, cfg, simulate
from hypothesis import given, settings
from hypothesis import strategies as st

import pyxl_del
from pyxl_del.datasets.sample import Crisis, simulate_vintage_book
from pyxl_del.engine.config import ConfigError
from pyxl_del.engine.data import aggregate_panel, validate_panel
from pyxl_del.engine.period import (
    LEVEL_PRIOR_MOVES,
    TEST_PRIOR_MOVES,
    PeriodLevels,
    _counts,
    _fit,
    carry_period_level,
    fit_period_levels,
    remove_period_levels,
)


def _levels(level: np.ndarray) -> PeriodLevels:
    return PeriodLevels(months=np.arange(len(level)), level=level, expected_moves=np.ones(len(level)),
                        f_statistic=np.nan, p_value=1.0, applied=True, carried=float(level[-1]))


def _small_of(cohorts: int, **calibration):
    return pyxl_del.run(simulate(CHAIN, cohorts=cohorts, loans=300, max_mob=6, seed=4),
                        cfg(forecast={"max_mob": 6}, calibration=calibration))


def _small(**calibration):
    return _small_of(6, **calibration)


# At module level: hypothesis does not take function-scoped fixtures.
SMALL = _small()


@pytest.fixture
def small():
    return SMALL


def _n_months(stats) -> int:
    return len(stats.cohorts) + stats.cohort_trans_count.shape[2]


def test_exact_counts_give_back_the_months_levels():
    # R = N p k q exactly (a million loans a cell, so the prior of TEST_PRIOR_MOVES is negligible): the fit reproduces
    # every cell, and q up to what p and k absorb (a constant and a linear trend in t = c + m + 1): its second
    # differences in logs are the truth's.
    rng = np.random.default_rng(0)
    n_cohorts, n_steps = 5, 4
    month = np.arange(n_cohorts)[:, None] + np.arange(n_steps)[None, :] + 1
    level = np.array([1.0, 1.0, 1.0, 1.0, 2.0, 1.5, 1.0, 1.0, 1.0])
    rate = np.array([0.02, 0.05, 0.04, 0.03])[None, :, None]  # (S, M, K')
    cohort = np.array([0.8, 1.0, 1.3, 0.9, 1.1])[None, :]
    at_risk = rng.integers(1, 3, size=(1, n_cohorts, n_steps, 1)) * 1e6
    rolled = at_risk * rate[:, None] * cohort[:, :, None, None] * level[month][None, :, :, None]
    fitted, _, deviance, pearson, dof = _fit(rolled, at_risk, month[None], len(level), prior_moves=TEST_PRIOR_MOVES)
    assert deviance < 1e-3 and pearson < 1e-3 and dof > 0
    np.testing.assert_allclose(np.diff(np.log(fitted[1:]), 2), np.diff(np.log(level[1:]), 2), atol=1e-4)
    _, _, flat_deviance, _, _ = _fit(rolled, at_risk, month[None], len(level), prior_moves=None)
    assert flat_deviance > 1e3  # without q the shocked months cannot be fitted


def test_a_shock_is_sized_where_another_era_fixes_the_chain():
    # Exact counts of two eras years apart (three monthly cohorts of 300 loans each, about 30 moves a month, the
    # shape of an agency panel joining acquisitions of several years), the second with its roll-forward x2.5 for six
    # months: the levels kept for the forecast (LEVEL_PRIOR_MOVES) find the crisis months' level against the calm
    # months on either side within 20%. Each month's level is identified only against the other era at the same
    # MOBs, so a prior weighs several times its size: the test's 5 moves size this shock at 1.72, a third short.
    n_steps, cohorts = 24, np.array([0, 1, 2, 60, 61, 62])
    month = cohorts[:, None] + np.arange(n_steps)[None, :] + 1
    level = np.ones(month.max() + 1)
    level[72:78] = 2.5
    at_risk = np.full((1, len(cohorts), n_steps, 1), 300.0)
    rolled = at_risk * np.linspace(0.01, 0.03, n_steps)[None, None, :, None] * level[month][None, :, :, None]
    fitted, expected, *_ = _fit(rolled, at_risk, month[None], len(level), prior_moves=LEVEL_PRIOR_MOVES)
    assert 20 < expected[72:78].mean() < 40
    crisis, calm = fitted[72:78].mean(), np.r_[fitted[66:72], fitted[78:84]].mean()
    assert crisis / calm == pytest.approx(2.5, rel=0.2)


def _calm_quarter(seed: int) -> pd.DataFrame:
    """One agency quarter at the real excerpt's size and hazards (three cohorts of 145 loans, DEL30 near 1%)
    followed for 34 months, without any calendar effect."""
    book = simulate_vintage_book(seed, cohorts=34, loans={"P": 70, "R": 40, "C": 35},
                                 profiles={"P": {"risk": 0.15, "prepay": 0.02}, "R": {"risk": 0.2, "prepay": 0.02},
                                           "C": {"risk": 0.3, "prepay": 0.02}})
    cohort = pyxl_del.Config().columns.cohort
    return book.panel[book.panel[cohort].astype(str).isin(book.cohorts[:3])]


@pytest.mark.parametrize("seed", range(4000, 4006))
def test_a_calm_thin_book_is_not_found_to_have_a_calendar_effect(seed):
    # A month of such a book carries one to three expected moves. Tested with the levels' own prior of 1 move, five
    # of these six books were "significant" (p down to 4e-9) and would have carried a level of 0.7-1.1 (noise);
    # the test's prior of 5 moves keeps p above 0.001 on all six.
    stats = aggregate_panel(validate_panel(_calm_quarter(seed), cfg(), "calm quarter"), cfg())
    levels = fit_period_levels(stats, cfg(calibration={"period_level": "auto"}))
    assert not levels.applied and levels.p_value > 1e-3 and levels.carried == 1.0


def test_a_simulated_crisis_is_found_and_sized():
    # Roll-forward rates x2 in the steps starting in six reporting months (the moves ending 2025-05 .. 2025-10), no
    # vintage effect: the months differ far beyond chance, and the crisis months' level against the calm months
    # on either side is the factor within 15% (the neighbours cancel the slope the fit cannot tell from the chain's
    # and the cohorts'; a rate already high cannot double, so a little below 2).
    book = simulate_vintage_book(7, cohorts=30, loans={"A": 1500}, cohort_log_sd=0.0,
                                 crisis=Crisis(start="2025-04", months=6, factor=2.0), as_of="2025-12")
    r = pyxl_del.run(book.panel, cfg(calibration={"period_level": "auto"}))
    levels = r.period
    assert levels.applied and levels.p_value < 1e-6
    table = levels.table().set_index("month")["level"]
    # the chain takes the constant: the months' levels average 1, weighted by their expected moves
    assert np.average(levels.level, weights=levels.expected_moves) == pytest.approx(1.0)
    crisis = table.loc["2025-05":"2025-10"].mean()
    calm = pd.concat([table.loc["2025-03":"2025-04"], table.loc["2025-11":"2025-12"]]).mean()
    assert crisis / calm == pytest.approx(2.0, rel=0.15)
    assert r.period.note(r.config).startswith("Calendar level (reporting months differ beyond chance: F = ")
    assert any(w.startswith("Calendar level (") for w in r.warnings)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0.2, 5.0), min_size=1, max_size=1))
def test_dividing_out_keeps_every_rows_loans_and_ead(values):
    stats = SMALL.stats
    level = np.resize(np.asarray(values), _n_months(stats)) * np.linspace(0.5, 2.0, _n_months(stats))
    out = remove_period_levels(stats, _levels(level), SMALL.config)
    for name in ("cohort_trans_count", "cohort_trans_ead_from", "cohort_trans_ead_to"):
        np.testing.assert_allclose(getattr(out, name).sum(axis=-1), getattr(stats, name).sum(axis=-1), rtol=1e-12)
        assert (getattr(out, name) >= 0).all()



def test_levels_of_one_change_nothing(small):
    stats = small.stats
    out = remove_period_levels(stats, _levels(np.ones(_n_months(stats))), small.config)
    for name in ("cohort_trans_count", "cohort_trans_ead_from", "cohort_trans_ead_to"):
        # to the last bit but one: a row's rest is rescaled by (sum - rolled) / rest
        np.testing.assert_allclose(getattr(out, name), getattr(stats, name), rtol=1e-14, atol=0)
    same = carry_period_level(small.transition_matrix, _levels(np.ones(3)), small.config)
    np.testing.assert_allclose(same, small.transition_matrix, rtol=1e-14, atol=0)


def test_a_level_above_one_is_divided_out_of_its_months_moves_only(small):
    stats, config = small.stats, small.config
    level = np.ones(_n_months(stats))
    level[3] = 2.0  # moves ending in the cohorts' 4th month: cohort 0's step 2 -> 3, cohort 1's 1 -> 2, ...
    out = remove_period_levels(stats, _levels(level), config)
    changed = ~np.isclose(out.cohort_trans_count, stats.cohort_trans_count).all(axis=(0, 3, 4))  # (C, M)
    month = np.arange(changed.shape[0])[:, None] + np.arange(changed.shape[1])[None, :] + 1
    assert changed.any() and not changed[month != 3].any()
    roll = pyxl_del.engine.calibration.roll_forward_mask(config)
    c, m = 0, 2
    before = np.where(roll, stats.cohort_trans_count[:, c, m], 0).sum()
    after = np.where(roll, out.cohort_trans_count[:, c, m], 0).sum()
    assert after == pytest.approx(before / 2)


def test_the_carried_level_scales_the_forecasts_roll_forward_moves(small):
    config = small.config
    roll = pyxl_del.engine.calibration.roll_forward_mask(config)
    up = carry_period_level(small.transition_matrix, _levels(np.array([1.0, 1.5])), config)
    live = ~pyxl_del.engine.calibration.absorbing_mask(config)
    rolled = np.where(roll, small.transition_matrix, 0).sum(axis=-1)[..., live]
    rolled_up = np.where(roll, up, 0).sum(axis=-1)[..., live]
    np.testing.assert_allclose(rolled_up[rolled > 0], np.minimum(1.5 * rolled[rolled > 0], 1.0))  # a row cannot pass 1
    np.testing.assert_allclose(up.sum(axis=-1), small.transition_matrix.sum(axis=-1))


def test_auto_leaves_a_book_without_a_calendar_effect_exactly_as_it_was(small):
    on = _small(period_level="auto")
    assert not on.period.applied and on.period.p_value > on.config.calibration.period_significance
    assert small.period is None
    for del_type, rates in small.rates.items():
        np.testing.assert_array_equal(on.rates[del_type].mixed, rates.mixed)
    assert on.warnings == small.warnings  # a level not applied is named in Run info, not warned about
    assert "no month-to-month effect beyond chance" in on.period.note(on.config)


def test_too_few_months_to_test_says_so():
    # Three monthly cohorts, the oldest at MOB 2: moves end in two months, and the test needs a third beyond the
    # constant and the trend.
    r = _small_of(cohorts=3, period_level="auto")
    assert not r.period.applied and np.isnan(r.period.f_statistic)
    assert "(2 months with moves, too few to test;" in r.period.note(r.config)


def test_always_applies_the_levels_whatever_the_test(small):
    on = _small(period_level="always")
    assert on.period.applied and on.period.carried != 1.0
    assert not np.array_equal(on.rates["DEL30"].mixed, small.rates["DEL30"].mixed)
    assert 'applied as [calibration] period_level = "always" asks' in on.period.note(on.config)


def test_the_levels_applied_are_refitted_with_their_own_prior(small):
    rolled, at_risk, month, n_months = _counts(small.stats, small.config)
    tested, *_ = _fit(rolled, at_risk, month, n_months, prior_moves=TEST_PRIOR_MOVES)
    kept, *_ = _fit(rolled, at_risk, month, n_months, prior_moves=LEVEL_PRIOR_MOVES)
    assert np.abs(kept - tested).max() > 1e-3
    np.testing.assert_allclose(_small(period_level="always").period.level, kept, rtol=1e-12)
    np.testing.assert_allclose(_small(period_level="auto").period.level, tested, rtol=1e-12)  # not applied here


@pytest.mark.parametrize("key, value", [("period_level", "yes"), ("period_significance", 0.0),
                                        ("period_significance", 1.0), ("period_months", 0)])
def test_bad_settings_name_the_key(key, value):
    with pytest.raises(ConfigError, match=key):
        cfg(calibration={key: value})
