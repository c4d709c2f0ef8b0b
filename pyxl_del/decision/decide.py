"""Decisions on applications under a credit policy: one vectorised implementation for every caller.

`decide(applications, policy, twin)` answers APPROVE or DECLINE for each application (segment, score, amount,
optional requested APR) with the rule and its numbers, the offered APR, the 12-month and lifetime PD of the
application's score band, its expected lifetime loss and value, and the version of the policy it was made
under. The batch CLI (`pyxl-del decide`), the worksheet function =DEL_DECIDE, the HTTP service
(pyxl_del.serve) and the champion / challenger simulation (pyxl_del.decision.abtest) all call `DecisionEngine.evaluate`,
so a decision is the same wherever it is made. The pydantic models `Application` and `Decision` are the
request and response of all of them.

The rules, in order (the first that applies is the reason):

1. SCORE_OUT_OF_RANGE: the score lies far outside the scores of the segment's data (`score_bounds`): a sentinel
   such as -1 or 99999, or a score on another scale, which the twin knows nothing about.
2. NO_BUDGET: the policy gives the segment no budget share.
3. SCORE_BELOW_CUTOFF: the score is below the segment's cut-off.
4. APR_OUT_OF_RANGE: a requested APR outside the segment's allowed range (`Twin.apr_range`: [policy] apr_min ..
   apr_max, else the APRs booked in the data, else the current APR only).
5. APR_BELOW_BREAK_EVEN: a requested APR below the band's break-even APR (where the expected value is 0).
6. APPROVED: at the requested APR if one was given, else at the policy's APR for the score band.

Figures come from the twin's score band of the application (pyxl_del.decision.twin): PDs as fitted; expected
loss = amount x LGD x lifetime write-off per unit booked; expected value = amount x the discounted economic
value per unit booked at the APR evaluated (the requested one, else the policy's), shown for declines too, except
for a score out of range: no band describes it, so its PDs, loss and value are blank (NaN; None in a `Decision`)
rather than the edge band's figures.
"""

from __future__ import annotations

import functools
import logging
import math
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from pyxl_del.datasets.sample import generate_sample
from pyxl_del.decision.applications import (
    Application,
    ApplicationColumns,
    DecisionInputError,
    Problem,
    application_columns,
)
from pyxl_del.decision.optimise import check_aprs, current_policy
from pyxl_del.decision.policy import Policy, twin_fingerprint
from pyxl_del.decision.twin import Twin
from pyxl_del.engine.config import Config
from pyxl_del.engine.data import MAX_LISTED, how_alike, row_numbers
from pyxl_del.engine.errors import closest_name, shorten
from pyxl_del.engine.memo import LruMemo

log = logging.getLogger(__name__)

APPROVE, DECLINE = "APPROVE", "DECLINE"
REASON_CODES = ("APPROVED", "NO_BUDGET", "SCORE_BELOW_CUTOFF", "APR_OUT_OF_RANGE", "APR_BELOW_BREAK_EVEN",
                "SCORE_OUT_OF_RANGE")
(APPROVED, NO_BUDGET, SCORE_BELOW_CUTOFF, APR_OUT_OF_RANGE, APR_BELOW_BREAK_EVEN,
 SCORE_OUT_OF_RANGE) = range(len(REASON_CODES))
ReasonCode = Literal["APPROVED", "NO_BUDGET", "SCORE_BELOW_CUTOFF", "APR_OUT_OF_RANGE", "APR_BELOW_BREAK_EVEN",
                     "SCORE_OUT_OF_RANGE"]

DECISION_COLUMNS = ("application_id", "segment", "score", "amount", "requested_apr", "decision", "reason_code",
                    "reason", "band", "offered_apr", "policy_apr", "pd_12m", "pd_lifetime", "expected_loss",
                    "expected_value", "policy_version", "caveat")
ENGINE_MEMO_SIZE = 8


# ------------------------------------------------------------------------------------------------- models

