"""The A-B test sheet: the champion / challenger comparison with 95% intervals, the power calculation and DEL30 by
MOB per arm, for a simulated test (`pyxl_del.decision.abtest.simulate`) or the arms observed in the data."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from pyxl_del.decision.abtest import (
    ARMS,
    FOLLOW_UP,
    FORECAST_MOB,
    OBSERVED_MOBS,
    Observed,
    Simulation,
)
from pyxl_del.sheets import layout
from pyxl_del.sheets.layout import (
    Area,
    Block,
    Format,
    LineChart,
    Series,
    SheetLayout,
    Style,
)
from pyxl_del.sheets.summary import (
    Figure,
    SheetWriter,
    book,
    summary_sheet,
    summary_top,
)

SHEET_NAME = "A-B test"
TAB_COLOR = "7030A0"


SIGNED_AMOUNT = "+#,##0;-#,##0;0"
VALUE_FORMATS = {"pct": layout.PERCENT, "amount": "#,##0", "count": "#,##0"}
DIFFERENCE_FORMATS = {"pct": layout.SIGNED_POINTS, "amount": SIGNED_AMOUNT, "count": SIGNED_AMOUNT}
SIGNIFICANCE = 0.05
TARGET_POWER = 0.8
VERDICT_STYLE = Style(font=layout.Font(bold=True, color=layout.TITLE_COLOR))


def _bad_rate_row(table: pd.DataFrame) -> pd.Series | None:
    """The comparison the test is sized for: DEL30 at the last observed MOB (else the first DEL30 row)."""
    metrics = table["metric"].astype(str)
    rows = table[metrics.str.startswith(f"DEL30 at MOB {max(OBSERVED_MOBS)}")]
    rows = rows if len(rows) else table[metrics.str.startswith("DEL30")]
    return rows.iloc[0] if len(rows) else None


def verdict(table: pd.DataFrame, power: pd.DataFrame) -> str:
    """The test's outcome in words: a significant difference, not enough evidence yet (with the power and the
    months needed), or no difference where the test had the power to see one."""
    row = _bad_rate_row(table)
    if row is None or not len(power):
        return "No bad-rate comparison: the arms have no DEL30 to compare."
    expected = power.iloc[0]
    power_now, months = float(expected.iloc[-1]), float(expected["months_needed"])
    metric = str(row["metric"])
    needed = f"{months:,.0f} months needed" if np.isfinite(months) else "no run length would suffice"
    underpowered = not np.isfinite(power_now) or power_now < TARGET_POWER
    if np.isfinite(row["p_value"]) and row["p_value"] < SIGNIFICANCE:
        p_text = "p < 0.001" if row["p_value"] < 0.001 else f"p = {row['p_value']:.3f}"
        found = f"the challenger's {metric} differs by {row['difference'] * 100:+.2f} pp ({p_text})"
        if underpowered:  # a significant result of a weak test overstates the difference
            return (f"Not enough evidence yet: {found}, but the test has {power_now:.0%} power, so the difference "
                    f"is likely overstated; {needed} to confirm it.")
        return f"Significant: {found}."
    if underpowered:
        return f"Not enough evidence yet: {power_now:.0%} power, {needed} (for the expected difference in {metric})."
    return f"No difference found in {metric}, with {power_now:.0%} power to see the expected one."


def ab_sheet(title: str, arms: tuple[str, str], table: pd.DataFrame, power: pd.DataFrame, curve: np.ndarray,
             notes: tuple[str, ...]) -> layout.SheetLayout:
    """The A/B sheet: the verdict, the comparison table with 95% intervals (differences of rates in percentage
    points), the power calculation and a DEL30 chart by MOB (solid observed, dashed forecast)."""
    arm_labels = [layout.business_label(a) for a in arms]
    lines = (verdict(table, power), *notes)
    blocks = [Block(1, 1, layout.text_grid([[title]])), Block(2, 1, layout.text_grid([[n] for n in lines]))]
    formats = [Format(Area.cell(1, 1), layout.TITLE_STYLE), Format(Area.cell(2, 1), VERDICT_STYLE),
               Format(Area(3, 1, 1 + len(lines), 1), layout.NOTE_STYLE)]
    top = 3 + len(lines)
    header = ["Metric", *arm_labels, "Difference", "95% CI low", "95% CI high", "p-value"]
    scale = np.where(table["unit"].astype(str) == "pct", 100.0, 1.0)  # rate differences in points
    body = [[r.metric, r.champion, r.challenger, r.difference * k, r.ci_low * k, r.ci_high * k, r.p_value]
            for r, k in zip(table.itertuples(index=False), scale, strict=True)]
    blocks.append(Block(top, 1, layout.text_grid([header, *body])))
    formats.append(Format(Area(top, 1, top, len(header)), layout.HEADER_WRAP_STYLE))
    for i, unit in enumerate(table["unit"].astype(str), start=top + 1):
        formats.append(Format(Area(i, 2, i, 3), Style(number_format=VALUE_FORMATS.get(unit, "0.00"))))
        formats.append(Format(Area(i, 4, i, 6), Style(number_format=DIFFERENCE_FORMATS.get(unit, "0.00"))))
        formats.append(Format(Area.cell(i, 7), Style(number_format=layout.P_VALUE)))
    p_top = top + len(body) + 2
    power_label = layout.business_label(str(power.columns[-1]))
    p_header = ["Power (80%, 5% two-sided)", f"{arm_labels[0]} bad rate", f"{arm_labels[1]} bad rate", "Difference",
                f"{arm_labels[0]} bookings a month", f"{arm_labels[1]} bookings a month", "Months needed",
                power_label]
    power_rows = [[what, p1, p2, d * 100, *rest] for what, p1, p2, d, *rest in power.itertuples(index=False,
                                                                                                  name=None)]
    blocks.append(Block(p_top, 1, layout.text_grid([p_header, *power_rows])))
    formats.append(Format(Area(p_top, 1, p_top, len(p_header)), layout.HEADER_WRAP_STYLE))
    last = p_top + len(power)
    formats += [Format(Area(p_top + 1, 2, last, 3), Style(number_format=layout.PERCENT)),
                Format(Area(p_top + 1, 4, last, 4), Style(number_format=layout.SIGNED_POINTS)),
                Format(Area(p_top + 1, 5, last, 7), Style(number_format="#,##0.0")),
                Format(Area(p_top + 1, 8, last, 8), Style(number_format="0%"))]
    chart_top = last + 2
    chart_rows = 19
    c_top = chart_top + chart_rows + 2
    mobs = np.arange(curve.shape[1])
    observed_to = max(OBSERVED_MOBS)
    cols = [mobs.astype(float)]
    heads = ["MOB"]
    series = []
    for a, color in zip(range(2), ("1F77B4", "D62728"), strict=True):
        for kind, mask, dashed in (("observed", mobs <= observed_to, False), ("forecast", mobs >= observed_to, True)):
            cols.append(np.where(mask, curve[a], np.nan))
            heads.append(f"{arm_labels[a]} {kind}")
            c = len(cols)
            series.append(Series(arm_labels[a] + (" forecast" if dashed else ""),
                                 Area(c_top + 1, c, c_top + len(mobs), c), color, dashed, in_legend=not dashed))
    blocks.append(Block(c_top - 1, 1, layout.text_grid([["Chart data"]])))
    formats.append(Format(Area.cell(c_top - 1, 1), layout.SECTION_STYLE))
    blocks.append(Block(c_top, 1, layout.text_grid([heads])))
    blocks.append(Block(c_top + 1, 1, np.column_stack(cols)))
    formats += [Format(Area(c_top, 1, c_top, len(heads)), layout.HEADER_WRAP_STYLE),
                Format(Area(c_top + 1, 2, c_top + len(mobs), len(heads)), Style(number_format=layout.PERCENT))]
    chart = LineChart(title="DEL30 by MOB per arm", anchor=(chart_top, 1),
                      categories=Area(c_top + 1, 1, c_top + len(mobs), 1), series=tuple(series), y_title="DEL30")
    widths = {1: 34.0} | {c: 12.0 for c in range(2, 9)}
    return SheetLayout(name=SHEET_NAME, kind="abtest", owner="abtest", title=title, blocks=tuple(blocks),
                       formats=tuple(formats), charts=(chart,), column_widths=widths, row_heights={1: 30.0},
                       tab_color=TAB_COLOR,
                       page=layout.Page(landscape=False, fit_height=1, print_area=Area(1, 1, c_top - 2,
                                                                                          len(p_header))),
                       areas={"table": Area(top, 1, top + len(body), len(header))})


def ab_summary(sheet: SheetLayout, table: pd.DataFrame, power: pd.DataFrame, intro: Sequence[str], as_of: str,
               caveats: Sequence[str]) -> SheetLayout:
    """The A/B test's Summary: the verdict, the bad-rate comparison and the power, the caveats, the contents."""
    writer = SheetWriter(row=summary_top(intro))
    writer.section("Verdict")
    writer.text(verdict(table, power), VERDICT_STYLE)
    row = _bad_rate_row(table)
    figures = []
    if row is not None:
        figures += [Figure(f"{row['metric']}: champion", float(row["champion"]), layout.PERCENT),
                    Figure(f"{row['metric']}: challenger", float(row["challenger"]), layout.PERCENT),
                    Figure("Difference (challenger − champion)", float(row["difference"]) * 100,
                           layout.SIGNED_POINTS),
                    Figure("p-value", float(row["p_value"]), layout.P_VALUE)]
    if len(power):
        expected = power.iloc[0]
        figures += [Figure("Power of the test so far", float(expected.iloc[-1]), "0%"),
                    Figure("Months needed for 80% power", float(expected["months_needed"]), "#,##0")]
    writer.figures(figures)
    summary = summary_sheet("abtest", "A/B test: summary", as_of, intro, writer, [sheet], caveats=caveats)
    return summary


