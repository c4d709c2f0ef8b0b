"""Closed forms of the decision engine: logistic take-up, the Lambert-W price, the PD-score link, config checks."""

import numpy as np
import pytest
from _decision import scored_twin

from pyxl_del import Config, ConfigError
from pyxl_del.datasets.scores import normal_band_means
from pyxl_del.decision.economics import (
    linked_band_pd,
    optimal_apr,
    optimal_apr_numeric,
    take_up,
)
from pyxl_del.decision.optimise import price_check


@pytest.mark.parametrize("cost", [0.02, 0.10, 0.18, 0.35, 0.60])
@pytest.mark.parametrize("midpoint, steepness", [(0.35, 15.0), (0.20, 40.0), (0.50, 5.0)])
def test_lambert_w_price_equals_the_numeric_optimum(cost, midpoint, steepness):
    closed = float(optimal_apr(cost, midpoint, steepness, 0.0, 2.0))
    numeric = optimal_apr_numeric(cost, midpoint, steepness, 0.0, 2.0, max_take_up=0.8)
    assert abs(closed - numeric) < 1e-6
    # the first-order condition holds: k (p - c) = 1 + exp(-k (p - midpoint))
    assert abs(steepness * (closed - cost) - 1 - np.exp(-steepness * (closed - midpoint))) < 1e-8


def test_bounded_price_is_the_clipped_closed_form():
    assert optimal_apr(0.5, 0.35, 15.0, 0.05, 0.40) == pytest.approx(0.40)
    assert optimal_apr_numeric(0.5, 0.35, 15.0, 0.05, 0.40) == pytest.approx(0.40, abs=1e-6)


def test_twin_price_closed_form_agrees_with_numeric():
    closed, numeric = price_check(scored_twin(), 0)
    assert abs(closed - numeric) < 1e-6


def test_take_up_falls_with_the_price():
    p = np.linspace(0, 1, 50)
    t = take_up(p, 0.8, 0.35, 15.0)
    assert (np.diff(t) < 0).all() and t[0] < 0.8 and take_up(0.35, 0.8, 0.35, 15.0) == pytest.approx(0.4)


def test_linked_band_pd_keeps_the_mean_and_falls_with_the_score():
    pd_ = linked_band_pd([0.02, 0.10], 50.0 * normal_band_means(10), pdo=50.0)
    assert pd_.shape == (2, 10)
    assert np.allclose(pd_.mean(axis=1), [0.02, 0.10])
    assert (np.diff(pd_, axis=1) < 0).all()
    # odds double every pdo points (exactly in odds, between two band means)
    odds = pd_ / (1 - pd_)
    z = normal_band_means(10)
    assert np.allclose(np.log(odds[:, 0] / odds[:, 1]), np.log(2) * 50.0 * (z[1] - z[0]) / 50.0)


@pytest.mark.parametrize("section, values, message", [
    ("demand", {"steepness": -3.0}, "monotone"),
    ("demand", {"steepness": 0.0}, "monotone"),
    ("demand", {"max_take_up": -0.2}, "max_take_up"),
    ("demand", {"midpoint": -0.1}, "midpoint"),
    ("demand", {"segments": {"CD": {"steepness": -1.0}}}, "monotone"),
    ("policy", {"apr_min": 0.5, "apr_max": 0.4}, "exclude every price"),
    ("policy", {"min_share": 0.6, "max_share": 0.5}, "min_share"),
    ("policy", {"segments": {"CD": {"apr": -0.1, "budget_share": 0.5}}}, "apr"),
])
def test_bad_decision_config_is_a_clear_error(section, values, message):
    with pytest.raises(ConfigError, match=message) as info:
        Config().with_overrides(**{section: values})
    assert f"[{section}]" in str(info.value)


def test_optional_columns_are_optional():
    c = Config().with_overrides(columns={"score": "", "apr": "RATE"})
    assert c["score"] is None and c["apr"] == "RATE"
    with pytest.raises(ConfigError, match="same data column"):
        Config().with_overrides(columns={"score": "MOB"})
