"""Known answers for calibration weights and cohort factors (vintage quality), worked by hand on tiny panels, and
the invariants of the cohort-adjusted forecast."""

import numpy as np
import pytest
from _panels import CHAIN, cfg, frame, loan, simulate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.signal import lfilter
from test_known_answers import calibration_panel
from test_known_answers import run as run_tiny
from test_properties import build, has_transitions, loan_paths

import pyxl_del
from pyxl_del.datasets.sample import load_sample_panel
from pyxl_del.engine.calibration import (
    CohortFactors,
    _nested_credibility,
    _vintage_levels,
    absorbing_mask,
    fit_cohort_factors,
    fit_stepwise_factors,
    roll_forward_mask,
    scale_rows,
)
from pyxl_del.engine.config import Config, ConfigError, load_config
from pyxl_del.engine.files import write_tables
from pyxl_del.engine.forecast import forecast_ead

CUR, D1, D30, D60, D90, WO, PP = range(7)


# ------------------------------------------------------------------------------------- k: weights and minimum


def test_plain_weights_reproduce_the_specified_mean_exactly():
    r = pyxl_del.run(simulate(CHAIN, cohorts=5, loans=60, max_mob=4, seed=3), cfg(forecast={"max_mob": 4}))
    stats, p = r.stats, r.transitions.transition_matrix
    got = fit_stepwise_factors(stats, p, r.config)
    # The specification: over cohorts observed at m-1 and m, k[m] = mean(actual_c) / mean(expected_c).
    bad = np.isin(r.config.buckets.order, r.config.buckets.del30)
    ead0 = stats.ead[:, :, 0].sum(axis=-1)
    assert got.k_unclipped[0, 1] == 1.0  # nothing is 30+ one month after MOB 0: expected 0, k 1
    for m in range(2, 5):
        used = stats.observed[0, :, m - 1] & stats.observed[0, :, m]
        expected = (stats.ead[0, used, m - 1] @ p[0, m - 1])[:, bad].sum(axis=-1) / ead0[0, used]
        actual = stats.ead[0, used, m][:, bad].sum(axis=-1) / ead0[0, used]
        assert got.k_unclipped[0, m] == actual.mean() / expected.mean()
    assert np.array_equal(got.k, r.factors.k)  # the pipeline's own factors are these


def test_ead_weights_are_the_ratio_of_bad_balances():
    # calibration_panel: X (EAD0 200) expected 100 * 0.25 = 25 bad, actual 100; Y (EAD0 400) expected 75, actual 0.
    # EAD-weighted: (100 + 0) / (25 + 75) = 1 (the plain mean gives 1.6).
    row = run_tiny(calibration_panel(), calibration={"mode": "stepwise", "weights": "ead"}
                   ).calibration_factors.query("mob == 1").iloc[0]
    assert row["k"] == pytest.approx(1.0)
    assert row["expected_mean"] == pytest.approx(100 / 600) and row["actual_mean"] == pytest.approx(100 / 600)
    assert row["n_loans"] == 4


def test_loan_weights_follow_the_loans():
    # Cohort Y gets a third loan (CURRENT throughout, EAD 100): the chain's DPD1+ row is unchanged (0.25 to DPD30+).
    # X: 2 loans, expected 25/200, actual 100/200; Y: 3 loans, expected 75/500, actual 0.
    df = calibration_panel()
    df = frame([tuple(r) for r in df.itertuples(index=False)] + loan("Y3", "2024-02", "A", [("CURRENT", 100)] * 2))
    row = run_tiny(df, calibration={"mode": "stepwise", "weights": "loans"}).calibration_factors.query("mob == 1")
    expected = (2 * 25 / 200 + 3 * 75 / 500) / 5
    actual = (2 * 100 / 200) / 5
    assert row["k"].item() == pytest.approx(actual / expected)
    assert row["expected_mean"].item() == pytest.approx(expected)


