"""Model selection (`pyxl-del tune`): the known-best candidate wins, unknown keys are reported, --write keeps the
comments and is atomic; the vintage books' truth and the oracle that knows it."""

from __future__ import annotations

import dataclasses
import os
import tomllib

import numpy as np
import pandas as pd
import pytest
from _panels import cfg, frame, loan

from pyxl_del.backtest.rolling import (
    FORECASTERS,
    Calendar,
    backtest_forecasters,
    oracle,
)
from pyxl_del.backtest.tune import (
    CANDIDATES,
    CURRENT,
    CandidateError,
    TuneResult,
    backtest_text,
    overrides_text,
    portfolio_mae,
    resolve_candidates,
    settings_text,
    tune,
    unknown_keys,
    write_settings,
)
from pyxl_del.cli import main
from pyxl_del.datasets.sample import (
    Crisis,
    _scale_roll_forward,
    realistic_matrices,
    simulate_panel,
    simulate_vintage_book,
)
from pyxl_del.engine.config import DEL_TYPES, Config, ConfigError
from pyxl_del.engine.data import PORTFOLIO, validate_panel
from pyxl_del.engine.errors import OutputError
from pyxl_del.sheets.tune import tune_sheets, tune_summary

MAX_MOB = 12
COHORTS = [f"2024-{m:02d}" for m in range(1, 13)] + [f"2025-{m:02d}" for m in range(1, 13)]
# Pooling a thin safe segment (CD, roll-forward x0.3) with a large risky one (CASH LOAN, x2) is wrong for CD: the
# config below pools every row with fewer than 300 loans and does not calibrate, so "own segment" (min_count 0) is
# the right model and must win.
WRONG = cfg(forecast={"max_mob": MAX_MOB}, calibration={"mode": "none"}, transitions={"min_count": 300})
RIGHT = {"own segment": {"transitions": {"min_count": 0}}}


@pytest.fixture(scope="module")
def two_segments() -> pd.DataFrame:
    base = cfg(forecast={"max_mob": MAX_MOB})
    P = _scale_roll_forward(realistic_matrices(base, ("CASH LOAN", "CD"), max_mob=MAX_MOB),
                            np.array([2.0, 0.3])[:, None], base)
    return simulate_panel(P, cohorts=COHORTS, as_of=COHORTS[-1], loans_per_cohort={"CASH LOAN": 400, "CD": 60},
                          segments=("CASH LOAN", "CD"), seed=1, config=base)


@pytest.fixture(scope="module")
def tuned(two_segments):
    return tune(two_segments, WRONG, origins=6, candidates=RIGHT, strict=True)


# ------------------------------------------------------------------------------------------ the selection


def test_the_right_candidate_wins_and_says_what_changes(tuned):
    assert tuned.winner == "own segment"
    assert tuned.changes == [("transitions", "min_count", 300, 0)]
    table = tuned.table.set_index("model")
    assert list(table.index) == [CURRENT, "own segment", "chain_ladder", "carry_forward"]
    assert list(table["kind"]) == ["candidate", "candidate", "benchmark", "benchmark"]
    assert table.loc["own segment", "rank"] == 1 and table.loc[CURRENT, "rank"] == 2
    assert pd.isna(table.loc["chain_ladder", "rank"])
    # The pooled rows push the thin safe segment's forecast up: the wrong config's error there is bias.
    cd = tuned.by_segment[(tuned.by_segment["segment"] == "CD") & (tuned.by_segment["del_type"] == "DEL30")]
    wrong, right = (cd.set_index("model").loc[m] for m in (CURRENT, "own segment"))
    assert wrong["bias"] > 0.005 and wrong["mae"] > 3 * right["mae"]


def test_the_score_is_the_mean_over_months_ahead_of_the_portfolio_mae(tuned):
    table = tuned.backtest.by_horizon
    part = table[(table["segment"] == PORTFOLIO) & (table["model"] == "own segment") & (table["del_type"] == "DEL60")]
    assert len(part) == 6  # the last 6 as-of months: at most 6 months ahead were observed
    row = tuned.table.set_index("model").loc["own segment"]
    assert row["mae_DEL60"] == pytest.approx(part["mae"].mean())
    assert row["score"] == pytest.approx(np.mean([row[f"mae_{d}"] for d in DEL_TYPES]))
    best_benchmark = tuned.table[tuned.table["kind"] == "benchmark"]["score"].min()
    assert row["vs_best_benchmark"] == pytest.approx(row["score"] / best_benchmark - 1)


def test_the_config_as_it_is_stays_when_no_candidate_beats_it(two_segments):
    right = WRONG.with_overrides(transitions={"min_count": 0})
    result = tune(two_segments, right, origins=3, candidates={"pooled": {"transitions": {"min_count": 300}}})
    assert result.winner == CURRENT and result.changes == []


def test_every_candidate_is_scored_on_the_same_cells(tuned):
    cells = tuned.backtest.cells
    counts = cells.groupby("model", observed=True).size()
    assert counts.nunique() == 1 and len(counts) == 4


