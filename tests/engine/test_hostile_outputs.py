"""Hostile outputs: CSV fields a spreadsheet would run as formulas (OWASP CSV injection), and a save killed halfway
(no hidden temporary file left behind)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyxl_del.cli import main
from pyxl_del.engine.files import atomic_replace, csv_safe, neutral_text, write_frames

ROOT = Path(__file__).resolve().parents[2]
PAYLOADS = ['=HYPERLINK("http://example.com","click me")', "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0",
            "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1", "  =1+1", "\uff1d1+1"]


def cells(path: Path) -> list[str]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return [cell for row in csv.reader(fh) for cell in row]


def runs_as_formula(cell: str) -> bool:
    """What a spreadsheet opening the CSV would run: a field starting with = + - @ (after blanks), tab or CR, that
    is not a plain number."""
    return neutral_text(cell) != cell


def test_every_payload_is_neutralised_and_numbers_stay_numbers():
    frame = pd.DataFrame({"segment": pd.array([*PAYLOADS, "CASH LOAN", "-5", None], dtype="str"),
                          "mixed": [*PAYLOADS[:3], -5, -2.5, "1e-3", float("-inf"), "ok", "a-b", None, 7],
                          "value": np.linspace(-1, 1, 11), "kind": pd.Categorical(["=x", "y"] * 5 + ["y"])})
    safe = csv_safe(frame)
    for column in ("segment", "mixed"):
        for before, after in zip(frame[column], safe[column], strict=True):
            if isinstance(before, str) and before in PAYLOADS:
                assert after == "'" + before
            else:
                assert after is before or after == before or (pd.isna(after) and pd.isna(before))
    assert safe["value"].equals(frame["value"]) and list(safe["kind"].cat.categories) == ["'=x", "y"]
    assert frame["segment"].iloc[0] == PAYLOADS[0]  # the caller's frame is untouched


def test_report_csvs_hold_no_formula(tmp_path, capsys):
    """A segment, a state and a cohort that would run in Excel: every CSV the report writes neutralises them; with
    --raw-csv they are written as they are."""
    from pyxl_del.datasets.sample import generate_sample

    panel = generate_sample(loans_per_cohort=20, n_cohorts=8)
    panel["PRODUCT_TYPE"] = panel["PRODUCT_TYPE"].map({"CASH LOAN": PAYLOADS[0], "CD": PAYLOADS[1]}).fillna("-Moto")
    data = tmp_path / "panel.parquet"
    panel.to_parquet(data)
    assert main(["report", str(data), "--out", str(tmp_path / "safe"), "-q"]) == 0
    assert main(["report", str(data), "--out", str(tmp_path / "raw"), "-q", "--raw-csv"]) == 0
    for name in ("del_long.csv", "transition_matrices.csv", "calibration_factors.csv"):
        safe, raw = cells(tmp_path / "safe" / name), cells(tmp_path / "raw" / name)
        assert not [c for c in safe if runs_as_formula(c)], name
        assert any(runs_as_formula(c) for c in raw), name  # the switch, and proof the check can fail
        assert sum(c.startswith("-0.") or c.startswith("-1") for c in safe) == \
            sum(c.startswith("-0.") or c.startswith("-1") for c in raw)  # negative numbers untouched


def test_csv_writes_numbers_bare_and_everything_else_as_pandas_spells_it(tmp_path):
    # Known answer, line by line: text quoted (a comma, a quote and a line break inside survive), numbers bare and in
    # their shortest exact form, a missing value empty, dates, periods, categories and booleans as pandas writes them.
    frame = pd.DataFrame({"segment": ["Cho vay tiêu dùng", 'a,"b"\nc', None], "mob": [0, 12, 36],
                          "ead": [0.1, float("nan"), 1e-20], "loans": pd.array([1, None, 3], dtype="Int64"),
                          "month": pd.PeriodIndex(["2024-01", "2024-02", "2024-03"], freq="M"),
                          "day": pd.to_datetime(["2024-01-31", None, "2024-03-01"]),
                          "flag": pd.Categorical(["ACTUAL", "FORECAST", None]), "live": [True, False, True],
                          "mixed": [1, "x", None]})
    (path,) = write_frames({"t": frame}, tmp_path)
    assert path.read_text(encoding="utf-8-sig").split("\n") == [
        '"segment","mob","ead","loans","month","day","flag","live","mixed"',
        '"Cho vay tiêu dùng",0,0.1,1,"2024-01","2024-01-31","ACTUAL","True","1"',
        '"a,""b""', 'c",12,,,"2024-02",,"FORECAST","False","x"',
        ',36,1e-20,3,"2024-03","2024-03-01",,"True",', '']
    back = pd.read_csv(path)
    assert back["mob"].tolist() == [0, 12, 36] and back["ead"].iloc[0] == 0.1 and back["segment"].iloc[1] == 'a,"b"\nc'
    # A name used twice keeps both columns (nothing lost).
    (path,) = write_frames({"t": pd.DataFrame([[1, "a", 2.5]], columns=["x", "x", "y"])}, tmp_path / "twice")
    assert path.read_text(encoding="utf-8-sig") == '"x","x","y"\n1,"a",2.5\n'


def test_write_frames_header_and_every_dtype(tmp_path):
    frame = pd.DataFrame({"=SUM(A1)": ["=1", "x"], "n": [-1, 2]})
    (path,) = write_frames({"t": frame}, tmp_path)
    assert cells(path) == ["'=SUM(A1)", "n", "'=1", "-1", "x", "2"]
    (path,) = write_frames({"t": frame}, tmp_path, raw_text=True)
    assert cells(path) == ["=SUM(A1)", "n", "=1", "-1", "x", "2"]


def test_a_spreadsheet_csv_starts_with_a_byte_order_mark(tmp_path):
    """Excel opens a CSV without the mark in the machine's ANSI code page: "Vay tiêu dùng" read "Vay tiÃªu dÃ¹ng".
    A CSV for programs (--raw-csv) has none; pandas reads both alike."""
    frame = pd.DataFrame({"segment": ["Vay tiêu dùng"], "n": [1]})
    (safe,) = write_frames({"t": frame}, tmp_path / "safe")
    (raw,) = write_frames({"t": frame}, tmp_path / "raw", raw_text=True)
    assert safe.read_bytes().startswith(b"\xef\xbb\xbf\"segment\"") and raw.read_bytes().startswith(b'"segment"')
    assert safe.read_bytes()[3:] == raw.read_bytes()
    pd.testing.assert_frame_equal(pd.read_csv(safe), pd.read_csv(raw))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=8), st.floats(), st.integers(), st.none()), min_size=1, max_size=8))
def test_no_written_cell_runs_as_formula(values):
    safe = csv_safe(pd.DataFrame({"c": pd.Series(values, dtype=object)}))
    for before, after in zip(values, safe["c"], strict=True):
        if isinstance(before, str):
            assert not runs_as_formula(after) and after in (before, "'" + before)
        else:
            assert after is before or (pd.isna(after) and pd.isna(before)) or after == before


# --------------------------------------------------------------------------------------------- kill -9


def test_a_save_killed_halfway_leaves_nothing_behind(tmp_path):
    target = tmp_path / "report.xlsx"
    target.write_bytes(b"the previous report")
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from pyxl_del.engine.files import atomic_replace
        with atomic_replace({str(target)!r}) as tmp:
            tmp.write_bytes(b"half of a report")
            print("writing", flush=True)
            time.sleep(60)
        """)], stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)}, text=True)
    try:
        assert child.stdout.readline().strip() == "writing"
        # Another write while that one is alive leaves its file alone ...
        with atomic_replace(target) as tmp:
            tmp.write_bytes(b"a newer report")
        litter = [p.name for p in tmp_path.iterdir() if p.name != "report.xlsx"]
        assert len(litter) == 1 and litter[0].startswith(".report.xlsx.pyxl_del-")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert target.read_bytes() == b"a newer report"
    # ... and the next write after the kill removes it.
    with atomic_replace(target) as tmp:
        tmp.write_bytes(b"the latest report")
    assert [p.name for p in tmp_path.iterdir()] == ["report.xlsx"]
    assert target.read_bytes() == b"the latest report"


