"""Hostile and odd files of the decision engine: applications for `decide`, policies for `apply`, and a decision
log whose tail is anchored so that `audit verify` sees a missing, emptied, truncated, extended or rewritten log.
Each bad file is exit 2 (or, for an altered log, exit 1) with a sentence, never a traceback."""

from __future__ import annotations

import codecs
import hashlib
import json
import multiprocessing
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from _decision import tiny_scored_panel
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyxl_del.cli import main
from pyxl_del.decision.applications import application_columns, read_applications
from pyxl_del.decision.audit import AUDIT_KEY_ENV, apply_policy, replace_policy_section, verify_log
from pyxl_del.decision.policy import Policy
from pyxl_del.engine.config import Config, load_config
from pyxl_del.engine.errors import InputError, describe_error
from pyxl_del.excel.decision_actions import read_policy_file

ROOT = Path(__file__).resolve().parents[2]
POLICY = Policy(segments={"CASH LOAN": {"cutoff": 600.0, "apr": 0.3, "budget_share": 0.5},
                          "CD": {"apr": 0.25, "budget_share": 0.3}, "TW/Moto": {"apr": 0.35, "budget_share": 0.2}},
                budget=1_000_000.0)
POLICY_CSV = "segment,cutoff,apr,budget_share\nCASH LOAN,600,0.3,0.5\nCD,,0.25,0.3\nTW/Moto,,0.35,0.2\n"


