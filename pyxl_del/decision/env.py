"""A Gymnasium environment on the twin: one step is one month of lending.

The book is held as arrays, EAD by (segment, score band, MOB, live state) — never as loans — and rolls one
month at a time on the twin's chains. With ``cycle=True`` a credit-cycle factor Z_t follows a stationary AR(1)
and the chains are the twin's shifted by Z_t (`risk.stress_matrices`, anchor "mean": the fitted chain is the
average over the cycle; Z < 0 is adverse). The funding rate follows its own AR(1) and applications carry
lognormal noise.

`LendingCore` is the simulator, vectorised over a batch of independent books (the agent evaluates a whole
population of policies at once); `LendingEnv` is the Gymnasium face of a batch of one. Both use the same
step, so what the agent learns on the core is what the environment does.

Action (Box [-1, 1], 3 x S): per segment the cut-off as the rejected share of applicants (-1: accept all,
1: reject all), the APR (the segment's allowed range, `Twin.apr_range`) and the budget share (-1: 0, 1: all; shares
adding up to more than 1 are scaled down); an action outside the box is a ValueError, never clipped. Observation:
EAD by segment x live state over the budget, last approval rates, Z_t and the funding rate. Reward: the month's
economic profit over the budget; ``info["profit"]`` in money.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from scipy import special

from pyxl_del.decision.optimise import current_policy, resolve_budget
from pyxl_del.decision.policy import Policy
from pyxl_del.decision.twin import Twin, _masks, fit_twin
from pyxl_del.risk.projection import stress_matrices

log = logging.getLogger(__name__)

ENV_ID = "pyxl_del/Lending-v0"
Z_GRID = np.linspace(-4.0, 4.0, 33)
BOOK_SCALE = 12.0  # observation: EAD over this many months of budget


@dataclass(frozen=True)
class Dynamics:
    """The exogenous processes. Monthly AR(1)s; ``cycle=False`` keeps Z at 0 and the chains unshifted."""

    cycle: bool = True
    z_persistence: float | None = None  # None: [risk] z_persistence
    funding_persistence: float = 0.95
    funding_sd: float = 0.001  # monthly innovation of the annual funding rate
    application_sd: float = 0.10  # log-sd of the monthly application amount
    initial_book: str = "steady"  # "steady": the current policy run for ever; "empty"
    common_shocks: bool = False  # every book of a batch sees the same Z, funding and application paths


class LendingCore:
    """N independent books on one twin. ``reset(rng)`` then ``step(action (N, 3S), rng)`` -> (reward, profit)."""

    def __init__(self, twin: Twin, n: int = 1, dynamics: Dynamics = Dynamics()):
        cfg = twin.config
        self.twin, self.n, self.dynamics = twin, n, dynamics
        masks = _masks(cfg)
        live = np.flatnonzero(masks["live"])
        self.n_seg, self.n_bands = twin.band_weight.shape
        self.n_mob = twin.max_mob
        self.n_live = len(live)
        self.performing = masks["performing"][live]
        self.budget = resolve_budget(twin)
        terms = twin.terms
        self.apr_min, self.apr_max, _ = twin.apr_range()  # (S,) each
        # The funding rate moves as one market rate: each segment pays its own spread over the portfolio's mean.
        self.funding_base = float(terms.funding_rate.mean())
        self.funding_spread = np.repeat(terms.funding_rate - self.funding_base, self.n_bands)  # (S*B,)
        self.rho = cfg.risk.rho
        self.z_persistence = cfg.risk.z_persistence if dynamics.z_persistence is None else dynamics.z_persistence
        # Columns: the live states (balance kept x amortisation), then the loss state (balance at write-off).
        amort = twin.amortisation[:, None, :, None, None]
        loss = masks["loss"]

        def moves(matrix: np.ndarray) -> np.ndarray:
            rows = matrix[..., live, :]
            out = np.concatenate([rows[..., live] * amort, rows[..., loss].sum(-1, keepdims=True)], axis=-1)
            # States lead, (S, B, MOB) trail: the roll is then L small multiply-adds over long contiguous rows.
            return np.ascontiguousarray(np.moveaxis(out, (-2, -1), (-5, -4)))  # (..., L, L+1, S, B, M)

        if dynamics.cycle:
            stressed = stress_matrices(twin.transition_matrix[None], Z_GRID[:, None, None, None], self.rho,
                                       config=cfg, anchor="mean")
            self.moves = moves(stressed)  # (G, L, L+1, S, B, M)
            self.slopes = np.diff(self.moves, axis=0)  # per unit of grid position, for linear interpolation in Z
        else:
            self.moves = moves(twin.transition_matrix)[None]
        self.z_step = Z_GRID[1] - Z_GRID[0]
        self.weight = twin.band_weight
        self.cum_weight = np.cumsum(twin.band_weight, axis=1)
        self.demand = twin.demand
        self.applications = twin.applications
        self.lower = self.cum_weight - self.weight
        self.lgd_sb = np.repeat(twin.lgd, self.n_bands)  # (S*B,)
        self.charge_rate = (terms.hurdle_rate * twin.capital / 12.0).ravel()  # per unit outstanding, (S*B,)
        self.performing_weight = self.performing.astype(np.float64)
        self.keep = 1.0 - terms.tax_rate
        self.opex_rate = np.repeat(terms.opex_rate, self.n_bands)  # (S*B,)
        self.opex_upfront = np.repeat(terms.opex_upfront, self.n_bands)
        self.current_action = policy_action(twin, current_policy(twin))
        # MOB 0 .. max_mob - 1: what reaches max_mob is repaid (the twin's lifetime ends there too).
        self.book = np.zeros((n, self.n_live, self.n_seg, self.n_bands, self.n_mob))
        self.apr = np.zeros((n, self.n_seg, self.n_bands, self.n_mob))
        self.z = np.zeros(n)
        self.funding = np.full(n, self.funding_base)
        self.approval = np.ones((n, self.n_seg))
        self.noise = np.ones((n, self.n_seg))

    # ------------------------------------------------------------------------------------------- policy

    def decode(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(N, 3S) in [-1, 1] -> (rejected share (N, S), apr (N, S), budget share (N, S))."""
        a = (np.minimum(np.maximum(action, -1.0), 1.0) + 1.0) * 0.5
        s = self.n_seg
        share = a[:, 2 * s:]
        total = share.sum(axis=1, keepdims=True)
        share = share / np.maximum(total, 1.0)  # shares adding up to more than 1 are scaled down
        return a[:, :s], self.apr_min + a[:, s:2 * s] * (self.apr_max - self.apr_min), share

    def _booking(self, action: np.ndarray, noise: np.ndarray):
        """New EAD per (N, S, B), its APR (N, S) and the approval rates (N, S)."""
        rejected, apr, share = self.decode(action)
        # Uniform within a band: rejecting the lowest q of applicants accepts this part of each band.
        accepted = np.minimum(np.maximum(self.cum_weight - np.maximum(rejected[..., None], self.lower), 0.0),
                              self.weight)
        d = self.demand
        booked = accepted * (d[:, 0] * special.expit(-d[:, 2] * (apr - d[:, 1])))[..., None]  # per unit applied
        capacity = (self.applications * noise)[..., None] * booked
        total = capacity.sum(axis=-1)
        volume = np.minimum(share * self.budget, total)
        scale = volume / np.maximum(total, 1e-300)
        return capacity * scale[..., None], apr, accepted.sum(axis=-1)

    # ----------------------------------------------------------------------------------------- dynamics

    def reset(self, rng: np.random.Generator) -> None:
        self.book[...] = 0.0
        self.apr[...] = 0.0
        self.z[:] = rng.standard_normal(1 if self.dynamics.common_shocks else self.n) if self.dynamics.cycle else 0.0
        self.funding[:] = self.funding_base
        self.noise[:] = 1.0
        if self.dynamics.initial_book == "steady":
            new, apr, approval = self._booking(np.broadcast_to(self.current_action, (self.n, 3 * self.n_seg)),
                                               self.noise)
            live = _masks(self.twin.config)["live"]
            shares = self.twin.distribution[..., live]
            # One unit booked, by MOB and live state, at its amortised balance.
            path = shares * (self.twin.ead / np.maximum(shares.sum(axis=-1), 1e-300))[..., None]
            self.book[...] = new[:, None, :, :, None] * np.moveaxis(path[:, :, :-1], -1, 0)[None]
            self.apr[...] = apr[:, :, None, None]
            self.approval[...] = approval

    def _flows(self) -> np.ndarray:
        """(N, L+1, S, B, M): where each MOB's live EAD goes this month (live states, then the loss state).

        Under the cycle, the chain at Z_t interpolates linearly between the two nearest grid points."""
        book = self.book
        if not self.dynamics.cycle:
            return np.einsum("nisbm,ijsbm->njsbm", book, self.moves[0])
        pos = np.minimum(np.maximum((self.z - Z_GRID[0]) / self.z_step, 0.0), len(Z_GRID) - 1.000001)
        i = pos.astype(np.int64)
        if self.n == 1 or self.dynamics.common_shocks:  # one Z for the batch: no gather
            moves = self.moves[i[0]] + (pos[0] - i[0]) * self.slopes[i[0]]
            return np.einsum("nisbm,ijsbm->njsbm", book, moves)
        moves = self.moves[i] + (pos - i)[:, None, None, None, None, None] * self.slopes[i]
        return np.einsum("nisbm,nijsbm->njsbm", book, moves)

    def step(self, action: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One month: accrue on the book, roll it, book the new cohort, move Z, funding and applications."""
        n = self.n
        book = self.book
        outstanding = book.sum(axis=1)  # (N, S, B, M)
        performing = np.einsum("i,nisbm->nsbm", self.performing_weight, book)
        interest = (self.apr.reshape(n, -1) * performing.reshape(n, -1)).sum(axis=1) / 12.0
        out_sb = outstanding.sum(axis=-1).reshape(n, -1)  # (N, S*B)
        running = (self.funding * out_sb.sum(axis=1) + out_sb @ (self.funding_spread + self.opex_rate)) / 12.0
        charge = out_sb @ self.charge_rate

        flows = self._flows()
        loss = flows[:, -1].sum(axis=-1).reshape(n, -1) @ self.lgd_sb
        book[..., 1:] = flows[:, :-1, ..., :-1]
        self.apr[..., 1:] = self.apr[..., :-1]
        new, apr, self.approval = self._booking(action, self.noise)
        book[..., 0] = 0.0
        book[:, 0, :, :, 0] = new
        self.apr[:, :, :, 0] = apr[..., None]
        upfront = new.reshape(n, -1) @ self.opex_upfront

        profit = (interest - running - loss - upfront) * self.keep - charge
        self._advance(rng)
        return profit / self.budget, profit

    def _advance(self, rng: np.random.Generator) -> None:
        d = self.dynamics
        shocks = rng.standard_normal((1 if d.common_shocks else self.n, 2 + self.n_seg))
        if d.cycle:
            phi = self.z_persistence
            self.z = phi * self.z + np.sqrt(1.0 - phi**2) * shocks[:, 0]
        self.funding = np.minimum(np.maximum(self.funding_base + d.funding_persistence * (
            self.funding - self.funding_base) + d.funding_sd * shocks[:, 1], 0.0), 0.5)
        sd = d.application_sd
        self.noise = np.exp(sd * shocks[:, 2:] - 0.5 * sd**2)

    def observation(self) -> np.ndarray:
        """(N, S*L + S + 2) float32: EAD by segment x live state / (BOOK_SCALE x budget), approvals, Z, funding."""
        ead = np.moveaxis(self.book.sum(axis=(3, 4)), 1, 2).reshape(self.n, -1) / (BOOK_SCALE * self.budget)
        return np.concatenate([ead, self.approval, self.z[:, None], self.funding[:, None]], axis=1,
                              dtype=np.float32)


def policy_action(twin: Twin, policy: Policy) -> np.ndarray:
    """A Policy as the environment's action (3S,) (per-band APRs enter as their booked-weighted mean)."""
    cutoff, apr, share = policy.arrays(twin.segments, twin.n_bands)
    rejected = 1.0 - (twin.band_weight * twin.acceptance(cutoff)).sum(axis=1)
    lo, hi, _ = twin.apr_range()
    mean_apr = (twin.band_weight * apr).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        position = np.where(hi > lo, (np.clip(mean_apr, lo, hi) - lo) / (hi - lo), 0.0)
    unit = np.concatenate([rejected, position, share])
    return (2.0 * unit - 1.0).astype(np.float32)


ACTION_PARTS = ("cut-off", "APR", "budget share")  # the action's three blocks of one number per segment


def action_problem(action: np.ndarray, space: spaces.Box, segments) -> str:
    """Why a flat action is not in ``space`` ("" if it is): its first numbers that are not finite or lie outside
    the bounds, each with its position and meaning. Compared as the space's float32, so 1 + 1e-12 from a float64
    policy is 1, not an error."""
    with np.errstate(over="ignore", invalid="ignore"):  # 1e300 is inf as a float32: refused all the same
        value = action.astype(space.dtype)
        bad = np.flatnonzero(~np.isfinite(value) | (value < space.low) | (value > space.high))
    if not len(bad):
        return ""
    n = len(segments)
    shown = ", ".join(f"{float(action[i])} at position {i} ({ACTION_PARTS[i // n]} of {segments[i % n]})"
                      for i in bad[:3])
    more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
    # Clipping in silence would let an agent learn on actions it never took (5.0 played as 1.0); NaN would enter
    # the book and make every later reward and observation NaN until reset.
    return f"an action must be finite numbers in [-1, 1] (the action space); got {shown}{more}"


class LendingEnv(gym.Env):
    """``gymnasium.make("pyxl_del/Lending-v0", twin=..., horizon=120, seed=0)``; or ``data=``/``config=`` to fit one.

    See the module docstring for the spaces. Episodes end by truncation after ``horizon`` months.
    """

    metadata = {"render_modes": []}

    def __init__(self, twin: Twin | None = None, *, data=None, config=None, horizon: int = 120,
                 seed: int | None = None, dynamics: Dynamics | None = None, cycle: bool | None = None):
        if twin is None:
            if data is None:
                raise ValueError("LendingEnv needs a fitted twin= or data= (a panel) to fit one")
            twin = fit_twin(data, config)
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        dyn = dynamics or Dynamics()
        if cycle is not None:
            dyn = Dynamics(**{**dyn.__dict__, "cycle": cycle})
        self.twin, self.horizon = twin, int(horizon)
        self.core = LendingCore(twin, 1, dyn)
        s = self.core.n_seg
        self.action_space = spaces.Box(-1.0, 1.0, shape=(3 * s,), dtype=np.float32)
        low = np.concatenate([np.zeros(s * self.core.n_live + s), [Z_GRID[0] * 2, 0.0]]).astype(np.float32)
        high = np.concatenate([np.full(s * self.core.n_live, 100.0), np.ones(s), [Z_GRID[-1] * 2, 1.0]])
        self.observation_space = spaces.Box(low, high.astype(np.float32), dtype=np.float32)
        self._seed = seed
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=self._seed if seed is None else seed)
        self._seed = None  # the constructor's seed applies to the first reset only
        self.core.reset(self.np_random)
        self._t = 0
        return self._obs(), {"z": float(self.core.z[0]), "funding_rate": float(self.core.funding[0])}

    def _obs(self) -> np.ndarray:
        obs = self.core.observation()[0]
        obs[-2] = np.clip(obs[-2], self.observation_space.low[-2], self.observation_space.high[-2])
        return obs

    def step(self, action):
        a = np.asarray(action, dtype=np.float64)
        # A wrong shape would fail in a broadcast that names neither the shape nor the action's layout.
        if a.size != self.action_space.shape[0]:
            raise ValueError(f"an action has {self.action_space.shape[0]} numbers (cut-off, APR and budget share of "
                             f"each of the {self.core.n_seg} segments); got shape {a.shape}")
        problem = action_problem(a.ravel(), self.action_space, self.twin.segments)
        if problem:
            raise ValueError(problem)
        a = a.reshape(1, -1)
        reward, profit = self.core.step(a, self.np_random)
        self._t += 1
        info = {"profit": float(profit[0]), "z": float(self.core.z[0]), "funding_rate": float(self.core.funding[0]),
                "approval_rate": self.core.approval[0].copy()}
        return self._obs(), float(reward[0]), False, self._t >= self.horizon, info
