"""Stage 1 — data: read a loan-month panel, validate it, and aggregate it to sufficient statistics.

Everything after this stage works on small arrays (segment x cohort x MOB x state, segment x MOB x state x
state), so this is where the size of the book is paid for. The pandas path here is fully vectorised: one
sort by (loan, mob), then bincounts.
"""

from __future__ import annotations

import csv
import datetime
import gzip
import hashlib
import json
import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pyxl_del.engine.config import EAD_LIMIT, LOGICAL_COLUMNS, PANEL_MAX_MOB, Config
from pyxl_del.engine.errors import (
    FRAME_SOURCE,
    PanelError,
    agree,
    closest_name,
    counted,
    read_advice,
    shorten,
    utf8_problem,
)
from pyxl_del.engine.panel_sql import DECIMAL_COMMA, THOUSANDS_MARKS, TIME_SUFFIX

log = logging.getLogger(__name__)

PORTFOLIO = "Portfolio"
MAX_LISTED = 10  # rows or values quoted in one error message
MAX_EXAMPLES = 3  # values quoted "such as" before a message's advice: a cell shows its first 255 characters

# The wording of every input finding, shared by all backends (backends.py) so a rule reads the same whichever
# engine checked it. `where` locates the rows: spreadsheet row numbers here, loan and MOB examples from SQL
# (a glob of Parquet parts has no row numbers).
MESSAGES = {
    "empty_panel": "the panel is empty (no data rows)",
    "empty": "column {column!r} ([columns] {key}) is empty in {where}",
    "cohort": "column {column!r} ([columns] cohort): {values} {are} not a month (e.g. {labels}; expected "
              "'2023-01', a date or a period, or text in the one format of [columns] cohort_format, e.g. \"%b-%y\" "
              "for 'Jul-23') in {where}",
    "cohort_ambiguous": "column {column!r} ([columns] cohort): {values} such as {labels} could be day-first or "
                        "month-first, and a date is never guessed: write ISO dates ('2023-07-05' or '2023-07') or "
                        "declare the column's one format in [columns] cohort_format (e.g. \"%d/%m/%Y\"); in {where}",
    "cohort_year": "column {column!r} ([columns] cohort): {values} such as {labels} {are} a year without a month. A "
                   "cohort is a month, and each row's reporting month is the cohort's plus its MOB, so a year is not "
                   "read as its January (that would move loans disbursed later in the year by up to 11 months): give "
                   "the month of disbursal ('2023-07', 202307 or a date); in {where}",
    "cohort_month_year": "column {column!r} ([columns] cohort): {values} such as {labels} {are} month/year: set "
                         "[columns] cohort_format = {fmt!r} to read them so on every backend; in {where}",
    "cohort_serial": "column {column!r} ([columns] cohort): {values} such as {labels} {are} not a month but look "
                     "like Excel's day numbers ({example}): the column was saved from a cell formatted as a number; "
                     "format it as dates, or as text such as '2023-07', before saving; in {where}",
    "cohort_format": "column {column!r} ([columns] cohort): {values} {do} not match [columns] cohort_format "
                     "{fmt!r} (e.g. {labels}) in {where}",
    "mob": "column {column!r} ([columns] mob) must be a whole number from 0 to " + str(PANEL_MAX_MOB)
           + "; not so in {where}",
    "mob_months": "column {column!r} ([columns] mob) holds calendar months such as {labels}, not months on book: "
                  "MOB counts the months since the cohort's month (0 in it), the reporting month minus the cohort "
                  "month; add such a column (in Excel =DATEDIF(cohort, month, \"m\") on first days of months) and "
                  "map it; in {where}",
    "reserved": "segment name {name!r} is reserved for the portfolio aggregate (in any letter case); rename it in "
                "column {column!r}",
    "blank_segment": "column {column!r} ([columns] segment) names {names} with spaces only: give those loans a "
                     "segment",
    "alike_segments": "segments whose names differ only in spaces, letter case or Unicode form are kept apart: "
                      "{pairs}; if they are one product, write its name one way in column {column!r}",
    "segment_per_loan": "column {column!r} ([columns] segment): {single} of its {segments} {hold} a single loan "
                        "(e.g. {examples}): a segment is a product or a risk group whose loans share one chain, and "
                        "each of these would be forecast from its one loan, on sheets of its own. Is [columns] "
                        "segment mapped to a loan-level column (an id, a date, an amount)? Map it to the product or "
                        "risk-group column",
    "no_moves": "no loan is observed at two consecutive MOBs in a live state, so no transition can be estimated "
                "(of {rows}): the chain learns from each loan's rows month after month, and a snapshot of one "
                "month holds one row per loan; give the panel each loan's history",
    "no_mob0_at_all": "no cohort has a MOB 0 row, so no DEL can be computed (DEL divides by a cohort's EAD at MOB "
                      "0): [columns] mob {column!r} must count from 0 in the cohort's month; if it counts from 1, "
                      "subtract 1",
    "future_rows": "{cells} {reports} rows after this month ({today}), up to {last}: {listed}; data cannot report a "
                   "month yet to come, so check the cohort column [columns] cohort {column!r} (a year typed wrong) "
                   "or the MOB column: the report's as-of month is the data's last",
    "absorbing_exits": "{moves} out of an absorbing state ({pairs}): the chain keeps [buckets] absorbing states for "
                       "ever, while the DEL tables count each loan in the state reported; e.g. {listed}",
    "state": "column {column!r} ([columns] state) has labels not in [buckets] order {order}: {labels} in {where}",
    "ead_nan": "column {column!r} ([columns] ead) is empty or not a number in {where}",
    "ead_values": "; values such as {labels}",
    "decimal_comma": "column {column!r} ([columns] ead) holds numbers written with a decimal comma or thousands "
                     "separators, as a Vietnamese or German Excel saves them ({labels}): write the balances with a "
                     "decimal point and no separators (1234567.5){or_set}; not a number in {where}",
    "thousands": "column {column!r} ([columns] ead) holds numbers written with thousands separators ({labels}): write "
                 "the balances without them (1234567.5); not a number in {where}",
    "ead_comma": "column {column!r} ([columns] ead) is not a number as [columns] decimal = \",\" reads them (a "
                 "decimal comma, a point or a space between thousands: 1.234.567,5): values such as {labels} in "
                 "{where}",
    "ead_negative": "column {column!r} ([columns] ead) is negative in {where}",
    "ead_huge": "column {column!r} ([columns] ead) is above " + f"{EAD_LIMIT:.0e}".replace("+", "") + " (a thousand trillion), not a "
                "loan's balance, in {where}: is it the right column, or a misread value?",
    "ead_all_zero": "column {column!r} ([columns] ead) is 0 on every row: no DEL can be computed; is it mapped to "
                    "the outstanding balance?",
    "ead_far": "{cells} {have} an EAD per loan more than {spread} times the panel's typical {typical:,.0f} "
               "(a misread balance moves every DEL cell of its cohort): {listed}; check the rows",
    "zero_mob0": "{cohorts} {have} MOB 0 rows whose EAD sums to 0: no denominator for DEL, so left out of the "
                 "DEL tables (the transitions still count): {listed}",
    "duplicates": "{rows} ([columns] loan_id {loan!r}, mob {mob!r}): {where}",
    "changes": "{loans} {change} {key} (column {column!r}) between months, e.g. {examples}: a loan keeps the {key} "
               "of its first month on every row (a refinanced or switched loan is a new loan id)",
    "gaps": "{gaps} in loans' MOB sequences ({loans}, e.g. {examples}); no transition is counted "
            "across a gap",
    "beyond": "{rows} beyond [forecast] max_mob = {max_mob} {are} not used for the transitions and DEL tables "
              "(the risk views read the book at the reporting date from such rows)",
    "no_mob0": "{cohorts} {have} no MOB 0 row: no denominator for DEL, so left out of the DEL tables (the "
               "transitions still count): {listed}",
    "late_start": "{loans} first {appear} after MOB 0 in {cells} that {have} MOB 0 rows (e.g. {examples}): their "
                  "balances count in the DEL from that MOB on, but the DEL divides by the EAD at MOB 0 without "
                  "them, so a cohort's DEL can read high by up to their balance over its MOB 0 balance, "
                  "{share:.1%} at most ({worst}); give such a loan the cohort of its first reported month, or "
                  "its rows from MOB 0",
}
GAP_EXAMPLES = 5  # loans named in the gap warning
# Text dates with the day and month both as numbers before the year: 05/07/2023 is May 7 or July 5.
AMBIGUOUS_DATE = re.compile(r"^\s*[0-9]{1,2}[-/.][0-9]{1,2}[-/.][0-9]{2,4}(?:[ T].*)?$")
FULL_YEAR = r"(?<!\d)(\d{4})(?!\d)"  # a year written with its four digits ("Jul 2023", not "Jul-23")
YEAR_ONLY = re.compile(r"^\s*[0-9]{4}(?:[.]0+)?\s*$")  # "2023" or the number 2023(.0): a year, not a month
# A calendar month as a reporting-month column writes it: 2023-07, 2023/7, 2023-07-01 ..., 202307, 20230701.
CALENDAR_MONTH = re.compile(r"^\s*(?:19|20)[0-9]{2}(?:[-/.](?:0?[1-9]|1[0-2])(?![0-9])|(?:0[1-9]|1[0-2])(?:[0-9]{2})?"
                            r"(?:[.]0+)?\s*$)")