class Decision(BaseModel):
    """The answer to one application, reproducible from the policy version and the twin."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    application_id: str | None = None
    segment: str
    score: float
    amount: float
    requested_apr: float | None = None
    decision: Literal["APPROVE", "DECLINE"]
    reason_code: ReasonCode
    reason: str = Field(description="the rule and its numbers")
    band: int = Field(description="score band of the twin, 1 = riskiest")
    offered_apr: float | None = Field(None, description="the APR of an approval; None for a decline")
    policy_apr: float = Field(description="the policy's APR for the score band")
    pd_12m: float | None = Field(description="12-month PD of the score band; None for a score out of range")
    pd_lifetime: float | None = Field(description="lifetime PD of the score band; None for a score out of range")
    expected_loss: float | None = Field(description="amount x LGD x lifetime write-off per unit booked; None for a "
                                                    "score out of range")
    expected_value: float | None = Field(description="discounted economic value if booked at the APR evaluated; "
                                                     "None for a score out of range")
    policy_version: str
    caveat: str = Field("", description="what the figures rest on when it matters: \"ILLUSTRATIVE: default "
                                        "economics (...)\" for prices and values from default settings or a "
                                        "chain from too few months of data, and an expected loss of 0 that is no "
                                        "measured zero, with its cause; \"\" if none")


class ApplicationBatch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    applications: list[Application] = Field(min_length=1)


class DecisionBatch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    policy_version: str
    decisions: list[Decision]


DECISIONS = TypeAdapter(list[Decision])


# ------------------------------------------------------------------------------------------------- engine


class Evaluation(NamedTuple):
    """Per application arrays: segment and band (0-based), the reason code, the APRs, PDs, loss and value."""

    segment: np.ndarray
    band: np.ndarray
    code: np.ndarray
    approved: np.ndarray
    apr: np.ndarray  # evaluated: the requested APR, else the policy's
    policy_apr: np.ndarray
    offered_apr: np.ndarray  # NaN for a decline
    pd_12m: np.ndarray
    pd_lifetime: np.ndarray
    expected_loss: np.ndarray
    expected_value: np.ndarray
    caveat: np.ndarray  # (n,) index into DecisionEngine.caveat (its segment x band)


# Reason texts are assembled per application as head + first number + body + second number (with pyarrow for a
# batch, so a million need no Python loop): the head and which numbers appear depend on the rule, the body on the
# rule, segment and score band (see DecisionEngine.build).
HEADS = ("score ", "", "score ", "requested APR ", "requested APR ", "score ")  # by reason code
FIRST_NUMBER = ("score", None, "score", "apr", "apr", "score")
SECOND_NUMBER = ("apr", None, None, None, None, None)
NUMBER_FORMATS = {"score": "{:g}", "apr": "{:.2%}"}
SMALL_BATCH = 64  # up to this many, plain Python beats pyarrow's per-call set-up


@dataclass(frozen=True, eq=False)
class DecisionEngine:
    """A policy and a twin as the per segment x band arrays a decision reads. Immutable, so a service can swap
    one for another atomically while requests in flight finish on the one they started with."""

    policy: Policy
    twin: Twin
    version: str
    index: dict[str, int]  # segment -> s
    composed: dict[str, int]  # a segment's name in NFC -> s, for a name no other segment shares in that form
    cutoff: np.ndarray  # (S,) NaN: accept every score
    share: np.ndarray  # (S,)
    inner_edges: np.ndarray  # (S, B-1) band b holds scores in [inner[b-1], inner[b])
    # Flattened (S * B,) per segment x band, indexed by s * B + b:
    policy_apr: np.ndarray
    pd_12m: np.ndarray
    pd_lifetime: np.ndarray
    loss_rate: np.ndarray  # LGD x lifetime write-off per unit booked
    slope: np.ndarray  # value per unit booked = slope * apr - intercept
    intercept: np.ndarray
    break_even: np.ndarray  # the APR where the value is 0
    apr_min: np.ndarray  # (S,)
    apr_max: np.ndarray
    score_low: np.ndarray  # (S,) the scores decided at all (`score_bounds`)
    score_high: np.ndarray
    caveat: np.ndarray  # (S * B,) object: "ILLUSTRATIVE: ..." and zero-loss warnings of the band's figures, or ""
    reason_body: pa.Array  # (len(REASON_CODES) * S * B,) by (code * S + s) * B + b
    edge_low: float  # the inner edges of all segments on one line (see evaluate)
    edge_span: float
    edge_line: np.ndarray

    @classmethod
    def build(cls, policy: Policy, twin: Twin) -> DecisionEngine:
        # `apply` refuses such a policy, but a [policy] edited by hand, or an [policy] apr_max lowered after it was
        # applied, reached every decision at a price the engine would never offer.
        check_aprs(twin, policy, f"policy {policy.version_under(twin.config)}")
        cutoff, apr, share = policy.arrays(twin.segments, twin.n_bands)
        u = twin.unit_economics()
        sums = twin.lifetime_sums()
        lo, hi, _ = twin.apr_range()
        score_low, score_high = score_bounds(twin)
        version = policy.version_under(twin.config)
        body = []
        for code in range(len(REASON_CODES)):
            for s, segment in enumerate(twin.segments):
                c = cutoff[s]
                rule = {
                    APPROVED: (f" no cut-off for {segment}" if math.isnan(c) else
                               f" at or above cut-off {c:g} for {segment}") + "; APR ",
                    NO_BUDGET: f"no budget for {segment} under policy {version} (budget share 0)",
                    SCORE_BELOW_CUTOFF: f" below cut-off {c:g} for {segment}",
                    APR_OUT_OF_RANGE: f" outside the range allowed for {segment}, {lo[s]:.2%} to {hi[s]:.2%}",
                    SCORE_OUT_OF_RANGE: f" far outside the twin's scores for {segment} "
                                        f"({twin.band_edges[s, 0]:g} to {twin.band_edges[s, -1]:g}; decided: "
                                        f"{score_low[s]:g} to {score_high[s]:g}): a missing-score code or a score "
                                        f"on another scale?",
                }
                for b in range(twin.n_bands):
                    body.append(rule.get(code) or f" below break-even {u['unit_cost'][s, b]:.2%} for {segment} "
                                                  f"score band {b + 1} (policy APR {apr[s, b]:.2%})")
        inner = np.ascontiguousarray(twin.band_edges[:, 1:-1])
        low = float(inner.min()) - 1.0 if inner.size else 0.0
        span = (float(inner.max()) + 2.0 - low) if inner.size else 1.0
        line = (np.arange(len(twin.segments))[:, None] * span + inner - low).ravel()
        return cls(policy=policy, twin=twin, version=version, index={s: i for i, s in enumerate(twin.segments)},
                   composed=composed_index(twin.segments), cutoff=cutoff, share=share, inner_edges=inner,
                   edge_low=low, edge_span=span, edge_line=line,
                   policy_apr=apr.ravel(), pd_12m=twin.pd12.ravel(), pd_lifetime=twin.pd_life.ravel(),
                   loss_rate=(twin.lgd[:, None] * sums["writeoff"]).ravel(), slope=u["slope"].ravel(),
                   intercept=u["intercept"].ravel(), break_even=u["unit_cost"].ravel(), apr_min=lo, apr_max=hi,
                   score_low=score_low, score_high=score_high, caveat=twin.band_caveats().ravel(),
                   reason_body=pa.array(body, pa.string()))

    @property
    def segments(self) -> tuple[str, ...]:
        return self.twin.segments

    def segment_code(self, name) -> int:
        """s of a segment name, -1 if unknown. The same letters in another Unicode form are the same segment, as
        `engine.data.segment_named` reads a name: a Mac writes Vietnamese decomposed (NFD), and such a name, printed
        exactly like the segment's, was unknown. Letter case and blanks still differ (an error with "did you mean")."""
        code = self.index.get(name)
        if code is None and isinstance(name, str):
            code = self.composed.get(unicodedata.normalize("NFC", name))
        return -1 if code is None else code

    def segment_codes(self, segments, source: str = "applications") -> np.ndarray:
        """Segment names (a sequence, or a table's column as a Series) -> s (`segment_code`); unknown names raise
        DecisionInputError naming each with its rows (a table's, as a spreadsheet numbers them) or applications, and
        the known segment it is likely meant to be. Each distinct name of a Series is looked up once."""
        positions, names = pd.factorize(segments) if isinstance(segments, pd.Series) else (None, segments)
        codes = np.fromiter((self.segment_code(s) for s in names), dtype=np.int64, count=len(names))
        if positions is not None:
            codes = codes[positions]
        unknown = np.flatnonzero(codes < 0)
        if not len(unknown):
            return codes
        unknown_names = np.asarray(segments, dtype=object)[unknown].astype(str)
        distinct, first = np.unique(unknown_names, return_index=True)
        order = np.argsort(first)  # in the order the input shows them
        problems = []
        for name in distinct[order][:MAX_LISTED].tolist():
            at = unknown[unknown_names == name]
            where = (row_numbers(at) if positions is not None else
                     f"application{'s' if len(at) > 1 else ''} {', '.join(str(i + 1) for i in at[:MAX_LISTED])}"
                     f"{' and more' if len(at) > MAX_LISTED else ''}")
            problems.append(Problem(int(at[0]), "segment", f"unknown segment {_quoted(name)} in {where}"
                                                           f"{self._suggestion(name)}"))
        if len(distinct) > MAX_LISTED:
            problems.append(Problem(None, "segment", f"{len(distinct)} unknown segment names in all"))
        raise DecisionInputError(source, problems)

    def _suggestion(self, name: str) -> str:
        """"; did you mean 'CD'?" for a name that is a known segment but for case, blanks or a typo; else the
        known segments."""
        near = closest_name(name, self.segments)
        if near is not None:
            # Names that differ only in Unicode form print alike: say so (two segments of the data share that form).
            alike = unicodedata.normalize("NFC", near) == unicodedata.normalize("NFC", name)
            return f": did you mean {_quoted(near)}?" + (f" ({how_alike(name, near)})" if alike else "")
        return f" (known: {shorten(', '.join(self.segments), 200)})"

    def evaluate(self, segment: np.ndarray, score: np.ndarray, amount: np.ndarray,
                 requested_apr: np.ndarray) -> Evaluation:
        """The decision arrays for segment codes, scores, amounts and requested APRs (NaN: none)."""
        inner = self.inner_edges.shape[1]
        # One search over every segment's edges laid end to end: segment s owns [s * span, (s + 1) * span), and a
        # score clipped to just outside the edges stays in the same band.
        lo, span = self.edge_low, self.edge_span
        position = segment * span + np.minimum(np.maximum(score, lo), lo + span - 1.0) - lo
        band = np.searchsorted(self.edge_line, position, side="right") - segment * inner
        sb = segment * (inner + 1) + band
        policy_apr = self.policy_apr.take(sb)
        requested = ~np.isnan(requested_apr)
        apr = np.where(requested, requested_apr, policy_apr)
        code = np.select(
            [(score < self.score_low.take(segment)) | (score > self.score_high.take(segment)),
             self.share.take(segment) <= 0,
             score < self.cutoff.take(segment),  # a NaN cut-off compares False: every score is accepted
             requested & ((requested_apr < self.apr_min.take(segment)) | (requested_apr > self.apr_max.take(segment))),
             requested & (requested_apr < self.break_even.take(sb))],
            [SCORE_OUT_OF_RANGE, NO_BUDGET, SCORE_BELOW_CUTOFF, APR_OUT_OF_RANGE, APR_BELOW_BREAK_EVEN],
            APPROVED).astype(np.int8)
        approved = code == APPROVED
        # A score out of range is in no band: the edge band's PDs, loss and value would be figures about another loan.
        banded = np.where(code == SCORE_OUT_OF_RANGE, np.nan, 1.0)
        return Evaluation(
            segment=segment, band=band, code=code, approved=approved, apr=apr, policy_apr=policy_apr,
            offered_apr=np.where(approved, apr, np.nan), pd_12m=banded * self.pd_12m.take(sb),
            pd_lifetime=banded * self.pd_lifetime.take(sb), expected_loss=banded * amount * self.loss_rate.take(sb),
            expected_value=banded * amount * (self.slope.take(sb) * apr - self.intercept.take(sb)), caveat=sb)

    def reasons(self, ev: Evaluation, score: np.ndarray) -> pa.StringArray | list[str]:
        """The reason text of each decision ("score 598 below cut-off 612 for CASH LOAN"): a list for a few
        applications, a pyarrow array for a batch (the same template; pyarrow's per-call set-up only pays off on
        many rows)."""
        n_seg = len(self.segments)
        n_bands = self.inner_edges.shape[1] + 1
        code = ev.code.astype(np.int64)
        body = (code * n_seg + ev.segment) * n_bands + ev.band
        if len(score) <= SMALL_BATCH:
            numbers = {"score": score.tolist(), "apr": ev.apr.tolist()}

            def text(kind, i):
                return "" if kind is None else NUMBER_FORMATS[kind].format(numbers[kind][i])

            bodies = self.reason_body.take(body).to_pylist() if len(score) else []
            return [HEADS[c] + text(FIRST_NUMBER[c], i) + b + text(SECOND_NUMBER[c], i)
                    for i, (c, b) in enumerate(zip(code.tolist(), bodies, strict=True))]
        score_idx, score_texts = _distinct_texts(score, NUMBER_FORMATS["score"])
        apr_idx, apr_texts = _distinct_texts(ev.apr, NUMBER_FORMATS["apr"])
        numbers_array = pa.array([*score_texts, *apr_texts, ""], pa.string())
        index = {"score": score_idx, "apr": apr_idx + len(score_texts),
                 None: np.full(len(score), len(numbers_array) - 1)}

        def pick(kinds) -> pa.Array:
            return numbers_array.take(np.choose(code, [index[k] for k in kinds]))

        return pc.binary_join_element_wise(pa.array(HEADS, pa.string()).take(code), pick(FIRST_NUMBER),
                                           self.reason_body.take(body), pick(SECOND_NUMBER), "")

    # ------------------------------------------------------------------------------------------ front ends

    def decide_frame(self, applications: pd.DataFrame | ApplicationColumns,
                     source: str = "applications") -> pd.DataFrame:
        """A table of applications (APPLICATION_COLUMNS; apr and application_id optional), or its checked columns,
        -> DECISION_COLUMNS."""
        if isinstance(applications, pd.DataFrame):
            applications = application_columns(applications, self.twin.config, source)
        seg_values, score, amount, apr, ids = applications
        segment = self.segment_codes(seg_values, source)
        ev = self.evaluate(segment, score, amount, apr)
        out = {
            "application_id": ids,
            "segment": pd.Categorical.from_codes(segment, categories=list(self.segments)),
            "score": score, "amount": amount, "requested_apr": apr,
            "decision": pd.Categorical.from_codes((~ev.approved).astype(np.int8), categories=[APPROVE, DECLINE]),
            "reason_code": pd.Categorical.from_codes(ev.code, categories=list(REASON_CODES)),
            "reason": pd.array(self.reasons(ev, score), dtype="str"),
            "band": ev.band + 1, "offered_apr": ev.offered_apr, "policy_apr": ev.policy_apr, "pd_12m": ev.pd_12m,
            "pd_lifetime": ev.pd_lifetime, "expected_loss": ev.expected_loss, "expected_value": ev.expected_value,
            "policy_version": pd.Categorical.from_codes(np.zeros(len(score), dtype=np.int8), categories=[self.version]),
            "caveat": self.caveat_column(ev.caveat),
        }
        # The columns are fresh arrays: no copy into pandas blocks (a third of the time of a million rows).
        return pd.DataFrame({k: v for k, v in out.items() if v is not None}, copy=False)

    def caveat_column(self, sb: np.ndarray) -> pd.Categorical:
        """The caveats of segment x band indices, as a categorical (a few distinct texts for any number of rows)."""
        codes, texts = pd.factorize(pd.Series(self.caveat))
        return pd.Categorical.from_codes(codes[sb], categories=list(texts))

    def decide_many(self, applications: Sequence[Application]) -> list[Decision]:
        """Validated applications -> decisions, in order."""
        segment = self.segment_codes([a.segment for a in applications])
        score = np.array([a.score for a in applications], dtype=np.float64)
        amount = np.array([a.amount for a in applications], dtype=np.float64)
        apr = np.array([np.nan if a.apr is None else a.apr for a in applications], dtype=np.float64)
        ev = self.evaluate(segment, score, amount, apr)
        texts = self.reasons(ev, score)
        columns = zip(applications, segment.tolist(), ev.code.tolist(),
                      texts if isinstance(texts, list) else texts.to_pylist(), (ev.band + 1).tolist(),
                      ev.offered_apr.tolist(), ev.policy_apr.tolist(), ev.pd_12m.tolist(), ev.pd_lifetime.tolist(),
                      ev.expected_loss.tolist(), ev.expected_value.tolist(), self.caveat[ev.caveat].tolist(),
                      strict=True)
        # The segment as the data name it (a name in another Unicode form is that segment: `segment_code`).
        rows = [{"application_id": a.application_id, "segment": self.segments[s], "score": a.score,
                 "amount": a.amount,
                 "requested_apr": a.apr, "decision": APPROVE if code == APPROVED else DECLINE,
                 "reason_code": REASON_CODES[code], "reason": reason, "band": band,
                 "offered_apr": _number(offered), "policy_apr": policy_apr, "pd_12m": _number(pd12),
                 "pd_lifetime": _number(pd_life), "expected_loss": _number(loss), "expected_value": _number(value),
                 "policy_version": self.version, "caveat": caveat}
                for a, s, code, reason, band, offered, policy_apr, pd12, pd_life, loss, value, caveat in columns]
        return DECISIONS.validate_python(rows)  # in one call to pydantic-core: a batch of 10,000 in tens of ms


