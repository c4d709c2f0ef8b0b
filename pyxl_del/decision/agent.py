"""A numpy policy-search agent for the lending environment: the cross-entropy method on linear policies.

The policy maps features of the observation to the action, a = clip(W phi, -1, 1), with phi = (1,) (a static
policy) or phi = (1, Z_t) (one that adapts to the credit cycle). `CrossEntropyAgent(...).fit(twin)` samples a
population of W, scores each by its mean discounted return on the batched simulator (`LendingCore`, common
random numbers within an iteration), keeps the elite and refits the sampling distribution. Estimator style: the
agent holds only its parameters; `fit` returns a `FittedAgent`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np

from pyxl_del.decision.env import Dynamics, LendingCore
from pyxl_del.decision.twin import Twin

log = logging.getLogger(__name__)

FEATURES = ("static", "cycle")


def features(observation: np.ndarray, kind: str) -> np.ndarray:
    """(N, F) policy features of (N, obs) observations: a constant, and Z_t for "cycle"."""
    ones = np.ones((observation.shape[0], 1))
    return ones if kind == "static" else np.concatenate([ones, observation[:, -2:-1]], axis=1)


@dataclass(frozen=True)
class LinearPolicy:
    """a = clip(weights @ phi(obs), -1, 1); weights (A, F)."""

    weights: np.ndarray
    kind: str = "static"

    def act(self, observation: np.ndarray) -> np.ndarray:
        obs = np.atleast_2d(observation)
        action = np.clip(features(obs, self.kind) @ self.weights.T, -1.0, 1.0)
        return action[0].astype(np.float32) if np.ndim(observation) == 1 else action

    @classmethod
    def constant(cls, action: np.ndarray, kind: str = "static") -> LinearPolicy:
        """The policy that always plays ``action`` (e.g. a Policy as `lending_env.policy_action`)."""
        weights = np.zeros((len(action), 1 if kind == "static" else 2))
        weights[:, 0] = action
        return cls(weights, kind)


def monthly_discount(twin: Twin) -> float:
    """The discount factor of one month, 1 / (1 + r/12), at the twin's resolved discount rate: [economics]
    discount_rate, or its ILLUSTRATIVE default where config.toml leaves it out (the config then holds None), the
    rate the optimiser values a booking at (economics.discount_factors)."""
    return 1.0 / (1.0 + twin.terms.discount_rate / 12.0)


def discounted_returns(twin: Twin, weights: np.ndarray, kind: str, dynamics: Dynamics, horizon: int,
                       seeds, run_off: bool = True) -> np.ndarray:
    """(P, E) discounted returns of P linear policies (P, A, F) on E episodes (one seed each).

    All P policies of an episode share its seed's random paths (common random numbers), so their differences
    are the policies' and not the luck of the draw. The discount is `monthly_discount`. With
    ``run_off`` the book left at the horizon runs off for max_mob more months without new lending, so every
    booking is valued over its whole life, as the static optimiser values it (no end-of-horizon effect).
    """
    gamma = monthly_discount(twin)
    n_pol = weights.shape[0]
    core = LendingCore(twin, n_pol, replace(dynamics, common_shocks=True))
    out = np.zeros((n_pol, len(seeds)))
    for e, seed in enumerate(seeds):
        rng = np.random.default_rng(seed)
        core.reset(rng)
        discount = 1.0
        action = np.clip(weights[..., 0], -1.0, 1.0)  # a static policy's action never changes
        for t in range(horizon + (twin.max_mob if run_off else 0)):
            if t == horizon:
                action = action.copy()
                action[:, 2 * len(twin.segments):] = -1.0  # budget share 0: no new lending
            elif kind != "static" and t < horizon:
                phi = features(core.observation(), kind)  # (P, F)
                action = np.clip(np.einsum("paf,pf->pa", weights, phi), -1.0, 1.0)
            reward, _ = core.step(action, rng)
            out[:, e] += discount * reward
            discount *= gamma
    return out


@dataclass(frozen=True)
class FittedAgent:
    policy: LinearPolicy
    history: np.ndarray  # (iterations,) mean elite return per iteration
    best_return: float  # mean training return of the final mean policy


@dataclass(frozen=True)
class CrossEntropyAgent:
    """Cross-entropy method over linear policies. Deterministic for a given ``seed``."""

    kind: str = "static"
    population: int = 32
    elite_fraction: float = 0.25
    iterations: int = 20
    episodes: int = 2
    horizon: int = 120
    init_std: float = 0.5
    min_std: float = 0.02
    smoothing: float = 0.7  # weight of the new elite statistics in the sampling distribution
    seed: int = 0

    def fit(self, twin: Twin, dynamics: Dynamics = Dynamics(), init: np.ndarray | None = None) -> FittedAgent:
        """Train on ``twin``'s environment; ``init`` (A,) is the starting mean action (default: the middle)."""
        if self.kind not in FEATURES:
            raise ValueError(f"kind must be one of {FEATURES}, got {self.kind!r}")
        n_action = 3 * len(twin.segments)
        n_feat = 1 if self.kind == "static" else 2
        mean = np.zeros((n_action, n_feat))
        if init is not None:
            mean[:, 0] = init
        std = np.full_like(mean, self.init_std)
        n_elite = max(2, int(round(self.population * self.elite_fraction)))
        rng = np.random.default_rng(self.seed)
        history = []
        for it in range(self.iterations):
            samples = mean + std * rng.standard_normal((self.population, n_action, n_feat))
            samples[0] = mean  # the incumbent is always scored
            seeds = rng.integers(0, 2**31, self.episodes)
            scores = discounted_returns(twin, samples, self.kind, dynamics, self.horizon, seeds).mean(axis=1)
            elite = samples[np.argsort(scores)[-n_elite:]]
            mean = (1 - self.smoothing) * mean + self.smoothing * elite.mean(axis=0)
            std = np.maximum((1 - self.smoothing) * std + self.smoothing * elite.std(axis=0), self.min_std)
            history.append(float(np.sort(scores)[-n_elite:].mean()))
            log.info("CEM iteration %d: elite mean return %.5f", it, history[-1])
        final = discounted_returns(twin, mean[None], self.kind, dynamics, self.horizon,
                                   rng.integers(0, 2**31, self.episodes)).mean()
        return FittedAgent(LinearPolicy(mean, self.kind), np.array(history), float(final))