def test_other_files_that_look_alike_are_left_alone(tmp_path):
    mine = [tmp_path / ".report-abc123.xlsx", tmp_path / ".report.xlsx.backup", tmp_path / "report.xlsx.pyxl_del-x"]
    for path in mine:
        path.write_bytes(b"the user's")
    with atomic_replace(tmp_path / "report.xlsx") as tmp:
        tmp.write_bytes(b"report")
    assert all(path.read_bytes() == b"the user's" for path in mine)


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_an_unwritable_folder_is_an_output_error(tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        assert main(["report", "--out", str(folder / "r.xlsx"), "-q"]) == 1
        assert "not writable" in capsys.readouterr().err
    finally:
        folder.chmod(0o700)


@pytest.fixture(scope="module")
def small_panel(tmp_path_factory) -> Path:
    from pyxl_del.datasets.sample import generate_sample

    path = tmp_path_factory.mktemp("panel") / "panel.parquet"
    generate_sample(loans_per_cohort=20, n_cohorts=8).to_parquet(path)
    return path


def test_a_workbook_pyxl_del_did_not_write_is_never_replaced(tmp_path, small_panel, capsys):
    """`report data.xlsx --out data.xlsx` replaced the panel with its own report, and `--out mine.xlsx` a user's
    workbook: such a file is left as it is, with a sentence naming it (exit 1)."""
    import openpyxl

    data = tmp_path / "data.xlsx"
    pd.read_parquet(small_panel).to_excel(data, index=False)
    before = data.read_bytes()
    assert main(["report", str(data), "--out", str(data), "-q"]) == 1
    err = capsys.readouterr().err
    assert str(data) in err and "pyxl_del did not write" in err and "Traceback" not in err
    assert data.read_bytes() == before
    mine = tmp_path / "mine.xlsx"
    book = openpyxl.Workbook()
    book.active["A1"] = "my precious notes"
    book.save(mine)
    assert main(["report", str(small_panel), "--out", str(mine), "-q"]) == 1
    assert openpyxl.load_workbook(mine).active["A1"].value == "my precious notes"
    # the guard can pass: a report replaces the report it wrote before
    ours = tmp_path / "ours.xlsx"
    assert main(["report", str(small_panel), "--out", str(ours), "-q"]) == 0
    assert main(["report", str(small_panel), "--out", str(ours), "-q"]) == 0


def test_a_report_the_user_added_sheets_to_is_never_replaced(tmp_path, small_panel, capsys):
    """A sheet of notes added to report.xlsx (and a report sheet renamed) vanished at the next `report --out
    report.xlsx`, without a word. The report's own sheets carry pyxl_del's markers; any other sheet stops the
    replace, named."""
    import openpyxl

    ours = tmp_path / "report.xlsx"
    assert main(["report", str(small_panel), "--out", str(ours), "-q"]) == 0
    book = openpyxl.load_workbook(ours)
    book.create_sheet("My notes")["A1"] = "ask risk about CD"
    book.save(ours)
    before = ours.read_bytes()
    assert main(["report", str(small_panel), "--out", str(ours), "-q"]) == 1
    err = capsys.readouterr().err
    assert "holds 1 sheet pyxl_del did not write ('My notes'): replacing the file would lose them" in err, err
    assert ours.read_bytes() == before
    book = openpyxl.load_workbook(ours)
    del book["My notes"]
    book["Summary"].title = "Summary 2025"
    book.save(ours)
    assert main(["report", str(small_panel), "--out", str(ours), "-q"]) == 1
    assert "('Summary 2025')" in capsys.readouterr().err
    book = openpyxl.load_workbook(ours)
    book["Summary 2025"].title = "Summary"  # back as written: the report's own again
    book.save(ours)
    assert main(["report", str(small_panel), "--out", str(ours), "-q"]) == 0


def test_one_command_does_not_replace_another_commands_workbook(tmp_path, small_panel, capsys):
    """`el --out report.xlsx` left 2 sheets of a 26-sheet report: a workbook is replaced only by the kind of
    output it holds."""
    report_book = tmp_path / "report.xlsx"
    assert main(["report", str(small_panel), "--out", str(report_book), "-q"]) == 0
    before = report_book.read_bytes()
    assert main(["el", str(small_panel), "--out", str(report_book)]) == 1
    err = capsys.readouterr().err
    assert "DEL30/60/90 actual & forecast" in err and "pyxl_del el" in err
    assert report_book.read_bytes() == before
    assert main(["el", str(small_panel), "--out", str(tmp_path / "el.xlsx")]) == 0
    assert main(["el", str(small_panel), "--out", str(tmp_path / "el.xlsx")]) == 0


def test_a_csv_that_is_not_the_table_is_never_replaced(tmp_path, small_panel, capsys):
    """`report csvin/del_long.csv --out csvin` wrote the report over its own input."""
    folder = tmp_path / "csvin"
    folder.mkdir()
    data = folder / "del_long.csv"
    pd.read_parquet(small_panel).to_csv(data, index=False)
    before = data.read_bytes()
    assert main(["report", str(data), "--out", str(folder), "-q"]) == 1
    err = capsys.readouterr().err
    assert str(data) in err and "not the del_long table" in err
    assert data.read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["del_long.csv"]  # checked before anything is written


def test_a_rerun_without_cohort_factors_removes_the_stale_table(tmp_path, small_panel, caplog):
    """Rerun into the same folder with cohort_factor = "none", cohort_factors.csv of the earlier run stayed beside
    tables it did not belong to."""
    out = tmp_path / "out"
    assert main(["report", str(small_panel), "--out", str(out), "-q"]) == 0
    assert (out / "cohort_factors.csv").is_file()
    config = tmp_path / "config.toml"
    config.write_text('[calibration]\ncohort_factor = "none"\n', encoding="utf-8")
    assert main(["report", str(small_panel), "--out", str(out), "-q", "--config", str(config)]) == 0
    assert not (out / "cohort_factors.csv").exists()
    assert "cohort_factors.csv" in caplog.text


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_a_folder_half_written_says_which_files_are_new(tmp_path, small_panel, capsys):
    out = tmp_path / "out"
    assert main(["report", str(small_panel), "--out", str(out), "-q"]) == 0
    (out / "transition_matrices.csv").unlink()
    (out / "transition_matrices.csv").mkdir()  # a file that cannot be replaced
    assert main(["report", str(small_panel), "--out", str(out), "-q"]) == 1
    err = capsys.readouterr().err
    assert "del_long.csv, calibration_factors.csv" in err and "already replaced" in err


@pytest.mark.parametrize("name", ["result.csv", "r.xls", "tables.ods"])
def test_a_table_folder_named_like_a_file_is_refused(tmp_path, small_panel, capsys, name):
    """`--out result.csv` made a folder called result.csv holding the tables."""
    assert main(["report", str(small_panel), "--out", str(tmp_path / name), "-q"]) == 1
    err = capsys.readouterr().err
    assert name in err and "folder" in err and ".xlsx" in err
    assert not (tmp_path / name).exists()
    assert main(["report", str(small_panel), "--out", str(tmp_path / "tables"), "-q"]) == 0  # a folder name works


def test_a_file_in_the_way_of_the_folder_is_named(tmp_path, small_panel, capsys):
    (tmp_path / "mine.xlsx").write_bytes(b"a file")
    assert main(["report", str(small_panel), "--out", str(tmp_path / "mine.xlsx" / "x.xlsx"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "mine.xlsx is a file, not a folder" in err and "does not exist" not in err


def test_a_read_only_file_is_not_replaced(tmp_path, small_panel, capsys):
    """A report marked read-only was replaced anyway: a rename ignores the file's own permissions."""
    out = tmp_path / "report.xlsx"
    assert main(["report", str(small_panel), "--out", str(out), "-q"]) == 0
    out.chmod(0o444)
    before = out.read_bytes()
    try:
        assert main(["report", str(small_panel), "--out", str(out), "-q"]) == 1
        err = capsys.readouterr().err
        assert f"{out} is read-only" in err and "left as it is" in err, err
        assert out.read_bytes() == before and not (out.stat().st_mode & 0o222)
    finally:
        out.chmod(0o644)
    assert main(["report", str(small_panel), "--out", str(out), "-q"]) == 0  # writable again: replaced


def test_a_full_disk_names_the_file_and_a_folder_named_like_a_workbook_is_refused_first(tmp_path, small_panel,
                                                                                         capsys, monkeypatch):
    """A full disk while writing the CSV tables said "[Errno 28] No space left on device", naming no file; `--out
    adir.xlsx` where adir.xlsx is a folder ran the whole report, then asked whether it was open in Excel."""
    from pyxl_del.engine.errors import OutputError

    path = tmp_path / "del_long.csv"
    path.write_text("the previous table\n")
    with pytest.raises(OutputError, match=rf"cannot write {path}: No space left on device; the previous file is "
                                          r"unchanged"):
        with atomic_replace(path):
            raise OSError(28, "No space left on device")
    assert path.read_text() == "the previous table\n"
    (tmp_path / "adir.xlsx").mkdir()
    import pyxl_del.engine.pipeline as pipeline

    monkeypatch.setattr(pipeline, "run", lambda *a, **k: pytest.fail("ran before refusing"))
    assert main(["report", str(small_panel), "--out", str(tmp_path / "adir.xlsx"), "-q"]) == 1
    assert "adir.xlsx: it is a folder; give a file name" in capsys.readouterr().err