SIMULATION_CAVEATS = ("Simulated applicants and outcomes in the decision twin: the figures show what the test could "
                      "find, not what happened.",
                      "Values, losses and ROE use the economics of the configuration: with its defaults, "
                      "illustrative.")
OBSERVED_CAVEATS = ("DEL30 at MOB 12 of recent cohorts is partly forecast by the engine.",)


def _simulation_notes(sim: Simulation) -> tuple[str, ...]:
    return (f"Simulated in the twin: {sim.months} months of applicants, {sim.split:.0%} randomised to the "
            f"challenger; each booking followed to MOB {FOLLOW_UP}, MOB {FORECAST_MOB} forecast by the engine.",
            f"Champion policy {sim.versions[0]}, challenger policy {sim.versions[1]}. "
            "Differences are challenger minus champion, rates in percentage points.",
            *([f"Value and ROE: {sim.caveat}"] if sim.caveat else []))


OBSERVED_NOTES = ("Observed loans by the data's policy arm column; DEL30 at MOB 12 from the engine (observed + "
                  "forecast).", "Differences are challenger minus champion, rates in percentage points.")


def simulation_sheet(sim: Simulation, mde: float = 0.01) -> layout.SheetLayout:
    return ab_sheet("Champion / challenger (simulated)", ARMS, sim.table(), sim.power(mde), sim.curve[0],
                    _simulation_notes(sim))


def observed_sheet(obs: Observed) -> layout.SheetLayout:
    return ab_sheet("Champion / challenger (observed)", obs.arms, obs.table, obs.power, obs.curve,
                    OBSERVED_NOTES + obs.notes)


def simulation_book(sim: Simulation, mde: float = 0.01, *, as_of: str = "") -> list[layout.SheetLayout]:
    """The simulated test's workbook: its Summary and the A-B test sheet (``as_of``: the twin's data)."""
    sheet = simulation_sheet(sim, mde)
    summary = ab_summary(sheet, sim.table(), sim.power(mde), _simulation_notes(sim)[:1], as_of, SIMULATION_CAVEATS)
    return book(summary, [sheet], as_of)


def observed_book(obs: Observed, *, as_of: str = "") -> list[layout.SheetLayout]:
    """The observed test's workbook: its Summary and the A-B test sheet."""
    sheet = observed_sheet(obs)
    return book(ab_summary(sheet, obs.table, obs.power, OBSERVED_NOTES[:1], as_of, OBSERVED_CAVEATS + obs.notes),
                [sheet], as_of)