MONTH_YEAR = re.compile(r"^\s*(?:0?[1-9]|1[0-2])([-/.])(?:19|20)[0-9]{2}\s*$")  # 07/2023, 7-2023: month/year
EXCEL_DAY = re.compile(r"^\s*([0-9]{5})(?:[.]0+)?\s*$")  # 45123: Excel's day 45123 is 2023-07-16
EXCEL_DAYS = (20_000, 80_000)  # the day numbers of 1954-10 .. 2119-01: a loan's dates, not a YYYYMM misread
EXCEL_EPOCH = pd.Timestamp("1899-12-30")  # Excel's day 0 (day 60, 1900-02-29, that never was, is long past)
DAYS = re.compile(r"^\s*[0-9]+(?:[.]0+)?\s*$")  # a state of 0, 35 or 35.0: days past due
MIN_SEGMENTS_CHECKED = 20  # from this many segments, half of them with one loan each is a wrongly mapped column
EAD_SPREAD = 1e4  # a cell's EAD per loan this many times the panel's median cell is named in a warning
CSV_DELIMITERS = ",;\t|"  # a comma first: it wins a tie
LABEL_CHARS = 40  # characters of a bad value a message quotes
TEXT_COLUMNS = ("loan_id", "cohort", "segment", "state")  # read as text from files: "007" is not 7
HEADER_BYTES = 1 << 20  # a CSV header line longer than this is not a header (a one-line file, a wrong delimiter)


# ---------------------------------------------------------------------------------------------- reading

# Only an empty cell is missing: pandas would also read "NA", "N/A", "None" or "null" as missing, and a product, a
# country or a loan purpose can be called that (DuckDB and Spark keep them).
ONLY_EMPTY_IS_MISSING = {"keep_default_na": False, "na_values": [""]}


def read_panel(source, config: Config, *, sheet: str | int | None = None,
               optional: Sequence[str] = ()) -> tuple[pd.DataFrame, str]:
    """Read a panel from a DataFrame, a CSV, a Parquet file or an .xlsx sheet; returns (frame, source name).

    Only the mapped columns are loaded, and the ``optional`` columns (names) the data has (a decision panel's score
    and APR: read as the panel is, its delimiter, title lines and sheet; text from a CSV). A missing mapped column
    is an error naming the config key.
    """
    wanted = [config[k] for k in LOGICAL_COLUMNS]
    optional = [c for c in dict.fromkeys(optional) if c not in wanted]
    if isinstance(source, pd.DataFrame):
        _require_columns(source.columns, config, FRAME_SOURCE)
        return source[wanted + _optional_present(optional, source.columns, config, FRAME_SOURCE)], FRAME_SOURCE
    path = Path(source)
    name = str(path)
    if path.is_dir():  # "file not found" for a folder that is there sent the user looking for a typo
        raise PanelError(name, [f"is a folder: this reads one file (`report` reads a folder of parts); join the "
                                f"parts into one, e.g. with DuckDB's COPY (SELECT * FROM '{path}/*.parquet') TO "
                                f"'panel.parquet'"])
    if not path.is_file():
        raise PanelError(name, [f"file not found: {path}"])
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".txt", ".gz"):
            fields, delimiter = split_header(header_line(path))
            skip = 0
            if not set(wanted) <= set(fields) and (found := _csv_header(path, wanted)):
                skip, fields, delimiter = found  # a title above the table, as DuckDB's sniffer skips it
                if skip:
                    log.info("%s: the mapped columns' header is line %d; the lines above are a title", name, skip + 1)
            _require_columns(fields, config, name)
            # Text dtypes for the label columns so "007" loan ids and "2023-01" cohorts survive as written; MOB and
            # EAD as text too, made numbers by `column_numbers` (as from any source): with some columns typed,
            # pandas' pyarrow reader fails on an integer column with an empty cell ("cannot convert NA to integer"),
            # as a "Total" row at the end of an Excel export has.
            extra = _optional_present(optional, fields, config, name)
            dtypes = {config[k]: "string" for k in (*TEXT_COLUMNS, "mob", "ead")} | dict.fromkeys(extra, "string")
            read = partial(pd.read_csv, path, usecols=wanted + extra, dtype=dtypes, encoding="utf-8", sep=delimiter,
                           skiprows=skip, **ONLY_EMPTY_IS_MISSING)
            import pyarrow as pa

            try:
                frame = read(engine="pyarrow")
            except (pa.ArrowInvalid, pd.errors.ParserError) as exc:
                # pyarrow's reader splits the file at every line end, inside quotes too: a quoted field holding a
                # line break (a note typed with Alt+Enter in Excel), which DuckDB and Spark read, failed here as
                # "Expected 7 columns, got 5", or, past its first block of a file, "out of sync with chunker"
                # (which pandas 3 raises as its ParserError). pandas' own reader follows the quotes, more slowly.
                if not any(text in str(exc) for text in ("CSV parse error", "out of sync with chunker")):
                    raise
                frame = read(engine="c")
            first = frame.columns[0]
            frame.columns = [c.removeprefix("\ufeff") if c == first else c for c in frame.columns]
            frame.attrs[FIRST_ROW] = skip + 2
        elif suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            present = pq.read_schema(path).names if optional else []
            frame = _read_parquet(path, wanted + _optional_present(optional, present, config, name), config, name)
        elif suffix in (".xlsx", ".xlsm"):
            # Text cells stay text ("007" and "7" are two products); not the cohort, whose real date cells
            # must stay dates.
            labels = {config[k]: "string" for k in TEXT_COLUMNS if k != "cohort"}
            # Number cells as they are: pandas would read a TRUE among numbers as 1 (`column_numbers` refuses it).
            numbers = {config[k]: object for k in ("mob", "ead")}
            if isinstance(sheet, str):
                sheet = sheet_named(path, sheet)
            read = partial(pd.read_excel, path, sheet_name=sheet if sheet is not None else 0, engine="openpyxl",
                           dtype=labels | numbers, **ONLY_EMPTY_IS_MISSING)
            frame = read()
            label = f"{name} [sheet {sheet if sheet is not None else 1}]"
            if not set(wanted) <= set(map(str, frame.columns)) and (row := _header_row(read, wanted)):
                log.info("%s: the mapped columns' header is row %d; the %d rows above it are a title", label,
                         row + 1, row)
                frame = read(header=row)
                frame.attrs[FIRST_ROW] = row + 2
            if sheet is None:
                _require_columns_on_first_sheet(path, frame.columns, config, label)
            # pandas renames a repeated header "X" to "X.1": the duplicates check sees the names as written.
            written = [re.sub(r"\.\d+$", "", c) if re.sub(r"\.\d+$", "", c) in frame.columns else c
                       for c in map(str, frame.columns)]
            _require_columns(written, config, label)
            frame = frame[wanted + _optional_present(optional, frame.columns, config, label)]
        else:
            raise PanelError(name, [f"unsupported file type {suffix!r}: use .csv, .parquet or .xlsx"])
    except PanelError:
        raise
    except Exception as exc:
        # A damaged zip, an encoding, a ragged CSV: a sentence. A CSV reader fails on a block, as a UnicodeError
        # or its own "invalid UTF8": the file is read again to the first bad byte, if any, to name its line.
        csv_text = suffix in (".csv", ".txt", ".gz")
        advice = (encoding_problem(path) if csv_text else None) or read_advice(exc, path, "panel")
        if advice is None:
            raise
        raise PanelError(name, [advice]) from exc
    return frame, path.name


def _open_csv(path: Path):
    """A CSV file's bytes, gunzipped if it is a .gz."""
    return gzip.open(path, "rb") if path.suffix.lower() == ".gz" else open(path, "rb")


def encoding_problem(path: Path) -> str | None:
    """The sentence for a CSV that is not UTF-8 (UTF-16, Latin-1, ...), naming the line of its first bad byte;
    None when it is UTF-8 or cannot be read (the reader's own error then stands). Reads up to that byte."""
    try:
        with _open_csv(path) as fh:
            return utf8_problem(fh, path)
    except (OSError, EOFError):  # gone, unreadable, or a damaged .gz
        return None


def header_fields(path: Path) -> list[str]:
    """The column names on a CSV's first line, as written (duplicates kept: readers rename them)."""
    return split_header(header_line(path))[0]


def split_header(header: str) -> tuple[list[str], str]:
    """A CSV's header line as (column names, delimiter). The delimiter is the one of ``CSV_DELIMITERS`` that splits
    the line into most fields, a comma on a tie: DuckDB's reader sniffs it, and the pandas one reads the same files
    so (a Vietnamese or German Excel saves "CSV" with semicolons)."""
    split = {d: next(csv.reader([header], delimiter=d), []) for d in CSV_DELIMITERS}
    delimiter = max(CSV_DELIMITERS, key=lambda d: len(split[d]))
    return split[delimiter], delimiter