def test_min_cohort_loans_leaves_small_cohorts_out():
    r = run_tiny(calibration_panel(), calibration={"mode": "stepwise", "min_cohort_loans": 3})
    assert r.calibration_factors.empty  # both cohorts have 2 loans
    assert r.factors.k[0, 1] == 1.0
    r2 = run_tiny(calibration_panel(), calibration={"mode": "stepwise", "min_cohort_loans": 2})
    assert r2.factors.k[0, 1] == pytest.approx(1.6)


def test_a_factor_resting_on_few_loans_is_warned_about():
    few = run_tiny(calibration_panel(), calibration={"mode": "stepwise"}, transitions={"min_count": 5,
                                                                                     "fallback": "pooled"})
    assert any(w.startswith("1 calibration factor rests on fewer than [transitions] min_count = 5 loans (e.g. "
                            "segment 'A' MOB 1: k = 1.6 from 4 loans)") for w in few.warnings)
    enough = run_tiny(calibration_panel(), calibration={"mode": "stepwise"}, transitions={"min_count": 4})
    assert not any("on fewer than [transitions] min_count" in w for w in enough.warnings)


@pytest.mark.parametrize("text", ['weights = "mean"', "min_cohort_loans = 0", 'cohort_factor = "yes"',
                                  "cohort_credibility = -1.0", 'cohort_credibility = "high"'])
