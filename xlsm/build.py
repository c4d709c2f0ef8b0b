"""Reproducible build of ``xlsm/pyxl_del.xlsm``, the Excel front end of pyxl_del.

Run ``python -m xlsm.build`` (or ``python xlsm/build.py``) from the repository root, or call
:func:`build_workbook`. Sources live as text in ``xlsm/src/`` (see xlsm/README.md):

- ``layout.toml``  the start-up sheets (Instructions, Data, xlwings.conf);
- ``*.bas``        the project's VBA modules (VBE export form, ``Attribute VB_Name`` first);
- ``customUI.xml`` the ribbon.

Steps (each a function below):

1. start from ``quickstart_standalone.xlsm`` as shipped in the installed xlwings wheel (read from the
   package at build time, not vendored): its Excel-authored ``vbaProject.bin`` holds the whole xlwings
   VBA runtime (module ``xlwings`` + class ``Dictionary``). Its ``XLWINGS_VERSION`` must equal
   ``xlwings.__version__`` or the build fails;
2. write the sheets with openpyxl (``keep_vba=True``);
3. with pyOpenVBA, drop the template's sample module ``Module1`` and add the ``.bas`` modules and,
   if given, the ``xlwings_udfs`` module text;
4. add ``customUI/customUI.xml`` and its package relationship last (openpyxl drops that relationship),
   fix the ``docProps/core.xml`` dates, and write the zip with fixed timestamps and a fixed entry order;
5. read the result back (olevba, pyOpenVBA's file check) and fail on any problem.

The helpers that parse ribbon XML, VBA procedures and ``RunPython`` strings are public so the tests
(tests/test_xlsm_build.py) use the same rules.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import io
import logging
import os
import re
import sys
import tempfile
import time
import tomllib
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from xml.etree import ElementTree as ET

if not __package__:  # run as a script (python xlsm/build.py): the repository root holds xlsm/ and udfs/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyxl_del.excel.opc import (
    CUSTOMUI_PART,
    UI_RELATIONSHIP_TYPE,
    add_ribbon,
    canonical_order,
    read_parts,
    write_zip,
)

log = logging.getLogger("pyxl_del.xlsm.build")

HERE = Path(__file__).resolve().parent
SRC_DIR = HERE / "src"
DEFAULT_OUT = HERE / "pyxl_del.xlsm"
TEMPLATE_NAME = "quickstart_standalone.xlsm"

#: Modules of the xlwings VBA runtime in the template: they must survive the build unchanged.
XLWINGS_RUNTIME_MODULES = ("xlwings", "Dictionary")
#: The template's sample module (``SampleCall``, a RunPython of ``import <workbook name>``): removed.
TEMPLATE_SAMPLE_MODULES = ("Module1",)
UDF_MODULE_NAME = "xlwings_udfs"
#: The xlwings.conf setting naming the Python modules whose UDFs the workbook offers ("a;b": xlwings' import_udfs
#: splits it on ";"); the build embeds the VBA wrappers of exactly these modules.
UDF_MODULES_KEY = "UDF Modules"
#: Loans per segment and cohort of the bundled sample on the committed workbook's Data sheet (10% of the loans,
#: 34,875 rows: a 1 MB workbook that builds in seconds; the full 348,750 rows would be about ten times that).
SAMPLE_LOANS_PER_COHORT = 25
DATA_PRINT_ROWS = 40  # the Data sheet's printed rows: one page, not the whole panel

MACRO_MAIN_CONTENT_TYPE = "application/vnd.ms-excel.sheet.macroEnabled.main+xml"
CUSTOMUI_NAMESPACES = (
    "http://schemas.microsoft.com/office/2006/01/customui",
    "http://schemas.microsoft.com/office/2009/07/customui",
)
_CT_NS = "http://schemas.openxmlformats.org/package/2006/content-types"
_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
_OFFICE_DOCUMENT_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"

#: Default build time stamp (zip entries, docProps/core.xml); SOURCE_DATE_EPOCH overrides it.
DEFAULT_EPOCH = datetime(2025, 1, 1, tzinfo=timezone.utc)
#: Tags go into a Python string literal inside the RunPython command: keep them identifiers.
TAG_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
#: Placeholder for a non-literal VBA operand (``control.Tag``) in a RunPython command.
VBA_EXPR = "__vba_expr__"


class BuildError(Exception):
    """The sources, the template or the built file fail a check; the message says which and why."""


# ---------------------------------------------------------------------------------------------------
# Ribbon (customUI.xml)
# ---------------------------------------------------------------------------------------------------

#: Callback attributes of customUI and the parameters their VBA procedure takes (first one's type).
_CALLBACK_FIRST_PARAM = {"onLoad": "IRibbonUI", "loadImage": "String"}
_CALLBACK_ATTRS = (
    "onAction", "onChange", "onLoad", "loadImage",
    "getEnabled", "getVisible", "getLabel", "getImage", "getScreentip", "getSupertip", "getKeytip",
    "getSize", "getDescription", "getShowImage", "getShowLabel", "getPressed", "getText",
    "getItemCount", "getItemID", "getItemLabel", "getItemImage", "getSelectedItemID",
    "getSelectedItemIndex", "getContent", "getTitle", "getHelperText", "getAltText",
)


def _parse_customui(customui_xml: str | bytes) -> ET.Element:
    try:
        root = ET.fromstring(customui_xml)
    except ET.ParseError as exc:
        raise BuildError(f"customUI.xml is not well-formed XML: {exc}") from None
    ns = root.tag[1:].split("}")[0] if root.tag.startswith("{") else ""
    if root.tag.split("}")[-1] != "customUI" or ns not in CUSTOMUI_NAMESPACES:
        raise BuildError(f"customUI.xml: root must be <customUI> in {CUSTOMUI_NAMESPACES[0]}, got {root.tag}")
    return root


def ribbon_tags(customui_xml: str | bytes) -> list[str]:
    """The ``tag`` of every ribbon control that has an ``onAction``, in document order.

    These are the action names ``PyxlDel.PyxlDelAction`` passes to ``pyxl_del.excel.ribbon.run_action``.
    """
    root = _parse_customui(customui_xml)
    return [el.get("tag", "") for el in root.iter() if el.get("onAction")]


def unknown_actions(customui_xml: str | bytes, actions: Mapping[str, str]) -> list[str]:
    """Ribbon tags that name no action (``pyxl_del.excel.buttons.BUTTONS``: tag -> "module:function"), or one that
    does not import as a function: their button would fail when clicked."""
    return [t for t in ribbon_tags(customui_xml) if t not in actions or not _is_function(actions[t])]


def _is_function(target: str) -> bool:
    module, _, function = target.partition(":")
    try:
        return callable(getattr(importlib.import_module(module), function, None))
    except (ImportError, ValueError):
        return False


def ribbon_callbacks(customui_xml: str | bytes) -> list[tuple[str, str, str]]:
    """Every callback in customUI as ``(element id, attribute, callback name)``."""
    root = _parse_customui(customui_xml)
    found = []
    for el in root.iter():
        for attr in _CALLBACK_ATTRS:
            if el.get(attr):
                found.append((el.get("id", el.tag.split("}")[-1]), attr, el.get(attr)))
    return found


# ---------------------------------------------------------------------------------------------------
# VBA text
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VbaProcedure:
    module: str
    name: str
    kind: str  # "Sub" | "Function"
    scope: str  # "Public" | "Private" | "Friend" (no keyword = Public)
    params: tuple[str, ...]


_PROC = re.compile(
    r"^[ \t]*(?:(Public|Private|Friend)[ \t]+)?(?:Static[ \t]+)?(Sub|Function)[ \t]+(\w+)[ \t]*\(([^)]*)\)",
    re.IGNORECASE | re.MULTILINE,
)


def _logical_lines(source: str) -> str:
    """VBA source with ``\\r\\n`` -> ``\\n`` and `` _`` line continuations joined."""
    text = source.replace("\r\n", "\n").replace("\r", "\n")
    return re.sub(r"[ \t]_[ \t]*\n[ \t]*", " ", text)


def vba_procedures(module: str, source: str) -> list[VbaProcedure]:
    """The Sub and Function declarations of one module."""
    procs = []
    for m in _PROC.finditer(_logical_lines(source)):
        params = tuple(p.strip() for p in m.group(4).split(",") if p.strip())
        procs.append(VbaProcedure(module, m.group(3), m.group(2).capitalize(),
                                  (m.group(1) or "Public").capitalize(), params))
    return procs


def _param_type(param: str) -> str:
    m = re.search(r"\bAs[ \t]+([\w.]+)", param, re.IGNORECASE)
    return m.group(1).split(".")[-1] if m else "Variant"


def unresolved_callbacks(customui_xml: str | bytes, modules: Mapping[str, str]) -> list[str]:
    """Each customUI callback that does not name a fitting public Sub in ``modules``, as a message.

    ``Module.Proc`` must be in that module, a bare ``Proc`` in any module. The Sub must be public and
    take ``control As IRibbonControl`` first (``ribbon As IRibbonUI`` for onLoad); ``get*`` callbacks
    also take the ByRef return value.
    """
    procs = [p for name, src in modules.items() for p in vba_procedures(name, src)]
    problems = []
    for element, attr, callback in ribbon_callbacks(customui_xml):
        mod, _, proc = callback.rpartition(".")
        hits = [p for p in procs if p.name.lower() == proc.lower()
                and (not mod or p.module.lower() == mod.lower())]
        where = f"{element}.{attr}={callback!r}"
        if not hits:
            problems.append(f"{where}: no Sub {proc} in {'module ' + mod if mod else 'any module'}")
            continue
        p = hits[0]
        want_type = _CALLBACK_FIRST_PARAM.get(attr, "IRibbonControl")
        want_params = 2 if attr.startswith("get") or attr == "loadImage" else 1
        if p.kind != "Sub" or p.scope != "Public":
            problems.append(f"{where}: {p.module}.{p.name} is a {p.scope} {p.kind}, needs a Public Sub")
        elif len(p.params) != want_params or _param_type(p.params[0]).lower() != want_type.lower():
            problems.append(f"{where}: {p.module}.{p.name}({', '.join(p.params)}) must take "
                            f"{want_params} parameter(s), the first As {want_type}")
    return problems


def xlwings_version_in_vba(source: str) -> str | None:
    """The ``XLWINGS_VERSION`` constant of the xlwings VBA runtime module, or None."""
    m = re.search(r'^[ \t]*(?:Public[ \t]+|Global[ \t]+)?Const[ \t]+XLWINGS_VERSION(?:[ \t]+As[ \t]+String)?'
                  r'[ \t]*=[ \t]*"([^"]*)"', source, re.IGNORECASE | re.MULTILINE)
    return m.group(1) if m else None


def check_xlwings_runtime(source: str, version: str) -> None:
    """The runtime module pins ``version``: its XLWINGS_VERSION and its DLL names."""
    found = xlwings_version_in_vba(source)
    if found != version:
        raise BuildError(f"the xlwings VBA runtime has XLWINGS_VERSION = {found!r}, but the installed "
                         f"xlwings is {version!r}: the workbook and the Python package must match")
    dlls = set(re.findall(r"xlwings(?:32|64)-([\w.]+?)\.dll", source))
    if dlls != {version}:
        raise BuildError(f"the xlwings VBA runtime names DLL versions {sorted(dlls)}, expected {version!r}")


# ---------------------------------------------------------------------------------------------------
# RunPython commands
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunPythonCall:
    vba_module: str
    command: str  # the Python text, non-literal VBA parts replaced by VBA_EXPR
    calls: tuple[tuple[str, str], ...]  # (module, function) called


def _strip_vba_comment(line: str) -> str:
    in_str = False
    for i, ch in enumerate(line):
        if ch == '"':
            in_str = not in_str
        elif ch == "'" and not in_str:
            return line[:i]
    return line


def _split_top_level(expr: str, sep: str) -> list[str]:
    parts, depth, in_str, cur = [], 0, False, []
    for ch in expr:
        if ch == '"':
            in_str = not in_str
        elif not in_str and ch == "(":
            depth += 1
        elif not in_str and ch == ")":
            depth -= 1
        if ch == sep and not in_str and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def vba_string_expression(expr: str) -> str:
    """Evaluate a VBA ``"..." & x & "..."`` expression: literals joined, other operands -> VBA_EXPR."""
    expr = expr.strip()
    while expr.startswith("(") and expr.endswith(")") and len(_split_top_level(expr[1:-1], ",")) == 1:
        expr = expr[1:-1].strip()
    out = []
    for part in _split_top_level(expr, "&"):
        part = part.strip()
        m = re.fullmatch(r'"((?:[^"]|"")*)"', part)
        out.append(m.group(1).replace('""', '"') if m else VBA_EXPR)
    return "".join(out)


def parse_python_command(command: str) -> tuple[tuple[str, str], ...]:
    """Check a RunPython command has the form ``import X; X.f(...)``; return the ``(X, f)`` called.

    Raises ValueError naming what is wrong.
    """
    try:
        tree = ast.parse(command)
    except SyntaxError as exc:
        raise ValueError(f"not valid Python: {exc.msg}: {command!r}") from None
    imported: set[str] = set()
    calls = []
    for stmt in tree.body:
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.asname:
                    raise ValueError(f"'import {alias.name} as {alias.asname}' is not supported: {command!r}")
                imported.add(alias.name)
        elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            func, path = stmt.value.func, []
            while isinstance(func, ast.Attribute):
                path.append(func.attr)
                func = func.value
            if not isinstance(func, ast.Name) or not path:
                raise ValueError(f"call is not module.function(...): {ast.unparse(stmt)!r} in {command!r}")
            dotted = ".".join([func.id, *reversed(path)])
            module, _, function = dotted.rpartition(".")
            if module not in imported:
                raise ValueError(f"{dotted}() calls into {module!r}, which the command does not import: {command!r}")
            calls.append((module, function))
        else:
            raise ValueError(f"only 'import X' and 'X.f(...)' statements are allowed: {ast.unparse(stmt)!r}")
    if not calls:
        raise ValueError(f"the command calls no function: {command!r}")
    return tuple(calls)


def runpython_calls(module: str, source: str) -> list[RunPythonCall]:
    """Every ``RunPython <string expression>`` in a module, parsed; raises BuildError if one is not
    of the form ``import X; X.f(...)`` with literal module and function names."""
    found = []
    for line in _logical_lines(source).split("\n"):
        code = _strip_vba_comment(line)
        m = re.search(r"(?:^|[\s:=(])(?:Call[ \t]+)?RunPython\b[ \t]*(.*)$", code, re.IGNORECASE)
        if not m or re.match(r"^\s*(?:Public\s+|Private\s+)?(?:Function|Sub)\s", code, re.IGNORECASE):
            continue
        command = vba_string_expression(m.group(1))
        try:
            calls = parse_python_command(command)
        except ValueError as exc:
            raise BuildError(f"{module}: RunPython {m.group(1).strip()}: {exc}") from None
        if any(VBA_EXPR in part for call in calls for part in call):
            raise BuildError(f"{module}: RunPython {m.group(1).strip()}: module and function must be literal")
        found.append(RunPythonCall(module, command, calls))
    return found


# ---------------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------------

def xlwings_template_path() -> Path:
    """``quickstart_standalone.xlsm`` inside the installed xlwings package."""
    import xlwings

    path = Path(xlwings.__file__).resolve().parent / TEMPLATE_NAME
    if not path.is_file():
        raise BuildError(f"{TEMPLATE_NAME} not found in the installed xlwings ({path.parent})")
    return path


def _crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")


def _vb_name(source: str) -> str | None:
    m = re.match(r'\s*Attribute[ \t]+VB_Name[ \t]*=[ \t]*"([^"]+)"', source)
    return m.group(1) if m else None


def load_bas_modules(src_dir: Path = SRC_DIR) -> dict[str, str]:
    """``*.bas`` files as ``{module name: CRLF source}``; the name is ``Attribute VB_Name`` = the stem."""
    modules = {}
    for path in sorted(src_dir.glob("*.bas")):
        text = path.read_text(encoding="utf-8")
        if not text.isascii():
            raise BuildError(f"{path}: VBA sources must be ASCII (the project code page is not UTF-8)")
        name = _vb_name(text)
        if name != path.stem:
            raise BuildError(f"{path}: first line must be Attribute VB_Name = \"{path.stem}\" (found {name!r})")
        modules[name] = _crlf(text.rstrip() + "\n")
    if not modules:
        raise BuildError(f"no .bas module in {src_dir}")
    return modules


def normalize_udf_vba(text: str) -> str:
    """The ``xlwings_udfs`` module as ``xlwings.udfs.import_udfs`` writes it.

    ``generate_vba_wrapper`` writes only the functions; ``import_udfs`` puts the VB_Name and
    ``#Const App = "Microsoft Excel"`` first. Without that constant every ``#If App = ...`` block takes
    its non-Excel branch, so it is added when missing.
    """
    body = text.replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    name = _vb_name(body)
    if name is not None and name != UDF_MODULE_NAME:
        raise BuildError(f"udf_vba: Attribute VB_Name is {name!r}, expected {UDF_MODULE_NAME!r}")
    if name is not None:
        body = body.split("\n", 1)[1] if "\n" in body else ""
    if not body.isascii():
        raise BuildError("udf_vba: VBA sources must be ASCII")
    head = [f'Attribute VB_Name = "{UDF_MODULE_NAME}"']
    if not re.search(r'^[ \t]*#Const[ \t]+App[ \t]*=', body, re.MULTILINE | re.IGNORECASE):
        head += ["'Autogenerated code by xlwings - changes will be lost with next import!",
                 '#Const App = "Microsoft Excel" \'Adjust when using outside of Excel']
    return _crlf("\n".join([*head, body]).rstrip() + "\n")


def vba_functions(source: str) -> dict[str, str]:
    """``{name: text}`` of each Function / Sub of a module (Attribute lines and line endings normalised)."""
    found: dict[str, str] = {}
    name, lines = None, []
    for line in _body(source).split("\n"):
        m = re.match(r"^(?:Public |Private )?(?:Function|Sub) (\w+)\(", line)
        if m:
            name, lines = m.group(1), []
        if name is not None:
            lines.append(line)
            if re.match(r"^End (?:Function|Sub)\b", line):
                found[name] = "\n".join(lines)
                name = None
    return found


def udf_modules(layout: list[dict] | None = None) -> str:
    """The "UDF Modules" setting of the layout's xlwings.conf sheet (default: ``src/layout.toml``)."""
    sheets = load_layout() if layout is None else layout
    settings = next(s["settings"] for s in sheets if s["kind"] == "xlwings_conf")
    if UDF_MODULES_KEY not in settings:
        raise BuildError(f"layout.toml: the xlwings.conf sheet has no {UDF_MODULES_KEY!r} setting")
    return settings[UDF_MODULES_KEY]


