"""Champion / challenger: the test's size (A/A), its power against the closed form, the table, real-data arms."""

from __future__ import annotations

import numpy as np
import openpyxl
import pandas as pd
import pytest
from _decision import tiny_scored_panel, tiny_scored_twin
from scipy import stats

from pyxl_del.cli import main
from pyxl_del.cli.common import EXIT_OK
from pyxl_del.decision import abtest
from pyxl_del.decision.optimise import current_policy
from pyxl_del.decision.policy import Policy
from pyxl_del.engine.config import Config
from pyxl_del.sheets import abtest as ab_sheets

SEEDS = 200  # independent tests, simulated at once


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    return tiny_scored_panel()


@pytest.fixture(scope="module")
def twin():
    return tiny_scored_twin()


@pytest.fixture(scope="module")
def strict(twin) -> Policy:
    """The current policy with the three riskiest score bands of every segment declined."""
    base = current_policy(twin)
    segments = {n: p.model_dump() for n, p in base.segments.items()}
    for s, name in enumerate(twin.segments):
        segments[name]["cutoff"] = float(twin.band_edges[s, 3])
    return Policy.model_validate({"segments": segments, "budget": base.budget})


def test_aa_test_rejects_at_its_size(twin):
    base = current_policy(twin)
    sim = abtest.simulate(twin, base, base, months=12, replications=SEEDS, seed=12)
    rejected = (sim.bad_rate_test()[-1] < abtest.ALPHA).mean()
    assert abs(rejected - 0.05) <= 0.03, rejected
    # The forecast at MOB 12 is a mean of per-booking probabilities: its interval holds its level too.
    s = sim.sums
    p12 = abtest.mean_test(s["bad12"][:, 0], s["bad12_sq"][:, 0], s["bookings"][:, 0], s["bad12"][:, 1],
                           s["bad12_sq"][:, 1], s["bookings"][:, 1])[-1]
    assert abs((p12 < abtest.ALPHA).mean() - 0.05) <= 0.04


def test_planted_difference_is_detected_as_often_as_predicted(twin, strict):
    base = current_policy(twin)
    flow = abtest.applicant_flow(twin)
    a, b = abtest.expected_arm(twin, base, flow, 0.5), abtest.expected_arm(twin, strict, flow, 0.5)
    assert b.bad_rate < a.bad_rate
    months = int(np.ceil(abtest.months_needed(a.bad_rate, b.bad_rate, a.bookings, b.bookings, power=0.6)))
    predicted = float(abtest.power_after(months, a.bad_rate, b.bad_rate, a.bookings, b.bookings))
    sim = abtest.simulate(twin, base, strict, months=months, replications=SEEDS, seed=12)
    detected = (sim.bad_rate_test()[-1] < abtest.ALPHA).mean()
    assert abs(detected - predicted) <= 0.10, (detected, predicted, months)


