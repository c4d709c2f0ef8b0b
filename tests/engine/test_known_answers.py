"""Known answers worked by hand on tiny panels: weightings, tail, fallback, calibration, forecast, portfolio."""

import numpy as np
import pytest
from _panels import cfg, frame, loan

import pyxl_del
from pyxl_del.engine.calibration import apply_factors

CUR, D1, D30, D60, D90, WO, PP = range(7)


def four_loans():
    return frame(
        loan("L1", "2024-01", "A", [("CURRENT", 100), ("CURRENT", 90)])
        + loan("L2", "2024-01", "A", [("CURRENT", 100), ("DPD1+", 100)])
        + loan("L3", "2024-01", "A", [("CURRENT", 200), ("CURRENT", 180)])
        + loan("L4", "2024-01", "A", [("DPD1+", 50), ("DPD30+", 50)])
    )


def run(df, **sections):
    base = {"transitions": {"min_count": 1, "fallback": "none"}, "calibration": {"mode": "none"},
            "forecast": {"max_mob": 2}}
    for key, values in sections.items():
        base.setdefault(key, {}).update(values)
    return pyxl_del.run(df, cfg(**base))


@pytest.mark.parametrize("weighting, cur_row, d1_row", [
    # count: 3 loans leave CURRENT, 2 stay, 1 rolls.
    ("count", {CUR: 2 / 3, D1: 1 / 3}, {D30: 1.0}),
    # ead: weights are EAD at MOB 0: stay (100 + 200) / 400, roll 100 / 400.
    ("ead", {CUR: 0.75, D1: 0.25}, {D30: 1.0}),
    # balance: EAD arriving at MOB 1 over EAD leaving at MOB 0: (90 + 180) / 400, 100 / 400; sum 0.925.
    ("balance", {CUR: 0.675, D1: 0.25}, {D30: 1.0}),
])
def test_weightings(weighting, cur_row, d1_row):
    r = run(four_loans(), transitions={"weighting": weighting})
    p = r.transition_matrix[0, 0]
    for row, expected in ((CUR, cur_row), (D1, d1_row)):
        want = np.zeros(7)
        for j, v in expected.items():
            want[j] = v
        np.testing.assert_allclose(p[row], want, atol=1e-12)
    assert r.transitions.n_obs[0, 0, CUR] == 3


def test_absorbing_rows_identity_and_unobserved_rows_stay():
    r = run(four_loans())
    p = r.transition_matrix[0, 0]
    np.testing.assert_array_equal(p[[WO, PP]], np.eye(7)[[WO, PP]])
    # DPD30+ was never observed leaving; with fallback "none" it stays put (reported as a fallback row).
    np.testing.assert_array_equal(p[D30], np.eye(7)[D30])
    tm = r.transition_matrices
    row = tm[(tm["mob"] == 0) & (tm["from_state"] == "DPD30+") & (tm["to_state"] == "DPD30+")]
    assert row["source"].item() == "fallback"


def test_tail_reuses_last_estimated_matrix():
    r = run(four_loans())
    # Only step 0 -> 1 has data; step 1 -> 2 is the tail.
    np.testing.assert_array_equal(r.transition_matrix[0, 1], r.transition_matrix[0, 0])
    tm = r.transition_matrices
    assert set(tm.loc[tm["mob"] == 1, "source"]) == {"tail"}
    assert set(tm.loc[(tm["mob"] == 0) & tm["from_state"].isin(["CURRENT", "DPD1+"]), "source"]) == {"estimated"}


def test_forecast_continues_from_last_actual_distribution():
    r = run(four_loans())
    # Actual at MOB 1: DPD30+ 50 of EAD0 450.
    d = r.wide("A", "DEL30")
    assert d.loc["2024-01", 1] == pytest.approx(50 / 450)
    # MOB 2 = v1 @ P (tail): v1 = CUR 270, DPD1+ 100, DPD30+ 50 -> DPD30+ 100 + 50 (stays), CUR 202.5.
    assert d.loc["2024-01", 2] == pytest.approx(150 / 450)
    flags = r.flags_wide("A", "DEL30")
    assert list(flags.loc["2024-01"]) == ["ACTUAL", "ACTUAL", "FORECAST"]
    assert np.isnan(r.wide("A", "DEL30", "actual").loc["2024-01", 2])
    assert np.isnan(r.wide("A", "DEL30", "forecast").loc["2024-01", 1])
    # DEL60 and DEL90 use their own bad buckets: nothing is 60+ yet.
    assert r.wide("A", "DEL60").loc["2024-01", 2] == 0