def udf_module_problems(registered: str, udf_vba: str) -> list[str]:
    """Mismatches between the modules the xlwings.conf sheet registers and those the xlwings_udfs VBA calls into:
    a listed module without wrappers needs an Import Functions step in Excel, and the wrappers of an unlisted one
    vanish at the next Import Functions (it rebuilds xlwings_udfs from the list)."""
    listed = [m.strip() for m in registered.split(";") if m.strip()]
    called = list(dict.fromkeys(re.findall(r'XLPy\.CallUDF\("([^"]+)"', udf_vba)))
    return ([f"{m}: listed in {UDF_MODULES_KEY} but the xlwings_udfs module has no function of it"
             for m in listed if m not in called]
            + [f"{m}: the xlwings_udfs module calls it but {UDF_MODULES_KEY} does not list it"
               for m in called if m not in listed])


def udf_vba_drift(embedded: str, generated: str) -> list[str]:
    """How the workbook's xlwings_udfs module differs from the VBA the UDF declarations generate now (one line
    per function); empty when they match."""
    old, new = vba_functions(embedded), vba_functions(generated)
    drift = [f"{n}: not in the workbook (new UDF)" for n in sorted(new.keys() - old.keys())]
    drift += [f"{n}: in the workbook but no longer a UDF" for n in sorted(old.keys() - new.keys())]
    for n in sorted(old.keys() & new.keys()):
        if old[n] != new[n]:
            was, now = old[n].split("\n", 1)[0], new[n].split("\n", 1)[0]
            drift.append(f"{n}: changed ({was!r} -> {now!r})" if was != now else f"{n}: body changed")
    return drift


