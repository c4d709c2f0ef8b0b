"""pyxl_del: delinquency (DEL30/60/90) forecasting of loan vintages with Markov chains, for Excel users.

The layers are packages: `engine` (config, panel, transitions, calibration, forecast, DEL, portfolio; `run`),
`datasets`, `backtest`, `risk`, `decision`, `sheets` (workbook layouts as plain data), and the front ends `excel`,
`cli` and `serve`. The public names below load on first use, so `import pyxl_del` (and the command line's start)
costs no pandas.
"""

import importlib.abc
import importlib.util
import sys
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pyxl_del")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"

_PUBLIC = {
    "Config": "pyxl_del.engine.config",
    "ConfigError": "pyxl_del.engine.config",
    "load_config": "pyxl_del.engine.config",
    "InputError": "pyxl_del.engine.errors",
    "PanelError": "pyxl_del.engine.errors",
    "DelResult": "pyxl_del.engine.pipeline",
    "run": "pyxl_del.engine.pipeline",
}
__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str):
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'pyxl_del' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})


ENV_ID = "pyxl_del/Lending-v0"


def _register(gymnasium) -> None:
    if ENV_ID not in gymnasium.registry:
        gymnasium.register(id=ENV_ID, entry_point="pyxl_del.decision.env:LendingEnv")


class _RegisterWhenGymnasiumLoads(importlib.abc.MetaPathFinder):
    """Registers the environment right after gymnasium's own import runs, so that ``import pyxl_del`` does not pay
    for importing gymnasium (a tenth of a second) in processes that never use it: every command, every UDF."""

    def find_spec(self, name, path=None, target=None):
        if name != "gymnasium":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            exec_module = spec.loader.exec_module

            def exec_and_register(module) -> None:
                exec_module(module)
                _register(module)

            spec.loader.exec_module = exec_and_register
        return spec


def _register_envs() -> None:
    """Make ``gymnasium.make("pyxl_del/Lending-v0")`` work after ``import pyxl_del``, whether gymnasium is imported
    before or after; the environment's module (and the engine behind it) loads only when an environment is made.
    Without gymnasium this does nothing."""
    if "gymnasium" in sys.modules:
        _register(sys.modules["gymnasium"])
    elif importlib.util.find_spec("gymnasium") is not None:
        sys.meta_path.insert(0, _RegisterWhenGymnasiumLoads())


_register_envs()
