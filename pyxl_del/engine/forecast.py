"""Stage 4 — forecast: roll every cohort forward from its last actual EAD distribution.

v[m+1] = actual EAD at m+1 where the cohort has rows there, else v[m] @ P[m]. So a cohort with data up to L
continues from its actual state at L, and a missing month inside its history is bridged from the month before.
With cohort factors (vintage quality) each cohort rolls through its own chain, the segment's scaled by its factor.
"""

from __future__ import annotations

import numpy as np

from pyxl_del.engine.calibration import CohortFactors
from pyxl_del.engine.data import PanelStats


def forecast_ead(stats: PanelStats, transition_matrix: np.ndarray, cohort: CohortFactors | None = None
                 ) -> np.ndarray:
    """EAD by state (S, C, M+1, K): actual where observed, forecast elsewhere. Loops over MOB only.

    ``transition_matrix``: (S, M, K, K) per segment, or (S, C, M, K, K) per cohort; ``cohort``: factors that scale
    the segment's matrices per cohort (`CohortFactors.scale`)."""
    observed = stats.observed
    path = np.where(observed[..., None], stats.ead, 0.0)
    per_cohort = transition_matrix.ndim == 5
    for m in range(stats.max_mob):
        if not per_cohort and cohort is None:
            rolled = np.einsum("sck,skj->scj", path[:, :, m, :], transition_matrix[:, m])
        else:
            step = transition_matrix[:, :, m] if per_cohort else transition_matrix[:, None, m]  # (S, C or 1, K, K)
            step = step if cohort is None else cohort.scale(step)
            rolled = np.einsum("sck,sckj->scj", path[:, :, m, :], np.broadcast_to(step, path.shape[:2] + step.shape[-2:]))
        path[:, :, m + 1, :] = np.where(observed[:, :, m + 1, None], path[:, :, m + 1, :], rolled)
    return path