def load_layout(path: Path = SRC_DIR / "layout.toml") -> list[dict]:
    """The sheets of layout.toml, checked."""
    with path.open("rb") as fh:
        sheets = tomllib.load(fh).get("sheet", [])
    names = [s.get("name", "") for s in sheets]
    if not sheets or len(set(n.lower() for n in names)) != len(names):
        raise BuildError(f"{path}: needs [[sheet]] entries with distinct names, got {names}")
    kinds = [s.get("kind") for s in sheets]
    for s in sheets:
        name, kind = s.get("name", ""), s.get("kind")
        if not name or len(name) > 31 or re.search(r"[\[\]:*?/\\]", name):
            raise BuildError(f"{path}: bad sheet name {name!r}")
        if kind not in ("text", "table", "xlwings_conf"):
            raise BuildError(f"{path}: sheet {name!r} has unknown kind {kind!r}")
        if kind == "xlwings_conf":
            settings = s.get("settings", {})
            if name != "xlwings.conf":
                raise BuildError(f"{path}: xlwings reads its workbook settings only from a sheet named "
                                 f"'xlwings.conf', not {name!r}")
            upper = [k.upper() for k in settings]
            if len(set(upper)) != len(upper):
                raise BuildError(f"{path}: xlwings.conf keys differ only in case ({list(settings)}); xlwings "
                                 "upper-cases them into one dictionary and fails on the duplicate")
            empty = [k for k, v in settings.items() if v is None or str(v).strip() == ""]
            if empty or not settings:
                raise BuildError(
                    f"{path}: xlwings.conf settings {empty or '(none)'} have no value. xlwings takes a key that "
                    "is on the sheet even when its value is empty (GetConfig in the VBA runtime), so an empty "
                    "Interpreter makes RunPython fail with 'Could not find Interpreter!'. Leave the key out to "
                    "fall back to the ribbon / xlwings.conf file / default.")
    if kinds.count("xlwings_conf") != 1:
        raise BuildError(f"{path}: needs exactly one sheet of kind 'xlwings_conf'")
    return sheets