def _number(value: float) -> float | None:
    """A figure of a `Decision`: NaN (none, e.g. the offered APR of a decline) is None, JSON's null."""
    return None if value != value else value


def _quoted(name: str) -> str:
    """A name as Python writes it, so blanks at either end show ('CD '), cut to a length a message can hold."""
    return repr(name if len(name) <= 60 else name[:59] + "…")


def composed_index(segments: Sequence[str]) -> dict[str, int]:
    """Each segment's name in NFC -> s, leaving out a form two segments share (data holding a name both composed
    and decomposed, which `engine.data.segment_name_findings` warns of): such an application names one exactly."""
    forms = [unicodedata.normalize("NFC", s) for s in segments]
    shared = Counter(forms)
    return {form: s for s, form in enumerate(forms) if shared[form] == 1}


def score_bounds(twin: Twin) -> tuple[np.ndarray, np.ndarray]:
    """(S,) the lowest and highest score decided per segment: the scores of the segment's data (its outer band
    edges) widened on each side by the span of the scores of all the data. A score beyond is declined as
    SCORE_OUT_OF_RANGE: the twin has no loan like it, and such a score is a sentinel (-1, 99999 for "no score") or
    on another scale far more often than an applicant: approving it (-1 fell in the lowest band and was approved
    at 1000 with an expected value of -88) would lend on a number that says nothing. Scores just beyond the data's
    fall in the outer bands."""
    low, high = twin.band_edges[:, 0], twin.band_edges[:, -1]
    span = float(high.max() - low.min())
    return low - span, high + span


