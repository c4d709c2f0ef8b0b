"""Backtesting: the cut, the benchmarks' known answers, the metrics, the statistical claims, the CLI and the sheets."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from _panels import cfg
from openpyxl import load_workbook

import pyxl_del
from pyxl_del.backtest.rolling import (
    MODEL_LABELS,
    MODELS,
    BacktestError,
    Calendar,
    NothingToCompareError,
    backtest,
    carry_forward,
    chain_ladder,
    coverage_share,
    crps_of_draws,
    cut_panel,
    parse_month,
    summarise,
)
from pyxl_del.backtest.tune import portfolio_mae
from pyxl_del.cli import main
from pyxl_del.datasets.sample import realistic_matrices, simulate_panel, simulate_vintage_book
from pyxl_del.engine.config import DEL_TYPES
from pyxl_del.engine.data import PORTFOLIO, aggregate_panel, month_label, validate_panel
from pyxl_del.sheets.backtest import SHEET_NAMES, backtest_sheets

MAX_MOB = 18
CONFIG = cfg(forecast={"max_mob": MAX_MOB})
COHORTS = [month_label([parse_month("2023-01") + i])[0] for i in range(24)]  # 2023-01 .. 2024-12
AS_OF = COHORTS[-1]


def homogeneous_panel(loans: int, seed: int, segments=("A", "B", "C", "D")) -> pd.DataFrame:
    """Loans following one constant (time-homogeneous) chain: realistic roll rates of MOB step 8 at every step.

    Balances do not amortise, so the DEL ratio is exactly what the EAD-weighted chain forecasts: the Markov model
    as configured is the true model here, and its error is sampling error only.
    """
    chain = realistic_matrices(CONFIG, ["CASH LOAN"], MAX_MOB)[0, 8]
    return simulate_panel(chain, cohorts=COHORTS, as_of=AS_OF, loans_per_cohort=loans, segments=segments,
                          seed=seed, config=CONFIG, amortisation=0.0)


@pytest.fixture(scope="module")
def small_panel() -> pd.DataFrame:
    return homogeneous_panel(120, seed=7, segments=("A", "B"))


@pytest.fixture(scope="module")
def small_result(small_panel):
    return backtest(small_panel, CONFIG, as_of=["2024-06", "2024-09"], horizon=6)


# ------------------------------------------------------------------------------------------------- the cut


def test_cut_is_the_panel_known_at_as_of(small_panel):
    """Masking the validated arrays gives the statistics of a panel filtered to cohort + MOB <= as-of."""
    as_of = parse_month("2024-06")
    full = validate_panel(small_panel, CONFIG)
    cut = aggregate_panel(cut_panel(full, as_of), CONFIG)
    month = small_panel["DISBURSAL_MONTH"].map(parse_month) + small_panel["MOB"]
    expected = aggregate_panel(validate_panel(small_panel[month <= as_of], CONFIG), CONFIG)
    np.testing.assert_array_equal(cut.cohorts, expected.cohorts)
    for name in ("ead", "n_loans", "trans_count", "trans_ead_from", "trans_ead_to"):
        np.testing.assert_allclose(getattr(cut, name), getattr(expected, name), err_msg=name)
    assert cut.n_rows == int((month <= as_of).sum())


def test_markov_cells_are_the_report_forecast(small_panel, small_result):
    """The 'markov' cells at an origin are what `run` forecasts from the panel filtered at that as-of."""
    month = small_panel["DISBURSAL_MONTH"].map(parse_month) + small_panel["MOB"]
    for model, config in (("markov", CONFIG), ("markov_uncalibrated", cfg(forecast={"max_mob": MAX_MOB},
                                                                           calibration={"mode": "none"}))):
        report = pyxl_del.run(small_panel[month <= parse_month("2024-09")], config)
        cells = small_result.cells
        cells = cells[(cells["origin"] == "2024-09") & (cells["model"] == model)]
        for (segment, del_type), part in cells.groupby(["segment", "del_type"], observed=True):
            table = report.wide(segment, del_type)
            expected = table.to_numpy()[table.index.get_indexer(part["cohort"].astype(str)), part["mob"].to_numpy()]
            np.testing.assert_allclose(part["forecast"].to_numpy(), expected, rtol=1e-12,
                                       err_msg=f"{model} {segment} {del_type}")


def test_cells_are_the_later_observed_cells_within_the_horizon(small_panel, small_result):
    cells = small_result.cells
    assert cells["horizon"].between(1, 6).all()
    cohort = cells["cohort"].astype(str).map(parse_month)
    origin = cells["origin"].astype(str).map(parse_month)
    np.testing.assert_array_equal(cells["horizon"], cohort + cells["mob"] - origin)
    assert cells["mob"].le(MAX_MOB).all()
    # Each model is scored on the same cells; each origin scores every segment cell observed 1..6 months later
    # of the cohorts that existed at the as-of (a cohort disbursed later has nothing to forecast from).
    counts = cells.groupby(["origin", "model"], observed=True).size().unstack()
    assert (counts.nunique(axis=1) == 1).all()
    cohort = small_panel["DISBURSAL_MONTH"].map(parse_month)
    for as_of in ("2024-06", "2024-09"):
        ahead = cohort + small_panel["MOB"] - parse_month(as_of)
        existed = cohort <= parse_month(as_of)
        later = small_panel[ahead.between(1, 6) & existed & (small_panel["MOB"] <= MAX_MOB)]
        n_cells = later.drop_duplicates(["PRODUCT_TYPE", "DISBURSAL_MONTH", "MOB"]).shape[0]
        mine = cells[(cells["origin"] == as_of) & (cells["model"] == "markov") & (cells["del_type"] == "DEL30")]
        assert (mine["segment"] != PORTFOLIO).sum() == n_cells
    assert (cells["weight"] > 0).all()


# ------------------------------------------------------------------------------------------ known answers


def test_chain_ladder_known_answer():
    """Volume-weighted factors; additive steps from a zero base or an undefined factor; flat beyond the data."""
    nan = np.nan
    actual = np.array([[
        [0.0, 0.00, 0.02, 0.030],  # oldest cohort: observed to MOB 3
        [0.0, 0.00, 0.04, nan],  # observed to MOB 2
        [0.0, 0.00, nan, nan],  # observed to MOB 1, DEL 0: additive steps
    ]])
    ead0 = np.array([[100.0, 300.0, 200.0]])
    out = chain_ladder(actual, ead0)
    # Step 1 -> 2: no cohort is delinquent at MOB 1, so the factor is undefined; the increment is the
    # EAD0-weighted mean change over the cohorts observed at both MOBs: (100 * 0.02 + 300 * 0.04) / 400.
    inc_12 = (100 * 0.02 + 300 * 0.04) / 400
    assert out[0, 2, 2] == pytest.approx(inc_12)
    # Step 2 -> 3: f = (100 * 0.03) / (100 * 0.02) = 1.5, from the oldest cohort only.
    assert out[0, 1, 3] == pytest.approx(0.04 * 1.5)
    assert out[0, 2, 3] == pytest.approx(inc_12 * 1.5)
    np.testing.assert_array_equal(out[~np.isnan(actual)], actual[~np.isnan(actual)])
    # Beyond the last step any cohort observed, the curve stays flat.
    longer = np.concatenate([actual, np.full((1, 3, 2), nan)], axis=2)
    flat = chain_ladder(longer, ead0)
    np.testing.assert_allclose(flat[0, :, 4:], np.repeat(flat[0, :, 3:4], 2, axis=1))


def test_chain_ladder_never_goes_negative():
    actual = np.array([[[0.0, 0.05, 0.01], [0.0, 0.0, np.nan]]])
    out = chain_ladder(actual, np.array([[1.0, 1.0]]))
    # The mean increment 1 -> 2 is -0.04 (only the first cohort observed it); a zero base cannot go below 0.
    assert out[0, 1, 2] == 0.0


def test_chain_ladder_never_exceeds_100_percent():
    """A DEL is a share of the MOB-0 balance: a factor > 1 compounded over steps (or a large increment) must stop at 1."""
    nan = np.nan
    # Step 1 -> 2 doubles the oldest cohort (f = 2), step 2 -> 3 doubles it again; a cohort at 0.6 at MOB 1 would
    # reach 1.2 and then 2.4 uncapped.
    actual = np.array([[[0.0, 0.2, 0.4, 0.8], [0.0, 0.6, nan, nan]]])
    out = chain_ladder(actual, np.array([[1.0, 1.0]]))
    np.testing.assert_array_equal(out[0, 1, 2:], [1.0, 1.0])
    # Additive steps too: from a zero base the increment 0.0 -> 0.9 twice would give 1.8.
    additive = np.array([[[0.0, 0.0, 0.9, 1.0], [0.0, 0.0, nan, nan], [0.0, 0.5, nan, nan]]])
    out = chain_ladder(additive, np.array([[1.0, 1.0, 1.0]]))
    assert np.nanmax(out) <= 1.0
    assert out[0, 2, 2:].tolist() == [1.0, 1.0]


def test_carry_forward_known_answer():
    actual = np.array([[[0.0, 0.01, 0.03, np.nan, np.nan], [0.0, np.nan, np.nan, np.nan, np.nan]]])
    out = carry_forward(actual)
    np.testing.assert_array_equal(out[0, 0], [0.0, 0.01, 0.03, 0.03, 0.03])
    np.testing.assert_array_equal(out[0, 1], [0.0] * 5)


def test_summarise_known_answer():
    cells = pd.DataFrame({
        "origin": "2024-01", "model": "markov", "segment": "A", "del_type": "DEL30", "horizon": 1,
        "forecast": [0.02, 0.05, 0.01], "actual": [0.01, 0.10, 0.00], "weight": [1.0, 3.0, 1.0],
    }, index=[5, 7, 9])  # a filtered selection of cells keeps its index
    row = summarise(cells).iloc[0]
    assert row["n_cells"] == 3 and row["n_origins"] == 1
    assert row["mae"] == pytest.approx((0.01 + 0.05 + 0.01) / 3)
    assert row["bias"] == pytest.approx((0.01 - 0.05 + 0.01) / 3)
    assert row["mape"] == pytest.approx((1.0 + 0.5) / 2)  # the cell with actual 0 has no percentage error
    assert row["mae_ead"] == pytest.approx((0.01 + 3 * 0.05 + 0.01) / 5)
    assert row["bias_ead"] == pytest.approx((0.01 - 3 * 0.05 + 0.01) / 5)
    assert row["mape_ead"] == pytest.approx((1.0 + 3 * 0.5) / 4)


def test_crps_and_coverage_share_known_answers():
    # Draws 0, 1 (equally likely) scored at y = 0: E|X - y| = 0.5, E|X - X'| = 0.5, CRPS = 0.5 - 0.25 = 0.25.
    # A point forecast (all draws equal) has CRPS = its absolute error.
    draws = np.array([[0.0, 0.3], [1.0, 0.3]])
    np.testing.assert_allclose(crps_of_draws(draws, np.array([0.0, 0.1])), [0.25, 0.2])
    # Draws 1..10: y = 5.5 has PIT 0.5 (inside [0.1, 0.9]), y = 0 has PIT 0 (outside); y = 10 ties with one draw,
    # PIT uniform on [0.9, 1.0]: no part of it is inside. Ten draws all equal to y: PIT uniform on [0, 1], 0.8 inside.
    ten = np.arange(1.0, 11.0)[:, None].repeat(3, axis=1)
    np.testing.assert_allclose(coverage_share(ten, np.array([5.5, 0.0, 10.0]), 0.1, 0.9), [1.0, 0.0, 0.0])
    same = np.full((10, 1), 0.02)
    np.testing.assert_allclose(coverage_share(same, np.array([0.02]), 0.1, 0.9), [0.8])
    # Between two draws: above 90 of 100 (90 zeros, then 0.00488 ...), PIT on [0.90, 0.91], outside [0.1, 0.9],
    # as it lies above the printed P90 (0.000488); it had counted whole. Above 10 of them it is inside.
    hundred = np.concatenate([np.zeros(90), np.linspace(0.00488, 0.01, 10)])[:, None]
    assert np.quantile(hundred, 0.9) < 0.00433
    np.testing.assert_allclose(coverage_share(hundred, np.array([0.00433]), 0.1, 0.9), [0.0])
    np.testing.assert_allclose(coverage_share(ten, np.array([1.5, 9.5, 0.0]), 0.1, 0.9), [1.0, 0.0, 0.0])


def test_crps_is_never_below_zero():
    """A CRPS is >= 0: seven draws that all equal the actual 0.7 score 0, where the rounding of the two
    expectations left -1.8e-17 (written to backtest_cells.csv as such)."""
    crps = crps_of_draws(np.full((7, 3), 0.7), np.array([0.7, 0.7, 0.5]))
    assert (crps >= 0).all()
    assert crps == pytest.approx([0.0, 0.0, 0.2], abs=1e-15)
    assert np.isnan(crps_of_draws(np.full((4, 1), np.nan), np.array([0.1])))[0]


def test_summarise_distribution_known_answer():
    cells = pd.DataFrame({
        "origin": "2024-01", "model": "markov", "segment": "A", "del_type": "DEL30", "horizon": 1,
        "forecast": [0.02, 0.05], "actual": [0.01, 0.10], "weight": 1.0,
        "p10": [0.00, 0.04], "p50": [0.015, 0.06], "p90": [0.03, 0.08], "crps": [0.004, 0.03],
        "in_interval": [1.0, 0.0],
    })
    row = summarise(cells).iloc[0]
    assert row["mae_median"] == pytest.approx((0.005 + 0.04) / 2)
    assert row["coverage"] == pytest.approx(0.5) and row["coverage_plain"] == pytest.approx(0.5)
    assert row["crps"] == pytest.approx(0.017)


# ------------------------------------------------------------------------------------ the statistical claims


def clustered_mean(values: pd.Series, clusters: pd.DataFrame) -> tuple[float, float]:
    """Mean over cells and its standard error, cells clustered by cohort and segment.

    The cells of one cohort share its loans (across MOBs and origins), so they are not independent; cohorts of
    different segments are (each segment's chain is estimated from its own loans).
    """
    g = values.groupby([clusters[c] for c in clusters.columns], observed=True).agg(["sum", "count"])
    k = len(g)
    mean = g["sum"].sum() / g["count"].sum()
    residual = (g["sum"] - mean * g["count"]) / g["count"].mean()
    return mean, float(np.sqrt((residual**2).sum() / (k * (k - 1))))


@pytest.fixture(scope="module")
def growing():
    """Rolling backtests of the same chain with n and 4n loans per cohort and segment (cells of the segments)."""
    out = {}
    for n, seed in ((500, 11), (2000, 12)):
        result = backtest(homogeneous_panel(n, seed), CONFIG, origins=6, horizon=6)
        cells = result.cells[result.cells["segment"] != PORTFOLIO].copy()
        cells["abs_error"] = (cells["forecast"] - cells["actual"]).abs()
        out[n] = cells
    return out


@pytest.mark.parametrize("n", [500, 2000])
def test_80_percent_intervals_cover_about_80_percent_where_the_model_is_right(growing, n):
    """On books following the chain, the Markov forecast's P10..P90 holds 75-85% of the later actuals."""
    cells = growing[n][growing[n]["model"] == "markov"]
    coverage, se = clustered_mean(cells["in_interval"], cells[["segment", "cohort"]])
    assert 0.75 <= coverage <= 0.85, (coverage, se)
    # Continuous enough at this size that the plain count (a tie with an end counts whole) agrees within 2 points.
    plain = ((cells["p10"] <= cells["actual"]) & (cells["actual"] <= cells["p90"])).mean()
    assert abs(plain - coverage) < 0.02
    assert cells["crps"].mean() < (cells["forecast"] - cells["actual"]).abs().mean()


def test_narrow_intervals_show_as_low_coverage(growing_narrow):
    """The coverage check can fail: P30..P70 (nominally 40%) covers about 40%, far below 75%."""
    cells = growing_narrow[growing_narrow["model"] == "markov"]
    assert 0.32 <= cells["in_interval"].mean() <= 0.48


@pytest.fixture(scope="module")
def growing_narrow():
    config = CONFIG.with_overrides(forecast={"interval_levels": [0.3, 0.7]})
    return backtest(homogeneous_panel(500, 11), config, origins=6, horizon=6, models=["markov"]).cells


@pytest.mark.parametrize("del_type", DEL_TYPES)
def test_markov_beats_chain_ladder_and_last_value_from_3_months_ahead(growing, del_type):
    """Paired per cell, the Markov MAE is lower by more than two standard errors at horizons >= 3."""
    keys = ["origin", "segment", "cohort", "mob"]
    for cells in growing.values():
        part = cells[(cells["del_type"] == del_type) & (cells["horizon"] >= 3)]
        wide = part.pivot_table(index=keys, columns="model", values="abs_error", observed=True).reset_index()
        for other in ("chain_ladder", "carry_forward"):
            gain, se = clustered_mean(wide[other] - wide["markov"], wide[["segment", "cohort"]])
            assert gain > 2 * se, f"{del_type}: Markov vs {other}: MAE lower by {gain:.5f} ± {se:.5f}"


@pytest.mark.parametrize("del_type", DEL_TYPES)
def test_markov_error_shrinks_at_the_sampling_rate(growing, del_type):
    """With 4x the loans the MAE halves (1/sqrt(n)), within three standard errors of the ratio.

    The model is the true one, so the error is sampling error: in the realised DEL of each cohort and in the
    estimated chain, both O(1/sqrt(n)). The standard error of the ratio comes from the clustered standard
    errors of the two MAEs (delta method).
    """
    maes = []
    for cells in growing.values():
        part = cells[(cells["model"] == "markov") & (cells["del_type"] == del_type)]
        maes.append(clustered_mean(part["abs_error"], part[["segment", "cohort"]]))
    (m1, s1), (m4, s4) = maes
    ratio = m4 / m1
    se = ratio * np.hypot(s1 / m1, s4 / m4)
    assert m4 < m1
    assert abs(ratio - 0.5) < 3 * se, f"{del_type}: MAE(4n) / MAE(n) = {ratio:.3f} ± {se:.3f}, expected 0.5"


# --------------------------------------------------------------------------------------- origins and errors


def test_origins_and_usable_months(small_panel):
    calendar = Calendar.of(validate_panel(small_panel, CONFIG))
    assert month_label([calendar.first_origin, calendar.last_origin]) == ["2023-02", "2024-11"]
    assert month_label(calendar.last(3)) == ["2024-09", "2024-10", "2024-11"]
    assert len(calendar.last(1000)) == 22  # every usable month when fewer exist


def test_origins_stop_where_every_cohort_is_past_max_mob(small_panel):
    """The newest cohort (2024-12) at MOB 3 is 2025-03: beyond the data, so max_mob 3 changes nothing; the first
    cohort alone (2023-01) at MOB 3 is 2023-04, so the last origin with a forecast cell left is 2023-03."""
    panel = validate_panel(small_panel, CONFIG)
    assert Calendar.of(panel, 3).last(3) == Calendar.of(panel).last(3)
    first_only = validate_panel(small_panel[small_panel["DISBURSAL_MONTH"] == "2023-01"], CONFIG)
    assert month_label(Calendar.of(first_only, 3).last(3)) == ["2023-02", "2023-03"]
    assert month_label(Calendar.of(first_only).last(1)) == ["2024-06"]  # without max_mob: its last row is 2024-07
    with pytest.raises(NothingToCompareError, match="past .forecast. max_mob"):
        Calendar.of(validate_panel(small_panel[small_panel["DISBURSAL_MONTH"] == "2023-01"], CONFIG), 1).last(1)


def test_origins_skip_the_years_between_eras(small_panel):
    """Two quarters years apart in one panel (agency books of several eras): the months between them, when every
    cohort known is past max_mob, are not usable origins, so `--origins N` counts only months with something to
    forecast and no origin comes back empty."""
    two_eras = small_panel[small_panel["DISBURSAL_MONTH"].isin(["2023-01", "2024-06"])]
    config = cfg(forecast={"max_mob": 3})
    usable = ["2023-02", "2023-03", "2024-06", "2024-07", "2024-08"]
    assert month_label(Calendar.of(validate_panel(two_eras, config), 3).last(1000)) == usable
    assert month_label(Calendar.of(validate_panel(two_eras, config), 3).last(2)) == usable[-2:]
    result = backtest(two_eras, config, origins=1000, horizon=3)
    assert list(result.origins) == usable and not result.notes


def test_as_of_at_the_last_month_compares_nothing(small_panel):
    with pytest.raises(NothingToCompareError, match="last reporting month .2024-12.: nothing happened after it"):
        backtest(small_panel, CONFIG, as_of="2024-12")


@pytest.mark.parametrize("as_of, message", [
    ("2022-06", "before the first cohort"),
    ("2023-01", "only MOB 0 was known"),
    ("2024-13", "not a month"),
])
def test_as_of_outside_the_data_is_an_error(small_panel, as_of, message):
    with pytest.raises(BacktestError, match=message) as info:
        backtest(small_panel, CONFIG, as_of=[as_of, "2024-06"])
    assert not isinstance(info.value, NothingToCompareError)


def test_calibration_off_leaves_out_the_duplicate_model(small_panel):
    result = backtest(small_panel, cfg(forecast={"max_mob": MAX_MOB}, calibration={"mode": "none"}),
                      as_of="2024-06", horizon=3)
    assert result.models == ("markov", "chain_ladder", "carry_forward")
    assert "markov_uncalibrated" in result.notes[0]
    assert list(result.winners.filter(regex="^mae_").columns) == [
        f"mae_{m}" for m in result.models] + [f"mae_ead_{m}" for m in result.models] + ["mae_median_markov"]


def test_winners_are_the_lowest_mae(small_result):
    w = small_result.winners
    maes = w[[f"mae_{m}" for m in MODELS]].to_numpy()
    np.testing.assert_array_equal(w["winner"], np.asarray(MODELS)[maes.argmin(axis=1)])
    ranked = np.sort(maes, axis=1)
    np.testing.assert_allclose(w["margin"], 1 - ranked[:, 0] / ranked[:, 1])
    assert set(w["segment"]) == {PORTFOLIO, "A", "B"}
    assert len(small_result.by_mob) and small_result.by_mob["mob"].between(1, MAX_MOB).all()


# ----------------------------------------------------------------------------------------- CLI and sheets


@pytest.fixture(scope="module")
def panel_file(small_panel, tmp_path_factory):
    path = tmp_path_factory.mktemp("backtest") / "panel.parquet"
    small_panel.to_parquet(path)
    return path


def test_origins_are_named_one_way_everywhere(small_result, panel_file, tmp_path, capsys):
    """The CLI, tune's text and the sheets name the as-of months through BacktestResult.origins_text."""
    assert small_result.origins_text == "2 as-of months (2024-06 .. 2024-09)"
    one = dataclasses.replace(small_result, origins=("2024-09",))
    assert one.origins_text == "1 as-of month (2024-09)"
    assert main(["backtest", str(panel_file), "--as-of", "2024-09", "--horizon", "2", "-q",
                 "--out", str(tmp_path / "one")]) == 0
    assert "rows at 1 as-of month (2024-09), 1..2 months ahead" in capsys.readouterr().out


def test_cli_writes_tables(panel_file, tmp_path, capsys):
    out = tmp_path / "tables"
    argv = ["backtest", str(panel_file), "--as-of", "2024-06", "--as-of", "2024-09", "--horizon", "4",
            "--out", str(out), "-q"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "2 as-of months (2024-06 .. 2024-09)" in printed and "DEL90" in printed and "*" in printed
    by_horizon = pd.read_csv(out / "backtest_by_horizon.csv")
    assert list(by_horizon.columns[:4]) == ["model", "segment", "del_type", "horizon"]
    assert set(by_horizon["horizon"]) == {1, 2, 3, 4}
    assert {"backtest_cells.csv", "backtest_by_mob.csv", "backtest_winners.csv", "backtest_vs_benchmark.csv"} <= {
        p.name for p in out.iterdir()}


def test_the_forecast_against_the_better_benchmark_in_the_cli_and_the_summary(panel_file, tmp_path, capsys):
    """Per DEL type: the Markov MAE, the better benchmark's, the difference with its interval and a verdict."""
    out = tmp_path / "backtest.xlsx"
    assert main(["backtest", str(panel_file), "--origins", "3", "--horizon", "3", "--out", str(out), "-q"]) == 0
    printed = capsys.readouterr().out
    result = backtest(panel_file, None, origins=3, horizon=3)
    against = result.against_benchmarks.set_index("del_type")
    overall = portfolio_mae(result)
    for del_type in DEL_TYPES:
        row = against.loc[del_type]
        best = overall.loc[["chain_ladder", "carry_forward"], del_type].idxmin()
        assert row["benchmark"] == best and row["mae"] == pytest.approx(overall.loc["markov", del_type])
        assert row["difference"] == pytest.approx(row["mae"] - overall.loc[best, del_type])
        assert row["difference_lo"] < row["difference"] < row["difference_hi"]
        assert row["verdict"] == ("better" if row["difference_hi"] < 0 else "worse" if row["difference_lo"] > 0 else
                                  "within noise")
        assert (f"  {del_type}: {row['mae']:.3%} against {MODEL_LABELS[best]} {overall.loc[best, del_type]:.3%}, "
                f"{row['difference']:+.3%} [{row['difference_lo']:+.3%}, {row['difference_hi']:+.3%}]: "
                f"{row['verdict']}") in printed, printed
    summary = [r for r in load_workbook(out)["Backtest summary"].iter_rows(values_only=True)]
    header = next(i for i, r in enumerate(summary) if r[0] == "DEL type")
    assert [r[0] for r in summary[header + 1:header + 4]] == list(DEL_TYPES)
    assert [r[-1] for r in summary[header + 1:header + 4]] == list(against["verdict"])
    # The interval to the terminal's 0.001 point: at 0.01 an end at -0.004 read "to -0.00 pp" beside "better".
    ws = load_workbook(out)["Backtest summary"]
    assert ws.cell(header + 2, 7).number_format == '+0.000" pp";-0.000" pp";0.000" pp"'


def test_cli_workbook_has_the_backtest_sheets_and_charts(panel_file, tmp_path):
    out = tmp_path / "backtest.xlsx"
    assert main(["backtest", str(panel_file), "--origins", "3", "--horizon", "3", "--out", str(out), "-q"]) == 0
    book = load_workbook(out)
    assert book.sheetnames == ["Backtest summary", *SHEET_NAMES]
    summary = book[SHEET_NAMES[0]]
    assert len(summary._charts) == len(DEL_TYPES)
    assert summary["A5"].value == "Portfolio DEL30: MAE by months ahead"
    assert book[SHEET_NAMES[1]].auto_filter.ref.startswith("A4:")


def test_one_overall_error_in_the_cli_the_summary_and_run_info(panel_file, tmp_path, capsys):
    """The Portfolio MAE over every month ahead is the mean of each month ahead's MAE (each counts once), as
    `tune` ranks and Run info shows; the CLI's "mean" row and the summary sheet print that same figure, not the
    mean over all cells (which the near months, having most cells, dominate)."""
    out, config = tmp_path / "backtest.xlsx", tmp_path / "config.toml"
    config.write_text(f"[forecast]\nmax_mob = {MAX_MOB}\n", encoding="utf-8")
    assert main(["backtest", str(panel_file), "--config", str(config), "--origins", "3", "--horizon", "3",
                 "--out", str(out), "-q"]) == 0
    printed = capsys.readouterr().out
    result = backtest(panel_file, config, origins=3, horizon=3)
    cells = result.cells[(result.cells["segment"] == PORTFOLIO) & (result.cells["del_type"] == "DEL30")
                         & (result.cells["model"] == "markov")]
    error = (cells["forecast"] - cells["actual"]).abs()
    by_hand = error.groupby(cells["horizon"]).mean().mean()
    assert not np.isclose(by_hand, error.mean())  # the two readings differ on this panel
    np.testing.assert_allclose(portfolio_mae(result).loc["markov", "DEL30"], by_hand)
    mean_row = printed.split("DEL30\n")[1].splitlines()[4].split()
    assert mean_row[0] == "mean" and mean_row[2].rstrip("*") == f"{by_hand:.3%}"
    summary = load_workbook(out)["Backtest summary"]
    row = next(r for r in summary.iter_rows(values_only=True) if "Markov (as configured)" in r)
    values = [v for v in row if isinstance(v, float)]
    np.testing.assert_allclose(values[0], by_hand * 100)


def test_cli_last_month_and_early_as_of_exit_2(panel_file, tmp_path, capsys):
    assert main(["backtest", str(panel_file), "--as-of", "2024-12", "--out", str(tmp_path / "o"), "-q"]) == 2
    assert "nothing happened after it to compare" in capsys.readouterr().err
    assert main(["backtest", str(panel_file), "--as-of", "2020-01", "--out", str(tmp_path / "o"), "-q"]) == 2
    assert "before the first cohort (2023-01)" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_backtest_sheets_layout(small_result):
    first, summary, by_horizon, by_mob = backtest_sheets(small_result)
    assert first.name == "Backtest summary" and {link.target for link in first.links} >= set(SHEET_NAMES)
    assert [s.name for s in (summary, by_horizon, by_mob)] == list(SHEET_NAMES)
    assert all(len(chart.series) == len(small_result.models) for chart in summary.charts)
    # The chart of DEL30 plots the MAE column of each model from the Portfolio table above it.
    chart = summary.charts[0]
    cats = chart.categories
    values = {b.row: b for b in summary.blocks if b.col == cats.first_col and b.values.shape[1] == 1}
    horizons = values[cats.first_row].values[:, 0]
    np.testing.assert_array_equal(horizons, np.arange(1, small_result.horizon + 1))
    n_rows = len(small_result.by_horizon)
    assert by_horizon.areas["table"].shape == (n_rows + 1, 16)
    # Acronyms keep their capitals inside a longer header ("Markov mAE of the median" and "Markov cRPS" had shown).
    texts = {v for b in summary.blocks for v in b.values.ravel() if isinstance(v, str)}
    assert {"Markov MAE of the median", "Markov CRPS", "Markov interval coverage"} <= texts
    assert not [t for t in texts if "mAE" in t or "cRPS" in t]


def test_the_printed_backtest_keeps_the_verdict_beside_the_errors_and_repeats_the_months_ahead(small_result):
    """The Backtest sheet prints two pages wide. Its Winner and Margin came last, on the second page, beside the
    distribution's columns and without the months ahead they belong to. Now the first page ends with the verdict
    and every page repeats the keys (segment, DEL, months ahead)."""
    from pyxl_del.sheets import fit

    summary = fit.fit_sheet(backtest_sheets(small_result)[1])
    page = summary.page
    assert page.fit_width > 1 and page.repeat_cols == (1, 3)
    header_row = summary.areas["winners"].first_row
    headers = {b.col + j: v for b in summary.blocks if b.row == header_row for j, v in enumerate(b.values[0])}
    col_of = {v: c for c, v in headers.items()}
    scale = fit.fitted_scale(dict(summary.column_widths), page.print_area, page.repeat_cols, page.fit_width, page)
    first_page_end = fit.page_ends(dict(summary.column_widths), page.print_area, page.repeat_cols, scale, page)[0]
    assert col_of["Months ahead"] == 3
    assert col_of["Winner"] < col_of["Margin"] <= first_page_end < col_of["Markov CRPS"]


def test_a_tie_is_no_win_and_the_sheets_name_the_months_scored(small_result):
    """Rows where every model scored the same MAE went to the first model listed (Markov, in bold green), 6 of its
    7 "wins" on a small workbook; and a panel ending 4 months after its last as-of month was said to be scored "1
    to 6 months ahead"."""
    from dataclasses import replace

    cells = small_result.cells.copy()
    first = cells["horizon"] == 1
    markov = cells[first & (cells["model"] == "markov")].set_index(["origin", "segment", "del_type", "cohort", "mob"])
    keys = pd.MultiIndex.from_frame(cells.loc[first, ["origin", "segment", "del_type", "cohort", "mob"]])
    cells.loc[first, "forecast"] = markov["forecast"].reindex(keys).to_numpy()  # every model as Markov at 1 ahead
    tied = replace(small_result, cells=cells)
    winners = tied.winners
    assert (winners.loc[winners["horizon"] == 1, "winner"] == "tie").all()
    assert (winners.loc[winners["horizon"] == 1, "margin"] == 0).all()
    assert (winners.loc[winners["horizon"] > 1, "winner"] != "tie").all()
    summary = backtest_sheets(tied)[1]
    texts = [v for b in summary.blocks for v in b.values.ravel() if isinstance(v, str)]
    assert "Tie (no model lower)" in texts
    # Scored to the end of the data, not to --horizon.
    short = replace(small_result, cells=small_result.cells[small_result.cells["horizon"] <= 4])
    assert short.months_ahead == 4 and small_result.months_ahead == 6
    sheets = backtest_sheets(short)
    intro = " ".join(v for layout in sheets for b in layout.blocks for v in b.values.ravel() if isinstance(v, str))
    assert "1 to 4 months" in intro and "1 to 6" not in intro and "1..6" not in intro


def test_cohort_factors_keep_the_uncalibrated_chain_beside_them(small_panel):
    on = cfg(forecast={"max_mob": MAX_MOB}, calibration={"mode": "none", "cohort_factor": "credibility",
                                                           "cohort_credibility": 0.0})
    result = backtest(small_panel, on, as_of="2024-06", horizon=3)
    assert result.models == ("markov", "markov_uncalibrated", "chain_ladder", "carry_forward")
    cells = result.cells.set_index(["model", "segment", "del_type", "cohort", "mob"])["forecast"]
    assert not np.allclose(cells.loc["markov"].to_numpy(), cells.loc["markov_uncalibrated"].to_numpy())


def test_the_intervals_roll_through_the_cohort_factors():
    """The simulated paths use each cohort's own chain, as the expected path does: their median stays near it.
    (Through the segment chain alone the median sat a vintage effect away: MAE of the median 0.375 against 0.250
    on a vintage book.)"""
    config = pyxl_del.Config().with_overrides(forecast={"max_mob": 12})
    book = simulate_vintage_book(5, cohorts=18, loans={"A": 400}, config=config)
    result = backtest(book.panel, config, origins=2, horizon=6)
    assert result.config.calibration.cohort_factor == "credibility"
    cells = result.cells[(result.cells["model"] == "markov") & (result.cells["segment"] != PORTFOLIO)]
    gap = (cells["p50"] - cells["forecast"]).abs().mean()
    assert gap < 0.25 * (cells["forecast"] - cells["actual"]).abs().mean()
