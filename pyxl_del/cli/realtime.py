"""`pyxl-del decide`, `serve` and `abtest`: decisions on a batch file, the HTTP service, champion / challenger."""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from pathlib import Path

from pyxl_del.cli.common import (
    CONFIG_HELP,
    EXIT_OK,
    SHEET_HELP,
    add_raw_csv,
    write_output,
)

DATA_HELP = ("panel the twin is fitted on: .csv, .parquet or .xlsx (default: [decide] data of the config, else the "
             "scored sample)")
POLICY_HELP = ('"current" (the applied [policy], else the data\'s practice), "recommended" (the optimiser\'s) '
               "or a policy.csv / decision workbook")


def _config_path(args: argparse.Namespace) -> Path | None:
    from pyxl_del.engine.config import CONFIG_FILE_NAME

    if args.config:
        return Path(args.config)
    here = Path.cwd() / CONFIG_FILE_NAME
    return here if here.is_file() else None


def _twin(args: argparse.Namespace):
    from pyxl_del.decision.decide import default_data
    from pyxl_del.decision.twin import fit_twin
    from pyxl_del.engine.config import load_config

    path = _config_path(args)
    config = load_config(path)
    return fit_twin(args.data or default_data(config, path), config, sheet=getattr(args, "sheet", None))


def _policy(spec: str, twin):
    """--policy, --champion, --challenger: a named policy, or a policy file."""
    from pyxl_del.decision.abtest import NAMED_POLICIES, resolve_policy

    if spec in NAMED_POLICIES:
        return resolve_policy(spec, twin)
    from pyxl_del.decision.optimise import resolve_budget
    from pyxl_del.excel.decision_actions import read_policy_file

    return read_policy_file(spec, resolve_budget(twin))


def cmd_decide(args: argparse.Namespace) -> int:
    from pyxl_del.decision.applications import (
        application_columns,
        read_applications,
        repeated_ids,
    )
    from pyxl_del.engine.config import load_config

    # A bad applications file is reported before the decision engine is even imported, let alone the twin fitted.
    applications = application_columns(read_applications(args.applications), load_config(_config_path(args)),
                                       source=args.applications)
    from pyxl_del.decision.decide import check_decisions_path, decide, write_decisions

    check_decisions_path(args.out)  # so is an --out that must not be written, e.g. the panel or the config
    twin = _twin(args)
    policy = _policy(args.policy, twin)
    started = time.perf_counter()
    decisions = decide(applications, policy, twin, source=args.applications)
    elapsed = time.perf_counter() - started
    write_decisions(decisions, args.out, raw_text=args.raw_csv)
    n = len(decisions)
    approved = int((decisions["decision"] == "APPROVE").sum())
    print(f"{n:,} applications decided in {elapsed:.2f} s ({n / max(elapsed, 1e-9):,.0f}/s) under policy "
          f"{policy.version_under(twin.config)}: {approved:,} approved ({approved / n:.1%}), {n - approved:,} declined")
    for code, count in decisions["reason_code"].value_counts().items():
        if count:
            print(f"  {code}: {count:,}")
    for caveat in decisions["caveat"].unique():
        if caveat:
            print(f"caveat (column 'caveat'): {caveat}")
    repeated = repeated_ids(applications.ids)
    if repeated:
        print(f"warning: {repeated}")
    print(f"wrote {args.out}")
    return EXIT_OK


