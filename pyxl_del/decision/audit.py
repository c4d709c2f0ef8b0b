"""Acting on a recommendation: apply it, log it tamper-evidently, and track what it did.

* `apply_policy` writes the accepted policy into the [policy] section of config.toml — only that section's
  ``budget``, ``segments`` and ``log_head`` lines; every other line and comment stays as it was — and appends an
  entry to the decision log, under a lock on the log (``.<log>.lock``) so that concurrent applies queue.
* The decision log is JSON Lines. Each entry holds its sequence number ``seq``, the time, the OS user, the policy
  before and after, the expected impact, ``prev_sha256`` (the SHA-256 of the previous line's bytes) and ``sha256``
  (of the entry's own canonical JSON without that field). The head — the number of entries and the SHA-256 of the
  newest line — is anchored in config.toml's [policy] ``log_head``, where an edit of the log alone cannot follow
  it; with the environment variable PYXL_DEL_AUDIT_KEY set, the head also carries an HMAC under that key.
* `verify_log` names the first entry whose content or link no longer holds, and checks the log's tail against the
  anchored head: a missing, emptied, truncated, extended or rewritten log fails. What it cannot see is in
  `Verification.limits` (a consistent rewrite of both files without the key; a rollback of both).
* `track` compares the cohorts booked since a decision took effect with what was expected when it was applied.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
import logging
import os
import re
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import ValidationError

from pyxl_del.decision.optimise import evaluate, expected_del30_curve
from pyxl_del.decision.policy import Policy
from pyxl_del.decision.twin import read_decision_panel
from pyxl_del.engine.config import (
    CONFIG_FILE_NAME,
    ConfigError,
    LogHead,
    config_from_dict,
)
from pyxl_del.engine.data import _parse_cohorts, column_numbers, month_index, month_label
from pyxl_del.engine.errors import InputError, read_text, reading, shorten
from pyxl_del.engine.files import atomic_replace, locked
from pyxl_del.engine.metrics import ead_at_mob0
from pyxl_del.engine.pipeline import run

log = logging.getLogger(__name__)

GENESIS = "0" * 64
LOG_FILE_NAME = "decisions.jsonl"
AUDIT_KEY_ENV = "PYXL_DEL_AUDIT_KEY"  # the key of the log head's HMAC; never stored in a file
TRACK_MOBS = (3, 6, 12)
_HEADER = re.compile(r"^\s*\[\s*([^\]\s]+)\s*\]\s*(#.*)?$")
_ARRAY_HEADER = re.compile(r"^\s*\[\[")


class AuditError(InputError):
    """A decision log that cannot be read or has been altered; ``entry`` is the 1-based entry at fault, if one."""

    def __init__(self, message: str, entry: int | None = None):
        super().__init__(message)
        self.entry = entry


# --------------------------------------------------------------------------------------------- config edit


def _toml_key_line(key: str, value) -> str:
    from pyxl_del.engine.config import _toml_value

    return f"{key} = {_toml_value(value)}"


def policy_toml_lines(policy: Policy, head: LogHead | None = None) -> dict[str, str]:
    """The [policy] lines `apply_policy` writes: ``budget``, ``segments`` (one inline table) and the log's head."""
    segments = {name: p.model_dump(exclude_none=True) for name, p in policy.segments.items()}
    lines = {"budget": _toml_key_line("budget", float(policy.budget)),
             "segments": _toml_key_line("segments", segments)}
    if head is not None:
        lines["log_head"] = _toml_key_line("log_head", head.model_dump())
    return lines


def replace_policy_section(text: str, policy: Policy, head: LogHead | None = None) -> str:
    """``text`` with the [policy] section's budget and segments lines set to ``policy`` (and log_head to ``head``,
    if given); nothing else changes.

    A missing [policy] section is appended; a missing key is added at the end of the section.
    """
    lines = text.splitlines(keepends=True)
    wanted = policy_toml_lines(policy, head)
    start = next((i for i, line in enumerate(lines) if (m := _HEADER.match(line)) and m.group(1) == "policy"), None)
    if start is None:
        tail = "" if not text or text.endswith("\n") else "\n"
        return text + tail + "\n[policy]\n" + "".join(v + "\n" for v in wanted.values())
    end = next((i for i in range(start + 1, len(lines)) if _HEADER.match(lines[i]) or _ARRAY_HEADER.match(lines[i])),
               len(lines))
    found = set()
    for i in range(start + 1, end):
        key = lines[i].split("=", 1)[0].strip() if "=" in lines[i] and not lines[i].lstrip().startswith("#") else None
        if key in wanted:
            newline = "\r\n" if lines[i].endswith("\r\n") else "\n"
            # A trailing comment survives when the old value had no strings a '#' could hide in.
            comment = re.match(r"^[^#\"']*?(\s+#.*?)\r?\n?$", lines[i])
            lines[i] = wanted[key] + (comment.group(1) if comment else "") + newline
            found.add(key)
    missing = [wanted[k] + "\n" for k in wanted if k not in found]
    insert_at = end
    while insert_at > start + 1 and not lines[insert_at - 1].strip():
        insert_at -= 1  # keep the blank lines that separate the next section
    return "".join(lines[:insert_at] + missing + lines[insert_at:])