def test_months_needed_is_the_inverse_of_power():
    m = abtest.months_needed(0.05, 0.04, 300, 250)
    assert float(abtest.power_after(m, 0.05, 0.04, 300, 250)) == pytest.approx(0.80, abs=0.005)
    # The textbook equal-allocation case: n per arm = (z_a sqrt(2 p q) + z_b sqrt(p1 q1 + p2 q2))^2 / d^2.
    p1, p2 = 0.10, 0.12
    pbar = (p1 + p2) / 2
    n = (stats.norm.ppf(0.975) * np.sqrt(2 * pbar * (1 - pbar))
         + stats.norm.ppf(0.8) * np.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2 / (p2 - p1) ** 2
    assert float(abtest.months_needed(p1, p2, 1, 1)) == pytest.approx(n)


def test_table_power_and_sheet(twin, strict, tmp_path):
    sim = abtest.simulate(twin, "current", strict, months=6, seed=3)
    table = sim.table()
    assert list(table.columns) == list(abtest.TABLE_COLUMNS)
    rows = table.set_index("metric")
    assert rows.loc["Approval rate", "challenger"] < rows.loc["Approval rate", "champion"] == 1.0
    for metric in ("DEL30 at MOB 3 (simulated)", "DEL30 at MOB 6 (simulated)", "DEL30 at MOB 12 (engine forecast)",
                   "Expected loss per applicant", "Value per applicant", "ROE of the steady book"):
        r = rows.loc[metric]
        assert r["ci_low"] <= r["difference"] <= r["ci_high"], metric
        assert r["difference"] == pytest.approx(r["challenger"] - r["champion"])
    champion = rows["champion"]
    assert champion["DEL30 at MOB 12 (engine forecast)"] > champion["DEL30 at MOB 6 (simulated)"]
    power = sim.power(0.01)
    assert power["months_needed"].gt(0).all() and len(power) == 2
    assert sim.curve.shape == (1, 2, abtest.FORECAST_MOB + 1) and np.isfinite(sim.curve).all()

    layout = ab_sheets.simulation_sheet(sim)
    assert layout.name == ab_sheets.SHEET_NAME and layout.charts
    from pyxl_del.excel.render import render_openpyxl

    book = openpyxl.Workbook()
    book.remove(book.active)
    render_openpyxl([layout], book)
    book.save(tmp_path / "ab.xlsx")
    ws = openpyxl.load_workbook(tmp_path / "ab.xlsx")[ab_sheets.SHEET_NAME]
    assert ws.cell(1, 1).value == "Champion / challenger (simulated)"


def test_bad_arguments(twin):
    with pytest.raises(abtest.AbTestError, match="split"):
        abtest.simulate(twin, months=3, split=1.0)
    with pytest.raises(abtest.AbTestError, match="months"):
        abtest.simulate(twin, months=0)


def test_observed_arms(panel):
    config = Config()
    loans = panel["AGREEMENT_ID"].unique()
    arm = pd.Series(np.where(np.arange(len(loans)) % 2, "challenger", "champion"), index=loans)
    data = panel.assign(POLICY_ARM=panel["AGREEMENT_ID"].map(arm).to_numpy())
    assert abtest.has_arm_column(data, config) and not abtest.has_arm_column(panel, config)
    obs = abtest.observed(data, config, champion="champion")
    assert obs.arms == ("champion", "challenger")
    rows = obs.table.set_index("metric")
    mob6 = rows.loc["DEL30 at MOB 6 (observed)"]
    at6 = data[data["MOB"] == 6]
    bad = at6["STATE_MODEL"].isin(config.buckets.del30)
    assert mob6["champion"] == pytest.approx(bad[at6["POLICY_ARM"] == "champion"].mean())
    assert np.isfinite(rows.loc["DEL30 at MOB 12 (observed + forecast)", ["champion", "challenger"]]).all()
    with pytest.raises(abtest.AbTestError, match="exactly two arms"):
        abtest.observed(data.assign(POLICY_ARM="one"), config)


def test_a_small_table_gets_fishers_exact_p_value():
    """2 bad loans among 40 against none among 40: the z-test said p = 0.15, as if the data were near telling the
    arms apart; Fisher's exact test says 0.49. A large table keeps the z-test (scipy's own as the reference)."""
    p_value = abtest.proportion_test(0, 40, 2, 40)[-1]
    assert p_value == pytest.approx(stats.fisher_exact([[0, 40], [2, 38]]).pvalue) and p_value > 0.45
    assert abtest.too_small(0, 40, 2, 40) and not abtest.too_small(100, 1000, 130, 1000)
    big = abtest.proportion_test(np.array([100, 0]), np.array([1000, 40]), np.array([130, 2]), np.array([1000, 40]))
    z = (0.13 - 0.10) / np.sqrt(0.115 * 0.885 * 2 / 1000)
    assert big[-1][0] == pytest.approx(2 * stats.norm.sf(z)) and big[-1][1] == pytest.approx(p_value)


def test_observed_arms_of_few_loans_say_so(panel, tmp_path, capsys):
    config = Config()
    few = panel[panel["AGREEMENT_ID"].isin(panel["AGREEMENT_ID"].unique()[:60])]
    loans = few["AGREEMENT_ID"].unique()
    arm = pd.Series(np.where(np.arange(len(loans)) % 2, "challenger", "champion"), index=loans)
    data = few.assign(POLICY_ARM=few["AGREEMENT_ID"].map(arm).to_numpy())
    obs = abtest.observed(data, config, champion="champion")
    assert obs.notes and all("Fisher's exact test" in n for n in obs.notes), obs.notes
    path = tmp_path / "few.parquet"
    data.to_parquet(path)
    assert main(["abtest", str(path), "--champion", "champion", "--out", str(tmp_path / "ab.xlsx")]) == EXIT_OK
    assert "note: DEL30 at MOB 3: " in capsys.readouterr().out
    texts = [c for row in openpyxl.load_workbook(tmp_path / "ab.xlsx")[ab_sheets.SHEET_NAME].iter_rows(values_only=True)
             for c in row if isinstance(c, str)]
    assert any("Fisher's exact test" in t for t in texts)
    assert not abtest.observed(panel.assign(POLICY_ARM=panel["AGREEMENT_ID"].map(
        pd.Series(np.where(np.arange(panel["AGREEMENT_ID"].nunique()) % 2, "b", "a"),
                  index=panel["AGREEMENT_ID"].unique())).to_numpy()), config).notes


def test_cli_abtest(panel, tmp_path, capsys):
    data = tmp_path / "panel.parquet"
    panel.to_parquet(data)
    out = tmp_path / "ab"
    assert main(["abtest", str(data), "--months", "3", "--out", str(out)]) == EXIT_OK
    printed = capsys.readouterr().out
    assert "simulated 3 months of applicants" in printed and "DEL30 at MOB 6" in printed
    assert pd.read_csv(out / "ab_table.csv")["metric"].str.contains("ROE").any()
    assert main(["abtest", str(data), "--months", "3", "--out", str(tmp_path / "ab.xlsx")]) == EXIT_OK
    assert ab_sheets.SHEET_NAME in openpyxl.load_workbook(tmp_path / "ab.xlsx").sheetnames


@pytest.mark.parametrize(("args", "expected"), [
    (("--seed", "-1"), "seed must be a whole number >= 0, got -1"),
    (("--mde", "0"), "mde must be a bad-rate difference between 0 and 1"),
    (("--mde", "2"), "mde must be a bad-rate difference between 0 and 1"),
    (("--mde", "nan"), "mde must be"),
])
def test_cli_abtest_bad_seed_or_mde_exit_2(panel, tmp_path, capsys, args, expected):
    """--seed -1 was an internal error (numpy's ValueError); --mde 0 printed infinite months, --mde 2 a bad rate of
    2.03."""
    data = tmp_path / "panel.parquet"
    panel.to_parquet(data)
    assert main(["abtest", str(data), "--months", "3", "--out", str(tmp_path / "ab"), *args]) == 2
    err = capsys.readouterr().err
    assert expected in err and "internal error" not in err
    assert not (tmp_path / "ab").exists()


def test_seed_and_mde_are_checked_in_the_library(twin):
    with pytest.raises(abtest.AbTestError, match="seed"):
        abtest.simulate(twin, months=3, seed=-1)
    sim = abtest.simulate(twin, months=3)
    with pytest.raises(abtest.AbTestError, match="mde"):
        sim.power(0.0)
    rate = float(sim.expected[0].bad_rate)
    with pytest.raises(abtest.AbTestError, match="below 100%"):
        sim.power(1 - rate / 2)


def test_a_champion_that_is_no_arm_of_the_data_is_an_error(panel, tmp_path, capsys):
    """--champion foo, or the default 'current' on arms named otherwise, silently made the other arm the
    champion."""
    loans = panel["AGREEMENT_ID"].unique()
    arm = pd.Series(np.where(np.arange(len(loans)) % 2, "B", "A"), index=loans)
    data = panel.assign(POLICY_ARM=panel["AGREEMENT_ID"].map(arm).to_numpy())
    with pytest.raises(abtest.AbTestError, match="the champion 'foo' is not an arm of the data: column 'POLICY_ARM' "
                                                 "names the arms 'A' and 'B'"):
        abtest.observed(data, Config(), champion="foo")
    assert abtest.observed(data, Config(), champion="B").arms == ("B", "A")
    path = tmp_path / "arms.parquet"
    data.to_parquet(path)
    for extra in ((), ("--champion", "foo")):
        assert main(["abtest", str(path), "--out", str(tmp_path / "ab"), *extra]) == 2
        assert "names the arms 'A' and 'B'" in capsys.readouterr().err
    assert main(["abtest", str(path), "--champion", "B", "--out", str(tmp_path / "ab")]) == EXIT_OK
    assert "observed champion / challenger by [columns] policy_arm: B vs A" in capsys.readouterr().out
