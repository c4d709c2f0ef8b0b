"""Stage 0 — configuration: `config.toml` validated by pydantic.

Every column access in the engine goes through the `[columns]` mapping (``cfg["loan_id"]``), the CFG
dictionary of the original requirements. The requirement names BUCKETS_30P/60P/90P, K_CLIP and
CALIBRATION_MODE are kept as aliases so they stay findable.
"""

from __future__ import annotations

import datetime
import json
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from pyxl_del.engine.errors import InputError, closest_name, read_text, reading, shorten, validation_errors

LOGICAL_COLUMNS = ("loan_id", "cohort", "mob", "segment", "state", "ead")
# Read only by the decision engine, and only when configured and present in the data.
OPTIONAL_COLUMNS = ("score", "apr", "policy_arm")
DEL_TYPES = ("DEL30", "DEL60", "DEL90")
# The strptime directives [columns] cohort_format may use: the ones every backend's date parser reads alike.
COHORT_DIRECTIVES = ("Y", "y", "m", "b", "B", "d", "H", "M", "S")
# The DEL type as an argument type; the UDF arguments (pyxl_del.excel.udf) validate against it too.
DelType = Literal["DEL30", "DEL60", "DEL90"]


def _cell_text(value: Any) -> Any:
    """A text argument typed as a number in Excel (a segment called 2024) arrives as 2024.0: make it "2024"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value


def not_a_boolean(value: Any) -> Any:
    """pydantic reads true as 1.0: a yes / no in a number's field (a TRUE cell) is a mistake, not a number. (A
    ValueError is what pydantic reports as a validation error.)"""
    if isinstance(value, bool):
        raise ValueError(f"{str(value).lower()} is not a number")  # noqa: TRY004
    return value


#: Text from a cell or a request (a segment, a path): never empty, a whole number typed where text was meant is read
#: as its digits. Shared by the worksheet functions' arguments and the decision service's requests.
CellText = Annotated[str, BeforeValidator(_cell_text), Field(min_length=1)]
CONFIG_FILE_NAME = "config.toml"


class ConfigError(InputError):
    """A config file or value that cannot be used; the message names the file and the key."""


class _Section(BaseModel):
    # No NaN and no infinity unless a field says so (a bound that may be absent): a NaN rate or cut-off would
    # compare False everywhere and decide nothing, silently.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Columns(_Section):
    """The CFG mapping: logical key -> column name in the data."""

    loan_id: str = "AGREEMENT_ID"
    cohort: str = "DISBURSAL_MONTH"
    mob: str = "MOB"
    segment: str = "PRODUCT_TYPE"
    state: str = "STATE_MODEL"
    ead: str = "PRINCIPLE_OUTSTANDING"
    score: str | None = "SCORE"  # origination score; "" = not used
    apr: str | None = "APR"  # annual percentage rate of the loan; "" = not used
    policy_arm: str | None = "POLICY_ARM"  # champion / challenger arm of the loan (pyxl_del.decision.abtest); "" = not used
    # How cohort text is read: "" = ISO text (2023-07, 2023-07-05), 202307 and real dates only, so "05/07/2023" is
    # rejected rather than guessed; or one strptime format for every value (e.g. "%d/%m/%Y").
    cohort_format: str = ""
    # How EAD written as text writes its decimals: "." (1234567.5), or "," as a Vietnamese or German Excel saves a
    # CSV (1.234.567,5: a point or a space between thousands). Cells stored as numbers are read as they are.
    decimal: Literal[".", ","] = "."

    @field_validator("cohort_format")
    @classmethod
    def _one_date_format(cls, value: str) -> str:
        if not value:
            return value
        unknown = sorted(set(re.findall(r"%(.)", value.replace("%%", ""))) - set(COHORT_DIRECTIVES))
        if unknown:
            raise ValueError(f"unknown or unsupported directives {', '.join('%' + u for u in unknown)}; use "
                             f"{' '.join('%' + d for d in COHORT_DIRECTIVES)} (e.g. \"%d/%m/%Y\")")
        if not re.search("%[Yy]", value) or not re.search("%[mbB]", value):
            raise ValueError("a cohort format needs a year (%Y or %y) and a month (%m, %b or %B), e.g. \"%d/%m/%Y\"")
        return value

    @field_validator(*OPTIONAL_COLUMNS)
    @classmethod
    def _blank_is_unused(cls, value: str | None) -> str | None:
        # TOML has no null, so an empty name is how a file switches an optional column off.
        return value if value is None or value.strip() else None

    @model_validator(mode="after")
    def _distinct(self) -> Columns:
        names = [getattr(self, k) for k in LOGICAL_COLUMNS + OPTIONAL_COLUMNS if getattr(self, k) is not None]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"two logical columns map to the same data column: {dupes}")
        empty = [k for k in LOGICAL_COLUMNS if not getattr(self, k).strip()]
        if empty:
            raise ValueError(f"the column name of {', '.join(empty)} is empty: the engine needs it (only "
                             f"{', '.join(OPTIONAL_COLUMNS)} may be \"\" to leave them out)")
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
        for wider, narrower in (("del30", "del60"), ("del60", "del90")):
            outside = [b for b in getattr(self, narrower) if b not in getattr(self, wider)]
            if outside:
                raise ValueError(f"{narrower} lists {outside}, which {wider} does not: a loan 60 or 90 days late is "
                                 f"also 30 days late, so each DEL's buckets are among the one before's")
        # The order is read as best to worst: the first bucket is where a cure goes, and stress scenarios shift moves
        # toward the end. A reordered list ran silently and gave other forecasts and a "severe" scenario below the
        # baseline, so the DEL buckets must be the worst live ones.
        live = [b for b in self.order if b not in self.absorbing]
        if not live:
            raise ValueError("every bucket of order is absorbing: a chain needs a live one (CURRENT)")
        for key in ("del30", "del60", "del90"):
            bad = [b for b in live if b in getattr(self, key)]
            if bad and live[-len(bad):] != bad:
                raise ValueError(f"order lists the buckets best to worst (the first is where a cure goes; stress "
                                 f"shifts move toward the end), so {key}'s live buckets {bad} must be the last of "
                                 f"the live ones, in that order; got {live}")
        if live[0] in self.del30:
            raise ValueError(f"order's first live bucket {live[0]!r} is in del30: order lists the buckets best to "
                             f"worst, the first being current (where a cure goes)")
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
    weighting: Literal["ead", "balance", "count"] = "balance"
    min_count: int = Field(30, ge=0)
    fallback: Literal["pooled", "none"] = "pooled"
    # "specified": each row from its own loans (min_count fallback); "bayes": each row shrunk toward a prior made of
    # the segment's neighbouring MOBs, the other segments at the MOB and the segment over all MOBs (methodology §2).
    estimator: Literal["specified", "bayes"] = "bayes"
    # The prior's weight in loans (bayes): "auto" fits one per from-state by empirical Bayes; a number fixes it.
    prior_strength: Literal["auto"] | Annotated[float, Field(ge=0)] = "auto"
    # bayes: the prior leans toward "stays in its state" with the weight of this many loans, so a prior resting on
    # a loan or two stays put rather than copy them; 0 = off (the default since the prior has the whole book's rows).
    prior_stay: float = Field(0.0, ge=0)
    half_life: float = Field(0.0, ge=0)  # months: a transition reported this long before the data's newest one counts half
    window: int = Field(0, ge=0)  # use only the transitions of the last N months that report any; 0 = all
    # the tail pools the segment's last N estimated MOB steps; "auto": row by row, as many as hold min_count loans
    tail_window: Literal["auto"] | Annotated[int, Field(ge=1)] = "auto"


class Calibration(_Section):
    mode: Literal["stepwise", "none"] = "stepwise"
    k_clip: tuple[float, float] = (0.5, 2.0)
    del_type: DelType = "DEL30"
    weights: Literal["cohorts", "ead", "loans"] = "loans"  # the mean over cohorts behind k (plain: specified)
    min_cohort_loans: int = Field(1, ge=1)  # a cohort with fewer loans at m-1 is left out of k[m]
    cohort_factor: Literal["none", "credibility"] = "credibility"  # vintage quality (engine/calibration.py)
    cohort_credibility: Literal["auto"] | Annotated[float, Field(ge=0)] = "auto"  # kappa of Z = w / (w + kappa)
    # the range of a cohort factor: wider than k_clip, as loans of different eras differ by more than 2x
    cohort_clip: tuple[float, float] = (0.1, 10.0)
    # the correlation of the vintage levels of cohorts one month apart (cohort_credibility "auto"): "auto" by maximum
    # likelihood, 0 independent vintages (each shrunk toward 1 alone)
    vintage_correlation: Literal["auto"] | Annotated[float, Field(ge=0, lt=1)] = "auto"
    # the calendar level of each reporting month (engine/period.py): "auto" divides it out of the transitions and
    # carries the last period_months' level into the forecast when the months differ at p < period_significance
    period_level: Literal["none", "auto", "always"] = "auto"
    period_significance: float = Field(0.001, gt=0, lt=1)
    period_months: int = Field(3, ge=1)

    @model_validator(mode="after")
    def _clip_ordered(self) -> Calibration:
        for key in ("k_clip", "cohort_clip"):
            lo, hi = getattr(self, key)
            if not (0 < lo <= 1 <= hi):
                raise ValueError(f"{key} must satisfy 0 < min <= 1 <= max, got {[lo, hi]}")
        return self

    @property
    def K_CLIP(self) -> tuple[float, float]:  # noqa: N802
        return self.k_clip

    @property
    def CALIBRATION_MODE(self) -> str:  # noqa: N802
        return self.mode


MAX_MOB = 600  # fifty years on book: beyond it a MOB is a typo
# The DEL specification's exact estimator and calibration: the defaults until out-of-sample backtests chose
# Bayes rows, dollar roll rates and cohort factors (docs/backtesting.md 6b). `Config.as_specified` applies it.
SPECIFIED: dict[str, dict] = {
    "transitions": {"estimator": "specified", "weighting": "ead", "half_life": 0, "window": 0, "tail_window": 1},
    "calibration": {"mode": "stepwise", "del_type": "DEL30", "weights": "cohorts", "cohort_factor": "none",
                    "period_level": "none"},
}
PANEL_MAX_MOB = 1200  # a panel row's MOB: rows beyond max_mob feed the risk views, but a hundred years is a typo
EAD_LIMIT = 1e15  # a panel row's EAD above this is a misread value (1e300 would move every DEL cell), not a balance


Level = Annotated[float, Field(gt=0, lt=1)]


class Forecast(_Section):
    max_mob: int = Field(36, ge=1, le=MAX_MOB)
    # Forecast distributions (pyxl_del.engine.intervals): quantiles of each forecast cell from simulated paths
    # (finitely many loans, and the transition rows drawn from their posterior). The median is always added.
    intervals: bool = True
    interval_draws: int = Field(100, ge=10, le=100_000)
    interval_levels: tuple[Level, ...] = Field((0.1, 0.9), min_length=1)
    seed: int = Field(20240101, ge=0)

    @model_validator(mode="after")
    def _levels_ordered(self) -> Forecast:
        if list(self.interval_levels) != sorted(set(self.interval_levels)):
            raise ValueError(f"interval_levels must be distinct and ascending, got {list(self.interval_levels)}")
        return self

    @property
    def quantile_levels(self) -> tuple[float, ...]:
        """The interval levels with the median, ascending."""
        return tuple(sorted({*self.interval_levels, 0.5}))


class Portfolio(_Section):
    aggregation: Literal["mean", "ead_weighted"] = "mean"


# The values a key left out of [economics], [demand] and [risk] lgd takes. They are ILLUSTRATIVE: chosen to give
# plausible magnitudes on the bundled sample, calibrated to no lender. Every ROE, value, price and frontier figure
# that rests on one of them says ILLUSTRATIVE (pyxl_del.decision.economics.Terms).
ILLUSTRATIVE_ECONOMICS = {"funding_rate": 0.07, "opex_rate": 0.10, "opex_upfront": 0.03, "tax_rate": 0.20,
                          "discount_rate": 0.12, "hurdle_rate": 0.15, "default_apr": 0.30}
ILLUSTRATIVE_DEMAND = {"max_take_up": 0.80, "midpoint": 0.35, "steepness": 15.0}
ILLUSTRATIVE_LGD = 0.65
Rate = Annotated[float, Field(ge=0, le=1)]
Apr = Annotated[float, Field(gt=0, le=5)]


class SegmentEconomics(_Section):
    """One segment's unit economics in [economics] segments; a key left out takes the [economics] value."""

    apr: Apr | None = None  # the segment's current APR when the data have no APR column
    funding_rate: Rate | None = None
    opex_rate: Rate | None = None
    opex_upfront: Rate | None = None


