"""Risk analytics (issue #5): known answers, invariants, alerts, sheets and the CLI."""

from __future__ import annotations

import re

import numpy as np
import openpyxl
import pandas as pd
import pytest

import pyxl_del
from pyxl_del import Config, ConfigError
from pyxl_del.cli import main
from pyxl_del.datasets.sample import generate_sample, simulate_panel
from pyxl_del.decision.dashboard import Dashboard
from pyxl_del.engine.config import ScenarioSpec
from pyxl_del.engine.errors import runs_text
from pyxl_del.excel.render import write_workbook
from pyxl_del.risk.alerts import evaluate_alerts, fires_at
from pyxl_del.risk.analysis import RiskAnalysis
from pyxl_del.risk.capital import irb_correlation, irb_retail_capital, vasicek_quantile
from pyxl_del.risk.concentration import hhi, top_share
from pyxl_del.risk.expected_loss import expected_loss
from pyxl_del.risk.projection import (
    ALL,
    absorption_probabilities,
    project,
    severity_order,
    stress_matrices,
)
from pyxl_del.risk.stress import (
    PREDEFINED,
    read_scenarios_sheet,
    run_stress,
    scenario_set,
    scenarios_from_rows,
)
from pyxl_del.risk.var import segment_chain, simulate_credit_loss
from pyxl_del.sheets.risk import dashboard_sheets, stress_sheets
from tests._panels import CHAIN

STATES = list(Config().buckets.order)
CUR, D1, D30, D60, D90, WO, PRE = (STATES.index(s) for s in
                                   ("CURRENT", "DPD1+", "DPD30+", "DPD60+", "DPD90+", "WRITEOFF", "PREPAY"))


@pytest.fixture(scope="module")
def analysis(sample_result) -> RiskAnalysis:
    return RiskAnalysis.of(sample_result)


# ------------------------------------------------------------------------------------ credit-cycle shift


def test_z_zero_returns_the_base_matrix(sample_result):
    base = sample_result.transition_matrix
    assert np.array_equal(stress_matrices(base, 0.0, 0.1), base)
    assert np.allclose(stress_matrices(base, 1e-300, 0.1), base, atol=1e-12)


@pytest.mark.parametrize("anchor", ["median", "mean"])
def test_stressed_rows_stay_stochastic_and_absorbing(sample_result, anchor):
    base = sample_result.transition_matrix
    z = np.linspace(-3, 3, base.shape[1])  # one Z per MOB step, broadcast over segments
    stressed = stress_matrices(base, z, 0.2, anchor=anchor)
    assert stressed.shape == base.shape
    assert (stressed >= 0).all()
    assert np.allclose(stressed.sum(axis=-1), base.sum(axis=-1), atol=1e-12)
    for a in (WO, PRE):
        assert np.array_equal(stressed[..., a, :], base[..., a, :])
    # A destination the base matrix never reaches stays unreachable.
    assert (stressed[base == 0] == 0).all()


def test_roll_forward_rises_monotonically_with_adverse_z(sample_result):
    zs = np.linspace(2.5, -2.5, 11)  # from benign to adverse
    stressed = stress_matrices(sample_result.transition_matrix[None], zs[:, None, None], 0.1)  # (Z, S, M, K, K)
    into_90 = stressed[..., D60, D90]  # DPD60+ -> DPD90+
    worse_than_current = stressed[..., CUR, [D1, D30, D60, D90, WO]].sum(axis=-1)
    for rate in (into_90, worse_than_current):
        live = rate.max(axis=0) > 0
        assert (np.diff(rate, axis=0)[:, live] > 0).all()
    assert (np.diff(stressed[..., CUR, PRE], axis=0) <= 0).all()  # prepayments fall in a downturn


def test_severity_order_ranks_prepay_best_and_writeoff_worst():
    assert [STATES[i] for i in severity_order(Config())] == \
        ["PREPAY", "CURRENT", "DPD1+", "DPD30+", "DPD60+", "DPD90+", "WRITEOFF"]


def test_mean_anchor_averages_to_the_base_row():
    row = np.zeros((1, len(STATES), len(STATES)))
    row[0, CUR, [CUR, D1, WO]] = 0.90, 0.07, 0.03
    nodes, weights = np.polynomial.hermite_e.hermegauss(60)
    stressed = stress_matrices(row, nodes[:, None], 0.15, anchor="mean")[:, 0, CUR]
    assert np.allclose(weights @ stressed / weights.sum(), row[0, CUR], atol=1e-10)