def _distinct_texts(values: np.ndarray, fmt: str) -> tuple[np.ndarray, list[str]]:
    """(index into the texts, texts): each distinct number formatted once."""
    codes, uniques = pd.factorize(values)
    return codes, [fmt.format(u) for u in uniques.tolist()]


ENGINES = LruMemo(ENGINE_MEMO_SIZE)


def engine_for(policy: Policy, twin: Twin) -> DecisionEngine:
    """The DecisionEngine of a policy and a twin, built once per (twin, policy version)."""
    return ENGINES.get((id(twin), policy.version), lambda: DecisionEngine.build(policy, twin))


def decide(applications, policy: Policy, twin: Twin, source: str = "applications"):
    """Decisions under ``policy`` on ``twin``: a DataFrame of applications (or its `application_columns`) gives a
    DataFrame (DECISION_COLUMNS);
    an `Application` a `Decision`; a sequence of Applications (or dicts) a list of Decisions. ``source`` names the
    table in errors (its file)."""
    engine = engine_for(policy, twin)
    if isinstance(applications, (pd.DataFrame, ApplicationColumns)):
        return engine.decide_frame(applications, source)
    if isinstance(applications, Application):
        return engine.decide_many([applications])[0]
    apps = []
    for i, a in enumerate(applications):
        try:
            apps.append(a if isinstance(a, Application) else Application.model_validate(a))
        except ValidationError as exc:
            fields = [".".join(map(str, e["loc"])) for e in exc.errors()]
            raise DecisionInputError("applications", [
                Problem(i, f, f"application {i + 1}: {f}: {e['msg']}") for f, e in zip(fields, exc.errors())]) from None
    return engine.decide_many(apps)