class Economics(_Section):
    """Unit economics of the decision engine's twin (annual rates as fractions). A key left out takes its
    ILLUSTRATIVE default (ILLUSTRATIVE_ECONOMICS) and the figures resting on it say so.

    Loss given default, the IRB class, the loss and default states and the cycle's correlation are [risk]'s.
    """

    funding_rate: Rate | None = None  # cost of funds on outstanding EAD
    opex_rate: Rate | None = None  # running cost on outstanding EAD
    opex_upfront: Rate | None = None  # acquisition cost per unit booked
    tax_rate: float | None = Field(None, ge=0, lt=1)
    discount_rate: Rate | None = None  # values a booking (monthly compounding)
    hurdle_rate: Rate | None = None  # cost of equity charged on the capital held
    capital: Literal["irb", "ratio"] = "irb"  # "irb": [risk] irb_class formula on the 12-month PD
    capital_ratio: float = Field(0.10, gt=0, le=1)  # capital per unit EAD when capital = "ratio"
    default_apr: Apr | None = None  # the current APR when the data have no APR column
    score_bands: int = Field(10, ge=1, le=50)  # quantile bands of the origination score per segment
    score_mean: float = 600.0  # the illustrative score scale of data without a score
    score_sd: float = Field(50.0, gt=0)
    score_pdo: float = Field(50.0, gt=0)  # points that double the odds of going bad (illustrative)
    segments: dict[str, SegmentEconomics] = {}  # per-segment apr, funding_rate, opex_rate, opex_upfront

    def resolve(self, key: str, segment: str | None = None) -> tuple[float, str | None]:
        """(value, None) where the config sets ``key`` (for ``segment`` first: "apr" there, else default_apr), else
        (its ILLUSTRATIVE default, the setting to give, e.g. "[economics] funding_rate")."""
        own = self.segments.get(segment) if segment is not None else None
        segment_key = "apr" if key == "default_apr" else key
        if own is not None and segment_key in SegmentEconomics.model_fields and getattr(own, segment_key) is not None:
            return getattr(own, segment_key), None
        value = getattr(self, key)
        return (value, None) if value is not None else (ILLUSTRATIVE_ECONOMICS[key], f"[economics] {key}")


