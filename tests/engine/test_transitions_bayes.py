"""The bayes estimator, calendar weights and the tail window: known answers on tiny panels and invariants."""

import numpy as np
import pandas as pd
import pytest
from _panels import CHAIN, cfg, frame, loan, simulate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pyxl_del
from pyxl_del.engine.config import Config, ConfigError, config_from_dict
from pyxl_del.engine.data import aggregate_panel, validate_panel
from pyxl_del.engine.errors import PanelError
from pyxl_del.engine.transitions import (
    NEUTRAL,
    PRIOR,
    SHRUNK,
    TAIL_COPY,
    TAIL_POOLED,
    _fit_prior,
    _mix,
    _prior_loss,
    _prior_parts,
    calendar_weights,
    estimate_transition_matrices,
    neutral_rows,
)

CUR, D1, D30, D60, D90, WO, PP = range(7)


def model(df, max_mob=3, **transitions):
    config = cfg(transitions={"min_count": 0, **transitions}, forecast={"max_mob": max_mob})
    stats = aggregate_panel(validate_panel(df, config), config)
    return estimate_transition_matrices(stats, config), stats, config


def two_segments():
    """Segment A: 3 loans leave CURRENT at MOB 0 (1 rolls); B: 4 loans, none rolls. Only one step has data."""
    return frame(
        loan("a1", "2024-01", "A", [("CURRENT", 100), ("DPD1+", 100)])
        + loan("a2", "2024-01", "A", [("CURRENT", 100), ("CURRENT", 100)])
        + loan("a3", "2024-01", "A", [("CURRENT", 100), ("CURRENT", 100)])
        + [row for k in range(4) for row in loan(f"b{k}", "2024-01", "B", [("CURRENT", 100), ("CURRENT", 100)])]
    )


def test_fixed_strength_by_hand():
    # One step: A's only prior part is the other segment at the MOB (B: CURRENT -> CURRENT 4 of 4), so with a = 6
    # A's CURRENT row is (3 * (2/3, 1/3) + 6 * (1, 0)) / 9 = (8/9, 1/9) and its concentration 3 + 6.
    m, _, _ = model(two_segments(), estimator="bayes", prior_strength=6.0, prior_stay=0.0, weighting="count")
    np.testing.assert_allclose(m.transition_matrix[0, 0, CUR, [CUR, D1]], [8 / 9, 1 / 9])
    # B's prior is A's row: (4 * (1, 0) + 6 * (2/3, 1/3)) / 10 = (0.8, 0.2).
    np.testing.assert_allclose(m.transition_matrix[1, 0, CUR, [CUR, D1]], [0.8, 0.2])
    np.testing.assert_allclose(m.concentration[:, 0, CUR], [9.0, 10.0])
    assert m.origin[0, 0, CUR] == SHRUNK
    # DPD1+ never leaves anywhere: no prior exists, so the row is the neutral one (half cures, half stays; reported
    # as such), neither an absorbing state nor an invented roll.
    assert m.origin[0, 0, D1] == NEUTRAL
    np.testing.assert_array_equal(m.transition_matrix[0, 0, D1], 0.5 * np.eye(7)[CUR] + 0.5 * np.eye(7)[D1])


def test_a_state_nobody_left_is_not_absorbing_whatever_the_lean_to_stay():
    # The lean toward staying (prior_stay) applies to priors resting on loans; with none behind it, it would make the
    # state absorbing again (as it did: the row was the identity).
    for stay in (0.0, 5.0, 1e6):
        m, _, _ = model(two_segments(), estimator="bayes", prior_stay=stay, weighting="count")
        np.testing.assert_allclose(m.transition_matrix[:, :, D1, CUR], 0.5)


