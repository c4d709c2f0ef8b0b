"""Apply, the decision log, audit verify, track; the decision sheets and the CLI."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from _decision import scored_panel, scored_twin
from openpyxl import load_workbook

from pyxl_del import Config, load_config
from pyxl_del.cli import main
from pyxl_del.decision.audit import (
    apply_policy,
    replace_policy_section,
    track,
    verify_log,
)
from pyxl_del.decision.optimise import optimise
from pyxl_del.decision.policy import Policy, PolicyError
from pyxl_del.excel.render import write_workbook
from pyxl_del.sheets.decision import decision_layouts, tracking_sheet

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rec():
    return optimise(scored_twin())


def test_apply_edits_only_the_policy_section(tmp_path, rec):
    config = tmp_path / "config.toml"
    shutil.copy(ROOT / "config.toml", config)
    before = config.read_text().splitlines()
    apply_policy(rec.recommended, config_path=config, before=rec.current, twin=scored_twin(),
                 effective_from="2025-01")
    after = config.read_text().splitlines()
    heads = [line for line in after if line.startswith("log_head = ")]
    assert len(heads) == 1 and after.index(heads[0]) < after.index("[risk]")  # the log's head, in [policy]
    after.remove(heads[0])
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert len(after) == len(before) and {b.split("=")[0].strip() for _, b in changed} == {"budget", "segments"}
    assert all("# monthly new lending" in b for _, b in changed if b.startswith("budget"))  # comment kept
    loaded = load_config(config)
    assert dict(loaded.policy.segments) == dict(rec.recommended.segments)
    assert loaded.model_dump(exclude={"policy"}) == load_config(ROOT / "config.toml").model_dump(exclude={"policy"})
    assert (tmp_path / "decisions.jsonl").is_file()


def test_replace_policy_section_adds_a_missing_section():
    pol = Policy(segments={"A": {"apr": 0.2, "budget_share": 1.0}}, budget=10.0)
    text = replace_policy_section('[columns]\nmob = "M"\n', pol)
    assert text.startswith('[columns]\nmob = "M"\n') and "[policy]" in text
    import tomllib

    assert tomllib.loads(text)["policy"]["segments"] == {"A": {"apr": 0.2, "budget_share": 1.0}}


def test_log_chain_and_verify_names_the_first_altered_entry(tmp_path, rec):
    config, log = tmp_path / "config.toml", tmp_path / "log.jsonl"
    for _ in range(3):
        apply_policy(rec.recommended, config_path=config, log_path=log, before=rec.current)
    lines = log.read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    assert entries[0]["prev_sha256"] == "0" * 64
    assert all(e["user"] and e["time"] and e["after"] and "before" in e for e in entries)
    assert verify_log(log).ok and verify_log(log).entries == 3

    tampered = entries[1] | {"user": "mallory"}
    log.write_text("\n".join([lines[0], json.dumps(tampered), lines[2]]) + "\n")
    check = verify_log(log)
    assert not check.ok and check.first_altered == 2 and "entry 2" in check.message

    # a forger who also recomputes the entry's own hash is caught by the next entry's link
    body = {k: v for k, v in tampered.items() if k != "sha256"}
    import hashlib

    body["sha256"] = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"),
                                               ensure_ascii=False).encode()).hexdigest()
    log.write_text("\n".join([lines[0], json.dumps(body, sort_keys=True, separators=(",", ":")), lines[2]]) + "\n")
    check = verify_log(log)
    assert not check.ok and check.first_altered == 2

    log.write_text("\n".join([lines[0], lines[2]]) + "\n")  # an entry removed
    assert verify_log(log).first_altered == 1


def test_track_compares_booked_with_expected(tmp_path, rec):
    config, log = tmp_path / "config.toml", tmp_path / "log.jsonl"
    apply_policy(rec.recommended, config_path=config, log_path=log, before=rec.current, twin=scored_twin(),
                 effective_from="2025-01")
    table = track(scored_panel(), Config(), log)
    assert set(table["metric"]) == {"volume", "apr", "below_cutoff", "del30"}
    del30 = table[(table["metric"] == "del30") & (table["mob"] == 6)]
    assert (del30["n_cohorts"] == 6).all() and del30["expected"].notna().all() and del30["actual"].notna().all()
    assert table.attrs["tracked_cohorts"][0] == "2025-01"
    layout = tracking_sheet(table)
    assert layout.name == "Tracking"


def test_policy_from_table_errors_name_rows():
    table = pd.DataFrame({"segment": ["A", "B"], "cutoff": [600, None], "apr": [0.2, -1.0],
                          "budget_share": [0.5, 0.7]})
    with pytest.raises(PolicyError, match=r"row 3 \(B\): apr"):
        Policy.from_table(table, budget=1.0)
    table["apr"] = [0.2, 0.3]
    with pytest.raises(PolicyError, match="add up to 1.2"):
        Policy.from_table(table, budget=1.0)


def test_decision_workbook_and_sheets(tmp_path, rec):
    again = optimise(scored_twin())
    layouts = decision_layouts(again)
    assert [layout.name for layout in layouts] == ["Decision summary", "Recommendations", "Frontier", "Policy"]
    assert again.recommended.version == rec.recommended.version
    path = write_workbook(decision_layouts(rec), tmp_path / "d.xlsx")
    wb = load_workbook(path)
    assert wb.sheetnames == ["Decision summary", "Recommendations", "Frontier", "Policy"]
    assert len(wb["Frontier"]._charts) == 6  # per segment: approval and DEL30 (right axis), value
    assert "ROE" in wb["Recommendations"]["A2"].value


def test_cli_optimise_apply_verify_track(tmp_path, capsys):
    data = tmp_path / "panel.parquet"
    scored_panel().to_parquet(data)
    assert main(["optimise", str(data), "--out", str(tmp_path / "d.xlsx")]) == 0
    out = capsys.readouterr().out
    assert "portfolio ROE" in out and "unit cost" in out
    assert main(["optimise", str(data), "--out", str(tmp_path / "csv")]) == 0
    assert {p.name for p in (tmp_path / "csv").iterdir()} == {"recommendations.csv", "frontier.csv", "policy.csv",
                                                              "bands.csv", "notes.csv"}
    config = tmp_path / "config.toml"
    shutil.copy(ROOT / "config.toml", config)
    log = tmp_path / "decisions.jsonl"
    assert main(["apply", str(tmp_path / "d.xlsx"), "--data", str(data), "--config", str(config),
                 "--effective-from", "2025-01"]) == 0
    assert main(["audit", "verify", "--log", str(log)]) == 0
    assert main(["track", str(data), "--config", str(config), "--log", str(log), "--out", str(tmp_path / "t")]) == 0
    assert (tmp_path / "t" / "tracking.csv").is_file()
    lines = log.read_text().splitlines()
    log.write_text(lines[0].replace('"action":"apply"', '"action":"apply!"') + "\n")
    assert main(["audit", "verify", "--log", str(log)]) == 1
    assert "entry 1" in capsys.readouterr().out


def test_cli_infeasible_constraints_exit_2(tmp_path, capsys):
    data = tmp_path / "panel.parquet"
    scored_panel().to_parquet(data)
    config = tmp_path / "config.toml"
    config.write_text("[policy]\nmin_approval = 0.99\nmax_del30_mob12 = 0.01\n")
    assert main(["optimise", str(data), "--config", str(config), "--out", str(tmp_path / "csv")]) == 2
    assert "conflict" in capsys.readouterr().err


def test_policy_apr_bounds_excluding_every_price_exit_2(tmp_path, capsys):
    config = tmp_path / "config.toml"
    config.write_text("[policy]\napr_min = 0.9\napr_max = 0.3\n")
    assert main(["optimise", "--config", str(config), "--out", str(tmp_path / "csv")]) == 2
    assert "exclude every price" in capsys.readouterr().err
