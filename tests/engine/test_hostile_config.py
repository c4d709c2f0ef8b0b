"""Hostile and odd config files: every one is a Config or a ConfigError naming the file (and the key, the line or
what to do), never a traceback and never a silent misreading (`max_mob = true` taken as 1)."""

from __future__ import annotations

import codecs
import math
import tomllib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyxl_del.cli import main
from pyxl_del.engine.config import Config, ConfigError, load_config
from pyxl_del.engine.errors import InputError, describe_error

GOOD = "[forecast]\nmax_mob = 12  # months\n[risk]\nlgd = 0.5\n"


def write(tmp_path, data: bytes | str, name: str = "config.toml"):
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


@pytest.mark.parametrize(("data", "expected"), [
    (codecs.BOM_UTF16_LE + GOOD.encode("utf-16-le"), r"UTF-16 text \(what Notepad and Excel call 'Unicode'\)"),
    (GOOD.encode("utf-16-be"), "NUL bytes"),  # UTF-16 without a byte-order mark
    (GOOD.encode("utf-32"), "UTF-16 text"),
    (b"[forecast]\nmax_mob = 12\n# caf\xe9\n", r"not UTF-8 text \(line 3: byte 0xe9\)"),
    (b"a = " + b"[" * 5000 + b"]" * 5000, "nested too deeply"),
    (b"[forecast]\nmax_mob = 12\nfoo = bar\n", r"not valid TOML: Invalid value \(at line 3, column 7\)"),
    (b"\x00\x01\x02garbage", "NUL bytes"),
    (b"PK\x03\x04" + bytes(range(256)), "not UTF-8 text"),  # a workbook given as the config
], ids=["utf16-bom", "utf16-no-bom", "utf32", "latin1-byte", "nested", "bad-toml", "binary", "zip"])
def test_unreadable_config_is_a_sentence(tmp_path, data, expected, capsys):
    path = write(tmp_path, data)
    with pytest.raises(ConfigError, match=expected) as caught:
        load_config(path)
    assert str(path) in str(caught.value)
    assert main(["report", "--config", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(path) in err


def test_a_utf8_byte_order_mark_is_read(tmp_path):
    """Notepad's "UTF-8 with BOM": tomllib alone says only "Invalid statement (line 1, column 1)"."""
    with pytest.raises(tomllib.TOMLDecodeError):
        tomllib.loads((codecs.BOM_UTF8 + GOOD.encode()).decode("utf-8"))
    assert load_config(write(tmp_path, codecs.BOM_UTF8 + GOOD.encode())).forecast.max_mob == 12


def test_a_folder_or_a_missing_file(tmp_path):
    (tmp_path / "config.toml").mkdir()
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(tmp_path / "config.toml")
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")


@pytest.mark.parametrize(("text", "key", "hint"), [
    ("[forecast]\nmax_mob = true\n", "[forecast] max_mob", "true / false is not a number"),
    ('[forecast]\nmax_mob = "36"\n', "[forecast] max_mob", "without quotes"),
    ("[forecast]\nmax_mob = 36.0\n", "[forecast] max_mob", "whole number (36)"),
    ("[risk]\nn_paths = 1e6\n", "[risk] n_paths", "whole number (1000000)"),
    ('[risk]\nlgd = "0.5"\n', "[risk] lgd", "without quotes"),
    ("[risk]\nlgd = true\n", "[risk] lgd", "not a number"),
    ('[risk]\nconfidence = [0.95, "0.99"]\n', "[risk] confidence.1", "without quotes"),
    ('[calibration]\nk_clip = ["0.5", 2]\n', "[calibration] k_clip.0", "without quotes"),
    ("[scenarios]\npredefined = 1\n", "[scenarios] predefined", "valid boolean"),
    ('[scenarios]\npredefined = "yes"\n', "[scenarios] predefined", "without quotes"),
    ("[columns]\nsegment = 5\n", "[columns] segment", "valid string"),
    ("[decide]\nport = 1979-05-27\n", "[decide] port", "valid integer"),
    ("[risk]\nlgd = nan\n", "[risk] lgd", "nan"),
    ("[economics]\nscore_mean = inf\n", "[economics] score_mean", "finite number"),
    ("[policy]\nbudget = inf\n", "[policy] budget", "finite number"),
    ('[policy]\nsegments = { A = { apr = 0.2, budget_share = 0.5, cutoff = nan } }\n', "[policy] segments.A.cutoff",
     "finite number"),
])
def test_config_values_are_strict(tmp_path, text, key, hint):
    """Lax pydantic took true as 1 and "36" as 36: a typo that changed the forecast silently."""
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    assert key in str(caught.value) and hint in str(caught.value)


def test_whole_numbers_are_taken_where_fractions_are_meant(tmp_path):
    config = load_config(write(tmp_path, "[risk]\nlgd = 1\nz_persistence = 0\n[policy]\nmax_el = inf\n"))
    assert config.risk.lgd == 1.0 and isinstance(config.risk.lgd, float) and math.isinf(config.policy.max_el)
    assert Config().with_overrides(risk={"lgd": 1}).risk.lgd == 1.0  # code's overrides validate the same way


def test_an_empty_mapped_column_name_is_named_by_its_key(tmp_path):
    """"a column name is empty (got {'segment': ''})": the key was in the echo only, cut off in a long config."""
    with pytest.raises(ConfigError, match=r"the column name of segment is empty: the engine needs it \(only score, "
                                          r"apr, policy_arm may be \"\" to leave them out\)"):
        load_config(write(tmp_path, '[columns]\nsegment = ""\n'))
    assert load_config(write(tmp_path, '[columns]\nscore = ""\n')).columns.score is None


def test_a_huge_value_is_not_repeated_in_full(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, f'[forecast]\nmax_mob = "{"9" * 100_000}"\n'))
    assert len(str(caught.value)) < 400


# ------------------------------------------------------------------------------------------------ fuzz

KEYS = st.sampled_from(["max_mob", "lgd", "segments", "order", "k_clip", "mode", "port", "data", "x", "log_head",
                        "n_paths", "confidence", "rules", "budget", "cutoff"])
SECTIONS = st.sampled_from(["forecast", "risk", "policy", "buckets", "calibration", "decide", "alerts.rules",
                            "[alerts.rules]", "columns", "nope", ""])
VALUES = st.one_of(st.integers(), st.floats(), st.booleans(), st.text(max_size=12).map(lambda t: f'"{t}"'),
                   st.sampled_from(["[", "]", "{", "}", "nan", "-inf", "1979-05-27", "[1, 2]", "{ a = 1 }",
                                    '"\\u0000"', "'''", "0x1F", "1_000", "[[[[1]]]]", '{ A = { apr = 0.2 } }']))
LINES = st.one_of(st.tuples(KEYS, VALUES).map(lambda kv: f"{kv[0]} = {kv[1]}"),
                  SECTIONS.map(lambda s: f"[{s}]"), st.text(max_size=30))
TOML_ISH = st.lists(LINES, max_size=12).map("\n".join)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.one_of(TOML_ISH.map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=200),
                      TOML_ISH.map(lambda t: codecs.BOM_UTF8 + t.encode("utf-8", "surrogatepass")),
                      TOML_ISH.map(lambda t: t.encode("utf-16"))))