# ------------------------------------------------------------------------------------------ no winner


@pytest.fixture(scope="module")
def one_loan() -> pd.DataFrame:
    """One loan that never falls behind: every model forecasts its DEL (0) exactly, so every score is 0."""
    return frame(loan("L1", "2024-01", "A", [("CURRENT", 1000.0 - 10 * m) for m in range(15)]))


def test_candidates_that_all_score_the_same_have_no_winner(one_loan):
    result = tune(one_loan, Config(), origins=3, candidates={"count": {"transitions": {"weighting": "count"}}})
    table = result.table.set_index("model")
    assert (table["score"] == 0).all()
    assert result.winner is None and result.changes == []
    assert result.undecided == "all 2 candidates score the same (0.000% mean MAE): this panel cannot tell them apart"
    assert list(table["rank"].iloc[:2]) == [1, 1]  # a tie shares its rank
    assert list(table["verdict"]) == ["tied lowest", "tied lowest", "", ""]
    assert table["vs_best_benchmark"].isna().all()  # a ratio to a benchmark error of 0 means nothing


def test_a_tie_at_the_lowest_score_has_no_winner_though_both_beat_the_config(two_segments):
    # With calibration off, the DEL type it would calibrate on changes nothing: the two candidates forecast alike.
    alike = {**RIGHT, "own segment, k on DEL60": {"transitions": {"min_count": 0}, "calibration": {"del_type": "DEL60"}}}
    result = tune(two_segments, WRONG, origins=3, candidates=alike)
    assert result.winner is None and result.changes == []
    assert result.undecided.startswith("2 candidates share the lowest score (")
    assert result.undecided.endswith("mean MAE): own segment; own segment, k on DEL60")
    table = result.table.set_index("model")
    assert list(table["rank"].iloc[:3]) == [3, 1, 1]
    assert list(table["verdict"].iloc[:3]) == ["", "tied lowest", "tied lowest"]


def test_a_candidate_without_a_score_leaves_the_comparison_undecided(tuned):
    cells = tuned.backtest.cells
    without_current = dataclasses.replace(tuned.backtest, cells=cells[cells["model"] != CURRENT])
    result = TuneResult(backtest=without_current, candidates=tuned.candidates)
    assert result.winner is None and result.changes == []
    assert result.undecided == f"1 candidate has no score ({CURRENT}): no other can be said to beat it"
    assert list(result.table["verdict"].iloc[:2]) == ["no score", ""]
    texts = [v for layout in tune_sheets(result)[:2] for block in layout.blocks for v in block.values.ravel()
             if isinstance(v, str)]
    assert any(t.startswith("No winner: 1 candidate has no score") for t in texts)
    assert "No winner" in texts and any(t.startswith("1 candidate has no score") for t in texts)
    benchmarks_only = dataclasses.replace(tuned.backtest, cells=cells[cells["model"].isin(["chain_ladder",
                                                                                           "carry_forward"])])
    result = TuneResult(backtest=benchmarks_only, candidates=tuned.candidates)
    assert result.winner is None and result.undecided.startswith("no candidate has a score")


def test_the_charts_draw_the_benchmarks_as_configured_and_the_best_candidates(two_segments):
    """All 21 built-in candidates and the benchmarks as 23 lines in 6 colours: a legend that squeezed the plot."""
    candidates = {f"k from {0.5 + i / 20:.2f}": {"calibration": {"k_clip": [0.5 + i / 20, 2.0]}} for i in range(6)}
    result = tune(two_segments, WRONG, origins=2, horizon=3, candidates=candidates, strict=True)
    assert len(result.table) >= 8  # as configured, 6 candidates (some may tie and be left out), 2 benchmarks
    sheet = tune_sheets(result)[1]
    titles = [series.title for chart in sheet.charts for series in chart.series]
    assert sheet.charts and all(len(chart.series) <= 6 for chart in sheet.charts)
    assert {CURRENT, "Chain-ladder", "Last value carried forward"} <= set(titles)
    colours = [series.color for series in sheet.charts[0].series]
    assert len(set(colours)) == len(colours)


def test_differences_below_the_shown_precision_show_as_zero(tuned):
    """Float noise between two candidates that score alike was printed "-0.000%" on the Tune sheet."""
    noisy = tuned.table.assign(vs_configured=-3e-9, vs_configured_lo=-2e-6, vs_configured_hi=4e-6)
    result = dataclasses.replace(tuned)
    result.__dict__["table"] = noisy  # the cached table, as the sheet reads it
    sheet = tune_sheets(result)[1]
    values = [v for block in sheet.blocks if block.values.dtype.kind == "f" for v in block.values.ravel()]
    assert not any(v == 0 and np.signbit(v) for v in values)
    assert not any(0 < abs(v) < 5e-6 for v in values)


