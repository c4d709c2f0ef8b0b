"""The A-B test sheet: the champion / challenger comparison with 95% intervals, the power calculation and DEL30 by
MOB per arm, for a simulated test (`pyxl_del.decision.abtest.simulate`) or the arms observed in the data."""

from __future__ import annotations

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

SHEET_NAME = "A-B test"
TAB_COLOR = "7030A0"
UNIT_FORMATS = {"pct": layout.PERCENT, "amount": "#,##0", "count": "#,##0"}


def ab_sheet(title: str, arms: tuple[str, str], table: pd.DataFrame, power: pd.DataFrame, curve: np.ndarray,
             notes: tuple[str, ...]) -> layout.SheetLayout:
    """The A/B sheet: the comparison table with 95% intervals, the power calculation and a DEL30 chart by MOB
    (solid observed, dashed forecast)."""
    blocks = [Block(1, 1, layout.text_grid([[title]])), Block(2, 1, layout.text_grid([[n] for n in notes]))]
    formats = [Format(Area.cell(1, 1), layout.TITLE_STYLE), Format(Area(2, 1, 1 + len(notes), 1), layout.NOTE_STYLE)]
    top = 3 + len(notes)
    header = ["Metric", arms[0], arms[1], "Difference", "95% CI low", "95% CI high", "p-value"]
    body = [[r.metric, r.champion, r.challenger, r.difference, r.ci_low, r.ci_high, r.p_value]
            for r in table.itertuples(index=False)]
    blocks.append(Block(top, 1, layout.text_grid([header, *body])))
    formats.append(Format(Area(top, 1, top, len(header)), layout.HEADER_STYLE))
    for i, unit in enumerate(table["unit"], start=top + 1):
        formats.append(Format(Area(i, 2, i, 6), Style(number_format=UNIT_FORMATS.get(unit, "0.00"))))
        formats.append(Format(Area.cell(i, 7), Style(number_format="0.000")))
    p_top = top + len(body) + 2
    p_header = ["Power (80%, 5% two-sided)", "Champion bad rate", "Challenger bad rate", "Difference",
                "Champion bookings / month", "Challenger bookings / month", "Months needed", power.columns[-1]
                .replace("_", " ").capitalize()]
    blocks.append(Block(p_top, 1, layout.text_grid([p_header, *power.itertuples(index=False, name=None)])))
    formats.append(Format(Area(p_top, 1, p_top, len(p_header)), layout.HEADER_STYLE))
    last = p_top + len(power)
    formats += [Format(Area(p_top + 1, 2, last, 4), Style(number_format=layout.PERCENT)),
                Format(Area(p_top + 1, 5, last, 7), Style(number_format="#,##0.0")),
                Format(Area(p_top + 1, 8, last, 8), Style(number_format="0%"))]
    c_top = last + 2
    mobs = np.arange(curve.shape[1])
    observed_to = max(OBSERVED_MOBS)
    cols = [mobs.astype(float)]
    heads = ["MOB"]
    series = []
    for a, color in zip(range(2), ("1F77B4", "D62728"), strict=True):
        for kind, mask, dashed in (("observed", mobs <= observed_to, False), ("forecast", mobs >= observed_to, True)):
            cols.append(np.where(mask, curve[a], np.nan))
            heads.append(f"{arms[a]} {kind}")
            c = len(cols)
            series.append(Series(f"{arms[a]}" + (" forecast" if dashed else ""),
                                 Area(c_top + 1, c, c_top + len(mobs), c), color, dashed, in_legend=not dashed))
    blocks.append(Block(c_top, 1, layout.text_grid([heads])))
    blocks.append(Block(c_top + 1, 1, np.column_stack(cols)))
    formats += [Format(Area(c_top, 1, c_top, len(heads)), layout.HEADER_STYLE),
                Format(Area(c_top + 1, 2, c_top + len(mobs), len(heads)), Style(number_format=layout.PERCENT))]
    chart = LineChart(title="DEL30 by MOB per arm", anchor=(top, len(header) + 2),
                      categories=Area(c_top + 1, 1, c_top + len(mobs), 1), series=tuple(series), y_title="DEL30")
    widths = {1: 38.0} | {c: 15.0 for c in range(2, 9)}
    return SheetLayout(name=SHEET_NAME, kind="abtest", owner="abtest", title=title, blocks=tuple(blocks),
                       formats=tuple(formats), charts=(chart,), column_widths=widths, row_heights={1: 30.0},
                       tab_color=TAB_COLOR, page=layout.Page(landscape=True),
                       areas={"table": Area(top, 1, top + len(body), len(header))})


def simulation_sheet(sim: Simulation, mde: float = 0.01) -> layout.SheetLayout:
    notes = (f"Simulated in the twin: {sim.months} months of applicants, {sim.split:.0%} randomised to the "
             f"challenger; each booking followed to MOB {FOLLOW_UP}, MOB {FORECAST_MOB} forecast by the engine.",
             f"Champion policy {sim.versions[0]}, challenger policy {sim.versions[1]}. "
             "Differences are challenger minus champion.", *([f"Value and ROE: {sim.caveat}"] if sim.caveat else []))
    return ab_sheet("Champion / challenger (simulated)", ARMS, sim.table(), sim.power(mde), sim.curve[0], notes)


def observed_sheet(obs: Observed) -> layout.SheetLayout:
    notes = ("Observed loans by [columns] policy_arm; DEL30 at MOB 12 from the engine (observed + forecast).",
             "Differences are challenger minus champion.")
    return ab_sheet("Champion / challenger (observed)", obs.arms, obs.table, obs.power, obs.curve, notes)
