"""Champion / challenger: applicants randomised to two policies, simulated in the twin or observed in the data.

`simulate(twin, champion, challenger, months, split, replications, seed)` draws the twin's applicant flow for
``months`` months (Poisson counts per segment, a score band by the band weights, a score uniform within the
band, a lognormal amount around the segment's mean loan), sends each applicant to the challenger with
probability ``split``, decides it with `pyxl_del.decision.decide` under its arm's policy, books it with the twin's
take-up at the offered APR until the arm's monthly budget (its share of [policy] budget) runs out, and rolls
each booking six months on the twin's chain of its segment and score band. Read-out, per arm:

* approvals, bookings and the booked amount;
* DEL30 at MOB 3 and 6 as observed in the simulation (share of bookings; the primary metric is MOB 6);
* DEL30 at MOB 12 as forecast by the engine: each booking's probability of being in a DEL30 bucket at MOB 12
  given its state at MOB 6, on the same chain;
* expected lifetime loss, economic value (from the decisions) and the ROE of the steady book.

Differences come with 95% confidence intervals (two proportions; means of per-applicant or per-booking values;
ratios by the delta method). `months_needed` is the closed-form sample size of the two-proportion z-test: the
months of applicants for the test to detect a difference in the MOB-6 bad rate with 80% power at 5%.
All of it is vectorised over replications: `simulate(..., replications=200)` runs 200 independent tests at once
(the A/A and power checks of tests/test_abtest.py).

`observed(data, config)`: with a mapped [columns] policy_arm column, the same comparison on real loans:
DEL30 at MOB 3 and 6 as observed, and at MOB 12 the engine's forecast (observed + forecast, `pipeline.run` with
the arm as the segment).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

from pyxl_del.decision.decide import engine_for
from pyxl_del.decision.economics import ILLUSTRATIVE, take_up
from pyxl_del.decision.optimise import current_policy, recommend_policy, resolve_budget
from pyxl_del.decision.policy import Policy
from pyxl_del.decision.twin import BAND_SEPARATOR, Twin, read_decision_panel
from pyxl_del.engine.config import Config
from pyxl_del.engine.data import ONLY_EMPTY_IS_MISSING
from pyxl_del.engine.errors import InputError

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER = 0, 1
ARMS = ("champion", "challenger")
OBSERVED_MOBS = (3, 6)
FORECAST_MOB = 12
FOLLOW_UP = max(OBSERVED_MOBS)  # months each booking is rolled on in the simulation
AMOUNT_SIGMA = 0.4  # log-sd of an application's amount around the segment's mean loan (the sample's spread)
ALPHA, POWER = 0.05, 0.80
Z = ndtri(1 - ALPHA / 2)
SMALL_EXPECTED = 5  # expected loans in a cell of a 2x2 table below which its p-value is Fisher's exact test's
TABLE_COLUMNS = ("metric", "unit", "champion", "challenger", "difference", "ci_low", "ci_high", "p_value")


class AbTestError(InputError):
    """A test that cannot be run as asked; the message says why."""


def check_seed(seed: int) -> None:
    """numpy's generators take whole numbers >= 0 only (a negative one was an internal error)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise AbTestError(f"seed must be a whole number >= 0, got {seed!r}")


def check_mde(mde: float, base: float = 0.0) -> None:
    """The difference to size the test for is a bad-rate difference above ``base`` (the champion's rate): more
    than 0, and the challenger's rate ``base + mde`` below 1 (0 gave infinite months, 2 a bad rate of 2.03)."""
    if not (np.isfinite(mde) and 0 < mde < 1):
        raise AbTestError(f"mde must be a bad-rate difference between 0 and 1 (0.01 = 1 point), got {mde!r}")
    if base + mde >= 1:
        raise AbTestError(f"mde {mde:g} above the champion's bad rate {base:.2%} is a bad rate of {base + mde:.2%}: "
                          f"give a difference that keeps it below 100%")


# --------------------------------------------------------------------------------------------- policies


NAMED_POLICIES = ("current", "recommended")


