"""One run's risk figures carry the same words everywhere (docs/risk.md §9, §10): the loss warnings on every command
that shows a loss, the ILLUSTRATIVE notes and warnings on the Stress test sheet, the dashboard's figures tagged when
they rest on the default LGD or a short history, and the VaR contributions named for what they are."""

from __future__ import annotations

import numpy as np
import openpyxl
import pytest

import pyxl_del
from pyxl_del import Config
from pyxl_del.cli import main
from pyxl_del.decision.dashboard import Dashboard
from pyxl_del.excel.render import write_workbook
from pyxl_del.risk.analysis import RiskAnalysis
from pyxl_del.sheets.risk import dashboard_sheets, risk_tables, stress_sheets, view_sheets
from tests._panels import CHAIN, simulate

ZERO_LGD = "YOUNG: expected loss is 0: its loss given default is 0 ([risk] lgd_by_segment)"
NO_SEGMENT = "[risk] lgd_by_segment names 'Old', which is no segment of the data (did you mean 'OLD'?)"
DEFAULT_LGD = "ILLUSTRATIVE LGD: 65% is the default ([risk] lgd left out) for OLD"
SHORT = "ILLUSTRATIVE forecast: YOUNG rests on fewer than 6 MOB steps of data"
LOSS_KPIS = ("Expected loss, 12 months", "Expected loss, lifetime", "Lifetime EL / outstanding EAD",
             "Credit VaR 99%, 12 months", "Expected shortfall 99%, 12 months", "Indicative IRB capital")
PD_KPI = "PD 12 months (performing EAD)"


@pytest.fixture(scope="module")
def panel():
    """OLD: 12 monthly cohorts of 2024, followed to MOB 11; YOUNG: the last 4 only (MOB 0..3): a chain of 3 MOB
    steps repeated to max_mob 12, a short history (engine.diagnostics.short_history)."""
    frame = simulate(CHAIN, segments=("OLD", "YOUNG"), cohorts=12, loans=100, max_mob=12, seed=1)
    return frame[(frame["PRODUCT_TYPE"] == "OLD") | (frame["DISBURSAL_MONTH"] >= "2024-09")]


def _analysis(panel, **risk) -> RiskAnalysis:
    cfg = Config().with_overrides(forecast={"max_mob": 12}, risk={"n_paths": 2000} | risk)
    return RiskAnalysis.of(pyxl_del.run(panel, cfg), cfg)


@pytest.fixture(scope="module")
def young(panel) -> RiskAnalysis:
    """The default LGD (OLD's, through a misspelt key) and a short history; YOUNG's LGD 0."""
    return _analysis(panel, lgd_by_segment={"YOUNG": 0.0, "Old": 0.5})


def _texts(layouts, name: str | None = None) -> list[str]:
    return [t for layout in layouts if name is None or layout.name == name for block in layout.blocks
            for t in block.values.ravel().tolist() if isinstance(t, str)]


def test_every_command_showing_a_loss_prints_the_loss_warnings(panel, tmp_path, capsys):
    """`stress` and `capital` printed neither the zero-LGD warning nor the misspelt LGD key that `el`, `var` and
    `dashboard` print for the same run; the capital is LGD x K, so both bear on it."""
    panel.to_parquet(data := tmp_path / "book.parquet")
    (config := tmp_path / "config.toml").write_text(
        '[forecast]\nmax_mob = 12\n[risk]\nn_paths = 2000\nlgd_by_segment = { YOUNG = 0.0, Old = 0.5 }\n',
        encoding="utf-8")
    for command in ("el", "var", "dashboard", "stress", "capital"):
        assert main([command, str(data), "--config", str(config)]) == 0, command
        out = capsys.readouterr().out
        assert f"WARNING: {ZERO_LGD}" in out, command
        assert f"WARNING: {NO_SEGMENT}" in out, command


