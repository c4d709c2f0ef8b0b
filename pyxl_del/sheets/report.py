"""The DEL report's sheets: a DelResult as layouts (values, formats, marks, charts), with no file I/O.

`build_layouts(result)` returns plain dataclasses (pyxl_del.sheets.layout); `pyxl_del.excel.render` writes them into an
openpyxl workbook (the CLI's .xlsx, the ribbon's workbook). Nothing here imports openpyxl or xlwings.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from pyxl_del.backtest.tune import settings_text
from pyxl_del.engine.calibration import absorbing_mask
from pyxl_del.engine.config import DEL_TYPES, Config
from pyxl_del.engine.data import PORTFOLIO
from pyxl_del.engine.diagnostics import too_few_steps
from pyxl_del.engine.errors import agree, counted
from pyxl_del.engine.pipeline import DelResult
from pyxl_del.engine.transitions import FALLBACK, TAIL
from pyxl_del.sheets.fit import print_plan
from pyxl_del.sheets.layout import (
    CHART_HEIGHT_CM,
    CHART_WIDTH_CM,
    CURVE_COLORS,
    DEFAULT_SIZE,
    FORECAST_COLOR,
    FORECAST_STYLE,
    HEADER_STYLE,
    HEADER_WRAP_STYLE,
    MATRIX_SCALE_COLORS,
    MAX_SHEET_NAME,
    MIXED_COLOR,
    MIXED_STYLE,
    NOTE_COLOR,
    NOTE_STYLE,
    PERCENT,
    ROW_HEADER_STYLE,
    SECTION_STYLE,
    SMALL_SIZE,
    STEP_NOTE_STYLE,
    STEP_STYLE,
    SUBTITLE_STYLE,
    TITLE_COLOR,
    TITLE_STYLE,
    VALUE_STYLE,
    WARN_COLOR,
    Area,
    Block,
    Border,
    ColorScale,
    Edge,
    Font,
    Format,
    LineChart,
    Page,
    Series,
    SheetLayout,
    Style,
    cell_block,
    clean_text,
    cm_to_units,
    columns_spanning,
    legend_cells,
    listed_names,
    runs,
    text_grid,
    text_width,
    truncate,
    unique_stems,
    utf16_len,
)
from pyxl_del.sheets.summary import (
    DATA_COLUMN,
    SUMMARY_NAMES,
    SheetWriter,
    book,
    chart_rows,
    summary_sheet,
    summary_top,
)

TAB_COLORS = {"mixed": "1F4E78", "curves": "548235", "flags": "A6A6A6", "matrices": "A6A6A6",
              "calibration": "A6A6A6", "run_info": "404040"}
MOB_HEADER = '"MOB "0'
COHORT_WIDTH = 10.0
# A MOB column as wide as its header and a two-digit percentage: MOB tables print across as few pages as can be.
MOB_WIDTH = round(max(text_width("MOB 88", bold=True), text_width("88.88%")), 1)
FLAG_WIDTH = 10.5
MAX_CURVES = 6  # cohorts per DEL chart: more lines than this stop being readable
OWNER = "report"  # the owner of the report's sheets

FLAG_ACTUAL, FLAG_FORECAST, FLAG_MIXED = "ACTUAL", "FORECAST", "MIXED"
LEGEND_NOTE_STYLE = Style(font=Font(italic=True, color=NOTE_COLOR))
ILLUSTRATIVE_STYLE = Style(font=Font(bold=True, color=WARN_COLOR))

WideTables = Callable[[str, str, str], pd.DataFrame]  # DelResult.wide, or a cached stand-in


# Sheet-name suffixes by kind; "{n}" is the DEL threshold (30, 60, 90) of sheets made per DEL type. The flags
# are the same for the three DEL types (they say which months were observed), so one flags sheet per segment
# serves all three; "flags_by_del" names exist for the case where they differ.
SUFFIXES = {"mixed": "_DEL{n}", "curves": "_curves", "flags": "_flags", "flags_by_del": "_flags{n}",
            "matrices": "_matrices"}
FIXED_SHEETS = {"calibration": "Calibration", "run_info": "Run info", "summary": SUMMARY_NAMES[OWNER]}


def sheet_names(result: DelResult) -> dict[tuple[str, str, str | None], str]:
    """(segment, kind, del_type or None) -> sheet name for every sheet the report may have.

    The fixed sheets are keyed ("", kind, None).
    """
    longest = max(utf16_len(s.format(n=d[3:])) for s in SUFFIXES.values() for d in DEL_TYPES)
    stems = unique_stems(result.sheet_segments, MAX_SHEET_NAME - longest)
    names = {}
    used = {v.casefold() for v in FIXED_SHEETS.values()}
    for segment in result.sheet_segments:
        for kind, suffix in SUFFIXES.items():
            if kind == "matrices" and segment == PORTFOLIO:
                continue
            for del_type in (DEL_TYPES if "{n}" in suffix else (None,)):
                tail = suffix.format(n=del_type[3:] if del_type else "")
                name = stems[segment] + tail
                # Unique stems with fixed suffixes should not collide; this guard keeps names unique should a
                # segment's stem ever end like another kind's suffix.
                n = 1
                while name.casefold() in used:
                    n += 1
                    tag = f"~{n}"
                    name = truncate(stems[segment], MAX_SHEET_NAME - longest - len(tag)) + tag + tail
                used.add(name.casefold())
                names[(segment, kind, del_type)] = name
    for kind, name in FIXED_SHEETS.items():
        names[("", kind, None)] = name
    return names


def step_cells(flags: np.ndarray) -> np.ndarray:
    """(row, col) 0-based of each last ACTUAL cell before a non-ACTUAL one in its row: the staircase."""
    actual = flags == FLAG_ACTUAL
    return np.argwhere(actual[:, :-1] & ~actual[:, 1:])


def _flag_formats(flags: np.ndarray, top: int, left: int, styles: Mapping[str, Style]) -> list[Format]:
    """One format per run of equal flags (usually one per row), then the staircase borders."""
    out = []
    for flag, style in styles.items():
        for r, c0, c1 in runs(flags == flag):
            out.append(Format(Area(top + r, left + c0, top + r, left + c1), style))
    for r, c in step_cells(flags):
        out.append(Format(Area.cell(top + r, left + c), STEP_STYLE))
    return out


AGGREGATION_WORDS = {"mean": "plain mean of the segments in each cohort",
                     "ead_weighted": "mean of the segments in each cohort weighted by their EAD at MOB 0"}
WEIGHT_WORDS = {"mean": "plain mean of segments", "ead_weighted": "weighted by EAD at MOB 0"}


def _segment_label(result: DelResult, segment: str) -> str:
    if segment == PORTFOLIO:
        return f"Portfolio ({AGGREGATION_WORDS[result.config.portfolio.aggregation]})"
    return clean_text(segment)


# The cohort's size beside each row of a DEL table: (cohort_sizes column, header, number format).
COHORT_COLUMNS = (("loans", "Loans", "#,##0"), ("ead_mob0", "EAD at MOB 0", "#,##0"),
                  ("last_actual_mob", "Last actual MOB", "0"))


def _cohort_columns(result: DelResult, segment: str, cohorts: Sequence[str], header_row: int, top: int,
                    left: int) -> tuple[list[Block], list[Format], dict[int, float]]:
    """Loans, EAD at MOB 0 and the last actual MOB of each cohort row, in columns from ``left``."""
    sizes = result.cohort_sizes
    sizes = sizes[sizes["segment"] == segment].set_index("cohort").reindex(cohorts)
    last = left + len(COHORT_COLUMNS) - 1
    blocks = [Block(header_row, left, text_grid([[c[1] for c in COHORT_COLUMNS]]))]
    formats = [Format(Area(header_row, left, header_row, last), HEADER_STYLE.over(Style(wrap=True))),
               Format(Area(header_row, left, max(top + len(cohorts) - 1, header_row), left),
                      Style(border=Border(left=Edge("medium", TITLE_COLOR))))]
    if len(cohorts):
        values = sizes[[c[0] for c in COHORT_COLUMNS]].to_numpy(dtype=np.float64, na_value=np.nan)
        blocks.append(Block(top, left, values))
        formats += [Format(Area(top, left + j, top + len(cohorts) - 1, left + j), Style(number_format=fmt))
                    for j, (_, _, fmt) in enumerate(COHORT_COLUMNS)]
    return blocks, formats, {left: 8.0, left + 1: 13.0, left + 2: 10.5}


# ------------------------------------------------------------------------------------------ mixed sheets


def mixed_sheet(result: DelResult, segment: str, del_type: str, name: str, flags_name: str, *,
                wide: WideTables | None = None) -> SheetLayout:
    """The vintage table: cohorts down, MOB across, actual where observed and forecast after the red step."""
    wide = wide or result.wide
    table = wide(segment, del_type, "mixed")
    flags = wide(segment, del_type, "flags").to_numpy(dtype=object, na_value="")
    cohorts = [str(c) for c in table.index]
    mobs = [int(m) for m in table.columns]
    n_rows, n_cols = len(cohorts), len(mobs)
    header_row, top, left = 3, 4, 2
    last_col = left + n_cols - 1
    portfolio = segment == PORTFOLIO

    blocks = [
        cell_block(1, 1, f"{clean_text(segment)}_{del_type} Actual & Forecast"),
        Block(header_row, 1, text_grid([["Cohort", *mobs]])),
    ]
    formats = [
        Format(Area.cell(1, 1), TITLE_STYLE),
        Format(Area(header_row, 1, header_row, last_col), HEADER_STYLE),
        Format(Area(header_row, left, header_row, last_col), Style(number_format=MOB_HEADER)),
    ]
    # The legend in the table's own size: the wide table prints at about 75%, and 11 pt stays 8 pt on paper.
    note = illustrative_note(result, segment)
    legend = [(note, ILLUSTRATIVE_STYLE)] if note else []
    legend += [
        ("ACTUAL: upright", Style()),
        ("FORECAST: italic grey", Style(font=Font(italic=True, color=FORECAST_COLOR))),
    ]
    if portfolio:
        legend.append(("MIXED (some segments actual): purple bold italic underlined",
                       Style(font=Font(bold=True, italic=True, color=MIXED_COLOR, underline="single"))))
    legend += [
        ("Red step: last ACTUAL month (right and bottom edge)", STEP_NOTE_STYLE),
        ("Colour: green low, yellow middle, red high", Style()),
        (f"Flags of each cell: sheet '{flags_name}'", LEGEND_NOTE_STYLE),
    ]
    if portfolio:
        legend.append((f"Portfolio: {AGGREGATION_WORDS[result.config.portfolio.aggregation]} (the other "
                       f"weighting: sheet '{FIXED_SHEETS['summary']}')", LEGEND_NOTE_STYLE))
    size_blocks, size_formats, size_widths = _cohort_columns(result, segment, cohorts, header_row, top,
                                                             last_col + 1)
    widths = {1: COHORT_WIDTH} | {left + i: MOB_WIDTH for i in range(n_cols)} | size_widths
    table_end = last_col + len(COHORT_COLUMNS)
    # The printed page spans the table, or the title if that is wider; fit-to-width then scales to it. The legend
    # stays within the first page across, the only one that prints the rows above the header (fit.print_pages).
    print_cols = max(table_end, columns_spanning(widths, text_width(blocks[0].values[0, 0], 20)))
    _, _, page_ends = print_plan(widths, Area(1, 1, 1, print_cols), (1, 1), DEFAULT_SIZE, Page())
    legend_blocks, legend_formats, legend_end = legend_cells(legend, widths, min(table_end, page_ends[0]),
                                                             top + n_rows + 1)
    blocks += legend_blocks + size_blocks
    formats += legend_formats + size_formats

    areas = {"title": Area.cell(1, 1), "header": Area(header_row, 1, header_row, last_col)}
    color_scales = ()
    if n_rows:
        values = table.to_numpy(dtype=np.float64, na_value=np.nan)
        blocks += [Block(top, 1, text_grid([[c] for c in cohorts])), Block(top, left, values)]
        value_area = Area(top, left, top + n_rows - 1, last_col)
        formats += [
            Format(Area(top, 1, top + n_rows - 1, 1), ROW_HEADER_STYLE),
            Format(value_area, VALUE_STYLE),
        ]
        marks = {FLAG_FORECAST: FORECAST_STYLE} | ({FLAG_MIXED: MIXED_STYLE} if portfolio else {})
        formats += _flag_formats(flags, top, left, marks)
        color_scales = (ColorScale(value_area),)
        areas |= {"cohorts": Area(top, 1, top + n_rows - 1, 1), "values": value_area}

    return SheetLayout(
        name=name, kind="mixed", owner=OWNER, title=blocks[0].values[0, 0], segment=segment, del_type=del_type,
        blocks=tuple(blocks), formats=tuple(formats), color_scales=color_scales,
        column_widths=widths, row_heights={1: 30.0}, freeze=(top, left), tab_color=TAB_COLORS["mixed"],
        page=Page(repeat_rows=(header_row, header_row), repeat_cols=(1, 1),
                  print_area=Area(1, 1, max(legend_end, top + n_rows - 1, header_row), print_cols)),
        areas=areas,
    )


def flags_sheet(result: DelResult, segment: str, del_types: Sequence[str], name: str, mixed_names: Sequence[str],
                *, wide: WideTables | None = None) -> SheetLayout:
    """ACTUAL / FORECAST (/ MIXED) of every cell of the mixed sheets ``mixed_names``, at the same addresses.

    ``del_types`` are the DEL types whose sheets share these flags (one, or all three).
    """
    flags_frame = (wide or result.wide)(segment, del_types[0], "flags")
    flags = flags_frame.to_numpy(dtype=object, na_value="")
    cohorts = [str(c) for c in flags_frame.index]
    mobs = [int(m) for m in flags_frame.columns]
    n_rows, n_cols = flags.shape
    header_row, top, left = 3, 4, 2
    last_col = left + n_cols - 1
    if len(del_types) == 1:
        title = f"{clean_text(segment)}_{del_types[0]} Flags"
    else:
        title = f"{clean_text(segment)} Flags ({', '.join(del_types)})"
    sheets = ", ".join(f"'{n}'" for n in mixed_names)
    blocks = [
        cell_block(1, 1, title),
        cell_block(2, 1, f"Flags of {sheets} at the same cell addresses. ACTUAL = observed, FORECAST = projected"
                    + (", MIXED = some segments observed." if segment == PORTFOLIO else ".")),
        Block(header_row, 1, text_grid([["Cohort", *mobs]])),
    ]
    formats = [
        Format(Area.cell(1, 1), SUBTITLE_STYLE),
        Format(Area.cell(2, 1), NOTE_STYLE),
        Format(Area(header_row, 1, header_row, last_col), HEADER_STYLE),
        Format(Area(header_row, left, header_row, last_col), Style(number_format=MOB_HEADER)),
    ]
    areas = {"title": Area.cell(1, 1), "header": Area(header_row, 1, header_row, last_col)}
    if n_rows:
        blocks += [Block(top, 1, text_grid([[c] for c in cohorts])), Block(top, left, text_grid(flags.tolist()))]
        value_area = Area(top, left, top + n_rows - 1, last_col)
        formats += [
            Format(Area(top, 1, top + n_rows - 1, 1), ROW_HEADER_STYLE),
            Format(value_area, Style(font=Font(size=SMALL_SIZE), horizontal="center")),
        ]
        formats += _flag_formats(flags, top, left, {
            FLAG_FORECAST: Style(font=Font(italic=True, color=FORECAST_COLOR), fill="F2F2F2"),
            FLAG_MIXED: Style(font=Font(bold=True, italic=True, color=MIXED_COLOR), fill="E4DFEC"),
        })
        areas |= {"cohorts": Area(top, 1, top + n_rows - 1, 1), "values": value_area}
    return SheetLayout(
        name=name, kind="flags", owner=OWNER, title=title, segment=segment,
        del_type=del_types[0] if len(del_types) == 1 else None, blocks=tuple(blocks), formats=tuple(formats),
        column_widths={1: COHORT_WIDTH} | {left + i: FLAG_WIDTH for i in range(n_cols)},
        row_heights={1: 24.0}, freeze=(top, left), tab_color=TAB_COLORS["flags"],
        page=Page(repeat_rows=(header_row, header_row), repeat_cols=(1, 1),
                  print_area=Area(1, 1, max(top + n_rows - 1, header_row), last_col)),
        areas=areas,
    )


# ------------------------------------------------------------------------------------------------ curves


def illustrative_note(result: DelResult, segment: str) -> str:
    """The line a sheet of ``segment`` (or the Portfolio) shows when its forecast is ILLUSTRATIVE (a chain resting
    on too few MOB steps, engine.diagnostics.short_history); "" when it is not."""
    if not result.is_illustrative(segment):
        return ""
    where = f"see {FIXED_SHEETS['summary']}, Caveats"
    if segment == PORTFOLIO:
        n = int(result.short_history.sum())
        of_all = f"{n} of {counted(len(result.segments), 'segment')}"
        return f"ILLUSTRATIVE: {too_few_steps(of_all, n)} ({where})"
    steps = int(result.transitions.steps_of_data[result.segments.index(segment)])
    if not steps:
        return f"ILLUSTRATIVE: no MOB step of data of its own: the chain is the other segments' ({where})"
    return (f"ILLUSTRATIVE: the chain rests on {counted(steps, 'MOB step')} of data, repeated to MOB "
            f"{int(result.stats.max_mob)} ({where})")


def curve_cohorts(n: int, k: int = MAX_CURVES) -> np.ndarray:
    """Row positions of up to k cohorts spread evenly from the oldest to the newest."""
    return np.unique(np.linspace(0, n - 1, min(k, n)).round().astype(np.int64)) if n else np.empty(0, np.int64)


def curves_sheet(result: DelResult, segment: str, name: str, *, wide: WideTables | None = None) -> SheetLayout:
    """A line chart per DEL type: one colour per cohort, actual solid, forecast dashed from the last actual, and
    with forecast intervals on, the interval's edges (P10 and P90 by default) dotted beside the forecast: a fan."""
    wide = wide or result.wide
    title = f"{clean_text(segment)} DEL curves by cohort"
    chart_rows = 4
    chart_height_rows = math.ceil(CHART_HEIGHT_CM / (15 / 72 * 2.54)) + 1  # default rows are 15 pt
    data_top = chart_rows + chart_height_rows * len(DEL_TYPES) + 1
    mobs = result.mobs
    n_mob = len(mobs)
    intervals = result.intervals
    fan = "" if intervals is None else (
        f" Dotted: the forecast's P{intervals.levels[0] * 100:g} and P{intervals.levels[-1] * 100:g} "
        f"({(intervals.levels[-1] - intervals.levels[0]):.0%} of simulated outcomes fall between them).")
    blocks = [
        cell_block(1, 1, title),
        cell_block(2, 1, "One line per cohort (oldest to newest, evenly spaced): solid = actual, dashed = forecast "
                         f"(the expected path).{fan}"),
        cell_block(data_top, 1, "Chart data"),
    ]
    formats = [Format(Area.cell(1, 1), SUBTITLE_STYLE), Format(Area.cell(2, 1), NOTE_STYLE),
               Format(Area.cell(data_top, 1), SUBTITLE_STYLE)]
    note = illustrative_note(result, segment)
    if note:  # row 3 is free: the charts start at row 4
        blocks.append(cell_block(3, 1, note))
        formats.append(Format(Area.cell(3, 1), ILLUSTRATIVE_STYLE))
    header_row, first = data_top + 1, data_top + 2
    last = first + n_mob - 1
    blocks.append(Block(header_row, 1, text_grid([["MOB"]])))
    blocks.append(Block(first, 1, text_grid([[int(m)] for m in mobs])))
    formats.append(Format(Area(first, 1, last, 1), ROW_HEADER_STYLE))
    charts, col = [], 2
    for d, del_type in enumerate(DEL_TYPES):
        mixed = wide(segment, del_type, "mixed")
        flags = wide(segment, del_type, "flags").to_numpy(dtype=object, na_value="")
        values = mixed.to_numpy(dtype=np.float64, na_value=np.nan)
        edges = [] if intervals is None else [
            (f"P{level * 100:g}", result.quantile_wide(segment, del_type, level).to_numpy(dtype=np.float64))
            for level in (intervals.levels[0], intervals.levels[-1])]
        series, headers, columns = [], [], []
        for i, row in enumerate(curve_cohorts(len(mixed))):
            actual = flags[row] == FLAG_ACTUAL
            # The dashed line starts at the last actual point so the two pieces of a cohort join up.
            joins = np.zeros_like(actual)
            joins[:-1] = actual[:-1] & ~actual[1:]
            cohort = str(mixed.index[row])
            color = CURVE_COLORS[i % len(CURVE_COLORS)]
            for suffix, mask, dashed in (("actual", actual, False), ("forecast", ~actual | joins, True)):
                headers.append(f"{cohort} {suffix}")
                columns.append(np.where(mask, values[row], np.nan))
                area = Area(first, col + len(columns) - 1, last, col + len(columns) - 1)
                series.append(Series(cohort if not dashed else f"{cohort} forecast", area, color, dashed,
                                     in_legend=not dashed))
            for label, edge in edges:
                headers.append(f"{cohort} {label}")
                columns.append(np.where(~actual | joins, edge[row], np.nan))
                area = Area(first, col + len(columns) - 1, last, col + len(columns) - 1)
                series.append(Series(f"{cohort} {label}", area, color, in_legend=False, band=True))
        if columns:
            blocks.append(Block(header_row, col, text_grid([headers])))
            blocks.append(Block(first, col, np.column_stack(columns)))
            formats.append(Format(Area(first, col, last, col + len(columns) - 1), Style(number_format=PERCENT)))
            charts.append(LineChart(
                title=f"{clean_text(segment)} {del_type}",
                anchor=(chart_rows + d * chart_height_rows, 1), categories=Area(first, 1, last, 1),
                series=tuple(series), y_title=del_type,
            ))
        col += len(columns)
    formats.append(Format(Area(header_row, 1, header_row, max(col - 1, 1)), HEADER_STYLE))
    widths = {1: 8.0} | {c: 16.0 for c in range(2, col)}
    return SheetLayout(
        name=name, kind="curves", owner=OWNER, title=title, segment=segment, blocks=tuple(blocks),
        formats=tuple(formats),
        charts=tuple(charts), column_widths=widths, row_heights={1: 24.0}, tab_color=TAB_COLORS["curves"],
        # Printing the charts only: the wide data block would shrink them to fit the page width.
        page=Page(landscape=False, fit_height=1,
                  print_area=Area(1, 1, data_top - 1, max(
                      columns_spanning(widths, cm_to_units(CHART_WIDTH_CM + 0.5)),
                      columns_spanning(widths, text_width(title, 14))))),
        areas={"data": Area(header_row, 1, last, max(col - 1, 1))},
    )


