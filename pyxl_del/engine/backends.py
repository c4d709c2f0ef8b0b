"""Stage 1 at any scale: panel -> sufficient statistics (PanelStats) on pandas, DuckDB or Spark.

Everything after aggregation is small, so the size of the book only matters here. Three backends give the
same PanelStats (to float round-off), the same PanelError findings and the same warnings:

* ``pandas``: the in-memory path of data.py (DataFrames, a single CSV/Parquet/.xlsx file; the UDFs' path);
  the default for one local Parquet file that fits in memory (its text is read as Arrow dictionaries);
* ``duckdb``: CSV and Parquet files, globs ("parts/*.parquet") and folders of parts, out of core; the default
  for other file inputs;
* ``spark``: the same inputs, or a Spark DataFrame, on a SparkSession or a cluster URL (``pyxl_del[spark]``).

DuckDB and Spark run the one query of panel_sql.py, which also checks the input rules and returns counts of
bad rows; only when a rule fails are up to ``examples`` offending rows (loan id and MOB) fetched to quote them.

While a query runs, ``progress`` receives "aggregate 42%" updates; callers that count steps skip names ending
in "%". ``run_info`` fingerprints (``fingerprint``): a DataFrame by its values, one file by its bytes, several
files (glob or folder) by their relative names, sizes and modification times, so a changed part changes it
without reading terabytes; a remote address or a Spark DataFrame by its address or query plan only.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pyxl_del.engine import panel_sql
from pyxl_del.engine.config import LOGICAL_COLUMNS, Config
from pyxl_del.engine.data import (
    GAP_EXAMPLES,
    HEADER_SEARCH_ROWS,
    MAX_LISTED,
    MESSAGES,
    PanelStats,
    _require_columns,
    aggregate_panel,
    changes_problem,
    check_stats,
    cohort_problem,
    coverage_warnings,
    duplicates_problem,
    ead_problem,
    encoding_problem,
    final_rows,
    find_header,
    gap_warning,
    header_fields,
    late_start_warning,
    mob_problem,
    period_freq,
    read_panel,
    require_unique,
    segment_name_findings,
    state_problem,
    validate_panel,
)
from pyxl_del.engine.data import fingerprint as content_fingerprint
from pyxl_del.engine.errors import FRAME_SOURCE, PanelError, agree, counted, shorten

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
BACKENDS = ("pandas", "duckdb", "spark")
CSV_SUFFIXES = (".csv", ".txt", ".gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
PROGRESS_EVERY = 0.5  # seconds between progress reports of a running query
DUCKDB_MEMORY_SHARE = 0.6  # of physical memory, when no memory_limit is given: the rest is Python's and the OS's
# "auto" reads one Parquet file in memory when its rows at this many bytes (the peak per row of the in-memory path
# is about 60: 564 MB for 10M rows) take at most this share of physical memory; larger files go to DuckDB.
IN_MEMORY_BYTES_PER_ROW = 100
IN_MEMORY_SHARE = 0.25
_REMOTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_GLOB = re.compile(r"[*?\[]")

# Our own Spark sessions: no web UI and no console bars (faster start, quiet), UTC so timestamps' months do not
# depend on the machine, Arrow for pandas exchange. Local sessions also get few shuffle partitions.
SPARK_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}


# ------------------------------------------------------------------------------------------------ sources


@dataclass(frozen=True)
class Files:
    """A file input resolved: the text as given, the files (or the address of a remote one) and their format."""

    text: str
    paths: tuple[str, ...]
    kind: str  # "csv" | "parquet"
    remote: bool = False


def _kind(path: str, text: str) -> str:
    suffix = Path(path.removesuffix("/")).suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in EXCEL_SUFFIXES:
        raise PanelError(text, [f"{suffix} files are read by the pandas backend only (backend='pandas')"])
    raise PanelError(text, [f"unsupported file type {suffix!r}: use .csv or .parquet (or .xlsx with pandas)"])


def resolve_files(source) -> Files:
    """A path, a glob ("parts/*.parquet", "**" recurses) or a folder of parts -> the files to read.

    Hidden and underscore files (Spark's _SUCCESS, .crc) are skipped in folders. A remote address (s3://...,
    hdfs://...) is passed to the engine as it is.
    """
    text = os.fspath(source)
    if _REMOTE.match(text) and not text.startswith("file://"):
        return Files(text, (text,), _kind(text, text) if Path(text).suffix else "parquet", remote=True)
    text = text.removeprefix("file://")
    path = Path(text)
    if _GLOB.search(text):
        paths = sorted(p for p in glob.glob(text, recursive=True) if Path(p).is_file())
        if not paths:
            raise PanelError(text, [f"no files match {text!r}"])
    elif path.is_dir():
        paths = sorted(str(p) for p in path.rglob("*") if p.is_file() and not p.name.startswith((".", "_"))
                       and p.suffix.lower() in PARQUET_SUFFIXES + CSV_SUFFIXES)
        # A .txt beside .csv or .parquet parts is a note (README.txt), not a part: it had stopped a Parquet folder
        # as "mixes CSV and Parquet files", naming no file.
        if any(Path(p).suffix.lower() != ".txt" for p in paths):
            paths = [p for p in paths if Path(p).suffix.lower() != ".txt"]
        if not paths:
            raise PanelError(text, [f"no .parquet or .csv files in the folder {path}"])
    elif path.is_file():
        paths = [text]
    else:
        raise PanelError(text, [f"file not found: {path}"])
    empty = [p for p in paths if os.path.getsize(p) == 0]
    if empty:  # Spark failed on one (an internal error), DuckDB named it in its SQL, pandas skipped it
        raise PanelError(text, [f"{p} is empty (0 bytes; an interrupted write?): delete it or write it again"
                                for p in empty[:5]])
    kinds = {_kind(p, text) for p in paths}
    if len(kinds) > 1:
        first = {kind: next(p for p in paths if _kind(p, text) == kind) for kind in sorted(kinds)}
        raise PanelError(text, [f"mixes CSV and Parquet files ({first['csv']}, {first['parquet']}): give one "
                                f"format"])
    return Files(text, tuple(paths), kinds.pop())


def _is_spark_frame(source) -> bool:
    return type(source).__module__.startswith("pyspark.") and hasattr(source, "createOrReplaceTempView")


def choose_backend(source) -> str:
    """auto: a DataFrame -> pandas; a Spark DataFrame -> spark; an .xlsx -> pandas; one local Parquet file that
    fits in memory (``fits_in_memory``) -> pandas; other files (CSV, globs, folders, remote) -> duckdb.

    The in-memory path reads a Parquet file's text as Arrow dictionaries and aggregates with one sort and
    bincounts: on 2 cores it is about 1.4x faster than DuckDB's window query for a panel sorted by loan (the
    usual layout), slower for one in random row order, and it cannot spill to disk.
    """
    if isinstance(source, pd.DataFrame):
        return "pandas"
    if _is_spark_frame(source):
        return "spark"
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        suffix = Path(text).suffix.lower()
        if suffix in EXCEL_SUFFIXES:
            return "pandas"
        local_file = not _REMOTE.match(text) and not _GLOB.search(text) and Path(text).is_file()
        return "pandas" if suffix in PARQUET_SUFFIXES and local_file and fits_in_memory(text) else "duckdb"
    raise TypeError(f"a panel is a DataFrame, a file path, a glob or a folder; got {type(source).__name__}")


def fits_in_memory(path: str) -> bool:
    """A Parquet file's rows, at IN_MEMORY_BYTES_PER_ROW, take at most IN_MEMORY_SHARE of physical memory (rows
    from the file's footer; an unreadable footer -> False, and DuckDB's reader words the error)."""
    import pyarrow.parquet as pq

    try:
        rows = pq.read_metadata(path).num_rows
    except (OSError, ValueError):
        return False
    total = _physical_memory()
    return total is None or rows * IN_MEMORY_BYTES_PER_ROW <= IN_MEMORY_SHARE * total


def source_name(source) -> str:
    """The input as run_info and messages name it."""
    if isinstance(source, pd.DataFrame):
        return FRAME_SOURCE
    if _is_spark_frame(source):
        return "Spark DataFrame"
    text = os.fspath(source)
    return text if _is_many(text) else Path(text).name


def _is_many(text: str) -> bool:
    """A glob or a folder: several files, named by the text as given."""
    return bool(_GLOB.search(text)) or Path(text).is_dir()


def _base(text: str) -> str:
    """The folder of a glob or folder of parts, that its files are named relative to."""
    return text if Path(text).is_dir() else os.path.dirname(_GLOB.split(text)[0]) or "."


def _file_names(files: Files, paths: Sequence[str]) -> str:
    """Some of the files of ``files`` as messages name them: relative to the folder or glob given, the first
    MAX_LISTED."""
    base = _base(files.text)
    shown = ", ".join(os.path.relpath(p, base) for p in paths[:MAX_LISTED])
    return shown + (f" and {len(paths) - MAX_LISTED} more" if len(paths) > MAX_LISTED else "")


def fingerprint(source, config: Config) -> str:
    """A short hash that changes when the panel does (see the module docstring for what each input hashes)."""
    if isinstance(source, pd.DataFrame):
        return content_fingerprint(source[[config[k] for k in LOGICAL_COLUMNS]])
    h = hashlib.sha256()
    if _is_spark_frame(source):
        h.update(str(source.semanticHash()).encode())
        h.update("\n".join(sorted(source.inputFiles())).encode())
        return h.hexdigest()[:16]
    text = os.fspath(source)
    if _REMOTE.match(text) and not text.startswith("file://"):
        h.update(text.encode())
    elif not _is_many(text):
        return content_fingerprint(text)
    else:
        base = _base(text)
        for p in resolve_files(text).paths:
            stat = os.stat(p)
            h.update(f"{os.path.relpath(p, base)}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _sql_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns an engine can scan: object, period and categorical values become text (the SQL try_casts them
    as pandas' to_numeric would), so mixed or odd values are checked by the rules instead of failing the scan."""
    odd = [c for c in frame.columns
           if frame[c].dtype == object or isinstance(frame[c].dtype, (pd.PeriodDtype, pd.CategoricalDtype))]
    return frame.astype({c: "string" for c in odd}) if odd else frame