def test_a_lead_below_the_shown_precision_is_a_tie(tuned):
    """Scores closer than 0.001 DEL points (the last digit the ranking shows) tie; a larger lead wins."""
    cells = tuned.backtest.cells
    current = cells[cells["model"] == CURRENT]
    score = tuned.table.set_index("model").loc[CURRENT, "score"]
    for lead, winner in ((0.000009, None), (0.000011, "own segment")):
        # The config's own forecasts with every error scaled down: the score, linear in them, is `lead` lower.
        own = current.copy()
        own.loc[:, "model"] = "own segment"
        own["forecast"] = own["actual"] + (own["forecast"] - own["actual"]) * (1 - lead / score)
        backtest = dataclasses.replace(tuned.backtest,
                                       cells=pd.concat([cells[cells["model"] != "own segment"], own]))
        assert TuneResult(backtest=backtest, candidates=tuned.candidates).winner == winner


def test_a_winner_behind_a_benchmark_is_said(tuned):
    """On the real excerpt's forbearance months every candidate lost to the last value by a third or more, and tune
    named a winner to write with no word of it."""
    assert tuned.behind_benchmark is None
    cells = tuned.backtest.cells
    better = cells[cells["model"] == "own segment"].copy()
    better.loc[:, "model"] = "carry_forward"
    better["forecast"] = better["actual"] + (better["forecast"] - better["actual"]) * 0.5
    backtest = dataclasses.replace(tuned.backtest, cells=pd.concat([cells[cells["model"] != "carry_forward"], better]))
    result = TuneResult(backtest=backtest, candidates=tuned.candidates)
    best = result.table.set_index("model").loc["own segment", "score"]
    assert result.winner == "own segment"
    assert result.behind_benchmark == (
        f"no candidate beats the benchmark 'Last value carried forward' on these as-of months: the best, 'own "
        f"segment', scores {best:.3%} mean MAE against {best / 2:.3%} (+100.0%); on this data the chain's forecast "
        f"has been worse than that benchmark, so read the forecasts beside it")
    summary = tune_summary(result, [])
    assert any("No candidate beats the benchmark" in str(v) for b in summary.blocks for v in b.values.ravel())
    better["forecast"] = better["actual"]  # a benchmark with no error: no ratio to it
    backtest = dataclasses.replace(tuned.backtest, cells=pd.concat([cells[cells["model"] != "carry_forward"], better]))
    exact = TuneResult(backtest=backtest, candidates=tuned.candidates).behind_benchmark
    assert f"scores {best:.3%} mean MAE against 0.000%; on this data" in exact, exact


# ------------------------------------------------------------------------------------------ the candidates


def test_the_winners_lead_has_an_interval_and_a_lead_of_one_cohort_is_within_noise(tuned):
    """The right candidate's lead over the wrong config is clear; the same lead left to one cohort is not."""
    table = tuned.table.set_index("model")
    difference, lo, hi = tuned.lead
    assert difference == pytest.approx(table.loc["own segment", "score"] - table.loc[CURRENT, "score"])
    assert lo < difference < hi < 0 and tuned.within_noise is None
    assert (table.loc["own segment", "vs_configured_lo"], table.loc["own segment", "vs_configured_hi"]) == (lo, hi)
    assert table.loc[CURRENT, ["vs_configured", "vs_configured_lo", "vs_configured_hi"]].tolist() == [0, 0, 0]
    cells = tuned.backtest.cells.copy()
    own, current = (cells["model"] == m for m in ("own segment", CURRENT))
    error = (cells["forecast"] - cells["actual"]).abs()
    gain = pd.Series(error[current].to_numpy() - error[own].to_numpy(),  # the same cells, in the same order
                     index=cells.loc[own, "cohort"].to_numpy())[(cells.loc[own, "segment"] == PORTFOLIO).to_numpy()]
    one = cells["cohort"] == gain.groupby(level=0, observed=True).sum().idxmax()
    # "own segment" forecasts as the wrong config does, except in one cohort
    cells.loc[own & ~one, "forecast"] = cells.loc[current & ~one, "forecast"].to_numpy()
    narrow = dataclasses.replace(tuned, backtest=dataclasses.replace(tuned.backtest, cells=cells))
    assert narrow.winner == "own segment" and narrow.lead[2] >= 0
    assert narrow.within_noise.startswith("the lead of 'own segment' over 'as configured', -0.") and (
        "is within noise: its 90% interval [" in narrow.within_noise)


def test_unknown_keys_are_named():
    config = Config()
    # A key no version will have (the estimation modes of issue 14 add keys: a test must not depend on them).
    assert unknown_keys({"transitions": {"crystal_ball": "on", "weighting": "count"}}, config) == \
        ["[transitions] crystal_ball"]
    assert unknown_keys({"columns": {"ead": "X"}}, config)[0].startswith("[columns]")
    assert "fixed" in unknown_keys({"forecast": {"max_mob": 24}}, config)[0]
    assert unknown_keys({"calibration": {"mode": "none"}}, config) == []


