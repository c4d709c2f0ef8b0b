"""`pyxl-del tune` as workbook sheets: `tune_sheets(result)` returns plain `layout.SheetLayout`s, as the backtest's
do: a "Tune" sheet ranking the candidate settings by Portfolio MAE beside the benchmarks, with the MAE by months
ahead per DEL type (table + line chart), then the full error table by months ahead (every segment).
"""

from __future__ import annotations

import math
from dataclasses import replace

import pandas as pd

from pyxl_del.backtest.bootstrap import LEVEL, MIN_BLOCKS
from pyxl_del.backtest.rolling import MODEL_LABELS
from pyxl_del.backtest.tune import BENCHMARKS, CURRENT, TuneResult
from pyxl_del.engine.config import DEL_TYPES
from pyxl_del.sheets import summary as summaries
from pyxl_del.sheets.backtest import (
    CHART_ROWS,
    DEL_POINTS,
    HEADER_HEIGHT,
    TAB_COLOR,
    WIN_STYLE,
    as_of,
    errors_sheet,
)
from pyxl_del.sheets.layout import (
    CURVE_COLORS,
    NOTE_STYLE,
    SECTION_STYLE,
    TITLE_STYLE,
    Area,
    Format,
    LineChart,
    Page,
    Series,
    SheetLayout,
    cell_block,
    frame_table,
    widths_of,
)
from pyxl_del.sheets.summary import Figure, SheetWriter, book, summary_top

KIND = "tune"  # the sheets' kind and their owner
SHEET_NAME = "Tune"
SIGNED_DEL_POINTS = "+0.000%;-0.000%;0.000%"
CHART_CANDIDATES = 3  # the best candidates a chart draws beside as configured and the benchmarks: 6 colours
RANK_COLUMNS = (
    ("label", "Model", None, 30.0), ("kind", "Kind", None, 11.0),
    *[(f"mae_{d}", f"{d} MAE", DEL_POINTS, 10.0) for d in DEL_TYPES],
    ("score", "Mean MAE", DEL_POINTS, 10.0), ("rank", "Rank", "0", 6.0),
    # Headers that say which is relative (a share of the benchmark's MAE) and which in DEL points: both print "%".
    ("vs_best_benchmark", "vs best benchmark (relative)", "+0.0%;-0.0%;0.0%", 11.0),
    ("vs_configured", f"vs {CURRENT} (DEL points)", SIGNED_DEL_POINTS, 11.0),
    ("vs_configured_lo", f"{LEVEL:.0%} interval from", SIGNED_DEL_POINTS, 11.0),
    ("vs_configured_hi", "to", SIGNED_DEL_POINTS, 9.0), ("overrides", "What it sets", None, 44.0),
)
VERDICT_WORDS = {"winner": " (winner)", "tied lowest": " (tied lowest)", "no score": " (no score)", "": ""}


def _label(model: str) -> str:
    return MODEL_LABELS.get(model, model)


def _ranking(result: TuneResult) -> pd.DataFrame:
    table = result.table.copy()
    # Differences at the shown precision (0.001 DEL points), so float noise below it is 0.000%, not "-0.000%".
    for column in ("vs_configured", "vs_configured_lo", "vs_configured_hi"):
        table[column] = table[column].round(5) + 0.0
    table["label"] = [_label(m) + VERDICT_WORDS[v] for m, v in zip(table["model"], table["verdict"], strict=True)]
    return table


def _verdict_text(result: TuneResult) -> str:
    return (f"Winner: {_label(result.winner)}." if result.winner is not None else
            f"No winner: {result.undecided}; pyxl-del tune --write changes nothing.")


