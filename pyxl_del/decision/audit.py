"""Acting on a recommendation: apply it, log it tamper-evidently, and track what it did.

* `apply_policy` writes the accepted policy into the [policy] section of config.toml — only that section's
  ``budget`` and ``segments`` lines; every other line and comment stays as it was — and appends an entry to
  the decision log.
* The decision log is JSON Lines. Each entry holds the time, the OS user, the policy before and after, the
  expected impact, ``prev_sha256`` (the SHA-256 of the previous line's bytes) and ``sha256`` (of the entry's own
  canonical JSON without that field). `verify_log` names the first entry whose content or link no longer holds.
* `track` compares the cohorts booked since a decision took effect with what was expected when it was applied.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pyxl_del.decision.optimise import evaluate, expected_del30_curve
from pyxl_del.decision.policy import Policy
from pyxl_del.decision.twin import read_decision_panel
from pyxl_del.engine.config import ConfigError, config_from_dict
from pyxl_del.engine.data import _parse_cohorts, month_index, month_label
from pyxl_del.engine.errors import InputError
from pyxl_del.engine.files import atomic_replace
from pyxl_del.engine.metrics import ead_at_mob0
from pyxl_del.engine.pipeline import run

log = logging.getLogger(__name__)

GENESIS = "0" * 64
LOG_FILE_NAME = "decisions.jsonl"
TRACK_MOBS = (3, 6, 12)
_HEADER = re.compile(r"^\s*\[\s*([^\]\s]+)\s*\]\s*(#.*)?$")
_ARRAY_HEADER = re.compile(r"^\s*\[\[")


class AuditError(InputError):
    """A decision log that cannot be read or has been altered."""


# --------------------------------------------------------------------------------------------- config edit


def _toml_key_line(key: str, value) -> str:
    from pyxl_del.engine.config import _toml_value

    return f"{key} = {_toml_value(value)}"


def policy_toml_lines(policy: Policy) -> dict[str, str]:
    """The [policy] lines `apply_policy` writes: ``budget`` and ``segments`` (one inline table)."""
    segments = {name: p.model_dump(exclude_none=True) for name, p in policy.segments.items()}
    return {"budget": _toml_key_line("budget", float(policy.budget)),
            "segments": _toml_key_line("segments", segments)}


def replace_policy_section(text: str, policy: Policy) -> str:
    """``text`` with the [policy] section's budget and segments lines set to ``policy``; nothing else changes.

    A missing [policy] section is appended; a missing key is added at the end of the section.
    """
    lines = text.splitlines(keepends=True)
    wanted = policy_toml_lines(policy)
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
    """(raw line, parsed entry) per line; a line that is not JSON raises AuditError naming it."""
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            out.append((raw, json.loads(raw)))
        except json.JSONDecodeError as exc:
            raise AuditError(f"{path}: entry {n} is not valid JSON ({exc.msg}): the log was altered") from None
    return out


def append_entry(path: str | Path, entry: dict) -> dict:
    """Chain ``entry`` to the log's last line and append it; returns the entry as written."""
    path = Path(path)
    entries = read_log(path)
    body = {**_jsonable(entry), "prev_sha256": _sha(entries[-1][0]) if entries else GENESIS}
    body.pop("sha256", None)
    body["sha256"] = _sha(_canonical(body))
    line = _canonical(body)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8", newline="\n") as fh:
        fh.write(line + "\n")
    return body


@dataclass(frozen=True)
class Verification:
    ok: bool
    entries: int
    first_altered: int | None = None  # 1-based entry number
    message: str = ""


def verify_log(path: str | Path) -> Verification:
    """Check every entry's own hash and its link to the one before; name the first altered entry."""
    try:
        entries = read_log(path)
    except AuditError as exc:
        n = int(re.search(r"entry (\d+)", str(exc)).group(1))
        return Verification(False, n, n, str(exc))
    prev_raw = None
    for n, (raw, entry) in enumerate(entries, start=1):
        body = {k: v for k, v in entry.items() if k != "sha256"}
        when = entry.get("time", "?")
        if entry.get("sha256") != _sha(_canonical(body)):
            return Verification(False, len(entries), n, f"entry {n} ({when}) was altered: its content no longer "
                                                        f"matches its SHA-256")
        expected_prev = GENESIS if prev_raw is None else _sha(prev_raw)
        if entry.get("prev_sha256") != expected_prev:
            # This entry is intact, so what it recorded about the one before is what no longer holds.
            culprit = max(n - 1, 1)
            return Verification(False, len(entries), culprit,
                                f"entry {culprit} was altered, removed or reordered: entry {n} ({when}) recorded a "
                                f"different SHA-256 for it")
        prev_raw = raw
    return Verification(True, len(entries), None, f"{len(entries)} entries, chain intact")


# ------------------------------------------------------------------------------------------------- apply