# ------------------------------------------------------------------------------------ Vasicek and IRB


def test_vasicek_known_answer():
    assert vasicek_quantile(0.03, 0.10, 0.95) == pytest.approx(0.07575, abs=5e-6)


def _one_step_pool(pd_: float) -> tuple[np.ndarray, np.ndarray]:
    matrix = np.eye(len(STATES))
    matrix[CUR, CUR], matrix[CUR, WO] = 1 - pd_, pd_
    start = np.zeros((1, len(STATES)))
    start[0, CUR] = 1.0
    return matrix[None, None], start


@pytest.mark.parametrize("n_loans", [100_000, None])
def test_simulated_var_matches_vasicek_for_a_large_homogeneous_pool(n_loans):
    matrices, start = _one_step_pool(0.03)
    sim = simulate_credit_loss(matrices, start, 1.0, 0.10, n_paths=100_000, seed=11, n_loans=n_loans)
    for q in (0.95, 0.99):
        assert sim.var(q) == pytest.approx(vasicek_quantile(0.03, 0.10, q), rel=0.02)
    assert sim.total.mean() == pytest.approx(0.03, rel=0.01)  # the mean anchor: the base PD is the average


def test_simulation_is_seeded_and_its_standard_error_shrinks():
    matrices, start = _one_step_pool(0.03)
    a = simulate_credit_loss(matrices, start, 0.5, 0.10, n_paths=4_000, seed=3)
    b = simulate_credit_loss(matrices, start, 0.5, 0.10, n_paths=4_000, seed=3)
    assert np.array_equal(a.losses, b.losses)
    conv = a.convergence((0.95,))
    se = conv[conv["measure"] == "VaR"]["std_error"].to_numpy()
    assert se[-1] < se[0] / 2  # 16x the paths: about a quarter of the standard error
    assert set(a.summary((0.95, 0.99))["measure"]) == {"mean", "VaR", "ES", "UL"}


def test_irb_known_answers():
    k, rw = irb_retail_capital(0.01, 0.45, kind="mortgage")
    assert rw == pytest.approx(0.5640, abs=5e-5)
    assert k == pytest.approx(rw / 12.5)
    assert irb_correlation(0.05, "revolving") == 0.04
    assert irb_correlation(1e-9) == pytest.approx(0.16) and irb_correlation(1.0) == pytest.approx(0.03)
    assert irb_retail_capital(1.0, 0.45)[0] == 0.0  # defaulted: no unexpected loss
    assert np.allclose(irb_retail_capital(np.array([0.01, 0.01]), 0.45, kind="mortgage")[1], 0.5640, atol=5e-5)


# ------------------------------------------------------------------------------------ concentration


@pytest.mark.parametrize("n", [1, 2, 5, 40])
def test_hhi_of_equal_shares(n):
    assert hhi(np.full(n, 7.0)) == pytest.approx(1 / n)
    assert top_share(np.full(n, 7.0), 1) == pytest.approx(1 / n)


def test_concentration_of_the_sample(analysis, sample_result):
    conc = analysis.concentration
    shares = conc.current[conc.current["by"] == "segment"]["share"].to_numpy()
    assert shares.sum() == pytest.approx(1.0)
    assert conc.value("segment", "hhi") == pytest.approx((shares**2).sum())
    assert np.allclose(conc.mix.sum(axis=1), 1.0)
    assert conc.trend[conc.trend["by"] == "segment"]["month"].iloc[-1] == "2025-12"


# ------------------------------------------------------------------------------------ expected loss


def test_baseline_projection_is_the_report_forecast(sample_result):
    projection = project(sample_result)
    assert np.allclose(projection.by_mob(), sample_result.ead_path, rtol=1e-12, atol=0)


def test_fundamental_matrix_matches_a_long_roll():
    absorbing = np.isin(STATES, ["WRITEOFF", "PREPAY"])
    b = absorption_probabilities(CHAIN, absorbing)
    long_run = np.linalg.matrix_power(CHAIN, 2000)[~absorbing][:, absorbing]
    assert np.allclose(b, long_run, atol=1e-10)
    trapped = CHAIN.copy()
    trapped[D60] = np.eye(len(STATES))[D60]  # a "stay" row: never absorbed
    b = absorption_probabilities(trapped, absorbing)
    assert np.all(np.isfinite(b)) and b[list(np.flatnonzero(~absorbing)).index(D60)].sum() == 0