def test_neutral_rows_by_hand():
    absorbing = np.array([False, False, False, True, True])  # CURRENT, DPD30, DPD60, WRITEOFF, PREPAY
    np.testing.assert_array_equal(neutral_rows(absorbing), [
        [1, 0, 0, 0, 0],
        [0.5, 0.5, 0, 0, 0],
        [0.5, 0, 0.5, 0, 0],
        [0, 0, 0, 1, 0],
        [0, 0, 0, 0, 1],
    ])


def test_strength_zero_is_the_specified_own_rows():
    df = simulate(CHAIN, segments=("A", "B"), cohorts=5, loans=40, max_mob=4, seed=3)
    for weighting in ("ead", "count", "balance"):
        spec, stats, _ = model(df, weighting=weighting)
        bayes, _, _ = model(df, weighting=weighting, estimator="bayes", prior_strength=0.0)
        own = stats.trans_count.sum(axis=-1) > 0
        own[..., [WO, PP]] = True
        steps = np.arange(own.shape[1])[None, :] <= spec.last_estimated_step[:, None]
        keep = own & steps[..., None]
        np.testing.assert_array_equal(bayes.transition_matrix[keep], spec.transition_matrix[keep])
        np.testing.assert_array_equal(bayes.last_estimated_step, spec.last_estimated_step)
        # The tail (tail_window 1) copies the same last step.
        last = own[np.arange(own.shape[0]), spec.last_estimated_step]  # (S, K)
        tail = ~steps[..., None] & last[:, None, :]
        np.testing.assert_array_equal(bayes.transition_matrix[tail], spec.transition_matrix[tail])


def test_large_strength_is_the_prior():
    df = simulate(CHAIN, segments=("A", "B"), cohorts=5, loans=40, max_mob=4, seed=4)
    m, stats, _ = model(df, weighting="ead", estimator="bayes", prior_strength=1e15, prior_stay=0.0)
    count = stats.trans_count.astype(float)
    num = stats.trans_ead_from
    parts, _, has, _ = _prior_parts(num, num.sum(axis=-1), count)
    w = np.nan_to_num(m.prior_weights).T[:, None, None, :]
    top = count.sum(axis=(0, 1))
    with np.errstate(invalid="ignore"):
        fallback = num.sum(axis=(0, 1)) / num.sum(axis=(0, 1, 3))[:, None]
    prior = _mix(parts, has, np.broadcast_to(w, has.shape), np.broadcast_to(np.nan_to_num(fallback), parts.shape[1:]))
    steps = np.arange(m.transition_matrix.shape[1]) <= m.last_estimated_step.min()
    transient = top.sum(axis=-1) > 0
    transient[[WO, PP]] = False
    np.testing.assert_allclose(m.transition_matrix[:, steps][..., transient, :], prior[:, steps][..., transient, :],
                               atol=1e-9)


def test_auto_strength_grows_with_homogeneity():
    # Two segments from the same chain: the prior (the other segment, the neighbouring MOBs) describes the rows
    # well, so the fitted strength is large; a row of 3 loans is then mostly prior and one of 3,000 mostly its own.
    df = simulate(CHAIN, segments=("A", "B"), cohorts=6, loans=300, max_mob=5, seed=5)
    m, _, _ = model(df, estimator="bayes", weighting="count")
    assert m.prior_strength[CUR] > 100
    assert np.isnan(m.prior_strength[[WO, PP]]).all()
    w = m.prior_weights[CUR]
    assert np.isclose(w.sum(), 1.0) and (w >= 0).all()


def prior_problem(seed=0, rows=20, k=7):
    """Count rows x, three prior parts (one lacking some rows, a state no part reaches) and the overall row."""
    rng = np.random.default_rng(seed)
    x = rng.poisson(3, (rows, k)).astype(float)
    x[:, 5] = 0
    parts = rng.dirichlet(np.ones(k), (3, rows))
    parts[..., 6] = 0
    parts /= parts.sum(axis=-1, keepdims=True)
    has = rng.random((3, rows)) > 0.3
    has[:, 0] = False  # a row no part has: the overall row, which does not move with the weights
    return x, parts, has, x.sum(axis=0) / x.sum()