# ------------------------------------------------------------------------------------- twin and policy


def with_config(twin: Twin, config: Config) -> Twin:
    """The twin under ``config`` when only [policy] or [decide] changed (arrays shared), else a ValueError."""
    if twin_fingerprint(twin.config) != twin_fingerprint(config):
        raise ValueError("the config changed beyond [policy] and [decide]: the twin must be fitted again")
    return replace(twin, config=config)


def applied_engine(twin: Twin) -> DecisionEngine:
    """The engine of the policy the twin's config applies ([policy] segments, else the data's practice)."""
    return engine_for(current_policy(twin), twin)


def default_data(config: Config, config_path: Path | None):
    """The twin's panel when none is given: [decide] data (relative to the config file's folder), else the
    scored synthetic sample, as `pyxl-del optimise` and `apply` use."""
    if config.decide.data:
        path = Path(config.decide.data).expanduser()
        return path if path.is_absolute() else config_folder(config_path) / path
    return scored_sample()


@functools.lru_cache(maxsize=1)
def scored_sample() -> pd.DataFrame:
    """The scored synthetic sample, generated once per process (it takes a second or two)."""
    return generate_sample(score=True)


# ------------------------------------------------------------------------------------------- files


CSV_SUFFIXES, PARQUET_SUFFIXES = (".csv", ".txt"), (".parquet", ".pq")


