"""Decisions: the rules and their reasons, one implementation for frames, models, =DEL_DECIDE and the CLI."""

from __future__ import annotations

import math
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _decision import economics_config, tiny_scored_panel, tiny_scored_twin

from pyxl_del.cli import main
from pyxl_del.cli.common import EXIT_BAD_INPUT, EXIT_OK
from pyxl_del.decision.decide import (
    DECISION_COLUMNS,
    ENGINES,
    Application,
    DecisionEngine,
    DecisionInputError,
    decide,
    with_config,
)
from pyxl_del.decision.optimise import current_policy
from pyxl_del.decision.policy import Policy, PolicyError
from pyxl_del.decision.twin import fit_twin
from pyxl_del.excel.decide_udf import decide_cells

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    return tiny_scored_panel()


@pytest.fixture(scope="module")
def twin():
    return tiny_scored_twin()


@pytest.fixture(scope="module")
def policy(twin) -> Policy:
    """Cut-off 600 for CASH LOAN, none for CD, no budget for TW/Moto."""
    base = current_policy(twin)
    segments = {name: p.model_dump() for name, p in base.segments.items()}
    segments["CASH LOAN"] |= {"cutoff": 600.0, "apr": 0.30}
    segments["TW/Moto"] |= {"budget_share": 0.0}
    return Policy.model_validate({"segments": segments, "budget": base.budget})


def test_rules_and_reasons(twin, policy):
    d = decide(Application(segment="CASH LOAN", score=598, amount=10_000), policy, twin)
    assert (d.decision, d.reason_code) == ("DECLINE", "SCORE_BELOW_CUTOFF")
    assert d.reason == "score 598 below cut-off 600 for CASH LOAN"
    assert d.offered_apr is None and d.policy_apr == pytest.approx(0.30)
    assert d.policy_version == policy.version_under(twin.config)

    ok = decide(Application(segment="CASH LOAN", score=600, amount=10_000), policy, twin)
    assert (ok.decision, ok.offered_apr) == ("APPROVE", pytest.approx(0.30))
    assert ok.reason == "score 600 at or above cut-off 600 for CASH LOAN; APR 30.00%"

    nb = decide(Application(segment="TW/Moto", score=700, amount=10_000), policy, twin)
    assert nb.reason_code == "NO_BUDGET" and "TW/Moto" in nb.reason

    cheap = decide(Application(segment="CD", score=650, amount=5_000, apr=0.06), policy, twin)
    assert cheap.reason_code == "APR_BELOW_BREAK_EVEN"
    assert cheap.reason.startswith("requested APR 6.00% below break-even")
    assert cheap.expected_value < 0
    wild = decide(Application(segment="CD", score=650, amount=5_000, apr=0.95), policy, twin)
    assert wild.reason_code == "APR_OUT_OF_RANGE"
    asked = decide(Application(segment="CD", score=650, amount=5_000, apr=0.40), policy, twin)
    assert (asked.decision, asked.offered_apr, asked.requested_apr) == ("APPROVE", 0.40, 0.40)
    assert "no cut-off for CD" in asked.reason


def test_figures_come_from_the_score_band(twin, policy):
    s = twin.segments.index("CASH LOAN")
    edges = twin.band_edges[s]
    for b in (0, 4, twin.n_bands - 1):
        score = float(np.floor((edges[b] + edges[b + 1]) / 2))
        d = decide(Application(segment="CASH LOAN", score=score, amount=1_000, apr=0.5), policy, twin)
        assert d.band == b + 1
        assert d.pd_12m == pytest.approx(twin.pd12[s, b]) and d.pd_lifetime == pytest.approx(twin.pd_life[s, b])
        assert d.expected_loss == pytest.approx(1_000 * twin.lgd[s] * twin.writeoff[s, b].sum())
        assert d.expected_value == pytest.approx(1_000 * twin.unit_value(0.5)[s, b])
    # Scores beyond the twin's edges fall in the outer bands.
    assert decide(Application(segment="CD", score=-1e9, amount=1, apr=0.5), policy, twin).band == 1
    assert decide(Application(segment="CD", score=1e9, amount=1, apr=0.5), policy, twin).band == twin.n_bands


