"""The buttons of the pyxl_del ribbon tab: each tag of xlsm/src/customUI.xml and the function that runs it.

A function is named as "module:function" and imported only when its button is clicked, so a click (and the
command line, which lists the tags) loads only what that button needs. Each takes a
`pyxl_del.excel.ribbon.ActionContext` and returns an `Outcome`.
"""

from __future__ import annotations

from importlib import import_module

BUTTONS: dict[str, str] = {
    "run_forecast": "pyxl_del.excel.ribbon:run_forecast",
    "refresh_report": "pyxl_del.excel.ribbon:refresh_report",
    "backtest": "pyxl_del.excel.ribbon:backtest",
    "stress_test": "pyxl_del.excel.ribbon:stress_test",
    "risk_dashboard": "pyxl_del.excel.ribbon:risk_dashboard",
    "drill_down": "pyxl_del.excel.drilldown:drill_down_action",
    "abtest": "pyxl_del.excel.decision_actions:abtest_action",
    "optimise": "pyxl_del.excel.decision_actions:optimise_action",
    "apply_policy": "pyxl_del.excel.decision_actions:apply_action",
    "open_config": "pyxl_del.excel.ribbon:open_config",
    "diagnostics": "pyxl_del.excel.ribbon:diagnostics",
}


def handler(tag: str):
    """The function of the button ``tag`` (KeyError for a tag that is no button)."""
    module, function = BUTTONS[tag].split(":")
    return getattr(import_module(module), function)
