"""engine.errors.reading: a reader's or parser's exception becomes one sentence naming the file and what to do;
the project's own errors pass through; a bug stays a bug."""

from __future__ import annotations

import tomllib
import zipfile

import pandas as pd
import pyarrow as pa
import pytest

from pyxl_del.engine.errors import (
    InputError,
    PanelError,
    counted,
    describe_error,
    reading,
    runs_text,
    shorten,
)


@pytest.mark.parametrize(("exc", "path", "expected"), [
    (FileNotFoundError(2, "No such file"), "a.csv", "panel not found: a.csv"),
    (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), "a.csv", "is not UTF-8 text"),
    (zipfile.BadZipFile("File is not a zip file"), "book.xlsx", "not a readable Excel workbook"),
    (KeyError("There is no item named '[Content_Types].xml' in the archive"), "book.xlsx",
     "not a readable Excel workbook"),
    (tomllib.TOMLDecodeError("Invalid statement (at line 1, column 1)"), "config.toml", "is not valid TOML"),
    (RecursionError("maximum recursion depth exceeded"), "config.toml", "nested too deeply"),
    (pa.ArrowInvalid("Parquet magic bytes not found in footer"), "p.parquet", "not a readable Parquet file"),
    (pd.errors.ParserError("Expected 3 fields in line 3, saw 5"), "a.csv", "not a readable CSV file"),
    (PermissionError(13, "Permission denied"), "a.csv", "permission denied"),
])
def test_reader_errors_become_sentences(exc, path, expected):
    with pytest.raises(InputError, match=expected) as caught:
        with reading(path, "panel"):
            raise exc
    assert path in str(caught.value)
    assert "Traceback" not in describe_error(caught.value)


def test_project_errors_pass_and_bugs_stay_bugs():
    with pytest.raises(PanelError, match="bad rows"), reading("a.csv"):
        raise PanelError("a.csv", ["bad rows"])
    with pytest.raises(ZeroDivisionError), reading("a.csv"):
        raise ZeroDivisionError
    with pytest.raises(KeyError), reading("a.csv"):  # a KeyError is a reader's only for a workbook
        raise KeyError("segment")


def test_counts_take_the_noun_in_the_number_they_count():
    assert [counted(n, "loan") for n in (0, 1, 2, 2500)] == ["0 loans", "1 loan", "2 loans", "2,500 loans"]
    assert counted(1, "as-of month") == "1 as-of month" and counted(3, "cohort factor") == "3 cohort factors"
    assert counted(2, "child", "children") == "2 children" and counted(1, "child", "children") == "1 child"


def test_messages_repeat_little_of_a_huge_value():
    huge = "x," * 10_000_000
    assert len(shorten(huge)) <= 120
    with pytest.raises(InputError) as caught, reading("one-line.csv"):
        raise pd.errors.ParserError(huge)
    assert len(str(caught.value)) < 400


@pytest.mark.parametrize(("values", "expected"), [
    ([], ""), ([4], "4"), ([3, 1, 2, 5, 7, 8], "1..3, 5, 7..8"), ([2, 2, 3], "2..3"), ([9, 1], "1, 9"),
])
def test_runs_text_lists_consecutive_numbers_as_runs(values, expected):
    assert runs_text(values) == expected
