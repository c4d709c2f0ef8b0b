"""Synthetic loan-month panels: the bundled sample, test fixtures and benchmark data.

A panel is a full loan x MOB grid: every loan has one row per month on book from MOB 0 up to the
reporting month (``as_of``), capped at ``max_mob``. States follow a Markov chain whose transition
matrices are given, so tests can check that the engine recovers them; `realistic_matrices` supplies
plausible consumer-lending roll rates and `generate_sample` builds the bundled demo panel from them.

Everything is vectorised over loans; the only Python loops run over MOB steps, segments x cohorts
(a few dozen groups) or the K buckets.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pyxl_del.engine.config import LOGICAL_COLUMNS, Config
from pyxl_del.engine.files import EXCEL_MAX_ROWS

log = logging.getLogger(__name__)

SAMPLE_PANEL_PATH: Path = Path(__file__).parent / "sample_panel.parquet"
SAMPLE_SEGMENTS: tuple[str, ...] = ("CASH LOAN", "CD", "TW/Moto")

# Segment-specific loan sizes and contractual amortisation of the bundled sample. The amortisation
# fractions keep every scheduled balance positive up to MOB 36 (the default max_mob), so EAD weights
# never vanish for loans that are still CURRENT.
SAMPLE_EAD0_MEAN: dict[str, float] = {"CASH LOAN": 30_000.0, "CD": 9_000.0, "TW/Moto": 22_000.0}
SAMPLE_AMORTISATION: dict[str, float] = {"CASH LOAN": 1 / 42, "CD": 1 / 40, "TW/Moto": 1 / 44}
SAMPLE_COHORT_SD = 0.15

_ID_MIN_WIDTH = 6
_PART_WIDTH = 5

_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")
_STR_DTYPE = "str"

Seed = int | np.random.SeedSequence


# --------------------------------------------------------------------------------------------------
# small helpers


def _month_index(text: str) -> int:
    match = _MONTH_RE.match(str(text).strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"expected a 'YYYY-MM' month, got {text!r}")
    return int(match.group(1)) * 12 + int(match.group(2)) - 1


def _month_label(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def _per_segment(value: float | Mapping[str, float], segments: Sequence[str], name: str) -> np.ndarray:
    """A scalar or a {segment: value} mapping as one value per segment."""
    if isinstance(value, Mapping):
        missing = [s for s in segments if s not in value]
        if missing:
            raise ValueError(f"{name} has no value for segments {missing}")
        return np.array([float(value[s]) for s in segments])
    return np.full(len(segments), float(value))


def _id_prefixes(segments: Sequence[str]) -> list[str]:
    """Short upper-case loan-id prefixes ("CASH LOAN" -> "CASH"), unique across segments.

    Prefixes are alphanumeric so that ``prefix + "-"`` sorts the same way as the prefix alone; that
    keeps the output sorted by the loan-id string without a string sort.
    """
    tokens = [[t for t in re.split(r"[^0-9A-Za-z]+", s) if t] for s in segments]
    first = [t[0].upper() if t else "" for t in tokens]
    joined = ["".join(t).upper() for t in tokens]
    prefixes = []
    for i, (f, j) in enumerate(zip(first, joined, strict=True)):
        if f and first.count(f) == 1:
            prefixes.append(f)
        elif j and joined.count(j) == 1:
            prefixes.append(j)
        else:
            prefixes.append(f"{j or 'SEG'}{i + 1}")
    if len(set(prefixes)) != len(prefixes):  # a suffixed name met a real one
        prefixes = [f"SEG{i + 1}" for i in range(len(segments))]
    return prefixes


def _str_series(values: pa.Array) -> pd.Series:
    # Straight from Arrow memory into pandas' default string dtype: no Python str objects per row.
    return pd.Series(values, dtype=_STR_DTYPE, copy=False)


def _empty_panel(cfg: Config) -> pd.DataFrame:
    return pd.DataFrame(
        {
            cfg["loan_id"]: pd.Series([], dtype=_STR_DTYPE),
            cfg["cohort"]: pd.Series([], dtype=_STR_DTYPE),
            cfg["mob"]: pd.Series([], dtype=np.int64),
            cfg["segment"]: pd.Series([], dtype=_STR_DTYPE),
            cfg["state"]: pd.Series([], dtype=_STR_DTYPE),
            cfg["ead"]: pd.Series([], dtype=np.float64),
        }
    )


# --------------------------------------------------------------------------------------------------
# transition matrices


def _thresholds(P: np.ndarray, order: Sequence[str], absorbing: Sequence[str]) -> np.ndarray:
    """Validated matrices (..., K, K) -> inverse-CDF thresholds (..., K, K-1).

    The next state is the number of thresholds <= u for u ~ U[0, 1). Thresholds at and after a row's
    last positive entry are exactly 1.0, so float round-off in the cumulative sum can never select a
    state of probability zero (in particular, absorbing rows stay exactly absorbing).
    """
    K = len(order)
    if not np.all(np.isfinite(P)):
        raise ValueError("transition matrices contain NaN or infinite values")
    if (P < -1e-12).any():
        raise ValueError(f"transition matrices contain negative probabilities (min {P.min():.3g})")
    P = np.clip(P, 0.0, None)
    row_sum = P.sum(axis=-1)
    if (row_sum > 1 + 1e-9).any():
        where = np.unravel_index(np.argmax(row_sum), row_sum.shape)
        raise ValueError(
            f"a transition row sums to {row_sum.max():.6g} > 1 (index {tuple(int(i) for i in where)}, "
            f"from-state {order[where[-1]]!r})"
        )
    # A row short of 1 keeps the missing mass in its own state (an all-zero row is "stay").
    diag = np.arange(K)
    P[..., diag, diag] += np.clip(1.0 - row_sum, 0.0, None)
    for label in absorbing:
        a = order.index(label)
        leave = 1.0 - P[..., a, a] / P[..., a, :].sum(axis=-1)
        if (leave > 1e-12).any():
            raise ValueError(f"absorbing state {label!r} is left with probability up to {leave.max():.3g}")
    cum = np.cumsum(P, axis=-1)
    cum /= cum[..., -1:]
    last_positive = K - 1 - np.argmax(P[..., ::-1] > 0, axis=-1)
    cum = np.where(diag >= last_positive[..., None], 1.0, cum)
    return cum[..., :-1]


def _as_groups(
    transition_matrices: np.ndarray, n_cohorts: int, n_segments: int, K: int
) -> tuple[np.ndarray, bool, bool]:
    """Normalise the accepted shapes to (C', S', M, K, K); the flags say whether C' / S' are real."""
    P = np.array(transition_matrices, dtype=np.float64)  # a copy: validation edits it
    if P.shape[-2:] != (K, K):
        raise ValueError(f"transition matrices must end in ({K}, {K}) (one row/column per bucket), got {P.shape}")
    if P.ndim == 2:
        return P[None, None, None], False, False
    if P.ndim == 4:
        if P.shape[0] != n_segments:
            raise ValueError(f"matrices have {P.shape[0]} segments but {n_segments} segments were given")
        return P[None], False, True
    if P.ndim == 5:
        if P.shape[:2] != (n_cohorts, n_segments):
            raise ValueError(
                f"per-cohort matrices must be shaped ({n_cohorts}, {n_segments}, M, {K}, {K}), got {P.shape}"
            )
        return P, True, True
    raise ValueError(f"transition matrices must be (K, K), (S, M, K, K) or (C, S, M, K, K); got {P.shape}")


# --------------------------------------------------------------------------------------------------
# simulation


def simulate_panel(
    transition_matrices: np.ndarray,
    *,
    cohorts: Sequence[str],
    as_of: str,
    loans_per_cohort: int | Mapping[str, int],
    segments: Sequence[str],
    seed: Seed,
    config: Config | None = None,
    ead0_mean: float | Mapping[str, float] = 20_000.0,
    amortisation: float | Mapping[str, float] = 1 / 48,
    initial_state: str = "CURRENT",
    max_mob: int | None = None,
    ead_sigma: float = 0.4,
    id_start: int | Mapping[str, int] = 0,
) -> pd.DataFrame:
    """Simulate a loan x MOB panel whose state transitions follow the given Markov matrices.

    ``transition_matrices``: (K, K) shared by everything, (S, M, K, K) per segment and MOB step
    (m -> m+1; steps beyond M-1 reuse the last matrix) or (C, S, M, K, K) per cohort too, in the order
    of ``cohorts`` and ``segments``. K follows ``config.buckets.order``. A row summing below 1 keeps
    the remainder in its own state; absorbing rows must not leave their state.

    ``loans_per_cohort`` loans are drawn for every (segment, cohort) pair (an int or a per-segment
    mapping). Cohort c is observed at MOB 0 .. min(as_of - c, max_mob). EAD at MOB 0 is lognormal with
    mean ``ead0_mean`` and log-sd ``ead_sigma``; in non-absorbing states it follows the contractual
    schedule ead0 * max(0, 1 - amortisation * mob); an absorbing bad state (one listed in a DEL bucket,
    e.g. WRITEOFF) keeps the balance of the month before it was entered, and other absorbing states
    (PREPAY) have EAD 0. Loans stay in the panel after absorption, one row a month up to ``as_of``.
    Loan numbers start at ``id_start + 1`` (an int or per-segment mapping) so that separate calls can
    produce disjoint ids. The frame is sorted by loan id, then MOB; the same seed gives the same frame.
    """
    cfg = config or Config()
    order = list(cfg.buckets.order)
    K = len(order)
    segments = [str(s) for s in segments]
    cohorts = [str(c) for c in cohorts]
    if len(set(segments)) != len(segments):
        raise ValueError(f"segments must be distinct, got {segments}")
    if len(set(cohorts)) != len(cohorts):
        raise ValueError(f"cohorts must be distinct, got {cohorts}")
    if initial_state not in order:
        raise ValueError(f"initial_state {initial_state!r} is not a bucket; buckets: {order}")
    max_mob = cfg.forecast.max_mob if max_mob is None else int(max_mob)
    if max_mob < 0:
        raise ValueError(f"max_mob must be >= 0, got {max_mob}")

    as_of_idx = _month_index(as_of)
    cohort_idx = np.array([_month_index(c) for c in cohorts], dtype=np.int64)
    late = [c for c, i in zip(cohorts, cohort_idx, strict=True) if i > as_of_idx]
    if late:
        raise ValueError(f"cohorts after as_of {as_of}: {late}")
    cohort_labels = [_month_label(i) for i in cohort_idx]  # normalised spelling

    P, per_cohort, per_segment = _as_groups(transition_matrices, len(cohorts), len(segments), K)
    thresholds = _thresholds(P, order, cfg.buckets.absorbing)  # (C', S', M, K, K-1)
    n_steps_given = thresholds.shape[2]

    counts_by_segment = _per_segment(loans_per_cohort, segments, "loans_per_cohort")
    if (counts_by_segment < 0).any() or (counts_by_segment != np.round(counts_by_segment)).any():
        raise ValueError(f"loans_per_cohort must be non-negative integers, got {loans_per_cohort!r}")
    mean_by_segment = _per_segment(ead0_mean, segments, "ead0_mean")
    amort_by_segment = _per_segment(amortisation, segments, "amortisation")
    start_by_segment = _per_segment(id_start, segments, "id_start").astype(np.int64)
    if (start_by_segment < 0).any():
        raise ValueError(f"id_start must be >= 0, got {id_start!r}")
    if (mean_by_segment <= 0).any():
        raise ValueError("ead0_mean must be positive")
    if (amort_by_segment < 0).any():
        raise ValueError("amortisation must be >= 0")

    # Groups are (segment, cohort) pairs laid out in loan-id order, so the simulated loans come out
    # already sorted by their id string.
    prefixes = _id_prefixes(segments)
    groups = sorted(
        ((s, c) for s in range(len(segments)) for c in range(len(cohorts))),
        key=lambda sc: (prefixes[sc[0]], cohort_labels[sc[1]]),
    )
    g_seg = np.array([s for s, _ in groups], dtype=np.int64)
    g_coh = np.array([c for _, c in groups], dtype=np.int64)
    g_n = counts_by_segment[g_seg].astype(np.int64)
    n_loans = int(g_n.sum())
    if n_loans == 0:
        return _empty_panel(cfg)

    loan_group = np.repeat(np.arange(len(groups)), g_n)
    loan_seg = g_seg[loan_group]
    loan_coh = g_coh[loan_group]
    loan_seq = np.arange(n_loans) - np.repeat(np.cumsum(g_n) - g_n, g_n) + start_by_segment[loan_seg] + 1
    loan_last = np.minimum(as_of_idx - cohort_idx[loan_coh], max_mob)
    matrix_group = (loan_coh if per_cohort else 0) * (len(segments) if per_segment else 1) + (
        loan_seg if per_segment else 0
    )

    rng = np.random.default_rng(seed)
    sigma = float(ead_sigma)
    ead0 = np.round(
        mean_by_segment[loan_seg] * np.exp(sigma * rng.standard_normal(n_loans) - 0.5 * sigma**2), 2
    )

    states = _simulate_states(
        thresholds.reshape(-1, n_steps_given, K, K - 1),
        matrix_group,
        loan_last,
        order.index(initial_state),
        rng,
    )

    # Flatten the grid to rows (row-major order = loan, then MOB).
    T = states.shape[1]
    mask = np.arange(T)[None, :] <= loan_last[:, None]
    state_row = states[mask]
    rows_per_loan = loan_last + 1
    row_loan = np.repeat(np.arange(n_loans), rows_per_loan)
    row_mob = np.arange(len(row_loan)) - np.repeat(np.cumsum(rows_per_loan) - rows_per_loan, rows_per_loan)

    ead = _ead_rows(cfg, states, state_row, row_loan, row_mob, ead0, amort_by_segment[loan_seg])

    width = max(_ID_MIN_WIDTH, len(str(int(loan_seq.max()))))
    group_prefix = pa.array([f"{prefixes[s]}-{cohort_labels[c]}-" for s, c in groups])
    loan_ids = pc.binary_join_element_wise(
        group_prefix.take(pa.array(loan_group)),
        pc.utf8_lpad(pa.array(loan_seq).cast(pa.string()), width, "0"),
        "",
    )
    row_loan_pa = pa.array(row_loan)
    frame = pd.DataFrame(
        {
            cfg["loan_id"]: _str_series(loan_ids.take(row_loan_pa)),
            cfg["cohort"]: _str_series(pa.array(cohort_labels).take(pa.array(loan_coh[row_loan]))),
            cfg["mob"]: row_mob.astype(np.int64, copy=False),
            cfg["segment"]: _str_series(pa.array(segments).take(pa.array(loan_seg[row_loan]))),
            cfg["state"]: _str_series(pa.array(order).take(pa.array(state_row))),
            cfg["ead"]: ead,
        },
        copy=False,
    )
    log.debug("simulated %d loans, %d rows", n_loans, len(frame))
    return frame


def _simulate_states(
    thresholds: np.ndarray,
    matrix_group: np.ndarray | int,
    loan_last: np.ndarray,
    initial: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """States on the full (loan, MOB) grid; cells after a loan's last MOB are left at the initial state.

    thresholds: (G, M, K, K-1). One uniform per loan per step, only for loans still observed: loans
    are processed in order of decreasing last MOB so the observed ones are always a prefix.
    """
    n_loans = len(loan_last)
    G, M, K, _ = thresholds.shape
    T = int(loan_last.max()) + 1
    by_last = np.argsort(-loan_last, kind="stable")
    group = np.broadcast_to(np.asarray(matrix_group, dtype=np.int64), (n_loans,))[by_last]
    # active[m] = number of loans observed at MOB m + 1
    active = np.searchsorted(-loan_last[by_last], -np.arange(T - 1), side="left")

    states = np.full((n_loans, T), initial, dtype=np.int8 if K < 128 else np.int16)
    row_base = group * K
    for m in range(T - 1):
        n = int(active[m])
        # One contiguous (K-1, G*K) table per step: indexing a column is a cheap gather, and looping
        # over the K-1 thresholds beats comparing an (n, K-1) block.
        table = np.ascontiguousarray(thresholds[:, min(m, M - 1)].reshape(G * K, K - 1).T)
        row = row_base[:n] + states[:n, m]
        u = rng.random(n)
        nxt = np.zeros(n, dtype=states.dtype)
        for j in range(K - 1):
            nxt += u >= table[j][row]
        states[:n, m + 1] = nxt
    out = np.empty_like(states)
    out[by_last] = states
    return out


def _ead_rows(
    cfg: Config,
    states: np.ndarray,
    state_row: np.ndarray,
    row_loan: np.ndarray,
    row_mob: np.ndarray,
    ead0: np.ndarray,
    amort: np.ndarray,
) -> np.ndarray:
    order = list(cfg.buckets.order)
    absorbing = np.zeros(len(order), dtype=bool)
    absorbing[[order.index(b) for b in cfg.buckets.absorbing]] = True
    # An absorbing bad state keeps its balance so it stays in the DEL numerator; a good one (PREPAY)
    # has repaid everything.
    bad = set(cfg.buckets.del30) | set(cfg.buckets.del60) | set(cfg.buckets.del90)
    keeps = np.array([absorbing[i] and order[i] in bad for i in range(len(order))])

    first_absorbing = np.argmax(absorbing[states], axis=1)  # 0 when never absorbed: unused then
    frozen_mob = np.maximum(first_absorbing - 1, 0)
    frozen = np.round(ead0 * np.clip(1.0 - amort * frozen_mob, 0.0, None), 2)

    scheduled = np.round(ead0[row_loan] * np.clip(1.0 - amort[row_loan] * row_mob, 0.0, None), 2)
    return np.where(~absorbing[state_row], scheduled, np.where(keeps[state_row], frozen[row_loan], 0.0))


def iter_panel_parts(
    transition_matrices: np.ndarray,
    *,
    parts: int,
    loans_per_cohort: int | Mapping[str, int],
    segments: Sequence[str],
    seed: Seed,
    **kwargs,
) -> Iterator[pd.DataFrame]:
    """`simulate_panel` split into ``parts`` frames with disjoint loans, generated one at a time.

    Each (segment, cohort) group's loans are divided between the parts and every part gets its own
    child seed, so memory stays at one part while the union is one consistent panel. Other keyword
    arguments go to `simulate_panel`. Use with ``write_panel(iter_panel_parts(...), "x/part-{part}.parquet")``.
    """
    if parts < 1:
        raise ValueError(f"parts must be >= 1, got {parts}")
    segments = [str(s) for s in segments]
    totals = _per_segment(loans_per_cohort, segments, "loans_per_cohort").astype(np.int64)
    # A fresh SeedSequence: spawning from the caller's object would advance it and break repeatability.
    if isinstance(seed, np.random.SeedSequence):
        root = np.random.SeedSequence(seed.entropy, spawn_key=seed.spawn_key, pool_size=seed.pool_size)
    else:
        root = np.random.SeedSequence(seed)
    seeds = root.spawn(parts)
    for p in range(parts):
        lo = totals * p // parts
        hi = totals * (p + 1) // parts
        yield simulate_panel(
            transition_matrices,
            loans_per_cohort={s: int(h - l) for s, l, h in zip(segments, lo, hi, strict=True)},
            segments=segments,
            seed=seeds[p],
            id_start={s: int(l) for s, l in zip(segments, lo, strict=True)},
            **kwargs,
        )


# --------------------------------------------------------------------------------------------------
# realistic roll rates


_CANONICAL = ("CURRENT", "DPD1+", "DPD30+", "DPD60+", "DPD90+", "WRITEOFF", "PREPAY")
# The roll-forward transitions: one bucket worse along the delinquency ladder.
_ROLL_FORWARD = (("CURRENT", "DPD1+"), ("DPD1+", "DPD30+"), ("DPD30+", "DPD60+"), ("DPD60+", "DPD90+"),
                 ("DPD90+", "WRITEOFF"))
# risk scales the roll-forward rates; prepay is the seasoned monthly prepayment hazard.
_SEGMENT_PROFILES: dict[str, dict[str, float]] = {
    "CASH LOAN": {"risk": 1.0, "prepay": 0.022},
    "TW/Moto": {"risk": 0.68, "prepay": 0.016},
    "CD": {"risk": 0.45, "prepay": 0.028},
}
_DEFAULT_PROFILE = {"risk": 0.6, "prepay": 0.02}


def _seasoning(m: np.ndarray, peak: float = 8.0, floor: float = 0.35, tail: float = 0.55) -> np.ndarray:
    """Multiplier of CURRENT -> DPD1+ by MOB step: rises to 1 at ``peak``, eases towards ``tail``."""
    x = (m + 1) / (peak + 1)
    hump = x * np.exp(1.0 - x)  # 1 at the peak
    rising = floor + (1.0 - floor) * hump
    easing = tail + (1.0 - tail) * hump
    return np.where(x <= 1.0, rising, easing)


def _canonical_matrices(profile: Mapping[str, float], max_mob: int) -> np.ndarray:
    C, D1, D30, D60, D90, WO, PP = range(7)
    risk, prepay = profile["risk"], profile["prepay"]
    later = np.sqrt(risk)  # later buckets differ less between products than first-payment defaults
    m = np.arange(max_mob, dtype=np.float64)
    P = np.zeros((max_mob, 7, 7))

    P[:, C, D1] = 0.045 * risk * _seasoning(m)
    P[:, C, PP] = prepay * (1.0 - np.exp(-(m + 1) / 3.0))  # few prepay in the first months
    P[:, D1, C] = 0.52
    P[:, D1, D30] = 0.25 * later
    P[:, D1, PP] = 0.004
    P[:, D30, C] = 0.14
    P[:, D30, D1] = 0.10
    P[:, D30, D60] = 0.58 * later
    P[:, D60, C] = 0.05
    P[:, D60, D30] = 0.06
    P[:, D60, D90] = 0.72 * later
    P[:, D90, C] = 0.02
    P[:, D90, WO] = 0.22
    for i in (C, D1, D30, D60, D90):
        P[:, i, i] = 1.0 - P[:, i].sum(axis=-1)
    P[:, WO, WO] = 1.0
    P[:, PP, PP] = 1.0
    return P


def _to_config_order(P: np.ndarray, cfg: Config, what: str) -> np.ndarray:
    order = list(cfg.buckets.order)
    if sorted(order) != sorted(_CANONICAL):
        raise ValueError(f"{what} needs the buckets {list(_CANONICAL)} (any order); config has {order}")
    perm = [_CANONICAL.index(b) for b in order]
    return P[..., perm, :][..., :, perm]


def realistic_matrices(
    config: Config | None = None,
    segments: Sequence[str] = SAMPLE_SEGMENTS,
    max_mob: int | None = None,
) -> np.ndarray:
    """Plausible monthly consumer-lending transition matrices, shaped (S, max_mob, K, K).

    CURRENT -> DPD1+ follows a seasoning curve (rising to a peak around MOB 8, then easing); CURRENT
    prepays at a hazard that builds up over the first months; every delinquent bucket cures back to
    CURRENT, rolls one bucket forward or stays; DPD90+ is written off. CASH LOAN is the riskiest
    segment, CD the safest, TW/Moto in between; an unknown segment name gets a middle profile.
    DEL30 at MOB 12 is about 10% (CASH LOAN), 6% (TW/Moto), 3% (CD). Needs the seven canonical
    buckets (in any order in the config).
    """
    cfg = config or Config()
    max_mob = cfg.forecast.max_mob if max_mob is None else int(max_mob)
    if max_mob < 1:
        raise ValueError(f"max_mob must be >= 1, got {max_mob}")
    unknown = [s for s in segments if s not in _SEGMENT_PROFILES]
    if unknown:
        log.info("no risk profile for segments %s; using a middle profile", unknown)
    P = np.stack([_canonical_matrices(_SEGMENT_PROFILES.get(s, _DEFAULT_PROFILE), max_mob) for s in segments])
    return _to_config_order(P, cfg, "realistic_matrices")


def _scale_roll_forward(P: np.ndarray, factor: float | np.ndarray, cfg: Config) -> np.ndarray:
    """Roll-forward probabilities times ``factor``; the rest of each row is rescaled so it still sums to 1."""
    order = list(cfg.buckets.order)
    factor = np.asarray(factor, dtype=np.float64)
    lead = np.broadcast_shapes(P.shape[:-2], factor.shape)
    P = np.broadcast_to(P, lead + P.shape[-2:]).copy()
    for src, dst in _ROLL_FORWARD:
        i, j = order.index(src), order.index(dst)
        old = P[..., i, j]
        new = np.minimum(old * factor, 0.95)
        rest = 1.0 - old
        scale = np.divide(1.0 - new, rest, out=np.ones_like(rest), where=rest > 0)
        P[..., i, :] *= scale[..., None]
        P[..., i, j] = new
    return P


# --------------------------------------------------------------------------------------------------
# books with a known truth: vintage effects, thin segments, a crisis


# Segment profiles of the vintage books: A a large riskier book, B a thin safer one.
VINTAGE_PROFILES: dict[str, dict[str, float]] = {"A": {"risk": 1.0, "prepay": 0.022},
                                                 "B": {"risk": 0.5, "prepay": 0.028}}


@dataclass(frozen=True)
class Crisis:
    """Roll-forward rates times ``factor`` in the reporting months ``start`` .. ``start + months - 1``."""

    start: str  # YYYY-MM
    months: int = 6
    factor: float = 1.8


@dataclass(frozen=True)
class VintageBook:
    """A simulated panel and the truth it was drawn from.

    matrices (C, S, M, K, K): each cohort's true transition matrices, step m -> m+1, in [buckets] order, the
    cohort factor and the crisis included; base (S, M, K, K): the segments' matrices before either;
    cohort_factors (C,): the multiplier of every cohort's roll-forward rates; crisis (C, M): the calendar
    multiplier at each cohort's step (1 outside the crisis).
    """

    panel: pd.DataFrame
    matrices: np.ndarray
    base: np.ndarray
    cohort_factors: np.ndarray
    crisis: np.ndarray
    cohorts: tuple[str, ...]
    segments: tuple[str, ...]
    as_of: str

    def known_at(self, as_of: str, *, persist: bool = False, config: Config | None = None) -> np.ndarray:
        """The true matrices (C, S, M, K, K) as a forecaster standing at ``as_of`` could know them: the calendar
        shock of every step from ``as_of`` on is not yet seen, so it is 1 (``persist``: the multiplier of the last
        step seen, as "the crisis goes on"). `matrices` know the future shock: an oracle built on them is a floor
        no forecaster can reach when a shock starts or ends after the as-of. ``config``: the book's (bucket order).
        """
        start = np.array([_month_index(c) for c in self.cohorts])
        calendar = start[:, None] + np.arange(self.crisis.shape[1])[None, :]  # (C, M) month each step starts in
        cut = _month_index(as_of)
        last_seen = self.crisis[calendar == cut - 1]
        unseen = last_seen[0] if persist and last_seen.size else 1.0
        shock = np.where(calendar < cut, self.crisis, unseen)
        factor = (self.cohort_factors[:, None] * shock)[:, None, :]  # (C, 1, M): every segment alike
        return _scale_roll_forward(self.base[None], factor, config or Config())


def simulate_vintage_book(
    seed: int,
    *,
    cohorts: int = 36,
    loans: Mapping[str, int] | None = None,
    cohort_log_sd: float = 0.25,
    cohort_correlation: float = 0.0,
    crisis: Crisis | None = None,
    as_of: str = "2025-12",
    config: Config | None = None,
    profiles: Mapping[str, Mapping[str, float]] | None = None,
) -> VintageBook:
    """A book whose vintages differ (each cohort's roll-forward rates times a lognormal factor, log-sd
    ``cohort_log_sd``; the logs an AR(1) series over the monthly cohorts with lag-one correlation
    ``cohort_correlation``, 0: independent vintages, as underwriting that changes slowly makes neighbours alike)
    and whose segments differ in size (``loans`` per cohort, default A 800, B 120: B is
    thin), optionally with a ``crisis`` (roll-forward rates up for a window of reporting months, whatever the
    cohort). Returns the panel with its truth, so a backtest can be scored against the oracle
    (`backtest.rolling.oracle`). Segments named in ``profiles`` (default `VINTAGE_PROFILES`; a profile's "risk"
    scales the delinquency hazards, "prepay" is the monthly prepayment) get their profile, others a middle one.
    """
    cfg = config or Config()
    loans = dict(loans or {"A": 800, "B": 120})
    if cohorts < 1:
        raise ValueError(f"cohorts must be >= 1, got {cohorts}")
    if not 0 <= cohort_correlation < 1:
        raise ValueError(f"cohort_correlation must be in [0, 1), got {cohort_correlation}")
    segments = tuple(loans)
    end = _month_index(as_of)
    labels = tuple(_month_label(end - cohorts + 1 + i) for i in range(cohorts))
    max_mob = cfg.forecast.max_mob
    effect_seed, sim_seed = np.random.SeedSequence(seed).spawn(2)
    from scipy.signal import lfilter

    shocks = np.random.default_rng(effect_seed).normal(0.0, 1.0, cohorts)
    shocks[1:] *= np.sqrt(1.0 - cohort_correlation ** 2)  # a stationary series: every cohort's log-sd is cohort_log_sd
    factors = np.exp(cohort_log_sd * lfilter([1.0], [1.0, -cohort_correlation], shocks))
    profiles = VINTAGE_PROFILES if profiles is None else profiles
    base = _to_config_order(
        np.stack([_canonical_matrices(profiles.get(s, _DEFAULT_PROFILE), max_mob) for s in segments]),
        cfg, "simulate_vintage_book")
    calendar = (end - cohorts + 1 + np.arange(cohorts))[:, None] + np.arange(max_mob)[None, :]  # month of step m
    shock = np.ones((cohorts, max_mob))
    if crisis is not None:
        first = _month_index(crisis.start)
        shock = np.where((calendar >= first) & (calendar < first + crisis.months), crisis.factor, 1.0)
    # (C, 1, M) multipliers over the segments' (S, M, K, K) matrices -> (C, S, M, K, K)
    multiplier = (factors[:, None] * shock)[:, None, :]
    matrices = _scale_roll_forward(base[None], multiplier, cfg)
    panel = simulate_panel(matrices, cohorts=labels, as_of=as_of, loans_per_cohort=loans, segments=segments,
                           seed=sim_seed, config=cfg)
    return VintageBook(panel=panel, matrices=matrices, base=base, cohort_factors=factors, crisis=shock,
                       cohorts=labels, segments=segments, as_of=as_of)


# --------------------------------------------------------------------------------------------------
# the bundled sample


def generate_sample(
    *,
    seed: int = 20240101,
    loans_per_cohort: int = 250,
    n_cohorts: int = 30,
    as_of: str = "2025-12",
    config: Config | None = None,
    cohort_sd: float = SAMPLE_COHORT_SD,
    score: bool = False,
) -> pd.DataFrame:
    """The realistic demo panel: CASH LOAN, CD and TW/Moto, ``n_cohorts`` monthly cohorts ending at ``as_of``.

    Roll rates come from `realistic_matrices`; each cohort's roll-forward rates are multiplied by a
    lognormal factor (log-sd ``cohort_sd``, drawn from the seed) so that cohorts differ a little in
    risk and calibration has something to fit. Loan sizes and amortisation differ by segment.

    ``score=True`` adds an origination score and an APR column ([columns] score and apr) and lets the
    score drive the chain: see `_scored_panel`. The bundled sample is the plain one.
    """
    cfg = config or Config()
    if n_cohorts < 1:
        raise ValueError(f"n_cohorts must be >= 1, got {n_cohorts}")
    end = _month_index(as_of)
    cohorts = [_month_label(end - n_cohorts + 1 + i) for i in range(n_cohorts)]
    effect_seed, sim_seed = np.random.SeedSequence(seed).spawn(2)
    factors = np.exp(np.random.default_rng(effect_seed).normal(0.0, cohort_sd, n_cohorts))
    base = realistic_matrices(cfg, SAMPLE_SEGMENTS)
    per_cohort = _scale_roll_forward(base[None], factors[:, None, None], cfg)
    if score:
        return _scored_panel(per_cohort, cohorts, as_of, loans_per_cohort, cfg, seed)
    return simulate_panel(
        per_cohort,
        cohorts=cohorts,
        as_of=as_of,
        loans_per_cohort=loans_per_cohort,
        segments=SAMPLE_SEGMENTS,
        seed=sim_seed,
        config=cfg,
        ead0_mean=SAMPLE_EAD0_MEAN,
        amortisation=SAMPLE_AMORTISATION,
    )


# The score of the demo: 600 + 50 z for a standard normal z. A loan in score band b rolls forward
# exp(-SCORE_GAMMA * E[z | b] - SCORE_GAMMA^2 / 2) times as often as its segment (mean 1 over the bands),
# so the lowest decile rolls about 2.6 times, the best about 0.3 times as often. APRs are risk-based.
SAMPLE_SCORE_BANDS = 10
SAMPLE_SCORE_MEAN, SAMPLE_SCORE_SD, SCORE_GAMMA = 600.0, 50.0, 0.6
SAMPLE_BASE_APR: dict[str, float] = {"CASH LOAN": 0.36, "CD": 0.22, "TW/Moto": 0.28}


def _scored_panel(per_cohort: np.ndarray, cohorts: list[str], as_of: str, loans_per_cohort: int, cfg: Config,
                  seed: int) -> pd.DataFrame:
    """The sample with SCORE and APR: each (segment, score band) is simulated as its own group of loans."""
    from scipy.special import ndtri

    from pyxl_del.datasets.scores import normal_band_means

    if cfg["score"] is None or cfg["apr"] is None:
        raise ValueError("a scored sample needs [columns] score and apr to be set")
    n_bands = SAMPLE_SCORE_BANDS
    risk = np.exp(-SCORE_GAMMA * normal_band_means(n_bands) - SCORE_GAMMA**2 / 2)
    banded = _scale_roll_forward(per_cohort[:, :, None], risk[:, None], cfg)  # (C, S, B, M, K, K)
    groups = [f"{s}|{b}" for s in SAMPLE_SEGMENTS for b in range(n_bands)]
    per_band = np.diff(np.linspace(0, loans_per_cohort, n_bands + 1).round().astype(np.int64))
    frame = simulate_panel(
        banded.reshape(len(cohorts), len(groups), *banded.shape[3:]),
        cohorts=cohorts,
        as_of=as_of,
        loans_per_cohort={g: int(per_band[i % n_bands]) for i, g in enumerate(groups)},
        segments=groups,
        seed=np.random.SeedSequence(seed).spawn(3)[1],
        config=cfg,
        ead0_mean={g: SAMPLE_EAD0_MEAN[g.rsplit("|", 1)[0]] for g in groups},
        amortisation={g: SAMPLE_AMORTISATION[g.rsplit("|", 1)[0]] for g in groups},
    )
    group = frame[cfg["segment"]].str.rsplit("|", n=1)
    segment, band = group.str[0], group.str[1].astype(np.int64).to_numpy()
    loan_codes = pd.factorize(frame[cfg["loan_id"]])[0]
    n_loans = int(loan_codes.max()) + 1
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[2])
    u, noise = rng.random(n_loans), rng.normal(0.0, 0.015, n_loans)
    loan_band = np.zeros(n_loans, dtype=np.int64)
    loan_band[loan_codes] = band
    # A standard normal truncated to the band: uniform over the band's population quantiles.
    z = np.clip(ndtri(np.clip((loan_band + u) / n_bands, 1e-12, 1 - 1e-12)), -4.0, 4.0)
    loan_score = np.round(SAMPLE_SCORE_MEAN + SAMPLE_SCORE_SD * z)
    base_apr = segment.map(SAMPLE_BASE_APR).to_numpy(dtype=np.float64)
    frame[cfg["segment"]] = segment.astype(_STR_DTYPE)
    frame[cfg["score"]] = loan_score[loan_codes]
    frame[cfg["apr"]] = np.round(np.clip(base_apr - 0.04 * z[loan_codes] + noise[loan_codes], 0.05, None), 4)
    return frame


def regenerate_bundled_sample(path: str | Path = SAMPLE_PANEL_PATH) -> Path:
    """Rewrite the bundled sample from its seed (default config column names)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = generate_sample(config=Config())
    write_panel(frame, path)
    log.info("wrote %s (%d rows, %d bytes)", path, len(frame), path.stat().st_size)
    return path