def test_the_stress_and_capital_sheets_carry_the_notes_and_warnings(young, tmp_path):
    """The Stress test sheet had none of the ILLUSTRATIVE notes or loss warnings that `pyxl-del stress` prints."""
    path = write_workbook(stress_sheets(young.result, analysis=young), tmp_path / "stress.xlsx")
    sheet = openpyxl.load_workbook(path)["Stress test"]
    texts = [c for row in sheet.iter_rows(values_only=True) for c in row if isinstance(c, str)]
    for expected in (DEFAULT_LGD, SHORT, f"WARNING: {ZERO_LGD}", f"WARNING: {NO_SEGMENT}"):
        assert any(t.startswith(expected) for t in texts), expected
    rows = {r[0]: r[1:] for r in sheet.iter_rows(values_only=True) if r[0]}
    # The Capital sheet, like `pyxl-del capital`: the capital is LGD x K.
    capital = _texts(view_sheets(young, "capital"), "Capital (indicative)")
    assert f"WARNING: {ZERO_LGD}, so what the chain writes off costs nothing." in capital
    # the table below the longer header is whole
    assert list(rows["Rank (1 = worst)"][:4]) == young.stress.summary["rank"].tolist()


def test_kpis_resting_on_the_default_lgd_or_a_short_history_say_illustrative(young, panel):
    notes = young.kpis.set_index("kpi")["note"]
    for kpi in LOSS_KPIS:
        assert notes[kpi].startswith("ILLUSTRATIVE: "), kpi
        assert "default LGD 65% for OLD" in notes[kpi] and "YOUNG rests on fewer than 6 MOB" in notes[kpi], kpi
    assert notes["Indicative IRB capital"].endswith("; INDICATIVE")
    # The PD is the chain's alone: the LGD does not enter it.
    assert notes[PD_KPI] == "ILLUSTRATIVE: YOUNG rests on fewer than 6 MOB steps of data"
    assert not notes[notes.index.str.startswith("Portfolio DEL30") | notes.index.isin(
        ["Outstanding EAD", "NPL ratio", "HHI of EAD by segment"])].str.contains("ILLUSTRATIVE").any()
    # A set LGD and years of data: nothing illustrative.
    measured = _analysis(panel[panel["PRODUCT_TYPE"] == "OLD"], lgd=0.5).kpis.set_index("kpi")["note"]
    assert not measured.str.contains("ILLUSTRATIVE").any()
    assert measured["Expected loss, lifetime"] == "" and measured["Indicative IRB capital"] == "INDICATIVE"


def test_the_dashboard_and_risk_summary_tag_them(young):
    layouts = dashboard_sheets(young.result, dashboard=Dashboard(young))
    labels = _texts(layouts, "Risk dashboard")
    for kpi in LOSS_KPIS[:-1] + (PD_KPI,):
        assert f"{kpi} (ILLUSTRATIVE)" in labels, kpi
    summary = _texts(layouts, "Risk summary")
    assert "Expected loss, lifetime (ILLUSTRATIVE)" in summary
    for expected in (DEFAULT_LGD, SHORT):
        assert any(t.startswith(expected) for t in summary), expected
    assert any(t.startswith(SHORT) for t in _texts(stress_sheets(young.result, analysis=young), "Stress summary"))


def test_var_contributions_are_the_mean_loss_and_the_es_at_its_level(young):
    """The column `expected_loss` held the simulated mean loss (8.88M on the sample beside an EL of 7.86M)."""
    from pyxl_del.risk.var import es_column

    sim = young.var
    contributions = sim.contributions(0.99)
    assert list(contributions.columns) == ["segment", "mean_loss", "es99_contribution"]
    assert contributions["mean_loss"].sum() == pytest.approx(sim.total.mean())
    assert contributions["es99_contribution"].sum() == pytest.approx(sim.es(0.99))
    table = risk_tables(young, ["var"])["var_contributions"]
    assert list(table.columns) == ["segment", "mean_loss", "es99_contribution"]
    assert [es_column(q) for q in (0.95, 0.975, 0.999)] == ["es95_contribution", "es97_5_contribution",
                                                           "es99_9_contribution"]
    sheet = next(layout for layout in dashboard_sheets(young.result, dashboard=Dashboard(young))
                 if layout.name == "Credit VaR")
    header = next(b for b in sheet.blocks if "Mean loss" in b.values.ravel().tolist())
    values = next(b for b in sheet.blocks if b.row == header.row + 1 and b.col == header.col + 1)
    assert np.allclose(values.values.ravel()[:2].astype(float), contributions["mean_loss"])