# ---------------------------------------------------------------------------------------------- matrices


def _notes(first_row: int, lines: Sequence[str]) -> tuple[list[Block], list[Format]]:
    """Short explanatory lines under a title, one per row (a long single line would widen the printed page)."""
    if not lines:
        return [], []
    area = Area(first_row, 1, first_row + len(lines) - 1, 1)
    return [Block(first_row, 1, text_grid([[line] for line in lines]))], [Format(area, NOTE_STYLE)]


def matrix_notes(config) -> tuple[str, ...]:
    """The Matrices sheet's reading notes, for the run's weighting, estimator and cohort factors."""
    balance = config.transitions.weighting == "balance"
    bayes = config.transitions.estimator == "bayes"
    notes = ["As applied in the forecast (after calibration). Row = state at MOB m, column = state at MOB m+1;",
             ("each row sums to the share of the balance kept (amortisation and prepayment leave the book), under "
              "100%." if balance else "each row sums to 100%.") + " n_obs = loans seen in the row's state at m and m+1.",
             ("source: estimated = own data shrunk toward its prior (its neighbouring MOBs and the other segments); "
              "fallback = no own data, the prior alone; tail = last estimated step(s)." if bayes else
              "source: estimated = own data; fallback = pooled segments or nearest MOB; tail = last estimated step.")]
    if config.calibration.cohort_factor != "none":
        notes.append("Each cohort's roll-forward moves are scaled by its own factor on top (sheet Calibration).")
    return tuple(notes)