def resolve_policy(spec: str | Policy, twin: Twin) -> Policy:
    """A Policy as it is, or a named one: "current" (the applied policy or the data's practice), "recommended"
    (the optimiser's). A policy file is read by the front end (pyxl_del.excel.decision_actions.read_policy_file)."""
    if isinstance(spec, Policy):
        return spec
    if spec == "current":
        return current_policy(twin)
    if spec == "recommended":
        return recommend_policy(twin)[0]
    raise AbTestError(f"unknown policy {spec!r}: use {' or '.join(NAMED_POLICIES)}, or a policy file")


# ------------------------------------------------------------------------------------------- statistics


def proportion_test(x1, n1, x2, n2) -> tuple[np.ndarray, ...]:
    """(p1, p2, difference p2 - p1, 95% CI low, high (unpooled), two-sided p-value): the pooled z-test's, or
    Fisher's exact test's where the 2x2 table is too small for it (`too_small`)."""
    x1, n1, x2, n2 = (np.asarray(v, dtype=np.float64) for v in (x1, n1, x2, n2))
    with np.errstate(invalid="ignore", divide="ignore"):
        p1, p2 = x1 / n1, x2 / n2
        se = np.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
        pooled = (x1 + x2) / (n1 + n2)
        se0 = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        p_value = 2 * ndtr(-np.abs(p2 - p1) / se0)
    small = too_small(x1, n1, x2, n2)
    if small.any():
        # scipy.stats takes 0.6 s to import: only for a small table.
        from scipy.stats import fisher_exact

        exact = [fisher_exact([[a, m - a], [b, n - b]]).pvalue
                 for a, m, b, n in zip(*(np.broadcast_to(v, small.shape)[small] for v in (x1, n1, x2, n2)),
                                       strict=True)]
        p_value = np.array(p_value, dtype=np.float64)
        p_value[small] = exact
    return p1, p2, p2 - p1, p2 - p1 - Z * se, p2 - p1 + Z * se, p_value


def too_small(x1, n1, x2, n2) -> np.ndarray:
    """Where a cell of the 2x2 table (bad and good loans of each arm) expects fewer than SMALL_EXPECTED loans under
    no difference: the z-test's p-value is then no guide (with 2 bad loans among 40 against 0 among 40 it says
    0.15, Fisher's exact test 0.49)."""
    x1, n1, x2, n2 = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (x1, n1, x2, n2)))
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled = (x1 + x2) / (n1 + n2)
        fewest = np.minimum(np.minimum(n1, n2) * pooled, np.minimum(n1, n2) * (1 - pooled))
    return (n1 > 0) & (n2 > 0) & (fewest < SMALL_EXPECTED)


def mean_test(s1, q1, n1, s2, q2, n2) -> tuple[np.ndarray, ...]:
    """Means from sums s, sums of squares q and counts n: (m1, m2, difference, CI low, high, p-value), normal
    approximation with unequal variances."""
    s1, q1, n1, s2, q2, n2 = (np.asarray(v, dtype=np.float64) for v in (s1, q1, n1, s2, q2, n2))
    with np.errstate(invalid="ignore", divide="ignore"):
        m1, m2 = s1 / n1, s2 / n2
        v1 = np.maximum(q1 / n1 - m1**2, 0) * n1 / np.maximum(n1 - 1, 1)
        v2 = np.maximum(q2 / n2 - m2**2, 0) * n2 / np.maximum(n2 - 1, 1)
        se = np.sqrt(v1 / n1 + v2 / n2)
        p_value = 2 * ndtr(-np.abs(m2 - m1) / se)
    return m1, m2, m2 - m1, m2 - m1 - Z * se, m2 - m1 + Z * se, p_value