def test_frame_models_and_singles_agree(twin, policy):
    rng = np.random.default_rng(3)
    n = 2_000
    frame = pd.DataFrame({"application_id": [f"A{i}" for i in range(n)],
                          "segment": rng.choice(list(twin.segments), n), "score": rng.normal(600, 60, n).round(),
                          "amount": rng.lognormal(9.5, 0.4, n).round(2),
                          "apr": np.where(rng.random(n) < 0.3, rng.uniform(0.02, 0.9, n).round(3), np.nan)})
    out = decide(frame, policy, twin)
    assert list(out.columns) == list(DECISION_COLUMNS) and len(out) == n
    assert set(out["reason_code"].unique()) >= {"APPROVED", "SCORE_BELOW_CUTOFF", "NO_BUDGET",
                                                 "APR_BELOW_BREAK_EVEN", "APR_OUT_OF_RANGE"}
    records = frame.replace({np.nan: None}).to_dict("records")
    models = decide(records, policy, twin)
    for i in rng.choice(n, 50, replace=False):
        one = decide(Application(**records[i]), policy, twin)
        assert one == models[i]
        row = out.iloc[i]
        assert (row["decision"], row["reason"], row["band"]) == (one.decision, one.reason, one.band)
        assert row["expected_value"] == pytest.approx(one.expected_value)
        assert (math.isnan(row["offered_apr"]) and one.offered_apr is None) or row["offered_apr"] == one.offered_apr


def test_bad_applications_name_the_rows(twin, policy):
    frame = pd.DataFrame({"segment": ["CD", "", "CD", "Nope"], "score": [600, 600, "x", 600],
                          "amount": [100, 100, 100, -5], "apr": [None, 7, None, None]})
    with pytest.raises(DecisionInputError) as err:
        decide(frame, policy, twin)
    text = str(err.value)
    assert "'segment' is empty in row 3" in text and "'score' holds 'x' (not a number) in row 4" in text
    assert "'amount' must be a number > 0 in row 5" in text and "'apr' must be a fraction" in text
    with pytest.raises(DecisionInputError, match=r"unknown segment 'Nope' in row 2 \(known: CASH LOAN, CD, TW/Moto\)"):
        decide(frame.iloc[[3]].assign(amount=1), policy, twin)
    with pytest.raises(DecisionInputError, match="missing column 'amount'"):
        decide(frame.drop(columns="amount"), policy, twin)
    with pytest.raises(DecisionInputError, match="amount"):
        decide([{"segment": "CD", "score": 1, "amount": 0}], policy, twin)


def test_mapped_column_names_are_accepted(twin, policy, panel):
    apps = pd.DataFrame({"PRODUCT_TYPE": ["CD"], "SCORE": [650.0], "amount": [1000.0], "APR": [0.4]})
    assert decide(apps, policy, twin)["offered_apr"].iloc[0] == 0.4


def test_single_decision_reads_the_built_engine(twin, policy, monkeypatch):
    """A decision is a lookup in the engine built once per (twin, policy version), never a rebuild: that is what
    keeps one decision at ~1 ms (benchmarks/bench_decide.py measures the time; a test asserts the behaviour)."""
    app = Application(segment="CASH LOAN", score=640, amount=10_000)
    first = decide(app, policy, twin)
    builds = []

    def build(*args):
        builds.append(args)
        raise AssertionError("engine rebuilt for a decision")

    monkeypatch.setattr(DecisionEngine, "build", build)
    assert all(decide(app, policy, twin) == first for _ in range(200)) and not builds
    ENGINES.clear()  # a broken memo: the rebuild is seen
    with pytest.raises(AssertionError, match="rebuilt"):
        decide(app, policy, twin)
    assert len(builds) == 1


