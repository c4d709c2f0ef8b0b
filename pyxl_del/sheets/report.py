"""The DEL report's sheets: a DelResult as layouts (values, formats, marks, charts), with no file I/O.

`build_layouts(result)` returns plain dataclasses (pyxl_del.sheets.layout); `pyxl_del.excel.render` writes them into an
openpyxl workbook (the CLI's .xlsx, the ribbon's workbook). Nothing here imports openpyxl or xlwings.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from pyxl_del.engine.config import DEL_TYPES
from pyxl_del.engine.data import PORTFOLIO
from pyxl_del.engine.pipeline import DelResult
from pyxl_del.sheets.layout import (
    CHART_HEIGHT_CM,
    CHART_WIDTH_CM,
    CURVE_COLORS,
    FORECAST_COLOR,
    FORECAST_STYLE,
    HEADER_STYLE,
    MATRIX_SCALE_COLORS,
    MAX_SHEET_NAME,
    MIXED_COLOR,
    MIXED_STYLE,
    NOTE_STYLE,
    PERCENT,
    ROW_HEADER_STYLE,
    SECTION_STYLE,
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
    runs,
    text_grid,
    text_width,
    truncate,
    unique_stems,
    utf16_len,
)

TAB_COLORS = {"mixed": "1F4E78", "curves": "548235", "flags": "A6A6A6", "matrices": "A6A6A6",
              "calibration": "A6A6A6", "run_info": "404040"}
MOB_HEADER = '"MOB "0'
COHORT_WIDTH = 10.0
MOB_WIDTH = 8.5
FLAG_WIDTH = 10.5
MAX_CURVES = 6  # cohorts per DEL chart: more lines than this stop being readable
OWNER = "report"  # the owner of the report's sheets

FLAG_ACTUAL, FLAG_FORECAST, FLAG_MIXED = "ACTUAL", "FORECAST", "MIXED"

WideTables = Callable[[str, str, str], pd.DataFrame]  # DelResult.wide, or a cached stand-in


# Sheet-name suffixes by kind; "{n}" is the DEL threshold (30, 60, 90) of sheets made per DEL type. The flags
# are the same for the three DEL types (they say which months were observed), so one flags sheet per segment
# serves all three; "flags_by_del" names exist for the case where they differ.
SUFFIXES = {"mixed": "_DEL{n}", "curves": "_curves", "flags": "_flags", "flags_by_del": "_flags{n}",
            "matrices": "_matrices"}
FIXED_SHEETS = {"calibration": "Calibration", "run_info": "Run info"}


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


def _segment_label(result: DelResult, segment: str) -> str:
    if segment == PORTFOLIO:
        return f"Portfolio ({result.config.portfolio.aggregation.replace('_', '-')} of the segments)"
    return clean_text(segment)


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
    legend = [
        ("ACTUAL: upright", Style(font=Font(size=9))),
        ("FORECAST: italic grey", Style(font=Font(size=9, italic=True, color=FORECAST_COLOR))),
    ]
    if portfolio:
        legend.append(("MIXED (some segments actual): purple bold italic underlined",
                       Style(font=Font(size=9, bold=True, italic=True, color=MIXED_COLOR, underline="single"))))
    legend += [
        ("Red step: last ACTUAL month (right and bottom edge)", STEP_NOTE_STYLE),
        ("Colour: green low, yellow middle, red high", Style(font=Font(size=9))),
        (f"Flags of each cell: sheet '{flags_name}'", NOTE_STYLE),
    ]
    widths = {1: COHORT_WIDTH} | {left + i: MOB_WIDTH for i in range(n_cols)}
    legend_blocks, legend_formats, legend_end = legend_cells(legend, widths, last_col, top + n_rows + 1)
    blocks += legend_blocks
    formats += legend_formats
    # The printed page spans the table, or the title if that is wider; fit-to-width then scales to it.
    print_cols = max(last_col, columns_spanning(widths, text_width(blocks[0].values[0, 0], 20)))

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
            Format(value_area, Style(font=Font(size=9), horizontal="center")),
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


def curve_cohorts(n: int, k: int = MAX_CURVES) -> np.ndarray:
    """Row positions of up to k cohorts spread evenly from the oldest to the newest."""
    return np.unique(np.linspace(0, n - 1, min(k, n)).round().astype(np.int64)) if n else np.empty(0, np.int64)


def curves_sheet(result: DelResult, segment: str, name: str, *, wide: WideTables | None = None) -> SheetLayout:
    """A line chart per DEL type: one colour per cohort, actual solid, forecast dashed from the last actual."""
    wide = wide or result.wide
    title = f"{clean_text(segment)} DEL curves by cohort"
    chart_rows = 4
    chart_height_rows = math.ceil(CHART_HEIGHT_CM / (15 / 72 * 2.54)) + 1  # default rows are 15 pt
    data_top = chart_rows + chart_height_rows * len(DEL_TYPES) + 1
    mobs = result.mobs
    n_mob = len(mobs)
    blocks = [
        cell_block(1, 1, title),
        cell_block(2, 1, "One line per cohort (oldest to newest, evenly spaced): solid = actual, dashed = forecast."),
        cell_block(data_top, 1, "Chart data"),
    ]
    formats = [Format(Area.cell(1, 1), SUBTITLE_STYLE), Format(Area.cell(2, 1), NOTE_STYLE),
               Format(Area.cell(data_top, 1), SUBTITLE_STYLE)]
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


MATRIX_NOTES = (
    "As applied in the forecast (after calibration). Row = state at MOB m, column = state at MOB m+1;",
    "each row sums to 100%. n_obs = loans seen in the row's state at m and at m+1.",
    "source: estimated = own data; fallback = pooled segments or nearest MOB; tail = last estimated step.",
)
MATRIX_HEADER_ROW = 2 + len(MATRIX_NOTES)


def matrices_sheet(result: DelResult, segment: str, name: str) -> SheetLayout:
    """Every MOB step's applied transition matrix as a block: from-state down, to-state across, in percent."""
    s = result.segments.index(segment)
    states = list(result.stats.states)
    k = len(states)
    matrices = result.transition_matrix[s]  # (M, K, K)
    n_obs = result.transitions.n_obs[s]  # (M, K)
    source = np.asarray(["estimated", "fallback", "tail"], dtype=object)[result.transitions.source[s]]
    n_steps = matrices.shape[0]
    header_row = MATRIX_HEADER_ROW
    top = header_row + 1
    stride = k + 2  # label row, K rows, a blank row
    title = f"{clean_text(segment)} transition matrices"
    last_col = k + 3
    note_blocks, note_formats = _notes(2, MATRIX_NOTES)
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
                  print_area=Area(1, 1, max(top + n_rows - 2, header_row), last_col)),
        areas=areas,
    )