def test_el_known_answer_by_explicit_rolls():
    """Each cohort rolled by hand through the fitted step matrices, the last one repeated past max_mob."""
    cfg = Config().with_overrides(forecast={"max_mob": 4}, risk={"lgd": 0.5})
    cohorts = ["2024-01", "2024-02", "2024-03"]
    frame = simulate_panel(CHAIN, cohorts=cohorts, as_of="2024-03", loans_per_cohort=2000, segments=["A"], seed=5,
                           config=cfg)
    result = pyxl_del.run(frame, cfg)
    el = expected_loss(result, cfg)
    steps = result.transition_matrix[0]
    default = [D90, WO]
    for cohort in cohorts:
        row = el[(el["segment"] == "A") & (el["cohort"] == cohort)].iloc[0]
        last = int(row["last_mob"])
        v = result.ead_path[0, cohorts.index(cohort), last]
        performing = v * ~np.isin(STATES, ["DPD90+", "WRITEOFF", "PREPAY"])
        rolled, trapped = v.copy(), performing.copy()
        for t in range(3000):
            step = steps[min(last + t, len(steps) - 1)]
            rolled = rolled @ step
            if t < 12:
                absorbing_default = step.copy()
                absorbing_default[default] = np.eye(len(STATES))[default]
                trapped = trapped @ absorbing_default
            if t == 11:
                assert row["writeoff_12m"] == pytest.approx(rolled[WO] - v[WO], rel=1e-9)
        assert row["writeoff_lifetime"] == pytest.approx(rolled[WO] - v[WO], rel=1e-9)
        assert row["el_lifetime"] == pytest.approx(0.5 * (rolled[WO] - v[WO]), rel=1e-9)
        assert row["pd_12m"] == pytest.approx(trapped[default].sum() / performing.sum(), rel=1e-9)


def test_el_totals_add_up(analysis):
    el = analysis.el
    cells = el[el["cohort"] != ALL]
    portfolio = el[(el["segment"] == "Portfolio") & (el["cohort"] == ALL)].iloc[0]
    for col in ("ead", "el_12m", "el_lifetime", "writeoff_12m"):
        assert cells[col].sum() == pytest.approx(portfolio[col])
    assert (el["el_lifetime"] >= el["el_12m"] - 1e-6).all() and (el["el_12m"] >= 0).all()
    assert 0 < portfolio["pd_12m"] < 1


def test_segment_chain_reproduces_the_cohort_projection(sample_result):
    months = 12
    projection = project(sample_result, months=months)
    matrices, start = segment_chain(projection, months)
    v = start
    for t in range(months):
        v = np.einsum("sk,skj->sj", v, matrices[:, t])
    assert np.allclose(v, projection.at(months).sum(axis=1), rtol=1e-10)
    # With no systematic risk the simulated loss is the 12-month expected loss, on every path.
    sim = simulate_credit_loss(matrices, start, 1.0, 1e-16, n_paths=50, seed=0)
    cfg = sample_result.config.with_overrides(risk={"lgd": 1.0})
    el = expected_loss(sample_result, cfg)
    el_12m = el[el["cohort"] == ALL].set_index("segment").loc[list(sample_result.segments), "el_12m"].to_numpy()
    assert np.allclose(sim.losses, el_12m, rtol=1e-6)


def test_credit_var_on_the_sample(analysis):
    sim = analysis.var
    assert sim.losses.shape == (10_000, 3)
    assert sim.var(0.99) > sim.var(0.95) > sim.total.mean()
    assert sim.es(0.99) >= sim.var(0.99)


def test_capital_and_npl(analysis):
    cap = analysis.capital.set_index("segment")
    assert list(cap.index) == ["CASH LOAN", "CD", "TW/Moto", "Portfolio"]
    assert (cap["pd_used"] >= Config().risk.pd_floor).all()
    assert cap.loc["Portfolio", "capital"] == pytest.approx(cap["capital"].iloc[:-1].sum())
    assert ((0 <= cap["npl_ratio"]) & (cap["npl_ratio"] < 1)).all()
    k, rw = irb_retail_capital(cap.loc["CD", "pd_used"], cap.loc["CD", "lgd"])
    assert cap.loc["CD", "risk_weight"] == pytest.approx(rw)


