import tomllib
from pathlib import Path

import pytest

from pyxl_del import Config, ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]


def test_repo_config_equals_defaults():
    assert load_config(ROOT / "config.toml") == Config()


def test_requirement_names_are_there():
    c = Config()
    assert c.buckets.BUCKETS_30P == ("DPD30+", "DPD60+", "DPD90+", "WRITEOFF")
    assert c.buckets.BUCKETS_60P == ("DPD60+", "DPD90+", "WRITEOFF")
    assert c.buckets.BUCKETS_90P == ("DPD90+", "WRITEOFF")
    assert c.calibration.K_CLIP == (0.5, 2.0) and c.calibration.CALIBRATION_MODE == "stepwise"
    assert c["ead"] == "PRINCIPLE_OUTSTANDING"


@pytest.mark.parametrize("text, names", [
    ('[transitions]\nweighting = "dollars"\n', "[transitions] weighting"),
    ('[transitions]\nmin_cnt = 3\n', "[transitions] min_cnt: unknown key"),
    ('[calibration]\nk_clip = [2.0, 0.5]\n', "[calibration]"),
    ('[calibration]\ncohort_clip = [0.0, 10.0]\n', "cohort_clip must satisfy 0 < min <= 1 <= max"),
    ('[buckets]\ndel30 = ["DPD30", "WRITEOFF"]\n', "not in order"),
    ('[colums]\nmob = "M"\n', "[colums]: unknown section; did you mean [columns]?"),
    ('[columns]\nmob = "X"\nstate = "X"\n', "same data column"),
    ('[forecast]\nmax_mob = 0\n', "[forecast] max_mob"),
])
def test_bad_values_name_the_key(tmp_path, text, names):
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert names in str(info.value) and str(path) in str(info.value)


def test_not_toml(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[columns\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_to_toml_round_trips():
    c = Config().with_overrides(columns={"segment": 'Sản "phẩm"'}, calibration={"mode": "none"})
    assert Config.model_validate(tomllib.loads(c.to_toml())) == c


def test_unknown_column_key():
    with pytest.raises(ConfigError, match="unknown column key"):
        Config()["amount"]
