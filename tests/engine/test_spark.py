"""The Spark backend on a real local session (local[2]): same statistics and findings as pandas and DuckDB.

Skipped only when pyspark or a Java runtime is missing; .ci/test.sh installs both. One session serves the whole
test session (a JVM start is the slow part), so these tests run a handful of small queries.
"""

import shutil

import duckdb
import pandas as pd
import pytest
from _backend_panels import (
    assert_same_results,
    assert_same_stats,
    awkward_panel,
    finding_kinds,
    late_quoted_segment_csv,
)
from _panels import CHAIN, cfg, frame, loan, simulate

from pyxl_del import PanelError
from pyxl_del.cli import main
from pyxl_del.datasets.sample import write_panel
from pyxl_del.engine import panel_sql
from pyxl_del.engine.backends import aggregate, spark_session
from pyxl_del.engine.data import _parse_cohorts

pytest.importorskip("pyspark")
pytestmark = [pytest.mark.spark,
              pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs a Java runtime")]

CONFIG = cfg(transitions={"min_count": 1})


# Test data is tiny: compiling generated code and the JIT's optimising tier cost more than they save.
FAST_START = {"spark.sql.codegen.wholeStage": "false",
              "spark.driver.extraJavaOptions": "-XX:+UseSerialGC -XX:TieredStopAtLevel=1"}


@pytest.fixture(scope="session")
def spark():
    session = spark_session("local[2]", FAST_START)
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def test_awkward_panel_same_on_spark(spark, tmp_path):
    df, config = awkward_panel()
    expected = aggregate(df, config, "pandas")
    df.to_parquet(tmp_path / "panel.parquet")
    for source in (df, tmp_path / "panel.parquet"):
        actual = aggregate(source, config, "spark", spark=spark)
        assert_same_results(expected, actual, config)
        assert_same_stats(aggregate(source, config, "duckdb"), actual)


def test_parts_csv_and_spark_frames(spark, tmp_path):
    df = simulate(CHAIN, segments=("CASH LOAN", "Vay tiêu dùng"), cohorts=5, loans=80, max_mob=4, seed=5)
    expected = aggregate(df, CONFIG, "pandas")
    write_panel(df, tmp_path / "parts", parts=3)
    df.to_csv(tmp_path / "panel.csv", index=False, encoding="utf-8-sig")
    assert_same_stats(expected, aggregate(str(tmp_path / "parts" / "*.parquet"), CONFIG, "spark", spark=spark))
    assert_same_stats(expected, aggregate(tmp_path / "panel.csv", CONFIG, "spark", spark=spark))
    # A cluster user's own DataFrame: chosen automatically.
    assert_same_stats(expected, aggregate(spark.read.parquet(str(tmp_path / "parts")), CONFIG, spark=spark))


def test_parts_of_other_column_types_and_a_quoted_line_break_on_spark(spark, tmp_path):
    """Parquet parts whose balance was whole numbers in one part, or whose MOB was text in another, stopped Spark
    with a JVM trace (CANNOT_MERGE_SCHEMAS); a line break inside a quoted field made each line a row. Both now read
    as DuckDB reads them."""
    df = simulate(CHAIN, segments=("CASH LOAN", "Vay tiêu dùng"), cohorts=5, loans=80, max_mob=4, seed=5)
    expected = aggregate(df, CONFIG, "pandas")
    (tmp_path / "parts").mkdir()
    thirds = [df.iloc[i::3] for i in range(3)]
    thirds[1] = thirds[1].assign(PRINCIPLE_OUTSTANDING=thirds[1]["PRINCIPLE_OUTSTANDING"].round().astype("int64"))
    thirds[2] = thirds[2].assign(MOB=thirds[2]["MOB"].astype(str))
    for i, part in enumerate(thirds):
        part.to_parquet(tmp_path / "parts" / f"p{i}.parquet")
    rounded = pd.concat(thirds).astype({"MOB": "int64"}).sort_index()
    assert_same_stats(aggregate(tmp_path / "parts", CONFIG, "duckdb"),
                      aggregate(tmp_path / "parts", CONFIG, "spark", spark=spark))
    assert_same_stats(aggregate(rounded, CONFIG, "pandas"), aggregate(tmp_path / "parts", CONFIG, "spark", spark=spark))
    df.assign(NOTE='line one\nline "two", with comma').to_csv(tmp_path / "notes.csv", index=False)
    assert_same_stats(expected, aggregate(tmp_path / "notes.csv", CONFIG, "spark", spark=spark))


def test_a_csv_that_is_not_utf8_is_named_on_spark(spark, tmp_path):
    """Spark read Latin-1 "Vay tiêu dùng" as the segment "Vay ti\ufffdu d\ufffdng", silently."""
    df = simulate(CHAIN, segments=("Vay tiêu dùng",), cohorts=2, loans=10, max_mob=2, seed=1)
    df.to_csv(tmp_path / "panel.csv", index=False, encoding="latin-1")
    with pytest.raises(PanelError, match=r"panel.csv is not UTF-8 text \(line 2: byte 0xea\)"):
        aggregate(tmp_path / "panel.csv", CONFIG, "spark", spark=spark)
    df.to_csv(tmp_path / "panel.csv", index=False)
    assert aggregate(tmp_path / "panel.csv", CONFIG, "spark", spark=spark).segments == ("Vay tiêu dùng",)


def test_a_quoted_name_with_quotes_of_its_own_on_spark(spark, tmp_path):
    """Spark's CSV escape is a backslash by default; Excel and pandas double a quote inside a quoted field."""
    df = late_quoted_segment_csv(tmp_path / "p.csv")
    actual = aggregate(tmp_path / "p.csv", CONFIG, "spark", spark=spark)
    assert actual.segments == ("A", 'Vay "tiêu dùng", tín chấp')
    assert_same_stats(aggregate(df, CONFIG, "pandas"), actual)


def test_semicolons_and_a_title_above_the_header_on_spark(spark, tmp_path):
    """Spark had read a semicolon CSV as one column and a titled CSV's title as its header; the other backends
    sniff both."""
    df = simulate(CHAIN, segments=("A", "Vay tiêu dùng"), cohorts=3, loans=20, max_mob=3, seed=8)
    expected = aggregate(df, CONFIG, "pandas")
    df.to_csv(tmp_path / "semicolons.csv", index=False, sep=";")
    (tmp_path / "titled.csv").write_text("Loan tape, December 2025\n\n" + df.to_csv(index=False, sep=";"),
                                         encoding="utf-8-sig")
    for name in ("semicolons.csv", "titled.csv"):
        assert_same_stats(expected, aggregate(tmp_path / name, CONFIG, "spark", spark=spark))
        assert_same_stats(expected, aggregate(tmp_path / name, CONFIG, "duckdb"))


def test_decimal_comma_csv_on_spark(spark, tmp_path):
    """[columns] decimal = "," in the shared SQL: the same statistics as the decimal-point panel, "12.5" no number."""
    df = simulate(CHAIN, segments=("A",), cohorts=2, loans=20, max_mob=3, seed=4)
    df["PRINCIPLE_OUTSTANDING"] = (df["PRINCIPLE_OUTSTANDING"] * 1234.5).round(2)
    comma = cfg(transitions={"min_count": 1}, columns={"decimal": ","})
    written = df["PRINCIPLE_OUTSTANDING"].map(lambda v: f"{v:,.2f}".replace(",", " ").replace(".", ",")
                                              .replace(" ", "\u00a0"))  # a no-break space between thousands
    df.assign(PRINCIPLE_OUTSTANDING=written).to_csv(tmp_path / "vn.csv", index=False)
    assert_same_stats(aggregate(df, CONFIG, "pandas"), aggregate(tmp_path / "vn.csv", comma, "spark", spark=spark))
    df.assign(PRINCIPLE_OUTSTANDING=written.where(df.index != 2, "12.5")).to_csv(tmp_path / "vn.csv", index=False)
    with pytest.raises(PanelError, match=r"is not a number as \[columns\] decimal = \",\" reads them .* such as '12.5'"):
        aggregate(tmp_path / "vn.csv", comma, "spark", spark=spark)


def test_bad_input_same_findings_on_spark(spark, tmp_path):
    df = frame(loan("L1", "2024-01", "A", [("CURRENT", 100), ("LATE", -5), ("DPD1+", 80)])
               + loan("L2", "2024-01", "A", [("CURRENT", 100)]) + [("L2", "2024-01", 0, "A", "CURRENT", 1.0)])
    df.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(PanelError) as pandas_error:
        aggregate(df, CONFIG, "pandas")
    with pytest.raises(PanelError) as spark_error:
        aggregate(tmp_path / "bad.csv", CONFIG, "spark", spark=spark)
    assert finding_kinds(str(spark_error.value)) == finding_kinds(str(pandas_error.value))
    assert "loan 'L1' MOB 1" in str(spark_error.value)


def test_cohort_parser_on_spark(spark):
    values = ["2023-01", "2023-1-5", "2023/01/15", "2023-01-15T10:30:00+0700", "20230115", "2023",
              "2023-02-30", "202301", "2023-13", "2023-01-15 25:00", "abc"]
    spark.createDataFrame([(v,) for v in values], "c string").createOrReplaceTempView("cohort_values")
    query = panel_sql.cohort_months_query(panel_sql.SPARK, "cohort_values", "`c`", "text")
    parsed = {row["raw"]: row["month"] for row in spark.sql(query).collect()}
    con = duckdb.connect()
    con.register("v", pd.DataFrame({"c": values}))
    assert parsed == dict(con.execute(panel_sql.cohort_months_query(panel_sql.DUCKDB, "v", '"c"', "text")).fetchall())
    for value in values:
        problems = []
        expected = _parse_cohorts(pd.Series([value], dtype="string"), "c", problems)[0]
        assert parsed[value] == (None if problems else expected), value


def test_cli_spark_master(spark, tmp_path, capsys):
    df = simulate(CHAIN, cohorts=3, loans=40, max_mob=2)
    write_panel(df, tmp_path / "parts", parts=2)
    assert main(["report", str(tmp_path / "parts"), "--spark-master", "local[2]", "--out", str(tmp_path / "o"),
                 "-q"]) == 0
    assert "spark" in capsys.readouterr().out


def test_hostile_panels_same_on_spark(spark):
    """Issue 17 on Spark: day/month text read by [columns] cohort_format (Spark's datetime pattern) or rejected,
    MOB and EAD bounds, an all-zero EAD column, in the pandas path's words."""
    df = frame(loan("L1", "x", "A", [("CURRENT", 100), ("DPD1+", 90)])
               + loan("L2", "x", "A", [("CURRENT", 50), ("CURRENT", 40)]))
    df["DISBURSAL_MONTH"] = ["5/7/2023", "5/7/2023", "15/07/2023", "15/07/2023"]
    dated = CONFIG.with_overrides(columns={"cohort_format": "%d/%m/%Y"})
    assert list(aggregate(df, dated, "spark", spark=spark).cohort_labels) == ["2023-07"]
    with pytest.raises(PanelError, match="could be day-first or month-first"):
        aggregate(df, CONFIG, "spark", spark=spark)
    df["DISBURSAL_MONTH"] = "2023-07"
    for column, value, words in (("MOB", 1e19, "from 0 to 1200"), ("PRINCIPLE_OUTSTANDING", 1e300, "above 1e15")):
        bad = df.astype({column: float})
        bad.loc[1, column] = value
        with pytest.raises(PanelError, match=words):
            aggregate(bad, CONFIG, "spark", spark=spark)
    with pytest.raises(PanelError, match="is 0 on every row"):
        aggregate(df.assign(PRINCIPLE_OUTSTANDING=0.0), CONFIG, "spark", spark=spark)
