"""Agency single-family loan performance files -> a pyxl_del panel: the cleaning rules Fannie Mae's and Freddie Mac's
readers (fannie.py, freddie.py) share. docs/real-data.md states every rule for users.

A reader brings each layout to one narrow frame of text fields, `RAW_FIELDS` (loan, period, orig_month, orig_upb, upb,
dlq, zb, removal, purpose, rate; month fields as month indexes year * 12 + month - 1), and `clean` turns it into the
panel in the config's [columns] names:

- state from the months delinquent: 0 CURRENT, 1 DPD30+, 2 DPD60+, 3 or more DPD90+ (monthly files count whole
  months, so there is no 1-29 days state; Freddie's "RA", REO acquired, is DPD90+). An unknown status (Fannie's 'XX',
  'X', blank) carries the loan's last known one; a loan with no known status before it takes the next known one; a
  loan with no known status at all is dropped whole, its zero-balance row too.
- a zero-balance code ends the loan: 01 (prepaid or matured) -> PREPAY with EAD 0; a credit event (02 third-party
  sale, 03 short sale / charge-off, 09 deed-in-lieu / REO disposition, 15 note sale) -> WRITEOFF at the UPB removed
  (else the last balance); any other code (06 / 96 repurchase, 16 re-performing sale) is a loan that leaves the data
  while live: that row is dropped and the loan is censored there. Rows after a loan's end are dropped.
- a masked balance (0.00 or blank on a live row: Fannie masks the current UPB in a loan's first months) carries the
  loan's last positive UPB, else the original UPB.
- cohort: the loan's first reporting month (default; cohort + MOB is then the calendar month and every loan has a
  MOB 0 row) or its origination month (loans enter seasoned, so most have no MOB 0 row); rows before the cohort
  month are dropped.
- gaps (months missing inside a loan's rows) are kept as they are: the engine counts no transition across a gap.
- segment: the loan purpose (its first row's), or one segment "ALL".
- no row left at all is a LoanFileError naming the files and the reasons, not an empty panel.

Memory: the readers yield the files block by block (`iter_fields`), and `read_by_loan` cleans them in batches of
whole loans (`clean_by_loan`), so a quarter of tens of millions of loan-months holds one batch beside its panel.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pyxl_del.engine.data import month_label
from pyxl_del.engine.errors import InputError

log = logging.getLogger(__name__)

RAW_FIELDS = ("loan", "period", "orig_month", "orig_upb", "upb", "dlq", "zb", "removal", "purpose", "rate")
PREPAY_CODES = ("01",)
# Credit events: third-party sale, short sale (Freddie: or charge-off), deed-in-lieu / REO disposition, non-performing
# note sale; and Fannie's 97 (removed at 180 days delinquent) and 98 (other credit event), which its combined
# layout carries from the credit risk transfer disclosures: read as "leaving while live" they dropped the loss.
LOSS_CODES = ("02", "03", "09", "15", "97", "98")
COHORT_BY = ("first_report", "origination")
SEGMENT_BY = ("purpose", "none")
ALL_SEGMENT = "ALL"
# Bytes per block of the streaming reader. pyarrow reads blocks ahead, so memory grows with the block: over 2M rows
# of the combined layout, iterating the blocks peaked at 0.94 GB with 64 MB blocks, 0.28 GB with 2 MB, as fast.
READ_BLOCK = 1 << 21
# Rows cleaned at once: the cleaning holds about 1 KB a row (text fields, sort, grouped fills), so a quarter of 40M
# loan-months cleaned whole needed 30-40 GB; in batches of whole loans it holds one batch beside the narrow panel
# (2M rows: peak 0.83 GB at 250,000 a batch, 1.42 GB at 1M, 1.86 GB whole; the time the same).
BATCH_ROWS = 250_000


class LoanFileError(InputError):
    """A loan performance file that cannot be read as the layout named (the message names the file and why)."""


@dataclass(frozen=True)
class ImportSummary:
    """What the cleaning did, in counts: the CLI prints it and docs/real-data.md quotes it."""

    rows_read: int
    rows: int
    loans: int
    cohorts: int
    states: dict[str, int]
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> rows
    masked_balances: int = 0  # live rows whose balance was carried or taken from the original UPB
    unknown_status: int = 0  # rows whose status was carried from a known one
    gaps: int = 0  # months missing inside loans' rows
    censored_loans: int = 0  # loans leaving the data while live (a non-terminal zero-balance code)

    def lines(self) -> list[str]:
        states = ", ".join(f"{k} {v:,}" for k, v in self.states.items())
        dropped = ", ".join(f"{v:,} {k}" for k, v in self.dropped.items() if v) or "none"
        return [f"{self.rows_read:,} rows read -> {self.rows:,} panel rows, {self.loans:,} loans, {self.cohorts} cohorts",
                f"states: {states}",
                f"rows dropped: {dropped}",
                f"balances filled (masked): {self.masked_balances:,}; unknown statuses carried: {self.unknown_status:,}",
                f"gaps inside loans: {self.gaps:,}; loans leaving while live: {self.censored_loans:,}"]


def month_from(text: pd.Series, pattern: str) -> pd.Series:
    """Month index (year * 12 + month - 1) of text dates: ``pattern`` "MMYYYY", "MM/YYYY", "MM/DD/YYYY" or "YYYYMM";
    blank or malformed -> <NA>."""
    text = text.str.strip()
    if pattern == "YYYYMM":
        year, month = text.str.slice(0, 4), text.str.slice(4, 6)
    elif pattern == "MMYYYY":
        year, month = text.str.slice(2, 6), text.str.slice(0, 2)
    else:  # MM/YYYY and MM/DD/YYYY: the year is the last four characters
        year, month = text.str.slice(-4), text.str.slice(0, 2)
    year, month = pd.to_numeric(year, errors="coerce"), pd.to_numeric(month, errors="coerce")
    ok = month.between(1, 12) & (year > 1900)
    return (year * 12 + month - 1).where(ok).astype("Int64")


@contextmanager
def unpacked(sources: Sequence[str | Path]) -> Iterator[list[Path]]:
    """The sources with each .zip archive replaced by the files it holds, unpacked into a temporary folder for as
    long as the files are read: the agencies publish a quarter as a .zip (Fannie's 2017Q1.zip holds 2017Q1.csv,
    Freddie's historical_data_2017Q1.zip both files of the quarter), and its first line read as text named no
    layout. Other files pass as they are (gzip, bz2 and zstd are read compressed)."""
    paths = [Path(s) for s in sources]
    if not any(p.suffix.lower() == ".zip" and p.is_file() for p in paths):
        yield paths
        return
    with tempfile.TemporaryDirectory(prefix="pyxl_del-unzip-") as folder:
        out, shown = [], {}  # shown: unpacked file -> how a message names it
        for i, path in enumerate(paths):
            if path.suffix.lower() != ".zip" or not path.is_file():
                out.append(path)
                continue
            # Each archive's files in a folder of its own: two archives may hold files of one name.
            target = Path(folder) / str(i) / path.name
            target.mkdir(parents=True)
            try:
                with zipfile.ZipFile(path) as archive:
                    members = [m for m in archive.infolist() if not m.is_dir()
                               and not m.filename.startswith("__MACOSX/") and not Path(m.filename).name.startswith(".")]
                    if not members:
                        raise LoanFileError(f"{path}: the .zip archive holds no file")
                    for n, member in enumerate(members):
                        # Flattened under a number: a member's own path could climb out of the folder ("../x").
                        file = target / f"{n}-{Path(member.filename).name}"
                        with archive.open(member) as src, open(file, "wb") as dst:
                            shutil.copyfileobj(src, dst, 1 << 20)
                        out.append(file)
                        shown[str(file)] = f"{member.filename} in {path}"
            except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError) as exc:
                raise LoanFileError(f"{path}: not a readable .zip archive ({exc})") from None
        try:
            yield out
        except LoanFileError as exc:
            # The temporary folder is gone once the message is read: it names the member and the archive instead.
            message = str(exc)
            for file, name in shown.items():
                message = message.replace(file, name)
            raise LoanFileError(message) from None


def iter_fields(path: str | Path, fields: Mapping[str, int], *, what: str) -> Iterator[pd.DataFrame]:
    """The pipe-delimited, header-less file's ``fields`` (name -> 0-based position) as text, block by block as
    pyarrow reads it (compressed files by their extension); only the named columns are kept in memory."""
    import pyarrow as pa
    import pyarrow.csv as pc

    path = Path(path)
    if not path.is_file():
        raise LoanFileError(f"{path}: file not found ({what})")
    width = field_count(path)
    short = {k: v for k, v in fields.items() if v >= width}
    if short:
        raise LoanFileError(f"{path}: not {what}: its first line has {width} '|'-separated fields, and "
                            f"{', '.join(short)} would be field {max(short.values())} (0-based)")
    names = [f"f{i}" for i in range(width)]
    wanted = [names[i] for i in fields.values()]
    try:
        with pa.input_stream(str(path), compression="detect") as stream:
            reader = pc.open_csv(
                stream,
                read_options=pc.ReadOptions(column_names=names, block_size=READ_BLOCK),
                parse_options=pc.ParseOptions(delimiter="|", quote_char=False),
                convert_options=pc.ConvertOptions(include_columns=wanted,
                                                  column_types=dict.fromkeys(wanted, pa.string()),
                                                  strings_can_be_null=False))
            for batch in reader:
                table = pa.Table.from_batches([batch]).rename_columns(list(fields))
                yield table.to_pandas(types_mapper=lambda _t: pd.StringDtype())
    except (pa.ArrowInvalid, OSError) as exc:
        raise LoanFileError(f"{path}: cannot read it as {what}: {exc}{_bad_line(path, width)}") from exc


def _bad_line(path: Path, width: int) -> str:
    """Which line breaks the layout, when pyarrow refuses a file for a line of the wrong field count: it names the
    count and the line's start, not where it is. Counted over the whole file (the error path only), block by block
    with numpy. The last line short of fields is a file cut short (an interrupted download or copy, or an excerpt
    cut by size)."""
    import pyarrow as pa

    newline, pipe, cr = ord("\n"), ord("|"), ord("\r")
    lines = 0  # whole lines read before this block
    pipes_before = length_before = 0  # the '|' and bytes of the unfinished line carried into this block
    previous_byte = newline
    first_bad: tuple[int, int] | None = None  # (line, fields)
    last_nonempty = 0
    try:
        with pa.input_stream(str(path), compression="detect") as stream:
            while chunk := stream.read(READ_BLOCK):
                block = np.frombuffer(chunk, dtype=np.uint8)
                ends = np.flatnonzero(block == newline)
                pipes = np.concatenate(([0], np.cumsum(block == pipe)))
                starts = np.concatenate(([0], ends[:-1] + 1))
                fields = pipes[ends] - pipes[starts] + 1
                length = ends - starts
                if len(ends):
                    fields[0] += pipes_before
                    length[0] += length_before
                    length -= np.concatenate(([previous_byte], block))[ends] == cr  # a CRLF line end
                    pipes_before, length_before = int(pipes[-1] - pipes[ends[-1] + 1]), len(block) - ends[-1] - 1
                else:
                    pipes_before, length_before = pipes_before + int(pipes[-1]), length_before + len(block)
                previous_byte = int(block[-1])
                nonempty = np.flatnonzero(length > 0)
                if len(nonempty):
                    last_nonempty = lines + int(nonempty[-1]) + 1
                    wrong = nonempty[fields[nonempty] != width]
                    if first_bad is None and len(wrong):
                        first_bad = (lines + int(wrong[0]) + 1, int(fields[wrong[0]]))
                lines += len(ends)
    except (pa.ArrowInvalid, OSError):
        return ""
    if length_before:  # a last line without a line end
        lines += 1
        last_nonempty = lines
        if first_bad is None and pipes_before + 1 != width:
            first_bad = (lines, pipes_before + 1)
    if first_bad is None:
        return ""
    line, count = first_bad
    if line == last_nonempty and count < width:
        return (f". Its last line has {count} of the {width} fields: the file is cut short (an interrupted download "
                f"or copy); download it again, or delete that line")
    return f". Line {line:,} has {count} '|'-separated fields where the first line has {width}: mend or delete it"


def read_fields(path: str | Path, fields: Mapping[str, int], *, what: str) -> pd.DataFrame:
    """`iter_fields` whole (the static files: one row per loan)."""
    frames = list(iter_fields(path, fields, what=what))
    if not frames:
        return pd.DataFrame({k: pd.array([], dtype=pd.StringDtype()) for k in fields})
    return concat(frames)


def field_count(path: Path) -> int:
    """Fields on the file's first line (0 for an empty file)."""
    fields = first_line(path)
    return len(fields) if len(fields) > 1 or fields[0].strip() else 0


def first_line(path: Path) -> list[str]:
    """The first line's '|'-separated fields as text."""
    import pyarrow as pa

    with pa.input_stream(str(path), compression="detect") as stream:
        first = stream.read(1 << 16).split(b"\n", 1)[0]
    # utf-8-sig: a file saved with a byte order mark (a Windows editor) would otherwise start with "\ufeff", and the
    # layout checks look at the first field. pyarrow skips the mark itself when it reads the fields.
    return first.decode("utf-8-sig", "replace").rstrip("\r").split("|")


def clean(raw: pd.DataFrame, columns: Mapping[str, str], *, purposes: Mapping[str, str],
          cohort_by: str = "first_report", segment_by: str = "purpose",
          sources: Sequence[str | Path] = ()) -> tuple[pd.DataFrame, ImportSummary]:
    """The raw frame (`RAW_FIELDS`; month fields as month indexes, the rest text) -> (panel, summary).

    ``columns``: the [columns] names (loan_id, cohort, mob, segment, state, ead and apr, "" = no APR column).
    ``purposes``: loan purpose code -> segment name (other codes: "UNKNOWN"). ``sources``: the files read, named by
    the error when no row is left. Vectorised: one sort by loan and month, then grouped forward fills and cumulative
    flags; no loop over loans or rows.
    """
    return _checked(*_clean_part(raw, columns, purposes=purposes, cohort_by=cohort_by, segment_by=segment_by),
                    sources)


class NotByLoan(Exception):
    """A loan's rows come back after a batch that held some of them was cleaned: the files do not list each loan's
    rows together, so they are read whole."""


def in_batches(frames: Iterable[pd.DataFrame], rows: int | None = None) -> Iterator[pd.DataFrame]:
    """The blocks a reader yields, regrouped into frames of at least ``rows`` (default `BATCH_ROWS`) rows, the last
    one fewer."""
    rows = rows or BATCH_ROWS
    buffer, n = [], 0
    for frame in frames:
        buffer.append(frame)
        n += len(frame)
        if n >= rows:
            yield concat(buffer)
            buffer, n = [], 0
    if buffer:
        yield concat(buffer)


def clean_by_loan(batches: Iterable[pd.DataFrame], columns: Mapping[str, str], *, purposes: Mapping[str, str],
                  cohort_by: str = "first_report", segment_by: str = "purpose",
                  sources: Sequence[str | Path] = ()) -> tuple[pd.DataFrame, ImportSummary]:
    """`clean` batch by batch, holding one batch of raw rows at a time. The agencies' files list each loan's rows
    together, so a batch is cleaned without the rows of its last loan, which wait for the next batch: every loan is
    cleaned whole, once, and the panel and counts equal `clean`'s of the whole files. Raises `NotByLoan` when a loan
    seen in an earlier batch comes back (a file sorted by month, or files split by month)."""
    parts: list[tuple[pd.DataFrame, ImportSummary]] = []
    seen: set[str] = set()  # checked and grown per batch in C: not every earlier batch's ids hashed again

    def part(raw: pd.DataFrame) -> None:
        ids = set(raw["loan"].str.strip().unique()) - {""}
        if not seen.isdisjoint(ids):
            raise NotByLoan
        seen.update(ids)
        parts.append(_clean_part(raw, columns, purposes=purposes, cohort_by=cohort_by, segment_by=segment_by))

    carry = None
    for raw in batches:
        if carry is not None:
            raw = concat([carry, raw])
        last = (raw["loan"] == raw["loan"].iloc[-1]).to_numpy()
        carry = raw[last]
        if not last.all():
            part(raw[~last].reset_index(drop=True))
    if carry is not None:
        part(carry.reset_index(drop=True))
    if not parts:
        raise LoanFileError(f"{_file_names(sources)}: no loan left to import: no row read")
    panels = [p for p, _ in parts]
    summaries = [s for _, s in parts]
    panel = concat(panels) if len(panels) > 1 else panels[0]
    summary = ImportSummary(
        rows_read=sum(s.rows_read for s in summaries), rows=len(panel), loans=sum(s.loans for s in summaries),
        cohorts=int(panel[columns["cohort"]].nunique()),
        states={k: sum(s.states[k] for s in summaries) for k in summaries[0].states},
        dropped={k: sum(s.dropped[k] for s in summaries) for k in summaries[0].dropped},
        masked_balances=sum(s.masked_balances for s in summaries),
        unknown_status=sum(s.unknown_status for s in summaries), gaps=sum(s.gaps for s in summaries),
        censored_loans=sum(s.censored_loans for s in summaries))
    return _checked(panel, summary, sources)


def read_by_loan(raw_blocks: Callable[[list[Path]], Iterator[pd.DataFrame]], sources: Sequence[str | Path],
                 columns: Mapping[str, str], *, purposes: Mapping[str, str], cohort_by: str = "first_report",
                 segment_by: str = "purpose") -> tuple[pd.DataFrame, ImportSummary]:
    """A reader's files (.zip archives unpacked) -> (panel, summary): ``raw_blocks(files)`` cleaned in batches of
    whole loans (`clean_by_loan`), or whole where the files do not list each loan's rows together."""
    options = {"purposes": purposes, "cohort_by": cohort_by, "segment_by": segment_by, "sources": sources}
    with unpacked(sources) as files:
        try:
            return clean_by_loan(in_batches(raw_blocks(files)), columns, **options)
        except NotByLoan:
            log.info("the files do not list each loan's rows together: read whole")
            return clean(concat(list(raw_blocks(files))), columns, **options)


def joined(monthly: Iterable[pd.DataFrame], static: pd.DataFrame, *, names: tuple[str, str]) -> Iterator[pd.DataFrame]:
    """Blocks of monthly rows joined to their loans' static rows (Fannie's Acquisition file, Freddie's origination
    file: one row per loan), as raw frames. ``names``: the two kinds of file, for the error when no loan matches."""
    matched = read = False
    for block in monthly:
        # These layouts give no UPB at removal: a credit event is written off at the loan's last balance.
        block["removal"] = pd.array([""] * len(block), dtype="string")
        raw = block.merge(static, on="loan", how="left", validate="many_to_one")
        read |= len(raw) > 0
        matched |= bool(raw["purpose"].notna().any())
        for col in ("purpose", "orig_upb", "rate"):
            raw[col] = raw[col].fillna("")
        yield raw
    if read and not matched:
        raise LoanFileError(f"no loan of the {names[0]} files is in the {names[1]} files given: are they the same "
                            f"quarter's?")


def _file_names(sources: Sequence[str | Path]) -> str:
    return ", ".join(Path(s).name for s in sources) or "the files"


def _checked(panel: pd.DataFrame, summary: ImportSummary,
             sources: Sequence[str | Path]) -> tuple[pd.DataFrame, ImportSummary]:
    """(panel, summary), logged; a LoanFileError naming the files and the reasons when no row is left."""
    if panel.empty:
        why = ", ".join(f"{v:,} {k}" for k, v in summary.dropped.items() if v)
        raise LoanFileError(f"{_file_names(sources)}: no loan left to import: {summary.rows_read:,} rows read"
                            f"{', ' + why if why else ''} (see docs/real-data.md, the cleaning rules)")
    log.info("loan performance import: %s", "; ".join(summary.lines()))
    return panel, summary


def _clean_part(raw: pd.DataFrame, columns: Mapping[str, str], *, purposes: Mapping[str, str],
                cohort_by: str, segment_by: str) -> tuple[pd.DataFrame, ImportSummary]:
    """`clean` without its check for an empty result (a batch may keep no row)."""
    if cohort_by not in COHORT_BY:
        raise InputError(f"cohort_by must be one of {', '.join(COHORT_BY)} (got {cohort_by!r})")
    if segment_by not in SEGMENT_BY:
        raise InputError(f"segment_by must be one of {', '.join(SEGMENT_BY)} (got {segment_by!r})")
    n_read = len(raw)
    dropped: dict[str, int] = {}
    bad_period = raw["period"].isna() | raw["loan"].str.strip().eq("")
    dropped["without a loan id or reporting month"] = int(bad_period.sum())
    raw = raw[~bad_period.to_numpy()].sort_values(["loan", "period"], kind="stable")
    dup = raw.duplicated(["loan", "period"], keep="last").to_numpy()
    dropped["repeating a loan's month (the last kept)"] = int(dup.sum())
    raw = raw[~dup].reset_index(drop=True)
    loan = raw["loan"]
    loan_code = pd.factorize(loan)[0]  # integer loan codes: every grouped fill below groups by them, not by text
    number = {k: pd.to_numeric(raw[k].str.strip(), errors="coerce").astype("float64").to_numpy(na_value=np.nan)
              for k in ("orig_upb", "upb", "removal", "rate")}

    # End of life: the first row with a zero-balance code; rows after it are not the loan's any more.
    zb = raw["zb"].str.strip()
    zb = zb.where(zb.eq(""), zb.str.zfill(2)).to_numpy(dtype=object)
    ended = zb != ""
    after_end = pd.Series(ended).groupby(loan_code).cumsum().to_numpy() - ended > 0
    prepay, loss = np.isin(zb, PREPAY_CODES), np.isin(zb, LOSS_CODES)
    censor = ended & ~prepay & ~loss

    # Status: months delinquent; RA (REO acquired) counts as 90+; unknown carried forward, then back, within the
    # loan's own rows (not the stray rows after its end).
    dlq_text = raw["dlq"].str.strip()
    dlq = pd.to_numeric(dlq_text, errors="coerce").where(lambda d: d >= 0)
    dlq = dlq.where(~dlq_text.eq("RA"), 3.0).where(~after_end)
    known = dlq.notna().to_numpy()
    filled = dlq.groupby(loan_code).ffill().groupby(loan_code).bfill().to_numpy(dtype=np.float64,
                                                                                                 na_value=np.nan)
    live = ~ended & ~after_end
    status_carried = live & ~known & ~np.isnan(filled)
    # A loan without any known status goes whole, its zero-balance row too: kept, that row alone would be a loan
    # reported first as PREPAY or WRITEOFF at MOB 0, a cohort of loans never seen alive.
    no_status = ~after_end & np.isnan(filled)
    state = np.select([filled >= 3, filled == 2, filled == 1], ["DPD90+", "DPD60+", "DPD30+"], "CURRENT")
    state = np.where(prepay, "PREPAY", np.where(loss, "WRITEOFF", state))

    # Balance: masked (0 / blank) on a live row -> the last positive UPB, else the original UPB.
    upb = pd.Series(np.where(number["upb"] > 0, number["upb"], np.nan))
    carried = upb.groupby(loan_code).ffill().to_numpy()
    carried = np.where(np.isnan(carried), number["orig_upb"], carried)
    masked = live & ~(number["upb"] > 0)
    removal = np.where(number["removal"] > 0, number["removal"], carried)
    ead = np.where(prepay, 0.0, np.where(loss, removal, carried))

    keep = ~after_end & ~censor & ~no_status & ~np.isnan(ead)
    leaving = censor & ~after_end & ~no_status
    dropped["after the loan's end"] = int(after_end.sum())
    dropped["leaving the data while live (zero-balance code not a prepayment or credit event)"] = int(leaving.sum())
    dropped["of loans without any known status"] = int(no_status.sum())
    dropped["without a balance (no current or original UPB)"] = int((~after_end & ~censor & ~no_status
                                                                      & np.isnan(ead)).sum())

    period = raw["period"].to_numpy(dtype=np.int64)
    if cohort_by == "origination":
        start = raw["orig_month"].groupby(loan_code).transform("first").to_numpy(dtype=np.float64,
                                                                                       na_value=np.nan)
        no_orig = np.isnan(start)
        dropped["of loans without an origination month"] = int((keep & no_orig).sum())
        before = ~no_orig & (period < np.nan_to_num(start))
        dropped["reported before the origination month"] = int((keep & before).sum())
        keep &= ~no_orig & ~before
        start = np.nan_to_num(start).astype(np.int64)
    else:
        first = np.where(keep, period, np.iinfo(np.int64).max)
        start = pd.Series(first).groupby(loan_code).transform("min").to_numpy()
    purpose = raw["purpose"].str.strip().groupby(loan_code).transform("first")
    segment = (purpose.map(dict(purposes)).fillna("UNKNOWN") if segment_by == "purpose"
               else pd.Series(ALL_SEGMENT, index=raw.index))

    mob = period - start
    panel = pd.DataFrame({columns["loan_id"]: loan.to_numpy(), "_cohort": start, columns["mob"]: mob,
                          columns["segment"]: segment.to_numpy(dtype=object), columns["state"]: state,
                          columns["ead"]: ead})
    if columns.get("apr"):
        panel[columns["apr"]] = number["rate"] / 100.0
    panel = panel[keep].reset_index(drop=True)
    cohort = panel.pop("_cohort").to_numpy()
    values, inverse = np.unique(cohort, return_inverse=True)  # label the few cohorts, not every row
    panel.insert(1, columns["cohort"], np.asarray(month_label(values), dtype=object)[inverse])
    for key in ("loan_id", "cohort", "segment", "state"):
        panel[columns[key]] = panel[columns[key]].astype("string")

    kept_mob = panel[columns["mob"]].to_numpy()
    step = np.diff(kept_mob)
    same = panel[columns["loan_id"]].to_numpy()[1:] == panel[columns["loan_id"]].to_numpy()[:-1]
    gaps = int(np.where(same & (step > 1), step - 1, 0).sum())
    counts = panel[columns["state"]].value_counts()
    order = ("CURRENT", "DPD30+", "DPD60+", "DPD90+", "WRITEOFF", "PREPAY")
    summary = ImportSummary(
        rows_read=n_read, rows=len(panel), loans=int(panel[columns["loan_id"]].nunique()),
        cohorts=int(panel[columns["cohort"]].nunique()), states={s: int(counts.get(s, 0)) for s in order},
        # Counted on the rows the panel keeps: a dropped loan's masked rows were filled in no row of it.
        dropped=dropped, masked_balances=int((masked & keep).sum()),
        unknown_status=int((status_carried & keep).sum()), gaps=gaps,
        censored_loans=len(np.unique(loan_code[leaving])),
    )
    return panel, summary


def concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