def matrices_sheet(result: DelResult, segment: str, name: str) -> SheetLayout:
    """Every MOB step's applied transition matrix as a block: from-state down, to-state across, in percent."""
    s = result.segments.index(segment)
    states = list(result.stats.states)
    k = len(states)
    matrices = result.transition_matrix[s]  # (M, K, K)
    n_obs = result.transitions.n_obs[s]  # (M, K)
    source = np.asarray(["estimated", "fallback", "tail"], dtype=object)[result.transitions.source[s]]
    n_steps = matrices.shape[0]
    notes = matrix_notes(result.config)
    header_row = 2 + len(notes)
    top = header_row + 1
    stride = k + 2  # label row, K rows, a blank row
    title = f"{clean_text(segment)} transition matrices"
    last_col = k + 3
    note_blocks, note_formats = _notes(2, notes)
    blocks = [cell_block(1, 1, title), *note_blocks,
              Block(header_row, 1, text_grid([["From \\ to", *states, "n_obs", "source"]]))]
    formats = [Format(Area.cell(1, 1), SUBTITLE_STYLE), *note_formats,
               Format(Area(header_row, 1, header_row, last_col), HEADER_STYLE)]
    n_rows = n_steps * stride
    areas = {}
    color_scales: tuple[ColorScale, ...] = ()
    if n_steps:
        grid = np.full((n_rows, last_col), None, dtype=object)
        probs = np.full((n_rows, k), np.nan)
        label_rows = np.arange(n_steps) * stride
        grid[label_rows, 0] = [f"MOB {m} → {m + 1}" for m in range(n_steps)]
        body = (label_rows[:, None] + 1 + np.arange(k)).ravel()
        grid[body, 0] = states * n_steps
        probs[body] = matrices.reshape(-1, k)
        grid[body, k + 1] = n_obs.reshape(-1).astype(np.int64).tolist()
        grid[body, k + 2] = source.reshape(-1).tolist()
        blocks += [Block(top, 1, grid[:, :1]), Block(top, 2, probs), Block(top, k + 2, grid[:, k + 1:])]
        end = top + n_rows - 2
        prob_area = Area(top, 2, end, k + 1)
        formats += [Format(prob_area, Style(number_format=PERCENT, horizontal="center")),
                    Format(Area(top, k + 2, end, k + 2), Style(number_format="#,##0")),
                    Format(Area(top, k + 3, end, k + 3), Style(horizontal="center"))]
        for r in label_rows:
            formats.append(Format(Area(top + r, 1, top + r, last_col),
                                  Style(font=Font(bold=True, color=TITLE_COLOR), border=Border(bottom=Edge("thin")))))
        formats += [Format(Area(top + r + 1, 1, top + r + k, 1), ROW_HEADER_STYLE) for r in label_rows]
        fell_back = np.zeros(n_rows, dtype=bool)
        fell_back[body] = source.reshape(-1) != "estimated"
        for _, r0, r1 in runs(fell_back[None, :]):
            formats.append(Format(Area(top + r0, k + 3, top + r1, k + 3),
                                  Style(font=Font(color=WARN_COLOR, bold=True))))
        color_scales = (ColorScale(prob_area, MATRIX_SCALE_COLORS),)
        areas = {"probabilities": prob_area}
    return SheetLayout(
        name=name, kind="matrices", owner=OWNER, title=title, segment=segment, blocks=tuple(blocks),
        formats=tuple(formats),
        color_scales=color_scales,
        column_widths={1: 14.0} | {c: 10.0 for c in range(2, k + 2)} | {k + 2: 9.0, k + 3: 11.0},
        row_heights={1: 24.0}, freeze=(top, 2), tab_color=TAB_COLORS["matrices"],
        page=Page(landscape=False, repeat_rows=(header_row, header_row),
                  print_area=Area(1, 1, max(top + n_rows - 2, header_row), last_col),
                  # Each step's matrix whole on a page, under its "MOB m → m+1" label.
                  keep_together=tuple((top + r, top + r + k) for r in range(0, n_rows, stride))),
        areas=areas,
    )