# ------------------------------------------------------------------------------------------------ engines


class _DuckDB:
    """One in-memory DuckDB per aggregation, with its own spill folder."""

    dialect = panel_sql.DUCKDB

    def __init__(self, memory_limit: str | None, threads: int | None):
        import duckdb

        self.spill = tempfile.mkdtemp(prefix="pyxl_del_duckdb_")
        settings = {"threads": threads or _cores(), "temp_directory": self.spill, "preserve_insertion_order": False}
        limit = memory_limit or _default_memory_limit()
        if limit:
            settings["memory_limit"] = limit
        self.con = duckdb.connect(config=settings)
        self.con.execute("SET enable_progress_bar = true; SET enable_progress_bar_print = false")
        # What a file that cannot be read raises (missing, not Parquet, a CSV with ragged rows; a damaged Parquet
        # footer raises the base duckdb.Error), but not the errors of a query that is wrong: those are bugs.
        self.read_errors = (duckdb.Error,)
        self.bugs = (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException, duckdb.InternalException)

    def register(self, source, config: Config, label: str) -> tuple[str, dict[str, str]]:
        if isinstance(source, pd.DataFrame):
            self.con.register("pyxl_frame", _sql_ready(source))
            relation = "pyxl_frame"
        else:
            relation = self._reader(source.paths, source.kind)
        described = self.con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
        _require_columns([row[0] for row in described], config, label)
        select = panel_sql.select_columns(self.dialect, relation, _mapped(config))
        self.con.execute(f"CREATE TEMP VIEW pyxl_panel AS {select}")
        return "pyxl_panel", {row[0]: row[1] for row in described}

    def _reader(self, paths: Sequence[str], kind: str) -> str:
        listed = "[" + ", ".join(self.dialect.literal(p) for p in paths) + "]"
        # The sniffer reads the quote character off the first 20,480 lines; a name quoted for its comma further
        # down would then split the row. CSV quotes with '"' and doubles it, as Excel and pandas write it.
        return (f"read_parquet({listed}, union_by_name = true)" if kind == "parquet" else
                f"read_csv({listed}, header = true, all_varchar = true, union_by_name = true, quote = '\"', "
                f"escape = '\"')")

    def columns_of(self, path: str, kind: str) -> list[str]:
        """The columns of one file, as the engine reads them."""
        return [row[0] for row in self.con.execute(f"DESCRIBE SELECT * FROM {self._reader([path], kind)}").fetchall()]

    def query(self, sql: str) -> pd.DataFrame:
        return self.con.execute(sql).df()

    def progress(self) -> float | None:
        value = self.con.query_progress()
        return value if value >= 0 else None

    def cancel(self) -> None:
        self.con.interrupt()

    def close(self) -> None:
        self.con.close()
        shutil.rmtree(self.spill, ignore_errors=True)


