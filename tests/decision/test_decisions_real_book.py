"""The decision engine on a panel shaped like a real mortgage book (issue 15; tests/_real_book.py): no score and no
APR column, default economics. Every ROE, value, price and frontier figure says ILLUSTRATIVE wherever it is shown
(sheets, CSV, CLI, =DEL_DECIDE, the HTTP answer), and says nothing once the economics are set; no recommended APR
leaves the allowed range; budget left unallocated says why; the two DEL30 figures at MOB 12 are reconciled."""

from __future__ import annotations

import csv
import http.client
import json
import sys
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from _decision import SET, scored_panel
from _real_book import config, real_book_panel

import pyxl_del
from pyxl_del.cli import main
from pyxl_del.decision.dashboard import Dashboard
from pyxl_del.decision.optimise import PORTFOLIO, optimise
from pyxl_del.decision.twin import fit_twin
from pyxl_del.engine.config import Config
from pyxl_del.excel.decide_udf import decide_cells
from pyxl_del.risk.analysis import RiskAnalysis

ROOT = Path(__file__).resolve().parents[2]
MORTGAGE = {"economics": {"funding_rate": 0.03, "opex_rate": 0.0025, "opex_upfront": 0.005, "tax_rate": 0.21,
                          "discount_rate": 0.08, "hurdle_rate": 0.10, "default_apr": 0.042},
            "demand": {"max_take_up": 0.9, "midpoint": 0.045, "steepness": 400.0},
            "risk": {"lgd": 0.2, "n_paths": 1000}, "policy": {"apr_min": 0.03, "apr_max": 0.06}}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """The panel, a config leaving the economics at their defaults, and one setting all of them."""
    work = tmp_path_factory.mktemp("real_book")
    real_book_panel().to_parquet(work / "book.parquet")
    (work / "default.toml").write_text("[forecast]\nmax_mob = 24\n[risk]\nn_paths = 1000\n", encoding="utf-8")
    (work / "set.toml").write_text(config(**MORTGAGE).to_toml(), encoding="utf-8")
    return {"data": work / "book.parquet", "default": work / "default.toml", "set": work / "set.toml", "dir": work}


def _cells(path: Path, sheet: str) -> list:
    return [c for row in openpyxl.load_workbook(path)[sheet].iter_rows(values_only=True) for c in row]


def _labels(path: Path, sheet: str, first: str) -> list[str]:
    """The first cells of a sheet's rows below the row starting with ``first``."""
    rows = list(openpyxl.load_workbook(path)[sheet].iter_rows(values_only=True))
    top = next(i for i, row in enumerate(rows) if row[0] == first)
    return [row[0] for row in rows[top + 1:] if row[0] is not None]


@pytest.mark.parametrize("economics", ["default", "set"])
def test_optimise_says_illustrative_exactly_when_an_input_is_a_default(files, economics, capsys):
    illustrative = economics == "default"
    out = files["dir"] / f"opt_{economics}"
    assert main(["optimise", str(files["data"]), "--config", str(files[economics]), "--out", f"{out}.xlsx"]) == 0
    text = capsys.readouterr().out
    assert ("portfolio ROE (ILLUSTRATIVE)" in text) == illustrative
    assert ("APR (ILLUSTRATIVE)" in text) == illustrative
    book = Path(f"{out}.xlsx")
    labels = _labels(book, "Recommendations", "Figure")
    for figure in ("ROE", "Value (PV)", "APR", "Unit cost (break-even APR)"):
        assert (f"{figure} (ILLUSTRATIVE)" in labels) == illustrative, figure
        assert (figure in labels) != illustrative, figure
    frontier = _cells(book, "Frontier")
    for head in ("APR", "Value per unit applied for", "ROE"):
        assert (f"{head} (ILLUSTRATIVE)" in frontier) == illustrative and (head in frontier) != illustrative
    policy = [c for c in _cells(book, "Policy") if isinstance(c, str)]
    assert any("APRs ILLUSTRATIVE: default economics" in c for c in policy) == illustrative
    assert main(["optimise", str(files["data"]), "--config", str(files[economics]), "--out", str(out)]) == 0
    capsys.readouterr()
    for table in ("recommendations", "frontier", "policy"):
        with open(out / f"{table}.csv", encoding="utf-8") as fh:
            column = [row["illustrative"] for row in csv.DictReader(fh)]
        assert column and all(c.startswith("ILLUSTRATIVE: default economics") == illustrative for c in column), table


