Attribute VB_Name = "PyxlDel"
' pyxl_del ribbon callbacks (source of the PyxlDel module in xlsm/pyxl_del.xlsm; built by xlsm/build.py).
'
' One callback serves every button of the "pyxl_del" ribbon tab: the button's tag names an entry of
' pyxl_del.excel.buttons.BUTTONS. A new button therefore needs a <button tag="..."> in customUI.xml and an
' entry in BUTTONS, but no new VBA. RunPython comes from the xlwings module (the xlwings VBA runtime).
Option Explicit

Public Sub PyxlDelAction(control As IRibbonControl)
    RunPython "import pyxl_del.excel.ribbon; pyxl_del.excel.ribbon.run_action('" & control.Tag & "')"
End Sub
