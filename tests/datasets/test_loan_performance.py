"""Agency loan performance readers: tiny synthetic files in each layout (Fannie combined, Fannie Performance +
Acquisition, Freddie origination + performance) with answers worked by hand, the CLI, and the real excerpt (skipped
when absent; nothing of it is copied here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyxl_del.cli import main
from pyxl_del.datasets import loan_performance
from pyxl_del.datasets.fannie import read_fannie
from pyxl_del.datasets.freddie import read_freddie
from pyxl_del.datasets.loan_performance import LoanFileError
from pyxl_del.engine.config import load_config

COLUMNS = {"loan_id": "AGREEMENT_ID", "cohort": "DISBURSAL_MONTH", "mob": "MOB", "segment": "PRODUCT_TYPE",
           "state": "STATE_MODEL", "ead": "PRINCIPLE_OUTSTANDING", "apr": "APR"}
EXCERPT = Path(__file__).resolve().parents[3] / "shared" / "data" / "fannie-mae-2017Q1" / "2017Q1-part.csv"
EXCERPT = next((p / "shared/data/fannie-mae-2017Q1/2017Q1-part.csv" for p in Path(__file__).resolve().parents
                if (p / "shared/data/fannie-mae-2017Q1/2017Q1-part.csv").is_file()), EXCERPT)

# The book, month by month (year, month): loan, purpose, original UPB, origination (y, m), rate, then per row
# (y, m, current UPB text, months-delinquent text, zero-balance code, UPB at removal).
LOANS = [
    # L1: balance masked (0.00, then blank) -> original, then carried; XX carries DPD30+.
    ("L1", "P", "1000.00", (2019, 11), "4.5", [(2020, 1, "0.00", "00", "", ""), (2020, 2, "0.00", "00", "", ""),
                                              (2020, 3, "990.00", "01", "", ""), (2020, 4, "", "XX", "", ""),
                                              (2020, 5, "980.00", "02", "", "")]),
    # L2: prepaid in 2020-04 (code 01, balance 0); a stray row after the end is dropped.
    ("L2", "C", "2000.00", (2020, 1), "4.0", [(2020, 2, "2000.00", "00", "", ""), (2020, 3, "1990.00", "00", "", ""),
                                              (2020, 4, "0.00", "00", "01", ""), (2020, 5, "0.00", "00", "", "")]),
    # L3: 3 and 5 months late -> DPD90+; REO disposition (09) -> WRITEOFF at the UPB removed (700).
    ("L3", "R", "800.00", (2019, 12), "5.0", [(2020, 1, "800.00", "00", "", ""), (2020, 2, "790.00", "00", "", ""),
                                              (2020, 3, "790.00", "03", "", ""), (2020, 4, "790.00", "05", "", ""),
                                              (2020, 5, "0.00", "", "09", "700.00")]),
    # L4: a month missing (gap), then repurchased (06): it leaves the data live, that row dropped.
    ("L4", "P", "500.00", (2019, 12), "3.5", [(2020, 1, "500.00", "00", "", ""), (2020, 3, "480.00", "00", "", ""),
                                              (2020, 4, "0.00", "", "06", "")]),
    # L5: first status unknown -> the next known (CURRENT).
    ("L5", "U", "300.00", (2020, 2), "6.0", [(2020, 3, "300.00", "XX", "", ""), (2020, 4, "295.00", "00", "", "")]),
]

# The answer worked by hand (cohort by first reporting month): loan, cohort, MOB, state, EAD.
EXPECTED = [
    ("L1", "2020-01", 0, "CURRENT", 1000.0), ("L1", "2020-01", 1, "CURRENT", 1000.0),
    ("L1", "2020-01", 2, "DPD30+", 990.0), ("L1", "2020-01", 3, "DPD30+", 990.0), ("L1", "2020-01", 4, "DPD60+", 980.0),
    ("L2", "2020-02", 0, "CURRENT", 2000.0), ("L2", "2020-02", 1, "CURRENT", 1990.0), ("L2", "2020-02", 2, "PREPAY", 0.0),
    ("L3", "2020-01", 0, "CURRENT", 800.0), ("L3", "2020-01", 1, "CURRENT", 790.0), ("L3", "2020-01", 2, "DPD90+", 790.0),
    ("L3", "2020-01", 3, "DPD90+", 790.0), ("L3", "2020-01", 4, "WRITEOFF", 700.0),
    ("L4", "2020-01", 0, "CURRENT", 500.0), ("L4", "2020-01", 2, "CURRENT", 480.0),
    ("L5", "2020-03", 0, "CURRENT", 300.0), ("L5", "2020-03", 1, "CURRENT", 295.0),
]
FANNIE_PURPOSE = {"P": "PURCHASE", "C": "CASH-OUT REFI", "R": "NO-CASH-OUT REFI", "U": "UNKNOWN"}


def _lines(width: int, rows: list[dict[int, str]]) -> str:
    out = []
    for row in rows:
        fields = [""] * width
        for i, v in row.items():
            fields[i] = v
        out.append("|".join(fields))
    return "\n".join(out) + "\n"


def write_combined(path: Path, loans: list = LOANS) -> Path:
    rows = [{1: loan, 2: f"{m:02d}{y}", 7: rate, 9: orig, 11: upb, 13: f"{om:02d}{oy}", 26: purpose, 39: dlq, 43: zb,
             45: removal}
            for loan, purpose, orig, (oy, om), rate, months in loans for y, m, upb, dlq, zb, removal in months]
    path.write_text(_lines(108, rows))
    return path


def write_old_fannie(folder: Path) -> list[Path]:
    perf = [{0: loan, 1: f"{m:02d}/01/{y}", 4: upb if upb != "0.00" else "", 5: "1", 10: dlq.replace("XX", "X"),
             12: zb}
            for loan, _p, _o, _d, _r, months in LOANS for y, m, upb, dlq, zb, _rem in months]
    acq = [{0: loan, 1: "R", 3: rate, 4: orig, 6: f"{om:02d}/{oy}", 14: purpose}
           for loan, purpose, orig, (oy, om), rate, _months in LOANS]
    (folder / "Performance_2020Q1.txt").write_text(_lines(31, perf))
    (folder / "Acquisition_2020Q1.txt").write_text(_lines(25, acq))
    return [folder / "Performance_2020Q1.txt", folder / "Acquisition_2020Q1.txt"]


FREDDIE_PURPOSE = {"P": "P", "C": "C", "R": "N", "U": "9"}


def write_freddie(folder: Path) -> list[Path]:
    def status(dlq: str) -> str:
        return {"XX": "XX", "": ""}.get(dlq, str(int(dlq)) if dlq.isdigit() else dlq)

    perf = [{0: "F" + loan, 1: f"{y}{m:02d}", 2: upb, 3: status(dlq), 4: "1", 8: zb}
            for loan, _p, _o, _d, _r, months in LOANS for y, m, upb, dlq, zb, _rem in months]
    # First payment two months after origination (the reader subtracts them back).
    orig = [{0: "750", 1: f"{oy + (om + 1) // 12}{(om + 1) % 12 + 1:02d}", 10: orig, 12: rate, 19: "F" + loan,
             20: FREDDIE_PURPOSE[purpose]}
            for loan, purpose, orig, (oy, om), rate, _months in LOANS]
    (folder / "historical_data_time_2020Q1.txt").write_text(_lines(32, perf))
    (folder / "historical_data_2020Q1.txt").write_text(_lines(32, orig))
    return [folder / "historical_data_2020Q1.txt", folder / "historical_data_time_2020Q1.txt"]


def expected(*, writeoff_ead: float = 700.0, prefix: str = "") -> pd.DataFrame:
    frame = pd.DataFrame(EXPECTED, columns=["AGREEMENT_ID", "DISBURSAL_MONTH", "MOB", "STATE_MODEL",
                                            "PRINCIPLE_OUTSTANDING"])
    frame.loc[frame["STATE_MODEL"] == "WRITEOFF", "PRINCIPLE_OUTSTANDING"] = writeoff_ead
    frame["AGREEMENT_ID"] = prefix + frame["AGREEMENT_ID"]
    return frame


def check(panel: pd.DataFrame, want: pd.DataFrame) -> None:
    got = panel[list(want.columns)].astype({"AGREEMENT_ID": object, "DISBURSAL_MONTH": object, "STATE_MODEL": object})
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want.astype(got.dtypes.to_dict()), check_dtype=False)


def test_a_file_cut_short_is_named_as_such(tmp_path):
    """An interrupted download ends in part of a line: pyarrow said only "Expected 108 columns, got 12"."""
    import gzip

    text = write_combined(tmp_path / "2020Q1.csv").read_text()
    cut = text[:text.rindex("\n", 0, -1) + 1] + "|".join(text.splitlines()[-1].split("|")[:12])
    (tmp_path / "cut.csv").write_text(cut)
    (tmp_path / "cut.csv.gz").write_bytes(gzip.compress(cut.encode()))
    for name in ("cut.csv", "cut.csv.gz"):
        with pytest.raises(LoanFileError, match=r"Its last line has 12 of the 108 fields: the file is cut short"):
            read_fannie([tmp_path / name], COLUMNS)
    # Inside an archive the message names the member and the archive, not the temporary folder it was unpacked to
    # (gone by the time the message is read).
    import zipfile

    with zipfile.ZipFile(tmp_path / "2020Q1.zip", "w") as archive:
        archive.write(tmp_path / "cut.csv", "cut.csv")
    with pytest.raises(LoanFileError, match=r"Its last line has 12 of the 108") as info:
        read_fannie([tmp_path / "2020Q1.zip"], COLUMNS)
    assert str(info.value).startswith(f"cut.csv in {tmp_path / '2020Q1.zip'}: cannot read it as"), info.value
    assert "pyxl_del-unzip" not in str(info.value)
    # A short line inside the file is no sign of a cut. pyarrow names the count and the line's start, not the line:
    # the message does, so a user can find it among millions.
    lines = text.splitlines()
    (tmp_path / "inside.csv").write_text("\n".join([*lines[:3], "|1|2", *lines[3:]]) + "\n")
    with pytest.raises(LoanFileError, match="Expected 108 columns, got 3") as info:
        read_fannie([tmp_path / "inside.csv"], COLUMNS)
    assert "cut short" not in str(info.value)
    assert "Line 4 has 3 '|'-separated fields where the first line has 108: mend or delete it" in str(info.value)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=st.lists(st.sampled_from([4, 4, 4, 4, 0, 2, 6]), min_size=1, max_size=12),
       crlf=st.booleans(), last_end=st.booleans(), block=st.integers(1, 40))
def test_the_line_that_breaks_the_layout_is_found_at_any_block_boundary(tmp_path, monkeypatch, fields, crlf,
                                                                        last_end, block):
    """`_bad_line` counts fields block by block; a line, a CRLF or an empty line split between two blocks counts as
    one line. Reference: the lines split in Python. Field count 0 is an empty line (skipped, as pyarrow skips it)."""
    fields = [4, *fields]  # the first line sets the width
    end = "\r\n" if crlf else "\n"
    text = end.join("|".join("x" * n) if n else "" for n in fields) + (end if last_end else "")
    path = tmp_path / "f.txt"
    path.write_bytes(text.encode())
    monkeypatch.setattr(loan_performance, "READ_BLOCK", block)
    hint = loan_performance._bad_line(path, 4)
    nonempty = [(i + 1, n) for i, n in enumerate(fields) if n]
    bad = [(line, n) for line, n in nonempty if n != 4]
    if not bad:
        assert hint == ""
    elif bad[0][0] == nonempty[-1][0] and bad[0][1] < 4:
        assert hint.startswith(f". Its last line has {bad[0][1]} of the 4 fields: the file is cut short"), hint
    else:
        assert hint.startswith(f". Line {bad[0][0]:,} has {bad[0][1]} '|'-separated"), hint


def test_fannie_combined_layout_known_answer(tmp_path):
    panel, summary = read_fannie([write_combined(tmp_path / "2020Q1.csv")], COLUMNS)
    check(panel, expected())
    assert list(panel.columns) == list(COLUMNS.values())
    assert panel.set_index("AGREEMENT_ID")["PRODUCT_TYPE"].groupby(level=0).first().to_dict() == {
        "L1": "PURCHASE", "L2": "CASH-OUT REFI", "L3": "NO-CASH-OUT REFI", "L4": "PURCHASE", "L5": "UNKNOWN"}
    assert panel.loc[panel["AGREEMENT_ID"] == "L1", "APR"].iloc[0] == pytest.approx(0.045)
    # L1's 2 masked 0.00 rows and its blank one; L2's and L4's end rows are not live.
    assert summary.masked_balances == 3
    assert summary.unknown_status == 2  # L1 2020-04 (XX, carried DPD30+) and L5's first row (the next known)
    assert summary.gaps == 1 and summary.censored_loans == 1
    # A loan dropped whole (no known status) is in no count of the rows kept: its masked balances were counted.
    ghost = ("L6", "P", "400.00", (2020, 1), "4.0", [(2020, 2, "0.00", "XX", "", ""), (2020, 3, "", "XX", "", "")])
    _, with_ghost = read_fannie([write_combined(tmp_path / "ghost.csv", [*LOANS, ghost])], COLUMNS)
    assert with_ghost.dropped["of loans without any known status"] == 2
    assert (with_ghost.masked_balances, with_ghost.unknown_status) == (3, 2)
    assert summary.rows_read == 19 and summary.rows == 17 and summary.loans == 5
    assert summary.states == {"CURRENT": 10, "DPD30+": 2, "DPD60+": 1, "DPD90+": 2, "WRITEOFF": 1, "PREPAY": 1}
    assert summary.dropped["after the loan's end"] == 1


@pytest.mark.parametrize("code", ["97", "98"])
def test_fannies_credit_event_codes_97_and_98_are_losses(tmp_path, code):
    """97 (removed at 180 days delinquent) and 98 (other credit event) were read as "leaving the data while live": the
    loss was dropped and the loan censored, on exactly the crisis books where such codes occur."""
    loans = [(*LOANS[2][:5], [*LOANS[2][5][:-1], (2020, 5, "0.00", "", code, "700.00")])]
    panel, summary = read_fannie([write_combined(tmp_path / "2020Q1.csv", loans)], COLUMNS)
    last = panel.iloc[-1]
    assert (last["STATE_MODEL"], last["PRINCIPLE_OUTSTANDING"]) == ("WRITEOFF", 700.0)
    assert summary.censored_loans == 0 and summary.states["WRITEOFF"] == 1


def test_compressed_files_read_the_same(tmp_path):
    import gzip

    plain = write_combined(tmp_path / "2020Q1.csv")
    packed = tmp_path / "2020Q1.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    check(read_fannie([packed], COLUMNS)[0], expected())


def test_the_zip_archives_as_downloaded_read_the_same(tmp_path, capsys):
    """Fannie publishes a quarter as 2020Q1.zip (the .csv inside), Freddie as a .zip of both files: the archive had
    been read as text ("its first line has 1 '|'-separated fields")."""
    import zipfile

    def zipped(name: str, files: list[Path], extra: dict[str, bytes] | None = None) -> Path:
        archive = tmp_path / name
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
            for f in files:
                z.write(f, f.name)
            for member, data in (extra or {}).items():
                z.writestr(member, data)
        return archive

    fannie = zipped("2020Q1.zip", [write_combined(tmp_path / "2020Q1.csv")], {"__MACOSX/._2020Q1.csv": b"\0"})
    check(read_fannie([fannie], COLUMNS)[0], expected())
    (tmp_path / "freddie").mkdir()
    freddie = zipped("historical_data_2020Q1.zip", write_freddie(tmp_path / "freddie"))
    check(read_freddie([freddie], COLUMNS)[0], expected(writeoff_ead=790.0, prefix="F"))
    out = tmp_path / "panel.parquet"
    assert main(["import", "fannie", str(fannie), "--out", str(out)]) == 0
    check(pd.read_parquet(out), expected())
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 not really")
    empty = zipped("empty.zip", [])
    for archive, message in ((tmp_path / "bad.zip", "not a readable .zip archive"), (empty, "holds no file")):
        assert main(["import", "fannie", str(archive), "--out", str(out)]) == 2
        assert f"{archive}: " in (err := capsys.readouterr().err) and message in err, err


def test_cohort_by_origination_month(tmp_path):
    panel, summary = read_fannie([write_combined(tmp_path / "2020Q1.csv")], COLUMNS, cohort_by="origination")
    first = panel.groupby("AGREEMENT_ID")[["DISBURSAL_MONTH", "MOB"]].first()
    assert first.to_dict("index") == {"L1": {"DISBURSAL_MONTH": "2019-11", "MOB": 2},
                                      "L2": {"DISBURSAL_MONTH": "2020-01", "MOB": 1},
                                      "L3": {"DISBURSAL_MONTH": "2019-12", "MOB": 1},
                                      "L4": {"DISBURSAL_MONTH": "2019-12", "MOB": 1},
                                      "L5": {"DISBURSAL_MONTH": "2020-02", "MOB": 1}}
    # Same rows and states as by first reporting month: only the clock moves.
    assert summary.rows == 17 and (panel["STATE_MODEL"].to_numpy() == expected()["STATE_MODEL"].to_numpy()).all()


def test_one_segment_when_asked(tmp_path):
    panel, _ = read_fannie([write_combined(tmp_path / "2020Q1.csv")], COLUMNS, segment_by="none")
    assert set(panel["PRODUCT_TYPE"]) == {"ALL"}


def test_fannie_older_performance_and_acquisition_pair(tmp_path):
    """Same book in the older two-file layout: the same panel, except that the older layout has no UPB at removal,
    so the write-off is at the last balance (790)."""
    panel, summary = read_fannie(write_old_fannie(tmp_path), COLUMNS)
    check(panel, expected(writeoff_ead=790.0))
    assert summary.masked_balances == 3 and summary.unknown_status == 2 and summary.gaps == 1
    assert panel.loc[panel["AGREEMENT_ID"] == "L3", "PRODUCT_TYPE"].iloc[0] == "NO-CASH-OUT REFI"


def test_fannie_performance_without_acquisition_is_an_input_error(tmp_path):
    perf, _acq = write_old_fannie(tmp_path)
    with pytest.raises(LoanFileError, match="Acquisition"):
        read_fannie([perf], COLUMNS)
    other = tmp_path / "notes.txt"
    other.write_text("hello\n")
    with pytest.raises(LoanFileError, match="not a Fannie Mae loan performance file"):
        read_fannie([other], COLUMNS)


def test_freddie_layout_known_answer(tmp_path):
    panel, summary = read_freddie(write_freddie(tmp_path), COLUMNS)
    check(panel, expected(writeoff_ead=790.0, prefix="F"))
    labels = panel.groupby("AGREEMENT_ID")["PRODUCT_TYPE"].first().to_dict()
    assert labels == {"FL1": "PURCHASE", "FL2": "CASH-OUT REFI", "FL3": "NO-CASH-OUT REFI", "FL4": "PURCHASE",
                      "FL5": "UNKNOWN"}
    assert summary.gaps == 1 and summary.censored_loans == 1
    by_orig, _ = read_freddie(write_freddie(tmp_path), COLUMNS, cohort_by="origination")
    assert by_orig.groupby("AGREEMENT_ID")["DISBURSAL_MONTH"].first()["FL1"] == "2019-11"


def test_freddie_needs_both_files(tmp_path):
    orig, _perf = write_freddie(tmp_path)
    with pytest.raises(LoanFileError, match="no monthly performance file"):
        read_freddie([orig], COLUMNS)


def test_one_agencys_files_given_to_the_others_reader_name_the_right_one(tmp_path):
    """`import freddie` on a Fannie Mae file read it as an origination file and said "no monthly performance file";
    `import fannie` on Freddie Mac's files named only a field count. Each now says whose file it is; a file of neither
    gets no such hint."""
    combined = write_combined(tmp_path / "2020Q1.csv")
    (tmp_path / "old").mkdir()
    (tmp_path / "freddie").mkdir()
    perf, acq = write_old_fannie(tmp_path / "old")
    for fannie_file in (combined, perf, acq):
        with pytest.raises(LoanFileError, match="not a Freddie Mac loan-level file.*It is a Fannie Mae loan "
                                                r"performance file: read it with `pyxl-del import fannie`"):
            read_freddie([fannie_file], COLUMNS)
    for freddie_file in write_freddie(tmp_path / "freddie"):
        with pytest.raises(LoanFileError, match="not a Fannie Mae loan performance file.*It is a Freddie Mac "
                                                r"loan-level file: read it with `pyxl-del import freddie`"):
            read_fannie([freddie_file], COLUMNS)
    other = tmp_path / "notes.txt"
    other.write_text("|".join(["x"] * 120) + "\n")
    for read in (read_fannie, read_freddie):
        with pytest.raises(LoanFileError, match="not a F") as info:
            read([other], COLUMNS)
        assert "It is a" not in str(info.value)


def test_cli_import_writes_a_panel_the_engine_runs(tmp_path, capsys):
    from pyxl_del.engine.pipeline import run

    out = tmp_path / "panel.parquet"
    assert main(["import", "fannie", str(write_combined(tmp_path / "2020Q1.csv")), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "19 rows read -> 17 panel rows, 5 loans" in printed and f"wrote {out}" in printed
    panel = pd.read_parquet(out)
    check(panel, expected())
    result = run(panel, load_config(None))
    assert set(result.segments) == {"PURCHASE", "CASH-OUT REFI", "NO-CASH-OUT REFI", "UNKNOWN"}
    csv = tmp_path / "panel.csv"
    assert main(["import", "fannie", str(tmp_path / "2020Q1.csv"), "--out", str(csv)]) == 0
    check(pd.read_csv(csv, dtype={"DISBURSAL_MONTH": str}), expected())


def test_cli_import_bad_inputs_exit_2(tmp_path, capsys):
    src = write_combined(tmp_path / "2020Q1.csv")
    assert main(["import", "fannie", str(src), "--out", str(tmp_path / "panel.xlsx")]) == 2
    assert "write a .parquet or a .csv file" in capsys.readouterr().err
    assert main(["import", "freddie", str(src), "--out", str(tmp_path / "p.parquet")]) == 2
    assert main(["import", "fannie", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "p.parquet")]) == 2
    assert "file not found" in capsys.readouterr().err


# Loans with no known status on any row, each ending with a zero-balance code: without a status they are no loans of
# the panel, not one-row PREPAY / WRITEOFF loans at MOB 0 (that would make cohorts of them).
NO_STATUS_LOANS = [
    ("L6", "P", "400.00", (2020, 1), "4.0", [(2020, 2, "400.00", "XX", "", ""), (2020, 3, "0.00", "XX", "01", "")]),
    ("L7", "C", "600.00", (2020, 1), "4.0", [(2020, 4, "0.00", "", "09", "550.00")]),
    ("L8", "R", "700.00", (2020, 1), "4.0", [(2020, 6, "0.00", "Z", "01", "")]),
]


def test_loans_without_any_known_status_are_dropped_with_their_zero_balance_row(tmp_path):
    path = write_combined(tmp_path / "2020Q1.csv", LOANS + NO_STATUS_LOANS)
    panel, summary = read_fannie([path], COLUMNS)
    check(panel, expected())
    assert summary.rows_read == 19 + 4 and summary.loans == 5 and summary.cohorts == 3
    assert summary.states["PREPAY"] == 1 and summary.states["WRITEOFF"] == 1
    assert summary.dropped["of loans without any known status"] == 4  # L6's two rows, L7's and L8's one


def test_nothing_left_is_an_error_naming_the_files_and_why(tmp_path, capsys):
    no_period = tmp_path / "no_period.csv"
    no_period.write_text(_lines(108, [{1: "L1", 2: "XX2017", 9: "100.00", 11: "100.00", 39: "00"}] * 3))
    with pytest.raises(LoanFileError, match=r"no_period\.csv: no loan left to import: 3 rows read, 3 without a loan id "
                                            r"or reporting month"):
        read_fannie([no_period], COLUMNS)
    no_status = write_combined(tmp_path / "no_status.csv", NO_STATUS_LOANS)
    with pytest.raises(LoanFileError, match=r"no_status\.csv: no loan left .* 4 of loans without any known status"):
        read_fannie([no_status], COLUMNS)
    out = tmp_path / "panel.csv"
    assert main(["import", "fannie", str(no_period), str(no_status), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no_period.csv, no_status.csv: no loan left to import" in err and not out.exists()


def test_a_leading_byte_order_mark_reads_like_the_others(tmp_path):
    bom = "\ufeff"
    combined = write_combined(tmp_path / "2020Q1.csv")
    combined.write_text(bom + combined.read_text(), encoding="utf-8")
    check(read_fannie([combined], COLUMNS)[0], expected())
    older = write_old_fannie(tmp_path)
    for path in older:
        path.write_text(bom + path.read_text(), encoding="utf-8")
    check(read_fannie(older, COLUMNS)[0], expected(writeoff_ead=790.0))
    freddie = write_freddie(tmp_path)
    for path in freddie:
        path.write_text(bom + path.read_text(), encoding="utf-8")
    check(read_freddie(freddie, COLUMNS)[0], expected(writeoff_ead=790.0, prefix="F"))


def test_cli_import_never_writes_over_an_input(tmp_path, capsys):
    src = write_combined(tmp_path / "2020Q1.csv")
    before = src.read_bytes()
    assert main(["import", "fannie", str(src), "--out", str(src)]) == 2
    err = capsys.readouterr().err
    assert f"--out {src} is one of the input files" in err
    # The same file by another spelling of its path.
    other = tmp_path / "sub" / ".." / "2020Q1.csv"
    (tmp_path / "sub").mkdir()
    assert main(["import", "fannie", str(src), "--out", str(other)]) == 2
    assert src.read_bytes() == before and not list(tmp_path.glob(".*pyxl_del*"))


def test_cli_import_raw_csv_writes_ids_as_they_are(tmp_path):
    src = tmp_path / "2020Q1.csv"
    src.write_text(write_combined(src).read_text().replace("|L1|", "|=L1|"))
    safe, raw = tmp_path / "safe.csv", tmp_path / "raw.csv"
    assert main(["import", "fannie", str(src), "--out", str(safe)]) == 0
    assert main(["import", "fannie", str(src), "--out", str(raw), "--raw-csv"]) == 0
    assert set(pd.read_csv(safe)["AGREEMENT_ID"]) == {"'=L1", "L2", "L3", "L4", "L5"}
    assert set(pd.read_csv(raw)["AGREEMENT_ID"]) == {"=L1", "L2", "L3", "L4", "L5"}


@pytest.mark.skipif(not EXCERPT.is_file(), reason="the Fannie Mae excerpt is internal test data, absent here")
def test_real_excerpt_reads_whole():
    panel, summary = read_fannie([EXCERPT], COLUMNS)
    assert summary.rows_read == 20_000 and summary.loans == 438 and summary.cohorts == 3
    assert summary.states["WRITEOFF"] == 0 and summary.states["DPD90+"] > 0
    # cohort + MOB = calendar month: every loan starts at MOB 0 by first reporting month.
    assert (panel.groupby("AGREEMENT_ID")["MOB"].min() == 0).all()
    assert np.isfinite(panel["PRINCIPLE_OUTSTANDING"]).all() and (panel["PRINCIPLE_OUTSTANDING"] >= 0).all()


STATUS = st.sampled_from(["00", "01", "02", "03", "07", "XX", ""])
ZB = st.sampled_from(["", "", "", "", "01", "03", "06", "09", "16"])
UPB = st.sampled_from(["0.00", "", "100.00", "95.50"])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.tuples(UPB, STATUS, ZB), min_size=1, max_size=8), min_size=1, max_size=6))
def test_cleaning_invariants(tmp_path, loans):
    """Whatever the statuses, codes and balances: the loans kept are those with a known status up to their end and a
    row before leaving the data live (none kept is an error), MOBs rise from 0 without repeats, an absorbing state
    can only be a loan's last row, PREPAY has EAD 0, every EAD is a finite number >= 0, and the summary adds up."""
    rows = [{1: f"L{i}", 2: f"{m % 12 + 1:02d}{2020 + m // 12}", 9: "100.00", 11: upb, 13: "012020", 26: "P",
             39: dlq, 43: zb}
            for i, months in enumerate(loans) for m, (upb, dlq, zb) in enumerate(months)]
    path = tmp_path / "random.csv"
    path.write_text(_lines(108, rows))
    kept = set()
    for i, months in enumerate(loans):
        end = next((m for m, (_u, _d, zb) in enumerate(months) if zb), len(months) - 1)
        own = months[:end + 1]
        if any(d.isdigit() for _u, d, _z in own) and (not own[0][2] or own[0][2] in ("01", "03", "09")):
            kept.add(f"L{i}")
    if not kept:
        with pytest.raises(LoanFileError, match="random.csv: no loan left to import"):
            read_fannie([path], COLUMNS)
        return
    panel, summary = read_fannie([path], COLUMNS)
    assert set(panel["AGREEMENT_ID"]) == kept
    assert summary.rows == len(panel) == sum(summary.states.values()) <= summary.rows_read == len(rows)
    by_loan = panel.groupby("AGREEMENT_ID")
    assert (by_loan["MOB"].min() == 0).all() and (by_loan["MOB"].diff().dropna() >= 1).all()
    absorbing = panel["STATE_MODEL"].isin(["PREPAY", "WRITEOFF"]).to_numpy()
    last = ~panel["AGREEMENT_ID"].duplicated(keep="last").to_numpy()
    assert not (absorbing & ~last).any()
    ead = panel["PRINCIPLE_OUTSTANDING"].to_numpy()
    assert np.isfinite(ead).all() and (ead >= 0).all()
    assert (ead[panel["STATE_MODEL"].to_numpy() == "PREPAY"] == 0).all()
    assert (ead[~absorbing] > 0).all()  # a live balance is never the masked 0