def header_line(path: Path) -> str:
    """A CSV's first line, decoded.

    A first line longer than HEADER_BYTES is not a panel (a one-line 400 MB file, a wrong delimiter): say so before
    a reader holds the line, and copies of it, in memory. Reads up to the first newline."""
    head = b""
    try:
        with _open_csv(path) as fh:
            while len(head) <= HEADER_BYTES:
                chunk = fh.read(1 << 16)
                head += chunk
                if not chunk or b"\n" in chunk or b"\r" in chunk:
                    break
    except OSError as exc:  # unreadable, or a .gz that is not gzip
        raise PanelError(str(path), [read_advice(exc, path, "panel")]) from exc
    line = re.split(rb"[\r\n]", head, maxsplit=1)[0]
    if len(line) > HEADER_BYTES:
        start = shorten(line[:200].decode("utf-8", "replace"), 60)
        raise PanelError(str(path), [(f"the first line (the header) is longer than {HEADER_BYTES >> 20} MB, so this "
                                      f"is not a panel of rows (it starts {start!r}): one row per line, columns "
                                      f"separated by commas")])
    try:
        if b"\x00" in line:  # UTF-16 without its byte order mark decodes as UTF-8: the NULs tell
            raise UnicodeError
        text = line.decode("utf-8-sig")
    except UnicodeError:
        raise PanelError(str(path), [encoding_problem(path) or f"{path} is not UTF-8 text"]) from None
    return text


def _read_parquet(path: Path, columns: list[str], config: Config, name: str) -> pd.DataFrame:
    """The mapped columns of a Parquet file; text columns come back as categoricals.

    Arrow reads text as dictionaries (the file usually stores them so), so 10M loan ids are hashed once in C++
    and validation works on integer codes: reading a 10M-row panel this way takes a fraction of the time and
    memory of Python strings. The categories are unified across row groups; unused ones are dropped later
    (``_factorize``).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    _require_columns(schema.names, config, name)
    unique = list(dict.fromkeys(columns))
    text = [c for c in unique if pa.types.is_string(schema.field(c).type) or pa.types.is_large_string(schema.field(c).type)]
    table = pq.read_table(path, columns=unique, read_dictionary=text)
    frame = {}
    for column in unique:
        values = table[column]
        table = table.drop_columns([column])  # each column's Arrow buffers go as soon as it is converted
        if column in text:
            values = values.combine_chunks() if values.num_chunks else pa.array([], pa.dictionary(pa.int32(), pa.string()))
            indices = values.indices.fill_null(-1) if values.null_count else values.indices
            dtype = pd.CategoricalDtype(pd.Index(values.dictionary.to_pandas(), dtype="str"))
            frame[column] = pd.Categorical.from_codes(indices.to_numpy(zero_copy_only=False), dtype=dtype, validate=False)
        elif freq := period_freq(schema, column):
            # Unless pandas has registered its Arrow period type in this process, the column reads as its int64
            # ordinals; the dtype's Arrow conversion takes either.
            frame[column] = pd.PeriodDtype(freq).__from_arrow__(values)
        else:
            frame[column] = values.to_pandas()
        del values
    del table
    pa.default_memory_pool().release_unused()  # the allocator would keep the file's decoded pages resident
    return pd.DataFrame(frame, copy=False)[columns]


PANDAS_PERIOD = "pandas.period"  # the Arrow extension type pandas writes a Period column as


def period_freq(schema, column: str) -> str | None:
    """The frequency ("M", "Q-DEC", ...) of a Parquet column pandas wrote from a Period dtype, else None (also when
    the file has no such column). Such a column stores int64 periods since 1970-01 under an Arrow extension type:
    the type itself when pandas has registered it in this process, else only named in the field's metadata."""
    import pyarrow as pa

    index = schema.get_field_index(column)
    if index < 0:
        return None
    field = schema.field(index)
    if isinstance(field.type, pa.BaseExtensionType):
        name, detail = field.type.extension_name, field.type.__arrow_ext_serialize__()
    else:
        meta = field.metadata or {}
        name, detail = meta.get(b"ARROW:extension:name", b"").decode(), meta.get(b"ARROW:extension:metadata", b"{}")
    return json.loads(detail).get("freq") if name == PANDAS_PERIOD else None


BOOL_TYPES = frozenset({bool, np.bool_})