def test_built_in_candidates_of_modes_not_in_this_version_are_left_out_with_a_note():
    resolved = resolve_candidates(Config(), {**CANDIDATES, "future": {"transitions": {"crystal_ball": "on"}}})
    assert "future" not in resolved.configs
    assert any("'future': [transitions] crystal_ball" in note for note in resolved.notes)
    # The defaults equal one of the built-in candidates: it is scored once, as the config as it is.
    assert CURRENT in resolved.configs and "Bayes, balance-weighted, cohort factors (the defaults)" not in resolved.configs
    assert set(resolved.configs) - {CURRENT} <= set(CANDIDATES)


def test_built_in_candidates_mean_the_same_whatever_the_users_config_holds():
    """Keys a candidate left out came from the user's config: with min_count 100 "the defaults" had the settings of
    "as configured" and was left out, and "as specified, pooled below 100 loans" those of "as specified"."""
    user = Config().with_overrides(transitions={"min_count": 100}, calibration={"vintage_correlation": 0.0})
    resolved = resolve_candidates(user)
    assert not [note for note in resolved.notes if "same settings" in note]
    assert resolved.configs["Bayes, balance-weighted, cohort factors (the defaults)"] == Config()
    other = resolve_candidates(Config().with_overrides(transitions={"half_life": 6}, calibration={"k_clip": (0.8, 1.25)}))
    assert all(resolved.configs[name] == other.configs[name] for name in CANDIDATES)
    # What the tables say each sets: its difference to the shipped defaults, not the 21 keys it spells out.
    assert overrides_text(resolved.overrides["defaults, EAD-weighted"]) == "[transitions] weighting = ead"
    assert overrides_text(resolved.overrides["Bayes, balance-weighted, cohort factors (the defaults)"]) == \
        "the shipped defaults"
    assert overrides_text(resolved.overrides[CURRENT]) == "config.toml as it is"


def test_a_users_unknown_key_is_an_error_naming_it():
    with pytest.raises(CandidateError, match=r"'mine': \[transitions\] estimater"):
        resolve_candidates(Config(), {"mine": {"transitions": {"estimater": "bayes"}}}, strict=True)


def test_a_bad_value_names_the_candidate_and_the_key():
    with pytest.raises(CandidateError, match=r"candidate .x.: invalid configuration\n  \[transitions\] weighting"):
        resolve_candidates(Config(), {"x": {"transitions": {"weighting": "loans"}}})


def test_a_candidate_may_not_take_a_benchmarks_name():
    with pytest.raises(CandidateError, match="chain_ladder"):
        resolve_candidates(Config(), {"chain_ladder": {"calibration": {"mode": "none"}}})


def test_settings_text_names_every_estimation_key():
    text = settings_text(Config())
    assert "[transitions] weighting = balance, min_count = 30, estimator = bayes, prior_strength = auto" in text
    # Not a key the estimator does not read: bayes rows take their prior, never the fallback (it had been named).
    assert "fallback" not in text
    specified = settings_text(Config().as_specified())
    assert "fallback = pooled, estimator = specified" in specified and "prior_" not in specified
    assert "[calibration] mode = stepwise" in text and "max_mob" not in text


# ------------------------------------------------------------------------------------------ writing


CONFIG_TEXT = """# my settings
[transitions]
weighting = "ead"      # how rows are weighted
min_count = 300        # thin rows borrow pooled data

[calibration]
mode = "none"  # keep it simple
"""


