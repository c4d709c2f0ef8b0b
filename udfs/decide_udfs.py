"""Worksheet functions of real-time decisions and drill-down: =DEL_DECIDE and =DEL_LOANS (xlwings UDFs).

Thin glue like udfs/del_udfs.py, whose conventions these follow (not volatile, skipped in the function wizard,
spilled arrays, "#pyxl_del: ..." messages instead of tracebacks, the fit memoised): the engine side is
pyxl_del.excel.decide_udf.decide_cells and pyxl_del.excel.drilldown.loans_cells. A separate module, so the workbook lists it
next to udfs.del_udfs on its xlwings.conf sheet ("UDF Modules": udfs.del_udfs;udfs.decide_udfs).
"""

import xlwings as xw

from pyxl_del.excel import decide_udf, drilldown
from udfs.del_udfs import CATEGORY, caller_folder, config_arg, data_arg, segment_arg


@xw.func(category=CATEGORY, call_in_wizard=False, volatile=False)
@xw.arg("segment", err_to_str=True, doc="Segment (product) of the application as in the data, e.g. CASH LOAN; or a range of them")
@xw.arg("score", err_to_str=True, doc="Origination score; or a range, one per application")
@xw.arg("amount", err_to_str=True, doc="Amount applied for; or a range")
@xw.arg("apr", err_to_str=True, doc="Requested APR as a fraction (0.24 = 24%); blank: the policy's APR")
@xw.arg("data", "raw", doc="The panel the twin is fitted on (a range with a header row or a file path); "
                           "blank: [decide] data of config.toml, else the scored sample")
@config_arg()
def DEL_DECIDE(segment, score, amount, apr=None, data=None, config=None):  # noqa: N802 - Excel's naming
    """Decision under the applied policy: decision, reason, offered APR, PDs, expected loss, value, policy version."""
    return decide_udf.decide_cells(segment, score, amount, apr, data, config, folder=caller_folder())


@xw.func(category=CATEGORY, call_in_wizard=False, volatile=False)
@data_arg()
@segment_arg()
@xw.arg("cohort", err_to_str=True, doc="Cohort (disbursal month) as YYYY-MM, a date or 202401")
@xw.arg("mob", err_to_str=True, doc="Month on book of the cell")
@xw.arg("state", err_to_str=True, doc="Only loans in this bucket (e.g. DPD30+) or DEL type (DEL30); blank: every loan")
@config_arg()
def DEL_LOANS(data, segment, cohort, mob, state=None, config=None):  # noqa: N802
    """The loans behind a DEL cell: loan, segment, state, EAD and previous state, largest EAD first. Spills."""
    return drilldown.loans_cells(data, segment, cohort, mob, state, config, folder=caller_folder())