def test_new_policy_reuses_the_twin(twin):
    cfg = twin.config.with_overrides(policy={"budget": 123.0})
    assert with_config(twin, cfg).transition_matrix is twin.transition_matrix
    with pytest.raises(ValueError, match="fitted again"):
        with_config(twin, twin.config.with_overrides(risk={"lgd": 0.5}))


# ------------------------------------------------------------------------------------------ =DEL_DECIDE


def test_del_decide_udf(panel, tmp_path):
    from xlsm.xlwings_win import windows_udfs

    data = tmp_path / "panel.parquet"
    panel.to_parquet(data)
    with windows_udfs() as runtime:
        m = runtime.load("udfs.decide_udfs")
        info = m.DEL_DECIDE.__xlfunc__
        assert info["volatile"] is False and info["call_in_wizard"] is False and info["category"] == "pyxl_del"
        row = runtime.call(m.DEL_DECIDE, "CD", 650.0, 5000.0, None, str(data))
        assert len(row) == 1 and row[0][0] == "APPROVE" and row[0][1] == "APPROVED"
        # No config: default economics, so the value and price carry ILLUSTRATIVE in the last column.
        assert row[0][-1].startswith("ILLUSTRATIVE: default economics") and "[economics] funding_rate" in row[0][-1]
        cheap = float(panel.loc[panel["PRODUCT_TYPE"] == "CD", "APR"].min()) + 0.001  # in the booked range
        table = runtime.call(m.DEL_DECIDE, ["CD", "CASH LOAN"], [650.0, 500.0], [5000.0, 100.0], cheap, str(data))
        assert table[0][:3] == ["Decision", "Reason code", "Reason"] and table[0][-1] == "Caveat" and len(table) == 3
        assert table[1][1] == "APR_BELOW_BREAK_EVEN"
        low = runtime.call(m.DEL_DECIDE, "CD", 650.0, 5000.0, cheap - 0.002, str(data))
        assert low[0][1] == "APR_OUT_OF_RANGE" and "range allowed for CD" in low[0][2]
        bad = runtime.call(m.DEL_DECIDE, "Nope", 650.0, 5000.0, None, str(data))
        assert bad[0][0].startswith("#pyxl_del: ") and "unknown segment 'Nope'" in bad[0][0]
        short = runtime.call(m.DEL_DECIDE, ["CD", "CD"], [1.0], [1.0, 2.0], None, str(data))
        assert "same size" in short[0][0]
        # A cell error in an argument is named, not read as a blank ("segment, score and amount are required").
        na = runtime.call(m.DEL_DECIDE, "CD", -2146826246, 5000.0, None, str(data))
        assert na[0][0].startswith("#pyxl_del: ") and "#N/A" in na[0][0], na
        rows = runtime.call(m.DEL_DECIDE, ["CD", -2146826246], [650.0, 600.0], [5000.0, 100.0], None, str(data))
        assert "#N/A" in rows[0][0] and "2" in rows[0][0], rows


def test_del_decide_memoises_the_twin(panel, tmp_path, monkeypatch):
    from pyxl_del.excel import decide_udf as module

    data = tmp_path / "panel.parquet"
    panel.to_parquet(data)
    calls = []
    real = module.fit_twin
    monkeypatch.setattr(module, "fit_twin", lambda *a, **k: calls.append(1) or real(*a, **k))
    for _ in range(3):
        assert decide_cells("CD", 650.0, 5000.0, None, str(data), None)[0][0] == "APPROVE"
    assert len(calls) == 1


# ------------------------------------------------------------------------------------------------- CLI


