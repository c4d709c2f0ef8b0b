"""The risk twin on a panel shaped like a real mortgage book (issue 15; tests/_real_book.py): one reporting date,
no silent zero, reconciled figures."""

from __future__ import annotations

import numpy as np
import openpyxl
import pandas as pd
import pytest
from _real_book import (
    CLOSED,
    REPORTING,
    STALE,
    STALE_END,
    config,
    live_ead_at,
    real_book_panel,
)

import pyxl_del
from pyxl_del.cli import main
from pyxl_del.decision.dashboard import Dashboard
from pyxl_del.excel.render import write_workbook
from pyxl_del.risk.analysis import RiskAnalysis
from pyxl_del.risk.projection import ALL, BOOK_STATUS, state_mask
from pyxl_del.sheets.risk import dashboard_sheets, stress_sheets

FAST = {"n_paths": 2000}


def _analysis(**sections) -> RiskAnalysis:
    cfg = config(**({"risk": FAST} | sections))
    return RiskAnalysis.of(pyxl_del.run(real_book_panel(), cfg), cfg)


@pytest.fixture(scope="module")
def analysis() -> RiskAnalysis:
    return _analysis()


@pytest.fixture(scope="module")
def no_path() -> RiskAnalysis:
    """max_mob 6: the chain is fitted on MOB 0..6, where no loan of the book is written off yet."""
    return _analysis(forecast={"max_mob": 6})


def _live(analysis: RiskAnalysis) -> np.ndarray:
    cfg = analysis.config
    return analysis.book.ead[..., ~state_mask(cfg, cfg.buckets.absorbing)].sum(axis=-1)  # (S, C)


def _cell(analysis: RiskAnalysis, segment: str, cohort: str) -> tuple[int, int]:
    return analysis.result.segments.index(segment), analysis.result.cohorts.index(cohort)


# ------------------------------------------------------------------------------------------- reporting date


def test_the_book_is_taken_at_the_data_last_reporting_month(analysis):
    book = analysis.book
    assert book.label == REPORTING
    expected = live_ead_at(real_book_panel(), REPORTING)  # the rows of that month, max_mob or not
    live = _live(analysis)
    current = book.status == BOOK_STATUS.index("current")
    got = {(analysis.result.segments[s], analysis.result.cohorts[c]): live[s, c] for s, c in zip(*np.nonzero(current))}
    assert set(got) == set(expected.index)
    assert np.allclose([got[k] for k in expected.index], expected.to_numpy(), rtol=1e-12)
    assert (book.final_mob[current] > analysis.result.stats.max_mob).any()  # read beyond max_mob


@pytest.mark.parametrize("max_mob", [12, 48])
def test_outstanding_ead_does_not_depend_on_max_mob(analysis, max_mob):
    other = _analysis(forecast={"max_mob": max_mob})
    current = analysis.book.status == BOOK_STATUS.index("current")
    assert np.allclose(_live(other)[current], _live(analysis)[current], rtol=1e-12)
    assert other.book.month == analysis.book.month


@pytest.fixture(scope="module")
def default_analysis() -> RiskAnalysis:
    """The shipped defaults (Bayes rows, balance weighting, cohort factors), max_mob 24."""
    cfg = pyxl_del.Config().with_overrides(forecast={"max_mob": 24}, risk=FAST)
    return RiskAnalysis.of(pyxl_del.run(real_book_panel(), cfg), cfg)


@pytest.mark.parametrize("fitted", ["analysis", "default_analysis"])
def test_a_cohort_whose_rows_end_years_earlier_is_rolled_forward_by_the_chain(fitted, request):
    analysis = request.getfixturevalue(fitted)
    s, c = _cell(analysis, "PURCHASE", STALE)
    book = analysis.book
    assert BOOK_STATUS[book.status[s, c]] == "rolled"
    frame = real_book_panel()
    last = frame[(frame["DISBURSAL_MONTH"] == STALE) & (frame["MOB"] == frame.loc[frame["DISBURSAL_MONTH"] == STALE,
                                                                                   "MOB"].max())]
    states = list(analysis.config.buckets.order)
    start = np.zeros(len(states))
    np.add.at(start, [states.index(x) for x in last["STATE_MODEL"]], last["PRINCIPLE_OUTSTANDING"].to_numpy())
    months = (int(REPORTING[:4]) - int(STALE_END[:4])) * 12 + int(REPORTING[5:]) - int(STALE_END[5:])
    # Its last rows are at MOB 29 > max_mob 24: the tail moves it, through the cohort's own chain (cohort factors).
    chain = analysis.result.cohort_chain(analysis.result.transition_matrix[:, None, -1])  # (S, C or 1, K, K)
    tail = np.broadcast_to(chain, book.ead.shape[:2] + chain.shape[-2:])[s, c]
    assert np.allclose(book.ead[s, c], start @ np.linalg.matrix_power(tail, months), rtol=1e-10)
    notes = " ".join(book.notes(analysis.result, analysis.config))
    assert "PURCHASE 2015-01" in notes and "rolled forward by the chain" in notes and "stale_cohorts" in notes
    assert "1 cohort-segment whose rows end before the reporting date still had live EAD" in notes