# ------------------------------------------------------------------------------------ stress


def test_stress_baseline_is_the_report_and_severity_ranks(analysis, sample_result):
    stress = analysis.stress
    summary = stress.summary.set_index("scenario")
    assert list(summary.index) == [s.name for s in PREDEFINED]
    base_curve = sample_result.wide("Portfolio", "DEL30").mean(axis=0)
    assert summary.loc["baseline", "DEL30 MOB 12"] == pytest.approx(base_curve[12])
    el = summary["el_lifetime"]
    assert el["baseline"] < el["mild_recession"] < el["severe_recession"]
    assert summary.loc["severe_recession", "rank"] == 1 and summary.loc["baseline", "rank"] == 4
    assert summary.loc["baseline", "el_lifetime"] == pytest.approx(
        analysis.el.set_index(["segment", "cohort"]).loc[("Portfolio", ALL), "el_lifetime"])


def test_a_benign_scenario_lowers_losses(sample_result):
    spec = ScenarioSpec(name="boom", z=1.0)
    stress = run_stress(sample_result, scenarios=[PREDEFINED[0], spec])
    el = stress.summary.set_index("scenario")["el_lifetime"]
    assert el["boom"] < el["baseline"]


def test_a_last_adverse_z_counts_to_the_end(sample_result):
    """A path's last Z persists: z = [-1] ran at Z = -1 for the whole lifetime and said "1 month with Z < 0"."""
    specs = [ScenarioSpec(name="persist", z=-1.0), ScenarioSpec(name="back", z=[-1.0, -0.5, 0.0]),
             ScenarioSpec(name="boom", z=[1.0, -0.5])]
    months = run_stress(sample_result, scenarios=specs).summary.set_index("scenario")["adverse_months"]
    assert months.to_dict() == {"persist": "all (the last Z persists)", "back": 2, "boom": "all (the last Z persists)"}


def test_a_var_level_resting_on_few_paths_is_named(sample_result, capsys):
    """confidence 0.999999 over 2,000 paths was "100.0%", the worst path, with no word; 99.9% of 100 paths an ES of
    one path."""
    cfg = sample_result.config.with_overrides(risk={"confidence": [0.95, 0.999], "n_paths": 2000})
    analysis = RiskAnalysis.of(sample_result, cfg)
    assert analysis.warnings("var") == [
        "Credit VaR and ES at 99.9% rest on the worst 2 of 2,000 simulated paths: their standard errors say how "
        "little that is; raise [risk] n_paths to 20,000 or more for this level."]
    assert not RiskAnalysis.of(sample_result).warnings("var")  # 95% and 99% of 10,000 paths
    sheet = next(layout for layout in dashboard_sheets(sample_result, cfg) if layout.name == "Credit VaR")
    assert any("rest on the worst 2 of 2,000" in str(v) for b in sheet.blocks for v in b.values.ravel())


def test_key_mobs_beyond_max_mob_are_named(sample_result):
    """key_mobs = [6, 100] dropped MOB 100 from the stress table without a word."""
    cfg = sample_result.config.with_overrides(risk={"key_mobs": [6, 100], "n_paths": 500})
    note = RiskAnalysis.of(sample_result, cfg).stress_note
    assert note == "[risk] key_mobs 100 is beyond [forecast] max_mob 36: the DEL rows show MOB 6 only.", note
    assert RiskAnalysis.of(sample_result).stress_note is None
    short = sample_result.config.with_overrides(forecast={"max_mob": 24}, risk={"n_paths": 500})
    assert RiskAnalysis.of(pyxl_del.engine.pipeline.fit(sample_result.stats, short), short).stress_note is None


def test_the_stress_sheet_shows_a_lasting_adverse_z_in_words(sample_result, tmp_path):
    layouts = stress_sheets(sample_result, scenarios=[ScenarioSpec(name="persist", z=-1.0)])
    path = write_workbook(layouts, tmp_path / "stress.xlsx")
    rows = {r[0]: r[1:] for r in openpyxl.load_workbook(path)["Stress test"].iter_rows(values_only=True) if r[0]}
    months = rows["Months with Z < 0"]
    assert months[:4] == (0, 17, 29, 11) and months[4] == "all (the last Z persists)"



