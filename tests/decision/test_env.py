"""The Gymnasium environment and the cross-entropy agent."""

import gymnasium
import numpy as np
import pytest
from _decision import SET, scored_panel, scored_twin
from gymnasium.utils.env_checker import check_env

import pyxl_del  # noqa: F401  (registers the environment)
from pyxl_del import Config
from pyxl_del.decision.agent import CrossEntropyAgent, LinearPolicy, discounted_returns
from pyxl_del.decision.env import ENV_ID, Dynamics, LendingEnv, policy_action
from pyxl_del.decision.optimise import optimise
from pyxl_del.decision.twin import fit_twin


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
    obs, reward, *_ = env.step(np.zeros(9))
    assert np.isfinite(reward) and env.observation_space.contains(obs)


def test_an_action_outside_the_action_space_is_refused_not_clipped():
    """5.0 was clipped to 1.0 in silence (the same reward as 1.0) while NaN was refused: an agent whose actions left
    [-1, 1] learnt on actions it never took. Its position and meaning are named; 1 + 1e-12 (1 in the space's
    float32) is accepted."""
    env = LendingEnv(scored_twin(), horizon=5, seed=1)
    env.reset()
    action = np.zeros(9, dtype=np.float32)
    action[4] = 5.0
    with pytest.raises(ValueError, match=r"an action must be finite numbers in \[-1, 1\] \(the action space\); got "
                                         r"5\.0 at position 4 \(APR of CD\)"):
        env.step(action)
    with pytest.raises(ValueError, match=r"got -1\.5 at position 8 \(budget share of TW/Moto\)"):
        env.step(np.r_[np.zeros(8), -1.5])
    obs, reward, *_ = env.step(np.r_[np.zeros(8), 1.0 + 1e-12])
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
    gamma = 1 / (1 + twin.terms.discount_rate / 12)
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


def test_the_agent_discounts_at_the_resolved_rate_when_the_config_leaves_it_out():
    """With [economics] discount_rate left out (the repository's config.toml) the agent stopped with a TypeError
    (None / 12): its returns must discount at the rate the optimiser values a booking at, the ILLUSTRATIVE 12%."""
    economics = {k: v for k, v in SET["economics"].items() if k != "discount_rate"}
    left_out = fit_twin(scored_panel(), Config().with_overrides(**{**SET, "economics": economics}))
    assert left_out.config.economics.discount_rate is None and left_out.terms.discount_rate == 0.12
    dyn = Dynamics(cycle=False, initial_book="empty", application_sd=0.0)
    weights = LinearPolicy.constant(policy_action(left_out, optimise(left_out).recommended)).weights[None]
    ret = discounted_returns(left_out, weights, "static", dyn, 24, [0])[0, 0]
    assert ret == pytest.approx(discounted_returns(scored_twin(), weights, "static", dyn, 24, [0])[0, 0], rel=1e-12)
    fitted = CrossEntropyAgent(population=4, iterations=1, episodes=1, horizon=12).fit(left_out, dyn)
    assert np.isfinite(fitted.best_return)
