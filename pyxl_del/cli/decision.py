"""`pyxl-del optimise`, `apply`, `audit verify` and `track`: the decision engine's commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from pyxl_del.cli.common import (
    CONFIG_HELP,
    EXIT_ERROR,
    EXIT_OK,
    SHEET_HELP,
    add_raw_csv,
    write_output,
)

DATA_HELP = "panel: .csv, .parquet or .xlsx, with SCORE / APR columns if it has them (default: the scored sample)"


def _data(args: argparse.Namespace):
    """The panel to use: DATA, or the scored synthetic sample (generated in memory from its seed)."""
    if args.data:
        return args.data
    from pyxl_del.datasets.sample import generate_sample

    return generate_sample(score=True)


def _twin(args: argparse.Namespace):
    from pyxl_del.decision.twin import fit_twin
    from pyxl_del.engine.config import load_config

    return fit_twin(_data(args), load_config(args.config), sheet=getattr(args, "sheet", None))


def _pct(row, key: str, digits: int = 1) -> str:
    """A rate of an `evaluate` row as a percentage, or the reason it has none (a bare "nan%" says nothing)."""
    from pyxl_del.decision.optimise import undefined_reason

    return undefined_reason(row, key) or f"{row[key]:.{digits}%}"


def cmd_optimise(args: argparse.Namespace) -> int:
    from pyxl_del.decision.optimise import PORTFOLIO, optimise

    twin = _twin(args)
    # The layouts are imported once the data is read: the command's start-up stays short (issue 13).
    from pyxl_del.sheets.decision import decision_layouts, decision_tables

    rec = optimise(twin)
    as_of = twin.result.as_of if twin.result is not None else ""
    written = write_output(args.out, lambda: decision_layouts(rec, as_of),
                           lambda: decision_tables(rec, twin.frame()), title="pyxl_del optimise",
                           raw_text=args.raw_csv)
    cur, new = rec.current_impact.set_index("segment"), rec.recommended_impact.set_index("segment")
    tag = " (ILLUSTRATIVE)" if rec.caveat else ""
    print(f"portfolio ROE{tag}: now {_pct(cur.loc[PORTFOLIO], 'roe')}, recommended {_pct(new.loc[PORTFOLIO], 'roe')}; "
          f"value of a month's bookings{tag} {cur.loc[PORTFOLIO, 'value']:,.0f} -> {new.loc[PORTFOLIO, 'value']:,.0f}")
    for segment, p in rec.recommended.segments.items():
        cutoff = "all" if p.cutoff is None else f"{p.cutoff:g}"
        seg_tag = " (ILLUSTRATIVE)" if rec.caveats and rec.caveats.get(segment) else ""
        print(f"  {segment}: cut-off {cutoff}, APR{seg_tag} {p.apr:.2%}, budget share {p.budget_share:.1%} "
              f"(unit cost {_pct(new.loc[segment], 'unit_cost', 2)})")
    print(f"  budget allocated {sum(p.budget_share for p in rec.recommended.segments.values()):.1%} of "
          f"{rec.recommended.budget:,.0f} a month")
    for note in rec.notes:
        print(f"note: {note}")
    for path in written:
        print(f"wrote {path}")
    print(f"policy version {rec.version}")
    return EXIT_OK


def cmd_apply(args: argparse.Namespace) -> int:
    from pyxl_del.decision.audit import apply_policy, effective_month
    from pyxl_del.decision.optimise import check_aprs, current_policy, resolve_budget
    from pyxl_del.decision.policy import Policy, table_rows
    from pyxl_del.engine.config import CONFIG_FILE_NAME
    from pyxl_del.excel.decision_actions import read_policy_table

    config_path = Path(args.config or CONFIG_FILE_NAME)
    effective = effective_month(args.effective_from)
    table, source = read_policy_table(args.policy)
    Policy.from_table(table, 0.0, source=source)  # a bad policy fails before the twin is fitted; the budget comes later
    twin = _twin(argparse.Namespace(**{**vars(args), "config": config_path if config_path.is_file() else None}))
    policy = Policy.from_table(table, args.budget if args.budget is not None else resolve_budget(twin), source=source)
    check_aprs(twin, policy, source, table_rows(table))
    entry = apply_policy(policy, config_path=config_path, log_path=args.log, before=current_policy(twin), twin=twin,
                         effective_from=effective, note=args.note or "")
    print(f"applied policy {entry['policy_version']} to {config_path} [policy]; effective from "
          f"{entry['effective_from']}")
    print(f"logged to {args.log or config_path.with_name('decisions.jsonl')} (entry {entry['seq']}, sha256 "
          f"{entry['sha256'][:16]}...; the head is anchored in {config_path} [policy] log_head)")
    return EXIT_OK


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from pyxl_del.decision.audit import verify_log

    check = verify_log(args.log, args.config)
    print(("ok: " if check.ok else "ALTERED: ") + check.message)
    print(f"({check.limits})")
    return EXIT_OK if check.ok else EXIT_ERROR


def cmd_track(args: argparse.Namespace) -> int:
    from pyxl_del.decision.audit import track
    from pyxl_del.engine.config import load_config
    from pyxl_del.sheets.decision import tracking_sheet

    # The config given is the one `apply` anchored the log's head in; without one, config.toml beside the log.
    table = track(_data(args), load_config(args.config), args.log, sheet=args.sheet, config_path=args.config)
    written = write_output(args.out, lambda: [tracking_sheet(table)], lambda: {"tracking": table},
                           title="pyxl_del track", raw_text=args.raw_csv)
    d = table.attrs["decision"]
    print(f"decision {d['policy_version']} effective from {d['effective_from']}: "
          f"{len(table.attrs['tracked_cohorts'])} cohorts booked since")
    print(table.to_string(index=False))
    for path in written:
        print(f"wrote {path}")
    return EXIT_OK


def add_commands(sub) -> None:
    p = sub.add_parser("optimise", help="recommend cut-off, APR and budget share per segment, with expected impact")
    p.add_argument("data", nargs="?", help=DATA_HELP)
    p.add_argument("--config", help=CONFIG_HELP)
    p.add_argument("--out", default="decisions.xlsx", help="a .xlsx workbook (Recommendations, Frontier, Policy) or "
                                                           "a folder for CSVs (default: decisions.xlsx)")
    p.add_argument("--sheet", help=SHEET_HELP)
    add_raw_csv(p)
    p.set_defaults(func=cmd_optimise)

    p = sub.add_parser("apply", help="write an accepted policy to config.toml [policy] and the decision log")
    p.add_argument("policy", help="policy.csv or a decision workbook's Policy sheet (from `optimise`)")
    p.add_argument("--data", help=DATA_HELP)
    p.add_argument("--config", help="the config.toml to update (default: ./config.toml)")
    p.add_argument("--log", help="decision log, JSON Lines (default: decisions.jsonl beside the config)")
    p.add_argument("--budget", type=float, help="monthly budget (default: [policy] budget or the data's volume)")
    p.add_argument("--effective-from", help="first cohort the decision governs, YYYY-MM (default: this month)")
    p.add_argument("--note", help="a note kept in the log entry")
    p.set_defaults(func=cmd_apply, sheet=None)

    p = sub.add_parser("audit", help="decision log checks")
    audit_sub = p.add_subparsers(dest="audit_command", required=True)
    v = audit_sub.add_parser("verify", help="check the log's hash chain and its head against config.toml; name the "
                                            "first altered entry (exit 1 when altered, missing, empty or unanchored)",
                             epilog="With the environment variable PYXL_DEL_AUDIT_KEY set (as it was when applying), "
                                    "the head's HMAC is checked too.")
    v.add_argument("--log", default="decisions.jsonl", help="decision log (default: decisions.jsonl)")
    v.add_argument("--config", help="the config.toml whose [policy] log_head anchors the log (default: config.toml "
                                    "beside the log)")
    v.set_defaults(func=cmd_audit_verify)

    p = sub.add_parser("track", help="compare cohorts booked since the last applied decision with its expected impact")
    p.add_argument("data", nargs="?", help=DATA_HELP)
    p.add_argument("--config", help=CONFIG_HELP)
    p.add_argument("--log", default="decisions.jsonl", help="decision log (default: decisions.jsonl)")
    p.add_argument("--out", default="tracking.xlsx", help="a .xlsx (Tracking sheet) or a folder for tracking.csv")
    p.add_argument("--sheet", help=SHEET_HELP)
    add_raw_csv(p)
    p.set_defaults(func=cmd_track)