def test_a_seasoned_book_says_its_del_rows_are_actual(analysis):
    """Cohorts whose data all reach the key MOBs show actual DEL there in every scenario: the note says so, where
    a book with young cohorts (the sample) has none."""
    cfg = Config().with_overrides(forecast={"max_mob": 12}, risk={"n_paths": 500})
    panel = generate_sample()
    seasoned = panel.groupby(cfg.columns.cohort)[cfg.columns.mob].transform("max") >= 18
    seasoned_analysis = RiskAnalysis.of(pyxl_del.run(panel[seasoned], cfg), cfg)
    table = seasoned_analysis.stress.side_by_side()
    del_rows = table.loc[[f"DEL{d} MOB {m}" for d in (30, 60, 90) for m in (6, 12)]].to_numpy(dtype=float)
    assert np.ptp(del_rows, axis=1).max() == 0
    assert "No scenario changes the DEL rows" in seasoned_analysis.stress_note
    assert "MOB 6, 12 is actual" in seasoned_analysis.stress_note
    assert analysis.stress_note is None
    # The tables stop at MOB 12, months before the data end: the sheets are dated by the data's last month.
    last_month = panel[cfg.columns.cohort].max()  # the sample's newest cohort starts in its last month
    assert seasoned_analysis.result.as_of == seasoned_analysis.book.label == last_month
    summary = stress_sheets(seasoned_analysis.result, analysis=seasoned_analysis)[0]
    assert summary.name == "Stress summary"
    assert any(b.values[0][0] == f"As of {last_month}" for b in summary.blocks if b.row == 2 and b.col == 1)


def test_custom_scenarios_from_config_and_sheet_rows():
    cfg = Config().with_overrides(scenarios={"custom": [{"name": "baseline", "z": -0.1},
                                                        {"name": "stagflation", "z": [-0.5, -1.0]}]})
    names = [s.name for s in scenario_set(cfg)]
    assert names == ["baseline", "mild_recession", "severe_recession", "rate_shock", "stagflation"]
    assert scenario_set(cfg)[0].z == (-0.1,)
    rows = [["Scenarios", None], ["note"], ["Scenario", "Description", "Z month 1", "Z month 2"],
            ["dip", "short", -1, -0.5], [None, None, None, None], ["flat", None, 0.3, None]]
    specs = scenarios_from_rows(rows)
    assert [(s.name, s.z, s.description) for s in specs] == [("dip", (-1.0, -0.5), "short"), ("flat", (0.3,), "")]
    with pytest.raises(ConfigError, match="row 2"):
        scenarios_from_rows([["Scenario", "Description"], ["bad", "", "x"]])
    with pytest.raises(ConfigError, match="unknown key"):
        pyxl_del.engine.config.config_from_dict({"scenarios": {"custom": [{"name": "a", "z": 1, "zz": 2}]}})
    # A TRUE cell was read as Z = 1 (a mild boom, ranked with the rest); a bad Z was also said a second time as
    # "z: Tuple should have at least 1 item after validation, not 0".
    with pytest.raises(ConfigError) as info:
        scenarios_from_rows([["Scenario", "Description", "Z month 1"], ["yes", "", True]])
    assert str(info.value) == "Scenarios row 2: column C ('Z month 1'): Value error, true is not a number (got True)"
    # pydantic's "z.2" (0-based) sent a user to Z month 2, which was right: the sheet's column and header instead.
    with pytest.raises(ConfigError) as info:
        scenarios_from_rows([["Scenario", "Description", "Z month 1", "Z month 2", "Z month 3"],
                             ["dip", "", -1.0, -0.5, "-0,8"]])
    assert str(info.value).startswith("Scenarios row 2: column E ('Z month 3'): Input should be a valid number")
    assert "(got '-0,8')" in str(info.value)
    with pytest.raises(ConfigError) as info:
        pyxl_del.engine.config.config_from_dict({"scenarios": {"custom": [{"name": "a", "z": [-1e6]}]}})
    assert str(info.value).endswith("\n  [scenarios] custom.0.z.0: Input should be greater than or equal to -8 "
                                    "(got -1000000.0)"), info.value
    with pytest.raises(ConfigError, match="at least 1 item"):  # an empty Z is still said
        scenarios_from_rows([["Scenario", "Description", "Z month 1"], ["none", ""]])


