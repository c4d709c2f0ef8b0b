"""The actions of the pyxl_del ribbon tab, for Excel (the buttons) and headless (``pyxl-del ribbon ACTION``).

Every button of the tab (xlsm/src/customUI.xml) carries a tag, and its one VBA callback (``PyxlDel.PyxlDelAction``)
runs ``pyxl_del.excel.ribbon.run_action('<tag>')`` through xlwings' RunPython. `pyxl_del.excel.buttons.BUTTONS` maps
each tag to a function of an `ActionContext` (a `pyxl_del.excel.workbook.Workbook` and the config file to use) that
returns an `Outcome`; so a new button needs an entry there and a tag in customUI.xml, no VBA. `run_action` runs one on the workbook the button was
clicked in (xlwings) and shows the outcome; `run_headless` runs the same function on a file (openpyxl), which is
then saved in place with its VBA project and ribbon.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path

import pandas as pd

from pyxl_del import __version__
from pyxl_del.engine.config import (
    CONFIG_FILE_NAME,
    LOGICAL_COLUMNS,
    Config,
    ConfigError,
    load_config,
)
from pyxl_del.engine.diagnostics import too_few_steps
from pyxl_del.engine.errors import counted, data_named, describe_error
from pyxl_del.engine.files import atomic_replace
from pyxl_del.engine.pipeline import DelResult, run
from pyxl_del.excel.buttons import BUTTONS, handler
from pyxl_del.excel.udf import locate_config
from pyxl_del.excel.workbook import (
    OpenpyxlBook,
    Ref,
    Workbook,
    WorkbookError,
    XlwingsBook,
)
from pyxl_del.sheets import report

log = logging.getLogger(__name__)

DATA_SHEET = "Data"  # the panel sheet of xlsm/pyxl_del.xlsm (xlsm/src/layout.toml)
#: Hidden workbook-level name: the range the last forecast read, when it was not the Data sheet.
SOURCE_NAME = "pyxl_del_source"
BACKTEST_ORIGINS = 6  # as-of months the Backtest button scores (the last usable ones)
VERSIONED_PACKAGES = ("xlwings", "pandas", "numpy", "pyarrow", "openpyxl", "pydantic", "scipy")


@dataclass(frozen=True)
class Outcome:
    """What an action did: a message for the user, the sheets it wrote, a file to open (Open config)."""

    message: str
    sheets: tuple[str, ...] = ()
    open_path: Path | None = None


@dataclass(frozen=True)
class ActionContext:
    book: Workbook
    config_path: Path | None  # None: the built-in defaults

    def config(self) -> Config:
        return load_config(self.config_path) if self.config_path is not None else Config()

    def config_file(self) -> Path:
        """The config file in use, else where a new one goes: next to the workbook (an unsaved one: the working
        folder)."""
        return self.config_path or (self.book.folder or Path.cwd()) / CONFIG_FILE_NAME

    def data_source(self) -> Ref:
        """The range of the last forecast if one was recorded, else the Data sheet."""
        return self.book.get_name(SOURCE_NAME) or Ref(DATA_SHEET)

    def names(self, source: Ref):
        """Inside this block a panel error names ``source`` (``Book.xlsx Data!A1:F500``), the range the user knows,
        not the DataFrame read from it."""
        return data_named(f"{self.book.name} {source}")

    def forecast(self, source: Ref, frame: pd.DataFrame) -> DelResult:
        """The engine's result on ``frame``, the rows read from ``source``."""
        with self.names(source):
            result = run(frame, self.config())
        # Run info names where the rows came from (the engine only saw a DataFrame).
        return replace(result, run_info={**result.run_info, "input": f"{self.book.name} {source}"})

    def write(self, layouts, what: str) -> Outcome:
        written = tuple(self.book.write_layouts(layouts))
        return Outcome(f"{what}: {sheets_written(len(written))}", written)


def sheets_written(n: int) -> str:
    return f"{counted(n, 'sheet')} written"


# ------------------------------------------------------------------------------------------------ actions


