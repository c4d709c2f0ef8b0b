"""The headless command line: tables written, exit codes, messages."""

import subprocess
import sys

import pandas as pd
import pytest
from _panels import CHAIN, simulate

from pyxl_del.cli import main


@pytest.fixture(scope="module")
def panel_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "panel.csv"
    df = simulate(CHAIN, segments=("CASH LOAN", "Vay tiêu dùng"), cohorts=5, loans=200)
    df.to_csv(path, index=False)
    return path



def test_progress_in_a_log_file_is_a_line_per_step(panel_csv, tmp_path):
    """A scheduler's log (stderr not a terminal) gets one line per step, not a bar redrawn with carriage returns;
    -q silences it."""
    args = [sys.executable, "-m", "pyxl_del.cli", "report", str(panel_csv), "--out", str(tmp_path / "t")]
    log = subprocess.run(args, capture_output=True, text=True, check=True).stderr
    steps = [line for line in log.splitlines() if line.startswith("pyxl_del: ")]
    assert [line.split()[1] for line in steps] == [f"{i}/8" for i in range(1, 9)], log
    assert "\r" not in log and "read" in steps[0] and "write" in steps[-1]
    quiet = subprocess.run([*args, "-q"], capture_output=True, text=True, check=True).stderr
    assert "pyxl_del: " not in quiet

def test_ctrl_c_is_a_sentence_and_exit_130_not_a_traceback(panel_csv, tmp_path, capsys, monkeypatch):
    """Ctrl-C during a run printed KeyboardInterrupt's traceback; the output being written is not replaced."""
    import pyxl_del.engine.pipeline as pipeline

    out = tmp_path / "report.xlsx"
    out.write_bytes(b"the previous report")

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "run", interrupted)
    assert main(["report", str(panel_csv), "--out", str(out), "-q"]) == 130
    err = capsys.readouterr().err
    assert err.startswith("interrupted: ") and "Traceback" not in err
    assert out.read_bytes() == b"the previous report"


def test_the_report_names_the_config_file_it_read(panel_csv, tmp_path, capsys, monkeypatch):
    """Nothing named the config in use: a config.toml saved by Notepad as config.toml.txt, or a run from another
    folder, gave the built-in defaults without a word. The terminal and Run info name the file, or say that none
    was found."""
    from openpyxl import load_workbook

    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.toml.txt").write_text("[forecast]\nmax_mob = 12\n")
    assert main(["report", str(panel_csv), "--out", "r.xlsx", "-q"]) == 0
    printed = capsys.readouterr().out
    assert f"config: none: no config.toml in {tmp_path}, so the built-in defaults" in printed
    info = {row[0]: row[1] for row in load_workbook("r.xlsx")["Run info"].iter_rows(values_only=True)}
    assert info["Config file"] == f"none: no config.toml in {tmp_path}, so the built-in defaults"
    (tmp_path / "config.toml.txt").rename(tmp_path / "config.toml")
    assert main(["report", str(panel_csv), "--out", "t", "-q"]) == 0
    assert f"config: {tmp_path / 'config.toml'}" in capsys.readouterr().out


def test_a_scheduler_with_an_ascii_terminal_or_an_empty_out_gets_a_sentence(panel_csv, tmp_path, capsys,
                                                                            monkeypatch):
    """Under LC_ALL=C the warnings naming "Vay tiêu dùng" raised UnicodeEncodeError after the report was written
    (exit 1, an "internal error"); `--out ""` (an unset variable in a job) wrote the tables into the working
    folder."""
    import os

    env = os.environ | {"LC_ALL": "C", "LANG": "C", "PYTHONIOENCODING": "ascii", "PYTHONUTF8": "0"}
    run = subprocess.run([sys.executable, "-m", "pyxl_del.cli", "report", str(panel_csv), "--out",
                          str(tmp_path / "r.xlsx"), "-q"], capture_output=True, env=env)
    assert run.returncode == 0, run.stderr
    assert b"Vay ti\\xeau d\\xf9ng" in run.stdout + run.stderr and b"internal error" not in run.stderr
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(panel_csv), "--out", "", "-q"]) == 2
    assert "--out is empty (an unset variable in the job?)" in capsys.readouterr().err
    assert not (tmp_path / "del_long.csv").exists()