@pytest.mark.parametrize("strength", [None, 40.0])
@pytest.mark.parametrize("theta", [[1.0, 0.3, -0.5], [5.0, -2.0, 1.0], [-1.5, 0.0, 0.0], [12.0, 4.0, -3.0]])
def test_prior_likelihood_gradient_is_its_derivative(theta, strength):
    """The optimiser follows the analytic gradient (jac=True): it equals central differences of the likelihood."""
    args = prior_problem()
    theta = np.array(theta)
    analytic = _prior_loss(theta, *args, strength)[1]
    h = 1e-5 * np.eye(3)
    numeric = np.array([(_prior_loss(theta + e, *args, strength)[0] - _prior_loss(theta - e, *args, strength)[0]) / 2e-5
                        for e in h])
    if strength is not None:
        numeric[0] = 0.0  # a fixed strength: theta[0] is not a variable
    np.testing.assert_allclose(analytic, numeric, rtol=1e-4, atol=1e-4)


def test_fitted_prior_is_the_likelihood_maximum():
    """No point of a grid around the fit has a higher marginal likelihood."""
    x, parts, has, top = prior_problem(seed=3)
    strength, weights = _fit_prior(x, parts, has, top, None)
    best = np.concatenate([[np.log(strength)], np.log(weights[1:] / weights[0])])
    fitted = _prior_loss(best, x, parts, has, top, None)[0]
    for step in np.array(np.meshgrid(*[[-0.2, 0.0, 0.2]] * 3)).reshape(3, -1).T:
        assert _prior_loss(best + step, x, parts, has, top, None)[0] >= fitted - 1e-6


def test_row_without_data_takes_its_prior_not_a_stay():
    # A never reaches DPD60+; B does: at step 0 it rolls to DPD90+, at step 1 it cures. A's DPD60+ rows are B's,
    # not "stays in DPD60+": A has no other MOB and no neighbour with DPD60+ data, so its prior mixes the other
    # segment at the MOB (B's move at that step) with every segment over all MOBs (B's two moves: half each).
    df = frame(
        loan("a1", "2024-01", "A", [("CURRENT", 100), ("DPD1+", 100), ("DPD30+", 100)])
        + loan("b1", "2024-01", "B", [("DPD30+", 100), ("DPD60+", 100), ("CURRENT", 100)])
        + loan("b2", "2024-01", "B", [("DPD60+", 100), ("DPD90+", 100), ("WRITEOFF", 100)])
    )
    m, _, _ = model(df, estimator="bayes", weighting="count", prior_stay=0.0)
    assert (m.origin[0, :2, D60] == PRIOR).all()
    _, at_mob, _, book = m.prior_weights[D60]
    share = at_mob / (at_mob + book)  # the weight of the other segment at the MOB against the whole book
    np.testing.assert_allclose(m.transition_matrix[0, 0, D60, [CUR, D90]], [0.5 * (1 - share), share + 0.5 * (1 - share)])
    np.testing.assert_allclose(m.transition_matrix[0, 1, D60, [CUR, D90]], [share + 0.5 * (1 - share), 0.5 * (1 - share)])
    # prior_stay 5: each of those priors rests on one loan (the whole book's part on two), so it is
    # (L * that mix + 5 * stay) / (L + 5), L = share * 1 + (1 - share) * 2 loans.
    m, _, _ = model(df, estimator="bayes", weighting="count", prior_stay=5.0)
    _, at_mob, _, book = m.prior_weights[D60]
    share = at_mob / (at_mob + book)
    behind = share + 2 * (1 - share)
    np.testing.assert_allclose(m.transition_matrix[0, 0, D60, [D60, D90]],
                               [5 / (behind + 5), behind * (share + 0.5 * (1 - share)) / (behind + 5)])


