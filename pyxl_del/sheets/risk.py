"""The risk views as workbook sheets (the report's layout classes) and their tidy tables.

`stress_sheets(result, config)` -> "Stress test" (scenarios side by side, ranking, DEL30 chart, Z paths) and
"Scenarios" (the editable scenario table that `stress.read_scenarios_sheet` reads back).
`dashboard_sheets(result, config)` -> "Risk dashboard" (KPIs, ROE of the decision twin, and charts: DEL curves by
segment, scenario comparison, EAD mix), then "Alerts", "Expected loss", "Credit VaR", "Concentration" and "Capital
(indicative)". Both return plain `layout.SheetLayout`s for any renderer (openpyxl for the CLI, the live workbook
for the ribbon); the two sets have their own owners, so writing one leaves the other's sheets in place.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from pyxl_del.decision.dashboard import Dashboard
from pyxl_del.engine.config import Config, ScenarioSpec
from pyxl_del.engine.data import PORTFOLIO
from pyxl_del.engine.diagnostics import too_few_steps
from pyxl_del.engine.errors import counted
from pyxl_del.engine.pipeline import DelResult
from pyxl_del.risk.alerts import describe
from pyxl_del.risk.analysis import ALERTS_PREFIX, RiskAnalysis
from pyxl_del.risk.projection import ALL, EL_HORIZON
from pyxl_del.risk.stress import SHEET_HEADER
from pyxl_del.risk.var import es_column
from pyxl_del.sheets.layout import (
    CURVE_COLORS,
    HEADER_STYLE,
    HEADER_WRAP_STYLE,
    NOTE_COLOR,
    NOTE_STYLE,
    PERCENT,
    SECTION_STYLE,
    TITLE_STYLE,
    WARN_COLOR,
    Area,
    Block,
    Column,
    Font,
    Format,
    LineChart,
    Page,
    Series,
    SheetLayout,
    Style,
    business_label,
    cell_block,
    clean_text,
    frame_table,
    listed_names,
    segment_colors,
    text_grid,
    widths_of,
)
from pyxl_del.sheets.summary import (
    Figure,
    SheetWriter,
    book,
    summary_sheet,
    summary_top,
)

KIND = "risk"
STRESS_OWNER, DASHBOARD_OWNER = "risk-stress", "risk-dashboard"  # the ribbon's two buttons replace their own sheets
TAB_COLOR = "C00000"
AMOUNT = "#,##0"
RATIO = "0.000"
CONFIDENCE = "0.0%"
SIGNED_PERCENT = "+0.0%;-0.0%;0.0%"
UNIT_FORMATS = {"pct": PERCENT, "amount": AMOUNT, "count": "0", "ratio": RATIO}
TOTAL_STYLE = Style(font=Font(bold=True))
INDICATIVE_STYLE = Style(font=Font(bold=True, color="C00000"))
WARNING_STYLE = Style(font=Font(size=9, bold=True, color=WARN_COLOR))
WARNING_LABEL_STYLE = Style(font=Font(bold=True, color=WARN_COLOR))
SEVERITY_STYLES = {
    "critical": Style(font=Font(bold=True, color="9C0006"), fill="FFC7CE"),
    "warning": Style(font=Font(bold=True, color="9C5700"), fill="FFEB9C"),
    "info": Style(font=Font(color="1F4E78"), fill="DDEBF7"),
}
CHART_ROWS = 19  # rows a 9 cm chart covers at the default row height, and a gap
DASHBOARD_CHART_CM = 15.0  # beside the indicators, on one landscape page across
HEADER_HEIGHT = 32.0

SHEETS = {"dashboard": "Risk dashboard", "alerts": "Alerts", "el": "Expected loss", "var": "Credit VaR",
          "concentration": "Concentration", "capital": "Capital (indicative)", "stress": "Stress test",
          "scenarios": "Scenarios"}


def _header(title: str, notes: Sequence[str], warnings: Sequence[str] = ()) -> tuple[list[Block], list[Format]]:
    """The title, notes (small italics) and warnings (bold, in the warning colour) from row 1 down: rows
    2 .. 1 + len(notes) + len(warnings)."""
    lines = [*notes, *(f"WARNING: {w}" for w in warnings)]
    blocks = [cell_block(1, 1, title)] + [cell_block(2 + i, 1, text) for i, text in enumerate(lines)]
    formats = [Format(Area.cell(1, 1), TITLE_STYLE)] + [Format(Area.cell(2 + i, 1), NOTE_STYLE)
                                                          for i in range(len(notes))]
    formats += [Format(Area.cell(2 + len(notes) + i, 1), WARNING_STYLE) for i in range(len(warnings))]
    return blocks, formats


def _book_notes(analysis: RiskAnalysis) -> list[str]:
    return analysis.book.notes(analysis.result, analysis.config)


def illustrative_notes(analysis: RiskAnalysis) -> list[str]:
    """ILLUSTRATIVE when some segment's LGD is the default ([risk] lgd left out), and when some segment's forecast
    rests on too few months of data (engine.diagnostics.short_history): every figure here projects that chain."""
    config = analysis.config
    notes = []
    if analysis.default_lgd_segments:
        notes.append(f"ILLUSTRATIVE LGD: {config.risk.segment_lgd(''):.0%} is the default ([risk] lgd left out) for "
                     f"{', '.join(analysis.default_lgd_segments)}; every expected loss, VaR and capital figure "
                     f"scales with it. Set [risk] lgd or lgd_by_segment.")
    short = [clean_text(s) for s in analysis.short_history_segments]
    if short:
        notes.append(f"ILLUSTRATIVE forecast: {too_few_steps(', '.join(short), len(short))}; every loss, VaR, stress "
                     f"and capital figure projects that chain (the report's Summary, Caveats).")
    return notes


def _section(row: int, text: str) -> tuple[Block, Format]:
    return cell_block(row, 1, text), Format(Area.cell(row, 1), SECTION_STYLE)


def _bold_rows(mask: Sequence[bool], top: int, left: int, right: int) -> list[Format]:
    return [Format(Area(top + i, left, top + i, right), TOTAL_STYLE) for i, bold in enumerate(mask) if bold]


def _chart_data(top: int, left: int, key_header: str, keys: Sequence, series: Sequence[tuple[str, np.ndarray]]
                ) -> tuple[list[Block], list[Format], Area, list[Area]]:
    """A key column and one column per series from row ``top`` (header) down: the cells a chart reads."""
    n = len(keys)
    blocks = [Block(top, left, text_grid([[key_header, *[name for name, _ in series]]])),
              Block(top + 1, left, text_grid([[k] for k in keys]))]
    if series:
        blocks.append(Block(top + 1, left + 1, np.column_stack([values for _, values in series])))
    formats = [Format(Area(top, left, top, left + len(series)), HEADER_WRAP_STYLE)]
    areas = [Area(top + 1, left + 1 + i, top + n, left + 1 + i) for i in range(len(series))]
    return blocks, formats, Area(top + 1, left, top + n, left), areas


def _line_chart(title: str, anchor: tuple[int, int], categories: Area, names: Sequence[str], areas: Sequence[Area],
                colors: dict[str, str] | None = None, **options) -> LineChart:
    """A line per area; ``colors`` (a segment's colour by its name) fixes the colour of the series it names."""
    colors = colors or {}
    return LineChart(title=title, anchor=anchor, categories=categories,
                     series=tuple(Series(name, area, colors.get(name, CURVE_COLORS[i % len(CURVE_COLORS)]))
                                  for i, (name, area) in enumerate(zip(names, areas, strict=True))), **options)


def _sheet(name: str, owner: str, title: str, blocks, formats, **options) -> SheetLayout:
    return SheetLayout(name=name, kind=KIND, owner=owner, title=title, blocks=tuple(blocks), formats=tuple(formats),
                       tab_color=options.pop("tab_color", TAB_COLOR), row_heights=options.pop("row_heights", {1: 30.0}),
                       **options)


# ------------------------------------------------------------------------------------------------ sheets


def alerts_sheet(analysis: RiskAnalysis) -> SheetLayout:
    """Every alert that fired (most severe first) with its value and threshold, then the rules checked."""
    alerts = analysis.alerts
    rules = analysis.config.alerts.rules
    title = "Alerts"
    blocks, formats = _header(title, [
        f"{counted(len(alerts), 'alert')} from {counted(len(rules), 'rule')} (the alert rules of the "
        f"configuration), most severe first. A scheduled run can be set to stop when an alert of a chosen "
        f"severity or worse fires.",
    ])
    columns = [("severity", "Severity", None, 10.0), ("rule_id", "Rule", None, 6.0),
               ("segment", "Segment", None, 16.0), ("cohort", "Cohort", None, 9.0), ("mob", "MOB", "0", 6.0),
               ("value", "Value", PERCENT, 10.0), ("threshold", "Threshold", PERCENT, 10.0),
               ("message", "Message", None, 80.0)]
    top = 4
    table_blocks, table_formats, area = frame_table(alerts, columns, top)
    blocks += table_blocks
    formats += table_formats
    for i, (severity, rule_id) in enumerate(zip(alerts["severity"], alerts["rule_id"], strict=True)):
        formats.append(Format(Area.cell(top + 1 + i, 1), SEVERITY_STYLES[severity]))
        rule = rules[int(rule_id[1:]) - 1]
        if rule.rule == "k_clipped" or getattr(rule, "measure", None) == "hhi":
            formats.append(Format(Area(top + 1 + i, 6, top + 1 + i, 7), Style(number_format=RATIO)))
    if alerts.empty:
        blocks.append(cell_block(top + 1, 1, "No alert fired."))
    row = area.last_row + 2
    block, fmt = _section(row, "Rules checked")
    rule_table = pd.DataFrame({"rule_id": [f"R{i}" for i in range(1, len(rules) + 1)],
                               "severity": [r.severity for r in rules], "rule": [describe(r) for r in rules]})
    rule_blocks, rule_formats, _ = frame_table(rule_table, [("rule_id", "Rule", None, 0),
                                                            ("severity", "Severity", None, 0),
                                                            ("rule", "Checks", None, 0)], row + 1)
    return _sheet(SHEETS["alerts"], DASHBOARD_OWNER, title, [*blocks, block, *rule_blocks],
                  [*formats, fmt, *rule_formats], column_widths=widths_of(columns), freeze=(top + 1, 1),
                  autofilter=area, page=Page(landscape=True, repeat_rows=(top, top)), areas={"alerts": area})


EL_TABLE: tuple[Column, ...] = (
    ("segment", "Segment", None, 16.0), ("cohort", "Cohort", None, 9.0), ("status", "Status", None, 9.0),
    ("last_mob", "MOB of last rows", "0", 9.0), ("reporting_mob", "MOB at reporting date", "0", 9.0),
    ("ead", "Outstanding EAD", AMOUNT, 14.0), ("performing_ead", "Performing EAD", AMOUNT, 14.0),
    ("pd_12m", "PD 12m", PERCENT, 8.0), ("lgd", "LGD", "0%", 6.0),
    ("writeoff_12m", "Write-off 12m", AMOUNT, 13.0), ("writeoff_lifetime", "Write-off lifetime", AMOUNT, 13.0),
    ("default_12m", "In default 12m", AMOUNT, 13.0), ("default_lifetime", "In default lifetime", AMOUNT, 13.0),
    ("el_12m", "EL 12m", AMOUNT, 13.0), ("el_lifetime", "EL lifetime", AMOUNT, 13.0),
    ("el_12m_rate", "EL 12m / EAD", PERCENT, 9.0), ("el_lifetime_rate", "EL lifetime / EAD", PERCENT, 9.0),
)


def _el_definition(config: Config) -> str:
    risk = config.risk
    if risk.el_basis == "default":
        return (f"EL = LGD × the EAD in default ({', '.join(risk.default_states)}) today plus the EAD entering "
                f"default")
    return f"EL = LGD × the EAD flowing into {risk.loss_state}"


def el_sheet(analysis: RiskAnalysis) -> SheetLayout:
    el = analysis.el
    title = "Expected loss"
    cfg = analysis.config
    notes = [
        f"{_el_definition(cfg)}, from the reporting date {analysis.book.label}: over the next {EL_HORIZON} months, "
        f"and over the lifetime (explicit steps, then the absorption probabilities of the tail matrix). PD 12m: "
        f"share of the performing EAD in a default state ({', '.join(cfg.risk.default_states)}) within "
        f"{EL_HORIZON} months. Status: current (rows at the reporting date), rolled (rows end earlier: rolled "
        f"forward by the chain), excluded, closed (no loan left).",
        *_book_notes(analysis), *illustrative_notes(analysis),
        "Rows with cohort 'All' are the segment totals and the Portfolio (bold).",
    ]
    warnings = analysis.warnings()
    blocks, formats = _header(title, notes, warnings)
    top = 3 + len(notes) + len(warnings)
    table_blocks, table_formats, area = frame_table(el, EL_TABLE, top)
    formats += table_formats + _bold_rows(el["cohort"] == ALL, top + 1, 1, len(EL_TABLE))
    return _sheet(SHEETS["el"], DASHBOARD_OWNER, title, blocks + table_blocks, formats,
                  column_widths=widths_of(EL_TABLE), row_heights={1: 30.0, top: HEADER_HEIGHT}, freeze=(top + 1, 3),
                  autofilter=area, page=Page(landscape=True, repeat_rows=(top, top), repeat_cols=(1, 2)),
                  areas={"table": area})


VAR_TABLE: tuple[Column, ...] = (
    ("measure", "Measure", None, 12.0), ("confidence", "Confidence", CONFIDENCE, 11.0),
    ("value", "Loss", AMOUNT, 15.0), ("pct_of_ead", "% of EAD", PERCENT, 10.0),
    ("std_error", "Std error", AMOUNT, 13.0),
)


def var_sheet(analysis: RiskAnalysis) -> SheetLayout:
    sim = analysis.var
    risk = analysis.config.risk
    title = "Credit VaR and expected shortfall"
    blocks, formats = _header(title, [
        f"Monte Carlo of the credit loss over {sim.horizon} months: {len(sim.total):,} paths of the credit-cycle "
        f"factor Z (seed {sim.seed}; month-to-month persistence {risk.z_persistence:g}; rho {risk.rho:g}; Z < 0 "
        f"adverse). Each month moves every segment's matrices by Z (the fitted matrices are the average over Z).",
        f"Loss: {_el_definition(analysis.config)[5:]}, from the reporting date {analysis.book.label}, large-pool "
        "(no idiosyncratic noise). VaR = loss quantile (mean loss included); UL = VaR − mean loss; ES = mean loss "
        "beyond VaR. 'mean' is the simulated mean loss, not the expected loss: the reconciliation after the "
        "summary takes the Expected loss sheet's figure to it. Std errors: bootstrap (VaR, ES, UL), s/√n (mean).",
        *illustrative_notes(analysis),
    ], analysis.view_warnings("var"))
    row = 3 + len(blocks)
    block, fmt = _section(row, "Summary")
    table_blocks, table_formats, summary_area = frame_table(sim.summary(risk.confidence), VAR_TABLE, row + 1)
    blocks += [block, *table_blocks]
    formats += [fmt, *table_formats]
    row = summary_area.last_row + 2
    block, fmt = _section(row, "Reconciliation: the expected loss (Expected loss sheet) and the simulated mean loss")
    table_blocks, table_formats, recon_area = frame_table(analysis.el_reconciliation, RECONCILIATION_TABLE, row + 1)
    blocks += [block, *table_blocks]
    formats += [fmt, *table_formats]
    row = recon_area.last_row + 2
    block, fmt = _section(row, "Convergence: the estimates on the first n paths")
    columns = (("paths", "Paths", "#,##0", 0), *VAR_TABLE)
    table_blocks, table_formats, area = frame_table(sim.convergence(risk.confidence), columns, row + 1, left=1)
    blocks += [block, *table_blocks]
    formats += [fmt, *table_formats]
    top = max(risk.confidence)
    row = area.last_row + 2
    block, fmt = _section(row, f"By segment: mean loss and contribution to the {top:.0%} expected shortfall")
    table_blocks, table_formats, _ = frame_table(sim.contributions(top), (
        ("segment", "Segment", None, 0), ("mean_loss", "Mean loss", AMOUNT, 0),
        (es_column(top), f"ES {top:.0%} contribution", AMOUNT, 0)), row + 1)
    blocks += [block, *table_blocks]
    formats += [fmt, *table_formats]
    widths = {1: 14.0, 2: 12.0, 3: 15.0, 4: 15.0, 5: 12.0, 6: 13.0}
    return _sheet(SHEETS["var"], DASHBOARD_OWNER, title, blocks, formats, column_widths=widths,
                  page=Page(landscape=False), areas={"summary": summary_area, "reconciliation": recon_area})


RECONCILIATION_TABLE: tuple[Column, ...] = (
    ("step", "Figure", None, 0), ("value", "Value", AMOUNT, 0), ("difference", "Difference", AMOUNT, 0),
    ("std_error", "Std error", AMOUNT, 0), ("explanation", "What the difference is", None, 0),
)


def concentration_sheet(analysis: RiskAnalysis) -> SheetLayout:
    conc = analysis.concentration
    n = conc.top_n
    title = "Concentration of outstanding EAD"
    blocks, formats = _header(title, [
        f"HHI = sum of squared shares (1/n for n equal parts, 1 for one); effective n = 1 / HHI; top-{n} share = "
        f"share of the {n} largest. Today = the reporting date {analysis.book.label}; trend = actual data by "
        f"calendar month (up to [forecast] max_mob).", *_book_notes(analysis)[1:],
    ])
    row = 2 + len(blocks)
    block, fmt = _section(row, "Today")
    summary_columns = (("by", "By", None, 0), ("n", "Count", "0", 0), ("ead", "EAD", AMOUNT, 0),
                       ("hhi", "HHI", RATIO, 0), ("effective_n", "Effective n", "0.0", 0),
                       ("top1_share", "Largest share", PERCENT, 0), ("topn_share", f"Top-{n} share", PERCENT, 0))
    table_blocks, table_formats, area = frame_table(conc.summary, summary_columns, row + 1)
    blocks += [block, *table_blocks]
    formats += [fmt, *table_formats]
    row = area.last_row + 2

    trend = conc.trend.pivot(index="month", columns="by", values=["hhi", "topn_share", "ead"])
    months = list(trend.index.astype(str))
    current = conc.current.sort_values(["by", "rank"], ascending=[False, True], kind="stable")
    left = 10
    shares_row = 4 + CHART_ROWS + 1
    block = cell_block(shares_row, left, "Shares today")
    formats.append(Format(Area.cell(shares_row, left), SECTION_STYLE))
    table_blocks, table_formats, shares = frame_table(current, (("by", "By", None, 0), ("name", "Name", None, 0),
                                                           ("ead", "EAD", AMOUNT, 0), ("share", "Share", PERCENT, 0),
                                                           ("rank", "Rank", "0", 0)), shares_row + 1, left)
    blocks += [block, *table_blocks]
    formats += table_formats

    # The monthly trend behind the chart goes below everything printed: it is the chart's data, not a page.
    row = max(row, shares.last_row) + 3
    block, fmt = _section(row, "Chart data: trend by calendar month")
    series = [("HHI by segment", trend[("hhi", "segment")].to_numpy()),
              ("HHI by cohort", trend[("hhi", "cohort")].to_numpy()),
              (f"Top-{n} share by segment", trend[("topn_share", "segment")].to_numpy()),
              (f"Top-{n} share by cohort", trend[("topn_share", "cohort")].to_numpy()),
              ("Outstanding EAD", trend[("ead", "segment")].to_numpy())]
    data_blocks, data_formats, keys, areas = _chart_data(row + 1, 1, "Month", months, series)
    chart = _line_chart("HHI of outstanding EAD", (4, left), keys, [s[0] for s in series[:2]], areas[:2],
                        x_title="Month", y_title="HHI", y_format="0.00", width_cm=18.0)
    if months:
        data_formats += [Format(Area(keys.first_row, 2, keys.last_row, 3), Style(number_format=RATIO)),
                         Format(Area(keys.first_row, 4, keys.last_row, 5), Style(number_format=PERCENT)),
                         Format(Area(keys.first_row, 6, keys.last_row, 6), Style(number_format=AMOUNT))]
    blocks += [block, *data_blocks]
    formats += [fmt, *data_formats]
    widths = {1: 12.0, 2: 10.0, 3: 13.0, 4: 11.0, 5: 11.0, 6: 14.0, 7: 12.0, 10: 9.0, 11: 16.0, 12: 14.0, 13: 9.0}
    return _sheet(SHEETS["concentration"], DASHBOARD_OWNER, title, blocks, formats, charts=(chart,) if months else (),
                  column_widths=widths, row_heights={1: 30.0, keys.first_row - 1: HEADER_HEIGHT},
                  # The shares' header on every page their rows run on to.
                  page=Page(landscape=True, repeat_rows=(shares_row + 1, shares_row + 1),
                            print_area=Area(1, 1, row - 2, shares.last_col)))


CAPITAL_TABLE: tuple[Column, ...] = (
    ("segment", "Segment", None, 16.0), ("irb_class", "IRB class", None, 10.0), ("pd_12m", "PD 12m", PERCENT, 8.0),
    ("pd_used", "PD used (floored)", PERCENT, 9.0), ("lgd", "LGD", "0%", 6.0),
    ("correlation", "Correlation R", RATIO, 11.0), ("performing_ead", "Performing EAD", AMOUNT, 14.0),
    ("k", "K per unit EAD", PERCENT, 9.0), ("risk_weight", "Risk weight", PERCENT, 9.0),
    ("rwa", "RWA", AMOUNT, 14.0), ("capital", "Capital (K × EAD)", AMOUNT, 13.0),
    ("defaulted_ead", "Defaulted EAD", AMOUNT, 13.0), ("outstanding_ead", "Outstanding EAD", AMOUNT, 14.0),
    ("npl_ratio", "NPL ratio", PERCENT, 8.0), ("writeoff_share", "Write-off share", PERCENT, 9.0),
)


def _live_defaults(config: Config) -> list[str]:
    return [s for s in config.risk.default_states if s not in config.buckets.absorbing]


def capital_sheet(analysis: RiskAnalysis) -> SheetLayout:
    cap = analysis.capital
    risk = analysis.config.risk
    title = "Capital and NPL — INDICATIVE"
    blocks, formats = _header(title, [
        "INDICATIVE, not a regulatory calculation: the Basel IRB retail formula applied to the chain's 12-month PD "
        "with no long-run or downturn calibration, margin of conservatism, defaulted-exposure treatment, CCFs or "
        "output floor. Use it to compare segments and scenarios, not to report capital.",
        f"K = LGD × (Φ((Φ⁻¹(PD) + √R Φ⁻¹(0.999)) / √(1 − R)) − PD), risk weight = 12.5 K; "
        f"R: mortgage 0.15, revolving 0.04, other retail 0.03–0.16 by PD. PD floored at {risk.pd_floor:.2%}. "
        f"EAD = performing EAD. "
        f"NPL ratio = defaulted EAD (live default states: {', '.join(_live_defaults(analysis.config))}) / "
        f"outstanding EAD; write-off share = EAD in {risk.loss_state} / (outstanding + that); at the reporting "
        f"date {analysis.book.label}.", *illustrative_notes(analysis),
    ], analysis.view_warnings("capital"))
    formats[0] = Format(Area.cell(1, 1), INDICATIVE_STYLE.over(TITLE_STYLE))
    top = 2 + len(blocks)
    table_blocks, table_formats, area = frame_table(cap, CAPITAL_TABLE, top)
    formats += table_formats + _bold_rows(cap["segment"] == PORTFOLIO, top + 1, 1, len(CAPITAL_TABLE))
    return _sheet(SHEETS["capital"], DASHBOARD_OWNER, title, blocks + table_blocks, formats,
                  column_widths=widths_of(CAPITAL_TABLE), row_heights={1: 30.0, top: HEADER_HEIGHT},
                  page=Page(landscape=True), areas={"table": area})


STRESS_ROWS: tuple[tuple[str, str, str | None], ...] = (
    ("description", "Description", None), ("min_z", "Lowest Z", "0.00"), ("adverse_months", "Months with Z < 0", "0"),
    ("writeoff_12m", "Write-offs, 12 months", AMOUNT), ("writeoff_lifetime", "Write-offs, lifetime", AMOUNT),
    ("el_12m", "Expected loss, 12 months", AMOUNT), ("el_lifetime", "Expected loss, lifetime", AMOUNT),
    ("el_lifetime_rate", "Lifetime EL / outstanding EAD", PERCENT),
    ("el_lifetime_vs_baseline", "Lifetime EL vs baseline", SIGNED_PERCENT), ("rank", "Rank (1 = worst)", "0"),
)


def stress_sheet(analysis: RiskAnalysis) -> SheetLayout:
    stress = analysis.stress
    names = list(stress.summary["scenario"].astype(str))
    title = "Stress test"
    blocks, formats = _header(title, [
        f"Each scenario is a path of the credit-cycle factor Z over the months after the reporting date "
        f"{analysis.book.label} (sheet 'Scenarios'); every month's transition matrices are shifted by Z "
        f"(Belkin-Suchower-Forest, rho {analysis.config.risk.rho:g}); Z < 0 is adverse; the baseline (Z = 0) is the "
        f"report's forecast. DEL: Portfolio, mean of cohorts. {_el_definition(analysis.config)}.",
        *illustrative_notes(analysis),  # every scenario projects the run's chain at its LGD: what the CLI prints
    ], [*analysis.view_warnings("stress"), *([analysis.stress_note] if analysis.stress_note else [])])
    top = 2 + len(blocks)
    blocks.append(Block(top, 1, text_grid([["Metric", *map(business_label, names)]])))
    formats.append(Format(Area(top, 1, top, 1 + len(names)), HEADER_WRAP_STYLE))
    summary = stress.summary.set_index("scenario")
    del_rows = [(c, c, PERCENT) for c in summary.columns if " MOB " in c]
    rows = [STRESS_ROWS[0], STRESS_ROWS[1], STRESS_ROWS[2], *del_rows, *STRESS_ROWS[3:]]
    for i, (column, label, number_format) in enumerate(rows, start=top + 1):
        values = summary[column]
        blocks.append(cell_block(i, 1, label))
        if number_format is None:
            blocks.append(Block(i, 2, text_grid([[str(v) for v in values]])))
            formats.append(Format(Area(i, 1, i, 1 + len(names)), Style(wrap=True, vertical="top", font=Font(size=9))))
        elif values.isna().all():  # no ranking or no baseline to compare with: say so rather than show blanks
            blocks.append(Block(i, 2, text_grid([["n/a"] * len(names)])))
            formats.append(Format(Area(i, 2, i, 1 + len(names)), Style(horizontal="right")))
        elif any(isinstance(v, str) for v in values):  # counts beside words ("all (the last Z persists)")
            for j, v in enumerate(values, start=2):
                blocks.append(cell_block(i, j, v) if isinstance(v, str) else Block(i, j, np.array([[float(v)]])))
            formats.append(Format(Area(i, 2, i, 1 + len(names)), Style(number_format=number_format,
                                                                          horizontal="right", wrap=True)))
        else:
            blocks.append(Block(i, 2, values.to_numpy(dtype=np.float64, na_value=np.nan).reshape(1, -1)))
            formats.append(Format(Area(i, 2, i, 1 + len(names)), Style(number_format=number_format)))
    last = top + len(rows)
    formats += [Format(Area(top + 1, 1, last, 1), Style(font=Font(bold=True))),
                Format(Area(last, 1, last, 1 + len(names)), TOTAL_STYLE)]
    table = Area(top, 1, last, 1 + len(names))

    row = last + 2
    chart_left = 2 + len(names) + 1
    block, fmt = _section(row + CHART_ROWS + 1, "Chart data: Portfolio DEL30 by MOB (mean of cohorts)")
    curves = stress.curves[stress.curves["del_type"] == "DEL30"]
    mobs = sorted(curves["mob"].unique())
    series = [(name, curves.loc[curves["scenario"] == name, "value"].to_numpy()) for name in names]
    data_top = row + CHART_ROWS + 2
    data_blocks, data_formats, keys, areas = _chart_data(data_top, 1, "MOB", [int(m) for m in mobs], series)
    if len(mobs):
        data_formats.append(Format(Area(keys.first_row, 2, keys.last_row, 1 + len(names)),
                                   Style(number_format=PERCENT)))
    chart = _line_chart("Portfolio DEL30 by scenario (mean of cohorts)", (row, 1), keys,
                        [business_label(n) for n in names], areas,
                        y_title="DEL30", width_cm=22.0)
    blocks += [block, *data_blocks]
    formats += [fmt, *data_formats]

    z_top = data_top
    z_left = chart_left
    longest = int(stress.z_paths.groupby("scenario")["month"].max().max())
    z = np.array([[float(spec.z[min(m, len(spec.z) - 1)]) for spec in stress.scenarios] for m in range(longest)])
    blocks.append(cell_block(z_top - 1, z_left, "Z by forecast month (the last value persists)"))
    formats.append(Format(Area.cell(z_top - 1, z_left), SECTION_STYLE))
    z_blocks, z_formats, z_keys, _ = _chart_data(z_top, z_left, "Month", list(range(1, longest + 1)),
                                                 [(name, z[:, i]) for i, name in enumerate(names)])
    z_formats.append(Format(Area(z_keys.first_row, z_left + 1, z_keys.last_row, z_left + len(names)),
                            Style(number_format="0.00")))
    widths = {1: 28.0} | {c: 17.0 for c in range(2, 2 + len(names))} | {chart_left: 8.0} | \
        {c: 17.0 for c in range(chart_left + 1, chart_left + 1 + len(names))}
    return _sheet(SHEETS["stress"], STRESS_OWNER, title, blocks + z_blocks, formats + z_formats, charts=(chart,),
                  column_widths=widths, row_heights={1: 30.0, top: HEADER_HEIGHT, top + 1: 60.0},
                  freeze=(top + 1, 2), areas={"side_by_side": table},
                  page=Page(landscape=True, print_area=Area(1, 1, data_top - 3, table.last_col)))


def scenarios_sheet(scenarios: Sequence[ScenarioSpec]) -> SheetLayout:
    """The scenarios in the layout `stress.read_scenarios_sheet` reads: edit, add rows, run the stress again."""
    title = "Scenarios"
    blocks, formats = _header(title, [
        "Z by forecast month (month 1 = the month after the reporting date, the same for every cohort); the last value "
        "persists. "
        "Z < 0 is adverse: -1 is a 1-in-6 month, -2 a 1-in-44. Add a row or edit one, save, then run "
        "the ribbon's Stress test again (or the command line's stress with this file); a row named like a built-in "
        "scenario replaces it.",
    ])
    top = 4
    longest = max(len(s.z) for s in scenarios)
    header = [*SHEET_HEADER, *[f"Z month {m}" for m in range(1, longest + 1)]]
    blocks.append(Block(top, 1, text_grid([header])))
    formats.append(Format(Area(top, 1, top, len(header)), HEADER_WRAP_STYLE))
    grid = np.full((len(scenarios), len(header)), None, dtype=object)
    for i, spec in enumerate(scenarios):
        grid[i, :2] = [spec.name, spec.description]
        grid[i, 2:2 + len(spec.z)] = spec.z
    blocks.append(Block(top + 1, 1, text_grid(grid.tolist())))
    formats.append(Format(Area(top + 1, 3, top + len(scenarios), len(header)), Style(number_format="0.00")))
    return _sheet(SHEETS["scenarios"], STRESS_OWNER, title, blocks, formats,
                  column_widths={1: 20.0, 2: 60.0} | {c: 7.5 for c in range(3, len(header) + 1)},
                  row_heights={1: 30.0, top: HEADER_HEIGHT}, freeze=(top + 1, 3),
                  page=Page(landscape=True, repeat_rows=(top, top), repeat_cols=(1, 1)),
                  areas={"table": Area(top, 1, top + len(scenarios), len(header))})


CHART_SEGMENTS = 8  # segments a dashboard chart draws: its legend takes the plot's room beyond that


def _chart_segments(segments: list, ead: np.ndarray | None) -> tuple[list, str]:
    """The segments a dashboard chart draws (all, or the CHART_SEGMENTS largest by outstanding ``ead``, in their
    order) and the words its title adds when some are left out."""
    if len(segments) <= CHART_SEGMENTS or ead is None:
        return segments, ""
    largest = set(np.argsort(-np.nan_to_num(ead), kind="stable")[:CHART_SEGMENTS].tolist())
    return ([s for i, s in enumerate(segments) if i in largest],
            f"; the {CHART_SEGMENTS} largest of {len(segments)} segments by EAD, the rest on the other sheets")


def _kpi_tag(note) -> str:
    """The word a KPI's note puts beside its label: ILLUSTRATIVE, WARNING, INDICATIVE, or ""."""
    text = "" if note is None or note is pd.NA else str(note)
    return next((t for t in ("ILLUSTRATIVE", "WARNING", "INDICATIVE") if text.startswith(t)), "")


def dashboard_sheet(dashboard: Dashboard) -> SheetLayout:
    """KPIs at a glance, and charts: DEL30 by segment, the scenarios' Portfolio DEL30, the EAD mix over time."""
    analysis = dashboard.analysis
    result = analysis.result
    kpis = dashboard.kpis
    title = "Risk dashboard"
    blocks, formats = _header(title, [
        f"At the reporting date {analysis.book.label}, the data's last reporting month. Capital is INDICATIVE (sheet "
        "'Capital (indicative)'); details on the sheets Alerts, Expected loss, Credit VaR, Concentration, Stress "
        "test. ROE to lifetime EL of a month's bookings: the decision twin of the data under the applied credit "
        "policy.",
    ])
    top = 4
    blocks.append(Block(top, 1, text_grid([["Indicator", "Value"]])))
    formats.append(Format(Area(top, 1, top, 2), HEADER_STYLE))
    for i, (label, value, unit, note) in enumerate(kpis.itertuples(index=False), start=top + 1):
        tag = _kpi_tag(note)
        blocks += [cell_block(i, 1, f"{label} ({tag})" if tag else label), Block(i, 2, np.array([[float(value)]]))]
        formats.append(Format(Area.cell(i, 2), Style(number_format=UNIT_FORMATS[unit], horizontal="right")))
        if label.startswith(ALERTS_PREFIX) and value > 0:
            formats.append(Format(Area(i, 1, i, 2), SEVERITY_STYLES[label.removeprefix(ALERTS_PREFIX)]))
        elif tag in ("ILLUSTRATIVE", "WARNING"):
            formats.append(Format(Area.cell(i, 1), INDICATIVE_STYLE if tag == "ILLUSTRATIVE" else WARNING_LABEL_STYLE))
    kpi_area = Area(top, 1, top + len(kpis), 2)
    heights = {1: 30.0}
    row = kpi_area.last_row + 2
    wrapped = Style(font=Font(size=9, italic=True, color=NOTE_COLOR), wrap=True, vertical="top")
    warned = Style(font=Font(size=9, bold=True, color=WARN_COLOR), wrap=True, vertical="top")

    def line(text: str, style: Style) -> None:
        nonlocal row
        blocks.append(cell_block(row, 1, text))
        formats.append(Format(Area.cell(row, 1), style))
        heights[row] = 12.0 * (1 + len(text) // 50)  # wrapped in column A, about 50 characters a line
        row += 1

    notes = {}
    for label, note in zip(kpis["kpi"], kpis["note"], strict=True):
        if _kpi_tag(note):
            notes.setdefault(str(note), []).append(str(label))
    for note, labels in notes.items():
        line(f"{', '.join(labels)}: {note}", warned if _kpi_tag(note) != "INDICATIVE" else wrapped)
    for text in [*dashboard.warnings, *analysis.warnings()]:
        line(f"WARNING: {text}", warned)
    for text in _book_notes(analysis)[1:] + illustrative_notes(analysis):
        line(text, wrapped)
    recon = dashboard.del30_reconciliation
    if len(recon):
        row += 1
        blocks.append(cell_block(row, 1, "The two DEL30 figures at MOB 12, reconciled"))
        formats.append(Format(Area.cell(row, 1), SECTION_STYLE))
        row += 1
        for r in recon.itertuples(index=False):
            if not np.isnan(r.difference):
                blocks += [cell_block(row, 1, f"  difference: {r.explanation}"), Block(row, 2, np.array([[r.difference]]))]
                formats += [Format(Area.cell(row, 1), wrapped), Format(Area.cell(row, 2), Style(number_format=PERCENT))]
                heights[row] = 12.0 * (1 + len(r.explanation) // 50)
                row += 1
            blocks += [cell_block(row, 1, r.step), Block(row, 2, np.array([[r.value]]))]
            formats += [Format(Area.cell(row, 1), Style(wrap=True, vertical="top")),
                        Format(Area.cell(row, 2), Style(number_format=PERCENT, horizontal="right"))]
            heights[row] = 15.0 * (1 + len(r.step) // 45)
            row += 1

    chart_col = 4
    data_top = max(top + 3 * CHART_ROWS, row) + 2
    mobs = [int(m) for m in result.mobs]
    segments = list(result.sheet_segments)
    by_segment = [(s, analysis.portfolio_del_curve(s)) for s in segments]
    stress = analysis.stress
    curves = stress.curves[stress.curves["del_type"] == "DEL30"]
    names = list(stress.summary["scenario"].astype(str))
    by_scenario = [(business_label(n), curves.loc[curves["scenario"] == n, "value"].to_numpy()) for n in names]
    mix = analysis.concentration.mix

    blocks.append(cell_block(data_top - 1, 1, "Chart data"))
    formats.append(Format(Area.cell(data_top - 1, 1), SECTION_STYLE))
    charts = []
    left = 1
    palette = {clean_text(name): color for name, color in segment_colors(result.sheet_segments, PORTFOLIO).items()}
    shown, of_all = _chart_segments(list(mix.columns), mix.iloc[-1].to_numpy() if len(mix) else None)
    by_segment = [(clean_text(name), values) for name, values in by_segment if name == PORTFOLIO or name in shown]
    mix_series = [(clean_text(c), mix[c].to_numpy()) for c in mix.columns if c in shown]
    if len(shown) < len(mix.columns):
        rest = [c for c in mix.columns if c not in shown]
        mix_series.append((f"Other {len(rest)} segments", mix[rest].sum(axis=1).to_numpy()))
    for key, keys_values, series, chart_title, options in (
        ("MOB", mobs, by_segment, f"DEL30 by segment (mean of cohorts{of_all})", {"y_title": "DEL30",
                                                                                   "colors": palette}),
        ("MOB", mobs, by_scenario, "Portfolio DEL30 by stress scenario", {"y_title": "DEL30"}),
        ("Month", list(mix.index.astype(str)), mix_series, f"EAD mix: share of outstanding EAD by segment{of_all}",
         {"x_title": "Month", "y_title": "Share", "colors": palette}),
    ):
        data_blocks, data_formats, keys, areas = _chart_data(data_top, left, key, keys_values, series)
        if keys_values:
            data_formats.append(Format(Area(keys.first_row, left + 1, keys.last_row, left + len(series)),
                                       Style(number_format=PERCENT)))
        blocks += data_blocks
        formats += data_formats
        charts.append(_line_chart(chart_title, (top + len(charts) * CHART_ROWS, chart_col), keys,
                                  [s[0] for s in series], areas, width_cm=DASHBOARD_CHART_CM, **options))
        left += len(series) + 2
    return _sheet(SHEETS["dashboard"], DASHBOARD_OWNER, title, blocks, formats, charts=tuple(charts),
                  column_widths={1: 44.0, 2: 16.0, 3: 3.0}, row_heights=heights, show_gridlines=False,
                  page=Page(landscape=True, print_area=Area(1, 1, data_top - 2, chart_col + 8)),
                  areas={"kpis": kpi_area})


# -------------------------------------------------------------------------------------------- entry points


def _risk_intro(analysis: RiskAnalysis) -> list[str]:
    result = analysis.result
    return [f"{counted(len(result.segments), 'segment')} ({listed_names(result.segments)}) and "
            f"{counted(len(result.cohorts), 'monthly cohort')}, each from its last actual month; outstanding EAD "
            f"{analysis.concentration.summary['ead'].iloc[0]:,.0f}."]


def _risk_caveats(analysis: RiskAnalysis) -> list[str]:
    result = analysis.result
    thin = [w for w in result.warnings if "fell back" in w or "min_count" in w or "pooled" in w]
    return [f"DEL figures of the Portfolio are the {'plain mean' if result.config.portfolio.aggregation == 'mean' else 'EAD-weighted mean'} "
            f"of the segments' DEL (as on the report's Portfolio sheets); losses, EAD and capital are sums.",
            "Capital is INDICATIVE: the Basel IRB retail formula on the chain's PD, not a regulatory calculation.",
            "ROE, values and new lending come from the economics of the configuration (rates, costs, volumes): "
            "with its defaults they are illustrative.",
            f"{len(result.warnings)} warnings of the forecast (thin data: {len(thin)}); the report's Run info lists "
            f"them.", *illustrative_notes(analysis)]


def _segment_names(result: DelResult) -> dict[str, str]:
    return {s: clean_text(s) for s in result.segments} | {PORTFOLIO: PORTFOLIO}


def stress_summary(analysis: RiskAnalysis, layouts: Sequence[SheetLayout]) -> SheetLayout:
    """The stress test's Summary: each scenario's losses against the baseline, the caveats, the contents."""
    intro = _risk_intro(analysis)
    writer = SheetWriter(row=summary_top(intro))
    writer.section("Scenarios: expected loss over the cohorts' lifetime")
    summary = analysis.stress.summary
    frame = pd.DataFrame({
        "scenario": [business_label(n) for n in summary["scenario"].astype(str)],
        "min_z": summary["min_z"].to_numpy(dtype=float), "del30": summary["DEL30 MOB 12"].to_numpy(dtype=float)
        if "DEL30 MOB 12" in summary else np.nan,
        "el_12m": summary["el_12m"].to_numpy(dtype=float), "el": summary["el_lifetime"].to_numpy(dtype=float),
        "vs": summary["el_lifetime_vs_baseline"].to_numpy(dtype=float), "rank": summary["rank"].to_numpy(dtype=float)})
    writer.table(frame, [("scenario", "Scenario", None, 0), ("min_z", "Lowest Z", "0.00", 0),
                         ("del30", "Portfolio DEL30 MOB 12", PERCENT, 0), ("el_12m", "EL, 12 months", AMOUNT, 0),
                         ("el", "EL, lifetime", AMOUNT, 0), ("vs", "Lifetime EL vs baseline", SIGNED_PERCENT, 0),
                         ("rank", "Rank (1 = worst)", "0", 0)])
    caveats = ["Z is the credit-cycle factor (below zero: adverse); each scenario is a path of Z over the forecast "
               "months, edited on the sheet 'Scenarios'.", *_risk_caveats(analysis)]
    return summary_sheet(STRESS_OWNER, "Stress test: summary", analysis.result.as_of, intro, writer, layouts,
                         caveats=caveats)


def risk_summary(analysis: RiskAnalysis, layouts: Sequence[SheetLayout], dashboard: Dashboard | None = None
                 ) -> SheetLayout:
    """The risk views' Summary: the dashboard's key figures (with a dashboard), the caveats, the contents."""
    intro = _risk_intro(analysis)
    writer = SheetWriter(row=summary_top(intro))
    if dashboard is not None:
        writer.section("Key figures")
        writer.figures([Figure(f"{label} ({_kpi_tag(note)})" if _kpi_tag(note) else label, float(value),
                               UNIT_FORMATS[unit])
                        for label, value, unit, note in dashboard.kpis.itertuples(index=False)])
    alerts = analysis.alerts
    if len(alerts):
        writer.notes([f"Alerts: {len(alerts)} fired, the most severe: {alerts['message'].iloc[0]}"])
    return summary_sheet(DASHBOARD_OWNER, "Risk: summary", analysis.result.as_of, intro, writer, layouts,
                         caveats=_risk_caveats(analysis))


def stress_sheets(result: DelResult, config: Config | None = None, *, scenarios: Sequence[ScenarioSpec] = (),
                  data=None, analysis: RiskAnalysis | None = None) -> list[SheetLayout]:
    """The ribbon's Stress test: its Summary, "Stress test" and "Scenarios". ``scenarios`` extend the config's
    (e.g. read from the workbook's Scenarios sheet with `stress.scenarios_from_rows`); ``data``: see
    `RiskAnalysis`."""
    analysis = analysis or RiskAnalysis.of(result, config, scenarios, data=data)
    layouts = [stress_sheet(analysis), scenarios_sheet(analysis.stress.scenarios)]
    return book(stress_summary(analysis, layouts), layouts, analysis.result.as_of)


def dashboard_sheets(result: DelResult, config: Config | None = None, *, scenarios: Sequence[ScenarioSpec] = (),
                     data=None, dashboard: Dashboard | None = None, stress: bool = False) -> list[SheetLayout]:
    """The ribbon's Risk dashboard: its Summary, the dashboard, then Alerts, Expected loss, Credit VaR,
    Concentration, Capital; with ``stress``, the Stress test and Scenarios sheets too (one workbook of every risk
    view, as the command line writes it)."""
    dashboard = dashboard or Dashboard(RiskAnalysis.of(result, config, scenarios, data=data))
    analysis = dashboard.analysis
    layouts = [dashboard_sheet(dashboard), alerts_sheet(analysis), el_sheet(analysis), var_sheet(analysis),
               concentration_sheet(analysis), capital_sheet(analysis)]
    if stress:
        layouts += [stress_sheet(analysis), scenarios_sheet(analysis.stress.scenarios)]
    return book(risk_summary(analysis, layouts, dashboard), layouts, analysis.result.as_of)


def view_sheets(analysis: RiskAnalysis, view: str) -> list[SheetLayout]:
    """One risk view's sheet (el, var, concentration, capital, alerts) as a workbook: a Summary and the sheet."""
    layouts = [SHEET_BUILDERS[view](analysis)]
    return book(risk_summary(analysis, layouts), layouts, analysis.result.as_of)


SHEET_BUILDERS = {"alerts": alerts_sheet, "el": el_sheet, "var": var_sheet, "concentration": concentration_sheet,
                  "capital": capital_sheet}


def risk_tables(analysis: RiskAnalysis, views: Sequence[str], dashboard: Dashboard | None = None
                ) -> dict[str, pd.DataFrame]:
    """The tidy tables behind ``views`` (el, var, concentration, capital, alerts, stress, dashboard), by CSV file
    stem; the dashboard's KPIs come from ``dashboard`` (default: a new one on ``analysis``)."""
    tables: dict[str, pd.DataFrame] = {}
    for view in views:
        if view == "el":
            tables["expected_loss"] = analysis.el
        elif view == "var":
            confidence = analysis.config.risk.confidence
            tables |= {"var_summary": analysis.var.summary(confidence),
                       "var_convergence": analysis.var.convergence(confidence),
                       "var_contributions": analysis.var.contributions(max(confidence))}
        elif view == "concentration":
            conc = analysis.concentration
            tables |= {"concentration_today": conc.current, "concentration_summary": conc.summary,
                       "concentration_trend": conc.trend, "ead_mix": conc.mix.reset_index()}
        elif view == "capital":
            tables["capital_indicative"] = analysis.capital
        elif view == "alerts":
            tables["alerts"] = analysis.alerts
        elif view == "stress":
            stress = analysis.stress
            tables |= {"stress_summary": stress.summary, "stress_curves": stress.curves, "stress_el": stress.el,
                       "stress_z_paths": stress.z_paths}
        elif view == "dashboard":
            tables["kpis"] = (dashboard or Dashboard(analysis)).kpis
    return tables
