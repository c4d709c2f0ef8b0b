"""Freddie Mac's Single-Family Loan-Level Dataset -> a pyxl_del panel (cleaning: loan_performance.py).

Per quarter, two pipe-delimited files without a header: the origination file (`historical_data_YYYYQn.txt`, one row
per loan) and the monthly performance file (`historical_data_time_YYYYQn.txt`), joined on the loan sequence number.
They are told apart by field 0: the performance file starts with the loan sequence number (a letter then digits,
e.g. F17Q10000001), the origination file with the credit score.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pandas as pd

from pyxl_del.datasets.layouts import (
    FREDDIE_ORIGINATION,
    FREDDIE_PERFORMANCE,
    fannie_layout,
    freddie_layout,
)
from pyxl_del.datasets.loan_performance import (
    ImportSummary,
    LoanFileError,
    concat,
    first_line,
    iter_fields,
    joined,
    month_from,
    read_by_loan,
    read_fields,
)

# Freddie's loan purpose: P purchase, C cash-out refinance, N no-cash-out refinance, R refinance not specified,
# 9 not available.
PURPOSES = {"P": "PURCHASE", "C": "CASH-OUT REFI", "N": "NO-CASH-OUT REFI", "R": "REFI (NOT SPECIFIED)",
            "9": "UNKNOWN"}
# Freddie gives the first payment date, not the origination date: a US mortgage's first payment falls due on the
# first day of the second month after closing (Fannie's own files: originated 12/2016, first payment 02/2017).
FIRST_PAYMENT_LAG = 2


def layout_of(path: Path) -> str:
    """"performance" or "origination", from the file's first line."""
    fields = first_line(path)
    if (layout := freddie_layout(fields)) is not None:
        return layout
    hint = ". It is a Fannie Mae loan performance file: read it with `pyxl-del import fannie`" \
        if fannie_layout(fields) is not None else ""
    raise LoanFileError(f"{path}: not a Freddie Mac loan-level file: its first line has {len(fields)} '|'-separated "
                        f"fields; expected an origination file (32 or more, the first payment date YYYYMM in field "
                        f"2) or a monthly performance file (the loan sequence number, then the period YYYYMM){hint}")


def raw_blocks(sources: Sequence[str | Path]) -> Iterator[pd.DataFrame]:
    """The performance files' rows joined to their loans' origination rows, as the shared raw frame
    (loan_performance.RAW_FIELDS), block by block as they are read."""
    by_layout: dict[str, list[Path]] = {"origination": [], "performance": []}
    for source in map(Path, sources):
        if not source.is_file():
            raise LoanFileError(f"{source}: file not found")
        by_layout[layout_of(source)].append(source)
    if not by_layout["performance"] or not by_layout["origination"]:
        missing = "monthly performance" if not by_layout["performance"] else "origination"
        raise LoanFileError(f"Freddie Mac data need both files of a quarter: no {missing} file among "
                            f"{', '.join(Path(s).name for s in sources)}")
    orig = concat([read_fields(p, FREDDIE_ORIGINATION, what="a Freddie Mac origination file")
                   for p in by_layout["origination"]]).drop_duplicates("loan", keep="last")
    orig["orig_month"] = month_from(orig.pop("first_payment"), "YYYYMM") - FIRST_PAYMENT_LAG
    # Freddie reports the current UPB as 0 from the zero-balance month (the UPB at removal is not read).
    monthly = (perf.assign(period=month_from(perf["period"], "YYYYMM"))
               for path in by_layout["performance"]
               for perf in iter_fields(path, FREDDIE_PERFORMANCE, what="a Freddie Mac monthly performance file"))
    yield from joined(monthly, orig, names=("performance", "origination"))


def read_freddie(sources: Sequence[str | Path], columns: Mapping[str, str], *, cohort_by: str = "first_report",
                 segment_by: str = "purpose") -> tuple[pd.DataFrame, ImportSummary]:
    """Freddie Mac origination + monthly performance files (several quarters) -> (panel, summary), cleaned in
    batches of whole loans (`loan_performance.read_by_loan`)."""
    return read_by_loan(raw_blocks, sources, columns, purposes=PURPOSES, cohort_by=cohort_by, segment_by=segment_by)