def test_fuzzed_config_files_load_or_say_why(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "config.toml"
    path.write_bytes(data)
    try:
        assert isinstance(load_config(path), Config)
    except InputError as exc:  # ConfigError is one
        text = describe_error(exc)
        assert str(path) in text
        assert "internal error" not in text and len(text) < 4000


@pytest.mark.parametrize(("buckets", "expected"), [
    ('del30 = ["DPD30+", "DPD60+", "DPD90+", "WRITEOFF", "CURRENT"]\n',
     r"del30's live buckets \['CURRENT', 'DPD30\+', 'DPD60\+', 'DPD90\+'\] must be the last"),
    ('order = ["DPD30+", "DPD60+", "DPD90+", "WRITEOFF", "PREPAY"]\n', r"first live bucket 'DPD30\+' is in del30"),
    ('order = ["CURRENT", "DPD1+", "DPD30+", "DPD90+", "DPD60+", "WRITEOFF", "PREPAY"]\n',
     r"del90's live buckets \['DPD90\+'\] must be the last of the live ones"),
    ('order = ["CURRENT", "DPD30+", "DPD1+", "DPD60+", "DPD90+", "WRITEOFF", "PREPAY"]\n',
     r"so del30's live buckets \['DPD30\+', 'DPD60\+', 'DPD90\+'\] must be the last"),
    ('del60 = ["DPD60+", "DPD90+", "WRITEOFF", "DPD1+"]\n', r"del60 lists \['DPD1\+'\], which del30 does not"),
])
def test_a_bucket_order_that_is_not_best_to_worst_is_refused(tmp_path, buckets, expected):
    """The order is read best to worst (the first bucket is where cures go, stress shifts move toward the end): a
    reordered list ran silently, moved CASH LOAN's DEL30 at MOB 36 from 17.3% to 11.3% and made the severe scenario's
    lifetime loss fall below the baseline's."""
    with pytest.raises(ConfigError, match=expected):
        load_config(write(tmp_path, "[buckets]\n" + buckets))
    # Orders that keep the live buckets best to worst stay valid: the absorbing ones anywhere, a bucket dropped.
    for fine in ('order = ["PREPAY", "WRITEOFF", "CURRENT", "DPD1+", "DPD30+", "DPD60+", "DPD90+"]\n',
                 'order = ["CURRENT", "DPD30+", "DPD60+", "DPD90+", "WRITEOFF", "PREPAY"]\n'):
        assert load_config(write(tmp_path, "[buckets]\n" + fine)).buckets.order[-1] in ("DPD90+", "PREPAY")


@pytest.mark.parametrize(("text", "expected"), [
    ('[transitions]\nmin_cout = 3\n', "[transitions] min_cout: unknown key; did you mean min_count?"),
    ('[transition]\nmin_count = 3\n', "[transition]: unknown section; did you mean [transitions]?"),
    ('[risk]\nlgd = "0,45"\n', "write numbers with a decimal point and without quotes (0.45)"),
    ('[transitions]\nmin_count = 1.000\n', "(thousands are written 1000 or 1_000, not 1.000)"),
    ('[transitions]\nprior_strength = "Auto"\n',
     "[transitions] prior_strength: Input should be 'auto' or a valid number (got 'Auto'); write it in lower case"),
])
def test_a_hand_edit_gets_the_fix_not_the_validators_words(tmp_path, text, expected):
    """A misspelt key was "unknown key" with no suggestion (a section "unknown key" too); "0,45" was told to drop
    the quotes, and then "0,45" without them is a TOML error; 1.000 (a thousand, written the Vietnamese way) was told
    to become 1; "Auto" got two lines located at prior_strength.literal['auto'] and .constrained-float."""
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    message = str(info.value)
    assert expected in message, message
    assert "literal[" not in message and "constrained-" not in message