class DemandCurve(_Section):
    """Take-up of an offer at APR p: max_take_up / (1 + exp(steepness * (p - midpoint)))."""

    max_take_up: float | None = None
    midpoint: float | None = None
    steepness: float | None = None

    @model_validator(mode="after")
    def _monotone(self) -> DemandCurve:
        if self.max_take_up is not None and not 0 < self.max_take_up <= 1:
            raise ValueError(f"max_take_up must be in (0, 1], got {self.max_take_up}")
        if self.midpoint is not None and self.midpoint < 0:
            raise ValueError(f"midpoint must be an APR >= 0, got {self.midpoint}")
        if self.steepness is not None and not self.steepness > 0:
            raise ValueError(f"steepness must be > 0 so that take-up falls as the APR rises (monotone demand), "
                             f"got {self.steepness}")
        return self


class Demand(DemandCurve):
    """Logistic take-up per segment: these keys, overridden per segment in ``segments``; a key set in neither takes
    its ILLUSTRATIVE default (ILLUSTRATIVE_DEMAND)."""

    applications: float = Field(0.0, ge=0)  # monthly amount applied for per segment; 0: implied by the data
    segments: dict[str, DemandCurve] = {}

    def curve(self, segment: str) -> tuple[float, float, float]:
        """(max_take_up, midpoint, steepness) of a segment."""
        return tuple(self._resolve(segment, k)[0] for k in ILLUSTRATIVE_DEMAND)

    def defaults(self, segment: str) -> list[str]:
        """The keys of the segment's curve left at their ILLUSTRATIVE defaults, as settings to give."""
        return [f"[demand] {k}" for k in ILLUSTRATIVE_DEMAND if self._resolve(segment, k)[1]]

    def _resolve(self, segment: str, key: str) -> tuple[float, bool]:
        for source in (self.segments.get(segment, DemandCurve()), self):
            if getattr(source, key) is not None:
                return getattr(source, key), False
        return ILLUSTRATIVE_DEMAND[key], True


