"""The Gymnasium environment and the cross-entropy agent."""

import gymnasium
import numpy as np
import pytest
from _decision import scored_twin
from gymnasium.utils.env_checker import check_env

import pyxl_del  # noqa: F401  (registers the environment)
from pyxl_del.decision.agent import CrossEntropyAgent, LinearPolicy, discounted_returns
from pyxl_del.decision.env import ENV_ID, Dynamics, LendingEnv, policy_action
from pyxl_del.decision.optimise import optimise


@pytest.mark.parametrize("cycle", [True, False])
def test_env_passes_the_gymnasium_checker(cycle):
    env = LendingEnv(scored_twin(), horizon=24, seed=0, cycle=cycle)
    check_env(env, skip_render_check=True)


def test_registered_and_made_with_gymnasium():
    env = gymnasium.make(ENV_ID, twin=scored_twin(), horizon=5, seed=1)
    obs, info = env.reset()
    assert env.observation_space.contains(obs) and "z" in info
    steps = 0
    while True:
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        steps += 1
        assert np.isfinite(reward) and "profit" in info
        if terminated or truncated:
            break
    assert steps == 5


def test_a_non_finite_or_misshapen_action_is_refused_and_the_episode_goes_on():
    """A NaN in one action made every later reward and observation NaN until reset; a wrong shape failed in a
    broadcast of (1,14) and (1,3)."""
    env = LendingEnv(scored_twin(), horizon=5, seed=1)
    env.reset()
    bad = np.zeros(9, dtype=np.float32)
    for value in (np.nan, np.inf):
        bad[0] = value
        with pytest.raises(ValueError, match="an action must be finite numbers in"):
            env.step(bad)
    with pytest.raises(ValueError, match=r"an action has 9 numbers \(cut-off, APR and budget share of each of the "
                                         r"3 segments\); got shape \(14,\)"):
        env.step(np.zeros(14))
    obs, reward, *_ = env.step(np.full(9, 5.0))  # out of [-1, 1]: clipped, as before
    assert np.isfinite(reward) and env.observation_space.contains(obs)


def _trajectory(seed, actions):
    env = LendingEnv(scored_twin(), horizon=len(actions), seed=seed)
    obs, _ = env.reset()
    out = [obs]
    for a in actions:
        obs, reward, *_ = env.step(a)
        out += [obs, np.array([reward])]
    return np.concatenate(out)


def test_same_seed_same_actions_same_trajectory():
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (30, 9)).astype(np.float32)
    a, b, c = _trajectory(7, actions), _trajectory(7, actions), _trajectory(8, actions)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_static_policy_return_matches_the_twins_value():
    """With no cycle and no noise the env books the twin's expected volumes at the twin's unit values."""
    twin = scored_twin()
    rec = optimise(twin)
    dyn = Dynamics(cycle=False, initial_book="empty", application_sd=0.0, funding_sd=0.0)
    action = policy_action(twin, rec.recommended)
    ret = discounted_returns(twin, LinearPolicy.constant(action).weights[None], "static", dyn, 60, [0])[0, 0]
    gamma = 1 / (1 + twin.config.economics.discount_rate / 12)
    month_value = rec.recommended_impact.set_index("segment").loc["Portfolio", "value"] / rec.recommended.budget
    assert ret == pytest.approx(month_value * (1 - gamma**60) / (1 - gamma), rel=1e-6)


def test_agent_reaches_the_static_optimum_when_stationary():
    twin = scored_twin()
    rec = optimise(twin)
    dyn = Dynamics(cycle=False, initial_book="empty", application_sd=0.0)
    start = policy_action(twin, rec.current)
    fitted = CrossEntropyAgent(population=24, iterations=18, episodes=1, horizon=96, seed=3).fit(twin, dyn, init=start)
    held_out = [9001, 9002, 9003]
    weights = np.stack([LinearPolicy.constant(policy_action(twin, rec.recommended)).weights, fitted.policy.weights,
                        LinearPolicy.constant(start).weights])
    static, agent, current = discounted_returns(twin, weights, "static", dyn, 96, held_out).mean(axis=1)
    assert abs(agent / static - 1) <= 0.02, (agent, static)
    assert agent > current
    assert fitted.history[-1] > fitted.history[0]