def test_report_writes_the_three_tables(panel_csv, tmp_path, capsys):
    out = tmp_path / "tables"
    assert main(["report", str(panel_csv), "--out", str(out), "-q"]) == 0
    long = pd.read_csv(out / "del_long.csv", keep_default_na=False)
    assert list(long.columns) == ["segment", "del_type", "cohort", "mob", "actual", "forecast", "mixed", "flag",
                                  "p10", "p50", "p90"]
    assert set(long["segment"]) == {"Portfolio", "CASH LOAN", "Vay tiêu dùng"}
    assert set(long["cohort"]) == {f"2024-0{i}" for i in range(1, 6)}
    # Empty where a value does not exist: an actual cell has no forecast and vice versa.
    actual_rows = long[long["flag"] == "ACTUAL"]
    assert (actual_rows["forecast"] == "").all() and (actual_rows["actual"] != "").all()
    factors = pd.read_csv(out / "calibration_factors.csv")
    assert list(factors.columns[:6]) == ["segment", "mob", "k", "n_cohorts_used", "expected_mean", "actual_mean"]
    tm = pd.read_csv(out / "transition_matrices.csv")
    assert list(tm.columns) == ["segment", "mob", "from_state", "to_state", "probability", "n_obs", "source"]
    assert set(tm["source"]) <= {"estimated", "fallback", "tail"}
    printed = capsys.readouterr().out
    assert "rows/s" in printed and "wrote" in printed


def test_bad_config_exits_2_and_names_the_key(panel_csv, tmp_path, capsys):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[calibration]\nmode = "sometimes"\n')
    assert main(["report", str(panel_csv), "--config", str(cfg), "--out", str(tmp_path / "o"), "-q"]) == 2
    assert "[calibration] mode" in capsys.readouterr().err