def load_sample_panel(config: Config | None = None) -> pd.DataFrame:
    """The bundled sample with its columns renamed to ``config``'s [columns] mapping."""
    cfg = config or Config()
    default = Config()
    frame = pd.read_parquet(SAMPLE_PANEL_PATH)
    return frame.rename(columns={default[k]: cfg[k] for k in LOGICAL_COLUMNS})


# --------------------------------------------------------------------------------------------------
# writing


def _part_template(path: str) -> str:
    if "{part}" in path:
        template = path
    else:
        # Without a placeholder the path is a dataset directory, the layout Spark and DuckDB read.
        template = str(Path(path) / "part-{part}.parquet")
    if not template.endswith(".parquet"):
        raise ValueError(f"part files are written as parquet; {path!r} does not end in .parquet")
    return template


def _split_by_loan(df: pd.DataFrame, n: int, loan_col: str | None) -> list[pd.DataFrame]:
    """``n`` row chunks of nearly equal size, cut only where the loan changes (a loan stays whole)."""
    cuts = np.linspace(0, len(df), n + 1).round().astype(np.int64)
    if loan_col is not None and loan_col in df.columns and len(df):
        ids = df[loan_col]
        starts = np.flatnonzero((ids != ids.shift()).to_numpy())  # row 0 is always a start
        starts = np.append(starts, len(df))
        cuts = starts[np.searchsorted(starts, cuts, side="left").clip(max=len(starts) - 1)]
        cuts[0], cuts[-1] = 0, len(df)
        cuts = np.maximum.accumulate(cuts)
    return [df.iloc[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)]


