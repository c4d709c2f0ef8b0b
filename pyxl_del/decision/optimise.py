"""Optimisers on the twin: credit cut-off, pricing and the new-lending mix; and what a policy does.

* `evaluate(twin, policy)`: a policy's expected approval, volume, DEL30 at MOB 6 and 12, lifetime EL, VaR99,
  value, capital and steady-state ROE per segment and for the portfolio.
* `cutoff_frontier(twin)`: for every cut-off on a band edge, the value-maximising APR (Lambert W closed form)
  and the approval rate, bad rate, value and ROE that go with it: the frontier, vectorised.
* `optimise_mix(...)`: the budget shares maximising value under the EL, VaR99, HHI, share and demand
  constraints (scipy linprog; SLSQP when the HHI limit binds); an infeasible set raises `InfeasibleError`
  naming a smallest conflicting subset of the constraints.
* `optimise(twin) -> Recommendation`: all three, with the current policy's figures beside the recommended ones.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pyxl_del.decision.economics import optimal_apr, optimal_apr_numeric, take_up
from pyxl_del.decision.policy import Policy, policy_from_settings
from pyxl_del.decision.twin import Twin
from pyxl_del.engine.errors import InputError

log = logging.getLogger(__name__)

PORTFOLIO = "Portfolio"
FEASIBILITY_TOLERANCE = 1e-9


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
    recent APR (per band when pricing per band), and the recent volume shares."""
    budget = resolve_budget(twin)
    settings = twin.config.policy
    if settings.segments:
        return policy_from_settings(settings, budget)
    mean_apr = (twin.band_weight * twin.current_apr).sum(axis=1)
    share = twin.volume / budget if budget > 0 else np.zeros(len(twin.segments))
    band_aprs = twin.current_apr if settings.price_by == "band" else None
    return Policy.from_arrays(twin.segments, np.full(len(twin.segments), np.nan), mean_apr,
                              np.minimum(share, 1.0), budget, band_aprs)


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
        "apr": _weighted(booked, apr),
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
              if twin.config.policy.budget <= 0 else "[policy] budget"),
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
        if "max_hhi" not in groups:
            return lp.x
        start = np.clip(lp.x, [b[0] for b in bounds], [b[1] for b in bounds])
        flat = optimize.minimize(lambda w: w @ w, start, jac=lambda w: 2 * w, bounds=bounds, method="SLSQP",
                                 constraints=[{"type": "ineq", "fun": lambda w: np.array(rhs) - np.array(rows) @ w,
                                               "jac": lambda w: -np.array(rows)}], options={"ftol": 1e-14})
        return flat.x if flat.x @ flat.x <= self.max_hhi + 1e-7 else None


MIX_GROUPS = {
    "shares": "[policy] min_share / max_share (and shares adding up to at most 1)",
    "capacity": "demand: what each segment can book at its cut-off and APR",
    "max_el": "[policy] max_el",
    "max_var99": "[policy] max_var99",
    "max_hhi": "[policy] max_hhi",
}


def optimise_mix(problem: MixProblem) -> np.ndarray:
    """Budget shares (S,) maximising value. Linear programme (HiGHS) when the HHI limit does not bind, else SLSQP
    from the least concentrated feasible point. Raises InfeasibleError with a smallest conflicting group set."""
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
    objective = -problem.value * problem.budget
    lp = optimize.linprog(objective, A_ub=np.array(rows), b_ub=rhs, bounds=bounds, method="highs")
    w = lp.x
    if w @ w <= problem.max_hhi + FEASIBILITY_TOLERANCE:
        return np.clip(w, 0.0, 1.0)
    start = problem.feasible(groups)
    a, b = np.array(rows), np.array(rhs)
    res = optimize.minimize(
        lambda x: objective @ x, start, jac=lambda x: objective, bounds=bounds, method="SLSQP",
        constraints=[{"type": "ineq", "fun": lambda x: b - a @ x, "jac": lambda x: -a},
                     {"type": "ineq", "fun": lambda x: problem.max_hhi - x @ x, "jac": lambda x: -2 * x}],
        options={"ftol": 1e-14, "maxiter": 500})
    return np.clip(res.x, 0.0, 1.0)


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
            out[f"change_{col}"] = rec[col] - cur[col]
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
    if shadow > 0:
        notes.append(f"the budget binds: APRs and cut-offs are set at the unit cost plus the budget's shadow price "
                     f"of {shadow:.4f} per unit booked (PV)")
    if not twin.scored:
        notes.append("no score column: score bands come from the ILLUSTRATIVE logistic PD-score link of [economics]")
    notes += price_notes(twin, recommended, shadow)
    rec_eval = evaluate(twin, recommended)
    low = rec_eval[(rec_eval["segment"] != PORTFOLIO) & (rec_eval["volume"] <= 0)]
    notes += [f"segment {s!r}: no new lending recommended (no cut-off and APR creates value, or the constraints "
              f"leave it no budget)" for s in low["segment"]]
    unallocated = unallocated_note(twin, recommended, problem)
    notes += [unallocated] if unallocated else []
    for note in notes:
        log.info(note)
    return Recommendation(current=current, recommended=recommended, current_impact=evaluate(twin, current),
                          recommended_impact=rec_eval, frontier=frontier,
                          version=recommended.version_under(twin.config), notes=tuple(notes), caveats=caveats)