def calibration_panel():
    # Pooled DPD1+ row (ead): to DPD30+ 100 / 400 = 0.25, to CURRENT 0.75.
    # Cohort X: expected DEL30 at MOB 1 = 100 * 0.25 / 200 = 0.125, actual 100 / 200 = 0.5.
    # Cohort Y: expected 300 * 0.25 / 400 = 0.1875, actual 0.   k = 0.25 / 0.15625 = 1.6.
    return frame(
        loan("X1", "2024-01", "A", [("DPD1+", 100), ("DPD30+", 100)])
        + loan("X2", "2024-01", "A", [("CURRENT", 100), ("CURRENT", 100)])
        + loan("Y1", "2024-02", "A", [("DPD1+", 300), ("CURRENT", 300)])
        + loan("Y2", "2024-02", "A", [("CURRENT", 100), ("CURRENT", 100)])
    )


def test_stepwise_factor_by_hand():
    r = run(calibration_panel(), calibration={"mode": "stepwise"})
    f = r.calibration_factors
    assert list(f.columns[:6]) == ["segment", "mob", "k", "n_cohorts_used", "expected_mean", "actual_mean"]
    row = f[(f["segment"] == "A") & (f["mob"] == 1)].iloc[0]
    assert row["k"] == pytest.approx(1.6)
    assert row["n_cohorts_used"] == 2
    assert row["expected_mean"] == pytest.approx(0.15625)
    assert row["actual_mean"] == pytest.approx(0.25)
    # Applied: DPD30+ 0.25 * 1.6 = 0.4; CURRENT absorbs the change: 0.75 -> 0.6; row still sums to 1.
    p = r.transition_matrix[0, 0]
    assert p[D1, D30] == pytest.approx(0.4)
    assert p[D1, CUR] == pytest.approx(0.6)
    assert p[CUR].sum() == pytest.approx(1.0)
    np.testing.assert_allclose(r.transitions.transition_matrix[0, 0, D1, [CUR, D30]], [0.75, 0.25])


def test_k_is_clipped():
    r = run(calibration_panel(), calibration={"mode": "stepwise", "k_clip": [0.5, 1.5]})
    row = r.calibration_factors.query("mob == 1").iloc[0]
    assert row["k"] == pytest.approx(1.5)
    assert row["k_unclipped"] == pytest.approx(1.6)
    assert any("clipped" in w for w in r.warnings)


def test_renormalisation_when_non_bad_cannot_absorb():
    bad = np.isin(range(7), [D30, D60])
    absorbing = np.isin(range(7), [WO, PP])
    p = np.zeros((1, 1, 7, 7))
    p[0, 0] = np.eye(7)
    p[0, 0, D1] = [0.1, 0.3, 0.4, 0.2, 0, 0, 0]
    p[0, 0, CUR] = [0.5, 0.2, 0.1, 0, 0, 0, 0.2]
    k = np.array([[1.0, 2.0]])
    out = apply_factors(p, k, bad, absorbing)[0, 0]
    # DPD1+ row: bad 0.8 + 0.4 = 1.2 > 1, so bad entries are rescaled to fill the row; the rest become 0.
    np.testing.assert_allclose(out[D1], [0, 0, 2 / 3, 1 / 3, 0, 0, 0])
    # CURRENT row: bad 0.2, the non-bad 0.9 shrink to 0.8 proportionally.
    np.testing.assert_allclose(out[CUR], [0.5 * 0.8 / 0.9, 0.2 * 0.8 / 0.9, 0.2, 0, 0, 0, 0.2 * 0.8 / 0.9])
    np.testing.assert_array_equal(out[[WO, PP]], np.eye(7)[[WO, PP]])


def test_k_equal_one_changes_nothing():
    bad = np.isin(range(7), [D30, D60, D90, WO])
    rng = np.random.default_rng(1)
    p = rng.random((2, 3, 7, 7))
    p /= p.sum(axis=-1, keepdims=True)
    out = apply_factors(p, np.ones((2, 4)), bad, np.zeros(7, bool))
    np.testing.assert_allclose(out, p, atol=1e-15)


