"""Stage 0 — configuration: `config.toml` validated by pydantic.

Every column access in the engine goes through the `[columns]` mapping (``cfg["loan_id"]``), the CFG
dictionary of the original requirements. The requirement names BUCKETS_30P/60P/90P, K_CLIP and
CALIBRATION_MODE are kept as aliases so they stay findable.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

LOGICAL_COLUMNS = ("loan_id", "cohort", "mob", "segment", "state", "ead")
DEL_TYPES = ("DEL30", "DEL60", "DEL90")
CONFIG_FILE_NAME = "config.toml"


class ConfigError(ValueError):
    """A config file or value that cannot be used; the message names the file and the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Columns(_Section):
    """The CFG mapping: logical key -> column name in the data."""

    loan_id: str = "AGREEMENT_ID"
    cohort: str = "DISBURSAL_MONTH"
    mob: str = "MOB"
    segment: str = "PRODUCT_TYPE"
    state: str = "STATE_MODEL"
    ead: str = "PRINCIPLE_OUTSTANDING"

    @model_validator(mode="after")
    def _distinct(self) -> Columns:
        names = [getattr(self, k) for k in LOGICAL_COLUMNS]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"two logical columns map to the same data column: {dupes}")
        if any(not n.strip() for n in names):
            raise ValueError("a column name is empty")
        return self


class Buckets(_Section):
    order: tuple[str, ...] = ("CURRENT", "DPD1+", "DPD30+", "DPD60+", "DPD90+", "WRITEOFF", "PREPAY")
    absorbing: tuple[str, ...] = ("WRITEOFF", "PREPAY")
    del30: tuple[str, ...] = ("DPD30+", "DPD60+", "DPD90+", "WRITEOFF")
    del60: tuple[str, ...] = ("DPD60+", "DPD90+", "WRITEOFF")
    del90: tuple[str, ...] = ("DPD90+", "WRITEOFF")

    @model_validator(mode="after")
    def _subsets_of_order(self) -> Buckets:
        if len(set(self.order)) != len(self.order):
            raise ValueError(f"order lists a bucket twice: {list(self.order)}")
        if len(self.order) < 2:
            raise ValueError("order needs at least two buckets")
        for key in ("absorbing", "del30", "del60", "del90"):
            unknown = [b for b in getattr(self, key) if b not in self.order]
            if unknown:
                raise ValueError(f"{key} lists buckets that are not in order: {unknown}")
        for key in ("del30", "del60", "del90"):
            if not getattr(self, key):
                raise ValueError(f"{key} is empty")
        return self

    # Names used by the original requirements text.
    @property
    def BUCKETS_30P(self) -> tuple[str, ...]:  # noqa: N802
        return self.del30

    @property
    def BUCKETS_60P(self) -> tuple[str, ...]:  # noqa: N802
        return self.del60

    @property
    def BUCKETS_90P(self) -> tuple[str, ...]:  # noqa: N802
        return self.del90

    def bad(self, del_type: str) -> tuple[str, ...]:
        """The bad buckets of a DEL type ("DEL30", "DEL60", "DEL90")."""
        key = del_type.lower()
        if del_type not in DEL_TYPES:
            raise ConfigError(f"unknown DEL type {del_type!r}; known: {', '.join(DEL_TYPES)}")
        return getattr(self, key)


class Transitions(_Section):
    weighting: Literal["ead", "balance", "count"] = "ead"
    min_count: int = Field(30, ge=0)
    fallback: Literal["pooled", "none"] = "pooled"


class Calibration(_Section):
    mode: Literal["stepwise", "none"] = "stepwise"
    k_clip: tuple[float, float] = (0.5, 2.0)
    del_type: Literal["DEL30", "DEL60", "DEL90"] = "DEL30"

    @model_validator(mode="after")
    def _clip_ordered(self) -> Calibration:
        lo, hi = self.k_clip
        if not (0 < lo <= 1 <= hi):
            raise ValueError(f"k_clip must satisfy 0 < min <= 1 <= max, got {list(self.k_clip)}")
        return self

    @property
    def K_CLIP(self) -> tuple[float, float]:  # noqa: N802
        return self.k_clip

    @property
    def CALIBRATION_MODE(self) -> str:  # noqa: N802
        return self.mode


class Forecast(_Section):
    max_mob: int = Field(36, ge=1, le=600)


class Portfolio(_Section):
    aggregation: Literal["mean", "ead_weighted"] = "mean"


class Config(_Section):
    """The whole validated configuration. ``cfg["ead"]`` is the data column mapped to the logical key."""

    columns: Columns = Columns()
    buckets: Buckets = Buckets()
    transitions: Transitions = Transitions()
    calibration: Calibration = Calibration()
    forecast: Forecast = Forecast()
    portfolio: Portfolio = Portfolio()

    def __getitem__(self, column_key: str) -> str:
        if column_key not in LOGICAL_COLUMNS:
            raise ConfigError(
                f"unknown column key {column_key!r}; [columns] keys are: {', '.join(LOGICAL_COLUMNS)}"
            )
        return getattr(self.columns, column_key)

    def with_overrides(self, **sections: dict) -> Config:
        """A copy with some keys changed, validated like a file: ``cfg.with_overrides(calibration={"mode": "none"})``."""
        data = self.model_dump()
        for section, values in sections.items():
            if section not in data:
                raise ConfigError(f"unknown config section [{section}]")
            data[section].update(values)
        return config_from_dict(data, source="overrides")

    def to_toml(self) -> str:
        """The config as TOML text (the Run info sheet and the CLI show it)."""
        lines: list[str] = []
        for section, values in self.model_dump().items():
            lines.append(f"[{section}]")
            lines.extend(f"{key} = {_toml_value(v)}" for key, v in values.items())
            lines.append("")
        return "\n".join(lines)


def _toml_value(value) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def _describe(error: dict) -> str:
    loc = [str(p) for p in error["loc"]]
    if loc:
        key = f"[{loc[0]}] {'.'.join(loc[1:])}".strip() if len(loc) > 1 else f"[{loc[0]}]"
    else:
        key = "(top level)"
    msg = error["msg"]
    if error["type"] == "extra_forbidden":
        msg = "unknown key"
    elif "input" in error and error["type"] not in ("missing",):
        msg = f"{msg} (got {error['input']!r})"
    return f"{key}: {msg}"


def config_from_dict(data: dict, source: str = "config") -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems = "\n  ".join(_describe(e) for e in exc.errors())
        raise ConfigError(f"{source}: invalid configuration\n  {problems}") from None


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate a config file.

    With no path, ``./config.toml`` is used when it exists, else the built-in defaults (which equal the
    repository's config.toml).
    """
    if path is None:
        candidate = Path.cwd() / CONFIG_FILE_NAME
        if not candidate.is_file():
            return Config()
        path = candidate
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return config_from_dict(data, source=str(path))
