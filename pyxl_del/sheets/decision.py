"""The decision engine's sheets: Recommendations, Frontier, Policy and Tracking, as layouts (pyxl_del.sheets.layout).

The CLI writes them into a new .xlsx, the ribbon's Optimise button into the workbook
(pyxl_del.excel.decision_actions), which also reads the Policy sheet back as the user left it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from pyxl_del.decision.economics import ILLUSTRATIVE
from pyxl_del.decision.optimise import PORTFOLIO, Recommendation, undefined_reason
from pyxl_del.decision.policy import Policy
from pyxl_del.sheets.layout import (
    HEADER_STYLE,
    NOTE_STYLE,
    PERCENT,
    SIGNED_POINTS,
    SUBTITLE_STYLE,
    Area,
    Block,
    Font,
    Format,
    Page,
    ScatterChart,
    SheetLayout,
    Style,
    XYSeries,
    business_label,
    clean_text,
    text_grid,
    text_width,
)
from pyxl_del.sheets.summary import (
    Figure,
    SheetWriter,
    book,
    summary_sheet,
    summary_top,
)

OWNER = "decision"  # Recommendations, Frontier and Policy: what Optimise writes
POLICY_SHEET = "Policy"
AMOUNT = "#,##0"
RATE = "0.0000"
SCORE = "0"
TAB_COLOR = "7030A0"
FRONTIER_CHART_CM = 13.0  # two side by side on a landscape page
FRONTIER_CHART_ROWS = 18
POLICY_HEADERS = {"segment": "Segment", "cutoff": "Cut-off", "apr": "APR", "budget_share": "Budget share"}
BEST_STYLE = Style(font=Font(bold=True, color="375623"), fill="E2EFDA")
CHANGE_COLOR = "1F4E78"

# (column of Recommendation.table() without its prefix, heading, number format)
RECOMMENDATION_FIELDS = (
    ("cutoff", "Cut-off", SCORE), ("apr", "APR", PERCENT), ("budget_share", "Budget share", PERCENT),
    ("approval_rate", "Approval rate", PERCENT), ("volume", "Volume / month", AMOUNT),
    ("del30_mob6", "DEL30 MOB 6", PERCENT), ("del30_mob12", "DEL30 MOB 12", PERCENT),
    ("lifetime_el", "Lifetime EL", AMOUNT), ("var99", "VaR99", AMOUNT), ("hhi", "HHI", RATE),
    ("value", "Value (PV)", AMOUNT), ("roe", "ROE", PERCENT),
)
# Figures resting on the economics ([economics], [demand], [risk] lgd): labelled ILLUSTRATIVE when one is a default.
ECONOMIC_FIELDS = frozenset({"apr", "value", "roe", "unit_cost"})  # the unit cost's parts are under it
ILLUSTRATIVE_STYLE = Style(font=Font(bold=True, color="C00000"))
COST_FIELDS = (("unit_cost", "Unit cost (break-even APR)"), ("cost_funding", "funding"), ("cost_loss", "loss"),
               ("cost_capital", "capital"), ("cost_opex", "opex"))
FRONTIER_FIELDS = (("segment", "Segment", None), ("cutoff", "Cut-off", SCORE), ("apr", "APR", PERCENT),
                   ("approval_rate", "Approval rate", PERCENT), ("bad_rate", "DEL30 MOB 12", PERCENT),
                   ("value", "Value per unit applied for", RATE), ("roe", "ROE", PERCENT), ("feasible", "Feasible", None),
                   ("best", "Recommended", None))


def _grid(rows) -> np.ndarray:
    return text_grid([[_cell_value(v) for v in row] for row in rows])


def _cell_value(value):
    if value is None or value is pd.NA:
        return None
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else ""
    if isinstance(value, (np.floating, float)) and not np.isfinite(value):
        return None
    return value.item() if isinstance(value, np.generic) else value


def _title(title: str, notes: Sequence[str]) -> tuple[list[Block], list[Format], int]:
    blocks = [Block(1, 1, _grid([[title]]))]
    formats = [Format(Area.cell(1, 1), SUBTITLE_STYLE)]
    for i, note in enumerate(notes):
        blocks.append(Block(2 + i, 1, _grid([[note]])))
        formats.append(Format(Area.cell(2 + i, 1), NOTE_STYLE))
    return blocks, formats, 3 + len(notes)


def recommendations_sheet(rec: Recommendation) -> SheetLayout:
    """One row per figure, a column group per segment (and Portfolio): current, recommended, change; then the unit
    cost behind the recommended APR and its parts."""
    table = rec.table().set_index("segment")
    cur = rec.current_impact.set_index("segment")
    new = rec.recommended_impact.set_index("segment")
    roe_now, roe_new = _rate_text(cur.loc[PORTFOLIO], "roe"), _rate_text(new.loc[PORTFOLIO], "roe")
    tag = _tag(rec.caveat)
    notes = [f"Portfolio ROE (steady book){tag}: now {roe_now}, recommended {roe_new}. "
             f"Recommended policy version {rec.version}; budget {rec.recommended.budget:,.0f} a month.",
             "Volumes are monthly; value is the discounted economic profit of one month's bookings over their life; "
             "EL and VaR99 are of one month's bookings; ROE is (interest - funding - loss - opex) x (1 - tax) / capital.",
             *rec.notes]
    blocks, formats, top = _title(f"Recommendations: credit policy per segment{tag}", notes)
    if rec.caveat:
        formats.append(Format(Area.cell(1, 1), ILLUSTRATIVE_STYLE.over(SUBTITLE_STYLE)))
    segments = list(table.index)
    header1, header2, first = top, top + 1, top + 2
    heads1, heads2 = ["Figure"], [""]
    for segment in segments:
        heads1 += [segment, "", ""]
        heads2 += ["Current", "Recommended", "Change"]
    fields = [*RECOMMENDATION_FIELDS, *((f, label, PERCENT) for f, label in COST_FIELDS)]
    rows = []
    for field, label, fmt in fields:
        label = f"{label}{tag}" if field in ECONOMIC_FIELDS else label
        row = [f"  of which {label}" if field.startswith("cost_") else label]
        for segment in segments:
            values = [table.loc[segment, f"{k}_{field}"] for k in ("current", "recommended", "change")]
            if fmt == PERCENT and not pd.isna(values[2]):  # a change of a rate, in percentage points
                values[2] = values[2] * 100
            if field == "cutoff" and segment != PORTFOLIO:  # no cut-off: every score is accepted
                values = ["all" if pd.isna(v) else v for v in values[:2]] + [values[2]]
            row += values
        rows.append(row)
    blocks += [Block(header1, 1, _grid([heads1, heads2])), Block(first, 1, _grid(rows))]
    last_row, last_col = first + len(rows) - 1, len(heads1)
    formats.append(Format(Area(header1, 1, header2, last_col), HEADER_STYLE))
    formats.append(Format(Area(first, 1, last_row, 1), Style(font=Font(bold=True))))
    for i, (_field, _label, fmt) in enumerate(fields):
        formats.append(Format(Area(first + i, 2, first + i, last_col), Style(number_format=fmt, horizontal="right")))
        change = SIGNED_POINTS if fmt == PERCENT else "+" + fmt.split(";")[0] + ";-" + fmt.split(";")[0] + ";0"
        for c in range(4, last_col + 1, 3):
            formats.append(Format(Area.cell(first + i, c), Style(number_format=change)))
    for c in range(4, last_col + 1, 3):
        formats.append(Format(Area(first, c, last_row, c), Style(font=Font(italic=True, color=CHANGE_COLOR))))
    return SheetLayout(
        name="Recommendations", kind="recommendations", owner=OWNER, title="Recommendations", blocks=tuple(blocks),
        formats=tuple(formats),
        column_widths={1: max(24.0, *(text_width(row[0]) for row in rows))} | {c: 12.5 for c in range(2, last_col + 1)},
        row_heights={1: 24.0}, freeze=(first, 2), tab_color=TAB_COLOR,
        page=Page(repeat_rows=(header1, header2), repeat_cols=(1, 1), break_before=tuple(range(2, last_col + 1, 3))),
        areas={"table": Area(header1, 1, last_row, last_col)},
    )


def frontier_sheet(rec: Recommendation) -> SheetLayout:
    """The cut-off frontier per segment (table), with a chart per segment of approval and bad rate by cut-off."""
    frontier = rec.frontier
    tag = _tag(rec.caveat)
    notes = ["Each row accepts the score bands from its cut-off up, priced at the value-maximising APR within the "
             "allowed range. Reading it: moving down a segment's rows trades approvals (volume) for a lower bad rate; "
             "'Recommended' is the best feasible cut-off (the policy's approval and DEL30 limits); value is per unit "
             "applied for.", *([rec.caveat] if rec.caveat else [])]
    blocks, formats, top = _title(f"Cut-off frontier{tag}", notes)
    if rec.caveat:
        formats.append(Format(Area.cell(1, 1), ILLUSTRATIVE_STYLE.over(SUBTITLE_STYLE)))
    header, first = top, top + 1
    rows = [[row[f] for f, _, _ in FRONTIER_FIELDS] for _, row in frontier.iterrows()]
    heads = [f"{label}{tag}" if f in ECONOMIC_FIELDS else label for f, label, _ in FRONTIER_FIELDS]
    blocks += [Block(header, 1, _grid([heads])), Block(first, 1, _grid(rows))]
    last_row, n_col = first + len(rows) - 1, len(FRONTIER_FIELDS)
    formats.append(Format(Area(header, 1, header, n_col), HEADER_STYLE))
    for c, (_, _, fmt) in enumerate(FRONTIER_FIELDS, start=1):
        if fmt:
            formats.append(Format(Area(first, c, last_row, c), Style(number_format=fmt)))
    for i in np.flatnonzero(frontier["best"].to_numpy()):
        formats.append(Format(Area(first + i, 1, first + i, n_col), BEST_STYLE))
    charts = []
    chart_top = last_row + 3
    for k, segment in enumerate(pd.unique(frontier["segment"])):
        rows_of = np.flatnonzero((frontier["segment"] == segment).to_numpy())
        # The "reject all" candidate has no bad rate; the chart stops at the last band.
        lo, hi = first + rows_of[0], first + rows_of[-1] - 1
        name = clean_text(segment)
        cutoffs = Area(lo, 2, hi, 2)
        anchor = chart_top + FRONTIER_CHART_ROWS * k
        charts.append(ScatterChart(
            title=f"{name}: approval and DEL30 at MOB 12 by cut-off", anchor=(anchor, 1),
            series=(XYSeries("Approval rate (left)", cutoffs, Area(lo, 4, hi, 4), "1F77B4"),
                    XYSeries("DEL30 MOB 12 (right)", cutoffs, Area(lo, 5, hi, 5), "D62728", secondary=True)),
            # No x title: LibreOffice repeats it above a chart with a second value axis; the title says "cut-off".
            y_title="Approval rate", y2_title="DEL30 at MOB 12", y2_format="0.0%",
            width_cm=FRONTIER_CHART_CM, height_cm=8.0))
        charts.append(ScatterChart(
            title=f"{name}: value per unit applied for by cut-off", anchor=(anchor, 5),
            series=(XYSeries("Value per unit applied for", cutoffs, Area(lo, 6, hi, 6), "2CA02C"),),
            # The unit the table's column and the notes give (not "per applicant": a share of the amount).
            x_title="Cut-off score", y_title="Value per unit applied for", y_format="0.000",
            width_cm=FRONTIER_CHART_CM, height_cm=8.0))
    n_segments = len(pd.unique(frontier["segment"]))
    return SheetLayout(
        name="Frontier", kind="frontier", owner=OWNER, title="Cut-off frontier", blocks=tuple(blocks),
        formats=tuple(formats), charts=tuple(charts), column_widths={1: 18.0} | {c: max(14.0, text_width(heads[c - 1]))
                                                    for c in range(2, n_col + 1)},
        row_heights={1: 24.0}, freeze=(first, 2), tab_color=TAB_COLOR, autofilter=Area(header, 1, last_row, n_col),
        page=Page(repeat_rows=(header, header),
                  print_area=Area(1, 1, chart_top + FRONTIER_CHART_ROWS * n_segments, n_col)),
        areas={"table": Area(header, 1, last_row, n_col)},
    )


def policy_sheet(policy: Policy, title: str = "Policy", caveat: str = "", version: str | None = None) -> SheetLayout:
    """The policy as a table the user can edit and Apply: segment, cutoff (empty: accept all), apr, budget_share.
    ``caveat``: "ILLUSTRATIVE: ..." when its prices come from default economics; ``version``: the policy's version
    under the config it was made with (default: its own)."""
    table = policy.table()
    # One note line whatever the caveat: the table stays where Apply and the users' references expect it.
    notes = [f"Version {version or policy.version}; budget {policy.budget:,.0f} a month. Edit the values and click "
             f"Apply policy: the sheet is checked, then becomes the applied policy (the configuration file's policy "
             f"section). An empty cut-off accepts every score." + (f" APRs {caveat}." if caveat else "")]
    blocks, formats, top = _title(title, notes)
    header, first = top, top + 1
    rows = [[r.segment, r.cutoff, r.apr, r.budget_share] for r in table.itertuples(index=False)]
    blocks += [Block(header, 1, _grid([[POLICY_HEADERS.get(c, c) for c in table.columns]])),
               Block(first, 1, _grid(rows))]
    last_row = first + len(rows) - 1
    formats += [Format(Area(header, 1, header, 4), HEADER_STYLE),
                Format(Area(first, 2, last_row, 2), Style(number_format=SCORE)),
                Format(Area(first, 3, last_row, 4), Style(number_format=PERCENT))]
    return SheetLayout(name=POLICY_SHEET, kind="policy", owner=OWNER, title=title, blocks=tuple(blocks),
                       formats=tuple(formats), column_widths={1: 18.0, 2: 10.0, 3: 10.0, 4: 14.0},
                       row_heights={1: 24.0}, tab_color=TAB_COLOR, page=Page(landscape=False),
                       areas={"table": Area(header, 1, last_row, 4)})


def tracking_sheet(tracking: pd.DataFrame) -> SheetLayout:
    """Expected vs actual since the applied decision (pyxl_del.decision.audit.track)."""
    decision = tracking.attrs.get("decision", {})
    cohorts = tracking.attrs.get("tracked_cohorts", [])
    notes = [f"Decision {decision.get('policy_version', '?')} applied {decision.get('time', '?')} by "
             f"{decision.get('user', '?')}, effective from {decision.get('effective_from', '?')}; tracked cohorts: "
             f"{', '.join(cohorts) if cohorts else 'none yet'}."]
    blocks, formats, top = _title("Tracking: booked since the decision vs expected", notes)
    header, first = top, top + 1
    columns = list(tracking.columns)
    rows = [[_cell_value(v) for v in row] for row in tracking.itertuples(index=False)]
    blocks.append(Block(header, 1, _grid([[business_label(c) for c in columns]])))
    if rows:
        blocks.append(Block(first, 1, _grid(rows)))
    last_row = first + max(len(rows), 1) - 1
    formats.append(Format(Area(header, 1, header, len(columns)), HEADER_STYLE))
    formats.append(Format(Area(first, 4, last_row, 6), Style(number_format="#,##0.0000")))
    return SheetLayout(name="Tracking", kind="tracking", owner="tracking", title="Tracking", blocks=tuple(blocks),
                       formats=tuple(formats), column_widths={1: 18.0, 2: 14.0} | {c: 14.0 for c in range(3, 8)},
                       row_heights={1: 24.0}, freeze=(first, 2), tab_color=TAB_COLOR,
                       autofilter=Area(header, 1, last_row, len(columns)))


def decision_summary(rec: Recommendation, layouts: Sequence[SheetLayout], as_of: str) -> SheetLayout:
    """The decision's Summary: the Portfolio's ROE and value now and recommended, each segment's recommended
    policy, the caveats and the contents."""
    cur = rec.current_impact.set_index("segment")
    new = rec.recommended_impact.set_index("segment")
    intro = [f"Recommended policy {rec.version}: cut-off, APR and budget share per segment, with the "
             f"expected impact in the decision twin of the data; budget {rec.recommended.budget:,.0f} a month."]
    writer = SheetWriter(row=summary_top(intro))
    writer.section("Portfolio")
    writer.figures([Figure("ROE of the steady book, now", _rate_figure(cur.loc[PORTFOLIO], "roe"), PERCENT),
                    Figure("ROE of the steady book, recommended", _rate_figure(new.loc[PORTFOLIO], "roe"), PERCENT),
                    Figure("Value of a month's bookings, now", float(cur.loc[PORTFOLIO, "value"]), AMOUNT),
                    Figure("Value of a month's bookings, recommended", float(new.loc[PORTFOLIO, "value"]), AMOUNT)])
    writer.section("Recommended policy")
    policy = rec.recommended.table()
    policy = policy.assign(segment=policy["segment"].map(clean_text))
    writer.table(policy, [("segment", "Segment", None, 0), ("cutoff", "Cut-off", SCORE, 0), ("apr", "APR", PERCENT, 0),
                          ("budget_share", "Budget share", PERCENT, 0)])
    caveats = [rec.caveat or "ROE, values, losses and unit costs come from the economics set in the configuration "
               "(funding, opex, capital, LGD, take-up).",
               "The impact is the decision twin's expectation for a steady book, not a forecast of the report's "
               "cohorts.", *rec.notes]
    return summary_sheet(OWNER, "Decisions: summary", as_of, intro, writer, layouts, caveats=caveats)


def decision_layouts(rec: Recommendation, as_of: str = "") -> list[SheetLayout]:
    """The decision workbook: its Summary, Recommendations, Frontier and Policy (``as_of``: the twin's data)."""
    layouts = [recommendations_sheet(rec), frontier_sheet(rec),
               policy_sheet(rec.recommended, caveat=rec.caveat, version=rec.version)]
    return book(decision_summary(rec, layouts, as_of), layouts, as_of)


def decision_tables(rec: Recommendation, bands: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The CSV tables of a recommendation, each row with its segment's "illustrative" caveat, and the notes."""
    return {"recommendations": rec.table(), "frontier": rec.with_caveats(rec.frontier),
            "policy": rec.with_caveats(rec.recommended.table()), "bands": bands,
            "notes": pd.DataFrame({"note": pd.array(rec.notes, dtype="string")})}


def _rate_text(row: pd.Series, key: str) -> str:
    """A rate of an `evaluate` row as a percentage, or the reason it has none."""
    return undefined_reason(row, key) or f"{row[key]:.1%}"


def _rate_figure(row: pd.Series, key: str) -> float | str:
    """A rate of an `evaluate` row for a Figure: the number, or the reason it has none (a cell, not a blank)."""
    return undefined_reason(row, key) or float(row[key])


def _tag(caveat: str) -> str:
    """" (ILLUSTRATIVE)" after a figure's label when the figures rest on default economics."""
    return f" ({ILLUSTRATIVE})" if caveat else ""
