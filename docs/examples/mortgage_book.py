"""The risk twin and the decision engine on a real mortgage book: the Fannie Mae 2017Q1 excerpt.

    PYTHONPATH=. python docs/examples/mortgage_book.py [PATH/2017Q1-part.csv] [--config docs/examples/mortgage-config.toml]

prints the risk dashboard, the reporting-date book and `optimise`'s recommendation under the mortgage economics of
docs/examples/mortgage-config.toml (docs/risk.md §12, docs/decisions.md §9 explain every figure).
tests/decision/test_mortgage_book.py runs it and pins the figures loosely; both skip when the data are absent.

The data are Fannie Mae's (internal test data, never copied into the repository: see the README beside the file).
`read_fannie_panel` is a minimal private reader of the combined 108-field layout, enough for this example: the
package's own reader (pyxl_del.datasets.fannie) is written on another branch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
EXCERPT = Path("shared", "data", "fannie-mae-2017Q1", "2017Q1-part.csv")
# ../shared/data beside the checkout (or beside a folder of worktrees above it).
DATA = next((p / EXCERPT for p in ROOT.parents if (p / EXCERPT).is_file()), ROOT.parent / EXCERPT)
CONFIG = Path(__file__).with_name("mortgage-config.toml")
# 0-based fields of the combined layout: loan id, reporting period MMYYYY, original interest rate, original UPB,
# current UPB (0.00 while masked), loan purpose, months delinquent, zero-balance code, UPB at removal.
FIELDS = {"loan": 1, "period": 2, "rate": 7, "orig_upb": 9, "upb": 11, "purpose": 26, "dlq": 39, "zb": 43,
          "removal": 45}
PURPOSES = {"P": "PURCHASE", "C": "CASH-OUT REFI", "R": "NO-CASH-OUT REFI", "U": "UNKNOWN"}
LOSS_CODES = ("02", "03", "09", "15")  # third-party sale, short sale, deed-in-lieu / REO, note sale


def read_fannie_panel(path: str | Path) -> pd.DataFrame:
    """The excerpt as a pyxl_del panel in the default [columns] names, with the note rate as APR.

    Cohort = the loan's first reporting month (so cohort + MOB is the calendar month); state from the months
    delinquent (0 CURRENT, 1 DPD30+, 2 DPD60+, 3+ DPD90+); a zero-balance code ends the loan: 01 -> PREPAY with EAD 0,
    a credit event -> WRITEOFF at the UPB removed, any other code drops the row (the loan leaves while live). A
    masked current UPB (0.00 in a loan's first months) is the last positive UPB, else the original UPB.
    """
    raw = pd.read_csv(path, sep="|", header=None, usecols=sorted(FIELDS.values()), dtype=str,
                      keep_default_na=False).rename(columns={v: k for k, v in FIELDS.items()})
    period = pd.to_datetime(raw["period"], format="%m%Y")
    raw["month"] = period.dt.year * 12 + period.dt.month - 1
    raw = raw.sort_values(["loan", "month"], kind="stable").reset_index(drop=True)
    number = {k: pd.to_numeric(raw[k], errors="coerce") for k in ("rate", "orig_upb", "upb", "removal")}
    zb = raw["zb"].str.strip().str.zfill(2).where(raw["zb"].str.strip() != "", "")
    dlq = pd.to_numeric(raw["dlq"], errors="coerce")
    upb = number["upb"].where(number["upb"] > 0)
    carried = upb.groupby(raw["loan"]).ffill().fillna(number["orig_upb"])
    state = np.select([dlq >= 3, dlq == 2, dlq == 1], ["DPD90+", "DPD60+", "DPD30+"], "CURRENT").astype(object)
    state = np.where(zb == "01", "PREPAY", np.where(zb.isin(LOSS_CODES), "WRITEOFF", state))
    removal = number["removal"].where(number["removal"] > 0)
    ead = np.where(zb == "01", 0.0, np.where(zb.isin(LOSS_CODES), removal.fillna(carried), carried))
    keep = ((zb == "") & dlq.notna()) | (zb == "01") | zb.isin(LOSS_CODES)
    first = raw.groupby("loan")["month"].transform("min")
    cohort = first.map(lambda m: f"{m // 12:04d}-{m % 12 + 1:02d}")
    panel = pd.DataFrame({
        "AGREEMENT_ID": raw["loan"], "DISBURSAL_MONTH": cohort, "MOB": raw["month"] - first,
        "PRODUCT_TYPE": raw["purpose"].map(PURPOSES).fillna("UNKNOWN"), "STATE_MODEL": state,
        "PRINCIPLE_OUTSTANDING": ead, "APR": number["rate"] / 100.0,
    })[keep.to_numpy()]
    for col in ("AGREEMENT_ID", "DISBURSAL_MONTH", "PRODUCT_TYPE", "STATE_MODEL"):
        panel[col] = panel[col].astype("string")
    return panel.reset_index(drop=True)


def figures(path: str | Path = DATA, config: str | Path = CONFIG) -> dict:
    """Everything the docs quote: the dashboard's KPIs, the reporting-date notes, warnings and the recommendation."""
    from pyxl_del.decision.dashboard import Dashboard
    from pyxl_del.decision.optimise import optimise
    from pyxl_del.engine.config import load_config
    from pyxl_del.engine.pipeline import run
    from pyxl_del.risk.analysis import RiskAnalysis

    cfg = load_config(config)
    panel = read_fannie_panel(path)
    result = run(panel, cfg)
    dashboard = Dashboard(RiskAnalysis.of(result, cfg, data=panel))
    twin, _ = dashboard.twin
    return {"panel": panel, "dashboard": dashboard, "kpis": dashboard.kpis.set_index("kpi"),
            "recommendation": optimise(twin), "twin": twin}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=str(DATA))
    parser.add_argument("--config", default=str(CONFIG))
    args = parser.parse_args(argv)
    if not Path(args.data).is_file():
        print(f"{args.data}: not found (the Fannie Mae excerpt is internal test data)", file=sys.stderr)
        return 2
    out = figures(args.data, args.config)
    d, rec = out["dashboard"], out["recommendation"]
    with pd.option_context("display.width", 200, "display.max_colwidth", 90):
        print(d.kpis[["kpi", "value", "note"]].to_string(index=False))
        print("\n".join(d.analysis.book.notes(d.analysis.result, d.analysis.config)))
        print("\n".join(f"WARNING: {w}" for w in [*d.warnings, *d.analysis.warnings()]))
        print(d.del30_reconciliation[["step", "value", "difference"]].to_string(index=False))
        print(d.analysis.el_reconciliation[["step", "value", "difference", "std_error"]].to_string(index=False))
        cur, new = rec.current_impact.set_index("segment"), rec.recommended_impact.set_index("segment")
        print(cur.loc[["Portfolio"], ["apr", "volume", "roe", "value", "unit_cost"]])
        print(new[["apr", "budget_share", "volume", "roe", "value", "unit_cost"]])
        print("\n".join(rec.notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
