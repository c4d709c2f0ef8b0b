"""Fannie Mae's Single-Family Loan Performance Data -> a pyxl_del panel (cleaning: loan_performance.py).

Two layouts, told apart by each file's first line:
- combined (acquisitions from 2000 in the current release): one pipe-delimited file per quarter, 108 fields, each
  line starting with '|' (field 0 empty);
- older: `Performance_YYYYQn.txt` (period MM/DD/YYYY in field 1) with `Acquisition_YYYYQn.txt` (the loans' static
  fields), no leading empty field; the two are joined on the loan id.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pandas as pd

from pyxl_del.datasets.layouts import (
    FANNIE_ACQUISITION,
    FANNIE_COMBINED,
    FANNIE_PERFORMANCE,
    fannie_layout,
    freddie_layout,
)
from pyxl_del.datasets.loan_performance import (
    ImportSummary,
    LoanFileError,
    concat,
    field_count,
    first_line,
    iter_fields,
    joined,
    month_from,
    read_by_loan,
    read_fields,
)

PURPOSES = {"P": "PURCHASE", "C": "CASH-OUT REFI", "R": "NO-CASH-OUT REFI", "U": "UNKNOWN"}

def layout_of(path: Path) -> str:
    """"combined", "performance" or "acquisition", from the file's first line."""
    fields = first_line(path)
    if (layout := fannie_layout(fields)) is not None:
        return layout
    hint = ". It is a Freddie Mac loan-level file: read it with `pyxl-del import freddie`" \
        if freddie_layout(fields) is not None else ""
    raise LoanFileError(f"{path}: not a Fannie Mae loan performance file: its first line has {field_count(path)} "
                        f"'|'-separated fields; expected the combined layout (108 fields, starting with '|'), a "
                        f"Performance file (period MM/DD/YYYY in field 2) or an Acquisition file{hint}")


def _layouts(sources: Sequence[str | Path]) -> dict[str, list[Path]]:
    by_layout: dict[str, list[Path]] = {"combined": [], "performance": [], "acquisition": []}
    for source in map(Path, sources):
        if not source.is_file():
            raise LoanFileError(f"{source}: file not found")
        by_layout[layout_of(source)].append(source)
    if by_layout["performance"] and not by_layout["acquisition"]:
        names = ", ".join(p.name for p in by_layout["performance"])
        raise LoanFileError(f"{names}: a Performance file needs its Acquisition file (Acquisition_YYYYQn.txt, the "
                            f"loans' original balance and purpose): give both")
    if by_layout["acquisition"] and not by_layout["performance"]:
        names = ", ".join(p.name for p in by_layout["acquisition"])
        raise LoanFileError(f"{names}: an Acquisition file alone has no monthly rows: give its Performance file too")
    return by_layout


def raw_blocks(sources: Sequence[str | Path]) -> Iterator[pd.DataFrame]:
    """The files' rows as the shared raw frame (loan_performance.RAW_FIELDS), block by block as they are read."""
    by_layout = _layouts(sources)
    for path in by_layout["combined"]:
        for raw in iter_fields(path, FANNIE_COMBINED, what="a Fannie Mae combined-layout file"):
            raw["period"] = month_from(raw["period"], "MMYYYY")
            raw["orig_month"] = month_from(raw["orig_month"], "MMYYYY")
            yield raw
    if not by_layout["performance"]:
        return
    acq = concat([read_fields(p, FANNIE_ACQUISITION, what="a Fannie Mae Acquisition file")
                  for p in by_layout["acquisition"]]).drop_duplicates("loan", keep="last")
    acq["orig_month"] = month_from(acq["orig_month"], "MM/YYYY")
    monthly = (perf.assign(period=month_from(perf["period"], "MM/DD/YYYY"))
               for path in by_layout["performance"]
               for perf in iter_fields(path, FANNIE_PERFORMANCE, what="a Fannie Mae Performance file"))
    yield from joined(monthly, acq, names=("Performance", "Acquisition"))


def read_fannie(sources: Sequence[str | Path], columns: Mapping[str, str], *, cohort_by: str = "first_report",
                segment_by: str = "purpose") -> tuple[pd.DataFrame, ImportSummary]:
    """Fannie Mae loan performance files (either layout, several quarters) -> (panel, summary), cleaned in batches
    of whole loans (`loan_performance.read_by_loan`)."""
    return read_by_loan(raw_blocks, sources, columns, purposes=PURPOSES, cohort_by=cohort_by, segment_by=segment_by)