def test_risk_config_names_unknown_states():
    with pytest.raises(ConfigError, match="loss_state"):
        Config().with_overrides(risk={"loss_state": "DPD90+"})
    with pytest.raises(ConfigError, match="severity_order"):
        Config().with_overrides(scenarios={"severity_order": ["CURRENT", "WRITEOFF"]})


# ------------------------------------------------------------------------------------ alerts

ALERT_RULES = [
    {"rule": "del_above", "severity": "critical", "del_type": "DEL30", "mob": 2, "threshold": 0.05, "recent": 3,
     "basis": "actual"},
    {"rule": "cohort_vs_history", "severity": "warning", "del_type": "DEL30", "n_se": 3.0, "recent": 2},
    {"rule": "concentration", "severity": "info", "by": "segment", "measure": "hhi", "threshold": 0.6},
    {"rule": "npl_above", "severity": "warning", "threshold": 0.5},
]


def _alert_panel(bad: bool) -> tuple[pyxl_del.DelResult, Config]:
    """Segments A and B, ten cohorts observed two months past the last; ``bad``: A is four times B and A's two
    newest cohorts roll into arrears about ten times as fast."""
    cohorts = [f"2024-{m:02d}" for m in range(1, 11)]
    cfg = Config().with_overrides(forecast={"max_mob": 8}, alerts={"rules": ALERT_RULES})
    matrices = np.broadcast_to(CHAIN, (len(cohorts), 2, 8) + CHAIN.shape).copy()
    if bad:
        for c in (-2, -1):
            matrices[c, 0, :, CUR] = np.eye(len(STATES))[CUR] * 0.70 + np.eye(len(STATES))[D1] * 0.30
            matrices[c, 0, :, D1] = np.eye(len(STATES))[D1] * 0.30 + np.eye(len(STATES))[D30] * 0.70
    frame = simulate_panel(matrices, cohorts=cohorts, as_of="2024-12", segments=["A", "B"], seed=2024, config=cfg,
                           loans_per_cohort={"A": 800, "B": 200} if bad else 500)
    return pyxl_del.run(frame, cfg), cfg


def test_a_clean_book_fires_no_alert():
    result, cfg = _alert_panel(bad=False)
    alerts = evaluate_alerts(result, cfg)
    assert alerts.empty, alerts["message"].tolist()
    assert not fires_at(alerts, "info")


def test_a_seeded_book_fires_exactly_the_expected_alerts():
    result, cfg = _alert_panel(bad=True)
    alerts = evaluate_alerts(result, cfg)
    fired = set(zip(alerts["rule_id"], alerts["segment"], alerts["cohort"], strict=True))
    assert fired == {("R1", "A", "2024-09"), ("R1", "A", "2024-10"), ("R2", "A", "2024-09"), ("R2", "A", "2024-10"),
                     ("R3", "", "")}
    assert list(alerts["severity"]) == ["critical", "critical", "warning", "warning", "info"]
    r1 = alerts[alerts["rule_id"] == "R1"]
    assert (r1["value"] > 0.05).all() and (r1["threshold"] == 0.05).all()
    assert fires_at(alerts, "critical") and fires_at(alerts, "warning")
    # The HHI in the units the Concentration sheet shows it in (an index, 0.68), not as "68.00% > 60.00%".
    r3 = alerts[alerts["rule_id"] == "R3"].iloc[0]
    assert r3["message"] == f"HHI of outstanding EAD by segment is {r3['value']:.3f} > 0.600", r3["message"]


def test_an_alert_on_a_thin_cohort_says_so():
    """A CRITICAL on a cohort of 4 loans (two of them late) stopped a scheduled run with no word of its size."""
    result, cfg = _alert_panel(bad=True)
    alerts = evaluate_alerts(result, cfg)
    assert not alerts["message"].str.contains("THIN").any()  # 800 loans a cohort
    small = cfg.with_overrides(alerts={"rules": ALERT_RULES[:1]})
    matrices = np.broadcast_to(CHAIN, (3, 1, 8) + CHAIN.shape).copy()
    matrices[-1, 0, :, CUR] = np.eye(len(STATES))[CUR] * 0.30 + np.eye(len(STATES))[D30] * 0.70
    frame = simulate_panel(matrices, cohorts=["2024-08", "2024-09", "2024-10"], as_of="2024-12", segments=["A"],
                           seed=7, config=small, loans_per_cohort=12)
    thin = evaluate_alerts(pyxl_del.run(frame, small), small)
    assert len(thin) and thin["message"].str.endswith(
        "; THIN: 12 loans at MOB 0 (fewer than 30), one loan moves it by 8%").all(), thin["message"].tolist()


