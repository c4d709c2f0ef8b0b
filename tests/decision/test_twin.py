"""The twin: score bands estimated by the ordinary engine, the illustrative link without a score, unit economics."""

import numpy as np
import pandas as pd
import pytest
from _decision import SMALL, economics_config, linked_twin, scored_panel, scored_twin

import pyxl_del
from pyxl_del import Config, PanelError
from pyxl_del.datasets.sample import generate_sample
from pyxl_del.decision.twin import fit_twin
from pyxl_del.engine.config import ILLUSTRATIVE_ECONOMICS


def test_sample_score_drives_the_roll_rates():
    df = scored_panel()
    assert {"SCORE", "APR"} <= set(df.columns)
    m12 = df[df["MOB"] == 12]
    low = m12["SCORE"] < m12["SCORE"].quantile(0.2)
    high = m12["SCORE"] > m12["SCORE"].quantile(0.8)
    bad = m12["STATE_MODEL"].isin(Config().buckets.del30)
    assert bad[low].mean() > 3 * bad[high].mean()
    # the score is the loan's: one value per loan
    assert (df.groupby("AGREEMENT_ID")["SCORE"].nunique() == 1).all()


def test_plain_sample_is_unchanged_by_the_option():
    plain = generate_sample(loans_per_cohort=20, n_cohorts=3)
    assert list(plain.columns) == ["AGREEMENT_ID", "DISBURSAL_MONTH", "MOB", "PRODUCT_TYPE", "STATE_MODEL",
                                   "PRINCIPLE_OUTSTANDING"]


def test_scored_twin_bands_order_the_risk():
    twin = scored_twin()
    assert twin.scored and twin.segments == ("CASH LOAN", "CD", "TW/Moto")
    assert twin.band_weight.shape == (3, 10) and np.allclose(twin.band_weight.sum(axis=1), 1)
    assert (np.diff(twin.band_edges, axis=1) > 0).all()
    # low bands roll to bad faster: the worst band's PD is several times the best's, and the trend falls
    assert (twin.pd12[:, 0] > 3 * twin.pd12[:, -1]).all()
    assert (np.polyfit(np.arange(10), np.log(twin.pd12.T), 1)[0] < 0).all()
    assert (twin.unit_economics()["unit_cost"][:, 0] > twin.unit_economics()["unit_cost"][:, -1]).all()


def test_scored_twin_reuses_the_engine_per_band():
    twin = scored_twin()
    assert len(twin.result.segments) == 30 and twin.result.segments[0] == "CASH LOAN|000"
    np.testing.assert_array_equal(twin.transition_matrix[0, 0], twin.result.transition_matrix[0])
    # the band mixture of DEL30 at MOB 12 is close to the segment's own chain
    plain = pyxl_del.run(scored_panel(), Config().with_overrides(transitions={"weighting": "ead"}))  # the twin's kind
    x = np.zeros(7)
    x[0] = 1
    for m in range(12):
        x = x @ plain.transition_matrix[0, m]
    seg = x[np.isin(Config().buckets.order, Config().buckets.del30)].sum()
    assert (twin.band_weight[0] * twin.del30_mob12[0]).sum() == pytest.approx(seg, rel=0.15)


def test_unit_paths_are_consistent():
    twin = scored_twin()
    assert twin.config.transitions.weighting == "balance"  # the default: the twin still moves loans, not balances
    assert np.allclose(twin.distribution.sum(axis=-1), 1)
    assert (twin.ead[..., 0] == 1).all() and (np.diff(twin.ead, axis=-1) <= 1e-12).all()
    assert (twin.performing <= twin.ead + 1e-12).all()
    assert (twin.writeoff >= 0).all() and (twin.writeoff.sum(axis=-1) < 1).all()
    assert ((twin.pd12 <= twin.pd_life + 1e-12) & (twin.pd12 > 0)).all()
    u = twin.unit_economics()
    parts = u["cost_funding"] + u["cost_opex"] + u["cost_loss"] + u["cost_capital"]
    np.testing.assert_allclose(parts, u["unit_cost"], rtol=1e-12)
    np.testing.assert_allclose(twin.unit_value(u["unit_cost"]), 0, atol=1e-12)


def test_ratio_capital_and_irb_capital():
    ratio = fit_twin(scored_panel(), Config().with_overrides(economics={"capital": "ratio", "capital_ratio": 0.12}))
    assert (ratio.capital == 0.12).all()
    irb = scored_twin().capital
    assert (irb > 0).all() and (irb[:, 0] > irb[:, -1]).all()