def column_numbers(values: pd.Series, decimal: str = ".") -> np.ndarray:
    """A column as float64, NaN where a value is no number; text read with ``decimal`` ([columns] decimal: with
    "," only as `DECIMAL_COMMA` writes numbers). TRUE and FALSE are no numbers: pandas reads them as 1 and 0, so a
    ticked box in an Excel MOB column was MOB 1 and in the EAD column a balance of 1."""
    if pd.api.types.is_bool_dtype(values):
        return np.full(len(values), np.nan)
    if pd.api.types.is_numeric_dtype(values):  # a Parquet column: to_numeric's pass over 10M rows would find nothing
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    if decimal == ",":
        text = values.astype("string").str.strip()
        pointed = (text.where(text.str.fullmatch(DECIMAL_COMMA)).str.replace(f"[{THOUSANDS_MARKS}]", "", regex=True)
                   .str.replace(",", ".", regex=False))
        numbers = pd.to_numeric(pointed, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        if values.dtype == object:  # number cells among text ones (an .xlsx) are numbers, whatever the locale
            cells = values.map(lambda v: not isinstance(v, str)).to_numpy(dtype=bool)
            numbers[cells] = pd.to_numeric(values[cells], errors="coerce").to_numpy(dtype=np.float64,
                                                                                      na_value=np.nan)
    else:
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    if values.dtype == object and not BOOL_TYPES.isdisjoint(map(type, values)):  # mixed cells, as from Excel
        numbers = np.where(values.map(type).isin(BOOL_TYPES).to_numpy(), np.nan, numbers)
    return numbers


def _factorize(values: pd.Series, sort: bool = False) -> tuple[np.ndarray, pd.Index]:
    """``pd.factorize`` (codes, -1 for empty; the distinct values), with a categorical's own codes reused: the
    Parquet reader gives text columns as categoricals. Unused categories are dropped so only values present
    count (a segment without rows is no segment)."""
    if not isinstance(values.dtype, pd.CategoricalDtype):
        codes, uniques = pd.factorize(values, use_na_sentinel=True, sort=sort)
        return codes, pd.Index(uniques)
    codes = values.cat.codes.to_numpy()  # int8 .. int32 as the categories need: 10M rows stay small
    categories = values.cat.categories
    # A mask, not a bincount: bincount widens 10M int8 codes to int64 first (4x the time). The empty cell's -1
    # marks the extra last entry.
    present = np.zeros(len(categories) + 1, dtype=bool)
    present[codes] = True
    used = np.flatnonzero(present[:-1])
    if sort:
        used = used[np.argsort(categories[used], kind="stable")]
    if len(used) < len(categories) or (sort and (np.diff(used) < 0).any()):
        remap = np.full(len(categories) + 1, -1, dtype=codes.dtype)  # the last entry maps -1 (empty) to itself
        remap[used] = np.arange(len(used))
        codes = remap[codes]
    return codes, categories[used]


def _optional_present(optional: Sequence[str], columns, config: Config, source: str) -> list[str]:
    """The optional columns the data has. One mapped that the data has only in other spaces or letter case is an
    error, as a required one's is: read as absent, "Score" for SCORE gave illustrative score bands and no word of
    the column that was there."""
    names = list(map(str, columns))
    alike = {_name_key(n): n for n in names}
    keys = {v: k for k, v in config.columns.model_dump().items() if isinstance(v, str)}
    misspelt = [c for c in optional if c not in names and _name_key(c) in alike]
    if misspelt:
        raise PanelError(source, [f"no column {_named_alike(keys.get(c, c), c, alike[_name_key(c)])}"
                                  for c in misspelt])
    return [c for c in optional if c in names]


def _named_alike(key: str, name: str, found: str) -> str:
    """"[columns] key = 'name': the data have 'found' (why they differ): ...", for a mapped column the data hold only
    written otherwise."""
    return (f"[columns] {key} = {name!r}: the data have {found!r} ({how_alike(found, name)}): rename the column or "
            f"set the key to it")


def _require_columns(columns, config: Config, source: str) -> None:
    """Every mapped column present, and once (`require_unique`)."""
    names = list(map(str, columns))
    present = set(names)
    missing = [k for k in LOGICAL_COLUMNS if config[k] not in present]
    if missing:
        # A header written "AGREEMENT_ID " or "agreement_id" prints like the mapped name: name it, spaces shown.
        alike = {_name_key(n): n for n in names}
        shown = ", ".join(shorten(c, LABEL_CHARS) for c in names[:20])
        raise PanelError(source, [
            f"missing mapped column {_named_alike(k, config[k], alike[_name_key(config[k])])}"
            if _name_key(config[k]) in alike else
            f"missing mapped column [columns] {k} = {config[k]!r} (set it in config.toml to one of the columns "
            f"present: {shown})" for k in missing])
    require_unique(names, config, source)


def require_unique(names: list[str], config: Config, source: str) -> None:
    """Each mapped column once in the header: of two columns of one name, which is meant is not guessed (pandas
    would read the first, a range's cells the last)."""
    repeated = {config[k]: k for k in LOGICAL_COLUMNS if names.count(config[k]) > 1}
    if repeated:
        raise PanelError(source, [f"column {name!r} ([columns] {key}) appears {names.count(name)} times in the "
                                  f"header: which one is meant is not guessed; rename or remove the others"
                                  for name, key in repeated.items()])


HEADER_SEARCH_ROWS = 20  # rows of a sheet searched for the mapped columns' header when row 1 lacks them


def find_header(lines: Sequence[str], wanted: Sequence[str]) -> tuple[int, list[str], str] | None:
    """(lines above it, column names, delimiter) of the first of a CSV's top lines (decoded; up to
    HEADER_SEARCH_ROWS of them) holding every mapped column name; None when none does."""
    for above, line in enumerate(lines[:HEADER_SEARCH_ROWS]):
        fields, delimiter = split_header(line.removeprefix("\ufeff"))
        if set(wanted) <= {f.strip() for f in fields}:
            return above, fields, delimiter
    return None


def _csv_header(path: Path, wanted: list[str]) -> tuple[int, list[str], str] | None:
    """`find_header` on a local CSV file's first 64 KB."""
    with _open_csv(path) as fh:
        head = fh.read(1 << 16)
    return find_header([line.decode("utf-8", "replace") for line in re.split(rb"\r\n|\r|\n", head)], wanted)


def sheet_named(path: Path, name: str) -> str:
    """The sheet of a workbook a person means by ``name``: as written, else the one that reads alike (Excel's sheet
    names ignore letter case; a name typed on a Mac may be decomposed). None alike: an error listing the sheets
    (pandas said only "Worksheet named ... not found")."""
    with pd.ExcelFile(path, engine="openpyxl") as book:
        names = [str(n) for n in book.sheet_names]
    if name in names:
        return name
    alike = [n for n in names if _name_key(n) == _name_key(name)]
    if len(alike) == 1:
        return alike[0]
    near = closest_name(name, names)
    raise PanelError(str(path), [f"no sheet {name!r}{f'; did you mean {near!r}?' if near else ''} (the sheets: "
                                 f"{', '.join(map(repr, names))})"])


def _header_row(read, wanted: list[str]) -> int:
    """The 0-based row of a sheet (``read``: its pd.read_excel) holding every mapped column name, when a title or
    notes stand above the table (an exported loan tape's "Loan tape, December 2025"); 0 when no row has them all."""
    top = read(header=None, nrows=HEADER_SEARCH_ROWS, dtype=object)
    holds = top.apply(lambda row: set(wanted) <= {str(v).strip() for v in row.dropna()}, axis=1).to_numpy(dtype=bool)
    return int(np.argmax(holds)) if holds.any() else 0


def _require_columns_on_first_sheet(path: Path, columns, config: Config, label: str) -> None:
    """When the first sheet of a workbook (read by default) lacks mapped columns and another sheet has them all,
    name that sheet: the first sheet's columns, which ``_require_columns`` lists, are no help then. Reads the
    sheets' top rows only (HEADER_SEARCH_ROWS: the header may stand under a title, as on the first sheet)."""
    wanted = list(dict.fromkeys(config[k] for k in LOGICAL_COLUMNS))
    missing = [c for c in wanted if c not in set(map(str, columns))]
    if not missing:
        return
    tops = pd.read_excel(path, sheet_name=None, header=None, nrows=HEADER_SEARCH_ROWS, dtype=object, engine="openpyxl")
    first, *others = tops
    found = [name for name in others
             if any(set(wanted) <= {str(v).strip() for v in row if not pd.isna(v)} for row in tops[name].to_numpy())]
    if not found:
        return
    which = (f"sheet {found[0]!r} has them all: read that sheet" if len(found) == 1 else
             f"sheets {', '.join(map(repr, found))} have them all: read one of them")
    # The command line takes the name as one argument: quoted when it has spaces or other shell characters.
    argument = found[0] if re.fullmatch(r"[\w.-]+", found[0]) else f'"{found[0]}"'
    lacked = quoted(missing)
    raise PanelError(label, [(f"the first sheet, {first!r}, lacks mapped columns ({lacked}); {which} "
                              f"(sheet={found[0]!r}; on the command line --sheet {argument})")])


def fingerprint(source) -> str:
    """A short content hash of a panel (file bytes, or the frame's values); the Run info sheet and the UDF
    memo use it."""
    h = hashlib.sha256()
    if isinstance(source, pd.DataFrame):
        h.update(pd.util.hash_pandas_object(source, index=False).to_numpy().tobytes())
        h.update("|".join(map(str, source.columns)).encode())
    else:
        with open(source, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------------------------- validation


def month_index(year, month):
    return np.asarray(year, dtype=np.int64) * 12 + np.asarray(month, dtype=np.int64) - 1


def month_label(index) -> list[str]:
    index = np.asarray(index, dtype=np.int64)
    return [f"{y:04d}-{m:02d}" for y, m in zip(index // 12, index % 12 + 1, strict=True)]


def duplicates_problem(n: int, columns: dict, where: str) -> str:
    """The finding for ``n`` duplicate (loan, MOB) rows, shared by every backend; ``columns``: the panel's names."""
    return MESSAGES["duplicates"].format(rows=counted(n, "duplicate (loan, mob) row"), loan=columns["loan_id"],
                                         mob=columns["mob"], where=where)


def changes_problem(n: int, key: str, column: str, examples: str) -> str:
    """The finding for ``n`` loans whose ``key`` (cohort or segment) changes between months, shared by every
    backend."""
    return MESSAGES["changes"].format(loans=counted(n, "loan"), change=agree(n, "changes", "change"), key=key,
                                      column=column, examples=examples)


#: A frame's attribute (`DataFrame.attrs`) holding the file's row number of its first data row, set by `read_panel`
#: when a title stands above the header; without it the header is row 1 and the first data row row 2.
FIRST_ROW = "pyxl_del_first_row"


def first_data_row(frame: pd.DataFrame) -> int:
    """The file's row number of the frame's first data row (`FIRST_ROW`)."""
    return int(frame.attrs.get(FIRST_ROW, 2))


def column_letter(col: int) -> str:
    """A 1-based column number as a spreadsheet names it: 1 -> "A", 28 -> "AB"."""
    letters = ""
    while col > 0:
        col, rem = divmod(col - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def row_numbers(positions: np.ndarray, first: int = 2) -> str:
    """Row numbers as a spreadsheet shows them: positions 0, 1, ... are rows ``first``, ``first`` + 1, ... (the
    header row 1 and the first data row 2, unless a title stands above the header: `first_data_row`)."""
    positions = np.sort(np.asarray(positions))
    shown = ", ".join(str(int(p) + first) for p in positions[:MAX_LISTED])
    more = f" and {len(positions) - MAX_LISTED} more" if len(positions) > MAX_LISTED else ""
    return f"{'row' if len(positions) == 1 else 'rows'} {shown}{more}"


# A number as a locale with a decimal comma, or with thousands separators, writes it: 1234,56 / 1.234.567,5 / 1,234,567.
LOCALE_NUMBER = re.compile(r"[+-]?\d{1,3}(?:([.,\u00a0 ])\d{3})+(?:[.,]\d+)?|[+-]?\d+,\d+")


def quoted(values) -> str:
    """Values as the findings quote them: each repr'd and cut to LABEL_CHARS, an empty one (NULL) "empty"; a numpy
    number as the number (numpy 2's repr of 2012 is "np.int64(2012)")."""
    return ", ".join("empty" if pd.isna(v) else shorten(repr(v.item() if isinstance(v, np.generic) else v),
                                                        LABEL_CHARS) for v in values)


def mob_problem(column: str, where: str, labels: list) -> str:
    """The finding for MOB values that are not months on book, shared by every backend; where they are calendar
    months (a reporting-month column mapped as the MOB: text, numbers or dates), how to make the MOB."""
    # Dates and SQL's text of a midnight timestamp as the day, so that every backend quotes them alike
    texts = (pd.Timestamp(v).strftime("%Y-%m-%d") if isinstance(v, (datetime.date, np.datetime64)) else
             re.sub(r"[ T]00:00:00$", "", str(v)) for v in labels if not pd.isna(v))
    months = [t for t in texts if CALENDAR_MONTH.match(t)]
    if months:
        return MESSAGES["mob_months"].format(column=column, labels=quoted(months[:3]), where=where)
    return MESSAGES["mob"].format(column=column, where=where)


def ead_problem(column: str, where: str, labels: list, decimal: str = ".") -> str:
    """The finding for EAD values that are no numbers, shared by every backend: the values as written (empty ones
    dropped) and, where they look like numbers in a decimal-comma locale, how to read or write them."""
    texts = [str(v).strip() for v in labels if not pd.isna(v) and str(v).strip()]
    if decimal == "," and texts:
        return MESSAGES["ead_comma"].format(column=column, where=where, labels=quoted(texts[:MAX_LISTED]))
    locale = [v for v in texts if LOCALE_NUMBER.fullmatch(v)]
    if locale:  # the advice first: a cell shows a message's first 255 characters
        # 1,234,567 is a US thousands comma: [columns] decimal = "," would not read it
        comma = any(re.fullmatch(DECIMAL_COMMA, v) for v in locale)
        # 31,784.7 is English with a thousands comma, no locale's decimal comma: say only what to remove.
        english = (all(re.fullmatch(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?", v) for v in locale)
                   and any("." in v or v.count(",") > 1 for v in locale))  # "1,234" alone could be either
        if english:
            return MESSAGES["thousands"].format(column=column, where=where, labels=quoted(locale[:3]))
        return MESSAGES["decimal_comma"].format(column=column, where=where, labels=quoted(locale[:3]),
                                                or_set=", or set [columns] decimal = \",\"" if comma else "")
    text = MESSAGES["ead_nan"].format(column=column, where=where)
    if texts:
        text += MESSAGES["ead_values"].format(labels=quoted(texts[:MAX_LISTED]))
    return text


def state_problem(column: str, order: Sequence[str], labels: list, where: str) -> str:
    """The finding for state labels not in [buckets] order (``labels``: the distinct bad ones, NULL for empty),
    shared by every backend; a label that differs from a bucket only in letter case or spaces is named with it."""
    shown = quoted(labels[:MAX_LISTED])
    text = MESSAGES["state"].format(column=column, order=list(order), labels=shown, where=where)
    buckets = {_name_key(b): b for b in order}
    alike = [(v, buckets[_name_key(v)]) for v in labels[:MAX_LISTED]
             if isinstance(v, str) and _name_key(v) in buckets]
    if alike:
        pairs = "; ".join(f"{quoted([v])} as {b!r}: {how_alike(v, b)}" for v, b in alike)
        text += f" ({pairs}; labels must match [buckets] order as written)"
    named = [v for v in labels if not pd.isna(v)]
    if named and all(DAYS.match(str(v)) for v in named):
        text += (" (whole numbers: days past due, not buckets; give each row the bucket of [buckets] order its days "
                 "fall in, e.g. with a lookup of the days against each bucket's first day)")
    return text


def cohort_problem(column: str, n: int, labels: list, where: str, cohort_format: str = "") -> str:
    """The finding for cohort values that are not months (``labels``: the distinct bad values, empty ones
    dropped), shared by every backend: text such as 05/07/2023 is named as ambiguous, not as "not a month"."""
    shown = quoted(labels[:MAX_LISTED]) or "empty"
    if cohort_format:
        return MESSAGES["cohort_format"].format(column=column, values=counted(n, "value"), do=agree(n, "does", "do"),
                                                fmt=cohort_format, labels=shown, where=where)
    ambiguous = [v for v in labels if isinstance(v, str) and AMBIGUOUS_DATE.match(v)]
    if ambiguous:
        shown = quoted(ambiguous[:MAX_EXAMPLES])
        return MESSAGES["cohort_ambiguous"].format(column=column, values=counted(n, "value"), labels=shown, where=where)
    month_year = [m for v in labels if (m := MONTH_YEAR.match(str(v)))]
    if month_year:
        return MESSAGES["cohort_month_year"].format(column=column, values=counted(n, "value"), where=where,
                                                    labels=quoted([m.string for m in month_year[:MAX_EXAMPLES]]),
                                                    are=agree(n, "is", "are"), fmt=f"%m{month_year[0].group(1)}%Y")
    years = [v for v in labels if YEAR_ONLY.match(str(v))]
    if years:
        return MESSAGES["cohort_year"].format(column=column, values=counted(n, "value"), where=where,
                                              labels=quoted(years[:MAX_EXAMPLES]), are=agree(n, "is", "are"))
    days = [(v, day) for v in labels
            if (m := EXCEL_DAY.match(str(v))) and EXCEL_DAYS[0] <= (day := int(m.group(1))) <= EXCEL_DAYS[1]]
    if days:
        first = days[0][1]
        example = f"{first} is {(EXCEL_EPOCH + pd.Timedelta(days=first)).date()}"
        return MESSAGES["cohort_serial"].format(column=column, values=counted(n, "value"), where=where,
                                                labels=quoted([v for v, _ in days[:MAX_EXAMPLES]]),
                                                are=agree(n, "is", "are"), example=example)
    return MESSAGES["cohort"].format(column=column, values=counted(n, "value"), are=agree(n, "is", "are"),
                                     labels=shown, where=where)


def _parse_cohorts(values: pd.Series, column: str, problems: list[str], cohort_format: str = "",
                   first: int = 2) -> np.ndarray:
    """Month index per row; parses each distinct value once (a panel has few cohorts). Text is read by
    ``cohort_format`` when given, else as ISO (never a day-first / month-first guess)."""
    if isinstance(values.dtype, pd.PeriodDtype):
        empty = values.isna().to_numpy()
        if empty.any():  # NaT: an empty cohort, as a blank cell
            problems.append(cohort_problem(column, int(empty.sum()), [], row_numbers(np.flatnonzero(empty), first),
                                           cohort_format))
        months = month_index(values.dt.year.fillna(0).to_numpy(), values.dt.month.fillna(1).to_numpy())
        return np.where(empty, -1, months)
    codes, uniques = _factorize(values)
    if len(uniques) == 0:  # the column is blank: every row is reported below
        parsed = pd.DatetimeIndex([])
    elif pd.api.types.is_datetime64_any_dtype(uniques.dtype):
        parsed = pd.DatetimeIndex(uniques)
    elif pd.api.types.is_numeric_dtype(uniques.dtype):  # 202301-style integers
        u = np.asarray(uniques, dtype=np.float64)
        # Six digits: 2012 is a year, not December of the year 20.
        ok = (u == np.floor(u)) & (u >= 100_000) & (u % 100 >= 1) & (u % 100 <= 12)
        parsed = pd.to_datetime(
            pd.Series(np.where(ok, u, np.nan)).map(lambda v: f"{int(v) // 100:04d}-{int(v) % 100:02d}"
                                                  if v == v else None), format="%Y-%m", errors="coerce")
    else:
        raw = pd.Series(uniques, dtype="object")
        # The cohort is the calendar date as written: drop a time and zone (mixed offsets would not parse, and
        # converting them would move a month-start to the month before); read 202301 as 2023-01.
        text = (raw.map(lambda v: str(v).strip())
                .str.replace("^([0-9]{4}[-/][0-9]{1,2}[-/][0-9]{1,2})" + TIME_SUFFIX + "$", r"\1", regex=True)
                .str.replace(r"^(\d{4})(\d{2})$", r"\1-\2", regex=True))
        parsed = pd.to_datetime(text, format="ISO8601", errors="coerce")
        # Other unambiguous spellings ("Jul 2023"), never day/month numbers: 05/07/2023 stays unread, and so does
        # month/year (07/2023), which every backend names with the cohort_format that reads it. Only with the year
        # written in full: the parser read Excel's "Jul-23" as July 23rd of the year 1 (cohort 0001-07).
        retry = parsed.isna() & ~text.str.match(AMBIGUOUS_DATE.pattern) & ~text.str.match(MONTH_YEAR.pattern)
        if retry.any():
            loose = pd.to_datetime(text[retry], errors="coerce", dayfirst=False, format="mixed")
            year = pd.to_numeric(text[retry].str.extract(FULL_YEAR, expand=False), errors="coerce")
            parsed[retry] = loose.where(loose.dt.year == year)
        parsed[text.str.match(YEAR_ONLY.pattern)] = pd.NaT  # ISO's "2023" is January: a guess of the month
        if cohort_format:  # real date cells (an .xlsx) are dates; all text is read by the one declared format
            is_text = raw.map(lambda v: not isinstance(v, (datetime.date, np.datetime64))).to_numpy(dtype=bool)
            declared = pd.to_datetime(raw.map(lambda v: str(v).strip()), format=cohort_format, errors="coerce")
            parsed = parsed.where(~is_text, declared)
    parsed = pd.DatetimeIndex(parsed)
    bad = np.flatnonzero(parsed.isna())
    if len(bad) or (codes < 0).any():
        rows = np.flatnonzero(np.isin(codes, bad) | (codes < 0))
        problems.append(cohort_problem(column, len(rows), [uniques[i] for i in bad], row_numbers(rows, first),
                                       cohort_format))
    if len(uniques) == 0:
        return np.full(len(codes), -1, dtype=np.int64)
    idx = month_index(parsed.year.fillna(0), parsed.month.fillna(1))
    return np.append(idx, -1)[codes]  # an empty cell's code -1 picks the appended -1


@dataclass(frozen=True)
class Panel:
    """A validated panel as typed arrays, sorted by (loan, mob). States are codes into the bucket order."""

    loan: np.ndarray  # integer codes (int32 or int64)
    cohort: np.ndarray  # int64 month index (year * 12 + month - 1)
    mob: np.ndarray  # int64
    segment: np.ndarray  # integer codes into `segments` (int8 .. int64)
    state: np.ndarray  # int8 codes into config.buckets.order
    ead: np.ndarray  # float64
    segments: tuple[str, ...]
    row: np.ndarray  # original row position of each sorted row (for messages and drill-down)
    source: str
    warnings: tuple[str, ...] = field(default=())

    @property
    def n_rows(self) -> int:
        return len(self.mob)


def how_alike(written: str, meant: str) -> str:
    """Why two names that read alike (`_name_key`) are not the same text, for a message: the same letters stored
    decomposed (a Mac's files) print identically, so "differs in spaces or letter case" named no difference."""
    if unicodedata.normalize("NFC", written) == unicodedata.normalize("NFC", meant):
        return ("the same letters in another Unicode form: decomposed, as a Mac saves them; save the file with "
                "composed (NFC) text, or copy the name from the data")
    return "it differs in spaces or letter case"


def _name_key(name: str) -> str:
    """What a person reads in a segment name: Unicode form, letter case and runs of spaces aside."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def segment_named(name: str, segments: Sequence[str]) -> str:
    """The segment (or the Portfolio) a person means by ``name``: the name itself, else the one segment whose name
    reads alike (letter case, Unicode form and runs of spaces aside: a Mac types Vietnamese decomposed, a cell may
    hold 'cd' for 'CD'). KeyError otherwise, listing the names quoted, so that a doubled or trailing space shows."""
    if name == PORTFOLIO or name in segments:
        return name
    known = (PORTFOLIO, *segments)
    alike = [s for s in known if _name_key(s) == _name_key(name)]
    if len(alike) == 1:
        return alike[0]
    listed = ", ".join(map(repr, alike or known))
    raise KeyError(f"segment {name!r} reads like each of {listed}: give one exactly" if alike
                   else f"unknown segment {name!r} — known: {listed}")


def _segment_text(value: Any) -> str:
    """A segment name as text: a code typed as a number in Excel reaches a function as a float (101.0), which is the
    segment 101, as the same code read from a file or given as an argument is."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def segment_name_findings(segments: tuple[str, ...], column: str) -> tuple[list[str], list[str]]:
    """(problems, warnings) of the segment names, whichever backend read them: a name of spaces only or the
    portfolio's (in any case) is a problem; names that read alike ('CD' and 'CD ', composed and decomposed
    Vietnamese) a warning, as they are reported apart."""
    problems = []
    blank = [name for name in segments if not name.strip()]
    if blank:
        problems.append(MESSAGES["blank_segment"].format(column=column, names=", ".join(map(repr, blank))))
    problems += [MESSAGES["reserved"].format(name=name, column=column) for name in segments
                 if _name_key(name) == _name_key(PORTFOLIO)]
    groups: dict[str, list[str]] = {}
    for name in segments:
        if name.strip():
            groups.setdefault(_name_key(name), []).append(name)
    def shown(name: str) -> str:  # two forms of one Vietnamese text print alike: say which is which
        return repr(name) + ("" if unicodedata.is_normalized("NFC", name) else " (decomposed Unicode)")

    alike = [" and ".join(map(shown, names)) for names in groups.values() if len(names) > 1]
    warnings = []
    if alike:
        warnings.append(MESSAGES["alike_segments"].format(pairs="; ".join(alike[:MAX_LISTED]), column=column))
        log.warning(warnings[-1])
    return problems, warnings


def validate_panel(frame: pd.DataFrame, config: Config, source: str = FRAME_SOURCE) -> Panel:
    """Check every rule at once and raise one PanelError listing all problems; warnings go on the Panel."""
    problems: list[str] = []
    if len(frame) == 0:
        raise PanelError(source, [MESSAGES["empty_panel"]])
    col = {k: config[k] for k in LOGICAL_COLUMNS}
    first = first_data_row(frame)

    loan_codes, _ = _factorize(frame[col["loan_id"]])
    if (loan_codes < 0).any():
        problems.append(MESSAGES["empty"].format(column=col["loan_id"], key="loan_id",
                                                 where=row_numbers(np.flatnonzero(loan_codes < 0), first)))

    cohort = _parse_cohorts(frame[col["cohort"]], col["cohort"], problems, config.columns.cohort_format, first)

    mob_values = frame[col["mob"]]
    if pd.api.types.is_integer_dtype(mob_values) and not mob_values.hasnans:  # Parquet: no float pass over 10M rows
        mob = mob_values.to_numpy(dtype=np.int64)
        bad_mob = (mob < 0) | (mob > PANEL_MAX_MOB)
    else:
        mob_raw = column_numbers(mob_values)
        bad_mob = ~np.isfinite(mob_raw) | (mob_raw < 0) | (mob_raw > PANEL_MAX_MOB) | (mob_raw != np.floor(mob_raw))
        mob = np.where(bad_mob, 0, mob_raw).astype(np.int64)
        del mob_raw  # 10M-row panels: each column's temporaries go once its typed array is made
    if bad_mob.any():
        bad_rows = np.flatnonzero(bad_mob)
        labels = pd.unique(mob_values.iloc[bad_rows[:10_000]].astype("object"))
        problems.append(mob_problem(col["mob"], row_numbers(bad_rows, first), list(labels)))

    seg_values = frame[col["segment"]]
    seg_codes, seg_uniques = _factorize(seg_values, sort=True)
    names = [_segment_text(s) for s in seg_uniques]
    if len(set(names)) < len(names):  # 101.0 from a number cell and "101" from a text cell are one segment
        merged, uniques = pd.factorize(pd.Index(names), sort=True)
        seg_codes = np.append(merged, -1)[seg_codes]  # the last entry keeps an empty cell's -1
        names = list(uniques)
    segments = tuple(names)
    if (seg_codes < 0).any():
        problems.append(MESSAGES["empty"].format(column=col["segment"], key="segment",
                                                 where=row_numbers(np.flatnonzero(seg_codes < 0), first)))
    segment_problems, warnings = segment_name_findings(segments, col["segment"])
    problems += segment_problems

    order = list(config.buckets.order)
    raw_codes, raw_labels = _factorize(frame[col["state"]])
    lookup = np.append(pd.Index(order).get_indexer(pd.Index(raw_labels, dtype=object)), -1)
    state_codes = lookup.astype(np.int8)[raw_codes]  # the -1 sentinel of a missing label picks the appended -1
    del raw_codes
    if (state_codes < 0).any():
        bad_rows = np.flatnonzero(state_codes < 0)
        labels = pd.unique(frame[col["state"]].iloc[bad_rows[:10_000]].astype("object"))
        problems.append(state_problem(col["state"], order, list(labels), row_numbers(bad_rows, first)))

    ead_raw = frame[col["ead"]]
    ead = column_numbers(ead_raw, config.columns.decimal)
    non_numeric = ~np.isfinite(ead)
    if non_numeric.any():
        bad_rows = np.flatnonzero(non_numeric)
        labels = pd.unique(ead_raw.iloc[bad_rows[:10_000]].astype("object"))
        problems.append(ead_problem(col["ead"], row_numbers(bad_rows, first), list(labels), config.columns.decimal))
    negative = ead < 0
    if negative.any():
        problems.append(MESSAGES["ead_negative"].format(column=col["ead"],
                                                        where=row_numbers(np.flatnonzero(negative), first)))
    huge = np.isfinite(ead) & (ead > EAD_LIMIT)
    if huge.any():
        problems.append(MESSAGES["ead_huge"].format(column=col["ead"], where=row_numbers(np.flatnonzero(huge), first)))

    if problems:
        raise PanelError(source, problems)

    # One sort by (loan, mob) answers duplicates, gaps, and cohort/segment changes, and pairs transitions.
    key = loan_codes.astype(np.int64)
    key *= int(mob.max()) + 2
    key += mob
    # Panels usually arrive sorted by loan and month: then the sort and every gather below are skipped.
    presorted = bool((key[1:] >= key[:-1]).all())
    order_idx = np.arange(len(key)) if presorted else np.argsort(key, kind="stable")
    if not presorted:  # one column at a time, so one unsorted copy at most is alive next to the sorted ones
        key = key[order_idx]
        loan_codes = loan_codes[order_idx]
        cohort = cohort[order_idx]
        seg_codes = seg_codes[order_idx]
        mob = mob[order_idx]
        state_codes = state_codes[order_idx]
        ead = ead[order_idx]
    same_loan = loan_codes[1:] == loan_codes[:-1]

    dup = np.flatnonzero(key[1:] == key[:-1])
    del key
    if len(dup):
        rows = np.unique(np.concatenate([order_idx[dup], order_idx[dup + 1]]))
        problems.append(duplicates_problem(len(dup), col, row_numbers(rows, first)))
    for key_name, v in (("cohort", cohort), ("segment", seg_codes)):
        changes = np.flatnonzero(same_loan & (v[1:] != v[:-1]))
        if len(changes):
            loans = pd.unique(frame[col["loan_id"]].iloc[order_idx[changes]].astype("object"))
            examples = f"{', '.join(map(repr, loans[:MAX_LISTED]))} at {row_numbers(order_idx[changes + 1], first)}"
            problems.append(changes_problem(len(loans), key_name, col[key_name], examples))
    if problems:
        raise PanelError(source, problems)

    gaps = np.flatnonzero(same_loan & (mob[1:] - mob[:-1] > 1))
    if len(gaps):
        loans = pd.unique(frame[col["loan_id"]].iloc[order_idx[gaps]].astype("object"))
        warnings.append(gap_warning(len(gaps), loans))
    warnings += _late_starts(frame[col["loan_id"]], order_idx, same_loan, cohort, seg_codes, mob, ead, segments,
                             config.forecast.max_mob)

    panel = Panel(
        loan=loan_codes,
        cohort=cohort,
        mob=mob,
        segment=seg_codes,
        state=state_codes,
        ead=ead,
        segments=segments,
        row=order_idx,
        source=source,
        warnings=tuple(warnings),
    )
    return panel


# ------------------------------------------------------------------------------------------ aggregation


@dataclass(frozen=True)
class PanelStats:
    """Sufficient statistics of a panel: everything the chain, calibration and DEL tables need.

    Shapes: S segments, C cohorts, M = max_mob MOB steps (MOB 0..M), K states.
    """

    segments: tuple[str, ...]
    cohorts: np.ndarray  # (C,) month index, ascending
    states: tuple[str, ...]
    ead: np.ndarray  # (S, C, M+1, K) EAD by state
    n_loans: np.ndarray  # (S, C, M+1) rows (loans) observed
    # Transitions by cohort, so a cell's reporting month (cohort + m) is known: calendar weighting needs it.
    cohort_trans_count: np.ndarray  # (S, C, M, K, K) loans at m in i and at m+1 in j
    cohort_trans_ead_from: np.ndarray  # (S, C, M, K, K) their EAD at m
    cohort_trans_ead_to: np.ndarray  # (S, C, M, K, K) their EAD at m+1
    n_rows: int
    warnings: tuple[str, ...] = ()
    # The last MOB with rows of each cohort-segment over the whole panel, beyond max_mob too (-1: none), and the EAD
    # by state in it: where the book stands at the data's last reporting month (pyxl_del.risk.projection.Book).
    # None: the statistics above are all there is (no row beyond max_mob was seen).
    final_mob: np.ndarray | None = None  # (S, C)
    final_ead: np.ndarray | None = None  # (S, C, K)
    # (S, C, M+1, K) the sum of squared EAD by state: how unequal the balances behind a cell are (the forecast
    # intervals move (sum EAD)^2 / sum EAD^2 loans of equal balance, not as many as there are loans). None: unknown.
    ead_sq: np.ndarray | None = None

    @property
    def max_mob(self) -> int:
        return self.ead.shape[2] - 1

    @property
    def observed(self) -> np.ndarray:
        """(S, C, M+1): the cohort-segment has actual rows at that MOB."""
        return self.n_loans > 0

    @property
    def cohort_labels(self) -> list[str]:
        return month_label(self.cohorts)

    @property
    def last_mob(self) -> np.ndarray:
        """(S, C) the last MOB with rows of each cohort-segment, beyond max_mob where those rows were seen; -1: none."""
        return self.final_mob if self.final_mob is not None else last_observed(self.n_loans)

    @property
    def reporting_month(self) -> int:
        """The month index of the data's last reporting month (the latest cohort + last MOB with rows)."""
        last = self.last_mob
        return int((self.cohorts[None, :] + last)[last >= 0].max())

    @cached_property
    def trans_count(self) -> np.ndarray:
        """(S, M, K, K) loans at m in i and at m+1 in j, all cohorts."""
        return self.cohort_trans_count.sum(axis=1)

    @cached_property
    def trans_ead_from(self) -> np.ndarray:
        """(S, M, K, K) their EAD at m."""
        return self.cohort_trans_ead_from.sum(axis=1)

    @cached_property
    def trans_ead_to(self) -> np.ndarray:
        """(S, M, K, K) their EAD at m+1."""
        return self.cohort_trans_ead_to.sum(axis=1)


def last_observed(n_loans: np.ndarray) -> np.ndarray:
    """(S, C) the last MOB with rows of each cohort-segment in (S, C, M+1) counts, -1 where it has none."""
    observed = n_loans > 0
    m = observed.shape[-1]
    return np.where(observed.any(axis=-1), m - 1 - np.argmax(observed[..., ::-1], axis=-1), -1)


def final_rows(n_loans: np.ndarray, ead: np.ndarray, cell: np.ndarray, mob: np.ndarray, state: np.ndarray,
               weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PanelStats.final_mob and final_ead: the kept statistics (``n_loans`` (S, C, M+1), ``ead`` (S, C, M+1, K))
    extended by the rows beyond max_mob, given as their cohort-segment ``cell`` (s * C + c), MOB, state and EAD
    (rows or sums of rows)."""
    n_seg, n_coh, n_mob, k = ead.shape
    final = last_observed(n_loans).ravel()
    np.maximum.at(final, cell, mob)
    kept = np.take_along_axis(ead.reshape(n_seg * n_coh, n_mob, k), np.clip(final, 0, n_mob - 1)[:, None, None],
                              axis=1)[:, 0]
    last = mob == final[cell]
    beyond = np.bincount(cell[last] * k + state[last], weights=weight[last], minlength=n_seg * n_coh * k)
    final_ead = np.where((final >= n_mob)[:, None], beyond.reshape(-1, k), np.where((final >= 0)[:, None], kept, 0.0))
    return final.reshape(n_seg, n_coh), final_ead.reshape(n_seg, n_coh, k)


def _late_starts(loan_ids: pd.Series, order_idx: np.ndarray, same_loan: np.ndarray, cohort: np.ndarray,
                 seg_codes: np.ndarray, mob: np.ndarray, ead: np.ndarray, segments: tuple[str, ...],
                 max_mob: int) -> list[str]:
    """`late_start_warning` from the rows sorted by (loan, MOB)."""
    # Each loan's first row only: on the hot path every run takes, the work is per loan, not per row.
    starts = np.r_[0, np.flatnonzero(~same_loan) + 1]
    late = starts[(mob[starts] > 0) & (mob[starts] <= max_mob)]
    if not len(late):
        return []
    low = int(cohort.min())
    width = int(cohort.max()) - low + 1
    key = seg_codes.astype(np.int64) * width + (cohort - low)
    mob0 = mob == 0
    size = len(segments) * width
    loans = np.bincount(key[late], minlength=size)
    cells = pd.DataFrame({"loans": loans, "ead": np.bincount(key[late], weights=ead[late], minlength=size),
                          "mob0_ead": np.bincount(key[mob0], weights=ead[mob0], minlength=size)})
    cells["segment"] = np.asarray(segments, dtype=object)[np.arange(size) // width]
    cells["cohort"] = np.arange(size) % width + low
    # The examples, as the SQL backends pick them: the smallest loan ids (of the first 100,000 such loans).
    first = late[cells["mob0_ead"].to_numpy()[key[late]] > 0][:100_000]
    picked = loan_ids.iloc[order_idx[first]]
    # By value when the ids are numbers (97 before 1067, as SQL orders them), else as text: an Excel column may mix
    # 7 and "007". Shown as text either way, as the SQL backends cast them.
    ids = picked.astype("object").to_numpy()
    numeric = pd.api.types.is_numeric_dtype(picked.dtype) and not pd.api.types.is_bool_dtype(picked.dtype)
    by_id = np.argsort(picked.to_numpy() if numeric else ids.astype(str), kind="stable")[:GAP_EXAMPLES]
    return late_start_warning(cells[loans > 0], [(str(ids[i]), mob[first[i]]) for i in by_id])


def late_start_warning(cells: pd.DataFrame, examples: Sequence[tuple[Any, int]]) -> list[str]:
    """The warning for loans whose first row is after MOB 0 (seasoned loans booked into a cohort that has MOB 0
    rows), shared by every backend. ``cells``: per cohort-segment with such loans, ``segment`` (name), ``cohort``
    (month index), ``loans``, ``ead`` (their EAD at their first row) and ``mob0_ead`` (the cohort-segment's EAD at
    MOB 0); ``examples``: (loan, first MOB) of the first loans. A cohort without MOB 0 rows is left out of the DEL
    tables and warned of on its own (``coverage_warnings``)."""
    cells = cells[cells["mob0_ead"] > 0]
    if cells.empty:
        return []
    share = (cells["ead"] / cells["mob0_ead"]).to_numpy()
    worst = cells.iloc[int(np.argmax(share))]
    n = int(cells["loans"].sum())
    text = MESSAGES["late_start"].format(
        loans=counted(n, "loan"), appear=agree(n, "appears", "appear"),
        cells=counted(len(cells), "cohort-segment"), have=agree(len(cells), "has", "have"),
        examples=", ".join(f"{loan!r} at MOB {int(mob)}" for loan, mob in examples[:GAP_EXAMPLES]),
        share=float(share.max()), worst=f"{worst['segment']} {month_label([int(worst['cohort'])])[0]}")
    log.warning(text)
    return [text]


def gap_warning(n_gaps: int, loans) -> str:
    """The warning for gaps inside loans' MOB sequences; ``loans`` are the loans with a gap."""
    text = MESSAGES["gaps"].format(gaps=counted(n_gaps, "gap"), loans=counted(len(loans), "loan"),
                                   examples=", ".join(map(repr, loans[:GAP_EXAMPLES])))
    log.warning(text)
    return text


def coverage_warnings(n_beyond: int, n_loans: np.ndarray, segments, cohorts: np.ndarray, max_mob: int) -> list[str]:
    """Rows beyond max_mob and cohorts without a MOB 0 row; ``n_loans`` is (S, C, M+1) as in PanelStats."""
    warnings = []
    if n_beyond:
        warnings.append(MESSAGES["beyond"].format(rows=counted(n_beyond, "row"), are=agree(n_beyond, "is", "are"),
                                                  max_mob=max_mob))
    no_mob0 = (n_loans.sum(axis=2) > 0) & (n_loans[:, :, 0] == 0)
    if no_mob0.any():
        s_idx, c_idx = np.nonzero(no_mob0)
        listed = ", ".join(f"{segments[s]} {month_label([cohorts[c]])[0]}" for s, c in zip(s_idx, c_idx))
        n = len(s_idx)
        warnings.append(MESSAGES["no_mob0"].format(cohorts=counted(n, "cohort"), have=agree(n, "has", "have"),
                                                   listed=listed))
        log.warning(warnings[-1])
    return warnings


def this_month() -> int:
    """The month index of the machine's date: no data can be reported after it."""
    today = datetime.date.today()
    return int(month_index(today.year, today.month))


def check_stats(stats: PanelStats, config: Config, source: str) -> PanelStats:
    """The findings every backend's statistics get. Errors (the report would be empty): no MOB 0 row at all, EAD
    0 on every row. Warnings: cohorts with MOB 0 rows whose EAD sums to 0 (they vanish from the DEL tables), an EAD
    per loan far above the book's, rows reported after this month, moves out of an absorbing state."""
    if not stats.n_loans[:, :, 0].any():
        raise PanelError(source, [MESSAGES["no_mob0_at_all"].format(column=config["mob"])])
    if not stats.ead.any() and (stats.final_ead is None or not stats.final_ead.any()):
        raise PanelError(source, [MESSAGES["ead_all_zero"].format(column=config["ead"])])
    # A loan-level column mapped as the segment: 688 one-loan segments made 4,136 sheets in 94 s from 20,000 rows.
    loans = stats.n_loans.sum(axis=1).max(axis=1)  # (S,) the segment's loans at its busiest MOB
    single = np.flatnonzero(loans <= 1)
    if len(loans) >= MIN_SEGMENTS_CHECKED and 2 * len(single) >= len(loans):
        raise PanelError(source, [MESSAGES["segment_per_loan"].format(
            column=config["segment"], single=f"{len(single):,}", segments=counted(len(loans), "segment"),
            hold=agree(len(single), "holds", "hold"), examples=quoted([stats.segments[i] for i in single[:3]]))])
    live = ~np.isin(stats.states, config.buckets.absorbing)
    if not stats.cohort_trans_count[..., live, :].any():
        raise PanelError(source, [MESSAGES["no_moves"].format(rows=counted(int(stats.n_rows), "row"))])
    warnings = []
    zero = (stats.n_loans[:, :, 0] > 0) & (stats.ead[:, :, 0, :].sum(axis=-1) <= 0)
    if zero.any():
        s_idx, c_idx = np.nonzero(zero)
        n = len(s_idx)
        warnings.append(MESSAGES["zero_mob0"].format(cohorts=counted(n, "cohort"), have=agree(n, "has", "have"),
                                                     listed=_cells(stats, s_idx, c_idx)))
    # A loan far above the book (a misread 1e13 among balances of 1e4) moves every DEL cell of its cohort.
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = stats.ead.sum(axis=-1) / stats.n_loans  # (S, C, M+1) EAD per loan of each cell
    typical = np.median(mean[mean > 0]) if (mean > 0).any() else 0.0
    far = mean > EAD_SPREAD * typical
    if typical > 0 and far.any():
        s_idx, c_idx, m_idx = np.nonzero(far)
        n = len(s_idx)
        warnings.append(MESSAGES["ead_far"].format(cells=counted(n, "cohort-MOB cell"), have=agree(n, "has", "have"),
                                                   spread=f"{EAD_SPREAD:,.0f}", typical=typical,
                                                   listed=_cells(stats, s_idx, c_idx, m_idx)))
    # The data's last month sets the report's as-of: one cohort typed 2099 for 2019 would move it 80 years.
    last_month = np.where(stats.last_mob >= 0, stats.cohorts[None, :] + stats.last_mob, np.iinfo(np.int64).min)
    future = last_month > this_month()
    if future.any():
        s_idx, c_idx = np.nonzero(future)
        n = len(s_idx)
        warnings.append(MESSAGES["future_rows"].format(
            cells=counted(n, "cohort-segment"), reports=agree(n, "reports", "report"),
            today=month_label([this_month()])[0], last=month_label([int(last_month.max())])[0],
            listed=_cells(stats, s_idx, c_idx), column=config["cohort"]))
    # A written-off loan reported again: the chain never lets it leave, the actual cells count it where it is.
    absorbing = np.isin(stats.states, config.buckets.absorbing)
    exits = stats.cohort_trans_count[..., absorbing, :][..., ~absorbing]  # (S, C, M, A, L)
    if exits.any():
        n = int(exits.sum())
        by_pair = exits.sum(axis=(0, 1, 2))
        names_from, names_to = np.asarray(stats.states)[absorbing], np.asarray(stats.states)[~absorbing]
        pairs = ", ".join(f"{names_from[a]} -> {names_to[b]} {int(by_pair[a, b])}" for a, b in zip(*np.nonzero(by_pair)))
        s_idx, c_idx, m_idx = np.nonzero(exits.sum(axis=(3, 4)))
        warnings.append(MESSAGES["absorbing_exits"].format(moves=counted(n, "move"), pairs=pairs,
                                                           listed=_cells(stats, s_idx, c_idx, m_idx)))
    for warning in warnings:
        log.warning(warning)
    return replace(stats, warnings=(*stats.warnings, *warnings)) if warnings else stats


def _cells(stats: PanelStats, s_idx, c_idx, m_idx=None) -> str:
    """Segment-cohort(-MOB) cells as a warning lists them, at most MAX_LISTED."""
    mobs = [f" MOB {m}" for m in m_idx[:MAX_LISTED]] if m_idx is not None else [""] * len(s_idx[:MAX_LISTED])
    listed = ", ".join(f"{stats.segments[s]} {month_label([stats.cohorts[c]])[0]}{m}"
                       for s, c, m in zip(s_idx[:MAX_LISTED], c_idx[:MAX_LISTED], mobs, strict=True))
    return listed + (f" and {len(s_idx) - MAX_LISTED} more" if len(s_idx) > MAX_LISTED else "")


def _unique_months(months: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(months, return_inverse=True)`` by counting, not sorting: a panel's months span a short range."""
    low = int(months.min())
    shifted = months - low
    present = np.bincount(shifted) > 0
    return np.flatnonzero(present) + low, (np.cumsum(present) - 1)[shifted]


def aggregate_panel(panel: Panel, config: Config) -> PanelStats:
    """Panel -> sufficient statistics with bincounts (no loops over loans)."""
    max_mob = config.forecast.max_mob
    n_states = len(config.buckets.order)
    n_seg = len(panel.segments)
    warnings = list(panel.warnings)

    # Keys are built in place and rows picked by masks, not index arrays: on 10M rows each temporary is 80 MB,
    # and they set the peak memory of a run.
    beyond = panel.mob > max_mob
    cohorts, cohort_code = _unique_months(panel.cohort)
    n_coh = len(cohorts)
    group = panel.segment.astype(np.int64)
    group *= n_coh
    group += cohort_code  # the cohort-segment of each row
    del cohort_code
    beyond_group = group[beyond]

    # Consecutive sorted rows of the same loan one MOB apart form a transition m -> m+1.
    pair = (panel.loan[1:] == panel.loan[:-1]) & (np.diff(panel.mob) == 1) & (panel.mob[1:] <= max_mob)
    tkey = group[:-1][pair]
    for factor, term in ((max_mob, panel.mob[:-1]), (n_states, panel.state[:-1]), (n_states, panel.state[1:])):
        tkey *= factor
        tkey += term[pair]
    tsize = n_seg * n_coh * max_mob * n_states * n_states
    shape5 = (n_seg, n_coh, max_mob, n_states, n_states)
    trans_count = np.bincount(tkey, minlength=tsize).reshape(shape5)
    trans_from = np.bincount(tkey, weights=panel.ead[:-1][pair], minlength=tsize).reshape(shape5)
    trans_to = np.bincount(tkey, weights=panel.ead[1:][pair], minlength=tsize).reshape(shape5)
    del tkey, pair

    cell = group  # reused in place: the cohort-segment-MOB cell of each row
    del group
    cell *= max_mob + 1
    cell += panel.mob
    state, weight = panel.state, panel.ead
    if beyond.any():
        keep = ~beyond
        cell, state, weight = cell[keep], state[keep], weight[keep]
    size = n_seg * n_coh * (max_mob + 1)
    n_loans = np.bincount(cell, minlength=size)
    cell *= n_states
    cell += state
    ead = np.bincount(cell, weights=weight, minlength=size * n_states)
    weight = weight * weight
    ead_sq = np.bincount(cell, weights=weight, minlength=size * n_states)
    del cell, state, weight

    n_loans = n_loans.reshape(n_seg, n_coh, max_mob + 1)
    warnings += coverage_warnings(int(beyond.sum()), n_loans, panel.segments, cohorts, max_mob)
    ead = ead.reshape(n_seg, n_coh, max_mob + 1, n_states)
    final_mob, final_ead = final_rows(n_loans, ead, beyond_group, panel.mob[beyond], panel.state[beyond],
                                      panel.ead[beyond])

    return PanelStats(
        segments=panel.segments,
        cohorts=cohorts,
        states=tuple(config.buckets.order),
        ead=ead,
        n_loans=n_loans,
        cohort_trans_count=trans_count,
        cohort_trans_ead_from=trans_from,
        cohort_trans_ead_to=trans_to,
        n_rows=panel.n_rows,
        warnings=tuple(warnings),
        final_mob=final_mob,
        final_ead=final_ead,
        ead_sq=ead_sq.reshape(ead.shape),
    )