def test_bad_data_exits_2_with_rows(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("AGREEMENT_ID,DISBURSAL_MONTH,MOB,PRODUCT_TYPE,STATE_MODEL,PRINCIPLE_OUTSTANDING\n"
                   "L1,2024-01,0,A,CURRENT,100\nL1,2024-01,1,A,LATE,-3\n")
    assert main(["report", str(bad), "--out", str(tmp_path / "o"), "-q"]) == 2
    err = capsys.readouterr().err
    # A CSV goes to DuckDB, which names rows by loan and MOB (a glob of files has no row numbers).
    assert "'LATE'" in err and "negative" in err and "loan 'L1' MOB 1" in err


def test_missing_input_exits_2(tmp_path, capsys):
    assert main(["report", str(tmp_path / "none.parquet"), "--out", str(tmp_path / "o"), "-q"]) == 2
    assert "none.parquet" in capsys.readouterr().err


def test_sample_then_report_round_trip(tmp_path):
    path = tmp_path / "sample.parquet"
    assert main(["sample", "--out", str(path)]) == 0
    out = tmp_path / "t"
    assert main(["report", str(path), "--out", str(out), "-q"]) == 0
    assert (out / "del_long.csv").stat().st_size > 0
    # The sample as CSV is written as every CSV of pyxl_del's (it had no byte order mark), and reads back the same.
    assert main(["sample", "--out", str(tmp_path / "sample.csv")]) == 0
    assert (tmp_path / "sample.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    # --raw-csv, as every other command that writes CSV takes it (sample had none): no mark.
    assert main(["sample", "--out", str(tmp_path / "raw.csv"), "--plain", "--raw-csv"]) == 0
    assert (tmp_path / "raw.csv").read_bytes().startswith(b"\"AGREEMENT_ID\",")
    assert main(["report", str(tmp_path / "sample.csv"), "--out", str(tmp_path / "c"), "-q"]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "del_long.csv"), pd.read_csv(tmp_path / "c" / "del_long.csv"),
                                  check_exact=False, rtol=1e-12, atol=1e-12)


def test_sample_leaves_an_existing_file_and_names_a_bad_suffix(tmp_path, capsys):
    """`sample --out mydata.csv` replaced the user's own panel (read-only too) with synthetic loans; a .json path was
    "internal error ... a bug in pyxl_del"."""
    own = tmp_path / "mydata.csv"
    own.write_text("AGREEMENT_ID,DISBURSAL_MONTH\nL1,2025-01\n")
    assert main(["sample", "--out", str(own)]) == 1
    assert f"{own} exists: it is left as it is" in capsys.readouterr().err
    assert own.read_text() == "AGREEMENT_ID,DISBURSAL_MONTH\nL1,2025-01\n"
    own.chmod(0o444)
    assert main(["sample", "--out", str(own), "--force", "--plain"]) == 1
    assert "is read-only" in capsys.readouterr().err and own.read_text().startswith("AGREEMENT_ID,DISBURSAL_MONTH\nL1")
    own.chmod(0o644)
    assert main(["sample", "--out", str(own), "--force", "--plain"]) == 0
    assert len(pd.read_csv(own)) == 348_750
    assert main(["sample", "--out", str(tmp_path / "s.json")]) == 2
    err = capsys.readouterr().err
    assert "written as .csv, .parquet or .xlsx" in err and "internal error" not in err
    assert not (tmp_path / "s.json").exists()


def test_console_script_entry_point():
    done = subprocess.run([sys.executable, "-m", "pyxl_del.cli", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and "pyxl_del" in done.stdout


ALLOCATORS = """
import sys
from pyxl_del.cli import main
try:
    main(["--version"])
except SystemExit:
    pass
import numpy, pyarrow
print(numpy._core.multiarray._get_madvise_hugepage(), pyarrow.default_memory_pool().backend_name)
"""


@pytest.mark.parametrize(("env", "expected"), [({}, "False system"),
                                               ({"ARROW_DEFAULT_MEMORY_POOL": "mimalloc"}, "False mimalloc")])
def test_the_command_sets_the_allocators_before_they_load(env, expected, monkeypatch):
    """No huge pages for numpy's arrays, Arrow on the system allocator: a 10M-row report's kernel time halved
    (cli/common.py); a setting of the user's own wins."""
    monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)
    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    done = subprocess.run([sys.executable, "-c", ALLOCATORS], capture_output=True, text=True, check=True)
    assert done.stdout.split("\n")[-2] == expected, done.stdout


def test_backtest_says_when_it_gives_less_than_asked(panel_csv, tmp_path, capsys):
    """`--origins 1000` was cut to the usable months and `--horizon 1000` printed "1..1000 months ahead", both
    silently. The panel (cohorts 2024-01..05, the last at MOB 0) has 3 usable as-of months, and its last month is 3
    months after the first of them."""
    assert main(["backtest", str(panel_csv), "--origins", "1000", "--horizon", "1000", "-q",
                 "--out", str(tmp_path / "bt")]) == 0
    out = capsys.readouterr().out
    assert "note: 3 usable as-of months, fewer than --origins 1000: all of them are used" in out, out
    assert "1..1000 months ahead" not in out
    assert "note: no cell lies more than 3 months after its as-of month (--horizon 1000)" in out, out
    assert main(["backtest", str(panel_csv), "--origins", "3", "--horizon", "2", "-q",
                 "--out", str(tmp_path / "bt2")]) == 0
    assert "note:" not in capsys.readouterr().out  # the notes can stay silent


def test_a_tie_in_the_mean_row_is_not_starred_and_v_goes_after_the_command(tmp_path, capsys):
    """A book nobody is late in: every model is exact, the workbook says "Tie (no model lower)", and the terminal's
    mean row starred the first model anyway. Its hint "-v lists them" failed where a user puts -v."""
    cohorts = pd.period_range("2024-01", periods=5, freq="M")
    rows = [(f"L{c}-{i}", str(cohort), mob, "A", "CURRENT", 1000.0 - 10 * mob)
            for c, cohort in enumerate(cohorts) for i in range(40) for mob in range(6 - c)]
    pd.DataFrame(rows, columns=["AGREEMENT_ID", "DISBURSAL_MONTH", "MOB", "PRODUCT_TYPE", "STATE_MODEL",
                                "PRINCIPLE_OUTSTANDING"]).to_csv(tmp_path / "clean.csv", index=False)
    assert main(["backtest", str(tmp_path / "clean.csv"), "--origins", "2", "--horizon", "2", "-q", "-v",
                 "--out", str(tmp_path / "bt")]) == 0
    out = capsys.readouterr().out
    means = [line for line in out.splitlines() if line.strip().startswith("mean")]
    assert len(means) == 3 and all("0.000%" in line and "*" not in line for line in means), out
    assert "-v lists them" not in out  # the warnings are listed


@pytest.mark.parametrize("value", ["0", "-1"])
def test_report_backtest_needs_a_positive_count(panel_csv, tmp_path, capsys, value):
    """`report --backtest -1` answered "--origins must be at least 1" and --backtest 0 was ignored."""
    assert main(["report", str(panel_csv), "--backtest", value, "--out", str(tmp_path / "r"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "--backtest" in err and "--origins" not in err