class SegmentPolicy(_Section):
    """One segment's credit policy: accept scores >= cutoff, lend at apr, take budget_share of new lending."""

    cutoff: float | None = None  # None (absent from the file): accept every score
    apr: float = Field(gt=0, le=5)
    budget_share: float = Field(ge=0, le=1)
    band_aprs: tuple[float, ...] | None = None  # [policy] price_by = "band": one APR per score band, best last

    @model_validator(mode="after")
    def _positive_band_aprs(self) -> SegmentPolicy:
        if self.band_aprs is not None and not all(0 < a <= 5 for a in self.band_aprs):
            raise ValueError(f"band_aprs must all be in (0, 5], got {list(self.band_aprs)}")
        return self


class LogHead(_Section):
    """The decision log's newest entry as `pyxl-del apply` wrote it (pyxl_del.decision.audit): an edit of the log
    alone cannot follow it here, so `audit verify` sees a truncated, rewritten or extended log."""

    entries: int = Field(ge=1)  # how many entries the log had after this apply
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")  # of the newest entry's line
    log: str = Field(min_length=1)  # the log file, relative to this config file's folder
    hmac: str = Field("", pattern=r"^([0-9a-f]{64})?$")  # keyed with $PYXL_DEL_AUDIT_KEY when it is set; "" = none