def _whole_and_in_batches(monkeypatch, read, files):
    """(panel, summary) read in one batch, and read in blocks of a few lines and batches of two rows."""
    whole = read(files, COLUMNS)
    monkeypatch.setattr(loan_performance, "READ_BLOCK", 256)  # bytes: a block is a few lines
    monkeypatch.setattr(loan_performance, "BATCH_ROWS", 2)
    return whole, read(files, COLUMNS)


@pytest.mark.parametrize("layout", ["combined", "older Fannie", "Freddie"])
def test_batches_of_whole_loans_give_the_whole_files_panel(tmp_path, monkeypatch, layout):
    """A quarter is cleaned a batch of whole loans at a time (memory stays at one batch): the panel and every count
    are those of the files cleaned at once, in each layout."""
    read, files = {"combined": (read_fannie, [write_combined(tmp_path / "2020Q1.csv")]),
                   "older Fannie": (read_fannie, write_old_fannie(tmp_path)),
                   "Freddie": (read_freddie, write_freddie(tmp_path))}[layout]
    calls = []
    real = loan_performance._clean_part

    def counted(raw, *args, **kwargs):
        calls.append(len(raw))
        return real(raw, *args, **kwargs)

    monkeypatch.setattr(loan_performance, "_clean_part", counted)
    (panel, summary), (batched, batched_summary) = _whole_and_in_batches(monkeypatch, read, files)
    assert calls[:2] == [17, 2] and len(calls) >= 2 + 3  # at once (the last loan waits), then in several batches
    assert sum(calls[2:]) == 19
    pd.testing.assert_frame_equal(batched, panel)
    assert batched_summary == summary