def run_forecast(ctx: ActionContext) -> Outcome:
    """Forecast the selected range (a table with a header row) or, with one cell selected, the Data sheet."""
    selected = ctx.book.selection()
    own = ctx.book.own_sheets()
    source = selected if selected is not None and selected.sheet not in own else Ref(DATA_SHEET)
    return _forecast(ctx, source)


def refresh_report(ctx: ActionContext) -> Outcome:
    """Forecast again the data the last forecast read (after editing the data or the config)."""
    return _forecast(ctx, ctx.data_source())


def _forecast(ctx: ActionContext, source: Ref) -> Outcome:
    result = ctx.forecast(source, ctx.book.read_frame(source))
    warned = f" ({counted(len(result.warnings), 'warning')}, on sheet 'Run info')" if result.warnings else ""
    # A forecast from too few months of data is marked where the officer looks first (engine.diagnostics).
    short = int(result.short_history.sum())
    of_all = f"{short} of {counted(len(result.segments), 'segment')}"
    illustrative = (f": ILLUSTRATIVE, {too_few_steps(of_all, short)} (sheet '{report.FIXED_SHEETS['summary']}', "
                    f"Caveats)" if short else "")
    outcome = ctx.write(report.build_layouts(result),
                        f"Forecast of {result.stats.n_rows:,} rows from {source}{illustrative}{warned}")
    ctx.book.set_name(SOURCE_NAME, source if source.address is not None else None)
    return outcome


def backtest(ctx: ActionContext) -> Outcome:
    """Score forecasts made at the last few as-of months against what happened later."""
    from pyxl_del.backtest.rolling import backtest as run_backtest
    from pyxl_del.sheets.backtest import backtest_sheets

    source = ctx.data_source()
    with ctx.names(source):
        result = run_backtest(ctx.book.read_frame(source), ctx.config(), origins=BACKTEST_ORIGINS)
    return ctx.write(backtest_sheets(result), f"Backtest of {source} at {result.origins_text}")


def _risk(ctx: ActionContext, sheets: Callable, label: str) -> Outcome:
    """Risk sheets (``sheets``, of pyxl_del.sheets.risk) on the last forecast's data, with the scenarios of the
    workbook's Scenarios sheet (written by Stress test, edited by the user) added to the config's."""
    from pyxl_del.risk.stress import SCENARIOS_SHEET, scenarios_from_rows

    scenarios = ()
    if SCENARIOS_SHEET in ctx.book.sheet_names():
        scenarios = scenarios_from_rows(ctx.book.read_rows(Ref(SCENARIOS_SHEET)),
                                        source=f"{ctx.book.name} [{SCENARIOS_SHEET}]")
    source = ctx.data_source()
    frame = ctx.book.read_frame(source)
    with ctx.names(source):
        layouts = sheets(ctx.forecast(source, frame), ctx.config(), scenarios=scenarios, data=frame)
    return ctx.write(layouts, f"{label} of {source}")


def stress_test(ctx: ActionContext) -> Outcome:
    """The forecast of the last forecast's data under the stress scenarios (config and Scenarios sheet)."""
    from pyxl_del.sheets.risk import stress_sheets

    return _risk(ctx, stress_sheets, "Stress test")


def risk_dashboard(ctx: ActionContext) -> Outcome:
    """Expected loss, credit VaR, concentration, capital, alerts and ROE of the last forecast's data."""
    from pyxl_del.sheets.risk import dashboard_sheets

    return _risk(ctx, dashboard_sheets, "Risk dashboard")


def open_config(ctx: ActionContext) -> Outcome:
    """The config file in use; with none, a config.toml with the defaults is created next to the workbook."""
    if ctx.config_path is not None:
        return Outcome(f"Config: {ctx.config_path}", open_path=ctx.config_path)
    path = ctx.config_file()
    with atomic_replace(path) as tmp:
        tmp.write_text("# pyxl_del configuration (the defaults); see config.toml in the pyxl_del repository for "
                       "what each key means.\n\n" + Config().to_toml(), encoding="utf-8")
    return Outcome(f"Config: {path} (created with the defaults)", open_path=path)