class PolicySettings(_Section):
    """The applied credit policy and the constraints the optimiser respects."""

    budget: float = Field(0.0, ge=0)  # monthly new lending; 0: the data's recent monthly volume
    # The APRs the optimiser may recommend and a request may ask for. Left out: the range the data's APR column
    # shows per segment, else the current APR only (no repricing).
    apr_min: float | None = Field(None, ge=0)
    apr_max: float | None = Field(None, gt=0)
    price_by: Literal["segment", "band"] = "segment"
    min_approval: float = Field(0.0, ge=0, le=1)
    max_del30_mob12: float = Field(1.0, gt=0, le=1)
    max_el: float = Field(float("inf"), gt=0, allow_inf_nan=True)  # lifetime expected loss of one month's new lending
    max_var99: float = Field(float("inf"), gt=0, allow_inf_nan=True)  # 99% one-year loss quantile of a month's lending
    max_hhi: float = Field(1.0, gt=0, le=1)
    min_share: float = Field(0.0, ge=0, le=1)
    max_share: float = Field(1.0, gt=0, le=1)
    segments: dict[str, SegmentPolicy] = {}  # empty: the data's current practice
    log_head: LogHead | None = None  # written by `pyxl-del apply`; not part of the policy

    @model_validator(mode="after")
    def _bounds(self) -> PolicySettings:
        if self.apr_min is not None and self.apr_max is not None and self.apr_min >= self.apr_max:
            raise ValueError(f"APR bounds exclude every price: apr_min {self.apr_min} >= apr_max {self.apr_max}")
        if self.min_share > self.max_share:
            raise ValueError(f"min_share {self.min_share} > max_share {self.max_share}")
        return self


# ---- portfolio risk analytics (pyxl_del.risk; docs/risk.md)

Severity = Literal["info", "warning", "critical"]
IrbClass = Literal["other", "mortgage", "revolving"]


class Risk(_Section):
    """Expected loss, credit VaR, concentration and indicative capital on the fitted chain."""

    lgd: Rate | None = None  # loss given default of the balance lost; left out: ILLUSTRATIVE_LGD
    lgd_by_segment: dict[str, Rate] = {}
    irb_class: IrbClass = "other"  # Basel retail class of the indicative capital
    irb_class_by_segment: dict[str, IrbClass] = {}
    pd_floor: float = Field(0.0005, ge=0, lt=1)
    rho: float = Field(0.05, gt=0, lt=1)  # asset correlation of the credit-cycle factor Z
    z_persistence: float = Field(0.9, ge=0, le=1)  # month-to-month autocorrelation of Z in the Monte Carlo
    horizon: int = Field(12, ge=1, le=120)  # months of the VaR
    confidence: tuple[Annotated[float, Field(gt=0.5, lt=1)], ...] = Field((0.95, 0.99), min_length=1)
    n_paths: int = Field(10_000, ge=100, le=10_000_000)
    seed: int = Field(20240101, ge=0)
    loss_state: str = "WRITEOFF"  # the absorbing state whose inflow is the loss
    # What LGD applies to: the EAD written off (flowing into loss_state), or the EAD in default (today's defaulted
    # EAD and what enters default_states; Basel's PD x LGD x EAD): for books whose data have no write-offs.
    el_basis: Literal["writeoff", "default"] = "writeoff"
    default_states: tuple[str, ...] = Field(("DPD90+", "WRITEOFF"), min_length=1)  # PD and NPL
    key_mobs: tuple[Annotated[int, Field(ge=0)], ...] = Field((6, 12, 24, 36), min_length=1)
    top_n: int = Field(3, ge=1)
    # A cohort-segment whose rows end before the data's last reporting month but still hold live EAD: rolled forward
    # to the reporting date by the chain, or left out of the book (pyxl_del.risk.projection.Book).
    stale_cohorts: Literal["roll", "exclude"] = "roll"

    def segment_lgd(self, segment: str) -> float:
        return self.lgd_by_segment.get(segment, ILLUSTRATIVE_LGD if self.lgd is None else self.lgd)

    def lgd_is_default(self, segment: str) -> bool:
        """Whether the segment's LGD is the ILLUSTRATIVE default (set neither in lgd_by_segment nor in lgd)."""
        return segment not in self.lgd_by_segment and self.lgd is None

    def segment_irb_class(self, segment: str) -> str:
        return self.irb_class_by_segment.get(segment, self.irb_class)


class ScenarioSpec(_Section):
    """A stress scenario: the credit-cycle factor Z for forecast months 1, 2, ...; the last value persists."""

    name: str = Field(min_length=1)
    z: tuple[Annotated[float, BeforeValidator(not_a_boolean), Field(ge=-8, le=8)], ...] = Field(min_length=1)
    description: str = ""

    @field_validator("z", mode="before")
    @classmethod
    def _scalar_is_constant(cls, value):
        # A tuple either way: under config_from_dict's strict validation a list a before-validator hands on is not
        # taken for an array.
        return (value,) if isinstance(value, (int, float)) else tuple(value) if isinstance(value, list) else value