def test_bad_values_name_the_key(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(f"[calibration]\n{text}\n")
    with pytest.raises(ConfigError, match=r"\[calibration\] " + text.split()[0]):
        load_config(path)
    path.write_text("[calibration]\ncohort_credibility = 25\n")  # an integer is a number of moves too
    assert load_config(path).calibration.cohort_credibility == 25


# ---------------------------------------------------------------------------------------------- cohort factors


def roll_panel():
    # One cohort, 4 loans of EAD 100 at MOB 0 in CURRENT; at MOB 1 two are DPD1+ (rolled forward), two CURRENT.
    return frame(loan("a", "2024-01", "A", [("CURRENT", 100), ("DPD1+", 100)])
                 + loan("b", "2024-01", "A", [("CURRENT", 100), ("DPD1+", 100)])
                 + loan("c", "2024-01", "A", [("CURRENT", 100), ("CURRENT", 100)])
                 + loan("d", "2024-01", "A", [("CURRENT", 100), ("CURRENT", 100)])
                 + loan("e", "2024-02", "A", [("CURRENT", 100)]))  # a cohort with no step yet


def hand_chain(config) -> np.ndarray:
    """The chain says CURRENT rolls to DPD1+ with 0.25 (the cohort did twice that: 2 of 4), else stays."""
    p = np.broadcast_to(np.eye(7), (1, 2, 7, 7)).copy()
    p[0, :, CUR, CUR], p[0, :, CUR, D1] = 0.75, 0.25
    return p


@pytest.mark.parametrize("kappa, factor", [(0.0, 2.0), (2.0, 1 + 1 / 3), (1e12, 1.0)])
def test_twice_the_chain_with_full_credibility_gets_two(kappa, factor):
    # Expected roll-forward moves 4 * 0.25 = 1 loan, actual 2: own factor 2. Z = 1 / (1 + kappa).
    r = run_tiny(roll_panel())
    config = r.config.with_overrides(calibration={"cohort_credibility": kappa})
    f = fit_cohort_factors(r.stats, hand_chain(config), config)
    assert f.own[0, 0] == pytest.approx(2.0)
    assert f.expected_moves[0, 0] == pytest.approx(1.0)
    assert f.credibility[0, 0] == pytest.approx(1 / (1 + kappa))
    assert f.factor[0, 0] == pytest.approx(factor)
    # The young cohort has no step: credibility 0, factor 1, whatever kappa is.
    assert f.credibility[0, 1] == 0 and f.factor[0, 1] == 1.0 and np.isnan(f.own[0, 1])


def test_the_factor_scales_each_cohorts_roll_forward_in_the_forecast():
    r = run_tiny(roll_panel(), calibration={"cohort_factor": "credibility", "cohort_credibility": 0.0},
                 transitions={"weighting": "count"})
    # The fitted chain is the cohort's own (0.5 to DPD1+): own factor 1. Its MOB 2 forecast uses the chain.
    assert r.factors.cohort.factor[0, 0] == pytest.approx(1.0)
    f = CohortFactors(factor=np.array([[2.0, 0.5]]), own=np.ones((1, 2)), credibility=np.ones((1, 2)),
                      vintage_factor=np.ones((1, 2)), vintage_credibility=np.zeros((1, 2)),
                      expected_moves=np.ones((1, 2)), n_loans=np.ones((1, 2)), kappa=np.zeros(1),
                      roll_forward=roll_forward_mask(r.config), absorbing=absorbing_mask(r.config))
    p = hand_chain(r.config)
    path = forecast_ead(r.stats, p, f)
    # Young cohort (factor 0.5): MOB 1 = 100 * (CURRENT 0.875, DPD1+ 0.125); MOB 0 -> 1 is its first step.
    np.testing.assert_allclose(path[0, 1, 1, [CUR, D1]], [87.5, 12.5])
    # Old cohort (factor 2): MOB 2 from its actual MOB 1 (CURRENT 200, DPD1+ 200): CURRENT 200 * 0.5 to DPD1+.
    np.testing.assert_allclose(path[0, 0, 2, [CUR, D1]], [100.0, 300.0])
    # Per-cohort matrices give the same path as segment matrices with factors.
    np.testing.assert_allclose(forecast_ead(r.stats, f.scale(p[:, None]))[0], path[0])


def test_one_segment_gets_the_buhlmann_straub_factor_by_hand():
    # Two cohorts, two steps of weight 1: X = (1, 1.5) and (3, 3.5). Means 1.25 and 3.25, collective 2.25.
    # within = 4 * 0.25^2 / 2 = 0.125; between = (2 * 1 + 2 * 1 - 0.125) / (4 - 8 / 4) = 1.9375. One segment: the
    # nested credibility is the pooled cohort's, Z = 2 / (2 + 0.125 / 1.9375), toward 1.
    w = np.ones((1, 2, 2))
    x = np.array([[[1.0, 1.5], [3.0, 3.5]]])
    w_c = w.sum(axis=-1)
    own = (w * x).sum(axis=-1) / w_c
    z, toward, z_vintage, _kappa = _nested_credibility(w, x, w_c, own, np.full((1, 2), 2), np.arange(2))[:4]
    expected_z = 2 / (2 + 0.125 / 1.9375)
    np.testing.assert_allclose(z_vintage, expected_z, rtol=1e-6)
    np.testing.assert_allclose(toward, 1 + expected_z * (own - 1), rtol=1e-6)
    assert (z < 1e-6).all()  # the segment is its cohort: all of the weight sits at the cohort level
    # No spread between cohorts beyond the noise: every factor 1.
    same = np.array([[[1.0, 3.0], [3.0, 1.0]]])
    _z, toward, z_vintage, _kappa = _nested_credibility(w, same, w_c, (w * same).sum(axis=-1) / w_c,
                                                         np.full((1, 2), 2), np.arange(2))[:4]
    assert (z_vintage == 0).all() and (toward == 1).all()


def test_correlated_vintages_by_hand():
    # Cohorts at months 0, 1, 2; 0 and 2 have levels 1.4 and 0.8, seen with noise tau2 / Z_c = 0.5 each; nu2 0.5,
    # rho 0.5: covariances 0.5 * 0.5^lag. V = [[1, 0.125], [0.125, 1]], V^-1 (0.4, -0.2) = (0.425, -0.25) / 0.984375.
    level, z_cohort, months = np.array([1.4, 1.0, 0.8]), np.array([1.0, 0.0, 1.0]), np.arange(3)
    toward, own_weight, rho = _vintage_levels(level, z_cohort, 0.5, 0.5, months, 0.5)[:3]
    alpha = np.array([0.425, -0.25]) / 0.984375
    np.testing.assert_allclose(toward, [1 + 0.5 * alpha[0] + 0.125 * alpha[1], 1 + 0.25 * alpha.sum(),
                                        1 + 0.125 * alpha[0] + 0.5 * alpha[1]], rtol=1e-12)
    assert toward[1] == pytest.approx(1 + 2 / 45)  # the middle cohort, without history, takes its neighbours'
    # the weight of a cohort's own level: 1 - D_c (V^-1)_cc = 1 - 0.5 / 0.984375
    np.testing.assert_allclose(own_weight, [1 - 0.5 / 0.984375, 0.0, 1 - 0.5 / 0.984375], rtol=1e-12)
    assert rho == 0.5
    # rho 0 is the independent credibility: mu_c = 1 + Z_c (B_c - 1), Z_c = nu2 / (nu2 + 0.5) = 0.5; 1 without history
    toward, own_weight, _rho = _vintage_levels(level, z_cohort, 0.5, 0.5, months, 0.0)[:3]
    np.testing.assert_allclose(toward, [1.2, 1.0, 0.9], rtol=1e-12)
    np.testing.assert_allclose(own_weight, [0.5, 0.0, 0.5], rtol=1e-12)


def test_the_vintage_levels_posterior_variance_by_hand():
    # The cohorts of test_correlated_vintages_by_hand: var_c = nu2 - Sigma_c.o V^-1 Sigma_o.c, V^-1 = [[1, -0.125],
    # [-0.125, 1]] / 0.984375. Cohort 0: (0.25 - 2 * 0.5 * 0.125^2 + 0.125^2) / 0.984375 = 0.25 / 0.984375; the
    # middle one, without history, (2 * 0.0625 - 2 * 0.125 * 0.0625) / 0.984375 = 1 / 9: it learns from both.
    level, z_cohort, months = np.array([1.4, 1.0, 0.8]), np.array([1.0, 0.0, 1.0]), np.arange(3)
    variance = _vintage_levels(level, z_cohort, 0.5, 0.5, months, 0.5)[3]
    np.testing.assert_allclose(variance, [0.5 - 0.25 / 0.984375, 0.5 - 1 / 9, 0.5 - 0.25 / 0.984375], rtol=1e-12)
    # rho 0: nu2 (1 - Z_c), Z_c = 0.5; a cohort without history keeps the whole nu2
    variance = _vintage_levels(level, z_cohort, 0.5, 0.5, months, 0.0)[3]
    np.testing.assert_allclose(variance, [0.25, 0.5, 0.25], rtol=1e-12)
    # no vintage effect (nu2 <= 0): nothing to carry
    assert (_vintage_levels(level, z_cohort, 0.5, -0.1, months, 0.0)[3] == 0).all()


def test_a_cohort_without_history_carries_the_widest_factor_spread():
    # The sample's youngest cohort has no step of its own: its factor is its neighbours' vintage level, with the
    # spread of the segments within a cohort and of that level (0.17 on the log scale); cohorts of two years'
    # history, their level 90% their own, are far surer (0.03-0.07).
    r = pyxl_del.run(load_sample_panel(), Config())
    f = r.factors.cohort
    assert f.spread is not None and np.isfinite(f.spread).all() and (f.spread >= 0).all()
    young, old = (f.credibility == 0) & (f.n_loans > 0), f.vintage_credibility > 0.9
    assert young.any() and old.any()
    assert f.spread[young].min() > 2 * f.spread[old].max()
    fixed = pyxl_del.run(load_sample_panel(), Config().with_overrides(calibration={"cohort_credibility": 50}))
    assert fixed.factors.cohort.spread is None  # a fixed kappa has no variance model


@pytest.mark.parametrize("correlation", [0.9, 0.0])
def test_the_vintages_correlation_is_estimated(correlation):
    # 120 monthly cohorts whose true levels are an AR(1) series (log-sd 0.25) seen with noise sd 0.05: maximum
    # likelihood finds the correlation; the 20 youngest, without history, take their neighbours' level when it is
    # there, and stay at 1 when vintages are independent.
    rng = np.random.default_rng(7)
    shocks = rng.normal(size=120)
    shocks[1:] *= np.sqrt(1 - correlation ** 2)
    truth = np.exp(0.25 * lfilter([1.0], [1.0, -correlation], shocks))
    z_cohort = np.r_[np.ones(100), np.zeros(20)]
    level = np.where(z_cohort > 0, truth + rng.normal(0, 0.05, 120), 1.0)
    nu2 = float(np.var(level[:100]) - 0.05 ** 2)
    toward, _w, rho = _vintage_levels(level, z_cohort, 0.05 ** 2, nu2, np.arange(120), "auto")[:3]
    assert rho == pytest.approx(correlation, abs=0.1)
    young_error = np.abs(toward[100:] - truth[100:]).mean()
    if correlation:
        assert young_error < 0.6 * np.abs(1 - truth[100:]).mean()  # better than no vintage factor at all
        assert toward[100] == pytest.approx(toward[99], abs=0.05)
    else:
        np.testing.assert_allclose(toward[100:], 1.0, atol=0.02)


def test_a_thin_segment_borrows_its_vintages_signal():
    # Segments A (100 expected roll-forward moves a step) and thin B (2) in six cohorts whose quality is shared:
    # moves are Poisson around expected x quality. Over five draws, B's factor is much nearer the truth than B's own
    # ratio (it follows the vintage, i.e. A's evidence), and B's own data weighs less than A's.
    quality = np.array([0.6, 1.6, 0.6, 1.6, 0.8, 1.2])
    w = np.stack([np.full((6, 6), 100.0), np.full((6, 6), 2.0)])  # (S, C, M)
    w_c = w.sum(axis=-1)
    own_error, factor_error = [], []
    for seed in range(5):
        x = np.random.default_rng(seed).poisson(w * quality[None, :, None]) / w
        own = (w * x).sum(axis=-1) / w_c
        z, toward, _z_vintage, _kappa = _nested_credibility(w, x, w_c, own, np.full((2, 6), 6), np.arange(6))[:4]
        np.testing.assert_allclose(toward[0], toward[1])  # one vintage factor per cohort
        assert (z[1] <= z[0]).all()
        factor = z * own + (1 - z) * toward
        own_error.append(np.abs(own[1] - quality).mean())
        factor_error.append(np.abs(factor[1] - quality).mean())
    assert np.mean(factor_error) < 0.6 * np.mean(own_error)


def test_cohort_factor_none_changes_nothing():
    df = simulate(CHAIN, cohorts=5, loans=80, max_mob=4, seed=5)
    base = cfg(forecast={"max_mob": 4})
    plain = pyxl_del.run(df, base)
    none = pyxl_del.run(df, base.with_overrides(calibration={"cohort_factor": "none", "cohort_credibility": 3.0}))
    assert plain.factors.cohort is None and none.factors.cohort is None
    assert np.array_equal(plain.ead_path, none.ead_path)
    assert np.array_equal(plain.transition_matrix, none.transition_matrix)
    assert plain.cohort_factors.empty and list(plain.cohort_factors.columns)[:5] == [
        "segment", "cohort", "factor", "factor_log_sd", "credibility"]
    on = pyxl_del.run(df, base.with_overrides(calibration={"cohort_factor": "credibility", "cohort_credibility": 0.0}))
    assert not np.array_equal(plain.ead_path, on.ead_path)  # the check above can fail


def vintage_panel(factors=(0.6, 1.6, 0.6, 1.6, 0.6, 1.6), loans=1500, max_mob=5):
    from pyxl_del.datasets.sample import _scale_roll_forward

    config = cfg(forecast={"max_mob": max_mob})
    p = _scale_roll_forward(np.broadcast_to(CHAIN, (1, max_mob, 7, 7)), np.array(factors)[:, None, None], config)
    labels = [f"2024-{c + 1:02d}" for c in range(len(factors))]
    df = pyxl_del.datasets.sample.simulate_panel(p, cohorts=labels, as_of=labels[-1], loans_per_cohort=loans,
                                                 segments=("A",), seed=11, max_mob=max_mob)
    return df, config


def test_the_joint_fit_recovers_vintage_quality():
    df, config = vintage_panel()
    r = pyxl_del.run(df, config.with_overrides(calibration={"cohort_factor": "credibility"}))
    t = r.cohort_factors
    assert list(t.columns) == ["segment", "cohort", "factor", "factor_log_sd", "credibility", "own_factor",
                               "vintage_factor", "vintage_credibility", "expected_moves", "n_loans", "kappa"]
    good, bad = t["factor"].iloc[[0, 2]], t["factor"].iloc[[1, 3]]
    # The chain is the pool's (about 1.1 times the base): true factors about 0.55 and 1.45 against it.
    assert (good < 0.75).all() and (bad > 1.25).all()
    # One segment: the weight sits at the cohort level (the segment is its vintage); the last cohort has MOB 0 only.
    assert (t["vintage_credibility"].iloc[:4] > 0.9).all() and t["vintage_credibility"].iloc[-1] == 0
    assert t["n_loans"].eq(1500).all()


def test_cohort_factors_csv_only_with_cohort_factors(tmp_path):
    df, config = vintage_panel(loans=200, max_mob=3)
    names = {p.name for p in write_tables(pyxl_del.run(df, config), tmp_path / "plain")}
    assert "cohort_factors.csv" not in names
    on = pyxl_del.run(df, config.with_overrides(calibration={"cohort_factor": "credibility"}))
    written = {p.name: p for p in write_tables(on, tmp_path / "on")}
    import pandas as pd
    assert pd.read_csv(written["cohort_factors.csv"])["factor"].to_numpy() == pytest.approx(
        on.cohort_factors["factor"].to_numpy())


# ------------------------------------------------------------------------------------------------- invariants


@pytest.fixture(scope="module")
def vintage_stats():
    df, config = vintage_panel(loans=100, max_mob=5)
    return pyxl_del.run(df, config), config


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.floats(0.05, 20.0), min_size=6, max_size=6), st.integers(0, 2**32 - 1))
def test_forecast_with_cohort_factors_conserves_ead(vintage_stats, factors, seed):
    result, config = vintage_stats
    rng = np.random.default_rng(seed)
    p = rng.random((1, 5, 7, 7)) * (rng.random((1, 5, 7, 7)) < 0.6)
    p[..., np.arange(7), np.arange(7)] += 1e-3
    p /= p.sum(axis=-1, keepdims=True)
    absorbing = absorbing_mask(config)
    p[..., absorbing, :] = np.eye(7)[absorbing]
    f = CohortFactors(factor=np.array([factors]), own=np.ones((1, 6)), credibility=np.ones((1, 6)),
                      vintage_factor=np.ones((1, 6)), vintage_credibility=np.zeros((1, 6)),
                      expected_moves=np.ones((1, 6)), n_loans=np.ones((1, 6)), kappa=np.zeros(1),
                      roll_forward=roll_forward_mask(config), absorbing=absorbing)
    scaled = f.scale(p[:, None])
    assert (scaled >= 0).all()
    np.testing.assert_allclose(scaled.sum(axis=-1), 1.0, atol=1e-12)
    stats = result.stats
    path = forecast_ead(stats, p, f)
    total = path.sum(axis=-1)  # (S, C, M+1)
    forecast = ~stats.observed[:, :, 1:]
    np.testing.assert_allclose(np.where(forecast, total[:, :, 1:] - total[:, :, :-1], 0.0), 0.0, atol=1e-7)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(loan_paths, st.sampled_from(["ead", "count"]), st.sampled_from(["stepwise", "none"]),
       st.sampled_from(["cohorts", "ead", "loans"]), st.sampled_from(["auto", 0.0, 3.0]))