# ------------------------------------------------------------------------------------------- calibration

CALIBRATION_COLUMNS = (("segment", "Segment", None, 22.0), ("mob", "MOB", "0", 7.0),
                       ("k", "k", "0.0000", 9.0), ("k_unclipped", "k unclipped", "0.0000", 12.0),
                       ("n_cohorts_used", "Cohorts used", "#,##0", 13.0),
                       ("expected_mean", "Expected DEL", PERCENT, 13.0), ("actual_mean", "Actual DEL", PERCENT, 12.0))


COHORT_FACTOR_COLUMNS = (("segment", "Segment", None, 22.0), ("cohort", "Cohort", None, 9.0),
                         ("factor", "Cohort factor", "0.000", 9.0), ("factor_log_sd", "Factor log-sd", "0.000", 9.0),
                         ("credibility", "Credibility", "0.00", 11.0),
                         ("own_factor", "Own factor", "0.000", 10.0),
                         ("vintage_factor", "Vintage factor", "0.000", 10.0),
                         ("vintage_credibility", "Vintage credibility", "0.00", 11.0),
                         ("expected_moves", "Expected moves", "#,##0.0", 12.0), ("n_loans", "Loans", "#,##0", 9.0))


def _column_blocks(table, columns, top: int, first_col: int) -> tuple[list[Block], list[Format]]:
    """One block per column of a tidy table (text columns as text), from (top, first_col)."""
    blocks, formats = [], []
    for j, (column, _label, number_format, _width) in enumerate(columns, start=first_col):
        if number_format is None:
            blocks.append(Block(top, j, text_grid([[s] for s in table[column].astype(str)])))
        else:
            blocks.append(Block(top, j, table[column].to_numpy(dtype=np.float64, na_value=np.nan).reshape(-1, 1)))
            formats.append(Format(Area(top, j, top + len(table) - 1, j), Style(number_format=number_format)))
    return blocks, formats


