"""Optimisers: cut-off frontier and constraints, pricing under the budget, the mix against brute force."""

import numpy as np
import pytest
from _decision import (
    economics_config,
    scored_panel,
    scored_twin,
    tiny_scored_panel,
    twin_with,
)

from pyxl_del import Config
from pyxl_del.decision.optimise import (
    MIX_GROUPS,
    PORTFOLIO,
    InfeasibleError,
    MixProblem,
    check_aprs,
    current_policy,
    cutoff_frontier,
    evaluate,
    optimise,
    optimise_mix,
    proven_optimal,
    roe_kpis,
    undefined_reason,
)
from pyxl_del.decision.policy import Policy, PolicyError, table_rows
from pyxl_del.decision.twin import fit_twin
from pyxl_del.engine.errors import InputError


def test_frontier_trades_approval_for_bad_rate():
    frontier = cutoff_frontier(scored_twin())
    for _, part in frontier.groupby("segment"):
        assert (np.diff(part["approval_rate"]) < 0).all()
        bad = part["bad_rate"].dropna().to_numpy()
        assert bad[0] > 2 * bad[-1]  # overall downward; adjacent bands can be noisy
        assert part["best"].sum() == 1
        best = part[part["best"]].iloc[0]
        assert best["value"] == pytest.approx(part.loc[part["feasible"], "value"].max())


def test_cutoff_constraints_are_met():
    twin = twin_with(policy={"min_approval": 0.6, "max_del30_mob12": 0.04})
    frontier = cutoff_frontier(twin)
    best = frontier[frontier["best"]]
    assert (best["approval_rate"] >= 0.6 - 1e-9).all() and (best["bad_rate"] <= 0.04 + 1e-9).all()
    rec = optimise(twin)
    impact = rec.recommended_impact.set_index("segment").drop(PORTFOLIO)
    assert (impact["approval_rate"] >= 0.6 - 1e-9).all() and (impact["del30_mob12"] <= 0.04 + 1e-9).all()


def test_conflicting_cutoff_constraints_name_both():
    twin = twin_with(policy={"min_approval": 0.95, "max_del30_mob12": 0.02})
    with pytest.raises(InfeasibleError, match="min_approval = 0.95 and max_del30_mob12 = 0.02 conflict") as info:
        optimise(twin)
    assert info.value.conflict == ("max_del30_mob12", "min_approval")


def test_unreachable_bad_rate_is_named():
    with pytest.raises(InfeasibleError, match="max_del30_mob12 = 0.0001 cannot be met"):
        optimise(twin_with(policy={"max_del30_mob12": 0.0001, "min_approval": 0.01}))
    # without an approval floor, approving no one meets it: the segment gets no new lending
    rec = optimise(twin_with(policy={"max_del30_mob12": 0.0001}))
    assert all(p.budget_share == 0 for p in rec.recommended.segments.values())
    assert any("no new lending" in n for n in rec.notes)


def test_recommendation_reports_current_recommended_and_unit_cost():
    rec = optimise(scored_twin())
    table = rec.table()
    assert list(table["segment"]) == ["CASH LOAN", "CD", "TW/Moto", PORTFOLIO]
    for col in ("cutoff", "apr", "budget_share", "approval_rate", "volume", "del30_mob6", "del30_mob12",
                "lifetime_el", "var99", "hhi", "roe", "unit_cost", "cost_funding", "cost_loss", "cost_capital",
                "cost_opex"):
        assert f"current_{col}" in table and f"recommended_{col}" in table
    new = rec.recommended_impact.set_index("segment")
    assert new.loc[PORTFOLIO, "value"] >= rec.current_impact.set_index("segment").loc[PORTFOLIO, "value"]
    assert rec.recommended.budget == pytest.approx(scored_twin().volume.sum())
    assert new.loc[PORTFOLIO, "volume"] <= rec.recommended.budget * (1 + 1e-9)
    assert table["policy_version"].nunique() == 1 and len(rec.recommended.version) == 16
    # A figure left as it is changes by exactly 0: rounding noise of -5.6e-15 had shown as "-0.00 pp".
    from dataclasses import replace

    kept = rec.current_impact.assign(apr=rec.current_impact["apr"] * (1 + 4e-16) - 5.6e-15)
    unchanged = replace(rec, recommended_impact=kept).table()
    assert (unchanged["change_apr"] == 0).all() and (unchanged["change_roe"] == 0).all()


