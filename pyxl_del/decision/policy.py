"""The credit policy as a validated value: per segment cut-off, APR and budget share, with a stable version.

`Policy` is the boundary object of the decision engine: the optimiser returns one, `apply_policy` writes one to
config.toml and the decision log, and a real-time service can load one and know exactly which it has.

Versions: ``version`` is the hash of the policy's canonical JSON, so equal policies have equal versions wherever
they are made. What a decision carries, and what the log, the service and the sheets show, is
``version_under(config)``: the policy together with every setting a decision under it depends on (the twin's
settings — [risk] lgd, [economics], [buckets], ... — and [policy] apr_min / apr_max), so a decision's version
identifies the settings of the model that made it; the data are named beside it (the log's and the service's data).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pyxl_del.engine.config import (
    Config,
    ConfigError,
    Decide,
    PolicySettings,
    SegmentPolicy,
)
from pyxl_del.engine.errors import InputError

SHARE_TOLERANCE = 1e-6
CANONICAL_DIGITS = 12
POLICY_COLUMNS = ("segment", "cutoff", "apr", "budget_share")


class PolicyError(InputError):
    """A policy that cannot be used as it stands; the message says which segment and field."""


class Policy(BaseModel):
    """Per segment: accept scores >= cutoff, lend at apr, book up to budget_share x budget a month."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    segments: dict[str, SegmentPolicy]
    budget: float = Field(ge=0)  # monthly new lending the shares divide

    @model_validator(mode="after")
    def _shares(self) -> Policy:
        if not self.segments:
            raise ValueError("a policy needs at least one segment")
        total = sum(p.budget_share for p in self.segments.values())
        if total > 1 + SHARE_TOLERANCE:
            raise ValueError(f"budget shares add up to {total:.6g} > 1")
        return self

    def canonical_json(self) -> str:
        """Sorted keys, no whitespace, no NaN, numbers to 12 significant digits: the same policy gives the same
        text on every machine, and a trip through a spreadsheet cell (15 digits) does not change it."""
        return json.dumps(_rounded(self.model_dump(mode="json", exclude_none=True)), sort_keys=True,
                          separators=(",", ":"), allow_nan=False)

    @property
    def version(self) -> str:
        """The policy's own version: equal policies, equal versions."""
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()[:16]

    def version_under(self, config: Config) -> str:
        """The version of decisions made under this policy with ``config``: it changes with the policy and with
        every setting that changes a decision (`twin_fingerprint` and the APR bounds), and with nothing else."""
        bounds = f"[policy] apr_min = {config.policy.apr_min!r}, apr_max = {config.policy.apr_max!r}"
        text = "\n".join((self.canonical_json(), twin_fingerprint(config), bounds))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    def table(self) -> pd.DataFrame:
        """segment, cutoff (NaN: accept all), apr, budget_share — the Policy sheet's rows."""
        names = list(self.segments)
        return pd.DataFrame({
            "segment": pd.array(names, dtype="string"),
            "cutoff": [np.nan if p.cutoff is None else p.cutoff for p in self.segments.values()],
            "apr": [p.apr for p in self.segments.values()],
            "budget_share": [p.budget_share for p in self.segments.values()],
        })

    def arrays(self, segments: tuple[str, ...], n_bands: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(cutoff (S,) NaN = accept all, apr (S, B), share (S,)) in the order of ``segments``."""
        missing = [s for s in segments if s not in self.segments]
        unknown = [s for s in self.segments if s not in segments]
        if missing or unknown:
            raise PolicyError("the policy does not match the data's segments: "
                              + "; ".join(p for p in (f"missing {missing}" if missing else "",
                                                      f"unknown {unknown}" if unknown else "") if p))
        rows = [self.segments[s] for s in segments]
        apr = np.empty((len(rows), n_bands))
        for i, (name, p) in enumerate(zip(segments, rows, strict=True)):
            if p.band_aprs is None:
                apr[i] = p.apr
            elif len(p.band_aprs) != n_bands:
                raise PolicyError(f"segment {name!r}: band_aprs has {len(p.band_aprs)} APRs for {n_bands} score bands")
            else:
                apr[i] = p.band_aprs
        cutoff = np.array([np.nan if p.cutoff is None else p.cutoff for p in rows])
        return cutoff, apr, np.array([p.budget_share for p in rows])

    @classmethod
    def from_arrays(cls, segments, cutoff, apr, share, budget: float, band_aprs=None) -> Policy:
        """The inverse of `arrays`; band_aprs (S, B) is kept when pricing is per band."""
        entries = {}
        for i, name in enumerate(segments):
            entry = {"cutoff": None if np.isnan(cutoff[i]) else float(cutoff[i]), "apr": float(apr[i]),
                     "budget_share": float(share[i])}
            if band_aprs is not None:
                entry["band_aprs"] = tuple(float(a) for a in band_aprs[i])
            entries[str(name)] = entry
        return cls.model_validate({"segments": entries, "budget": float(budget)})

    @classmethod
    def from_table(cls, table: pd.DataFrame, budget: float, source: str = "Policy sheet") -> Policy:
        """A Policy from a sheet or CSV with the POLICY_COLUMNS; errors name the row (the header is row 1) and the
        column. Empty rows are skipped; an empty cutoff accepts every score."""
        missing = [c for c in POLICY_COLUMNS if c not in table.columns]
        if missing:
            raise PolicyError(f"{source}: missing columns {missing} (expected {list(POLICY_COLUMNS)})")
        entries, first_row, problems = {}, {}, []
        for i, row in enumerate(table.itertuples(index=False), start=2):
            if all(_blank(getattr(row, c)) for c in POLICY_COLUMNS):
                continue  # e.g. a row cleared on the sheet
            name = "" if _blank(row.segment) else str(row.segment).strip()
            if not name:
                problems.append(f"row {i}: segment is empty")
                continue
            if name in first_row:
                problems.append(f"row {i}: segment {name!r} is already in row {first_row[name]}")
                continue
            first_row[name] = i
            entry = {"cutoff": None if _blank(row.cutoff) else _number(row.cutoff),
                     "apr": _number(row.apr), "budget_share": _number(row.budget_share)}
            try:
                entries[name] = SegmentPolicy.model_validate(entry)
            except ValidationError as exc:
                problems += [f"row {i} ({name}): {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        if problems:
            raise PolicyError(f"{source}: " + "; ".join(problems))
        try:
            return cls(segments=entries, budget=budget)
        except ValidationError as exc:
            raise PolicyError(f"{source}: " + "; ".join(
                ("budget: " if e["loc"] == ("budget",) else "") + e["msg"] for e in exc.errors())) from None


def table_rows(table: pd.DataFrame) -> dict[str, int]:
    """Segment -> its row in a policy table, numbered as `Policy.from_table` numbers them (the header is row 1)."""
    rows = {}
    for i, segment in enumerate(table["segment"], start=2):
        if not _blank(segment):
            rows.setdefault(str(segment).strip(), i)
    return rows


def twin_fingerprint(config: Config) -> str:
    """The config as far as the twin depends on it: everything but the applied policy and these settings, so
    applying a new policy reuses the fitted twin."""
    return config.model_copy(update={"policy": PolicySettings(), "decide": Decide()}).to_toml()


def _rounded(value):
    if isinstance(value, float):
        return float(f"{value:.{CANONICAL_DIGITS}g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


def _blank(value) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return value is None or bool(pd.isna(value))


def _number(value):
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return value  # left for pydantic to reject with the field's name


def policy_from_settings(settings, budget: float) -> Policy:
    """The applied policy of a config's [policy] section (``budget`` already resolved to an amount)."""
    try:
        return Policy(segments=dict(settings.segments), budget=budget)
    except ValidationError as exc:
        raise ConfigError("[policy] segments: " + "; ".join(e["msg"] for e in exc.errors())) from None
