"""Applications, as a request and as a file: the `Application` model (the request of the CLI, =DEL_DECIDE and the
HTTP service), and reading and checking an applications file.

Light on purpose (pydantic and the config; pandas only once a file is there to parse; no scipy, no twin):
`pyxl-del decide` reads and checks its applications file with this module alone, so a bad file is reported before
the decision engine is loaded.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NamedTuple

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from pyxl_del.engine.config import CellText, not_a_boolean
from pyxl_del.engine.errors import InputError, agree, counted, reading, shorten

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from pyxl_del.engine.config import Config

# Columns of an applications file: a logical name, else the panel's mapped name ([columns] segment, score, apr).
APPLICATION_COLUMNS = ("application_id", "segment", "score", "amount", "apr")
#: The largest amount applied for that is taken as meant: above it an amount is a typo or a probe (1.7e308 would
#: overflow the expected value). A trillion covers one loan in any currency, dong and rupiah included.
MAX_AMOUNT = 1e12
#: Scores beyond this are not scores (any scale in use is far inside it).
MAX_SCORE = 1e9
SUFFIXES = {".csv": "CSV", ".txt": "CSV", ".gz": "CSV", ".parquet": "Parquet", ".pq": "Parquet"}


Finite = Annotated[float, Field(allow_inf_nan=False), BeforeValidator(not_a_boolean)]


class Application(BaseModel):
    """One application. ``apr`` is the requested APR as a fraction (0.24 for 24%); None: the policy's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    application_id: str | None = Field(None, max_length=128, description="the caller's reference, echoed back")
    segment: CellText = Field(max_length=200, description="segment (product) as in the data, e.g. CASH LOAN")
    score: Finite = Field(ge=-MAX_SCORE, le=MAX_SCORE, description="origination score")
    amount: Finite = Field(gt=0, le=MAX_AMOUNT, description=f"amount applied for, at most {MAX_AMOUNT:.0e}")
    apr: Finite | None = Field(None, gt=0, le=5, description="requested APR as a fraction (0.24 = 24%)")


class Problem(NamedTuple):
    """One bad input: ``index`` of the application (None: the whole input), the field, and why."""

    index: int | None
    field: str
    message: str


class DecisionInputError(InputError):
    """Applications that cannot be decided as given; ``problems`` lists each with its field."""

    def __init__(self, source: str, problems: Sequence[Problem]):
        from pyxl_del.engine.data import MAX_LISTED

        self.source = source
        self.problems = tuple(problems)
        shown = "; ".join(p.message for p in self.problems[:MAX_LISTED])
        more = f" (and {len(self.problems) - MAX_LISTED} more)" if len(self.problems) > MAX_LISTED else ""
        super().__init__(f"{source}: {shown}{more}")


class ApplicationColumns(NamedTuple):
    """A checked table of applications as columns: segment names, score, amount, requested APR (NaN: none) and
    the ids (None: the table has none)."""

    segment: pd.Series
    score: np.ndarray
    amount: np.ndarray
    apr: np.ndarray
    ids: pd.api.extensions.ExtensionArray | None


def repeated_ids(ids: pd.api.extensions.ExtensionArray | None) -> str | None:
    """The warning for application ids that appear more than once (each row is still decided: a re-application is
    possible, but a decisions file joined back on the id would match both); None when all differ."""
    if ids is None:
        return None
    import numpy as np
    import pandas as pd

    from pyxl_del.engine.data import row_numbers

    given = pd.Series(ids).dropna()
    counts = given.value_counts(sort=True)
    repeated = counts[counts > 1]
    if repeated.empty:
        return None
    rows = np.flatnonzero(pd.Series(ids).isin(repeated.index).to_numpy(dtype=bool))
    listed = ", ".join(f"{shorten(str(i), 40)!r} x{n}" for i, n in repeated.head(3).items())
    more = f" and {len(repeated) - 3} more" if len(repeated) > 3 else ""
    return (f"{counted(len(repeated), 'application id')} {agree(len(repeated), 'appears', 'appear')} more than "
            f"once ({listed}{more}; {row_numbers(rows)}): each row is decided, so a decisions file joined back on "
            f"the id matches more than one row")