def check_decisions_path(path: str | Path) -> Path:
    """``path`` as a place for decisions: a .csv / .txt or .parquet / .pq file that does not exist yet or is a
    decisions table pyxl_del wrote (`engine.files.check_replaceable`), never the data, config, applications or any
    other file; else an OutputError."""
    from pyxl_del.engine.errors import OutputError
    from pyxl_del.engine.files import check_replaceable

    path = Path(path)
    if path.suffix.lower() not in CSV_SUFFIXES + PARQUET_SUFFIXES:
        raise OutputError(f"cannot write decisions to {path}: decide writes a table as .csv or .parquet "
                          f"({shorten(path.suffix, 20) or 'no suffix'} is neither; for a workbook, open the .csv in "
                          f"Excel)")
    check_replaceable(path, DECISION_COLUMNS, "decisions")
    return path


def write_decisions(frame: pd.DataFrame, path: str | Path, *, raw_text: bool = False) -> Path:
    """Decisions as .parquet, else as CSV (formula-like text neutralised unless ``raw_text``: engine.files), with
    every column of DECISION_COLUMNS (application_id empty when the applications have none), so that a decisions
    file always has the header `check_decisions_path` recognises it by."""
    from pyxl_del.engine.files import atomic_replace, write_csv

    path = check_decisions_path(path)
    if "application_id" not in frame.columns:
        frame = frame.assign(application_id=pd.Series(None, index=frame.index, dtype="str"))[list(DECISION_COLUMNS)]
    with atomic_replace(path) as tmp:
        if path.suffix.lower() in PARQUET_SUFFIXES:
            frame.to_parquet(tmp, index=False)
        else:
            write_csv(frame, tmp, raw_text=raw_text)
    return path


def config_folder(config_path: Path | None) -> Path:
    """Where relative [decide] paths point: the config file's folder, else the working directory."""
    return Path(config_path).parent if config_path is not None else Path.cwd()