# ------------------------------------------------------------------------------------------------- the log


def _canonical(entry: dict) -> str:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _jsonable(value):
    if isinstance(value, pd.DataFrame):
        return [_jsonable(r) for r in value.to_dict(orient="records")]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if value is pd.NA:
        return None
    return value


def read_log(path: str | Path) -> list[tuple[str, dict]]:
    """(raw line, parsed entry) per line, [] for a missing log. A line that is not a JSON object in UTF-8 raises
    AuditError naming it. Lines end at "\n" only: a note may hold any other line separator (U+2028, ...)."""
    path = Path(path)
    if not path.exists():
        return []
    with reading(path, "decision log", error=AuditError):
        raw = path.read_bytes()
    lines = raw.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    out = []
    for n, line in enumerate(lines, start=1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise AuditError(f"{path}: entry {n} is not UTF-8 text: the log was altered or damaged", n) from None
        try:
            entry = json.loads(text)
        except json.JSONDecodeError as exc:
            raise AuditError(f"{path}: entry {n} is not valid JSON ({exc.msg}): the log was altered", n) from None
        except (RecursionError, ValueError):
            raise AuditError(f"{path}: entry {n} is not a log entry (nested too deeply or out of range): the log was "
                             f"altered", n) from None
        if not isinstance(entry, dict):
            raise AuditError(f"{path}: entry {n} is not a JSON object ({shorten(text, 40)}): the log was altered", n)
        out.append((text, entry))
    return out


def _chained(entries: list[tuple[str, dict]], entry: dict) -> str:
    """``entry`` as the log line that follows ``entries``: its sequence number, the link and its own hash."""
    body = {**_jsonable(entry), "seq": len(entries) + 1,
            "prev_sha256": _sha(entries[-1][0]) if entries else GENESIS}
    body.pop("sha256", None)
    body["sha256"] = _sha(_canonical(body))
    return _canonical(body)


def _append(path: Path, line: str) -> None:
    with open(path, "a+b") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(size - 1, 0))
        # A newest line that lost its "\n" (an editor's save) still verifies: the entry must not join that line.
        lead = b"\n" if size and fh.read(1) != b"\n" else b""
        fh.write(lead + (line + "\n").encode("utf-8"))
        fh.flush()
        os.fsync(fh.fileno())


def lock_path(log_path: Path) -> Path:
    """The lock file of a decision log: applies and appends to the log take it in turn."""
    return log_path.with_name(f".{log_path.name}.lock")


def head_mac(entries: int, sha256: str, key: str) -> str:
    """HMAC-SHA256 of the log's head under ``key``: a head that cannot be forged without the key."""
    return hmac.new(key.encode("utf-8"), f"{entries}:{sha256}".encode(), hashlib.sha256).hexdigest()


def _audit_key() -> str | None:
    return os.environ.get(AUDIT_KEY_ENV) or None


def _log_name(log_path: Path, config_path: Path) -> str:
    """How config.toml names its log: relative to the config's folder when the log is inside it."""
    try:
        return Path(os.path.relpath(log_path.resolve(), config_path.resolve().parent)).as_posix()
    except ValueError:  # another drive (Windows)
        return str(log_path.resolve())


@dataclass(frozen=True)
class Verification:
    ok: bool
    entries: int
    first_altered: int | None = None  # 1-based entry number
    message: str = ""
    limits: str = ""  # what this check cannot detect, in the circumstances it ran in


NO_KEY_LIMITS = (f"not detectable: a consistent rewrite of both the log and config.toml's [policy] log_head by "
                 f"someone who can write both files (set {AUDIT_KEY_ENV} when applying and verifying, so the head "
                 f"carries an HMAC), or a rollback of both files to an earlier state")
KEY_LIMITS = ("not detectable: a rollback of both the log and config.toml to an earlier state they were in together "
              "(keep a copy of the log where it cannot be rewritten to see that)")