def test_cli_decide(panel, tmp_path, capsys):
    data = tmp_path / "panel.parquet"
    panel.to_parquet(data)
    apps = tmp_path / "apps.csv"
    pd.DataFrame({"application_id": ["007", "8"], "segment": ["CD", "CASH LOAN"], "score": [650, 300],
                  "amount": [5000, 2000]}).to_csv(apps, index=False)
    out = tmp_path / "decisions.csv"
    assert main(["decide", str(apps), "--data", str(data), "--out", str(out)]) == EXIT_OK
    printed = capsys.readouterr().out
    assert "2 applications decided" in printed and f"wrote {out}" in printed
    written = pd.read_csv(out, dtype={"application_id": str})
    assert list(written.columns) == list(DECISION_COLUMNS) and written["application_id"].tolist() == ["007", "8"]
    assert "warning" not in printed
    # An id given twice: both rows decided, and said (a decisions file joined back on the id would match both).
    apps.write_text("application_id,segment,score,amount\nA1,CD,650,1000\nA2,CD,650,1000\nA1,CD,700,2000\n")
    assert main(["decide", str(apps), "--data", str(data), "--out", str(out)]) == EXIT_OK
    printed = capsys.readouterr().out
    assert "3 applications decided" in printed and len(pd.read_csv(out)) == 3
    assert "warning: 1 application id appears more than once ('A1' x2; rows 2, 4)" in printed, printed
    apps.write_text("segment,score,amount\nCD,abc,1\n")
    assert main(["decide", str(apps), "--data", str(data), "--out", str(out)]) == EXIT_BAD_INPUT
    assert "'score' holds 'abc' (not a number) in row 2" in capsys.readouterr().err


# ------------------------------------------------------------------------------------- what is a number


def test_text_and_booleans_in_number_columns_are_errors_naming_the_rows(twin, policy):
    """'30%' and 'abc' in the apr column were "no requested APR" (approved at the policy's); true / FALSE scores
    were 1 / 0."""
    apps = pd.DataFrame({"segment": ["CD", "CD", "CD"], "score": [650, 650, 650], "amount": [100, 100, 100],
                         "apr": ["30%", "abc", None]})
    with pytest.raises(DecisionInputError) as err:
        decide(apps, policy, twin)
    text = str(err.value)
    assert "column 'apr' holds '30%', 'abc' (not a number" in text
    assert "in rows 2, 3" in text and "0.3 for 30%" in text
    flags = pd.DataFrame({"segment": ["CD", "CD"], "score": [True, False], "amount": [100, 100]})
    with pytest.raises(DecisionInputError, match=r"column 'score' holds 'True', 'False' \(not a number\) in rows 2, 3"):
        decide(flags, policy, twin)
    mixed = flags.assign(score=pd.Series([650, True], dtype=object))  # a Parquet object column
    with pytest.raises(DecisionInputError, match=r"'score' holds 'True' \(not a number\) in row 3"):
        decide(mixed, policy, twin)
    for field in ("score", "amount", "apr"):
        with pytest.raises(ValueError, match="true is not a number"):
            Application(**{"segment": "CD", "score": 650, "amount": 100, field: True})
        with pytest.raises(DecisionInputError, match=f"{field}.*true is not a number"):
            decide([{"segment": "CD", "score": 650, "amount": 100, field: True}], policy, twin)


def test_a_score_far_outside_the_data_is_declined(twin, policy):
    """-1 fell in the lowest band and was approved (expected value -88): a sentinel or another scale is declined,
    with its own reason code, by every caller (one rule, in DecisionEngine.evaluate)."""
    low, high = twin.band_edges[1, 0], twin.band_edges[1, -1]  # CD's scores in the data
    span = float(twin.band_edges[:, -1].max() - twin.band_edges[:, 0].min())
    for score in (-1.0, 99999.0, low - span - 1, high + span + 1):
        d = decide(Application(segment="CD", score=score, amount=1000), policy, twin)
        assert (d.decision, d.reason_code, d.offered_apr) == ("DECLINE", "SCORE_OUT_OF_RANGE", None), score
        assert d.reason.startswith(f"score {score:g} far outside the twin's scores for CD ({low:g} to ")
        # No band describes such a score: the edge band's PD, loss and value were shown as if it did.
        assert (d.pd_12m, d.pd_lifetime, d.expected_loss, d.expected_value) == (None, None, None, None), score
    for score in (low - span, low - 50, high + 50, high + span):  # near the data's scores: the outer bands decide
        assert decide(Application(segment="CD", score=score, amount=1000), policy, twin).decision == "APPROVE"
    frame = decide(pd.DataFrame({"segment": ["CD"] * 3, "score": [-1, 650, 99999], "amount": [1000] * 3}), policy,
                   twin)
    assert frame["reason_code"].tolist() == ["SCORE_OUT_OF_RANGE", "APPROVED", "SCORE_OUT_OF_RANGE"]
    figures = frame[["pd_12m", "pd_lifetime", "expected_loss", "expected_value"]]
    assert figures.iloc[[0, 2]].isna().all().all() and figures.iloc[1].notna().all()