# ------------------------------------------------------------------------------------------- calibration

CALIBRATION_COLUMNS = (("segment", "Segment", None, 22.0), ("mob", "MOB", "0", 7.0),
                       ("k", "k", "0.0000", 9.0), ("k_unclipped", "k unclipped", "0.0000", 12.0),
                       ("n_cohorts_used", "Cohorts used", "#,##0", 13.0),
                       ("expected_mean", "Expected DEL", PERCENT, 13.0), ("actual_mean", "Actual DEL", PERCENT, 12.0))


def calibration_sheet(result: DelResult) -> SheetLayout:
    cal = result.config.calibration
    table = result.calibration_factors
    title = "Calibration factors (step-wise)"
    n = len(table)
    lines = [
        "k at MOB m scales the bad-state probabilities of step m-1 → m, so that one step",
        f"from the actual state matches the actual {cal.del_type} (mean over the cohorts used).",
        f"Mode {cal.mode}; k is clipped to [{cal.k_clip[0]}, {cal.k_clip[1]}] (clipped rows in orange).",
    ]
    if not n:
        lines.append("No factors: calibration is off, or no cohort had two consecutive actual months.")
    header_row = 2 + len(lines)
    top = header_row + 1
    last_col = len(CALIBRATION_COLUMNS)
    note_blocks, note_formats = _notes(2, lines)
    blocks = [cell_block(1, 1, title), *note_blocks,
              Block(header_row, 1, text_grid([[c[1] for c in CALIBRATION_COLUMNS]]))]
    formats = [Format(Area.cell(1, 1), SUBTITLE_STYLE), *note_formats,
               Format(Area(header_row, 1, header_row, last_col), HEADER_STYLE)]
    if n:
        for j, (column, _label, number_format, _width) in enumerate(CALIBRATION_COLUMNS, start=1):
            if column == "segment":
                blocks.append(Block(top, j, text_grid([[s] for s in table[column].astype(str)])))
            else:
                blocks.append(Block(top, j, table[column].to_numpy(dtype=np.float64, na_value=np.nan).reshape(-1, 1)))
                formats.append(Format(Area(top, j, top + n - 1, j), Style(number_format=number_format)))
        clipped = (table["k"] != table["k_unclipped"]).to_numpy()
        for _, r0, r1 in runs(clipped[None, :]):
            formats.append(Format(Area(top + r0, 3, top + r1, 4), Style(font=Font(bold=True, color=WARN_COLOR))))
    table_area = Area(header_row, 1, header_row + n, last_col)
    return SheetLayout(
        name=FIXED_SHEETS["calibration"], kind="calibration", owner=OWNER, title=title, blocks=tuple(blocks),
        formats=tuple(formats), column_widths={j: c[3] for j, c in enumerate(CALIBRATION_COLUMNS, start=1)},
        row_heights={1: 24.0}, freeze=(top, 1), tab_color=TAB_COLORS["calibration"],
        page=Page(landscape=False, repeat_rows=(header_row, header_row),
                  print_area=Area(1, 1, table_area.last_row, last_col)),
        autofilter=table_area, areas={"table": table_area},
    )