def diagnostics(ctx: ActionContext) -> Outcome:
    """Python, package versions, the config in use and whether the Data sheet has the mapped columns."""
    lines = [f"pyxl_del {__version__}", f"Python {sys.version.split()[0]}: {sys.executable}"]
    pins = {r.split("==")[0].strip().lower(): r.split("==")[1].split(";")[0].strip()
            for r in (metadata.requires("pyxl_del") or []) if "==" in r}
    for name in VERSIONED_PACKAGES:
        try:
            found = metadata.version(name)
        except metadata.PackageNotFoundError:
            found = "not installed"
        pin = pins.get(name)
        check = "" if pin is None else (" (pinned, ok)" if pin == found else f" (MISMATCH: the workbook needs {pin})")
        lines.append(f"{name} {found}{check}")
    where = str(ctx.config_path) if ctx.config_path else "none found: built-in defaults"
    try:
        config = ctx.config()
        lines.append(f"Config: {where} (valid)")
    except ConfigError as exc:
        config = None
        lines.append(f"Config: {where} (INVALID: {describe_error(exc, one_line=True)})")
    lines.append(f"Workbook: {ctx.book.name} in {ctx.book.folder or 'an unsaved location'}")
    if config is not None:
        lines.append(_data_check(ctx, config))
    lines.append(f"Sheets written by pyxl_del: {len(ctx.book.own_sheets())}")
    return Outcome("\n".join(lines))


def _data_check(ctx: ActionContext, config: Config) -> str:
    source = ctx.data_source()
    try:
        header = set(ctx.book.read_frame(source).columns)
    except WorkbookError as exc:
        return f"Data {source}: {describe_error(exc, one_line=True)}"
    missing = [f"{config[k]} ([columns] {k})" for k in LOGICAL_COLUMNS if config[k] not in header]
    return f"Data {source}: " + (f"missing columns {', '.join(missing)}" if missing else "all mapped columns present")


# ------------------------------------------------------------------------------------------- front ends


def perform(tag: str, book: Workbook, config: str | Path | None = None) -> Outcome:
    """Run the action ``tag`` on ``book``; ``config`` overrides the config file found next to the workbook."""
    if tag not in BUTTONS:
        raise WorkbookError(f"unknown ribbon action {tag!r} — known: {', '.join(BUTTONS)}")
    action = handler(tag)
    log.info("ribbon action %s on %s", tag, book.name)
    return action(ActionContext(book, locate_config(config, book.folder)))


def run_headless(tag: str, workbook: str | Path, *, config: str | Path | None = None,
                 selection: str | None = None) -> Outcome:
    """The action on a workbook file, as clicking its button would do; the file is saved (atomically, VBA and
    ribbon kept) when the action wrote sheets. ``selection`` stands for the selected range (``Sheet!A1:F100``);
    by default it is the selection saved in the file."""
    book = OpenpyxlBook(workbook, selection=Ref.parse(selection) if selection else None)
    outcome = perform(tag, book, config)
    if outcome.sheets:
        book.save()
    return outcome


def run_action(tag: str) -> None:
    """Entry point of the ribbon's VBA callback (RunPython): the action on the calling workbook, its outcome shown
    in Excel. Errors become a message box with a readable message, not a traceback."""
    book = XlwingsBook.caller()
    app = book.book.app
    try:
        outcome = perform(tag, book)
    except Exception as exc:  # noqa: BLE001 - the user gets a message box, never a traceback
        app.alert(describe_error(exc), title=f"pyxl_del: {tag}", mode="critical")
        return
    if outcome.open_path is not None:
        _open_file(outcome.open_path)
    if outcome.sheets:
        app.status_bar = f"pyxl_del: {outcome.message}"
    else:
        app.alert(outcome.message, title=f"pyxl_del: {tag}", mode="info")


def _open_file(path: Path) -> None:
    """Open a file in the program the system associates with it (config.toml: a text editor)."""
    if sys.platform.startswith("win"):
        os.startfile(path)  # noqa: S606 - a file pyxl_del chose, opened for the user
    else:
        subprocess.Popen(["open" if sys.platform == "darwin" else "xdg-open", str(path)])  # noqa: S603