def test_loans_not_listed_together_are_read_whole(tmp_path, monkeypatch):
    """A file sorted by month (each loan's rows apart) cannot be cleaned a batch at a time: it is read whole, and
    gives the panel of the same rows listed by loan."""
    by_loan = write_combined(tmp_path / "by_loan.csv")
    lines = by_loan.read_text().splitlines()
    by_month = tmp_path / "by_month.csv"
    by_month.write_text("\n".join(sorted(lines, key=lambda line: line.split("|")[2][2:] + line.split("|")[2][:2]))
                        + "\n")
    (panel, summary), _ = _whole_and_in_batches(monkeypatch, read_fannie, [by_loan])
    got, got_summary = read_fannie([by_month], COLUMNS)
    pd.testing.assert_frame_equal(got, panel)
    assert got_summary == summary


@pytest.mark.skipif(not EXCERPT.is_file(), reason="the Fannie Mae excerpt is internal test data, absent here")
def test_real_excerpt_in_batches_equals_whole(monkeypatch):
    whole, summary = read_fannie([EXCERPT], COLUMNS)
    monkeypatch.setattr(loan_performance, "READ_BLOCK", 1 << 16)
    monkeypatch.setattr(loan_performance, "BATCH_ROWS", 1000)
    batched, batched_summary = read_fannie([EXCERPT], COLUMNS)
    pd.testing.assert_frame_equal(batched, whole)
    assert batched_summary == summary
