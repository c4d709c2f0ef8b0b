"""The risk twin and the decision engine on a real mortgage book: the Fannie Mae 2017Q1 excerpt.

    PYTHONPATH=. python docs/examples/mortgage_book.py [PATH/2017Q1-part.csv] [--config docs/examples/mortgage-config.toml]

prints the risk dashboard, the reporting-date book and `optimise`'s recommendation under the mortgage economics of
docs/examples/mortgage-config.toml (docs/risk.md §12, docs/decisions.md §9 explain every figure).
tests/decision/test_mortgage_book.py runs it and pins the figures loosely; both skip when the data are absent.

The data are Fannie Mae's (internal test data, never copied into the repository: see the README beside the file).
`read_fannie_panel` reads it with the package's reader, pyxl_del.datasets.fannie (`pyxl-del import fannie`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
EXCERPT = Path("shared", "data", "fannie-mae-2017Q1", "2017Q1-part.csv")
# ../shared/data beside the checkout (or beside a folder of worktrees above it).
DATA = next((p / EXCERPT for p in ROOT.parents if (p / EXCERPT).is_file()), ROOT.parent / EXCERPT)
CONFIG = Path(__file__).with_name("mortgage-config.toml")


def read_fannie_panel(path: str | Path) -> pd.DataFrame:
    """The excerpt as a pyxl_del panel in the default [columns] names, with the note rate as APR: the package's reader
    (`pyxl-del import fannie`, cleaning rules in docs/real-data.md), cohort by first reporting month, segment by loan
    purpose."""
    from pyxl_del.datasets.fannie import read_fannie
    from pyxl_del.engine.config import Config

    config = Config()
    columns = {k: config[k] for k in ("loan_id", "cohort", "mob", "segment", "state", "ead", "apr")}
    return read_fannie([path], columns)[0]


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
