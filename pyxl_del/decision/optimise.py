"""Optimisers on the twin: credit cut-off, pricing and the new-lending mix; and what a policy does.

* `evaluate(twin, policy)`: a policy's expected approval, volume, DEL30 at MOB 6 and 12, lifetime EL, VaR99,
  value, capital and steady-state ROE per segment and for the portfolio.
* `cutoff_frontier(twin)`: for every cut-off on a band edge, the value-maximising APR (Lambert W closed form)
  and the approval rate, bad rate, value and ROE that go with it: the frontier, vectorised.
* `optimise_mix(...)`: the budget shares maximising value under the EL, VaR99, HHI, share and demand
  constraints (scipy linprog; SLSQP when the HHI limit binds); an infeasible set raises `InfeasibleError`
  naming a smallest conflicting subset of the constraints; `proven_optimal` checks an answer against the
  linear relaxation (a mix it cannot prove is said in the recommendation's notes).
* `optimise(twin) -> Recommendation`: all three, with the current policy's figures beside the recommended ones.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pyxl_del.decision.economics import optimal_apr, optimal_apr_numeric, take_up
from pyxl_del.decision.policy import Policy, PolicyError, policy_from_settings
from pyxl_del.decision.twin import Twin
from pyxl_del.engine.errors import InputError

log = logging.getLogger(__name__)

PORTFOLIO = "Portfolio"
FEASIBILITY_TOLERANCE = 1e-9
APR_TOLERANCE = 1e-9  # a recommended APR at the range's edge may come back from a spreadsheet a rounding away


class InfeasibleError(InputError):
    """No policy meets every constraint; ``conflict`` names a smallest set of constraints that cannot hold together."""

    def __init__(self, message: str, conflict: tuple[str, ...]):
        self.conflict = conflict
        super().__init__(message)


# ------------------------------------------------------------------------------------------------- current


def resolve_budget(twin: Twin) -> float:
    """[policy] budget, or the data's recent monthly volume when it is 0."""
    budget = twin.config.policy.budget
    return float(budget if budget > 0 else twin.volume.sum())


def current_policy(twin: Twin) -> Policy:
    """The applied policy of [policy] segments, or the data's practice: accept every score booked so far, the
    recent APR (per band when pricing per band), and the recent volume shares — scaled down to fit a [policy]
    budget below the recent volume (`budget_cut_note` says so)."""
    budget = resolve_budget(twin)
    settings = twin.config.policy
    if settings.segments:
        return policy_from_settings(settings, budget)
    mean_apr = (twin.band_weight * twin.current_apr).sum(axis=1)
    # A budget cut keeps today's mix: each segment's volume falls in proportion, so the shares add up to 1.
    room = max(budget, float(twin.volume.sum()))
    share = twin.volume / room if room > 0 else np.zeros(len(twin.segments))
    band_aprs = twin.current_apr if settings.price_by == "band" else None
    return Policy.from_arrays(twin.segments, np.full(len(twin.segments), np.nan), mean_apr, share, budget, band_aprs)


def budget_cut_note(twin: Twin) -> str:
    """What the current policy means when [policy] budget is below the data's recent monthly volume, else ""."""
    budget, booked = resolve_budget(twin), float(twin.volume.sum())
    if budget >= booked:
        return ""
    return (f"[policy] budget = {budget:,.0f} a month is below the data's recent monthly volume of {booked:,.0f}: "
            f"the current policy is today's practice with every segment's volume scaled by {budget / booked:.1%} "
            f"to fit it (today's budget shares)")


def check_aprs(twin: Twin, policy: Policy, source: str = "policy", rows: dict[str, int] | None = None) -> None:
    """Raise PolicyError naming each segment (and its row in ``rows``) whose APR, or a band's, lies outside the
    range the optimiser prices in and `decide` accepts (`Twin.apr_range`): applied, it would lend at a price the
    engine itself would refuse."""
    lo, hi, where = twin.apr_range()
    problems = []
    for s, name in enumerate(twin.segments):
        entry = policy.segments.get(name)
        if entry is None:
            continue  # a missing segment is the twin's error (`Policy.arrays`)
        aprs = [entry.apr, *(entry.band_aprs or ())]
        outside = [a for a in aprs if not lo[s] - APR_TOLERANCE <= a <= hi[s] + APR_TOLERANCE]
        if outside:
            at = f"row {rows[name]} ({name})" if rows and name in rows else f"segment {name!r}"
            allowed = f"{lo[s]:.3%} only" if lo[s] == hi[s] else f"{lo[s]:.3%} to {hi[s]:.3%}"
            problems.append(f"{at}: apr {outside[0]:.3%} is outside the allowed {allowed} ({where[s]})")
    if problems:
        raise PolicyError(f"{source}: " + "; ".join(problems) + "; set [policy] apr_min / apr_max to allow other "
                          "prices")


# ---------------------------------------------------------------------------------------------- evaluation


def _weighted(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    total = weights.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (weights * values).sum(axis=-1) / total, np.nan)