def test_bayes_tail_keeps_a_path_to_loss():
    # Losses happen only at the early steps; the last estimated step of A has no write-off; the tail still
    # reaches WRITEOFF from DPD90+ because the row is shrunk toward the segment's other MOBs.
    df = frame(
        loan("a1", "2024-01", "A", [("DPD90+", 100), ("WRITEOFF", 100)])
        + loan("a2", "2024-01", "A", [("DPD90+", 100), ("WRITEOFF", 100)])
        + loan("a3", "2024-01", "A", [("CURRENT", 100), ("CURRENT", 100), ("DPD90+", 100), ("DPD90+", 100)])
    )
    spec, _, _ = model(df, weighting="count")
    bayes, _, _ = model(df, weighting="count", estimator="bayes", prior_strength=1.0)
    assert spec.transition_matrix[0, -1, D90, WO] == 0  # the specified tail: DPD90+ stays for ever
    assert bayes.transition_matrix[0, -1, D90, WO] > 0


def test_calendar_weights_by_hand():
    # Cohorts 2024-01 and 2024-03 observed to 2024-04: step m of cohort c is reported in month c + m + 1.
    df = frame(
        loan("x", "2024-01", "A", [("CURRENT", 100)] * 4) + loan("y", "2024-03", "A", [("CURRENT", 100)] * 2)
    )
    config = cfg(forecast={"max_mob": 3})
    stats = aggregate_panel(validate_panel(df, config), config)
    assert calendar_weights(stats, 0.0, 0) is None
    # Last reporting month 2024-04. Cohort 2024-01: steps 0, 1, 2 reported 02, 03, 04 (3, 2, 1... back 2, 1, 0).
    w = calendar_weights(stats, 1.0, 0)
    np.testing.assert_allclose(w[0], [0.25, 0.5, 1.0])
    np.testing.assert_allclose(w[1, 0], 1.0)  # cohort 2024-03 step 0: reported 04
    np.testing.assert_allclose(calendar_weights(stats, 0.0, 2)[0], [0.0, 1.0, 1.0])
    np.testing.assert_allclose(calendar_weights(stats, 2.0, 1)[0], [0.0, 0.0, 1.0])


def test_steps_after_the_newest_move_weigh_at_most_one():
    """A write-off row reports no move out of a live state: its month is after the newest such move. It weighed
    0.5 ** (negative / half_life): inf for a half-life of 0.02 months (0 * inf = NaN in the sums, then an
    IndexError in the intervals). Every weight is in [0, 1], and a run with such a half-life goes through."""
    df = frame(loan("w", "2024-01", "A", [("DPD90+", 100), ("WRITEOFF", 100), ("WRITEOFF", 100)])
               + loan("c", "2024-01", "A", [("CURRENT", 100), ("CURRENT", 100)]))
    config = cfg(forecast={"max_mob": 3})
    stats = aggregate_panel(validate_panel(df, config), config)
    live = ~np.isin(stats.states, config.buckets.absorbing)
    for half_life in (0.02, 1.0):
        w = calendar_weights(stats, half_life, 0, live)
        assert np.isfinite(w).all() and (w >= 0).all() and (w <= 1).all(), (half_life, w)
    result = pyxl_del.run(df, Config().with_overrides(forecast={"max_mob": 3}, transitions={"half_life": 0.02}))
    assert np.isfinite(result.transition_matrix).all()


