"""The backtest as workbook sheets: `backtest_sheets(result)` returns plain `layout.SheetLayout`s (written by the
CLI into a new .xlsx and by the ribbon into the workbook): a "Backtest" sheet with the Portfolio's MAE by months
ahead per DEL type (table + line chart) and every segment's winners, then the full error tables by horizon and by
MOB.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from pyxl_del.backtest import bootstrap
from pyxl_del.backtest.rolling import MODEL_LABELS, BacktestResult
from pyxl_del.engine.config import DEL_TYPES
from pyxl_del.engine.data import PORTFOLIO
from pyxl_del.engine.errors import counted
from pyxl_del.sheets import summary as summaries
from pyxl_del.sheets.layout import (
    CURVE_COLORS,
    NOTE_STYLE,
    POINTS,
    SECTION_STYLE,
    SIGNED_POINTS,
    TITLE_STYLE,
    Area,
    Font,
    Format,
    LineChart,
    Page,
    Series,
    SheetLayout,
    Style,
    cell_block,
    frame_table,
    widths_of,
)
from pyxl_del.sheets.summary import SheetWriter, book, summary_top

KIND = "backtest"  # the sheets' kind and their owner
TAB_COLOR = "7F6000"
SHEET_NAMES = ("Backtest", "Backtest by horizon", "Backtest by MOB")
DEL_POINTS = "0.000%"
# The difference to the benchmark and its interval to the 0.001 point the terminal prints: at 0.01 an interval
# ending at -0.004 read "to -0.00 pp" beside the verdict "better" (its interval excludes 0).
FINE_SIGNED_POINTS = '+0.000" pp";-0.000" pp";0.000" pp"'
WIN_STYLE = Style(font=Font(bold=True, color="375623"))
HEADER_HEIGHT = 42.0  # three lines of wrapped header text ("Last value carried forward")
CHART_ROWS = 18  # rows a 9 cm chart covers at the default row height

# (column, header, number format, width); a None format marks a text column.
METRIC_COLUMNS = (
    ("n_origins", "Origins", "0", 8.0), ("n_cells", "Cells", "#,##0", 8.0),
    ("mae", "MAE", DEL_POINTS, 9.0), ("bias", "Bias", DEL_POINTS, 9.0), ("mape", "MAPE", "0.0%", 8.0),
    ("mae_ead", "MAE (EAD-w.)", DEL_POINTS, 12.0), ("bias_ead", "Bias (EAD-w.)", DEL_POINTS, 12.0),
    ("mape_ead", "MAPE (EAD-w.)", "0.0%", 13.0),
)


def _in_sentence(header: str) -> str:
    """A column header inside a longer one: "Interval coverage" -> "interval coverage"; an acronym ("MAE of the
    median", "CRPS") keeps its capitals (it had read "Markov mAE of the median")."""
    return header if header[:2].isupper() else header[:1].lower() + header[1:]


# Of the forecast distribution ([forecast] intervals on): for the Markov chain only.
DISTRIBUTION_COLUMNS = (
    ("mae_median", "MAE of the median", DEL_POINTS, 10.0), ("coverage", "Interval coverage", "0.0%", 10.0),
    ("coverage_plain", "Coverage (ties whole)", "0.0%", 10.0), ("crps", "CRPS", DEL_POINTS, 9.0),
)
KEY_COLUMNS = (("model", "Model", None, 24.0), ("segment", "Segment", None, 22.0), ("del_type", "DEL", None, 7.0))


DISTRIBUTION_NOTE = ("The Markov forecast's distribution: MAE of its median; interval coverage = share of the actuals "
                     "inside its P10..P90 (nominally 80%; a tie with an end counts in part), and with ties counted "
                     "whole; CRPS = continuous ranked probability score in DEL points (lower is better; a point "
                     "forecast's is its MAE).")


def _labelled(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Model codes as the labels a reader knows."""
    out = frame.copy()
    for column in columns:
        out[column] = out[column].astype(str).map(lambda m: MODEL_LABELS.get(m, m))
    return out


def summary_sheet(result: BacktestResult) -> SheetLayout:
    """Portfolio MAE by months ahead per DEL type (table and chart), then every segment's winners."""
    models = result.models
    labels = [MODEL_LABELS[m] for m in models]
    title = "Backtest: forecast error by months ahead"
    blocks = [
        cell_block(1, 1, title),
        cell_block(2, 1, f"{result.origins_text}: at each, the panel is cut to the rows known then, forecast as the "
                    f"report does, and compared with the DEL observed later, 1 to {result.months_ahead} months "
                    f"ahead. MAE = mean |forecast − actual| in DEL points; lowest in bold green (none where models "
                    f"tie); margin = how much lower than the runner-up. "
                    f"{DISTRIBUTION_NOTE if 'coverage_markov' in result.winners.columns else ''}"),
        cell_block(3, 1, "Markov (as configured) is the report's forecast; Markov, no calibration: the same chain "
                    "without the step-wise calibration; Chain-ladder: volume-weighted development factors on each "
                    "segment's DEL curve; Last value: the last actual DEL carried forward."),
    ]
    formats = [Format(Area.cell(1, 1), TITLE_STYLE), Format(Area.cell(2, 1), NOTE_STYLE),
               Format(Area.cell(3, 1), NOTE_STYLE)]
    winners = result.winners
    # The Portfolio tables sit in the columns of the every-segment table below them, so widths fit both.
    # The verdict (winner, margin) beside the errors it reads; the distribution's figures after it, on the page to
    # the right where the sheet prints two wide, the keys (columns 1-3) repeated there.
    every = [("segment", "Segment", None, 22.0), ("del_type", "DEL", None, 7.0),
             ("horizon", "Months ahead", "0", 8.0), ("n_origins", "Origins", "0", 8.0),
             ("n_cells", "Cells", "#,##0", 8.0),
             *[(f"mae_{m}", label, DEL_POINTS, 13.0) for m, label in zip(models, labels, strict=True)],
             ("winner", "Winner", None, 24.0), ("margin", "Margin", "0%", 8.0),
             *[(f"{c}_markov", f"Markov {_in_sentence(header)}", f, w)
               for c, header, f, w in DISTRIBUTION_COLUMNS if f"{c}_markov" in winners.columns],
             ("winner_ead", "Winner (EAD-weighted)", None, 24.0)]
    left = 3
    first_mae = 6  # column of the first model's MAE
    charts, row, heights = [], 5, {1: 30.0}
    for del_type in DEL_TYPES:
        part = winners[(winners["segment"] == PORTFOLIO) & (winners["del_type"] == del_type)]
        blocks.append(cell_block(row, 1, f"Portfolio {del_type}: MAE by months ahead"))
        formats.append(Format(Area.cell(row, 1), SECTION_STYLE))
        table_blocks, table_formats, area = frame_table(_labelled(part, ["winner"]), every[left - 1:-1], row + 1, left)
        heights[row + 1] = HEADER_HEIGHT
        blocks += table_blocks
        formats += table_formats
        first, last = row + 2, row + 1 + len(part)
        for i, winner in enumerate(part["winner"].astype(str)):
            if winner in models:  # a tie has no lowest to mark
                formats.append(Format(Area.cell(first + i, first_mae + models.index(winner)), WIN_STYLE))
        if len(part):
            charts.append(LineChart(
                # Right of the repeated key columns (1-3): a chart over them printed a slice of itself on every
                # page to the right.
                title=f"Portfolio {del_type}: MAE by months ahead", anchor=(area.last_row + 2, left + 1),
                categories=Area(first, left, last, left),
                series=tuple(Series(label, Area(first, first_mae + i, last, first_mae + i),
                                    CURVE_COLORS[i % len(CURVE_COLORS)], dashed=not m.startswith("markov"))
                             for i, (m, label) in enumerate(zip(models, labels, strict=True))),
                x_title="Months ahead", y_title="MAE", y_format="0.0%", width_cm=18.0,
            ))
        row = area.last_row + 2 + (CHART_ROWS if len(part) else 0) + 1

    blocks.append(cell_block(row, 1, "Every segment: MAE by months ahead and the lowest (filter by segment and DEL)"))
    formats.append(Format(Area.cell(row, 1), SECTION_STYLE))
    table_blocks, table_formats, area = frame_table(_labelled(winners, ["winner", "winner_ead"]), every, row + 1)
    heights[row + 1] = HEADER_HEIGHT
    blocks += table_blocks
    formats += table_formats
    widths = widths_of(every)
    return SheetLayout(
        name=SHEET_NAMES[0], kind=KIND, owner=KIND, title=title, blocks=tuple(blocks), formats=tuple(formats),
        charts=tuple(charts), column_widths=widths, row_heights=heights, tab_color=TAB_COLOR,
        page=Page(landscape=True, repeat_cols=(1, 3)), autofilter=area, areas={"winners": area},
    )


def errors_sheet(result: BacktestResult, by: str) -> SheetLayout:
    """The full error table by months ahead ("horizon") or by MOB ("mob"), one row per model/segment/DEL/key."""
    frame = result.by_horizon if by == "horizon" else result.by_mob
    key = ("horizon", "Months ahead", "0", 8.0) if by == "horizon" else ("mob", "MOB", "0", 6.0)
    # The Portfolio's rows first: they are what prints; every segment's rows follow on screen (filters are on).
    order = np.lexsort([frame[key[0]].to_numpy(), frame["model"].astype(str).to_numpy(),
                        frame["del_type"].astype(str).to_numpy(), frame["segment"].astype(str).to_numpy(),
                        (frame["segment"] != PORTFOLIO).to_numpy()])
    frame = frame.iloc[order].reset_index(drop=True)
    n_portfolio = int((frame["segment"] == PORTFOLIO).sum())
    columns = (*KEY_COLUMNS, key, *METRIC_COLUMNS, *[c for c in DISTRIBUTION_COLUMNS if c[0] in frame.columns])
    name = SHEET_NAMES[1] if by == "horizon" else SHEET_NAMES[2]
    title = f"Backtest errors by {'months ahead' if by == 'horizon' else 'MOB'}"
    blocks = [
        cell_block(1, 1, title),
        cell_block(2, 1, f"{result.origins_text}, 1 to {result.months_ahead} months ahead. MAE and bias in DEL "
                    f"points (bias = forecast − actual: positive is too high); MAPE over cells whose actual DEL is "
                    f"positive; EAD-w. = weighted by the cohort's EAD at MOB 0. "
                    f"{DISTRIBUTION_NOTE + ' ' if 'coverage' in frame.columns else ''}Printed: the "
                    f"Portfolio's rows; every segment's rows follow them on screen."),
    ]
    formats = [Format(Area.cell(1, 1), TITLE_STYLE), Format(Area.cell(2, 1), NOTE_STYLE)]
    table_blocks, table_formats, area = frame_table(_labelled(frame, ["model"]), columns, 4)
    return SheetLayout(
        name=name, kind=KIND, owner=KIND, title=title, blocks=tuple(blocks + table_blocks),
        formats=tuple(formats + table_formats), column_widths=widths_of(columns),
        row_heights={1: 30.0, 4: HEADER_HEIGHT}, freeze=(5, 1), tab_color=TAB_COLOR,
        page=Page(repeat_rows=(4, 4), print_area=Area(1, 1, 4 + max(n_portfolio, 1), len(columns))),
        autofilter=area, areas={"table": area},
    )


def as_of(result: BacktestResult) -> str:
    """The latest month the backtest compared forecasts with (the data's reporting month, or near it)."""
    cells = result.cells
    if cells.empty:
        return result.origins[-1] if result.origins else ""
    origin = cells["origin"].astype(str)
    months = origin.str[:4].astype(int) * 12 + origin.str[5:7].astype(int) - 1 + cells["horizon"].astype(int)
    last = int(months.max())
    return f"{last // 12:04d}-{last % 12 + 1:02d}"


def backtest_summary(result: BacktestResult, layouts: Sequence[SheetLayout]) -> SheetLayout:
    """The backtest's Summary: what was compared, each model's Portfolio error and bias against the benchmarks,
    the caveats and the contents."""
    cells = result.cells
    origins = result.origins
    intro = [f"{result.origins_text}: forecasts made with the data known at each, compared with the DEL observed "
             f"1 to {result.months_ahead} months later; {counted(len(result.segments) - 1, 'segment')} and the "
             f"Portfolio, {result.info.get('rows', 0):,} rows read."]
    writer = SheetWriter(row=summary_top(intro))
    writer.section(f"Portfolio: error and bias, mean over 1..{result.months_ahead} months ahead (percentage points "
                   f"of DEL)")
    overall = result.overall if not cells.empty else pd.DataFrame(columns=["model", "segment", "del_type"])
    portfolio = overall[overall["segment"] == PORTFOLIO]
    rows = []
    for model in result.models:
        row = {"model": MODEL_LABELS.get(model, model)}
        for del_type in DEL_TYPES:
            found = portfolio[(portfolio["model"] == model) & (portfolio["del_type"] == del_type)]
            row[f"mae_{del_type}"] = float(found["mae"].iloc[0]) * 100 if len(found) else np.nan
            row[f"bias_{del_type}"] = float(found["bias"].iloc[0]) * 100 if len(found) else np.nan
        rows.append(row)
    columns = [("model", "Model", None, 0)]
    for del_type in DEL_TYPES:
        columns += [(f"mae_{del_type}", f"{del_type} MAE", POINTS, 0),
                    (f"bias_{del_type}", f"{del_type} bias", SIGNED_POINTS, 0)]
    writer.table(pd.DataFrame(rows, columns=[c[0] for c in columns]), columns)
    winners = result.winners
    wins = winners[winners["segment"] == PORTFOLIO]["winner"].astype(str)
    if len(wins):
        counts = wins.map(lambda m: MODEL_LABELS.get(m, m)).value_counts()
        writer.notes(["Lowest Portfolio MAE by DEL type and months ahead: "
                      + "; ".join(f"{label} {n} of {len(wins)}" for label, n in counts.items()) + "."])
    against = result.against_benchmarks
    if not against.empty:
        writer.section("The forecast against the better benchmark: is the difference more than noise?")
        shown = against.assign(benchmark=against["benchmark"].map(MODEL_LABELS),
                               **{c: against[c] * 100 for c in ("mae", "mae_benchmark", "difference",
                                                                 "difference_lo", "difference_hi")})
        writer.table(shown, [("del_type", "DEL type", None, 0), ("benchmark", "Better benchmark", None, 0),
                             ("mae", "Markov MAE", POINTS, 0), ("mae_benchmark", "Its MAE", POINTS, 0),
                             ("difference", "Difference", FINE_SIGNED_POINTS, 0),
                             ("difference_lo", f"{bootstrap.LEVEL:.0%} interval from", FINE_SIGNED_POINTS, 0),
                             ("difference_hi", "to", FINE_SIGNED_POINTS, 0), ("verdict", "Verdict", None, 0)])
        writer.notes([bootstrap.verdict_note(against)])
    caveats = ["MAE = mean |forecast − actual| and bias = mean (forecast − actual), in percentage points of DEL "
               "(bias above zero: the forecast is too high), over the cells of each month ahead, then averaged over "
               "the months ahead (each counts once; the near months have the most cells).",
               f"{counted(len(origins), 'as-of month')}: "
               + ("few, so read the differences between models as indications, not as proof."
                  if len(origins) < 6 else "the intervals above say which differences are more than noise."
                  if not against.empty and (against["verdict"] != "too few cohorts").all() else
                  "differences of a few hundredths of a point are within noise."),
               *[f"Note: {note}" for note in result.notes]]
    if result.warnings:
        caveats.append(f"{counted(len(result.warnings), 'warning')} at the as-of months (thin cohorts or transition "
                       f"rows, loans leaving the data, rows that fell back to pooled data).")
    return summaries.summary_sheet(KIND, "Backtest: summary", as_of(result), intro, writer, layouts,
                                   caveats=caveats)


def backtest_sheets(result: BacktestResult) -> list[SheetLayout]:
    """The backtest's sheets in workbook order: its Summary, the error by months ahead with charts, errors by
    horizon, errors by MOB."""
    layouts = [summary_sheet(result), errors_sheet(result, "horizon"), errors_sheet(result, "mob")]
    return book(backtest_summary(result, layouts), layouts, as_of(result))