def calibration_sheet(result: DelResult) -> SheetLayout:
    cal = result.config.calibration
    table = result.calibration_factors
    cohorts = result.cohort_factors if result.factors.cohort is not None else None
    title = "Calibration factors (step-wise)"
    n = len(table)
    lines = [
        "k at MOB m scales the bad-state probabilities of step m-1 → m, so that one step",
        f"from the actual state matches the actual {cal.del_type} (mean over the cohorts used).",
        f"Mode {cal.mode}; k is clipped to [{cal.k_clip[0]}, {cal.k_clip[1]}] (clipped rows in orange).",
    ]
    if not n:
        lines.append("No factors: calibration is off, or no cohort had two consecutive actual months.")
    if cohorts is not None:
        lines.append("Right: cohort factors (vintage quality): each cohort's roll-forward moves are scaled by")
        lines.append("credibility x own factor + (1 - credibility) x vintage factor (the cohort over all segments),")
        lines.append(f"clipped to [{cal.cohort_clip[0]}, {cal.cohort_clip[1]}].")
        if cal.cohort_credibility == "auto":
            rho = result.factors.cohort.vintage_correlation
            how = "estimated" if cal.vintage_correlation == "auto" else "[calibration] vintage_correlation"
            lines.append(f"Vintage factors borrow from neighbouring cohorts: levels one month apart correlate "
                         f"{rho:.2f} ({how}; 0: each vintage alone).")
            lines.append("Factor log-sd: how unsure the factor is (log scale); the forecast intervals draw it.")
    header_row = 2 + len(lines)
    top = header_row + 1
    last_col = len(CALIBRATION_COLUMNS)
    note_blocks, note_formats = _notes(2, lines)
    blocks = [cell_block(1, 1, title), *note_blocks,
              Block(header_row, 1, text_grid([[c[1] for c in CALIBRATION_COLUMNS]]))]
    formats = [Format(Area.cell(1, 1), SUBTITLE_STYLE), *note_formats,
               Format(Area(header_row, 1, header_row, last_col), HEADER_STYLE)]
    widths = {j: c[3] for j, c in enumerate(CALIBRATION_COLUMNS, start=1)}
    if n:
        more_blocks, more_formats = _column_blocks(table, CALIBRATION_COLUMNS, top, 1)
        blocks += more_blocks
        formats += more_formats
        clipped = (table["k"] != table["k_unclipped"]).to_numpy()
        for _, r0, r1 in runs(clipped[None, :]):
            formats.append(Format(Area(top + r0, 3, top + r1, 4), Style(font=Font(bold=True, color=WARN_COLOR))))
    table_area = Area(header_row, 1, header_row + n, last_col)
    areas = {"table": table_area}
    print_col, print_row = last_col, table_area.last_row
    if cohorts is not None:
        first = last_col + 2  # one empty column between the tables
        print_col = first + len(COHORT_FACTOR_COLUMNS) - 1
        blocks.append(Block(header_row, first, text_grid([[c[1] for c in COHORT_FACTOR_COLUMNS]])))
        formats.append(Format(Area(header_row, first, header_row, print_col), HEADER_STYLE))
        if len(cohorts):
            more_blocks, more_formats = _column_blocks(cohorts, COHORT_FACTOR_COLUMNS, top, first)
            blocks += more_blocks
            formats += more_formats
        areas["cohort_factors"] = Area(header_row, first, header_row + len(cohorts), print_col)
        print_row = max(print_row, header_row + len(cohorts))
        widths |= {first - 1: 3.0} | {j: c[3] for j, c in enumerate(COHORT_FACTOR_COLUMNS, start=first)}
    return SheetLayout(
        name=FIXED_SHEETS["calibration"], kind="calibration", owner=OWNER, title=title, blocks=tuple(blocks),
        formats=tuple(formats), column_widths=widths,
        row_heights={1: 24.0}, freeze=(top, 1), tab_color=TAB_COLORS["calibration"],
        # Both tables side by side on one A3 page across: split over two A4 pages, a page would start inside the
        # cohort table, without its Segment and Cohort columns.
        page=Page(landscape=cohorts is not None, paper="A3" if cohorts is not None else "A4",
                  repeat_rows=(header_row, header_row),
                  print_area=Area(1, 1, print_row, print_col)),
        autofilter=table_area, areas=areas,
    )


# ------------------------------------------------------------------------------------------------ run info

RUN_INFO_ITEMS = (("package_version", "Package version"), ("input", "Input file"), ("config_file", "Config file"),
                  ("rows", "Rows read"),
                  ("fingerprint", "Input fingerprint"), ("run_at", "Run at"), ("run_seconds", "Run time (s)"),
                  ("segments", "Segments"), ("cohorts", "Cohorts"))
KIND_DESCRIPTIONS = {
    "summary": "as-of month, scope, key figures, caveats and these contents",
    "mixed": "{del_type} by cohort and MOB: actual where observed, forecast after the red step",
    "curves": "DEL30/60/90 curves of selected cohorts (charts)",
    "flags": "ACTUAL / FORECAST{mixed} of each cell of the {del_type} sheets, same cell addresses",
    "matrices": "transition matrices as applied, one block per MOB step",
    "calibration": "step-wise calibration factors k by segment and MOB",
    "run_info": "this sheet: what was run, on what, with which settings",
}
RUN_INFO_WIDTH = 76.0  # with column A, one portrait page across


