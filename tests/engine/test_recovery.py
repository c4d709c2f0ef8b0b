"""Recovery: on a panel simulated from known matrices, the estimates match the truth within sampling error."""

import numpy as np
import pytest

import pyxl_del
from pyxl_del.datasets.sample import realistic_matrices, simulate_panel


@pytest.fixture(scope="module")
def truth_and_result():
    cfg = pyxl_del.Config().as_specified().with_overrides(  # the specified estimator's own rows, unshrunk
        transitions={"weighting": "count", "min_count": 200}, calibration={"mode": "none"}, forecast={"max_mob": 12})
    truth = realistic_matrices(cfg, segments=("CASH LOAN", "CD"), max_mob=12)
    cohorts = [f"2024-{m:02d}" for m in range(1, 13)]
    panel = simulate_panel(truth, cohorts=cohorts, as_of="2024-12", loans_per_cohort=6000,
                           segments=("CASH LOAN", "CD"), seed=7, config=cfg)
    return truth, pyxl_del.run(panel, cfg)


def test_estimates_within_sampling_error(truth_and_result):
    truth, result = truth_and_result
    est = result.transition_matrix
    n = result.transitions.n_obs[..., None]  # (S, M, K, 1)
    estimated = (result.transitions.source == 0)[..., None] & (n >= 200)
    steps = est.shape[1]
    p = truth[:, :steps]
    se = np.sqrt(p * (1 - p) / np.maximum(n, 1))
    z = np.abs(est - p) / np.where(se > 0, se, np.inf)
    # Multinomial rows: each cell is within ~4.5 standard errors (a few thousand cells, so not 3).
    assert estimated.sum() >= 60  # rows checked
    assert np.nanmax(np.where(estimated, z, 0)) < 4.5
    # Cells whose true probability is 0 are estimated as exactly 0.
    assert np.all(np.where(estimated & (p == 0), est, 0) == 0)
    # And on average the standardised error looks like |N(0, 1)|: mean about 0.8.
    mean_z = z[np.broadcast_to(estimated, z.shape) & (se > 0)].mean()
    assert 0.6 < mean_z < 1.0


def test_broken_estimator_is_caught(truth_and_result):
    """The tolerance above is tight enough to see a 15% bias in one roll rate."""
    truth, result = truth_and_result
    est = result.transition_matrix.copy()
    est[:, :, 0, 1] *= 1.15  # CURRENT -> DPD1+ 15% too high
    n = result.transitions.n_obs[:, :, 0]
    p = truth[:, : est.shape[1], 0, 1]
    z = np.abs(est[:, :, 0, 1] - p) / np.sqrt(p * (1 - p) / np.maximum(n, 1))
    assert z.max() > 4.5