def _write_parquet(df: pd.DataFrame, path: Path, compression: str) -> None:
    df.to_parquet(path, index=False, compression=compression)


def write_panel(
    df: pd.DataFrame | Iterable[pd.DataFrame],
    path: str | Path,
    *,
    parts: int | None = None,
    config: Config | None = None,
    compression: str = "zstd",
    raw_text: bool = False,
) -> list[Path]:
    """Write a panel by file suffix: ``.csv`` (`engine.files.write_csv`), ``.parquet`` or ``.xlsx`` (sheet "Data").

    Part files (parquet only): give ``parts=N`` and/or a path containing ``{part}`` (replaced by the
    zero-padded part number); without the placeholder the path is a directory that receives
    ``part-00000.parquet`` ... A DataFrame is cut into N chunks without splitting a loan (the loan
    column is found through ``config``); an iterable of frames (e.g. `iter_panel_parts`) is written
    one frame per part as it is produced, so memory stays at one part. Returns the written paths.
    """
    path_text = str(path)
    partitioned = parts is not None or "{part}" in path_text or not isinstance(df, pd.DataFrame)
    if not partitioned:
        return [_write_single(df, Path(path_text), compression, raw_text)]

    if isinstance(df, pd.DataFrame):
        n = 1 if parts is None else int(parts)
        if n < 1:
            raise ValueError(f"parts must be >= 1, got {parts}")
        cfg = config or Config()
        frames: Iterable[pd.DataFrame] = _split_by_loan(df, n, cfg["loan_id"])
    else:
        n = None if parts is None else int(parts)
        frames = df

    template = _part_template(path_text)
    width = _PART_WIDTH if n is None else max(_PART_WIDTH, len(str(n - 1)))
    written: list[Path] = []
    for i, frame in enumerate(frames):
        if n is not None and i >= n:
            raise ValueError(f"more frames than parts={n}")
        target = Path(template.replace("{part}", f"{i:0{width}d}"))
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_parquet(frame, target, compression)
        written.append(target)
        log.debug("wrote part %s (%d rows)", target, len(frame))
    if n is not None and len(written) != n:
        log.warning("wrote %d part files, expected parts=%d", len(written), n)
    return written


def _write_single(df: pd.DataFrame, path: Path, compression: str, raw_text: bool = False) -> Path:
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        from pyxl_del.engine.files import write_csv

        # As every CSV of pyxl_del's: a byte order mark for Excel, no text read as a formula (unless ``raw_text``).
        write_csv(df, path, raw_text=raw_text)
    elif suffix == ".parquet":
        _write_parquet(df, path, compression)
    elif suffix == ".xlsx":
        if len(df) + 1 > EXCEL_MAX_ROWS:
            raise ValueError(f"{len(df)} rows do not fit one Excel sheet ({EXCEL_MAX_ROWS - 1} data rows max)")
        df.to_excel(path, sheet_name="Data", index=False, engine="openpyxl")
    else:
        raise ValueError(f"unknown panel file type {path.suffix!r} for {path}; use .csv, .parquet or .xlsx")
    return path