def test_excluded_and_closed_cohorts_are_not_outstanding(analysis):
    excluded = _analysis(risk={"stale_cohorts": "exclude"})
    s, c = _cell(excluded, "PURCHASE", STALE)
    assert BOOK_STATUS[excluded.book.status[s, c]] == "excluded" and _live(excluded)[s, c] == 0
    assert _live(excluded).sum() == pytest.approx(_live(analysis).sum() - _live(analysis)[s, c])
    notes = " ".join(excluded.book.notes(excluded.result, excluded.config))
    final = excluded.book.final_ead[s, c, ~state_mask(excluded.config, excluded.config.buckets.absorbing)].sum()
    assert "excluded from the book" in notes and f"{final:,.0f}" in notes
    s, c = _cell(analysis, "REFI", CLOSED)
    assert BOOK_STATUS[analysis.book.status[s, c]] == "closed" and _live(analysis)[s, c] == 0
    el = analysis.el
    assert el.loc[(el["segment"] == "REFI") & (el["cohort"] == CLOSED), "status"].item() == "closed"
    notes = " ".join(analysis.book.notes(analysis.result, analysis.config))
    assert "1 cohort-segment is closed (every loan has left before the reporting date)" in notes


def test_every_view_uses_the_one_book(analysis):
    outstanding = _live(analysis).sum()
    el = analysis.el.set_index(["segment", "cohort"])
    assert el.loc[("Portfolio", ALL), "ead"] == pytest.approx(outstanding)
    assert analysis.capital.set_index("segment").loc["Portfolio", "outstanding_ead"] == pytest.approx(outstanding)
    summary = analysis.concentration.summary.set_index("by")
    assert summary.loc["segment", "ead"] == pytest.approx(outstanding)
    assert summary.loc["cohort", "ead"] == pytest.approx(outstanding)
    assert analysis.var.exposure == pytest.approx(outstanding)
    kpis = analysis.kpis.set_index("kpi")
    assert kpis.loc["Outstanding EAD", "value"] == pytest.approx(outstanding)
    assert REPORTING in kpis.loc["Outstanding EAD", "note"]


# ------------------------------------------------------------------------------------------- no silent zero


def test_a_chain_with_losses_in_view_has_no_zero_warning(analysis):
    assert analysis.el.set_index(["segment", "cohort"]).loc[("Portfolio", ALL), "el_lifetime"] > 0
    assert not analysis.warnings("el")
    assert not analysis.kpis["note"].str.startswith("WARNING").any()


def test_zero_expected_loss_comes_with_its_cause_and_the_setting(no_path):
    portfolio = no_path.el.set_index(["segment", "cohort"]).loc[("Portfolio", ALL)]
    assert portfolio["el_lifetime"] == 0 and portfolio["ead"] > 0
    by_segment = {f.segment: f.message for f in no_path.findings if f.figure == "el"}
    assert set(by_segment) == {"Portfolio", "PURCHASE", "REFI"}
    for segment in ("PURCHASE", "REFI"):
        assert "[forecast] max_mob" in by_segment[segment] and "[risk] el_basis" in by_segment[segment]
    kpis = no_path.kpis.set_index("kpi")["note"]
    for kpi in ("Expected loss, 12 months", "Expected loss, lifetime", "Credit VaR 99%, 12 months"):
        assert kpis[kpi].startswith("WARNING")


def test_a_zero_loss_given_default_is_named_as_the_cause():
    """With [risk] lgd = 0 the zero was blamed on the chain's tail ("raise [forecast] max_mob ...") beside a lifetime
    write-off in the millions."""
    zero = _analysis(risk=FAST | {"lgd": 0.0, "lgd_by_segment": {"REFI": 0.0}})
    by_segment = {f.segment: f.message for f in zero.findings if f.figure == "el"}
    assert by_segment["PURCHASE"] == ("PURCHASE: expected loss is 0: its loss given default is 0 ([risk] lgd), so "
                                      "what the chain writes off costs nothing.")
    assert "([risk] lgd_by_segment)" in by_segment["REFI"] and "max_mob" not in by_segment["REFI"]


def test_a_per_segment_setting_for_no_segment_is_named():
    """'Purchase' for PURCHASE in [risk] lgd_by_segment was taken for a segment of its own and silently applied to
    nothing: the LGD meant was not used."""
    named = _analysis(risk=FAST | {"lgd": 0.4, "lgd_by_segment": {"Purchase": 0.9},
                                   "irb_class_by_segment": {"CARDS": "revolving"}})
    messages = [(f.figure, f.segment, f.message) for f in named.findings]
    assert ("el", "PURCHASE", "[risk] lgd_by_segment names 'Purchase', which is no segment of the data (did you mean "
                              "'PURCHASE'?): its value applies to no loan.") in messages
    assert ("pd", "", "[risk] irb_class_by_segment names 'CARDS', which is no segment of the data: its value "
                      "applies to no loan.") in messages
    assert not [m for m in _analysis().findings if "no segment" in m.message]
    # A setting, not a zero: the KPIs are not marked "not a measured zero".
    assert not named.kpis["note"].str.startswith("WARNING").any()