class Scenarios(_Section):
    predefined: bool = True  # baseline, mild_recession, severe_recession, rate_shock (pyxl_del.risk.stress)
    custom: tuple[ScenarioSpec, ...] = ()  # a custom scenario named like a predefined one replaces it
    severity_order: tuple[str, ...] = ()  # destination states best to worst; () = derived from [buckets]

    @model_validator(mode="after")
    def _unique_names(self) -> Scenarios:
        names = [s.name for s in self.custom]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"two custom scenarios share a name: {dupes}")
        return self


class DelAboveRule(_Section):
    rule: Literal["del_above"] = "del_above"
    severity: Severity = "warning"
    del_type: Literal["DEL30", "DEL60", "DEL90"] = "DEL30"
    mob: int = Field(6, ge=0)
    threshold: float = Field(ge=0)
    recent: int = Field(6, ge=1)  # the newest n cohorts
    basis: Literal["mixed", "actual"] = "mixed"  # mixed: a young cohort's forecast can fire the rule
    segment: str = ""  # "" = every segment; or one segment, or "Portfolio"


class KClippedRule(_Section):
    rule: Literal["k_clipped"] = "k_clipped"
    severity: Severity = "warning"


class CohortVsHistoryRule(_Section):
    rule: Literal["cohort_vs_history"] = "cohort_vs_history"
    severity: Severity = "warning"
    del_type: Literal["DEL30", "DEL60", "DEL90"] = "DEL30"
    n_se: float = Field(3.0, gt=0)
    recent: int = Field(6, ge=1)
    min_history: int = Field(5, ge=2)


class ConcentrationRule(_Section):
    rule: Literal["concentration"] = "concentration"
    severity: Severity = "warning"
    by: Literal["segment", "cohort"] = "segment"
    measure: Literal["hhi", "top_share"] = "hhi"
    n: int = Field(1, ge=1)  # top_share: the share of the n largest
    threshold: float = Field(gt=0, le=1)


class NplAboveRule(_Section):
    rule: Literal["npl_above"] = "npl_above"
    severity: Severity = "warning"
    threshold: float = Field(ge=0, le=1)
    segment: str = ""  # "" = every segment and the Portfolio


AlertRule = Annotated[DelAboveRule | KClippedRule | CohortVsHistoryRule | ConcentrationRule | NplAboveRule,
                      Field(discriminator="rule")]


class Alerts(_Section):
    rules: tuple[AlertRule, ...] = (
        DelAboveRule(threshold=0.05),
        DelAboveRule(threshold=0.08, severity="critical"),
        KClippedRule(),
        CohortVsHistoryRule(),
        ConcentrationRule(by="segment", measure="hhi", threshold=0.5),
        ConcentrationRule(by="cohort", measure="top_share", n=1, threshold=0.15),
        NplAboveRule(threshold=0.05),
    )


class Decide(_Section):
    """Real-time decisions (pyxl_del.decision.decide, pyxl_del.serve; docs/decisions-realtime.md). Relative paths are
    relative to the config file's folder. The API key itself is never kept here: config.toml is copied into
    report workbooks (Run info)."""

    data: str = ""  # panel the twin is fitted on when none is given; "" = the bundled sample
    host: str = "127.0.0.1"  # loopback unless told otherwise
    port: int = Field(8321, ge=0, le=65535)
    api_key_env: str = "PYXL_DEL_API_KEY"  # environment variable holding the API key
    api_key_file: str = ""  # or a file holding it; "" = none
    request_log: str = "served_decisions.jsonl"  # JSON Lines: every decision served, with inputs and policy version
    max_body_bytes: int = Field(16_000_000, ge=1_000)
    max_batch: int = Field(100_000, ge=1)
    reload_seconds: float = Field(1.0, gt=0)  # how often the service checks the config file for a new policy
    header_timeout: float = Field(10.0, gt=0, le=3600)  # seconds for a request's line and headers to arrive
    body_timeout: float = Field(30.0, gt=0, le=3600)  # seconds for a request's body to arrive
    request_log_max_bytes: int = Field(100_000_000, ge=10_000)  # the request log is rotated at this size ...
    request_log_backups: int = Field(10, ge=1, le=1000)  # ... keeping this many old files


#: The config's tables keyed by segment name.
SEGMENT_TABLES = ("[risk] lgd_by_segment", "[risk] irb_class_by_segment", "[economics] segments",
                  "[demand] segments")


