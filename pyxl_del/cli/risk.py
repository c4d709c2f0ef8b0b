"""The risk subcommands: pyxl-del el | stress | var | concentration | capital | alerts | dashboard.

Each reads a panel (default: the bundled sample), fits it as `report` does, prints its view and, with --out,
writes it: a path ending in .xlsx gets the view's sheets, any other path is a folder of tidy CSV tables.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from pyxl_del.cli.common import (
    CONFIG_HELP,
    EXIT_ALERT,
    EXIT_OK,
    PANEL_HELP,
    SHEET_HELP,
    add_raw_csv,
    default_data,
    write_output,
)

FAIL_ON = ("warning", "critical")  # the alert severities worth failing a job on (pyxl_del.risk.alerts.SEVERITIES)


def _missing(v) -> bool:
    import pandas as pd  # loaded already: the values come from the analysis' frames

    return pd.isna(v)


def _amount(v) -> str:
    return "" if _missing(v) else f"{v:,.0f}"


def _pct(v) -> str:
    return "" if _missing(v) else f"{v:.2%}"


def _print_table(frame, amounts=(), pcts=(), **formatters: Callable) -> None:
    formats = {c: _amount for c in amounts} | {c: _pct for c in pcts} | formatters
    print(frame.to_string(index=False, na_rep="", formatters={k: v for k, v in formats.items() if k in frame.columns}))


def _analysis(args: argparse.Namespace):
    from pyxl_del.engine.config import load_config
    from pyxl_del.engine.pipeline import run

    cfg = load_config(args.config)
    overrides = {key: getattr(args, key) for key in ("n_paths", "seed", "horizon")
                 if getattr(args, key, None) is not None}
    if overrides:
        cfg = cfg.with_overrides(risk=overrides)
    scenarios = ()
    if getattr(args, "scenarios", None):
        from pyxl_del.risk.stress import read_scenarios_sheet

        scenarios = read_scenarios_sheet(args.scenarios)
    data = args.data or default_data()
    result = run(data, cfg, sheet=args.sheet)
    from pyxl_del.risk.analysis import (
        RiskAnalysis,  # after the data: a bad file is reported without loading scipy
    )

    # The decision twin reads one file (for its score and APR columns); parts (a glob, a folder) leave it the result.
    twin_data = data if Path(data).is_file() else None
    return RiskAnalysis.of(result, cfg, scenarios, data=twin_data, sheet=args.sheet)


def _notes(analysis, view: str | None = None, *, book: bool = True, illustrative: bool = True) -> None:
    """The reporting date and how the book was read, what makes the figures ILLUSTRATIVE (the sheets' words), then
    the warnings on the figures of ``view`` (analysis.VIEW_FIGURES: the ones its sheet shows)."""
    if book:
        for line in analysis.book.notes(analysis.result, analysis.config):
            print(f"note: {line}")
    if illustrative:  # the figures project the run's chain: what `report` says of it holds for them
        from pyxl_del.sheets.risk import illustrative_notes

        for line in illustrative_notes(analysis):
            print(line)
        for line in analysis.result.warnings:
            print(f"warning: {line}")
    for line in analysis.view_warnings(view) if view else ():
        print(f"WARNING: {line}")


def _write(analysis, view: str, args: argparse.Namespace, dashboard=None) -> None:
    """--out: the view's sheets (.xlsx) or tables (a folder); the dashboard's are every view's."""
    out = args.out
    if not out:
        return
    from pyxl_del.sheets import risk as sheets

    def layouts() -> list:
        if view == "stress":
            return sheets.stress_sheets(analysis.result, analysis=analysis)
        if view == "dashboard":
            return sheets.dashboard_sheets(analysis.result, dashboard=dashboard, stress=True)
        return sheets.view_sheets(analysis, view)

    views = ("dashboard", "alerts", "el", "var", "concentration", "capital", "stress") if view == "dashboard" \
        else (view,)
    for path in write_output(out, layouts, lambda: sheets.risk_tables(analysis, views, dashboard),
                             title=f"pyxl_del {view}", raw_text=args.raw_csv):
        print(f"wrote {path}")


def cmd_el(args: argparse.Namespace) -> int:
    analysis = _analysis(args)
    el = analysis.el
    print(f"Expected loss (LGD x EAD into {analysis.config.risk.loss_state}); per cohort in --out")
    from pyxl_del.risk.projection import ALL

    _print_table(el[el["cohort"] == ALL].drop(columns=["cohort", "status", "last_mob", "reporting_mob"]),
                 amounts=("ead", "performing_ead", "writeoff_12m", "writeoff_lifetime", "default_12m",
                          "default_lifetime", "el_12m", "el_lifetime"),
                 pcts=("pd_12m", "el_12m_rate", "el_lifetime_rate", "lgd"))
    _notes(analysis, "el")
    _write(analysis, "el", args)
    return EXIT_OK


def cmd_stress(args: argparse.Namespace) -> int:
    analysis = _analysis(args)
    table = analysis.stress.side_by_side()
    pct_rows = {r for r in table.index if " MOB " in r or r.endswith("_rate")}
    text = table.apply(lambda row: row.map(
        _pct if row.name in pct_rows else
        (lambda v: "n/a" if _missing(v) else f"{v:+.1%}") if row.name == "el_lifetime_vs_baseline" else
        (lambda v: "n/a" if _missing(v) else v if isinstance(v, str) else f"{v:g}")
        if row.name in ("min_z", "adverse_months", "rank") else
        _amount), axis=1)
    print(f"Stress test from the reporting date {analysis.book.label} (rho {analysis.config.risk.rho:g}, Z < 0 "
          f"adverse; DEL: Portfolio mean of cohorts)")
    print(text.to_string())
    _notes(analysis, "stress", book=False)
    if analysis.stress_note:
        print(f"WARNING: {analysis.stress_note}")
    _write(analysis, "stress", args)
    return EXIT_OK


def cmd_var(args: argparse.Namespace) -> int:
    analysis = _analysis(args)
    sim = analysis.var
    confidence = analysis.config.risk.confidence
    print(f"Credit loss over {sim.horizon} months from the reporting date {analysis.book.label}: {len(sim.total):,} "
          f"Monte Carlo paths of Z (seed {sim.seed}), outstanding EAD {sim.exposure:,.0f}")
    _print_table(sim.summary(confidence), amounts=("value", "std_error"), pcts=("pct_of_ead",),
                 confidence=lambda v: "" if _missing(v) else f"{v * 100:.10g}%")  # 99.9999%, not "100.0%"
    print("\nthe mean loss against the expected loss:")
    _print_table(analysis.el_reconciliation, amounts=("value", "difference", "std_error"))
    _notes(analysis, "var", book=False)
    print("\nconvergence (estimate on the first n paths):")
    conv = sim.convergence(confidence)
    _print_table(conv[conv["measure"].isin(["VaR", "ES"])], amounts=("value", "std_error"), pcts=("pct_of_ead",),
                 confidence=lambda v: f"{v:.1%}")
    _write(analysis, "var", args)
    return EXIT_OK


def cmd_concentration(args: argparse.Namespace) -> int:
    analysis = _analysis(args)
    conc = analysis.concentration
    print("Concentration of outstanding EAD today (HHI: 1/n for n equal parts)")
    _print_table(conc.summary, amounts=("ead",), pcts=("top1_share", "topn_share"),
                 hhi=lambda v: f"{v:.3f}", effective_n=lambda v: f"{v:.1f}")
    current = conc.current[conc.current["by"] == "segment"].sort_values("rank")
    _print_table(current.drop(columns="by"), amounts=("ead",), pcts=("share",))
    _notes(analysis, illustrative=False)  # shares of today's EAD: neither the LGD nor the forecast
    _write(analysis, "concentration", args)
    return EXIT_OK


def cmd_capital(args: argparse.Namespace) -> int:
    analysis = _analysis(args)
    print("INDICATIVE Basel IRB retail capital (not a regulatory calculation; docs/risk.md) and NPL ratio")
    columns = ["segment", "irb_class", "pd_used", "lgd", "correlation", "performing_ead", "risk_weight", "rwa",
               "capital", "npl_ratio", "writeoff_share"]
    _print_table(analysis.capital[columns], amounts=("performing_ead", "rwa", "capital"),
                 pcts=("pd_used", "lgd", "risk_weight", "npl_ratio", "writeoff_share"),
                 correlation=lambda v: "" if _missing(v) else f"{v:.3f}")
    _notes(analysis, "capital")
    _write(analysis, "capital", args)
    return EXIT_OK


def cmd_alerts(args: argparse.Namespace) -> int:
    from pyxl_del.engine.errors import counted

    analysis = _analysis(args)
    alerts = analysis.alerts
    print(f"{counted(len(alerts), 'alert')} from {counted(len(analysis.config.alerts.rules), 'rule')}")
    for a in alerts.itertuples(index=False):
        print(f"{a.severity.upper():8} {a.rule_id:4} {a.message}")
    _write(analysis, "alerts", args)
    from pyxl_del.risk.alerts import fires_at

    if args.fail_on and fires_at(alerts, args.fail_on):
        return EXIT_ALERT
    return EXIT_OK


def cmd_dashboard(args: argparse.Namespace) -> int:
    import pandas as pd

    from pyxl_del.decision.dashboard import Dashboard

    analysis = _analysis(args)
    dashboard = Dashboard(analysis)
    kpis = dashboard.kpis
    text = [_pct(v) if u == "pct" else _amount(v) if u == "amount" else f"{v:.3f}" if u == "ratio" else f"{v:g}"
            for v, u in zip(kpis["value"], kpis["unit"], strict=True)]
    print(pd.DataFrame({"indicator": kpis["kpi"], "value": text, "note": kpis["note"]}).to_string(index=False))
    _notes(analysis, "dashboard")
    for line in dashboard.warnings:
        print(f"WARNING: {line}")
    _write(analysis, "dashboard", args, dashboard)
    return EXIT_OK


COMMANDS = (
    ("el", cmd_el, "expected loss, 12-month and lifetime, per cohort-segment, segment and Portfolio"),
    ("stress", cmd_stress, "stress scenarios of the credit-cycle factor Z side by side (DEL, write-offs, EL, rank)"),
    ("var", cmd_var, "credit VaR and expected shortfall by Monte Carlo over Z paths"),
    ("concentration", cmd_concentration, "HHI and top-n shares of EAD by segment and cohort, with the trend"),
    ("capital", cmd_capital, "INDICATIVE Basel IRB retail capital and the NPL ratio"),
    ("alerts", cmd_alerts, "check the [alerts] rules; --fail-on makes a firing rule exit with code 3"),
    ("dashboard", cmd_dashboard, "every risk view: KPIs, and with --out the dashboard and all risk sheets "
                                 "(the Portfolio is 'Portfolio')"),
)


def add_commands(sub) -> None:
    """Add the risk subcommands to the CLI's subparsers."""
    for name, func, text in COMMANDS:
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("data", nargs="?", help=PANEL_HELP)
        p.add_argument("--config", help=CONFIG_HELP)
        p.add_argument("--out", help="a .xlsx workbook for the sheets, or a folder for the CSV tables "
                                     "(default: print only)")
        p.add_argument("--sheet", help=SHEET_HELP)
        add_raw_csv(p)
        if name == "stress":
            p.add_argument("--scenarios", metavar="FILE.xlsx", help="add the scenarios of the workbook's 'Scenarios' "
                                                                    "sheet (the layout --out writes)")
        if name == "var":
            p.add_argument("--paths", dest="n_paths", type=int, help="Monte Carlo paths (default: [risk] n_paths)")
            p.add_argument("--seed", type=int, help="random seed (default: [risk] seed)")
            p.add_argument("--horizon", type=int, help="months (default: [risk] horizon)")
        if name == "alerts":
            p.add_argument("--fail-on", choices=FAIL_ON,
                           help="exit with code 3 when an alert of this severity or worse fires")
        p.set_defaults(func=func)
