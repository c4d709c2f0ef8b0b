"""The latent score behind score bands: equal-population bands of a standard normal score z. The synthetic sample
draws its scores from it, and the decision twin's illustrative PD-score link (no score column in the data) uses the
same bands."""

from __future__ import annotations

import numpy as np


def normal_band_edges(n_bands: int) -> np.ndarray:
    """(n_bands + 1,) edges of equal-population bands of a standard normal latent score, -inf .. inf."""
    from scipy.special import ndtri  # 0.3 s to import: only when used

    return ndtri(np.linspace(0.0, 1.0, n_bands + 1))


def normal_band_means(n_bands: int) -> np.ndarray:
    """(n_bands,) E[z | z in band] of the equal-population bands of a standard normal."""
    edges = normal_band_edges(n_bands)
    pdf = np.exp(-0.5 * edges**2) / np.sqrt(2.0 * np.pi)  # the standard normal density; 0 at -inf and inf
    return (pdf[:-1] - pdf[1:]) * n_bands