def test_cohort_factors_on_random_panels_are_finite_and_conserve_ead(loans, weighting, mode, weights, kappa):
    df = build(loans)
    if not has_transitions(df):
        return
    r = pyxl_del.run(df, cfg(transitions={"weighting": weighting, "min_count": 1},
                             calibration={"mode": mode, "weights": weights, "cohort_factor": "credibility",
                                          "cohort_credibility": kappa}, forecast={"max_mob": 5}))
    f = r.factors.cohort
    assert np.isfinite(f.factor).all() and ((f.credibility >= 0) & (f.credibility <= 1)).all()
    assert np.isfinite(r.ead_path).all() and (r.ead_path >= -1e-9).all()
    total = r.ead_path.sum(axis=-1)
    forecast_step = ~r.stats.observed[:, :, 1:]
    np.testing.assert_allclose(np.where(forecast_step, total[:, :, 1:], 0),
                               np.where(forecast_step, total[:, :, :-1], 0), rtol=1e-9, atol=1e-6)
    assert len(r.cohort_factors) == int((r.stats.n_loans.max(axis=2) > 0).sum())


def test_twice_the_pooled_chain_through_the_pipeline():
    # Cohort 2024-01: 2 of 4 CURRENT loans roll to DPD1+; cohort 2024-02: 0 of 4. Pooled chain (count): 2 / 8 = 0.25.
    # Own factors 2 and 0; with full credibility (kappa 0) and the default cohort_clip [0.1, 10]: 2 and 0.1 (clipped,
    # warned); with cohort_clip [0.5, 2] (k_clip's range): 2 and 0.5, both at a bound. k_clip does not bind them.
    rows = [("CURRENT", 100), ("DPD1+", 100)], [("CURRENT", 100), ("CURRENT", 100)]
    df = frame(sum((loan(f"{c}{i}", cohort, "A", rows[0] if (c == "x" and i < 2) else rows[1])
                    for c, cohort in (("x", "2024-01"), ("y", "2024-02")) for i in range(4)), []))
    full = {"cohort_factor": "credibility", "cohort_credibility": 0.0}
    r = run_tiny(df, calibration=full | {"k_clip": [0.9, 1.1]}, transitions={"weighting": "count"},
                 forecast={"max_mob": 1})
    t = r.cohort_factors.set_index("cohort")
    assert t.loc["2024-01", "own_factor"] == pytest.approx(2.0) and t.loc["2024-01", "factor"] == pytest.approx(2.0)
    assert t.loc["2024-02", "own_factor"] == 0 and t.loc["2024-02", "factor"] == pytest.approx(0.1)
    assert (t["credibility"] == 1.0).all() and (t["expected_moves"] == 1.0).all()
    assert any("1 cohort factor reached [calibration] cohort_clip [0.1, 10.0]" in w for w in r.warnings)
    narrow = run_tiny(df, calibration=full | {"cohort_clip": [0.5, 2.0]}, transitions={"weighting": "count"},
                      forecast={"max_mob": 1})
    assert narrow.cohort_factors.set_index("cohort")["factor"].tolist() == [pytest.approx(2.0), 0.5]
    assert any("2 cohort factors reached [calibration] cohort_clip [0.5, 2.0]" in w for w in narrow.warnings)
    auto = run_tiny(df, calibration={"cohort_factor": "credibility"}, transitions={"weighting": "count"},
                    forecast={"max_mob": 1})
    # One step per cohort: no within-cohort variance to measure, so "auto" keeps every factor at 1.
    assert (auto.cohort_factors["factor"] == 1.0).all() and not any("cohort factors" in w for w in auto.warnings)


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_a_rest_of_denormals_cannot_absorb_a_factor():
    """A posterior draw of a DPD60+ row (balance-weighted, so summing to 0.977) whose stay entry underflowed to a
    denormal: scaling its roll forward by 0.79 would need the rest to grow 4e20-fold. As a rest of exact zeros, the
    rest cannot absorb it: the roll forward keeps the row's sum, the rest becomes 0 (it gave NaN and inf)."""
    row = np.array([[0.0, 0.0, 0.0, 4.79e-322, 0.977, 0.0, 0.0]])
    mask = np.array([False, False, False, False, True, True, False])
    out = scale_rows(row, 0.79, mask, np.array([False]))
    np.testing.assert_allclose(out, [[0.0, 0.0, 0.0, 0.0, 0.977, 0.0, 0.0]])
