"""The ribbon's decision buttons (Optimise, Apply policy, A/B test) and the policy read back from a workbook.

`read_policy_sheet` reads the Policy sheet as the user left it (after editing the recommended policy);
`read_policy_file` takes that sheet's workbook or the policy.csv `pyxl-del optimise --out FOLDER` writes.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

from pyxl_del.decision.abtest import has_arm_column, observed, simulate
from pyxl_del.decision.audit import LOG_FILE_NAME, apply_policy
from pyxl_del.decision.optimise import (
    PORTFOLIO,
    check_aprs,
    current_policy,
    optimise,
    resolve_budget,
)
from pyxl_del.decision.policy import POLICY_COLUMNS, Policy, PolicyError, table_rows
from pyxl_del.decision.twin import fit_twin
from pyxl_del.engine.data import ONLY_EMPTY_IS_MISSING
from pyxl_del.engine.errors import reading
from pyxl_del.engine.files import written_text
from pyxl_del.excel.ribbon import Outcome
from pyxl_del.excel.workbook import OpenpyxlBook, Ref, Workbook
from pyxl_del.sheets.abtest import observed_book, simulation_book
from pyxl_del.sheets.decision import POLICY_HEADERS, POLICY_SHEET, decision_layouts
from pyxl_del.sheets.layout import column_letter


def policy_sheet_table(book: Workbook) -> tuple[pd.DataFrame, str]:
    """The Policy sheet (`policy_sheet`) as the user left it, and where it is: the table under the header row whose
    first cell is "segment". Errors say what to fix."""
    if POLICY_SHEET not in book.sheet_names():
        raise PolicyError(f"{book.name} has no {POLICY_SHEET!r} sheet: run Optimise first (it writes "
                          f"Recommendations, Frontier and {POLICY_SHEET}), edit the policy there, then apply it")
    rows = book.read_rows(Ref(POLICY_SHEET))
    header = next((i for i, row in enumerate(rows) if row and str(row[0]).strip().casefold() == "segment"), None)
    if header is None:
        raise PolicyError(f"{book.name} [{POLICY_SHEET}]: no header row starting with 'segment' (the sheet needs "
                          f"the columns segment, cutoff, apr, budget_share; run Optimise to write it again)")
    table = Ref(POLICY_SHEET, f"A{header + 1}:{column_letter(max(len(r) for r in rows))}{len(rows)}")
    return _policy_columns(book.read_frame(table)), f"{book.name} {table}"


def read_policy_table(path: str | Path) -> tuple[pd.DataFrame, str]:
    """The policy table of policy.csv (`optimise --out DIR`, UTF-8) or of a decision workbook's Policy sheet, and
    its source; an empty, damaged or wrongly encoded file is an InputError naming it."""
    path = Path(path)
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return policy_sheet_table(OpenpyxlBook(path))
    with reading(path, "policy"):
        if path.is_file() and path.stat().st_size <= 4096 and not path.read_bytes().strip():
            raise PolicyError(f"{path} is empty: a policy file has the columns {', '.join(POLICY_COLUMNS)} and a row "
                              f"per segment (`pyxl-del optimise --out FOLDER` writes one)")
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            table = pd.read_csv(path, encoding="utf-8-sig", index_col=False, **ONLY_EMPTY_IS_MISSING)
    # optimise wrote a formula-like segment name with a leading quote (CSV injection): read as the data name it.
    if "segment" in table.columns:
        table["segment"] = table["segment"].map(lambda v: written_text(v) if isinstance(v, str) else v)
    return table, str(path)


def _policy_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The Policy sheet's headers ("Cut-off", "Budget share") as the policy's fields (cutoff, budget_share)."""
    fields = {label.casefold(): field for field, label in POLICY_HEADERS.items()}
    return frame.rename(columns=lambda c: fields.get(str(c).strip().casefold(), c))


def read_policy_file(path: str | Path, budget: float) -> Policy:
    """A Policy from policy.csv (`optimise --out DIR`) or the Policy sheet of a decision workbook."""
    table, source = read_policy_table(path)
    return Policy.from_table(table, budget, source=source)


# ------------------------------------------------------------------------------------------------ buttons


def optimise_action(ctx):
    """Ribbon: recommend cut-off, APR and budget share per segment in the twin of the last forecast's data; the
    Recommendations, Frontier and Policy sheets."""
    source = ctx.data_source()
    with ctx.names(source):
        twin = fit_twin(ctx.book.read_frame(source), ctx.config())
    rec = optimise(twin)
    layouts = decision_layouts(rec, twin.result.as_of if twin.result is not None else "")
    roe = [impact.set_index("segment").loc[PORTFOLIO, "roe"] for impact in (rec.current_impact,
                                                                          rec.recommended_impact)]
    return ctx.write(layouts, f"Optimise on {source}: portfolio ROE now {roe[0]:.1%}, recommended {roe[1]:.1%} "
                              f"(policy {rec.version}); edit the {POLICY_SHEET} sheet if you like, then "
                              f"Apply policy")


def apply_action(ctx):
    """Ribbon: the Policy sheet, validated, into config.toml's [policy] (the config in use, else a new one next to
    the workbook) and the decision log beside it, with the expected impact in the twin of the last forecast's
    data. Nothing is written to the workbook."""
    source = ctx.data_source()
    config = ctx.config()
    with ctx.names(source):
        twin = fit_twin(ctx.book.read_frame(source), config)
    table, sheet = policy_sheet_table(ctx.book)
    # Errors' row numbers count the header as row 1 and name the segment, as the command line's apply does.
    policy = Policy.from_table(table, resolve_budget(twin), source=sheet)
    check_aprs(twin, policy, sheet, table_rows(table))
    target = ctx.config_file()
    entry = apply_policy(policy, config_path=target, before=current_policy(twin), twin=twin)
    return Outcome(f"Applied policy {entry['policy_version']} to {target} [policy], effective from "
                   f"{entry['effective_from']}; logged in {target.with_name(LOG_FILE_NAME)}")


RIBBON_MONTHS = 6


def abtest_action(ctx):
    """Ribbon: the arms of the data's policy_arm column if it has one, else current against recommended policy
    simulated for RIBBON_MONTHS months in the twin of the data; the A-B test sheet."""
    source = ctx.data_source()
    frame = ctx.book.read_frame(source)
    config = ctx.config()
    with ctx.names(source):
        if has_arm_column(frame, config):
            obs = observed(frame, config)
            return ctx.write(observed_book(obs), f"A/B test of the arms {obs.arms[0]} and {obs.arms[1]} in {source}")
        twin = fit_twin(frame, config)
    sim = simulate(twin, "current", "recommended", months=RIBBON_MONTHS)
    as_of = twin.result.as_of if twin.result is not None else ""
    return ctx.write(simulation_book(sim, as_of=as_of), f"A/B test of current against recommended policy, simulated on "
                                              f"{source}")