def test_write_settings_changes_the_value_and_keeps_every_comment(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(CONFIG_TEXT)
    write_settings(path, [("transitions", "min_count", 300, 0), ("calibration", "del_type", "DEL30", "DEL60")])
    text = path.read_text()
    for comment in ("# my settings", "# how rows are weighted", "# thin rows borrow pooled data", "# keep it simple"):
        assert comment in text
    data = tomllib.loads(text)
    assert data["transitions"] == {"weighting": "ead", "min_count": 0}
    assert data["calibration"] == {"mode": "none", "del_type": "DEL60"}
    assert "min_count = 0        # thin rows borrow pooled data" in text


def test_write_settings_adds_a_missing_section_and_writes_tuples_as_lists(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("# only a comment\n")
    write_settings(path, [("calibration", "k_clip", (0.5, 2.0), (0.8, 1.25))])
    assert tomllib.loads(path.read_text()) == {"calibration": {"k_clip": [0.8, 1.25]}}
    assert path.read_text().startswith("# only a comment")


def test_an_invalid_result_leaves_the_old_file(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(CONFIG_TEXT)
    with pytest.raises(ConfigError, match=r"\[transitions\] weighting"):
        write_settings(path, [("transitions", "weighting", "ead", "loans")])
    assert path.read_text() == CONFIG_TEXT
    assert [p.name for p in tmp_path.iterdir()] == ["config.toml"]


def test_a_new_key_goes_after_its_sections_last_key_and_a_new_section_before_the_alert_rules(tmp_path):
    """Appended, a new key landed under the next section's heading comment (then the section), and a new section
    after [[alerts.rules]], as if it were part of the last rule."""
    path = tmp_path / "config.toml"
    path.write_text('[transitions]\nweighting = "count"  # mine\n# half_life = 0\n\n# ===== forecast =====\n'
                    '[forecast]\nmax_mob = 24\n\n[[alerts.rules]]\nrule = "del_above"\ndel_type = "DEL30"\nmob = 6\n'
                    'threshold = 0.05\n')
    write_settings(path, [("transitions", "half_life", 0.0, 12.0), ("calibration", "mode", "none", "stepwise")])
    assert path.read_text() == (
        '[transitions]\nweighting = "count"  # mine\nhalf_life = 12.0\n# half_life = 0\n\n# ===== forecast =====\n'
        '[forecast]\nmax_mob = 24\n\n[calibration]\nmode = "stepwise"\n\n[[alerts.rules]]\nrule = "del_above"\n'
        'del_type = "DEL30"\nmob = 6\nthreshold = 0.05\n')


def test_a_failed_replace_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "config.toml"
    path.write_text(CONFIG_TEXT)

    def refuse(*_args):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OutputError, match="previous file is unchanged"):
        write_settings(path, [("transitions", "min_count", 300, 0)])
    assert path.read_text() == CONFIG_TEXT
    assert [p.name for p in tmp_path.iterdir()] == ["config.toml"]


# ------------------------------------------------------------------------------------------ the CLI


def test_cli_tune_prints_the_table_writes_csv_and_the_winner(two_segments, tmp_path, capsys):
    data = tmp_path / "panel.parquet"
    two_segments.to_parquet(data)
    config = tmp_path / "config.toml"
    config.write_text("[forecast]\nmax_mob = 12  # months\n[calibration]\nmode = \"none\"\ncohort_factor = \"none\"\n"
                      "[transitions]\nestimator = \"specified\"\nmin_count = 300  # pool thin rows\n")
    candidates = tmp_path / "candidates.toml"
    candidates.write_text('["own segment"]\ntransitions = { min_count = 0 }\n')
    args = ["tune", str(data), "--config", str(config), "--candidates", str(candidates), "--origins", "6", "-q",
            "--out", str(tmp_path / "out")]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "own segment *" in printed and "Chain-ladder" in printed and "--write" in printed
    assert "min_count = 300" in config.read_text()  # not written without --write
    table = pd.read_csv(tmp_path / "out" / "tune.csv")
    assert list(table["model"]) == [CURRENT, "own segment", "chain_ladder", "carry_forward"]
    assert list(table["verdict"].fillna("")) == ["", "winner", "", ""]
    assert {"tune_by_horizon.csv", "tune_by_segment.csv"} <= {p.name for p in (tmp_path / "out").iterdir()}

    assert main([*args, "--write"]) == 0
    assert "[transitions] min_count 300 -> 0" in capsys.readouterr().out
    text = config.read_text()
    assert "min_count = 0  # pool thin rows" in text and "max_mob = 12  # months" in text


def test_cli_tune_write_goes_through_a_link_keeps_the_mode_and_never_overwrites_edits(two_segments, tmp_path,
                                                                                      capsys, monkeypatch):
    """--write replaced a linked config by a plain file (the team's shared file unchanged), made a private one
    readable by all (0600 -> 0644), overwrote edits saved while the candidates ran, and found a read-only config only
    after the whole run."""
    import pyxl_del.backtest.tune as tune_module

    data = tmp_path / "panel.parquet"
    two_segments.to_parquet(data)
    shared = tmp_path / "team" / "config.toml"
    shared.parent.mkdir()
    shared.write_text(WRONG.to_toml())
    shared.chmod(0o600)
    link = tmp_path / "config.toml"
    link.symlink_to(shared)
    args = ["tune", str(data), "--config", str(link), "--candidates", str(_candidates(tmp_path)), "--origins", "6",
            "-q", "--out", str(tmp_path / "out"), "--write", "--force"]
    assert main(args) == 0
    assert "min_count 300 -> 0" in capsys.readouterr().out
    assert link.is_symlink() and tomllib.loads(shared.read_text())["transitions"]["min_count"] == 0
    assert oct(shared.stat().st_mode & 0o777) == oct(0o600)

    # Edited while the candidates ran: left as the user saved it.
    shared.write_text(WRONG.to_toml())
    real_tune = tune_module.tune

    def tune_and_edit(*a, **k):
        result = real_tune(*a, **k)
        shared.write_text(WRONG.to_toml() + "# edited while tune ran\n")
        return result

    monkeypatch.setattr(tune_module, "tune", tune_and_edit)
    assert main(args) == 2
    assert "changed while the candidates were compared, so it is left as it is" in capsys.readouterr().err
    assert shared.read_text().endswith("# edited while tune ran\n")
    monkeypatch.undo()

    # Read-only: refused before any backtest is run.
    shared.chmod(0o400)
    monkeypatch.setattr(tune_module, "tune", lambda *a, **k: pytest.fail("ran before refusing"))
    assert main(args) == 1
    assert "is read-only, so it is left as it is" in capsys.readouterr().err
    shared.chmod(0o600)


def test_cli_tune_writes_a_lead_that_may_be_chance_only_with_force(two_segments, tmp_path, capsys):
    """Four cohorts give no interval: the right candidate still wins, but --write leaves the config alone."""
    data = tmp_path / "panel.parquet"
    two_segments[two_segments["DISBURSAL_MONTH"].isin(COHORTS[:4])].to_parquet(data)
    config = tmp_path / "config.toml"
    config.write_text(WRONG.to_toml())
    args = ["tune", str(data), "--config", str(config), "--candidates", str(_candidates(tmp_path)), "--origins", "6",
            "-q", "--out", str(tmp_path / "out"), "--write"]
    before = config.read_text()
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "winner: own segment" in printed and "with 4 cohorts the lead of 'own segment'" in printed
    assert "not written: " in printed and config.read_text() == before
    assert main([*args, "--force"]) == 0
    assert "[transitions] min_count 300 -> 0" in capsys.readouterr().out
    assert tomllib.loads(config.read_text())["transitions"]["min_count"] == 0


def test_cli_tune_says_plainly_when_the_candidates_cannot_be_told_apart(one_loan, tmp_path, capsys):
    from openpyxl import load_workbook

    data = tmp_path / "one_loan.csv"
    one_loan.to_csv(data, index=False)
    config = tmp_path / "config.toml"
    config.write_text("# the defaults\n")
    args = ["tune", str(data), "--config", str(config), "--origins", "3", "-q", "--write"]
    assert main([*args, "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "no winner: all 21 candidates score the same (0.000% mean MAE)" in printed
    assert f"not written: {config} is left as it is" in printed
    assert config.read_text() == "# the defaults\n"
    assert " *" not in printed and "nan" not in printed and "lowest error" not in printed
    assert "n/a" in printed  # against benchmarks whose error is 0
    table = pd.read_csv(tmp_path / "out" / "tune.csv", keep_default_na=False)
    assert set(table.loc[table["kind"] == "candidate", "verdict"]) == {"tied lowest"}
    assert set(table.loc[table["kind"] == "candidate", "rank"].astype(int)) == {1}

    assert main([*args, "--out", str(tmp_path / "tune.xlsx")]) == 0
    book = load_workbook(tmp_path / "tune.xlsx")
    texts = [v for ws in book for row in ws.iter_rows(values_only=True) for v in row if isinstance(v, str)]
    assert not any("winner)" in t or t.startswith("Winner:") for t in texts)
    assert book["Tune"]["A3"].value.startswith("No winner: all 21 candidates score the same")
    summary = [row for row in book["Tune summary"].iter_rows(values_only=True)]
    assert ("No winner",) == next(r[:1] for r in summary if r[0] in ("The winner", "No winner"))
    assert any(isinstance(v, str) and v.startswith("nothing: all 21 candidates score the same") for r in summary
               for v in r)
    bold = {book["Tune"].cell(row, 3).font.b for row in range(6, 6 + len(table))}
    assert bold == {False}  # no row is marked as the winner's


def test_cli_tune_reports_unknown_candidate_keys(two_segments, tmp_path, capsys):
    data = tmp_path / "panel.parquet"
    two_segments.to_parquet(data)
    candidates = tmp_path / "candidates.toml"
    candidates.write_text('["mine"]\ntransitions = { estimater = "bayes" }\n')
    assert main(["tune", str(data), "--candidates", str(candidates), "--origins", "2", "-q",
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "candidates.toml" in err and "[transitions] estimater" in err


def test_cli_tune_writes_the_workbook(two_segments, tmp_path, capsys):
    from openpyxl import load_workbook

    data = tmp_path / "panel.parquet"
    two_segments.to_parquet(data)
    config = tmp_path / "config.toml"
    config.write_text(WRONG.to_toml())
    out = tmp_path / "tune.xlsx"
    assert main(["tune", str(data), "--config", str(config), "--candidates", str(_candidates(tmp_path)),
                 "--origins", "3", "-q", "--out", str(out)]) == 0
    book = load_workbook(out)
    assert book.sheetnames == ["Tune summary", "Tune", "Tune by horizon"]
    labels = [row[0] for row in book["Tune"].iter_rows(min_row=6, max_row=9, max_col=1, values_only=True)]
    assert labels == [CURRENT, "own segment (winner)", "Chain-ladder", "Last value carried forward"]
    bold = [book["Tune"].cell(row, 3).font.b for row in range(6, 10)]
    assert bold == [False, True, False, False]  # the winner's row, and only it
    assert book["Tune"].cell(5, 12).value == "What it sets"
    assert book["Tune"].cell(7, 12).value == "[transitions] min_count = 0"


def _candidates(folder):
    path = folder / "c.toml"
    path.write_text('["own segment"]\ntransitions = { min_count = 0 }\n')
    return path


def test_report_backtest_puts_the_models_error_beside_the_benchmarks_in_run_info(two_segments, tmp_path, capsys):
    from openpyxl import load_workbook

    data = tmp_path / "panel.parquet"
    two_segments.to_parquet(data)
    out = tmp_path / "report.xlsx"
    assert main(["report", str(data), "--backtest", "3", "-q", "--out", str(out)]) == 0
    assert "backtest: Portfolio MAE" in capsys.readouterr().out
    values = {row[0]: row[1] for row in load_workbook(out)["Run info"].iter_rows(max_col=2, values_only=True)}
    assert values["Model"] == settings_text(Config())
    assert "chain-ladder" in values["Backtest"] and "last value" in values["Backtest"]
    # The last 3 as-of months leave 1..3 months of data after them: the text says what was scored, not --horizon.
    assert values["Backtest"].startswith("Portfolio MAE, mean over 1..3 months ahead at 3 as-of months")
    verdicts = values["Backtest"].split("; against the better benchmark: ")[1].split("; ")
    assert [v.split()[0] for v in verdicts] == list(DEL_TYPES), values["Backtest"]
    assert all(v.endswith((" better", " worse", " within noise")) and " [" in v for v in verdicts), verdicts


def test_backtest_text_quotes_the_portfolio_mae(tuned):
    wide = portfolio_mae(tuned.backtest)
    text = backtest_text(tuned.backtest)
    assert f"DEL30 {wide.loc[CURRENT, 'DEL30']:.2%} (own segment {wide.loc['own segment', 'DEL30']:.2%}" in text


# ------------------------------------------------------------------------------------------ vintage books


def test_vintage_book_truth_has_the_documented_shapes():
    book = simulate_vintage_book(3, cohorts=10, loans={"A": 50, "B": 10}, crisis=Crisis("2025-10", 2, 2.0))
    K, M = len(Config().buckets.order), Config().forecast.max_mob
    assert book.matrices.shape == (10, 2, M, K, K) and book.base.shape == (2, M, K, K)
    assert book.cohort_factors.shape == (10,) and book.crisis.shape == (10, M)
    np.testing.assert_allclose(book.matrices.sum(axis=-1), 1.0)
    assert book.cohorts[-1] == "2025-12" and book.cohorts[0] == "2025-03" and book.segments == ("A", "B")
    panel = book.panel
    assert set(panel["PRODUCT_TYPE"]) == {"A", "B"}
    assert panel.groupby("PRODUCT_TYPE")["AGREEMENT_ID"].nunique().to_dict() == {"A": 500, "B": 100}
    # The crisis is a window of reporting months: cohort 2025-09 (index 6) is in it at steps 1 and 2 (Oct, Nov).
    assert list(np.nonzero(book.crisis[6] > 1)[0]) == [1, 2]
    assert list(np.nonzero(book.crisis[9] > 1)[0]) == []  # 2025-12 starts after it


def test_vintage_book_scales_the_roll_forward_rates_by_cohort_factor_and_crisis():
    cfg_ = Config()
    book = simulate_vintage_book(4, cohorts=8, loans={"A": 5}, crisis=Crisis("2025-08", 3, 1.5))
    i, j = cfg_.buckets.order.index("CURRENT"), cfg_.buckets.order.index("DPD1+")
    expected = book.base[0, :, i, j][None] * book.cohort_factors[:, None] * book.crisis
    np.testing.assert_allclose(book.matrices[:, 0, :, i, j], np.minimum(expected, 0.95))
    flat = simulate_vintage_book(4, cohorts=8, loans={"A": 5}, cohort_log_sd=0.0)
    np.testing.assert_allclose(flat.matrices, np.broadcast_to(flat.base, flat.matrices.shape))


def test_vintage_book_known_at_hides_the_shock_not_yet_seen():
    """A forecaster at the as-of knows the steps that started before it: the shock of later steps is 1 (blind) or
    the last seen step's (persist). Before the crisis that is the crisis-free book; after it, the truth itself."""
    book = simulate_vintage_book(4, cohorts=8, loans={"A": 5}, crisis=Crisis("2025-08", 3, 1.5))
    calm = simulate_vintage_book(4, cohorts=8, loans={"A": 5})
    np.testing.assert_array_equal(book.known_at("2025-08"), calm.matrices)
    np.testing.assert_array_equal(book.known_at("2025-08", persist=True), calm.matrices)  # no crisis step seen yet
    np.testing.assert_array_equal(book.known_at("2026-01"), book.matrices)
    # At 2025-09 the August steps are seen: cohort 2025-05 (index 0) has seen step 3 (Aug) and not step 4 (Sep).
    blind, persist = book.known_at("2025-09"), book.known_at("2025-09", persist=True)
    np.testing.assert_array_equal(blind[0, :, :4], book.matrices[0, :, :4])
    np.testing.assert_array_equal(blind[0, :, 4:], calm.matrices[0, :, 4:])
    assert not np.array_equal(blind[0, :, 4], book.matrices[0, :, 4])  # the September shock is hidden
    shocked = simulate_vintage_book(4, cohorts=8, loans={"A": 5}, crisis=Crisis("2025-05", 100, 1.5))
    np.testing.assert_array_equal(persist[0, :, 4:], shocked.matrices[0, :, 4:])  # 1.5 carried on for good


def test_vintage_book_can_make_neighbouring_vintages_alike():
    """cohort_correlation: the cohorts' log factors are an AR(1) series (lag-one correlation as given, log-sd kept);
    0 draws the independent factors it always drew."""
    logs = np.log(simulate_vintage_book(4, cohorts=400, loans={"A": 1}, cohort_correlation=0.9).cohort_factors)
    assert np.corrcoef(logs[1:], logs[:-1])[0, 1] == pytest.approx(0.9, abs=0.05)
    assert logs.std() == pytest.approx(0.25, abs=0.06)
    independent = np.log(simulate_vintage_book(4, cohorts=400, loans={"A": 1}).cohort_factors)
    assert abs(np.corrcoef(independent[1:], independent[:-1])[0, 1]) < 0.1
    assert independent.std() == pytest.approx(0.25, abs=0.03)
    with pytest.raises(ValueError, match="cohort_correlation"):
        simulate_vintage_book(4, cohorts=3, cohort_correlation=1.0)


def test_vintage_book_takes_the_segment_profiles_given():
    """A profile's risk scales the delinquency hazards: risk 0 gives a segment nobody falls behind in; a segment the
    profiles do not name gets the middle profile, as it does without them."""
    cfg_ = Config()
    i, j = cfg_.buckets.order.index("CURRENT"), cfg_.buckets.order.index("DPD1+")
    loans = {"Z": 40, "Q": 40}
    book = simulate_vintage_book(4, cohorts=6, loans=loans, profiles={"Q": {"risk": 0.0, "prepay": 0.02}})
    assert (book.matrices[:, 1, :, i, j] == 0).all() and (book.matrices[:, 0, :, i, j] > 0).all()
    states = book.panel.groupby("PRODUCT_TYPE")["STATE_MODEL"].unique()
    assert set(states["Q"]) <= {"CURRENT", "PREPAY"} and "DPD1+" in set(states["Z"])
    shipped = simulate_vintage_book(4, cohorts=6, loans=loans)
    np.testing.assert_array_equal(shipped.base[0], book.base[0])
    np.testing.assert_array_equal(shipped.base[1], shipped.base[0])  # both unnamed: the middle profile


def test_the_oracle_on_its_own_book_beats_the_markov_chain():
    book = simulate_vintage_book(11, cohorts=30, loans={"A": 300, "B": 60}, cohort_log_sd=0.35)
    config = Config()
    panel = validate_panel(book.panel, config, "vintage book")
    forecasters = {"markov": FORECASTERS["markov"], "oracle": oracle(book.matrices, book.cohorts, book.segments)}
    result = backtest_forecasters(panel, config, Calendar.of(panel).last(6), forecasters)
    wide = portfolio_mae(result)
    assert (wide.loc["oracle"] < wide.loc["markov"]).all()


def test_the_oracle_of_a_homogeneous_book_is_the_true_chain():
    """Known answer: with no cohort effect the oracle's matrices are the segments' base matrices, so its forecast
    equals the uncalibrated chain fitted on infinitely many loans: on a large book the two agree closely."""
    book = simulate_vintage_book(5, cohorts=14, loans={"A": 3000}, cohort_log_sd=0.0)
    config = cfg(forecast={"max_mob": 12})
    panel = validate_panel(book.panel, config, "book")
    forecasters = {"markov_uncalibrated": FORECASTERS["markov_uncalibrated"],
                   "oracle": oracle(book.matrices, book.cohorts, book.segments)}
    result = backtest_forecasters(panel, config, Calendar.of(panel).last(1), forecasters)
    cells = result.cells[result.cells["segment"] == "A"]
    by_model = {m: part["forecast"].to_numpy() for m, part in cells.groupby("model", observed=True)}
    np.testing.assert_allclose(by_model["oracle"], by_model["markov_uncalibrated"], atol=0.004)


def test_the_oracle_refuses_a_book_it_does_not_know():
    book = simulate_vintage_book(6, cohorts=4, loans={"A": 20})
    other = simulate_vintage_book(6, cohorts=4, loans={"Z": 20})
    panel = validate_panel(other.panel, Config(), "other")
    with pytest.raises(Exception, match="no true matrices"):
        backtest_forecasters(panel, Config(), Calendar.of(panel).last(1),
                             {"oracle": oracle(book.matrices, book.cohorts, book.segments)})