class _Spark:
    """Temporary views on a SparkSession; the session is the caller's, or one made once and reused."""

    def __init__(self, spark):
        from pyspark.errors import AnalysisException

        self.session = spark_session(spark)
        self.read_errors = (AnalysisException,)
        self.bugs = ()
        # A session may treat backslashes in string literals literally; quote for the one we have.
        literal = self.session.conf.get("spark.sql.parser.escapedStringLiterals", "false") == "true"
        self.dialect = panel_sql.Dialect("spark", "`", backslash_escapes=not literal)
        self.group = f"pyxl_del_{uuid.uuid4().hex[:12]}"
        self.views: list[str] = []

    def register(self, source, config: Config, label: str) -> tuple[str, dict[str, str]]:
        import pyarrow as pa

        if isinstance(source, pd.DataFrame):
            frame = self.session.createDataFrame(pa.Table.from_pandas(_sql_ready(source), preserve_index=False))
        elif _is_spark_frame(source):
            frame = source
        elif source.kind == "parquet":
            frame = self._parquet(source.paths)
        else:
            # Spark's CSV reader takes the first file's header for all; read each and union by name instead.
            parts = [self._csv(p, _mapped(config)) for p in source.paths]
            frame = parts[0]
            for part in parts[1:]:
                frame = frame.unionByName(part, allowMissingColumns=True)
        _require_columns(frame.columns, config, label)
        raw = self._view(frame)
        view = self._view(self.session.sql(panel_sql.select_columns(self.dialect, self.dialect.ident(raw),
                                                                    _mapped(config))))
        return self.dialect.ident(view), dict(frame.dtypes)

    def _parquet(self, paths: Sequence[str]):
        try:
            return self.session.read.option("mergeSchema", "true").parquet(*paths)
        except Exception as exc:  # a SparkException comes as py4j's Py4JJavaError, not as an AnalysisException
            if "CANNOT_MERGE_SCHEMAS" not in str(exc):
                raise
        # Parts whose columns differ in type (balances as whole numbers in one part, a MOB written as text in
        # another) stopped Spark with a JVM trace: each part's columns as text, which the panel's SQL reads as it
        # reads a CSV's, as DuckDB's union by name reads them.
        from pyspark.sql import functions

        frame = None
        for path in paths:
            part = self.session.read.parquet(path)
            part = part.select([functions.col(f"`{c}`").cast("string").alias(c) for c in part.columns])
            frame = part if frame is None else frame.unionByName(part, allowMissingColumns=True)
        return frame

    def _csv(self, path: str, wanted: Sequence[str] = ()):
        # Spark sniffs neither the delimiter (a Vietnamese or German Excel saves "CSV" with semicolons) nor a title
        # above the header, as DuckDB's sniffer and the pandas reader do: both are read off the file's top lines.
        top = [row.value for row in self.session.read.text(path).limit(HEADER_SEARCH_ROWS).collect()]
        # No line holds every mapped column: the first line's names, which the missing-column error lists.
        above, _, delimiter = find_header(top, wanted) or find_header(top, ()) or (0, [], ",")
        # A quote inside a quoted field is doubled, as Excel and pandas write it; Spark's default escape is '\\'.
        # multiLine: a quoted field may hold a line break (Alt+Enter in Excel), which DuckDB and pandas read; Spark
        # otherwise took each line for a row. It parses a file in one task, so a part is the unit of parallelism.
        read = self.session.read.options(header=True, inferSchema=False, encoding="UTF-8", escape='"', sep=delimiter,
                                         multiLine=True)
        if above:
            lines = self.session.sparkContext.textFile(path).zipWithIndex().filter(lambda line: line[1] >= above)
            part = read.csv(lines.keys())
        else:
            part = read.csv(path)
        return part.withColumnRenamed(part.columns[0], part.columns[0].removeprefix("\ufeff"))

    def columns_of(self, path: str, kind: str) -> list[str]:
        """The columns of one file, as the engine reads them."""
        return (self.session.read.parquet(path) if kind == "parquet" else self._csv(path)).columns

    def _view(self, frame) -> str:
        name = f"{self.group}_{len(self.views)}"
        frame.createOrReplaceTempView(name)
        self.views.append(name)
        return name

    def query(self, sql: str) -> pd.DataFrame:
        # Job groups are per thread: set it where the query runs, so cancel() and progress() find its jobs.
        self.session.sparkContext.setJobGroup(self.group, "pyxl_del aggregate", interruptOnCancel=True)
        return self.session.sql(sql).toArrow().to_pandas()

    def progress(self) -> float | None:
        tracker = self.session.sparkContext.statusTracker()
        done = total = 0
        for job in tracker.getJobIdsForGroup(self.group):
            info = tracker.getJobInfo(job)
            for stage in info.stageIds if info else ():
                s = tracker.getStageInfo(stage)
                if s:
                    done, total = done + s.numCompletedTasks, total + s.numTasks
        return 100.0 * done / total if total else None

    def cancel(self) -> None:
        self.session.sparkContext.cancelJobGroup(self.group)

    def close(self) -> None:
        for name in self.views:
            self.session.catalog.dropTempView(name)