def test_every_sheet_names_the_version_the_audit_log_records():
    """The Decision summary named the policy's own hash (c14d...), the other sheets, the console and decisions.jsonl
    its version under the config (7898...): a risk manager found the summary's in no log."""
    import re

    from pyxl_del.sheets.decision import decision_layouts

    rec = optimise(scored_twin())
    shown = {token for layout in decision_layouts(rec, "2025-12") for block in layout.blocks
             for value in block.values.ravel() if isinstance(value, str)
             for token in re.findall(r"\b[0-9a-f]{16}\b", value)}
    assert shown == {rec.version}, (shown, rec.version, rec.recommended.version)
    # Each caveat once: the ILLUSTRATIVE economics were also among the notes, and the summary said them twice.
    illustrative = optimise(fit_twin(scored_panel(), Config()))
    summary = decision_layouts(illustrative, "2025-12")[0]
    texts = [v for block in summary.blocks for v in block.values.ravel() if isinstance(v, str) and v]
    assert illustrative.caveat in texts and len(texts) == len(set(texts)), [t for t in texts if texts.count(t) > 1]


def test_policy_version_is_a_stable_hash():
    pol = current_policy(scored_twin())
    again = Policy.model_validate_json(pol.model_dump_json())
    assert again.version == pol.version
    moved = Policy.from_arrays(*[x for x in (list(pol.segments),)], np.full(3, 500.0),
                               pol.table()["apr"].to_numpy(), pol.table()["budget_share"].to_numpy(), pol.budget)
    assert moved.version != pol.version


def test_roe_is_net_income_over_capital():
    frame = evaluate(scored_twin(), current_policy(scored_twin())).set_index("segment")
    assert frame.loc[PORTFOLIO, "roe"] == pytest.approx(frame.loc[PORTFOLIO, "annual_net_income"]
                                                        / frame.loc[PORTFOLIO, "capital"])
    parts = frame.drop(PORTFOLIO)
    assert frame.loc[PORTFOLIO, "capital"] == pytest.approx(parts["capital"].sum())


def _brute_force(problem: MixProblem, step: float = 0.01) -> float:
    """The best value over every grid point of the share cube that meets every constraint."""
    axis = np.arange(0, 1 + step / 2, step)
    w = np.stack(np.meshgrid(*[axis] * len(problem.value), indexing="ij"), axis=-1).reshape(-1, len(problem.value))
    tol = 1e-9
    ok = ((w.sum(axis=1) <= 1 + tol) & (w >= problem.min_share - tol).all(axis=1)
          & (w <= problem.max_share + tol).all(axis=1) & (w <= problem.capacity / problem.budget + tol).all(axis=1)
          & (problem.budget * w @ problem.el <= problem.max_el + tol)
          & (problem.budget * w @ problem.var99 <= problem.max_var99 + tol)
          & ((w * w).sum(axis=1) <= problem.max_hhi + tol))
    return float((w[ok] @ problem.value).max())


MIX = dict(value=np.array([0.06, 0.08, 0.05]), el=np.array([0.05, 0.02, 0.04]), var99=np.array([0.09, 0.04, 0.07]),
           capacity=np.array([80.0, 40.0, 70.0]), budget=100.0)


@pytest.mark.parametrize("limits", [
    {},
    {"max_el": 3.5},
    {"max_var99": 6.0, "min_share": 0.1},
    {"max_hhi": 0.4, "max_share": 0.6},
    {"max_hhi": 0.36, "max_el": 3.8, "max_var99": 6.5, "min_share": 0.05},
])
def test_mix_matches_brute_force(limits):
    problem = MixProblem(**MIX, **limits)
    w = optimise_mix(problem)
    grid_best = _brute_force(problem)
    value = problem.value @ w
    cap = problem.capacity / problem.budget
    assert w.sum() <= 1 + 1e-7 and (w <= cap + 1e-7).all() and w @ w <= problem.max_hhi + 1e-7
    assert problem.budget * problem.el @ w <= problem.max_el + 1e-6
    assert value >= grid_best - 1e-9  # at least as good as every grid point
    assert value <= grid_best + 0.01 * problem.value.max()  # and no better than one grid step allows
    assert proven_optimal(problem, w)
    flattest = problem.feasible(tuple(MIX_GROUPS))
    assert problem.value @ flattest < value - 1e-6 and not proven_optimal(problem, flattest)


def test_infeasible_mix_names_the_conflict():
    problem = MixProblem(**MIX, min_share=0.3, max_el=3.0)
    with pytest.raises(InfeasibleError, match="max_el") as info:
        optimise_mix(problem)
    assert set(info.value.conflict) == {"shares", "max_el"}
    problem = MixProblem(**{**MIX, "capacity": np.array([5.0, 5.0, 5.0])}, min_share=0.2)
    with pytest.raises(InfeasibleError) as info:
        optimise_mix(problem)
    assert set(info.value.conflict) == {"shares", "capacity"}