class Config(_Section):
    """The whole validated configuration. ``cfg["ead"]`` is the data column mapped to the logical key."""

    columns: Columns = Columns()
    buckets: Buckets = Buckets()
    transitions: Transitions = Transitions()
    calibration: Calibration = Calibration()
    forecast: Forecast = Forecast()
    portfolio: Portfolio = Portfolio()
    economics: Economics = Economics()
    demand: Demand = Demand()
    policy: PolicySettings = PolicySettings()
    risk: Risk = Risk()
    scenarios: Scenarios = Scenarios()
    alerts: Alerts = Alerts()
    decide: Decide = Decide()

    @model_validator(mode="after")
    def _risk_states_are_buckets(self) -> Config:
        order, absorbing = self.buckets.order, self.buckets.absorbing
        if self.risk.loss_state not in absorbing:
            raise ValueError(f"[risk] loss_state {self.risk.loss_state!r} must be one of [buckets] absorbing "
                             f"{list(absorbing)}")
        unknown = [s for s in self.risk.default_states if s not in order]
        if unknown:
            raise ValueError(f"[risk] default_states lists buckets that are not in [buckets] order: {unknown}")
        severity = self.scenarios.severity_order
        if severity and sorted(severity) != sorted(order):
            raise ValueError(f"[scenarios] severity_order must list every bucket of [buckets] order once, "
                             f"got {list(severity)}")
        return self

    def __getitem__(self, column_key: str) -> str:
        if column_key not in LOGICAL_COLUMNS + OPTIONAL_COLUMNS:
            raise ConfigError(f"unknown column key {column_key!r}; [columns] keys are: "
                              f"{', '.join(LOGICAL_COLUMNS + OPTIONAL_COLUMNS)}")
        return getattr(self.columns, column_key)

    def unknown_segment_names(self, segments, tables: tuple[str, ...] = SEGMENT_TABLES) -> list[tuple[str, str]]:
        """(the data's segment a name was likely meant for, or "", the sentence) for each name in the per-segment
        ``tables`` ("[risk] lgd_by_segment", ...) that is no segment of the data: its value applies to no loan, and
        the segment meant ('CD' for 'Cd') silently takes the default."""
        out = []
        for table in tables:
            section, key = table.strip("[").replace("] ", " ").split()
            for name in getattr(getattr(self, section), key):
                if name in segments:
                    continue
                meant = closest_name(name, segments) or ""
                hint = f" (did you mean {meant!r}?)" if meant else ""
                out.append((meant, f"{table} names {name!r}, which is no segment of the data{hint}: its value "
                                   f"applies to no loan"))
        return out

    def with_overrides(self, **sections: dict) -> Config:
        """A copy with some keys changed, validated like a file: ``cfg.with_overrides(calibration={"mode": "none"})``."""
        data = self.model_dump()
        for section, values in sections.items():
            if section not in data:
                raise ConfigError(f"unknown config section [{section}]")
            data[section].update(values)
        return config_from_dict(data, source="overrides")

    def as_specified(self) -> Config:
        """A copy estimated and calibrated exactly as the DEL specification says (`SPECIFIED`)."""
        return self.with_overrides(**SPECIFIED)

    def to_toml(self) -> str:
        """The config as TOML text (the Run info sheet and the CLI show it)."""
        lines: list[str] = []
        for section, values in self.model_dump().items():
            lines.append(f"[{section}]")
            # TOML has no null: an unset optional key is left out, which reads back as its default.
            lines.extend(f"{key} = {_toml_value(v)}" for key, v in values.items() if v is not None)
            lines.append("")
        return "\n".join(lines)


def _toml_value(value) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{_toml_value(str(k))} = {_toml_value(v)}" for k, v in value.items() if v is not None)
        return "{ " + items + " }" if items else "{}"
    return repr(value)


def _location(error: dict) -> list[str]:
    # A value tried against each member of a union ("auto" or a number) is located by member names that mean
    # nothing in a config file (prior_strength.literal['auto'], .constrained-float): the key is what is named.
    return [str(p) for p in error["loc"] if not re.fullmatch(r"literal\[.*\]|constrained-\w+|float|int|str|bool",
                                                             str(p))]


def _key(loc: list[str]) -> str:
    if not loc:
        return "(top level)"
    return f"[{loc[0]}] {'.'.join(loc[1:])}".strip() if len(loc) > 1 else f"[{loc[0]}]"