def spark_session(spark=None, conf: Mapping[str, str] | None = None):
    """The SparkSession to use: the one given; one on the given master URL ("local[2]", "spark://host:7077");
    else the active session, or a local one on all cores. Sessions made here use SPARK_CONF, then ``conf``
    (e.g. {"spark.driver.memory": "4g"}: JVM settings only apply to the first session of a process)."""
    from pyspark.sql import SparkSession

    if isinstance(spark, SparkSession):
        return spark
    if spark is None and SparkSession.getActiveSession() is not None:
        return SparkSession.getActiveSession()
    master = spark or f"local[{_cores()}]"
    settings = dict(SPARK_CONF)
    if re.fullmatch(r"local(\[(\d+|\*)\])?", master):
        settings["spark.sql.shuffle.partitions"] = str(2 * _cores())
    builder = SparkSession.builder.master(master).appName("pyxl_del")
    for key, value in {**settings, **(conf or {})}.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    log.info("Spark session on %s (Spark %s)", master, session.version)
    return session


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX
        return None


def _default_memory_limit() -> str | None:
    total = _physical_memory()
    if total is None:  # DuckDB's own default (80% of memory) applies
        return None
    return f"{int(total * DUCKDB_MEMORY_SHARE) >> 20}MB"


def _mapped(config: Config) -> list[str]:
    return [config[k] for k in LOGICAL_COLUMNS]


