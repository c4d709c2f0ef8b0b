"""The real excerpt (Fannie Mae 2017Q1, internal test data) with the mortgage economics of
docs/examples/mortgage-config.toml: the dashboard and `optimise` give figures in the plausible ranges docs/risk.md
§12 and docs/decisions.md §9 state and reason. Skips when the data are absent."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docs" / "examples" / "mortgage_book.py"
spec = importlib.util.spec_from_file_location("mortgage_book", SCRIPT)
mortgage_book = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mortgage_book)

pytestmark = pytest.mark.skipif(not mortgage_book.DATA.is_file(), reason="the Fannie Mae excerpt is not here")


@pytest.fixture(scope="module")
def out() -> dict:
    return mortgage_book.figures()


def test_the_book_at_the_reporting_date(out):
    kpis = out["kpis"]["value"]
    book = out["dashboard"].analysis.book
    assert book.label == "2022-03"
    # About 100 of the 438 loans are left after the 2020-21 refinancing wave, ~220,000 each.
    assert 15e6 < kpis["Outstanding EAD"] < 35e6
    assert 0 <= kpis["NPL ratio"] < 0.02  # forbearance resolved by 2022


def test_risk_figures_are_plausible_or_say_why_not(out):
    kpis = out["kpis"]
    ead = kpis.loc["Outstanding EAD", "value"]
    el12, note = kpis.loc["Expected loss, 12 months", ["value", "note"]]
    if el12 > 0:
        assert 0.0001 * ead < el12 < 0.005 * ead  # 1 to 50 bp of a prime mortgage book (default basis, LGD 20%)
        assert 0 < kpis.loc["PD 12 months (performing EAD)", "value"] < 0.03
    else:
        assert note.startswith("WARNING")  # thin delinquent rows: never a silent zero
    assert 0 < kpis.loc["Indicative IRB capital", "value"] < 0.05 * ead


def test_dashboard_and_optimise_are_plausible(out):
    kpis = out["kpis"]
    assert not kpis["note"].str.startswith("ILLUSTRATIVE: default economics").any()  # the economics are set
    roe = kpis.loc["ROE (steady book)", "value"]
    assert 0.0 < roe < 0.20  # near the 10% hurdle: the booked note rates sit near the break-even APR
    rec = out["recommendation"]
    lo, hi, _ = out["twin"].apr_range()
    assert (lo > 0.02).all() and (hi < 0.06).all()  # 2017 note rates
    for i, p in enumerate(rec.recommended.segments.values()):
        assert lo[i] - 1e-12 <= p.apr <= hi[i] + 1e-12 and 0.035 < p.apr < 0.055
    new = rec.recommended_impact.set_index("segment").loc["Portfolio"]
    assert 0.08 < new["roe"] < 0.30 and new["value"] > 0
    assert 0.035 < new["unit_cost"] < 0.05  # funding 3% + opex, loss and capital charge
    assert not rec.caveat