def test_the_default_basis_is_the_setting_that_changes_it(no_path):
    fixed = _analysis(forecast={"max_mob": 6}, risk=FAST | {"el_basis": "default", "lgd": 0.2})
    el = fixed.el.set_index(["segment", "cohort"]).loc[("Portfolio", ALL)]
    assert el["el_12m"] > 0 and el["el_lifetime"] >= el["el_12m"]
    # LGD x (in default today + entering default): the stock alone is the floor.
    assert el["el_12m"] >= 0.2 * fixed.capital.set_index("segment").loc["Portfolio", "defaulted_ead"] - 1e-6
    assert not fixed.warnings("el")


def test_scenarios_that_cannot_differ_are_not_ranked(no_path, analysis):
    summary = no_path.stress.summary
    assert summary["rank"].isna().all() and summary["el_lifetime_vs_baseline"].isna().all()
    assert no_path.stress_note.startswith("No scenario changes the lifetime expected loss")
    assert analysis.stress.summary["rank"].notna().all() and analysis.stress_note is None


def test_cli_prints_the_warnings_and_no_ranking(no_path, tmp_path, capsys):
    data = tmp_path / "book.parquet"
    real_book_panel().to_parquet(data)
    cfg = tmp_path / "config.toml"
    cfg.write_text("[forecast]\nmax_mob = 6\n[risk]\nn_paths = 1000\n", encoding="utf-8")
    assert main(["el", str(data), "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "WARNING: PURCHASE: expected loss is 0" in out and "[risk] el_basis" in out
    assert f"note: Reporting date {REPORTING}" in out
    assert main(["stress", str(data), "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    rank = next(line for line in out.splitlines() if line.startswith("rank"))
    assert rank.split()[1:] == ["n/a"] * 4 and "+nan" not in out
    assert "WARNING: No scenario changes the lifetime expected loss" in out
    cfg.write_text("[forecast]\nmax_mob = 24\n[risk]\nn_paths = 1000\n", encoding="utf-8")
    assert main(["el", str(data), "--config", str(cfg)]) == 0
    assert "WARNING" not in capsys.readouterr().out


def test_sheets_carry_the_warnings(no_path, tmp_path):
    dashboard = Dashboard(no_path)
    path = write_workbook(dashboard_sheets(no_path.result, dashboard=dashboard)
                          + stress_sheets(no_path.result, analysis=no_path), tmp_path / "risk.xlsx")
    book = openpyxl.load_workbook(path)

    def texts(sheet: str) -> list[str]:
        return [c for row in book[sheet].iter_rows(values_only=True) for c in row if isinstance(c, str)]

    assert any(t.startswith("WARNING: PURCHASE: expected loss is 0") for t in texts("Expected loss"))
    assert any(t.startswith("WARNING: PURCHASE: expected loss is 0") for t in texts("Credit VaR"))
    assert any(t.startswith("WARNING: No scenario changes") for t in texts("Stress test"))
    stress = {row[0]: row[1:] for row in book["Stress test"].iter_rows(values_only=True) if row[0]}
    assert set(stress["Rank (1 = worst)"][:4]) == {"n/a"}
    labels = texts("Risk dashboard")
    assert "Expected loss, 12 months (WARNING)" in labels and "Lifetime EL of a month's bookings (WARNING)" in labels
    assert "PD 12 months (performing EAD)" in labels  # the Portfolio's PD is not 0; PURCHASE's is, and says so:
    assert any(t.startswith("WARNING: PURCHASE: PD 12 months is 0 beside an NPL ratio") for t in labels)


# ------------------------------------------------------------------------------------------- reconciliation


def test_the_two_expected_losses_are_reconciled(analysis, tmp_path):
    recon = analysis.el_reconciliation
    el_12m = analysis.el.set_index(["segment", "cohort"]).loc[("Portfolio", ALL), "el_12m"]
    projected, independent, persistent = recon["value"]
    assert projected == pytest.approx(el_12m, rel=1e-12)
    se = recon["std_error"].iloc[1]
    assert abs(independent - projected) < 4 * se  # equal in expectation: Monte Carlo error only
    assert persistent == pytest.approx(analysis.var.total.mean())
    assert recon["difference"].iloc[1:].sum() == pytest.approx(persistent - projected)
    path = write_workbook(dashboard_sheets(analysis.result, dashboard=Dashboard(analysis)), tmp_path / "r.xlsx")
    rows = list(openpyxl.load_workbook(path)["Credit VaR"].iter_rows(values_only=True))
    values = {r[0]: r[1] for r in rows if isinstance(r[0], str) and r[0].startswith(("Expected loss over",
                                                                                     "Mean simulated"))}
    assert list(values.values()) == pytest.approx(list(recon["value"]))


def test_el_table_says_where_each_cohort_stands(analysis):
    el = analysis.el
    cells = el[el["cohort"] != ALL]
    assert set(cells["status"]) == {"current", "rolled", "closed"}
    assert (cells["reporting_mob"] >= cells["last_mob"]).all()
    assert pd.api.types.is_string_dtype(el["status"])