def read_applications(path: str | Path) -> pd.DataFrame:
    """An applications file (.csv UTF-8, or .parquet) as a DataFrame; segment and id stay text as written ("007"
    is not 7). A missing, empty, ragged, non-UTF-8 or damaged file is an InputError naming it and what to do, and
    so is a CSV with a blank line above its header or between applications (`without_blank_rows`): position k of
    the frame is the file's row k + 2 (the header row 1), as every message numbers it."""
    path = Path(path)
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise InputError(f"{path}: unsupported type of applications file {shorten(path.suffix, 20)!r}: use .csv "
                         f"(UTF-8) or .parquet")
    with reading(path, "applications"):
        with open(path, "rb") as fh:  # a missing, unreadable or empty file is told before the parser is loaded
            head = fh.read(4097)
        if len(head) <= 4096 and not head.strip():
            raise InputError(f"{path} is empty: an applications file needs a header row (segment, score, amount) "
                             f"and a row per application")
        import pandas as pd

        from pyxl_del.engine.data import ONLY_EMPTY_IS_MISSING

        if kind == "Parquet":
            return pd.read_parquet(path)
        if not _first_line(path, head).strip():
            raise DecisionInputError(str(path), [Problem(None, "header", (
                "line 1 is blank: the header row (segment, score, amount, ...) must be the first line, so that rows "
                "are numbered as a spreadsheet numbers them; delete the blank lines above it"))])
        with warnings.catch_warnings():
            # A first row longer than the header would silently become the index, and its values shift columns.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            # Blank lines are kept as empty rows: skipped, every row after one was numbered one too few.
            frame = pd.read_csv(path, dtype={c: "string" for c in ("segment", "application_id")},
                                encoding="utf-8-sig", index_col=False, skip_blank_lines=False, **ONLY_EMPTY_IS_MISSING)
        return without_blank_rows(frame, str(path))


def _first_line(path: Path, head: bytes) -> bytes:
    """The first line of a CSV's text (the byte order mark aside), decompressed for a .gz file."""
    if path.suffix.lower() == ".gz":
        import gzip

        with gzip.open(path, "rb") as fh:
            head = fh.read(4097)
    return head.removeprefix(b"\xef\xbb\xbf").split(b"\n", 1)[0]


def blank_rows(frame: pd.DataFrame) -> np.ndarray:
    """(n,) bool: the rows whose every cell is empty or blanks (a blank line, or Excel's ",,," of a cleared row).
    One column at a time, numbers first (empty is NaN alone), each over the rows still blank: a Python loop over
    the few columns, never the rows."""
    import numpy as np
    import pandas as pd

    blank = np.ones(len(frame), dtype=bool)
    numeric = [pd.api.types.is_numeric_dtype(dtype) for dtype in frame.dtypes]
    for j in sorted(range(frame.shape[1]), key=lambda j: not numeric[j]):
        rows = np.flatnonzero(blank)
        if not len(rows):
            break
        values = frame.iloc[rows, j]
        empty = values.isna() if numeric[j] else values.astype("string").str.strip().fillna("").eq("")
        blank[rows] = empty.to_numpy(dtype=bool)
    return blank