def _metrics(twin: Twin, cutoff, apr, share, budget: float) -> dict:
    """Per segment (S,) figures of a policy given as arrays: cutoff (S,), apr (S, B), share (S,)."""
    accepted = twin.band_weight * twin.acceptance(cutoff)
    booked = accepted * twin.take_up(apr)  # per unit applied
    approval = accepted.sum(axis=1)
    book_rate = booked.sum(axis=1)
    capacity = twin.applications * book_rate
    volume = np.minimum(np.asarray(share) * budget, capacity)
    u = twin.unit_economics()
    sums = twin.lifetime_sums()
    income = twin.income_terms()
    unit = {
        "value_rate": _weighted(booked, u["slope"] * apr - u["intercept"]),
        "el_rate": _weighted(booked, twin.lgd[:, None] * sums["writeoff"]),
        "var99_rate": _weighted(booked, twin.var99_rate()),
        "ni_rate": _weighted(booked, income[0] * apr - income[1]),
        "capital_rate": _weighted(booked, twin.capital_months()),
        "del30_mob6": _weighted(booked, twin.del30_mob6),
        "del30_mob12": _weighted(booked, twin.del30_mob12),
        "pd12": _weighted(booked, twin.pd12),
        # Nothing booked (a cut-off above every score, take-up 0): the policy's APR is still its offer.
        "apr": np.where(booked.sum(axis=1) > 0, _weighted(booked, apr), (twin.band_weight * apr).sum(axis=1)),
    }
    slope, intercept = _weighted(booked, u["slope"]), _weighted(booked, u["intercept"])
    parts = {k: _weighted(booked, u[k[5:]]) / _weighted(booked, u["annuity"])
             for k in ("cost_funding", "cost_opex", "cost_loss")}
    parts["cost_capital"] = _weighted(booked, u["capital_charge"]) / slope
    with np.errstate(invalid="ignore", divide="ignore"):
        take = np.where(approval > 0, book_rate / approval, np.nan)
    out = {
        "approval_rate": approval, "take_up": take, "capacity": capacity, "volume": volume,
        "value": volume * np.nan_to_num(unit["value_rate"]), "lifetime_el": volume * np.nan_to_num(unit["el_rate"]),
        "var99": volume * np.nan_to_num(unit["var99_rate"]),
        "annual_net_income": volume * np.nan_to_num(unit["ni_rate"]),
        "capital": volume * np.nan_to_num(unit["capital_rate"]),
        "unit_cost": intercept / slope, **parts, **unit,
    }
    with np.errstate(invalid="ignore", divide="ignore"):
        out["roe"] = np.where(out["capital"] > 0, out["annual_net_income"] / out["capital"], np.nan)
    return out


IMPACT_COLUMNS = ("cutoff", "apr", "budget_share", "approval_rate", "take_up", "volume", "del30_mob6", "del30_mob12",
                  "lifetime_el", "el_rate", "var99", "value", "capital", "annual_net_income", "roe", "hhi",
                  "unit_cost", "cost_funding", "cost_loss", "cost_capital", "cost_opex")


def evaluate(twin: Twin, policy: Policy) -> pd.DataFrame:
    """One row per segment and a Portfolio row: what the policy is expected to do (IMPACT_COLUMNS).

    Volumes are per month; value is the discounted economic profit of one month's bookings over their life;
    lifetime_el and var99 are of one month's bookings; capital and annual_net_income are of the steady book
    that booking this month after month builds, so roe = annual_net_income / capital is its return on equity.
    """
    cutoff, apr, share = policy.arrays(twin.segments, twin.n_bands)
    m = _metrics(twin, cutoff, apr, share, policy.budget)
    frame = pd.DataFrame({"segment": list(twin.segments), "cutoff": cutoff, "budget_share": share,
                          "hhi": np.nan, **{k: m[k] for k in IMPACT_COLUMNS if k in m}})
    volume = m["volume"]
    total = {"segment": PORTFOLIO, "cutoff": np.nan, "budget_share": share.sum(), "hhi": float((share**2).sum())}
    for key in ("volume", "value", "lifetime_el", "var99", "capital", "annual_net_income"):
        total[key] = float(m[key].sum())
    applicants = twin.applications
    total["approval_rate"] = float((applicants * m["approval_rate"]).sum() / applicants.sum())
    for key in ("apr", "take_up", "del30_mob6", "del30_mob12", "el_rate", "unit_cost", "cost_funding", "cost_loss",
                "cost_capital", "cost_opex"):
        total[key] = float(_weighted(volume, np.nan_to_num(m[key])))
    total["roe"] = total["annual_net_income"] / total["capital"] if total["capital"] > 0 else np.nan
    frame = pd.concat([frame, pd.DataFrame([total])], ignore_index=True)
    frame["segment"] = frame["segment"].astype("string")
    return frame[["segment", *IMPACT_COLUMNS]]


def undefined_reason(row: pd.Series, key: str) -> str:
    """Why figure ``key`` of an `evaluate` row has no value ("" when it has one): the sentence shown in its place."""
    if pd.notna(row[key]):
        return ""
    if not row["volume"] > 0:
        return "not defined: nothing is booked"
    if key == "roe" and not row["capital"] > 0:
        return "not defined: no capital is held"
    return "not defined"