def run_cli(capsys, *args) -> tuple[int, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    return code, captured.err + captured.out


@pytest.fixture(scope="module")
def panel_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("panel") / "panel.parquet"
    tiny_scored_panel().to_parquet(path)
    return path


# ------------------------------------------------------------------------------------------- applications

APPLICATIONS = {
    "empty.csv": (b"", "is empty"),
    "blank.csv": (b"\n\n  \n", "is empty"),
    "header.csv": (b"segment,score,amount\n", "no applications"),
    "ragged-first.csv": (b"segment,score,amount\nCD,600,100,5\n", "more values than the header"),
    "ragged-later.csv": (b"segment,score,amount\nCD,600,100\nCD,600,100,5\n", "Expected 3 fields in line 3"),
    "latin1.csv": (b"segment,score,amount\nC\xe9,600,100\n", r"not UTF-8 text \(byte 0xe9\)"),
    "utf16.csv": ("segment,score,amount\nCD,600,100\n".encode("utf-16"), "UTF-16 text"),
    "binary.csv": (bytes(range(256)) * 4, "not UTF-8 text"),
    "corrupt.parquet": (b"PAR1" + bytes(200) + b"PAR1", "not a readable Parquet file"),
    "text.parquet": (b"segment,score,amount\nCD,600,100\n", "not a readable Parquet file"),
    "semicolon.csv": (b"segment;score;amount\nCD;600;100\n", "separated by ';'"),
    "absurd.csv": (b"segment,score,amount\nCD,600,1.7e308\nCD,1e300,100\nCD,600,inf\n",
                   r"'score' is beyond .* in row 3.*'amount' must be a number > 0 in row 4.*'amount' is over 1e\+12"),
    "nan.csv": (b"segment,score,amount,apr\n,NaN,-1,24\n",
                r"'segment' is empty.*'score' holds 'NaN' \(not a number\).*'amount' must be"),
    "book.xlsx": (b"PK\x03\x04", "unsupported type of applications file '.xlsx'"),
}


@pytest.mark.parametrize("name", APPLICATIONS)
def test_bad_applications_file_exit_2(tmp_path, capsys, name):
    data, expected = APPLICATIONS[name]
    path = tmp_path / name
    path.write_bytes(data)
    code, text = run_cli(capsys, "decide", path, "--out", tmp_path / "d.csv")
    assert code == 2 and str(path) in text
    assert re.search(expected, text), text
    assert not (tmp_path / "d.csv").exists()


def test_missing_or_folder_applications(tmp_path, capsys):
    assert run_cli(capsys, "decide", tmp_path / "nope.csv")[0] == 2
    (tmp_path / "dir.csv").mkdir()
    code, text = run_cli(capsys, "decide", tmp_path / "dir.csv")
    assert code == 2 and "is a folder" in text


def test_a_bad_applications_file_is_told_before_the_engine_loads(tmp_path):
    """The check needs neither the decision engine nor scipy (start-up: benchmarks/bench_startup.py)."""
    (tmp_path / "apps.csv").write_bytes(b"segment,score,amount\nCD,x,100\n")
    probe = textwrap.dedent("""
        import sys
        from pyxl_del.cli import main
        code = main(["decide", "apps.csv"])
        heavy = [m for m in ("pyxl_del.decision.decide", "pyxl_del.decision.twin", "scipy") if m in sys.modules]
        print(code, heavy)
        """)
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    assert out.stdout.strip() == "2 []", out.stdout + out.stderr
    assert "'score' holds 'x' (not a number) in row 2" in out.stderr


BLANK_LINES = {
    "between": (b"segment,score,amount\nCD,600,100\n\nCD,610,100\n", r"row 3 is blank, between applications"),
    "spaces": (b"segment,score,amount\r\nCD,600,100\r\n  \r\n\r\nCD,610,100\r\n",
               r"rows 3, 4 are blank, between applications"),
    "first": (b"\nsegment,score,amount\nCD,600,100\n", r"line 1 is blank: the header row .* must be the first"),
}


@pytest.mark.parametrize("name", BLANK_LINES)
def test_a_blank_line_between_applications_is_named_by_its_row(tmp_path, name):
    """pandas skipped blank lines: the rows after one were numbered one too few ("row 4" for spreadsheet row 5), and
    a file that was otherwise clean was decided with decision k no longer the application on row k + 1."""
    data, expected = BLANK_LINES[name]
    path = tmp_path / "apps.csv"
    path.write_bytes(data)
    with pytest.raises(InputError, match=expected) as err:
        application_columns(read_applications(path), Config(), str(path))
    assert str(err.value).startswith(str(path))


def test_rows_after_a_blank_line_keep_their_spreadsheet_numbers(tmp_path, capsys):
    """The reviewer's file: the bad score is on spreadsheet row 5, never called row 4."""
    path = tmp_path / "apps.csv"
    path.write_text("application_id,segment,score,amount,apr\nA1,CASH LOAN,640,20000,\n\nA3,CD,600,5000,\n"
                    "A5,CD,abc,5000,\n")
    code, text = run_cli(capsys, "decide", path, "--out", tmp_path / "d.csv")
    assert code == 2 and f"{path}: row 3 is blank" in text and "row 4" not in text
    path.write_text("segment,score,amount\nCD,600,100\n,,\nCD,abc,100\n")  # an empty row as Excel saves it
    with pytest.raises(InputError, match="row 3 is blank"):
        application_columns(read_applications(path), Config(), str(path))


def test_blank_lines_after_the_last_application_are_no_applications(tmp_path):
    """Nothing follows them to shift: a text editor's last empty line, or rows cleared in Excel (,,), are ignored."""
    path = tmp_path / "apps.csv"
    path.write_bytes(b"\xef\xbb\xbfsegment,score,amount\nCD,600,100\nCD,abc,100\n\n  \n,,\n")
    with pytest.raises(InputError, match=r"'score' holds 'abc' \(not a number\) in row 3$"):
        application_columns(read_applications(path), Config(), str(path))
    path.write_bytes(b"segment,score,amount\nCD,600,100\nCD,610,100\n\n\n")
    assert application_columns(read_applications(path), Config(), str(path)).score.tolist() == [600, 610]


def test_a_segment_called_na_is_a_segment(tmp_path):
    """pandas read "NA", "N/A" and "None" as missing: those applications had no segment. Only an empty cell is."""
    path = tmp_path / "apps.csv"
    path.write_text("segment,score,amount\nNA,600,100\nN/A,610,200\nNone,620,300\n")
    columns = application_columns(read_applications(path), Config(), str(path))
    assert columns.segment.tolist() == ["NA", "N/A", "None"]


def test_a_policy_for_a_segment_called_na(tmp_path):
    """pandas read the segment "NA" of policy.csv as missing: the policy then did not match the data's segments.
    A blank cut-off still means "accept all"."""
    path = tmp_path / "policy.csv"
    path.write_text("segment,cutoff,apr,budget_share\nNA,600,0.3,0.5\nNone,,0.25,0.3\n")
    policy = read_policy_file(path, budget=1000.0)
    assert list(policy.segments) == ["NA", "None"] and policy.segments["None"].cutoff is None


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.one_of(st.binary(max_size=300),
                      st.lists(st.lists(st.sampled_from(["segment", "score", "amount", "apr", "CD", "600", "-1",
                                                         "1e308", "nan", "", '"', "=1+1", "\u00e9", "x,y"]),
                                        max_size=5), max_size=6)
                      .map(lambda rows: "\n".join(",".join(r) for r in rows).encode())),
       suffix=st.sampled_from([".csv", ".parquet", ".gz"]))