def apply_policy(policy: Policy, *, config_path: str | Path, log_path: str | Path | None = None,
                 before: Policy | None = None, twin=None, effective_from: str | None = None,
                 note: str = "") -> dict:
    """Write ``policy`` to config.toml's [policy] section and append the decision to the log; returns the entry.

    ``twin`` (the fitted twin the decision was made on) adds the expected impact: the figures of `evaluate`
    and the expected DEL30 curve by MOB per segment, which `track` later compares with what happened.
    ``effective_from`` (YYYY-MM; default: this month) is the first cohort the decision governs.
    """
    config_path = Path(config_path)
    text = config_path.read_text(encoding="utf-8") if config_path.is_file() else ""
    new_text = replace_policy_section(text, policy)
    import tomllib

    try:
        parsed = config_from_dict(tomllib.loads(new_text), source=str(config_path))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config_path}: not valid TOML after writing [policy]: {exc}") from None
    if dict(parsed.policy.segments) != dict(policy.segments):
        raise ConfigError(f"{config_path}: the [policy] written does not read back as the policy applied")
    effective = effective_from or time.strftime("%Y-%m")
    month_index(int(effective[:4]), int(effective[5:7]))  # checks the spelling early
    impact = None
    if twin is not None:  # before writing: a policy the twin rejects (other segments) must leave config.toml as it was
        impact = {"figures": evaluate(twin, policy), "del30_by_mob": expected_del30_curve(twin, policy)}
    with atomic_replace(config_path) as tmp:
        tmp.write_text(new_text, encoding="utf-8")
    entry = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "user": _user(),
        "action": "apply",
        "config": str(config_path),
        "policy_version": policy.version,
        "effective_from": effective,
        "before": None if before is None else before.model_dump(mode="json", exclude_none=True),
        "after": policy.model_dump(mode="json", exclude_none=True),
        "expected_impact": impact,
        "note": note,
    }
    target = Path(log_path) if log_path is not None else config_path.with_name(LOG_FILE_NAME)
    written = append_entry(target, entry)
    log.info("applied policy %s to %s; logged in %s", policy.version, config_path, target)
    return written


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. some containers
        return "unknown"


# ------------------------------------------------------------------------------------------------- track


def last_applied(path: str | Path) -> dict:
    applied = [e for _, e in read_log(path) if e.get("action") == "apply"]
    if not applied:
        raise AuditError(f"{path}: no applied decision in the log")
    return applied[-1]


def track(data, config, log_path: str | Path, *, entry: dict | None = None, sheet=None) -> pd.DataFrame:
    """Cohorts booked since a decision took effect vs what it expected; default: the last applied decision.

    Rows per segment and metric: volume (mean monthly amount booked), apr (booked, when the data has APR),
    below_cutoff (share of the booked amount scored under the cut-off, when it has a score) and DEL30 at
    MOB 3, 6 and 12 (mean over the tracked cohorts observed there). Columns: segment, metric, mob, expected,
    actual, difference, n_cohorts.
    """
    decision = entry or last_applied(log_path)
    impact = decision.get("expected_impact") or {}
    figures = {r["segment"]: r for r in impact.get("figures", [])}
    curves = impact.get("del30_by_mob", {})
    after = decision["after"]["segments"]
    since = month_index(int(decision["effective_from"][:4]), int(decision["effective_from"][5:7]))
    cfg = config
    frame, _source = read_decision_panel(data, cfg, sheet=sheet)
    result = run(frame, cfg)
    stats = result.stats
    tracked = stats.cohorts >= since
    rows = []
    ead0 = ead_at_mob0(stats)  # (S, C)
    del30 = result.rates["DEL30"]
    cohort_of_row = _parse_cohorts(frame[cfg["cohort"]], cfg["cohort"], [])
    mob0 = (pd.to_numeric(frame[cfg["mob"]], errors="coerce") == 0).to_numpy() & (cohort_of_row >= since)
    for s, segment in enumerate(result.segments):
        if segment not in after:
            continue
        present = tracked & (ead0[s] > 0)
        n = int(present.sum())
        exp = figures.get(segment, {})
        rows.append((segment, "volume", None, exp.get("volume"), float(ead0[s, present].mean()) if n else np.nan, n))
        seg_rows = mob0 & (frame[cfg["segment"]].astype(str) == segment).to_numpy()
        weights = pd.to_numeric(frame[cfg["ead"]], errors="coerce").to_numpy()[seg_rows]
        if cfg["apr"] is not None and cfg["apr"] in frame.columns:
            apr = pd.to_numeric(frame[cfg["apr"]], errors="coerce").to_numpy()[seg_rows]
            actual = float(np.average(apr, weights=weights)) if weights.sum() > 0 else np.nan
            rows.append((segment, "apr", None, after[segment]["apr"], actual, n))
        cutoff = after[segment].get("cutoff")
        if cutoff is not None and cfg["score"] is not None and cfg["score"] in frame.columns:
            score = pd.to_numeric(frame[cfg["score"]], errors="coerce").to_numpy()[seg_rows]
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