def tune_sheet(result: TuneResult) -> SheetLayout:
    """The candidates ranked, then the Portfolio MAE by months ahead per DEL type (table and chart)."""
    bt = result.backtest
    title = "Tune: candidate settings by backtest error"
    blocks = [
        cell_block(1, 1, title),
        cell_block(2, 1, f"{bt.origins_text}: at each, the panel is cut to the rows known then and every candidate "
                    f"forecasts as the report would with its settings; the forecasts are compared with the DEL "
                    f"observed 1 to {bt.months_ahead} months later. MAE = mean |forecast − actual| of the Portfolio, "
                    f"averaged over the months ahead; Mean MAE over the DEL types decides the rank."),
        cell_block(3, 1, f"{_verdict_text(result)} '{CURRENT}' is config.toml as it is; the benchmarks "
                    f"(chain-ladder, last value) need no settings and are not ranked. 'vs {CURRENT}': the Mean MAE's "
                    f"difference to it, with a {LEVEL:.0%} interval from a bootstrap of blocks of cohorts "
                    f"(blank with fewer than {MIN_BLOCKS} blocks)."),
    ]
    formats = [Format(Area.cell(1, 1), TITLE_STYLE), Format(Area.cell(2, 1), NOTE_STYLE),
               Format(Area.cell(3, 1), NOTE_STYLE)]
    ranking = _ranking(result)
    table_blocks, table_formats, ranked = frame_table(ranking, RANK_COLUMNS, 5)
    blocks += table_blocks
    formats += table_formats
    if result.winner is not None:
        winner_row = 6 + int(ranking.index[ranking["model"] == result.winner][0])
        formats.append(Format(Area(winner_row, 1, winner_row, len(RANK_COLUMNS)), WIN_STYLE))
    heights = {1: 30.0, 5: HEADER_HEIGHT}

    models = list(bt.models)
    # The charts draw the benchmarks, as configured and the best few candidates: 23 lines in 6 colours were a
    # legend that squeezed the plot to a sliver and told no two candidates apart. The tables keep every model.
    by_score = ranking.sort_values("score", kind="stable")
    best = [m for m in by_score.loc[by_score["kind"] == "candidate", "model"] if m != CURRENT][:CHART_CANDIDATES]
    drawn = [m for m in models if m in (CURRENT, *BENCHMARKS, *best)]
    curve = result.by_horizon
    row, charts = ranked.last_row + 2, []
    columns = [("horizon", "Months ahead", "0", 10.0),
               *[(m, _label(m), DEL_POINTS, 12.0) for m in models]]
    for del_type in DEL_TYPES:
        wide = (curve[curve["del_type"] == del_type].pivot(index="horizon", columns="model", values="mae")
                .reindex(columns=models).reset_index())
        wide.columns = ["horizon", *models]
        blocks.append(cell_block(row, 1, f"Portfolio {del_type}: MAE by months ahead"))
        formats.append(Format(Area.cell(row, 1), SECTION_STYLE))
        table_blocks, table_formats, area = frame_table(wide, columns, row + 1)
        heights[row + 1] = HEADER_HEIGHT
        blocks += table_blocks
        formats += table_formats
        first, last = row + 2, row + 1 + len(wide)
        if len(wide):
            charts.append(LineChart(
                # Right of the repeated model column: a chart over it printed a slice of itself on every page to
                # the right.
                title=f"Portfolio {del_type}: MAE by months ahead", anchor=(area.last_row + 2, 2),
                categories=Area(first, 1, last, 1),
                series=tuple(Series(_label(m), Area(first, 2 + models.index(m), last, 2 + models.index(m)),
                                    CURVE_COLORS[i % len(CURVE_COLORS)], dashed=m in BENCHMARKS)
                             for i, m in enumerate(drawn)),
                x_title="Months ahead", y_title="MAE", y_format="0.0%", width_cm=18.0,
            ))
        row = area.last_row + 2 + (CHART_ROWS if len(wide) else 0) + 1
    widths = widths_of(RANK_COLUMNS) | {j: max(w, widths_of(columns).get(j, 0)) for j, w in widths_of(columns).items()}
    return SheetLayout(
        name=SHEET_NAME, kind=KIND, owner=KIND, title=title, blocks=tuple(blocks), formats=tuple(formats),
        charts=tuple(charts), column_widths=widths, row_heights=heights, tab_color=TAB_COLOR,
        # The model's name (and the months ahead below) on every page across.
        page=Page(landscape=True, repeat_cols=(1, 1)), autofilter=ranked, areas={"ranking": ranked},
    )


def tune_summary(result: TuneResult, layouts: list[SheetLayout]) -> SheetLayout:
    """The tune's Summary: the winner (or why there is none), what --write would change, the caveats and the
    contents."""
    bt = result.backtest
    intro = [(f"{len(result.candidates.configs)} candidate settings and 2 benchmarks backtested at "
              f"{bt.origins_text}, 1 to {bt.months_ahead} months ahead, {bt.info.get('rows', 0):,} rows read.")]
    writer = SheetWriter(row=summary_top(intro))
    table = result.table.set_index("model")
    best_benchmark = table.loc[table["kind"] == "benchmark", "score"].idxmin()
    if result.winner is None:
        writer.section("No winner")
        writer.notes([f"{result.undecided[0].upper()}{result.undecided[1:]}."])
        lowest = table.loc[table["kind"] == "candidate", "score"].min()
        figures = [Figure("Lowest mean MAE of the candidates", float(lowest), DEL_POINTS)]
    else:
        writer.section("The winner")
        figures = [Figure("Lowest mean Portfolio MAE", _label(result.winner)),
                   Figure("Its mean MAE", float(table.loc[result.winner, "score"]), DEL_POINTS)]
        if result.lead is not None:
            difference, lo, hi = result.lead
            figures.append(Figure(f"Its lead over {CURRENT}", difference, SIGNED_DEL_POINTS))
            if not math.isnan(hi):
                figures.append(Figure(f"{LEVEL:.0%} interval of the lead", f"[{lo:+.3%}, {hi:+.3%}]"))
    writer.figures([
        *figures,
        Figure(f"Mean MAE {CURRENT}", float(table.loc[CURRENT, "score"]), DEL_POINTS),
        Figure(f"Best benchmark: {_label(best_benchmark)}", float(table.loc[best_benchmark, "score"]), DEL_POINTS),
    ])
    writer.section("What pyxl-del tune --write changes in config.toml")
    writer.notes([*([f"Only with --force: {result.within_noise}."] if result.within_noise else []),
                  *[f"[{s}] {k}: {old!r} -> {new!r}" for s, k, old, new in result.changes]]
                 or [f"nothing: {result.undecided}" if result.winner is None else
                     "nothing: the config as it is has the lowest error"])
    caveats = [*([f"{result.behind_benchmark[0].upper()}{result.behind_benchmark[1:]}."]
                 if result.behind_benchmark else []),
               f"{len(bt.origins)} as-of months: "
               + ("few, so read the ranking as an indication, not as proof." if len(bt.origins) < 6 else
                  "differences of a few hundredths of a point are within noise."),
               *[f"Note: {note}" for note in result.notes]]
    return summaries.summary_sheet(KIND, "Tune: summary", as_of(bt), intro, writer, layouts, caveats=caveats)


def tune_sheets(result: TuneResult) -> list[SheetLayout]:
    """The tune's sheets in workbook order: its Summary, the ranking with charts, the errors by months ahead."""
    errors = errors_sheet(result.backtest, "horizon")
    layouts = [tune_sheet(result), replace(errors, name="Tune by horizon", kind=KIND, owner=KIND)]
    return book(tune_summary(result, layouts), layouts, as_of(result.backtest))
