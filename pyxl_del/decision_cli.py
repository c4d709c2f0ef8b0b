"""The decision engine's subcommands: optimise, apply, audit verify, track (wired into `pyxl_del.cli`)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from .config import CONFIG_FILE_NAME, load_config
from .data import PanelError

from .cli import EXIT_ERROR, EXIT_OK


def _data(args: argparse.Namespace):
    """The panel to use: DATA, or the scored synthetic sample (generated in memory from its seed)."""
    if args.data:
        return args.data
    from .sample import generate_sample

    return generate_sample(score=True)


def _twin(args: argparse.Namespace):
    from .decision_twin import fit_twin

    return fit_twin(_data(args), load_config(args.config), sheet=getattr(args, "sheet", None))


def read_policy_file(path: str | Path, budget: float):
    """A Policy from policy.csv (`optimise --out DIR`) or the Policy sheet of a decision workbook."""
    from .decision_report import read_policy_sheet
    from .policy import Policy
    from .workbook import OpenpyxlBook

    path = Path(path)
    if not path.is_file():
        raise PanelError(str(path), [f"file not found: {path}"])
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return read_policy_sheet(OpenpyxlBook(path), budget)
    return Policy.from_table(pd.read_csv(path), budget, source=str(path))


def cmd_optimise(args: argparse.Namespace) -> int:
    from .decision_report import decision_layouts, write_decision_tables
    from .excel import write_workbook
    from .optimise import PORTFOLIO, optimise

    twin = _twin(args)
    rec = optimise(twin)
    out = Path(args.out)
    written = ([write_workbook(decision_layouts(rec), out)] if out.suffix.lower() == ".xlsx"
               else write_decision_tables(rec, twin, out))
    cur, new = rec.current_impact.set_index("segment"), rec.recommended_impact.set_index("segment")
    print(f"portfolio ROE: now {cur.loc[PORTFOLIO, 'roe']:.1%}, recommended {new.loc[PORTFOLIO, 'roe']:.1%}; "
          f"value of a month's bookings {cur.loc[PORTFOLIO, 'value']:,.0f} -> {new.loc[PORTFOLIO, 'value']:,.0f}")
    for segment, p in rec.recommended.segments.items():
        cutoff = "all" if p.cutoff is None else f"{p.cutoff:g}"
        print(f"  {segment}: cut-off {cutoff}, APR {p.apr:.2%}, budget share {p.budget_share:.1%} "
              f"(unit cost {new.loc[segment, 'unit_cost']:.2%})")
    for note in rec.notes:
        print(f"note: {note}")
    for path in written:
        print(f"wrote {path}")
    print(f"policy version {rec.recommended.version}")
    return EXIT_OK


def cmd_apply(args: argparse.Namespace) -> int:
    from .audit import apply_policy
    from .optimise import current_policy, resolve_budget

    config_path = Path(args.config or CONFIG_FILE_NAME)
    twin = _twin(argparse.Namespace(**{**vars(args), "config": config_path if config_path.is_file() else None}))
    policy = read_policy_file(args.policy, args.budget if args.budget is not None else resolve_budget(twin))
    entry = apply_policy(policy, config_path=config_path, log_path=args.log, before=current_policy(twin), twin=twin,
                         effective_from=args.effective_from, note=args.note or "")
    print(f"applied policy {entry['policy_version']} to {config_path} [policy]; effective from "
          f"{entry['effective_from']}")
    print(f"logged to {args.log or config_path.with_name('decisions.jsonl')} (sha256 {entry['sha256'][:16]}...)")
    return EXIT_OK


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from .audit import verify_log

    check = verify_log(args.log)
    print(("ok: " if check.ok else "ALTERED: ") + check.message)
    return EXIT_OK if check.ok else EXIT_ERROR


def cmd_track(args: argparse.Namespace) -> int:
    from .audit import track
    from .decision_report import tracking_sheet
    from .excel import write_workbook

    config = load_config(args.config)
    table = track(_data(args), config, args.log, sheet=args.sheet)
    out = Path(args.out)
    if out.suffix.lower() == ".xlsx":
        write_workbook([tracking_sheet(table)], out)
    else:
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / "tracking.csv", index=False)
        out = out / "tracking.csv"
    d = table.attrs["decision"]
    print(f"decision {d['policy_version']} effective from {d['effective_from']}: "
          f"{len(table.attrs['tracked_cohorts'])} cohorts booked since")
    print(table.to_string(index=False))
    print(f"wrote {out}")
    return EXIT_OK


def add_decision_commands(sub) -> None:
    """Register optimise, apply, audit and track on the CLI's subparsers."""
    config_help = "config.toml (default: ./config.toml if present, else built-in defaults)"
    data_help = "panel: .csv, .parquet or .xlsx, with SCORE / APR columns if it has them (default: the scored sample)"

    p = sub.add_parser("optimise", help="recommend cut-off, APR and budget share per segment, with expected impact")
    p.add_argument("data", nargs="?", help=data_help)
    p.add_argument("--config", help=config_help)
    p.add_argument("--out", default="decisions.xlsx", help="a .xlsx workbook (Recommendations, Frontier, Policy) or "
                                                           "a folder for CSVs (default: decisions.xlsx)")
    p.add_argument("--sheet", help="sheet name of an .xlsx input (default: the first)")
    p.set_defaults(func=cmd_optimise)

    p = sub.add_parser("apply", help="write an accepted policy to config.toml [policy] and the decision log")
    p.add_argument("policy", help="policy.csv or a decision workbook's Policy sheet (from `optimise`)")
    p.add_argument("--data", help=data_help)
    p.add_argument("--config", help="the config.toml to update (default: ./config.toml)")
    p.add_argument("--log", help="decision log, JSON Lines (default: decisions.jsonl beside the config)")
    p.add_argument("--budget", type=float, help="monthly budget (default: [policy] budget or the data's volume)")
    p.add_argument("--effective-from", help="first cohort the decision governs, YYYY-MM (default: this month)")
    p.add_argument("--note", help="a note kept in the log entry")
    p.set_defaults(func=cmd_apply, sheet=None)

    p = sub.add_parser("audit", help="decision log checks")
    audit_sub = p.add_subparsers(dest="audit_command", required=True)
    v = audit_sub.add_parser("verify", help="check the log's hash chain; name the first altered entry")
    v.add_argument("--log", default="decisions.jsonl", help="decision log (default: decisions.jsonl)")
    v.set_defaults(func=cmd_audit_verify)

    p = sub.add_parser("track", help="compare cohorts booked since the last applied decision with its expected impact")
    p.add_argument("data", nargs="?", help=data_help)
    p.add_argument("--config", help=config_help)
    p.add_argument("--log", default="decisions.jsonl", help="decision log (default: decisions.jsonl)")
    p.add_argument("--out", default="tracking.xlsx", help="a .xlsx (Tracking sheet) or a folder for tracking.csv")
    p.add_argument("--sheet", help="sheet name of an .xlsx input (default: the first)")
    p.set_defaults(func=cmd_track)


__all__ = ["add_decision_commands", "read_policy_file"]
