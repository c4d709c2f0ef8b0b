"""The project's two error kinds and how an error is told to a person.

`InputError`: input the user must fix (data, config, policy, workbook, arguments); the CLI prints it and exits 2,
a worksheet function shows it in its cell, the ribbon in a message box, the service as a 4xx. `OutputError`: a
file that cannot be written (the CLI exits 1). Anything else reaching a front end is a bug.
"""

from __future__ import annotations

import logging

from pydantic import ValidationError

log = logging.getLogger(__name__)

MAX_MESSAGE = 255  # a cell message: Excel's own error texts and tooltips stay well below this


class InputError(ValueError):
    """Input the user must fix (data, config, policy, workbook): the CLI prints the message and exits 2."""


class PanelError(InputError):
    """The panel cannot be used as it is. ``problems`` lists every finding (not just the first)."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + ("\n  ".join([""] + problems) if len(problems) > 1 else problems[0]))


class OutputError(OSError):
    """An output path that cannot be written; the old file, if any, is left as it was."""


def describe_error(exc: BaseException, *, one_line: bool = False) -> str:
    """What went wrong, for a person reading a cell or a message box (never a traceback).

    The engine reports bad input (data, config, arguments, sheet names, files) as ValueError, KeyError or OSError
    subclasses (PanelError, ConfigError, SheetConflictError, WorkbookError, ...) whose message is written for the
    user; anything else is a bug, logged with its traceback and shown as "internal error".
    """
    if isinstance(exc, PanelError) and one_line and len(exc.problems) > 1:
        text = f"{exc.source}: {exc.problems[0]} (and {len(exc.problems) - 1} more problems)"
    elif isinstance(exc, ValidationError):
        text = "; ".join(_describe_validation(e) for e in exc.errors())
    elif isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])  # str(KeyError) would quote the message
    elif isinstance(exc, (ValueError, LookupError, OSError)):
        log.debug("pyxl_del: input error", exc_info=exc)
        text = str(exc)
    else:
        log.error("pyxl_del: unexpected error", exc_info=exc)
        text = f"internal error ({type(exc).__name__}: {exc}); the Python log has the details"
    if one_line:
        text = " ".join(text.split())
        if len(text) > MAX_MESSAGE:
            text = text[:MAX_MESSAGE - 1] + "…"
    return text


def _describe_validation(error: dict) -> str:
    where = ".".join(str(p) for p in error["loc"]) or "arguments"
    got = f" (got {error['input']!r})" if error["type"] not in ("missing",) and "input" in error else ""
    return f"{where}: {error['msg']}{got}"