# ---------------------------------------------------------------------------------------------------
# Build steps
# ---------------------------------------------------------------------------------------------------

def source_epoch() -> datetime:
    """The fixed build time: SOURCE_DATE_EPOCH when set (reproducible-builds convention), else 2025-01-01."""
    value = os.environ.get("SOURCE_DATE_EPOCH")
    stamp = datetime.fromtimestamp(int(value), tz=timezone.utc) if value else DEFAULT_EPOCH
    stamp = max(stamp, datetime(1980, 1, 1, tzinfo=timezone.utc)).replace(microsecond=0)
    return stamp.replace(second=stamp.second - stamp.second % 2)  # zip (DOS) times have 2 s resolution


def read_vba_modules(package: bytes) -> dict[str, str]:
    """``{module name: source}`` of a macro-enabled package, read with oletools' olevba."""
    from oletools.olevba import VBA_Parser

    # olevba logs at INFO/WARNING for every in-memory file (e.g. "VBA stomping cannot be detected").
    olevba_log = logging.getLogger("olevba")
    level = olevba_log.level
    olevba_log.setLevel(logging.ERROR)
    parser = VBA_Parser("workbook.xlsm", data=package)
    try:
        if not parser.detect_vba_macros():
            return {}
        return {Path(vba_filename).stem: code
                for _, _, vba_filename, code in parser.extract_macros()}
    finally:
        parser.close()
        olevba_log.setLevel(level)