def test_no_score_uses_the_illustrative_link():
    twin = linked_twin()
    assert not twin.scored
    assert np.allclose(twin.band_weight, 0.1)
    assert (np.diff(twin.pd12, axis=1) < 0).all()
    plain = pyxl_del.run(generate_sample(**SMALL), Config())
    from_result = fit_twin(plain)
    np.testing.assert_allclose(from_result.pd12, twin.pd12)
    assert (from_result.current_apr == ILLUSTRATIVE_ECONOMICS["default_apr"]).all()
    # One section's keys after its name: "[economics] funding_rate, ..., default_apr, ...; [risk] lgd".
    assert "default_apr" in from_result.caveat() and "default_apr" not in twin.caveat()
    assert from_result.caveat().count("[economics]") == 1


def test_missing_score_values_are_an_error_naming_rows():
    df = scored_panel().head(3000).copy()
    df.loc[[5, 17], "SCORE"] = np.nan
    with pytest.raises(PanelError, match=r"SCORE.*\[columns\] score.*rows 7, 19"):
        fit_twin(df, Config())


def test_percent_apr_is_an_error():
    df = scored_panel().head(3000).copy()
    df["APR"] *= 100
    with pytest.raises(PanelError, match="percent"):
        fit_twin(df, Config())


def test_reads_optional_columns_from_files(tmp_path):
    df = scored_panel()
    for name in ("p.parquet", "p.csv"):
        df.to_parquet(tmp_path / name) if name.endswith("parquet") else df.to_csv(tmp_path / name, index=False)
        twin = fit_twin(tmp_path / name, Config())
        assert twin.scored
        np.testing.assert_allclose(twin.pd12, scored_twin().pd12)


def test_score_and_apr_are_read_as_the_panel_is(tmp_path):
    """A semicolon CSV with decimal commas (a Vietnamese Excel's), or a title above the header: the panel was read, its
    SCORE and APR not ("no score column", the APR the 30% default), so optimise answered for another book."""
    df = scored_panel()
    plain = fit_twin(df, Config())
    comma = Config().with_overrides(columns={"decimal": ","})
    text = df.to_csv(index=False, sep=";", decimal=",")
    (tmp_path / "comma.csv").write_text(text)
    (tmp_path / "title.csv").write_text("Loan tape, December 2025\n" + df.to_csv(index=False))
    for path, config in ((tmp_path / "comma.csv", comma), (tmp_path / "title.csv", Config())):
        twin = fit_twin(path, config)
        assert twin.scored, path
        np.testing.assert_allclose(twin.current_apr, plain.current_apr, err_msg=str(path))
        np.testing.assert_allclose(twin.band_edges, plain.band_edges, err_msg=str(path))


def test_score_column_absent_from_data_is_not_required():
    df = scored_panel().drop(columns=["SCORE", "APR"])
    assert isinstance(pyxl_del.run(df, Config()), pyxl_del.DelResult)
    assert not fit_twin(df, Config()).scored


def test_a_score_or_apr_column_named_in_other_letter_case_is_an_error_naming_it(tmp_path):
    """`score = "Score"` for the data's SCORE (or "APR " for APR) read as "no score column": illustrative bands and
    the default APR, while the required columns got "it differs in spaces or letter case". A column the data lack
    altogether is still not required; the note names it."""
    from pyxl_del.decision.optimise import optimise
    from pyxl_del.engine.data import PanelError

    df = scored_panel()
    df.to_csv(tmp_path / "p.csv", index=False)
    for source in (df, tmp_path / "p.csv"):
        for key, name, found in (("score", "Score", "SCORE"), ("apr", "APR ", "APR")):
            config = Config().with_overrides(columns={key: name})
            with pytest.raises(PanelError, match=rf"no column \[columns\] {key} = {name!r}: the data have {found!r} "
                                                 r"\(it differs in spaces or letter case\)"):
                fit_twin(source, config)
    absent = Config().with_overrides(columns={"score": "BEHAVIOUR_SCORE"})
    twin = fit_twin(df, absent)
    assert not twin.scored
    assert "no column 'BEHAVIOUR_SCORE' ([columns] score) in the data: score bands come from the ILLUSTRATIVE" in \
        " ".join(optimise(twin).notes)


def test_frame_has_a_row_per_band():
    frame = scored_twin().frame()
    assert len(frame) == 30 and isinstance(frame, pd.DataFrame)
    assert frame["weight"].groupby(frame["segment"]).sum().round(12).eq(1).all()


def test_a_chain_from_too_few_months_makes_the_decisions_illustrative():
    # The sample's first two cohorts at their first months only: one MOB step of data behind every chain. With the
    # economics set (no default), the caveat is the short history alone; the linked twin of the whole sample has none.
    panel = generate_sample(**SMALL)
    first, second = sorted(panel["DISBURSAL_MONTH"].unique())[:2]
    young = panel[((panel["DISBURSAL_MONTH"] == first) & (panel["MOB"] <= 1))
                  | ((panel["DISBURSAL_MONTH"] == second) & (panel["MOB"] == 0))]
    twin = fit_twin(young, economics_config())
    assert twin.caveat() == ("ILLUSTRATIVE: the chain of CASH LOAN, CD, TW/Moto rests on fewer than 6 MOB steps of "
                             "data")
    assert all(c.startswith("ILLUSTRATIVE: the chain of CD rests") for c in twin.band_caveats()[1])
    assert linked_twin().caveat() == ""