def without_blank_rows(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """``frame`` without the blank rows after its last application (a text editor's last empty line, rows cleared
    in Excel: nothing follows them to shift). A blank row between applications is a DecisionInputError naming it:
    skipped, the decisions file's row k would no longer be the application on the file's row k + 1, and every
    message after it would name the wrong row; decided, it would be a row of errors for no application."""
    import numpy as np

    from pyxl_del.engine.data import row_numbers

    blank = blank_rows(frame)
    if not blank.any():
        return frame
    filled = np.flatnonzero(~blank)
    end = int(filled[-1]) + 1 if len(filled) else 0
    between = np.flatnonzero(blank[:end])
    if len(between):
        n = len(between)
        raise DecisionInputError(source, [Problem(int(between[0]), "row", (
            f"{row_numbers(between)} {agree(n, 'is', 'are')} blank, between applications: delete "
            f"{agree(n, 'it', 'them')} (each row after the header is an application, and decision k of the decisions "
            f"file is the application on row k + 1)"))])
    return frame.iloc[:end]


def _number_or_text(value):
    """A cell of an object column as to_numeric may read it: numbers and text as they are, anything else (True, a
    list, a mapping) as its text, which is no number."""
    if value is None or (isinstance(value, (int, float, str)) and not isinstance(value, bool)):
        return value
    return str(value)


def application_columns(frame: pd.DataFrame, config: Config, source: str = "applications") -> ApplicationColumns:
    """The columns of an applications table, every problem reported at once (rows as a spreadsheet numbers
    them). Columns are found by their logical name (or its upper case) or the panel's mapped name."""
    import numpy as np
    import pandas as pd

    from pyxl_del.engine.data import row_numbers

    names = [str(c) for c in frame.columns]

    def column(key: str) -> str | None:
        mapped = config[key] if key in ("segment", "score", "apr") else None
        for name in (key, key.upper(), mapped):
            if name is not None and name in names:
                return frame.columns[names.index(name)]
        return None

    problems: list[Problem] = []
    found = {k: column(k) for k in APPLICATION_COLUMNS}
    listed = shorten(", ".join(names[:20]), 200)
    if len(names) == 1 and any(sep in names[0] for sep in (";", "\t")):
        raise DecisionInputError(source, [Problem(None, "file", f"the values are separated by ';' or tabs (header: "
                                                                f"{listed}): save it as CSV UTF-8, with commas")])
    for key in ("segment", "score", "amount"):
        if found[key] is None:
            also = f" or {config[key]!r}" if key in ("segment", "score") else ""
            problems.append(Problem(None, key, f"missing column {key!r}{also} (columns: {listed})"))
    if problems:
        raise DecisionInputError(source, problems)
    if len(frame) == 0:
        raise DecisionInputError(source, [Problem(None, "applications", "no applications (the table is empty)")])

    def numbers(key: str) -> tuple[np.ndarray, np.ndarray, str]:
        """The column as floats (NaN where empty), where it holds a value that is no number (text such as '30%',
        true / false, a list from a Parquet file: never taken as empty) and what it holds there."""
        values = frame[found[key]]
        if pd.api.types.is_bool_dtype(values.dtype) or values.dtype == object:
            values = values.astype(object).map(_number_or_text)
        parsed = pd.to_numeric(values, errors="coerce")
        text = values.astype("string").str.strip()
        bad = (parsed.isna() & text.fillna("").ne("")).to_numpy(dtype=bool)
        shown = shorten(", ".join(repr(v) for v in pd.unique(text[bad])[:3]), 80)
        hint = "; an APR is a fraction: 0.3 for 30%" if key == "apr" else ""
        return parsed.to_numpy(dtype=np.float64, na_value=np.nan), bad, f"holds {shown} (not a number{hint})"

    seg = frame[found["segment"]].astype("string")
    empty = (seg.str.strip().fillna("") == "").to_numpy(dtype=bool)
    (score, not_score, score_text), (amount, not_amount, amount_text) = numbers("score"), numbers("amount")
    no_apr = np.full(len(frame), np.nan), np.zeros(len(frame), dtype=bool), ""
    apr, not_apr, apr_text = numbers("apr") if found["apr"] is not None else no_apr
    finite_score, positive_amount = np.isfinite(score), (amount > 0) & np.isfinite(amount)
    checks = [
        ("segment", empty, "is empty"),
        ("score", not_score, score_text),
        ("score", ~finite_score & ~not_score, "is empty or not a number"),
        ("score", finite_score & (np.abs(score) > MAX_SCORE), f"is beyond ±{MAX_SCORE:.0e}, not a score"),
        ("amount", not_amount, amount_text),
        ("amount", ~positive_amount & ~not_amount, "must be a number > 0"),
        ("amount", positive_amount & (amount > MAX_AMOUNT),
         f"is over {MAX_AMOUNT:.0e}, the largest amount taken as meant (a typo?)"),
        ("apr", not_apr, apr_text),
        ("apr", ~np.isnan(apr) & ~((apr > 0) & (apr <= 5)), "must be a fraction in (0, 5] (0.24 = 24%) or empty"),
    ]
    for key, bad, what in checks:
        if bad.any():
            where = row_numbers(np.flatnonzero(bad))
            problems.append(Problem(int(np.argmax(bad)), key, f"column {shorten(found[key], 60)!r} {what} in {where}"))
    if problems:
        raise DecisionInputError(source, problems)
    ids = frame[found["application_id"]].astype("string").array if found["application_id"] is not None else None
    return ApplicationColumns(seg, score, amount, apr, ids)