def _wrapped_height(text: str, width: float) -> float:
    lines = sum(max(1, math.ceil(len(line) / (width * 1.1))) for line in text.split("\n"))
    return 15.0 * lines


def describe(result: DelResult, layout: SheetLayout) -> str:
    """What a sheet of the report shows, in a line (the contents of Summary and Run info)."""
    what = KIND_DESCRIPTIONS[layout.kind].format(
        del_type=layout.del_type or "/".join(DEL_TYPES), mixed=" / MIXED" if layout.segment == PORTFOLIO else "")
    return what if layout.segment is None else f"{_segment_label(result, layout.segment)}: {what}"


def run_info_sheet(result: DelResult, index: Sequence[SheetLayout]) -> SheetLayout:
    info = result.run_info
    cfg = result.config
    rows: list[tuple[object, object, Style | None]] = []
    for key, label in RUN_INFO_ITEMS:
        if key == "config_file" and key not in info:  # a config given as values (the ribbon, Python), not a file
            continue
        value = info.get(key, "")
        if key == "segments":
            value = f"{len(result.segments)}: " + ", ".join(result.segments)
        rows.append((label, value, Style(number_format="#,##0") if key == "rows" else
                     Style(number_format="0.000") if key == "run_seconds" else None))
    rows += [("Max MOB", int(result.stats.max_mob), None),
             ("Calibration", f"{cfg.calibration.mode}, fitted on {cfg.calibration.del_type}, "
                             f"k clipped to [{cfg.calibration.k_clip[0]}, {cfg.calibration.k_clip[1]}]", None),
             ("Portfolio", f"{cfg.portfolio.aggregation} of the segments present in each cohort", None),
             ("Model", settings_text(cfg), None),
             ("Calendar level", result.period.note(cfg) if result.period is not None
              else 'none ([calibration] period_level = "none")', None)]
    if info.get("backtest"):
        rows.append(("Backtest", info["backtest"], None))

    title = "Run info"
    blocks = [cell_block(1, 1, title)]
    formats = [Format(Area.cell(1, 1), SUBTITLE_STYLE)]
    heights: dict[int, float] = {1: 24.0}
    row = 3

    def section(heading: str, header: Sequence[str]) -> None:
        nonlocal row
        blocks.append(cell_block(row, 1, heading))
        formats.append(Format(Area.cell(row, 1), SECTION_STYLE))
        row += 1
        if header:
            blocks.append(Block(row, 1, text_grid([list(header)])))
            formats.append(Format(Area(row, 1, row, len(header)), HEADER_STYLE.over(Style(horizontal="left"))))
            row += 1

    section("Run", ("Item", "Value"))
    for label, value, style in rows:
        blocks.append(Block(row, 1, text_grid([[label, value]])))
        long = isinstance(value, str) and len(value) > RUN_INFO_WIDTH
        # A wrapped value starts at the top of its tall row: its label too, or it reads as the row above's.
        formats.append(Format(Area.cell(row, 1), Style(font=Font(bold=True), vertical="top" if long else None)))
        formats.append(Format(Area.cell(row, 2), (style or Style()).over(Style(horizontal="left", wrap=long or None,
                                                                                 vertical="top" if long else None))))
        if long:
            heights[row] = _wrapped_height(value, RUN_INFO_WIDTH)
        row += 1
    row += 1

    section(f"Warnings ({len(result.warnings)}): validation findings, thin or incomplete data, transition rows that fell back",
            ("#", "Warning"))
    for i, text in enumerate(result.warnings or ("none",), start=1):
        blocks.append(Block(row, 1, text_grid([[i if result.warnings else "", text]])))
        formats.append(Format(Area.cell(row, 2), Style(wrap=True, vertical="top",
                                                       font=Font(color=WARN_COLOR) if result.warnings else None)))
        formats.append(Format(Area.cell(row, 1), Style(vertical="top", horizontal="left")))
        heights[row] = _wrapped_height(text, RUN_INFO_WIDTH)
        row += 1
    row += 1

    section("Sheets", ("Sheet", "Contents"))
    for layout in [*index, SheetLayout(name=FIXED_SHEETS["run_info"], kind="run_info", title=title, owner=OWNER)]:
        blocks.append(Block(row, 1, text_grid([[layout.name, describe(result, layout)]])))
        formats.append(Format(Area(row, 1, row, 2), Style(vertical="top")))  # a long description wraps
        row += 1
    row += 1

    section("Config used (TOML)", ())
    config_text = info.get("config") or cfg.to_toml()
    lines = config_text.rstrip("\n").split("\n")
    blocks.append(Block(row, 2, text_grid([[line] for line in lines])))
    formats.append(Format(Area(row, 2, row + len(lines) - 1, 2), Style(font=Font(name="Consolas", size=10))))
    row += len(lines)

    return SheetLayout(
        name=FIXED_SHEETS["run_info"], kind="run_info", owner=OWNER, title=title, blocks=tuple(blocks),
        formats=tuple(formats),
        column_widths={1: 26.0, 2: RUN_INFO_WIDTH}, row_heights=heights, tab_color=TAB_COLORS["run_info"],
        page=Page(landscape=False),
    )


# ------------------------------------------------------------------------------------------------ the book


def build_layouts(result: DelResult) -> list[SheetLayout]:
    """Every sheet of the report, in workbook order.

    Portfolio first, then each segment: the DEL30, DEL60 and DEL90 mixed sheets and the curves sheet. Then the
    companions: the flags of the mixed sheets (one sheet per segment, as the three DEL types share their
    flags), the transition matrices per segment, the calibration factors and Run info.
    """
    names = sheet_names(result)
    # Each wide table is read by several sheets; the frames are only read, never changed.
    wide = functools.lru_cache(maxsize=None)(result.wide)
    front, flags = [], []
    for segment in result.sheet_segments:
        tables = [wide(segment, d, "flags").to_numpy(dtype=object, na_value="") for d in DEL_TYPES]
        shared = all(np.array_equal(t, tables[0]) for t in tables[1:])
        groups = [DEL_TYPES] if shared else [(d,) for d in DEL_TYPES]
        for group in groups:
            flags_name = names[(segment, "flags", None)] if shared else names[(segment, "flags_by_del", group[0])]
            mixed_names = [names[(segment, "mixed", d)] for d in group]
            for del_type, mixed_name in zip(group, mixed_names, strict=True):
                front.append(mixed_sheet(result, segment, del_type, mixed_name, flags_name, wide=wide))
            flags.append(flags_sheet(result, segment, group, flags_name, mixed_names, wide=wide))
        front.append(curves_sheet(result, segment, names[(segment, "curves", None)], wide=wide))
    matrices = [matrices_sheet(result, s, names[(s, "matrices", None)]) for s in result.segments]
    layouts = [*front, *flags, *matrices, calibration_sheet(result)]
    summary_stub = SheetLayout(name=FIXED_SHEETS["summary"], kind="summary", title="Summary", owner=OWNER)
    layouts.append(run_info_sheet(result, [summary_stub, *layouts]))
    return book(summary_of(result, layouts, wide), layouts, result.as_of)


