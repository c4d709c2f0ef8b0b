"""=DEL_DECIDE, the engine side (udfs/decide_udfs.py is the xlwings glue): one decision row for single cells, a
table for ranges, under the policy the config applies, on the twin of the data (memoised on the data and the
twin's part of the config, so a new [policy] in config.toml reuses the fit). The decisions are
pyxl_del.decision.decide's, the same as the CLI's and the service's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pyxl_del.decision.decide import (
    Application,
    DecisionInputError,
    Problem,
    applied_engine,
    default_data,
    with_config,
)
from pyxl_del.decision.policy import twin_fingerprint
from pyxl_del.decision.twin import Twin, fit_twin
from pyxl_del.engine.config import Config, load_config
from pyxl_del.engine.errors import data_named
from pyxl_del.engine.memo import LruMemo
from pyxl_del.excel.udf import (
    CONFIGS,
    DATA_RANGE,
    DataArgs,
    cell_error,
    data_key,
    excel_safe,
    file_key,
    locate_config,
)
from pyxl_del.excel.workbook import cells_to_frame

TWIN_MEMO_SIZE = 4  # fitted twins kept

TWINS = LruMemo(TWIN_MEMO_SIZE)
CONFIGURED = LruMemo(TWIN_MEMO_SIZE)
DECIDE_HEADER = ["Decision", "Reason code", "Reason", "Offered APR", "PD 12m", "PD lifetime", "Expected loss",
                 "Expected value", "Policy version", "Caveat"]


def _column(value: Any) -> list | None:
    """A cell or a range (a row or a column) as a flat list; None when omitted or blank."""
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)):
        flat = [v for row in value for v in (row if isinstance(row, (list, tuple)) else (row,))]
        return [None if v == "" else v for v in flat]
    return [value]


def fitted_twin(data: Any, config: Config, config_path: Path | None) -> Twin:
    """The twin of ``data`` (cells, a file path, or None: [decide] data) under ``config``, memoised on the data
    and the twin's part of the config, so a new policy in config.toml reuses the fit."""
    if data is None or data == "":
        source: Any = default_data(config, config_path)
        key = data_key(str(source)) if isinstance(source, Path) else ("scored sample",)
    else:
        source = Path(data.strip()).expanduser() if isinstance(data, str) else None
        key = data_key(data)
    fingerprint = twin_fingerprint(config)

    def fit():
        if source is not None:
            return fit_twin(source, config)  # a file, or the scored sample
        rows = data if isinstance(data, tuple) else tuple(map(tuple, data))
        with data_named(DATA_RANGE):
            return fit_twin(cells_to_frame(rows, ints_are_errors=True), config)

    # Keyed on the whole config too, so every call under one policy gets the same twin (and decision engine).
    return CONFIGURED.get((key, config.to_toml()), lambda: with_config(TWINS.get((key, fingerprint), fit), config))


@excel_safe
def decide_cells(segment: Any, score: Any, amount: Any, apr: Any, data: Any, config: Any, *,
                 folder: Path | None = None) -> list[list]:
    """=DEL_DECIDE: one decision row for single cells; for ranges a header row and one row per application (a
    blank row, where segment, score and amount are all blank, answers with a blank row)."""
    columns = [_column(v) for v in (segment, score, amount)]
    for name, values in zip(("segment", "score", "amount", "apr"), [*columns, _column(apr)], strict=True):
        errors = [(i, e) for i, v in enumerate(values or ()) if (e := cell_error(v)) is not None]
        if errors:
            i, error = errors[0]
            where = f"application {i + 1}: " if values is not None and len(values) > 1 else ""
            raise DecisionInputError("DEL_DECIDE", [Problem(i, name, f"{where}{name}: the cell holds the error "
                                                                     f"{error}")])
    if any(c is None for c in columns):
        raise DecisionInputError("DEL_DECIDE", [Problem(None, "arguments", "segment, score and amount are required")])
    n = len(columns[0])
    aprs = _column(apr) or [None]
    if any(len(c) != n for c in columns) or len(aprs) not in (1, n):
        raise DecisionInputError("DEL_DECIDE", [Problem(None, "arguments", "segment, score, amount (and apr) must be "
                                                                          "ranges of the same size")])
    aprs = aprs * n if len(aprs) == 1 else aprs  # one requested APR for every application
    rows = [i for i in range(n) if any(c[i] is not None for c in columns)]
    apps = []
    for i in rows:
        try:
            apps.append(Application(segment=columns[0][i], score=columns[1][i], amount=columns[2][i], apr=aprs[i]))
        except ValidationError as exc:
            e = exc.errors()[0]
            where = f"application {i + 1}: " if n > 1 else ""
            field = str(e["loc"][0])
            raise DecisionInputError("DEL_DECIDE", [Problem(i, field, f"{where}{field}: {e['msg']}")]) from None
    path = locate_config(DataArgs(config=config).config, folder)
    cfg = cached_config(path)
    answers = iter(applied_engine(fitted_twin(data, cfg, path)).decide_many(apps) if apps else [])
    out = [[""] * len(DECIDE_HEADER) for _ in range(n)]
    for i in rows:
        d = next(answers)
        figures = (d.offered_apr, d.pd_12m, d.pd_lifetime, d.expected_loss, d.expected_value)
        out[i] = [d.decision, d.reason_code, d.reason, *("" if v is None else v for v in figures), d.policy_version,
                  d.caveat]
    single = all(not isinstance(v, (list, tuple)) for v in (segment, score, amount))
    return out if single else [DECIDE_HEADER, *out]


def cached_config(path: Path | None) -> Config:
    """The config of ``path`` (None: the defaults), parsed once per version of the file (the memo and keys of
    pyxl_del.excel.udf, so the worksheet functions share one parse)."""
    key = ("defaults",) if path is None else file_key(path, "config file")
    return CONFIGS.get(key, lambda: Config() if path is None else load_config(path))