def verify_log(path: str | Path, config_path: str | Path | None = None) -> Verification:
    """Check every entry's own hash and its link to the one before, and the log's tail against the head
    `apply_policy` anchored in ``config_path`` ([policy] log_head; default: config.toml beside the log); name the
    first altered entry. A missing or empty log, or one whose head is not anchored, fails."""
    path = Path(path)
    config_path = Path(config_path) if config_path is not None else path.with_name(CONFIG_FILE_NAME)
    head, key = anchored_head(config_path), _audit_key()
    limits = KEY_LIMITS if key and head is not None and head.hmac else NO_KEY_LIMITS
    anchored = "" if head is None else f"; {config_path} records {head.entries} entries"

    note = ""  # said with any finding

    def fail(entries: int, first: int | None, message: str) -> Verification:
        return Verification(False, entries, first, message + note, limits)

    if not path.exists():
        return fail(0, None, f"no decision log at {path}{anchored}")
    try:
        entries = read_log(path)
    except AuditError as exc:
        return fail(exc.entry or 0, exc.entry, str(exc))
    if not entries:
        return fail(0, None, f"{path} is empty: it has no entries{anchored}")
    if any(raw.endswith("\r") for raw, _ in entries):
        note = " (its lines end in CR LF: were the line endings changed, e.g. by a checkout or an editor?)"
    prev_raw = None
    for n, (raw, entry) in enumerate(entries, start=1):
        body = {k: v for k, v in entry.items() if k != "sha256"}
        when = shorten(entry.get("time", "?"), 40)
        try:
            intact = entry.get("sha256") == _sha(_canonical(body))
        except ValueError:  # NaN or infinity: nothing apply writes
            intact = False
        if not intact:
            return fail(len(entries), n, f"entry {n} ({when}) was altered: its content no longer matches its SHA-256")
        expected_prev = GENESIS if prev_raw is None else _sha(prev_raw)
        if entry.get("prev_sha256") != expected_prev or entry.get("seq", n) != n:
            # This entry is intact, so what it recorded about the one before is what no longer holds.
            culprit = max(n - 1, 1)
            return fail(len(entries), culprit, f"entry {culprit} was altered, removed or reordered: entry {n} ({when}) "
                                               f"recorded a different SHA-256 or position for it")
        prev_raw = raw
    n = len(entries)
    if head is None:
        return fail(n, None, f"the {n} entries are chained intact, but {config_path} anchors no head of this log "
                             f"([policy] log_head, written by `pyxl-del apply`): a removed last entry or a rewritten "
                             f"log could not be seen")
    if head.hmac and key and not hmac.compare_digest(head.hmac, head_mac(head.entries, head.sha256, key)):
        return fail(n, None, f"{config_path} [policy] log_head fails its HMAC: the head was forged, or "
                             f"{AUDIT_KEY_ENV} is not the key it was written with")
    if key and not head.hmac:
        return fail(n, None, f"{config_path} [policy] log_head has no HMAC although {AUDIT_KEY_ENV} is set: it was "
                             f"written without the key, or forged")
    logged = (config_path.parent / head.log).resolve()
    if logged != path.resolve():
        return fail(n, None, f"{config_path} anchors the log {logged}, not {path}: verify that one, or pass the "
                             f"config this log belongs to (--config)")
    if n < head.entries:
        return fail(n, n + 1, f"the log ends at entry {n}, but {config_path} records {head.entries} entries: the last "
                              f"{head.entries - n} were removed")
    if _sha(entries[head.entries - 1][0]) != head.sha256:
        return fail(n, head.entries, f"entry {head.entries} is not the one `apply` wrote (its SHA-256 differs from "
                                     f"{config_path} [policy] log_head): the log was rewritten from there on or before")
    if n > head.entries:
        return fail(n, head.entries + 1, f"entries {head.entries + 1} to {n} were added after the last apply "
                                         f"({config_path} records {head.entries}): not written by `pyxl-del apply`")
    mac = ", its HMAC verified" if key and head.hmac else (
        f" (its HMAC is not checked: {AUDIT_KEY_ENV} is not set)" if head.hmac else "")
    return Verification(True, n, None, f"{n} entries, chain intact; the newest matches the head {config_path} "
                                       f"records{mac}", limits)