def test_price_by_band_prices_each_band():
    twin = twin_with(policy={"price_by": "band"})
    rec = optimise(twin)
    aprs = [p.band_aprs for p in rec.recommended.segments.values()]
    assert all(a is not None and len(a) == 10 for a in aprs)
    assert all(a[0] > a[-1] for a in aprs)  # riskier bands pay more
    flat = optimise(scored_twin()).recommended_impact.set_index("segment").loc[PORTFOLIO, "value"]
    assert rec.recommended_impact.set_index("segment").loc[PORTFOLIO, "value"] >= flat * 0.99


def test_apr_bounds_bind():
    twin = twin_with(policy={"apr_min": 0.05, "apr_max": 0.2})
    rec = optimise(twin)
    assert all(p.apr <= 0.2 + 1e-12 for p in rec.recommended.segments.values())


def test_roe_kpis_for_the_dashboard():
    kpis = roe_kpis(scored_twin())
    assert list(kpis.columns) == ["kpi", "value", "unit", "note"] and kpis["value"].notna().all()
    assert not kpis["note"].str.startswith("ILLUSTRATIVE").any()  # every economic input is set (economics_config)
    illustrative = roe_kpis(fit_twin(scored_panel(), Config())).set_index("kpi")["note"]
    assert illustrative["ROE (steady book)"].startswith("ILLUSTRATIVE: default economics")
    assert illustrative["Value of a month's bookings"].startswith("ILLUSTRATIVE")
    rec = optimise(scored_twin())
    assert roe_kpis(scored_twin(), rec.recommended).iloc[0]["value"] == pytest.approx(
        rec.recommended_impact.set_index("segment").loc[PORTFOLIO, "roe"])


def test_budget_below_the_booked_volume_scales_todays_shares():
    twin = scored_twin()
    booked = twin.volume.sum()
    cut = twin_with(policy={"budget": 0.8 * booked})
    current = current_policy(cut)  # was a ValidationError: shares adding up to 1.25
    shares = np.array([p.budget_share for p in current.segments.values()])
    assert shares.sum() == pytest.approx(1.0) and np.allclose(shares, twin.volume / booked)
    rec = optimise(cut)
    assert any("below the data's recent monthly volume" in n and "scaled by 80.0%" in n for n in rec.notes)
    now = rec.current_impact.set_index("segment")
    assert now.loc[PORTFOLIO, "volume"] == pytest.approx(0.8 * booked, rel=1e-6)
    assert "below the data's recent monthly volume" in roe_kpis(cut).set_index("kpi").loc["New lending a month", "note"]


@pytest.mark.parametrize("budget", [100.0, 1e7])
def test_mix_meets_a_binding_hhi_limit_at_any_budget_scale(budget):
    # value x budget in the millions once made SLSQP stop at shares breaking max_hhi (or at no lending at all)
    scale = budget / MIX["budget"]
    problem = MixProblem(**{**MIX, "capacity": MIX["capacity"] * scale, "budget": budget}, max_hhi=0.2)
    w = optimise_mix(problem)
    assert w @ w <= 0.2 + 1e-8
    assert problem.value @ w >= _brute_force(problem) - 1e-9


def test_recommended_mix_meets_max_hhi():
    rec = optimise(twin_with(policy={"max_hhi": 0.2}))
    shares = np.array([p.budget_share for p in rec.recommended.segments.values()])
    free = np.array([p.budget_share for p in optimise(scored_twin()).recommended.segments.values()])
    assert free @ free > 0.2  # the limit binds
    assert shares @ shares <= 0.2 + 1e-8 and shares.sum() > 0.5
    assert not any("could not prove" in n for n in rec.notes)


def test_a_mix_not_proven_optimal_is_said_in_the_notes(monkeypatch):
    """It was only logged: the Recommendations sheet showed the mix as the answer."""
    from pyxl_del.decision import optimise as module

    monkeypatch.setattr(module, "proven_optimal", lambda problem, share: False)
    rec = optimise(twin_with(policy={"max_hhi": 0.2}))
    assert any("max_hhi = 0.2 meets every limit, but the solvers could not prove it the best one" in n
               for n in rec.notes), rec.notes


def test_mix_solver_failure_is_said_not_returned(monkeypatch):
    from scipy import optimize

    real = optimize.minimize

    def breaking(fun, x0, *args, **kwargs):
        res = real(fun, x0, *args, **kwargs)
        if len(kwargs.get("constraints", ())) == 2:  # the value problem, not the flattest point
            res.x = np.full_like(res.x, 0.4)  # HHI 0.48
        return res

    monkeypatch.setattr(optimize, "minimize", breaking)
    with pytest.raises(InputError, match=r"no budget mix meeting \[policy\] max_hhi = 0.2"):
        optimise_mix(MixProblem(**MIX, max_hhi=0.2))


