"""The agencies' loan-level file layouts: the 0-based positions of the fields the readers use, and how a file's first
line tells its layout. Both readers (fannie.py, freddie.py) read them here, so each can tell a file of the other
agency's when it is given one."""

from __future__ import annotations

import re

# Fannie Mae. Combined layout (acquisitions from 2000 in the current release): field 0 is empty.
FANNIE_COMBINED = {"loan": 1, "period": 2, "rate": 7, "orig_upb": 9, "upb": 11, "orig_month": 13, "purpose": 26,
                   "dlq": 39, "zb": 43, "removal": 45}
FANNIE_COMBINED_MIN_FIELDS = 100
# Older release: a Performance file and an Acquisition file per quarter.
FANNIE_PERFORMANCE = {"loan": 0, "period": 1, "upb": 4, "dlq": 10, "zb": 12}
FANNIE_ACQUISITION = {"loan": 0, "rate": 3, "orig_upb": 4, "orig_month": 6, "purpose": 14}

# Freddie Mac (General User Guide, "File Layout & Data Dictionary"): an origination file and a monthly performance
# file per quarter.
FREDDIE_ORIGINATION = {"first_payment": 1, "orig_upb": 10, "rate": 12, "loan": 19, "purpose": 20}
FREDDIE_PERFORMANCE = {"loan": 0, "period": 1, "upb": 2, "dlq": 3, "zb": 8}


def is_date(text: str, pattern: str) -> bool:
    return re.fullmatch(pattern, text.strip()) is not None


def fannie_layout(fields: list[str]) -> str | None:
    """"combined", "performance" or "acquisition" for a first line of these fields; None if it is none of them."""
    if len(fields) >= FANNIE_COMBINED_MIN_FIELDS and fields[0] == "":
        return "combined"
    if len(fields) > max(FANNIE_PERFORMANCE.values()) and is_date(fields[1], r"\d{2}/\d{2}/\d{4}"):
        return "performance"
    if len(fields) > max(FANNIE_ACQUISITION.values()) and is_date(fields[FANNIE_ACQUISITION["orig_month"]],
                                                                    r"\d{2}/\d{4}"):
        return "acquisition"
    return None


def is_freddie_loan(text: str) -> bool:
    """Freddie's loan sequence number: a letter then digits (F17Q10000001)."""
    return re.fullmatch(r"[A-Za-z]\w+", text.strip()) is not None


def freddie_layout(fields: list[str]) -> str | None:
    """"performance": a loan sequence number in field 0 and a YYYYMM period in field 1; "origination": a YYYYMM first
    payment date in field 1 and the loan sequence number in field 19; else None."""
    if len(fields) > max(FREDDIE_PERFORMANCE.values()) and is_date(fields[1], r"\d{6}") and is_freddie_loan(fields[0]):
        return "performance"
    if len(fields) > max(FREDDIE_ORIGINATION.values()) and is_date(fields[1], r"\d{6}") \
            and is_freddie_loan(fields[FREDDIE_ORIGINATION["loan"]]):
        return "origination"
    return None