def undefined_notes(twin: Twin, impact: pd.DataFrame, label: str) -> list[str]:
    """Notes on the figures of an `evaluate` frame that have no value, and why (``label``: "current policy" or
    "recommended policy")."""
    rows = impact.set_index("segment")
    notes = []
    idle = [s for s in rows.index if not rows.loc[s, "volume"] > 0]
    if idle:
        notes.append(f"{label}: {', '.join(idle)} book nothing, so their take-up, DEL30, EL rate, unit cost and ROE "
                     f"(figures of what is booked) are not defined")
    no_capital = [s for s in rows.index if rows.loc[s, "volume"] > 0 and not rows.loc[s, "capital"] > 0]
    if no_capital:
        zero_lgd = [s for s in twin.segments if s in no_capital and twin.lgd[twin.segments.index(s)] == 0]
        cause = (f"the IRB capital is proportional to [risk] lgd, which is 0 for {', '.join(zero_lgd)}"
                 if zero_lgd and twin.config.economics.capital == "irb" else "the capital per unit of EAD is 0")
        notes.append(f"{label}: ROE is not defined for {', '.join(no_capital)}: no capital is held ({cause}); "
                     f"[economics] capital = \"ratio\" with a capital_ratio above 0 gives one")
    return notes


def expected_del30_curve(twin: Twin, policy: Policy) -> dict[str, list[float]]:
    """Per segment, the expected DEL30 of a cohort booked under ``policy``, MOB 0..max_mob (booked-mix weighted)."""
    cutoff, apr, _share = policy.arrays(twin.segments, twin.n_bands)
    booked = twin.band_weight * twin.acceptance(cutoff) * twin.take_up(apr)
    mask = np.isin(twin.states, twin.config.buckets.del30)
    del30 = twin.distribution[..., mask].sum(axis=-1)  # (S, B, M+1)
    total = booked.sum(axis=1)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        curves = np.einsum("sb,sbm->sm", booked, del30) / total
    return {s: [float(v) for v in curves[i]] for i, s in enumerate(twin.segments)}


def roe_kpis(twin: Twin, policy: Policy | None = None) -> pd.DataFrame:
    """Dashboard KPIs (kpi, value, unit, note) of a policy (default: the current one): portfolio ROE, the value of a
    month's bookings, volume, approval rate, expected DEL30 at MOB 12 and lifetime EL; the economics' figures note
    ILLUSTRATIVE when they rest on a default."""
    row = evaluate(twin, policy or current_policy(twin)).set_index("segment").loc[PORTFOLIO]
    caveat = twin.caveat()
    lgd = "ILLUSTRATIVE: default [risk] lgd" if any(twin.config.risk.lgd_is_default(s) for s in twin.segments) else ""
    if not row["lifetime_el"] > 0 and row["volume"] > 0:  # the band caveats say why the chain loses nothing
        zero = next((z for s in range(len(twin.segments)) if (z := twin.zero_loss_note(s))), "expected loss 0")
        lgd = f"WARNING: not a measured zero: {zero}"
    items = (("ROE (steady book)", row["roe"], "pct", caveat),
             ("Value of a month's bookings", row["value"], "amount", caveat),
             ("New lending a month", row["volume"], "amount", "the data's recent monthly volume"
              if twin.config.policy.budget <= 0 else (budget_cut_note(twin) or "[policy] budget")),
             ("Approval rate", row["approval_rate"], "pct", "of the applicants the data booked (no reject inference)"),
             ("Expected DEL30 at MOB 12", row["del30_mob12"], "pct", "a new cohort under the current policy"),
             ("Lifetime EL of a month's bookings", row["lifetime_el"], "amount", lgd))
    return pd.DataFrame(items, columns=["kpi", "value", "unit", "note"])


# ------------------------------------------------------------------------------------------ cut-off x price


def _from_top(x: np.ndarray) -> np.ndarray:
    """(S, B) -> (S, B+1): sum over bands j..B-1 for candidate j; candidate B accepts nothing."""
    tail = np.cumsum(x[:, ::-1], axis=1)[:, ::-1]
    return np.concatenate([tail, np.zeros((x.shape[0], 1))], axis=1)


def cutoff_frontier(twin: Twin, shadow_price: float = 0.0) -> pd.DataFrame:
    """Every cut-off on a band edge with its value-maximising APR (see `_frontier`)."""
    return _frontier(twin, shadow_price)[0]