# ------------------------------------------------------------------------------------------------ aggregate


def aggregate(source, config: Config, backend: str = "auto", *, spark=None, progress: Progress | None = None,
              sheet=None, examples: int = MAX_LISTED, memory_limit: str | None = None,
              threads: int | None = None) -> PanelStats:
    """Panel -> PanelStats on the chosen backend ("auto": see ``choose_backend``).

    ``source``: a DataFrame; a .csv/.parquet file, a glob or a folder of parts; an .xlsx (pandas, ``sheet``);
    or a Spark DataFrame. ``spark``: a SparkSession or a master URL for the spark backend. ``examples``: rows
    quoted per failed rule by the SQL backends (0: counts only). ``memory_limit`` ("8GB") and ``threads`` tune
    DuckDB (default: 60% of memory, all cores). Raises PanelError listing every problem.
    """
    chosen = choose_backend(source) if backend == "auto" else backend
    if chosen not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known: auto, {', '.join(BACKENDS)}")
    if _is_spark_frame(source) and chosen != "spark":
        raise ValueError("a Spark DataFrame needs backend='spark'")
    step = progress or (lambda _name: None)
    if chosen == "pandas":
        step("read")
        if not isinstance(source, pd.DataFrame) and _is_many(os.fspath(source)):
            raise PanelError(os.fspath(source), ["the pandas backend reads one file: use duckdb for globs and folders"])
        frame, name = read_panel(source, config, sheet=sheet)
        step("validate")
        panel = validate_panel(frame, config, name)
        del frame  # the Panel's arrays are all that is used from here: 10M rows' columns are freed before summing
        step("aggregate")
        return check_stats(aggregate_panel(panel, config), config, name)

    data = source if isinstance(source, pd.DataFrame) or _is_spark_frame(source) else resolve_files(source)
    if isinstance(data, Files) and data.kind == "csv" and not data.remote:
        # A one-line file: a sentence, not a reader's memory and minutes. DuckDB renames a repeated column: its
        # names as written (a file DuckDB reads with another delimiter has one field here, and nothing repeats).
        require_unique(header_fields(Path(data.paths[0])), config, data.paths[0])
        if chosen == "spark":
            # Spark decodes bytes that are not UTF-8 as U+FFFD and reads on: a Latin-1 "tiêu dùng" became the
            # segment "ti\ufffdu d\ufffdng". DuckDB and pandas refuse such a file; here it is read once to say so.
            problem = next(filter(None, map(encoding_problem, map(Path, data.paths))), None)
            if problem:
                raise PanelError(source_name(source), [problem])
    engine = _DuckDB(memory_limit, threads) if chosen == "duckdb" else _Spark(spark)
    try:
        return check_stats(_aggregate_sql(engine, data, config, step, examples, source_name(source)), config,
                           source_name(source))
    finally:
        engine.close()