def ratio_test(arm1: dict, arm2: dict) -> tuple[np.ndarray, ...]:
    """Ratios sum(y) / sum(x) over units, each arm given as n, sy, sx, syy, sxx, sxy; the delta method's
    variance (y - R x) / mean(x) per unit."""
    out = []
    for a in (arm1, arm2):
        n, sy, sx = (np.asarray(a[k], dtype=np.float64) for k in ("n", "sy", "sx"))
        with np.errstate(invalid="ignore", divide="ignore"):
            r = sy / sx
            mx = sx / n
            resid = (a["syy"] - 2 * r * a["sxy"] + r**2 * a["sxx"]) / n  # mean of (y - r x)^2
            out.append((r, resid / mx**2 / np.maximum(n - 1, 1)))
    (r1, v1), (r2, v2) = out
    se = np.sqrt(v1 + v2)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_value = 2 * ndtr(-np.abs(r2 - r1) / se)
    return r1, r2, r2 - r1, r2 - r1 - Z * se, r2 - r1 + Z * se, p_value


def _two_proportion_terms(p1, p2, w1, w2):
    """The null and alternative standard deviations of p2 - p1 for unit sample sizes w1, w2 per arm."""
    pooled = (w1 * p1 + w2 * p2) / (w1 + w2)
    return (np.sqrt(pooled * (1 - pooled) * (1 / w1 + 1 / w2)),
            np.sqrt(p1 * (1 - p1) / w1 + p2 * (1 - p2) / w2))


def months_needed(p1, p2, bookings1, bookings2, alpha: float = ALPHA, power: float = POWER):
    """Months of applicants for the pooled two-proportion z-test to detect p2 != p1 with ``power``, when the arms
    book ``bookings1`` and ``bookings2`` loans a month: (z_a s0 + z_b s1)^2 / (p2 - p1)^2 with s0, s1 the null
    and alternative standard deviations for one month's bookings (closed form; no statsmodels)."""
    s0, s1 = _two_proportion_terms(np.asarray(p1, float), np.asarray(p2, float), bookings1, bookings2)
    z_a, z_b = ndtri(1 - alpha / 2), ndtri(power)
    with np.errstate(divide="ignore"):
        return (z_a * s0 + z_b * s1) ** 2 / (np.asarray(p2, float) - np.asarray(p1, float)) ** 2


def power_after(months, p1, p2, bookings1, bookings2, alpha: float = ALPHA):
    """The power of the test after ``months`` months (the inverse of `months_needed`)."""
    s0, s1 = _two_proportion_terms(np.asarray(p1, float), np.asarray(p2, float), bookings1, bookings2)
    z_a = ndtri(1 - alpha / 2)
    return ndtr((np.abs(np.asarray(p2, float) - p1) * np.sqrt(months) - z_a * s0) / s1)


# ------------------------------------------------------------------------------------------- the twin's flow


@dataclass(frozen=True)
class Flow:
    """The twin's applicants a month, per segment: how many, and the mean amount (the mean loan booked)."""

    applicants: np.ndarray  # (S,)
    mean_amount: np.ndarray  # (S,)


def applicant_flow(twin: Twin) -> Flow:
    if twin.result is None:
        raise AbTestError("the twin has no engine result to size its applicants from; fit it with fit_twin(data)")
    stats_ = twin.result.stats
    segment_of = np.array([pd.Index(twin.segments).get_loc(s.rsplit(BAND_SEPARATOR, 1)[0] if twin.scored else s)
                           for s in stats_.segments])
    ead0 = np.bincount(segment_of, stats_.ead[:, :, 0, :].sum(axis=(1, 2)), minlength=len(twin.segments))
    loans = np.bincount(segment_of, stats_.n_loans[:, :, 0].sum(axis=1), minlength=len(twin.segments))
    mean_amount = np.divide(ead0, loans, out=np.ones_like(ead0), where=loans > 0)
    return Flow(applicants=twin.applications / mean_amount, mean_amount=mean_amount)


@dataclass(frozen=True)
class Expected:
    """An arm's expected bookings a month and their expected DEL30 at MOB 6 (the twin's, no simulation)."""

    bookings: float
    bad_rate: float