def verified_log(path: str | Path, config_path: str | Path | None = None) -> list[tuple[str, dict]]:
    """The entries of the log at ``path`` once `verify_log` (`audit verify`'s check) finds it intact, else an
    AuditError naming the log, the entry and what is wrong: appending to an altered log would re-anchor its head
    on the alteration, and `track` would read an older or edited decision as the last. A log not begun (no file,
    or an empty one, and no head in the config) has no entries."""
    path = Path(path)
    config_path = Path(config_path) if config_path is not None else path.with_name(CONFIG_FILE_NAME)
    if not (path.exists() and path.stat().st_size) and anchored_head(config_path) is None:
        return []
    check = verify_log(path, config_path)
    if not check.ok:
        raise AuditError(f"decision log {path} failed its check ({check.message}): nothing was read from it or "
                         f"written to it; `pyxl-del audit verify --log {path}` says the same", check.first_altered)
    return read_log(path)


def anchored_head(config_path: Path) -> LogHead | None:
    """The log head config.toml records ([policy] log_head), if the file has one."""
    if not config_path.is_file():
        return None
    text = read_text(config_path, "config", error=ConfigError)
    with reading(config_path, "config", error=ConfigError):
        head = tomllib.loads(text).get("policy", {}).get("log_head")
    if head is None:
        return None
    try:
        return LogHead.model_validate_json(json.dumps(head, default=str), strict=True)
    except ValidationError as exc:
        raise ConfigError(f"{config_path}: [policy] log_head is not a log head written by `pyxl-del apply`: "
                          f"{shorten(exc.errors()[0]['msg'])}") from None


# ------------------------------------------------------------------------------------------------- apply


def effective_month(text: str | None) -> str:
    """``text`` as a YYYY-MM month (default: this month); anything else is an InputError."""
    effective = text or time.strftime("%Y-%m")
    m = re.fullmatch(r"(\d{4})-(\d{2})", effective.strip())
    if m is None or not 1 <= int(m.group(2)) <= 12:
        raise InputError(f"effective from {shorten(effective, 40)!r}: give a month as YYYY-MM, e.g. 2025-01")
    month_index(int(m.group(1)), int(m.group(2)))
    return effective.strip()


def apply_policy(policy: Policy, *, config_path: str | Path, log_path: str | Path | None = None,
                 before: Policy | None = None, twin=None, effective_from: str | None = None,
                 note: str = "") -> dict:
    """Write ``policy`` to config.toml's [policy] section and append the decision to the log; returns the entry.

    ``twin`` (the fitted twin the decision was made on) adds the expected impact: the figures of `evaluate`
    and the expected DEL30 curve by MOB per segment, which `track` later compares with what happened.
    ``effective_from`` (YYYY-MM; default: this month) is the first cohort the decision governs.

    Under the log's lock: the config is read afresh, the entry chained to the log's newest line, config.toml
    written (the policy and the new head, in one rename) and the entry appended — so concurrent applies queue
    and the chain never forks. A crash between the two writes leaves the head one entry ahead of the log, which
    `verify_log` reports.
    """
    config_path = Path(config_path)
    target = Path(log_path) if log_path is not None else config_path.with_name(LOG_FILE_NAME)
    effective = effective_month(effective_from)
    impact = None
    if twin is not None:  # before writing: a policy the twin rejects (other segments) must leave config.toml as it was
        impact = {"figures": evaluate(twin, policy), "del30_by_mob": expected_del30_curve(twin, policy)}
    target.parent.mkdir(parents=True, exist_ok=True)
    with locked(lock_path(target)):
        text = read_text(config_path, "config", error=ConfigError) if config_path.exists() else ""
        with reading(config_path, "config", error=ConfigError):
            parsed = config_from_dict(tomllib.loads(replace_policy_section(text, policy)), source=str(config_path))
        if dict(parsed.policy.segments) != dict(policy.segments):
            raise ConfigError(f"{config_path}: the [policy] written does not read back as the policy applied")
        entries = verified_log(target, config_path)
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "user": _user(),
            "action": "apply",
            "config": str(config_path),
            "policy_version": policy.version_under(parsed),
            "effective_from": effective,
            "before": None if before is None else before.model_dump(mode="json", exclude_none=True),
            "after": policy.model_dump(mode="json", exclude_none=True),
            "expected_impact": impact,
            "note": note,
        }
        line = _chained(entries, entry)
        key = _audit_key()
        head = LogHead(entries=len(entries) + 1, sha256=_sha(line), log=_log_name(target, config_path),
                       hmac=head_mac(len(entries) + 1, _sha(line), key) if key else "")
        with atomic_replace(config_path) as tmp:
            tmp.write_text(replace_policy_section(text, policy, head), encoding="utf-8")
        _append(target, line)
    written = json.loads(line)
    log.info("applied policy %s to %s; logged in %s", written["policy_version"], config_path, target)
    return written


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. some containers
        return "unknown"