def test_fallback_pooled_then_nearest_mob():
    # Segment A has one loan leaving CURRENT at MOB 0 (below min_count 2); B has two.
    df = frame(
        loan("a1", "2024-01", "A", [("CURRENT", 100), ("DPD1+", 100), ("DPD1+", 100)])
        + loan("b1", "2024-01", "B", [("CURRENT", 100), ("CURRENT", 100), ("CURRENT", 100)])
        + loan("b2", "2024-01", "B", [("CURRENT", 300), ("CURRENT", 300), ("CURRENT", 300)])
    )
    r = run(df, transitions={"min_count": 2, "fallback": "pooled", "weighting": "count"})
    a = r.segments.index("A")
    # Pooled CURRENT row at MOB 0: 2 of 3 stay, 1 rolls.
    np.testing.assert_allclose(r.transition_matrix[a, 0, CUR, [CUR, D1]], [2 / 3, 1 / 3])
    assert r.transitions.source[a, 0, CUR] == 1  # fallback
    # A's DPD1+ row at MOB 1 has 1 loan, pooled too: below min_count everywhere -> own thin data.
    np.testing.assert_allclose(r.transition_matrix[a, 1, D1, D1], 1.0)
    assert any("segment 'A'" in w for w in r.warnings)


def test_nearest_mob_fallback():
    # A's CURRENT row: 2 loans at MOB 0 (enough), 1 at MOB 1 (too few) and pooled also 1 -> nearest MOB 0.
    df = frame(
        loan("a1", "2024-01", "A", [("CURRENT", 100), ("CURRENT", 100), ("DPD1+", 100)])
        + loan("a2", "2024-01", "A", [("CURRENT", 100), ("DPD1+", 100), ("DPD30+", 100)])
    )
    r = run(df, transitions={"min_count": 2, "fallback": "pooled", "weighting": "count"})
    np.testing.assert_allclose(r.transition_matrix[0, 1, CUR], r.transition_matrix[0, 0, CUR])
    assert r.transitions.source[0, 1, CUR] == 1


def test_portfolio_mean_and_flags():
    df = frame(
        # Segment A: cohort 2024-01 observed to MOB 1; segment B: same cohort only at MOB 0.
        loan("a1", "2024-01", "A", [("CURRENT", 100), ("DPD30+", 100)])
        + loan("a2", "2024-01", "A", [("CURRENT", 100), ("CURRENT", 100)])
        + loan("b1", "2024-01", "B", [("CURRENT", 100)])
        # Cohort 2024-02 only in A, observed to MOB 1.
        + loan("a3", "2024-02", "A", [("CURRENT", 100), ("CURRENT", 100)])
    )
    r = run(df)
    flags = r.flags_wide("Portfolio", "DEL30")
    assert list(flags.loc["2024-01"]) == ["ACTUAL", "MIXED", "FORECAST"]
    assert list(flags.loc["2024-02"]) == ["ACTUAL", "ACTUAL", "FORECAST"]
    port = r.wide("Portfolio", "DEL30")
    a, b = r.wide("A", "DEL30"), r.wide("B", "DEL30")
    assert port.loc["2024-01", 1] == pytest.approx((a.loc["2024-01", 1] + b.loc["2024-01", 1]) / 2)
    assert port.loc["2024-02", 1] == pytest.approx(a.loc["2024-02", 1])
    assert "2024-02" not in b.index
    weighted = run(df, portfolio={"aggregation": "ead_weighted"}).wide("Portfolio", "DEL30")
    # EAD0: A 200, B 100 for cohort 2024-01.
    assert weighted.loc["2024-01", 1] == pytest.approx((200 * a.loc["2024-01", 1] + 100 * b.loc["2024-01", 1]) / 300)


def test_del_long_covers_every_wide_cell():
    r = run(calibration_panel())
    long = r.del_long
    assert list(long.columns) == ["segment", "del_type", "cohort", "mob", "actual", "forecast", "mixed", "flag",
                                  "p10", "p50", "p90"]
    n_cells = sum(r.wide(s, d).size for s in r.sheet_segments for d in ("DEL30", "DEL60", "DEL90"))
    assert len(long) == n_cells
    assert set(long["segment"]) == {"Portfolio", "A"}
    cell = long[(long.segment == "A") & (long.del_type == "DEL30") & (long.cohort == "2024-01") & (long.mob == 1)]
    assert cell["actual"].item() == pytest.approx(0.5) and cell["flag"].item() == "ACTUAL"
