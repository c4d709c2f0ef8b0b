"""The layers hold: import-linter's contracts (pyproject.toml [tool.importlinter]) pass, and fail when a module
breaks them; no module imports a module that imports it back; the command line starts without pandas.

The contracts and the cycle check read the source (grimp), function-level imports included, so a lazy import is
held to the same rules as a top-level one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pyxl_del", "udfs", "xlsm")

# Runs in a fresh interpreter so that it analyses the tree on its sys.path (the planted copies below).
CYCLES = """
import sys, grimp
graph = grimp.build_graph(*sys.argv[1:], cache_dir=None)
cycles = set()
for importer in sorted(graph.modules):
    for imported in graph.find_modules_directly_imported_by(importer):
        if imported in graph.modules and graph.chain_exists(importer=imported, imported=importer):
            chain = graph.find_shortest_chain(importer=imported, imported=importer)
            cycles.add(" -> ".join((importer, *chain)))
print("\\n".join(sorted(cycles)))
"""


def _copy_tree(tmp_path: Path) -> Path:
    """The project's packages and its import-linter config, copied to ``tmp_path`` for a planted violation."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "*.xlsm"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports; "
                                       "sys.exit(lint_imports(no_cache=True, no_logo=True))"], cwd)


def _plant(tree: Path, module: str, line: str) -> None:
    path = tree / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")


def test_import_contracts_hold():
    done = _lint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(("module", "line", "message"), [
    ("pyxl_del.engine.forecast", "from pyxl_del.excel import render  # noqa",
     "pyxl_del.engine is not allowed to import pyxl_del.excel"),
    ("pyxl_del.risk.stress", "from pyxl_del.decision import twin  # noqa",
     "pyxl_del.risk is not allowed to import pyxl_del.decision"),
    ("pyxl_del.risk.alerts", "def _f():\n    from pyxl_del.backtest import rolling  # noqa",
     "pyxl_del.risk is not allowed to import pyxl_del.backtest"),
    ("pyxl_del.sheets.report", "import openpyxl  # noqa", "pyxl_del.sheets is not allowed to import openpyxl"),
    ("pyxl_del.decision.decide", "from pyxl_del.cli import common  # noqa",
     "pyxl_del.decision is not allowed to import pyxl_del.cli"),
])
def test_a_planted_violation_breaks_a_contract(tmp_path, module, line, message):
    tree = _copy_tree(tmp_path)
    assert _lint(tree).returncode == 0  # the copy itself is clean
    _plant(tree, module, line)
    done = _lint(tree)
    assert done.returncode != 0
    assert message in done.stdout


def test_no_module_imports_a_module_that_imports_it_back():
    done = _run([sys.executable, "-c", CYCLES, *PACKAGES], ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"import cycles:\n{done.stdout}"


def test_a_planted_cycle_is_found(tmp_path):
    tree = _copy_tree(tmp_path)
    _plant(tree, "pyxl_del.engine.config", "def _f():\n    from pyxl_del.engine import pipeline  # noqa")
    done = _run([sys.executable, "-c", CYCLES, *PACKAGES], tree)
    assert done.returncode == 0, done.stderr
    assert "pyxl_del.engine.config -> pyxl_del.engine.pipeline" in done.stdout


def test_the_command_line_starts_without_pandas():
    """`pyxl-del --version` and building the parser load no engine: subcommands import it when they run."""
    probe = ("import sys; from pyxl_del.cli import build_parser; build_parser(); "
             "heavy = sorted(m for m in ('pandas', 'pyarrow', 'duckdb', 'openpyxl', 'scipy', 'pydantic', "
             "'pyxl_del.engine.pipeline') if m in sys.modules); print(','.join(heavy))")
    done = _run([sys.executable, "-c", probe], ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_the_pipeline_imports_no_scipy():
    """A command's own start-up imports the pipeline; scipy (0.3 s) comes only when a fit needs it (the Bayes
    estimator's optimiser, economics, capital)."""
    probe = "import sys, pyxl_del.engine.pipeline; print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))"
    done = _run([sys.executable, "-c", probe], ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# A report's modules: the specified estimator needs no scipy, the shipped defaults only its optimiser and special
# functions. scipy.stats alone added 0.6 s to every 10M-row report (1.28x the specified one; issue 14 allows 1.2x).
REPORT_IMPORTS = """
import sys
from pyxl_del.datasets.sample import SAMPLE_PANEL_PATH
from pyxl_del.engine.config import Config
from pyxl_del.engine.pipeline import run
config = Config() if sys.argv[1] == "defaults" else Config().as_specified().with_overrides(forecast={"intervals": False})
run(SAMPLE_PANEL_PATH, config)
print(",".join(sorted({".".join(m.split(".")[:2]) for m in sys.modules if m.split(".")[0] == "scipy"})))
"""


def test_a_report_imports_only_the_scipy_it_uses():
    defaults = _run([sys.executable, "-c", REPORT_IMPORTS, "defaults"], ROOT)
    specified = _run([sys.executable, "-c", REPORT_IMPORTS, "specified"], ROOT)
    assert defaults.returncode == 0 and specified.returncode == 0, defaults.stderr + specified.stderr
    loaded = set(defaults.stdout.strip().split(","))
    assert {"scipy.optimize", "scipy.special"} <= loaded  # the probe sees what the fit loads
    assert "scipy.stats" not in loaded
    assert specified.stdout.strip() == ""

def test_importing_pyxl_del_leaves_gymnasium_alone_until_it_is_used():
    """The environment is registered when gymnasium loads, before or after pyxl_del, not by importing it."""
    probe = ("import sys, pyxl_del; assert 'gymnasium' not in sys.modules; import gymnasium; "
             "print('pyxl_del/Lending-v0' in gymnasium.registry)")
    first = "import gymnasium, pyxl_del; print('pyxl_del/Lending-v0' in gymnasium.registry)"
    for code in (probe, first):
        done = _run([sys.executable, "-c", code], ROOT)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "True"
