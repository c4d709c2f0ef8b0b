"""Shared fixtures: fitted results on small simulated panels (session-scoped: each is built once)."""

from __future__ import annotations

import pandas as pd
import pytest

import pyxl_del
from pyxl_del.datasets.sample import generate_sample, realistic_matrices, simulate_panel

# Segment names a real book has produced or could: "/" and ":" (forbidden in sheet names, and colliding once
# cleaned), Vietnamese, two 40+ character names sharing a prefix, names equal ignoring case, and text that
# Excel would run as a formula if it were written as one.
AWKWARD_SEGMENTS = (
    "Vay tiêu dùng/Xe máy",
    "TW/Moto",
    "TW:Moto",
    "Consumer durables instalment plan - north region",
    "Consumer durables instalment plan - south region",
    "cd",
    "CD",
    '=HYPERLINK("http://example.com","click me")',
    "+cmd|' /C calc'!A0",
    "  cash   loan [promo]? ",
)


def _panel(segments, *, as_of: str, n_cohorts: int, loans: int, max_mob: int, seed: int,
           id_prefix: str) -> pd.DataFrame:
    config = pyxl_del.Config().with_overrides(forecast={"max_mob": max_mob})
    end = int(as_of[:4]) * 12 + int(as_of[5:]) - 1
    first = end - n_cohorts + 1
    cohorts = [f"{(first + i) // 12:04d}-{(first + i) % 12 + 1:02d}" for i in range(n_cohorts)]
    frame = simulate_panel(realistic_matrices(config, segments, max_mob), cohorts=cohorts, as_of=as_of,
                           loans_per_cohort=loans, segments=segments, seed=seed, config=config)
    # Separate calls number their loans alike; a prefix keeps the ids of the parts disjoint.
    frame["AGREEMENT_ID"] = id_prefix + frame["AGREEMENT_ID"]
    return frame


@pytest.fixture(scope="session")
def sample_result() -> pyxl_del.DelResult:
    """The bundled demo panel (3 segments x 30 cohorts, max_mob 36): every segment has the same cut-off."""
    return pyxl_del.run(generate_sample(), pyxl_del.Config())


@pytest.fixture(scope="session")
def mixed_result() -> pyxl_del.DelResult:
    """Two segments whose data ends two months before the third's, so the Portfolio has MIXED cells."""
    parts = [
        _panel(("CASH LOAN", "TW/Moto"), as_of="2025-06", n_cohorts=14, loans=90, max_mob=12, seed=1, id_prefix="a"),
        _panel(("CD",), as_of="2025-04", n_cohorts=12, loans=90, max_mob=12, seed=2, id_prefix="b"),
    ]
    config = pyxl_del.Config().with_overrides(forecast={"max_mob": 12})
    return pyxl_del.run(pd.concat(parts, ignore_index=True), config)


@pytest.fixture(scope="session")
def awkward_result() -> pyxl_del.DelResult:
    """Ten segments with awkward names (see AWKWARD_SEGMENTS), a few loans each, two data cut-offs."""
    half = len(AWKWARD_SEGMENTS) // 2
    parts = [
        _panel(AWKWARD_SEGMENTS[:half], as_of="2025-03", n_cohorts=8, loans=40, max_mob=8, seed=3, id_prefix="a"),
        _panel(AWKWARD_SEGMENTS[half:], as_of="2025-02", n_cohorts=7, loans=40, max_mob=8, seed=4, id_prefix="b"),
    ]
    config = pyxl_del.Config().with_overrides(forecast={"max_mob": 8})
    result = pyxl_del.run(pd.concat(parts, ignore_index=True), config)
    assert set(result.segments) == set(AWKWARD_SEGMENTS)
    return result


@pytest.fixture(scope="session")
def tiny_result() -> pyxl_del.DelResult:
    """One segment, six cohorts, max_mob 4: a workbook that writes in a blink (for file-handling tests)."""
    frame = _panel(("CASH LOAN",), as_of="2025-06", n_cohorts=6, loans=60, max_mob=4, seed=5, id_prefix="t")
    return pyxl_del.run(frame, pyxl_del.Config().with_overrides(forecast={"max_mob": 4}))