def test_the_dashboard_labels_roe_and_value(files, capsys):
    out = files["dir"] / "dash"
    assert main(["dashboard", str(files["data"]), "--config", str(files["default"]), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    roe_line = next(line for line in text.splitlines() if "ROE (steady book)" in line)
    assert "ILLUSTRATIVE: default economics" in roe_line
    kpis = pd.read_csv(out / "kpis.csv").set_index("kpi")["note"]
    assert kpis["ROE (steady book)"].startswith("ILLUSTRATIVE") and kpis["Value of a month's bookings"].startswith(
        "ILLUSTRATIVE")
    assert main(["dashboard", str(files["data"]), "--config", str(files["default"]), "--out", f"{out}.xlsx"]) == 0
    capsys.readouterr()
    labels = _labels(Path(f"{out}.xlsx"), "Risk dashboard", "Indicator")
    assert "ROE (steady book) (ILLUSTRATIVE)" in labels and "Value of a month's bookings (ILLUSTRATIVE)" in labels
    assert main(["dashboard", str(files["data"]), "--config", str(files["set"])]) == 0
    assert "ILLUSTRATIVE: default economics" not in capsys.readouterr().out


def test_del_decide_and_the_batch_file_carry_the_caveat(files, tmp_path):
    row = decide_cells("PURCHASE", 600.0, 100_000.0, None, str(files["data"]), str(files["default"]))
    # Every key left at its default, named whole within a cell's 255 characters (a longer text is cut: xlwings #456).
    assert row[0][-1].startswith("ILLUSTRATIVE: default economics") and "[demand] max_take_up, midpoint" in row[0][-1]
    assert row[0][-1].endswith("; set them in config.toml")
    row = decide_cells("PURCHASE", 600.0, 100_000.0, None, str(files["data"]), str(files["set"]))
    assert row[0][-1] == ""
    zero = tmp_path / "zero.toml"  # max_mob 6: the chain never reaches WRITEOFF, the expected loss is 0
    zero.write_text(config(**MORTGAGE, forecast={"max_mob": 6}).to_toml(), encoding="utf-8")
    row = decide_cells("PURCHASE", 600.0, 100_000.0, None, str(files["data"]), str(zero))
    assert row[0][6] == 0 and row[0][-1].startswith("expected loss 0: ") and "[risk] el_basis" in row[0][-1]
    apps = tmp_path / "apps.csv"
    pd.DataFrame({"segment": ["PURCHASE", "REFI"], "score": [600, 640], "amount": [1e5, 2e5]}).to_csv(apps, index=False)
    assert main(["decide", str(apps), "--data", str(files["data"]), "--config", str(files["default"]), "--out",
                 str(tmp_path / "out.csv")]) == 0
    assert pd.read_csv(tmp_path / "out.csv")["caveat"].str.startswith("ILLUSTRATIVE").all()


def test_the_http_answer_carries_the_caveat(files, tmp_path):
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from load_serve import start_server

    key = "real-book-key-0123456789"
    cfg = tmp_path / "config.toml"
    cfg.write_text(files["default"].read_text() + f'[decide]\ndata = "{files["data"].as_posix()}"\n', encoding="utf-8")
    proc, url = start_server(["--config", str(cfg)], key, tmp_path)
    try:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        headers = {"Content-Type": "application/json", "X-API-Key": key}
        conn.request("POST", "/v1/decisions", body=json.dumps({"segment": "REFI", "score": 610, "amount": 150000}),
                     headers=headers)
        answer = json.loads(conn.getresponse().read())
        assert answer["caveat"].startswith("ILLUSTRATIVE: default economics") and answer["expected_value"] != 0
        conn.request("POST", "/v1/decisions", headers=headers, body=json.dumps(
            {"applications": [{"segment": "PURCHASE", "score": 600, "amount": 1e5}]}))
        batch = json.loads(conn.getresponse().read())
        assert batch["decisions"][0]["caveat"].startswith("ILLUSTRATIVE")
        conn.request("GET", "/v1/policy", headers=headers)
        assert json.loads(conn.getresponse().read())["caveat"].startswith("ILLUSTRATIVE")
        conn.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# ------------------------------------------------------------------------------------------- the APR range


def test_without_an_apr_column_or_range_the_price_is_kept(files):
    twin = fit_twin(files["data"], config())
    rec = optimise(twin)
    aprs = [p.apr for p in rec.recommended.segments.values()]
    assert aprs == pytest.approx([0.30, 0.30])  # the current (default) APR: nothing allowed to reprice with
    kept = [n for n in rec.notes if "APR kept at 30.00%" in n]
    assert len(kept) == 2 and all("set [policy] apr_min and apr_max" in n for n in kept)


def test_a_price_beyond_the_configured_range_is_clipped_and_says_what_to_set(files):
    # Mortgage costs, but the default demand curve (midpoint 35%) wants a consumer-loan price; the range allows a
    # mortgage's.
    twin = fit_twin(files["data"], config(economics=MORTGAGE["economics"], risk=MORTGAGE["risk"],
                                          policy={"apr_min": 0.03, "apr_max": 0.06}))
    rec = optimise(twin)
    assert all(0.03 - 1e-12 <= p.apr <= 0.06 + 1e-12 for p in rec.recommended.segments.values())
    assert rec.frontier["apr"].dropna().between(0.03 - 1e-12, 0.06 + 1e-12).all()
    notes = [n for n in rec.notes if "value-maximising APR would be" in n]
    assert len(notes) == 2 and all("set [policy] apr_max" in n for n in notes)


@pytest.mark.parametrize("price_by", ["segment", "band"])
def test_with_an_apr_column_the_range_is_the_data(price_by):
    """The scored sample has APRs: no recommended APR, band by band, leaves the range booked per segment."""
    panel = scored_panel()
    twin = fit_twin(panel, Config().with_overrides(policy={"price_by": price_by}))
    lo, hi, where = twin.apr_range()
    booked = panel.groupby("PRODUCT_TYPE")["APR"].agg(["min", "max"]).loc[list(twin.segments)]
    assert np.allclose(lo, booked["min"]) and np.allclose(hi, booked["max"]) and set(where) == {
        "the APRs booked in the data"}
    rec = optimise(twin)
    for i, (segment, p) in enumerate(rec.recommended.segments.items()):
        aprs = p.band_aprs if price_by == "band" else (p.apr,)
        assert all(lo[i] - 1e-12 <= a <= hi[i] + 1e-12 for a in aprs), segment


def test_unallocated_budget_says_why():
    twin = fit_twin(scored_panel(), Config().with_overrides(**SET))
    rec = optimise(twin)
    left = 1 - sum(p.budget_share for p in rec.recommended.segments.values())
    note = next(n for n in rec.notes if "of the budget" in n)
    assert left > 0.01 and note.startswith(f"{left:.0%} of the budget") and "demand caps" in note


# ------------------------------------------------------------------------------------------- reconciliation


def test_the_two_del30_figures_at_mob_12_are_reconciled(files):
    cfg = config(risk={"n_paths": 1000})
    dashboard = Dashboard(RiskAnalysis.of(pyxl_del.run(real_book_panel(), cfg), cfg, data=files["data"]))
    recon = dashboard.del30_reconciliation
    kpis = dashboard.kpis.set_index("kpi")["value"]
    assert recon["value"].iloc[0] == pytest.approx(kpis["Portfolio DEL30 at MOB 12 (mean of cohorts)"])
    assert recon["value"].iloc[-1] == pytest.approx(kpis["Expected DEL30 at MOB 12"])
    assert recon["difference"].iloc[1:].sum() == pytest.approx(recon["value"].iloc[-1] - recon["value"].iloc[0])
    twin, _ = dashboard.twin
    new = optimise(twin).current_impact.set_index("segment").loc[PORTFOLIO, "del30_mob12"]
    assert recon["value"].iloc[-1] == pytest.approx(new)
