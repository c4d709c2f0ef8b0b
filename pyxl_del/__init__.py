"""pyxl_del: delinquency (DEL30/60/90) forecasting of loan vintages with Markov chains, for Excel users."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pyxl_del")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"

from .config import Config, ConfigError, load_config  # noqa: E402
from .data import PanelError  # noqa: E402
from .pipeline import DelResult, run  # noqa: E402

__all__ = ["Config", "ConfigError", "DelResult", "PanelError", "load_config", "run", "__version__"]


def _register_envs() -> None:
    """Make ``gymnasium.make("pyxl_del/Lending-v0")`` work after ``import pyxl_del``; the environment's module
    (and the engine behind it) loads only when an environment is made. Without gymnasium this does nothing."""
    try:
        import gymnasium
    except ImportError:
        return
    if "pyxl_del/Lending-v0" not in gymnasium.registry:
        gymnasium.register(id="pyxl_del/Lending-v0", entry_point="pyxl_del.lending_env:LendingEnv")


_register_envs()
