"""Decision engine timings, and the agent experiments of docs/decisions.md.

    python benchmarks/bench_decision.py [--steps 20000] [--cycle-experiment]

Times: fitting the twin on the scored sample (348,750 rows, 3 segments x 10 score bands), the optimisers
(cut-off x price frontier, budget shadow price, mix), one Gymnasium environment's steps per second (made with
gymnasium.make, cycle on and off; target 5,000 steps/s on the 2-core machine) and the CEM agent's training.
With --cycle-experiment: in the cyclical environment, a static CEM policy and one adapting to Z_t are trained and
compared with the static optimum on 20 held-out seeds.
"""

from __future__ import annotations

import argparse
import time

import gymnasium
import numpy as np

import pyxl_del
from pyxl_del.datasets.sample import generate_sample
from pyxl_del.decision.agent import CrossEntropyAgent, LinearPolicy, discounted_returns
from pyxl_del.decision.env import ENV_ID, Dynamics, policy_action
from pyxl_del.decision.optimise import MixProblem, optimise, optimise_mix
from pyxl_del.decision.twin import fit_twin

TARGET_STEPS_PER_SECOND = 5_000


def timed(label: str, fn, repeat: int = 1):
    best, out = np.inf, None
    for _ in range(repeat):
        started = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - started)
    print(f"{label:<52} {best * 1e3:10.1f} ms")
    return out


def env_speed(twin, cycle: bool, steps: int) -> float:
    env = gymnasium.make(ENV_ID, twin=twin, horizon=steps, seed=0, cycle=cycle)
    env.reset()
    action = policy_action(twin, optimise(twin).recommended)
    started = time.perf_counter()
    for _ in range(steps):
        env.step(action)
    rate = steps / (time.perf_counter() - started)
    print(f"{'env steps/s, cycle ' + ('on' if cycle else 'off'):<52} {rate:10,.0f}  (target {TARGET_STEPS_PER_SECOND:,})")
    return rate


def cycle_experiment(twin, seeds: int = 20) -> None:
    rec = optimise(twin)
    # No demand noise: what is compared is how a policy copes with the credit cycle, nothing else.
    dyn = Dynamics(cycle=True, initial_book="empty", application_sd=0.0)
    static_opt = policy_action(twin, rec.recommended)
    common = dict(population=32, iterations=25, episodes=4, horizon=120, seed=11)
    started = time.perf_counter()
    static_cem = CrossEntropyAgent(kind="static", **common).fit(twin, dyn, init=static_opt)
    adaptive = CrossEntropyAgent(kind="cycle", **common).fit(twin, dyn, init=static_opt)
    print(f"{'CEM training, static + adaptive (cyclical)':<52} {(time.perf_counter() - started) * 1e3:10.1f} ms")
    held_out = list(range(10_000, 10_000 + seeds))
    static_w = LinearPolicy.constant(static_opt, "cycle").weights
    static_cem_w = np.concatenate([static_cem.policy.weights, np.zeros_like(static_cem.policy.weights)], axis=1)
    weights = np.stack([static_w, static_cem_w, adaptive.policy.weights])
    returns = discounted_returns(twin, weights, "cycle", dyn, 120, held_out)
    diff = returns[2] - returns[0]
    print(f"held-out discounted return (mean over {seeds} seeds, per unit of monthly budget):")
    for name, r in zip(("static optimum (optimiser)", "static CEM", "adaptive CEM (Z_t)"), returns, strict=True):
        print(f"  {name:<30} {r.mean():8.4f}  (sd {r.std(ddof=1):.4f})")
    print(f"  adaptive - static optimum: {diff.mean():+.4f} (paired se {diff.std(ddof=1) / np.sqrt(seeds):.4f}; "
          f"{(diff > 0).mean():.0%} of seeds better)")
    print(f"  adaptive weights on Z (cut-off, APR, share by segment): "
          f"{np.round(adaptive.policy.weights[:, 1], 3).tolist()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--cycle-experiment", action="store_true")
    args = parser.parse_args()
    print(f"pyxl_del {pyxl_del.__version__}")
    panel = generate_sample(score=True)
    config = pyxl_del.Config()
    twin = timed("fit_twin (348,750 rows, 3 x 10 bands)", lambda: fit_twin(panel, config))
    timed("optimise (frontier + shadow price + mix + impact)", lambda: optimise(twin), repeat=3)
    problem = MixProblem(value=np.array([0.06, 0.08, 0.05]), el=np.array([0.05, 0.02, 0.04]),
                         var99=np.array([0.09, 0.04, 0.07]), capacity=np.array([80.0, 40.0, 70.0]), budget=100.0,
                         max_hhi=0.36, max_el=3.8)
    timed("optimise_mix (SLSQP, HHI binding)", lambda: optimise_mix(problem), repeat=5)
    env_speed(twin, cycle=False, steps=args.steps)
    env_speed(twin, cycle=True, steps=args.steps)
    dyn = Dynamics(cycle=False, initial_book="empty", application_sd=0.0)
    agent = CrossEntropyAgent(population=24, iterations=18, episodes=1, horizon=96, seed=3)
    timed("CEM training, stationary (24 x 18 x 132 steps)", lambda: agent.fit(twin, dyn))
    if args.cycle_experiment:
        cycle_experiment(twin)


if __name__ == "__main__":
    main()