def test_del_decide_declines_a_score_far_outside_the_data(panel, tmp_path):
    data = tmp_path / "panel.parquet"
    panel.to_parquet(data)
    row = decide_cells("CD", -1.0, 1000.0, None, str(data), None)[0]
    assert row[:2] == ["DECLINE", "SCORE_OUT_OF_RANGE"] and row[3:8] == [""] * 5
    assert "#pyxl_del" in decide_cells("CD", True, 1000.0, None, str(data), None)[0][0]


def test_unknown_segments_name_the_file_the_rows_and_the_near_match(twin, policy):
    apps = pd.DataFrame({"segment": ["CD", "CD ", "XYZ", "CD ", "cash loan"], "score": [650] * 5,
                         "amount": [100] * 5})
    with pytest.raises(DecisionInputError) as err:
        decide(apps, policy, twin)
    text = str(err.value)
    assert text.startswith("applications: unknown segment 'CD ' in rows 3, 5: did you mean 'CD'?")
    assert "unknown segment 'XYZ' in row 4 (known: CASH LOAN, CD, TW/Moto)" in text
    assert "unknown segment 'cash loan' in row 6: did you mean 'CASH LOAN'?" in text
    with pytest.raises(DecisionInputError, match=r"unknown segment 'CD ' in application 2: did you mean 'CD'\?"):
        decide([{"segment": "CD", "score": 650, "amount": 1}, {"segment": "CD ", "score": 650, "amount": 1}], policy,
               twin)


VAY = "Vay ti\u00eau d\u00f9ng"  # composed (NFC), as Windows and Excel type it


@pytest.mark.parametrize("form", ["NFC", "NFD"])
def test_a_segment_in_another_unicode_form_is_that_segment(panel, tmp_path, form):
    """A Mac writes Vietnamese decomposed (NFD): 'Vay tiêu dùng' was an unknown segment, "did you mean 'Vay tiêu
    dùng'?" naming two names that print alike. The same letters are the same segment, whichever form the data or
    the application holds (as engine.data.segment_named reads them); letter case and blanks still are not."""
    in_data = unicodedata.normalize(form, VAY)
    other = unicodedata.normalize("NFD" if form == "NFC" else "NFC", VAY)
    assert in_data != other
    data = tmp_path / "panel.parquet"
    panel.assign(PRODUCT_TYPE=panel["PRODUCT_TYPE"].replace({"CASH LOAN": in_data})).to_parquet(data)
    twin = fit_twin(data, economics_config())
    policy = current_policy(twin)
    frame = decide(pd.DataFrame({"segment": [in_data, other], "score": [650, 650], "amount": [100, 100]}), policy,
                   twin)
    assert frame["segment"].tolist() == [in_data, in_data]
    assert frame["reason"].iloc[0] == frame["reason"].iloc[1] and frame["reason_code"].iloc[1] == "APPROVED"
    d = decide([{"segment": other, "score": 650, "amount": 100}], policy, twin)[0]
    assert d.segment == in_data and d.reason == frame["reason"].iloc[0]
    with pytest.raises(DecisionInputError, match=r"unknown segment 'vay .*' in row 2: did you mean 'Vay "):
        decide(pd.DataFrame({"segment": [other.lower()], "score": [650], "amount": [100]}), policy, twin)
    if form == "NFC":  # =DEL_DECIDE decides it too (the same engine)
        assert decide_cells(other, 650.0, 100.0, None, str(data), None)[0][:2] == ["APPROVE", "APPROVED"]


