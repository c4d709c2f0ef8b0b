"""The Calibration sheet shows the cohort factors beside the step-wise k when the run has them."""

from __future__ import annotations

import numpy as np
import pytest
from openpyxl import load_workbook

import pyxl_del
from pyxl_del.datasets.sample import generate_sample
from pyxl_del.excel.render import write_report
from pyxl_del.sheets.report import FIXED_SHEETS


def cohort_block(ws) -> tuple[int, int]:
    """(header row, first column) of the cohort factor table."""
    for row in ws.iter_rows(min_row=1, max_row=12):
        for cell in row:
            if cell.value == "Cohort factor":
                return cell.row, cell.column - 2
    raise AssertionError("no cohort factor table")


def read_factors(ws) -> tuple[list, np.ndarray]:
    header, first = cohort_block(ws)
    cohorts, factors, r = [], [], header + 1
    while ws.cell(r, first).value is not None:
        cohorts.append((ws.cell(r, first).value, ws.cell(r, first + 1).value))
        factors.append(ws.cell(r, first + 2).value)
        r += 1
    return cohorts, np.array(factors, dtype=float)


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    panel = generate_sample(loans_per_cohort=60, n_cohorts=8)
    result = pyxl_del.run(panel, pyxl_del.Config().with_overrides(calibration={"cohort_factor": "credibility",
                                                                               "cohort_credibility": 20.0}))
    path = write_report(result, tmp_path_factory.mktemp("cohort") / "book.xlsx")
    return result, path


def test_the_cohort_factors_are_on_the_calibration_sheet(book):
    result, path = book
    ws = load_workbook(path)[FIXED_SHEETS["calibration"]]
    table = result.cohort_factors
    cohorts, factors = read_factors(ws)
    assert cohorts == list(zip(table["segment"], table["cohort"], strict=True))
    assert np.allclose(factors, table["factor"].to_numpy()) and np.ptp(factors) > 0
    assert ws.cell(cohort_block(ws)[0], 1).value == "Segment"  # the k table keeps its place
    assert ws.print_area and ws.page_setup.orientation == "landscape"
    info = load_workbook(path)[FIXED_SHEETS["run_info"]]
    texts = [str(c.value) for row in info.iter_rows() for c in row if c.value is not None]
    assert any("cohort_factor = credibility" in t and "cohort_credibility = 20.0" in t for t in texts)


def test_the_check_fails_on_a_changed_factor(book, tmp_path):
    result, path = book
    wb = load_workbook(path)
    ws = wb[FIXED_SHEETS["calibration"]]
    header, first = cohort_block(ws)
    ws.cell(header + 1, first + 2).value = 9.0
    wb.save(tmp_path / "broken.xlsx")
    _cohorts, factors = read_factors(load_workbook(tmp_path / "broken.xlsx")[FIXED_SHEETS["calibration"]])
    assert not np.allclose(factors, result.cohort_factors["factor"].to_numpy())


def test_no_cohort_table_without_cohort_factors(tmp_path):
    result = pyxl_del.run(generate_sample(loans_per_cohort=40, n_cohorts=6), pyxl_del.Config().as_specified())
    ws = load_workbook(write_report(result, tmp_path / "plain.xlsx"))[FIXED_SHEETS["calibration"]]
    with pytest.raises(AssertionError, match="no cohort factor table"):
        cohort_block(ws)
    assert ws.page_setup.orientation != "landscape"


def test_the_calibration_sheet_states_the_vintages_correlation(tmp_path):
    panel = generate_sample(loans_per_cohort=60, n_cohorts=8)
    result = pyxl_del.run(panel, pyxl_del.Config().with_overrides(calibration={"vintage_correlation": 0.4}))
    assert result.factors.cohort.vintage_correlation == 0.4
    ws = load_workbook(write_report(result, tmp_path / "rho.xlsx"))[FIXED_SHEETS["calibration"]]
    notes = [str(c.value) for row in ws.iter_rows(max_row=cohort_block(ws)[0]) for c in row if c.value is not None]
    assert any("correlate 0.40 ([calibration] vintage_correlation" in t for t in notes), notes
    auto = pyxl_del.run(panel, pyxl_del.Config())
    ws = load_workbook(write_report(auto, tmp_path / "auto.xlsx"))[FIXED_SHEETS["calibration"]]
    notes = [str(c.value) for row in ws.iter_rows(max_row=cohort_block(ws)[0]) for c in row if c.value is not None]
    assert any(f"correlate {auto.factors.cohort.vintage_correlation:.2f} (estimated" in t for t in notes), notes


def read_log_sd(ws) -> list:
    header, first = cohort_block(ws)
    assert ws.cell(header, first + 3).value == "Factor log-sd"
    values, r = [], header + 1
    while ws.cell(r, first).value is not None:
        values.append(ws.cell(r, first + 3).value)
        r += 1
    return values


def test_the_factor_log_sd_sits_beside_the_factor(book, tmp_path):
    # With the credibility model ("auto") each factor's posterior log-sd, as numbers; with a fixed
    # cohort_credibility there is none, and the cells stay empty (not 0, which would read "sure").
    auto = pyxl_del.run(generate_sample(loans_per_cohort=60, n_cohorts=8), pyxl_del.Config())
    ws = load_workbook(write_report(auto, tmp_path / "auto.xlsx"))[FIXED_SHEETS["calibration"]]
    shown = read_log_sd(ws)
    assert np.allclose(np.array(shown, dtype=float), auto.cohort_factors["factor_log_sd"].to_numpy())
    assert min(shown) >= 0 and max(shown) > 0
    notes = [str(c.value) for row in ws.iter_rows(max_row=cohort_block(ws)[0]) for c in row if c.value is not None]
    assert any(t.startswith("Factor log-sd: how unsure") for t in notes), notes
    _result, path = book
    assert set(read_log_sd(load_workbook(path)[FIXED_SHEETS["calibration"]])) == {None}