def test_half_life_weights_the_rows_by_reporting_month():
    # Step 0 of CURRENT: cohort 01 (reported 02, back 1) rolls; cohort 02 (reported 03, back 0) stays.
    df = frame(
        loan("a", "2024-01", "A", [("CURRENT", 100), ("DPD1+", 100), ("DPD1+", 100)])
        + loan("b", "2024-02", "A", [("CURRENT", 100), ("CURRENT", 100)])
    )
    flat, _, _ = model(df, weighting="count")
    np.testing.assert_allclose(flat.transition_matrix[0, 0, CUR, [CUR, D1]], [0.5, 0.5])
    halved, _, _ = model(df, weighting="count", half_life=1.0)
    # weights 1/2 (roll) and 1 (stay): 2/3 stay, 1/3 roll; the evidence is 1.5 loans.
    np.testing.assert_allclose(halved.transition_matrix[0, 0, CUR, [CUR, D1]], [2 / 3, 1 / 3])
    np.testing.assert_allclose(halved.concentration[0, 0, CUR], 1.5)
    assert halved.n_obs[0, 0, CUR] == 2  # loans observed stay loans
    windowed, _, _ = model(df, weighting="count", window=1)
    np.testing.assert_allclose(windowed.transition_matrix[0, 0, CUR, [CUR, D1]], [1.0, 0.0])


def test_calendar_counts_the_months_that_report_transitions():
    """Two eras in one panel: cohort 2020-01 (moves reported 2020-02, 2020-03) and, years later, cohort 2024-03,
    seen at MOB 0 only (and a write-off row that reports no move out of a live state). Months back count from
    the newest move (2020-03), and the window holds the last months that report moves: a calendar window of the
    last month (2024-03) would hold none, and no chain could be estimated at the new era's first month."""
    df = frame(loan("a", "2020-01", "A", [("CURRENT", 100), ("DPD1+", 100), ("CURRENT", 100)])
               + loan("b", "2024-03", "A", [("CURRENT", 100)])
               + loan("c", "2024-02", "A", [("WRITEOFF", 100), ("WRITEOFF", 100)]))
    config = cfg(forecast={"max_mob": 3})
    stats = aggregate_panel(validate_panel(df, config), config)
    live = ~np.isin(stats.states, config.buckets.absorbing)
    a = stats.cohort_labels.index("2020-01")
    np.testing.assert_allclose(calendar_weights(stats, 1.0, 0, live)[a, :2], [0.5, 1.0])
    np.testing.assert_allclose(calendar_weights(stats, 0.0, 1, live)[a, :2], [0.0, 1.0])
    one, _, _ = model(df, window=1, weighting="count", estimator="specified")
    np.testing.assert_allclose(one.transition_matrix[0, 1, D1, [CUR, D1]], [1.0, 0.0])  # the cure of 2020-03


def test_tail_window_pools_the_last_steps_by_evidence():
    # CURRENT at step 0: 2 loans, 1 rolls; at step 1: 1 loan, stays. tail_window 2 -> step 2 = (1 + 1, 1) / 3.
    df = frame(
        loan("a", "2024-01", "A", [("CURRENT", 100), ("CURRENT", 100), ("CURRENT", 100)])
        + loan("b", "2024-01", "A", [("CURRENT", 100), ("DPD1+", 100)])
    )
    one, _, _ = model(df, weighting="count")
    np.testing.assert_array_equal(one.transition_matrix[0, 2], one.transition_matrix[0, 1])
    two, _, _ = model(df, weighting="count", tail_window=2)
    np.testing.assert_allclose(two.transition_matrix[0, 2, CUR, [CUR, D1]], [2 / 3, 1 / 3])
    assert two.origin[0, 2, CUR] == TAIL_POOLED
    np.testing.assert_allclose(two.concentration[0, 2, CUR], 3.0)