def _frontier(twin: Twin, shadow_price: float = 0.0) -> tuple[pd.DataFrame, np.ndarray]:
    """(frontier, apr (S, B+1, B)). Every cut-off on a band edge with its value-maximising APR: segment, cutoff,
    apr, approval_rate, bad_rate (expected DEL30 at MOB 12), value (per unit applied for), roe, feasible, best.

    Candidate j accepts bands j..B-1 (j = B: none). With [policy] price_by = "segment" the APR is the closed
    form for the accepted mix's unit cost; with "band", each band has its own optimal APR. ``shadow_price`` is
    the value of one unit of budget (PV per unit booked) when the budget binds: it is charged on every unit
    booked when choosing the APR and the best cut-off, not in the value shown.
    """
    pol = twin.config.policy
    u = dict(twin.unit_economics())
    u["intercept"] = u["intercept"] + shadow_price
    u["unit_cost"] = u["intercept"] / u["slope"]
    w = twin.band_weight
    d = twin.demand
    lo, hi, _ = twin.apr_range()
    lo, hi = lo[:, None], hi[:, None]
    n_seg, n_bands = w.shape
    if pol.price_by == "band":
        band_apr = optimal_apr(u["unit_cost"], d[:, 1:2], d[:, 2:3], lo, hi)  # (S, B)
        apr = np.broadcast_to(band_apr[:, None, :], (n_seg, n_bands + 1, n_bands))
    else:
        slope, intercept = _from_top(w * u["slope"]), _from_top(w * u["intercept"])
        with np.errstate(invalid="ignore", divide="ignore"):
            cost = np.where(slope > 0, intercept / slope, 0.0)
        seg_apr = optimal_apr(cost, d[:, 1:2], d[:, 2:3], lo, hi)  # (S, B+1)
        apr = np.broadcast_to(seg_apr[..., None], (n_seg, n_bands + 1, n_bands))
    accepted = (np.arange(n_bands)[None, :] >= np.arange(n_bands + 1)[:, None])[None] * w[:, None, :]  # (S, J, B)
    booked = accepted * take_up(apr, d[:, 0, None, None], d[:, 1, None, None], d[:, 2, None, None])
    charged = (booked * (u["slope"][:, None] * apr - u["intercept"][:, None])).sum(axis=-1)
    value = charged + shadow_price * booked.sum(axis=-1)
    a, c = twin.income_terms()
    ni = (booked * (a[:, None] * apr - c[:, None])).sum(axis=-1)
    capital = (booked * twin.capital_months()[:, None]).sum(axis=-1)
    approval = accepted.sum(axis=-1)
    bad = _weighted(booked, twin.del30_mob12[:, None, :])
    with np.errstate(invalid="ignore", divide="ignore"):
        roe = np.where(capital > 0, ni / capital, np.nan)
    mean_apr = _weighted(booked, apr)
    edges = np.concatenate([twin.band_edges[:, :-1], twin.band_edges[:, -1:]], axis=1)  # cut-off of candidate j
    feasible = (approval >= pol.min_approval - FEASIBILITY_TOLERANCE) & \
        (np.nan_to_num(bad) <= pol.max_del30_mob12 + FEASIBILITY_TOLERANCE)
    best = np.zeros_like(feasible)
    for s in range(n_seg):
        if feasible[s].any():
            best[s, np.flatnonzero(feasible[s])[np.argmax(charged[s, feasible[s]])]] = True
    s_idx, j_idx = np.indices(value.shape).reshape(2, -1)
    return pd.DataFrame({
        "segment": pd.array(np.asarray(twin.segments, dtype=object)[s_idx], dtype="string"),
        "candidate": j_idx,
        "cutoff": edges.ravel(),
        "apr": mean_apr.ravel(),
        "approval_rate": approval.ravel(),
        "bad_rate": bad.ravel(),
        "value": value.ravel(),
        "roe": roe.ravel(),
        "feasible": feasible.ravel(),
        "best": best.ravel(),
    }), apr