def _message(error: dict) -> str:
    msg = error["msg"]
    if error["type"] == "extra_forbidden":
        return _unknown(_location(error))
    if "input" in error and error["type"] not in ("missing",):
        given = error["input"]
        msg = f"{msg} (got {shorten(repr(given), 80)})"
        if isinstance(given, str) and re.fullmatch(r"\s*-?\d+,\d+\s*", given) \
                and error["type"] in ("int_type", "float_type"):
            msg += f"; write numbers with a decimal point and without quotes ({given.strip().replace(',', '.')})"
        elif isinstance(given, str) and error["type"] in ("int_type", "float_type", "bool_type"):
            msg += "; write numbers and true / false without quotes"
        elif isinstance(given, bool) and error["type"] in ("int_type", "float_type"):
            msg += "; true / false is not a number"
        elif isinstance(given, float) and error["type"] == "int_type":
            msg += (f"; write a whole number{f' ({int(given)})' if given.is_integer() else ''}, without a decimal "
                    f"point (thousands are written 1000 or 1_000, not 1.000)")
    return msg


def _described(errors: list[dict]) -> list[str]:
    """A line per key. A value tried against each member of a union fails once per member ("Input should be 'auto'",
    then "Input should be a valid number"): said once, as the alternatives."""
    by_key: dict[str, list[dict]] = {}
    for error in errors:
        by_key.setdefault(_key(_location(error)), []).append(error)
    out = []
    for key, group in by_key.items():
        if len(group) > 1 and all("input" in e and e["msg"].startswith("Input should be ") for e in group):
            wanted = " or ".join(e["msg"].removeprefix("Input should be ") for e in group)
            given = group[0]["input"]
            lower = isinstance(given, str) and given.strip().casefold() in ("auto", "none")
            out.append(f"{key}: Input should be {wanted} (got {shorten(repr(given), 80)})"
                       f"{'; write it in lower case' if lower else ''}")
        else:
            out += [f"{key}: {_message(e)}" for e in group]
    return out


def _unknown(loc: list[str]) -> str:
    """An unknown section or key, with the known one it most likely meant."""
    if len(loc) == 1:
        near = closest_name(loc[0], Config.model_fields)
        return (f"unknown section{f'; did you mean [{near}]?' if near else ''} (sections: "
                f"{', '.join(Config.model_fields)})")
    model = Config.model_fields.get(loc[0])
    keys = list(getattr(model.annotation, "model_fields", {})) if model is not None else []
    near = closest_name(loc[-1], keys) if len(loc) == 2 else None
    return f"unknown key{f'; did you mean {near}?' if near else ''}"


def _json_value(value: Any) -> Any:
    """TOML values JSON has no type for: dates and times become their text (and fail as such where a number or
    a name is expected); numpy numbers from code become Python numbers."""
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    raise TypeError(f"not a config value: {type(value).__name__}")


def config_from_dict(data: dict, source: str = "config") -> Config:
    """Validate a config given as TOML's values (or code's): strictly, as the JSON of those values. A whole number
    is taken where a fraction is expected; a quoted number, true / false or a fraction where a whole number is
    expected is an error naming the key (pydantic's lax mode would read ``max_mob = true`` as 1, ``"36"`` as 36).
    Every key, the ones added later included, is validated this way."""
    try:
        text = json.dumps(data, default=_json_value)
        return Config.model_validate_json(text, strict=True)
    except ValidationError as exc:
        problems = "\n  ".join(_described(validation_errors(exc)))
        raise ConfigError(f"{source}: invalid configuration\n  {problems}") from None
    except RecursionError:
        raise ConfigError(f"{source}: invalid configuration: values are nested too deeply") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: invalid configuration: {shorten(exc)}") from None


def config_source(path: str | Path | None = None) -> str:
    """Which file `load_config(path)` reads, for the person reading a result: nothing named it, so a config.toml
    saved as config.toml.txt (Notepad), or a run in another folder, gave the built-in defaults without a word."""
    if path is None:
        candidate = Path.cwd() / CONFIG_FILE_NAME
        if not candidate.is_file():
            return f"none: no {CONFIG_FILE_NAME} in {Path.cwd()}, so the built-in defaults"
        path = candidate
    return str(Path(path).resolve())


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate a config file.

    With no path, ``./config.toml`` is used when it exists, else the built-in defaults (which equal the
    repository's config.toml). The file must be UTF-8 (a byte-order mark is allowed); any other encoding, a folder,
    an unreadable file or bad TOML is a ConfigError naming the file and what to do.
    """
    if path is None:
        candidate = Path.cwd() / CONFIG_FILE_NAME
        if not candidate.is_file():
            return Config()
        path = candidate
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    text = read_text(path, "config", error=ConfigError)
    with reading(path, "config", error=ConfigError):
        data = tomllib.loads(text)
    return config_from_dict(data, source=str(path))