def test_k_clipped_fires_per_segment_with_clipped_factors(sample_result):
    cfg = sample_result.config.with_overrides(calibration={"k_clip": [0.999, 1.001]},
                                              alerts={"rules": [{"rule": "k_clipped"}]})
    result = pyxl_del.engine.pipeline.fit(sample_result.stats, cfg)
    alerts = evaluate_alerts(result, cfg)
    factors = result.calibration_factors
    clipped = factors[factors["k"] != factors["k_unclipped"]]
    assert sorted(alerts["segment"]) == sorted(clipped["segment"].unique())
    # The MOBs as runs: a thin book clips most of them, and 37 numbers in a row were one unreadable line.
    first = alerts.iloc[0]
    mobs = clipped.loc[clipped["segment"] == first["segment"], "mob"]
    assert f"clipped at MOB {runs_text(mobs)} (most extreme" in first["message"], first["message"]
    assert ".." in first["message"] and len(mobs) > 3


def test_sample_alerts_with_the_shipped_rules(analysis):
    alerts = analysis.alerts
    assert not fires_at(alerts, "critical")
    assert (alerts["severity"] == "warning").all()


# ------------------------------------------------------------------------------------ sheets and CLI


def test_sheets_render_and_scenarios_round_trip(analysis, sample_result, tmp_path):
    layouts = dashboard_sheets(sample_result, dashboard=Dashboard(analysis), stress=True)
    names = [layout.name for layout in layouts]
    assert names == ["Risk summary", "Risk dashboard", "Alerts", "Expected loss", "Credit VaR", "Concentration",
                     "Capital (indicative)", "Stress test", "Scenarios"]
    assert len(layouts[1].charts) == 3 and len(layouts[7].charts) == 1
    assert [layout.name for layout in stress_sheets(sample_result, analysis=analysis)] == [
        "Stress summary", "Stress test", "Scenarios"]
    path = write_workbook(layouts, tmp_path / "risk.xlsx")
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == names
    dashboard = book["Risk dashboard"]
    kpis = {dashboard.cell(r, 1).value: dashboard.cell(r, 2).value for r in range(5, 5 + len(analysis.kpis))}
    assert kpis["Expected loss, lifetime (ILLUSTRATIVE)"] == pytest.approx(  # the sample's LGD is the default
        analysis.el.set_index(["segment", "cohort"]).loc[("Portfolio", ALL), "el_lifetime"])
    assert "INDICATIVE" in book["Capital (indicative)"]["A1"].value
    assert read_scenarios_sheet(path) == analysis.stress.scenarios


def test_a_scenario_called_na_keeps_its_name(tmp_path):
    """pandas read "NA" and "N/A" as missing: the scenario lost its name and its description read "nan"."""
    path = tmp_path / "scenarios.xlsx"
    pd.DataFrame([["Scenario", "Description", "Z month 1"], ["NA", "N/A", -2.0]]).to_excel(
        path, sheet_name="Scenarios", header=False, index=False)
    (spec,) = read_scenarios_sheet(path)
    assert (spec.name, spec.description) == ("NA", "N/A")


def test_cli_risk_commands(tmp_path, capsys):
    assert main(["alerts", "--fail-on", "warning"]) == 3
    assert "WARNING" in capsys.readouterr().out
    assert main(["alerts", "--fail-on", "critical", "--out", str(tmp_path / "alerts")]) == 0
    assert (tmp_path / "alerts" / "alerts.csv").is_file()
    assert main(["var", "--paths", "500", "--horizon", "6", "--out", str(tmp_path / "var.xlsx")]) == 0
    assert "VaR" in capsys.readouterr().out
    assert openpyxl.load_workbook(tmp_path / "var.xlsx").sheetnames == ["Risk summary", "Credit VaR"]
    scenarios = tmp_path / "scenarios.xlsx"
    pd.DataFrame([["Scenario", "Description", "Z month 1"], ["dip", "", -2.0]]).to_excel(
        scenarios, sheet_name="Scenarios", header=False, index=False)
    assert main(["stress", "--scenarios", str(scenarios)]) == 0
    assert "dip" in capsys.readouterr().out
    assert main(["el", "--config", str(tmp_path / "missing.toml")]) == 2