def expected_arm(twin: Twin, policy: Policy, flow: Flow, fraction: float) -> Expected:
    """Bookings per month of an arm receiving ``fraction`` of the applicants and of the budget, and their DEL30
    at MOB 6; the budget caps a segment's expected volume."""
    cutoff, apr, share = policy.arrays(twin.segments, twin.n_bands)
    booked = twin.band_weight * twin.acceptance(cutoff) * twin.take_up(apr)  # per applicant, (S, B)
    demand = fraction * flow.applicants[:, None] * booked
    cap = share * resolve_budget(twin) * fraction / flow.mean_amount
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.minimum(1.0, np.where(demand.sum(axis=1) > 0, cap / demand.sum(axis=1), 1.0))
    loans = demand * scale[:, None]
    total = loans.sum()
    return Expected(bookings=float(total),
                    bad_rate=float((loans * twin.del30_mob6).sum() / total) if total > 0 else float("nan"))


# --------------------------------------------------------------------------------------------- simulation


@dataclass(frozen=True, eq=False)
class Simulation:
    """Sums per replication and arm, arrays (R, 2): what `table` and the tests read."""

    champion: Policy
    challenger: Policy
    months: int
    split: float
    sums: dict[str, np.ndarray]  # (R, 2) each; see `simulate`
    curve: np.ndarray  # (R, 2, FORECAST_MOB + 1) DEL30 share of bookings by MOB: observed to 6, forecast after
    expected: tuple[Expected, Expected]
    versions: tuple[str, str]  # champion's and challenger's, as their decisions carry them (Policy.version_under)
    caveat: str = ""  # "ILLUSTRATIVE: ..." when the twin's economics rest on defaults (the value and ROE rows)

    @property
    def replications(self) -> int:
        return self.curve.shape[0]

    def bad_rate_test(self, mob: int = max(OBSERVED_MOBS)) -> tuple[np.ndarray, ...]:
        s = self.sums
        return proportion_test(s[f"bad{mob}"][:, 0], s["bookings"][:, 0], s[f"bad{mob}"][:, 1], s["bookings"][:, 1])

    def table(self, replication: int = 0) -> pd.DataFrame:
        """The A/B table (TABLE_COLUMNS) of one replication."""
        s = {k: v[replication] for k, v in self.sums.items()}
        rows = []

        def add(metric, unit, result):
            a, b, d, lo, hi, p = (float(np.asarray(v)) for v in result)
            rows.append((metric, unit, a, b, d, lo, hi, p))

        n = s["applicants"]
        rows.append(("Applicants", "count", n[0], n[1], n[1] - n[0], np.nan, np.nan, np.nan))
        add("Approval rate", "pct", proportion_test(s["approvals"][0], n[0], s["approvals"][1], n[1]))
        add("Booking rate", "pct", proportion_test(s["bookings"][0], n[0], s["bookings"][1], n[1]))
        rows.append(("Bookings", "count", s["bookings"][0], s["bookings"][1], s["bookings"][1] - s["bookings"][0],
                     np.nan, np.nan, np.nan))
        add("Booked amount per applicant", "amount", mean_test(*_moments(s, "amount")))
        for mob in OBSERVED_MOBS:
            add(f"DEL30 at MOB {mob} (simulated)", "pct", proportion_test(
                s[f"bad{mob}"][0], s["bookings"][0], s[f"bad{mob}"][1], s["bookings"][1]))
        add(f"DEL30 at MOB {FORECAST_MOB} (engine forecast)", "pct", mean_test(
            s["bad12"][0], s["bad12_sq"][0], s["bookings"][0], s["bad12"][1], s["bad12_sq"][1], s["bookings"][1]))
        add("Expected loss per applicant", "amount", mean_test(*_moments(s, "el")))
        add("Expected loss / booked amount", "pct", ratio_test(*_ratio_arms(s, "el", "amount")))
        tag = f" ({ILLUSTRATIVE})" if self.caveat else ""
        add(f"Value per applicant{tag}", "amount", mean_test(*_moments(s, "value")))
        add(f"ROE of the steady book{tag}", "pct", ratio_test(*_ratio_arms(s, "income", "capital")))
        frame = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
        frame["metric"] = frame["metric"].astype("string")
        frame["unit"] = frame["unit"].astype("string")
        return frame

    def power(self, mde: float) -> pd.DataFrame:
        """Months of applicants needed for 80% power at 5%: for the difference the twin expects between the arms,
        and for ``mde`` (absolute, in bad-rate points) above the champion's rate; with the power after the
        simulated months."""
        a, b = self.expected
        check_mde(mde, float(a.bad_rate))
        rows = []
        for label, p2 in (("expected difference", b.bad_rate), (f"difference of {mde:+.2%}", a.bad_rate + mde)):
            need = float(months_needed(a.bad_rate, p2, a.bookings, b.bookings))
            rows.append((label, a.bad_rate, p2, p2 - a.bad_rate, a.bookings, b.bookings, need,
                         float(power_after(self.months, a.bad_rate, p2, a.bookings, b.bookings))))
        return pd.DataFrame(rows, columns=["what", "champion_bad_rate", "challenger_bad_rate", "difference",
                                           "champion_bookings_per_month", "challenger_bookings_per_month",
                                           "months_needed", f"power_after_{self.months}_months"])