def _cell_value(value):
    """A pandas / numpy value as something openpyxl writes (NaN, NaT, None -> empty cell)."""
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalar
        try:
            value = value.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(value, float) and value != value:
        return None
    if type(value).__name__ == "NaTType":
        return None
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if isinstance(value, datetime) and value.tzinfo is not None:
        value = value.replace(tzinfo=None)
    return value


def _reset_sheet(ws) -> None:
    """Remove a template sheet's cells, column formats and selection; keep the sheet (and its codeName)."""
    if ws.max_row:
        ws.delete_rows(1, ws.max_row)
    ws.column_dimensions.clear()
    ws.row_dimensions.clear()
    ws.merged_cells.ranges = set()
    view = ws.sheet_view
    view.selection[0].activeCell = "A1"
    view.selection[0].sqref = "A1"
    view.topLeftCell = "A1"


def write_sheets(template: bytes, layout: list[dict], data_frame=None, *, epoch: datetime) -> bytes:
    """Step 2: the template with the layout's sheets, saved by openpyxl (keep_vba=True)."""
    import openpyxl
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    wb = openpyxl.load_workbook(io.BytesIO(template), keep_vba=True)
    # Reuse the template's sheets so their codeNames keep matching the document modules in
    # vbaProject.bin (Sheet1, Sheet2): the _xlwings.conf sample becomes the xlwings.conf sheet.
    spare = [ws for ws in wb.worksheets if ws.title != "_xlwings.conf"]
    conf_template = wb["_xlwings.conf"] if "_xlwings.conf" in wb.sheetnames else None
    ordered = []
    for spec in layout:
        if spec["kind"] == "xlwings_conf" and conf_template is not None:
            ws = conf_template
        elif spare:
            ws = spare.pop(0)
        else:
            ws = wb.create_sheet()
        _reset_sheet(ws)
        ws.title = spec["name"]
        ordered.append((spec, ws))
    for ws in spare:
        wb.remove(ws)
    if conf_template is not None and conf_template not in [ws for _, ws in ordered]:
        wb.remove(conf_template)
    wb._sheets = [ws for _, ws in ordered]  # tab order of the layout
    # A new sheet gets the code name Excel would give it (SheetN, one count over all sheets), as
    # XlsxWriter does next to a vbaProject.bin; Excel adds the missing document module on open.
    taken = {(ws.sheet_properties.codeName or "").lower() for _, ws in ordered} | {"thisworkbook"}
    for place, (_, ws) in enumerate(ordered, start=1):
        if not ws.sheet_properties.codeName:
            n = place
            while f"sheet{n}" in taken:
                n += 1
            ws.sheet_properties.codeName = f"Sheet{n}"
            taken.add(f"sheet{n}")

    # One font across the workbook: the template's default is 12 pt, pyxl_del's sheets are 11 pt Calibri.
    default = wb._fonts[0]
    wb._fonts[0] = Font(name="Calibri", sz=11, family=default.family, scheme=default.scheme, color=default.color)
    if "Normal" in wb.named_styles:
        wb._named_styles["Normal"].font = wb._fonts[0]
    bold = Font(bold=True, sz=11)
    for spec, ws in ordered:
        kind = spec["kind"]
        if kind == "text":
            ws["A1"] = spec.get("title", spec["name"])
            ws["A1"].font = Font(bold=True, size=14)
            for i, line in enumerate(spec.get("lines", []), start=3):
                cell = ws.cell(row=i, column=1, value=line or None)
                if line:
                    cell.data_type = "s"  # openpyxl would store a line starting with "=" as a formula
            ws.column_dimensions["A"].width = spec.get("column_width", 100)
        elif kind == "table":
            header = list(spec.get("header", []))
            rows: Iterable = ()
            if data_frame is not None:
                columns = [str(c) for c in data_frame.columns]
                if header and columns != header:
                    log.warning("data_frame columns %s differ from the layout header %s", columns, header)
                header = columns
                rows = data_frame.itertuples(index=False, name=None)
            ws.append(header)
            for cell in ws[1]:
                cell.font = bold
            n = 1
            for n, row in enumerate(rows, start=2):
                ws.append([_cell_value(v) for v in row])
            for col in range(1, len(header) + 1):
                ws.column_dimensions[get_column_letter(col)].width = spec.get("column_width", 18)
            ws.freeze_panes = "A2"
            ws.page_setup.orientation = "landscape"
            # The raw panel is not a report: printing it shows the header and the first rows only.
            ws.print_area = f"A1:{get_column_letter(max(len(header), 1))}{min(n, DATA_PRINT_ROWS)}"
            ws.print_title_rows = "1:1"
            log.info("sheet %s: header of %d columns, %d data rows", ws.title, len(header), n - 1)
        else:  # xlwings_conf: keys from A1 down, values in B; notes after a gap (xlwings stops there)
            settings = spec["settings"]
            for i, (key, value) in enumerate(settings.items(), start=1):
                ws.cell(row=i, column=1, value=key)
                ws.cell(row=i, column=2, value=value)
            first_note = len(settings) + 3
            if spec.get("notes"):
                ws.cell(row=first_note, column=1, value="Notes:").font = bold
                for i, note in enumerate(spec["notes"], start=first_note + 1):
                    ws.cell(row=i, column=1, value=note)
            ws.column_dimensions["A"].width = 18
            ws.column_dimensions["B"].width = 24
    for i, (_, ws) in enumerate(ordered):
        ws.sheet_view.tabSelected = i == 0
        ws.sheet_view.showGridLines = False
        ws.sheet_properties.pageSetUpPr.fitToPage = True  # print / PDF one page wide
        ws.page_setup.fitToWidth, ws.page_setup.fitToHeight = 1, 0
    wb.active = 0

    naive_epoch = epoch.astimezone(timezone.utc).replace(tzinfo=None)
    props = wb.properties
    props.creator = props.lastModifiedBy = "pyxl_del xlsm/build.py"
    props.title = "pyxl_del"
    props.created = naive_epoch
    # openpyxl stamps `modified` with the wall clock on save; package() overwrites it with the epoch.
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def write_vba(package: bytes, modules: Mapping[str, str]) -> bytes:
    """Step 3: drop the template's sample module(s) and add ``modules`` with pyOpenVBA."""
    from pyopenvba import ExcelFile

    with tempfile.TemporaryDirectory(prefix="pyxl_del_xlsm_") as tmp:
        src, dst = Path(tmp) / "stage1.xlsm", Path(tmp) / "stage2.xlsm"
        src.write_bytes(package)
        with ExcelFile(src) as book:
            project = book.vba_project()
            present = {m.lower(): m for m in project.module_names()}
            for name in TEMPLATE_SAMPLE_MODULES:
                if name.lower() in present:
                    project.delete_module(present[name.lower()])
                    log.info("removed template module %s", name)
            for name, source in modules.items():
                if name.lower() in present and name not in TEMPLATE_SAMPLE_MODULES:
                    raise BuildError(f"module {name!r} already exists in the template's VBA project")
                project.add_module(name, source)
                log.info("added VBA module %s (%d lines)", name, source.count("\r\n"))
            book.save(dst)
        with ExcelFile(dst) as book:
            problems = book.validate()
        if problems:
            raise BuildError(f"pyOpenVBA reports an inconsistent VBA project: {problems}")
        return dst.read_bytes()