def test_the_console_says_what_the_sheets_call_illustrative(tmp_path, capsys):
    """`pyxl-del el` printed a lifetime loss rate on the default LGD with no word of it; the sheets said ILLUSTRATIVE.
    Every risk command prints the same notes (and none when [risk] lgd is set)."""
    for command in ("el", "capital", "var"):
        assert main([command, *(["--paths", "200"] if command == "var" else [])]) == 0
        assert "ILLUSTRATIVE LGD: 65% is the default ([risk] lgd left out)" in capsys.readouterr().out, command
    config = tmp_path / "config.toml"
    config.write_text("[risk]\nlgd = 0.5\n", encoding="utf-8")
    assert main(["el", "--config", str(config)]) == 0
    assert "ILLUSTRATIVE LGD" not in capsys.readouterr().out
    # the run's warnings too: a lifetime loss from 5-loan cohorts says so
    thin = generate_sample(loans_per_cohort=5, n_cohorts=2)
    thin.to_parquet(path := tmp_path / "thin.parquet")
    assert main(["el", str(path), "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "warning: " in out and "fewer than 30 loans at MOB 0" in out, out
    assert not re.search(r"\d\.\d{6}", out), out  # default_12m and default_lifetime printed as amounts


@pytest.mark.parametrize("fixture", ["mixed_result", "awkward_result"])
def test_every_view_on_awkward_books(fixture, request):
    """Segments with different cut-offs, short max_mob, names Excel forbids or reads as formulas."""
    result = request.getfixturevalue(fixture)
    analysis = RiskAnalysis.of(result, result.config.with_overrides(risk={"n_paths": 500}))
    layouts = dashboard_sheets(result, dashboard=Dashboard(analysis)) + stress_sheets(result, analysis=analysis)
    book = openpyxl.Workbook()
    book.remove(book.active)
    pyxl_del.excel.render.render_openpyxl(layouts, book)
    assert len(book.sheetnames) == 6 + 1 + 2 + 1  # each run's summary, its sheets
    el = analysis.el
    assert set(el.loc[el["cohort"] == ALL, "segment"]) == {*result.segments, "Portfolio"}
    assert np.isfinite(analysis.kpis["value"]).all()


def test_dashboard_charts_draw_the_largest_segments_of_many():
    """42 segments drew 43 lines whose legend took the whole chart: the charts keep the Portfolio and the 8 largest
    segments by outstanding EAD (the EAD mix sums the rest), and their titles say so."""
    names = [f"P{i:02d}" for i in range(12)]
    panel = simulate_panel(CHAIN, cohorts=[f"2024-{m:02d}" for m in range(1, 7)], as_of="2024-06",
                           loans_per_cohort={n: 10 if n == "P00" else 40 for n in names}, segments=names, seed=3,
                           max_mob=6)  # P00 the smallest
    result = pyxl_del.run(panel, Config().with_overrides(forecast={"max_mob": 6}))
    analysis = RiskAnalysis.of(result, result.config.with_overrides(risk={"n_paths": 200}))
    by_segment, _, mix = dashboard_sheets(result, dashboard=Dashboard(analysis))[1].charts
    drawn = [s.title for s in by_segment.series]
    assert drawn[0] == "Portfolio" and len(drawn) == 9 and "P00" not in drawn, drawn
    assert "the 8 largest of 12 segments by EAD" in by_segment.title
    assert [s.title for s in mix.series][-1] == "Other 4 segments" and len(mix.series) == 9
    few = pyxl_del.run(panel[panel["PRODUCT_TYPE"].isin(names[:3])], Config().with_overrides(forecast={"max_mob": 6}))
    charts = dashboard_sheets(few, dashboard=Dashboard(RiskAnalysis.of(few, few.config.with_overrides(
        risk={"n_paths": 200}))))[1].charts
    assert len(charts[0].series) == 4 and "largest" not in charts[0].title
