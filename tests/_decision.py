"""Shared, cached fixtures of the decision-engine tests: small scored and unscored panels and their twins."""

from __future__ import annotations

import functools

from pyxl_del import Config
from pyxl_del.datasets.sample import generate_sample
from pyxl_del.decision.twin import fit_twin

SMALL = {"loans_per_cohort": 120, "n_cohorts": 24}
TINY = {"loans_per_cohort": 40, "n_cohorts": 24}  # decide / A-B tests: fast, the same panel for both


@functools.cache
def scored_panel():
    return generate_sample(score=True, **SMALL)


@functools.cache
def scored_twin():
    return fit_twin(scored_panel(), Config())


@functools.cache
def linked_twin():
    return fit_twin(generate_sample(**SMALL), Config())


def twin_with(**sections):
    """The scored twin refitted under a config with some keys changed."""
    return fit_twin(scored_panel(), Config().with_overrides(**sections))


@functools.cache
def tiny_scored_panel():
    return generate_sample(score=True, **TINY)


@functools.cache
def tiny_scored_twin():
    return fit_twin(tiny_scored_panel(), Config())
