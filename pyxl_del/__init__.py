"""pyxl_del: delinquency (DEL30/60/90) forecasting of loan vintages with Markov chains, for Excel users.

The layers are packages: `engine` (config, panel, transitions, calibration, forecast, DEL, portfolio; `run`),
`datasets`, `backtest`, `risk`, `decision`, `sheets` (workbook layouts as plain data), and the front ends `excel`,
`cli` and `serve`. The public names below load on first use, so `import pyxl_del` (and the command line's start)
costs no pandas.
"""

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


def _register_envs() -> None:
    """Make ``gymnasium.make("pyxl_del/Lending-v0")`` work after ``import pyxl_del``; the environment's module
    (and the engine behind it) loads only when an environment is made. Without gymnasium this does nothing."""
    try:
        import gymnasium
    except ImportError:
        return
    if "pyxl_del/Lending-v0" not in gymnasium.registry:
        gymnasium.register(id="pyxl_del/Lending-v0", entry_point="pyxl_del.decision.env:LendingEnv")


_register_envs()