def choose_cutoffs(twin: Twin, shadow_price: float = 0.0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The frontier, and per segment the best feasible candidate's (cutoff (S,), apr (S, B)).

    Raises InfeasibleError naming the segment and why when no cut-off meets min_approval and max_del30_mob12.
    """
    frontier, apr = _frontier(twin, shadow_price)
    pol = twin.config.policy
    n_seg, n_cand = apr.shape[:2]
    best = frontier["best"].to_numpy().reshape(n_seg, n_cand)
    problems = []
    for s in np.flatnonzero(~best.any(axis=1)):
        rows = frontier[frontier["segment"] == twin.segments[s]]
        ok_approval = rows["approval_rate"] >= pol.min_approval - FEASIBILITY_TOLERANCE
        lends = rows["approval_rate"] > 0
        ok_bad = rows["bad_rate"].fillna(0) <= pol.max_del30_mob12 + FEASIBILITY_TOLERANCE
        if not (ok_bad & lends).any():
            problems.append((f"segment {twin.segments[s]!r}: [policy] max_del30_mob12 = {pol.max_del30_mob12:g} cannot "
                             f"be met by any cut-off that approves anyone (the best band alone gives "
                             f"{rows.loc[lends, 'bad_rate'].iloc[-1]:.2%}), and min_approval = {pol.min_approval:g} "
                             f"rules out approving no one", ("max_del30_mob12", "min_approval")))
        elif not ok_approval.any():
            problems.append((f"segment {twin.segments[s]!r}: [policy] min_approval = {pol.min_approval:g} cannot be met",
                             ("min_approval",)))
        else:
            loosest = rows[ok_approval].iloc[-1]
            problems.append((
                f"segment {twin.segments[s]!r}: [policy] min_approval = {pol.min_approval:g} and max_del30_mob12 = "
                f"{pol.max_del30_mob12:g} conflict: approving {pol.min_approval:.0%} needs a cut-off at or below "
                f"{loosest['cutoff']:g}, where expected DEL30 at MOB 12 is {loosest['bad_rate']:.2%}",
                ("min_approval", "max_del30_mob12")))
    if problems:
        conflict = tuple(sorted({c for _, cs in problems for c in cs}))
        raise InfeasibleError("infeasible constraints:\n  " + "\n  ".join(p for p, _ in problems), conflict)
    j = best.argmax(axis=1)
    cutoff = frontier["cutoff"].to_numpy().reshape(n_seg, n_cand)[np.arange(n_seg), j]
    return frontier, cutoff, apr[np.arange(n_seg), j]


def price_check(twin: Twin, segment: int = 0) -> tuple[float, float]:
    """(closed form, numeric) optimal APR of one segment accepting every band: the Lambert-W check."""
    u = twin.unit_economics()
    w = twin.band_weight[segment]
    cost = float((w * u["intercept"][segment]).sum() / (w * u["slope"][segment]).sum())
    lo, hi, _ = twin.apr_range()
    cap, mid, k = twin.demand[segment]
    closed = float(optimal_apr(cost, mid, k, lo[segment], hi[segment]))
    return closed, optimal_apr_numeric(cost, mid, k, lo[segment], hi[segment], cap)


# ------------------------------------------------------------------------------------------------------ mix


@dataclass(frozen=True)
class MixProblem:
    """maximise budget * value @ w  s.t. sum(w) <= 1, bounds, capacity, EL, VaR99, HHI. Per unit booked: value,
    el, var99 (S,); capacity (S,) amounts."""

    value: np.ndarray
    el: np.ndarray
    var99: np.ndarray
    capacity: np.ndarray
    budget: float
    min_share: float = 0.0
    max_share: float = 1.0
    max_el: float = np.inf
    max_var99: float = np.inf
    max_hhi: float = 1.0

    def linear(self, groups) -> tuple[list, list, list]:
        """(A_ub rows, b_ub, bounds) of the named linear constraint groups."""
        n = len(self.value)
        rows, rhs = [np.ones(n)], [1.0]  # shares never exceed the budget
        upper = np.full(n, self.max_share if "shares" in groups else 1.0)
        lower = np.full(n, self.min_share if "shares" in groups else 0.0)
        if "capacity" in groups:
            upper = np.minimum(upper, self.capacity / self.budget if self.budget > 0 else 0.0)
        if "max_el" in groups and np.isfinite(self.max_el):
            rows.append(self.el * self.budget)
            rhs.append(self.max_el)
        if "max_var99" in groups and np.isfinite(self.max_var99):
            rows.append(self.var99 * self.budget)
            rhs.append(self.max_var99)
        return rows, rhs, list(zip(lower, upper, strict=True))

    def violation(self, w: np.ndarray, groups) -> float:
        """The most ``w`` breaks a constraint of the named groups by (0: it meets them all), each linear row and the
        HHI limit relative to its own scale, so one tolerance fits shares and amounts alike."""
        rows, rhs, bounds = self.linear(groups)
        a, b = _unit_rows(rows, rhs)
        lower, upper = np.array(bounds, dtype=np.float64).T
        excess = [np.max(a @ w - b), np.max(lower - w), np.max(w - upper)]
        if "max_hhi" in groups:
            excess.append((w @ w - self.max_hhi) / max(self.max_hhi, 1.0))
        return float(max(0.0, *excess))

    def feasible(self, groups) -> np.ndarray | None:
        """A feasible point of the named groups (the least concentrated one when HHI is among them), or None."""
        from scipy import optimize  # 0.2 s to import: only when a mix is optimised

        rows, rhs, bounds = self.linear(groups)
        if any(lo > hi + FEASIBILITY_TOLERANCE for lo, hi in bounds):
            return None
        lp = optimize.linprog(np.zeros(len(self.value)), A_ub=np.array(rows), b_ub=rhs, bounds=bounds,
                              method="highs")
        if lp.status != 0:
            return None
        if "max_hhi" not in groups or lp.x @ lp.x <= self.max_hhi:
            return lp.x
        a, b = _unit_rows(rows, rhs)
        start = np.clip(lp.x, [lo for lo, _ in bounds], [hi for _, hi in bounds])
        flat = optimize.minimize(lambda w: w @ w, start, jac=lambda w: 2 * w, bounds=bounds, method="SLSQP",
                                 constraints=[{"type": "ineq", "fun": lambda w: b - a @ w, "jac": lambda w: -a}],
                                 options={"ftol": 1e-14, "maxiter": 1000})
        return flat.x if self.violation(flat.x, groups) <= MIX_TOLERANCE else None


def _unit_rows(rows, rhs) -> tuple[np.ndarray, np.ndarray]:
    """A_ub, b_ub with each row divided by its largest coefficient or bound: an EL limit in money and the shares'
    sum then weigh alike in the solvers' tolerances."""
    a, b = np.array(rows, dtype=np.float64), np.array(rhs, dtype=np.float64)
    scale = np.maximum(np.abs(a).max(axis=1), np.abs(b))
    scale = np.where(scale > 0, scale, 1.0)
    return a / scale[:, None], b / scale


MIX_GROUPS = {
    "shares": "[policy] min_share / max_share (and shares adding up to at most 1)",
    "capacity": "demand: what each segment can book at its cut-off and APR",
    "max_el": "[policy] max_el",
    "max_var99": "[policy] max_var99",
    "max_hhi": "[policy] max_hhi",
}
MIX_TOLERANCE = 1e-8  # relative breach of a constraint a solver's answer may show and still count as meeting it


def optimise_mix(problem: MixProblem) -> np.ndarray:
    """Budget shares (S,) maximising value. Linear programme (HiGHS) when the HHI limit does not bind, else SLSQP
    (trust-constr if it fails) from the least concentrated feasible point, each answer checked against every
    constraint and proven optimal by the linear programme with the HHI limit's tangent at it (a relaxation: its
    value bounds the optimum). Raises InfeasibleError with a smallest conflicting group set, and InputError naming
    [policy] max_hhi when no solver finds an answer meeting every limit."""
    groups = tuple(MIX_GROUPS)
    if problem.feasible(groups) is None:
        conflict = list(groups)
        for g in groups:  # deletion filter: what is left is an irreducible infeasible subset
            trial = [c for c in conflict if c != g]
            if problem.feasible(trial) is None:
                conflict = trial
        names = "; ".join(MIX_GROUPS[c] for c in conflict)
        raise InfeasibleError(f"infeasible budget mix: these constraints conflict: {names}", tuple(conflict))
    from scipy import optimize

    rows, rhs, bounds = problem.linear(groups)
    lp = optimize.linprog(-problem.value, A_ub=np.array(rows), b_ub=rhs, bounds=bounds, method="highs")
    if lp.x @ lp.x <= problem.max_hhi:
        return np.clip(lp.x, 0.0, 1.0)
    a, b = _unit_rows(rows, rhs)
    objective = _unit_objective(problem)
    n = len(objective)
    slsqp = [{"type": "ineq", "fun": lambda x: b - a @ x, "jac": lambda x: -a},
             {"type": "ineq", "fun": lambda x: problem.max_hhi - x @ x, "jac": lambda x: -2 * x}]
    # trust-constr's own form, with the Hessians: its quasi-Newton guess of a linear objective's is noise.
    trust = [optimize.LinearConstraint(a, -np.inf, b),
             optimize.NonlinearConstraint(lambda x: x @ x, -np.inf, problem.max_hhi, jac=lambda x: 2 * x[None, :],
                                          hess=lambda x, v: 2 * v[0] * np.eye(n))]
    start = problem.feasible(groups)
    best, tried = None, []
    for method, constraints, extra in (
            ("SLSQP", slsqp, {"options": {"ftol": 1e-14, "maxiter": 1000}}),
            ("trust-constr", trust, {"hess": lambda x: np.zeros((n, n)),
                                     "options": {"gtol": 1e-12, "xtol": 1e-14, "maxiter": 5000}})):
        res = optimize.minimize(lambda x: objective @ x, start, jac=lambda x: objective, bounds=bounds, method=method,
                                constraints=constraints, **extra)
        breach = problem.violation(res.x, groups)
        tried.append(f"{method}: {res.message} (constraints broken by {breach:.2g})")
        if breach > MIX_TOLERANCE:
            continue
        if best is None or objective @ res.x < objective @ best:
            best = res.x
        if proven_optimal(problem, best):
            return np.clip(best, 0.0, 1.0)
    if best is None:
        raise InputError(f"no budget mix meeting [policy] max_hhi = {problem.max_hhi:g} and the other limits was "
                         f"found, though one exists (e.g. shares {np.round(start, 4).tolist()}); the solvers "
                         f"stopped with: {'; '.join(tried)}. Loosen [policy] max_hhi or report this data")
    log.warning("the budget mix under [policy] max_hhi = %g meets every limit but is not proven optimal (%s)",
                problem.max_hhi, "; ".join(tried))
    return np.clip(best, 0.0, 1.0)


def _unit_objective(problem: MixProblem) -> np.ndarray:
    """The value to minimise at unit scale: SLSQP's steps and stopping rule are absolute, and value x budget
    (millions) once made it stop at an answer breaking the HHI limit."""
    return -problem.value / (np.abs(problem.value).max() or 1.0)


def proven_optimal(problem: MixProblem, share: np.ndarray) -> bool:
    """Whether no mix meeting every limit is worth more than ``share``: the linear programme with the HHI limit
    replaced by its tangent at ``share`` relaxes the problem, so its optimum bounds every feasible mix's value."""
    from scipy import optimize

    rows, rhs, bounds = problem.linear(tuple(MIX_GROUPS))
    a, b = _unit_rows(rows, rhs)
    objective = _unit_objective(problem)
    tangent = optimize.linprog(objective, A_ub=np.vstack([a, 2 * share]), b_ub=[*b, problem.max_hhi + share @ share],
                               bounds=bounds, method="highs")
    return tangent.status == 0 and objective @ share <= tangent.fun + MIX_TOLERANCE


# -------------------------------------------------------------------------------------------- recommendation


@dataclass(frozen=True, eq=False)
class Recommendation:
    """Current and recommended policy, their expected figures side by side, and the cut-off frontier."""

    current: Policy
    recommended: Policy
    current_impact: pd.DataFrame
    recommended_impact: pd.DataFrame
    frontier: pd.DataFrame
    version: str  # the recommended policy's version under the twin's config (Policy.version_under)
    notes: tuple[str, ...] = ()
    caveats: dict[str, str] | None = None  # per segment and Portfolio: "ILLUSTRATIVE: ..." (Twin.caveat) or ""

    @property
    def caveat(self) -> str:
        """The Portfolio's caveat: "ILLUSTRATIVE: ..." when any segment's economics rest on a default, else ""."""
        return (self.caveats or {}).get(PORTFOLIO, "")

    def with_caveats(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` (with a segment column) with an "illustrative" column: each row's segment's caveat."""
        caveats = self.caveats or {}
        return frame.assign(illustrative=pd.array([caveats.get(str(s), "") for s in frame["segment"]],
                                                  dtype="string"))

    def table(self) -> pd.DataFrame:
        """The Recommendations sheet / CSV: per segment and Portfolio, current_X, recommended_X, change_X."""
        cur = self.current_impact.set_index("segment")
        rec = self.recommended_impact.set_index("segment")
        out = pd.DataFrame(index=rec.index)
        for col in IMPACT_COLUMNS:
            out[f"current_{col}"] = cur[col]
            out[f"recommended_{col}"] = rec[col]
            # A figure the recommendation leaves as it is changes by 0, not by rounding noise (-5.6e-15 showed as a
            # cut of "-0.00 pp").
            same = np.isclose(rec[col], cur[col], rtol=1e-12, atol=1e-12)
            out[f"change_{col}"] = np.where(same, 0.0, rec[col] - cur[col])
        out.insert(0, "policy_version", self.version)
        return self.with_caveats(out.reset_index())


def budget_shadow_price(twin: Twin, budget: float) -> float:
    """The value of one more unit of monthly budget, as a PV per unit booked: 0 when what the per-applicant
    optimum can book fits the budget; else the smallest charge per unit booked at which it does.

    Charging it in the unit cost prices and cuts off for the budget (the Lagrangian of "total volume <= budget"):
    the Lambert-W price at the unit cost plus the charge. Found by bisection; volume falls as the charge rises.
    """
    ones = np.ones(len(twin.segments))

    def volume(charge: float) -> float:
        _, cutoff, apr = choose_cutoffs(twin, charge)
        return float(_metrics(twin, cutoff, apr, ones, np.inf)["capacity"].sum())

    if budget <= 0 or volume(0.0) <= budget:
        return 0.0
    lo, hi = 0.0, 0.01
    while volume(hi) > budget:
        lo, hi = hi, hi * 2.0
        if hi > 1e3:
            return hi
    for _ in range(60):  # volume is a step function of the charge where the cut-off jumps: keep the feasible end
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if volume(mid) > budget else (lo, mid)
    return hi


def recommend_policy(twin: Twin) -> tuple[Policy, pd.DataFrame, float, MixProblem]:
    """The optimised policy (cut-off and APR per segment, then the budget mix), the frontier behind it, the
    budget's shadow price and the mix problem solved."""
    pol = twin.config.policy
    budget = resolve_budget(twin)
    shadow = budget_shadow_price(twin, budget)
    frontier, cutoff, apr = choose_cutoffs(twin, shadow)
    m = _metrics(twin, cutoff, apr, np.ones(len(twin.segments)), budget)
    lends = np.nan_to_num(m["value_rate"]) > 0
    problem = MixProblem(value=np.where(lends, np.nan_to_num(m["value_rate"]), 0.0),
                         el=np.nan_to_num(m["el_rate"]), var99=np.nan_to_num(m["var99_rate"]),
                         capacity=np.where(lends, m["capacity"], 0.0), budget=budget, min_share=pol.min_share,
                         max_share=pol.max_share, max_el=pol.max_el, max_var99=pol.max_var99, max_hhi=pol.max_hhi)
    share = optimise_mix(problem)
    band_aprs = apr if pol.price_by == "band" else None
    mean_apr = np.where(np.isnan(m["apr"]), apr.mean(axis=1), m["apr"])
    return Policy.from_arrays(twin.segments, cutoff, mean_apr, share, budget, band_aprs), frontier, shadow, problem


def price_notes(twin: Twin, policy: Policy, shadow: float = 0.0) -> list[str]:
    """Where a segment's recommended APR sits at the edge of the allowed range (`Twin.apr_range`) because the
    value-maximising price lies beyond it: what it would be, and the setting that allows it."""
    lo, hi, where = twin.apr_range()
    cutoff, apr, _ = policy.arrays(twin.segments, twin.n_bands)
    u = twin.unit_economics()
    w = twin.band_weight * twin.acceptance(cutoff)
    with np.errstate(invalid="ignore", divide="ignore"):
        cost = ((w * (u["intercept"] + shadow)).sum(axis=1) / (w * u["slope"]).sum(axis=1))
    free = optimal_apr(cost, twin.demand[:, 1], twin.demand[:, 2])
    notes = []
    for s, segment in enumerate(twin.segments):
        chosen = float((twin.band_weight[s] * apr[s]).sum())
        if lo[s] == hi[s]:
            notes.append(f"segment {segment!r}: APR kept at {chosen:.2%}, {where[s]}")
        elif free[s] > hi[s] + 1e-9 or free[s] < lo[s] - 1e-9:
            side, key = ("above", "apr_max") if free[s] > hi[s] else ("below", "apr_min")
            notes.append(f"segment {segment!r}: the value-maximising APR would be {free[s]:.2%}, {side} the allowed "
                         f"{lo[s]:.2%} to {hi[s]:.2%} ({where[s]}): recommended at {chosen:.2%}; to price beyond it, "
                         f"set [policy] {key} (and check the [demand] curve behind that price)")
    return notes


def unallocated_note(twin: Twin, policy: Policy, problem: MixProblem) -> str | None:
    """Why part of the budget is left unallocated, when it is: the constraints that stop each segment."""
    share = np.array([policy.segments[s].budget_share for s in twin.segments])
    left = 1.0 - share.sum()
    if left <= 1e-3:
        return None
    budget = problem.budget
    reasons = []
    no_value = [s for s, v in zip(twin.segments, problem.value, strict=True) if v <= 0]
    if no_value:
        reasons.append(f"no cut-off and APR in the allowed range earns its cost of capital in "
                       f"{', '.join(no_value)}")
    capped = [f"{s} ({c:,.0f} a month)" for s, v, c, w in zip(twin.segments, problem.value, problem.capacity, share,
                                                             strict=True) if v > 0 and w * budget >= c * (1 - 1e-6)]
    if capped:
        reasons.append("demand caps " + ", ".join(capped) + ": at the value-maximising cut-off and APR that is all "
                       "their applicants take up, and a lower APR or cut-off to book more earns less than it costs "
                       "at the margin")
    at_max = [s for s, w in zip(twin.segments, share, strict=True) if w >= problem.max_share - 1e-6]
    if at_max:
        reasons.append(f"[policy] max_share = {problem.max_share:g} caps {', '.join(at_max)}")
    for key, per_unit, limit in (("max_el", problem.el, problem.max_el), ("max_var99", problem.var99,
                                                                          problem.max_var99)):
        if np.isfinite(limit) and budget * (share @ per_unit) >= limit * (1 - 1e-6):
            reasons.append(f"[policy] {key} = {limit:,.0f} binds")
    if problem.max_hhi < 1 and share @ share >= problem.max_hhi - 1e-6:
        reasons.append(f"[policy] max_hhi = {problem.max_hhi:g} binds")
    return (f"{left:.0%} of the budget ({left * budget:,.0f} a month) is unallocated: "
            + ("; ".join(reasons) or "no constraint found binding") + ".")


def optimise(twin: Twin) -> Recommendation:
    """Recommended cut-off, APR and budget share per segment, with expected impact against the current policy."""
    current = current_policy(twin)
    recommended, frontier, shadow, problem = recommend_policy(twin)
    caveats = {s: twin.caveat(np.arange(len(twin.segments)) == i) for i, s in enumerate(twin.segments)}
    caveats[PORTFOLIO] = twin.caveat()
    notes = [caveats[PORTFOLIO]] if caveats[PORTFOLIO] else []
    notes += [cut] if (cut := budget_cut_note(twin)) else []
    if shadow > 0:
        notes.append(f"the budget binds: APRs and cut-offs are set at the unit cost plus the budget's shadow price "
                     f"of {shadow:.4f} per unit booked (PV)")
    if not twin.scored:
        column = twin.config["score"]
        missing = (f"no column {column!r} ([columns] score) in the data" if column is not None
                   else "no score column ([columns] score is empty)")
        notes.append(f"{missing}: score bands come from the ILLUSTRATIVE logistic PD-score link of [economics]")
    notes += price_notes(twin, recommended, shadow)
    rec_eval = evaluate(twin, recommended)
    low = rec_eval[(rec_eval["segment"] != PORTFOLIO) & (rec_eval["volume"] <= 0)]
    notes += [f"segment {s!r}: no new lending recommended (no cut-off and APR creates value, or the constraints "
              f"leave it no budget)" for s in low["segment"]]
    unallocated = unallocated_note(twin, recommended, problem)
    notes += [unallocated] if unallocated else []
    share = np.array([recommended.segments[s].budget_share for s in twin.segments])
    # Below the HHI limit the mix is the linear programme's own optimum: only a binding limit needs the proof.
    if share @ share > problem.max_hhi - MIX_TOLERANCE and not proven_optimal(problem, share):
        notes.append(f"the budget mix under [policy] max_hhi = {problem.max_hhi:g} meets every limit, but the solvers "
                     f"could not prove it the best one: another mix may be worth more")
    cur_eval = evaluate(twin, current)
    notes += undefined_notes(twin, cur_eval, "current policy") + undefined_notes(twin, rec_eval, "recommended policy")
    for note in notes:
        log.info(note)
    return Recommendation(current=current, recommended=recommended, current_impact=cur_eval,
                          recommended_impact=rec_eval, frontier=frontier,
                          version=recommended.version_under(twin.config), notes=tuple(notes), caveats=caveats)