def test_segment_with_one_score_is_priced_and_lent_to():
    df = scored_panel().copy()
    df.loc[df["PRODUCT_TYPE"] == "CD", "SCORE"] = 600.0
    rec = optimise(fit_twin(df, economics_config()))
    cd = rec.recommended_impact.set_index("segment").loc["CD"]
    assert cd["value"] > 0 and cd["volume"] > 0 and rec.recommended.segments["CD"].budget_share > 0
    for key in ("apr", "unit_cost", "roe", "take_up", "del30_mob12"):
        assert np.isfinite(cd[key]), key


def test_undefined_figures_are_explained():
    no_loss = optimise(twin_with(risk={"lgd": 0.0}))
    row = no_loss.current_impact.set_index("segment").loc[PORTFOLIO]
    assert np.isnan(row["roe"]) and undefined_reason(row, "roe") == "not defined: no capital is held"
    assert any("ROE is not defined" in n and "[risk] lgd, which is 0" in n for n in no_loss.notes)
    priced_out = optimise(twin_with(policy={"apr_min": 0.0001, "apr_max": 0.0002}))
    new = priced_out.recommended_impact.set_index("segment")
    assert new.drop(PORTFOLIO)["apr"].to_numpy() == pytest.approx(np.full(3, 0.0002))  # the offer is still the policy's APR
    assert undefined_reason(new.loc["CD"], "unit_cost") == "not defined: nothing is booked"
    assert any("book nothing" in n for n in priced_out.notes)


def test_policy_aprs_outside_the_allowed_range_are_named():
    twin = scored_twin()  # [policy] apr_min 5%, apr_max 80%
    table = current_policy(twin).table()
    check_aprs(twin, Policy.from_table(table, twin.volume.sum()), "Policy sheet", table_rows(table))
    table.loc[1, "apr"] = 0.9
    with pytest.raises(PolicyError, match=r"Policy sheet: row 3 \(CD\): apr 90.000% is outside the allowed "
                                          r"5.000% to 80.000% \(\[policy\] apr_min .. apr_max\)"):
        check_aprs(twin, Policy.from_table(table, twin.volume.sum()), "Policy sheet", table_rows(table))


def test_apply_refuses_a_policy_priced_outside_the_allowed_range(tmp_path, capsys):
    from pyxl_del.cli import main

    panel = tmp_path / "panel.parquet"
    tiny_scored_panel().to_parquet(panel)
    config = tmp_path / "config.toml"
    config.write_text(economics_config().to_toml(), encoding="utf-8")  # [policy] apr_min 5%, apr_max 80%
    before = config.read_bytes()
    policy = tmp_path / "policy.csv"
    policy.write_text("segment,cutoff,apr,budget_share\nCASH LOAN,,0.3,0.4\nCD,,0.9,0.1\nTW/Moto,,0.0001,0.2\n")
    code = main(["apply", str(policy), "--config", str(config), "--data", str(panel)])
    text = capsys.readouterr().err
    assert code == 2, text
    assert "row 3 (CD): apr 90.000% is outside the allowed 5.000% to 80.000%" in text
    assert "row 4 (TW/Moto): apr 0.010% is outside" in text
    assert config.read_bytes() == before and not (tmp_path / "decisions.jsonl").exists()


def test_optimise_then_apply_keeps_a_formula_like_segment_name(tmp_path, capsys):
    """policy.csv writes a segment '=CD+1' as "'=CD+1" (CSV injection), and apply then found "missing ['=CD+1'];
    unknown ["'=CD+1"]": the file optimise writes must apply as it is."""
    from pyxl_del.cli import main
    from pyxl_del.engine.config import load_config

    panel = tmp_path / "panel.parquet"
    tiny_scored_panel().replace({"PRODUCT_TYPE": {"CD": "=CD+1"}}).to_parquet(panel)
    config = tmp_path / "config.toml"
    config.write_text(economics_config().to_toml(), encoding="utf-8")
    out = tmp_path / "opt"
    assert main(["optimise", str(panel), "--config", str(config), "--out", str(out)]) == 0
    assert "'=CD+1" in (out / "policy.csv").read_text(encoding="utf-8-sig")  # neutralised in the file
    code = main(["apply", str(out / "policy.csv"), "--config", str(config), "--data", str(panel)])
    assert code == 0, capsys.readouterr().err
    assert "=CD+1" in load_config(config).policy.segments
