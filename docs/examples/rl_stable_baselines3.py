"""The lending environment with an off-the-shelf agent: PPO from stable-baselines3 (optional; not run in CI).

    pip install stable-baselines3      # brings PyTorch
    python docs/examples/rl_stable_baselines3.py [--steps 200000]

Trains PPO on the cyclical environment fitted to the scored sample and compares it, on held-out seeds, with the
optimiser's static policy. The environment is plain Gymnasium, so any library that speaks its API works the same.
"""

from __future__ import annotations

import argparse

import gymnasium
import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env

import pyxl_del  # noqa: F401  (registers pyxl_del/Lending-v0)
from pyxl_del.datasets.sample import generate_sample
from pyxl_del.decision.agent import monthly_discount
from pyxl_del.decision.env import ENV_ID, policy_action
from pyxl_del.decision.optimise import optimise
from pyxl_del.decision.twin import fit_twin


def episode_return(env: gymnasium.Env, act, seed: int, gamma: float) -> float:
    obs, _ = env.reset(seed=seed)
    total, discount, done = 0.0, 1.0, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(act(obs))
        total += discount * reward
        discount *= gamma
        done = terminated or truncated
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200_000)
    args = parser.parse_args()
    config = pyxl_del.Config()
    twin = fit_twin(generate_sample(score=True), config)
    env = gymnasium.make(ENV_ID, twin=twin, horizon=120, seed=0)
    check_env(env.unwrapped)
    gamma = monthly_discount(twin)  # the twin's resolved rate: Config() leaves [economics] discount_rate None
    model = PPO("MlpPolicy", env, gamma=gamma, verbose=0, seed=0).learn(total_timesteps=args.steps)
    static = policy_action(twin, optimise(twin).recommended)
    seeds = range(10_000, 10_020)
    ppo = [episode_return(env, lambda o: model.predict(o, deterministic=True)[0], s, gamma) for s in seeds]
    fixed = [episode_return(env, lambda o: static, s, gamma) for s in seeds]
    print(f"PPO {np.mean(ppo):.4f} vs static optimum {np.mean(fixed):.4f} (discounted return, 120 months, "
          f"{len(seeds)} held-out seeds)")


if __name__ == "__main__":
    main()