def test_a_segment_of_few_loans_or_booked_at_zero_balance_is_illustrative_and_decided():
    """A segment of 3 loans priced and decided like the others with no word of its size; a segment booked at zero
    balance (its balance first reported at MOB 1) stopped decide, optimise and the service: its bands' weights were
    0 / 0, so its mean APR was NaN and the policy invalid ("internal error ... segments.ZERO.apr")."""
    from pyxl_del.decision.decide import Application, decide
    from pyxl_del.decision.optimise import current_policy

    panel = scored_panel()
    cd = panel[panel["PRODUCT_TYPE"] == "CD"]
    tiny = cd[cd["AGREEMENT_ID"].isin(cd["AGREEMENT_ID"].unique()[:3])]
    tiny = tiny.assign(PRODUCT_TYPE="TINY", AGREEMENT_ID="T" + tiny["AGREEMENT_ID"])
    zero = cd.assign(PRODUCT_TYPE="ZERO", AGREEMENT_ID="Z" + cd["AGREEMENT_ID"])
    zero.loc[zero["MOB"] == 0, "PRINCIPLE_OUTSTANDING"] = 0.0
    twin = fit_twin(pd.concat([panel, tiny, zero], ignore_index=True), economics_config())
    caveats = dict(zip(twin.segments, twin.band_caveats()[:, 0], strict=True))
    assert caveats["TINY"].endswith("ILLUSTRATIVE: TINY rests on 3 loans (fewer than [transitions] min_count 30): "
                                    "its PDs and values are a few loans' history")
    assert caveats["ZERO"] == ("ILLUSTRATIVE: ZERO has no balance at MOB 0, the amount booked: its bands are weighted "
                               "by loans and its monthly volume is 0")
    assert caveats["CD"] == ""
    zero_weights = twin.band_weight[twin.segments.index("ZERO")]
    np.testing.assert_allclose(zero_weights, twin.band_weight[twin.segments.index("CD")], atol=0.02)  # by loans
    policy = current_policy(twin)
    assert np.isfinite(policy.segments["ZERO"].apr)
    for segment in ("TINY", "ZERO", "CD"):
        d = decide(Application(segment=segment, score=650, amount=1000), policy, twin)
        assert d.caveat == caveats[segment], segment


def test_economics_given_for_a_misspelt_segment_are_named_beside_the_segment_meant():
    """[economics] segments "Cd" applied to no segment, and CD's decisions said only "default economics"."""
    cfg = Config().with_overrides(economics={"segments": {"Cd": {"opex_rate": 0.02}}})
    caveats = dict(zip(linked_twin().segments, fit_twin(generate_sample(**SMALL), cfg).band_caveats()[:, 0],
                       strict=True))
    assert ("[economics] segments names 'Cd', which is no segment of the data (did you mean 'CD'?): its value "
            "applies to no loan") in caveats["CD"]
    assert "'Cd'" not in caveats["CASH LOAN"]


def test_an_apr_below_the_default_running_costs_is_named():
    """A mortgage book's 4% under the consumer-lending defaults (7% funding + 10% opex) makes every booking lose: the
    caveat says that is why its ROE is far below zero; not where the APR covers them, nor once the costs are set."""
    mortgage = scored_panel().assign(APR=0.04)
    caveat = fit_twin(mortgage, Config()).caveat()
    assert "the APR booked (CASH LOAN 4.0%, CD 4.0%, TW/Moto 4.0%) is below the default cost of funds" in caveat
    assert "set [economics] funding_rate and opex_rate" in caveat
    assert "below the default cost" not in fit_twin(scored_panel(), Config()).caveat()
    costs_set = Config().with_overrides(economics={"funding_rate": 0.02, "opex_rate": 0.01})
    assert "below the default cost" not in fit_twin(mortgage, costs_set).caveat()
    assert fit_twin(mortgage, economics_config()).caveat() == ""  # set costs above the APR: the user's own economics

def test_a_band_of_one_score_is_accepted_whole_or_not_at_all():
    df = scored_panel().copy()
    df.loc[df["PRODUCT_TYPE"] == "CD", "SCORE"] = 600.0  # tied quantiles: bands of zero width
    twin = fit_twin(df, economics_config())
    cd = twin.segments.index("CD")
    for cutoff, accepted in ((599.0, 1.0), (600.0, 1.0), (600.5, 0.0)):
        share = twin.acceptance(np.full(len(twin.segments), cutoff))[cd]
        assert (share == accepted).all(), (cutoff, share)  # was NaN: 0 / 0 in the zero-width bands