def test_auto_tail_pools_each_row_back_to_min_count_loans():
    """Steps 0 and 1 estimated, step 2 is the tail. CURRENT: 4 loans at step 0 (2 roll), 2 at step 1 (both stay);
    DPD1+: none at step 0, 2 at step 1 (both cure). With min_count 3 ("auto"): CURRENT's last step holds 2 loans,
    so it pools both steps by their loans, (4 x [1/2, 1/2] + 2 x [1, 0]) / 6 = [2/3, 1/3]; DPD1+ never reaches 3
    and pools every estimated step (its step-0 row rests on no loan: weight 0). tail_window 1 copies step 1."""
    rolled, stayed = [("CURRENT", 100), ("DPD1+", 100), ("CURRENT", 100)], [("CURRENT", 100)] * 3
    df = frame(loan("a", "2024-01", "A", rolled) + loan("b", "2024-01", "A", rolled)
               + loan("c", "2024-01", "A", stayed) + loan("d", "2024-01", "A", stayed))
    rules = {"weighting": "count", "estimator": "specified", "fallback": "none", "min_count": 3}
    auto, _, _ = model(df, tail_window="auto", **rules)
    np.testing.assert_allclose(auto.transition_matrix[0, 2, CUR, [CUR, D1]], [2 / 3, 1 / 3])
    np.testing.assert_allclose(auto.transition_matrix[0, 2, D1, [CUR, D1]], [1.0, 0.0])
    np.testing.assert_array_equal(auto.tail_steps[0, [CUR, D1]], [2, 2])
    assert auto.origin[0, 2, CUR] == TAIL_POOLED
    one, _, _ = model(df, tail_window=1, **rules)
    np.testing.assert_allclose(one.transition_matrix[0, 2, CUR, [CUR, D1]], [1.0, 0.0])
    assert one.origin[0, 2, CUR] == TAIL_COPY
    # Enough loans at the last step: "auto" is the last step alone.
    enough, _, _ = model(df, tail_window="auto", **(rules | {"min_count": 2}))
    np.testing.assert_array_equal(enough.transition_matrix[0, 2], one.transition_matrix[0, 2])


def test_thin_tail_warning_names_the_segment():
    df = simulate(CHAIN, segments=("A",), cohorts=4, loans=5, max_mob=6, seed=1)
    r = pyxl_del.run(df, cfg(transitions={"min_count": 30}, forecast={"max_mob": 6}))
    assert any("segment 'A': the tail rests on fewer than min_count=30" in w for w in r.warnings)
    r = pyxl_del.run(df, cfg(transitions={"min_count": 0}, forecast={"max_mob": 6}))
    assert not any("the tail rests" in w for w in r.warnings)


def test_bayes_run_info_names_the_strengths():
    df = simulate(CHAIN, segments=("A", "B"), cohorts=4, loans=50, max_mob=4, seed=2)
    r = pyxl_del.run(df, cfg(transitions={"estimator": "bayes"}, forecast={"max_mob": 4}))
    line = next(w for w in r.warnings if w.startswith("transitions: estimator \"bayes\""))
    assert "CURRENT" in line and "loans" in line
    assert set(r.transition_matrices["source"]) <= {"estimated", "fallback", "tail"}
    # A strength at the top of the search range is named as such, not as 10,000,000 loans of a 400-loan book.
    capped = pyxl_del.run(df, cfg(transitions={"estimator": "bayes", "prior_strength": 1e7}, forecast={"max_mob": 4}))
    line = next(w for w in capped.warnings if w.startswith("transitions: estimator \"bayes\""))
    assert "CURRENT at the search's cap" in line and "10,000,000" not in line


@pytest.mark.parametrize("key, value", [("estimator", "bayesian"), ("prior_strength", -1.0),
                                        ("prior_strength", "big"), ("half_life", -1.0), ("window", -2),
                                        ("tail_window", 0), ("window", 1.5),
                                        ("prior_stay", -1.0)])
def test_bad_values_name_the_key(key, value):
    with pytest.raises(ConfigError, match=f"transitions.*{key}|{key}"):
        config_from_dict({"transitions": {key: value}})