def _aggregate_sql(engine, data, config: Config, step: Progress, examples: int, name: str) -> PanelStats:
    columns = {k: config[k] for k in LOGICAL_COLUMNS}
    states = list(config.buckets.order)
    cohort_format = config.columns.cohort_format
    step("read")
    try:
        relation, types = engine.register(data, config, name)
        kind = _cohort_kind(data, config["cohort"], types[config["cohort"]], name)
        # [columns] decimal reads text; a column of numbers (Parquet, a DataFrame's floats) is read as it is
        decimal_comma = config.columns.decimal == "," and panel_sql.column_kind(types[config["ead"]]) == "text"
        step("validate")
        sql = panel_sql.aggregate_query(engine.dialect, relation, columns, kind, states, config.forecast.max_mob,
                                        cohort_format, decimal_comma)
        result = _watch(engine, sql, step)
    except engine.read_errors as exc:
        if isinstance(exc, engine.bugs):
            raise
        raise PanelError(name, [_read_problem(data, exc)]) from exc
    step("aggregate")

    def fetch(rule: str) -> list[tuple[str, str]]:
        if examples <= 0:
            return []
        if rule == LATE:
            rows = engine.query(panel_sql.late_examples_query(engine.dialect, relation, columns, kind, states,
                                                              config.forecast.max_mob, GAP_EXAMPLES, cohort_format,
                                                              decimal_comma))
            return list(zip(rows["loan_text"], rows["first_mob"], strict=True))
        rows = engine.query(panel_sql.examples_query(engine.dialect, relation, columns, kind, states, rule, examples,
                                                     cohort_format, decimal_comma))
        return list(zip(rows["loan_text"], rows["mob_text"], strict=True))

    def labels(rule: str) -> list:
        query = panel_sql.labels_query(engine.dialect, relation, columns, kind, states, rule, MAX_LISTED,
                                       cohort_format, decimal_comma)
        return list(engine.query(query)["label"])

    try:
        return stats_from_sql(result, config, name, fetch, labels)
    except PanelError as exc:
        lacking = _lacking_parts(engine, data, config)
        if not lacking:
            raise
        raise PanelError(name, lacking + exc.problems) from exc


def _read_problem(data, exc: Exception) -> str:
    """The sentence for data an engine cannot read. A CSV that is not UTF-8 is named with the line of its first bad
    byte: DuckDB's message quotes another line (the header, for a bad byte in its first block) or blames the CSV
    dialect (UTF-16). Only files the message names are read again to find the byte, or all when it names none."""
    text = str(exc)
    if isinstance(data, Files) and data.kind == "csv" and not data.remote and re.search("unicode|encod", text, re.IGNORECASE):
        named = [p for p in data.paths if p in text]
        found = next(filter(None, map(encoding_problem, map(Path, named or data.paths))), None)
        if found:
            return found
    return f"cannot read the data: {shorten(exc)}"


def _cohort_kind(data, column: str, type_name: str, name: str) -> str:
    """The cohort parser for the column's type as the engine names it. An integer column of Parquet files that
    pandas wrote from a Period dtype holds periods, not 202301-style numbers: the engines see only the int64, so
    each file's Arrow schema says (remote files are not looked into)."""
    kind = panel_sql.column_kind(type_name)
    if kind != "number" or not isinstance(data, Files) or data.kind != "parquet" or data.remote:
        return kind
    import pyarrow.parquet as pq

    freqs = {p: period_freq(pq.read_schema(p), column) for p in data.paths}
    found = set(freqs.values())
    if found == {None}:
        return "number"
    if found == {"M"}:
        return "period"
    other = sorted(f for f in found if f not in (None, "M"))
    if other:
        raise PanelError(name, [(f"column {column!r} ([columns] cohort) holds pandas periods of frequency "
                                 f"{other[0]!r}, which the SQL backends read by month only: write the column as "
                                 f"monthly periods (.dt.asfreq('M')), dates or 'YYYY-MM' text")])
    periods = [p for p, f in freqs.items() if f]
    numbers = [p for p, f in freqs.items() if not f]
    raise PanelError(name, [(f"column {column!r} ([columns] cohort) holds pandas periods in "
                             f"{_file_names(data, periods)} but not in {_file_names(data, numbers)}, and the two are "
                             f"read differently: write it one way in every file")])


def _lacking_parts(engine, data, config: Config) -> list[str]:
    """The mapped columns some files of a glob or folder lack. The engines read parts by column name, so such a
    part's rows read as empty there and the findings would name rows, not the file; only looked for once the panel
    has failed a rule."""
    if not isinstance(data, Files) or len(data.paths) < 2:
        return []
    present = {p: set(engine.columns_of(p, data.kind)) for p in data.paths}
    problems = []
    for key in LOGICAL_COLUMNS:
        without = [p for p in data.paths if config[key] not in present[p]]
        if without:
            problems.append(f"missing mapped column [columns] {key} = {config[key]!r} in {len(without)} of "
                            f"{counted(len(data.paths), 'file')}: {_file_names(data, without)} (the other files have "
                            f"it; {agree(len(without), 'its', 'their')} rows read as empty)")
    return problems


