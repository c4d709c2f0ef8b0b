"""Checks of the built Excel front end xlsm/pyxl_del.xlsm (xlsm/build.py).

Every check reads a built file back (zip parts, olevba, openpyxl, LibreOffice). Each check also has a
test that feeds it a broken file or broken sources and sees it fail.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import logging
import shutil
import subprocess
import sys
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from xlsm import build, xlwings_win  # noqa: E402
from xlsm.build import BuildError  # noqa: E402

#: The ribbon's actions (pyxl_del.excel.buttons.BUTTONS must offer each of them).
EXPECTED_TAGS = ["run_forecast", "refresh_report", "backtest", "stress_test", "risk_dashboard", "drill_down",
                 "abtest", "optimise", "apply_policy", "open_config", "diagnostics"]
#: The worksheet functions the workbook embeds: those of every module its xlwings.conf sheet lists.
EXPECTED_UDFS = ["DEL_ACTUAL", "DEL_CALIBRATION", "DEL_DECIDE", "DEL_FLAGS", "DEL_FORECAST", "DEL_LOANS", "DEL_MATRIX",
                 "DEL_SEGMENTS", "DEL_VERSION", "DEL_WARNINGS"]


# ---------------------------------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def built(tmp_path_factory) -> bytes:
    out = build.build_workbook(tmp_path_factory.mktemp("xlsm") / "pyxl_del.xlsm")
    return out.read_bytes()


@pytest.fixture(scope="module")
def parts(built) -> dict[str, bytes]:
    return build.read_parts(built)


@pytest.fixture(scope="module")
def vba(built) -> dict[str, str]:
    return build.read_vba_modules(built)


@pytest.fixture
def src_copy(tmp_path) -> Path:
    dst = tmp_path / "src"
    shutil.copytree(build.SRC_DIR, dst)
    return dst


def rezip(parts: dict[str, bytes], *, replace: dict[str, bytes] | None = None, order=None,
          date_time=(2025, 1, 1, 0, 0, 0)) -> bytes:
    """A copy of a package with parts replaced, in a given order and with given time stamps."""
    parts = {**parts, **(replace or {})}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in order or build.canonical_order(parts):
            zf.writestr(zipfile.ZipInfo(name, date_time=date_time), parts[name])
    return out.getvalue()


def importability_problems(calls: list[build.RunPythonCall]) -> list[str]:
    """Each called module must import and have the function (a callable)."""
    problems = []
    for call in calls:
        for module, function in call.calls:
            try:
                spec = importlib.util.find_spec(module)
            except ModuleNotFoundError:
                spec = None
            if spec is None:
                problems.append(f"{call.vba_module}: RunPython imports {module!r}, which is not importable")
                continue
            obj = getattr(importlib.import_module(module), function, None)
            if not callable(obj):
                problems.append(f"{call.vba_module}: {module}.{function} is not a function")
    return problems


def project_calls(modules: dict[str, str]) -> list[build.RunPythonCall]:
    return [c for name, src in modules.items() if name not in build.XLWINGS_RUNTIME_MODULES
            for c in build.runpython_calls(name, src)]


# ---------------------------------------------------------------------------------------------------
# The package: content types, ribbon part and relationship
# ---------------------------------------------------------------------------------------------------

def test_content_type_is_macro_enabled(parts):
    build.check_content_types(parts)
    assert build.MACRO_MAIN_CONTENT_TYPE.encode() in parts["[Content_Types].xml"]


def test_content_type_check_fails_for_xlsx_main_part(parts):
    xlsx = parts["[Content_Types].xml"].replace(
        build.MACRO_MAIN_CONTENT_TYPE.encode(),
        b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml")
    with pytest.raises(BuildError, match="content type"):
        build.check_content_types({**parts, "[Content_Types].xml": xlsx})


def test_customui_part_is_referenced_from_package_rels(parts):
    assert build.check_customui_relationship(parts) == "customUI/customUI.xml"
    assert build.UI_RELATIONSHIP_TYPE.encode() in parts["_rels/.rels"]
    assert parts["customUI/customUI.xml"] == (build.SRC_DIR / "customUI.xml").read_bytes()


@pytest.mark.parametrize("breakage", ["no relationship", "wrong type", "dangling target"])
def test_customui_relationship_check_fails(parts, breakage):
    rels = parts["_rels/.rels"]
    ui_type = build.UI_RELATIONSHIP_TYPE.encode()
    broken = dict(parts)
    if breakage == "no relationship":
        start = rels.index(b"<Relationship Type=\"" + ui_type)
        broken["_rels/.rels"] = rels[:start] + rels[rels.index(b"/>", start) + 2:]
    elif breakage == "wrong type":
        broken["_rels/.rels"] = rels.replace(ui_type, b"http://schemas.microsoft.com/office/2006/relationships/ui/userCustomization")
    else:
        del broken["customUI/customUI.xml"]
    with pytest.raises(BuildError, match="relationship"):
        build.check_customui_relationship(broken)


# ---------------------------------------------------------------------------------------------------
# Ribbon tags and callbacks
# ---------------------------------------------------------------------------------------------------

def test_ribbon_tags(parts):
    tags = build.ribbon_tags(parts["customUI/customUI.xml"])
    assert tags == EXPECTED_TAGS
    assert all(build.TAG_PATTERN.match(t) for t in tags)


def test_ribbon_tags_are_actions():
    """Each ribbon tag names an entry of pyxl_del.excel.buttons.BUTTONS, the table the one VBA callback dispatches to."""
    from pyxl_del.excel import buttons, ribbon

    ui = (build.SRC_DIR / "customUI.xml").read_bytes()
    assert build.unknown_actions(ui, buttons.BUTTONS) == []
    without_button = sorted(set(buttons.BUTTONS) - set(build.ribbon_tags(ui)))
    assert without_button == [], f"actions no ribbon button reaches (add a <button> to customUI.xml): {without_button}"
    assert callable(ribbon.run_action)


def test_action_check_fails_for_a_tag_without_action(src_copy, tmp_path):
    ui = src_copy / "customUI.xml"
    text = ui.read_text().replace('tag="diagnostics"', 'tag="launch_rocket"')
    from pyxl_del.excel import buttons

    assert build.unknown_actions(text, buttons.BUTTONS) == ["launch_rocket"]
    for target in ("not callable", "pyxl_del.excel.ribbon:no_such_function", "pyxl_del.no_such_module:f",
                   "pyxl_del.excel.ribbon:DATA_SHEET"):
        assert build.unknown_actions(text, {**buttons.BUTTONS, "launch_rocket": target}) == ["launch_rocket"]
    ui.write_text(text)
    with pytest.raises(BuildError, match="launch_rocket"):
        build.build_workbook(tmp_path / "x.xlsm", src_dir=src_copy)


def test_ribbon_tags_parser():
    xml = ('<customUI xmlns="http://schemas.microsoft.com/office/2006/01/customui"><ribbon><tabs><tab id="t">'
           '<group id="g"><button id="a" tag="one" onAction="M.S"/><button id="b" tag="two" onAction="M.S"/>'
           '<button id="c" tag="no_action"/></group></tab></tabs></ribbon></customUI>')
    assert build.ribbon_tags(xml) == ["one", "two"]
    with pytest.raises(BuildError, match="root must be"):
        build.ribbon_tags("<ribbon/>")


def test_ribbon_callbacks_resolve_to_public_subs(parts, vba):
    callbacks = build.ribbon_callbacks(parts["customUI/customUI.xml"])
    assert {c for _, _, c in callbacks} == {"PyxlDel.PyxlDelAction"}
    assert build.unresolved_callbacks(parts["customUI/customUI.xml"], vba) == []
    (proc,) = [p for p in build.vba_procedures("PyxlDel", vba["PyxlDel"]) if p.name == "PyxlDelAction"]
    assert (proc.kind, proc.scope, proc.params) == ("Sub", "Public", ("control As IRibbonControl",))


def test_callback_check_fails_for_missing_sub_in_built_file(parts, vba):
    bad_ui = parts["customUI/customUI.xml"].replace(b'onAction="PyxlDel.PyxlDelAction"',
                                                    b'onAction="PyxlDel.NoSuchSub"', 1)
    broken = rezip(parts, replace={"customUI/customUI.xml": bad_ui})
    with pytest.raises(BuildError, match="NoSuchSub"):
        build.verify_workbook(broken, epoch=build.source_epoch())


@pytest.mark.parametrize("vba_text, message", [
    ("Private Sub PyxlDelAction(control As IRibbonControl)\nEnd Sub", "Private Sub"),
    ("Public Function PyxlDelAction(control As IRibbonControl)\nEnd Function", "Public Function"),
    ("Public Sub PyxlDelAction()\nEnd Sub", "must take 1 parameter"),
    ("Public Sub PyxlDelAction(control As Range)\nEnd Sub", "As IRibbonControl"),
    ("Public Sub Other(control As IRibbonControl)\nEnd Sub", "no Sub PyxlDelAction"),
])
def test_callback_check_fails_for_wrong_sub(vba_text, message):
    ui = (build.SRC_DIR / "customUI.xml").read_bytes()
    problems = build.unresolved_callbacks(ui, {"PyxlDel": vba_text})
    assert problems and all(message in p for p in problems), problems


def test_callback_check_handles_get_enabled_and_continuations():
    ui = ('<customUI xmlns="http://schemas.microsoft.com/office/2006/01/customui"><ribbon><tabs><tab id="t">'
          '<group id="g"><button id="a" tag="x" onAction="Act" getEnabled="M.IsOn"/></group></tab></tabs>'
          '</ribbon></customUI>')
    good = {"M": 'Public Sub IsOn(control As IRibbonControl, _\r\n    ByRef returnedVal)\r\nEnd Sub\r\n'
                 "Sub Act(control As Office.IRibbonControl)\r\nEnd Sub"}
    assert build.unresolved_callbacks(ui, good) == []
    bad = {"M": "Public Sub IsOn(control As IRibbonControl)\r\nEnd Sub\r\nSub Act(control As IRibbonControl)\r\nEnd Sub"}
    assert build.unresolved_callbacks(ui, bad) == [
        "a.getEnabled='M.IsOn': M.IsOn(control As IRibbonControl) must take 2 parameter(s), the first As IRibbonControl"]


def test_build_refuses_customui_with_unknown_callback(src_copy, tmp_path):
    ui = src_copy / "customUI.xml"
    ui.write_text(ui.read_text().replace('onAction="PyxlDel.PyxlDelAction"', 'onAction="PyxlDel.Missing"', 1))
    with pytest.raises(BuildError, match="PyxlDel.Missing"):
        build.build_workbook(tmp_path / "x.xlsm", src_dir=src_copy)
    assert not (tmp_path / "x.xlsm").exists()


def test_build_refuses_unsafe_tag(src_copy, tmp_path):
    ui = src_copy / "customUI.xml"
    ui.write_text(ui.read_text().replace('tag="backtest"', 'tag="back\'test"'))
    with pytest.raises(BuildError, match="tags must match"):
        build.build_workbook(tmp_path / "x.xlsm", src_dir=src_copy)


# ---------------------------------------------------------------------------------------------------
# VBA: runtime, version pin, project modules
# ---------------------------------------------------------------------------------------------------

def test_xlwings_version_pinned(vba):
    import xlwings

    assert build.xlwings_version_in_vba(vba["xlwings"]) == xlwings.__version__ == "0.37.8"
    build.check_xlwings_runtime(vba["xlwings"], xlwings.__version__)


def test_version_check_fails_on_mismatch(vba, parts):
    with pytest.raises(BuildError, match="XLWINGS_VERSION"):
        build.check_xlwings_runtime(vba["xlwings"], "0.0.1")
    with pytest.raises(BuildError, match="XLWINGS_VERSION"):
        build.check_vba(vba, parts["customUI/customUI.xml"], version="0.0.1")
    stale_dll = vba["xlwings"].replace("xlwings64-0.37.8.dll", "xlwings64-0.37.7.dll")
    with pytest.raises(BuildError, match="DLL"):
        build.check_xlwings_runtime(stale_dll, "0.37.8")


def test_build_fails_when_installed_xlwings_differs(monkeypatch, tmp_path):
    import xlwings

    monkeypatch.setattr(xlwings, "__version__", "0.99.0")
    with pytest.raises(BuildError, match="installed xlwings is '0.99.0'"):
        build.build_workbook(tmp_path / "x.xlsm")


def test_runtime_modules_intact_and_sample_removed(vba):
    template = build.read_vba_modules(build.xlwings_template_path().read_bytes())
    assert "Module1" in template and "Module1" not in vba
    for name in build.XLWINGS_RUNTIME_MODULES:
        assert build._body(vba[name]) == build._body(template[name]), name
    assert {"ThisWorkbook", "Sheet1", "Sheet2", "xlwings", "Dictionary", "PyxlDel"} == set(vba)


def test_runtime_check_fails_when_runtime_changed_or_missing(vba, parts):
    ui = parts["customUI/customUI.xml"]
    changed = {**vba, "xlwings": vba["xlwings"].replace("Public Function RunPython", "Public Function RunPy")}
    with pytest.raises(BuildError, match="changed"):
        build.check_vba(changed, ui, version="0.37.8", runtime={"xlwings": vba["xlwings"]})
    without = {k: v for k, v in vba.items() if k != "Dictionary"}
    with pytest.raises(BuildError, match="missing"):
        build.check_vba(without, ui, version="0.37.8")
    with pytest.raises(BuildError, match="sample"):
        build.check_vba({**vba, "Module1": "Sub SampleCall()\nEnd Sub"}, ui, version="0.37.8")


def test_project_module_reads_back(vba):
    source = (build.SRC_DIR / "PyxlDel.bas").read_text()
    assert build._body(vba["PyxlDel"]) == build._body(source)
    with pytest.raises(BuildError, match="does not read back"):
        build.check_vba(vba, b"", version="0.37.8", expected={"PyxlDel": source + "\n' edited"})


# ---------------------------------------------------------------------------------------------------
# RunPython commands
# ---------------------------------------------------------------------------------------------------

def test_runpython_commands_parse_and_import(vba):
    calls = project_calls(vba)
    assert [c.calls for c in calls] == [(("pyxl_del.excel.ribbon", "run_action"),)]
    assert calls[0].command == f"import pyxl_del.excel.ribbon; pyxl_del.excel.ribbon.run_action('{build.VBA_EXPR}')"
    assert importability_problems(calls) == []


def test_importability_check_fails_for_unknown_module_or_function():
    calls = build.runpython_calls("M", 'Sub A()\n  RunPython "import os; os.no_such_function()"\n'
                                       '  RunPython ("import no_such_pkg_xyz; no_such_pkg_xyz.main()")\nEnd Sub')
    assert importability_problems(calls) == ["M: os.no_such_function is not a function",
                                             "M: RunPython imports 'no_such_pkg_xyz', which is not importable"]


@pytest.mark.parametrize("vba_line, expected", [
    ('RunPython "import a.b; a.b.f()"', (("a.b", "f"),)),
    ('RunPython ("import a; a.f(1, \'" & x & "\')")', (("a", "f"),)),
    ('Call RunPython("import a, b; a.f(); b.g()")  \' comment: RunPython "x"', (("a", "f"), ("b", "g"))),
    ('ret = RunPython("import a;a.f(""quoted"")")', (("a", "f"),)),
    ("RunPython \"import a; \" & _\n    \"a.f()\"", (("a", "f"),)),
])
def test_runpython_parser_accepts(vba_line, expected):
    (call,) = build.runpython_calls("M", f"Sub A()\n    {vba_line}\nEnd Sub\n")
    assert call.calls == expected


@pytest.mark.parametrize("vba_line, message", [
    ('RunPython "import a; b.f()"', "does not import"),
    ('RunPython "a.f()"', "does not import"),
    ('RunPython "import a"', "calls no function"),
    ('RunPython "import a; a.f("', "not valid Python"),
    ('RunPython "import a as b; b.f()"', "not supported"),
    ('RunPython "from a import f; f()"', "only 'import X'"),
    ('RunPython "import " & m & "; " & m & ".main()"', "literal"),
    ('RunPython "import a; x = a.f()"', "only 'import X'"),
])
def test_runpython_parser_rejects(vba_line, message):
    with pytest.raises(BuildError, match=message):
        build.runpython_calls("M", f"Sub A()\n    {vba_line}\nEnd Sub\n")


def test_runpython_parser_skips_declarations_and_comments():
    src = ("Public Function RunPython(PythonCommand As String)\n' RunPython \"nonsense\"\nEnd Function\n"
           "Sub B()\n    MsgBox \"RunPython is great\"\nEnd Sub\n")
    assert build.runpython_calls("M", src) == []


# ---------------------------------------------------------------------------------------------------
# Reproducibility
# ---------------------------------------------------------------------------------------------------

def test_two_builds_give_identical_bytes(built, tmp_path):
    a = build.build_workbook(tmp_path / "a.xlsm").read_bytes()
    b = build.build_workbook(tmp_path / "b.xlsm").read_bytes()
    assert a == b == built


def test_build_bytes_depend_on_the_epoch(built, monkeypatch):
    """The identity above is not vacuous: the time stamp reaches the bytes."""
    odd_second = datetime(2030, 6, 1, 0, 0, 1, tzinfo=timezone.utc)  # zip times round it to an even one
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(int(odd_second.timestamp())))
    other = build.build_bytes()
    assert other != built
    build.check_zip_canonical(other, epoch=build.source_epoch())


def test_zip_is_canonical(built):
    build.check_zip_canonical(built, epoch=build.source_epoch())
    with zipfile.ZipFile(io.BytesIO(built)) as zf:
        names = zf.namelist()
    assert names[:2] == ["[Content_Types].xml", "_rels/.rels"]
    assert b"2025-01-01T00:00:00Z" in build.read_parts(built)["docProps/core.xml"]


def test_zip_check_fails_for_wall_clock_stamps_or_other_order(parts):
    now = datetime.now().timetuple()[:6]
    with pytest.raises(BuildError, match="not stamped"):
        build.check_zip_canonical(rezip(parts, date_time=now), epoch=build.source_epoch())
    shuffled = sorted(parts, reverse=True)
    with pytest.raises(BuildError, match="canonical order"):
        build.check_zip_canonical(rezip(parts, order=shuffled), epoch=build.source_epoch())


# ---------------------------------------------------------------------------------------------------
# Sheets, layout, UDF module
# ---------------------------------------------------------------------------------------------------

def test_openpyxl_loads_built_file(built):
    import openpyxl

    wb = openpyxl.load_workbook(io.BytesIO(built), keep_vba=True)
    assert wb.sheetnames == ["Instructions", "Data", "xlwings.conf"]
    assert wb.vba_archive is not None
    conf = wb["xlwings.conf"]
    assert (conf["A1"].value, conf["B1"].value) == ("UDF Modules", "udfs.del_udfs;udfs.decide_udfs")
    assert conf["A2"].value is None  # xlwings reads A1 down to the first empty cell
    data = wb["Data"]
    assert [c.value for c in data[1]] == ["AGREEMENT_ID", "DISBURSAL_MONTH", "MOB", "PRODUCT_TYPE",
                                          "STATE_MODEL", "PRINCIPLE_OUTSTANDING"]
    assert data.max_row == 1
    assert [ws.sheet_properties.codeName for ws in wb] == ["Sheet1", "Sheet3", "Sheet2"]
    assert wb.code_name == "ThisWorkbook"


def test_data_header_matches_config_defaults():
    layout = {s["name"]: s for s in build.load_layout()}
    try:
        from pyxl_del.engine.config import LOGICAL_COLUMNS, Columns
    except Exception as exc:  # pyxl_del is edited in parallel; the header is checked when it imports
        pytest.skip(f"pyxl_del.engine.config not importable: {exc}")
    assert layout["Data"]["header"] == [getattr(Columns(), k) for k in LOGICAL_COLUMNS]


def test_layout_refuses_empty_setting(src_copy):
    layout = src_copy / "layout.toml"
    text = layout.read_text()
    assert 'settings = { "UDF Modules" = "udfs.del_udfs;udfs.decide_udfs" }' in text
    layout.write_text(text.replace('settings = { "UDF Modules" = "udfs.del_udfs;udfs.decide_udfs" }',
                                   'settings = { "UDF Modules" = "udfs.del_udfs", "Interpreter" = "" }'))
    with pytest.raises(BuildError, match="Interpreter"):
        build.load_layout(layout)


def test_data_frame_fills_data_sheet(tmp_path):
    pd = pytest.importorskip("pandas")
    import openpyxl

    df = pd.DataFrame({"AGREEMENT_ID": ["A1", "A2"], "MOB": [1, 2], "PRINCIPLE_OUTSTANDING": [100.5, float("nan")],
                       "DISBURSAL_MONTH": pd.to_datetime(["2024-01-01", "2024-02-01"])})
    out = build.build_workbook(tmp_path / "d.xlsm", data_frame=df)
    ws = openpyxl.load_workbook(out, keep_vba=True)["Data"]
    rows = [[c.value for c in row] for row in ws.iter_rows()]
    assert rows[0] == list(df.columns)
    assert rows[1] == ["A1", 1, 100.5, datetime(2024, 1, 1)]
    assert rows[2] == ["A2", 2, None, datetime(2024, 2, 1)]


@pytest.fixture(scope="module")
def udf_vba_text() -> str:
    """The xlwings_udfs module as the release build makes it (xlwings' generate_vba_wrapper, pywin32 stubbed), for
    the modules the xlwings.conf sheet lists."""
    return xlwings_win.udf_vba(build.udf_modules())


def test_udf_vba_is_embedded(udf_vba_text, tmp_path):
    out = build.build_workbook(tmp_path / "u.xlsm", udf_vba=udf_vba_text)
    modules = build.read_vba_modules(out.read_bytes())
    udf = modules[build.UDF_MODULE_NAME]
    assert '#Const App = "Microsoft Excel"' in udf  # import_udfs puts it first; the build adds it
    assert ('XLPy.CallUDF("udfs.del_udfs", "DEL_FORECAST", Array(data, segment, del_type, calibrate, config), '
            'ThisWorkbook, Application.Caller)') in udf
    assert ('XLPy.CallUDF("udfs.decide_udfs", "DEL_LOANS", Array(data, segment, cohort, mob, state, config), '
            'ThisWorkbook, Application.Caller)') in udf
    assert {"xlwings", "Dictionary", "PyxlDel"} <= set(modules)
    build.verify_workbook(out.read_bytes(), epoch=build.source_epoch())


def test_runtime_stand_in_is_undone():
    """windows_udfs() leaves xlwings as it found it: no-op decorators, no engine, no xlwings.udfs."""
    import xlwings

    before = (xlwings.func, xlwings.arg, xlwings.ret, len(xlwings.engines))
    with xlwings_win.windows_udfs() as runtime:
        assert xlwings.func is runtime.udfs.xlfunc and "pythoncom" in sys.modules
        assert hasattr(runtime.load().DEL_FORECAST, "__xlfunc__")
    assert (xlwings.func, xlwings.arg, xlwings.ret, len(xlwings.engines)) == before
    assert not {"pythoncom", "pywintypes", "win32com", "xlwings.udfs", "udfs.del_udfs"} & set(sys.modules)


def test_udf_modules_are_the_registered_ones(udf_vba_text):
    assert build.udf_modules() == "udfs.del_udfs;udfs.decide_udfs"
    assert sorted(build.vba_functions(build.normalize_udf_vba(udf_vba_text))) == EXPECTED_UDFS
    assert build.udf_module_problems(build.udf_modules(), udf_vba_text) == []


def test_udf_module_check_fails_for_unlisted_or_missing_modules(udf_vba_text, src_copy, tmp_path):
    assert build.udf_module_problems("udfs.del_udfs", udf_vba_text) == [
        "udfs.decide_udfs: the xlwings_udfs module calls it but UDF Modules does not list it"]
    only_del = xlwings_win.udf_vba("udfs.del_udfs")
    assert build.udf_module_problems(build.udf_modules(), only_del) == [
        "udfs.decide_udfs: listed in UDF Modules but the xlwings_udfs module has no function of it"]
    with pytest.raises(BuildError, match="udfs.decide_udfs: listed in UDF Modules"):
        build.build_workbook(tmp_path / "x.xlsm", src_dir=src_copy, udf_vba=only_del)
    layout = src_copy / "layout.toml"
    layout.write_text(layout.read_text().replace('"udfs.del_udfs;udfs.decide_udfs"', '"udfs.del_udfs"'))
    with pytest.raises(BuildError, match="does not list it"):
        build.build_workbook(tmp_path / "y.xlsm", src_dir=src_copy, udf_vba=udf_vba_text)


def test_udf_drift_covers_every_registered_module(committed, udf_vba_text):
    """The drift check sees a change in either module: here, DEL_LOANS (udfs.decide_udfs) losing an argument."""
    generated = build.normalize_udf_vba(udf_vba_text)
    changed = generated.replace("Function DEL_LOANS(data, segment, cohort, mob, Optional state, Optional config)",
                                "Function DEL_LOANS(data, segment, cohort, mob, Optional config)")
    assert changed != generated
    embedded = build.read_vba_modules(committed)[build.UDF_MODULE_NAME]
    drift = build.udf_vba_drift(embedded, changed)
    assert drift and drift[0].startswith("DEL_LOANS: changed"), drift


def test_udf_vba_with_other_module_name_is_refused():
    with pytest.raises(BuildError, match="VB_Name"):
        build.normalize_udf_vba('Attribute VB_Name = "Other"\nFunction f()\nEnd Function')
    text = build.normalize_udf_vba('Attribute VB_Name = "xlwings_udfs"\n#Const App = "Microsoft Excel"\n')
    assert text.count("#Const App") == 1 and text.startswith('Attribute VB_Name = "xlwings_udfs"\r\n')


# ---------------------------------------------------------------------------------------------------
# The committed artifact and LibreOffice
# ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def committed() -> bytes:
    return build.DEFAULT_OUT.read_bytes()


@pytest.fixture(scope="module")
def release(udf_vba_text) -> bytes:
    """A fresh build from the release inputs (as python -m xlsm.build makes it)."""
    inputs = build.release_inputs()
    assert inputs["udf_vba"] == udf_vba_text
    return build.build_bytes(**inputs)


def test_committed_workbook_passes_the_checks(committed):
    build.verify_workbook(committed, epoch=build.source_epoch())


def test_committed_workbook_equals_a_fresh_build(committed, release):
    assert committed == release, ("xlsm/pyxl_del.xlsm is not what the sources build: run python -m xlsm.build "
                                  "and commit the result")


def test_committed_workbook_embeds_the_current_udfs(committed, udf_vba_text):
    embedded = build.read_vba_modules(committed)[build.UDF_MODULE_NAME]
    drift = build.udf_vba_drift(embedded, build.normalize_udf_vba(udf_vba_text))
    assert drift == [], "the UDF signatures changed; rebuild (python -m xlsm.build):\n" + "\n".join(drift)
    assert sorted(build.vba_functions(embedded)) == EXPECTED_UDFS
    assert build.udf_module_problems(build.udf_modules(), embedded) == []


@pytest.mark.parametrize("change, expected", [
    (lambda v: v.replace(", Optional config)", ")", 1), "DEL_ACTUAL: changed"),
    (lambda v: v.replace("DEL_VERSION", "DEL_RELEASE"), "DEL_RELEASE: not in the workbook (new UDF)"),
    (lambda v: v.replace("Exit Function\r\n    #End If", "Application.Volatile\r\n    #End If", 1),
     "DEL_ACTUAL: body changed"),
])
def test_udf_drift_is_detected(committed, change, expected):
    embedded = build.read_vba_modules(committed)[build.UDF_MODULE_NAME]
    drift = build.udf_vba_drift(embedded, change(build.normalize_udf_vba(embedded)))
    assert drift and drift[0].startswith(expected), drift


def test_committed_workbook_data_and_size(committed):
    import openpyxl

    assert len(committed) < 3_000_000
    wb = openpyxl.load_workbook(io.BytesIO(committed), read_only=True, keep_vba=True)
    assert wb.sheetnames == ["Instructions", "Data", "xlwings.conf"]
    assert wb["Data"].max_row == len(build.sample_slice()) + 1 == 34_876


@pytest.mark.libreoffice
def test_libreoffice_converts_to_pdf(built, tmp_path):
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if soffice is None:
        pytest.skip("LibreOffice (soffice) not installed")
    src = tmp_path / "pyxl_del.xlsm"
    src.write_bytes(built)
    # A private profile: LibreOffice refuses to start twice on one profile (parallel runs).
    cmd = [soffice, "--headless", "--norestore", f"-env:UserInstallation={(tmp_path / 'lo').as_uri()}",
           "--convert-to", "pdf", "--outdir", str(tmp_path), str(src)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    pdf = tmp_path / "pyxl_del.pdf"
    assert pdf.exists(), f"soffice failed: {result.returncode} {result.stdout} {result.stderr}"
    assert pdf.read_bytes().startswith(b"%PDF")
    pdftotext = shutil.which("pdftotext")
    if pdftotext:
        text = subprocess.run([pdftotext, str(pdf), "-"], capture_output=True, text=True, timeout=60).stdout
        for expected in ("pyxl_del - delinquency", "AGREEMENT_ID", "UDF Modules", "udfs.del_udfs"):
            assert expected in text


def test_build_logs_instead_of_printing(tmp_path, caplog, capsys):
    with caplog.at_level(logging.INFO, logger="pyxl_del.xlsm.build"):
        build.build_workbook(tmp_path / "l.xlsm")
    assert capsys.readouterr().out == ""
    assert any("wrote" in r.getMessage() for r in caplog.records)