panels = st.lists(
    st.tuples(st.sampled_from(["A", "B"]), st.integers(0, 2),
              st.lists(st.tuples(st.sampled_from(list(cfg().buckets.order)), st.floats(0.01, 1e6)),
                       min_size=2, max_size=5)),
    min_size=1, max_size=20,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(panels, st.sampled_from(["ead", "count"]), st.sampled_from(["auto", 0.0, 5.0, 1e9]),
       st.sampled_from([0.0, 2.0]), st.integers(1, 3))
def test_bayes_rows_sum_to_one_absorbing_identity(loans, weighting, strength, half_life, tail_window):
    records = [(f"L{n}", f"2024-{c + 1:02d}", m, s, state, e)
               for n, (s, c, path) in enumerate(loans) for m, (state, e) in enumerate(path)]
    df = frame(records)
    if not any(st_ not in ("WRITEOFF", "PREPAY") for _, _, path in loans for st_, _ in path[:-1]):
        return
    try:
        m, _, _ = model(df, weighting=weighting, estimator="bayes", prior_strength=strength, half_life=half_life,
                        tail_window=tail_window)
    except PanelError as error:  # every live row lies after an absorbing one (validation drops those): nothing to fit
        assert "no loan is observed at two consecutive MOBs" in str(error)
        return
    p = m.transition_matrix
    assert (p >= 0).all()
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, atol=1e-9)
    np.testing.assert_array_equal(p[:, :, [WO, PP]], np.broadcast_to(np.eye(7)[[WO, PP]], p[:, :, [WO, PP]].shape))
    assert (m.concentration >= 0).all() and np.isfinite(m.concentration).all()


def test_bayes_auto_tail_reaches_loss_from_every_live_state():
    # B keeps 1 loan in 10 beside A: its late delinquent rows rest on a loan or two, or none, at the last step.
    # The data have write-offs (from DPD90+), so with the fitted prior every live state B uses reaches WRITEOFF in
    # the tail, where the specified tail leaves some state with no way out to loss.
    df = simulate(CHAIN, segments=("A", "B"), cohorts=12, loans=200, max_mob=10, seed=9)
    codes = pd.factorize(df["AGREEMENT_ID"])[0]
    df = df[(df["PRODUCT_TYPE"] == "A") | (codes % 10 == 0)]
    stats_used = None
    reach = {}
    for estimator in ("specified", "bayes"):
        m, stats, _ = model(df, max_mob=10, estimator=estimator, weighting="count")
        assert stats.trans_count[..., WO].sum() > 0
        stats_used = stats.trans_count.sum(axis=(1, 3)) > 0  # (S, K) states each segment was seen leaving
        reach[estimator] = np.linalg.matrix_power(m.transition_matrix[:, -1], 256)[..., WO]  # (S, K)
    live = stats_used & ~np.isin(np.arange(7), [WO, PP])
    assert (reach["bayes"][live] > 0).all()
    assert not (reach["specified"][live] > 0).all()


def test_balance_rows_keep_the_balance_kept():
    # Balance weighting: A's own CURRENT row is (90 + 90, 100) / 300 (sums to 0.933: amortisation left the book),
    # B's is (100 * 4) / 400 = 1. With a = 6 the row is the same mix of dollar roll rates: it sums to what the
    # mix keeps, (3 * 0.933 + 6 * 1) / 9, as the specified estimator's rows sum to their own.
    df = frame(
        loan("a1", "2024-01", "A", [("CURRENT", 100), ("DPD1+", 100)])
        + loan("a2", "2024-01", "A", [("CURRENT", 100), ("CURRENT", 90)])
        + loan("a3", "2024-01", "A", [("CURRENT", 100), ("CURRENT", 90)])
        + [row for k in range(4) for row in loan(f"b{k}", "2024-01", "B", [("CURRENT", 100), ("CURRENT", 100)])]
    )
    m, _, _ = model(df, estimator="bayes", prior_strength=6.0, weighting="balance")
    np.testing.assert_allclose(m.transition_matrix[0, 0, CUR, [CUR, D1]], [(1.8 + 6) / 9, 1 / 9])
    np.testing.assert_allclose(m.transition_matrix[0, 0, CUR].sum(), (3 * 280 / 300 + 6) / 9)
    spec, _, _ = model(df, weighting="balance")
    np.testing.assert_allclose(spec.transition_matrix[0, 0, CUR].sum(), 280 / 300)