def _moments(s: dict, key: str):
    """Per-applicant sums of a variable (zero for applicants not booked): mean_test's arguments."""
    n = s["applicants"]
    return s[key][0], s[f"{key}_sq"][0], n[0], s[key][1], s[f"{key}_sq"][1], n[1]


def _ratio_arms(s: dict, y: str, x: str) -> tuple[dict, dict]:
    return tuple({"n": s["bookings"][a], "sy": s[y][a], "sx": s[x][a], "syy": s[f"{y}_sq"][a],
                  "sxx": s[f"{x}_sq"][a], "sxy": s[f"{y}_{x}"][a]} for a in (CHAMPION, CHALLENGER))


def _steady_book(twin: Twin) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(S, B) per unit booked: annual net income = apr * a - c (after tax), capital of the steady book; as
    `optimise.evaluate` computes ROE (income and capital of the book that booking every month builds)."""
    a, c = twin.income_terms()
    return a, c, twin.capital_months()


def simulate(twin: Twin, champion: str | Policy = "current", challenger: str | Policy = "recommended", *,
             months: int = 6, split: float = 0.5, replications: int = 1, seed: int = 0) -> Simulation:
    """Randomise the twin's applicants of ``months`` months to the two policies (challenger with probability
    ``split``), ``replications`` independent times, and read out each arm (see the module docstring)."""
    if months < 1:
        raise AbTestError(f"months must be >= 1, got {months}")
    if not 0 < split < 1:
        raise AbTestError(f"split must be strictly between 0 and 1, got {split}")
    if replications < 1:
        raise AbTestError(f"replications must be >= 1, got {replications}")
    check_seed(seed)
    if twin.max_mob < FORECAST_MOB:
        raise AbTestError(f"the twin's chains end at MOB {twin.max_mob}; the test reads MOB {FORECAST_MOB} "
                          f"([forecast] max_mob must be >= {FORECAST_MOB})")
    policies = (resolve_policy(champion, twin), resolve_policy(challenger, twin))
    engines = tuple(engine_for(p, twin) for p in policies)
    flow = applicant_flow(twin)
    rng = np.random.default_rng(seed)
    n_seg, n_bands = twin.band_weight.shape

    # Applicants, grouped by (replication, month, segment) in arrival order.
    counts = rng.poisson(np.broadcast_to(flow.applicants, (replications, months, n_seg)))
    group = np.repeat(np.arange(counts.size), counts.ravel())
    rep, segment = group // (months * n_seg), group % n_seg
    n = len(group)
    arm = (rng.random(n) < split).astype(np.int64)
    cum = np.cumsum(twin.band_weight, axis=1)
    cum[:, -1] = 1.0
    band = np.minimum((rng.random(n)[:, None] >= cum[segment]).sum(axis=1), n_bands - 1)
    lo, hi = twin.band_edges[segment, band], twin.band_edges[segment, band + 1]
    score = lo + (hi - lo) * rng.random(n)
    mu = np.log(flow.mean_amount) - AMOUNT_SIGMA**2 / 2
    amount = np.exp(mu[segment] + AMOUNT_SIGMA * rng.standard_normal(n))

    approved = np.zeros(n, dtype=bool)
    apr, el, value = np.zeros(n), np.zeros(n), np.zeros(n)
    for a, engine in enumerate(engines):
        rows = np.flatnonzero(arm == a)
        ev = engine.evaluate(segment[rows], score[rows], amount[rows], np.full(len(rows), np.nan))
        approved[rows], apr[rows] = ev.approved, ev.apr
        el[rows], value[rows] = ev.expected_loss, ev.expected_value
    d = twin.demand[segment]
    booked = approved & (rng.random(n) < take_up(apr, d[:, 0], d[:, 1], d[:, 2]))
    booked &= _within_budget(twin, policies, split, group * 2 + arm, amount * booked)

    # Each booking rolls FOLLOW_UP months on its chain, from the first bucket at MOB 0.
    loans = np.flatnonzero(booked)
    s_l, b_l = segment[loans], band[loans]
    chain_cum = np.cumsum(twin.transition_matrix[..., :FORECAST_MOB, :, :], axis=-1)  # (S, B, 12, K, K)
    state = np.zeros(len(loans), dtype=np.int64)
    del30 = np.isin(twin.states, twin.config.buckets.del30)
    k = len(twin.states)
    unit = rep[loans] * 2 + arm[loans]
    n_units = replications * 2
    curve = np.zeros((n_units, FORECAST_MOB + 1))
    at = {}
    for m in range(FOLLOW_UP):
        step = chain_cum[s_l, b_l, m, state]  # (loans, K)
        state = np.minimum((rng.random(len(loans))[:, None] >= step).sum(axis=1), k - 1)
        curve[:, m + 1] = np.bincount(unit, del30[state].astype(float), minlength=n_units)
        at[m + 1] = state
    # The engine's forecast from MOB 6 on: expected state mix per unit, rolled on the same chains.
    mix = np.zeros((n_units, n_seg, n_bands, k))
    np.add.at(mix, (unit, s_l, b_l, state), 1.0)
    to12 = np.zeros((n_seg, n_bands, k))  # P(DEL30 at MOB 12 | state k at MOB 6)
    to12[..., :] = del30
    for m in range(FORECAST_MOB - 1, FOLLOW_UP - 1, -1):
        to12 = np.einsum("sbij,sbj->sbi", twin.transition_matrix[:, :, m], to12)
    for m in range(FOLLOW_UP, FORECAST_MOB):
        mix = np.einsum("usbi,sbij->usbj", mix, twin.transition_matrix[:, :, m])
        curve[:, m + 1] = mix[..., del30].sum(axis=(1, 2, 3))
    bad12 = to12[s_l, b_l, state]

    inc_a, inc_c, cap_rate = _steady_book(twin)
    income = amount[loans] * (inc_a[s_l, b_l] * apr[loans] - inc_c[s_l, b_l])
    capital = amount[loans] * cap_rate[s_l, b_l]
    units = rep * 2 + arm

    def total(index, weights=None):
        return np.bincount(index, weights, minlength=n_units).reshape(replications, 2)

    book_amount = amount[loans]
    sums = {
        "applicants": total(units), "approvals": total(units, approved.astype(float)), "bookings": total(unit),
        "amount": total(unit, book_amount), "amount_sq": total(unit, book_amount**2),
        "el": total(unit, el[loans]), "el_sq": total(unit, el[loans] ** 2),
        "el_amount": total(unit, el[loans] * book_amount),
        "value": total(unit, value[loans]), "value_sq": total(unit, value[loans] ** 2),
        "income": total(unit, income), "income_sq": total(unit, income**2), "capital": total(unit, capital),
        "capital_sq": total(unit, capital**2), "income_capital": total(unit, income * capital),
        "bad12": total(unit, bad12), "bad12_sq": total(unit, bad12**2),
        **{f"bad{mob}": total(unit, del30[at[mob]].astype(float)) for mob in OBSERVED_MOBS},
    }
    with np.errstate(invalid="ignore", divide="ignore"):
        curve = (curve / sums["bookings"].reshape(-1, 1)).reshape(replications, 2, -1)
    expected = (expected_arm(twin, policies[0], flow, 1 - split), expected_arm(twin, policies[1], flow, split))
    log.info("A/B simulation: %d applicants, %d bookings, %d replications", n, len(loans), replications)
    return Simulation(champion=policies[0], challenger=policies[1], months=months, split=split, sums=sums,
                      curve=curve, expected=expected, versions=(engines[0].version, engines[1].version),
                      caveat=twin.caveat())


def _within_budget(twin: Twin, policies, split: float, group: np.ndarray, booked_amount: np.ndarray) -> np.ndarray:
    """Bookings that fit their arm's monthly budget, first come first served: an arm gets its fraction of the
    applicants and the same fraction of [policy] budget, a segment its policy's share of that."""
    budget = resolve_budget(twin)
    n_seg = len(twin.segments)
    fraction = np.array([1 - split, split])
    caps = np.stack([p.arrays(twin.segments, twin.n_bands)[2] for p in policies], axis=1) * budget * fraction
    order = np.argsort(group, kind="stable")
    g = group[order]
    running = np.cumsum(booked_amount[order])
    start = np.searchsorted(g, g, side="left")
    before = np.concatenate([[0.0], running])[start]
    cap = caps[(g // 2) % n_seg, g % 2]
    fits = np.empty(len(group), dtype=bool)
    fits[order] = running - before <= cap * (1 + 1e-12)
    return fits


# ------------------------------------------------------------------------------------------- real data


@dataclass(frozen=True, eq=False)
class Observed:
    """The comparison on real loans with a policy_arm column."""

    arms: tuple[str, str]
    table: pd.DataFrame
    power: pd.DataFrame
    curve: np.ndarray  # (2, FORECAST_MOB + 1) observed DEL30 share of loans by MOB, engine mixed after
    notes: tuple[str, ...] = ()  # what the figures rest on (a comparison on few loans)


def observed(data, config: Config, *, champion: str | None = None, mde: float = 0.01, sheet=None) -> Observed:
    """Champion vs challenger on loans whose [columns] policy_arm says which policy booked them; ``champion`` is
    the champion arm's label, one of the two the column holds (None: the first in sorted order)."""
    from pyxl_del.engine.pipeline import run

    column = config["policy_arm"]
    if column is None:
        raise AbTestError("[columns] policy_arm is not set: map the column that names each loan's arm")
    check_mde(mde)
    frame, source = read_decision_panel(data, config, sheet=sheet)
    arms_frame = _read_arm(data, column, sheet)
    if arms_frame is None:
        raise AbTestError(f"{source}: no column {column!r} ([columns] policy_arm) in the data")
    frame = frame.assign(**{column: arms_frame.to_numpy()})
    labels = sorted(pd.unique(frame[column].dropna().astype(str)))
    if len(labels) != 2:
        raise AbTestError(f"{source}: column {column!r} must name exactly two arms, found {labels}")
    if champion is not None:
        if champion not in labels:  # taking the other arm for the champion would swap every difference's sign
            raise AbTestError(f"{source}: the champion {champion!r} is not an arm of the data: column {column!r} "
                              f"names the arms {labels[0]!r} and {labels[1]!r}; name the champion's with --champion")
        labels = [champion, *(x for x in labels if x != champion)]
    banded = frame.assign(**{config["segment"]: frame[column].astype(str)})
    result = run(banded.drop(columns=[column]), config.with_overrides(forecast={"intervals": False}))  # paths only
    mob = pd.to_numeric(frame[config["mob"]]).to_numpy()
    state = frame[config["state"]].astype(str).to_numpy()
    bad = np.isin(state, config.buckets.del30)
    arm = np.where(frame[column].astype(str).to_numpy() == labels[1], CHALLENGER, CHAMPION)
    cohort = frame[config["cohort"]].astype(str).to_numpy()
    months = len(pd.unique(cohort[mob == 0]))
    counts = {m: np.bincount(arm[mob == m], minlength=2) for m in range(FORECAST_MOB + 1)}
    bads = {m: np.bincount(arm[(mob == m) & bad], minlength=2) for m in range(FORECAST_MOB + 1)}
    rows = [("Loans booked", "count", *counts[0].astype(float), float(counts[0][1] - counts[0][0]), np.nan, np.nan,
             np.nan)]
    notes = []
    for m in OBSERVED_MOBS:
        rows.append((f"DEL30 at MOB {m} (observed)", "pct",
                     *(float(v) for v in proportion_test(bads[m][0], counts[m][0], bads[m][1], counts[m][1]))))
        if too_small(bads[m][0], counts[m][0], bads[m][1], counts[m][1]):
            notes.append(f"DEL30 at MOB {m}: {int(bads[m][0])} of {int(counts[m][0])} champion and "
                         f"{int(bads[m][1])} of {int(counts[m][1])} challenger loans bad, fewer than "
                         f"{SMALL_EXPECTED} bad or good loans expected in an arm: the p-value is Fisher's exact "
                         f"test's and the 95% interval (normal approximation) is rough; wait for more loans before "
                         f"deciding")
    mixed = []
    for label in labels:
        wide = result.wide(label, "DEL30")
        weight = result.stats.ead[result.segments.index(label), :, 0, :].sum(axis=-1)
        weight = weight[result.rates["DEL30"].present[result.segments.index(label)]]
        mixed.append(np.average(wide.to_numpy(dtype=float), axis=0, weights=weight))
    m12 = min(FORECAST_MOB, result.stats.max_mob)
    rows.append((f"DEL30 at MOB {m12} (observed + forecast)", "pct", mixed[0][m12], mixed[1][m12],
                 mixed[1][m12] - mixed[0][m12], np.nan, np.nan, np.nan))
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS)).astype({"metric": "string", "unit": "string"})
    per_month = counts[0] / max(months, 1)
    p1 = bads[6][0] / max(counts[6][0], 1)
    p2 = bads[6][1] / max(counts[6][1], 1)
    check_mde(mde, p1)
    power = pd.DataFrame([
        (label, p1, q, q - p1, per_month[0], per_month[1], float(months_needed(p1, q, per_month[0], per_month[1])),
         float(power_after(months, p1, q, per_month[0], per_month[1])))
        for label, q in (("observed difference", p2), (f"difference of {mde:+.2%}", p1 + mde))],
        columns=["what", "champion_bad_rate", "challenger_bad_rate", "difference", "champion_bookings_per_month",
                 "challenger_bookings_per_month", "months_needed", f"power_after_{months}_months"])
    curve = np.stack([m[:FORECAST_MOB + 1] if len(m) > FORECAST_MOB else np.pad(m, (0, FORECAST_MOB + 1 - len(m)),
                                                                                  constant_values=np.nan)
                      for m in mixed])
    return Observed(arms=(labels[0], labels[1]), table=table, power=power, curve=curve, notes=tuple(notes))


def _read_arm(data, column: str, sheet) -> pd.Series | None:
    if isinstance(data, pd.DataFrame):
        return data[column] if column in data.columns else None
    path = Path(data)
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        return pd.read_parquet(path, columns=[column])[column] if column in pq.read_schema(path).names else None
    if suffix in (".xlsx", ".xlsm"):
        frame = pd.read_excel(path, sheet_name=sheet if sheet is not None else 0, engine="openpyxl",
                              **ONLY_EMPTY_IS_MISSING)
    else:
        header = pd.read_csv(path, nrows=0, encoding="utf-8-sig").columns
        frame = (pd.read_csv(path, usecols=[column], encoding="utf-8-sig", **ONLY_EMPTY_IS_MISSING)
                 if column in header else pd.DataFrame())
    return frame[column] if column in frame.columns else None


def has_arm_column(data, config: Config, sheet=None) -> bool:
    return config["policy_arm"] is not None and _read_arm(data, config["policy_arm"], sheet) is not None


# ------------------------------------------------------------------------------------------------ sheet