# ------------------------------------------------------------------------------------------------ summary

DEL_COLORS = {"DEL30": "1F77B4", "DEL60": "FF7F0E", "DEL90": "C00000"}
SUMMARY_MOBS = (6, 12)
THIN_LOANS = 100  # a cohort with fewer loans moves its DEL by a point or more with one loan
FLAG_WORDS = {FLAG_FORECAST: "forecast", FLAG_MIXED: "partly forecast (some segments observed)"}


def _latest_actual(flags: np.ndarray, mob: int) -> int | None:
    """The row of the newest cohort whose ``mob`` is actual, or None."""
    if mob >= flags.shape[1]:
        return None
    rows = np.flatnonzero(flags[:, mob] == FLAG_ACTUAL)
    return int(rows[-1]) if len(rows) else None


def _newest_forecast(table: pd.DataFrame, flags: np.ndarray) -> float:
    """The newest cohort's DEL at MOB 12 where it is a forecast; blank where the data have it already (it is then
    the newest observed figure beside it) or the table stops before MOB 12."""
    mob = SUMMARY_MOBS[-1]
    if not len(table) or mob >= table.shape[1] or flags[-1, mob] == FLAG_ACTUAL:
        return np.nan
    return table.iloc[-1, mob]


def _thin_rows_text(fell_back: int, few: int, cfg: Config) -> str:
    """The transition rows that rest on little or no data of their own, as the estimator treats them."""
    if cfg.transitions.estimator == "bayes":
        its = agree(fell_back, "its", "their")
        text = (f"{counted(fell_back, 'transition row')} {agree(fell_back, 'has', 'have')} no loans of {its} own and "
                f"{agree(fell_back, 'takes', 'take')} {its} prior (the segment's neighbouring MOBs and the other "
                f"segments)")
        return text + (f", and {few} more {agree(few, 'rests', 'rest')} on fewer than {cfg.transitions.min_count} "
                       f"loans ([transitions] min_count) and {agree(few, 'leans on its', 'lean on theirs')}"
                       if few else "")
    return (f"{counted(fell_back, 'transition row')} had too few loans and {agree(fell_back, 'borrows', 'borrow')} "
            f"pooled or nearby data" + (f", and {few} more {agree(few, 'rests', 'rest')} on fewer than "
                                        f"{cfg.transitions.min_count} loans ([transitions] min_count) as "
                                        f"{agree(few, 'it is', 'they are')}" if few else ""))


def _weighting_caveat(shown: str, other: str, mob: int, shown_values: np.ndarray, other_values: np.ndarray) -> str:
    """The Portfolio's weighting, and what the other would make of its DEL30 at ``mob`` averaged over the cohorts:
    quoted beside this one's only where the two print differently, as "0.00% instead of 0.00%" says nothing."""
    means = [float(np.mean(v[np.isfinite(v)])) if np.isfinite(v).any() else np.nan
             for v in (shown_values, other_values)]
    sentence = f"The Portfolio is the {AGGREGATION_WORDS[shown]}"
    if np.isnan(means).any():
        return sentence + "."
    mine, theirs = (f"{m:.2%}" for m in means)
    said = (f"averages the same over the cohorts ({mine})" if mine == theirs else
            f"averages {theirs} over the cohorts instead of {mine}")
    return f"{sentence}; {WEIGHT_WORDS[other]}, its DEL30 at MOB {mob} {said}."