# ------------------------------------------------------------------------------------------------- track


def last_applied(path: str | Path, config_path: str | Path | None = None) -> dict:
    """The newest apply entry of the log, once the log is verified (`verified_log`)."""
    applied = [e for _, e in verified_log(path, config_path) if e.get("action") == "apply"]
    if not applied:
        raise AuditError(f"{path}: no applied decision in the log")
    return applied[-1]


def track(data, config, log_path: str | Path, *, entry: dict | None = None, sheet=None,
          config_path: str | Path | None = None) -> pd.DataFrame:
    """Cohorts booked since a decision took effect vs what it expected; default: the last applied decision of the
    log, verified against the head ``config_path`` anchors (default: config.toml beside the log).

    Rows per segment and metric: volume (mean monthly amount booked), apr (booked, when the data has APR),
    below_cutoff (share of the booked amount scored under the cut-off, when it has a score) and DEL30 at
    MOB 3, 6 and 12 (mean over the tracked cohorts observed there). Columns: segment, metric, mob, expected,
    actual, difference, n_cohorts.
    """
    decision = entry or last_applied(log_path, config_path)
    impact = decision.get("expected_impact") or {}
    figures = {r["segment"]: r for r in impact.get("figures", [])}
    curves = impact.get("del30_by_mob", {})
    after = decision["after"]["segments"]
    since = month_index(int(decision["effective_from"][:4]), int(decision["effective_from"][5:7]))
    cfg = config
    frame, _source = read_decision_panel(data, cfg, sheet=sheet)
    result = run(frame, cfg.with_overrides(forecast={"intervals": False}))  # the expected paths only
    stats = result.stats
    tracked = stats.cohorts >= since
    rows = []
    ead0 = ead_at_mob0(stats)  # (S, C)
    del30 = result.rates["DEL30"]
    cohort_of_row = _parse_cohorts(frame[cfg["cohort"]], cfg["cohort"], [])
    mob0 = (column_numbers(frame[cfg["mob"]]) == 0) & (cohort_of_row >= since)
    for s, segment in enumerate(result.segments):
        if segment not in after:
            continue
        present = tracked & (ead0[s] > 0)
        n = int(present.sum())
        exp = figures.get(segment, {})
        rows.append((segment, "volume", None, exp.get("volume"), float(ead0[s, present].mean()) if n else np.nan, n))
        seg_rows = mob0 & (frame[cfg["segment"]].astype(str) == segment).to_numpy()
        weights = column_numbers(frame[cfg["ead"]], cfg.columns.decimal)[seg_rows]
        if cfg["apr"] is not None and cfg["apr"] in frame.columns:
            apr = column_numbers(frame[cfg["apr"]], cfg.columns.decimal)[seg_rows]
            actual = float(np.average(apr, weights=weights)) if weights.sum() > 0 else np.nan
            rows.append((segment, "apr", None, after[segment]["apr"], actual, n))
        cutoff = after[segment].get("cutoff")
        if cutoff is not None and cfg["score"] is not None and cfg["score"] in frame.columns:
            score = column_numbers(frame[cfg["score"]], cfg.columns.decimal)[seg_rows]
            below = float(weights[score < cutoff].sum() / weights.sum()) if weights.sum() > 0 else np.nan
            rows.append((segment, "below_cutoff", None, 0.0, below, n))
        for mob in TRACK_MOBS:
            observed = present & del30.is_actual[s, :, mob] if mob < del30.mixed.shape[2] else present & False
            actual = float(np.nanmean(del30.actual[s, observed, mob])) if observed.any() else np.nan
            curve = curves.get(segment)
            expected = curve[mob] if curve is not None and mob < len(curve) else None
            rows.append((segment, "del30", mob, expected, actual, int(observed.sum())))
    out = pd.DataFrame(rows, columns=["segment", "metric", "mob", "expected", "actual", "n_cohorts"])
    out["expected"] = pd.to_numeric(out["expected"], errors="coerce")
    out["difference"] = out["actual"] - out["expected"]
    out["mob"] = out["mob"].astype("Int64")
    out.attrs["decision"] = {k: decision.get(k) for k in ("time", "user", "policy_version", "effective_from")}
    out.attrs["tracked_cohorts"] = month_label(stats.cohorts[tracked])
    return out[["segment", "metric", "mob", "expected", "actual", "difference", "n_cohorts"]]