def test_cli_decide_names_the_file_and_row_of_an_unknown_segment(panel, tmp_path, capsys):
    data = tmp_path / "panel.parquet"
    panel.to_parquet(data)
    apps = tmp_path / "apps.csv"
    apps.write_text("segment,score,amount,apr\nCD,650,100,\nXYZ,650,100,\n")
    assert main(["decide", str(apps), "--data", str(data), "--out", str(tmp_path / "d.csv")]) == EXIT_BAD_INPUT
    assert f"{apps}: unknown segment 'XYZ' in row 3 (known: " in capsys.readouterr().err
    apps.write_text("segment,score,amount,apr\nCD,650,100,30%\n")
    assert main(["decide", str(apps), "--data", str(data), "--out", str(tmp_path / "d.csv")]) == EXIT_BAD_INPUT
    assert f"{apps}: column 'apr' holds '30%' (not a number" in capsys.readouterr().err
    assert not (tmp_path / "d.csv").exists()


def test_cli_decide_out_replaces_only_a_decisions_table(panel, tmp_path, capsys):
    """--out overwrote its own --data panel, the config, the applications file, any file; and wrote CSV text into
    a .xlsx."""
    data = tmp_path / "panel.parquet"
    panel.to_parquet(data)
    csv_data = tmp_path / "panel.csv"
    panel.head(50).to_csv(csv_data, index=False)
    config = tmp_path / "config.toml"
    config.write_text("[forecast]\nmax_mob = 36\n")
    apps = tmp_path / "apps.csv"
    apps.write_text("application_id,segment,score,amount\na1,CD,650,100\n")
    mine = tmp_path / "mine.csv"
    mine.write_text("my,own\n1,2\n")
    for target in (data, csv_data, config, apps, mine, tmp_path / "decisions.xlsx"):
        before = target.read_bytes() if target.exists() else None
        code = main(["decide", str(apps), "--data", str(data), "--config", str(config), "--out", str(target)])
        err = capsys.readouterr().err
        assert code == 1 and str(target) in err and "Traceback" not in err, target
        assert (target.read_bytes() if target.exists() else None) == before, target
    assert "decide writes a table as .csv or .parquet" in (main(["decide", str(apps), "--out", str(
        tmp_path / "d.xlsx")]) == 1 and capsys.readouterr().err)
    # The guard passes for what decide wrote itself, with application ids or without.
    for out in (tmp_path / "decisions.csv", tmp_path / "decisions.parquet"):
        assert main(["decide", str(apps), "--data", str(data), "--out", str(out)]) == EXIT_OK
        apps.write_text("segment,score,amount\nCD,650,100\n")
        assert main(["decide", str(apps), "--data", str(data), "--out", str(out)]) == EXIT_OK
        written = pd.read_parquet(out) if out.suffix == ".parquet" else pd.read_csv(out)
        assert list(written.columns) == list(DECISION_COLUMNS) and written["application_id"].isna().all()
        apps.write_text("application_id,segment,score,amount\na1,CD,650,100\n")


def test_a_policy_priced_outside_the_allowed_aprs_decides_nothing(twin, policy):
    """`apply` refuses an APR outside [policy] apr_min..apr_max, but a [policy] edited by hand reached every decision
    at that price."""
    _, hi, _ = twin.apr_range()
    segments = {name: p.model_dump() for name, p in policy.segments.items()}
    segments["CD"] |= {"apr": float(hi[twin.segments.index("CD")]) + 0.5}
    priced_out = Policy.model_validate({"segments": segments, "budget": policy.budget})
    with pytest.raises(PolicyError, match=r"policy \w+: segment 'CD': apr .* is outside the allowed"):
        decide(Application(segment="CASH LOAN", score=650, amount=1000), priced_out, twin)
    assert decide(Application(segment="CD", score=650, amount=1000), policy, twin).decision == "APPROVE"