def _watch(engine, sql: str, step: Progress) -> pd.DataFrame:
    """Run the query on a worker thread and report its progress from this one (callbacks stay on the caller's
    thread: the Excel ribbon's must)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pyxl_del_sql") as pool:
        future = pool.submit(engine.query, sql)
        last = None
        try:
            while True:
                try:
                    return future.result(timeout=PROGRESS_EVERY)
                except FutureTimeout:
                    done = engine.progress()
                    if done is not None and (last is None or done > last):
                        last = done
                        step(f"aggregate {done:.0f}%")
        except BaseException:
            if not future.done():
                engine.cancel()
            raise


# ------------------------------------------------------------------------------------------------ results


def _located(loan, mob) -> str:
    """A row as the SQL backends can point to it: by loan and MOB, or as the blank row it is."""
    if pd.isna(loan) and pd.isna(mob):
        return "a row with neither loan nor MOB, as the empty lines at the end of an Excel export"
    return f"{'empty loan' if pd.isna(loan) else f'loan {loan!r}'} {'no MOB' if pd.isna(mob) else f'MOB {mob}'}"


def _where(count: int, rows: Sequence[tuple]) -> str:
    """Rows as the SQL backends locate them: the count, then examples by loan and MOB."""
    rows_counted = counted(count, "row")
    if not rows:
        return rows_counted
    shown = ", ".join(_located(loan, mob) for loan, mob in rows[:MAX_LISTED])
    return f"{rows_counted} ({'e.g. ' if count > len(rows) else ''}{shown})"


LATE = "late"  # `fetch`'s name for the loans whose first row is after MOB 0


def _late_starts(cells: pd.DataFrame, max_mob: int, fetch: Callable[[str], list[tuple]]) -> list[str]:
    """`data.late_start_warning` from the query's rows (their ``late`` key)."""
    mob = cells["mob"].to_numpy(dtype=np.float64)
    late = (cells["late"].to_numpy(dtype=np.int64) == 1) & (mob <= max_mob)
    if not late.any():
        return []
    keys = ["segment", "cohort"]
    starts = cells[late].groupby(keys, sort=True)[["n", "ead"]].sum().rename(columns={"n": "loans"})
    mob0 = cells[mob == 0].groupby(keys)["ead"].sum().rename("mob0_ead")
    table = starts.join(mob0, how="left").fillna({"mob0_ead": 0.0}).reset_index()
    table["cohort"] = table["cohort"].astype(np.int64)
    if not (table["mob0_ead"] > 0).any():
        return []
    return late_start_warning(table, [(loan, int(m)) for loan, m in fetch(LATE)])


def _flagged(cells: pd.DataFrame, rule: str) -> pd.DataFrame:
    """Loans breaking a loan rule, each with the first MOB where it shows, ordered by loan."""
    bit = 1 << panel_sql.RULES.index(rule)
    hit = cells[(cells["broken"].to_numpy(dtype=np.int64) & bit > 0) & cells["flag_loan"].notna()]
    first = hit.groupby("flag_loan", sort=True)["flag_mob"].min()
    return pd.DataFrame({"loan": first.index.to_numpy(dtype=object), "mob": first.to_numpy()})