def package(parts: Mapping[str, bytes], customui_xml: bytes, *, epoch: datetime) -> bytes:
    """Step 4: add the ribbon part + relationship, fix core.xml dates, write the zip deterministically."""
    parts = add_ribbon(parts, customui_xml)
    stamp = epoch.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    core, n = re.subn(r"(<dcterms:modified\b[^>]*>)[^<]*(</dcterms:modified>)", rf"\g<1>{stamp}\g<2>",
                      parts["docProps/core.xml"].decode("utf-8"))
    if n != 1:
        raise BuildError("docProps/core.xml: expected one dcterms:modified")
    parts["docProps/core.xml"] = core.encode("utf-8")
    return write_zip(parts, stamp=epoch)


# ---------------------------------------------------------------------------------------------------
# Checks of a built file (the tests run these on the real build and on broken copies)
# ---------------------------------------------------------------------------------------------------

def check_content_types(parts: Mapping[str, bytes]) -> None:
    """The workbook part is macro-enabled; the ribbon part has an XML content type."""
    root = ET.fromstring(parts["[Content_Types].xml"])
    overrides = {el.get("PartName"): el.get("ContentType") for el in root.iter(f"{{{_CT_NS}}}Override")}
    defaults = {el.get("Extension", "").lower(): el.get("ContentType") for el in root.iter(f"{{{_CT_NS}}}Default")}
    rels = ET.fromstring(parts["_rels/.rels"])
    main = [el.get("Target", "").lstrip("/") for el in rels.iter(f"{{{_REL_NS}}}Relationship")
            if el.get("Type") == _OFFICE_DOCUMENT_REL]
    if len(main) != 1:
        raise BuildError(f"_rels/.rels: expected one officeDocument relationship, found {main}")
    ct = overrides.get("/" + main[0])
    if ct != MACRO_MAIN_CONTENT_TYPE:
        raise BuildError(f"/{main[0]} has content type {ct!r}, expected {MACRO_MAIN_CONTENT_TYPE!r}")
    ui_ct = overrides.get("/" + CUSTOMUI_PART) or defaults.get("xml")
    if ui_ct not in ("application/xml", "text/xml"):
        raise BuildError(f"/{CUSTOMUI_PART} has content type {ui_ct!r}")


