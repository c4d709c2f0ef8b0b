"""pyxl_del's worksheet functions for Excel: =DEL_FORECAST(...) and its companions (xlwings UDFs).

Thin glue: each function declares its Excel signature (argument names, optional arguments, help texts) and calls
pyxl_del.excel.udf, which validates the arguments, memoises the fit and answers with cells or a "#pyxl_del: ..." message.
xlsm/pyxl_del.xlsm names this module on its xlwings.conf sheet ("UDF Modules") and embeds the VBA wrappers
generated from these declarations (module xlwings_udfs), so no "Import Functions" is needed. After changing a
signature or a help text, rebuild the workbook: python -m xlsm.build (a test fails until then).

- Not volatile, and not run while the Insert Function dialog is open (``call_in_wizard=False``).
- Results are arrays that spill (Excel 365): no legacy ``expand``.
- ``data`` is read "raw": the 2-D tuple COM hands over, without xlwings' per-cell cleaning, so a recalculation
  with unchanged inputs costs one hash of the cells. No parameter has a type annotation: xlwings would take it
  as a converter.
- Every other argument is read with ``err_to_str``: xlwings otherwise hands a cell showing #N/A over as a blank,
  and a config cell in error would silently mean the defaults. pyxl_del.excel.udf names the error instead.
"""

import xlwings as xw

from pyxl_del.excel import udf
from pyxl_del.excel.workbook import XlwingsBook

CATEGORY = "pyxl_del"


# Factories, not shared decorator objects: xlwings' xlarg pops "doc" from its keyword arguments on first use.
def data_arg():
    return xw.arg("data", "raw", doc="The panel: a range or table with a header row (loan, cohort, MOB, segment, "
                                     "state, EAD columns), or the full path of a .csv or .parquet file")


def segment_arg():
    return xw.arg("segment", err_to_str=True, doc="Segment name as in the data (e.g. CASH LOAN), or Portfolio")


def del_type_arg():
    return xw.arg("del_type", err_to_str=True, doc="DEL30 (default), DEL60 or DEL90")


def calibrate_arg():
    return xw.arg("calibrate", err_to_str=True, doc="TRUE (default): calibrated forecast; FALSE: raw transition matrices")


def config_arg():
    return xw.arg("config", err_to_str=True, doc="Full path of a config.toml (default: config.toml next to this workbook, else the "
                                "built-in defaults)")


def caller_folder():
    """The calling workbook's folder, where config.toml is looked for; None when there is no calling workbook."""
    try:
        return XlwingsBook.caller().folder
    except Exception:  # noqa: BLE001 - outside Excel (tests, Python) xlwings raises; then there is no folder
        return None


@xw.func(category=CATEGORY, call_in_wizard=False, volatile=False)
@data_arg()
@segment_arg()
@del_type_arg()
@calibrate_arg()
@config_arg()
def DEL_FORECAST(data, segment, del_type="DEL30", calibrate=True, config=None):  # noqa: N802 - Excel's naming
    """DEL of a segment by cohort (rows) and MOB 0.. (columns): actual where observed, forecast after. Spills."""
    return udf.table(data, segment, del_type, calibrate, config, kind="mixed", folder=caller_folder())


@xw.func(category=CATEGORY, call_in_wizard=False, volatile=False)
@data_arg()
@segment_arg()
@del_type_arg()
@calibrate_arg()
@config_arg()
def DEL_FLAGS(data, segment, del_type="DEL30", calibrate=True, config=None):  # noqa: N802
    """ACTUAL / FORECAST (Portfolio: also MIXED) of each cell of DEL_FORECAST, same shape. Spills."""
    return udf.table(data, segment, del_type, calibrate, config, kind="flags", folder=caller_folder())


@xw.func(category=CATEGORY, call_in_wizard=False, volatile=False)
@data_arg()
@segment_arg()
@del_type_arg()
@config_arg()
def DEL_ACTUAL(data, segment, del_type="DEL30", config=None):  # noqa: N802
    """Observed DEL only, by cohort and MOB (blank where not observed). Spills."""
    return udf.table(data, segment, del_type, None, config, kind="actual", folder=caller_folder())


@xw.func(category=CATEGORY, call_in_wizard=False, volatile=False)
@data_arg()
@config_arg()
def DEL_CALIBRATION(data, config=None):  # noqa: N802
    """Step-wise calibration factors k by segment and MOB, with the DEL they were fitted on. Spills."""
    return udf.calibration(data, config, folder=caller_folder())


@xw.func(category=CATEGORY, call_in_wizard=False, volatile=False)
@data_arg()
@segment_arg()
@xw.arg("mob", err_to_str=True, doc="MOB m of the step m -> m+1 (0 = from disbursal to the first month)")
@calibrate_arg()
@config_arg()
def DEL_MATRIX(data, segment, mob, calibrate=True, config=None):  # noqa: N802
    """Transition matrix of a segment for MOB m -> m+1 as applied in the forecast: from-state down, to-state across."""
    return udf.matrix(data, segment, mob, calibrate, config, folder=caller_folder())


@xw.func(category=CATEGORY, call_in_wizard=False, volatile=False)
@data_arg()
@config_arg()
def DEL_SEGMENTS(data, config=None):  # noqa: N802
    """The segment names the other functions accept: Portfolio, then the data's segments. Spills."""
    return udf.segments(data, config, folder=caller_folder())


@xw.func(category=CATEGORY, call_in_wizard=False, volatile=False)
@data_arg()
@config_arg()
def DEL_WARNINGS(data, config=None):  # noqa: N802
    """What the run warns about (thin cohorts, loans leaving the data, fallback rows), one per row. Spills."""
    return udf.warnings(data, config, folder=caller_folder())


@xw.func(category=CATEGORY, volatile=False)
def DEL_VERSION():  # noqa: N802
    """Version of the pyxl_del Python package that answers these functions."""
    return udf.version()
