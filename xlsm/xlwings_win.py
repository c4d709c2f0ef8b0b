"""xlwings' Windows-only UDF machinery on any OS: the build's xlwings_udfs VBA module, and the checks' UDF calls.

Off Windows, ``xw.func`` / ``xw.arg`` / ``xw.ret`` are no-ops and ``xlwings.udfs`` does not import (it needs
pywin32). `windows_udfs()` puts stand-ins for pywin32's modules into ``sys.modules``, imports ``xlwings.udfs``, binds
``xw.func/arg/ret`` to its ``xlfunc/xlarg/xlret`` and registers an "excel" conversion engine whose value cleaning
is xlwings' own code: the functions are read from the installed ``xlwings/_xlwindows.py`` (which itself cannot be
imported off Windows) and executed. Everything is undone on exit.

Inside, `UdfRuntime.load` imports a UDF module with its metadata (``__xlfunc__``), `UdfRuntime.vba` writes its VBA
wrappers with ``xlwings.udfs.generate_vba_wrapper`` and `UdfRuntime.call` makes a call the way Excel does through
``xlwings.udfs.call_udf``: omitted optional arguments arrive as a marker replaced by the Python default, every
other argument goes through ``xlwings.conversion.read`` with the argument's options and the result through
``xlwings.conversion.write`` with the return options (the synchronous branch of call_udf, without a caller range).
"""

from __future__ import annotations

import ast
import contextlib
import datetime as dt
import importlib
import io
import sys
import types
from collections.abc import Iterator
from pathlib import Path

UDF_MODULE = "udfs.del_udfs"
#: What VBA passes for an omitted Optional argument (DISP_E_PARAMNOTFOUND); call_udf tests for it.
MISSING = -2147352572
#: Top-level definitions of xlwings/_xlwindows.py that make up its value conversion.
_ENGINE_DEFINITIONS = ("cell_errors", "_com_time_to_datetime", "_datetime_to_com_time", "_clean_value_data_element",
                       "Engine")
_STUBBED = ("pythoncom", "pywintypes", "win32com", "win32com.client", "win32timezone")


class ComError(Exception):
    """Stand-in for pywintypes.com_error."""


class TimeType(dt.datetime):
    """Stand-in for pywintypes.TimeType: the (time-zone aware) datetime COM hands over for a date cell."""


def _stubs() -> dict[str, types.SimpleNamespace]:
    client = types.SimpleNamespace(Dispatch=lambda *a, **k: None)
    return {
        "pythoncom": types.SimpleNamespace(CoInitialize=lambda *a, **k: None, com_error=ComError),
        "pywintypes": types.SimpleNamespace(com_error=ComError, TimeType=TimeType),
        "win32com": types.SimpleNamespace(client=client),
        "win32com.client": client,
        "win32timezone": types.SimpleNamespace(TimeZoneInfo=types.SimpleNamespace(utc=lambda: dt.timezone.utc)),
    }


def _excel_engine_impl():
    """xlwings' desktop-Excel engine value conversion, executed from the installed _xlwindows.py."""
    import numpy as np
    import pandas as pd
    import xlwings
    from xlwings.utils import np_datetime_to_datetime

    source = Path(xlwings.__file__).with_name("_xlwindows.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    wanted = []
    for node in tree.body:
        names = ([t.id for t in node.targets if isinstance(t, ast.Name)] if isinstance(node, ast.Assign)
                 else [node.name] if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else [])
        if set(names) & set(_ENGINE_DEFINITIONS):
            wanted.append(node)
    found = {n for node in wanted for n in ([t.id for t in node.targets] if isinstance(node, ast.Assign) else [node.name])}
    if found != set(_ENGINE_DEFINITIONS):
        raise RuntimeError(f"xlwings/_xlwindows.py no longer defines {sorted(set(_ENGINE_DEFINITIONS) - found)}")
    stubs = _stubs()
    namespace = {"dt": dt, "pd": pd, "np": np, "np_datetime_to_datetime": np_datetime_to_datetime,
                 "pywintypes": stubs["pywintypes"], "win32timezone": stubs["win32timezone"],
                 "time_types": (dt.date, dt.datetime, TimeType, np.datetime64)}
    exec(compile(ast.Module(body=wanted, type_ignores=[]), "xlwings/_xlwindows.py", "exec"), namespace)  # noqa: S102
    return namespace["Engine"]()


class UdfRuntime:
    def __init__(self, udfs_module):
        self.udfs = udfs_module
        self.loaded: list[str] = []

    def load(self, module_name: str = UDF_MODULE):
        """Import ``module_name`` afresh, so its decorators attach xlwings' metadata."""
        sys.modules.pop(module_name, None)
        self.loaded.append(module_name)
        return importlib.import_module(module_name)

    def vba(self, module_name: str = UDF_MODULE, module=None) -> str:
        """The xlwings_udfs VBA text for ``module`` (loaded if not given), as generate_vba_wrapper writes it."""
        module = module or self.load(module_name)
        out = io.StringIO()
        self.udfs.generate_vba_wrapper(module_name, module, out, types.SimpleNamespace(Name="pyxl_del.xlsm"))
        return out.getvalue()

    @staticmethod
    def call(func, *args):
        """Call ``func`` as Excel does: arguments not given are omitted optional ones."""
        from xlwings import conversion

        info = func.__xlfunc__
        args_info = info["args"]
        values = list(args) + [MISSING] * (len(args_info) - len(args))
        for i, arg in enumerate(values):
            arg_info = args_info[min(i, len(args_info) - 1)]
            if isinstance(arg, int) and arg == MISSING:
                values[i] = arg_info.get("optional", None)
            else:
                values[i] = conversion.read(None, arg, arg_info["options"])
        return conversion.write(func(*values), None, info["ret"]["options"])


@contextlib.contextmanager
def windows_udfs() -> Iterator[UdfRuntime]:
    """xlwings' UDF decorators, xlwings.udfs and an "excel" conversion engine, for the duration of the block."""
    import xlwings
    from xlwings.main import Engine

    saved = {name: sys.modules.get(name) for name in (*_STUBBED, "xlwings.udfs")}
    decorators = {name: getattr(xlwings, name) for name in ("func", "arg", "ret")}
    sys.modules.update(_stubs())
    engine = Engine(impl=_excel_engine_impl())
    runtime = None
    try:
        sys.modules.pop("xlwings.udfs", None)
        udfs = importlib.import_module("xlwings.udfs")
        xlwings.func, xlwings.arg, xlwings.ret = udfs.xlfunc, udfs.xlarg, udfs.xlret
        xlwings.engines.add(engine)
        runtime = UdfRuntime(udfs)
        yield runtime
    finally:
        if engine in xlwings.engines.engines:
            xlwings.engines.engines.remove(engine)
        for name, value in decorators.items():
            setattr(xlwings, name, value)
        for name in runtime.loaded if runtime else ():
            sys.modules.pop(name, None)  # the next plain import gets the module without Windows metadata
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
        if saved["xlwings.udfs"] is None and hasattr(xlwings, "udfs"):
            del xlwings.udfs  # the import bound it on the package too


def udf_vba(module_names: str) -> str:
    """The xlwings_udfs VBA module for the UDFs of ``module_names`` (what the workbook embeds): "a;b" as on the
    xlwings.conf sheet, one module's functions after the other's, as xlwings' import_udfs writes them."""
    with windows_udfs() as runtime:
        return "".join(runtime.vba(name) for name in module_names.split(";"))