def check_customui_relationship(parts: Mapping[str, bytes]) -> str:
    """customUI/customUI.xml exists and _rels/.rels points at it with the ui/extensibility type."""
    rels = ET.fromstring(parts["_rels/.rels"])
    targets = [el.get("Target", "").lstrip("/") for el in rels.iter(f"{{{_REL_NS}}}Relationship")
               if el.get("Type") == UI_RELATIONSHIP_TYPE]
    if len(targets) != 1:
        raise BuildError(f"_rels/.rels: expected one {UI_RELATIONSHIP_TYPE} relationship, found {len(targets)}")
    if targets[0] not in parts:
        raise BuildError(f"_rels/.rels: the ribbon relationship points at {targets[0]!r}, not a part of the file")
    _parse_customui(parts[targets[0]])
    return targets[0]


def check_zip_canonical(package_bytes: bytes, *, epoch: datetime) -> None:
    """Entries in canonical order, each stamped with the build epoch."""
    date_time = epoch.astimezone(timezone.utc).timetuple()[:6]
    with zipfile.ZipFile(io.BytesIO(package_bytes)) as zf:
        infos = zf.infolist()
    names = [i.filename for i in infos]
    if names != canonical_order(names):
        raise BuildError(f"zip entries are not in canonical order: {names}")
    stamped = [i.filename for i in infos if i.date_time != date_time]
    if stamped:
        raise BuildError(f"zip entries not stamped {date_time}: {stamped}")


def check_vba(modules: Mapping[str, str], customui_xml: bytes, *, version: str,
              expected: Mapping[str, str] | None = None, runtime: Mapping[str, str] | None = None) -> None:
    """The VBA read back from a built file: runtime present (unchanged), version pinned, the sample
    module gone, ``expected`` modules read back, ribbon callbacks resolve, RunPython strings parse."""
    lower = {k.lower(): k for k in modules}
    missing = [m for m in XLWINGS_RUNTIME_MODULES if m.lower() not in lower]
    if missing:
        raise BuildError(f"xlwings runtime module(s) {missing} missing from the VBA project")
    leftover = [m for m in TEMPLATE_SAMPLE_MODULES if m.lower() in lower]
    if leftover:
        raise BuildError(f"template sample module(s) {leftover} still in the VBA project")
    check_xlwings_runtime(modules[lower["xlwings"]], version)
    for name, source in (runtime or {}).items():
        if _body(modules.get(name, "")) != _body(source):
            raise BuildError(f"xlwings runtime module {name} changed in the build")
    for name, source in (expected or {}).items():
        if _body(modules.get(name, "")) != _body(source):
            raise BuildError(f"module {name} does not read back as its source")
    problems = unresolved_callbacks(customui_xml, modules)
    if problems:
        raise BuildError("ribbon callbacks do not resolve:\n  " + "\n  ".join(problems))
    for name, source in modules.items():
        if name not in XLWINGS_RUNTIME_MODULES:
            runpython_calls(name, source)


def _body(source: str) -> str:
    """Source without Attribute lines, line endings and trailing blank lines normalised."""
    lines = source.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(l.rstrip() for l in lines if not l.startswith("Attribute VB_")).strip()


def verify_workbook(package_bytes: bytes, *, epoch: datetime, expected: Mapping[str, str] | None = None,
                    runtime: Mapping[str, str] | None = None) -> dict[str, str]:
    """All checks on a built file; returns its VBA modules (as olevba reads them)."""
    import xlwings

    parts = read_parts(package_bytes)
    check_content_types(parts)
    ui = check_customui_relationship(parts)
    check_zip_canonical(package_bytes, epoch=epoch)
    modules = read_vba_modules(package_bytes)
    check_vba(modules, parts[ui], version=xlwings.__version__, expected=expected, runtime=runtime)
    return modules


def _pyopenvba_file_check(package_bytes: bytes) -> None:
    from pyopenvba import check_file

    with tempfile.TemporaryDirectory(prefix="pyxl_del_xlsm_") as tmp:
        path = Path(tmp) / "check.xlsm"
        path.write_bytes(package_bytes)
        report = check_file(path)
    if report.errors:
        raise BuildError("pyOpenVBA check_file: " + "; ".join(f"{i.location}: {i.message}" for i in report.errors))


# ---------------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------------

