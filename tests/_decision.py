"""Shared, cached fixtures of the decision-engine tests: small scored and unscored panels and their twins."""

from __future__ import annotations

import functools

from pyxl_del import Config
from pyxl_del.datasets.sample import generate_sample
from pyxl_del.decision.twin import fit_twin
from pyxl_del.engine.config import (
    ILLUSTRATIVE_DEMAND,
    ILLUSTRATIVE_ECONOMICS,
    ILLUSTRATIVE_LGD,
)

SMALL = {"loans_per_cohort": 120, "n_cohorts": 24}
TINY = {"loans_per_cohort": 40, "n_cohorts": 24}  # decide / A-B tests: fast, the same panel for both
# The economics the known answers were worked with (the illustrative values and APR range 5% to 80%), set in the
# config, so they are no defaults: the figures carry no ILLUSTRATIVE caveat. Tests of the caveat use Config().
SET = {"economics": dict(ILLUSTRATIVE_ECONOMICS), "demand": dict(ILLUSTRATIVE_DEMAND),
       "policy": {"apr_min": 0.05, "apr_max": 0.80}, "risk": {"lgd": ILLUSTRATIVE_LGD}}


def economics_config(**sections) -> Config:
    """Config() with the economics of SET, and ``sections`` on top."""
    merged = {k: dict(v) for k, v in SET.items()}
    for key, values in sections.items():
        merged[key] = merged.get(key, {}) | values
    return Config().with_overrides(**merged)


@functools.cache
def scored_panel():
    return generate_sample(score=True, **SMALL)


@functools.cache
def scored_twin():
    return fit_twin(scored_panel(), economics_config())


@functools.cache
def linked_twin():
    return fit_twin(generate_sample(**SMALL), economics_config())


def twin_with(**sections):
    """The scored twin refitted under a config with some keys changed."""
    return fit_twin(scored_panel(), economics_config(**sections))


@functools.cache
def tiny_scored_panel():
    return generate_sample(score=True, **TINY)


@functools.cache
def tiny_scored_twin():
    return fit_twin(tiny_scored_panel(), economics_config())
