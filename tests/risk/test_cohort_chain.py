"""The risk projection rolls each cohort through the same cohort-adjusted chain as the report's forecast
([calibration] cohort_factor), so expected loss agrees with the DEL tables."""

from __future__ import annotations

import numpy as np
import pytest

import pyxl_del
from pyxl_del import Config
from pyxl_del.datasets.sample import _scale_roll_forward, simulate_panel
from pyxl_del.risk.expected_loss import expected_loss
from pyxl_del.risk.projection import project
from pyxl_del.risk.var import segment_chain
from tests._panels import CHAIN

STATES = Config().buckets.order
D90, WO = STATES.index("DPD90+"), STATES.index("WRITEOFF")
COHORTS = ["2024-01", "2024-02", "2024-03", "2024-04"]


@pytest.fixture(scope="module")
def vintage():
    """Cohorts alternately 0.6 and 1.6 times as likely to roll forward; cohort factors on."""
    cfg = Config().with_overrides(forecast={"max_mob": 4}, risk={"lgd": 0.5},
                                  calibration={"cohort_factor": "credibility"})
    p = _scale_roll_forward(np.broadcast_to(CHAIN, (1, 4, 7, 7)), np.array([0.6, 1.6, 0.6, 1.6])[:, None, None], cfg)
    frame = simulate_panel(p, cohorts=COHORTS, as_of=COHORTS[-1], loans_per_cohort=1500, segments=["A"], seed=5,
                           config=cfg)
    return pyxl_del.run(frame, cfg), frame, cfg


def test_baseline_projection_is_the_cohort_adjusted_forecast(vintage):
    result, frame, cfg = vintage
    assert np.ptp(result.factors.cohort.factor[0, :3]) > 0.5  # the factors differ: the check below can fail
    assert np.allclose(project(result).by_mob(), result.ead_path, rtol=1e-12, atol=0)
    plain = pyxl_del.run(frame, cfg.with_overrides(calibration={"cohort_factor": "none"}))
    assert not np.allclose(project(plain).path, project(result).path, rtol=1e-3)


def test_el_known_answer_through_each_cohorts_chain(vintage):
    result, _frame, cfg = vintage
    el = expected_loss(result, cfg)
    steps = result.cohort_chain(result.transition_matrix[:, None])[0]  # (C, M, K, K)
    for c, cohort in enumerate(COHORTS):
        row = el[(el["segment"] == "A") & (el["cohort"] == cohort)].iloc[0]
        last = int(row["last_mob"])
        v = result.ead_path[0, c, last]
        rolled = v.copy()
        for t in range(3000):
            rolled = rolled @ steps[c, min(last + t, steps.shape[1] - 1)]
            if t == 11:
                assert row["writeoff_12m"] == pytest.approx(rolled[WO] - v[WO], rel=1e-9)
        assert row["writeoff_lifetime"] == pytest.approx(rolled[WO] - v[WO], rel=1e-9)


def test_segment_chain_reproduces_the_cohort_adjusted_projection(vintage):
    result, _frame, _cfg = vintage
    projection = project(result, months=6)
    matrices, start = segment_chain(projection, 6)
    v = start
    for t in range(6):
        v = np.einsum("sk,skj->sj", v, matrices[:, t])
    assert np.allclose(v, projection.at(6).sum(axis=1), rtol=1e-10)