def summary_of(result: DelResult, layouts: Sequence[SheetLayout], wide: WideTables | None = None) -> SheetLayout:
    """The report's Summary: scope, the Portfolio's DEL at MOB 6 and 12 (latest actual, newest cohort's forecast,
    both weightings), each segment's, DEL by vintage charts, caveats and the contents."""
    wide = wide or result.wide
    cfg = result.config
    sizes = result.cohort_sizes
    segments = sizes[sizes["segment"] != PORTFOLIO]
    max_mob = int(result.stats.max_mob)
    n_cohorts = len(result.cohorts)
    span = f"{result.cohorts[0]} to {result.cohorts[-1]}" if n_cohorts > 1 else "".join(result.cohorts)
    intro = [f"{result.stats.n_rows:,} rows of loan-month data: {int(segments['loans'].sum()):,} loans in "
             f"{counted(len(result.segments), 'segment')} ({listed_names(result.segments)}) and "
             f"{counted(n_cohorts, 'monthly cohort')} ({span}), observed to MOB "
             f"{int(sizes['last_actual_mob'].max())} and forecast to MOB {max_mob}."
             if n_cohorts else "No cohort in the data."]
    w = SheetWriter(row=summary_top(intro))
    tables = {d: wide(PORTFOLIO, d, "mixed") for d in DEL_TYPES}
    flags = wide(PORTFOLIO, DEL_TYPES[0], "flags").to_numpy(dtype=object, na_value="")
    cohorts = list(tables[DEL_TYPES[0]].index.astype(str))

    w.section("Portfolio DEL")
    rows = []  # (label, DEL values, whether forecasts enter it)
    for mob in SUMMARY_MOBS:
        at = _latest_actual(flags, mob)
        if at is not None:
            rows.append((f"MOB {mob}, newest cohort observed there ({cohorts[at]})",
                         [tables[d].iloc[at, mob] for d in DEL_TYPES], False))
    # The newest cohort's MOB 12 is a forecast in a book that keeps booking, but can be observed already (one
    # agency quarter followed for years); it is then the row above, so it is shown only when not all actual.
    newest_flag = flags[-1, SUMMARY_MOBS[-1]] if cohorts and max_mob >= SUMMARY_MOBS[-1] else FLAG_ACTUAL
    if newest_flag != FLAG_ACTUAL:
        rows.append((f"MOB {SUMMARY_MOBS[-1]}, newest cohort ({cohorts[-1]}), {FLAG_WORDS[newest_flag]}",
                     [tables[d].iloc[-1, SUMMARY_MOBS[-1]] for d in DEL_TYPES], True))
    other = "ead_weighted" if cfg.portfolio.aggregation == "mean" else "mean"
    views = {cfg.portfolio.aggregation: result.portfolio, other: result.portfolio_as(other)}
    for aggregation in (cfg.portfolio.aggregation, other):
        shown = "as shown" if aggregation == cfg.portfolio.aggregation else WEIGHT_WORDS[aggregation]
        rows.append((f"MOB {max_mob}, mean of cohorts, {shown}",
                     [float(np.nanmean(views[aggregation][d].mixed[:, max_mob])) if n_cohorts else np.nan
                      for d in DEL_TYPES], bool((flags[:, max_mob] != FLAG_ACTUAL).any()) if n_cohorts else False))
    key = pd.DataFrame([[label, *values] for label, values, _ in rows], columns=["figure", *DEL_TYPES])
    columns = [("figure", "Figure", None, 0), *[(d, d, PERCENT, 0) for d in DEL_TYPES]]
    if result.short_history.any():  # a figure holding forecasts of a short history says so (engine.diagnostics)
        key["note"] = ["ILLUSTRATIVE" if forecast else "" for _, _, forecast in rows]
        columns.append(("note", "Note", None, 0))
    area = w.table(key, columns)
    if "note" in key:
        w.formats.append(Format(Area(area.first_row + 1, area.last_col, area.last_row, area.last_col),
                                ILLUSTRATIVE_STYLE.over(Style(horizontal="center"))))

    w.section("Segments")
    by_segment = []
    steps = result.transitions.steps_of_data
    for s_idx, segment in enumerate(result.segments):
        part = segments[segments["segment"] == segment]
        table = wide(segment, "DEL30", "mixed")
        seg_flags = wide(segment, "DEL30", "flags").to_numpy(dtype=object, na_value="")
        at = _latest_actual(seg_flags, SUMMARY_MOBS[-1])
        label = clean_text(segment) + (" (ILLUSTRATIVE)" if result.short_history[s_idx] else "")
        by_segment.append((label, len(part), int(part["loans"].sum()), float(part["ead_mob0"].sum()),
                           np.nan if at is None else table.iloc[at, SUMMARY_MOBS[-1]],
                           "" if at is None else str(table.index[at]),
                           _newest_forecast(table, seg_flags), int(steps[s_idx])))
    frame = pd.DataFrame(by_segment, columns=["segment", "cohorts", "loans", "ead", "latest", "cohort", "newest",
                                              "basis"])
    w.table(frame, [("segment", "Segment", None, 0), ("cohorts", "Cohorts", "0", 0), ("loans", "Loans", "#,##0", 0),
                    ("ead", "EAD at MOB 0", "#,##0", 0),
                    ("latest", f"DEL30 MOB {SUMMARY_MOBS[-1]}, newest observed", PERCENT, 0),
                    ("cohort", "Observed cohort", None, 0),
                    ("newest", f"DEL30 MOB {SUMMARY_MOBS[-1]}, newest cohort (forecast; blank: observed)", PERCENT, 0),
                    ("basis", "MOB steps of data", "0", 0)])

    # DEL at MOB 6 and 12 by vintage: a chart each, actual solid, forecast dashed; their data below the contents.
    chart_height = 7.5
    anchors = []
    for mob in SUMMARY_MOBS:
        if mob <= max_mob and cohorts:
            w.section(f"Portfolio DEL at MOB {mob} by cohort")
            anchors.append((mob, w.row))
            w.row += chart_rows(chart_height)
    w.section("How to read")
    for d in DEL_TYPES:
        w.notes([f"{d} at MOB m = the cohort's EAD at MOB m in {', '.join(cfg.buckets.bad(d))}, divided by its "
                 f"EAD at MOB 0 (balance-based)."])
    w.notes(["DEL sheets: upright = actual, italic grey = forecast, purple = mixed (Portfolio: some segments "
             "actual); the red step is each cohort's last actual month. Beside each table: the cohort's loans, EAD "
             "at MOB 0 and last actual MOB."])
    thin = int((segments["loans"] < THIN_LOANS).sum())
    # Live rows only: an absorbing state's row is the identity whatever the data.
    live = ~absorbing_mask(cfg)
    source = result.transitions.source[..., live]
    fell_back, tail = int((source == FALLBACK).sum()), int((source == TAIL).sum())
    # Rows estimated from fewer loans than min_count: under "bayes" they are shrunk toward their prior, not replaced,
    # so they are not fallback rows, yet they are thin (the caveat had counted 30 rows where 182 were).
    own = result.transitions.n_obs[..., live]
    few = int(((source != FALLBACK) & (source != TAIL) & (own > 0) & (own < cfg.transitions.min_count)).sum())
    caveats = [*([result.illustrative + "."] if result.illustrative else []),
               _weighting_caveat(cfg.portfolio.aggregation, other, max_mob,
                                 *(views[a]["DEL30"].mixed[:, max_mob] if n_cohorts else np.empty(0)
                                   for a in (cfg.portfolio.aggregation, other))),
               "After each cohort's red step the figures are forecasts: the transition matrices of all cohorts, "
               "applied from the cohort's last actual month.",
               f"Thin data: {thin} of {counted(len(segments), 'segment cohort')} {agree(thin, 'has', 'have')} fewer "
               f"than {THIN_LOANS} loans (one loan "
               f"moves their DEL by a point or more); {_thin_rows_text(fell_back, few, cfg)}"
               + (f"; {counted(tail, 'row')} past the last MOB with data {agree(tail, 'repeats', 'repeat')} the last "
                  f"estimated steps (the tail)." if tail else "."),
               *([(f"Reporting months differed beyond chance (a calendar effect, e.g. a recession): the forecast "
                   f"carries the last {cfg.calibration.period_months} months' level, {result.period.carried:.2f}, "
                   f"over its whole horizon: too high if that level ends sooner, too low if it grows.")]
                 if result.period is not None and result.period.applied else []),
               f"{counted(len(result.warnings), 'warning')} on sheet "
               f"'{FIXED_SHEETS['run_info']}'. Forecast accuracy against simple benchmarks: the Backtest (ribbon "
               f"button or command line) writes its own summary."]
    data = SheetWriter(row=summary_top(intro))
    left = DATA_COLUMN
    data.text("Chart data", SECTION_STYLE, left)
    header_row = data.row
    columns, heads = [], ["Cohort"]
    for mob, anchor in anchors:
        series = []
        for d in DEL_TYPES:
            values = tables[d].iloc[:, mob].to_numpy(dtype=np.float64)
            actual = flags[:, mob] == FLAG_ACTUAL
            joins = np.zeros_like(actual)
            joins[:-1] = actual[:-1] & ~actual[1:]
            for kind, mask, dashed in (("actual", actual, False), ("forecast", ~actual | joins, True)):
                columns.append(np.where(mask, values, np.nan))
                heads.append(f"{d} MOB {mob} {kind}")
                c = left + len(heads) - 1
                series.append(Series(d if not dashed else f"{d} forecast",
                                     Area(header_row + 1, c, header_row + len(cohorts), c), DEL_COLORS[d], dashed,
                                     in_legend=not dashed))
        w.charts.append(LineChart(title=f"Portfolio DEL at MOB {mob} by cohort (dashed: forecast)",
                                  anchor=(anchor, 1),
                                  categories=Area(header_row + 1, left, header_row + len(cohorts), left),
                                  series=tuple(series), x_title="Cohort", y_title="DEL", y_format="0.0%",
                                  width_cm=24.0, height_cm=chart_height))
    data.blocks.append(Block(header_row, left, text_grid([heads])))
    data.formats.append(Format(Area(header_row, left, header_row, left + len(heads) - 1), HEADER_WRAP_STYLE))
    if columns:
        data.blocks.append(Block(header_row + 1, left, text_grid([[c] for c in cohorts])))
        data.blocks.append(Block(header_row + 1, left + 1, np.column_stack(columns)))
        data.formats.append(Format(Area(header_row + 1, left + 1, header_row + len(cohorts), left + len(heads) - 1),
                                   Style(number_format=PERCENT)))
    summary = summary_sheet(OWNER, "DEL report: summary", result.as_of, intro, w, layouts, caveats=caveats,
                            what={layout.name: describe(result, layout) for layout in layouts})
    return dataclasses.replace(summary, blocks=summary.blocks + tuple(data.blocks),
                               formats=summary.formats + tuple(data.formats))