def build_bytes(*, udf_vba: str | None = None, data_frame=None, src_dir: Path = SRC_DIR,
                template: Path | None = None, epoch: datetime | None = None) -> bytes:
    """The built workbook as bytes (see :func:`build_workbook`)."""
    import xlwings

    epoch = epoch or source_epoch()
    template = template or xlwings_template_path()
    template_bytes = template.read_bytes()
    runtime_all = read_vba_modules(template_bytes)
    runtime = {m: runtime_all[m] for m in XLWINGS_RUNTIME_MODULES if m in runtime_all}
    if "xlwings" not in runtime:
        raise BuildError(f"{template}: no xlwings VBA runtime module")
    check_xlwings_runtime(runtime["xlwings"], xlwings.__version__)
    log.info("template %s: xlwings VBA runtime %s", template, xlwings.__version__)

    layout = load_layout(src_dir / "layout.toml")
    modules = load_bas_modules(src_dir)
    if udf_vba:
        if UDF_MODULE_NAME in modules:
            raise BuildError(f"{src_dir} already has a {UDF_MODULE_NAME}.bas and udf_vba was given")
        problems = udf_module_problems(udf_modules(layout), udf_vba)
        if problems:
            raise BuildError("udf_vba does not match the xlwings.conf sheet (generate it from the listed modules: "
                             "xlsm.xlwings_win.udf_vba(udf_modules())):\n  " + "\n  ".join(problems))
        modules[UDF_MODULE_NAME] = normalize_udf_vba(udf_vba)
    customui = (src_dir / "customUI.xml").read_bytes()
    bad_tags = [t for t in ribbon_tags(customui) if not TAG_PATTERN.match(t)]
    if bad_tags:
        raise BuildError(f"customUI.xml: tags must match {TAG_PATTERN.pattern}: {bad_tags}")
    from pyxl_del.excel.buttons import BUTTONS

    unknown = unknown_actions(customui, BUTTONS)
    if unknown:
        raise BuildError(f"customUI.xml: buttons whose tag is not in pyxl_del.excel.buttons.BUTTONS: {unknown}")
    # Fail on the sources before building: callbacks must resolve, RunPython strings must parse.
    problems = unresolved_callbacks(customui, {**runtime, **modules})
    if problems:
        raise BuildError("customUI.xml callbacks do not resolve in the VBA sources:\n  " + "\n  ".join(problems))
    for name, source in modules.items():
        runpython_calls(name, source)

    staged = write_sheets(template_bytes, layout, data_frame, epoch=epoch)
    staged = write_vba(staged, modules)
    built = package(read_parts(staged), customui, epoch=epoch)

    verify_workbook(built, epoch=epoch, expected=modules, runtime=runtime)
    _pyopenvba_file_check(built)
    return built


def build_workbook(out_path: str | Path = DEFAULT_OUT, *, udf_vba: str | None = None, data_frame=None,
                   src_dir: Path = SRC_DIR, template: Path | None = None) -> Path:
    """Build the workbook into ``out_path`` and return the path.

    ``udf_vba``: the text of the ``xlwings_udfs`` VBA module (from ``xlwings.udfs.generate_vba_wrapper``) for the
    modules of the layout's "UDF Modules" setting; ``data_frame``: rows for the Data sheet (its columns
    become the header). Raises :class:`BuildError` when a source or the result fails a check.
    """
    started = time.perf_counter()
    built = build_bytes(udf_vba=udf_vba, data_frame=data_frame, src_dir=src_dir, template=template)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(built)
    os.replace(tmp, out)
    log.info("wrote %s (%d bytes) in %.2f s", out, len(built), time.perf_counter() - started)
    return out


def sample_slice(loans_per_cohort: int = SAMPLE_LOANS_PER_COHORT):
    """The Data sheet of the committed workbook: every row of the first ``loans_per_cohort`` loans (by id) of each
    segment and cohort of the bundled sample panel (pyxl_del/data/sample_panel.parquet)."""
    import pandas as pd

    from pyxl_del.datasets.sample import SAMPLE_PANEL_PATH
    from pyxl_del.engine.config import Config

    cfg = Config()
    frame = pd.read_parquet(SAMPLE_PANEL_PATH)
    loans = frame[[cfg["loan_id"], cfg["segment"], cfg["cohort"]]].drop_duplicates(cfg["loan_id"])
    loans = loans.sort_values(cfg["loan_id"])
    chosen = loans.loc[loans.groupby([cfg["segment"], cfg["cohort"]]).cumcount() < loans_per_cohort, cfg["loan_id"]]
    return frame[frame[cfg["loan_id"]].isin(chosen)].reset_index(drop=True)


def release_inputs() -> dict:
    """What the committed xlsm/pyxl_del.xlsm is built from besides src/: the xlwings_udfs module generated from the
    modules layout.toml registers ("UDF Modules": udfs.del_udfs, udfs.decide_udfs; xlsm/xlwings_win.py) and the
    sample slice for the Data sheet."""
    from xlsm.xlwings_win import udf_vba

    return {"udf_vba": udf_vba(udf_modules()), "data_frame": sample_slice()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xlsm.build", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output file (default {DEFAULT_OUT})")
    parser.add_argument("--udf-vba", type=Path, help="file with the xlwings_udfs VBA module text "
                                                     "(default: generated from the UDF Modules of layout.toml)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    inputs = release_inputs()
    if args.udf_vba:
        inputs["udf_vba"] = args.udf_vba.read_text(encoding="utf-8")
    try:
        out = build_workbook(args.out, **inputs)
    except BuildError as exc:
        log.error("%s", exc)
        return 1
    print(f"built {out} ({out.stat().st_size} bytes, {time.perf_counter() - started:.2f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