def stats_from_sql(result: pd.DataFrame, config: Config, name: str, fetch: Callable[[str], list[tuple]],
                   labels: Callable[[str], list]) -> PanelStats:
    """The rows of panel_sql.aggregate_query -> PanelStats, checking the rules as data.validate_panel does
    (same order, same wording). For a failed row rule, ``fetch(rule)`` returns example (loan, MOB) rows and
    ``labels(rule)`` the bad values (cohort and state rules)."""
    cells = result  # summed over next_state below; the pairs are the rows with a next_state
    trans = result[result["next_state"].notna()]
    n_rows = int(cells["n"].sum())
    if n_rows == 0:
        raise PanelError(name, [MESSAGES["empty_panel"]])
    broken = cells["broken"].to_numpy(dtype=np.int64)
    counts = {rule: int(cells["n"].to_numpy()[(broken >> i) & 1 == 1].sum()) for i, rule in enumerate(panel_sql.RULES)}
    col = {k: config[k] for k in LOGICAL_COLUMNS}

    def where(rule: str) -> str:
        return _where(counts[rule], fetch(rule))

    problems: list[str] = []
    if counts["loan_empty"]:
        problems.append(MESSAGES["empty"].format(column=col["loan_id"], key="loan_id", where=where("loan_empty")))
    if counts["cohort"]:
        # As data._parse_cohorts: the values that are not months, or "empty" when only empty cells are.
        bad = [v for v in labels("cohort") if not pd.isna(v)]
        problems.append(cohort_problem(col["cohort"], counts["cohort"], bad, where("cohort"),
                                       config.columns.cohort_format))
    if counts["mob"]:
        problems.append(mob_problem(col["mob"], where("mob"), labels("mob")))
    if counts["segment_empty"]:
        problems.append(MESSAGES["empty"].format(column=col["segment"], key="segment", where=where("segment_empty")))
    _, uniques = pd.factorize(pd.Series(pd.unique(cells["segment"].dropna())), sort=True)
    segments = tuple(str(s) for s in uniques)
    segment_problems, warnings = segment_name_findings(segments, col["segment"])
    problems += segment_problems
    if counts["state"]:
        problems.append(state_problem(col["state"], config.buckets.order, labels("state"), where("state")))
    if counts["ead_nan"]:
        problems.append(ead_problem(col["ead"], where("ead_nan"), labels("ead_nan"), config.columns.decimal))
    if counts["ead_negative"]:
        problems.append(MESSAGES["ead_negative"].format(column=col["ead"], where=where("ead_negative")))
    if counts["ead_huge"]:
        problems.append(MESSAGES["ead_huge"].format(column=col["ead"], where=where("ead_huge")))
    if problems:
        raise PanelError(name, problems)

    if counts["duplicates"]:
        dup = _flagged(cells, "duplicates")
        problems.append(duplicates_problem(counts["duplicates"], col, _where(
            counts["duplicates"], list(zip(dup["loan"], dup["mob"].astype(np.int64), strict=True)))))
    for key in ("cohort", "segment"):
        if counts[f"{key}_changes"]:
            changed = _flagged(cells, f"{key}_changes")
            examples = ", ".join(f"{loan!r} at MOB {int(mob)}"
                                 for loan, mob in zip(changed["loan"][:MAX_LISTED], changed["mob"], strict=False))
            problems.append(changes_problem(len(changed), key, col[key], examples))
    if problems:
        raise PanelError(name, problems)

    if counts["gaps"]:
        warnings.append(gap_warning(counts["gaps"], list(_flagged(cells, "gaps")["loan"])))
    warnings += _late_starts(cells, config.forecast.max_mob, fetch)

    max_mob = config.forecast.max_mob
    n_states = len(config.buckets.order)
    n_seg = len(segments)
    seg_index = pd.Index(uniques)
    mob = cells["mob"].to_numpy(dtype=np.float64).astype(np.int64)
    keep = mob <= max_mob
    cohorts, cohort_code = np.unique(cells["cohort"].to_numpy(dtype=np.int64), return_inverse=True)
    n_coh = len(cohorts)
    cell = ((seg_index.get_indexer(cells["segment"]) * n_coh + cohort_code) * (max_mob + 1) + mob)[keep]
    size = n_seg * n_coh * (max_mob + 1)
    state = cells["state"].to_numpy(dtype=np.float64).astype(np.int64)[keep]
    ead, ead_sq = (np.bincount(cell * n_states + state, weights=cells[column].to_numpy(dtype=np.float64)[keep],
                               minlength=size * n_states).reshape(n_seg, n_coh, max_mob + 1, n_states)
                   for column in ("ead", "ead_sq"))
    n_loans = np.bincount(cell, weights=cells["n"].to_numpy(dtype=np.float64)[keep], minlength=size)
    n_loans = n_loans.astype(np.int64).reshape(n_seg, n_coh, max_mob + 1)

    t_mob = trans["mob"].to_numpy(dtype=np.float64).astype(np.int64)
    t_from = trans["state"].to_numpy(dtype=np.float64).astype(np.int64)
    t_to = trans["next_state"].to_numpy(dtype=np.float64).astype(np.int64)
    t_cohort = np.searchsorted(cohorts, trans["cohort"].to_numpy(dtype=np.int64))
    tkey = ((((seg_index.get_indexer(trans["segment"]) * n_coh + t_cohort) * max_mob + t_mob) * n_states + t_from)
            * n_states + t_to)
    tsize = n_seg * n_coh * max_mob * n_states * n_states
    shape5 = (n_seg, n_coh, max_mob, n_states, n_states)

    def tsum(column: str) -> np.ndarray:
        return np.bincount(tkey, weights=trans[column].to_numpy(dtype=np.float64), minlength=tsize).reshape(shape5)

    warnings += coverage_warnings(int(cells["n"].to_numpy()[~keep].sum()), n_loans, segments, cohorts, max_mob)
    seg_code = seg_index.get_indexer(cells["segment"])
    final_mob, final_ead = final_rows(
        n_loans, ead, (seg_code * n_coh + cohort_code)[~keep], mob[~keep],
        cells["state"].to_numpy(dtype=np.float64).astype(np.int64)[~keep],
        cells["ead"].to_numpy(dtype=np.float64)[~keep])
    return PanelStats(
        segments=segments,
        cohorts=cohorts,
        states=tuple(config.buckets.order),
        ead=ead,
        n_loans=n_loans,
        cohort_trans_count=tsum("n").astype(np.int64),
        cohort_trans_ead_from=tsum("ead"),
        cohort_trans_ead_to=tsum("next_ead"),
        n_rows=n_rows,
        warnings=tuple(warnings),
        final_mob=final_mob,
        final_ead=final_ead,
        ead_sq=ead_sq,
    )