def test_fuzzed_applications_files(tmp_path_factory, data, suffix):
    path = tmp_path_factory.mktemp("apps") / f"apps{suffix}"
    path.write_bytes(data)
    try:
        columns = application_columns(read_applications(path), Config(), str(path))
    except InputError as exc:
        assert "internal error" not in describe_error(exc)
    else:
        assert len(columns.score) and (columns.amount > 0).all()


# ------------------------------------------------------------------------------------------------- policy


@pytest.mark.parametrize(("data", "expected"), [
    (b"", "is empty"),
    (bytes(range(256)), "not UTF-8 text"),
    (b"segment,cutoff,apr,budget_share\nCD,,0.25,0.3,9\n", "more values than the header"),
    (b"segment;cutoff;apr;budget_share\nCD;;0.25;0.3\n", "missing columns"),
    (b"segment,cutoff,apr,budget_share\nCD,,=1+1,0.3\n", r"row 2 \(CD\): apr"),
    (b"segment,cutoff,apr,budget_share\nCD,inf,0.25,0.3\n", r"row 2 \(CD\): cutoff"),
    ("segment,cutoff,apr\nCD,,0.25\n".encode("utf-16"), "UTF-16 text"),
], ids=["empty", "binary", "ragged", "semicolon", "formula", "inf-cutoff", "utf16"])
def test_bad_policy_file_exit_2_before_the_twin(tmp_path, capsys, data, expected):
    policy = tmp_path / "policy.csv"
    policy.write_bytes(data)
    config = tmp_path / "config.toml"
    code, text = run_cli(capsys, "apply", policy, "--config", config, "--data", tmp_path / "no-such-panel.parquet")
    assert code == 2 and re.search(expected, text), text
    assert not config.exists() and not (tmp_path / "decisions.jsonl").exists()


def test_a_policy_workbook_that_is_not_a_workbook(tmp_path, capsys):
    policy = tmp_path / "decisions.xlsx"
    policy.write_bytes(POLICY_CSV.encode())  # a CSV renamed
    code, text = run_cli(capsys, "apply", policy, "--config", tmp_path / "config.toml")
    assert code == 2 and "not a readable Excel workbook" in text


@pytest.mark.parametrize(("args", "expected"), [
    (("--budget", "inf"), "finite number"), (("--budget", "nan"), "budget"), (("--budget", "-5"), "budget"),
    (("--effective-from", "2025-13"), "YYYY-MM"), (("--effective-from", "garbage"), "YYYY-MM"),
])
def test_bad_apply_arguments_exit_2(tmp_path, capsys, panel_file, args, expected):
    (tmp_path / "policy.csv").write_text(POLICY_CSV)
    code, text = run_cli(capsys, "apply", tmp_path / "policy.csv", "--config", tmp_path / "config.toml", "--data",
                         panel_file, *args)
    assert code == 2 and expected in text, text
    assert not (tmp_path / "decisions.jsonl").exists()


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.one_of(st.binary(max_size=200),
                      st.lists(st.lists(st.sampled_from(["segment", "cutoff", "apr", "budget_share", "CD", "0.3",
                                                         "", "nan", "-inf", "1e400", "=A1", "x"]), max_size=5),
                               max_size=5).map(lambda rows: "\n".join(",".join(r) for r in rows).encode())))