def _port(text: str) -> int:
    """A TCP port, 0 to 65535 (argparse says so and exits 2 otherwise)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is a number from 0 to 65535, got {port}")
    return port


def cmd_serve(args: argparse.Namespace) -> int:
    from pyxl_del import serve
    from pyxl_del.decision.decide import config_folder
    from pyxl_del.engine.config import load_config

    path = _config_path(args)
    config = load_config(path)
    settings = config.decide
    host = args.host or settings.host
    serve.check_host(host, allow_remote=args.allow_remote)  # before the twin is fitted: a quick answer
    key = serve.api_key(config, path)
    if key is None:
        key = secrets.token_urlsafe(24)
        print(f"no API key set (environment variable {settings.api_key_env} or [decide] api_key_file); this run's "
              f"key: {key}", file=sys.stderr)
    port = settings.port if args.port is None else args.port
    # Bound before the twin is fitted and the request log begun: a busy port is said at once, with nothing logged.
    sock = serve.bind(host, port, allow_remote=args.allow_remote)
    try:
        log_path = Path(args.log) if args.log else config_folder(path) / settings.request_log
        request_log = serve.RequestLog(log_path, max_bytes=settings.request_log_max_bytes,
                                       backups=settings.request_log_backups)
        source = serve.PolicySource(path, args.data, request_log)
        app = serve.create_app(source, key, max_body_bytes=settings.max_body_bytes, max_batch=settings.max_batch,
                               body_timeout=settings.body_timeout)
    except BaseException:
        sock.close()
        raise
    bound = sock.getsockname()[1]
    if not serve.is_loopback(host):
        print(f"warning: listening on {host} over plain HTTP (--allow-remote): reachable from other machines; "
              f"the API key and the decisions cross the network unencrypted", file=sys.stderr)

    def started() -> None:
        print(f"pyxl-del serve: http://{host}:{bound} (docs /docs), policy {source.snapshot.engine.version}, "
              f"decisions logged to {log_path}", flush=True)

    source.start(settings.reload_seconds)
    try:
        serve.run(app, sock, on_started=started, header_timeout=settings.header_timeout)
    except KeyboardInterrupt:
        pass
    finally:
        source.stop()
        source.request_log.close()
    return EXIT_OK


def cmd_abtest(args: argparse.Namespace) -> int:
    from pyxl_del.decision import abtest
    from pyxl_del.engine.config import load_config
    from pyxl_del.sheets.abtest import observed_book, simulation_book

    config = load_config(_config_path(args))
    abtest.check_seed(args.seed)
    abtest.check_mde(args.mde)
    data = args.data
    if data and abtest.has_arm_column(data, config, args.sheet):
        obs = abtest.observed(data, config, champion=args.champion, mde=args.mde, sheet=args.sheet)
        table, power, layouts = obs.table, obs.power, observed_book(obs)
        print(f"observed champion / challenger by [columns] policy_arm: {obs.arms[0]} vs {obs.arms[1]}")
        for note in obs.notes:
            print(f"note: {note}")
    else:
        twin = _twin(args)
        sim = abtest.simulate(twin, _policy(args.champion, twin), _policy(args.challenger, twin), months=args.months,
                              split=args.split, seed=args.seed)
        as_of = twin.result.as_of if twin.result is not None else ""
        table, power, layouts = sim.table(), sim.power(args.mde), simulation_book(sim, args.mde, as_of=as_of)
        print(f"simulated {args.months} months of applicants, {args.split:.0%} to the challenger: champion "
              f"{sim.versions[0]} vs challenger {sim.versions[1]}")
        if sim.caveat:
            print(f"value and ROE: {sim.caveat}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:,.4g}"))
    print(power.to_string(index=False, float_format=lambda v: f"{v:,.4g}"))
    for path in write_output(args.out, lambda: layouts, lambda: {"ab_table": table, "ab_power": power},
                             title="pyxl_del abtest", raw_text=args.raw_csv):
        print(f"wrote {path}")
    return EXIT_OK


def add_commands(sub) -> None:
    p = sub.add_parser("decide", help="decide a batch of applications (segment, score, amount[, apr]) under the "
                                      "applied policy")
    p.add_argument("applications", help="applications: .csv or .parquet with segment, score, amount and optional "
                                        "apr, application_id columns")
    p.add_argument("--out", default="decisions.csv", help="decisions: .csv or .parquet, new or a decisions file "
                                                          "decide wrote (default: decisions.csv)")
    p.add_argument("--data", help=DATA_HELP)
    p.add_argument("--config", help=CONFIG_HELP)
    p.add_argument("--policy", default="current", help=f"the policy to decide under: {POLICY_HELP} (default: current)")
    add_raw_csv(p)
    p.set_defaults(func=cmd_decide)

    p = sub.add_parser("serve", help="the local decision service (HTTP; needs the serve extra: pip install "
                                     "'pyxl_del[serve]')",
                       epilog="API key: every request but GET /healthz sends it in the X-API-Key header. Set it in the "
                              "environment variable PYXL_DEL_API_KEY (its name is [decide] api_key_env) or in a file "
                              "named by [decide] api_key_file; never in config.toml itself. Without one, serve makes "
                              "a key for this run and prints it.")
    p.add_argument("--host", help="address to bind (default: [decide] host, 127.0.0.1); another than loopback needs "
                                  "--allow-remote")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a non-loopback --host: the service speaks plain HTTP, so put it behind a TLS proxy "
                        "instead if you can")
    p.add_argument("--port", type=_port, help="port (default: [decide] port, 8321; 0: a free one)")
    p.add_argument("--data", help=DATA_HELP)
    p.add_argument("--config", help=CONFIG_HELP + "; watched: a new [policy] is served without a restart")
    p.add_argument("--log", help="request log, JSON Lines (default: [decide] request_log beside the config)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("abtest", help="champion / challenger: simulate both policies in the twin (or compare the arms "
                                      "of real data with a policy_arm column), with confidence intervals and power")
    p.add_argument("data", nargs="?", help=DATA_HELP + "; with a [columns] policy_arm column: the observed arms")
    p.add_argument("--champion", default="current", help=f"{POLICY_HELP} (default: current)")
    p.add_argument("--challenger", default="recommended", help=f"{POLICY_HELP} (default: recommended)")
    p.add_argument("--months", type=int, default=6, help="months of applicants in the test (default: 6)")
    p.add_argument("--split", type=float, default=0.5, help="share of applicants sent to the challenger (default 0.5)")
    p.add_argument("--mde", type=float, default=0.01, help="difference in the MOB-6 DEL30 bad rate to size the test "
                                                            "for, absolute (default: 0.01 = 1 point)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--config", help=CONFIG_HELP)
    p.add_argument("--sheet", help=SHEET_HELP)
    p.add_argument("--out", default="abtest.xlsx", help="a .xlsx (A-B test sheet) or a folder for CSVs "
                                                        "(default: abtest.xlsx)")
    add_raw_csv(p)
    p.set_defaults(func=cmd_abtest)