# ------------------------------------------------------------------------------------------------ run info

RUN_INFO_ITEMS = (("package_version", "Package version"), ("input", "Input file"), ("rows", "Rows read"),
                  ("fingerprint", "Input fingerprint"), ("run_at", "Run at"), ("run_seconds", "Run time (s)"),
                  ("segments", "Segments"), ("cohorts", "Cohorts"))
KIND_DESCRIPTIONS = {
    "mixed": "{del_type} by cohort and MOB: actual where observed, forecast after the red step",
    "curves": "DEL30/60/90 curves of selected cohorts (charts)",
    "flags": "ACTUAL / FORECAST{mixed} of each cell of the {del_type} sheets, same cell addresses",
    "matrices": "transition matrices as applied, one block per MOB step",
    "calibration": "step-wise calibration factors k by segment and MOB",
    "run_info": "this sheet: what was run, on what, with which settings",
}
RUN_INFO_WIDTH = 110.0


def _wrapped_height(text: str, width: float) -> float:
    lines = sum(max(1, math.ceil(len(line) / (width * 1.1))) for line in text.split("\n"))
    return 15.0 * lines


def run_info_sheet(result: DelResult, index: Sequence[SheetLayout]) -> SheetLayout:
    info = result.run_info
    cfg = result.config
    rows: list[tuple[object, object, Style | None]] = []
    for key, label in RUN_INFO_ITEMS:
        value = info.get(key, "")
        if key == "segments":
            value = f"{len(result.segments)}: " + ", ".join(result.segments)
        rows.append((label, value, Style(number_format="#,##0") if key == "rows" else
                     Style(number_format="0.000") if key == "run_seconds" else None))
    rows += [("Max MOB", int(result.stats.max_mob), None),
             ("Calibration", f"{cfg.calibration.mode}, fitted on {cfg.calibration.del_type}, "
                             f"k clipped to [{cfg.calibration.k_clip[0]}, {cfg.calibration.k_clip[1]}]", None),
             ("Portfolio", f"{cfg.portfolio.aggregation} of the segments present in each cohort", None)]

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
        formats.append(Format(Area.cell(row, 1), Style(font=Font(bold=True))))
        formats.append(Format(Area.cell(row, 2), (style or Style()).over(Style(horizontal="left"))))
        row += 1
    row += 1

    section(f"Warnings ({len(result.warnings)}): validation findings and transition rows that fell back",
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
        what = KIND_DESCRIPTIONS[layout.kind].format(
            del_type=layout.del_type or "/".join(DEL_TYPES), mixed=" / MIXED" if layout.segment == PORTFOLIO else "")
        if layout.segment is not None:
            what = f"{_segment_label(result, layout.segment)}: {what}"
        blocks.append(Block(row, 1, text_grid([[layout.name, what]])))
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
    layouts.append(run_info_sheet(result, layouts))
    return layouts
