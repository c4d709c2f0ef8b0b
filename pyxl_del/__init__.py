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