def test_fuzzed_policy_files(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("policy") / "policy.csv"
    path.write_bytes(data)
    try:
        policy = read_policy_file(path, budget=1000.0)
    except InputError as exc:
        assert "internal error" not in describe_error(exc)
    else:
        assert policy.version == policy.version  # canonical JSON: every number finite


# ---------------------------------------------------------------------------------------------------- log


def applied(tmp_path: Path, n: int = 3, **kwargs) -> tuple[Path, Path]:
    config, log = tmp_path / "config.toml", tmp_path / "decisions.jsonl"
    for i in range(n):
        apply_policy(POLICY, config_path=config, note=f"round {i}", **kwargs)
    return config, log


def rechained(lines: list[str]) -> list[str]:
    """What a forger who knows the format writes: every hash and link recomputed."""
    out, prev = [], "0" * 64
    for seq, line in enumerate(lines, start=1):
        body = {k: v for k, v in json.loads(line).items() if k != "sha256"} | {"prev_sha256": prev, "seq": seq}
        body["sha256"] = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"),
                                                   ensure_ascii=False).encode()).hexdigest()
        out.append(json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
        prev = hashlib.sha256(out[-1].encode()).hexdigest()
    return out


def test_an_intact_log_verifies_and_says_what_it_cannot_see(tmp_path, capsys):
    config, log = applied(tmp_path)
    check = verify_log(log)
    assert check.ok and check.entries == 3 and "matches the head" in check.message
    code, text = run_cli(capsys, "audit", "verify", "--log", log)
    assert code == 0 and "not detectable" in text and AUDIT_KEY_ENV in text
    assert load_config(config).policy.log_head.entries == 3


@pytest.mark.parametrize("tamper", ["edit newest", "drop last", "drop last two", "append forged", "rewrite all",
                                    "empty", "missing", "crlf"])
def test_tampering_at_the_tail_is_seen(tmp_path, capsys, tamper):
    """Each passed `verify` before the head was anchored in config.toml (a chain alone has no tail)."""
    config, log = applied(tmp_path)
    lines = log.read_text(encoding="utf-8").splitlines()
    if tamper == "edit newest":
        edited = json.loads(lines[-1]) | {"user": "mallory"}
        lines = rechained([*lines[:-1], json.dumps(edited)])
    elif tamper == "drop last":
        lines = lines[:-1]
    elif tamper == "drop last two":
        lines = lines[:-2]
    elif tamper == "append forged":
        lines = rechained([*lines, lines[-1]])
    elif tamper == "empty":
        lines = []
    elif tamper == "rewrite all":
        lines = rechained([json.dumps(json.loads(line) | {"note": "nothing to see"}) for line in lines])
    if tamper == "missing":
        log.unlink()
    elif tamper == "crlf":
        log.write_bytes(log.read_bytes().replace(b"\n", b"\r\n"))
    else:
        log.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    check = verify_log(log)
    assert not check.ok and check.message
    code, text = run_cli(capsys, "audit", "verify", "--log", log)
    assert code == 1 and "ALTERED" in text and "not detectable" in text
    if tamper == "crlf":
        assert "CR" in check.message


@pytest.mark.parametrize(("line", "expected"), [
    (b"[1, 2]", "not a JSON object"), (b'"text"', "not a JSON object"), (b"42", "not a JSON object"),
    (b"\xff\xfe{}", "not UTF-8 text"), (b'{"a": NaN, "sha256": "x"}', "altered"),
    (b"[" * 100_000 + b"]" * 100_000, "not a log entry|not valid JSON"), (b"", "not valid JSON"),
], ids=["list", "string", "number", "bytes", "nan", "nested", "blank"])
def test_a_line_that_is_no_entry_is_named(tmp_path, capsys, line, expected):
    config, log = applied(tmp_path, 2)
    raw = log.read_bytes().split(b"\n")
    raw[1] = line
    log.write_bytes(b"\n".join(raw))
    check = verify_log(log)
    assert not check.ok and check.first_altered == 2 and re.search(expected, check.message)
    assert run_cli(capsys, "audit", "verify", "--log", log)[0] == 1


def test_unanchored_logs_fail_and_say_why(tmp_path):
    config, log = applied(tmp_path, 2)
    config.write_text("[forecast]\nmax_mob = 36\n")  # an older config, or one replaced
    check = verify_log(log)
    assert not check.ok and "anchors no head" in check.message
    other = tmp_path / "other"
    other.mkdir()
    config2, log2 = applied(other, 1)
    assert "anchors the log" in verify_log(log, config2).message


def test_line_separators_inside_a_note_do_not_split_entries(tmp_path):
    config, log = tmp_path / "config.toml", tmp_path / "decisions.jsonl"
    for note in ("a\u2028b", "c\x85d\u2029e", "f\x1cg\rh"):
        apply_policy(POLICY, config_path=config, note=note)
    assert verify_log(log).ok


def test_the_head_carries_an_hmac_with_a_key(tmp_path, monkeypatch):
    monkeypatch.setenv(AUDIT_KEY_ENV, "s3cret")
    config, log = applied(tmp_path)
    assert "HMAC verified" in verify_log(log).message
    # A forger who can write both files truncates the log and rewrites the head to match: the HMAC gives it away.
    lines = log.read_text(encoding="utf-8").splitlines()[:2]
    log.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    head = load_config(config).policy.log_head
    forged = head.model_copy(update={"entries": 2, "sha256": hashlib.sha256(lines[-1].encode()).hexdigest()})
    config.write_text(replace_policy_section(config.read_text(), POLICY, forged))
    assert not verify_log(log).ok and "HMAC" in verify_log(log).message
    monkeypatch.setenv(AUDIT_KEY_ENV, "another key")
    assert not verify_log(log).ok
    monkeypatch.delenv(AUDIT_KEY_ENV)
    check = verify_log(log)
    assert check.ok and "not checked" in check.message and "not detectable" in check.limits


def test_a_key_set_but_no_hmac_fails(tmp_path, monkeypatch):
    config, log = applied(tmp_path, 1)
    monkeypatch.setenv(AUDIT_KEY_ENV, "s3cret")
    assert not verify_log(log).ok and "no HMAC" in verify_log(log).message


@pytest.mark.parametrize(("tamper", "expected"), [
    ("drop last", "the log ends at entry 2, but"), ("edit an entry", "entry 2 (.*) was altered"),
    ("edit newest, rechained", "entry 3 is not the one `apply` wrote"), ("missing", "no decision log at"),
    ("unanchored", "anchors no head"),
])
def test_apply_refuses_to_append_to_an_altered_log(tmp_path, capsys, panel_file, tamper, expected):
    """apply appended to the altered log and re-anchored the head on it: `audit verify` then said "ok: 3 entries,
    chain intact" after the last entry was deleted. The same check now runs before anything is written."""
    config, log = applied(tmp_path)
    lines = log.read_text(encoding="utf-8").splitlines()
    if tamper == "drop last":
        log.write_text("".join(line + "\n" for line in lines[:-1]), encoding="utf-8")
    elif tamper == "edit an entry":
        lines[1] = json.dumps(json.loads(lines[1]) | {"note": "changed"})
        log.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    elif tamper == "edit newest, rechained":
        edited = rechained([*lines[:-1], json.dumps(json.loads(lines[-1]) | {"user": "mallory"})])
        log.write_text("".join(line + "\n" for line in edited), encoding="utf-8")
    elif tamper == "missing":
        log.unlink()
    else:
        config.write_text("[forecast]\nmax_mob = 36\n")
    files = {path: path.read_bytes() if path.exists() else None for path in (config, log)}
    with pytest.raises(InputError, match=expected) as err:
        apply_policy(POLICY, config_path=config, note="after tampering")
    assert str(log) in str(err.value) and "nothing was read from it or written to it" in str(err.value)
    assert {path: path.read_bytes() if path.exists() else None for path in files} == files
    assert not verify_log(log).ok  # still seen
    (tmp_path / "policy.csv").write_text(POLICY_CSV)
    code, text = run_cli(capsys, "apply", tmp_path / "policy.csv", "--config", config, "--data", panel_file)
    assert code == 2 and str(log) in text and re.search(expected, text), text
    assert {path: path.read_bytes() if path.exists() else None for path in files} == files


def test_apply_begins_a_log_only_where_there_is_none(tmp_path):
    (tmp_path / "decisions.jsonl").write_bytes(b"")  # an empty file, no head anchored: a log not begun
    _, log = applied(tmp_path, 2)
    assert verify_log(log).ok and verify_log(log).entries == 2


def test_apply_after_a_log_lost_its_last_newline(tmp_path):
    """Such a log verifies (each line's text is intact), and the next entry was written onto its last line."""
    config, log = applied(tmp_path, 2)
    log.write_bytes(log.read_bytes().rstrip(b"\n"))
    assert verify_log(log).ok
    apply_policy(POLICY, config_path=config)
    check = verify_log(log)
    assert check.ok and check.entries == 3, check.message


@pytest.mark.parametrize("tamper", ["drop last", "edit an entry"])
def test_track_refuses_an_altered_log(tmp_path, capsys, panel_file, tamper):
    """A truncated log gave track an older decision; an edited entry's cut-off was used as edited."""
    from pyxl_del.decision.audit import track

    _, log = applied(tmp_path, 2)
    lines = log.read_text(encoding="utf-8").splitlines()
    if tamper == "drop last":
        lines = lines[:-1]
    else:
        edited = json.loads(lines[1])
        edited["after"]["segments"]["CASH LOAN"]["cutoff"] = 400.0
        lines[1] = json.dumps(edited)
    log.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    expected = "the log ends at entry 1" if tamper == "drop last" else "entry 2 (.*) was altered"
    with pytest.raises(InputError, match=expected):
        track(panel_file, Config(), log)
    code, text = run_cli(capsys, "track", panel_file, "--log", log, "--out", tmp_path / "t")
    assert code == 2 and str(log) in text and re.search(expected, text), text
    assert not (tmp_path / "t").exists()


def _apply_in_turn(folder: str, barrier, rounds: int) -> None:
    for i in range(rounds):
        barrier.wait()
        apply_policy(POLICY, config_path=Path(folder) / "config.toml", note=f"{os.getpid()} {i}")


def test_concurrent_applies_queue(tmp_path):
    """Two applies at the same instant forked the chain (verify then said ALTERED in 9-13 of 20 rounds)."""
    rounds, workers = 8, 3
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(workers)
    processes = [context.Process(target=_apply_in_turn, args=(str(tmp_path), barrier, rounds))
                 for _ in range(workers)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(120)
    assert [p.exitcode for p in processes] == [0] * workers
    check = verify_log(tmp_path / "decisions.jsonl")
    assert check.ok and check.entries == rounds * workers, check.message


def test_the_version_covers_every_setting_that_changes_a_decision():
    base = Config()
    version = POLICY.version_under(base)
    changed = [base.with_overrides(risk={"lgd": 0.5}), base.with_overrides(economics={"funding_rate": 0.08}),
               base.with_overrides(policy={"apr_max": 0.7}),
               base.with_overrides(buckets={"del30": ["DPD60+", "DPD90+", "WRITEOFF"]}),
               base.with_overrides(forecast={"max_mob": 24})]
    assert all(POLICY.version_under(c) != version for c in changed)
    same = [base.with_overrides(decide={"port": 9999}), base.with_overrides(policy={"max_hhi": 0.5})]
    assert all(POLICY.version_under(c) == version for c in same)
    assert POLICY.version_under(base) == version and len(version) == 16


def test_apply_logs_the_version_decisions_carry(tmp_path):
    from _decision import tiny_scored_twin

    from pyxl_del.decision.decide import Application, decide
    from pyxl_del.decision.optimise import current_policy

    twin = tiny_scored_twin()
    policy = current_policy(twin)
    (tmp_path / "config.toml").write_text(twin.config.to_toml(), encoding="utf-8")  # the config the twin runs on
    entry = apply_policy(policy, config_path=tmp_path / "config.toml", twin=twin)
    decision = decide(Application(segment="CD", score=600, amount=1000), policy, twin)
    assert entry["policy_version"] == decision.policy_version


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.binary(max_size=400), keep=st.integers(0, 3))
def test_fuzzed_logs_never_raise(tmp_path_factory, data, keep):
    folder = tmp_path_factory.mktemp("log")
    config, log = applied(folder, 1) if keep else (folder / "config.toml", folder / "decisions.jsonl")
    with open(log, "ab") as fh:
        fh.write(data)
    check = verify_log(log)
    assert check.ok is False or data in (b"",)


def test_a_bom_or_utf16_config_is_read_or_refused_by_apply(tmp_path, capsys):
    config = tmp_path / "config.toml"
    config.write_bytes(codecs.BOM_UTF8 + b"[forecast]\nmax_mob = 36\n")
    apply_policy(POLICY, config_path=config)
    assert load_config(config).forecast.max_mob == 36 and verify_log(tmp_path / "decisions.jsonl").ok
    config.write_bytes("[forecast]\nmax_mob = 36\n".encode("utf-16"))
    with pytest.raises(InputError, match="UTF-16"):
        apply_policy(POLICY, config_path=config)
