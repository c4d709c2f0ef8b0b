"""The panel -> sufficient statistics query: one SQL text that DuckDB and Spark SQL both run.

The text is written once here. What varies is substituted: the mapped column names (quoted identifiers, so
names with spaces or Vietnamese letters work), the bucket labels (escaped string literals), max_mob, and the
cohort parser chosen by the cohort column's type. The two engines differ only in how they quote (``Dialect``),
and the text sticks to functions both have with the same meaning (try_cast, regexp_extract, lead, isnan,
named windows, ...); every cast of data is a try_cast so Spark's ANSI mode never raises on a bad value.

One pass answers everything (methodology, sections 1 and 7). A window ``lead() OVER (PARTITION BY loan ORDER BY
mob)`` pairs each row with the loan's next row (measured in DuckDB against a self-join on (loan, mob + 1): 2.5 s vs
4.1 s and 1.0 vs 1.7 GB for 10M rows on 2 cores), and one GROUP BY returns rows and EAD by (segment, cohort, mob,
state, next state) — next state NULL unless the next row is at mob + 1 <= max_mob — where the sums (loans,
EAD at m, EAD at m+1) give both the EAD-by-state cells (summed over next state) and the transitions (summed over
cohort), and the sum of squared EAD how unequal a cell's balances are (the forecast intervals' effective loans).
Three more keys are 0 or NULL on good rows, so good rows add no groups:

* ``broken``: the rules a row breaks, bit i for RULES[i] (ROW_RULES on the row's values, LOAN_RULES on it and
  the loan's next row), so the counts of bad rows come back with the statistics;
* ``flag_loan``, ``flag_mob``: the loan, and its next MOB, where the next row is a duplicate, after a gap, or in
  another cohort or segment — the loans the findings name.

Rows and labels quoted for a failed row rule are fetched afterwards, only then (``examples_query``,
``labels_query``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pyxl_del.engine.config import EAD_LIMIT, PANEL_MAX_MOB

# Row-level rules: a row breaks the rule where the predicate holds (on the columns of the ``typed`` CTE).
# NaN compares greater than every number in both engines, so "mob <= 1200" also rejects NaN.
ROW_RULES = {
    "loan_empty": "loan IS NULL",
    "cohort": "cohort IS NULL",
    "mob": f"mob IS NULL OR NOT (mob >= 0 AND mob <= {PANEL_MAX_MOB} AND mob % 1 = 0)",
    "segment_empty": "segment IS NULL",
    "state": "state IS NULL",
    "ead_nan": "ead IS NULL OR isnan(ead) OR abs(ead) = CAST('Infinity' AS DOUBLE)",
    "ead_negative": "ead < 0",
    "ead_huge": f"ead > CAST('{EAD_LIMIT:.0e}' AS DOUBLE) AND ead < CAST('Infinity' AS DOUBLE)",
}
# Rules on a row and the loan's next row (columns of the paired rows).
LOAN_RULES = {
    "duplicates": "next_mob = mob",
    "gaps": "next_mob > mob + 1",
    "cohort_changes": "next_cohort <> cohort",
    "segment_changes": "next_segment <> segment",
}

# Text cohorts, as data._parse_cohorts reads them in ISO form: YYYY-MM, YYYY-MM-DD (also with "/", one-digit
# months and days, and an optional time and zone), and YYYYMMDD; a year alone is not a month. Character classes
# instead of backslashes, because Spark string literals treat a backslash as an escape.
TIME_SUFFIX = "(?:[T ](?:[01]?[0-9]|2[0-3])(?::[0-5][0-9](?::[0-5][0-9](?:[.][0-9]+)?)?)?(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)?)?"
ISO_MONTH = "^([0-9]{4})[-/]([0-9]{1,2})(?:[-/]([0-9]{1,2})" + TIME_SUFFIX + ")?$"
BASIC_DATE = "^([0-9]{4})([0-9]{2})([0-9]{2})$"
COMPACT_MONTH = "^([0-9]{4})([0-9]{2})$"  # 202301, as a CSV column of such numbers reads as text

# EAD text as [columns] decimal = "," reads it, on every backend: a decimal comma, a point or a space (also a
# no-break one) between thousands: 1.234.567,5. "12.5" is no number there (it is not read as 125).
THOUSANDS_MARKS = ". \u00a0"
DECIMAL_COMMA = f"^[+-]?(?:[0-9]{{1,3}}(?:[{THOUSANDS_MARKS}][0-9]{{3}})+|[0-9]+)(?:,[0-9]+)?$"

COHORT_KINDS = ("text", "number", "date", "period")
PERIOD_EPOCH = 1970 * 12  # the month index of 1970-01, pandas' monthly period 0


@dataclass(frozen=True)
class Dialect:
    """How one engine quotes names and text; everything else in the query is shared."""

    name: str
    quote: str  # identifier quote character
    backslash_escapes: bool  # string literals treat "\" as an escape (Spark's default)

    def ident(self, name: str) -> str:
        return self.quote + name.replace(self.quote, self.quote * 2) + self.quote

    def literal(self, text: str) -> str:
        if self.backslash_escapes:
            return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
        return "'" + text.replace("'", "''") + "'"

    def parse_time(self, text: str, strptime_format: str) -> str:
        """A timestamp read from ``text`` by one strptime format ([columns] cohort_format), NULL where it does
        not match: DuckDB takes the format as it is, Spark as its datetime pattern."""
        if self.name == "spark":
            return f"try_to_timestamp({text}, {self.literal(spark_pattern(strptime_format))})"
        return f"try_strptime({text}, {self.literal(strptime_format)})"


# strptime directives (config.COHORT_DIRECTIVES) as Spark datetime pattern letters; other text is quoted.
SPARK_PATTERN = {"Y": "yyyy", "y": "yy", "m": "M", "b": "MMM", "B": "MMMM", "d": "d", "H": "H", "M": "m", "S": "s",
                 "%": "%"}


def spark_pattern(strptime_format: str) -> str:
    """A strptime format (its directives checked by the config) as a Spark datetime pattern."""
    parts = re.split(r"(%.)", strptime_format)
    return "".join(SPARK_PATTERN[p[1]] if len(p) == 2 and p[0] == "%" and p[1] != "%" else
                   "%" if p == "%%" else ("'" + p.replace("'", "''") + "'" if p else "") for p in parts)


DUCKDB = Dialect("duckdb", '"', backslash_escapes=False)
SPARK = Dialect("spark", "`", backslash_escapes=True)


_NUMBER_TYPES = {"TINYINT", "SMALLINT", "INT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                 "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL", "REAL", "BYTE", "SHORT", "LONG"}


def column_kind(type_name: str) -> str:
    """How a column type as the engine names it ("TIMESTAMP_NS", "DECIMAL(6,0)", "bigint", "VARCHAR") is read:
    "date", "number" or "text" (the cohort's parser; for the EAD whether [columns] decimal applies)."""
    base = type_name.upper().split("(")[0].split()[0]
    if base.startswith(("DATE", "TIMESTAMP")):
        return "date"
    return "number" if base in _NUMBER_TYPES else "text"


def cohort_months_query(d: Dialect, source: str, cohort: str, kind: str, cohort_format: str = "") -> str:
    """SELECT raw, month: each distinct cohort value once (a panel has few) with its month index or NULL. Text is
    read by ``cohort_format`` (strptime) when given, else as ISO text (no day/month guess); "period" is pandas'
    monthly Period as written to Parquet, whole months since 1970-01."""
    distinct = f"SELECT DISTINCT {cohort} AS raw FROM {source}"
    if kind == "date":
        return f"SELECT raw, year(raw) * 12 + month(raw) - 1 AS month FROM ({distinct}) AS distinct_cohorts"
    if kind == "period":
        return f"SELECT raw, try_cast(raw AS BIGINT) + {PERIOD_EPOCH} AS month FROM ({distinct}) AS distinct_cohorts"
    if kind == "number":
        # 202301-style numbers: six digits, the last two a month (2012 is a year, not December of the year 20).
        return f"""SELECT raw,
               CASE WHEN v >= 100000 AND v < 1000000 AND v % 1 = 0 AND v % 100 >= 1 AND v % 100 <= 12
                    THEN try_cast((v - v % 100) / 100 AS BIGINT) * 12 + try_cast(v % 100 AS BIGINT) - 1 END AS month
        FROM (SELECT raw, try_cast(raw AS DOUBLE) AS v FROM ({distinct}) AS distinct_cohorts) AS numbers"""
    if kind != "text":
        raise ValueError(f"unknown cohort kind {kind!r}; known: {', '.join(COHORT_KINDS)}")
    if cohort_format:
        return f"""SELECT raw, year(ts) * 12 + month(ts) - 1 AS month
        FROM (SELECT raw, {d.parse_time("trim(CAST(raw AS STRING))", cohort_format)} AS ts
              FROM ({distinct}) AS distinct_cohorts) AS parsed"""
    iso, basic, compact = d.literal(ISO_MONTH), d.literal(BASIC_DATE), d.literal(COMPACT_MONTH)

    def part(group: int) -> str:
        from_compact = f"regexp_extract(t, {compact}, {group})" if group < 3 else "''"
        return (f"CASE WHEN regexp_extract(t, {basic}, 0) <> '' THEN regexp_extract(t, {basic}, {group}) "
                f"WHEN regexp_extract(t, {compact}, 0) <> '' THEN {from_compact} "
                f"ELSE regexp_extract(t, {iso}, {group}) END")

    return f"""SELECT raw,
               CASE WHEN y <> ''
                     AND try_cast(mo AS INT) BETWEEN 1 AND 12
                     AND (dd = '' OR try_cast(concat(y, '-', lpad(mo, 2, '0'), '-', lpad(dd, 2, '0')) AS DATE)
                                     IS NOT NULL)
                    THEN try_cast(y AS BIGINT) * 12 + try_cast(mo AS BIGINT) - 1 END AS month
        FROM (SELECT raw, {part(1)} AS y, {part(2)} AS mo, {part(3)} AS dd
              FROM (SELECT raw, trim(CAST(raw AS STRING)) AS t FROM ({distinct}) AS distinct_cohorts) AS texts
             ) AS parts"""


def _typed_rows(d: Dialect, source: str, columns: Mapping[str, str], kind: str, states: Sequence[str],
                cohort_format: str = "", decimal_comma: bool = False) -> str:
    """The CTEs up to ``typed``: one row per panel row with typed values (NULL where a value is bad) and, for
    the queries that quote bad rows, their text as written. ``decimal_comma``: the EAD column is text written
    as `DECIMAL_COMMA` reads it ([columns] decimal = ",")."""
    c = {k: d.ident(v) for k, v in columns.items()}
    ead = f"try_cast(p.{c['ead']} AS DOUBLE)"
    if decimal_comma:
        text = f"trim(CAST(p.{c['ead']} AS STRING))"
        pointed = text
        for mark in THOUSANDS_MARKS:  # replace(), not regexp_replace: DuckDB's replaces the first match only
            pointed = f"replace({pointed}, {d.literal(mark)}, '')"
        ead = (f"CASE WHEN regexp_extract({text}, {d.literal(DECIMAL_COMMA)}, 0) <> '' "
               f"THEN try_cast(replace({pointed}, ',', '.') AS DOUBLE) END")
    state_code = "CASE state_raw " + " ".join(f"WHEN {d.literal(s)} THEN {i}" for i, s in enumerate(states)) + " END"
    return f"""cohort_months AS (
    {cohort_months_query(d, source, c["cohort"], kind, cohort_format)}
),
labelled AS (
    SELECT /*+ BROADCAST(m) */
           p.{c["loan_id"]} AS loan,
           m.month AS cohort,
           CAST(p.{c["cohort"]} AS STRING) AS cohort_text,
           try_cast(p.{c["mob"]} AS DOUBLE) AS mob,
           CAST(p.{c["mob"]} AS STRING) AS mob_text,
           p.{c["segment"]} AS segment,
           CAST(p.{c["state"]} AS STRING) AS state_raw,
           {ead} AS ead,
           CAST(p.{c["ead"]} AS STRING) AS ead_text
    FROM {source} AS p LEFT JOIN cohort_months AS m ON p.{c["cohort"]} = m.raw
),
typed AS (
    SELECT loan, cohort, cohort_text, mob, mob_text, segment, state_raw, {state_code} AS state, ead, ead_text
    FROM labelled
)"""


RULES = (*ROW_RULES, *LOAN_RULES)  # bit i of the ``broken`` key is rule RULES[i]


def aggregate_query(d: Dialect, source: str, columns: Mapping[str, str], kind: str, states: Sequence[str],
                    max_mob: int, cohort_format: str = "", decimal_comma: bool = False) -> str:
    """The one-pass query (see the module docstring). ``source`` is a relation the engine knows."""
    predicates = {**ROW_RULES, **LOAN_RULES}
    broken = " + ".join(f"CASE WHEN {predicates[rule]} THEN {1 << i} ELSE 0 END" for i, rule in enumerate(RULES))
    any_loan_rule = " OR ".join(f"({rule})" for rule in LOAN_RULES.values())
    return f"""WITH {_typed_rows(d, source, columns, kind, states, cohort_format, decimal_comma)},
paired AS (
    -- Only what the statistics and the rules need goes through the window: it holds every row.
    SELECT loan, cohort, mob, segment, state, ead,
           lag(mob) OVER w AS previous_mob,
           lead(mob) OVER w AS next_mob,
           lead(state) OVER w AS next_state_any,
           lead(ead) OVER w AS next_ead_any,
           lead(cohort) OVER w AS next_cohort,
           lead(segment) OVER w AS next_segment
    FROM typed
    WINDOW w AS (PARTITION BY loan ORDER BY mob)
),
keyed AS (
    SELECT segment, cohort, mob, state, ead, next_ead_any,
           -- a loan's first row after MOB 0: a seasoned loan whose balance the DEL counts without a MOB 0 row
           CASE WHEN previous_mob IS NULL AND mob > 0 THEN 1 ELSE 0 END AS late,
           CASE WHEN next_mob = mob + 1 AND next_mob <= {int(max_mob)} THEN next_state_any END AS next_state,
           {broken} AS broken,
           CASE WHEN {any_loan_rule} THEN loan END AS flag_loan,
           CASE WHEN {any_loan_rule} THEN next_mob END AS flag_mob
    FROM paired
)
SELECT segment, cohort, mob, state, next_state, broken, flag_loan, flag_mob, late,
       count(*) AS n,
       sum(ead) AS ead,
       sum(ead * ead) AS ead_sq,
       sum(CASE WHEN next_state IS NOT NULL THEN next_ead_any END) AS next_ead
FROM keyed
GROUP BY segment, cohort, mob, state, next_state, broken, flag_loan, flag_mob, late"""


def late_examples_query(d: Dialect, source: str, columns: Mapping[str, str], kind: str, states: Sequence[str],
                        max_mob: int, limit: int, cohort_format: str = "", decimal_comma: bool = False) -> str:
    """The first ``limit`` loans (by loan) whose first row is after MOB 0 (and at most ``max_mob``) in a
    cohort-segment whose MOB 0 rows hold EAD, with that first MOB (data.late_start_warning)."""
    return f"""WITH {_typed_rows(d, source, columns, kind, states, cohort_format, decimal_comma)},
firsts AS (SELECT loan, segment, cohort, min(mob) AS first_mob FROM typed GROUP BY loan, segment, cohort),
counted AS (SELECT segment, cohort FROM typed WHERE mob = 0 GROUP BY segment, cohort HAVING sum(ead) > 0)
SELECT CAST(f.loan AS STRING) AS loan_text, f.first_mob
FROM firsts AS f JOIN counted AS c ON f.segment = c.segment AND f.cohort = c.cohort
WHERE f.first_mob > 0 AND f.first_mob <= {int(max_mob)}
ORDER BY f.loan
LIMIT {int(limit)}"""


def examples_query(d: Dialect, source: str, columns: Mapping[str, str], kind: str, states: Sequence[str],
                   rule: str, limit: int, cohort_format: str = "", decimal_comma: bool = False) -> str:
    """The first ``limit`` rows (loan, MOB as written) breaking a row rule, ordered by loan and MOB."""
    return f"""WITH {_typed_rows(d, source, columns, kind, states, cohort_format, decimal_comma)}
SELECT CAST(loan AS STRING) AS loan_text, mob_text
FROM typed WHERE {ROW_RULES[rule]}
ORDER BY loan NULLS FIRST, mob NULLS FIRST
LIMIT {int(limit)}"""


# The text of a bad value, for the rules whose message quotes the labels.
LABELLED_RULES = {"cohort": "cohort_text", "mob": "mob_text", "state": "state_raw", "ead_nan": "ead_text"}


def labels_query(d: Dialect, source: str, columns: Mapping[str, str], kind: str, states: Sequence[str],
                 rule: str, limit: int, cohort_format: str = "", decimal_comma: bool = False) -> str:
    """Up to ``limit`` distinct values as written (NULL for empty ones) that break the cohort, MOB, state or EAD
    rule."""
    label = LABELLED_RULES[rule]
    return f"""WITH {_typed_rows(d, source, columns, kind, states, cohort_format, decimal_comma)}
SELECT DISTINCT {label} AS label FROM typed WHERE {ROW_RULES[rule]}
ORDER BY label NULLS LAST
LIMIT {int(limit)}"""


def select_columns(d: Dialect, relation: str, names: Sequence[str]) -> str:
    """Only the mapped columns of a file reader or table (the engines then read no other column)."""
    return f"SELECT {', '.join(d.ident(n) for n in names)} FROM {relation}"
